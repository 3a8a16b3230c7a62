"""Randomized differential testing of expression semantics: Shoal against
DynamoDB Local.

bench/conformance_sweep.py sends fixed requests; this tool generates them
from a seed.  Items hold every attribute type (S, N with tricky numbers, B,
SS/NS/BS, L and M nested a few levels, BOOL, NULL) under a small pool of
shared attribute and map-key names, so that the generated expressions meet
them.  The expressions cover the whole grammar: comparisons across types,
BETWEEN, IN with up to 100 operands, AND/OR/NOT and parentheses, the
functions (attribute_exists/not_exists, attribute_type of every type,
begins_with, contains, size), nested paths with list indexes and map keys,
name and value placeholders; updates with SET (arithmetic, if_not_exists,
list_append), REMOVE, ADD and DELETE in several clauses; projections of
overlapping paths and list elements.  They go out as ConditionExpression on
PutItem, UpdateItem and DeleteItem, FilterExpression and ProjectionExpression
on Scan and Query, ProjectionExpression on GetItem and UpdateExpression with
ReturnValues.

What is compared is semantics, not wording: the outcome class (success,
ConditionalCheckFailedException, ValidationException, anything else), the
returned items (set members in a canonical order), and after a write the item
the two servers then hold.  Each difference is shrunk (clauses, operands and
item attributes removed while the difference stays) and printed as a small
reproducer: the item and the request.

Usage::

    python bench/expression_fuzz.py [--cases N] [--seed S] [--shoal URL] [--local URL]
                                    [--jar PATH] [--json OUT] [--no-shrink]

Servers are started as bench/conformance_sweep.py starts them when no URL is
given.  A run of 3,000 cases takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import random
import sys
import time
from collections import Counter
from decimal import Context, Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conformance_sweep import Endpoint, servers  # noqa: E402

WIDE = Context(prec=200)  # normalises without rounding: DynamoDB numbers have 38 digits
TABLE = "expr_fuzz"
ITEMS = 10  # seed items, sort keys 0..ITEMS-1 under partition "p"
NEW_KEYS = 3  # sort keys ITEMS..ITEMS+NEW_KEYS-1 start absent

# Top-level attribute names: (name, placeholder).  "name" is a reserved word
# and "x.y" holds a dot: both are reachable only through their placeholder.
TOP = [("a", "#a"), ("b", "#b"), ("c", "#c"), ("d", "#d"), ("e", "#e"), ("name", "#nm"), ("x.y", "#dot")]
MAP_KEYS = [("x", "#x"), ("y", "#y"), ("a", "#a"), ("name", "#nm")]
KEY_NAMES = [("pk", "#pk"), ("sk", "#sk")]
NEEDS_PLACEHOLDER = {"name", "x.y"}
PLACEHOLDER = dict(TOP + MAP_KEYS + KEY_NAMES)

NUMBERS = ["0", "-0", "1", "-1", "2", "10", "100", "1E+2", "0.10", "-1.5", "3.14159", "1e-130", "-1e-130",
           "12345678901234567890123456789012345678", "-12345678901234567890123456789012345678",
           "9.9999999999999999999999999999999999999E+125", "-9.9999999999999999999999999999999999999E+125",
           "0.000000000000000000000000000000000000001", "1e125", "5", "7.0", "7", "42", "1.0", "0.1",
           "100.00", "-0.0", "99999999999999999999999999999999999999"]
STRINGS = ["", "a", "ab", "abc", "b", "A", "ä", "a b", "😀", "x", "name", "abd", "1", "10", "2", "é𝄞", "ﬀ",
           "😀a", "\uffff", "aé"]
BINARIES = [b"", b"\x00", b"\x01", b"\x01\x02", b"\x01\x02\x03", b"\xff", b"\x7f", b"\x80", b"ab", b"a"]
TYPES = ["S", "N", "B", "SS", "NS", "BS", "L", "M", "BOOL", "NULL"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- values and items -------------------------------------------------------------------


def scalar(rng: random.Random, kind: str) -> dict:
    if kind == "S":
        return {"S": rng.choice(STRINGS)}
    if kind == "N":
        return {"N": rng.choice(NUMBERS)}
    return {"B": b64(rng.choice(BINARIES))}


def _numeric_distinct(numbers: list[str]) -> list[str]:
    from decimal import Decimal
    seen, out = set(), []
    for n in numbers:
        if Decimal(n) not in seen:
            seen.add(Decimal(n))
            out.append(n)
    return out


def attribute_value(rng: random.Random, depth: int = 0, kind: str | None = None) -> dict:
    """A random attribute value of any type (containers nested to depth 3)."""
    if kind is None:
        kinds = TYPES if depth < 3 else TYPES[:6] + ["BOOL", "NULL"]
        kind = rng.choice(kinds)
    if kind in ("S", "N", "B"):
        return scalar(rng, kind)
    if kind == "SS":
        return {"SS": rng.sample(STRINGS, rng.randint(1, 4))}
    if kind == "NS":
        return {"NS": _numeric_distinct(rng.sample(NUMBERS, rng.randint(1, 4)))}
    if kind == "BS":
        return {"BS": [b64(b) for b in rng.sample(BINARIES, rng.randint(1, 3))]}
    if kind == "L":
        return {"L": [attribute_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]}
    if kind == "M":
        keys = rng.sample(MAP_KEYS, rng.randint(0, len(MAP_KEYS)))
        return {"M": {k: attribute_value(rng, depth + 1) for k, _ in keys}}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    return {"NULL": True}


def respell(rng: random.Random, value: dict) -> dict:
    """The same value written another way: numbers in another notation, set
    members and map members in another order (equality must not see it)."""
    (kind, raw), = value.items()
    if kind == "N":
        return {"N": _respelled_number(rng, raw)}
    if kind in ("SS", "BS"):
        return {kind: rng.sample(raw, len(raw))}
    if kind == "NS":
        return {"NS": [_respelled_number(rng, n) for n in rng.sample(raw, len(raw))]}
    if kind == "L":
        return {"L": [respell(rng, v) for v in raw]}
    if kind == "M":
        names = rng.sample(list(raw), len(raw))
        return {"M": {n: respell(rng, raw[n]) for n in names}}
    return value


def _respelled_number(rng: random.Random, text: str) -> str:
    value = Decimal(text)
    choices = [str(value), format(value, "E"), str(value.normalize(WIDE))]
    if value == value.to_integral_value() and abs(value) < 10**30:
        choices.append(f"{int(value)}.00")
    spelled = rng.choice(choices)
    return spelled if len(spelled.lstrip("-").replace(".", "").lstrip("0")) <= 40 else text


def key(sk: int) -> dict:
    return {"pk": {"S": "p"}, "sk": {"N": str(sk)}}


def random_item(rng: random.Random, sk: int) -> dict:
    item = key(sk)
    for name, _ in TOP:
        if rng.random() < 0.7:
            item[name] = attribute_value(rng)
    return item


def seed_items(seed: int) -> dict[int, dict]:
    rng = random.Random(f"items-{seed}")
    return {sk: random_item(rng, sk) for sk in range(ITEMS)}


def walk(value: dict, path: tuple):
    """(path, value) for ``value`` and everything nested in it."""
    yield path, value
    if "L" in value:
        for index, element in enumerate(value["L"]):
            yield from walk(element, path + (index,))
    elif "M" in value:
        for name, member in value["M"].items():
            yield from walk(member, path + (name,))


# -- expression trees -------------------------------------------------------------------
#
# Conditions: ("and"|"or", [c...]), ("not", c), ("paren", c), ("cmp", op, x, y),
# ("between", x, lo, hi), ("in", x, [y...]), ("fn", name, [args]).
# Operands: ("path", elements, placeholders) where placeholders is a tuple of
# booleans (write the name element as its #placeholder), ("val", value),
# ("size", operand).  SET values: operands, ("arith", op, x, y), ("fn", name, [x, y]).


class Generator:
    """Random expressions over one set of seed items."""

    def __init__(self, rng: random.Random, items: dict[int, dict]):
        self.rng = rng
        self.items = items
        self.paths = self.target_paths = self._paths(items.values())

    @staticmethod
    def _paths(items) -> list:
        return [(p, v) for item in items for name, value in item.items()
                if name not in ("pk", "sk") for p, v in walk(value, (name,))]

    def aim(self, sk: int) -> None:
        """Prefer the paths of the item a write or keyed read meets."""
        self.target_paths = self._paths([self.items[sk]]) if sk in self.items else []

    # paths and values

    def path(self, existing: float = 0.7):
        rng = self.rng
        if self.paths and rng.random() < existing:
            pool = self.target_paths if self.target_paths and rng.random() < 0.7 else self.paths
            elements, _ = rng.choice(pool)
            if rng.random() < 0.15:  # one step further, maybe nowhere
                elements = elements + ((rng.randint(0, 4),) if rng.random() < 0.5 else (rng.choice(MAP_KEYS)[0],))
        else:
            # now and then a key attribute: filters may read them on a Scan, not
            # on a Query; updates may not write them
            elements = (rng.choice(TOP)[0] if rng.random() < 0.95 else rng.choice(["pk", "sk"]),)
            for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                elements += (rng.randint(0, 4),) if rng.random() < 0.4 else (rng.choice(MAP_KEYS)[0],)
        flags = tuple(type(e) is str and (e in NEEDS_PLACEHOLDER or rng.random() < 0.2) for e in elements)
        return ("path", elements, flags)

    def value(self, kind: str | None = None):
        rng = self.rng
        if self.paths and rng.random() < 0.5:
            pool = self.target_paths if self.target_paths and rng.random() < 0.5 else self.paths
            candidates = [v for _, v in pool if kind is None or kind in v]
            if candidates:
                value = copy.deepcopy(rng.choice(candidates))
                return ("val", respell(rng, value) if rng.random() < 0.4 else value)
        return ("val", attribute_value(rng, 1, kind))

    def operand(self, ordered: bool = False):
        """A path, a value (a scalar one where ``ordered``: < and BETWEEN
        refuse other constants) or size(path)."""
        r = self.rng.random()
        if r < 0.55:
            return self.path()
        if r < 0.88:
            if ordered and self.rng.random() < 0.9:
                return self.value(self.rng.choice(["S", "N", "B"]))
            return self.value()
        return ("size", self.path())

    # conditions

    def condition(self, depth: int = 3):
        rng = self.rng
        if depth > 0 and rng.random() < 0.35:
            kind = rng.choice(["and", "and", "or", "or", "not", "paren"])
            if kind in ("and", "or"):
                return (kind, [self.condition(depth - 1) for _ in range(rng.randint(2, 3))])
            return (kind, self.condition(depth - 1))
        return self.atom()

    def atom(self):
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            op = rng.choice(["=", "<>", "<", "<=", ">", ">="])
            ordered = op not in ("=", "<>")
            left = self.operand(ordered)
            if left[0] == "size" and rng.random() < 0.7:  # sizes are small: meet them
                return ("cmp", op, left, ("val", {"N": str(rng.randint(0, 6))}))
            return ("cmp", op, left, self.operand(ordered))
        if r < 0.45:
            kind = rng.choice(["S", "N", "B", "N"])
            low, high = self.value(kind), self.value(kind)
            if rng.random() < 0.8:  # ordered bounds mostly
                pair = sorted([low, high], key=lambda v: _order(v[1]))
                low, high = pair
            return ("between", self.operand(True), low, high)
        if r < 0.55:
            count = rng.choice([1, 2, 3, 5, 10]) if rng.random() < 0.95 else rng.randint(50, 101)
            return ("in", self.operand(), [self.operand() if rng.random() < 0.2 else self.value()
                                           for _ in range(count)])
        name = rng.choice(["attribute_exists", "attribute_not_exists", "attribute_type", "begins_with",
                           "contains", "contains"])
        if name.startswith("attribute_") and name != "attribute_type":
            return ("fn", name, [self.path()])
        if name == "attribute_type":
            t = rng.choice(TYPES) if rng.random() < 0.97 else "X"
            return ("fn", name, [self.path(), ("val", {"S": t})])
        if name == "begins_with":
            return ("fn", name, [self.path(), self.prefix()])
        target = self.path()
        second = self.element_of(target) if rng.random() < 0.6 else None
        if second is None:
            second = self.value(rng.choice([None, "S", "N", "B"])) if rng.random() < 0.85 else self.path()
        return ("fn", name, [target, second])

    def stored(self, path):
        """The value at ``path`` in the aimed-at item (or any item), or None."""
        for elements, value in self.target_paths or self.paths:
            if elements == path[1]:
                return value
        return None

    def members_of(self, path):
        """Mostly a set of some members of the set at ``path`` (respelled), with
        maybe one member it lacks; None when ``path`` holds no set."""
        rng = self.rng
        value = self.stored(path)
        if value is None or rng.random() < 0.3:
            return None
        (kind, raw), = value.items()
        if kind not in ("SS", "NS", "BS"):
            return None
        members = rng.sample(raw, rng.randint(1, len(raw)))
        extra = attribute_value(rng, 1, kind)[kind][0] if rng.random() < 0.4 else None
        if extra is not None and kind != "NS" and extra not in members:
            members.append(extra)
        return ("val", respell(rng, {kind: members}))

    def element_of(self, path):
        """An element of the set or list at ``path``, or a substring of its string."""
        rng = self.rng
        value = self.stored(path)
        if value is None:
            return None
        (kind, raw), = value.items()
        if kind in ("SS", "NS", "BS"):
            element = {kind[0]: rng.choice(raw)}
            return ("val", respell(rng, element))
        if kind == "L" and raw:
            return ("val", respell(rng, copy.deepcopy(rng.choice(raw))))
        if kind == "S" and raw:
            start = rng.randint(0, len(raw) - 1)
            return ("val", {"S": raw[start: rng.randint(start, len(raw))]})
        return None

    def prefix(self):
        rng = self.rng
        strings = [v for _, v in self.paths if "S" in v or "B" in v]
        if strings and rng.random() < 0.7:
            v = rng.choice(strings)
            if "S" in v:
                return ("val", {"S": v["S"][: rng.randint(0, len(v["S"]))]})
            raw = base64.b64decode(v["B"])
            return ("val", {"B": b64(raw[: rng.randint(0, len(raw))])})
        return self.value(rng.choice(["S", "B", "S", "N"]))

    # updates

    def update(self):
        rng = self.rng
        actions = []
        for _ in range(rng.randint(1, 4)):
            section = rng.choice(["SET", "SET", "SET", "REMOVE", "ADD", "DELETE"])
            path = self.path(0.8)
            if rng.random() < 0.9 and any(_overlap(path, other[1]) for other in actions):
                continue  # mostly paths that can go together
            if section == "SET":
                actions.append(("SET", path, self.set_value()))
            elif section == "REMOVE":
                actions.append(("REMOVE", path, None))
            elif section == "ADD":
                value = self.members_of(path) or self.value(rng.choice(["N", "N", "SS", "NS", "BS"]))
                actions.append(("ADD", path, value))
            else:
                value = self.members_of(path) or self.value(rng.choice(["SS", "NS", "BS"]))
                actions.append(("DELETE", path, value))
        return actions

    def set_value(self):
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return self.value()
        if r < 0.4:
            return self.path()
        if r < 0.65:
            def number():
                roll = rng.random()
                if roll < 0.15:  # the counter idiom: if_not_exists(a, :zero) + :one
                    return ("fn", "if_not_exists", [self.path(), self.value("N")])
                return self.path() if roll < 0.55 else self.value("N")
            return ("arith", rng.choice("+-"), number(), number())
        if r < 0.8:
            first = self.path()
            if rng.random() < 0.1:  # nested: if_not_exists(a, if_not_exists(b, :v))
                return ("fn", "if_not_exists", [first, ("fn", "if_not_exists", [self.path(), self.value()])])
            return ("fn", "if_not_exists", [first, self.value()])
        lists = [self.path(), self.value("L")]
        if rng.random() < 0.3:  # the append idiom: list_append(if_not_exists(l, :empty), :v)
            lists[0] = ("fn", "if_not_exists", [lists[0], ("val", {"L": []})])
        rng.shuffle(lists)
        return ("fn", "list_append", lists)

    def projection(self):
        paths = []
        for _ in range(self.rng.randint(1, 5)):
            path = self.path(0.8)
            if self.rng.random() < 0.85 and any(_overlap(path, other) for other in paths):
                continue
            paths.append(path)
        return paths


def _overlap(one, two) -> bool:
    """Whether one path is a prefix of the other (DynamoDB refuses both in one expression)."""
    a, b = one[1], two[1]
    return a[: len(b)] == b or b[: len(a)] == a


def _order(value: dict):
    from decimal import Decimal
    (kind, raw), = value.items()
    if kind == "N":
        return Decimal(raw)
    if kind == "B":
        return base64.b64decode(raw)
    return raw.encode("utf-8")


# -- rendering --------------------------------------------------------------------------


class Renderer:
    """Expression text with its ExpressionAttributeNames and Values."""

    def __init__(self):
        self.names: dict[str, str] = {}
        self.values: dict[str, dict] = {}

    def value(self, value: dict) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def path(self, node) -> str:
        _, elements, flags = node
        out = ""
        for element, flag in zip(elements, flags):
            if type(element) is int:
                out += f"[{element}]"
                continue
            text = element
            if flag:
                text = PLACEHOLDER[element]
                self.names[text] = element
            out += ("." if out else "") + text
        return out

    def operand(self, node) -> str:
        kind = node[0]
        if kind == "path":
            return self.path(node)
        if kind == "val":
            return self.value(node[1])
        if kind == "size":
            return f"size({self.operand(node[1])})"
        if kind == "arith":
            return f"{self.operand(node[2])} {node[1]} {self.operand(node[3])}"
        if kind == "fn":
            return f"{node[1]}({', '.join(self.operand(a) for a in node[2])})"
        raise ValueError(kind)

    def condition(self, node) -> str:
        kind = node[0]
        if kind in ("and", "or"):
            return f" {kind.upper()} ".join(self.condition(c) for c in node[1])
        if kind == "not":
            return f"NOT {self.condition(node[1])}"
        if kind == "paren":
            return f"({self.condition(node[1])})"
        if kind == "cmp":
            return f"{self.operand(node[2])} {node[1]} {self.operand(node[3])}"
        if kind == "between":
            return f"{self.operand(node[1])} BETWEEN {self.operand(node[2])} AND {self.operand(node[3])}"
        if kind == "in":
            return f"{self.operand(node[1])} IN ({', '.join(self.operand(o) for o in node[2])})"
        if kind == "fn":
            return self.operand(node)
        raise ValueError(kind)

    def update(self, actions) -> str:
        sections: dict[str, list[str]] = {}
        for section, path, value in actions:
            text = self.path(path)
            if section == "SET":
                text += f" = {self.operand(value)}"
            elif value is not None:
                text += f" {self.operand(value)}"
            sections.setdefault(section, []).append(text)
        return " ".join(f"{section} {', '.join(texts)}" for section, texts in sections.items())

    def projection(self, paths) -> str:
        return ", ".join(self.path(p) for p in paths)


# -- cases ------------------------------------------------------------------------------


def make_case(seed: int, number: int, items: dict[int, dict]) -> dict:
    rng = random.Random(f"case-{seed}-{number}")
    gen = Generator(rng, items)
    r = rng.random()
    case: dict = {"number": number, "override": None}
    if r < 0.22:
        case["op"] = "Scan"
        if rng.random() < 0.85:
            case["filter"] = gen.condition()
        if rng.random() < 0.4 or "filter" not in case:
            case["projection"] = gen.projection()
        elif rng.random() < 0.15:
            case["count"] = True
        case["limit"] = rng.randint(1, 6) if rng.random() < 0.15 else None
    elif r < 0.32:
        case["op"] = "Query"
        case["sk"] = rng.randint(0, ITEMS - 1) if rng.random() < 0.3 else None
        if case["sk"] is None and rng.random() < 0.6:
            bound = lambda: {"N": rng.choice(["-1", "0", "2", "4.5", "5", "9", "20", "1e-130"])}  # noqa: E731
            op = rng.choice(["<", "<=", ">", ">=", "BETWEEN"])
            if op == "BETWEEN":
                case["range"] = ("sk BETWEEN :k1 AND :k2", {":k1": bound(), ":k2": bound()})
            else:
                case["range"] = (f"sk {op} :k1", {":k1": bound()})
        case["forward"] = rng.random() < 0.7
        case["limit"] = rng.randint(1, 6) if rng.random() < 0.2 else None
        if rng.random() < 0.8:
            case["filter"] = gen.condition()
        if rng.random() < 0.4 or "filter" not in case:
            case["projection"] = gen.projection()
    elif r < 0.40:
        case["op"] = "GetItem"
        case["sk"] = rng.randint(0, ITEMS - 1)
        gen.aim(case["sk"])
        case["projection"] = gen.projection()
    elif r < 0.50:
        case["op"] = "PutItem"
        case["sk"] = rng.randint(0, ITEMS + NEW_KEYS - 1)
        gen.aim(case["sk"])
        case["item"] = random_item(rng, case["sk"])
        case["condition"] = gen.condition()
    elif r < 0.90:
        case["op"] = "UpdateItem"
        case["sk"] = rng.randint(0, ITEMS + NEW_KEYS - 1)
        gen.aim(case["sk"])
        case["update"] = gen.update()
        if rng.random() < 0.35:
            case["condition"] = gen.condition(2)
        case["return"] = "ALL_NEW" if rng.random() < 0.75 else rng.choice(["UPDATED_OLD", "UPDATED_NEW", "ALL_OLD"])
    else:
        case["op"] = "DeleteItem"
        case["sk"] = rng.randint(0, ITEMS + NEW_KEYS - 1)
        gen.aim(case["sk"])
        case["condition"] = gen.condition()
    case["old_on_failure"] = case.get("condition") is not None and rng.random() < 0.3
    return case


def request(case: dict) -> dict:
    """The wire request of a case."""
    r = Renderer()
    op = case["op"]
    body: dict = {"TableName": TABLE}
    if op in ("GetItem", "UpdateItem", "DeleteItem"):
        body["Key"] = key(case["sk"])
    if op == "PutItem":
        body["Item"] = case["item"]
        body["ReturnValues"] = "ALL_OLD"
    if op == "DeleteItem":
        body["ReturnValues"] = "ALL_OLD"
    if op == "Query":
        text = "pk = :kp"
        if case.get("sk") is not None:
            text += " AND sk = :ks"
        elif case.get("range"):
            text += " AND " + case["range"][0]
        body["KeyConditionExpression"] = text
    if op == "UpdateItem":
        body["UpdateExpression"] = r.update(case["update"])
        body["ReturnValues"] = case["return"]
    if case.get("condition") is not None:
        body["ConditionExpression"] = r.condition(case["condition"])
        if case.get("old_on_failure"):
            body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    if case.get("limit"):
        body["Limit"] = case["limit"]
    if case.get("count"):
        body["Select"] = "COUNT"
    if case.get("filter") is not None:
        body["FilterExpression"] = r.condition(case["filter"])
    if case.get("projection"):
        body["ProjectionExpression"] = r.projection(case["projection"])
    if op in ("Scan", "Query", "GetItem"):
        body["ConsistentRead"] = True
    if op == "Query" and case.get("count") and case.get("projection"):
        body.pop("Select")
    if op == "Query" and not case.get("forward", True):
        body["ScanIndexForward"] = False
    values = dict(r.values)
    if op == "Query":
        values.update({":kp": {"S": "p"}})
        if case.get("sk") is not None:
            values[":ks"] = {"N": str(case["sk"])}
        elif case.get("range"):
            values.update(case["range"][1])
    if r.names:
        body["ExpressionAttributeNames"] = r.names
    if values:
        body["ExpressionAttributeValues"] = values
    return body


# -- comparing --------------------------------------------------------------------------


def number_text(text: str) -> str:
    """A number in one spelling: DynamoDB answers numbers normalised
    ("1E+2" as "100"), DynamoDB Local as they were sent; the value is what
    the expressions decide, so that is what is compared."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        return text
    return "0" if value == 0 else str(value.normalize(WIDE))


def canonical(value):
    """Numbers in one spelling, set members in a fixed order (their order
    carries no meaning)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "N" and isinstance(v, str):
                out[k] = number_text(v)
            elif k == "NS" and isinstance(v, list):
                out[k] = sorted(number_text(n) for n in v)
            elif k in ("SS", "BS") and isinstance(v, list):
                out[k] = sorted(v)
            else:
                out[k] = canonical(v)
        return out
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def outcome(status: int, body: dict) -> dict:
    """What is compared of one answer: its class, and a success's result."""
    if status != 200:
        kind = str(body.get("__type", "")).rsplit("#", 1)[-1]
        out = {"class": kind or f"HTTP {status}", "message": body.get("message", body.get("Message"))}
        if "Item" in body:  # ReturnValuesOnConditionCheckFailure
            out["result"] = canonical({"Item": body["Item"]})
        return out
    result = {k: v for k, v in body.items() if k != "ConsumedCapacity"}
    return {"class": "success", "result": canonical(result)}


def same(a: dict, b: dict) -> bool:
    return a["class"] == b["class"] and a.get("result") == b.get("result") and a.get("state") == b.get("state")


def difference_class(a: dict, b: dict) -> str:
    if a["class"] != b["class"]:
        return f"outcome {a['class']} vs {b['class']}"
    if a.get("result") != b.get("result"):
        return "returned items"
    return "stored item"


def settled(case: dict, shoal: dict, local: dict) -> str | None:
    """The reason a difference is already settled in Shoal's favour, or None.

    An UpdateItem of a missing item whose actions change nothing (REMOVE,
    DELETE) creates no item in DynamoDB, and REMOVE may name any path there;
    DynamoDB Local creates the key-only item, or refuses a nested path
    (docs/status.md, conformance section).  The same holds for a REMOVE of a
    nested path beside other actions on a missing item.

    A Query or Scan whose Limit stops it at the last item answers a
    LastEvaluatedKey in DynamoDB ("If LastEvaluatedKey is not empty, it does
    not necessarily mean that there is more data", Query.Pagination, and
    DynamoDB's answers quoted on re:Post); DynamoDB Local leaves it out."""
    if (case["op"] == "UpdateItem" and case["sk"] not in ITEMS_BY_RUN and shoal["class"] == "success"
            and shoal.get("state") is None and all(a[0] in ("REMOVE", "DELETE") for a in case["update"])):
        return "update of a missing item that changes nothing"
    if (case["op"] == "UpdateItem" and case["sk"] not in ITEMS_BY_RUN and shoal["class"] == "success"
            and local.get("message") == "The document path provided in the update expression is invalid for update"
            and all(a[0] == "REMOVE" or len(a[1][1]) == 1 for a in case["update"])):
        return "REMOVE of a nested path of a missing item"
    if case["op"] in ("Query", "Scan") and case.get("limit") and shoal["class"] == local["class"] == "success":
        mine, theirs = dict(shoal["result"]), dict(local["result"])
        if (mine.pop("LastEvaluatedKey", None) is not None and "LastEvaluatedKey" not in theirs
                and mine == theirs and mine.get("ScannedCount") == case["limit"]):
            return "LastEvaluatedKey when Limit stops at the last item"
    return None


def unclear(case: dict, shoal: dict, local: dict) -> str | None:
    """The reason a difference is one the Developer Guide does not settle, or None.

    UPDATED_OLD / UPDATED_NEW after an action on a nested path: Shoal
    returns the paths the actions name (the API Reference: "only the updated
    attributes"), DynamoDB Local the whole top-level attributes they lie in.

    An UpdateItem that writes a key attribute under a condition that fails:
    Shoal refuses the key's write ("Cannot update attribute pk"), Local
    reports the failed condition."""
    if (case["op"] == "UpdateItem" and case["return"] in ("UPDATED_OLD", "UPDATED_NEW")
            and shoal["class"] == local["class"] == "success" and shoal.get("state") == local.get("state")):
        if case["return"] == "UPDATED_NEW":
            whole = local.get("state") or {}
        else:
            whole = case["override"] if case["override"] is not None else ITEMS_BY_RUN.get(case["sk"], {})
        attributes = local["result"].get("Attributes", {})
        mine = shoal["result"].get("Attributes", {})
        if attributes.keys() == mine.keys() and all(canonical(whole.get(k)) == v for k, v in attributes.items()):
            return "UPDATED_OLD/NEW of a nested path: Local returns the whole top-level attribute"
    if (case["op"] == "UpdateItem" and local["class"] == "ConditionalCheckFailedException"
            and "This attribute is part of the key" in (shoal.get("message") or "")):
        return "an update writing a key attribute under a failing condition: which fault comes first"
    return None


ITEMS_BY_RUN: dict[int, dict] = {}


class Runner:
    def __init__(self, endpoints: list[Endpoint], items: dict[int, dict]):
        self.endpoints = endpoints
        self.items = items

    def setup(self) -> None:
        table = {"TableName": TABLE,
                 "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                               {"AttributeName": "sk", "KeyType": "RANGE"}],
                 "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                          {"AttributeName": "sk", "AttributeType": "N"}],
                 "BillingMode": "PAY_PER_REQUEST"}
        for endpoint in self.endpoints:
            endpoint.call("DeleteTable", {"TableName": TABLE})
            status, body = endpoint.call("CreateTable", table)
            if status != 200:
                raise SystemExit(f"CreateTable: {status} {body}")
            for _ in range(100):
                if endpoint.call("DescribeTable", {"TableName": TABLE})[1].get("Table", {}).get(
                        "TableStatus") == "ACTIVE":
                    break
                time.sleep(0.1)
            for item in self.items.values():
                status, body = endpoint.call("PutItem", {"TableName": TABLE, "Item": item})
                if status != 200:
                    raise SystemExit(f"seed PutItem: {status} {body} {item}")

    def restore(self, sk: int) -> None:
        for endpoint in self.endpoints:
            if sk in self.items:
                endpoint.call("PutItem", {"TableName": TABLE, "Item": self.items[sk]})
            else:
                endpoint.call("DeleteItem", {"TableName": TABLE, "Key": key(sk)})

    def run(self, case: dict) -> list[dict]:
        body = request(case)
        sk = case.get("sk")
        if case["override"] is not None:
            for endpoint in self.endpoints:
                endpoint.call("PutItem", {"TableName": TABLE, "Item": case["override"]})
        answers = []
        for endpoint in self.endpoints:
            answer = outcome(*endpoint.call(case["op"], body))
            if case["op"] in ("PutItem", "UpdateItem", "DeleteItem"):
                status, stored = endpoint.call("GetItem", {"TableName": TABLE, "Key": key(sk),
                                                           "ConsistentRead": True})
                answer["state"] = canonical(stored.get("Item"))
            answers.append(answer)
        if case["op"] in ("PutItem", "UpdateItem", "DeleteItem") or case["override"] is not None:
            self.restore(sk)
        return answers


# -- shrinking --------------------------------------------------------------------------


def _smaller_conditions(node):
    """Conditions simpler than ``node``: its parts, and itself with one part simplified."""
    kind = node[0]
    if kind in ("and", "or"):
        parts = node[1]
        yield from parts
        if len(parts) > 2:
            for i in range(len(parts)):
                yield (kind, parts[:i] + parts[i + 1:])
        for i, part in enumerate(parts):
            for smaller in _smaller_conditions(part):
                yield (kind, parts[:i] + [smaller] + parts[i + 1:])
    elif kind in ("not", "paren"):
        yield node[1]
        for smaller in _smaller_conditions(node[1]):
            yield (kind, smaller)
    elif kind == "in":
        options = node[2]
        if len(options) > 1:
            half = len(options) // 2
            yield ("in", node[1], options[:half])
            yield ("in", node[1], options[half:])
            for i in range(len(options)):
                yield ("in", node[1], options[:i] + options[i + 1:])
    for smaller in _smaller_operand_positions(node):
        yield smaller


def _smaller_operand_positions(node):
    """``node`` with one operand replaced by a simpler one (shorter path, smaller value)."""
    for index, part in enumerate(node):
        if isinstance(part, tuple) and part and part[0] in ("path", "val", "size"):
            for smaller in _smaller_operands(part):
                yield node[:index] + (smaller,) + node[index + 1:]
        elif isinstance(part, list) and part and isinstance(part[0], tuple) and part[0][0] in ("path", "val", "size"):
            for i, element in enumerate(part):
                for smaller in _smaller_operands(element):
                    yield node[:index] + (part[:i] + [smaller] + part[i + 1:],) + node[index + 1:]


def _smaller_operands(node):
    kind = node[0]
    if kind == "path" and len(node[1]) > 1:
        yield ("path", node[1][:-1], node[2][:-1])
    if kind == "val":
        yield from (("val", v) for v in _smaller_values(node[1]))


def _smaller_values(value: dict):
    (kind, raw), = value.items()
    if kind in ("L",) and raw:
        yield {"L": raw[:-1]}
        for i, element in enumerate(raw):
            for smaller in _smaller_values(element):
                yield {"L": raw[:i] + [smaller] + raw[i + 1:]}
    if kind == "M" and raw:
        for k in raw:
            yield {"M": {n: v for n, v in raw.items() if n != k}}
        for k, v in raw.items():
            for smaller in _smaller_values(v):
                yield {"M": dict(raw, **{k: smaller})}
    if kind in ("SS", "NS", "BS") and len(raw) > 1:
        for i in range(len(raw)):
            yield {kind: raw[:i] + raw[i + 1:]}


def _smaller_set_values(node):
    kind = node[0]
    if kind == "arith":
        yield node[2]
        yield node[3]
    if kind == "fn":
        yield from node[2]
    yield from _smaller_operand_positions(node)
    if kind in ("path", "val"):
        yield from _smaller_operands(node)


def candidates(case: dict, items: dict[int, dict]):
    """Cases one step smaller than ``case``."""
    for field in ("condition", "filter"):
        if case.get(field) is not None:
            if case["op"] in ("Scan", "Query") and field == "filter" and case.get("projection"):
                yield dict(case, filter=None)
            for smaller in _smaller_conditions(case[field]):
                yield dict(case, **{field: smaller})
    if case.get("projection"):
        paths = case["projection"]
        if len(paths) > 1:
            for i in range(len(paths)):
                yield dict(case, projection=paths[:i] + paths[i + 1:])
        if case["op"] in ("Scan", "Query") and case.get("filter") is not None:
            yield dict(case, projection=None)
        for i, path in enumerate(paths):
            for smaller in _smaller_operands(path):
                yield dict(case, projection=paths[:i] + [smaller] + paths[i + 1:])
    if case.get("update"):
        actions = case["update"]
        if len(actions) > 1:
            for i in range(len(actions)):
                yield dict(case, update=actions[:i] + actions[i + 1:])
        for i, (section, path, value) in enumerate(actions):
            for smaller in _smaller_operands(path):
                yield dict(case, update=actions[:i] + [(section, smaller, value)] + actions[i + 1:])
            if value is not None:
                smaller_values = _smaller_set_values(value) if section == "SET" else _smaller_operands(value)
                for smaller in smaller_values:
                    yield dict(case, update=actions[:i] + [(section, path, smaller)] + actions[i + 1:])
        if case.get("condition") is not None:
            yield dict(case, condition=None)
    if case["op"] == "PutItem":
        item = case["item"]
        for name in list(item):
            if name not in ("pk", "sk"):
                yield dict(case, item={k: v for k, v in item.items() if k != name})
    # The stored item: fewer attributes, simpler values.
    sk = case.get("sk")
    if sk is not None:
        current = case["override"] if case["override"] is not None else items.get(sk)
        if current is not None:
            for name in list(current):
                if name not in ("pk", "sk"):
                    yield dict(case, override={k: v for k, v in current.items() if k != name})
            for name, value in current.items():
                if name not in ("pk", "sk"):
                    for smaller in _smaller_values(value):
                        yield dict(case, override=dict(current, **{name: smaller}))


def shrink(runner: Runner, case: dict, kind: str, budget: int = 400) -> dict:
    """A smaller case with a difference of the same class."""
    if case["op"] == "Scan" and case.get("filter") is not None:  # one item by its key first
        shoal, local = runner.run(case)
        items = lambda a: {json.dumps(i, sort_keys=True) for i in a.get("result", {}).get("Items", [])}  # noqa: E731
        differing = items(shoal) ^ items(local)
        for text in sorted(differing):
            sk = int(json.loads(text).get("sk", {}).get("N", "-1")) if "sk" in json.loads(text) else None
            if sk is None:
                continue
            keyed = dict(case, op="Query", sk=sk)
            answers = runner.run(keyed)
            if not same(*answers) and difference_class(*answers) == kind:
                case = keyed
                break
    tries = 0
    progress = True
    while progress and tries < budget:
        progress = False
        for smaller in candidates(case, runner.items):
            tries += 1
            answers = runner.run(smaller)
            if not same(*answers) and difference_class(*answers) == kind:
                case = smaller
                progress = True
                break
            if tries >= budget:
                break
    return case


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first", type=int, default=0, help="number of the first case")
    parser.add_argument("--shoal", help="a running Shoal's URL (default: start one)")
    parser.add_argument("--local", help="a running DynamoDB Local's URL (default: start one)")
    parser.add_argument("--jar", help="DynamoDBLocal.jar to start")
    parser.add_argument("--json", help="write the (shrunk) differences to this file")
    parser.add_argument("--no-shrink", action="store_true")
    parser.add_argument("--max-shrink", type=int, default=40, help="shrink at most this many differences")
    args = parser.parse_args(argv)
    with servers(args.shoal, args.local, args.jar) as (shoal_url, local_url):
        items = seed_items(args.seed)
        ITEMS_BY_RUN.update(items)
        runner = Runner([Endpoint(shoal_url), Endpoint(local_url)], items)
        runner.setup()
        classes: Counter = Counter()
        known: Counter = Counter()
        open_questions: Counter = Counter()
        ops: Counter = Counter()
        outcomes: Counter = Counter()
        differences = []
        wording = 0
        started = time.monotonic()
        for number in range(args.first, args.first + args.cases):
            case = make_case(args.seed, number, items)
            ops[case["op"]] += 1
            shoal, local = runner.run(case)
            outcomes[shoal["class"] if shoal["class"] == local["class"] else "differs"] += 1
            if same(shoal, local):
                if shoal.get("message") != local.get("message"):
                    wording += 1
                continue
            reason = settled(case, shoal, local)
            if reason is not None:
                known[reason] += 1
                continue
            reason = unclear(case, shoal, local)
            if reason is not None:
                open_questions[reason] += 1
                continue
            kind = difference_class(shoal, local)
            classes[kind] += 1
            differences.append({"number": number, "op": case["op"], "class": kind, "case": case,
                                "shoal": shoal, "local": local})
        elapsed = time.monotonic() - started
        shrunk = []
        if not args.no_shrink:
            for difference in differences[: args.max_shrink]:
                small = shrink(runner, difference["case"], difference["class"])
                shoal, local = runner.run(small)
                stored = small["override"] if small["override"] is not None else items.get(small.get("sk"))
                shrunk.append({"number": difference["number"], "class": difference["class"], "op": small["op"],
                               "stored item": stored if small["op"] != "Scan" else "(seed items)",
                               "request": request(small), "shoal": shoal, "local": local})
                print(f"== case {difference['number']} ({difference['class']})")
                print(f"   item:    {json.dumps(shrunk[-1]['stored item'])}")
                print(f"   request: {small['op']} {json.dumps(request(small))}")
                print(f"   shoal:   {json.dumps(shoal)[:500]}")
                print(f"   local:   {json.dumps(local)[:500]}")
        print(f"\nseed {args.seed}: {args.cases} cases in {elapsed:.0f} s ({dict(ops)})")
        print(f"outcomes alike: {dict((k, v) for k, v in outcomes.items() if k != 'differs')}")
        print(f"differences: {len(differences)} {dict(classes)}; "
              f"{wording} more differ only in an error's wording")
        print(f"settled in Shoal's favour: {dict(known)}")
        print(f"not settled by the Developer Guide: {dict(open_questions)}")
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"seed": args.seed, "cases": args.cases, "classes": dict(classes), "settled": dict(known),
                       "unclear": dict(open_questions),
                           "differences": [{k: v for k, v in d.items() if k != "case"} | {"request": request(d["case"])}
                                           for d in differences],
                           "shrunk": shrunk}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
