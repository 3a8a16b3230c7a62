"""DynamoDB's metrics that issue 17 added to the first set, through a real
``shoal serve`` (two workers) and boto3: DynamoDB Streams' GetRecords
(ReturnedRecordsCount, ReturnedBytes, its SuccessfulRequestLatency) and a
global secondary index's backfill (OnlineIndexPercentageProgress,
OnlineIndexConsumedWriteCapacity).  Each test works in a region of its own."""

from __future__ import annotations

import datetime
import time

import boto3
import botocore.config
import pytest

from tests.shoal_process import ShoalProcess

NO_RETRY = botocore.config.Config(retries={"max_attempts": 1})
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("dynamodb-metrics"), "--workers", "2").start()
    yield proc
    proc.stop()


def clients(server, region):
    kw = dict(endpoint_url=server.url, region_name=region, aws_access_key_id="any", aws_secret_access_key="any",
              config=NO_RETRY)
    return boto3.client("dynamodb", **kw), boto3.client("dynamodbstreams", **kw), boto3.client("cloudwatch", **kw)


def totals(cw, metric, dims, statistics=("Sum", "SampleCount", "Minimum", "Maximum")):
    """The statistics of the last half hour, as one datapoint (or None)."""
    now = datetime.datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace="AWS/DynamoDB", MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - datetime.timedelta(minutes=30), EndTime=now + datetime.timedelta(minutes=5), Period=3600,
        Statistics=list(statistics))["Datapoints"]
    assert len(points) <= 1
    return points[0] if points else None


def eventually(read, check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r}")
        time.sleep(0.2)


def test_getrecords_reports_the_records_and_bytes_it_returned_by_stream_label(server):
    ddb, streams, cw = clients(server, "ap-south-1")
    description = ddb.create_table(
        TableName="events", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})["TableDescription"]
    label, arn = description["LatestStreamLabel"], description["LatestStreamArn"]
    for i in range(3):
        ddb.put_item(TableName="events", Item={"id": {"S": f"e{i}"}, "v": {"N": str(i)}})
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    sizes, seen = [], 0
    for _ in range(10):  # until the three records have come back (stream records are made in the background)
        answer = streams.get_records(ShardIterator=iterator, Limit=2)
        sizes.append(int(answer["ResponseMetadata"]["HTTPHeaders"]["content-length"]))
        seen += len(answer["Records"])
        iterator = answer["NextShardIterator"]
        if seen == 3:
            break
        time.sleep(0.2)
    assert seen == 3
    dims = {"TableName": "events", "Operation": "GetRecords", "StreamLabel": label}
    records = eventually(lambda: totals(cw, "ReturnedRecordsCount", dims),
                         lambda p: p is not None and p["SampleCount"] == len(sizes))
    assert (records["Sum"], records["Maximum"], records["Unit"]) == (3.0, 2.0, "Count")
    size = totals(cw, "ReturnedBytes", dims)
    assert (size["Sum"], size["SampleCount"], size["Unit"]) == (float(sum(sizes)), len(sizes), "Bytes")
    latency = eventually(lambda: totals(cw, "SuccessfulRequestLatency", {"TableName": "events",
                                                                         "Operation": "GetRecords"}),
                         lambda p: p is not None and p["SampleCount"] == len(sizes))
    assert latency["Unit"] == "Milliseconds" and 0 < latency["Minimum"] <= latency["Maximum"] < 5000
    listed = cw.list_metrics(Namespace="AWS/DynamoDB", MetricName="ReturnedBytes")["Metrics"]
    assert [sorted((d["Name"], d["Value"]) for d in m["Dimensions"]) for m in listed] == [
        [("Operation", "GetRecords"), ("StreamLabel", label), ("TableName", "events")]]


def test_a_global_secondary_index_backfill_reports_its_progress_and_the_writes_it_consumed(server):
    ddb, _, cw = clients(server, "ap-southeast-2")
    ddb.create_table(TableName="catalog", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    for start in range(0, 1200, 25):  # 1,200 items, 1,100 of them with the index's key
        ddb.batch_write_item(RequestItems={"catalog": [
            {"PutRequest": {"Item": {"id": {"S": f"i{n:05d}"}, "v": {"S": "x" * 10},
                                     **({"kind": {"S": f"k{n % 7}"}} if n % 12 else {})}}}
            for n in range(start, start + 25)]})
    ddb.update_table(TableName="catalog", AttributeDefinitions=[{"AttributeName": "kind", "AttributeType": "S"}],
                     GlobalSecondaryIndexUpdates=[{"Create": {
                         "IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                         "Projection": {"ProjectionType": "ALL"}}}])
    eventually(lambda: ddb.describe_table(TableName="catalog")["Table"]["GlobalSecondaryIndexes"][0]["IndexStatus"],
               lambda status: status == "ACTIVE", timeout=30)
    dims = {"TableName": "catalog", "GlobalSecondaryIndexName": "by_kind"}
    # the backfill looks at 500 items a step: 500 and 1,000 of 1,200, then done
    progress = eventually(lambda: totals(cw, "OnlineIndexPercentageProgress", dims),
                          lambda p: p is not None and p["Maximum"] == 100.0)
    assert (progress["SampleCount"], progress["Minimum"]) == (3, pytest.approx(500 / 1200 * 100))
    consumed = totals(cw, "OnlineIndexConsumedWriteCapacity", dims)
    assert consumed["Sum"] == 1100.0  # one unit for each entry written (each well under 1 KB)
    # DynamoDB does not count the backfill in the index's own consumed capacity
    assert totals(cw, "ConsumedWriteCapacityUnits", dims) is None


def test_a_strongly_consistent_get_item_of_a_strong_global_table_reports_its_read_units(tmp_path):
    """MRSC: a strongly consistent GetItem is a round between regions, and
    consumes read units like any strongly consistent GetItem (one per 4 KB)."""
    from tests.server.test_mrsc import REGIONS, Regions, _strong_table

    class WithMetrics(Regions):
        def start(self, i: int, *extra: str) -> None:
            peers = [f"--peer={region}=http://127.0.0.1:{port}"
                     for region, port in zip(REGIONS, self.ports) if region != REGIONS[i]]
            self.procs[i] = ShoalProcess(f"{self.base}/region{i}", "--region", REGIONS[i], *peers,
                                         "--workers", "1", port=self.ports[i]).start()

    trio = WithMetrics(str(tmp_path))
    try:
        for i in range(3):
            trio.start(i)
        name = "mrsc_metered"
        _strong_table(trio, name)
        ddb, _, cw = clients(trio.procs[1], REGIONS[1])
        trio.client(0).put_item(TableName=name, Item={"pk": {"S": "big"}, "v": {"S": "x" * 9000}})
        for _ in range(2):
            got = ddb.get_item(TableName=name, Key={"pk": {"S": "big"}}, ConsistentRead=True,
                               ReturnConsumedCapacity="TOTAL")
            assert got["ConsumedCapacity"] == {"TableName": name, "CapacityUnits": 3.0}
        point = eventually(lambda: totals(cw, "ConsumedReadCapacityUnits", {"TableName": name}),
                           lambda p: p is not None and p["Sum"] >= 6.0)
        assert (point["Sum"], point["SampleCount"]) == (6.0, 2.0)
    finally:
        trio.stop()


def test_failed_conditional_writes_consume_the_existing_items_write_units(server):
    """DynamoDB: a write whose condition evaluates to false "still consumes write
    capacity from the table": the existing item's size in 1 KB units, or one unit
    when there is none (not the new item's size); no index is written, so none
    is charged.  ConditionalCheckFailedRequests counts each; the error is unchanged."""
    ddb, _, cw = clients(server, "eu-north-1")
    ddb.create_table(
        TableName="guarded", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        BillingMode="PAY_PER_REQUEST")
    # 2 + 1 + 1 + 1 + 1 + 2,500 = 2,506 bytes: three 1 KB write units (and one for its index entry)
    item = {"id": {"S": "a"}, "g": {"S": "x"}, "v": {"S": "x" * 2500}}
    put = ddb.put_item(TableName="guarded", Item=item, ReturnConsumedCapacity="INDEXES")
    assert put["ConsumedCapacity"]["Table"] == {"CapacityUnits": 3.0}
    big = {"id": {"S": "missing"}, "v": {"S": "y" * 5000}}  # a 5 KB item that never gets written

    def refused(call, **request):
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as info:
            call(TableName="guarded", ReturnConsumedCapacity="TOTAL", **request)
        response = info.value.response
        assert response["Error"] == {"Code": "ConditionalCheckFailedException",
                                     "Message": "The conditional request failed"}
        assert "ConsumedCapacity" not in response  # DynamoDB's error tells nothing of the units
        return response

    for _ in range(4):  # the item exists: 3 units each
        refused(ddb.put_item, Item=item, ConditionExpression="attribute_not_exists(id)")
    for _ in range(2):
        answer = refused(ddb.update_item, Key={"id": {"S": "a"}}, UpdateExpression="SET w = :one",
                         ConditionExpression="v = :one", ExpressionAttributeValues={":one": {"S": "1"}},
                         ReturnValuesOnConditionCheckFailure="ALL_OLD")
        assert answer["Item"] == item
    refused(ddb.delete_item, Key={"id": {"S": "a"}}, Expected={"v": {"Exists": False}})  # legacy form: 3 units
    for _ in range(3):  # no item: one unit each, whatever the write would have been
        refused(ddb.delete_item, Key={"id": {"S": "missing"}}, ConditionExpression="attribute_exists(id)")
    refused(ddb.put_item, Item=big, ConditionExpression="attribute_exists(id)")
    assert "Item" not in ddb.get_item(TableName="guarded", Key={"id": {"S": "missing"}})
    assert ddb.get_item(TableName="guarded", Key={"id": {"S": "a"}})["Item"] == item

    failures = eventually(lambda: totals(cw, "ConditionalCheckFailedRequests", {"TableName": "guarded"}),
                          lambda p: p is not None and p["Sum"] == 11.0)
    assert failures["Unit"] == "Count"
    consumed = eventually(lambda: totals(cw, "ConsumedWriteCapacityUnits", {"TableName": "guarded"}),
                          lambda p: p is not None and p["Sum"] >= 28.0)
    # the put's 3, then 4 * 3 + 2 * 3 + 3 (the item exists) and 3 * 1 + 1 (it does not): one sample a request
    assert (consumed["Sum"], consumed["SampleCount"], consumed["Minimum"], consumed["Maximum"]) == (28.0, 12, 1, 3)
    index = totals(cw, "ConsumedWriteCapacityUnits", {"TableName": "guarded", "GlobalSecondaryIndexName": "by_g"})
    assert index["Sum"] == 1.0  # the successful put's index entry alone
    assert totals(cw, "UserErrors", {}) is None  # conditional failures are not user errors
