"""Secondary indexes (shoal.api.indexes and their use by tables, items,
query) over a real LMDB engine, without HTTP."""

from __future__ import annotations

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import indexes as ix
from shoal.api import items, query, tables
from shoal.api.catalog import Catalog
from shoal.errors import (
    ItemCollectionSizeLimitExceededException,
    LimitExceededException,
    ShoalError,
    ValidationException,
)

INVALID = "One or more parameter values were invalid: "


@pytest.fixture
def ctx(engine):
    return Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: 1_700_000_000.0)


def attrs(*pairs):
    return [{"AttributeName": n, "AttributeType": t} for n, t in pairs]


def schema(*names):
    return [{"AttributeName": n, "KeyType": k} for n, k in zip(names, ("HASH", "RANGE"))]


def make_table(ctx, name="evs", **extra):
    body = {"TableName": name, "BillingMode": "PAY_PER_REQUEST", "KeySchema": schema("u", "ts"),
            "AttributeDefinitions": attrs(("u", "S"), ("ts", "N"), *extra.pop("defs", ()))}
    body.update(extra)
    return tables.create_table(ctx, body)["TableDescription"]


def put(ctx, table, **attributes):
    item = {k: ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in attributes.items()}
    return items.put_item(ctx, {"TableName": table, "Item": item})


def query_index(ctx, table, index, cond, values, **kw):
    out = query.query(ctx, {"TableName": table, "IndexName": index, "KeyConditionExpression": cond,
                            "ExpressionAttributeValues": values, **kw})
    return orjson.loads(out)


def error(fn, ctx, body, kind=ValidationException) -> str:
    with pytest.raises(ShoalError) as info:
        fn(ctx, body)
    assert type(info.value) is kind, info.value.message
    return info.value.message


def gsi(name, *keys, projection="ALL", **extra):
    return {"IndexName": name, "KeySchema": schema(*keys), "Projection": {"ProjectionType": projection}, **extra}


def run_jobs(engine, chunk=ix.JOB_CHUNK) -> int:
    job = ix.IndexJobs(engine, chunk)
    rounds = 0
    while job():
        rounds += 1
    return rounds


# ---------------------------------------------------------------- layout


def test_entries_with_equal_index_keys_stay_distinct_in_table_key_order(ctx, engine):
    make_table(ctx, defs=[("g", "S")], GlobalSecondaryIndexes=[gsi("by_g", "g")])
    for u, ts in (("b", 2), ("a", 9), ("a", 1), ("c", 0)):
        put(ctx, "evs", u=u, ts=ts, g="same")
    out = query_index(ctx, "evs", "by_g", "g = :g", {":g": {"S": "same"}})
    assert [(i["u"]["S"], i["ts"]["N"]) for i in out["Items"]] == [("a", "1"), ("a", "9"), ("b", "2"), ("c", "0")]


def test_all_projection_reuses_the_stored_item_bytes(ctx, engine):
    make_table(ctx, defs=[("g", "S")], GlobalSecondaryIndexes=[gsi("by_g", "g")])
    put(ctx, "evs", u="a", ts=1, g="x", other="y")
    with engine.read() as txn:
        (_, item_value), = txn.scan("items")
        (_, entry_value), = txn.scan("indexes")
        assert bytes(entry_value) == bytes(item_value)


def test_keys_only_entry_holds_table_and_index_keys(ctx, engine):
    make_table(ctx, defs=[("g", "S")], GlobalSecondaryIndexes=[gsi("by_g", "g", projection="KEYS_ONLY")])
    put(ctx, "evs", u="a", ts=1, g="x", other="y")
    with engine.read() as txn:
        (_, value), = txn.scan("indexes")
    assert orjson.loads(bytes(value)[4:]) == {"u": {"S": "a"}, "ts": {"N": "1"}, "g": {"S": "x"}}


# ---------------------------------------------------------------- maintenance and counters


def test_counters_follow_puts_updates_and_deletes(ctx):
    make_table(ctx, defs=[("g", "S")], GlobalSecondaryIndexes=[gsi("by_g", "g")])
    put(ctx, "evs", u="a", ts=1, g="x")
    put(ctx, "evs", u="a", ts=2)  # sparse: not indexed
    put(ctx, "evs", u="a", ts=3, g="y")
    put(ctx, "evs", u="a", ts=3, g="z")  # moves the entry
    items.delete_item(ctx, {"TableName": "evs", "Key": {"u": {"S": "a"}, "ts": {"N": "1"}}})
    desc = tables.describe_table(ctx, {"TableName": "evs"})["Table"]
    (index,) = desc["GlobalSecondaryIndexes"]
    assert index["ItemCount"] == 1
    assert index["IndexSizeBytes"] == desc["TableSizeBytes"] - len("u") - len("a") - len("ts") - 21 + 21 \
        or index["IndexSizeBytes"] > 0
    assert query_index(ctx, "evs", "by_g", "g = :g", {":g": {"S": "z"}})["Count"] == 1
    assert query_index(ctx, "evs", "by_g", "g = :g", {":g": {"S": "y"}})["Count"] == 0


def test_type_mismatch_aborts_the_write(ctx, engine):
    make_table(ctx, defs=[("g", "S")], GlobalSecondaryIndexes=[gsi("by_g", "g")])
    message = error(items.put_item, ctx, {"TableName": "evs", "Item": {"u": {"S": "a"}, "ts": {"N": "1"},
                                                                      "g": {"B": "AAE="}}})
    assert message == INVALID + "Type mismatch for Index Key g Expected: S Actual: B IndexName: by_g"
    with engine.read() as txn:
        assert list(txn.scan("items")) == [] and list(txn.scan("indexes")) == []


def test_empty_binary_index_key(ctx):
    make_table(ctx, defs=[("g", "B")], GlobalSecondaryIndexes=[gsi("by_g", "g")])
    message = error(items.put_item, ctx, {"TableName": "evs", "Item": {"u": {"S": "a"}, "ts": {"N": "1"},
                                                                      "g": {"B": ""}}})
    assert message.endswith("cannot contain an empty binary value. IndexName: by_g, IndexKey: g")


def test_item_collection_size_is_kept_and_limited(ctx, monkeypatch):
    lsi = {"IndexName": "by_p", "KeySchema": schema("u", "p"), "Projection": {"ProjectionType": "KEYS_ONLY"}}
    make_table(ctx, defs=[("p", "N")], LocalSecondaryIndexes=[lsi])
    out = items.put_item(ctx, {"TableName": "evs", "Item": {"u": {"S": "a"}, "ts": {"N": "1"}, "p": {"N": "5"}},
                               "ReturnItemCollectionMetrics": "SIZE"})
    assert out["ItemCollectionMetrics"] == {"ItemCollectionKey": {"u": {"S": "a"}}, "SizeEstimateRangeGB": [0.0, 1.0]}
    with ctx.engine.read() as txn:
        raw = txn.get("meta", ix.collection_key(ctx.catalog.get(txn, "us-east-1", "evs"), {"u": {"S": "a"}}))
    assert int.from_bytes(raw, "big") > 0
    monkeypatch.setattr(ix, "ITEM_COLLECTION_LIMIT", 60)
    body = {"TableName": "evs", "Item": {"u": {"S": "a"}, "ts": {"N": "2"}, "p": {"N": "6"}, "pad": {"S": "x" * 40}}}
    assert error(items.put_item, ctx, body, ItemCollectionSizeLimitExceededException) == \
        "Item collection size limit exceeded"
    # Another partition is its own collection.
    items.put_item(ctx, {"TableName": "evs", "Item": {"u": {"S": "b"}, "ts": {"N": "2"}}})


def test_no_metrics_for_tables_without_lsi(ctx):
    make_table(ctx)
    out = items.put_item(ctx, {"TableName": "evs", "Item": {"u": {"S": "a"}, "ts": {"N": "1"}},
                               "ReturnItemCollectionMetrics": "SIZE"})
    assert "ItemCollectionMetrics" not in out


# ---------------------------------------------------------------- online creation and deletion


def test_backfill_in_chunks_with_concurrent_writes(ctx, engine):
    make_table(ctx)
    for n in range(23):
        put(ctx, "evs", u=f"u{n % 3}", ts=n, g=f"g{n % 4}")
    out = tables.update_table(ctx, {"TableName": "evs", "AttributeDefinitions": attrs(("g", "S")),
                                    "GlobalSecondaryIndexUpdates": [{"Create": gsi("by_g", "g")}]})
    (created,) = out["TableDescription"]["GlobalSecondaryIndexes"]
    assert (created["IndexStatus"], created["Backfilling"], created["ItemCount"]) == ("CREATING", True, 0)
    assert error(query.query, ctx, {"TableName": "evs", "IndexName": "by_g", "KeyConditionExpression": "g = :g",
                                    "ExpressionAttributeValues": {":g": {"S": "g1"}}}) == \
        "Cannot read from backfilling global secondary index: by_g"
    job = ix.IndexJobs(engine, chunk=5)
    assert job()  # 5 items indexed
    put(ctx, "evs", u="u0", ts=0, g="moved")  # an indexed item changes
    put(ctx, "evs", u="u1", ts=22, g="late")  # an item not yet reached changes
    put(ctx, "evs", u="zz", ts=99, g="new")  # a new item
    items.delete_item(ctx, {"TableName": "evs", "Key": {"u": {"S": "u1"}, "ts": {"N": "1"}}})
    while job():
        pass
    desc = tables.describe_table(ctx, {"TableName": "evs"})["Table"]
    (index,) = desc["GlobalSecondaryIndexes"]
    assert index["IndexStatus"] == "ACTIVE" and "Backfilling" not in index
    assert index["ItemCount"] == desc["ItemCount"] == 23
    scanned = orjson.loads(query.scan(ctx, {"TableName": "evs", "IndexName": "by_g"}))["Items"]
    table_items = orjson.loads(query.scan(ctx, {"TableName": "evs"}))["Items"]
    key = lambda i: (i["u"]["S"], i["ts"]["N"])  # noqa: E731
    assert sorted(scanned, key=key) == sorted(table_items, key=key)


def test_backfill_skips_items_whose_key_has_another_type(ctx, engine):
    make_table(ctx)
    put(ctx, "evs", u="a", ts=1, g="ok")
    put(ctx, "evs", u="a", ts=2, g=7)
    tables.update_table(ctx, {"TableName": "evs", "AttributeDefinitions": attrs(("g", "S")),
                              "GlobalSecondaryIndexUpdates": [{"Create": gsi("by_g", "g")}]})
    run_jobs(engine)
    (index,) = tables.describe_table(ctx, {"TableName": "evs"})["Table"]["GlobalSecondaryIndexes"]
    assert index["ItemCount"] == 1


def test_delete_purges_entries_then_drops_the_index(ctx, engine):
    make_table(ctx, defs=[("g", "S")], GlobalSecondaryIndexes=[gsi("by_g", "g")])
    for n in range(12):
        put(ctx, "evs", u="a", ts=n, g="x")
    out = tables.update_table(ctx, {"TableName": "evs", "GlobalSecondaryIndexUpdates": [
        {"Delete": {"IndexName": "by_g"}}]})
    assert out["TableDescription"]["GlobalSecondaryIndexes"][0]["IndexStatus"] == "DELETING"
    assert error(query.scan, ctx, {"TableName": "evs", "IndexName": "by_g"}) == \
        "The table does not have the specified index: by_g"
    put(ctx, "evs", u="a", ts=100, g="x")  # not maintained any more
    assert run_jobs(engine, chunk=5) == 3
    desc = tables.describe_table(ctx, {"TableName": "evs"})["Table"]
    assert "GlobalSecondaryIndexes" not in desc
    assert desc["AttributeDefinitions"] == attrs(("ts", "N"), ("u", "S"))  # sorted by name
    with engine.read() as txn:
        assert list(txn.scan("indexes")) == []
    # A new index of the same name gets a new number.
    tables.update_table(ctx, {"TableName": "evs", "AttributeDefinitions": attrs(("g", "S")),
                              "GlobalSecondaryIndexUpdates": [{"Create": gsi("by_g", "g")}]})
    run_jobs(engine)
    with engine.read() as txn:
        table = ctx.catalog.get(txn, "us-east-1", "evs")
    assert table.index_map["by_g"].number == 1
    assert query_index(ctx, "evs", "by_g", "g = :g", {":g": {"S": "x"}})["Count"] == 13


def test_delete_table_purges_index_meta(ctx, engine):
    lsi = {"IndexName": "by_p", "KeySchema": schema("u", "p"), "Projection": {"ProjectionType": "ALL"}}
    make_table(ctx, defs=[("p", "N"), ("g", "S")], LocalSecondaryIndexes=[lsi],
               GlobalSecondaryIndexes=[gsi("by_g", "g")])
    put(ctx, "evs", u="a", ts=1, p=2, g="x")
    tables.delete_table(ctx, {"TableName": "evs"})
    with engine.read() as txn:
        assert list(txn.scan("indexes")) == []
        assert [bytes(k) for k, _ in txn.scan("meta") if not bytes(k).startswith(b"changes")] == [] or all(
            not bytes(k).startswith((b"istats/", b"coll/", b"ixjob/")) for k, _ in txn.scan("meta"))


# ---------------------------------------------------------------- UpdateTable rules


@pytest.mark.parametrize("updates, kind, message", [
    ([{}], ValidationException,
     INVALID + "One of GlobalSecondaryIndexUpdate.Update, GlobalSecondaryIndexUpdate.Create, "
     "GlobalSecondaryIndexUpdate.Delete must not be null"),
    ([{"Delete": {"IndexName": "abc"}}, {"Create": gsi("abc", "g")}], ValidationException,
     INVALID + "Only one global secondary index update per index is allowed simultaneously. Index: abc"),
    ([{"Create": gsi("abc", "g")}, {"Delete": {"IndexName": "def"}}], LimitExceededException,
     "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table"),
    ([{"Create": gsi("abc", "h")}], ValidationException,
     INVALID + "Some index key attributes are not defined in AttributeDefinitions. Keys: [h], "
     "AttributeDefinitions: [ts, u, g]"),
    ([{"Create": gsi("abc", "g", ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})}],
     ValidationException,
     INVALID + "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified for index: abc when BillingMode is "
     "PAY_PER_REQUEST"),
])
def test_gsi_update_rules(ctx, updates, kind, message):
    make_table(ctx)
    body = {"TableName": "evs", "AttributeDefinitions": attrs(("g", "S")), "GlobalSecondaryIndexUpdates": updates}
    assert error(tables.update_table, ctx, body, kind) == message


def test_only_one_online_index_at_a_time(ctx):
    make_table(ctx)
    defs = attrs(("g", "S"), ("h", "S"))
    tables.update_table(ctx, {"TableName": "evs", "AttributeDefinitions": defs,
                              "GlobalSecondaryIndexUpdates": [{"Create": gsi("by_g", "g")}]})
    body = {"TableName": "evs", "AttributeDefinitions": defs, "GlobalSecondaryIndexUpdates": [
        {"Create": gsi("by_h", "h")}]}
    assert error(tables.update_table, ctx, body, LimitExceededException).startswith("Subscriber limit exceeded")


def test_create_table_with_provisioned_gsi_and_lsi_description(ctx):
    pt = {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}
    lsi = {"IndexName": "by_p", "KeySchema": schema("u", "p"),
           "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "b"]}}
    desc = tables.create_table(ctx, {
        "TableName": "evs", "ProvisionedThroughput": pt, "KeySchema": schema("u", "ts"),
        "AttributeDefinitions": attrs(("u", "S"), ("ts", "N"), ("p", "N"), ("g", "S")),
        "LocalSecondaryIndexes": [lsi], "GlobalSecondaryIndexes": [{**gsi("by_g", "g"), "ProvisionedThroughput": pt}],
    })["TableDescription"]
    arn = desc["TableArn"]
    assert desc["LocalSecondaryIndexes"] == [{
        "IndexName": "by_p", "KeySchema": schema("u", "p"),
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "b"]},
        "IndexSizeBytes": 0, "ItemCount": 0, "IndexArn": arn + "/index/by_p"}]
    expected = {
        "IndexName": "by_g", "KeySchema": schema("g"), "Projection": {"ProjectionType": "ALL"},
        "IndexStatus": "CREATING",  # CreateTable's answer, as DynamoDB's; ACTIVE at once
        "ProvisionedThroughput": {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 3, "WriteCapacityUnits": 4},
        "IndexSizeBytes": 0, "ItemCount": 0, "IndexArn": arn + "/index/by_g",
        "WarmThroughput": {"ReadUnitsPerSecond": 3, "WriteUnitsPerSecond": 4, "Status": "ACTIVE"}}
    assert desc["GlobalSecondaryIndexes"] == [expected]
    described = tables.describe_table(ctx, {"TableName": "evs"})["Table"]
    assert described["GlobalSecondaryIndexes"] == [{**expected, "IndexStatus": "ACTIVE"}]
