"""A group's single-item writes over PostgreSQL (issue 19): the group
committer locks and reads the items of a turn's PutItems, UpdateItems and
DeleteItems in one statement (``Engine.lock_ahead``), then runs each
request alone.  Here: the engine's part (the keys locked, and the grouped
writes' reads answered from what was read) on every engine of the shared
suite, and many concurrent conditional writes to the same and to different
items through one server, every answer checked."""

from __future__ import annotations

import threading
from collections import Counter

import boto3
import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shoal.storage import postgres_engine
from tests.conftest import unique_name
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.server.test_postgres_concurrency import run_all
from tests.shoal_process import ShoalProcess
from tests.unit.test_storage_engine import engine, fill, opener, postgres_database  # noqa: F401 (fixtures)


# ------------------------------------------------------------ the engine


def test_a_groups_writes_read_what_was_locked_and_read_ahead(engine):  # noqa: F811
    fill(engine, "items", [b"a", b"b"])
    inner = getattr(engine, "inner", engine)  # an engine encrypted at rest passes it on to the store's
    over_postgres = type(inner).__name__ == "PostgresEngine"
    stored = engine._crypt.transform.encode if inner is not engine else (lambda key: key)
    engine.lock_ahead("items", [b"a", b"b"])  # outside a group: nothing
    with engine.group():
        engine.lock_ahead("items", [b"b", b"a", b"missing", b"a"])
        if over_postgres:
            with psycopg.connect(inner.dsn, autocommit=True) as other:
                # Every key is locked now: another writer taking its lock as
                # the engine does (an upsert, which also waits for a lock row
                # not yet committed) would wait, here until lock_timeout.
                other.execute("SET lock_timeout = '100ms'")
                for key in (b"a", b"b", b"missing"):
                    with pytest.raises(psycopg.errors.LockNotAvailable):
                        other.execute(f"INSERT INTO {inner.schema}.locks (h) VALUES (%s) "
                                      "ON CONFLICT (h) DO UPDATE SET h = excluded.h",
                                      (postgres_engine._lock_id("items", stored(key)),))
                # ... and was read: a change behind the engine's back (no
                # writer of Shoal would make one now) is not seen.
                other.execute(f"UPDATE {inner.schema}.items SET v = 'behind' WHERE k = %s", (stored(b"b"),))
        with engine.write() as txn:
            assert txn.get("items", b"a") == b"v:a"
            assert txn.get("items", b"missing") is None
            txn.put("items", b"a", b"first")
            txn.put("items", b"missing", b"found")
        with engine.write() as txn:  # the next write of the group sees the first's
            assert txn.get("items", b"a") == b"first"
            assert txn.get("items", b"missing") == b"found"
            assert txn.get("items", b"b") == b"v:b"
            assert txn.delete("items", b"b")
    with engine.read() as txn:
        assert txn.get("items", b"a") == b"first"
        assert txn.get("items", b"missing") == b"found"
        assert txn.get("items", b"b") is None


# ------------------------------------------------------------ through a server


@pytest.fixture(scope="module")
def node(tmp_path_factory, postgres_cluster):  # noqa: F811
    """One worker: the racing requests of a turn form one group."""
    started = ShoalProcess(tmp_path_factory.mktemp("node"), "--storage",
                           postgres_cluster.create_database("groupwrites"), "--workers", "1").start()
    yield started
    started.stop()


def client(node):
    return boto3.client("dynamodb", endpoint_url=node.url, region_name="us-east-1",
                        aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 8, "mode": "standard"}, read_timeout=60,
                                      max_pool_connections=4))


def test_racing_conditional_writes_of_the_same_and_different_items_each_get_their_answer(node):
    """Each thread, in turn over a few shared items and one item of its own:
    a PutItem only if absent (one winner per item; the losers are shown the
    winner's item), an ADD (each value given out once), an UpdateItem on a
    condition on the count, and a DeleteItem of its own item returning it."""
    setup = client(node)
    name = unique_name("groupwrites")
    setup.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    threads, shared, limit = 12, 3, 5
    lock = threading.Lock()
    created, refused, added, capped, deleted = Counter(), Counter(), {}, Counter(), []

    def work(number):
        ddb = client(node)
        mine = f"own-{number}"
        for item in [f"shared-{n}" for n in range(shared)] + [mine]:
            try:
                ddb.put_item(TableName=name, Item={"pk": {"S": item}, "by": {"N": str(number)}},
                             ConditionExpression="attribute_not_exists(pk)",
                             ReturnValuesOnConditionCheckFailure="ALL_OLD")
                with lock:
                    created[item] += 1
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
                assert exc.response["Item"]["pk"] == {"S": item} and "by" in exc.response["Item"]
                with lock:
                    refused[item] += 1
            answer = ddb.update_item(TableName=name, Key={"pk": {"S": item}}, UpdateExpression="ADD n :one",
                                     ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
            with lock:
                added.setdefault(item, []).append(int(answer["Attributes"]["n"]["N"]))
            try:
                ddb.update_item(TableName=name, Key={"pk": {"S": item}}, UpdateExpression="ADD capped :one",
                                ConditionExpression="attribute_not_exists(capped) OR capped < :limit",
                                ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(limit)}})
                with lock:
                    capped[item] += 1
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
        old = ddb.delete_item(TableName=name, Key={"pk": {"S": mine}}, ReturnValues="ALL_OLD")["Attributes"]
        assert old == {"pk": {"S": mine}, "by": {"N": str(number)}, "n": {"N": "1"}, "capped": {"N": "1"}}
        with lock:
            deleted.append(mine)

    run_all(work, threads)
    for n in range(shared):
        item = f"shared-{n}"
        assert created[item] == 1 and refused[item] == threads - 1
        assert sorted(added[item]) == list(range(1, threads + 1))
        assert capped[item] == limit
        stored = setup.get_item(TableName=name, Key={"pk": {"S": item}}, ConsistentRead=True)["Item"]
        assert stored["n"] == {"N": str(threads)} and stored["capped"] == {"N": str(limit)}
    for number in range(threads):
        mine = f"own-{number}"
        assert created[mine] == 1 and refused[mine] == 0 and added[mine] == [1] and capped[mine] == 1
    assert len(deleted) == threads
    left = setup.scan(TableName=name, ConsistentRead=True)["Items"]
    assert sorted(item["pk"]["S"] for item in left) == [f"shared-{n}" for n in range(shared)]
