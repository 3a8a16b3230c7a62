"""REPLICATION_NOT_AUTHORIZED's follow-ups (``shoal.replication.authorization``):
a replica is not added to a table whose resource-based policy denies the
replication service-linked role; settings changes (a GSI, TTL, ReplicaUpdates
Update) wait for a replica whose policy denies ReplicateSettings and reach it
once allowed; a stream's policy that denies the role its stream actions counts
as the table's; with an unusable KMS key too, the first state reached is the
one shown. Three real ``shoal serve`` regions (``test_global_tables.Regions``).
"""

from __future__ import annotations

import time

import botocore.exceptions
import orjson
import pytest

from shoal.storage.keyring import set_kms_key_state
from tests.server.test_global_tables import (
    CONVERGE_S,
    REGIONS,
    Regions,
    _converged,
    _create,
    _data_dir,
    _scan,
    _wait_active,
    _wait_replica_status,
    _wait_table_status,
    start_together,
)

NOT_AUTHORIZED = "REPLICATION_NOT_AUTHORIZED"
INACCESSIBLE = "INACCESSIBLE_ENCRYPTION_CREDENTIALS"
ACCOUNT = "000000000000"
SLR = ("arn:aws:iam::000000000000:role/aws-service-role/replication.dynamodb.amazonaws.com/"
       "AWSServiceRoleForDynamoDBReplication")
SERVICE = {"Service": "replication.dynamodb.amazonaws.com"}


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    regions = Regions(str(tmp_path_factory.mktemp("na_followups")), clock_s=0.0)  # the third's clock movable
    start_together(regions)
    yield regions
    regions.stop()


def _arn(i: int, name: str) -> str:
    return f"arn:aws:dynamodb:{REGIONS[i]}:{ACCOUNT}:table/{name}"


def _policy(principal: dict, action, resource: str) -> str:
    return orjson.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": principal, "Action": action, "Resource": resource}]}).decode()


def _error(call) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def _global(trio, name: str, regions=(1, 2)) -> None:
    first = trio.client(0)
    _create(first, name)
    first.put_item(TableName=name, Item={"pk": {"S": "a"}, "kind": {"S": "k"}, "colour": {"S": "red"}})
    for i in regions:
        first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[i]}}])
        _wait_active(first, name)
    for i in (0, *regions):
        _wait_active(trio.client(i), name)


def _until(what, check, timeout: float = CONVERGE_S):
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if check(value):
            return value
        assert time.monotonic() < deadline, value
        time.sleep(0.1)


def _indexes(client, name: str) -> dict:
    return {g["IndexName"]: g["IndexStatus"]
            for g in client.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", ())}


def _ttl(client, name: str) -> dict:
    return client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]


def _table_class(client, name: str) -> str:
    return (client.describe_table(TableName=name)["Table"].get("TableClassSummary") or {}).get("TableClass",
                                                                                             "STANDARD")


def test_a_replica_is_not_added_to_a_table_whose_policy_denies_replication(trio):
    """The Developer Guide's resource-based policy considerations: with the
    role's action denied, "adding ... a replica will fail with an error".
    The error names the policy; nothing is made in the other region; once the
    policy allows, the replica is added."""
    name = "na_add"
    first = trio.client(0)
    _create(first, name)
    first.put_resource_policy(ResourceArn=_arn(0, name), Policy=_policy(
        {"AWS": SLR}, ["dynamodb:GetRecords", "dynamodb:Scan"], _arn(0, name)))
    code, message = _error(lambda: first.update_table(
        TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}]))
    assert code == "ValidationException"
    assert "resource-based policy" in message and "AWSServiceRoleForDynamoDBReplication" in message
    assert "dynamodb:Scan" in message, message
    table = first.describe_table(TableName=name)["Table"]
    assert table["TableStatus"] == "ACTIVE" and "Replicas" not in table
    code, _ = _error(lambda: trio.client(1).describe_table(TableName=name))
    assert code == "ResourceNotFoundException"
    # A policy denying the role something replication does not need is no obstacle.
    first.put_resource_policy(ResourceArn=_arn(0, name), Policy=_policy(
        {"AWS": SLR}, "dynamodb:DeleteTable", _arn(0, name)))
    first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}])
    _wait_active(first, name)
    _wait_active(trio.client(1), name)


def test_settings_changes_wait_for_a_replica_whose_policy_denies_replicate_settings(trio):
    """The third region's policy denies the service principal
    dynamodb:ReplicateSettings: a GSI created, TTL enabled and a
    ReplicaUpdates Update for the third, made in the first, reach the second
    but not the third; the policy removed, they reach the third too."""
    name = "na_settings"
    _global(trio, name)
    first, second, third = (trio.client(i) for i in range(3))
    third.put_resource_policy(ResourceArn=_arn(2, name), Policy=_policy(
        SERVICE, "dynamodb:ReplicateSettings", _arn(2, name)))
    _wait_table_status(third, name, NOT_AUTHORIZED)
    _wait_replica_status(first, name, REGIONS[2], NOT_AUTHORIZED)

    first.update_table(TableName=name, AttributeDefinitions=[{"AttributeName": "colour", "AttributeType": "S"}],
                       GlobalSecondaryIndexUpdates=[{"Create": {
                           "IndexName": "by_colour", "KeySchema": [{"AttributeName": "colour", "KeyType": "HASH"}],
                           "Projection": {"ProjectionType": "ALL"}}}])
    _until(lambda: _indexes(first, name), lambda v: v.get("by_colour") == "ACTIVE")
    first.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    enabled = {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    _until(lambda: _indexes(second, name), lambda v: v.get("by_colour") == "ACTIVE")
    _until(lambda: _ttl(second, name), lambda v: v == enabled)
    first.update_table(TableName=name, ReplicaUpdates=[{"Update": {
        "RegionName": REGIONS[2], "TableClassOverride": "STANDARD_INFREQUENT_ACCESS"}}])
    time.sleep(2.5)  # more than two of the held tasks' retries
    assert "by_colour" not in _indexes(third, name)
    assert _ttl(third, name) == {"TimeToLiveStatus": "DISABLED"}
    assert _table_class(third, name) == "STANDARD"
    assert third.describe_table(TableName=name)["Table"]["TableStatus"] == NOT_AUTHORIZED

    third.delete_resource_policy(ResourceArn=_arn(2, name))
    _until(lambda: _indexes(third, name), lambda v: v.get("by_colour") == "ACTIVE")
    _until(lambda: _ttl(third, name), lambda v: v == enabled)
    _until(lambda: _table_class(third, name), lambda v: v == "STANDARD_INFREQUENT_ACCESS")
    for i in range(3):
        _wait_active(trio.client(i), name)
    found = third.query(TableName=name, IndexName="by_colour", KeyConditionExpression="colour = :c",
                        ExpressionAttributeValues={":c": {"S": "red"}})["Items"]
    assert [i["pk"]["S"] for i in found] == ["a"]



def test_settings_changed_in_the_unauthorized_replica_wait_there(trio):
    """Replication stops "to and from" such a replica: a TTL setting made in
    it (its clients' control plane goes on) reaches the other region only
    once its policy allows."""
    name = "na_settings_from"
    _global(trio, name, regions=(2,))
    first, third = trio.client(0), trio.client(2)
    third.put_resource_policy(ResourceArn=_arn(2, name), Policy=_policy(
        {"AWS": SLR}, "dynamodb:UpdateTimeToLive", _arn(2, name)))
    _wait_table_status(third, name, NOT_AUTHORIZED)
    enabled = {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    third.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    assert _ttl(third, name) == enabled
    time.sleep(2.0)
    assert _ttl(first, name) == {"TimeToLiveStatus": "DISABLED"}
    third.delete_resource_policy(ResourceArn=_arn(2, name))
    _until(lambda: _ttl(first, name), lambda v: v == enabled)



def test_a_settings_change_held_for_a_replica_that_leaves_is_dropped(trio):
    """Still denied 20 hours later (the third region's clock moved), the
    replica becomes a single-Region table: the GSI held for it is dropped by
    the first region, and never reaches the table left behind, even once its
    policy allows."""
    name = "na_settings_moot"
    _global(trio, name, regions=(2,))
    first, third = trio.client(0), trio.client(2)
    third.put_resource_policy(ResourceArn=_arn(2, name), Policy=_policy(
        SERVICE, "dynamodb:ReplicateSettings", _arn(2, name)))
    _wait_table_status(third, name, NOT_AUTHORIZED)
    first.update_table(TableName=name, AttributeDefinitions=[{"AttributeName": "colour", "AttributeType": "S"}],
                       GlobalSecondaryIndexUpdates=[{"Create": {
                           "IndexName": "by_colour", "KeySchema": [{"AttributeName": "colour", "KeyType": "HASH"}],
                           "Projection": {"ProjectionType": "ALL"}}}])
    _until(lambda: _indexes(first, name), lambda v: v.get("by_colour") == "ACTIVE")
    try:
        with open(trio.clock_file, "w") as handle:
            handle.write(str(20 * 3600 + 1))
        _until(lambda: first.describe_table(TableName=name)["Table"], lambda t: not t.get("Replicas"))
        _wait_table_status(third, name, "ACTIVE")
    finally:
        with open(trio.clock_file, "w") as handle:
            handle.write("0")
    third.delete_resource_policy(ResourceArn=_arn(2, name))
    time.sleep(2.5)  # more than two of a held task's retries
    assert "by_colour" not in _indexes(third, name)
    assert "Replicas" not in third.describe_table(TableName=name)["Table"]


def test_a_stream_policy_denying_the_role_its_stream_actions_counts_as_the_tables(trio):
    """The replica's stream carries its own resource-based policy
    (PutResourcePolicy on the stream ARN); denying the role GetRecords there
    makes the replica REPLICATION_NOT_AUTHORIZED and holds replication, as
    the table's policy does; the stream policy removed, all is delivered. A
    stream policy denying the role nothing replication needs changes nothing."""
    name = "na_stream"
    _global(trio, name, regions=(2,))
    first, third = trio.client(0), trio.client(2)
    stream_arn = third.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    third.put_resource_policy(ResourceArn=stream_arn, Policy=_policy(
        {"AWS": f"arn:aws:iam::{ACCOUNT}:user/mallory"}, "dynamodb:GetRecords", stream_arn))
    first.put_item(TableName=name, Item={"pk": {"S": "harmless"}, "kind": {"S": "k"}})
    assert [i["pk"]["S"] for i in _converged(trio, name, indexes=(0, 2))] == ["a", "harmless"]
    assert third.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"

    third.put_resource_policy(ResourceArn=stream_arn, Policy=_policy(
        {"AWS": SLR}, ["dynamodb:GetRecords", "dynamodb:GetShardIterator"], stream_arn))
    _wait_table_status(third, name, NOT_AUTHORIZED)
    _wait_replica_status(first, name, REGIONS[2], NOT_AUTHORIZED)
    first.put_item(TableName=name, Item={"pk": {"S": "held"}, "kind": {"S": "k"}})
    time.sleep(1.5)
    assert "held" not in [i["pk"]["S"] for i in _scan(third, name)]
    third.delete_resource_policy(ResourceArn=stream_arn)
    _wait_table_status(third, name, "ACTIVE")
    _wait_replica_status(first, name, REGIONS[2], "ACTIVE")
    assert [i["pk"]["S"] for i in _converged(trio, name, indexes=(0, 2))] == ["a", "harmless", "held"]


def _keyed_global(trio, name: str) -> None:
    """A global table of the first and third regions, the third's replica on a customer managed key."""
    first = trio.client(0)
    _create(first, name)
    first.update_table(TableName=name, SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                         "KMSMasterKeyId": f"{name}-first"})
    first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[2],
                                                                   "KMSMasterKeyId": f"{name}-third"}}])
    _wait_active(first, name)
    _wait_active(trio.client(2), name)


def test_not_authorized_first_then_a_key_unusable_shows_not_authorized_then_inaccessible(trio):
    """Neither the guide nor the API Reference says which status wins: the
    first reached is kept while both hold; once the policy allows, the table
    goes straight to INACCESSIBLE_ENCRYPTION_CREDENTIALS (never ACTIVE
    between), and ACTIVE once the key is usable."""
    name = "na_then_kms"
    _keyed_global(trio, name)
    first, third = trio.client(0), trio.client(2)
    third.put_resource_policy(ResourceArn=_arn(2, name), Policy=_policy(
        {"AWS": SLR}, "dynamodb:PutItem", _arn(2, name)))
    _wait_table_status(third, name, NOT_AUTHORIZED)
    set_kms_key_state(_data_dir(trio, 2), f"{name}-third", "Disabled")
    try:
        time.sleep(1.5)  # more than a key check
        assert third.describe_table(TableName=name)["Table"]["TableStatus"] == NOT_AUTHORIZED
        assert _wait_replica_status(first, name, REGIONS[2], NOT_AUTHORIZED)
        third.delete_resource_policy(ResourceArn=_arn(2, name))
        seen = set()
        table = _until(lambda: third.describe_table(TableName=name)["Table"],
                       lambda t: seen.add(t["TableStatus"]) or t["TableStatus"] != NOT_AUTHORIZED)
        assert table["TableStatus"] == INACCESSIBLE and "InaccessibleEncryptionDateTime" in table["SSEDescription"]
        _wait_replica_status(first, name, REGIONS[2], INACCESSIBLE)
        time.sleep(1.5)
        assert third.describe_table(TableName=name)["Table"]["TableStatus"] == INACCESSIBLE
    finally:
        set_kms_key_state(_data_dir(trio, 2), f"{name}-third", "Enabled")
    assert "ACTIVE" not in seen
    _wait_table_status(third, name, "ACTIVE")
    _wait_replica_status(first, name, REGIONS[2], "ACTIVE")


def test_a_key_unusable_first_then_a_deny_shows_inaccessible_then_not_authorized(trio):
    """The reverse: INACCESSIBLE_ENCRYPTION_CREDENTIALS is kept while the
    policy denies too; once the key is usable the table is
    REPLICATION_NOT_AUTHORIZED, and ACTIVE once the policy allows."""
    name = "kms_then_na"
    _keyed_global(trio, name)
    first, third = trio.client(0), trio.client(2)
    set_kms_key_state(_data_dir(trio, 2), f"{name}-third", "Disabled")
    try:
        _wait_table_status(third, name, INACCESSIBLE)
        third.put_resource_policy(ResourceArn=_arn(2, name), Policy=_policy(
            SERVICE, "dynamodb:WriteDataForReplication", _arn(2, name)))
        time.sleep(1.5)  # more than a policy check
        assert third.describe_table(TableName=name)["Table"]["TableStatus"] == INACCESSIBLE
        _wait_replica_status(first, name, REGIONS[2], INACCESSIBLE)
    finally:
        set_kms_key_state(_data_dir(trio, 2), f"{name}-third", "Enabled")
    seen = set()
    table = _until(lambda: third.describe_table(TableName=name)["Table"],
                   lambda t: seen.add(t["TableStatus"]) or t["TableStatus"] != INACCESSIBLE)
    assert table["TableStatus"] == NOT_AUTHORIZED and "InaccessibleEncryptionDateTime" not in table["SSEDescription"]
    _wait_replica_status(first, name, REGIONS[2], NOT_AUTHORIZED)
    first.put_item(TableName=name, Item={"pk": {"S": "held"}, "kind": {"S": "k"}})
    time.sleep(1.5)
    assert "held" not in [i["pk"]["S"] for i in _scan(third, name)]
    third.delete_resource_policy(ResourceArn=_arn(2, name))
    _wait_table_status(third, name, "ACTIVE")
    assert "ACTIVE" not in seen
    assert [i["pk"]["S"] for i in _converged(trio, name, indexes=(0, 2))] == ["held"]
