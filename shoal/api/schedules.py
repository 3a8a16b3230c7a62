"""Scheduled backups: a backup of a table every so often, each kept for a
while (``shoal backup schedule TABLE --every 1h --keep 7d``).

A schedule is a record in ``meta``, so every worker of a server sees it and
it outlives restarts::

    meta  backup-schedule/<region>\\0<table name>  {"table", "region", "account",
          "every_s", "keep_s", "created", "last" (when the last backup was
          claimed), "last_arn", "last_error", "job" (the running backup's)}

The backups are SYSTEM backups, as DynamoDB calls the backups it makes
itself: ListBackups shows them with BackupType SYSTEM (or ALL), named
``<table>$ScheduledBackup`` as DynamoDB names a deleted table's
``<table>$DeletedTableBackup`` (a ``$`` no user's backup name can hold), with
ARNs of the usual form, ``<table arn>/backup/<ms>-<8 hex>``.  Each one's
record carries ``expires`` (its creation plus the schedule's ``keep``);
DeleteBackup refuses SYSTEM backups, and the scheduler deletes them when they
expire (``prune_expired``), whether or not the schedule still exists.  It
also deletes the other SYSTEM backups once they expire (a deleted table's,
after 35 days), which nothing else removes from storage.

``BackupScheduler`` is a background job of every serving worker
(``shoal.server.background``).  Each round reads the schedules (a short
scan); for a schedule that is due it claims the backup in a write
transaction (it stores ``last`` = now), so that of several worker processes
only the one whose transaction commits first takes it, and runs the backup
on a thread of its own (``jobs.start_job``): ``backups.create_backup`` copies
the table in its own bounded transactions, however big, while the event loop
goes on serving.  (The other way, a copy in bounded chunks across rounds of
the event loop, would need a copy loop of its own beside CreateBackup's; the
thread reuses it whole.)  CreateBackup makes a USER backup, so the job then
rewrites the record as SYSTEM with its expiry: while the copy runs, the
backup is listed as a USER backup being CREATING.

A schedule whose table does not exist when it is due records the error and
tries again at the next period.  The operations' clock
(``shoal.settings.request_clock``) drives it all, so tests move it forward
instead of waiting an hour.
"""

from __future__ import annotations

import logging
import math
import time
import types
from typing import Callable

import orjson

from shoal.api import Context, jobs
from shoal.api import backups
from shoal.api import tables
from shoal.api.catalog import table_arn
from shoal.api.common import successor
from shoal.errors import ResourceNotFoundException, TableNotFoundException, ValidationException

log = logging.getLogger("shoal")

PREFIX = b"backup-schedule/"
NAME_SUFFIX = "$ScheduledBackup"
MIN_EVERY_S = 60.0
#: Retention at most as long as DynamoDB keeps its SYSTEM backups.
MAX_KEEP_S = backups.SYSTEM_BACKUP_DAYS * 86400.0
#: How often (by the operations' clock) a worker looks for expired backups.
PRUNE_INTERVAL_S = 60.0
#: Backups deleted per transaction while pruning.
PRUNE_CHUNK = 10
_BACKUP_PREFIX = b"backup/"


def schedule_key(region: str, table: str) -> bytes:
    return PREFIX + region.encode() + b"\0" + table.encode()


def backup_name(table: str) -> str:
    return table + NAME_SUFFIX


# ---------------------------------------------------------------- the schedules


def set_schedule(ctx, table_name: str, every_s: float, keep_s: float) -> dict:
    """Back up ``table_name`` every ``every_s`` seconds, keeping each backup
    ``keep_s`` seconds (replacing its schedule, if it had one); the first
    backup is due at once.  Returns the schedule's record."""
    if every_s < MIN_EVERY_S:
        raise ValidationException(f"the period must be at least {MIN_EVERY_S:g} seconds")
    if not every_s <= keep_s <= MAX_KEEP_S:
        raise ValidationException(f"backups must be kept at least one period and at most "
                                  f"{backups.SYSTEM_BACKUP_DAYS} days (as DynamoDB keeps its SYSTEM backups)")
    with ctx.engine.write() as txn:
        name = tables.source_table(ctx, txn, table_name).name
        key = schedule_key(ctx.region, name)
        raw = txn.get("meta", key)
        record = orjson.loads(raw) if raw is not None else {
            "table": name, "region": ctx.region, "account": ctx.account, "created": round(ctx.now(), 3),
            "last": None, "last_arn": None, "last_error": None, "job": None}
        record.update(every_s=float(every_s), keep_s=float(keep_s))
        txn.put("meta", key, orjson.dumps(record))
    return record


def remove_schedule(ctx, table_name: str) -> bool:
    """Stop backing up ``table_name`` on a schedule (its backups stay until
    they expire); False if it had no schedule."""
    name = _table_name(ctx, table_name)
    with ctx.engine.write() as txn:
        return bool(txn.delete("meta", schedule_key(ctx.region, name)))


def list_schedules(engine, region: str | None = None) -> list[dict]:
    """The schedules (of one region, or all), by region and table name."""
    first = PREFIX + (region.encode() + b"\0" if region is not None else b"")
    with engine.read() as txn:
        return [orjson.loads(raw) for _, raw in txn.scan("meta", first, successor(first))]


def next_due(record: dict) -> float | None:
    """When the schedule's next backup is due (None: at once)."""
    return None if record["last"] is None else record["last"] + record["every_s"]


def _table_name(ctx, text: str) -> str:
    try:
        return tables.table_name_of(ctx, text)
    except ResourceNotFoundException:
        raise TableNotFoundException(f"Table not found: {text}") from None


# ---------------------------------------------------------------- the background job


class BackupScheduler:
    """The background job: takes the backups that are due, each on a thread,
    and deletes expired SYSTEM backups."""

    __name__ = "backup_scheduler"

    def __init__(self, engine, catalog, clock: Callable[[], float] = time.time) -> None:
        self.engine, self.catalog, self.clock = engine, catalog, clock
        self._next_prune = 0.0

    def __call__(self) -> bool:
        now = self.clock()
        for record in list_schedules(self.engine):
            due = next_due(record)
            if (due is None or due <= now) and not self._running(record):
                self._claim_and_start(record, now)
        if now >= self._next_prune:
            more = prune_expired(self.engine, now)
            self._next_prune = now if more else now + PRUNE_INTERVAL_S
            return more
        return False

    @staticmethod
    def _running(record: dict) -> bool:
        job = record.get("job")
        return job is not None and jobs.runner_alive(job)

    def _claim_and_start(self, seen: dict, now: float) -> None:
        key = schedule_key(seen["region"], seen["table"])
        job_arn = f"{table_arn(seen['region'], seen['account'], seen['table'])}/scheduled-backup/{int(now * 1000)}"
        with self.engine.write() as txn:
            raw = txn.get("meta", key)
            if raw is None:
                return  # removed meanwhile
            record = orjson.loads(raw)
            if record["last"] != seen["last"]:
                return  # another worker took it
            # to the millisecond, rounded down: rounded up, the next backup would be due up to half a
            # millisecond after now + period, and a call at exactly that moment would pass it over
            record["last"] = math.floor(now * 1000) / 1000
            record["job"] = {"arn": job_arn, "runner": jobs.runner(), "beat": round(time.time(), 3)}
            txn.put("meta", key, orjson.dumps(record))
        ctx = Context(record["region"], record["account"], self.engine, self.catalog, now=self.clock)
        jobs.start_job(ctx, job_arn, lambda job_ctx, arn, stop: take_backup(job_ctx, arn, record))


def take_backup(ctx, job_arn: str, schedule: dict) -> None:
    """Take one scheduled backup of ``schedule``'s table (on the job's
    thread), make it SYSTEM with its expiry, and note the outcome in the
    schedule (if it is still the job the schedule names)."""
    name = schedule["table"]
    outcome: dict = {"job": None}
    try:
        details = backups.create_backup(ctx, {"TableName": name, "BackupName": backup_name(name)},
                                        backup_type="SYSTEM", keep_s=schedule["keep_s"])["BackupDetails"]
    except Exception as exc:  # the table is gone, or a failure of the copy: tried again next period
        message = getattr(exc, "message", None) or str(exc)
        log.warning("scheduled backup of table %s failed: %s", name, message)
        outcome["last_error"] = message
    else:
        outcome.update(last_arn=details["BackupArn"], last_error=None)
    with ctx.engine.write() as txn:
        key = schedule_key(ctx.region, name)
        raw = txn.get("meta", key)
        if raw is not None:
            record = orjson.loads(raw)
            if (record.get("job") or {}).get("arn") == job_arn:
                record.update(outcome)
                txn.put("meta", key, orjson.dumps(record))


# ---------------------------------------------------------------- retention


def prune_expired(engine, now: float) -> bool:
    """Delete up to ``PRUNE_CHUNK`` expired backups (their records at once,
    their items by the purge job); True if more are left."""
    with engine.write() as txn:
        expired = []
        for key, raw in txn.scan("meta", _BACKUP_PREFIX, successor(_BACKUP_PREFIX)):
            record = orjson.loads(raw)
            when = backups.expiry(record)
            if when is not None and when <= now and record["status"] == "AVAILABLE":
                region = bytes(key)[len(_BACKUP_PREFIX):].split(b"\0", 1)[0].decode()
                expired.append((region, record))
                if len(expired) > PRUNE_CHUNK:
                    break
        for region, record in expired[:PRUNE_CHUNK]:
            backups.drop_backup(types.SimpleNamespace(region=region, engine=engine), record, txn)
        return len(expired) > PRUNE_CHUNK
