"""GetItem over PostgreSQL in one round trip (issue 19): the statement reads
keep the tables' catalog entries, checked by the catalog's version that
every item read brings back in the same statement, and trusted for at most
``CATALOG_TRUST_S`` after the version was last seen: a table's change on
one node reaches every other within that bound, and the node that made it
at once.

Two engines (or two in-process dispatchers) on one database stand for two
Shoal nodes; the round trips are counted from libpq's own trace of the
messages each connection sends."""

from __future__ import annotations

import tempfile
import time

import orjson
import pytest

from shoal.storage.postgres_engine import CATALOG_TRUST_S, PostgresEngine
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)

HEADERS = {"content-type": "application/x-amz-json-1.0",
           "authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
                            "SignedHeaders=host, Signature=x"}


@pytest.fixture
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("reads")


class Traced:
    """The messages an engine's connections send, from libpq's trace: a
    round trip is a ``Sync`` (extended protocol, a pipeline included) or a
    ``Query`` (simple protocol)."""

    def __init__(self, engine: PostgresEngine) -> None:
        self.file = tempfile.TemporaryFile()
        pool = engine._pool
        held = [pool.getconn() for _ in range(pool.max_size)]  # every connection the engine will use
        for conn in held:
            conn.pgconn.trace(self.file.fileno())
        for conn in held:
            pool.putconn(conn)

    def lines(self) -> list[str]:
        self.file.seek(0)
        return [line for line in self.file.read().decode("utf-8", "replace").splitlines() if "\tF\t" in line]

    def round_trips(self) -> int:
        return sum(1 for line in self.lines() if line.split("\t")[3] in ("Sync", "Query"))

    def mark(self) -> int:
        return self.round_trips()


def dispatcher(engine):
    from shoal.server.dispatch import Dispatcher

    return Dispatcher(engine, metrics=False, capacity=False, group_commit=False)


def call(node, operation: str, body: dict) -> tuple[int, dict]:
    from shoal.server.http import Request

    answer = node(Request("POST", "/", {**HEADERS, "x-amz-target": "DynamoDB_20120810." + operation},
                          orjson.dumps(body), ("127.0.0.1", 1), False))
    return answer.status, orjson.loads(answer.body) if answer.body else {}


def create(node, name: str) -> None:
    status, body = call(node, "CreateTable", {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    assert status == 200, body


def get(node, name: str, pk: str) -> tuple[int, dict]:
    return call(node, "GetItem", {"TableName": name, "Key": {"pk": {"S": pk}}})


NOT_FOUND = (400, {"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                   "message": "Requested resource not found"})


@pytest.fixture
def nodes(database):
    """Two engines (two connections each, traced) under two dispatchers."""
    engines = [PostgresEngine(database, min_connections=2, max_connections=2) for _ in range(2)]
    traces = [Traced(engine) for engine in engines]
    yield [dispatcher(engine) for engine in engines], traces, engines
    for engine in engines:
        engine.close()


def test_a_get_item_is_one_round_trip_and_one_prepared_statement(nodes):
    (first, _), (trace, _), _ = nodes
    create(first, "events")
    assert call(first, "PutItem", {"TableName": "events", "Item": {"pk": {"S": "a"}, "n": {"N": "1"}}})[0] == 200
    assert get(first, "events", "a") == (200, {"Item": {"pk": {"S": "a"}, "n": {"N": "1"}}})
    before = trace.mark()
    lines_before = len(trace.lines())
    for _ in range(20):
        assert get(first, "events", "a") == (200, {"Item": {"pk": {"S": "a"}, "n": {"N": "1"}}})
        assert get(first, "events", "missing") == (200, {})
    assert trace.round_trips() - before == 40
    sent = [line.split("\t")[3] for line in trace.lines()[lines_before:]]
    # Each one an execution of the statement prepared before: no Parse, no BEGIN or COMMIT.
    assert sent == ["Bind", "Describe", "Execute", "Sync"] * 40


def test_a_table_changed_on_one_node_is_seen_by_the_other_within_the_bound(nodes):
    (first, second), _, _ = nodes
    create(first, "shared")
    call(first, "PutItem", {"TableName": "shared", "Item": {"pk": {"S": "a"}}})
    assert get(second, "shared", "a") == (200, {"Item": {"pk": {"S": "a"}}})  # cached on the second
    assert call(first, "DeleteTable", {"TableName": "shared"})[0] == 200
    assert get(first, "shared", "a") == NOT_FOUND  # the node that changed it: at once
    deleted = time.monotonic()
    while get(second, "shared", "a") != NOT_FOUND:
        assert time.monotonic() - deleted < CATALOG_TRUST_S + 0.5, "the deletion did not reach the other node"
        time.sleep(0.02)
    create(first, "shared")  # a new table of the same name: its own, empty
    time.sleep(CATALOG_TRUST_S)
    assert get(second, "shared", "a") == (200, {})
    call(second, "PutItem", {"TableName": "shared", "Item": {"pk": {"S": "b"}}})
    assert get(first, "shared", "b") == (200, {"Item": {"pk": {"S": "b"}}})


def test_a_cached_entry_is_trusted_no_longer_than_the_bound(nodes, database):
    """Idle past the bound, the next GetItem reads the entry again (two
    round trips), so a change made meanwhile is never answered from the cache."""
    (first, second), (_, trace), _ = nodes
    create(first, "idle")
    call(first, "PutItem", {"TableName": "idle", "Item": {"pk": {"S": "a"}}})
    assert get(second, "idle", "a") == (200, {"Item": {"pk": {"S": "a"}}})
    before = trace.mark()
    assert get(second, "idle", "a") == (200, {"Item": {"pk": {"S": "a"}}})
    assert trace.round_trips() - before == 1
    time.sleep(CATALOG_TRUST_S + 0.05)
    before = trace.mark()
    assert get(second, "idle", "a") == (200, {"Item": {"pk": {"S": "a"}}})
    assert trace.round_trips() - before == 2
    # Deleted and re-created by the first node: the very next read by the second,
    # once the bound has passed, sees the new table, whatever it had cached.
    assert call(first, "DeleteTable", {"TableName": "idle"})[0] == 200
    create(first, "idle")
    time.sleep(CATALOG_TRUST_S + 0.05)
    assert get(second, "idle", "a") == (200, {})


def test_get_many_reads_many_keys_in_one_round_trip(nodes):
    _, (trace, _), (engine, other) = nodes
    keys = [b"k%03d" % n for n in range(100)]
    with other.write() as txn:
        for key in keys[::2]:
            txn.put("items", key, b"v" + key)
        txn.put("items", b"L" * 1500, b"long")  # a long key: in an overflow group
        txn.put("meta", b"plain", b"1")
    wanted = keys + [b"L" * 1500, b"", keys[0]]
    expected = [b"v" + key if n % 2 == 0 else None for n, key in enumerate(keys)] + [b"long", None, b"v" + keys[0]]
    for snapshot in (False, True):
        with engine.read(snapshot=snapshot) as txn:
            assert txn.get_many("items", wanted) == expected  # the first on a connection prepares the statement
            before = trace.mark()
            assert txn.get_many("items", wanted) == expected
            assert trace.round_trips() - before == 2  # the 100 keys, and the long one alone
            assert txn.get_many("meta", [b"plain", b"nothing"]) == [b"1", None]
    with engine.write() as txn:  # in a write, each key locked and read
        assert txn.get_many("items", wanted) == expected
    with pytest.raises(KeyError):
        with engine.read(snapshot=False) as txn:
            txn.get_many("no_such_space", [b"a"])


def test_a_batch_get_item_reads_a_table_s_keys_in_one_round_trip(nodes):
    """BatchGetItem promises no snapshot across its items: each table's keys
    are one statement, with no BEGIN or COMMIT around them."""
    (first, _), (trace, _), _ = nodes
    create(first, "batch")
    for n in range(0, 60, 2):
        assert call(first, "PutItem", {"TableName": "batch", "Item": {"pk": {"S": f"k{n:02d}"}, "n": {"N": str(n)}}})[0] == 200
    keys = [{"pk": {"S": f"k{n:02d}"}} for n in range(60)]
    body = {"RequestItems": {"batch": {"Keys": keys}}, "ReturnConsumedCapacity": "TOTAL"}
    status, first_answer = call(first, "BatchGetItem", body)  # prepares the statement on this connection
    assert status == 200
    before = trace.mark()
    status, answer = call(first, "BatchGetItem", body)
    assert trace.round_trips() - before == 1
    assert status == 200 and answer["UnprocessedKeys"] == {}
    assert sorted(item["pk"]["S"] for item in answer["Responses"]["batch"]) == [f"k{n:02d}" for n in range(0, 60, 2)]
    # a missing key is charged as DynamoDB charges it: one eventually consistent read unit, halved
    assert answer["ConsumedCapacity"] == [{"TableName": "batch", "CapacityUnits": 30.0}]


def test_reads_go_on_after_the_prepared_statements_are_dropped(nodes):
    (first, _), _, (engine, _) = nodes
    from shoal.storage.postgres_engine import _simple

    create(first, "dropped")
    call(first, "PutItem", {"TableName": "dropped", "Item": {"pk": {"S": "a"}}})
    assert get(first, "dropped", "a") == (200, {"Item": {"pk": {"S": "a"}}})
    _simple(engine._local.reads, b"DEALLOCATE ALL")  # as psycopg does after a rollback
    assert get(first, "dropped", "a") == (200, {"Item": {"pk": {"S": "a"}}})
    with engine.read(snapshot=False) as txn:
        _simple(txn._conn, b"DEALLOCATE ALL")
        assert txn.get_many("items", [b"x"]) == [None]


def test_a_store_made_before_the_catalog_version_gets_it_when_opened(database):
    import psycopg

    PostgresEngine(database).close()
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute("DROP TABLE shoal.catalog_version")
        admin.execute("DROP TABLE shoal.keyring")
    engine = PostgresEngine(database)
    try:
        with engine.read(snapshot=False) as txn:
            assert txn.get("meta", b"table/x") is None
        with psycopg.connect(database) as admin:
            assert admin.execute("SELECT id, version FROM shoal.catalog_version").fetchall() == [(1, 0)]
    finally:
        engine.close()

