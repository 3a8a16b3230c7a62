"""Expression semantics that the differential fuzz (bench/expression_fuzz.py)
checked against DynamoDB Local, kept as fast pure tests.

The pinned cases are ones where both servers answered alike in the fuzz runs
and a slip would change what a condition decides or what an update stores;
the properties run the fuzz's own generator over its seed items and hold for
any expression: a condition decides true or false (never an error other than
ValidationException), NOT decides the opposite, an update leaves the
attributes it does not name untouched.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest
from hypothesis import given, settings, strategies as st

from shoal.errors import ValidationException
from shoal.expressions import (
    ExpressionContext,
    check_scalar_keys,
    parse_condition,
    parse_projection,
    parse_update,
    project,
)

_FUZZ_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "expression_fuzz.py"


def _load_fuzz():
    import sys

    sys.path.insert(0, str(_FUZZ_PATH.parent))
    try:
        spec = importlib.util.spec_from_file_location("expression_fuzz", _FUZZ_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(_FUZZ_PATH.parent))


fuzz = _load_fuzz()
ITEMS = fuzz.seed_items(1)


def holds(text: str, item: dict, values: dict | None = None, names: dict | None = None) -> bool:
    return parse_condition(text, ExpressionContext(names, values)).evaluate(item)


# ---------------------------------------------------------------- pinned semantics

ITEM = {
    "pk": {"S": "p"},
    "n": {"N": "100"},
    "ns": {"NS": ["1", "7", "100"]},
    "b": {"B": "AQID"},  # bytes 01 02 03
    "bs": {"BS": ["AQ==", "Ag=="]},
    "s": {"S": "äb"},
    "l": {"L": [{"N": "1"}, {"S": "x"}, {"M": {"y": {"N": "2"}}}]},
    "m": {"M": {"x.y": {"BOOL": True}, "z": {"NULL": True}}},
}


@pytest.mark.parametrize("text, values, expected", [
    # numbers compare by value, whatever their spelling
    ("n = :v", {":v": {"N": "1E+2"}}, True),
    ("n IN (:a, :b)", {":a": {"N": "7"}, ":b": {"N": "100.00"}}, True),
    ("contains(ns, :v)", {":v": {"N": "7.0"}}, True),
    ("ns = :v", {":v": {"NS": ["100", "1.0", "7"]}}, True),
    ("n BETWEEN :a AND :b", {":a": {"N": "1e2"}, ":b": {"N": "100"}}, True),
    # values of different types: comparisons false, <> true, BETWEEN false
    ("n = :v", {":v": {"S": "100"}}, False),
    ("n <> :v", {":v": {"S": "100"}}, True),
    ("n < :v", {":v": {"S": "200"}}, False),
    ("s BETWEEN :a AND :b", {":a": {"N": "1"}, ":b": {"N": "2"}}, False),
    # binaries by bytes: begins_with, contains (substring), size in bytes
    ("begins_with(b, :v)", {":v": {"B": "AQI="}}, True),
    ("begins_with(b, :v)", {":v": {"B": ""}}, True),
    ("begins_with(b, :v)", {":v": {"S": "AQ"}}, False),
    ("contains(b, :v)", {":v": {"B": "AgM="}}, True),
    ("size(b) = :v", {":v": {"N": "3"}}, True),
    ("size(s) = :v", {":v": {"N": "2"}}, True),  # characters, not bytes
    ("size(bs) = :v", {":v": {"N": "2"}}, True),
    ("size(l) = :v", {":v": {"N": "3"}}, True),
    ("size(m) = :v", {":v": {"N": "2"}}, True),
    # size of a number, a boolean or nothing has no value: every comparison fails
    ("size(n) = :v", {":v": {"N": "3"}}, False),
    ("size(n) <> :v", {":v": {"N": "3"}}, True),
    ("size(nothing) >= :v", {":v": {"N": "0"}}, False),
    # lists and maps: contains finds an element, equality is deep
    ("contains(l, :v)", {":v": {"M": {"y": {"N": "2.0"}}}}, True),
    ("contains(l, :v)", {":v": {"N": "1"}}, True),
    ("l[2].y = :v", {":v": {"N": "2"}}, True),
    ("l[3] = :v", {":v": {"N": "2"}}, False),
    ("l[3] <> :v", {":v": {"N": "2"}}, True),
    # NOT over a missing attribute's comparison, precedence of NOT, AND, OR
    ("NOT nothing = :v", {":v": {"N": "1"}}, True),
    ("n = :v OR n = :v AND nothing = :v", {":v": {"N": "100"}}, True),
    ("(n = :v OR n = :v) AND nothing = :v", {":v": {"N": "100"}}, False),
    ("NOT n = :v AND n = :v", {":v": {"N": "100"}}, False),
])
def test_condition_semantics(text, values, expected):
    assert holds(text, ITEM, values) is expected


@pytest.mark.parametrize("path, kind", [
    ("n", "N"), ("ns", "NS"), ("b", "B"), ("bs", "BS"), ("s", "S"), ("l", "L"), ("m", "M"),
    ("#dot", "BOOL"), ("m.z", "NULL"), ("l[1]", "S"),
])
def test_attribute_type_of_every_type(path, kind):
    names = {"#dot": "x.y"} if "#dot" in path else None
    item = dict(ITEM, **{"x.y": {"BOOL": False}})
    for other in ("S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"):
        assert holds(f"attribute_type({path}, :t)", item, {":t": {"S": other}}, names) is (other == kind)


@pytest.mark.parametrize("text, size", [
    ("abc", 3), ("äb", 2), ("é𝄞", 3), ("😀", 2), ("😀a😀", 5), ("", 0), ("\ufb00", 1),
])
def test_size_of_a_string_counts_utf16_code_units(text, size):
    """Found by the fuzz: Shoal counted code points (size("😀") was 1).
    DynamoDB and DynamoDB Local count UTF-16 code units, as Java does."""
    item = {"s": {"S": text}}
    assert holds("size(s) = :n", item, {":n": {"N": str(size)}})
    assert not holds("size(s) = :n", item, {":n": {"N": str(len(text))}}) or size == len(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_size_of_any_string_counts_characters_beyond_the_bmp_twice(text):
    units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
    item = {"s": {"S": text}, "l": {"L": [{"S": text}]}}
    assert holds("size(s) = :n AND size(l[0]) <= :n", item, {":n": {"N": str(units)}})
    assert not holds("size(s) > :n", item, {":n": {"N": str(units)}})


def test_map_key_with_a_dot_is_one_name():
    assert holds("attribute_exists(m.#k)", ITEM, names={"#k": "x.y"})
    assert not holds("attribute_exists(m.x.y)", ITEM)


def test_updated_new_of_a_nested_path_is_that_path_alone():
    """UPDATED_NEW reports the paths the actions name (DynamoDB Local gives
    the whole top-level attribute; the API Reference says "only the updated
    attributes")."""
    update = parse_update("SET l[2].y = l[2].y + :one REMOVE m.z", ExpressionContext(values={":one": {"N": "1"}}))
    new, changed = update.apply(ITEM)
    assert changed
    assert project(new, update.returned_paths) == {"l": {"L": [{"M": {"y": {"N": "3"}}}]}}
    assert project(ITEM, update.returned_paths) == {"l": {"L": [{"M": {"y": {"N": "2"}}}]}, "m": {"M": {"z": {"NULL": True}}}}


def test_list_elements_removed_by_their_positions_before_the_update():
    update = parse_update("REMOVE l[0], l[2] SET l[1] = :v", ExpressionContext(values={":v": {"S": "new"}}))
    new, _ = update.apply(ITEM)
    assert new["l"] == {"L": [{"S": "new"}]}


@pytest.mark.parametrize("list_before, text, list_after", [
    # appends by SET and ADD in the order of their indexes, whatever the actions' order
    ([], "SET d[2] = :a ADD d[1] :b", [{"N": "2"}, {"N": "1"}]),
    ([{"N": "9"}], "SET d[5] = :a, d[3] = :c ADD d[4] :b", [{"N": "9"}, {"N": "3"}, {"N": "2"}, {"N": "1"}]),
    ([], "ADD d[3] :s, d[1] :b", [{"N": "2"}, {"NS": ["5"]}]),
    # ADD does not meet an element SET appended (it wrote 1 + 2 there)
    ([{"N": "9"}], "SET d[2] = :a ADD d[1] :b", [{"N": "9"}, {"N": "2"}, {"N": "1"}]),
    # REMOVE and DELETE address elements as they were before the update: an
    # appended one is not among them
    ([], "SET d[1] = :a REMOVE d[0]", [{"N": "1"}]),
    ([{"N": "9"}], "SET d[3] = :a REMOVE d[1], d[0]", [{"N": "1"}]),
    ([], "SET d[3] = :s DELETE d[1] :s", [{"NS": ["5"]}]),
])
def test_list_writes_past_the_end_and_positions_before_the_update(list_before, text, list_after):
    """Found by the fuzz; as DynamoDB Local answers, and as the Developer
    Guide's rule that elements added past the end are "sorted in order by
    element number" extends to ADD."""
    values = {":a": {"N": "1"}, ":b": {"N": "2"}, ":c": {"N": "3"}, ":s": {"NS": ["5"]}}
    values = {k: v for k, v in values.items() if k in text}
    update = parse_update(text, ExpressionContext(values=values))
    item = {"pk": {"S": "p"}, "d": {"L": list(list_before)}}
    new, changed = update.apply(item)
    assert changed
    assert new["d"] == {"L": list_after}
    assert item["d"] == {"L": list_before}


def test_add_and_delete_compare_set_numbers_by_value():
    update = parse_update("ADD ns :add DELETE bs :gone", ExpressionContext(
        values={":add": {"NS": ["7.0", "1E+2", "3"]}, ":gone": {"BS": ["AQ=="]}}))
    new, _ = update.apply(ITEM)
    assert sorted(new["ns"]["NS"], key=float) == ["1", "3", "7", "100"]
    assert new["bs"] == {"BS": ["Ag=="]}


def test_projection_of_list_elements_and_overlapping_prefixes():
    projection = parse_projection("l[2].y, l[0], m.#k", ExpressionContext(names={"#k": "x.y"}))
    assert projection.apply(ITEM) == {
        "l": {"L": [{"N": "1"}, {"M": {"y": {"N": "2"}}}]},
        "m": {"M": {"x.y": {"BOOL": True}}},
    }
    with pytest.raises(ValidationException, match="Two document paths overlap"):
        parse_projection("l[2], l[2].y", None)


# ---------------------------------------------------------------- paths into key attributes

NESTED_KEY = "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: "
TABLE_KEYS, INDEX_KEYS = ("pk", "sk"), ("g", "l")


def _bound(kind: str, text: str, names=None, values=None):
    ctx = ExpressionContext(names, values)
    if kind == "update":
        return parse_update(text, ctx)
    if kind == "projection":
        return parse_projection(text, ctx)
    return parse_condition(text, ctx)


@pytest.mark.parametrize("kind, text, names, values, refused", [
    ("condition", "attribute_exists(pk.x)", None, None, "Key: pk"),
    ("condition", "attribute_exists(#k[0])", {"#k": "sk"}, None, "Key: sk"),
    ("condition", "a = :v OR g.x = :v", None, {":v": {"N": "1"}}, "IndexKey: g"),
    ("condition", "size(l[1]) > :v", None, {":v": {"N": "1"}}, "IndexKey: l"),
    ("projection", "a.b, g.y, pk.x", None, None, "Key: pk"),  # table keys before index keys
    ("projection", "l[0]", None, None, "IndexKey: l"),
    ("update", "SET a = g.x", None, None, "IndexKey: g"),
    ("update", "SET g.x = :v", None, {":v": {"N": "1"}}, "IndexKey: g"),
    ("update", "SET a = if_not_exists(sk.x, :v)", None, {":v": {"N": "1"}}, "Key: sk"),
    # reading a key attribute whole, or a path that merely starts like one, is fine
    ("condition", "pk = :v AND g = :v AND attribute_exists(pkx.y)", None, {":v": {"S": "p"}}, None),
    ("projection", "pk, sk, g, l, a.b[0]", None, None, None),
    ("update", "SET a.b = pk, c = g", None, None, None),
])
def test_no_expression_reaches_into_a_key_attribute(kind, text, names, values, refused):
    """Found by the fuzz: Shoal let pk.x evaluate to "missing"; DynamoDB
    refuses it in every expression kind (Query's key condition did already)."""
    expression = _bound(kind, text, names, values)
    if refused is None:
        check_scalar_keys([expression], TABLE_KEYS, INDEX_KEYS)
        return
    with pytest.raises(ValidationException) as info:
        check_scalar_keys([None, expression], TABLE_KEYS, INDEX_KEYS)
    assert info.value.message == NESTED_KEY + refused


def test_the_first_expression_reaching_into_a_table_key_is_named():
    condition = _bound("condition", "attribute_exists(g.x)")
    projection = _bound("projection", "sk[0], pk.a")
    with pytest.raises(ValidationException) as info:
        check_scalar_keys([condition, projection], TABLE_KEYS, INDEX_KEYS)
    assert info.value.message == NESTED_KEY + "Key: sk"


# ---------------------------------------------------------------- properties over the fuzz's expressions

cases = st.integers(0, 10**6).map(lambda number: fuzz.make_case(1, number, ITEMS))


def _bound_condition(tree):
    renderer = fuzz.Renderer()
    text = renderer.condition(tree)
    return text, renderer.names, renderer.values


@settings(max_examples=300, deadline=None)
@given(cases)
def test_a_condition_decides_and_not_decides_the_opposite(case):
    tree = case.get("condition") or case.get("filter")
    if tree is None:
        return
    text, names, values = _bound_condition(tree)
    try:
        condition = parse_condition(text, ExpressionContext(names, values))
    except ValidationException:
        return
    negated = f"NOT {text}" if tree[0] == "paren" else f"NOT ({text})"
    opposite = parse_condition(negated, ExpressionContext(names, values))
    for item in list(ITEMS.values()) + [None]:
        decided = condition.evaluate(item)
        assert decided in (True, False)
        assert opposite.evaluate(item) is (not decided)


@settings(max_examples=300, deadline=None)
@given(cases.filter(lambda case: case["op"] == "UpdateItem"))
def test_an_update_leaves_the_attributes_it_does_not_name(case):
    renderer = fuzz.Renderer()
    text = renderer.update(case["update"])
    try:
        update = parse_update(text, ExpressionContext(renderer.names, renderer.values))
    except ValidationException:
        return
    item = ITEMS.get(case["sk"], fuzz.key(case["sk"]))
    before = repr(item)
    try:
        new, _ = update.apply(item)
    except ValidationException:
        return
    assert repr(item) == before  # the stored item is never changed in place
    for name, value in item.items():
        if name not in update.top_level_names:
            assert new[name] is value
    assert set(new) - set(item) <= update.top_level_names
