"""The background work done once for a whole store (shoal.server.background.SharedWork):
one worker of all those sharing the store runs it, the holder of a lease in ``meta``;
another takes over when the holder stops (at once), dies (when its term ends) or,
over a data directory, is known to be gone (at once)."""

from __future__ import annotations

import subprocess
import sys

from shoal.api.catalog import Catalog
from shoal.server.background import LEASE_KEY, BackgroundJobs, SharedWork, holder_pid


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def counting(runs: list, name: str):
    def job():
        runs.append(name)
        return False
    return job


def test_one_worker_runs_the_shared_jobs_and_another_takes_over_when_it_stops_or_its_term_ends(lmdb_engine):
    clock, runs = Clock(), []
    first = SharedWork(lmdb_engine, [counting(runs, "first")], seconds=10, clock=clock)
    second = SharedWork(lmdb_engine, [counting(runs, "second")], seconds=10, clock=clock)
    # both are this process: neither is "gone", so only the term and release() decide
    for _ in range(5):
        first()
        second()
        clock.now += 1
    assert runs == ["first"] * 5
    with lmdb_engine.read() as txn:
        assert holder_pid(txn.get("meta", LEASE_KEY)) > 0
    clock.now += 20  # the first stopped running rounds (it died): the second waits out the term
    runs.clear()
    second()
    first()
    assert runs == ["second"]
    runs.clear()
    second.release()  # a stopping worker: the other takes over at once
    first()
    second()
    assert runs == ["first"]


def test_the_holder_renews_its_lease_so_a_live_holder_is_never_replaced(lmdb_engine):
    clock, runs = Clock(), []
    first = SharedWork(lmdb_engine, [counting(runs, "first")], seconds=4, clock=clock)
    second = SharedWork(lmdb_engine, [counting(runs, "second")], seconds=4, clock=clock)
    for _ in range(40):  # ten terms
        first()
        second()
        clock.now += 1
    assert set(runs) == {"first"} and len(runs) == 40


def test_over_a_data_directory_a_dead_holders_lease_is_taken_at_once(lmdb_engine):
    clock, runs = Clock(), []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    gone = SharedWork(lmdb_engine, [counting(runs, "gone")], seconds=600, clock=clock)
    gone.lease.owner = int(dead.stdout).to_bytes(4, "big") + gone.lease.owner[4:]  # a process that has exited
    gone()
    assert runs == ["gone"]
    runs.clear()
    alive = SharedWork(lmdb_engine, [counting(runs, "alive")], seconds=600, clock=clock)
    alive()  # well within the dead holder's term
    assert runs == ["alive"]


def test_a_failing_job_does_not_keep_the_others_from_running(lmdb_engine):
    runs = []

    def broken():
        raise RuntimeError("boom")

    work = SharedWork(lmdb_engine, [broken, counting(runs, "after")], seconds=10)
    work()
    assert runs == ["after"]


def test_jobs_with_state_of_their_own_stay_per_worker_and_the_rest_are_shared(lmdb_engine):
    class PerWorker:
        per_worker = True

        def __call__(self):
            return False

    mine = PerWorker()
    jobs = BackgroundJobs.for_worker(lmdb_engine, Catalog(lmdb_engine), change_retention_s=3600, extra_jobs=[mine])
    try:
        shared = [job for job in jobs.jobs if isinstance(job, SharedWork)]
        assert len(shared) == 1
        names = {getattr(job, "__name__", "") for job in shared[0].jobs}
        assert {"change_log_pruner", "index_jobs", "ttl_sweeper", "stream_materializer", "stream_trimmer",
                "backup_scheduler"} <= names
        assert mine in jobs.jobs and mine not in shared[0].jobs
        per_worker = {getattr(job, "__name__", "") for job in jobs.jobs if job is not shared[0]}
        assert {"stream_triggers", "kinesis_delivery"} <= per_worker
    finally:
        jobs.close()
