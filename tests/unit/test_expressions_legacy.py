"""Legacy parameters (Expected, QueryFilter/ScanFilter, AttributeUpdates,
KeyConditions, AttributesToGet) converted to expression objects."""

from __future__ import annotations

import pytest

from shoal.errors import ValidationException
from shoal.expressions.legacy import (
    condition_from_expected,
    condition_from_filter,
    key_condition_from_key_conditions,
    projection_from_attributes_to_get,
    update_from_attribute_updates,
)

S = {"S": "x"}
N = {"N": "1"}
P = "One or more parameter values were invalid: "


def error_of(fn) -> str:
    with pytest.raises(ValidationException) as info:
        fn()
    return info.value.message


@pytest.mark.parametrize("expected, message", [
    ({"a": {"Exists": True}}, P + "Value must be provided when Exists is true for Attribute: a"),
    ({"a": {"Exists": False, "Value": S}}, P + "Value cannot be used when Exists is false for Attribute: a"),
    ({"a": {}}, P + "Value must be provided when Exists is null for Attribute: a"),
    ({"a": {"ComparisonOperator": "EQ"}}, P + "Value or AttributeValueList must be used with ComparisonOperator: EQ for Attribute: a"),
    ({"a": {"ComparisonOperator": "EQ", "AttributeValueList": [S, S]}}, P + "Invalid number of argument(s) for the EQ ComparisonOperator"),
    ({"a": {"ComparisonOperator": "NULL", "AttributeValueList": [S]}}, P + "Invalid number of argument(s) for the NULL ComparisonOperator"),
    ({"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [N, S]}}, P + "AttributeValues inside AttributeValueList must be of same type"),
    ({"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "5"}, N]}}, "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound"),
    ({"a": {"ComparisonOperator": "IN", "AttributeValueList": []}}, P + "Invalid number of argument(s) for the IN ComparisonOperator"),
    ({"a": {"ComparisonOperator": "LT", "AttributeValueList": [{"L": []}]}}, P + "ComparisonOperator LT is not valid for L AttributeValue type"),
    ({"a": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [{"SS": ["a"]}]}}, P + "ComparisonOperator CONTAINS is not valid for SS AttributeValue type"),
    ({"a": {"ComparisonOperator": "XX", "AttributeValueList": [N]}}, "Comparison type does not exist in DynamoDB"),
    ({"a": {"ComparisonOperator": "EQ", "AttributeValueList": [N], "Value": N}}, P + "Value and AttributeValueList cannot be used together for Attribute: a"),
    ({"a": {"ComparisonOperator": "EQ", "AttributeValueList": [N], "Exists": True}}, P + "Exists and ComparisonOperator cannot be used together for Attribute: a"),
])
def test_expected_errors(expected, message):
    assert error_of(lambda: condition_from_expected(expected, None)) == message


def test_conditional_operator_needs_two_elements():
    assert error_of(lambda: condition_from_expected({"a": {"Exists": False}}, "OR")) == (
        "ConditionalOperator can only be used when Filter or Expected has two or more elements"
    )


def test_expected_evaluation():
    cond = condition_from_expected({"a": {"Value": S}, "b": {"Exists": False}}, None)
    assert cond.evaluate({"a": S}) is True
    assert cond.evaluate({"a": S, "b": N}) is False
    assert cond.evaluate(None) is False
    either = condition_from_expected({"a": {"Value": S}, "b": {"Exists": False}}, "OR")
    assert either.evaluate(None) is True
    ne = condition_from_expected({"a": {"ComparisonOperator": "NE", "AttributeValueList": [S]}})
    assert ne.evaluate(None) is True and ne.evaluate({"a": S}) is False


@pytest.mark.parametrize("op, args, item, expected", [
    ("GT", [N], {"a": {"N": "2"}}, True), ("GT", [N], {"a": {"S": "2"}}, False),
    ("BETWEEN", [N, {"N": "3"}], {"a": {"N": "2"}}, True), ("IN", [S, N], {"a": N}, True),
    ("CONTAINS", [S], {"a": {"SS": ["x"]}}, True), ("NOT_CONTAINS", [S], {"a": {"S": "yyy"}}, True),
    ("BEGINS_WITH", [S], {"a": {"S": "xy"}}, True), ("NOT_NULL", [], {"a": N}, True), ("NULL", [], {}, True),
])
def test_filter_evaluation(op, args, item, expected):
    spec = {"a": {"ComparisonOperator": op, "AttributeValueList": args}}
    if op == "IN":
        spec["a"]["AttributeValueList"] = [S, {"S": "y"}] if item["a"] != N else [N, {"N": "7"}]
    assert condition_from_filter(spec, None, kind="ScanFilter").evaluate(item) is expected


@pytest.mark.parametrize("updates, message", [
    ({"a": {}}, P + "Only DELETE action is allowed when no attribute value is specified"),
    ({"a": {"Action": "ADD"}}, P + "Only DELETE action is allowed when no attribute value is specified"),
    ({"a": {"Action": "DELETE", "Value": S}}, P + "DELETE action with value is not supported for the type STRING"),
    ({"a": {"Action": "ADD", "Value": S}}, P + "ADD action is not supported for the type STRING"),
])
def test_attribute_updates_errors(updates, message):
    assert error_of(lambda: update_from_attribute_updates(updates)) == message


def test_attribute_updates_apply():
    update = update_from_attribute_updates({
        "n": {"Action": "ADD", "Value": {"N": "2"}}, "l": {"Action": "ADD", "Value": {"L": [S]}},
        "x": {"Action": "DELETE"}, "ss": {"Action": "DELETE", "Value": {"SS": ["a"]}}, "p": {"Value": S},
    })
    item = {"n": N, "x": S, "ss": {"SS": ["a"]}, "l": {"L": [N]}}
    new, changed = update.apply(item)
    assert new == {"n": {"N": "3"}, "l": {"L": [N, S]}, "p": S}
    assert changed and item["n"] == N
    assert update.top_level_names == {"n", "l", "x", "ss", "p"}
    mismatch = update_from_attribute_updates({"n": {"Action": "ADD", "Value": {"SS": ["q"]}}})
    assert error_of(lambda: mismatch.apply({"n": N})) == "Type mismatch for attribute to update"


def test_key_conditions():
    kc = key_condition_from_key_conditions({
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S]},
        "sk": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [N, {"N": "5"}]},
    })
    kc.validate("pk", "sk", {"pk": "S", "sk": "N"})
    assert (kc.partition_value, kc.sort_op, kc.sort_values) == (S, "BETWEEN", [N, {"N": "5"}])
    in_ = {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S]}, "sk": {"ComparisonOperator": "IN", "AttributeValueList": [N]}}
    assert error_of(lambda: key_condition_from_key_conditions(in_)) == "Attempted conditional constraint is not an indexable operation"
    gt = key_condition_from_key_conditions({"pk": {"ComparisonOperator": "GT", "AttributeValueList": [S]}})
    assert error_of(lambda: gt.validate("pk", "sk", {"pk": "S"})) == "Query key condition not supported"


def test_attributes_to_get():
    projection = projection_from_attributes_to_get(["a", "b"])
    assert projection.apply({"a": S, "c": N}) == {"a": S}


@pytest.mark.parametrize("convert", [
    lambda: condition_from_expected({"a": {"Exists": False}, "": {"Exists": False}}),
    lambda: condition_from_filter({"": {"ComparisonOperator": "NULL"}}),
    lambda: key_condition_from_key_conditions({"": {"ComparisonOperator": "EQ", "AttributeValueList": [S]}}),
    lambda: projection_from_attributes_to_get(["a", ""]),
    lambda: update_from_attribute_updates({"": {"Action": "PUT", "Value": S}}),
])
def test_an_empty_attribute_name_is_refused_by_every_legacy_parameter(convert):
    assert error_of(convert) == "Empty attribute name"
