"""CloudWatch's metric math: the ``Expression`` of a GetMetricData query (and,
later, of an alarm's ``Metrics``), as the CloudWatch User Guide's "Using math
expressions with CloudWatch metrics" defines it.

Four parts, as in jmespath: ``tokens`` (text to tokens), ``Parser`` (a Pratt
parser: one ``_nud_*`` / ``_led_*`` per token and a binding-power table) to
plain nodes, ``check`` (a pass over the tree: known functions, their number
of arguments, where keywords and strings may stand, which ids are named), and
``Evaluator`` (one ``visit_*`` per node).  ``compile_expression`` caches the
checked tree by text.  Nothing here knows storage or HTTP: a query's metrics
come in as ``Series``.

Values are a scalar (float), a time series (``Series``: timestamps to values,
ascending, with its label and period) or an array of series (tuple).  The
rules followed, from the guide:

- ``+ - * / ^`` between two series keep the timestamps both have (a point
  missing on one side is dropped: what CloudWatch does, and why the guide
  suggests ``FILL``; the guide's "missing values are treated as 0" is kept
  for what it says it for: comparisons, and ``AVG`` across an array).
- A point whose value would be NaN or infinite (division by zero, ``LOG`` of
  0, overflow) is dropped, and the query's result carries CloudWatch's
  message: code ``ArithmeticError``, "One or more data-points have been
  dropped due to non-numeric values (NaN, -Infinite, +Infinite)".
- Comparisons and ``AND`` / ``&&``, ``OR`` / ``||`` (and ``NOT`` / ``!``,
  which Shoal adds) yield 1 or 0; between two series they cover the
  timestamps of either, a missing value counting as 0.
- ``IF(condition, a, b)`` follows the guide's table for each form: a false
  condition with no ``b`` (or no point of ``b``) drops the point, a true one
  with no point of ``a`` gives 0.
- ``SUM``, ``AVG``, ``MIN``, ``MAX``, ``STDDEV`` of a series are scalars;
  of an array, a series point by point (``AVG`` counting a missing value as
  0, the others over the values present).  ``STDDEV`` is the population
  standard deviation.
- ``FILL`` fills the slots of the query's period grid (rounded StartTime to
  EndTime) with a scalar, another series' value at that time, ``REPEAT`` (the
  last value before; nothing before a series' first point) or ``LINEAR``
  (interpolated between the points either side of a gap; nothing outside).
- ``METRICS()`` is every MetricStat query of the request, returned or not,
  in request order; ``METRICS("x")`` those whose Id contains "x".
- ``PERIOD`` takes a metric, not an expression's result.

Errors: the guide documents no wording for a bad expression.  An expression
that does not parse, names an unknown function or Id, refers to itself
through other queries, gives a function the wrong arguments, or ends as a
scalar raises ``MathError``; GetMetricData refuses the whole request with
ValidationError naming the query's ``Expression`` parameter (CloudWatch
refuses such a request before reading data).  Only the dropping of
non-numeric points is reported in the result's ``Messages``, as CloudWatch
reports it.  ``SEARCH``, ``ANOMALY_DETECTION_BAND``, ``INSIGHT_RULE_METRIC``
and ``SERVICE_QUOTA`` are refused by name.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Union

ARITHMETIC_ERROR = ("ArithmeticError",
                    "One or more data-points have been dropped due to non-numeric values (NaN, -Infinite, +Infinite)")


class MathError(Exception):
    """An expression CloudWatch would refuse; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Series:
    """A time series: ``points`` maps epoch seconds to values, ascending.
    ``metric`` marks a MetricStat's own result (``PERIOD`` takes only those)."""

    points: dict
    label: str = ""
    period: int = 60
    metric: bool = False

    def with_points(self, points: dict) -> "Series":
        return Series(points, self.label, self.period, False)


Value = Union[float, Series, tuple]


def _kind(value) -> str:
    if isinstance(value, Series):
        return "a time series"
    if isinstance(value, tuple):
        return "an array of time series"
    return "a scalar"


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"[^"]*"|\u201c[^\u201d]*\u201d|'[^']*')
  | (?P<op><=|>=|==|!=|&&|\|\||[-+*/^()\[\],<>!])
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, string, op, eof; AND, OR and NOT are ops
    text: str
    at: int


def tokens(text: str) -> list[Token]:
    """The tokens of ``text``; ``AND``, ``OR`` and ``NOT`` are operators
    like ``&&``, ``||`` and ``!``."""
    out, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise MathError(f"Unexpected character {text[at]!r} at position {at + 1}")
        kind = match.lastgroup
        word = match.group()
        if kind == "name" and word in ("AND", "OR", "NOT"):
            kind = "op"
        if kind != "space":
            out.append(Token(kind, word, at))
        at = match.end()
    out.append(Token("eof", "", len(text)))
    return out


# ---------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class String:
    value: str


@dataclass(frozen=True)
class Ref:
    """The Id of another query."""
    id: str


@dataclass(frozen=True)
class Keyword:
    """An upper-case word that is not a call: REPEAT, LINEAR, ASC, DESC, AVG..."""
    name: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple


@dataclass(frozen=True)
class Array:
    items: tuple


@dataclass(frozen=True)
class Unary:
    op: str
    operand: object


@dataclass(frozen=True)
class Binary:
    op: str
    left: object
    right: object


_CANONICAL = {"AND": "&&", "OR": "||", "NOT": "!"}

# left binding powers; unary minus binds at 60 (``-2^2`` is ``-(2^2)``), NOT at 25
# (``NOT m1 > 5`` is ``NOT (m1 > 5)``); ``^`` is right-associative.
_BINDING = {"||": 10, "&&": 20, "==": 30, "!=": 30, "<": 30, "<=": 30, ">": 30, ">=": 30,
            "+": 40, "-": 40, "*": 50, "/": 50, "^": 70}


class Parser:
    """A Pratt parser of one expression's tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokens(text)
        self.index = 0

    def parse(self):
        if self.tokens[0].kind == "eof":
            raise MathError("The expression is empty")
        node = self._expression(0)
        self._expect_end()
        return node

    # -- machinery

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def _advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _op(self, token: Token) -> str | None:
        return _CANONICAL.get(token.text, token.text) if token.kind == "op" else None

    def _expression(self, rbp: int):
        token = self._advance()
        left = getattr(self, f"_nud_{token.kind}")(token)
        while _BINDING.get(self._op(self.current), -1) > rbp:
            op_token = self._advance()
            left = self._led(left, op_token)
        return left

    def _expect(self, text: str) -> None:
        if self.current.kind != "op" or self.current.text != text:
            raise self._unexpected(self.current, f"expected {text!r}")
        self._advance()

    def _expect_end(self) -> None:
        if self.current.kind != "eof":
            raise self._unexpected(self.current)

    def _unexpected(self, token: Token, wanted: str = "") -> MathError:
        found = "end of the expression" if token.kind == "eof" else repr(token.text)
        at = "" if token.kind == "eof" else f" at position {token.at + 1}"
        return MathError(f"Syntax error: unexpected {found}{at}" + (f", {wanted}" if wanted else ""))

    # -- prefix positions

    def _nud_number(self, token: Token):
        return Number(float(token.text))

    def _nud_string(self, token: Token):
        return String(token.text[1:-1])

    def _nud_name(self, token: Token):
        if self.current.kind == "op" and self.current.text == "(":
            if not token.text[0].isupper():
                raise MathError(f"Unknown function {token.text!r}: functions are written in upper case")
            self._advance()
            args = []
            if not (self.current.kind == "op" and self.current.text == ")"):
                args.append(self._expression(0))
                while self.current.kind == "op" and self.current.text == ",":
                    self._advance()
                    args.append(self._expression(0))
            self._expect(")")
            return Call(token.text, tuple(args))
        if token.text[0].islower():
            return Ref(token.text)
        return Keyword(token.text)

    def _nud_op(self, token: Token):
        op = self._op(token)
        if op == "(":
            node = self._expression(0)
            self._expect(")")
            return node
        if op == "[":
            items = [self._expression(0)]
            while self.current.kind == "op" and self.current.text == ",":
                self._advance()
                items.append(self._expression(0))
            self._expect("]")
            return Array(tuple(items))
        if op == "-":
            return Unary("-", self._expression(60))
        if op == "+":
            return self._expression(60)
        if op == "!":
            return Unary("!", self._expression(25))
        raise self._unexpected(token)

    def _nud_eof(self, token: Token):
        raise self._unexpected(token)

    # -- infix positions

    def _led(self, left, token: Token):
        op = self._op(token)
        rbp = _BINDING[op] - 1 if op == "^" else _BINDING[op]
        return Binary(op, left, self._expression(rbp))


# ---------------------------------------------------------------- checks over the tree

# name: (fewest arguments, most arguments)
FUNCTIONS = {
    "ABS": (1, 1), "CEIL": (1, 1), "FLOOR": (1, 1), "LOG": (1, 1), "LOG10": (1, 1), "SQRT": (1, 1),
    "AVG": (1, 1), "MAX": (1, 1), "MIN": (1, 1), "SUM": (1, 1), "STDDEV": (1, 1),
    "DATAPOINT_COUNT": (1, 1), "METRIC_COUNT": (1, 1),
    "FILL": (2, 2), "IF": (2, 3), "METRICS": (0, 1), "PERIOD": (1, 1),
    "RATE": (1, 1), "DIFF": (1, 1), "DIFF_TIME": (1, 1), "RUNNING_SUM": (1, 1),
    "SORT": (3, 4), "SLICE": (2, 3), "FIRST": (1, 1), "LAST": (1, 1),
    "TIME_SERIES": (1, 1), "REMOVE_EMPTY": (1, 1),
    "MINUTE": (1, 1), "HOUR": (1, 1), "DAY": (1, 1), "DATE": (1, 1), "MONTH": (1, 1), "YEAR": (1, 1),
    "EPOCH": (1, 1),
}
NOT_OFFERED = ("SEARCH", "ANOMALY_DETECTION_BAND", "INSIGHT_RULE_METRIC", "SERVICE_QUOTA")
SORT_FUNCTIONS = ("AVG", "MIN", "MAX", "SUM")
SORT_ORDERS = ("ASC", "DESC")
FILL_METHODS = ("REPEAT", "LINEAR")


def check(node) -> None:
    """Refuse what no data could make valid: unknown functions, a wrong
    number of arguments, keywords and strings out of their places."""
    if isinstance(node, Call):
        if node.name in NOT_OFFERED:
            raise MathError(f"Shoal does not evaluate the function {node.name} yet")
        if node.name not in FUNCTIONS:
            raise MathError(f"Unknown function {node.name}")
        low, high = FUNCTIONS[node.name]
        if not low <= len(node.args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise MathError(f"The function {node.name} takes {wanted} argument{'s' if high > 1 else ''}, "
                            f"not {len(node.args)}")
        allowed = {("FILL", 1): FILL_METHODS, ("SORT", 1): SORT_FUNCTIONS, ("SORT", 2): SORT_ORDERS}
        for i, arg in enumerate(node.args):
            words = allowed.get((node.name, i), ())
            if isinstance(arg, Keyword) and arg.name not in words:
                raise MathError(f"Unexpected {arg.name} as argument {i + 1} of {node.name}")
            if (node.name, i) in (("SORT", 1), ("SORT", 2)) and not isinstance(arg, Keyword):
                raise MathError(f"Argument {i + 1} of SORT must be one of {', '.join(words)}")
            if isinstance(arg, String) and node.name != "METRICS":
                raise MathError(f"Unexpected string as argument {i + 1} of {node.name}")
            if node.name == "METRICS" and not isinstance(arg, String):
                raise MathError("The argument of METRICS must be a string")
            if not isinstance(arg, (Keyword, String)):
                check(arg)
    elif isinstance(node, Keyword):
        raise MathError(f"Unexpected {node.name}: a function needs its arguments in parentheses")
    elif isinstance(node, String):
        raise MathError("A string may only be the argument of METRICS")
    elif isinstance(node, Array):
        for item in node.items:
            check(item)
    elif isinstance(node, Unary):
        check(node.operand)
    elif isinstance(node, Binary):
        check(node.left)
        check(node.right)


def references(node) -> set[str]:
    """The Ids an expression names (METRICS() names none: it reads metrics only)."""
    if isinstance(node, Ref):
        return {node.id}
    if isinstance(node, Call):
        return set().union(*(references(a) for a in node.args)) if node.args else set()
    if isinstance(node, Array):
        return set().union(*(references(i) for i in node.items))
    if isinstance(node, Unary):
        return references(node.operand)
    if isinstance(node, Binary):
        return references(node.left) | references(node.right)
    return set()


@functools.lru_cache(maxsize=2048)
def compile_expression(text: str):
    """The checked tree of ``text``, cached by text (alarms evaluate the same
    expressions every few seconds)."""
    node = Parser(text).parse()
    check(node)
    return node


# ---------------------------------------------------------------- evaluation


@dataclass
class Environment:
    """What an expression reads: other queries' values by Id, the request's
    metrics, and the query's time grid (``start`` rounded, ``end`` exclusive)."""

    resolve: Callable[[str], Value]
    metrics: Callable[[], list]
    start: int
    end: float
    period: int = 60
    dropped: bool = field(default=False)  # a non-numeric point was dropped

    def grid(self, period: int) -> range:
        return range(self.start, math.ceil(self.end), period)


def _finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def _apply(op: str, a: float, b: float) -> float:
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "^":
            result = a ** b
            return result if isinstance(result, float) or isinstance(result, int) else math.nan
        if op == "==":
            return float(a == b)
        if op == "!=":
            return float(a != b)
        if op == "<":
            return float(a < b)
        if op == "<=":
            return float(a <= b)
        if op == ">":
            return float(a > b)
        if op == ">=":
            return float(a >= b)
        if op == "&&":
            return float(a != 0 and b != 0)
        if op == "||":
            return float(a != 0 or b != 0)
    except (ZeroDivisionError, OverflowError):
        return math.nan
    raise AssertionError(op)


_LOGICAL = frozenset({"==", "!=", "<", "<=", ">", ">=", "&&", "||"})


def _unary_function(name: str) -> Callable[[float], float]:
    def safe(f):
        def run(x: float) -> float:
            try:
                return float(f(x))
            except (ValueError, OverflowError):
                return math.nan
        return run
    return {"ABS": safe(abs), "CEIL": safe(math.ceil), "FLOOR": safe(math.floor),
            "LOG": safe(lambda x: -math.inf if x == 0 else math.log(x)),
            "LOG10": safe(lambda x: -math.inf if x == 0 else math.log10(x)),
            "SQRT": safe(math.sqrt)}[name]


def _stddev(values: list) -> float:
    if not values:
        return math.nan
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


_REDUCE = {
    "SUM": lambda values: float(sum(values)),
    "AVG": lambda values: sum(values) / len(values) if values else math.nan,
    "MIN": lambda values: min(values) if values else math.nan,
    "MAX": lambda values: max(values) if values else math.nan,
    "STDDEV": _stddev,
}

_CALENDAR = {
    "MINUTE": lambda t: t.minute, "HOUR": lambda t: t.hour, "DAY": lambda t: t.isoweekday(),
    "DATE": lambda t: t.day, "MONTH": lambda t: t.month, "YEAR": lambda t: t.year,
}


class Evaluator:
    """Evaluates a checked tree in an ``Environment``: one ``visit_*`` per node."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def visit(self, node) -> Value:
        return getattr(self, f"visit_{type(node).__name__}")(node)

    # -- helpers

    def _series(self, base: Series, points: Iterable) -> Series:
        """A series of ``points`` (pairs), the non-numeric ones dropped (and noted)."""
        kept = {}
        for at, value in points:
            if _finite(value):
                kept[at] = value
            else:
                self.env.dropped = True
        return base.with_points(kept)

    def _map(self, value: Value, f: Callable[[float], float]) -> Value:
        if isinstance(value, tuple):
            return tuple(self._map(s, f) for s in value)
        if isinstance(value, Series):
            return self._series(value, ((at, f(v)) for at, v in value.points.items()))
        return f(value)

    def _each(self, value: Value, f: Callable[[Series], Series], name: str) -> Value:
        if isinstance(value, tuple):
            return tuple(f(s) for s in value)
        if isinstance(value, Series):
            return f(value)
        raise MathError(f"The function {name} takes a time series or an array of time series, not a scalar")

    def _array(self, value: Value, name: str) -> tuple:
        if not isinstance(value, tuple):
            raise MathError(f"The function {name} takes an array of time series, not {_kind(value)}")
        return value

    def _scalar(self, value: Value, what: str) -> float:
        if isinstance(value, (Series, tuple)):
            raise MathError(f"{what} must be a scalar, not {_kind(value)}")
        return value

    # -- nodes

    def visit_Number(self, node: Number) -> float:
        return node.value

    def visit_Ref(self, node: Ref) -> Value:
        return self.env.resolve(node.id)

    def visit_Array(self, node: Array) -> tuple:
        out = []
        for item in node.items:
            value = self.visit(item)
            if isinstance(value, tuple):
                out.extend(value)
            elif isinstance(value, Series):
                out.append(value)
            else:
                raise MathError("An array holds time series, not scalars")
        return tuple(out)

    def visit_Unary(self, node: Unary) -> Value:
        value = self.visit(node.operand)
        if node.op == "-":
            return self._map(value, lambda x: -x)
        return self._map(value, lambda x: float(x == 0))

    def visit_Binary(self, node: Binary) -> Value:
        return self._binary(node.op, self.visit(node.left), self.visit(node.right))

    def _binary(self, op: str, left: Value, right: Value) -> Value:
        if isinstance(left, tuple) and isinstance(right, tuple):
            raise MathError(f"The operator {op} does not take two arrays of time series")
        if isinstance(left, tuple):
            return tuple(self._binary(op, s, right) for s in left)
        if isinstance(right, tuple):
            return tuple(self._binary(op, left, s) for s in right)
        if isinstance(left, Series) and isinstance(right, Series):
            a, b = left.points, right.points
            if op in _LOGICAL:  # either side's timestamps, a missing value counting as 0
                stamps = sorted(a.keys() | b.keys())
                return self._series(left, ((t, _apply(op, a.get(t, 0.0), b.get(t, 0.0))) for t in stamps))
            return self._series(left, ((t, _apply(op, v, b[t])) for t, v in a.items() if t in b))
        if isinstance(left, Series):
            return self._series(left, ((t, _apply(op, v, right)) for t, v in left.points.items()))
        if isinstance(right, Series):
            return self._series(right, ((t, _apply(op, left, v)) for t, v in right.points.items()))
        return _apply(op, left, right)

    def visit_Call(self, node: Call) -> Value:
        name = node.name
        if name == "METRICS":
            wanted = node.args[0].value if node.args else ""
            return tuple(series for query_id, series in self.env.metrics() if wanted in query_id)
        if name == "FILL":
            return self._fill(self.visit(node.args[0]), node.args[1])
        if name == "IF":
            return self._if(*[self.visit(a) for a in node.args])
        if name == "SORT":
            return self._sort(node)
        args = [self.visit(a) for a in node.args]
        value = args[0]
        if name in ("ABS", "CEIL", "FLOOR", "LOG", "LOG10", "SQRT"):
            return self._map(value, _unary_function(name))
        if name in _REDUCE:
            return self._reduce(name, value)
        if name == "DATAPOINT_COUNT":
            if isinstance(value, tuple):
                return self._across(value, lambda present, n: float(len(present)))
            if isinstance(value, Series):
                return float(len(value.points))
            raise MathError("The function DATAPOINT_COUNT takes a time series or an array of time series")
        if name == "METRIC_COUNT":
            return float(len(self._array(value, name)))
        if name == "PERIOD":
            if not isinstance(value, Series) or not value.metric:
                raise MathError("The function PERIOD takes a metric (the Id of a MetricStat query)")
            return float(value.period)
        if name in ("RATE", "DIFF", "DIFF_TIME"):
            return self._each(value, lambda s: self._step(s, name), name)
        if name == "RUNNING_SUM":
            return self._each(value, self._running_sum, name)
        if name == "SLICE":
            array = self._array(value, name)
            begin = int(self._scalar(args[1], "The start of SLICE"))
            end = int(self._scalar(args[2], "The end of SLICE")) if len(args) > 2 else len(array)
            return array[begin:end]
        if name in ("FIRST", "LAST"):
            array = self._array(value, name)
            if not array:
                return Series({}, "", self.env.period)
            return array[0] if name == "FIRST" else array[-1]
        if name == "TIME_SERIES":
            scalar = self._scalar(value, "The argument of TIME_SERIES")
            return self._series(Series({}, "", self.env.period),
                                ((t, scalar) for t in self.env.grid(self.env.period)))
        if name == "REMOVE_EMPTY":
            return tuple(s for s in self._array(value, name) if s.points)
        if name in _CALENDAR or name == "EPOCH":
            return self._each(value, lambda s: self._calendar(s, name), name)
        raise AssertionError(name)

    # -- functions

    def _reduce(self, name: str, value: Value) -> Value:
        reduce = _REDUCE[name]
        if isinstance(value, Series):
            return reduce(list(value.points.values()))
        if isinstance(value, tuple):
            if name == "AVG":  # a missing value counts as 0 (the guide)
                count = len(value)
                return self._across(value, lambda present, n: sum(present) / count)
            return self._across(value, lambda present, n: reduce(present))
        raise MathError(f"The function {name} takes a time series or an array of time series, not a scalar")

    def _across(self, array: tuple, f: Callable[[list, int], float]) -> Series:
        """One series from an array, point by point over every timestamp present in any."""
        stamps = sorted(set().union(*(s.points.keys() for s in array))) if array else []
        period = min((s.period for s in array), default=self.env.period)
        return self._series(Series({}, "", period),
                            ((t, f([s.points[t] for s in array if t in s.points], len(array))) for t in stamps))

    def _step(self, series: Series, name: str) -> Series:
        items = list(series.points.items())
        out = []
        for (t0, v0), (t1, v1) in zip(items, items[1:]):
            if name == "DIFF":
                out.append((t1, v1 - v0))
            elif name == "DIFF_TIME":
                out.append((t1, float(t1 - t0)))
            else:
                out.append((t1, (v1 - v0) / (t1 - t0)))
        return self._series(series, out)

    def _running_sum(self, series: Series) -> Series:
        total, out = 0.0, []
        for t, v in series.points.items():
            total += v
            out.append((t, total))
        return self._series(series, out)

    def _calendar(self, series: Series, name: str) -> Series:
        def at(t: int) -> float:
            if name == "EPOCH":
                return float(t)
            return float(_CALENDAR[name](datetime.datetime.fromtimestamp(t, datetime.timezone.utc)))
        return self._series(series, ((t, at(t)) for t in self.env.grid(series.period)))

    def _fill(self, value: Value, filler_node) -> Value:
        if isinstance(filler_node, Keyword):
            method, filler = filler_node.name, None
        else:
            method, filler = None, self.visit(filler_node)
            if isinstance(filler, tuple):
                raise MathError("The filler of FILL must be a scalar or a time series, not an array")
        return self._each(value, lambda s: self._fill_one(s, method, filler), "FILL")

    def _fill_one(self, series: Series, method: str | None, filler) -> Series:
        have = series.points
        slots = sorted(set(self.env.grid(series.period)) | have.keys())
        out = []
        if method == "REPEAT":
            last = None
            for t in slots:
                if t in have:
                    last = have[t]
                    out.append((t, last))
                elif last is not None:
                    out.append((t, last))
        elif method == "LINEAR":
            known = list(have.items())
            after = 0
            for t in slots:
                if t in have:
                    out.append((t, have[t]))
                    continue
                while after < len(known) and known[after][0] < t:
                    after += 1
                if 0 < after < len(known):
                    (t0, v0), (t1, v1) = known[after - 1], known[after]
                    out.append((t, v0 + (v1 - v0) * (t - t0) / (t1 - t0)))
        else:
            for t in slots:
                if t in have:
                    out.append((t, have[t]))
                elif isinstance(filler, Series):
                    if t in filler.points:
                        out.append((t, filler.points[t]))
                else:
                    out.append((t, filler))
        return self._series(series, out)

    def _if(self, condition: Value, when_true: Value, when_false: Value | None = None) -> Value:
        for value in (condition, when_true, when_false):
            if isinstance(value, tuple):
                raise MathError("IF takes time series and scalars, not arrays of time series")
        if not isinstance(condition, Series):
            chosen = when_true if condition != 0 else when_false
            if chosen is None:
                base = when_true if isinstance(when_true, Series) else Series({}, "", self.env.period)
                return base.with_points({})
            return chosen
        out = []
        for t, c in condition.points.items():
            if c != 0:
                if isinstance(when_true, Series):
                    out.append((t, when_true.points.get(t, 0.0)))
                else:
                    out.append((t, when_true))
            elif isinstance(when_false, Series):
                if t in when_false.points:
                    out.append((t, when_false.points[t]))
            elif when_false is not None:
                out.append((t, when_false))
        return self._series(condition, out)

    def _sort(self, node: Call) -> tuple:
        array = self._array(self.visit(node.args[0]), "SORT")
        by, order = _REDUCE[node.args[1].name], node.args[2].name
        limit = int(self._scalar(self.visit(node.args[3]), "The limit of SORT")) if len(node.args) > 3 else None
        keyed = [(by(list(s.points.values())), i, s) for i, s in enumerate(array)]
        present = [k for k in keyed if _finite(k[0])]
        empty = [k for k in keyed if not _finite(k[0])]
        present.sort(key=lambda k: (-k[0] if order == "DESC" else k[0], k[1]))
        ordered = tuple(s for _, _, s in present + empty)
        return ordered[:limit] if limit is not None else ordered


# ---------------------------------------------------------------- a request's expressions


@dataclass
class Outcome:
    """An expression's result: its value (a series or an array of them) and
    whether non-numeric points were dropped on the way."""

    value: Value
    dropped: bool


def evaluate_queries(expressions: dict, metrics: dict, start: int, end: float,
                     periods: dict | None = None, default_period: int = 60) -> dict:
    """Evaluate every expression of a request.

    ``expressions`` maps Id to text, ``metrics`` Id to ``Series`` in request
    order, ``periods`` an expression's own Period when it has one.  Returns
    {Id: Outcome}.  Raises ``MathError`` with ``id`` set to the failing
    query's Id."""
    trees = {}
    for query_id, text in expressions.items():
        try:
            trees[query_id] = compile_expression(text)
        except MathError as exc:
            exc.id = query_id
            raise
    known = set(expressions) | set(metrics)
    for query_id, tree in trees.items():
        unknown = sorted(references(tree) - known)
        if unknown:
            error = MathError(f"Unknown metric or expression Id {unknown[0]}")
            error.id = query_id
            raise error
    _refuse_cycles(trees)
    results: dict = {}
    metric_list = list(metrics.items())

    def resolve(query_id: str) -> Value:
        if query_id in metrics:
            return metrics[query_id]
        if query_id not in results:
            results[query_id] = run(query_id)
        return results[query_id].value

    def run(query_id: str) -> Outcome:
        period = (periods or {}).get(query_id) or default_period
        env = Environment(resolve, lambda: metric_list, start, end, period)
        try:
            value = Evaluator(env).visit(trees[query_id])
            if not isinstance(value, (Series, tuple)):
                raise MathError("The expression must result in a time series or an array of time series, "
                                "not a scalar")
        except MathError as exc:
            if getattr(exc, "id", None) is None:  # an error of a query it refers to keeps that query's Id
                exc.id = query_id
            raise
        return Outcome(value, env.dropped)

    for query_id in expressions:
        if query_id not in results:
            results[query_id] = run(query_id)
    return results


def _refuse_cycles(trees: dict) -> None:
    state: dict = {}

    def visit(query_id: str, path: list) -> None:
        if state.get(query_id) == "done" or query_id not in trees:
            return
        if state.get(query_id) == "open":
            loop = path[path.index(query_id):] + [query_id]
            error = MathError("Circular dependency between expressions: " + " -> ".join(loop))
            error.id = path[0]
            raise error
        state[query_id] = "open"
        for ref in sorted(references(trees[query_id])):
            visit(ref, path + [query_id])
        state[query_id] = "done"

    for query_id in trees:
        visit(query_id, [])
