"""On-demand backups: CreateBackup, DescribeBackup, ListBackups, DeleteBackup
and RestoreTableFromBackup.

A backup is a copy of one table at one position of the change log, kept in
the store itself, so it outlives DeleteTable and restarts and is encrypted
when the data directory is (the engine encrypts every value)::

    meta   backup/<region>\\0<backup arn>   the backup's record (JSON, below)
    items  backup prefix (16 random bytes) + 8-byte ordinal -> the item as the
           table stored it (``writepath.encode_stored``), in the table's order

The record holds the status (CREATING, then AVAILABLE), the name, the
creation time, the source table's stored description (what a restore makes
the new table from) and log position, the item count and size, and a SHA-256
over the items in order (each item's length then its stored bytes).  ARNs are
DynamoDB's: ``<table arn>/backup/<14-digit ms timestamp>-<8 hex digits>``, so
the records of one table are one key range, ordered by time.

CreateBackup reads the table through ``snapshots.snapshot_table`` (one read
transaction: every item as of one position, writers never blocked) and
writes the copy in ``COPY_CHUNK``-item write transactions while the backup is
CREATING; the last one makes it AVAILABLE.  The copy is done inside the
request: the answer comes once the backup is AVAILABLE, and says CREATING as
DynamoDB's does.

RestoreTableFromBackup reads the backup in one read transaction (so a
DeleteBackup meanwhile cannot take items from under it), checks the count
and checksum before it creates anything, creates the table from the source's
description with the overrides applied, writes the items in their stored
form through the write path's bulk load (``writepath.BulkLoad``: items,
index entries, counters, one change record per transaction) in
``LOAD_CHUNK``-item transactions, and keeps a RestoreSummary in the table's
description (RestoreInProgress while the items are written).  A restore
that fails after creating the table deletes it again.

DeleteBackup removes the record and queues the purge of its items as a drop
job (``indexes.schedule_drop``, the job a deleted table's storage goes
through): the first ``indexes.DROP_CHUNK`` keys go in the same transaction,
the rest in the background job runner's bounded steps, resumed after a restart.

These operations run their own transactions rather than the group
committer's single one (``shoal.server.dispatch.WRITE_OPERATIONS`` leaves them
out): grouped, a copy would be one unbounded transaction, and a restore
could not read the table it has just created.  Each of their write
transactions is durable when it returns.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import struct
import types
import time
import uuid
from datetime import datetime, timezone

import orjson

from shoal.api import indexes as index_store
from shoal.api import jobs, streams, tables
from shoal.api.catalog import read_stats, table_arn, update_description
from shoal.api.changelog import head_position, record_table_change
from shoal.api.common import key_of, storage_key, successor
from shoal.api.snapshots import create_request, keep_needed_definitions, snapshot_table, vector_index_specs
from shoal.api.writepath import BulkLoad, encode_stored_json, stored_json, stored_size
from shoal.model.size import item_size
from shoal.errors import (
    CORAL_NS,
    INVALID_PARAMETERS,
    BackupInUseException,
    BackupNotFoundException,
    InternalServerError,
    ResourceInUseException,
    ResourceNotFoundException,
    ShoalError,
    TableAlreadyExistsException,
    TableNotFoundException,
    ValidationException,
)

#: Items copied per write transaction while a backup is made.
COPY_CHUNK = 1000
#: Items written per write transaction while a restore loads its table.
LOAD_CHUNK = 5000

log = logging.getLogger("shoal")

_RECORD_PREFIX = b"backup/"
_RESTORE_JOB = b"restore-job/"  # meta: restore-job/<region>\0<job id> -> the running restore's record
_LENGTH = struct.Struct(">I")


def backup_key(region: str, arn: str) -> bytes:
    """The ``meta`` key of a backup's record."""
    return _RECORD_PREFIX + region.encode() + b"\0" + arn.encode()


#: How long a SYSTEM backup (of a table deleted with point-in-time recovery on) is kept.
SYSTEM_BACKUP_DAYS = 35


def _new_arn(source_arn: str, now: float, suffix: str | None = None) -> str:
    return f"{source_arn}/backup/{int(now * 1000):014d}-{suffix or secrets.token_hex(4)}"


def expiry(record: dict) -> float | None:
    """When a backup expires: at its ``expires`` if it has one (a scheduled
    backup), a deleted table's SYSTEM backup after DynamoDB's 35 days, a USER
    backup never."""
    if record.get("expires") is not None:
        return record["expires"]
    return round(record["created"] + SYSTEM_BACKUP_DAYS * 86400, 3) if record["type"] == "SYSTEM" else None


def _digest_add(digest, raw: bytes) -> None:
    digest.update(_LENGTH.pack(len(raw)))
    digest.update(raw)


# ---------------------------------------------------------------- descriptions


def _details(record: dict, status: str | None = None) -> dict:
    """BackupDetails."""
    out = {
        "BackupArn": record["arn"],
        "BackupName": record["name"],
        "BackupSizeBytes": record["size"],
        "BackupStatus": status or record["status"],
        "BackupType": record["type"],
        "BackupCreationDateTime": record["created"],
    }
    if expiry(record) is not None:
        out["BackupExpiryDateTime"] = expiry(record)
    return out


def _source_details(record: dict) -> dict:
    """SourceTableDetails: the source table as it was when backed up."""
    desc = record["source"]
    throughput = desc.get("ProvisionedThroughput") or {}
    out = {
        "TableName": desc["TableName"],
        "TableId": desc["TableId"],
        "TableArn": desc["TableArn"],
        "TableSizeBytes": record["size"],
        "KeySchema": desc["KeySchema"],
        "TableCreationDateTime": desc["CreationDateTime"],
        "ProvisionedThroughput": {"ReadCapacityUnits": throughput.get("ReadCapacityUnits", 0),
                                  "WriteCapacityUnits": throughput.get("WriteCapacityUnits", 0)},
    }
    if desc.get("OnDemandThroughput") is not None:
        out["OnDemandThroughput"] = desc["OnDemandThroughput"]
    out["ItemCount"] = record["items"]
    out["BillingMode"] = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    return out


def _feature_details(desc: dict, stream: dict | None, encrypted: bool) -> dict:
    """SourceTableFeatureDetails: the indexes, stream and encryption of the source."""
    out: dict = {}
    lsis = [{"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
            for i in desc.get("LocalSecondaryIndexes") or ()]
    if lsis:
        out["LocalSecondaryIndexes"] = lsis
    gsis = []
    for index in desc.get("GlobalSecondaryIndexes") or ():
        if index.get("IndexStatus") in ("CREATING", "DELETING"):
            continue  # not in the backup's items' indexes (see snapshots.create_request)
        throughput = index.get("ProvisionedThroughput") or {}
        gsis.append({"IndexName": index["IndexName"], "KeySchema": index["KeySchema"],
                     "Projection": index["Projection"],
                     "ProvisionedThroughput": {"ReadCapacityUnits": throughput.get("ReadCapacityUnits", 0),
                                               "WriteCapacityUnits": throughput.get("WriteCapacityUnits", 0)}})
    if gsis:
        out["GlobalSecondaryIndexes"] = gsis
    vector_indexes = vector_index_specs(desc)
    if vector_indexes:
        out["VectorIndexes"] = vector_indexes
    if stream is not None:
        out["StreamDescription"] = stream
    if desc.get("SSEDescription") is not None:
        out["SSEDescription"] = desc["SSEDescription"]
    elif encrypted:
        out["SSEDescription"] = tables.ENCRYPTED_AT_REST
    return out


def _description(record: dict, status: str | None = None) -> dict:
    """BackupDescription."""
    return {"BackupDetails": _details(record, status), "SourceTableDetails": _source_details(record),
            "SourceTableFeatureDetails": record["features"]}


def _summary(record: dict) -> dict:
    """BackupSummary, as ListBackups gives it."""
    desc = record["source"]
    out = {
        "TableName": desc["TableName"], "TableId": desc["TableId"], "TableArn": desc["TableArn"],
        "BackupArn": record["arn"], "BackupName": record["name"],
        "BackupCreationDateTime": record["created"], "BackupStatus": record["status"],
        "BackupType": record["type"], "BackupSizeBytes": record["size"],
    }
    if expiry(record) is not None:
        out["BackupExpiryDateTime"] = expiry(record)
    return out


def _read(txn, region: str, arn: str, now: float) -> dict | None:
    raw = txn.get("meta", backup_key(region, arn))
    record = None if raw is None else orjson.loads(raw)
    return None if record is None or _expired(record, now) else record


def _expired(record: dict, now: float) -> bool:
    when = expiry(record)
    return when is not None and when <= now


def _require(txn, region: str, arn: str, now: float) -> dict:
    if not arn.startswith("arn:") or "/backup/" not in arn:
        raise ValidationException("Invalid Backup ARN")
    record = _read(txn, region, arn, now)
    if record is None:
        raise BackupNotFoundException(f"Backup not found: {arn}")
    return record


class _AccessDenied(ShoalError):
    """DynamoDB's answer to another account's BackupArn: the Coral error the
    authorization layer (``shoal.auth.errors``, a layer above this one) also
    raises, with its capital-M ``Message``."""

    type_name = "AccessDeniedException"
    namespace = CORAL_NS
    status = 400

    def to_body(self) -> dict:
        return {"__type": self.wire_type, "Message": self.message}


def _named_backup(ctx, txn, arn: str) -> dict:
    """The backup DescribeBackup or DeleteBackup names, after DynamoDB's
    checks of a BackupArn as recorded (ack-api-quirks DDB-BACKUP-012,
    2026-10-09): another account's ARN, or one without a region, is
    AccessDenied (its text as for another account's); another service,
    partition or an unknown region is not a valid ARN; a known region of
    this partition is ignored (the backup is looked up in this region and
    the ARN echoed as sent)."""
    if not arn.startswith("arn:") or "/backup/" not in arn:
        raise ValidationException("Invalid Backup ARN")
    parts = arn.split(":", 5)
    if len(parts) == 6 and (parts[4] != ctx.account or not parts[3]):  # an empty region too (recorded)
        raise _AccessDenied("Access is denied")
    if len(parts) != 6 or parts[2] != "dynamodb" or not tables.region_of_partition(parts[3], parts[1], ctx.region):
        raise ValidationException("Invalid Request: BackupArn is not valid")
    here = ":".join(parts[:3] + [ctx.region] + parts[4:])
    return _require(txn, ctx.region, here, ctx.now())




# ---------------------------------------------------------------- CreateBackup


def create_backup(ctx, request: dict, *, backup_type: str = "USER", keep_s: float | None = None,
                  archival: bool = False) -> dict:
    """Copy the table, as of one position of the change log, into a new backup
    (a scheduled one: ``backup_type`` SYSTEM, expiring after ``keep_s``).

    The answer says CREATING, as DynamoDB's does (recorded, ack-api-quirks
    DDB-BACKUP-003: DescribeBackup ~50 ms later says AVAILABLE), though the
    copy is done: DescribeBackup and ListBackups say AVAILABLE from then."""
    try:
        name = tables.table_name_of(ctx, request["TableName"])
    except ResourceNotFoundException:
        raise TableNotFoundException(f"Table not found: {request['TableName']}") from None
    try:
        snapshot = snapshot_table(ctx.engine, ctx.catalog, ctx.region, name)
        taken = snapshot.__enter__()
    except ResourceNotFoundException:
        raise TableNotFoundException(f"Table not found: {name}") from None
    try:
        _check_key_usable(ctx, taken.description)
        if not archival:
            _check_not_archived(taken.description, name)
        record = _copy(ctx, request["BackupName"], name, taken, backup_type, keep_s)
        return {"BackupDetails": _details(record, "CREATING")}
    finally:
        snapshot.__exit__(None, None, None)


def _check_key_usable(ctx, desc: dict) -> None:
    """DynamoDB refuses CreateBackup of a table whose KMS key cannot be used
    (INACCESSIBLE_ENCRYPTION_CREDENTIALS) as it refuses item requests there
    (ack-api-quirks DDB-TABLE-333); ListBackups and DescribeContinuousBackups
    still answer.  ``desc`` is the snapshot's description of the table."""
    from shoal.replication import control

    if desc.get("TableStatus") == control.INACCESSIBLE:
        raise control.description_key_error(ctx.engine, desc)


def _check_not_archived(desc: dict, name: str) -> None:
    """An ARCHIVING table's data is being backed up and dropped, an ARCHIVED
    one's is gone (its ArchivalBackupArn holds it): no backup of either (a
    USER backup would otherwise be empty).  Answered as the other backup and
    recovery operations answer for such a table (``tables.source_table``:
    DescribeContinuousBackups' TableNotFoundException, the one answer on
    record for an archived table)."""
    from shoal.api import archival

    if archival.is_archived(desc):
        raise TableNotFoundException(f"Table not found: {name}")


def _copy(ctx, backup_name: str, table_name: str, taken, backup_type: str = "USER",
          keep_s: float | None = None) -> dict:
    """Write the backup of snapshot ``taken``: its record, CREATING, then its
    items in chunks, then the record AVAILABLE with the count and checksum."""
    now = round(ctx.now(), 3)
    desc = taken.description
    with ctx.engine.read() as txn:  # the stream setting, for SourceTableFeatureDetails
        table = ctx.catalog.get(txn, ctx.region, table_name)
        stream = None
        if table is not None and table.table_id == taken.table_id:
            stream = streams.stream_description(txn, table).get("StreamSpecification")
    prefix = uuid.uuid4().bytes  # as a table's: never another's, so a purge can go by prefix
    record = {
        "account": ctx.account, "arn": _new_arn(desc["TableArn"], now), "name": backup_name, "type": backup_type,
        "status": "CREATING", "created": now, "prefix": prefix.hex(), "position": taken.position,
        "source": desc, "features": _feature_details(desc, stream, ctx.catalog.keys is not None),
        "items": 0, "size": 0, "sha256": None, "runner": jobs.runner(), "beat": round(time.time(), 3),
    }
    if keep_s is not None:
        record["expires"] = round(now + keep_s, 3)
    key = backup_key(ctx.region, record["arn"])
    with ctx.engine.write() as txn:
        txn.put("meta", key, orjson.dumps(record))
    digest = hashlib.sha256()
    count = size = 0
    chunk: list[bytes] = []
    try:
        for raw in taken.raw_items:
            _digest_add(digest, raw)
            size += stored_size(raw)
            chunk.append(raw)
            if len(chunk) >= COPY_CHUNK:
                with ctx.engine.write() as txn:
                    _put_items(txn, prefix, count, chunk)
                    if time.time() - record["beat"] >= jobs.HEARTBEAT_S:  # alive, for other workers
                        record["beat"] = round(time.time(), 3)
                        txn.put("meta", key, orjson.dumps(record))
                count += len(chunk)
                chunk = []
        record.update(status="AVAILABLE", items=count + len(chunk), size=size, sha256=digest.hexdigest())
        with ctx.engine.write() as txn:
            _put_items(txn, prefix, count, chunk)
            txn.put("meta", key, orjson.dumps(record))
    except BaseException:
        drop_backup(ctx, record)  # no half-made backup left behind
        raise
    return record


def _put_items(txn, prefix: bytes, first: int, chunk: list[bytes]) -> None:
    """Store ``chunk`` under ``prefix`` from ordinal ``first``."""
    for n, raw in enumerate(chunk, first):
        txn.put("items", prefix + n.to_bytes(8, "big"), raw)


def drop_backup(ctx, record: dict, txn=None) -> None:
    """Remove a backup's record and queue the purge of its items (the first
    ``DROP_CHUNK`` keys at once)."""
    if txn is None:
        with ctx.engine.write() as txn:
            drop_backup(ctx, record, txn)
        return
    prefix = bytes.fromhex(record["prefix"])
    txn.delete("meta", backup_key(ctx.region, record["arn"]))
    owner = types.SimpleNamespace(region=ctx.region, name=record["arn"], prefix=prefix)
    job_key, job = index_store.schedule_drop(txn, owner, [("items", prefix, successor(prefix))])
    index_store.purge_step(txn, job_key, job, index_store.DROP_CHUNK)


def keep_deleted_table(ctx, txn, table) -> dict:
    """Make the items of ``table``, being deleted in ``txn`` while its
    point-in-time recovery is on, a SYSTEM backup named
    ``<table>$DeletedTableBackup`` (as DynamoDB keeps one).  The items are
    not copied: the backup adopts the table's own key range (DeleteTable
    leaves it out of the purge), which nothing writes to again.  No checksum
    is taken (that would read the whole table inside DeleteTable); a restore
    checks the item count instead.  Returns the backup's record."""
    now = round(ctx.now(), 3)
    desc = dict(table.description)
    count, size = read_stats(txn, table.prefix)
    stream = streams.stream_description(txn, table).get("StreamSpecification")
    record = {
        "account": ctx.account, "arn": _new_arn(desc["TableArn"], now, "00000000"),
        "name": f"{table.name}$DeletedTableBackup",
        "type": "SYSTEM", "status": "AVAILABLE", "created": now, "prefix": table.prefix.hex(),
        "position": head_position(txn), "source": desc,
        "features": _feature_details(desc, stream, ctx.catalog.keys is not None),
        "items": count, "size": size, "sha256": None,
    }
    txn.put("meta", backup_key(ctx.region, record["arn"]), orjson.dumps(record))
    return record


# ---------------------------------------------------------------- DescribeBackup, ListBackups


def describe_backup(ctx, request: dict) -> dict:
    with ctx.engine.read() as txn:
        description = _description(_named_backup(ctx, txn, request["BackupArn"]))
    description["BackupDetails"]["BackupArn"] = request["BackupArn"]
    return {"BackupDescription": description}


def list_backups(ctx, request: dict) -> dict:
    """The backups of the region (or of one table), in ARN order (table name,
    then creation time), a page of up to Limit."""
    first = _RECORD_PREFIX + ctx.region.encode() + b"\0"
    start, stop = first, successor(first)
    if request.get("TableName") is not None:
        source = _listed_table_arn(ctx, request["TableName"])
        if source is None:
            return {"BackupSummaries": []}
        start = backup_key(ctx.region, source + "/backup/")
        stop = successor(start)
    after = request.get("ExclusiveStartBackupArn")
    if after is not None and after.split(":")[3:4] != [ctx.region]:
        raise ValidationException("Invalid Request: The supplied ExclusiveStartBackupArn does not match the region")
    if after is not None:
        start = max(start, backup_key(ctx.region, after) + b"\0")
    lower, upper = request.get("TimeRangeLowerBound"), request.get("TimeRangeUpperBound")
    if lower is not None and upper is not None and epoch_seconds(lower) > epoch_seconds(upper):
        raise ValidationException(
            f"{INVALID_PARAMETERS}Time range lower bound must be less than or equal to upper bound")
    wanted = request.get("BackupType") or "USER"
    limit = request.get("Limit")
    now = ctx.now()
    summaries: list[dict] = []
    with ctx.engine.read() as txn:
        if stop is not None and start >= stop:
            return {"BackupSummaries": []}
        for _, raw in txn.scan("meta", start, stop):
            record = orjson.loads(raw)
            if (wanted != "ALL" and record["type"] != wanted) or _expired(record, now):
                continue
            if lower is not None and record["created"] < epoch_seconds(lower):
                continue  # the lower bound is inclusive
            if upper is not None and record["created"] >= epoch_seconds(upper):
                continue  # the upper bound exclusive
            if limit is not None and len(summaries) == limit:
                return {"BackupSummaries": summaries, "LastEvaluatedBackupArn": summaries[-1]["BackupArn"]}
            summaries.append(_summary(record))
    return {"BackupSummaries": summaries}


def _listed_table_arn(ctx, text: str) -> str | None:
    """The ARN of the table ListBackups' TableName names (a name or an ARN of
    this region and account; another ARN names a table with no backups here)."""
    if text.startswith("arn:"):
        region, account, name = tables.parse_table_arn(text)
        if region != ctx.region or account != ctx.account:
            return None
        return table_arn(region, account, name)
    tables.check_table_name(text)
    return table_arn(ctx.region, ctx.account, text)


def iso_time(seconds: float) -> str:
    """Epoch seconds as DynamoDB writes a time in a message (ISO 8601, UTC, ms)."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_seconds(value) -> float:
    """A timestamp member as epoch seconds (the JSON protocol sends numbers)."""
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- DeleteBackup


def delete_backup(ctx, request: dict) -> dict:
    with ctx.engine.write() as txn:
        record = _named_backup(ctx, txn, request["BackupArn"])
        arn = record["arn"]
        if record["status"] == "CREATING":
            raise BackupInUseException(f"Backup is being created: {arn}")
        if _restoring_from(txn, arn):
            raise BackupInUseException(f"Backup is being used to restore table: {arn}")
        if record["type"] == "SYSTEM":
            raise ValidationException(
                f"Invalid Request: User is not allowed to delete the system backup with arn {arn}. "
                f"It will automatically expire on {iso_time(expiry(record))}")
        drop_backup(ctx, record, txn)
    description = _description(record, "DELETED")
    description["BackupDetails"]["BackupArn"] = request["BackupArn"]
    return {"BackupDescription": description}


# ---------------------------------------------------------------- RestoreTableFromBackup


def restore_table_from_backup(ctx, request: dict) -> dict:
    """Make a new table of the backup's items, with the overrides applied."""
    arn, target = request["BackupArn"], request["TargetTableName"]
    tables.check_table_name(target)
    # One read transaction for the whole restore: the items checked are the
    # items restored, whatever happens to the backup meanwhile.
    with RestoreReader(ctx.engine) as reader:
        txn = reader.txn
        record = _require(txn, ctx.region, arn, ctx.now())
        if record["status"] != "AVAILABLE":
            raise BackupInUseException(f"Backup is being created: {arn}")
        if _restoring_from(txn, arn):
            raise BackupInUseException(f"Backup is being used to restore another table: {arn}")
        if ctx.catalog.get(txn, ctx.region, target) is not None:
            raise TableAlreadyExistsException(f"Table already exists: {target}")
        prefix = bytes.fromhex(record["prefix"])
        stop = successor(prefix)
        _verify(txn, record, prefix, stop)
        summary = {"SourceBackupArn": arn, "SourceTableArn": record["source"]["TableArn"],
                   "RestoreDateTime": round(ctx.now(), 3)}
        items = ((stored_json(raw), stored_size(raw)) for _, raw in txn.scan("items", prefix, stop))
        return load_restored_table(ctx, restore_request(record["source"], target, request), summary, items, reader)


def _restoring_from(txn, backup_arn: str) -> bool:
    """Whether a restore job still loads a table from this backup."""
    for _, raw in txn.scan("meta", _RESTORE_JOB, successor(_RESTORE_JOB)):
        job = orjson.loads(raw)
        if job.get("backup") == backup_arn and jobs.runner_alive(job):
            return True
    return False


class RestoreReader:
    """The read transaction a restore checks its source in and reads its
    items from: closed when the ``with`` block ends, unless the restore's
    load job has taken it over (``hand_off``), which then closes it."""

    def __init__(self, engine) -> None:
        self._context = engine.read()
        self.txn = self._context.__enter__()
        self._owned = True

    def __enter__(self) -> "RestoreReader":
        return self

    def __exit__(self, *exc_info) -> None:
        if self._owned:
            self.close()

    def hand_off(self) -> None:
        self._owned = False

    def close(self) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            context.__exit__(None, None, None)


def load_restored_table(ctx, create: dict, summary: dict, items, reader: RestoreReader) -> dict:
    """Create the table of CreateTable request ``create``, CREATING, with
    ``summary`` as its RestoreSummary (RestoreInProgress), and answer its
    TableDescription at once; a job (``jobs.start_job``) then loads ``items``
    ((item JSON, its size or None if unknown), read through ``reader``,
    which it takes over) into it (``load_items``) and makes it ACTIVE.  A load that fails deletes the table again; one
    a stopped server left half-done is deleted at the next start
    (``recover_interrupted_restores``)."""
    target = create["TableName"]
    summary = dict(summary, RestoreInProgress=True)
    try:
        created = tables.create_table(ctx, create, status="CREATING",
                                      extra={"RestoreSummary": summary})["TableDescription"]
    except ResourceInUseException:
        raise TableAlreadyExistsException(f"Table already exists: {target}") from None
    job = {"arn": f"{created['TableArn']}/restore/{created['TableId']}", "region": ctx.region,
           "account": ctx.account, "name": target, "backup": summary.get("SourceBackupArn"),
           "table_id": created["TableId"], "runner": jobs.runner(), "beat": round(time.time(), 3)}
    with ctx.engine.write() as txn:
        txn.put("meta", jobs.record_key(_RESTORE_JOB, ctx.region, job["arn"]), orjson.dumps(job))

    def load(job_ctx, arn: str, stop) -> None:
        try:
            with job_ctx.engine.read() as txn:
                table = job_ctx.catalog.get(txn, job_ctx.region, target)
            if table is None or table.table_id != job["table_id"]:
                return  # deleted meanwhile
            load_items(job_ctx, table, _beating(job_ctx.engine, job, items, stop))
            _finish_restore(job_ctx, target, job["table_id"], dict(summary, RestoreInProgress=False))
        except jobs.Stopped:
            return  # the server stops: the next start deletes the half-made table
        except BaseException:
            log.error("restore of table %s failed", target, exc_info=True)
            _discard(job_ctx, target, job["table_id"])
        finally:
            reader.close()
        with job_ctx.engine.write() as txn:
            txn.delete("meta", jobs.record_key(_RESTORE_JOB, job_ctx.region, arn))

    jobs.start_job(jobs.job_context(ctx), job["arn"], load)
    reader.hand_off()
    return {"TableDescription": created}


def load_items(ctx, table, items) -> int:
    """Put ``items`` ((item JSON, its DynamoDB size or None)) into ``table``,
    which a restore is loading, ``LOAD_CHUNK`` per transaction through
    ``writepath.BulkLoad``; returns how many.  Stored items keep their bytes
    and size: they were checked and measured when first written."""
    chunk: list[tuple[bytes, bytes, dict]] = []
    written = 0
    for item_json, size in items:
        item = orjson.loads(item_json)
        if size is None:
            size = item_size(item)
        chunk.append((storage_key(table, key_of(table, item)), encode_stored_json(item_json, size), item))
        if len(chunk) >= LOAD_CHUNK:
            written += _load_chunk(ctx, table, chunk)
            chunk = []
    return written + _load_chunk(ctx, table, chunk)


def _load_chunk(ctx, table, chunk: list[tuple[bytes, bytes, dict]]) -> int:
    """One transaction of ``load_items``: the keys were computed before it,
    so writers wait only for the puts."""
    if chunk:
        with ctx.engine.write() as txn:
            load = BulkLoad(txn, table)
            for skey, raw, item in chunk:
                load.put(skey, raw, item)
            load.finish(round(ctx.now(), 3))
    return len(chunk)


def _beating(engine, job: dict, items, stop):
    """``items``, while keeping the restore job's record alive (its heartbeat)
    and ending it (``jobs.Stopped``) when the server stops."""
    last = time.monotonic()
    for n, item in enumerate(items):
        if n % 1000 == 0:
            if stop.is_set():
                raise jobs.Stopped()
            if time.monotonic() - last >= jobs.HEARTBEAT_S:
                jobs.update_record(engine, _RESTORE_JOB, job["region"], job["arn"])
                last = time.monotonic()
        yield item


def recover_interrupted(engine, catalog) -> None:
    """Run at a worker's start: drop the backups a stopped process left
    CREATING, and delete the tables of restores it left half-made (a backup
    or a restore that cannot finish fails, as in DynamoDB)."""
    with engine.read() as txn:
        creating = [orjson.loads(raw) for _, raw in txn.scan("meta", _RECORD_PREFIX, successor(_RECORD_PREFIX))]
    for record in creating:
        if record["status"] == "CREATING" and not jobs.runner_alive(record):
            region = record["arn"].split(":")[3]
            drop_backup(types.SimpleNamespace(engine=engine, region=region), record)
    _recover_restores(engine, catalog)


def _recover_restores(engine, catalog) -> None:
    with engine.read() as txn:
        stale = [orjson.loads(raw) for _, raw in txn.scan("meta", _RESTORE_JOB, successor(_RESTORE_JOB))]
    for job in stale:
        if jobs.runner_alive(job):
            continue
        ctx = types.SimpleNamespace(engine=engine, catalog=catalog, region=job["region"], account=job["account"],
                                    now=time.time)
        _discard(ctx, job["name"], job["table_id"])
        with engine.write() as txn:
            txn.delete("meta", jobs.record_key(_RESTORE_JOB, job["region"], job["arn"]))


def _verify(txn, record: dict, prefix: bytes, stop: bytes | None) -> None:
    """Refuse a backup whose stored items are not those it was made with (a
    system backup, which has no checksum: not as many)."""
    digest = hashlib.sha256()
    count = 0
    for _, raw in txn.scan("items", prefix, stop):
        _digest_add(digest, raw)
        count += 1
    if count != record["items"] or (record["sha256"] is not None and digest.hexdigest() != record["sha256"]):
        raise InternalServerError(
            f"Backup {record['arn']} is damaged: its stored items do not match the checksum taken "
            "when it was made. Nothing was restored.")


def restore_request(source: dict, name: str, request: dict) -> dict:
    """The CreateTable request of a restore: the source table's schema,
    billing and indexes, with RestoreTableFromBackup's overrides applied."""
    create = create_request(source, name)
    create["AttributeDefinitions"] = list(source["AttributeDefinitions"])  # refiltered below
    if request.get("BillingModeOverride") is not None:
        create["BillingMode"] = request["BillingModeOverride"]
    if request.get("ProvisionedThroughputOverride") is not None:
        create["ProvisionedThroughput"] = request["ProvisionedThroughputOverride"]
    for member, override_member in (("GlobalSecondaryIndexes", "GlobalSecondaryIndexOverride"),
                                    ("LocalSecondaryIndexes", "LocalSecondaryIndexOverride"),
                                    ("VectorIndexes", "VectorIndexOverride")):
        override = request.get(override_member)
        if override is not None:
            create[member] = [dict(spec) for spec in override]
        if not create.get(member):
            create.pop(member, None)
    if create["BillingMode"] == "PAY_PER_REQUEST":
        create.pop("ProvisionedThroughput", None)
        for spec in create.get("GlobalSecondaryIndexes", ()):
            spec.pop("ProvisionedThroughput", None)
    elif create.get("ProvisionedThroughput") is not None:
        for spec in create.get("GlobalSecondaryIndexes", ()):
            spec.setdefault("ProvisionedThroughput", dict(create["ProvisionedThroughput"]))
    if request.get("SSESpecificationOverride") is not None:
        create["SSESpecification"] = request["SSESpecificationOverride"]
    if request.get("OnDemandThroughputOverride") is not None:
        create["OnDemandThroughput"] = request["OnDemandThroughputOverride"]
    return keep_needed_definitions(create)


def _finish_restore(ctx, name: str, table_id: str, summary: dict) -> None:
    """Make the restored table ACTIVE, with its final RestoreSummary."""

    def finish(desc: dict) -> None:
        desc["TableStatus"] = "ACTIVE"
        desc["RestoreSummary"] = summary

    with ctx.engine.write() as txn:
        table = update_description(txn, ctx.region, name, table_id, finish, ctx.catalog.keys)
        if table is None:
            raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
        record_table_change(txn, table, "RestoreTable",
                            {"RestoreSummary": summary, "TableDescription": table.description}, round(ctx.now(), 3))


def _discard(ctx, name: str, table_id: str) -> None:
    """Delete the table a failed restore made (if it is still that table)."""
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
    if table is not None and table.table_id == table_id:
        tables.delete_table(ctx, {"TableName": name})


OPERATIONS = {
    "CreateBackup": create_backup,
    "DescribeBackup": describe_backup,
    "ListBackups": list_backups,
    "DeleteBackup": delete_backup,
    "RestoreTableFromBackup": restore_table_from_backup,
}
