"""The change log: one ordered record per mutation, read by its consumers.

The ``changes`` space holds one record per mutation, keyed by its position
``seq`` (a big-endian u64,
the log's total order on this data directory), its value the write time in
milliseconds (u64) and then JSON whose first field is the table's identity::

    {"table": TABLE_ID, "origin": "REGION:NODE", "keys": ..., "old": ..., "new": ...}    an item
    {"table": TABLE_ID, "origin": "REGION:NODE", "op": "UpdateTable", ...}              the table itself

``TABLE_ID`` is the UUID a table gets at creation: it names the same table
whatever its name becomes, and never a later table of the same name.
``origin`` names the region and the node (a random id kept with the log's
head, one per data directory) that made the change, so a replica applying
records elsewhere can tell its own writes from others'.  A record is the same
record wherever it is copied as long as it keeps its ``origin`` and origin
position (for a record written here, its ``seq``); two changes of one item are
ordered by (time, origin, position), a total, deterministic tie-break.

Consumers (streams, and later point-in-time recovery, replicas and metrics)
register under a name with a cursor (``register_consumer``) and move it as
they read (``advance_consumer``); ``prune_changes`` deletes a record only once
every consumer has passed it and it is older than the longest retention any
of them, or the server, asks for.
"""

from __future__ import annotations

import os
import struct
import time

import orjson

_SEQ = struct.Struct(">Q")
_TIME = struct.Struct(">Q")
NODE_BYTES = 8

# The log's head: the last position (u64), this data directory's node id (8 bytes) and,
# once a global table's write has been folded by its own transaction, the position the
# version store's indexer has read to (u64; see ``fold_versions_with``).
SEQ_KEY = b"changes/seq"
_HEAD = struct.Struct(">Q8s")
_MARKED_HEAD = struct.Struct(">Q8sQ")
_HEAD_MARK_AT = _HEAD.size
CONSUMER_PREFIX = b"changes/consumer/"
_CONSUMER = struct.Struct(">Qd")  # cursor, retention in seconds
#: The cursor of a consumer that holds records by age only (``retain_changes``).
FOLLOWS_HEAD = 2**64 - 1
DEFAULT_RETENTION_S = 24 * 3600


#: (consumer's key, fold) registered by ``shoal.replication.versions``: the
#: version store's indexer, and how a local write of a global table is folded
#: into it (``fold(txn, table, keys, storage_key, time_ms, origin, seq, deleted)``;
#: ``storage_key`` None when the caller did not give it).
_version_fold = None


def fold_versions_with(consumer: str, fold) -> None:
    """Have ``ChangeAppender`` fold a global table's local writes into the
    version store as it logs them (``item_change``), whenever ``consumer``
    (the indexer that otherwise folds them later, in log order) has read
    every record before the transaction's first: the fold is then exactly
    the indexer's, done in the write's own transaction and commit.

    Where it stands is kept in the head (its third field, the "folded up
    to" mark): a transaction that folded moves the mark to its last record
    and does not read or write the indexer's own cursor, so a global table's
    write costs no more storage operations than the version store's own.
    The indexer's cursor is the greater of the two (``consumer_cursor``,
    ``consumers``).  The mark is trusted to fold without reading the
    cursor only where one write transaction runs at a time (``_one_writer``):
    an engine with concurrent writers renumbers the records a transaction
    appends at its commit and merges the head, so there the cursor, which
    such a transaction locks by reading it, decides."""
    global _version_fold
    _version_fold = (CONSUMER_PREFIX + consumer.encode(), fold)


class ChangeAppender:
    """Appends records to the log in one transaction; the head (the last
    position and the node id) is read once and stored once, by ``finish()``,
    which must run before the transaction commits."""

    __slots__ = ("txn", "_seq", "_node", "_node_hex", "_first", "_mark", "_folding")

    def __init__(self, txn) -> None:
        self.txn = txn
        self._seq: int | None = None  # the last position given, once the head has been read

    def _head(self) -> int:
        """The log's last position, read once per appender, with the node id."""
        raw_seq = self.txn.get("meta", SEQ_KEY)
        size = len(raw_seq) if raw_seq else 0
        # the head's "folded up to" mark (fold_versions_with), None if it has none
        if size >= _MARKED_HEAD.size:
            head, self._node, self._mark = _MARKED_HEAD.unpack_from(raw_seq)
        elif size >= _HEAD.size:
            head, self._node = _HEAD.unpack_from(raw_seq)
            self._mark = None
        else:  # the first write: a new node
            head = _SEQ.unpack_from(raw_seq)[0] if size else 0
            self._node, self._mark = os.urandom(NODE_BYTES), None
        self._node_hex = self._node.hex()
        self._first = head + 1  # this appender's first position
        # whether its global tables' writes are folded here, known at the first: False, True (the
        # mark says the indexer has read every earlier record) or the indexer's retention (its
        # cursor said so, and is stored again by finish without being read again)
        self._folding = None
        return head

    def _next_seq(self) -> int:
        seq = self._seq
        seq = self._seq = (self._head() if seq is None else seq) + 1
        return seq

    def item_change(self, table, keys: dict, old_json, new_json, now: float | None = None,
                    user_identity: dict | None = None, storage_key: bytes | None = None) -> int:
        """Record a change of one item: its key attributes and its stored
        JSON before and after (None for absent).  Returns its position.
        ``storage_key``, the item's, spares a global table's version fold
        from encoding the keys again (the write path has it)."""
        # Every item write comes here: _next_seq is inlined.
        seq = self._seq
        seq = self._seq = (self._head() if seq is None else seq) + 1
        record = {
            "table": table.table_id,
            "origin": f"{table.region}:{self._node_hex}",
            "keys": keys,
            "old": orjson.Fragment(bytes(old_json)) if old_json is not None else None,
            "new": orjson.Fragment(bytes(new_json)) if new_json is not None else None,
        }
        if user_identity is not None:
            record["userIdentity"] = user_identity
        stamp = int((now if now is not None else time.time()) * 1000)
        self.txn.put("changes", _SEQ.pack(seq), _TIME.pack(stamp) + orjson.dumps(record))
        if _version_fold is not None and "GlobalTableVersion" in table.description:
            folding = self._folding
            if folding is None:  # whether the indexer has read everything before this appender's records
                folding = self._folding = self._may_fold()
            if folding:
                _version_fold[1](self.txn, table, keys, storage_key, stamp, record["origin"], seq, new_json is None)
        return seq

    def _may_fold(self):
        """``_folding`` at this appender's first global table's write."""
        before = self._first - 1
        if self._mark == before and _one_writer(self.txn):
            return True
        raw = self.txn.get("meta", _version_fold[0])
        if raw is None:
            return False  # no table replicates: the indexer is not registered
        cursor, retention = _CONSUMER.unpack(raw)
        return (retention,) if max(cursor, self._mark or 0) == before else False

    def table_change(self, table, op: str, detail: dict, now: float | None = None) -> int:
        """Record a change of the table itself (``op`` is the operation that
        made it: CreateTable, UpdateTable, DeleteTable, UpdateTimeToLive,
        TagResource, ...; ``detail`` what a replica or a restore needs to redo
        it, e.g. the new TableDescription).  Returns its position."""
        seq = self._next_seq()
        record = {"table": table.table_id, "origin": f"{table.region}:{self._node_hex}", "op": op, **detail}
        stamp = int((now if now is not None else time.time()) * 1000)
        self.txn.put("changes", _SEQ.pack(seq), _TIME.pack(stamp) + orjson.dumps(record))
        return seq

    def finish(self) -> None:
        """Store the head the records moved, with the "folded up to" mark
        past them when ``item_change`` folded them (and the version store's
        indexer's cursor too when that was read)."""
        if self._seq is not None:
            folding = self._folding
            mark = self._seq if folding else self._mark
            self.txn.put("meta", SEQ_KEY, _HEAD.pack(self._seq, self._node) if mark is None
                         else _MARKED_HEAD.pack(self._seq, self._node, mark))
            if type(folding) is tuple:  # the cursor was read (``_may_fold``): kept in step
                self.txn.put("meta", _version_fold[0], _CONSUMER.pack(self._seq, folding[0]))
            self._seq = None


def _one_writer(txn) -> bool:
    """Whether ``txn``'s engine runs one write transaction at a time (LMDB,
    the memory engine, either encrypted: ``WriteTxn.one_writer``), so that
    positions given in a transaction are final and what it read of the head
    stays true: the condition for trusting the head's "folded up to" mark
    (``fold_versions_with``).  PostgreSQL's writers run concurrently."""
    return txn.one_writer


def _folded_mark(txn) -> int:
    """The head's "folded up to" mark (0 if it has none)."""
    raw = txn.get("meta", SEQ_KEY)
    return _SEQ.unpack_from(raw, _HEAD_MARK_AT)[0] if raw and len(raw) >= _MARKED_HEAD.size else 0


def record_table_change(txn, table, op: str, detail: dict, now: float | None = None) -> int:
    """``ChangeAppender.table_change`` for one change of a table in ``txn``."""
    log = ChangeAppender(txn)
    seq = log.table_change(table, op, detail, now)
    log.finish()
    return seq


def head_position(txn) -> int:
    """The position of the newest change record (0 for an empty log)."""
    raw = txn.get("meta", SEQ_KEY)
    return _SEQ.unpack_from(raw)[0] if raw else 0


def is_table_change(record: dict) -> bool:
    """Whether a decoded record is a change of the table itself, not of an item."""
    return "op" in record


# ---------------------------------------------------------------- consumers


def register_consumer(txn, name: str, *, retention_s: float = 0.0, at: int | None = None) -> int:
    """Make ``name`` a consumer of the log (idempotent: an existing cursor is
    kept; its retention is updated).  A new consumer starts after ``at``
    (default: the head, i.e. it reads what is written from now on).  Records
    it has not passed are kept for it.  Returns its cursor."""
    key = CONSUMER_PREFIX + name.encode()
    raw = txn.get("meta", key)
    cursor = _CONSUMER.unpack(raw)[0] if raw else (head_position(txn) if at is None else at)
    txn.put("meta", key, _CONSUMER.pack(cursor, retention_s))
    return cursor


def retain_changes(txn, name: str, retention_s: float) -> None:
    """Keep every record younger than ``retention_s`` for ``name``, a consumer
    that reads the log only now and then (point-in-time recovery reads it at
    a restore): its cursor is always at the head (``FOLLOWS_HEAD``), so it
    holds records by their age alone."""
    txn.put("meta", CONSUMER_PREFIX + name.encode(), _CONSUMER.pack(FOLLOWS_HEAD, retention_s))


def consumer_cursor(txn, name: str) -> int | None:
    """The last position ``name`` has read, or None if it is not registered
    (the version store's indexer's: its cursor or the head's mark, the
    greater; see ``fold_versions_with``)."""
    key = CONSUMER_PREFIX + name.encode()
    raw = txn.get("meta", key)
    if not raw:
        return None
    cursor = _CONSUMER.unpack(raw)[0]
    if _version_fold is not None and key == _version_fold[0]:
        return max(cursor, _folded_mark(txn))
    return cursor


def advance_consumer(txn, name: str, position: int) -> None:
    """Move ``name``'s cursor to ``position`` (registering it if needed)."""
    key = CONSUMER_PREFIX + name.encode()
    raw = txn.get("meta", key)
    retention = _CONSUMER.unpack(raw)[1] if raw else 0.0
    txn.put("meta", key, _CONSUMER.pack(position, retention))


def unregister_consumer(txn, name: str) -> bool:
    """Stop keeping records for ``name`` (the version store's indexer: the
    head's "folded up to" mark goes too, so that no write folds until a
    table replicates again)."""
    key = CONSUMER_PREFIX + name.encode()
    if _version_fold is not None and key == _version_fold[0]:
        raw = txn.get("meta", SEQ_KEY)
        if raw and len(raw) > _HEAD_MARK_AT:
            txn.put("meta", SEQ_KEY, bytes(raw[:_HEAD_MARK_AT]))
    return txn.delete("meta", key)


def consumers(txn) -> dict[str, tuple[int, float]]:
    """Every consumer's (cursor, retention in seconds), by name (the version
    store's indexer's cursor as ``consumer_cursor`` gives it)."""
    out = {}
    fold_key = _version_fold[0] if _version_fold is not None else None
    for key, value in txn.scan("meta", CONSUMER_PREFIX, CONSUMER_PREFIX[:-1] + b"0"):
        cursor, retention = _CONSUMER.unpack(value)
        if key == fold_key:
            cursor = max(cursor, _folded_mark(txn))
        out[bytes(key[len(CONSUMER_PREFIX):]).decode()] = (cursor, retention)
    return out


def log_status(txn, now: float) -> dict:
    """The log's head, its oldest record and each consumer's lag (records and
    seconds behind the head), for ``shoal status``."""
    head = head_position(txn)
    oldest = next(iter(txn.scan("changes")), None)
    status = {"head": head, "oldest": None, "oldest_age_s": None, "records": None, "consumers": {}}
    if oldest is not None:
        first = _SEQ.unpack(oldest[0])[0]
        status.update(oldest=first, records=head - first + 1,
                      oldest_age_s=round(now - _TIME.unpack_from(oldest[1])[0] / 1000, 3))
    for name, (cursor, retention) in consumers(txn).items():
        if cursor == FOLLOWS_HEAD:
            status["consumers"][name] = {"cursor": head, "behind": 0, "behind_s": 0.0, "retention_s": retention}
            continue
        lag_s = 0.0
        following = next(iter(txn.scan("changes", _SEQ.pack(cursor + 1))), None)
        if following is not None:
            lag_s = round(max(0.0, now - _TIME.unpack_from(following[1])[0] / 1000), 3)
        status["consumers"][name] = {"cursor": cursor, "behind": head - cursor, "behind_s": lag_s,
                                     "retention_s": retention}
    return status


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


def read_table_changes(txn, table_id: str, after_seq: int = 0):
    """Yield the stored values of ``table_id``'s change records after
    ``after_seq``, in order: ``read_raw_changes`` for one table, skipping
    the others' records by comparing their first field's bytes."""
    start = _TIME.size + len(_TABLE_FIELD)
    needle = _TABLE_FIELD + table_id.encode()
    for _, value in txn.scan("changes", _SEQ.pack(after_seq + 1)):
        if value[_TIME.size:_TABLE_ID_END] == needle:
            yield value
        elif value[_TIME.size:start] != _TABLE_FIELD and orjson.loads(memoryview(value)[_TIME.size:])["table"] == table_id:
            yield value  # not written by this module's format


#: The ``op`` of the record a bulk load (``writepath.BulkLoad``) writes per
#: transaction in place of one record per item.
LOAD_OP = "LoadItems"
_LOAD_FIELD = b',"op":"LoadItems"'
_ORIGIN_FIELD = b'","origin":"'
_KEYS_FIELD = b',"keys":'
_KEYS_END = b'"}},"old":'  # a key value's closing quote and brace, the keys' brace, the next field
_NEW_FIELD = b',"new":'


class LoadedInBulk(Exception):
    """The table's items were loaded in bulk after the position read from:
    those items have no change records, so the log cannot undo them."""


def read_item_befores(txn, table_id: str, after_seq: int = 0):
    """Yield (keys JSON, image before JSON or None) of each change of an
    item of ``table_id`` after ``after_seq``, in order, as bytes sliced out
    of the record rather than decoded: what undoing the log needs (``pitr``).
    Records of the table itself are skipped; a bulk load's raises
    ``LoadedInBulk``.

    The slicing relies on the layout ``ChangeAppender.item_change`` writes:
    ``{"table":..,"origin":"..","keys":{..},"old":..,"new":..[,"userIdentity":..]}``.
    Inside a JSON string a quote is always escaped, so the first ``"}},"old":``
    after ``"keys":`` ends the keys (each key value is ``{"S"|"N"|"B":"..."}``)
    and a ``,"new":`` occurring once only after them starts the image after;
    a record where it occurs again (an attribute named ``new``) or that does
    not have this layout is decoded instead."""
    origin = _TABLE_ID_END + len(_ORIGIN_FIELD)
    for value in read_table_changes(txn, table_id, after_seq):
        if type(value) is not bytes:
            value = bytes(value)
        if value[_TABLE_ID_END:origin] == _ORIGIN_FIELD:
            quote = value.find(b'"', origin)  # the origin's end: it holds no escaped quote
            if quote > 0 and value[quote - 1] != 0x5C:  # 0x5C: a backslash
                if value.startswith(_KEYS_FIELD, quote + 1):
                    keys_start = quote + 1 + len(_KEYS_FIELD)
                    keys_end = value.find(_KEYS_END, keys_start) + 3
                    new = value.find(_NEW_FIELD, keys_end)
                    if keys_end > 2 and new > 0 and value.find(_NEW_FIELD, new + len(_NEW_FIELD)) < 0:
                        old = value[keys_end - 3 + len(_KEYS_END):new]
                        yield value[keys_start:keys_end], None if old == b"null" else old
                        continue
                elif value.startswith(b',"op":', quote + 1):
                    if value.startswith(_LOAD_FIELD, quote + 1):
                        raise LoadedInBulk(table_id)
                    continue  # a change of the table itself
        record = orjson.loads(memoryview(value)[_TIME.size:])  # another layout: decoded
        if "op" in record:
            if record["op"] == LOAD_OP:
                raise LoadedInBulk(table_id)
            continue
        yield orjson.dumps(record["keys"]), None if record["old"] is None else orjson.dumps(record["old"])


_ORIGIN_SEQ_FIELD = b',"originSeq":'
_USER_IDENTITY_FIELD = b'"userIdentity"'


def item_change_parts(value: bytes) -> tuple[bytes, bool, bytes, bytes | None, bytes | None] | None:
    """(origin, replicated, keys JSON, image before JSON, image after JSON)
    of a stored change of an item, sliced out of its bytes: the readers that
    run on every write of a global table (its stream, the version store, the
    sender) need these pieces and no parsed item.  ``replicated``: the record
    carries ``originSeq`` (``replication.apply`` wrote it for a peer's write);
    an image is None when absent.  None for a change of the table itself and
    for any record whose layout is not the one described in
    ``read_item_befores`` (an attribute named ``new``, a ``userIdentity``):
    the caller decodes those (``decode_change``)."""
    origin_at = _TABLE_ID_END + len(_ORIGIN_FIELD)
    if value[_TABLE_ID_END:origin_at] != _ORIGIN_FIELD:
        return None
    quote = value.find(b'"', origin_at)  # the origin's end: it holds no escaped quote
    if quote < 0 or value[quote - 1] == 0x5C:
        return None
    after = quote + 1
    replicated = value.startswith(_ORIGIN_SEQ_FIELD, after)
    if replicated:  # ,"originSeq":N,"originTime":N,"keys":
        after = value.find(_KEYS_FIELD, after)
        if after < 0:
            return None
    elif not value.startswith(_KEYS_FIELD, after):
        return None  # a change of the table itself, or another layout
    keys_start = after + len(_KEYS_FIELD)
    keys_end = value.find(_KEYS_END, keys_start) + 3
    if keys_end < 3:
        return None
    new = value.find(_NEW_FIELD, keys_end)
    if new < 0 or value.find(_NEW_FIELD, new + len(_NEW_FIELD)) >= 0 or value.find(_USER_IDENTITY_FIELD, new) >= 0:
        return None
    old = value[keys_end - 3 + len(_KEYS_END):new]
    image = value[new + len(_NEW_FIELD):-1]
    return (value[origin_at:quote], replicated, value[keys_start:keys_end], None if old == b"null" else old,
            None if image == b"null" else image)


_NO_OLD_IMAGE = b'"}},"old":null,"new":'
_ORIGIN_AT = _TABLE_ID_END + len(_ORIGIN_FIELD)  # the origin's first character
_KEYS_AFTER_QUOTE = 1 + len(_KEYS_FIELD)  # from the origin's closing quote to the keys' first brace


def is_item_insert(value: bytes) -> bool:
    """Whether a stored change record is of a new item (no image before),
    read from its bytes without slicing them (the check a global table's
    stream makes of every write: such a change is always a stream record).
    False for any other record, and for one not in ``item_change``'s layout."""
    if value[_TABLE_ID_END:_ORIGIN_AT] != _ORIGIN_FIELD:
        return False
    quote = value.find(b'"', _ORIGIN_AT)  # the origin's end: it holds no escaped quote
    if quote < 0 or not value.startswith(_KEYS_FIELD, quote + 1):
        return False
    end = value.find(_KEYS_END, quote + _KEYS_AFTER_QUOTE)  # the keys' end: see read_item_befores
    return end > 0 and value.startswith(_NO_OLD_IMAGE, end)


def change_time(value) -> int:
    """The write time (ms) of a stored change value, read without decoding it."""
    return _TIME.unpack_from(value)[0]


def decode_change(value) -> tuple[int, dict]:
    """(time_ms, record) of a stored change value from ``read_raw_changes``."""
    return _TIME.unpack_from(value)[0], orjson.loads(memoryview(value)[_TIME.size:])


def prune_changes(txn, retention_s: float, now: float, limit: int = 1000) -> int:
    """Delete up to ``limit`` change records that every consumer has passed
    and that are older than the longest retention: ``retention_s`` (the
    server's) or any consumer's."""
    registered = consumers(txn)
    longest = max([retention_s, *(retention for _, retention in registered.values())])
    cutoff = int((now - longest) * 1000)
    last = min((cursor for cursor, _ in registered.values()), default=None)
    doomed = []
    for key, value in txn.scan("changes"):
        if _TIME.unpack_from(value)[0] >= cutoff or len(doomed) >= limit:
            break
        if last is not None and _SEQ.unpack(key)[0] > last:
            break
        doomed.append(key)
    for key in doomed:
        txn.delete("changes", key)
    return len(doomed)


def oldest_change(txn) -> tuple[int, int] | None:
    """(position, time in ms) of the oldest record the log still holds."""
    first = next(iter(txn.scan("changes")), None)
    if first is None:
        return None
    return _SEQ.unpack(first[0])[0], _TIME.unpack_from(first[1])[0]


def position_at(txn, time_ms: int) -> int:
    """The position of the last record written at or before ``time_ms`` (the
    log as it stood then), by binary search over the positions the log holds;
    one before the oldest record if every record held is later."""
    oldest = oldest_change(txn)
    if oldest is None:
        return head_position(txn)
    low, high = oldest[0] - 1, head_position(txn)  # the answer is in [low, high]
    while low < high:
        mid = (low + high + 1) // 2
        found = next(iter(txn.scan("changes", _SEQ.pack(mid))), None)
        if found is None:  # nothing from mid on (cannot happen below the head)
            high = mid - 1
            continue
        seq, stamp = _SEQ.unpack(found[0])[0], _TIME.unpack_from(found[1])[0]
        if stamp <= time_ms:
            low = seq if seq <= high else high
        else:
            high = mid - 1
    return low
