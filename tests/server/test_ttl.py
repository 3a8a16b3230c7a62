"""Time to live end to end through boto3: the API's rules and the sweeper
deleting expired items (seen by streams as service REMOVEs)."""

from __future__ import annotations

import os
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table, make_client, unique_name
from tests.shoal_process import ShoalProcess

SERVICE = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("SHOAL_TTL_SWEEP_INTERVAL_S", "SHOAL_TTL_MODIFY_INTERVAL_S")}
    os.environ.update(SHOAL_TTL_SWEEP_INTERVAL_S="1", SHOAL_TTL_MODIFY_INTERVAL_S="0")
    try:
        proc = ShoalProcess(tmp_path_factory.mktemp("ttl")).start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def status(ddb, name):
    return ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]


def test_describe_time_to_live_transitions(ddb):
    name = create_table(ddb, range_key=None)
    assert status(ddb, name) == {"TimeToLiveStatus": "DISABLED"}
    spec = {"Enabled": True, "AttributeName": "expires_at"}
    assert ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=spec)["TimeToLiveSpecification"] == spec
    assert status(ddb, name) == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}  # at once
    with pytest.raises(ClientError) as info:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=spec)
    assert info.value.response["Error"] == {"Code": "ValidationException", "Message": "TimeToLive is already enabled"}
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={**spec, "Enabled": False})
    assert status(ddb, name) == {"TimeToLiveStatus": "DISABLED"}
    with pytest.raises(ClientError) as info:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={**spec, "Enabled": False})
    assert info.value.response["Error"]["Message"] == "TimeToLive is already disabled"
    with pytest.raises(ClientError) as info:
        ddb.describe_time_to_live(TableName=unique_name("missing"))
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_second_change_within_the_interval_is_refused(shoal):
    """The shared server keeps DynamoDB's one-hour modification interval."""
    client = make_client(shoal.url)
    name = create_table(client, range_key=None)
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "x"})
    with pytest.raises(ClientError) as info:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": False, "AttributeName": "x"})
    assert info.value.response["Error"]["Message"] == (
        "Time to live has been modified multiple times within a fixed interval")
    client.delete_table(TableName=name)


def test_expired_items_are_deleted_and_streamed_as_service_removes(ddb, server):
    name = unique_name("ttl")
    create_table(ddb, name=name, range_key=None)
    arn = ddb.update_table(TableName=name, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "OLD_IMAGE"})["TableDescription"]["LatestStreamArn"]
    now = int(time.time())
    ddb.put_item(TableName=name, Item={"pk": {"S": "soon"}, "expires_at": {"N": str(now + 2)}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "past"}, "expires_at": {"N": str(now - 60)}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "ancient"}, "expires_at": {"N": str(now - 6 * 365 * 86400)}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "string"}, "expires_at": {"S": str(now - 60)}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "forever"}})
    # Expired but not yet swept: still readable.
    assert "Item" in ddb.get_item(TableName=name, Key={"pk": {"S": "past"}})
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})

    def remaining():
        return sorted(i["pk"]["S"] for i in ddb.scan(TableName=name, ConsistentRead=True)["Items"])

    assert wait_for(lambda: remaining() == ["ancient", "forever", "string"], timeout=15), remaining()

    ds = make_client(server.url, "dynamodbstreams")
    shard = ds.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

    def removes():
        it = ds.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        return [r for r in ds.get_records(ShardIterator=it)["Records"] if r["eventName"] == "REMOVE"]

    found = wait_for(lambda: len(removes()) == 2 and removes())
    assert sorted(r["dynamodb"]["Keys"]["pk"]["S"] for r in found) == ["past", "soon"]
    for record in found:
        assert record["userIdentity"] == SERVICE
        assert record["dynamodb"]["OldImage"]["expires_at"]["N"]
