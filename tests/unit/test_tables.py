"""The control plane (shoal.api.tables) and the catalog, over a real LMDB engine."""

from __future__ import annotations

import multiprocessing
import struct

import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import tables as t
from shoal.api.catalog import STATS_KEY, TAGS_KEY, Catalog, table_key
from shoal.api.indexes import IndexJobs
from shoal.errors import (
    LimitExceededException,
    ResourceInUseException,
    ResourceNotFoundException,
    ShoalError,
    ValidationException,
)
from shoal.storage.lmdb_engine import LmdbEngine

NOW = 1_700_000_000.123
REGION = "us-east-1"
ARN_BASE = f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/"


@pytest.fixture
def ctx(engine):
    return make_ctx(engine)


def make_ctx(engine, region=REGION, now=NOW):
    return Context(region, DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: now)


def attrs(*pairs):
    return [{"AttributeName": n, "AttributeType": ty} for n, ty in pairs]


def keys(*pairs):
    return [{"AttributeName": n, "KeyType": k} for n, k in pairs]


def request(name="events", **extra):
    body = {
        "TableName": name,
        "AttributeDefinitions": attrs(("user_id", "S"), ("ts", "N")),
        "KeySchema": keys(("user_id", "HASH"), ("ts", "RANGE")),
        "BillingMode": "PAY_PER_REQUEST",
    }
    body.update(extra)
    return body


def error(fn, ctx, body, kind=ValidationException) -> str:
    with pytest.raises(ShoalError) as info:
        fn(ctx, body)
    assert type(info.value) is kind, info.value.message
    return info.value.message


# ---------------------------------------------------------------- CreateTable


def test_create_on_demand_table_description(ctx):
    desc = t.create_table(ctx, request())["TableDescription"]
    assert desc == {
        "AttributeDefinitions": attrs(("ts", "N"), ("user_id", "S")),  # sorted by name
        "TableName": "events",
        "KeySchema": keys(("user_id", "HASH"), ("ts", "RANGE")),
        "TableStatus": "CREATING",  # DynamoDB's answer, though the table is ACTIVE at once (below)
        "CreationDateTime": NOW,
        "ProvisionedThroughput": {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
        "TableSizeBytes": 0,
        "ItemCount": 0,
        "TableArn": ARN_BASE + "events",
        "TableId": desc["TableId"],
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "DeletionProtectionEnabled": False,
    }
    assert len(desc["TableId"]) == 36
    # DescribeTable, unlike CreateTable's response, has the switch time and the warm throughput
    # (DDB-TABLE-033), and the table is ACTIVE.
    described = t.describe_table(ctx, {"TableName": "events"})["Table"]
    assert described["BillingModeSummary"] == {
        "BillingMode": "PAY_PER_REQUEST", "LastUpdateToPayPerRequestDateTime": NOW}
    assert (described["TableStatus"], described["WarmThroughput"]["Status"]) == ("ACTIVE", "ACTIVE")


def test_create_provisioned_table_records_throughput(ctx):
    body = request(ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7})
    del body["BillingMode"]
    desc = t.create_table(ctx, body)["TableDescription"]
    assert desc["ProvisionedThroughput"] == {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 5, "WriteCapacityUnits": 7}
    assert "BillingModeSummary" not in desc


def test_create_explicitly_provisioned_has_no_billing_summary(ctx):
    desc = provisioned(ctx)
    assert "BillingModeSummary" not in desc
    assert "BillingModeSummary" not in t.describe_table(ctx, {"TableName": "events"})["Table"]


def test_definitions_and_non_key_attributes_are_sorted(ctx):
    body = request(AttributeDefinitions=attrs(("z", "S"), ("user_id", "S"), ("ts", "N"), ("a", "S")),
                   LocalSecondaryIndexes=[lsi(schema=keys(("user_id", "HASH"), ("z", "RANGE")),
                                              projection={"ProjectionType": "INCLUDE",
                                                          "NonKeyAttributes": ["zz", "aa", "mm"]})],
                   GlobalSecondaryIndexes=[gsi(name="by_a", schema=keys(("a", "HASH")),
                                               projection={"ProjectionType": "INCLUDE",
                                                           "NonKeyAttributes": ["b", "a"]})])
    created = t.create_table(ctx, body)["TableDescription"]
    described = t.describe_table(ctx, {"TableName": "events"})["Table"]
    for desc in (created, described):
        assert [d["AttributeName"] for d in desc["AttributeDefinitions"]] == ["a", "ts", "user_id", "z"]
        assert desc["LocalSecondaryIndexes"][0]["Projection"]["NonKeyAttributes"] == ["aa", "mm", "zz"]
        assert desc["GlobalSecondaryIndexes"][0]["Projection"]["NonKeyAttributes"] == ["a", "b"]
    desc = update(ctx, AttributeDefinitions=attrs(("b", "S")), GlobalSecondaryIndexUpdates=[{"Create": gsi(
        name="by_b", schema=keys(("b", "HASH")),
        projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": ["q", "c"]})}])
    assert [d["AttributeName"] for d in desc["AttributeDefinitions"]] == ["a", "b", "ts", "user_id", "z"]
    assert desc["GlobalSecondaryIndexes"][1]["Projection"]["NonKeyAttributes"] == ["c", "q"]


INVALID_CLASS = ("Invalid table-class parameter provided. Please try again with a valid table-class value: "
                 "[STANDARD, STANDARD_INFREQUENT_ACCESS].")


def test_invalid_table_class(ctx):
    assert error(t.create_table, ctx, request(TableClass="FOO")) == INVALID_CLASS
    t.create_table(ctx, request())
    assert error(t.update_table, ctx, {"TableName": "events", "TableClass": "standard"}) == INVALID_CLASS


def test_create_records_class_protection_sse_and_on_demand(ctx):
    desc = t.create_table(ctx, request(
        TableClass="STANDARD_INFREQUENT_ACCESS", DeletionProtectionEnabled=True,
        SSESpecification={"Enabled": True}, OnDemandThroughput={"MaxReadRequestUnits": 100},
    ))["TableDescription"]
    assert desc["TableClassSummary"] == {"TableClass": "STANDARD_INFREQUENT_ACCESS"}
    assert desc["DeletionProtectionEnabled"] is True
    assert desc["SSEDescription"] == {
        "Status": "ENABLED", "SSEType": "KMS",
        "KMSMasterKeyArn": f"arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT}:alias/aws/dynamodb",
    }
    assert desc["OnDemandThroughput"] == {"MaxReadRequestUnits": 100, "MaxWriteRequestUnits": -1}


def test_create_existing_table(ctx):
    t.create_table(ctx, request())
    assert error(t.create_table, ctx, request(), ResourceInUseException) == "Table already exists: events"


def test_same_name_in_other_region_is_another_table(ctx, engine):
    t.create_table(ctx, request())
    other = make_ctx(engine, region="eu-west-1")
    desc = t.create_table(other, request())["TableDescription"]
    assert desc["TableArn"] == f"arn:aws:dynamodb:eu-west-1:{DEFAULT_ACCOUNT}:table/events"
    assert t.list_tables(other, {}) == {"TableNames": ["events"]}


@pytest.mark.parametrize("extra, message", [
    ({"ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}},
     "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits "
     "can be specified when BillingMode is PAY_PER_REQUEST"),
    ({"BillingMode": "PROVISIONED"},
     "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both "
     "be specified when BillingMode is PROVISIONED"),
    ({"BillingMode": "PROVISIONED", "ProvisionedThroughput": {"ReadCapacityUnits": 1000000000001, "WriteCapacityUnits": 1}},
     "Given value 1000000000001 for ReadCapacityUnits is out of bounds"),
    ({"BillingMode": "PROVISIONED", "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1000000000001}},
     "Given value 1000000000001 for WriteCapacityUnits is out of bounds"),
])
def test_create_billing_rules(ctx, extra, message):
    assert error(t.create_table, ctx, request(**extra)) == message


def test_create_provisioned_by_default_needs_throughput(ctx):
    body = request()
    del body["BillingMode"]
    assert error(t.create_table, ctx, body).endswith("must both be specified when BillingMode is PROVISIONED")


@pytest.mark.parametrize("definitions, schema, message", [
    (attrs(("b", "S")), keys(("a", "HASH")),
     "One or more parameter values were invalid: Some index key attributes are not defined in "
     "AttributeDefinitions. Keys: [a], AttributeDefinitions: [b]"),
    (attrs(("b", "S")), keys(("a", "HASH"), ("b", "RANGE")),
     "Invalid KeySchema: Some index key attribute have no definition"),
    (attrs(("a", "S"), ("b", "S")), keys(("a", "HASH"), ("a", "RANGE")),
     "Both the Hash Key and the Range Key element in the KeySchema have the same name"),
    (attrs(("a", "S"), ("b", "S")), keys(("a", "RANGE"), ("b", "HASH")),
     "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"),
    (attrs(("a", "S")), keys(("a", "RANGE")),
     "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"),
    (attrs(("a", "S"), ("b", "S")), keys(("a", "HASH"), ("b", "HASH")),
     "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type"),
    (attrs(("a", "S"), ("b", "S")), keys(("a", "HASH")),
     "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly "
     "match number of attributes defined in AttributeDefinitions"),
    (attrs(("a", "S"), ("b", "S"), ("c", "S")), keys(("a", "HASH"), ("b", "RANGE")),
     "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly "
     "match number of attributes defined in AttributeDefinitions"),
    (attrs(("a", "S"), ("a", "N")), keys(("a", "HASH")),
     "Attribute Name is duplicated: a"),
])
def test_create_key_schema_rules(ctx, definitions, schema, message):
    body = request(AttributeDefinitions=definitions, KeySchema=schema)
    assert error(t.create_table, ctx, body) == message


def coral_name(name, *constraints):
    parts = [f"Value '{name}' at 'tableName' failed to satisfy constraint: {c}" for c in constraints]
    plural = "s" if len(parts) > 1 else ""
    return f"{len(parts)} validation error{plural} detected: " + "; ".join(parts)


PATTERN = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
TOO_SHORT = "Member must have length greater than or equal to 3"


@pytest.mark.parametrize("name, message", [
    ("a;", coral_name("a;", PATTERN, TOO_SHORT)),
    ("ab", coral_name("ab", TOO_SHORT)),
    ("x" * 256, coral_name("x" * 256, "Member must have length less than or equal to 255")),
    ("abc;", coral_name("abc;", PATTERN)),
])
def test_table_name_rules(ctx, name, message):
    assert error(t.create_table, ctx, request(name)) == message
    assert error(t.describe_table, ctx, {"TableName": name}) == message


def test_create_by_arn(ctx):
    desc = t.create_table(ctx, request(ARN_BASE + "by_arn"))["TableDescription"]
    assert desc["TableName"] == "by_arn"
    message = error(t.create_table, ctx, request("arn:aws:s3:::bucket"))
    assert message == "Invalid TableArn: Invalid ResourceArn provided as input arn:aws:s3:::bucket"


def lsi(name="by_x", schema=None, projection=None):
    return {"IndexName": name, "KeySchema": schema or keys(("user_id", "HASH"), ("x", "RANGE")),
            "Projection": projection or {"ProjectionType": "ALL"}}


def gsi(name="by_x", schema=None, projection=None, **extra):
    return {"IndexName": name, "KeySchema": schema or keys(("x", "HASH")),
            "Projection": projection or {"ProjectionType": "ALL"}, **extra}


WITH_X = attrs(("user_id", "S"), ("ts", "N"), ("x", "S"))


@pytest.mark.parametrize("extra, message", [
    ({"BillingMode": "PROVISIONED", "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
      "GlobalSecondaryIndexes": [gsi()]},
     "One or more parameter values were invalid: ProvisionedThroughput is not specified for index: by_x"),
    ({"LocalSecondaryIndexes": [lsi(projection={"ProjectionType": "INCLUDE"})]},
     "One or more parameter values were invalid: ProjectionType is INCLUDE, but NonKeyAttributes is not specified"),
    ({"GlobalSecondaryIndexes": [gsi(projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "b", "a"]})]},
     "One or more parameter values were invalid: Duplicate element in NonKeyAttributes: a"),
    ({"GlobalSecondaryIndexes": [gsi(projection={"ProjectionType": "INCLUDE",
                                                 "NonKeyAttributes": [f"a{i}" for i in range(101)]})]},
     "One or more parameter values were invalid: Number of projected attributes in all indexes exceeds limit of 100"),
    ({"LocalSecondaryIndexes": []}, "One or more parameter values were invalid: List of LocalSecondaryIndexes is empty"),
    ({"GlobalSecondaryIndexes": []}, "One or more parameter values were invalid: List of GlobalSecondaryIndexes is empty"),
    ({"LocalSecondaryIndexes": [lsi(schema=keys(("x", "HASH"), ("ts", "RANGE")))]},
     "One or more parameter values were invalid: Index KeySchema does not have the same leading hash key "
     "as table KeySchema for index: by_x. index hash key: x, table hash key: user_id"),
    ({"LocalSecondaryIndexes": [lsi(schema=keys(("user_id", "HASH")))]},
     "One or more parameter values were invalid: Index KeySchema does not have a range key for index: by_x"),
    ({"LocalSecondaryIndexes": [lsi(projection={"ProjectionType": "KEYS_ONLY", "NonKeyAttributes": ["q"]})]},
     "One or more parameter values were invalid: ProjectionType is KEYS_ONLY, but NonKeyAttributes is specified"),
    ({"GlobalSecondaryIndexes": [gsi(schema=keys(("y", "HASH")))]},
     "One or more parameter values were invalid: Some index key attributes are not defined in "
     "AttributeDefinitions. Keys: [y], AttributeDefinitions: [user_id, ts, x]"),
    ({"GlobalSecondaryIndexes": [gsi(), gsi()]},
     "One or more parameter values were invalid: Duplicate index name: by_x"),
    ({"GlobalSecondaryIndexes": [gsi(ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})]},
     "One or more parameter values were invalid: ProvisionedThroughput should not be specified for "
     "index: by_x when BillingMode is PAY_PER_REQUEST"),
    ({"GlobalSecondaryIndexes": [gsi(schema=keys(("user_id", "HASH")))]},
     "One or more parameter values were invalid: Some AttributeDefinitions are not used. "
     "AttributeDefinitions: [user_id, ts, x], keys used: [ts, user_id]"),
])
def test_create_index_rules(ctx, extra, message):
    assert error(t.create_table, ctx, request(AttributeDefinitions=WITH_X, **extra)) == message
    assert error(t.describe_table, ctx, {"TableName": "events"}, ResourceNotFoundException)


@pytest.mark.parametrize("spec, message", [
    ({"StreamEnabled": True},
     "One or more parameter values were invalid: Table is being created with a stream enabled, "
     "UpdateViewType is required"),
    ({"StreamEnabled": False, "StreamViewType": "NEW_IMAGE"},
     "One or more parameter values were invalid: Table is being created with a stream disabled, "
     "UpdateViewType should not be specified"),
])
def test_create_stream_specification(ctx, spec, message):
    assert error(t.create_table, ctx, request(StreamSpecification=spec)) == message


def test_create_with_disabled_stream_is_fine(ctx):
    t.create_table(ctx, request(StreamSpecification={"StreamEnabled": False}))


def test_create_with_an_invalid_resource_policy(ctx):
    assert error(t.create_table, ctx, request(ResourcePolicy="{}")) == (
        "One or more parameter values were invalid: Invalid policy document: Syntax errors in policy."
    )


# ---------------------------------------------------------------- DescribeTable / ListTables


def test_describe_reports_live_counters(ctx, engine):
    created = t.create_table(ctx, request())["TableDescription"]
    with engine.read() as txn:
        table = ctx.catalog.require(txn, REGION, "events")
    with engine.write() as txn:
        txn.put("meta", STATS_KEY(table.prefix), struct.pack(">qq", 3, 1234))
    desc = t.describe_table(ctx, {"TableName": "events"})["Table"]
    assert (desc["ItemCount"], desc["TableSizeBytes"]) == (3, 1234)
    # CreateTable's summary has no time, and its answer says CREATING.
    live = ("ItemCount", "TableSizeBytes", "BillingModeSummary", "TableStatus", "WarmThroughput")
    assert {k: v for k, v in desc.items() if k not in live} == {k: v for k, v in created.items() if k not in live}
    assert (created["TableStatus"], desc["TableStatus"]) == ("CREATING", "ACTIVE")
    assert list(desc)[5:8] == ["ProvisionedThroughput", "TableSizeBytes", "ItemCount"]


def test_describe_by_arn(ctx):
    t.create_table(ctx, request())
    assert t.describe_table(ctx, {"TableName": ARN_BASE + "events"})["Table"]["TableName"] == "events"


def test_describe_missing_table(ctx):
    message = error(t.describe_table, ctx, {"TableName": "nope"}, ResourceNotFoundException)
    assert message == "Requested resource not found: Table: nope not found"


def test_list_tables_pages(ctx):
    for name in ("ccc", "aaa", "bbb", "a.b", "Zed"):
        t.create_table(ctx, request(name))
    assert t.list_tables(ctx, {}) == {"TableNames": ["Zed", "a.b", "aaa", "bbb", "ccc"]}
    assert t.list_tables(ctx, {"Limit": 2}) == {"TableNames": ["Zed", "a.b"], "LastEvaluatedTableName": "a.b"}
    assert t.list_tables(ctx, {"Limit": 2, "ExclusiveStartTableName": "a.b"}) == {
        "TableNames": ["aaa", "bbb"], "LastEvaluatedTableName": "bbb"}
    assert t.list_tables(ctx, {"Limit": 3, "ExclusiveStartTableName": "aaa"}) == {"TableNames": ["bbb", "ccc"]}
    assert t.list_tables(ctx, {"Limit": 2, "ExclusiveStartTableName": "bbb"}) == {"TableNames": ["ccc"]}
    assert t.list_tables(ctx, {"ExclusiveStartTableName": "aab"}) == {"TableNames": ["bbb", "ccc"]}
    assert t.list_tables(ctx, {"ExclusiveStartTableName": "zzz"}) == {"TableNames": []}


def test_list_tables_is_per_region(ctx, engine):
    t.create_table(ctx, request("one"))
    t.create_table(make_ctx(engine, region="us-east-1x"), request("two"))
    assert t.list_tables(ctx, {}) == {"TableNames": ["one"]}
    with engine.read() as txn:
        assert ctx.catalog.list_names(txn, "us-east-1x") == ["two"]


# ---------------------------------------------------------------- DeleteTable


def put_items(engine, table, n):
    with engine.write() as txn:
        for i in range(n):
            txn.put("items", table.prefix + i.to_bytes(4, "big"), b"x")
        txn.put("meta", STATS_KEY(table.prefix), struct.pack(">qq", n, n))


def test_delete_table_removes_entry_items_stats_and_tags(ctx, engine):
    t.create_table(ctx, request(Tags=[{"Key": "k", "Value": "v"}]))
    with engine.read() as txn:
        table = ctx.catalog.require(txn, REGION, "events")
    put_items(engine, table, 2500)
    desc = t.delete_table(ctx, {"TableName": "events"})["TableDescription"]
    assert desc["TableStatus"] == "DELETING" and desc["ItemCount"] == 2500
    with engine.read() as txn:
        assert txn.get("meta", STATS_KEY(table.prefix)) is None
        assert txn.get("meta", TAGS_KEY(table.prefix)) is None
        assert ctx.catalog.get(txn, REGION, "events") is None
    assert error(t.describe_table, ctx, {"TableName": "events"}, ResourceNotFoundException)
    jobs = IndexJobs(engine)
    while jobs():  # the items go in the background (tests/unit/test_table_purge.py)
        pass
    with engine.read() as txn:
        assert list(txn.scan("items", table.prefix, table.prefix + b"\xff" * 8)) == []


def test_delete_small_table_purges_before_answering(ctx, engine):
    t.create_table(ctx, request())
    with engine.read() as txn:
        table = ctx.catalog.require(txn, REGION, "events")
    put_items(engine, table, 10)
    t.delete_table(ctx, {"TableName": "events"})
    with engine.read() as txn:
        assert list(txn.scan("items")) == []
        assert [bytes(k) for k, _ in txn.scan("meta") if table.prefix in bytes(k)] == []


def test_delete_keeps_other_tables_items(ctx, engine):
    t.create_table(ctx, request("keep"))
    t.create_table(ctx, request("drop"))
    with engine.read() as txn:
        keep = ctx.catalog.require(txn, REGION, "keep")
        drop = ctx.catalog.require(txn, REGION, "drop")
    put_items(engine, keep, 10)
    put_items(engine, drop, 10)
    t.delete_table(ctx, {"TableName": "drop"})
    with engine.read() as txn:
        assert len(list(txn.scan("items"))) == 10
    assert t.describe_table(ctx, {"TableName": "keep"})["Table"]["ItemCount"] == 10


def test_delete_missing_table(ctx):
    message = error(t.delete_table, ctx, {"TableName": "nope"}, ResourceNotFoundException)
    assert message == "Requested resource not found: Table: nope not found"


def test_deletion_protection(ctx):
    t.create_table(ctx, request(DeletionProtectionEnabled=True))
    assert error(t.delete_table, ctx, {"TableName": "events"}) == (
        "Resource cannot be deleted as it is currently protected against deletion. "
        "Disable deletion protection first.")
    t.update_table(ctx, {"TableName": "events", "DeletionProtectionEnabled": False})
    t.delete_table(ctx, {"TableName": "events"})


def test_recreated_table_gets_new_prefix(ctx, engine):
    first = t.create_table(ctx, request())["TableDescription"]["TableId"]
    t.delete_table(ctx, {"TableName": "events"})
    second = t.create_table(ctx, request())["TableDescription"]["TableId"]
    assert first != second


# ---------------------------------------------------------------- UpdateTable


def provisioned(ctx, r=5, w=5):
    body = request(BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": r, "WriteCapacityUnits": w})
    return t.create_table(ctx, body)["TableDescription"]


def update(ctx, **extra):
    return t.update_table(ctx, {"TableName": "events", **extra})["TableDescription"]


def updated(ctx, **extra):
    """The table's description after an update (UpdateTable's answer repeats
    some old values, as DynamoDB's does)."""
    update(ctx, **extra)
    return t.describe_table(ctx, {"TableName": "events"})["Table"]


def test_update_nothing(ctx):
    provisioned(ctx)
    assert error(t.update_table, ctx, {"TableName": "events"}) == (
        "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, "
        "SSESpecification, ReplicaUpdates, MultiAccountReplicaReady, ReplicaTransitRoleArn, MultiRegionConsistency, "
        "DeletionProtectionEnabled, OnDemandThroughput, WarmThroughput or TableClass is required")
    # DynamoDB leaves out of the list what the request has.
    assert error(t.update_table, ctx, {"TableName": "events", "MultiRegionConsistency": "STRONG"}) == (
        "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, "
        "SSESpecification, ReplicaUpdates, MultiAccountReplicaReady, ReplicaTransitRoleArn, "
        "DeletionProtectionEnabled, OnDemandThroughput, WarmThroughput or TableClass is required")


def test_update_with_an_empty_gsi_update_list(ctx):
    provisioned(ctx)
    # Alone it counts as absent; beside another change it is refused itself.
    assert error(t.update_table, ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": []}).startswith(
        "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, ")
    assert error(t.update_table, ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": [],
                                       "DeletionProtectionEnabled": True}) == (
        "One or more parameter values were invalid: List of GlobalSecondaryIndexUpdates is empty")
    assert t.describe_table(ctx, {"TableName": "events"})["Table"]["DeletionProtectionEnabled"] is False


def test_gsi_update_errors(ctx):
    t.create_table(ctx, request(AttributeDefinitions=WITH_X, GlobalSecondaryIndexes=[gsi()]))
    assert error(t.update_table, ctx, {"TableName": "events", "AttributeDefinitions": attrs(("y", "N")),
                                       "GlobalSecondaryIndexUpdates": [{
                                           "Create": gsi(name="by_y", schema=keys(("y", "HASH"))),
                                           "Delete": {"IndexName": "by_x"}}]}) == (
        "One or more parameter values were invalid: Only one global secondary index action is allowed per "
        "GlobalSecondaryIndexUpdate object")
    assert error(t.update_table, ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": [
        {"Create": gsi(name="by_y", schema=keys(("y", "HASH")))}]}) == (
        "One or more parameter values were invalid: AttributeDefinitions is not specified for index: by_y")
    assert error(t.update_table, ctx, {"TableName": "events", "AttributeDefinitions": attrs(("x", "N")),
                                       "GlobalSecondaryIndexUpdates": [
                                           {"Create": gsi(name="by_x2", schema=keys(("x", "HASH")))}]}) == (
        "One or more parameter values were invalid: Attributes cannot be redefined. Please check that your "
        "attribute has the same type as previously defined. Existing schema: Schema:[SchemaElement: key{x:S:HASH}] "
        "New schema: Schema:[SchemaElement: key{x:N:HASH}]")


def test_update_same_throughput(ctx):
    provisioned(ctx)
    message = error(t.update_table, ctx, {"TableName": "events",
                                          "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}})
    assert message == (
        "The provisioned throughput for the table will not change. The requested value equals the current value. "
        "Current ReadCapacityUnits provisioned for the table: 5. Requested ReadCapacityUnits: 5. "
        "Current WriteCapacityUnits provisioned for the table: 5. Requested WriteCapacityUnits: 5. "
        "Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.")


def test_update_throughput_increase_and_decrease(engine):
    ctx = make_ctx(engine, now=NOW)
    provisioned(ctx)
    desc = updated(ctx, ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 5})
    assert desc["ProvisionedThroughput"] == {
        "LastIncreaseDateTime": NOW, "NumberOfDecreasesToday": 0, "ReadCapacityUnits": 10, "WriteCapacityUnits": 5}
    later = make_ctx(engine, now=NOW + 60)
    desc = updated(later, ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 2})
    assert desc["ProvisionedThroughput"] == {
        "LastIncreaseDateTime": NOW, "LastDecreaseDateTime": NOW + 60, "NumberOfDecreasesToday": 1,
        "ReadCapacityUnits": 10, "WriteCapacityUnits": 2}
    next_day = make_ctx(engine, now=NOW + 86400)
    desc = updated(next_day, ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    assert desc["ProvisionedThroughput"]["NumberOfDecreasesToday"] == 1
    assert t.describe_table(ctx, {"TableName": "events"})["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 1


def test_update_switch_billing_modes(engine):
    ctx = make_ctx(engine)
    provisioned(ctx)
    later = make_ctx(engine, now=NOW + 10)
    desc = update(later, BillingMode="PAY_PER_REQUEST")
    assert desc["BillingModeSummary"] == {"BillingMode": "PAY_PER_REQUEST"}  # DescribeTable has the time
    assert t.describe_table(ctx, {"TableName": "events"})["Table"]["BillingModeSummary"] == {
        "BillingMode": "PAY_PER_REQUEST", "LastUpdateToPayPerRequestDateTime": NOW + 10}
    assert update(ctx, DeletionProtectionEnabled=True)["BillingModeSummary"] == {
        "BillingMode": "PAY_PER_REQUEST", "LastUpdateToPayPerRequestDateTime": NOW + 10}
    update(ctx, DeletionProtectionEnabled=False)
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 0
    assert error(t.update_table, ctx, {"TableName": "events", "BillingMode": "PROVISIONED"}) == (
        "One or more parameter values were invalid: ProvisionedThroughput must be specified when BillingMode is PROVISIONED")
    assert error(t.update_table, ctx, {"TableName": "events",
                                       "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 3}}) == (
        "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be "
        "specified when BillingMode is PAY_PER_REQUEST")
    desc = update(ctx, BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 4})
    assert desc["BillingModeSummary"] == {"BillingMode": "PROVISIONED", "LastUpdateToPayPerRequestDateTime": NOW + 10}
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 3


def test_update_class_protection_and_on_demand(ctx):
    t.create_table(ctx, request())
    desc = updated(ctx, TableClass="STANDARD_INFREQUENT_ACCESS")
    assert desc["TableClassSummary"] == {"TableClass": "STANDARD_INFREQUENT_ACCESS", "LastUpdateDateTime": NOW}
    assert update(ctx, DeletionProtectionEnabled=True)["DeletionProtectionEnabled"] is True
    desc = update(ctx, OnDemandThroughput={"MaxWriteRequestUnits": 50})
    assert desc["OnDemandThroughput"] == {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": 50}
    desc = update(ctx, OnDemandThroughput={"MaxWriteRequestUnits": -1})
    assert desc["OnDemandThroughput"] == {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": -1}
    assert t.describe_table(ctx, {"TableName": "events"})["Table"]["DeletionProtectionEnabled"] is True


@pytest.mark.parametrize("extra, message", [
    ({"TableClass": "STANDARD", "DeletionProtectionEnabled": True},
     "TableClass modification must be the only operation in the request"),
    ({"DeletionProtectionEnabled": True, "BillingMode": "PAY_PER_REQUEST"},
     "DeletionProtection modification must be the only operation in the request"),
    ({"SSESpecification": {"Enabled": True}, "DeletionProtectionEnabled": True},
     "Server-Side Encryption modification must be the only operation in the request"),
    ({"WarmThroughput": {"ReadUnitsPerSecond": 20000}, "BillingMode": "PAY_PER_REQUEST"},
     "WarmThroughput must be the only operation in the request"),
    ({"WarmThroughput": {"ReadUnitsPerSecond": 20000}, "AttributeDefinitions": [{"AttributeName": "x", "AttributeType": "S"}],
      "GlobalSecondaryIndexUpdates": [{"Create": {"IndexName": "by_x", "KeySchema": [{"AttributeName": "x", "KeyType": "HASH"}],
                                                  "Projection": {"ProjectionType": "ALL"}}}]},
     "Create global secondary index cannot be specified when updating WarmThroughput"),
    ({"WarmThroughput": {"ReadUnitsPerSecond": 20000}, "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "by_x"}}]},
     "WarmThroughput must be the only operation in the request"),
    ({"OnDemandThroughput": {"MaxReadRequestUnits": 5}, "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}},
     "OnDemandThroughput can only be combined with BillingMode in an UpdateTable request"),
    ({"OnDemandThroughput": {"MaxReadRequestUnits": 0}},
     "Requested MaxReadRequestUnits for OnDemandThroughput for table is outside of valid range"),
])
def test_update_combination_rules(ctx, extra, message):
    t.create_table(ctx, request())
    assert error(t.update_table, ctx, {"TableName": "events", **extra}) == "One or more parameter values were invalid: " + message


def test_on_demand_throughput_needs_on_demand_table(ctx):
    provisioned(ctx)
    assert error(t.update_table, ctx, {"TableName": "events", "OnDemandThroughput": {"MaxWriteRequestUnits": 5}}) == (
        "One or more parameter values were invalid: MaxWriteRequestUnits for OnDemandThroughput cannot be "
        "specified when the table BillingMode is PROVISIONED")
    body = request("other", BillingMode="PROVISIONED", OnDemandThroughput={"MaxReadRequestUnits": 5},
                   ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    assert error(t.create_table, ctx, body) == (
        "One or more parameter values were invalid: MaxReadRequestUnits for OnDemandThroughput cannot be "
        "specified when table BillingMode is PROVISIONED.")
    # A GSI's: recorded only as far as "for index: <IDX> cannot be specified", completed as the table's.
    one = {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
    body = request("other", BillingMode="PROVISIONED", ProvisionedThroughput=one,
                   AttributeDefinitions=attrs(("user_id", "S"), ("ts", "N"), ("x", "S")),
                   GlobalSecondaryIndexes=[gsi(ProvisionedThroughput=one,
                                               OnDemandThroughput={"MaxWriteRequestUnits": 5})])
    assert error(t.create_table, ctx, body) == (
        "One or more parameter values were invalid: MaxWriteRequestUnits for OnDemandThroughput for index: by_x "
        "cannot be specified when table BillingMode is PROVISIONED.")
    assert t.list_tables(ctx, {})["TableNames"] == ["events"]


@pytest.mark.parametrize("spec, message", [
    ({"Enabled": False, "SSEType": "KMS"}, "SSEType can not be specified if Enabled is false"),
    ({"Enabled": False, "KMSMasterKeyId": "k"}, "KMSMasterKeyId can not be specified if Enabled is false"),
    ({"Enabled": True, "SSEType": "AES256"}, "SSEType AES256 is not supported"),
    ({"Enabled": True, "KMSMasterKeyId": "alias/foo"}, "SSEType KMS is required if KMSMasterKeyId is specified"),
])
def test_create_sse_rules(ctx, spec, message):
    assert error(t.create_table, ctx, request(SSESpecification=spec)) == (
        "One or more parameter values were invalid: " + message)


def test_create_with_sse_type_kms_alone_uses_the_aws_managed_key(ctx):
    desc = t.create_table(ctx, request(SSESpecification={"SSEType": "KMS"}))["TableDescription"]
    assert desc["SSEDescription"] == {
        "Status": "ENABLED", "SSEType": "KMS",
        "KMSMasterKeyArn": f"arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT}:alias/aws/dynamodb"}
    desc = t.create_table(ctx, request("other", SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                                  "KMSMasterKeyId": "alias/foo"}))["TableDescription"]
    assert desc["SSEDescription"]["KMSMasterKeyArn"] == f"arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT}:alias/foo"


def test_update_streams(ctx):
    t.create_table(ctx, request())
    assert error(t.update_table, ctx, {"TableName": "events", "StreamSpecification": {"StreamEnabled": False}}) == (
        "Table has no stream to disable: TableName: events")
    assert error(t.update_table, ctx, {"TableName": "events", "StreamSpecification": {"StreamEnabled": True}}) == (
        "One or more parameter values were invalid: If stream is being enabled then UpdateViewType is required")


def test_update_missing_index_and_table(ctx):
    t.create_table(ctx, request(AttributeDefinitions=WITH_X, LocalSecondaryIndexes=[lsi()]))
    for action in ("Delete", "Update"):
        assert error(t.update_table, ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": [
            {action: {"IndexName": "abc"}}]}, ResourceNotFoundException) == (
            "Requested resource not found: Index abc for table events")
        assert error(t.update_table, ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": [
            {action: {"IndexName": "by_x"}}]}) == (
            f"Cannot {action.lower()} an index that is not a GlobalSecondaryIndex: by_x")
    assert error(t.update_table, ctx, {"TableName": "nope", "DeletionProtectionEnabled": True},
                 ResourceNotFoundException) == "Requested resource not found: Table: nope not found"


PT = {"ReadCapacityUnits": 2, "WriteCapacityUnits": 2}
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
INVALID = "One or more parameter values were invalid: "


def provisioned_with_gsi(ctx, name="events", throughput=PT):
    return t.create_table(ctx, request(name, BillingMode="PROVISIONED", ProvisionedThroughput=throughput,
                                       AttributeDefinitions=WITH_X,
                                       GlobalSecondaryIndexes=[gsi(ProvisionedThroughput=throughput)]))


def above_limit(member, value, region=REGION, index=None):
    requested, scope = (f"{member} for index {index}", "index") if index else (member, "table")
    return (f"The requested {requested}, {value}, is above the per {scope} maximum for the account in {region}. "
            "Per table maximum: 40000. Refer to the Amazon DynamoDB Developer Guide for current limits and how "
            "to request higher limits.")


def test_create_capacity_above_the_table_limits(engine):
    ctx = make_ctx(engine, region="eu-west-1")
    both = {"ReadCapacityUnits": 40001, "WriteCapacityUnits": 40002}
    assert error(t.create_table, ctx, request(BillingMode="PROVISIONED", ProvisionedThroughput=both),
                 LimitExceededException) == above_limit("ReadCapacityUnits", 40001, "eu-west-1")
    assert error(t.create_table, ctx, request(BillingMode="PROVISIONED", ProvisionedThroughput={
        "ReadCapacityUnits": 40000, "WriteCapacityUnits": 40002}), LimitExceededException) == (
        above_limit("WriteCapacityUnits", 40002, "eu-west-1"))
    assert error(t.create_table, ctx, request(BillingMode="PROVISIONED", ProvisionedThroughput=PT,
                                              AttributeDefinitions=WITH_X,
                                              GlobalSecondaryIndexes=[gsi("gsi1", ProvisionedThroughput=both)]),
                 LimitExceededException) == above_limit("ReadCapacityUnits", 40001, "eu-west-1", "gsi1")
    assert error(t.describe_table, ctx, {"TableName": "events"}, ResourceNotFoundException)
    provisioned_with_gsi(ctx, throughput={"ReadCapacityUnits": 40000, "WriteCapacityUnits": 40000})


def test_update_capacity_above_the_table_limits(ctx):
    provisioned_with_gsi(ctx)
    assert error(t.update_table, ctx, {"TableName": "events", "ProvisionedThroughput": {
        "ReadCapacityUnits": 2, "WriteCapacityUnits": 40001}}, LimitExceededException) == (
        above_limit("WriteCapacityUnits", 40001))
    assert error(t.update_table, ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": [{"Update": {
        "IndexName": "by_x", "ProvisionedThroughput": {"ReadCapacityUnits": 40001, "WriteCapacityUnits": 2}}}]},
        LimitExceededException) == above_limit("ReadCapacityUnits", 40001, index="by_x")
    assert error(t.update_table, ctx, {"TableName": "events", "AttributeDefinitions": attrs(("y", "S")),
                                       "GlobalSecondaryIndexUpdates": [{"Create": gsi(
                                           "gsi1", schema=keys(("y", "HASH")),
                                           ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 50000})}]},
                 LimitExceededException) == above_limit("WriteCapacityUnits", 50000, index="gsi1")
    t.update_table(ctx, {"TableName": "events", "BillingMode": "PAY_PER_REQUEST"})
    assert error(t.update_table, ctx, {"TableName": "events", "BillingMode": "PROVISIONED",
                                       "ProvisionedThroughput": {"ReadCapacityUnits": 40001, "WriteCapacityUnits": 1},
                                       "GlobalSecondaryIndexUpdates": [{"Update": {
                                           "IndexName": "by_x", "ProvisionedThroughput": PT}}]},
                 LimitExceededException) == above_limit("ReadCapacityUnits", 40001)
    desc = t.describe_table(ctx, {"TableName": "events"})["Table"]
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


@pytest.mark.parametrize("extra, message", [
    ({"ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 3},
      "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "by_x"}}]},
     "You cannot create or delete index while updating table IOPS"),
    ({"ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 3}, "AttributeDefinitions": WITH_X,
      "GlobalSecondaryIndexUpdates": [{"Create": gsi("by_x2", ProvisionedThroughput=PT)}]},
     "You cannot create or delete index while updating table IOPS"),
    ({"StreamSpecification": STREAM, "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "by_x"}}]},
     "You cannot create or delete index while changing stream status"),
    ({"StreamSpecification": STREAM, "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 3}},
     "You cannot modify stream status while updating table IOPS"),
])
def test_update_forbidden_pairs(ctx, extra, message):
    provisioned_with_gsi(ctx)
    assert error(t.update_table, ctx, {"TableName": "events", **extra}) == INVALID + message
    # Checked before the table is looked up.
    assert error(t.update_table, ctx, {"TableName": "nope", **extra}) == INVALID + message
    desc = t.describe_table(ctx, {"TableName": "events"})["Table"]
    assert "StreamSpecification" not in desc and desc["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE"


def test_update_stream_with_on_demand_switch_is_allowed(ctx):
    provisioned_with_gsi(ctx)
    desc = update(ctx, BillingMode="PAY_PER_REQUEST", StreamSpecification=STREAM)
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert desc["StreamSpecification"]["StreamEnabled"] is True


def test_update_billing_mode_and_throughput_must_agree(ctx):
    provisioned(ctx)
    for name in ("events", "nope"):  # before the table is looked up
        assert error(t.update_table, ctx, {"TableName": name, "BillingMode": "PROVISIONED"}) == (
            INVALID + "ProvisionedThroughput must be specified when BillingMode is PROVISIONED")
        assert error(t.update_table, ctx, {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                                           "ProvisionedThroughput": PT}) == (
            INVALID + "ProvisionedThroughput cannot be specified when BillingMode is PAY_PER_REQUEST")
    desc = updated(ctx, BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 6, "WriteCapacityUnits": 5})
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 6


def test_switch_to_provisioned_needs_every_index_throughput(ctx):
    t.create_table(ctx, request(AttributeDefinitions=[*WITH_X, *attrs(("y", "S"))],
                                GlobalSecondaryIndexes=[gsi(), gsi("by_y", keys(("y", "HASH")))]))
    body = {"TableName": "events", "BillingMode": "PROVISIONED", "ProvisionedThroughput": PT}
    assert error(t.update_table, ctx, body) == INVALID + "ProvisionedThroughput must be specified for index: by_x"
    body["GlobalSecondaryIndexUpdates"] = [
        {"Update": {"IndexName": "by_x", "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}}}]
    assert error(t.update_table, ctx, body) == INVALID + "ProvisionedThroughput must be specified for index: by_y"
    body["GlobalSecondaryIndexUpdates"].append(
        {"Update": {"IndexName": "by_y", "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 6}}})
    desc = t.update_table(ctx, body)["TableDescription"]
    assert desc["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert [(g["IndexName"], g["ProvisionedThroughput"]["ReadCapacityUnits"],
             g["ProvisionedThroughput"]["WriteCapacityUnits"]) for g in desc["GlobalSecondaryIndexes"]] == [
        ("by_x", 3, 4), ("by_y", 5, 6)]


def test_gsi_throughput_texts(ctx):
    t.create_table(ctx, request(AttributeDefinitions=WITH_X, GlobalSecondaryIndexes=[gsi()]))
    assert error(t.update_table, ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": [
        {"Update": {"IndexName": "by_x", "ProvisionedThroughput": PT}}]}) == (
        INVALID + "The only Updates for index: by_x when TableThroughputMode is PAY_PER_REQUEST can be to "
        "OnDemandThroughput, WarmThroughput")
    assert error(t.update_table, ctx, {"TableName": "events", "AttributeDefinitions": WITH_X,
                                       "GlobalSecondaryIndexUpdates": [
                                           {"Create": gsi("by_x2", ProvisionedThroughput=PT)}]}) == (
        INVALID + "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified for index: by_x2 "
        "when BillingMode is PAY_PER_REQUEST")
    provisioned_with_gsi(ctx, "other")
    assert error(t.update_table, ctx, {"TableName": "other", "AttributeDefinitions": WITH_X,
                                       "GlobalSecondaryIndexUpdates": [{"Create": gsi("by_x2")}]}) == (
        INVALID + "Both ReadCapacityUnits and WriteCapacityUnits must be specified for index: by_x2")


def test_update_same_index_throughput(ctx):
    provisioned_with_gsi(ctx, throughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 4})
    assert error(t.update_table, ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": [
        {"Update": {"IndexName": "by_x", "ProvisionedThroughput": {"ReadCapacityUnits": 5,
                                                                    "WriteCapacityUnits": 4}}}]}) == (
        "The provisioned throughput for the index by_x will not change. The requested value equals the current "
        "value. Current ReadCapacityUnits provisioned for index by_x: 5. Requested ReadCapacityUnits: 5. "
        "Current WriteCapacityUnits provisioned for index by_x: 4. Requested WriteCapacityUnits: 4. "
        "Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.")


def test_delete_table_while_an_index_is_created_or_deleted(ctx, engine):
    from shoal.api import indexes as ix

    in_use = ("Attempt to change a resource which is still in use: "
              "Cannot delete table while indexes are being created, updated, or deleted.")
    t.create_table(ctx, request(AttributeDefinitions=WITH_X, GlobalSecondaryIndexes=[gsi()]))
    t.update_table(ctx, {"TableName": "events", "AttributeDefinitions": WITH_X,
                         "GlobalSecondaryIndexUpdates": [{"Create": gsi("by_x2")}]})
    assert error(t.delete_table, ctx, {"TableName": "events"}, ResourceInUseException) == in_use
    jobs = ix.IndexJobs(engine)
    while jobs():
        pass
    t.update_table(ctx, {"TableName": "events", "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "by_x"}}]})
    assert error(t.delete_table, ctx, {"TableName": "events"}, ResourceInUseException) == in_use
    while jobs():
        pass
    t.delete_table(ctx, {"TableName": "events"})


def test_twenty_first_gsi_by_update_table(ctx):
    indexes = [gsi(f"by_x{i}") for i in range(20)]
    t.create_table(ctx, request(AttributeDefinitions=WITH_X, GlobalSecondaryIndexes=indexes))
    assert error(t.update_table, ctx, {"TableName": "events", "AttributeDefinitions": WITH_X,
                                       "GlobalSecondaryIndexUpdates": [{"Create": gsi("by_x20")}]},
                 LimitExceededException) == (
        "Subscriber limit exceeded: Number of global secondary indexes exceeds per-table limit of 20")
    assert error(t.create_table, ctx, request("other", AttributeDefinitions=WITH_X,
                                              GlobalSecondaryIndexes=[*indexes, gsi("by_x20")])) == (
        INVALID + "GlobalSecondaryIndex count exceeds the per-table limit of 20")


def test_update_to_standard_class_without_a_class_changes_nothing(ctx):
    t.create_table(ctx, request())
    assert "TableClassSummary" not in update(ctx, TableClass="STANDARD")
    update(ctx, TableClass="STANDARD_INFREQUENT_ACCESS")
    assert updated(ctx, TableClass="STANDARD")["TableClassSummary"] == {"TableClass": "STANDARD",
                                                                        "LastUpdateDateTime": NOW}


KMS = f"arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT}:"


def test_update_sse_specification(ctx):
    t.create_table(ctx, request())

    def sse_error(spec):
        return error(t.update_table, ctx, {"TableName": "events", "SSESpecification": spec})

    for spec in ({}, {"Enabled": False}):
        assert sse_error(spec) == INVALID + "Table is already encrypted by default"
    assert sse_error({"Enabled": False, "SSEType": "KMS"}) == INVALID + "SSEType can not be specified if Enabled is false"
    # The answer says UPDATING in SSEDescription (the table stays ACTIVE), as DynamoDB's does; DescribeTable
    # says ENABLED at once.
    desc = update(ctx, SSESpecification={"Enabled": True})
    assert desc["SSEDescription"] == {"Status": "UPDATING", "SSEType": "KMS",
                                      "KMSMasterKeyArn": KMS + "alias/aws/dynamodb"}
    assert desc["TableStatus"] == "ACTIVE"
    assert t.describe_table(ctx, {"TableName": "events"})["Table"]["SSEDescription"] == {
        "Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": KMS + "alias/aws/dynamodb"}
    desc = update(ctx, SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "1234abcd"})
    assert desc["SSEDescription"] == {"Status": "UPDATING", "SSEType": "KMS", "KMSMasterKeyArn": KMS + "key/1234abcd"}
    assert sse_error({"Enabled": True, "KMSMasterKeyId": "1234abcd"}) == (
        INVALID + "Table is already encrypted with given KMSMasterKeyId. "
        "Use KMSMasterKeyId parameter if you want to change Master Key")
    assert "SSEDescription" not in update(ctx, SSESpecification={"Enabled": False})
    assert "SSEDescription" not in t.describe_table(ctx, {"TableName": "events"})["Table"]


# ---------------------------------------------------------------- tags


def test_tags_lifecycle(ctx):
    t.create_table(ctx, request(Tags=[{"Key": "env", "Value": "test"}]))
    arn = ARN_BASE + "events"
    assert t.list_tags_of_resource(ctx, {"ResourceArn": arn}) == {"Tags": [{"Key": "env", "Value": "test"}]}
    t.tag_resource(ctx, {"ResourceArn": arn, "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a b"}]})
    assert t.list_tags_of_resource(ctx, {"ResourceArn": arn})["Tags"] == [
        {"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a b"}]
    t.untag_resource(ctx, {"ResourceArn": arn, "TagKeys": ["env", "absent"]})
    assert t.list_tags_of_resource(ctx, {"ResourceArn": arn})["Tags"] == [{"Key": "team", "Value": "a b"}]
    t.untag_resource(ctx, {"ResourceArn": arn, "TagKeys": ["team"]})
    assert t.list_tags_of_resource(ctx, {"ResourceArn": arn, "NextToken": "x"}) == {"Tags": []}


def test_tag_limit(ctx):
    t.create_table(ctx, request())
    arn = ARN_BASE + "events"
    t.tag_resource(ctx, {"ResourceArn": arn, "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(30)]})
    message = error(t.tag_resource, ctx, {"ResourceArn": arn, "Tags": [{"Key": f"x{i}", "Value": "v"} for i in range(21)]})
    assert message == "Number of Tags exceed the current limit for the provided ResourceArn"
    t.tag_resource(ctx, {"ResourceArn": arn, "Tags": [{"Key": f"x{i}", "Value": "v"} for i in range(20)]})
    assert len(t.list_tags_of_resource(ctx, {"ResourceArn": arn})["Tags"]) == 50


def test_too_many_tags_at_creation_creates_nothing(ctx):
    tags = [{"Key": str(i), "Value": str(i)} for i in range(51)]
    assert error(t.create_table, ctx, request(Tags=tags)) == "Number of Tags exceed the current limit for the provided ResourceArn"
    assert error(t.describe_table, ctx, {"TableName": "events"}, ResourceNotFoundException)


@pytest.mark.parametrize("tags, message", [
    ([{"Key": "ok", "Value": "#!"}], "The Tag Value provided is invalid, Value: #!"),
    ([{"Key": "->>;", "Value": "ok"}], "The Tag Key provided is invalid, Key: ->>;"),
    ([{"Key": "aws:name", "Value": "v"}], "Tag Key cannot be prefixed with aws:, Key: aws:name"),
    ([{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}],
     "Duplicate Tag Keys provided as input: Duplicate Tag Key found k"),
])
def test_tag_content_rules(ctx, tags, message):
    assert error(t.create_table, ctx, request(Tags=tags)) == message
    t.create_table(ctx, request())
    assert error(t.tag_resource, ctx, {"ResourceArn": ARN_BASE + "events", "Tags": tags}) == message


@pytest.mark.parametrize("arn, kind, message", [
    ("abcd", ValidationException, "One or more parameter values were invalid: ARNs must start with 'arn:': abcd"),
    ("arn:aws:s3:us-east-1:1:bucket/x", ValidationException,
     "One or more parameter values were invalid: Provided Arn is not a DynamoDB resource arn: "
     "arn:aws:s3:us-east-1:1:bucket/x"),
    (ARN_BASE + "events/index/by_x", ValidationException,
     "One or more parameter values were invalid: Invalid resource arn provided, only table or stream is "
     f"accepted. Provided resource arn: {ARN_BASE}events/index/by_x"),
    ("arn:aws:s3:::bucket", ValidationException,
     "One or more parameter values were invalid: Provided Arn is not a DynamoDB resource arn: arn:aws:s3:::bucket"),
    ("arn:b:c:d:e", ValidationException, "Invalid TableArn: Invalid ResourceArn provided as input arn:b:c:d:e"),
    (ARN_BASE + "ab", ValidationException, f"Invalid TableArn: Invalid ResourceArn provided as input {ARN_BASE}ab"),
    (f"arn:aws:dynamodb:eu-west-1:{DEFAULT_ACCOUNT}:table/events", ValidationException,
     f"Invalid TableArn: Invalid ResourceArn provided as input arn:aws:dynamodb:eu-west-1:{DEFAULT_ACCOUNT}:table/events"),
    (ARN_BASE + "missing", ResourceNotFoundException,
     f"Requested resource not found: ResourcArn: {ARN_BASE}missing not found"),
])
def test_tag_arn_errors(ctx, arn, kind, message):
    for op, body in ((t.list_tags_of_resource, {}), (t.tag_resource, {"Tags": [{"Key": "k", "Value": "v"}]}),
                     (t.untag_resource, {"TagKeys": ["k"]})):
        assert error(op, ctx, {"ResourceArn": arn, **body}, kind) == message


def test_tag_resource_needs_tags(ctx):
    t.create_table(ctx, request())
    assert error(t.tag_resource, ctx, {"ResourceArn": ARN_BASE + "events", "Tags": []}) == (
        "Atleast one Tag needs to be provided as Input.")
    assert error(t.untag_resource, ctx, {"ResourceArn": ARN_BASE + "events", "TagKeys": []}) == (
        "Atleast one Tag Key needs to be provided as Input.")


def test_tags_do_not_survive_recreation(ctx):
    t.create_table(ctx, request(Tags=[{"Key": "k", "Value": "v"}]))
    t.delete_table(ctx, {"TableName": "events"})
    t.create_table(ctx, request())
    assert t.list_tags_of_resource(ctx, {"ResourceArn": ARN_BASE + "events"}) == {"Tags": []}


# ---------------------------------------------------------------- endpoints and limits


def test_describe_endpoints_and_limits(ctx):
    assert t.describe_endpoints(ctx, {}) == {
        "Endpoints": [{"Address": "dynamodb.us-east-1.amazonaws.com", "CachePeriodInMinutes": 1440}]}
    assert t.describe_limits(ctx, {}) == {
        "AccountMaxReadCapacityUnits": 80000, "AccountMaxWriteCapacityUnits": 80000,
        "TableMaxReadCapacityUnits": 40000, "TableMaxWriteCapacityUnits": 40000}


def test_operations_table():
    assert set(t.OPERATIONS) == {
        "CreateTable", "DescribeTable", "ListTables", "UpdateTable", "DeleteTable", "TagResource",
        "UntagResource", "ListTagsOfResource", "DescribeEndpoints", "DescribeLimits"}


# ---------------------------------------------------------------- Catalog


def test_catalog_table_fields(ctx, engine):
    desc = t.create_table(ctx, request())["TableDescription"]
    with engine.read() as txn:
        table = ctx.catalog.get(txn, REGION, "events")
    assert table.name == "events" and table.region == REGION and table.account == DEFAULT_ACCOUNT
    assert table.table_id == desc["TableId"] and len(table.prefix) == 16
    assert (table.hash_key, table.range_key) == ("user_id", "ts")
    assert table.attribute_types == {"user_id": "S", "ts": "N"}
    assert table.key_schema == [("user_id", "HASH"), ("ts", "RANGE")]
    assert table.arn == ARN_BASE + "events"
    assert "ItemCount" not in table.description


def test_catalog_caches_parsed_table(ctx, engine):
    t.create_table(ctx, request())
    with engine.read() as txn:
        first = ctx.catalog.get(txn, REGION, "events")
        assert ctx.catalog.get(txn, REGION, "events") is first


def test_catalog_require_message(ctx, engine):
    with engine.read() as txn:
        with pytest.raises(ResourceNotFoundException) as info:
            ctx.catalog.require(txn, REGION, "nope")
    assert info.value.message == "Requested resource not found"


def test_catalog_resolves_arn_table_names(ctx, engine):
    t.create_table(ctx, request())
    with engine.read() as txn:
        assert ctx.catalog.get(txn, REGION, ARN_BASE + "events").name == "events"
        assert ctx.catalog.get(txn, "eu-west-1", ARN_BASE + "events") is None
        assert ctx.catalog.get(txn, REGION, f"arn:aws:dynamodb:{REGION}:123456789012:table/events") is None


def test_catalog_notices_changes_by_another_catalog(engine):
    """Two Catalogs on one engine stand for two worker processes' caches."""
    a, b = make_ctx(engine), make_ctx(engine)
    t.create_table(a, request())
    with engine.read() as txn:
        seen = b.catalog.get(txn, REGION, "events")
    assert seen.range_key == "ts"

    t.delete_table(a, {"TableName": "events"})
    with engine.read() as txn:
        assert b.catalog.get(txn, REGION, "events") is None

    t.create_table(a, request(AttributeDefinitions=attrs(("user_id", "S")), KeySchema=keys(("user_id", "HASH"))))
    with engine.read() as txn:
        fresh = b.catalog.get(txn, REGION, "events")
    assert fresh.range_key is None and fresh.prefix != seen.prefix

    t.update_table(a, {"TableName": "events", "DeletionProtectionEnabled": True})
    with engine.read() as txn:
        assert b.catalog.get(txn, REGION, "events").description["DeletionProtectionEnabled"] is True


def _recreate_in_child(path: str) -> None:
    child = LmdbEngine(path, sync=False)
    try:
        ctx = make_ctx(child)
        t.delete_table(ctx, {"TableName": "events"})
        t.create_table(ctx, request(AttributeDefinitions=attrs(("user_id", "S")), KeySchema=keys(("user_id", "HASH"))))
    finally:
        child.close()


def test_catalog_notices_changes_by_another_process(tmp_path):
    path = str(tmp_path / "shared")
    engine = LmdbEngine(path, sync=False)
    try:
        ctx = make_ctx(engine)
        t.create_table(ctx, request())
        with engine.read() as txn:
            before = ctx.catalog.get(txn, REGION, "events")
        proc = multiprocessing.get_context("spawn").Process(target=_recreate_in_child, args=(path,))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        with engine.read() as txn:
            after = ctx.catalog.get(txn, REGION, "events")
        assert after.range_key is None and after.table_id != before.table_id
    finally:
        engine.close()


def test_catalog_key_orders_by_region_then_name():
    assert table_key("us-east-1", "b") < table_key("us-east-1", "c") < table_key("us-east-1x", "a")


def test_create_requires_schema(ctx):
    assert error(t.create_table, ctx, {"TableName": "events", "BillingMode": "PAY_PER_REQUEST"}) == (
        "2 validation errors detected: Value null at 'attributeDefinitions' failed to satisfy constraint: "
        "Member must not be null; Value null at 'keySchema' failed to satisfy constraint: Member must not be null")


def test_create_key_schema_of_three(ctx):
    body = request(AttributeDefinitions=attrs(("a", "S"), ("b", "S"), ("c", "S")),
                   KeySchema=keys(("a", "HASH"), ("b", "RANGE"), ("c", "RANGE")))
    assert error(t.create_table, ctx, body) == (
        "1 validation error detected: Value '[KeySchemaElement(AttributeName=a, KeyType=HASH), "
        "KeySchemaElement(AttributeName=b, KeyType=RANGE), KeySchemaElement(AttributeName=c, KeyType=RANGE)]' "
        "at 'keySchema' failed to satisfy constraint: Member must have length less than or equal to 2")


def test_update_table_keeps_the_daily_budget_for_decreases(engine):
    """Four decreases at any time of a UTC day, then one an hour after the last,
    the table and each index apart; an increase is never limited."""
    day = (NOW // 86400 + 1) * 86400  # a UTC midnight
    ctx = make_ctx(engine, now=day + 60)
    provisioned_with_gsi(ctx, throughput={"ReadCapacityUnits": 100, "WriteCapacityUnits": 100})
    for n in range(4):
        update(make_ctx(engine, now=day + 120 + n), ProvisionedThroughput={"ReadCapacityUnits": 90 - n,
                                                                             "WriteCapacityUnits": 100})
    late = make_ctx(engine, now=day + 1800)
    from shoal.errors import LimitExceededException
    message = error(t.update_table, late, {"TableName": "events", "ProvisionedThroughput": {
        "ReadCapacityUnits": 50, "WriteCapacityUnits": 100}}, LimitExceededException)
    assert message.startswith("Subscriber limit exceeded: Provisioned throughput decreases are limited within a "
                              "given UTC day. After the first 4 decreases, each subsequent decrease in the same UTC "
                              "day can be performed at most once every 3600 seconds. Number of decreases today: 4.")
    # an increase is not a decrease; the index has its own budget
    update(late, ProvisionedThroughput={"ReadCapacityUnits": 200, "WriteCapacityUnits": 100})
    update(late, GlobalSecondaryIndexUpdates=[{"Update": {"IndexName": "by_x", "ProvisionedThroughput": {
        "ReadCapacityUnits": 10, "WriteCapacityUnits": 10}}}])
    # an hour after the last decrease, one more
    hour_later = make_ctx(engine, now=day + 123 + 3600)
    desc = updated(hour_later, ProvisionedThroughput={"ReadCapacityUnits": 50, "WriteCapacityUnits": 100})
    assert desc["ProvisionedThroughput"]["NumberOfDecreasesToday"] == 5


# ---------------------------------------------------------------- the status in the answers


@pytest.mark.parametrize("base, change, table_status", [
    # DynamoDB's answers as recorded (ack-api-quirks, 2026-10-08/09) and the API Reference's example.
    ("provisioned", {"ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 3}}, "UPDATING"),
    ("provisioned", {"BillingMode": "PAY_PER_REQUEST"}, "UPDATING"),
    ("on-demand", {"BillingMode": "PAY_PER_REQUEST"}, "UPDATING"),  # a resend that changes nothing (DDB-TABLE-156)
    ("on-demand", {"BillingMode": "PROVISIONED", "ProvisionedThroughput": PT}, "UPDATING"),
    ("on-demand", {"StreamSpecification": STREAM}, "UPDATING"),
    ("on-demand", {"TableClass": "STANDARD_INFREQUENT_ACCESS"}, "UPDATING"),
    ("on-demand", {"GlobalSecondaryIndexUpdates": [{"Create": gsi()}], "AttributeDefinitions": WITH_X}, "UPDATING"),
    ("on-demand", {"DeletionProtectionEnabled": True}, "ACTIVE"),  # synchronous (DDB-TABLE-017)
    ("on-demand", {"OnDemandThroughput": {"MaxReadRequestUnits": 100}}, "ACTIVE"),  # synchronous (DDB-TABLE-135)
    ("on-demand", {"WarmThroughput": {"ReadUnitsPerSecond": 13000}}, "ACTIVE"),  # its own Status (DDB-TABLE-179)
])
def test_update_answers_the_transitional_status_describe_says_active(ctx, base, change, table_status):
    if base == "provisioned":
        provisioned(ctx, 2, 2)
    else:
        t.create_table(ctx, request())
    answer = update(ctx, **change)
    assert answer["TableStatus"] == table_status
    warm = "UPDATING" if "WarmThroughput" in change else "ACTIVE"
    assert answer["WarmThroughput"]["Status"] == warm
    described = t.describe_table(ctx, {"TableName": "events"})["Table"]
    assert (described["TableStatus"], described["WarmThroughput"]["Status"]) == ("ACTIVE", "ACTIVE")


def test_update_of_a_gsi_answers_its_status(ctx):
    """A GSI's throughput update: the index UPDATING, the table ACTIVE; its
    deletion: the table UPDATING (DDB-TABLE-135/148/165)."""
    provisioned_with_gsi(ctx)
    answer = update(ctx, GlobalSecondaryIndexUpdates=[{"Update": {"IndexName": "by_x", "ProvisionedThroughput": {
        "ReadCapacityUnits": 3, "WriteCapacityUnits": 3}}}])
    assert (answer["TableStatus"], answer["GlobalSecondaryIndexes"][0]["IndexStatus"]) == ("ACTIVE", "UPDATING")
    described = t.describe_table(ctx, {"TableName": "events"})["Table"]
    assert described["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE"
    assert described["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["ReadCapacityUnits"] == 3
    answer = update(ctx, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_x"}}])
    assert (answer["TableStatus"], answer["GlobalSecondaryIndexes"][0]["IndexStatus"]) == ("UPDATING", "DELETING")


def test_create_answers_creating_with_its_gsis(ctx):
    answer = provisioned_with_gsi(ctx)["TableDescription"]
    index = answer["GlobalSecondaryIndexes"][0]
    assert (answer["TableStatus"], index["IndexStatus"], index["WarmThroughput"]["Status"]) == (
        "CREATING", "CREATING", "ACTIVE")
    described = t.describe_table(ctx, {"TableName": "events"})["Table"]
    index = described["GlobalSecondaryIndexes"][0]
    assert (described["TableStatus"], index["IndexStatus"], index["WarmThroughput"]["Status"]) == (
        "ACTIVE", "ACTIVE", "ACTIVE")
    # Data-plane operations reach it at once.
    from shoal.api import items
    items.put_item(ctx, {"TableName": "events", "Item": {"user_id": {"S": "u"}, "ts": {"N": "1"}, "x": {"S": "v"}}})
    assert t.describe_table(ctx, {"TableName": "events"})["Table"]["ItemCount"] == 1
