"""Differential testing of PartiQL: Shoal against DynamoDB Local.

bench/expression_fuzz.py compares DynamoDB's own expressions; this tool does
the same for ExecuteStatement, BatchExecuteStatement and ExecuteTransaction,
with hand-listed statements (errors, the documented forms) and seeded random
ones.  SELECTs: WHERE on keys and non-keys with =, <>, <, <=, >, >=, IN,
BETWEEN, begins_with, contains, attribute_type, IS [NOT] MISSING / NULL,
size, nested paths and list indexes, AND/OR/NOT; projections; a table's
global and local indexes ("table"."index"); ORDER BY; Limit followed page by
page through NextToken; ConsistentRead; literals and ``?`` Parameters.
Writes: INSERT (new and existing keys), UPDATE with SET (values, arithmetic,
list_append, set_add, set_delete) and REMOVE under conditions, DELETE under
conditions, RETURNING; batches and transactions of them (with EXISTS).

What is compared: the outcome class (success or the error's type), the items
returned (in a canonical order where DynamoDB promises none: scans, index
reads), every page's items put together, and after a write what the write
table then holds.  An error's wording is compared apart: a difference of
wording only is listed with both messages, to be settled by AWS's
documentation (the Developer Guide's PartiQL pages words few errors; what it
does not decide stays as Shoal has it).  Differences are grouped by what the
two servers answered, one example each.

Usage::

    python bench/conformance_partiql.py [--cases N] [--seed S] [--shoal URL] [--local URL]
                                        [--jar PATH] [--json OUT] [--only TEXT]

Servers are started as bench/conformance_sweep.py starts them when no URL is
given.  1,500 random cases and the 260 listed ones take about a minute.  Each
difference is settled where it can be (``verdict``): DynamoDB Local wrong or
older, unclear (no documentation decides it), or wording; the open ones are
printed grouped by what the two servers answered.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conformance_sweep import Endpoint, create_tables, servers  # noqa: E402
from expression_fuzz import BINARIES, STRINGS, attribute_value, b64, canonical, outcome  # noqa: E402

READ = "pq_read"    # pk S, sk N; GSI gsi (g S, sk N, ALL), GSI gkeys (g S, KEYS_ONLY), LSI lsi (pk, l S, ALL)
WRITE = "pq_write"  # pk S: what writes change, restored after each write case
NUMERIC = "pq_num"  # pk N, sk B: key type mismatches
PARTITIONS = ["p0", "p1", "p2"]
SORT_KEYS = range(6)
WRITE_KEYS = [f"k{i}" for i in range(6)]
NEW_KEYS = ["k6", "k7"]  # absent at first
G_VALUES = ["G0", "G1"]
L_VALUES = ["l0", "l1", "l2"]

# Attributes items carry: a..e any type, "name" a reserved word (quoted in
# statements), plus g and l, the index keys (sparse).
TOP = ["a", "b", "c", "d", "e", "name"]
RESERVED = {"name"}
MAP_KEYS = ["x", "y", "a"]
TYPE_NAMES = ["S", "N", "B", "SS", "NS", "BS", "L", "M", "BOOL", "NULL"]

TABLES = [
    {"TableName": READ,
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"},
                              {"AttributeName": "l", "AttributeType": "S"}],
     "GlobalSecondaryIndexes": [
         {"IndexName": "gsi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                            {"AttributeName": "sk", "KeyType": "RANGE"}],
          "Projection": {"ProjectionType": "ALL"}},
         {"IndexName": "gkeys", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
          "Projection": {"ProjectionType": "KEYS_ONLY"}}],
     "LocalSecondaryIndexes": [
         {"IndexName": "lsi", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                            {"AttributeName": "l", "KeyType": "RANGE"}],
          "Projection": {"ProjectionType": "ALL"}}],
     "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": WRITE, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": NUMERIC,
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "N"},
                              {"AttributeName": "sk", "AttributeType": "B"}],
     "BillingMode": "PAY_PER_REQUEST"},
]


# -- items ------------------------------------------------------------------------------


def _value(rng: random.Random, depth: int = 1) -> dict:
    """A value of any type, its maps keyed by MAP_KEYS (so that paths meet them)."""
    value = attribute_value(rng, depth)
    if "M" in value:
        value = {"M": {key: _value(rng, depth + 1) if depth < 3 else {"S": "z"}
                       for key in rng.sample(MAP_KEYS, rng.randint(0, len(MAP_KEYS)))}}
    return value


def _attributes(rng: random.Random) -> dict:
    return {name: _value(rng) for name in TOP if rng.random() < 0.7}


def seed_items(seed: int) -> tuple[list[dict], list[dict]]:
    """(the read table's items, the write table's items) of a seed."""
    rng = random.Random(f"partiql-items-{seed}")
    reads = []
    for pk in PARTITIONS:
        for sk in SORT_KEYS:
            item = {"pk": {"S": pk}, "sk": {"N": str(sk)}, **_attributes(rng)}
            if rng.random() < 0.6:
                item["g"] = {"S": rng.choice(G_VALUES)}
            if rng.random() < 0.6:
                item["l"] = {"S": rng.choice(L_VALUES)}
            reads.append(item)
    writes = [{"pk": {"S": pk}, **_attributes(rng)} for pk in WRITE_KEYS]
    return reads, writes


def _paths(items: list[dict]) -> list[tuple[tuple, dict]]:
    """(path elements, value) of everything in the items but their keys."""
    out = []

    def walk(value, path):
        out.append((path, value))
        if "L" in value:
            for i, element in enumerate(value["L"]):
                walk(element, path + (i,))
        elif "M" in value:
            for name, member in value["M"].items():
                walk(member, path + (name,))

    for item in items:
        for name, value in item.items():
            if name not in ("pk", "sk"):
                walk(value, (name,))
    return out


# -- PartiQL text -----------------------------------------------------------------------


def literal(value: dict) -> str | None:
    """The PartiQL literal of an attribute value (None for binaries, which
    only Parameters carry)."""
    (kind, raw), = value.items()
    if kind == "S":
        return "'" + raw.replace("'", "''") + "'"
    if kind == "N":
        return raw
    if kind == "BOOL":
        return "TRUE" if raw else "FALSE"
    if kind == "NULL":
        return "NULL"
    if kind in ("SS", "NS"):
        members = [literal({kind[0]: m}) for m in raw]
        return "<<" + ", ".join(members) + ">>"
    if kind == "L":
        parts = [literal(v) for v in raw]
        return None if None in parts else "[" + ", ".join(parts) + "]"
    if kind == "M":
        parts = [(k, literal(v)) for k, v in raw.items()]
        if any(p is None for _, p in parts):
            return None
        return "{" + ", ".join("'" + k.replace("'", "''") + "': " + p for k, p in parts) + "}"
    return None


def path_text(elements: tuple) -> str:
    out = ""
    for element in elements:
        if type(element) is int:
            out += f"[{element}]"
        else:
            name = f'"{element}"' if element in RESERVED or not element.isidentifier() else element
            out += ("." if out else "") + name
    return out


class Statement:
    """A statement's text and its Parameters, written as it is generated."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.params: list[dict] = []

    def value(self, value: dict) -> str:
        text = literal(value)
        if text is None or self.rng.random() < 0.3:
            self.params.append(value)
            return "?"
        return text


class Generator:
    """Random statements over one seed's items."""

    def __init__(self, rng: random.Random, reads: list[dict], writes: list[dict]) -> None:
        self.rng = rng
        self.reads, self.writes = reads, writes
        self.read_paths = _paths(reads)
        self.write_paths = _paths(writes)

    # values and paths

    def any_value(self, pool) -> dict:
        rng = self.rng
        if pool and rng.random() < 0.6:
            return copy.deepcopy(rng.choice(pool)[1])
        return _value(rng)

    def scalar(self, pool) -> dict:
        rng = self.rng
        found = [v for _, v in pool if next(iter(v)) in ("S", "N", "B")]
        if found and rng.random() < 0.6:
            return copy.deepcopy(rng.choice(found))
        kind = rng.choice(["S", "N", "N", "B"])
        if kind == "S":
            return {"S": rng.choice(STRINGS)}
        if kind == "N":
            return {"N": rng.choice(["0", "1", "-1", "2", "5", "10", "1.5", "100", "-3.25"])}
        return {"B": b64(rng.choice(BINARIES))}

    def path(self, pool, keys: tuple = ()) -> tuple:
        rng = self.rng
        r = rng.random()
        if keys and r < 0.15:
            return (rng.choice(keys),)
        if pool and r < 0.75:
            elements = rng.choice(pool)[0]
            if rng.random() < 0.1:
                elements += (rng.randint(0, 3),) if rng.random() < 0.5 else (rng.choice(MAP_KEYS),)
            return elements
        elements = (rng.choice(TOP + ["g", "l", "zz"]),)
        for _ in range(rng.choice([0, 0, 1, 2])):
            elements += (rng.randint(0, 3),) if rng.random() < 0.4 else (rng.choice(MAP_KEYS),)
        return elements

    # conditions

    def condition(self, st: Statement, pool, keys: tuple, depth: int = 2) -> str:
        rng = self.rng
        if depth and rng.random() < 0.3:
            kind = rng.choice(["AND", "OR", "NOT", "()"])
            if kind == "NOT":
                return "NOT " + self.condition(st, pool, keys, depth - 1)
            if kind == "()":
                return "(" + self.condition(st, pool, keys, depth - 1) + ")"
            return f" {kind} ".join(self.condition(st, pool, keys, depth - 1) for _ in range(2))
        return self.atom(st, pool, keys)

    def atom(self, st: Statement, pool, keys: tuple) -> str:
        rng = self.rng
        path = self.path(pool, keys)
        text = path_text(path)
        r = rng.random()
        if r < 0.3:
            op = rng.choice(["=", "<>", "<", "<=", ">", ">="])
            value = self.any_value(pool) if op in ("=", "<>") else self.scalar(pool)
            return f"{text} {op} {st.value(value)}"
        if r < 0.4:
            low, high = sorted([self.scalar(pool), self.scalar(pool)], key=lambda v: json.dumps(v))
            return f"{text} BETWEEN {st.value(low)} AND {st.value(high)}"
        if r < 0.5:
            options = [st.value(self.any_value(pool)) for _ in range(rng.randint(1, 4))]
            return f"{text} IN [{', '.join(options)}]"
        if r < 0.58:
            value = self.scalar(pool)
            if "S" in value:
                value = {"S": value["S"][: rng.randint(0, len(value["S"]))]}
            return f"begins_with({text}, {st.value(value)})"
        if r < 0.68:
            return f"contains({text}, {st.value(self.scalar(pool) if rng.random() < 0.8 else self.any_value(pool))})"
        if r < 0.76:
            return f"attribute_type({text}, '{rng.choice(TYPE_NAMES)}')"
        if r < 0.88:
            return f"{text} IS {rng.choice(['', 'NOT '])}{rng.choice(['MISSING', 'MISSING', 'NULL'])}"
        return f"size({text}) {rng.choice(['=', '<', '>=', '<>'])} {rng.randint(0, 4)}"

    # statements

    def select(self) -> tuple[str, dict]:
        """A SELECT of the read table or one of its indexes, and its request."""
        rng = self.rng
        st = Statement(rng)
        pool = self.read_paths
        source, keys, partition_key = f'"{READ}"', ("pk", "sk"), "pk"
        r = rng.random()
        if r < 0.15:
            index = rng.choice(["gsi", "gkeys", "lsi"])
            source += f'."{index}"'
            partition_key = "g" if index in ("gsi", "gkeys") else "pk"
            keys = {"gsi": ("g", "sk"), "gkeys": ("g",), "lsi": ("pk", "l")}[index]
        if rng.random() < 0.25:
            projection = "*"
        else:
            projection = ", ".join(path_text(self.path(pool, keys)) for _ in range(rng.randint(1, 3)))
        where = []
        keyed = rng.random() < 0.55
        if keyed:
            value = rng.choice(G_VALUES if partition_key == "g" else PARTITIONS)
            where.append(f"{partition_key} = {st.value({'S': value})}")
            if len(keys) > 1 and rng.random() < 0.5:
                sort = keys[1]
                bound = {"N": str(rng.choice(SORT_KEYS))} if sort == "sk" else {"S": rng.choice(L_VALUES)}
                op = rng.choice(["=", "<", "<=", ">", ">=", "BETWEEN", "begins_with"])
                if op == "BETWEEN":
                    where.append(f"{sort} BETWEEN {st.value(bound)} AND {st.value(bound)}")
                elif op == "begins_with":
                    prefix = {"S": bound["S"][:1]} if "S" in bound else bound
                    where.append(f"begins_with({sort}, {st.value(prefix)})")
                else:
                    where.append(f"{sort} {op} {st.value(bound)}")
        elif rng.random() < 0.1:
            where.append(f"{partition_key} IN [{st.value({'S': 'p0'})}, {st.value({'S': 'p2'})}]")
        if rng.random() < 0.8:
            where.append(self.condition(st, pool, keys))
        text = f"SELECT {projection} FROM {source}"
        if where:
            text += " WHERE " + " AND ".join(where)
        if keyed and rng.random() < 0.3:
            text += f" ORDER BY {keys[-1]} {rng.choice(['ASC', 'DESC', ''])}".rstrip()
        request: dict = {"Statement": text}
        if st.params:
            request["Parameters"] = st.params
        if rng.random() < 0.35:
            request["Limit"] = rng.randint(1, 5)
        if rng.random() < 0.2:
            request["ConsistentRead"] = True
        return "select", request

    def write(self, keys_taken: set | None = None) -> tuple[str, dict]:
        """An INSERT, UPDATE or DELETE of the write table, and its statement entry."""
        rng = self.rng
        st = Statement(rng)
        pool = self.write_paths
        free = [k for k in WRITE_KEYS + NEW_KEYS if keys_taken is None or k not in keys_taken]
        key = rng.choice(free or WRITE_KEYS)
        if keys_taken is not None:
            keys_taken.add(key)
        r = rng.random()
        if r < 0.25:
            item = {"pk": {"S": key}, **_attributes(rng)}
            text = "{" + ", ".join(f"'{name}': {st.value(value)}" for name, value in item.items()) + "}"
            kind, statement = "insert", f'INSERT INTO "{WRITE}" VALUE {text}'
        elif r < 0.7:
            clauses = []
            for _ in range(rng.randint(1, 3)):
                path = self.path(pool)
                if rng.random() < 0.25:
                    clauses.append(f"REMOVE {path_text(path)}")
                    continue
                s = rng.random()
                if s < 0.55:
                    value = st.value(self.any_value(pool))
                elif s < 0.75:
                    value = f"{path_text(path)} {rng.choice(['+', '-'])} {st.value(self.scalar(pool))}"
                elif s < 0.87:
                    value = f"list_append({path_text(path)}, {st.value({'L': [_value(rng)]})})"
                else:
                    fn = rng.choice(["set_add", "set_delete"])
                    value = f"{fn}({path_text(path)}, {st.value({'SS': rng.sample(STRINGS[1:6], 2)})})"
                clauses.append(f"SET {path_text(path)} = {value}")
            where = f"pk = {st.value({'S': key})}"
            if rng.random() < 0.5:
                where += " AND " + self.condition(st, pool, ())
            returning = rng.choice(["", "", " RETURNING ALL OLD *", " RETURNING ALL NEW *",
                                    " RETURNING MODIFIED OLD *", " RETURNING MODIFIED NEW *"])
            kind = "update"
            statement = f'UPDATE "{WRITE}" {" ".join(clauses)} WHERE {where}{returning}'
        else:
            where = f"pk = {st.value({'S': key})}"
            if rng.random() < 0.6:
                where += " AND " + self.condition(st, pool, ())
            returning = rng.choice(["", " RETURNING ALL OLD *"])
            kind, statement = "delete", f'DELETE FROM "{WRITE}" WHERE {where}{returning}'
        entry = {"Statement": statement}
        if st.params:
            entry["Parameters"] = st.params
        return kind, entry

    def batch_read(self) -> dict:
        rng = self.rng
        statements = []
        for _ in range(rng.randint(1, 4)):
            st = Statement(rng)
            projection = "*" if rng.random() < 0.5 else path_text(self.path(self.read_paths))
            where = (f"pk = {st.value({'S': rng.choice(PARTITIONS + ['p9'])})} "
                     f"AND sk = {st.value({'N': str(rng.choice(list(SORT_KEYS) + [9]))})}")
            entry = {"Statement": f'SELECT {projection} FROM "{READ}" WHERE {where}'}
            if st.params:
                entry["Parameters"] = st.params
            if rng.random() < 0.3:
                entry["ConsistentRead"] = True
            statements.append(entry)
        return statements


def make_case(seed: int, number: int, gen: Generator) -> dict:
    """One random case: (kind, operation, body)."""
    rng = gen.rng = random.Random(f"partiql-case-{seed}-{number}")
    r = rng.random()
    if r < 0.5:
        kind, request = gen.select()
        return {"kind": kind, "op": "ExecuteStatement", "body": request}
    if r < 0.75:
        kind, entry = gen.write()
        return {"kind": kind, "op": "ExecuteStatement", "body": entry}
    if r < 0.85:
        taken: set = set()
        entries = [gen.write(taken)[1] for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.5:
            entries = gen.batch_read()
        return {"kind": "batch", "op": "BatchExecuteStatement", "body": {"Statements": entries}}
    taken = set()
    entries = [gen.write(taken)[1] for _ in range(rng.randint(1, 3))]
    for entry in entries:  # RETURNING is refused in transactions: mostly leave it out
        if rng.random() < 0.9:
            entry["Statement"] = entry["Statement"].split(" RETURNING ")[0]
    if rng.random() < 0.25:
        st = Statement(rng)
        key = rng.choice([k for k in WRITE_KEYS if k not in taken] or WRITE_KEYS)
        check = f'EXISTS(SELECT * FROM "{WRITE}" WHERE pk = {st.value({"S": key})} AND ' \
                f'{gen.condition(st, gen.write_paths, ())})'
        entry = {"Statement": ("NOT " if rng.random() < 0.3 else "") + check}
        if st.params:
            entry["Parameters"] = st.params
        entries.append(entry)
    if rng.random() < 0.2:  # a read transaction
        entries = gen.batch_read()
        for entry in entries:
            entry.pop("ConsistentRead", None)
    return {"kind": "transaction", "op": "ExecuteTransaction", "body": {"TransactStatements": entries}}


# -- hand-listed cases ------------------------------------------------------------------


def listed_cases() -> list[dict]:
    """Statements written out: the Developer Guide's forms and the errors."""
    cases = []

    def add(name, op, body, kind="listed"):
        cases.append({"name": name, "kind": kind, "op": op, "body": body})

    def es(statement, **extra):
        add(statement[:100], "ExecuteStatement", {"Statement": statement, **extra})

    r, w, n = f'"{READ}"', f'"{WRITE}"', f'"{NUMERIC}"'
    # SELECT: keys, non-keys, functions, paths
    for text in [
        f"SELECT * FROM {r} WHERE pk = 'p1'",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND sk = 2",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND sk > 2",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND sk BETWEEN 1 AND 3",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND sk IN [1, 3, 7]",
        f"SELECT * FROM {r} WHERE pk IN ['p0', 'p2'] AND sk = 1",
        f"SELECT * FROM {r} WHERE pk IN ['p0', 'p2']",
        # IN results in pages of up to 10 items (the Developer Guide's PartiQL operators page)
        f"SELECT * FROM {r} WHERE pk IN ['p2', 'p0', 'p1']",
        f"SELECT * FROM {r} WHERE pk = 'p1' OR pk = 'p2' OR pk = 'p0'",
        # OR branches reading one range twice (refused by DynamoDB, recorded) and apart (read)
        f"SELECT * FROM {r} WHERE pk = 'p1' AND (sk > 0 OR sk < 5)",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND (sk = 1 OR a = 1)",
        f"SELECT * FROM {r} WHERE (pk = 'p1' AND a = 1) OR (pk = 'p1' AND b = 1)",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND a <> 1 OR pk = 'p1' AND sk = 2",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND (sk < 1 OR sk > 1 OR sk = 1)",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND NOT sk = 1 OR pk = 'p1' AND sk = 2",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND (a = 1 OR b = 1)",
        # the IN limits (Developer Guide: 50 partition key values, 100 others)
        f"SELECT * FROM {r} WHERE pk IN [{', '.join(repr(f'p{i}') for i in range(50))}]",
        f"SELECT * FROM {r} WHERE pk IN [{', '.join(repr(f'p{i}') for i in range(51))}]",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND sk IN [{', '.join(map(str, range(51)))}]",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND a IN [{', '.join(map(str, range(100)))}]",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND a IN [{', '.join(map(str, range(101)))}]",
        f"SELECT * FROM {r} WHERE pk <> 'p1'",
        f"SELECT * FROM {r} WHERE pk = 'p1' OR pk = 'p2'",
        f"SELECT * FROM {r} WHERE begins_with(pk, 'p')",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND begins_with(sk, 1)",
        f"SELECT * FROM {r} WHERE sk = 3",
        f"SELECT * FROM {r} WHERE a IS MISSING",
        f"SELECT * FROM {r} WHERE a IS NOT MISSING AND b IS MISSING",
        f"SELECT * FROM {r} WHERE a IS NULL",
        f"SELECT * FROM {r} WHERE a IS NOT NULL",
        f"SELECT * FROM {r} WHERE a IS BOOLEAN",
        f"SELECT * FROM {r} WHERE a IS STRING",
        f"SELECT * FROM {r} WHERE a IS NUMBER",
        f"SELECT * FROM {r} WHERE a IS LIST",
        f"SELECT * FROM {r} WHERE a IS MAP",
        f"SELECT * FROM {r} WHERE a IS STRUCT",
        f"SELECT * FROM {r} WHERE a IS BLOB",
        f"SELECT * FROM {r} WHERE attribute_type(a, 'N')",
        f"SELECT * FROM {r} WHERE attribute_type(a, 'X')",
        f"SELECT * FROM {r} WHERE attribute_exists(a)",
        f"SELECT * FROM {r} WHERE attribute_not_exists(a)",
        f"SELECT * FROM {r} WHERE size(a) > 2",
        f"SELECT * FROM {r} WHERE size(a) = 'x'",
        f"SELECT * FROM {r} WHERE contains(a, 'a')",
        f"SELECT * FROM {r} WHERE contains(a, 1)",
        f"SELECT * FROM {r} WHERE begins_with(a, 'a')",
        f"SELECT * FROM {r} WHERE a.x IS NOT MISSING",
        f"SELECT * FROM {r} WHERE a[0] IS NOT MISSING",
        f"SELECT * FROM {r} WHERE a[0].x IS NOT MISSING",
        f"SELECT * FROM {r} WHERE \"name\" IS NOT MISSING",
        f"SELECT * FROM {r} WHERE a = TRUE",
        f"SELECT * FROM {r} WHERE a = NULL",
        f"SELECT * FROM {r} WHERE a = [1, 'x']",
        f"SELECT * FROM {r} WHERE a = {{'x': 1}}",
        f"SELECT * FROM {r} WHERE a = <<'a', 'b'>>",
        f"SELECT * FROM {r} WHERE a BETWEEN 'a' AND 'b'",
        f"SELECT * FROM {r} WHERE a BETWEEN 2 AND 1",
        f"SELECT * FROM {r} WHERE a NOT BETWEEN 0 AND 10",
        f"SELECT * FROM {r} WHERE a IN ('a', 1)",
        f"SELECT * FROM {r} WHERE a NOT IN ['a', 1]",
        f"SELECT * FROM {r} WHERE NOT (a = 1)",
        f"SELECT * FROM {r} WHERE a = b",
        f"SELECT * FROM {r} WHERE a <> b",
        f"SELECT * FROM {r} WHERE a < b",
        f"SELECT * FROM {r} WHERE a = 1 + 1",
        f"SELECT * FROM {r} WHERE a LIKE 'a%'",
        f"SELECT * FROM {r} WHERE EXISTS(SELECT * FROM {r})",
        f"SELECT * FROM {r} WHERE upper(a) = 'A'",
        f"SELECT * FROM {r} WHERE a = 1e200",
        f"SELECT * FROM {r} WHERE a = 1.234567890123456789012345678901234567890",
        # projections
        f"SELECT a, b FROM {r} WHERE pk = 'p1'",
        f"SELECT a.x, a[0] FROM {r} WHERE pk = 'p1'",
        f"SELECT pk, sk FROM {r} WHERE pk = 'p1'",
        f"SELECT a, a FROM {r} WHERE pk = 'p1'",
        f"SELECT a, a.x FROM {r} WHERE pk = 'p1'",
        f"SELECT \"name\" FROM {r} WHERE pk = 'p1'",
        f"SELECT zz FROM {r} WHERE pk = 'p1'",
        f"SELECT COUNT(*) FROM {r}",
        f"SELECT a AS b FROM {r}",
        f"SELECT * FROM {r} AS t",
        f"SELECT DISTINCT a FROM {r}",
        # indexes
        f"SELECT * FROM {r}.\"gsi\" WHERE g = 'G1'",
        f"SELECT * FROM {r}.\"gsi\" WHERE g = 'G1' AND sk >= 2",
        f"SELECT * FROM {r}.\"gsi\" WHERE g = 'G1' ORDER BY sk DESC",
        f"SELECT * FROM {r}.\"gsi\" WHERE g = 'G1' ORDER BY g",
        f"SELECT a FROM {r}.\"gkeys\" WHERE g = 'G0'",
        f"SELECT * FROM {r}.\"gkeys\" WHERE g = 'G0'",
        f"SELECT * FROM {r}.\"gkeys\" WHERE g = 'G0' AND a = 1",
        f"SELECT * FROM {r}.\"gkeys\" WHERE a = 1",
        f"SELECT * FROM {r}.\"lsi\" WHERE pk = 'p1'",
        f"SELECT * FROM {r}.\"lsi\" WHERE pk = 'p1' AND l = 'l1'",
        f"SELECT * FROM {r}.\"lsi\" WHERE pk = 'p1' ORDER BY l DESC",
        f"SELECT * FROM {r}.\"nope\" WHERE pk = 'p1'",
        f"SELECT * FROM {r}.gsi WHERE g = 'G1'",
        f"SELECT * FROM {READ}.gsi WHERE g = 'G1'",
        f"SELECT * FROM {r}.\"gsi\".\"x\" WHERE g = 'G1'",
        # ORDER BY
        f"SELECT * FROM {r} WHERE pk = 'p1' ORDER BY sk DESC",
        f"SELECT * FROM {r} WHERE pk = 'p1' ORDER BY sk ASC",
        f"SELECT * FROM {r} WHERE pk = 'p1' ORDER BY pk, sk DESC",
        f"SELECT * FROM {r} WHERE pk = 'p1' ORDER BY a",
        f"SELECT * FROM {r} ORDER BY sk",
        f"SELECT * FROM {r} WHERE sk = 1 ORDER BY sk",
        f"SELECT * FROM {r} WHERE pk IN ['p0', 'p1'] ORDER BY sk",
        # errors: syntax, tables, types
        "SELECT * FROM",
        "SELECT FROM t",
        "SELEC * FROM t",
        f"SELECT * FROM {r} WHERE",
        f"SELECT * FROM {r} WHERE pk = ",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND",
        f"SELECT * FROM {r} WHERE pk == 'p1'",
        f"SELECT * FROM {r} WHERE pk = \"p1\"",
        f"SELECT * FROM {r} WHERE (pk = 'p1'",
        f"SELECT * FROM {r} WHERE pk = 'p1')",
        f"SELECT * FROM {r} WHERE pk = 'p1';",
        f"SELECT * FROM {r} WHERE pk = 'p1';;",
        f"SELECT * FROM {r} WHERE pk = 'p1' -- comment",
        f"SELECT * FROM {r} WHERE pk = 'p1' /* comment */",
        f"SELECT * FROM {r} WHERE pk = 'unterminated",
        "SELECT * FROM \"no_such_table\"",
        "SELECT * FROM \"no_such_table\" WHERE pk = 'a'",
        "SELECT * FROM \"\"",
        f"SELECT * FROM {r} WHERE pk = 1",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND sk = 'x'",
        f"SELECT * FROM {r} WHERE pk = 'p1' AND sk > 'x'",
        f"SELECT * FROM {n} WHERE pk = 'x'",
        f"SELECT * FROM {n} WHERE pk = 1 AND sk = 1",
        f"SELECT * FROM {r} WHERE pk = ''",
        f"SELECT * FROM {r}.\"gsi\" WHERE g = 1",
        # writes
        f"INSERT INTO {w} VALUE {{'pk': 'k0'}}",
        f"INSERT INTO {w} VALUE {{'pk': 'k9', 'a': 1}}",
        f"INSERT INTO {w} VALUE {{'pk': 'k9', 'a': 1, 'a': 2}}",
        f"INSERT INTO {w} VALUE {{'a': 1}}",
        f"INSERT INTO {w} VALUE {{'pk': 1}}",
        f"INSERT INTO {w} VALUE {{'pk': ''}}",
        f"INSERT INTO {w} VALUE {{'pk': 'k9', 'e': ''}}",
        f"INSERT INTO {w} VALUE {{'pk': 'k9', 'e': <<>>}}",
        f"INSERT INTO {w} VALUE {{'pk': 'k9', 'e': <<1, 'a'>>}}",
        f"INSERT INTO {w} VALUE {{'pk': 'k9', 'e': <<1, 1>>}}",
        f"INSERT INTO {w} VALUE {{'pk': 'k9', 'e': MISSING}}",
        f"INSERT INTO {w} VALUE {{'pk': 'k9'}} RETURNING ALL OLD *",
        f"INSERT INTO {w} VALUES {{'pk': 'k9'}}",
        f"INSERT INTO {w} VALUE ['k9']",
        f"INSERT INTO {w}.\"x\" VALUE {{'pk': 'k9'}}",
        "INSERT INTO \"no_such_table\" VALUE {'pk': 'k9'}",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0'",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k9'",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0' RETURNING ALL OLD *",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0' RETURNING MODIFIED NEW *",
        f"UPDATE {w} SET a = 1, b = 2 REMOVE c WHERE pk = 'k0' RETURNING ALL NEW *",
        f"UPDATE {w} SET a = 1 SET b = 2 WHERE pk = 'k0'",
        f"UPDATE {w} REMOVE a WHERE pk = 'k0'",
        f"UPDATE {w} REMOVE zz WHERE pk = 'k0'",
        f"UPDATE {w} SET a.x = 1 WHERE pk = 'k0'",
        f"UPDATE {w} SET zz.x = 1 WHERE pk = 'k0'",
        f"UPDATE {w} SET zz = zz + 1 WHERE pk = 'k0'",
        f"UPDATE {w} SET n = 1 WHERE pk = 'k0'",
        f"UPDATE {w} SET n = 5 - 2 WHERE pk = 'k0'",
        f"UPDATE {w} SET n = 1e50 WHERE pk = 'k0'",
        f"UPDATE {w} SET n = 100000000000000000000000000000000000000000000000000 + 1 WHERE pk = 'k0'",
        f"UPDATE {w} SET n = 0.1 + 0.0000000000000000000000000000000000000000001 WHERE pk = 'k0'",
        f"UPDATE {w} SET l = list_append([1], [2]) WHERE pk = 'k0'",
        f"UPDATE {w} SET s = set_add(s, <<'a'>>) WHERE pk = 'k0'",
        f"UPDATE {w} SET s = set_delete(s, <<'a'>>) WHERE pk = 'k0'",
        f"UPDATE {w} SET s = set_add(s, 'a') WHERE pk = 'k0'",
        f"UPDATE {w} SET s = if_not_exists(s, 1) WHERE pk = 'k0'",
        f"UPDATE {w} SET s = upper('a') WHERE pk = 'k0'",
        f"UPDATE {w} SET pk = 'k5' WHERE pk = 'k0'",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0' AND a IS MISSING",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0' AND zz IS MISSING",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0' AND zz = 1",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0' OR pk = 'k1'",
        f"UPDATE {w} SET a = 1 WHERE pk IN ['k0']",
        f"UPDATE {w} SET a = 1 WHERE a = 1",
        f"UPDATE {w} SET a = 1",
        f"UPDATE {w} SET a = 1 WHERE pk = 1",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0' AND pk = 'k1'",
        f"UPDATE {w} SET a = 1, a = 2 WHERE pk = 'k0'",
        f"UPDATE {w} SET a = 1 REMOVE a WHERE pk = 'k0'",
        f"UPDATE {w} SET a = 1 WHERE pk = 'k0' RETURNING ALL OLD a",
        f"UPDATE {w} SET a = '' WHERE pk = 'k0'",
        f"UPDATE {w} SET a = MISSING WHERE pk = 'k0'",
        "UPDATE \"no_such_table\" SET a = 1 WHERE pk = 'k0'",
        f"FROM {w} WHERE pk = 'k0' SET a = 7",
        f"DELETE FROM {w} WHERE pk = 'k0'",
        f"DELETE FROM {w} WHERE pk = 'k9'",
        f"DELETE FROM {w} WHERE pk = 'k0' RETURNING ALL OLD *",
        f"DELETE FROM {w} WHERE pk = 'k9' RETURNING ALL OLD *",
        f"DELETE FROM {w} WHERE pk = 'k0' RETURNING ALL NEW *",
        f"DELETE FROM {w} WHERE pk = 'k0' AND zz = 1",
        f"DELETE FROM {w} WHERE pk = 'k0' AND zz IS MISSING",
        f"DELETE FROM {w} WHERE a = 1",
        f"DELETE FROM {w}",
        f"DELETE FROM {w}.\"x\" WHERE pk = 'k0'",
        "DELETE FROM \"no_such_table\" WHERE pk = 'k0'",
        f"EXISTS(SELECT * FROM {w} WHERE pk = 'k0' AND a IS MISSING)",
    ]:
        es(text)
    # parameters
    es(f"SELECT * FROM {r} WHERE pk = ?", Parameters=[{"S": "p1"}])
    es(f"SELECT * FROM {r} WHERE pk = ? AND sk = ?", Parameters=[{"S": "p1"}, {"N": "2"}])
    es(f"SELECT * FROM {r} WHERE pk = ?", Parameters=[{"N": "1"}])
    es(f"SELECT * FROM {r} WHERE pk = ?", Parameters=[])
    es(f"SELECT * FROM {r} WHERE pk = ?", Parameters=[{"S": "p1"}, {"S": "p2"}])
    es(f"SELECT * FROM {r} WHERE pk = 'p1'", Parameters=[{"S": "p1"}])
    es(f"SELECT * FROM {r} WHERE pk = ?", Parameters=[{"S": ""}])
    es(f"SELECT * FROM {r} WHERE pk = ?", Parameters=[{"SS": []}])
    es(f"SELECT * FROM {r} WHERE pk = ?", Parameters=[{"SS": ["a", "a"]}])
    es(f"SELECT * FROM {r} WHERE pk = ?", Parameters=[{"N": "x"}])
    es(f"SELECT * FROM {r} WHERE a IN ?", Parameters=[{"L": [{"N": "1"}]}])
    es(f"SELECT * FROM {r} WHERE a = ?", Parameters=[{"B": "AQI="}])
    es(f"SELECT ? FROM {r}", Parameters=[{"S": "a"}])
    es("SELECT * FROM ? WHERE pk = 'p1'", Parameters=[{"S": READ}])
    es(f"INSERT INTO {w} VALUE ?", Parameters=[{"M": {"pk": {"S": "k9"}, "b": {"B": "AQI="}}}])
    es(f"INSERT INTO {w} VALUE {{'pk': ?, 'v': ?}}", Parameters=[{"S": "k9"}, {"BS": ["AQI="]}])
    es(f"INSERT INTO {w} VALUE ?", Parameters=[{"S": "k9"}])
    es(f"UPDATE {w} SET a = ? WHERE pk = ?", Parameters=[{"NS": ["1", "2"]}, {"S": "k0"}])
    es(f"UPDATE {w} SET a = a + ? WHERE pk = ?", Parameters=[{"S": "x"}, {"S": "k0"}])
    es(f"DELETE FROM {w} WHERE pk = ? RETURNING ALL OLD *", Parameters=[{"S": "k1"}])
    # Limit, NextToken, ConsistentRead
    es(f"SELECT * FROM {r} WHERE pk = 'p1'", Limit=2)
    es(f"SELECT * FROM {r} WHERE pk IN ['p2', 'p0', 'p1']", Limit=4)
    es(f"SELECT * FROM {r} WHERE pk IN ['p2', 'p0', 'p1']", Limit=15)
    es(f"SELECT * FROM {r}", Limit=5)
    es(f"SELECT * FROM {r} WHERE pk = 'p1' AND a IS NOT MISSING", Limit=1)
    es(f"SELECT * FROM {r} WHERE pk = 'p1'", Limit=0)
    es(f"SELECT * FROM {r} WHERE pk = 'p1'", Limit=-1)
    es(f"SELECT * FROM {r} WHERE pk = 'p1'", NextToken="bogus")
    es(f"SELECT * FROM {r} WHERE pk = 'p1'", NextToken="")
    es(f"SELECT * FROM {r} WHERE pk = 'p1'", ConsistentRead=True)
    es(f"SELECT * FROM {r}.\"gsi\" WHERE g = 'G1'", ConsistentRead=True)
    es(f"SELECT * FROM {r}.\"lsi\" WHERE pk = 'p1'", ConsistentRead=True)
    es(f"SELECT * FROM {r} WHERE pk = 'p1'", ReturnConsumedCapacity="TOTAL")
    es(f"UPDATE {w} SET a = 1 WHERE pk = 'k0' AND zz = 1", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    es(f"DELETE FROM {w} WHERE pk = 'k0' AND zz = 1", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    es(f"INSERT INTO {w} VALUE {{'pk': 'k0'}}", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    es("")
    es(" ")
    # batches
    sel = f"SELECT * FROM {r} WHERE pk = 'p1' AND sk = 1"
    batch = [
        ("reads", [{"Statement": sel}, {"Statement": f"SELECT a FROM {r} WHERE pk = 'p9' AND sk = 1"}]),
        ("read of a partition", [{"Statement": f"SELECT * FROM {r} WHERE pk = 'p1'"}]),
        ("read with a filter", [{"Statement": sel + " AND a = 1"}]),
        ("read of an index", [{"Statement": f"SELECT * FROM {r}.\"gsi\" WHERE g = 'G1' AND sk = 1"}]),
        ("read of no table", [{"Statement": "SELECT * FROM \"no_such_table\" WHERE pk = 'a'"}, {"Statement": sel}]),
        ("read with ORDER BY", [{"Statement": sel + " ORDER BY sk"}]),
        ("read naming a partition twice", [{"Statement": f"SELECT * FROM {r} WHERE pk IN ['p1', 'p1'] AND sk = 1"}]),
        ("read, syntax error", [{"Statement": "SELEC"}, {"Statement": sel}]),
        ("consistent read", [{"Statement": sel, "ConsistentRead": True}]),
        ("same item read twice", [{"Statement": sel}, {"Statement": sel}]),
        ("writes", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0'"},
                    {"Statement": f"DELETE FROM {w} WHERE pk = 'k1'"},
                    {"Statement": f"INSERT INTO {w} VALUE {{'pk': 'k9'}}"}]),
        ("writes failing", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k9'"},
                            {"Statement": f"DELETE FROM {w} WHERE pk = 'k1' AND zz = 1"},
                            {"Statement": f"INSERT INTO {w} VALUE {{'pk': 'k2'}}"},
                            {"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k3'"}]),
        ("write failing, old item", [{"Statement": f"DELETE FROM {w} WHERE pk = 'k1' AND zz = 1",
                                      "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}]),
        ("writes returning", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0' RETURNING ALL OLD *"},
                              {"Statement": f"DELETE FROM {w} WHERE pk = 'k1' RETURNING ALL OLD *"}]),
        ("write, same item twice", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0'"},
                                    {"Statement": f"UPDATE {w} SET b = 1 WHERE pk = 'k0'"}]),
        ("write of no table", [{"Statement": "UPDATE \"no_such_table\" SET a = 1 WHERE pk = 'k0'"},
                               {"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0'"}]),
        ("write, syntax error", [{"Statement": "UPDATE"}, {"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0'"}]),
        ("write without the key", [{"Statement": f"UPDATE {w} SET a = 1 WHERE a = 1"}]),
        ("exists", [{"Statement": f"EXISTS(SELECT * FROM {w} WHERE pk = 'k0' AND a = 1)"}]),
        ("read and write", [{"Statement": sel}, {"Statement": f"DELETE FROM {w} WHERE pk = 'k1'"}]),
        ("empty", []),
        ("26", [{"Statement": sel}] * 26),
    ]
    for name, statements in batch:
        add(f"batch/{name}", "BatchExecuteStatement", {"Statements": statements})
    add("batch/capacity", "BatchExecuteStatement",
        {"Statements": [{"Statement": sel}], "ReturnConsumedCapacity": "TOTAL"})
    # transactions
    tx = [
        ("writes", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0'"},
                    {"Statement": f"INSERT INTO {w} VALUE {{'pk': 'k9'}}"},
                    {"Statement": f"DELETE FROM {w} WHERE pk = 'k1'"}]),
        ("condition fails", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0' AND zz = 1"},
                             {"Statement": f"DELETE FROM {w} WHERE pk = 'k1'"}]),
        ("condition fails, old item", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0' AND zz = 1",
                                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}]),
        ("update of nothing", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k9'"}]),
        ("insert existing", [{"Statement": f"INSERT INTO {w} VALUE {{'pk': 'k0'}}"}]),
        ("exists holds", [{"Statement": f"EXISTS(SELECT * FROM {w} WHERE pk = 'k0' AND pk = 'k0')"},
                          {"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k1'"}]),
        ("exists fails", [{"Statement": f"EXISTS(SELECT * FROM {w} WHERE pk = 'k0' AND zz = 1)"},
                          {"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k1'"}]),
        ("not exists", [{"Statement": f"NOT EXISTS(SELECT * FROM {w} WHERE pk = 'k9' AND a = 1)"},
                        {"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k1'"}]),
        ("exists without condition", [{"Statement": f"EXISTS(SELECT * FROM {w} WHERE pk = 'k0')"}]),
        ("returning", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0' RETURNING ALL OLD *"}]),
        ("reads", [{"Statement": sel}, {"Statement": f"SELECT a FROM {r} WHERE pk = 'p9' AND sk = 1"}]),
        ("read of a partition", [{"Statement": f"SELECT * FROM {r} WHERE pk = 'p1'"}]),
        ("read of an index", [{"Statement": f"SELECT * FROM {r}.\"gsi\" WHERE g = 'G1' AND sk = 1"}]),
        ("read naming a partition twice", [{"Statement": f"SELECT * FROM {r} WHERE pk IN ['p1', 'p1'] AND sk = 1"}]),
        ("read and write", [{"Statement": sel}, {"Statement": f"DELETE FROM {w} WHERE pk = 'k1'"}]),
        ("same item twice", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0'"},
                             {"Statement": f"DELETE FROM {w} WHERE pk = 'k0'"}]),
        ("no table", [{"Statement": "UPDATE \"no_such_table\" SET a = 1 WHERE pk = 'k0'"}]),
        ("syntax error", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 'k0'"}, {"Statement": "DELET"}]),
        ("key type", [{"Statement": f"UPDATE {w} SET a = 1 WHERE pk = 1"}]),
        ("arithmetic on a string", [{"Statement": f"UPDATE {w} SET a = 'x' + 1 WHERE pk = 'k0'"}]),
        ("empty", []),
    ]
    for name, statements in tx:
        add(f"transaction/{name}", "ExecuteTransaction", {"TransactStatements": statements})
    token = f"tok-{os.getpid()}-{int(time.time())}"  # a token DynamoDB Local has not seen in an earlier run
    add("transaction/token", "ExecuteTransaction", {"TransactStatements": tx[0][1], "ClientRequestToken": token})
    return cases


# -- running and comparing --------------------------------------------------------------


MAX_PAGES = 40


class Runner:
    def __init__(self, endpoints: list[Endpoint], reads: list[dict], writes: list[dict]) -> None:
        self.endpoints = endpoints
        self.reads, self.writes = reads, writes

    def setup(self) -> None:
        for endpoint in self.endpoints:
            create_tables(endpoint, TABLES)
            for item in self.reads:
                self._put(endpoint, READ, item)
            self.restore(endpoint)

    @staticmethod
    def _put(endpoint: Endpoint, table: str, item: dict) -> None:
        status, body = endpoint.call("PutItem", {"TableName": table, "Item": item})
        if status != 200:
            raise SystemExit(f"seed PutItem {table}: {status} {body} {item}")

    def restore(self, endpoint: Endpoint) -> None:
        for item in self.writes:
            self._put(endpoint, WRITE, item)
        for pk in NEW_KEYS + ["k9"]:
            endpoint.call("DeleteItem", {"TableName": WRITE, "Key": {"pk": {"S": pk}}})

    def run(self, case: dict) -> list[dict]:
        answers = []
        writes = _writes(case)
        for endpoint in self.endpoints:
            answer = self._answer(endpoint, case)
            if writes:
                status, body = endpoint.call("Scan", {"TableName": WRITE, "ConsistentRead": True})
                answer["state"] = sorted(json.dumps(canonical(i), sort_keys=True) for i in body.get("Items", []))
                self.restore(endpoint)
            answers.append(answer)
        return answers

    def _answer(self, endpoint: Endpoint, case: dict) -> dict:
        op, body = case["op"], case["body"]
        status, raw = endpoint.call(op, body)
        answer = outcome(status, raw)
        if "CancellationReasons" in raw:
            answer["reasons"] = raw["CancellationReasons"]
        if op != "ExecuteStatement" or answer["class"] != "success" or "Items" not in answer["result"]:
            return _ordered(case, answer)
        # every page: the items put together, and how many each page held
        result = answer["result"]
        items, pages = list(result.get("Items", [])), [len(result.get("Items", []))]
        token = result.get("NextToken")
        while token is not None and len(pages) < MAX_PAGES:
            page = outcome(*endpoint.call(op, dict(body, NextToken=token)))
            if page["class"] != "success":
                return _ordered(case, {"class": page["class"], "message": page.get("message"), "page": len(pages)})
            items += page["result"].get("Items", [])
            pages.append(len(page["result"].get("Items", [])))
            token = page["result"].get("NextToken")
        answer["result"] = {"Items": items}
        answer["pages"] = pages
        return _ordered(case, answer)


def statements(case: dict) -> list[str]:
    body = case["body"]
    entries = body.get("Statements") or body.get("TransactStatements") or [body]
    return [entry.get("Statement", "") for entry in entries]


def _writes(case: dict) -> bool:
    return any(text.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "FROM")) for text in statements(case))


def _ordered(case: dict, answer: dict) -> dict:
    """Items in a canonical order where DynamoDB promises none: a read that
    is no Query of the table's partition (a scan, an index read); its pages
    then split where each server's scan order puts them, so their sizes are
    not compared either."""
    result = answer.get("result")
    if not result or "Items" not in result:
        return answer
    statement = case["body"].get("Statement", "")
    keyed = " WHERE pk = " in statement and '"."' not in statement
    if not keyed or " OR " in statement:
        result["Items"] = sorted(result["Items"], key=lambda item: json.dumps(item, sort_keys=True))
        if not _reads_partitions(case):  # an IN's or OR's pages keep their sizes (pages of up to 10 items)
            answer.pop("pages", None)
    return answer


def _reads_partitions(case: dict) -> bool:
    """Whether a case's statement (an ExecuteStatement's) reads the table's
    partitions an IN or an OR of equalities on pk names, and no partition by
    an equality: a key read whose pages hold up to 10 items."""
    from shoal.errors import ShoalError
    from shoal.partiql import parse_statement
    from shoal.partiql.translate import conjuncts, key_equality, key_options

    if case["op"] != "ExecuteStatement":
        return False
    try:
        statement = parse_statement(case["body"].get("Statement", ""))
    except (ShoalError, TypeError):
        return False
    where = getattr(statement, "where", None)
    if getattr(statement, "index", None) is not None or where is None:
        return False
    return key_options(where, "pk") is not None and all(key_equality(c, ("pk",)) is None for c in conjuncts(where))


def _members(result: dict | None) -> tuple[dict | None, list]:
    """(a batch's or transaction's result without its members' error
    messages, those messages): the messages are wording, compared apart."""
    if not result or "Responses" not in result:
        return result, []
    responses, messages = [], []
    for response in result["Responses"]:
        error = response.get("Error")
        if error is not None:
            messages.append(error.get("Message"))
            response = dict(response, Error={k: v for k, v in error.items() if k != "Message"})
        responses.append(response)
    return dict(result, Responses=responses), messages


def compare(shoal: dict, local: dict) -> str | None:
    """None when the answers agree; else what differs."""
    if shoal["class"] != local["class"]:
        return "outcome"
    mine, my_messages = _members(shoal.get("result"))
    theirs, their_messages = _members(local.get("result"))
    if mine != theirs:
        return "result"
    if my_messages != their_messages:
        return "wording"
    if [r.get("Code") for r in shoal.get("reasons") or ()] != [r.get("Code") for r in local.get("reasons") or ()]:
        return "result"
    if shoal.get("state") != local.get("state"):
        return "stored items"
    if shoal.get("pages") != local.get("pages"):
        return "pages"
    if shoal.get("message") != local.get("message"):
        return "wording"
    return None


# Cancellation reasons the API Reference lists for TransactWriteItems (TransactionCanceledException,
# "Validation Error"): a fault found against the stored item cancels, it is no error of the request.
DOCUMENTED_REASONS = (
    "The document path provided in the update expression is invalid for update",
    "An operand in the update expression has an incorrect data type",
    "The provided expression refers to an attribute that does not exist in the item",
    "Number overflow",
    "Type mismatch for attribute to update",
    "Item size to update has exceeded the maximum allowed size",
)
# DynamoDB Local's own or older sentences, where Shoal has DynamoDB's recorded one (docs/status.md)
LOCAL_SENTENCES = (
    "Cannot do operations on a non-existent table", "Consistent read cannot be true when scanning a GSI",
    "Only single item select is supported", "DynamoDB only supports precision up to 38 digits",
    "A value provided cannot be converted into a number", "The statement was empty.",
    "BatchGetItem cannot fetch more than 25 items", "ExecutePartiQLTransaction can not have empty statement.",
    "The table does not have the specified index: ", "java.nio.HeapByteBuffer", "Input collection contains duplicates",
)


def _item_set(answer: dict) -> list:
    return sorted(json.dumps(item, sort_keys=True) for item in answer["result"]["Items"])


def _loses_or_repeats(shoal: dict, local: dict) -> bool:
    """Whether two successful reads' items, every page put together, differ
    only as Local's repeat some of Shoal's or leave some out (Shoal's holding
    each item once)."""
    if not shoal["class"] == local["class"] == "success":
        return False
    mine, theirs = Counter(_item_set(shoal)), Counter(_item_set(local))
    return max(mine.values(), default=1) == 1 and set(theirs) <= set(mine) and mine != theirs


def _same_names(shoal: dict, local: dict) -> bool:
    """Whether two successful answers return items (or a batch's members)
    with the same top-level names, their values aside."""
    def names(result):
        rows = result.get("Items") or [r.get("Item", {}) for r in result.get("Responses", ())]
        return [sorted(row) for row in rows]
    return (shoal["class"] == local["class"] == "success" and names(shoal["result"]) == names(local["result"]))


def _reads_by_key(case: dict) -> bool:
    """Whether a case's statement (an ExecuteStatement's) reads by a partition
    key: an equality, IN or OR of equalities on pk (a table's) or g (an index's)."""
    from shoal.errors import ShoalError
    from shoal.partiql import parse_statement
    from shoal.partiql.translate import conjuncts, key_equality, key_options

    try:
        where = getattr(parse_statement(case["body"].get("Statement", "")), "where", None)
    except (ShoalError, TypeError):
        return False
    return any(key_equality(node, (name,)) is not None for node in conjuncts(where) for name in ("pk", "g")) or \
        any(key_options(where, name) is not None for name in ("pk", "g"))


def verdict(kind: str, case: dict, shoal: dict, local: dict) -> tuple[str, str] | None:
    """(settled how, why) for a difference already decided, or None (open).

    "local": DynamoDB Local is wrong or older (a 500, a type name botocore's
    model does not have, a fault the API Reference lists as a cancellation
    reason refused as a request error, a batch applied and refused, its own
    sentences); "unclear": no documentation decides it (listed in
    docs/status.md); "wording": the class and items agree, the words differ
    in a way listed there."""
    sm, lm = shoal.get("message") or "", local.get("message") or ""
    statement = json.dumps(case["body"])
    if local["class"] == "InternalFailure":
        return "local", "Local answers a 500"
    if shoal["class"] == "DuplicateItemException" and local["class"] == "DuplicateItem":
        return "local", "Local's error type DuplicateItem (botocore's model: DuplicateItemException)"
    if (case["op"] == "ExecuteTransaction" and shoal["class"] == "TransactionCanceledException"
            and local["class"] == "ValidationException" and lm.startswith(DOCUMENTED_REASONS)):
        return "local", "a fault against the stored item cancels the transaction (API Reference)"
    if kind == "stored items" and sm == lm == "Provided list of item keys contains duplicates":
        return "local", "Local applies a batch it refuses as naming an item twice"
    if (kind == "pages" and _reads_partitions(case) and max(shoal.get("pages") or [0]) <= 10
            and max(local.get("pages") or [0]) > 10):
        return "local", ("Local returns an IN's results in pages of more than 10 items (Developer Guide, "
                         "PartiQL operators: pages of up to 10 items)")
    if kind == "result" and _reads_partitions(case) and case["body"].get("Limit") and _loses_or_repeats(shoal, local):
        return "local", "Local's NextToken across an IN's partitions loses or repeats items (Shoal's pages hold each once)"
    if kind == "pages" and len(local.get("pages", ())) > len(shoal.get("pages", ())):
        return "local", ("Local pages through the whole table where the WHERE has the partition key's "
                         "equality (Developer Guide: no full table scan then)")
    if kind == "result" and "RETURNING MODIFIED" in statement and _same_names(shoal, local):
        return "unclear", "MODIFIED OLD/NEW after a nested path: Local returns the whole top-level attribute"
    if (kind == "result" and "ORDER BY" in statement and "DESC" in statement and case["body"].get("Limit")
            and _item_set(shoal) == _item_set(local)):
        return "local", "Local's pages of a descending ORDER BY with Limit start mid-partition"
    if (case["op"] == "ExecuteTransaction" and "RETURNING clause is not supported" in sm
            and lm.endswith("Where clause does not contain a mandatory equality on all key attributes")):
        return "local", "RETURNING refused before the key rule (DynamoDB's recorded order)"
    if (sm == "Overlapping conditions with range keys are not supported in where clause"
            and local["class"] == "success"):
        return "local", ("OR branches reading one partition's sort key range twice (a partition named twice too): "
                         "DynamoDB refuses them (recorded), Local reads them")
    if (case["op"] == "ExecuteTransaction" and shoal["class"] == "TransactionCanceledException"
            and "The provided key element does not match the schema" in json.dumps(shoal.get("reasons"))
            and lm.startswith("Validation failed in TransactStatements")):
        return "unclear", "a statement naming no single item and at fault otherwise: which comes first is not recorded"
    if "Overlapping conditions with range keys" in sm and lm.startswith("Validation failed in TransactStatements"):
        return "wording", "a transaction's SELECT naming a partition twice: DynamoDB's recorded words (2026-09-17)"
    if (kind == "result" and case["op"] == "BatchExecuteStatement" and "Overlapping conditions" in json.dumps(shoal)
            and local["class"] == "success"):
        return "unclear", ("a batch's SELECT naming a partition twice: refused as ExecuteStatement's and a "
                           "transaction's are (recorded); a batch's is not recorded, Local reads it")
    if sm == "Too many decomposed read operations for a given query." and local["class"] == "success":
        return "local", "Local reads more than the documented 50 partition key values (DynamoDB refuses, recorded)"
    if "Condition parameter type does not match schema type" in lm:
        # DynamoDB's recorded answers (floci-io/floci, eu-west-2, 2026-09-17): a scan's filter may
        # compare a key attribute with anything (pk > 1 runs); a key read's value of another type is
        # refused as Shoal words it.
        if shoal["class"] == "success" and not _reads_by_key(case):
            return "local", "Local refuses a scan's filter comparing a key attribute with another type (DynamoDB runs it)"
        if sm.startswith("Key attribute's data type should match"):
            return "wording", "a key value of another type in a key read: DynamoDB's recorded words"
        return "unclear", ("Local refuses a key read's further condition comparing a key attribute with a value "
                           "of another type (not recorded from DynamoDB)")
    if "does not project one or more filter attributes" in sm and local["class"] == "success":
        return "unclear", "a filter on what a KEYS_ONLY index does not project (Shoal refuses, as Query)"
    if sm.startswith("Number of parameters in request and statement") and local["class"] == "success":
        return "unclear", "Local ignores Parameters the statement has no ? for"
    if sm.startswith("Must have at least one non-optional hash key condition") and local["class"] == "success":
        return "unclear", "ORDER BY after pk IN [...] (a key read in the Developer Guide; Shoal scans)"
    if "38 significant digits in a Number under" in sm and local["class"] == "success":
        return "unclear", "a 39-digit literal in a comparison (Local accepts)"
    if "cannot contain an empty string value" in lm and local["class"] != shoal["class"]:
        return "unclear", "begins_with(pk, '') (Local refuses an empty key value)"
    if lm.startswith("Key attribute's data type should match") and shoal["class"] == "success":
        return "unclear", "a key attribute compared with a set (Local refuses)"
    if (case["op"] == "ExecuteTransaction" and local["class"] == "TransactionCanceledException"
            and lm.startswith("ValidationError Where clause")):
        # DynamoDB cancels with each such statement's reason (recorded, floci-io/floci, 2026-09-17):
        # Shoal answers so once shoal/api/partiql.py takes h2's patch (docs/status.md)
        if shoal["class"] == "TransactionCanceledException":
            return "local", "a transaction's write without its key: Local cancels with no reasons"
        return "unclear", "a transaction's write without its key: Local cancels with no reasons"
    if kind == "result" and case["op"] == "BatchExecuteStatement" and _members(shoal.get("result"))[0] and all(
            "Error" in a or "Error" in b or a == b for a, b in zip(
                _members(shoal.get("result"))[0]["Responses"], _members(local.get("result"))[0]["Responses"])):
        mine = [r.get("Error", {}).get("Code") for r in shoal["result"]["Responses"]]
        theirs = [r.get("Error", {}).get("Code") for r in local["result"]["Responses"]]
        if mine == theirs:
            return "wording", "a batch member's fault: TableName named by one server only"
    if kind == "wording":
        if any(sentence in lm for sentence in LOCAL_SENTENCES):
            return "wording", "Local's own or older sentence"
        if " at 1:" in lm and lm.split(" at 1:")[0] in sm:
            return "wording", "Local's position suffix (at line:column:length)"
        if "path one:" in sm and "path one:" in lm:
            return "wording", "the two overlapping paths named in the other order"
        if sm.startswith("Negative zero decimal") and lm.split(" at 1:")[0].startswith(
                ("Negative zero decimal", "Validation failed")):
            return "wording", "where a negative zero sits (Local names its place within the attribute)"
        if sm.startswith("1 validation error detected: Value ") or sm.startswith("1 validation error detected: "):
            return "wording", "the API's own constraint (Coral's words, which Local lacks)"
        return "wording", "which fault is named first, or other wording"
    return None


def signature(kind: str, case: dict, shoal: dict, local: dict) -> tuple:
    """What groups like differences: the case's kind and both answers' class
    and message (its first words)."""
    def short(answer):
        message = answer.get("message") or "; ".join(m or "" for m in _members(answer.get("result"))[1])
        return answer["class"], message[:70]
    if kind in ("result", "stored items", "pages"):
        return kind, case["op"], case.get("kind")
    return kind, case["op"], short(shoal), short(local)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="random cases")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shoal", help="a running Shoal's URL (default: start one)")
    parser.add_argument("--local", help="a running DynamoDB Local's URL (default: start one)")
    parser.add_argument("--jar", help="DynamoDBLocal.jar to start")
    parser.add_argument("--only", help="run only the listed cases whose name contains this (no random ones)")
    parser.add_argument("--json", help="write every difference to this file")
    parser.add_argument("--examples", type=int, default=2, help="examples printed per group of differences")
    parser.add_argument("--all", action="store_true", help="print the settled differences' groups too")
    args = parser.parse_args(argv)
    reads, writes = seed_items(args.seed)
    with servers(args.shoal, args.local, args.jar) as (shoal_url, local_url):
        runner = Runner([Endpoint(shoal_url), Endpoint(local_url)], reads, writes)
        runner.setup()
        cases = [c for c in listed_cases() if not args.only or args.only in c["name"]]
        if not args.only:
            gen = Generator(random.Random(args.seed), reads, writes)
            for number in range(args.cases):
                case = make_case(args.seed, number, gen)
                case["name"] = f"random {number}"
                cases.append(case)
        started = time.monotonic()
        groups: dict[tuple, list] = defaultdict(list)
        kinds: Counter = Counter()
        alike: Counter = Counter()
        verdicts: Counter = Counter()
        differences = []
        for case in cases:
            shoal, local = runner.run(case)
            kind = compare(shoal, local)
            if kind is None:
                alike[shoal["class"]] += 1
                continue
            kinds[kind] += 1
            settled = verdict(kind, case, shoal, local)
            verdicts[settled or ("open", kind)] += 1
            if settled is None or args.all:
                groups[signature(kind, case, shoal, local)].append((case, shoal, local))
            differences.append({"case": case["name"], "op": case["op"], "kind": kind, "request": case["body"],
                                "shoal": shoal, "local": local, "verdict": settled})
        elapsed = time.monotonic() - started
        for key, members in sorted(groups.items(), key=lambda kv: (kv[0][0] == "wording", -len(kv[1]))):
            print(f"== {len(members)} x {key}")
            for case, shoal, local in members[: args.examples]:
                print(f"   {case['op']} {json.dumps(case['body'])[:400]}")
                print(f"     shoal: {json.dumps(shoal)[:400]}")
                print(f"     local: {json.dumps(local)[:400]}")
        listed = sum(1 for c in cases if c["kind"] == "listed" or c["name"].startswith(("batch/", "transaction/")))
        print(f"\nseed {args.seed}: {len(cases)} cases ({listed} listed) in {elapsed:.0f} s")
        print(f"alike: {dict(alike)}")
        print(f"differences: {sum(kinds.values())} {dict(kinds)}; open ones in {len(groups)} groups above")
        for (how, why), count in sorted(verdicts.items(), key=lambda kv: (kv[0][0], -kv[1])):
            print(f"  {how:8} {count:5}  {why}")
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"seed": args.seed, "cases": len(cases), "alike": dict(alike), "kinds": dict(kinds),
                           "differences": differences}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
