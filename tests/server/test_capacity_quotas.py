"""The account quotas DescribeLimits reports (AccountMax*CapacityUnits),
enforced by CreateTable and UpdateTable (shoal.api.tables): provisioned units
of tables and GSIs that would bring the account's sum over the maximum are
refused with DynamoDB's LimitExceededException, and the server goes on
serving (the per-table maximum: tests/server/test_tables.py).  A server of
its own: the account's sum is every table of the region."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_client, unique_name
from tests.shoal_process import ShoalProcess

SCHEMA = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
          "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
GSI_SCHEMA = {"KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}], "Projection": {"ProjectionType": "KEYS_ONLY"}}


@pytest.fixture()
def ddb(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("quotas"), "--workers", "1").start()
    yield make_client(proc.url)
    proc.stop()


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def provisioned(ddb, rcu: int, wcu: int, gsi: tuple[int, int] | None = None) -> str:
    name = unique_name("quota")
    extra = {}
    if gsi is not None:
        extra = {"GlobalSecondaryIndexes": [{"IndexName": "by_g", **GSI_SCHEMA, "ProvisionedThroughput": {
            "ReadCapacityUnits": gsi[0], "WriteCapacityUnits": gsi[1]}}]}
        extra_defs = [*SCHEMA["AttributeDefinitions"], {"AttributeName": "g", "AttributeType": "S"}]
        ddb.create_table(TableName=name, KeySchema=SCHEMA["KeySchema"], AttributeDefinitions=extra_defs,
                         ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu}, **extra)
        return name
    ddb.create_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu},
                     **SCHEMA)
    return name


def account_message(member: str, reserved: int, requested: int) -> str:
    return (f"This request would have caused the {member} limit to be exceeded for the account in us-east-1. "
            f"Current {member} reserved by the account: {reserved}. Limit: 80000. Requested: {requested}")


def test_the_account_maximum_counts_every_provisioned_table_and_gsi(ddb):
    assert ddb.describe_limits()["AccountMaxReadCapacityUnits"] == 80000
    first = provisioned(ddb, 30000, 10)
    second = provisioned(ddb, 30000, 10, gsi=(15000, 10))  # 45,000 reads with its index: 75,000 in all
    on_demand = unique_name("quota")
    ddb.create_table(TableName=on_demand, BillingMode="PAY_PER_REQUEST", **SCHEMA)  # reserves nothing
    name = unique_name("quota")
    assert error_of(ddb.create_table, TableName=name, ProvisionedThroughput={
        "ReadCapacityUnits": 5001, "WriteCapacityUnits": 1}, **SCHEMA) == (
        "LimitExceededException", account_message("ReadCapacityUnits", 75000, 5001))
    with pytest.raises(ClientError):
        ddb.describe_table(TableName=name)  # not created
    last = provisioned(ddb, 5000, 1)  # exactly 80,000
    # an increase of a table or of a GSI is refused; the message counts the table's present units
    assert error_of(ddb.update_table, TableName=first, ProvisionedThroughput={
        "ReadCapacityUnits": 30001, "WriteCapacityUnits": 10}) == (
        "LimitExceededException", account_message("ReadCapacityUnits", 80000, 30001))
    assert error_of(ddb.update_table, TableName=second, GlobalSecondaryIndexUpdates=[{"Update": {
        "IndexName": "by_g", "ProvisionedThroughput": {"ReadCapacityUnits": 15001, "WriteCapacityUnits": 10}}}]) == (
        "LimitExceededException", account_message("ReadCapacityUnits", 80000, 45001))
    assert ddb.describe_table(TableName=first)["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 30000
    # an on-demand table switching to provisioned reserves what it asks for
    assert error_of(ddb.update_table, TableName=on_demand, BillingMode="PROVISIONED", ProvisionedThroughput={
        "ReadCapacityUnits": 1, "WriteCapacityUnits": 1}) == (
        "LimitExceededException", account_message("ReadCapacityUnits", 80000, 1))
    # writes have their own sum; a decrease frees units for another table
    ddb.update_table(TableName=first, ProvisionedThroughput={"ReadCapacityUnits": 29000, "WriteCapacityUnits": 10})
    ddb.update_table(TableName=last, ProvisionedThroughput={"ReadCapacityUnits": 6000, "WriteCapacityUnits": 1})
    # a deleted table frees its units, and the switch to on-demand too
    ddb.delete_table(TableName=first)
    ddb.update_table(TableName=second, BillingMode="PAY_PER_REQUEST")
    assert ddb.describe_table(TableName=provisioned(ddb, 40000, 40000))["Table"]["TableStatus"] == "ACTIVE"


def test_the_account_maximum_for_writes_and_a_new_gsi(ddb):
    big = provisioned(ddb, 1, 40000)
    table = provisioned(ddb, 1, 39000)
    ddb.update_table(TableName=table, AttributeDefinitions=[{"AttributeName": "g", "AttributeType": "S"}],
                     GlobalSecondaryIndexUpdates=[{"Create": {"IndexName": "by_g", **GSI_SCHEMA, "ProvisionedThroughput": {
                         "ReadCapacityUnits": 1, "WriteCapacityUnits": 1000}}}])
    assert error_of(ddb.update_table, TableName=big, ProvisionedThroughput={
        "ReadCapacityUnits": 1, "WriteCapacityUnits": 40000}) == ("ValidationException",
        "The provisioned throughput for the table will not change. The requested value equals the current value. "
        "Current ReadCapacityUnits provisioned for the table: 1. Requested ReadCapacityUnits: 1. Current "
        "WriteCapacityUnits provisioned for the table: 40000. Requested WriteCapacityUnits: 40000. Refer to the "
        "Amazon DynamoDB Developer Guide for current limits and how to request higher limits.")
    other = unique_name("quota")
    assert error_of(ddb.create_table, TableName=other, ProvisionedThroughput={
        "ReadCapacityUnits": 1, "WriteCapacityUnits": 1}, **SCHEMA) == (
        "LimitExceededException", account_message("WriteCapacityUnits", 80000, 1))
    ddb.list_tables()  # still serving


def on_demand_message(member: str, where: str) -> str:
    quota = "TableMaxReadCapacityUnits" if member == "MaxReadRequestUnits" else "TableMaxWriteCapacityUnits"
    return (f"Subscriber limit exceeded: Requested {member} for OnDemandThroughput for {where} exceeds {quota} of "
            "the account in region us-east-1")


def test_an_on_demand_maximum_above_the_table_quota_is_refused(ddb):
    """The Developer Guide bounds an on-demand table by the 40,000-unit table quota; DynamoDB refuses a
    maximum above it, for a table or a GSI, on CreateTable and UpdateTable (its recorded words)."""
    assert ddb.describe_limits()["TableMaxWriteCapacityUnits"] == 40000
    name = unique_name("quota")
    defs = [*SCHEMA["AttributeDefinitions"], {"AttributeName": "g", "AttributeType": "S"}]
    assert error_of(ddb.create_table, TableName=name, BillingMode="PAY_PER_REQUEST",
                    OnDemandThroughput={"MaxReadRequestUnits": 40001}, **SCHEMA) == (
        "LimitExceededException", on_demand_message("MaxReadRequestUnits", "table"))
    assert error_of(ddb.create_table, TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=SCHEMA["KeySchema"],
                    AttributeDefinitions=defs, GlobalSecondaryIndexes=[{
                        "IndexName": "by_g", **GSI_SCHEMA, "OnDemandThroughput": {"MaxWriteRequestUnits": 40001}}]) == (
        "LimitExceededException", on_demand_message("MaxWriteRequestUnits", "index : by_g"))
    with pytest.raises(ClientError):
        ddb.describe_table(TableName=name)  # neither was created
    # the quota itself is accepted, as is a GSI's
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=SCHEMA["KeySchema"],
                     AttributeDefinitions=defs, OnDemandThroughput={"MaxReadRequestUnits": 40000,
                                                                    "MaxWriteRequestUnits": 40000},
                     GlobalSecondaryIndexes=[{"IndexName": "by_g", **GSI_SCHEMA,
                                              "OnDemandThroughput": {"MaxReadRequestUnits": 40000}}])
    assert error_of(ddb.update_table, TableName=name, OnDemandThroughput={"MaxWriteRequestUnits": 50000}) == (
        "LimitExceededException", on_demand_message("MaxWriteRequestUnits", "table"))
    assert error_of(ddb.update_table, TableName=name, GlobalSecondaryIndexUpdates=[{"Update": {
        "IndexName": "by_g", "OnDemandThroughput": {"MaxReadRequestUnits": 40001}}}]) == (
        "LimitExceededException", on_demand_message("MaxReadRequestUnits", "index : by_g"))
    # a GSI's maximum out of range names the index, as DynamoDB's message does
    assert error_of(ddb.update_table, TableName=name, GlobalSecondaryIndexUpdates=[{"Update": {
        "IndexName": "by_g", "OnDemandThroughput": {"MaxReadRequestUnits": 0}}}]) == (
        "ValidationException", "One or more parameter values were invalid: Requested MaxReadRequestUnits for "
                               "OnDemandThroughput for index : by_g is outside of valid range")
    described = ddb.describe_table(TableName=name)["Table"]
    assert described["OnDemandThroughput"] == {"MaxReadRequestUnits": 40000, "MaxWriteRequestUnits": 40000}
    assert described["GlobalSecondaryIndexes"][0]["OnDemandThroughput"]["MaxReadRequestUnits"] == 40000
    ddb.update_table(TableName=name, OnDemandThroughput={"MaxWriteRequestUnits": -1})  # removing one still works
    assert ddb.describe_table(TableName=name)["Table"]["OnDemandThroughput"]["MaxWriteRequestUnits"] == -1


# ---------------------------------------------------------------- the per-table quota of on-demand tables

QUOTA = {"SHOAL_TABLE_QUOTA_RCU": "1", "SHOAL_TABLE_QUOTA_WCU": "2"}


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("table-quota"), "--workers", "1", env=QUOTA).start()
    yield make_client(proc.url)
    proc.stop()


def _until_refused(call, tries: int = 200):
    """(how many calls were served, the refusal's response)."""
    for n in range(tries):
        try:
            call(n)
        except ClientError as exc:
            return n, exc.response
    return tries, None


ACCOUNT_LIMIT = ("Throughput exceeds the current throughput limit for your account. To request a limit increase, "
                 "contact AWS Support at https://aws.amazon.com/support.")


def test_an_on_demand_table_without_a_maximum_is_held_to_the_table_quota(lowered):
    name = unique_name("quota")
    lowered.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **{
        "KeySchema": SCHEMA["KeySchema"],
        "AttributeDefinitions": [*SCHEMA["AttributeDefinitions"], {"AttributeName": "g", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_g", **GSI_SCHEMA}]})
    arn = lowered.describe_table(TableName=name)["Table"]["TableArn"]
    served, answer = _until_refused(lambda n: lowered.put_item(TableName=name, Item={"pk": {"S": str(n)}}))
    assert 2 <= served < 200 and answer is not None  # one second of the 2 units banked, then 2 a second
    assert answer["Error"] == {"Code": "RequestLimitExceeded", "Message": ACCOUNT_LIMIT}
    assert answer["ThrottlingReasons"] == [{"reason": "TableWriteAccountLimitExceeded", "resource": arn}]
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    served, answer = _until_refused(lambda n: lowered.query(
        TableName=name, IndexName="by_g", KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "x"}}))
    assert 2 <= served < 200 and answer is not None  # half a unit each: 2 banked, then 2 a second
    assert answer["Error"]["Code"] == "RequestLimitExceeded"
    assert answer["ThrottlingReasons"] == [{"reason": "IndexReadAccountLimitExceeded",
                                            "resource": f"{arn}/index/by_g"}]
    # a maximum below the quota is the table's own: its reason, not the account's
    capped = unique_name("quota")
    lowered.create_table(TableName=capped, BillingMode="PAY_PER_REQUEST", OnDemandThroughput={
        "MaxWriteRequestUnits": 1}, **SCHEMA)
    served, answer = _until_refused(lambda n: lowered.put_item(TableName=capped, Item={"pk": {"S": str(n)}}))
    assert answer["Error"]["Code"] == "ThrottlingException"
    assert answer["throttlingReasons"][0]["reason"] == "TableWriteMaxOnDemandThroughputExceeded"
    assert lowered.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
