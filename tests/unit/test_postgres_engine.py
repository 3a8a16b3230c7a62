"""What only the PostgreSQL engine has: several engines (standing for several
Shoal nodes) on one database, lost connections, its schema and its refusals.
The rules every engine keeps are in ``test_storage_engine.py``, which runs on
PostgreSQL too."""

from __future__ import annotations

import multiprocessing
import threading
import time

import psycopg
import pytest

from shoal.storage.postgres_engine import FORMAT_VERSION, PostgresEngine, StorageUnavailable

_fork = multiprocessing.get_context("fork")


@pytest.fixture
def database(postgres_cluster):
    """A fresh database: its URL."""
    return postgres_cluster.create_database("engine")


@pytest.fixture
def nodes(database):
    """Two engines on one database, as two Shoal nodes would open it."""
    first, second = PostgresEngine(database), PostgresEngine(database)
    yield first, second
    first.close()
    second.close()


def increment(engine, key=b"counter") -> None:
    with engine.write() as txn:
        current = txn.get("meta", key)
        txn.put("meta", key, b"%d" % (int(current or b"0") + 1))


def rows(database, table: str, schema: str = "shoal") -> list:
    with psycopg.connect(database) as conn:
        return conn.execute(f'SELECT k, v FROM "{schema}"."{table}" ORDER BY k').fetchall()


def test_two_engines_see_each_others_commits(nodes):
    first, second = nodes
    with first.write() as txn:
        txn.put("items", b"from-first", b"1")
    with second.read() as snapshot:
        assert snapshot.get("items", b"from-first") == b"1"
        with second.write() as txn:
            assert txn.get("items", b"from-first") == b"1"
            txn.put("items", b"from-second", b"2")
            txn.put("items", b"k" * 3000, b"long")  # through an overflow group
        assert snapshot.get("items", b"from-second") is None  # a snapshot of before
    with first.read() as snapshot:
        assert list(snapshot.scan("items")) == [(b"from-first", b"1"), (b"from-second", b"2"),
                                               (b"k" * 3000, b"long")]


def test_writers_of_two_engines_serialise_in_threads(nodes):
    """A read-modify-write race from two nodes loses no update."""
    def work(engine):
        for _ in range(60):
            increment(engine)

    threads = [threading.Thread(target=work, args=(engine,)) for engine in (*nodes, *nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    with nodes[0].read() as txn:
        assert txn.get("meta", b"counter") == b"240"


def _increment_in_child(database, times, barrier) -> None:
    engine = PostgresEngine(database)
    barrier.wait()
    for _ in range(times):
        increment(engine)
    engine.close()


def test_writers_in_four_processes_serialise(database):
    PostgresEngine(database).close()  # the schema, created once
    barrier = _fork.Barrier(4)
    children = [_fork.Process(target=_increment_in_child, args=(database, 100, barrier)) for _ in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    with PostgresEngine(database) as engine, engine.read() as txn:
        assert txn.get("meta", b"counter") == b"400"


def test_a_write_that_raises_leaves_nothing_for_any_node(nodes, database):
    first, second = nodes

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with first.write() as txn:
            txn.put("items", b"a", b"1")
            txn.put("items", b"k" * 2500, b"long")
            raise Boom()
    with second.read() as txn:
        assert list(txn.scan("items")) == []
    assert rows(database, "items") == rows(database, "overflow") == []
    increment(second)  # the writer lock was released
    assert rows(database, "meta") == [(b"counter", b"1")]


def test_buffered_writes_reach_the_tables_only_at_commit(nodes, database):
    first, _ = nodes
    with first.write() as txn:
        txn.put("items", b"a", b"1")
        assert rows(database, "items") == []
    assert rows(database, "items") == [(b"a", b"1")]


def test_long_keys_leave_no_rows_after_delete(nodes, database):
    first, _ = nodes
    keys = [b"k" * 3100, b"k" * 3100 + b"z", b"L" * 1200, b"L" * 1001]
    with first.write() as txn:
        for key in keys:
            txn.put("items", key, b"v")
    assert len(rows(database, "items")) == 2  # two group headers
    with first.write() as txn:
        assert [txn.delete("items", key) for key in keys] == [True] * 4
        assert txn.delete("items", keys[0]) is False
    assert rows(database, "items") == rows(database, "overflow") == []


def _terminate_sessions(database) -> int:
    with psycopg.connect(database, autocommit=True) as admin:
        return len(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())


def test_idle_connections_ended_by_the_database_are_replaced_unseen(database):
    engine = PostgresEngine(database, max_connections=3)
    try:
        with engine.read(), engine.read(), engine.read():
            pass  # three connections in the pool
        assert _terminate_sessions(database) == 3
        increment(engine)  # each broken connection is dropped before the transaction begins
        with engine.read() as txn:
            assert txn.get("meta", b"counter") == b"1"
    finally:
        engine.close()


def test_a_connection_lost_in_a_transaction_is_storage_unavailable(database):
    engine = PostgresEngine(database, max_connections=2)
    try:
        increment(engine)
        with pytest.raises(StorageUnavailable, match="^the PostgreSQL storage is unavailable: "):
            with engine.read() as txn:
                _terminate_sessions(database)
                txn.get("meta", b"counter")
        with engine.read() as txn:
            assert txn.get("meta", b"counter") == b"1"
    finally:
        engine.close()


def test_a_database_outage_is_storage_unavailable_until_it_returns(postgres_cluster):
    database = postgres_cluster.create_database("outage")
    engine = PostgresEngine(database, wait_timeout=1)
    try:
        increment(engine)
        postgres_cluster.pause()
        try:
            with pytest.raises(StorageUnavailable, match="^the PostgreSQL storage is unavailable: "):
                increment(engine)
            with pytest.raises(StorageUnavailable, match="^the PostgreSQL storage is unavailable: "):
                engine.read()
        finally:
            postgres_cluster.resume()
        deadline = time.monotonic() + 30
        while True:  # the pool reconnects by itself: no restart of the engine
            try:
                increment(engine)
                break
            except StorageUnavailable:
                assert time.monotonic() < deadline, "the engine did not reconnect"
                time.sleep(0.2)
        with engine.read() as txn:
            assert txn.get("meta", b"counter") == b"2"
    finally:
        engine.close()


def test_a_write_cut_off_before_commit_leaves_nothing_and_releases_the_writer(database):
    engine = PostgresEngine(database, max_connections=2)
    try:
        with pytest.raises(StorageUnavailable):
            with engine.write() as txn:
                assert txn.get("items", b"lost") is None  # the transaction has begun, its lock taken
                txn.put("items", b"lost", b"1")
                _terminate_sessions(database)
        with engine.read() as txn:
            assert txn.get("items", b"lost") is None
        increment(engine)
        with engine.read() as txn:
            assert txn.get("meta", b"counter") == b"1"
    finally:
        engine.close()


def test_an_unreachable_database_is_refused_at_open(postgres_cluster):
    url = f"postgresql://shoal@127.0.0.1:{postgres_cluster.port}/no_such_database"
    with pytest.raises(StorageUnavailable) as refused:
        PostgresEngine(url, connect_timeout=2)
    assert str(refused.value) == (
        f"cannot connect to PostgreSQL at {url}: connection failed: connection to server at \"127.0.0.1\", "
        f"port {postgres_cluster.port} failed: FATAL: database \"no_such_database\" does not exist")
    with pytest.raises(StorageUnavailable, match=r"^cannot connect to PostgreSQL at postgresql://shoal@127\.0\.0\.1:1/"
                       r"postgres: connection failed: connection to server at \"127\.0\.0\.1\", port 1 failed: "
                       r"Connection refused"):
        PostgresEngine("postgresql://shoal@127.0.0.1:1/postgres", connect_timeout=2)


def test_a_store_of_another_format_is_refused(database):
    PostgresEngine(database, schema="other").close()
    with psycopg.connect(database) as conn:
        conn.execute('UPDATE "other"."writer" SET format = %s', (FORMAT_VERSION + 1,))
    with pytest.raises(RuntimeError, match=f"the PostgreSQL schema 'other' holds a Shoal store of format "
                       f"{FORMAT_VERSION + 1}; this Shoal reads format {FORMAT_VERSION}"):
        PostgresEngine(database, schema="other")


def test_schemas_are_separate_stores(database):
    with PostgresEngine(database, schema="one") as one, PostgresEngine(database, schema="two") as two:
        with one.write() as txn:
            txn.put("items", b"a", b"1")
        with two.read() as txn:
            assert txn.get("items", b"a") is None
        with two.write() as writing, one.write() as other:  # separate writer locks: no wait
            writing.put("items", b"b", b"2")
            other.put("items", b"c", b"3")
        assert rows(database, "items", "one") == [(b"a", b"1"), (b"c", b"3")]
        assert rows(database, "items", "two") == [(b"b", b"2")]


def _open_in_child(database, barrier) -> None:
    barrier.wait()
    PostgresEngine(database, schema="racing").close()


def test_processes_creating_the_schema_at_once_all_open_it(database):
    barrier = _fork.Barrier(4)
    children = [_fork.Process(target=_open_in_child, args=(database, barrier)) for _ in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    with psycopg.connect(database) as conn:
        assert conn.execute('SELECT id, format FROM "racing"."writer"').fetchall() == [(1, FORMAT_VERSION)]


def _use_inherited(engine, queue) -> None:
    try:
        engine.read()
    except RuntimeError as exc:
        queue.put(str(exc))
    else:
        queue.put("no error")


def test_an_engine_inherited_through_fork_is_disabled(nodes):
    first, _ = nodes
    queue = _fork.Queue()
    child = _fork.Process(target=_use_inherited, args=(first, queue))
    child.start()
    assert queue.get(timeout=30) == "a PostgresEngine cannot be used after fork(); open a new one in the child"
    child.join(30)
    increment(first)  # the parent's connections were left alone
    with first.read() as txn:
        assert txn.get("meta", b"counter") == b"1"


def test_snapshot_prewarm_flush_and_stats(nodes, tmp_path):
    first, _ = nodes
    with pytest.raises(NotImplementedError, match="a PostgreSQL store cannot be copied to a directory"):
        first.snapshot(tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    assert first.prewarm() == 0
    first.flush()
    stats = first.stats()
    assert stats["engine"] == "postgresql" and stats["schema"] == "shoal"
    assert stats["pool"]["pool_max"] == 8


def test_open_storage_opens_postgresql_and_keeps_only_node_files(database, tmp_path):
    from shoal.storage.datadir import DataDirError, open_data_dir, open_storage

    node_dir = tmp_path / "node"
    with open_storage(node_dir, database) as engine:
        assert isinstance(engine, PostgresEngine)
        increment(engine)
    assert node_dir.is_dir() and list(node_dir.iterdir()) == []  # no marker, no LMDB environment
    with pytest.raises(DataDirError, match=r"^--storage must be a postgresql:// URL, not 'mysql://h/db'$"):
        open_storage(node_dir, "mysql://h/db")
    # a store made plain, holding data, is not encrypted after the fact
    with pytest.raises(DataDirError, match=r"^the PostgreSQL store postgresql://\S+ is not encrypted, but a master key "
                       r"was given: serve it without --master-key-file / SHOAL_MASTER_KEY \(a store is encrypted when "
                       r"it is created\)$"):
        open_storage(node_dir, database, master_key=bytes(32))
    open_data_dir(tmp_path / "lmdb").close()
    with pytest.raises(DataDirError, match="holds a Shoal LMDB store, whose tables --storage would leave behind"):
        open_storage(tmp_path / "lmdb", database)
    with open_storage(tmp_path / "lmdb", None) as engine:  # without --storage: the directory's own store
        assert type(engine).__name__ == "LmdbEngine"


def test_a_second_write_in_the_writing_thread_is_refused_not_a_deadlock(nodes):
    first, second = nodes
    with first.write() as txn:
        txn.put("items", b"a", b"1")
        with pytest.raises(RuntimeError, match="^this thread already has a write\\(\\) open on this engine$"):
            first.write()
    with second.write() as txn:  # the lock was released; another engine in this thread is another node
        txn.put("items", b"b", b"2")
    with first.write() as txn:
        assert txn.get("items", b"b") == b"2"


def test_sessions_end_transactions_left_idle_for_a_minute(nodes):
    """A node that hangs inside a transaction cannot hold the writer lock for ever."""
    with nodes[0].read() as txn:
        assert txn._rows("SHOW idle_in_transaction_session_timeout", None) == [("1min",)]


def test_reads_need_no_prepared_statements_of_the_session(nodes):
    """Point reads and scan batches go to libpq directly as unnamed
    statements: a session whose prepared statements are gone (DEALLOCATE
    ALL, which psycopg sends after a rollback) reads on, in a transaction too."""
    from shoal.storage.postgres_engine import _simple

    engine = nodes[0]
    with engine.write() as txn:
        txn.put("items", b"a", b"1")
        txn.put("items", b"b", b"2")
    for snapshot in (False, True):
        with engine.read(snapshot=snapshot) as txn:
            assert txn.get("items", b"a") == b"1"
            assert list(txn.scan("items")) == [(b"a", b"1"), (b"b", b"2")]
            _simple(txn._conn, b"DEALLOCATE ALL")
            assert txn.get("items", b"b") == b"2"
            assert list(txn.scan("items", b"b")) == [(b"b", b"2")]
    with engine.read(snapshot=False) as txn:  # the kept connection, its statements gone
        assert txn.get("items", b"a") == b"1"


# ------------------------------------------------------------ concurrent writers


HEAD = b"changes/seq"
STATS = b"stats/table"


def item_write(txn, key: bytes, value: bytes) -> None:
    """What the API's write path does for one item: read it, write it, move
    the table's (count, size) counter and append to the change log."""
    old = txn.get("items", key)
    txn.put("items", key, value)
    raw = txn.get("meta", STATS)
    count, size = (int.from_bytes(raw[:8], "big", signed=True), int.from_bytes(raw[8:], "big", signed=True)) \
        if raw else (0, 0)
    count += old is None
    size += len(value) - len(old or b"")
    txn.put("meta", STATS, count.to_bytes(8, "big", signed=True) + size.to_bytes(8, "big", signed=True))
    head = txn.get("meta", HEAD)
    seq = (int.from_bytes(head[:8], "big") if head else 0) + 1
    txn.put("changes", seq.to_bytes(8, "big"), key)
    txn.put("meta", HEAD, seq.to_bytes(8, "big") + (head[8:] if head else b"node0001"))


def change_log(engine) -> list:
    """(position, record) of every change, and the head's position."""
    with engine.read() as txn:
        head = txn.get("meta", HEAD)
        return [(int.from_bytes(k, "big"), v) for k, v in txn.scan("changes")], int.from_bytes(head[:8], "big")


def waiting_sessions(database) -> int:
    with psycopg.connect(database, autocommit=True) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND wait_event_type = 'Lock'").fetchone()[0]


def wait_for_waiters(database, count: int) -> None:
    deadline = time.monotonic() + 30
    while waiting_sessions(database) < count:
        assert time.monotonic() < deadline, f"fewer than {count} sessions ever waited for a lock"
        time.sleep(0.02)


def test_a_write_to_another_item_completes_while_a_transaction_holds_one(nodes):
    """Writers of different items do not queue: the second commits while the
    first is still open, and the log numbers their changes in commit order."""
    first, second = nodes
    with first.write() as txn:
        item_write(txn, b"item-a", b"aa")
        other = threading.Thread(target=lambda: _write_alone(second, b"item-b", b"bbb"))
        other.start()
        other.join(30)
        assert not other.is_alive(), "the write of another item waited for the open transaction"
        with second.read() as snapshot:
            assert snapshot.get("items", b"item-b") == b"bbb"
            assert snapshot.get("items", b"item-a") is None
    assert change_log(first) == ([(1, b"item-b"), (2, b"item-a")], 2)
    with first.read() as txn:
        assert txn.get("meta", STATS) == (2).to_bytes(8, "big") + (5).to_bytes(8, "big")
        assert txn.get("meta", HEAD)[8:] == b"node0001"


def _write_alone(engine, key, value) -> None:
    with engine.write() as txn:
        item_write(txn, key, value)


def test_a_read_of_an_item_another_writer_holds_waits_for_its_commit(nodes, database):
    first, second = nodes
    seen = []

    def reader():
        with second.write() as txn:
            seen.append(txn.get("items", b"item"))
            txn.put("items", b"item", seen[0] + b"+second")

    with first.write() as txn:
        assert txn.get("items", b"item") is None
        txn.put("items", b"item", b"first")
        thread = threading.Thread(target=reader)
        thread.start()
        wait_for_waiters(database, 1)  # the other node's read waits on the item's lock
        assert seen == []
    thread.join(30)
    assert seen == [b"first"]
    with first.read() as txn:
        assert txn.get("items", b"item") == b"first+second"


def test_conditional_inserts_racing_from_two_nodes_have_one_winner(nodes):
    winners, start = [], threading.Barrier(8)

    def insert_if_absent(engine, name):
        start.wait()
        with engine.write() as txn:
            if txn.get("items", b"contested") is not None:
                return
            txn.put("items", b"contested", name)
        winners.append(name)

    threads = [threading.Thread(target=insert_if_absent, args=(nodes[n % 2], b"writer-%d" % n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(winners) == 1
    with nodes[0].read() as txn:
        assert txn.get("items", b"contested") == winners[0]


def test_the_change_log_stays_gap_free_and_counters_exact_under_concurrent_writers(nodes):
    start = threading.Barrier(4)

    def writer(engine, number):
        start.wait()
        for n in range(25):
            _write_alone(engine, b"item-%d-%02d" % (number, n), b"v" * (number + 1))

    threads = [threading.Thread(target=writer, args=(nodes[n % 2], n)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    log, head = change_log(nodes[0])
    assert head == 100
    assert [position for position, _ in log] == list(range(1, 101))
    assert sorted(record for _, record in log) == sorted(b"item-%d-%02d" % (t, n) for t in range(4) for n in range(25))
    with nodes[1].read() as txn:
        assert txn.get("meta", STATS) == (100).to_bytes(8, "big") + (25 * (1 + 2 + 3 + 4)).to_bytes(8, "big")


def test_a_deadlock_is_replayed_unseen_when_the_reads_still_hold(nodes, database):
    """Two nodes lock two items in opposite orders: the database aborts one,
    which begins again, reads the same, and both commit."""
    first, second = nodes
    locked, errors = threading.Barrier(2), []

    def cross(engine, mine, theirs, waits_first):
        try:
            with engine.write() as txn:
                txn.get("items", mine)
                locked.wait()
                if not waits_first:
                    wait_for_waiters(database, 1)
                txn.get("items", theirs)
                txn.put("items", mine, b"done")
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=cross, args=(first, b"a", b"b", True)),
               threading.Thread(target=cross, args=(second, b"b", b"a", False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with first.read() as txn:
        assert list(txn.scan("items")) == [(b"a", b"done"), (b"b", b"done")]


def test_a_replay_that_reads_otherwise_is_a_write_conflict_and_leaves_nothing(nodes, database):
    """The first to wait in a deadlock is the database's victim; when it
    begins again, the item it had read has been changed by the winner: it
    cannot go on, and says so with WriteConflict."""
    from shoal.storage.engine import WriteConflict

    first, second = nodes
    locked, outcome = threading.Barrier(2), {}

    def victim():
        try:
            with first.write() as txn:
                txn.get("items", b"a")
                txn.put("items", b"from-victim", b"1")
                locked.wait()
                txn.get("items", b"b")  # waits for the winner, first
        except WriteConflict as exc:
            outcome["victim"] = str(exc)

    def winner():
        with second.write() as txn:
            txn.get("items", b"b")
            locked.wait()
            wait_for_waiters(database, 1)
            txn.get("items", b"a")  # the cycle: the victim's detector fires first
            txn.put("items", b"a", b"changed")
        outcome["winner"] = "committed"

    threads = [threading.Thread(target=victim), threading.Thread(target=winner)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcome == {"victim": "the write transaction lost a race with another writer; run it again",
                       "winner": "committed"}
    with first.read() as txn:
        assert list(txn.scan("items")) == [(b"a", b"changed")]
    increment(first)  # the victim's engine writes on


# ------------------------------------------------------------ the hash column


def test_items_rows_carry_their_partition_hash(nodes, database):
    from shoal.storage.postgres_engine import partition_hash

    partition = bytes(range(16)) + b"\x01\x02\x03\x04" + b"pk\x00\x00"
    other = bytes(range(16)) + b"\x09\x09\x09\x09" + b"pk2\x00\x00"
    keys = [partition + b"sk1", partition + b"sk2", other]
    with nodes[0].write() as txn:
        for key in keys:
            txn.put("items", key, b"v")
    with psycopg.connect(database) as conn:
        stored = conn.execute('SELECT h, k FROM "shoal"."items" ORDER BY k').fetchall()
    assert stored == sorted(((partition_hash(k), k) for k in keys), key=lambda row: row[1])
    assert stored[0][0] == stored[1][0] != stored[2][0]
    with nodes[1].read() as txn:
        assert txn.get("items", keys[1]) == b"v"
        assert [k for k, _ in txn.scan("items", partition, partition + b"\xff")] == keys[:2]
        assert [k for k, _ in txn.scan("items", partition + b"sk2", partition + b"\xff", reverse=True)] == keys[1:2]
        assert [k for k, _ in txn.scan("items", bytes(range(16)), bytes(range(16)) + b"\xff")] == keys


def test_a_get_is_one_primary_key_lookup_and_a_query_one_range_of_it(nodes, database):
    """The plans of the engine's statements, with sequential scans ruled out
    so that the tiny table still shows which index serves them."""
    from shoal.storage.postgres_engine import partition_hash

    statements = nodes[0]._sql
    key = bytes(20) + b"pk"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")

        def plan(statement, params):
            return "\n".join(row[0] for row in conn.execute("EXPLAIN " + statement, params).fetchall())

        get = plan(statements.get["items"], (partition_hash(key), key))
        assert "Index Scan using items_pkey" in get and "h = " in get and "k = " in get
        query = plan(statements.scan("items", ">=", True, False, partition=True),
                     (partition_hash(key), key, key + b"\xff", 20))
        assert "Index Scan using items_pkey" in query and "h = " in query and "k >= " in query
        scan = plan(statements.scan("items", ">=", False, False), (key, 20))
        assert "items_by_key" in scan


def test_table_entries_are_shared_by_their_readers_and_wait_for_their_writer(nodes, database):
    """Every item write reads its table's catalog entry: readers of it do not
    wait for each other, a change of it waits for them, and they see it."""
    first, second = nodes
    with first.write() as txn:
        txn.put("meta", b"table/t", b"v1")
    with first.write() as txn:
        assert txn.get("meta", b"table/t") == b"v1"
        txn.put("items", b"a", b"1")
        reader = threading.Thread(target=lambda: _read_entry_and_write(second, b"b"))
        reader.start()
        reader.join(30)
        assert not reader.is_alive(), "a second reader of the entry waited for the first"
        changer = threading.Thread(target=lambda: _change_entry(second))
        changer.start()
        wait_for_waiters(database, 1)  # the change waits for the open reader
    changer.join(30)
    assert not changer.is_alive()
    with first.read() as txn:
        assert txn.get("meta", b"table/t") == b"v2"
        assert list(txn.scan("items")) == [(b"a", b"1"), (b"b", b"v1")]


def _read_entry_and_write(engine, key) -> None:
    with engine.write() as txn:
        txn.put("items", key, txn.get("meta", b"table/t"))


def _change_entry(engine) -> None:
    with engine.write() as txn:
        assert txn.get("meta", b"table/t") == b"v1"
        txn.put("meta", b"table/t", b"v2")


def test_a_write_whose_first_statement_finds_its_connection_broken_goes_on_unseen(database):
    """BEGIN goes with a write's first statement; until that has run nothing
    has happened, so a connection found broken then is replaced, even at commit."""
    engine = PostgresEngine(database, max_connections=2)
    try:
        with engine.write() as txn:
            txn.put("items", b"kept", b"1")
            assert _terminate_sessions(database) == 1
        with engine.read() as txn:
            assert txn.get("items", b"kept") == b"1"
        with engine.group():  # so too for a group, whose grouped writes use its connection
            assert _terminate_sessions(database) >= 1
            with engine.write() as txn:
                assert txn.get("items", b"kept") == b"1"
                txn.put("items", b"grouped", b"2")
            with engine.write() as txn:
                txn.put("items", b"kept", txn.get("items", b"grouped") + b"+")
        with engine.read() as txn:
            assert list(txn.scan("items")) == [(b"grouped", b"2"), (b"kept", b"2+")]
    finally:
        engine.close()


def test_a_group_whose_replay_reads_otherwise_commits_nothing(nodes, database):
    """A grouped write that lost such a race (before writing anything) fails
    alone with WriteConflict, and the group then cannot commit: what its
    other writes concluded may rest on what changed, so none of it is kept
    (the group committer then runs each request on its own)."""
    from shoal.storage.engine import WriteConflict

    first, second = nodes
    locked, outcome = threading.Barrier(2), {}

    def victim():
        try:
            with first.group():
                with first.write() as txn:
                    txn.put("items", b"grouped-earlier", b"1")
                try:
                    with first.write() as txn:
                        txn.get("items", b"a")
                        locked.wait()
                        txn.get("items", b"b")
                except WriteConflict:
                    outcome["grouped write"] = "WriteConflict"
        except WriteConflict as exc:
            outcome["group"] = str(exc)

    def winner():
        with second.write() as txn:
            txn.get("items", b"b")
            locked.wait()
            wait_for_waiters(database, 1)
            txn.get("items", b"a")
            txn.put("items", b"a", b"changed")

    threads = [threading.Thread(target=victim), threading.Thread(target=winner)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcome == {"grouped write": "WriteConflict",
                       "group": "the write transaction lost a race with another writer; run it again"}
    with second.read() as txn:
        assert list(txn.scan("items")) == [(b"a", b"changed")]
    with first.group():  # the engine groups on
        increment(first)
    assert rows(database, "meta")[-1] == (b"counter", b"1")


# ------------------------------------------------------------ statement reads (GetItem's path)


def test_statement_reads_read_every_kind_of_key_as_a_snapshot_does(nodes):
    """``read(snapshot=False)`` reads items and catalog entries by their own
    statement, and every other key as a snapshot does: the same answers for
    each kind of key, long ones (overflow groups) and absent ones included."""
    from shoal.storage.postgres_engine import _DIRECT_MAX

    engine = nodes[0]
    keys = [("items", b"\0" * 20 + b"item"), ("items", b"i" * _DIRECT_MAX), ("items", b"i" * (_DIRECT_MAX + 1)),
            ("items", b"i" * 3000), ("meta", b"table/us-east-1/t"), ("meta", b"table/" + b"t" * 2000),
            ("meta", b"stats/t"), ("meta", b"other"), ("changes", (7).to_bytes(8, "big")),
            ("indexes", b"x" * 1500), ("streams", b"s")]
    with engine.write() as txn:
        for n, (space, key) in enumerate(keys):
            txn.put(space, key, b"value-%d" % n)
    absent = [(space, key + b"?") for space, key in keys]
    with engine.read() as snapshot:
        expected = [snapshot.get(space, key) for space, key in keys + absent]
    assert expected == [b"value-%d" % n for n in range(len(keys))] + [None] * len(absent)
    for _ in range(2):  # the kept connection and entries cached by the first pass
        with engine.read(snapshot=False) as reads:
            assert [reads.get(space, key) for space, key in keys + absent] == expected
            assert reads.get("items", b"") is None and reads.get("meta", b"") is None
            with pytest.raises(KeyError):
                reads.get("nonsense", b"k")


def test_statement_reads_replace_a_kept_connection_the_database_ended(database):
    """The thread's kept connection, ended by the database while idle, is
    replaced unseen by the next block's first statement (nothing read yet);
    ended inside a block after a statement, it is StorageUnavailable, and
    the block after that reads on."""
    engine = PostgresEngine(database, max_connections=2)
    try:
        with engine.write() as txn:
            txn.put("items", b"\0" * 20 + b"a", b"1")
            txn.put("meta", b"table/t", b"entry")
        for first in (("items", b"\0" * 20 + b"a"), ("meta", b"plain")):
            with engine.read(snapshot=False) as reads:
                assert reads.get("items", b"\0" * 20 + b"a") == b"1"
            assert _terminate_sessions(database) >= 1
            with engine.read(snapshot=False) as reads:
                reads.get(*first)
                assert reads.get("items", b"\0" * 20 + b"a") == b"1"
                assert reads.get("meta", b"table/t") == b"entry"
        with pytest.raises(StorageUnavailable, match="^the PostgreSQL storage is unavailable: "):
            with engine.read(snapshot=False) as reads:
                reads.get("items", b"\0" * 20 + b"a")
                _terminate_sessions(database)
                reads.get("items", b"\0" * 20 + b"a")
        with engine.read(snapshot=False) as reads:
            assert reads.get("items", b"\0" * 20 + b"a") == b"1"
    finally:
        engine.close()


def test_statement_reads_nested_in_one_thread_each_have_a_connection(nodes):
    """A block inside another takes a connection of its own; both read, and
    afterwards the thread keeps one connection and the pool has the other."""
    engine = nodes[0]
    with engine.write() as txn:
        txn.put("items", b"\0" * 20 + b"a", b"1")
    with engine.read(snapshot=False) as outer:
        with engine.read(snapshot=False) as inner:
            assert inner._conn is not outer._conn
            assert inner.get("items", b"\0" * 20 + b"a") == b"1"
        assert outer.get("items", b"\0" * 20 + b"a") == b"1"
    kept = engine._local.reads.conn
    with engine.read(snapshot=False) as again:
        assert again._conn is kept
        assert again.get("items", b"\0" * 20 + b"a") == b"1"
    assert engine._pool.get_stats()["pool_available"] >= 1


def test_an_item_read_that_sees_the_catalog_moved_drops_the_cached_entries(nodes):
    """Item reads keep the cached catalog entries trusted only while the
    version they bring back is the one the entries are of: once another node
    changed an entry, the next item read drops them, and the entry is read
    again, bound or not."""
    first, second = nodes
    item, entry = b"\0" * 20 + b"a", b"table/us-east-1/t"
    with first.write() as txn:
        txn.put("items", item, b"1")
        txn.put("meta", entry, b"old")
    with second.read(snapshot=False) as reads:
        assert reads.get("meta", entry) == b"old"  # cached by the second node
        assert reads.get("items", item) == b"1"
    with second.read(snapshot=False) as reads:
        assert reads.get("meta", entry) == b"old"  # from the cache: the version is unchanged
    with first.write() as txn:
        txn.put("meta", entry, b"new")  # moves the catalog's version
    with second.read(snapshot=False) as reads:
        assert reads.get("items", item) == b"1"  # sees the version moved
        assert reads.get("meta", entry) == b"new"


def test_a_closed_engine_refuses_statement_reads_in_every_thread(database):
    """A thread that kept a connection for its statement reads is refused
    once the engine is closed, not served on a connection of the closed pool."""
    engine = PostgresEngine(database)
    answers = []
    ready, closed = threading.Event(), threading.Event()

    def reader() -> None:
        with engine.read(snapshot=False) as reads:
            answers.append(reads.get("items", b"\0" * 20 + b"a"))
        ready.set()
        closed.wait(30)
        try:
            engine.read(snapshot=False)
        except RuntimeError as exc:
            answers.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    assert ready.wait(30)
    engine.close()
    closed.set()
    thread.join(30)
    assert answers == [None, "the storage engine is closed"]
