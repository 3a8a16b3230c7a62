"""Validation and normalization of attribute values as clients send them.

An attribute value is a JSON object with exactly one member, its type
(``{"S": "x"}``, ``{"N": "1.50"}``, ``{"L": [...]}``).  Checking one means, in
DynamoDB's order and words:

1. the JSON type of the member's value (``{"S": 5}``): a SerializationException,
   raised by DynamoDB's request parser before any validation;
2. exactly one known type set (null members and unknown members are ignored, as
   DynamoDB's parser does);
3. the type's own rules: numbers parse and fit, binaries are base64, sets are
   non-empty without duplicates, NULL is true, nesting stays within 32 levels.

The result is the value with numbers normalized (``normalize_number``) and
ignored members dropped.  Values that need no change are returned as the same
objects, so validating a typical item allocates nothing but the checks.
"""

from __future__ import annotations

import binascii
import re
from decimal import Decimal

from shoal.errors import KeySchemaMismatch, SerializationException, ValidationException, ValueWordingException
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.model.numbers import MAX_DIGITS, is_normalized_short, normalize_number
from shoal.model.size import (
    CONTAINER_OVERHEAD,
    ELEMENT_OVERHEAD,
    attribute_value_size,
    number_size,
    positive_integer_size,
)

EMPTY_VALUE = "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
SEVERAL_TYPES = (
    "Supplied AttributeValue has more than one datatypes set, "
    "must contain exactly one of the supported datatypes"
)
NULL_NOT_TRUE = INVALID + "Null attribute value types must have the value of true"
NESTING_TOO_DEEP = (
    "Nesting Levels have exceeded supported limits: "
    "Attributes in the item have nested levels beyond supported limit"
)
NULL_VALUE = "The supplied Item contains a null AttributeValue"
EMPTY_NAME = "Empty attribute name"
# Attribute names are limited to 64 KB of UTF-8, 65,536 bytes excluded (a
# recorded DynamoDB answer; the request's shape limits them to 65,535
# characters, which a name of multi-byte characters passes).  DynamoDB Local's words.
MAX_NAME_BYTES = 65535
NAME_TOO_LONG = "Attribute name is too large, must be less than 65536 bytes"

# A container (L or M) may sit at most this many levels down from the item: the
# item itself is the first of DynamoDB's 32 levels.
MAX_CONTAINER_DEPTH = 31

_START_OF_MAP = "Start of structure or map found where not expected"
_AV_CLASS = "com.amazonaws.dynamodb.v20120810.AttributeValue"

_TYPES = frozenset(("S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"))


# ---------------------------------------------------------------- public


def validate_item(item: dict, *, what: str = "Item") -> dict:
    """Check every attribute of an item (PutItem's Item, a BatchWriteItem
    PutRequest's Item, ...) and return it with numbers normalized.

    The item itself is returned when nothing needed normalizing.
    ``what`` names the item in messages about null values.
    """
    return validate_sized_item(item, what=what)[0]


def validate_sized_item(item: dict, *, what: str = "Item", in_place: bool = False) -> tuple[dict, int]:
    """``validate_item`` and the checked item's size (``item_size``) in one
    pass over its attributes: every write of a whole item needs both.

    With ``in_place`` (the item is the caller's own, e.g. just parsed from
    the request) changed attributes are stored into ``item`` itself instead
    of a copy, which saves rebuilding it (sets arrive unsorted often)."""
    changed, size = _attributes(item, 1, what)
    if changed is None:
        return item, size
    if in_place:
        item.update(changed)
        return item, size
    return {name: changed.get(name, av) for name, av in item.items()}, size


def validate_value(av, path_for_errors=None, _depth: int = 1) -> dict:
    """Check one attribute value (an ExpressionAttributeValues entry, a key
    value, a legacy condition's value) and return it normalized.

    ``path_for_errors`` is accepted for the callers' convenience; DynamoDB's
    messages about a value do not name where it was.
    """
    if type(av) is dict and len(av) == 1:
        for type_, value in av.items():
            check = _CHECKS.get(type_)
            if check is not None and value is not None:
                return check(av, value, _depth)
    if av is None:
        raise ValidationException(NULL_VALUE)
    if type(av) is not dict:
        raise SerializationException(_value_struct_error(av))
    return _irregular(av, _depth)


def check_attribute_names(names) -> None:
    """Refuse an empty attribute name, as DynamoDB does wherever a request
    names an attribute (a Key, the legacy parameters, AttributesToGet), and
    before it looks the table up: the operations call this first.  Item maps
    are checked as their values are (``validate_item``)."""
    if "" in names:  # a dict's keys or a list: one lookup, on every GetItem too
        raise ValidationException(EMPTY_NAME)


def validate_key(
    key: dict,
    key_schema: list[tuple[str, str]],
    attribute_types: dict[str, str],
    *,
    what: str = "key",
) -> dict:
    """Check a primary key against the table's key schema; return the key
    attributes (numbers normalized).

    ``key_schema`` is [(hash name, "HASH"), (range name, "RANGE")] (or only the
    first); ``attribute_types`` maps each key name to "S", "N" or "B".

    With ``what="key"`` (GetItem, UpdateItem, DeleteItem, BatchGetItem Keys...),
    ``key`` is the request's Key: its values are validated here and any
    mismatch with the schema is "The provided key element does not match the
    schema".  With ``what="item"`` (PutItem), ``key`` is an item already passed
    through ``validate_item`` and DynamoDB names the missing or mistyped
    attribute.
    """
    if what == "item":
        result = _key_from_item(key, key_schema, attribute_types)
    else:
        result = _key_from_key(key, key_schema, attribute_types)
    _check_key_values(result, key_schema)
    return result


# ---------------------------------------------------------------- keys

KEY_MISMATCH = "The provided key element does not match the schema"
HASH_KEY_LIMIT = 2048
RANGE_KEY_LIMIT = 1024
HASH_KEY_TOO_LONG = INVALID + "Size of hashkey has exceeded the maximum size limit of2048 bytes"
RANGE_KEY_TOO_LONG = (
    INVALID + "Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
)


def _key_from_key(key: dict, key_schema, attribute_types) -> dict:
    check_attribute_names(key)
    checked = {name: validate_value(av, name) for name, av in key.items()}
    if len(checked) != len(key_schema):
        raise KeySchemaMismatch(KEY_MISMATCH)
    for name, _ in key_schema:
        av = checked.get(name)
        if av is None or attribute_types[name] not in av:
            raise KeySchemaMismatch(KEY_MISMATCH)
    return checked


def _key_from_item(item: dict, key_schema, attribute_types) -> dict:
    result = {}
    for name, _ in key_schema:
        av = item.get(name)
        if av is None:
            raise KeySchemaMismatch(f"{INVALID}Missing the key {name} in the item")
        expected = attribute_types[name]
        if expected not in av:
            actual = next(iter(av))
            raise KeySchemaMismatch(f"{INVALID}Type mismatch for key {name} expected: {expected} actual: {actual}")
        result[name] = av
    return result


def check_key_value_not_empty(name: str, value: dict) -> None:
    """A key attribute's value (also in a key condition) may not be an empty string or binary."""
    for type_, text in value.items():
        if type_ in ("S", "B") and not text:
            kind = "string" if type_ == "S" else "binary"
            raise ValidationException(
                "One or more parameter values are not valid. The AttributeValue for a key "
                f"attribute cannot contain an empty {kind} value. Key: {name}"
            )


def _check_key_values(key: dict, key_schema) -> None:
    for name, _ in key_schema:
        check_key_value_not_empty(name, key[name])
    for index, (name, _) in enumerate(key_schema):
        for type_, value in key[name].items():
            if type_ == "N":
                continue
            size = utf8_length(value) if type_ == "S" else decoded_length(value)
            if index == 0 and size > HASH_KEY_LIMIT:
                raise ValidationException(HASH_KEY_TOO_LONG)
            if index > 0 and size > RANGE_KEY_LIMIT:
                raise ValidationException(RANGE_KEY_TOO_LONG)


def utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def decoded_length(text: str) -> int:
    padding = text[-2:].count("=")
    return len(text) // 4 * 3 - padding


# ---------------------------------------------------------------- attributes


def _attributes(values: dict, depth: int, what: str) -> tuple[dict | None, int]:
    """Check the named attributes of an item or a map; return the ones that
    changed (by name), or None when none did, and the attributes' size (names
    plus checked values, as ``shoal.model.size`` meters them).

    The common case, one known member with a value of the right JSON type, is
    dispatched inline, and S values are sized inline: this loop runs for every
    attribute of every write.
    """
    checks = _CHECKS
    changed = None
    size = 0
    for name, av in values.items():
        if not name:
            raise ValidationException(EMPTY_NAME)
        if name.isascii():  # one of more than 65,535 characters is refused as the request's shape
            size += len(name)
        else:
            name_size = len(name.encode("utf-8"))
            if name_size > MAX_NAME_BYTES:
                raise ValidationException(NAME_TOO_LONG)
            size += name_size
        new = None
        if type(av) is dict and len(av) == 1:
            for type_, value in av.items():
                if type_ == "S" and type(value) is str:
                    size += len(value) if value.isascii() else len(value.encode("utf-8"))
                    new = av
                    break
                if type_ == "N" and type(value) is str:
                    if value.isascii() and value.isdigit() and value[0] != "0" and len(value) <= MAX_DIGITS:
                        # A positive integer in normalized form (timestamps, counters).
                        new = av
                        size += positive_integer_size(value)
                    else:
                        new = _check_n(av, value, depth)
                        size += number_size(new["N"])
                    break
                if type_ == "M" and type(value) is dict:
                    new, inner = _check_sized_m(av, value, depth)
                    size += CONTAINER_OVERHEAD + ELEMENT_OVERHEAD * len(value) + inner
                    break
                check = checks.get(type_)
                if check is not None and value is not None:
                    new = check(av, value, depth)
                    size += attribute_value_size(new)
        if new is None:
            if av is None:
                raise ValidationException(
                    f"The supplied {what} contains a null AttributeValue: {name} is null"
                )
            new = validate_value(av, name, depth)
            size += attribute_value_size(new)
        if new is not av:
            if changed is None:
                changed = {}
            changed[name] = new
    return changed, size


def _irregular(av: dict, depth: int) -> dict:
    """A value that is not one known member with a non-null value: drop null and
    unknown members (DynamoDB's parser ignores them), then insist on one."""
    present = {t: v for t, v in av.items() if v is not None and t in _TYPES}
    for type_, value in present.items():
        _check_json_type(type_, value)
    if not present:
        raise ValidationException(EMPTY_VALUE)
    if len(present) > 1:
        raise ValidationException(SEVERAL_TYPES)
    for type_, value in present.items():
        return _CHECKS[type_](present, value, depth)
    raise AssertionError("unreachable")


def _check_json_type(type_: str, value) -> None:
    """Raise the SerializationException DynamoDB's parser gives for a member
    whose JSON type is wrong (before any validation message)."""
    if type_ in ("S", "N"):
        if type(value) is not str:
            raise SerializationException(_string_error(value))
    elif type_ == "B":
        if type(value) is not str:
            raise SerializationException(_blob_error(value))
    elif type_ in ("BOOL", "NULL"):
        if type(value) is not bool:
            raise SerializationException(_boolean_error(value))
    elif type_ == "M":
        if type(value) is not dict:
            raise SerializationException(_map_error(value))
    elif type(value) is not list:
        raise SerializationException(_list_error(value))


def _check_s(av: dict, value, depth: int) -> dict:
    if type(value) is not str:
        raise SerializationException(_string_error(value))
    return av


def _check_n(av: dict, value, depth: int) -> dict:
    if type(value) is not str:
        raise SerializationException(_string_error(value))
    if len(value) <= MAX_DIGITS and is_normalized_short(value):
        return av
    normalized = normalize_number(value)
    return av if normalized == value else {"N": normalized}


def _check_b(av: dict, value, depth: int) -> dict:
    check_base64(value)
    return av


def _check_bool(av: dict, value, depth: int) -> dict:
    if type(value) is not bool:
        raise SerializationException(_boolean_error(value))
    return av


def _check_null(av: dict, value, depth: int) -> dict:
    if type(value) is not bool:
        raise SerializationException(_boolean_error(value))
    if not value:
        raise ValidationException(NULL_NOT_TRUE)
    return av


def _as_met(values: list, key=None) -> list:
    """A set's members as DynamoDB's newer validation lists them when it
    meets a duplicate: those before it in order, the duplicate, then the
    rest as sent."""
    seen: list = []
    for index, value in enumerate(values):
        if value in seen:
            return sorted(seen, key=key) + [value] + values[index + 1:]
        seen.append(value)
    return values


def _quoted(value: str) -> str:
    return f'"{value}"'


def sorted_set(kind: str, members: list) -> list:
    """The members of a set in the order DynamoDB keeps and returns them:
    strings and binaries by their bytes, numbers by value."""
    if kind == "SS":
        return sorted(members)  # code point order is UTF-8 byte order
    if kind == "NS":
        return sorted(members, key=Decimal)
    return sorted(members, key=binascii.a2b_base64)


def _in_order(av: dict, kind: str, members: list) -> dict:
    """``av``, or a copy with its members sorted if they are not."""
    ordered = sorted_set(kind, members)
    return av if ordered == members else {kind: ordered}


def _check_ss(av: dict, values, depth: int) -> dict:
    if type(values) is not list:
        raise SerializationException(_list_error(values))
    if not values:
        raise ValidationException(INVALID + "An string set  may not be empty")
    for value in values:
        if type(value) is not str:
            if value is None:
                raise ValidationException(INVALID + "An string set may not have a null string as a member")
            raise SerializationException(_string_error(value))
    if len(set(values)) != len(values):
        raise ValueWordingException(
            f"{INVALID}Input collection [{', '.join(values)}] contains duplicates.",
            f"{INVALID}Input collection [{', '.join(map(_quoted, _as_met(values)))}] contains duplicates.",
        )
    return _in_order(av, "SS", values)


def _check_ns(av: dict, values, depth: int) -> dict:
    if type(values) is not list:
        raise SerializationException(_list_error(values))
    if not values:
        raise ValidationException(INVALID + "An number set  may not be empty")
    normalized = []
    for value in values:
        if type(value) is not str and value is not None:
            raise SerializationException(_string_error(value))
        normalized.append(normalize_number(value))
    if len(set(normalized)) != len(normalized):
        raise ValueWordingException("Input collection contains duplicates",
                                    f"{INVALID}Input collection contains duplicates.")
    ordered = sorted_set("NS", normalized)
    return av if ordered == values else {"NS": ordered}


def _check_bs(av: dict, values, depth: int) -> dict:
    if type(values) is not list:
        raise SerializationException(_list_error(values))
    if not values:
        raise ValidationException(INVALID + "Binary sets should not be empty")
    for value in values:
        if value is None:
            raise ValidationException(INVALID + "Binary sets may not contain null or empty values")
        check_base64(value)
    # Base64 checked as canonical is one text per byte string: compare the text.
    if len(set(values)) != len(values):
        raise ValueWordingException(
            f"{INVALID}Input collection [{', '.join(values)}]of type BS contains duplicates.",
            f"{INVALID}Input collection [{','.join(map(_quoted, _as_met(values, binascii.a2b_base64)))}]"
            "of type BS contains duplicates.",
        )
    return _in_order(av, "BS", values)


def _check_l(av: dict, values, depth: int) -> dict:
    if type(values) is not list:
        raise SerializationException(_list_error(values))
    if depth > MAX_CONTAINER_DEPTH:
        raise ValidationException(NESTING_TOO_DEEP)
    inner = depth + 1
    changed = None
    for index, value in enumerate(values):
        if value is None:
            raise ValidationException(NULL_VALUE)
        new = validate_value(value, None, inner)
        if new is not value:
            if changed is None:
                changed = list(values)
            changed[index] = new
    return av if changed is None else {"L": changed}


def _check_m(av: dict, values, depth: int) -> dict:
    return _check_sized_m(av, values, depth)[0]


def _check_sized_m(av: dict, values, depth: int) -> tuple[dict, int]:
    """A checked M value and the size of its attributes."""
    if type(values) is not dict:
        raise SerializationException(_map_error(values))
    if depth > MAX_CONTAINER_DEPTH:
        raise ValidationException(NESTING_TOO_DEEP)
    changed, size = _attributes(values, depth + 1, "Item")
    if changed is None:
        return av, size
    return {"M": {name: changed.get(name, value) for name, value in values.items()}}, size


_CHECKS = {
    "S": _check_s,
    "N": _check_n,
    "B": _check_b,
    "BOOL": _check_bool,
    "NULL": _check_null,
    "SS": _check_ss,
    "NS": _check_ns,
    "BS": _check_bs,
    "L": _check_l,
    "M": _check_m,
}


# ---------------------------------------------------------------- base64

_BASE64_VALUES = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)}
_BASE64_SHAPE = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")


def check_base64(value) -> None:
    """Raise DynamoDB's SerializationException unless ``value`` is canonical
    base64 text (DynamoDB's decoder rejects other encodings of the same bytes)."""
    if type(value) is not str:
        raise SerializationException(_blob_error(value))
    if len(value) % 4:
        raise SerializationException(
            f"Base64 encoded length is expected a multiple of 4 bytes but found: {len(value)}"
        )
    if not value:
        return
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except ValueError:  # binascii.Error, and ValueError for text that is not ASCII
        raise SerializationException(_base64_error(value)) from None
    padding = value[-2:].count("=")
    if padding:
        last = _BASE64_VALUES[value[-1 - padding]]
        if last & (0x0F if padding == 2 else 0x03):
            raise SerializationException("Invalid last non-pad Base64 character dectected")


def _base64_error(value: str) -> str:
    if not _BASE64_SHAPE.match(value):
        for char in value:
            if char not in _BASE64_VALUES and char != "=":
                return f"Invalid Base64 character: '{char}'"
    return "Invalid last non-pad Base64 character dectected"


# ---------------------------------------------------------------- parser errors
# DynamoDB's JSON parser names the token it found where another was expected.


def _token(value) -> str | None:
    if value is True:
        return "TRUE_VALUE"
    if value is False:
        return "FALSE_VALUE"
    if type(value) is int:
        return "NUMBER_VALUE"
    if type(value) is float:
        return "DECIMAL_VALUE"
    if type(value) is str:
        return "STRING_VALUE"
    return None


def _string_error(value) -> str:
    if type(value) is list:
        return "Unrecognized collection type class java.lang.String"
    if type(value) is dict:
        return _START_OF_MAP
    return f"{_token(value)} cannot be converted to String"


def _boolean_error(value) -> str:
    if type(value) is str:
        return "Unexpected token received from parser"
    if type(value) is list:
        return "Unrecognized collection type class java.lang.Boolean"
    if type(value) is dict:
        return _START_OF_MAP
    return f"{_token(value)} cannot be converted to Boolean"


def _blob_error(value) -> str:
    if type(value) is list:
        return "Unrecognized collection type class java.nio.ByteBuffer"
    if type(value) is dict:
        return _START_OF_MAP
    return "only base-64-encoded strings are convertible to bytes"


def _list_error(value) -> str:
    if type(value) is dict:
        return _START_OF_MAP
    return "Unexpected field type"


def _map_error(value) -> str:
    if type(value) is list:
        return f"Unrecognized collection type java.util.Map<java.lang.String, {_AV_CLASS}>"
    return "Unexpected field type"


def _value_struct_error(value) -> str:
    if type(value) is list:
        return f"Unrecognized collection type class {_AV_CLASS}"
    return "Unexpected value type in payload"
