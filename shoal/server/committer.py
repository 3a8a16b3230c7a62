"""Group commit: many write requests, one durable commit.

Write operations that arrive in the same turn of the event loop are run one
after another inside one outer storage transaction (``Engine.group``); each
still succeeds or fails on its own, but they share a single fsync, and none is
acknowledged before that commit has returned.  Under load, the requests that
arrive while one group commits form the next group, so the cost of the flush
is spread over all of them.

A commit costs two syncs whether it carries one write or hundreds, and it
holds the event loop while it runs.  So while the server is busy (other
requests keep arriving) a group of fewer than ``gather`` writes waits a turn
of the loop, then another, for at most ``max_wait_s`` in all, for more writes
to join it: the writes wait a little longer, and every request gains from the
fewer commits.  A write on an otherwise quiet server is committed on the next
turn, with no added wait.  Measured on one core with 16 connections (see
docs/optimisations.md), against no gathering: PutItem 6,400-6,700 ->
7,100-7,500 req/s with p99 4.0-4.2 -> 3.2-3.5 ms; the point mix (10% writes)
12,700-13,100 -> 17,200-18,200 req/s, its p99 (set by the writes) 2.6 -> 4.6
ms.  With a 1 ms bound the point mix did 15,500-16,100 req/s (p99 3.6-3.8 ms),
with 3 ms 19,000-19,900 (p99 5.1-5.3 ms).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Callable

from shoal.api.keys_ahead import MANY_ITEM_WRITES, write_keys_ahead
from shoal.errors import ShoalError
from shoal.storage.engine import WriteConflict

log = logging.getLogger("shoal")

# How long, at most, a busy server holds a small group for more writes
# (``shoal serve --group-commit-wait-ms``).
DEFAULT_GROUP_COMMIT_WAIT_S = 0.002


#: The most keys a group locks and reads ahead, in one statement (a group of
#: 512 TransactWriteItems could name 51,200; beyond this its jobs' reads lock
#: and read their own, as without reading ahead).
_MAX_KEYS_AHEAD = 2000

#: How many times a job whose write lost a race (WriteConflict) is run again alone.
_CONFLICT_RETRIES = 3


class GroupCommitter:
    """Batches write jobs of one event loop into group commits."""

    def __init__(self, engine, max_group: int = 512, *, gather: int = 16,
                 max_wait_s: float = DEFAULT_GROUP_COMMIT_WAIT_S) -> None:
        self.engine = engine
        self.max_group = max_group
        self.gather = gather
        self.max_wait_s = max_wait_s
        # Requests of any kind read so far: the dispatcher counts them, so
        # that the committer can tell a busy server from a quiet one.
        self.arrivals = 0
        self._seen = 0
        self._first = 0.0
        self._pending: list[tuple[Callable[[], object], asyncio.Future]] = []
        self._scheduled = False

    def close(self) -> None:
        """Nothing to stop: groups run on the event loop, and none is pending
        once the connections have drained."""

    def submit(self, job: Callable[[], object]) -> asyncio.Future:
        """Schedule ``job`` (a storage write) for the next group; the future
        resolves to its result, or its exception, once the group is durable."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((job, future))
        if not self._scheduled:
            self._scheduled = True
            self._seen = self.arrivals
            self._first = loop.time()
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        if len(self._pending) < self.gather and self.arrivals != self._seen:
            # Busy: requests came in since the last look, and the writes
            # among the next ones can share this commit.  Wait a turn.
            loop = asyncio.get_running_loop()
            if loop.time() - self._first < self.max_wait_s:
                self._seen = self.arrivals
                loop.call_soon(self._flush)
                return
        self._scheduled = False
        pending, self._pending = self._pending, []
        while pending:
            group, pending = pending[: self.max_group], pending[self.max_group :]
            self._commit(group)

    def _keys_ahead(self, group) -> list:
        """The ``items`` keys the group's keyed writes will read (a job's
        ``item_write``, ``(ctx, operation, request)``, set by the dispatcher
        over an engine that reads ahead: PutItems, UpdateItems, DeleteItems,
        BatchWriteItems, TransactWriteItems; ``shoal.api.keys_ahead``), for
        ``Engine.lock_ahead``; at most ``_MAX_KEYS_AHEAD`` (the others are
        read as the jobs run), and none for a lone single-item write (its own
        locked read is one round trip too)."""
        writes = [job.item_write for job, _ in group if getattr(job, "item_write", None) is not None]
        if not writes or (len(writes) == 1 and writes[0][1] not in MANY_ITEM_WRITES):
            return []
        keys: list = []
        with self.engine.read(snapshot=False) as txn:  # the tables' entries, cached over PostgreSQL
            for ctx, operation, request in writes:
                keys += write_keys_ahead(ctx, txn, operation, request)
                if len(keys) >= _MAX_KEYS_AHEAD:
                    return keys[:_MAX_KEYS_AHEAD]
        return keys

    def _commit(self, group) -> None:
        try:
            keys = self._keys_ahead(group) if self.engine.reads_ahead else ()
        except Exception as exc:  # the storage failed: each job finds out how on its own
            log.debug("looking up a group's keys failed: %s", exc)
            keys = ()
        try:
            with self.engine.group():
                if keys:
                    # One statement locks and reads every item the group's
                    # writes read (each would be a round trip): each job
                    # still runs alone, its reads answered from it.
                    self.engine.lock_ahead("items", keys)
                outcomes = [self._run(job, future) for job, future in group]
        except Exception:
            # A job failed after writing (the group was aborted whole), or the
            # commit itself failed: redo each job in its own transaction, so
            # that one request's failure never touches another's.
            outcomes = [self._run_alone(job, future) for job, future in group]
        for future, ok, value in outcomes:
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    @staticmethod
    def _run(job, future):
        try:
            return future, True, job()
        except Exception as exc:  # the job's own failure (it wrote nothing, or the group is poisoned)
            return future, False, exc

    def _run_alone(self, job, future):
        # A WriteConflict (a PostgreSQL store's replay of a deadlocked
        # transaction read something else) wrote nothing, and an item job
        # opens one write transaction: run it again, a few times, before the
        # client gets a retryable 500.
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                return future, True, job()
            except WriteConflict as exc:
                if attempt == _CONFLICT_RETRIES:
                    return future, False, exc
            except Exception as exc:
                if not isinstance(exc, ShoalError):
                    log.error("write failed:\n%s", traceback.format_exc())
                return future, False, exc
