"""Engine conformance suite: every storage engine must pass all of it.

The tests talk to engines only through ``shoal.storage.engine``'s interface; the
``ENGINES`` table below is the one place that knows the concrete classes.
Engines are opened through a module-level factory so that child processes
(forked) can open their own.  The PostgreSQL engine runs on the session's
throwaway server (``tests/postgres_cluster.py``), one database per test
session and one schema per engine path, so that reopening a path reopens
its store; the tests only it needs (several engines as nodes, races) are in
``test_postgres_engine.py``.

Tests of what only an on-disk engine shared by processes can do (reopening,
several processes, fork, kill -9, prewarm) or of LMDB's internals are marked
``lmdb_only``: they run on LMDB, not on the in-memory engine.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import multiprocessing
import os
import signal
import threading
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.storage.engine import SPACES, Engine
from shoal.storage.lmdb_engine import _MADV_POPULATE_READ, GroupPoisoned, LmdbEngine
from shoal.storage.memory_engine import MemoryEngine
from shoal.storage.postgres_engine import PostgresEngine


def open_lmdb(path, *, sync: bool = True) -> Engine:
    return LmdbEngine(os.path.join(path, "lmdb"), sync=sync)


def open_memory(path, *, sync: bool = True) -> Engine:
    """A fresh in-memory engine: it has no files and nothing to sync."""
    return MemoryEngine()


# The database open_postgres uses: set by the opener fixture, before any call.
_POSTGRES = {"dsn": None}


def open_postgres(path, *, sync: bool = True) -> Engine:
    """The store of ``path``: a schema named after it in the session's database."""
    schema = "s" + hashlib.sha1(os.fsencode(path)).hexdigest()[:24]
    return PostgresEngine(_POSTGRES["dsn"], schema=schema, sync=sync, max_connections=4)


def open_postgres_encrypted(path, *, sync: bool = True) -> Engine:
    """The store of ``path`` encrypted at rest: sealed values and transformed
    keys over PostgreSQL, where counters and the change log's head are then
    locked reads (``PostgresEngine.sealed_above``)."""
    from shoal.storage.encrypted import EncryptedEngine
    from shoal.storage.keyring import DataKeys

    schema = "e" + hashlib.sha1(os.fsencode(path)).hexdigest()[:24]
    inner = PostgresEngine(_POSTGRES["dsn"], schema=schema, sync=sync, max_connections=4, encrypted=True)
    return EncryptedEngine(inner, DataKeys(b"v" * 32, b"p" * 32, b"o" * 32))


ENGINES = {"lmdb": open_lmdb, "memory": open_memory, "postgresql": open_postgres,
           "postgresql-encrypted": open_postgres_encrypted}


def lmdb_only(test):
    """Mark ``test`` as meaningful for LMDB only and, when it takes an engine
    from ``opener``, run it on LMDB alone.  (The parametrization is indirect,
    so a module that reruns this suite with its own ``opener`` fixture, such
    as the encrypted engine's, still runs the test on its own engine.)"""
    parameters = inspect.signature(test).parameters
    if "opener" in parameters or "engine" in parameters:
        test = pytest.mark.parametrize("opener", ["lmdb"], indirect=True)(test)
    return pytest.mark.lmdb_only(test)

# Long keys cross LMDB's 511-byte key limit once (600) and twice (1200, 3100).
LONG = b"L" * 600
LONGER = b"L" * 1200
LONGEST = b"k" * 3100

_fork = multiprocessing.get_context("fork")


@pytest.fixture(scope="session")
def postgres_database(postgres_cluster):
    """One database of the session's PostgreSQL server for the engine suite."""
    return postgres_cluster.create_database("suite")


@pytest.fixture(params=sorted(ENGINES))
def opener(request):
    if request.param.startswith("postgresql"):
        _POSTGRES["dsn"] = request.getfixturevalue("postgres_database")
    return ENGINES[request.param]


@pytest.fixture
def engine(opener, tmp_path):
    eng = opener(str(tmp_path))
    yield eng
    eng.close()


def fill(engine, space, keys, value=None):
    with engine.write() as txn:
        for key in keys:
            txn.put(space, key, value if value is not None else b"v:" + key)


def keys_of(engine, space, start=None, stop=None, reverse=False):
    with engine.read() as txn:
        return [key for key, _ in txn.scan(space, start, stop, reverse=reverse)]


# ------------------------------------------------------------ get / put / delete


def test_spaces_are_the_documented_names():
    assert SPACES == ("meta", "items", "changes", "indexes", "streams")


def test_get_of_missing_key_is_none(engine):
    with engine.read() as txn:
        assert txn.get("items", b"nope") is None


def test_put_then_get_returns_bytes(engine):
    with engine.write() as txn:
        txn.put("items", b"k1", b"value-1")
    with engine.read() as txn:
        value = txn.get("items", b"k1")
    assert value == b"value-1"
    assert type(value) is bytes


def test_put_replaces_the_old_value(engine):
    fill(engine, "items", [b"k"], b"old")
    fill(engine, "items", [b"k"], b"new")
    with engine.read() as txn:
        assert txn.get("items", b"k") == b"new"
        assert list(txn.scan("items")) == [(b"k", b"new")]


def test_empty_and_large_values(engine):
    big = os.urandom(400 * 1024)  # DynamoDB's item size limit
    with engine.write() as txn:
        txn.put("items", b"empty", b"")
        txn.put("items", b"big", big)
    with engine.read() as txn:
        assert txn.get("items", b"empty") == b""
        assert txn.get("items", b"big") == big


def test_delete_reports_whether_the_key_existed(engine):
    fill(engine, "items", [b"a", b"b"])
    with engine.write() as txn:
        assert txn.delete("items", b"a") is True
        assert txn.delete("items", b"a") is False
        assert txn.delete("items", b"never") is False
    assert keys_of(engine, "items") == [b"b"]


def test_spaces_are_independent(engine):
    with engine.write() as txn:
        for number, space in enumerate(SPACES):
            txn.put(space, b"same-key", str(number).encode())
    with engine.read() as txn:
        for number, space in enumerate(SPACES):
            assert txn.get(space, b"same-key") == str(number).encode()
            assert [k for k, _ in txn.scan(space)] == [b"same-key"]
    with engine.write() as txn:
        assert txn.delete("items", b"same-key")
    with engine.read() as txn:
        assert txn.get("items", b"same-key") is None
        assert txn.get("indexes", b"same-key") == b"3"


def test_unknown_space_is_a_key_error(engine):
    with engine.read() as txn:
        with pytest.raises(KeyError):
            txn.get("tables", b"k")
        with pytest.raises(KeyError):
            txn.scan("tables")


def test_empty_key_is_rejected_on_put_and_absent_on_read(engine):
    with engine.write() as txn:
        with pytest.raises(ValueError, match="storage keys must not be empty"):
            txn.put("items", b"", b"v")
        assert txn.delete("items", b"") is False
    with engine.read() as txn:
        assert txn.get("items", b"") is None


def test_keys_order_as_unsigned_bytes(engine):
    keys = [b"\xff", b"\x00", b"a", b"a\x00", b"a\xff", b"ab", b"\x7f", b"\x80", b"b"]
    fill(engine, "items", keys)
    assert keys_of(engine, "items") == sorted(keys)
    assert keys_of(engine, "items", reverse=True) == sorted(keys, reverse=True)


# ------------------------------------------------------------ long keys


def test_long_keys_round_trip(engine):
    keys = [LONG, LONG + b"\x00", LONGER, LONGEST, LONGEST + b"z", b"k" * 501, b"k" * 500]
    fill(engine, "items", keys)
    with engine.read() as txn:
        for key in keys:
            assert txn.get("items", key) == b"v:" + key
        assert txn.get("items", b"L" * 599) is None
        assert txn.get("items", LONG + b"a") is None
        assert txn.get("items", LONGEST[:-1]) is None
    assert keys_of(engine, "items") == sorted(keys)
    assert keys_of(engine, "items", reverse=True) == sorted(keys, reverse=True)


def test_long_keys_sort_among_short_keys_sharing_their_prefix(engine):
    prefix = b"p" * 500
    keys = [
        prefix[:-1],                 # shorter, below the group
        prefix,                      # the prefix itself, just below the group
        prefix + b"\x00",            # the smallest group member
        prefix + b"\x00\x00",
        prefix + b"a" * 700,
        prefix[:-1] + b"q",          # a short key above the group
        prefix[:-1] + b"q" + b"x" * 200,
    ]
    fill(engine, "items", keys)
    assert keys_of(engine, "items") == sorted(keys)
    assert keys_of(engine, "items", prefix, prefix + b"\x00\x01") == [prefix, prefix + b"\x00", prefix + b"\x00\x00"]
    assert keys_of(engine, "items", prefix + b"\x00", prefix[:-1] + b"q", reverse=True) == [
        prefix + b"a" * 700, prefix + b"\x00\x00", prefix + b"\x00"]


def test_long_key_delete_and_overwrite(engine):
    fill(engine, "items", [LONG, LONG + b"x", LONGEST])
    fill(engine, "items", [LONGEST], b"new")
    with engine.write() as txn:
        assert txn.delete("items", LONG) is True
        assert txn.delete("items", LONG) is False
        assert txn.delete("items", LONG + b"y") is False
        assert txn.delete("items", b"Z" * 900) is False
    with engine.read() as txn:
        assert txn.get("items", LONGEST) == b"new"
        assert txn.get("items", LONG) is None
    assert keys_of(engine, "items") == [LONG + b"x", LONGEST]
    with engine.write() as txn:
        assert txn.delete("items", LONG + b"x")
        assert txn.delete("items", LONGEST)
    assert keys_of(engine, "items") == []
    assert keys_of(engine, "items", reverse=True) == []


@lmdb_only
def test_long_keys_leave_no_residue_after_delete(tmp_path):
    engine = LmdbEngine(str(tmp_path / "lmdb"))
    try:
        fill(engine, "items", [LONGEST, LONGER, LONG])
        with engine.write() as txn:
            for key in (LONGEST, LONGER, LONG):
                txn.delete("items", key)
        stats = engine.stats()
        assert stats["entries"]["items"] == 0
        assert stats["overflow_entries"] == 1  # only the group-id counter remains
    finally:
        engine.close()


# ------------------------------------------------------------ scan ranges

KEYS = [b"b", b"d", b"d\x00", b"f", b"h"]


@pytest.mark.parametrize(
    "start, stop, expected",
    [
        (None, None, KEYS),
        (b"d", b"f", [b"d", b"d\x00"]),                  # start inclusive, stop exclusive
        (b"c", b"g", [b"d", b"d\x00", b"f"]),            # neither bound stored
        (b"d\x00", None, [b"d\x00", b"f", b"h"]),
        (None, b"d", [b"b"]),
        (None, b"d\x00", [b"b", b"d"]),
        (b"a", b"b", []),                                # stop before the first key
        (None, b"a", []),
        (b"i", None, []),                                # start beyond the last key
        (b"h\x00", b"z", []),
        (b"h", None, [b"h"]),
        (b"d", b"d", []),                                # empty range
        (b"f", b"d", []),                                # inverted range
        (b"", None, KEYS),                               # empty start = unbounded
        (None, b"", []),                                 # nothing is below b""
        (b"\x00", b"\xff" * 3, KEYS),
    ],
)
def test_scan_ranges_both_directions(engine, start, stop, expected):
    fill(engine, "items", KEYS)
    assert keys_of(engine, "items", start, stop) == expected
    assert keys_of(engine, "items", start, stop, reverse=True) == expected[::-1]


def test_scan_of_empty_space(engine):
    fill(engine, "meta", [b"x"])  # other spaces hold data, this one does not
    for reverse in (False, True):
        assert keys_of(engine, "items", reverse=reverse) == []
        assert keys_of(engine, "items", b"a", b"z", reverse=reverse) == []
        assert keys_of(engine, "items", b"a", reverse=reverse) == []
        assert keys_of(engine, "items", None, b"z", reverse=reverse) == []


def test_scan_yields_values(engine):
    fill(engine, "items", KEYS)
    with engine.read() as txn:
        assert list(txn.scan("items", b"d", b"f", reverse=True)) == [(b"d\x00", b"v:d\x00"), (b"d", b"v:d")]


def test_scan_is_lazy(engine):
    """A scan reads as it is iterated: taking 20 entries of 50,000 (or walking
    them all) never holds more than a small part of them.  Measured by the
    memory allocated while scanning (tracemalloc's peak), not by time: the
    wall-clock comparison this test made before failed on a loaded machine."""
    many = [b"item%07d" % n for n in range(50_000)]
    for chunk in range(0, len(many), 25_000):
        fill(engine, "items", many[chunk:chunk + 25_000], b"x" * 100)
    whole = sum(len(key) + 100 for key in many)  # 5.5 MB; as Python objects, more than twice that
    with engine.read() as txn:
        tracemalloc.start()
        try:
            first = list(itertools.islice(txn.scan("items", reverse=True), 20))
            partial = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            everything = sum(1 for _ in txn.scan("items"))
            walk = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert everything == len(many)
    assert [k for k, _ in first] == many[:-21:-1]
    # Gathered in a list first, they would take 3 MB (the in-memory engine's: references) to over
    # 10 MB (copies).  Measured lazily: 1-14 kB for the 20, 6-480 kB for the walk (PostgreSQL's
    # batches grow to 1,024 rows).
    assert partial < whole / 100, (partial, whole)
    assert walk < whole / 5, (walk, whole)


def test_prefix_query_pattern(engine):
    """A Query's shape: one item collection out of many, newest first, Limit N."""
    fill(engine, "items", [b"user%03d#%05d" % (u, t) for u in range(30) for t in range(50)])
    with engine.read() as txn:
        latest = [k for k, _ in itertools.islice(txn.scan("items", b"user007#", b"user007$", reverse=True), 5)]
    assert latest == [b"user007#%05d" % t for t in range(49, 44, -1)]


# A key alphabet that makes collisions, shared prefixes and long-key groups likely.
_BASES = [b"", b"a", b"b" * 499, b"b" * 500, b"b" * 501, b"c" * 1000, b"c" * 993]
_keys = st.builds(
    lambda base, tail: base + tail,
    st.sampled_from(_BASES),
    st.binary(max_size=4).map(lambda raw: bytes(b % 4 * 85 for b in raw)),  # bytes 0, 85, 170, 255
)
_bounds = st.none() | _keys
_ops = st.lists(st.tuples(st.booleans(), _keys.filter(bool)), max_size=40)


@pytest.fixture
def model_engine(opener, tmp_path):
    """One engine for every example of the model test (hypothesis runs them
    all in one call of the test): each example empties it first.  An engine
    per example spent most of the test opening stores (a PostgreSQL schema
    and its tables each time)."""
    engine = opener(str(tmp_path), sync=False)
    yield engine
    engine.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, ranges=st.lists(st.tuples(_bounds, _bounds, st.booleans()), min_size=1, max_size=6))
def test_scan_matches_a_sorted_dict_model(model_engine, ops, ranges):
    engine = model_engine
    with engine.write() as txn:  # what the previous example left
        for key, _ in txn.scan("items"):
            txn.delete("items", key)
    model: dict[bytes, bytes] = {}

    def matches_the_model(txn):
        for key in model:
            assert txn.get("items", key) == model[key]
        for start, stop, reverse in ranges:
            expected = sorted(
                (k, v) for k, v in model.items()
                if (start is None or k >= start) and (stop is None or k < stop)
            )
            if reverse:
                expected.reverse()
            assert list(txn.scan("items", start, stop, reverse=reverse)) == expected

    with engine.write() as txn:
        for number, (is_put, key) in enumerate(ops):
            if is_put:
                value = b"%d" % number
                txn.put("items", key, value)
                model[key] = value
            else:
                assert txn.delete("items", key) == (model.pop(key, None) is not None)
        matches_the_model(txn)  # the transaction sees its own writes
    with engine.read() as txn:
        matches_the_model(txn)


# ------------------------------------------------------------ transactions


def test_write_sees_its_own_writes(engine):
    fill(engine, "items", [b"a", b"c"])
    with engine.write() as txn:
        txn.put("items", b"b", b"new")
        txn.delete("items", b"c")
        assert txn.get("items", b"b") == b"new"
        assert txn.get("items", b"c") is None
        assert [k for k, _ in txn.scan("items")] == [b"a", b"b"]
        assert [k for k, _ in txn.scan("items", reverse=True)] == [b"b", b"a"]


def test_exception_in_write_leaves_nothing(engine):
    fill(engine, "items", [b"kept"], b"original")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with engine.write() as txn:
            txn.put("items", b"new", b"1")
            txn.put("items", b"kept", b"changed")
            txn.put("items", LONGEST, b"long")
            txn.put("changes", b"c1", b"x")
            assert txn.delete("items", b"kept")
            raise Boom()
    with engine.read() as txn:
        assert list(txn.scan("items")) == [(b"kept", b"original")]
        assert list(txn.scan("changes")) == []


def test_many_logical_operations_commit_together(engine):
    """A WriteTxn carries several requests' writes (what group commit relies on)."""
    with engine.write() as txn:
        for request in range(25):
            txn.put("items", b"item%02d" % request, b"x")
            txn.put("changes", b"change%02d" % request, b"y")
    with engine.read() as txn:
        assert len(list(txn.scan("items"))) == 25
        assert len(list(txn.scan("changes"))) == 25


def test_delete_while_scanning_in_a_write(engine):
    """Pruning a log: delete each entry as the scan yields it."""
    tail = b"x" * 600  # long keys, all above b"c..."
    fill(engine, "changes", [b"c%03d" % n for n in range(300)] + [tail + b"%03d" % n for n in range(20)])
    with engine.write() as txn:
        removed = 0
        for key, _ in txn.scan("changes", None, b"c150"):
            assert txn.delete("changes", key)
            removed += 1
    assert removed == 150
    assert keys_of(engine, "changes")[0] == b"c150"
    with engine.write() as txn:
        for key, _ in txn.scan("changes", tail, reverse=True):
            assert txn.delete("changes", key)
    assert len(keys_of(engine, "changes")) == 150


def test_read_is_a_snapshot(engine):
    fill(engine, "items", [b"a", b"b"], b"1")
    with engine.read() as snapshot:
        iterator = snapshot.scan("items")
        assert next(iterator) == (b"a", b"1")
        with engine.write() as txn:
            txn.put("items", b"a", b"2")
            txn.delete("items", b"b")
            txn.put("items", b"c", b"2")
        assert snapshot.get("items", b"a") == b"1"
        assert snapshot.get("items", b"c") is None
        assert list(iterator) == [(b"b", b"1")]
        assert list(snapshot.scan("items")) == [(b"a", b"1"), (b"b", b"1")]
        with engine.read() as fresh:
            assert list(fresh.scan("items")) == [(b"a", b"2"), (b"c", b"2")]


def test_snapshot_holds_every_space_as_of_one_commit(engine):
    fill(engine, "items", [b"i"], b"1")
    fill(engine, "changes", [b"c"], b"1")
    with engine.read() as snapshot:
        with engine.write() as txn:
            txn.put("items", b"i", b"2")
            txn.put("changes", b"c", b"2")
            txn.put("meta", b"m", b"2")
        assert [snapshot.get(space, key) for space, key in (("items", b"i"), ("changes", b"c"), ("meta", b"m"))] \
            == [b"1", b"1", None]
    with engine.read() as fresh:
        assert [fresh.get(space, key) for space, key in (("items", b"i"), ("changes", b"c"), ("meta", b"m"))] \
            == [b"2", b"2", b"2"]


def test_reads_without_a_snapshot_see_committed_states(engine):
    """``read(snapshot=False)``: each statement sees a committed state (a
    later one than the previous statement's, on an engine without a
    snapshot); nothing uncommitted, whatever the engine."""
    fill(engine, "items", [b"a", b"b"], b"1")
    with engine.read(snapshot=False) as reads:
        assert reads.get("items", b"a") == b"1"
        with engine.write() as txn:
            txn.put("items", b"a", b"2")
        assert reads.get("items", b"a") in (b"1", b"2")  # the snapshot's, or the newer commit's
        assert [k for k, _ in reads.scan("items")] == [b"a", b"b"]
        assert reads.get("items", b"missing") is None
    with engine.write() as txn:
        txn.put("items", b"b", b"3")
        with engine.read(snapshot=False) as reads:
            assert reads.get("items", b"b") == b"1"  # not this transaction's uncommitted write
    with engine.read(snapshot=False) as reads:
        assert reads.get("items", b"b") == b"3"


def test_uncommitted_writes_are_invisible_to_readers(engine):
    fill(engine, "items", [b"a"], b"1")
    with engine.write() as txn:
        txn.put("items", b"a", b"2")
        with engine.read() as other:
            assert other.get("items", b"a") == b"1"


def test_writers_in_threads_serialise(engine):
    def work():
        for _ in range(50):
            increment(engine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.read() as txn:
        assert int(txn.get("meta", b"counter")) == 200


def single_writer(test):
    """Mark ``test`` as holding for engines with one writer at a time (LMDB,
    the in-memory engine), not for PostgreSQL's concurrent writers, whose
    own tests (``test_postgres_engine.py``) say what they guarantee instead."""
    return pytest.mark.parametrize("opener", ["lmdb", "memory"], indirect=True)(test)


@single_writer
def test_write_waits_for_another_threads_open_write(engine):
    entered, committed, seen = threading.Event(), threading.Event(), []

    def second_writer():
        entered.set()
        with engine.write() as txn:  # waits for the main thread's transaction
            seen.append(txn.get("items", b"first"))
            txn.put("items", b"second", b"2")
        committed.set()

    with engine.write() as txn:
        txn.put("items", b"first", b"1")
        thread = threading.Thread(target=second_writer)
        thread.start()
        assert entered.wait(10)
        assert not committed.wait(0.2)
    thread.join(10)
    assert seen == [b"1"]
    assert keys_of(engine, "items") == [b"first", b"second"]


def test_a_second_write_in_the_writing_thread_of_the_memory_engine_is_refused():
    """LMDB would deadlock; the in-memory engine says so instead."""
    engine = MemoryEngine()
    with engine.write() as txn:
        txn.put("items", b"a", b"1")
        with pytest.raises(RuntimeError, match="already has a write"):
            engine.write()
    fill(engine, "items", [b"b"])  # the writer lock was not lost
    assert keys_of(engine, "items") == [b"a", b"b"]


def test_closed_engine_refuses_work(opener, tmp_path):
    engine = opener(str(tmp_path))
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        engine.read()
    with pytest.raises(RuntimeError, match="closed"):
        engine.write()


def test_stats_are_a_dict(engine):
    fill(engine, "items", [b"a", b"b"])
    assert isinstance(engine.stats(), dict)


# ------------------------------------------------------------ durability and processes


def increment(engine) -> None:
    with engine.write() as txn:
        current = txn.get("meta", b"counter")
        txn.put("meta", b"counter", b"%d" % (int(current or b"0") + 1))


def _increment_in_child(opener, path, times, barrier) -> None:
    engine = opener(path)
    barrier.wait()
    for _ in range(times):
        increment(engine)
    engine.close()


@lmdb_only
def test_four_processes_increment_a_counter_exactly(opener, tmp_path):
    opener(str(tmp_path)).close()  # create once, as the server does before forking
    barrier = _fork.Barrier(4)
    children = [
        _fork.Process(target=_increment_in_child, args=(opener, str(tmp_path), 250, barrier))
        for _ in range(4)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    with opener(str(tmp_path)) as engine, engine.read() as txn:
        assert txn.get("meta", b"counter") == b"1000"


@lmdb_only
def test_data_survives_close_and_reopen(opener, tmp_path):
    with opener(str(tmp_path)) as engine:
        fill(engine, "items", [b"a", LONGEST])
        fill(engine, "changes", [b"c"])
        with engine.write() as txn:
            txn.delete("items", b"a")
    with opener(str(tmp_path)) as engine, engine.read() as txn:
        assert list(txn.scan("items")) == [(LONGEST, b"v:" + LONGEST)]
        assert txn.get("changes", b"c") == b"v:c"


def _use_inherited_engine(engine, queue) -> None:
    try:
        engine.read()
    except RuntimeError as exc:
        queue.put(str(exc))
    else:
        queue.put("no error")


@lmdb_only
def test_engine_inherited_through_fork_is_disabled(opener, tmp_path):
    engine = opener(str(tmp_path))
    try:
        queue = _fork.Queue()
        child = _fork.Process(target=_use_inherited_engine, args=(engine, queue))
        child.start()
        message = queue.get(timeout=30)
        child.join(30)
        assert "fork" in message
        fill(engine, "items", [b"parent-still-works"])
    finally:
        engine.close()


def _commit_and_acknowledge(opener, path, connection) -> None:
    engine = opener(path, sync=True)
    for number in itertools.count():
        key = b"ack%08d" % number
        with engine.write() as txn:
            txn.put("items", key, b"x" * 200)
            txn.put("items", LONG + key, b"long")  # keys in the overflow path too
        connection.send_bytes(key)  # sent only after write() returned: acknowledged


@lmdb_only
def test_acknowledged_writes_survive_kill_9(opener, tmp_path):
    opener(str(tmp_path)).close()
    receiver, sender = _fork.Pipe(duplex=False)
    child = _fork.Process(target=_commit_and_acknowledge, args=(opener, str(tmp_path), sender))
    child.start()
    sender.close()
    acknowledged = []
    deadline = time.monotonic() + 1.0
    while len(acknowledged) < 50 or time.monotonic() < deadline:
        if receiver.poll(10):
            acknowledged.append(receiver.recv_bytes())
        if time.monotonic() > deadline + 30:
            break
    os.kill(child.pid, signal.SIGKILL)  # mid-stream: most likely inside a commit
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    while receiver.poll(0):
        try:
            acknowledged.append(receiver.recv_bytes())
        except EOFError:
            break
    assert len(acknowledged) >= 50, len(acknowledged)
    with opener(str(tmp_path)) as engine, engine.read() as txn:
        for key in acknowledged:
            assert txn.get("items", key) == b"x" * 200
            assert txn.get("items", LONG + key) == b"long"
        stored = [k for k, _ in txn.scan("items", b"ack", b"acl")]
    # Commits are in order: what is stored is a prefix of the sequence that
    # includes every acknowledged write (at most one more, committed but not yet
    # acknowledged when the signal came).
    assert stored[: len(acknowledged)] == acknowledged
    assert len(stored) <= len(acknowledged) + 1
    with opener(str(tmp_path)) as engine:
        fill(engine, "items", [b"after-crash"])  # the writer lock was released


# ------------------------------------------------------------ group commit


def test_group_commits_its_writes_once_and_hides_them_until_then(engine):
    with engine.group():
        with engine.write() as txn:
            txn.put("items", b"a", b"1")
        with engine.write() as txn:
            txn.put("items", b"b", txn.get("items", b"a") + b"2")  # sees the group's earlier write
        with engine.read() as snapshot:
            assert snapshot.get("items", b"a") is None  # not visible before the group commits
    with engine.read() as snapshot:
        assert list(snapshot.scan("items")) == [(b"a", b"1"), (b"b", b"12")]


def test_grouped_write_failing_before_writing_leaves_no_trace(engine):
    with engine.group():
        with engine.write() as txn:
            txn.put("items", b"a", b"1")
        with pytest.raises(ValueError):
            with engine.write() as txn:
                txn.get("items", b"a")
                raise ValueError("condition failed")
    with engine.read() as snapshot:
        assert list(snapshot.scan("items")) == [(b"a", b"1")]


def test_grouped_write_failing_after_writing_poisons_the_group(engine):
    with pytest.raises(GroupPoisoned):
        with engine.group():
            with engine.write() as txn:
                txn.put("items", b"a", b"1")
            with pytest.raises(ValueError):
                with engine.write() as txn:
                    txn.put("items", b"b", b"2")
                    raise ValueError("half done")
    with engine.read() as snapshot:
        assert list(snapshot.scan("items")) == []


def test_exception_escaping_a_group_aborts_all_its_writes(engine):
    with pytest.raises(LookupError):
        with engine.group():
            with engine.write() as txn:
                txn.put("items", b"a", b"1")
            with engine.write() as txn:
                txn.put("changes", b"c", b"1")
            raise LookupError("the caller gave up")
    assert keys_of(engine, "items") == keys_of(engine, "changes") == []
    fill(engine, "items", [b"after"])  # the group released the writer
    assert keys_of(engine, "items") == [b"after"]


@single_writer
def test_group_keeps_other_threads_writes_out_until_it_commits(engine):
    committed, seen = threading.Event(), []

    def other_writer():
        with engine.write() as txn:
            seen.append(txn.get("items", b"grouped"))
            txn.put("items", b"other", b"2")
        committed.set()

    with engine.group():
        with engine.write() as txn:
            txn.put("items", b"grouped", b"1")
        thread = threading.Thread(target=other_writer)
        thread.start()
        assert not committed.wait(0.2)
    thread.join(10)
    assert seen == [b"1"]
    assert keys_of(engine, "items") == [b"grouped", b"other"]


def _kernel_populates_reads() -> bool:
    """Ask the kernel itself, on a page of our own, whether it knows
    madvise(MADV_POPULATE_READ): a prewarm that maps nothing on a kernel that
    does is a failure, not a reason to skip."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    page = mmap.mmap(-1, mmap.PAGESIZE)
    first = ctypes.c_char.from_buffer(page)
    try:
        return libc.madvise(ctypes.addressof(first), mmap.PAGESIZE, _MADV_POPULATE_READ) == 0
    finally:
        del first
        page.close()


@lmdb_only
def test_prewarm_maps_the_used_data_and_stops_when_asked(opener, tmp_path):
    engine = opener(str(tmp_path), sync=False)
    try:
        with engine.write() as txn:
            for i in range(2000):
                txn.put("items", b"k%06d" % i, os.urandom(300))
        used = engine.stats()["data_bytes"]
        assert engine.prewarm(lambda: True) == 0  # asked to stop before the first step
        if not _kernel_populates_reads():
            pytest.skip("this kernel has no madvise(MADV_POPULATE_READ) (Linux 5.14+)")
        warmed = engine.prewarm()
        assert warmed == min(used, os.path.getsize(tmp_path / "lmdb" / "data.mdb"))
    finally:
        engine.close()
    assert engine.prewarm() == 0  # closed: nothing mapped, nothing done
