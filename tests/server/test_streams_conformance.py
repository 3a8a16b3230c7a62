"""DynamoDB Streams where the differential sweep (``bench/conformance_streams.py``)
found Shoal wrong or pinned an answer Shoal and DynamoDB Local agree on:
through boto3 against a real server, exact values and errors, and the server
still serving after each refusal."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_client, unique_name

INVALID_ITERATOR = ("ValidationException", "Invalid ShardIterator")


@pytest.fixture(scope="module")
def ds(shoal):
    return make_client(shoal.url, "dynamodbstreams")


def _error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def _writes(ddb, table: str) -> None:
    """The sweep's writes: records of each kind, and writes DynamoDB writes no record for."""
    k1 = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    k2 = {"pk": {"S": "b"}, "sk": {"N": "2.50"}}
    ddb.put_item(TableName=table, Item={**k1, "x": {"S": "one"}, "n": {"N": "1.0"}})
    ddb.put_item(TableName=table, Item={**k1, "x": {"S": "one"}, "n": {"N": "1"}})  # changes nothing
    ddb.update_item(TableName=table, Key=k1, UpdateExpression="SET x = :x",
                    ExpressionAttributeValues={":x": {"S": "one"}})  # changes nothing
    ddb.update_item(TableName=table, Key=k1, UpdateExpression="SET x = :x ADD c :one",
                    ExpressionAttributeValues={":x": {"S": "two"}, ":one": {"N": "1"}})
    ddb.put_item(TableName=table, Item={**k2, "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}]}}},
                                        "ss": {"SS": ["z", "a"]}, "bs": {"BS": [b"\x01", b"\x00"]},
                                        "b": {"B": b"\x00\x01\x02"}, "ns": {"NS": ["10", "9", "1e2"]}})
    ddb.delete_item(TableName=table, Key={"pk": {"S": "nobody"}, "sk": {"N": "0"}})  # no item
    ddb.update_item(TableName=table, Key=k2, UpdateExpression="REMOVE nothere")  # changes nothing
    ddb.update_item(TableName=table, Key={"pk": {"S": "c"}, "sk": {"N": "3"}},
                    UpdateExpression="REMOVE nothere")  # creates no item
    ddb.update_item(TableName=table, Key={"pk": {"S": "d"}, "sk": {"N": "4"}})  # the key alone
    ddb.delete_item(TableName=table, Key=k1)
    ddb.put_item(TableName=table, Item={**k1, "x": {"S": "three"}})
    ddb.update_item(TableName=table, Key=k2, UpdateExpression="DELETE ss :a",
                    ExpressionAttributeValues={":a": {"SS": ["a"]}})


def _streamed(ddb, view: str) -> str:
    name = unique_name("sc")
    desc = ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
    _writes(ddb, name)
    return desc["TableDescription"]["LatestStreamArn"]


def _iterator(ds, arn: str) -> str:
    shard = ds.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    return ds.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]


# Each record's event, SizeBytes and images, as Shoal and DynamoDB Local both answer them
# (the sweep of 2026-12-07): the puts and updates that change nothing and the delete of a
# missing item write no record.
EXPECTED = {
    "KEYS_ONLY": [("INSERT", 7, []), ("MODIFY", 7, []), ("INSERT", 8, []), ("INSERT", 7, []),
                  ("REMOVE", 7, []), ("INSERT", 7, []), ("MODIFY", 8, [])],
    "NEW_IMAGE": [("INSERT", 21, ["NewImage"]), ("MODIFY", 24, ["NewImage"]), ("INSERT", 49, ["NewImage"]),
                  ("INSERT", 14, ["NewImage"]), ("REMOVE", 7, []), ("INSERT", 20, ["NewImage"]),
                  ("MODIFY", 48, ["NewImage"])],
    "OLD_IMAGE": [("INSERT", 7, []), ("MODIFY", 21, ["OldImage"]), ("INSERT", 8, []), ("INSERT", 7, []),
                  ("REMOVE", 24, ["OldImage"]), ("INSERT", 7, []), ("MODIFY", 49, ["OldImage"])],
    "NEW_AND_OLD_IMAGES": [("INSERT", 21, ["NewImage"]), ("MODIFY", 38, ["NewImage", "OldImage"]),
                           ("INSERT", 49, ["NewImage"]), ("INSERT", 14, ["NewImage"]),
                           ("REMOVE", 24, ["OldImage"]), ("INSERT", 20, ["NewImage"]),
                           ("MODIFY", 89, ["NewImage", "OldImage"])],
}
KEYS = [("a", "1"), ("a", "1"), ("b", "2.5"), ("d", "4"), ("a", "1"), ("a", "1"), ("b", "2.5")]


@pytest.mark.parametrize("view", sorted(EXPECTED))
def test_records_of_each_view_type(ddb, ds, view):
    arn = _streamed(ddb, view)
    records = ds.get_records(ShardIterator=_iterator(ds, arn))["Records"]
    shapes = [(r["eventName"], r["dynamodb"]["SizeBytes"], sorted(k for k in r["dynamodb"] if k.endswith("Image")))
              for r in records]
    assert shapes == EXPECTED[view]
    assert [(r["dynamodb"]["Keys"]["pk"]["S"], r["dynamodb"]["Keys"]["sk"]["N"]) for r in records] == KEYS
    assert {r["dynamodb"]["StreamViewType"] for r in records} == {view}
    assert {(r["eventSource"], r["eventVersion"]) for r in records} == {("aws:dynamodb", "1.1")}
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(set(sequence))
    if view == "NEW_AND_OLD_IMAGES":
        assert records[1]["dynamodb"]["OldImage"] == {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"S": "one"},
                                                      "n": {"N": "1"}}
        assert records[1]["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"S": "two"},
                                                      "n": {"N": "1"}, "c": {"N": "1"}}
        assert records[6]["dynamodb"]["NewImage"]["ss"] == {"SS": ["z"]}
        assert records[2]["dynamodb"]["NewImage"]["ns"] == {"NS": ["9", "10", "100"]}


def test_an_altered_shard_iterator_is_refused(ddb, ds):
    arn = _streamed(ddb, "KEYS_ONLY")
    iterator = _iterator(ds, arn)
    readable, _, token = iterator.rpartition("|")
    altered = [
        iterator + "A",  # base64 decoders stop at the padding: the payload still decodes
        iterator + "====",
        iterator + "AAAA",  # one more block of base64
        iterator[:-1],
        readable.replace("/stream/", "/stream/x") + "|" + token,  # the readable part edited
        "x" + iterator,
    ]
    for text in altered:
        assert _error(ds.get_records, ShardIterator=text) == INVALID_ITERATOR, text
    # The iterator as issued still reads, and the server serves on.
    assert len(ds.get_records(ShardIterator=iterator)["Records"]) == 7
