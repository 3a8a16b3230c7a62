"""The one write path every item mutation goes through.

``write_item`` stores or deletes an item, keeps the table's ItemCount and
TableSizeBytes, maintains the table's secondary indexes and, for tables with
local secondary indexes, the size of the item's collection (see
``shoal.api.indexes``), and appends a change record (keys, old image, new image, time)
to the ``changes`` space, all inside the caller's storage transaction: a change
is in the log exactly when it is in the table.  Streams, point-in-time recovery
and replication read that log.

The change log itself (its records, positions, consumers and pruning) is
``shoal.api.changelog``; ``WriteLog`` appends to it.

Stored item values are ``SIZE (4 bytes, big-endian) + JSON of the wire-form item``,
so reads can splice the JSON into a response and know the item's DynamoDB size
without parsing it.
"""

from __future__ import annotations

import struct

import orjson

from shoal.api.catalog import STATS_KEY, read_stats
from shoal.api.changelog import ChangeAppender
from shoal.api.indexes import add_collection_size, maintain

_SIZE = struct.Struct(">I")
_STATS = struct.Struct(">qq")  # the layout catalog.read_stats reads


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


class WriteLog(ChangeAppender):
    """Item writes in one transaction (all of a BatchWriteItem, say): the
    tables' counters and the change sequence they move are kept here and
    stored once, by ``finish()``, which must run before the transaction
    commits (if the transaction aborts, nothing of it stays)."""

    __slots__ = ("_stats",)

    def __init__(self, txn) -> None:
        self.txn = txn  # ChangeAppender.__init__'s, without the call: one WriteLog per write
        self._seq = None
        self._stats: dict[bytes, list[int]] = {}  # table prefix -> [count, size]

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

        self.item_change(table, keys, stored_json(old_raw) if old_raw is not None else None,
                         stored_json(new_raw) if new_raw is not None else None, now, user_identity)
        return new_raw

    def finish(self) -> None:
        """Store the counters and the sequence the writes moved."""
        txn = self.txn
        for prefix, (count, size) in self._stats.items():
            txn.put("meta", STATS_KEY(prefix), _STATS.pack(count, size))
        self._stats.clear()
        super().finish()
