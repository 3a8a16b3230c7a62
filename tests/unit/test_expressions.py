"""Unit tests of shoal.expressions: parse errors (messages checked against
DynamoDB), evaluation, update application, projection and key conditions."""

from __future__ import annotations

import pytest

from shoal.errors import ValidationException
from shoal.expressions import (
    ExpressionContext,
    parse_condition,
    parse_key_condition,
    parse_projection,
    parse_update,
    project,
)

VALUES = {
    ":v": {"S": "x"}, ":n": {"N": "1"}, ":n2": {"N": "2"}, ":l": {"L": [{"S": "z"}]},
    ":s": {"SS": ["a"]}, ":ns": {"NS": ["1"]}, ":m": {"M": {}}, ":b": {"BOOL": True},
}
NAMES = {"#n": "name", "#m": "m"}


def ctx_for(text: str) -> ExpressionContext:
    """A context holding exactly the placeholders the text mentions."""
    names = {k: v for k, v in NAMES.items() if k in text}
    values = {k: v for k, v in VALUES.items() if _mentions(text, k)}
    return ExpressionContext(names or None, values or None)


def _mentions(text: str, key: str) -> bool:
    import re

    return re.search(re.escape(key) + r"(?![A-Za-z0-9_])", text) is not None


def error_of(fn) -> str:
    with pytest.raises(ValidationException) as info:
        fn()
    return info.value.message


def cond(text, item=None):
    return parse_condition(text, ctx_for(text)).evaluate(item)


# ---------------------------------------------------------------- condition errors

CONDITION_ERRORS = [
    ("a = = :v", 'Syntax error; token: "=", near: "= = :v"'),
    ("a = :v AND", 'Syntax error; token: "<EOF>", near: "AND"'),
    ("(a = :v", 'Syntax error; token: "<EOF>", near: ":v"'),
    ("a = :v)", 'Syntax error; token: ")", near: ":v)"'),
    ("a b = :v", 'Syntax error; token: "b", near: "a b ="'),
    ("  ", 'Syntax error; token: "<EOF>", near: "  "'),
    ("a IN ()", 'Syntax error; token: ")", near: "()"'),
    ("a.b.[1] = :v", 'Syntax error; token: "[", near: ".[1"'),
    ("a.1b = :v", 'Syntax error; token: "1", near: ".1b"'),
    ("a[00] = :v", 'Syntax error; token: "0", near: "00]"'),
    ("a[-1] = :v", 'Syntax error; token: "-", near: "[-1"'),
    ("NOT a", 'Syntax error; token: "<EOF>", near: "a"'),
    ("(a)", 'Syntax error; token: "<EOF>", near: ")"'),
    ("set = :v", 'Syntax error; token: "set", near: "set ="'),
    ("_a = :v", 'Syntax error; token: "_", near: "_a"'),
    ("é = :v", 'Syntax error; token: "é", near: "é ="'),
    ("a = b = c", 'Syntax error; token: "=", near: "b = c"'),
    ("foo(a)", "Invalid function name; function: foo"),
    ("size(a)", "The function is not allowed to be used this way in an expression; function: size"),
    ("a = attribute_exists(b)", "The function is not allowed to be used this way in an expression; function: attribute_exists"),
    ("if_not_exists(a, :v) = :v", "The function is not allowed in a condition expression; function: if_not_exists"),
    ("status = :v", "Attribute name is a reserved keyword; reserved keyword: status"),
    ("a = :v AND Status = :v", "Attribute name is a reserved keyword; reserved keyword: Status"),
    ("status = :v AND foo(a)", "Attribute name is a reserved keyword; reserved keyword: status"),
    ("#zz = :v AND foo(a)", "Invalid function name; function: foo"),
    ("#zz = :v", "An expression attribute name used in the document path is not defined; attribute name: #zz"),
    ("a = :w", "An expression attribute value used in expression is not defined; attribute value: :w"),
    ("begins_with(a, :n) AND a = :w", "Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"),
    ("attribute_exists(:v)", "Operator or function requires a document path; operator or function: attribute_exists"),
    ("attribute_exists(a, b)", "Incorrect number of operands for operator or function; operator or function: attribute_exists, number of operands: 2"),
    ("size(:n) = :n", "Incorrect operand type for operator or function; operator or function: size, operand type: N"),
    ("attribute_type(a, :v)", "Invalid attribute type name found; type: x, valid types: {N,BS,L,B,NULL,M,S,SS,NS,BOOL}"),
    ("attribute_type(a, :n)", "Incorrect operand type for operator or function; operator or function: attribute_type, operand type: N"),
    ("a < :l", "Incorrect operand type for operator or function; operator or function: <, operand type: L"),
    ("a < :s", "Incorrect operand type for operator or function; operator or function: <, operand type: SS"),
    ("a BETWEEN :n AND :v", "The BETWEEN operator requires same data type for lower and upper bounds; lower bound operand: AttributeValue: {N:1}, upper bound operand: AttributeValue: {S:x}"),
    ("a BETWEEN :n2 AND :n", "The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:2}, upper bound operand: AttributeValue: {N:1}"),
    ("a = a", "The first operand must be distinct from the remaining operands for this operator or function; operator: =, first operand: [a]"),
    ("a IN (a, :v)", "The first operand must be distinct from the remaining operands for this operator or function; operator: IN, first operand: [a]"),
    ("((a = :v))", "The expression has redundant parentheses;"),
    ("a = :v AND ((b = :v))", "The expression has redundant parentheses;"),
    ("a[2147483648] = :v", "List index is not within the allowable range; index: [2147483648]"),
    ("a" + "[0]" * 33 + " = :v", "The document path has too many nesting levels; nesting levels: 34"),
    ("a IN (" + ", ".join([":v"] * 101) + ")", "The IN operator is provided with too many operands; number of operands: 101"),
    (" AND ".join(["a=:v"] * 151), "The expression contains too many operators; operator count: 301"),
    ("NOT " * 300 + "a = :v", "The expression contains too many operators; operator count: 301"),
    ("", "The expression can not be empty;"),
]


@pytest.mark.parametrize("text, message", CONDITION_ERRORS)
def test_condition_errors(text, message):
    assert error_of(lambda: parse_condition(text, ctx_for(text))) == f"Invalid ConditionExpression: {message}"


def test_filter_kind_in_messages():
    message = error_of(lambda: parse_condition("a = = :v", ctx_for(":v"), kind="FilterExpression"))
    assert message == 'Invalid FilterExpression: Syntax error; token: "=", near: "= = :v"'


def test_expression_size_limit():
    text = "a = :v AND " + "a < :v AND " * 400 + "a = :v"
    message = error_of(lambda: parse_condition(text, ctx_for(text)))
    assert message == f"Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: {len(text)}"
    text = "SET " + ", ".join(f"a{i} = :v" for i in range(500))
    message = error_of(lambda: parse_update(text, ctx_for(text)))
    assert message == "Invalid UpdateExpression: Expression size has exceeded the maximum allowed size;"  # no size


@pytest.mark.parametrize("depth", [301, 1000, 2000])
def test_deep_parentheses_are_clean_errors(depth):
    balanced = "(" * depth + "a = :v" + ")" * depth
    assert "redundant parentheses" in error_of(lambda: parse_condition(balanced, ctx_for(":v")))
    unbalanced = "(" * depth + "a = :v"
    assert "Syntax error" in error_of(lambda: parse_condition(unbalanced, ctx_for(":v")))
    nested = "a = :v AND (" * 350 + "a = :v" + ")" * 350
    if len(nested) <= 4096:
        assert "too many operators" in error_of(lambda: parse_condition(nested, ctx_for(":v")))


def test_valid_conditions_parse():
    for text in ["(a = :v)", "NOT (a = :v)", "(NOT a = :v)", "a IN ((:v))", "size((a)) = :n", "(size(a)) = :n",
                 "a[ 1 ] = :v", "a. b = :v", "contains(size(a), :v)", ":v = :v", "size(:v) = :n",
                 "a = :v or b = :v and c = :v", "A.B = :v", "#n.a[0] = :v"]:
        parse_condition(text, ctx_for(text))


# ---------------------------------------------------------------- unused placeholders


def test_unused_names_in_java_set_order():
    ctx = ExpressionContext({"#b": "x", "#a": "y", "#c": "z"}, {":v": {"S": "x"}})
    parse_condition("a = :v", ctx)
    assert error_of(ctx.check_unused) == "Value provided in ExpressionAttributeNames unused in expressions: keys: {#c, #a, #b}"


def test_unused_values():
    ctx = ExpressionContext(None, {":v": {"S": "x"}, ":n": {"N": "1"}, ":n2": {"N": "2"}})
    parse_condition("a = :v AND b = :v", ctx)
    assert error_of(ctx.check_unused) == "Value provided in ExpressionAttributeValues unused in expressions: keys: {:n, :n2}"


def test_context_shared_by_expressions():
    ctx = ExpressionContext({"#a": "a"}, {":v": {"S": "x"}, ":n": {"N": "1"}})
    parse_update("SET #a = :v", ctx)
    parse_condition("b = :n", ctx)
    ctx.check_unused()


# ---------------------------------------------------------------- evaluation

ITEM = {
    "s": {"S": "hello"}, "n": {"N": "5"}, "b": {"B": "AQID"}, "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]}, "l": {"L": [{"S": "z"}, {"N": "1"}]},
    "m": {"M": {"x": {"N": "1"}, "deep": {"L": [{"M": {"k": {"S": "v"}}}]}}},
    "t": {"BOOL": True}, "nul": {"NULL": True},
}


@pytest.mark.parametrize("text, expected", [
    ("n = :n", False), ("n > :n", True), ("n >= :n2", True), ("n < :n2", False),
    ("s = :v", False), ("s > :v", False), ("s <> :v", True), ("missing_attr <> :v", True),
    ("missing_attr = :v", False), ("missing_attr < :v", False), ("s < :n", False),
    ("n BETWEEN :n AND :n2", False), ("m.x BETWEEN :n AND :n2", True),
    ("n IN (:v, :n, :n2)", False), ("m.x IN (:v, :n)", True),
    ("attribute_exists(m.deep[0].k)", True), ("attribute_exists(m.deep[1].k)", False),
    ("attribute_not_exists(zz)", True), ("attribute_type(ss, :t_ss)", True),
    ("begins_with(s, :he)", True), ("begins_with(n, :he)", False),
    ("contains(s, :ell)", True), ("contains(ss, :a)", True), ("contains(ns, :two5)", True),
    ("contains(l, :z)", True), ("contains(l, :n)", True), ("contains(n, :n)", False),
    ("size(s) = :five", True), ("size(ss) = :n2", True), ("size(l) = :n2", True),
    ("size(m) = :n2", True), ("size(b) = :three", True), ("size(n) = :n", False),
    ("size(n) <> :n", True), ("NOT size(zz) = :n", True),
    ("ss = :ss_rev", True), ("ns = :ns_eq", True), ("l = :l_eq", True), ("m.x = :one_0", True),
    ("t = :true", True), ("n = :n AND s = :v OR t = :true", True),
    ("NOT (n = :n OR s = :v)", True),
])
def test_evaluation(text, expected):
    values = {
        ":n": {"N": "1"}, ":n2": {"N": "2"}, ":v": {"S": "x"}, ":t_ss": {"S": "SS"},
        ":he": {"S": "he"}, ":ell": {"S": "ell"}, ":a": {"S": "a"}, ":two5": {"N": "2.50"},
        ":z": {"S": "z"}, ":five": {"N": "5"}, ":three": {"N": "3"}, ":ss_rev": {"SS": ["b", "a"]},
        ":ns_eq": {"NS": ["2.5", "1.0"]}, ":l_eq": {"L": [{"S": "z"}, {"N": "1.00"}]},
        ":one_0": {"N": "1.0"}, ":true": {"BOOL": True},
    }
    used = {k: v for k, v in values.items() if _mentions(text, k)}
    assert parse_condition(text, ExpressionContext(None, used)).evaluate(ITEM) is expected


def test_no_item():
    assert cond("attribute_not_exists(a)", None) is True
    assert cond("a = :v", None) is False
    assert cond("a <> :v", None) is True


def test_binary_ordering_is_unsigned():
    ctx = ExpressionContext(None, {":lo": {"B": "AA=="}, ":hi": {"B": "/w=="}})
    condition = parse_condition("b > :lo AND b < :hi", ctx)
    assert condition.evaluate({"b": {"B": "gA=="}}) is True  # 0x80 between 0x00 and 0xff


# ---------------------------------------------------------------- update errors

_UNDEFINED_NAME = "An expression attribute name used in the document path is not defined; attribute name: #q"
_UNDEFINED_VALUE = "An expression attribute value used in expression is not defined; attribute value: :x"
_OVERLAP_A = "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]"

UPDATE_ERRORS = [
    ("SET a = :v SET b = :v", 'The "SET" section can only be used once in an update expression;'),
    ("REMOVE a REMOVE b", 'The "REMOVE" section can only be used once in an update expression;'),
    ("SET a = :v, a = :v", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]"),
    ("SET m = :v, m.x = :v", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [m], path two: [m, x]"),
    ("SET m.x = :v, m = :v", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [m, x], path two: [m]"),
    ("SET l[0] = :v REMOVE l[0]", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [l, [0]], path two: [l, [0]]"),
    ("SET l[0] = :v, l.a = :v", "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [l, [0]], path two: [l, a]"),
    ("REMOVE a.b, a.c, a[0]", "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, c], path two: [a, [0]]"),
    ("SET a.b = :v, a.b.c = :v, a.b = :v", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, b, c], path two: [a, b]"),
    ("SET n = n + :v", "Incorrect operand type for operator or function; operator or function: +, operand type: S"),
    ("SET l = list_append(:v, l)", "Incorrect operand type for operator or function; operator or function: list_append, operand type: S"),
    ("ADD ss :v", "Incorrect operand type for operator or function; operator: ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND"),
    ("DELETE ss :n", "Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER, typeSet: ALLOWED_FOR_DELETE_OPERAND"),
    ("SET a = if_not_exists(:n, n)", "Operator or function requires a document path; operator or function: if_not_exists"),
    ("SET a = size(s)", "The function is not allowed in an update expression; function: size"),
    ("SET a = foo(s)", "Invalid function name; function: foo"),
    ("SET a = if_not_exists(n, list_append(l, :l))", "The function is not allowed to be used this way in an expression; function: list_append"),
    ("SET a = if_not_exists(list_append(a, :l), :l)", "The function is not allowed to be used this way in an expression; function: list_append"),
    ("SET a = if_not_exists(if_not_exists(a, :n), :n)", "Operator or function requires a document path; operator or function: if_not_exists"),
    ("SET a = list_append(a, list_append(b, :l))", "The function is not allowed to be used this way in an expression; function: list_append"),
    ("SET a = list_append(:l)", "Incorrect number of operands for operator or function; operator or function: list_append, number of operands: 1"),
    ("SET a = :n + :n + :n", 'Syntax error; token: "+", near: ":n + :n"'),
    ("REMOVE a, :v", 'Syntax error; token: ":v", near: ", :v"'),
    ("SET a = :v,", 'Syntax error; token: "<EOF>", near: ","'),
    ("SET", 'Syntax error; token: "<EOF>", near: "SET"'),
    ("ADD new :ns", "Attribute name is a reserved keyword; reserved keyword: new"),
    ("SET #q = :v", "An expression attribute name used in the document path is not defined; attribute name: #q"),
    ("SET l[99999999999999] = :v", "List index is not within the allowable range; index: [99999999999999]"),
    ("SET " + ".".join(f"a{i}" for i in range(33)) + " = :v", "The document path has too many nesting levels; nesting levels: 33"),
    ("", "The expression can not be empty;"),
    # DynamoDB Local answered each case below with this message.  Function
    # arguments take no arithmetic, not even in parentheses:
    ("SET a = if_not_exists(b, :n + :n)", 'Syntax error; token: "+", near: ":n + :n"'),
    ("SET a = if_not_exists(b, (:n + :n))", 'Syntax error; token: "+", near: ":n + :n"'),
    # several faults: target paths before operands, and within each pass the
    # fault of the last action (within one action, the first):
    ("SET #q = :n, b = :x", _UNDEFINED_NAME),
    ("SET b = :x, #q = :n", _UNDEFINED_NAME),
    ("SET a = :x, b = #q", _UNDEFINED_NAME),
    ("SET b = #q, a = :x", _UNDEFINED_VALUE),
    ("SET a = :x + #q", _UNDEFINED_VALUE),
    ("SET #q = :n, a = :n, a = :n", _OVERLAP_A),
    ("SET a = :n, #q = :n, a = :n", _UNDEFINED_NAME),
    ("SET a = :n, a = :n, #q = :n", _UNDEFINED_NAME),
    ("SET a = :x REMOVE a", _OVERLAP_A),
    ("ADD a :v SET b = :x", _UNDEFINED_VALUE),
    ("SET b = :x ADD a :v",
     "Incorrect operand type for operator or function; operator: ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND"),
]


@pytest.mark.parametrize("text, message", UPDATE_ERRORS)
def test_update_errors(text, message):
    assert error_of(lambda: parse_update(text, ctx_for(text))) == f"Invalid UpdateExpression: {message}"


# ---------------------------------------------------------------- update application

BASE = {
    "pk": {"S": "p"}, "n": {"N": "5"}, "s": {"S": "str"},
    "l": {"L": [{"N": "0"}, {"N": "1"}, {"N": "2"}]}, "m": {"M": {"x": {"N": "1"}}},
    "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]},
}


def apply(text, values=None, item=None):
    item = BASE if item is None else item
    snapshot = repr(item)
    new, changed = parse_update(text, ExpressionContext(None, values)).apply(item)
    assert repr(item) == snapshot, "apply must not mutate its input"
    return new


def test_set_arithmetic_and_functions():
    new = apply("SET n = n + :n, a = if_not_exists(zz, :n) - :n2, l2 = list_append(l, :l)",
                {":n": {"N": "1.50"}, ":n2": {"N": "2"}, ":l": {"L": [{"S": "z"}]}})
    assert new["n"] == {"N": "6.5"}
    assert new["a"] == {"N": "-0.5"}
    assert new["l2"] == {"L": [{"N": "0"}, {"N": "1"}, {"N": "2"}, {"S": "z"}]}


def test_if_not_exists_nests_as_the_fallback():
    new = apply("SET a = if_not_exists(zz, if_not_exists(yy, :n)), b = if_not_exists(zz, if_not_exists(n, :n))",
                {":n": {"N": "1"}})
    assert new["a"] == {"N": "1"} and new["b"] == {"N": "5"}


def test_attribute_type_of_a_value():
    def check(value, type_name):
        ctx = ExpressionContext(None, {":v": value, ":t": {"S": type_name}})
        return parse_condition("attribute_type(:v, :t)", ctx).evaluate({})

    assert check({"N": "0"}, "N") and not check({"N": "0"}, "S") and check({"SS": ["a"]}, "SS")
    assert error_of(lambda: cond("attribute_exists(:v)")) == (
        "Invalid ConditionExpression: Operator or function requires a document path; "
        "operator or function: attribute_exists")


def test_set_operands_see_the_old_item():
    new = apply("SET a = n, n = :n", {":n": {"N": "9"}})
    assert new["a"] == {"N": "5"} and new["n"] == {"N": "9"}


def test_set_list_index_beyond_end_appends_and_remove_uses_old_positions():
    new = apply("SET l[1] = :v, l[7] = :n REMOVE l[0]", {":v": {"S": "x"}, ":n": {"N": "1"}})
    assert new["l"] == {"L": [{"S": "x"}, {"N": "2"}, {"N": "1"}]}
    new = apply("REMOVE l[0], l[2], l[9]")
    assert new["l"] == {"L": [{"N": "1"}]}


def test_elements_set_past_the_end_are_appended_in_index_order():
    values = {":a": {"S": "a"}, ":b": {"S": "b"}, ":c": {"S": "c"}, ":d": {"S": "d"}}
    new = apply("SET l[84] = :a, l[37] = :b, l[17] = :c, l[50] = :d", values)
    assert new["l"]["L"][3:] == [{"S": "c"}, {"S": "b"}, {"S": "d"}, {"S": "a"}]
    # The first index past the end is the next position: set in order, l[4] then l[3] would differ.
    new = apply("SET l[4] = :a, l[3] = :b", values)
    assert new["l"]["L"][3:] == [{"S": "b"}, {"S": "a"}]


def test_add_keeps_sets_in_order():
    new = apply("ADD ss :s, ns :n", {":s": {"SS": ["", "c"]}, ":n": {"NS": ["-5", "10"]}},
                {"ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}})
    assert new["ss"] == {"SS": ["", "a", "b", "c"]} and new["ns"] == {"NS": ["-5", "1", "2", "10"]}


def test_nested_set_copies_only_the_path():
    item = {"m": {"M": {"x": {"N": "1"}, "y": {"M": {"z": {"N": "1"}}}}}, "other": {"L": []}}
    new = apply("SET m.x = :n", {":n": {"N": "2"}}, item)
    assert new["m"]["M"]["x"] == {"N": "2"}
    assert new["m"]["M"]["y"] is item["m"]["M"]["y"]
    assert new["other"] is item["other"]


def test_add_and_delete():
    new = apply("ADD n :n, ss :ss, ns :ns, newset :ns2 DELETE zz :ss",
                {":n": {"N": "-5"}, ":ss": {"SS": ["b", "c"]}, ":ns": {"NS": ["2", "3"]}, ":ns2": {"NS": ["7"]}})
    assert new["n"] == {"N": "0"}
    assert new["ss"] == {"SS": ["a", "b", "c"]}
    assert new["ns"] == {"NS": ["1", "2", "3"]}
    assert new["newset"] == {"NS": ["7"]}
    new = apply("DELETE ss :ss, ns :ns", {":ss": {"SS": ["a", "b"]}, ":ns": {"NS": ["1"]}})
    assert "ss" not in new and new["ns"] == {"NS": ["2"]}


@pytest.mark.parametrize("text, values, message", [
    ("SET s = s + :n", {":n": {"N": "1"}}, "An operand in the update expression has an incorrect data type"),
    ("ADD s :n", {":n": {"N": "1"}}, "An operand in the update expression has an incorrect data type"),
    ("ADD n :ns", {":ns": {"NS": ["1"]}}, "An operand in the update expression has an incorrect data type"),
    ("DELETE ss :ns", {":ns": {"NS": ["1"]}}, "An operand in the update expression has an incorrect data type"),
    ("SET x = list_append(l, s)", None, "An operand in the update expression has an incorrect data type"),
    ("SET a = b + :n", {":n": {"N": "1"}}, "The provided expression refers to an attribute that does not exist in the item"),
    ("SET q.r = :n", {":n": {"N": "1"}}, "The document path provided in the update expression is invalid for update"),
    ("SET m.q.r = :n", {":n": {"N": "1"}}, "The document path provided in the update expression is invalid for update"),
    ("SET s[0] = :n", {":n": {"N": "1"}}, "The document path provided in the update expression is invalid for update"),
    ("REMOVE q.r", None, "The document path provided in the update expression is invalid for update"),
    # Several faults: target paths, then ADD/DELETE operand types, then missing
    # SET operands, then SET operand types.  DynamoDB Local answered each case
    # so on this item; its choice also depends on the attribute names (on an
    # item without zz, "SET a = q, zz.x = :n" reports the missing q, "SET a =
    # q, c.x = :n" the path), which no fixed order can follow.
    ("SET a = q, s[0] = :n", {":n": {"N": "1"}}, "The document path provided in the update expression is invalid for update"),
    ("SET s[0] = :n, a = q", {":n": {"N": "1"}}, "The document path provided in the update expression is invalid for update"),
    ("SET a = q REMOVE s[0]", None, "The document path provided in the update expression is invalid for update"),
    ("SET a = list_append(s, :l), s.x = :n", {":l": {"L": []}, ":n": {"N": "1"}},
     "The document path provided in the update expression is invalid for update"),
    ("SET a = q DELETE ns :ss", {":ss": {"SS": ["p"]}}, "An operand in the update expression has an incorrect data type"),
    ("SET a = zz.q DELETE ns :ss", {":ss": {"SS": ["p"]}}, "An operand in the update expression has an incorrect data type"),
    ("SET a = q ADD s :n", {":n": {"N": "1"}}, "An operand in the update expression has an incorrect data type"),
    ("SET a = s + :n, b = q", {":n": {"N": "1"}}, "The provided expression refers to an attribute that does not exist in the item"),
    ("SET b = q, a = s + :n", {":n": {"N": "1"}}, "The provided expression refers to an attribute that does not exist in the item"),
])
def test_update_runtime_errors(text, values, message):
    update = parse_update(text, ExpressionContext(None, values))
    assert error_of(lambda: update.apply(BASE)) == message


def test_update_paths():
    update = parse_update("SET #a.b = :v REMOVE c[1] ADD d :n", ExpressionContext({"#a": "a"}, {":v": {"S": "x"}, ":n": {"N": "1"}}))
    assert update.paths == [("a", "b"), ("c", 1), ("d",)]
    assert update.top_level_names == {"a", "c", "d"}


# ---------------------------------------------------------------- projection

NESTED = {
    "a": {"M": {"c": {"N": "1"}, "l": {"L": [{"N": "0"}, {"M": {"x": {"N": "1"}, "y": {"N": "2"}}}, {"N": "2"}]}}},
    "l": {"L": [{"N": "0"}, {"N": "1"}, {"N": "2"}]}, "pk": {"S": "p"},
}


@pytest.mark.parametrize("text, expected", [
    ("pk", {"pk": {"S": "p"}}),
    ("a.b", {}),
    ("a.c, a.b", {"a": {"M": {"c": {"N": "1"}}}}),
    ("l[5]", {}),
    ("l[2], l[0]", {"l": {"L": [{"N": "0"}, {"N": "2"}]}}),
    ("a.l[1].x, a.l[2], a.l[7]", {"a": {"M": {"l": {"L": [{"M": {"x": {"N": "1"}}}, {"N": "2"}]}}}}),
    ("l.x", {}), ("a[0]", {}), ("l[1].x, a.c", {"a": {"M": {"c": {"N": "1"}}}}),
])
def test_projection(text, expected):
    assert parse_projection(text, None).apply(NESTED) == expected


@pytest.mark.parametrize("text, message", [
    ("a, a", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]"),
    ("a.b, a", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a]"),
    ("status", "Attribute name is a reserved keyword; reserved keyword: status"),
    (":v", 'Syntax error; token: ":v", near: ":v"'),
    ("size(a)", 'Syntax error; token: "(", near: "size(a"'),
    ("a,", 'Syntax error; token: "<EOF>", near: ","'),
    ("", "The expression can not be empty;"),
    # Several faults: the paths are taken from the last back (DynamoDB Local
    # answered each case with this message).
    ("#q, a, a", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]"),
    ("a, a, #q", "An expression attribute name used in the document path is not defined; attribute name: #q"),
    ("#q, #z", "An expression attribute name used in the document path is not defined; attribute name: #z"),
    ("a, a, b, b", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [b], path two: [b]"),
    ("#q, a.b, a[0]", "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a, [0]]"),
    ("a.b, a.c, a", "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, c], path two: [a]"),
])
def test_projection_errors(text, message):
    assert error_of(lambda: parse_projection(text, ctx_for(text))) == f"Invalid ProjectionExpression: {message}"


def test_project_function():
    assert project(NESTED, [("a", "c"), ("pk",)]) == {"a": {"M": {"c": {"N": "1"}}}, "pk": {"S": "p"}}


# ---------------------------------------------------------------- key conditions

SCHEMA = ("pk", "sk", {"pk": "S", "sk": "N"})


def key_condition(text):
    kc = parse_key_condition(text, ctx_for(text))
    kc.validate(*SCHEMA)
    return kc


def test_key_condition_shapes():
    kc = key_condition("sk BETWEEN :n AND :n2 AND pk = :v")
    assert (kc.partition_name, kc.partition_value) == ("pk", {"S": "x"})
    assert (kc.sort_name, kc.sort_op, kc.sort_values) == ("sk", "BETWEEN", [{"N": "1"}, {"N": "2"}])
    kc = key_condition(":n < sk AND (pk = :v)")
    assert (kc.sort_op, kc.sort_values) == ("GT", [{"N": "1"}])
    kc = key_condition("pk = :v")
    assert kc.sort_name is None and kc.sort_op is None


@pytest.mark.parametrize("text, message", [
    ("pk = :v AND sk <> :n", "Invalid operator used in KeyConditionExpression: <>"),
    ("pk = :v OR sk = :n", "Invalid operator used in KeyConditionExpression: OR"),
    ("pk = :v AND attribute_exists(sk)", "Invalid operator used in KeyConditionExpression: attribute_exists"),
    ("pk = :v AND NOT sk = :n", "Invalid operator used in KeyConditionExpression: NOT"),
    ("pk = :v AND sk IN (:n)", "Invalid operator used in KeyConditionExpression: IN"),
    ("pk = :v AND size(sk) = :n", "KeyConditionExpressions cannot contain nested operations"),
    ("pk = :v AND sk = :n AND sk = :n", "Invalid KeyConditionExpression: KeyConditionExpressions must only contain one condition per key"),
    ("pk = :v AND begins_with(sk, :n)", "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"),
    ("pk = :v AND sk BETWEEN :n2 AND :n", "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:2}, upper bound operand: AttributeValue: {N:1}"),
    ("pk = pk", "Invalid KeyConditionExpression: The first operand must be distinct from the remaining operands for this operator or function; operator: =, first operand: [pk]"),
    ("pk = :v AND :v = :v", "Invalid condition in KeyConditionExpression: No key attribute specified"),
    ("pk = :v AND begins_with(:v, sk)", "Invalid condition in KeyConditionExpression: begins_with operator must have the key attribute as its first operand"),
    ("other = :v", "Invalid KeyConditionExpression: Attribute name is a reserved keyword; reserved keyword: other"),
])
def test_key_condition_parse_errors(text, message):
    assert error_of(lambda: parse_key_condition(text, ctx_for(text))) == message


@pytest.mark.parametrize("text, message", [
    ("sk = :n", "Query condition missed key schema element: pk"),
    ("pk = :v AND other2 = :n", "Query condition missed key schema element: sk"),
    ("pk > :v", "Query key condition not supported"),
    ("pk = :n", "One or more parameter values were invalid: Condition parameter type does not match schema type"),
    ("pk = :v AND begins_with(sk, :v)", "One or more parameter values were invalid: Condition parameter type does not match schema type"),
    ("pk = :v AND sk = :n AND other2 = :n",
     "The number of query conditions (3) exceeds the number of key attributes defined in the schema (2)"),
    ("pk.x = :v", "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: Key: pk"),
    ("pk = :v AND a.b < :n", "KeyConditionExpressions cannot have conditions on nested attributes"),
    ("pk = :v AND a[0] < :n", "KeyConditionExpressions cannot have conditions on nested attributes"),
])
def test_key_condition_schema_errors(text, message):
    kc = parse_key_condition(text, ctx_for(text))
    assert error_of(lambda: kc.validate(*SCHEMA)) == message


def test_key_conditions_beyond_a_hash_only_schema():
    text = "pk = :v AND sk = :n"
    kc = parse_key_condition(text, ctx_for(text))
    assert error_of(lambda: kc.validate("pk", None, {"pk": "S"})) == (
        "The number of query conditions (2) exceeds the number of key attributes defined in the schema (1)")


@pytest.mark.parametrize("text, values, start, fault", [
    ("pk = :p", {":p": {"S": "a"}}, {"pk": {"S": "a"}}, None),
    ("pk = :p", {":p": {"S": "a"}}, {"pk": {"S": "b"}},
     "The provided starting key is outside query boundaries based on provided conditions"),
    ("pk = :p AND sk > :n", {":p": {"S": "a"}, ":n": {"N": "10"}}, {"pk": {"S": "a"}, "sk": {"N": "9.5"}},
     "The provided starting key does not match the range key predicate"),
    ("pk = :p AND sk > :n", {":p": {"S": "a"}, ":n": {"N": "10"}}, {"pk": {"S": "a"}, "sk": {"N": "11"}}, None),
    ("pk = :p AND sk BETWEEN :n AND :m", {":p": {"S": "a"}, ":n": {"N": "1"}, ":m": {"N": "3"}},
     {"pk": {"S": "a"}, "sk": {"N": "3"}}, None),
    ("pk = :p AND sk <= :n", {":p": {"S": "a"}, ":n": {"N": "10"}}, {"pk": {"S": "b"}, "sk": {"N": "2"}},
     "The query can return at most one row and cannot be restarted"),
])
def test_the_start_key_of_a_query_must_lie_in_its_key_range(text, values, start, fault):
    condition = parse_key_condition(text, ExpressionContext(None, values))
    condition.validate("pk", "sk", {"pk": "S", "sk": "N"})
    assert condition.start_key_fault(start) == fault


@pytest.mark.parametrize("kind", ["ConditionExpression", "FilterExpression"])
@pytest.mark.parametrize("text, function", [
    ("size(size(a)) > :n", "size"),
    ("size(size(size(a))) > :n", "size"),
    ("begins_with(size(a), :s)", "begins_with"),
    ("begins_with(:s, size(a))", "begins_with"),
])
def test_a_size_result_is_a_number_to_the_functions_it_is_given_to(kind, text, function):
    """size() is a number whatever its operand: a function that takes no
    number refuses it when the expression is bound, before any item is read."""
    ctx = ExpressionContext(None, {":n": {"N": "0"}, ":s": {"S": "x"}})
    with pytest.raises(ValidationException) as info:
        parse_condition(text, ctx, kind=kind)
    assert info.value.message == (f"Invalid {kind}: Incorrect operand type for operator or function; "
                                  f"operator or function: {function}, operand type: N")


@pytest.mark.parametrize("text, expected", [
    ("attribute_type(size(a), :t)", True),  # a number, and attribute_type says so
    ("contains(size(a), :s)", False),
    ("size(a) = :three", True),
])
def test_a_size_result_is_accepted_where_a_number_may_be(text, expected):
    ctx = ExpressionContext(None, {":t": {"S": "N"}, ":s": {"S": "x"}, ":three": {"N": "3"}})
    assert parse_condition(text, ctx, kind="FilterExpression").evaluate({"a": {"S": "abc"}}) is expected
