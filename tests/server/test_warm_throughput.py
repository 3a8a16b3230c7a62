"""DescribeTable's WarmThroughput through boto3 (shoal.api.tables.warm_throughput):
on every table and GSI, DynamoDB's defaults, raised by UpdateTable and never
lowered, and a malformed update refused with the server still serving."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique_name

ON_DEMAND = {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}


def _create(ddb, **extra) -> str:
    name = unique_name("warm")
    definitions = [{"AttributeName": "pk", "AttributeType": "S"}]
    if "GlobalSecondaryIndexes" in extra:
        definitions.append({"AttributeName": "g", "AttributeType": "S"})
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=definitions, **extra)
    return name


def _gsi(**extra):
    return [{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}, **extra}]


def test_on_demand_tables_and_their_gsis_report_the_on_demand_defaults(ddb):
    name = _create(ddb, BillingMode="PAY_PER_REQUEST", GlobalSecondaryIndexes=_gsi())
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["WarmThroughput"] == ON_DEMAND
    assert table["GlobalSecondaryIndexes"][0]["WarmThroughput"] == ON_DEMAND


def test_provisioned_tables_echo_their_capacity_and_keep_a_raised_one(ddb):
    name = _create(ddb, ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                   GlobalSecondaryIndexes=_gsi(ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 2}))
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["WarmThroughput"] == {"ReadUnitsPerSecond": 5, "WriteUnitsPerSecond": 5, "Status": "ACTIVE"}
    assert table["GlobalSecondaryIndexes"][0]["WarmThroughput"] == {
        "ReadUnitsPerSecond": 3, "WriteUnitsPerSecond": 2, "Status": "ACTIVE"}
    ddb.update_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 50, "WriteCapacityUnits": 20})
    ddb.update_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 10})
    assert ddb.describe_table(TableName=name)["Table"]["WarmThroughput"] == {
        "ReadUnitsPerSecond": 50, "WriteUnitsPerSecond": 20, "Status": "ACTIVE"}


def test_a_pre_warmed_table_reports_what_it_was_given(ddb):
    name = _create(ddb, BillingMode="PAY_PER_REQUEST",
                   WarmThroughput={"ReadUnitsPerSecond": 30000, "WriteUnitsPerSecond": 10000})
    ddb.update_table(TableName=name, WarmThroughput={"WriteUnitsPerSecond": 12000})
    assert ddb.describe_table(TableName=name)["Table"]["WarmThroughput"] == {
        "ReadUnitsPerSecond": 30000, "WriteUnitsPerSecond": 12000, "Status": "ACTIVE"}


def test_a_warm_throughput_beside_another_change_is_refused_and_the_server_serves_on(ddb):
    name = _create(ddb, BillingMode="PAY_PER_REQUEST")
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 20000},
                         BillingMode="PAY_PER_REQUEST")
    assert info.value.response["Error"] == {"Code": "ValidationException",
                                            "Message": "One or more parameter values were invalid: "
                                                       "WarmThroughput must be the only operation in the request"}
    assert ddb.describe_table(TableName=name)["Table"]["WarmThroughput"] == ON_DEMAND
