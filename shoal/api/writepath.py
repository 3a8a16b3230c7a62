"""The one write path every item mutation goes through.

``write_item`` stores or deletes an item, keeps the table's ItemCount and
TableSizeBytes, maintains the table's secondary indexes and, for tables with
local secondary indexes, the size of the item's collection (see
``shoal.api.indexes``), and appends a change record (keys, old image, new image, time)
to the ``changes`` space, all inside the caller's storage transaction: a change
is in the log exactly when it is in the table.  Streams, point-in-time recovery
and replication read that log.

Stored item values are ``SIZE (4 bytes, big-endian) + JSON of the wire-form item``,
so reads can splice the JSON into a response and know the item's DynamoDB size
without parsing it.
"""

from __future__ import annotations

import struct
import time

import orjson

from shoal.api.catalog import STATS_KEY, read_stats
from shoal.api.indexes import add_collection_size, maintain

_SIZE = struct.Struct(">I")
_STATS = struct.Struct(">qq")  # the layout catalog.read_stats reads
_SEQ = struct.Struct(">Q")
_TIME = struct.Struct(">Q")

SEQ_KEY = b"changes/seq"
DEFAULT_RETENTION_S = 24 * 3600


def encode_stored(item: dict, size: int) -> bytes:
    """The stored form of an item whose DynamoDB size is ``size``."""
    return _SIZE.pack(size) + orjson.dumps(item)


def stored_size(raw: bytes) -> int:
    return _SIZE.unpack_from(raw)[0]


def stored_json(raw: bytes) -> memoryview:
    """The JSON of a stored item, without copying."""
    return memoryview(raw)[4:]


def stored_item(raw: bytes) -> dict:
    return orjson.loads(memoryview(raw)[4:])


def write_item(txn, *args, **kwargs) -> bytes | None:
    """Put or delete one item in ``txn``, counters and change sequence
    included: ``WriteLog.write_item`` for a single write."""
    log = WriteLog(txn)
    new_raw = log.write_item(*args, **kwargs)
    log.finish()
    return new_raw


class WriteLog:
    """Item writes in one transaction (all of a BatchWriteItem, say): the
    tables' counters and the change sequence they move are kept here and
    stored once, by ``finish()``, which must run before the transaction
    commits (if the transaction aborts, nothing of it stays)."""

    __slots__ = ("txn", "_stats", "_seq")

    def __init__(self, txn) -> None:
        self.txn = txn
        self._stats: dict[bytes, list[int]] = {}  # table prefix -> [count, size]
        self._seq: int | None = None

    def write_item(
        self,
        table,
        storage_key: bytes,
        keys: dict,
        old_raw: bytes | None,
        new_item: dict | None,
        new_size: int = 0,
        *,
        now: float | None = None,
        user_identity: dict | None = None,
        index_units: dict | None = None,
    ) -> bytes | None:
        """Put (``new_item``) or delete (``new_item is None``) one item.

        ``old_raw`` is the stored value read in this same transaction (None if
        the item did not exist).  Returns the new stored value.  A write that
        changes nothing (deleting a missing item) records nothing.  A new item
        whose index key attribute has the wrong type raises
        ValidationException (the caller's transaction then aborts).
        ``index_units``, if given, receives the write units each secondary
        index consumed, as ``{"GlobalSecondaryIndexes": {name: units},
        "LocalSecondaryIndexes": {...}}``.
        """
        if new_item is None and old_raw is None:
            return None
        txn = self.txn
        new_raw = encode_stored(new_item, new_size) if new_item is not None else None
        if table.indexes:
            old_item = stored_item(old_raw) if old_raw is not None else None
            local_delta = maintain(txn, table, storage_key, old_item, old_raw, new_item, new_raw, index_units)
            if table.has_local_indexes:
                old_size = stored_size(old_raw) if old_raw is not None else 0
                add_collection_size(txn, table, keys, local_delta + (new_size if new_raw else 0) - old_size)
        if new_raw is not None:
            txn.put("items", storage_key, new_raw)
        else:
            txn.delete("items", storage_key)

        stats = self._stats.get(table.prefix)
        if stats is None:
            stats = self._stats[table.prefix] = list(read_stats(txn, table.prefix))
        if old_raw is not None:
            stats[0] -= 1
            stats[1] -= stored_size(old_raw)
        if new_raw is not None:
            stats[0] += 1
            stats[1] += new_size

        self._append_change(table, keys, old_raw, new_raw, now, user_identity)
        return new_raw

    def _append_change(self, table, keys, old_raw, new_raw, now, user_identity) -> None:
        seq = self._seq
        if seq is None:
            raw_seq = self.txn.get("meta", SEQ_KEY)
            seq = _SEQ.unpack(raw_seq)[0] if raw_seq else 0
        seq = self._seq = seq + 1
        record = {
            "table": table.table_id,
            "keys": keys,
            "old": orjson.Fragment(bytes(stored_json(old_raw))) if old_raw is not None else None,
            "new": orjson.Fragment(bytes(stored_json(new_raw))) if new_raw is not None else None,
        }
        if user_identity is not None:
            record["userIdentity"] = user_identity
        stamp = int((now if now is not None else time.time()) * 1000)
        self.txn.put("changes", _SEQ.pack(seq), _TIME.pack(stamp) + orjson.dumps(record))

    def finish(self) -> None:
        """Store the counters and the sequence the writes moved."""
        txn = self.txn
        for prefix, (count, size) in self._stats.items():
            txn.put("meta", STATS_KEY(prefix), _STATS.pack(count, size))
        self._stats.clear()
        if self._seq is not None:
            txn.put("meta", SEQ_KEY, _SEQ.pack(self._seq))
            self._seq = None


_TABLE_FIELD = b'{"table":"'
_TABLE_ID_END = len(_TIME.pack(0)) + len(_TABLE_FIELD) + 36  # a table id is a 36-character UUID


def read_raw_changes(txn, after_seq: int = 0):
    """Yield (seq, table_id, stored value) for change records after
    ``after_seq``, without decoding them: the table id is read from the
    record's first field (``_append_change`` writes it first), so a reader
    interested in a few tables decodes only their records (``decode_change``)."""
    start = _TIME.size + len(_TABLE_FIELD)
    for key, value in txn.scan("changes", _SEQ.pack(after_seq + 1)):
        if value[_TIME.size:start] == _TABLE_FIELD:
            table_id = bytes(value[start:_TABLE_ID_END]).decode()
        else:  # not written by this module's format: decode to find out
            table_id = orjson.loads(memoryview(value)[_TIME.size:])["table"]
        yield _SEQ.unpack(key)[0], table_id, value


def decode_change(value) -> tuple[int, dict]:
    """(time_ms, record) of a stored change value from ``read_raw_changes``."""
    return _TIME.unpack_from(value)[0], orjson.loads(memoryview(value)[_TIME.size:])


def prune_changes(txn, retention_s: float, now: float, limit: int = 1000) -> int:
    """Delete up to ``limit`` change records older than the retention."""
    cutoff = int((now - retention_s) * 1000)
    doomed = []
    for key, value in txn.scan("changes"):
        if _TIME.unpack_from(value)[0] >= cutoff or len(doomed) >= limit:
            break
        doomed.append(key)
    for key in doomed:
        txn.delete("changes", key)
    return len(doomed)
