"""Trigger configuration, checkpoint, retry state and lease, kept in ``meta``.

Layout (all JSON)::

    triggers/config/<id>   what to deliver where: table, stream, url, batch size,
                           batching window, starting position, retries, enabled
    triggers/state/<id>    checkpoint (per shard id: last delivered change seq),
                           attempts, next retry time, last error, counters
    triggers/lease/<id>    which worker process delivers: owner, pid, expiry

A trigger follows the stream that was the table's latest when it was added,
as a Lambda event-source mapping names one stream ARN; re-enabling the
table's stream later makes a new stream, and a new trigger is needed for it.

Ordering: a stream's shards form a lineage (each child names its parent), and
records within a shard are in change order.  ``plan_batch`` only reads a
shard once its parent is fully delivered (or gone past retention), and the
runner keeps at most one batch of a trigger in flight, so the records of a
partition key reach the endpoint in order.  The checkpoint moves only after
the endpoint answered 2xx, in a write transaction of the lease holder, so a
crash in between redelivers that batch: at least once, never lost (unless
the stream's 24-hour retention trims records first, as with Lambda).

Failures retry with exponential back-off (``backoff_s`` doubling up to
``backoff_max_s``).  With ``maximum_retry_attempts`` -1 (the default, as
Lambda's for streams) a trigger retries forever, so nothing is lost while the
endpoint is down; with N >= 0 the trigger is *disabled* after N failed
retries of a batch, with the error kept in its state and nothing skipped:
``shoal triggers enable`` resumes from the same batch.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

from shoal.settings import backoff, from_env
from urllib.parse import urlsplit

import orjson

from shoal.api.catalog import Catalog
from shoal.api.streams import (
    format_seq,
    load_stream,
    record_position,
    shard_records,
    stream_description,
    stream_id_of,
)
from shoal.api.changelog import head_position

CONFIG_PREFIX = b"triggers/config/"
STATE_PREFIX = b"triggers/state/"
LEASE_PREFIX = b"triggers/lease/"
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
_ENVELOPE = (b'{"Records":[', b"]}")


class TriggerError(Exception):
    """A trigger cannot be added or changed; the message is what the CLI prints."""


@dataclass
class TriggerSettings:
    """Process-wide timing of trigger delivery; tests shrink it through the
    environment (SHOAL_TRIGGER_LEASE_S, SHOAL_TRIGGER_BACKOFF_S,
    SHOAL_TRIGGER_BACKOFF_MAX_S, SHOAL_TRIGGER_TIMEOUT_S)."""

    lease_s: float = 30.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> "TriggerSettings":
        return from_env(cls, {
            "lease_s": "SHOAL_TRIGGER_LEASE_S",
            "backoff_s": "SHOAL_TRIGGER_BACKOFF_S",
            "backoff_max_s": "SHOAL_TRIGGER_BACKOFF_MAX_S",
            "timeout_s": "SHOAL_TRIGGER_TIMEOUT_S",
        })

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th consecutive failure."""
        return backoff(self.backoff_s, self.backoff_max_s, attempts)


# ---------------------------------------------------------------- stored records


def _load(txn, key: bytes):
    raw = txn.get("meta", key)
    return orjson.loads(raw) if raw is not None else None


def load_config(txn, trigger_id: str) -> dict | None:
    return _load(txn, CONFIG_PREFIX + trigger_id.encode())


def save_config(txn, config: dict) -> None:
    txn.put("meta", CONFIG_PREFIX + config["id"].encode(), orjson.dumps(config))


def load_state(txn, trigger_id: str) -> dict:
    return _load(txn, STATE_PREFIX + trigger_id.encode()) or new_state()


def save_state(txn, trigger_id: str, state: dict) -> None:
    txn.put("meta", STATE_PREFIX + trigger_id.encode(), orjson.dumps(state))


def load_lease(txn, trigger_id: str) -> dict | None:
    return _load(txn, LEASE_PREFIX + trigger_id.encode())


def save_lease(txn, trigger_id: str, lease: dict) -> None:
    txn.put("meta", LEASE_PREFIX + trigger_id.encode(), orjson.dumps(lease))


def iter_configs(txn):
    """Every trigger's configuration, in id order."""
    for _key, raw in txn.scan("meta", CONFIG_PREFIX, CONFIG_PREFIX[:-1] + b"0"):
        yield orjson.loads(raw)


def new_state() -> dict:
    return {"checkpoint": {}, "attempts": 0, "next_retry": None, "last_error": None, "last_error_time": None,
            "last_delivery": None, "delivered_records": 0, "delivered_batches": 0, "disabled_reason": None}


# ---------------------------------------------------------------- configuration (the CLI's operations)


def validate_options(url: str, batch_size: int, batching_window: float, starting_position: str,
                     maximum_retry_attempts: int) -> None:
    """Check the options as Lambda checks an event-source mapping's limits."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TriggerError(f"--url must be an http:// or https:// URL, not {url!r}")
    if not 1 <= batch_size <= 10000:
        raise TriggerError("--batch-size must be between 1 and 10000")
    if not 0 <= batching_window <= 300:
        raise TriggerError("--batching-window must be between 0 and 300 seconds")
    if starting_position not in STARTING_POSITIONS:
        raise TriggerError("--starting-position must be TRIM_HORIZON or LATEST")
    if not -1 <= maximum_retry_attempts <= 10000:
        raise TriggerError("--maximum-retry-attempts must be between -1 (forever) and 10000")


def add_trigger(engine, *, region: str, table: str, url: str, batch_size: int = 100,
                batching_window: float = 0.0, starting_position: str = "TRIM_HORIZON",
                maximum_retry_attempts: int = -1, enabled: bool = True, now: float | None = None) -> dict:
    """Create a trigger on the table's enabled stream; returns its configuration.

    LATEST starts after the change log's head at this moment, TRIM_HORIZON at
    the oldest record still retained.
    """
    validate_options(url, batch_size, batching_window, starting_position, maximum_retry_attempts)
    now = time.time() if now is None else now
    with engine.write() as txn:
        described = _table_stream(txn, Catalog(engine), region, table)
        arn = described["LatestStreamArn"]
        stream_id = stream_id_of(txn, region, arn)
        config = {
            "id": str(uuid.uuid4()), "region": region, "table": table, "stream_arn": arn,
            "stream_id": stream_id.hex(), "url": url, "batch_size": batch_size,
            "batching_window": float(batching_window), "starting_position": starting_position,
            "start_after": head_position(txn) if starting_position == "LATEST" else 0,
            "maximum_retry_attempts": maximum_retry_attempts, "enabled": enabled, "created": round(now, 3),
        }
        save_config(txn, config)
        save_state(txn, config["id"], new_state())
    return config


def _table_stream(txn, catalog: Catalog, region: str, table: str) -> dict:
    found = catalog.get(txn, region, table)
    if found is None:
        raise TriggerError(f"table {table} does not exist in region {region}")
    described = stream_description(txn, found)
    if "StreamSpecification" not in described:
        raise TriggerError(f"table {table} has no enabled stream: enable one with UpdateTable "
                           "StreamSpecification first")
    return described


def remove_trigger(engine, trigger_id: str) -> dict:
    """Delete a trigger with its state and lease; returns its configuration.

    A batch in flight may still arrive at the endpoint; its outcome is dropped.
    """
    with engine.write() as txn:
        config = load_config(txn, trigger_id)
        if config is None:
            raise TriggerError(f"no trigger with id {trigger_id}")
        for prefix in (CONFIG_PREFIX, STATE_PREFIX, LEASE_PREFIX):
            txn.delete("meta", prefix + trigger_id.encode())
    return config


def set_enabled(engine, trigger_id: str, enabled: bool) -> dict:
    """Enable (resuming after a give-up: attempts reset) or disable a trigger."""
    with engine.write() as txn:
        config = load_config(txn, trigger_id)
        if config is None:
            raise TriggerError(f"no trigger with id {trigger_id}")
        config["enabled"] = enabled
        save_config(txn, config)
        if enabled:
            state = load_state(txn, trigger_id)
            state.update(attempts=0, next_retry=None, disabled_reason=None)
            save_state(txn, trigger_id, state)
    return config


def list_triggers(engine, trigger_id: str | None = None, now: float | None = None) -> list[dict]:
    """Every trigger (or one) with its state, shaped for people: sequence
    numbers as the Streams API spells them, times in epoch seconds, and the
    lag in records not yet delivered."""
    now = time.time() if now is None else now
    out = []
    with engine.read() as txn:
        for config in iter_configs(txn):
            if trigger_id is None or config["id"] == trigger_id:
                out.append(_describe(txn, config, now))
    if trigger_id is not None and not out:
        raise TriggerError(f"no trigger with id {trigger_id}")
    return out


def _describe(txn, config: dict, now: float) -> dict:
    state = load_state(txn, config["id"])
    lease = load_lease(txn, config["id"])
    stream = load_stream(txn, bytes.fromhex(config["stream_id"]))
    return {
        "Id": config["id"], "Region": config["region"], "TableName": config["table"],
        "EventSourceArn": config["stream_arn"], "Url": config["url"], "BatchSize": config["batch_size"],
        "MaximumBatchingWindowInSeconds": config["batching_window"],
        "StartingPosition": config["starting_position"],
        "MaximumRetryAttempts": config["maximum_retry_attempts"],
        "State": "Enabled" if config["enabled"] else "Disabled", "Created": config["created"],
        "Checkpoint": {sid: format_seq(seq) for sid, seq in state["checkpoint"].items()},
        "LagRecords": lag(txn, config, state, stream) if stream is not None else 0,
        "StreamAvailable": stream is not None,
        "LastDeliveryTime": state["last_delivery"], "DeliveredRecords": state["delivered_records"],
        "DeliveredBatches": state["delivered_batches"], "Attempts": state["attempts"],
        "NextRetryTime": state["next_retry"], "LastError": state["last_error"],
        "LastErrorTime": state["last_error_time"], "DisabledReason": state["disabled_reason"],
        "Lease": _lease_view(lease, now),
    }


def _lease_view(lease: dict | None, now: float) -> dict | None:
    if lease is None or lease["expires"] <= now:
        return None
    return {"Owner": lease["owner"], "Pid": lease["pid"], "Expires": lease["expires"]}


# ---------------------------------------------------------------- reading the stream


def _position(config: dict, state: dict, shard: dict) -> int:
    """The change seq after which the trigger reads ``shard``."""
    start = state["checkpoint"].get(shard["sid"])
    if start is None:
        start = shard["trim"]
    return max(start, config["start_after"], shard["start"] - 1)


def _records_after(txn, stream_id: bytes, shard: dict, position: int):
    return shard_records(txn, stream_id, shard["n"], position)


def _readable_shards(txn, config: dict, state: dict, stream: dict):
    """Yield (shard, position) for shards whose parent is fully delivered (or
    no longer retained), parents first; a shard delivered to its end is
    skipped."""
    stream_id = bytes.fromhex(config["stream_id"])
    present = {s["sid"] for s in stream["shards"]}
    done: set[str] = set()
    for shard in stream["shards"]:
        parent = shard["parent"]
        if parent is not None and parent in present and parent not in done:
            continue
        position = _position(config, state, shard)
        if shard["end"] is not None and next(iter(_records_after(txn, stream_id, shard, position)), None) is None:
            done.add(shard["sid"])
            continue
        yield shard, position


def lag(txn, config: dict, state: dict, stream: dict, limit: int = 1_000_000) -> int:
    """Records retained in the stream and not yet delivered (counted up to ``limit``)."""
    stream_id = bytes.fromhex(config["stream_id"])
    total = 0
    for shard in stream["shards"]:
        position = _position(config, state, shard)
        for _ in _records_after(txn, stream_id, shard, position):
            total += 1
            if total >= limit:
                return total
    return total


@dataclass
class Batch:
    """One POST of a trigger: records of one shard, in order."""

    trigger_id: str
    stream_id: str
    shard: str
    last_seq: int
    count: int
    url: str
    body: bytes
    closed_shard: bool = False


def plan_batch(txn, config: dict, state: dict, now: float) -> Batch | None:
    """The trigger's next batch, or None (nothing new, or the batching window
    is still open).

    A batch holds up to ``batch_size`` records and 6 MB of one shard after its
    checkpoint.  With a batching window, a short batch of an open shard waits
    until its oldest record is ``batching_window`` seconds old.
    """
    stream = load_stream(txn, bytes.fromhex(config["stream_id"]))
    if stream is None:
        return None
    stream_id = bytes.fromhex(config["stream_id"])
    suffix = b',"eventSourceARN":' + orjson.dumps(config["stream_arn"]) + b"}"
    for shard, position in _readable_shards(txn, config, state, stream):
        records, last, first_ms, size = [], position, None, len(_ENVELOPE[0]) + len(_ENVELOPE[1])
        for key, value in _records_after(txn, stream_id, shard, position):
            if len(records) >= config["batch_size"]:
                break
            record = lambda_record(value, suffix)
            if records and size + len(record) + 1 > MAX_PAYLOAD_BYTES:
                break
            if first_ms is None:
                first_ms = int.from_bytes(value[:8], "big")
            records.append(record)
            size += len(record) + 1
            last = record_position(key)
        if not records:
            return None  # an open shard with nothing new; its children cannot exist yet
        window_open = now * 1000 - first_ms < config["batching_window"] * 1000
        if len(records) < config["batch_size"] and shard["end"] is None and window_open:
            return None
        body = _ENVELOPE[0] + b",".join(records) + _ENVELOPE[1]
        return Batch(config["id"], config["stream_id"], shard["sid"], last, len(records), config["url"], body,
                     shard["end"] is not None)
    return None


def lambda_record(value, suffix: bytes) -> bytes:
    """A stored stream record (8-byte time + GetRecords JSON) as Lambda's event
    record: the same JSON plus ``eventSourceARN`` (``suffix`` closes the
    object with it), and ``userIdentity`` spelled as Lambda spells it."""
    body = bytes(value[8:])
    if b'"userIdentity"' not in body:
        return body[:-1] + suffix
    record = orjson.loads(body)
    identity = record["userIdentity"]
    record["userIdentity"] = {"type": identity.get("Type"), "principalId": identity.get("PrincipalId")}
    return orjson.dumps(record)[:-1] + suffix


# ---------------------------------------------------------------- leases


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (LMDB data
    directories are local, so every lease holder is on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lease_decision(lease: dict | None, owner: str, now: float, lease_s: float, alive=pid_alive) -> str:
    """What a worker does about a trigger's lease: "hold" (ours, fresh),
    "renew" (ours, a third of its time used), "take" (free, expired, or its
    holder died) or "busy" (another live worker holds it)."""
    if lease is None or lease["expires"] <= now:
        return "take"
    if lease["owner"] == owner:
        return "renew" if lease["expires"] - now < lease_s * 2 / 3 else "hold"
    if lease["pid"] != os.getpid() and not alive(lease["pid"]):
        return "take"
    return "busy"


def acquire(txn, trigger_id: str, owner: str, now: float, lease_s: float) -> bool:
    """Take or renew the lease in a write transaction (re-checking what a
    read snapshot suggested); True if this worker holds it afterwards."""
    decision = lease_decision(load_lease(txn, trigger_id), owner, now, lease_s)
    if decision == "busy":
        return False
    if decision != "hold":
        save_lease(txn, trigger_id, {"owner": owner, "pid": os.getpid(), "expires": round(now + lease_s, 3)})
    return True


def holds(txn, trigger_id: str, owner: str, now: float) -> bool:
    lease = load_lease(txn, trigger_id)
    return lease is not None and lease["owner"] == owner and lease["expires"] > now


# ---------------------------------------------------------------- delivery outcomes


def record_outcome(txn, batch: Batch, owner: str, error: str | None, now: float,
                   settings: TriggerSettings) -> dict | None:
    """Apply a delivery's outcome: on success move the checkpoint, on failure
    count the attempt and schedule the retry (or give up, disabling the
    trigger, once ``maximum_retry_attempts`` is exceeded); returns the new
    state.  Dropped (None) when this worker no longer holds the lease or the
    trigger changed: the holder redelivers, which keeps delivery at least once."""
    config = load_config(txn, batch.trigger_id)
    if config is None or config["stream_id"] != batch.stream_id or not holds(txn, batch.trigger_id, owner, now):
        return None
    state = load_state(txn, batch.trigger_id)
    if error is None:
        _delivered(txn, state, batch, now)
    else:
        _failed(txn, config, state, error, now, settings)
    save_state(txn, batch.trigger_id, state)
    return state


def _delivered(txn, state: dict, batch: Batch, now: float) -> None:
    checkpoint = state["checkpoint"]
    checkpoint[batch.shard] = max(checkpoint.get(batch.shard, 0), batch.last_seq)
    stream = load_stream(txn, bytes.fromhex(batch.stream_id))
    if stream is not None:  # forget shards trimmed away
        present = {s["sid"] for s in stream["shards"]}
        state["checkpoint"] = {sid: seq for sid, seq in checkpoint.items() if sid in present}
    state.update(attempts=0, next_retry=None, last_delivery=round(now, 3),
                 delivered_records=state["delivered_records"] + batch.count,
                 delivered_batches=state["delivered_batches"] + 1)


def _failed(txn, config: dict, state: dict, error: str, now: float, settings: TriggerSettings) -> None:
    attempts = state["attempts"] + 1
    state.update(attempts=attempts, last_error=error, last_error_time=round(now, 3))
    limit = config["maximum_retry_attempts"]
    if 0 <= limit < attempts:
        config["enabled"] = False
        save_config(txn, config)
        state["next_retry"] = None
        state["disabled_reason"] = f"gave up after {attempts} failed attempts: {error}"
    else:
        state["next_retry"] = round(now + settings.backoff(attempts), 3)
