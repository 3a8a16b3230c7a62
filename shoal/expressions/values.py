"""Attribute-value semantics the expressions need: equality, ordering, size,
containment and the way DynamoDB prints values and types in messages.

Values are wire-form dicts with one key (the type).  Numbers are compared as
Decimals, binaries as bytes, strings as code points (same order as UTF-8 bytes).
"""

from __future__ import annotations

import base64
from decimal import Decimal

SCALAR_ORDERED = frozenset({"S", "N", "B"})
SET_TYPES = frozenset({"SS", "NS", "BS"})
SET_ELEMENT = {"SS": "S", "NS": "N", "BS": "B"}
ELEMENT_SET = {"S": "SS", "N": "NS", "B": "BS"}

# The type names DynamoDB's update engine uses in some messages.
JAVA_TYPE_NAMES = {
    "S": "STRING", "N": "NUMBER", "B": "BINARY", "BOOL": "BOOLEAN", "NULL": "NULL",
    "L": "LIST", "M": "MAP", "SS": "STRING_SET", "NS": "NUMBER_SET", "BS": "BINARY_SET",
}


def type_of(value: dict) -> str:
    """The type key of an attribute value."""
    for key in value:
        return key
    return ""


def _bytes(text: str) -> bytes:
    return base64.b64decode(text)


def scalar_key(kind: str, raw):
    """A comparable Python value for an S, N or B payload."""
    if kind == "N":
        return Decimal(raw)
    if kind == "B":
        return _bytes(raw)
    return raw


def equals(a: dict, b: dict) -> bool:
    """DynamoDB equality: same type and same value; sets ignore order; numbers
    compare numerically; lists and maps compare deeply."""
    (ka, va), = a.items()
    (kb, vb), = b.items()
    if ka != kb:
        return False
    if va == vb:
        return True
    if ka == "N":
        return Decimal(va) == Decimal(vb)
    if ka == "B":
        return _bytes(va) == _bytes(vb)
    if ka in SET_TYPES:
        if len(va) != len(vb):
            return False
        element = SET_ELEMENT[ka]
        return {scalar_key(element, x) for x in va} == {scalar_key(element, x) for x in vb}
    if ka == "L":
        return len(va) == len(vb) and all(equals(x, y) for x, y in zip(va, vb))
    if ka == "M":
        return va.keys() == vb.keys() and all(equals(x, vb[k]) for k, x in va.items())
    return False


def ordering_key(value: dict | None):
    """(type, comparable) for S/N/B values, None for anything else."""
    if value is None:
        return None
    (kind, raw), = value.items()
    if kind not in SCALAR_ORDERED:
        return None
    return kind, scalar_key(kind, raw)


def size_of(value: dict | None) -> dict | None:
    """The result of size(): N for strings, binaries, sets, lists and maps;
    None (no value) for other types, which then fails every comparison.

    A string's size is its length in UTF-16 code units, as Java counts it:
    a character beyond U+FFFF counts 2 (DynamoDB answers size("é𝄞") = 3,
    as recorded against it in ExtendDB issue 60, and DynamoDB Local agrees;
    the Developer Guide says only "the length of the string")."""
    if value is None:
        return None
    (kind, raw), = value.items()
    if kind == "S":
        return {"N": str(utf16_length(raw))}
    if kind in SET_TYPES or kind == "L" or kind == "M":
        return {"N": str(len(raw))}
    if kind == "B":
        return {"N": str(len(_bytes(raw)))}
    return None


def utf16_length(text: str) -> int:
    """The number of UTF-16 code units of ``text``."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2  # a lone surrogate counts 1, as in Java


def contains(container: dict | None, operand: dict | None) -> bool:
    """contains(path, operand): substring, set membership or list element."""
    if container is None or operand is None:
        return False
    (kind, raw), = container.items()
    (okind, oraw), = operand.items()
    if kind == "S":
        return okind == "S" and oraw in raw
    if kind == "B":
        return okind == "B" and _bytes(oraw) in _bytes(raw)
    if kind in SET_TYPES:
        if SET_ELEMENT[kind] != okind:
            return False
        if oraw in raw:
            return True
        key = scalar_key(okind, oraw)
        return any(scalar_key(okind, x) == key for x in raw)
    if kind == "L":
        return any(equals(x, operand) for x in raw)
    return False


def begins_with(value: dict | None, prefix: dict | None) -> bool:
    if value is None or prefix is None:
        return False
    (kind, raw), = value.items()
    (pkind, praw), = prefix.items()
    if kind != pkind:
        return False
    if kind == "S":
        return raw.startswith(praw)
    if kind == "B":
        return _bytes(raw).startswith(_bytes(praw))
    return False


def display(value: dict) -> str:
    """A value as DynamoDB prints it in messages: ``AttributeValue: {N:5}``."""
    return f"AttributeValue: {{{_display_body(value)}}}"


def _display_body(value: dict) -> str:
    (kind, raw), = value.items()
    if kind in SET_TYPES:
        return f"{kind}:[{', '.join(raw)}]"
    if kind == "L":
        return f"L:[{', '.join('{' + _display_body(v) + '}' for v in raw)}]"
    if kind == "M":
        inner = ", ".join(f"{k}={{{_display_body(v)}}}" for k, v in raw.items())
        return f"M:{{{inner}}}"
    if kind == "BOOL":
        return f"BOOL:{'true' if raw else 'false'}"
    return f"{kind}:{raw}"
