"""GetItem over PostgreSQL in one round trip (issue 19): the statement reads
keep the tables' catalog entries, checked by the catalog's version that
every item read brings back in the same statement, and trusted for at most
``CATALOG_TRUST_S`` after the version was last seen: a table's change on
one node reaches every other within that bound, and the node that made it
at once.

Two engines (or two in-process dispatchers) on one database stand for two
Shoal nodes; the round trips are counted from libpq's own trace of the
messages each connection sends.

The GetItems that arrive in one turn of a node's event loop share one
round trip (``shoal.server.batched_reads``): each still gets its own
answer, a refused one its own error, and a strongly consistent one every
write acknowledged before it was sent."""

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



# -- the GetItems of one turn of the event loop, read in one round trip (shoal.server.batched_reads)


class InProcessNode:
    """A dispatcher behind Shoal's HTTP server on an event loop of its own
    thread, whose loop a test can hold, so that requests sent meanwhile on
    several connections are all read in its next turn."""

    def __init__(self, engine) -> None:
        import asyncio
        import threading

        from shoal.server.http import HttpServer
        from shoal.testing import _new_loop

        self.dispatcher = dispatcher(engine)
        self.loop = _new_loop()
        self.server = HttpServer(self.dispatcher)
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start(host="127.0.0.1", port=0))
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert started.wait(10)
        self.port = self.server.port

    def held(self):
        """A context in which the loop is busy: what clients send waits for its next turn."""
        import contextlib
        import threading

        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            holding.set()
            release.wait(10)

        @contextlib.contextmanager
        def block():
            self.loop.call_soon_threadsafe(hold)
            assert holding.wait(10)
            try:
                yield
            finally:
                release.set()

        return block()

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.server.shutdown(1), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.dispatcher.close()


class RawClient:
    """One keep-alive HTTP connection, sending a request and reading its answer separately."""

    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, operation: str, body: dict) -> None:
        payload = orjson.dumps(body)
        head = "".join(f"{name}: {value}\r\n" for name, value in {
            **HEADERS, "host": "localhost", "x-amz-target": "DynamoDB_20120810." + operation,
            "content-length": str(len(payload))}.items())
        self.sock.sendall(f"POST / HTTP/1.1\r\n{head}\r\n".encode() + payload)

    def answer(self) -> tuple[int, dict]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return int(lines[0].split()[1]), orjson.loads(rest[:length]) if length else {}

    def call(self, operation: str, body: dict) -> tuple[int, dict]:
        self.send(operation, body)
        return self.answer()

    def close(self) -> None:
        self.sock.close()


def test_the_get_items_of_one_turn_share_one_round_trip_and_keep_their_own_answers(database):
    """Eight GetItems on eight connections, read in one turn of the loop:
    one statement reads their keys, and each is answered as alone: found,
    missing, refused (no such table; a key of the wrong type), strongly
    consistent, projected."""
    engine = PostgresEngine(database, min_connections=2, max_connections=2)
    trace = Traced(engine)
    node = InProcessNode(engine)
    clients = [RawClient(node.port) for _ in range(8)]
    try:
        first = clients[0]
        assert first.call("CreateTable", {
            "TableName": "turn", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})[0] == 200
        for n in range(4):
            assert first.call("PutItem", {"TableName": "turn", "Item": {"pk": {"S": f"k{n}"}, "n": {"N": str(n)},
                                                                          "x": {"S": "y"}}})[0] == 200
        requests = [
            {"TableName": "turn", "Key": {"pk": {"S": "k0"}}},
            {"TableName": "turn", "Key": {"pk": {"S": "k1"}}, "ConsistentRead": True},
            {"TableName": "turn", "Key": {"pk": {"S": "missing"}}},
            {"TableName": "no_such_table", "Key": {"pk": {"S": "k0"}}},
            {"TableName": "turn", "Key": {"pk": {"N": "1"}}},
            {"TableName": "turn", "Key": {"pk": {"S": "k2"}}, "ProjectionExpression": "n"},
            {"TableName": "turn", "Key": {"pk": {"S": "k3"}}, "ReturnConsumedCapacity": "TOTAL"},
            {"TableName": "turn", "Key": {"pk": {"S": "k0"}}},  # the same key again
        ]
        expected = [
            (200, {"Item": {"pk": {"S": "k0"}, "n": {"N": "0"}, "x": {"S": "y"}}}),
            (200, {"Item": {"pk": {"S": "k1"}, "n": {"N": "1"}, "x": {"S": "y"}}}),
            (200, {}),
            NOT_FOUND,
            (400, {"__type": "com.amazon.coral.validate#ValidationException",
                   "message": "The provided key element does not match the schema"}),
            (200, {"Item": {"n": {"N": "2"}}}),
            (200, {"Item": {"pk": {"S": "k3"}, "n": {"N": "3"}, "x": {"S": "y"}},
                   "ConsumedCapacity": {"TableName": "turn", "CapacityUnits": 0.5}}),
            (200, {"Item": {"pk": {"S": "k0"}, "n": {"N": "0"}, "x": {"S": "y"}}}),
        ]
        for _ in range(2):  # the first turn prepares the statement
            with node.held():
                before = trace.mark()
                for client, request in zip(clients, requests):
                    client.send("GetItem", request)
            assert [client.answer() for client in clients] == expected
        # One statement for the keys of the turn, and the table that does not
        # exist looked for twice (a missing table is not cached): once for
        # the statement, once by its request.  One by one: 8.
        assert trace.round_trips() - before == 3
        # The engine reads nothing ahead once the turn is answered.
        assert engine._local.ahead is None
    finally:
        for client in clients:
            client.close()
        node.close()
        engine.close()


def test_many_get_items_from_threads_over_several_connections_each_get_their_own_answer(tmp_path, database):
    """A ``shoal serve`` node over PostgreSQL under GetItems from eight threads
    at once (each its own connections), read in shared round trips: every
    answer is the one for its own request (an item, nothing for a missing
    key, the error of a refused request), and a strongly consistent read
    sees every write acknowledged before it was sent."""
    import threading

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from tests.shoal_process import ShoalProcess

    node = ShoalProcess(tmp_path / "node", "--storage", database, "--workers", "1").start()
    try:
        def client():
            return boto3.client("dynamodb", endpoint_url=node.url, region_name="us-east-1",
                                aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                                config=Config(retries={"max_attempts": 0}, max_pool_connections=2))

        ddb = client()
        ddb.create_table(TableName="many", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        for first in range(0, 100, 25):
            ddb.batch_write_item(RequestItems={"many": [
                {"PutRequest": {"Item": {"pk": {"S": f"k{n}"}, "n": {"N": str(n)}}}} for n in range(first, first + 25)]})
        ddb.put_item(TableName="many", Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
        acknowledged = [0]  # the counter's last acknowledged value
        done = threading.Event()
        failures: list = []

        def writer() -> None:
            own = client()
            try:
                for n in range(1, 10_000):
                    if done.is_set():
                        return
                    own.put_item(TableName="many", Item={"pk": {"S": "counter"}, "n": {"N": str(n)}})
                    acknowledged[0] = n
            except Exception as exc:  # noqa: BLE001 (reported by the test)
                failures.append(("writer", repr(exc)))

        def reader(number: int) -> None:
            own = client()
            try:
                for step in range(60):
                    kind = (number + step) % 6
                    if kind == 0:  # a refused request among the others
                        try:
                            own.get_item(TableName="many", Key={"pk": {"N": "1"}})
                            failures.append((number, step, "a key of the wrong type was answered"))
                        except ClientError as exc:
                            assert exc.response["Error"]["Code"] == "ValidationException", exc.response
                    elif kind == 1:
                        try:
                            own.get_item(TableName="no_such_table", Key={"pk": {"S": "k1"}})
                            failures.append((number, step, "a missing table was answered"))
                        except ClientError as exc:
                            assert exc.response["Error"]["Code"] == "ResourceNotFoundException", exc.response
                    elif kind == 2:  # a missing item
                        answer = own.get_item(TableName="many", Key={"pk": {"S": f"none-{number}-{step}"}})
                        assert "Item" not in answer, answer
                    elif kind == 3:  # strongly consistent: at least what was acknowledged before it was sent
                        floor = acknowledged[0]
                        answer = own.get_item(TableName="many", Key={"pk": {"S": "counter"}}, ConsistentRead=True)
                        assert int(answer["Item"]["n"]["N"]) >= floor, (answer, floor)
                    else:
                        n = (number * 37 + step * 11) % 100
                        answer = own.get_item(TableName="many", Key={"pk": {"S": f"k{n}"}})
                        assert answer["Item"] == {"pk": {"S": f"k{n}"}, "n": {"N": str(n)}}, (n, answer)
            except Exception as exc:  # noqa: BLE001 (reported by the test)
                failures.append((number, repr(exc)))

        threads = [threading.Thread(target=reader, args=(number,)) for number in range(8)]
        writing = threading.Thread(target=writer)
        writing.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        done.set()
        writing.join(60)
        assert failures == []
        assert acknowledged[0] > 0
    finally:
        node.stop()


def test_get_items_pipelined_on_one_connection_or_from_a_browser_are_answered_in_order(database):
    """A GetItem answered later (``http.Deferred``) holds back the requests
    pipelined behind it on its connection, which are then answered in the
    order sent; a browser's (with Origin) gets its CORS headers."""
    engine = PostgresEngine(database, min_connections=2, max_connections=2)
    node = InProcessNode(engine)
    client = RawClient(node.port)
    try:
        assert client.call("CreateTable", {
            "TableName": "piped", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})[0] == 200
        for n in range(3):
            assert client.call("PutItem", {"TableName": "piped", "Item": {"pk": {"S": f"k{n}"}}})[0] == 200
        with node.held():  # all in one read of the connection
            for n in (2, 0, 9, 1):
                client.send("GetItem", {"TableName": "piped", "Key": {"pk": {"S": f"k{n}"}}})
            client.send("PutItem", {"TableName": "piped", "Item": {"pk": {"S": "k9"}}})
            client.send("GetItem", {"TableName": "piped", "Key": {"pk": {"S": "k9"}}})
        assert [client.answer() for _ in range(6)] == [
            (200, {"Item": {"pk": {"S": "k2"}}}), (200, {"Item": {"pk": {"S": "k0"}}}), (200, {}),
            (200, {"Item": {"pk": {"S": "k1"}}}), (200, {}), (200, {"Item": {"pk": {"S": "k9"}}})]
        import http.client

        browser = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        browser.request("POST", "/", orjson.dumps({"TableName": "piped", "Key": {"pk": {"S": "k1"}}}),
                        {**HEADERS, "x-amz-target": "DynamoDB_20120810.GetItem", "origin": "http://example.com"})
        answer = browser.getresponse()
        assert answer.status == 200 and orjson.loads(answer.read()) == {"Item": {"pk": {"S": "k1"}}}
        assert answer.getheader("Access-Control-Allow-Origin") == "*"
        browser.close()
    finally:
        client.close()
        node.close()
        engine.close()


def test_a_turn_of_more_get_items_than_one_statement_reads_splits_them(database):
    """105 GetItems in one turn: two statements (at most ``MAX_BATCH`` keys
    each, as BatchGetItem's 100), every answer its own."""
    from shoal.server.batched_reads import MAX_BATCH

    engine = PostgresEngine(database, min_connections=2, max_connections=2)
    trace = Traced(engine)
    node = InProcessNode(engine)
    count = MAX_BATCH + 5
    clients = [RawClient(node.port) for _ in range(count)]
    try:
        assert clients[0].call("CreateTable", {
            "TableName": "wide", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})[0] == 200
        for n in range(0, count, 2):
            assert clients[0].call("PutItem", {"TableName": "wide", "Item": {"pk": {"S": f"k{n}"}}})[0] == 200
        expected = [(200, {"Item": {"pk": {"S": f"k{n}"}}} if n % 2 == 0 else {}) for n in range(count)]
        for _ in range(2):  # the first turn prepares the statement
            with node.held():
                before = trace.mark()
                for n, client in enumerate(clients):
                    client.send("GetItem", {"TableName": "wide", "Key": {"pk": {"S": f"k{n}"}}})
            assert [client.answer() for client in clients] == expected
        assert trace.round_trips() - before == 2
    finally:
        for client in clients:
            client.close()
        node.close()
        engine.close()



def test_range_scans_are_never_planned_as_bitmap_scans(database):
    """Every statement of the engine reads keys or key ranges, which an index
    scan reads in order and stops at the LIMIT; a bitmap scan reads every row
    of the range and sorts them.  PostgreSQL chose one for a Query's scan of
    a busy partition once its statistics were older than the partition's
    growth (bench/pg_nodes.py, with auto_explain: "the latest 20" of a user
    read 1,551 rows and 974 buffers; PostgreSQL's CPU per Query-20 185 ->
    2,600-5,100 µs after 20-40 s of PutItems, 235-245 µs with bitmap scans
    off), so the engine's connections, pooled or made at once, turn them off."""
    engine = PostgresEngine(database, min_connections=1, max_connections=2)
    try:
        with engine._pool.connection() as conn:
            assert conn.execute("SHOW enable_bitmapscan").fetchone()[0] == "off"
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            engine._configure(conn)  # what a connection made outside the pool is given too
            assert conn.execute("SHOW enable_bitmapscan").fetchone()[0] == "off"
    finally:
        engine.close()
