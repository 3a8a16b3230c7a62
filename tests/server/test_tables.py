"""The control plane through boto3: tables per region, describe, list, tags."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table, make_client, unique_name


def test_create_describe_and_waiter(ddb):
    name = unique_name("events")
    out = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7},
        Tags=[{"Key": "team", "Value": "analytics"}],
    )["TableDescription"]
    assert out["TableArn"] == f"arn:aws:dynamodb:us-east-1:000000000000:table/{name}"
    assert out["ProvisionedThroughput"]["WriteCapacityUnits"] == 7
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    ddb.put_item(TableName=name, Item={"user_id": {"S": "u1"}, "ts": {"N": "1"}, "x": {"S": "abc"}})
    described = ddb.describe_table(TableName=name)["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert described["ItemCount"] == 1 and described["TableSizeBytes"] > 0
    assert described["TableId"] == out["TableId"]
    tags = ddb.list_tags_of_resource(ResourceArn=out["TableArn"])["Tags"]
    assert tags == [{"Key": "team", "Value": "analytics"}]
    ddb.delete_table(TableName=name)
    with pytest.raises(ClientError) as info:
        ddb.describe_table(TableName=name)
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_tables_live_per_region(shoal, ddb):
    name = create_table(ddb)
    other = make_client(shoal.url, region="eu-west-1")
    assert name not in other.list_tables()["TableNames"]
    other_name = create_table(other, name=name)  # the same name in another region is another table
    assert other.describe_table(TableName=other_name)["Table"]["TableArn"].startswith("arn:aws:dynamodb:eu-west-1:")
    other.delete_table(TableName=name)
    assert ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    ddb.delete_table(TableName=name)


def test_create_existing_table(ddb, table):
    with pytest.raises(ClientError) as info:
        create_table(ddb, name=table)
    assert info.value.response["Error"]["Code"] == "ResourceInUseException"


def test_list_tables_pages(shoal):
    # A region no other test uses: the session's server keeps other tests' tables (a test that
    # left two in ap-south-1, this test's region before, made its pages hold them too).
    client = make_client(shoal.url, region="af-south-1")
    assert client.list_tables()["TableNames"] == []
    names = sorted(create_table(client, name=f"page_{i:02d}") for i in range(5))
    first = client.list_tables(Limit=2)
    assert first["TableNames"] == names[:2] and first["LastEvaluatedTableName"] == names[1]
    rest = client.list_tables(ExclusiveStartTableName=names[1])
    assert rest["TableNames"] == names[2:] and "LastEvaluatedTableName" not in rest
    for name in names:
        client.delete_table(TableName=name)


def test_invalid_key_schema(ddb):
    with pytest.raises(ClientError) as info:
        ddb.create_table(TableName="bad_schema", KeySchema=[{"AttributeName": "a", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "a", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
    assert info.value.response["Error"]["Message"] == "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"


def test_update_billing_mode(ddb, table):
    out = ddb.update_table(TableName=table, BillingMode="PROVISIONED",
                           ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 4})
    assert out["TableDescription"]["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 3


def test_describe_limits_and_endpoints(ddb):
    assert ddb.describe_limits()["TableMaxWriteCapacityUnits"] > 0
    assert ddb.describe_endpoints()["Endpoints"][0]["CachePeriodInMinutes"] == 1440


def test_delete_table_describes_less_than_describe_table(ddb):
    name = unique_name("deleted")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "x", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_x", "KeySchema": [{"AttributeName": "x", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        LocalSecondaryIndexes=[{"IndexName": "by_x_local", "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "x", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    described = ddb.describe_table(TableName=name)["Table"]
    deleted = ddb.delete_table(TableName=name)["TableDescription"]
    for member in ("CreationDateTime", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes",
                   "LocalSecondaryIndexes"):
        assert member in described and member not in deleted
    assert deleted["TableStatus"] == "DELETING"
    assert {k: deleted[k] for k in ("TableName", "TableId", "TableArn", "ItemCount", "TableSizeBytes")} == {
        k: described[k] for k in ("TableName", "TableId", "TableArn", "ItemCount", "TableSizeBytes")}
    assert deleted["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_tag_resource_and_untag_resource_answer_an_empty_body(shoal, ddb, table):
    from tests.server.test_protocol import raw_post

    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    for target, body in (("TagResource", {"ResourceArn": arn, "Tags": [{"Key": "k", "Value": "v"}]}),
                         ("UntagResource", {"ResourceArn": arn, "TagKeys": ["k"]})):
        status, headers, data = raw_post(shoal, json.dumps(body).encode(), target="DynamoDB_20120810." + target)
        assert (status, data) == (200, b"")
        assert headers["x-amz-crc32"] == "0"


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


INVALID = "One or more parameter values were invalid: "


def test_update_table_sse_specification(ddb, table):
    assert error_of(ddb.update_table, TableName=table, SSESpecification={"Enabled": False}) == (
        "ValidationException", INVALID + "Table is already encrypted by default")
    out = ddb.update_table(TableName=table, SSESpecification={"Enabled": True, "SSEType": "KMS"})
    assert out["TableDescription"]["SSEDescription"]["SSEType"] == "KMS"
    assert ddb.describe_table(TableName=table)["Table"]["SSEDescription"]["KMSMasterKeyArn"].endswith(
        ":alias/aws/dynamodb")
    assert error_of(ddb.update_table, TableName=table, SSESpecification={"Enabled": True},
                    DeletionProtectionEnabled=True) == (
        "ValidationException", INVALID + "Server-Side Encryption modification must be the only operation in the request")
    out = ddb.update_table(TableName=table, SSESpecification={"Enabled": False})
    assert out["TableDescription"].get("SSEDescription", {}).get("SSEType") != "KMS"


def test_update_table_forbidden_pairs_and_missing_index(ddb, table):
    pt = {"ReadCapacityUnits": 2, "WriteCapacityUnits": 2}
    assert error_of(ddb.update_table, TableName=table, ProvisionedThroughput=pt,
                    StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}) == (
        "ValidationException", INVALID + "You cannot modify stream status while updating table IOPS")
    assert error_of(ddb.update_table, TableName=table, BillingMode="PAY_PER_REQUEST", ProvisionedThroughput=pt) == (
        "ValidationException", INVALID + "ProvisionedThroughput cannot be specified when BillingMode is PAY_PER_REQUEST")
    assert error_of(ddb.update_table, TableName=table, GlobalSecondaryIndexUpdates=[
        {"Update": {"IndexName": "nope", "ProvisionedThroughput": pt}}]) == (
        "ResourceNotFoundException", f"Requested resource not found: Index nope for table {table}")


def test_invalid_table_class_and_non_dynamodb_arn(ddb, table):
    message = ("Invalid table-class parameter provided. Please try again with a valid table-class value: "
               "[STANDARD, STANDARD_INFREQUENT_ACCESS].")
    assert error_of(ddb.update_table, TableName=table, TableClass="FOO") == ("ValidationException", message)
    assert error_of(ddb.create_table, TableName=unique_name("classy"), TableClass="FOO", BillingMode="A",
                    KeySchema=[{"AttributeName": "a", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "a", "AttributeType": "S"}]) == (
        "ValidationException", "1 validation error detected: Value 'A' at 'billingMode' failed to satisfy "
        "constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]")
    assert error_of(ddb.list_tags_of_resource, ResourceArn="arn:aws:s3:::bucket") == (
        "ValidationException", INVALID + "Provided Arn is not a DynamoDB resource arn: arn:aws:s3:::bucket")


def test_billing_summary_and_capacity_limit(ddb):
    name = unique_name("billing")
    schema = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
              "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
    assert error_of(ddb.create_table, TableName=name, BillingMode="PROVISIONED",
                    ProvisionedThroughput={"ReadCapacityUnits": 40001, "WriteCapacityUnits": 1}, **schema) == (
        "LimitExceededException", "The requested ReadCapacityUnits, 40001, is above the per table maximum for the "
        "account in us-east-1. Per table maximum: 40000. Refer to the Amazon DynamoDB Developer Guide for current "
        "limits and how to request higher limits.")
    out = ddb.create_table(TableName=name, BillingMode="PROVISIONED",
                           ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}, **schema)
    assert "BillingModeSummary" not in out["TableDescription"]
    assert "BillingModeSummary" not in ddb.describe_table(TableName=name)["Table"]
    out = ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
    assert out["TableDescription"]["BillingModeSummary"] == {"BillingMode": "PAY_PER_REQUEST"}
    summary = ddb.describe_table(TableName=name)["Table"]["BillingModeSummary"]
    assert summary["BillingMode"] == "PAY_PER_REQUEST" and "LastUpdateToPayPerRequestDateTime" in summary
    ddb.delete_table(TableName=name)


def _old_keys(data_dir: str, prefix: bytes) -> int:
    """Keys holding a table's prefix in the server's data directory, read in
    this process (LMDB lets several processes read while one writes).  The
    change log and the stream history are kept on purpose."""
    import os

    import lmdb

    from shoal.storage.engine import SPACES

    kept = b"streams/table/" + prefix
    env = lmdb.open(os.path.join(data_dir, "lmdb"), readonly=True, max_dbs=len(SPACES) + 1, subdir=True)
    try:
        count = 0
        with env.begin() as txn:
            for space in SPACES:
                if space == "changes":
                    continue
                db = env.open_db(space.encode(), txn=txn, create=False)
                count += sum(1 for key in txn.cursor(db).iternext(values=False)
                             if prefix in key and key != kept)
        return count
    finally:
        env.close()


def test_delete_table_answers_at_once_and_the_storage_follows(shoal, ddb):
    import time
    import uuid

    name = unique_name("purged")
    spec = dict(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    old_id = ddb.create_table(**spec)["TableDescription"]["TableId"]
    for start in range(0, 3000, 25):
        ddb.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": f"u{i % 50}"}, "sk": {"N": str(i)}, "g": {"S": f"g{i % 5}"}}}}
            for i in range(start, start + 25)]})
    prefix = uuid.UUID(old_id).bytes
    assert _old_keys(shoal.data_dir, prefix) >= 6000

    deleted = ddb.delete_table(TableName=name)["TableDescription"]
    assert deleted["TableStatus"] == "DELETING" and deleted["ItemCount"] == 3000
    assert error_of(ddb.describe_table, TableName=name)[0] == "ResourceNotFoundException"
    assert ddb.create_table(**spec)["TableDescription"]["TableId"] != old_id
    key = {"pk": {"S": "u7"}, "sk": {"N": "7"}}
    assert "Item" not in ddb.get_item(TableName=name, Key=key)  # the old item is not the new table's
    ddb.put_item(TableName=name, Item={**key, "g": {"S": "new"}})
    assert ddb.get_item(TableName=name, Key=key)["Item"]["g"] == {"S": "new"}

    deadline = time.monotonic() + 60
    while _old_keys(shoal.data_dir, prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _old_keys(shoal.data_dir, prefix) == 0
    assert ddb.get_item(TableName=name, Key=key)["Item"]["g"] == {"S": "new"}
    assert ddb.scan(TableName=name, Select="COUNT")["Count"] == 1
    assert ddb.query(TableName=name, IndexName="by_g", KeyConditionExpression="g = :g",
                     ExpressionAttributeValues={":g": {"S": "new"}})["Count"] == 1
    ddb.delete_table(TableName=name)
