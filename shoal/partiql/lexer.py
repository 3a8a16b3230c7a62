"""PartiQL tokens.

Comments (``--`` to the end of the line, ``/* ... */``) are whitespace.
Kinds: ``str`` ('text', with '' for a quote), ``qid`` ("identifier", with ""
for a quote), ``id`` (bare identifier or keyword; keywords are matched without
regard to case), ``num``, ``?``, and punctuation (the token text itself).
"""

from __future__ import annotations

import re

from shoal.errors import ValidationException

MALFORMED = "Statement wasn't well formed, can't be processed: "

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*")
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<id>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<punct><<|>>|<>|!=|<=|>=|[*,.\[\](){}:;?=<>+\-])
    """,
    re.VERBOSE | re.DOTALL,
)


def malformed(text: str) -> ValidationException:
    """DynamoDB's answer to a statement it cannot parse (the statement itself
    when no more precise reason is known)."""
    return ValidationException(MALFORMED + text)


def _lexing_error(text: str, pos: int) -> ValidationException:
    """A character no token starts with: a ``#`` comment or an unclosed
    ``/*`` gets nothing after the colon, as in DynamoDB."""
    if text.startswith(("#", "/*"), pos):
        return malformed("")
    return malformed(text)


def tokenize(text: str) -> list[tuple[str, str]]:
    """The (kind, text) tokens of a statement, ending with ("eof", "")."""
    tokens = []
    pos = 0
    end = len(text)
    match = _TOKEN.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise _lexing_error(text, pos)
        kind = m.lastgroup
        pos = m.end()
        if kind == "ws":
            continue
        value = m.group()
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        elif kind == "qid":
            value = value[1:-1].replace('""', '"')
        elif kind == "punct":
            kind = value
        tokens.append((kind, value))
    tokens.append(("eof", ""))
    return tokens
