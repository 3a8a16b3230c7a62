"""The change log (shoal.api.changelog) over a real engine: what a record
carries, table-level records, consumers with cursors, pruning and status
(issue 15, points 1 and 2)."""

from __future__ import annotations

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import items, resource_policies, streams, tables, ttl
from shoal.api.catalog import Catalog
from shoal.api.changelog import (
    SEQ_KEY,
    advance_consumer,
    consumer_cursor,
    consumers,
    decode_change,
    ChangeAppender,
    change_time,
    head_position,
    is_item_insert,
    is_table_change,
    item_change_parts,
    log_status,
    prune_changes,
    read_raw_changes,
    record_table_change,
    register_consumer,
    unregister_consumer,
)
from shoal.storage.lmdb_engine import LmdbEngine

REGION = "us-east-1"
DAY = 24 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ctx(engine, clock):
    return Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)


def make_table(ctx, name="events"):
    return tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})["TableDescription"]


def records(engine, after=0) -> list[tuple[int, int, dict]]:
    with engine.read() as txn:
        return [(seq, *decode_change(value)) for seq, _, value in read_raw_changes(txn, after)]


def put(ctx, pk, **attrs):
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": pk}, **attrs}})


def test_item_records_carry_identity_origin_and_time(ctx, engine, clock):
    table_id = make_table(ctx)["TableId"]
    start = records(engine)[-1][0] if records(engine) else 0
    put(ctx, "a")
    clock.now += 1.5
    put(ctx, "a", v={"N": "1"})
    got = records(engine, start)
    assert [r["keys"] for _, _, r in got] == [{"pk": {"S": "a"}}] * 2
    assert all(r["table"] == table_id for _, _, r in got)
    origins = {r["origin"] for _, _, r in got}
    assert len(origins) == 1
    region, node = origins.pop().split(":")
    assert region == REGION and len(node) == 16 and int(node, 16) >= 0
    assert got[1][1] - got[0][1] == 1500  # write time in ms, from the operation's clock
    assert got[1][0] == got[0][0] + 1  # positions: the log's total order


def test_the_node_id_is_kept_with_the_head_and_survives_reopening(tmp_path):
    path = tmp_path / "db"
    engine = LmdbEngine(path, sync=False)
    ctx = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))
    make_table(ctx)
    put(ctx, "a")
    first = records(engine)[-1][2]["origin"]
    engine.close()
    engine = LmdbEngine(path, sync=False)
    try:
        ctx = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))
        put(ctx, "b")
        assert records(engine)[-1][2]["origin"] == first
        with engine.read() as txn:
            assert txn.get("meta", SEQ_KEY)[8:].hex() == first.split(":")[1]
    finally:
        engine.close()


def test_table_changes_are_recorded_with_the_change(ctx, engine):
    desc = make_table(ctx)
    arn = desc["TableArn"]
    ttl.update_time_to_live(ctx, {"TableName": "events",
                                  "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "exp"}})
    policy = orjson.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "dynamodb:DeleteTable", "Resource": arn}]}).decode()
    resource_policies.put_resource_policy(ctx, {"ResourceArn": arn, "Policy": policy})
    resource_policies.delete_resource_policy(ctx, {"ResourceArn": arn})
    table_records = [r for _, _, r in records(engine) if is_table_change(r)]
    ops = [r["op"] for r in table_records]
    assert ops[-3:] == ["UpdateTimeToLive", "PutResourcePolicy", "DeleteResourcePolicy"]
    assert all(r["table"] == desc["TableId"] for r in table_records[-3:])
    assert table_records[-3]["TimeToLiveSpecification"] == {"Enabled": True, "AttributeName": "exp"}
    assert table_records[-2]["Policy"] == policy


def test_a_table_change_aborted_with_its_transaction_leaves_no_record(ctx, engine):
    make_table(ctx)
    with engine.read() as txn:
        head = head_position(txn)
        table = ctx.catalog.get(txn, REGION, "events")
    with pytest.raises(RuntimeError):
        with engine.write() as txn:
            assert record_table_change(txn, table, "UpdateTable", {}) == head + 1
            raise RuntimeError("the operation failed after recording")
    with engine.read() as txn:
        assert head_position(txn) == head
    assert records(engine, head) == []


def test_stream_records_are_only_item_changes(ctx, engine):
    """A table change inside the range a stream covers is no stream record."""
    make_table(ctx)
    tables.update_table(ctx, {"TableName": "events",
                              "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}})
    put(ctx, "a")
    ttl.update_time_to_live(ctx, {"TableName": "events",
                                  "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "exp"}})
    put(ctx, "b")
    streams.catch_up(engine)
    arn = tables.describe_table(ctx, {"TableName": "events"})["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard,
                                                "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    got = orjson.loads(streams.get_records(ctx, {"ShardIterator": iterator}))["Records"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in got] == ["a", "b"]


def test_item_change_parts_slice_what_decoding_gives(ctx, engine, clock):
    """The slices the replica source's readers take instead of decoding are
    the record's keys, images, origin and time; a record whose layout the
    slicing cannot trust (an attribute named new, a userIdentity) or a
    table change gives None, for the caller to decode."""
    make_table(ctx)
    with engine.read() as txn:
        start = head_position(txn)
    put(ctx, "plain", v={"N": "1"})
    put(ctx, "plain", v={"N": "2"}, old={"S": '"}},"old":'})  # a modify; the quote is escaped in JSON
    put(ctx, 'quote"}},"old":{"S":"x"}},"new":null}', w={"L": [{"M": {"new": {"S": "inner"}}}]})
    put(ctx, "named", new={"S": "an attribute named new"})
    items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "plain"}}})
    ttl.update_time_to_live(ctx, {"TableName": "events",
                                  "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "exp"}})
    with engine.write() as txn:
        table = ctx.catalog.get(txn, REGION, "events")
        log = ChangeAppender(txn)
        log.item_change(table, {"pk": {"S": "gone"}}, b'{"pk":{"S":"gone"}}', None,
                        user_identity={"type": "Service", "principalId": "dynamodb.amazonaws.com"})
        log.finish()
    with engine.read() as txn:
        stored = [bytes(value) for _, _, value in read_raw_changes(txn, start)]
    sliced = []
    for value in stored:
        ms, record = decode_change(value)
        parts = item_change_parts(value)
        if parts is None:
            sliced.append(None)
            continue
        origin, replicated, keys, old, new = parts
        assert change_time(value) == ms
        assert (origin.decode(), replicated) == (record["origin"], False)
        assert orjson.loads(keys) == record["keys"]
        assert (None if old is None else orjson.loads(old)) == record["old"]
        assert (None if new is None else orjson.loads(new)) == record["new"]
        sliced.append(record["keys"]["pk"]["S"])
    assert sliced == ["plain", "plain", 'quote"}},"old":{"S":"x"}},"new":null}', None, "plain", None, None]
    # a new item's record is told from the others by its bytes alone
    assert [is_item_insert(value) for value in stored] == [True, False, True, True, False, False, False]


def test_item_change_parts_of_a_replicated_write(ctx, engine):
    """A peer's write applied here carries originSeq and originTime before its keys."""
    from shoal.replication.apply import ReplicatedWriteLog

    make_table(ctx)
    with engine.write() as txn:
        table = ctx.catalog.get(txn, REGION, "events")
        log = ReplicatedWriteLog(txn)
        log.origin, log.origin_seq, log.origin_time = "eu-west-1:00aa", 41, 1_700_000_000_123
        log.origin_json = b'"eu-west-1:00aa"'  # as apply_changes encodes it once a batch
        log.item_change(table, {"pk": {"S": "r"}}, None, b'{"pk":{"S":"r"},"n":{"N":"5"}}')
        log.finish()
        value = bytes(next(iter(txn.scan("changes", reverse=True)))[1])
    assert item_change_parts(value) == (b"eu-west-1:00aa", True, b'{"pk":{"S":"r"}}', None,
                                        b'{"pk":{"S":"r"},"n":{"N":"5"}}')


# ---------------------------------------------------------------- consumers and pruning


def test_records_are_kept_for_a_consumer_until_it_has_passed_them(ctx, engine, clock):
    make_table(ctx)
    with engine.write() as txn:
        start = register_consumer(txn, "replica-eu")
        assert register_consumer(txn, "replica-eu") == start  # idempotent
    for n in range(5):
        put(ctx, f"k{n}")
    head = records(engine)[-1][0]
    clock.now += 2 * DAY  # every record is past the 24 h retention
    with engine.write() as txn:
        prune_changes(txn, DAY, clock.now)  # may prune what came before the consumer, nothing after
    assert [seq for seq, _, _ in records(engine, start)] == list(range(start + 1, head + 1))
    with engine.write() as txn:
        advance_consumer(txn, "replica-eu", start + 3)
        prune_changes(txn, DAY, clock.now)
    assert [seq for seq, _, _ in records(engine)] == list(range(start + 4, head + 1))
    with engine.write() as txn:
        assert unregister_consumer(txn, "replica-eu")
        prune_changes(txn, DAY, clock.now)
    assert records(engine) == []


def test_the_longest_retention_applies(ctx, engine, clock):
    make_table(ctx)
    with engine.write() as txn:
        register_consumer(txn, "pitr", retention_s=35 * DAY, at=0)
        advance_consumer(txn, "pitr", 10**9)  # it has read everything, but keeps 35 days
    put(ctx, "a")
    clock.now += 2 * DAY
    with engine.write() as txn:
        assert prune_changes(txn, DAY, clock.now) == 0
    clock.now += 34 * DAY
    with engine.write() as txn:
        assert prune_changes(txn, DAY, clock.now) > 0
    assert records(engine) == []


def test_status_shows_head_and_each_consumers_lag(ctx, engine, clock):
    make_table(ctx)
    with engine.write() as txn:
        register_consumer(txn, "metrics", retention_s=60)
    put(ctx, "a")
    clock.now += 10
    put(ctx, "b")
    with engine.read() as txn:
        status = log_status(txn, clock.now + 5)
        assert consumers(txn)["metrics"][1] == 60
    assert status["head"] == records(engine)[-1][0]
    metrics = status["consumers"]["metrics"]
    assert metrics["behind"] == 2 and metrics["behind_s"] == 15.0 and metrics["retention_s"] == 60
    assert status["records"] >= 2 and status["oldest_age_s"] >= 15.0


def test_the_stream_materializer_is_a_consumer(ctx, engine):
    make_table(ctx)
    tables.update_table(ctx, {"TableName": "events",
                              "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}})
    put(ctx, "a")
    streams.catch_up(engine)
    with engine.read() as txn:
        assert consumer_cursor(txn, streams.CONSUMER) == head_position(txn)


def test_every_table_operation_and_index_job_is_recorded(ctx, engine):
    """CreateTable, UpdateTable (a GSI, its backfill and its removal by the
    background job), tagging and DeleteTable each leave a record of the table."""
    from shoal.api.indexes import IndexJobs

    desc = make_table(ctx)
    put(ctx, "a", kind={"S": "x"})
    tables.update_table(ctx, {"TableName": "events",
                              "AttributeDefinitions": [{"AttributeName": "kind", "AttributeType": "S"}],
                              "GlobalSecondaryIndexUpdates": [{"Create": {
                                  "IndexName": "by_kind", "Projection": {"ProjectionType": "ALL"},
                                  "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}]}}]})
    jobs = IndexJobs(engine)
    while jobs():
        pass
    tables.tag_resource(ctx, {"ResourceArn": desc["TableArn"], "Tags": [{"Key": "team", "Value": "video"}]})
    tables.untag_resource(ctx, {"ResourceArn": desc["TableArn"], "TagKeys": ["team"]})
    tables.update_table(ctx, {"TableName": "events",
                              "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "by_kind"}}]})
    while jobs():
        pass
    tables.delete_table(ctx, {"TableName": "events"})
    mine = [r for _, _, r in records(engine) if is_table_change(r) and r["table"] == desc["TableId"]]
    assert [(r["op"], r.get("IndexStatus")) for r in mine] == [
        ("CreateTable", None), ("UpdateTable", None), ("IndexJob", "ACTIVE"), ("TagResource", None),
        ("UntagResource", None), ("UpdateTable", None), ("IndexJob", "DELETED"), ("DeleteTable", None)]
    assert mine[0]["TableDescription"]["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert mine[2]["TableDescription"]["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE"
    assert mine[3]["Tags"] == [{"Key": "team", "Value": "video"}] and mine[4]["TagKeys"] == ["team"]
    # the item change sits between the table's creation and its update, in log order
    ops = [("item" if not is_table_change(r) else r["op"]) for _, _, r in records(engine)
           if r["table"] == desc["TableId"]]
    assert ops[:3] == ["CreateTable", "item", "UpdateTable"]
