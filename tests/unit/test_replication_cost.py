"""What a global table's local write pays to keep the version store, and
that the shortcuts taken to pay less keep it exact: the fold takes the
storage key the write path has, and a transaction that folds moves the
head's "folded up to" mark instead of reading and writing the indexer's
cursor (``shoal.api.changelog.fold_versions_with``)."""

from __future__ import annotations

import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, tables
from shoal.api.catalog import Catalog
from shoal.api.changelog import (
    CONSUMER_PREFIX,
    SEQ_KEY,
    _one_writer,
    consumer_cursor,
    consumers,
    head_position,
)
from shoal.api.common import storage_key
from shoal.replication import apply as replica_apply
from shoal.replication import control, versions

HOME, PEER = "us-east-1", "eu-west-1"
INDEXER_KEY = CONSUMER_PREFIX + versions.INDEXER.encode()


def _lmdb(tmp_path):
    from shoal.storage.lmdb_engine import LmdbEngine

    return LmdbEngine(str(tmp_path / "db"), sync=False, map_size=1 << 26)


@pytest.fixture(params=["memory", "lmdb"])
def ctx(request, engine, clock, tmp_path):
    """A region with a peer, over each engine that runs one writer at a time."""
    eng = engine if request.param == "memory" else _lmdb(tmp_path)
    control.configure(eng, control.Settings(HOME, {PEER: "http://127.0.0.1:1"}))
    yield Context(HOME, DEFAULT_ACCOUNT, eng, Catalog(eng), now=clock)
    control.unconfigure(eng)
    if eng is not engine:
        eng.close()


def _global(ctx, name="events"):
    """A table keyed by a string and a number (the viewer events' shape), with a replica."""
    tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "at", "AttributeType": "N"}]})
    tables.update_table(ctx, {"TableName": name, "ReplicaUpdates": [{"Create": {"RegionName": PEER}}]})
    with ctx.engine.write() as txn:  # what UpdateTable logged is indexed
        versions.index_local(txn, replica_apply.global_tables(txn, ctx.catalog))
    with ctx.engine.read() as txn:
        return ctx.catalog.get(txn, HOME, name)


def _put(ctx, pk, at="1", name="events"):
    items.put_item(ctx, {"TableName": name, "Item": {"pk": {"S": pk}, "at": {"N": at}}})


def _state(ctx, table, pk, at="1"):
    """(version, the indexer's cursor as read, its stored cursor, the head's mark, the head)."""
    with ctx.engine.read() as txn:
        version = versions.read_version(txn, storage_key(table, {"pk": {"S": pk}, "at": {"N": at}}))
        raw_head = bytes(txn.get("meta", SEQ_KEY))
        stored = txn.get("meta", INDEXER_KEY)
        mark = int.from_bytes(raw_head[16:24], "big") if len(raw_head) >= 24 else None
        return (version, consumer_cursor(txn, versions.INDEXER),
                None if stored is None else int.from_bytes(bytes(stored)[:8], "big"), mark, head_position(txn))


def test_the_fold_given_the_storage_key_stores_what_the_keys_give(ctx):
    """``fold_written`` with the storage key the write path has, and without
    it (the indexer's way: from the keys), writes one and the same version."""
    table = _global(ctx)
    keys = {"pk": {"S": "caf\u00e9\x00x"}, "at": {"N": "-12.50"}}
    skey = storage_key(table, keys)
    with ctx.engine.write() as txn:
        versions.fold_written(txn, table, keys, skey, 1000, f"{HOME}:aa", 7, False)
        given = versions.read_version(txn, skey)
        versions.forget_table(txn, table.prefix)
        assert versions.read_version(txn, skey) is None
        versions.fold_written(txn, table, keys, None, 1000, f"{HOME}:aa", 7, False)
        derived = versions.read_version(txn, skey)
    assert given == derived == ((1000, f"{HOME}:aa", 7), False)


def test_a_folding_write_moves_the_heads_mark_and_leaves_the_cursor(ctx):
    """The first write after the indexer caught up reads its cursor and
    keeps it in step; from then on each write folds by the head's mark
    alone, and the indexer's cursor as every reader sees it is the head."""
    table = _global(ctx)
    _put(ctx, "a")
    version, cursor, stored, mark, head = _state(ctx, table, "a")
    assert version[0][2] == head and (cursor, stored, mark) == (head, head, head)
    _put(ctx, "b")
    _put(ctx, "c")
    version, cursor, stored, mark, head = _state(ctx, table, "c")
    assert version[0][2] == head and not version[1]
    assert (cursor, stored, mark) == (head, head - 2, head)  # the cursor itself was not written again
    with ctx.engine.read() as txn:
        assert consumers(txn)[versions.INDEXER][0] == head
    # The indexer finds nothing left and folds nothing twice: a write folded
    # again would be bumped past its own version.
    with ctx.engine.write() as txn:
        assert versions.index_local(txn, replica_apply.global_tables(txn, ctx.catalog)) == head
        assert versions.bumped_times(txn, 0) == {}
    assert _state(ctx, table, "b")[0][0][2] == head - 1


def test_a_write_of_another_table_keeps_the_mark_where_it_was(ctx):
    """A plain table's write moves the head past the mark: the next global
    write is left to the indexer, which folds it later, in log order."""
    tables.create_table(ctx, {
        "TableName": "plain", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "at", "AttributeType": "N"}]})
    table = _global(ctx)
    _put(ctx, "a")
    _put(ctx, "a")
    folded_at = _state(ctx, table, "a")[4]
    _put(ctx, "p", name="plain")
    _put(ctx, "a", at="2")
    version, cursor, _, mark, head = _state(ctx, table, "a", at="2")
    assert version is None and cursor == mark == folded_at == head - 2
    with ctx.engine.write() as txn:
        versions.index_local(txn, replica_apply.global_tables(txn, ctx.catalog))
    version, cursor, _, _, head = _state(ctx, table, "a", at="2")
    assert version[0][2] == head and cursor == head
    _put(ctx, "a", at="3")  # caught up again: folded by its own transaction
    version, cursor, _, mark, head = _state(ctx, table, "a", at="3")
    assert version[0][2] == head and cursor == mark == head


def test_no_write_folds_once_the_indexer_is_unregistered(ctx):
    """``stop_indexing`` (no table replicates any more) takes the mark away
    with the cursor: a write of a table that still says it is global is not
    folded on the strength of a mark left behind."""
    table = _global(ctx)
    _put(ctx, "a")
    _put(ctx, "b")
    assert _state(ctx, table, "b")[3] == _state(ctx, table, "b")[4]
    with ctx.engine.write() as txn:
        versions.stop_indexing(txn)
    _put(ctx, "c")
    version, cursor, stored, mark, _ = _state(ctx, table, "c")
    assert (version, cursor, stored, mark) == (None, None, None, None)


def test_the_mark_is_trusted_only_where_one_writer_runs_at_a_time(engine, tmp_path):
    """Folding by the mark alone needs positions that are final when given:
    true of LMDB and the memory engine; PostgreSQL's concurrent writers are
    renumbered at commit, so there the indexer's cursor decides (read, and
    so locked, by the writer)."""
    lmdb_engine = _lmdb(tmp_path)
    try:
        for eng in (engine, lmdb_engine):
            with eng.write() as txn:
                assert _one_writer(txn)
    finally:
        lmdb_engine.close()


def test_over_postgresql_every_folding_write_keeps_the_cursor_in_step(engine, postgres_cluster, clock):
    """A head that carries a mark equal to its position, as a store moved
    from a data directory by ``shoal migrate`` has, does not let a
    PostgreSQL transaction fold on the mark alone: each folding write reads
    and moves the indexer's cursor, as before the mark existed."""
    import io

    from shoal.migrate_cli import migrate
    from shoal.storage.postgres_engine import PostgresEngine

    control.configure(engine, control.Settings(HOME, {PEER: "http://127.0.0.1:1"}))
    try:
        source = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
        table = _global(source)
        _put(source, "a")
        _put(source, "b")  # folded by the mark: the stored cursor is one behind it
        _, _, stored, mark, head = _state(source, table, "b")
        assert (stored, mark) == (head - 1, head)
    finally:
        control.unconfigure(engine)
    eng = PostgresEngine(postgres_cluster.create_database("marks"))
    control.configure(eng, control.Settings(HOME, {PEER: "http://127.0.0.1:1"}))
    try:
        assert migrate(engine, eng, "memory", 1000, out=io.StringIO()) == 0
        ctx = Context(HOME, DEFAULT_ACCOUNT, eng, Catalog(eng), now=clock)
        with eng.write() as txn:
            assert not _one_writer(txn)
        assert _state(ctx, table, "b")[1:] == (head, head - 1, head, head)
        for pk in ("c", "d"):
            _put(ctx, pk)
            version, cursor, stored, _, head = _state(ctx, table, pk)
            assert version[0][2] == head and cursor == stored == head
    finally:
        control.unconfigure(eng)
        eng.close()
