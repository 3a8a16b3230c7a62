"""PartiQL for DynamoDB: the subset DynamoDB accepts in ExecuteStatement,
BatchExecuteStatement and ExecuteTransaction.

    lexer.py      text -> tokens
    parser.py     tokens -> statement AST (ast.py); syntax errors only; cached by text
    translate.py  AST + Parameters -> DynamoDB expression text, names and values

Execution lives in ``shoal.api.partiql``, which turns each statement into the
existing item, query and transaction operations.  Nothing here knows storage.
"""

from __future__ import annotations

from .parser import parse_statement

__all__ = ["parse_statement"]
