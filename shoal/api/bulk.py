"""Bulk put items: StartBulkPutItems, DescribeBulkOperation,
ListBulkOperations and CancelBulkOperation.

StartBulkPutItems loads the objects of an S3 bucket (the folder mapping of
``shoal.api.exports``: bucket B, key K is the file ``--s3-dir``/B/K) into an
EXISTING table, and answers IN_PROGRESS at once; a thread of its own
(``jobs.start_job``) reads every object whose key starts with S3KeyPrefix, in
key order, decompressed and parsed by the import's readers
(``shoal.api.imports``: DYNAMODB_JSON lines ``{"Item": {...}}``, ION lines
``$ion_1_0 {Item:{...}}``), checks each item as PutItem checks one, and
writes it through the write path (``writepath.WriteLog``: index entries,
counters, one change record per item, so streams see the puts); contributor
insights count each put as an access of its key and of the GSI keys it
changes, as a PutItem's (they spend the table's write units; DynamoDB does
not document it either way).

A DYNAMODB_JSON line may carry a condition for its item, in PutItem's
members: ``{"Item": ..., "ConditionExpression": ..., "ExpressionAttributeNames":
..., "ExpressionAttributeValues": ...}``; an item whose condition is false is
not written and is counted as processed, not failed (BulkOperationStatus
stays COMPLETED).  The Developer Guide describes per-item conditions, but
the page's format section could not be read when this was written: the
member names are PutItem's (see docs/bulk-put.md).

Progress is committed chunk by chunk: one write transaction puts the
chunk's items and stores the operation's record with its counts and its
position in the input (object key and lines consumed).  So the record always
matches the table, and the job resumes exactly where its last chunk ended
after a restart or a crash: any bulk operation request finds records whose
process is gone (``jobs.runner_alive``) and runs them again
(``resume_interrupted``).  Cancellation is a record change too
(CANCELLING), seen by the job at its next chunk, which then stores
CANCELLED instead of writing; so any worker may cancel any operation.

MaxWriteRequestUnits paces the writes (``Pacer``): after each chunk the job
waits until the write units it spent (table and indexes) fit the rate.

OutputS3Configuration: with an S3Bucket, the items that fail (OutputType
ERROR) and those whose condition is false (CONDITION_CHECK_FAILURE) are
reported as JSON lines, one file per chunk written before the chunk
commits (a chunk done again after a crash rewrites the same file), under
``<S3KeyPrefix>/<operation id>/``; a ``manifest.json`` there lists them at
the end.  The layout is Shoal's own (docs/bulk-put.md).

Records are ``meta``: ``bulk/<region>\\0<id>`` (id ``<ms>-<8 hex>``, so that
a reverse scan is newest first) and ``bulk-token/<region>\\0<ClientToken>``.
The ARN is ``<table arn>/bulk-operation/<id>``, after the import ARN's form
(no documented form was found).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time

import orjson

from shoal.api import insights as contributor_insights
from shoal.api.common import expression_context, item_write_units, storage_key, successor
from shoal.api.exports import S3Error, bucket_path, keep_token, new_arn, page_after, page_token, put_object, token_owner
from shoal.api.imports import ItemError, _checked, _ion_item, _line_items, _objects, _open, _read_errors, json_document
from shoal.api.indexes import entry_key
from shoal.api.items import parse_write_condition
from shoal.api.jobs import HEARTBEAT_S, Stopped, job_context, runner, runner_alive, start_job
from shoal.api.transactions import TOKEN_MISMATCH, IdempotentParameterMismatchException
from shoal.api.writepath import WriteLog, stored_item, stored_size
from shoal.errors import (
    LimitExceededException,
    ResourceInUseException,
    ResourceNotFoundException,
    ShoalError,
    ValidationException,
)
from shoal.model.size import item_size

log = logging.getLogger("shoal")

RECORD = b"bulk/"
_TOKEN = b"bulk-token/"
#: Input lines handled per chunk: one write transaction, one record update,
#: the unit of cancellation and of resumption.
CHUNK_LINES = 500
#: Operations IN_PROGRESS or CANCELLING at once, per table and per account
#: and region.  The Developer Guide sets quotas on both ("Quotas for bulk put
#: items"); their values could not be read, so these are Shoal's.
MAX_ACTIVE_PER_TABLE = 1
MAX_ACTIVE = 10
#: ListBulkOperations' page when MaxResults is not given (the API reference's 10).
DEFAULT_PAGE = 10
ACTIVE = ("IN_PROGRESS", "CANCELLING")
#: Error report lines kept in memory per chunk (all errors are counted).
MAX_REPORTED_PER_CHUNK = CHUNK_LINES


# ---------------------------------------------------------------- records


def _record_key(region: str, operation_id: str) -> bytes:
    return RECORD + region.encode() + b"\0" + operation_id.encode()


def _operation_id(arn: str) -> str | None:
    """The id in a bulk operation ARN, or None if it is not one."""
    head, marker, operation_id = arn.rpartition("/bulk-operation/")
    if not marker or not head.startswith("arn:") or not operation_id or "/" in operation_id:
        return None
    return operation_id


def _read(txn, region: str, arn: str) -> dict | None:
    operation_id = _operation_id(arn)
    if operation_id is None:
        return None
    raw = txn.get("meta", _record_key(region, operation_id))
    record = orjson.loads(raw) if raw is not None else None
    return record if record is not None and record["arn"] == arn else None


def _store(txn, record: dict) -> None:
    record["beat"] = round(time.time(), 3)
    txn.put("meta", _record_key(record["region"], record["id"]), orjson.dumps(record))


def _region_records(txn, region: str):
    """The bulk operations of ``region``, newest first."""
    first = RECORD + region.encode() + b"\0"
    for _, raw in txn.scan("meta", first, successor(first), reverse=True):
        yield orjson.loads(raw)


def _not_found(arn: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Requested resource not found: Bulk operation: {arn} not found")


def _require(ctx, arn: str) -> dict:
    with ctx.engine.read() as txn:
        record = _read(txn, ctx.region, arn)
    if record is None:
        raise _not_found(arn)
    return record


# ---------------------------------------------------------------- descriptions


def _description(record: dict) -> dict:
    """BulkOperationDescription."""
    status = record["status"]
    out = {
        "BulkOperationArn": record["arn"], "BulkOperationStatus": status,
        "TableDetails": [{"TableName": record["table_name"], "TableId": record["table_id"]}],
    }
    if record["token"] is not None:
        out["ClientToken"] = record["token"]
    out.update(InputS3Configuration=record["input"], OutputS3Configuration=record["output"],
               StartTime=record["start"])
    if status not in ACTIVE and record.get("end") is not None:
        out["EndTime"] = record["end"]
    out["ProcessedItemCount"] = record["processed"]
    out["ProcessedInputBytes"] = record["processed_bytes"]
    if record.get("total_bytes") is not None:
        out["TotalInputBytes"] = record["total_bytes"]
    out["BulkOperationUsage"] = [_usage(record)]
    out["FailedItemCount"] = record["failed"]
    if status in ("FAILED", "CANCELLED") and record.get("failure_code"):
        out["FailureCode"] = record["failure_code"]
        out["FailureMessage"] = record["failure_message"]
    if record.get("max_units") is not None:
        out["MaxWriteRequestUnits"] = record["max_units"]
    out["PerformanceTier"] = record["tier"]
    return out


def _usage(record: dict) -> dict:
    """BulkOperationUsage of the table: the bytes the operation put into the
    table (item sizes) and into each index (its entries' sizes)."""
    usage = record["usage"]
    out = {"TableName": record["table_name"], "BulkPutBytes": usage["table"] + sum(usage["indexes"].values()),
           "Table": {"BulkPutBytes": usage["table"]}}
    for member, local in (("LocalSecondaryIndexes", True), ("GlobalSecondaryIndexes", False)):
        names = {name: {"BulkPutBytes": value} for name, value in usage["indexes"].items()
                 if usage["local"].get(name, False) == local}
        if names:
            out[member] = names
    return out


# ---------------------------------------------------------------- StartBulkPutItems


def start_bulk_put_items(ctx, request: dict) -> dict:
    resume_interrupted(ctx)
    now = ctx.now()
    token = request.get("ClientToken")
    given = {name: value for name, value in request.items() if name != "ClientToken"}
    name = request["TableName"]
    with ctx.engine.write() as txn:
        if token is not None:
            owner = token_owner(txn, _TOKEN, ctx.region, token, now)
            existing = _read(txn, ctx.region, owner) if owner is not None else None
            if existing is not None:
                if existing["given"] != given:
                    raise IdempotentParameterMismatchException(TOKEN_MISMATCH)
                return {"BulkOperationDescription": _description(existing)}
        table = ctx.catalog.get(txn, ctx.region, name)
        if table is None:
            raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
        _check_table(table, name)
        _check_limits(txn, ctx.region, table)
        arn = new_arn(table.arn, "bulk-operation", now)
        record = _new_record(ctx, request, given, table, arn, token, now)
        if token is not None:
            keep_token(txn, _TOKEN, ctx.region, token, arn, now)
        _store(txn, record)
    start_job(_job_context(ctx, record), arn, _run)
    return {"BulkOperationDescription": _description(record)}


def _check_table(table, name: str) -> None:
    """The table must be ACTIVE, or UPDATING with no index being created,
    and not a global table (the Developer Guide's "Table state requirements")."""
    status = table.description.get("TableStatus")
    if status not in ("ACTIVE", "UPDATING"):
        raise ResourceInUseException(
            f"Attempt to change a resource which is still in use: Table is being {_being(status)}: {name}")
    indexes = (*(table.description.get("GlobalSecondaryIndexes") or ()),)
    if any(index.get("IndexStatus") == "CREATING" for index in indexes):
        raise ResourceInUseException("Attempt to change a resource which is still in use: "
                                     "Cannot start a bulk put items operation while an index is being created.")
    if table.description.get("Replicas") or table.description.get("GlobalTableVersion"):
        raise ValidationException(f"Bulk put items does not support global tables: {name} is a replica")


def _being(status: str | None) -> str:
    return {"CREATING": "created", "DELETING": "deleted", "ARCHIVING": "archived"}.get(status or "", "updated")


def _check_limits(txn, region: str, table) -> None:
    active = [record for record in _region_records(txn, region) if record["status"] in ACTIVE]
    if sum(1 for record in active if record["table_id"] == table.table_id) >= MAX_ACTIVE_PER_TABLE:
        raise LimitExceededException(
            f"Subscriber limit exceeded: Only {MAX_ACTIVE_PER_TABLE} bulk operation can be in progress "
            "simultaneously per table")
    if len(active) >= MAX_ACTIVE:
        raise LimitExceededException(
            f"Subscriber limit exceeded: Only {MAX_ACTIVE} bulk operations can be in progress simultaneously "
            "per account")


def _new_record(ctx, request: dict, given: dict, table, arn: str, token: str | None, now: float) -> dict:
    source = dict(request["InputS3Configuration"])
    source.setdefault("InputCompressionType", "NONE")  # as DynamoDB shows an omitted one
    return {
        "kind": "bulk operation", "arn": arn, "id": arn.rsplit("/", 1)[1], "region": ctx.region,
        "account": ctx.account, "table_name": table.name, "table_id": table.table_id, "given": given,
        "token": token,
        "status": "IN_PROGRESS", "start": round(now, 3), "end": None,
        "input": source, "output": request["OutputS3Configuration"],
        "max_units": request.get("MaxWriteRequestUnits"), "tier": request.get("PerformanceTier") or "STANDARD",
        "processed": 0, "failed": 0, "conditions_failed": 0, "processed_bytes": 0, "total_bytes": None,
        "usage": {"table": 0, "indexes": {}, "local": {}},
        "position": {"key": None, "lines": 0}, "chunk": 0, "reports": [],
        "runner": runner(), "beat": round(time.time(), 3),
    }


def _job_context(ctx, record: dict):
    """The context a job runs in: the catalog itself, the record's region
    and account, and no request meter (the request is long answered)."""
    return dataclasses.replace(job_context(ctx), region=record["region"], account=record["account"], meter=None)


# ---------------------------------------------------------------- Describe, List, Cancel


def describe_bulk_operation(ctx, request: dict) -> dict:
    resume_interrupted(ctx)
    return {"BulkOperationDescription": _description(_require(ctx, request["BulkOperationArn"]))}


def list_bulk_operations(ctx, request: dict) -> dict:
    """The region's bulk operations, newest first, MaxResults (10) a page."""
    resume_interrupted(ctx)
    limit = request.get("MaxResults") or DEFAULT_PAGE
    after = page_after(request["NextToken"], "ListBulkOperations") if request.get("NextToken") else None
    summaries, last = [], None
    with ctx.engine.read() as txn:
        for record in _region_records(txn, ctx.region):
            if after is not None and record["id"] >= after:
                continue
            if len(summaries) == limit:
                last = summaries[-1]["id"]
                break
            summaries.append(record)
    out: dict = {"BulkOperationsSummaryList": [_summary(record) for record in summaries]}
    if last is not None:
        out["NextToken"] = page_token(last)
    return out


def _summary(record: dict) -> dict:
    summary = {"BulkOperationArn": record["arn"], "BulkOperationStatus": record["status"],
               "StartTime": record["start"]}
    if record["status"] not in ACTIVE and record.get("end") is not None:
        summary["EndTime"] = record["end"]
    return summary


def cancel_bulk_operation(ctx, request: dict) -> dict:
    """Mark the operation CANCELLING; its job stops at its next chunk."""
    resume_interrupted(ctx)
    arn = request["BulkOperationArn"]
    with ctx.engine.write() as txn:
        record = _read(txn, ctx.region, arn)
        if record is None:
            raise _not_found(arn)
        if record["status"] not in ACTIVE:
            raise ValidationException(
                f"Bulk operation {arn} cannot be cancelled: its status is {record['status']}")
        if record["status"] == "IN_PROGRESS":
            record["status"] = "CANCELLING"
            txn.put("meta", _record_key(record["region"], record["id"]), orjson.dumps(record))
    return {"BulkOperationArn": arn, "BulkOperationStatus": "CANCELLING"}


# ---------------------------------------------------------------- restarts


def resume_interrupted(ctx) -> list[str]:
    """Run again the operations a stopped process left IN_PROGRESS (from
    the position of their last chunk), and store CANCELLED those it left
    CANCELLING; the ARNs resumed.  Each record is claimed in a write
    transaction, so one worker resumes it."""
    with ctx.engine.read() as txn:
        first = RECORD
        orphans = [orjson.loads(raw) for _, raw in txn.scan("meta", first, successor(first))]
    orphans = [record for record in orphans if _orphaned(record)]
    resumed = []
    for stale in orphans:
        with ctx.engine.write() as txn:
            record = _read(txn, stale["region"], stale["arn"])
            if record is None or not _orphaned(record):
                continue  # another worker claimed it meanwhile
            if record["status"] == "CANCELLING":
                record.update(status="CANCELLED", end=round(ctx.now(), 3))
            else:
                record["runner"] = runner()
            _store(txn, record)
        if record["status"] == "IN_PROGRESS":
            log.info("bulk operation %s: resumed after a restart", record["arn"])
            start_job(_job_context(ctx, record), record["arn"], _run)
            resumed.append(record["arn"])
    return resumed


def _orphaned(record: dict) -> bool:
    """Whether an active operation's process is gone.  One of this process
    is never: it is about to start, or this server is stopping."""
    if record["status"] not in ACTIVE:
        return False
    named = record.get("runner") or {}
    if named.get("pid") == os.getpid() and named.get("token") == runner()["token"]:
        return False
    return not runner_alive(record)


# ---------------------------------------------------------------- the job


class _Ended(Exception):
    """The operation reached a terminal status (stored) before its input ended."""


class _TableGone(Exception):
    """The operation's table was deleted while it ran."""


class Pacer:
    """Keeps a job's write units at or under ``rate`` a second: ``spent(units)``
    says how long to wait after spending them.  Time left unused (a slow
    chunk) is credited for one second at most, so a burst after a slow spell
    stays within one second's units."""

    CREDIT_S = 1.0

    def __init__(self, rate: float | None, clock=time.monotonic) -> None:
        self.rate, self.clock = rate, clock
        self.free_at = clock()  # when the units spent so far are paid for

    def spent(self, units: float) -> float:
        if not self.rate:
            return 0.0
        now = self.clock()
        self.free_at = max(self.free_at, now - self.CREDIT_S) + units / self.rate
        return max(0.0, self.free_at - now)


@dataclasses.dataclass
class _Line:
    """One input line: where it came from and what it holds (an item checked
    and ready to write, or the error it makes)."""

    key: str
    index: int
    item: dict | None = None
    keys: dict | None = None
    size: int = 0
    condition: object = None
    error: str | None = None
    #: The object cannot be read past this line (its error): it is done.
    last_of_object: bool = False


class _Chunk:
    """The lines read since the last commit, and where the input stands after them."""

    def __init__(self) -> None:
        self.lines: list[_Line] = []
        self.position: dict | None = None
        self.bytes = 0
        self.units = 0.0  # the write units its items will take at least


def _run(ctx, arn: str, stop: threading.Event) -> None:
    with ctx.engine.read() as txn:
        record = _read(txn, ctx.region, arn)
        table = ctx.catalog.get(txn, ctx.region, record["table_name"]) if record is not None else None
    if record is None or record["status"] not in ACTIVE:
        return
    try:
        if table is None or table.table_id != record["table_id"]:
            raise _TableGone()
        _load(ctx, record, table, stop)
    except (Stopped, _Ended):
        return
    except S3Error as exc:
        _finish(ctx, arn, "FAILED", exc.code, exc.message)
    except _TableGone:
        _finish(ctx, arn, "FAILED", "ResourceNotFoundException",
                f"Table {record['table_name']} was deleted during the bulk operation")
    except Exception as exc:  # a bug: reported, and the operation fails rather than hangs
        log.error("bulk operation %s failed", arn, exc_info=True)
        _finish(ctx, arn, "FAILED", "InternalServerError", str(exc))


def _load(ctx, record: dict, table, stop: threading.Event) -> None:
    source = record["input"]
    bucket_dir = bucket_path(ctx, source["S3Bucket"])
    output = record["output"]
    if output.get("S3Bucket"):
        bucket_path(ctx, output["S3Bucket"])  # a missing one fails the operation now, as the input's does
    objects = _objects(bucket_dir, source.get("S3KeyPrefix") or "")
    sizes = [os.path.getsize(path) for _, path in objects]
    total = sum(sizes)
    with ctx.engine.write() as txn:  # TotalInputBytes, shown from now on
        current = _read(txn, record["region"], record["arn"])
        if current is not None and current["total_bytes"] != total:
            current["total_bytes"] = total
            _store(txn, current)
    rate = record.get("max_units")
    pacer = Pacer(rate)
    chunk = _Chunk()
    position = record["position"]
    before = 0  # bytes of the objects before the one being read
    for (key, path), size in zip(objects, sizes):
        if position["key"] is not None and (key < position["key"] or key == position["key"]
                                            and position["lines"] < 0):
            before += size
            continue
        skip = position["lines"] if key == position["key"] else 0
        for line, offset in _lines(record, table, key, path, skip):
            chunk.lines.append(line)
            chunk.position = {"key": key, "lines": -1 if line.last_of_object else line.index + 1}
            chunk.bytes = before + min(offset, size)
            chunk.units += -(-line.size // 1024) if line.error is None else 0
            if len(chunk.lines) >= CHUNK_LINES or rate and chunk.units >= rate:
                _commit(ctx, record, chunk, total, pacer, stop)
                chunk = _Chunk()
        before += size
        if chunk.position is not None and chunk.position["key"] == key:
            chunk.bytes = before
    _commit(ctx, record, chunk, total, pacer, stop, last=True)


def _lines(record: dict, table, key: str, path: str, skip: int):
    """(line, compressed bytes read so far) for each line of object ``key``
    after the first ``skip``; an object that cannot be read further ends
    with a line holding that error."""
    compression = record["input"]["InputCompressionType"]
    stream, _, raw = _open(path, compression)
    parse = _ion_item if record["input"]["InputFormat"] == "ION" else _json_line
    index = -1
    try:
        for index, parsed in enumerate(_line_items(stream, parse)):
            if index >= skip:
                yield _parsed_line(table, key, index, parsed), raw.tell()
    except _read_errors(compression) as exc:  # the object itself is malformed: the rest of it is skipped
        yield _Line(key, index + 1, error=f"The object cannot be read: {exc}", last_of_object=True), raw.tell()
    finally:
        raw.close()


def _json_line(line: bytes):
    """A DYNAMODB_JSON line: its item, with its condition members if any."""
    document, item = json_document(line)
    conditions = {name: document[name] for name in _CONDITION_MEMBERS if name in document}
    return (item, conditions) if conditions else item


_CONDITION_MEMBERS = ("ConditionExpression", "ExpressionAttributeNames", "ExpressionAttributeValues")


def _parsed_line(table, key: str, index: int, parsed) -> _Line:
    """The line checked as PutItem checks its item and condition (outside
    any transaction: writers wait only for the writes)."""
    if isinstance(parsed, ItemError):
        return _Line(key, index, error=str(parsed))
    item, conditions = parsed if isinstance(parsed, tuple) else (parsed, None)
    line = _Line(key, index, item=item)
    try:
        line.item, line.keys, line.size = _checked(table, item)
        if conditions:
            exprs = expression_context(conditions, ("ConditionExpression",), (), current=True)
            line.condition = parse_write_condition(conditions, exprs)
            if exprs is not None:
                exprs.check_unused()
    except ShoalError as exc:
        line.error = exc.message
    except Exception as exc:  # noqa: BLE001 - whatever the item's fault, it is one error
        line.error = str(exc)
    return line


def _commit(ctx, record: dict, chunk: _Chunk, total: int, pacer: Pacer, stop: threading.Event,
            last: bool = False) -> None:
    """Write a chunk's items and store the record's progress, in one
    transaction; then wait as MaxWriteRequestUnits asks.  With ``last`` the
    record ends COMPLETED (or COMPLETED_WITH_ERRORS).  A record found
    CANCELLING ends CANCELLED instead, the chunk unwritten."""
    if stop.is_set():
        raise Stopped()
    region = record["region"]
    units, outcome = 0.0, None
    with ctx.engine.write() as txn:  # what it stores is decided inside; exceptions wait (they would abort it)
        current = _read(txn, region, record["arn"])
        table = ctx.catalog.get(txn, region, current["table_name"]) if current is not None else None
        if current is None or current["status"] not in ACTIVE:
            outcome = _Ended
        elif current["status"] == "CANCELLING":
            current.update(status="CANCELLED", end=round(ctx.now(), 3))
            _store(txn, current)
            outcome = _Ended
        elif table is None or table.table_id != current["table_id"]:
            outcome = _TableGone
        else:
            units, reports = _write_lines(ctx, txn, table, current, chunk)
            current["chunk"] += 1
            _write_reports(ctx, current, reports)
            if chunk.position is not None:
                current["position"] = chunk.position
                current["processed_bytes"] = chunk.bytes
            current["total_bytes"] = total
            if last:
                current["processed_bytes"] = total
                current["status"] = "COMPLETED_WITH_ERRORS" if current["failed"] else "COMPLETED"
                current["end"] = round(ctx.now(), 3)
                _write_manifest(ctx, current)
            _store(txn, current)
    if outcome is not None:
        raise outcome()
    _pause(ctx, record, pacer.spent(units), stop)


def _pause(ctx, record: dict, seconds: float, stop: threading.Event) -> None:
    """Wait ``seconds`` (the pace), renewing the record's heartbeat so that
    no worker takes the job for an interrupted one."""
    while seconds > 0:
        step = min(seconds, HEARTBEAT_S)
        if stop.wait(step):
            raise Stopped()
        seconds -= step
        if seconds > 0:
            with ctx.engine.write() as txn:
                current = _read(txn, record["region"], record["arn"])
                if current is not None:
                    _store(txn, current)


def _write_lines(ctx, txn, table, record: dict, chunk: _Chunk) -> tuple[float, dict]:
    """Put the chunk's good items (those whose condition holds) and count
    every line into ``record``; the write units spent and the report lines."""
    now = ctx.now()
    writes = WriteLog(txn)
    units = 0.0
    reports: dict[str, list] = {"ERROR": [], "CONDITION_CHECK_FAILURE": []}
    for line in chunk.lines:
        record["processed"] += 1
        if line.error is None:
            skey = storage_key(table, line.keys)
            old_raw = txn.get("items", skey)
            old = stored_item(old_raw) if old_raw is not None and line.condition is not None else None
            if line.condition is not None and not line.condition.evaluate(old):
                record["conditions_failed"] += 1
                report = {"InputS3Key": line.key, "ItemIndex": line.index, "Item": line.item}
                if old is not None:
                    report["ExistingItem"] = old
                reports["CONDITION_CHECK_FAILURE"].append(report)
                continue
            index_units = {} if table.indexes else None
            try:  # index keys are checked before anything is written (the table may have a new index)
                writes.write_item(table, skey, line.keys, old_raw, line.item, line.size, now=now,
                                  index_units=index_units)
            except ShoalError as exc:
                line.error = exc.message
            else:
                if table.table_id in contributor_insights.counting_tables:  # an access of its keys
                    contributor_insights.count_applied_write(table, line.keys, old_raw, line.item)
                units += item_write_units(stored_size(old_raw) if old_raw is not None else 0, line.size)
                units += sum(sum(by_name.values()) for by_name in (index_units or {}).values())
                _add_usage(record["usage"], table, line)
                continue
        record["failed"] += 1
        reports["ERROR"].append(_error_line(record, line))
    writes.finish()
    return units, reports


def _add_usage(usage: dict, table, line: _Line) -> None:
    """Count an item's bytes into the table's and into each index that holds it."""
    usage["table"] += line.size
    for index in table.indexes:
        if entry_key(table, index, line.item, b"", False) is None:
            continue  # not in this (sparse) index
        if index.projected is None:
            size = line.size
        else:
            size = item_size({name: value for name, value in line.item.items() if name in index.projected})
        usage["indexes"][index.name] = usage["indexes"].get(index.name, 0) + size
        usage["local"][index.name] = index.local


def _error_line(record: dict, line: _Line) -> dict:
    report = {"InputS3Bucket": record["input"]["S3Bucket"], "InputS3Key": line.key, "ItemIndex": line.index,
              "ErrorMessage": line.error}
    if line.item is not None:
        report["Item"] = line.item
    return report


def _report_base(record: dict) -> str:
    prefix = record["output"].get("S3KeyPrefix") or ""
    return (prefix.rstrip("/") + "/" if prefix else "") + record["id"]


def _write_reports(ctx, record: dict, reports: dict) -> None:
    """One file per chunk and report type asked for, named by the chunk's
    number (a chunk done again rewrites it)."""
    output = record["output"]
    if not output.get("S3Bucket"):
        return
    for kind in output.get("OutputType") or ():
        lines = reports.get(kind)
        if not lines:
            continue
        key = f"{_report_base(record)}/{kind.lower().replace('_', '-')}/{record['chunk']:08d}.json"
        put_object(bucket_path(ctx, output["S3Bucket"]), key, b"".join(orjson.dumps(line) + b"\n" for line in lines))
        if key not in record["reports"]:
            record["reports"].append(key)


def _write_manifest(ctx, record: dict) -> None:
    output = record["output"]
    if not output.get("S3Bucket"):
        return
    manifest = {
        "bulkOperationArn": record["arn"], "tableArn": record["arn"].rsplit("/bulk-operation/", 1)[0],
        "status": record["status"], "processedItemCount": record["processed"],
        "failedItemCount": record["failed"], "conditionCheckFailedItemCount": record["conditions_failed"],
        "outputFiles": record["reports"],
    }
    put_object(bucket_path(ctx, output["S3Bucket"]), f"{_report_base(record)}/manifest.json",
               orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def _finish(ctx, arn: str, status: str, code: str | None = None, message: str | None = None) -> None:
    with ctx.engine.write() as txn:
        record = _read(txn, ctx.region, arn)
        if record is None or record["status"] not in ACTIVE:
            return
        if record["status"] == "CANCELLING":
            status, code, message = "CANCELLED", None, None
        record.update(status=status, end=round(ctx.now(), 3), failure_code=code, failure_message=message)
        _store(txn, record)


OPERATIONS = {
    "StartBulkPutItems": start_bulk_put_items,
    "DescribeBulkOperation": describe_bulk_operation,
    "ListBulkOperations": list_bulk_operations,
    "CancelBulkOperation": cancel_bulk_operation,
}
