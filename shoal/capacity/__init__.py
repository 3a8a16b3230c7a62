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
rate and a chunk each.  Across nodes over one PostgreSQL store, each
node has its own data directory, so its own file: a node grants the whole
rate, two nodes twice it; ``shared_buckets`` gives such a server the
database's buckets instead (``shoal.capacity.postgres_buckets``, a row per
bucket, one transaction per chunk), which every node shares.  (The
dispatcher, ``shoal.server.dispatch``, still makes the file's buckets
itself: until it calls ``shared_buckets``, capacity over PostgreSQL is
per node.)

BatchGetItem and BatchWriteItem answer each item their tables' throughput
cannot serve as unprocessed (UnprocessedKeys, UnprocessedItems) and are
refused only when none could be processed (every table they name is
throttled), as DynamoDB does: a table's part is admitted when the table is
required, then item by item (``Capacity.admits_another``), so one table's
part may be processed in part.

The daily budget for decreases of provisioned throughput is
``shoal.capacity.decreases``.

Requests served off the worker's event loop (an MRSC table's item requests,
consensus rounds on a thread pool) are admitted and charged by
``shoal.capacity.off_loop``, a second holder of allowances beside the loop's.

Per-partition limits (hot keys), opt-in: ``shoal.capacity.partitions``.
The control plane's documented rate (2,500 requests a second):
``Capacity.control_plane`` and ``shoal.capacity.control_plane``.

Which tables reach the hook: ``Catalog.require`` calls ``Capacity.admit``
only for tables marked ``limited`` (provisioned capacity, or an on-demand
maximum); a plain on-demand table is marked, and so meets the peak rule,
only when every table is (``catalog.LIMIT_EVERY_TABLE``: per-partition
limits, the dynamodb-faithful profile), docs/capacity.md says why.  The
account and table quotas CreateTable and UpdateTable enforce are in
``shoal.api.tables``.

What a limited table costs a request far from its limit: a GetItem or
PutItem is charged when ``Catalog.require`` admits it, inline there (the
table version's ``Plan`` kept on the table, each ``Allowance`` it draws on
compared with zero, the least it can consume subtracted: half a unit or one
for a read's first 4 KB block, one for a write's first 1 KB); the operation
reports what it consumed beyond that (``Capacity.beyond``: a larger item,
GSI and LSI writes) whether or not metrics are on, and the dispatcher gives
the units back if it fails (``Capacity.failed``).  Any other request's
meter entries are kept apart and charged by ``settle``.  The shared file is
touched once per chunk.
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

from shoal.capacity import on_demand as _on_demand
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
from shoal.capacity import off_loop as _off_loop
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
#: ``Capacity.current``'s first member once the request was charged at admission: the request is
#: then ``(CHARGED, None, None, plan)`` (``Plan.marker``), which no look-up charges again.
CHARGED = "(charged at admission)"
#: A request charged at admission whose units stand whatever happens next (a failed condition).
_KEPT = (CHARGED, None, None, None)
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
            # its maximum, or else the account's per-table quota (on_demand.maximum)
            cap, max_reason, _ = _on_demand.maximum(on_demand.get(maximum), kind, kind_name)
            floor = min(warm, cap)
            out[index] = Limit(key, floor, floor * ON_DEMAND_BURST_S, f"{kind_name}{label}KeyRangeThroughputExceeded",
                               resource, PEAK_MESSAGE, warm, cap, max_reason)

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


def shared_buckets(engine, data_dir: str | None) -> SharedBuckets:
    """The buckets a server's workers share: over a PostgreSQL store, its
    database's (``shoal.capacity.postgres_buckets``: every node shares one
    budget); else the data directory's file (``<data dir>/capacity``:
    every worker of this machine), or without one this process's own."""
    inner = getattr(engine, "inner", engine)  # (an engine encrypted at rest wraps the store's)
    dsn, schema = getattr(inner, "dsn", None), getattr(inner, "schema", None)
    if dsn is not None and schema is not None:
        from shoal.capacity.postgres_buckets import PostgresBuckets

        return PostgresBuckets(dsn, schema)
    return SharedBuckets(os.path.join(data_dir, "capacity") if data_dir else None)


class _Metered(list):
    """A request's meter entries kept apart while it draws on limited
    throughput: tuples only (not a plain list, so GetItem appends its read
    instead of counting it in a metrics cell's slot)."""

    __slots__ = ()


class Allowance:
    """This worker's balance of one shared bucket: what it may grant before
    it takes the next chunk (``CHUNK_S`` of the rate) from the bucket.  A
    request is admitted while the balance is positive and charged after it
    ran, so most requests pay a comparison and a subtraction; the balance
    may fall to ``floor`` (minus the bucket's burst), a debt the next chunks
    pay back first."""

    __slots__ = ("limit", "balance", "floor")

    def __init__(self, limit: Limit) -> None:
        self.limit, self.balance, self.floor = limit, 0.0, -limit.capacity


#: What a request draws on where nothing limits it: a balance that never runs out (charging
#: infinity leaves infinity), so the hot path needs no test for "no limit".
UNLIMITED = Allowance(Limit("", 0.0, float("inf"), "", "", ""))
UNLIMITED.balance = float("inf")


class Plan:
    """What one version of a table's description sets for its requests,
    worked out once (``Capacity._plan``): the allowance a read of the table
    or of each GSI draws on, those every write checks (the table's, then
    each GSI's: DynamoDB throttles a table's writes when a GSI has no write
    capacity left), and which allowance each kind of consumed unit is
    charged to.  A new version of the table (UpdateTable) is a new catalog
    ``Table`` object, hence a new plan; the allowances carry over by key."""

    __slots__ = ("table", "name", "policy", "read", "write", "index_reads", "writes", "charged_reads",
                 "charged_writes", "owner", "direct", "marker", "write_alone")

    def __init__(self, table, policy: Policy | None, allowance: Callable[[Limit], Allowance],
                 owner: "Capacity | None" = None, direct: bool = False) -> None:
        self.table, self.name, self.policy = table, table.name, policy
        self.owner = owner
        #: ``owner`` when its GetItems and PutItems are charged at admission (``Capacity.admit``,
        #: ``Catalog.require``), else None: not an MRSC table's (its item requests run as consensus
        #: rounds, metered their own way), nor any table's with per-partition limits on.
        self.direct = owner if direct and table.description.get("MultiRegionConsistency") != "STRONG" else None
        reads = {index: allowance(limit) for index, limit in policy.reads.items()} if policy is not None else {}
        writes = {index: allowance(limit) for index, limit in policy.writes.items()} if policy is not None else {}
        self.read, self.write = reads.get(None, UNLIMITED), writes.get(None, UNLIMITED)
        #: A Query or Scan of a GSI with limits draws on the GSI's reads; of an LSI, on the table's.
        self.index_reads = {index: a for index, a in reads.items() if index is not None}
        self.writes = tuple(a for a in (writes.get(None), *(a for i, a in writes.items() if i is not None))
                            if a is not None)
        #: The table's write allowance when it is the only one a write checks (no GSI has limits), else None.
        self.write_alone = self.writes[0] if len(self.writes) == 1 and None in writes else None
        self.charged_reads, self.charged_writes = reads, writes
        #: What ``Capacity.current`` becomes once a request was charged at admission to this plan.
        self.marker = (CHARGED, None, None, self)


_get_ident = threading.get_ident


class Capacity:
    """One worker's view of the limits: the plans of the tables it has
    seen, its allowance of each bucket, and the request it is serving.

    Every data-plane request runs on the worker's event loop thread (group
    commit too); the dispatcher names it in ``current`` while it runs, a
    single attribute store, so that a request to a table without limits
    (``Table.limited`` false: ``Catalog.require`` does not call ``admit``)
    costs nothing more.  Other threads (exports, replication) requiring a
    limited table are not the current request and are never refused, nor
    is a control-plane request; both checks are made only before a refusal
    (``_refuse``), off the common path.  What another thread's look-up does
    meanwhile is bounded: it may take a chunk, or make the current request's
    charge take the general way.

    The cost on a limited table far from its limit, per request: a GetItem
    or PutItem is charged inline by ``Catalog.require`` (the plan kept on the
    table, its allowances compared with zero, its least units subtracted),
    without a call; any other request goes through ``admit`` (the same
    checks, its meter swapped for this worker's list) and ``settle`` (its
    entries charged).  No object is made per request: the entries list and
    the admitted tables' map are this worker's, reused."""

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
        # Every table has partitions, or a test lowered the table quota (on_demand.quota_lowered)
        # that a plain on-demand table can then reach: the catalog hands each to ``admit``.
        if partitions is not None or _on_demand.quota_lowered():
            from shoal.api import catalog

            catalog.LIMIT_EVERY_TABLE = True
        #: (operation, writes, request, ctx) of the request being served; None between requests.
        #: A GetItem or PutItem charged at admission (``admit``, ``Catalog.require``) is then its
        #: plan's ``marker``, ``(CHARGED, None, None, plan)``: a second look-up charges nothing, and
        #: ``beyond``, ``condition_failed`` and ``failed`` know what it was charged to.  The
        #: dispatcher sets None when the request ends: nothing of a request is kept past it.
        self.current: tuple | None = None
        #: The request's meter entries (this worker's one list) once it drew on a limited table,
        #: else None: the dispatcher then calls ``settle``.
        self.metered: _Metered | None = None
        self._entries = _Metered()
        self._counts = [0, 0]  # a GetItem's meter: two counts of one-block reads, then any entries
        self._outer = None  # the meter the request had before (the metrics cell's), restored by settle
        self._first: Plan | None = None  # the plan of the request's first limited table
        #: Table name -> plan of the request's other limited tables (and its first, with hot keys).
        self._admitted: dict[str, Plan] = {}
        #: {(table name, index, kind): [hot key identities]} of the request being metered.
        self._hot: dict[tuple, list] = {}
        self._allowances: dict[str, Allowance] = {}  # bucket key -> this worker's allowance
        self._owner = _get_ident()
        #: The allowances of the requests other threads serve (``off_loop``).
        self._off_loop = _off_loop.OffLoop(self)

    def admit(self, table) -> None:
        """Catalog.require's hook for a table with limits: refuse the
        current request if an allowance it draws on is spent and the shared
        bucket has none to give.  A GetItem or PutItem (without per-partition
        limits, not of an MRSC table) is charged here and now the least it
        can consume (a read's first 4 KB block; a write's first 1 KB unit to
        the table) and reports anything beyond that through ``beyond``: no
        ``settle`` follows, and ``failed`` gives the units back if it fails.
        ``Catalog.require`` does the same inline while the allowance holds a
        balance.  Any other request is metered apart, to be charged by
        ``settle``.  Another thread's look-up is never refused nor charged."""
        current = self.current
        if current is None or _get_ident() != self._owner:
            return
        operation, writes, data, ctx = current
        if operation is CHARGED:  # its table, required again (or, for a moment, another thread's)
            return
        plan = table.plan
        if plan is None or plan.owner is not self:
            plan = self._plan(table)
        if plan.direct is self and (operation == "GetItem" or operation == "PutItem"):
            if writes:
                for allowance in plan.writes:
                    if allowance.balance <= 0 and not self._replenish(allowance):
                        self._refuse(allowance, table, operation)
                plan.write.balance -= 1.0
            else:
                allowance = plan.read
                if allowance.balance <= 0 and not self._replenish(allowance):
                    self._refuse(allowance, table, operation)
                # No floor to check: it was admitted on a positive balance, and one unit is less than a burst.
                allowance.balance -= 1.0 if data.get("ConsistentRead") else 0.5
            self.current = plan.marker
            return
        if writes:
            for allowance in plan.writes:
                if allowance.balance <= 0 and not self._replenish(allowance):
                    self._refuse(allowance, table, operation)
        else:
            allowance = plan.index_reads.get(data["IndexName"], plan.read) if "IndexName" in data else plan.read
            if allowance.balance <= 0 and not self._replenish(allowance):
                self._refuse(allowance, table, operation)
        if self.partitions is not None:
            self._admit_keys(table, operation, data, writes, plan)
        if self.metered is None:  # the request's first limited table: meter it apart, pass it on after
            self._outer = ctx.meter
            ctx.meter = self.metered = self._counts if operation == "GetItem" else self._entries
            self._first = plan
        elif plan is not self._first:
            self._admitted[plan.name] = plan

    def off_loop(self, ctx, table, writes: bool, index: str | None = None, admit: bool = True):
        """The charge of a request on ``table`` served on another thread than
        this worker's loop (an MRSC table's rounds, ``shoal.capacity.off_loop``):
        refused now if an allowance it draws on is spent, else a context to
        run it in, which charges what it meters when it ends.  One that does
        nothing for a table without limits, or on the loop's own thread,
        where ``admit`` and ``settle`` charge the request.  Without
        ``admit``, charged but never refused."""
        if not table.limited or _get_ident() == self._owner:
            return _off_loop.NO_CHARGE
        return self._off_loop.charge(ctx, table, writes, index, admit)

    def beyond(self, table, kind: str, units: float, index_units: dict | None = None) -> None:
        """What a GetItem or PutItem charged at admission consumed beyond
        that, whatever the request's meter (metrics on or off): ``kind`` READ,
        the blocks of a read after its first; WRITE, the units of a write
        after its first, and ``index_units``' GSI and LSI writes as
        ``write_item`` reports them.  Nothing for a request metered apart
        (``settle`` charges what its meter received)."""
        plan = self._charged_for(table)
        if plan is None:
            return
        charged = plan.charged_reads if kind == READ else plan.charged_writes
        if index_units:
            for name, by_index in (index_units.get("GlobalSecondaryIndexes") or {}).items():
                self._take_from(charged.get(name), by_index)
            units += sum((index_units.get("LocalSecondaryIndexes") or {}).values())
        self._take_from(charged.get(None), units)

    def _charged_for(self, table) -> "Plan | None":
        """The plan that charged the request being served at admission, if
        it was charged for ``table`` on this worker's thread; else None."""
        current = self.current
        if current is None or current[0] is not CHARGED or _get_ident() != self._owner:
            return None
        plan = current[3]
        return plan if plan is not None and plan.table is table else None

    @staticmethod
    def _take_from(allowance: "Allowance | None", units: float) -> None:
        if allowance is not None and units:
            balance = allowance.balance - units
            allowance.balance = balance if balance > allowance.floor else allowance.floor

    def condition_failed(self, table, units: float) -> None:
        """A write charged at admission (a PutItem) whose condition failed:
        DynamoDB still consumes ``units`` of write capacity (the existing
        item's size, or one), so the unit taken at admission stands, the
        rest is taken now, and ``failed`` gives nothing back.  Nothing for a
        request metered apart: its meter's entry is charged by ``settle``."""
        plan = self._charged_for(table)
        if plan is None:
            return
        self._take_from(plan.charged_writes.get(None), units - 1.0)
        self.current = _KEPT  # ``failed`` refunds nothing

    def failed(self, writes: bool, data: dict) -> None:
        """The dispatcher's word that the request being served (whether it
        ``writes``, its body ``data``) failed: if it was
        charged at admission, those units are given back (its operation
        meters nothing either: DynamoDB charges no read for a refused
        GetItem, nor Shoal for a write refused before its condition was
        evaluated; one whose condition failed kept its charge,
        ``condition_failed``)."""
        charged = self.current
        if charged is not None and charged[0] is CHARGED and charged[3] is not None:
            plan = charged[3]
            self.current = _KEPT
            if writes:
                plan.write.balance += 1.0
            else:
                plan.read.balance += 1.0 if data.get("ConsistentRead") else 0.5

    def _admit_keys(self, table, operation: str, data: dict, writes: bool, plan: Plan) -> None:
        """Per-partition limits: refuse the request if a hot key it draws on is
        spent, else note its keys for ``settle`` (which then takes the long way)."""
        if operation not in DATA_PLANE or _get_ident() != self._owner:
            return
        hot = self._hot_keys(table, operation, data, writes, plan.policy)
        if self.metered is None:
            self._hot.clear()
        keys = self._hot
        for where, ident in hot:
            keys.setdefault(where, []).append(ident)
        self._admitted[plan.name] = plan

    def _plan(self, table) -> Plan:
        """The plan of this version of ``table``, made and kept on it (``Table.plan``)."""
        plan = table.plan = Plan(table, policy_of(table, self.shared.rules), self._allowance, self,
                                 self.partitions is None)
        return plan

    def _allowance(self, limit: Limit) -> Allowance:
        """This worker's allowance of ``limit``'s bucket (its balance kept across table versions)."""
        allowance = self._allowances.get(limit.key)
        if allowance is None:
            allowance = self._allowances[limit.key] = Allowance(limit)
        elif allowance.limit != limit:
            allowance.limit, allowance.floor = limit, -limit.capacity
            allowance.balance = max(allowance.balance, allowance.floor)
        return allowance

    def admits_another(self, table, writes: bool, units: float, index_units: dict | None = None) -> bool:
        """Whether a batch (BatchGetItem, BatchWriteItem) may process one more
        item of ``table``: ``refuses_another`` finds no throttle."""
        return self.refuses_another(table, writes, units, index_units) is None

    def refuses_another(self, table, writes: bool, units: float, index_units: dict | None = None):
        """The throttle refusing a batch (BatchGetItem, BatchWriteItem) one
        more item of ``table``, or None if it may process it, the request
        having consumed ``units`` of the table's reads or writes so far and,
        for writes, ``index_units`` (``{"GlobalSecondaryIndexes": {name:
        units}, "LocalSecondaryIndexes": ...}``, ``write_item``'s form; an
        LSI's units are the table's).

        DynamoDB answers each item its throughput cannot serve unprocessed and
        refuses the batch only when it could process none (the batch raises
        the throttle then); so an item is admitted as ``admit`` admits a
        request, while every allowance it draws on holds a positive balance
        once what the batch consumed is counted (the next chunk taken if
        not), and ``settle`` charges the processed items afterwards.  None
        where nothing limits the table here (not limited, not admitted by
        this worker's hook, another thread's)."""
        if not table.limited:
            return None
        if _get_ident() != self._owner:  # a batch naming an MRSC table, served off the loop: each table's
            # items admitted there, and charged there (shoal.api.batch)
            return self._off_loop.refusal(table, writes, units, index_units)
        current = self.current
        if current is None:
            return None
        plan = table.plan
        if plan is None or plan.owner is not self:
            return None
        if not writes:
            return None if self._holds_past(plan.read, units) else self._batch_throttle(plan.read, table)
        by_index = {}
        if index_units:
            units += sum((index_units.get("LocalSecondaryIndexes") or {}).values())
            by_index = index_units.get("GlobalSecondaryIndexes") or {}
        for index, allowance in plan.charged_writes.items():
            if not self._holds_past(allowance, units if index is None else by_index.get(index, 0.0)):
                return self._batch_throttle(allowance, table)
        return None

    def refuses_statement(self, table, writes: bool):
        """The throttle refusing a BatchExecuteStatement's next statement on
        ``table``, served on the loop, or None if it may run: as
        ``refuses_another`` admits a batch's next item, counting what the
        batch's earlier statements consumed of the table and its GSIs (its
        meter entries, kept apart until ``settle`` charges them).  Requiring
        the table admits a statement while the balance is positive, which
        alone would let a whole batch through on a balance of one unit."""
        if not table.limited or _get_ident() != self._owner:
            return None
        entries = self.metered
        if not entries or self._first is None:
            return self.refuses_another(table, writes, 0.0)
        kind = WRITE if writes else READ
        units, by_index = 0.0, {}
        for (name, index, what), amount in consumed(entries, self._first.name).items():
            if name == table.name and what == kind:
                if index is None:
                    units += amount
                else:
                    by_index[index] = by_index.get(index, 0.0) + amount
        return self.refuses_another(table, writes, units,
                                    {"GlobalSecondaryIndexes": by_index} if by_index else None)

    def _batch_throttle(self, allowance: Allowance, table):
        exc = self._throttle(allowance.limit)
        exc.table = table
        return exc

    def _holds_past(self, allowance: Allowance, owed: float) -> bool:
        """Whether ``allowance`` holds more than ``owed`` (what the request
        consumed from it, not yet charged), taking the next chunk if not."""
        if allowance.balance - owed > 0:
            return True
        limit = allowance.limit
        allowance.balance += self.shared.take(limit, max(1.0, limit.rate * CHUNK_S) - (allowance.balance - owed))
        return allowance.balance - owed > 0

    def _replenish(self, allowance: Allowance) -> bool:
        """Take the next chunk of the bucket (and what pays back a debt); whether the balance is now positive."""
        limit = allowance.limit
        allowance.balance += self.shared.take(limit, max(1.0, limit.rate * CHUNK_S) - allowance.balance)
        return allowance.balance > 0

    def _refuse(self, allowance: Allowance, table, operation: str) -> None:
        """Raise the throttle of ``allowance``: for a data-plane request on the
        worker's own thread only.  A control-plane request (DescribeTable,
        UpdateTable lifting a throttle) and another thread's work (an export,
        replication) requiring the table while a request is current are never
        refused: checking that here, on the rare path, keeps it off the common one."""
        if operation not in DATA_PLANE or _get_ident() != self._owner:
            return
        exc = self._throttle(allowance.limit)
        exc.table = table  # a batch answers the table's part unprocessed (shoal.api.batch)
        raise exc

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
        it drew on, and hand its meter entries on to where they were going.
        The common cases are charged here: a GetItem of one 4 KB block, which
        counts itself in the first two slots of a plain list meter (as it does
        in a metrics cell, ``shoal.api.common.meter``), and one item written
        to a table without GSIs; the rest by ``_charge``.

        Only the loop's own thread settles: a request served on another
        thread (an MRSC table's, run off the loop by the replication screen)
        is never metered here (``admit`` passes it by; ``off_loop`` charges
        it), and the request ``metered`` names is then the loop's, which the
        loop settles itself."""
        if _get_ident() != self._owner:
            return
        entries, self.metered = self.metered, None
        outer = ctx.meter = self._outer
        if entries is self._counts:  # a GetItem: [one-block eventual reads, consistent ones, entries...]
            if len(entries) == 2 and not self._hot:  # at most one count: half a unit, or one if consistent
                # No floor to check: it was admitted on a positive balance, and one unit is less than a burst.
                if entries[0]:
                    entries[0] = 0
                    self._first.read.balance -= 0.5
                    if outer is not None:  # a GetItem's metrics cell: the same count
                        outer[0] += 1
                elif entries[1]:
                    entries[1] = 0
                    self._first.read.balance -= 1.0
                    if outer is not None:
                        outer[1] += 1
                return
            name = self._first.name
            counted = [(name, 2)] * entries[0] + [(name, 3)] * entries[1]
            entries[0] = entries[1] = 0
            rest = entries[2:]
            del entries[2:]
            entries = self._entries
            entries += counted
            entries += rest
        elif len(entries) == 1 and not self._hot:
            entry = entries.pop()
            plan = self._first
            if entry.__class__ is tuple and len(entry) == 2 and entry[0] == plan.name:  # a write's (table, units)
                amount = entry[1]
                if amount.__class__ is int:  # a GetItem's (table, blocks * 2 + consistent) from PartiQL
                    allowance, units = plan.read, (amount >> 1) * (1.0 if amount & 1 else 0.5)
                else:
                    allowance, units = plan.write, amount
                balance = allowance.balance - units
                allowance.balance = balance if balance > allowance.floor else allowance.floor
                if outer is not None:
                    outer.append(entry)
                return
            entries.append(entry)
        self._charge(entries)
        if outer is not None:
            outer += entries
        del entries[:]

    def _charge(self, entries) -> None:
        """Charge a request's entries (any number, any form) to its tables' allowances and hot keys."""
        admitted = self._admitted
        first = self._first
        admitted.setdefault(first.name, first)
        hot = self._hot
        for where, units in consumed(entries, first.name).items():
            table_name, index, kind = where
            plan = admitted.get(table_name)
            if plan is not None:
                allowance = (plan.charged_reads if kind == READ else plan.charged_writes).get(index)
                if allowance is not None:
                    balance = allowance.balance - units
                    allowance.balance = balance if balance > allowance.floor else allowance.floor
            idents = hot.get(where) if hot else None
            if idents:  # the keys' shares, equal; a debt of at most one second of the partition's rate
                rules = self.partitions.rules
                floor = -(rules.read_units if kind == READ else rules.write_units)
                share = units / len(idents)
                balances = self._key_balance
                for ident in idents:
                    balances[ident] = max(floor, balances.get(ident, 0.0) - share)
        admitted.clear()
        hot.clear()

    def _throttle(self, limit: Limit) -> ProvisionedThroughputExceededException:
        """The error a throttle by ``limit`` answers: provisioned, or on
        demand the maximum's when it is below the ceiling, else the peak's."""
        if not limit.warm:
            return ProvisionedThroughputExceededException(limit.message, [
                {"reason": limit.reason, "resource": limit.resource}])
        if limit.maximum and limit.maximum <= self.shared.ceilings.get(limit.key, limit.warm):
            if limit.max_reason.endswith("AccountLimitExceeded"):  # the quota, not a configured maximum
                return _on_demand.AccountLimitExceeded([{"reason": limit.max_reason, "resource": limit.resource}])
            return OnDemandThrottlingException(MAX_MESSAGE, [{"reason": limit.max_reason,
                                                              "resource": limit.resource}])
        return OnDemandThrottlingException(limit.message, [{"reason": limit.reason, "resource": limit.resource}])

    # -- balances by limit (the control plane; tests) ---------------------------------------

    def balance(self, key: str) -> float:
        """This worker's balance of bucket ``key`` (0 if it never drew on it)."""
        allowance = self._allowances.get(key)
        return allowance.balance if allowance is not None else 0.0

    def _has(self, limit: Limit) -> bool:
        """Whether this worker holds a positive balance of ``limit``, taking a chunk if not."""
        allowance = self._allowance(limit)
        return allowance.balance > 0 or self._replenish(allowance)

    def _spend(self, limit: Limit, units: float) -> None:
        """Charge ``units``: the balance may go below zero, by at most the
        bucket's capacity (its burst): one request far larger than the rate
        (a batch of 400 KB items on a one-unit table) throttles the table for
        at most the burst's 300 seconds, not for hours."""
        allowance = self._allowance(limit)
        allowance.balance = max(allowance.floor, allowance.balance - units)


def consumed(entries, table_name: str | None = None) -> dict:
    """{(table name, index or None, READ|WRITE): units} of a request's meter
    entries (the forms ``shoal.api.common.meter`` documents; its READ and
    WRITE kinds are this module's strings).  A bare number is a single-item
    write's units to ``table_name`` (the form a write may meter into its own
    table's metrics cell, ``shoal.metrics.recorder``); without one it is skipped."""
    out: dict = {}
    for entry in entries:
        if type(entry) is not tuple:
            if table_name is not None and type(entry) in (int, float):
                key = (table_name, None, WRITE)
                out[key] = out.get(key, 0.0) + entry
            continue
        if len(entry) == 2:
            table, amount = entry
            if type(amount) is int:  # GetItem: 4 KB blocks * 2 + consistent
                key, units = (table, None, READ), (amount >> 1) * (1.0 if amount & 1 else 0.5)
            else:
                key, units = (table, None, WRITE), amount
        else:
            table, kind, units, index = entry
            if kind == READ or kind == WRITE:
                key = (table, index, kind)
            else:
                continue
        out[key] = out.get(key, 0.0) + units
    return out
