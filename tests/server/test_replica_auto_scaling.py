"""DescribeTableReplicaAutoScaling and UpdateTableReplicaAutoScaling against
real ``shoal serve`` processes: a regional and an on-demand table on the
shared server, and a global table over three regions (one process each),
checked through Application Auto Scaling's own API in each region and
through the capacity each region's scaler gives its replica."""

from __future__ import annotations

import time
import urllib.request

import botocore.exceptions
import orjson
import pytest

from tests.conftest import make_client, unique_name
from tests.server.test_global_tables import REGIONS, Regions

WAIT_S = 30.0
ACCOUNT = "000000000000"
ROLE = (f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/dynamodb.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_DynamoDBTable")
DISABLED = {"AutoScalingDisabled": True, "ScalingPolicies": []}
INVALID = "One or more parameter values were invalid: "


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    # The scaler looks every half second, so that a range it must enforce shows quickly.
    trio = Regions(str(tmp_path_factory.mktemp("replica-scaling")), skew=False,
                   env={"SHOAL_AUTOSCALING_INTERVAL_S": "0.5"})
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def _provisioned_table(client, name: str) -> None:
    client.create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "kind", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        GlobalSecondaryIndexes=[{"IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"},
                                 "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}}])


def _replica(region: str, *, read=DISABLED, write=DISABLED, index_read=DISABLED, index_write=DISABLED,
             status: str = "ACTIVE") -> dict:
    return {"RegionName": region,
            "GlobalSecondaryIndexes": [{"IndexName": "by_kind", "IndexStatus": "ACTIVE",
                                        "ProvisionedReadCapacityAutoScalingSettings": index_read,
                                        "ProvisionedWriteCapacityAutoScalingSettings": index_write}],
            "ReplicaProvisionedReadCapacityAutoScalingSettings": read,
            "ReplicaProvisionedWriteCapacityAutoScalingSettings": write,
            "ReplicaStatus": status}


def _enabled(low: int, high: int, *policies: tuple[str, dict]) -> dict:
    return {"MinimumUnits": low, "MaximumUnits": high, "AutoScalingRoleArn": ROLE,
            "ScalingPolicies": [{"PolicyName": name, "TargetTrackingScalingPolicyConfiguration": config}
                                for name, config in policies]}


def _error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def _describe(client, name: str) -> dict:
    return client.describe_table_replica_auto_scaling(TableName=name)["TableAutoScalingDescription"]


# ---------------------------------------------------------------- a regional table


def test_regional_table_is_its_own_single_replica(ddb, shoal):
    name = unique_name("ras")
    _provisioned_table(ddb, name)
    assert _describe(ddb, name) == {"TableName": name, "TableStatus": "ACTIVE", "Replicas": [_replica("us-east-1")]}

    answer = ddb.update_table_replica_auto_scaling(
        TableName=name,
        ProvisionedWriteCapacityAutoScalingUpdate={
            "MinimumUnits": 5, "MaximumUnits": 50,
            "ScalingPolicyUpdate": {"TargetTrackingScalingPolicyConfiguration": {"TargetValue": 70,
                                                                                 "ScaleInCooldown": 60}}},
        ReplicaUpdates=[{"RegionName": "us-east-1", "ReplicaGlobalSecondaryIndexUpdates": [{
            "IndexName": "by_kind", "ProvisionedReadCapacityAutoScalingUpdate": {"MinimumUnits": 2,
                                                                                 "MaximumUnits": 9}}]}])
    write = _enabled(5, 50, (f"DynamoDBWriteCapacityUtilization:table/{name}",
                             {"ScaleInCooldown": 60, "TargetValue": 70.0}))
    expected = {"TableName": name, "TableStatus": "ACTIVE",
                "Replicas": [_replica("us-east-1", write=write, index_read=_enabled(2, 9))]}
    assert answer["TableAutoScalingDescription"] == expected
    assert _describe(ddb, name) == expected

    # The same records through Application Auto Scaling's API
    scaling = make_client(shoal.url, service="application-autoscaling")
    targets = scaling.describe_scalable_targets(
        ServiceNamespace="dynamodb", ResourceIds=[f"table/{name}", f"table/{name}/index/by_kind"])["ScalableTargets"]
    assert sorted((t["ResourceId"], t["ScalableDimension"], t["MinCapacity"], t["MaxCapacity"]) for t in targets) == [
        (f"table/{name}", "dynamodb:table:WriteCapacityUnits", 5, 50),
        (f"table/{name}/index/by_kind", "dynamodb:index:ReadCapacityUnits", 2, 9)]
    policies = scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{name}")
    [policy] = policies["ScalingPolicies"]
    assert policy["PolicyName"] == f"DynamoDBWriteCapacityUtilization:table/{name}"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 70.0, "ScaleInCooldown": 60,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}}

    # A range changed on its own keeps the policy; AutoScalingDisabled removes the target and its policies
    role = f"arn:aws:iam::{ACCOUNT}:role/scaler"
    ddb.update_table_replica_auto_scaling(TableName=name, ProvisionedWriteCapacityAutoScalingUpdate={
        "MaximumUnits": 80, "AutoScalingRoleArn": role})
    assert _describe(ddb, name)["Replicas"][0]["ReplicaProvisionedWriteCapacityAutoScalingSettings"] == {
        **_enabled(5, 80, (f"DynamoDBWriteCapacityUtilization:table/{name}",
                           {"ScaleInCooldown": 60, "TargetValue": 70.0})), "AutoScalingRoleArn": role}
    ddb.update_table_replica_auto_scaling(TableName=name,
                                          ProvisionedWriteCapacityAutoScalingUpdate={"AutoScalingDisabled": True})
    assert _describe(ddb, name)["Replicas"][0]["ReplicaProvisionedWriteCapacityAutoScalingSettings"] == DISABLED
    assert scaling.describe_scaling_policies(ServiceNamespace="dynamodb",
                                             ResourceId=f"table/{name}")["ScalingPolicies"] == []


def test_refusals_leave_the_settings_alone(ddb):
    name = unique_name("ras")
    _provisioned_table(ddb, name)
    update = ddb.update_table_replica_auto_scaling
    assert _error(update, TableName=name, ReplicaUpdates=[
        {"RegionName": "eu-west-1", "ReplicaProvisionedReadCapacityAutoScalingUpdate": {"MinimumUnits": 1}},
        {"RegionName": "ap-south-1", "ReplicaProvisionedReadCapacityAutoScalingUpdate": {"MinimumUnits": 1}}]) == (
        "ReplicaNotFoundException",
        f"Failed to update settings for global table with name: \u2018{name}\u2019 because a replica does not exist "
        "in regions: \u2018[eu-west-1, ap-south-1]\u2019.")
    assert _error(update, TableName=name, GlobalSecondaryIndexUpdates=[
        {"IndexName": "nope", "ProvisionedWriteCapacityAutoScalingUpdate": {"MinimumUnits": 1, "MaximumUnits": 2}}]) \
        == ("IndexNotFoundException",
            f"Failed to update settings for global table with name: \u2018{name}\u2019 because the global secondary "
            "indexes with names: \u2018[nope]\u2019 do not exist.")
    assert _error(update, TableName=name, ProvisionedWriteCapacityAutoScalingUpdate={
        "MinimumUnits": 10, "MaximumUnits": 5}) == (
        "ValidationException",
        f"{INVALID}MinimumUnits (10) cannot be greater than MaximumUnits (5) for the write capacity of table {name}")
    assert _error(update, TableName=name, ProvisionedWriteCapacityAutoScalingUpdate={"MinimumUnits": 10}) == (
        "ValidationException",
        f"{INVALID}MinimumUnits and MaximumUnits are needed to turn on auto scaling of the write capacity of "
        f"table {name}")
    assert _error(update, TableName=name, GlobalSecondaryIndexUpdates=[{
        "IndexName": "by_kind", "ProvisionedWriteCapacityAutoScalingUpdate": {
            "MinimumUnits": 1, "MaximumUnits": 5,
            "ScalingPolicyUpdate": {"TargetTrackingScalingPolicyConfiguration": {"TargetValue": 95}}}}]) == (
        "ValidationException",
        f"{INVALID}TargetValue must be between 20 and 90 (percent): 95 for the write capacity of index by_kind of "
        f"table {name}")
    assert _error(update, TableName=name, ProvisionedWriteCapacityAutoScalingUpdate={
        "AutoScalingDisabled": True,
        "ScalingPolicyUpdate": {"TargetTrackingScalingPolicyConfiguration": {"TargetValue": 50}}}) == (
        "ValidationException",
        f"{INVALID}ScalingPolicyUpdate cannot be given with AutoScalingDisabled for the write capacity of table {name}")
    assert _error(update, TableName=name, ReplicaUpdates=[
        {"RegionName": "us-east-1", "ReplicaProvisionedReadCapacityAutoScalingUpdate": {"MinimumUnits": 1}},
        {"RegionName": "us-east-1", "ReplicaProvisionedReadCapacityAutoScalingUpdate": {"MinimumUnits": 2}}]) == (
        "ValidationException", f"{INVALID}Only one replica update per region is allowed: us-east-1")
    # One bad part refuses the whole request: the good write update before it is not applied
    assert _error(update, TableName=name,
                  ProvisionedWriteCapacityAutoScalingUpdate={"MinimumUnits": 1, "MaximumUnits": 5},
                  ReplicaUpdates=[{"RegionName": "us-east-1",
                                   "ReplicaProvisionedReadCapacityAutoScalingUpdate": {"MinimumUnits": 3}}])[0] \
        == "ValidationException"
    missing = unique_name("ras")
    for call in (ddb.describe_table_replica_auto_scaling, update):
        assert _error(call, TableName=missing) == (
            "ResourceNotFoundException", f"Requested resource not found: Table: {missing} not found")
    assert _error(ddb.describe_table_replica_auto_scaling, TableName="x") == (
        "ValidationException", "1 validation error detected: Value 'x' at 'tableName' failed to satisfy "
        "constraint: Member must have length greater than or equal to 3")
    # Nothing changed, and the server still serves
    assert _describe(ddb, name) == {"TableName": name, "TableStatus": "ACTIVE", "Replicas": [_replica("us-east-1")]}


def test_on_demand_table_has_nothing_to_scale(ddb):
    name = unique_name("ras")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "kind", "AttributeType": "S"}],
                     GlobalSecondaryIndexes=[{"IndexName": "by_kind",
                                              "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                                              "Projection": {"ProjectionType": "ALL"}}])
    expected = {"TableName": name, "TableStatus": "ACTIVE", "Replicas": [{
        "RegionName": "us-east-1", "GlobalSecondaryIndexes": [{"IndexName": "by_kind", "IndexStatus": "ACTIVE"}],
        "ReplicaStatus": "ACTIVE"}]}
    assert _describe(ddb, name) == expected
    assert _error(ddb.update_table_replica_auto_scaling, TableName=name,
                  ProvisionedWriteCapacityAutoScalingUpdate={"MinimumUnits": 1, "MaximumUnits": 5}) == (
        "ValidationException",
        f"{INVALID}Auto scaling settings cannot be set for table {name}: its billing mode is PAY_PER_REQUEST")
    assert _describe(ddb, name) == expected


# ---------------------------------------------------------------- a global table over three regions


def _wait_active(client, name: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        table = client.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE" and all(r["ReplicaStatus"] == "ACTIVE" for r in table.get("Replicas", ())):
            return
        assert time.monotonic() < deadline, table
        time.sleep(0.1)


def _settled(client, name: str, expected: dict) -> dict:
    """The description once it is ``expected`` (a region takes a queued change within moments)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = _describe(client, name)
        if found == expected:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def _read_capacity(client, name: str) -> tuple[int, int]:
    table = client.describe_table(TableName=name)["Table"]
    return (table["ProvisionedThroughput"]["ReadCapacityUnits"],
            table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["ReadCapacityUnits"])


@pytest.fixture(scope="module")
def global_table(regions):
    name = unique_name("rasg")
    home = regions.client(0)
    _provisioned_table(home, name)
    home.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}},
                                                      {"Create": {"RegionName": "ap-south-1"}}])
    for i in range(3):
        _wait_active(regions.client(i), name)
    return name


def test_every_replica_described_from_every_region(regions, global_table):
    expected = {"TableName": global_table, "TableStatus": "ACTIVE",
                "Replicas": [_replica(region) for region in sorted(REGIONS)]}
    for i in range(3):
        assert _describe(regions.client(i), global_table) == expected


def test_update_reaches_every_region(regions, global_table):
    name = global_table
    write_policy = (f"DynamoDBWriteCapacityUtilization:table/{name}", {"TargetValue": 60.0})
    answer = regions.client(0).update_table_replica_auto_scaling(
        TableName=name,
        ProvisionedWriteCapacityAutoScalingUpdate={
            "MinimumUnits": 5, "MaximumUnits": 100,
            "ScalingPolicyUpdate": {"TargetTrackingScalingPolicyConfiguration": {"TargetValue": 60}}},
        GlobalSecondaryIndexUpdates=[{"IndexName": "by_kind", "ProvisionedWriteCapacityAutoScalingUpdate": {
            "MinimumUnits": 5, "MaximumUnits": 40}}],
        ReplicaUpdates=[{"RegionName": "eu-west-1",
                         "ReplicaProvisionedReadCapacityAutoScalingUpdate": {
                             "MinimumUnits": 7, "MaximumUnits": 30,
                             "ScalingPolicyUpdate": {"PolicyName": "reads",
                                                     "TargetTrackingScalingPolicyConfiguration": {
                                                         "TargetValue": 50, "DisableScaleIn": True}}},
                         "ReplicaGlobalSecondaryIndexUpdates": [{
                             "IndexName": "by_kind",
                             "ProvisionedReadCapacityAutoScalingUpdate": {"MinimumUnits": 6, "MaximumUnits": 20}}]}])
    write, index_write = _enabled(5, 100, write_policy), _enabled(5, 40)
    expected = {"TableName": name, "TableStatus": "ACTIVE", "Replicas": [
        _replica("ap-south-1", write=write, index_write=index_write),
        _replica("eu-west-1", write=write, index_write=index_write,
                 read=_enabled(7, 30, ("reads", {"DisableScaleIn": True, "TargetValue": 50.0})),
                 index_read=_enabled(6, 20)),
        _replica("us-east-1", write=write, index_write=index_write)]}
    # The answer waits for the others to take the change (a slow one would be shown UPDATING)
    assert [r["RegionName"] for r in answer["TableAutoScalingDescription"]["Replicas"]] == sorted(REGIONS)
    for i in range(3):
        _settled(regions.client(i), name, expected)

    # Each region holds its own records...
    scaling = regions.client(1, "application-autoscaling")
    targets = scaling.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"]
    assert sorted((t["ResourceId"], t["ScalableDimension"], t["MinCapacity"], t["MaxCapacity"]) for t in targets
                  if t["ResourceId"].startswith(f"table/{name}")) == [
        (f"table/{name}", "dynamodb:table:ReadCapacityUnits", 7, 30),
        (f"table/{name}", "dynamodb:table:WriteCapacityUnits", 5, 100),
        (f"table/{name}/index/by_kind", "dynamodb:index:ReadCapacityUnits", 6, 20),
        (f"table/{name}/index/by_kind", "dynamodb:index:WriteCapacityUnits", 5, 40)]
    # ...and its scaler follows them: eu-west-1's read capacity is raised into its new range, the others' stay
    deadline = time.monotonic() + WAIT_S
    while _read_capacity(regions.client(1), name) != (7, 6):
        assert time.monotonic() < deadline, _read_capacity(regions.client(1), name)
        time.sleep(0.2)
    assert _read_capacity(regions.client(0), name) == (5, 5)
    assert _read_capacity(regions.client(2), name) == (5, 5)

    # A change made in another region reaches this one
    regions.client(1).update_table_replica_auto_scaling(
        TableName=name, ReplicaUpdates=[{"RegionName": "us-east-1", "ReplicaProvisionedReadCapacityAutoScalingUpdate": {
            "MinimumUnits": 3, "MaximumUnits": 12}}])
    expected["Replicas"][2]["ReplicaProvisionedReadCapacityAutoScalingSettings"] = _enabled(3, 12)
    _settled(regions.client(0), name, expected)
    target = regions.client(0, "application-autoscaling").describe_scalable_targets(
        ServiceNamespace="dynamodb", ResourceIds=[f"table/{name}"],
        ScalableDimension="dynamodb:table:ReadCapacityUnits")["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in target] == [(3, 12)]


def test_peer_operations_refuse_bad_requests(regions, global_table):
    def post(operation: str, body: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(regions.procs[1].url + "/", body, method="POST", headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "ShoalReplication_20261206." + operation})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    status, body = post("ReplicateAutoScaling", orjson.dumps({"TableName": global_table, "SourceRegion": "us-east-1",
                                                              "Changes": "all"}))
    assert (status, body["__type"]) == (400, "com.amazon.coral.service#SerializationException")
    status, body = post("DescribeAutoScaling", orjson.dumps({"TableName": "no_such_table", "SourceRegion": "x"}))
    assert (status, body) == (200, {"Replica": None})
    # still serving, and nothing changed by the refused request
    assert _describe(regions.client(1), global_table)["Replicas"][1]["RegionName"] == "eu-west-1"


def test_region_down_then_back_takes_its_change(regions, global_table):
    name = global_table
    regions.client(0).update_table_replica_auto_scaling(
        TableName=name, ProvisionedWriteCapacityAutoScalingUpdate={"MinimumUnits": 4, "MaximumUnits": 60})
    deadline = time.monotonic() + WAIT_S
    while True:  # every region has taken it
        before = _describe(regions.client(0), name)
        if [(r["ReplicaStatus"], r["ReplicaProvisionedWriteCapacityAutoScalingSettings"].get("MaximumUnits"))
                for r in before["Replicas"]] == [("ACTIVE", 60)] * 3:
            break
        assert time.monotonic() < deadline, before
        time.sleep(0.2)
    regions.procs[2].kill()
    try:
        down = _describe(regions.client(0), name)
        assert down["Replicas"][0] == {"RegionName": "ap-south-1", "ReplicaStatus": "REGION_DISABLED"}
        assert down["Replicas"][1:] == before["Replicas"][1:]
        answer = regions.client(0).update_table_replica_auto_scaling(
            TableName=name, ProvisionedWriteCapacityAutoScalingUpdate={"MinimumUnits": 8})
        replicas = answer["TableAutoScalingDescription"]["Replicas"]
        assert replicas[0] == {"RegionName": "ap-south-1", "ReplicaStatus": "REGION_DISABLED"}
        assert replicas[2]["ReplicaProvisionedWriteCapacityAutoScalingSettings"]["MinimumUnits"] == 8
    finally:
        regions.start(2)
    expected = dict(before)
    expected["Replicas"] = [dict(r) for r in before["Replicas"]]
    for replica in expected["Replicas"]:
        replica["ReplicaProvisionedWriteCapacityAutoScalingSettings"] = {
            **replica["ReplicaProvisionedWriteCapacityAutoScalingSettings"], "MinimumUnits": 8}
    _settled(regions.client(0), name, expected)
    _settled(regions.client(2), name, expected)
