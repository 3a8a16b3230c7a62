"""Kinesis Data Streams destinations: EnableKinesisStreamingDestination,
DisableKinesisStreamingDestination, UpdateKinesisStreamingDestination and
DescribeKinesisStreamingDestination.

This module is the control plane and the stored state; delivery (reading the
change log and calling Kinesis PutRecords) is ``shoal.kinesis``.

A table's destinations are one JSON record in ``meta`` under
``kinesis/dest/`` + the table's 16-byte prefix::

    {"table": NAME, "table_id": UUID, "region": REGION, "account": ACCOUNT,
     "destinations": [{"arn", "status", "precision", "description",
                       "gen", "from", "until", "sent"}, ...]}

newest first, as DynamoDB lists them.  ``from`` is the change log's head when
the destination was (re-)enabled, ``until`` its head when it was disabled
(None while live), ``sent`` the last change-log position delivered for it;
``gen`` counts enables, so the delivery thread never applies an outcome to a
later incarnation of the same entry.  Keying by prefix means a re-created
table never sees the old table's destinations; the delivery job forgets the
record once it has passed the table's DeleteTable change (changes made before
the deletion are still delivered).

The state machine follows DynamoDB as recorded against the live service
(ack-api-quirks findings DDB-TABLE-268/299..304/318, verified 2026-10-09):

* Enable never checks the stream synchronously: any well-formed ARN answers
  ENABLING; the delivery job then makes it ACTIVE, or ENABLE_FAILED with
  DynamoDB's DestinationStatusDescription.
* A table has at most one live entry (ENABLING, ACTIVE, UPDATING, DISABLING);
  any number of DISABLED and ENABLE_FAILED entries stay listed, and enabling
  one of those again flips it in place.
* Every operation on an entry in the wrong state, or on an ARN never enabled,
  is a ValidationException, never ResourceNotFoundException.
* Without a precision the entry shows none (DynamoDB's default is
  MILLISECOND); a DISABLED entry shows none either, and enabling it again
  without one starts over at the default.
"""

from __future__ import annotations

import orjson

from shoal.api.changelog import consumer_cursor, head_position, register_consumer
from shoal.api.tables import table_name_of
from shoal.errors import ResourceNotFoundException, ValidationException

#: The change-log consumer holding records until every live destination has them.
CONSUMER = "kinesis"
DEST_PREFIX = b"kinesis/dest/"
PRECISIONS = ("MILLISECOND", "MICROSECOND")
DEFAULT_PRECISION = "MILLISECOND"
#: Statuses of an entry that is (or is about to be) streaming.
LIVE = frozenset({"ENABLING", "ACTIVE", "UPDATING", "DISABLING"})

# DynamoDB's texts (ack-api-quirks, verified 2026-10-09; the UpdateKinesis
# "No streaming destination" text is recorded only up to the ARN, its end
# follows the same findings' other messages).
_STATE = "Table is not in a valid state to enable Kinesis Streaming Destination: "
ENABLE_STATE = _STATE + ("EnableKinesisStreamingDestination must be DISABLED or ENABLE_FAILED "
                         "to perform ENABLE operation.")
DISABLE_STATE = _STATE + "KinesisStreamingDestination must be ACTIVE to perform DISABLE operation."
DISABLE_WITH_CONFIG = "Stream cannot be disabled using EnableKinesisStreamingConfiguration parameters"
UPDATE_NO_CONFIG = ("Streaming destination cannot be updated with given parameters: "
                    "UpdateKinesisStreamingConfiguration cannot be null or contain only null values")


def dest_key(prefix: bytes) -> bytes:
    """The ``meta`` key of a table's destinations."""
    return DEST_PREFIX + prefix


def load_destinations(txn, prefix: bytes) -> dict | None:
    raw = txn.get("meta", dest_key(prefix))
    return orjson.loads(raw) if raw is not None else None


def save_destinations(txn, prefix: bytes, record: dict) -> None:
    txn.put("meta", dest_key(prefix), orjson.dumps(record))


def iter_destinations(txn):
    """(table prefix, record) of every table that has destinations."""
    for key, raw in txn.scan("meta", DEST_PREFIX, DEST_PREFIX[:-1] + b"0"):
        yield bytes(key[len(DEST_PREFIX):]), orjson.loads(raw)


def any_destinations(txn) -> bool:
    """Whether any table has a destination (one cursor step)."""
    return next(iter(txn.scan("meta", DEST_PREFIX, DEST_PREFIX[:-1] + b"0")), None) is not None


# ---------------------------------------------------------------- operations


def _table(ctx, txn, request: dict, mutating: bool):
    """The table the request names.  A table still CREATING (a restore or an
    import filling it) is not found, as DynamoDB answers in its first seconds
    of CREATING."""
    name = table_name_of(ctx, request["TableName"])
    table = ctx.catalog.get(txn, ctx.region, name)
    if table is None or (mutating and table.description.get("TableStatus") == "CREATING"):
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    return table


def _record(txn, table) -> dict:
    return load_destinations(txn, table.prefix) or {
        "table": table.name, "table_id": table.table_id, "region": table.region, "account": table.account,
        "destinations": [],
    }


def _find(record: dict, arn: str) -> dict | None:
    return next((d for d in record["destinations"] if d["arn"] == arn), None)


def enable_kinesis_streaming_destination(ctx, request: dict) -> dict:
    arn = request["StreamArn"]
    config = request.get("EnableKinesisStreamingConfiguration")
    precision = (config or {}).get("ApproximateCreationDateTimePrecision")
    with ctx.engine.write() as txn:
        table = _table(ctx, txn, request, mutating=True)
        record = _record(txn, table)
        if any(d["status"] in LIVE for d in record["destinations"]):
            raise ValidationException(ENABLE_STATE)
        head = head_position(txn)
        entry = _find(record, arn)
        if entry is None:
            entry = {"arn": arn, "gen": 0}
            record["destinations"].insert(0, entry)
        entry.update(status="ENABLING", precision=precision, description=None, gen=entry["gen"] + 1,
                     until=None, sent=head)
        entry["from"] = head
        save_destinations(txn, table.prefix, record)
        # Hold the log from here on for the delivery job (an existing cursor
        # is further back and already holds it).
        if consumer_cursor(txn, CONSUMER) is None:
            register_consumer(txn, CONSUMER)
    out_config = {} if precision is None else {"ApproximateCreationDateTimePrecision": precision}
    return {"TableName": table.name, "StreamArn": arn, "DestinationStatus": "ENABLING",
            "EnableKinesisStreamingConfiguration": out_config}


def disable_kinesis_streaming_destination(ctx, request: dict) -> dict:
    arn = request["StreamArn"]
    if request.get("EnableKinesisStreamingConfiguration") is not None:
        raise ValidationException(DISABLE_WITH_CONFIG)
    with ctx.engine.write() as txn:
        table = _table(ctx, txn, request, mutating=True)
        record = _record(txn, table)
        entry = _find(record, arn)
        if entry is None or entry["status"] not in ("ACTIVE", "DISABLING"):
            raise ValidationException(DISABLE_STATE)
        if entry["status"] == "ACTIVE":
            # Changes made until now are still delivered; the delivery job
            # makes the entry DISABLED once it has passed this position.
            entry.update(status="DISABLING", until=head_position(txn))
            save_destinations(txn, table.prefix, record)
    return {"TableName": table.name, "StreamArn": arn, "DestinationStatus": "DISABLING"}


def update_kinesis_streaming_destination(ctx, request: dict) -> dict:
    arn = request["StreamArn"]
    config = request.get("UpdateKinesisStreamingConfiguration") or {}
    precision = config.get("ApproximateCreationDateTimePrecision")
    with ctx.engine.write() as txn:
        table = _table(ctx, txn, request, mutating=True)
        record = _record(txn, table)
        entry = _find(record, arn)
        if entry is None:
            raise ValidationException(
                f"{_STATE}No streaming destination with streamArn: {arn} found for table with tableName: "
                f"{table.name}")
        if entry["status"] != "ACTIVE":
            raise ValidationException(
                f"{_STATE}Kinesis streaming is not in ACTIVE state. Updates are only allowed in ACTIVE state. "
                f"TableName: {table.name}, kdsArn: {arn}")
        if precision is None:
            raise ValidationException(UPDATE_NO_CONFIG)
        if precision == (entry["precision"] or DEFAULT_PRECISION):
            raise ValidationException(
                f"Invalid Request: Precision is already set to the desired value of {precision} for tableId: "
                f"{table.table_id}, kdsArn: {arn}")
        # Records of changes from now on carry the new precision; the
        # delivery job reports ACTIVE again on its next round.
        entry.update(status="UPDATING", precision=precision)
        save_destinations(txn, table.prefix, record)
    return {"TableName": table.name, "StreamArn": arn, "DestinationStatus": "UPDATING",
            "UpdateKinesisStreamingConfiguration": {"ApproximateCreationDateTimePrecision": precision}}


def describe_kinesis_streaming_destination(ctx, request: dict) -> dict:
    with ctx.engine.read() as txn:
        table = _table(ctx, txn, request, mutating=False)
        record = load_destinations(txn, table.prefix)
    return {"TableName": table.name,
            "KinesisDataStreamDestinations": [describe_entry(d) for d in (record or {}).get("destinations", ())]}


def describe_entry(entry: dict) -> dict:
    """A KinesisDataStreamDestination: the members DynamoDB shows, those
    without a value left out."""
    out = {"StreamArn": entry["arn"], "DestinationStatus": entry["status"]}
    if entry.get("description"):
        out["DestinationStatusDescription"] = entry["description"]
    if entry.get("precision") and entry["status"] != "DISABLED":  # disabling forgets it (records
        out["ApproximateCreationDateTimePrecision"] = entry["precision"]  # still due keep it)
    return out


OPERATIONS = {
    "EnableKinesisStreamingDestination": enable_kinesis_streaming_destination,
    "DisableKinesisStreamingDestination": disable_kinesis_streaming_destination,
    "UpdateKinesisStreamingDestination": update_kinesis_streaming_destination,
    "DescribeKinesisStreamingDestination": describe_kinesis_streaming_destination,
}
