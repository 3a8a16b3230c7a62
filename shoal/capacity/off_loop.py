"""Capacity for requests served off the worker's event loop: a
multi-Region strongly consistent (MRSC) table's item requests.

``Capacity.admit`` and ``settle`` keep one request at a time, the loop's
(``Capacity.current``): every other thread's look-up of a limited table is
neither refused nor charged, which is right for an export or a restore.
But an MRSC table's PutItem, UpdateItem, DeleteItem, strongly consistent
GetItem, Query and Scan are consensus rounds that wait for other regions,
and run on a thread pool (``shoal.replication.strong``); without this
module they drew on no capacity at all.

``OffLoop`` is a worker's second holder of allowances, beside the loop's:
it takes chunks from the same shared buckets (``SharedBuckets``, across
workers), so the two together grant no more than the rate and a chunk
each.  Its threads share it under a lock: a round costs milliseconds, a
lock a fraction of a microsecond.

A request draws on it through ``charge``: admitted while each allowance
it draws on holds a positive balance (a read: the table's reads, or the
queried GSI's; a write: the table's writes and each GSI's, as DynamoDB
throttles a table's writes on a GSI with none left), else refused with
the throttle ``admit`` would raise.  While the request runs it meters into
a list of its own (``Charge``); when it ends, whether it succeeded or not,
what it metered on the table is charged, and handed on to the meter it had
(the metrics').  So a write whose condition failed is charged what DynamoDB
charges it (the existing item's size, or one unit: ``meter_failed_write``),
as on any other table.

A batch that names an MRSC table is served off the loop whole, its other
tables' items too: BatchWriteItem admits each write (``refusal``, counting
what the batch consumed of the table and has not charged yet, as the loop's
``Capacity.refuses_another`` does) and charges its other tables' writes
here once its transaction committed (``Charge.add``; its MRSC writes are
charged round by round); BatchExecuteStatement runs each statement that is
not a round in a ``charge`` of its own, admitted and charged in turn
(``shoal.api.partiql``).  BatchGetItem, where a part with ConsistentRead on
an MRSC table is a round per key, admits each key of every table
(``refusal``, counting what the batch read of it) and charges what it read
once it ran, its rounds included (``shoal.api.batch``): the same code on
the loop, where ``settle`` charges instead (the replication screen sends
such a batch off the loop, ``shoal.replication.protocol``).

Not covered: per-partition (hot key) limits of these requests.
"""

from __future__ import annotations

import threading

# The charge of a request nothing limits here: one object, defined in the API
# layer (which may not import this package) and shared by both.
from shoal.api.common import NO_CHARGE


class OffLoop:
    """A worker's allowances for the requests its other threads serve."""

    def __init__(self, capacity) -> None:
        self.capacity = capacity  # the worker's ``Capacity``: its shared buckets and its throttles
        self._lock = threading.Lock()
        self._allowances: dict = {}  # bucket key -> Allowance

    def charge(self, ctx, table, writes: bool, index: str | None = None, admit: bool = True):
        """Admit a request on limited ``table`` (refused with its throttle when
        an allowance it draws on is spent and the shared bucket has none to
        give; never without ``admit``); the ``Charge`` to run it in."""
        from shoal.capacity import policy_of

        capacity = self.capacity
        policy = policy_of(table, capacity.shared.rules)
        if policy is None:
            return NO_CHARGE
        if not admit:
            limits = []
        elif writes:
            limits = list(policy.writes.values())
        else:
            limit = policy.reads.get(index) if index is not None else None
            limits = [limit or policy.reads.get(None)]
        with self._lock:
            for limit in limits:
                if limit is not None and not self._holds(limit):
                    exc = capacity._throttle(limit)
                    exc.table = table
                    raise exc
        return Charge(self, ctx, table, policy)

    def refusal(self, table, writes: bool, owed: float = 0.0, index_owed: dict | None = None):
        """The throttle refusing one more item of a batch served off the loop
        on limited ``table``, or None if it may draw on it: as ``charge``
        admits a request, but answered rather than raised (the batch then
        leaves the item unprocessed, and is refused with it when it could
        process none).  ``owed``: what the batch consumed of the table so far
        and has not yet charged (a BatchWriteItem's writes to a table other
        than an MRSC one, charged (``Charge.add``) once its transaction
        committed; an MRSC table's, each a round, are charged as each ends
        and owe nothing), with, for writes, ``index_owed`` (``write_item``'s
        form: an LSI's units are the table's, a GSI's its own), as
        ``Capacity.refuses_another`` counts them on the loop."""
        from shoal.capacity import policy_of

        policy = policy_of(table, self.capacity.shared.rules)
        if policy is None:
            return None
        by_index = {}
        if index_owed:
            owed += sum((index_owed.get("LocalSecondaryIndexes") or {}).values())
            by_index = index_owed.get("GlobalSecondaryIndexes") or {}
        if writes:
            limits = [(limit, owed if index is None else by_index.get(index, 0.0))
                      for index, limit in policy.writes.items()]
        else:
            limits = [(policy.reads.get(None), owed)]
        with self._lock:
            for limit, units in limits:
                if limit is not None and not self._holds(limit, units):
                    exc = self.capacity._throttle(limit)
                    exc.table = table
                    return exc
        return None

    def _holds(self, limit, owed: float = 0.0) -> bool:
        """Whether the allowance of ``limit`` holds more than ``owed`` (what the
        request consumed of it, not yet charged), taking the next chunk (and
        what pays back a debt) if not.  Under the lock."""
        from shoal.capacity import CHUNK_S

        allowance = self._allowance(limit)
        if allowance.balance - owed > 0:
            return True
        allowance.balance += self.capacity.shared.take(
            limit, max(1.0, limit.rate * CHUNK_S) - (allowance.balance - owed))
        return allowance.balance - owed > 0

    def _allowance(self, limit):
        from shoal.capacity import Allowance

        allowance = self._allowances.get(limit.key)
        if allowance is None:
            allowance = self._allowances[limit.key] = Allowance(limit)
        elif allowance.limit != limit:  # the table changed (UpdateTable): the balance carries over
            allowance.limit, allowance.floor = limit, -limit.capacity
        return allowance

    def spend(self, policy, consumed: dict) -> None:
        """Charge ``consumed`` ({(table name, index, kind): units}, of one
        table) to the allowances ``policy`` sets: a balance may fall below
        zero, to at most minus the bucket's burst, a debt the next chunks pay."""
        from shoal.capacity import READ

        with self._lock:
            for (_, index, kind), units in consumed.items():
                limit = (policy.reads if kind == READ else policy.writes).get(index)
                if limit is None or not units:
                    continue
                allowance = self._allowance(limit)
                allowance.balance = max(allowance.floor, allowance.balance - units)


class Charge:
    """One request's draw on a limited table off the loop: entered, the
    request meters into a list of its own; left (however the request ended),
    what it metered on the table, and what ``add`` was told, is charged and
    the entries handed on to the meter it had."""

    __slots__ = ("off_loop", "ctx", "table", "policy", "outer", "entries", "added")

    def __init__(self, off_loop: OffLoop, ctx, table, policy) -> None:
        from shoal.capacity import _Metered

        self.off_loop, self.ctx, self.table, self.policy = off_loop, ctx, table, policy
        self.outer = None
        self.entries = _Metered()  # tuples only: not a metrics cell's plain list
        self.added: dict = {}

    def add(self, kind: str, units: float, index: str | None = None) -> None:
        """Charge ``units`` of ``kind`` (READ, WRITE) to the table, or to its
        GSI ``index``, beyond what the request meters (a BatchWriteItem's
        writes, which its batch meters once they all ran)."""
        key = (self.table.name, index, kind)
        self.added[key] = self.added.get(key, 0.0) + units

    def __enter__(self):
        ctx = self.ctx
        self.outer, ctx.meter = ctx.meter, self.entries
        return self

    def __exit__(self, *exc) -> None:
        from shoal.capacity import consumed

        ctx, entries = self.ctx, self.entries
        ctx.meter = self.outer
        name = self.table.name
        charged = {key: units for key, units in consumed(entries, name).items() if key[0] == name}
        for key, units in self.added.items():
            charged[key] = charged.get(key, 0.0) + units
        self.off_loop.spend(self.policy, charged)
        if self.outer is not None and entries:
            self.outer += entries
