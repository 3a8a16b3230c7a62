"""Point-in-time recovery: UpdateContinuousBackups, DescribeContinuousBackups
and RestoreTableToPointInTime.

Every change of every item is already in the change log with the item's
image before and after it (``shoal.api.changelog``), so point-in-time
recovery needs no copies of its own.  Switching it on for a table keeps the
log's records for the table's recovery period (``changelog.retain_changes``:
the consumer ``pitr`` holds records by age, as long as the longest period of
any table asks), and a restore to time T reads, in one read transaction:

* the table as it is now, at the log's head H, and
* the records of the table after P (the last position written at or before
  T, ``changelog.position_at``) up to H: for each item they touch, the image
  *before* the first of them is the item as it was at P (absent if None).

The restored table is the current items with those keys replaced by their
images at P: the cost of a restore is a read of the table plus the changes
made since T, whatever the length of the window, and nothing is paid while
no restore runs beyond keeping the records (the log is written anyway).

The setting lives in ``meta`` under the table's prefix (``pitr/`` + prefix:
enabled since when, for how many days), so DeleteTable's purge forgets it;
a table deleted while its recovery is on leaves a SYSTEM backup of its items
as they were (``backups.keep_deleted_table``), restorable with
RestoreTableFromBackup, as DynamoDB keeps one.

The schema of the restored table is the source's as it is at the restore
(its indexes, billing), with the request's overrides applied; an index
created or deleted after T is therefore present or absent as it is now.
"""

from __future__ import annotations

import orjson

from shoal.api import backups, tables
from shoal.api.changelog import (
    LoadedInBulk,
    head_position,
    oldest_change,
    position_at,
    read_item_befores,
    record_table_change,
    retain_changes,
    unregister_consumer,
)
from shoal.api.catalog import table_arn
from shoal.api.common import storage_key, successor
from shoal.api.writepath import stored_json, stored_size
from shoal.errors import (
    ContinuousBackupsUnavailableException,
    InvalidRestoreTimeException,
    PointInTimeRecoveryUnavailableException,
    TableAlreadyExistsException,
    TableNotFoundException,
    ValidationException,
)

CONSUMER = "pitr"
SETTING_PREFIX = b"pitr/"
DEFAULT_DAYS = 35
#: How far LatestRestorableDateTime stays behind now: a write stamped just
#: before it has committed by then (DynamoDB's lags about five minutes).
LATEST_LAG_S = 1.0


def setting_key(prefix: bytes) -> bytes:
    """The ``meta`` key of a table's setting (under the table's prefix)."""
    return SETTING_PREFIX + prefix


def setting(txn, table) -> dict | None:
    """{"since": seconds, "days": N} while the table's recovery is on, else None."""
    raw = txn.get("meta", setting_key(table.prefix))
    return None if raw is None else orjson.loads(raw)


def _retain(txn) -> None:
    """Keep the log for the longest recovery period any table has (or stop)."""
    longest = 0
    for _, raw in txn.scan("meta", SETTING_PREFIX, successor(SETTING_PREFIX)):
        longest = max(longest, orjson.loads(raw)["days"])
    if longest:
        retain_changes(txn, CONSUMER, longest * 86400.0)
    else:
        unregister_consumer(txn, CONSUMER)


def forget(txn, table) -> None:
    """Drop a deleted table's setting at once (the rest of the table is
    purged in the background) and recompute the retention without it."""
    if txn.delete("meta", setting_key(table.prefix)):
        _retain(txn)


def window(txn, current: dict, now: float) -> tuple[float, float]:
    """(earliest, latest) restorable time, in epoch seconds: from when recovery
    was switched on, the period, and the oldest record the log still holds."""
    earliest = max(current["since"], now - current["days"] * 86400)
    oldest = oldest_change(txn)
    if oldest is not None and oldest[0] > 1:  # records before it were pruned
        earliest = max(earliest, oldest[1] / 1000)
    latest = max(now - LATEST_LAG_S, earliest)
    return round(earliest, 3), round(latest, 3)


def _description(txn, table, now: float) -> dict:
    """ContinuousBackupsDescription."""
    current = setting(txn, table)
    if current is None:
        pitr = {"PointInTimeRecoveryStatus": "DISABLED"}
    else:
        earliest, latest = window(txn, current, now)
        pitr = {"PointInTimeRecoveryStatus": "ENABLED", "RecoveryPeriodInDays": current["days"],
                "EarliestRestorableDateTime": earliest, "LatestRestorableDateTime": latest}
    return {"ContinuousBackupsStatus": "ENABLED", "PointInTimeRecoveryDescription": pitr}


# ---------------------------------------------------------------- UpdateContinuousBackups, DescribeContinuousBackups


def describe_continuous_backups(ctx, request: dict) -> dict:
    with ctx.engine.read() as txn:
        table = tables.source_table(ctx, txn, request["TableName"])
        return {"ContinuousBackupsDescription": _description(txn, table, ctx.now())}


def update_continuous_backups(ctx, request: dict) -> dict:
    spec = request["PointInTimeRecoverySpecification"]
    enabled = spec["PointInTimeRecoveryEnabled"]
    days = spec.get("RecoveryPeriodInDays")
    if days is not None and not enabled:
        raise ValidationException(
            "Invalid Request: Cannot specify RecoveryPeriodInDays when disabling point-in-time recovery.")
    now = ctx.now()
    with ctx.engine.write() as txn:
        table = tables.source_table(ctx, txn, request["TableName"])
        if enabled and table.description.get("TableStatus") == "CREATING":
            # A restore or an import still loads it, in bulk, without a change
            # record per item (``writepath.BulkLoad``): the window must begin
            # after the load.  DynamoDB answers so while a new table's backups
            # are being set up.
            raise ContinuousBackupsUnavailableException(
                f"Backups are being enabled for the table: {table.name}. Please retry later")
        current = setting(txn, table)
        key = setting_key(table.prefix)
        if enabled:
            # Switched on now, or kept on: a longer period does not reach back
            # past the window as it stands (DynamoDB's grows as days pass).
            since = round(now if current is None else max(current["since"], now - current["days"] * 86400), 3)
            days = days if days is not None else DEFAULT_DAYS
            txn.put("meta", key, orjson.dumps({"since": since, "days": days}))
        else:
            txn.delete("meta", key)
        _retain(txn)
        record_table_change(txn, table, "UpdateContinuousBackups",
                            {"PointInTimeRecoveryEnabled": enabled, "RecoveryPeriodInDays": days}, now)
        return {"ContinuousBackupsDescription": _description(txn, table, now)}


# ---------------------------------------------------------------- RestoreTableToPointInTime


def restore_table_to_point_in_time(ctx, request: dict) -> dict:
    """A new table holding the source's items as they were at the restore time."""
    by_name, by_arn = request.get("SourceTableName"), request.get("SourceTableArn")
    if by_name is not None and by_arn is not None:
        raise ValidationException("Must provide exactly one of: sourceTableArn, sourceTableName")
    if by_name is None and by_arn is None:
        raise ValidationException("The parameter 'TableName' is required but was not present in the request")
    use_latest = request.get("UseLatestRestorableTime")
    when = request.get("RestoreDateTime")
    if when is not None and use_latest:
        raise ValidationException(
            "Invalid Request: Both RestoreDateTime and UseLatestRestorableTime cannot be set for point-in-time "
            "restore request. Please specify either RestoreDateTime time or UseLatestRestorableTime")
    if when is None and not use_latest:
        raise ValidationException("Invalid Request: Either one of RestoreDateTime or UseLatestRestorableTime "
                                  "must be specified, but not both")
    target = request["TargetTableName"]
    tables.check_table_name(target)
    now = ctx.now()
    # One read transaction: the items read now and the records undone are one
    # state of the log, whatever is written meanwhile.
    with backups.RestoreReader(ctx.engine) as reader:
        txn = reader.txn
        source = _source_for_restore(ctx, txn, by_name, by_arn)
        current = setting(txn, source)
        if current is None:
            raise PointInTimeRecoveryUnavailableException(
                f"Point in time recovery is not enabled for table '{source.name}'")
        earliest, latest = window(txn, current, now)
        at = latest if use_latest else backups.epoch_seconds(when)
        if not earliest <= at <= latest:
            raise InvalidRestoreTimeException(
                f"RestoreDateTime '{backups.iso_time(at)}' must be within EarliestRestorableDateTime '{backups.iso_time(earliest)}' "
                f"and LatestRestorableDateTime '{backups.iso_time(latest)}'")
        if ctx.catalog.get(txn, ctx.region, target) is not None:
            raise TableAlreadyExistsException(f"Table already exists: {target}")
        items = stored_items_at(txn, source, position_at(txn, int(at * 1000)))
        summary = {"SourceTableArn": table_arn(ctx.region, ctx.account, source.name), "RestoreDateTime": at}
        return backups.load_restored_table(ctx, backups.restore_request(source.description, target, request),
                                           summary, items, reader)


def _source_for_restore(ctx, txn, by_name, by_arn):
    if by_arn is not None:
        region, account, name = tables.parse_table_arn(by_arn)
        table = ctx.catalog.get(txn, ctx.region, name) if (region, account) == (ctx.region, ctx.account) else None
        if table is None:
            raise TableNotFoundException(f"Table not found: {by_arn}")
        return table
    tables.check_table_name(by_name, "sourceTableName")
    table = ctx.catalog.get(txn, ctx.region, by_name)
    if table is None:
        raise TableNotFoundException(f"Table not found: {by_name}")
    return table


def items_at(txn, table, position: int):
    """The items of ``table`` as they were at log ``position``, wire-form
    dicts (``stored_items_at``, decoded).  The log is read at the call."""
    return (orjson.loads(item_json) for item_json, _ in stored_items_at(txn, table, position))


def stored_items_at(txn, table, position: int):
    """(item JSON, item size) of every item of ``table`` as it was at log
    ``position``: the items now (at the head, in ``txn``), with every item
    changed after ``position`` put back as it was before its first change
    since.  In the table's key order, then the items that no longer exist.
    An unchanged item (nearly all of them) is its stored bytes and stored
    size as they are, neither decoded nor measured again; a changed one's
    size is None (a restore measures what it writes anyway; ``item_size``)."""
    return _items_with(txn, table, images_before(txn, table, position))


def images_before(txn, table, position: int) -> dict[bytes, bytes | None]:
    """The image (JSON, None if absent) of every item of ``table`` changed
    after log ``position``, as it was at ``position``, by storage key.

    Per change only the keys and the image before are sliced out of the
    record (``read_item_befores``), not decoded; the images stay JSON bytes,
    which the garbage collector does not walk.  A key changed again later is
    recognised by its keys' bytes before any storage key is computed."""
    before: dict[bytes, bytes | None] = {}
    if position >= head_position(txn):
        return before
    seen: set[bytes] = set()
    try:
        for keys_json, old in read_item_befores(txn, table.table_id, position):
            if keys_json in seen:
                continue
            seen.add(keys_json)
            skey = storage_key(table, orjson.loads(keys_json))
            if skey not in before:  # the same key may be spelled two ways ("1" and "1.0")
                before[skey] = old
    except LoadedInBulk:
        # A restore's or an import's items have no records of their own.
        # Recovery cannot be switched on while a table is CREATING, so its
        # window never reaches back to its load; this guards a log that says
        # otherwise.
        raise InvalidRestoreTimeException(
            f"Table '{table.name}' was loaded in bulk after the restore time; "
            "it cannot be restored to before its load completed") from None
    return before


def _items_with(txn, table, before: dict[bytes, bytes | None]):
    for skey, raw in txn.scan("items", table.prefix, successor(table.prefix)):
        if before:
            skey = bytes(skey)
            if skey in before:
                old = before.pop(skey)
                if old is not None:
                    yield old, None
                continue
        yield stored_json(raw), stored_size(raw)
    for skey in sorted(before):  # deleted since: as they were
        old = before[skey]
        if old is not None:
            yield old, None


OPERATIONS = {
    "UpdateContinuousBackups": update_continuous_backups,
    "DescribeContinuousBackups": describe_continuous_backups,
    "RestoreTableToPointInTime": restore_table_to_point_in_time,
}
