"""Multi-attribute GSI keys against a model: for random items and random key
conditions, a Query (paged with random Limits, both directions) returns
exactly the items a plain Python filter and sort over the key attributes
would, in the same order."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.api import DEFAULT_ACCOUNT, Context, items, query, tables
from shoal.api.catalog import Catalog
from shoal.storage.memory_engine import MemoryEngine

# Partition (title, country), sort (event_type, position): small domains so
# partitions and equal sort values repeat.
TITLES = ["c1", "c2"]
COUNTRIES = [1, 2]
TYPES = ["pause", "play", "p", "seek"]
POSITIONS = [-5, 0, 3, 10, 250]

item_values = st.fixed_dictionaries({
    "title": st.sampled_from(TITLES), "country": st.sampled_from(COUNTRIES),
    "etype": st.one_of(st.none(), st.sampled_from(TYPES)), "pos": st.sampled_from(POSITIONS)})

OPS = {"=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
       ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


@st.composite
def conditions(draw):
    """(sort attribute conditions as (name, op, values)) on a prefix of the sort key."""
    kind = draw(st.sampled_from(["none", "type", "type_eq_pos", "type_eq"]))
    if kind == "none":
        return []
    if kind == "type":
        op = draw(st.sampled_from([*OPS, "BETWEEN", "begins_with"]))
        if op == "BETWEEN":
            low, high = sorted(draw(st.lists(st.sampled_from(TYPES), min_size=2, max_size=2)))
            return [("etype", op, [low, high])]
        return [("etype", op, [draw(st.sampled_from(TYPES))])]
    conds = [("etype", "=", [draw(st.sampled_from(TYPES))])]
    if kind == "type_eq_pos":
        op = draw(st.sampled_from([*OPS, "BETWEEN"]))
        if op == "BETWEEN":
            low, high = sorted(draw(st.lists(st.sampled_from(POSITIONS), min_size=2, max_size=2)))
            conds.append(("pos", op, [low, high]))
        else:
            conds.append(("pos", op, [draw(st.sampled_from(POSITIONS))]))
    return conds


def matches(value, op, args) -> bool:
    if op == "BETWEEN":
        return args[0] <= value <= args[1]
    if op == "begins_with":
        return value.startswith(args[0])
    return OPS[op](value, args[0])


def wire(value) -> dict:
    return {"N": str(value)} if isinstance(value, int) else {"S": value}


@settings(max_examples=60, deadline=None)
@given(st.lists(item_values, max_size=30), st.sampled_from(TITLES), st.sampled_from(COUNTRIES), conditions(),
       st.integers(1, 7), st.booleans())
def test_query_agrees_with_the_model(rows, title, country, conds, limit, forward):
    engine = MemoryEngine()
    try:
        ctx = Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: 1_700_000_000.0)
        tables.create_table(ctx, {
            "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in (
                ("user", "S"), ("ts", "N"), ("title", "S"), ("country", "N"), ("etype", "S"), ("pos", "N"))],
            "KeySchema": [{"AttributeName": "user", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [{"IndexName": "multi", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                        "KeySchema": [{"AttributeName": "title", "KeyType": "HASH"},
                                                      {"AttributeName": "country", "KeyType": "HASH"},
                                                      {"AttributeName": "etype", "KeyType": "RANGE"},
                                                      {"AttributeName": "pos", "KeyType": "RANGE"}]}]})
        stored = []
        for ts, row in enumerate(rows):
            item = {"user": {"S": f"u{ts % 3}"}, "ts": {"N": str(ts)},
                    **{k: wire(v) for k, v in row.items() if v is not None}}
            items.put_item(ctx, {"TableName": "events", "Item": item})
            stored.append((f"u{ts % 3}", ts, row))
        expected = [
            (user, ts) for user, ts, row in stored
            if row["etype"] is not None and row["title"] == title and row["country"] == country
            and all(matches(row[name], op, args) for name, op, args in conds)]
        by_row = {(user, ts): row for user, ts, row in stored}
        # Index order: the sort attributes in order, then the table key (user, ts).
        expected.sort(key=lambda k: (by_row[k]["etype"].encode(), by_row[k]["pos"], k[0].encode(), k[1]),
                      reverse=not forward)
        values = {":t": wire(title), ":n": wire(country)}
        text = ["title = :t", "country = :n"]
        for i, (name, op, args) in enumerate(conds):
            holders = []
            for j, arg in enumerate(args):
                values[f":v{i}{j}"] = wire(arg)
                holders.append(f":v{i}{j}")
            if op == "BETWEEN":
                text.append(f"{name} BETWEEN {holders[0]} AND {holders[1]}")
            elif op == "begins_with":
                text.append(f"begins_with({name}, {holders[0]})")
            else:
                text.append(f"{name} {op} {holders[0]}")
        request = {"TableName": "events", "IndexName": "multi", "KeyConditionExpression": " AND ".join(text),
                   "ExpressionAttributeValues": values, "Limit": limit, "ScanIndexForward": forward}
        got = []
        for _ in range(len(rows) + 2):
            page = orjson.loads(query.query(ctx, request))
            got += [(i["user"]["S"], int(i["ts"]["N"])) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        assert got == expected
    finally:
        engine.close()
