"""Key encoding: bytewise order equals DynamoDB's order, and it round-trips."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.model.keys import decode_key_value, encode_key_prefix, encode_key_value
from shoal.model.numbers import format_number, normalize_number

# ---------------------------------------------------------------- strategies


@st.composite
def dynamo_numbers(draw):
    """Numbers DynamoDB can store: up to 38 significant digits, adjusted
    exponent -130..125, or zero, in normalized text."""
    if draw(st.integers(0, 20)) == 0:
        return "0"
    digits = draw(st.integers(1, 38))
    coefficient = draw(st.integers(10 ** (digits - 1), 10**digits - 1))
    adjusted = draw(st.integers(-130, 125))
    sign = draw(st.sampled_from(["", "-"]))
    return normalize_number(f"{sign}{coefficient}E{adjusted - digits + 1}")


strings = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
binaries = st.binary(max_size=20)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# ---------------------------------------------------------------- examples


def test_number_examples_in_order():
    ordered = ["-9.9999999999999999999999999999999999999E+125", "-1e10", "-100", "-10", "-1.5",
               "-1.01", "-1", "-0.5", "-1e-130", "0", "1e-130", "0.001", "0.5", "1", "1.01", "1.5",
               "10", "100", "123.456", "1e10", "9.9999999999999999999999999999999999999E+125"]
    encoded = [encode_key_value("N", normalize_number(n)) for n in ordered]
    assert encoded == sorted(encoded)
    assert len(set(encoded)) == len(encoded)


@pytest.mark.parametrize("text, stored", [
    # The bytes on disk: a change here makes existing data directories unreadable.
    ("0", b"\x02"),
    ("1", b"\x03\x82\x0b\x00"),
    ("12.5", b"\x03\x83\x0d\x33\x00"),
    ("1700000001234", b"\x03\x8e\x12\x01\x01\x01\x02\x18\x29\x00"),
    ("1E+125", b"\x03\xff\x0b\x00"),
    ("-1", b"\x01\x7d\x5a\xff"),
    ("-0.5", b"\x01\x7e\x32\xff"),
    ("-1E-130", b"\x01\xff\x5a\xff"),
])
def test_number_encoding_is_stable(text, stored):
    assert encode_key_value("N", text) == stored
    assert decode_key_value("N", stored) == (normalize_number(text), len(stored))


def test_string_examples_in_order():
    ordered = ["", "\x00", "\x00\x00", "\x00a", "a", "a\x00", "a\x00b", "a\x01", "ab", "b", "\u00e9", "\uffff", "\U0001f600"]
    encoded = [encode_key_value("S", s) for s in ordered]
    assert encoded == sorted(encoded)


def test_decode_consecutive_values():
    data = encode_key_value("S", "u00000001") + encode_key_value("N", "1700000000000") + b"rest"
    user, offset = decode_key_value("S", data)
    ts, offset = decode_key_value("N", data, offset)
    assert (user, ts, data[offset:]) == ("u00000001", "1700000000000", b"rest")


def test_non_key_types_are_refused():
    with pytest.raises(ValueError):
        encode_key_value("SS", "a")
    with pytest.raises(ValueError):
        encode_key_prefix("N", "1")


# ---------------------------------------------------------------- properties


@settings(max_examples=300)
@given(dynamo_numbers(), dynamo_numbers())
def test_number_order(a, b):
    ea, eb = encode_key_value("N", a), encode_key_value("N", b)
    assert (ea < eb) == (Decimal(a) < Decimal(b))
    assert (ea == eb) == (Decimal(a) == Decimal(b))


@settings(max_examples=300)
@given(dynamo_numbers())
def test_number_round_trip(n):
    encoded = encode_key_value("N", n)
    assert decode_key_value("N", encoded + b"\x07") == (n, len(encoded))


@given(strings, strings)
def test_string_order(a, b):
    ea, eb = encode_key_value("S", a), encode_key_value("S", b)
    assert (ea < eb) == (a.encode() < b.encode())


@given(strings)
def test_string_round_trip(s):
    encoded = encode_key_value("S", s)
    assert decode_key_value("S", encoded + b"\x00") == (s, len(encoded))


@given(binaries, binaries)
def test_binary_order(a, b):
    ea, eb = encode_key_value("B", b64(a)), encode_key_value("B", b64(b))
    assert (ea < eb) == (a < b)


@given(binaries)
def test_binary_round_trip(raw):
    encoded = encode_key_value("B", b64(raw))
    assert decode_key_value("B", encoded) == (b64(raw), len(encoded))


@given(strings, strings)
def test_string_prefix_range(value, prefix):
    """begins_with(prefix) selects exactly the values whose encoding starts
    with encode_key_prefix(prefix)."""
    starts = encode_key_value("S", value).startswith(encode_key_prefix("S", prefix))
    assert starts == value.encode().startswith(prefix.encode())


@given(binaries, binaries)
def test_binary_prefix_range(value, prefix):
    starts = encode_key_value("B", b64(value)).startswith(encode_key_prefix("B", b64(prefix)))
    assert starts == value.startswith(prefix)


key_types = st.sampled_from(["S", "N", "B"])


def key_values(type_):
    if type_ == "S":
        return strings
    if type_ == "N":
        return dynamo_numbers()
    return binaries.map(b64)


def order_key(type_, value):
    if type_ == "S":
        return value.encode()
    if type_ == "N":
        return Decimal(value)
    return base64.b64decode(value)


@st.composite
def composite_keys(draw):
    pk_type, sk_type = draw(key_types), draw(key_types)
    pairs = draw(st.lists(st.tuples(key_values(pk_type), key_values(sk_type)), min_size=2, max_size=6))
    return pk_type, sk_type, pairs


@settings(max_examples=200)
@given(composite_keys())
def test_concatenated_keys_sort_as_tuples(case):
    pk_type, sk_type, pairs = case
    encoded = {(pk, sk): encode_key_value(pk_type, pk) + encode_key_value(sk_type, sk) for pk, sk in pairs}
    by_bytes = sorted(pairs, key=lambda p: encoded[p])
    by_tuple = sorted(pairs, key=lambda p: (order_key(pk_type, p[0]), order_key(sk_type, p[1])))
    assert [encoded[p] for p in by_bytes] == [encoded[p] for p in by_tuple]
    # A partition is a prefix range: every key of pk starts with encode(pk).
    for pk, sk in pairs:
        assert encoded[(pk, sk)].startswith(encode_key_value(pk_type, pk))
        value, offset = decode_key_value(pk_type, encoded[(pk, sk)])
        assert decode_key_value(sk_type, encoded[(pk, sk)], offset)[0] == sk


@settings(max_examples=300)
@given(dynamo_numbers(), dynamo_numbers())
def test_no_number_encoding_is_a_prefix_of_another(a, b):
    ea, eb = encode_key_value("N", a), encode_key_value("N", b)
    if ea != eb:
        assert not ea.startswith(eb) and not eb.startswith(ea)


@st.composite
def number_texts(draw):
    """Any text DynamoDB accepts as a number: signs, leading and trailing zeros,
    decimal points and exponents, within 38 significant digits and the range."""
    digits = draw(st.integers(1, 38))
    coefficient = str(draw(st.integers(10 ** (digits - 1), 10**digits - 1)))
    adjusted = draw(st.integers(-130, 125))
    lead, trail = "0" * draw(st.integers(0, 3)), "0" * draw(st.integers(0, 3))
    body = lead + coefficient + trail
    point = draw(st.integers(0, len(body)))
    mantissa = body[:point] + "." + body[point:] if draw(st.booleans()) else body
    # Choose the exponent that puts the first significant digit at 10**adjusted.
    first = len(lead) + 1
    integer_digits = point if "." in mantissa else len(body)
    exponent = adjusted - (integer_digits - first)
    sign = draw(st.sampled_from(["", "-", "+"]))
    marker = draw(st.sampled_from(["e", "E"]))
    return f"{sign}{mantissa}{marker}{exponent}"


@settings(max_examples=300)
@given(number_texts())
def test_normalize_is_idempotent_and_keeps_value(text):
    once = normalize_number(text)
    assert normalize_number(once) == once
    assert Decimal(once) == Decimal(text)
    assert "e" not in once.lower()
    assert once == format_number(Decimal(text))
