"""Contributor insights' data: the most accessed and most throttled keys of
the tables and GSIs that have insights enabled (``shoal.api.insights``),
read through CloudWatch's GetInsightRuleReport and DescribeInsightRules.

```
 dispatcher, after an operation ran (or was refused with ProvisionedThroughputExceededException)
      |  only while some table of the worker's region map has insights on: Insights.active is empty otherwise
      v
 Insights.observe    the request's keys, and the GSI entries its writes changed
      |              (writepath.index_watch, set while it ran) -> a Sketch per (rule, minute), in memory
      |              (and the queue of writes no request made: replicated here, bulk puts)
      |  every second (background job) and before any report
      v
 meta insights/d/<minute start u32><rule name>  -> Sketch, merged by every worker's flush
```

A ``Sketch`` keeps a bounded top-K of one rule's contributors in one minute,
in the manner of Space-Saving (Metwally, Agrawal, El Abbadi, 2005), batched:
it lets its table grow to twice its capacity, then keeps the ``capacity``
largest counts and raises its ``floor`` to the largest count it dropped.  A
key first seen after that starts at the floor (its possible past), so that
every kept count is at least the key's true count and at most ``floor``
more, and every dropped key counted at most ``floor``.  Two sketches merge
(``merge``) with the same guarantees, which lets the workers' sketches of a
minute add up in storage, and a report add up the minutes of its window.

Counting follows the request body for the table: the Key (or Item) of the
single-item operations, batches, transactions and PartiQL statements, and a
Query's partition value (the partition-key rules only).  A GSI's keys come
from the write path (``writepath.index_watch``): a write that put or deleted
an entry counts the old item's and the new item's index key, once if the
same key was rewritten; a write that left the index alone (an unprojected
attribute, an item outside a sparse index) counts nothing there.  A
multi-attribute GSI key counts whole: every partition attribute's value in
the partition-key rules, then every sort attribute's (DynamoDB does not
document it; ``shoal.api.insights.key_names``).

Throttles, as the developer guide's "Most throttled items" says: a
ProvisionedThroughputExceededException (or ThrottlingException) counts the
request's keys as throttled and, in ACCESSED_AND_THROTTLED_KEYS mode, as
accessed too (the accessed rules see every request); but "write throttling
caused by insufficient write capacity for a global secondary index is not
measured": a write refused only for a GSI's write capacity (ThrottlingReasons
IndexWrite...) counts as accessed, not throttled.  A throttled write counts
no GSI key (it changed no entry; a GSI's throttled keys are its reads').

Writes no request made (``count_applied_write``): a write replicated from
another region counts here as an access of its table key and of the GSI
entries it changed, as a local write does (the guide: insights "monitor
global table replicas as distinct tables" and "write data is replicated
across all replicas"); so does a bulk put's (undocumented; it spends the
table's write units).  They are queued by the writing thread and counted
by the event loop's round.  Time to live deletions are not counted: they
consume no write throughput and are no data-plane request, and the guide
bills (counts) "each item that is written or read via a data plane
operation"; their replicas' deletes in other regions are replicated writes
there, and count.

Which tables count is this worker's map ``active``, reloaded every second
by the background job (``Insights.__call__``); a setting reaches every
worker before its status turns from ENABLING to ENABLED.  PartiQL counts the
key its WHERE names by equalities (an INSERT, its item).  A Scan counts the
keys of the items it returned (its request names none; a projection without
the key attributes, or Select COUNT, leaves nothing to count).  Not counted:
a throttled Scan's keys, a SELECT without the partition key, items a batch returned unprocessed
(counted as accessed), writes that fail (a condition, say), and the writes
of multi-Region strong consistency rounds applied here (``shoal.replication.strong``
does not call ``count_applied_write`` yet).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import struct
import time
from threading import get_ident
from typing import Callable

import orjson

from shoal.api import writepath
from shoal.api.insights import (  # noqa: F401 - count_applied_write: what writers outside a request call
    ACCESSED,
    count_applied_write,
    counters_changed,
    has_rules,
    key_names,
    live_settings,
    register_counter,
    rules_of,
)
from shoal.errors import ProvisionedThroughputExceededException, ShoalError

log = logging.getLogger("shoal")

DATA_PREFIX = b"insights/d/"
MEMORY_CAPACITY = 1000  # contributors a worker keeps per rule and minute between flushes
STORED_CAPACITY = 200  # contributors kept per rule and minute in storage
RETENTION_S = 15 * 86400
_MINUTE = struct.Struct(">I")
_READS_WRITES = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem"})
#: The operations that may write items: while one runs, the write path tells which GSI entries it changed
_ITEM_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems",
                          "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"})


class Sketch:
    """A bounded top-K of counts (see the module's docstring)."""

    __slots__ = ("capacity", "counts", "floor", "total")

    def __init__(self, capacity: int = MEMORY_CAPACITY) -> None:
        self.capacity = capacity
        self.counts: dict = {}  # key (a tuple of strings) -> estimated count
        self.floor = 0  # the most any key not in ``counts`` may have been counted
        self.total = 0  # observations, exact

    def add(self, key: tuple, n: int = 1) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += n
        else:
            counts[key] = self.floor + n
            if len(counts) > 2 * self.capacity:
                self.compact()
        self.total += n

    def compact(self) -> None:
        """Keep the ``capacity`` largest counts; the floor rises to the largest dropped."""
        if len(self.counts) <= self.capacity:
            return
        ranked = sorted(self.counts.items(), key=lambda item: item[1], reverse=True)
        self.floor = max(self.floor, ranked[self.capacity][1])
        self.counts = dict(ranked[: self.capacity])

    def merge(self, other: "Sketch") -> "Sketch":
        """Add ``other``'s counts to this sketch (a key missing from one side
        counts that side's floor, which bounds what it may have had there)."""
        counts = self.counts
        for key, count in other.counts.items():
            counts[key] = counts.get(key, self.floor) + count
        for key in counts.keys() - other.counts.keys():
            counts[key] += other.floor
        self.floor += other.floor
        self.total += other.total
        if len(counts) > 2 * self.capacity:
            self.compact()
        return self

    def top(self, n: int) -> list[tuple[tuple, int]]:
        """The ``n`` largest (key, count), largest first, ties by key."""
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]

    def encode(self) -> bytes:
        self.compact()
        return orjson.dumps({"f": self.floor, "t": self.total, "c": [[list(k), c] for k, c in self.counts.items()]})

    @classmethod
    def decode(cls, raw, capacity: int = STORED_CAPACITY) -> "Sketch":
        data = orjson.loads(bytes(raw))
        sketch = cls(capacity)
        sketch.floor, sketch.total = data["f"], data["t"]
        sketch.counts = {tuple(key): count for key, count in data["c"]}
        return sketch


def data_key(minute: int, rule_name: str) -> bytes:
    return DATA_PREFIX + _MINUTE.pack(minute) + rule_name.encode()


def write_sketches(txn, pending: dict) -> None:
    """Merge ``{(rule name, minute start): Sketch}`` into storage."""
    for (name, minute), sketch in pending.items():
        key = data_key(minute, name)
        old = txn.get("meta", key)
        merged = Sketch.decode(old).merge(sketch) if old is not None else sketch
        merged.capacity = STORED_CAPACITY
        txn.put("meta", key, merged.encode())


def prune(txn, before: int, limit: int = 1000) -> int:
    """Delete up to ``limit`` stored minutes that start before ``before``; how many."""
    doomed = [bytes(key) for key, _ in txn.scan("meta", DATA_PREFIX, data_key(max(0, before), ""))][:limit]
    for key in doomed:
        txn.delete("meta", key)
    return len(doomed)


def key_text(value) -> str | None:
    """A key attribute's value as the report shows it: a string's or number's
    text, a binary's base64 (as the request carried them)."""
    if type(value) is not dict:
        return None
    text = value.get("S") or value.get("N") or value.get("B")
    return text if type(text) is str else None


class _Target:
    """The rules of one enabled table or GSI, as the counting needs them."""

    __slots__ = ("hash", "range", "names", "split", "multi", "accessed", "pkc", "pkt", "skc", "skt", "rules")

    def __init__(self, setting: dict) -> None:
        self.hash, self.range = setting["hash"], setting["range"]
        hashes, ranges = key_names(setting)
        #: every key attribute (a multi-attribute GSI key's all), partition first; how many are the partition's
        self.names, self.split = hashes + ranges, len(hashes)
        self.multi = len(hashes) > 1 or len(ranges) > 1
        self.accessed = setting["mode"] == ACCESSED
        names = {rule.kind: rule.name for rule in rules_of(setting)}
        self.pkc, self.pkt, self.skc, self.skt = (names.get(kind) for kind in ("PKC", "PKT", "SKC", "SKT"))
        #: whether throttled -> (partition-key rules, partition-and-sort-key rules) that count the request
        self.rules = {throttled: (tuple(r for r in (self.pkc, self.pkt if throttled else None) if r),
                                  tuple(r for r in (self.skc, self.skt if throttled else None) if r))
                      for throttled in (False, True)}


class _Table:
    __slots__ = ("table_id", "table", "indexes")

    def __init__(self, table_id: str) -> None:
        self.table_id = table_id  # the table's incarnation: a write to a table made again since is not this one's
        self.table: _Target | None = None
        self.indexes: dict[str, _Target] = {}


class Insights:
    """The counting of one worker process, and its background job."""

    __name__ = "contributor_insights"
    per_worker = True  # stores this process's counts (shoal.server.background)

    def __init__(self, engine, catalog, clock: Callable[[], float] = time.time,
                 submit: Callable | None = None) -> None:
        self.engine = engine
        self.catalog = catalog
        self.clock = clock
        self.submit = submit
        #: (region, table name) -> _Table of the tables with insights on; filled in
        #: place, so that the dispatcher may hold it: empty, nothing is counted
        self.active: dict[tuple, _Table] = {}
        #: whether some GSI of ``active`` has insights on: only then do writes report their GSI entries
        self.watches_indexes = False
        self.pending: dict[tuple, Sketch] = {}  # (rule name, minute start) -> Sketch
        #: writes no request of this worker made (replicated here, a bulk put's), from any thread:
        #: (table, keys, old item, new item, minute), counted on the event loop (``_count_applied``)
        self.applied: collections.deque = collections.deque()
        self._pruned_at = 0.0
        register_counter(self)  # the writes no request makes reach it through count_applied_write

    # -- what is enabled --------------------------------------------------------------------

    def reload(self) -> None:
        """Read which tables and GSIs have insights on (ENABLING or ENABLED, not failing)."""
        found: dict[tuple, _Table] = {}
        with self.engine.read() as txn:
            for table, setting in live_settings(txn, self.catalog):
                if not has_rules(setting):
                    continue
                entry = found.get((table.region, table.name))
                if entry is None:
                    entry = found[(table.region, table.name)] = _Table(table.table_id)
                if setting["index"]:
                    entry.indexes[setting["index"]] = _Target(setting)
                else:
                    entry.table = _Target(setting)
        active = self.active  # changed key by key: a request counting meanwhile sees one or the other
        for gone in active.keys() - found.keys():
            del active[gone]
        active.update(found)
        self.watches_indexes = any(entry.indexes for entry in found.values())
        counters_changed()

    # -- counting ---------------------------------------------------------------------------

    def counting(self, job: Callable[[], bytes], region: str, operation: str, data: dict) -> Callable[[], bytes]:
        """``job`` (the dispatcher's run of a request), counting the request's
        keys once it ran, or once it was refused for want of throughput.  The
        dispatcher wraps a job only while ``active`` holds a table, so that a
        server without insights pays one attribute test per request.  A job
        run again alone after its group commit failed counts once.

        A write changes GSI entries the request does not name (an UpdateItem's
        old and new index keys): while a request that may write to a table
        with a GSI that has insights on runs, ``writepath.index_watch``
        collects them.  Jobs run one at a time on the event loop, so the hook
        is the running request's alone, but for threads that write meanwhile
        (a bulk put's), whose writes it leaves out (they count themselves:
        ``count_applied_write``)."""
        observe = self.observe
        watch = False
        if self.watches_indexes and operation in _ITEM_WRITES:
            if operation in _READS_WRITES:  # the common case inlined
                name = data.get("TableName")
                entry = self.active.get((region, name))
                if entry is None and type(name) is str and name.startswith("arn:"):
                    entry = _entry(self.active, region, name)
                watch = entry is not None and bool(entry.indexes)
            else:
                watch = self._writes_watched(region, operation, data)
        def counted() -> bytes:
            writes = None  # with a GSI watched, this run's writes: a run that fails counts none of them
            if watch:
                writes, ident = [], get_ident()

                def collect(table, old, new, written) -> None:
                    if get_ident() == ident:  # not a bulk put's thread writing meanwhile
                        writes.append((table, old, new, written))

                writepath.index_watch = collect
            try:
                body = job()
            except ProvisionedThroughputExceededException as exc:
                if not counted.__dict__.get("seen"):
                    counted.seen = True
                    # A throttle for want of a GSI's write capacity is not measured (the developer
                    # guide's "Most throttled items"): the request counts as accessed only.
                    observe(region, operation, data, not _by_index_writes(exc))
                raise
            finally:
                if watch:
                    writepath.index_watch = None
            if not counted.__dict__.get("seen"):
                counted.seen = True
                observe(region, operation, data, False, body, writes)
            return body

        return counted

    def _writes_watched(self, region: str, operation: str, data: dict) -> bool:
        """Whether a batch, transaction or PartiQL write may change the entries
        of a GSI that has insights on (PartiQL: always)."""
        try:
            return self._names_watched(region, operation, data)
        except Exception:  # a body the validator passed but this reading did not foresee: watch it
            return True

    def _names_watched(self, region: str, operation: str, data: dict) -> bool:
        active = self.active
        if operation == "BatchWriteItem":
            names = data.get("RequestItems") or ()
        elif operation == "TransactWriteItems":
            names = [part.get("TableName") for action in data.get("TransactItems") or () for part in action.values()]
        else:
            return True
        for name in names:
            entry = _entry(active, region, name)
            if entry is not None and entry.indexes:
                return True
        return False

    def observe(self, region: str, operation: str, data: dict, throttled: bool, body: bytes | None = None,
                writes: list | None = None) -> None:
        """Count a request's keys (it ran, or was throttled; ``body``: its answer, which a Scan's keys come
        from; ``writes``: the GSI entries it changed, as ``writepath.index_watch`` reported them)."""
        try:
            self._observe(region, operation, data, throttled, body)
            if writes:
                self._index_writes(writes, int(self.clock() // 60) * 60)
        except Exception:  # a body the operation accepted but this reading did not foresee: never fail a request
            log.error("contributor insights could not read a %s request:\n", operation, exc_info=True)

    def _observe(self, region: str, operation: str, data: dict, throttled: bool, body: bytes | None = None) -> None:
        active = self.active
        minute = int(self.clock() // 60) * 60
        if operation in _READS_WRITES:
            name = data.get("TableName")
            entry = active.get((region, name))  # _entry inlined for the common case, a name
            if entry is None and type(name) is str and name.startswith("arn:"):
                entry = _entry(active, region, name)
            if entry is not None:
                self._item(entry, data.get("Item") if operation == "PutItem" else data.get("Key"), throttled, minute)
        elif operation == "Query":
            entry = _entry(active, region, data.get("TableName"))
            if entry is not None:
                index = data.get("IndexName")
                target = entry.indexes.get(index) if index is not None else entry.table
                if target is not None:
                    values = _partition_values(data, target.names[:target.split])
                    if values is not None:
                        self._count(target.rules[throttled][0], values, minute)
        elif operation == "Scan" and body is not None:  # the items it read, by the answer (its request names none)
            entry = _entry(active, region, data.get("TableName"))
            if entry is not None:
                index = data.get("IndexName")
                target = entry.indexes.get(index) if index is not None else entry.table
                if target is not None:
                    for item in orjson.loads(body).get("Items") or ():
                        self._key(target, item, throttled, minute)
        elif operation == "BatchGetItem":
            for name, spec in (data.get("RequestItems") or {}).items():
                entry = _entry(active, region, name)
                if entry is not None:
                    for key in spec.get("Keys") or ():
                        self._item(entry, key, throttled, minute)
        elif operation == "BatchWriteItem":
            for name, requests in (data.get("RequestItems") or {}).items():
                entry = _entry(active, region, name)
                if entry is not None:
                    for request in requests:
                        put = request.get("PutRequest")
                        if put is not None:
                            self._item(entry, put.get("Item"), throttled, minute)
                        else:
                            self._item(entry, (request.get("DeleteRequest") or {}).get("Key"), throttled, minute)
        elif operation in ("TransactGetItems", "TransactWriteItems"):
            for action in data.get("TransactItems") or ():
                for kind, part in action.items():
                    entry = _entry(active, region, part.get("TableName"))
                    if entry is not None:
                        self._item(entry, part.get("Item") if kind == "Put" else part.get("Key"), throttled, minute)
        elif operation in ("ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"):
            self._statements(region, operation, data, throttled, minute)

    def _statements(self, region: str, operation: str, data: dict, throttled: bool, minute: int) -> None:
        """PartiQL: an INSERT's item; the key a SELECT, UPDATE or DELETE names
        by equalities in its WHERE (on an index, its partition key)."""
        from shoal.api.partiql import request_statements
        from shoal.partiql import ast
        from shoal.partiql.translate import bind_value, split_key

        for parsed in request_statements(operation, data):
            if isinstance(parsed, ShoalError):
                continue
            statement, params = parsed
            target = statement.select if isinstance(statement, ast.Exists) else statement
            entry = self.active.get((region, target.table))
            if entry is None:
                continue
            if isinstance(target, ast.Insert):
                self._item(entry, bind_value(target.item, params)["M"], throttled, minute)
                continue
            index = target.index if isinstance(target, ast.Select) else None
            schema = entry.indexes.get(index) if index is not None else entry.table
            if schema is None or target.where is None:  # no index rules, or a scan
                continue
            key = split_key(target.where, schema.names, params)[0]
            if index is None:
                self._item(entry, key, throttled, minute)
            else:
                values = tuple(key_text(key.get(name)) for name in schema.names[:schema.split])
                if None not in values:
                    self._count(schema.rules[throttled][0], values, minute)

    def _item(self, entry: _Table, item, throttled: bool, minute: int) -> None:
        """Count one key (or an item's) for the table.  A GSI's keys are not the
        request's: a write that ran reports the entries it changed
        (``_index_writes``), and a throttled write changed none; a throttle's
        GSI keys are not counted (see the module's docstring)."""
        if type(item) is not dict:
            return
        if entry.table is not None:
            self._key(entry.table, item, throttled, minute)

    def _key(self, target: _Target, item: dict, throttled: bool, minute: int) -> None:
        if target.multi:
            key = _whole_key(target, item)
            if key is not None:
                partition_rules, sort_rules = target.rules[throttled]
                self._count(partition_rules, key[:target.split], minute)
                if sort_rules:
                    self._count(sort_rules, key, minute)
            return
        # key_text inlined: this runs for every key of every counted request
        value = item.get(target.hash)
        text = (value.get("S") or value.get("N") or value.get("B")) if type(value) is dict else None
        if type(text) is not str:
            return  # a GSI the item is not in (sparse)
        partition_rules, sort_rules = target.rules[throttled]
        self._count(partition_rules, (text,), minute)
        if sort_rules:
            value = item.get(target.range)
            sort = (value.get("S") or value.get("N") or value.get("B")) if type(value) is dict else None
            if type(sort) is str:
                self._count(sort_rules, (text, sort), minute)

    def _index_writes(self, writes: list, minute: int) -> None:
        """Count the GSI keys item writes changed: for each enabled GSI whose
        entry a write put or deleted, the old item's key and the new item's
        (once if the same key was rewritten: one index write).  An item
        without the index's key attributes has no entry there (sparse)."""
        active = self.active
        count = self._count
        for table, old, new, written in writes:
            entry = active.get((table.region, table.name))
            if entry is None:
                continue
            for name in written:
                target = entry.indexes.get(name)
                if target is None:
                    continue
                partition_rules, sort_rules = target.rules[False]
                counted = None
                split = target.split
                for item in (old, new):  # key_text inlined: this runs for every watched write
                    if item is None:
                        continue
                    if target.multi:
                        key = _whole_key(target, item)
                        if key is None:
                            continue
                    else:
                        value = item.get(target.hash)
                        text = (value.get("S") or value.get("N") or value.get("B")) if type(value) is dict else None
                        if type(text) is not str:
                            continue
                        if target.range is None:
                            key = (text,)
                        else:
                            value = item.get(target.range)
                            sort = (value.get("S") or value.get("N") or value.get("B")) if type(value) is dict \
                                else None
                            if type(sort) is not str:
                                continue
                            key = (text, sort)
                    if key == counted:
                        continue
                    counted = key
                    count(partition_rules, key[:split], minute)
                    if sort_rules:
                        count(sort_rules, key, minute)

    def _count(self, rules: tuple, key: tuple, minute: int) -> None:
        pending = self.pending
        for rule in rules:
            sketch = pending.get((rule, minute))
            if sketch is None:
                sketch = pending[(rule, minute)] = Sketch()
            counts = sketch.counts
            if key in counts:  # Sketch.add's common case, inlined
                counts[key] += 1
                sketch.total += 1
            else:
                sketch.add(key)

    # -- writes no request made -------------------------------------------------------------

    def applied_write(self, table, keys: dict, old_raw, new_item: dict | None) -> None:
        """Queue a write that no request made (``count_applied_write``) if its
        table has insights on; any thread may call it: the queue is counted by
        the event loop's background round (and before a report), so that the
        sketches stay the event loop's alone."""
        entry = self.active.get((table.region, table.name))
        if entry is None or entry.table_id != table.table_id:
            return
        old = None
        if entry.indexes and old_raw is not None:  # the old index keys, read while the transaction holds them
            old = writepath.stored_item(old_raw)
        self.applied.append((table, keys, old, new_item, int(self.clock() // 60) * 60))

    def _count_applied(self) -> None:
        """Count the queued writes as accessed: the table's key, and for each GSI
        with insights on whose entry the write put or deleted (its key, or what
        it projects, changed), the old and the new index key, as a request's
        write counts them (``_index_writes``)."""
        applied = self.applied
        while applied:
            table, keys, old, new, minute = applied.popleft()
            entry = self.active.get((table.region, table.name))
            if entry is None or entry.table_id != table.table_id:
                continue
            try:
                if entry.table is not None:
                    self._key(entry.table, keys, False, minute)
                if entry.indexes:
                    written = [name for name in entry.indexes if _entry_written(table, name, old, new)]
                    if written:
                        self._index_writes([(table, old, new, written)], minute)
            except Exception:  # never fail the background round for one write
                log.error("contributor insights could not count a write to %s:\n", table.name, exc_info=True)

    # -- storing ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what this worker counted, now, in a transaction of its own (before a report)."""
        self._count_applied()
        pending, self.pending = self.pending, {}
        if pending:
            with self.engine.write() as txn:
                write_sketches(txn, pending)

    def __call__(self) -> bool:
        """The background round: store what was counted (through the group
        committer when serving), drop minutes past retention now and then,
        and reload the settings."""
        self._count_applied()
        pending, self.pending = self.pending, {}
        if pending:
            self._store(pending)
        now = self.clock()
        more = False
        if now - self._pruned_at > 600:
            with self.engine.write() as txn:
                more = prune(txn, int(now - RETENTION_S)) > 0
            if not more:
                self._pruned_at = now
        self.reload()
        return more

    def _store(self, pending: dict) -> None:
        submit = self.submit
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # outside the event loop (a test): write at once
            submit = None
        if submit is None:
            with self.engine.write() as txn:
                write_sketches(txn, pending)
            return

        def job() -> bytes:
            with self.engine.write() as txn:
                write_sketches(txn, pending)
            return b""

        def done(future) -> None:
            if future.cancelled() or future.exception() is not None:  # counted again at the next round
                for key, sketch in pending.items():
                    have = self.pending.get(key)
                    self.pending[key] = sketch if have is None else have.merge(sketch)

        submit(job).add_done_callback(done)


def _entry(active: dict, region: str, name) -> _Table | None:
    """The enabled table a request names, by name or by its ARN (``arn:...:table/<name>``)."""
    entry = active.get((region, name))
    if entry is None and type(name) is str and name.startswith("arn:"):
        entry = active.get((region, name.rpartition(":table/")[2]))
    return entry


def _partition_values(data: dict, names: tuple) -> tuple | None:
    """A Query's partition-key value (of each attribute of a multi-attribute
    key), from KeyConditionExpression or KeyConditions; None unless all are fixed."""
    found: dict = {}
    text = data.get("KeyConditionExpression")
    if text is not None:
        from shoal.expressions import ExpressionContext, parse_key_condition

        condition = parse_key_condition(text, ExpressionContext(data.get("ExpressionAttributeNames"),
                                                                 data.get("ExpressionAttributeValues")))
        for name, operator, values in condition.conditions:
            if name in names and operator == "EQ" and name not in found:
                found[name] = key_text(values[0])
    else:
        conditions = data.get("KeyConditions") or {}
        for name in names:
            spec = conditions.get(name) or {}
            values = spec.get("AttributeValueList") or ()
            if spec.get("ComparisonOperator") == "EQ" and values:
                found[name] = key_text(values[0])
    out = tuple(found.get(name) for name in names)
    return None if None in out else out


def _entry_written(table, name: str, old: dict | None, new: dict | None) -> bool:
    """Whether a write from ``old`` to ``new`` puts or deletes index ``name``'s
    entry, as ``indexes.maintain`` decides it: the entry's key changed, or the
    attributes it projects did (None: no item)."""
    index = (table.index_map or {}).get(name)
    if index is None:
        return False
    old_key = _index_key_of(index, old)
    new_key = _index_key_of(index, new)
    if old_key != new_key:
        return True
    if old_key is None:
        return False  # in the index neither before nor after
    if index.projected is None:
        return old != new
    return any(old.get(attr) != new.get(attr) for attr in index.projected)


def _index_key_of(index, item: dict | None) -> tuple | None:
    """The values of ``item``'s key attributes in ``index``; None if it has no entry there."""
    if item is None:
        return None
    names = (index.hash_keys + index.range_keys) or tuple(n for n in (index.hash_key, index.range_key) if n)
    values = tuple(item.get(name) for name in names)
    return None if None in values else values


def _whole_key(target: _Target, item: dict) -> tuple | None:
    """The texts of ``item``'s key attributes in ``target`` (partition first), or
    None if one is missing: the item has no entry in that (sparse) index."""
    out = []
    for name in target.names:
        text = key_text(item.get(name))
        if text is None:
            return None
        out.append(text)
    return tuple(out)


def _by_index_writes(exc: ProvisionedThroughputExceededException) -> bool:
    """Whether a throttle was for want of a GSI's write capacity alone (its
    ThrottlingReasons: IndexWriteProvisionedThroughputExceeded and the like)."""
    reasons = exc.reasons
    return bool(reasons) and all(str(reason.get("reason", "")).startswith("IndexWrite") for reason in reasons)


# ---------------------------------------------------------------- reading (CloudWatch)


def find_rule(txn, catalog, region: str, name: str, now: float):
    """The enabled rule named ``name`` in ``region``, or None."""
    for _, setting in live_settings(txn, catalog, region):
        if has_rules(setting):
            for rule in rules_of(setting):
                if rule.name == name:
                    return rule
    return None


def all_rules(txn, catalog, region: str, now: float) -> list:
    """Every enabled rule of ``region``, by name."""
    rules = []
    for _, setting in live_settings(txn, catalog, region):
        if has_rules(setting):
            rules.extend(rules_of(setting))
    return sorted(rules, key=lambda rule: rule.name)


def read_minutes(txn, rule_name: str, start: int, end: float) -> list[tuple[int, Sketch]]:
    """(minute start, Sketch) of the rule's stored minutes in [start, end)."""
    out = []
    for minute in range(start - start % 60, math.ceil(end), 60):
        raw = txn.get("meta", data_key(minute, rule_name))
        if raw is not None:
            out.append((minute, Sketch.decode(raw)))
    return out
