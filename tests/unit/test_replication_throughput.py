"""The replication path under load (issue 18's 5,000 events/s): a round's
batches go to every peer before any answer is read, and a received batch is
applied with the work per record kept small, without changing what is
applied (last writer wins, exactly once, the change log's record)."""

from __future__ import annotations

import threading

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, tables
from shoal.api.catalog import Catalog
from shoal.api.changelog import decode_change, read_raw_changes
from shoal.replication import apply as replica_apply
from shoal.api.common import storage_key
from shoal.replication import control, node, versions

HOME, PEER, OTHER = "us-east-1", "eu-west-1", "ap-south-1"


class _BarrierPeers:
    """Two real HTTP servers standing for two peer regions, each of which
    answers an ApplyChanges only once both have received one (or after
    ``wait_s``, with a 500): a sender that waited for one peer's answer
    before sending to the other would get the 500."""

    def __init__(self, wait_s: float = 10.0, parties: int = 2) -> None:
        import http.server

        barrier = threading.Barrier(parties, timeout=wait_s)
        got = self.got = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                target = self.headers["X-Amz-Target"]
                status = 200
                if target.endswith(".ApplyChanges"):
                    got.append((self.server.server_address[1], orjson.loads(body)))
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        status = 500
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.urls = [f"http://127.0.0.1:{server.server_address[1]}" for server in self.servers]

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _events(ctx) -> None:
    tables.create_table(ctx, {
        "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    tables.update_table(ctx, {"TableName": "events", "ReplicaUpdates": [
        {"Create": {"RegionName": PEER}}, {"Create": {"RegionName": OTHER}}]})
    from shoal.api.catalog import update_description

    def active(desc):
        for entry in desc["Replicas"]:
            entry["ReplicaStatus"] = "ACTIVE"
        desc["TableStatus"] = "ACTIVE"

    with ctx.engine.write() as txn:  # both copies made: changes go
        table = ctx.catalog.get(txn, HOME, "events")
        update_description(txn, HOME, "events", table.table_id, active)
        for key, _ in control.pending_tasks(txn):
            txn.delete("meta", key)
        for region in (PEER, OTHER):
            txn.delete("meta", replica_apply.hold_key(region, table.table_id))


def test_a_round_sends_to_every_peer_before_it_reads_an_answer(engine):
    """Each peer answers only once the other has its batch too: a round that
    sent to one peer and waited for its durable answer before sending to the
    next would be answered 500 and move no cursor."""
    peers = _BarrierPeers()
    settings = control.Settings(HOME, {PEER: peers.urls[0], OTHER: peers.urls[1]})
    control.configure(engine, settings)
    ctx = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine))
    try:
        _events(ctx)
        for pk in ("a", "b", "c"):
            items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": pk}}})
        sender = node.Replicator(engine, ctx.catalog, settings)
        sender.run_once()
        sender.flush()
        assert len(peers.got) == 2
        for _, body in peers.got:
            assert [r["keys"]["pk"]["S"] for r in body["Records"]] == ["a", "b", "c"]
        assert all(peer.failures == 0 for peer in sender.peers.values())
        with engine.read() as txn:
            table = ctx.catalog.get(txn, HOME, "events")
            head = max(seq for seq, _, _ in read_raw_changes(txn, 0))
            assert replica_apply.cursor_of(txn, PEER, table.table_id) == head
            assert replica_apply.cursor_of(txn, OTHER, table.table_id) == head
        sender.close()
    finally:
        control.unconfigure(engine)
        peers.close()


def test_a_peer_that_fails_does_not_hold_the_other(engine):
    """One peer unreachable: the other is sent its batch and its cursor
    moves; the unreachable one's stays, its records kept."""
    peers = _BarrierPeers(parties=1)  # no other peer to wait for: the live one answers at once
    settings = control.Settings(HOME, {PEER: "http://127.0.0.1:1", OTHER: peers.urls[1]})
    control.configure(engine, settings)
    ctx = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine))
    try:
        _events(ctx)
        items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "a"}}})
        sender = node.Replicator(engine, ctx.catalog, settings)
        with engine.read() as txn:
            table = ctx.catalog.get(txn, HOME, "events")
            before = replica_apply.cursor_of(txn, PEER, table.table_id)
        sender.run_once()
        sender.flush()
        assert sender.peers[PEER].failures == 1 and sender.peers[OTHER].failures == 0
        assert [body["Records"][0]["keys"] for _, body in peers.got] == [{"pk": {"S": "a"}}]
        with engine.read() as txn:
            assert replica_apply.cursor_of(txn, PEER, table.table_id) == before
            assert replica_apply.cursor_of(txn, OTHER, table.table_id) > before
        sender.close()
    finally:
        control.unconfigure(engine)
        peers.close()


@pytest.fixture
def receiver(engine, clock):
    control.configure(engine, control.Settings(PEER, {HOME: "http://127.0.0.1:1"}))
    ctx = Context(PEER, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    tables.create_table(ctx, {
        "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    with engine.write() as txn:
        table = ctx.catalog.get(txn, PEER, "events")
        replica_apply.mark_global(txn, table)
    yield ctx, table
    control.unconfigure(engine)


def _record(time_ms, seq, pk, origin=f"{HOME}:0011223344556677", **attrs):
    new = {"pk": {"S": pk}, **{k: {"S": v} for k, v in attrs.items()}} if not attrs.get("gone") else None
    return {"time": time_ms, "origin": origin, "seq": seq, "keys": {"pk": {"S": pk}}, "new": new}


def _log(engine, table_id):
    with engine.read() as txn:
        return [decode_change(value)[1] for _, tid, value in read_raw_changes(txn, 0) if tid == table_id]


def _apply(ctx, table, *records) -> int:
    with ctx.engine.write() as txn:
        return replica_apply.apply_changes(txn, ctx.catalog, table, list(records), ctx.now())


def test_an_applied_writes_record_is_the_object_the_change_log_describes(receiver):
    """The record a replicated write leaves, joined from its pieces, is byte
    for byte the JSON of the object ``item_change_parts`` slices (a put, then
    an update with its image before, then a delete), keys, images and origin
    as they came (an origin and a value that JSON must escape included)."""
    ctx, table = receiver
    origin = f'{HOME}:00112233"\u00e9'
    assert _apply(ctx, table, _record(1000, 1, "a", origin, note="caf\u00e9 \"x\""),
                  _record(2000, 2, "a", origin, note="two"), _record(3000, 3, "a", origin, gone=True)) == 3
    with ctx.engine.read() as txn:
        stored = [bytes(value[8:]) for _, tid, value in read_raw_changes(txn, 0) if tid == table.table_id]
    images = [None, {"pk": {"S": "a"}, "note": {"S": "caf\u00e9 \"x\""}}, {"pk": {"S": "a"}, "note": {"S": "two"}},
              None]
    expected = [orjson.dumps({"table": table.table_id, "origin": origin, "originSeq": seq, "originTime": seq * 1000,
                              "keys": {"pk": {"S": "a"}}, "old": images[seq - 1], "new": images[seq]})
                for seq in (1, 2, 3)]
    assert stored[-3:] == expected


def test_last_writer_wins_and_a_batch_sent_again_is_applied_once(receiver):
    """A write older than the item's version, or the same write again (a
    batch resent after the sender crashed before storing its cursor), is
    passed over; equal times are ordered by origin ("ap-..." before
    "us-..."), then by position."""
    ctx, table = receiver
    east, south = f"{HOME}:aa", f"{OTHER}:bb"

    def value():
        answer = items.get_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "k"}}, "ConsistentRead": True})
        return (orjson.loads(answer) if isinstance(answer, bytes) else answer)["Item"]["v"]["S"]

    assert _apply(ctx, table, _record(5000, 7, "k", south, v="south")) == 1
    assert _apply(ctx, table, _record(5000, 7, "k", south, v="again"), _record(4999, 9, "k", east, v="older"),
                  _record(5000, 6, "k", south, v="before")) == 0
    assert value() == "south"
    assert _apply(ctx, table, _record(5000, 1, "k", east, v="east")) == 1  # same time, a greater origin
    assert _apply(ctx, table, _record(5000, 8, "k", south, v="late")) == 0
    assert value() == "east"
    assert [r["originSeq"] for r in _log(ctx.engine, table.table_id) if "originSeq" in r] == [7, 1]


class _CountingTxn:
    """A write transaction that counts the entries its scans yield."""

    def __init__(self, txn) -> None:
        self.txn, self.scanned = txn, 0

    def scan(self, *args, **kwargs):
        for entry in self.txn.scan(*args, **kwargs):
            self.scanned += 1
            yield entry

    def __getattr__(self, name):
        return getattr(self.txn, name)


def _tombstones(engine) -> list[tuple[int, bytes]]:
    start = len(versions.TOMBSTONE_PREFIX)
    with engine.read() as txn:
        return [(int.from_bytes(key[start:start + 8], "big"), bytes(key[start + 8:]))
                for key, _ in txn.scan("meta", versions.TOMBSTONE_PREFIX, versions.TOMBSTONE_PREFIX[:-1] + b"0")]


def test_tombstones_are_indexed_by_time_and_pruning_reads_only_those_due(receiver):
    """A delete's version enters the tombstones' index, a later write over it
    leaves it; pruning forgets the tombstones past the retention and reads
    nothing else (not the versions of the items that live)."""
    ctx, table = receiver
    east = f"{HOME}:aa"
    _apply(ctx, table, *(_record(1000 + i, i + 1, f"live{i}", east, v="x") for i in range(50)))
    _apply(ctx, table, _record(2000, 100, "gone", east, gone=True), _record(2000, 101, "back", east, gone=True),
           _record(9000, 102, "late", east, gone=True))
    with ctx.engine.read() as txn:
        key = {pk: storage_key(table, {"pk": {"S": pk}}) for pk in ("gone", "back", "late")}
    assert _tombstones(ctx.engine) == sorted([(2000, key["gone"]), (2000, key["back"]), (9000, key["late"])])
    _apply(ctx, table, _record(3000, 103, "back", east, v="again"))  # a put over a tombstone
    assert _tombstones(ctx.engine) == [(2000, key["gone"]), (9000, key["late"])]
    retention = int(versions.TOMBSTONE_RETENTION_S * 1000)
    with ctx.engine.write() as txn:
        counting = _CountingTxn(txn)
        assert versions.prune_tombstones(counting, 2000 + retention + 1) == 1
        assert counting.scanned == 1  # the one due entry: no live item's version read
    assert _tombstones(ctx.engine) == [(9000, key["late"])]
    with ctx.engine.read() as txn:
        assert versions.read_version(txn, key["gone"]) is None
        assert versions.read_version(txn, key["back"]) == ((3000, east, 103), False)
        assert versions.read_version(txn, key["late"]) == ((9000, east, 102), True)
    # an older update of the item whose tombstone is kept does not bring it back
    assert _apply(ctx, table, _record(8999, 104, "late", east, v="older")) == 0


def test_a_store_from_before_the_index_is_indexed_by_its_first_pruning(receiver):
    """Tombstones written without index entries (an older Shoal) are found
    by one pass over every version, then pruned as any."""
    ctx, table = receiver
    east = f"{HOME}:aa"
    _apply(ctx, table, _record(1000, 1, "old", east, gone=True), _record(5000, 2, "new", east, gone=True),
           _record(1000, 3, "live", east, v="x"))
    with ctx.engine.write() as txn:  # as an older Shoal left them
        for key, _ in list(txn.scan("meta", versions.TOMBSTONE_PREFIX, versions.TOMBSTONE_PREFIX[:-1] + b"0")):
            txn.delete("meta", bytes(key))
        txn.delete("meta", versions.TOMBSTONES_INDEXED)
    assert _tombstones(ctx.engine) == []
    retention = int(versions.TOMBSTONE_RETENTION_S * 1000)
    with ctx.engine.write() as txn:
        assert versions.prune_tombstones(txn, 1000 + retention + 1) == 1
    with ctx.engine.read() as txn:
        assert txn.get("meta", versions.TOMBSTONES_INDEXED) is not None
        assert versions.read_version(txn, storage_key(table, {"pk": {"S": "old"}})) is None
    assert [t for t, _ in _tombstones(ctx.engine)] == [5000]


def test_a_local_delete_folded_enters_the_index_and_forgetting_a_table_empties_it(engine, clock):
    """The source's own deletes (folded in their own transaction) are
    indexed too; a replica deleted here takes its tombstones' entries with
    its versions."""
    control.configure(engine, control.Settings(HOME, {PEER: "http://127.0.0.1:1"}))
    ctx = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    try:
        tables.create_table(ctx, {
            "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
        tables.update_table(ctx, {"TableName": "events", "ReplicaUpdates": [{"Create": {"RegionName": PEER}}]})
        def fold():  # what the replication thread does, if the writes' own transactions have not
            with engine.write() as txn:
                versions.index_local(txn, replica_apply.global_tables(txn, ctx.catalog))

        items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "a"}}})
        items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "a"}}})
        fold()
        with engine.read() as txn:
            table = ctx.catalog.get(txn, HOME, "events")
            skey = storage_key(table, {"pk": {"S": "a"}})
            (time_ms, _, _), deleted = versions.read_version(txn, skey)
        assert deleted and _tombstones(engine) == [(time_ms, skey)]
        items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "a"}}})
        fold()
        assert _tombstones(engine) == []
        items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "a"}}})
        fold()
        assert len(_tombstones(engine)) == 1
        with engine.write() as txn:
            versions.forget_table(txn, table.prefix)
        assert _tombstones(engine) == []
    finally:
        control.unconfigure(engine)


def test_an_answer_left_unread_is_never_taken_for_the_next_requests():
    """A round that stopped between its sends and its reads leaves an answer
    in a kept connection: the next request goes on a fresh connection, so
    that its answer (a peer's durable acknowledgement) is its own."""
    import socket

    from tests.unit.test_replication_transport import _client, _ok, _Scripted

    listener = socket.create_server(("127.0.0.1", 0))
    connections = []

    def serve(conn):  # answers each request with its own body, {"n": N}
        with conn:
            try:
                while (request := _Scripted._read(conn)) is not None:
                    conn.sendall(_ok(request.partition(b"\r\n\r\n")[2]))
            except OSError:  # the client closed this connection first
                pass

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    client = _client(f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        client.begin("ApplyChanges", body=b'{"n":1}')
        client.begin("ApplyChanges", body=b'{"n":2}')  # the first's answer never read
        assert client.end() == {"n": 2}
    finally:
        client.close()
        listener.close()
    assert len(connections) == 2
