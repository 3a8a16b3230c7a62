"""What one worker process records, in memory, until it flushes to storage.

A request answered 200 costs a few list appends (``succeeded``): its latency
goes to the list of its (region, table, operation), and what the API metered
for it (``shoal.api.common.meter``: ``(region, table, kind, amount, index or
operation)`` tuples, in a list of the request's own) to the worker's list of
consumption.  Nothing the request path keeps holds a container, so the
garbage collector has little to walk.  Series and statistics are worked out
when the worker flushes (``drain``), every second from a background job and
before any read of the metrics, with the sums, the histogram buckets and the
counting of equal consumptions done by C built-ins over whole lists; the
figures go to the minute of the flush (at most a second after the request).
A flush merges by addition into the data directory (``shoal.metrics.store``),
so the workers' figures add up there.  It goes through the group committer
when the server runs one, so it shares the durable commit of the writes in
flight instead of paying its own.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections import Counter, defaultdict
from itertools import repeat
from typing import Callable

from shoal.metrics import dynamodb
from shoal.metrics.stats import Stats
from shoal.metrics.store import merge_points, write_points

log = logging.getLogger("shoal")

_READ, _WRITE, _RETURNED = "read", "write", "returned"  # the kinds of shoal.api.common.meter


class Recorder:
    """The DynamoDB metrics of one worker's requests, not yet flushed."""

    def __init__(self, engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock
        self._latency: defaultdict = defaultdict(list)  # (region, TableName, operation) -> [seconds]
        self._consumed: list = []  # what the API metered, entry by entry
        self._counts: dict[tuple, int] = {}  # (region, metric, dimensions, minute) -> how many
        self._retry: dict = {}  # points whose flush failed, merged into the next one

    def succeeded(self, metered: tuple, seconds: float) -> None:
        """A request answered 200 after ``seconds``: ``metered`` is ``((region,
        TableName, operation), meter)`` (TableName None for a request that
        names its tables elsewhere: each table it metered counts it)."""
        key, meter = metered
        if meter:
            self._consumed.extend(meter)
        if key[1] is not None:
            self._latency[key].append(seconds)
            return
        region, _, operation = key
        for table in {entry[1] for entry in meter}:
            self._latency[(region, table, operation)].append(seconds)

    def failed(self, region: str, operation: str | None, table: str | None, error: str, status: int,
               minute: int, reasons: list | None = None) -> None:
        """A request answered with an error (``error`` its type name)."""
        for metric, dimensions in dynamodb.error_metrics(operation, table, error, status, reasons):
            key = (region, metric, dimensions, minute)
            self._counts[key] = self._counts.get(key, 0) + 1

    def count(self, region: str, metric: str, dimensions: tuple, minute: int, n: int = 1) -> None:
        key = (region, metric, dimensions, minute)
        self._counts[key] = self._counts.get(key, 0) + n

    # -- flushing ---------------------------------------------------------------------------

    def pending(self) -> bool:
        return bool(self._latency or self._consumed or self._counts or self._retry)

    def drain(self) -> dict:
        """Everything recorded since the last drain, as ``{(series, unit,
        minute start): Stats}``, and forget it."""
        latency, self._latency = self._latency, defaultdict(list)
        consumed, self._consumed = self._consumed, []
        counts, self._counts = self._counts, {}
        points, self._retry = self._retry, {}
        start = int(self.clock() // 60) * 60
        ns, operations, table_name = dynamodb.NAMESPACE, dynamodb.OPERATIONS, dynamodb.table_name
        for (region, table, operation), values in latency.items():
            if operation not in operations:
                continue
            series = (region, ns, "SuccessfulRequestLatency", (("Operation", operation),
                                                               ("TableName", table_name(table))))
            stats = Stats.of(list(map(operator.mul, values, repeat(1000.0))))
            merge_points(points, [((series, "Milliseconds", start), stats)])
        for (region, table, kind, amount, detail), n in Counter(consumed).items():
            if kind == _RETURNED:
                series = (region, ns, "ReturnedItemCount", (("Operation", detail), ("TableName", table)))
            else:
                name = "ConsumedReadCapacityUnits" if kind == _READ else "ConsumedWriteCapacityUnits"
                dims = (("TableName", table),) if detail is None else (("GlobalSecondaryIndexName", detail),
                                                                       ("TableName", table))
                series = (region, ns, name, dims)
            stats = Stats()
            stats.add(float(amount), n)
            merge_points(points, [((series, "Count", start), stats)])
        for (region, metric, dims, minute), n in counts.items():
            stats = Stats()
            stats.add(1.0, n)
            merge_points(points, [(((region, ns, metric, dims), "Count", minute * 60), stats)])
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


class Flusher:
    """The background job that flushes a worker's recorder."""

    __name__ = "metrics_flusher"

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
