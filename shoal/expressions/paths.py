"""Checks over the set of document paths of one expression.

An UpdateExpression or ProjectionExpression may not name two paths where one is
a prefix of the other ("overlap"), nor two paths that use the same container
both as a map and as a list ("conflict").  Paths go into a trie in the order
written, so the check is linear in the total length of the paths.

Which pair DynamoDB reports when several are wrong follows from how it builds
its tree, reproduced here: each node remembers the latest path through it; a
path that ends on an existing node overlaps that latest path; a path that
continues a container with the other kind of step (name vs index) conflicts with
the latest path that took the other kind; a path that runs through the end of an
earlier one is reported only after all paths are in (earlier path first).
"""

from __future__ import annotations

from shoal.errors import ValidationException

from .semantics import format_path


class _Node:
    __slots__ = ("children", "end", "latest", "name_child", "index_child")

    def __init__(self):
        self.children = {}
        self.end = None          # the path that ends here
        self.latest = None       # the latest path that passed through or ended here
        self.name_child = None   # the latest path that continued with a name
        self.index_child = None  # the latest path that continued with a list index


def resolve_paths(nodes, resolve, kind: str) -> list:
    """Resolve the document paths of one expression (``resolve`` raises for
    an undefined name) and check them together (``path_error``).

    When something is wrong, the error reported is the one DynamoDB Local
    reports: the paths are taken from the last to the first, and the first
    that has an undefined name, or that overlaps or conflicts with a path
    after it, gives the error.  The common case costs one pass.
    """
    try:
        paths = [resolve(node) for node in nodes]
    except ValidationException:
        paths = None
    if paths is not None and path_error(paths, kind) is None:
        return paths
    resolved = [None] * len(nodes)
    for position in range(len(nodes) - 1, -1, -1):
        resolved[position] = resolve(nodes[position])
        error = path_error(resolved[position:], kind)
        if error is not None:
            raise error
    raise AssertionError("a path error that no suffix of the paths has")


def path_error(paths, kind: str) -> ValidationException | None:
    """The overlap/conflict error DynamoDB reports for these paths, or None."""
    root = _Node()
    passed_ends = []
    for path in paths:
        node = root
        for element in path:
            if node.end is not None:
                passed_ends.append((node.end, path))
            is_index = type(element) is int
            other = node.name_child if is_index else node.index_child
            if other is not None:
                return ValidationException(
                    f"Invalid {kind}: Two document paths conflict with each other; must remove or rewrite "
                    f"one of these paths; path one: {format_path(other)}, path two: {format_path(path)}"
                )
            if is_index:
                node.index_child = path
            else:
                node.name_child = path
            child = node.children.get(element)
            if child is None:
                child = node.children[element] = _Node()
            previous, child.latest = child.latest, path
            node = child
        if node.end is not None or node.children:
            return _overlap(kind, previous if node.children else node.end, path)
        node.end = path
    if passed_ends:
        return _overlap(kind, *passed_ends[0])
    return None


def _overlap(kind: str, one, two) -> ValidationException:
    return ValidationException(
        f"Invalid {kind}: Two document paths overlap with each other; must remove or rewrite one of "
        f"these paths; path one: {format_path(one)}, path two: {format_path(two)}"
    )
