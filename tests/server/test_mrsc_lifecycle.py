"""A global table's replicas after creation, across three real ``shoal serve``
processes (us-east-1, us-east-2, us-west-2): ReplicaUpdates Update on an MREC
and on an MRSC table (the change reaches the named region's own table and
every region's DescribeTable; the replica is UPDATING until it has, which a
region cut off by ``--peer-pause`` makes last; a replica UPDATING can still
be removed), a replica's KMSMasterKeyId as its encryption in its own region,
and DeleteTable of one replica (an MREC replica leaves the group; an MRSC
replica is refused, as the Developer Guide says a single replica cannot be
removed from an MRSC global table).
"""

from __future__ import annotations

import time

import pytest

from tests.server.test_mrsc import OUTSIDE, REGIONS, Regions, _create, _error, _strong_table

INVALID = "One or more parameter values were invalid: "
WAIT_S = 30.0


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    trio = Regions(str(tmp_path_factory.mktemp("lifecycle")))
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def _until(check, what):
    deadline = time.monotonic() + WAIT_S
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what()
        time.sleep(0.1)


def _table(client, name: str) -> dict:
    return client.describe_table(TableName=name)["Table"]


def _entry(table: dict, region: str) -> dict:
    return next(r for r in table.get("Replicas") or () if r["RegionName"] == region)


def _all_active(client, name: str, count: int) -> bool:
    try:
        table = _table(client, name)
    except client.exceptions.ResourceNotFoundException:  # a replica not made yet
        return False
    replicas = table.get("Replicas") or ()
    return table["TableStatus"] == "ACTIVE" and len(replicas) == count and all(
        r["ReplicaStatus"] == "ACTIVE" for r in replicas)


def _provisioned_global_table(regions, name: str) -> None:
    regions.client(0).create_table(
        TableName=name, BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"},
                                 "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}}])
    regions.client(0).update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}},
                                                                   {"Create": {"RegionName": REGIONS[2]}}])
    for i in range(3):
        _until(lambda: _all_active(regions.client(i), name, 2), lambda: _table(regions.client(i), name))


def test_replica_update_on_an_mrec_table_reaches_its_region_and_every_description(regions):
    name = "lifecycle_mrec_update"
    _provisioned_global_table(regions, name)
    east1, east2, west2 = (regions.client(i) for i in range(3))
    answer = east1.update_table(TableName=name, ReplicaUpdates=[{"Update": {
        "RegionName": REGIONS[2], "ProvisionedThroughputOverride": {"ReadCapacityUnits": 7},
        "GlobalSecondaryIndexes": [{"IndexName": "by_g", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 3}}],
        "TableClassOverride": "STANDARD_INFREQUENT_ACCESS"}}])["TableDescription"]
    shown = {"RegionName": REGIONS[2], "ReplicaStatus": "ACTIVE",
             "ProvisionedThroughputOverride": {"ReadCapacityUnits": 7},
             "GlobalSecondaryIndexes": [{"IndexName": "by_g",
                                         "ProvisionedThroughputOverride": {"ReadCapacityUnits": 3}}],
             "ReplicaTableClassSummary": {"TableClass": "STANDARD_INFREQUENT_ACCESS"}}
    assert _entry(answer, REGIONS[2]) == {**shown, "ReplicaStatus": "UPDATING"}  # until the change reaches it

    # us-west-2's own table took the change (UpdateTable in the destination Region).
    def applied():
        table = _table(west2, name)
        return (table["ProvisionedThroughput"]["ReadCapacityUnits"] == 7
                and table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["ReadCapacityUnits"] == 3
                and (table.get("TableClassSummary") or {}).get("TableClass") == "STANDARD_INFREQUENT_ACCESS")

    _until(applied, lambda: _table(west2, name))
    table = _table(west2, name)
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 5  # the write side is the global table's
    assert table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["WriteCapacityUnits"] == 5
    # Every other region shows the override in us-west-2's entry, ACTIVE; their own tables are unchanged.
    _until(lambda: _entry(_table(east1, name), REGIONS[2]) == shown, lambda: _table(east1, name))
    _until(lambda: _entry(_table(east2, name), REGIONS[2]) == shown, lambda: _table(east2, name))
    for client in (east1, east2):
        own = _table(client, name)
        assert own["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
        assert (own.get("TableClassSummary") or {}).get("TableClass", "STANDARD") == "STANDARD"
    # Replication goes on.
    west2.put_item(TableName=name, Item={"pk": {"S": "after-update"}, "g": {"S": "x"}})
    _until(lambda: "Item" in east2.get_item(TableName=name, Key={"pk": {"S": "after-update"}}),
           lambda: "not replicated")


def test_replica_update_refusals_name_the_rule_and_change_nothing(regions):
    name = "lifecycle_refusals"
    _provisioned_global_table(regions, name)
    east1 = regions.client(0)
    before = _table(east1, name)
    cases = [
        ({"RegionName": REGIONS[0], "ProvisionedThroughputOverride": {"ReadCapacityUnits": 4}},
         f"{INVALID}Replica region {REGIONS[0]} is the region of the table itself"),
        ({"RegionName": OUTSIDE, "ProvisionedThroughputOverride": {"ReadCapacityUnits": 4}},
         f"{INVALID}Replica does not exist in region {OUTSIDE}"),
        ({"RegionName": REGIONS[1], "OnDemandThroughputOverride": {"MaxReadRequestUnits": 10}},
         f"{INVALID}OnDemandThroughputOverride for table {name} cannot be specified when the table BillingMode "
         "is PROVISIONED"),
        ({"RegionName": REGIONS[1], "GlobalSecondaryIndexes": [
            {"IndexName": "nope", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 4}}]},
         f"{INVALID}Global secondary index nope does not exist in table {name}"),
        ({"RegionName": REGIONS[1], "TableClassOverride": "GLACIER"},
         "Invalid table-class parameter provided. Please try again with a valid table-class value: "
         "[STANDARD, STANDARD_INFREQUENT_ACCESS]."),
    ]
    for spec, message in cases:
        assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[{"Update": spec}])) == (
            "ValidationException", message, 400)
    assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[
        {"Update": {"RegionName": REGIONS[1]}}, {"Update": {"RegionName": REGIONS[1]}}])) == (
        "ValidationException", f"{INVALID}Only one replica update per region is allowed: {REGIONS[1]}", 400)
    assert _table(east1, name)["Replicas"] == before["Replicas"]
    assert _table(regions.client(1), name)["ProvisionedThroughput"]["ReadCapacityUnits"] == 5


def test_replica_update_on_an_mrsc_table_reaches_its_region_and_rounds_go_on(regions):
    name = "lifecycle_mrsc_update"
    _strong_table(regions, name)
    east1, east2, west2 = (regions.client(i) for i in range(3))
    answer = east1.update_table(TableName=name, ReplicaUpdates=[{"Update": {
        "RegionName": REGIONS[1], "OnDemandThroughputOverride": {"MaxReadRequestUnits": 100},
        "TableClassOverride": "STANDARD_INFREQUENT_ACCESS"}}])["TableDescription"]
    shown = {"RegionName": REGIONS[1], "ReplicaStatus": "ACTIVE",
             "OnDemandThroughputOverride": {"MaxReadRequestUnits": 100},
             "ReplicaTableClassSummary": {"TableClass": "STANDARD_INFREQUENT_ACCESS"}}
    assert _entry(answer, REGIONS[1]) == {**shown, "ReplicaStatus": "UPDATING"}
    assert answer["MultiRegionConsistency"] == "STRONG"

    def applied():
        table = _table(east2, name)
        return ((table.get("OnDemandThroughput") or {}).get("MaxReadRequestUnits") == 100
                and (table.get("TableClassSummary") or {}).get("TableClass") == "STANDARD_INFREQUENT_ACCESS")

    _until(applied, lambda: _table(east2, name))
    for client in (east1, west2):
        _until(lambda: _entry(_table(client, name), REGIONS[1]) == shown, lambda: _table(client, name))
    table = _table(east2, name)
    assert table["MultiRegionConsistency"] == "STRONG"
    assert sorted(r["RegionName"] for r in table["Replicas"]) == [REGIONS[0], REGIONS[2]]
    # The consensus is untouched: a write in us-east-2 is read strongly in the other two at once.
    east2.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "1"}})
    for client in (east1, west2):
        assert client.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"] == {
            "pk": {"S": "k"}, "v": {"N": "1"}}
    # What MRSC refuses: an Update together with a Delete; the table's own region; a provisioned override
    # on an on-demand table.
    assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[
        {"Update": {"RegionName": REGIONS[1]}}, {"Delete": {"RegionName": REGIONS[2]}}])) == (
        "ValidationException", f"{INVALID}ReplicaUpdates of a multi-Region strong consistency global table either "
        "update replicas or remove the other regions, not both in one UpdateTable", 400)
    assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[
        {"Update": {"RegionName": REGIONS[0], "TableClassOverride": "STANDARD"}}])) == (
        "ValidationException", f"{INVALID}Replica region {REGIONS[0]} is the region of the table itself", 400)
    assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[
        {"Update": {"RegionName": REGIONS[2], "ProvisionedThroughputOverride": {"ReadCapacityUnits": 4}}}])) == (
        "ValidationException", f"{INVALID}ProvisionedThroughputOverride for table {name} cannot be specified when "
        "the table BillingMode is PAY_PER_REQUEST", 400)
    assert _entry(_table(east1, name), REGIONS[2]) == {"RegionName": REGIONS[2], "ReplicaStatus": "ACTIVE"}


def test_deleting_one_replica_of_an_mrsc_table_is_refused_and_it_keeps_serving(regions):
    name = "lifecycle_mrsc_delete"
    _strong_table(regions, name)
    east1, east2, west2 = (regions.client(i) for i in range(3))
    east1.put_item(TableName=name, Item={"pk": {"S": "kept"}})
    for i, client in enumerate((east1, east2, west2)):
        others = " and ".join(r for r in REGIONS if r != REGIONS[i])
        assert _error(lambda: client.delete_table(TableName=name)) == (
            "ValidationException", f"{INVALID}Table {name} is a replica of a multi-Region strong consistency global "
            f"table: a single replica cannot be deleted. Remove {others} in one UpdateTable, leaving a "
            "single-Region table, then delete it", 400)
    arn = _table(east2, name)["TableArn"]
    assert _error(lambda: east2.delete_table(TableName=arn))[0] == "ValidationException"
    for client in (east1, east2, west2):  # still one MRSC table of three regions, serving strongly
        table = _table(client, name)
        assert table["TableStatus"] == "ACTIVE" and len(table["Replicas"]) == 2
        assert client.get_item(TableName=name, Key={"pk": {"S": "kept"}}, ConsistentRead=True)["Item"] == {
            "pk": {"S": "kept"}}
    west2.put_item(TableName=name, Item={"pk": {"S": "later"}})
    assert east2.get_item(TableName=name, Key={"pk": {"S": "later"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "later"}}
    # A regional table and a missing one are DeleteTable's as ever.
    _create(east2, "lifecycle_regional")
    assert east2.delete_table(TableName="lifecycle_regional")["TableDescription"]["TableStatus"] == "DELETING"
    assert _error(lambda: east2.delete_table(TableName="lifecycle_missing")) == (
        "ResourceNotFoundException", "Requested resource not found: Table: lifecycle_missing not found", 400)


def test_deleting_one_replica_of_an_mrec_table_removes_it_from_every_description(regions):
    name = "lifecycle_mrec_delete"
    _provisioned_global_table(regions, name)
    east1, east2, west2 = (regions.client(i) for i in range(3))
    assert west2.delete_table(TableName=name)["TableDescription"]["TableStatus"] == "DELETING"
    for client in (east1, east2):
        _until(lambda: [r["RegionName"] for r in _table(client, name).get("Replicas") or ()] == [
            REGIONS[1] if client is east1 else REGIONS[0]], lambda: _table(client, name))
    east1.put_item(TableName=name, Item={"pk": {"S": "two-left"}, "g": {"S": "x"}})
    _until(lambda: "Item" in east2.get_item(TableName=name, Key={"pk": {"S": "two-left"}}),
           lambda: "not replicated")


def _paused_update(regions, name: str, update: dict, applied) -> None:
    """us-east-2 restarted cut off from us-east-1 (``--peer-pause``), then
    ReplicaUpdates Update of us-east-2 from us-east-1: us-east-2 is UPDATING
    in us-east-1's and us-west-2's DescribeTable for as long as the change
    has not reached it (not REGION_DISABLED, which a second without an
    answer shows for an ACTIVE replica), and a second ReplicaUpdates waits;
    healed, the change lands there and it is ACTIVE everywhere."""
    east1, west2 = regions.client(0), regions.client(2)
    regions.procs[1].stop()
    regions.start(1, f"--peer-pause={REGIONS[0]}")
    try:
        # us-west-2 hears from us-east-2 again after its restart; us-east-1 does not
        _until(lambda: _entry(_table(west2, name), REGIONS[1]).get("ReplicaStatusDescription") is None
               and _entry(_table(west2, name), REGIONS[1])["ReplicaStatus"] == "ACTIVE", lambda: _table(west2, name))
        _until(lambda: _entry(_table(east1, name), REGIONS[1])["ReplicaStatus"] == "REGION_DISABLED",
               lambda: _table(east1, name))
        answer = east1.update_table(TableName=name, ReplicaUpdates=[{"Update": update}])["TableDescription"]
        assert _entry(answer, REGIONS[1])["ReplicaStatus"] == "UPDATING"
        assert answer["TableStatus"] == "ACTIVE"
        _until(lambda: _entry(_table(west2, name), REGIONS[1])["ReplicaStatus"] == "UPDATING",
               lambda: _table(west2, name))
        time.sleep(2.0)  # past the second after which an unanswering ACTIVE replica is REGION_DISABLED
        for client in (east1, west2):
            table = _table(client, name)
            assert table["TableStatus"] == "ACTIVE"
            assert {k: v for k, v in _entry(table, REGIONS[1]).items() if k in ("RegionName", "ReplicaStatus")} == {
                "RegionName": REGIONS[1], "ReplicaStatus": "UPDATING"}
            assert "ReplicaInaccessibleDateTime" not in _entry(table, REGIONS[1])
        assert not applied(regions.client(1))  # it has not reached us-east-2's own table
        assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[{"Update": update}])) == (
            "ResourceInUseException",
            f"Attempt to change a resource which is still in use: Table is being updated: {name}", 400)
    finally:
        regions.procs[1].stop()
        regions.start(1)
    _until(lambda: applied(regions.client(1)), lambda: _table(regions.client(1), name))
    for client in (east1, west2):
        _until(lambda: _entry(_table(client, name), REGIONS[1])["ReplicaStatus"] == "ACTIVE",
               lambda: _table(client, name))


def test_a_replica_is_updating_until_its_change_reaches_it_on_an_mrsc_table(regions):
    name = "lifecycle_mrsc_updating"
    _strong_table(regions, name)

    def applied(client):
        return (_table(client, name).get("OnDemandThroughput") or {}).get("MaxReadRequestUnits") == 50

    _paused_update(regions, name, {"RegionName": REGIONS[1], "OnDemandThroughputOverride": {
        "MaxReadRequestUnits": 50}}, applied)
    # Strong reads and writes went on, and go on
    regions.client(0).put_item(TableName=name, Item={"pk": {"S": "k"}})
    assert regions.client(1).get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "k"}}
    assert _entry(_table(regions.client(0), name), REGIONS[1])["OnDemandThroughputOverride"] == {
        "MaxReadRequestUnits": 50}


def test_a_replica_is_updating_until_its_change_reaches_it_on_an_mrec_table(regions):
    name = "lifecycle_mrec_updating"
    _provisioned_global_table(regions, name)

    def applied(client):
        return _table(client, name)["ProvisionedThroughput"]["ReadCapacityUnits"] == 9

    _paused_update(regions, name, {"RegionName": REGIONS[1], "ProvisionedThroughputOverride": {
        "ReadCapacityUnits": 9}}, applied)
    for i in (0, 2):
        assert _table(regions.client(i), name)["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    regions.client(1).put_item(TableName=name, Item={"pk": {"S": "after"}, "g": {"S": "x"}})
    _until(lambda: "Item" in regions.client(0).get_item(TableName=name, Key={"pk": {"S": "after"}}),
           lambda: "not replicated")


def _kms_table(regions, name: str, key: str | None) -> str:
    """A regional on-demand table in us-east-1 encrypted with KMS ``key``
    (None: the AWS managed key); its account id."""
    sse = {"Enabled": True, "SSEType": "KMS", **({"KMSMasterKeyId": key} if key else {})}
    _create(regions.client(0), name, SSESpecification=sse)
    return _table(regions.client(0), name)["TableArn"].split(":")[4]


def _kms(region: str, account: str, key: str) -> dict:
    return {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": f"arn:aws:kms:{region}:{account}:{key}"}


def test_a_replicas_kms_key_is_applied_in_its_own_region(regions):
    """ReplicaUpdates' KMSMasterKeyId becomes the replica's encryption in its
    region, as a regional table's SSESpecification does (a key id or alias
    read as one of that region); Update changes it there."""
    name = "lifecycle_kms"
    account = _kms_table(regions, name, "key-east-1")
    east1, east2, west2 = (regions.client(i) for i in range(3))
    assert _table(east1, name)["SSEDescription"] == _kms(REGIONS[0], account, "key/key-east-1")
    # A customer managed key is regional: each replica needs a key of its own region
    assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[
        {"Create": {"RegionName": REGIONS[1]}}])) == (
        "ValidationException", f"{INVALID}Table {name} is encrypted with a customer managed KMS key: the replica in "
        f"region {REGIONS[1]} needs KMSMasterKeyId, a key of that region", 400)
    foreign = f"arn:aws:kms:{REGIONS[0]}:{account}:key/key-east-1"
    assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[
        {"Create": {"RegionName": REGIONS[1], "KMSMasterKeyId": foreign}}])) == (
        "ValidationException", f"{INVALID}KMSMasterKeyId {foreign} is not a key of replica region {REGIONS[1]}: "
        "a replica's KMS key must be in the replica's region", 400)
    assert "Replicas" not in _table(east1, name)
    west_key = f"arn:aws:kms:{REGIONS[2]}:{account}:alias/west"
    east1.update_table(TableName=name, ReplicaUpdates=[
        {"Create": {"RegionName": REGIONS[1], "KMSMasterKeyId": "key-east-2"}},
        {"Create": {"RegionName": REGIONS[2], "KMSMasterKeyId": west_key}}])
    for i in range(3):
        _until(lambda: _all_active(regions.client(i), name, 2), lambda: _table(regions.client(i), name))
    assert _table(east2, name)["SSEDescription"] == _kms(REGIONS[1], account, "key/key-east-2")
    assert _table(west2, name)["SSEDescription"] == _kms(REGIONS[2], account, "alias/west")
    assert _table(east1, name)["SSEDescription"] == _kms(REGIONS[0], account, "key/key-east-1")
    for client in (east1, west2):  # the replica's entry shows the key as given, in every region
        _until(lambda: _entry(_table(client, name), REGIONS[1]).get("KMSMasterKeyId") == "key-east-2",
               lambda: _table(client, name))
    # Update: the new key reaches us-east-2's own table; the others keep theirs
    answer = east1.update_table(TableName=name, ReplicaUpdates=[
        {"Update": {"RegionName": REGIONS[1], "KMSMasterKeyId": "alias/east-2-new"}}])["TableDescription"]
    assert _entry(answer, REGIONS[1])["KMSMasterKeyId"] == "alias/east-2-new"
    _until(lambda: _table(east2, name)["SSEDescription"] == _kms(REGIONS[1], account, "alias/east-2-new"),
           lambda: _table(east2, name))
    for client in (east1, west2):
        _until(lambda: _entry(_table(client, name), REGIONS[1]) == {
            "RegionName": REGIONS[1], "ReplicaStatus": "ACTIVE", "KMSMasterKeyId": "alias/east-2-new"},
            lambda: _table(client, name))
    assert _table(west2, name)["SSEDescription"] == _kms(REGIONS[2], account, "alias/west")
    assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[
        {"Update": {"RegionName": REGIONS[2], "KMSMasterKeyId": foreign}}]))[:2] == (
        "ValidationException", f"{INVALID}KMSMasterKeyId {foreign} is not a key of replica region {REGIONS[2]}: "
        "a replica's KMS key must be in the replica's region")
    # Replication goes on under the regions' own keys
    east2.put_item(TableName=name, Item={"pk": {"S": "sealed"}})
    _until(lambda: "Item" in west2.get_item(TableName=name, Key={"pk": {"S": "sealed"}}), lambda: "not replicated")


def test_a_replica_of_a_table_with_the_aws_managed_key_has_its_regions_own(regions):
    name = "lifecycle_kms_managed"
    account = _kms_table(regions, name, None)
    east1, east2 = regions.client(0), regions.client(1)
    assert _table(east1, name)["SSEDescription"] == _kms(REGIONS[0], account, "alias/aws/dynamodb")
    east1.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}])
    _until(lambda: _all_active(east2, name, 1), lambda: _table(east2, name))
    assert _table(east2, name)["SSEDescription"] == _kms(REGIONS[1], account, "alias/aws/dynamodb")
    assert "KMSMasterKeyId" not in _entry(_table(east1, name), REGIONS[1])
    # and a table with the AWS owned key (no SSEDescription) has replicas without one
    plain = "lifecycle_kms_owned"
    _create(east1, plain)
    east1.update_table(TableName=plain, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}])
    _until(lambda: _all_active(east2, plain, 1), lambda: _table(east2, plain))
    assert "SSEDescription" not in _table(east2, plain)


def test_replicas_are_updating_until_a_gsi_made_in_one_region_has_reached_them(regions):
    """A GSI created in us-east-1 is sent to every replica; while us-east-2
    is cut off from us-east-1, us-east-1 shows its replicas UPDATING, and
    us-east-2 has no such index; healed, both replicas have it and are
    ACTIVE everywhere."""
    name = "lifecycle_gsi_updating"
    _provisioned_global_table(regions, name)
    east1 = regions.client(0)
    regions.procs[1].stop()
    regions.start(1, f"--peer-pause={REGIONS[0]}")
    try:
        answer = east1.update_table(
            TableName=name, AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "S"}],
            GlobalSecondaryIndexUpdates=[{"Create": {
                "IndexName": "by_h", "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}}}])["TableDescription"]
        assert [(r["RegionName"], r["ReplicaStatus"]) for r in answer["Replicas"]] == [
            (REGIONS[1], "UPDATING"), (REGIONS[2], "UPDATING")]
        time.sleep(2.0)  # past the second after which an unanswering ACTIVE replica is REGION_DISABLED
        assert _entry(_table(east1, name), REGIONS[1])["ReplicaStatus"] == "UPDATING"
        assert [g["IndexName"] for g in _table(regions.client(1), name)["GlobalSecondaryIndexes"]] == ["by_g"]
    finally:
        regions.procs[1].stop()
        regions.start(1)
    for i in (1, 2):
        _until(lambda: "by_h" in [g["IndexName"] for g in _table(regions.client(i), name)["GlobalSecondaryIndexes"]],
               lambda: _table(regions.client(i), name))
    for i in range(3):
        _until(lambda: _all_active(regions.client(i), name, 2), lambda: _table(regions.client(i), name))


def test_a_replica_updating_while_cut_off_can_be_deleted_and_the_others_are_told_at_once(regions):
    """A change waiting for a region that does not answer must not hold
    back that replica's removal: deleting it drops the change queued for
    it, the other replicas are told at once, and its table is deleted when
    it answers again."""
    name = "lifecycle_delete_updating"
    _provisioned_global_table(regions, name)
    east1, west2 = regions.client(0), regions.client(2)
    regions.procs[1].stop()
    regions.start(1, f"--peer-pause={REGIONS[0]}")
    try:
        east1.update_table(TableName=name, ReplicaUpdates=[{"Update": {
            "RegionName": REGIONS[1], "ProvisionedThroughputOverride": {"ReadCapacityUnits": 8}}}])
        assert _entry(_table(east1, name), REGIONS[1])["ReplicaStatus"] == "UPDATING"
        # Another Update (or a Create) waits; a Delete of the replica UPDATING does not
        assert _error(lambda: east1.update_table(TableName=name, ReplicaUpdates=[{"Update": {
            "RegionName": REGIONS[2], "ProvisionedThroughputOverride": {"ReadCapacityUnits": 8}}}]))[0] == (
            "ResourceInUseException")
        east1.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}])
        assert [(r["RegionName"], r["ReplicaStatus"]) for r in _table(east1, name)["Replicas"]] == [
            (REGIONS[2], "ACTIVE")]
        _until(lambda: [r["RegionName"] for r in _table(west2, name)["Replicas"]] == [REGIONS[0]],
               lambda: _table(west2, name))
        east1.put_item(TableName=name, Item={"pk": {"S": "two"}, "g": {"S": "x"}})
        _until(lambda: "Item" in west2.get_item(TableName=name, Key={"pk": {"S": "two"}}), lambda: "not replicated")
        assert _table(regions.client(1), name)["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    finally:
        regions.procs[1].stop()
        regions.start(1)
    east2 = regions.client(1)

    def gone() -> bool:
        try:
            _table(east2, name)
        except east2.exceptions.ResourceNotFoundException:
            return True
        return False

    _until(gone, lambda: _table(east2, name))


def test_the_other_regions_are_removed_from_an_mrsc_table_while_one_is_updating_and_cut_off(regions):
    """us-east-2 UPDATING and cut off from us-east-1: removing both other
    regions is taken (a change waiting for a region that does not answer
    must not hold back the removal), seals us-west-2 with us-east-1, and
    leaves a single-Region table in us-east-1 with every acknowledged write."""
    from tests.server.test_mrsc import _wait_gone, _wait_regional

    name = "lifecycle_leave_updating"
    _strong_table(regions, name)
    east1 = regions.client(0)
    east1.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"S": "1"}})
    regions.procs[1].stop()
    regions.start(1, f"--peer-pause={REGIONS[0]}")
    try:
        regions.client(1).put_item(TableName=name, Item={"pk": {"S": "b"}, "v": {"S": "2"}})  # with us-west-2 only
        east1.update_table(TableName=name, ReplicaUpdates=[{"Update": {
            "RegionName": REGIONS[1], "OnDemandThroughputOverride": {"MaxReadRequestUnits": 70}}}])
        assert _entry(_table(east1, name), REGIONS[1])["ReplicaStatus"] == "UPDATING"
        east1.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}},
                                                           {"Delete": {"RegionName": REGIONS[2]}}])
        table = _wait_regional(east1, name)
        assert "MultiRegionConsistency" not in table
        items = {i["pk"]["S"]: i["v"]["S"] for i in east1.scan(TableName=name, ConsistentRead=True)["Items"]}
        assert items == {"a": "1", "b": "2"}
        _wait_gone(regions.client(2), name)
    finally:
        regions.procs[1].stop()
        regions.start(1)
    _wait_gone(regions.client(1), name)
