"""The Kinesis delivery job and its thread.

Every worker runs a ``KinesisDelivery`` among its background jobs.  On the
event loop it only starts, once some table has a destination, a thread that
does the work, so the loop never waits on the network.  Each round of the
thread, while its worker holds the lease (``kinesis/lease`` in ``meta``;
one worker of a data directory delivers):

1. checks each ENABLING destination's stream with the endpoint: ACTIVE, or
   ENABLE_FAILED with DynamoDB's DestinationStatusDescription (an endpoint
   that cannot be reached is asked again later, with back-off);
2. makes UPDATING destinations ACTIVE (the new precision applies to records
   sent from then on);
3. for each table's live destination, reads the change log after the
   destination's cursor (``sent``) and sends that table's item changes with
   PutRecords, in log order, up to 500 records a call; the cursor moves in a
   write transaction only after Kinesis stored them, so a crash or an
   endpoint that is down means the same records are sent again (at least
   once), never lost.  A DISABLING destination becomes DISABLED once its
   cursor reaches the position where it was disabled; the table's record is
   forgotten once its DeleteTable change is passed;
4. moves the change log's ``kinesis`` consumer to the lowest cursor of any
   live destination, so the log keeps what is still to be sent (and drops
   the consumer when nothing is live).

A failed call is retried after ``backoff_s``, doubling up to
``backoff_max_s``, for as long as it takes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass

import orjson

from shoal.api.catalog import table_key
from shoal.api.changelog import (
    advance_consumer,
    consumer_cursor,
    decode_change,
    is_table_change,
    read_raw_changes,
    unregister_consumer,
)
from shoal.api.kinesis import (
    CONSUMER,
    DEFAULT_PRECISION,
    LIVE,
    any_destinations,
    dest_key,
    iter_destinations,
    load_destinations,
    save_destinations,
)
from shoal.api.streams import _same_image
from shoal.kinesis.client import KinesisEndpoint
from shoal.kinesis.records import build_record, parse_stream_arn, partition_key
from shoal.settings import backoff, from_env
from shoal.triggers.store import lease_decision

log = logging.getLogger("shoal")

LEASE_KEY = b"kinesis/lease"
#: PutRecords' limits: 500 records, 5 MiB in all (a record's data is at most
#: 1 MiB, which two 400 KB images and their keys stay under).
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # a record's data and partition key
#: Change records looked at per destination and round (other tables' included).
SCAN_LIMIT = 20000

# DynamoDB's DestinationStatusDescription texts (ack-api-quirks DDB-TABLE-318,
# verified 2026-10-09): a missing stream, one not active and one of another
# service all read as a permission problem.
NO_PERMISSION = "User does not have a permission to use kinesis stream"
OTHER_REGION = ("The kinesis Arn used to enable kinesis replication belongs to a stream which is not in the "
                "current region")
NOT_ACTIVE = "The kinesis Arn used to enable kinesis replication belongs to a stream which is not in Active state"


@dataclass
class KinesisSettings:
    """Where records go and delivery's timing (SHOAL_KINESIS_ENDPOINT,
    SHOAL_KINESIS_POLL_S, SHOAL_KINESIS_BACKOFF_S, SHOAL_KINESIS_BACKOFF_MAX_S,
    SHOAL_KINESIS_TIMEOUT_S, SHOAL_KINESIS_LEASE_S)."""

    endpoint: str = ""
    poll_s: float = 1.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 10.0
    lease_s: float = 30.0

    @classmethod
    def from_env(cls) -> "KinesisSettings":
        return from_env(cls, {
            "endpoint": "SHOAL_KINESIS_ENDPOINT",
            "poll_s": "SHOAL_KINESIS_POLL_S",
            "backoff_s": "SHOAL_KINESIS_BACKOFF_S",
            "backoff_max_s": "SHOAL_KINESIS_BACKOFF_MAX_S",
            "timeout_s": "SHOAL_KINESIS_TIMEOUT_S",
            "lease_s": "SHOAL_KINESIS_LEASE_S",
        })

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th consecutive failure."""
        return backoff(self.backoff_s, self.backoff_max_s, attempts)


class KinesisDelivery:
    """The background job: starts the delivery thread once a destination exists."""

    def __init__(self, engine, settings: KinesisSettings | None = None, clock=time.time) -> None:
        self.engine = engine
        self.settings = settings or KinesisSettings.from_env()
        self.clock = clock
        self.endpoint = KinesisEndpoint(self.settings.endpoint, self.settings.timeout_s) \
            if self.settings.endpoint else None
        self.__name__ = "kinesis_delivery"
        self.per_worker = True  # a lease of its own (shoal.server.background)
        self._owner: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failures: dict[tuple, tuple[int, float]] = {}  # (prefix, arn, gen) -> (attempts, retry at)
        self._warned = False

    @property
    def owner(self) -> str:
        """This worker's lease identity (taken after any fork)."""
        if self._owner is None:
            self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self._owner

    def __call__(self) -> bool:
        if self._thread is None:
            with self.engine.read() as txn:
                wanted = any_destinations(txn)
            if wanted:
                self._thread = threading.Thread(target=self._run, name="shoal-kinesis", daemon=True)
                self._thread.start()
        return False

    def close(self) -> None:
        """Stop the thread (what it has not sent is sent after a restart)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout_s + 1)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.round()
            except Exception:
                log.error("kinesis delivery round failed:\n%s", traceback.format_exc())
                busy = False
            self._stop.wait(0 if busy else self.settings.poll_s)

    # ------------------------------------------------------------ one round

    def round(self) -> bool:
        """One round (see the module's docstring); True while a backlog remains."""
        now = self.clock()
        with self.engine.read() as txn:
            tables = list(iter_destinations(txn))
            lease = _load_lease(txn)
        if not tables:
            self._move_consumer()
            return False
        if not self._hold_lease(lease, now):
            return False
        busy = False
        for prefix, record in tables:
            for entry in record["destinations"]:
                if entry["status"] == "ENABLING":
                    self._enable(prefix, record, entry, now)
                elif entry["status"] == "UPDATING":
                    self._apply(prefix, entry, lambda e: e.update(status="ACTIVE"))
            with self.engine.read() as txn:
                record = load_destinations(txn, prefix)
            if record is None:
                continue
            live = next((e for e in record["destinations"] if e["status"] in ("ACTIVE", "UPDATING", "DISABLING")),
                        None)
            if live is not None:
                busy = self._deliver(prefix, record, live, now) or busy
            elif not any(e["status"] in LIVE for e in record["destinations"]):
                self._forget_if_deleted(prefix, record)
        self._move_consumer()
        return busy

    def _hold_lease(self, lease: dict | None, now: float) -> bool:
        decision = lease_decision(lease, self.owner, now, self.settings.lease_s)
        if decision == "hold":
            return True
        if decision == "busy":
            return False
        with self.engine.write() as txn:
            if lease_decision(_load_lease(txn), self.owner, now, self.settings.lease_s) == "busy":
                return False
            txn.put("meta", LEASE_KEY, orjson.dumps({"owner": self.owner, "pid": os.getpid(),
                                                     "expires": round(now + self.settings.lease_s, 3)}))
        return True

    def _waiting(self, prefix: bytes, entry: dict, now: float) -> bool:
        failure = self._failures.get((prefix, entry["arn"], entry["gen"]))
        return failure is not None and failure[1] > now

    def _failed(self, prefix: bytes, entry: dict, now: float, what: str) -> None:
        key = (prefix, entry["arn"], entry["gen"])
        attempts = self._failures.get(key, (0, 0.0))[0] + 1
        delay = self.settings.backoff(attempts)
        self._failures[key] = (attempts, now + delay)
        log.warning("kinesis destination %s: %s (attempt %d, next in %.1fs)", entry["arn"], what, attempts, delay)

    def _succeeded(self, prefix: bytes, entry: dict) -> None:
        self._failures.pop((prefix, entry["arn"], entry["gen"]), None)

    def _apply(self, prefix: bytes, entry: dict, change) -> bool:
        """Apply ``change(stored entry)`` to the entry if it is still the same
        incarnation (same ARN and enable count); False if it is not."""
        with self.engine.write() as txn:
            record = load_destinations(txn, prefix)
            stored = None if record is None else next(
                (e for e in record["destinations"] if e["arn"] == entry["arn"] and e["gen"] == entry["gen"]), None)
            if stored is None:
                return False
            change(stored)
            save_destinations(txn, prefix, record)
        return True

    # ------------------------------------------------------------ enabling

    def _enable(self, prefix: bytes, record: dict, entry: dict, now: float) -> None:
        if self._waiting(prefix, entry, now):
            return
        description = self._check(record, entry)
        if description == "retry":
            self._failed(prefix, entry, now, "the endpoint could not be reached to check the stream")
            return
        self._succeeded(prefix, entry)
        if description is None:
            self._apply(prefix, entry, lambda e: e.update(status="ACTIVE") if e["status"] == "ENABLING" else None)
        else:
            self._apply(prefix, entry, lambda e: e.update(status="ENABLE_FAILED", description=description)
                        if e["status"] == "ENABLING" else None)

    def _check(self, record: dict, entry: dict) -> str | None:
        """None if the stream takes records, "retry" if the endpoint did not
        answer, else the DestinationStatusDescription DynamoDB gives."""
        parts = parse_stream_arn(entry["arn"])
        if parts is None:
            return NO_PERMISSION
        region, account, name = parts
        if region != record["region"]:
            return OTHER_REGION
        if account != record["account"]:
            return NOT_ACTIVE
        if self.endpoint is None:
            if not self._warned:
                self._warned = True
                log.warning("kinesis destination %s: no Kinesis endpoint is configured "
                            "(SHOAL_KINESIS_ENDPOINT / --kinesis-endpoint): it fails to enable", entry["arn"])
            return NO_PERMISSION
        verdict = self.endpoint.check_stream(region, name)
        if verdict.state == "exists":
            return None
        if verdict.state == "unreachable":
            log.warning("kinesis destination %s: %s", entry["arn"], verdict.detail)
            return "retry"
        log.warning("kinesis destination %s: the endpoint refused the stream: %s", entry["arn"], verdict.detail)
        return NO_PERMISSION

    # ------------------------------------------------------------ sending

    def _deliver(self, prefix: bytes, record: dict, entry: dict, now: float) -> bool:
        """Send the next batch of the table's changes; True if more remain."""
        if self.endpoint is None:  # a restart without the endpoint: nothing can be sent
            if entry["status"] == "DISABLING":
                self._apply(prefix, entry, lambda e: e.update(status="DISABLED"))
            return False
        if self._waiting(prefix, entry, now):
            return False
        stop = entry["until"]
        precision = entry.get("precision") or DEFAULT_PRECISION
        batch: list[tuple[int, bytes, str]] = []
        size = 0
        passed = entry["sent"]  # the last position looked at
        deleted = more = False
        with self.engine.read() as txn:
            for scanned, (seq, table_id, value) in enumerate(read_raw_changes(txn, entry["sent"])):
                if stop is not None and seq > stop:
                    break
                if scanned >= SCAN_LIMIT or len(batch) >= MAX_BATCH_RECORDS or size >= MAX_BATCH_BYTES:
                    more = True
                    break
                if table_id == record["table_id"]:
                    ms, change = decode_change(value)
                    if is_table_change(change):
                        if change["op"] == "DeleteTable":
                            deleted = True
                            passed = seq
                            break
                    elif not _same_image(change["old"], change["new"]):
                        data = build_record(change, ms, table_name=record["table"], table_id=record["table_id"],
                                            region=record["region"], seq=seq, precision=precision)
                        key = partition_key(change["keys"])
                        if len(data) + len(key) > MAX_RECORD_BYTES:
                            # Kinesis refuses it for good (two images near 400 KB with binary
                            # values, base64 in JSON): sending it would stop the destination.
                            log.error("kinesis destination %s: the record of change %d of table %s is %d bytes, "
                                      "over Kinesis's 1 MiB: skipped", entry["arn"], seq, record["table"], len(data))
                        else:
                            batch.append((seq, data, key))
                            size += len(data)
                passed = seq
        if stop is not None and not more and not deleted:
            passed = max(passed, stop)  # nothing of the table is left up to where it was disabled
        if batch:
            region, _account, name = parse_stream_arn(entry["arn"])
            sent = self.endpoint.put_records(region, name, [(data, key) for _, data, key in batch])
            if sent.error is not None:
                if sent.delivered:
                    self._advance(prefix, entry, batch[sent.delivered - 1][0], False)
                self._failed(prefix, entry, now, f"PutRecords failed: {sent.error}")
                return False
            self._succeeded(prefix, entry)
        if passed != entry["sent"] or deleted or (stop is not None and passed >= stop):
            self._advance(prefix, entry, passed, deleted)
        return more

    def _advance(self, prefix: bytes, entry: dict, position: int, deleted: bool) -> None:
        """Move the entry's cursor; DISABLING ends once it reaches ``until``,
        and a deleted table's record goes once its deletion is passed."""
        with self.engine.write() as txn:
            record = load_destinations(txn, prefix)
            stored = None if record is None else next(
                (e for e in record["destinations"] if e["arn"] == entry["arn"] and e["gen"] == entry["gen"]), None)
            if stored is None:
                return
            if deleted:
                txn.delete("meta", dest_key(prefix))
                return
            stored["sent"] = max(stored["sent"], position)
            if stored["status"] == "DISABLING" and stored["until"] is not None and stored["sent"] >= stored["until"]:
                stored["status"] = "DISABLED"
            save_destinations(txn, prefix, record)

    def _forget_if_deleted(self, prefix: bytes, record: dict) -> None:
        """Drop the record of a table that no longer exists (nothing of it is
        left to send: none of its destinations is live)."""

        def gone(txn) -> bool:
            raw = txn.get("meta", table_key(record["region"], record["table"]))
            return raw is None or orjson.loads(raw)["id"] != record["table_id"]

        with self.engine.read() as txn:  # the common case, the table is there: no write
            if not gone(txn):
                return
        with self.engine.write() as txn:
            stored = load_destinations(txn, prefix)
            if gone(txn) and stored is not None and not any(e["status"] in LIVE for e in stored["destinations"]):
                txn.delete("meta", dest_key(prefix))

    def _move_consumer(self) -> None:
        """Hold the change log from the lowest cursor of any live destination."""
        with self.engine.read() as txn:
            current = consumer_cursor(txn, CONSUMER)
            wanted = _lowest_cursor(txn)
        if current == wanted:
            return
        with self.engine.write() as txn:
            wanted = _lowest_cursor(txn)  # again, in the transaction that writes it
            if wanted is None:
                unregister_consumer(txn, CONSUMER)
            elif consumer_cursor(txn, CONSUMER) != wanted:
                advance_consumer(txn, CONSUMER, wanted)


def _lowest_cursor(txn) -> int | None:
    cursors = [e["sent"] for _, record in iter_destinations(txn) for e in record["destinations"]
               if e["status"] in LIVE]
    return min(cursors) if cursors else None


def _load_lease(txn) -> dict | None:
    raw = txn.get("meta", LEASE_KEY)
    return orjson.loads(raw) if raw is not None else None
