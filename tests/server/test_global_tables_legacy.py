"""Global tables version 2017.11.29 (Legacy) across three real ``shoal serve``
processes, one region each (the deployments of test_global_tables.py).

The tables are made by hand in every region, then joined with
CreateGlobalTable; UpdateGlobalTable adds and removes regions; the settings
operations read and change every region's table.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from tests.server.test_global_tables import CONVERGE_S, REGIONS, Regions, _converged, _scan

ARN = "arn:aws:dynamodb::000000000000:global-table/"


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    trio = Regions(str(tmp_path_factory.mktemp("legacy")))
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def _make(client, name: str, view: str | None = "NEW_AND_OLD_IMAGES", gsi: bool = True, hash_type: str = "S",
          provisioned: bool = False) -> None:
    request = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": hash_type},
                                 {"AttributeName": "kind", "AttributeType": "S"}],
    }
    if provisioned:
        request["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    else:
        request["BillingMode"] = "PAY_PER_REQUEST"
    if gsi:
        request["GlobalSecondaryIndexes"] = [{
            "IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
            **({"ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 3}} if provisioned else {})}]
    else:
        request["AttributeDefinitions"] = request["AttributeDefinitions"][:1]
    if view is not None:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    client.create_table(**request)


def _make_everywhere(regions, name: str, indexes=(0, 1, 2), **options) -> None:
    for i in indexes:
        _make(regions.client(i), name, **options)


def _group(*indexes) -> list[dict]:
    return [{"RegionName": REGIONS[i]} for i in indexes]


def _error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def _still_serving(regions) -> None:
    for i in range(3):
        assert "TableNames" in regions.client(i).list_tables()


def _not_global(regions, name: str, indexes=(0, 1, 2)) -> None:
    for i in indexes:
        client = regions.client(i)
        assert _error(client.describe_global_table, GlobalTableName=name) == (
            "GlobalTableNotFoundException", f"Global table with name: '{name}' does not exist.")
        assert "GlobalTableVersion" not in client.describe_table(TableName=name)["Table"]


def _put(client, name: str, key: str, **extra) -> None:
    client.put_item(TableName=name, Item={"pk": {"S": key}, "kind": {"S": "k"}, **extra})


# ---------------------------------------------------------------- CreateGlobalTable


def test_create_global_table_joins_the_regions_and_writes_replicate_every_way(regions):
    name = "legacy_events"
    _make_everywhere(regions, name)
    before = datetime.datetime.now(datetime.timezone.utc)
    made = regions.client(0).create_global_table(GlobalTableName=name, ReplicationGroup=_group(0, 1, 2))
    description = made["GlobalTableDescription"]
    created = description.pop("CreationDateTime")
    assert before - datetime.timedelta(seconds=2) <= created <= datetime.datetime.now(datetime.timezone.utc)
    assert description == {"ReplicationGroup": _group(0, 1, 2), "GlobalTableArn": ARN + name,
                           "GlobalTableStatus": "CREATING", "GlobalTableName": name}
    for i in range(3):
        client = regions.client(i)
        described = client.describe_global_table(GlobalTableName=name)["GlobalTableDescription"]
        assert described == {**description, "GlobalTableStatus": "ACTIVE", "CreationDateTime": created}
        table = client.describe_table(TableName=name)["Table"]
        assert table["GlobalTableVersion"] == "2017.11.29"
        assert "Replicas" not in table and table["TableStatus"] == "ACTIVE"

    for i in range(3):  # every region's writes reach the two others
        _put(regions.client(i), name, f"from{i}", n={"N": str(i)})
    items = _converged(regions, name)
    assert [(item["pk"]["S"], item["n"]["N"]) for item in items] == [("from0", "0"), ("from1", "1"), ("from2", "2")]
    regions.client(2).delete_item(TableName=name, Key={"pk": {"S": "from0"}})
    regions.client(1).update_item(TableName=name, Key={"pk": {"S": "from2"}}, UpdateExpression="SET n = :n",
                                  ExpressionAttributeValues={":n": {"N": "20"}})
    items = _converged(regions, name)
    assert [(item["pk"]["S"], item["n"]["N"]) for item in items] == [("from1", "1"), ("from2", "20")]
    for i in range(3):  # through the write path: the index has them too
        page = regions.client(i).query(TableName=name, IndexName="by_kind", KeyConditionExpression="kind = :k",
                                       ExpressionAttributeValues={":k": {"S": "k"}})
        assert sorted(item["pk"]["S"] for item in page["Items"]) == ["from1", "from2"]

    # A member's stream stays on, and a table is a replica of one version only.
    client = regions.client(1)
    assert _error(client.update_table, TableName=name, StreamSpecification={"StreamEnabled": False}) == (
        "ValidationException", "One or more parameter values were invalid: Table legacy_events has replicas: "
        "its stream cannot be disabled while it is a global table")
    assert _error(client.update_table, TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[2]}}]) == (
        "ValidationException", "One or more parameter values were invalid: Table legacy_events is a replica of a "
        "global table of version 2017.11.29: use UpdateGlobalTable to change its replicas")
    assert _error(regions.client(0).create_global_table, GlobalTableName=name, ReplicationGroup=_group(0)) == (
        "GlobalTableAlreadyExistsException", "Global table with name: 'legacy_events' already exists.")


def test_each_condition_of_create_global_table_is_refused_with_its_error(regions):
    home = regions.client(0)

    def refused(name: str, group=(0, 1, 2)) -> tuple[str, str]:
        answer = _error(home.create_global_table, GlobalTableName=name, ReplicationGroup=_group(*group))
        _not_global(regions, name, [i for i in range(3) if _exists(regions.client(i), name)])
        return answer

    _make_everywhere(regions, "missing_one", indexes=(0, 2))
    assert refused("missing_one") == (
        "TableNotFoundException", "Table not found: Table: 'missing_one' not found in region: 'eu-west-1'.")

    _make_everywhere(regions, "no_stream", indexes=(0, 2))
    _make(regions.client(1), "no_stream", view=None)
    _make_everywhere(regions, "new_image", indexes=(0, 1))
    _make(regions.client(2), "new_image", view="NEW_IMAGE")
    for name, region in (("no_stream", "eu-west-1"), ("new_image", "ap-south-1")):
        assert refused(name) == (
            "ValidationException", f"One or more parameter values were invalid: Table: {name} in region: {region} "
            "must have DynamoDB Streams enabled with StreamViewType NEW_AND_OLD_IMAGES")

    _make_everywhere(regions, "not_empty")
    _put(regions.client(2), "not_empty", "early")
    assert refused("not_empty") == (
        "ValidationException", "One or more parameter values were invalid: Table: not_empty in region: ap-south-1 "
        "is not empty: the tables of a global table must be empty when a replica is added")

    _make_everywhere(regions, "other_keys", indexes=(0, 2))
    _make(regions.client(1), "other_keys", hash_type="N")
    assert refused("other_keys") == (
        "ValidationException", "One or more parameter values were invalid: Table: other_keys in region: eu-west-1 "
        "does not have the same key schema as the other replicas")

    _make_everywhere(regions, "other_gsis", indexes=(0, 1))
    _make(regions.client(2), "other_gsis", gsi=False)
    assert refused("other_gsis") == (
        "ValidationException", "One or more parameter values were invalid: Table: other_gsis in region: ap-south-1 "
        "does not have the same global secondary indexes (names and key schemas) as the other replicas")

    assert _error(home.create_global_table, GlobalTableName="not_empty",
                  ReplicationGroup=[{"RegionName": "sa-east-1"}]) == (
        "ValidationException", "One or more parameter values were invalid: Region sa-east-1 is not a peer of this "
        "deployment (shoal serve --peer sa-east-1=URL)")
    assert _error(home.create_global_table, GlobalTableName="not_empty", ReplicationGroup=_group(0, 0)) == (
        "ValidationException", "One or more parameter values were invalid: Region us-east-1 is named more than once "
        "in ReplicationGroup")

    # A 2019.11.21 global table cannot also be a 2017.11.29 one.
    _make(home, "current_version")
    home.update_table(TableName="current_version", ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}])
    _wait(lambda: all(r["ReplicaStatus"] == "ACTIVE" for r in home.describe_table(
        TableName="current_version")["Table"].get("Replicas", ())) and home.describe_table(
        TableName="current_version")["Table"]["TableStatus"] == "ACTIVE")
    assert _error(home.create_global_table, GlobalTableName="current_version", ReplicationGroup=_group(0, 1)) == (
        "ValidationException", "One or more parameter values were invalid: Table: current_version in region: "
        "us-east-1 is a replica of a global table of version 2019.11.21: a table cannot be a replica of both versions")
    _still_serving(regions)


def _exists(client, name: str) -> bool:
    try:
        client.describe_table(TableName=name)
    except botocore.exceptions.ClientError:
        return False
    return True


def _wait(condition, timeout: float = CONVERGE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_bad_requests_are_refused_and_the_servers_go_on(regions):
    home = regions.client(0)
    unchecked = boto3.client("dynamodb", endpoint_url=regions.procs[0].url, region_name=REGIONS[0],
                             aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                             config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 0}))
    assert _error(unchecked.create_global_table, GlobalTableName="ab", ReplicationGroup=_group(0)) == (
        "ValidationException", "1 validation error detected: Value 'ab' at 'globalTableName' failed to satisfy "
        "constraint: Member must have length greater than or equal to 3")
    assert _error(home.create_global_table, GlobalTableName="nothing_here", ReplicationGroup=[]) == (
        "ValidationException", "One or more parameter values were invalid: ReplicationGroup must name at least "
        "one region")
    assert _error(home.describe_global_table, GlobalTableName="nothing_here") == (
        "GlobalTableNotFoundException", "Global table with name: 'nothing_here' does not exist.")
    assert _error(home.describe_global_table_settings, GlobalTableName="nothing_here") == (
        "GlobalTableNotFoundException", "Global table with name: 'nothing_here' does not exist.")
    assert _error(home.update_global_table, GlobalTableName="nothing_here",
                  ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}]) == (
        "GlobalTableNotFoundException", "Global table with name: 'nothing_here' does not exist.")
    assert _error(home.update_global_table_settings, GlobalTableName="nothing_here",
                  GlobalTableProvisionedWriteCapacityUnits=5) == (
        "GlobalTableNotFoundException", "Global table with name: 'nothing_here' does not exist.")
    assert _error(unchecked.list_global_tables, Limit=0) == (
        "ValidationException", "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1")
    _still_serving(regions)


# ---------------------------------------------------------------- UpdateGlobalTable


def test_update_global_table_adds_and_removes_regions(regions):
    name = "legacy_moving"
    _make_everywhere(regions, name)
    home = regions.client(0)
    home.create_global_table(GlobalTableName=name, ReplicationGroup=_group(0, 1))
    assert _error(home.update_global_table, GlobalTableName=name,
                  ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}]) == (
        "ReplicaAlreadyExistsException", "Replica in region: 'eu-west-1' already exists for global table: "
        "'legacy_moving'.")
    assert _error(home.update_global_table, GlobalTableName=name,
                  ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[2]}}]) == (
        "ReplicaNotFoundException", "Replica in region: 'ap-south-1' does not exist for global table: "
        "'legacy_moving'.")

    updated = home.update_global_table(GlobalTableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[2]}}])
    assert updated["GlobalTableDescription"]["ReplicationGroup"] == _group(0, 1, 2)
    assert updated["GlobalTableDescription"]["GlobalTableStatus"] == "UPDATING"
    for i in range(3):
        described = regions.client(i).describe_global_table(GlobalTableName=name)["GlobalTableDescription"]
        assert (described["ReplicationGroup"], described["GlobalTableStatus"]) == (_group(0, 1, 2), "ACTIVE")
    _put(regions.client(2), name, "from_new")
    _put(regions.client(1), name, "to_new")
    assert [item["pk"]["S"] for item in _converged(regions, name)] == ["from_new", "to_new"]

    # Two updates of one region in a request: refused.
    assert _error(home.update_global_table, GlobalTableName=name,
                  ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}, {"Create": {"RegionName": REGIONS[1]}}]) == (
        "ValidationException", "One or more parameter values were invalid: Only one replica update per region is "
        "allowed: eu-west-1")

    removed = home.update_global_table(GlobalTableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}])
    assert removed["GlobalTableDescription"]["ReplicationGroup"] == _group(0, 2)
    _not_global(regions, name, indexes=(1,))
    for i in (0, 2):
        described = regions.client(i).describe_global_table(GlobalTableName=name)["GlobalTableDescription"]
        assert described["ReplicationGroup"] == _group(0, 2)
    # A region added to a group that holds data: refused (every table must be empty).
    assert _error(home.update_global_table, GlobalTableName=name,
                  ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}]) == (
        "ValidationException", "One or more parameter values were invalid: Table: legacy_moving in region: "
        "us-east-1 is not empty: the tables of a global table must be empty when a replica is added")
    _put(home, name, "after_removal")
    _put(regions.client(1), name, "stays_home")
    items = _converged(regions, name, indexes=(0, 2))
    assert [item["pk"]["S"] for item in items] == ["after_removal", "from_new", "to_new"]
    time.sleep(1)  # nothing more arrives in the region that left, nor comes from it
    assert [item["pk"]["S"] for item in _scan(regions.client(1), name)] == ["from_new", "stays_home", "to_new"]
    assert [item["pk"]["S"] for item in _scan(home, name)] == ["after_removal", "from_new", "to_new"]

    # DeleteTable in a member's region: it leaves the global table everywhere.
    regions.client(2).delete_table(TableName=name)
    _wait(lambda: home.describe_global_table(GlobalTableName=name)["GlobalTableDescription"][
        "ReplicationGroup"] == _group(0))
    _put(home, name, "alone")
    assert [item["pk"]["S"] for item in _scan(home, name)] == ["after_removal", "alone", "from_new", "to_new"]


def test_a_region_removed_while_it_is_down_is_told_when_it_is_back(regions):
    name = "legacy_away"
    _make_everywhere(regions, name)
    home = regions.client(0)
    home.create_global_table(GlobalTableName=name, ReplicationGroup=_group(0, 1, 2))
    regions.procs[2].stop()
    try:
        removed = home.update_global_table(GlobalTableName=name,
                                           ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[2]}}])
        assert removed["GlobalTableDescription"]["ReplicationGroup"] == _group(0, 1)
        for i in (0, 1):
            described = regions.client(i).describe_global_table(GlobalTableName=name)["GlobalTableDescription"]
            assert (described["ReplicationGroup"], described["GlobalTableStatus"]) == (_group(0, 1), "ACTIVE")
        # Adding a region that does not answer fails, and changes nothing.
        assert _error(home.update_global_table, GlobalTableName=name,
                      ReplicaUpdates=[{"Create": {"RegionName": REGIONS[2]}}]) == (
            "InternalServerError", "Region ap-south-1 did not answer: ap-south-1: [Errno 111] Connection refused")
        assert home.describe_global_table(GlobalTableName=name)["GlobalTableDescription"][
            "ReplicationGroup"] == _group(0, 1)
    finally:
        regions.start(2)
    away = regions.client(2)
    _wait(lambda: "GlobalTableVersion" not in away.describe_table(TableName=name)["Table"])
    _not_global(regions, name, indexes=(2,))
    _put(home, name, "after")
    _converged(regions, name, indexes=(0, 1))
    _put(away, name, "away")
    time.sleep(1)
    assert [item["pk"]["S"] for item in _scan(away, name)] == ["away"]
    assert [item["pk"]["S"] for item in _scan(regions.client(1), name)] == ["after"]


def test_a_region_without_the_table_cannot_be_added(regions):
    name = "legacy_partial"
    _make_everywhere(regions, name, indexes=(0, 1))
    home = regions.client(0)
    home.create_global_table(GlobalTableName=name, ReplicationGroup=_group(0, 1))
    assert _error(home.update_global_table, GlobalTableName=name,
                  ReplicaUpdates=[{"Create": {"RegionName": REGIONS[2]}}]) == (
        "TableNotFoundException", "Table not found: Table: 'legacy_partial' not found in region: 'ap-south-1'.")
    described = home.describe_global_table(GlobalTableName=name)["GlobalTableDescription"]
    assert described["ReplicationGroup"] == _group(0, 1)
    _still_serving(regions)


# ---------------------------------------------------------------- ListGlobalTables


def test_list_global_tables_pages_by_name_and_filters_by_region(regions):
    groups = {"list_a": (0, 1), "list_b": (0, 2), "list_c": (0, 1, 2)}
    for name, group in groups.items():
        _make_everywhere(regions, name, indexes=group)
        regions.client(0).create_global_table(GlobalTableName=name, ReplicationGroup=_group(*group))
    home = regions.client(0)
    listed = [t for t in home.list_global_tables()["GlobalTables"] if t["GlobalTableName"].startswith("list_")]
    assert listed == [{"GlobalTableName": name, "ReplicationGroup": _group(*group)} for name, group in groups.items()]

    page = home.list_global_tables(ExclusiveStartGlobalTableName="list_", Limit=2)
    assert page == {"GlobalTables": listed[:2], "LastEvaluatedGlobalTableName": "list_b",
                    "ResponseMetadata": page["ResponseMetadata"]}
    page = home.list_global_tables(ExclusiveStartGlobalTableName="list_b", Limit=2)
    assert [t["GlobalTableName"] for t in page["GlobalTables"] if t["GlobalTableName"].startswith("list_")] == [
        "list_c"]
    page = home.list_global_tables(ExclusiveStartGlobalTableName="list_", RegionName=REGIONS[2], Limit=1)
    assert (page["GlobalTables"], page["LastEvaluatedGlobalTableName"]) == (
        [{"GlobalTableName": "list_b", "ReplicationGroup": _group(0, 2)}], "list_b")
    # Each region lists the global tables it is a member of.
    names = [t["GlobalTableName"] for t in regions.client(1).list_global_tables(
        ExclusiveStartGlobalTableName="list_")["GlobalTables"] if t["GlobalTableName"].startswith("list_")]
    assert names == ["list_a", "list_c"]


def test_the_aws_cli_describes_and_lists_a_global_table(regions):
    name = "legacy_cli"
    _make_everywhere(regions, name, indexes=(1, 2))
    regions.client(1).create_global_table(GlobalTableName=name, ReplicationGroup=_group(1, 2))

    def aws(i: int, *args) -> subprocess.CompletedProcess:
        env = dict(os.environ, AWS_ACCESS_KEY_ID="any", AWS_SECRET_ACCESS_KEY="any", AWS_DEFAULT_REGION=REGIONS[i])
        env.pop("AWS_PROFILE", None)
        return subprocess.run([os.path.join(os.path.dirname(sys.executable), "aws"), "dynamodb", *args,
                               "--endpoint-url", regions.procs[i].url, "--output", "json"],
                              capture_output=True, text=True, env=env, timeout=60)

    out = aws(2, "describe-global-table", "--global-table-name", name)
    assert out.returncode == 0, out.stderr
    described = json.loads(out.stdout)["GlobalTableDescription"]
    assert (described["GlobalTableName"], described["GlobalTableStatus"], described["ReplicationGroup"]) == (
        name, "ACTIVE", _group(1, 2))
    out = aws(1, "list-global-tables", "--region-name", REGIONS[2], "--exclusive-start-global-table-name", "legacy_ca")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["GlobalTables"][0] == {"GlobalTableName": name, "ReplicationGroup": _group(1, 2)}
    out = aws(0, "describe-global-table", "--global-table-name", name)  # not a member: it does not know it
    assert out.returncode == 255  # the CLI's exit status for an error the service answered
    assert out.stderr.strip() == ("An error occurred (GlobalTableNotFoundException) when calling the "
                                  f"DescribeGlobalTable operation: Global table with name: '{name}' does not exist.")


# ---------------------------------------------------------------- settings


def test_settings_are_read_and_written_in_every_region(regions):
    name = "legacy_settings"
    _make_everywhere(regions, name, provisioned=True)
    home = regions.client(0)
    home.create_global_table(GlobalTableName=name, ReplicationGroup=_group(0, 1, 2))

    def expected(region: str, read: int, write: int, index_read: int, index_write: int) -> dict:
        return {"RegionName": region, "ReplicaStatus": "ACTIVE",
                "ReplicaBillingModeSummary": {"BillingMode": "PROVISIONED"},
                "ReplicaProvisionedReadCapacityUnits": read, "ReplicaProvisionedWriteCapacityUnits": write,
                "ReplicaGlobalSecondaryIndexSettings": [{
                    "IndexName": "by_kind", "IndexStatus": "ACTIVE", "ProvisionedReadCapacityUnits": index_read,
                    "ProvisionedWriteCapacityUnits": index_write}]}

    settings = regions.client(2).describe_global_table_settings(GlobalTableName=name)
    assert settings["GlobalTableName"] == name
    assert _without_dates(settings["ReplicaSettings"]) == [expected(r, 5, 5, 3, 3) for r in REGIONS]

    changed = home.update_global_table_settings(
        GlobalTableName=name, GlobalTableProvisionedWriteCapacityUnits=7,
        GlobalTableGlobalSecondaryIndexSettingsUpdate=[{"IndexName": "by_kind", "ProvisionedWriteCapacityUnits": 4}],
        ReplicaSettingsUpdate=[{"RegionName": REGIONS[1], "ReplicaProvisionedReadCapacityUnits": 9,
                                "ReplicaGlobalSecondaryIndexSettingsUpdate": [
                                    {"IndexName": "by_kind", "ProvisionedReadCapacityUnits": 6}]}])
    want = [expected(REGIONS[0], 5, 7, 3, 4), expected(REGIONS[1], 9, 7, 6, 4), expected(REGIONS[2], 5, 7, 3, 4)]
    assert _without_dates(changed["ReplicaSettings"]) == want
    for i in range(3):  # each region's own table has them
        table = regions.client(i).describe_table(TableName=name)["Table"]
        throughput = table["ProvisionedThroughput"]
        assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (
            want[i]["ReplicaProvisionedReadCapacityUnits"], 7)
        index = table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]
        assert (index["ReadCapacityUnits"], index["WriteCapacityUnits"]) == (
            want[i]["ReplicaGlobalSecondaryIndexSettings"][0]["ProvisionedReadCapacityUnits"], 4)
    assert _without_dates(regions.client(1).describe_global_table_settings(
        GlobalTableName=name)["ReplicaSettings"]) == want

    on_demand = home.update_global_table_settings(GlobalTableName=name, GlobalTableBillingMode="PAY_PER_REQUEST")
    for replica in on_demand["ReplicaSettings"]:
        assert replica["ReplicaBillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert replica["ReplicaProvisionedWriteCapacityUnits"] == 0
    for i in range(3):
        table = regions.client(i).describe_table(TableName=name)["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    assert _error(home.update_global_table_settings, GlobalTableName=name,
                  ReplicaSettingsUpdate=[{"RegionName": "sa-east-1", "ReplicaProvisionedReadCapacityUnits": 3}]) == (
        "ReplicaNotFoundException", "Failed to update settings for global table with name: \u2018legacy_settings\u2019 "
        "because a replica does not exist in regions: \u2018[sa-east-1]\u2019.")
    assert _error(home.update_global_table_settings, GlobalTableName=name, GlobalTableBillingMode="PROVISIONED",
                  GlobalTableProvisionedWriteCapacityUnits=2,
                  GlobalTableGlobalSecondaryIndexSettingsUpdate=[{"IndexName": "nope",
                                                                  "ProvisionedWriteCapacityUnits": 2}]) == (
        "IndexNotFoundException", "Failed to update settings for global table with name: \u2018legacy_settings\u2019 "
        "because the global secondary indexes with names: \u2018[nope]\u2019 do not exist.")
    assert _error(home.update_global_table_settings, GlobalTableName=name,
                  GlobalTableProvisionedWriteCapacityUnits=2) == (
        "ValidationException", "One or more parameter values were invalid: Provisioned capacity cannot be set for a "
        "global table whose billing mode is PAY_PER_REQUEST")
    assert _error(home.update_global_table_settings, GlobalTableName=name,
                  GlobalTableProvisionedWriteCapacityAutoScalingSettingsUpdate={"MinimumUnits": 1}) == (
        "ValidationException", "Shoal does not support auto scaling settings yet")
    for i in range(3):  # nothing was changed by the refused requests
        assert regions.client(i).describe_table(TableName=name)["Table"]["BillingModeSummary"]["BillingMode"] == (
            "PAY_PER_REQUEST")
    _still_serving(regions)


def _without_dates(replicas: list[dict]) -> list[dict]:
    for replica in replicas:
        replica["ReplicaBillingModeSummary"].pop("LastUpdateToPayPerRequestDateTime", None)
    return replicas


# ---------------------------------------------------------------- auth


def test_with_auth_on_the_operations_that_ask_peers_are_authorized_and_signed(tmp_path):
    """The coordinator checks the caller (as any request) before it asks a
    peer, and signs what it asks with --peer-credentials."""
    from tests.shoal_process import free_port as _free_port
    from tests.shoal_process import ShoalProcess, root_credentials

    home_port, peer_port = _free_port(), _free_port()
    peer = ShoalProcess(tmp_path / "peer", "--region", REGIONS[1], "--auth", "sigv4", "--workers", "1",
                        "--no-metrics", port=peer_port).start()
    try:
        home = ShoalProcess(tmp_path / "home", "--region", REGIONS[0], "--auth", "sigv4", "--workers", "1",
                            "--no-metrics", f"--peer={REGIONS[1]}=http://127.0.0.1:{peer_port}",
                            "--peer-credentials", str(tmp_path / "peer" / "root-credentials"),
                            port=home_port).start()
        try:
            def client(proc, region, credentials):
                return boto3.client("dynamodb", endpoint_url=proc.url, region_name=region,
                                    aws_access_key_id=credentials[0], aws_secret_access_key=credentials[1],
                                    config=botocore.config.Config(retries={"max_attempts": 0}))

            at_home = client(home, REGIONS[0], root_credentials(tmp_path / "home"))
            at_peer = client(peer, REGIONS[1], root_credentials(tmp_path / "peer"))
            _make(at_home, "guarded")
            _make(at_peer, "guarded")
            stranger = client(home, REGIONS[0], ("AKIDNOBODY", "secret"))
            code, _ = _error(stranger.create_global_table, GlobalTableName="guarded", ReplicationGroup=_group(0, 1))
            assert code == "UnrecognizedClientException"
            assert _error(at_peer.describe_global_table, GlobalTableName="guarded")[0] == (
                "GlobalTableNotFoundException")  # the peer was not asked anything
            made = at_home.create_global_table(GlobalTableName="guarded", ReplicationGroup=_group(0, 1))
            assert made["GlobalTableDescription"]["ReplicationGroup"] == _group(0, 1)
            described = at_peer.describe_global_table(GlobalTableName="guarded")["GlobalTableDescription"]
            assert (described["GlobalTableStatus"], described["ReplicationGroup"]) == ("ACTIVE", _group(0, 1))
            _put(at_home, "guarded", "signed")  # and the home region's writes reach the peer, signed
            _wait(lambda: at_peer.get_item(TableName="guarded", Key={"pk": {"S": "signed"}}).get("Item") is not None)
        finally:
            home.stop()
    finally:
        peer.stop()
