"""What failed requests that name no table consumed, in CloudWatch's
ConsumedWriteCapacityUnits, through a real ``shoal serve`` (two workers) and
boto3: a cancelled TransactWriteItems or ExecuteTransaction, and a PartiQL
write whose condition fails, consume the write units DynamoDB charges them
(the capacity enforcement charges the same ones, docs/capacity.md), while
their errors count in UserErrors as before and their latency nowhere.  A
PartiQL UPDATE or DELETE whose condition fails counts in its table's
ConditionalCheckFailedRequests, as the Developer Guide's metrics page says,
and not in UserErrors.

Each test works in a region of its own and on tables of its own, so that a
table's sum is one scenario's."""

from __future__ import annotations

import datetime
import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tests.shoal_process import ShoalProcess

NO_RETRY = botocore.config.Config(retries={"max_attempts": 1})
UTC = datetime.timezone.utc
# 2 + 1 + 1 + 2,500 = 2,504 bytes: three 1 KB write units
BIG = {"id": {"S": "a"}, "v": {"S": "x" * 2500}}
SMALL = {"id": {"S": "s"}}  # 3 bytes: one unit


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("failed-units"), "--workers", "2").start()
    yield proc
    proc.stop()


def clients(server, region):
    kw = dict(endpoint_url=server.url, region_name=region, aws_access_key_id="any", aws_secret_access_key="any",
              config=NO_RETRY)
    return boto3.client("dynamodb", **kw), boto3.client("cloudwatch", **kw)


def make_table(ddb, name):
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName=name, Item=BIG)
    ddb.put_item(TableName=name, Item=SMALL)


def totals(cw, metric, dims):
    """Sum, SampleCount, Minimum and Maximum of the last half hour, as one datapoint (or None)."""
    now = datetime.datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace="AWS/DynamoDB", MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - datetime.timedelta(minutes=30), EndTime=now + datetime.timedelta(minutes=5), Period=3600,
        Statistics=["Sum", "SampleCount", "Minimum", "Maximum"])["Datapoints"]
    assert len(points) <= 1
    return points[0] if points else None


def settled(cw, metric, dims, expected_sum, timeout=15.0):
    """The metric's totals once its Sum reached ``expected_sum`` (figures are flushed every second)."""
    deadline = time.monotonic() + timeout
    while True:
        point = totals(cw, metric, dims)
        if point is not None and point["Sum"] >= expected_sum:
            return point
        if time.monotonic() > deadline:
            raise AssertionError(f"{metric} {dims}: still {point!r}")
        time.sleep(0.2)


def refused(call, code, **request):
    with pytest.raises(ClientError) as info:
        call(**request)
    assert info.value.response["Error"]["Code"] == code
    return info.value.response


def written(cw, table, expected):
    """(Sum, SampleCount, Minimum, Maximum) of the table's ConsumedWriteCapacityUnits."""
    point = settled(cw, "ConsumedWriteCapacityUnits", {"TableName": table}, expected)
    return point["Sum"], point["SampleCount"], point["Minimum"], point["Maximum"]


def test_a_cancelled_transact_write_items_consumes_two_writes_of_each_item(server):
    """The Developer Guide: a transaction performs two underlying writes of
    each item, consumed even when it is cancelled; nothing is written, so
    each item counts its existing size (or one unit), twice, ConditionCheck
    included (a write, as DynamoDB bills it).  A transaction cancelled
    before its items were read (a key of the wrong schema) consumes nothing."""
    ddb, cw = clients(server, "ca-central-1")
    make_table(ddb, "orders")
    make_table(ddb, "stock")
    items = [{"Put": {"TableName": "orders", "Item": BIG, "ConditionExpression": "attribute_not_exists(id)"}},
             {"ConditionCheck": {"TableName": "orders", "Key": {"id": {"S": "missing"}},
                                 "ConditionExpression": "attribute_exists(id)"}},
             {"Delete": {"TableName": "stock", "Key": {"id": {"S": "s"}}}}]
    for _ in range(2):
        answer = refused(ddb.transact_write_items, "TransactionCanceledException", TransactItems=items,
                         ReturnConsumedCapacity="TOTAL")
        assert [r["Code"] for r in answer["CancellationReasons"]] == ["ConditionalCheckFailed",
                                                                      "ConditionalCheckFailed", "None"]
    # a Put without the key attribute: cancelled once its key is checked, before any item is read
    refused(ddb.transact_write_items, "TransactionCanceledException", TransactItems=[
        {"Put": {"TableName": "orders", "Item": {"other": {"S": "x"}}}}])
    done = ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "stock", "Item": {"id": {"S": "t"}}}}],
                                    ReturnConsumedCapacity="TOTAL")
    assert done["ConsumedCapacity"] == [{"TableName": "stock", "CapacityUnits": 2.0}]
    assert ddb.get_item(TableName="stock", Key={"id": {"S": "s"}})["Item"] == SMALL  # not deleted

    # orders: its two puts (3 + 1), then 2 * 3 (the existing item) + 2 * 1 (none) per cancelled transaction
    assert written(cw, "orders", 20.0) == (20.0, 4, 1.0, 8.0)
    # stock: its two puts, 2 * 1 per cancelled transaction, and the transaction that succeeded (2 * 1)
    assert written(cw, "stock", 10.0) == (10.0, 5, 1.0, 3.0)
    assert totals(cw, "ConsumedReadCapacityUnits", {"TableName": "orders"}) is None  # a ConditionCheck is a write
    # the three cancellations are user errors, as before; no item was in conflict
    assert settled(cw, "UserErrors", {}, 3.0)["Sum"] == 3.0
    assert totals(cw, "TransactionConflict", {"TableName": "orders"}) is None
    # the latency of the one that succeeded, on the one table it wrote
    latency = totals(cw, "SuccessfulRequestLatency", {"TableName": "stock", "Operation": "TransactWriteItems"})
    assert latency["SampleCount"] == 1
    assert totals(cw, "SuccessfulRequestLatency", {"TableName": "orders", "Operation": "TransactWriteItems"}) is None


def test_partiql_writes_whose_condition_fails_consume_write_units(server):
    """ExecuteStatement: a duplicate INSERT and a DELETE whose condition fails
    consume the existing item's units (3), an UPDATE of a missing item one
    unit; a cancelled ExecuteTransaction two writes of each item; a
    BatchExecuteStatement member that fails its own units, beside the
    members that succeed.  The UPDATE and the DELETE count in the table's
    ConditionalCheckFailedRequests (the duplicate INSERT is a user error)."""
    ddb, cw = clients(server, "sa-east-1")
    for name in ("single", "together", "batched"):
        make_table(ddb, name)

    answer = refused(ddb.execute_statement, "DuplicateItemException",
                     Statement="INSERT INTO single VALUE {'id': 'a', 'v': 'new'}")
    assert answer["Error"]["Message"] == "Duplicate primary key exists in table"
    refused(ddb.execute_statement, "ConditionalCheckFailedException",
            Statement="UPDATE single SET w = 1 WHERE id = 'missing'")
    refused(ddb.execute_statement, "ConditionalCheckFailedException",
            Statement="DELETE FROM single WHERE id = 'a' AND v = 'other'")
    assert ddb.get_item(TableName="single", Key={"id": {"S": "a"}})["Item"] == BIG

    answer = refused(ddb.execute_transaction, "TransactionCanceledException", TransactStatements=[
        {"Statement": "INSERT INTO together VALUE {'id': 'a'}"},
        {"Statement": "UPDATE together SET w = 1 WHERE id = 's'"}])
    assert answer["CancellationReasons"] == [
        {"Code": "ValidationError", "Message": "Duplicate primary key exists in table"}, {"Code": "None"}]
    assert ddb.get_item(TableName="together", Key={"id": {"S": "s"}})["Item"] == SMALL

    batch = ddb.batch_execute_statement(Statements=[
        {"Statement": "INSERT INTO batched VALUE {'id': 'a'}"},
        {"Statement": "INSERT INTO batched VALUE {'id': 'n1'}"}])["Responses"]
    assert batch[0]["Error"]["Code"] == "DuplicateItem" and "Error" not in batch[1]

    # the puts (3 + 1), then 3 (duplicate INSERT) + 1 (UPDATE of nothing) + 3 (DELETE's condition)
    assert written(cw, "single", 11.0) == (11.0, 5, 1.0, 3.0)
    # the puts, then 2 * 3 + 2 * 1 for the cancelled transaction, in one sample
    assert written(cw, "together", 12.0) == (12.0, 3, 1.0, 8.0)
    # the puts, then the failed INSERT's 3 and the new item's 1
    assert written(cw, "batched", 8.0) == (8.0, 4, 1.0, 3.0)
    # the UPDATE of nothing and the DELETE whose condition failed, on the table they name
    failed = settled(cw, "ConditionalCheckFailedRequests", {"TableName": "single"}, 2.0)
    assert (failed["Sum"], failed["SampleCount"]) == (2.0, 2)
    assert totals(cw, "ConditionalCheckFailedRequests", {"TableName": "together"}) is None
    # user errors as before: the duplicate INSERT and the cancelled transaction, not the conditions
    assert settled(cw, "UserErrors", {}, 2.0)["Sum"] == 2.0
    assert totals(cw, "SuccessfulRequestLatency", {"TableName": "single", "Operation": "ExecuteStatement"}) is None
    latency = totals(cw, "SuccessfulRequestLatency", {"TableName": "batched", "Operation": "BatchExecuteStatement"})
    assert latency["SampleCount"] == 1
    # the server still serves the tables
    assert ddb.get_item(TableName="batched", Key={"id": {"S": "n1"}})["Item"] == {"id": {"S": "n1"}}
