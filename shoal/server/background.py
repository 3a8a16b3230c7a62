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

Work done once for the whole store, not once per worker: every job not marked
``per_worker`` (those keep per-process state, such as the metrics' flush, or
coordinate by leases or claims of their own: triggers, Kinesis, SNS, the auto
scaler) runs in one worker at a time of all those sharing the store, on every
node over PostgreSQL: the holder of the lease ``background/lease`` in ``meta``
(``SharedWork``; its term ``SHOAL_BACKGROUND_LEASE_S``, default 10 s).  A
holder renews it every few seconds; a worker that stops gives it up at once;
one that dies (kill -9, a machine lost) is replaced when its term ends, or at
once over a data directory, where the holder's process is known to be gone.
Each round of a job is still its own transaction, so a holder that dies
mid-round leaves nothing half done.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
import traceback
from typing import Callable

from shoal.api.indexes import IndexJobs
from shoal.api.jobs import Lease
from shoal.api.schedules import BackupScheduler
from shoal.api.streams import Materializer, Trimmer
from shoal.api.ttl import Sweeper
from shoal.api.changelog import prune_changes
from shoal.auth.iam import shares_store
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


LEASE_KEY = b"background/lease"
DEFAULT_LEASE_S = 10.0
_PID = struct.Struct(">I")


def lease_seconds() -> float:
    """The shared work's lease term (SHOAL_BACKGROUND_LEASE_S, seconds)."""
    raw = os.environ.get("SHOAL_BACKGROUND_LEASE_S")
    try:
        seconds = float(raw) if raw else DEFAULT_LEASE_S
    except ValueError:
        seconds = 0.0
    if not 0.5 <= seconds <= 3600:
        log.error("SHOAL_BACKGROUND_LEASE_S=%r is not a number of seconds from 0.5 to 3600; using %s",
                  raw, DEFAULT_LEASE_S)
        seconds = DEFAULT_LEASE_S
    return seconds


def holder_pid(owner: bytes) -> int:
    """The process id a shared-work lease's holder put in its first four bytes."""
    return _PID.unpack_from(owner)[0]


def _process_gone(owner: bytes) -> bool:
    """Whether the holder's process, on this machine, no longer runs (or is a zombie)."""
    try:
        with open(f"/proc/{holder_pid(owner)}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[:1]
    except OSError:
        return True
    return state in ([b"Z"], [b"X"])


def run_jobs(jobs) -> bool:
    """One round of each of ``jobs``, a failure logged and the rest run; True if any has more to do."""
    busy = False
    for job in jobs:
        try:
            busy = bool(job()) or busy
        except Exception:
            log.error("background job %s failed:\n%s", getattr(job, "__name__", job), traceback.format_exc())
    return busy


class SharedWork:
    """The jobs one worker of all those sharing a store runs: those of the
    lease's holder (see the module's docstring).  A holder reads the lease at
    most every quarter of its term (it cannot lose it sooner); the others
    read it once a round, about once a second."""

    __name__ = "shared_background_work"

    def __init__(self, engine, jobs: list, seconds: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.jobs = list(jobs)
        self.seconds = lease_seconds() if seconds is None else seconds
        self.clock = clock
        local = not shares_store(engine)  # a data directory: every worker is a process of this machine
        self.lease = Lease(engine, LEASE_KEY, self.seconds, clock,
                           owner=_PID.pack(os.getpid() & 0xFFFFFFFF) + os.urandom(12),
                           gone=_process_gone if local else None)
        self._sure_until = 0.0

    def held(self) -> bool:
        now = self.clock()
        if now < self._sure_until:
            return True
        if self.lease.hold():
            self._sure_until = now + self.seconds / 4
            return True
        self._sure_until = 0.0
        return False

    def __call__(self) -> bool:
        return self.held() and run_jobs(self.jobs)

    def release(self) -> None:
        """Give the lease up (a stopping worker), so that another takes over at once."""
        self._sure_until = 0.0
        try:
            self.lease.release()
        except Exception as exc:  # storage out of reach: the term runs out instead
            log.warning("could not give up the background lease: %s", exc)


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
        shared = SharedWork(engine, [job for job in jobs if not getattr(job, "per_worker", False)])
        jobs = [job for job in jobs if getattr(job, "per_worker", False)] + [shared]
        try:
            trimmer = ResidentTrimmer.for_engine(engine)
        except ValueError as exc:  # a bad SHOAL_MAX_MAPPED_RESIDENT_MB: serve, unbounded, and say so
            log.error("%s; the bound on mapped resident memory is off", exc)
            trimmer = None
        return cls(jobs, [triggers.close, kinesis.close, shared.release], [trimmer] if trimmer is not None else [])

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
        return run_jobs(self.jobs if jobs is None else jobs)

    async def _run(self) -> None:
        while True:
            # Short pauses while a job has a backlog, so it catches up without
            # holding the loop (each round is one bounded transaction).
            await asyncio.sleep(self.BUSY_INTERVAL_S if self.run_once() else self.INTERVAL_S)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.WATCH_INTERVAL_S)
            self.run_once(self.watchers)
