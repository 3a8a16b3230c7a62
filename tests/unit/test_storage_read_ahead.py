"""``Engine.read_ahead`` on every engine of the shared suite
(tests/unit/test_storage_engine.py): inside the block a statement read of a
key read ahead gives what is stored (found or not), a read of any other key
goes to storage, and nothing read ahead answers after the block ends or
after the thread wrote.  LMDB and the memory engine read nothing ahead; the
PostgreSQL engines say they do, which is what the server asks before it
gathers the GetItems of a turn (``shoal.server.batched_reads``)."""

from __future__ import annotations

import threading

from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.unit.test_storage_engine import engine, fill, opener, postgres_database  # noqa: F401 (fixtures)


def test_reads_ahead_only_where_a_read_is_a_round_trip(engine):  # noqa: F811
    assert engine.reads_ahead == (type(engine).__name__ in ("PostgresEngine", "EncryptedEngine"))


def test_keys_read_ahead_answer_as_storage_would(engine):  # noqa: F811
    fill(engine, "items", [b"a", b"b", b"c"])
    fill(engine, "meta", [b"a"])
    with engine.read_ahead("items", [b"a", b"b", b"missing", b"a"]):
        with engine.read(snapshot=False) as txn:
            assert txn.get("items", b"a") == b"v:a"
            assert txn.get("items", b"a") == b"v:a"  # again
            assert txn.get("items", b"missing") is None
            assert txn.get("items", b"c") == b"v:c"  # not read ahead
            assert txn.get("meta", b"a") == b"v:a"  # another space's key of the same name
        with engine.read(snapshot=False) as txn:  # a second block of the thread
            assert txn.get("items", b"b") == b"v:b"
    with engine.read_ahead("items", []):
        with engine.read(snapshot=False) as txn:
            assert txn.get("items", b"b") == b"v:b"


def test_nothing_read_ahead_answers_after_a_write_or_after_the_block(engine):  # noqa: F811
    fill(engine, "items", [b"a", b"b"])
    with engine.read_ahead("items", [b"a", b"b"]):
        with engine.write() as txn:  # this thread writes: what was read ahead is dropped
            txn.put("items", b"a", b"new")
        with engine.read(snapshot=False) as txn:
            assert txn.get("items", b"a") == b"new"
    done = threading.Event()

    def write_elsewhere() -> None:  # another thread, once the block is over
        with engine.write() as txn:
            txn.put("items", b"b", b"newer")
        done.set()

    with engine.read_ahead("items", [b"b"]):
        pass
    thread = threading.Thread(target=write_elsewhere)
    thread.start()
    thread.join(30)
    assert done.is_set()
    with engine.read(snapshot=False) as txn:
        assert txn.get("items", b"b") == b"newer"
