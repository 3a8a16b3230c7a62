"""Long work off the request: jobs on threads of their own, with records.

An export, an import or a restore answers its request at once and does its
work on a thread (``start_job``).  Its record in ``meta`` names the process
running it (``runner``: pid and a per-process token) and is rewritten at
least every ``HEARTBEAT_S`` while it runs (``update_record``), so any worker
can tell a job that is running from one a stopped process left behind
(``runner_alive``): in this process, by the jobs it runs; in another, by its
pid and the heartbeat.  ``stop_jobs`` ends a server's jobs where they are
(``Stopped``) when it stops; ``wait_for_jobs`` waits for them (in-process use
and tests).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import struct
import threading
import time
from typing import Callable

import orjson

log = logging.getLogger("shoal")

#: A running job rewrites its record at least this often; a record of another
#: live process not rewritten for STALE_S is taken for an interrupted one.
HEARTBEAT_S = 5.0
STALE_S = 120.0

_process = {"pid": None, "token": None, "node": None}
_jobs_lock = threading.Lock()
_running: dict[str, tuple[int, threading.Thread]] = {}  # record ARN -> (engine id, thread)
_stops: dict[int, threading.Event] = {}  # engine id -> set when its server stops


def node_id() -> str:
    """Which process ids this process can see: the machine's boot and its
    pid namespace.  Shoal nodes on several machines (or containers) share a
    store over PostgreSQL; a pid means something only within one of these."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return f"{boot.read().strip()}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        import socket

        return socket.gethostname()


def runner() -> dict:
    """This process, as a record names the process running its job."""
    pid = os.getpid()
    if _process["pid"] != pid:  # a new process (or a fork): a new token
        _process.update(pid=pid, token=secrets.token_hex(8), node=node_id())
    return {"pid": pid, "token": _process["token"], "node": _process["node"]}


def runner_alive(record: dict) -> bool:
    """Whether the process a record names is still running its job: one of
    another node (``node_id``) by its heartbeat alone."""
    named, me = record.get("runner") or {}, runner()
    if named.get("node", me["node"]) != me["node"]:
        return time.time() - record.get("beat", 0) < STALE_S
    if named.get("pid") == me["pid"]:
        if named.get("token") != me["token"]:
            return False  # a process before this one had the same pid
        with _jobs_lock:
            return record["arn"] in _running
    pid = named.get("pid")
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: the pid may have been reused; the heartbeat tells
        pass
    return time.time() - record.get("beat", 0) < STALE_S


def start_job(ctx, arn: str, work: Callable) -> None:
    """Run ``work(ctx, arn, stop)`` on a thread of its own; ``stop`` is set
    when the server stops (the job then returns, leaving its record as it is)."""
    engine_id = id(ctx.engine)
    with _jobs_lock:
        stop = _stops.setdefault(engine_id, threading.Event())

    def run() -> None:
        try:
            work(ctx, arn, stop)
        except Exception:
            log.error("background job %s failed", arn, exc_info=True)
        finally:
            with _jobs_lock:
                _running.pop(arn, None)

    thread = threading.Thread(target=run, name="shoal-" + arn.rsplit("/", 2)[-2], daemon=True)
    with _jobs_lock:
        _running[arn] = (engine_id, thread)
    thread.start()


def stop_jobs(engine, timeout: float = 30.0) -> None:
    """Stop the export and import jobs running on ``engine`` (the server is
    stopping) and wait for them; their records stay IN_PROGRESS and are shown
    FAILED from then on."""
    engine_id = id(engine)
    with _jobs_lock:
        _stops.setdefault(engine_id, threading.Event()).set()
        threads = [thread for owner, thread in _running.values() if owner == engine_id]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with _jobs_lock:
        _stops.pop(engine_id, None)


class Stopped(Exception):
    """The server is stopping: the job ends where it is."""


def job_context(ctx):
    """``ctx`` for a background job: the catalog itself, not the view one
    authorized request had of it (``catalog.PinnedCatalog``)."""
    return dataclasses.replace(ctx, catalog=getattr(ctx.catalog, "catalog", ctx.catalog))


def record_key(prefix: bytes, region: str, arn: str) -> bytes:
    return prefix + region.encode() + b"\0" + arn.encode()


def read_record(txn, prefix: bytes, region: str, arn: str) -> dict | None:
    raw = txn.get("meta", record_key(prefix, region, arn))
    return None if raw is None else orjson.loads(raw)


def update_record(engine, prefix: bytes, region: str, arn: str, **changes) -> dict | None:
    """Store ``changes`` into a record (and the job's heartbeat); the record."""
    key = record_key(prefix, region, arn)
    with engine.write() as txn:
        raw = txn.get("meta", key)
        if raw is None:
            return None
        record = orjson.loads(raw)
        record.update(changes, beat=round(time.time(), 3))
        txn.put("meta", key, orjson.dumps(record))
        return record


def wait_for_jobs(engine, timeout: float = 60.0) -> bool:
    """Wait until no job runs on ``engine``; False if some still run after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with _jobs_lock:
            threads = [thread for owner, thread in _running.values() if owner == id(engine)]
        if not threads:
            return True
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            with _jobs_lock:
                return not any(owner == id(engine) for owner, _ in _running.values())


class Lease:
    """Work one worker of all those sharing a store does at a time (the
    replication thread, the auto scaler): a (holder, expiry) record under
    ``key`` in ``meta``.  ``hold()`` reads it, and writes only to take an
    expired lease or to renew its own in the second half of its term, so a
    holder costs one read per round, not a commit; a holder that dies is
    replaced once ``seconds`` have passed, one that stops ``release()``s at
    once."""

    _RECORD = struct.Struct(">16sd")

    def __init__(self, engine, key: bytes, seconds: float, clock: Callable[[], float] = time.time,
                 owner: bytes | None = None, gone: Callable[[bytes], bool] | None = None) -> None:
        self.engine, self.key, self.seconds, self.clock = engine, key, seconds, clock
        self.owner = owner if owner is not None else os.urandom(16)  # 16 bytes
        # ``gone(owner)``: whether another holder is known to be dead before its term ends (a
        # process of this machine that no longer runs): its lease is taken at once
        self.gone = gone

    def holder(self) -> tuple[bytes, float] | None:
        """The current record: (holder, expiry), or None."""
        with self.engine.read() as txn:
            raw = txn.get("meta", self.key)
        return None if raw is None else self._RECORD.unpack(raw)

    def _taken(self, owner: bytes, until: float, now: float) -> bool:
        return owner != self.owner and until > now and not (self.gone is not None and self.gone(owner))

    def hold(self) -> bool:
        """Whether this holder has the lease now (taking or renewing it if due)."""
        now = self.clock()
        record = self.holder()
        if record is not None:
            owner, until = record
            if self._taken(owner, until, now):
                return False
            if owner == self.owner and until - now > self.seconds / 2:
                return True
        with self.engine.write() as txn:
            raw = txn.get("meta", self.key)
            if raw is not None and self._taken(*self._RECORD.unpack(raw), now):
                return False
            txn.put("meta", self.key, self._RECORD.pack(self.owner, now + self.seconds))
        return True

    def release(self) -> None:
        """Give the lease up, if held, so that another worker takes over at once."""
        with self.engine.write() as txn:
            raw = txn.get("meta", self.key)
            if raw is not None and self._RECORD.unpack(raw)[0] == self.owner:
                txn.delete("meta", self.key)
