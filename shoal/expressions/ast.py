"""Plain AST nodes of the expression languages.

The parser builds these from text alone; they hold placeholders (``#n``, ``:v``)
unresolved so that a parse can be cached by expression text and bound to each
request's ExpressionAttributeNames/Values afterwards.  Nodes compare by value, which
the property tests use (print an AST, parse it back, compare).
"""

from __future__ import annotations


class Node:
    """Base: value equality and a readable repr over ``__slots__``."""

    __slots__ = ()

    def _fields(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        return type(self) is type(other) and self._fields() == other._fields()

    def __hash__(self):
        return hash((type(self).__name__, self._fields()))

    def __repr__(self):
        args = ", ".join(repr(f) for f in self._fields())
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------- operands


class Path(Node):
    """A document path: ``elements`` are names (``"a"``), name placeholders
    (``"#n"``, kept with their ``#``) and list indexes (``int``)."""

    __slots__ = ("elements",)

    def __init__(self, elements: tuple):
        self.elements = elements


class Value(Node):
    """An ExpressionAttributeValues placeholder such as ``:v``."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class Function(Node):
    """A function call; ``name`` as written (names are case-sensitive)."""

    __slots__ = ("name", "args")

    def __init__(self, name: str, args: tuple):
        self.name = name
        self.args = args


class Arithmetic(Node):
    """``left + right`` or ``left - right`` in an update's SET."""

    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left, right):
        self.op = op
        self.left = left
        self.right = right


# ---------------------------------------------------------------- conditions


class Compare(Node):
    """``left op right`` with op one of = <> < <= > >=."""

    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left, right):
        self.op = op
        self.left = left
        self.right = right


class Between(Node):
    __slots__ = ("operand", "low", "high")

    def __init__(self, operand, low, high):
        self.operand = operand
        self.low = low
        self.high = high


class In(Node):
    __slots__ = ("operand", "options")

    def __init__(self, operand, options: tuple):
        self.operand = operand
        self.options = options


class And(Node):
    """``a AND b AND c``: a chain of one precedence level kept flat (n-ary), so
    that long chains do not make a deep tree."""

    __slots__ = ("operands",)

    def __init__(self, operands: tuple):
        self.operands = operands


class Or(Node):
    __slots__ = ("operands",)

    def __init__(self, operands: tuple):
        self.operands = operands


class Not(Node):
    __slots__ = ("operand",)

    def __init__(self, operand):
        self.operand = operand


class Paren(Node):
    """Parentheses as written; kept so that semantic checks can reject
    DynamoDB's "redundant parentheses" (a pair directly inside another)."""

    __slots__ = ("inner",)

    def __init__(self, inner):
        self.inner = inner


# ---------------------------------------------------------------- update


class SetAction(Node):
    __slots__ = ("path", "value")

    def __init__(self, path: Path, value):
        self.path = path
        self.value = value


class RemoveAction(Node):
    __slots__ = ("path",)

    def __init__(self, path: Path):
        self.path = path


class AddAction(Node):
    __slots__ = ("path", "value")

    def __init__(self, path: Path, value: Value):
        self.path = path
        self.value = value


class DeleteAction(Node):
    __slots__ = ("path", "value")

    def __init__(self, path: Path, value: Value):
        self.path = path
        self.value = value


class UpdateExpr(Node):
    """All actions in the order written (sections flattened); ``sections`` lists
    the section keywords (upper case) in the order they appear, repeats included,
    so that the semantic pass can reject a repeated section."""

    __slots__ = ("actions", "sections")

    def __init__(self, actions: tuple, sections: tuple):
        self.actions = actions
        self.sections = sections


class ProjectionExpr(Node):
    __slots__ = ("paths",)

    def __init__(self, paths: tuple):
        self.paths = paths


def unparen(node):
    """The node inside any parentheses."""
    while type(node) is Paren:
        node = node.inner
    return node


def to_text(node) -> str:
    """Print a node back as expression text (used by tests and diagnostics)."""
    kind = type(node)
    if kind is Path:
        return _path_text(node.elements)
    if kind is Value:
        return node.name
    if kind is Function:
        return f"{node.name}({', '.join(to_text(a) for a in node.args)})"
    if kind is Arithmetic:
        return f"{to_text(node.left)} {node.op} {to_text(node.right)}"
    if kind is Compare:
        return f"{to_text(node.left)} {node.op} {to_text(node.right)}"
    if kind is Between:
        return f"{to_text(node.operand)} BETWEEN {to_text(node.low)} AND {to_text(node.high)}"
    if kind is In:
        return f"{to_text(node.operand)} IN ({', '.join(to_text(o) for o in node.options)})"
    if kind is And:
        return " AND ".join(to_text(o) for o in node.operands)
    if kind is Or:
        return " OR ".join(to_text(o) for o in node.operands)
    if kind is Not:
        return f"NOT {to_text(node.operand)}"
    if kind is Paren:
        return f"({to_text(node.inner)})"
    if kind is UpdateExpr:
        return _update_text(node)
    if kind is ProjectionExpr:
        return ", ".join(to_text(p) for p in node.paths)
    raise TypeError(kind)


def _path_text(elements) -> str:
    parts = []
    for element in elements:
        if type(element) is int:
            parts.append(f"[{element}]")
        elif parts:
            parts.append("." + element)
        else:
            parts.append(element)
    return "".join(parts)


_SECTION = {SetAction: "SET", RemoveAction: "REMOVE", AddAction: "ADD", DeleteAction: "DELETE"}


def _update_text(node: UpdateExpr) -> str:
    sections: dict[str, list[str]] = {}
    for action in node.actions:
        kind = type(action)
        if kind is SetAction:
            text = f"{to_text(action.path)} = {to_text(action.value)}"
        elif kind is RemoveAction:
            text = to_text(action.path)
        else:
            text = f"{to_text(action.path)} {to_text(action.value)}"
        sections.setdefault(_SECTION[kind], []).append(text)
    return " ".join(f"{name} {', '.join(items)}" for name, items in sections.items())
