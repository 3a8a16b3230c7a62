"""The consequences of a KMS key that stays inaccessible, driven through
``control.check_encryption_keys`` at chosen times over a real LMDB engine
(``shoal.api.archival``: archival after seven days; which tables leave their
replication group after 20 hours instead, and which are left alone)."""

from __future__ import annotations

import types

import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, archival, items, tables
from shoal.api.catalog import Catalog
from shoal.errors import ResourceNotFoundException
from shoal.replication import control
from shoal.storage.keyring import set_kms_key_state
from shoal.storage.lmdb_engine import LmdbEngine

REGION = "eu-west-1"
DAY = 86400.0
T0 = 1_800_000_000.0


@pytest.fixture
def ctx(tmp_path):
    engine = LmdbEngine(tmp_path / "lmdb", sync=False)  # its data directory: tmp_path, where KMS_KEYS is
    yield Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: T0)
    engine.close()


def _table(ctx, name: str, key: str, count: int) -> None:
    tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "SSESpecification": {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key},
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    for n in range(count):
        items.put_item(ctx, {"TableName": name, "Item": {"pk": {"S": f"i{n}"}}})


def _desc(ctx, name: str) -> dict:
    with ctx.engine.read() as txn:
        return ctx.catalog.get(txn, REGION, name).description


def _check(ctx, at: float) -> bool:
    return control.check_encryption_keys(ctx.engine, ctx.catalog, REGION, at)


def _data_dir(ctx) -> str:
    return control.data_dir_of(ctx.engine)


def test_archived_at_seven_days_not_a_moment_before_and_its_data_moved_to_a_backup(ctx):
    _table(ctx, "tab", "k", 3)
    set_kms_key_state(_data_dir(ctx), "k", "Disabled")
    assert _check(ctx, T0)
    assert _desc(ctx, "tab")["SSEDescription"]["InaccessibleEncryptionDateTime"] == T0
    assert not _check(ctx, T0 + 7 * DAY - 0.001)
    assert _desc(ctx, "tab")["TableStatus"] == control.INACCESSIBLE
    assert _check(ctx, T0 + 7 * DAY)
    desc = _desc(ctx, "tab")
    assert desc["TableStatus"] == "ARCHIVING"
    assert desc["ArchivalSummary"] == {"ArchivalDateTime": T0 + 7 * DAY, "ArchivalReason": control.INACCESSIBLE}
    # The next check (a restarted server's too) takes the backup: archiving_s is 0 by default.
    set_kms_key_state(_data_dir(ctx), "k", "Enabled")  # too late: an archival once begun goes on
    assert _check(ctx, T0 + 7 * DAY + 1)
    desc = _desc(ctx, "tab")
    assert desc["TableStatus"] == "ARCHIVED"
    arn = desc["ArchivalSummary"]["ArchivalBackupArn"]
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, REGION, "tab")
        assert list(txn.scan("items", table.prefix, table.prefix + b"\xff")) == []  # purged (3 keys: at once)
    with pytest.raises(ResourceNotFoundException):
        items.get_item(ctx, {"TableName": "tab", "Key": {"pk": {"S": "i0"}}})
    from shoal.api import backups

    backup = backups.describe_backup(ctx, {"BackupArn": arn})["BackupDescription"]
    assert (backup["BackupDetails"]["BackupType"], backup["SourceTableDetails"]["ItemCount"]) == ("SYSTEM", 3)
    assert not _check(ctx, T0 + 30 * DAY)  # nothing more happens to it
    assert _desc(ctx, "tab")["TableStatus"] == "ARCHIVED"


def test_a_key_usable_again_in_time_clears_the_date_and_nothing_happens(ctx):
    _table(ctx, "tab", "k", 1)
    set_kms_key_state(_data_dir(ctx), "k", "PendingDeletion")
    _check(ctx, T0)
    _check(ctx, T0 + 6 * DAY)
    set_kms_key_state(_data_dir(ctx), "k", "Enabled")
    assert _check(ctx, T0 + 6.5 * DAY)
    assert not _check(ctx, T0 + 8 * DAY)
    desc = _desc(ctx, "tab")
    assert desc["TableStatus"] == "ACTIVE" and "ArchivalSummary" not in desc
    set_kms_key_state(_data_dir(ctx), "k", "Deleted")  # seven new days from now
    _check(ctx, T0 + 9 * DAY)
    assert not _check(ctx, T0 + 15.9 * DAY)
    assert _check(ctx, T0 + 16 * DAY)
    assert _desc(ctx, "tab")["TableStatus"] == "ARCHIVING"


def _inaccessible(desc: dict, since: float = T0) -> types.SimpleNamespace:
    desc = {"TableStatus": control.INACCESSIBLE, "SSEDescription": {"InaccessibleEncryptionDateTime": since}, **desc}
    return types.SimpleNamespace(description=desc, table_id="00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize(("desc", "at", "expected"), [
    ({}, T0 + 7 * DAY - 1, None),
    ({}, T0 + 7 * DAY, "begin"),
    ({"Replicas": [{"RegionName": "us-east-1"}], "GlobalTableVersion": "2019.11.21"}, T0 + 20 * 3600 - 1, None),
    ({"Replicas": [{"RegionName": "us-east-1"}], "GlobalTableVersion": "2019.11.21"}, T0 + 20 * 3600,
     "remove_inaccessible_replica"),
    ({"Replicas": [{"RegionName": "us-east-1"}], "GlobalTableVersion": "2019.11.21",
      "MultiRegionConsistency": "STRONG"}, T0 + 30 * DAY, None),  # MRSC: left alone
    ({"GlobalTableVersion": "2017.11.29"}, T0 + 30 * DAY, None),  # a version 2017.11.29 member: left alone
    ({"SSEDescription": {}}, T0 + 30 * DAY, None),  # no date: nothing is due
])
def test_what_is_due_for_an_inaccessible_table(ctx, desc, at, expected):
    with ctx.engine.read() as txn:
        due = control._consequence(txn, _inaccessible(desc), at)
    assert (due.__name__ if due is not None else None) == expected


def test_the_durations_are_read_from_the_environment(monkeypatch):
    assert archival.ArchivalConfig() == archival.ArchivalConfig(7 * DAY, 20 * 3600.0, 0.0)
    monkeypatch.setenv("SHOAL_KMS_ARCHIVAL_S", "60")
    monkeypatch.setenv("SHOAL_KMS_REPLICA_REMOVAL_S", "5")
    monkeypatch.setenv("SHOAL_KMS_ARCHIVING_S", "2.5")
    assert archival.ArchivalConfig.from_env() == archival.ArchivalConfig(60.0, 5.0, 2.5)
