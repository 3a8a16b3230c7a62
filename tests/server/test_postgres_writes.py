"""A group's writes over PostgreSQL (issue 19): the group committer locks
and reads the items of a turn's PutItems, UpdateItems, DeleteItems,
BatchWriteItems and TransactWriteItems in one statement
(``Engine.lock_ahead``, the keys from ``shoal.api.keys_ahead``), then runs
each request alone.  Here: the engine's part (the keys locked, and the
grouped writes' reads answered from what was read) on every engine of the
shared suite; a batch's and a transaction's round trips, as many for 25
items as for 2, counted from libpq's trace, their answers and stored items
checked; many concurrent conditional writes to the same and to different
items through one server, and batches and transactions racing from two
nodes, every answer checked."""

from __future__ import annotations

import threading
import time
from collections import Counter

import boto3
import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shoal.storage import postgres_engine
from shoal.storage.engine import WriteConflict
from shoal.storage.postgres_engine import PostgresEngine
from tests.conftest import unique_name
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.server.test_postgres_concurrency import run_all
from tests.server.test_postgres_reads import InProcessNode, RawClient, Traced
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


@pytest.mark.parametrize("changed", [False, True])
def test_a_group_deadlocked_after_locking_ahead_replays_what_it_read_ahead(database, changed):
    """A group locks and reads two items ahead, then its write waits for a
    third that another transaction holds, which then waits for one of the
    two: PostgreSQL aborts the group's transaction (its deadlock check comes
    first), which begins again and replays its reads, the ones read ahead
    included.  When the other transaction changed nothing they read, the
    write goes on unaware; when it changed one of them, WriteConflict and
    nothing written."""
    store = PostgresEngine(database, min_connections=2, max_connections=2)
    tag = unique_name("deadlock").encode()
    a, b, c = tag + b"/a", tag + b"/b", tag + b"/c"
    fill(store, "items", [a, b, c])
    locks = f"INSERT INTO {store.schema}.locks (h) VALUES (%s) ON CONFLICT (h) DO UPDATE SET h = excluded.h"
    ahead, outcome = threading.Event(), {}

    def group():
        try:
            with store.group():
                store.lock_ahead("items", [a, b])
                ahead.set()
                with store.write() as txn:
                    outcome["a"] = txn.get("items", a)
                    outcome["c"] = txn.get("items", c)  # waits for the other transaction
                    txn.put("items", a, outcome["a"] + b"+" + outcome["c"])
        except Exception as exc:  # shown by the assertions below
            outcome["error"] = exc

    other = psycopg.connect(database)
    try:
        other.execute("SET deadlock_timeout = '10s'")  # the group's check (1 s) comes first
        other.execute(locks, (postgres_engine._lock_id("items", c),))
        writer = threading.Thread(target=group)
        writer.start()
        assert ahead.wait(30)
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        with psycopg.connect(database, autocommit=True) as watcher:
            while watcher.execute(waiting).fetchone()[0] == 0:  # the group's write waits for c
                time.sleep(0.01)
        other.execute(locks, (postgres_engine._lock_id("items", a),))  # granted once the group is aborted
        if changed:
            other.execute(f"UPDATE {store.schema}.items SET v = 'changed' WHERE k = %s", (b,))
        other.commit()
        writer.join(60)
        assert not writer.is_alive()
    finally:
        other.close()
    with store.read() as txn:
        stored = [txn.get("items", key) for key in (a, b, c)]
    store.close()
    if changed:
        assert isinstance(outcome.get("error"), WriteConflict), outcome
        assert stored == [b"v:" + a, b"changed", b"v:" + c]
    else:
        assert "error" not in outcome, outcome
        assert stored == [b"v:" + a + b"+v:" + c, b"v:" + b, b"v:" + c]


# ------------------------------------------------------------ a request's many items, one statement


@pytest.fixture
def grouped(database):
    """An in-process node over PostgreSQL committing writes in groups, and a
    client of it; the round trips of its engine's connections traced."""
    store = PostgresEngine(database, min_connections=2, max_connections=2)
    trace = Traced(store)
    node = InProcessNode(store)
    node.dispatcher.group_commit = True  # InProcessNode's dispatcher answers writes at once: a shoal serve's does not
    client = RawClient(node.port)
    try:
        yield client, trace
    finally:
        client.close()
        node.close()
        store.close()


def counted(trace, client, operation: str, body: dict) -> tuple[tuple[int, dict], int]:
    """The answer to ``body``, and the round trips the engine made for it."""
    before = trace.mark()
    answer = client.call(operation, body)
    return answer, trace.round_trips() - before


def stored_items(client, name: str) -> dict:
    status, body = client.call("Scan", {"TableName": name, "ConsistentRead": True})
    assert status == 200, body
    return {item["pk"]["S"]: item for item in body["Items"]}


def new_table(client) -> str:
    name = unique_name("many")
    status, body = client.call("CreateTable", {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    assert status == 200, body
    return name


def put(pk: str, n: int) -> dict:
    return {"PutRequest": {"Item": {"pk": {"S": pk}, "n": {"N": str(n)}}}}


def delete(pk: str) -> dict:
    return {"DeleteRequest": {"Key": {"pk": {"S": pk}}}}


# A table's catalog entry is trusted for 0.5 s: on a slow run, a request may
# read it again (the keys' look-up, and the request itself), a round trip
# each.  Item by item, 25 items cost 23 more than 2.
_CATALOG_READS = 2


def test_a_batch_s_items_are_locked_and_read_in_one_statement_whatever_their_number(grouped):
    """A BatchWriteItem of 25 puts and deletes, over items there and not
    there, costs the round trips one of 2 does: its items are locked and
    read in one statement.  Each batch is answered and stored as before."""
    client, trace = grouped
    name = new_table(client)
    assert client.call("BatchWriteItem", {"RequestItems": {name: [put(f"old{i}", 0) for i in range(20)]}}) \
        == (200, {"UnprocessedItems": {}})
    small, small_trips = counted(trace, client, "BatchWriteItem", {
        "RequestItems": {name: [put("new0", 2), delete("old0")]}})
    large, large_trips = counted(trace, client, "BatchWriteItem", {
        "RequestItems": {name: [put(f"new{i}", 25) for i in range(1, 11)]
                         + [put(f"old{i}", 25) for i in range(1, 8)]
                         + [delete(f"old{i}") for i in range(8, 14)]
                         + [delete("never0"), delete("never1")]}})
    assert small == large == (200, {"UnprocessedItems": {}})
    assert large_trips - small_trips <= _CATALOG_READS, (small_trips, large_trips)
    expected = {f"new{i}": 25 for i in range(1, 11)}
    expected.update({"new0": 2, **{f"old{i}": 25 for i in range(1, 8)}, **{f"old{i}": 0 for i in range(14, 20)}})
    assert {pk: int(item["n"]["N"]) for pk, item in stored_items(client, name).items()} == expected
    # A batch refused whole (a key of the wrong type) locked its other items for nothing, and wrote nothing.
    assert client.call("BatchWriteItem", {"RequestItems": {name: [
        put("new0", 9), {"PutRequest": {"Item": {"pk": {"N": "1"}}}}]}}) == (400, {
            "__type": "com.amazon.coral.validate#ValidationException",
            "message": "The provided key element does not match the schema"})
    assert stored_items(client, name)["new0"]["n"] == {"N": "2"}


def add(name: str, pk: str, condition: str | None = None) -> dict:
    update = {"TableName": name, "Key": {"pk": {"S": pk}}, "UpdateExpression": "ADD n :one",
              "ExpressionAttributeValues": {":one": {"N": "1"}}}
    if condition is not None:
        update["ConditionExpression"] = condition
        update["ExpressionAttributeValues"][":zero"] = {"N": "0"}
    return {"Update": update}


def check(name: str, pk: str, condition: str = "attribute_exists(pk)") -> dict:
    spec = {"TableName": name, "Key": {"pk": {"S": pk}}, "ConditionExpression": condition}
    if ":zero" in condition:
        spec["ExpressionAttributeValues"] = {":zero": {"N": "0"}}
    return {"ConditionCheck": spec}


def test_a_transaction_s_items_are_locked_and_read_in_one_statement_whatever_their_number(grouped):
    """A TransactWriteItems of 10 actions (Put, Update, Delete,
    ConditionCheck) costs the round trips one of 2 does; its conditions,
    its cancellation reasons (the item of the one that failed) and its
    idempotency token answer as before, and what it stores is the same."""
    client, trace = grouped
    name = new_table(client)
    assert client.call("BatchWriteItem", {"RequestItems": {name: [put(pk, 0) for pk in "abcdefghij"]}})[0] == 200
    small, small_trips = counted(trace, client, "TransactWriteItems", {
        "TransactItems": [add(name, "a"), check(name, "b")]})
    large, large_trips = counted(trace, client, "TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": name, "Item": {"pk": {"S": "p1"}, "n": {"N": "7"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        add(name, "c"), add(name, "d"), add(name, "e", "n = :zero"), add(name, "new"),
        {"Delete": {"TableName": name, "Key": {"pk": {"S": "g"}}, "ConditionExpression": "attribute_exists(pk)"}},
        check(name, "h"), check(name, "i", "n = :zero"), check(name, "missing", "attribute_not_exists(pk)"),
        {"Put": {"TableName": name, "Item": {"pk": {"S": "p2"}, "n": {"N": "8"}}}}]})
    assert small == large == (200, {})
    assert large_trips - small_trips <= _CATALOG_READS, (small_trips, large_trips)

    # One condition of ten fails: cancelled, that reason with the item, nothing written.
    failing = add(name, "c", "n = :zero")
    failing["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    status, body = client.call("TransactWriteItems", {"TransactItems": [
        add(name, "a"), add(name, "b"), failing, add(name, "f"),
        {"Delete": {"TableName": name, "Key": {"pk": {"S": "h"}}}}]})
    assert status == 400 and body["__type"].endswith("#TransactionCanceledException"), body
    assert [reason["Code"] for reason in body["CancellationReasons"]] == [
        "None", "None", "ConditionalCheckFailed", "None", "None"]
    assert body["CancellationReasons"][2]["Item"] == {"pk": {"S": "c"}, "n": {"N": "1"}}

    # The same request twice under one token: applied once.
    request = {"TransactItems": [add(name, "j"), check(name, "i")], "ClientRequestToken": "once"}
    assert client.call("TransactWriteItems", request) == (200, {})
    assert client.call("TransactWriteItems", request) == (200, {})

    expected = {pk: 0 for pk in "bfhi"}
    expected.update({"a": 1, "c": 1, "d": 1, "e": 1, "new": 1, "p1": 7, "p2": 8, "j": 1})
    assert {pk: int(item["n"]["N"]) for pk, item in stored_items(client, name).items()} == expected


# ------------------------------------------------------------ through a server


@pytest.fixture(scope="module")
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("groupwrites")


@pytest.fixture(scope="module")
def node(tmp_path_factory, database):
    """One worker: the racing requests of a turn form one group."""
    started = ShoalProcess(tmp_path_factory.mktemp("node"), "--storage", database, "--workers", "1").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def other_node(tmp_path_factory, database):
    """A second node over the same database."""
    started = ShoalProcess(tmp_path_factory.mktemp("other"), "--storage", database, "--workers", "1").start()
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


def test_batches_and_transactions_racing_from_two_nodes_each_get_their_answer(node, other_node):
    """Threads on two nodes, each in turn: a TransactWriteItems adding one to
    a capped item (on the condition that it is under its cap), to three
    shared counters (listed in an order of the thread's, so that two
    transactions lock overlapping items in opposite orders) and to one of
    its own, on a ConditionCheck of a gate item, under a token of its own
    sent twice; then a BatchWriteItem putting the shared items' "last"
    markers and its own items of the round, and deleting those of the round
    before.  Every thread goes on until the cap refuses it: exactly the
    capped number of transactions went through, each applied once, every
    refusal the capped item's ConditionalCheckFailed; the batches leave
    every thread's last round and nothing else."""
    setup = client(node)
    name = unique_name("racing")
    setup.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    setup.put_item(TableName=name, Item={"pk": {"S": "gate"}})
    threads, cap, counters, per_batch = 6, 24, ["c0", "c1", "c2", "c3", "c4"], 8
    lock = threading.Lock()
    applied, refused, rounds = Counter(), Counter(), {}

    def one(pk: str, condition: str | None = None) -> dict:
        update = {"TableName": name, "Key": {"pk": {"S": pk}}, "UpdateExpression": "ADD n :one",
                  "ExpressionAttributeValues": {":one": {"N": "1"}}}
        if condition is not None:
            update["ConditionExpression"] = condition
            update["ExpressionAttributeValues"][":cap"] = {"N": str(cap)}
        return {"Update": update}

    def shared_of(number) -> list:
        turned = counters[number % 5:] + counters[:number % 5]
        return turned[:3] if number % 2 else turned[:3][::-1]

    def work(number):
        ddb = client((node, other_node)[number % 2])
        shared = shared_of(number)
        round_ = 0
        while True:
            request = {"TransactItems": [
                one("capped", "attribute_not_exists(n) OR n < :cap"), *[one(pk) for pk in shared],
                one(f"own-{number}"),
                {"ConditionCheck": {"TableName": name, "Key": {"pk": {"S": "gate"}},
                                    "ConditionExpression": "attribute_exists(pk)"}}],
                "ClientRequestToken": f"{name}-{number}-{round_}"}
            try:
                ddb.transact_write_items(**request)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "TransactionCanceledException", exc.response
                reasons = [reason["Code"] for reason in exc.response["CancellationReasons"]]
                assert reasons == ["ConditionalCheckFailed"] + ["None"] * 5, reasons
                with lock:
                    refused[number] += 1
                break
            ddb.transact_write_items(**request)  # the same token again: applied once
            with lock:
                applied[number] += 1
                for pk in shared:
                    applied[pk] += 1
            mine = [{"PutRequest": {"Item": {"pk": {"S": f"{number}-{round_}-{i}"}}}} for i in range(per_batch)]
            gone = [{"DeleteRequest": {"Key": {"pk": {"S": f"{number}-{round_ - 1}-{i}"}}}}
                    for i in range(per_batch)] if round_ else []
            marks = [{"PutRequest": {"Item": {"pk": {"S": f"last-{pk}"}, "by": {"N": str(number)}}}}
                     for pk in shared]
            answer = ddb.batch_write_item(RequestItems={name: mine + gone + marks})
            assert answer["UnprocessedItems"] == {}
            round_ += 1
        with lock:
            rounds[number] = round_

    run_all(work, threads)
    items = {item["pk"]["S"]: item for item in setup.scan(TableName=name, ConsistentRead=True)["Items"]}
    assert sum(applied[number] for number in range(threads)) == cap
    assert all(refused[number] == 1 for number in range(threads))
    assert items["capped"]["n"] == {"N": str(cap)}
    for pk in counters:
        assert (int(items[pk]["n"]["N"]) if pk in items else 0) == applied[pk]
        if applied[pk]:  # the last batch to mark it was one of a thread adding to it
            assert pk in shared_of(int(items[f"last-{pk}"]["by"]["N"]))
    for number in range(threads):
        assert (int(items[f"own-{number}"]["n"]["N"]) if f"own-{number}" in items else 0) == applied[number]
    last = {f"{number}-{rounds[number] - 1}-{i}" for number in range(threads) if rounds[number]
            for i in range(per_batch)}
    assert {pk for pk in items if pk[0].isdigit()} == last
