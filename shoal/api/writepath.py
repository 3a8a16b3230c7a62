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

``BulkLoad`` is the other way in, for a table a restore or an import is
filling while it is CREATING: the same items, index entries, counters and
item-collection sizes, but one change record per transaction (``LOAD_OP``)
instead of one per item, and no re-encoding of items already in stored form.

Stored item values are ``SIZE (4 bytes, big-endian) + JSON of the wire-form item``,
so reads can splice the JSON into a response and know the item's DynamoDB size
without parsing it.
"""

from __future__ import annotations

import struct

import orjson

from shoal.api.catalog import INDEX_STATS_KEY, STATS_KEY, read_index_stats, read_stats
from shoal.api.changelog import LOAD_OP, ChangeAppender
from shoal.api.indexes import (
    add_collection_size,
    collection_key,
    entry_key,
    entry_size,
    maintain,
    projected_entry,
    table_suffix_of,
)

_SIZE = struct.Struct(">I")
_STATS = struct.Struct(">qq")  # the layout catalog.read_stats reads


def encode_stored(item: dict, size: int) -> bytes:
    """The stored form of an item whose DynamoDB size is ``size``."""
    return _SIZE.pack(size) + orjson.dumps(item)


def encode_stored_json(item_json, size: int) -> bytes:
    """The stored form of an item already in JSON (a backup's, the log's)."""
    return _SIZE.pack(size) + item_json


def stored_size(raw: bytes) -> int:
    return _SIZE.unpack_from(raw)[0]


def stored_json(raw: bytes) -> memoryview:
    """The JSON of a stored item, without copying."""
    return memoryview(raw)[4:]


def stored_item(raw: bytes) -> dict:
    return orjson.loads(memoryview(raw)[4:])


#: Contributor insights' view of index writes (``shoal.metrics.insights``): None
#: unless a request that writes items runs while some GSI has insights on; then
#: called as ``index_watch(table, old_item, new_item, written)`` for each item
#: write that changed a GSI entry, ``written`` naming those GSIs.  Read once per
#: write to a table with indexes: the whole cost of the hook when it is None.
index_watch = None


def _maintain_watched(txn, table, storage_key, old_item, old_raw, new_item, new_raw, index_units) -> int:
    """``maintain``, telling ``index_watch`` which GSIs the write changed: those
    it charged write units to (an entry put or deleted), as maintain decides it."""
    if index_units is None:
        index_units = {}
    before = index_units.get("GlobalSecondaryIndexes")
    before = dict(before) if before else None  # the units of the caller's earlier writes (a batch's)
    local_delta = maintain(txn, table, storage_key, old_item, old_raw, new_item, new_raw, index_units)
    written = index_units.get("GlobalSecondaryIndexes")
    if written and before is not None:
        written = [name for name, units in written.items() if units != before.get(name)]
    watch = index_watch
    if written and watch is not None:
        watch(table, old_item, new_item, written)
    return local_delta


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
            if index_watch is None:
                local_delta = maintain(txn, table, storage_key, old_item, old_raw, new_item, new_raw, index_units)
            else:  # contributor insights are on for some table: the GSIs this write changes are counted
                local_delta = _maintain_watched(txn, table, storage_key, old_item, old_raw, new_item, new_raw,
                                                index_units)
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
                         stored_json(new_raw) if new_raw is not None else None, now, user_identity, storage_key)
        return new_raw

    def finish(self) -> None:
        """Store the counters and the sequence the writes moved."""
        txn = self.txn
        for prefix, (count, size) in self._stats.items():
            txn.put("meta", STATS_KEY(prefix), _STATS.pack(count, size))
        self._stats.clear()
        super().finish()


class BulkLoad:
    """Items put, in one transaction, into a table that a restore or an
    import is loading (CREATING): each item's stored value and its index
    entries are written as ``WriteLog.write_item`` writes them, but the
    table's and its indexes' counters and the item-collection sizes are
    added up and stored once, by ``finish()``, with one change record for
    the whole transaction (``changelog.LOAD_OP``, its item count).

    Nothing consumes per-item records of such a table: it has no stream
    (DynamoDB emits no stream records for the items a restore or an import
    creates; a stream is set up on the table afterwards) and point-in-time
    recovery cannot be switched on until it is ACTIVE (``pitr``), so its
    window starts after the load.  An item whose key is already stored (a
    key an import meets twice keeps the last item, as in DynamoDB) replaces
    it, its old index entries removed."""

    __slots__ = ("txn", "table", "count", "_size", "_indexes", "_index_stats", "_collections")

    def __init__(self, txn, table) -> None:
        self.txn = txn
        self.table = table
        self.count = 0  # items put
        self._size = [0, 0]  # the change of the table's item count and size
        self._indexes = [(index, [0, 0]) for index in table.indexes]  # and of each index's
        self._collections: dict[bytes, list] = {}  # collection key -> [keys, size change]

    def put(self, storage_key: bytes, raw: bytes, item: dict | None = None) -> None:
        """Put the item stored as ``raw`` (``encode_stored``) under
        ``storage_key``; ``item`` is its wire form, decoded from ``raw`` if
        not given and the table's indexes need it.  A new item whose index
        key attribute has the wrong type raises ValidationException (the
        transaction then aborts)."""
        txn, table = self.txn, self.table
        size = _SIZE.unpack_from(raw)[0]
        old_raw = txn.get("items", storage_key)
        local = 0
        if table.indexes:
            if item is None:
                item = orjson.loads(memoryview(raw)[4:])
            if old_raw is not None:
                local = maintain(txn, table, storage_key, stored_item(old_raw), old_raw, item, raw)
            else:
                suffix = table_suffix_of(table, storage_key)
                entries = [(index, stats, entry_key(table, index, item, suffix, True))
                           for index, stats in self._indexes]  # all checked before any is written
                for index, stats, key in entries:
                    if key is not None:
                        value = projected_entry(index, item, raw)
                        txn.put("indexes", key, value)
                        stats[0] += 1
                        stats[1] += entry_size(value)
                        if index.local:
                            local += entry_size(value)
        txn.put("items", storage_key, raw)
        totals = self._size
        totals[0] += 1
        totals[1] += size
        if old_raw is not None:
            totals[0] -= 1
            totals[1] -= _SIZE.unpack_from(old_raw)[0]
        if table.has_local_indexes:
            if item is None:
                item = orjson.loads(memoryview(raw)[4:])
            keys = {table.hash_key: item[table.hash_key]}
            collection = self._collections.setdefault(collection_key(table, keys), [keys, 0])
            collection[1] += local + size - (_SIZE.unpack_from(old_raw)[0] if old_raw is not None else 0)
        self.count += 1

    def finish(self, now: float | None = None) -> None:
        """Store the counters and sizes the items moved, and the change
        record of the load; must run before the transaction commits."""
        if not self.count:
            return
        txn, table = self.txn, self.table
        count, size = read_stats(txn, table.prefix)
        txn.put("meta", STATS_KEY(table.prefix), _STATS.pack(count + self._size[0], size + self._size[1]))
        for index, (entries, entry_bytes) in self._indexes:
            if entries or entry_bytes:
                old_count, old_size = read_index_stats(txn, table.prefix, index.number)
                txn.put("meta", INDEX_STATS_KEY(table.prefix, index.number),
                        _STATS.pack(old_count + entries, old_size + entry_bytes))
        for keys, delta in self._collections.values():
            add_collection_size(txn, table, keys, delta)
        log = ChangeAppender(txn)
        log.table_change(table, LOAD_OP, {"ItemCount": self.count}, now)
        log.finish()
        self.count = 0
        self._size = [0, 0]
        self._indexes = [(index, [0, 0]) for index in table.indexes]
        self._collections.clear()
