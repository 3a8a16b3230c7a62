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


def _error(info) -> dict:
    return info.value.response["Error"]


DECREASE = ("One or more parameter values were invalid: Requested {member} for WarmThroughput for {where} is lower "
            "than current WarmThroughput, decreasing WarmThroughput is not supported")


def test_a_decrease_of_the_warm_throughput_is_refused_and_the_same_value_accepted(ddb):
    name = _create(ddb, BillingMode="PAY_PER_REQUEST", GlobalSecondaryIndexes=_gsi(),
                   WarmThroughput={"ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 5000})
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 19999})
    assert _error(info) == {"Code": "ValidationException",
                            "Message": DECREASE.format(member="ReadUnitsPerSecond", where="table")}
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 4999})
    assert _error(info)["Message"] == DECREASE.format(member="WriteUnitsPerSecond", where="table")
    # the on-demand defaults are a GSI's current warm throughput: lower is a decrease too
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, GlobalSecondaryIndexUpdates=[
            {"Update": {"IndexName": "by_g", "WarmThroughput": {"ReadUnitsPerSecond": 100}}}])
    assert _error(info) == {"Code": "ValidationException",
                            "Message": DECREASE.format(member="ReadUnitsPerSecond", where="index by_g")}
    ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 5000})
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["WarmThroughput"] == {"ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 5000, "Status": "ACTIVE"}
    assert table["GlobalSecondaryIndexes"][0]["WarmThroughput"] == ON_DEMAND


def test_a_provisioned_tables_warm_throughput_cannot_go_below_what_its_capacity_raised_it_to(ddb):
    name = _create(ddb, ProvisionedThroughput={"ReadCapacityUnits": 30, "WriteCapacityUnits": 10})
    ddb.update_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 29, "WriteUnitsPerSecond": 50})
    assert _error(info)["Message"] == DECREASE.format(member="ReadUnitsPerSecond", where="table")
    ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 31})
    assert ddb.describe_table(TableName=name)["Table"]["WarmThroughput"] == {
        "ReadUnitsPerSecond": 31, "WriteUnitsPerSecond": 10, "Status": "ACTIVE"}


def test_a_warm_throughput_above_the_table_quota_is_a_limit_exceeded(ddb):
    name = _create(ddb, BillingMode="PAY_PER_REQUEST", GlobalSecondaryIndexes=_gsi())
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 40001})
    assert _error(info) == {"Code": "LimitExceededException",
                            "Message": "Subscriber limit exceeded: Requested ReadUnitsPerSecond for WarmThroughput "
                                       "for table exceeds TableMaxReadCapacityUnits of the account in region "
                                       "us-east-1"}
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, GlobalSecondaryIndexUpdates=[
            {"Update": {"IndexName": "by_g", "WarmThroughput": {"WriteUnitsPerSecond": 40001}}}])
    assert _error(info) == {"Code": "LimitExceededException",
                            "Message": "Subscriber limit exceeded: Requested WriteUnitsPerSecond for WarmThroughput "
                                       "for index by_g exceeds TableMaxWriteCapacityUnits of the account in region "
                                       "us-east-1"}
    # a decrease is a validation error, found before the quota
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 50000, "WriteUnitsPerSecond": 1})
    assert _error(info)["Code"] == "ValidationException"
    with pytest.raises(ClientError) as info:
        _create(ddb, BillingMode="PAY_PER_REQUEST", WarmThroughput={"WriteUnitsPerSecond": 40001})
    assert _error(info)["Message"] == ("Subscriber limit exceeded: Requested WriteUnitsPerSecond for WarmThroughput "
                                       "for table exceeds TableMaxWriteCapacityUnits of the account in region "
                                       "us-east-1")
    ddb.update_table(TableName=name, WarmThroughput={"ReadUnitsPerSecond": 40000, "WriteUnitsPerSecond": 40000})
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["WarmThroughput"] == {"ReadUnitsPerSecond": 40000, "WriteUnitsPerSecond": 40000, "Status": "ACTIVE"}
    assert table["GlobalSecondaryIndexes"][0]["WarmThroughput"] == ON_DEMAND


def test_create_table_refuses_a_warm_throughput_below_the_initial_one(ddb):
    with pytest.raises(ClientError) as info:
        _create(ddb, BillingMode="PAY_PER_REQUEST", WarmThroughput={"ReadUnitsPerSecond": 1, "WriteUnitsPerSecond": 1})
    assert _error(info) == {
        "Code": "ValidationException",
        "Message": "One or more parameter values were invalid: Requested ReadUnitsPerSecond for WarmThroughput for "
                   "table is lower than initial throughput for OnDemand. See: https://docs.aws.amazon.com/"
                   "amazondynamodb/latest/developerguide/on-demand-capacity-mode.html#on-demand-capacity-mode-initial"}
    with pytest.raises(ClientError) as info:
        _create(ddb, ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 10},
                WarmThroughput={"ReadUnitsPerSecond": 10, "WriteUnitsPerSecond": 5})
    assert _error(info)["Message"] == ("One or more parameter values were invalid: Requested WriteUnitsPerSecond for "
                                       "WarmThroughput for table is lower than WriteCapacityUnits of "
                                       "ProvisionedThroughput")
    with pytest.raises(ClientError) as info:
        _create(ddb, BillingMode="PAY_PER_REQUEST",
                GlobalSecondaryIndexes=_gsi(WarmThroughput={"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 3}))
    assert _error(info)["Message"] == ("One or more parameter values were invalid: Requested WriteUnitsPerSecond for "
                                       "WarmThroughput for index by_g is lower than initial throughput for OnDemand. "
                                       "See: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
                                       "on-demand-capacity-mode.html#on-demand-capacity-mode-initial")
    name = _create(ddb, BillingMode="PAY_PER_REQUEST",
                   GlobalSecondaryIndexes=_gsi(WarmThroughput={"ReadUnitsPerSecond": 15000}))
    assert ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"][0]["WarmThroughput"] == {
        "ReadUnitsPerSecond": 15000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}


def test_an_empty_warm_throughput_for_an_index_is_refused(ddb):
    name = _create(ddb, BillingMode="PAY_PER_REQUEST", GlobalSecondaryIndexes=_gsi())
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, GlobalSecondaryIndexUpdates=[
            {"Update": {"IndexName": "by_g", "WarmThroughput": {}}}])
    assert _error(info) == {"Code": "ValidationException",
                            "Message": "One or more parameter values were invalid: WarmThroughput must have at least "
                                       "one of ReadUnitsPerSecond or WriteUnitsPerSecond specified for index: by_g"}
    assert ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
