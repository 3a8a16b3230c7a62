"""Point-in-time recovery through boto3 against a real ``shoal serve``
(issue 16, points 2 and 7)."""

from __future__ import annotations

import threading
import time

import botocore.exceptions
import pytest

from tests.conftest import make_client
from tests.server.test_backups import wait_active
from tests.shoal_process import ShoalProcess

LAG_S = 1.2  # LatestRestorableDateTime is a second behind now


def make_events(ddb, name="events"):
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"},
                              {"AttributeName": "content_id", "AttributeType": "S"},
                              {"AttributeName": "kind", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_content", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                               {"AttributeName": "ts", "KeyType": "RANGE"}]}],
        LocalSecondaryIndexes=[{"IndexName": "by_kind", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                                              {"AttributeName": "kind", "KeyType": "RANGE"}]}])
    ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": True})


def event(user: str, ts: int, kind: str = "play", content: str = "c1", **extra) -> dict:
    return {"user_id": {"S": user}, "ts": {"N": str(ts)}, "kind": {"S": kind}, "content_id": {"S": content},
            **extra}


def views(ddb, table: str) -> tuple:
    """The table's items and what its two indexes answer."""
    scanned = sorted(ddb.scan(TableName=table, ConsistentRead=True)["Items"],
                     key=lambda i: (i["user_id"]["S"], int(i["ts"]["N"])))
    by_content = [ddb.query(TableName=table, IndexName="by_content", KeyConditionExpression="content_id = :c",
                            ExpressionAttributeValues={":c": {"S": c}})["Items"] for c in ("c1", "c2")]
    by_kind = [ddb.query(TableName=table, IndexName="by_kind", KeyConditionExpression="user_id = :u",
                         ExpressionAttributeValues={":u": {"S": u}})["Items"] for u in ("u0", "u1", "u2")]
    return scanned, by_content, by_kind


def mark() -> float:
    """A restore time between the writes before and after it."""
    time.sleep(0.05)
    at = time.time()
    time.sleep(0.05)
    return at


def test_restore_reproduces_the_table_at_a_second(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOAL_TTL_SWEEP_INTERVAL_S", "0.2")  # a TTL pass at most every 60 s by default
    server = ShoalProcess(tmp_path / "data").start()
    try:
        ddb = make_client(server.url)
        make_events(ddb)
        ddb.update_time_to_live(TableName="events",
                                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
        for n in range(20):
            ddb.put_item(TableName="events", Item=event(f"u{n % 3}", n, ("play", "pause", "seek")[n % 3]))
        # Two events expire by time to live after the restore point: they are written with an
        # expiry an hour away and made expired after it.  (An expiry a second away, as this test
        # had, could pass before the restore point on a loaded machine, and the sweep delete them
        # between ``seen`` and ``at``.)
        later = str(int(time.time()) + 3600)
        ddb.put_item(TableName="events", Item=event("u0", 100, "stop", "c2", expires={"N": later}))
        ddb.put_item(TableName="events", Item=event("u1", 101, "stop", "c2", expires={"N": later}))
        seen = views(ddb, "events")
        at = mark()
        # A delete storm, updates, new events; then the time-to-live sweep.
        for n in range(0, 20, 2):
            ddb.delete_item(TableName="events", Key={"user_id": {"S": f"u{n % 3}"}, "ts": {"N": str(n)}})
        ddb.update_item(TableName="events", Key={"user_id": {"S": "u1"}, "ts": {"N": "1"}},
                        UpdateExpression="SET content_id = :c, kind = :k",
                        ExpressionAttributeValues={":c": {"S": "c2"}, ":k": {"S": "rating"}})
        ddb.put_item(TableName="events", Item=event("u2", 500, "search", "c2"))
        for user, ts in (("u0", 100), ("u1", 101)):
            ddb.update_item(TableName="events", Key={"user_id": {"S": user}, "ts": {"N": str(ts)}},
                            UpdateExpression="SET expires = :past",
                            ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
        deadline = time.time() + 15
        while len(ddb.scan(TableName="events", ConsistentRead=True)["Items"]) != 22 - 10 + 1 - 2:
            assert time.time() < deadline, "the time-to-live sweep did not delete the expired events"
            time.sleep(0.2)
        now_seen = views(ddb, "events")
        time.sleep(LAG_S)

        restored = ddb.restore_table_to_point_in_time(
            SourceTableName="events", TargetTableName="events_at", RestoreDateTime=at)["TableDescription"]
        assert restored["TableStatus"] == "CREATING" and restored["RestoreSummary"]["RestoreInProgress"] is True
        summary = wait_active(ddb, "events_at")["RestoreSummary"]
        assert summary["RestoreInProgress"] is False
        assert summary["SourceTableArn"] == "arn:aws:dynamodb:us-east-1:000000000000:table/events"
        assert abs(summary["RestoreDateTime"].timestamp() - at) < 0.002
        assert "SourceBackupArn" not in summary
        assert views(ddb, "events_at") == seen

        ddb.restore_table_to_point_in_time(SourceTableArn="arn:aws:dynamodb:us-east-1:000000000000:table/events",
                                           TargetTableName="events_latest", UseLatestRestorableTime=True)
        wait_active(ddb, "events_latest")
        assert views(ddb, "events_latest") == now_seen
        # The restored table is a table like any other, with the source's indexes.
        table = ddb.describe_table(TableName="events_at")["Table"]
        assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by_content"]
        assert [i["IndexName"] for i in table["LocalSecondaryIndexes"]] == ["by_kind"]
        assert table["ItemCount"] == len(seen[0])
    finally:
        assert server.stop() == 0


def test_recovery_survives_restart_and_kill(tmp_path):
    server = ShoalProcess(tmp_path / "data").start()
    try:
        ddb = make_client(server.url)
        make_events(ddb)
        for n in range(10):
            ddb.put_item(TableName="events", Item=event("u0", n))
        seen = views(ddb, "events")
        at = mark()
        for n in range(10):
            ddb.delete_item(TableName="events", Key={"user_id": {"S": "u0"}, "ts": {"N": str(n)}})
    finally:
        server.kill()  # kill -9: every acknowledged write is in the log

    server = ShoalProcess(tmp_path / "data").start()
    try:
        ddb = make_client(server.url)
        described = ddb.describe_continuous_backups(TableName="events")["ContinuousBackupsDescription"]
        pitr = described["PointInTimeRecoveryDescription"]
        assert pitr["PointInTimeRecoveryStatus"] == "ENABLED" and pitr["RecoveryPeriodInDays"] == 35
        assert pitr["EarliestRestorableDateTime"].timestamp() < at
        time.sleep(max(0.0, at + LAG_S - time.time()))  # the restart took most of it, if not all
        ddb.restore_table_to_point_in_time(SourceTableName="events", TargetTableName="events_at",
                                           RestoreDateTime=at)
        wait_active(ddb, "events_at")
        assert views(ddb, "events_at") == seen
        assert views(ddb, "events")[0] == []
    finally:
        assert server.stop() == 0


def test_restore_while_writers_write(tmp_path):
    server = ShoalProcess(tmp_path / "data").start()
    try:
        ddb = make_client(server.url)
        make_events(ddb)
        for first in range(0, 300, 25):
            assert ddb.batch_write_item(RequestItems={"events": [
                {"PutRequest": {"Item": event(f"u{n % 3}", n)}} for n in range(first, first + 25)]}
            )["UnprocessedItems"] == {}
        seen = views(ddb, "events")
        at = mark()
        stop = threading.Event()
        written = []

        def writer() -> None:
            client = make_client(server.url)
            n = 1000
            while not stop.is_set():
                client.put_item(TableName="events", Item=event(f"u{n % 3}", n, content="c2"))
                client.delete_item(TableName="events", Key={"user_id": {"S": f"u{n % 3}"}, "ts": {"N": str(n - 900)}})
                written.append(n)
                n += 1

        threads = [threading.Thread(target=writer) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(LAG_S)
            ddb.restore_table_to_point_in_time(SourceTableName="events", TargetTableName="events_at",
                                               RestoreDateTime=at)
            wait_active(ddb, "events_at")
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert written, "the writers wrote nothing while the restore ran"
        assert views(ddb, "events_at") == seen
    finally:
        assert server.stop() == 0


def _error(call, **kwargs) -> tuple[str, str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(**kwargs)
    response = err.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_errors_and_the_server_goes_on(tmp_path):
    server = ShoalProcess(tmp_path / "data").start()
    try:
        ddb = make_client(server.url)
        ddb.create_table(TableName="plain", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
        ddb.put_item(TableName="plain", Item={"k": {"S": "kept"}})
        assert ddb.describe_continuous_backups(TableName="plain")["ContinuousBackupsDescription"] == {
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"}}
        assert _error(ddb.describe_continuous_backups, TableName="nope") == (
            "TableNotFoundException", "Table not found: nope", 400)
        assert _error(ddb.update_continuous_backups, TableName="nope", PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True}) == ("TableNotFoundException", "Table not found: nope", 400)
        assert _error(ddb.restore_table_to_point_in_time, SourceTableName="plain", TargetTableName="copy",
                      UseLatestRestorableTime=True) == (
            "PointInTimeRecoveryUnavailableException",
            "Point in time recovery is not enabled for table 'plain'", 400)
        assert _error(ddb.restore_table_to_point_in_time, SourceTableName="nope", TargetTableName="copy",
                      UseLatestRestorableTime=True) == ("TableNotFoundException", "Table not found: nope", 400)
        assert _error(ddb.update_continuous_backups, TableName="plain", PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 36})[:2] == (
            "ValidationException",
            "1 validation error detected: Value '36' at 'pointInTimeRecoverySpecification.recoveryPeriodInDays' "
            "failed to satisfy constraint: Member must have value less than or equal to 35")
        on = ddb.update_continuous_backups(TableName="plain", PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 7})["ContinuousBackupsDescription"]
        assert on["PointInTimeRecoveryDescription"]["RecoveryPeriodInDays"] == 7
        code, message, status = _error(ddb.restore_table_to_point_in_time, SourceTableName="plain",
                                       TargetTableName="copy", RestoreDateTime=time.time() - 3600)
        assert (code, status) == ("InvalidRestoreTimeException", 400)
        assert message.startswith("RestoreDateTime '") and "' must be within EarliestRestorableDateTime '" in message
        assert _error(ddb.restore_table_to_point_in_time, SourceTableName="plain", TargetTableName="plain",
                      UseLatestRestorableTime=True) == ("TableAlreadyExistsException", "Table already exists: plain",
                                                        400)
        assert _error(ddb.restore_table_to_point_in_time, SourceTableName="plain", TargetTableName="copy") == (
            "ValidationException", "Invalid Request: Either one of RestoreDateTime or UseLatestRestorableTime must "
            "be specified, but not both", 400)
        assert _error(ddb.restore_table_to_point_in_time, TargetTableName="copy", UseLatestRestorableTime=True) == (
            "ValidationException", "The parameter 'TableName' is required but was not present in the request", 400)
        # Nothing was made or lost, and the server still serves.
        assert ddb.list_tables()["TableNames"] == ["plain"]
        assert ddb.get_item(TableName="plain", Key={"k": {"S": "kept"}})["Item"] == {"k": {"S": "kept"}}
    finally:
        assert server.stop() == 0


def test_deleted_table_is_restorable_from_its_system_backup(tmp_path):
    server = ShoalProcess(tmp_path / "data").start()
    try:
        ddb = make_client(server.url)
        make_events(ddb)
        for first in range(0, 1500, 25):  # more than one purge step's worth of keys, 25 a request
            assert ddb.batch_write_item(RequestItems={"events": [
                {"PutRequest": {"Item": event(f"u{n % 3}", n, content=("c1", "c2")[n % 2])}}
                for n in range(first, first + 25)]})["UnprocessedItems"] == {}
        seen = views(ddb, "events")
        ddb.delete_table(TableName="events")
    finally:
        assert server.stop() == 0

    server = ShoalProcess(tmp_path / "data").start()  # and the backup outlives a restart
    try:
        ddb = make_client(server.url)
        assert ddb.list_backups()["BackupSummaries"] == []  # ListBackups lists USER backups unless asked
        (summary,) = ddb.list_backups(BackupType="SYSTEM")["BackupSummaries"]
        assert summary["BackupName"] == "events$DeletedTableBackup" and summary["BackupStatus"] == "AVAILABLE"
        time.sleep(1.5)  # background purge steps of the deleted table's other keys run meanwhile
        ddb.restore_table_from_backup(BackupArn=summary["BackupArn"], TargetTableName="events")
        wait_active(ddb, "events")
        assert views(ddb, "events") == seen
        code, message, _ = _error(ddb.delete_backup, BackupArn=summary["BackupArn"])
        assert code == "ValidationException"
        assert message.startswith(f"Invalid Request: User is not allowed to delete the system backup with arn "
                                  f"{summary['BackupArn']}. It will automatically expire on ")
    finally:
        assert server.stop() == 0
