"""Control-plane answers the differential sweep (bench/conformance_control.py)
found Shoal giving otherwise than DynamoDB's recorded answers, through boto3
against a real ``shoal serve``: each fault's exact error, and the server
still serving afterwards."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import botocore.exceptions
import pytest

from tests.conftest import create_table, unique_name


def _error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(**kwargs)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def _still_serving(ddb, table: str) -> None:
    ddb.put_item(TableName=table, Item={"pk": {"S": "after"}})
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "after"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "after"}}


@pytest.fixture(scope="module")
def backed_up(ddb):
    """A table and one backup of it: (table name, table ARN, backup ARN)."""
    name = create_table(ddb, range_key=None)
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    backup = ddb.create_backup(TableName=name, BackupName="conformance")["BackupDetails"]["BackupArn"]
    return name, arn, backup


def _with(arn: str, **parts) -> str:
    """An ARN with some of its fields replaced (partition, service, region, account)."""
    fields = arn.split(":", 5)
    for index, field in ((1, "partition"), (2, "service"), (3, "region"), (4, "account")):
        fields[index] = parts.get(field, fields[index])
    return ":".join(fields)


def test_list_backups_refuses_a_lower_bound_above_the_upper(ddb, backed_up):
    name, _, _ = backed_up
    later, earlier = datetime(2030, 1, 1, tzinfo=timezone.utc), datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert _error(ddb.list_backups, TimeRangeLowerBound=later, TimeRangeUpperBound=earlier) == (
        "ValidationException",
        "One or more parameter values were invalid: Time range lower bound must be less than or equal to upper bound")
    # Equal bounds are a valid, empty range ([lower, upper)).
    assert ddb.list_backups(TimeRangeLowerBound=later, TimeRangeUpperBound=later)["BackupSummaries"] == []
    _still_serving(ddb, name)


def test_list_backups_refuses_a_start_arn_of_another_region(ddb, backed_up):
    name, _, backup = backed_up
    assert _error(ddb.list_backups, ExclusiveStartBackupArn=_with(backup, region="eu-west-1")) == (
        "ValidationException", "Invalid Request: The supplied ExclusiveStartBackupArn does not match the region")
    listed = ddb.list_backups(TableName=name, ExclusiveStartBackupArn=f"{backup[:-8]}00000000")["BackupSummaries"]
    assert [summary["BackupArn"] for summary in listed] == [backup]  # this region's ARN is a cursor
    _still_serving(ddb, name)


@pytest.mark.parametrize("operation", ["describe_backup", "delete_backup"])
def test_backup_arns_are_checked_as_dynamodb_checks_them(ddb, backed_up, operation):
    name, table_arn, backup = backed_up
    call = getattr(ddb, operation)
    not_valid = ("ValidationException", "Invalid Request: BackupArn is not valid")
    assert _error(call, BackupArn=_with(backup, region="xx-fake-1")) == not_valid
    assert _error(call, BackupArn=_with(backup, region="cn-north-1")) == not_valid  # another partition's region
    assert _error(call, BackupArn=_with(backup, partition="aws-cn", region="cn-north-1")) == not_valid
    assert _error(call, BackupArn=_with(backup, service="s3")) == not_valid
    denied = ("AccessDeniedException", "Access is denied")
    assert _error(call, BackupArn=_with(backup, account="999999999999")) == denied
    assert _error(call, BackupArn=_with(backup, region="")) == denied
    assert _error(call, BackupArn=table_arn) == ("ValidationException", "Invalid Backup ARN")
    assert _error(call, BackupArn="b" * 48) == ("ValidationException", "Invalid Backup ARN")
    missing = f"{table_arn}/backup/01700000000000-abcdef12"
    assert _error(call, BackupArn=missing) == ("BackupNotFoundException", f"Backup not found: {missing}")
    assert ddb.describe_backup(BackupArn=backup)["BackupDescription"]["BackupDetails"]["BackupStatus"] == "AVAILABLE"
    _still_serving(ddb, name)


def test_a_backup_arn_of_another_region_names_this_regions_backup(ddb):
    """DynamoDB ignores the region of a BackupArn (a known region of the
    partition): DescribeBackup and DeleteBackup find the backup and echo the
    ARN as sent."""
    name = create_table(ddb, range_key=None)
    backup = ddb.create_backup(TableName=name, BackupName="elsewhere")["BackupDetails"]["BackupArn"]
    rewritten = _with(backup, region="eu-west-1")
    described = ddb.describe_backup(BackupArn=rewritten)["BackupDescription"]
    assert described["BackupDetails"]["BackupArn"] == rewritten
    assert described["BackupDetails"]["BackupName"] == "elsewhere"
    assert described["SourceTableDetails"]["TableName"] == name
    deleted = ddb.delete_backup(BackupArn=rewritten)["BackupDescription"]["BackupDetails"]
    assert (deleted["BackupArn"], deleted["BackupStatus"]) == (rewritten, "DELETED")
    assert _error(ddb.describe_backup, BackupArn=backup) == ("BackupNotFoundException",
                                                             f"Backup not found: {backup}")
    _still_serving(ddb, name)


def test_a_table_arn_of_a_region_aws_does_not_know_is_refused(ddb):
    """DescribeTable, DescribeTimeToLive and DescribeContinuousBackups take a
    table's ARN; one naming an unknown region is a validation error, one of
    another (known) region names no table here."""
    name = create_table(ddb, range_key=None)
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    fake = _with(arn, region="xx-fake-1")
    for call in (ddb.describe_table, ddb.describe_time_to_live, ddb.describe_continuous_backups):
        assert _error(call, TableName=fake) == ("ValidationException",
                                                f"1 validation error detected: Invalid AWS region in '{fake}'")
    elsewhere = _with(arn, region="eu-west-1")
    assert _error(ddb.describe_table, TableName=elsewhere) == (
        "ResourceNotFoundException", f"Requested resource not found: Table: {elsewhere} not found")
    assert ddb.describe_table(TableName=arn)["Table"]["TableName"] == name
    _still_serving(ddb, name)



def test_describe_time_to_live_of_a_table_being_restored(ddb):
    """DynamoDB refuses DescribeTimeToLive while the table is CREATING (a
    restore loads it).  The restore of a few thousand items takes long enough
    to be seen CREATING; a TTL answer is only allowed once DescribeTable,
    asked after it, says ACTIVE."""
    name = create_table(ddb, range_key=None)
    for start in range(0, 6000, 25):
        puts = [{"PutRequest": {"Item": {"pk": {"S": f"k{n}"}, "pad": {"S": "x" * 200}}}}
                for n in range(start, start + 25)]
        ddb.batch_write_item(RequestItems={name: puts})
    backup = ddb.create_backup(TableName=name, BackupName="ttl")["BackupDetails"]["BackupArn"]
    refused = 0
    for attempt in range(3):
        target = f"{name}_r{attempt}"
        ddb.restore_table_from_backup(TargetTableName=target, BackupArn=backup)
        try:
            answer = ddb.describe_time_to_live(TableName=target)
        except botocore.exceptions.ClientError as err:
            assert (err.response["Error"]["Code"], err.response["Error"]["Message"]) == (
                "ValidationException",
                "Cannot describe time to live while table is in CREATING state: Current table state is CREATING")
            refused += 1
        else:
            assert ddb.describe_table(TableName=target)["Table"]["TableStatus"] == "ACTIVE"
            assert answer["TimeToLiveDescription"] == {"TimeToLiveStatus": "DISABLED"}
        deadline = time.monotonic() + 60  # one restore from a backup at a time
        while ddb.describe_table(TableName=target)["Table"]["TableStatus"] != "ACTIVE":
            assert time.monotonic() < deadline, f"{target} not restored"
            time.sleep(0.05)
        if refused:
            break
    assert ddb.describe_time_to_live(TableName=target)["TimeToLiveDescription"] == {"TimeToLiveStatus": "DISABLED"}
    assert refused, "no restore was seen CREATING"
    _still_serving(ddb, name)


def test_write_answers_say_the_transitional_status_and_waiters_still_work(ddb):
    """CreateTable answers CREATING (its GSIs too), UpdateTable UPDATING,
    DeleteTable DELETING, as DynamoDB's answers do (API Reference examples;
    recorded answers DDB-TABLE-148/156/058), while DescribeTable right after
    says ACTIVE: boto3's waiters return on their first DescribeTable."""
    name = unique_name("status")
    created = ddb.create_table(
        TableName=name, BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 2, "WriteCapacityUnits": 2},
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"},
                                 "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 2}}],
    )["TableDescription"]
    assert (created["TableStatus"], created["GlobalSecondaryIndexes"][0]["IndexStatus"]) == ("CREATING", "CREATING")
    started = time.monotonic()
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 2})
    assert time.monotonic() - started < 5  # the first DescribeTable said ACTIVE: no delay slept
    described = ddb.describe_table(TableName=name)["Table"]
    assert (described["TableStatus"], described["GlobalSecondaryIndexes"][0]["IndexStatus"]) == ("ACTIVE", "ACTIVE")

    updated = ddb.update_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 3})
    assert updated["TableDescription"]["TableStatus"] == "UPDATING"
    described = ddb.describe_table(TableName=name)["Table"]
    assert (described["TableStatus"], described["ProvisionedThroughput"]["ReadCapacityUnits"]) == ("ACTIVE", 3)
    # Synchronous changes answer ACTIVE (DDB-TABLE-017).
    assert ddb.update_table(TableName=name, DeletionProtectionEnabled=False)["TableDescription"]["TableStatus"] == (
        "ACTIVE")
    _still_serving(ddb, name)

    assert ddb.delete_table(TableName=name)["TableDescription"]["TableStatus"] == "DELETING"
    started = time.monotonic()
    ddb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 2})
    assert time.monotonic() - started < 5
    assert _error(ddb.describe_table, TableName=name) == (
        "ResourceNotFoundException", f"Requested resource not found: Table: {name} not found")


def test_create_backup_answers_creating_and_describe_says_available(ddb):
    """DDB-BACKUP-003: CreateBackup's answer says CREATING; DescribeBackup
    and ListBackups right after say AVAILABLE, and the backup restores."""
    name = create_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}})
    details = ddb.create_backup(TableName=name, BackupName="status")["BackupDetails"]
    assert (details["BackupStatus"], details["BackupName"], details["BackupType"]) == ("CREATING", "status", "USER")
    described = ddb.describe_backup(BackupArn=details["BackupArn"])["BackupDescription"]
    assert described["BackupDetails"] == {**details, "BackupStatus": "AVAILABLE"}
    assert [(s["BackupArn"], s["BackupStatus"]) for s in ddb.list_backups(TableName=name)["BackupSummaries"]] == [
        (details["BackupArn"], "AVAILABLE")]
    restored = unique_name("restored")
    ddb.restore_table_from_backup(TargetTableName=restored, BackupArn=details["BackupArn"])
    ddb.get_waiter("table_exists").wait(TableName=restored, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert ddb.scan(TableName=restored)["Items"] == [{"pk": {"S": "a"}}]


def test_on_demand_throughput_of_a_provisioned_table_in_dynamodbs_words(ddb):
    """DDB-TABLE-038: CreateTable's sentence ('when table BillingMode',
    a period); UpdateTable's ('when the table BillingMode', none)."""
    name = unique_name("odt")
    throughput = {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
    assert _error(ddb.create_table, TableName=name, ProvisionedThroughput=throughput,
                  KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                  AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                  OnDemandThroughput={"MaxReadRequestUnits": 5}) == (
        "ValidationException", "One or more parameter values were invalid: MaxReadRequestUnits for OnDemandThroughput "
                               "cannot be specified when table BillingMode is PROVISIONED.")
    assert name not in ddb.list_tables()["TableNames"]
    ddb.create_table(TableName=name, ProvisionedThroughput=throughput,
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    assert _error(ddb.update_table, TableName=name, OnDemandThroughput={"MaxReadRequestUnits": 5}) == (
        "ValidationException", "One or more parameter values were invalid: MaxReadRequestUnits for OnDemandThroughput "
                               "cannot be specified when the table BillingMode is PROVISIONED")
    _still_serving(ddb, name)


def _waited(ddb, name: str) -> dict:
    """DescribeTable after boto3's table_exists waiter, which returns on its
    first call (the table is ACTIVE at once)."""
    started = time.monotonic()
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 2})
    assert time.monotonic() - started < 5
    return ddb.describe_table(TableName=name)["Table"]


def test_update_table_answers_the_throughput_as_it_was_before(ddb):
    """DDB-TABLE-060/184 and the API Reference's example (10/10 asked, 1/1
    answered): the answer repeats the old units and NumberOfDecreasesToday,
    with the new LastIncreaseDateTime/LastDecreaseDateTime and UPDATING;
    the warm throughput is the old one too; DescribeTable has the new."""
    name = unique_name("old_pt")
    ddb.create_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 2, "WriteCapacityUnits": 2},
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    answer = ddb.update_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 4, "WriteCapacityUnits": 3})[
        "TableDescription"]
    pt = answer["ProvisionedThroughput"]
    assert (answer["TableStatus"], pt["ReadCapacityUnits"], pt["WriteCapacityUnits"], pt["NumberOfDecreasesToday"]) == (
        "UPDATING", 2, 2, 0)
    assert "LastIncreaseDateTime" in pt
    assert (answer["WarmThroughput"]["ReadUnitsPerSecond"], answer["WarmThroughput"]["WriteUnitsPerSecond"]) == (2, 2)
    described = _waited(ddb, name)
    pt = described["ProvisionedThroughput"]
    assert (pt["ReadCapacityUnits"], pt["WriteCapacityUnits"], pt["LastIncreaseDateTime"]) == (
        4, 3, answer["ProvisionedThroughput"]["LastIncreaseDateTime"])
    assert described["WarmThroughput"] == {"ReadUnitsPerSecond": 4, "WriteUnitsPerSecond": 3, "Status": "ACTIVE"}

    answer = ddb.update_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})[
        "TableDescription"]
    pt = answer["ProvisionedThroughput"]
    assert (pt["ReadCapacityUnits"], pt["WriteCapacityUnits"], pt["NumberOfDecreasesToday"]) == (4, 3, 0)
    assert "LastDecreaseDateTime" in pt  # the new one
    pt = _waited(ddb, name)["ProvisionedThroughput"]
    assert (pt["ReadCapacityUnits"], pt["WriteCapacityUnits"], pt["NumberOfDecreasesToday"]) == (1, 1, 1)
    assert pt["LastDecreaseDateTime"] == answer["ProvisionedThroughput"]["LastDecreaseDateTime"]
    _still_serving(ddb, name)


def test_update_table_answers_the_table_class_and_warm_throughput_as_they_were(ddb):
    """DDB-TABLE-180: a table class change answers the old TableClassSummary
    (none on a table that never had one), UPDATING; DDB-TABLE-179: a warm
    throughput change answers the old values with Status UPDATING and the
    table ACTIVE.  DescribeTable has the new values at once."""
    name = create_table(ddb, range_key=None)
    answer = ddb.update_table(TableName=name, TableClass="STANDARD_INFREQUENT_ACCESS")["TableDescription"]
    assert answer["TableStatus"] == "UPDATING" and "TableClassSummary" not in answer
    assert _waited(ddb, name)["TableClassSummary"]["TableClass"] == "STANDARD_INFREQUENT_ACCESS"
    answer = ddb.update_table(TableName=name, TableClass="STANDARD")["TableDescription"]
    assert (answer["TableStatus"], answer["TableClassSummary"]["TableClass"]) == (
        "UPDATING", "STANDARD_INFREQUENT_ACCESS")
    assert _waited(ddb, name)["TableClassSummary"]["TableClass"] == "STANDARD"

    answer = ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 13000})["TableDescription"]
    assert (answer["TableStatus"], answer["WarmThroughput"]) == (
        "ACTIVE", {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000, "Status": "UPDATING"})
    assert _waited(ddb, name)["WarmThroughput"] == {
        "ReadUnitsPerSecond": 13000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}
    _still_serving(ddb, name)


def test_create_table_answers_warm_throughput_only_when_it_was_sent(ddb):
    """DDB-TABLE-033: CreateTable's answer lacks WarmThroughput unless the
    request set one; DescribeTable reports it on every table."""
    plain = unique_name("warm_absent")
    answer = ddb.create_table(TableName=plain, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])["TableDescription"]
    assert "WarmThroughput" not in answer
    assert _waited(ddb, plain)["WarmThroughput"] == {
        "ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}
    warm = unique_name("warm_sent")
    answer = ddb.create_table(TableName=warm, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              WarmThroughput={"ReadUnitsPerSecond": 14000})["TableDescription"]
    assert (answer["WarmThroughput"]["ReadUnitsPerSecond"], answer["WarmThroughput"]["WriteUnitsPerSecond"]) == (
        14000, 4000)
    _still_serving(ddb, warm)
