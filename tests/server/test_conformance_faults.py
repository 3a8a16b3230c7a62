"""Faults independent suites found in Shoal (issue 21, point 5), each
reproduced through boto3 against a real server: the exact error DynamoDB
gives, nothing stored that should not be, and the server still serving."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table

EMPTY = "Empty attribute name"
IN_ENVELOPE = "1 validation error detected: " + EMPTY


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def hash_only(ddb):
    """A table keyed by a string 'pk' alone, holding one item 'a'."""
    name = create_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "x": {"S": "kept"}})
    yield name
    ddb.delete_table(TableName=name)


# ---------------------------------------------------------------- empty attribute names

KEY = {"pk": {"S": "a"}}
EQ_A = {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}


def _empty_name_requests(ddb, table):
    """(label, call, kwargs, message) for every path that names an attribute."""
    return [
        ("UpdateItem AttributeUpdates", ddb.update_item,
         dict(TableName=table, Key=KEY, AttributeUpdates={"": {"Value": {"S": "x"}, "Action": "PUT"}}), IN_ENVELOPE),
        ("UpdateItem Expected", ddb.update_item,
         dict(TableName=table, Key=KEY, Expected={"": {"Exists": False}}), IN_ENVELOPE),
        ("PutItem Expected", ddb.put_item,
         dict(TableName=table, Item=KEY, Expected={"": {"Exists": False}}), IN_ENVELOPE),
        ("DeleteItem Expected", ddb.delete_item,
         dict(TableName=table, Key=KEY, Expected={"": {"Exists": False}}), IN_ENVELOPE),
        ("DeleteItem Key", ddb.delete_item,
         dict(TableName=table, Key={"pk": {"S": "a"}, "": {"S": "x"}}), IN_ENVELOPE),
        ("GetItem AttributesToGet", ddb.get_item,
         dict(TableName=table, Key=KEY, AttributesToGet=["x", ""]), EMPTY),
        ("GetItem Key", ddb.get_item,
         dict(TableName=table, Key={"pk": {"S": "a"}, "": {"S": "x"}}), EMPTY),
        ("Query KeyConditions", ddb.query,
         dict(TableName=table, KeyConditions={"": EQ_A}), EMPTY),
        ("Query QueryFilter", ddb.query,
         dict(TableName=table, KeyConditions={"pk": EQ_A}, QueryFilter={"": {"ComparisonOperator": "NULL"}}), EMPTY),
        ("Query AttributesToGet", ddb.query,
         dict(TableName=table, KeyConditions={"pk": EQ_A}, AttributesToGet=[""]), EMPTY),
        ("Query ExclusiveStartKey", ddb.query,
         dict(TableName=table, KeyConditions={"pk": EQ_A}, ExclusiveStartKey={"pk": {"S": "a"}, "": {"S": "x"}}),
         EMPTY),
        ("Scan ScanFilter", ddb.scan,
         dict(TableName=table, ScanFilter={"": {"ComparisonOperator": "NULL"}}), EMPTY),
        ("Scan AttributesToGet", ddb.scan, dict(TableName=table, AttributesToGet=[""]), EMPTY),
        ("Scan ExclusiveStartKey", ddb.scan,
         dict(TableName=table, ExclusiveStartKey={"pk": {"S": "a"}, "": {"S": "x"}}),
         "The provided starting key is invalid: " + EMPTY),
        ("BatchGetItem Keys", ddb.batch_get_item,
         dict(RequestItems={table: {"Keys": [{"pk": {"S": "a"}, "": {"S": "x"}}]}}), EMPTY),
        ("BatchGetItem AttributesToGet", ddb.batch_get_item,
         dict(RequestItems={table: {"Keys": [KEY], "AttributesToGet": [""]}}), EMPTY),
        ("BatchWriteItem DeleteRequest", ddb.batch_write_item,
         dict(RequestItems={table: [{"DeleteRequest": {"Key": {"pk": {"S": "a"}, "": {"S": "x"}}}}]}), EMPTY),
        ("TransactWriteItems Delete Key", ddb.transact_write_items,
         dict(TransactItems=[{"Delete": {"TableName": table, "Key": {"pk": {"S": "a"}, "": {"S": "x"}}}}]), EMPTY),
        ("TransactGetItems Key", ddb.transact_get_items,
         dict(TransactItems=[{"Get": {"TableName": table, "Key": {"pk": {"S": "a"}, "": {"S": "x"}}}}]), EMPTY),
        # Item maps: top level and a map key at any depth.
        ("PutItem top-level", ddb.put_item,
         dict(TableName=table, Item={"pk": {"S": "b"}, "": {"S": "x"}}), IN_ENVELOPE),
        ("PutItem nested map", ddb.put_item,
         dict(TableName=table, Item={"pk": {"S": "b"}, "m": {"M": {"": {"S": "x"}}}}), IN_ENVELOPE),
        ("PutItem map in a list", ddb.put_item,
         dict(TableName=table, Item={"pk": {"S": "b"}, "l": {"L": [{"M": {"": {"S": "x"}}}]}}), IN_ENVELOPE),
        ("BatchWriteItem PutRequest nested", ddb.batch_write_item,
         dict(RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": "b"}, "m": {"M": {"": {"S": "x"}}}}}}]}),
         EMPTY),
        ("TransactWriteItems Put nested", ddb.transact_write_items,
         dict(TransactItems=[{"Put": {"TableName": table, "Item": {"pk": {"S": "b"}, "m": {"M": {"": {"S": "x"}}}}}}]),
         EMPTY),
        # Expression attribute names.
        ("UpdateItem ExpressionAttributeNames", ddb.update_item,
         dict(TableName=table, Key=KEY, UpdateExpression="SET #a = :v", ExpressionAttributeNames={"#a": ""},
              ExpressionAttributeValues={":v": {"S": "x"}}),
         "1 validation error detected: ExpressionAttributeNames contains invalid value: "
         "Empty attribute name for key #a"),
        ("Scan ExpressionAttributeNames", ddb.scan,
         dict(TableName=table, FilterExpression="#a = :v", ExpressionAttributeNames={"#a": ""},
              ExpressionAttributeValues={":v": {"S": "x"}}),
         "ExpressionAttributeNames contains invalid value: Empty attribute name for key #a"),
    ]


def test_an_empty_attribute_name_is_refused_on_every_path(ddb, hash_only):
    for label, call, kwargs, message in _empty_name_requests(ddb, hash_only):
        assert error_of(call, **kwargs) == ("ValidationException", message), label
    # Nothing was written by any of them, and the server still serves.
    assert ddb.get_item(TableName=hash_only, Key=KEY)["Item"] == {"pk": {"S": "a"}, "x": {"S": "kept"}}
    assert "Item" not in ddb.get_item(TableName=hash_only, Key={"pk": {"S": "b"}})


def test_an_empty_name_is_refused_before_the_table_is_looked_up(ddb):
    """DynamoDB checks the request before it looks for the table: an empty
    name in a request for a table that does not exist is still the name's fault."""
    assert error_of(ddb.update_item, TableName="no_such_table_21", Key=KEY,
                    AttributeUpdates={"": {"Value": {"S": "x"}}}) == ("ValidationException", IN_ENVELOPE)
    assert error_of(ddb.get_item, TableName="no_such_table_21",
                    Key={"pk": {"S": "a"}, "": {"S": "x"}}) == ("ValidationException", EMPTY)


@pytest.mark.parametrize("statement, parameters, message", [
    ("INSERT INTO \"{t}\" VALUE {{'pk': 'b', '': 'x'}}", None, "Path component cannot be an empty string"),
    ("INSERT INTO \"{t}\" VALUE {{'pk': 'b', 'm': {{'': 'x'}}}}", None, "Path component cannot be an empty string"),
    ("UPDATE \"{t}\" SET \"\" = 'x' WHERE pk = 'a'", None, "Path component cannot be an empty string"),
    ("SELECT \"\" FROM \"{t}\" WHERE pk = 'a'", None, "Path component cannot be an empty string"),
    ("INSERT INTO \"{t}\" VALUE {{'pk': 'b', 'm': ?}}", [{"M": {"": {"S": "x"}}}], EMPTY),
])
def test_partiql_refuses_an_empty_attribute_name(ddb, hash_only, statement, parameters, message):
    kwargs = {"Statement": statement.format(t=hash_only)}
    if parameters is not None:
        kwargs["Parameters"] = parameters
    assert error_of(ddb.execute_statement, **kwargs) == ("ValidationException", message)
    assert ddb.get_item(TableName=hash_only, Key=KEY)["Item"] == {"pk": {"S": "a"}, "x": {"S": "kept"}}
    assert "Item" not in ddb.get_item(TableName=hash_only, Key={"pk": {"S": "b"}})
