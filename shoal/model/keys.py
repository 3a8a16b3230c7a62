"""Order-preserving, self-delimiting byte encoding of key attribute values.

Storage orders items by raw bytes, so a key value is encoded such that comparing
encodings bytewise gives DynamoDB's order for the type:

* **S** by UTF-8 bytes, **B** by unsigned bytes.  The bytes are written with every
  0x00 escaped as 0x00 0xFF and a 0x00 0x00 terminator.  The terminator sorts below
  any escaped or ordinary continuation, so "a" < "a\\x00" < "ab" still holds, and a
  prefix of a value encodes to a prefix of the value's encoding (``begins_with``
  becomes a byte-range scan).
* **N** numerically: a class byte (negative < zero < positive), then for non-zero
  numbers one exponent byte (the adjusted exponent, -130..125, offset to 0..255)
  and the significant digits packed two per byte (1..100), ended by 0x00.  For
  negative numbers the exponent and digit bytes are complemented and the
  terminator is 0xFF, so larger magnitudes sort first.

Every encoding is self-delimiting (none is a proper prefix of another), so
``encode(pk) + encode(sk)`` sorts as the tuple (pk, sk) and a partition is the
byte range of its partition-key prefix.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from shoal.model.numbers import MIN_EXPONENT, number_parts, text_from_parts

_ESCAPED_ZERO = b"\x00\xff"
_TERMINATOR = b"\x00\x00"

_NEGATIVE, _ZERO, _POSITIVE = 0x01, 0x02, 0x03
_ZERO_ENCODING = bytes([_ZERO])
_POSITIVE_END = 0x00
_NEGATIVE_END = 0xFF

# Two decimal digits <-> one byte: 1..100 for positive numbers, 100..1 (complemented)
# for negative ones; 0 and 0xFF stay free for the terminators.
_PAIRS = [f"{i:02d}" for i in range(100)]
_POSITIVE_BYTE = {pair: i + 1 for i, pair in enumerate(_PAIRS)}
_NEGATIVE_BYTE = {pair: 100 - i for i, pair in enumerate(_PAIRS)}
_PAIR_OF_POSITIVE = {i + 1: pair for i, pair in enumerate(_PAIRS)}
_PAIR_OF_NEGATIVE = {100 - i: pair for i, pair in enumerate(_PAIRS)}


def encode_key_value(type_: str, value: str) -> bytes:
    """Encode one key value given in wire form (N as normalized text, B as base64).

    Raises ValueError for a type other than S, N or B (keys can have no other).
    """
    if type_ == "S":
        return _escape(value.encode("utf-8")) + _TERMINATOR
    if type_ == "N":
        return _encode_number(value)
    if type_ == "B":
        return _escape(base64.b64decode(value)) + _TERMINATOR
    raise ValueError(f"not a key type: {type_}")


def encode_key_prefix(type_: str, value: str) -> bytes:
    """The bytes every encoding of an S or B value starting with ``value`` begins
    with, and that no other encoding begins with: the range of ``begins_with``."""
    if type_ == "S":
        return _escape(value.encode("utf-8"))
    if type_ == "B":
        return _escape(base64.b64decode(value))
    raise ValueError(f"begins_with needs an S or B key, not {type_}")


def decode_key_value(type_: str, data: bytes, offset: int = 0) -> tuple[str, int]:
    """Decode the key value encoded at ``data[offset:]``.

    Returns the value in wire form and the offset just past its encoding, so
    consecutive values (partition key, then sort key) decode in turn.
    """
    if type_ == "S":
        raw, end = _unescape(data, offset)
        return raw.decode("utf-8"), end
    if type_ == "N":
        return _decode_number(data, offset)
    if type_ == "B":
        raw, end = _unescape(data, offset)
        return base64.b64encode(raw).decode("ascii"), end
    raise ValueError(f"not a key type: {type_}")


# ---------------------------------------------------------------- bytes


def _escape(raw: bytes) -> bytes:
    return raw.replace(b"\x00", _ESCAPED_ZERO) if b"\x00" in raw else raw


def _unescape(data: bytes, offset: int) -> tuple[bytes, int]:
    pos = offset
    escaped = False
    while True:
        zero = data.index(0, pos)  # ValueError on truncated data
        if data[zero + 1] != 0xFF:
            break
        escaped = True
        pos = zero + 2
    raw = bytes(data[offset:zero])
    if escaped:
        raw = raw.replace(_ESCAPED_ZERO, b"\x00")
    return raw, zero + 2


# ---------------------------------------------------------------- numbers


# The same pairs read as hexadecimal (bytes.fromhex("42") == b"\x42"), then
# translated to the encoding's bytes: both steps run in C, several times
# faster than looking each pair up.
_POSITIVE_FROM_HEX = bytes(_POSITIVE_BYTE.get(f"{b:02x}", 0) for b in range(256))
_NEGATIVE_FROM_HEX = bytes(_NEGATIVE_BYTE.get(f"{b:02x}", 0) for b in range(256))
_POSITIVE_TAIL, _NEGATIVE_TAIL = bytes([_POSITIVE_END]), bytes([_NEGATIVE_END])


@lru_cache(maxsize=1 << 16)
def _encode_number(text: str) -> bytes:
    """Cached: keys repeat (hot users, shared timestamps, sort-key bounds),
    and a hit costs a fifth of an encoding."""
    if text.isdigit() and text.isascii() and text[0] != "0":
        # A positive integer (timestamps, counters, ids): the parts by hand.
        negative, adjusted, digits = False, len(text) - 1, text.rstrip("0")
    else:
        negative, adjusted, digits = number_parts(text)
        if not digits:
            return _ZERO_ENCODING
    if len(digits) % 2:
        digits += "0"
    exponent = adjusted - MIN_EXPONENT  # 0..255 within DynamoDB's range
    if negative:
        return bytes((_NEGATIVE, 255 - exponent)) + bytes.fromhex(digits).translate(_NEGATIVE_FROM_HEX) + _NEGATIVE_TAIL
    return bytes((_POSITIVE, exponent)) + bytes.fromhex(digits).translate(_POSITIVE_FROM_HEX) + _POSITIVE_TAIL


def _decode_number(data: bytes, offset: int) -> tuple[str, int]:
    kind = data[offset]
    if kind == _ZERO:
        return "0", offset + 1
    negative = kind == _NEGATIVE
    if negative:
        exponent = 255 - data[offset + 1]
        end = data.index(_NEGATIVE_END, offset + 2)
        pairs = _PAIR_OF_NEGATIVE
    elif kind == _POSITIVE:
        exponent = data[offset + 1]
        end = data.index(_POSITIVE_END, offset + 2)
        pairs = _PAIR_OF_POSITIVE
    else:
        raise ValueError(f"not an encoded number at offset {offset}")
    digits = "".join([pairs[b] for b in data[offset + 2 : end]]).rstrip("0")
    return text_from_parts(negative, exponent + MIN_EXPONENT, digits), end + 1
