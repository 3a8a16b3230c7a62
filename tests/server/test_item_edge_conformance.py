"""Item-path edge cases the second differential sweep (``bench/conformance_streams.py
--part items``) found Shoal answering unlike DynamoDB: through boto3 against a
real server, the exact answer, nothing stored that should not be, and the
server still serving afterwards."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table

TOO_LONG = "Attribute name is too large, must be less than 65536 bytes"
ITEM = {"pk": {"S": "a"}, "n": {"N": "1"}, "s": {"S": "x"}}
KEY = {"pk": {"S": "a"}}


@pytest.fixture(scope="module")
def table(ddb):
    """A table keyed by a string 'pk' alone, holding ITEM."""
    name = create_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item=ITEM)
    yield name
    ddb.delete_table(TableName=name)


class Extra:
    """Adds JSON members to the next requests of one operation, past
    botocore's serializer (which drops members a structure does not have)."""

    def __init__(self, client, operation: str, members: dict) -> None:
        self.client, self.event, self.members = client, f"before-call.dynamodb.{operation}", members

    def _add(self, params, **_):
        body = json.loads(params["body"])
        body.update(self.members)
        params["body"] = json.dumps(body).encode()

    def __enter__(self):
        self.client.meta.events.register(self.event, self._add)
        return self

    def __exit__(self, *exc):
        self.client.meta.events.unregister(self.event, self._add)


def _error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


# ---------------------------------------------------------------- GetItem and ExpressionAttributeValues


@pytest.mark.parametrize("values", [{":v": {"S": "x"}}, {}, {"v": {"X": 1}}, {":v": None}],
                         ids=["a value", "empty", "malformed", "null value"])
def test_get_item_ignores_expression_attribute_values(ddb, table, values):
    """GetItemInput has no ExpressionAttributeValues member: DynamoDB ignores
    it as any unknown member, whatever it holds (it answered a
    ValidationException)."""
    with Extra(ddb, "GetItem", {"ExpressionAttributeValues": values}):
        assert ddb.get_item(TableName=table, Key=KEY)["Item"] == ITEM
        assert ddb.get_item(TableName=table, Key=KEY, ProjectionExpression="n")["Item"] == {"n": {"N": "1"}}
        assert ddb.get_item(TableName=table, Key=KEY, ProjectionExpression="#s",
                            ExpressionAttributeNames={"#s": "s"})["Item"] == {"s": {"S": "x"}}
        assert ddb.get_item(TableName=table, Key=KEY, AttributesToGet=["n"])["Item"] == {"n": {"N": "1"}}
        assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "none"}})
        answer = ddb.get_item(TableName=table, Key=KEY, ReturnConsumedCapacity="TOTAL")
        assert answer["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 0.5}
        # The members GetItem has are still checked.
        assert _error(ddb.get_item, TableName=table, Key=KEY, ExpressionAttributeNames={"#s": "s"}) == (
            "ValidationException", "ExpressionAttributeNames can only be specified when using expressions")


# ---------------------------------------------------------------- attribute names over 64 KB of UTF-8


def test_attribute_names_are_limited_to_65535_bytes_of_utf8(ddb, table):
    """65,535 bytes is the longest name (DynamoDB refuses 64 KB itself); a
    name of three-byte characters reaches that in 21,845 characters, far
    below the request shape's 65,535-character limit, and was stored."""
    longest = "€" * 21845  # 65,535 bytes
    too_long = longest + "n"  # 65,536 bytes in 21,846 characters
    ddb.put_item(TableName=table, Item={"pk": {"S": "long"}, longest: {"S": "v"}})
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "long"}})["Item"] == {"pk": {"S": "long"},
                                                                              longest: {"S": "v"}}
    in_envelope = ("ValidationException", "1 validation error detected: " + TOO_LONG)
    nested = {"M": {"inner": {"M": {too_long: {"S": "v"}}}}}
    assert _error(ddb.put_item, TableName=table, Item={"pk": {"S": "b"}, too_long: {"S": "v"}}) == in_envelope
    assert _error(ddb.put_item, TableName=table, Item={"pk": {"S": "b"}, "m": nested}) == in_envelope
    assert _error(ddb.update_item, TableName=table, Key={"pk": {"S": "b"}}, UpdateExpression="SET m = :m",
                  ExpressionAttributeValues={":m": nested}) == in_envelope
    assert _error(ddb.batch_write_item, RequestItems={table: [
        {"PutRequest": {"Item": {"pk": {"S": "b"}, too_long: {"S": "v"}}}}]}) == ("ValidationException", TOO_LONG)
    assert _error(ddb.transact_write_items, TransactItems=[
        {"Put": {"TableName": table, "Item": {"pk": {"S": "b"}, too_long: {"S": "v"}}}}]) == (
        "ValidationException", TOO_LONG)
    # Nothing was stored, and the server still serves.
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "b"}})
    assert ddb.get_item(TableName=table, Key=KEY)["Item"] == ITEM


def test_long_names_are_refused_in_expression_names_and_legacy_parameters(ddb, table):
    """The same limit where a request names an attribute outside an item:
    ExpressionAttributeNames (as an empty name there is refused) and the
    legacy parameters (AttributeUpdates, Expected, ScanFilter); such a name
    was stored by UpdateItem and taken by the others."""
    too_long = "€" * 21845 + "n"
    key = {"pk": {"S": "c"}}
    names_error = _error(ddb.update_item, TableName=table, Key=key, UpdateExpression="SET #n = :v",
                         ExpressionAttributeNames={"#n": too_long}, ExpressionAttributeValues={":v": {"S": "v"}})
    empty_error = _error(ddb.update_item, TableName=table, Key=key, UpdateExpression="SET #n = :v",
                         ExpressionAttributeNames={"#n": ""}, ExpressionAttributeValues={":v": {"S": "v"}})
    assert names_error[0] == empty_error[0] == "ValidationException"
    # worded as the empty name is, the same envelope or none
    assert names_error[1] == empty_error[1].replace("Empty attribute name", TOO_LONG)
    assert _error(ddb.get_item, TableName=table, Key=KEY, ProjectionExpression="#n",
                  ExpressionAttributeNames={"#n": too_long})[1].endswith(f"{TOO_LONG} for key #n")
    legacy = _error(ddb.update_item, TableName=table, Key=key,
                    AttributeUpdates={too_long: {"Action": "PUT", "Value": {"S": "v"}}})
    assert legacy[0] == "ValidationException" and legacy[1].endswith(TOO_LONG)
    expected = _error(ddb.put_item, TableName=table, Item={"pk": {"S": "c"}},
                      Expected={too_long: {"Exists": False}})
    assert expected[0] == "ValidationException" and expected[1].endswith(TOO_LONG)
    assert _error(ddb.scan, TableName=table, ScanFilter={
        too_long: {"ComparisonOperator": "NULL"}}) == ("ValidationException", TOO_LONG)
    # Nothing was stored, and the server still serves.
    assert "Item" not in ddb.get_item(TableName=table, Key=key)
    assert ddb.get_item(TableName=table, Key=KEY)["Item"] == ITEM
