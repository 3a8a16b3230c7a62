"""ProjectionExpression: which attributes (or parts of them) to return.

Nested paths keep DynamoDB's shape: ``a.b[2].c`` returns
``{"a": {"M": {"b": {"L": [{"M": {"c": ...}}]}}}}``; the elements selected from one
list come back in index order, compacted; parts that do not exist are left out,
and so are maps and lists that end up empty.
"""

from __future__ import annotations

from . import ast
from .paths import resolve_paths

KIND = "ProjectionExpression"


class Projection:
    """A bound projection; ``apply`` returns a new dict sharing the selected
    attribute values with the item (they are not copied)."""

    __slots__ = ("paths", "top_level_names", "_trie", "_flat")

    def __init__(self, paths: list[tuple]):
        self.paths = paths
        self.top_level_names = {p[0] for p in paths}
        self._flat = all(len(p) == 1 for p in paths)
        self._trie = None if self._flat else build_trie(paths)

    def apply(self, item: dict) -> dict:
        """The projected item."""
        if self._flat:
            return {name: item[name] for name in self.top_level_names if name in item}
        return _project_map(item, self._trie)


def bind_projection(node: ast.ProjectionExpr, binder) -> Projection:
    return Projection(resolve_paths(node.paths, binder.resolve_path, KIND))


def build_trie(paths) -> dict:
    """Paths merged into nested dicts; None marks the end of a path."""
    trie: dict = {}
    for path in paths:
        node = trie
        for element in path[:-1]:
            child = node.get(element)
            if child is None:
                child = node[element] = {}
            node = child
        node[path[-1]] = None
    return trie


def project(item: dict, paths) -> dict:
    """Project ``item`` on a list of resolved paths (tuples of names and
    indexes), as for ReturnValues UPDATED_OLD / UPDATED_NEW."""
    return _project_map(item, build_trie(paths))


def _project_map(members: dict, trie: dict) -> dict:
    out = {}
    for key, sub in trie.items():
        if type(key) is int:
            continue
        value = members.get(key)
        if value is None:
            continue
        if sub is None:
            out[key] = value
        else:
            projected = _project_value(value, sub)
            if projected is not None:
                out[key] = projected
    return out


def _project_value(value: dict, trie: dict):
    members = value.get("M")
    if members is not None:
        projected = _project_map(members, trie)
        return {"M": projected} if projected else None
    elements = value.get("L")
    if elements is None:
        return None
    out = []
    for index in sorted(k for k in trie if type(k) is int):
        if index < len(elements):
            sub = trie[index]
            if sub is None:
                out.append(elements[index])
            else:
                projected = _project_value(elements[index], sub)
                if projected is not None:
                    out.append(projected)
    return {"L": out} if out else None
