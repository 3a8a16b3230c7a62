"""Snapshots of a table and tables built from one plus a replay of the change
log (issue 15, point 3), over a real engine."""

from __future__ import annotations

import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, query, tables
from shoal.api.catalog import Catalog
from shoal.api.changelog import head_position, prune_changes, register_consumer
from shoal.api.snapshots import build_table, create_request, snapshot_table
from shoal.errors import ShoalError
from shoal.storage.lmdb_engine import LmdbEngine

REGION = "us-east-1"


@pytest.fixture
def ctx(lmdb_engine):
    return Context(REGION, DEFAULT_ACCOUNT, lmdb_engine, Catalog(lmdb_engine))


def make_events(ctx):
    tables.create_table(ctx, {
        "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"},
                                 {"AttributeName": "content_id", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_content", "Projection": {"ProjectionType": "ALL"},
                                    "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                                  {"AttributeName": "ts", "KeyType": "RANGE"}]}]})


def put(ctx, user, ts, content="c1", table="events"):
    items.put_item(ctx, {"TableName": table, "Item": {
        "user_id": {"S": user}, "ts": {"N": str(ts)}, "content_id": {"S": content}}})


def all_items(ctx, table) -> list:
    out = query.scan(ctx, {"TableName": table})
    out = out if isinstance(out, dict) else __import__("orjson").loads(out)
    return sorted(out["Items"], key=lambda i: (i["user_id"]["S"], int(i["ts"]["N"])))


def by_content(ctx, table, content) -> list:
    out = query.query(ctx, {"TableName": table, "IndexName": "by_content", "KeyConditionExpression": "content_id = :c",
                            "ExpressionAttributeValues": {":c": {"S": content}}})
    out = out if isinstance(out, dict) else __import__("orjson").loads(out)
    return [(i["user_id"]["S"], i["ts"]["N"]) for i in out["Items"]]


def test_a_table_built_from_a_snapshot_is_a_copy(ctx):
    make_events(ctx)
    for n in range(1200):  # more than one build chunk
        put(ctx, f"u{n % 7}", n, f"c{n % 3}")
    with snapshot_table(ctx.engine, ctx.catalog, REGION, "events") as snapshot:
        build_table(ctx, snapshot, "events_copy")
    assert all_items(ctx, "events_copy") == all_items(ctx, "events")
    assert by_content(ctx, "events_copy", "c2") == by_content(ctx, "events", "c2")
    described = tables.describe_table(ctx, {"TableName": "events_copy"})["Table"]
    assert described["ItemCount"] == 1200 and described["GlobalSecondaryIndexes"][0]["IndexName"] == "by_content"


def test_writers_go_on_while_a_snapshot_is_read_and_do_not_appear_in_it(ctx):
    make_events(ctx)
    put(ctx, "a", 1)
    with snapshot_table(ctx.engine, ctx.catalog, REGION, "events") as snapshot:
        put(ctx, "b", 2)  # committed while the snapshot's transaction is open
        items.delete_item(ctx, {"TableName": "events", "Key": {"user_id": {"S": "a"}, "ts": {"N": "1"}}})
        taken = list(snapshot.items)
    assert [(i["user_id"]["S"], i["ts"]["N"]) for i in taken] == [("a", "1")]
    assert [i["user_id"]["S"] for i in all_items(ctx, "events")] == ["b"]


def test_snapshot_plus_replay_to_a_position_is_the_table_at_that_position(ctx):
    make_events(ctx)
    for n in range(10):
        put(ctx, "u", n)
    with snapshot_table(ctx.engine, ctx.catalog, REGION, "events") as snapshot:
        snapshot_items = list(snapshot.items)
        position = snapshot.position
    for n in range(10, 15):
        put(ctx, "u", n, "c9")
    items.delete_item(ctx, {"TableName": "events", "Key": {"user_id": {"S": "u"}, "ts": {"N": "3"}}})
    with ctx.engine.read() as txn:
        middle = head_position(txn)
    state_at_middle = all_items(ctx, "events")
    put(ctx, "late", 99)
    items.update_item(ctx, {"TableName": "events", "Key": {"user_id": {"S": "u"}, "ts": {"N": "0"}},
                            "UpdateExpression": "SET content_id = :c", "ExpressionAttributeValues": {":c": {"S": "c5"}}})

    class Again:  # the same snapshot, read again (its items were consumed above)
        table_id, description, items = snapshot.table_id, snapshot.description, iter(snapshot_items)
    Again.position = position
    build_table(ctx, Again, "at_middle", until=middle)
    assert all_items(ctx, "at_middle") == state_at_middle
    assert by_content(ctx, "at_middle", "c9") == [("u", str(n)) for n in range(10, 15)]
    Again.items = iter(snapshot_items)
    build_table(ctx, Again, "at_head")  # to the head: the table as it is now
    assert all_items(ctx, "at_head") == all_items(ctx, "events")


def test_a_replay_that_needs_pruned_records_is_refused(ctx):
    make_events(ctx)
    put(ctx, "u", 1)
    with snapshot_table(ctx.engine, ctx.catalog, REGION, "events") as snapshot:
        taken = list(snapshot.items)
        position, table_id, description = snapshot.position, snapshot.table_id, snapshot.description
    put(ctx, "u", 2)
    put(ctx, "u", 3)
    with ctx.engine.write() as txn:
        register_consumer(txn, "everything", at=10**9)
        prune_changes(txn, 0, 10**10)  # every record is old and read
    snap = type("S", (), {"table_id": table_id, "description": description, "position": position,
                          "items": iter(taken)})
    with pytest.raises(ShoalError) as err:
        build_table(ctx, snap, "gap")
    assert "pruned" in err.value.message


def test_create_request_keeps_schema_billing_and_active_indexes():
    desc = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "g", "AttributeType": "N"},
                                     {"AttributeName": "gone", "AttributeType": "S"}],
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 3, "NumberOfDecreasesToday": 0},
            "GlobalSecondaryIndexes": [
                {"IndexName": "g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                 "Projection": {"ProjectionType": "KEYS_ONLY"}, "IndexStatus": "ACTIVE",
                 "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}},
                {"IndexName": "old", "KeySchema": [{"AttributeName": "gone", "KeyType": "HASH"}],
                 "Projection": {"ProjectionType": "ALL"}, "IndexStatus": "DELETING",
                 "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}]}
    request = create_request(desc, "copy")
    assert request["BillingMode"] == "PROVISIONED"
    assert request["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 3}
    assert [g["IndexName"] for g in request["GlobalSecondaryIndexes"]] == ["g"]
    assert [d["AttributeName"] for d in request["AttributeDefinitions"]] == ["pk", "g"]


def test_a_snapshot_of_the_whole_store_opens_as_a_store(ctx, tmp_path):
    """Engine.snapshot: a consistent copy made while the engine is in use."""
    make_events(ctx)
    for n in range(50):
        put(ctx, "u", n)
    ctx.engine.snapshot(tmp_path / "copy")
    put(ctx, "after", 1)  # not in the copy
    copy = LmdbEngine(tmp_path / "copy", sync=False)
    try:
        copied = Context(REGION, DEFAULT_ACCOUNT, copy, Catalog(copy))
        assert len(all_items(copied, "events")) == 50
        with copy.read() as txn, ctx.engine.read() as live:
            assert head_position(txn) == head_position(live) - 1
    finally:
        copy.close()
    with pytest.raises(FileExistsError):
        ctx.engine.snapshot(tmp_path / "copy")  # never over an existing directory
