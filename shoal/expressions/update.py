"""Binding and applying an UpdateExpression.

DynamoDB evaluates every SET operand against the item as it was before the
update, then applies SET, REMOVE, ADD and DELETE.  List elements are addressed
by their positions before the update: REMOVE and DELETE skip an element that
was not there then, ADD meets what was there then, and elements written past
a list's end, by SET or ADD, are appended in the order of their indexes.

When an update has several faults, the one reported is, in this order: a
target path that cannot be written ("document path ... invalid for update"),
an ADD or DELETE operand that does not suit the attribute it meets
("incorrect data type"), a SET operand that reads a missing attribute, and
only then a SET operand of the wrong type for its arithmetic or list_append.
That is how DynamoDB Local (AWS's own emulator) answered the cases tried;
its choice also depends on the attribute names (an internal map order), so
no fixed order matches it always: against it, random updates with several
faults disagreed 12-15 times in 400 with this order, 27-38 times with the
previous one (SET operands in the order written, then the targets).

The input item is never mutated: the new item shares every untouched attribute
with it and copies only the containers on the paths it writes (copy-on-write),
so an update of one counter in a large item costs little.
"""

from __future__ import annotations

from decimal import Decimal

from shoal.errors import ValidationException
from shoal.model.numbers import add, format_number, subtract
from shoal.model.values import sorted_set

from . import ast
from .evaluator import FUNCTION_ARITY, Binder, path_getter
from .paths import resolve_paths
from .values import JAVA_TYPE_NAMES, SET_TYPES, type_of

KIND = "UpdateExpression"


class _OperandTypeError(ValidationException):
    """An operand of the wrong type met while applying the update: reported
    only if no SET operand reads a missing attribute (see the module doc)."""


def _bad_type() -> ValidationException:
    return _OperandTypeError("An operand in the update expression has an incorrect data type")


def _missing_attribute() -> ValidationException:
    return ValidationException(
        "The provided expression refers to an attribute that does not exist in the item"
    )


def _invalid_path() -> ValidationException:
    return ValidationException("The document path provided in the update expression is invalid for update")


class Update:
    """A bound update: ``apply`` it to items; ``paths`` and ``top_level_names``
    say what it touches (for ReturnValues UPDATED_* and key-attribute checks)."""

    __slots__ = ("sets", "removes", "adds", "deletes", "paths", "top_level_names", "returned_paths",
                 "nested_names")

    def __init__(self, sets, removes, adds, deletes, paths):
        self.sets = sets          # [(path, value_fn)]
        self.removes = removes    # [path]
        self.adds = adds          # [(path, value)]
        self.deletes = deletes    # [(path, value)]
        self.paths = paths
        self.top_level_names = {p[0] for p in paths}
        self.returned_paths = _returned_paths(paths, removes)
        # The attributes its paths (targets and operands) reach into, in order.
        self.nested_names = tuple(p[0] for p in paths if len(p) > 1)

    def apply(self, item: dict, missing: bool = False) -> tuple[dict, bool]:
        """Return (new item, whether anything changed); ``item`` is untouched.

        Raises ValidationException for operands of the wrong type or paths that
        cannot be written, with DynamoDB's messages.  ``missing`` says that
        ``item`` stands for an item that does not exist (its key alone): there,
        DynamoDB lets REMOVE name any path, even ``a.b`` whose ``a`` is absent,
        and removes nothing.
        """
        removes = self.removes if not missing else ()
        for path in self.paths:
            if not missing or path not in self.removes:
                _existing_parent(item, path)
        # What ADD and DELETE meet is read from the item before the update:
        # an element SET appends to a list is not there for them.
        found = {}
        for path, value in self.adds + self.deletes:
            current = found[path] = _get(_existing_parent(item, path), path[-1])
            if current is not None and type_of(value) not in current:
                raise _bad_type()
        new_values = []
        type_error = None
        for path, compute in self.sets:
            try:
                new_values.append((path, compute(item)))
            except _OperandTypeError as exc:  # a missing attribute in a later operand comes first
                type_error = type_error or exc
        if type_error is not None:
            raise type_error
        new = dict(item)
        copied: set[int] = set()
        changed = False
        # Elements written past a list's end, by SET or by ADD, are appended
        # in the order of their indexes, not of the actions (``SET l[9] = :a
        # ADD l[5] :b`` appends b, then a), as DynamoDB Local does.
        if self.adds:
            writes = [(path, value, None) for path, value in new_values]
            writes += [(path, value, _ADD) for path, value in self.adds]
            writes.sort(key=_list_index)
            for path, value, action in writes:
                if action is None:
                    _put(_parent(new, path, copied), path[-1], value)
                    changed = True
                else:
                    changed = _add(_parent(new, path, copied), path[-1], value, found[path]) or changed
        else:
            new_values.sort(key=_list_index)
            for path, value in new_values:
                _put(_parent(new, path, copied), path[-1], value)
                changed = True
        if removes:
            # A list element is removed by its position before the update:
            # one that is not there then (appended by SET or ADD) stays.
            removes = [p for p in removes if type(p[-1]) is not int or _get(_existing_parent(item, p), p[-1])]
            changed = _remove_all(new, removes, copied) or changed
        for path, value in self.deletes:
            if found[path] is not None:
                changed = _delete(_parent(new, path, copied), path[-1], value) or changed
        return new, changed


def _list_index(action) -> int:
    """Sort key of a SET or ADD action: its list index, or -1 for a map member."""
    last = action[0][-1]
    return last if type(last) is int else -1


def _returned_paths(paths: list, removes: list) -> list:
    """The paths ReturnValues UPDATED_OLD / UPDATED_NEW report: the paths the
    actions name, as they are.  A removed list element is reported by its
    position, in the old item (the element removed) or in the new one (the
    element that moved into its place), as DynamoDB reports it."""
    unique = []
    for path in paths:
        if path not in unique:
            unique.append(path)
    return [p for p in unique if not any(q != p and p[: len(q)] == q for q in unique)]


# ---------------------------------------------------------------- binding


def bind_update(node: ast.UpdateExpr, ctx) -> Update:
    """Resolve placeholders, check operand types, check path overlaps.

    Errors are reported as DynamoDB Local (AWS's emulator) reports them: in
    two passes over the actions, each from the last action to the first --
    first the target paths (``resolve_paths``), then the operands (undefined
    names and values, operand types) -- and within one action left to right.
    """
    binder = Binder(ctx, KIND)
    actions = node.actions
    paths = resolve_paths([action.path for action in actions], binder.resolve_path, KIND)
    operands = [None] * len(actions)
    for position in range(len(actions) - 1, -1, -1):
        action = actions[position]
        action_type = type(action)
        if action_type is ast.SetAction:
            operands[position] = _bind_value(binder, action.value)
        elif action_type is ast.AddAction:
            operands[position] = _check_add_operand(binder.value(action.value))
        elif action_type is ast.DeleteAction:
            operands[position] = _check_delete_operand(binder.value(action.value))
    sets, removes, adds, deletes = [], [], [], []
    for action, path, operand in zip(actions, paths, operands):
        action_type = type(action)
        if action_type is ast.SetAction:
            sets.append((path, operand))
        elif action_type is ast.RemoveAction:
            removes.append(path)
        elif action_type is ast.AddAction:
            adds.append((path, operand))
        else:
            deletes.append((path, operand))
    update = Update(sets, removes, adds, deletes, paths)
    update.nested_names = tuple(binder.nested_names)
    return update


def _typeset_error(operator: str, value: dict) -> ValidationException:
    return ValidationException(
        f"Invalid {KIND}: Incorrect operand type for operator or function; operator: {operator}, "
        f"operand type: {JAVA_TYPE_NAMES[type_of(value)]}, typeSet: ALLOWED_FOR_{operator}_OPERAND"
    )


def _check_add_operand(value: dict) -> dict:
    kind = type_of(value)
    if kind != "N" and kind not in SET_TYPES:
        raise _typeset_error("ADD", value)
    return value


def _check_delete_operand(value: dict) -> dict:
    if type_of(value) not in SET_TYPES:
        raise _typeset_error("DELETE", value)
    return value


def _bind_value(binder: Binder, node):
    """Compile a SET operand to a function item -> attribute value."""
    node = ast.unparen(node)
    node_type = type(node)
    if node_type is ast.Value:
        const = binder.value(node)
        return lambda item: const
    if node_type is ast.Path:
        get = path_getter(binder.resolve_path(node))

        def read(item):
            value = get(item)
            if value is None:
                raise _missing_attribute()
            return value

        return read
    if node_type is ast.Arithmetic:
        return _bind_arithmetic(binder, node)
    return _bind_function(binder, node)


def _constant_type(node, binder: Binder):
    node = ast.unparen(node)
    if type(node) is ast.Value:
        return type_of(binder.ctx.values.get(node.name, {"?": None}))
    return None


def _bind_arithmetic(binder: Binder, node: ast.Arithmetic):
    left = _bind_value(binder, node.left)
    right = _bind_value(binder, node.right)
    for side in (node.left, node.right):
        kind = _constant_type(side, binder)
        if kind is not None and kind != "N":
            raise binder.type_error(node.op, kind)
    operation = add if node.op == "+" else subtract

    def compute(item):
        a, b = left(item), right(item)
        if "N" not in a or "N" not in b:
            raise _bad_type()
        return {"N": format_number(operation(Decimal(a["N"]), Decimal(b["N"])))}

    return compute


def _bind_function(binder: Binder, node: ast.Function):
    args = [_bind_value(binder, a) for a in node.args]
    if len(args) != FUNCTION_ARITY[node.name]:
        raise binder.error(
            "Incorrect number of operands for operator or function; "
            f"operator or function: {node.name}, number of operands: {len(args)}"
        )
    if node.name == "if_not_exists":
        return _bind_if_not_exists(binder, node, args[1])
    for arg in node.args:
        kind = _constant_type(arg, binder)
        if kind is not None and kind != "L":
            raise binder.type_error("list_append", kind)
    first, second = args

    def list_append(item):
        a, b = first(item), second(item)
        if "L" not in a or "L" not in b:
            raise _bad_type()
        return {"L": a["L"] + b["L"]}

    return list_append


def _bind_if_not_exists(binder: Binder, node: ast.Function, fallback):
    target = ast.unparen(node.args[0])
    if type(target) is not ast.Path:
        raise binder.error(
            "Operator or function requires a document path; operator or function: if_not_exists"
        )
    get = path_getter(binder.resolve_path(target))

    def if_not_exists(item):
        value = get(item)
        return value if value is not None else fallback(item)

    return if_not_exists


# ---------------------------------------------------------------- applying


def _parent(root: dict, path: tuple, copied: set):
    """The container that holds the last element of ``path``, made writable
    (copied once per update) along the way."""
    container = root
    for position in range(len(path) - 1):
        element = path[position]
        if type(container) is dict:
            child = container.get(element)
        else:
            child = container[element] if element < len(container) else None
        if child is None:
            raise _invalid_path()
        want = "L" if type(path[position + 1]) is int else "M"
        payload = child.get(want)
        if payload is None:
            raise _invalid_path()
        if id(payload) not in copied:
            payload = dict(payload) if want == "M" else list(payload)
            copied.add(id(payload))
            container[element] = {want: payload}
        container = payload
    return container


def _existing_parent(item: dict, path: tuple):
    """The container in ``item`` that holds the last element of ``path``;
    raises unless every container above it is there, of the kind the next
    element needs (a map for a name, a list for an index): what ``_parent``
    needs, checked before anything changes."""
    container = item
    for position in range(len(path) - 1):
        child = _get(container, path[position])
        if child is None:
            raise _invalid_path()
        container = child.get("L" if type(path[position + 1]) is int else "M")
        if container is None:
            raise _invalid_path()
    return container


def _get(container, element):
    if type(container) is dict:
        return container.get(element)
    return container[element] if element < len(container) else None


def _put(container, element, value) -> None:
    if type(container) is dict:
        container[element] = value
    elif element < len(container):
        container[element] = value
    else:
        container.append(value)


def _discard(container, element) -> None:
    if type(container) is dict:
        del container[element]
    else:
        del container[element]


def _remove_all(root: dict, paths: list, copied: set) -> bool:
    """REMOVE: resolve every target first, then delete list elements from the
    highest index down so that positions refer to the list before the update."""
    list_removals: dict[int, tuple[list, set]] = {}
    changed = False
    for path in paths:
        container = _parent(root, path, copied)
        element = path[-1]
        if type(container) is dict:
            if element in container:
                del container[element]
                changed = True
        elif element < len(container):
            list_removals.setdefault(id(container), (container, set()))[1].add(element)
    for container, indexes in list_removals.values():
        for index in sorted(indexes, reverse=True):
            del container[index]
        changed = True
    return changed


def _set_key(kind: str, text: str):
    return Decimal(text) if kind == "NS" else text


def set_union(members: list, value: dict, kind: str) -> list:
    """The members of ``value`` (a set of type ``kind``) not yet in
    ``members``: what ADD appends (numbers compare numerically)."""
    present = {_set_key(kind, m) for m in members}
    extra = []
    for member in value[kind]:
        key = _set_key(kind, member)
        if key not in present:
            present.add(key)
            extra.append(member)
    return extra


def set_difference(current: dict, value: dict, type_error) -> tuple[bool, dict | None]:
    """DELETE of ``value``'s members from the set ``current``: (whether it
    changed, the remaining set or None when nothing is left).  A ``current``
    that is not a set of ``value``'s type raises ``type_error()``."""
    kind = type_of(value)
    members = current.get(kind)
    if members is None:
        raise type_error()
    gone = {_set_key(kind, m) for m in value[kind]}
    kept = [m for m in members if _set_key(kind, m) not in gone]
    if len(kept) == len(members):
        return False, current
    return True, ({kind: kept} if kept else None)


_ADD = "ADD"


def _add(container, element, value: dict, current: dict | None) -> bool:
    """ADD ``value`` to ``current`` (what the item held at the path before
    the update) and write the result at ``element`` of ``container``."""
    kind = type_of(value)
    if current is None:
        _put(container, element, {kind: list(value[kind])} if kind in SET_TYPES else value)
        return True
    if kind == "N":
        if "N" not in current:
            raise _bad_type()
        total = add(Decimal(current["N"]), Decimal(value["N"]))
        _put(container, element, {"N": format_number(total)})
        return True
    members = current.get(kind)
    if members is None:
        raise _bad_type()
    extra = set_union(members, value, kind)
    if extra:
        _put(container, element, {kind: sorted_set(kind, members + extra)})
    return bool(extra)


def _delete(container, element, value: dict) -> bool:
    current = _get(container, element)
    if current is None:
        return False
    changed, remaining = set_difference(current, value, _bad_type)
    if not changed:
        return False
    if remaining is not None:
        _put(container, element, remaining)
    else:
        _discard(container, element)
    return True
