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
import time

from shoal.replication import control
from shoal.replication.control import Settings, configure
from shoal.replication.node import Replicator, parse_paused, parse_peers, read_credentials
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
    return service
