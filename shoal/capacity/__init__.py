"""Capacity: DynamoDB's throughput limits enforced (issue 20, first slice).

What is limited: a table in provisioned mode has read and write capacity
units per second (ProvisionedThroughput), each of its global secondary
indexes its own; a table in on-demand mode may have maximums
(OnDemandThroughput's MaxReadRequestUnits and MaxWriteRequestUnits, of the
table and of each GSI).  Each limit is a token bucket (``Bucket``) that
refills at the configured rate and keeps up to ``BURST_S`` (300) seconds of
unused capacity, DynamoDB's burst capacity; a new bucket starts full, so a
new table can spend its first five minutes' worth at once (DynamoDB keeps
burst capacity "from unused capacity"; starting empty would throttle a
freshly made table's first writes, which DynamoDB does not do).  An
on-demand maximum keeps one second of burst.

How a request meets them: it is admitted while each bucket it draws on
holds a positive balance (a read: the table's read bucket, or the GSI's it
queries; a write: the table's write bucket and every GSI's, since DynamoDB
throttles a table's writes when one of its GSIs has no write capacity
left); what it consumed, as the API meters it (``shoal.api.common.meter``),
is taken afterwards, so a balance may fall below zero (by at most the
bucket's burst) and the next requests wait until the refill has paid it back.  Over any window much longer than
one request the units granted follow the rate.  A refused request gets
ProvisionedThroughputExceededException with DynamoDB's message and its
ThrottlingReasons (TableReadProvisionedThroughputExceeded,
IndexWriteProvisionedThroughputExceeded, TableWriteMaxOnDemandThroughputExceeded...,
with the table's or index's ARN).

Across worker processes: the buckets live in one file every worker maps
(``SharedBuckets``, ``<data dir>/capacity``); a worker takes tokens from a
bucket in chunks (a tenth of a second of the rate) under a byte-range lock of
the bucket's slot and spends them locally, so the lock is taken once per
chunk rather than per request, and two workers never grant more than the
rate and a chunk each.

BatchGetItem and BatchWriteItem answer a throttled table's part as
unprocessed (UnprocessedKeys, UnprocessedItems) and are refused only when
every table they name is throttled, as DynamoDB does; each table's part is
admitted or not whole (DynamoDB may process some of one table's items).

Not yet (issue 20's later slices): on-demand's "double the previous peak"
rule and the per-table account quotas, per-partition limits, the daily
budget for decreases, control-plane rate limits, and auto scaling.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable

from shoal.errors import ProvisionedThroughputExceededException

BURST_S = 300.0  # DynamoDB retains up to five minutes of unused read and write capacity
ON_DEMAND_BURST_S = 1.0
CHUNK_S = 0.1  # a worker takes this much of a bucket's rate at a time
SLOTS = 16384
_SLOT = struct.Struct("<16sddddd")  # key digest, tokens, updated (monotonic s), rate, capacity, taken in all
_MAGIC = b"shoal-capacity-2"
READ, WRITE = "read", "write"
ENV = "SHOAL_CAPACITY"

TABLE_MESSAGE = ("The level of configured provisioned throughput for the table was exceeded. "
                 "Consider increasing your provisioning level with the UpdateTable API")
INDEX_MESSAGE = ("The level of configured provisioned throughput for one or more global secondary indexes of the "
                 "table was exceeded. Consider increasing your provisioning level for the under-provisioned global "
                 "secondary indexes with the UpdateTable API")
MAX_MESSAGE = ("Throughput exceeds the maximum OnDemandThroughput configured on table or index. "
               "Consider increasing your maximum throughput with the UpdateTable API")

#: Operations whose tables' capacity is enforced (the data plane); the rest never draw on it.
DATA_PLANE = frozenset({
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem", "BatchWriteItem", "Query", "Scan",
    "TransactGetItems", "TransactWriteItems", "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction",
})


def enabled_by_default() -> bool:
    """Whether limits are enforced when nothing says: yes, unless ``SHOAL_CAPACITY``
    is ``off`` (or ``0``, ``false``, ``no``)."""
    return os.environ.get(ENV, "on").strip().lower() not in ("off", "0", "false", "no")


class Bucket:
    """A token bucket: ``rate`` tokens a second, at most ``capacity`` kept."""

    __slots__ = ("tokens", "updated", "rate", "capacity")

    def __init__(self, rate: float, capacity: float, now: float, tokens: float | None = None) -> None:
        self.rate, self.capacity, self.updated = rate, capacity, now
        self.tokens = capacity if tokens is None else tokens

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def retune(self, rate: float, capacity: float, now: float) -> None:
        """A new rate from now on (UpdateTable): what was earned so far is kept, up to the new capacity."""
        self.refill(now)
        self.rate, self.capacity = rate, capacity
        self.tokens = min(self.tokens, capacity)


@dataclass(frozen=True)
class Limit:
    """One bucket's identity and what a throttle by it reports."""

    key: str  # "<table id>/<index or ''>/read|write"
    rate: float
    capacity: float
    reason: str  # ThrottlingReason's reason
    resource: str  # the table's or index's ARN
    message: str


@dataclass(frozen=True)
class Policy:
    """A table's limits: by index name (None: the table) and kind."""

    reads: dict
    writes: dict


def policy_of(table) -> Policy | None:
    """The limits a table's description sets, or None when it has none
    (an on-demand table without OnDemandThroughput maximums: what
    ``shoal.api.catalog.has_limits`` tells, which the catalog keeps per
    table as ``Table.limited``)."""
    desc = table.description
    provisioned = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED") == "PROVISIONED" \
        and desc.get("ProvisionedThroughput") is not None
    reads, writes = {}, {}
    arn = desc.get("TableArn", table.name)

    def add(index: str | None, settings: dict | None, on_demand: dict | None, resource: str) -> None:
        kind_name = "Index" if index is not None else "Table"
        message = INDEX_MESSAGE if index is not None else TABLE_MESSAGE
        for kind, out, units, maximum in ((READ, reads, "ReadCapacityUnits", "MaxReadRequestUnits"),
                                          (WRITE, writes, "WriteCapacityUnits", "MaxWriteRequestUnits")):
            key = f"{table.table_id}/{index or ''}/{kind}"
            label = "Read" if kind == READ else "Write"
            if provisioned and settings and settings.get(units):
                rate = float(settings[units])
                out[index] = Limit(key, rate, rate * BURST_S, f"{kind_name}{label}ProvisionedThroughputExceeded",
                                   resource, message)
            elif not provisioned and on_demand and (on_demand.get(maximum) or -1) > 0:
                rate = float(on_demand[maximum])
                out[index] = Limit(key, rate, rate * ON_DEMAND_BURST_S,
                                   f"{kind_name}{label}MaxOnDemandThroughputExceeded", resource, MAX_MESSAGE)

    add(None, desc.get("ProvisionedThroughput"), desc.get("OnDemandThroughput"), arn)
    for gsi in desc.get("GlobalSecondaryIndexes") or ():
        add(gsi["IndexName"], gsi.get("ProvisionedThroughput"), gsi.get("OnDemandThroughput"),
            gsi.get("IndexArn", f"{arn}/index/{gsi['IndexName']}"))
    if not reads and not writes:
        return None
    return Policy(reads, writes)


class SharedBuckets:
    """Buckets every worker process of a data directory shares, in a file
    they all map: ``SLOTS`` slots, found by the key's digest (linear
    probing), each locked on its own byte range while a worker takes from
    it.  Without a path (an engine with no data directory), the buckets are
    this process's alone."""

    def __init__(self, path: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()  # byte-range locks are per process: threads take this first
        self._slots: dict[bytes, int] = {}
        self._private: dict[bytes, Bucket] | None = None
        self._taken: dict[bytes, float] = {}  # the private buckets' tokens taken in all
        self._fd = -1
        if path is None:
            self._private = {}
            return
        size = len(_MAGIC) + SLOTS * _SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.lockf(self._fd, fcntl.LOCK_EX, len(_MAGIC), 0)
        try:
            if os.fstat(self._fd).st_size != size or os.pread(self._fd, len(_MAGIC), 0) != _MAGIC:
                os.ftruncate(self._fd, 0)  # a file of another layout: start afresh (buckets are not data)
                os.ftruncate(self._fd, size)
                os.pwrite(self._fd, _MAGIC, 0)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, len(_MAGIC), 0)
        self._map = mmap.mmap(self._fd, size)

    def close(self) -> None:
        if self._fd >= 0:
            self._map.close()
            os.close(self._fd)
            self._fd = -1

    def take(self, limit: Limit, wanted: float) -> float:
        """Up to ``wanted`` tokens from the bucket of ``limit`` (refilled to
        now, retuned if its rate changed); what it holds if less, nothing
        if it holds none."""
        digest = hashlib.blake2b(limit.key.encode(), digest_size=16).digest()
        now = self.clock()
        with self._lock:
            if self._private is not None:
                bucket = self._private.get(digest)
                if bucket is None:
                    bucket = self._private[digest] = Bucket(limit.rate, limit.capacity, now)
                got = self._take(bucket, limit, wanted, now)
                self._taken[digest] = self._taken.get(digest, 0.0) + got
                return got
            offset = self._slot(digest)
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT.size, offset)
            try:
                found, tokens, updated, rate, capacity, taken = _SLOT.unpack_from(self._map, offset)
                assert found == digest  # a slot, once claimed, keeps its key (slots are never freed)
                bucket = Bucket(rate, capacity, updated, tokens) if rate > 0 else Bucket(limit.rate, limit.capacity, now)
                got = self._take(bucket, limit, wanted, now)
                _SLOT.pack_into(self._map, offset, digest, bucket.tokens, bucket.updated, bucket.rate, bucket.capacity,
                                taken + got)
                return got
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT.size, offset)

    def taken(self, key: str) -> float:
        """The tokens taken from bucket ``key`` since it was made, by every
        worker: what the limit's users consumed, to within a chunk per
        worker (auto scaling's measure of consumption, ``shoal.autoscaling``)."""
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        with self._lock:
            if self._private is not None:
                return self._taken.get(digest, 0.0)
            offset = self._slot(digest)
            return _SLOT.unpack_from(self._map, offset)[5]

    @staticmethod
    def _take(bucket: Bucket, limit: Limit, wanted: float, now: float) -> float:
        if bucket.rate != limit.rate or bucket.capacity != limit.capacity:
            bucket.retune(limit.rate, limit.capacity, now)
        bucket.refill(now)
        if bucket.tokens <= 0:
            return 0.0
        got = min(wanted, bucket.tokens)
        bucket.tokens -= got
        return got

    def _slot(self, digest: bytes) -> int:
        """The offset of the key's slot, claimed for it if new (under that slot's lock)."""
        offset = self._slots.get(digest)
        if offset is not None:
            return offset
        first = int.from_bytes(digest[:4], "little") % SLOTS
        for probe in range(SLOTS):
            offset = len(_MAGIC) + (first + probe) % SLOTS * _SLOT.size
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT.size, offset)
            try:
                found = bytes(self._map[offset:offset + 16])
                if found == digest:
                    break
                if found == bytes(16):
                    _SLOT.pack_into(self._map, offset, digest, 0.0, 0.0, 0.0, 0.0, 0.0)
                    break
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT.size, offset)
        else:
            raise RuntimeError("every capacity slot is taken")
        self._slots[digest] = offset
        return offset


class _Metered(list):
    """A request's meter entries kept apart while it draws on limited
    throughput: tuples only (not a plain list, so GetItem appends its read
    instead of counting it in a metrics cell's slot)."""

    __slots__ = ()


class Capacity:
    """One worker's view of the limits: the policies of the tables it has
    seen, its local balance of each bucket, and the request it is serving.

    Every data-plane request runs on the worker's event loop thread (group
    commit too); the dispatcher names it in ``current`` while it runs, a
    single attribute store, so that a request to a table without limits
    (``Table.limited`` false: ``Catalog.require`` does not call ``admit``)
    costs nothing more.  Other threads (exports, replication) requiring a
    limited table are not the current request and are never refused."""

    def __init__(self, shared: SharedBuckets) -> None:
        self.shared = shared
        #: (operation, writes, request, ctx) of the request being served; None between requests.
        self.current: tuple | None = None
        #: (its meter before, its entries, {table name: policy}) once it drew on a limited table.
        self.metered: tuple | None = None
        self._policies: dict[str, tuple[object, Policy | None]] = {}  # table id -> (Table, policy)
        self._balance: dict[str, float] = {}
        self._owner = threading.get_ident()
        self._lock = threading.Lock()

    def admit(self, table) -> None:
        """Catalog.require's hook for a table with limits: refuse the
        current request if a bucket it draws on is empty; otherwise meter
        what it consumes apart, to be charged by ``settle``."""
        current = self.current
        if current is None or threading.get_ident() != self._owner:
            return
        operation, writes, data, ctx = current
        if operation not in DATA_PLANE:
            return
        entry = self._policies.get(table.table_id)
        if entry is None or entry[0] is not table:
            entry = self._policies[table.table_id] = (table, policy_of(table))
        policy = entry[1]
        if policy is None:
            return
        if writes:
            limits = [policy.writes.get(None), *(limit for name, limit in policy.writes.items() if name is not None)]
        else:
            index = data.get("IndexName")
            limits = [policy.reads.get(index if index in policy.reads else None)]
        for limit in limits:
            if limit is not None and not self._has(limit):
                exc = ProvisionedThroughputExceededException(limit.message, [
                    {"reason": limit.reason, "resource": limit.resource}])
                exc.table = table  # a batch answers the table's part unprocessed (shoal.api.batch)
                raise exc
        metered = self.metered
        if metered is None:  # meter this request apart (and pass it on to the metrics after)
            metered = self.metered = (ctx.meter, _Metered(), {})
            ctx.meter = metered[1]
        metered[2][table.name] = policy

    def settle(self, ctx) -> None:
        """Charge what the current request consumed from the limited tables
        it drew on, and hand its meter entries on to where they were going."""
        metered, self.metered = self.metered, None
        outer, entries, admitted = metered
        ctx.meter = outer
        for (table_name, index, kind), units in consumed(entries).items():
            policy = admitted.get(table_name)
            if policy is not None:
                limit = (policy.reads if kind == READ else policy.writes).get(index)
                if limit is not None:
                    self._spend(limit, units)
        if outer is not None:
            outer += entries

    # -- balances ------------------------------------------------------------------------

    def _has(self, limit: Limit) -> bool:
        """Whether this worker holds a positive balance of ``limit``, taking a chunk if not."""
        balance = self._balance.get(limit.key, 0.0)
        if balance > 0:
            return True
        chunk = max(1.0, limit.rate * CHUNK_S)
        got = self.shared.take(limit, chunk - balance)
        with self._lock:
            balance = self._balance[limit.key] = self._balance.get(limit.key, 0.0) + got
        return balance > 0

    def _spend(self, limit: Limit, units: float) -> None:
        """Charge ``units``: the balance may go below zero, by at most the
        bucket's capacity (its burst): one request far larger than the rate
        (a batch of 400 KB items on a one-unit table) throttles the table for
        at most the burst's 300 seconds, not for hours."""
        with self._lock:
            self._balance[limit.key] = max(-limit.capacity, self._balance.get(limit.key, 0.0) - units)


def consumed(entries) -> dict:
    """{(table name, index or None, READ|WRITE): units} of a request's meter
    entries (the forms ``shoal.api.common.meter`` documents)."""
    from shoal.api.common import READ as METER_READ, WRITE as METER_WRITE

    out: dict = {}
    for entry in entries:
        if type(entry) is not tuple:
            continue
        if len(entry) == 2:
            table, amount = entry
            if type(amount) is int:  # GetItem: 4 KB blocks * 2 + consistent
                key, units = (table, None, READ), (amount >> 1) * (1.0 if amount & 1 else 0.5)
            else:
                key, units = (table, None, WRITE), amount
        else:
            table, kind, units, index = entry
            if kind == METER_READ:
                key = (table, index, READ)
            elif kind == METER_WRITE:
                key = (table, index, WRITE)
            else:
                continue
        out[key] = out.get(key, 0.0) + units
    return out
