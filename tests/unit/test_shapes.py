"""Model-driven request validation (shoal.api.shapes): Coral's two stages.

Expected messages come from DynamoDB as recorded in dynalite's tests (which
were run against real DynamoDB) and from AWS error reports; where the current
API model differs from older recordings (table names now accept ARNs, so
'tableName' is 1..1024 characters without a pattern) the model wins.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.api.shapes import MAX_LISTED_ERRORS, ShapeValidator
from shoal.errors import SerializationException, UnknownOperationException, ValidationException
from shoal.model.values import validate_sized_item

V = ShapeValidator.for_service("dynamodb")


def serialization(operation: str, body) -> str:
    with pytest.raises(SerializationException) as info:
        V.validate(operation, body)
    return info.value.message


def validation(operation: str, body) -> str:
    with pytest.raises(ValidationException) as info:
        V.validate(operation, body)
    return info.value.message


def errors(*parts: str) -> str:
    count = len(parts)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(parts)


def null_at(path: str) -> str:
    return f"Value null at '{path}' failed to satisfy constraint: Member must not be null"


# ---------------------------------------------------------------- the validator itself


def test_operations_are_the_models():
    assert {"CreateTable", "PutItem", "Query", "BatchWriteItem", "TransactWriteItems"} <= V.operations
    assert len(V.operations) >= 50


def test_for_service_is_cached_and_streams_model_loads():
    assert ShapeValidator.for_service("dynamodb") is V
    streams = ShapeValidator.for_service("dynamodbstreams")
    assert streams.operations == {"DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"}
    with pytest.raises(ValidationException) as info:
        streams.validate("GetRecords", {})
    assert info.value.message == errors(null_at("shardIterator"))


def test_unknown_operation():
    with pytest.raises(UnknownOperationException):
        V.validate("NoSuchOperation", {})


def test_valid_requests_pass():
    V.validate("PutItem", {"TableName": "events", "Item": {"user_id": {"S": "u00000001"}, "ts": {"N": "1"}}})
    V.validate("ListTables", {})
    V.validate(
        "CreateTable",
        {
            "TableName": "events",
            "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


# ---------------------------------------------------------------- body and JSON types


@pytest.mark.parametrize(
    "body, message",
    [([], "Start of list found where not expected"), (5, "Expected null"), ("x", "Expected null"),
     (True, "Expected null"), (None, "")],
)
def test_body_not_an_object(body, message):
    assert serialization("GetItem", body) == message


@pytest.mark.parametrize(
    "value, message",
    [
        (True, "class java.lang.Boolean can not be converted to an String"),
        (23, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        (34.56, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ([], "Start of list found where not expected"),
        ({}, "Start of structure or map found where not expected."),
    ],
)
def test_string_member_types(value, message):
    assert serialization("CreateTable", {"TableName": value}) == message
    assert serialization("Query", {"TableName": "tbl", "KeyConditionExpression": value}) == message


@pytest.mark.parametrize(
    "value, message",
    [
        ("23", "class java.lang.String can not be converted to an Long"),
        (True, "class java.lang.Boolean can not be converted to an Long"),
        ([], "Start of list found where not expected"),
        ({}, "Start of structure or map found where not expected."),
    ],
)
def test_long_member_types(value, message):
    body = {"TableName": "abc", "ProvisionedThroughput": {"ReadCapacityUnits": value, "WriteCapacityUnits": 1}}
    assert serialization("CreateTable", body) == message


def test_integer_member_types_and_truncation():
    assert serialization("Query", {"TableName": "tbl", "Limit": "5"}) == (
        "class java.lang.String can not be converted to an Integer"
    )
    body = {"TableName": "tbl", "Limit": 2.9}
    V.validate("Query", body)
    assert body["Limit"] == 2 and type(body["Limit"]) is int


@pytest.mark.parametrize("sent, kept", [
    (2**31 - 1, 2**31 - 1), (2**32 + 5, 5), (2**33 + 5.0, 5), (-(2**32) - 2, -2),
])
def test_integers_beyond_32_bits_are_truncated_to_their_low_bits(sent, kept):
    # Coral reads numbers as TruncatingBigNumber: an Integer member keeps the
    # low 32 bits (Java's intValue), then its constraints apply.
    body = {"TableName": "tbl", "Limit": sent}
    try:
        V.validate("Query", body)
    except ValidationException:
        assert kept < 1
    assert body["Limit"] == kept


@pytest.mark.parametrize("sent, kept", [
    (2**63 - 1, 2**63 - 1), (2**63, -(2**63)), (2**64 + 7, 7), (19572460424099528704.0, 1125716350389977088),
])
def test_longs_beyond_64_bits_are_truncated_to_their_low_bits(sent, kept):
    # A Long kept whole could not even be stored (orjson writes at most 64 bits).
    body = {"TableName": "abc", "WarmThroughput": {"ReadUnitsPerSecond": sent}}
    try:
        V.validate("CreateTable", body)
    except ValidationException:
        pass
    assert body["WarmThroughput"]["ReadUnitsPerSecond"] == kept


@pytest.mark.parametrize(
    "value, message",
    [
        ("23", "'23' can not be converted to an Boolean"),
        ("yes", "'YES' can not be converted to an Boolean"),
        (23, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"),
        (34.56, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"),
        ([], "Start of list found where not expected"),
        ({}, "Start of structure or map found where not expected."),
    ],
)
def test_boolean_member_types(value, message):
    assert serialization("Query", {"TableName": "tbl", "ConsistentRead": value}) == message


def test_boolean_strings_are_coerced():
    body = {"TableName": "tbl", "ConsistentRead": "TRUE", "ScanIndexForward": "false"}
    V.validate("Query", body)
    assert body["ConsistentRead"] is True and body["ScanIndexForward"] is False


@pytest.mark.parametrize(
    "value, message",
    [("23", "Expected list or null"), (True, "Expected list or null"), (23, "Expected list or null"),
     ({}, "Start of structure or map found where not expected.")],
)
def test_list_member_types(value, message):
    assert serialization("CreateTable", {"TableName": "abc", "KeySchema": value}) == message


@pytest.mark.parametrize(
    "value, message",
    [("23", "Expected map or null"), (34.56, "Expected map or null"), ([], "Start of list found where not expected")],
)
def test_map_member_types(value, message):
    assert serialization("PutItem", {"TableName": "tbl", "Item": value}) == message
    assert serialization("BatchWriteItem", {"RequestItems": value}) == message


@pytest.mark.parametrize(
    "value, message",
    [("23", "Expected null"), (True, "Expected null"), (2147483648, "Expected null"),
     ([], "Start of list found where not expected")],
)
def test_structure_member_types(value, message):
    assert serialization("CreateTable", {"TableName": "abc", "ProvisionedThroughput": value}) == message
    assert serialization("CreateTable", {"TableName": "abc", "KeySchema": [value]}) == message


@pytest.mark.parametrize(
    "value, message",
    [
        (True, "class java.lang.Boolean can not be converted to a Blob"),
        (23, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"),
        ([], "Start of list found where not expected"),
        ("23456", "'23456' can not be converted to a Blob: "
                  "Base64 encoded length is expected a multiple of 4 bytes but found: 5"),
        ("=+/=", "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='"),
        ("+/+=", "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"),
    ],
)
def test_blob_types_inside_attribute_values(value, message):
    assert serialization("PutItem", {"TableName": "tbl", "Item": {"a": {"B": value}}}) == message
    assert serialization("PutItem", {"TableName": "tbl", "Item": {"a": {"BS": [value]}}}) == message
    nested = {"TableName": "tbl", "Item": {"a": {"L": [{"M": {"b": {"B": value}}}]}}}
    assert serialization("PutItem", nested) == message


def test_valid_base64_passes():
    V.validate("PutItem", {"TableName": "tbl", "Item": {"a": {"B": "AQI="}, "b": {"BS": ["Ag==", "AQID", ""]}}})


@pytest.mark.parametrize(
    "value, message",
    [
        ({"S": 5}, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ({"N": True}, "class java.lang.Boolean can not be converted to an String"),
        ({"SS": "a"}, "Expected list or null"),
        ({"NS": [1]}, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ({"M": []}, "Start of list found where not expected"),
        ({"L": {}}, "Start of structure or map found where not expected."),
        ({"L": ["a"]}, "Expected null"),
        ({"BOOL": 1}, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"),
        ("a", "Expected null"),
        ([], "Start of list found where not expected"),
    ],
)
def test_attribute_value_types(value, message):
    for operation, body in (
        ("PutItem", {"TableName": "tbl", "Item": {"a": value}}),
        ("Query", {"TableName": "tbl", "ExpressionAttributeValues": {":v": value}}),
        ("BatchWriteItem", {"RequestItems": {"tbl": [{"DeleteRequest": {"Key": {"a": value}}}]}}),
    ):
        assert serialization(operation, body) == message


def test_unknown_and_null_members_are_ignored_and_removed():
    item = {"a": {"S": "x", "Q": 1, "N": None}, "b": {"M": {"c": {"BOOL": "true", "junk": []}}}}
    body = {"TableName": "tbl", "Item": item, "Unknown": {"x": [1]}, "ReturnValues": None}
    V.validate("PutItem", body)
    assert body == {"TableName": "tbl", "Item": {"a": {"S": "x"}, "b": {"M": {"c": {"BOOL": True}}}}, "Unknown": {"x": [1]}}


def test_type_errors_win_over_constraint_errors():
    body = {"TableName": "", "Limit": 0, "ConsistentRead": 5}
    assert serialization("Query", body).endswith("can not be converted to an Boolean")


# ---------------------------------------------------------------- constraints


def test_required_members():
    assert validation("DescribeTable", {}) == errors(null_at("tableName"))
    assert validation("PutItem", {}) == errors(null_at("tableName"), null_at("item"))
    assert validation("GetItem", {"Key": None}) == errors(null_at("tableName"), null_at("key"))


def test_table_name_length_follows_the_model():
    assert validation("PutItem", {"TableName": "", "Item": {}}) == errors(
        "Value '' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 1"
    )


def test_pattern_then_length_in_one_member():
    # As recorded by dynalite for ListTables: pattern first, then length, then other members.
    name = "89hls;;f;d" + "x" * 250
    body = {"ExclusiveStartTableName": name, "Limit": 2147483647}
    assert validation("ListTables", body) == errors(
        f"Value '{name}' at 'exclusiveStartTableName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        f"Value '{name}' at 'exclusiveStartTableName' failed to satisfy constraint: "
        "Member must have length less than or equal to 255",
        "Value '2147483647' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100",
    )


def test_create_table_many_errors():
    body = {
        "TableName": "abc",
        "AttributeDefinitions": [{}],
        "KeySchema": [{"KeyType": "HASH"}, {"AttributeName": "a"}, {"KeyType": "Woop", "AttributeName": "a"}],
        "ProvisionedThroughput": {"ReadCapacityUnits": -1, "WriteCapacityUnits": 0.5},
        "BillingMode": "A",
    }
    assert validation("CreateTable", body) == errors(
        null_at("attributeDefinitions.1.member.attributeName"),
        null_at("attributeDefinitions.1.member.attributeType"),
        null_at("keySchema.1.member.attributeName"),
        null_at("keySchema.2.member.keyType"),
        "Value 'Woop' at 'keySchema.3.member.keyType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [HASH, RANGE]",
        "Value '-1' at 'provisionedThroughput.readCapacityUnits' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
        "Value '0' at 'provisionedThroughput.writeCapacityUnits' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
        "Value 'A' at 'billingMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]",
    )


def test_table_class_is_left_to_the_operation():
    # DynamoDB answers an invalid TableClass with its own text (shoal.api.tables).
    body = {"TableName": "abc", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}], "TableClass": "FOO"}
    V.validate("CreateTable", copy.deepcopy(body))
    V.validate("UpdateTable", {"TableName": "abc", "TableClass": "FOO"})
    # The other members' violations are reported as before, without TableClass.
    assert validation("CreateTable", {**body, "BillingMode": "A", "KeySchema": [{"AttributeName": "a", "KeyType": "X"}]}) == errors(
        "Value 'X' at 'keySchema.1.member.keyType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [HASH, RANGE]",
        "Value 'A' at 'billingMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]",
    )
    assert validation("UpdateTable", {"TableName": "abc", "TableClass": "FOO", "BillingMode": "A"}) == errors(
        "Value 'A' at 'billingMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]",
    )
    assert serialization("UpdateTable", {"TableName": "abc", "TableClass": 5}) == (
        "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String")


def test_create_table_enums_and_lengths():
    body = {"TableName": "abc", "KeySchema": [], "AttributeDefinitions": [{"AttributeName": "b", "AttributeType": "SS"}]}
    assert validation("CreateTable", body) == errors(
        "Value '[]' at 'keySchema' failed to satisfy constraint: Member must have length greater than or equal to 1",
        "Value 'SS' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [B, N, S]",
    )


def test_put_item_enums():
    body = {"TableName": "tbl", "Item": {}, "ReturnConsumedCapacity": "hi", "ReturnItemCollectionMetrics": "hi",
            "ReturnValues": "hi"}
    assert validation("PutItem", body) == errors(
        "Value 'hi' at 'returnConsumedCapacity' failed to satisfy constraint: "
        "Member must satisfy enum value set: [INDEXES, TOTAL, NONE]",
        "Value 'hi' at 'returnItemCollectionMetrics' failed to satisfy constraint: "
        "Member must satisfy enum value set: [SIZE, NONE]",
        "Value 'hi' at 'returnValues' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]",
    )


def test_put_item_null_attribute_value_and_long_attribute_name():
    assert validation("PutItem", {"TableName": "tbl", "Item": {"a": None}}) == errors(null_at("item.a.member"))
    name = "n" * 65536
    message = validation("PutItem", {"TableName": "tbl", "Item": {name: {"S": "x"}}})
    assert message.startswith("1 validation error detected: Value '{" + name + "=com.amazonaws.dynamodb.v20120810.AttributeValue@")
    assert message.endswith(
        "}' at 'item' failed to satisfy constraint: "
        "Map keys must satisfy constraint: [Member must have length less than or equal to 65535]"
    )


def test_query_errors_and_map_paths():
    body = {"TableName": "tbl", "Limit": 0, "Select": "X", "AttributesToGet": [], "KeyConditions": {"a": {}}}
    assert validation("Query", body) == errors(
        "Value at 'Limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
        "Value 'X' at 'select' failed to satisfy constraint: "
        "Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]",
        "Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1",
        null_at("keyConditions.a.member.comparisonOperator"),
    )


def test_query_comparison_operator_enum_order():
    body = {"TableName": "tbl", "KeyConditions": {"a": {"ComparisonOperator": ""}}}
    assert validation("Query", body) == errors(
        "Value '' at 'keyConditions.a.member.comparisonOperator' failed to satisfy constraint: "
        "Member must satisfy enum value set: "
        "[IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]"
    )


def test_list_element_constraints_are_reported_once_for_the_list():
    long_name = "x" * 65536
    body = {"TableName": "tbl", "AttributesToGet": [long_name, "b", long_name]}
    assert validation("Query", body) == errors(
        f"Value '[{long_name}, b, {long_name}]' at 'attributesToGet' failed to satisfy constraint: "
        "Member must satisfy constraint: [Member must have length less than or equal to 65535]"
    )


def test_batch_write_item_map_values():
    assert validation("BatchWriteItem", {"RequestItems": {"tbl": []}}) == errors(
        "Value '{tbl=[]}' at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 25, Member must have length greater than or equal to 1]"
    )
    assert validation("BatchWriteItem", {"RequestItems": {}}) == (
        "The requestItems parameter is required for BatchWriteItem")


def test_batch_write_item_renders_structures_like_java():
    writes = [{"DeleteRequest": {"Key": {"a": {"S": "b"}}}}] * 26
    message = validation("BatchWriteItem", {"RequestItems": {"tbl": writes}})
    element = "WriteRequest(putRequest=null, deleteRequest=DeleteRequest(key={a=com.amazonaws.dynamodb.v20120810.AttributeValue@"
    assert message.startswith("1 validation error detected: Value '{tbl=[" + element)
    assert message.count(element) == 26
    assert message.endswith("Map value must satisfy constraint: "
                            "[Member must have length less than or equal to 25, "
                            "Member must have length greater than or equal to 1]")


def test_batch_write_item_nested_paths():
    body = {"RequestItems": {"tbl": [{"PutRequest": {}}, {"DeleteRequest": {"Key": None}}, None]}}
    assert validation("BatchWriteItem", body) == errors(
        null_at("requestItems.tbl.member.1.member.putRequest.item"),
        null_at("requestItems.tbl.member.2.member.deleteRequest.key"),
        null_at("requestItems.tbl.member.3.member"),
    )


def test_at_most_ten_errors_are_listed():
    body = {
        "TableName": "tbl", "Limit": 0, "Segment": -1, "TotalSegments": 0, "Select": "x",
        "ReturnConsumedCapacity": "x", "AttributesToGet": [], "ConditionalOperator": "x",
        "ScanFilter": {"a": {}, "b": {}, "c": {}, "d": {}, "e": {}},
    }
    message = validation("Scan", body)
    assert message.startswith(f"{MAX_LISTED_ERRORS} validation errors detected: ")
    assert message.count("failed to satisfy constraint") == MAX_LISTED_ERRORS


# ---------------------------------------------------------------- properties and speed

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)

MEMBER_NAMES = sorted({name for shape in V._shapes.values() for name in shape.get("members", {})})
member_names = st.sampled_from(MEMBER_NAMES) | st.text(max_size=6)
request_like = st.recursive(
    json_values,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(member_names, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(operation=st.sampled_from(sorted(V.operations)), body=json_values | request_like)
def test_any_json_is_accepted_or_rejected_cleanly(operation, body):
    try:
        V.validate(operation, body)
    except (SerializationException, ValidationException) as exc:
        assert exc.status == 400
        assert isinstance(exc.message, str)


@settings(max_examples=200, deadline=None)
@given(item=st.dictionaries(st.text(min_size=1, max_size=5), request_like, max_size=5))
def test_any_item_is_accepted_or_rejected_cleanly(item):
    try:
        V.validate("PutItem", {"TableName": "tbl", "Item": item})
    except (SerializationException, ValidationException):
        pass


def test_absurd_nesting_is_a_validation_error_not_a_crash():
    value = {"S": "leaf"}
    for _ in range(900):
        value = {"L": [value]}
    assert validation("PutItem", {"TableName": "tbl", "Item": {"a": value}}) == (
        "Nesting Levels have exceeded supported limits: "
        "Attributes in the item have nested levels beyond supported limit"
    )


def test_shallow_mode_skips_attribute_value_contents_only():
    from shoal.api.shapes import load_model, model_path

    shallow = ShapeValidator(load_model(model_path("dynamodb")), check_attribute_values=False)
    shallow.validate("PutItem", {"TableName": "tbl", "Item": {"a": {"S": 5}}})  # left to shoal.model
    with pytest.raises(SerializationException):
        shallow.validate("PutItem", {"TableName": "tbl", "Item": "x"})
    with pytest.raises(ValidationException):
        shallow.validate("PutItem", {"TableName": "tbl"})


# ---------------------------------------------------------------- deferred item checks

_irregular_but_valid = st.sampled_from([
    {"S": "x", "Unknown": 1}, {"N": "1", "S": None}, {"BOOL": True, "Other": [1]}, {"SS": ["a"], "NULL": None},
    {"M": {"k": {"S": "v", "Extra": {}}}}, {"L": [{"N": "2", "B": None}]},
])
_loose_scalars = st.one_of(
    _irregular_but_valid,
    st.builds(lambda s: {"S": s}, st.text(max_size=8)),
    st.builds(lambda n: {"N": n}, st.sampled_from(["1", "-1.5", "007", "1E+3", "abc", "", " 1", "1" * 39])),
    st.builds(lambda b: {"B": b}, st.sampled_from(["", "QQ==", "QR==", "QUI=", "QUJ=", "Q", "Q$==", "QUJD"])),
    st.builds(lambda b: {"BOOL": b}, st.sampled_from([True, False, 1, "true", None])),
    st.builds(lambda b: {"NULL": b}, st.sampled_from([True, False, 0, None])),
    st.builds(lambda t, v: {t: v}, st.sampled_from(["S", "N", "B", "M", "L", "SS", "NS", "BS", "NULL", "BOOL"]),
              st.sampled_from([None, 5, 1.5, "x", [], {}, True, ["a"], ["a", None], ["a", 5], ["QQ==", "QR=="]])),
    st.builds(lambda t, v: {t: sorted(v)}, st.sampled_from(["SS", "NS", "BS"]),
              st.sets(st.sampled_from(["1", "2", "a", "QQ==", "QUI=", ""]), min_size=1, max_size=3)),
    st.sampled_from([None, 5, "x", [], {}, {"S": "x", "Unknown": 1}, {"N": "1", "S": None}, {"S": "a", "N": "1"},
                     {"Unknown": {"S": 5}}]),
)
_loose_values = st.recursive(
    _loose_scalars,
    lambda inner: st.one_of(
        st.builds(lambda v: {"L": v}, st.lists(inner, max_size=3)),
        st.builds(lambda v: {"M": v}, st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    ),
    max_leaves=8,
)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _loose_values, min_size=1, max_size=5))
def test_item_checks_pass_only_items_the_model_passes(item):
    """validate(defer_items=True) leaves PutItem's item values to
    validate_sized_item: an item that check passes must be one the model's
    check passes too, and normalizing it as the model does (dropping null
    and unknown members) must not change what the item check makes of it."""
    try:
        checked = validate_sized_item(copy.deepcopy(item))
    except (ValidationException, SerializationException):
        return  # the dispatcher then validates the request again, without deferring
    body = {"TableName": "tbl", "Item": copy.deepcopy(item)}
    V.validate("PutItem", body)
    assert validate_sized_item(body["Item"]) == checked


def test_deferred_items_still_get_their_names_and_type_checked():
    long_name = {"TableName": "tbl", "Item": {"a" * 65536: {"S": "x"}}}
    with pytest.raises(ValidationException) as deferred:
        V.validate("PutItem", copy.deepcopy(long_name), defer_items=True)
    assert str(deferred.value) == validation("PutItem", long_name)
    with pytest.raises(SerializationException):
        V.validate("BatchWriteItem", {"RequestItems": {"tbl": [{"PutRequest": {"Item": []}}]}},
                           defer_items=True)
    # The values themselves are left to the item checks.
    V.validate("PutItem", {"TableName": "tbl", "Item": {"a": {"S": 5}}}, defer_items=True)


def test_vector_distance_functions_are_listed_in_dynamodbs_order():
    body = {"TableName": "titles", "VectorIndexUpdates": [{"Create": {
        "IndexName": "by_embedding", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": 8,
        "DistanceFunction": "MANHATTAN", "Projection": {"ProjectionType": "ALL"}}}]}
    assert validation("UpdateTable", body) == errors(
        "Value 'MANHATTAN' at 'vectorIndexUpdates.1.member.create.distanceFunction' failed to satisfy "
        "constraint: Member must satisfy enum value set: [DOT_PRODUCT, COSINE, EUCLIDEAN]")


# DynamoDB's own renderings where its answers differ from Coral's generic one,
# as recorded from DynamoDB (docs/status.md, "Messages where sources disagree").

def test_create_table_without_table_name_is_one_sentence():
    sentence = "The parameter 'TableName' is required but was not present in the request"
    assert validation("CreateTable", {}) == sentence
    body = {"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}], "BillingMode": "PAY_PER_REQUEST"}
    assert validation("CreateTable", body) == sentence
    # A short name is still a constraint violation.
    assert validation("CreateTable", dict(body, TableName="ab")) == errors(
        "Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3")


def test_batch_write_item_without_requests_is_one_sentence():
    sentence = "The requestItems parameter is required for BatchWriteItem"
    assert validation("BatchWriteItem", {}) == sentence
    assert validation("BatchWriteItem", {"RequestItems": {}, "ReturnConsumedCapacity": "hi"}) == sentence


def test_batch_get_item_lengths_name_the_member_without_its_value():
    assert validation("BatchGetItem", {"RequestItems": {}}) == errors(
        "Value at 'RequestItems' failed to satisfy constraint: Member must have length greater than or equal to 1")
    assert validation("BatchGetItem", {"RequestItems": {"t.a-b": {"Keys": []}}}) == errors(
        "Value at 'RequestItems.t.a-b.member.Keys' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1")
    keys = [{"pk": {"S": str(n)}} for n in range(101)]
    assert validation("BatchGetItem", {"RequestItems": {"tbl": {"Keys": keys}}}) == errors(
        "Value at 'RequestItems.tbl.member.Keys' failed to satisfy constraint: "
        "Member must have length less than or equal to 100")
    # A missing RequestItems keeps Coral's form: no newer recording of it.
    assert validation("BatchGetItem", {}) == errors(null_at("requestItems"))


def test_batch_get_item_table_names_echo_the_map_as_json():
    body = {"RequestItems": {"bad!name": {"Keys": [{"pk": {"S": "a"}}]}}}
    assert validation("BatchGetItem", body) == errors(
        """Value '{"bad!name":{"Keys":[{"pk":{"S":"a"}}]}}' at 'requestItems' failed to satisfy constraint: """
        "Map keys must satisfy constraint: [Member must have length less than or equal to 255, "
        "Member must have length greater than or equal to 3, "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+]")


def test_limit_wording_differs_between_query_and_scan():
    at_least_one = "failed to satisfy constraint: Member must have value greater than or equal to 1"
    assert validation("Query", {"TableName": "tbl", "Limit": 0}) == errors(f"Value at 'Limit' {at_least_one}")
    assert validation("Scan", {"TableName": "tbl", "Limit": 0}) == errors(f"Value '0' at 'limit' {at_least_one}")
    assert validation("ListTables", {"Limit": -5}) == errors(f"Value '-5' at 'limit' {at_least_one}")
