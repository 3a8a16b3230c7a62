"""DynamoDB's expression languages: condition/filter, update, projection and key
condition expressions.

Each text goes through four stages, as in jmespath.py:

    tokens.py     text -> tokens
    parser.py     tokens -> AST (ast.py); syntax errors only
    semantics.py  text-only checks (reserved words, functions, limits)
    evaluator.py, update.py, projection.py, keycondition.py
                  binding to the request's ExpressionAttributeNames/Values
                  (placeholder and type checks), compiled to closures

The first three stages depend on the text alone and are cached by text
(``functools.lru_cache``); binding runs per request.  Nothing here knows about
storage or HTTP; items are wire-form dicts.
"""

from __future__ import annotations

from functools import lru_cache

from . import ast, semantics  # noqa: F401  (ast is part of the public surface)
from .context import ExpressionContext
from .evaluator import Binder, Condition
from .keycondition import KeyCondition, bind_key_condition
from .keys import check_scalar_keys
from .parser import Parser, check_text
from .projection import Projection, bind_projection, project
from .update import Update, bind_update

__all__ = [
    "ExpressionContext",
    "Condition",
    "Update",
    "Projection",
    "KeyCondition",
    "parse_condition",
    "parse_update",
    "parse_projection",
    "parse_key_condition",
    "project",
    "check_scalar_keys",
]

_CACHE_SIZE = 4096


def _parse(text: str, kind: str, rule: str):
    """Parse ``text`` with the parser rule ``rule`` and check it semantically."""
    check_text(text, kind)
    tree = getattr(Parser(text, kind), rule)()
    semantics.check(tree, kind, rule)
    return tree


@lru_cache(maxsize=_CACHE_SIZE)
def parse_condition_ast(text: str, kind: str):
    """Parse and check condition text (cached; raises ValidationException)."""
    return _parse(text, kind, "condition")


@lru_cache(maxsize=_CACHE_SIZE)
def parse_update_ast(text: str):
    return _parse(text, "UpdateExpression", "update")


@lru_cache(maxsize=_CACHE_SIZE)
def parse_projection_ast(text: str):
    return _parse(text, "ProjectionExpression", "projection")


def _context(ctx):
    return ctx if ctx is not None else ExpressionContext()


def parse_condition(text: str, ctx: ExpressionContext | None, kind: str = "ConditionExpression") -> Condition:
    """A ConditionExpression or FilterExpression bound to the request's names
    and values; ``kind`` appears in error messages."""
    tree = parse_condition_ast(text, kind)
    binder = Binder(_context(ctx), kind)
    return Condition(binder.condition(tree), frozenset(binder.top_level_names), tuple(binder.nested_names))


def parse_update(text: str, ctx: ExpressionContext | None) -> Update:
    """An UpdateExpression bound to the request's names and values."""
    return bind_update(parse_update_ast(text), _context(ctx))


def parse_projection(text: str, ctx: ExpressionContext | None) -> Projection:
    """A ProjectionExpression bound to the request's names."""
    tree = parse_projection_ast(text)
    return bind_projection(tree, Binder(_context(ctx), "ProjectionExpression"))


def parse_key_condition(text: str, ctx: ExpressionContext | None) -> KeyCondition:
    """A KeyConditionExpression bound to the request's names and values; call
    ``validate`` with the key schema before using it."""
    tree = parse_condition_ast(text, "KeyConditionExpression")
    return bind_key_condition(tree, _context(ctx))
