"""Request shape validation driven by the API model: DynamoDB's "Coral" front end.

Before any DynamoDB operation runs, AWS's request framework (Coral) deserializes
the JSON body against the service model and then checks the model's constraints.
This module does the same from botocore's copy of the model, so Shoal rejects
malformed requests with DynamoDB's own errors, in the same two stages:

1. **Deserialization** (``SerializationException``, raised at the first problem):
   a JSON value of the wrong kind for its shape, e.g. a number where a string is
   expected ("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can
   not be converted to an String") or invalid base64 in a blob.  Unknown members
   are ignored and ``null`` means "absent", as in Coral.
2. **Constraints** (``ValidationException``, all problems at once, at most ten
   listed): required members, min/max length, value ranges, patterns and enums,
   in Coral's words, e.g. ``1 validation error detected: Value null at
   'tableName' failed to satisfy constraint: Member must not be null``.
   Paths use lowerCamelCase member names; list elements are ``name.N.member``
   (1-based) and map entries ``name.KEY.member``.  Constraints on the elements
   of a list or the keys/values of a map are reported once for the whole
   container ("Member must satisfy constraint: [...]", "Map value must satisfy
   constraint: [...]"), as Coral does.

Only the generic model layer lives here.  Rules DynamoDB checks inside the
operation (key schemas, expressions, table-name syntax for ARNs, item size...)
belong to the operation modules.

Other services' models (CloudWatch's) are checked by the same rules.  Where
DynamoDB departs from them by the name of a shape or an operation (its
recorded enum orders, its attribute values, its own sentences), the departure
is DynamoDB's alone (``Wording``, chosen by the model's serviceId): another
model's shape of the same name is checked and worded as Coral's rules say.

Where Coral coerces, ``validate`` normalizes the request **in place**, so the
operations see clean values: ``null`` members and unknown/``null`` members of
attribute values are removed, a fractional number given for an integer member
is truncated, and "true"/"false" strings given for a boolean become booleans.

Speed: each operation's input shape is compiled once (lazily, on first use)
into nested closures.  Attribute values (items, keys, expression values) are
checked by one hand-written loop rather than the generic structure checker,
because they dominate request bodies; see ``_check_attribute_value``.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import re
import zlib
from typing import Any, Callable

import orjson

from shoal.errors import (
    INVALID_PARAMETERS,
    SerializationException,
    UnknownOperationException,
    ValidationException,
    validation_errors,
)

MAX_LISTED_ERRORS = 10  # Coral lists at most ten constraint violations

# DynamoDB's by shape name (see ``Wording``; no other service's shapes of these names).
# Enum sets whose order in DynamoDB's messages differs from the model's order
# (recorded against real DynamoDB in dynalite's tests).
ENUM_MESSAGE_ORDER = {
    "ComparisonOperator": (
        "IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS"
    ),
    "Select": "SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES",
    "ScalarAttributeType": "B, N, S",
    "ReturnValue": "ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW",
    "ConditionalOperator": "OR, AND",
    "VectorDistanceFunction": "DOT_PRODUCT, COSINE, EUCLIDEAN",  # as recorded from DynamoDB
}

# Enums DynamoDB checks after the model, with its own message: an invalid
# TableClass is answered by shoal.api.tables, not as a constraint violation.
SERVICE_CHECKED_ENUMS = frozenset({"TableClass"})

NESTING_TOO_DEEP = (
    "Nesting Levels have exceeded supported limits: "
    "Attributes in the item have nested levels beyond supported limit"
)

ATTRIBUTE_VALUE_SHAPE = "AttributeValue"
# The item map of PutItem, BatchWriteItem's PutRequest and TransactWriteItems'
# Put: see ShapeValidator.validate(defer_items=True), which the dispatcher
# uses for PutItem and BatchWriteItem only (shoal.server.dispatch).
DEFERRED_ITEM_MAPS = frozenset({"PutItemInputAttributeMap"})
_JAVA_ATTRIBUTE_VALUE = "com.amazonaws.dynamodb.v20120810.AttributeValue"

# Checkers take (value, errors) and return the value (possibly coerced).  An
# error entry is [relative path, value, message, shape name]; parents prefix
# the path of the entries their children added, so no path is built unless a
# request is actually invalid.
Checker = Callable[[Any, list], Any]

# ---------------------------------------------------------------- wire type errors

_TRUNCATING = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber"
_START_LIST = "Start of list found where not expected"
_START_MAP = "Start of structure or map found where not expected."


def _is_number(value: Any) -> bool:
    cls = value.__class__
    return cls is int or cls is float


def _string_type_error(value: Any) -> SerializationException:
    if value.__class__ is bool:
        return SerializationException("class java.lang.Boolean can not be converted to an String")
    if _is_number(value):
        return SerializationException(f"{_TRUNCATING} can not be converted to an String")
    return _container_error(value)


def _container_error(value: Any) -> SerializationException:
    if value.__class__ is list:
        return SerializationException(_START_LIST)
    return SerializationException(_START_MAP)


def _structure_type_error(value: Any) -> SerializationException:
    if value.__class__ is list:
        return SerializationException(_START_LIST)
    return SerializationException("Expected null")


def _list_type_error(value: Any) -> SerializationException:
    if value.__class__ is dict:
        return SerializationException(_START_MAP)
    return SerializationException("Expected list or null")


def _map_type_error(value: Any) -> SerializationException:
    if value.__class__ is list:
        return SerializationException(_START_LIST)
    return SerializationException("Expected map or null")


def _check_string_type(value: Any) -> str:
    if value.__class__ is not str:
        raise _string_type_error(value)
    return value


def _check_boolean_type(value: Any) -> bool:
    """Booleans; Coral also reads the strings "true" and "false"."""
    if value.__class__ is bool:
        return value
    if value.__class__ is str:
        lowered = value.lower()
        if lowered == "true" or lowered == "false":
            return lowered == "true"
        raise SerializationException(f"'{value.upper()}' can not be converted to an Boolean")
    if _is_number(value):
        raise SerializationException(f"{_TRUNCATING} can not be converted to an Boolean")
    raise _container_error(value)


def _number_type_checker(java_type: str, integral: bool) -> Callable[[Any], Any]:
    """Integer/Long/Double members: JSON numbers only; integers truncate
    fractions, and keep only the low 32 (Integer) or 64 (Long) bits of a
    number too wide for them, as Java's intValue()/longValue() do with
    Coral's TruncatingBigNumber."""
    bits = 32 if java_type == "Integer" else 64
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)

    def check(value: Any) -> Any:
        cls = value.__class__
        if cls is int:
            return value if low <= value < high else _low_bits(value, bits)
        if cls is float:
            if not integral:
                return value
            value = math.floor(value)
            return value if low <= value < high else _low_bits(value, bits)
        if cls is bool:
            raise SerializationException(f"class java.lang.Boolean can not be converted to an {java_type}")
        if cls is str:
            raise SerializationException(f"class java.lang.String can not be converted to an {java_type}")
        raise _container_error(value)

    return check


def _low_bits(value: int, bits: int) -> int:
    """The two's-complement integer of ``value``'s low ``bits`` bits."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _check_timestamp_type(value: Any) -> Any:
    """Timestamps travel as epoch seconds in the JSON protocol."""
    if _is_number(value):
        return value
    if value.__class__ is bool:
        raise SerializationException("class java.lang.Boolean can not be converted to an Date")
    if value.__class__ is str:
        raise SerializationException("class java.lang.String can not be converted to an Date")
    raise _container_error(value)


_BASE64_BAD = re.compile(r"[^a-zA-Z0-9+/=]|=[^=]")
_BASE64_VALUES = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _check_blob_type(value: Any) -> str:
    """Blobs are base64 text; Coral decodes them strictly (and says so oddly)."""
    if value.__class__ is not str:
        if value.__class__ is bool:
            raise SerializationException("class java.lang.Boolean can not be converted to a Blob")
        if _is_number(value):
            raise SerializationException(f"{_TRUNCATING} can not be converted to a Blob")
        raise _container_error(value)
    if len(value) % 4:
        raise SerializationException(
            f"'{value}' can not be converted to a Blob: "
            f"Base64 encoded length is expected a multiple of 4 bytes but found: {len(value)}"
        )
    bad = _BASE64_BAD.search(value)
    if bad:
        raise SerializationException(
            f"'{value}' can not be converted to a Blob: Invalid Base64 character: '{bad.group()[0]}'"
        )
    if value and not _canonical_base64_tail(value):
        raise SerializationException(
            f"'{value}' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
        )
    return value


def _canonical_base64_tail(text: str) -> bool:
    """The unused low bits of the last non-pad character must be zero."""
    stripped = text.rstrip("=")
    padding = len(text) - len(stripped)
    if padding > 2 or not stripped:
        return padding == 0
    if padding == 0:
        return True
    last = _BASE64_VALUES[stripped[-1]]
    return not last & (0x0F if padding == 2 else 0x03)


# ---------------------------------------------------------------- attribute values


def _null_in_set(kind: str) -> ValidationException:
    if kind == "NS":
        return ValidationException("The parameter cannot be converted to a numeric value")
    if kind == "BS":
        return ValidationException(
            INVALID_PARAMETERS + "Binary sets may not contain null or empty values"
        )
    return ValidationException(
        INVALID_PARAMETERS + "An string set may not have a empty string as a member"
    )


def _set_checker(kind: str, element: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value.__class__ is not list:
            raise _list_type_error(value)
        for item in value:
            if item is None:
                raise _null_in_set(kind)
            element(item)
        return value

    return check


_EMPTY_VALUE = "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"


def _check_value_list(value: Any) -> Any:
    if value.__class__ is not list:
        raise _list_type_error(value)
    for item in value:
        if item.__class__ is dict:
            _check_attribute_value(item)
        elif item is None:
            raise ValidationException(_EMPTY_VALUE)
        else:
            raise _structure_type_error(item)
    return value


def _check_value_map(value: Any) -> Any:
    if value.__class__ is not dict:
        raise _map_type_error(value)
    for item in value.values():
        if item.__class__ is dict:
            _check_attribute_value(item)
        elif item is None:
            raise ValidationException(_EMPTY_VALUE)
        else:
            raise _structure_type_error(item)
    return value


_ATTRIBUTE_VALUE_MEMBERS: dict[str, Callable[[Any], Any]] = {
    "S": _check_string_type,
    "N": _check_string_type,
    "B": _check_blob_type,
    "SS": _set_checker("SS", _check_string_type),
    "NS": _set_checker("NS", _check_string_type),
    "BS": _set_checker("BS", _check_blob_type),
    "M": _check_value_map,
    "L": _check_value_list,
    "NULL": _check_boolean_type,
    "BOOL": _check_boolean_type,
}


def _check_attribute_value(value: dict) -> None:
    """JSON types of one attribute value (a dict), recursively.

    The hot path: ``{"S": "..."}`` and ``{"N": "..."}`` cost one comparison and
    one class test.  Unknown and null members are dropped (Coral ignores them),
    so the model layer sees an empty value where Coral would.
    """
    drop = None
    for kind, item in value.items():
        if (kind == "S" or kind == "N") and item.__class__ is str:
            continue
        check = _ATTRIBUTE_VALUE_MEMBERS.get(kind)
        if check is None or item is None:
            drop = [kind] if drop is None else drop + [kind]
            continue
        coerced = check(item)
        if coerced is not item:
            value[kind] = coerced
    if drop:
        for kind in drop:
            del value[kind]


def _attribute_value_member(value: Any, errors: list) -> Any:
    if value.__class__ is not dict:
        raise _structure_type_error(value)
    _check_attribute_value(value)
    return value


def _attribute_value_shallow(value: Any, errors: list) -> Any:
    if value.__class__ is not dict:
        raise _structure_type_error(value)
    return value


# ---------------------------------------------------------------- constraints


class Constraints:
    """The model's constraints on one shape, as Coral words them.

    ``ok`` is the fast all-clear test run on every request; ``failures`` names
    the violated constraints and runs only when ``ok`` said no.
    """

    __slots__ = ("ok", "tests", "aggregate")

    def __init__(self, tests: list[tuple[Callable[[Any], bool], str]], ok: Callable[[Any], bool]) -> None:
        self.tests = tests  # (test, message) in the order Coral lists them per member
        self.ok = ok
        self.aggregate = _aggregate(tests)  # "[...]" as listed for list elements / map values

    def failures(self, value: Any) -> list[str]:
        return [message for test, message in self.tests if not test(value)]


def _java_pattern(pattern: str) -> re.Pattern | None:
    """Translate the few Java regex features the model uses; None if untranslatable."""
    text = pattern.replace(r"\p{Print}", r"\x20-\x7E" if "[" in pattern else r"[\x20-\x7E]")
    text = text.replace(r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF")
    try:
        return re.compile(text, re.ASCII)
    except re.error:
        return None


def _bound(value: Any, shape_type: str) -> str:
    if shape_type in ("double", "float"):
        return repr(float(value))
    return str(value)


def _table_arn_constraints(shape: dict, name_shape: dict) -> Constraints:
    """The model types the data plane's TableName (and RequestItems' keys)
    as TableArn (1 to 1024 characters, nothing more), since an ARN may stand
    for the name; DynamoDB still holds a name that is not an ARN to the
    model's TableName rules (``name_shape``) and words its errors so."""
    def name_rule(test):
        return lambda v: not v or v.startswith("arn:") or test(v)

    own = compile_constraints({k: v for k, v in shape.items() if k != "pattern"}, "TableArn", DYNAMODB)
    names = compile_constraints(name_shape, "TableName", DYNAMODB)
    tests = own.tests + [(name_rule(test), message) for test, message in names.tests]
    seen: set[str] = set()  # names found valid: most requests name one of a few tables

    def ok(v: Any) -> bool:
        if v in seen:
            return True
        valid = names.ok(v) or (own.ok(v) and v.startswith("arn:"))
        if valid and len(seen) < 4096:
            seen.add(v)
        return valid

    constraints = Constraints(tests, ok)
    constraints.aggregate = names.aggregate  # as DynamoDB lists them for RequestItems' keys
    return constraints


def compile_constraints(shape: dict, shape_name: str, wording: "Wording | None" = None) -> Constraints | None:
    """The constraint checker of a shape, or None if it has none; its enum
    worded as ``wording``'s service words it (Coral's rules without one)."""
    wording = wording or CORAL
    shape_type = shape["type"]
    tests: list[tuple[Callable[[Any], bool], str]] = []
    if "enum" in shape and shape_name not in wording.service_checked_enums:
        allowed = frozenset(shape["enum"])
        listed = wording.enum_order.get(shape_name) or ", ".join(shape["enum"])
        tests.append((allowed.__contains__, f"Member must satisfy enum value set: [{listed}]"))
    pattern_text = shape.get("pattern")
    if pattern_text is not None and shape_type == "string":
        compiled = _java_pattern(pattern_text)
        if compiled is not None:
            tests.append(
                (lambda v, m=compiled.fullmatch: m(v) is not None,
                 f"Member must satisfy regular expression pattern: {pattern_text}")
            )
    low, high = shape.get("min"), shape.get("max")
    if shape_type in ("string", "list", "map", "blob"):
        low = low or None  # a minimum length of 0 constrains nothing
        if low is not None:
            tests.append((lambda v, n=low: len(v) >= n, f"Member must have length greater than or equal to {low}"))
        if high is not None:
            tests.append((lambda v, n=high: len(v) <= n, f"Member must have length less than or equal to {high}"))
        sized = True
    else:
        if low is not None:
            tests.append(
                (lambda v, n=low: v >= n, f"Member must have value greater than or equal to {_bound(low, shape_type)}")
            )
        if high is not None:
            tests.append(
                (lambda v, n=high: v <= n, f"Member must have value less than or equal to {_bound(high, shape_type)}")
            )
        sized = False
    if not tests:
        return None
    return Constraints(tests, _fast_test(tests, sized, low, high))


def _fast_test(tests: list, sized: bool, low: Any, high: Any) -> Callable[[Any], bool]:
    """One predicate for the common cases, so a valid value costs one call."""
    if len(tests) == 1:
        return tests[0][0]
    if len(tests) == 2 and low is not None and high is not None:
        if sized:
            return lambda v: low <= len(v) <= high
        return lambda v: low <= v <= high
    predicates = tuple(test for test, _ in tests)

    def ok(value: Any) -> bool:
        for test in predicates:
            if not test(value):
                return False
        return True

    return ok


def _aggregate(tests: list[tuple[Callable[[Any], bool], str]]) -> str:
    """Coral lists a container's element constraints max first, then min, pattern, enum."""
    rank = {"less than": 0, "greater than": 1, "regular": 2, "enum": 3}

    def order(message: str) -> int:
        return next((r for key, r in rank.items() if key in message), 4)

    return "[" + ", ".join(sorted((m for _, m in tests), key=order)) + "]"


def lower_first(name: str) -> str:
    """Coral names members in messages by their lowerCamelCase name."""
    return name[:1].lower() + name[1:]


def _prefix(errors: list, start: int, segment: str) -> None:
    """Put ``segment`` in front of the paths of errors[start:]."""
    for entry in errors[start:]:
        entry[0] = f"{segment}.{entry[0]}" if entry[0] else segment


# ---------------------------------------------------------------- compiled shapes


class _Compiled:
    """A shape compiled for checking: JSON types + inner members, and own constraints."""

    __slots__ = ("check", "own", "name", "leaf")

    def __init__(self, check: Checker, own: Constraints | None, name: str, leaf: bool = False) -> None:
        self.check = check
        self.own = own
        self.name = name
        self.leaf = leaf  # checks types only: never adds errors itself


class _Compiler:
    """Compiles model shapes into checkers, once per shape."""

    def __init__(self, shapes: dict, check_attribute_values: bool, shallow_maps: frozenset = frozenset(),
                 wording: "Wording | None" = None) -> None:
        self.shapes = shapes
        self.check_attribute_values = check_attribute_values
        self.shallow_maps = shallow_maps  # attribute-value maps whose values are left unchecked
        self.wording = wording = wording or CORAL
        self.attribute_value = wording.attribute_value  # None: no shape is checked as an attribute value
        self.done: dict[str, _Compiled] = {}

    def _constraints(self, shape: dict, name: str) -> Constraints | None:
        if name == "TableArn" and self.wording.table_arn:
            return _table_arn_constraints(shape, self.shapes["TableName"])
        return compile_constraints(shape, name, self.wording)

    def shape(self, name: str) -> _Compiled:
        compiled = self.done.get(name)
        if compiled is not None:
            return compiled
        shape = self.shapes[name]
        # A placeholder breaks cycles: recursive shapes call through it.
        slot: list[Checker] = []
        placeholder = _Compiled(lambda v, e: slot[0](v, e), None, name)
        self.done[name] = placeholder
        check = self._checker(name, shape)
        slot.append(check)
        leaf = shape["type"] not in ("structure", "list", "map") or name == self.attribute_value
        compiled = _Compiled(check, self._constraints(shape, name), name, leaf)
        placeholder.own = compiled.own  # recursive references see the constraints too
        self.done[name] = compiled
        return compiled

    def _checker(self, name: str, shape: dict) -> Checker:
        kind = shape["type"]
        if name == self.attribute_value:
            return _attribute_value_member if self.check_attribute_values else _attribute_value_shallow
        if kind == "structure":
            return self._structure(shape)
        if kind == "list":
            return self._list(name, shape)
        if kind == "map":
            return self._map(name, shape)
        return _scalar_checker(_SCALAR_TYPES[kind])

    def _structure(self, shape: dict) -> Checker:
        members: dict[str, tuple] = {}
        for member_name, member in shape.get("members", {}).items():
            members[member_name] = (lower_first(member_name), self.shape(member["shape"]))
        required = tuple((n, lower_first(n)) for n in shape.get("required", ()))
        return _structure_checker(members, required)

    def _list(self, name: str, shape: dict) -> Checker:
        return _list_checker(self.shape(shape["member"]["shape"]), name)

    def _map(self, name: str, shape: dict) -> Checker:
        key_shape = self.shapes[shape["key"]["shape"]]
        keys = self._constraints(key_shape, shape["key"]["shape"])
        value = self.shape(shape["value"]["shape"])
        if value.own is None and value.name == self.attribute_value:
            deep = self.check_attribute_values and name not in self.shallow_maps
            check = _attribute_value_map if deep else _shallow_attribute_value_map
            return check if keys is None else _keyed_map_checker(check, keys, name)
        return _map_checker(keys, value, name)


def _scalar_checker(type_check: Callable[[Any], Any]) -> Checker:
    if type_check is _check_string_type:
        return _string_member
    return lambda value, errors: type_check(value)


def _string_member(value: Any, errors: list) -> Any:
    if value.__class__ is not str:
        raise _string_type_error(value)
    return value


_SCALAR_TYPES: dict[str, Callable[[Any], Any]] = {
    "string": _check_string_type,
    "boolean": _check_boolean_type,
    "integer": _number_type_checker("Integer", True),
    "long": _number_type_checker("Long", True),
    "double": _number_type_checker("Double", False),
    "float": _number_type_checker("Float", False),
    "timestamp": _check_timestamp_type,
    "blob": _check_blob_type,
}


def _report_own(own: Constraints, value: Any, errors: list, at: int, shape_name: str) -> None:
    """Insert a member's own violations before those of its inner members."""
    errors[at:at] = [["", value, message, shape_name] for message in own.failures(value)]


def _structure_checker(members: dict[str, tuple], required: tuple) -> Checker:
    get = members.get

    def check(value: Any, errors: list) -> Any:
        if value.__class__ is not dict:
            raise _structure_type_error(value)
        nulls = None
        for key, item in value.items():
            member = get(key)
            if member is None:
                continue  # Coral ignores unknown members
            if item is None:
                nulls = [key] if nulls is None else nulls + [key]
                continue
            lc, compiled = member
            if compiled.leaf:  # scalars add no errors of their own: skip the bookkeeping
                coerced = compiled.check(item, errors)
                start = len(errors)
            else:
                start = len(errors)
                coerced = compiled.check(item, errors)
            if coerced is not item:
                value[key] = coerced
            own = compiled.own
            if own is not None and not own.ok(coerced):
                _report_own(own, coerced, errors, start, compiled.name)
            if len(errors) != start:
                _prefix(errors, start, lc)
        if nulls:
            for key in nulls:
                del value[key]
        for name, lc in required:
            if name not in value:
                errors.append([lc, None, "Member must not be null", ""])
        return value

    return check


def _list_checker(element: _Compiled, shape_name: str) -> Checker:
    own = element.own
    element_check = element.check

    def check(value: Any, errors: list) -> Any:
        if value.__class__ is not list:
            raise _list_type_error(value)
        violated = False
        for index, item in enumerate(value):
            if item is None:
                errors.append([f"{index + 1}.member", None, "Member must not be null", ""])
                continue
            start = len(errors)
            coerced = element_check(item, errors)
            if coerced is not item:
                value[index] = coerced
            if own is not None and not violated and not own.ok(coerced):
                violated = True
            if len(errors) != start:
                _prefix(errors, start, f"{index + 1}.member")
        if violated:
            errors.append(["", value, f"Member must satisfy constraint: {own.aggregate}", shape_name])
        return value

    return check


def _map_checker(keys: Constraints | None, element: _Compiled, shape_name: str) -> Checker:
    own = element.own
    element_check = element.check

    def check(value: Any, errors: list) -> Any:
        if value.__class__ is not dict:
            raise _map_type_error(value)
        bad_key = bad_value = False
        for key, item in value.items():
            if keys is not None and not bad_key and not keys.ok(key):
                bad_key = True
            if item is None:
                errors.append([f"{key}.member", None, "Member must not be null", ""])
                continue
            start = len(errors)
            coerced = element_check(item, errors)
            if coerced is not item:
                value[key] = coerced
            if own is not None and not bad_value and not own.ok(coerced):
                bad_value = True
            if len(errors) != start:
                _prefix(errors, start, f"{key}.member")
        if bad_key:
            errors.append(["", value, f"Map keys must satisfy constraint: {keys.aggregate}", shape_name])
        if bad_value:
            errors.append(["", value, f"Map value must satisfy constraint: {own.aggregate}", shape_name])
        return value

    return check


def _attribute_value_map(value: Any, errors: list) -> Any:
    """Item, Key, ExpressionAttributeValues...: the hottest shape of all.

    A plain ``{"S": "..."}`` or ``{"N": "..."}`` is recognized inline; anything
    else goes through ``_check_attribute_value``.
    """
    if value.__class__ is not dict:
        raise _map_type_error(value)
    for key, item in value.items():
        if item.__class__ is dict:
            scalar = item.get("S") or item.get("N")
            if scalar.__class__ is str and len(item) == 1:
                continue
            _check_attribute_value(item)
        elif item is None:
            errors.append([f"{key}.member", None, "Member must not be null", ""])
        else:
            raise _structure_type_error(item)
    return value


def _keyed_map_checker(check_values: Checker, keys: Constraints, shape_name: str) -> Checker:
    """An attribute-value map whose keys (attribute names) are constrained too."""
    ok = keys.ok
    high = _only_max_length(keys)

    def check(value: Any, errors: list) -> Any:
        check_values(value, errors)
        if value:
            if high is not None:
                bad = max(map(len, value)) > high  # one C-level pass over the names
            else:
                bad = not all(map(ok, value))
            if bad:
                errors.append(["", value, f"Map keys must satisfy constraint: {keys.aggregate}", shape_name])
        return value

    return check


def _only_max_length(constraints: Constraints) -> int | None:
    """The bound if a key shape's only constraint is a maximum length."""
    if len(constraints.tests) != 1:
        return None
    message = constraints.tests[0][1]
    prefix = "Member must have length less than or equal to "
    return int(message[len(prefix):]) if message.startswith(prefix) else None


def _shallow_attribute_value_map(value: Any, errors: list) -> Any:
    if value.__class__ is not dict:
        raise _map_type_error(value)
    return value


# ---------------------------------------------------------------- rendering


def render_value(value: Any, shape_name: str, shapes: dict, attribute_value: str | None = None) -> str:
    """A value as Java's toString shows it in Coral's messages (a value of
    the shape ``attribute_value`` names as DynamoDB's AttributeValue class)."""
    if value is None:
        return "null"
    if value.__class__ is bool:
        return "true" if value else "false"
    if value.__class__ is str:
        return value
    if value.__class__ in (int, float):
        return repr(value)
    shape = shapes.get(shape_name) or {}
    if value.__class__ is list:
        member = shape.get("member", {}).get("shape", "")
        return "[" + ", ".join(render_value(v, member, shapes, attribute_value) for v in value) + "]"
    if value.__class__ is dict:
        return _render_dict(value, shape_name, shape, shapes, attribute_value)
    return str(value)


def _render_dict(value: dict, shape_name: str, shape: dict, shapes: dict, attribute_value: str | None) -> str:
    if shape_name == attribute_value:
        return f"{_JAVA_ATTRIBUTE_VALUE}@{zlib.crc32(orjson.dumps(value)):x}"
    if shape.get("type") == "map":
        member = shape["value"]["shape"]
        return "{" + ", ".join(f"{k}={render_value(v, member, shapes, attribute_value)}"
                               for k, v in value.items()) + "}"
    parts = [
        f"{lower_first(name)}={render_value(value.get(name), member['shape'], shapes, attribute_value)}"
        for name, member in shape.get("members", {}).items()
    ]
    return f"{shape_name}({', '.join(parts)})"


# ---------------------------------------------------------------- the validator


def model_path(service: str) -> str:
    """Where botocore keeps the (newest) API model of ``service``."""
    # Locate botocore without importing it (its import costs tens of milliseconds).
    spec = importlib.util.find_spec("botocore")
    if spec is None or spec.origin is None:
        raise RuntimeError("botocore is required for its API models")
    root = os.path.join(os.path.dirname(spec.origin), "data", service)
    version = sorted(os.listdir(root))[-1]
    return os.path.join(root, version, "service-2.json.gz")


def load_model(path: str) -> dict:
    """Read a service model (gzip-compressed or plain JSON)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return orjson.loads(handle.read())


class ShapeValidator:
    """Checks request bodies against one service's API model, as Coral does.

    Build it once per process (``for_service`` caches); each operation's
    checker is compiled on first use, so start-up costs only reading the model
    (a few milliseconds).  ``wording`` is how the service departs from
    Coral's rules (``Wording``); by default the model's own service's
    (``wording_of``): DynamoDB's for DynamoDB's models, none for others.
    """

    _by_service: dict[str, "ShapeValidator"] = {}

    def __init__(self, model: dict, *, check_attribute_values: bool = True, wording: "Wording | None" = None) -> None:
        self._shapes = model["shapes"]
        self._inputs = {
            name: op["input"]["shape"] if "input" in op else None
            for name, op in model["operations"].items()
        }
        self.operations: set[str] = set(self._inputs)
        self.wording = wording = wording or wording_of(model)
        self._compiler = _Compiler(self._shapes, check_attribute_values, wording=wording)
        self._deferring = _Compiler(self._shapes, check_attribute_values, wording.deferred_item_maps, wording)
        self._checkers: dict[str, Checker] = {}
        self._deferring_checkers: dict[str, Checker] = {}

    @classmethod
    def for_service(cls, service: str = "dynamodb") -> "ShapeValidator":
        """The shared validator of a botocore service ("dynamodb", "dynamodbstreams", "cloudwatch")."""
        validator = cls._by_service.get(service)
        if validator is None:
            validator = cls(load_model(model_path(service)))
            cls._by_service[service] = validator
        return validator

    def validate(self, operation: str, body: Any, *, defer_items: bool = False) -> None:
        """Raise SerializationException or ValidationException as DynamoDB would.

        ``body`` is the parsed JSON request; it may be normalized in place (see
        the module docstring).  Returns None when the request fits the model.

        With ``defer_items``, the values of whole items to write
        (the wording's ``deferred_item_maps``: DynamoDB's ``DEFERRED_ITEM_MAPS``) are not checked here: the caller checks them
        anyway (``shoal.model.values.validate_sized_item``), and that check
        passes only for values this one passes, so a valid request is looked
        at once instead of twice.  If the caller then fails the request, it
        must validate it again without deferring before it reports the
        failure, so that a serialization or model error anywhere in the
        request still comes first, as in DynamoDB.
        """
        checker = (self._deferring_checkers if defer_items else self._checkers).get(operation)
        if checker is None:
            checker = self._compile(operation, defer_items)
        if body.__class__ is not dict:
            raise _body_type_error(body)
        errors: list = []
        try:
            checker(body, errors)
        except RecursionError:  # DynamoDB allows 32 levels; the JSON parser allows far more
            raise ValidationException(NESTING_TOO_DEEP) from None
        if errors:
            sentence = _required_sentence(self.wording.required_sentences, operation, body)
            raise ValidationException(sentence or self._message(errors, operation))

    def _compile(self, operation: str, defer_items: bool) -> Checker:
        if operation not in self._inputs:
            raise UnknownOperationException()
        input_shape = self._inputs[operation]
        if input_shape is None:
            checker = _structure_checker({}, ())
        else:
            compiler = self._deferring if defer_items else self._compiler
            checker = compiler.shape(input_shape).check
        (self._deferring_checkers if defer_items else self._checkers)[operation] = checker
        return checker

    def _message(self, errors: list, operation: str = "") -> str:
        listed = errors[:MAX_LISTED_ERRORS]
        newer_rendering = self.wording.newer_rendering
        attribute_value = self.wording.attribute_value
        parts = []
        for path, value, message, shape_name in listed:
            newer = newer_rendering(operation, path, value, message) if newer_rendering is not None else None
            if newer is not None:
                parts.append(newer)
                continue
            shown = "null" if value is None else f"'{render_value(value, shape_name, self._shapes, attribute_value)}'"
            parts.append(f"Value {shown} at '{path}' failed to satisfy constraint: {message}")
        return validation_errors(parts)


# Where DynamoDB's answers differ from Coral's generic rendering, these follow
# the most recent recorded DynamoDB responses (sources and dates in
# docs/status.md, "Messages where sources disagree (issue 21, point 6)").

# A request without these members (or, for BatchWriteItem, with an empty map)
# is answered with one sentence instead of the list of constraint violations.
REQUIRED_SENTENCES = {
    "CreateTable": ("TableName", "The parameter 'TableName' is required but was not present in the request"),
    "BatchWriteItem": ("RequestItems", "The requestItems parameter is required for BatchWriteItem"),
}

_BATCH_GET_KEYS_PATH = re.compile(r"requestItems\.(.+)\.member\.keys")


def _required_sentence(sentences: dict, operation: str, body: dict) -> str | None:
    """The service's own sentence for a missing required member, if it has one."""
    rule = sentences.get(operation)
    if rule is None:
        return None
    member, sentence = rule
    value = body.get(member)
    return sentence if value is None or value == {} else None


def _newer_rendering(operation: str, path: str, value: Any, message: str) -> str | None:
    """DynamoDB's newer rendering of one violation, or None for Coral's usual
    one.  Query's Limit and BatchGetItem's RequestItems and Keys lengths are
    reported by the member's PascalCase path with no value; BatchGetItem's
    table names by the RequestItems map echoed as JSON."""
    if operation == "Query" and path == "limit":
        return f"Value at 'Limit' failed to satisfy constraint: {message}"
    if operation != "BatchGetItem":
        return None
    if path == "requestItems":
        if message.startswith("Member must have length"):
            return f"Value at 'RequestItems' failed to satisfy constraint: {message}"
        if message.startswith("Map keys must satisfy"):
            shown = orjson.dumps(value).decode()
            return f"Value '{shown}' at 'requestItems' failed to satisfy constraint: {message}"
        return None
    keys = _BATCH_GET_KEYS_PATH.fullmatch(path)
    if keys is not None and message.startswith("Member must have length"):
        return f"Value at 'RequestItems.{keys.group(1)}.member.Keys' failed to satisfy constraint: {message}"
    return None


def _body_type_error(body: Any) -> SerializationException:
    """The request body itself is not a JSON object."""
    if body is None:
        return SerializationException()
    return _structure_type_error(body)


# ---------------------------------------------------------------- services' wording


class Wording:
    """How a service departs from Coral's generic checks and words, by the
    names of its shapes and operations: enum orders (``enum_order``), enums
    its operations check themselves (``service_checked_enums``), the shape
    checked and rendered as DynamoDB's attribute value (``attribute_value``),
    TableArn's name rules (``table_arn``), item maps a caller checks itself
    (``deferred_item_maps``), sentences for missing members
    (``required_sentences``) and newer renderings of some violations
    (``newer_rendering``).  Names are a model's own: DynamoDB's tables must
    not reach a shape of another model that happens to share a name (such
    as CloudWatch's ComparisonOperator), so each validator holds its
    service's.  Read when operations are compiled or a request fails, never
    per valid request."""

    __slots__ = ("enum_order", "service_checked_enums", "attribute_value", "table_arn", "deferred_item_maps",
                 "required_sentences", "newer_rendering")

    def __init__(self, *, enum_order: dict | None = None, service_checked_enums: frozenset = frozenset(),
                 attribute_value: str | None = None, table_arn: bool = False,
                 deferred_item_maps: frozenset = frozenset(), required_sentences: dict | None = None,
                 newer_rendering: Callable[[str, str, Any, str], str | None] | None = None) -> None:
        self.enum_order = enum_order or {}
        self.service_checked_enums = service_checked_enums
        self.attribute_value = attribute_value
        self.table_arn = table_arn
        self.deferred_item_maps = deferred_item_maps
        self.required_sentences = required_sentences or {}
        self.newer_rendering = newer_rendering


#: Coral's rules as they stand: no departures (CloudWatch, and any other model).
CORAL = Wording()

#: DynamoDB's front end (and DynamoDB Streams', the same one).
DYNAMODB = Wording(enum_order=ENUM_MESSAGE_ORDER, service_checked_enums=SERVICE_CHECKED_ENUMS,
                   attribute_value=ATTRIBUTE_VALUE_SHAPE, table_arn=True, deferred_item_maps=DEFERRED_ITEM_MAPS,
                   required_sentences=REQUIRED_SENTENCES, newer_rendering=_newer_rendering)

DYNAMODB_SERVICE_IDS = frozenset({"DynamoDB", "DynamoDB Streams"})  # botocore models' metadata.serviceId


def wording_of(model: dict) -> Wording:
    """DynamoDB's wording for DynamoDB's models (by their serviceId); Coral's for any other."""
    return DYNAMODB if model.get("metadata", {}).get("serviceId") in DYNAMODB_SERVICE_IDS else CORAL
