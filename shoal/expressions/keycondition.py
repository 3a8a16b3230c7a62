"""KeyConditionExpression: the key range of a Query.

It is parsed with the condition grammar and checked like a condition, then
reduced to at most two simple conditions on key attributes: equality on the
partition key and one of = < <= > >= BETWEEN begins_with on the sort key.
Checks against the table's key schema happen in ``validate`` because the parse
does not know which table or index the Query reads.
"""

from __future__ import annotations

from shoal.errors import INVALID_PARAMETERS, ValidationException
from shoal.model.values import check_key_value_not_empty

from . import ast
from .evaluator import Binder
from .values import begins_with, ordering_key

KIND = "KeyConditionExpression"

_OPERATORS = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}
_NOT_ALLOWED_FUNCTIONS = frozenset({"attribute_exists", "attribute_not_exists", "attribute_type", "contains"})


def _invalid_operator(name: str) -> ValidationException:
    return ValidationException(f"Invalid operator used in KeyConditionExpression: {name}")


class KeyCondition:
    """The bound key condition: a list of (attribute name, operator, values).

    After ``validate`` the attributes ``partition_name``, ``partition_value``,
    ``sort_name``, ``sort_op`` and ``sort_values`` describe the key range.
    """

    __slots__ = ("conditions", "partition_name", "partition_value", "sort_name", "sort_op", "sort_values",
                 "sort_prefix", "legacy")

    def __init__(self, conditions: list[tuple[str, str, list]], legacy: bool = False):
        self.conditions = conditions
        self.legacy = legacy  # from KeyConditions: DynamoDB words its count rule apart
        self.sort_prefix = []  # multi-attribute keys: the sort attributes' values fixed by equality
        self.partition_name = None
        self.partition_value = None
        self.sort_name = None
        self.sort_op = None
        self.sort_values = []
        # Until validate() knows the schema: the first equality is the partition.
        for name, op, values in conditions:
            if op == "EQ" and self.partition_name is None:
                self.partition_name, self.partition_value = name, values[0]
            else:
                self.sort_name, self.sort_op, self.sort_values = name, op, values

    def validate(self, hash_key: str, range_key: str | None, attribute_types: dict[str, str]) -> None:
        """Check the condition against a key schema and fix which condition is
        the partition and which the sort condition."""
        _check_nested(self.conditions, (hash_key,))
        if self.legacy and len(self.conditions) > 2:
            raise ValidationException("Conditions can be of length 1 or 2 only")
        by_name = {name: (op, values) for name, op, values in self.conditions}
        key_count = 1 if range_key is None else 2
        if len(self.conditions) > key_count:
            raise ValidationException(
                f"The number of query conditions ({len(self.conditions)}) exceeds the number of key "
                f"attributes defined in the schema ({key_count})"
            )
        if hash_key not in by_name:
            raise ValidationException(f"Query condition missed key schema element: {hash_key}")
        for name in by_name:
            if name != hash_key and name != range_key:
                raise ValidationException(
                    f"Query condition missed key schema element: {range_key}"
                    if range_key is not None
                    else "Query key condition not supported"
                )
        op, values = by_name[hash_key]
        if op != "EQ":
            raise ValidationException("Query key condition not supported")
        for name in (hash_key, range_key):
            for value in by_name.get(name, (None, ()))[1]:
                check_key_value_not_empty(name, value)
        for name, (op, values) in by_name.items():
            wanted = attribute_types.get(name)
            for value in values:
                if wanted is not None and wanted not in value:
                    raise ValidationException(
                        INVALID_PARAMETERS + "Condition parameter type does not match schema type"
                    )
        self.partition_name, self.partition_value = hash_key, by_name[hash_key][1][0]
        if range_key is not None and range_key in by_name:
            self.sort_name = range_key
            self.sort_op, self.sort_values = by_name[range_key]
        else:
            self.sort_name, self.sort_op, self.sort_values = None, None, []

    def validate_multi(self, hash_keys: tuple, range_keys: tuple, attribute_types: dict[str, str]) -> None:
        """``validate`` for an index with multi-attribute keys: equality on
        every partition attribute; on the sort attributes, conditions on a
        prefix of them in order, all equalities but the last, which may be
        any of the sort conditions.  Afterwards ``partition_value`` is the
        list of the partition attributes' values, ``sort_prefix`` the values
        the leading sort attributes equal, and ``sort_name``/``sort_op``/
        ``sort_values`` the last sort condition (None if there is none)."""
        _check_nested(self.conditions, hash_keys)
        by_name = {name: (op, values) for name, op, values in self.conditions}
        key_count = len(hash_keys) + len(range_keys)
        if len(self.conditions) > key_count:
            raise ValidationException(
                f"The number of query conditions ({len(self.conditions)}) exceeds the number of key "
                f"attributes defined in the schema ({key_count})"
            )
        for name in hash_keys:
            if name not in by_name:
                raise ValidationException(f"Query condition missed key schema element: {name}")
            if by_name[name][0] != "EQ":
                raise ValidationException("Query key condition not supported")
        used = [name for name in range_keys if name in by_name]
        for name in by_name:
            if name not in hash_keys and name not in range_keys:
                missing = next((n for n in range_keys if n not in by_name), None)
                raise ValidationException(
                    f"Query condition missed key schema element: {missing}" if missing is not None
                    else "Query key condition not supported"
                )
        if used != list(range_keys[:len(used)]):  # a sort attribute skipped
            missing = next(n for n in range_keys if n not in by_name)
            raise ValidationException(f"Query condition missed key schema element: {missing}")
        if any(by_name[name][0] != "EQ" for name in used[:-1]):  # a range condition before the last
            raise ValidationException("Query key condition not supported")
        for name, (op, values) in by_name.items():
            wanted = attribute_types.get(name)
            for value in values:
                check_key_value_not_empty(name, value)
                if wanted is not None and wanted not in value:
                    raise ValidationException(
                        INVALID_PARAMETERS + "Condition parameter type does not match schema type"
                    )
        self.partition_name = hash_keys[0]
        self.partition_value = [by_name[name][1][0] for name in hash_keys]
        self.sort_prefix = [by_name[name][1][0] for name in used[:-1]]
        if used:
            self.sort_name = used[-1]
            self.sort_op, self.sort_values = by_name[used[-1]]
        else:
            self.sort_name, self.sort_op, self.sort_values = None, None, []

    def start_key_fault(self, start_key: dict) -> str | None:
        """Why DynamoDB refuses ``start_key`` (an ExclusiveStartKey, checked
        against the key schema) as the start of this Query, or None.

        Without a sort condition the start key must be in the partition
        read.  With one its sort key value must satisfy it, and then a start
        key of another partition gets DynamoDB's odd "at most one row"."""
        in_partition = start_key.get(self.partition_name) == self.partition_value
        if self.sort_op is None:
            return None if in_partition else START_KEY_OUTSIDE
        if not self._sort_matches(start_key.get(self.sort_name)):
            return START_KEY_NOT_IN_RANGE
        return None if in_partition else START_KEY_ONE_ROW

    def _sort_matches(self, value: dict | None) -> bool:
        if self.sort_op == "BEGINS_WITH":
            return begins_with(value, self.sort_values[0])
        key = ordering_key(value)
        bounds = [ordering_key(v) for v in self.sort_values]
        if key is None or any(b is None or b[0] != key[0] for b in bounds):
            return False
        at, low = key[1], bounds[0][1]
        if self.sort_op == "EQ":
            return at == low
        if self.sort_op == "LT":
            return at < low
        if self.sort_op == "LE":
            return at <= low
        if self.sort_op == "GT":
            return at > low
        if self.sort_op == "GE":
            return at >= low
        return low <= at <= bounds[1][1]  # BETWEEN


def _check_nested(conditions, hash_keys) -> None:
    """Refuse a condition on a nested path.  Under the sort key, or any
    attribute that is no partition key, DynamoDB says "KeyConditionExpressions
    cannot have conditions on nested attributes" (the nubo-db/dynamodb-
    conformance suite's 2026 recording of ``#sk.foo = :v``); under the
    partition key Shoal keeps the key-scalar words of filters and projections
    (no recording of that case)."""
    for name, _, _ in conditions:
        if type(name) is _Nested:
            if name in hash_keys:
                raise ValidationException(
                    "Key attributes must be scalars; list random access '[]' and map lookup '.' are not "
                    f"allowed: Key: {name}"
                )
            raise ValidationException("KeyConditionExpressions cannot have conditions on nested attributes")


# DynamoDB's words as dynalite's suite recorded them against DynamoDB (DynamoDB
# Local says "does not match the range key predicate" for all three).
START_KEY_OUTSIDE = "The provided starting key is outside query boundaries based on provided conditions"
START_KEY_NOT_IN_RANGE = "The provided starting key does not match the range key predicate"
START_KEY_ONE_ROW = "The query can return at most one row and cannot be restarted"


def bind_key_condition(node, ctx) -> KeyCondition:
    binder = Binder(ctx, KIND)
    binder.condition(node)  # the checks every condition gets (types, placeholders...)
    conditions = [_simple_condition(binder, part) for part in _conjuncts(node)]
    names = [c[0] for c in conditions]
    if len(set(names)) != len(names):
        raise ValidationException(
            "Invalid KeyConditionExpression: KeyConditionExpressions must only contain one condition per key")
    return KeyCondition(conditions)  # their number is checked against the key schema by validate()


def _conjuncts(node) -> list:
    node = ast.unparen(node)
    if type(node) is ast.And:
        parts = []
        for operand in node.operands:
            parts.extend(_conjuncts(operand))
        return parts
    return [node]


def _simple_condition(binder: Binder, node) -> tuple[str, str, list]:
    node_type = type(node)
    if node_type is ast.Or:
        raise _invalid_operator("OR")
    if node_type is ast.Not:
        raise _invalid_operator("NOT")
    if node_type is ast.In:
        raise _invalid_operator("IN")
    if node_type is ast.Compare:
        if node.op == "<>":
            raise _invalid_operator("<>")
        left, right = ast.unparen(node.left), ast.unparen(node.right)
        op = _OPERATORS[node.op]
        if type(left) is ast.Value:
            if type(right) is ast.Value:
                raise ValidationException("Invalid condition in KeyConditionExpression: No key attribute specified")
            left, right = right, left
            op = _MIRRORED[op]
        return _key_name(binder, left), op, [_key_value(binder, right)]
    if node_type is ast.Between:
        name = _key_name(binder, ast.unparen(node.operand))
        return name, "BETWEEN", [_key_value(binder, node.low), _key_value(binder, node.high)]
    if node.name in _NOT_ALLOWED_FUNCTIONS:
        raise _invalid_operator(node.name)
    # begins_with (size is rejected as a condition before binding)
    if type(ast.unparen(node.args[0])) is ast.Value:
        raise ValidationException(
            "Invalid condition in KeyConditionExpression: begins_with operator must have the key attribute "
            "as its first operand"
        )
    name = _key_name(binder, ast.unparen(node.args[0]))
    return name, "BEGINS_WITH", [_key_value(binder, node.args[1])]


_MIRRORED = {"EQ": "EQ", "LT": "GT", "LE": "GE", "GT": "LT", "GE": "LE"}


def _key_name(binder: Binder, node) -> str:
    if type(node) is ast.Function:
        raise ValidationException("KeyConditionExpressions cannot contain nested operations")
    if type(node) is not ast.Path:
        raise ValidationException("Query key condition not supported")
    path = binder.resolve_path(node)
    if len(path) > 1:
        return _Nested(path[0])  # refused by validate(), in words that depend on the key schema
    return path[0]


class _Nested(str):
    """The top attribute of a nested path (``a.b``, ``a[0]``) in a key condition."""


def _key_value(binder: Binder, node) -> dict:
    node = ast.unparen(node)
    if type(node) is ast.Function:
        raise ValidationException("KeyConditionExpressions cannot contain nested operations")
    if type(node) is not ast.Value:
        raise ValidationException("Query key condition not supported")
    return binder.value(node)
