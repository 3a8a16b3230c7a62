"""The tokenizer shared by every DynamoDB expression language.

DynamoDB lexes all its expression kinds with one vocabulary: the keywords AND, OR,
NOT, BETWEEN, IN, SET, REMOVE, ADD and DELETE (any letter case) are keywords
everywhere, so ``set = :v`` is a syntax error in a condition, not a reserved-word
error.  Names start with a letter; ``#name`` and ``:value`` placeholders take letters,
digits and underscores.  A list index is ``0`` or a number without leading zeros, so
``00`` lexes as two tokens.  Any other character becomes a one-character token that
the parser then rejects, which is what makes DynamoDB's "Syntax error; token: ..."
messages name it.

Tokens are tuples ``(kind, text, start, end)`` with offsets into the expression, so a
syntax error can quote the text around the offending token as DynamoDB does.
"""

from __future__ import annotations

import re

from shoal.errors import ValidationException

KEYWORDS = frozenset({"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"})

# Kinds: NAME, KEYWORD, NAMEREF (#x), VALUEREF (:x), NUMBER, OP (punctuation and
# comparators), UNKNOWN (anything else), EOF.
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<name>[A-Za-z][A-Za-z0-9_]*)
  | (?P<nameref>\#[A-Za-z0-9_]+)
  | (?P<valueref>:[A-Za-z0-9_]+)
  | (?P<number>0|[1-9][0-9]*)
  | (?P<op><>|<=|>=|[=<>()\[\].,+\-])
  | (?P<unknown>.)
    """,
    re.VERBOSE | re.DOTALL,
)

EOF_TEXT = "<EOF>"


def tokenize(text: str) -> list[tuple[str, str, int, int]]:
    """Split expression text into tokens, ending with an EOF token."""
    tokens = []
    append = tokens.append
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup
        if kind == "ws":
            continue
        value = match.group()
        if kind == "name":
            kind = "KEYWORD" if value.upper() in KEYWORDS else "NAME"
        else:
            kind = kind.upper()
        append((kind, value, match.start(), match.end()))
    end = len(text)
    append(("EOF", EOF_TEXT, end, end))
    return tokens


def syntax_error(kind: str, text: str, tokens: list, index: int) -> ValidationException:
    """DynamoDB's syntax error for the token at ``index``.

    "near" quotes the expression text from the start of the token before the
    offending one to the end of the token after it (clipped to the text).
    """
    token = tokens[index]
    start = tokens[index - 1][2] if index > 0 else 0
    end = tokens[index + 1][3] if index + 1 < len(tokens) else token[3]
    near = text[start:end]
    return ValidationException(
        f'Invalid {kind}: Syntax error; token: "{token[1]}", near: "{near}"'
    )
