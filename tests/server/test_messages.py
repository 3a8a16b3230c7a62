"""DynamoDB's wording where sources disagree (issue 21, points 5 and 6).

Each message is the one the most recent recorded DynamoDB response shows;
docs/status.md ("Messages where sources disagree") names the source and its
date.  Requests go through boto3 with client-side validation off, or as raw
HTTP where botocore cannot build the request at all (no RequestItems).
"""

from __future__ import annotations

import http.client
import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import unique_name

ENVELOPE = "1 validation error detected: "
AT_LEAST_ONE = "failed to satisfy constraint: Member must have value greater than or equal to 1"


@pytest.fixture(scope="module")
def loose(shoal):
    """A client that sends what it is given (botocore's own checks off)."""
    return boto3.client(
        "dynamodb", endpoint_url=shoal.url, region_name="us-east-1",
        aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
        config=Config(parameter_validation=False, retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def indexed(loose):
    """A table keyed (pk, sk) with a GSI keyed (g, gs) and a hash-only GSI on h."""
    name = unique_name("msg")
    loose.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "g", "gs", "h")],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "gs", "KeyType": "RANGE"}]},
            {"IndexName": "by_h", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"}]},
        ])
    yield name
    loose.delete_table(TableName=name)


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    err = info.value.response["Error"]
    return err["Code"], err["Message"]


def raw_call(shoal, operation: str, body: dict):
    conn = http.client.HTTPConnection("127.0.0.1", shoal.port, timeout=10)
    conn.request("POST", "/", body=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{operation}"})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data["__type"].rsplit("#", 1)[-1], data["message"]


def still_serving(loose, table):
    assert loose.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"


# ------------------------------------------------------------ required parameters


def test_create_table_without_table_name(loose, indexed):
    assert error_of(
        loose.create_table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    ) == ("ValidationException", "The parameter 'TableName' is required but was not present in the request")
    still_serving(loose, indexed)


def test_describe_table_without_table_name_keeps_the_constraint_form(shoal):
    assert raw_call(shoal, "DescribeTable", {}) == (
        400, "ValidationException",
        ENVELOPE + "Value null at 'tableName' failed to satisfy constraint: Member must not be null")


def test_batch_write_item_without_requests(shoal, loose, indexed):
    sentence = "The requestItems parameter is required for BatchWriteItem"
    assert error_of(loose.batch_write_item, RequestItems={}) == ("ValidationException", sentence)
    assert raw_call(shoal, "BatchWriteItem", {}) == (400, "ValidationException", sentence)
    still_serving(loose, indexed)


def test_batch_get_item_with_no_tables(shoal, loose, indexed):
    assert error_of(loose.batch_get_item, RequestItems={}) == (
        "ValidationException",
        ENVELOPE + "Value at 'RequestItems' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1")
    assert raw_call(shoal, "BatchGetItem", {}) == (
        400, "ValidationException",
        ENVELOPE + "Value null at 'requestItems' failed to satisfy constraint: Member must not be null")
    still_serving(loose, indexed)


def test_batch_get_item_keys_lengths_and_table_names(loose, indexed):
    assert error_of(loose.batch_get_item, RequestItems={indexed: {"Keys": []}}) == (
        "ValidationException",
        ENVELOPE + f"Value at 'RequestItems.{indexed}.member.Keys' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1")
    keys = [{"pk": {"S": f"p{n}"}, "sk": {"S": "s"}} for n in range(101)]
    assert error_of(loose.batch_get_item, RequestItems={indexed: {"Keys": keys}}) == (
        "ValidationException",
        ENVELOPE + f"Value at 'RequestItems.{indexed}.member.Keys' failed to satisfy constraint: "
        "Member must have length less than or equal to 100")
    assert error_of(loose.batch_get_item, RequestItems={"bad!name": {"Keys": [{"pk": {"S": "a"}}]}}) == (
        "ValidationException",
        ENVELOPE + """Value '{"bad!name":{"Keys":[{"pk":{"S":"a"}}]}}' at 'requestItems' failed to satisfy """
        "constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 255, "
        "Member must have length greater than or equal to 3, "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+]")
    still_serving(loose, indexed)


# ------------------------------------------------------------ Limit


def test_query_limit_names_the_member_without_its_value(loose, indexed):
    for limit in (0, -3):
        assert error_of(
            loose.query, TableName=indexed, Limit=limit, KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "a"}},
        ) == ("ValidationException", ENVELOPE + f"Value at 'Limit' {AT_LEAST_ONE}")
    still_serving(loose, indexed)


def test_scan_and_list_tables_limit_echo_the_value(loose, indexed):
    assert error_of(loose.scan, TableName=indexed, Limit=0) == (
        "ValidationException", ENVELOPE + f"Value '0' at 'limit' {AT_LEAST_ONE}")
    assert error_of(loose.list_tables, Limit=0) == (
        "ValidationException", ENVELOPE + f"Value '0' at 'limit' {AT_LEAST_ONE}")
    still_serving(loose, indexed)


# ------------------------------------------------------------ single-item writes


def test_single_item_writes_envelope_request_faults_only(loose, indexed):
    key = {"pk": {"S": "a"}, "sk": {"S": "b"}}
    assert error_of(loose.put_item, TableName=indexed, Item={**key, "ss": {"SS": []}}) == (
        "ValidationException",
        ENVELOPE + "One or more parameter values were invalid: An string set  may not be empty")
    assert error_of(loose.put_item, TableName=indexed, Item=key, ReturnValues="ALL_NEW") == (
        "ValidationException", ENVELOPE + "ReturnValues can only be ALL_OLD or NONE")
    # GetItem keeps the bare form.
    assert error_of(loose.get_item, TableName=indexed, Key={"pk": {"NULL": False}}) == (
        "ValidationException",
        "One or more parameter values were invalid: Null attribute value types must have the value of true")
    # A key that does not fit the schema is a data-plane fault: bare.
    assert error_of(loose.put_item, TableName=indexed, Item={"pk": {"S": "a"}, "sk": {"N": "1"}}) == (
        "ValidationException",
        "One or more parameter values were invalid: Type mismatch for key sk expected: S actual: N")
    still_serving(loose, indexed)


# ------------------------------------------------------------ key conditions on a GSI


@pytest.mark.parametrize("condition, message", [
    # the partition key and a non-key attribute: the index's sort key is missed
    ("g = :v AND attr1 = :w", "Query condition missed key schema element: gs"),
    # the partition key and the table's sort key (not a key of the index)
    ("g = :v AND sk = :w", "Query condition missed key schema element: gs"),
    # a non-key attribute alone: the partition key is missed
    ("attr1 = :v", "Query condition missed key schema element: g"),
    # more conditions than the index has key attributes
    ("g = :v AND gs = :w AND attr1 = :w",
     "The number of query conditions (3) exceeds the number of key attributes defined in the schema (2)"),
])
def test_gsi_key_condition_with_a_non_key_attribute(loose, indexed, condition, message):
    values = {":v": {"S": "a"}, ":w": {"S": "b"}}
    used = {k: v for k, v in values.items() if k in condition}
    assert error_of(loose.query, TableName=indexed, IndexName="by_g", KeyConditionExpression=condition,
                    ExpressionAttributeValues=used) == ("ValidationException", message)
    still_serving(loose, indexed)


def test_hash_only_gsi_key_condition_with_a_non_key_attribute(loose, indexed):
    assert error_of(loose.query, TableName=indexed, IndexName="by_h", KeyConditionExpression="h = :v AND attr1 = :w",
                    ExpressionAttributeValues={":v": {"S": "a"}, ":w": {"S": "b"}}) == (
        "ValidationException",
        "The number of query conditions (2) exceeds the number of key attributes defined in the schema (1)")
    still_serving(loose, indexed)
