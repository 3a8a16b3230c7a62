"""A table whose KMS key stays inaccessible: archived after seven days.

DynamoDB's API Reference: a table whose customer managed KMS key cannot be
used is INACCESSIBLE_ENCRYPTION_CREDENTIALS, and SSEDescription's
InaccessibleEncryptionDateTime says since when; "DynamoDB will initiate the
table archival process when table's KMS key remains inaccessible for more
than seven days from this date".  The table is then ARCHIVING ("Operations
are not allowed until archival is complete"), then ARCHIVED, with an
ArchivalSummary: ArchivalDateTime ("when table archival was initiated"),
ArchivalReason INACCESSIBLE_ENCRYPTION_CREDENTIALS ("An On-Demand backup was
created at the archival time") and ArchivalBackupArn ("If you wish to
restore this backup to the same table name, you will need to delete the
original table").  A key usable again before the deadline clears the date
(``control.check_encryption_keys``), and nothing happens.

Here, driven by the region's KMS key check (``control.check_encryption_keys``,
every ``control.KEY_CHECK_S``, in the replication thread or the
``KeyWatcher`` of a region without peers):

* ``begin``: a regional table inaccessible for ``CONFIG.archival_s`` is
  ARCHIVING, with ArchivalDateTime and ArchivalReason (one transaction).
  A replica of a global table is first removed from its replication group
  after ``CONFIG.replica_removal_s`` (``control.remove_inaccessible_replica``),
  which makes it regional long before.
* ``finish``: ``CONFIG.archiving_s`` later (at once by default: the next
  check), the backup is taken through the backup machinery
  (``backups.create_backup``: a SYSTEM backup, which DynamoDB keeps 35 days
  and does not let users delete, as it does the backups it makes itself),
  then one transaction makes the table ARCHIVED with the backup's ARN,
  forgets its point-in-time recovery and TTL settings, records the change
  in the table's change log and purges its items, index entries and
  counters (the drop job DeleteTable uses: its first chunk in the same
  transaction, the rest in the background).  A restart between the two
  finds the table ARCHIVING and takes the backup again (a half-made one is
  dropped by the backups' own recovery).

An archived (or archiving) table has no data: item requests answer
ResourceNotFoundException as for a table still being created
(``Catalog.require``), the backup and recovery operations that name it
TableNotFoundException (``tables.source_table``; DescribeContinuousBackups
on an ARCHIVED table was reported answering so), and changes to it
ResourceInUseException (``refusal``), except DeleteTable of an ARCHIVED
table.  DescribeTable, ListTables and the tag operations answer as for any
table.  DynamoDB documents no wording for these refusals: the words are
Shoal's.

The three durations are settable for tests (``SHOAL_KMS_ARCHIVAL_S``,
``SHOAL_KMS_REPLICA_REMOVAL_S``, ``SHOAL_KMS_ARCHIVING_S``), or the server's
clock moved (``SHOAL_TEST_CLOCK_FILE``).
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.api.catalog import INACCESSIBLE, STATS_KEY, update_description
from shoal.api.changelog import record_table_change
from shoal.errors import ResourceInUseException
from shoal.settings import from_env

ARCHIVING = "ARCHIVING"
ARCHIVED = "ARCHIVED"
#: ArchivalSummary's ArchivalReason: "the only possible value".
REASON = INACCESSIBLE


@dataclass(frozen=True)
class ArchivalConfig:
    """How long a KMS key may stay inaccessible before its table is
    archived (DynamoDB: seven days) and before a replica of a global table
    leaves its replication group (20 hours); and how long an archival lasts
    at least (0: the next key check takes the backup)."""

    archival_s: float = 7 * 86400.0
    replica_removal_s: float = 20 * 3600.0
    archiving_s: float = 0.0

    @classmethod
    def from_env(cls) -> "ArchivalConfig":
        return from_env(cls, {
            "archival_s": "SHOAL_KMS_ARCHIVAL_S",
            "replica_removal_s": "SHOAL_KMS_REPLICA_REMOVAL_S",
            "archiving_s": "SHOAL_KMS_ARCHIVING_S",
        })


CONFIG = ArchivalConfig.from_env()


def is_archived(desc: dict) -> bool:
    """Whether a table is ARCHIVING or ARCHIVED: its data is gone (or going)."""
    return desc.get("TableStatus") in (ARCHIVING, ARCHIVED)


def refusal(table) -> ResourceInUseException:
    """The answer to a change of an ARCHIVING or ARCHIVED table (UpdateTable,
    UpdateTimeToLive, UpdateContributorInsights; DeleteTable while ARCHIVING)."""
    if table.description.get("TableStatus") == ARCHIVING:
        return ResourceInUseException(
            f"Attempt to change a resource which is still in use: Table is being archived: {table.name}")
    return ResourceInUseException(
        f"Attempt to change a resource which is still in use: Table is archived: {table.name}; "
        f"it can only be deleted, or restored from its backup {archival_backup(table.description)}")


def archival_backup(desc: dict) -> str | None:
    return (desc.get("ArchivalSummary") or {}).get("ArchivalBackupArn")


def archival_due(desc: dict, now: float, config: ArchivalConfig | None = None) -> bool:
    """Whether an INACCESSIBLE_ENCRYPTION_CREDENTIALS table's key has been
    inaccessible long enough for its archival to begin."""
    since = (desc.get("SSEDescription") or {}).get("InaccessibleEncryptionDateTime")
    return since is not None and now - since >= (config or CONFIG).archival_s


def backup_due(desc: dict, now: float, config: ArchivalConfig | None = None) -> bool:
    """Whether an ARCHIVING table's backup is to be taken now."""
    began = (desc.get("ArchivalSummary") or {}).get("ArchivalDateTime", 0.0)
    return now - began >= (config or CONFIG).archiving_s


def begin(engine, catalog, region: str, table, now: float) -> bool:
    """Make ``table`` ARCHIVING (if it is still that table, still
    inaccessible); True if it did."""
    began = []

    def change(desc: dict) -> None:
        if desc.get("TableStatus") != INACCESSIBLE:
            return  # its key came back meanwhile, or another worker began
        desc["TableStatus"] = ARCHIVING
        desc["ArchivalSummary"] = {"ArchivalDateTime": round(now, 3), "ArchivalReason": REASON}
        began.append(True)

    with engine.write() as txn:
        updated = update_description(txn, region, table.name, table.table_id, change, catalog.keys)
        if updated is not None and began:
            record_table_change(txn, updated, "ArchiveTable", {"TableStatus": ARCHIVING}, round(now, 3))
    return bool(began)


def finish(engine, catalog, region: str, table, now: float) -> bool:
    """Back ``table`` (ARCHIVING) up, then make it ARCHIVED without its data;
    True if it did."""
    from shoal.api import Context, backups, pitr, tables
    from shoal.api import indexes as index_store
    from shoal.api.ttl import ttl_key

    ctx = Context(region, table.account, engine, catalog, None, lambda: now)
    taken = backups.create_backup(ctx, {"TableName": table.name, "BackupName": f"{table.name}$ArchivalBackup"},
                                  backup_type="SYSTEM", archival=True)["BackupDetails"]
    done = []

    def change(desc: dict) -> None:
        if desc.get("TableStatus") != ARCHIVING:
            return
        desc["TableStatus"] = ARCHIVED
        desc["ArchivalSummary"] = {**(desc.get("ArchivalSummary") or {}), "ArchivalBackupArn": taken["BackupArn"]}
        done.append(True)

    with engine.write() as txn:
        updated = update_description(txn, region, table.name, table.table_id, change, catalog.keys)
        if updated is None or not done:  # deleted or re-created meanwhile: the backup stays, as a SYSTEM one
            return False
        pitr.forget(txn, updated)
        txn.delete("meta", ttl_key(updated.prefix))  # nothing left to expire
        txn.delete("meta", STATS_KEY(updated.prefix))
        record_table_change(txn, updated, "ArchiveTable",
                            {"TableStatus": ARCHIVED, "ArchivalSummary": updated.description["ArchivalSummary"]},
                            round(now, 3))
        job_key, job = index_store.schedule_drop(txn, updated, tables.data_ranges(updated))
        index_store.purge_step(txn, job_key, job, index_store.DROP_CHUNK)
    return True
