"""Bulk put items through boto3 against a real ``shoal serve`` (issue 21,
point 3): viewer-events objects under ``--s3-dir`` loaded into an existing
table with its index and stream, progress counts, error and condition
reports, ClientToken, limits, paging, cancellation and a restart mid-way."""

from __future__ import annotations

import gzip
import json
import os
import time
from decimal import Decimal

import boto3
import orjson
import pytest
import zstandard
from botocore.config import Config
from botocore.exceptions import ClientError

from shoal.api.exports import item_line
from shoal.demo.workload import CONTENT_INDEX, EventGenerator, table_definitions, user_id
from shoal.model.size import item_size
from tests.conftest import make_client
from tests.shoal_process import ShoalProcess

INPUT, OUTPUT = "events-in", "reports"
ACTIVE = ("IN_PROGRESS", "CANCELLING")


class Server:
    """A ``shoal serve`` with two workers and a folder for S3."""

    def __init__(self, root) -> None:
        self.root = root
        self.s3 = root / "s3"
        for bucket in (INPUT, OUTPUT):
            (self.s3 / bucket).mkdir(parents=True)
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = ShoalProcess(self.root / "data", "--workers", "2", "--s3-dir", str(self.s3)).start()
        self.ddb = make_client(self.process.url)
        self.raw = _unvalidated(self.process.url)  # the server's own checks, unhindered by botocore's

    def stop(self) -> None:
        self.process.stop()

    def put_object(self, bucket: str, key: str, data: bytes) -> int:
        path = self.s3 / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return len(data)


def _unvalidated(url: str):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDSHOALTEST",
                        aws_secret_access_key="secret",
                        config=Config(parameter_validation=False, retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("bulk"))
    yield running
    running.stop()


_tables = iter(range(10_000))


def events_table(ddb, *, index: bool = True, stream: bool = False) -> str:
    """A viewer-events table (user_id, ts), with the workload's GSI on
    (content_id, ts) if ``index``."""
    request = dict(table_definitions()[0])
    request["TableName"] = name = f"viewer_events_{next(_tables)}"
    if not index:
        request.pop("GlobalSecondaryIndexes")
        request["AttributeDefinitions"] = [d for d in request["AttributeDefinitions"]
                                           if d["AttributeName"] != "content_id"]
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    ddb.create_table(**request)
    return name


def events(count: int, seed: int, first_user: int = 1) -> list[dict]:
    """``count`` viewer events of 20 users, one a second."""
    generator = EventGenerator(seed)
    return [generator.event(user_id(first_user + i % 20), 1_765_000_000_000 + i * 1000) for i in range(count)]


def json_lines(items) -> bytes:
    return b"".join(orjson.dumps({"Item": item}) + b"\n" for item in items)


def start(ddb, table: str, prefix: str, input_format: str = "DYNAMODB_JSON", compression: str = "NONE",
          output_types=("ERROR", "CONDITION_CHECK_FAILURE"), **extra) -> str:
    started = ddb.start_bulk_put_items(
        TableName=table,
        InputS3Configuration={"S3Bucket": INPUT, "S3KeyPrefix": prefix, "InputFormat": input_format,
                              "InputCompressionType": compression},
        OutputS3Configuration={"S3Bucket": OUTPUT, "S3KeyPrefix": "bulk", "OutputType": list(output_types)},
        **extra)["BulkOperationDescription"]
    assert started["BulkOperationStatus"] == "IN_PROGRESS"
    return started["BulkOperationArn"]


def wait(ddb, arn: str, until=lambda d: d["BulkOperationStatus"] not in ACTIVE, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        description = ddb.describe_bulk_operation(BulkOperationArn=arn)["BulkOperationDescription"]
        if until(description):
            return description
        time.sleep(0.05)
    raise AssertionError(f"bulk operation {arn}: {description}")


def scan(ddb, table: str) -> list[dict]:
    """The table's items, in ``normalized`` form."""
    items, request = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return normalized(items)
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def normalized(items) -> list[dict]:
    """Items comparable whether sent or read back: numbers as Decimals, set
    members sorted, in key order."""
    def value(av: dict):
        (kind, inner), = av.items()
        if kind == "N":
            return ("N", Decimal(inner))
        if kind in ("SS", "NS"):
            return (kind, sorted(Decimal(x) for x in inner) if kind == "NS" else sorted(inner))
        if kind == "M":
            return ("M", {name: value(member) for name, member in inner.items()})
        if kind == "L":
            return ("L", [value(member) for member in inner])
        return (kind, inner)
    out = [{name: value(av) for name, av in item.items()} for item in items]
    return sorted(out, key=lambda item: (item["user_id"][1], item["ts"][1]))


def report_lines(server, arn: str, kind: str) -> list[dict]:
    folder = server.s3 / OUTPUT / "bulk" / arn.rsplit("/", 1)[1] / kind
    if not folder.exists():
        return []
    return [json.loads(line) for path in sorted(folder.iterdir()) for line in path.read_text().splitlines()]


def error(call, **request) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**request)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def stream_events(server, table: str) -> list[str]:
    streams = make_client(server.process.url, "dynamodbstreams")
    arn = server.ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    names = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            names += [record["eventName"] for record in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return names


# ---------------------------------------------------------------- loading


def test_viewer_events_load_into_the_table_its_index_and_its_stream(server):
    ddb = server.ddb
    table = events_table(ddb, stream=True)
    items = events(1200, seed=1)
    sizes = [server.put_object(INPUT, "load/part-1.json.gz", gzip.compress(json_lines(items[:700]))),
             server.put_object(INPUT, "load/part-2.json.gz", gzip.compress(json_lines(items[700:])))]
    server.put_object(INPUT, "elsewhere/part-3.json.gz", gzip.compress(json_lines(events(5, seed=9))))
    arn = start(ddb, table, "load/", compression="GZIP")
    assert arn.startswith(ddb.describe_table(TableName=table)["Table"]["TableArn"] + "/bulk-operation/")
    done = wait(ddb, arn)

    assert done["BulkOperationStatus"] == "COMPLETED"
    assert (done["ProcessedItemCount"], done["FailedItemCount"]) == (1200, 0)
    assert done["TotalInputBytes"] == done["ProcessedInputBytes"] == sum(sizes)
    assert done["TableDetails"][0]["TableName"] == table and done["EndTime"] >= done["StartTime"]
    assert done["PerformanceTier"] == "STANDARD" and "MaxWriteRequestUnits" not in done
    assert scan(ddb, table) == normalized(items)
    projected = ("user_id", "ts", "content_id", "event_type", "position_s")  # the GSI's INCLUDE projection
    assert done["BulkOperationUsage"] == [{
        "TableName": table,
        "BulkPutBytes": sum(item_size(item) for item in items) + sum(
            item_size({name: item[name] for name in projected}) for item in items),
        "Table": {"BulkPutBytes": sum(item_size(item) for item in items)},
        "GlobalSecondaryIndexes": {CONTENT_INDEX: {"BulkPutBytes": sum(
            item_size({name: item[name] for name in projected}) for item in items)}},
    }]
    title = items[0]["content_id"]["S"]
    watched = ddb.query(TableName=table, IndexName=CONTENT_INDEX, KeyConditionExpression="content_id = :c",
                        ExpressionAttributeValues={":c": {"S": title}})["Items"]
    assert len(watched) == sum(1 for item in items if item["content_id"]["S"] == title)
    assert stream_events(server, table) == ["INSERT"] * 1200
    assert report_lines(server, arn, "error") == []
    manifest = json.loads((server.s3 / OUTPUT / "bulk" / arn.rsplit("/", 1)[1] / "manifest.json").read_text())
    assert manifest == {"bulkOperationArn": arn, "tableArn": arn.rsplit("/bulk-operation/", 1)[0],
                        "status": "COMPLETED", "processedItemCount": 1200, "failedItemCount": 0,
                        "conditionCheckFailedItemCount": 0, "outputFiles": []}


def test_ion_and_zstd_input_overwrites_existing_items(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    items = events(300, seed=2)
    old = dict(items[0], event_type={"S": "old"})
    ddb.put_item(TableName=table, Item=old)
    ion = b"".join(item_line(item, "ION") for item in items)
    server.put_object(INPUT, "ion/data.ion.zst", zstandard.ZstdCompressor().compress(ion))
    done = wait(ddb, start(ddb, table, "ion/", input_format="ION", compression="ZSTD"))
    assert done["BulkOperationStatus"] == "COMPLETED"
    assert (done["ProcessedItemCount"], done["FailedItemCount"]) == (300, 0)
    assert scan(ddb, table) == normalized(items)
    assert ddb.describe_table(TableName=table)["Table"]["ItemCount"] == 300


def test_bad_lines_are_counted_reported_and_the_rest_loaded(server):
    ddb = server.ddb
    table = events_table(ddb)
    good = events(40, seed=3)
    lines = [orjson.dumps({"Item": item}) for item in good[:20]]
    lines += [
        b"{not json",  # line 20
        orjson.dumps({"Items": good[20]}),  # 21: no Item
        orjson.dumps({"Item": {k: v for k, v in good[21].items() if k != "ts"}}),  # 22: a key missing
        orjson.dumps({"Item": dict(good[22], ts={"S": "noon"})}),  # 23: a key of the wrong type
        orjson.dumps({"Item": dict(good[23], content_id={"N": "7"})}),  # 24: the GSI key of the wrong type
        orjson.dumps({"Item": dict(good[24], blob={"S": "x" * 410_000})}),  # 25: over 400 KB
    ]
    lines += [orjson.dumps({"Item": item}) for item in good[25:]]
    server.put_object(INPUT, "bad/1.json", b"\n".join(lines) + b"\n")
    server.put_object(INPUT, "bad/2.json", b"this is not JSON\n" * 3)
    done = wait(ddb, start(ddb, table, "bad/", compression="NONE"))
    assert done["BulkOperationStatus"] == "COMPLETED_WITH_ERRORS"
    assert (done["ProcessedItemCount"], done["FailedItemCount"]) == (26 + 15 + 3, 6 + 3)
    assert scan(ddb, table) == normalized(good[:20] + good[25:])
    errors = report_lines(server, done["BulkOperationArn"], "error")
    assert [(e["InputS3Key"], e["ItemIndex"]) for e in errors] == [
        ("bad/1.json", 20), ("bad/1.json", 21), ("bad/1.json", 22), ("bad/1.json", 23), ("bad/1.json", 24),
        ("bad/1.json", 25), ("bad/2.json", 0), ("bad/2.json", 1), ("bad/2.json", 2)]
    assert errors[0]["ErrorMessage"].startswith("Unexpected JSON: ")
    assert errors[1]["ErrorMessage"] == 'A DynamoDB JSON line must be an object with a member "Item" holding the item'
    assert errors[2]["ErrorMessage"] == "One or more parameter values were invalid: Missing the key ts in the item"
    assert errors[3]["ErrorMessage"] == ("One or more parameter values were invalid: Type mismatch for key ts "
                                         "expected: N actual: S")
    assert errors[4]["ErrorMessage"] == ("One or more parameter values were invalid: Type mismatch for Index Key "
                                         "content_id Expected: S Actual: N IndexName: by_content")
    assert errors[5]["ErrorMessage"] == "Item size has exceeded the maximum allowed size"
    assert "Item" not in errors[0] and errors[3]["Item"]["ts"] == {"S": "noon"}
    without_ts = {k: v for k, v in errors[2]["Item"].items()}
    without_ts["ts"] = good[21]["ts"]
    assert normalized([without_ts]) == normalized([good[21]]) and "ts" not in errors[2]["Item"]


def test_an_object_that_does_not_decompress_counts_one_error(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    good = events(10, seed=4)
    server.put_object(INPUT, "gz/a.json.gz", gzip.compress(json_lines(good)))
    server.put_object(INPUT, "gz/b.json.gz", b"plain text, not gzip\n")
    done = wait(ddb, start(ddb, table, "gz/", compression="GZIP"))
    assert done["BulkOperationStatus"] == "COMPLETED_WITH_ERRORS"
    assert (done["ProcessedItemCount"], done["FailedItemCount"]) == (11, 1)
    [failure] = report_lines(server, done["BulkOperationArn"], "error")
    assert (failure["InputS3Key"], failure["ItemIndex"]) == ("gz/b.json.gz", 0)
    assert failure["ErrorMessage"].startswith("The object cannot be read: ")
    assert scan(ddb, table) == normalized(good)


def test_per_item_conditions(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    existing, fresh = events(2, seed=5)
    ddb.put_item(TableName=table, Item=existing)
    only_new = {"ConditionExpression": "attribute_not_exists(user_id)"}
    lines = [
        orjson.dumps({"Item": dict(existing, event_type={"S": "again"}), **only_new}),  # false: not written
        orjson.dumps({"Item": fresh, **only_new}),  # true: written
        orjson.dumps({"Item": dict(existing, rating={"N": "5"}), "ConditionExpression": "#t = :t",
                      "ExpressionAttributeNames": {"#t": "event_type"},
                      "ExpressionAttributeValues": {":t": existing["event_type"]}}),  # true: written
        orjson.dumps({"Item": fresh, "ConditionExpression": "user_id = "}),  # a syntax error: an error
        orjson.dumps({"Item": fresh, "ConditionExpression": "attribute_exists(a)",
                      "ExpressionAttributeValues": {":unused": {"S": "x"}}}),  # an unused value: an error
    ]
    server.put_object(INPUT, "cond/1.json", b"\n".join(lines))
    done = wait(ddb, start(ddb, table, "cond/"))
    assert done["BulkOperationStatus"] == "COMPLETED_WITH_ERRORS"
    assert (done["ProcessedItemCount"], done["FailedItemCount"]) == (5, 2)
    assert scan(ddb, table) == normalized([dict(existing, rating={"N": "5"}), fresh])
    arn = done["BulkOperationArn"]
    [failure] = report_lines(server, arn, "condition-check-failure")
    assert (failure["InputS3Key"], failure["ItemIndex"], sorted(failure)) == (
        "cond/1.json", 0, ["ExistingItem", "InputS3Key", "Item", "ItemIndex"])
    assert normalized([failure["Item"]]) == normalized([dict(existing, event_type={"S": "again"})])
    assert normalized([failure["ExistingItem"]]) == normalized([existing])
    messages = [(e["ItemIndex"], e["ErrorMessage"]) for e in report_lines(server, arn, "error")]
    assert messages[0][0] == 3 and messages[0][1].startswith("Invalid ConditionExpression: Syntax error;")
    assert messages[1] == (4, "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}")


def test_only_the_report_types_asked_for_are_written(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    item = events(1, seed=6)[0]
    ddb.put_item(TableName=table, Item=item)
    line = orjson.dumps({"Item": item, "ConditionExpression": "attribute_not_exists(ts)"})
    server.put_object(INPUT, "types/1.json", line + b"\n{bad\n")
    done = wait(ddb, start(ddb, table, "types/", output_types=("ERROR",)))
    assert (done["ProcessedItemCount"], done["FailedItemCount"]) == (2, 1)
    arn = done["BulkOperationArn"]
    assert len(report_lines(server, arn, "error")) == 1
    assert report_lines(server, arn, "condition-check-failure") == []


# ---------------------------------------------------------------- requests


def test_client_token_returns_the_same_operation_or_refuses_other_parameters(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    server.put_object(INPUT, "token/1.json", json_lines(events(3, seed=7)))
    arn = start(ddb, table, "token/", ClientToken="load-once")
    wait(ddb, arn)
    again = ddb.start_bulk_put_items(
        TableName=table, ClientToken="load-once",
        InputS3Configuration={"S3Bucket": INPUT, "S3KeyPrefix": "token/", "InputFormat": "DYNAMODB_JSON",
                              "InputCompressionType": "NONE"},
        OutputS3Configuration={"S3Bucket": OUTPUT, "S3KeyPrefix": "bulk",
                               "OutputType": ["ERROR", "CONDITION_CHECK_FAILURE"]})["BulkOperationDescription"]
    assert (again["BulkOperationArn"], again["BulkOperationStatus"], again["ClientToken"]) == (
        arn, "COMPLETED", "load-once")
    assert error(ddb.start_bulk_put_items, TableName=table, ClientToken="load-once",
                 InputS3Configuration={"S3Bucket": INPUT, "InputFormat": "ION"},
                 OutputS3Configuration={"OutputType": ["ERROR"]}) == (
        "IdempotentParameterMismatchException", "Request parameters do not match the cached response")
    assert len(ddb.scan(TableName=table)["Items"]) == 3


def test_refusals_with_exact_errors_and_the_server_still_serving(server):
    ddb, raw = server.ddb, server.raw
    table = events_table(ddb, index=False)
    source = {"S3Bucket": INPUT, "S3KeyPrefix": "none/", "InputFormat": "DYNAMODB_JSON"}
    output = {"OutputType": ["ERROR"]}
    assert error(ddb.start_bulk_put_items, TableName="no_such_table", InputS3Configuration=source,
                 OutputS3Configuration=output) == (
        "ResourceNotFoundException", "Requested resource not found: Table: no_such_table not found")
    assert error(raw.start_bulk_put_items, TableName=table, OutputS3Configuration=output,
                 InputS3Configuration=dict(source, InputFormat="CSV")) == (
        "ValidationException", "1 validation error detected: Value 'CSV' at 'inputS3Configuration.inputFormat' "
                               "failed to satisfy constraint: Member must satisfy enum value set: [DYNAMODB_JSON, ION]")
    assert error(raw.start_bulk_put_items, TableName=table, InputS3Configuration=source,
                 OutputS3Configuration=output, MaxWriteRequestUnits=1000) == (
        "ValidationException", "1 validation error detected: Value '1000' at 'maxWriteRequestUnits' failed to "
                               "satisfy constraint: Member must have value greater than or equal to 1024")
    assert error(raw.list_bulk_operations, MaxResults=26) == (
        "ValidationException", "1 validation error detected: Value '26' at 'maxResults' failed to satisfy "
                               "constraint: Member must have value less than or equal to 25")
    assert error(ddb.list_bulk_operations, NextToken="0123456789abcdef") == (
        "ValidationException", "Invalid NextToken provided for ListBulkOperations")
    table_arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    missing = f"{table_arn}/bulk-operation/01700000000000-00000000"
    for call in (ddb.describe_bulk_operation, ddb.cancel_bulk_operation):
        assert error(call, BulkOperationArn=missing) == (
            "ResourceNotFoundException", f"Requested resource not found: Bulk operation: {missing} not found")

    # a bucket that does not exist fails the operation, as it fails an import
    failed = wait(ddb, ddb.start_bulk_put_items(
        TableName=table_arn, InputS3Configuration=dict(source, S3Bucket="no-such-bucket"),
        OutputS3Configuration=output)["BulkOperationDescription"]["BulkOperationArn"])
    assert (failed["BulkOperationStatus"], failed["FailureCode"], failed["FailureMessage"]) == (
        "FAILED", "S3NoSuchBucket", "The specified bucket does not exist (Service: Amazon S3; Status Code: 404; "
                                    "Error Code: NoSuchBucket)")
    assert error(ddb.cancel_bulk_operation, BulkOperationArn=failed["BulkOperationArn"]) == (
        "ValidationException", f"Bulk operation {failed['BulkOperationArn']} cannot be cancelled: its status is FAILED")
    # no objects under the prefix: nothing to do
    empty = wait(ddb, start(ddb, table, "none/"))
    assert (empty["BulkOperationStatus"], empty["ProcessedItemCount"], empty["TotalInputBytes"]) == ("COMPLETED", 0, 0)
    assert ddb.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
    assert ddb.list_tables()["TableNames"]


def test_one_operation_at_a_time_per_table(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    server.put_object(INPUT, "limit/1.json", json_lines(events(3000, seed=8)))
    arn = start(ddb, table, "limit/", MaxWriteRequestUnits=1024)
    assert error(ddb.start_bulk_put_items, TableName=table,
                 InputS3Configuration={"S3Bucket": INPUT, "S3KeyPrefix": "limit/", "InputFormat": "DYNAMODB_JSON"},
                 OutputS3Configuration={"OutputType": ["ERROR"]}) == (
        "LimitExceededException", "Subscriber limit exceeded: Only 1 bulk operation can be in progress "
                                  "simultaneously per table")
    assert ddb.cancel_bulk_operation(BulkOperationArn=arn)["BulkOperationStatus"] == "CANCELLING"
    assert wait(ddb, arn)["BulkOperationStatus"] == "CANCELLED"


def test_list_pages_newest_first(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    server.put_object(INPUT, "list/1.json", json_lines(events(2, seed=9)))
    mine = [wait(ddb, start(ddb, table, "list/"))["BulkOperationArn"] for _ in range(3)]
    seen, token = [], None
    while True:
        page = ddb.list_bulk_operations(MaxResults=2, **({"NextToken": token} if token else {}))
        assert len(page["BulkOperationsSummaryList"]) <= 2
        seen += page["BulkOperationsSummaryList"]
        token = page.get("NextToken")
        if token is None:
            break
    arns = [summary["BulkOperationArn"] for summary in seen]
    assert len(arns) == len(set(arns))
    assert [arn for arn in arns if arn in mine] == mine[::-1]
    starts = [summary["StartTime"] for summary in seen]
    assert starts == sorted(starts, reverse=True)
    last = next(summary for summary in seen if summary["BulkOperationArn"] == mine[-1])
    assert last["BulkOperationStatus"] == "COMPLETED" and last["EndTime"] >= last["StartTime"]
    assert len(ddb.list_bulk_operations()["BulkOperationsSummaryList"]) == min(10, len(arns))


# ---------------------------------------------------------------- cancellation, pace, restarts


def test_cancel_stops_between_chunks_and_keeps_what_was_written(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    server.put_object(INPUT, "cancel/1.json", json_lines(events(4000, seed=10)))
    arn = start(ddb, table, "cancel/", MaxWriteRequestUnits=1024)
    wait(ddb, arn, until=lambda d: d["ProcessedItemCount"] > 0)
    cancelled = ddb.cancel_bulk_operation(BulkOperationArn=arn)
    assert (cancelled["BulkOperationArn"], cancelled["BulkOperationStatus"]) == (arn, "CANCELLING")
    assert ddb.cancel_bulk_operation(BulkOperationArn=arn)["BulkOperationStatus"] == "CANCELLING"
    done = wait(ddb, arn)
    assert done["BulkOperationStatus"] == "CANCELLED" and done["EndTime"] >= done["StartTime"]
    assert done["MaxWriteRequestUnits"] == 1024
    written = len(scan(ddb, table))
    assert 0 < done["ProcessedItemCount"] == written < 4000
    time.sleep(1.5)  # nothing is written after the cancellation
    assert len(scan(ddb, table)) == written


def test_max_write_request_units_paces_the_writes(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    server.put_object(INPUT, "pace/1.json", json_lines(events(2048, seed=11)))  # 1 WRU each
    arn = start(ddb, table, "pace/", MaxWriteRequestUnits=1024)
    done = wait(ddb, arn)
    assert done["BulkOperationStatus"] == "COMPLETED"
    # 2048 units at 1024 a second: the last write is at least a second after the start
    assert (done["EndTime"] - done["StartTime"]).total_seconds() >= 1.0


def test_a_restart_resumes_where_the_last_chunk_ended(server):
    ddb = server.ddb
    table = events_table(ddb, index=False, stream=True)
    items = events(4000, seed=12)
    server.put_object(INPUT, "restart/1.json", json_lines(items[:2500]))
    server.put_object(INPUT, "restart/2.json", json_lines(items[2500:]))
    arn = start(ddb, table, "restart/", MaxWriteRequestUnits=1024)
    wait(ddb, arn, until=lambda d: d["ProcessedItemCount"] > 0)
    server.stop()
    server.start()
    ddb = server.ddb
    deadline = time.monotonic() + 60
    while len(scan(ddb, table)) < 4000:  # the server resumes it at start, asked or not
        assert time.monotonic() < deadline, len(scan(ddb, table))
        time.sleep(0.2)
    done = wait(ddb, arn)
    assert done["BulkOperationStatus"] == "COMPLETED"
    assert (done["ProcessedItemCount"], done["FailedItemCount"]) == (4000, 0)
    assert done["ProcessedInputBytes"] == done["TotalInputBytes"] == sum(
        os.path.getsize(server.s3 / INPUT / "restart" / name) for name in ("1.json", "2.json"))
    assert scan(ddb, table) == normalized(items)
    assert stream_events(server, table) == ["INSERT"] * 4000  # no item written twice


def test_a_table_deleted_mid_way_fails_the_operation(server):
    ddb = server.ddb
    table = events_table(ddb, index=False)
    server.put_object(INPUT, "deleted/1.json", json_lines(events(4000, seed=13)))
    arn = start(ddb, table, "deleted/", MaxWriteRequestUnits=1024)
    wait(ddb, arn, until=lambda d: d["ProcessedItemCount"] > 0)
    ddb.delete_table(TableName=table)
    done = wait(ddb, arn)
    assert (done["BulkOperationStatus"], done["FailureCode"], done["FailureMessage"]) == (
        "FAILED", "ResourceNotFoundException", f"Table {table} was deleted during the bulk operation")
    assert 0 < done["ProcessedItemCount"] < 4000
