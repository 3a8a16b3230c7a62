"""Capacity: DynamoDB's throughput limits enforced (issue 20, first slice).

What is limited: a table in provisioned mode has read and write capacity
units per second (ProvisionedThroughput), each of its global secondary
indexes its own; a table in on-demand mode, and each of its GSIs, serves
at once up to its warm throughput or double its previous peak, capped by
its OnDemandThroughput maximums (``shoal.capacity.on_demand``: the peak is
kept beside the bucket and sets its rate).  Each limit is a token bucket (``Bucket``) that
refills at the configured rate and keeps up to ``BURST_S`` (300) seconds of
unused capacity, DynamoDB's burst capacity; a new bucket starts full, so a
new table can spend its first five minutes' worth at once (DynamoDB keeps
burst capacity "from unused capacity"; starting empty would throttle a
freshly made table's first writes, which DynamoDB does not do).  An
on-demand bucket keeps one second of burst.

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
IndexWriteProvisionedThroughputExceeded..., with the table's or index's
ARN); an on-demand table's, ThrottlingException with
TableWriteKeyRangeThroughputExceeded, IndexReadMaxOnDemandThroughputExceeded...

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

The daily budget for decreases of provisioned throughput is
``shoal.capacity.decreases``.

Per-partition limits (hot keys), opt-in: ``shoal.capacity.partitions``.
The control plane's documented rate (2,500 requests a second):
``Capacity.control_plane`` and ``shoal.capacity.control_plane``.

Not yet (issue 20's later slices): the per-table account quotas.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable

from shoal.capacity.on_demand import (
    EMPTY,
    MAX_MESSAGE,
    PEAK_MESSAGE,
    STATE,
    OnDemandRules,
    OnDemandThrottlingException,
    advance,
    ceiling,
)
from shoal.capacity import control_plane as _control
from shoal.capacity import partitions as _partitions
from shoal.capacity.shared_file import map_shared
from shoal.errors import ProvisionedThroughputExceededException

BURST_S = 300.0  # DynamoDB retains up to five minutes of unused read and write capacity
ON_DEMAND_BURST_S = 1.0
DEFAULT_RULES = OnDemandRules()  # DynamoDB's documented numbers (a server reads SHOAL_ON_DEMAND_*)
CHUNK_S = 0.1  # a worker takes this much of a bucket's rate at a time
MAX_KEY_BALANCES = 65536  # hot keys' balances a worker keeps before it starts afresh
SLOTS = 16384
_SLOT = struct.Struct("<16sddddd")  # key digest, tokens, updated (monotonic s), rate, capacity, taken in all
_STRIDE = _SLOT.size + STATE.size  # each slot then an on-demand bucket's peak state (on_demand.STATE)
_MAGIC = b"shoal-capacity-3"
READ, WRITE = "read", "write"
ENV = "SHOAL_CAPACITY"

TABLE_MESSAGE = ("The level of configured provisioned throughput for the table was exceeded. "
                 "Consider increasing your provisioning level with the UpdateTable API")
INDEX_MESSAGE = ("The level of configured provisioned throughput for one or more global secondary indexes of the "
                 "table was exceeded. Consider increasing your provisioning level for the under-provisioned global "
                 "secondary indexes with the UpdateTable API")

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
    rate: float  # on demand: the least rate it can have (its warm throughput, or its maximum if lower)
    capacity: float
    reason: str  # ThrottlingReason's reason
    resource: str  # the table's or index's ARN
    message: str
    #: On demand only: the warm throughput (its rate follows ``on_demand.ceiling``), the maximum
    #: (0: none), and the reason when the maximum is what refuses.
    warm: float = 0.0
    maximum: float = 0.0
    max_reason: str = ""


@dataclass(frozen=True)
class Policy:
    """A table's limits: by index name (None: the table) and kind."""

    reads: dict
    writes: dict


def policy_of(table, rules: OnDemandRules | None = None) -> Policy | None:
    """The limits a table's description sets: its provisioned capacity, or
    on demand its warm throughput, peak and maximums (by ``rules``); None
    for a provisioned table without capacity.  The catalog calls the
    capacity hook only for the tables ``shoal.api.catalog.has_limits``
    marks (``Table.limited``)."""
    rules = rules or DEFAULT_RULES
    desc = table.description
    provisioned = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED") == "PROVISIONED" \
        and desc.get("ProvisionedThroughput") is not None
    reads, writes = {}, {}
    arn = desc.get("TableArn", table.name)

    def add(index: str | None, part: dict, resource: str) -> None:
        kind_name = "Index" if index is not None else "Table"
        message = INDEX_MESSAGE if index is not None else TABLE_MESSAGE
        settings, on_demand, warmed = (part.get("ProvisionedThroughput"), part.get("OnDemandThroughput") or {},
                                       part.get("WarmThroughput") or {})
        for kind, out, units, maximum, warm_units, initial in (
                (READ, reads, "ReadCapacityUnits", "MaxReadRequestUnits", "ReadUnitsPerSecond", rules.read_units),
                (WRITE, writes, "WriteCapacityUnits", "MaxWriteRequestUnits", "WriteUnitsPerSecond",
                 rules.write_units)):
            key = f"{table.table_id}/{index or ''}/{kind}"
            label = "Read" if kind == READ else "Write"
            if provisioned:
                if settings and settings.get(units):
                    rate = float(settings[units])
                    out[index] = Limit(key, rate, rate * BURST_S, f"{kind_name}{label}ProvisionedThroughputExceeded",
                                       resource, message)
                continue
            warm = max(float(warmed.get(warm_units) or 0), initial)
            cap = float(on_demand.get(maximum) or -1)
            cap = cap if cap > 0 else 0.0
            floor = min(warm, cap) if cap else warm
            out[index] = Limit(key, floor, floor * ON_DEMAND_BURST_S, f"{kind_name}{label}KeyRangeThroughputExceeded",
                               resource, PEAK_MESSAGE, warm, cap, f"{kind_name}{label}MaxOnDemandThroughputExceeded")

    add(None, desc, arn)
    for gsi in desc.get("GlobalSecondaryIndexes") or ():
        add(gsi["IndexName"], gsi, gsi.get("IndexArn", f"{arn}/index/{gsi['IndexName']}"))
    if not reads and not writes:
        return None
    return Policy(reads, writes)


class SharedBuckets:
    """Buckets every worker process of a data directory shares, in a file
    they all map: ``SLOTS`` slots, found by the key's digest (linear
    probing), each locked on its own byte range while a worker takes from
    it; an on-demand bucket's slot also holds its peak state, whose
    previous peak sets the bucket's rate.  Without a path (an engine with no
    data directory), the buckets are this process's alone."""

    def __init__(self, path: str | None, clock: Callable[[], float] = time.monotonic,
                 rules: OnDemandRules | None = None) -> None:
        self.clock = clock
        self.path = path
        self.rules = rules or OnDemandRules.from_environment()
        #: key -> the on-demand ceiling (warm or twice the peak) this worker last computed: what
        #: decides whether a throttle is the peak's or the maximum's.
        self.ceilings: dict[str, float] = {}
        self._lock = threading.Lock()  # byte-range locks are per process: threads take this first
        self._slots: dict[bytes, int] = {}
        self._private: dict[bytes, Bucket] | None = None
        self._taken: dict[bytes, float] = {}  # the private buckets' tokens taken in all
        self._peaks: dict[bytes, tuple] = {}  # the private buckets' peak states
        self._fd = -1
        #: What closes with these buckets (the partition buckets beside them).
        self.companions: list = []
        if path is None:
            self._private = {}
            return
        self._fd, self._map = map_shared(path, _MAGIC, len(_MAGIC) + SLOTS * _STRIDE)

    def close(self) -> None:
        while self.companions:
            self.companions.pop().close()
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
                taken = self._taken.get(digest, 0.0)
                rate, capacity = limit.rate, limit.capacity
                if limit.warm:
                    self._peaks[digest], rate, capacity = self._on_demand(limit, self._peaks.get(digest, EMPTY),
                                                                          taken, now)
                if bucket is None:
                    bucket = self._private[digest] = Bucket(rate, capacity, now)
                got = self._take(bucket, rate, capacity, wanted, now)
                self._taken[digest] = taken + got
                return got
            offset = self._slot(digest)
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _STRIDE, offset)
            try:
                found, tokens, updated, rate, capacity, taken = _SLOT.unpack_from(self._map, offset)
                assert found == digest  # a slot, once claimed, keeps its key (slots are never freed)
                bucket = Bucket(rate, capacity, updated, tokens) if rate > 0 else None
                rate, capacity = limit.rate, limit.capacity
                if limit.warm:
                    state, rate, capacity = self._on_demand(limit, STATE.unpack_from(self._map, offset + _SLOT.size),
                                                            taken, now)
                    STATE.pack_into(self._map, offset + _SLOT.size, *state)
                if bucket is None:
                    bucket = Bucket(rate, capacity, now)
                got = self._take(bucket, rate, capacity, wanted, now)
                _SLOT.pack_into(self._map, offset, digest, bucket.tokens, bucket.updated, bucket.rate, bucket.capacity,
                                taken + got)
                return got
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _STRIDE, offset)

    def _on_demand(self, limit: Limit, state: tuple, taken: float, now: float) -> tuple:
        """(the peak state advanced to now, the bucket's rate, its capacity) of an on-demand limit."""
        top = ceiling(limit.warm, state[0])
        served = min(top, limit.maximum) if limit.maximum else top
        state = advance(state, taken, now, self.rules, served)
        top = ceiling(limit.warm, state[0])
        self.ceilings[limit.key] = top
        rate = min(top, limit.maximum) if limit.maximum else top
        return state, rate, rate * ON_DEMAND_BURST_S

    def peak(self, key: str) -> tuple:
        """The peak state of on-demand bucket ``key`` (``on_demand.STATE``'s fields), as last stored."""
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        with self._lock:
            if self._private is not None:
                return self._peaks.get(digest, EMPTY)
            return STATE.unpack_from(self._map, self._slot(digest) + _SLOT.size)

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
    def _take(bucket: Bucket, rate: float, capacity: float, wanted: float, now: float) -> float:
        if bucket.rate != rate or bucket.capacity != capacity:
            bucket.retune(rate, capacity, now)
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
            offset = len(_MAGIC) + (first + probe) % SLOTS * _STRIDE
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _STRIDE, offset)
            try:
                found = bytes(self._map[offset:offset + 16])
                if found == digest:
                    break
                if found == bytes(16):
                    _SLOT.pack_into(self._map, offset, digest, 0.0, 0.0, 0.0, 0.0, 0.0)
                    STATE.pack_into(self._map, offset + _SLOT.size, *EMPTY)
                    break
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _STRIDE, offset)
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

    def __init__(self, shared: SharedBuckets, partitions: "_partitions.PartitionBuckets | None" = None,
                 control_rate: float | None = None) -> None:
        self.shared = shared
        #: Control-plane requests a second per account and region (``shoal.capacity.control_plane``).
        self.control_rate = control_rate if control_rate is not None else _control.rate_from_environment()
        self._control_limits: dict[tuple[str, str], Limit] = {}
        #: Hot keys' buckets when per-partition limits are on (``shoal.capacity.partitions``):
        #: given, or made beside the shared buckets when SHOAL_PARTITION_LIMITS says so.
        if partitions is None and _partitions.enabled():
            partitions = _partitions.PartitionBuckets(shared.path + "-partitions" if shared.path else None,
                                                      clock=shared.clock)
            shared.companions.append(partitions)  # the dispatcher closes the shared buckets
        self.partitions = partitions
        #: (table id, index, kind, key) -> this worker's balance of a hot key's bucket.
        self._key_balance: dict[tuple, float] = {}
        if partitions is not None:  # every table has partitions: the catalog hands each to ``admit``
            from shoal.api import catalog

            catalog.LIMIT_EVERY_TABLE = True
        #: (operation, writes, request, ctx) of the request being served; None between requests.
        self.current: tuple | None = None
        #: (its meter before, its entries, {table name: policy}, {(table name, index, kind): [key
        #: identities]}) once it drew on a limited table.
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
            entry = self._policies[table.table_id] = (table, policy_of(table, self.shared.rules))
        policy = entry[1]
        partitions = self.partitions
        if policy is None and partitions is None:
            return
        if policy is not None:
            if writes:
                limits = [policy.writes.get(None),
                          *(limit for name, limit in policy.writes.items() if name is not None)]
            else:
                index = data.get("IndexName")
                limits = [policy.reads.get(index if index in policy.reads else None)]
            for limit in limits:
                if limit is not None and not self._has(limit):
                    exc = self._throttle(limit)
                    exc.table = table  # a batch answers the table's part unprocessed (shoal.api.batch)
                    raise exc
        hot = self._hot_keys(table, operation, data, writes, policy) if partitions is not None else None
        metered = self.metered
        if metered is None:  # meter this request apart (and pass it on to the metrics after)
            metered = self.metered = (ctx.meter, _Metered(), {}, {})
            ctx.meter = metered[1]
        metered[2][table.name] = policy
        if hot:
            keys = metered[3]
            for where, digest in hot:
                keys.setdefault(where, []).append(digest)

    def _hot_keys(self, table, operation: str, data: dict, writes: bool, policy: Policy | None) -> list:
        """((table name, index, kind), digest) of each partition key the request
        draws on in ``table``, once each it holds capacity; the throttle of the
        first that holds none (``shoal.capacity.partitions``)."""
        partitions = self.partitions
        kind = WRITE if writes else READ
        rate = partitions.rules.write_units if writes else partitions.rules.read_units
        out = []
        balances = self._key_balance
        for index, key in _partitions.request_keys(operation, data, table):
            ident = (table.table_id, index, kind, key)
            balance = balances.get(ident, 0.0)
            if balance <= 0:  # spent: take the next chunk from the shared bucket
                if len(balances) >= MAX_KEY_BALANCES:
                    balances.clear()  # a chunk each, not returned: the keys' buckets refill meanwhile
                got = partitions.take(_partitions.digest_of(*ident), rate, max(1.0, rate * CHUNK_S) - balance)
                balance = balances[ident] = balance + got
                if balance <= 0:
                    exc = self._key_range_throttle(table, index, kind, policy)
                    exc.table = table
                    raise exc
            out.append(((table.name, index, kind), ident))
        return out

    @staticmethod
    def _key_range_throttle(table, index: str | None, kind: str, policy: Policy | None):
        """A hot key's throttle: ``<Table|Index><Read|Write>KeyRangeThroughputExceeded``
        on the table's or index's ARN; a provisioned table answers it as
        ProvisionedThroughputExceededException, an on-demand one as ThrottlingException."""
        reason = f"{'Index' if index else 'Table'}{'Read' if kind == READ else 'Write'}KeyRangeThroughputExceeded"
        resource = f"{table.arn}/index/{index}" if index else table.arn
        limits = (policy.reads if kind == READ else policy.writes) if policy is not None else {}
        limit = limits.get(index) or limits.get(None)
        if limit is not None and not limit.warm:  # provisioned
            return ProvisionedThroughputExceededException(INDEX_MESSAGE if index else TABLE_MESSAGE,
                                                          [{"reason": reason, "resource": resource}])
        return OnDemandThrottlingException(_partitions.HOT_KEY_MESSAGE, [{"reason": reason, "resource": resource}])

    def control_plane(self, operation: str, account: str, region: str) -> None:
        """Refuse a control-plane request (``control_plane.OPERATIONS``) over
        DynamoDB's rate for its account and region with ThrottlingException,
        else count it; any other operation passes.  The dispatcher calls it
        before the operation runs."""
        if operation not in _control.OPERATIONS:
            return
        limit = self._control_limits.get((account, region))
        if limit is None:
            rate = self.control_rate
            limit = self._control_limits[(account, region)] = Limit(
                f"control/{account}/{region}", rate, rate, "", "", _control.PEAK_MESSAGE)
        if not self._has(limit):
            raise _control.ControlPlaneThrottlingException()
        self._spend(limit, 1.0)

    def settle(self, ctx) -> None:
        """Charge what the current request consumed from the limited tables
        it drew on, and hand its meter entries on to where they were going."""
        metered, self.metered = self.metered, None
        outer, entries, admitted, hot = metered
        ctx.meter = outer
        for where, units in consumed(entries).items():
            table_name, index, kind = where
            policy = admitted.get(table_name)
            if policy is not None:
                limit = (policy.reads if kind == READ else policy.writes).get(index)
                if limit is not None:
                    self._spend(limit, units)
            idents = hot.get(where) if hot else None
            if idents:  # the keys' shares, equal; a debt of at most one second of the partition's rate
                rules = self.partitions.rules
                floor = -(rules.read_units if kind == READ else rules.write_units)
                share = units / len(idents)
                balances = self._key_balance
                for ident in idents:
                    balances[ident] = max(floor, balances.get(ident, 0.0) - share)
        if outer is not None:
            outer += entries

    def _throttle(self, limit: Limit) -> ProvisionedThroughputExceededException:
        """The error a throttle by ``limit`` answers: provisioned, or on
        demand the maximum's when it is below the ceiling, else the peak's."""
        if not limit.warm:
            return ProvisionedThroughputExceededException(limit.message, [
                {"reason": limit.reason, "resource": limit.resource}])
        if limit.maximum and limit.maximum <= self.shared.ceilings.get(limit.key, limit.warm):
            return OnDemandThrottlingException(MAX_MESSAGE, [{"reason": limit.max_reason,
                                                              "resource": limit.resource}])
        return OnDemandThrottlingException(limit.message, [{"reason": limit.reason, "resource": limit.resource}])

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
