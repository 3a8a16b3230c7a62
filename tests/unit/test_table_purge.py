"""DeleteTable's purge (shoal.api.tables.delete_table, shoal.api.indexes'
"drop" jobs) over a real LMDB engine: the table leaves the catalog at once and
its storage goes in bounded background steps, resumable and safe to run from
several processes."""

from __future__ import annotations

import multiprocessing

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import batch, items, query, resource_policies, tables, ttl
from shoal.api import indexes as ix
from shoal.api.catalog import Catalog
from shoal.errors import ResourceNotFoundException
from shoal.storage.engine import SPACES
from shoal.storage.lmdb_engine import LmdbEngine

REGION = "us-east-1"
ITEMS = 5000


def make_ctx(engine):
    return Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: 1_700_000_000.0)


@pytest.fixture
def ctx(engine):
    return make_ctx(engine)


def key_schema(*names):
    return [{"AttributeName": n, "KeyType": k} for n, k in zip(names, ("HASH", "RANGE"))]


def create(ctx, name="events"):
    """A table with a GSI (by_g) and an LSI (by_l), so that every kind of
    key a table owns exists: items, index entries, index counters, item
    collection sizes."""
    return tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST", "KeySchema": key_schema("pk", "sk"),
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": t}
                                 for a, t in (("pk", "S"), ("sk", "N"), ("g", "S"), ("l", "N"))],
        "GlobalSecondaryIndexes": [{"IndexName": "by_g", "KeySchema": key_schema("g"),
                                    "Projection": {"ProjectionType": "ALL"}}],
        "LocalSecondaryIndexes": [{"IndexName": "by_l", "KeySchema": key_schema("pk", "l"),
                                   "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        "Tags": [{"Key": "team", "Value": "a"}],
    })["TableDescription"]


def item(i, tag="old"):
    return {"pk": {"S": f"u{i % 100:03d}"}, "sk": {"N": str(i)}, "g": {"S": f"g{i % 7}"},
            "l": {"N": str(i % 13)}, "v": {"S": tag}}


def fill(ctx, name="events", n=ITEMS, tag="old"):
    with ctx.engine.group():
        for start in range(0, n, 25):
            puts = [{"PutRequest": {"Item": item(i, tag)}} for i in range(start, min(n, start + 25))]
            batch.batch_write_item(ctx, {"RequestItems": {name: puts}})


def prefix_of(desc) -> bytes:
    import uuid

    return uuid.UUID(desc["TableId"]).bytes


def owned(engine, prefix: bytes) -> dict[str, int]:
    """Keys holding ``prefix`` in each space.  The change log (records, not
    keys, of the table) and the stream history are kept on purpose."""
    kept = b"streams/table/" + prefix
    out = {}
    with engine.read() as txn:
        for space in SPACES:
            if space == "changes":
                continue
            out[space] = sum(1 for k, _ in txn.scan(space) if prefix in bytes(k) and bytes(k) != kept)
    return out


def decorate(ctx, desc):
    """Give the table a TTL setting and a resource policy (meta keys under its prefix)."""
    ttl.update_time_to_live(ctx, {"TableName": desc["TableName"],
                                  "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "exp"}})
    policy = orjson.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "dynamodb:GetItem", "Resource": desc["TableArn"]}]})
    resource_policies.put_resource_policy(ctx, {"ResourceArn": desc["TableArn"], "Policy": policy.decode()})


def run_all(jobs) -> int:
    steps = 0
    while jobs():
        steps += 1
    return steps


def test_delete_answers_at_once_and_purges_in_bounded_steps(ctx, engine):
    desc = create(ctx)
    decorate(ctx, desc)
    fill(ctx)
    prefix = prefix_of(desc)
    before = owned(engine, prefix)
    assert before["items"] == ITEMS and before["indexes"] == 2 * ITEMS and before["meta"] > 100

    out = tables.delete_table(ctx, {"TableName": "events"})["TableDescription"]
    assert out["TableStatus"] == "DELETING" and out["ItemCount"] == ITEMS
    with pytest.raises(ResourceNotFoundException):
        tables.describe_table(ctx, {"TableName": "events"})
    with engine.read() as txn:
        assert txn.get("meta", ix.drop_job_key(prefix)) is not None  # the purge is queued
    # DeleteTable ran only the first step: at most DROP_CHUNK keys are gone.
    after_delete = owned(engine, prefix)
    removed = sum(before.values()) - sum(after_delete.values())
    assert 0 < removed <= ix.DROP_CHUNK + 3  # + the catalog entry, counters and tags

    jobs = ix.IndexJobs(engine)
    left = sum(after_delete.values())
    steps = 0
    while jobs():
        steps += 1
        now = sum(owned(engine, prefix).values())
        assert left - now <= ix.DROP_CHUNK  # each step is one bounded transaction
        left = now
    assert steps >= (sum(after_delete.values()) - 1) // ix.DROP_CHUNK
    assert steps >= 10
    assert owned(engine, prefix) == {space: 0 for space in SPACES if space != "changes"}
    with engine.read() as txn:
        assert next(iter(txn.scan("meta", b"ixjob/", b"ixjob0")), None) is None


def test_same_name_table_right_after_delete_is_empty_and_survives_the_purge(ctx, engine):
    old = create(ctx)
    fill(ctx)
    tables.delete_table(ctx, {"TableName": "events"})
    new = create(ctx)
    assert new["TableId"] != old["TableId"] and new["ItemCount"] == 0
    scanned = orjson.loads(query.scan(ctx, {"TableName": "events"}))
    assert scanned["Count"] == 0
    # The new table's items have the old ones' keys: only the prefix differs.
    fill(ctx, n=1500, tag="new")
    jobs = ix.IndexJobs(engine)
    assert run_all(jobs) > 0
    assert owned(engine, prefix_of(old)) == {space: 0 for space in SPACES if space != "changes"}
    assert tables.describe_table(ctx, {"TableName": "events"})["Table"]["ItemCount"] == 1500
    got = orjson.loads(items.get_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "u007"}, "sk": {"N": "7"}}}))
    assert got["Item"]["v"] == {"S": "new"}
    by_g = orjson.loads(query.query(ctx, {"TableName": "events", "IndexName": "by_g", "Select": "COUNT",
                                          "KeyConditionExpression": "g = :g",
                                          "ExpressionAttributeValues": {":g": {"S": "g0"}}}))
    assert by_g["Count"] == len([i for i in range(1500) if i % 7 == 0])
    assert orjson.loads(query.scan(ctx, {"TableName": "events", "Select": "COUNT"}))["Count"] == 1500
    assert tables.list_tags_of_resource(ctx, {"ResourceArn": new["TableArn"]})["Tags"] == [
        {"Key": "team", "Value": "a"}]


def test_a_failed_step_changes_nothing(ctx, engine):
    desc = create(ctx)
    fill(ctx, n=3000)
    tables.delete_table(ctx, {"TableName": "events"})
    prefix = prefix_of(desc)
    before = owned(engine, prefix)
    with pytest.raises(RuntimeError):
        with engine.write() as txn:
            key = ix.drop_job_key(prefix)
            ix.run_job(txn, key, orjson.loads(txn.get("meta", key)), ix.JOB_CHUNK)
            raise RuntimeError("the process dies before the commit")
    assert owned(engine, prefix) == before
    run_all(ix.IndexJobs(engine))
    assert sum(owned(engine, prefix).values()) == 0


def test_an_interrupted_purge_resumes_after_a_restart(tmp_path):
    path = tmp_path / "db"
    engine = LmdbEngine(path, sync=False)
    ctx = make_ctx(engine)
    desc = create(ctx)
    fill(ctx)
    tables.delete_table(ctx, {"TableName": "events"})
    assert ix.IndexJobs(engine)()  # one step, then the process stops
    engine.close()

    engine = LmdbEngine(path, sync=False)
    try:
        prefix = prefix_of(desc)
        assert sum(owned(engine, prefix).values()) > 0
        assert run_all(ix.IndexJobs(engine)) > 0
        assert sum(owned(engine, prefix).values()) == 0
        with engine.read() as txn:
            assert txn.get("meta", ix.drop_job_key(prefix)) is None
    finally:
        engine.close()


def test_the_purge_takes_turns_with_an_index_build(ctx, engine):
    create(ctx, "big")
    fill(ctx, "big")
    tables.create_table(ctx, {"TableName": "small", "BillingMode": "PAY_PER_REQUEST",
                              "KeySchema": key_schema("pk", "sk"),
                              "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                                       {"AttributeName": "sk", "AttributeType": "N"}]})
    fill(ctx, "small", n=1200)
    tables.update_table(ctx, {"TableName": "small",
                              "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
                              "GlobalSecondaryIndexUpdates": [{"Create": {
                                  "IndexName": "by_g", "KeySchema": key_schema("g"),
                                  "Projection": {"ProjectionType": "ALL"}}}]})
    tables.delete_table(ctx, {"TableName": "big"})
    jobs = ix.IndexJobs(engine)
    for _ in range(8):  # the backfill needs 3 steps of JOB_CHUNK items; the purge about 15
        jobs()
    status = tables.describe_table(ctx, {"TableName": "small"})["Table"]["GlobalSecondaryIndexes"][0]["IndexStatus"]
    assert status == "ACTIVE"
    with engine.read() as txn:
        assert next(iter(txn.scan("meta", b"ixjob/", b"ixjob0")), None) is not None  # the purge goes on
    run_all(jobs)


def _purge_in_child(path: str, ready, steps) -> None:
    engine = LmdbEngine(path, sync=False)
    try:
        ready.set()
        steps.value = run_all(ix.IndexJobs(engine, drop_chunk=10))
    finally:
        engine.close()


def test_two_processes_share_a_purge(tmp_path):
    """Two workers run the same purge, step by step in turn (each step is
    one write transaction): it ends once, with nothing left over."""
    path = str(tmp_path / "shared")
    engine = LmdbEngine(path, sync=False)
    try:
        ctx = make_ctx(engine)
        desc = create(ctx)
        fill(ctx)
        tables.delete_table(ctx, {"TableName": "events"})
        left = sum(owned(engine, prefix_of(desc)).values())
        spawn = multiprocessing.get_context("spawn")
        ready, theirs = spawn.Event(), spawn.Value("i", -1)
        child = spawn.Process(target=_purge_in_child, args=(path, ready, theirs))
        child.start()
        assert ready.wait(60)
        mine = run_all(ix.IndexJobs(engine, drop_chunk=10))
        child.join(60)
        assert child.exitcode == 0
        assert mine > 0 and theirs.value > 0
        assert mine + theirs.value >= left // 10
        assert sum(owned(engine, prefix_of(desc)).values()) == 0
        with engine.read() as txn:
            assert next(iter(txn.scan("meta", b"ixjob/", b"ixjob0")), None) is None
    finally:
        engine.close()
