"""ProjectionExpression: which attributes (or parts of them) to return.

Nested paths keep DynamoDB's shape: ``a.b[2].c`` returns
``{"a": {"M": {"b": {"L": [{"M": {"c": ...}}]}}}}``; the elements selected from one
list come back in index order, compacted; parts that do not exist are left out,
and so are maps and lists that end up empty.
"""

from __future__ import annotations

from . import ast
from .evaluator import path_getter
from .paths import resolve_paths

KIND = "ProjectionExpression"


class Projection:
    """A bound projection; ``apply`` returns a new dict sharing the selected
    attribute values with the item (they are not copied)."""

    __slots__ = ("paths", "top_level_names", "nested_names", "_trie", "_flat")

    def __init__(self, paths: list[tuple]):
        self.paths = paths
        self.top_level_names = {p[0] for p in paths}
        self._flat = all(len(p) == 1 for p in paths)
        self.nested_names = () if self._flat else tuple(p[0] for p in paths if len(p) > 1)
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


class SelectList:
    """The projection list of a PartiQL SELECT, which shapes items unlike a
    ProjectionExpression: each path's value comes back under the last name
    it reaches before a list index, with that first index (``SELECT
    m.nested`` gives ``{"nested": ...}``, ``SELECT l[1].b`` gives ``{"l[1]":
    {"M": {"b": ...}}}``, ``SELECT m.l[0]`` gives ``{"l[0]": ...}``), the rest
    of the path projecting that value as a ProjectionExpression would.  This
    is DynamoDB Local's shape (DynamoDB's documentation shows none); paths
    that reach the same value are merged, and a later path whose name
    another value already took replaces it."""

    __slots__ = ("groups",)

    def __init__(self, paths: list[tuple]):
        groups: dict = {}  # the path to the value -> (its name, the paths within it)
        for path in paths:
            name, end = path[0], 1
            for element in path[1:]:
                end += 1
                if type(element) is int:
                    name = f"{name}[{element}]"
                    break
                name = element
            anchor = tuple(path[:end])
            group = groups.get(anchor)
            if group is None:
                group = groups[anchor] = (name, [])
            group[1].append(tuple(path[end:]))
        self.groups = [(name, path_getter(anchor), None if () in rests else build_trie(rests))
                       for anchor, (name, rests) in groups.items()]

    def apply(self, item: dict) -> dict:
        out = {}
        for name, get, trie in self.groups:
            value = get(item)
            if value is not None and trie is not None:
                value = _project_value(value, trie)
            if value is not None:
                out[name] = value
        return out
