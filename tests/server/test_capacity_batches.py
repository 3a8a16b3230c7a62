"""BatchWriteItem and BatchGetItem on provisioned tables of one unit a
second, through boto3 against a real server: a table's part is served item
by item until its throughput is spent, the rest answered unprocessed in the
order sent, another table's part in full; the batch is refused only when
none of its items can be processed (the API Reference's rule), with
DynamoDB's message and ThrottlingReasons; the server serves on.

Each table starts with 300 units of burst; a large item spends all but a
few, so what the batch may process is those few and what the table earned
since (one a second: a slow run may see a unit or two more)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.server.test_capacity import TABLE_MESSAGE, make_client, provisioned
from tests.shoal_process import ShoalProcess


@pytest.fixture(scope="module")
def ddb(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("capacity-batches"), "--workers", "1").start()
    yield make_client(proc.url)
    proc.stop()


def big_item(units: int) -> dict:
    """An item of exactly ``units`` 1 KB write units (ceil(units / 4) 4 KB read blocks)."""
    return {"pk": {"S": "big"}, "sk": {"N": "0"}, "blob": {"S": "x" * (units * 1024 - 100)}}


def until_refused(call, left: list) -> dict:
    """Send ``call(left)`` again while some of it is processed each time; the refusal's response.
    Each answer must have processed something: a batch that processes nothing is refused."""
    for _ in range(len(left)):
        try:
            left = call(left)
        except ClientError as exc:
            return exc.response
    raise AssertionError(f"never refused; still unprocessed: {left}")


def test_a_batch_write_is_processed_until_the_throughput_is_spent(ddb):
    table, fresh = provisioned(ddb, 5, 1), provisioned(ddb, 5, 5)
    ddb.put_item(TableName=table, Item=big_item(290))  # 10 of the 300 burst units left
    puts = [{"PutRequest": {"Item": {"pk": {"S": "p"}, "sk": {"N": str(i)}}}} for i in range(22)]
    others = [{"PutRequest": {"Item": {"pk": {"S": "p"}, "sk": {"N": str(i)}}}} for i in range(3)]
    answer = ddb.batch_write_item(RequestItems={table: puts, fresh: others}, ReturnConsumedCapacity="TOTAL")
    left = answer["UnprocessedItems"][table]
    done = len(puts) - len(left)
    assert 10 <= done <= 13, done
    assert answer["UnprocessedItems"] == {table: puts[done:]}  # the rest, as sent, in order
    assert {c["TableName"]: c["CapacityUnits"] for c in answer["ConsumedCapacity"]} == {
        table: float(done), fresh: 3.0}
    written = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": "p"}})["Items"]
    assert [int(item["sk"]["N"]) for item in written] == list(range(done))

    def again(left: list) -> list:
        unprocessed = ddb.batch_write_item(RequestItems={table: left})["UnprocessedItems"].get(table, [])
        assert len(unprocessed) < len(left)
        return unprocessed

    refusal = until_refused(again, left)
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    assert refusal["Error"] == {"Code": "ProvisionedThroughputExceededException", "Message": TABLE_MESSAGE}
    assert refusal["ThrottlingReasons"] == [{"reason": "TableWriteProvisionedThroughputExceeded", "resource": arn}]
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"N": "0"}})["Item"]  # reads go on


def test_a_batch_get_is_processed_until_the_throughput_is_spent(ddb):
    table, fresh = provisioned(ddb, 1, 1000), provisioned(ddb, 5, 5)
    ddb.put_item(TableName=table, Item=big_item(392))  # 98 blocks of 4 KB
    key = {"pk": {"S": "big"}, "sk": {"N": "0"}}
    for _ in range(3):  # 294 of the 300 burst units, read consistently
        ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    keys = [{"pk": {"S": "k"}, "sk": {"N": str(i)}} for i in range(20)]  # none there: a unit each, consistent
    ddb.put_item(TableName=fresh, Item=keys[0])
    answer = ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True},
                                              fresh: {"Keys": keys}}, ReturnConsumedCapacity="TOTAL")
    left = answer["UnprocessedKeys"][table]["Keys"]
    done = len(keys) - len(left)
    assert 6 <= done <= 9, done
    assert answer["UnprocessedKeys"] == {table: {"Keys": keys[done:], "ConsistentRead": True}}
    assert answer["Responses"] == {table: [], fresh: [keys[0]]}
    assert {c["TableName"]: c["CapacityUnits"] for c in answer["ConsumedCapacity"]} == {
        table: float(done), fresh: 10.0}

    def again(left: list) -> list:
        unprocessed = ddb.batch_get_item(RequestItems={table: {"Keys": left, "ConsistentRead": True}})
        rest = unprocessed["UnprocessedKeys"].get(table, {}).get("Keys", [])
        assert len(rest) < len(left)
        return rest

    refusal = until_refused(again, left)
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    assert refusal["Error"] == {"Code": "ProvisionedThroughputExceededException", "Message": TABLE_MESSAGE}
    assert refusal["ThrottlingReasons"] == [{"reason": "TableReadProvisionedThroughputExceeded", "resource": arn}]
    ddb.put_item(TableName=table, Item=keys[1])  # writes go on
    assert ddb.batch_get_item(RequestItems={fresh: {"Keys": keys[:1]}})["Responses"] == {fresh: [keys[0]]}
