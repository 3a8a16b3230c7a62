"""Group commit: many write requests, one durable commit.

Write operations that arrive in the same turn of the event loop are run one
after another inside one outer storage transaction (``Engine.group``); each
still succeeds or fails on its own, but they share a single fsync, and none is
acknowledged before that commit has returned.  Under load, the requests that
arrive while one group commits form the next group, so the cost of the flush
is spread over all of them; a lone request is committed at once, with no added
wait.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Callable

from shoal.errors import ShoalError

log = logging.getLogger("shoal")


class GroupCommitter:
    """Batches write jobs of one event loop into group commits."""

    def __init__(self, engine, max_group: int = 512) -> None:
        self.engine = engine
        self.max_group = max_group
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
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        while pending:
            group, pending = pending[: self.max_group], pending[self.max_group :]
            self._commit(group)

    def _commit(self, group) -> None:
        try:
            with self.engine.group():
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
        try:
            return future, True, job()
        except Exception as exc:
            if not isinstance(exc, ShoalError):
                log.error("write failed:\n%s", traceback.format_exc())
            return future, False, exc
