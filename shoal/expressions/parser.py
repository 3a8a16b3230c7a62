"""Recursive-descent parser for DynamoDB's expression languages.

One parser class serves the four grammars (condition/filter/key condition share one):

    condition  := or_expr
    or_expr    := and_expr (OR and_expr)*
    and_expr   := unary (AND unary)*
    unary      := NOT* primary
    primary    := '(' or_expr ')' | function '(' operand, ... ')'
                | operand comparator operand
                | operand BETWEEN operand AND operand
                | operand IN '(' operand (',' operand)* ')'
    operand    := path | :value | function '(' operand, ... ')' | '(' operand ')'
    path       := (name | #name) ('.' (name | #name) | '[' index ']')*

    update     := (SET set_action, ... | REMOVE path, ... | ADD path :value, ...
                   | DELETE path :value, ...)+
    set_action := path '=' set_value
    set_value  := set_operand (('+' | '-') set_operand)?
    projection := path (',' path)*

Only syntax is checked here; which functions exist, reserved words and the like are
semantic checks (``semantics.py``), run after a successful parse because DynamoDB
reports a syntax error anywhere in the text before any of those.

Recursion happens only through parentheses and nested function calls, and their
depth is capped (``MAX_NESTING``) so that no input can reach Python's recursion
limit; AND/OR chains and NOT runs are parsed with loops.
"""

from __future__ import annotations

from shoal.errors import ValidationException

from . import ast
from .tokens import syntax_error, tokenize

COMPARATORS = frozenset({"=", "<>", "<", "<=", ">", ">="})

# Parentheses/function calls nested deeper than this are rejected early (see
# nesting_error).  Each level costs three Python frames here and more in binding,
# so the cap keeps everything well inside the default recursion limit.  A valid
# DynamoDB expression can in theory nest up to ~300 levels (one operator per
# level, 300 operators at most); between 200 and 300 Shoal's message may differ.
MAX_NESTING = 200

MAX_EXPRESSION_BYTES = 4096


class Parser:
    """Parses one expression text; ``kind`` names it in error messages."""

    __slots__ = ("text", "kind", "tokens", "pos", "depth")

    def __init__(self, text: str, kind: str):
        self.text = text
        self.kind = kind
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    # ------------------------------------------------------------ helpers

    def _peek(self):
        return self.tokens[self.pos]

    def _error(self, index: int | None = None) -> ValidationException:
        return syntax_error(self.kind, self.text, self.tokens, self.pos if index is None else index)

    def _is_op(self, text: str) -> bool:
        token = self.tokens[self.pos]
        return token[0] == "OP" and token[1] == text

    def _is_keyword(self, word: str) -> bool:
        token = self.tokens[self.pos]
        return token[0] == "KEYWORD" and token[1].upper() == word

    def _expect_op(self, text: str) -> None:
        if not self._is_op(text):
            raise self._error()
        self.pos += 1

    def _expect_eof(self) -> None:
        if self.tokens[self.pos][0] != "EOF":
            raise self._error()

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise nesting_error(self.kind, self.text, self.tokens)

    # ------------------------------------------------------------ conditions

    def condition(self):
        node = self._expression(bare_ok=False)
        self._expect_eof()
        return node

    def _expression(self, bare_ok: bool):
        """OR of ANDs of (NOT*) primaries, parsed with loops; directly inside
        parentheses (``bare_ok``) a lone operand is returned as is."""
        first = self._primary(bare_ok)
        if bare_ok and not is_condition(first):
            return first
        alternatives = []
        conjuncts = [first]
        while True:
            if self._is_keyword("AND"):
                self.pos += 1
                conjuncts.append(self._primary(False))
            elif self._is_keyword("OR"):
                self.pos += 1
                alternatives.append(_fold(ast.And, conjuncts))
                conjuncts = [self._primary(False)]
            else:
                break
        alternatives.append(_fold(ast.And, conjuncts))
        return _fold(ast.Or, alternatives)

    def _primary(self, bare_ok: bool):
        """NOT* followed by a condition; or, directly inside parentheses, a bare
        operand.  (One function per nesting level keeps recursion shallow.)"""
        nots = 0
        while self._is_keyword("NOT"):
            self.pos += 1
            nots += 1
        node = self._simple(bare_ok and not nots)
        for _ in range(nots):
            node = ast.Not(node)
        return node

    def _simple(self, bare_ok: bool):
        if self._is_op("("):
            self._enter()
            self.pos += 1
            inner = self._expression(bare_ok=True)
            self._expect_op(")")
            self.depth -= 1
            node = ast.Paren(inner)
            if is_condition(inner) and not (
                type(ast.unparen(inner)) is ast.Function and self._at_comparison()
            ):
                return node
        else:
            node = self._operand()
            if type(node) is ast.Function and not self._at_comparison():
                return node
        if self._at_comparison():
            return self._comparison(node)
        if bare_ok and self._is_op(")"):
            return node
        raise self._error()

    def _at_comparison(self) -> bool:
        kind, text = self.tokens[self.pos][:2]
        if kind == "OP":
            return text in COMPARATORS
        return kind == "KEYWORD" and text.upper() in ("BETWEEN", "IN")

    def _comparison(self, left):
        kind, text = self.tokens[self.pos][:2]
        self.pos += 1
        if kind == "OP":
            return ast.Compare(text, left, self._operand())
        if text.upper() == "BETWEEN":
            low = self._operand()
            if not self._is_keyword("AND"):
                raise self._error()
            self.pos += 1
            return ast.Between(left, low, self._operand())
        self._expect_op("(")
        options = [self._operand()]
        while self._is_op(","):
            self.pos += 1
            options.append(self._operand())
        self._expect_op(")")
        return ast.In(left, tuple(options))

    # ------------------------------------------------------------ operands

    def _operand(self):
        kind = self.tokens[self.pos][0]
        if kind == "VALUEREF":
            self.pos += 1
            return ast.Value(self.tokens[self.pos - 1][1])
        if kind == "NAME" and self.tokens[self.pos + 1][1] == "(":
            return self._function(self._operand)
        if kind in ("NAME", "NAMEREF"):
            return self.path()
        if self._is_op("("):
            self._enter()
            self.pos += 1
            inner = self._operand()
            self._expect_op(")")
            self.depth -= 1
            return ast.Paren(inner)
        raise self._error()

    def _function(self, argument):
        name = self.tokens[self.pos][1]
        self.pos += 2
        self._enter()
        args = [argument()]
        while self._is_op(","):
            self.pos += 1
            args.append(argument())
        self._expect_op(")")
        self.depth -= 1
        return ast.Function(name, tuple(args))

    def path(self) -> ast.Path:
        token = self.tokens[self.pos]
        if token[0] not in ("NAME", "NAMEREF"):
            raise self._error()
        self.pos += 1
        elements = [token[1]]
        while True:
            token = self.tokens[self.pos]
            if token[0] != "OP":
                break
            if token[1] == ".":
                self.pos += 1
                token = self.tokens[self.pos]
                if token[0] not in ("NAME", "NAMEREF"):
                    raise self._error()
                elements.append(token[1])
                self.pos += 1
            elif token[1] == "[":
                self.pos += 1
                token = self.tokens[self.pos]
                if token[0] != "NUMBER":
                    raise self._error()
                elements.append(int(token[1]))
                self.pos += 1
                self._expect_op("]")
            else:
                break
        return ast.Path(tuple(elements))

    # ------------------------------------------------------------ update

    def update(self) -> ast.UpdateExpr:
        actions = []
        sections = []
        while True:
            token = self.tokens[self.pos]
            word = token[1].upper() if token[0] == "KEYWORD" else None
            parse = _SECTION_PARSERS.get(word)
            if parse is None:
                raise self._error()
            self.pos += 1
            sections.append(word)
            actions.append(parse(self))
            while self._is_op(","):
                self.pos += 1
                actions.append(parse(self))
            if self.tokens[self.pos][0] == "EOF":
                return ast.UpdateExpr(tuple(actions), tuple(sections))

    def _set_action(self) -> ast.SetAction:
        path = self.path()
        self._expect_op("=")
        return ast.SetAction(path, self._set_value())

    def _set_value(self):
        left = self._set_operand()
        token = self.tokens[self.pos]
        if token[0] == "OP" and token[1] in ("+", "-"):
            self.pos += 1
            return ast.Arithmetic(token[1], left, self._set_operand())
        return left

    def _set_operand(self, arithmetic: bool = True):
        """A SET operand; inside a function's arguments (``arithmetic``
        false) no ``+``/``-`` may appear, even in parentheses: DynamoDB's
        grammar stops there with a syntax error at the operator."""
        kind = self.tokens[self.pos][0]
        if kind == "VALUEREF":
            self.pos += 1
            return ast.Value(self.tokens[self.pos - 1][1])
        if kind == "NAME" and self.tokens[self.pos + 1][1] == "(":
            return self._function(self._set_argument)
        if kind in ("NAME", "NAMEREF"):
            return self.path()
        if self._is_op("("):
            self._enter()
            self.pos += 1
            inner = self._set_value() if arithmetic else self._set_argument()
            self._expect_op(")")
            self.depth -= 1
            return ast.Paren(inner)
        raise self._error()

    def _set_argument(self):
        return self._set_operand(arithmetic=False)

    def _remove_action(self) -> ast.RemoveAction:
        return ast.RemoveAction(self.path())

    def _add_action(self) -> ast.AddAction:
        path = self.path()
        return ast.AddAction(path, self._value_ref())

    def _delete_action(self) -> ast.DeleteAction:
        path = self.path()
        return ast.DeleteAction(path, self._value_ref())

    def _value_ref(self) -> ast.Value:
        token = self.tokens[self.pos]
        if token[0] != "VALUEREF":
            raise self._error()
        self.pos += 1
        return ast.Value(token[1])

    # ------------------------------------------------------------ projection

    def projection(self) -> ast.ProjectionExpr:
        paths = [self.path()]
        while self._is_op(","):
            self.pos += 1
            paths.append(self.path())
        self._expect_eof()
        return ast.ProjectionExpr(tuple(paths))


_SECTION_PARSERS = {
    "SET": Parser._set_action,
    "REMOVE": Parser._remove_action,
    "ADD": Parser._add_action,
    "DELETE": Parser._delete_action,
}


def _fold(node_type, operands: list):
    return operands[0] if len(operands) == 1 else node_type(tuple(operands))


def is_condition(node) -> bool:
    """True for nodes that are conditions (functions count as both)."""
    node = ast.unparen(node)
    return type(node) in _CONDITION_TYPES


_CONDITION_TYPES = frozenset({ast.Compare, ast.Between, ast.In, ast.And, ast.Or, ast.Not, ast.Function})


def check_text(text, kind: str) -> None:
    """Reject empty and over-long expression text with DynamoDB's messages."""
    if not isinstance(text, str):
        raise ValidationException(f"Invalid {kind}: The expression can not be empty;")
    if not text:
        raise ValidationException(f"Invalid {kind}: The expression can not be empty;")
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > MAX_EXPRESSION_BYTES:
        # DynamoDB gives the size for every kind of expression but updates.
        suffix = "" if kind == "UpdateExpression" else f" expression size: {size}"
        raise ValidationException(f"Invalid {kind}: Expression size has exceeded the maximum allowed size;{suffix}")


def nesting_error(kind: str, text: str, tokens: list) -> ValidationException:
    """The error for nesting deeper than any valid expression can be.

    DynamoDB would parse such text fully and then reject it; Shoal stops early
    (to stay clear of recursion limits) and picks the error DynamoDB would most
    likely give: a syntax error at the end when parentheses are unbalanced,
    otherwise redundant parentheses if two opening ones are adjacent, otherwise
    the operator limit.
    """
    balance = 0
    adjacent = False
    previous = None
    for token in tokens:
        if token[0] == "OP":
            if token[1] == "(":
                balance += 1
                adjacent = adjacent or previous == "("
            elif token[1] == ")":
                balance -= 1
        previous = token[1]
    if balance != 0:
        return syntax_error(kind, text, tokens, len(tokens) - 1)
    if adjacent:
        return ValidationException(f"Invalid {kind}: The expression has redundant parentheses;")
    return ValidationException(
        f"Invalid {kind}: The expression contains too many operators; operator count: 301"
    )
