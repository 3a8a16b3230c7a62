"""DynamoDB Streams: the stream materializer and the Streams API.

Every item mutation already lands in the global change log (``changes`` space,
see ``shoal.api.writepath``), in commit order, inside the writer's transaction.
A stream is therefore a *view* of that log, materialized after the fact by a
background job so that writes never pay for streams:

* The materializer tails the change log from a cursor kept in ``meta``.  For
  each change of a table whose stream was enabled at that point of the log, it
  writes one ready-to-send stream record (shaped by the view type) into the
  ``streams`` space, under ``stream id (16) + shard number (4) + change seq (8)``.
  Cursor and records are written in the same transaction, so several worker
  processes may run it concurrently without duplicating or losing records.
* A record's SequenceNumber is its change-log sequence number plus ``SEQ_BASE``
  (21 decimal digits, like DynamoDB's): increasing within a shard and across
  the shards of a lineage, and it lets LATEST be "after the log's current
  head" without touching any shard.
* The open shard of a stream is closed, and a child shard opened, after
  ``rollover_s`` seconds or ``rollover_records`` records; disabling the stream
  (or deleting the table) closes it once the materializer has passed the last
  change the stream covers, so a closed shard is always complete.
* GetRecords is one range scan of one shard that splices stored JSON into the
  response.  Shard iterators are opaque tokens carrying (stream, shard,
  position, issue time) under an HMAC whose key lives in ``meta``.
* Records older than the retention period are trimmed (a background job
  deletes them; reads treat them as gone even before it does), and a stream
  disabled for longer than the retention period is forgotten.

Times that tests need to shrink are read from the environment at start-up:
SHOAL_STREAM_RETENTION_S, SHOAL_SHARD_ROLLOVER_S, SHOAL_SHARD_ROLLOVER_RECORDS,
SHOAL_ITERATOR_TTL_S.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
import struct
import time
import uuid
import weakref
from dataclasses import dataclass
from decimal import Decimal

from shoal.settings import from_env
from datetime import datetime, timezone

import orjson

from shoal.api.changelog import (
    advance_consumer,
    change_time,
    consumer_cursor,
    decode_change,
    head_position,
    is_item_insert,
    is_table_change,
    item_change_parts,
)
from shoal.api.common import meter_records
from shoal.errors import (
    DYNAMODB_NS,
    ResourceNotFoundException,
    ShoalError,
    ValidationException,
    validation_errors,
)
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.model.size import item_size

SEQ_BASE = 10**20
VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
MAX_RECORDS = 1000
MAX_RESPONSE_BYTES = 1024 * 1024
MATERIALIZE_CHUNK = 500
#: Changes of tables without streams passed over per round, in chunks.
SKIP_FACTOR = 20
TRIM_CHUNK = 1000

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_OPEN = struct.Struct(">IQQQ")  # open shard: number, record count, opened ms, last seq
_ITERATOR = struct.Struct(">16sIQQ")  # stream id, shard number, position, issued ms
_MAC_BYTES = 16
_TOKEN_CHARS = -(-(_ITERATOR.size + _MAC_BYTES) // 3) * 4  # the base64 text of payload and MAC

# The materializer is the change log's consumer of this name; its cursor
# was kept under _OLD_CURSOR_KEY by data directories written before consumers.
CONSUMER = "streams"
_OLD_CURSOR_KEY = b"streams/cursor"
_SECRET_KEY = b"streams/secret"


# ---------------------------------------------------------------- configuration


@dataclass
class StreamConfig:
    """The time limits of streams; DynamoDB's values unless overridden."""

    retention_s: float = 24 * 3600.0
    rollover_s: float = 4 * 3600.0
    rollover_records: int = 0  # 0: no limit by count
    iterator_ttl_s: float = 15 * 60.0

    @classmethod
    def from_env(cls) -> "StreamConfig":
        return from_env(cls, {
            "retention_s": "SHOAL_STREAM_RETENTION_S",
            "rollover_s": "SHOAL_SHARD_ROLLOVER_S",
            "rollover_records": "SHOAL_SHARD_ROLLOVER_RECORDS",
            "iterator_ttl_s": "SHOAL_ITERATOR_TTL_S",
        })


CONFIG = StreamConfig.from_env()


# ---------------------------------------------------------------- errors


class TrimmedDataAccessException(ShoalError):
    type_name = "TrimmedDataAccessException"
    namespace = DYNAMODB_NS
    status = 400


class ExpiredIteratorException(ShoalError):
    type_name = "ExpiredIteratorException"
    namespace = DYNAMODB_NS
    status = 400


TRIMMED = "The operation attempted to read past the oldest stream record in a shard."


# ---------------------------------------------------------------- keys and stored state


def _table_streams_key(prefix: bytes) -> bytes:
    """``meta`` key of a table's stream history: JSON list of
    {"id", "from", "until"}: the change-log range each stream covers."""
    return b"streams/table/" + prefix


def _stream_key(stream_id: bytes) -> bytes:
    return b"streams/id/" + stream_id


def _open_key(stream_id: bytes) -> bytes:
    return b"streams/open/" + stream_id


def _arn_index_key(region: str, arn: str) -> bytes:
    return b"streams/arn/" + region.encode() + b"\0" + arn.encode()


def _closing_key(stream_id: bytes) -> bytes:
    return b"streams/closing/" + stream_id


def _record_key(stream_id: bytes, shard: int, seq: int) -> bytes:
    return stream_id + _U32.pack(shard) + _U64.pack(seq)


def _shard_range(stream_id: bytes, shard: int) -> tuple[bytes, bytes]:
    return stream_id + _U32.pack(shard), stream_id + _U32.pack(shard + 1)


def _load_json(txn, key: bytes):
    raw = txn.get("meta", key)
    return orjson.loads(raw) if raw is not None else None


def _load_stream(txn, stream_id: bytes) -> dict | None:
    return _load_json(txn, _stream_key(stream_id))


def _save_stream(txn, stream: dict) -> None:
    txn.put("meta", _stream_key(bytes.fromhex(stream["id"])), orjson.dumps(stream))


# ---------------------------------------------------------------- the reader API
# What consumers of stream shards (triggers; later metrics) use, instead of
# this module's storage layout.


def stream_id_of(txn, region: str, arn: str) -> bytes | None:
    """The id of the stream ``arn`` names (of ``region``), or None."""
    raw = txn.get("meta", _arn_index_key(region, arn))
    return None if raw is None else bytes(raw)


def load_stream(txn, stream_id: bytes) -> dict | None:
    """A stream's stored state: ``arn``, ``shards`` (each with ``n``, ``sid``,
    ``start``, ``trim``, ``end``, ``parent``, ``closed``) and its view type."""
    return _load_stream(txn, stream_id)


def shard_records(txn, stream_id: bytes, shard: int, after: int):
    """Yield (key, stored record) of shard ``shard``'s records with positions
    after ``after``, in order: the record's time (ms, 8 bytes) and then its
    JSON as GetRecords returns it; a record's position is ``record_position(key)``."""
    _, stop = _shard_range(stream_id, shard)
    stream = None
    for key, value in txn.scan("streams", _record_key(stream_id, shard, after + 1), stop):
        if value[_U64.size:_U64.size + 1] == _DEFERRED:
            if stream is None:
                stream = _load_stream(txn, stream_id)
            value = _deferred(stream, key, value)
        yield key, value


_TABLE_FIELD = b'{"table":"'  # a change record's first field (``changelog.read_raw_changes``)
_TIME_SIZE = _U64.size  # a change record's time, before its JSON
_TABLE_FIELD_SIZE = len(_TABLE_FIELD)
_TABLE_START = _U64.size + len(_TABLE_FIELD)
_TABLE_ID_END = _TABLE_START + 36  # a table id is a 36-character UUID
_DEFERRED = b"\x00"  # after the time: a change record as the log holds it, not yet shaped


def _deferred(stream: dict, key, value) -> bytes:
    """A record the materializer stored unshaped (a global table's: its
    stream is there because replication needs one, and is often not read,
    so the writes do not pay for shaping records nobody reads), shaped as
    the materializer shapes any other: time + the record's JSON."""
    ms = _U64.unpack_from(value)[0]
    change = orjson.loads(memoryview(value)[_U64.size + 1:])
    return _U64.pack(ms) + build_record(stream, record_position(key), ms, change)


def record_position(key: bytes) -> int:
    """The change-log position of a record yielded by ``shard_records``."""
    return _U64.unpack_from(key, len(key) - _U64.size)[0]


def _head_seq(txn) -> int:
    return head_position(txn)


def _cursor(txn) -> int:
    """The last change position the materializer copied."""
    cursor = consumer_cursor(txn, CONSUMER)
    if cursor is None:
        raw = txn.get("meta", _OLD_CURSOR_KEY)
        cursor = _U64.unpack(raw)[0] if raw else 0
    return cursor


def format_seq(seq: int) -> str:
    """A change-log sequence number as a DynamoDB Streams SequenceNumber."""
    return str(SEQ_BASE + seq)


def parse_seq(text: str | None) -> int | None:
    """The change-log sequence number of a SequenceNumber, or None if malformed."""
    if not text or not text.isdigit() or not text.isascii():
        return None
    value = int(text) - SEQ_BASE
    return value if 0 <= value < 2**63 else None


def stream_label(now: float) -> str:
    """ISO-8601 creation time with milliseconds, as DynamoDB labels streams."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _shard_id(stream_id: bytes, number: int, opened_ms: int) -> str:
    """DynamoDB's shape (opening time, 8 hex digits).  The shard's number
    leads the hex part, so that shards opened in the same millisecond still
    sort in the order they were opened (consumers read them lexically)."""
    tag = hashlib.blake2b(stream_id + _U32.pack(number), digest_size=2).hexdigest()
    return f"shardId-{opened_ms:020d}-{number % 0x10000:04x}{tag}"


# ---------------------------------------------------------------- table hooks


def apply_stream_specification(txn, table, spec: dict | None, now: float, creating: bool = False) -> None:
    """Enable or disable the table's stream (CreateTable / UpdateTable).

    Enabling creates a new stream (new label and ARN) covering changes after
    the log's current head; disabling ends the current one at the head.  The
    request's shape (StreamViewType present iff enabling) is checked by the
    caller.
    """
    if not check_stream_specification(txn, table, spec, creating):
        return
    history = _load_json(txn, _table_streams_key(table.prefix)) or []
    current = history[-1] if history and history[-1]["until"] is None else None
    head = _head_seq(txn)
    if spec.get("StreamEnabled"):
        history.append({"id": _create_stream(txn, table, spec["StreamViewType"], now, head), "from": head,
                        "until": None})
    else:
        _end_stream(txn, current, head, now)
    txn.put("meta", _table_streams_key(table.prefix), orjson.dumps(history))


def check_stream_specification(txn, table, spec: dict | None, creating: bool = False) -> bool:
    """Whether ``spec`` changes the table's stream; raises DynamoDB's error if
    it cannot (enabling an enabled stream, disabling none).  Reads only, so an
    operation can check every part of a request before it writes any."""
    if spec is None:
        return False
    history = _load_json(txn, _table_streams_key(table.prefix)) or []
    enabled = bool(history) and history[-1]["until"] is None
    if spec.get("StreamEnabled"):
        if enabled:
            raise ValidationException(f"Table already has an enabled stream: TableName: {table.name}")
        return True
    if not enabled:
        if creating:
            return False
        raise ValidationException(f"Table has no stream to disable: TableName: {table.name}")
    return True


def on_table_deleted(txn, table, now: float) -> None:
    """A deleted table's stream ends (and stays readable until retention)."""
    key = _table_streams_key(table.prefix)
    history = _load_json(txn, key)
    if history and history[-1]["until"] is None:
        _end_stream(txn, history[-1], _head_seq(txn), now)
        txn.put("meta", key, orjson.dumps(history))


def _create_stream(txn, table, view_type: str, now: float, head: int) -> str:
    stream_id = uuid.uuid4().bytes
    label = stream_label(now)
    arn = f"{table.arn}/stream/{label}"
    opened_ms = int(now * 1000)
    stream = {
        "id": stream_id.hex(), "arn": arn, "label": label, "table": table.name, "table_id": table.table_id,
        "region": table.region, "key_schema": table.description["KeySchema"], "view": view_type,
        "created": round(now, 3), "status": "ENABLED", "disabled_ms": None,
        "shards": [_new_shard(stream_id, 0, None, head + 1, opened_ms)],
    }
    _save_stream(txn, stream)
    txn.put("meta", _open_key(stream_id), _OPEN.pack(0, 0, opened_ms, head))
    txn.put("meta", _arn_index_key(table.region, arn), stream_id)
    return stream_id.hex()


def _new_shard(stream_id: bytes, number: int, parent: str | None, start: int, opened_ms: int) -> dict:
    return {"n": number, "sid": _shard_id(stream_id, number, opened_ms), "parent": parent, "start": start,
            "end": None, "opened": opened_ms, "closed": None, "trim": start - 1}


def _end_stream(txn, entry: dict, head: int, now: float) -> None:
    """Mark a stream DISABLED now; its open shard closes once the materializer
    has passed ``head`` (the last change it covers)."""
    entry["until"] = head
    stream_id = bytes.fromhex(entry["id"])
    stream = _load_stream(txn, stream_id)
    if stream is not None:
        stream["status"] = "DISABLED"
        stream["disabled_ms"] = int(now * 1000)
        _save_stream(txn, stream)
    txn.put("meta", _closing_key(stream_id), _U64.pack(head))


def stream_description(txn, table) -> dict:
    """The stream members of a TableDescription: StreamSpecification (while
    enabled), LatestStreamLabel and LatestStreamArn (while any stream exists)."""
    history = _load_json(txn, _table_streams_key(table.prefix))
    if not history:
        return {}
    stream = _load_stream(txn, bytes.fromhex(history[-1]["id"]))
    if stream is None:
        return {}
    out = {}
    if history[-1]["until"] is None:
        out["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["view"]}
    out["LatestStreamLabel"] = stream["label"]
    out["LatestStreamArn"] = stream["arn"]
    return out


# ---------------------------------------------------------------- materializer


CATCH_UP_ROUNDS = 16


def catch_up(engine) -> None:
    """Copy into shards what the change log holds past the materializer's
    cursor, before a Streams read: a record is readable as soon as the write
    that made it was acknowledged, by any worker, as DynamoDB consumers expect
    (they read right after writing and take an empty page for the end).  The
    background job still runs, so streams nobody reads stay current; a reader
    after a bulk load copies at most ``CATCH_UP_ROUNDS`` chunks itself and
    leaves the rest to it.  With no backlog this is one read snapshot."""
    materialize = Materializer(engine)
    for _ in range(CATCH_UP_ROUNDS):
        if not materialize():
            return


class Materializer:
    """The background job copying change records into stream shards."""

    def __init__(self, engine, config: StreamConfig | None = None, chunk: int = MATERIALIZE_CHUNK) -> None:
        self.engine = engine
        self.config = config or CONFIG
        self.chunk = chunk
        self.__name__ = "stream_materializer"

    def __call__(self) -> bool:
        """One bounded round; True while a backlog remains."""
        with self.engine.read() as txn:
            if not self._pending(txn):
                return False
        with self.engine.write() as txn:
            cursor, more = self._copy(txn, _cursor(txn))
            advance_consumer(txn, CONSUMER, cursor)
            txn.delete("meta", _OLD_CURSOR_KEY)
            self._close_ended(txn, cursor)
            return more

    def _pending(self, txn) -> bool:
        """Cheap check (a read snapshot, no writer lock) for work to do."""
        if _cursor(txn) < _head_seq(txn):
            return True
        return next(iter(txn.scan("meta", b"streams/closing/", b"streams/closing0")), None) is not None

    def _copy(self, txn, cursor: int) -> tuple[int, bool]:
        """Copy up to ``chunk`` covered changes after ``cursor`` into shards.

        Changes of tables without a stream over them are passed over without
        being decoded (up to ``SKIP_FACTOR`` times the chunk per round), and
        when no stream covers anything after the cursor, the cursor jumps to
        the head at once: a table without streams costs this job nothing.
        The changes of a global table's items are stored as they are, to be
        shaped when read (``_deferred``)."""
        if not _streams_after(txn, cursor):
            return _head_seq(txn), False
        # table id -> (stream history, deferred, the open stream's id and first position): read once
        # per table and round, so that a change covered by an open stream (nearly all) is placed
        # with one comparison
        tables: dict[str, tuple] = {}
        shards = _ShardWriter(txn, self.config)
        put, opened, loaded = txn.put, shards.open, shards.streams
        rollover_records, rollover_ms = self.config.rollover_records, self.config.rollover_s * 1000
        done = seen = 0
        more = False
        chunk, skip_limit = self.chunk, self.chunk * SKIP_FACTOR
        # The log is walked here rather than through read_raw_changes, and tables are known by
        # their id's bytes: a record's table is then found without decoding its id (this loop runs
        # for every write of a table with a stream, a global table's included).
        # the last record's first field (its table id included) and its table's entry: runs of one
        # table's records are then known by one comparison of bytes
        last_head, known = None, None
        unpack_seq, unpack_time = _U64.unpack, _U64.unpack_from
        for key, value in txn.scan("changes", _U64.pack(cursor + 1)):
            if done >= chunk or seen >= skip_limit:
                more = True
                break
            seq = cursor = unpack_seq(key)[0]
            seen += 1
            head = value[_TIME_SIZE:_TABLE_ID_END]
            if head != last_head:
                if head[:_TABLE_FIELD_SIZE] == _TABLE_FIELD:
                    table_key = value[_TABLE_START:_TABLE_ID_END]
                    last_head = head
                else:  # not in the change log's usual layout: decoded to find its table
                    table_key = decode_change(value)[1]["table"]
                    last_head = None
                known = tables.get(table_key)
                if known is None:
                    table_id = table_key if type(table_key) is str else bytes(table_key).decode()
                    known = tables[table_key] = _table_streams(txn, table_id)
            history, deferred, open_id, open_from = known
            if open_id is not None and seq > open_from:
                stream_id = open_id
            else:
                entry = _covering(history, seq)
                if entry is None:
                    continue
                stream_id = bytes.fromhex(entry["id"])
            done += 1
            if deferred:
                if type(value) is not bytes:
                    value = bytes(value)
                if is_item_insert(value):  # the common case, checked without slicing the record
                    ms = unpack_time(value)[0]
                    # append_deferred's own first step, here: its open shard known and not due to roll over
                    state = opened.get(stream_id)
                    if state is not None and not (rollover_records and state[1] >= rollover_records) \
                            and ms - state[2] < rollover_ms and loaded.get(stream_id) is not None:
                        put("streams", stream_id + _U32.pack(state[0]) + key,
                            _DEFERRED.join((value[:_TIME_SIZE], value[_TIME_SIZE:])))
                        state[1] += 1
                        state[3] = seq
                    else:
                        shards.append_deferred(stream_id, seq, ms, value)
                    continue
                parts = item_change_parts(value)
                if parts is not None:
                    old, new = parts[3], parts[4]
                    if old is None or new is None or (old != new and not _same_image(orjson.loads(old),
                                                                                   orjson.loads(new))):
                        shards.append_deferred(stream_id, seq, change_time(value), value)
                    continue
            ms, change = decode_change(value)
            if is_table_change(change):  # the table's own changes are not stream records
                continue
            if not _same_image(change["old"], change["new"]):
                shards.append(stream_id, seq, ms, change)
        shards.flush()
        return cursor, more

    def _close_ended(self, txn, cursor: int) -> None:
        """Close the open shard of streams whose last change is materialized."""
        done = []
        for key, value in txn.scan("meta", b"streams/closing/", b"streams/closing0"):
            if _U64.unpack(value)[0] <= cursor:
                done.append(key)
        for key in done:
            stream_id = key[len(b"streams/closing/"):]
            _close_open_shard(txn, stream_id, int(time.time() * 1000), reopen=False)
            txn.delete("meta", key)


def _is_replica_source(txn, table_id: str) -> bool:
    """Whether the table replicates to other regions (a global table): the
    records of its stream are then stored unshaped (``_deferred``)."""
    from shoal.replication.apply import is_global  # not at import: replication imports the write path

    return is_global(txn, table_id)


def _table_streams(txn, table_id: str) -> tuple[list | None, bool, bytes | None, int]:
    """(stream history, whether its records are stored unshaped, the open
    stream's id or None, the position after which that stream covers every
    change) of a table, for one materializer round."""
    history = _load_json(txn, _table_streams_key(uuid.UUID(table_id).bytes))
    last = history[-1] if history else None
    if last is None or last["until"] is not None:
        return history, _is_replica_source(txn, table_id), None, 0
    return history, _is_replica_source(txn, table_id), bytes.fromhex(last["id"]), last["from"]


def _streams_after(txn, cursor: int) -> bool:
    """Whether any table's stream covers changes after ``cursor`` (an open
    stream, or one that ended after it)."""
    for _, raw in txn.scan("meta", b"streams/table/", b"streams/table0"):
        history = orjson.loads(raw)
        if history and (history[-1]["until"] is None or history[-1]["until"] > cursor):
            return True
    return False


def _covering(history: list | None, seq: int) -> dict | None:
    """The stream (history entry) that covers change ``seq`` of a table."""
    if not history:
        return None
    for entry in reversed(history):
        if entry["from"] < seq:
            return entry if entry["until"] is None or seq <= entry["until"] else None
    return None


def _same_image(old: dict | None, new: dict | None) -> bool:
    """True when a write changed nothing (DynamoDB writes no stream record)."""
    if old is None or new is None:
        return False
    return old == new or _canonical(old) == _canonical(new)


def _canonical(item: dict) -> dict:
    """An item with sets as sets, so element order does not count."""
    out = {}
    for name, av in item.items():
        ((type_, value),) = av.items()
        if type_ in ("SS", "NS", "BS"):
            out[name] = (type_, frozenset(value))
        elif type_ == "M":
            out[name] = (type_, _canonical(value))
        elif type_ == "L":  # in order; only compared, so sets inside may stay frozensets
            out[name] = (type_, [_canonical({"": v})[""] for v in value])
        else:
            out[name] = (type_, value)
    return out


class _ShardWriter:
    """Appends records to open shards during one materializer round, keeping
    each open shard's counters in memory until ``flush``."""

    def __init__(self, txn, config: StreamConfig) -> None:
        self.txn = txn
        self.config = config
        self.streams: dict[bytes, dict] = {}
        self.open: dict[bytes, list] = {}

    def append(self, stream_id: bytes, seq: int, ms: int, change: dict) -> None:
        stream = self._open_stream(stream_id, seq, ms)
        if stream is not None:
            self._put(stream_id, seq, _U64.pack(ms) + build_record(stream, seq, ms, change))

    def append_deferred(self, stream_id: bytes, seq: int, ms: int, value: bytes) -> None:
        """Store the change record ``value`` (as the change log holds it) to
        be shaped into the stream record when read (``_deferred``).  Every
        write of a global table comes here: when the stream's open shard is
        known and not due to roll over (nearly always), the record is put
        at once, without the calls of the general path."""
        state = self.open.get(stream_id)
        if state is not None and self.streams.get(stream_id) is not None:
            limit = self.config.rollover_records
            if not (limit and state[1] >= limit) and ms - state[2] < self.config.rollover_s * 1000:
                self.txn.put("streams", stream_id + _U32.pack(state[0]) + _U64.pack(seq),
                             _DEFERRED.join((value[:_U64.size], value[_U64.size:])))
                state[1] += 1
                state[3] = seq
                return
        if self._open_stream(stream_id, seq, ms) is not None:
            self._put(stream_id, seq, _DEFERRED.join((value[:_U64.size], value[_U64.size:])))

    def _open_stream(self, stream_id: bytes, seq: int, ms: int) -> dict | None:
        """The stream, its open shard rolled over first if due (None: gone)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = self.streams[stream_id] = _load_stream(self.txn, stream_id)
            raw = self.txn.get("meta", _open_key(stream_id))
            self.open[stream_id] = list(_OPEN.unpack(raw)) if raw else None
        state = self.open[stream_id]
        if stream is None or state is None:
            return None
        number, count, opened_ms, _last = state
        if self._due(count, opened_ms, ms):
            self._store(stream_id)
            number = _close_open_shard(self.txn, stream_id, ms, reopen=True, upto=seq - 1)
            stream = self.streams[stream_id] = _load_stream(self.txn, stream_id)
            state[:] = [number, 0, ms, seq - 1]
        return stream

    def _put(self, stream_id: bytes, seq: int, value: bytes) -> None:
        state = self.open[stream_id]
        self.txn.put("streams", _record_key(stream_id, state[0], seq), value)
        state[1] += 1
        state[3] = seq

    def _due(self, count: int, opened_ms: int, ms: int) -> bool:
        limit = self.config.rollover_records
        if limit and count >= limit:
            return True
        return ms - opened_ms >= self.config.rollover_s * 1000

    def _store(self, stream_id: bytes) -> None:
        state = self.open.get(stream_id)
        if state is not None:
            self.txn.put("meta", _open_key(stream_id), _OPEN.pack(*state))

    def flush(self) -> None:
        for stream_id in self.open:
            self._store(stream_id)


def _close_open_shard(txn, stream_id: bytes, ms: int, reopen: bool, upto: int | None = None) -> int:
    """Close a stream's open shard; with ``reopen``, open its child.  Returns
    the number of the shard now open (or closed last)."""
    raw = txn.get("meta", _open_key(stream_id))
    stream = _load_stream(txn, stream_id)
    if raw is None or stream is None:
        return 0
    number, _count, _opened, last = _OPEN.unpack(raw)
    shard = stream["shards"][-1]
    shard["end"] = max(last, shard["start"])
    shard["closed"] = ms
    if not reopen:
        txn.delete("meta", _open_key(stream_id))
        _save_stream(txn, stream)
        return number
    start = (upto if upto is not None else last) + 1
    ms = max(ms, shard["opened"])  # a child never opens before its parent, whatever the clocks said
    stream["shards"].append(_new_shard(stream_id, number + 1, shard["sid"], start, ms))
    _save_stream(txn, stream)
    txn.put("meta", _open_key(stream_id), _OPEN.pack(number + 1, 0, ms, start - 1))
    return number + 1


def build_record(stream: dict, seq: int, ms: int, change: dict) -> bytes:
    """The JSON of one stream record, exactly as GetRecords returns it."""
    old, new = change["old"], change["new"]
    view = stream["view"]
    keys = change["keys"]
    data = {"ApproximateCreationDateTime": ms // 1000, "Keys": keys}
    size = item_size(keys)
    if new is not None and view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        data["NewImage"] = new
        size += item_size(new)
    if old is not None and view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        data["OldImage"] = old
        size += item_size(old)
    data["SequenceNumber"] = format_seq(seq)
    data["SizeBytes"] = size
    data["StreamViewType"] = view
    record = {
        "eventID": hashlib.blake2b(bytes.fromhex(stream["id"]) + _U64.pack(seq), digest_size=16).hexdigest(),
        "eventName": "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": stream["region"],
        "dynamodb": data,
    }
    identity = change.get("userIdentity")
    if identity is not None:
        # The Streams API spells the members as its model does (Lambda event
        # payloads use "type" / "principalId"; SDKs parse these).
        record["userIdentity"] = {"PrincipalId": identity.get("principalId"), "Type": identity.get("type")}
    return orjson.dumps(record)


# ---------------------------------------------------------------- retention


class Trimmer:
    """The background job deleting stream records past the retention period,
    and forgetting shards and streams once nothing of them is readable."""

    def __init__(self, engine, config: StreamConfig | None = None, chunk: int = TRIM_CHUNK) -> None:
        self.engine = engine
        self.config = config or CONFIG
        self.chunk = chunk
        self.__name__ = "stream_trimmer"
        self._next_run = 0.0

    def __call__(self) -> bool:
        now = time.time()
        if now < self._next_run:
            return False
        cutoff = int((now - self.config.retention_s) * 1000)
        with self.engine.write() as txn:
            budget = self.chunk
            for _key, stream_id in list(txn.scan("meta", b"streams/arn/", b"streams/arn0")):
                budget -= _trim_stream(txn, bytes(stream_id), cutoff, budget)
                if budget <= 0:
                    return True
        self._next_run = now + min(60.0, self.config.retention_s / 4)
        return False


def _trim_stream(txn, stream_id: bytes, cutoff: int, budget: int) -> int:
    """Trim one stream; returns how many records it deleted."""
    stream = _load_stream(txn, stream_id)
    if stream is None:
        return 0
    deleted = 0
    changed = False
    for shard in stream["shards"]:
        start, stop = _shard_range(stream_id, shard["n"])
        for key, value in txn.scan("streams", start, stop):
            if deleted >= budget or _U64.unpack_from(value)[0] >= cutoff:
                break
            txn.delete("streams", key)
            shard["trim"] = _U64.unpack_from(key, 20)[0]
            deleted += 1
            changed = True
    kept = [s for s in stream["shards"] if s["closed"] is None or s["closed"] >= cutoff]
    if len(kept) != len(stream["shards"]) and deleted < budget:
        stream["shards"] = kept
        changed = True
    if stream["disabled_ms"] is not None and stream["disabled_ms"] < cutoff and not kept:
        _forget_stream(txn, stream_id, stream)
    elif changed:
        _save_stream(txn, stream)
    return deleted


def _forget_stream(txn, stream_id: bytes, stream: dict) -> None:
    txn.delete("meta", _stream_key(stream_id))
    txn.delete("meta", _arn_index_key(stream["region"], stream["arn"]))
    txn.delete("meta", _open_key(stream_id))
    prefix = uuid.UUID(stream["table_id"]).bytes
    history = _load_json(txn, _table_streams_key(prefix)) or []
    history = [e for e in history if e["id"] != stream["id"]]
    if history:
        txn.put("meta", _table_streams_key(prefix), orjson.dumps(history))
    else:
        txn.delete("meta", _table_streams_key(prefix))


# ---------------------------------------------------------------- shard iterators


_secret_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _secret(engine) -> bytes:
    """The HMAC key of shard iterators, shared by every worker through ``meta``."""
    secret = _secret_cache.get(engine)
    if secret is not None:
        return secret
    with engine.read() as txn:
        secret = txn.get("meta", _SECRET_KEY)
    if secret is None:
        with engine.write() as txn:
            secret = txn.get("meta", _SECRET_KEY)
            if secret is None:
                secret = os.urandom(32)
                txn.put("meta", _SECRET_KEY, secret)
    secret = bytes(secret)
    _secret_cache[engine] = secret
    return secret


def encode_iterator(secret: bytes, stream: dict, shard: int, position: int, issued_ms: int) -> str:
    """An opaque, unforgeable shard iterator: the stream ARN (for humans) and a
    MAC'd binary payload."""
    payload = _ITERATOR.pack(bytes.fromhex(stream["id"]), shard, position, issued_ms)
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return stream["arn"] + "|1|" + base64.urlsafe_b64encode(payload + mac).decode()


def decode_iterator(secret: bytes, text: str) -> tuple[bytes, int, int, int]:
    """(stream id, shard number, position, issued ms), or ValidationException."""
    _, _, token = text.rpartition("|")
    try:
        blob = base64.urlsafe_b64decode(token.encode())
    except (ValueError, UnicodeEncodeError):
        blob = b""
    # The decoder skips what follows the padding: an iterator with characters
    # added is not the one issued, and is refused like any other malformed one.
    if len(blob) != _ITERATOR.size + _MAC_BYTES or len(token) != _TOKEN_CHARS:
        raise ValidationException("Invalid ShardIterator")
    payload, mac = blob[: _ITERATOR.size], blob[_ITERATOR.size:]
    if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]):
        raise ValidationException("Invalid ShardIterator")
    return _ITERATOR.unpack(payload)


def iterator_stream_arn(engine, txn, text: str) -> str | None:
    """The ARN of the stream a shard iterator reads, or None when the text is
    no iterator of this data directory (GetRecords then refuses it).
    Authorization checks GetRecords against this ARN: the one GetRecords reads."""
    secret = _secret_cache.get(engine) or txn.get("meta", _SECRET_KEY)  # no secret yet: no iterator yet
    if secret is None:
        return None
    try:
        stream_id = decode_iterator(bytes(secret), text)[0]
    except ValidationException:
        return None
    stream = _load_stream(txn, stream_id)
    return None if stream is None else stream["arn"]


# ---------------------------------------------------------------- the Streams API


_STREAM_ARN = re.compile(r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[^/]+/stream/[^/]+")


def _checked_stream_arn(arn: str) -> str:
    """A StreamArn that cannot name any stream is malformed, not missing."""
    if _STREAM_ARN.fullmatch(arn) is None:
        raise ValidationException("Invalid StreamArn")
    return arn


def _checked_limit(request: dict) -> int:
    """ListStreams' and DescribeStream's Limit: at most 100 (the API model
    sets no upper bound, DynamoDB does)."""
    limit = request.get("Limit")
    if limit is None:
        return 100
    if limit > 100:
        raise ValidationException(validation_errors(
            [f"Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100"]))
    return limit


def _stream_by_arn(txn, region: str, arn: str) -> dict | None:
    stream_id = txn.get("meta", _arn_index_key(region, _checked_stream_arn(arn)))
    return _load_stream(txn, bytes(stream_id)) if stream_id is not None else None


def _live_shards(stream: dict, cutoff_ms: int) -> list[dict]:
    """Shards still readable: open, or closed within the retention period."""
    return [s for s in stream["shards"] if s["closed"] is None or s["closed"] >= cutoff_ms]


def _cutoff_ms(ctx) -> int:
    return int((ctx.now() - CONFIG.retention_s) * 1000)


def list_streams(ctx, request: dict) -> dict:
    """Streams of the caller's region (optionally of one table), ordered by
    table name then label, a page of up to Limit (100)."""
    limit = _checked_limit(request)
    base = b"streams/arn/" + ctx.region.encode() + b"\0"
    start, stop = base, base[:-1] + b"\x01"
    name = request.get("TableName")
    if name is not None:
        start = base + _table_arn_text(ctx, name).encode() + b"/stream/"
        stop = start[:-1] + b"0"
    after = request.get("ExclusiveStartStreamArn")
    if after is not None:
        start = max(start, base + _checked_stream_arn(after).encode() + b"\0")
    out = []
    with ctx.engine.read() as txn:
        for _key, stream_id in txn.scan("meta", start, stop):
            stream = _load_stream(txn, bytes(stream_id))
            if stream is None:
                continue
            if len(out) == limit:
                return {"Streams": out, "LastEvaluatedStreamArn": out[-1]["StreamArn"]}
            out.append({"StreamArn": stream["arn"], "TableName": stream["table"], "StreamLabel": stream["label"]})
    return {"Streams": out}


def _table_arn_text(ctx, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:dynamodb:{ctx.region}:{ctx.account}:table/{name}"


def describe_stream(ctx, request: dict) -> dict:
    """A stream's status, view type, key schema and a page of its shards."""
    arn = request["StreamArn"]
    _check_shard_filter(request.get("ShardFilter"))
    catch_up(ctx.engine)  # shards a rollover makes are listed at once
    with ctx.engine.read() as txn:
        stream = _stream_by_arn(txn, ctx.region, arn)
    if stream is None:
        raise ResourceNotFoundException(f"Requested resource not found: Stream: {arn} not found")
    shards = _live_shards(stream, _cutoff_ms(ctx))
    shard_filter = request.get("ShardFilter")
    if shard_filter is not None:
        shards = [s for s in shards if s["parent"] == shard_filter["ShardId"]]  # Type CHILD_SHARDS
    after = request.get("ExclusiveStartShardId")
    if after is not None:
        index = next((i for i, s in enumerate(shards) if s["sid"] == after), None)
        shards = shards[index + 1:] if index is not None else []
    limit = _checked_limit(request)
    page = shards[:limit]
    desc = {
        "StreamArn": stream["arn"],
        "StreamLabel": stream["label"],
        "StreamStatus": stream["status"],
        "StreamViewType": stream["view"],
        "CreationRequestDateTime": stream["created"],
        "TableName": stream["table"],
        "KeySchema": stream["key_schema"],
        "Shards": [_shard_description(stream, s) for s in page],
    }
    if len(shards) > limit:
        desc["LastEvaluatedShardId"] = page[-1]["sid"]
    return {"StreamDescription": desc}


def _check_shard_filter(shard_filter: dict | None) -> None:
    """A ShardFilter filters by both its members: without its Type or the
    ShardId of the parent it means nothing, and is refused rather than
    ignored (the model marks neither required; the words are Coral's for a
    missing member, as for its enum)."""
    if shard_filter is None:
        return
    missing = [f"Value null at 'shardFilter.{member}' failed to satisfy constraint: Member must not be null"
               for member, key in (("type", "Type"), ("shardId", "ShardId")) if shard_filter.get(key) is None]
    if missing:
        raise ValidationException(validation_errors(missing))


def _shard_description(stream: dict, shard: dict) -> dict:
    span = {"StartingSequenceNumber": format_seq(shard["start"])}
    if shard["end"] is not None:
        span["EndingSequenceNumber"] = format_seq(shard["end"])
    out = {"ShardId": shard["sid"], "SequenceNumberRange": span}
    if shard["parent"] is not None:
        out["ParentShardId"] = shard["parent"]
    return out


def get_shard_iterator(ctx, request: dict) -> dict:
    """An iterator positioned per ShardIteratorType; it expires after 15 minutes."""
    _checked_stream_arn(request["StreamArn"])
    kind = request["ShardIteratorType"]
    seq_text = request.get("SequenceNumber")
    at_seq = kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")
    if not at_seq and seq_text is not None:
        raise ValidationException(INVALID + "SequenceNumber should not be passed for this iterator type")
    stamp = request.get("Timestamp")
    if kind != "AT_TIMESTAMP" and stamp is not None:
        raise ValidationException(INVALID + "Timestamp should not be passed for this iterator type")
    seq = parse_seq(seq_text) if at_seq else None
    if at_seq and seq is None:
        raise ValidationException(INVALID + "Invalid SequenceNumber")
    at_ms = checked_timestamp_ms(stamp, ctx.now()) if kind == "AT_TIMESTAMP" else None
    catch_up(ctx.engine)  # LATEST starts after every acknowledged write
    now = ctx.now()
    cutoff = int((now - CONFIG.retention_s) * 1000)
    with ctx.engine.read() as txn:
        stream = _stream_by_arn(txn, ctx.region, request["StreamArn"])
        if stream is None:
            raise ResourceNotFoundException("Requested resource not found: Stream does not exist")
        shard = next((s for s in _live_shards(stream, cutoff) if s["sid"] == request["ShardId"]), None)
        if shard is None:
            raise ResourceNotFoundException("Requested resource not found: Shard does not exist")
        position = _position(txn, stream, shard, kind, seq, cutoff, at_ms)
    secret = _secret(ctx.engine)
    return {"ShardIterator": encode_iterator(secret, stream, shard["n"], position, int(now * 1000))}


def checked_timestamp_ms(value, now: float) -> int:
    """GetShardIterator's Timestamp (epoch seconds, a JSON number) in whole
    milliseconds, its documented precision: the decimal the client sent is
    truncated (1791316726.4809 is 1791316726480), as botocore's millisecond
    precision truncates, and read from its shortest decimal text rather than
    multiplied as a double (1.001 is a double just under 1.001).
    Absent, or later than ``now``, it is refused: the API Reference says a
    Timestamp in the future is a ValidationException, and gives no words for
    either case, so they follow this module's other refusals of SequenceNumber."""
    if value is None or value != value or value in (math.inf, -math.inf):
        raise ValidationException(INVALID + "Invalid Timestamp")
    ms = value * 1000 if type(value) is int else math.floor(Decimal(repr(value)) * 1000)
    if ms > int(now * 1000):
        raise ValidationException(INVALID + "Timestamp should not be in the future")
    return ms


def _position(txn, stream: dict, shard: dict, kind: str, seq: int | None, cutoff: int,
              at_ms: int | None = None) -> int:
    """The change seq after which an iterator of ``kind`` starts reading
    (``seq``: the SequenceNumber's change seq; ``at_ms``: AT_TIMESTAMP's time)."""
    if kind == "TRIM_HORIZON":
        return _trim_horizon(txn, stream, shard, cutoff)
    if kind == "LATEST":
        return _latest(txn, shard)
    if kind == "AT_TIMESTAMP":
        return _at_timestamp(txn, stream, shard, at_ms, cutoff)
    # An open shard reaches the log's head, and at least its own start: the
    # StartingSequenceNumber of a shard with no records yet is a valid position.
    upper = shard["end"] if shard["end"] is not None else max(_head_seq(txn), shard["start"])
    if seq < shard["start"] or seq > upper:
        raise ValidationException(INVALID + "Invalid SequenceNumber")
    position = seq - 1 if kind == "AT_SEQUENCE_NUMBER" else seq
    if position < _trim_horizon(txn, stream, shard, cutoff):
        raise TrimmedDataAccessException(TRIMMED)
    return position


def _latest(txn, shard: dict) -> int:
    """After the shard's last record: its end once closed, else the log's head."""
    return shard["end"] if shard["end"] is not None else max(_head_seq(txn), shard["start"] - 1)


def _at_timestamp(txn, stream: dict, shard: dict, at_ms: int, cutoff: int) -> int:
    """The position before the shard's first retained record whose creation
    time (the change log's, in ms) is at or after ``at_ms``: a time before
    the oldest retained record gives TRIM_HORIZON, one after the newest
    LATEST (a closed shard's end: GetRecords then ends it).  Records are
    walked in shard order from the trim horizon, reading only their time,
    rather than bisected: a shard's times need not rise with its sequence
    numbers (concurrent writers, a clock set back), and the rule names the
    first such record in the shard."""
    position = _trim_horizon(txn, stream, shard, cutoff)
    stream_id = bytes.fromhex(stream["id"])
    _, stop = _shard_range(stream_id, shard["n"])
    for key, value in txn.scan("streams", _record_key(stream_id, shard["n"], position + 1), stop):
        if _U64.unpack_from(value)[0] >= at_ms:
            return record_position(key) - 1
    return _latest(txn, shard)


def _trim_horizon(txn, stream: dict, shard: dict, cutoff: int) -> int:
    """The position before the oldest record of the shard still retained."""
    position = shard["trim"]
    stream_id = bytes.fromhex(stream["id"])
    _, stop = _shard_range(stream_id, shard["n"])
    for key, value in txn.scan("streams", _record_key(stream_id, shard["n"], position + 1), stop):
        if _U64.unpack_from(value)[0] >= cutoff:
            break
        position = _U64.unpack_from(key, 20)[0]
    return position


def get_records(ctx, request: dict) -> bytes:
    """Up to Limit (1000) records of one shard after the iterator's position,
    and the iterator to continue from (none past the end of a closed shard)."""
    limit = request.get("Limit") or MAX_RECORDS
    if limit > MAX_RECORDS:
        raise ValidationException(INVALID + "Limit should be less than or equal to 1000")
    secret = _secret(ctx.engine)
    stream_id, number, position, issued = decode_iterator(secret, request["ShardIterator"])
    catch_up(ctx.engine)
    now = ctx.now()
    now_ms = int(now * 1000)
    if now_ms - issued > CONFIG.iterator_ttl_s * 1000:
        raise ExpiredIteratorException(_expired_message(issued, now_ms))
    cutoff = int((now - CONFIG.retention_s) * 1000)
    with ctx.engine.read() as txn:
        stream = _load_stream(txn, stream_id)
        shard = None
        if stream is not None:
            if request["ShardIterator"][:-_TOKEN_CHARS] != stream["arn"] + "|1|":  # its readable part altered
                raise ValidationException("Invalid ShardIterator")
            shard = next((s for s in _live_shards(stream, cutoff) if s["n"] == number), None)
        if shard is None or position < shard["trim"]:
            raise TrimmedDataAccessException(TRIMMED)
        records, last, exhausted = _read_shard(txn, stream_id, number, position, limit, cutoff)
    closed_and_done = exhausted and shard["end"] is not None
    body = b'{"Records":[' + b",".join(records) + b"]"
    if not closed_and_done:
        token = encode_iterator(secret, stream, number, last, now_ms)
        body += b',"NextShardIterator":' + orjson.dumps(token)
    body += b"}"
    meter_records(ctx, stream["table"], stream["label"], len(records), len(body))  # for the metrics
    return body


def _read_shard(txn, stream_id, number, position, limit, cutoff) -> tuple[list, int, bool]:
    """(record JSONs, position after them, whether the shard's end was reached)."""
    records: list = []
    size = 0
    last = position
    for key, value in shard_records(txn, stream_id, number, position):
        if _U64.unpack_from(value)[0] < cutoff:
            raise TrimmedDataAccessException(TRIMMED)
        if len(records) >= limit or (records and size + len(value) > MAX_RESPONSE_BYTES):
            return records, last, False
        records.append(memoryview(value)[8:])
        size += len(value)
        last = _U64.unpack_from(key, 20)[0]
    return records, last, True


def _expired_message(issued_ms: int, now_ms: int) -> str:
    def stamp(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")

    return (f"Iterator expired. The iterator was created at time {stamp(issued_ms)} while right now it is "
            f"{stamp(now_ms)} which is further in the future than the tolerated delay of "
            f"{int(CONFIG.iterator_ttl_s * 1000)} milliseconds.")


OPERATIONS = {
    "ListStreams": list_streams,
    "DescribeStream": describe_stream,
    "GetShardIterator": get_shard_iterator,
    "GetRecords": get_records,
}
