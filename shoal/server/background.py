"""The background work of one worker process, assembled and scheduled here.

Each job is a callable that does one bounded round of work in its own short
write transaction and returns True while it has more to do.  They run on the
worker's event loop between requests (a round must not hold the loop long):
every second when idle, every 10 ms while any has a backlog.  Watchers are
cheap checks that must not wait a second (the ResidentTrimmer: a table read at
random maps 200 MiB a second, a replication copy thread over 1 GiB a second):
they run every 20 ms on a task of their own, which costs an idle worker about
1% of a core (at 100 ms, a copy's bursts took the source's peak resident size,
VmHWM, while copying 100,000 items to 160-206 MiB; at 20 ms, 105 MiB).

    ChangeLogPruner   drops change records every consumer has passed (shoal.api.writepath)
    IndexJobs         backfills new global secondary indexes, purges deleted ones
    Sweeper           deletes items whose time to live has passed
    Materializer      copies change records into stream shards (the 'streams' consumer)
    Trimmer           drops stream records past their retention
    TriggerRunner     decides trigger deliveries (delivery itself runs on a thread)
    KinesisDelivery   starts the thread sending table changes to Kinesis destinations (shoal.kinesis)
    BackupScheduler   claims scheduled backups that are due (each runs on a thread), prunes expired ones
    IAM pruning       forgets expired temporary credentials (with auth on)
    metrics           flush, time to live deletions, table figures, roll-up (with metrics on: shoal.metrics)

and the one watcher:

    ResidentTrimmer   unmaps LMDB's data file past SHOAL_MAX_MAPPED_RESIDENT_MB of RssFile (shoal.storage.resident)
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import Callable

from shoal.api.indexes import IndexJobs
from shoal.api.schedules import BackupScheduler
from shoal.api.streams import Materializer, Trimmer
from shoal.api.ttl import Sweeper
from shoal.api.changelog import prune_changes
from shoal.kinesis import KinesisDelivery
from shoal.settings import request_clock
from shoal.storage.resident import ResidentTrimmer
from shoal.triggers.runner import TriggerRunner

log = logging.getLogger("shoal")


class ChangeLogPruner:
    """Drops change records past the retention that every consumer has read,
    a bounded amount per round."""

    __name__ = "change_log_pruner"

    def __init__(self, engine, retention_s: float, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.retention_s = retention_s
        self.clock = clock  # the operations' clock: records are stamped with it

    def __call__(self) -> bool:
        with self.engine.write() as txn:
            return prune_changes(txn, self.retention_s, self.clock()) > 0


class BackgroundJobs:
    """The jobs of one worker, and the task that runs them."""

    INTERVAL_S = 1.0  # between rounds while nothing has a backlog
    BUSY_INTERVAL_S = 0.01  # while something has
    WATCH_INTERVAL_S = 0.02  # between rounds of the watchers

    def __init__(self, jobs: list[Callable[[], object]], closers: list[Callable[[], object]] = (),
                 watchers: list[Callable[[], object]] = ()) -> None:
        self.jobs = list(jobs)
        self.watchers = list(watchers)
        self._closers = list(closers)
        self._task: asyncio.Task | None = None
        self._watch_task: asyncio.Task | None = None

    @classmethod
    def for_worker(cls, engine, catalog, *, change_retention_s: float, iam_store=None,
                   extra_jobs=()) -> "BackgroundJobs":
        """Every job a serving worker runs (``extra_jobs``: the metrics')."""
        triggers = TriggerRunner(engine)
        kinesis = KinesisDelivery(engine)
        jobs = [ChangeLogPruner(engine, change_retention_s, request_clock()), IndexJobs(engine), Sweeper(engine, catalog),
                Materializer(engine), Trimmer(engine), triggers, kinesis,
                BackupScheduler(engine, catalog, request_clock())]
        if iam_store is not None:
            jobs.append(iam_store.prune_expired)
        jobs.extend(extra_jobs)
        try:
            trimmer = ResidentTrimmer.for_engine(engine)
        except ValueError as exc:  # a bad SHOAL_MAX_MAPPED_RESIDENT_MB: serve, unbounded, and say so
            log.error("%s; the bound on mapped resident memory is off", exc)
            trimmer = None
        return cls(jobs, [triggers.close, kinesis.close], [trimmer] if trimmer is not None else [])

    def start(self, loop) -> None:
        """Run the jobs on ``loop`` (the worker calls this once serving)."""
        self._task = loop.create_task(self._run())
        if self.watchers:
            self._watch_task = loop.create_task(self._watch())

    def stop(self) -> None:
        for task in (self._task, self._watch_task):
            if task is not None:
                task.cancel()
        self._task = self._watch_task = None

    def close(self) -> None:
        """Release what the jobs hold (the trigger and Kinesis delivery threads)."""
        self.stop()
        for close in self._closers:
            close()

    def run_once(self, jobs=None) -> bool:
        """One round of every job (or of ``jobs``); True if any has more to do."""
        busy = False
        for job in self.jobs if jobs is None else jobs:
            try:
                busy = bool(job()) or busy
            except Exception:
                log.error("background job %s failed:\n%s", getattr(job, "__name__", job), traceback.format_exc())
        return busy

    async def _run(self) -> None:
        while True:
            # Short pauses while a job has a backlog, so it catches up without
            # holding the loop (each round is one bounded transaction).
            await asyncio.sleep(self.BUSY_INTERVAL_S if self.run_once() else self.INTERVAL_S)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.WATCH_INTERVAL_S)
            self.run_once(self.watchers)
