"""The control plane of a table whose KMS key its region cannot use, and of
requests naming such a key, over one real ``shoal serve --region`` (a table
with a customer managed key needs no global table).  Keys are marked in the
data directory's KMS_KEYS as ``test_global_tables_kms`` does.
"""

from __future__ import annotations

import re
import time

import pytest

from shoal.storage.keyring import set_kms_key_state
from tests.conftest import make_client
from tests.server.test_global_tables import _wait_table_status
from tests.server.test_global_tables_kms import ACCOUNT, INACCESSIBLE, _kms_message, _refused
from tests.shoal_process import ShoalProcess, free_port

REGION = "eu-west-1"
ALREADY = ("One or more parameter values were invalid: Table is already encrypted with given KMSMasterKeyId. "
           "Use KMSMasterKeyId parameter if you want to change Master Key")


class Server:
    """One region with no peers: its KMS keys are watched without a
    replication thread (``shoal.replication.KeyWatcher``)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.proc = ShoalProcess(data_dir, "--region", REGION, "--workers", "2", "--no-metrics",
                                 port=free_port()).start()
        self.client = make_client(self.proc.url, region=REGION)

    def key_state(self, key: str, state: str) -> None:
        set_kms_key_state(self.data_dir, key, state)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    made = Server(str(tmp_path_factory.mktemp("kms_control")))
    yield made
    made.proc.stop()


def _arn(key: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:{key if key.startswith('alias/') else 'key/' + key}"


def _alias_not_found(arn: str) -> re.Pattern:
    return re.compile(re.escape(f"KMS validation error: com.amazonaws.services.kms.model.NotFoundException: Alias "
                                f"{arn} is not found. (Service: AWSKMS; Status Code: 400; Error Code: "
                                "NotFoundException; Request ID: ")
                      + "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}" + re.escape("; Proxy: null)"))


def _create(client, name: str, sse: dict | None = None):
    extra = {"SSESpecification": sse} if sse is not None else {}
    return client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **extra)


def _kms(key: str) -> dict:
    return {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}


def _names(client) -> list[str]:
    return client.list_tables()["TableNames"]


def _serving(client, name: str) -> None:
    """The server still serves: an item written is read back."""
    client.put_item(TableName=name, Item={"pk": {"S": "still"}})
    assert client.get_item(TableName=name, Key={"pk": {"S": "still"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "still"}}


def test_create_table_naming_a_key_that_cannot_be_used_is_refused_and_makes_nothing(server):
    client = server.client
    _create(client, "kms_ctl_plain")
    cases = [("bad-key", "Disabled", "bad-key"), ("bad-key", "PendingDeletion", "bad-key"),
             ("bad-key", "Deleted", "bad-key"), ("bad-key", "Disabled", _arn("bad-key"))]
    for marked, state, given in cases:
        server.key_state(marked, state)
        kind, message, status = _refused(lambda: _create(client, "kms_ctl_new", _kms(given)))
        assert (kind, status) == ("ValidationException", 400), (state, given)
        assert _kms_message(state, _arn("bad-key")).fullmatch(message), (state, given, message)
        assert _refused(lambda: client.describe_table(TableName="kms_ctl_new"))[0] == "ResourceNotFoundException"
        assert "kms_ctl_new" not in _names(client)
    server.key_state("alias/gone", "Deleted")
    kind, message, _ = _refused(lambda: _create(client, "kms_ctl_new", _kms("alias/gone")))
    assert kind == "ValidationException"
    assert _alias_not_found(_arn("alias/gone")).fullmatch(message), message
    # a restore's key is checked as CreateTable's (RestoreTableFromBackup's SSESpecificationOverride)
    backup = client.create_backup(TableName="kms_ctl_plain", BackupName="before")["BackupDetails"]["BackupArn"]
    kind, message, _ = _refused(lambda: client.restore_table_from_backup(
        TargetTableName="kms_ctl_restored", BackupArn=backup, SSESpecificationOverride=_kms("bad-key")))
    assert kind == "ValidationException"
    assert _kms_message("Disabled", _arn("bad-key")).fullmatch(message), message
    client.update_continuous_backups(TableName="kms_ctl_plain",
                                     PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    kind, message, _ = _refused(lambda: client.restore_table_to_point_in_time(
        SourceTableName="kms_ctl_plain", TargetTableName="kms_ctl_restored", UseLatestRestorableTime=True,
        SSESpecificationOverride=_kms("bad-key")))
    assert kind == "ValidationException"
    assert _kms_message("Disabled", _arn("bad-key")).fullmatch(message), message
    assert "kms_ctl_restored" not in _names(client)
    # another key, and the same key once usable again, make their tables
    assert _create(client, "kms_ctl_other", _kms("good-key"))["TableDescription"]["SSEDescription"][
        "KMSMasterKeyArn"] == _arn("good-key")
    server.key_state("bad-key", "Enabled")
    assert _create(client, "kms_ctl_new", _kms("bad-key"))["TableDescription"]["SSEDescription"] == {
        "Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": _arn("bad-key")}
    _serving(client, "kms_ctl_new")


def test_update_table_to_a_key_that_cannot_be_used_is_refused_and_changes_nothing(server):
    client = server.client
    _create(client, "kms_ctl_default")
    _create(client, "kms_ctl_cmk", _kms("first-key"))
    server.key_state("next-key", "PendingDeletion")
    try:
        for name in ("kms_ctl_default", "kms_ctl_cmk"):
            before = client.describe_table(TableName=name)["Table"]
            kind, message, status = _refused(lambda: client.update_table(TableName=name,
                                                                       SSESpecification=_kms("next-key")))
            assert (kind, status) == ("ValidationException", 400)
            assert _kms_message("PendingDeletion", _arn("next-key")).fullmatch(message), message
            after = client.describe_table(TableName=name)["Table"]
            assert after["TableStatus"] == "ACTIVE"
            assert after.get("SSEDescription") == before.get("SSEDescription")
    finally:
        server.key_state("next-key", "Enabled")
    answer = client.update_table(TableName="kms_ctl_cmk", SSESpecification=_kms("next-key"))["TableDescription"]
    assert answer["SSEDescription"] == {"Status": "UPDATING", "SSEType": "KMS", "KMSMasterKeyArn": _arn("next-key")}
    _serving(client, "kms_ctl_cmk")


@pytest.fixture
def inaccessible(server):
    """A table on customer managed key ``locked-key``, which is then
    disabled: the table is INACCESSIBLE_ENCRYPTION_CREDENTIALS until the
    fixture enables the key again."""
    name = "kms_ctl_locked"
    _create(server.client, name, _kms("locked-key"))
    server.client.put_item(TableName=name, Item={"pk": {"S": "a"}})
    server.key_state("locked-key", "Disabled")
    try:
        _wait_table_status(server.client, name, INACCESSIBLE)
        yield name
    finally:
        server.key_state("locked-key", "Enabled")
        _wait_table_status(server.client, name, "ACTIVE")
        server.client.delete_table(TableName=name)


def _stays_inaccessible(client, name: str, seconds: float = 2.5) -> dict:
    """DescribeTable right away and through more than two of the server's
    key checks (one a second) says INACCESSIBLE_ENCRYPTION_CREDENTIALS."""
    deadline = time.monotonic() + seconds
    while True:
        table = client.describe_table(TableName=name)["Table"]
        assert table["TableStatus"] == INACCESSIBLE, table
        if time.monotonic() > deadline:
            return table
        time.sleep(0.1)


def test_update_table_on_an_inaccessible_table_is_applied_and_leaves_it_inaccessible(server, inaccessible):
    client, name = server.client, inaccessible
    answer = client.update_table(TableName=name, TableClass="STANDARD_INFREQUENT_ACCESS")["TableDescription"]
    assert answer["TableStatus"] == "UPDATING"
    assert _stays_inaccessible(client, name)["TableClassSummary"]["TableClass"] == "STANDARD_INFREQUENT_ACCESS"
    answer = client.update_table(TableName=name, DeletionProtectionEnabled=True)["TableDescription"]
    assert (answer["TableStatus"], answer["DeletionProtectionEnabled"]) == (INACCESSIBLE, True)
    assert _stays_inaccessible(client, name, 0.5)["DeletionProtectionEnabled"] is True
    client.update_table(TableName=name, DeletionProtectionEnabled=False)
    answer = client.update_table(TableName=name, BillingMode="PROVISIONED",
                                 ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    assert answer["TableDescription"]["TableStatus"] == "UPDATING"
    table = _stays_inaccessible(client, name)
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert (table["ProvisionedThroughput"]["ReadCapacityUnits"], table["ProvisionedThroughput"]["WriteCapacityUnits"]) \
        == (1, 1)
    client.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    table = _stays_inaccessible(client, name)
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    assert table["SSEDescription"]["KMSMasterKeyArn"] == _arn("locked-key")


def test_kms_dependent_table_requests_on_an_inaccessible_table_are_refused_and_change_nothing(server, inaccessible):
    client, name = server.client, inaccessible
    locked = _kms_message("Disabled", _arn("locked-key"))
    before = client.describe_table(TableName=name)["Table"]
    refused = {
        "UpdateTimeToLive": lambda: client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}),
        "CreateBackup": lambda: client.create_backup(TableName=name, BackupName="refused"),
        "UpdateContributorInsights": lambda: client.update_contributor_insights(
            TableName=name, ContributorInsightsAction="ENABLE"),
        "SSE to another key": lambda: client.update_table(TableName=name, SSESpecification=_kms("free-key")),
        "SSE to the AWS managed key": lambda: client.update_table(
            TableName=name, SSESpecification={"Enabled": True, "SSEType": "KMS"}),
        "SSE to the AWS owned key": lambda: client.update_table(TableName=name,
                                                               SSESpecification={"Enabled": False}),
    }
    for label, call in refused.items():
        kind, message, status = _refused(call)
        assert (kind, status) == ("ValidationException", 400), label
        assert locked.fullmatch(message), (label, message)
    # the same key again is refused as already in use, as on any table
    assert _refused(lambda: client.update_table(TableName=name, SSESpecification=_kms("locked-key")))[:2] == (
        "ValidationException", ALREADY)
    # nothing changed, and what only reads answers
    assert client.describe_table(TableName=name)["Table"] == before
    assert client.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {"TimeToLiveStatus": "DISABLED"}
    assert client.list_backups(TableName=name)["BackupSummaries"] == []
    assert client.describe_contributor_insights(TableName=name)["ContributorInsightsStatus"] == "DISABLED"
    assert client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"][
        "ContinuousBackupsStatus"] == "ENABLED"
    assert client.list_tags_of_resource(ResourceArn=before["TableArn"])["Tags"] == []
    assert name in _names(client)
    # a key pending deletion is worded as KMS words it
    server.key_state("locked-key", "PendingDeletion")
    kind, message, _ = _refused(refused["CreateBackup"])
    assert _kms_message("PendingDeletion", _arn("locked-key")).fullmatch(message), message
    _create(client, "kms_ctl_beside")
    _serving(client, "kms_ctl_beside")


def test_kms_dependent_table_requests_are_served_once_the_key_is_usable(server):
    client, name = server.client, "kms_ctl_back"
    _create(client, name, _kms("back-key"))
    server.key_state("back-key", "Disabled")
    _wait_table_status(client, name, INACCESSIBLE)
    assert _refused(lambda: client.create_backup(TableName=name, BackupName="back"))[0] == "ValidationException"
    server.key_state("back-key", "Enabled")
    _wait_table_status(client, name, "ACTIVE")
    assert client.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires"})["TimeToLiveSpecification"]["Enabled"] is True
    assert client.create_backup(TableName=name, BackupName="back")["BackupDetails"]["BackupName"] == "back"
    assert client.update_contributor_insights(TableName=name, ContributorInsightsAction="ENABLE")[
        "ContributorInsightsStatus"] == "ENABLING"
    assert client.update_table(TableName=name, SSESpecification={"Enabled": False})["TableDescription"].get(
        "SSEDescription") is None
