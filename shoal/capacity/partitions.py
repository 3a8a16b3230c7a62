"""Per-partition limits: hot keys throttle as they do in DynamoDB (opt-in).

What DynamoDB documents: "each individual partition is limited to 1,000
write units per second and 3,000 read units per second" (warm throughput
scenarios), for a table's partitions and for a GSI's; a partition holds up
to 10 GB and splits as the table grows, and adaptive capacity splits a
partition that sustains high traffic ("split for heat") and "isolates
frequently accessed items" so that a hot item ends on a partition of its
own.  What it cannot split is one partition key value's traffic: the
throttling reason ``KeyRangeThroughputExceeded`` is "the request rate
directed at a specific partition key value has exceeded the internal
partition-level throughput limits" (the ThrottlingReason reference), with
``<Table|Index><Read|Write>`` before it.

Shoal's model: the state DynamoDB's splitting tends to, a token bucket per
partition key value (of the table, or of a GSI) and kind, refilled at the
partition's rate and holding one second of it.  Two warm keys that would
share a partition in DynamoDB until it split for heat do not throttle each
other here: DynamoDB's splits take minutes, Shoal's are done at once, and
the size split (10 GB) therefore never changes a limit.  The table's own
limits (provisioned capacity, on-demand peak and maximums) still apply on
top, and first.

Which keys a request draws on, from the request itself (``request_keys``):
the item's key for GetItem, PutItem, UpdateItem and DeleteItem, and for
PutItem each GSI's key present in the item; a Query's partition key value
(of the table or of the index it reads); each item of BatchGetItem,
BatchWriteItem, TransactGetItems and TransactWriteItems in the table
admitted.  A request's consumed units are charged to its keys in equal
shares.  Not counted: Scan and PartiQL (they name no one key), and the GSI
keys an UpdateItem or DeleteItem changes (not known before the write).

Cost: nothing when off (the capacity hook runs only for tables with limits,
and is never told of partitions).  When on, every data-plane request on a
table pays for finding its keys and a dictionary look-up and update of each
key's balance in the worker (``Capacity``); the shared bucket is locked only
when a balance is spent, to take the next chunk.

Across workers the buckets live in one file (``<data dir>/capacity-partitions``),
a set-associative table: a key's digest picks a set of ``WAYS`` slots, locked
on its byte range while a worker takes from it.  A worker takes a tenth of a
second of the rate at a time (as ``SharedBuckets`` does), so a hot key may
grant up to a chunk more per worker than its rate over a second.  A bucket
that has refilled to full is the same as none, so its slot is taken by the
next key that needs one; a set whose slots are all in use gives up the one
closest to full.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import struct
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Callable

from shoal.capacity.shared_file import map_shared

ENV = "SHOAL_PARTITION_LIMITS"
READ_ENV, WRITE_ENV = "SHOAL_PARTITION_READ_UNITS", "SHOAL_PARTITION_WRITE_UNITS"
SETS = 8192
WAYS = 8
_SLOT = struct.Struct("<16sdd")  # key digest, tokens, updated (monotonic s)
_SET = _SLOT.size * WAYS
_MAGIC = b"shoal-partitions-1"
_EMPTY = bytes(16)
_PRIVATE_MAX = SETS * WAYS  # a private table of buckets sheds its full ones past this

#: ThrottlingException's message for an on-demand table's hot key: the message the service
#: answers (as users quote it, with its link); a provisioned table's is its usual one.
HOT_KEY_MESSAGE = ("Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
                   "scaling your table or index so please try again shortly. If exceptions persist, check if you "
                   "have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
                   "bp-partition-key-design.html")


def enabled() -> bool:
    """Whether partition limits are on: ``SHOAL_PARTITION_LIMITS`` (``shoal serve
    --partition-limits``, or ``--profile dynamodb-faithful``) says 1, true, yes or on."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class PartitionRules:
    """A partition's units a second: DynamoDB's, or a test's (the variables)."""

    read_units: float = 3000.0
    write_units: float = 1000.0

    @classmethod
    def from_environment(cls) -> "PartitionRules":
        return cls(float(os.environ.get(READ_ENV, cls.read_units)),
                   float(os.environ.get(WRITE_ENV, cls.write_units)))


def digest_of(table_id: str, index: str | None, kind: str, key: str) -> bytes:
    return hashlib.blake2b(f"{table_id}/{index or ''}/{kind}/{key}".encode(), digest_size=16).digest()


class PartitionBuckets:
    """The buckets of every hot key, shared by the workers of a data
    directory (``path``), or this process's alone (None)."""

    def __init__(self, path: str | None, rules: PartitionRules | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = rules or PartitionRules.from_environment()
        self.clock = clock
        self._lock = threading.Lock()
        self._private: dict[bytes, list] | None = None
        self._fd = -1
        if path is None:
            self._private = {}
            return
        self._fd, self._map = map_shared(path, _MAGIC, len(_MAGIC) + SETS * _SET)

    def close(self) -> None:
        if self._fd >= 0:
            self._map.close()
            os.close(self._fd)
            self._fd = -1

    def take(self, digest: bytes, rate: float, wanted: float) -> float:
        """Up to ``wanted`` units from the key's bucket (refilled to now
        first); what it holds if less, nothing if it holds none."""
        now = self.clock()
        capacity = rate
        with self._lock:
            if self._private is not None:
                entry = self._private.get(digest)
                tokens = capacity if entry is None else min(capacity, entry[0] + (now - entry[1]) * rate)
                got = min(wanted, tokens) if tokens > 0 else 0.0
                self._private[digest] = [tokens - got, now]
                if len(self._private) > _PRIVATE_MAX:
                    self._shed(now, rate)
                return got
            base = self._set_of(digest)
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _SET, base)
            try:
                offset, tokens = self._find(base, digest, now, rate, capacity)
                got = min(wanted, tokens) if tokens > 0 else 0.0
                _SLOT.pack_into(self._map, offset, digest, tokens - got, now)
                return got
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _SET, base)

    def _find(self, base: int, digest: bytes, now: float, rate: float, capacity: float) -> tuple[int, float]:
        """(offset, refilled tokens) of the key's slot in its set, or of the
        slot it takes: an empty or full one, else the one closest to full."""
        offset = self._offset_of(digest, base)
        if offset >= 0:
            _, tokens, updated = _SLOT.unpack_from(self._map, offset)
            return offset, min(capacity, tokens + (now - updated) * rate)
        spare, spare_tokens = -1, -float("inf")
        for way in range(WAYS):
            offset = base + way * _SLOT.size
            found, tokens, updated = _SLOT.unpack_from(self._map, offset)
            level = capacity if found == _EMPTY else tokens + (now - updated) * rate
            if level > spare_tokens:
                spare, spare_tokens = offset, level
        return spare, capacity

    def _shed(self, now: float, rate: float) -> None:
        full = [d for d, (tokens, updated) in self._private.items() if tokens + (now - updated) * rate >= rate]
        for digest in full:
            del self._private[digest]

    def _offset_of(self, digest: bytes, base: int) -> int:
        """The offset of the key's slot in its set, or -1 (one search in C
        rather than a slot at a time; a match must start a slot)."""
        start, end = base, base + _SET
        while True:
            found = self._map.find(digest, start, end)
            if found < 0 or (found - base) % _SLOT.size == 0:
                return found
            start = found + 1

    def _set_of(self, digest: bytes) -> int:
        return len(_MAGIC) + int.from_bytes(digest[:4], "little") % SETS * _SET


# -- the keys a request draws on ---------------------------------------------------------------


def key_text(value) -> str | None:
    """A partition key value as one text, equal for equal keys (numbers
    compare by value: 1 and 1.0 are one key); None if it is no key value."""
    if type(value) is not dict or len(value) != 1:
        return None
    (kind, raw), = value.items()
    if kind == "N":
        try:
            return "N" + str(Decimal(raw).normalize())
        except (InvalidOperation, TypeError):
            return None
    if kind in ("S", "B") and type(raw) is str:
        return kind + raw
    return None


def _index_key(item: dict, names) -> str | None:
    parts = []
    for name in names:
        text = key_text(item.get(name))
        if text is None:
            return None
        parts.append(text)
    return "\0".join(parts)


def request_keys(operation: str, data: dict, table) -> list[tuple[str | None, str]]:
    """(index name or None for the table, partition key text) of every
    partition the request draws on in ``table`` (see the module docstring);
    a malformed request gives what it can (its validation refuses it after)."""
    try:
        return _request_keys(operation, data, table)
    except (AttributeError, KeyError, TypeError, IndexError):
        return []


def _request_keys(operation: str, data: dict, table) -> list:
    hash_key = table.hash_key
    out: list = []
    if operation in ("GetItem", "UpdateItem", "DeleteItem"):
        _add(out, None, data["Key"].get(hash_key))
    elif operation == "PutItem":
        _put(out, table, data["Item"])
    elif operation == "Query":
        _query(out, table, data)
    elif operation == "BatchGetItem":
        part = _named(data["RequestItems"], table)
        for key in (part or {}).get("Keys") or ():
            _add(out, None, key.get(hash_key))
    elif operation == "BatchWriteItem":
        for request in _named(data["RequestItems"], table) or ():
            if request.get("PutRequest") is not None:
                _put(out, table, request["PutRequest"]["Item"])
            elif request.get("DeleteRequest") is not None:
                _add(out, None, request["DeleteRequest"]["Key"].get(hash_key))
    elif operation in ("TransactGetItems", "TransactWriteItems"):
        for entry in data["TransactItems"]:
            for action, body in entry.items():
                if body.get("TableName") not in (table.name, table.arn):
                    continue
                if action == "Put":
                    _put(out, table, body["Item"])
                else:
                    _add(out, None, body["Key"].get(hash_key))
    return out


def _add(out: list, index: str | None, value) -> None:
    text = key_text(value)
    if text is not None:
        out.append((index, text))


def _named(request_items: dict, table):
    part = request_items.get(table.name)
    return part if part is not None else request_items.get(table.arn)


def _put(out: list, table, item: dict) -> None:
    _add(out, None, item.get(table.hash_key))
    for index in table.indexes:
        if index.local or index.vector is not None:
            continue
        text = _index_key(item, index.hash_keys or (index.hash_key,))
        if text is not None:
            out.append((index.name, text))


@functools.lru_cache(maxsize=4096)
def _equalities(text: str) -> tuple:
    """(attribute name or #placeholder, :placeholder) of each equality a
    KeyConditionExpression's AND holds, from its parse (cached by text, as
    the Query's own): binding the whole condition again would cost a Query
    a sixth more; () if the text does not parse (the Query refuses it)."""
    from shoal.errors import ShoalError
    from shoal.expressions import ast, parse_condition_ast

    try:
        tree = parse_condition_ast(text, "KeyConditionExpression")
    except ShoalError:
        return ()
    out = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if type(node) is ast.Paren:
            stack.append(node.inner)
        elif type(node) is ast.And:
            stack.extend(node.operands)
        elif type(node) is ast.Compare and node.op == "=":
            for path, value in ((node.left, node.right), (node.right, node.left)):
                if type(path) is ast.Path and type(value) is ast.Value and len(path.elements) == 1 \
                        and type(path.elements[0]) is str:
                    out.append((path.elements[0], value.name))
    return tuple(out)


def _query(out: list, table, data: dict) -> None:
    """The partition key value a Query reads: its equality on the partition key."""
    index_name = data.get("IndexName")
    if index_name is not None:
        index = table.index_map.get(index_name)
        if index is None:
            return
        names = index.hash_keys or (index.hash_key,)
        owner = None if index.local else index_name
    else:
        names, owner = (table.hash_key,), None
    values = {}
    if data.get("KeyConditions") is not None:
        for name in names:
            condition = data["KeyConditions"].get(name) or {}
            if condition.get("ComparisonOperator") == "EQ":
                values[name] = (condition.get("AttributeValueList") or [None])[0]
    elif data.get("KeyConditionExpression") is not None:
        aliases = data.get("ExpressionAttributeNames") or {}
        given = data.get("ExpressionAttributeValues") or {}
        for element, placeholder in _equalities(data["KeyConditionExpression"]):
            name = aliases.get(element) if element[:1] == "#" else element
            if name in names:
                values[name] = given.get(placeholder)
    text = _index_key(values, names)
    if text is not None:
        out.append((owner, text))
