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
    with pytest.raises(DataDirError, match=r"^encryption at rest \(--master-key-file, SHOAL_MASTER_KEY\) is not "
                       r"yet available with --storage postgresql://\.\.\.; use the database's own encryption$"):
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
