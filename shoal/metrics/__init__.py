"""Metrics: DynamoDB's CloudWatch metrics, kept in the data directory, read
through CloudWatch's API and Prometheus.

```
 dispatcher (per request: operation, table, latency, outcome; ctx.meter: consumed units, items returned)
      |                                      shoal.api.indexes (a GSI's backfill: dynamodb.IndexProgress)
      v                                        |
 recorder.Recorder   in memory, per worker: a cell of lists per (region, table, operation)
      |  every second (background job Flusher, through the group committer) and before any read
      v
 store               meta space, metrics/...: series catalog, recent minutes as Stats merged by addition,
      |             older periods sealed into blocks of columns (shoal.metrics.blocks)
      ^        ^                 ^
      |        |                 +-- dynamodb.TtlDeletions (change-log consumer "metrics"), dynamodb.TableGauges
      |        +-- retention.RollUp: seals past hours into day blocks; moves blocks 1 min -> 5 min after 15 days
      |                               -> 1 h after 63 days; deletes them after 455 days
      |
 cloudwatch.CloudWatch (GetMetricStatistics, GetMetricData, ListMetrics, PutMetricData)
 prometheus.exposition (GET /metrics)
```

The package sits between the server and the API: it reads storage, the
catalog and the change log (``shoal.api``), and the server calls it; the API
never imports it (it reports consumption through ``Context.meter``, a list).
"""

from __future__ import annotations

import os
from typing import Callable

from shoal.metrics import dynamodb, prometheus
from shoal.metrics.recorder import Flusher, Recorder
from shoal.metrics.retention import RollUp

ENV = "SHOAL_METRICS"


def enabled_by_default() -> bool:
    """Whether metrics are recorded when nothing says: yes, unless
    ``SHOAL_METRICS`` is ``off`` (or ``0``, ``false``, ``no``)."""
    return os.environ.get(ENV, "on").strip().lower() not in ("off", "0", "false", "no")


class Metrics:
    """The metrics of one worker process: its recorder, and the jobs that
    record and keep what no request records."""

    def __init__(self, engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock
        self.recorder = Recorder(engine, clock)
        self.index_progress = dynamodb.IndexProgress(engine, self.recorder)
        dynamodb.ensure_consumer(engine, True)

    def jobs(self, submit: Callable | None = None) -> list:
        """The background jobs: flush (through ``submit``, the group
        committer, when given), time to live deletions, per-minute table
        figures, roll-up and pruning."""
        from shoal.storage.resident import ColdReads

        cold_reads = ColdReads.for_engine(self.engine)  # one account of what the background reads mapped
        return [Flusher(self.recorder, submit), dynamodb.TtlDeletions(self.engine),
                dynamodb.TableGauges(self.engine, self.clock, cold_reads=cold_reads),
                RollUp(self.engine, self.clock, cold_reads=cold_reads)]

    def exposition(self) -> bytes:
        """Prometheus's text, with this worker's pending figures flushed first."""
        self.recorder.flush()
        return prometheus.exposition(self.engine, self.clock())

    def close(self) -> None:
        """Write what is pending (at shutdown)."""
        self.index_progress.close()
        self.recorder.flush()


def switch_off(engine) -> None:
    """Metrics are off: the change log keeps nothing for their consumer."""
    dynamodb.ensure_consumer(engine, False)
