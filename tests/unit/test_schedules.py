"""Scheduled backups (issue 16, point 4) over a real engine: the schedule's
record, the claim that lets one worker of several take a due backup, SYSTEM
backups with their expiry, and their pruning (the scheduler's clock is
moved, not waited for)."""

from __future__ import annotations

import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, backups, items, jobs, schedules, tables
from shoal.api.catalog import Catalog
from shoal.errors import ShoalError

REGION = "us-east-1"
HOUR = 3600.0


@pytest.fixture
def ctx(lmdb_engine, clock):
    context = Context(REGION, DEFAULT_ACCOUNT, lmdb_engine, Catalog(lmdb_engine), now=clock)
    tables.create_table(context, {
        "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"}]})
    for n in range(30):
        items.put_item(context, {"TableName": "events", "Item": {"user_id": {"S": f"u{n:03d}"}}})
    return context


def system_backups(ctx) -> list[dict]:
    return backups.list_backups(ctx, {"TableName": "events", "BackupType": "SYSTEM"})["BackupSummaries"]


def run(scheduler) -> None:
    scheduler()
    assert jobs.wait_for_jobs(scheduler.engine, 30)


def test_the_next_backup_is_due_exactly_one_period_after_the_last(ctx):
    """The time a backup was taken is kept to the millisecond rounded down: rounded up (as it was), a
    call exactly one period later found the next backup not yet due and passed it over (the test
    below failed so, now and then, when its steps took under half a millisecond)."""
    now = [1_800_000_000.0006]  # rounds up to ...000.001
    schedules.set_schedule(ctx, "events", HOUR, 3 * HOUR)
    scheduler = schedules.BackupScheduler(ctx.engine, ctx.catalog, lambda: now[0])
    run(scheduler)
    assert len(system_backups(ctx)) == 1
    now[0] += HOUR
    run(scheduler)
    assert len(system_backups(ctx)) == 2


def test_a_schedule_takes_system_backups_every_period_and_prunes_them(ctx, clock):
    schedules.set_schedule(ctx, "events", HOUR, 3 * HOUR)
    scheduler = schedules.BackupScheduler(ctx.engine, ctx.catalog, clock)
    run(scheduler)  # the first backup is due at once
    taken = system_backups(ctx)
    assert [b["BackupName"] for b in taken] == ["events$ScheduledBackup"]
    assert taken[0]["BackupStatus"] == "AVAILABLE" and taken[0]["BackupType"] == "SYSTEM"
    assert backups.list_backups(ctx, {"TableName": "events"})["BackupSummaries"] == []  # not USER
    run(scheduler)
    assert len(system_backups(ctx)) == 1  # not due again before the period
    for hours in range(1, 6):
        clock.offset = hours * HOUR + 1
        run(scheduler)
    kept = system_backups(ctx)
    # Backups of hours 0..5; those older than 3 hours (hours 0, 1 and 2) were pruned.
    # (The message says what was kept and the schedule's record; see the test above for why it failed.)
    assert len(kept) == 3, ([(b["BackupCreationDateTime"], b["BackupStatus"]) for b in kept], clock(),
                            schedules.list_schedules(ctx.engine))
    assert all(b["BackupCreationDateTime"] > clock() - 3 * HOUR for b in kept)
    # Restorable, and the restore holds the table's items.
    backups.restore_table_from_backup(ctx, {"BackupArn": kept[-1]["BackupArn"], "TargetTableName": "copy"})
    assert jobs.wait_for_jobs(ctx.engine, 30)
    schedule, = schedules.list_schedules(ctx.engine)
    assert schedule["last_arn"] == kept[-1]["BackupArn"] and schedule["last_error"] is None
    with ctx.engine.read() as txn:
        assert ctx.catalog.get(txn, REGION, "copy").description["TableStatus"] == "ACTIVE"


def test_only_one_of_several_workers_takes_a_due_backup(ctx, clock):
    schedules.set_schedule(ctx, "events", HOUR, HOUR)
    workers = [schedules.BackupScheduler(ctx.engine, Catalog(ctx.engine), clock) for _ in range(3)]
    for worker in workers:
        worker()
    assert jobs.wait_for_jobs(ctx.engine, 30)
    assert len(system_backups(ctx)) == 1


def test_removed_schedule_takes_no_more_backups_and_its_backups_still_expire(ctx, clock):
    schedules.set_schedule(ctx, "events", HOUR, 2 * HOUR)
    scheduler = schedules.BackupScheduler(ctx.engine, ctx.catalog, clock)
    run(scheduler)
    assert schedules.remove_schedule(ctx, "events") and not schedules.remove_schedule(ctx, "events")
    clock.offset = HOUR + 1
    run(scheduler)
    assert len(system_backups(ctx)) == 1
    clock.offset = 2 * HOUR + 1
    run(scheduler)
    assert system_backups(ctx) == []


def test_a_deleted_tables_system_backup_is_pruned_after_35_days(ctx, clock):
    from shoal.api import pitr

    pitr.update_continuous_backups(ctx, {"TableName": "events",
                                         "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})
    tables.delete_table(ctx, {"TableName": "events"})
    assert [b["BackupName"] for b in system_backups(ctx)] == ["events$DeletedTableBackup"]
    with ctx.engine.read() as txn:
        assert any(True for _ in txn.scan("meta", b"backup/", b"backup0"))
    clock.offset = 35 * 86400 + 1
    assert not schedules.prune_expired(ctx.engine, clock())
    with ctx.engine.read() as txn:
        assert not any(True for _ in txn.scan("meta", b"backup/", b"backup0"))


def test_schedule_errors(ctx, clock):
    with pytest.raises(ShoalError, match="Table not found: nothing"):
        schedules.set_schedule(ctx, "nothing", HOUR, HOUR)
    with pytest.raises(ShoalError, match="at least 60 seconds"):
        schedules.set_schedule(ctx, "events", 1, HOUR)
    with pytest.raises(ShoalError, match="at least one period and at most 35 days"):
        schedules.set_schedule(ctx, "events", 2 * HOUR, HOUR)
    with pytest.raises(ShoalError, match="at most 35 days"):
        schedules.set_schedule(ctx, "events", HOUR, 36 * 86400)


def test_a_due_backup_of_a_deleted_table_records_the_error(ctx, clock):
    schedules.set_schedule(ctx, "events", HOUR, HOUR)
    tables.delete_table(ctx, {"TableName": "events"})
    run(schedules.BackupScheduler(ctx.engine, ctx.catalog, clock))
    schedule, = schedules.list_schedules(ctx.engine)
    assert schedule["last_error"] == "Table not found: events" and schedule["job"] is None
