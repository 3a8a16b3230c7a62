"""DescribeTable's WarmThroughput (shoal.api.tables.warm_throughput): on every
table and GSI, as DynamoDB reports it since November 2024."""

from __future__ import annotations

import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import tables as t
from shoal.api.catalog import Catalog

NOW = 1_700_000_000.0


@pytest.fixture
def ctx(engine):
    return Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: NOW)


def _gsi(**extra):
    return {"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"}, **extra}


def _table(ctx, name, **extra):
    body = {"TableName": name, "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], **extra}
    if "GlobalSecondaryIndexes" in extra or "LocalSecondaryIndexes" in extra:
        body["AttributeDefinitions"].append({"AttributeName": "g", "AttributeType": "S"})
    return t.create_table(ctx, body)["TableDescription"]


def _described(ctx, name):
    return t.describe_table(ctx, {"TableName": name})["Table"]


def test_a_new_on_demand_table_and_its_gsi_report_12000_reads_and_4000_writes(ctx):
    created = _table(ctx, "odt", BillingMode="PAY_PER_REQUEST", GlobalSecondaryIndexes=[_gsi()])
    warm = {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}
    assert "WarmThroughput" not in created  # DescribeTable adds it (DDB-TABLE-033)
    desc = _described(ctx, "odt")
    assert desc["WarmThroughput"] == warm
    assert desc["GlobalSecondaryIndexes"][0]["WarmThroughput"] == warm
    assert list(desc)[-1] == "WarmThroughput"


def test_a_provisioned_table_and_its_gsi_echo_their_capacity(ctx):
    pt = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 6}
    _table(ctx, "prt", ProvisionedThroughput=pt,
           GlobalSecondaryIndexes=[_gsi(ProvisionedThroughput={"ReadCapacityUnits": 7, "WriteCapacityUnits": 3})])
    desc = _described(ctx, "prt")
    assert desc["WarmThroughput"] == {"ReadUnitsPerSecond": 5, "WriteUnitsPerSecond": 6, "Status": "ACTIVE"}
    assert desc["GlobalSecondaryIndexes"][0]["WarmThroughput"] == {
        "ReadUnitsPerSecond": 7, "WriteUnitsPerSecond": 3, "Status": "ACTIVE"}


def test_a_local_index_has_no_warm_throughput(ctx):
    _table(ctx, "lsi", BillingMode="PAY_PER_REQUEST",
           KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}, {"AttributeName": "g", "KeyType": "RANGE"}],
           LocalSecondaryIndexes=[{"IndexName": "by_k", "KeySchema": [
               {"AttributeName": "k", "KeyType": "HASH"}, {"AttributeName": "g", "KeyType": "RANGE"}],
               "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    assert "WarmThroughput" not in _described(ctx, "lsi")["LocalSecondaryIndexes"][0]


def test_a_warm_throughput_set_above_the_default_is_reported(ctx):
    created = _table(ctx, "pre", BillingMode="PAY_PER_REQUEST",
                     WarmThroughput={"ReadUnitsPerSecond": 30000, "WriteUnitsPerSecond": 10000})
    assert created["WarmThroughput"] == {"ReadUnitsPerSecond": 30000, "WriteUnitsPerSecond": 10000,
                                         "Status": "ACTIVE"}
    t.update_table(ctx, {"TableName": "pre", "WarmThroughput": {"WriteUnitsPerSecond": 15000}})
    assert _described(ctx, "pre")["WarmThroughput"] == {"ReadUnitsPerSecond": 30000, "WriteUnitsPerSecond": 15000,
                                                        "Status": "ACTIVE"}


def test_raising_provisioned_capacity_raises_it_and_a_decrease_leaves_it(ctx):
    _table(ctx, "upt", ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    t.update_table(ctx, {"TableName": "upt", "ProvisionedThroughput": {"ReadCapacityUnits": 50,
                                                                       "WriteCapacityUnits": 40}})
    assert _described(ctx, "upt")["WarmThroughput"] == {"ReadUnitsPerSecond": 50, "WriteUnitsPerSecond": 40,
                                                       "Status": "ACTIVE"}
    t.update_table(ctx, {"TableName": "upt", "ProvisionedThroughput": {"ReadCapacityUnits": 10,
                                                                       "WriteCapacityUnits": 10}})
    desc = _described(ctx, "upt")
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 10
    assert desc["WarmThroughput"] == {"ReadUnitsPerSecond": 50, "WriteUnitsPerSecond": 40, "Status": "ACTIVE"}


def test_a_switch_to_on_demand_reports_at_least_the_on_demand_default(ctx):
    _table(ctx, "swt", ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
           GlobalSecondaryIndexes=[_gsi(ProvisionedThroughput={"ReadCapacityUnits": 20000,
                                                               "WriteCapacityUnits": 1})])
    t.update_table(ctx, {"TableName": "swt", "BillingMode": "PAY_PER_REQUEST"})
    desc = _described(ctx, "swt")
    assert desc["WarmThroughput"] == {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000,
                                      "Status": "ACTIVE"}
    # The index had reached 20,000 reads a second: it keeps them.
    assert desc["GlobalSecondaryIndexes"][0]["WarmThroughput"] == {
        "ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}


def test_a_gsi_warm_throughput_update_is_applied(ctx):
    _table(ctx, "gwt", BillingMode="PAY_PER_REQUEST", GlobalSecondaryIndexes=[_gsi()])
    t.update_table(ctx, {"TableName": "gwt", "GlobalSecondaryIndexUpdates": [
        {"Update": {"IndexName": "by_g", "WarmThroughput": {"ReadUnitsPerSecond": 24000}}}]})
    assert _described(ctx, "gwt")["GlobalSecondaryIndexes"][0]["WarmThroughput"] == {
        "ReadUnitsPerSecond": 24000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}
