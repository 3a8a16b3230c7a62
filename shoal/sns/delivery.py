"""Delivery of SNS messages to http and https subscribers.

Every worker process runs a ``Delivery`` job among its background jobs.  The
messages to send wait in the outbox (``sns/out/``, ordered by due time),
queued in the same write transaction as what caused them (a Subscribe, a
Publish, an alarm's change of state).  A round:

1. records what the delivery thread reported, in one write transaction:
   delivered (2xx) or refused for good (any other 4xx, which SNS does not
   retry) leaves the outbox; a failure (5xx, a timeout, no connection) is put
   back at its next attempt's time per the retry policy, or leaves the outbox
   once the policy is spent ("gave up");
2. claims due messages in one write transaction: each is moved to the time
   its claim expires (the lease) and marked with this worker as its owner,
   then handed to the delivery thread.

Several workers sharing a data directory claim in serialized write
transactions and see each other's claims, so a message is POSTed by one of
them; an outcome is recorded only while its claim is still the reporter's.  A
worker that dies holding claims leaves them to be claimed again when their
lease expires (at least once, as SNS).  The lease outlasts every POST the
thread may have queued (``in_flight_limit``), so a slow endpoint cannot make a
claim expire while its POST is still on the way.

The event loop never waits on the network: one thread per process POSTs with
``http.client`` and a timeout, and wakes the loop when an outcome is ready.
Each outcome goes to ``audit`` (action ``sns:Deliver``, the subscription ARN,
``delivered``/``failed``/``gave up``, and the HTTP status or error).
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
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import orjson

from shoal.sns.store import due_deliveries, load_delivery, load_sub, save_delivery

log = logging.getLogger("shoal")

USER_AGENT = "Amazon Simple Notification Service Agent"
TIMEOUT_S = 15.0  # how long SNS waits for an HTTP/S endpoint's answer
BACKOFF_FUNCTIONS = ("linear", "arithmetic", "geometric", "exponential")


@dataclass(frozen=True)
class RetryPolicy:
    """An HTTP/S ``healthyRetryPolicy``; the defaults are SNS's own: three
    retries, 20 seconds apart, so four attempts within a minute.

    Retries go through SNS's four phases: ``num_no_delay_retries`` at once,
    ``num_min_delay_retries`` after ``min_delay`` each, the backoff phase
    (what is left of ``num_retries``) growing from ``min_delay`` to
    ``max_delay``, then ``num_max_delay_retries`` after ``max_delay`` each.
    The backoff phase's "linear" curve is exact; the other three functions are
    drawn as curves of the same kind (SNS does not publish its formulas), and
    SNS's jitter is left out so that schedules are predictable."""

    num_retries: int = 3
    num_no_delay_retries: int = 0
    min_delay: float = 20.0
    num_min_delay_retries: int = 0
    max_delay: float = 20.0
    num_max_delay_retries: int = 0
    backoff: str = "linear"

    @classmethod
    def from_json(cls, text: str | None) -> "RetryPolicy":
        """The policy a DeliveryPolicy attribute (a topic's, with ``http``
        and ``defaultHealthyRetryPolicy``, or a subscription's, with
        ``healthyRetryPolicy``) sets; the default for what it leaves out.
        Raises ValueError for a policy that is not one."""
        if not text:
            return cls()
        document = orjson.loads(text)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        retry = (document.get("http") or {}).get("defaultHealthyRetryPolicy") or document.get("healthyRetryPolicy")
        if retry is None:
            return cls()
        if not isinstance(retry, dict):
            raise ValueError("healthyRetryPolicy is not a JSON object")
        default = cls()
        policy = cls(
            num_retries=int(retry.get("numRetries", default.num_retries)),
            num_no_delay_retries=int(retry.get("numNoDelayRetries", 0)),
            min_delay=float(retry.get("minDelayTarget", default.min_delay)),
            num_min_delay_retries=int(retry.get("numMinDelayRetries", 0)),
            max_delay=float(retry.get("maxDelayTarget", default.max_delay)),
            num_max_delay_retries=int(retry.get("numMaxDelayRetries", 0)),
            backoff=str(retry.get("backoffFunction", "linear")).lower(),
        )
        policy.check()
        return policy

    def check(self) -> None:
        """SNS's limits on a policy (ValueError says which is broken)."""
        if not 0 <= self.num_retries <= 100:
            raise ValueError("numRetries must be between 0 and 100")
        if min(self.num_no_delay_retries, self.num_min_delay_retries, self.num_max_delay_retries) < 0:
            raise ValueError("the retries of a phase must not be negative")
        if self.num_no_delay_retries + self.num_min_delay_retries + self.num_max_delay_retries > self.num_retries:
            raise ValueError("the phases' retries exceed numRetries")
        if not 1 <= self.min_delay <= self.max_delay <= 3600:
            raise ValueError("minDelayTarget and maxDelayTarget must satisfy 1 <= min <= max <= 3600")
        if self.backoff not in BACKOFF_FUNCTIONS:
            raise ValueError(f"backoffFunction must be one of {', '.join(BACKOFF_FUNCTIONS)}")

    def to_json(self) -> dict:
        """The policy as SNS shows it (EffectiveDeliveryPolicy): whole seconds as integers."""
        def seconds(value: float):
            return int(value) if float(value).is_integer() else value

        return {"minDelayTarget": seconds(self.min_delay), "maxDelayTarget": seconds(self.max_delay),
                "numRetries": self.num_retries,
                "numMaxDelayRetries": self.num_max_delay_retries, "numNoDelayRetries": self.num_no_delay_retries,
                "numMinDelayRetries": self.num_min_delay_retries, "backoffFunction": self.backoff}

    def delay(self, retry: int) -> float | None:
        """Seconds before retry number ``retry`` (1 is the first retry, after
        the first failed attempt), or None when the policy allows no more."""
        if retry > self.num_retries:
            return None
        if retry <= self.num_no_delay_retries:
            return 0.0
        retry -= self.num_no_delay_retries
        if retry <= self.num_min_delay_retries:
            return self.min_delay
        retry -= self.num_min_delay_retries
        backoff = self.num_retries - self.num_no_delay_retries - self.num_min_delay_retries - self.num_max_delay_retries
        if retry > backoff:
            return self.max_delay
        low, high, f = self.min_delay, self.max_delay, retry / backoff
        if self.backoff == "exponential":
            return low * (high / low) ** f
        if self.backoff == "arithmetic":
            return low + (high - low) * f * f
        if self.backoff == "geometric":
            return low + (high - low) * f ** 3
        return low + (high - low) * f


@dataclass
class Attempt:
    """One claimed message on its way: where it sits in the outbox, and what to POST."""

    key: bytes
    record: dict
    status: int | None = None
    error: str | None = None


class Sender:
    """The delivery thread of a process: POSTs in submission order, reports
    each attempt to ``on_done``.  One connection per POST: notifications are
    few (alarm changes), and a fresh connection has no stale state to retry."""

    def __init__(self, timeout_s: float, on_done: Callable[[Attempt], None]) -> None:
        self.timeout_s = timeout_s
        self.on_done = on_done
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="shoal-sns", daemon=True)
        self._thread.start()

    def submit(self, attempt: Attempt) -> None:
        self._queue.put(attempt)

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            attempt = self._queue.get()
            if attempt is None:
                return
            try:
                attempt.status, attempt.error = self.post(attempt.record)
            except Exception as exc:  # never let the thread die: report and go on
                attempt.error = f"{type(exc).__name__}: {exc}"
            self.on_done(attempt)

    def post(self, record: dict) -> tuple[int | None, str | None]:
        """(HTTP status, None) when the endpoint answered, else (None, what went wrong)."""
        parts = urlsplit(record["url"])
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname, parts.port, timeout=self.timeout_s)
        headers = dict(record["headers"], **{"User-Agent": USER_AGENT})
        try:
            connection.request("POST", path, record["body"].encode("utf-8"), headers)
            response = connection.getresponse()
            response.read(4096)
            return response.status, None
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()


def _reason(attempt: Attempt) -> str:
    if attempt.status is not None:
        return f"HTTP {attempt.status} {http.client.responses.get(attempt.status, '')}".rstrip()
    return attempt.error or "no answer"


class Delivery:
    """The background job that POSTs what the outbox holds (see the module's docstring)."""

    def __init__(self, engine, clock: Callable[[], float] = time.time,
                 audit: Callable[..., None] | None = None, *, lease_s: float = 300.0,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.engine = engine
        self.clock = clock
        self.audit = audit
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self.__name__ = "sns_delivery"
        self.per_worker = True  # claims of its own (shoal.server.background)
        self._owner: str | None = None
        self._sender: Sender | None = None
        self._loop = None
        self._inflight: dict[bytes, Attempt] = {}
        self._outcomes: collections.deque = collections.deque()

    @property
    def owner(self) -> str:
        """This worker's claim identity: its pid (taken after any fork) and a random tag."""
        if self._owner is None:
            self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self._owner

    @property
    def in_flight_limit(self) -> int:
        """How many POSTs may wait on the thread at once: all of them end
        within the lease even if each takes its whole timeout."""
        return max(1, int(self.lease_s // self.timeout_s) - 1)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def __call__(self) -> bool:
        """One round; True when due messages were left for lack of room only
        a later round has (never while the thread is full: its outcomes wake
        the loop)."""
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        self._apply_outcomes()
        return self._claim()

    # -- claiming ------------------------------------------------------------------------

    def _claim(self) -> bool:
        room = self.in_flight_limit - len(self._inflight)
        if room <= 0:
            return False
        now = self.clock()
        with self.engine.read() as txn:  # idle rounds stay read-only
            if next(due_deliveries(txn, now), None) is None:
                return False
        claimed, dropped, more = [], [], False
        with self.engine.write() as txn:
            due = list(_take(due_deliveries(txn, now), room + 1))
            more = len(due) > room
            for key, record in due[:room]:
                txn.delete("meta", key)
                sub = load_sub(txn, record["sub"])
                if sub is None:
                    dropped.append(record)
                    continue
                record["owner"] = self.owner
                record["claimed"] = round(now, 3)
                claimed.append(Attempt(save_delivery(txn, now + self.lease_s, record), record))
        for record in dropped:
            self._audit(record, "gave up", "the subscription no longer exists")
        for attempt in claimed:
            self._inflight[attempt.key] = attempt
            self._submit(attempt)
        return more

    def _submit(self, attempt: Attempt) -> None:
        if self._sender is None:
            self._sender = Sender(self.timeout_s, self._on_done)
        self._sender.submit(attempt)

    def _on_done(self, attempt: Attempt) -> None:
        """Delivery thread: queue the outcome and wake the event loop."""
        self._outcomes.append(attempt)
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
            log.error("SNS delivery round failed:\n%s", traceback.format_exc())

    # -- outcomes ------------------------------------------------------------------------

    def _apply_outcomes(self) -> None:
        """Record reported outcomes in one write transaction.  An outcome
        whose claim is no longer this worker's (its lease expired and another
        worker claimed the message) is dropped: that worker decides."""
        outcomes = []
        while self._outcomes:
            outcomes.append(self._outcomes.popleft())
        if not outcomes:
            return
        now = self.clock()
        audits, retry_at = [], None
        with self.engine.write() as txn:
            for attempt in outcomes:
                self._inflight.pop(attempt.key, None)
                current = load_delivery(txn, attempt.key)
                if current is None or current.get("owner") != self.owner:
                    continue
                txn.delete("meta", attempt.key)
                decision, reason, due = _decide(current, attempt, now)
                if due is not None:
                    current.update(attempts=current["attempts"] + 1, owner=None, claimed=None, last_error=reason)
                    save_delivery(txn, due, current)
                    retry_at = due if retry_at is None else min(retry_at, due)
                audits.append((current, decision, reason))
        for record, decision, reason in audits:
            self._audit(record, decision, reason)
        if retry_at is not None and self._loop is not None:
            # Retry on time rather than at a later background round.
            self._loop.call_later(max(0.0, retry_at - now) + 0.01, self._wake)

    def _audit(self, record: dict, decision: str, reason: str) -> None:
        if self.audit is None:
            return
        try:
            self.audit(action="sns:Deliver", resource=record["sub"], decision=decision, reason=reason)
        except Exception:  # auditing must not stop deliveries
            log.error("SNS delivery audit failed:\n%s", traceback.format_exc())

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every POST handed to the thread reported back (for
        callers with no event loop, such as tests); True if none is left."""
        deadline = time.monotonic() + timeout
        while len(self._outcomes) < len(self._inflight):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        """Stop the delivery thread (claimed messages are claimed again once their lease expires)."""
        if self._sender is not None:
            self._sender.close()
            self._sender = None


def _take(iterator, n: int):
    for i, item in enumerate(iterator):
        if i >= n:
            return
        yield item


def _decide(record: dict, attempt: Attempt, now: float) -> tuple[str, str, float | None]:
    """(audit decision, reason, when to try again or None) for an attempt's outcome."""
    reason = _reason(attempt)
    status = attempt.status
    if status is not None and 200 <= status < 300:
        return "delivered", reason, None
    if status is not None and 400 <= status < 500:
        return "gave up", f"{reason}: SNS does not retry a 4xx answer", None
    failures = record["attempts"] + 1
    policy = RetryPolicy(**record["policy"]) if record.get("policy") else RetryPolicy()
    delay = policy.delay(failures)
    if delay is None:
        return "gave up", f"{reason}; no retry left after {failures} attempts", None
    return "failed", f"{reason}; retry {failures} of {policy.num_retries} in {delay:g} s", now + delay
