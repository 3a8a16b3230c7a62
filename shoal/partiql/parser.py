"""A recursive-descent parser for DynamoDB's PartiQL statements.

Grammar (keywords in any case)::

    statement := select | insert | update | delete | [NOT] EXISTS '(' select ')'
    select    := SELECT ('*' | path {',' path}) FROM source [WHERE cond]
                 [ORDER BY path [ASC|DESC] {',' path [ASC|DESC]}]
    source    := name ['.' name]                 -- table, or table.index
    insert    := INSERT INTO target VALUE map
    update    := UPDATE target clauses [WHERE cond] [returning]
               | FROM target [WHERE cond] clauses [returning]
    clauses   := (SET assign {',' assign} | REMOVE path {',' path})+
    delete    := DELETE FROM target [WHERE cond] [returning]
    target    := name ['.' name]                 -- an index refused once parsed
    returning := RETURNING (ALL | MODIFIED) (OLD | NEW) '*'
    cond      := and {OR and};  and := not {AND not};  not := NOT not | predicate
    predicate := '(' cond ')' | operand (cmp operand | [NOT] BETWEEN operand AND operand
                 | [NOT] IN list | IS [NOT] (MISSING | type)) | function call
    type      := NULL | BOOL | BOOLEAN | STRING | LIST | STRUCT | TUPLE | BLOB
    operand   := path | value | function call
    value     := 'string' | number | TRUE | FALSE | NULL | '?' | '[' values ']'
                 | '{' 'name' ':' value {, ...} '}' | '<<' values '>>'

Every syntax error is DynamoDB's "Statement wasn't well formed", followed by
the reason DynamoDB gives where it is known (a token left over, a term, keyword
or operator where a term should start, ...) and by the statement text
otherwise.  A table alias is refused on its own; a write naming an index
(``table.index``) once the statement has parsed, in DynamoDB's words.  One ';' may end a statement
(PartiQL's grammar); a map literal naming a key twice is refused.  A number literal out of
DynamoDB's range is refused with where it sits in its value (``root``,
``root.name``, ``root[1]``); a negative zero written as a decimal (``-0.0``)
is refused, as DynamoDB's PartiQL refuses it.  A write without WHERE parses
(its missing key equality is refused once its table is known).  Where DynamoDB
Local names a reason and no recorded DynamoDB answer says otherwise, its words
are used without Local's position suffix (``at 1:30:1``): a VALUE that is no
map, RETURNING in an INSERT, an alias or DISTINCT in a projection, MISSING as
a value, arithmetic or LIKE in a condition, IN with no list.  An IN of more
than 100 values is refused once the whole statement has parsed, in DynamoDB's
words (its PartiQL operators page: at most 100 values; the 50 a key read may
decompose into are ``translate``'s).  Parsed statements are cached by text.
"""

from __future__ import annotations

import re
from functools import lru_cache

from shoal.errors import ValidationException
from shoal.expressions.semantics import MAX_IN_OPERANDS
from shoal.model.numbers import normalize_number

from . import ast
from .lexer import MALFORMED, malformed, tokenize

_COMPARE = ("=", "<>", "!=", "<", "<=", ">", ">=")
_RETURNING = {
    ("ALL", "OLD"): "ALL_OLD",
    ("MODIFIED", "OLD"): "UPDATED_OLD",
    ("ALL", "NEW"): "ALL_NEW",
    ("MODIFIED", "NEW"): "UPDATED_NEW",
}
_RETURNING_TEXT = {value: " ".join(key) for key, value in _RETURNING.items()}

# Words DynamoDB's PartiQL reserves: never a bare name or a path's dot
# component (quote them: "value").  The operator words among them, where a
# term should start, are an unexpected operator rather than keyword.
RESERVED = frozenset({
    "AND", "BETWEEN", "BY", "DELETE", "EXISTS", "FALSE", "FROM", "IN", "INNER", "INSERT", "INTO",
    "IS", "LIKE", "MISSING", "NOT", "NULL", "OR", "ORDER", "SELECT", "SET", "SIZE", "TRUE",
    "UPDATE", "VALUE", "WHERE",
})
_OPERATOR_WORDS = frozenset({"AND", "BETWEEN", "IN", "IS", "LIKE", "NOT", "OR"})
_ATOM_WORDS = frozenset({"TRUE", "FALSE", "NULL", "MISSING"})
_TERM_STARTS = frozenset({"id", "qid", "str", "num", "?", "-", "[", "<<", "{", "("})

LEFTOVER = "Unexpected token after expression"
UNEXPECTED_TERM = "Unexpected term"
UNEXPECTED_KEYWORD = "Unexpected keyword"
UNEXPECTED_OPERATOR = "Unexpected operator"
MISSING_RIGHT = "Missing right-hand side expression of infix operator"
SIMPLE_PATH = "Expected identifier for simple path"
DOT_COMPONENT = "Invalid path dot component"
ALIASING = "Aliasing is not supported"
TYPE_NAME = "Expected type name"
# DynamoDB Local's reasons (bench/conformance_partiql.py), without their position suffix
ITEM_FORMAT = ("Unsupported format in item expression. Please use struct format {...} to express item values "
               "for insert statement.")
INSERT_RETURNING = "RETURNING is not supported in INSERT"
RETURNING_STAR = "Expected '*' after ( MODIFIED | ALL ) ( NEW | OLD ) in RETURNING clause"
MISSING_VALUE = "MISSING must be compared using IS operator"
IN_LIST = ("IN operator must have a left hand argument of type Variable Reference and right hand argument "
           "of type Seq with at least one member")
CONDITION_OPERATOR = "Unsupported operator in Condition Expression. Operator: "
# An IN of more than 100 values, in any statement, as recorded from DynamoDB (eu-west-2,
# 2026-09-17, floci-io/floci's DynamoDbPartiQLEdgeCaseIntegrationTest): the condition
# expressions' sentence without their "Invalid ...Expression: " prefix.
IN_OPERANDS = "The IN operator is provided with too many operands; number of operands: "
PATH_COMPONENT = "Unexpected path component"
FROM_SOURCE = "Unexpected from source"

# ``path IS <type>``: the PartiQL type names with a DynamoDB attribute type
# (tested with attribute_type), and those without one, refused as before.
# (IS NULL is IsMissing's, the same test.)
IS_TYPES = {
    "BOOL": "BOOL", "BOOLEAN": "BOOL", "STRING": "S", "LIST": "L",
    "STRUCT": "M", "TUPLE": "M", "BLOB": "B",
}
_UNMAPPED_TYPES = frozenset({
    "SMALLINT", "INT", "INT2", "INT4", "INT8", "INTEGER", "INTEGER2", "INTEGER4", "INTEGER8", "BIGINT",
    "REAL", "FLOAT", "DOUBLE", "DECIMAL", "NUMERIC", "TIMESTAMP", "CHAR", "CHARACTER", "VARCHAR",
    "SYMBOL", "CLOB", "SEXP", "BAG", "ANY", "DATE", "TIME",
})
_RANGE_ERRORS = ("Number overflow", "Number underflow", "Attempting to store more than 38")

# Parentheses, NOT, calls, list/map/set values and arithmetic nested deeper
# than this are refused as not well formed: each level costs a few Python
# frames here and in the translation, and a statement (8,192 characters)
# could otherwise nest past Python's recursion limit.  (As the expressions'
# MAX_NESTING; DynamoDB's own limit is not known.)
MAX_NESTING = 200


def syntax_error(reason: str) -> ValidationException:
    """"Statement wasn't well formed" with DynamoDB's reason."""
    return ValidationException(MALFORMED + reason)


@lru_cache(maxsize=4096)
def parse_statement(text: str):
    """The AST of one statement (cached by text; raises ValidationException)."""
    return _Parser(text).statement()


class _Parser:
    __slots__ = ("text", "tokens", "pos", "params", "depth", "dml_index", "in_operands")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        if len(self.tokens) > 1 and self.tokens[-2][0] == ";":  # PartiQL's grammar: statement ';'? EOF
            del self.tokens[-2]
        self.pos = 0
        self.params = 0
        self.depth = 0
        self.dml_index = None  # the index a write's target names (refused once the statement parses)
        self.in_operands = None  # the first IN's number of values over MAX_IN_OPERANDS (refused once parsed)

    # ------------------------------------------------------------ token helpers

    def error(self):
        return malformed(self.text)

    def deeper(self, levels: int = 1) -> None:
        """Enter ``levels`` more levels of nesting (leave with ``self.depth -= levels``)."""
        self.depth += levels
        if self.depth > MAX_NESTING:
            raise self.error()

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        if token[0] != "eof":
            self.pos += 1
        return token

    def at_keyword(self, *words: str, ahead: int = 0) -> bool:
        kind, text = self.peek(ahead)
        return kind == "id" and text.upper() in words

    def keyword(self, *words: str) -> str:
        kind, text = self.next()
        if kind != "id" or text.upper() not in words:
            raise self.error()
        return text.upper()

    def accept_keyword(self, word: str) -> bool:
        if self.at_keyword(word):
            self.pos += 1
            return True
        return False

    def expect(self, kind: str) -> str:
        token = self.next()
        if token[0] != kind:
            raise self.error()
        return token[1]

    def accept(self, kind: str) -> bool:
        if self.peek()[0] == kind:
            self.pos += 1
            return True
        return False

    def name(self) -> str:
        kind, text = self.next()
        if kind not in ("id", "qid"):
            raise self.error()
        return text

    def done(self, node):
        """The statement's node, once nothing is left after it.  An IN of too
        many values is refused only then: a statement not well formed further
        on is refused as such first (floci-io/floci's order; not recorded)."""
        if self.peek()[0] != "eof":
            raise syntax_error(LEFTOVER)
        if self.in_operands is not None:
            raise ValidationException(IN_OPERANDS + str(self.in_operands))
        return node

    def is_reserved(self, ahead: int = 0) -> bool:
        kind, text = self.peek(ahead)
        return kind == "id" and text.upper() in RESERVED

    def term_error(self) -> ValidationException:
        """Why the current token cannot start a term (an operand)."""
        kind, text = self.peek()
        if kind == "id" and text.upper() in _OPERATOR_WORDS or kind in _COMPARE:
            return syntax_error(UNEXPECTED_OPERATOR)
        if kind == "id" and text.upper() in RESERVED:
            return syntax_error(UNEXPECTED_KEYWORD)
        if kind not in _TERM_STARTS:
            return syntax_error(UNEXPECTED_TERM)
        return self.error()

    def check_term(self) -> None:
        """Refuse, with DynamoDB's reason, a token no operand starts with: an
        end of statement, punctuation, an operator, a reserved word (unless it
        names a function or is TRUE, FALSE, NULL or MISSING)."""
        kind, text = self.peek()
        if kind not in _TERM_STARTS or kind in _COMPARE:
            raise self.term_error()
        if kind == "id" and text.upper() in RESERVED and text.upper() not in _ATOM_WORDS:
            if self.peek(1)[0] != "(":
                raise self.term_error()

    def right_operand(self) -> None:
        """After an infix operator: the statement may not end there."""
        if self.peek()[0] == "eof":
            raise syntax_error(MISSING_RIGHT)

    def dml_target(self) -> str:
        """The table of an INSERT, UPDATE or DELETE: a plain name.  A
        ``table.index`` parses (its index kept in ``dml_index``) so that a
        statement otherwise well formed is refused for naming an index, as
        DynamoDB refuses it, rather than as not well formed."""
        kind, text = self.peek()
        if kind == "qid" or (kind == "id" and not self.is_reserved()):
            self.pos += 1
            if self.accept("."):
                self.dml_index = self.source_component(self.dot_component())
                if self.peek()[0] == ".":
                    raise ValidationException(FROM_COMPONENTS)
            return text
        raise syntax_error(SIMPLE_PATH)

    def refuse_index(self, message: str) -> None:
        """A write naming an index, once its statement has parsed: refused
        before any table is looked up (DynamoDB answers so for a table that
        does not exist too)."""
        if self.dml_index is not None:
            raise ValidationException(message)

    def refuse_alias(self, *following: str) -> None:
        """A name after the table (other than the clause words that may follow
        it) is an alias, which DynamoDB does not support."""
        kind, text = self.peek()
        if kind == "qid" or (kind == "id" and not self.is_reserved() and text.upper() not in following):
            raise ValidationException(ALIASING)

    # ------------------------------------------------------------ statements

    def statement(self):
        if self.at_keyword("SELECT"):
            return self.done(self.select())
        if self.at_keyword("INSERT"):
            node = self.done(self.insert())
            self.refuse_index(DML_FROM)
            return node
        if self.at_keyword("UPDATE"):
            node = self.done(self.update())
            self.refuse_index(ON_INDEX)
            return node
        if self.at_keyword("DELETE"):
            node = self.done(self.delete())
            self.refuse_index(ON_INDEX)
            return node
        if self.at_keyword("FROM"):
            node = self.done(self.from_update())
            self.refuse_index(ON_INDEX)
            return node
        if self.at_keyword("EXISTS") or (self.at_keyword("NOT") and self.at_keyword("EXISTS", ahead=1)):
            negated = self.accept_keyword("NOT")
            self.keyword("EXISTS")
            self.expect("(")
            select = self.select()
            self.expect(")")
            return self.done(ast.Exists(select, negated, self.params))
        raise self.error()

    def select(self) -> ast.Select:
        self.keyword("SELECT")
        projection = None
        if self.at_keyword("DISTINCT"):
            raise ValidationException("Unsupported token in expression: DISTINCT")
        if not self.accept("*"):
            paths = [self.projected_path()]
            while self.accept(","):
                paths.append(self.projected_path())
            projection = tuple(paths)
        self.keyword("FROM")
        if self.peek()[0] == "?":
            raise ValidationException(FROM_SOURCE)
        if self.peek()[0] != "qid":
            self.check_term()
        table = self.source_component(self.name())
        index = self.source_component(self.dot_component()) if self.accept(".") else None
        if self.peek()[0] == ".":
            raise ValidationException(FROM_COMPONENTS)
        self.refuse_alias("ORDER")
        where = self.condition() if self.accept_keyword("WHERE") else None
        order_by = None
        if self.accept_keyword("ORDER"):
            self.keyword("BY")
            order_by = [self.order_term()]
            while self.accept(","):
                order_by.append(self.order_term())
            order_by = tuple(order_by)
        return ast.Select(table, index, projection, where, order_by, self.params)

    def projected_path(self) -> ast.Path:
        """A path of a SELECT's list: a call (COUNT(*)) or a ``?`` is no path,
        an alias (``AS``) is refused."""
        kind = self.peek()[0]
        if kind == "?" or (kind == "id" and self.peek(1)[0] == "("):
            raise ValidationException(PATH_COMPONENT)
        path = self.path()
        if self.at_keyword("AS"):
            raise ValidationException(ALIASING)
        return path

    def order_term(self) -> tuple:
        path = self.path()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.keyword("ASC", "DESC") == "DESC"
        return path, descending

    def insert(self) -> ast.Insert:
        self.keyword("INSERT")
        self.keyword("INTO")
        table = self.dml_target()
        if not self.at_keyword("VALUE") and self.peek()[0] != "eof":
            raise syntax_error(LEFTOVER)
        self.keyword("VALUE")
        kind = self.peek()[0]
        if kind != "{":
            if kind in ("?", "[", "<<", "str", "num", "-") or self.at_keyword("TRUE", "FALSE", "NULL"):
                raise ValidationException(ITEM_FORMAT)
            raise self.error()
        node = ast.Insert(table, self.value(), self.params)
        if self.at_keyword("RETURNING"):
            raise ValidationException(INSERT_RETURNING)
        return node

    def update(self) -> ast.Update:
        self.keyword("UPDATE")
        table = self.dml_target()
        self.refuse_alias("REMOVE")
        clauses = self.update_clauses()
        where = self.condition() if self.accept_keyword("WHERE") else None  # none: no key equality
        returning = self.returning()
        return ast.Update(table, clauses, where, returning, self.params)

    def from_update(self) -> ast.Update:
        """FROM-first UPDATE: ``FROM t WHERE ... SET ...``, the same update as
        ``UPDATE t SET ... WHERE ...`` (a WHERE after the clauses is a token
        left over; no WHERE at all is left to the key check)."""
        self.keyword("FROM")
        table = self.dml_target()
        self.refuse_alias("REMOVE")
        where = self.condition() if self.accept_keyword("WHERE") else None
        clauses = self.update_clauses()
        returning = self.returning()
        return ast.Update(table, clauses, where, returning, self.params)

    def update_clauses(self) -> tuple:
        """One or more SET and REMOVE clauses, in statement order."""
        clauses = []
        while self.at_keyword("SET", "REMOVE"):
            if self.keyword("SET", "REMOVE") == "SET":
                clauses.append(self.assignment())
                while self.accept(","):
                    clauses.append(self.assignment())
            else:
                clauses.append(ast.RemoveClause(self.path()))
                while self.accept(","):
                    clauses.append(ast.RemoveClause(self.path()))
        if not clauses:
            raise self.error()
        return tuple(clauses)

    def assignment(self) -> ast.SetClause:
        path = self.path()
        self.expect("=")
        return ast.SetClause(path, self.update_value())

    def delete(self) -> ast.Delete:
        self.keyword("DELETE")
        self.keyword("FROM")
        table = self.dml_target()
        self.refuse_alias()
        where = self.condition() if self.accept_keyword("WHERE") else None  # none: no key equality
        returning = self.returning()
        if self.peek()[0] == "eof":  # well formed: the index before the RETURNING rule (DynamoDB Local's order)
            self.refuse_index(ON_INDEX)
        if returning not in (None, "ALL_OLD"):
            raise ValidationException(
                f"Invalid returning clause: RETURNING {_RETURNING_TEXT[returning]} *. "
                "Only RETURNING ALL OLD * is allowed in DELETE statements."
            )
        return ast.Delete(table, where, returning, self.params)

    def returning(self) -> str | None:
        if not self.accept_keyword("RETURNING"):
            return None
        which = self.keyword("ALL", "MODIFIED")
        when = self.keyword("OLD", "NEW")
        if not self.accept("*"):
            raise ValidationException(RETURNING_STAR)
        return _RETURNING[(which, when)]

    # ------------------------------------------------------------ conditions

    def condition(self):
        operands = [self.conjunction()]
        while self.accept_keyword("OR"):
            self.right_operand()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else ast.Or(tuple(operands))

    def conjunction(self):
        operands = [self.negation()]
        while self.accept_keyword("AND"):
            self.right_operand()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else ast.And(tuple(operands))

    def negation(self):
        if self.accept_keyword("NOT"):
            self.deeper()
            node = ast.Not(self.negation())
            self.depth -= 1
            return node
        return self.predicate()

    def predicate(self):
        if self.accept("("):
            self.deeper()
            inner = self.condition()
            self.expect(")")
            self.depth -= 1
            return inner
        left = self.operand()
        kind = self.peek()[0]
        if kind in _COMPARE:
            self.pos += 1
            self.right_operand()
            op = "<>" if kind == "!=" else kind
            node = ast.Compare(op, left, self.operand())
            if self.peek()[0] in ("+", "-"):  # arithmetic is an update's, not a condition's
                raise ValidationException(CONDITION_OPERATOR + self.peek()[0])
            return node
        if kind in ("+", "-"):
            raise ValidationException(CONDITION_OPERATOR + kind)
        if self.at_keyword("LIKE"):
            raise ValidationException(CONDITION_OPERATOR + "like")
        negated = self.at_keyword("NOT") and self.at_keyword("BETWEEN", "IN", ahead=1)
        if negated:
            self.pos += 1
        if self.accept_keyword("BETWEEN"):
            self.right_operand()
            low = self.operand()
            self.keyword("AND")
            node = ast.Between(left, low, self.operand())
            return ast.Not(node) if negated else node
        if self.accept_keyword("IN"):
            self.right_operand()
            node = ast.In(left, self.in_options())
            return ast.Not(node) if negated else node
        if self.accept_keyword("IS"):
            if not isinstance(left, ast.Path):
                raise self.error()
            is_not = self.accept_keyword("NOT")
            if self.accept_keyword("MISSING"):
                return ast.IsMissing(left, is_not)
            if self.accept_keyword("NULL"):
                return ast.IsMissing(left, is_not, True)
            return ast.IsType(left, is_not, self.type_name())
        if isinstance(left, ast.Call):
            return left
        raise self.error()

    def type_name(self) -> str:
        """The DynamoDB type of the PartiQL type name after IS [NOT]."""
        kind, text = self.peek()
        upper = text.upper() if kind == "id" else None
        if upper in IS_TYPES:
            self.pos += 1
            return IS_TYPES[upper]
        if kind == "id" and upper not in _UNMAPPED_TYPES:
            raise syntax_error(TYPE_NAME)
        raise self.error()

    def in_options(self) -> tuple:
        closing = {"[": "]", "(": ")"}.get(self.peek()[0])
        if closing is None:
            if self.peek()[0] == "?":
                raise ValidationException(IN_LIST)
            raise self.error()
        self.pos += 1
        options = [self.operand()]
        while self.accept(","):
            options.append(self.operand())
        self.expect(closing)
        if len(options) > MAX_IN_OPERANDS and self.in_operands is None:
            self.in_operands = len(options)
        return tuple(options)

    def operand(self):
        self.check_term()
        kind, text = self.peek()
        if kind == "id" and self.peek(1)[0] == "(":
            return self.call()
        if kind in ("id", "qid") and not (kind == "id" and text.upper() in ("TRUE", "FALSE", "NULL", "MISSING")):
            return self.path()
        return self.value()

    def call(self) -> ast.Call:
        name = self.next()[1].lower()
        self.expect("(")
        self.deeper()
        args = []
        if not self.accept(")"):
            args.append(self.operand())
            while self.accept(","):
                args.append(self.operand())
            self.expect(")")
        self.depth -= 1
        return ast.Call(name, tuple(args))

    def update_value(self):
        node = self.operand()
        operators = 0
        while self.peek()[0] in ("+", "-"):
            op = self.next()[0]
            self.deeper()  # the tree nests one level per operator
            operators += 1
            node = ast.Arithmetic(op, node, self.operand())
        self.depth -= operators
        return node

    # ------------------------------------------------------------ paths and values

    def path(self) -> ast.Path:
        elements = [_named(self.name())]
        while True:
            if self.accept("."):
                elements.append(_named(self.dot_component()))
            elif self.accept("["):
                kind, text = self.next()
                if kind != "num" or not text.isdigit() or len(text) > 4000:  # (int() takes 4,300 digits)
                    raise self.error()
                elements.append(int(text))
                self.expect("]")
            else:
                return ast.Path(tuple(elements))

    @staticmethod
    def source_component(name: str) -> str:
        """A table or index name of a SELECT's FROM: an empty one is refused
        before any table is looked up (as recorded from DynamoDB)."""
        if not name:
            raise ValidationException(EMPTY_COMPONENT)
        return name

    def dot_component(self) -> str:
        """A name after a dot: quoted, or a bare name that is not reserved."""
        kind, text = self.next()
        if kind == "qid" or (kind == "id" and text.upper() not in RESERVED):
            return text
        raise syntax_error(DOT_COMPONENT)

    def value(self, where: str = "root"):
        """A literal, ``?``, list, bag or map; ``where`` is its place in the
        outermost value, which a number out of range is refused with."""
        kind, text = self.next()
        if kind == "str":
            return ast.Literal(("S", text))
        if kind == "num":
            return ast.Literal(("N", _number(text, where)))
        if kind == "-" and self.peek()[0] == "num":
            return ast.Literal(("N", _number("-" + self.next()[1], where)))
        if kind == "?":
            self.params += 1
            return ast.Param(self.params - 1)
        if kind == "id":
            upper = text.upper()
            if upper in ("TRUE", "FALSE"):
                return ast.Literal(("BOOL", upper == "TRUE"))
            if upper == "NULL":
                return ast.Literal(("NULL", True))
            if upper == "MISSING":  # no value: refused where a value is written
                raise ValidationException(MISSING_VALUE if where == "root"
                                          else f"Unsupported data type: MISSING under key {where}")
        if kind in ("[", "<<", "{"):
            self.deeper()
            if kind == "[":
                node = ast.ListValue(self.values("]", where))
            elif kind == "<<":
                node = ast.SetValue(self.values(">>", where))
            else:
                node = self.map_value(where)
            self.depth -= 1
            return node
        raise self.error()

    def values(self, closing: str, where: str) -> tuple:
        items = []
        if not self.accept(closing):
            items.append(self.value(f"{where}[0]"))
            while self.accept(","):
                items.append(self.value(f"{where}[{len(items)}]"))
            self.expect(closing)
        return tuple(items)

    def map_value(self, where: str) -> ast.MapValue:
        pairs = []
        if not self.accept("}"):
            pairs.append(self.pair(where))
            while self.accept(","):
                pairs.append(self.pair(where))
            self.expect("}")
        names = [name for name, _ in pairs]
        if len(set(names)) < len(names):  # DynamoDB refuses it (Local's words, without the position)
            twice = next(name for i, name in enumerate(names) if name in names[:i])
            raise ValidationException(f"Duplicate keys in tuple. Key: {twice} under {where}")
        return ast.MapValue(tuple(pairs))

    def pair(self, where: str) -> tuple:
        name = _named(self.expect("str"))
        self.expect(":")
        return name, self.value(f"{where}.{name}")


EMPTY_COMPONENT = "Path component cannot be an empty string"
# A write naming an index, in DynamoDB's words (recorded by the dynamodb-conformance suite; the
# INSERT one as DynamoDB Local 1.25 words it in full, the recordings asserting its start).
DML_FROM = "FROM clause may only contain a single table name in data manipulation statements"
ON_INDEX = "This operation is not supported on an index"
# A FROM of table.index.more, in DynamoDB's words (recorded against DynamoDB, 2026).
FROM_COMPONENTS = "A path may contain at most 2 components in the FROM clause"


_NEGATIVE_ZERO = re.compile(r"-(?:0*\.0*|0+(?:\.0*)?[eE][+-]?\d+|\.0+[eE][+-]?\d+|0*\.0+[eE][+-]?\d+)\Z")


def _named(name: str) -> str:
    """An attribute name of the statement's text (a path's or a map's): an
    empty one is refused, in DynamoDB Local's words (Parameters are checked
    as any attribute value is: "Empty attribute name")."""
    if not name:
        raise ValidationException(EMPTY_COMPONENT)
    return name


def _number(text: str, where: str) -> str:
    """The normalized text of a number literal; out of DynamoDB's range, its
    error names where the number sits (``under root.a[1]``).  A negative
    zero written as a decimal (``-0.0``, ``-0e0``; not the integer ``-0``)
    is refused, as DynamoDB Local refuses it (its words, the place as Shoal
    names it)."""
    if text[:1] == "-" and _NEGATIVE_ZERO.match(text):
        raise ValidationException(f"Negative zero decimal is not supported under key {where}")
    try:
        return normalize_number(text)
    except ValidationException as exc:
        if not exc.message.startswith(_RANGE_ERRORS):
            raise
        raise ValidationException(f"{exc.message} under {where}") from None
