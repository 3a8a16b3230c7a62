"""The GetItems of one turn of the event loop, read in one round trip.

Over PostgreSQL a GetItem's storage work is one round trip, and a worker
runs it synchronously on its event loop: the loop sleeps while the database
answers, and each request pays the round trip's system calls (issue 19's
figures in docs/benchmarks.md: a node over PostgreSQL at 0.46-0.56x of an
LMDB node's GetItem rate, the difference mostly there).  Under load one turn
of the loop reads requests from many connections; so on an engine whose
``reads_ahead`` is true, the dispatcher hands each GetItem here once it is
routed and validated, and answers it later (``shoal.server.http.Deferred``).
At the start of the next turn (``call_soon``, as group commit does for
writes) every GetItem taken meanwhile is looked up (its table, its key:
``shoal.api.items.item_key_ahead``), their keys are read in one statement
(``Engine.read_ahead``), and then each request runs exactly as it would
have alone, its own read answered from what was read.

Why the answers stay right:

* Each request still runs on its own, through the same job (validation,
  capacity, metrics, its errors): a refused or failing request fails alone,
  and a key the look-up could not work out is simply read by its request.
  If the shared read itself fails, every request runs alone.
* Every value is read after its request arrived and before it is answered,
  so a strongly consistent read sees every write acknowledged before the
  request was sent, as it did.  Nothing the requests do writes (an engine
  drops what it read ahead when its thread opens a write).  Requests of
  one turn that read the same key get the same value, read after both
  arrived.  No read of an MRSC table is read ahead: a strongly
  consistent one follows a consensus round.
* A request pipelined behind a GetItem on its connection runs once that
  GetItem is answered, still inside the read-ahead: it too arrived before
  the keys were read, so a read of one of them may be answered from there
  (a Query fetching a table item), and a write of its own drops them.
* A turn with one GetItem runs it as before, without a read ahead.
"""

from __future__ import annotations

import asyncio
import logging

from shoal.api.items import item_key_ahead
from shoal.server.http import _INTERNAL_ERROR, Deferred

log = logging.getLogger("shoal")

#: At most this many keys in one statement, as BatchGetItem's 100 (up to 400 KB
#: each): a turn with more reads them in several.
MAX_BATCH = 100


class ReadBatcher:
    """Gathers the GetItems of one event loop's turn (see the module docstring).

    ``answer(job, *args)`` runs a request's job and makes its Response (the
    dispatcher's, with what it records for metrics)."""

    __slots__ = ("engine", "answer", "_pending", "_scheduled")

    def __init__(self, engine, answer) -> None:
        self.engine = engine
        self.answer = answer
        self._pending: list = []
        self._scheduled = False

    def submit(self, job, ctx, data: dict, args: tuple) -> Deferred | None:
        """Take a GetItem (``data``, run by ``job``, answered by
        ``answer(job, *args)``) for the next turn; None when no event loop
        runs (a dispatcher called directly): then the caller runs it now."""
        loop = asyncio._get_running_loop()
        if loop is None:
            return None
        deferred = Deferred()
        self._pending.append((job, ctx, data, args, deferred))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return deferred

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        if len(pending) == 1:
            self._run(pending[0])
            return
        for first in range(0, len(pending), MAX_BATCH):
            self._run_together(pending[first:first + MAX_BATCH])

    def _run_together(self, entries: list) -> None:
        engine = self.engine
        try:
            keys = []
            with engine.read(snapshot=False) as txn:
                for _job, ctx, data, _args, _deferred in entries:
                    key = item_key_ahead(ctx, txn, "GetItem", data)
                    if key is not None:
                        keys.append(key)
            reading = engine.read_ahead("items", keys)
            reading.__enter__()
        except Exception as exc:  # the storage failed: each request on its own finds out how
            log.debug("reading ahead failed: %s", exc)
            for entry in entries:
                self._run(entry)
            return
        try:
            for entry in entries:
                self._run(entry)
        finally:
            reading.__exit__(None, None, None)

    def _run(self, entry) -> None:
        job, _ctx, _data, args, deferred = entry
        try:
            response = self.answer(job, *args)
        except Exception:  # answer() turns a job's failures into responses: this is a bug
            log.error("a batched GetItem failed", exc_info=True)
            response = _INTERNAL_ERROR
        try:
            deferred.resolve(response)
        except Exception:  # one connection's failure must not keep the others' answers
            log.error("answering a batched GetItem failed", exc_info=True)
