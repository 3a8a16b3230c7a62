"""The offline tools and backup schedules (issue 16, points 4 and 5), as
processes: ``shoal backup``, ``shoal restore``, ``shoal export`` and ``shoal
import`` on a data directory a real ``shoal serve`` wrote and then left, the
result read back through that server; their refusal while a server serves the
directory (and the server's while a tool works); and a schedule that the
server turns into SYSTEM backups and prunes, its clock moved by
SHOAL_TEST_CLOCK_FILE rather than waited for."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import pytest

from shoal.storage.datadir import hold_exclusively
from tests.conftest import make_client, wait_for
from tests.shoal_process import ShoalProcess

HOUR = 3600


def shoal(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "shoal", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def every_type(n: int) -> dict:
    return {"user_id": {"S": f"u{n % 4}"}, "ts": {"N": str(1700000000000 + n)}, "s": {"S": "é\u2603"},
            "n": {"N": "-12.125"}, "b": {"B": bytes([n, 0, 255])}, "yes": {"BOOL": True}, "nil": {"NULL": True},
            "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"\x01", b"\x02"]},
            "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"k": {"BOOL": False}}}]}, "m": {"M": {"deep": {"L": []}}}}


def scan(ddb, table: str) -> list:
    return sorted(ddb.scan(TableName=table, ConsistentRead=True)["Items"],
                  key=lambda i: (i["user_id"]["S"], int(i["ts"]["N"])))


def make_table(ddb, name: str = "events", pitr: bool = True) -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"},
                                {"AttributeName": "ts", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                                           {"AttributeName": "ts", "AttributeType": "N"}])
    if pitr:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})


def test_backup_restore_export_import_round_trip_offline(tmp_path):
    data = str(tmp_path / "data")
    server = ShoalProcess(data, "--workers", "1").start()
    ddb = make_client(server.url)
    make_table(ddb)
    make_table(ddb, "plain", pitr=False)
    for n in range(40):
        ddb.put_item(TableName="events", Item=every_type(n))
        ddb.put_item(TableName="plain", Item=every_type(n))
    original = scan(ddb, "events")
    time.sleep(0.05)
    before = time.time()
    time.sleep(0.05)
    for n in range(10):  # the accident the point-in-time restore undoes
        ddb.delete_item(TableName="events", Key={"user_id": {"S": f"u{n % 4}"}, "ts": {"N": str(1700000000000 + n)}})
    time.sleep(1.1)
    assert server.stop() == 0

    made = shoal("backup", "events", "--data-dir", data, "--name", "offline")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("Backed up events: 30 items")
    arn = made.stdout.split("BackupArn: ")[1].strip()
    done = shoal("restore", "--backup-arn", arn, "--target", "from_backup", "--data-dir", data)
    assert done.returncode == 0 and "30 items" in done.stdout, done.stderr
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before)) + f".{int(before * 1000) % 1000:03d}Z"
    done = shoal("restore", "--from-table", "events", "--at", at, "--target", "before_storm", "--data-dir", data)
    assert done.returncode == 0 and "40 items" in done.stdout, done.stderr
    for table, fmt in (("events", "dynamodb-json"), ("plain", "ion")):  # with and without PITR
        done = shoal("export", table, "--data-dir", data, "--format", fmt, "--out", str(tmp_path / fmt))
        assert done.returncode == 0, done.stderr
        assert "Manifest: " in done.stdout and done.stderr == ""
        done = shoal("import", "--data-dir", data, "--from", str(tmp_path / fmt), "--format", fmt,
                     "--table", f"imported_{table}", "--key", "user_id:S,ts:N")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"Imported {30 if table == 'events' else 40} items into imported_{table}")

    server = ShoalProcess(data, "--workers", "1").start()
    try:
        ddb = make_client(server.url)
        now = scan(ddb, "events")
        assert len(now) == 30
        assert scan(ddb, "from_backup") == now
        assert scan(ddb, "imported_events") == now
        assert scan(ddb, "before_storm") == original
        assert scan(ddb, "imported_plain") == scan(ddb, "plain") == original
        backups = ddb.list_backups(TableName="events")["BackupSummaries"]
        assert [b["BackupName"] for b in backups] == ["offline"]
        assert len(ddb.list_exports()["ExportSummaries"]) == 1  # the table with recovery on, through the operation
    finally:
        assert server.stop() == 0


def test_tools_refuse_while_a_server_serves_and_the_server_while_a_tool_works(tmp_path):
    data = str(tmp_path / "data")
    server = ShoalProcess(data, "--workers", "2").start()
    try:
        make_table(make_client(server.url))
        for args in (("backup", "events"), ("restore", "--backup-arn", "arn:x", "--target", "copy"),
                     ("export", "events", "--format", "parquet", "--out", str(tmp_path / "out")),
                     ("import", "--from", str(tmp_path), "--format", "csv", "--table", "copy", "--key", "k:S")):
            done = shoal(*args, "--data-dir", data)
            assert done.returncode == 1
            assert done.stderr.startswith(f"shoal: data directory {data} is in use by a running shoal serve: "
                                          "stop the server first"), done.stderr
            assert done.stderr.count("\n") == 1 and done.stdout == ""
        # What runs beside a server still does.
        assert shoal("status", "--data-dir", data).returncode == 0
        assert shoal("iam", "list-users", "--data-dir", data).returncode == 0
        scheduled = shoal("backup", "schedule", "events", "--every", "1h", "--keep", "1d", "--data-dir", data)
        assert scheduled.returncode == 0, scheduled.stderr
    finally:
        assert server.stop() == 0

    lock = hold_exclusively(data, "shoal export")
    try:
        refused = subprocess.run([sys.executable, "-m", "shoal", "serve", "--port", "0", "--data-dir", data],
                                 capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1
        assert refused.stderr == (f"shoal: data directory {data} is in use by shoal export (process {os.getpid()}); "
                                  "start the server once it has finished\n")
        assert shoal("backup", "events", "--data-dir", data).stderr.startswith(
            f"shoal: data directory {data} is in use by shoal export (process {os.getpid()})")
    finally:
        os.close(lock)


def test_a_schedule_makes_system_backups_and_prunes_them(tmp_path, monkeypatch):
    clock = tmp_path / "clock"
    clock.write_text("0")
    monkeypatch.setenv("SHOAL_TEST_CLOCK_FILE", str(clock))
    data = str(tmp_path / "data")
    server = ShoalProcess(data, "--workers", "2").start()
    try:
        ddb = make_client(server.url)
        make_table(ddb, pitr=False)
        for n in range(20):
            ddb.put_item(TableName="events", Item=every_type(n))
        done = shoal("backup", "schedule", "events", "--every", "1h", "--keep", "2h", "--data-dir", data)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("events: a backup every 1h, each kept 2h; next at once")

        def system(count):
            found = ddb.list_backups(TableName="events", BackupType="SYSTEM")["BackupSummaries"]
            return found if len(found) == count and all(b["BackupStatus"] == "AVAILABLE" for b in found) else None

        first, = wait_for(lambda: system(1))
        assert first["BackupName"] == "events$ScheduledBackup" and first["BackupType"] == "SYSTEM"
        assert first["BackupArn"].startswith(
            "arn:aws:dynamodb:us-east-1:000000000000:table/events/backup/")
        assert ddb.list_backups(TableName="events")["BackupSummaries"] == []  # USER, the default
        clock.write_text(str(HOUR + 5))
        wait_for(lambda: system(2))
        clock.write_text(str(2 * HOUR + 10))  # a third backup, and the first is 2 hours old: pruned

        def pruned():
            found = system(2)
            return found if found and first["BackupArn"] not in [b["BackupArn"] for b in found] else None

        kept = wait_for(pruned)
        with pytest.raises(Exception, match="not allowed to delete the system backup"):
            ddb.delete_backup(BackupArn=kept[0]["BackupArn"])
        ddb.restore_table_from_backup(BackupArn=kept[-1]["BackupArn"], TargetTableName="restored")
        wait_for(lambda: ddb.describe_table(TableName="restored")["Table"]["TableStatus"] == "ACTIVE")
        assert scan(ddb, "restored") == scan(ddb, "events")
        listed = shoal("backup", "schedule", "--list", "--data-dir", data)
        assert listed.returncode == 0 and f"last {kept[-1]['BackupArn']}" in listed.stdout
        assert shoal("backup", "schedule", "events", "--remove", "--data-dir", data).returncode == 0
        assert "no backup schedules" in shoal("backup", "schedule", "--list", "--data-dir", data).stdout
    finally:
        assert server.stop() == 0


def test_schedule_and_tool_mistakes_are_one_line(tmp_path):
    data = str(tmp_path / "data")
    for args, message in (
            (("backup", "schedule", "events", "--every", "1h"), "give both --every and --keep"),
            (("backup", "schedule", "events", "--every", "soon", "--keep", "1d"), "expected a number and s, m, h"),
            (("restore", "--target", "copy"), "give either --backup-arn, or --from-table and --at"),
            (("backup", "events"), "does not exist")):
        done = shoal(*args, "--data-dir", data)
        assert done.returncode in (1, 2) and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
