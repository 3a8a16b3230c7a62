"""What one worker process records, in memory, until it flushes to storage.

The request path is kept to a few C-level operations, because every DynamoDB
request pays for it (issue 17: at most 3% of GetItem and PutItem).  Requests
are recorded in *cells*, one per (region, TableName as the request names it,
operation), made on a request's first sight:

- the dispatcher finds the request's ``(meter, handle)`` with three dict
  subscripts, ``pairs[operation][TableName][region]`` (its strings are
  hashed by the routing and the catalog anyway; a subscript of a dict of
  strings compares them with a ``memcmp``, where a tuple key costs its
  allocation, its hash and three rich comparisons: about 600 instructions
  more per request): the meter is the list the operation meters into
  (``Context.meter``: the cell's own ``sink``, shared by its requests), and
  when the request is answered 200 ``handle.done(seconds)`` is the
  ``append`` of the cell's list of latencies, a C call (a list, not an
  ``array("d")``, whose ``append`` parses its argument with ``PyArg_Parse``:
  400 instructions more; a float is not tracked by the garbage collector);
  a failed request's error is counted by ``failed``;
- the operation meters in the cheapest form that says what it consumed
  (``shoal.api.common.meter``): a GetItem of one 4 KB block adds one to the
  first or second slot of the list (eventually consistent, consistent); a
  larger one appends ``(TableName, blocks * 2 + consistent)``; a single-item
  write to a table without indexes ``(TableName, units)``, or into the
  cell's own list (a plain ``list``, as GetItem tests) just ``units``, a
  float: the cell names the table, and a float is not tracked by the
  garbage collector, where a tuple kept until the flush is (it moved the
  collector's schedule enough to cost PutItem 2-5% in short runs); anything else
  ``(TableName, kind, amount, index or operation)``.  Units are worked out
  at the flush, once per distinct entry.  The dispatcher lets a request
  meter in its first run only (the group committer runs a request again
  alone when its group failed), so its entries count once; they count even
  if that rerun then fails.

A request that names no table (BatchGetItem, BatchWriteItem, transactions,
PartiQL, GetRecords) meters into an ``Entries`` of its own, which passes each
entry on to the cell's sink at once, so that what a request consumed counts
whether it then succeeds or fails: DynamoDB charges a cancelled
TransactWriteItems or ExecuteTransaction, and a PartiQL write whose condition
fails, the write units its evaluation consumed (the capacity enforcement
charges the same entries, ``shoal.capacity.Capacity.settle``), and the
dispatcher tells the recorder of a failure without its handle (but for
the table an ExecuteStatement's condition failed on, which its entries name:
``_Tableless.condition_failed_on``).  When the
request is answered 200 its handle appends its latency with the tables it
metered (``_Answered``), so that the flush counts the latency once for each
of them; a failed request has no latency to count.

Everything else happens when the worker flushes (``drain``), every second from
a background job and before any read of the metrics: a cell's sink is
copied and emptied in place (requests in flight hold it), its list of
latencies replaced by a new one (a request looks ``done`` up when it is
answered), its latencies sorted and bucketed by bisection (``Stats.add_values``), equal entries
counted by ``Counter`` (C); the figures go to the minute of the flush (at
most a second after the request).  A flush merges by addition into the data
directory (``shoal.metrics.store``), so the workers' figures add up there.
It goes through the group committer when the server runs one, so it shares
the durable commit of the writes in flight instead of paying its own.

A cell idle through a flush leaves the table of cells (so that requests
naming tables that do not exist leave nothing behind) but is drained once
more at the next flush, for a request that held it while it ran; one that
runs longer than that loses its figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Callable

from shoal.metrics import dynamodb
from shoal.metrics.stats import Stats
from shoal.metrics.store import merge_points, write_points

log = logging.getLogger("shoal")

_READ, _WRITE, _RETURNED = "read", "write", "returned"  # the kinds of shoal.api.common.meter
_RECORDS, _BYTES = "records", "bytes"  # GetRecords' (shoal.api.common.meter_records)
_CONDITION_FAILED = "condition_failed"  # a batch member's (shoal.api.common.meter_condition_failed)
_CONSUMED = {_READ: "ConsumedReadCapacityUnits", _WRITE: "ConsumedWriteCapacityUnits"}


class Cell:
    """What the requests of one (region, TableName, operation) recorded
    since the last flush."""

    __slots__ = ("key", "sink", "latencies", "done", "pair")

    def __init__(self, key: tuple) -> None:
        self.key = key
        # a request naming a table: [one-block eventually consistent reads, consistent ones, entries...];
        # naming none: its requests' entries as they meter them, and an ``_Answered`` for each answered 200
        self.sink: list = [0, 0] if key[1] is not None else []
        self.latencies: list[float] = []  # seconds
        self.done = self.latencies.append  # a request answered 200 after so many seconds
        #: (meter, handle) of a request, prebuilt; None for requests that name no table (``request``)
        self.pair = (self.sink, self) if key[1] is not None else None

    def request(self, data: dict | None = None) -> tuple[list, "_Tableless"]:
        """(meter, handle) of a request that names no table: an ``Entries``
        of its own, passing its entries on to this cell's sink (the API
        meters no read in a count slot of it), and the request (a cancelled
        transaction's conflicts are counted per table)."""
        meter = Entries(self.sink)
        return meter, _Tableless(self, meter, data)

    def take(self) -> tuple[int, int, list, list]:
        """The counts, entries and latencies recorded so far, emptied in place."""
        sink = self.sink
        if self.pair is None:
            entries, eventual, consistent = sink[:], 0, 0
            del sink[:len(entries)]  # an entry a request adds meanwhile waits for the next flush
        else:
            eventual, consistent, entries = sink[0], sink[1], sink[2:]
            sink[0] = sink[1] = 0
            del sink[2:]
        latencies = self.latencies
        self.latencies = []
        self.done = self.latencies.append
        return eventual, consistent, entries, latencies

    def pending(self) -> bool:
        return bool(self.latencies or (self.sink != [0, 0] if self.pair is not None else self.sink))


class Entries(list):
    """The meter of a request that names no table: tuples only, each naming
    its table first (``shoal.api.common.meter``).

    Given its cell's sink, it passes each entry on to it as it is metered
    (and keeps it, for the tables its latency counts towards): the entries
    of a request that fails count too, since the dispatcher reports a
    failure without the request's handle (``Recorder.failed``).  Without a
    sink it is a plain list of tuples (tests)."""

    __slots__ = ("_through",)

    def __init__(self, sink: list | None = None) -> None:
        super().__init__()
        self._through = sink.append if sink is not None else None

    def append(self, entry: tuple) -> None:
        list.append(self, entry)
        if self._through is not None:
            self._through(entry)

    def extend(self, entries) -> None:
        for entry in entries:
            self.append(entry)

    def __iadd__(self, entries) -> "Entries":  # ``Capacity.settle`` hands a request's entries on so
        self.extend(entries)
        return self


class _Answered:
    """In a cell of requests naming no table: one of them answered 200 after
    ``seconds``, having metered on ``tables``."""

    __slots__ = ("seconds", "tables")

    def __init__(self, seconds: float, tables: set) -> None:
        self.seconds, self.tables = seconds, tables


class _Tableless:
    """The handle of a request that names no table."""

    __slots__ = ("key", "cell", "meter", "data")

    def __init__(self, cell: Cell, meter: list, data: dict | None) -> None:
        self.key, self.cell, self.meter, self.data = cell.key, cell, meter, data

    def done(self, seconds: float) -> None:
        """Answered 200: its latency, for each table it metered (its entries are in the sink already)."""
        if self.meter:
            self.cell.sink.append(_Answered(seconds, {entry[0] for entry in self.meter}))

    def condition_failed_on(self) -> str | None:
        """The table whose condition failed an ExecuteStatement (its one
        statement's), which the request does not name: the one its write
        metered, since a write whose condition fails consumes write units
        (``shoal.api.common.meter_failed_write``).  DynamoDB counts such a
        PartiQL UPDATE or DELETE in the table's ConditionalCheckFailedRequests
        (the Developer Guide's metrics page)."""
        if self.key[2] != "ExecuteStatement":
            return None
        for entry in self.meter:
            return entry[0]
        return None


class Recorder:
    """The DynamoDB metrics of one worker's requests, not yet flushed."""

    def __init__(self, engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock
        self.cells: dict[tuple, Cell] = {}  # (region, TableName, operation) -> Cell
        #: operation -> TableName -> region -> (meter, handle) of a request naming a table: the dispatcher's look-up
        self.pairs: dict[str, dict[str, dict[str, tuple]]] = {}
        self._retired: list[Cell] = []  # cells idle through the last flush, drained once more
        self._counts: dict[tuple, int] = {}  # (region, metric, dimensions, minute) -> how many
        self._values: dict[tuple, list] = {}  # (region, metric, dimensions, unit) -> values (OnlineIndex*)
        self._retry: dict = {}  # points whose flush failed, merged into the next one

    def cell(self, region: str, table, operation: str) -> Cell:
        """The cell of a request (made on first sight)."""
        key = (region, table, operation)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell(key)
            if cell.pair is not None and isinstance(table, str):
                self.pairs.setdefault(operation, {}).setdefault(table, {})[region] = cell.pair
        return cell

    def _unpair(self, key: tuple) -> None:
        """Forget a retired cell in ``pairs`` (and the dicts it leaves empty)."""
        region, table, operation = key
        tables = self.pairs.get(operation)
        regions = tables.get(table) if tables is not None and isinstance(table, str) else None
        if regions is None or regions.pop(region, None) is None:
            return
        if not regions:
            del tables[table]
            if not tables:
                del self.pairs[operation]

    def request(self, region: str, table, operation: str, data: dict | None = None) -> tuple:
        """(meter, handle) of a request not found in ``pairs``: its cell's
        first request, or one that names no table (a list of its own)."""
        cell = self.cell(region, table, operation)
        return cell.pair or cell.request(data)

    def succeeded(self, cell: Cell, meter: list | None, seconds: float) -> None:
        """A request of ``cell`` that metered ``meter`` answered 200 after
        ``seconds`` (what the dispatcher and the API do, for callers without
        them)."""
        sink, handle = cell.pair or cell.request()
        sink += meter or ()
        handle.done(seconds)

    def failed(self, region: str, operation: str | None, table: str | None, error: str, status: int,
               minute: int, reasons: list | None = None) -> None:
        """A request answered with an error (``error`` its type name)."""
        for metric, dimensions in dynamodb.error_metrics(operation, table, error, status, reasons):
            key = (region, metric, dimensions, minute)
            self._counts[key] = self._counts.get(key, 0) + 1

    def count(self, region: str, metric: str, dimensions: tuple, minute: int, n: int = 1) -> None:
        key = (region, metric, dimensions, minute)
        self._counts[key] = self._counts.get(key, 0) + n

    def value(self, region: str, metric: str, dimensions: tuple, unit: str, value: float) -> None:
        """One value of a metric no request records (a GSI's backfill)."""
        self._values.setdefault((region, metric, dimensions, unit), []).append(value)

    # -- flushing ---------------------------------------------------------------------------

    def pending(self) -> bool:
        return bool(self._counts or self._values or self._retry or self._retired
                    or any(cell.pending() for cell in self.cells.values()))

    def drain(self) -> dict:
        """Everything recorded since the last drain, as ``{(series, unit,
        minute start): Stats}``, and forget it."""
        counts, self._counts = self._counts, {}
        values, self._values = self._values, {}
        points, self._retry = self._retry, {}
        start = int(self.clock() // 60) * 60
        acc: dict[tuple, Stats] = {}  # (series, unit) -> Stats of this flush
        retired, self._retired = self._retired, []
        for cell in list(self.cells.values()):
            if not cell.pending():
                del self.cells[cell.key]
                self._unpair(cell.key)
                self._retired.append(cell)
                continue
            _drain_cell(acc, cell)
        for cell in retired:
            if cell.pending():
                _drain_cell(acc, cell)
        ns = dynamodb.NAMESPACE
        for (series, unit), stats in acc.items():
            merge_points(points, [((series, unit, start), stats)])
        for (region, metric, dims, minute), n in counts.items():
            stats = Stats()
            stats.add(1.0, n)
            merge_points(points, [(((region, ns, metric, dims), "Count", minute * 60), stats)])
        for (region, metric, dims, unit), found in values.items():
            stats = Stats()
            stats.add_values(found)
            merge_points(points, [(((region, ns, metric, dims), unit, start), stats)])
        return points

    def flush(self) -> None:
        """Write what is pending, now, in a transaction of its own (before a
        read of the metrics, and at shutdown)."""
        points = self.drain()
        if points:
            with self.engine.write() as txn:
                write_points(txn, points)

    def flush_through(self, submit: Callable | None) -> None:
        """Write what is pending through ``submit`` (the group committer), or
        at once without one; on failure the points wait for the next flush."""
        points = self.drain()
        if not points:
            return
        if submit is None:
            with self.engine.write() as txn:
                write_points(txn, points)
            return

        def job() -> bytes:
            with self.engine.write() as txn:
                write_points(txn, points)
            return b""

        def done(future) -> None:
            if future.cancelled() or future.exception() is not None:
                if not future.cancelled():
                    log.error("metrics flush failed: %r", future.exception())
                merge_points(self._retry, points.items())

        submit(job).add_done_callback(done)


def _add(acc: dict, series: tuple, unit: str, value: float, n: int = 1) -> None:
    stats = acc.get((series, unit))
    if stats is None:
        stats = acc[(series, unit)] = Stats()
    stats.add(float(value), n)


def _drain_cell(acc: dict, cell: Cell) -> None:
    region, requested, operation = cell.key
    eventual, consistent, entries, latencies = cell.take()
    if requested is None:
        _drain_tableless(acc, region, operation, entries)
        return
    table = dynamodb.table_name(requested)
    if table is None:
        return
    if latencies and operation in dynamodb.OPERATIONS:
        series = (region, dynamodb.NAMESPACE, "SuccessfulRequestLatency", (("Operation", operation),
                                                                           ("TableName", table)))
        stats = acc.get((series, "Milliseconds"))
        if stats is None:
            stats = acc[(series, "Milliseconds")] = Stats()
        stats.add_values(latencies, 1000.0)
    for count, code in ((eventual, 2), (consistent, 3)):  # one-block reads: (table, 1 block * 2 + consistent)
        if count:
            _entry(acc, region, (table, code), count)
    for entry, n in Counter(entries).items():
        if entry.__class__ is tuple:
            _entry(acc, region, entry, n)
        else:  # a bare number: a single-item write's units, to the cell's table
            _add(acc, (region, dynamodb.NAMESPACE, _CONSUMED[_WRITE], (("TableName", table),)), "Count", entry, n)


def _drain_tableless(acc: dict, region: str, operation: str, sink: list) -> None:
    """A cell of requests that name no table: their entries, whether the
    request succeeded or failed, and the latency of each answered 200, for
    each table it metered."""
    ns = dynamodb.NAMESPACE
    record = operation in dynamodb.OPERATIONS
    for entry in sink:
        if entry.__class__ is tuple:
            _entry(acc, region, entry, 1)
        elif record:
            for table in entry.tables:
                series = (region, ns, "SuccessfulRequestLatency", (("Operation", operation), ("TableName", table)))
                _add(acc, series, "Milliseconds", entry.seconds * 1000.0)


def _entry(acc: dict, region: str, entry: tuple, n: int) -> None:
    """An entry of ``shoal.api.common.meter``, ``n`` times."""
    ns = dynamodb.NAMESPACE
    if len(entry) == 2:
        table, amount = entry
        if type(amount) is int:  # GetItem: the item's 4 KB blocks * 2 + whether the read was consistent
            _add(acc, (region, ns, _CONSUMED[_READ], (("TableName", table),)), "Count",
                 dynamodb.read_units((amount >> 1) * 4096, amount & 1), n)
        else:  # a single-item write's units
            _add(acc, (region, ns, _CONSUMED[_WRITE], (("TableName", table),)), "Count", amount, n)
        return
    table, kind, amount, detail = entry
    if kind == _RETURNED:
        _add(acc, (region, ns, "ReturnedItemCount", (("Operation", detail), ("TableName", table))), "Count", amount, n)
    elif kind == _CONDITION_FAILED:
        _add(acc, (region, ns, "ConditionalCheckFailedRequests", (("TableName", table),)), "Count", amount, n)
    elif kind == _RECORDS or kind == _BYTES:
        metric, unit = ("ReturnedRecordsCount", "Count") if kind == _RECORDS else ("ReturnedBytes", "Bytes")
        dims = (("Operation", "GetRecords"), ("StreamLabel", detail), ("TableName", table))
        _add(acc, (region, ns, metric, dims), unit, amount, n)
    else:
        dims = (("TableName", table),) if detail is None else (("GlobalSecondaryIndexName", detail),
                                                               ("TableName", table))
        _add(acc, (region, ns, _CONSUMED[kind], dims), "Count", amount, n)


class Flusher:
    """The background job that flushes a worker's recorder."""

    __name__ = "metrics_flusher"
    per_worker = True  # this process's own figures (shoal.server.background)

    def __init__(self, recorder: Recorder, submit: Callable | None = None) -> None:
        self.recorder = recorder
        self.submit = submit

    def __call__(self) -> bool:
        if self.recorder.pending():
            submit = self.submit
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # called outside the event loop (a test): write at once
                submit = None
            self.recorder.flush_through(submit)
        return False
