"""BatchGetItem and BatchWriteItem through boto3."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def put(pk, sk, **attrs):
    return {"PutRequest": {"Item": {"pk": {"S": pk}, "sk": {"N": str(sk)}, **attrs}}}


def test_batch_write_then_batch_get(ddb, table):
    out = ddb.batch_write_item(RequestItems={table: [put("u1", i, n={"N": str(i)}) for i in range(25)]})
    assert out["UnprocessedItems"] == {}
    keys = [{"pk": {"S": "u1"}, "sk": {"N": str(i)}} for i in range(0, 25, 2)]
    got = ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ProjectionExpression": "n"}})
    assert sorted(int(i["n"]["N"]) for i in got["Responses"][table]) == list(range(0, 25, 2))
    assert got["UnprocessedKeys"] == {}


def test_batch_write_deletes(ddb, table):
    ddb.batch_write_item(RequestItems={table: [put("u2", 1), put("u2", 2)]})
    ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": {"pk": {"S": "u2"}, "sk": {"N": "1"}}}}]})
    got = ddb.batch_get_item(RequestItems={table: {"Keys": [
        {"pk": {"S": "u2"}, "sk": {"N": "1"}}, {"pk": {"S": "u2"}, "sk": {"N": "2"}}]}})
    assert [i["sk"]["N"] for i in got["Responses"][table]] == ["2"]


def test_batch_write_rejects_duplicates_and_writes_nothing(ddb, table):
    with pytest.raises(ClientError) as info:
        ddb.batch_write_item(RequestItems={table: [put("u3", 1), put("u3", 1)]})
    assert info.value.response["Error"]["Message"] == "Provided list of item keys contains duplicates"
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "u3"}, "sk": {"N": "1"}})


def test_batch_write_too_many(ddb, table):
    with pytest.raises(ClientError) as info:
        ddb.batch_write_item(RequestItems={table: [put("u4", i) for i in range(26)]})
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_batch_get_duplicates_and_too_many(ddb, table):
    key = {"pk": {"S": "x"}, "sk": {"N": "1"}}
    with pytest.raises(ClientError) as info:
        ddb.batch_get_item(RequestItems={table: {"Keys": [key, key]}})
    assert info.value.response["Error"]["Message"] == "Provided list of item keys contains duplicates"
    keys = [{"pk": {"S": "x"}, "sk": {"N": str(i)}} for i in range(101)]
    with pytest.raises(ClientError) as info:
        ddb.batch_get_item(RequestItems={table: {"Keys": keys}})
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_batch_on_missing_table(ddb):
    with pytest.raises(ClientError) as info:
        ddb.batch_write_item(RequestItems={"missing_table": [put("a", 1)]})
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_batch_write_keeps_each_tables_count_and_size(ddb, table, hash_table):
    """One BatchWriteItem over two tables that creates, overwrites and deletes:
    DescribeTable's ItemCount and TableSizeBytes follow every write, and the
    next single write still adds to them."""
    ddb.batch_write_item(RequestItems={table: [put("c", i, v={"S": "x" * 10}) for i in range(3)]})
    ddb.batch_write_item(RequestItems={
        table: [
            put("c", 0, v={"S": "y" * 30}),  # overwritten: the size grows by 20
            {"DeleteRequest": {"Key": {"pk": {"S": "c"}, "sk": {"N": "1"}}}},
            put("c", 7, v={"S": "z"}),
        ],
        hash_table: [{"PutRequest": {"Item": {"pk": {"S": f"h{i}"}}}} for i in range(4)],
    })
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "h9"}})
    # Left: (c, 0, y*30), (c, 2, x*10), (c, 7, z).  An item is "pk" + "c", "sk" +
    # its number (0 is 1 byte, another digit 2) and "v" + its string.
    sizes = [(2 + 1) + (2 + 1) + (1 + 30), (2 + 1) + (2 + 2) + (1 + 10), (2 + 1) + (2 + 2) + (1 + 1)]
    described = ddb.describe_table(TableName=table)["Table"]
    assert (described["ItemCount"], described["TableSizeBytes"]) == (3, sum(sizes))
    described = ddb.describe_table(TableName=hash_table)["Table"]
    assert (described["ItemCount"], described["TableSizeBytes"]) == (5, 5 * (2 + 2))


@pytest.mark.parametrize("item", [
    {"pk": {"N": "5"}, "sk": {"N": "1"}},           # mistyped
    {"pk": {"L": [{"S": "x"}]}, "sk": {"N": "1"}},  # not a scalar
    {"sk": {"N": "1"}},                             # missing
])
def test_batch_write_put_with_a_key_that_does_not_fit(ddb, table, item):
    # BatchWriteItem words it as a lookup key's mismatch (PutItem names the attribute).
    with pytest.raises(ClientError) as info:
        ddb.batch_write_item(RequestItems={table: [put("fine", 1), {"PutRequest": {"Item": item}}]})
    assert info.value.response["Error"] == {
        "Code": "ValidationException", "Message": "The provided key element does not match the schema"}
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "fine"}, "sk": {"N": "1"}})


def test_batch_get_cannot_mix_projection_styles_across_tables(ddb, table, hash_table):
    with pytest.raises(ClientError) as info:
        ddb.batch_get_item(RequestItems={
            table: {"Keys": [{"pk": {"S": "a"}, "sk": {"N": "1"}}], "ProjectionExpression": "pk"},
            hash_table: {"Keys": [{"pk": {"S": "b"}}], "AttributesToGet": ["pk"]}})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"] == (
        "Can not use both expression and non-expression parameters in the same request: "
        "Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}")
