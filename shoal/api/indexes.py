"""Secondary index entries: their keys, their maintenance on every write,
item-collection sizes, and the background work that builds and drops GSIs.

An index entry lives in the ``indexes`` space under::

    table prefix + index number (2 bytes)
      + crc32(enc(index pk)) + enc(index pk) + [enc(index sk)]
      + enc(table pk) + [enc(table sk)]

so one index partition is one contiguous range, ordered by the index sort key
and then by the table key (entries with equal index keys stay distinct and
come in table-key order, as in DynamoDB), and a parallel Scan segment of an
index is a range of the hash, as for tables.  The value has the stored-item
form (4-byte size + JSON) of the projected item, so Query and Scan on an index
splice it like a table item.  For ``ALL`` projections it is the very bytes
stored in the table.

``maintain`` keeps every ACTIVE or CREATING index in step with the table inside
the writing transaction; ``IndexJobs`` backfills a GSI (or a vector index,
whose entries ``shoal.api.vectors`` encodes) created on a table with data, and
purges a deleted one, in bounded chunks whose cursor is stored in
``meta`` in the same transaction, so several worker processes may run the job.

The same job runner purges the storage of a deleted table (``schedule_drop``,
queued by DeleteTable): a "drop" job lists the key ranges the table owned and
deletes at most ``DROP_CHUNK`` keys per transaction, range after range.
"""

from __future__ import annotations

import logging
import struct
import zlib

import orjson

from shoal.api import vectors
from shoal.api.catalog import (
    INDEX_STATS_KEY,
    Index,
    decode_entry,
    encode_entry,
    read_index_stats,
    read_stats,
    table_key,
)
from shoal.api.changelog import record_table_change
from shoal.api.common import partition_prefix
from shoal.errors import ItemCollectionSizeLimitExceededException, ValidationException
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.model.capacity import write_units
from shoal.model.keys import encode_key_value
from shoal.model.size import item_size
from shoal.model.values import (
    HASH_KEY_LIMIT,
    HASH_KEY_TOO_LONG,
    RANGE_KEY_LIMIT,
    RANGE_KEY_TOO_LONG,
    decoded_length,
    utf8_length,
)

log = logging.getLogger("shoal")

_SIZE = struct.Struct(">I")
_STATS = struct.Struct(">qq")
_COLLECTION = struct.Struct(">q")

ITEM_COLLECTION_LIMIT = 10 * 1024 ** 3  # bytes per partition key on tables with LSIs
GB = 1024 ** 3
JOB_CHUNK = 500  # items (backfill) or entries (purge) per background transaction
DROP_CHUNK = 1000  # keys a deleted table's purge removes per transaction
_JOB_PREFIX = b"ixjob/"
_JOBS_END = b"ixjob0"
_COLLECTION_PREFIX = b"coll/"

#: Callables told of each backfill step once committed, as ``(engine, region,
#: table name, index name, percent of the table's items looked at, write
#: units of the entries written)``: the server's metrics (OnlineIndex*), which
#: this layer does not import.
progress_listeners: list = []


# ---------------------------------------------------------------- entry keys


def entry_key(table, index: Index, item: dict, table_suffix: bytes, strict: bool) -> bytes | None:
    """The storage key of ``item``'s entry in ``index``, or None when the item
    lacks an index key attribute (a sparse index leaves it out).

    ``table_suffix`` is enc(table pk) + [enc(table sk)].  With ``strict`` (a
    write) a key attribute of the wrong type or an empty S/B value raises
    DynamoDB's ValidationException; without it (backfill, old images) such an
    item is simply not indexed.  A vector index's entries are
    ``shoal.api.vectors``'s.
    """
    if index.multi:
        return _multi_entry_key(table, index, item, table_suffix, strict)
    if index.vector is not None:
        return vectors.entry_key(table, index, item, table_suffix, strict)
    hash_value = item.get(index.hash_key)
    if hash_value is None:
        return None
    range_value = None
    if index.range_key is not None:
        range_value = item.get(index.range_key)
        if range_value is None:
            return None
    head = _key_bytes(index, index.hash_key, index.hash_type, hash_value, strict)
    if head is None:
        return None
    if table.keys is not None:  # encrypted at rest: see common.partition_prefix
        head = table.keys.partition(head)
    parts = [index.prefix, zlib.crc32(head).to_bytes(4, "big"), head]
    if range_value is not None:
        tail = _key_bytes(index, index.range_key, index.range_type, range_value, strict)
        if tail is None:
            return None
        parts.append(tail)
    parts.append(table_suffix)
    return b"".join(parts)


def _multi_entry_key(table, index: Index, item: dict, table_suffix: bytes, strict: bool) -> bytes | None:
    """``entry_key`` for multi-attribute keys: the partition part is the
    encodings of the partition attributes one after the other (each is
    self-delimiting, so the bytes sort as the tuple of values), hashed
    together; the sort part likewise.  An item lacking any key attribute is
    not in the index."""
    names = index.hash_keys + index.range_keys
    values = [item.get(name) for name in names]
    if None in values:
        return None
    encoded = []
    for name, expected, value in zip(names, index.hash_types + index.range_types, values):
        part = _key_bytes(index, name, expected, value, strict)
        if part is None:
            return None
        encoded.append(part)
    split = len(index.hash_keys)
    head = b"".join(encoded[:split])
    if table.keys is not None:  # encrypted at rest: see common.partition_prefix
        head = table.keys.partition(head)
    return b"".join((index.prefix, zlib.crc32(head).to_bytes(4, "big"), head, *encoded[split:], table_suffix))


#: DynamoDB's words (recorded) when an update expression empties a secondary index key: an
#: UpdateItem's, a transaction's Update's; a put's name the index and key (``_key_bytes``).
UPDATE_EMPTY_INDEX_KEY = ("One or more parameter values are not valid. The update expression attempted to update "
                          "a secondary index key to a value that is not supported. The AttributeValue for a key "
                          "attribute cannot contain an empty {} value.")


def check_updated_index_keys(table, names, item: dict | None) -> None:
    """Refuse, in an update's words, an update that set one of ``names``
    (the attributes it wrote) that is a secondary index key to an empty
    string or binary of the key's type.  Other faults of the new item's index
    keys are found by the write itself, in a put's words."""
    if item is None:
        return
    for index in table.indexes:
        if index.vector is not None:
            continue
        if index.multi:
            pairs = zip(index.hash_keys + index.range_keys, index.hash_types + index.range_types)
        else:
            pairs = ((index.hash_key, index.hash_type), (index.range_key, index.range_type))
        for name, expected in pairs:
            if name is None or name not in names:
                continue
            value = item.get(name)
            if value is not None and expected in value and expected != "N" and not value[expected]:
                raise ValidationException(UPDATE_EMPTY_INDEX_KEY.format("string" if expected == "S" else "binary"))


def _key_bytes(index: Index, name: str, expected: str, value: dict, strict: bool) -> bytes | None:
    (type_, text), = value.items()
    if type_ != expected:
        if not strict:
            return None
        raise ValidationException(
            f"{INVALID}Type mismatch for Index Key {name} Expected: {expected} Actual: {type_} "
            f"IndexName: {index.name}"
        )
    if type_ != "N":
        if not text:
            if not strict:
                return None
            kind = "string" if type_ == "S" else "binary"
            raise ValidationException(
                "One or more parameter values are not valid. A value specified for a secondary index key "
                f"is not supported. The AttributeValue for a key attribute cannot contain an empty {kind} "
                f"value. IndexName: {index.name}, IndexKey: {name}"
            )
        # An index key obeys the table's key size limits: a write that would
        # exceed them is refused; an existing item (backfill) is left out.
        is_hash = name == index.hash_key or name in index.hash_keys
        size = utf8_length(text) if type_ == "S" else decoded_length(text)
        if size > (HASH_KEY_LIMIT if is_hash else RANGE_KEY_LIMIT):
            if not strict:
                return None
            raise ValidationException(HASH_KEY_TOO_LONG if is_hash else RANGE_KEY_TOO_LONG)
    return encode_key_value(type_, text)


def index_partition_prefix(index: Index, value, keys=None) -> bytes:
    """The key range prefix of one index partition (Query's range); ``keys``
    is the table's key codec (``Table.keys``).  ``value`` is the partition
    key's value, or for multi-attribute keys the list of their values."""
    if type(value) is list:
        head = b"".join(encode_key_value(*next(iter(v.items()))) for v in value)
    else:
        (type_, text), = value.items()
        head = encode_key_value(type_, text)
    if keys is not None:
        head = keys.partition(head)
    return index.prefix + zlib.crc32(head).to_bytes(4, "big") + head


def table_suffix_of(table, storage_key: bytes) -> bytes:
    """enc(table pk) + [enc(table sk)]: the table storage key without the
    table prefix and the 4-byte hash."""
    return storage_key[len(table.prefix) + 4:]


def projected_entry(index: Index, item: dict, stored: bytes | None) -> bytes:
    """The stored value of an entry: the projected item with its size.

    For ALL projections the table's stored bytes are reused as they are.
    """
    if index.vector is not None:
        return vectors.entry_value(index, item)
    if index.projected is None and stored is not None:
        return stored
    if index.projected is None:
        projected = item
    else:
        keep = index.projected
        projected = {name: value for name, value in item.items() if name in keep}
    return _SIZE.pack(item_size(projected)) + orjson.dumps(projected)


def entry_size(value: bytes) -> int:
    return _SIZE.unpack_from(value)[0]


# ---------------------------------------------------------------- maintenance


def maintain(txn, table, storage_key: bytes, old_item: dict | None, old_raw: bytes | None,
             new_item: dict | None, new_raw: bytes | None, index_units: dict | None = None) -> int:
    """Bring every maintained index in step with one item write.

    Runs inside the write's transaction.  Validates the new item's index keys
    first (so a bad one aborts before anything is touched by this function),
    then for each index removes the old entry and adds the new one, only where
    the entry's key or projected content changed.  Adds the write units each
    index consumed to ``index_units`` ({"LocalSecondaryIndexes" or
    "GlobalSecondaryIndexes": {index name: units}}, the shape of
    ConsumedCapacity) and returns the change of the item collection's LSI
    entry bytes.
    """
    suffix = table_suffix_of(table, storage_key)
    new_keys = []
    for index in table.indexes:
        new_key = entry_key(table, index, new_item, suffix, True) if new_item is not None else None
        new_keys.append(new_key)
    local_delta = 0
    for index, new_key in zip(table.indexes, new_keys):
        old_key = entry_key(table, index, old_item, suffix, False) if old_item is not None else None
        if old_key is None and new_key is None:
            continue
        delta = _apply_entry(txn, table, index, old_key, old_item, new_key, new_item, new_raw, index_units)
        if index.local:
            local_delta += delta
    return local_delta


def _apply_entry(txn, table, index, old_key, old_item, new_key, new_item, new_raw, index_units) -> int:
    """Replace one index's entry; returns the change of the index's bytes."""
    old_value = txn.get("indexes", old_key) if old_key is not None else None
    new_value = projected_entry(index, new_item, new_raw) if new_key is not None else None
    if old_key == new_key and old_value == new_value:
        return 0  # only attributes the index does not project changed
    count = 0
    size = 0
    units = 0.0
    if old_value is not None and old_key != new_key:
        txn.delete("indexes", old_key)
        count -= 1
        size -= entry_size(old_value)
        units += write_units(entry_size(old_value))
    if new_value is not None:
        txn.put("indexes", new_key, new_value)
        if old_value is not None and old_key == new_key:
            size -= entry_size(old_value)
        else:
            count += 1
        size += entry_size(new_value)
        units += write_units(entry_size(new_value))
    _add_index_stats(txn, table.prefix, index.number, count, size)
    # A vector index's writes are not counted in write units (DynamoDB
    # reports VectorWriteRequestBytes for them, which Shoal does not yet).
    if index_units is not None and units and index.vector is None:
        by_name = index_units.setdefault("LocalSecondaryIndexes" if index.local else "GlobalSecondaryIndexes", {})
        by_name[index.name] = by_name.get(index.name, 0.0) + units
    return size


def _add_index_stats(txn, prefix: bytes, number: int, count: int, size: int) -> None:
    if not count and not size:
        return
    old_count, old_size = read_index_stats(txn, prefix, number)
    txn.put("meta", INDEX_STATS_KEY(prefix, number), _STATS.pack(old_count + count, old_size + size))


# ---------------------------------------------------------------- item collections


def collection_key(table, keys: dict) -> bytes:
    """The ``meta`` key of the size counter of an item collection (the items
    sharing a partition key value), kept for tables with local secondary indexes."""
    return _COLLECTION_PREFIX + partition_prefix(table, keys[table.hash_key])


def collection_range(table) -> bytes:
    """The ``meta`` key prefix of every item-collection counter of a table."""
    return _COLLECTION_PREFIX + table.prefix


def add_collection_size(txn, table, keys: dict, delta: int) -> None:
    """Keep the item collection's size; refuse growth past 10 GB as DynamoDB does."""
    if not delta:
        return
    key = collection_key(table, keys)
    raw = txn.get("meta", key)
    size = (_COLLECTION.unpack(raw)[0] if raw else 0) + delta
    if delta > 0 and size > ITEM_COLLECTION_LIMIT:
        raise ItemCollectionSizeLimitExceededException("Item collection size limit exceeded")
    if size <= 0:
        if raw is not None:
            txn.delete("meta", key)
        return
    txn.put("meta", key, _COLLECTION.pack(size))


def item_collection_metrics(txn, table, keys: dict) -> dict | None:
    """ItemCollectionMetrics for ReturnItemCollectionMetrics SIZE: None for a
    table without local secondary indexes, as in DynamoDB."""
    if not table.has_local_indexes:
        return None
    raw = txn.get("meta", collection_key(table, keys))
    size = _COLLECTION.unpack(raw)[0] if raw else 0
    low = float(size // GB)
    return {
        "ItemCollectionKey": {table.hash_key: keys[table.hash_key]},
        "SizeEstimateRangeGB": [low, low + 1.0],
    }


# ---------------------------------------------------------------- background jobs


def job_key(prefix: bytes, number: int) -> bytes:
    return _JOB_PREFIX + prefix + number.to_bytes(2, "big")


def drop_job_key(prefix: bytes) -> bytes:
    """The ``meta`` key of the purge of the deleted table with this prefix.

    It is the prefix of the table's index job keys, so it sorts just before
    them and ``index_jobs_range`` can name those without it.
    """
    return _JOB_PREFIX + prefix


def index_jobs_range(prefix: bytes) -> tuple[bytes, bytes | None]:
    """The [start, stop) ``meta`` range of the index jobs of a table (not its drop job)."""
    return _JOB_PREFIX + prefix + b"\x00", _successor(_JOB_PREFIX + prefix)


def schedule(txn, table, index_name: str, number: int, kind: str) -> None:
    """Queue a backfill ("backfill") or purge ("purge") of one index."""
    record = {"region": table.region, "table": table.name, "index": index_name, "kind": kind}
    txn.put("meta", job_key(table.prefix, number), orjson.dumps(record))


def schedule_drop(txn, table, ranges) -> tuple[bytes, dict]:
    """Queue the purge of a deleted table's storage; returns (job key, job).

    ``ranges`` lists (space, start, stop) key ranges, stop None for "to the
    end"; they are emptied in order.  The job deletes keys from the start of
    its current range each time, so it keeps no key cursor: a step that is
    repeated (two workers, or a crash before the commit) deletes nothing twice.
    """
    job = {
        "kind": "drop", "region": table.region, "table": table.name, "at": 0,
        "ranges": [[space, start.hex(), None if stop is None else stop.hex()] for space, start, stop in ranges],
    }
    key = drop_job_key(table.prefix)
    txn.put("meta", key, orjson.dumps(job))
    return key, job


class IndexJobs:
    """The background job that builds and drops GSIs and purges deleted
    tables, ``JOB_CHUNK`` items or entries (``DROP_CHUNK`` keys for a table)
    per call, each call one write transaction holding its cursor.

    Queued jobs take turns (each call advances the one after the last this
    runner advanced), so a long purge does not hold back an index build.
    Returns True while work remains, as ``Dispatcher.background_jobs`` expects.
    """

    __name__ = "index_jobs"

    def __init__(self, engine, chunk: int = JOB_CHUNK, drop_chunk: int | None = None) -> None:
        self.engine = engine
        self.chunk = chunk
        self.drop_chunk = drop_chunk
        self._after = _JOB_PREFIX  # where the next turn starts looking

    def __call__(self) -> bool:
        with self.engine.read() as txn:
            if next(iter(txn.scan("meta", _JOB_PREFIX, _JOBS_END)), None) is None:
                return False  # the common case: nothing to do, no writer lock taken
        with self.engine.write() as txn:
            found = next(iter(txn.scan("meta", self._after, _JOBS_END)), None)
            if found is None:
                found = next(iter(txn.scan("meta", _JOB_PREFIX, _JOBS_END)), None)
            if found is None:
                return False
            key, raw = bytes(found[0]), found[1]
            self._after = key + b"\x00"
            progress = run_job(txn, key, orjson.loads(raw), self.chunk, self.drop_chunk)
        if progress is not None:
            for listener in list(progress_listeners):
                try:
                    listener(self.engine, *progress)
                except Exception:  # the metrics never stop an index build
                    log.exception("a backfill progress listener failed")
        return True


def run_job(txn, key: bytes, job: dict, chunk: int, drop_chunk: int | None = None) -> tuple | None:
    """Advance one job by one chunk, inside ``txn``; for a backfill, what
    ``progress_listeners`` are told (region, table, index, percent, units)."""
    if job["kind"] == "drop":
        purge_step(txn, key, job, DROP_CHUNK if drop_chunk is None else drop_chunk)
        return
    prefix = key[len(_JOB_PREFIX):-2]
    number = int.from_bytes(key[-2:], "big")
    raw = txn.get("meta", table_key(job["region"], job["table"]))
    table = decode_entry(job["region"], raw, getattr(txn, "keys", None)) if raw is not None else None
    index = None
    if table is not None and table.prefix == prefix:
        index = table.index_map.get(job["index"]) or table.vector_map.get(job["index"])
    if index is None or index.number != number:
        txn.delete("meta", key)  # the table or index is gone: nothing left to do
        return None
    if job["kind"] == "backfill":
        return _backfill(txn, key, job, table, index, chunk)
    _purge(txn, key, table, index, chunk)
    return None


def purge_step(txn, key: bytes, job: dict, budget: int) -> bool:
    """Delete up to ``budget`` keys of a drop job's ranges, inside ``txn``, and
    store where it stands (or remove it once every range is empty).

    Returns True while keys may remain.
    """
    ranges = job["ranges"]
    at = job["at"]
    while at < len(ranges):
        space, start, stop = ranges[at]
        doomed = []
        for found, _ in txn.scan(space, bytes.fromhex(start), None if stop is None else bytes.fromhex(stop)):
            doomed.append(bytes(found))
            if len(doomed) >= budget:
                break
        for found in doomed:
            txn.delete(space, found)
        budget -= len(doomed)
        if budget <= 0:
            break  # this range may hold more: the next step looks again
        at += 1
    if at >= len(ranges):
        txn.delete("meta", key)
        return False
    if at != job["at"]:
        job["at"] = at
        txn.put("meta", key, orjson.dumps(job))
    return True


def _backfill(txn, key: bytes, job: dict, table, index: Index, chunk: int) -> tuple:
    """One step of a backfill; (region, table, index, percent of the items
    looked at so far, write units of the entries this step wrote)."""
    cursor = bytes.fromhex(job["cursor"]) + b"\x00" if job.get("cursor") else table.prefix
    stop = _successor(table.prefix)
    done = 0
    units = 0.0
    last = None
    for storage_key, raw in txn.scan("items", cursor, stop):
        last = bytes(storage_key)
        units += _backfill_item(txn, table, index, last, raw)
        done += 1
        if done >= chunk:
            break
    if done >= chunk:
        job["cursor"] = last.hex()
        job["seen"] = job.get("seen", 0) + done
        txn.put("meta", key, orjson.dumps(job))
        count = read_stats(txn, table.prefix)[0]
        percent = min(100.0, 100.0 * job["seen"] / count) if count else 0.0
        return job["region"], table.name, index.name, percent, units
    _set_status(txn, table, index.name, "ACTIVE")
    txn.delete("meta", key)
    return job["region"], table.name, index.name, 100.0, units


def _backfill_item(txn, table, index: Index, storage_key: bytes, raw: bytes) -> float:
    """Index one table item unless it already is (writes during the backfill
    maintain the index themselves, and always with the current image); the
    write units of the entry written, as a write to the index is charged."""
    item = orjson.loads(memoryview(raw)[4:])
    ekey = entry_key(table, index, item, table_suffix_of(table, storage_key), False)
    if ekey is None or txn.get("indexes", ekey) is not None:
        return 0.0
    value = projected_entry(index, item, bytes(raw))
    txn.put("indexes", ekey, value)
    size = entry_size(value)
    _add_index_stats(txn, table.prefix, index.number, 1, size)
    return write_units(size)


def _purge(txn, key: bytes, table, index: Index, chunk: int) -> None:
    doomed = []
    for entry, _ in txn.scan("indexes", index.prefix, _successor(index.prefix)):
        doomed.append(bytes(entry))
        if len(doomed) >= chunk:
            break
    for entry in doomed:
        txn.delete("indexes", entry)
    if len(doomed) >= chunk:
        return
    _remove_index(txn, table, index)
    txn.delete("meta", INDEX_STATS_KEY(table.prefix, index.number))
    txn.delete("meta", key)


def _set_status(txn, table, name: str, status: str) -> None:
    desc = dict(table.description)
    member = "VectorIndexes" if name in table.vector_map else "GlobalSecondaryIndexes"
    specs = []
    for spec in desc.get(member) or ():
        if spec["IndexName"] == name:
            spec = {k: v for k, v in spec.items() if k != "Backfilling"}
            spec["IndexStatus"] = status
        specs.append(spec)
    desc[member] = specs
    _store(txn, table, desc, table.index_numbers, {"IndexName": name, "IndexStatus": status})


def _remove_index(txn, table, index: Index) -> None:
    desc = dict(table.description)
    member = "VectorIndexes" if index.vector is not None else "GlobalSecondaryIndexes"
    kept = [s for s in desc.get(member) or () if s["IndexName"] != index.name]
    if kept:
        desc[member] = kept
    else:
        desc.pop(member, None)
    numbers = {n: i for n, i in table.index_numbers.items() if n != index.name}
    # A dropped index's key attributes leave AttributeDefinitions unless
    # another key still uses them, as in DynamoDB.
    used = {k["AttributeName"] for k in desc["KeySchema"]}
    for member in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
        for spec in desc.get(member) or ():
            used.update(k["AttributeName"] for k in spec["KeySchema"])
    for spec in desc.get("VectorIndexes") or ():
        used.update(e["AttributeName"] for e in spec.get("SearchSchema") or ())
    desc["AttributeDefinitions"] = [d for d in desc["AttributeDefinitions"] if d["AttributeName"] in used]
    _store(txn, table, desc, numbers, {"IndexName": index.name, "IndexStatus": "DELETED"})


def _store(txn, table, desc: dict, numbers: dict, change: dict) -> None:
    """The table's new description, and its record in the change log (an
    index built or dropped by a background job is a change of the table)."""
    raw = encode_entry(table.account, table.table_id, desc, numbers, table.next_index)
    txn.put("meta", table_key(table.region, table.name), raw)
    record_table_change(txn, table, "IndexJob", {**change, "TableDescription": desc})


def _successor(prefix: bytes) -> bytes | None:
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
