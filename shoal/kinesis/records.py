"""DynamoDB's Kinesis data stream record, built from a change-log record.

One item change is one Kinesis record whose data is this JSON (the layout
DynamoDB writes, as the Developer Guide's "Kinesis Data Streams" chapter and
the published parsers of those records describe it)::

    {"awsRegion": ..., "eventID": UUID, "eventName": "INSERT" | "MODIFY" | "REMOVE",
     "userIdentity": null | {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
     "recordFormat": "application/json", "tableName": ...,
     "dynamodb": {"ApproximateCreationDateTime": ..., "Keys": ..., "NewImage": ..., "OldImage": ...,
                  "SizeBytes": ..., "ApproximateCreationDateTimePrecision": ...},
     "eventSource": "aws:dynamodb"}

Unlike a DynamoDB Streams record there is no view type: both images are
sent whenever they exist, and no SequenceNumber (Kinesis assigns its own).
ApproximateCreationDateTime is epoch milliseconds, or microseconds with that
precision (Shoal's change log keeps milliseconds, so the last three digits
of a microsecond time are zero).  The eventID is derived from the table and
the change's log position, so a record delivered twice carries the same id.
"""

from __future__ import annotations

import hashlib
import re
import uuid

import orjson

from shoal.model.size import item_size

_STREAM_ARN = re.compile(r"arn:aws[a-z-]*:kinesis:([a-z0-9-]+):(\d{12}):stream/([a-zA-Z0-9_.-]{1,128})")


def parse_stream_arn(arn: str) -> tuple[str, str, str] | None:
    """(region, account, stream name) of a Kinesis data stream ARN, or None
    if ``arn`` names no data stream (another service, a consumer, junk)."""
    match = _STREAM_ARN.fullmatch(arn)
    return match.groups() if match else None


def event_id(table_id: str, seq: int) -> str:
    """A UUID that is the same each time change ``seq`` of the table is sent."""
    return str(uuid.UUID(bytes=hashlib.blake2b(f"{table_id}:{seq}".encode(), digest_size=16).digest()))


def partition_key(keys: dict) -> str:
    """The Kinesis partition key of an item's records: a digest of its key,
    so every change of one item lands on one shard, in order."""
    return hashlib.md5(orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)).hexdigest()


def creation_time(ms: int, precision: str) -> int:
    """ApproximateCreationDateTime of a change written at ``ms``."""
    return ms * 1000 if precision == "MICROSECOND" else ms


def build_record(change: dict, ms: int, *, table_name: str, table_id: str, region: str, seq: int,
                 precision: str) -> bytes:
    """The JSON data of the Kinesis record of one item change."""
    keys, old, new = change["keys"], change["old"], change["new"]
    data = {"ApproximateCreationDateTime": creation_time(ms, precision), "Keys": keys}
    size = item_size(keys)
    if new is not None:
        data["NewImage"] = new
        size += item_size(new)
    if old is not None:
        data["OldImage"] = old
        size += item_size(old)
    data["SizeBytes"] = size
    data["ApproximateCreationDateTimePrecision"] = precision
    identity = change.get("userIdentity")
    record = {
        "awsRegion": region,
        "eventID": event_id(table_id, seq),
        "eventName": "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY"),
        "userIdentity": None if identity is None else {"type": identity.get("type"),
                                                        "principalId": identity.get("principalId")},
        "recordFormat": "application/json",
        "tableName": table_name,
        "dynamodb": data,
        "eventSource": "aws:dynamodb",
    }
    return orjson.dumps(record)
