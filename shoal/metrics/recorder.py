"""What one worker process records, in memory, until it flushes to storage.

The request path pays a few dictionary updates (``succeeded``, ``failed``):
values are appended to lists keyed by flat tuples and turned into series and
statistics only when the worker flushes (``drain``), every second from a
background job and before any read of the metrics.  A flush merges by
addition into the data directory (``shoal.metrics.store``), so the workers'
figures add up there.  The flush goes through the group committer when the
server runs one, so it shares the durable commit of the writes in flight
instead of paying its own.
"""

from __future__ import annotations

import asyncio
import logging
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
        self._latency: dict[tuple, list] = {}  # (region, table, operation, minute) -> [ms]
        self._units: dict[tuple, list] = {}  # (region, table, index or None, kind, minute) -> [units]
        self._returned: dict[tuple, list] = {}  # (region, table, operation, minute) -> [items]
        self._counts: dict[tuple, int] = {}  # (region, metric, dimensions, minute) -> how many
        self._retry: dict = {}  # points whose flush failed, merged into the next one

    # -- the request path -------------------------------------------------------------------

    def succeeded(self, region: str, operation: str, table: str | None, ms: float, meter: list,
                  minute: int) -> None:
        """A request answered 200: its latency, per table it touched (the
        tables in its meter, else ``table``), and what it metered."""
        if meter:
            first = meter[0][0]
            self._latency_of(region, first, operation, minute).append(ms)
            if len(meter) > 1:
                seen = {first}
                for entry in meter:
                    name = entry[0]
                    if name not in seen:
                        seen.add(name)
                        self._latency_of(region, name, operation, minute).append(ms)
            for entry in meter:
                self._metered(region, operation, entry, minute)
        elif table is not None:
            self._latency_of(region, table, operation, minute).append(ms)

    def _latency_of(self, region: str, table: str, operation: str, minute: int) -> list:
        key = (region, table, operation, minute)
        values = self._latency.get(key)
        if values is None:
            values = self._latency[key] = []
        return values

    def _metered(self, region: str, operation: str, entry: tuple, minute: int) -> None:
        table, kind, amount, index_units = entry
        if kind == _RETURNED:
            key = (region, table, operation, minute)
            values = self._returned.get(key)
            if values is None:
                self._returned[key] = [amount]
            else:
                values.append(amount)
            return
        if index_units:
            for name, units in (index_units.get("GlobalSecondaryIndexes") or {}).items():
                self._units_of(region, table, name, kind, minute).append(units)
            # A local secondary index shares its table's capacity.
            amount += sum((index_units.get("LocalSecondaryIndexes") or {}).values())
        if amount > 0:
            self._units_of(region, table, None, kind, minute).append(amount)

    def _units_of(self, region: str, table: str, index: str | None, kind: str, minute: int) -> list:
        key = (region, table, index, kind, minute)
        values = self._units.get(key)
        if values is None:
            values = self._units[key] = []
        return values

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
        return bool(self._latency or self._units or self._returned or self._counts or self._retry)

    def drain(self) -> dict:
        """Everything recorded since the last drain, as ``{(series, unit,
        minute start): Stats}``, and forget it."""
        latency, self._latency = self._latency, {}
        units, self._units = self._units, {}
        returned, self._returned = self._returned, {}
        counts, self._counts = self._counts, {}
        points, self._retry = self._retry, {}
        ns = dynamodb.NAMESPACE
        for (region, table, operation, minute), values in latency.items():
            series = (region, ns, "SuccessfulRequestLatency", (("Operation", operation), ("TableName", table)))
            merge_points(points, [((series, "Milliseconds", minute * 60), Stats.of(values))])
        for (region, table, index, kind, minute), values in units.items():
            name = "ConsumedReadCapacityUnits" if kind == _READ else "ConsumedWriteCapacityUnits"
            dims = (("TableName", table),) if index is None else (("GlobalSecondaryIndexName", index),
                                                                   ("TableName", table))
            merge_points(points, [(((region, ns, name, dims), "Count", minute * 60), Stats.of(values))])
        for (region, table, operation, minute), values in returned.items():
            series = (region, ns, "ReturnedItemCount", (("Operation", operation), ("TableName", table)))
            merge_points(points, [((series, "Count", minute * 60), Stats.of(values))])
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
