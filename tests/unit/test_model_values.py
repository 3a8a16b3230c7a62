"""Attribute value validation: DynamoDB's rules and exact messages."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import SerializationException, ValidationException
from shoal.model.size import item_size
from shoal.model.values import validate_item, validate_key, validate_sized_item, validate_value

INVALID = "One or more parameter values were invalid: "


def rejects(av, message, exc=ValidationException):
    with pytest.raises(exc) as info:
        validate_value(av, ":v")
    assert info.value.message == message
    return info.value


# ---------------------------------------------------------------- shape


@pytest.mark.parametrize(
    "av",
    [{}, {"FOO": "x"}, {"S": None}, {"L": None}],
)
def test_empty_attribute_value(av):
    rejects(av, "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes")


def test_more_than_one_type():
    rejects(
        {"S": "x", "N": "1"},
        "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
    )


def test_null_and_unknown_members_are_ignored():
    assert validate_value({"S": "x", "N": None}) == {"S": "x"}
    assert validate_value({"S": "x", "FOO": "y"}) == {"S": "x"}


def test_null_attribute_values():
    with pytest.raises(ValidationException) as info:
        validate_item({"a": None})
    assert info.value.message == "The supplied Item contains a null AttributeValue: a is null"
    with pytest.raises(ValidationException) as info:
        validate_item({"a": {"M": {"b": None}}})
    assert info.value.message == "The supplied Item contains a null AttributeValue: b is null"
    rejects({"L": [None]}, "The supplied Item contains a null AttributeValue")
    rejects(None, "The supplied Item contains a null AttributeValue")


def test_empty_attribute_name():
    with pytest.raises(ValidationException) as info:
        validate_item({"": {"S": "x"}})
    assert info.value.message == "Empty attribute name"
    rejects({"M": {"": {"S": "x"}}}, "Empty attribute name")


# ---------------------------------------------------------------- JSON types (SerializationException)


@pytest.mark.parametrize(
    "av, message",
    [
        ({"S": 5}, "NUMBER_VALUE cannot be converted to String"),
        ({"S": 5.5}, "DECIMAL_VALUE cannot be converted to String"),
        ({"S": True}, "TRUE_VALUE cannot be converted to String"),
        ({"N": False}, "FALSE_VALUE cannot be converted to String"),
        ({"N": 5}, "NUMBER_VALUE cannot be converted to String"),
        ({"S": []}, "Unrecognized collection type class java.lang.String"),
        ({"S": {}}, "Start of structure or map found where not expected"),
        ({"BOOL": "x"}, "Unexpected token received from parser"),
        ({"BOOL": 1}, "NUMBER_VALUE cannot be converted to Boolean"),
        ({"NULL": 1.5}, "DECIMAL_VALUE cannot be converted to Boolean"),
        ({"BOOL": []}, "Unrecognized collection type class java.lang.Boolean"),
        ({"NULL": {}}, "Start of structure or map found where not expected"),
        ({"B": 5}, "only base-64-encoded strings are convertible to bytes"),
        ({"B": []}, "Unrecognized collection type class java.nio.ByteBuffer"),
        ({"B": "23456"}, "Base64 encoded length is expected a multiple of 4 bytes but found: 5"),
        ({"B": "=+/="}, "Invalid last non-pad Base64 character dectected"),
        ({"B": "+/+="}, "Invalid last non-pad Base64 character dectected"),
        ({"B": "YR=="}, "Invalid last non-pad Base64 character dectected"),
        ({"B": "ab@d"}, "Invalid Base64 character: '@'"),
        ({"B": "\u00fc\u00fc\u00fc\u00fc"}, "Invalid Base64 character: '\u00fc'"),
        ({"BS": ["AAAA", "\u00e9t\u00e9!"]}, "Invalid Base64 character: '\u00e9'"),
        ({"L": {}}, "Start of structure or map found where not expected"),
        ({"L": "x"}, "Unexpected field type"),
        ({"SS": "a"}, "Unexpected field type"),
        ({"NS": 1}, "Unexpected field type"),
        ({"SS": [1]}, "NUMBER_VALUE cannot be converted to String"),
        ({"NS": [1]}, "NUMBER_VALUE cannot be converted to String"),
        ({"BS": [True]}, "only base-64-encoded strings are convertible to bytes"),
        ({"M": []}, "Unrecognized collection type java.util.Map<java.lang.String, "
                    "com.amazonaws.dynamodb.v20120810.AttributeValue>"),
        ({"M": "x"}, "Unexpected field type"),
        ({"L": ["x"]}, "Unexpected value type in payload"),
        ({"L": [[]]}, "Unrecognized collection type class com.amazonaws.dynamodb.v20120810.AttributeValue"),
        ({"M": {"a": 5}}, "Unexpected value type in payload"),
        ({"S": 5, "N": "1"}, "NUMBER_VALUE cannot be converted to String"),
    ],
)
def test_wrong_json_types_are_serialization_errors(av, message):
    exc = rejects(av, message, SerializationException)
    assert exc.wire_type == "com.amazon.coral.service#SerializationException"


# ---------------------------------------------------------------- scalars


def test_numbers_are_normalized_and_checked():
    assert validate_value({"N": "01.50"}) == {"N": "1.5"}
    assert validate_value({"N": "-0"}) == {"N": "0"}
    assert validate_value({"N": "1E+2"}) == {"N": "100"}
    rejects({"N": "abc"}, "The parameter cannot be converted to a numeric value: abc")
    rejects({"N": ""}, "The parameter cannot be converted to a numeric value")
    rejects({"N": " 1"}, "The parameter cannot be converted to a numeric value:  1")
    rejects({"N": "1e126"}, "Number overflow. Attempting to store a number with magnitude larger than supported range")
    rejects({"N": "-1e-131"}, "Number underflow. Attempting to store a number with magnitude smaller than supported range")
    rejects({"N": "1." + "0" * 37 + "1"}, "Attempting to store more than 38 significant digits in a Number")
    # Zero with an exponent out of range is refused as any number would be.
    assert validate_value({"N": "0e125"}) == {"N": "0"}
    rejects({"N": "0e126"}, "Number overflow. Attempting to store a number with magnitude larger than supported range")
    rejects({"N": "-0e-131"}, "Number underflow. Attempting to store a number with magnitude smaller than supported range")
    # Exponents too large for Decimal: out of range within 64 bits, not a number beyond.
    rejects({"N": "1e1000000000000000000"},
            "Number overflow. Attempting to store a number with magnitude larger than supported range")
    rejects({"N": "1e-9223372036854775808"},
            "Number underflow. Attempting to store a number with magnitude smaller than supported range")
    rejects({"N": "1e9223372036854775808"}, "The parameter cannot be converted to a numeric value: 1e9223372036854775808")


def test_unchanged_values_are_returned_as_is():
    for av in ({"S": "x"}, {"N": "12.5"}, {"B": "YWFh"}, {"BOOL": False}, {"NULL": True},
               {"SS": ["", "a"]}, {"NS": ["-2", "1"]}, {"BS": ["", "YQ=="]},
               {"L": [{"S": "a"}]}, {"M": {"a": {"N": "1"}}}):
        assert validate_value(av) is av


def test_sets_are_kept_in_dynamodbs_order():
    # Strings and binaries by their bytes, numbers by value.
    assert validate_value({"SS": ["b", "a", "", "\u00e9", "Z"]}) == {"SS": ["", "Z", "a", "b", "\u00e9"]}
    assert validate_value({"NS": ["10", "9", "-1", "1.50"]}) == {"NS": ["-1", "1.5", "9", "10"]}
    assert validate_value({"BS": ["/w==", "AA==", "gA=="]}) == {"BS": ["AA==", "gA==", "/w=="]}  # 0x00 < 0x80 < 0xff


def test_nested_numbers_are_normalized_without_touching_the_input():
    av = {"L": [{"S": "a"}, {"M": {"x": {"N": "1.0"}, "y": {"S": "b"}}}]}
    out = validate_value(av)
    assert out == {"L": [{"S": "a"}, {"M": {"x": {"N": "1"}, "y": {"S": "b"}}}]}
    assert av["L"][1]["M"]["x"] == {"N": "1.0"}
    assert out["L"][0] is av["L"][0]


def test_null_must_be_true():
    rejects({"NULL": False}, INVALID + "Null attribute value types must have the value of true")


def test_empty_strings_and_binaries_are_allowed_outside_keys():
    assert validate_value({"S": ""}) == {"S": ""}
    assert validate_value({"B": ""}) == {"B": ""}


# ---------------------------------------------------------------- sets


def test_empty_sets():
    rejects({"SS": []}, INVALID + "An string set  may not be empty")
    rejects({"NS": []}, INVALID + "An number set  may not be empty")
    rejects({"BS": []}, INVALID + "Binary sets should not be empty")


def test_duplicates():
    rejects({"SS": ["a", "a"]}, INVALID + "Input collection [a, a] contains duplicates.")
    rejects({"SS": ["b", "a", "b"]}, INVALID + "Input collection [b, a, b] contains duplicates.")
    rejects({"NS": ["1", "1.0"]}, "Input collection contains duplicates")
    rejects({"NS": ["1", "01", "2"]}, "Input collection contains duplicates")
    rejects({"BS": ["Yg==", "Yg=="]}, INVALID + "Input collection [Yg==, Yg==]of type BS contains duplicates.")


def test_number_set_is_normalized():
    assert validate_value({"NS": ["1.50", "2"]}) == {"NS": ["1.5", "2"]}
    rejects({"NS": ["1", "b", "a"]}, "The parameter cannot be converted to a numeric value: b")
    rejects({"NS": ["1", None]}, "The parameter cannot be converted to a numeric value")


def test_null_set_members():
    rejects({"SS": [None]}, INVALID + "An string set may not have a null string as a member")


# ---------------------------------------------------------------- nesting


def _nested(depth, leaf, kind="L"):
    value = leaf
    for _ in range(depth):
        value = {"L": [value]} if kind == "L" else {"M": {"x": value}}
    return value


@pytest.mark.parametrize("kind", ["L", "M"])
def test_nesting_limit(kind):
    message = ("Nesting Levels have exceeded supported limits: "
               "Attributes in the item have nested levels beyond supported limit")
    assert validate_item({"a": _nested(31, {"S": "x"}, kind)})
    for too_deep in (_nested(32, {"S": "x"}, kind), _nested(31, {"L": []}, kind)):
        with pytest.raises(ValidationException) as info:
            validate_item({"a": too_deep})
        assert info.value.message == message


# ---------------------------------------------------------------- items


def test_validate_item_returns_same_item_when_nothing_changes():
    item = {"user_id": {"S": "u00000001"}, "ts": {"N": "1700000000000"}, "tags": {"SS": ["a"]}}
    assert validate_item(item) is item


def test_validate_item_normalizes_and_keeps_order():
    item = {"a": {"S": "x"}, "b": {"N": "1.50"}, "c": {"S": "y"}}
    out = validate_item(item)
    assert list(out) == ["a", "b", "c"]
    assert out["b"] == {"N": "1.5"}
    assert item["b"] == {"N": "1.50"}


# ---------------------------------------------------------------- keys

SCHEMA = [("user_id", "HASH"), ("ts", "RANGE")]
TYPES = {"user_id": "S", "ts": "N"}
KEY_MISMATCH = "The provided key element does not match the schema"


def key_error(key, what="key", schema=SCHEMA, types=TYPES):
    with pytest.raises(ValidationException) as info:
        validate_key(key, schema, types, what=what)
    return info.value.message


def test_valid_key_is_normalized():
    key = validate_key({"user_id": {"S": "u1"}, "ts": {"N": "10.0"}}, SCHEMA, TYPES)
    assert key == {"user_id": {"S": "u1"}, "ts": {"N": "10"}}


@pytest.mark.parametrize(
    "key",
    [
        {"user_id": {"S": "a"}},
        {"user_id": {"S": "a"}, "ts": {"S": "1"}},
        {"user_id": {"S": "a"}, "tsx": {"N": "1"}},
        {"user_id": {"S": "a"}, "ts": {"N": "1"}, "x": {"N": "1"}},
        {"user_id": {"SS": ["a"]}, "ts": {"N": "1"}},
        {},
    ],
)
def test_key_not_matching_schema(key):
    assert key_error(key) == KEY_MISMATCH


def test_key_values_are_validated_first():
    assert key_error({"user_id": {}}) == (
        "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes")
    assert key_error({"user_id": {"S": "a"}, "ts": {"N": "x"}}) == (
        "The parameter cannot be converted to a numeric value: x")


def test_key_in_item():
    item = {"user_id": {"S": "a"}, "ts": {"N": "1"}, "other": {"S": "x"}}
    assert validate_key(item, SCHEMA, TYPES, what="item") == {"user_id": {"S": "a"}, "ts": {"N": "1"}}
    assert key_error({"user_id": {"S": "a"}}, "item") == INVALID + "Missing the key ts in the item"
    assert key_error({"ts": {"N": "1"}}, "item") == INVALID + "Missing the key user_id in the item"
    assert key_error({"user_id": {"N": "1"}, "ts": {"N": "1"}}, "item") == (
        INVALID + "Type mismatch for key user_id expected: S actual: N")
    assert key_error({"user_id": {"NULL": True}, "ts": {"N": "1"}}, "item") == (
        INVALID + "Type mismatch for key user_id expected: S actual: NULL")


@pytest.mark.parametrize("what", ["key", "item"])
def test_empty_key_values(what):
    assert key_error({"user_id": {"S": ""}, "ts": {"N": "1"}}, what) == (
        "One or more parameter values are not valid. The AttributeValue for a key attribute "
        "cannot contain an empty string value. Key: user_id")
    schema, types = [("h", "HASH"), ("r", "RANGE")], {"h": "N", "r": "B"}
    assert key_error({"h": {"N": "1"}, "r": {"B": ""}}, what, schema, types) == (
        "One or more parameter values are not valid. The AttributeValue for a key attribute "
        "cannot contain an empty binary value. Key: r")


@pytest.mark.parametrize("what", ["key", "item"])
def test_key_size_limits(what):
    hash_message = INVALID + "Size of hashkey has exceeded the maximum size limit of2048 bytes"
    range_message = INVALID + "Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
    validate_key({"user_id": {"S": "a" * 2048}, "ts": {"N": "1"}}, SCHEMA, TYPES, what=what)
    assert key_error({"user_id": {"S": "a" * 2049}, "ts": {"N": "1"}}, what) == hash_message
    # UTF-8 bytes count, not characters.
    assert key_error({"user_id": {"S": "\u00e9" * 1025}, "ts": {"N": "1"}}, what) == hash_message
    schema, types = [("h", "HASH"), ("r", "RANGE")], {"h": "S", "r": "B"}
    ok = {"h": {"S": "a"}, "r": {"B": "YWFh" * 341 + "YQ=="}}  # 1024 bytes
    validate_key(ok, schema, types, what=what)
    too_long = {"h": {"S": "a"}, "r": {"B": "YWFh" * 342}}  # 1026 bytes
    assert key_error(too_long, what, schema, types) == range_message
    assert key_error({"h": {"S": "a"}, "r": {"S": "b" * 1025}}, what, schema, {"h": "S", "r": "S"}) == range_message


# ---------------------------------------------------------------- one pass: checked item and its size

_numbers = st.one_of(
    st.integers(-10**20, 10**20).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(lambda d: str(d)),
    st.sampled_from(["007", "1.500", "-0.0", "1E+3", "0.00012e2", "12.50", "\u0661\u0662", "\u00b2", "1" * 39, "1" + "0" * 38]),
)
_scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=12)),
    st.builds(lambda n: {"N": n}, _numbers),
    st.builds(lambda b: {"B": base64.b64encode(b).decode()}, st.binary(max_size=12)),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda t, v: {t: v}, st.sampled_from(["S", "N", "M", "L", "SS", "NULL"]), st.sampled_from([None, 5, "x", [], {}])),
    st.builds(lambda v: {"SS": sorted(v)}, st.sets(st.text(max_size=6), min_size=1, max_size=4)),
    st.builds(lambda v: {"NS": [str(n) for n in sorted(v)]}, st.sets(st.integers(-999, 999), min_size=1, max_size=4)),
)
_names = st.text(min_size=1, max_size=8)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.builds(lambda v: {"L": v}, st.lists(inner, max_size=3)),
        st.builds(lambda v: {"M": v}, st.dictionaries(_names, inner, max_size=3)),
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_names, _values, min_size=1, max_size=6))
def test_sized_item_is_the_checked_item_and_its_size(item):
    """validate_sized_item checks and sizes in one pass what validate_value
    (attribute by attribute) and item_size compute separately, errors and
    unnormalized numbers included."""
    try:
        expected = {name: validate_value(av) for name, av in item.items()}
    except (ValidationException, SerializationException) as exc:
        with pytest.raises(type(exc)) as info:
            validate_sized_item(item)
        assert str(info.value) == str(exc)
        return
    checked, size = validate_sized_item(item)
    assert checked == expected
    assert size == item_size(expected)


def test_sized_item_counts_normalized_numbers():
    # "001.500" is stored as "1.5": 1 byte plus the base-100 digits "01 50";
    # a map is 3 bytes plus 1 per element; "10" is 1 byte plus "10".
    checked, size = validate_sized_item({"n": {"N": "001.500"}, "m": {"M": {"x": {"N": "10"}}}})
    assert checked == {"n": {"N": "1.5"}, "m": {"M": {"x": {"N": "10"}}}}
    assert size == (len("n") + 3) + (len("m") + 3 + 1 + len("x") + 2)


def test_an_empty_name_in_a_key_is_refused_before_the_schema_is_matched():
    with pytest.raises(ValidationException) as info:
        validate_key({"pk": {"S": "a"}, "": {"S": "x"}}, [("pk", "HASH")], {"pk": "S"})
    assert info.value.message == "Empty attribute name"


@pytest.mark.parametrize("item", [
    {"": {"S": "x"}},
    {"m": {"M": {"inner": {"M": {"": {"N": "1"}}}}}},
    {"l": {"L": [{"M": {"": {"S": "x"}}}]}},
])
def test_an_empty_name_is_refused_at_any_depth_of_an_item(item):
    with pytest.raises(ValidationException) as info:
        validate_item(item)
    assert info.value.message == "Empty attribute name"
