"""Per-partition limits (shoal.capacity.partitions) through boto3 against
real servers: a hot key of a table, of a GSI and of a Query throttled with
DynamoDB's errors and ThrottlingReasons while other keys are served, write
sharding getting past it, a batch's hot items answered unprocessed, the
--profile dynamodb-faithful and --partition-limits switches, and a server
without them that never refuses a hot key.

The servers' partitions hold 5 write and 15 read units a second
(SHOAL_PARTITION_WRITE_UNITS / _READ_UNITS): DynamoDB's 1,000 and 3,000
are more than a test server serves, and a loaded machine's client still
sends more than 5 requests a second to one key."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import unique_name
from tests.shoal_process import ShoalProcess

TABLE_MESSAGE = ("The level of configured provisioned throughput for the table was exceeded. "
                 "Consider increasing your provisioning level with the UpdateTable API")
INDEX_MESSAGE = ("The level of configured provisioned throughput for one or more global secondary indexes of the "
                 "table was exceeded. Consider increasing your provisioning level for the under-provisioned global "
                 "secondary indexes with the UpdateTable API")
HOT_KEY_MESSAGE = ("Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
                   "scaling your table or index so please try again shortly. If exceptions persist, check if you "
                   "have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
                   "bp-partition-key-design.html")
UNITS = {"SHOAL_PARTITION_WRITE_UNITS": "5", "SHOAL_PARTITION_READ_UNITS": "15"}


def make_client(url: str):
    """A client that never retries: every throttle is seen."""
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDSHOALTEST",
                        aws_secret_access_key="secret", config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("partitions"), "--workers", "1", "--profile", "dynamodb-faithful",
                        env=UNITS).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


def make_table(ddb, billing: str = "PROVISIONED") -> tuple[str, str]:
    """A table with a GSI, far from its own limits: (name, ARN)."""
    name = unique_name("hot")
    request = dict(
        TableName=name, BillingMode=billing,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = {"ReadCapacityUnits": 5000, "WriteCapacityUnits": 5000}
        request["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"] = {"ReadCapacityUnits": 5000,
                                                                          "WriteCapacityUnits": 5000}
    else:  # a maximum makes the table one the capacity hook sees (see docs/capacity.md)
        request["OnDemandThroughput"] = {"MaxReadRequestUnits": 40000, "MaxWriteRequestUnits": 40000}
    arn = ddb.create_table(**request)["TableDescription"]["TableArn"]
    return name, arn


def put(ddb, table: str, pk: str, sk: int, g: str | None = None) -> None:
    item = {"pk": {"S": pk}, "sk": {"N": str(sk)}}
    if g is not None:
        item["g"] = {"S": g}
    ddb.put_item(TableName=table, Item=item)


def write_until_refused(ddb, table: str, pk, g=None, limit: int = 500) -> tuple[int, dict]:
    """1-unit writes (to key ``pk(n)``) until one is refused: (how many were served, the refusal)."""
    for n in range(limit):
        try:
            put(ddb, table, pk(n), n, g)
        except ClientError as exc:
            return n, exc.response
    raise AssertionError(f"{limit} writes to a hot key were never throttled")


def test_a_hot_key_throttles_with_the_key_range_reason_while_other_keys_are_served(ddb):
    table, arn = make_table(ddb)
    served, refusal = write_until_refused(ddb, table, lambda n: "title-1")
    assert 5 <= served <= 40  # a partition's second of units, and what refilled meanwhile
    assert refusal["Error"] == {"Code": "ProvisionedThroughputExceededException", "Message": TABLE_MESSAGE}
    assert refusal["ThrottlingReasons"] == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": arn}]
    put(ddb, table, "title-2", 0)  # another key: its own partition
    # Reads of the hot key are a separate budget.
    ddb.get_item(TableName=table, Key={"pk": {"S": "title-1"}, "sk": {"N": "0"}})
    time.sleep(1.2)  # a second of refill pays the debt back
    put(ddb, table, "title-1", 1000)


def test_write_sharding_gets_past_a_hot_keys_limit(ddb):
    table, _ = make_table(ddb)

    def writes_for(seconds: float, key) -> tuple[int, int]:
        """(served, refused) of writes sent one after another for ``seconds``."""
        served = refused = n = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                put(ddb, table, key(n), n)
                served += 1
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
                refused += 1
            n += 1
        return served, refused

    served, refused = writes_for(2.0, lambda n: "counter")
    assert served <= 5 + 2 * 5 + 2 and refused > 0  # a second's burst and two of refill
    # A hundred keys: a hundred partitions' writes, more than one client sends.
    served, refused = writes_for(2.0, lambda n: f"counter#{n % 100}")
    assert refused == 0 and served > 0


def test_a_hot_gsi_key_throttles_the_tables_writes(ddb):
    table, arn = make_table(ddb)
    served, refusal = write_until_refused(ddb, table, lambda n: f"item-{n}", g="same")
    assert 5 <= served <= 40
    assert refusal["Error"] == {"Code": "ProvisionedThroughputExceededException", "Message": INDEX_MESSAGE}
    assert refusal["ThrottlingReasons"] == [{"reason": "IndexWriteKeyRangeThroughputExceeded",
                                             "resource": arn + "/index/by_g"}]
    put(ddb, table, "item-other", 0, g="other")


def test_a_hot_query_key_throttles_reads(ddb):
    table, arn = make_table(ddb)
    ddb.put_item(TableName=table, Item={"pk": {"S": "q"}, "sk": {"N": "0"}, "blob": {"S": "x" * 7000}})
    for n in range(200):
        try:
            ddb.query(TableName=table, KeyConditionExpression="pk = :p", ConsistentRead=True,
                      ExpressionAttributeValues={":p": {"S": "q"}})
        except ClientError as exc:
            refusal = exc.response
            break
    else:
        raise AssertionError("200 queries of one key were never throttled")
    assert 7 <= n <= 60  # two units each (7 KB, consistent): a second's 15, and what refilled meanwhile
    assert refusal["ThrottlingReasons"] == [{"reason": "TableReadKeyRangeThroughputExceeded", "resource": arn}]
    ddb.get_item(TableName=table, Key={"pk": {"S": "q2"}, "sk": {"N": "0"}}, ConsistentRead=True)


def test_an_on_demand_tables_hot_key_answers_throttling_exception(ddb):
    table, arn = make_table(ddb, "PAY_PER_REQUEST")
    _, refusal = write_until_refused(ddb, table, lambda n: "od-hot")
    assert refusal["Error"] == {"Code": "ThrottlingException", "Message": HOT_KEY_MESSAGE}
    assert refusal["throttlingReasons"] == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": arn}]


def test_a_plain_on_demand_tables_hot_key_is_throttled(ddb):
    name = unique_name("odp")
    arn = ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                           KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])["TableDescription"]["TableArn"]
    for n in range(500):
        try:
            ddb.update_item(TableName=name, Key={"pk": {"S": "views#title-1"}}, UpdateExpression="ADD n :one",
                            ExpressionAttributeValues={":one": {"N": "1"}})
        except ClientError as exc:
            refusal = exc.response
            break
    else:
        raise AssertionError("500 increments of one counter were never throttled")
    assert 5 <= n <= 40
    assert refusal["Error"] == {"Code": "ThrottlingException", "Message": HOT_KEY_MESSAGE}
    assert refusal["throttlingReasons"] == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": arn}]


def test_a_batch_answers_a_hot_keys_items_unprocessed(ddb):
    table, _ = make_table(ddb)
    other = unique_name("oth")
    ddb.create_table(TableName=other, BillingMode="PROVISIONED",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 100, "WriteCapacityUnits": 100})
    for n in range(100):
        items = [{"PutRequest": {"Item": {"pk": {"S": "batch-hot"}, "sk": {"N": str(3 * n + i)}}}} for i in range(3)]
        answer = ddb.batch_write_item(RequestItems={
            table: items, other: [{"PutRequest": {"Item": {"pk": {"S": f"x{n}"}}}}]})
        if answer["UnprocessedItems"]:
            break
    else:
        raise AssertionError("100 batches of one hot key were never throttled")
    assert n >= 1  # five units a second: one batch of three at least
    assert answer["UnprocessedItems"] == {table: items}  # the hot table's part; the other table's written
    assert "Item" in ddb.get_item(TableName=other, Key={"pk": {"S": f"x{n}"}})


def test_the_profile_is_reported_by_the_help_and_a_server_without_it_serves_a_hot_key(tmp_path):
    out = subprocess.run([sys.executable, "-m", "shoal", "serve", "--help"], capture_output=True, text=True,
                         timeout=30)
    assert "--profile" in out.stdout and "dynamodb-faithful" in out.stdout and "--partition-limits" in out.stdout
    plain = ShoalProcess(tmp_path / "plain", "--workers", "1", env=UNITS).start()
    try:
        ddb = make_client(plain.url)
        table, _ = make_table(ddb)
        for n in range(60):  # twelve seconds of a partition's units at once: never refused
            put(ddb, table, "hot", n)
    finally:
        plain.stop()


def test_partition_limits_flag_turns_them_on(tmp_path):
    flagged = ShoalProcess(tmp_path / "flag", "--workers", "1", "--partition-limits", env=UNITS).start()
    try:
        ddb = make_client(flagged.url)
        table, arn = make_table(ddb)
        _, refusal = write_until_refused(ddb, table, lambda n: "hot")
        assert refusal["ThrottlingReasons"] == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": arn}]
    finally:
        flagged.stop()


def _shoal(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    return subprocess.run([sys.executable, "-m", "shoal", "serve", "--port", "0", *args], capture_output=True,
                          text=True, timeout=30, env={**clean, **env})


@pytest.mark.parametrize("args, env, message", [
    (("--partition-limits", "--capacity", "off"), {},
     "shoal: --partition-limits needs --capacity on: a partition's limits are throughput limits "
     "(check SHOAL_PARTITION_LIMITS and SHOAL_CAPACITY too)\n"),
    ((), {"SHOAL_PROFILE": "dynamodb-faithful", "SHOAL_CAPACITY": "off"},
     "shoal: --profile dynamodb-faithful enforces throughput limits: it cannot be combined with --capacity off "
     "(check SHOAL_PROFILE and SHOAL_CAPACITY too)\n"),
])
def test_partition_limits_without_capacity_are_refused_at_start(tmp_path, args, env, message):
    out = _shoal("--data-dir", str(tmp_path / "d"), *args, **env)
    assert out.returncode == 2
    assert out.stderr == message and out.stdout == ""
