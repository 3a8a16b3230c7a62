"""Export to S3: ExportTableToPointInTime, DescribeExport and ListExports,
and what exports and imports (``shoal.api.imports``) share: the S3 folder,
the background jobs and their records.

Where the files go.  ``shoal serve --s3-dir DIR`` (``Context.s3_dir``) maps
bucket B and key K to the file DIR/B/K; a bucket is a directory that exists
under DIR.  An export to a bucket that is not there fails as DynamoDB's does
(FailureCode ``S3NoSuchBucket``); a key with a ``.`` or ``..`` segment, which
would name a file outside its bucket, fails as access denied.

What is written is DynamoDB's layout, so that tools made for DynamoDB's
exports read Shoal's::

    <S3Prefix>/AWSDynamoDB/<export id>/_started                 empty, written first
    <S3Prefix>/AWSDynamoDB/<export id>/data/<random>.json.gz     full export: the items
    <S3Prefix>/AWSDynamoDB/data/<random>.json.gz                 incremental export: the changes
    <S3Prefix>/AWSDynamoDB/<export id>/manifest-files.json       JSON lines: itemCount, md5Checksum,
                                                                 etag, dataFileS3Key per data file
    <S3Prefix>/AWSDynamoDB/<export id>/manifest-files.md5        base64 MD5 of manifest-files.json
    <S3Prefix>/AWSDynamoDB/<export id>/manifest-summary.json     the export, its counts and keys
    <S3Prefix>/AWSDynamoDB/<export id>/manifest-summary.md5

A data file is gzip of one line per item: ``{"Item":{...}}`` (DYNAMODB_JSON)
or ``$ion_1_0 {Item:{...}}`` (ION text, written here: sets are lists annotated
``$dynamodb_SS``/``NS``/``BS``, numbers Ion decimals, binaries blobs).  An
incremental export writes, per item changed in its window, one line with
``Metadata.WriteTimestampMicros``, ``Keys`` and the images its view asks for
(``OldImage`` as the item was at the start of the window, ``NewImage`` as it
was at the end; an item created and deleted inside the window is left out).
``md5Checksum`` is the base64 MD5 of the file's bytes and ``etag`` the S3
ETag of a one-part upload of them.

The table as of the export time is point-in-time recovery's
(``pitr.items_at`` at ``changelog.position_at``, here in stored form:
``pitr.stored_items_at``), read in one read transaction; the changes of an incremental export are the change log's
records between the positions of ExportFromTime (inclusive) and ExportToTime
(exclusive).  Point-in-time recovery must be on, as in DynamoDB.

The export is asynchronous as in DynamoDB: the request stores the export's
record (``meta``: ``export/<region>\\0<arn>``) IN_PROGRESS and starts a
thread that writes the files, then the record COMPLETED (or FAILED, with
DynamoDB's FailureCode and FailureMessage).  A record names the process
running it; one left IN_PROGRESS by a process that stopped (a server
restart, a crash) is shown FAILED, and stored so at the next start
(``recover_interrupted``).  ClientToken makes the request idempotent for 8
hours (``export-token/<region>\\0<token>`` names the export).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import threading
import time
import uuid
import zlib

import orjson

from shoal.api import archival, tables
from shoal.api.backups import epoch_seconds, iso_time
from shoal.api.catalog import table_arn
from shoal.api.jobs import (
    HEARTBEAT_S,
    Stopped,
    job_context,
    read_record,
    record_key,
    runner,
    runner_alive,
    start_job,
    update_record,
)
from shoal.api.changelog import decode_change, is_table_change, position_at, read_raw_changes
from shoal.api.common import storage_key, successor
from shoal.api.pitr import LATEST_LAG_S, setting, stored_items_at, window
from shoal.errors import (
    PointInTimeRecoveryUnavailableException,
    ShoalError,
    TableNotFoundException,
    ValidationException,
)
from shoal.model.size import item_size

log = logging.getLogger("shoal")


class ExportNotFoundException(ShoalError):
    type_name = "ExportNotFoundException"
    status = 400


class ExportConflictException(ShoalError):
    type_name = "ExportConflictException"
    status = 400


class InvalidExportTimeException(ShoalError):
    type_name = "InvalidExportTimeException"
    status = 400


#: How long a ClientToken names the same export or import (DynamoDB's window).
TOKEN_WINDOW_S = 8 * 3600
#: An incremental export's window, as DynamoDB bounds it.
MIN_INCREMENTAL_S = 15 * 60
MAX_INCREMENTAL_S = 24 * 3600
#: Items per data file (DynamoDB writes at least one file per partition).
FILE_ITEMS = 100_000
GZIP_LEVEL = 6
_LIST_LIMIT = 25

_RECORD = b"export/"
_TOKEN = b"export-token/"

NO_SUCH_BUCKET = ("S3NoSuchBucket", "The specified bucket does not exist (Service: Amazon S3; Status Code: 404; "
                  "Error Code: NoSuchBucket)")
ACCESS_DENIED = ("S3AccessDenied", "Access Denied (Service: Amazon S3; Status Code: 403; Error Code: AccessDenied)")
INTERRUPTED = ("InternalServerError", "The Shoal server running this {what} stopped before it finished "
                                      "(a restart or a crash). Start it again.")


# ---------------------------------------------------------------- the S3 folder


class S3Error(Exception):
    """An S3 failure of a job: its FailureCode and FailureMessage."""

    def __init__(self, failure: tuple[str, str]) -> None:
        super().__init__(failure[1])
        self.code, self.message = failure


def bucket_path(ctx, bucket: str) -> str:
    """The directory of bucket ``bucket``, or S3Error if there is none."""
    root = ctx.s3_dir
    path = os.path.join(root, bucket) if root else None
    if path is None or not os.path.isdir(path):
        raise S3Error(NO_SUCH_BUCKET)
    return path


def object_path(bucket_dir: str, key: str) -> str:
    """The file of object ``key`` in the bucket at ``bucket_dir``."""
    parts = key.split("/")
    if key.startswith("/") or any(part in (".", "..") for part in parts):
        raise S3Error(ACCESS_DENIED)
    return os.path.join(bucket_dir, *parts)


def put_object(bucket_dir: str, key: str, data: bytes) -> None:
    path = object_path(bucket_dir, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


def md5_base64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _random_name() -> str:
    return base64.b32encode(os.urandom(16)).decode().lower().rstrip("=")[:26]


class DataFile:
    """One gzip data file, written as its lines come, with its MD5."""

    def __init__(self, bucket_dir: str, key: str) -> None:
        self.key = key
        path = object_path(bucket_dir, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._file = open(path, "wb")
        self._gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self._md5 = hashlib.md5()
        self._lines: list[bytes] = []
        self.count = 0

    def add(self, line: bytes) -> None:
        self._lines.append(line)
        self.count += 1
        if len(self._lines) >= 2000:
            self._write(self._gzip.compress(b"".join(self._lines)))
            self._lines = []

    def _write(self, data: bytes) -> None:
        if data:
            self._md5.update(data)
            self._file.write(data)

    def close(self) -> dict:
        """Finish the file; its manifest-files.json entry."""
        self._write(self._gzip.compress(b"".join(self._lines)) + self._gzip.flush())
        self._lines = []
        self._file.close()
        digest = self._md5.digest()
        return {"itemCount": self.count, "md5Checksum": base64.b64encode(digest).decode(),
                "etag": hashlib.md5(digest).hexdigest() + "-1", "dataFileS3Key": self.key}

    def abandon(self) -> None:
        self._file.close()


def _export_base(prefix: str | None) -> str:
    if not prefix:
        return "AWSDynamoDB"
    return f"{prefix if prefix.endswith('/') else prefix + '/'}AWSDynamoDB"


# ---------------------------------------------------------------- Ion text


_ION_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ION_KEYWORDS = frozenset(("null", "true", "false", "nan"))


def _ion_name(name: str) -> str:
    """A field name in Ion text: an identifier as it is, anything else as a
    quoted symbol ('...', with JSON's escapes, which Ion's are a superset
    of).  Not as a "string": amazon.ion reads a string field name like "$0"
    as a symbol id (the name is lost), a quoted symbol as its text."""
    if _ION_IDENTIFIER.match(name) and name not in _ION_KEYWORDS:
        return name
    return "'" + orjson.dumps(name).decode()[1:-1].replace("'", "\\'") + "'"


def ion_decimal(text: str) -> str:
    """An N value's text as an Ion decimal (``123.``, ``1.5``, ``1.5d3``)."""
    lower = text.lower()
    if "e" in lower:
        mantissa, _, exponent = lower.partition("e")
        return f"{mantissa if '.' in mantissa else mantissa + '.'}d{exponent}"
    return text if "." in text else text + "."


def _ion_string(text: str) -> str:
    return orjson.dumps(text).decode()


def ion_value(av: dict) -> str:
    """One attribute value as Ion text, as DynamoDB's ION exports write it."""
    (kind, value), = av.items()
    if kind == "S":
        return _ion_string(value)
    if kind == "N":
        return ion_decimal(value)
    if kind == "M":
        return ion_struct(value)
    if kind == "BOOL":
        return "true" if value else "false"
    if kind == "B":
        return "{{" + value + "}}"
    if kind == "L":
        return "[" + ",".join(ion_value(member) for member in value) + "]"
    if kind == "NULL":
        return "null"
    if kind == "SS":
        return "$dynamodb_SS::[" + ",".join(_ion_string(member) for member in value) + "]"
    if kind == "NS":
        return "$dynamodb_NS::[" + ",".join(ion_decimal(member) for member in value) + "]"
    if kind == "BS":
        return "$dynamodb_BS::[" + ",".join("{{" + member + "}}" for member in value) + "]"
    raise ValueError(f"not an attribute value: {kind}")


def ion_struct(attributes: dict) -> str:
    return "{" + ",".join(f"{_ion_name(name)}:{ion_value(av)}" for name, av in attributes.items()) + "}"


def item_line(item: dict, export_format: str) -> bytes:
    """A full export's line for ``item``."""
    if export_format == "ION":
        return b"$ion_1_0 {Item:" + ion_struct(item).encode() + b"}\n"
    return b'{"Item":' + orjson.dumps(item) + b"}\n"


def change_line(keys: dict, old: dict | None, new: dict | None, micros: int, view: str,
                export_format: str) -> bytes:
    """An incremental export's line for one item changed in its window."""
    parts = [("Metadata", {"WriteTimestampMicros": {"N": str(micros)}}), ("Keys", keys)]
    if view == "NEW_AND_OLD_IMAGES" and old is not None:
        parts.append(("OldImage", old))
    if new is not None:
        parts.append(("NewImage", new))
    if export_format == "ION":
        return ("$ion_1_0 {" + ",".join(f"{name}:{ion_struct(value)}" for name, value in parts) + "}\n").encode()
    return orjson.dumps(dict(parts)) + b"\n"


def shown_status(record: dict) -> tuple[str, str | None, str | None]:
    """(status, FailureCode, FailureMessage) as described: a job whose process
    stopped before it finished is FAILED."""
    if record["status"] == "IN_PROGRESS" and not runner_alive(record):
        code, message = INTERRUPTED
        return "FAILED", code, message.format(what=record.get("kind", "export"))
    return record["status"], record.get("failure_code"), record.get("failure_message")


def token_owner(txn, prefix: bytes, region: str, token: str, now: float) -> str | None:
    """The ARN a ClientToken names, while its idempotency window lasts."""
    raw = txn.get("meta", record_key(prefix, region, token))
    if raw is None:
        return None
    entry = orjson.loads(raw)
    return entry["arn"] if now - entry["at"] < TOKEN_WINDOW_S else None


def keep_token(txn, prefix: bytes, region: str, token: str, arn: str, now: float) -> None:
    txn.put("meta", record_key(prefix, region, token), orjson.dumps({"arn": arn, "at": now}))


def new_arn(table_arn_: str, kind: str, now: float) -> str:
    return f"{table_arn_}/{kind}/{int(now * 1000):014d}-{secrets.token_hex(4)}"


def page_token(arn: str) -> str:
    """A NextToken naming the last ARN of a page: hex of 16-digit groups
    (ListImports' NextToken must be), at least 112 digits."""
    data = arn.encode()
    data += b"\0" * (-len(data) % 8)
    data += b"\0" * max(0, 56 - len(data))
    return data.hex()


def page_after(token: str, operation: str) -> str:
    try:
        return bytes.fromhex(token).rstrip(b"\0").decode()
    except ValueError:
        raise ValidationException(f"Invalid NextToken provided for {operation}") from None


def list_records(txn, prefix: bytes, region: str, under: str | None, after: str | None, limit: int):
    """Up to ``limit`` records of a region (or of one table, ARN ``under``),
    newest first within a table; and the ARN to go on after, or None."""
    first = record_key(prefix, region, under + "/" if under is not None else "")
    stop = successor(first)
    if after is not None:
        stop = min(stop, record_key(prefix, region, after)) if stop is not None else record_key(prefix, region, after)
    records = []
    for _, raw in txn.scan("meta", first, stop, reverse=True):
        if len(records) == limit:
            return records, records[-1]["arn"]
        records.append(orjson.loads(raw))
    return records, None


def recover_interrupted(engine) -> None:
    """Store FAILED the exports and imports left IN_PROGRESS by a process that
    stopped; an interrupted import's table becomes ACTIVE (with the items
    imported so far, as DynamoDB keeps them).  Run at a worker's start."""
    from shoal.api import imports  # the import side of the same records

    for prefix, kind in ((_RECORD, "export"), (imports.RECORD, "import")):
        with engine.read() as txn:
            stale = [orjson.loads(raw) for _, raw in txn.scan("meta", prefix, successor(prefix))]
        for record in stale:
            if record["status"] != "IN_PROGRESS" or runner_alive(record):
                continue
            code, message = INTERRUPTED
            record_region = record["region"]
            update_record(engine, prefix, record_region, record["arn"], status="FAILED", failure_code=code,
                          failure_message=message.format(what=kind), end=round(time.time(), 3))
            if kind == "import":
                imports.settle_table(engine, record)


# ---------------------------------------------------------------- ExportTableToPointInTime


def export_table_to_point_in_time(ctx, request: dict) -> dict:
    now = ctx.now()
    arn_text = request["TableArn"]
    export_type = request.get("ExportType")
    incremental = export_type == "INCREMENTAL_EXPORT"
    spec = request.get("IncrementalExportSpecification")
    if spec is not None and not incremental:
        raise ValidationException("IncrementalExportSpecification is only valid for ExportType INCREMENTAL_EXPORT")
    if incremental and (spec is None or spec.get("ExportFromTime") is None):
        raise ValidationException("ExportFromTime is required for ExportType INCREMENTAL_EXPORT")
    if incremental and request.get("ExportTime") is not None:
        raise ValidationException("ExportTime is not valid for ExportType INCREMENTAL_EXPORT; "
                                  "use IncrementalExportSpecification")
    given = _given_request(request)
    token = request.get("ClientToken")
    with ctx.engine.read() as txn:
        if token is not None:
            existing = _idempotent(ctx, txn, token, given, now)
            if existing is not None:
                return {"ExportDescription": _description(existing)}
        table = _source(ctx, txn, arn_text)
        current = setting(txn, table)
        if current is None:
            raise PointInTimeRecoveryUnavailableException(
                f"Point in time recovery is not enabled for table '{table.name}'")
        earliest, _latest = window(txn, current, now)
    export_time = from_time = to_time = None
    view = None
    if incremental:
        from_time = epoch_seconds(spec["ExportFromTime"])
        to_time = epoch_seconds(spec["ExportToTime"]) if spec.get("ExportToTime") is not None else _ms_floor(
            now - LATEST_LAG_S)
        view = spec.get("ExportViewType") or "NEW_AND_OLD_IMAGES"
        if to_time - from_time < MIN_INCREMENTAL_S:  # the request's own fault first
            raise InvalidExportTimeException(
                "Difference between export period from time and export period to time should be at least "
                "15 minutes")
        if to_time - from_time > MAX_INCREMENTAL_S:
            raise InvalidExportTimeException(
                "Difference between export period from time and export period to time should not exceed 24 hours")
        if not earliest <= from_time < to_time <= now:
            raise InvalidExportTimeException("Export Time is invalid")
    else:
        given_time = request.get("ExportTime")
        export_time = _ms_floor(now) if given_time is None else epoch_seconds(given_time)
        if not earliest <= export_time <= now:
            raise InvalidExportTimeException("Export Time is invalid")
    source_arn = table_arn(ctx.region, ctx.account, table.name)
    arn = new_arn(source_arn, "export", now)
    record = {
        "kind": "export", "arn": arn, "region": ctx.region, "table_arn": source_arn, "table_id": table.table_id,
        "table_name": table.name, "given": given, "token": token or str(uuid.uuid4()), "status": "IN_PROGRESS",
        "start": round(now, 3), "end": None, "format": request.get("ExportFormat") or "DYNAMODB_JSON",
        "type": export_type, "export_time": export_time, "from": from_time, "to": to_time, "view": view,
        "bucket": request["S3Bucket"], "owner": request.get("S3BucketOwner"), "prefix": request.get("S3Prefix"),
        "sse": request.get("S3SseAlgorithm"), "kms": request.get("S3SseKmsKeyId"),
        "items": None, "billed": None, "manifest": None, "runner": runner(), "beat": round(time.time(), 3),
    }
    with ctx.engine.write() as txn:
        if token is not None:
            existing = _idempotent(ctx, txn, token, given, now)  # a twin that came meanwhile
            if existing is not None:
                return {"ExportDescription": _description(existing)}
            keep_token(txn, _TOKEN, ctx.region, token, arn, now)
        txn.put("meta", record_key(_RECORD, ctx.region, arn), orjson.dumps(record))
    start_job(job_context(ctx), arn, _run_export)
    # as written: the job may have ended (and left the running set) already
    return {"ExportDescription": _description(record, just_started=True)}


def _ms_floor(seconds: float) -> float:
    return int(seconds * 1000) / 1000


def _given_request(request: dict) -> dict:
    """The request's parameters, as a retry with the same ClientToken must repeat them."""
    given = {name: value for name, value in request.items() if name != "ClientToken"}
    if "ExportTime" in given:
        given["ExportTime"] = epoch_seconds(given["ExportTime"])
    spec = given.get("IncrementalExportSpecification")
    if spec is not None:
        given["IncrementalExportSpecification"] = {
            name: epoch_seconds(value) if name in ("ExportFromTime", "ExportToTime") else value
            for name, value in spec.items()}
    return given


def _idempotent(ctx, txn, token: str, given: dict, now: float) -> dict | None:
    """The export a ClientToken already names (the same request again), or
    ExportConflictException if it named another request."""
    arn = token_owner(txn, _TOKEN, ctx.region, token, now)
    if arn is None:
        return None
    record = read_record(txn, _RECORD, ctx.region, arn)
    if record is None:
        return None
    if record["given"] != given:
        raise ExportConflictException("Export conflict: Duplicate request detected with conflicting parameters")
    return record


def _source(ctx, txn, text: str):
    """The table TableArn names, or TableNotFoundException."""
    region, account, name = tables.parse_table_arn(text)
    table = ctx.catalog.get(txn, ctx.region, name) if (region, account) == (ctx.region, ctx.account) else None
    if table is None or archival.is_archived(table.description):  # an archived table's data is gone
        raise TableNotFoundException(f"Table not found: {text}")
    return table


def _description(record: dict, just_started: bool = False) -> dict:
    """ExportDescription; ``just_started``: the record the starting request
    wrote, shown as it is (not judged by whether its job still runs)."""
    status, code, message = ((record["status"], None, None) if just_started else shown_status(record))
    out = {"ExportArn": record["arn"], "ExportStatus": status, "StartTime": record["start"]}
    if status != "IN_PROGRESS" and record.get("end") is not None:
        out["EndTime"] = record["end"]
    if status == "COMPLETED":
        out["ExportManifest"] = record["manifest"]
    out["TableArn"] = record["table_arn"]
    out["TableId"] = record["table_id"]
    if record["export_time"] is not None:
        out["ExportTime"] = record["export_time"]
    out["ClientToken"] = record["token"]
    out["S3Bucket"] = record["bucket"]
    for member, field in (("S3BucketOwner", "owner"), ("S3Prefix", "prefix"), ("S3SseAlgorithm", "sse"),
                          ("S3SseKmsKeyId", "kms")):
        if record.get(field) is not None:
            out[member] = record[field]
    if status == "FAILED":
        out["FailureCode"] = code
        out["FailureMessage"] = message
    out["ExportFormat"] = record["format"]
    if status == "COMPLETED":
        out["BilledSizeBytes"] = record["billed"]
        out["ItemCount"] = record["items"]
    if record["type"] is not None:
        out["ExportType"] = record["type"]
    if record["type"] == "INCREMENTAL_EXPORT":
        out["IncrementalExportSpecification"] = {"ExportFromTime": record["from"], "ExportToTime": record["to"],
                                                 "ExportViewType": record["view"]}
    return out


# ---------------------------------------------------------------- the export job


def _run_export(ctx, arn: str, stop: threading.Event) -> None:
    with ctx.engine.read() as txn:
        record = read_record(txn, _RECORD, ctx.region, arn)
    if record is None:
        return
    try:
        outcome = write_export(ctx, record, stop)
    except Stopped:
        return
    except S3Error as exc:
        outcome = {"status": "FAILED", "failure_code": exc.code, "failure_message": exc.message}
    except OSError as exc:
        outcome = {"status": "FAILED", "failure_code": "S3AccessDenied", "failure_message": str(exc)}
    except Exception as exc:  # a bug: reported, and the export fails rather than hangs
        log.error("export %s failed", arn, exc_info=True)
        outcome = {"status": "FAILED", "failure_code": "InternalServerError", "failure_message": str(exc)}
    update_record(ctx.engine, _RECORD, ctx.region, arn, end=round(ctx.now(), 3), **outcome)


def _wait_until(ctx, at: float, stop: threading.Event) -> None:
    """Until every write stamped at or before ``at`` has committed."""
    while ctx.now() < at + LATEST_LAG_S:
        if stop.wait(0.05):
            raise Stopped()


def write_export(ctx, record: dict, stop: threading.Event) -> dict:
    incremental = record["type"] == "INCREMENTAL_EXPORT"
    _wait_until(ctx, record["to"] if incremental else record["export_time"], stop)
    bucket_dir = bucket_path(ctx, record["bucket"])
    export_id = record["arn"].rsplit("/", 1)[1]
    base = _export_base(record["prefix"])
    root = f"{base}/{export_id}"
    put_object(bucket_dir, f"{root}/_started", b"")
    data_dir = f"{base}/data" if incremental else f"{root}/data"
    suffix = ".ion.gz" if record["format"] == "ION" else ".json.gz"
    files: list[dict] = []
    current: list[DataFile | None] = [None]
    beat = [time.monotonic()]

    def emit(line: bytes) -> None:
        data_file = current[0]
        if data_file is None or data_file.count >= FILE_ITEMS:
            if data_file is not None:
                files.append(data_file.close())
            data_file = current[0] = DataFile(bucket_dir, f"{data_dir}/{_random_name()}{suffix}")
        data_file.add(line)
        if data_file.count % 1000 == 0:
            if stop.is_set():
                data_file.abandon()
                raise Stopped()
            if time.monotonic() - beat[0] > HEARTBEAT_S:
                beat[0] = time.monotonic()
                update_record(ctx.engine, _RECORD, record["region"], record["arn"])

    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, record["region"], record["table_name"])
        if table is None or table.table_id != record["table_id"]:
            raise S3Error(("TableNotFound", f"Table not found: {record['table_arn']}"))
        if incremental:
            count, billed = _write_changes(txn, table, record, emit)
        else:
            count = billed = 0
            ion = record["format"] == "ION"
            position = position_at(txn, int(record["export_time"] * 1000))
            for item_json, size in stored_items_at(txn, table, position):
                if ion:
                    emit(b"$ion_1_0 {Item:" + ion_struct(orjson.loads(item_json)).encode() + b"}\n")
                else:
                    emit(b'{"Item":' + item_json + b"}\n")
                count += 1
                billed += size if size is not None else item_size(orjson.loads(item_json))
    if current[0] is None:  # an empty table: one empty file, as DynamoDB writes for an empty partition
        current[0] = DataFile(bucket_dir, f"{data_dir}/{_random_name()}{suffix}")
    files.append(current[0].close())
    manifest_files = b"".join(orjson.dumps(entry) + b"\n" for entry in files)
    put_object(bucket_dir, f"{root}/manifest-files.json", manifest_files)
    put_object(bucket_dir, f"{root}/manifest-files.md5", md5_base64(manifest_files).encode())
    end = round(ctx.now(), 3)
    summary = {
        "version": "2020-06-30", "exportArn": record["arn"], "startTime": iso_time(record["start"]),
        "endTime": iso_time(end), "tableArn": record["table_arn"], "tableId": record["table_id"],
    }
    if incremental:
        summary.update(exportFromTime=iso_time(record["from"]), exportToTime=iso_time(record["to"]))
    else:
        summary["exportTime"] = iso_time(record["export_time"])
    summary.update({
        "s3Bucket": record["bucket"], "s3Prefix": record["prefix"], "s3SseAlgorithm": record["sse"] or "AES256",
        "s3SseKmsKeyId": record["kms"], "manifestFilesS3Key": f"{root}/manifest-files.json",
        "billedSizeBytes": billed, "itemCount": count, "outputFormat": record["format"],
    })
    if incremental:
        summary.update(outputView=record["view"], exportType="INCREMENTAL_EXPORT")
    summary_bytes = orjson.dumps(summary)
    put_object(bucket_dir, f"{root}/manifest-summary.json", summary_bytes)
    put_object(bucket_dir, f"{root}/manifest-summary.md5", md5_base64(summary_bytes).encode())
    return {"status": "COMPLETED", "items": count, "billed": billed, "manifest": f"{root}/manifest-summary.json"}


def _write_changes(txn, table, record: dict, emit) -> tuple[int, int]:
    """Emit one line per item changed from ExportFromTime (inclusive) to
    ExportToTime (exclusive); (lines, bytes of the changes read)."""
    start = position_at(txn, int(record["from"] * 1000) - 1)
    end = position_at(txn, int(record["to"] * 1000) - 1)
    changed: dict[bytes, list] = {}  # storage key -> [keys, image before, image after, time in ms]
    billed = 0
    if start < end:
        for seq, table_id, value in read_raw_changes(txn, start):
            if seq > end:
                break
            if table_id != table.table_id:
                continue
            stamp, change = decode_change(value)
            if is_table_change(change):
                continue
            billed += len(value)
            skey = storage_key(table, change["keys"])
            entry = changed.get(skey)
            if entry is None:
                changed[skey] = [change["keys"], change["old"], change["new"], stamp]
            else:
                entry[2], entry[3] = change["new"], stamp
    count = 0
    for skey in sorted(changed):
        keys, old, new, stamp = changed[skey]
        if old is None and new is None:
            continue  # created and deleted inside the window
        emit(change_line(keys, old, new, stamp * 1000, record["view"], record["format"]))
        count += 1
    return count, billed


# ---------------------------------------------------------------- DescribeExport, ListExports


def job_record(ctx, prefix: bytes, arn: str, kind: str, not_found) -> dict:
    """The record of export or import ``arn`` (``kind`` "export" or "import"),
    or DynamoDB's errors for a malformed ARN and one that names nothing."""
    if f"/{kind}/" not in arn or not arn.startswith("arn:"):
        raise ValidationException(f"Invalid {kind.capitalize()} ARN: {arn}")
    with ctx.engine.read() as txn:
        record = read_record(txn, prefix, ctx.region, arn)
    if record is None:
        raise not_found(f"{kind.capitalize()} not found: {arn}")
    return record


def listed_records(ctx, prefix: bytes, request: dict, operation: str, limit: int, summary) -> dict:
    """ListExports' and ListImports' common part: the records of the region
    or of the request's TableArn, a page of ``limit`` after the request's
    NextToken, each with its shown status; {"summaries", "NextToken"}."""
    under = request.get("TableArn")
    if under is not None:
        tables.parse_table_arn(under)
    after = page_after(request["NextToken"], operation) if request.get("NextToken") else None
    with ctx.engine.read() as txn:
        records, last = list_records(txn, prefix, ctx.region, under, after, limit)
    out: dict = {"summaries": [summary(record, shown_status(record)[0]) for record in records]}
    if last is not None:
        out["NextToken"] = page_token(last)
    return out


def describe_export(ctx, request: dict) -> dict:
    return {"ExportDescription": _description(job_record(ctx, _RECORD, request["ExportArn"], "export",
                                                          ExportNotFoundException))}


def list_exports(ctx, request: dict) -> dict:
    """The exports of the region, or of one table, newest first per table."""
    out = listed_records(ctx, _RECORD, request, "ListExports", request.get("MaxResults") or _LIST_LIMIT,
                         lambda record, status: {"ExportArn": record["arn"], "ExportStatus": status,
                                                 "ExportType": record["type"] or "FULL_EXPORT"})
    out["ExportSummaries"] = out.pop("summaries")
    return out


OPERATIONS = {
    "ExportTableToPointInTime": export_table_to_point_in_time,
    "DescribeExport": describe_export,
    "ListExports": list_exports,
}
