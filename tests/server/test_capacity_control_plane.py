"""The control plane's rate (shoal.capacity.control_plane) through boto3:
past it, CreateTable, DescribeTable, ListTables, UpdateTable and DeleteTable
answer ThrottlingException with DynamoDB's message while the data plane is
served, and the budget refills.  The server's rate is lowered to 5 a second
(SHOAL_CONTROL_PLANE_RATE); DynamoDB's 2,500 is more than a test server
serves, and is what a server uses unless told otherwise."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import unique_name
from tests.shoal_process import ShoalProcess

MESSAGE = "Rate of requests exceeds the allowed throughput."


@pytest.fixture(scope="module")
def ddb(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("control"), "--workers", "1",
                        env={"SHOAL_CONTROL_PLANE_RATE": "5"}).start()
    yield boto3.client("dynamodb", endpoint_url=proc.url, region_name="us-east-1", aws_access_key_id="AKIDSHOALTEST",
                       aws_secret_access_key="secret", config=Config(retries={"total_max_attempts": 1}))
    proc.stop()


def drain(ddb, name: str) -> int:
    """DescribeTable until one is refused: how many were served."""
    for served in range(200):
        try:
            ddb.describe_table(TableName=name)
        except ClientError as exc:
            assert exc.response["Error"] == {"Code": "ThrottlingException", "Message": MESSAGE}
            assert "throttlingReasons" not in exc.response and "ThrottlingReasons" not in exc.response
            return served
    raise AssertionError("200 DescribeTables were never throttled")


def refused_once_drained(ddb, name: str, call) -> dict:
    """``call``'s refusal right after the budget is spent (a slow moment may
    refill one request's worth between the two: then again)."""
    for _ in range(20):
        drain(ddb, name)
        try:
            call()
        except ClientError as exc:
            return exc.response
    raise AssertionError("never throttled")


def test_control_plane_requests_past_the_rate_are_throttled_and_the_data_plane_is_not(ddb):
    name = unique_name("ctl")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    assert 4 <= drain(ddb, name) <= 30  # the second's 5 (less the CreateTable), and what refilled meanwhile
    flags = iter([True, False] * 20)
    for call in (lambda: ddb.list_tables(),
                 lambda: ddb.update_table(TableName=name, DeletionProtectionEnabled=next(flags)),
                 lambda: ddb.create_table(TableName=unique_name("ctl"), BillingMode="PAY_PER_REQUEST",
                                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}]),
                 lambda: ddb.delete_table(TableName="never-made")):
        assert refused_once_drained(ddb, name, call)["Error"] == {"Code": "ThrottlingException", "Message": MESSAGE}
    drain(ddb, name)
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}})  # the data plane is not counted
    assert ddb.get_item(TableName=name, Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}
    ddb.describe_time_to_live(TableName=name)  # an operation with no documented rate
    time.sleep(1.1)  # a second refills the budget
    assert ddb.describe_table(TableName=name)["Table"]["TableName"] == name
