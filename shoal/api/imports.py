"""Import from S3: ImportTable, DescribeImport and ListImports.

ImportTable creates a new table from TableCreationParameters (CreateTable's
checks and errors; ResourceInUseException "Table already exists: <name>"
when the name is taken, as DynamoDB's Developer Guide shows it) and answers
IN_PROGRESS; a thread of its own (``jobs.start_job``) then reads every
object of the bucket whose key starts with S3KeyPrefix (the files under
``--s3-dir``, see ``shoal.api.exports``), in key order, decompressed as
InputCompressionType says (GZIP, ZSTD or NONE), as InputFormat says:

* DYNAMODB_JSON: one ``{"Item": {...}}`` per line, as exports write them;
* ION: one ``$ion_1_0 {Item:{...}}`` per line (read with ``amazon.ion``):
  strings, decimals (and integers), blobs, booleans, nulls, lists, structs,
  and lists annotated ``$dynamodb_SS``, ``$dynamodb_NS``, ``$dynamodb_BS``;
* CSV: a header line (or InputFormatOptions.Csv.HeaderList, and then the
  first line is data), columns split by Delimiter (default ``,``).  As
  DynamoDB documents, every column is a string except the key attributes of
  the table and of its global secondary indexes, typed by
  AttributeDefinitions; an empty cell of an index key is left out (the item
  is not in that index), an empty cell elsewhere is an empty string.

Each item is checked as PutItem checks one (attribute values, the key, index
key types, 400 KB); one that fails is counted in ErrorCount and logged, and
the import goes on; an object that cannot be read (it does not decompress)
counts one error and the rest of it is skipped, as DynamoDB skips "the
remaining portion of the object".  Valid items are written through the write
path's bulk load (``writepath.BulkLoad``: items, index entries, counters, one
change record per transaction, no stream records, as DynamoDB writes none for
imported items), ``WRITE_CHUNK`` per transaction; a key seen twice keeps the
last item, as DynamoDB overwrites duplicates.  While the import runs the table is CREATING;
at the end it is ACTIVE and the import COMPLETED, or, with any item errors,
FAILED with FailureCode ItemValidationError and the table holding the good
items (the Developer Guide's "Import format quotas and validation").  A
bucket that does not exist fails the import with S3NoSuchBucket and the
table is dropped, as DynamoDB does not create it then.

Records are ``meta``: ``import/<region>\\0<arn>`` (ARN ``<table arn>/import/
<ms>-<8 hex>``) and ``import-token/<region>\\0<ClientToken>``, as exports'.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import logging
import os
import threading
import time
import uuid
import zlib

import orjson

from shoal.api import tables
from shoal.api.catalog import read_stats, update_description
from shoal.api.changelog import record_table_change
from shoal.api.common import storage_key
from shoal.api.exports import (
    S3Error,
    job_record,
    listed_records,
    bucket_path,
    keep_token,
    new_arn,
    shown_status,
    token_owner,
)
from shoal.api.indexes import entry_key
from shoal.api.jobs import (
    HEARTBEAT_S,
    Stopped,
    job_context,
    read_record,
    record_key,
    runner,
    start_job,
    update_record,
)
from shoal.api.writepath import BulkLoad, encode_stored
from shoal.errors import ShoalError, ValidationException
from shoal.model.numbers import normalize_number
from shoal.model.values import validate_key, validate_sized_item

log = logging.getLogger("shoal")

RECORD = b"import/"
_TOKEN = b"import-token/"
#: Items written per transaction.
WRITE_CHUNK = 5000
MAX_ITEM_SIZE = 400 * 1024
#: Item errors logged per import (all are counted).
MAX_LOGGED_ERRORS = 100
_LIST_LIMIT = 25
_CREATE_MEMBERS = ("TableName", "AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput",
                   "OnDemandThroughput", "SSESpecification", "GlobalSecondaryIndexes", "VectorIndexes")
ITEM_VALIDATION = ("ItemValidationError", "Some of the items failed validation checks and were not imported. "
                                          "Please check CloudWatch error logs for more details.")


class ImportNotFoundException(ShoalError):
    type_name = "ImportNotFoundException"
    status = 400


class ImportConflictException(ShoalError):
    type_name = "ImportConflictException"
    status = 400


class ItemError(Exception):
    """One item (line, row) of a source object that cannot be imported."""


# ---------------------------------------------------------------- ImportTable


def import_table(ctx, request: dict) -> dict:
    now = ctx.now()
    params = request["TableCreationParameters"]
    given = {name: value for name, value in request.items() if name != "ClientToken"}
    token = request.get("ClientToken")
    if token is not None:
        with ctx.engine.read() as txn:
            existing = _idempotent(ctx, txn, token, given, now)
        if existing is not None:
            return {"ImportTableDescription": _description(existing)}
    options = (request.get("InputFormatOptions") or {}).get("Csv") or {}
    if options and request["InputFormat"] != "CSV":
        raise ValidationException("InputFormatOptions are only valid for InputFormat CSV")
    create = {name: params[name] for name in _CREATE_MEMBERS if name in params}
    created = tables.create_table(ctx, create, status="CREATING")["TableDescription"]
    arn = new_arn(created["TableArn"], "import", now)
    source = dict(request["S3BucketSource"])
    source.setdefault("S3BucketOwner", ctx.account)
    record = {
        "kind": "import", "arn": arn, "region": ctx.region, "table_arn": created["TableArn"],
        "table_id": created["TableId"], "table_name": created["TableName"], "given": given,
        "token": token or str(uuid.uuid4()), "status": "IN_PROGRESS", "start": round(now, 3), "end": None,
        "source": source, "format": request["InputFormat"], "options": request.get("InputFormatOptions"),
        "compression": request.get("InputCompressionType") or "NONE", "parameters": params,
        "errors": 0, "processed": 0, "processed_bytes": 0, "imported": 0,
        "log_group": f"arn:aws:logs:{ctx.region}:{ctx.account}:log-group:/aws-dynamodb/imports:*",
        "runner": runner(), "beat": round(time.time(), 3),
    }
    with ctx.engine.write() as txn:
        if token is not None:
            keep_token(txn, _TOKEN, ctx.region, token, arn, now)
        txn.put("meta", record_key(RECORD, ctx.region, arn), orjson.dumps(record))
    start_job(job_context(ctx), arn, _run_import)
    # as written: the job may have ended (and left the running set) already
    return {"ImportTableDescription": _description(record, just_started=True)}


def _idempotent(ctx, txn, token: str, given: dict, now: float) -> dict | None:
    arn = token_owner(txn, _TOKEN, ctx.region, token, now)
    record = read_record(txn, RECORD, ctx.region, arn) if arn is not None else None
    if record is None:
        return None
    if record["given"] != given:
        raise ImportConflictException("Import conflict: Duplicate request detected with conflicting parameters")
    return record


def _set_table_status(txn, region: str, record: dict, status: str) -> bool:
    """Store ``status`` as the TableStatus of the import's table (if it is
    still that table)."""
    return update_description(txn, region, record["table_name"], record["table_id"],
                              lambda desc: desc.__setitem__("TableStatus", status)) is not None


def settle_table(engine, record: dict) -> None:
    """Make an import's table ACTIVE (its import has ended)."""
    with engine.write() as txn:
        _set_table_status(txn, record["region"], record, "ACTIVE")


def _description(record: dict, just_started: bool = False) -> dict:
    """ImportTableDescription; ``just_started``: the record the starting request
    wrote, shown as it is (not judged by whether its job still runs)."""
    status, code, message = ((record["status"], None, None) if just_started else shown_status(record))
    out = {
        "ImportArn": record["arn"], "ImportStatus": status, "TableArn": record["table_arn"],
        "TableId": record["table_id"], "ClientToken": record["token"], "S3BucketSource": record["source"],
        "ErrorCount": record["errors"], "CloudWatchLogGroupArn": record["log_group"],
        "InputFormat": record["format"],
    }
    if record.get("options") is not None:
        out["InputFormatOptions"] = record["options"]
    out["InputCompressionType"] = record["compression"]
    out["TableCreationParameters"] = record["parameters"]
    out["StartTime"] = record["start"]
    if status != "IN_PROGRESS" and record.get("end") is not None:
        out["EndTime"] = record["end"]
    out.update(ProcessedSizeBytes=record["processed_bytes"], ProcessedItemCount=record["processed"],
               ImportedItemCount=record["imported"])
    if status == "FAILED":
        out["FailureCode"] = code
        out["FailureMessage"] = message
    return out


# ---------------------------------------------------------------- DescribeImport, ListImports


def describe_import(ctx, request: dict) -> dict:
    return {"ImportTableDescription": _description(job_record(ctx, RECORD, request["ImportArn"], "import",
                                                               ImportNotFoundException))}


def list_imports(ctx, request: dict) -> dict:
    """The imports of the region, or of one table, newest first per table."""
    out = listed_records(ctx, RECORD, request, "ListImports", request.get("PageSize") or _LIST_LIMIT, _summary)
    out["ImportSummaryList"] = out.pop("summaries")
    return out


def _summary(record: dict, status: str) -> dict:
    summary = {"ImportArn": record["arn"], "ImportStatus": status, "TableArn": record["table_arn"],
               "S3BucketSource": record["source"], "CloudWatchLogGroupArn": record["log_group"],
               "InputFormat": record["format"], "StartTime": record["start"]}
    if status != "IN_PROGRESS" and record.get("end") is not None:
        summary["EndTime"] = record["end"]
    return summary


# ---------------------------------------------------------------- the import job


class _TableGone(Exception):
    """The import's table was deleted while the import ran."""


class _Progress:
    """What an import has done so far, and its pending items (storage key,
    stored value, item)."""

    def __init__(self, ctx, record: dict, stop: threading.Event) -> None:
        self.ctx, self.record, self.stop = ctx, record, stop
        self.processed = self.processed_bytes = self.errors = 0
        self.chunk: list[tuple[bytes, bytes, dict]] = []
        self.logged = 0
        self.beat = time.monotonic()

    def error(self, key: str, index: int, message: str) -> None:
        self.errors += 1
        if self.logged < MAX_LOGGED_ERRORS:
            self.logged += 1
            log.warning("import %s: s3://%s/%s item %d: %s", self.record["arn"], self.record["source"]["S3Bucket"],
                        key, index, message)

    def add(self, table, item: dict, keys: dict, size: int) -> None:
        self.chunk.append((storage_key(table, keys), encode_stored(item, size), item))
        if len(self.chunk) >= WRITE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.stop.is_set():
            raise Stopped()
        if self.chunk:
            _write_chunk(self.ctx, self.record, self.chunk)
            self.chunk = []
        if time.monotonic() - self.beat > HEARTBEAT_S:
            self.beat = time.monotonic()
            update_record(self.ctx.engine, RECORD, self.record["region"], self.record["arn"], **self.counts())

    def counts(self) -> dict:
        return {"processed": self.processed, "processed_bytes": self.processed_bytes, "errors": self.errors}


def _write_chunk(ctx, record: dict, chunk: list[tuple[bytes, bytes, dict]]) -> None:
    """Put ``chunk``'s items into the import's table in one transaction
    (their keys and stored values were made before it, so writers wait
    only for the puts)."""
    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, record["region"], record["table_name"])
        if table is None or table.table_id != record["table_id"]:
            raise _TableGone()
        load = BulkLoad(txn, table)
        for skey, raw, item in chunk:
            load.put(skey, raw, item)
        load.finish(round(ctx.now(), 3))


def _run_import(ctx, arn: str, stop: threading.Event) -> None:
    with ctx.engine.read() as txn:
        record = read_record(txn, RECORD, ctx.region, arn)
        table = ctx.catalog.get(txn, ctx.region, record["table_name"]) if record is not None else None
    if record is None:
        return
    progress = _Progress(ctx, record, stop)
    outcome: dict = {}
    try:
        if table is None or table.table_id != record["table_id"]:
            raise _TableGone()
        try:
            bucket_dir = bucket_path(ctx, record["source"]["S3Bucket"])
        except S3Error:  # nothing imported: DynamoDB does not create the table
            _drop_table(ctx, record)
            raise
        for key, path in _objects(bucket_dir, record["source"].get("S3KeyPrefix") or ""):
            _import_object(table, record, key, path, progress)
        progress.flush()
        if progress.errors:
            outcome = {"status": "FAILED", "failure_code": ITEM_VALIDATION[0], "failure_message": ITEM_VALIDATION[1]}
        else:
            outcome = {"status": "COMPLETED"}
    except Stopped:
        return
    except S3Error as exc:
        outcome = {"status": "FAILED", "failure_code": exc.code, "failure_message": exc.message}
    except _TableGone:
        outcome = {"status": "FAILED", "failure_code": "ResourceNotFoundException",
                   "failure_message": f"Table {record['table_name']} was deleted during the import"}
    except Exception as exc:  # a bug: reported, and the import fails rather than hangs
        log.error("import %s failed", arn, exc_info=True)
        outcome = {"status": "FAILED", "failure_code": "InternalServerError", "failure_message": str(exc)}
    with ctx.engine.write() as txn:
        imported = read_stats(txn, table.prefix)[0] if table is not None else 0
        if _set_table_status(txn, record["region"], record, "ACTIVE"):
            current = ctx.catalog.get(txn, record["region"], record["table_name"])
            record_table_change(txn, current, "ImportTable", {"TableDescription": current.description},
                                round(ctx.now(), 3))
    update_record(ctx.engine, RECORD, record["region"], arn, end=round(ctx.now(), 3), imported=imported,
                  **progress.counts(), **outcome)


def _drop_table(ctx, record: dict) -> None:
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, record["region"], record["table_name"])
    if table is not None and table.table_id == record["table_id"]:
        tables.delete_table(ctx, {"TableName": record["table_name"]})


def _objects(bucket_dir: str, prefix: str) -> list[tuple[str, str]]:
    """(key, file) of every object of the bucket whose key starts with ``prefix``, by key."""
    found = []
    for folder, _, names in os.walk(bucket_dir):
        for name in names:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, bucket_dir).replace(os.sep, "/")
            if key.startswith(prefix):
                found.append((key, path))
    found.sort()
    return found


class _Counted(io.RawIOBase):
    """A readable stream that counts the bytes read through it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.inner.readinto(buffer) or 0
        self.count += n
        return n


def _open(path: str, compression: str):
    """(the object's decompressed bytes as a buffered stream, the byte counter)."""
    raw = open(path, "rb")
    if compression == "GZIP":
        inner = gzip.GzipFile(fileobj=raw)
    elif compression == "ZSTD":
        import zstandard

        inner = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    else:
        inner = raw
    counted = _Counted(inner)
    return io.BufferedReader(counted, 1 << 20), counted, raw


def _import_object(table, record: dict, key: str, path: str, progress: _Progress) -> None:
    stream, counted, raw = _open(path, record["compression"])
    index = -1
    strings = None  # the attributes known to be strings (``_checked``)
    try:
        if record["format"] == "CSV":
            rows = _csv_items(table, record, io.TextIOWrapper(stream, encoding="utf-8", newline=""))
            strings = _csv_strings(record)
        else:
            rows = _line_items(stream, _ion_item if record["format"] == "ION" else _json_item)
        for index, item in enumerate(rows):
            progress.processed += 1
            if isinstance(item, ItemError):
                progress.error(key, index, str(item))
                continue
            try:
                checked, keys, size = _checked(table, item, strings)
            except Exception as exc:  # noqa: BLE001 - whatever the item's fault, it is one error
                progress.error(key, index, getattr(exc, "message", None) or str(exc))
                continue
            progress.add(table, checked, keys, size)
    except _read_errors(record["compression"]) as exc:
        # The object itself is malformed: the rest of it is skipped.
        progress.error(key, index + 1, f"the object cannot be read: {exc}")
    finally:
        progress.processed_bytes += counted.count
        raw.close()


def _read_errors(compression: str) -> tuple:
    """What reading a malformed object raises."""
    errors = (OSError, EOFError, ValueError, csv.Error, zlib.error)
    if compression == "ZSTD":
        import zstandard

        errors += (zstandard.ZstdError,)
    return errors


def _line_items(stream, parse):
    """Each non-blank line of ``stream`` parsed (or the ItemError it raised)."""
    for line in stream:
        if not line.strip():
            continue
        try:
            yield parse(line)
        except ItemError as exc:
            yield exc


def _json_item(line: bytes) -> dict:
    return json_document(line)[1]


def json_document(line: bytes) -> tuple[dict, dict]:
    """A DYNAMODB_JSON line: the object, and its "Item" (ItemError if either is not one)."""
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ItemError(f"Unexpected JSON: {exc}") from None
    item = document.get("Item") if type(document) is dict else None
    if type(item) is not dict:
        raise ItemError('A DynamoDB JSON line must be an object with a member "Item" holding the item')
    return document, item


def _ion_item(line: bytes) -> dict:
    simpleion, converters = _ion()
    try:
        document = simpleion.loads(line.decode("utf-8"))
    except Exception as exc:  # amazon.ion raises several types for text that does not parse
        raise ItemError(f"Unexpected Ion: {exc}") from None
    item = document.get("Item") if _is_struct(document) else None
    if not _is_struct(item):
        raise ItemError("An Ion line must be a struct with a field Item holding the item")
    return {str(name): _from_ion(value) for name, value in item.items()}


_ION_STATE: list = []


def _ion():
    """(amazon.ion's simpleion, the converter of each of its value classes),
    loaded on first use (only ION imports need the library)."""
    if not _ION_STATE:
        from amazon.ion import simple_types, simpleion

        converters = {
            simple_types.IonPyText: lambda value: {"S": str(value)},
            simple_types.IonPyDecimal: lambda value: {"N": _number(str(value))},
            simple_types.IonPyInt: lambda value: {"N": _number(str(int(value)))},
            simple_types.IonPyBool: lambda value: {"BOOL": bool(value)},
            simple_types.IonPyDict: _ion_map,
            simple_types.IonPyList: _ion_list,
            simple_types.IonPyBytes: lambda value: {"B": base64.b64encode(bytes(value)).decode()},
            simple_types.IonPyNull: lambda value: {"NULL": True},
            simple_types.IonPyFloat: lambda value: {"N": _ion_float(value)},
        }
        _ION_STATE.extend((simpleion, converters))
    return _ION_STATE


def _is_struct(value) -> bool:
    from amazon.ion.core import IonType
    from amazon.ion.simple_types import IonPyNull

    return getattr(value, "ion_type", None) is IonType.STRUCT and not isinstance(value, IonPyNull)


def _from_ion(value) -> dict:
    """An Ion value as a DynamoDB attribute value (DynamoDB's mapping)."""
    convert = _ion()[1].get(type(value))
    if convert is None:
        kind = getattr(value, "ion_type", None)
        raise ItemError(f"Ion type {getattr(kind, 'name', type(value).__name__)} has no DynamoDB type")
    return convert(value)


def _ion_map(value) -> dict:
    return {"M": {str(name): _from_ion(member) for name, member in value.items()}}


_ION_SETS = {"$dynamodb_SS": "SS", "$dynamodb_NS": "NS", "$dynamodb_BS": "BS"}


def _ion_list(value) -> dict:
    from amazon.ion.core import IonType

    if value.ion_type is not IonType.LIST:
        raise ItemError(f"Ion type {value.ion_type.name} has no DynamoDB type")
    annotations = value.ion_annotations
    set_kind = _ION_SETS.get(getattr(annotations[0], "text", annotations[0])) if annotations else None
    if set_kind is None:
        return {"L": [_from_ion(member) for member in value]}
    members = [_from_ion(member) for member in value]
    wanted = {"SS": "S", "NS": "N", "BS": "B"}[set_kind]
    if any(wanted not in member for member in members):
        raise ItemError(f"A {set_kind} set member must be an Ion {'string' if wanted == 'S' else 'decimal' if wanted == 'N' else 'blob'}")
    return {set_kind: [member[wanted] for member in members]}


def _ion_float(value) -> str:
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ItemError("An Ion float that is not a number cannot be a DynamoDB number")
    return _number(repr(number))


def _number(text: str) -> str:
    try:
        return normalize_number(text)
    except ShoalError as exc:
        raise ItemError(exc.message) from None


def _csv_items(table, record: dict, text):
    """Each data row of a CSV object as an item (or the ItemError it makes)."""
    options = (record.get("options") or {}).get("Csv") or {}
    reader = csv.reader(text, delimiter=options.get("Delimiter") or ",")
    header = options.get("HeaderList")
    if header is None:
        header = next(reader, None)
        if header is None:
            return
    types = {d["AttributeName"]: d["AttributeType"] for d in record["parameters"]["AttributeDefinitions"]}
    table_keys = {name for name, _ in table.key_schema}
    for row in reader:
        if not row:
            continue  # a blank line
        if len(row) != len(header):
            yield ItemError(f"The row has {len(row)} columns; the header has {len(header)}")
            continue
        item = {}
        for name, cell in zip(header, row):
            kind = types.get(name)
            if kind is None:
                item[name] = {"S": cell}
            elif cell or name in table_keys:
                item[name] = {kind: cell}
        yield item


def _csv_strings(record: dict):
    """Whether an attribute of a CSV row is a string by construction: every
    column not named in AttributeDefinitions (``_csv_items``)."""
    typed = {d["AttributeName"] for d in record["parameters"]["AttributeDefinitions"]}
    return lambda name: name not in typed


def _checked(table, item: dict, strings=None) -> tuple[dict, dict, int]:
    """The item as PutItem would store it, its key attributes and its size;
    or the error it makes.  Attributes for which ``strings(name)`` holds are
    S values made by the reader itself (CSV cells): well-formed, they are
    only measured (a name's and a value's UTF-8 bytes), and the others
    checked as usual."""
    if strings is None:
        item, size = validate_sized_item(item, in_place=True)
    else:
        item, size = _sized_strings(item, strings)
    if size > MAX_ITEM_SIZE:
        raise ValidationException("Item size has exceeded the maximum allowed size")
    keys = _plain_key(table, item)
    if keys is None:  # anything unusual: the full check and its messages
        keys = validate_key(item, table.key_schema, table.attribute_types, what="item")
    for index in table.indexes:
        entry_key(table, index, item, b"", True)  # raises on an index key of the wrong type
    return item, keys, size


def _sized_strings(item: dict, strings) -> tuple[dict, int]:
    """``validate_sized_item`` of an item whose attributes named by
    ``strings`` are well-formed S values: those are measured here and the
    rest validated, and the first that fails says so, as it would have."""
    size = 0
    others = None
    for name, av in item.items():
        if name and strings(name):
            value = av["S"]
            size += len(name) if name.isascii() else len(name.encode("utf-8"))
            size += len(value) if value.isascii() else len(value.encode("utf-8"))
        else:
            if others is None:
                others = {}
            others[name] = av
    if others:
        _, checked_size = validate_sized_item(others, in_place=True)
        item.update(others)  # normalized (a number key's form)
        size += checked_size
    return item, size


def _plain_key(table, item: dict) -> dict | None:
    """The key attributes of a checked item when each is of its defined type
    and plainly within the key limits (a number: any, as checked numbers are
    normalized; a string: 1 to 256 characters, at most 1,024 UTF-8 bytes);
    None otherwise, for ``validate_key`` to say what is wrong."""
    keys = {}
    types = table.attribute_types
    for name, _role in table.key_schema:
        av = item.get(name)
        if av is None or len(av) != 1:
            return None
        type_ = types[name]
        value = av.get(type_)
        if type_ == "S":
            if type(value) is not str or not 0 < len(value) <= 256:
                return None
        elif type_ != "N" or value is None:
            return None
        keys[name] = av
    return keys


OPERATIONS = {
    "ImportTable": import_table,
    "DescribeImport": describe_import,
    "ListImports": list_imports,
}
