"""On-demand backups through boto3 against a real ``shoal serve``."""

from __future__ import annotations

import time

import botocore.exceptions
import pytest

from tests.conftest import make_client
from tests.shoal_process import ShoalProcess


def wait_active(ddb, table: str, timeout: float = 60.0) -> dict:
    """The table's description once it is ACTIVE (a restore's load done)."""
    deadline = time.monotonic() + timeout
    while True:
        described = ddb.describe_table(TableName=table)["Table"]
        if described["TableStatus"] == "ACTIVE":
            return described
        assert time.monotonic() < deadline, f"{table} still {described['TableStatus']}"
        time.sleep(0.05)


def _items(ddb, table):
    out = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(out, key=lambda i: int(i["n"]["N"]))


def test_backup_delete_restore_and_restart(tmp_path):
    server = ShoalProcess(tmp_path / "data").start()
    try:
        ddb = make_client(server.url)
        ddb.create_table(TableName="events", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        for n in range(30):
            ddb.put_item(TableName="events", Item={"pk": {"S": f"k{n}"}, "n": {"N": str(n)}})
        before = _items(ddb, "events")
        details = ddb.create_backup(TableName="events", BackupName="before-delete")["BackupDetails"]
        arn = details["BackupArn"]
        assert details["BackupStatus"] == "CREATING" and arn.startswith(  # DynamoDB's answer (DDB-BACKUP-003)
            "arn:aws:dynamodb:us-east-1:000000000000:table/events/backup/")
        # ... but the copy is made: the backup is AVAILABLE at once, restorable.
        assert ddb.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"] == "AVAILABLE"
        assert [s["BackupStatus"] for s in ddb.list_backups(TableName="events")["BackupSummaries"]] == ["AVAILABLE"]
        ddb.delete_table(TableName="events")
        restored = ddb.restore_table_from_backup(TargetTableName="events", BackupArn=arn)["TableDescription"]
        assert restored["TableStatus"] == "CREATING"  # loaded by a job; ACTIVE when done
        assert restored["RestoreSummary"]["SourceBackupArn"] == arn
        assert restored["RestoreSummary"]["RestoreInProgress"] is True
        restored = wait_active(ddb, "events")
        assert restored["RestoreSummary"]["RestoreInProgress"] is False
        assert _items(ddb, "events") == before
        with pytest.raises(botocore.exceptions.ClientError) as err:
            ddb.restore_table_from_backup(TargetTableName="events", BackupArn=arn)
        assert err.value.response["Error"]["Code"] == "TableAlreadyExistsException"
    finally:
        assert server.stop() == 0

    server = ShoalProcess(tmp_path / "data").start()  # the backup survives a restart
    try:
        ddb = make_client(server.url)
        summaries = ddb.list_backups(TableName="events")["BackupSummaries"]
        assert [s["BackupArn"] for s in summaries] == [arn]
        described = ddb.describe_backup(BackupArn=arn)["BackupDescription"]
        assert described["BackupDetails"]["BackupStatus"] == "AVAILABLE"
        assert described["SourceTableDetails"]["ItemCount"] == 30
        ddb.restore_table_from_backup(TargetTableName="events_again", BackupArn=arn)
        wait_active(ddb, "events_again")
        assert _items(ddb, "events_again") == before
        assert ddb.describe_table(TableName="events_again")["Table"]["RestoreSummary"]["SourceBackupArn"] == arn
        assert ddb.delete_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"] == "DELETED"
        with pytest.raises(botocore.exceptions.ClientError) as err:
            ddb.describe_backup(BackupArn=arn)
        assert err.value.response["Error"]["Code"] == "BackupNotFoundException"
        assert err.value.response["Error"]["Message"] == f"Backup not found: {arn}"
    finally:
        server.stop()
