"""PutItem, GetItem, UpdateItem and DeleteItem through boto3 against a real server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from botocore.exceptions import ClientError


# PutItem, UpdateItem and DeleteItem report the request's own faults inside
# DynamoDB's newer validation envelope (us-east-1, 2026).
ENVELOPE = "1 validation error detected: "


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    err = info.value.response["Error"]
    return err["Code"], err["Message"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def event(user="u00000001", ts=1700000000000, **extra):
    item = {
        "pk": {"S": user},
        "sk": {"N": str(ts)},
        "event_type": {"S": "play"},
        "content_id": {"S": "c000042"},
        "device": {"M": {"type": {"S": "tv"}, "os": {"S": "tizen"}, "app_version": {"S": "5.1.0"}}},
        "position_s": {"N": "12.500"},
        "tags": {"SS": ["drama", "crime"]},
    }
    item.update(extra)
    return item


def test_put_then_get_returns_the_item_with_normalized_numbers(ddb, table):
    ddb.put_item(TableName=table, Item=event())
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "u00000001"}, "sk": {"N": "1700000000000"}})
    assert got["Item"]["position_s"] == {"N": "12.5"}
    assert got["Item"]["device"]["M"]["type"] == {"S": "tv"}
    assert sorted(got["Item"]["tags"]["SS"]) == ["crime", "drama"]


def test_get_missing_item_returns_no_item(ddb, table):
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "nobody"}, "sk": {"N": "1"}})
    assert "Item" not in got


def test_number_key_is_found_by_any_spelling(ddb, table):
    ddb.put_item(TableName=table, Item=event(ts=100))
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "u00000001"}, "sk": {"N": "1E+2"}})
    assert got["Item"]["sk"] == {"N": "100"}


def test_put_return_values_all_old(ddb, table):
    ddb.put_item(TableName=table, Item=event(event_type={"S": "play"}))
    out = ddb.put_item(TableName=table, Item=event(event_type={"S": "pause"}), ReturnValues="ALL_OLD")
    assert out["Attributes"]["event_type"] == {"S": "play"}


@pytest.mark.parametrize("number, message", [
    ("1e" + "9" * 5000, "The parameter cannot be converted to a numeric value: 1e" + "9" * 5000),
    ("1E-" + "0" * 5000 + "9" * 19, "The parameter cannot be converted to a numeric value: 1E-" + "0" * 5000 + "9" * 19),
    ("1e" + "0" * 5000 + "9" * 18, "Number overflow. Attempting to store a number with magnitude larger than supported range"),
])
def test_put_refuses_exponents_of_thousands_of_digits(ddb, table, number, message):
    # Python converts at most 4,300 digits to an int: these once answered a 500.
    code, text, status = error_of(ddb.put_item, TableName=table, Item=event(x={"N": number}))
    assert (code, text, status) == ("ValidationException", ENVELOPE + message, 400)
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "u00000001"}, "sk": {"N": "1700000000000"}})


def test_put_rejects_invalid_return_values(ddb, table):
    code, message, status = error_of(ddb.put_item, TableName=table, Item=event(), ReturnValues="ALL_NEW")
    assert (code, message, status) == ("ValidationException", ENVELOPE + "ReturnValues can only be ALL_OLD or NONE", 400)


def test_conditional_put_fails_with_old_item_when_asked(ddb, table):
    ddb.put_item(TableName=table, Item=event())
    with pytest.raises(ClientError) as info:
        ddb.put_item(
            TableName=table,
            Item=event(),
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    response = info.value.response
    assert response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert response["Error"]["Message"] == "The conditional request failed"
    assert response["Item"]["event_type"] == {"S": "play"}


def test_missing_table(ddb):
    code, message, status = error_of(ddb.put_item, TableName="no_such_table", Item=event())
    assert (code, status) == ("ResourceNotFoundException", 400)
    assert message == "Requested resource not found"


def test_key_type_mismatch(ddb, table):
    code, message, _ = error_of(ddb.put_item, TableName=table, Item=event(sk={"S": "x"}))
    assert code == "ValidationException"
    assert message == "One or more parameter values were invalid: Type mismatch for key sk expected: N actual: S"


def test_missing_key_in_item(ddb, table):
    item = event()
    del item["sk"]
    code, message, _ = error_of(ddb.put_item, TableName=table, Item=item)
    assert message == "One or more parameter values were invalid: Missing the key sk in the item"


def test_get_with_wrong_key_schema(ddb, table):
    code, message, _ = error_of(ddb.get_item, TableName=table, Key={"pk": {"S": "a"}})
    assert (code, message) == ("ValidationException", "The provided key element does not match the schema")


def test_expression_attribute_names_without_expression(ddb, table):
    code, message, _ = error_of(
        ddb.put_item, TableName=table, Item=event(), ExpressionAttributeNames={"#a": "a"}
    )
    assert message == ENVELOPE + "ExpressionAttributeNames can only be specified when using expressions"


def test_unused_expression_attribute_value(ddb, table):
    code, message, _ = error_of(
        ddb.put_item, TableName=table, Item=event(),
        ConditionExpression="attribute_not_exists(pk)",
        ExpressionAttributeValues={":unused": {"S": "x"}},
    )
    assert message == ENVELOPE + "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}"


def test_mixing_legacy_and_expression_parameters(ddb, table):
    code, message, _ = error_of(
        ddb.put_item, TableName=table, Item=event(),
        ConditionExpression="attribute_exists(pk)", Expected={"pk": {"Exists": False}},
    )
    assert message == ENVELOPE + (
        "Can not use both expression and non-expression parameters in the same request: "
        "Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}"
    )


def test_update_set_add_remove_and_return_values(ddb, table):
    key = {"pk": {"S": "u1"}, "sk": {"N": "1"}}
    out = ddb.update_item(
        TableName=table, Key=key,
        UpdateExpression="SET plays = :zero, title = :t ADD genres :g",
        ExpressionAttributeValues={":zero": {"N": "0"}, ":t": {"S": "Heat"}, ":g": {"SS": ["crime"]}},
        ReturnValues="ALL_NEW",
    )
    assert out["Attributes"]["plays"] == {"N": "0"}
    out = ddb.update_item(
        TableName=table, Key=key,
        UpdateExpression="SET plays = plays + :one REMOVE title",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    assert out["Attributes"] == {"plays": {"N": "1"}}
    out = ddb.update_item(
        TableName=table, Key=key, UpdateExpression="ADD plays :n",
        ExpressionAttributeValues={":n": {"N": "2.5"}}, ReturnValues="UPDATED_OLD",
    )
    assert out["Attributes"] == {"plays": {"N": "1"}}
    item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert item["plays"] == {"N": "3.5"}
    assert "title" not in item


def test_update_creates_item_with_key_only(ddb, table):
    key = {"pk": {"S": "fresh"}, "sk": {"N": "7"}}
    out = ddb.update_item(TableName=table, Key=key, ReturnValues="ALL_NEW")
    assert out["Attributes"] == key
    assert ddb.get_item(TableName=table, Key=key)["Item"] == key


def test_update_of_key_attribute_is_rejected(ddb, table):
    code, message, _ = error_of(
        ddb.update_item, TableName=table, Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
        UpdateExpression="SET pk = :v", ExpressionAttributeValues={":v": {"S": "b"}},
    )
    assert message == "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key"


def test_continue_watching_only_moves_forward(ddb, table):
    key = {"pk": {"S": "u2"}, "sk": {"N": "0"}}
    update = dict(
        TableName=table, Key=key,
        UpdateExpression="SET pos = :p, updated = :t",
        ConditionExpression="attribute_not_exists(updated) OR updated < :t",
    )
    ddb.update_item(**update, ExpressionAttributeValues={":p": {"N": "10"}, ":t": {"N": "100"}})
    code, _, _ = error_of(ddb.update_item, **update, ExpressionAttributeValues={":p": {"N": "5"}, ":t": {"N": "50"}})
    assert code == "ConditionalCheckFailedException"
    assert ddb.get_item(TableName=table, Key=key)["Item"]["pos"] == {"N": "10"}


def test_delete_with_return_values_and_condition(ddb, table):
    ddb.put_item(TableName=table, Item=event())
    key = {"pk": {"S": "u00000001"}, "sk": {"N": "1700000000000"}}
    code, _, _ = error_of(
        ddb.delete_item, TableName=table, Key=key, ConditionExpression="event_type = :e",
        ExpressionAttributeValues={":e": {"S": "stop"}},
    )
    assert code == "ConditionalCheckFailedException"
    out = ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")
    assert out["Attributes"]["pk"] == {"S": "u00000001"}
    assert "Item" not in ddb.get_item(TableName=table, Key=key)
    assert "Attributes" not in ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")


def test_projection_expression_with_nested_paths(ddb, table):
    ddb.put_item(TableName=table, Item=event(history={"L": [{"N": "1"}, {"M": {"c": {"S": "x"}, "d": {"S": "y"}}}]}))
    got = ddb.get_item(
        TableName=table, Key={"pk": {"S": "u00000001"}, "sk": {"N": "1700000000000"}},
        ProjectionExpression="device.#t, history[1].c",
        ExpressionAttributeNames={"#t": "type"},
    )
    assert got["Item"] == {
        "device": {"M": {"type": {"S": "tv"}}},
        "history": {"L": [{"M": {"c": {"S": "x"}}}]},
    }


def test_legacy_parameters(ddb, table):
    key = {"pk": {"S": "legacy"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "n": {"N": "1"}}, Expected={"pk": {"Exists": False}})
    ddb.update_item(TableName=table, Key=key, AttributeUpdates={"n": {"Action": "ADD", "Value": {"N": "4"}}})
    got = ddb.get_item(TableName=table, Key=key, AttributesToGet=["n"])
    assert got["Item"] == {"n": {"N": "5"}}
    code, _, _ = error_of(ddb.put_item, TableName=table, Item=key, Expected={"n": {"Value": {"N": "9"}}})
    assert code == "ConditionalCheckFailedException"


def test_consumed_capacity(ddb, table):
    big = event(blob={"S": "x" * 5200})  # 5,319 bytes: 6 write units, 2 read units
    out = ddb.put_item(TableName=table, Item=big, ReturnConsumedCapacity="TOTAL")
    assert out["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 6.0}
    key = {"pk": big["pk"], "sk": big["sk"]}
    out = ddb.get_item(TableName=table, Key=key, ReturnConsumedCapacity="TOTAL")
    assert out["ConsumedCapacity"]["CapacityUnits"] == 1.0
    out = ddb.get_item(TableName=table, Key=key, ConsistentRead=True, ReturnConsumedCapacity="INDEXES")
    assert out["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 2.0, "Table": {"CapacityUnits": 2.0}}


def test_item_too_large(ddb, table):
    code, message, _ = error_of(ddb.put_item, TableName=table, Item=event(blob={"S": "x" * (400 * 1024)}))
    assert (code, message) == ("ValidationException", ENVELOPE + "Item size has exceeded the maximum allowed size")


def test_empty_string_allowed_outside_keys(ddb, table):
    ddb.put_item(TableName=table, Item=event(note={"S": ""}, raw={"B": b""}))
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "u00000001"}, "sk": {"N": "1700000000000"}})["Item"]
    assert item["note"] == {"S": ""}


def test_resource_api_round_trip(ddb_resource, table):
    t = ddb_resource.Table(table)
    t.put_item(Item={"pk": "r", "sk": 1, "score": Decimal("1.50"), "flags": {"a", "b"}})
    got = t.get_item(Key={"pk": "r", "sk": 1})["Item"]
    assert got["score"] == Decimal("1.5")
    assert got["flags"] == {"a", "b"}


def test_projection_of_missing_attributes_gives_an_empty_item(ddb, table):
    ddb.put_item(TableName=table, Item=event())
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "u00000001"}, "sk": {"N": "1700000000000"}},
                       ProjectionExpression="no_such_attribute")
    assert got["Item"] == {}


def test_updated_values_of_list_elements_are_reported_by_position(ddb, table):
    # As DynamoDB does: the removed element (old), or the one that moved into its place (new).
    key = {"pk": {"S": "lists"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "l": {"L": [{"N": "1"}, {"N": "2"}, {"N": "3"}]}})
    out = ddb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE l[0], l[7]", ReturnValues="UPDATED_OLD")
    assert out["Attributes"] == {"l": {"L": [{"N": "1"}]}}  # l[7] did not exist
    out = ddb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE l[0]", ReturnValues="UPDATED_NEW")
    assert out["Attributes"] == {"l": {"L": [{"N": "3"}]}}
    # An element set past the end lands elsewhere: UPDATED_NEW finds nothing at the index named.
    out = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET l[100] = :v",
                          ExpressionAttributeValues={":v": {"N": "70"}}, ReturnValues="UPDATED_NEW")
    assert "Attributes" not in out


def test_empty_write_request_in_a_batch(ddb, table):
    code, message, _ = error_of(ddb.batch_write_item, RequestItems={table: [{}]})
    assert message == ("Supplied AttributeValue has more than one datatypes set, "
                       "must contain exactly one of the supported datatypes")


@pytest.mark.parametrize("names,values,message", [
    ({"#a": "x", "b": "y"}, None, 'ExpressionAttributeNames contains invalid key: Syntax error; key: "b"'),
    ({"#a": "x", "#a-b": "y"}, None, 'ExpressionAttributeNames contains invalid key: Syntax error; key: "#a-b"'),
    ({"#a": "x", "#" + "a" * 300: "y"}, None,
     "ExpressionAttributeNames contains invalid key: The expression attribute map contains a key that is too long; "
     "size of key: 301"),
    ({"#a": ""}, None, "ExpressionAttributeNames contains invalid value: Empty attribute name for key #a"),
    (None, {":v": {"S": "x"}, "w": {"S": "y"}}, 'ExpressionAttributeValues contains invalid key: Syntax error; key: "w"'),
])
def test_placeholder_rules(ddb, table, names, values, message):
    kwargs = {"ConditionExpression": "attribute_not_exists(#a)" if names else "attribute_not_exists(q) OR q = :v"}
    if names:
        kwargs["ExpressionAttributeNames"] = names
    if values:
        kwargs["ExpressionAttributeValues"] = values
    code, got, _ = error_of(ddb.put_item, TableName=table, Item=event(), **kwargs)
    assert (code, got) == ("ValidationException", ENVELOPE + message)


# Values inside the legacy parameters (AttributeUpdates, Expected) are attribute
# values like any other: checked and normalized as PutItem's are, never stored
# or compared unchecked.
@pytest.mark.parametrize("value, message", [
    ({"SS": []}, "One or more parameter values were invalid: An string set  may not be empty"),
    ({"N": "dog"}, "The parameter cannot be converted to a numeric value: dog"),
    ({"NULL": False}, "One or more parameter values were invalid: Null attribute value types must have the value of true"),
    ({}, "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"),
])
def test_legacy_parameter_values_are_validated(ddb, table, value, message):
    message = ENVELOPE + message
    key = {"pk": {"S": "legacy-values"}, "sk": {"N": "1"}}
    assert error_of(ddb.update_item, TableName=table, Key=key,
                    AttributeUpdates={"a": {"Action": "PUT", "Value": value}}) == ("ValidationException", message, 400)
    assert "Item" not in ddb.get_item(TableName=table, Key=key)
    assert error_of(ddb.put_item, TableName=table, Item=key,
                    Expected={"a": {"Value": value}}) == ("ValidationException", message, 400)
    assert error_of(ddb.put_item, TableName=table, Item=key,
                    Expected={"a": {"ComparisonOperator": "EQ", "AttributeValueList": [value]}}) == (
        "ValidationException", message, 400)
    assert "Item" not in ddb.get_item(TableName=table, Key=key)


def test_legacy_parameter_values_are_normalized(ddb, table):
    key = {"pk": {"S": "legacy-normalized"}, "sk": {"N": "1"}}
    ddb.update_item(TableName=table, Key=key, AttributeUpdates={"a": {"Action": "PUT", "Value": {"N": "1.50"}}})
    assert ddb.get_item(TableName=table, Key=key)["Item"]["a"] == {"N": "1.5"}
    ddb.update_item(TableName=table, Key=key, AttributeUpdates={"a": {"Action": "ADD", "Value": {"N": "0.50"}}},
                    Expected={"a": {"Value": {"N": "01.5"}}})
    assert ddb.get_item(TableName=table, Key=key)["Item"]["a"] == {"N": "2"}
    assert error_of(ddb.update_item, TableName=table, Key=key,
                    AttributeUpdates={"a": {"Action": "ADD", "Value": {"N": "1e200"}}})[0] == "ValidationException"


@pytest.mark.parametrize("update", [
    {"UpdateExpression": "REMOVE a"},
    {"UpdateExpression": "REMOVE x.y, z[0]"},  # any path: there is nothing to remove it from
    {"UpdateExpression": "DELETE tags :t", "ExpressionAttributeValues": {":t": {"SS": ["a"]}}},
    {"AttributeUpdates": {"a": {"Action": "DELETE"}}},
    {"AttributeUpdates": {"tags": {"Action": "DELETE", "Value": {"SS": ["a"]}}}},
])
def test_update_that_changes_nothing_creates_no_item(ddb, table, update):
    key = {"pk": {"S": "never-created"}, "sk": {"N": "1"}}
    out = ddb.update_item(TableName=table, Key=key, ReturnValues="ALL_NEW", **update)
    assert "Attributes" not in out
    assert "Item" not in ddb.get_item(TableName=table, Key=key)
    if "UpdateExpression" in update:
        ddb.transact_write_items(TransactItems=[{"Update": {"TableName": table, "Key": key, **update}}])
        assert "Item" not in ddb.get_item(TableName=table, Key=key)


@pytest.mark.parametrize("update", [{}, {"AttributeUpdates": {}}])
def test_update_without_actions_creates_the_item_with_its_key(ddb, table, update):
    key = {"pk": {"S": "key-only"}, "sk": {"N": "1"}}
    assert ddb.update_item(TableName=table, Key=key, ReturnValues="ALL_NEW", **update)["Attributes"] == key
    assert ddb.get_item(TableName=table, Key=key)["Item"] == key


def test_nested_paths_of_a_missing_item(ddb, table):
    key = {"pk": {"S": "missing-nested"}, "sk": {"N": "1"}}
    # SET still needs the parent to exist, item or not.
    assert error_of(ddb.update_item, TableName=table, Key=key, UpdateExpression="SET c.c = :v",
                    ExpressionAttributeValues={":v": {"N": "7"}}) == (
        "ValidationException", "The document path provided in the update expression is invalid for update", 400)
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET a = :v REMOVE x.y",
                    ExpressionAttributeValues={":v": {"N": "7"}})
    assert ddb.get_item(TableName=table, Key=key)["Item"] == {**key, "a": {"N": "7"}}
    # Once the item exists, REMOVE of a path under a missing attribute is an error again.
    assert error_of(ddb.update_item, TableName=table, Key=key, UpdateExpression="REMOVE x.y") == (
        "ValidationException", "The document path provided in the update expression is invalid for update", 400)


@pytest.mark.parametrize("name, constraint", [
    ("bad table!@#", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
    ("a" * 256, "Member must have length less than or equal to 255"),
    ("ab", "Member must have length greater than or equal to 3"),
])
def test_malformed_table_names_on_item_operations(ddb, name, constraint):
    # The model types TableName as an ARN or a name; a name still follows TableName's rules.
    message = f"1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: {constraint}"
    key = {"pk": {"S": "x"}, "sk": {"N": "1"}}
    assert error_of(ddb.get_item, TableName=name, Key=key) == ("ValidationException", message, 400)
    assert error_of(ddb.put_item, TableName=name, Item=key) == ("ValidationException", message, 400)
    assert error_of(ddb.query, TableName=name, KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "x"}}) == ("ValidationException", message, 400)
    # A well-formed name or ARN of a table that does not exist is not found, as before.
    for missing in ("no_such_table", "arn:aws:dynamodb:us-east-1:000000000000:table/no_such_table"):
        assert error_of(ddb.get_item, TableName=missing, Key=key)[0] == "ResourceNotFoundException"


def test_request_faults_of_writes_are_reported_in_the_validation_envelope(ddb, table, hash_table):
    key = {"pk": {"S": "envelope"}, "sk": {"N": "1"}}
    for call, extra in ((ddb.put_item, {"Item": key}), (ddb.delete_item, {"Key": key}),
                        (ddb.update_item, {"Key": key})):
        assert error_of(call, TableName=table, ExpressionAttributeValues={":v": {"S": "x"}}, **extra)[1] == (
            ENVELOPE + "ExpressionAttributeValues can only be specified when using expressions")  # no list of nulls
        assert error_of(call, TableName=table, ConditionExpression="", **extra)[1] == (
            ENVELOPE + "Invalid ConditionExpression: The expression can not be empty;")
        assert error_of(call, TableName=table, ConditionExpression="a = :v",  # the value's own message
                        ExpressionAttributeValues={":v": {"N": "1e126"}}, **extra)[1] == (
            ENVELOPE + "Number overflow. Attempting to store a number with magnitude larger than supported range")
    assert error_of(ddb.delete_item, TableName=table, Key=key, ReturnValues="ALL_NEW")[1] == (
        ENVELOPE + "ReturnValues can only be ALL_OLD or NONE")
    assert error_of(ddb.delete_item, TableName=table, Key={"pk": {"S": "x"}, "sk": {"N": "abc"}})[1] == (
        ENVELOPE + "The parameter cannot be converted to a numeric value: abc")
    # What needs the table's schema is not in the envelope.
    assert error_of(ddb.delete_item, TableName=table, Key={"pk": {"S": "x"}})[1] == (
        "The provided key element does not match the schema")
    assert error_of(ddb.put_item, TableName=hash_table, Item={"pk": {"S": ""}})[1] == (
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an "
        "empty string value. Key: pk")


def test_an_empty_expected_is_no_condition(ddb, table):
    key = {"pk": {"S": "empty-expected"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item=key, Expected={})
    assert ddb.get_item(TableName=table, Key=key)["Item"] == key
    assert error_of(ddb.update_item, TableName=table, Key=key, Expected={}, ConditionalOperator="OR")[1] == (
        ENVELOPE + "ConditionalOperator cannot be used without Filter or Expected")


def test_value_faults_in_the_newer_and_the_older_wording(ddb, table):
    # GetItem, Query and the single-item writes word some value faults anew;
    # BatchWriteItem (and transactions, Scan) keep the older wording.
    item = {"pk": {"S": "dups"}, "sk": {"N": "1"}, "s": {"SS": ["b", "a", "b"]}}
    newer = 'One or more parameter values were invalid: Input collection ["a", "b", "b"] contains duplicates.'
    older = "One or more parameter values were invalid: Input collection [b, a, b] contains duplicates."
    assert error_of(ddb.put_item, TableName=table, Item=item)[1] == ENVELOPE + newer
    assert error_of(ddb.batch_write_item, RequestItems={table: [{"PutRequest": {"Item": item}}]})[1] == older
    binary = {**item, "s": {"BS": [b"\xff", b"\x00", b"\x00"]}}
    assert error_of(ddb.put_item, TableName=table, Item=binary)[1] == ENVELOPE + (
        'One or more parameter values were invalid: Input collection ["AA==","/w==","AA=="]of type BS contains duplicates.')
    numbers = {**item, "s": {"NS": ["2", "1", "2"]}}
    assert error_of(ddb.put_item, TableName=table, Item=numbers)[1] == ENVELOPE + (
        "One or more parameter values were invalid: Input collection contains duplicates.")
    assert error_of(ddb.get_item, TableName=table, Key={"pk": {"S": "x"}, "sk": {"N": ""}})[1] == (
        "The parameter cannot be converted to a numeric value: ")
    assert error_of(ddb.query, TableName=table, KeyConditionExpression="pk = :p AND sk = :s",
                    ExpressionAttributeValues={":p": {"S": "x"}, ":s": {"N": ""}})[1] == (
        "The parameter cannot be converted to a numeric value: ")
    assert error_of(ddb.batch_write_item, RequestItems={table: [{"DeleteRequest": {"Key": {
        "pk": {"S": "x"}, "sk": {"N": ""}}}}]})[1] == "The parameter cannot be converted to a numeric value"
