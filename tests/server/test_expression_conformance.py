"""Expression faults the differential fuzz (bench/expression_fuzz.py) found,
reproduced through boto3 against a real server: what a condition, a filter
and an update decide, the exact error of a bad request, and the server still
serving after it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table, unique_name

ITEM = {"pk": {"S": "emoji"}, "s": {"S": "é𝄞"}, "l": {"L": [{"S": "😀"}, {"S": "ab"}]}}


@pytest.fixture(scope="module")
def strings(ddb):
    """A table keyed by 'pk' holding one item whose strings reach beyond the BMP."""
    name = create_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item=ITEM)
    yield name
    ddb.delete_table(TableName=name)


def test_condition_sizes_strings_in_utf16_code_units(ddb, strings):
    """size("é𝄞") is 3 (𝄞 is two UTF-16 units), as DynamoDB answers it; Shoal said 2."""
    ddb.update_item(TableName=strings, Key={"pk": {"S": "emoji"}}, UpdateExpression="SET touched = :one",
                    ConditionExpression="size(s) = :three AND size(l[0]) = :two",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":three": {"N": "3"}, ":two": {"N": "2"}})
    item = ddb.get_item(TableName=strings, Key={"pk": {"S": "emoji"}}, ConsistentRead=True)["Item"]
    assert item["touched"] == {"N": "1"}
    with pytest.raises(ClientError) as info:
        ddb.delete_item(TableName=strings, Key={"pk": {"S": "emoji"}}, ConditionExpression="size(s) = :two",
                        ExpressionAttributeValues={":two": {"N": "2"}})
    assert info.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert info.value.response["Error"]["Message"] == "The conditional request failed"
    assert "Item" in ddb.get_item(TableName=strings, Key={"pk": {"S": "emoji"}}, ConsistentRead=True)


def test_filter_sizes_strings_in_utf16_code_units(ddb, strings):
    answer = ddb.scan(TableName=strings, ConsistentRead=True, FilterExpression="size(l[0]) > :one",
                      ProjectionExpression="l[0]", ExpressionAttributeValues={":one": {"N": "1"}})
    assert answer["Items"] == [{"l": {"L": [{"S": "😀"}]}}]
    assert answer["ScannedCount"] == 1
    answer = ddb.scan(TableName=strings, ConsistentRead=True, FilterExpression="size(s) < :three",
                      ExpressionAttributeValues={":three": {"N": "3"}})
    assert answer["Items"] == []


def test_size_of_a_value_and_a_refused_operand(ddb, strings):
    """size() of a string value counts the same way; of a number it is
    refused, and the server serves on."""
    answer = ddb.scan(TableName=strings, Select="COUNT", FilterExpression="size(:s) = :n",
                      ExpressionAttributeValues={":s": {"S": "😀"}, ":n": {"N": "2"}})
    assert answer["Count"] == 1
    with pytest.raises(ClientError) as info:
        ddb.scan(TableName=strings, FilterExpression="size(:s) = :n",
                 ExpressionAttributeValues={":s": {"N": "12"}, ":n": {"N": "2"}})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"] == (
        "Invalid FilterExpression: Incorrect operand type for operator or function; "
        "operator or function: size, operand type: N")
    item = ddb.get_item(TableName=strings, Key={"pk": {"S": "emoji"}}, ConsistentRead=True)["Item"]
    assert item["s"] == {"S": "é𝄞"}


# ---------------------------------------------------------------- paths into key attributes

NESTED_KEY = "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: "


@pytest.fixture(scope="module")
def indexed(ddb):
    """A table keyed by 'pk' and 'sk' with a GSI on 'g' and an LSI on 'l', holding two items."""
    name = unique_name("keypaths")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                              (("pk", "S"), ("sk", "N"), ("g", "S"), ("l", "S"))],
        GlobalSecondaryIndexes=[{"IndexName": "gsi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        LocalSecondaryIndexes=[{"IndexName": "lsi", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                                   {"AttributeName": "l", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "ALL"}}])
    for sk in (1, 2):
        ddb.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"N": str(sk)}, "g": {"S": "G"},
                                           "l": {"S": f"L{sk}"}, "m": {"M": {"x": {"N": str(sk)}}}})
    yield name
    ddb.delete_table(TableName=name)


def _refusal(call, **kwargs) -> str:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    return info.value.response["Error"]["Message"]


def test_scan_filter_and_projection_may_not_reach_into_keys(ddb, indexed):
    assert _refusal(ddb.scan, TableName=indexed, FilterExpression="attribute_exists(pk.x)") == NESTED_KEY + "Key: pk"
    assert _refusal(ddb.scan, TableName=indexed, FilterExpression="attribute_exists(#k[0])",
                    ExpressionAttributeNames={"#k": "sk"}) == NESTED_KEY + "Key: sk"
    assert _refusal(ddb.scan, TableName=indexed, IndexName="gsi", FilterExpression="g.x = :v",
                    ExpressionAttributeValues={":v": {"S": "G"}}) == NESTED_KEY + "IndexKey: g"
    assert _refusal(ddb.scan, TableName=indexed, ProjectionExpression="m.x, l[0], sk.y") == NESTED_KEY + "Key: sk"
    # whole key attributes and nested non-key paths are read as before
    answer = ddb.scan(TableName=indexed, ConsistentRead=True, ProjectionExpression="sk, m.x",
                      FilterExpression="pk = :p AND m.x > :one",
                      ExpressionAttributeValues={":p": {"S": "p"}, ":one": {"N": "1"}})
    assert answer["Items"] == [{"sk": {"N": "2"}, "m": {"M": {"x": {"N": "2"}}}}]


def test_query_filter_and_projection_may_not_reach_into_keys(ddb, indexed):
    values = {":p": {"S": "p"}}
    # the scalar rule comes before "Filter Expression can only contain non-primary key attributes"
    assert _refusal(ddb.query, TableName=indexed, KeyConditionExpression="pk = :p", FilterExpression="sk.x = :p",
                    ExpressionAttributeValues=values) == NESTED_KEY + "Key: sk"
    assert _refusal(ddb.query, TableName=indexed, KeyConditionExpression="pk = :p", FilterExpression="g.x = :p",
                    ExpressionAttributeValues=values) == NESTED_KEY + "IndexKey: g"
    assert _refusal(ddb.query, TableName=indexed, IndexName="lsi", KeyConditionExpression="pk = :p",
                    ProjectionExpression="l[0]", ExpressionAttributeValues=values) == NESTED_KEY + "IndexKey: l"
    answer = ddb.query(TableName=indexed, KeyConditionExpression="pk = :p", ProjectionExpression="l, m.x",
                       ExpressionAttributeValues=values, ScanIndexForward=False)
    assert answer["Items"] == [{"l": {"S": "L2"}, "m": {"M": {"x": {"N": "2"}}}},
                               {"l": {"S": "L1"}, "m": {"M": {"x": {"N": "1"}}}}]


def test_single_item_operations_may_not_reach_into_keys(ddb, indexed):
    """GetItem's projection, PutItem's and DeleteItem's conditions, UpdateItem's
    condition and update: a path into a table or index key attribute is
    refused (it was read as a missing attribute), and nothing is written."""
    key = {"pk": {"S": "p"}, "sk": {"N": "1"}}
    assert _refusal(ddb.get_item, TableName=indexed, Key=key, ProjectionExpression="m.x, pk.y") == NESTED_KEY + "Key: pk"
    assert _refusal(ddb.get_item, TableName=indexed, Key=key, ProjectionExpression="g[0]") == NESTED_KEY + "IndexKey: g"
    assert _refusal(ddb.put_item, TableName=indexed, Item={**key, "n": {"N": "5"}},
                    ConditionExpression="attribute_not_exists(sk.x)") == NESTED_KEY + "Key: sk"
    assert _refusal(ddb.delete_item, TableName=indexed, Key=key,
                    ConditionExpression="attribute_exists(l.x)") == NESTED_KEY + "IndexKey: l"
    assert _refusal(ddb.update_item, TableName=indexed, Key=key, UpdateExpression="SET g.x = :v",
                    ExpressionAttributeValues={":v": {"S": "v"}}) == NESTED_KEY + "IndexKey: g"
    assert _refusal(ddb.update_item, TableName=indexed, Key=key, UpdateExpression="SET n = :v",
                    ConditionExpression="pk[0] = :v",
                    ExpressionAttributeValues={":v": {"S": "v"}}) == NESTED_KEY + "Key: pk"
    # nothing was written or deleted, and whole key attributes and nested non-key paths still work
    item = ddb.get_item(TableName=indexed, Key=key, ConsistentRead=True, ProjectionExpression="pk, sk, g, m.x")["Item"]
    assert item == {"pk": {"S": "p"}, "sk": {"N": "1"}, "g": {"S": "G"}, "m": {"M": {"x": {"N": "1"}}}}
    assert "n" not in ddb.get_item(TableName=indexed, Key=key, ConsistentRead=True)["Item"]


def test_batch_and_transaction_reads_may_not_reach_into_keys(ddb, indexed):
    """BatchGetItem's and TransactGetItems' projections: the same refusal."""
    key = {"pk": {"S": "p"}, "sk": {"N": "1"}}
    assert _refusal(ddb.batch_get_item, RequestItems={indexed: {
        "Keys": [key], "ProjectionExpression": "m.x, sk[0]"}}) == NESTED_KEY + "Key: sk"
    assert _refusal(ddb.transact_get_items, TransactItems=[{"Get": {
        "TableName": indexed, "Key": key, "ProjectionExpression": "#g.x",
        "ExpressionAttributeNames": {"#g": "g"}}}]) == NESTED_KEY + "IndexKey: g"
    answer = ddb.batch_get_item(RequestItems={indexed: {"Keys": [key], "ProjectionExpression": "sk, m.x"}})
    assert answer["Responses"][indexed] == [{"sk": {"N": "1"}, "m": {"M": {"x": {"N": "1"}}}}]


# ---------------------------------------------------------------- list elements written past the end


@pytest.mark.parametrize("text, after", [
    ("SET d[2] = :a ADD d[1] :b", [{"N": "9"}, {"N": "2"}, {"N": "1"}]),
    ("SET d[5] = :a REMOVE d[1]", [{"N": "9"}, {"N": "1"}]),
])
def test_update_writes_past_a_lists_end_by_index_and_positions_before(ddb, hash_table, text, after):
    """Shoal added 2 to the element SET had just appended (storing 3) and
    removed an element SET had just appended; DynamoDB answers as here."""
    key = {"pk": {"S": "lists"}}
    ddb.put_item(TableName=hash_table, Item=dict(key, d={"L": [{"N": "9"}]}))
    values = {k: v for k, v in {":a": {"N": "1"}, ":b": {"N": "2"}}.items() if k in text}
    answer = ddb.update_item(TableName=hash_table, Key=key, UpdateExpression=text, ExpressionAttributeValues=values,
                             ReturnValues="ALL_NEW")
    assert answer["Attributes"]["d"] == {"L": after}
    assert ddb.get_item(TableName=hash_table, Key=key, ConsistentRead=True)["Item"]["d"] == {"L": after}
