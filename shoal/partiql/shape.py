"""The items a SELECT with a list of paths returns.

A SELECT's paths are read as a ProjectionExpression of the same paths would
read them, and each value comes back under the name its path ends with: ``m.x``
as ``x``, ``l[0].b`` as ``b``, ``m.l[0]`` as ``l[0]`` (the last attribute name
and the list indexes after it: the name ``Duplicate identifiers in select
clause`` speaks of).

DynamoDB Local finds that value in the projected item, where the elements a
projection keeps of a list are renumbered from 0.  A path whose every list
index keeps its number there (``l[0]``; ``l[0]`` and ``l[1]`` together) is
found and named so; a path with an index that moves (``l[1]`` alone becomes
element 0) is not, and its value comes back as ``shoal.expressions.projection.
SelectList`` shapes it, under the name before its first index with that index
(``l[1].b`` as ``{"l[1]": {"M": {"b": ...}}}``).  Shoal answers both as DynamoDB
Local does (bench/conformance_partiql.py probed both forms; DynamoDB's
documentation shows neither).
"""

from __future__ import annotations

from shoal.expressions.evaluator import path_getter
from shoal.expressions.projection import SelectList


def identifier(path: tuple) -> str:
    """The name a path of a SELECT list is known by: its last attribute name
    and the list indexes after it."""
    last = max(i for i, element in enumerate(path) if type(element) is str)
    return path[last] + "".join(f"[{index}]" for index in path[last + 1:])


def _kept_in_place(paths: list[tuple]) -> list[bool]:
    """For each path, whether every list index on it keeps its number once a
    projection of all ``paths`` renumbers each list's kept elements from 0."""
    chosen: dict[tuple, set] = {}  # a list's path -> the indexes the paths choose of it
    for path in paths:
        for i, element in enumerate(path):
            if type(element) is int:
                chosen.setdefault(path[:i], set()).add(element)
    ranks = {prefix: {index: rank for rank, index in enumerate(sorted(indexes))}
             for prefix, indexes in chosen.items()}
    return [all(ranks[path[:i]][element] == element for i, element in enumerate(path) if type(element) is int)
            for path in paths]


class SelectShape:
    """Shapes items for a SELECT's list of paths (tuples of names and indexes)."""

    __slots__ = ("named", "fallback")

    def __init__(self, paths: list[tuple]) -> None:
        kept = _kept_in_place(paths)
        self.named = [(identifier(path), path_getter(path)) for path, ok in zip(paths, kept) if ok]
        rest = [path for path, ok in zip(paths, kept) if not ok]
        self.fallback = SelectList(rest) if rest else None

    def apply(self, item: dict) -> dict:
        out = {} if self.fallback is None else self.fallback.apply(item)
        for name, get in self.named:
            value = get(item)
            if value is not None:
                out[name] = value
        return out
