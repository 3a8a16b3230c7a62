"""Global tables version 2017.11.29 over a real engine: a member joining and
leaving, DynamoDB's conditions, ListGlobalTables' pages, the UpdateTable
requests the settings become, and peers' errors passed on."""

from __future__ import annotations

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, tables
from shoal.api.catalog import Catalog
from shoal.api.changelog import consumers
from shoal.errors import InternalServerError, ShoalError, ValidationException
from shoal.replication import apply as replica_apply
from shoal.replication import control, legacy, legacy_ops
from shoal.replication.node import PeerError

HOME, PEER, OTHER = "us-east-1", "eu-west-1", "ap-south-1"


@pytest.fixture
def ctx(engine, clock):
    control.configure(engine, control.Settings(HOME, {PEER: "http://127.0.0.1:1", OTHER: "http://127.0.0.1:2"}))
    yield Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    control.unconfigure(engine)


def _create(ctx, name="events", view="NEW_AND_OLD_IMAGES", provisioned=False) -> None:
    request = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "kind", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "ALL"}}],
    }
    if provisioned:
        request["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        request["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"] = {"ReadCapacityUnits": 3,
                                                                         "WriteCapacityUnits": 3}
    else:
        request["BillingMode"] = "PAY_PER_REQUEST"
    if view:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    tables.create_table(ctx, request)


def _record(regions, name="events") -> dict:
    return {"GlobalTableName": name, "CreationDateTime": 1.5, "GlobalTableStatus": "ACTIVE", "Regions": list(regions)}


def _followed(ctx, name="events") -> list[str]:
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, HOME, name)
        return sorted(legacy.followed_peers(txn, table.table_id))


def _description(ctx, name="events") -> dict:
    return tables.describe_table(ctx, {"TableName": name})["Table"]


def test_a_member_follows_the_other_regions_and_leaves_without_a_trace(ctx):
    _create(ctx)
    legacy.join(ctx, "events", _record([HOME, PEER, OTHER]))
    assert _followed(ctx) == [OTHER, PEER]
    assert _description(ctx)["GlobalTableVersion"] == "2017.11.29"
    assert "Replicas" not in _description(ctx)
    with ctx.engine.read() as txn:
        assert list(replica_apply.global_tables(txn, ctx.catalog)) == [ctx.catalog.get(txn, HOME, "events").table_id]
        assert legacy.read_record(txn, "events")["Regions"] == [HOME, PEER, OTHER]

    legacy.join(ctx, "events", _record([HOME, PEER]))  # OTHER removed: its records are no longer kept
    assert _followed(ctx) == [PEER]
    legacy.join(ctx, "events", _record([PEER]))  # this region removed: it leaves
    assert _followed(ctx) == []
    assert "GlobalTableVersion" not in _description(ctx)
    with ctx.engine.read() as txn:
        assert legacy.read_record(txn, "events") is None
        assert replica_apply.global_tables(txn, ctx.catalog) == {}
        assert not any(name.startswith("replica/") for name in consumers(txn))


def test_joining_checks_the_table_again(ctx):
    _create(ctx)
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "a"}, "kind": {"S": "k"}}})
    with pytest.raises(ValidationException) as raised:
        legacy.join(ctx, "events", _record([HOME, PEER]))
    assert raised.value.message == (
        "One or more parameter values were invalid: Table: events in region: us-east-1 is not empty: "
        "the tables of a global table must be empty when a replica is added")
    with pytest.raises(ShoalError) as raised:
        legacy.join(ctx, "absent", _record([HOME, PEER], name="absent"))
    assert (raised.value.type_name, raised.value.message) == (
        "TableNotFoundException", "Table not found: Table: 'absent' not found in region: 'us-east-1'.")
    assert _followed(ctx) == []


def _state(ctx, name="events") -> dict:
    return legacy.member_state(ctx, name)


def test_the_conditions_of_a_joining_table(ctx):
    _create(ctx, "good")
    _create(ctx, "plain", view=None)
    _create(ctx, "keys_only", view="KEYS_ONLY")
    tables.create_table(ctx, {"TableName": "other_keys", "BillingMode": "PAY_PER_REQUEST",
                              "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                            {"AttributeName": "sk", "KeyType": "RANGE"}],
                              "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                                       {"AttributeName": "sk", "AttributeType": "S"}],
                              "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
    good = _state(ctx, "good")
    legacy.check_joining("good", PEER, good, like=good["Table"])
    for name, message in (
            ("plain", "must have DynamoDB Streams enabled with StreamViewType NEW_AND_OLD_IMAGES"),
            ("keys_only", "must have DynamoDB Streams enabled with StreamViewType NEW_AND_OLD_IMAGES"),
            ("other_keys", "does not have the same key schema as the other replicas")):
        with pytest.raises(ValidationException) as raised:
            legacy.check_joining(name, PEER, _state(ctx, name), like=good["Table"])
        assert raised.value.message == f"One or more parameter values were invalid: Table: {name} in region: " \
                                       f"{PEER} {message}"
    no_gsi = {**good, "Table": {k: v for k, v in good["Table"].items() if k != "GlobalSecondaryIndexes"}}
    with pytest.raises(ValidationException, match="does not have the same global secondary indexes"):
        legacy.check_joining("good", PEER, no_gsi, like=good["Table"])
    with pytest.raises(ShoalError) as raised:
        legacy.check_joining("good", PEER, {**good, "GlobalTable": _record([PEER], "good")})
    assert (raised.value.type_name, raised.value.message) == (
        "GlobalTableAlreadyExistsException", "Global table with name: 'good' already exists.")


def test_create_global_table_of_this_region_alone_and_describe_it(ctx, clock):
    _create(ctx)
    before = round(clock(), 3)
    made = legacy_ops.create_global_table(ctx, {"GlobalTableName": "events", "ReplicationGroup": [
        {"RegionName": HOME}]})
    created = made["GlobalTableDescription"]["CreationDateTime"]
    assert before <= created <= round(clock(), 3)  # the clock runs: the time of the call, not of this line
    assert made == {"GlobalTableDescription": {
        "ReplicationGroup": [{"RegionName": HOME}],
        "GlobalTableArn": "arn:aws:dynamodb::000000000000:global-table/events",
        "CreationDateTime": created, "GlobalTableStatus": "CREATING", "GlobalTableName": "events"}}
    described = legacy_ops.describe_global_table(ctx, {"GlobalTableName": "events"})["GlobalTableDescription"]
    assert described == {**made["GlobalTableDescription"], "GlobalTableStatus": "ACTIVE"}
    with pytest.raises(ValidationException) as raised:  # one version of global tables at a time
        tables.update_table(ctx, {"TableName": "events", "ReplicaUpdates": [{"Create": {"RegionName": PEER}}]})
    assert "is a replica of a global table of version 2017.11.29" in raised.value.message


def test_delete_table_of_a_member_tells_the_others_it_left(ctx):
    _create(ctx)
    legacy.join(ctx, "events", _record([HOME, PEER, OTHER]))
    tables.delete_table(ctx, {"TableName": "events"})
    with ctx.engine.read() as txn:
        tasks = [task for _, task in control.pending_tasks(txn)]
        assert legacy.read_record(txn, "events") is None
        assert not any(name.startswith("replica/") for name in consumers(txn))
    assert [(t["kind"], t["peer"], t["record"]["Regions"]) for t in tasks] == [
        ("legacy_join", PEER, [PEER, OTHER]), ("legacy_join", OTHER, [PEER, OTHER])]


def test_list_global_tables_pages(ctx):
    with ctx.engine.write() as txn:
        for name, regions in (("b_table", [HOME, PEER]), ("a_table", [HOME]), ("c_table", [HOME, OTHER])):
            legacy.write_record(txn, _record(regions, name))
    listed = legacy_ops.list_global_tables(ctx, {})
    assert [t["GlobalTableName"] for t in listed["GlobalTables"]] == ["a_table", "b_table", "c_table"]
    assert "LastEvaluatedGlobalTableName" not in listed
    first = legacy_ops.list_global_tables(ctx, {"Limit": 2})
    assert ([t["GlobalTableName"] for t in first["GlobalTables"]], first["LastEvaluatedGlobalTableName"]) == (
        ["a_table", "b_table"], "b_table")
    assert legacy_ops.list_global_tables(ctx, {"Limit": 2, "ExclusiveStartGlobalTableName": "b_table"}) == {
        "GlobalTables": [{"GlobalTableName": "c_table", "ReplicationGroup": [{"RegionName": HOME},
                                                                             {"RegionName": OTHER}]}]}
    assert legacy_ops.list_global_tables(ctx, {"Limit": 3})["GlobalTables"][2]["GlobalTableName"] == "c_table"
    assert "LastEvaluatedGlobalTableName" not in legacy_ops.list_global_tables(ctx, {"Limit": 3})
    assert [t["GlobalTableName"] for t in legacy_ops.list_global_tables(ctx, {"RegionName": PEER})[
        "GlobalTables"]] == ["b_table"]


def test_settings_become_update_table_requests(ctx):
    _create(ctx, provisioned=True)
    desc = _description(ctx)
    plan = legacy_ops._settings_requests
    assert plan("events", desc, {}, {}) == []
    assert plan("events", desc, {"GlobalTableProvisionedWriteCapacityUnits": 5}, {}) == []  # unchanged
    assert plan("events", desc, {"GlobalTableProvisionedWriteCapacityUnits": 8},
                {"ReplicaProvisionedReadCapacityUnits": 6, "ReplicaTableClass": "STANDARD_INFREQUENT_ACCESS"}) == [
        {"ProvisionedThroughput": {"ReadCapacityUnits": 6, "WriteCapacityUnits": 8}},
        {"TableClass": "STANDARD_INFREQUENT_ACCESS"}]
    assert plan("events", desc, {"GlobalTableGlobalSecondaryIndexSettingsUpdate": [
        {"IndexName": "by_kind", "ProvisionedWriteCapacityUnits": 4}]}, {}) == [
        {"GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "by_kind", "ProvisionedThroughput": {
            "ReadCapacityUnits": 3, "WriteCapacityUnits": 4}}}]}]
    assert plan("events", desc, {"GlobalTableBillingMode": "PAY_PER_REQUEST"}, {}) == [
        {"BillingMode": "PAY_PER_REQUEST"}]
    with pytest.raises(ShoalError) as raised:
        plan("events", desc, {}, {"ReplicaGlobalSecondaryIndexSettingsUpdate": [
            {"IndexName": "ghost", "ProvisionedReadCapacityUnits": 2}]})
    assert (raised.value.type_name, raised.value.message) == (
        "IndexNotFoundException", "Failed to update settings for global table with name: \u2018events\u2019 because "
        "the global secondary indexes with names: \u2018[ghost]\u2019 do not exist.")
    with pytest.raises(ValidationException, match="billing mode is PAY_PER_REQUEST"):
        plan("events", desc, {"GlobalTableBillingMode": "PAY_PER_REQUEST",
                              "GlobalTableProvisionedWriteCapacityUnits": 3}, {})
    on_demand = {**desc, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}
    with pytest.raises(ValidationException, match="GlobalTableProvisionedWriteCapacityUnits is needed"):
        plan("events", on_demand, {"GlobalTableBillingMode": "PROVISIONED"}, {})


def test_a_peers_dynamodb_error_is_passed_on_and_a_silent_peer_is_a_server_error():
    body = orjson.dumps({"__type": "com.amazonaws.dynamodb.v20120810#TableNotFoundException",
                         "message": "Table not found: Table: 't' not found in region: 'eu-west-1'."})
    passed = legacy_ops._passed_on(PEER, PeerError("refused", 400, body))
    assert (passed.type_name, passed.namespace, passed.status, passed.message) == (
        "TableNotFoundException", "com.amazonaws.dynamodb.v20120810", 400,
        "Table not found: Table: 't' not found in region: 'eu-west-1'.")
    paused = orjson.dumps({"__type": "com.amazonaws.dynamodb.v20120810#PeerPausedException", "message": "paused"})
    for error in (PeerError("refused", 503, paused), PeerError("unreachable")):
        passed = legacy_ops._passed_on(PEER, error)
        assert isinstance(passed, InternalServerError)
        assert passed.message.startswith("Region eu-west-1 did not answer: ")


def test_without_a_home_region_global_tables_are_refused(engine, clock):
    ctx = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    _create(ctx)
    with pytest.raises(ValidationException) as raised:
        legacy_ops.create_global_table(ctx, {"GlobalTableName": "events", "ReplicationGroup": [{"RegionName": HOME}]})
    assert raised.value.message == (
        "One or more parameter values were invalid: Global tables need a deployment that is the home of one region: "
        "start Shoal with --region and --peer REGION=URL")
    assert legacy_ops.list_global_tables(ctx, {}) == {"GlobalTables": []}
