"""Item sizes and capacity units.

The expected sizes were measured on DynamoDB's own 400 KB limit (the largest
padding string accepted next to the attribute) and agree with the Developer
Guide's "Item sizes and formats" rules.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.model.capacity import batch_read_units, read_units, write_units
from shoal.model.numbers import normalize_number
from shoal.model.size import MAX_ITEM_SIZE, attribute_value_size, item_size, number_size


@pytest.mark.parametrize(
    "number, size",
    [
        ("1700000000000", 3), ("170000000000", 2), ("0", 1), ("1", 2), ("12", 2), ("123", 3), ("1234", 3), ("12345", 4),
        ("10", 2), ("100", 2), ("1000", 2), ("0.1", 2), ("0.12", 2), ("0.123", 3),
        ("0.01", 2), ("0.001", 2), ("0.00001", 2), ("1.5", 3), ("12.5", 3), ("123.456", 5),
        ("-1", 3), ("-12", 3), ("-123", 4), ("-0.1", 3), ("-10", 3), ("-1.5", 4),
        ("1" * 20, 11), ("1" * 21, 12), ("1" * 38, 20), ("12345678901234567890123456789012345678", 20),
        ("-" + "1" * 38, 21), ("-" + "1" * 37, 21), ("-" + "1" * 36, 20), ("-" + "1" * 35, 20),
        ("1." + "1" * 37, 21), ("-1." + "1" * 37, 21), ("-1." + "1" * 36, 21),
        ("1e125", 2), ("-1e100", 3), ("1e-130", 2), ("-1e-130", 3),
    ],
)
def test_number_sizes(number, size):
    assert number_size(normalize_number(number)) == size
    assert attribute_value_size({"N": normalize_number(number)}) == size


@pytest.mark.parametrize(
    "av, size",
    [
        ({"S": ""}, 0), ({"S": "abc"}, 3), ({"S": "\u00e9"}, 2), ({"S": "\U0001f600"}, 4),
        ({"B": ""}, 0), ({"B": "YWFh"}, 3), ({"B": "YQ=="}, 1), ({"B": "YWE="}, 2),
        ({"BOOL": True}, 1), ({"BOOL": False}, 1), ({"NULL": True}, 1),
        ({"L": []}, 3), ({"M": {}}, 3),
        ({"L": [{"S": "a"}]}, 5), ({"L": [{"S": "a"}, {"S": "b"}]}, 7),
        ({"M": {"a": {"S": "b"}}}, 6), ({"M": {"ab": {"S": "cd"}, "e": {"N": "1"}}}, 12),
        ({"L": [{"L": []}]}, 7), ({"L": [{"NULL": True}]}, 5), ({"L": [{"M": {}}]}, 7),
        ({"SS": ["a"]}, 1), ({"SS": ["a", "bc"]}, 3), ({"SS": ["", "a"]}, 1),
        ({"NS": ["1", "12", "-1"]}, 7), ({"BS": ["YWFh", "YQ=="]}, 4),
        ({"M": {"a": {"L": [{"S": "x"}, {"M": {"y": {"N": "5"}}}]}}}, 18),
    ],
)
def test_value_sizes(av, size):
    assert attribute_value_size(av) == size
    assert item_size({"n": av}) == size + 1


def test_names_count_in_utf8_bytes():
    assert item_size({"\u00e9": {"S": "a"}}) == 3
    assert item_size({"k": {"S": "x"}, "p": {"S": "a" * 409597}}) == MAX_ITEM_SIZE


def test_viewer_event_size():
    event = {
        "user_id": {"S": "u00000001"},           # 7 + 9
        "ts": {"N": "1700000000000"},            # 2 + 3: pairs "01" "70", trailing zero pairs trimmed
        "device": {"M": {"type": {"S": "tv"}}},  # 6 + 3 + (4 + 2 + 1)
    }
    assert item_size(event) == 16 + (2 + 3) + (6 + 3 + 7)


@given(st.text(max_size=50), st.text(max_size=50))
def test_string_attribute_size_is_utf8_length(name, value):
    assert item_size({name: {"S": value}}) == len(name.encode()) + len(value.encode())


@given(st.binary(max_size=60))
def test_binary_size_is_raw_length(raw):
    import base64

    assert attribute_value_size({"B": base64.b64encode(raw).decode()}) == len(raw)


# ---------------------------------------------------------------- capacity


def test_read_units():
    assert read_units(0, True) == 1.0  # a read that finds nothing still costs a unit
    assert read_units(0, False) == 0.5
    assert read_units(4096, True) == 1.0
    assert read_units(4097, True) == 2.0
    assert read_units(4097, False) == 1.0
    assert read_units(3500, False) == 0.5
    assert read_units(10 * 1024, True) == 3.0
    assert read_units(4097, True, transactional=True) == 4.0


def test_write_units():
    assert write_units(0) == 1.0
    assert write_units(1007) == 1.0
    assert write_units(1024) == 1.0
    assert write_units(1025) == 2.0
    assert write_units(4007) == 4.0
    assert write_units(4098) == 5.0
    assert write_units(1025, transactional=True) == 4.0


def test_batch_read_rounds_each_item():
    # The Developer Guide's example: 1.5 KB and 6.5 KB items read as 4 KB + 8 KB.
    assert batch_read_units([1536, 6656], True) == 3.0
    assert batch_read_units([1536, 6656], False) == 1.5
    assert read_units(1536 + 6656, True) == 2.0  # Query sums first, then rounds
