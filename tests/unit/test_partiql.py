"""The PartiQL parser and its translation to DynamoDB expressions, without a server."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import ValidationException
from shoal.expressions import ExpressionContext, parse_condition, parse_update
from shoal.partiql import ast, parse_statement
from shoal.partiql.translate import (
    ExpressionBuilder,
    bind_value,
    check_parameters,
    sort_condition,
    split_key,
)

MALFORMED = "Statement wasn't well formed, can't be processed: "


def message_of(call, *args):
    with pytest.raises(ValidationException) as info:
        call(*args)
    return info.value.message


# ---------------------------------------------------------------- parser


def test_select_shape():
    stmt = parse_statement('SELECT a, b.c[2] FROM "T"."idx" WHERE pk = ? AND sk > 3 ORDER BY sk DESC')
    assert stmt.table == "T" and stmt.index == "idx"
    assert stmt.projection == (ast.Path(("a",)), ast.Path(("b", "c", 2)))
    assert stmt.where == ast.And((ast.Compare("=", ast.Path(("pk",)), ast.Param(0)),
                                  ast.Compare(">", ast.Path(("sk",)), ast.Literal(("N", "3")))))
    assert stmt.order_by == ((ast.Path(("sk",)), True),)
    assert stmt.params == 1


def test_keywords_are_case_insensitive_and_quoted_names_keep_case():
    stmt = parse_statement("""select * from "My""Table" where "Select" = 'it''s'""")
    assert stmt.table == 'My"Table'
    assert stmt.where == ast.Compare("=", ast.Path(("Select",)), ast.Literal(("S", "it's")))


def test_insert_value_literals():
    stmt = parse_statement("INSERT INTO t VALUE {'n': -1.50, 'b': TRUE, 'z': NULL, 'l': [1, 'x'], "
                           "'m': {'k': false}, 's': <<'a', 'b'>>, 'p': ?}")
    item = bind_value(stmt.item, [{"S": "param"}])["M"]
    assert item == {
        "n": {"N": "-1.5"}, "b": {"BOOL": True}, "z": {"NULL": True},
        "l": {"L": [{"N": "1"}, {"S": "x"}]}, "m": {"M": {"k": {"BOOL": False}}},
        "s": {"SS": ["a", "b"]}, "p": {"S": "param"},
    }


def test_update_and_delete_shapes():
    stmt = parse_statement("UPDATE t SET a = a + 1, b = list_append(b, [1]) REMOVE c "
                           "WHERE pk = 'x' RETURNING MODIFIED NEW *")
    assert [type(c).__name__ for c in stmt.clauses] == ["SetClause", "SetClause", "RemoveClause"]
    assert stmt.returning == "UPDATED_NEW"
    stmt = parse_statement("DELETE FROM t WHERE pk = 'x' RETURNING ALL OLD *")
    assert stmt.returning == "ALL_OLD"


def test_from_first_update_is_an_update():
    stmt = parse_statement("from t where pk = 'k' and x = 1 set a = 2, b = b + 1 remove c returning all new *")
    expected = parse_statement("UPDATE t SET a = 2, b = b + 1 REMOVE c WHERE pk = 'k' AND x = 1 RETURNING ALL NEW *")
    assert isinstance(stmt, ast.Update) and stmt == expected
    stmt = parse_statement("FROM t WHERE pk = ? SET a = ?")  # parameters in statement order
    assert stmt.where.right == ast.Param(0) and stmt.clauses[0].value == ast.Param(1) and stmt.params == 2
    stmt = parse_statement('FROM "T" SET a = 1')
    assert stmt.where is None and stmt.clauses == (ast.SetClause(ast.Path(("a",)), ast.Literal(("N", "1"))),)


def test_is_type():
    stmt = parse_statement("SELECT * FROM t WHERE a IS bool AND b IS NOT STRING AND c IS Tuple")
    assert stmt.where.operands == (ast.IsType(ast.Path(("a",)), False, "BOOL"),
                                   ast.IsType(ast.Path(("b",)), True, "S"),
                                   ast.IsType(ast.Path(("c",)), False, "M"))
    assert message_of(parse_statement, "SELECT * FROM t WHERE x IS FOO") == MALFORMED + "Expected type name"
    assert message_of(parse_statement, "SELECT * FROM t WHERE x IS NOT foo") == MALFORMED + "Expected type name"


@pytest.mark.parametrize("text, where", [
    ("SELECT * FROM t WHERE pk = 1e126", "root"),
    ("SELECT * FROM t WHERE pk = -1e126", "root"),
    ("UPDATE t SET a = 1e126 WHERE pk = 1", "root"),
    ("SELECT * FROM t WHERE pk = [1, 1e126]", "root[1]"),
    ("SELECT * FROM t WHERE pk = {'x': 1e126}", "root.x"),
    ("INSERT INTO t VALUE {'pk': 1, 'm': {'l': [0, {'y': 1e126}]}}", "root.m.l[1].y"),
])
def test_number_overflow_names_its_place(text, where):
    assert message_of(parse_statement, text) == (
        "Number overflow. Attempting to store a number with magnitude larger than supported range under " + where)


def test_number_underflow_and_digits_name_their_place():
    assert message_of(parse_statement, "SELECT * FROM t WHERE pk = 1e-131") == (
        "Number underflow. Attempting to store a number with magnitude smaller than supported range under root")
    assert message_of(parse_statement, "SELECT * FROM t WHERE pk = " + "1" * 39) == (
        "Attempting to store more than 38 significant digits in a Number under root")
    assert message_of(parse_statement, "INSERT INTO t VALUE {'x': " + "1" * 39 + "}") == (
        "Attempting to store more than 38 significant digits in a Number under root.x")


def test_exists_statement():
    stmt = parse_statement("NOT EXISTS (SELECT * FROM t WHERE pk = 'a' AND x IS NOT MISSING)")
    assert isinstance(stmt, ast.Exists) and stmt.negated
    assert stmt.select.where.operands[1] == ast.IsMissing(ast.Path(("x",)), True)


@pytest.mark.parametrize("text", [
    "SELEC * FROM t", "SELECT * FROM t WHERE x = '", "INSERT INTO t VALUE", "UPDATE t WHERE a = 1",
    "DELETE t WHERE a = 1", "SELECT * FROM t WHERE a[x] = 1",
])
def test_malformed(text):
    assert message_of(parse_statement, text) == MALFORMED + text


@pytest.mark.parametrize("text, reason", [
    # a token left over after a complete statement
    ("SELECT * FROM t WHERE pk = 1 foo", "Unexpected token after expression"),
    ("SELECT * FROM t WHERE pk = 1 e5", "Unexpected token after expression"),
    ("SELECT * FROM t WHERE pk = 1)", "Unexpected token after expression"),
    ("SELECT * FROM t ORDER BY pk WHERE pk = 1", "Unexpected token after expression"),
    ("INSERT INTO t VALUE {'pk': 1} foo", "Unexpected token after expression"),
    ("INSERT INTO t x VALUE {'pk': 1}", "Unexpected token after expression"),
    ("UPDATE t SET a = 9 WHERE pk = 2 foo", "Unexpected token after expression"),
    ("FROM t SET a = 9 WHERE pk = 2", "Unexpected token after expression"),
    ("FROM t WHERE pk = 2 SET a = 9 WHERE pk = 2", "Unexpected token after expression"),
    ("DELETE FROM t WHERE pk = 3 ORDER BY pk", "Unexpected token after expression"),
    # nothing, or punctuation, where a term should start
    ("SELECT * FROM t WHERE", "Unexpected term"),
    ("SELECT * FROM t WHERE   ", "Unexpected term"),
    ("SELECT * FROM t WHERE;", "Unexpected term"),
    ("SELECT * FROM t WHERE (", "Unexpected term"),
    ("SELECT * FROM t WHERE NOT", "Unexpected term"),
    ("UPDATE t SET a = 1 WHERE", "Unexpected term"),
    ("DELETE FROM t WHERE", "Unexpected term"),
    ("SELECT * FROM", "Unexpected term"),
    # an infix operator with nothing after it
    ("SELECT * FROM t WHERE a = 1 AND", "Missing right-hand side expression of infix operator"),
    ("SELECT * FROM t WHERE a = 1 OR", "Missing right-hand side expression of infix operator"),
    ("SELECT * FROM t WHERE a =", "Missing right-hand side expression of infix operator"),
    # a keyword or an operator where a term should start
    ("SELECT * FROM t WHERE ORDER BY pk", "Unexpected keyword"),
    ("SELECT * FROM t WHERE value = 1", "Unexpected keyword"),
    ("SELECT * FROM t WHERE pk = LIKE", "Unexpected operator"),
    ("SELECT * FROM t WHERE IS NULL", "Unexpected operator"),
    # a DML statement without its table
    ("DELETE FROM", "Expected identifier for simple path"),
    ("DELETE FROM;", "Expected identifier for simple path"),
    ("DELETE FROM WHERE pk = 'a'", "Expected identifier for simple path"),
    ("UPDATE SET a = 1 WHERE pk = 'a'", "Expected identifier for simple path"),
    # a reserved word as a path's dot component
    ("SELECT * FROM t WHERE attribute_exists(m.inner)", "Invalid path dot component"),
    ("SELECT * FROM t WHERE m.value = 1", "Invalid path dot component"),
    ("UPDATE t SET m.inner = 1 WHERE pk = 'a'", "Invalid path dot component"),
    ("UPDATE t SET a = 1 WHERE pk = 'a' AND m.size = 1", "Invalid path dot component"),
    # comments DynamoDB does not know: nothing after the colon
    ("SELECT * FROM t WHERE a # 1", ""),
    ("SELECT * FROM t WHERE pk = 1 /* note", ""),
])
def test_syntax_error_reasons(text, reason):
    assert message_of(parse_statement, text) == MALFORMED + reason


def test_comments_are_whitespace():
    stmt = parse_statement("SELECT * FROM \"T\" -- a note\nWHERE /* here\n */ pk = 'x' -- end")
    assert stmt.where == ast.Compare("=", ast.Path(("pk",)), ast.Literal(("S", "x")))
    assert parse_statement("SELECT * FROM t WHERE s = '-- not /* a comment'").where.right == (
        ast.Literal(("S", "-- not /* a comment")))


def test_quoted_reserved_words_and_functions_stay_allowed():
    stmt = parse_statement('SELECT * FROM t WHERE m."inner" = 1 AND size(s) > 1 AND "value" = TRUE')
    assert stmt.where.operands[0].left == ast.Path(("m", "inner"))
    stmt = parse_statement('UPDATE t SET m."inner" = 1 WHERE pk = \'a\'')
    assert stmt.clauses[0].path == ast.Path(("m", "inner"))


@pytest.mark.parametrize("text", [
    'SELECT * FROM "T" t WHERE pk = 1', 'SELECT * FROM "T" AS t WHERE pk = 1', "SELECT * FROM t extra",
    'SELECT * FROM "T"."i" t', 'UPDATE "T" t SET a = 3 WHERE pk = 1', "DELETE FROM \"T\" t WHERE pk = 'x'",
])
def test_aliases_are_refused(text):
    assert message_of(parse_statement, text) == "Aliasing is not supported"


def test_delete_returning_only_all_old():
    assert message_of(parse_statement, "DELETE FROM t WHERE pk = 1 RETURNING ALL NEW *") == (
        "Invalid returning clause: RETURNING ALL NEW *. Only RETURNING ALL OLD * is allowed in DELETE statements.")


def test_parameter_count():
    stmt = parse_statement("SELECT * FROM t WHERE a = ? AND b = ?")
    assert check_parameters(stmt, [{"N": "1"}, {"N": "2"}]) == [{"N": "1"}, {"N": "2"}]
    for params in (None, [{"N": "1"}], [{"N": "1"}] * 3):
        assert message_of(check_parameters, stmt, params) == (
            "Number of parameters in request and statement don't match.")


def test_bag_errors():
    empty = parse_statement("INSERT INTO t VALUE {'s': <<>>}")
    assert message_of(bind_value, empty.item, []) == "Empty bags are not supported"
    mixed = parse_statement("INSERT INTO t VALUE {'s': <<1, 'a'>>}")
    assert message_of(bind_value, mixed.item, []) == (
        "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags")


# ---------------------------------------------------------------- translation


def test_split_key_takes_first_equality_of_each_key():
    stmt = parse_statement("UPDATE t SET x = 1 WHERE pk = 'a' AND 5 = sk AND sk = 6 AND y < 2")
    key, rest = split_key(stmt.where, ("pk", "sk"), [])
    assert key == {"pk": {"S": "a"}, "sk": {"N": "5"}}
    assert len(rest) == 2


def test_sort_condition_flips_reversed_comparisons():
    stmt = parse_statement("SELECT * FROM t WHERE pk = 'a' AND 10 > sk")
    op, values, _node = sort_condition(stmt.where, "sk")
    assert op == "<" and values == (ast.Literal(("N", "10")),)
    stmt = parse_statement("SELECT * FROM t WHERE pk = 'a' AND begins_with(sk, 'x')")
    assert sort_condition(stmt.where, "sk")[0] == "begins_with"
    stmt = parse_statement("SELECT * FROM t WHERE pk = 'a' OR sk = 1")
    assert sort_condition(stmt.where, "sk") is None


def _condition(text: str, params=()):
    builder = ExpressionBuilder(list(params))
    expression = builder.condition(parse_statement(text).where)
    ctx = ExpressionContext(builder.names, builder.values)
    return expression, builder, parse_condition(expression, ctx, "FilterExpression")


def test_condition_text_uses_placeholders_and_evaluates():
    text, builder, condition = _condition(
        "SELECT * FROM t WHERE a.b[1] = ? AND (c IN [1, 2] OR NOT d BETWEEN 1 AND 3) AND e IS MISSING",
        [{"S": "x"}])
    assert text == ("(#n0.#n1[1] = :v0) AND ((#n2 IN (:v1, :v2)) OR (NOT (#n3 BETWEEN :v3 AND :v4))) "
                    "AND (attribute_not_exists(#n4))")
    assert builder.names == {"#n0": "a", "#n1": "b", "#n2": "c", "#n3": "d", "#n4": "e"}
    item = {"a": {"M": {"b": {"L": [{"S": "no"}, {"S": "x"}]}}}, "c": {"N": "2"}}
    assert condition.evaluate(item)
    assert not condition.evaluate({**item, "e": {"S": "here"}})


def test_functions_translate_to_expression_functions():
    _, _, condition = _condition(
        "SELECT * FROM t WHERE begins_with(s, 'ab') AND contains(tags, 'x') AND size(s) > 2 "
        "AND attribute_type(s, 'S') AND n IS NOT NULL")
    assert condition.evaluate({"s": {"S": "abc"}, "tags": {"SS": ["x"]}, "n": {"N": "1"}})
    assert not condition.evaluate({"s": {"S": "abc"}, "tags": {"SS": ["x"]}, "n": {"NULL": True}})


def test_is_type_translates_to_attribute_type():
    text, _, condition = _condition("SELECT * FROM t WHERE f IS BOOL AND s IS NOT STRING")
    assert text == "(attribute_type(#n0, :v0)) AND (NOT (attribute_type(#n1, :v1)))"
    assert condition.evaluate({"f": {"BOOL": False}, "s": {"N": "1"}})
    assert condition.evaluate({"f": {"BOOL": True}})
    assert not condition.evaluate({"f": {"BOOL": True}, "s": {"S": "x"}})
    assert not condition.evaluate({"f": {"S": "true"}})
    for name, item in [("NULL", {"NULL": True}), ("LIST", {"L": []}), ("STRUCT", {"M": {}}),
                       ("BLOB", {"B": b"x"}), ("BOOLEAN", {"BOOL": True})]:
        _, _, condition = _condition(f"SELECT * FROM t WHERE a IS {name}")
        assert condition.evaluate({"a": item}), name
        assert not condition.evaluate({"a": {"S": "x"}}), name


def test_unknown_function():
    stmt = parse_statement("SELECT * FROM t WHERE foo(x)")
    assert message_of(ExpressionBuilder([]).condition, stmt.where) == "Unrecognized function: foo"


def test_update_text_groups_sections():
    stmt = parse_statement("UPDATE t SET a = a + ?, s = set_add(s, <<1>>) REMOVE r "
                           "SET l = list_append(l, [1]), d = set_delete(d, <<'x'>>) WHERE pk = 1")
    builder = ExpressionBuilder([{"N": "2"}])
    text = builder.update(stmt.clauses)
    assert text == ("SET #n0 = #n0 + :v0, #n3 = list_append(#n3, :v2) ADD #n1 :v1 "
                    "REMOVE #n2 DELETE #n4 :v3")
    update = parse_update(text, ExpressionContext(builder.names, builder.values))
    new, _ = update.apply({"a": {"N": "1"}, "r": {"S": "x"}, "l": {"L": []}, "d": {"SS": ["x", "y"]}})
    assert new == {"a": {"N": "3"}, "s": {"NS": ["1"]}, "l": {"L": [{"N": "1"}]}, "d": {"SS": ["y"]}}


def test_set_add_needs_a_set():
    stmt = parse_statement("UPDATE t SET a = set_add(a, 5) WHERE pk = 1")
    assert message_of(ExpressionBuilder([]).update, stmt.clauses) == (
        "The second argument to SET_ADD must be a value with type SET")


# ---------------------------------------------------------------- properties


def _render(av: dict) -> str:
    """PartiQL literal text for an attribute value."""
    (type_, value), = av.items()
    if type_ == "S":
        return "'" + value.replace("'", "''") + "'"
    if type_ == "N":
        return value
    if type_ == "BOOL":
        return "true" if value else "false"
    if type_ == "NULL":
        return "null"
    if type_ == "L":
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if type_ == "SS":
        return "<<" + ", ".join(_render({"S": v}) for v in value) + ">>"
    return "{" + ", ".join(f"{_render({'S': k})}: {_render(v)}" for k, v in value.items()) + "}"


_scalars = st.one_of(
    st.text(max_size=8).map(lambda s: {"S": s}),
    st.integers(-10**12, 10**12).map(lambda n: {"N": str(n)}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.text(max_size=4), min_size=1, max_size=3, unique=True).map(lambda v: {"SS": v}),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=3).map(lambda v: {"M": v}),
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), _values, max_size=5))
def test_insert_literal_round_trips(item):
    stmt = parse_statement(f"INSERT INTO t VALUE {_render({'M': item})}")
    assert bind_value(stmt.item, []) == {"M": item}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4),
       st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), st.integers(-5, 5), st.integers(-5, 5))
def test_comparisons_agree_with_python(names, op, stored, constant):
    """A translated comparison evaluates as the same comparison of numbers does."""
    path = ".".join(f'"{n}"' for n in names)
    _, _, condition = _condition(f"SELECT * FROM t WHERE {path} {op} {constant}")
    item: dict = {"N": str(stored)}
    for name in reversed(names):
        item = {"M": {name: item}}
    expected = {"=": stored == constant, "<>": stored != constant, "<": stored < constant,
                "<=": stored <= constant, ">": stored > constant, ">=": stored >= constant}[op]
    assert condition.evaluate(item["M"]) is expected


@pytest.mark.parametrize("text", [
    'SELECT "" FROM "T" WHERE pk = 1',
    'SELECT a."" FROM "T" WHERE pk = 1',
    'UPDATE "T" SET "" = 1 WHERE pk = 1',
    'INSERT INTO "T" VALUE {\'pk\': 1, \'\': 2}',
    'INSERT INTO "T" VALUE {\'pk\': 1, \'m\': {\'\': 2}}',
])
def test_an_empty_attribute_name_in_the_statement_is_refused(text):
    assert message_of(parse_statement, text) == "Path component cannot be an empty string"


_DOC = {"pk": {"S": "m"}, "a": {"S": "abc"},
        "m": {"M": {"nested": {"S": "v"}, "deep": {"M": {"c": {"N": "1"}}}, "ll": {"L": [{"S": "q"}]}}},
        "l": {"L": [{"S": "x"}, {"M": {"b": {"S": "y"}, "z": {"S": "z"}}}, {"L": [{"N": "5"}, {"N": "6"}]}]}}


@pytest.mark.parametrize("paths, expected", [
    ([("m", "nested")], {"nested": {"S": "v"}}),
    ([("m", "deep", "c")], {"c": {"N": "1"}}),
    ([("l", 0)], {"l[0]": {"S": "x"}}),
    ([("l", 1, "b")], {"l[1]": {"M": {"b": {"S": "y"}}}}),
    ([("l", 1, "b"), ("l", 1, "z")], {"l[1]": {"M": {"b": {"S": "y"}, "z": {"S": "z"}}}}),
    ([("l", 2, 1)], {"l[2]": {"L": [{"N": "6"}]}}),
    ([("m", "ll", 0)], {"ll[0]": {"S": "q"}}),
    ([("m", "nested"), ("a",), ("l", 0)], {"nested": {"S": "v"}, "a": {"S": "abc"}, "l[0]": {"S": "x"}}),
    ([("m", "nope"), ("l", 5)], {}),
    ([("m",)], {"m": _DOC["m"]}),
])
def test_select_list_names_each_value_by_the_end_of_its_path(paths, expected):
    from shoal.expressions.projection import SelectList
    assert SelectList(paths).apply(_DOC) == expected


def test_a_throttled_statement_in_a_batch_has_its_own_error_code():
    from shoal.api.partiql import batch_error
    from shoal.capacity.on_demand import OnDemandThrottlingException
    from shoal.errors import ProvisionedThroughputExceededException

    provisioned = batch_error(ProvisionedThroughputExceededException("over"), "events")
    assert provisioned == {"Error": {"Code": "ProvisionedThroughputExceeded", "Message": "over"}, "TableName": "events"}
    assert batch_error(OnDemandThrottlingException("Rate of requests exceeds the allowed throughput."))["Error"][
        "Code"] == "ThrottlingError"


@pytest.mark.parametrize("text, expected", [
    ("INSERT INTO t.i VALUE {'pk': 'a'}",
     "FROM clause may only contain a single table name in data manipulation statements"),
    ("UPDATE \"t\".\"i\" SET a = 1 WHERE pk = 'a'", "This operation is not supported on an index"),
    ("FROM t.i WHERE pk = 'a' SET a = 1", "This operation is not supported on an index"),
    ("DELETE FROM t.i WHERE pk = 'a'", "This operation is not supported on an index"),
    ("DELETE FROM t.i WHERE pk = 'a' RETURNING MODIFIED OLD *", "This operation is not supported on an index"),
    ("UPDATE t.i.x SET a = 1 WHERE pk = 'a'", "A path may contain at most 2 components in the FROM clause"),
    ("DELETE FROM t.\"\" WHERE pk = 'a'", "Path component cannot be an empty string"),
    # Not well formed comes first: the index is refused only once the statement parses
    # (an UPDATE without WHERE parses: its missing key equality is refused later).
    ("UPDATE t.i SET a = 1", "This operation is not supported on an index"),
    ("UPDATE t.i SET a = ", MALFORMED + "Unexpected term"),
    ("INSERT INTO t.i VALUE", MALFORMED + "INSERT INTO t.i VALUE"),
    ("DELETE FROM t.i WHERE pk = 'a' extra", MALFORMED + "Unexpected token after expression"),
])
def test_a_write_naming_an_index_is_refused_once_it_parses(text, expected):
    assert message_of(parse_statement, text) == expected


def test_a_next_token_resumes_only_the_statement_that_returned_it():
    from shoal.api.partiql import decode_next_token, encode_next_token, request_binding

    key = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    first = {"Statement": "SELECT * FROM t WHERE pk = ?", "Parameters": [{"S": "a"}], "Limit": 1}
    token = encode_next_token(key, request_binding(first))
    assert decode_next_token(token, request_binding({**first, "Limit": 9, "ConsistentRead": True})) == key
    for other in ({**first, "Statement": "SELECT * FROM t.i WHERE pk = ?"}, {**first, "Parameters": [{"S": "b"}]},
                  {"Statement": first["Statement"]}):
        assert message_of(decode_next_token, token, request_binding(other)) == "NextToken does not match request"
