"""Binding a parsed condition to a request and compiling it to a predicate.

Binding (pass 2 of the semantic checks) resolves ``#name`` and ``:value``
placeholders through the request's ExpressionContext and applies the rules that
need the values: operand counts and types of functions, BETWEEN bounds, operands
that must be distinct.  It produces closures, so evaluating a condition on an item
does no tree walking, dispatching or placeholder lookups.

Evaluation follows DynamoDB: a path that does not exist, or values of different
types, make a comparison false (``<>`` true), never an error.
"""

from __future__ import annotations

from shoal.errors import ValidationException

from . import ast
from .semantics import format_path
from .values import (
    SCALAR_ORDERED,
    SET_TYPES,
    begins_with,
    contains,
    display,
    equals,
    ordering_key,
    size_of,
    type_of,
)

ATTRIBUTE_TYPES = ("S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M")
_VALID_TYPES_TEXT = "{N,BS,L,B,NULL,M,S,SS,NS,BOOL}"
# What DynamoDB prints when attribute_type's second operand is not a value.
_ATTRIBUTE_TYPE_OPERAND_TYPES = (
    "{DECIMALSET,L,S,INT,DOUBLESET,INTSET,BS,DOUBLE,BOOL,N,HD,DICT,NS,DECIMAL,B,M,HDS,NULL,FLOAT,SS,FS}"
)

FUNCTION_ARITY = {
    "attribute_exists": 1, "attribute_not_exists": 1, "attribute_type": 2,
    "begins_with": 2, "contains": 2, "size": 1, "if_not_exists": 2, "list_append": 2,
}


class Operand:
    """A bound operand: how to get its value from an item, and what is known
    statically (the constant for a value, the resolved path for a path)."""

    __slots__ = ("get", "const", "path", "function")

    def __init__(self, get, const=None, path=None, function=None):
        self.get = get
        self.const = const
        self.path = path
        self.function = function

    @property
    def static_type(self) -> str | None:
        """The operand's type when the text alone fixes it: a constant's, or
        N for size() (DynamoDB checks functions' operands against it)."""
        if self.const is not None:
            return type_of(self.const)
        return "N" if self.function == "size" else None


def path_getter(path: tuple):
    """A function item -> attribute value (or None) for a resolved path."""
    first = path[0]
    if len(path) == 1:
        return lambda item: item.get(first)
    rest = path[1:]

    def get(item):
        value = item.get(first)
        for element in rest:
            if value is None:
                return None
            if type(element) is int:
                items = value.get("L")
                if items is None or element >= len(items):
                    return None
                value = items[element]
            else:
                members = value.get("M")
                if members is None:
                    return None
                value = members.get(element)
        return value

    return get


class Binder:
    """Resolves placeholders of one expression against a context."""

    __slots__ = ("ctx", "kind", "top_level_names", "nested_names")

    def __init__(self, ctx, kind: str):
        self.ctx = ctx
        self.kind = kind
        self.top_level_names: set[str] = set()  # attributes the expression refers to
        self.nested_names: list[str] = []  # those it reaches into (a.b, a[0]), in order

    def error(self, text: str) -> ValidationException:
        return ValidationException(f"Invalid {self.kind}: {text}")

    def resolve_path(self, node: ast.Path) -> tuple:
        ctx, kind = self.ctx, self.kind
        path = tuple(
            ctx.name(e, kind) if type(e) is str and e[0] == "#" else e for e in node.elements
        )
        self.top_level_names.add(path[0])
        if len(path) > 1:
            self.nested_names.append(path[0])
        return path

    def value(self, node: ast.Value) -> dict:
        return self.ctx.value(node.name, self.kind)

    # ------------------------------------------------------------ operands

    def operand(self, node) -> Operand:
        node = ast.unparen(node)
        node_type = type(node)
        if node_type is ast.Path:
            path = self.resolve_path(node)
            return Operand(path_getter(path), path=path)
        if node_type is ast.Value:
            const = self.value(node)
            return Operand(lambda item: const, const=const)
        if node_type is ast.Function:
            return self.size(node)
        raise TypeError(node_type)  # the parser admits nothing else

    def args(self, node: ast.Function) -> list[Operand]:
        args = [self.operand(a) for a in node.args]
        expected = FUNCTION_ARITY[node.name]
        if len(args) != expected:
            raise self.error(
                "Incorrect number of operands for operator or function; "
                f"operator or function: {node.name}, number of operands: {len(args)}"
            )
        return args

    def size(self, node: ast.Function) -> Operand:
        (arg,) = self.args(node)
        kind = arg.static_type
        if kind is not None and kind not in ("S", "B", "L", "M") and kind not in SET_TYPES:
            raise self.type_error("size", kind)  # size(:n), and size(size(a)) whatever a is
        const = arg.const
        if const is not None:
            fixed = size_of(const)
            return Operand(lambda item: fixed, function="size")
        get = arg.get
        return Operand(lambda item: size_of(get(item)), function="size")

    def type_error(self, operator: str, type_name: str) -> ValidationException:
        return self.error(
            "Incorrect operand type for operator or function; "
            f"operator or function: {operator}, operand type: {type_name}"
        )

    def require_distinct(self, operator: str, operands: list[Operand]) -> None:
        first = operands[0].path
        if first is None:
            return
        for other in operands[1:]:
            if other.path == first:
                raise self.error(
                    "The first operand must be distinct from the remaining operands for this operator "
                    f"or function; operator: {operator}, first operand: {format_path(first)}"
                )

    # ------------------------------------------------------------ conditions

    def condition(self, node):
        """Compile a condition node to a predicate item -> bool."""
        node = ast.unparen(node)
        return _COMPILERS[type(node)](self, node)

    def _and(self, node: ast.And):
        parts = tuple(self.condition(o) for o in node.operands)
        if len(parts) == 2:
            a, b = parts
            return lambda item: a(item) and b(item)
        return lambda item: all(p(item) for p in parts)

    def _or(self, node: ast.Or):
        parts = tuple(self.condition(o) for o in node.operands)
        if len(parts) == 2:
            a, b = parts
            return lambda item: a(item) or b(item)
        return lambda item: any(p(item) for p in parts)

    def _not(self, node: ast.Not):
        inner = self.condition(node.operand)
        return lambda item: not inner(item)

    def _compare(self, node: ast.Compare):
        left, right = self.operand(node.left), self.operand(node.right)
        op = node.op
        self.require_distinct(op, [left, right])
        if op == "=" or op == "<>":
            return _equality(left.get, right.get, op == "=")
        for side in (left, right):
            if side.const is not None and type_of(side.const) not in SCALAR_ORDERED:
                raise self.type_error(op, type_of(side.const))
        return _ordering(left.get, right.get, _ORDER_TESTS[op])

    def _between(self, node: ast.Between):
        operand, low, high = (self.operand(n) for n in (node.operand, node.low, node.high))
        self.require_distinct("BETWEEN", [operand, low, high])
        for side in (operand, low, high):
            if side.const is not None and type_of(side.const) not in SCALAR_ORDERED:
                raise self.type_error("BETWEEN", type_of(side.const))
        if low.const is not None and high.const is not None:
            check_between_bounds(self.kind, low.const, high.const)
        get, get_low, get_high = operand.get, low.get, high.get

        def between(item):
            value = ordering_key(get(item))
            lower = ordering_key(get_low(item))
            upper = ordering_key(get_high(item))
            if value is None or lower is None or upper is None:
                return False
            if value[0] != lower[0] or value[0] != upper[0]:
                return False
            return lower[1] <= value[1] <= upper[1]

        return between

    def _in(self, node: ast.In):
        operand = self.operand(node.operand)
        options = [self.operand(o) for o in node.options]
        self.require_distinct("IN", [operand] + options)
        get = operand.get
        getters = tuple(o.get for o in options)

        def is_in(item):
            value = get(item)
            if value is None:
                return False
            for option in getters:
                candidate = option(item)
                if candidate is not None and equals(value, candidate):
                    return True
            return False

        return is_in

    def _function(self, node: ast.Function):
        return _FUNCTIONS[node.name](self, node)

    def _exists(self, node: ast.Function):
        (arg,) = self.args(node)
        self._require_path(node.name, arg)
        get = arg.get
        if node.name == "attribute_exists":
            return lambda item: get(item) is not None
        return lambda item: get(item) is None

    def _require_path(self, name: str, arg: Operand) -> None:
        if arg.path is None:
            raise self.error(
                f"Operator or function requires a document path; operator or function: {name}"
            )

    def _attribute_type(self, node: ast.Function):
        target, type_arg = self.args(node)  # the target may be a value too (DynamoDB allows it)
        const = type_arg.const
        if const is None:
            raise self.type_error("attribute_type", _ATTRIBUTE_TYPE_OPERAND_TYPES)
        if type_of(const) != "S":
            raise self.type_error("attribute_type", type_of(const))
        wanted = const["S"]
        if wanted not in ATTRIBUTE_TYPES:
            raise self.error(
                f"Invalid attribute type name found; type: {wanted}, valid types: {_VALID_TYPES_TEXT}"
            )
        get = target.get

        def has_type(item):
            value = get(item)
            return value is not None and wanted in value

        return has_type

    def _begins_with(self, node: ast.Function):
        args = self.args(node)
        self.require_distinct("begins_with", args)
        for arg in args:
            kind = arg.static_type
            if kind is not None and kind not in ("S", "B"):
                raise self.type_error("begins_with", kind)
        get, get_prefix = args[0].get, args[1].get
        return lambda item: begins_with(get(item), get_prefix(item))

    def _contains(self, node: ast.Function):
        args = self.args(node)
        self.require_distinct("contains", args)
        get, get_operand = args[0].get, args[1].get
        return lambda item: contains(get(item), get_operand(item))

    def _size_as_condition(self, node: ast.Function):
        raise TypeError("size is rejected as a condition by the semantic pass")


def check_between_bounds(kind: str, low: dict, high: dict) -> None:
    """BETWEEN bounds given as values must share a type and be in order."""
    low_type, high_type = type_of(low), type_of(high)
    if low_type != high_type:
        raise ValidationException(
            f"Invalid {kind}: The BETWEEN operator requires same data type for lower and upper bounds; "
            f"lower bound operand: {display(low)}, upper bound operand: {display(high)}"
        )
    if ordering_key(low)[1] > ordering_key(high)[1]:
        raise ValidationException(
            f"Invalid {kind}: The BETWEEN operator requires upper bound to be greater than or equal to lower "
            f"bound; lower bound operand: {display(low)}, upper bound operand: {display(high)}"
        )


def _equality(get_left, get_right, want_equal: bool):
    def compare(item):
        left = get_left(item)
        right = get_right(item)
        if left is None or right is None:
            return not want_equal
        return equals(left, right) is want_equal

    return compare


def _ordering(get_left, get_right, test):
    def compare(item):
        left = ordering_key(get_left(item))
        right = ordering_key(get_right(item))
        if left is None or right is None or left[0] != right[0]:
            return False
        return test(left[1], right[1])

    return compare


_ORDER_TESTS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

_COMPILERS = {
    ast.And: Binder._and,
    ast.Or: Binder._or,
    ast.Not: Binder._not,
    ast.Compare: Binder._compare,
    ast.Between: Binder._between,
    ast.In: Binder._in,
    ast.Function: Binder._function,
}

_FUNCTIONS = {
    "attribute_exists": Binder._exists,
    "attribute_not_exists": Binder._exists,
    "attribute_type": Binder._attribute_type,
    "begins_with": Binder._begins_with,
    "contains": Binder._contains,
    "size": Binder._size_as_condition,
}


class Condition:
    """A bound ConditionExpression / FilterExpression (or a legacy Expected,
    QueryFilter or ScanFilter converted to the same form)."""

    __slots__ = ("_predicate", "top_level_names", "nested_names")

    def __init__(self, predicate, top_level_names=frozenset(), nested_names=()):
        self._predicate = predicate
        # The top-level attributes the condition reads (a Query filter may not
        # name key attributes).
        self.top_level_names = top_level_names
        # Those it reaches into with a map key or list index, in the order
        # written (no key attribute may be reached into: ``keys.py``).
        self.nested_names = nested_names

    def evaluate(self, item: dict | None) -> bool:
        """True if the condition holds for ``item``; None means no item, for
        which attribute_not_exists holds and comparisons fail."""
        return self._predicate(item if item is not None else {})
