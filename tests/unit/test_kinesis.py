"""Kinesis destinations without a Kinesis server: the record format
(shoal.kinesis.records), the operations' state machine over a real engine
(shoal.api.kinesis), and what a delivery round decides without an endpoint
(shoal.kinesis.delivery).  Delivery to a real Kinesis-compatible server is
tests/server/test_kinesis.py."""

from __future__ import annotations

import base64
import http.server
import os
import threading
import time

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, tables, ttl
from shoal.api.catalog import Catalog
from shoal.api.changelog import consumer_cursor, head_position
from shoal.api.kinesis import (
    CONSUMER,
    DISABLE_STATE,
    ENABLE_STATE,
    OPERATIONS,
    iter_destinations,
    load_destinations,
    save_destinations,
)
from shoal.errors import ResourceNotFoundException, ValidationException
from shoal.kinesis.delivery import LEASE_KEY, NO_PERMISSION, NOT_ACTIVE, OTHER_REGION, KinesisDelivery, KinesisSettings
from shoal.kinesis.records import build_record, creation_time, event_id, parse_stream_arn, partition_key

REGION = "us-east-1"
ARN = f"arn:aws:kinesis:{REGION}:{DEFAULT_ACCOUNT}:stream/orders"


@pytest.fixture
def ctx(engine):
    return Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))


def make_table(ctx, name="orders") -> dict:
    return tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})["TableDescription"]


def call(ctx, operation, **request):
    return OPERATIONS[operation](ctx, request)


def described(ctx, table="orders") -> list[dict]:
    return call(ctx, "DescribeKinesisStreamingDestination", TableName=table)["KinesisDataStreamDestinations"]


def set_status(ctx, status, arn=ARN, table="orders"):
    """Move an entry as the delivery job would (these tests have no Kinesis)."""
    with ctx.engine.write() as txn:
        for prefix, record in iter_destinations(txn):
            if record["table"] == table:
                for entry in record["destinations"]:
                    if entry["arn"] == arn:
                        entry["status"] = status
                save_destinations(txn, prefix, record)


# ---------------------------------------------------------------- records


def test_stream_arns_are_parsed_and_others_refused():
    assert parse_stream_arn(ARN) == (REGION, DEFAULT_ACCOUNT, "orders")
    assert parse_stream_arn("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b-c_d") == (
        "cn-north-1", "123456789012", "a.b-c_d")
    for wrong in ("arn:aws:dynamodb:us-east-1:000000000000:table/orders",
                  "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/c:1",
                  "arn:aws:kinesis:us-east-1:0000:stream/orders",
                  "arn:aws:firehose:us-east-1:000000000000:deliverystream/orders",
                  "x" * 40):
        assert parse_stream_arn(wrong) is None, wrong


def test_event_ids_and_partition_keys_are_stable():
    assert event_id("t1", 5) == event_id("t1", 5)
    assert len({event_id("t1", 5), event_id("t1", 6), event_id("t2", 5)}) == 3
    assert len(event_id("t1", 5)) == 36
    a = partition_key({"pk": {"S": "x"}, "sk": {"N": "1"}})
    assert a == partition_key({"sk": {"N": "1"}, "pk": {"S": "x"}})
    assert a != partition_key({"pk": {"S": "y"}, "sk": {"N": "1"}})
    assert len(a) == 32


def test_creation_time_follows_the_precision():
    assert creation_time(1_700_000_000_123, "MILLISECOND") == 1_700_000_000_123
    assert creation_time(1_700_000_000_123, "MICROSECOND") == 1_700_000_000_123_000


def test_a_modify_record_carries_both_images():
    change = {"keys": {"pk": {"S": "a"}}, "old": {"pk": {"S": "a"}, "n": {"N": "1"}},
              "new": {"pk": {"S": "a"}, "n": {"N": "2"}}}
    record = orjson.loads(build_record(change, 1_700_000_000_123, table_name="orders", table_id="t1",
                                       region=REGION, seq=9, precision="MILLISECOND"))
    assert record == {
        "awsRegion": REGION, "eventID": event_id("t1", 9), "eventName": "MODIFY", "userIdentity": None,
        "recordFormat": "application/json", "tableName": "orders",
        "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000_123, "Keys": {"pk": {"S": "a"}},
                     "NewImage": {"pk": {"S": "a"}, "n": {"N": "2"}}, "OldImage": {"pk": {"S": "a"}, "n": {"N": "1"}},
                     "SizeBytes": 3 + 6 + 6, "ApproximateCreationDateTimePrecision": "MILLISECOND"},
        "eventSource": "aws:dynamodb"}
    assert list(record) == ["awsRegion", "eventID", "eventName", "userIdentity", "recordFormat", "tableName",
                            "dynamodb", "eventSource"]


def test_a_time_to_live_deletion_names_the_service():
    # The change log keeps the identity the sweeper deletes with (shoal.api.ttl).
    change = {"keys": {"pk": {"S": "gone"}}, "old": {"pk": {"S": "gone"}, "exp": {"N": "1"}}, "new": None,
              "userIdentity": ttl.SERVICE_IDENTITY}
    record = orjson.loads(build_record(change, 1_700_000_000_123, table_name="orders", table_id="t1",
                                       region=REGION, seq=3, precision="MICROSECOND"))
    assert record["eventName"] == "REMOVE"
    assert record["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert record["dynamodb"] == {
        "ApproximateCreationDateTime": 1_700_000_000_123_000, "Keys": {"pk": {"S": "gone"}},
        "OldImage": {"pk": {"S": "gone"}, "exp": {"N": "1"}}, "SizeBytes": 6 + 6 + 5,
        "ApproximateCreationDateTimePrecision": "MICROSECOND"}


def head_position_of(ctx) -> int:
    with ctx.engine.read() as txn:
        return head_position(txn)


# ---------------------------------------------------------------- the operations


def test_enable_registers_the_change_log_consumer_at_the_head(ctx):
    make_table(ctx)
    items.put_item(ctx, {"TableName": "orders", "Item": {"pk": {"S": "early"}}})
    head = head_position_of(ctx)
    assert call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=ARN) == {
        "TableName": "orders", "StreamArn": ARN, "DestinationStatus": "ENABLING",
        "EnableKinesisStreamingConfiguration": {}}
    with ctx.engine.read() as txn:
        assert consumer_cursor(txn, CONSUMER) == head
        table = ctx.catalog.get(txn, REGION, "orders")
        (entry,) = load_destinations(txn, table.prefix)["destinations"]
    assert (entry["from"], entry["sent"], entry["until"], entry["gen"]) == (head, head, None, 1)


def test_states_and_their_errors(ctx):
    make_table(ctx)
    other = ARN.replace("orders", "audit")
    call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=ARN,
         EnableKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"})
    for arn in (ARN, other):
        with pytest.raises(ValidationException, match=f"^{ENABLE_STATE}$"):
            call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=arn)
    with pytest.raises(ValidationException, match=f"^{DISABLE_STATE}$"):
        call(ctx, "DisableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)
    set_status(ctx, "ACTIVE")
    assert described(ctx) == [{"StreamArn": ARN, "DestinationStatus": "ACTIVE",
                               "ApproximateCreationDateTimePrecision": "MICROSECOND"}]
    assert call(ctx, "DisableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)[
        "DestinationStatus"] == "DISABLING"
    # A second disable while DISABLING answers DISABLING again, as DynamoDB does.
    assert call(ctx, "DisableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)[
        "DestinationStatus"] == "DISABLING"
    with pytest.raises(ValidationException, match=f"^{ENABLE_STATE}$"):
        call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=other)
    set_status(ctx, "DISABLED")
    assert described(ctx) == [{"StreamArn": ARN, "DestinationStatus": "DISABLED"}]
    call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=other)
    assert described(ctx) == [{"StreamArn": other, "DestinationStatus": "ENABLING"},
                              {"StreamArn": ARN, "DestinationStatus": "DISABLED"}]


def test_a_table_being_filled_is_not_found_by_the_mutators(ctx):
    make_table(ctx)
    from shoal.api.catalog import update_description

    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, REGION, "orders")
        update_description(txn, REGION, "orders", table.table_id, lambda d: d.update(TableStatus="CREATING"))
    with pytest.raises(ResourceNotFoundException, match="^Requested resource not found: Table: orders not found$"):
        call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)
    assert described(ctx) == []


# ---------------------------------------------------------------- delivery decisions without an endpoint


def delivery(ctx) -> KinesisDelivery:
    return KinesisDelivery(ctx.engine, KinesisSettings(endpoint="", poll_s=0.01, lease_s=5))


def test_without_an_endpoint_enabling_fails_and_the_log_is_released(ctx):
    make_table(ctx)
    arns = [ARN, ARN.replace("us-east-1", "eu-west-1"), ARN.replace(DEFAULT_ACCOUNT, "123456789012"),
            f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/orders"]
    job = delivery(ctx)
    for arn in arns:
        call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=arn)
        assert job.round() is False
    assert described(ctx) == [
        {"StreamArn": arns[3], "DestinationStatus": "ENABLE_FAILED", "DestinationStatusDescription": NO_PERMISSION},
        {"StreamArn": arns[2], "DestinationStatus": "ENABLE_FAILED", "DestinationStatusDescription": NOT_ACTIVE},
        {"StreamArn": arns[1], "DestinationStatus": "ENABLE_FAILED", "DestinationStatusDescription": OTHER_REGION},
        {"StreamArn": arns[0], "DestinationStatus": "ENABLE_FAILED", "DestinationStatusDescription": NO_PERMISSION},
    ]
    with ctx.engine.read() as txn:
        assert consumer_cursor(txn, CONSUMER) is None  # nothing live: the log is not held


def test_updating_settles_and_disabling_ends_without_an_endpoint(ctx):
    make_table(ctx)
    job = delivery(ctx)
    call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)
    set_status(ctx, "ACTIVE")
    call(ctx, "UpdateKinesisStreamingDestination", TableName="orders", StreamArn=ARN,
         UpdateKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"})
    assert described(ctx)[0]["DestinationStatus"] == "UPDATING"
    job.round()
    assert described(ctx) == [{"StreamArn": ARN, "DestinationStatus": "ACTIVE",
                               "ApproximateCreationDateTimePrecision": "MICROSECOND"}]
    with ctx.engine.read() as txn:
        assert consumer_cursor(txn, CONSUMER) is not None  # live: the log is held for it
    call(ctx, "DisableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)
    job.round()
    assert described(ctx) == [{"StreamArn": ARN, "DestinationStatus": "DISABLED"}]
    with ctx.engine.read() as txn:
        assert consumer_cursor(txn, CONSUMER) is None


def test_a_deleted_tables_destinations_are_forgotten(ctx):
    make_table(ctx)
    job = delivery(ctx)
    call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)
    job.round()  # ENABLE_FAILED: nothing live
    tables.delete_table(ctx, {"TableName": "orders"})
    with ctx.engine.read() as txn:
        assert len(list(iter_destinations(txn))) == 1
    job.round()
    with ctx.engine.read() as txn:
        assert list(iter_destinations(txn)) == []
    make_table(ctx)
    assert described(ctx) == []


def test_another_live_workers_lease_keeps_a_round_idle(ctx):
    make_table(ctx)
    job = delivery(ctx)
    call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)
    lease = {"owner": "another-worker", "pid": os.getpid(), "expires": time.time() + 60}
    with ctx.engine.write() as txn:
        txn.put("meta", LEASE_KEY, orjson.dumps(lease))
    job.round()
    assert described(ctx) == [{"StreamArn": ARN, "DestinationStatus": "ENABLING"}]
    lease["expires"] = time.time() - 1  # expired: this worker takes over
    with ctx.engine.write() as txn:
        txn.put("meta", LEASE_KEY, orjson.dumps(lease))
    job.round()
    assert described(ctx)[0]["DestinationStatus"] == "ENABLE_FAILED"
    with ctx.engine.read() as txn:
        assert orjson.loads(txn.get("meta", LEASE_KEY))["owner"] == job.owner


# ---------------------------------------------------------------- delivery to a scripted Kinesis endpoint


class ScriptedKinesis:
    """A local HTTP endpoint speaking Kinesis's JSON 1.1 for the two calls
    delivery makes.  Each PutRecords answer comes from ``script`` while it
    has entries: an index list of records to refuse (with
    ProvisionedThroughputExceededException), or an HTTP status to answer
    with instead; then everything is accepted.  It keeps every request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.script: list = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                target = self.headers["X-Amz-Target"]
                owner.calls.append((target, body, self.headers["Authorization"]))
                status, answer = 200, {}
                if target == "Kinesis_20131202.DescribeStreamSummary":
                    answer = {"StreamDescriptionSummary": {
                        "StreamName": body["StreamName"], "StreamStatus": "ACTIVE", "RetentionPeriodHours": 24,
                        "StreamARN": ARN, "StreamCreationTimestamp": 1.7e9, "EnhancedMonitoring": [],
                        "OpenShardCount": 1}}
                elif target == "Kinesis_20131202.PutRecords":
                    step = owner.script.pop(0) if owner.script else []
                    if isinstance(step, int):
                        status, answer = step, {"__type": "InternalFailure", "message": "scripted"}
                    else:
                        results = [{"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
                                   if i in step else {"SequenceNumber": str(i), "ShardId": "shardId-000000000000"}
                                   for i in range(len(body["Records"]))]
                        answer = {"FailedRecordCount": len(step), "Records": results}
                data = orjson.dumps(answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def sent(self) -> list[list[str]]:
        """The pk of each record of each PutRecords, call by call."""
        return [[orjson.loads(base64.b64decode(r["Data"]))["dynamodb"]["Keys"]["pk"]["S"] for r in body["Records"]]
                for target, body, _ in self.calls if target.endswith("PutRecords")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSHOALTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    endpoint = ScriptedKinesis()
    yield endpoint
    endpoint.close()


def test_refused_records_are_sent_again_in_order(ctx, scripted):
    make_table(ctx)
    job = KinesisDelivery(ctx.engine, KinesisSettings(endpoint=scripted.url, backoff_s=0.0, lease_s=5))
    call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)
    job.round()
    assert described(ctx) == [{"StreamArn": ARN, "DestinationStatus": "ACTIVE"}]
    for k in "abcd":
        items.put_item(ctx, {"TableName": "orders", "Item": {"pk": {"S": k}}})
    scripted.script = [[2], 503]  # c refused (d stored after it), then a server fault
    for _ in range(3):
        job.round()
    # a and b were stored: c and d are sent again, after the fault, in order.
    assert scripted.sent() == [["a", "b", "c", "d"], ["c", "d"], ["c", "d"]]
    target, body, authorization = scripted.calls[-1]
    assert body["StreamName"] == "orders"
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDSHOALTEST/")
    assert "/us-east-1/kinesis/aws4_request" in authorization
    with ctx.engine.read() as txn:
        (entry,) = [e for _, r in iter_destinations(txn) for e in r["destinations"]]
        assert entry["sent"] == head_position(txn) == consumer_cursor(txn, CONSUMER)
    job.round()  # nothing more to send
    assert len(scripted.sent()) == 3


def test_a_failed_call_waits_out_its_back_off(ctx, scripted):
    make_table(ctx)
    job = KinesisDelivery(ctx.engine, KinesisSettings(endpoint=scripted.url, backoff_s=30.0, lease_s=5))
    call(ctx, "EnableKinesisStreamingDestination", TableName="orders", StreamArn=ARN)
    job.round()
    items.put_item(ctx, {"TableName": "orders", "Item": {"pk": {"S": "a"}}})
    scripted.script = [500]
    job.round()
    job.round()  # within the back-off: no call
    assert scripted.sent() == [["a"]]
    job.clock = lambda: time.time() + 31
    job.round()
    assert scripted.sent() == [["a"], ["a"]]
