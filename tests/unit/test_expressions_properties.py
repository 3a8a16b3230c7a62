"""Property tests of the expression parser: printing and re-parsing is the
identity, and no input raises anything but ValidationException."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from shoal.errors import ValidationException
from shoal.expressions import ExpressionContext, ast, parse_condition, parse_projection, parse_update
from shoal.expressions.parser import Parser
from shoal.expressions.reserved import RESERVED_WORDS
from shoal.expressions.tokens import KEYWORDS

names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: n.upper() not in RESERVED_WORDS and n.upper() not in KEYWORDS
)
placeholders = st.from_regex(r"#[a-z0-9_]{1,4}", fullmatch=True)
values = st.from_regex(r":[a-z0-9_]{1,4}", fullmatch=True).map(ast.Value)
elements = st.one_of(names, placeholders)
paths = st.builds(
    lambda head, rest: ast.Path((head,) + tuple(rest)),
    elements,
    st.lists(st.one_of(elements, st.integers(0, 50)), max_size=4),
)
operands = st.one_of(paths, values, st.builds(lambda p: ast.Function("size", (p,)), paths))


def _comparisons():
    compare = st.builds(ast.Compare, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), operands, operands)
    between = st.builds(ast.Between, operands, operands, operands)
    in_ = st.builds(lambda o, opts: ast.In(o, tuple(opts)), operands, st.lists(operands, min_size=1, max_size=4))
    function = st.builds(
        lambda name, args: ast.Function(name, args),
        st.sampled_from(["attribute_exists", "attribute_not_exists"]), st.tuples(paths),
    ) | st.builds(
        lambda name, a, b: ast.Function(name, (a, b)),
        st.sampled_from(["begins_with", "contains", "attribute_type"]), paths, operands,
    )
    return st.one_of(compare, between, in_, function)


def _extend(children):
    return st.one_of(
        st.builds(lambda ops: ast.And(tuple(ops)), st.lists(children.map(_wrap_binary), min_size=2, max_size=3)),
        st.builds(lambda ops: ast.Or(tuple(ops)), st.lists(children.map(_wrap_or), min_size=2, max_size=3)),
        st.builds(ast.Not, children.map(_wrap_binary)),
        st.builds(ast.Paren, children.filter(lambda n: type(n) is not ast.Paren)),
    )


def _wrap_or(node):
    """A chain under a chain of the same kind needs parentheses to print back
    to the same (flat, n-ary) tree."""
    return ast.Paren(node) if type(node) is ast.Or else node


def _wrap_binary(node):
    """Under AND or NOT, any AND/OR chain needs parentheses."""
    return ast.Paren(node) if type(node) in (ast.And, ast.Or) else node


conditions = st.recursive(_comparisons(), _extend, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(conditions)
def test_printed_condition_parses_back(tree):
    text = ast.to_text(tree)
    assert Parser(text, "ConditionExpression").condition() == tree


set_values = st.one_of(
    operands.filter(lambda o: type(o) is not ast.Function),
    st.builds(ast.Arithmetic, st.sampled_from(["+", "-"]), paths, values),
    st.builds(lambda p, v: ast.Function("if_not_exists", (p, v)), paths, values),
    st.builds(lambda a, b: ast.Function("list_append", (a, b)), paths, values),
)
actions = st.one_of(
    st.builds(ast.SetAction, paths, set_values),
    st.builds(ast.RemoveAction, paths),
    st.builds(ast.AddAction, paths, values),
    st.builds(ast.DeleteAction, paths, values),
)


def _grouped(action_list):
    order = [ast.SetAction, ast.RemoveAction, ast.AddAction, ast.DeleteAction]
    present = [t for t in order if any(type(a) is t for a in action_list)]
    grouped = tuple(a for t in present for a in action_list if type(a) is t)
    words = {ast.SetAction: "SET", ast.RemoveAction: "REMOVE", ast.AddAction: "ADD", ast.DeleteAction: "DELETE"}
    return ast.UpdateExpr(grouped, tuple(words[t] for t in present))


@settings(max_examples=200, deadline=None)
@given(st.lists(actions, min_size=1, max_size=5).map(_grouped))
def test_printed_update_parses_back(tree):
    assert Parser(ast.to_text(tree), "UpdateExpression").update() == tree


@settings(max_examples=200, deadline=None)
@given(st.lists(paths, min_size=1, max_size=5))
def test_printed_projection_parses_back(path_list):
    tree = ast.ProjectionExpr(tuple(path_list))
    assert Parser(ast.to_text(tree), "ProjectionExpression").projection() == tree


ALPHABET = list("ab#:_ ()[].,=<>+-0123456789") + [
    " AND ", " OR ", "NOT ", " BETWEEN ", " IN ", "SET ", "REMOVE ", "ADD ", "DELETE ", "size(",
    "attribute_exists(", "begins_with(", "if_not_exists(", "list_append(", ":v", "#n", "status", "é",
]
garbage = st.lists(st.sampled_from(ALPHABET), max_size=60).map("".join) | st.text(max_size=60)


def _context():
    return ExpressionContext({"#n": "n"}, {":v": {"S": "x"}})


@settings(max_examples=1000, deadline=None)
@given(garbage)
def test_garbage_raises_only_validation_errors(text):
    for parse in (
        lambda: parse_condition(text, _context()).evaluate({"a": {"S": "x"}, "n": {"L": []}}),
        lambda: parse_update(text, _context()).apply({"a": {"S": "x"}, "n": {"L": []}}),
        lambda: parse_projection(text, _context()).apply({"a": {"S": "x"}}),
    ):
        try:
            parse()
        except ValidationException:
            pass


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4000), st.sampled_from(["(", "NOT (", "a = :v AND (", "size("]))
def test_deep_nesting_never_recursion_error(depth, opener):
    text = (opener * depth)[:4000] + "a = :v"
    try:
        parse_condition(text, _context())
    except ValidationException:
        pass
