"""A table whose KMS key stays inaccessible for seven days is archived
(``shoal.api.archival``): ARCHIVING, then ARCHIVED with its ArchivalSummary,
its data in a SYSTEM backup that restores it; requests on it refused; a key
usable again before then, and nothing happens.  One real ``shoal serve
--region`` whose clock the tests move (SHOAL_TEST_CLOCK_FILE) over the
default seven days; an archival lasts an hour of that clock
(SHOAL_KMS_ARCHIVING_S), so that ARCHIVING is seen.
"""

from __future__ import annotations

import pytest

from shoal.storage.keyring import set_kms_key_state
from tests.conftest import make_client
from tests.server.item_requests import item_requests
from tests.server.test_global_tables import _wait_table_status
from tests.server.test_global_tables_kms import INACCESSIBLE, _refused
from tests.server.test_global_tables_kms_control import _kms
from tests.shoal_process import ShoalProcess, free_port, moved_clock

REGION = "eu-west-1"
SEVEN_DAYS_S = 7 * 86400
ARCHIVING_S = 3600.0


class Server:
    """One region with no peers and a clock the test moves."""

    def __init__(self, data_dir: str, clock) -> None:
        self.data_dir, self.clock = data_dir, clock
        self.proc = ShoalProcess(data_dir, "--region", REGION, "--workers", "1", "--no-metrics", port=free_port(),
                                 env={"SHOAL_TEST_CLOCK_FILE": str(clock),
                                      "SHOAL_KMS_ARCHIVING_S": str(ARCHIVING_S)}).start()
        self.client = make_client(self.proc.url, region=REGION)

    def advance(self, seconds: float) -> None:
        self.clock.write_text(str(float(self.clock.read_text() or 0) + seconds))

    def key_state(self, key: str, state: str) -> None:
        set_kms_key_state(self.data_dir, key, state)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    made = Server(str(tmp_path_factory.mktemp("kms_archival")), moved_clock(tmp_path_factory))
    yield made
    made.proc.stop()


def _table(client, name: str, key: str, items: int) -> None:
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", SSESpecification=_kms(key),
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "kind", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    for n in range(items):
        client.put_item(TableName=name, Item={"pk": {"S": f"item{n:03}"}, "kind": {"S": "k"}, "n": {"N": str(n)}})


def _items(client, name: str) -> list[dict]:
    return sorted(client.scan(TableName=name, ConsistentRead=True)["Items"], key=lambda item: item["pk"]["S"])


def _check_refusals(client, name: str, status: str) -> None:
    """Every item request answers ResourceNotFoundException (the table has no
    data); changes ResourceInUseException; the backup and recovery operations
    TableNotFoundException (DescribeContinuousBackups of an ARCHIVED table
    was reported answering so)."""
    for label, call in item_requests(client, name, key="item000", gsi="by_kind").items():
        assert _refused(call) == ("ResourceNotFoundException", "Requested resource not found", 400), label
    in_use = "Table is being archived" if status == "ARCHIVING" else "Table is archived"
    for label, call in {
        "UpdateTable": lambda: client.update_table(TableName=name, DeletionProtectionEnabled=True),
        "UpdateTimeToLive": lambda: client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}),
        "UpdateContributorInsights": lambda: client.update_contributor_insights(
            TableName=name, ContributorInsightsAction="ENABLE"),
    }.items():
        kind, message, code = _refused(call)
        assert (kind, code) == ("ResourceInUseException", 400), (label, kind, message)
        assert message.startswith(f"Attempt to change a resource which is still in use: {in_use}: {name}"), message
    for label, call in {
        "DescribeContinuousBackups": lambda: client.describe_continuous_backups(TableName=name),
        "UpdateContinuousBackups": lambda: client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}),
        "CreateBackup": lambda: client.create_backup(TableName=name, BackupName="while-archived"),
    }.items():
        assert _refused(call) == ("TableNotFoundException", f"Table not found: {name}", 400), label
    arn = client.describe_table(TableName=name)["Table"]["TableArn"]
    assert _refused(lambda: client.export_table_to_point_in_time(TableArn=arn, S3Bucket="exports")) == (
        "TableNotFoundException", f"Table not found: {arn}", 400)
    assert name in client.list_tables()["TableNames"]


def test_a_table_whose_key_stays_inaccessible_for_seven_days_is_archived_to_a_backup_that_restores_it(server):
    client, name = server.client, "archived"
    _table(client, name, "archived-key", 30)
    client.update_continuous_backups(TableName=name,
                                     PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    before = _items(client, name)
    server.key_state("archived-key", "Disabled")
    since = _wait_table_status(client, name, INACCESSIBLE)["SSEDescription"]["InaccessibleEncryptionDateTime"]

    server.advance(SEVEN_DAYS_S + 1)
    table = _wait_table_status(client, name, "ARCHIVING")
    summary = table["ArchivalSummary"]
    assert summary["ArchivalReason"] == INACCESSIBLE and "ArchivalBackupArn" not in summary
    assert summary["ArchivalDateTime"].timestamp() >= since.timestamp() + SEVEN_DAYS_S
    _check_refusals(client, name, "ARCHIVING")
    kind, message, _ = _refused(lambda: client.delete_table(TableName=name))
    assert (kind, message) == ("ResourceInUseException",
                               f"Attempt to change a resource which is still in use: Table is being archived: {name}")

    server.advance(ARCHIVING_S)
    table = _wait_table_status(client, name, "ARCHIVED")
    assert table["ArchivalSummary"]["ArchivalDateTime"] == summary["ArchivalDateTime"]
    assert table["ArchivalSummary"]["ArchivalReason"] == INACCESSIBLE
    arn = table["ArchivalSummary"]["ArchivalBackupArn"]
    assert arn.startswith(table["TableArn"] + "/backup/")
    assert (table["ItemCount"], table["TableSizeBytes"]) == (0, 0)  # the data is in the backup now
    _check_refusals(client, name, "ARCHIVED")
    kind, message, _ = _refused(lambda: client.update_table(TableName=name, BillingMode="PROVISIONED",
                                                            ProvisionedThroughput={"ReadCapacityUnits": 1,
                                                                                   "WriteCapacityUnits": 1}))
    assert kind == "ResourceInUseException" and arn in message

    backup = client.describe_backup(BackupArn=arn)["BackupDescription"]
    assert backup["BackupDetails"]["BackupType"] == "SYSTEM"
    assert backup["BackupDetails"]["BackupStatus"] == "AVAILABLE"
    assert backup["SourceTableDetails"]["ItemCount"] == 30
    assert [s["BackupArn"] for s in client.list_backups(TableName=name, BackupType="SYSTEM")["BackupSummaries"]] \
        == [arn]
    assert _refused(lambda: client.delete_backup(BackupArn=arn))[0] == "ValidationException"  # DynamoDB's own

    # Restored under another name while the archived table is there; under its
    # own name once it is deleted ("you will need to delete the original table").
    assert _refused(lambda: client.restore_table_from_backup(TargetTableName=name, BackupArn=arn))[0] == (
        "TableAlreadyExistsException")
    client.restore_table_from_backup(TargetTableName="archived_copy", BackupArn=arn)
    _wait_table_status(client, "archived_copy", "ACTIVE")
    assert _items(client, "archived_copy") == before
    assert client.delete_table(TableName=name)["TableDescription"]["TableStatus"] == "DELETING"
    assert name not in client.list_tables()["TableNames"]
    client.restore_table_from_backup(TargetTableName=name, BackupArn=arn)
    restored = _wait_table_status(client, name, "ACTIVE")
    assert "ArchivalSummary" not in restored and restored["ItemCount"] == 30
    assert _items(client, name) == before
    assert client.query(TableName=name, IndexName="by_kind", KeyConditionExpression="kind = :k",
                        ExpressionAttributeValues={":k": {"S": "k"}})["Count"] == 30
    client.put_item(TableName=name, Item={"pk": {"S": "after"}, "kind": {"S": "k"}})


def test_a_key_usable_again_before_seven_days_leaves_its_table_as_it_was(server):
    """Two tables on two keys, both disabled; one key comes back on the
    sixth day: at the seventh only the other table is archived (which shows
    the deadline was checked), the first one is ACTIVE with all its items;
    disabled again, it starts seven new days."""
    client = server.client
    _table(client, "kept", "kept-key", 5)
    _table(client, "lost", "lost-key", 5)
    before = _items(client, "kept")
    server.key_state("kept-key", "Disabled")
    server.key_state("lost-key", "Disabled")
    _wait_table_status(client, "kept", INACCESSIBLE)
    _wait_table_status(client, "lost", INACCESSIBLE)
    server.advance(6 * 86400)
    server.key_state("kept-key", "Enabled")
    kept = _wait_table_status(client, "kept", "ACTIVE")
    assert "InaccessibleEncryptionDateTime" not in kept["SSEDescription"]

    server.advance(86400 + 1)
    _wait_table_status(client, "lost", "ARCHIVING")
    server.advance(ARCHIVING_S)
    _wait_table_status(client, "lost", "ARCHIVED")
    kept = client.describe_table(TableName="kept")["Table"]
    assert kept["TableStatus"] == "ACTIVE" and "ArchivalSummary" not in kept and kept["ItemCount"] == 5
    assert _items(client, "kept") == before
    assert client.list_backups(TableName="kept", BackupType="ALL")["BackupSummaries"] == []

    server.key_state("kept-key", "Disabled")  # the seven days start again from now
    _wait_table_status(client, "kept", INACCESSIBLE)
    server.advance(SEVEN_DAYS_S - 3600)
    server.key_state("kept-key", "Enabled")
    _wait_table_status(client, "kept", "ACTIVE")
    assert _items(client, "kept") == before
