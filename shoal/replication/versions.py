"""Item versions: what last-writer-wins compares.

A version is ``(time_ms, origin, origin_seq)``: the write's time, the
``REGION:NODE`` that made it and its position in that node's change log.
Tuples compare in that order, so two regions that hold the same versions
pick the same winner whatever order the writes reach them in.

The version of every item of a global table is kept in ``meta`` under
``repl/v/`` + the item's storage key (9 + 16 bytes + the key), with a flag
for a delete: a deleted item leaves its version behind (a tombstone), so an
older update that arrives later does not bring it back.  Tombstones are
forgotten after ``TOMBSTONE_RETENTION_S`` (``prune_tombstones``), found
through an index of their own, ``repl/d/`` + the delete's time (8 bytes) +
the storage key, kept with every version written (``_put``): pruning reads
the tombstones that are due and nothing else, where it read every item's
version (a whole table's under the writer's lock, once a minute).

A local write's version is its change record's time, origin and position.
It is folded into the store by the write's own transaction when the indexer
has read every earlier record (``changelog.fold_versions_with``: the log's
head carries a mark that says so, read with the head at no extra cost), and
otherwise by ``index_local`` later, in log order, before anything compares
against it (a replicated batch is applied, or a local change is sent).
Either way in log order, so that each write is folded exactly once: a write
folded twice would be bumped past its own version.  A local write whose
version would not be newer than the item's current one (a peer's clock
ahead of ours) is given the current time plus one millisecond, remembered
under ``repl/b/`` + its position, and sent to peers with that time: the
version every region ends with is the greatest one, and the local region
holds it too.
"""

from __future__ import annotations

import struct

import orjson

from shoal.api.changelog import (
    advance_consumer,
    change_time,
    consumer_cursor,
    decode_change,
    fold_versions_with,
    head_position,
    is_table_change,
    item_change_parts,
    read_raw_changes,
    register_consumer,
    unregister_consumer,
)
from shoal.api.common import storage_key

VERSION_PREFIX = b"repl/v/"
BUMP_PREFIX = b"repl/b/"
#: The tombstones by time: + the delete's time (u64 ms) + the item's storage key -> b"".
TOMBSTONE_PREFIX = b"repl/d/"
#: Present once every tombstone has its entry under TOMBSTONE_PREFIX (a store
#: written before there was one gets them from one full pass, ``prune_tombstones``).
TOMBSTONES_INDEXED = b"repl/d-indexed"
_DELETED_AT = 16  # the deleted flag's offset in a stored version
_VERSION = struct.Struct(">QQB")  # time ms, origin position, deleted; then the origin's text
_SEQ = struct.Struct(">Q")
#: The change-log consumer that folds local writes into the version store.
INDEXER = "replication-versions"
#: How long a deleted item's version is kept (DynamoDB does not say; a day
#: covers any peer that comes back within the change log's own retention).
TOMBSTONE_RETENTION_S = 24 * 3600

ZERO = (0, "", 0)  # older than any write: the version of an item copied without one


def version_key(skey: bytes) -> bytes:
    return VERSION_PREFIX + skey


def read_version(txn, skey: bytes) -> tuple[tuple[int, str, int], bool] | None:
    """((time, origin, seq), deleted) of an item, or None if never versioned."""
    raw = txn.get("meta", VERSION_PREFIX + skey)
    if raw is None:
        return None
    time_ms, seq, deleted = _VERSION.unpack_from(raw)
    return (time_ms, bytes(raw[_VERSION.size:]).decode(), seq), bool(deleted)


def write_version(txn, skey: bytes, version: tuple[int, str, int], deleted: bool) -> None:
    time_ms, origin, seq = version
    _put(txn, skey, _VERSION.pack(time_ms, seq, deleted) + origin.encode(), txn.get("meta", VERSION_PREFIX + skey))


def write_encoded_version(txn, skey: bytes, time_ms: int, origin: bytes, seq: int, deleted: bool,
                          previous) -> None:
    """``write_version`` with the origin already UTF-8 (a batch encodes each
    origin once), over ``previous``, the stored version read in this
    transaction (``stored``), or None."""
    _put(txn, skey, _VERSION.pack(time_ms, seq, deleted) + origin, previous)


def _put(txn, skey: bytes, value: bytes, previous) -> None:
    """Store an item's version over ``previous`` (its stored version, or
    None), keeping the tombstones' index: a tombstone replaced leaves it, a
    delete's version enters it."""
    if previous is not None and previous[_DELETED_AT]:
        txn.delete("meta", TOMBSTONE_PREFIX + bytes(previous[:8]) + skey)  # its time, as stored
    if value[_DELETED_AT]:
        txn.put("meta", TOMBSTONE_PREFIX + value[:8] + skey, b"")
    txn.put("meta", VERSION_PREFIX + skey, value)


def stored(txn, skey: bytes):
    """An item's stored version (``is_newer``'s and ``write_encoded_version``'s argument), or None."""
    return txn.get("meta", VERSION_PREFIX + skey)


def is_newer(raw, time_ms: int, origin: str, seq: int) -> bool:
    """Whether the write (time_ms, origin, seq) is newer than the stored
    version ``raw`` (True when there is none): ``read_version``'s
    comparison, with the stored origin decoded only when the times are equal."""
    if raw is None:
        return True
    current_ms, current_seq, _ = _VERSION.unpack_from(raw)
    if current_ms != time_ms:
        return current_ms < time_ms
    return (bytes(raw[_VERSION.size:]).decode(), current_seq) < (origin, seq)


def bumped_time(txn, seq: int) -> int | None:
    """The time a local write at ``seq`` was given by ``index_local``, if it was bumped."""
    raw = txn.get("meta", BUMP_PREFIX + _SEQ.pack(seq))
    return _SEQ.unpack(raw)[0] if raw is not None else None


def bumped_times(txn, first: int, last: int | None = None) -> dict[int, int]:
    """Position -> time of the local writes from ``first`` to ``last``
    (inclusive; None: to the end) that ``index_local`` bumped: one range
    read for a batch instead of a look-up per record (bumps are rare)."""
    stop = BUMP_PREFIX + _SEQ.pack(last + 1) if last is not None and last + 1 < 2**64 else BUMP_PREFIX[:-1] + b"0"
    return {_SEQ.unpack_from(key, len(BUMP_PREFIX))[0]: _SEQ.unpack(value)[0]
            for key, value in txn.scan("meta", BUMP_PREFIX + _SEQ.pack(first), stop)}


def start_indexing(txn) -> None:
    """Register the indexer (idempotent) at the log's head: writes made
    before a table became global have no version, which is older than any.
    A store with no version yet has every tombstone it will have indexed."""
    register_consumer(txn, INDEXER)
    if txn.get("meta", TOMBSTONES_INDEXED) is None:
        entries = iter(txn.scan("meta", VERSION_PREFIX, VERSION_PREFIX[:-1] + b"0"))
        empty = next(entries, None) is None
        getattr(entries, "close", lambda: None)()
        if empty:
            txn.put("meta", TOMBSTONES_INDEXED, b"")


def stop_indexing(txn) -> None:
    """Unregister the indexer (no table is global any more): writes made
    until one is again have no version, which is older than any."""
    unregister_consumer(txn, INDEXER)


def index_local(txn, tables_by_id: dict, limit: int | None = None, decoded: dict | None = None) -> int:
    """Fold the change records after the indexer's cursor into the version
    store, for the tables of ``tables_by_id`` (table id -> ``Table``), and
    move the cursor; returns the last position read.  Replicated records
    (``originSeq``) are skipped: applying them stored their version.  Each
    local write read here is kept in ``decoded`` (position -> (time, origin,
    keys JSON, new image JSON or None)) when given: the replication thread
    sends the same records next, as these very bytes.

    A record is sliced (``item_change_parts``), not decoded: only its keys
    are parsed, to find the item's storage key.  This runs once for every
    write of a global table, so a decode of each image here was a good part
    of what being a replica source cost."""
    cursor = consumer_cursor(txn, INDEXER)
    if cursor is None:
        return head_position(txn)
    last = cursor
    count = 0
    for seq, table_id, value in read_raw_changes(txn, cursor):
        if limit is not None and count >= limit:
            break
        last = seq
        count += 1
        table = tables_by_id.get(table_id)
        if table is None:
            continue
        change = local_change(value)
        if change is None:
            continue
        if decoded is not None:
            decoded[seq] = change
        ms, origin, keys_json, new_json = change
        fold_written(txn, table, orjson.loads(keys_json), None, ms, origin, seq, new_json is None)
    if last != cursor:
        advance_consumer(txn, INDEXER, last)
    return last


def fold_written(txn, table, keys: dict, skey: bytes | None, time_ms: int, origin: str, seq: int,
                 deleted: bool) -> None:
    """Fold one local write of ``table`` into the version store: its
    version, bumped past the item's current one if not newer.  Called in
    log order, by ``index_local`` or, for a write whose transaction starts
    with the indexer caught up, by the change log as it records the write
    (``changelog.fold_versions_with``): in the write's own transaction, so
    that the replication thread's commits do not carry a page of the version
    store per write.  ``skey`` is the item's storage key, or None to derive
    it from ``keys`` (the write path passes the one it wrote under)."""
    if skey is None:
        skey = storage_key(table, keys)
    key = VERSION_PREFIX + skey
    raw = txn.get("meta", key)
    if raw is not None:
        # the item's version is older unless its time is not (its origin is then compared as text)
        if _VERSION.unpack_from(raw)[0] >= time_ms:
            current_ms, current_seq, _ = _VERSION.unpack_from(raw)
            if (current_ms, bytes(raw[_VERSION.size:]).decode(), current_seq) >= (time_ms, origin, seq):
                time_ms = current_ms + 1
                txn.put("meta", BUMP_PREFIX + _SEQ.pack(seq), _SEQ.pack(time_ms))
        if raw[_DELETED_AT]:  # a tombstone replaced: out of the tombstones' index
            txn.delete("meta", TOMBSTONE_PREFIX + bytes(raw[:8]) + skey)
    if deleted:
        txn.put("meta", TOMBSTONE_PREFIX + _SEQ.pack(time_ms) + skey, b"")
    txn.put("meta", key, _VERSION.pack(time_ms, seq, deleted) + origin.encode())


fold_versions_with(INDEXER, fold_written)


def local_change(value) -> tuple[int, str, bytes, bytes | None] | None:
    """(time, origin, keys JSON, new image JSON or None) of a stored change
    record of an item written here, or None for a change of a table or one
    a peer made (what the version store and the sender pass over)."""
    value = bytes(value)
    parts = item_change_parts(value)
    if parts is not None:
        origin, replicated, keys_json, _old, new_json = parts
        return None if replicated else (change_time(value), origin.decode(), keys_json, new_json)
    ms, record = decode_change(value)  # a layout the slicing does not take
    if is_table_change(record) or "originSeq" in record:
        return None
    new = record["new"]
    return ms, record["origin"], orjson.dumps(record["keys"]), None if new is None else orjson.dumps(new)


def prune_tombstones(txn, now_ms: int, limit: int = 1000) -> int:
    """Forget up to ``limit`` delete versions older than the retention: the
    first entries of the tombstones' index, each checked against the version
    it names (a later write may have replaced it, a table's versions may
    have been forgotten; its entry goes either way).  A store whose
    tombstones were written without the index is read whole once, and its
    tombstones indexed."""
    cutoff = now_ms - int(TOMBSTONE_RETENTION_S * 1000)
    if txn.get("meta", TOMBSTONES_INDEXED) is None:
        _index_tombstones(txn)
    doomed, forgotten = [], 0
    for key, _ in txn.scan("meta", TOMBSTONE_PREFIX, TOMBSTONE_PREFIX + _SEQ.pack(max(0, cutoff))):
        doomed.append(bytes(key))
        if len(doomed) >= limit:
            break
    start = len(TOMBSTONE_PREFIX)
    for key in doomed:
        txn.delete("meta", key)
        skey = key[start + _SEQ.size:]
        raw = txn.get("meta", VERSION_PREFIX + skey)
        if raw is not None and raw[_DELETED_AT] and bytes(raw[:8]) == key[start:start + _SEQ.size]:
            txn.delete("meta", VERSION_PREFIX + skey)
            forgotten += 1
    return forgotten


def _index_tombstones(txn) -> None:
    """Give every tombstone its entry in the tombstones' index (a store from
    before the index: one pass over every version), and mark it done."""
    start = len(VERSION_PREFIX)
    entries = [TOMBSTONE_PREFIX + bytes(value[:8]) + bytes(key[start:])
               for key, value in txn.scan("meta", VERSION_PREFIX, VERSION_PREFIX[:-1] + b"0") if value[_DELETED_AT]]
    for entry in entries:
        txn.put("meta", entry, b"")
    txn.put("meta", TOMBSTONES_INDEXED, b"")


def forget_table(txn, prefix: bytes) -> None:
    """Drop the versions of a table's items (its replica was deleted here)."""
    start = VERSION_PREFIX + prefix
    found = [(bytes(k), bytes(v[:8]) if v[_DELETED_AT] else None)
             for k, v in txn.scan("meta", start, VERSION_PREFIX + _after(prefix))]
    for key, deleted_at in found:
        txn.delete("meta", key)
        if deleted_at is not None:  # a tombstone: its index entry too
            txn.delete("meta", TOMBSTONE_PREFIX + deleted_at + key[len(VERSION_PREFIX):])


def _after(prefix: bytes) -> bytes:
    return (int.from_bytes(prefix, "big") + 1).to_bytes(len(prefix), "big")
