"""Plain nodes of a parsed PartiQL statement.

Values are kept as nodes (not attribute values) until Parameters are bound, so
a parsed statement can be cached by its text and reused with other Parameters.
"""

from __future__ import annotations

from dataclasses import dataclass


# ---------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant attribute value in wire form, e.g. {"S": "x"}."""

    value: tuple  # (type, payload) so that the node stays hashable

    def av(self) -> dict:
        return {self.value[0]: self.value[1]}


@dataclass(frozen=True, slots=True)
class Param:
    """The ``index``-th ``?`` of the statement (0-based)."""

    index: int


@dataclass(frozen=True, slots=True)
class ListValue:
    items: tuple


@dataclass(frozen=True, slots=True)
class MapValue:
    pairs: tuple  # ((name, value node), ...)


@dataclass(frozen=True, slots=True)
class SetValue:
    items: tuple


VALUE_NODES = (Literal, Param, ListValue, MapValue, SetValue)


# ---------------------------------------------------------------- operands and conditions


@dataclass(frozen=True, slots=True)
class Path:
    """A document path: attribute names (str) and list indexes (int)."""

    elements: tuple


@dataclass(frozen=True, slots=True)
class Call:
    """A function call, name lower-cased: begins_with, contains, size, ..."""

    name: str
    args: tuple


@dataclass(frozen=True, slots=True)
class Arithmetic:
    op: str  # "+" or "-"
    left: object
    right: object


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # =, <>, <, <=, >, >=
    left: object
    right: object


@dataclass(frozen=True, slots=True)
class Between:
    operand: object
    low: object
    high: object


@dataclass(frozen=True, slots=True)
class In:
    operand: object
    options: tuple


@dataclass(frozen=True, slots=True)
class IsMissing:
    """``path IS [NOT] MISSING`` (and IS [NOT] NULL, which tests for the NULL type)."""

    path: Path
    negated: bool
    null: bool = False


@dataclass(frozen=True, slots=True)
class IsType:
    """``path IS [NOT] <type>``, the type as DynamoDB's (BOOL, S, L, M, B, NULL)."""

    path: Path
    negated: bool
    type: str


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple


@dataclass(frozen=True, slots=True)
class Not:
    operand: object


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Select:
    table: str
    index: str | None
    projection: tuple | None  # Paths; None for *
    where: object | None
    order_by: tuple | None  # ((Path, descending), ...)
    params: int


@dataclass(frozen=True, slots=True)
class Insert:
    table: str
    item: MapValue
    params: int


@dataclass(frozen=True, slots=True)
class SetClause:
    path: Path
    value: object


@dataclass(frozen=True, slots=True)
class RemoveClause:
    path: Path


@dataclass(frozen=True, slots=True)
class Update:
    table: str
    clauses: tuple  # SetClause / RemoveClause, in statement order
    where: object
    returning: str | None  # ALL_OLD, UPDATED_OLD, ALL_NEW, UPDATED_NEW
    params: int


@dataclass(frozen=True, slots=True)
class Delete:
    table: str
    where: object
    returning: str | None
    params: int


@dataclass(frozen=True, slots=True)
class Exists:
    """``[NOT] EXISTS(SELECT ...)``: a condition check in ExecuteTransaction."""

    select: Select
    negated: bool
    params: int
