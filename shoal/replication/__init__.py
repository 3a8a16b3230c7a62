"""Global tables (versions 2019.11.21 and 2017.11.29), multi-region eventual consistency.

A deployment started with ``shoal serve --region NAME`` is the home of one
region; ``--peer REGION=URL`` names the others.  A table becomes global when
UpdateTable's ReplicaUpdates adds a replica (``control``); from then on every
region pushes its own writes of the table to every other region
(``node``: the replication thread, one cursor per peer and table in the
change log), and each region applies what it receives through the write path
with last writer wins (``apply``, over the item versions of ``versions``).
``protocol`` is the peer endpoint on the same port and the home region's
screen of requests signed for another region.  docs/global-tables.md has the
design and what is not done.

    control   ReplicaUpdates, the replica set, the queued work between regions
    node      the replication thread: tasks, copies, sending batches
    protocol  ShoalReplication_20261206.<Op> requests; the region screen
    apply     applying a batch, last writer wins; cursors and the registry
    versions  item versions (time, origin, position), tombstones
    legacy    global tables version 2017.11.29: the records, a member's side, the conditions
    legacy_ops  its operations (CreateGlobalTable, ..., UpdateGlobalTableSettings)
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import traceback

from shoal.api.jobs import Lease
from shoal.replication import control
from shoal.replication.control import Settings, configure
from shoal.replication.node import LEASE_KEY, LEASE_S, Replicator, parse_paused, parse_peers, read_credentials
from shoal.replication.protocol import TARGET_PREFIX, ReplicationService

__all__ = ["Settings", "attach", "parse_paused", "parse_peers", "read_credentials", "TARGET_PREFIX"]


def attach(dispatcher, region: str | None, peers: dict[str, str], credentials: tuple[str, str] | None = None,
           start: bool = True, paused=()) -> ReplicationService | None:
    """Make ``dispatcher`` the home of ``region`` with these peers: it then
    screens requests signed for another region, answers peers, and (with
    peers, and ``start``) runs the replication thread.  Nothing happens
    without a region: today's behaviour, any region its own namespace.
    ``paused`` regions are cut off both ways (``--peer-pause``, for tests)."""
    if region is None:
        return None
    settings = Settings(region, peers, paused, credentials)
    configure(dispatcher.engine, settings)
    settings.strong.update(control.strong_tables(dispatcher.engine, dispatcher.catalog, region))
    service = ReplicationService(dispatcher, settings)
    dispatcher.replication = service
    if peers and start:
        replicator = Replicator(dispatcher.engine, dispatcher.catalog, settings, credentials,
                                clock=getattr(dispatcher, "clock", time.time),
                                metrics=getattr(dispatcher, "metrics", None) is not None).start()
        service.replicator = replicator
        atexit.register(replicator.close)
    elif start:  # no peers: no replication thread, but this region's KMS keys are still watched
        watcher = KeyWatcher(dispatcher.engine, dispatcher.catalog, region, getattr(dispatcher, "clock", time.time))
        atexit.register(watcher.close)
    return service


class KeyWatcher:
    """The KMS key check of a region with no peers (``control.check_encryption_keys``,
    every ``control.KEY_CHECK_S``), which the replication thread does where there
    are peers: a table whose key its region marks unusable is
    INACCESSIBLE_ENCRYPTION_CREDENTIALS on a lone regional deployment too, and
    archived once that has lasted seven days (``shoal.api.archival``).  One
    worker at a time, under the replication thread's lease."""

    def __init__(self, engine, catalog, region: str, clock) -> None:
        self.engine, self.catalog, self.region, self.clock = engine, catalog, region, clock
        self._lease = Lease(engine, LEASE_KEY, LEASE_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shoal-kms-keys", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(control.KEY_CHECK_S):
            try:
                if self._lease.hold():
                    control.check_encryption_keys(self.engine, self.catalog, self.region, self.clock())
            except Exception:  # a closed engine at shutdown, a damaged store: logged, tried again
                if self._stop.is_set():
                    return
                logging.getLogger("shoal").error("KMS key check failed:\n%s", traceback.format_exc())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._lease.release()
        except Exception:  # the engine is closed already: the lease expires by itself
            pass
