"""A binary value that is not base64, in every place a request carries one,
through a real server: DynamoDB's SerializationException, nothing stored (issue 22).

Text of any characters and any length: non-ASCII letters, control characters,
CJK, characters beyond the BMP, Unicode spaces, long runs.  The base64 text
was once decoded as ASCII only, and text that was not ASCII escaped as a
ValueError: a 500 wherever the item's own checks ran first (PutItem,
BatchWriteItem) and for a PartiQL NextToken holding a binary key.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import unique_name
from tests.server.test_protocol import assert_still_serving, raw_post

LENGTH = "Base64 encoded length is expected a multiple of 4 bytes but found: {}"
CHARACTER = "Invalid Base64 character: '{}'"

# (value, why DynamoDB's base64 decoder refuses it)
BAD_BINARIES = [
    ("\u00fc\u00fc\u00fc\u00fc", CHARACTER.format("\u00fc")),
    ("\u00e9t\u00e9!", CHARACTER.format("\u00e9")),
    ("AAA\u00e9", CHARACTER.format("\u00e9")),
    ("\u00e9\u00e9\u00e9", LENGTH.format(3)),
    ("\x00\x01\x02\x03", CHARACTER.format("\x00")),
    ("AA\t\n", CHARACTER.format("\t")),
    ("\u4e2d\u6587\u5b57\u7b26", CHARACTER.format("\u4e2d")),
    ("\U0001f600\U0001f600\U0001f600\U0001f600", CHARACTER.format("\U0001f600")),
    ("\u2028\u2029\ufeff\u00a0", CHARACTER.format("\u2028")),
    ("\u00e9" * 40000, CHARACTER.format("\u00e9")),
    ("\u00e9" * 40001, LENGTH.format(40001)),
    ("AAAA" * 1000 + "\u00fc===", CHARACTER.format("\u00fc")),
]

GOOD = {"pk": {"S": "a"}, "sk": {"N": "1"}}
EXISTING = {**GOOD, "x": {"B": "AAEC"}}


def requests(s_table: str, b_table: str, bad: str):
    """(operation, request) for each place a binary value can be."""
    v = {"B": bad}
    bkey = {"pk": {"B": bad}, "sk": {"N": "1"}}
    insert = f"INSERT INTO \"{s_table}\" VALUE {{'pk': 'p', 'sk': 2, 'x': ?}}"
    yield "PutItem", {"TableName": s_table, "Item": {**GOOD, "sk": {"N": "2"}, "x": v}}
    yield "PutItem", {"TableName": s_table, "Item": {**GOOD, "sk": {"N": "2"}, "x": {"BS": ["AAAA", bad]}}}
    yield "PutItem", {"TableName": s_table, "Item": {**GOOD, "sk": {"N": "2"}, "x": {"L": [{"M": {"y": v}}]}}}
    yield "PutItem", {"TableName": b_table, "Item": bkey}
    yield "PutItem", {"TableName": s_table, "Item": {**GOOD, "sk": {"N": "2"}}, "Expected": {"x": {"Value": v}}}
    yield "GetItem", {"TableName": b_table, "Key": bkey}
    yield "UpdateItem", {"TableName": b_table, "Key": bkey}
    yield "UpdateItem", {"TableName": s_table, "Key": GOOD, "UpdateExpression": "SET x = :v",
                         "ExpressionAttributeValues": {":v": v}}
    yield "UpdateItem", {"TableName": s_table, "Key": GOOD, "UpdateExpression": "ADD s :v",
                         "ExpressionAttributeValues": {":v": {"BS": [bad]}}}
    yield "UpdateItem", {"TableName": s_table, "Key": GOOD, "AttributeUpdates": {"x": {"Action": "PUT", "Value": v}}}
    yield "UpdateItem", {"TableName": s_table, "Key": GOOD,
                         "AttributeUpdates": {"s": {"Action": "ADD", "Value": {"BS": [bad]}}}}
    yield "UpdateItem", {"TableName": s_table, "Key": GOOD, "AttributeUpdates": {"y": {"Action": "DELETE"}},
                         "Expected": {"x": {"ComparisonOperator": "EQ", "AttributeValueList": [v]}}}
    yield "DeleteItem", {"TableName": b_table, "Key": bkey}
    yield "DeleteItem", {"TableName": s_table, "Key": GOOD, "Expected": {"x": {"Value": v}}}
    yield "DeleteItem", {"TableName": s_table, "Key": GOOD, "ConditionExpression": "x <> :v",
                         "ExpressionAttributeValues": {":v": v}}
    yield "Query", {"TableName": b_table, "KeyConditions": {
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [v]}}}
    yield "Query", {"TableName": s_table, "KeyConditions": {
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}},
        "QueryFilter": {"x": {"ComparisonOperator": "EQ", "AttributeValueList": [v]}}}
    yield "Query", {"TableName": b_table, "KeyConditionExpression": "pk = :v", "ExpressionAttributeValues": {":v": v}}
    yield "Query", {"TableName": b_table, "KeyConditionExpression": "pk = :v",
                    "ExpressionAttributeValues": {":v": {"B": "AAAA"}}, "ExclusiveStartKey": bkey}
    yield "Scan", {"TableName": s_table, "ScanFilter": {"x": {"ComparisonOperator": "EQ", "AttributeValueList": [v]}}}
    yield "Scan", {"TableName": s_table, "FilterExpression": "x = :v", "ExpressionAttributeValues": {":v": v}}
    yield "Scan", {"TableName": b_table, "ExclusiveStartKey": bkey}
    yield "BatchGetItem", {"RequestItems": {b_table: {"Keys": [bkey]}}}
    yield "BatchWriteItem", {"RequestItems": {s_table: [{"PutRequest": {"Item": {**GOOD, "sk": {"N": "2"}, "x": v}}}]}}
    yield "BatchWriteItem", {"RequestItems": {b_table: [{"PutRequest": {"Item": bkey}}]}}
    yield "BatchWriteItem", {"RequestItems": {b_table: [{"DeleteRequest": {"Key": bkey}}]}}
    yield "TransactWriteItems", {"TransactItems": [{"Put": {"TableName": s_table,
                                                            "Item": {**GOOD, "sk": {"N": "2"}, "x": v}}}]}
    yield "TransactWriteItems", {"TransactItems": [{"Update": {
        "TableName": s_table, "Key": GOOD, "UpdateExpression": "SET x = :v", "ExpressionAttributeValues": {":v": v}}}]}
    yield "TransactWriteItems", {"TransactItems": [{"Delete": {"TableName": b_table, "Key": bkey}}]}
    yield "TransactWriteItems", {"TransactItems": [{"ConditionCheck": {
        "TableName": s_table, "Key": GOOD, "ConditionExpression": "x = :v", "ExpressionAttributeValues": {":v": v}}}]}
    yield "TransactGetItems", {"TransactItems": [{"Get": {"TableName": b_table, "Key": bkey}}]}
    yield "ExecuteStatement", {"Statement": insert, "Parameters": [v]}
    yield "ExecuteStatement", {"Statement": f'SELECT * FROM "{b_table}" WHERE pk = ?', "Parameters": [v]}
    yield "BatchExecuteStatement", {"Statements": [{"Statement": insert, "Parameters": [v]}]}
    yield "ExecuteTransaction", {"TransactStatements": [{"Statement": insert, "Parameters": [v]}]}


PLACES = [f"{operation}-{n}" for n, (operation, _) in enumerate(requests("s", "b", "x"))]


def post(shoal, operation: str, request: dict) -> tuple[int, dict]:
    status, _, data = raw_post(shoal, json.dumps(request).encode(), target=f"DynamoDB_20120810.{operation}")
    return status, json.loads(data)


@pytest.fixture(scope="module")
def tables(shoal, ddb):
    names = unique_name("bin_s"), unique_name("bin_b")
    for name, key_type in zip(names, "SB"):
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": key_type},
                                               {"AttributeName": "sk", "AttributeType": "N"}])
    assert post(shoal, "PutItem", {"TableName": names[0], "Item": EXISTING}) == (200, {})
    yield names
    for name in names:
        ddb.delete_table(TableName=name)


@pytest.mark.parametrize("place", range(len(PLACES)), ids=PLACES)
def test_text_that_is_not_base64_is_refused_everywhere(shoal, ddb, tables, place):
    for bad, reason in BAD_BINARIES:
        operation, request = list(requests(*tables, bad))[place]
        assert post(shoal, operation, request) == (400, {
            "__type": "com.amazon.coral.service#SerializationException",
            "Message": f"'{bad}' can not be converted to a Blob: {reason}"}), (operation, bad[:20])
    # nothing stored, nothing changed
    assert post(shoal, "Scan", {"TableName": tables[0]})[1]["Items"] == [EXISTING]
    assert post(shoal, "Scan", {"TableName": tables[1]})[1]["Count"] == 0
    assert_still_serving(ddb)


def test_a_next_token_holding_a_binary_key_that_is_not_base64(shoal, ddb, tables):
    # The token is the last key read, as Shoal encodes it: one it did not
    # make is not a token (it once answered a 500 for such a key).
    for bad, _ in BAD_BINARIES[:4]:
        token = base64.b64encode(json.dumps({"pk": {"B": bad}, "sk": {"N": "1"}}).encode()).decode()
        assert post(shoal, "ExecuteStatement", {"Statement": f'SELECT * FROM "{tables[1]}"', "NextToken": token}) \
            == (400, {"__type": "com.amazon.coral.validate#ValidationException", "message": "Invalid NextToken"})
    assert_still_serving(ddb)
