"""The legacy (pre-expression) parameters converted to the expression objects.

Expected, QueryFilter/ScanFilter, AttributeUpdates, KeyConditions and
AttributesToGet become the same Condition, Update, KeyCondition and Projection
objects the expression parsers produce, so the API layer treats both alike.
Validation follows DynamoDB's messages for these parameters.
"""

from __future__ import annotations

from decimal import Decimal

from shoal.errors import ValidationException, validation_errors
from shoal.errors import INVALID_PARAMETERS as _INVALID
from shoal.model.numbers import add, format_number
from shoal.model.values import MAX_NAME_BYTES, NAME_TOO_LONG, check_attribute_names, sorted_set, validate_value

from .evaluator import Condition
from .keycondition import KeyCondition
from .projection import Projection
from .update import Update, set_difference, set_union
from .values import JAVA_TYPE_NAMES, SCALAR_ORDERED, SET_TYPES, begins_with, contains, equals, ordering_key, type_of


# operator -> (number of arguments or None for "one or more", allowed types or None for any)
_OPERATORS = {
    "EQ": (1, None), "NE": (1, None),
    "LE": (1, SCALAR_ORDERED), "LT": (1, SCALAR_ORDERED), "GE": (1, SCALAR_ORDERED), "GT": (1, SCALAR_ORDERED),
    "NOT_NULL": (0, None), "NULL": (0, None),
    "CONTAINS": (1, SCALAR_ORDERED), "NOT_CONTAINS": (1, SCALAR_ORDERED),
    "BEGINS_WITH": (1, frozenset({"S", "B"})),
    "IN": (None, SCALAR_ORDERED), "BETWEEN": (2, SCALAR_ORDERED),
}


def _check_arguments(op: str, values: list) -> None:
    if op not in _OPERATORS:
        raise ValidationException("Comparison type does not exist in DynamoDB")
    count, allowed = _OPERATORS[op]
    if (count is None and not values) or (count is not None and len(values) != count):
        raise ValidationException(f"{_INVALID}Invalid number of argument(s) for the {op} ComparisonOperator")
    for value in values:
        kind = type_of(value)
        if allowed is not None and kind not in allowed:
            raise ValidationException(f"{_INVALID}ComparisonOperator {op} is not valid for {kind} AttributeValue type")
    if op in ("IN", "BETWEEN") and len({type_of(v) for v in values}) > 1:
        raise ValidationException(f"{_INVALID}AttributeValues inside AttributeValueList must be of same type")
    if op == "BETWEEN" and ordering_key(values[0])[1] > ordering_key(values[1])[1]:
        raise ValidationException(
            "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound"
        )


def _predicate(name: str, op: str, values: list):
    """item -> bool for one legacy condition on a top-level attribute."""
    if op == "NULL":
        return lambda item: name not in item
    if op == "NOT_NULL":
        return lambda item: name in item
    if op == "EQ":
        wanted = values[0]
        return lambda item: name in item and equals(item[name], wanted)
    if op == "NE":
        wanted = values[0]
        return lambda item: name not in item or not equals(item[name], wanted)
    if op == "IN":
        return lambda item: name in item and any(equals(item[name], v) for v in values)
    if op == "CONTAINS":
        return lambda item: contains(item.get(name), values[0])
    if op == "NOT_CONTAINS":
        return lambda item: name in item and not contains(item[name], values[0])
    if op == "BEGINS_WITH":
        return lambda item: begins_with(item.get(name), values[0])
    keys = [ordering_key(v) for v in values]

    def compare(item):
        key = ordering_key(item.get(name))
        if key is None or any(key[0] != k[0] for k in keys):
            return False
        return _ORDER[op](key[1], [k[1] for k in keys])

    return compare


_ORDER = {
    "LT": lambda a, b: a < b[0], "LE": lambda a, b: a <= b[0],
    "GT": lambda a, b: a > b[0], "GE": lambda a, b: a >= b[0],
    "BETWEEN": lambda a, b: b[0] <= a <= b[1],
}


def _combine(predicates: list, conditional_operator: str | None, count: int) -> Condition:
    if conditional_operator is not None:
        if conditional_operator not in ("AND", "OR"):
            raise ValidationException(validation_errors(
                [f"Value '{conditional_operator}' at 'conditionalOperator' failed to satisfy constraint: "
                 "Member must satisfy enum value set: [OR, AND]"]))
        if count < 2:
            raise ValidationException(
                "ConditionalOperator can only be used when Filter or Expected has two or more elements"
            )
    parts = tuple(predicates)
    if conditional_operator == "OR":
        return Condition(lambda item: any(p(item) for p in parts))
    return Condition(lambda item: all(p(item) for p in parts))


def _check_names(names) -> None:
    """Refuse an empty attribute name, and one of more than 65,535 UTF-8
    bytes (the request's shape counts characters, so only a name of
    multi-byte characters gets this far), as an item's names are refused."""
    check_attribute_names(names)
    for name in names:
        if not name.isascii() and len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ValidationException(NAME_TOO_LONG)


def condition_from_expected(expected: dict, conditional_operator: str | None = None) -> Condition:
    """The Expected parameter of PutItem/UpdateItem/DeleteItem as a Condition."""
    _check_names(expected)
    predicates = [_expected_predicate(name, spec) for name, spec in expected.items()]
    return _combine(predicates, conditional_operator, len(expected))


def _checked_values(values: list | None) -> list | None:
    """A legacy parameter's AttributeValueList, each value checked and
    normalized as any attribute value is (empty sets, numbers...)."""
    return None if values is None else [validate_value(value) for value in values]


def _expected_predicate(name: str, spec: dict):
    exists = spec.get("Exists")
    value = spec.get("Value")
    if value is not None:
        value = validate_value(value)
    op = spec.get("ComparisonOperator")
    values = _checked_values(spec.get("AttributeValueList"))
    if op is not None:
        if exists is not None:
            raise ValidationException(f"{_INVALID}Exists and ComparisonOperator cannot be used together for Attribute: {name}")
        if value is not None and values is not None:
            raise ValidationException(f"{_INVALID}Value and AttributeValueList cannot be used together for Attribute: {name}")
        if value is None and values is None and op in _OPERATORS and _OPERATORS[op][0] != 0:
            raise ValidationException(
                f"{_INVALID}Value or AttributeValueList must be used with ComparisonOperator: {op} for Attribute: {name}"
            )
        values = [value] if value is not None else (values or [])
        _check_arguments(op, values)
        return _predicate(name, op, values)
    if values is not None:
        raise ValidationException(f"{_INVALID}AttributeValueList can only be used with a ComparisonOperator for Attribute: {name}")
    if exists is False:
        if value is not None:
            raise ValidationException(f"{_INVALID}Value cannot be used when Exists is false for Attribute: {name}")
        return _predicate(name, "NULL", [])
    if value is None:
        state = "true" if exists else "null"
        raise ValidationException(f"{_INVALID}Value must be provided when Exists is {state} for Attribute: {name}")
    return _predicate(name, "EQ", [value])


def condition_from_filter(filter: dict, conditional_operator: str | None = None, kind: str = "QueryFilter") -> Condition:
    """A QueryFilter or ScanFilter as a Condition."""
    _check_names(filter)
    predicates = []
    for name, spec in filter.items():
        op = spec.get("ComparisonOperator")
        values = _checked_values(spec.get("AttributeValueList")) or []
        _check_arguments(op, values)
        predicates.append(_predicate(name, op, values))
    condition = _combine(predicates, conditional_operator, len(filter))
    condition.top_level_names = frozenset(filter)
    return condition


def key_condition_from_key_conditions(key_conditions: dict) -> KeyCondition:
    """KeyConditions of a Query as a KeyCondition (validated later against the
    key schema like a KeyConditionExpression)."""
    _check_names(key_conditions)
    conditions = []
    for name, spec in key_conditions.items():
        op = spec.get("ComparisonOperator")
        values = _checked_values(spec.get("AttributeValueList")) or []
        _check_arguments(op, values)
        if op not in ("EQ", "LT", "LE", "GT", "GE", "BETWEEN", "BEGINS_WITH"):
            raise ValidationException("Attempted conditional constraint is not an indexable operation")
        conditions.append((name, op, values))
    if len(conditions) > 8:  # four partition and four sort attributes at most (multi-attribute keys)
        raise ValidationException("Conditions can be of length 1 or 2 only")
    return KeyCondition(conditions, legacy=True)  # more than 2 only for multi-attribute keys


def projection_from_attributes_to_get(names: list) -> Projection:
    """AttributesToGet as a Projection (duplicates are an error)."""
    _check_names(names)
    seen = set()
    for name in names:
        if name in seen:
            raise ValidationException(f"{_INVALID}Duplicate value in attribute name: {name}")
        seen.add(name)
    return Projection([(name,) for name in names])


class LegacyUpdate(Update):
    """AttributeUpdates: PUT, DELETE (whole attribute or set elements) and ADD
    (numbers, sets and, unlike UpdateExpression's ADD, lists) on top-level
    attributes, with the legacy error messages."""

    __slots__ = ("actions",)

    def __init__(self, actions: list[tuple[str, str, dict | None]]):
        super().__init__([], [], [], [], [(name,) for name, _, _ in actions])
        self.actions = actions

    def apply(self, item: dict, missing: bool = False) -> tuple[dict, bool]:
        new = dict(item)
        changed = False
        for name, action, value in self.actions:
            if action == "PUT":
                new[name] = value
                changed = True
            elif action == "DELETE":
                changed = _legacy_delete(new, name, value) or changed
            else:
                changed = _legacy_add(new, name, value) or changed
        return new, changed


def update_from_attribute_updates(attribute_updates: dict) -> Update:
    """The AttributeUpdates parameter of UpdateItem as an Update."""
    _check_names(attribute_updates)
    actions = []
    for name, spec in attribute_updates.items():
        action = spec.get("Action") or "PUT"
        value = spec.get("Value")
        if value is not None:
            value = validate_value(value)
        if action not in ("PUT", "DELETE", "ADD"):
            raise ValidationException("Member must satisfy enum value set: [ADD, DELETE, PUT]")
        if value is None and action != "DELETE":
            raise ValidationException(f"{_INVALID}Only DELETE action is allowed when no attribute value is specified")
        kind = type_of(value) if value is not None else None
        if action == "DELETE" and value is not None and kind not in SET_TYPES:
            raise ValidationException(
                f"{_INVALID}DELETE action with value is not supported for the type {JAVA_TYPE_NAMES[kind]}"
            )
        if action == "ADD" and kind != "N" and kind != "L" and kind not in SET_TYPES:
            raise ValidationException(f"{_INVALID}ADD action is not supported for the type {JAVA_TYPE_NAMES[kind]}")
        actions.append((name, action, value))
    return LegacyUpdate(actions)


def _type_mismatch() -> ValidationException:
    return ValidationException("Type mismatch for attribute to update")


def _legacy_delete(item: dict, name: str, value: dict | None) -> bool:
    current = item.get(name)
    if current is None:
        return False
    if value is None:
        del item[name]
        return True
    changed, remaining = set_difference(current, value, _type_mismatch)
    if not changed:
        return False
    if remaining is not None:
        item[name] = remaining
    else:
        del item[name]
    return True


def _legacy_add(item: dict, name: str, value: dict) -> bool:
    current = item.get(name)
    kind = type_of(value)
    if current is None:
        item[name] = value
        return True
    if kind not in current:
        raise _type_mismatch()
    if kind == "N":
        item[name] = {"N": format_number(add(Decimal(current["N"]), Decimal(value["N"])))}
        return True
    if kind == "L":
        item[name] = {"L": current["L"] + value["L"]}
        return True
    extra = set_union(current[kind], value, kind)
    if extra:
        item[name] = {kind: sorted_set(kind, current[kind] + extra)}
    return bool(extra)
