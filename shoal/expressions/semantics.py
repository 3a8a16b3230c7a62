"""Semantic checks that depend on the expression text alone (pass 1).

They run once per distinct text (the result is cached with the parse), in the
order DynamoDB applies them, after a successful parse:

1. update only: a section (SET, REMOVE, ADD, DELETE) used twice;
2. more than 300 operators;
3. in source order: redundant parentheses, too deeply nested paths, list indexes
   beyond 2^31-1, reserved words used as names, unknown functions and functions
   used where they are not allowed.

Checks that need ExpressionAttributeNames/Values (undefined placeholders, operand
types of values, BETWEEN bounds...) happen when the parse is bound to a request
(``binding.py``).
"""

from __future__ import annotations

from shoal.errors import ValidationException

from . import ast
from .reserved import RESERVED_WORDS

MAX_OPERATORS = 300
MAX_PATH_DEPTH = 32
MAX_LIST_INDEX = 2**31 - 1
MAX_IN_OPERANDS = 100

CONDITION_FUNCTIONS = frozenset({"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"})
OPERAND_FUNCTIONS = frozenset({"size"})
UPDATE_FUNCTIONS = frozenset({"if_not_exists", "list_append"})

# Positions a node can appear in (decides which functions are allowed).
# NO_LIST_APPEND: an argument of list_append or if_not_exists, where
# if_not_exists may nest (as a first argument, binding then asks for a path)
# and list_append may not.
COND, OPERAND, UPDATE_VALUE, NO_LIST_APPEND = range(4)


def check(node, kind: str, mode: str) -> None:
    """Run the text-only checks on a parsed expression.

    ``mode`` is "condition" (also filter and key condition), "update" or
    "projection"; ``kind`` names the expression in messages.
    """
    if mode == "update":
        _check_sections(node, kind)
    _check_operator_count(node, kind)
    _walk(node, kind, mode)


def _check_sections(node: ast.UpdateExpr, kind: str) -> None:
    seen = set()
    for section in node.sections:
        if section in seen:
            raise ValidationException(
                f'Invalid {kind}: The "{section}" section can only be used once in an update expression;'
            )
        seen.add(section)


_COUNTED = frozenset({ast.Compare, ast.Between, ast.In, ast.Not, ast.Function, ast.Arithmetic})


def _check_operator_count(node, kind: str) -> None:
    """Iterative (no recursion): runs before anything walks the tree recursively."""
    count = 0
    stack = [node]
    pop, extend = stack.pop, stack.extend
    while stack:
        current = pop()
        node_type = type(current)
        if node_type in _COUNTED:
            count += 1
        elif node_type is ast.And or node_type is ast.Or:
            count += len(current.operands) - 1
        elif node_type is ast.Path or node_type is ast.Value:
            continue
        if count > MAX_OPERATORS:
            raise ValidationException(
                f"Invalid {kind}: The expression contains too many operators; operator count: {MAX_OPERATORS + 1}"
            )
        extend(_children(current))


def _children(node) -> tuple:
    node_type = type(node)
    if node_type is ast.Compare or node_type is ast.Arithmetic:
        return (node.left, node.right)
    if node_type is ast.Between:
        return (node.operand, node.low, node.high)
    if node_type is ast.In:
        return (node.operand,) + node.options
    if node_type is ast.And or node_type is ast.Or:
        return node.operands
    if node_type is ast.Not:
        return (node.operand,)
    if node_type is ast.Paren:
        return (node.inner,)
    if node_type is ast.Function:
        return node.args
    if node_type is ast.UpdateExpr:
        return node.actions
    if node_type is ast.ProjectionExpr:
        return node.paths
    if node_type is ast.SetAction:
        return (node.path, node.value)
    if node_type is ast.RemoveAction:
        return (node.path,)
    if node_type is ast.AddAction or node_type is ast.DeleteAction:
        return (node.path, node.value)
    return ()


def _walk(root, kind: str, mode: str) -> None:
    """Pre-order walk in source order with an explicit stack."""
    start = UPDATE_VALUE if mode == "update" else COND
    stack = [(root, start)]
    while stack:
        node, position = stack.pop()
        node_type = type(node)
        if node_type is ast.Path:
            check_path(node, kind)
            continue
        if node_type is ast.Value:
            continue
        if node_type is ast.Paren and type(node.inner) is ast.Paren:
            raise ValidationException(f"Invalid {kind}: The expression has redundant parentheses;")
        if node_type is ast.In and len(node.options) > MAX_IN_OPERANDS:
            raise ValidationException(
                f"Invalid {kind}: The IN operator is provided with too many operands; "
                f"number of operands: {len(node.options)}"
            )
        if node_type is ast.Function:
            _check_function(node, kind, mode, position)
            if node.name in UPDATE_FUNCTIONS:
                child_position = NO_LIST_APPEND
            else:
                child_position = OPERAND
            children = [(c, child_position) for c in node.args]
        else:
            child_position = _child_position(node_type, position)
            children = [(c, child_position) for c in _children(node)]
        stack.extend(reversed(children))


def _child_position(node_type, position: int) -> int:
    if node_type in (ast.And, ast.Or, ast.Not):
        return COND
    if node_type is ast.Paren:
        return position
    if node_type in (ast.Compare, ast.Between, ast.In):
        return OPERAND
    return position  # Arithmetic and actions pass their position down


def check_path(path: ast.Path, kind: str) -> None:
    """Nesting depth, list index range and reserved words of one path."""
    elements = path.elements
    if len(elements) > MAX_PATH_DEPTH:
        raise ValidationException(
            f"Invalid {kind}: The document path has too many nesting levels; nesting levels: {len(elements)}"
        )
    for element in elements:
        if type(element) is int:
            if element > MAX_LIST_INDEX:
                raise ValidationException(
                    f"Invalid {kind}: List index is not within the allowable range; index: [{element}]"
                )
        elif element[0] != "#" and element.upper() in RESERVED_WORDS:
            raise ValidationException(
                f"Invalid {kind}: Attribute name is a reserved keyword; reserved keyword: {element}"
            )


def _check_function(node: ast.Function, kind: str, mode: str, position: int) -> None:
    name = node.name
    if mode == "update":
        if name in UPDATE_FUNCTIONS:
            if position == NO_LIST_APPEND and name == "list_append":
                raise _misused(kind, name)
            return
        if name in CONDITION_FUNCTIONS or name in OPERAND_FUNCTIONS:
            raise ValidationException(
                f"Invalid {kind}: The function is not allowed in an update expression; function: {name}"
            )
        raise ValidationException(f"Invalid {kind}: Invalid function name; function: {name}")
    if name in CONDITION_FUNCTIONS:
        if position != COND:
            raise _misused(kind, name)
        return
    if name in OPERAND_FUNCTIONS:
        if position != OPERAND:
            raise _misused(kind, name)
        return
    if name in UPDATE_FUNCTIONS:
        raise ValidationException(
            f"Invalid {kind}: The function is not allowed in a condition expression; function: {name}"
        )
    raise ValidationException(f"Invalid {kind}: Invalid function name; function: {name}")


def _misused(kind: str, name: str) -> ValidationException:
    return ValidationException(
        f"Invalid {kind}: The function is not allowed to be used this way in an expression; function: {name}"
    )


def format_path(elements) -> str:
    """A resolved path as DynamoDB prints it: ``[a, b, [0]]``."""
    return "[" + ", ".join(f"[{e}]" if type(e) is int else e for e in elements) + "]"
