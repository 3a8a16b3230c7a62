"""Randomized differential testing of Query and Scan: Shoal against
DynamoDB Local.

bench/expression_fuzz.py fuzzes what an expression means on one item; this
tool fuzzes how Query and Scan read many: key ranges, order, paging and
their limits.  Four tables cover S, N and B partition and sort keys (and a
table without a sort key), with local and global secondary indexes of every
projection (KEYS_ONLY, INCLUDE, ALL), sparse because index key attributes
are often missing, and one partition of items near the 400 KB limit so that
1 MB pages end early.  Sort keys are drawn from values that order
differently as text and as values: numbers of many magnitudes and
precisions (1e-130 to 9.99e125, 38 digits, zero written "-0" or "0.0" in
conditions), strings past ASCII (UTF-8 byte order, not UTF-16's), bytes
above 0x7f (unsigned order).

Each Query case is a random KeyConditionExpression (=, <, <=, >, >=,
BETWEEN, begins_with) or KeyConditions, with ScanIndexForward, Limit,
Select, ProjectionExpression or AttributesToGet, FilterExpression or
QueryFilter, ConsistentRead (refused on a GSI), ReturnConsumedCapacity, and
an ExclusiveStartKey that is absent, a key of a stored item or a broken one
(a member missing, extra or of another type; another partition; a sort key
the condition excludes).  The case is then paged to its end, each server
following its own LastEvaluatedKey, and every page's Items (in order),
Count, ScannedCount, LastEvaluatedKey and ConsumedCapacity are compared, or
the error's class (its wording is counted apart).  A Scan case is paged the
same way, over TotalSegments segments when it has them; as Scan's order is
the implementation's own, what is compared is the union of its pages (a
multiset), the summed Count and ScannedCount, and that every page keeps to
Limit.  Where DynamoDB documents no order (index entries with equal index
keys) or the order decides the outcome (a hand-made ExclusiveStartKey on a
Scan or an index), less is compared: see ``compare``.  Whatever DynamoDB
Local answers, a Shoal page returning more than 1 MB of item data is a
difference of its own.

Each difference is then either settled by AWS's documentation in Shoal's
favour (``settled``: each rule names its source), left open where the
documentation says nothing (``unclear``), or listed: a Shoal fault to fix.

Usage::

    python bench/query_fuzz.py [--cases N] [--seed S] [--shoal URL] [--local URL]
                               [--jar PATH] [--json OUT]

Servers are started as bench/conformance_sweep.py starts them when no URL is
given.  3,000 cases take about 40 s on two cores once both servers are warm.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import time
from collections import Counter
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conformance_sweep import Endpoint, servers  # noqa: E402
from expression_fuzz import canonical  # noqa: E402

MAX_PAGES = 40

# Sort-key values: distinct numbers (by value), strings and binaries whose
# orders differ from their texts' or UTF-16's.
NUMBERS = ["-9.9999999999999999999999999999999999999E+125", "-1e10", "-100", "-10", "-1.5", "-1",
           "-0.001", "-1e-130", "0", "1e-130", "0.000001", "0.001", "0.1", "0.5", "1",
           "1.0000000000000000000000000000000000001", "1.5", "2", "9", "10", "11", "100", "1000",
           "123456789012345678901234567890.12345678", "1e10", "1.23e38", "9.9999999999999999999999999999999999999E+125"]
# Spellings and values a condition uses besides the stored ones.
NUMBER_PROBES = ["-0", "0.0", "0E+5", "1.0", "1E+1", "100.00", "-1E-130", "0.75", "12", "-5", "5e-131", "1e126",
                 "99999999999999999999999999999999999999", "1.00000000000000000000000000000000000005"]
STRINGS = ["a", "aa", "ab", "abc", "abd", "b", "A", "Z", "0", "10", "9", "a b", " ", "é", "ä", "ab\u00e9", "ﬀ",
           "😀", "😀a", "\uffff", "\uffffa", "𝄞", "z", "a\u0000", "~"]
STRING_PROBES = ["", "a", "ab", "\u00e0", "😀", "\ud7ff", "\ue000", "aZ", "0"]
BINARIES = [b"\x00", b"\x00\x00", b"\x00\x01", b"\x01", b"\x01\x02", b"\x7f", b"\x80", b"\x80\x00", b"\xfe",
            b"\xff", b"\xff\x00", b"\xff\xff", b"a", b"ab", b"b"]
BINARY_PROBES = [b"\x00", b"\x7f\xff", b"\x80", b"\xff", b"a"]
PARTITIONS = {"S": ["p0", "p1", "big"], "N": ["1", "-1", "1e-5"], "B": [b"\x00", b"\xff", b"big"]}
PARTITION_PROBES = {"S": ["p9", "P0"], "N": ["1.0", "2", "-0"], "B": [b"\x01", b"\x00\x00"]}

# name, hash (name, type), range or None, LSIs [(name, (attr, type), projection, non-key)],
# GSIs [(name, hash, range or None, projection, non-key)]
TABLES = [
    {"name": "qf_sn", "hash": ("pk", "S"), "range": ("sk", "N"),
     "lsis": [("l_keys", ("lx", "S"), "KEYS_ONLY", None), ("l_inc", ("ln", "N"), "INCLUDE", ["a"])],
     "gsis": [("g_all", ("gh", "S"), ("gr", "N"), "ALL", None),
              ("g_inc", ("gb", "B"), None, "INCLUDE", ["a", "b"]),
              ("g_keys", ("gh", "S"), ("lx", "S"), "KEYS_ONLY", None)]},
    {"name": "qf_ns", "hash": ("pk", "N"), "range": ("sk", "S"),
     "lsis": [("l_all", ("lb", "B"), "ALL", None)],
     "gsis": [("g_sk", ("sk", "S"), ("pk", "N"), "ALL", None),
              ("g_bn", ("gb", "B"), ("gn", "N"), "KEYS_ONLY", None)]},
    {"name": "qf_bb", "hash": ("pk", "B"), "range": ("sk", "B"), "lsis": [],
     "gsis": [("g_n", ("gn", "N"), ("sk", "B"), "INCLUDE", ["a"])]},
    {"name": "qf_h", "hash": ("pk", "S"), "range": None, "lsis": [],
     "gsis": [("g_all", ("gh", "S"), ("gr", "N"), "ALL", None),
              ("g_bs", ("gb", "B"), ("gs", "S"), "INCLUDE", ["c"])]},
]
SPEC = {t["name"]: t for t in TABLES}
NON_KEY = ["a", "b", "c", "d", "pz"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wire(kind: str, raw) -> dict:
    """An attribute value of key type ``kind`` from a pool entry."""
    return {kind: b64(raw) if kind == "B" else raw}


def pool(kind: str) -> list:
    return {"S": STRINGS, "N": NUMBERS, "B": BINARIES}[kind]


def probes(kind: str) -> list:
    return {"S": STRING_PROBES, "N": NUMBER_PROBES, "B": BINARY_PROBES}[kind]


# -- tables and items -----------------------------------------------------------------------


def key_attrs(spec: dict) -> dict[str, str]:
    """Every key attribute of the table and its indexes: name -> type."""
    out = {spec["hash"][0]: spec["hash"][1]}
    if spec["range"]:
        out[spec["range"][0]] = spec["range"][1]
    for _, (name, kind), _, _ in spec["lsis"]:
        out[name] = kind
    for _, h, r, _, _ in spec["gsis"]:
        for part in (h, r):
            if part:
                out[part[0]] = part[1]
    return out


def create_request(spec: dict) -> dict:
    attrs = key_attrs(spec)
    schema = [{"AttributeName": spec["hash"][0], "KeyType": "HASH"}]
    if spec["range"]:
        schema.append({"AttributeName": spec["range"][0], "KeyType": "RANGE"})

    def projection(kind, non_key):
        out = {"ProjectionType": kind}
        if non_key:
            out["NonKeyAttributes"] = non_key
        return out

    body = {"TableName": spec["name"], "KeySchema": schema, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()]}
    if spec["lsis"]:
        body["LocalSecondaryIndexes"] = [
            {"IndexName": name, "KeySchema": [schema[0], {"AttributeName": attr, "KeyType": "RANGE"}],
             "Projection": projection(kind, non_key)} for name, (attr, _), kind, non_key in spec["lsis"]]
    if spec["gsis"]:
        body["GlobalSecondaryIndexes"] = [
            {"IndexName": name, "KeySchema": [{"AttributeName": h[0], "KeyType": "HASH"}]
             + ([{"AttributeName": r[0], "KeyType": "RANGE"}] if r else []),
             "Projection": projection(kind, non_key)} for name, h, r, kind, non_key in spec["gsis"]]
    return body


def make_items(seed: int, spec: dict) -> list[dict]:
    rng = random.Random(f"items-{seed}-{spec['name']}")
    hash_name, hash_kind = spec["hash"]
    keys = []
    if spec["range"]:
        range_name, range_kind = spec["range"]
        for partition in PARTITIONS[hash_kind]:
            big = partition in ("big", b"big")
            count = 8 if big else rng.randint(10, len(pool(range_kind)))
            for sort in rng.sample(pool(range_kind), count):
                keys.append(({hash_name: wire(hash_kind, partition), range_name: wire(range_kind, sort)}, big))
    else:
        for value in STRINGS + [f"h{i}" for i in range(15)]:
            keys.append(({hash_name: wire(hash_kind, value)}, value == "h0" or value == "h1"))
    items = []
    index_attrs = {n: t for n, t in key_attrs(spec).items() if n not in (hash_name, (spec["range"] or ("",))[0])}
    for key, big in keys:
        item = dict(key)
        for name, kind in index_attrs.items():
            if rng.random() < 0.7:
                choices = ["g0", "g1", "g2"] if name == "gh" else pool(kind)
                item[name] = wire(kind, rng.choice(choices) if name != "gh" else rng.choice(choices))
        if rng.random() < 0.8:
            item["a"] = {"N": rng.choice(NUMBERS[3:20])}
        if rng.random() < 0.7:
            item["b"] = {"S": rng.choice(STRINGS)}
        if rng.random() < 0.5:
            item["c"] = {"SS": sorted(set(rng.sample(STRINGS, rng.randint(1, 3))))}
        if rng.random() < 0.4:
            item["d"] = {"M": {"x": {"N": rng.choice(NUMBERS)}, "y": {"L": [{"S": "v"}, {"BOOL": True}]}}}
        if big:
            item["pz"] = {"S": "x" * rng.randint(150_000, 395_000)}
        elif rng.random() < 0.1:
            item["pz"] = {"S": "y" * rng.randint(1_000, 60_000)}
        items.append(item)
    return items


# -- cases ------------------------------------------------------------------------------------


def read_keys(spec: dict, index: str | None):
    """(hash, range or None, projection, non-key, local) of what a request reads."""
    if index is None:
        return spec["hash"], spec["range"], "ALL", None, False
    for name, attr, kind, non_key in spec["lsis"]:
        if name == index:
            return spec["hash"], attr, kind, non_key, True
    for name, h, r, kind, non_key in spec["gsis"]:
        if name == index:
            return h, r, kind, non_key, False
    raise KeyError(index)


class Generator:
    def __init__(self, rng: random.Random, items: dict[str, list[dict]]):
        self.rng = rng
        self.items = items

    def case(self, number: int) -> dict:
        rng = self.rng
        spec = rng.choice(TABLES)
        indexes = [i[0] for i in spec["lsis"]] + [g[0] for g in spec["gsis"]]
        op = "Query" if rng.random() < 0.7 else "Scan"
        index = rng.choice(indexes) if indexes and rng.random() < 0.5 else None
        if rng.random() < 0.01:
            index = "no_such_index"
        case = {"number": number, "op": op, "table": spec["name"], "index": index}
        body = {"TableName": spec["name"]}
        if index is not None:
            body["IndexName"] = index
        names, values = {}, {}
        if op == "Query" and index != "no_such_index":
            self.key_condition(spec, index, body, names, values)
        elif op == "Query":
            body["KeyConditionExpression"] = "pk = :p"
            values[":p"] = {"S": "p0"}
        legacy = "KeyConditions" in body or (rng.random() < 0.1 and "KeyConditionExpression" not in body)
        self.shape(spec, op, legacy, body, names, values)
        if op == "Scan" and rng.random() < 0.35:
            total = rng.choice([1, 2, 3, 4, 7])
            case["segments"] = total
            if rng.random() < 0.04:  # broken: a segment past the total, or one member alone
                case["segments"] = None
                body.update(rng.choice([{"Segment": total, "TotalSegments": total}, {"Segment": 0},
                                        {"TotalSegments": total}]))
        if names:
            body["ExpressionAttributeNames"] = names
        if values:
            body["ExpressionAttributeValues"] = values
        if rng.random() < (0.3 if op == "Query" else 0.15):
            esk = self.start_key(spec, index, body)
            if esk is not None:
                body["ExclusiveStartKey"] = esk
        case["body"] = body
        return case

    def partition_value(self, kind: str, attr: str, spec: dict):
        rng = self.rng
        if rng.random() < 0.03:  # the wrong type
            return rng.choice([{"S": "p0"}, {"N": "1"}, {"B": "AA=="}, {"SS": ["p0"]}])
        present = [i[attr] for i in self.items[spec["name"]] if attr in i]
        if present and rng.random() < 0.85:
            return rng.choice(present)
        return wire(kind, rng.choice(PARTITION_PROBES[kind] + PARTITIONS[kind])) if attr == "pk" else \
            wire(kind, rng.choice(probes(kind) + (["g0", "g1", "g9"] if attr == "gh" else [])))

    def sort_value(self, kind: str, attr: str, spec: dict, partition: dict | None, hash_attr: str):
        rng = self.rng
        if rng.random() < 0.02:
            return rng.choice([{"S": "a"}, {"N": "1"}, {"B": "AA=="}])
        present = [i[attr] for i in self.items[spec["name"]] if attr in i
                   and (partition is None or i.get(hash_attr) == partition)]
        if present and rng.random() < 0.7:
            return rng.choice(present)
        return wire(kind, rng.choice(probes(kind) + pool(kind)))

    def key_condition(self, spec: dict, index: str | None, body: dict, names: dict, values: dict) -> None:
        rng = self.rng
        (hash_attr, hash_kind), range_, *_ = read_keys(spec, index)
        partition = self.partition_value(hash_kind, hash_attr, spec)
        if rng.random() < 0.015:
            partition = {hash_kind: ""} if hash_kind != "N" else {"N": "1"}
        conditions = []  # (attr, op, [values])
        if rng.random() > 0.01:
            conditions.append((hash_attr, "EQ", [partition]))
        if range_ is not None and rng.random() < 0.75:
            range_attr, range_kind = range_
            ops = ["EQ", "LT", "LE", "GT", "GE", "BETWEEN"] + (["BEGINS_WITH"] * 2 if range_kind != "N" else [])
            op = rng.choice(ops)
            if rng.random() < 0.02:
                op = "BEGINS_WITH"
            low = self.sort_value(range_kind, range_attr, spec, partition, hash_attr)
            if op == "BEGINS_WITH":
                value = low
                ((vkind, text),) = value.items()
                if vkind == "S" and text:
                    value = {"S": text[: rng.randint(0 if rng.random() < 0.05 else 1, len(text))]}
                elif vkind == "B":
                    raw = base64.b64decode(text)
                    value = {"B": b64(raw[: rng.randint(0 if rng.random() < 0.05 else 1, len(raw))])}
                conditions.append((range_attr, op, [value]))
            elif op == "BETWEEN":
                high = self.sort_value(range_kind, range_attr, spec, partition, hash_attr)
                pair = [low, high]
                if list(low) == list(high):  # a wrong-typed bound stays as drawn
                    pair.sort(key=_order)
                if rng.random() < 0.08:
                    pair.reverse()
                conditions.append((range_attr, op, pair))
            else:
                conditions.append((range_attr, op, [low]))
        if rng.random() < 0.02:  # a condition on a non-key attribute
            conditions.append(("a", "EQ", [{"N": "1"}]))
        rng.shuffle(conditions)
        if rng.random() < 0.15:
            if conditions and rng.random() < 0.1:  # an operator or a value count KeyConditions refuses
                attr, op, vals = conditions[-1]
                op, vals = rng.choice([("NE", vals[:1]), ("IN", vals), ("CONTAINS", vals[:1]), ("NULL", []),
                                       ("NOT_NULL", []), ("EQ", vals * 2), ("BETWEEN", vals[:1]), ("XX", vals)])
                conditions[-1] = (attr, op, vals)
            body["KeyConditions"] = {attr: {"ComparisonOperator": op, "AttributeValueList": vals}
                                     for attr, op, vals in conditions}
            return
        parts = []
        for number, (attr, op, vals) in enumerate(conditions):
            ref = attr
            if rng.random() < 0.4:
                ref = f"#k{number}"
                names[ref] = attr
            refs = []
            for j, v in enumerate(vals):
                values[f":k{number}_{j}"] = v
                refs.append(f":k{number}_{j}")
            if op == "BETWEEN":
                parts.append(f"{ref} BETWEEN {refs[0]} AND {refs[1]}")
            elif op == "BEGINS_WITH":
                parts.append(f"begins_with({ref}, {refs[0]})")
            else:
                symbol = {"EQ": "=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}[op]
                if rng.random() < 0.2:  # the value first: the operator mirrored
                    mirrored = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}[symbol]
                    parts.append(f"{refs[0]} {mirrored} {ref}")
                else:
                    parts.append(f"{ref} {symbol} {refs[0]}")
        if rng.random() < 0.1 and parts:
            parts = [f"({p})" for p in parts]
        body["KeyConditionExpression"] = " AND ".join(parts) if parts else "pk = pk"

    def shape(self, spec: dict, op: str, legacy: bool, body: dict, names: dict, values: dict) -> None:
        """The members every read has: Select, projection, filter, Limit, ..."""
        rng = self.rng
        attrs = list(key_attrs(spec)) + NON_KEY
        if rng.random() < 0.3:
            body["Limit"] = rng.choice([1, 1, 2, 3, 5, 7, 10, 25, 100])
        if op == "Query" and rng.random() < 0.5:
            body["ScanIndexForward"] = rng.random() < 0.5
        if rng.random() < 0.25:
            body["ConsistentRead"] = rng.random() < (0.25 if body.get("IndexName", "l").startswith("g") else 0.7)
        if rng.random() < 0.4:
            body["ReturnConsumedCapacity"] = rng.choice(["TOTAL", "INDEXES", "NONE"])
        projection = None
        if rng.random() < 0.3:
            projection = rng.sample(attrs + ["d.x", "d.y[1]", "zz"], rng.randint(1, 4))
            if legacy or rng.random() < 0.05:
                projection = [p for p in projection if "." not in p and "[" not in p] or ["a"]
                body["AttributesToGet"] = projection
            else:
                refs = []
                for p in projection:
                    if p == "b" and rng.random() < 0.5:
                        names["#" + p] = p
                        refs.append("#" + p)
                    else:
                        refs.append(p)
                body["ProjectionExpression"] = ", ".join(refs)
        if rng.random() < 0.35:
            selects = ["SPECIFIC_ATTRIBUTES"] * 4 if projection else ["ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES",
                                                                      "COUNT", "COUNT"]
            body["Select"] = rng.choice(selects + ["ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES",
                                                   "COUNT"])
        if rng.random() < 0.3:
            filters = [self.filter_condition(rng.choice(["a", "b", "c", "d", "pz", "gh", "zz"]))
                       for _ in range(rng.randint(1, 2))]
            if legacy or rng.random() < 0.05:
                member = "QueryFilter" if op == "Query" else "ScanFilter"
                body[member] = {attr: {"ComparisonOperator": cop, "AttributeValueList": vals}
                                for attr, cop, vals in filters}
                if len(filters) > 1 and rng.random() < 0.5:
                    body["ConditionalOperator"] = rng.choice(["AND", "OR"])
            else:
                texts = []
                for number, (attr, cop, vals) in enumerate(filters):
                    refs = []
                    for j, v in enumerate(vals):
                        values[f":f{number}_{j}"] = v
                        refs.append(f":f{number}_{j}")
                    texts.append(_filter_text(attr, cop, refs))
                body["FilterExpression"] = f" {rng.choice(['AND', 'OR'])} ".join(texts)

    def filter_condition(self, attr: str):
        rng = self.rng
        if attr in ("a", "gr", "gn", "ln"):
            op = rng.choice(["EQ", "NE", "LT", "GE", "BETWEEN", "NOT_NULL", "NULL"])
            vals = sorted([{"N": rng.choice(NUMBERS)} for _ in range(2)], key=_order)
            return attr, op, [] if op.endswith("NULL") else vals[: 2 if op == "BETWEEN" else 1]
        if attr == "c":
            op = rng.choice(["CONTAINS", "NOT_CONTAINS", "NOT_NULL", "NULL"])
            return attr, op, [] if op.endswith("NULL") else [{"S": rng.choice(STRINGS)}]
        op = rng.choice(["EQ", "BEGINS_WITH", "GT", "NOT_NULL", "NULL"])
        return attr, op, [] if op.endswith("NULL") else [{"S": rng.choice(STRINGS + ["g0", "g1", "x"])[:2]}]

    @staticmethod
    def partition_of(body: dict, hash_attr: str) -> dict | None:
        """The partition value a Query's key condition names, if it can be found."""
        if "KeyConditions" in body:
            condition = body["KeyConditions"].get(hash_attr) or {}
            return (condition.get("AttributeValueList") or [None])[0]
        names = {v: k for k, v in body.get("ExpressionAttributeNames", {}).items()}
        text = body.get("KeyConditionExpression") or ""
        for part in text.replace("(", "").replace(")", "").split(" AND "):
            words = part.split()
            if len(words) == 3 and words[1] == "=":
                for name, value in ((words[0], words[2]), (words[2], words[0])):
                    if names.get(hash_attr) == name or name == hash_attr:
                        return body.get("ExpressionAttributeValues", {}).get(value)
        return None

    def start_key(self, spec: dict, index: str | None, body: dict) -> dict | None:
        """A hand-made ExclusiveStartKey: a stored item's key (with the index's
        key attributes when reading one), often broken one way or another."""
        rng = self.rng
        if index == "no_such_index":
            return None
        (hash_attr, _), range_, *_ = read_keys(spec, index)
        names = [spec["hash"][0]] + ([spec["range"][0]] if spec["range"] else [])
        names += [n for n in (hash_attr, range_[0] if range_ else None) if n and n not in names]
        candidates = [i for i in self.items[spec["name"]] if all(n in i for n in names)]
        partition = self.partition_of(body, hash_attr)
        inside = [i for i in candidates if i.get(hash_attr) == partition]
        if inside and rng.random() < 0.7:  # mostly one of the partition read, often in the range
            candidates = inside
        if not candidates:
            return None
        item = rng.choice(candidates)
        esk = {n: item[n] for n in names}
        fault = rng.random()
        if fault < 0.06:
            esk.pop(rng.choice(names))
        elif fault < 0.12:
            esk["a"] = {"N": "1"}
        elif fault < 0.18:
            name = rng.choice(names)
            ((kind, _),) = esk[name].items()
            esk[name] = {"S": "x"} if kind != "S" else {"N": "1"}
        elif fault < 0.22:
            name = rng.choice(names)
            ((kind, _),) = esk[name].items()
            esk[name] = wire(kind, rng.choice(probes(kind)))
        elif fault < 0.24:
            esk = {}
        return esk


def _order(value: dict):
    ((kind, raw),) = value.items()
    if kind == "N":
        return Decimal(raw)
    if kind == "B":
        return base64.b64decode(raw)
    return raw.encode("utf-8", "surrogatepass")


def _filter_text(attr: str, op: str, refs: list[str]) -> str:
    if op == "NOT_NULL":
        return f"attribute_exists({attr})"
    if op == "NULL":
        return f"attribute_not_exists({attr})"
    if op == "CONTAINS":
        return f"contains({attr}, {refs[0]})"
    if op == "NOT_CONTAINS":
        return f"NOT contains({attr}, {refs[0]})"
    if op == "BEGINS_WITH":
        return f"begins_with({attr}, {refs[0]})"
    if op == "BETWEEN":
        return f"{attr} BETWEEN {refs[0]} AND {refs[1]}"
    symbol = {"EQ": "=", "NE": "<>", "LT": "<", "GE": ">=", "GT": ">"}[op]
    return f"{attr} {symbol} {refs[0]}"


# -- running and comparing --------------------------------------------------------------------


def error_class(status: int, body: dict) -> str:
    return str(body.get("__type", "")).rsplit("#", 1)[-1] or f"HTTP {status}"


def page_view(body: dict) -> dict:
    """What is compared of one Query page."""
    out = {"Count": body.get("Count"), "ScannedCount": body.get("ScannedCount"),
           "LastEvaluatedKey": canonical(body.get("LastEvaluatedKey"))}
    if "Items" in body:
        out["Items"] = canonical(body["Items"])
    if "ConsumedCapacity" in body:
        out["ConsumedCapacity"] = body["ConsumedCapacity"]
    return out


def run_query(endpoint: Endpoint, body: dict) -> dict:
    """Every page of a Query: {"pages": [...]} or {"error": ..., "pages": [...]}."""
    pages = []
    biggest = 0
    request = dict(body)
    for _ in range(MAX_PAGES):
        status, answer = endpoint.call("Query", request)
        if status != 200:
            return {"pages": pages, "error": error_class(status, answer), "message": answer.get("message",
                                                                                             answer.get("Message"))}
        pages.append(page_view(answer))
        biggest = max(biggest, _returned_bytes(answer))
        if "LastEvaluatedKey" not in answer:
            break
        request = dict(body, ExclusiveStartKey=answer["LastEvaluatedKey"])
    return {"pages": pages, "biggest": biggest}


def _returned_bytes(answer: dict) -> int:
    """About how many bytes of item data a page returned, counted roughly
    as DynamoDB sizes items (more than 1 MB of them means it read more)."""
    return sum(len(name.encode()) + _value_bytes(value) for item in answer.get("Items", []) for name, value in item.items())


def _value_bytes(value: dict) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode("utf-8", "surrogatepass"))
    if kind == "N":
        return len(raw) // 2 + 1
    if kind == "B":
        return len(raw) * 3 // 4
    return len(json.dumps(raw))  # containers and the rest: an upper bound, small here


def run_scan(endpoint: Endpoint, body: dict, segments: int | None) -> dict:
    """Every page of every segment of a Scan, reduced to what does not depend
    on the order an implementation scans in."""
    items, count, scanned, pages, over_limit, biggest = [], 0, 0, 0, 0, 0
    capacity = []
    for segment in range(segments or 1):
        request = dict(body)
        if segments:
            request.update(Segment=segment, TotalSegments=segments)
        first = request
        for _ in range(MAX_PAGES * 3):
            status, answer = endpoint.call("Scan", request)
            if status != 200:
                return {"error": error_class(status, answer), "message": answer.get("message", answer.get("Message"))}
            pages += 1
            biggest = max(biggest, _returned_bytes(answer))
            items.extend(json.dumps(canonical(i), sort_keys=True) for i in answer.get("Items", []))
            count += answer.get("Count", 0)
            scanned += answer.get("ScannedCount", 0)
            if "Limit" in body and answer.get("ScannedCount", 0) > body["Limit"]:
                over_limit += 1
            if "ConsumedCapacity" in answer:
                capacity.append(answer["ConsumedCapacity"])
            if "LastEvaluatedKey" not in answer:
                break
            request = dict(first, ExclusiveStartKey=answer["LastEvaluatedKey"])
    out = {"items": sorted(items), "Count": count, "ScannedCount": scanned, "over_limit": over_limit,
           "biggest": biggest}
    if capacity:
        out["capacity_pages"] = len(capacity)
        out["capacity_shape"] = sorted({json.dumps(_shape(c), sort_keys=True) for c in capacity})
        if pages == 1:
            out["ConsumedCapacity"] = capacity[0]
    return out


def _shape(capacity):
    """Which members a ConsumedCapacity has (not their units, which depend on the pages)."""
    if isinstance(capacity, dict):
        return {k: _shape(v) for k, v in capacity.items()}
    return type(capacity).__name__


def compare(case: dict, shoal: dict, local: dict) -> str | None:
    """The class of the first difference between two runs of a case, or None.

    Where DynamoDB leaves an order to the implementation, only what does not
    depend on it is compared: a Scan's pages as a multiset; an index Query's
    entries with equal index keys (DynamoDB documents no order among them)
    as a multiset within each run of equal keys; and after a hand-made
    ExclusiveStartKey on a Scan or an index (where the entry it names sits
    among the implementation's own order) only the outcome's class."""
    if "error" in shoal or "error" in local:
        if shoal.get("error") != local.get("error"):
            return f"outcome {shoal.get('error', 'success')} vs {local.get('error', 'success')}"
        return None
    if shoal.get("biggest", 0) > PAGE_BYTES * 1.01:  # 1% for the estimate's slack
        return "a page over 1 MB"
    handmade = "ExclusiveStartKey" in case["body"]
    if case["op"] == "Scan":
        if handmade:
            return None
        for member in ("items", "Count", "ScannedCount", "over_limit", "capacity_shape", "ConsumedCapacity"):
            if shoal.get(member) != local.get(member):
                return f"scan {member}"
        return None
    if shoal["pages"] == local["pages"]:
        return None
    if handmade and case["index"] is not None:
        return None
    mine, theirs = _stream(case, shoal["pages"]), _stream(case, local["pages"])
    if mine != theirs:
        for member, a, b in zip(("items", "Count", "ScannedCount"), mine, theirs):
            if a != b:
                return f"query {member}"
    if case["index"] is not None and _ties(case, shoal["pages"] + local["pages"]):
        return None  # the same entries, in another order among equal index keys
    if [(p["Count"], p["ScannedCount"]) for p in shoal["pages"]] != \
            [(p["Count"], p["ScannedCount"]) for p in local["pages"]]:
        return "page boundaries"
    for a, b in zip(shoal["pages"], local["pages"]):
        for member in ("Items", "LastEvaluatedKey", "ConsumedCapacity"):
            if a.get(member) != b.get(member):
                return f"page {member}"
    return "page count"


def _index_key(case: dict, item: dict) -> str:
    """The index key of an index Query's item (what orders it), as text."""
    spec = SPEC[case["table"]]
    (hash_attr, _), range_, *_ = read_keys(spec, case["index"])
    return json.dumps([item.get(hash_attr), item.get(range_[0]) if range_ else None], sort_keys=True)


def _stream(case: dict, pages: list) -> tuple:
    """A Query's pages joined: its items (on an index, as runs of equal
    index keys, each a sorted multiset), summed Count and ScannedCount."""
    items = [i for p in pages for i in p.get("Items", [])]
    if case["index"] is not None:
        runs: list = []
        for item in items:
            key = _index_key(case, item)
            if runs and runs[-1][0] == key:
                runs[-1][1].append(json.dumps(item, sort_keys=True))
            else:
                runs.append((key, [json.dumps(item, sort_keys=True)]))
        items = [(key, sorted(members)) for key, members in runs]
    return items, sum(p["Count"] for p in pages), sum(p["ScannedCount"] for p in pages)


def _ties(case: dict, pages: list) -> bool:
    """Whether an index Query returned entries with equal index keys (or
    projected away the keys that would tell)."""
    keys = [_index_key(case, i) for p in pages for i in p.get("Items", [])]
    return len(set(keys)) < len(keys) or any("null" in k for k in keys) or not keys


def wording(shoal: dict, local: dict) -> bool:
    return "error" in shoal and shoal.get("message") != local.get("message")


PAGE_BYTES = 1024 * 1024
PAGE_UNITS = {False: 1024 * 1024 / 4096 / 2, True: 1024 * 1024 / 4096}  # 1 MB read, eventual or strong


def settled(case: dict, shoal: dict, local: dict, kind: str, endpoints) -> str | None:
    """A difference the Developer Guide decides in Shoal's favour: the rule's
    name, or None.

    - "DynamoDB paginates the results ... into pages of data that are 1 MB in
      size (or less)" (Query.Pagination): DynamoDB Local ends a page after the
      item that passes 1 MB, so its pages read more; seen again with
      ReturnConsumedCapacity, Local's page units pass 1 MB's.
    - A Query or Scan that stops at Limit answers LastEvaluatedKey even when
      no item is left ("If LastEvaluatedKey is not empty, it does not
      necessarily mean that there is more data in the result set",
      Query.Pagination): Shoal ends such a run with an empty page.
    - "If you perform a read operation on an item that does not exist,
      DynamoDB still consumes provisioned read throughput" (read and write
      operations): an empty Query page costs 0.5 (1 strongly consistent),
      where DynamoDB Local says 0.0.
    """
    if local.get("error") in ("InternalFailure", "InternalServerError") and shoal.get("error") == "ValidationException":
        return "a request DynamoDB Local answers with a 500"
    if kind == "page boundaries":
        again = [run_query(endpoint, dict(case["body"], ReturnConsumedCapacity="TOTAL")) for endpoint in endpoints]
        strong = bool(case["body"].get("ConsistentRead"))
        if any(_units(p) > _page_units(p, strong) for p in again[0]["pages"]):
            return None  # Shoal's own page passed 1 MB
        if any(_units(p) > PAGE_UNITS[strong] for p in again[1]["pages"]):
            return "1 MB pages: Local's passes 1 MB"
        if _entry_smaller(case) and not _fetches(case) and len(local["pages"]) > len(shoal["pages"]):
            return "index pages filled by the entry's size"
        limit = case["body"].get("Limit")
        pages = shoal["pages"]
        if (limit and len(pages) == len(local["pages"]) + 1 and pages[-1]["ScannedCount"] == 0
                and pages[-2]["ScannedCount"] == limit):
            return "LastEvaluatedKey at Limit on the last item"
        return None
    if kind == "page LastEvaluatedKey":
        pages = shoal["pages"]
        limit = case["body"].get("Limit")
        if limit and len(pages) == len(local["pages"]) + 1 and pages[-1]["ScannedCount"] == 0:
            return "LastEvaluatedKey at Limit on the last item"
    if kind in ("page ConsumedCapacity", "page count"):
        for a, b in zip(shoal["pages"], local["pages"]):
            if a.get("ConsumedCapacity") != b.get("ConsumedCapacity"):
                if a["ScannedCount"] == 0 and _units(b) == 0.0 and _units(a) in (0.5, 1.0):
                    return "an empty page's minimum charge"
                return None
        if len(shoal["pages"]) == len(local["pages"]) + 1 and shoal["pages"][-1]["ScannedCount"] == 0:
            return "LastEvaluatedKey at Limit on the last item"
    if kind in ("scan items", "scan Count") and _unprojected_filter(case):
        return "an index Scan's filter sees the index entry"
    if kind == "scan ConsumedCapacity" and case["index"] is not None:
        if "ConsumedCapacity" in shoal and "ConsumedCapacity" in local and _units(local) > _units(shoal):
            return "index reads charged by the entry's size"
        if _entry_smaller(case) and not _fetches(case) and \
                local.get("capacity_pages", 0) > shoal.get("capacity_pages", 0):
            return "index pages filled by the entry's size"
    return None


def _page_units(page: dict, strong: bool) -> float:
    """The most units a page of at most 1 MB may cost: 1 MB's, plus the
    rounding of each item an LSI read fetches on its own."""
    return PAGE_UNITS[strong] + page["ScannedCount"] * (1.0 if strong else 0.5)


def _fetches(case: dict) -> bool:
    """Whether a read of a local secondary index fetches items from the
    table (it asks for attributes the index does not project)."""
    if case["index"] is None:
        return False
    spec = SPEC[case["table"]]
    (hash_attr, _), range_, kind, non_key, local = read_keys(spec, case["index"])
    if not local or kind == "ALL":
        return False
    body = case["body"]
    if body.get("Select") == "ALL_ATTRIBUTES":
        return True
    projected = {spec["hash"][0], spec["range"][0], range_[0]} | set(non_key or ())
    wanted = body.get("AttributesToGet") or [
        p.strip().split(".")[0].split("[")[0] for p in (body.get("ProjectionExpression") or "").split(",") if p.strip()]
    names = body.get("ExpressionAttributeNames", {})
    return any(names.get(w, w) not in projected for w in wanted)


def _entry_smaller(case: dict) -> bool:
    """Whether an index read's entries are smaller than the table's items
    (the index does not project every attribute)."""
    return case["index"] is not None and read_keys(SPEC[case["table"]], case["index"])[2] != "ALL"


def unclear(case: dict, shoal: dict, local: dict, kind: str) -> str | None:
    """A difference AWS's documentation does not settle: the question, or None."""
    body = case["body"]
    if kind == "outcome success vs ValidationException" and case["op"] == "Query" and "ExclusiveStartKey" in body:
        if local.get("message") == "The provided starting key does not match the range key predicate":
            return "a start key at the range's last key in the read's direction: Local refuses it"
    if kind == "scan ConsumedCapacity" and case["index"] is not None and read_keys(
            SPEC[case["table"]], case["index"])[4]:
        return "units of an LSI read that fetches from the table: Local charges them to the index"
    return None


def _unprojected_filter(case: dict) -> bool:
    """Whether a read of an index filters on an attribute the index does
    not project.  A Query refuses that; a Scan reads the index entries as
    they are, where such an attribute is absent (a PartiQL scan of an index
    with such a filter "matches nothing rather than failing", as
    nubo-db/dynoxide recorded DynamoDB answering), and DynamoDB Local
    evaluates the filter on the table's item instead."""
    if case["index"] is None:
        return False
    spec = SPEC[case["table"]]
    (hash_attr, _), range_, kind, non_key, _ = read_keys(spec, case["index"])
    if kind == "ALL":
        return False
    projected = {spec["hash"][0], hash_attr} | set(non_key or ())
    projected |= {a[0] for a in (spec["range"], range_) if a}
    body = case["body"]
    named = set((body.get("ScanFilter") or body.get("QueryFilter") or {}))
    text = body.get("FilterExpression") or ""
    named |= {w for w in text.replace("(", " ").replace(")", " ").replace(",", " ").split() if w in key_attrs(spec)
              or w in NON_KEY or w == "zz"}
    return bool(named - projected)


def _units(page: dict):
    return (page.get("ConsumedCapacity") or {}).get("CapacityUnits", 0)


def setup(endpoints: list[Endpoint], items: dict[str, list[dict]]) -> None:
    for spec in TABLES:
        for endpoint in endpoints:
            endpoint.call("DeleteTable", {"TableName": spec["name"]})
            status, body = endpoint.call("CreateTable", create_request(spec))
            if status != 200:
                raise SystemExit(f"CreateTable {spec['name']}: {status} {body}")
            for _ in range(100):
                described = endpoint.call("DescribeTable", {"TableName": spec["name"]})[1].get("Table", {})
                if described.get("TableStatus") == "ACTIVE" and all(
                        g.get("IndexStatus") == "ACTIVE" for g in described.get("GlobalSecondaryIndexes", [])):
                    break
                time.sleep(0.1)
            for item in items[spec["name"]]:
                status, body = endpoint.call("PutItem", {"TableName": spec["name"], "Item": item})
                if status != 200:
                    raise SystemExit(f"PutItem {spec['name']}: {status} {body}")


def _brief(value, limit: int = 700) -> str:
    text = json.dumps(value)
    text = text.replace("x" * 100, "x…").replace("y" * 100, "y…")
    while "x…x…" in text or "y…y…" in text:
        text = text.replace("x…x…", "x…").replace("y…y…", "y…")
    return text[:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shoal", help="a running Shoal's URL (default: start one)")
    parser.add_argument("--local", help="a running DynamoDB Local's URL (default: start one)")
    parser.add_argument("--jar", help="DynamoDBLocal.jar to start")
    parser.add_argument("--json", help="write the differences to this file")
    parser.add_argument("--show", type=int, default=30, help="print at most this many differences")
    parser.add_argument("--only", help="print only differences of classes containing this")
    args = parser.parse_args(argv)
    items = {spec["name"]: make_items(args.seed, spec) for spec in TABLES}
    with servers(args.shoal, args.local, args.jar) as (shoal_url, local_url):
        shoal_end, local_end = Endpoint(shoal_url), Endpoint(local_url)
        setup([shoal_end, local_end], items)
        generator = Generator(random.Random(f"cases-{args.seed}"), items)
        classes: Counter = Counter()
        known: Counter = Counter()
        open_questions: Counter = Counter()
        outcomes: Counter = Counter()
        ops: Counter = Counter()
        worded = 0
        wordings: Counter = Counter()
        examples: dict = {}
        differences = []
        started = time.monotonic()
        for number in range(args.cases):
            case = generator.case(number)
            ops[case["op"]] += 1
            if case["op"] == "Query":
                shoal, local = run_query(shoal_end, case["body"]), run_query(local_end, case["body"])
            else:
                shoal = run_scan(shoal_end, case["body"], case.get("segments"))
                local = run_scan(local_end, case["body"], case.get("segments"))
            kind = compare(case, shoal, local)
            outcomes[shoal.get("error", "success") if kind is None or not kind.startswith("outcome")
                     else "differs"] += 1
            if kind is None:
                if wording(shoal, local):
                    worded += 1
                    wordings[(shoal["message"], local["message"])] += 1
                    examples.setdefault((shoal["message"], local["message"]), case["body"])
                continue
            reason = settled(case, shoal, local, kind, (shoal_end, local_end))
            if reason is not None:
                known[reason] += 1
                continue
            reason = unclear(case, shoal, local, kind)
            if reason is not None:
                open_questions[reason] += 1
                continue
            classes[kind] += 1
            differences.append({"number": number, "class": kind, "op": case["op"], "request": case["body"],
                                "segments": case.get("segments"), "shoal": shoal, "local": local})
        elapsed = time.monotonic() - started
        shown = [d for d in differences if not args.only or args.only in d["class"]][: args.show]
        for d in shown:
            print(f"== case {d['number']} ({d['class']}) {d['op']}"
                  + (f" over {d['segments']} segments" if d["segments"] else ""))
            print(f"   request: {_brief(d['request'])}")
            print(f"   shoal:   {_brief(d['shoal'], 1200)}")
            print(f"   local:   {_brief(d['local'], 1200)}")
        print(f"\nseed {args.seed}: {args.cases} cases in {elapsed:.0f} s ({dict(ops)})")
        print(f"outcomes alike: {dict((k, v) for k, v in outcomes.items() if k != 'differs')}")
        print(f"differences: {len(differences)} {dict(classes)}; {worded} more differ only in an error's wording")
        print(f"settled in Shoal's favour: {dict(known)}")
        print(f"not settled by AWS's documentation: {dict(open_questions)}")
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"seed": args.seed, "cases": args.cases, "classes": dict(classes), "settled": dict(known),
                           "unclear": dict(open_questions), "differences": differences,
                           "wordings": [[n, a, b, examples[(a, b)]] for (a, b), n in wordings.most_common()]}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
