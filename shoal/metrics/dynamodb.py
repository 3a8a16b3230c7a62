"""DynamoDB's CloudWatch metrics: which, with which dimensions and units, and
the background jobs that record those no request does.

As the DynamoDB developer guide ("DynamoDB Metrics and dimensions") lists
them, namespace ``AWS/DynamoDB``, a metric sent only for a period in which it
is not zero:

    SuccessfulRequestLatency        TableName, Operation           Milliseconds  per request answered 200
    ConsumedReadCapacityUnits       TableName [, GlobalSecondaryIndexName]  Count  per request that read
    ConsumedWriteCapacityUnits      TableName [, GlobalSecondaryIndexName]  Count  per request that wrote
    ReturnedItemCount               TableName, Operation           Count   per Query or Scan
    ReturnedRecordsCount            Operation, StreamLabel, TableName  Count  per GetRecords
    ReturnedBytes                   Operation, StreamLabel, TableName  Bytes  per GetRecords
    UserErrors                      (none: account and region)     Count   per HTTP 400, but
                                    ConditionalCheckFailedException (its own metric) and throttling
    ConditionalCheckFailedRequests  TableName                      Count
    TransactionConflict             TableName                      Count   per item of a transaction in conflict
    SystemErrors                    TableName, Operation           Count   per HTTP 500
    ThrottledRequests               TableName, Operation           Count   per request refused for throughput
    ReadThrottleEvents,             TableName                      Count   per such request that reads / writes
    WriteThrottleEvents
    TimeToLiveDeletedItemCount      TableName                      Count   per item time to live deleted
    OnlineIndexPercentageProgress   TableName, GlobalSecondaryIndexName  Count  per backfill step (percent)
    OnlineIndexConsumedWriteCapacity  TableName, GlobalSecondaryIndexName  Count  per backfill step
    ProvisionedReadCapacityUnits,   TableName [, GlobalSecondaryIndexName]  Count  each minute, provisioned tables
    ProvisionedWriteCapacityUnits
    AccountMaxReads, AccountMaxWrites, AccountMaxTableLevelReads,   (none)  Count    each minute, per region
    AccountMaxTableLevelWrites                                                       with tables
    AccountProvisionedReadCapacityUtilization,                      (none)  Percent  each minute, per region
    AccountProvisionedWriteCapacityUtilization,                                      with provisioned capacity
    MaxProvisionedTableReadCapacityUtilization,
    MaxProvisionedTableWriteCapacityUtilization
    ItemCount, TableSizeBytes       TableName                      Count, Bytes  each minute

Consumed units are the ones the API computes for ConsumedCapacity
(``shoal.api.common.meter``), recorded whether or not a request asks for
them: a table's metric counts the table and its local secondary indexes, a
global secondary index has its own.

Where the guide leaves a choice, Shoal's: the account maxima are the quotas
DescribeLimits reports (``shoal.api.tables.LIMITS``: 80,000 per account,
40,000 per table); an account utilization is the provisioned units of the
region's PROVISIONED tables and their GSIs over the account maximum, the
"max table" one the largest table's or GSI's over the table maximum (as
percentages).  ThrottledRequests and the throttle events are counted when a
ThrottlingException, ProvisionedThroughputExceededException or
RequestLimitExceeded is answered to a data-plane operation: the request's
table counts one ThrottledRequests and one read or write throttle event (a
request that names no table counts ThrottledRequests by Operation only,
as SystemErrors does); Shoal does not
throttle yet, so they appear the day it does.  OnlineIndexThrottleEvents is
never sent: a backfill is never throttled.  ReturnedBytes counts the bytes of
GetRecords' answer.  Global tables' ReplicationLatency (TableName,
ReceivingRegion; milliseconds, one value per write sent) and
PendingReplicationCount (the same dimensions; sampled every 5 s) are
recorded by the sending region's replication thread (``shoal.replication.node``),
straight into the store.

Time to live deletions are counted from the change log, where the sweeper's
deletions are the records with DynamoDB's service identity: ``TtlDeletions``
is the log's consumer ``metrics``.  ``TableGauges`` records the per-minute
figures of every table, once a minute whatever the number of workers (the
first to claim the minute in a write transaction).  A GSI's backfill is
reported by ``shoal.api.indexes`` to its listeners (``IndexProgress``), from
the worker that ran the step.
"""

from __future__ import annotations

import struct
import time
import uuid
from typing import Callable

import orjson

from shoal.api import indexes
from shoal.api.catalog import decode_entry, read_stats
from shoal.api.changelog import (
    advance_consumer,
    consumer_cursor,
    decode_change,
    head_position,
    read_raw_changes,
    register_consumer,
    unregister_consumer,
)
from shoal.api.tables import LIMITS
from shoal.api.ttl import SERVICE_IDENTITY, ttl_key
from shoal.model.capacity import read_units
from shoal.metrics.stats import Stats
from shoal.metrics.store import Writer

NAMESPACE = "AWS/DynamoDB"

#: The values of the Operation dimension, as the guide lists them: DynamoDB's
#: data-plane operations and DynamoDB Streams' GetRecords
#: (SuccessfulRequestLatency, SystemErrors, ThrottledRequests).
OPERATIONS = frozenset({
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem", "BatchWriteItem", "Query", "Scan",
    "TransactGetItems", "TransactWriteItems", "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction",
    "GetRecords",
})

#: The single-item writes (WriteThrottleEvents; they meter their table's units as a number).
ITEM_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})

#: Errors DynamoDB answers for throughput (ThrottledRequests, not UserErrors).
THROTTLING = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})

#: Units of DynamoDB's metrics.
UNITS = {
    "SuccessfulRequestLatency": "Milliseconds", "TableSizeBytes": "Bytes", "ReturnedBytes": "Bytes",
    "AccountProvisionedReadCapacityUtilization": "Percent", "AccountProvisionedWriteCapacityUtilization": "Percent",
    "MaxProvisionedTableReadCapacityUtilization": "Percent", "MaxProvisionedTableWriteCapacityUtilization": "Percent",
}

CONSUMER = "metrics"
_TTL_CHUNK = 5000  # change records a round of TtlDeletions looks at
_SERVICE = orjson.dumps(SERVICE_IDENTITY["principalId"])
_GAUGES_KEY = b"metrics/gauges"
_MINUTE = struct.Struct(">Q")


def unit_of(metric: str) -> str:
    return UNITS.get(metric, "Count")


def table_name(name) -> str | None:
    """A request's TableName as metrics name it: an ARN stands for its table."""
    if not isinstance(name, str):
        return None
    if name.startswith("arn:"):
        return name.rpartition("table/")[2].split("/", 1)[0] or None
    return name


def error_metrics(operation: str | None, table: str | None, error: str, status: int, reasons: list | None):
    """(metric, dimensions) to count once for a request that failed with
    ``error`` (an error type name) and HTTP ``status``."""
    if status >= 500:
        if operation in OPERATIONS and table is not None:
            return [("SystemErrors", (("Operation", operation), ("TableName", table)))]
        return [("SystemErrors", (("Operation", operation),))] if operation else []
    if error == "ConditionalCheckFailedException":
        return [("ConditionalCheckFailedRequests", (("TableName", table),))] if table else []
    if error in THROTTLING:  # not a user error; only the data plane's operations are counted
        if operation not in OPERATIONS:
            return []
        if table is None:  # a batch, a transaction, PartiQL: which table was throttled is not known
            return [("ThrottledRequests", (("Operation", operation),))]
        events = "WriteThrottleEvents" if operation in ITEM_WRITES else "ReadThrottleEvents"
        return [("ThrottledRequests", (("Operation", operation), ("TableName", table))),
                (events, (("TableName", table),))]
    out = [("UserErrors", ())]
    for reason_table in reasons or ():  # TransactionCanceledException: its items in conflict
        out.append(("TransactionConflict", (("TableName", reason_table),)))
    return out


# ---------------------------------------------------------------- time to live deletions


def ensure_consumer(engine, enabled: bool) -> None:
    """Register the change log's consumer ``metrics`` (from the head: it
    counts what is deleted from now on), or unregister it when metrics are
    off, so the log is not kept for a reader that never comes."""
    with engine.write() as txn:
        if enabled:
            if consumer_cursor(txn, CONSUMER) is None:
                register_consumer(txn, CONSUMER)
        else:
            unregister_consumer(txn, CONSUMER)


def _ttl_tables(txn) -> dict[str, tuple[str, str]]:
    """table id -> (region, name) of the tables with a time to live setting."""
    start = ttl_key(b"")
    out = {}
    for key, raw in txn.scan("meta", start, start[:-1] + b"0"):
        prefix = bytes(key[len(start):])
        if len(prefix) != 16:
            continue
        setting = orjson.loads(raw)
        out[str(uuid.UUID(bytes=prefix))] = (setting["region"], setting["name"])
    return out


class TtlDeletions:
    """The change log's consumer ``metrics``: counts the items time to live
    deleted, per table and minute of the deletion (TimeToLiveDeletedItemCount).

    Only the records of tables with a time to live setting are looked at,
    and only those naming DynamoDB's service are decoded; with no such table
    the cursor jumps to the head."""

    __name__ = "metrics_ttl_deletions"

    def __init__(self, engine, chunk: int = _TTL_CHUNK) -> None:
        self.engine = engine
        self.chunk = chunk

    def __call__(self) -> bool:
        with self.engine.read() as txn:
            cursor = consumer_cursor(txn, CONSUMER)
            if cursor is None or cursor >= head_position(txn):
                return False
        with self.engine.write() as txn:
            cursor = consumer_cursor(txn, CONSUMER)
            if cursor is None:
                return False
            tables = _ttl_tables(txn)
            if not tables:
                advance_consumer(txn, CONSUMER, head_position(txn))
                return False
            counts: dict[tuple, int] = {}
            seen = 0
            more = False
            for seq, table_id, value in read_raw_changes(txn, cursor):
                if seen >= self.chunk:
                    more = True
                    break
                seen += 1
                cursor = seq
                table = tables.get(table_id)
                if table is None or _SERVICE not in value:
                    continue
                ms, record = decode_change(value)
                if record.get("userIdentity") == SERVICE_IDENTITY and record.get("new") is None:
                    key = (table, ms // 60000)
                    counts[key] = counts.get(key, 0) + 1
            if counts:
                writer = Writer(txn)
                for ((region, name), minute), n in counts.items():
                    stats = Stats()
                    stats.add(1.0, n)
                    writer.add((region, NAMESPACE, "TimeToLiveDeletedItemCount", (("TableName", name),)),
                               "Count", minute * 60, stats)
                writer.finish()
            advance_consumer(txn, CONSUMER, cursor)
            return more


# ---------------------------------------------------------------- per-minute figures of tables


def _tables(txn):
    """Every table of every region, parsed."""
    start = b"table/"
    for key, raw in txn.scan("meta", start, b"table0"):
        region = bytes(key[len(start):]).split(b"\0", 1)[0].decode()
        yield decode_entry(region, raw)


def gauges(txn) -> list[tuple[tuple, str, float]]:
    """(series, unit, value) of the per-minute figures of every table, and
    of the account in each region that has a table."""
    out = []
    account: dict[str, list] = {}  # region -> [read, write provisioned, largest read, largest write]
    for table in _tables(txn):
        desc = table.description
        # (a replica whose policy denies replication, REPLICATION_NOT_AUTHORIZED, still holds and serves its items)
        if desc.get("TableStatus") not in (None, "ACTIVE", "UPDATING", "REPLICATION_NOT_AUTHORIZED"):
            continue
        region, name = table.region, table.name
        sums = account.setdefault(region, [0.0, 0.0, 0.0, 0.0])
        dims = (("TableName", name),)
        count, size = read_stats(txn, table.prefix)
        out.append(((region, NAMESPACE, "ItemCount", dims), "Count", float(count)))
        out.append(((region, NAMESPACE, "TableSizeBytes", dims), "Bytes", float(size)))
        if (desc.get("BillingModeSummary") or {}).get("BillingMode") == "PAY_PER_REQUEST":
            continue
        _provisioned(out, sums, region, dims, desc.get("ProvisionedThroughput"))
        for index in desc.get("GlobalSecondaryIndexes") or ():
            _provisioned(out, sums, region, (("GlobalSecondaryIndexName", index["IndexName"]), ("TableName", name)),
                         index.get("ProvisionedThroughput"))
    for region, (reads, writes, top_read, top_write) in account.items():
        for metric, value, unit in (
                ("AccountMaxReads", LIMITS["AccountMaxReadCapacityUnits"], "Count"),
                ("AccountMaxWrites", LIMITS["AccountMaxWriteCapacityUnits"], "Count"),
                ("AccountMaxTableLevelReads", LIMITS["TableMaxReadCapacityUnits"], "Count"),
                ("AccountMaxTableLevelWrites", LIMITS["TableMaxWriteCapacityUnits"], "Count"),
                ("AccountProvisionedReadCapacityUtilization",
                 100.0 * reads / LIMITS["AccountMaxReadCapacityUnits"], "Percent"),
                ("AccountProvisionedWriteCapacityUtilization",
                 100.0 * writes / LIMITS["AccountMaxWriteCapacityUnits"], "Percent"),
                ("MaxProvisionedTableReadCapacityUtilization",
                 100.0 * top_read / LIMITS["TableMaxReadCapacityUnits"], "Percent"),
                ("MaxProvisionedTableWriteCapacityUtilization",
                 100.0 * top_write / LIMITS["TableMaxWriteCapacityUnits"], "Percent")):
            if value:  # DynamoDB sends a metric only when it is not zero
                out.append(((region, NAMESPACE, metric, ()), unit, float(value)))
    return out


def _provisioned(out: list, sums: list, region: str, dims: tuple, throughput: dict | None) -> None:
    """A provisioned table's or GSI's capacity, added to its region's ``sums``."""
    if not throughput:
        return
    for at, member, metric in ((0, "ReadCapacityUnits", "ProvisionedReadCapacityUnits"),
                               (1, "WriteCapacityUnits", "ProvisionedWriteCapacityUnits")):
        value = throughput.get(member)
        if value:
            out.append(((region, NAMESPACE, metric, dims), "Count", float(value)))
            sums[at] += value
            sums[at + 2] = max(sums[at + 2], value)


class TableGauges:
    """Records ItemCount, TableSizeBytes and the provisioned capacity of
    every table once a minute: the worker that claims the minute (in the
    write transaction that records them) does it."""

    __name__ = "metrics_table_gauges"

    def __init__(self, engine, clock: Callable[[], float] = time.time, cold_reads=None) -> None:
        self.engine = engine
        self.clock = clock
        self._done = -1
        #: each gauge's new minute is a key among its series' periods, a page of the data file apart from
        #: the next gauge's: 100 tables' gauges map some 7 MiB a minute that item requests never read, so
        #: they are not kept mapped (``shoal.storage.resident.ColdReads``; None: kept)
        self.cold_reads = cold_reads

    def __call__(self) -> bool:
        minute = int(self.clock() // 60)
        if minute == self._done:
            return False
        if self.cold_reads is not None:
            return self.cold_reads.run(lambda: self._record(minute))
        return self._record(minute)

    def _record(self, minute: int) -> bool:
        with self.engine.write() as txn:
            raw = txn.get("meta", _GAUGES_KEY)
            if raw is not None and _MINUTE.unpack(raw)[0] >= minute:
                self._done = minute
                return False
            from shoal.storage.resident import shed_point

            writer = Writer(txn)
            for n, (series, unit, value) in enumerate(gauges(txn)):
                if n & 15 == 15:
                    shed_point()
                stats = Stats()
                stats.add(value)
                writer.add(series, unit, minute * 60, stats, total=False)
            writer.finish()
            txn.put("meta", _GAUGES_KEY, _MINUTE.pack(minute))
        self._done = minute
        return False


# ---------------------------------------------------------------- a GSI's backfill


class IndexProgress:
    """Records what ``shoal.api.indexes`` reports of each backfill step run
    by this worker's engine: OnlineIndexPercentageProgress (the share of the
    table's items looked at, in percent, 100 when done) and
    OnlineIndexConsumedWriteCapacity (the write units of the index entries
    the step wrote; DynamoDB does not count them in the index's
    ConsumedWriteCapacityUnits).  ``close`` stops listening."""

    def __init__(self, engine, recorder) -> None:
        self.engine = engine
        self.recorder = recorder
        indexes.progress_listeners.append(self)

    def __call__(self, engine, region: str, table: str, index: str, percent: float, units: float) -> None:
        if engine is not self.engine:
            return
        dims = (("GlobalSecondaryIndexName", index), ("TableName", table))
        self.recorder.value(region, "OnlineIndexPercentageProgress", dims, "Count", percent)
        if units:
            self.recorder.value(region, "OnlineIndexConsumedWriteCapacity", dims, "Count", units)

    def close(self) -> None:
        if self in indexes.progress_listeners:
            indexes.progress_listeners.remove(self)
