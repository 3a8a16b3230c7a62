"""Item sizes, computed the way DynamoDB meters them.

The Developer Guide ("Item sizes and formats") gives the rules, and DynamoDB's
400 KB limit check confirms them byte for byte:

* an attribute is its name's UTF-8 length plus its value's size;
* S: UTF-8 length; B: raw (decoded) length; BOOL and NULL: 1 byte;
* N: 1 byte plus one byte per base-100 digit of the number, i.e. per pair of
  decimal digits aligned on the decimal point (so 1.5 is "01 50", 2 bytes, and
  12.5 is "12 50"), plus 1 byte for a negative number of fewer than 20 such bytes;
  zero is 1 byte;
* SS, NS, BS: the sum of their elements' sizes;
* L and M: 3 bytes, plus for each element its size and 1 byte (and for M the
  element's name).

Values are assumed validated (``shoal.model.values``): N normalized, B valid base64.
"""

from __future__ import annotations

from shoal.model.numbers import number_parts

MAX_ITEM_SIZE = 400 * 1024
ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"

CONTAINER_OVERHEAD = 3
ELEMENT_OVERHEAD = 1


def item_size(item: dict) -> int:
    """The size of an item in bytes, as DynamoDB meters it for the 400 KB limit
    and for capacity units."""
    return _attributes_size(item)


def attribute_value_size(av: dict) -> int:
    """The size of one attribute value (without its name)."""
    for type_, value in av.items():
        if type_ == "S":
            return len(value) if value.isascii() else len(value.encode("utf-8"))
        return _SIZERS[type_](value)
    return 0


def number_size(text: str) -> int:
    """The size of an N value given as (normalized) text."""
    if text.isdigit():  # the common case: a non-negative integer
        return 1 if text == "0" else positive_integer_size(text)
    negative, adjusted, digits = number_parts(text)
    if not digits:
        return 1
    # Digits are packed in pairs aligned on the decimal point: a first digit of
    # even weight (10**0, 10**2, 10**-2, ...) is the low half of its pair.
    pairs = (len(digits) + (adjusted % 2 == 0) + 1) // 2
    return 1 + pairs + (negative and pairs < 20)


def positive_integer_size(text: str) -> int:
    """The size of a positive integer in normalized form (ASCII digits, no
    leading zero): 1 byte plus its base-100 digits, trailing zero pairs
    dropped."""
    return 1 + (len(text.rstrip("0")) + (len(text) & 1) + 1) // 2


def binary_size(text: str) -> int:
    """The decoded length of base64 text, without decoding it."""
    length = len(text)
    if not length:
        return 0
    padding = (text[-1] == "=") + (text[-2] == "=") if length > 1 else 0
    return length // 4 * 3 - padding


def _text_size(text: str) -> int:
    # isascii() is O(1) on CPython's compact strings: most names and values
    # never need encoding.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _bool_size(_value) -> int:
    return 1


def _string_set_size(values: list) -> int:
    return sum(map(_text_size, values))


def _number_set_size(values: list) -> int:
    return sum(map(number_size, values))


def _binary_set_size(values: list) -> int:
    return sum(map(binary_size, values))


def _list_size(values: list) -> int:
    total = CONTAINER_OVERHEAD + ELEMENT_OVERHEAD * len(values)
    for value in values:
        total += attribute_value_size(value)
    return total


def _map_size(values: dict) -> int:
    return CONTAINER_OVERHEAD + ELEMENT_OVERHEAD * len(values) + _attributes_size(values)


def _attributes_size(values: dict) -> int:
    """Names plus values of an item's or a map's attributes; S values, the most
    common by far, are sized inline."""
    total = 0
    sizers = _SIZERS
    for name, av in values.items():
        total += len(name) if name.isascii() else len(name.encode("utf-8"))
        for type_, value in av.items():
            if type_ == "S":
                total += len(value) if value.isascii() else len(value.encode("utf-8"))
            else:
                total += sizers[type_](value)
    return total


_SIZERS = {
    "S": _text_size,
    "N": number_size,
    "B": binary_size,
    "BOOL": _bool_size,
    "NULL": _bool_size,
    "SS": _string_set_size,
    "NS": _number_set_size,
    "BS": _binary_set_size,
    "L": _list_size,
    "M": _map_size,
}
