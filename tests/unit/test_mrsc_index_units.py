"""The index write units an MRSC write reports and charges
(``shoal.replication.strong._index_units``, counted from the round's old
and new items) are those the write path counts for the same write on any
table (``shoal.api.indexes.maintain``, through PutItem, UpdateItem and
DeleteItem's ConsumedCapacity): GSIs and LSIs, ALL, KEYS_ONLY and INCLUDE
projections, an index key that appears, changes or goes, an attribute the
index does not project."""

from __future__ import annotations

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import items, tables
from shoal.api.catalog import Catalog
from shoal.replication.strong import _index_units

NAME = "evs"


@pytest.fixture
def ctx(engine):
    ctx = Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: 1_700_000_000.0)
    key = [{"AttributeName": "u", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}]

    def index(name, hash_key, projection, local=False):
        schema = [{"AttributeName": "u" if local else hash_key, "KeyType": "HASH"}]
        if local:
            schema.append({"AttributeName": hash_key, "KeyType": "RANGE"})
        return {"IndexName": name, "KeySchema": schema, "Projection": projection}

    tables.create_table(ctx, {
        "TableName": NAME, "BillingMode": "PAY_PER_REQUEST", "KeySchema": key,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t}
                                 for n, t in (("u", "S"), ("ts", "N"), ("g", "S"), ("h", "S"), ("l", "S"))],
        "GlobalSecondaryIndexes": [index("all_g", "g", {"ProjectionType": "ALL"}),
                                   index("keys_h", "h", {"ProjectionType": "KEYS_ONLY"}),
                                   index("some_g", "g", {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a"]})],
        "LocalSecondaryIndexes": [index("by_l", "l", {"ProjectionType": "ALL"}, local=True)]})
    return ctx


KEY = {"u": {"S": "u1"}, "ts": {"N": "1"}}


def _item(**attributes) -> dict:
    return {**KEY, **{name: {"S": value} for name, value in attributes.items()}}


# (the item before, the item after: None for none), each a write the write path then makes
WRITES = [
    (None, _item(g="g1", h="h1", l="l1", a="x" * 1500, b="y")),
    (_item(g="g1", h="h1", l="l1", a="x" * 1500, b="y"), _item(g="g1", h="h1", l="l1", a="x" * 1500, b="z")),
    (_item(g="g1", h="h1", l="l1", a="x" * 1500, b="z"), _item(g="g2", h="h1", l="l1", a="x" * 1500, b="z")),
    (_item(g="g2", h="h1", l="l1", a="x" * 1500, b="z"), _item(g="g2", a="small")),
    (_item(g="g2", a="small"), _item(h="h2", l="l2", b="w" * 3000)),
    (_item(h="h2", l="l2", b="w" * 3000), None),
    (None, _item(b="none indexed")),
]


@pytest.mark.parametrize("number", range(len(WRITES)))
def test_an_mrsc_writes_index_units_are_the_write_paths(ctx, number):
    for old, new in WRITES[:number]:  # the writes before this one, so that ``old`` is stored
        if new is not None:
            items.put_item(ctx, {"TableName": NAME, "Item": new})
    old, new = WRITES[number]
    if old is None:
        items.delete_item(ctx, {"TableName": NAME, "Key": KEY})
    else:
        items.put_item(ctx, {"TableName": NAME, "Item": old})
    if new is None:
        answer = items.delete_item(ctx, {"TableName": NAME, "Key": KEY, "ReturnConsumedCapacity": "INDEXES"})
    else:
        answer = items.put_item(ctx, {"TableName": NAME, "Item": new, "ReturnConsumedCapacity": "INDEXES"})
    answer = orjson.loads(answer) if isinstance(answer, (bytes, str)) else answer
    reported = {member: {name: units["CapacityUnits"] for name, units in by_name.items()}
                for member, by_name in answer["ConsumedCapacity"].items()
                if member in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")}
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, NAME)
    assert (_index_units(table, KEY, old, new) or {}) == reported
