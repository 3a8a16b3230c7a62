"""The trigger background job and its delivery thread.

Every worker process runs a ``TriggerRunner`` among its background jobs (on
its event loop, about once a second).  A round:

1. applies the outcomes the delivery thread reported (checkpoint or retry
   state, in one write transaction, only while this worker holds the lease);
2. takes or renews the lease of each enabled trigger (a write transaction
   only when something changes: idle rounds are read-only);
3. for each trigger it holds with no batch in flight and no retry pending,
   plans the next batch from a read snapshot and hands it to the delivery
   thread.

The event loop never waits on the network: the delivery thread does the POST
(``http.client``, with a timeout, keeping one connection per endpoint) and
wakes the loop with ``call_soon_threadsafe`` when it is done, so the next
batch follows at once instead of a round later.
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import logging
import os
import queue
import threading
import time
import traceback
import uuid
from urllib.parse import urlsplit

from shoal.triggers.store import (
    Batch,
    TriggerSettings,
    acquire,
    iter_configs,
    lease_decision,
    load_lease,
    load_state,
    plan_batch,
    record_outcome,
)

log = logging.getLogger("shoal")

_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                     http.client.CannotSendRequest)


class Sender:
    """The one delivery thread of a process: POSTs batches in submission
    order and reports each outcome (None, or an error text) to ``on_done``."""

    def __init__(self, timeout_s: float, on_done) -> None:
        self.timeout_s = timeout_s
        self.on_done = on_done
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self._thread = threading.Thread(target=self._run, name="shoal-triggers", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self._queue.put(batch)

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                break
            try:
                error = self.post(batch.url, batch.body, batch.trigger_id)
            except Exception as exc:  # never let the thread die: report and go on
                error = f"{type(exc).__name__}: {exc}"
            self.on_done(batch, error)
        for connection in self._connections.values():
            connection.close()

    def post(self, url: str, body: bytes, trigger_id: str) -> str | None:
        """POST ``body``; None on a 2xx answer, else what went wrong.  A kept
        connection the endpoint has closed meanwhile is retried once, fresh."""
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json", "X-Shoal-Trigger-Id": trigger_id}
        for fresh in (False, True):
            connection = self._connection(parts, fresh)
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                answer = response.read(4096)
                if response.will_close:
                    self._drop(parts)
            except _STALE_CONNECTION as exc:
                self._drop(parts)
                if fresh:
                    return f"{type(exc).__name__}: {exc}"
                continue
            except (OSError, http.client.HTTPException) as exc:
                self._drop(parts)
                return f"{type(exc).__name__}: {exc}"
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status} {response.reason}: {answer[:200].decode('utf-8', 'replace')}"
        return None  # unreachable: the fresh attempt returns

    def _connection(self, parts, fresh: bool) -> http.client.HTTPConnection:
        key = (parts.scheme, parts.netloc)
        connection = None if fresh else self._connections.get(key)
        if connection is None:
            self._drop(parts)
            kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            connection = kind(parts.hostname, parts.port, timeout=self.timeout_s)
            self._connections[key] = connection
        return connection

    def _drop(self, parts) -> None:
        connection = self._connections.pop((parts.scheme, parts.netloc), None)
        if connection is not None:
            connection.close()


class TriggerRunner:
    """The background job delivering every trigger this worker holds the lease of."""

    def __init__(self, engine, settings: TriggerSettings | None = None, clock=time.time) -> None:
        self.engine = engine
        self.settings = settings or TriggerSettings.from_env()
        self.clock = clock
        self.__name__ = "stream_triggers"
        self.per_worker = True  # a lease per trigger (shoal.server.background)
        self._owner: str | None = None
        self._sender: Sender | None = None
        self._loop = None
        self._inflight: dict[str, Batch] = {}
        self._outcomes: collections.deque = collections.deque()

    @property
    def owner(self) -> str:
        """This worker's lease identity: its pid (taken after any fork) and a
        random tag, so a restarted process with a reused pid is a new owner."""
        if self._owner is None:
            self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self._owner

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def __call__(self) -> bool:
        """One round; always False: follow-up batches are started by the
        delivery thread's wake-up, not by a busy background loop."""
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        self._apply_outcomes()
        now = self.clock()
        with self.engine.read() as txn:
            configs = [c for c in iter_configs(txn) if c["enabled"]]
            decisions = {c["id"]: lease_decision(load_lease(txn, c["id"]), self.owner, now, self.settings.lease_s)
                         for c in configs}
        held = self._leases(decisions, now)
        if held:
            self._dispatch([c for c in configs if c["id"] in held], now)
        return False

    def _leases(self, decisions: dict[str, str], now: float) -> set[str]:
        """Ids of triggers this worker holds after taking or renewing leases."""
        held = {tid for tid, decision in decisions.items() if decision == "hold"}
        wanted = [tid for tid, decision in decisions.items() if decision in ("take", "renew")]
        if wanted:
            with self.engine.write() as txn:
                held.update(tid for tid in wanted if acquire(txn, tid, self.owner, now, self.settings.lease_s))
        return held

    def _dispatch(self, configs: list[dict], now: float) -> None:
        """Plan and submit the next batch of each held trigger that is free to send."""
        with self.engine.read() as txn:
            for config in configs:
                if config["id"] in self._inflight:
                    continue
                state = load_state(txn, config["id"])
                if state["next_retry"] is not None and state["next_retry"] > now:
                    continue
                batch = plan_batch(txn, config, state, now)
                if batch is not None:
                    self._inflight[config["id"]] = batch
                    self._submit(batch)

    def _submit(self, batch: Batch) -> None:
        if self._sender is None:
            self._sender = Sender(self.settings.timeout_s, self._on_done)
        self._sender.submit(batch)

    def _on_done(self, batch: Batch, error: str | None) -> None:
        """Delivery thread: queue the outcome and wake the event loop."""
        self._outcomes.append((batch, error))
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed: the process is stopping
                pass

    def _wake(self) -> None:
        try:
            self()
        except Exception:
            log.error("trigger delivery round failed:\n%s", traceback.format_exc())

    def _apply_outcomes(self) -> None:
        """Record reported outcomes in one write transaction.  The in-flight
        marks are cleared first, so a failed transaction means redelivery,
        never a trigger stuck waiting."""
        if not self._outcomes:
            return
        outcomes = []
        while self._outcomes:
            batch, error = self._outcomes.popleft()
            self._inflight.pop(batch.trigger_id, None)
            outcomes.append((batch, error))
            if error is not None:
                log.warning("trigger %s: delivery to %s failed: %s", batch.trigger_id, batch.url, error)
        now = self.clock()
        retry_at = None
        with self.engine.write() as txn:
            for batch, error in outcomes:
                state = record_outcome(txn, batch, self.owner, error, now, self.settings)
                if state is not None and state["next_retry"] is not None:
                    retry_at = min(retry_at or state["next_retry"], state["next_retry"])
        if retry_at is not None and self._loop is not None:
            # Retry on time rather than at a later background round.
            self._loop.call_later(max(0.0, retry_at - now) + 0.01, self._wake)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted batch reported back (for callers with no
        event loop, such as tests); True if none is left in flight."""
        deadline = time.monotonic() + timeout
        while len(self._outcomes) < len(self._inflight):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        """Stop the delivery thread (batches in flight are redelivered later)."""
        if self._sender is not None:
            self._sender.close()
            self._sender = None
