"""Throughput limits (shoal.capacity) through boto3 against real servers:
provisioned tables and GSIs throttled at their rate once their burst is
spent, DynamoDB's error and ThrottlingReasons, UpdateTable lifting a
throttle, on-demand tables (their maximums; double the previous peak
served at once, a faster rise throttled; a warm throughput served at once),
two workers sharing one budget, and the switch that turns limits off."""

from __future__ import annotations

import os
import threading
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
WINDOW_S = 10.0


def make_client(url: str):
    """A client that never retries (tests/conftest.py's retries once): every throttle is seen."""
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDSHOALTEST",
                        aws_secret_access_key="secret", config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("capacity"), "--workers", "1").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


def provisioned(ddb, rcu: int, wcu: int, gsi_wcu: int | None = None) -> str:
    name = unique_name("cap")
    request = dict(
        TableName=name, BillingMode="PROVISIONED",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
        ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu})
    if gsi_wcu is not None:
        request["AttributeDefinitions"].append({"AttributeName": "g", "AttributeType": "S"})
        request["GlobalSecondaryIndexes"] = [{
            "IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 1000, "WriteCapacityUnits": gsi_wcu}}]
    ddb.create_table(**request)
    return name


def error_of(call) -> dict:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response


def drain_writes(ddb, table: str, with_gsi: bool = False) -> int:
    """Write 1-unit items in batches until the table's writes are refused; the units written."""
    written, n = 0, 0
    while True:
        batch = [{"PutRequest": {"Item": {"pk": {"S": "drain"}, "sk": {"N": str(n + i)},
                                          **({"g": {"S": "x"}} if with_gsi else {})}}} for i in range(25)]
        try:
            ddb.batch_write_item(RequestItems={table: batch})
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
            return written
        written += 25
        n += 25


def units_written_in(ddb, table: str, seconds: float) -> int:
    """Closed-loop 1-unit PutItems for ``seconds``: how many were accepted."""
    accepted, n, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        n += 1
        try:
            ddb.put_item(TableName=table, Item={"pk": {"S": "w"}, "sk": {"N": str(n)}})
            accepted += 1
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
            time.sleep(0.005)
    return accepted


def first_refusal(ddb, table: str) -> dict:
    """After ``drain_writes``: the answer of the first of a few 1-unit PutItems that is refused.  The
    drain stops when a batch finds no unit left (batches are admitted item by item), and the rate
    refills a unit every 1/rate seconds, so the very next write may go in."""
    for n in range(200):
        try:
            ddb.put_item(TableName=table, Item={"pk": {"S": "x"}, "sk": {"N": str(n)}})
        except ClientError as exc:
            return exc.response
    raise AssertionError("200 writes in a row went in after the table's throughput was spent")


def paid_back(ddb, table: str) -> None:
    """After ``drain_writes``: the last write it got in may have left the balance up to a unit below
    zero (a request is admitted on a positive balance and charged whole afterwards); wait until a write
    goes in again, so that a window measured from here sees the rate alone."""
    deadline = time.monotonic() + 5
    while units_written_in(ddb, table, 0.05) == 0:
        assert time.monotonic() < deadline


def test_a_provisioned_table_spends_its_burst_then_writes_at_its_rate(ddb):
    table = provisioned(ddb, 5, 20)
    burst = drain_writes(ddb, table)
    # A new table starts with 300 seconds of its rate banked (DynamoDB's burst capacity).
    assert 20 * 300 - 25 <= burst <= 20 * 300 + 300, burst  # and 20 a second while draining (slower when busy)
    answer = first_refusal(ddb, table)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert answer["Error"] == {"Code": "ProvisionedThroughputExceededException", "Message": TABLE_MESSAGE}
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    assert answer["ThrottlingReasons"] == [{"reason": "TableWriteProvisionedThroughputExceeded", "resource": arn}]
    paid_back(ddb, table)
    accepted = units_written_in(ddb, table, WINDOW_S)
    assert abs(accepted - 20 * WINDOW_S) <= 0.1 * 20 * WINDOW_S, accepted  # within 10% over 10 seconds
    # reads draw on their own bucket: still served
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "drain"}, "sk": {"N": "0"}})["Item"]


def test_reads_are_throttled_by_read_capacity_and_update_table_lifts_it(ddb):
    table = provisioned(ddb, 1, 5)
    ddb.put_item(TableName=table, Item={"pk": {"S": "r"}, "sk": {"N": "1"}, "blob": {"S": "x" * 3000}})
    reads = 0
    while True:  # strongly consistent: 1 unit each, 300 banked
        try:
            ddb.get_item(TableName=table, Key={"pk": {"S": "r"}, "sk": {"N": "1"}}, ConsistentRead=True)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
            assert exc.response["ThrottlingReasons"][0]["reason"] == "TableReadProvisionedThroughputExceeded"
            break
        reads += 1
    assert 299 <= reads <= 305, reads  # and what a slow run earns meanwhile, one a second
    code = error_of(lambda: ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                                      ExpressionAttributeValues={":p": {"S": "r"}}))["Error"]["Code"]
    assert code == "ProvisionedThroughputExceededException"
    ddb.update_table(TableName=table, ProvisionedThroughput={"ReadCapacityUnits": 1000, "WriteCapacityUnits": 5})
    deadline = time.monotonic() + 5
    while True:  # the new rate refills the bucket: at most a moment later, reads go again
        try:
            assert ddb.get_item(TableName=table, Key={"pk": {"S": "r"}, "sk": {"N": "1"}})["Item"]
            break
        except ClientError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_gsi_without_write_capacity_throttles_the_tables_writes(ddb):
    table = provisioned(ddb, 100, 1000, gsi_wcu=1)
    written = drain_writes(ddb, table, with_gsi=True)
    assert 300 - 25 <= written <= 300 + 25, written  # the index's 300 units, not the table's 300,000
    answer = error_of(lambda: ddb.put_item(TableName=table, Item={"pk": {"S": "y"}, "sk": {"N": "1"},
                                                                   "g": {"S": "x"}}))
    assert answer["Error"] == {"Code": "ProvisionedThroughputExceededException", "Message": INDEX_MESSAGE}
    index_arn = ddb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"][0]["IndexArn"]
    assert answer["ThrottlingReasons"] == [{"reason": "IndexWriteProvisionedThroughputExceeded",
                                            "resource": index_arn}]
    ddb.update_table(TableName=table, GlobalSecondaryIndexUpdates=[{"Update": {
        "IndexName": "by_g", "ProvisionedThroughput": {"ReadCapacityUnits": 1000, "WriteCapacityUnits": 1000}}}])
    deadline = time.monotonic() + 5
    while True:
        try:
            ddb.put_item(TableName=table, Item={"pk": {"S": "y"}, "sk": {"N": "2"}, "g": {"S": "x"}})
            break
        except ClientError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_batch_answers_a_throttled_tables_part_unprocessed_and_fails_only_when_all_are(ddb):
    spent = provisioned(ddb, 1, 1)
    drain_writes(ddb, spent)
    fresh = provisioned(ddb, 5, 5)
    puts = {name: [{"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"N": str(i)}}}} for i in range(3)]
            for name in (spent, fresh)}
    answer = ddb.batch_write_item(RequestItems=puts)
    assert answer["UnprocessedItems"] == {spent: puts[spent]}  # sent back as it came
    assert ddb.get_item(TableName=fresh, Key={"pk": {"S": "b"}, "sk": {"N": "2"}})["Item"]
    assert "Item" not in ddb.get_item(TableName=spent, Key={"pk": {"S": "b"}, "sk": {"N": "2"}})
    code = error_of(lambda: ddb.batch_write_item(RequestItems={spent: puts[spent]}))["Error"]["Code"]
    assert code == "ProvisionedThroughputExceededException"  # every table it names is throttled
    # reads: a table whose reads are spent comes back in UnprocessedKeys, whole
    keys = [{"pk": {"S": "b"}, "sk": {"N": str(i)}} for i in range(3)]
    while True:
        try:
            ddb.get_item(TableName=spent, Key=keys[0], ConsistentRead=True)
        except ClientError:
            break
    answer = ddb.batch_get_item(RequestItems={spent: {"Keys": keys, "ConsistentRead": True},
                                              fresh: {"Keys": keys}})
    assert answer["UnprocessedKeys"] == {spent: {"Keys": keys, "ConsistentRead": True}}
    assert len(answer["Responses"][fresh]) == 3 and spent not in answer["Responses"]
    # a key that does not fit the throttled table's schema is still refused first
    bad = error_of(lambda: ddb.batch_get_item(RequestItems={spent: {"Keys": [{"pk": {"S": "b"}}]},
                                                            fresh: {"Keys": keys}}))
    assert bad["Error"]["Code"] == "ValidationException"


def test_boto3_standard_retries_get_a_throttled_burst_of_writes_through(server, ddb):
    table = provisioned(ddb, 5, 20)
    drain_writes(ddb, table)
    retrying = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1",
                            aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                            config=Config(retries={"mode": "standard", "max_attempts": 10}))
    retried = 0
    for n in range(30):  # a second and a half of the rate, starting in debt
        answer = retrying.put_item(TableName=table, Item={"pk": {"S": "retry"}, "sk": {"N": str(n)}})
        retried += answer["ResponseMetadata"]["RetryAttempts"]
    assert retried > 0  # some were throttled, and each got through on a later attempt
    found = ddb.query(TableName=table, KeyConditionExpression="pk = :p", Select="COUNT",
                      ExpressionAttributeValues={":p": {"S": "retry"}})
    assert found["Count"] == 30


def on_demand_table(ddb, **extra) -> str:
    name = unique_name("cap")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **extra)
    return name


def test_an_on_demand_maximum_throttles_with_its_own_reason(ddb):
    name = on_demand_table(ddb, OnDemandThroughput={"MaxWriteRequestUnits": 10})
    accepted, answer = 0, None
    for n in range(40):  # one second's worth banked, then 10 a second
        try:
            ddb.put_item(TableName=name, Item={"pk": {"S": str(n)}})
            accepted += 1
        except ClientError as exc:
            answer = exc.response
            break
    assert 10 <= accepted < 40 and answer is not None
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    # DynamoDB's throttling guide (its example of this reason) and its answers quoted in public reports
    assert answer["Error"] == {"Code": "ThrottlingException",
                               "Message": "Throughput exceeds the maximum OnDemandThroughput configured on table or "
                                          "index"}
    assert answer["throttlingReasons"] == [{"reason": "TableWriteMaxOnDemandThroughputExceeded", "resource": arn}]
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    ddb.update_table(TableName=name, OnDemandThroughput={"MaxWriteRequestUnits": -1})  # no maximum: served again
    deadline = time.monotonic() + 5
    while True:
        try:
            ddb.put_item(TableName=name, Item={"pk": {"S": "after"}})
            break
        except ClientError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # an on-demand table without a maximum serves far past this table's 10 a second
    unlimited = on_demand_table(ddb)
    for n in range(200):
        ddb.put_item(TableName=unlimited, Item={"pk": {"S": str(n)}})


def test_an_on_demand_gsis_maximum_throttles_the_tables_writes_and_batches_answer_them_unprocessed(ddb):
    name = unique_name("cap")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "g", "AttributeType": "S"}],
                     GlobalSecondaryIndexes=[{"IndexName": "by_g",
                                              "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                              "Projection": {"ProjectionType": "KEYS_ONLY"},
                                              "OnDemandThroughput": {"MaxWriteRequestUnits": 2}}])
    refusal, n, key = None, 0, "x" * 1500  # a 2-unit index write: each leaves the index in debt
    while refusal is None:  # the index's 2 a second (two banked), not the table's thousands
        n += 1
        assert n < 50
        try:
            ddb.put_item(TableName=name, Item={"pk": {"S": str(n)}, "g": {"S": key}})
        except ClientError as exc:
            refusal = exc.response
    index_arn = ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"][0]["IndexArn"]
    assert refusal["Error"]["Code"] == "ThrottlingException"
    assert refusal["throttlingReasons"] == [{"reason": "IndexWriteMaxOnDemandThroughputExceeded",
                                             "resource": index_arn}]
    fresh = on_demand_table(ddb)
    puts = {table: [{"PutRequest": {"Item": {"pk": {"S": f"b{i}"}, "g": {"S": key}}}} for i in range(3)]
            for table in (name, fresh)}
    answer = ddb.batch_write_item(RequestItems=puts)
    assert answer["UnprocessedItems"] == {name: puts[name]}
    code = error_of(lambda: ddb.batch_write_item(RequestItems={name: puts[name]}))["Error"]["Code"]
    assert code == "ThrottlingException"  # every table it names is throttled
    assert ddb.get_item(TableName=fresh, Key={"pk": {"S": "b2"}})["Item"]  # still serving


ON_DEMAND = {"SHOAL_ON_DEMAND_READ_UNITS": "30", "SHOAL_ON_DEMAND_WRITE_UNITS": "5",
             "SHOAL_ON_DEMAND_WINDOW_S": "1", "SHOAL_ON_DEMAND_SCALE_S": "4"}


@pytest.fixture(scope="module")
def small_on_demand(tmp_path_factory):
    """A server whose new on-demand tables serve 30 reads and 5 writes a second at once, measure
    peaks over one second and take four seconds (not 30 minutes) to make a peak the previous one."""
    proc = ShoalProcess(tmp_path_factory.mktemp("on-demand"), "--workers", "1", env=ON_DEMAND).start()
    yield make_client(proc.url)
    proc.stop()


def writes_per_second(ddb, table: str, seconds: int) -> tuple[list[int], dict | None]:
    """1-unit PutItems as fast as one client goes: those accepted in each second, and the first refusal."""
    counts, refusal, n = [], None, 0
    start = time.monotonic()
    for second in range(seconds):
        accepted = 0
        while time.monotonic() < start + second + 1:
            n += 1
            try:
                ddb.put_item(TableName=table, Item={"pk": {"S": str(n)}})
                accepted += 1
            except ClientError as exc:
                refusal = refusal or exc.response
        counts.append(accepted)
    return counts, refusal


def test_on_demand_serves_double_the_previous_peak_and_a_faster_rise_throttles(small_on_demand):
    ddb = small_on_demand
    # A high maximum: the catalog sends only tables with limits to the capacity hook (see the report).
    table = on_demand_table(ddb, OnDemandThroughput={"MaxWriteRequestUnits": 40000})
    counts, refusal = writes_per_second(ddb, table, 12)
    # 5 a second at first (the new table's warm throughput); held there, 5 is the previous peak about
    # four seconds later, so 10 are served; some four seconds on, 20: doubling once per scaling time, no
    # faster.  Sums over seconds, each bounded by the rate and one second banked (a client that stalls on
    # a busy machine lets the bank refill, then spends it).
    assert 12 <= sum(counts[0:4]) <= 5 * 4 + 5 + 2, counts
    assert 5 * 3 + 5 + 2 < sum(counts[4:7]) <= 10 * 3 + 10 + 2, counts
    assert sum(counts[9:12]) > 10 * 3 + 10, counts
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    assert refusal["Error"] == {"Code": "ThrottlingException",
                                "Message": "Rate of requests exceeds the allowed throughput."}
    assert refusal["throttlingReasons"] == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": arn}]
    # reads have their own peak: untouched
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "1"}})["Item"]


def test_a_warm_throughput_is_served_at_once(small_on_demand):
    ddb = small_on_demand
    table = on_demand_table(ddb, OnDemandThroughput={"MaxWriteRequestUnits": 40000})
    ddb.update_table(TableName=table, WarmThroughput={"WriteUnitsPerSecond": 30})
    counts, _ = writes_per_second(ddb, table, 3)  # 30 a second and one second banked; 5 without it
    assert 5 * 3 + 5 + 5 < sum(counts) <= 30 * 3 + 30 + 5, counts


def test_two_workers_share_one_budget(tmp_path):
    proc = ShoalProcess(tmp_path / "data", "--workers", "2").start()
    try:
        clients = [make_client(proc.url) for _ in range(4)]  # connections spread over both workers
        table = provisioned(clients[0], 5, 40)
        drain_writes(clients[0], table)
        paid_back(clients[0], table)
        counts = [0] * len(clients)

        def writer(i: int) -> None:
            counts[i] = units_written_in(clients[i], table, WINDOW_S)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(clients))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert abs(sum(counts) - 40 * WINDOW_S) <= 0.1 * 40 * WINDOW_S, counts
        assert os.path.exists(tmp_path / "data" / "capacity")
    finally:
        proc.stop()


def test_limits_off_nothing_is_throttled(tmp_path):
    saved = os.environ.get("SHOAL_CAPACITY")
    os.environ["SHOAL_CAPACITY"] = "off"
    try:
        proc = ShoalProcess(tmp_path / "data", "--workers", "1").start()
    finally:
        if saved is None:
            os.environ.pop("SHOAL_CAPACITY", None)
        else:
            os.environ["SHOAL_CAPACITY"] = saved
    try:
        ddb = make_client(proc.url)
        table = provisioned(ddb, 1, 1)
        for n in range(20):  # 20 batches of 25: far past one unit a second and its 300 banked
            ddb.batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": {"pk": {"S": "z"}, "sk": {"N": str(n * 25 + i)}}}} for i in range(25)]})
    finally:
        proc.stop()


@pytest.fixture(scope="module", params=["metrics", "no-metrics"])
def metered_or_not(request, server, tmp_path_factory):
    """The module's server (metrics on), then one with ``--no-metrics``: a GetItem or PutItem is
    charged at admission the least it consumes, and reports the rest to the capacity hook itself."""
    if request.param == "metrics":
        yield server
        return
    proc = ShoalProcess(tmp_path_factory.mktemp("capacity-no-metrics"), "--workers", "1", "--no-metrics").start()
    yield proc
    proc.stop()


def reads_until_throttled(ddb, table: str, consistent: bool) -> tuple[int, float]:
    """GetItems of the 9 KB item until one is throttled: (how many were served, seconds it took)."""
    reads, started = 0, time.monotonic()
    while True:
        try:
            answer = ddb.get_item(TableName=table, Key={"pk": {"S": "big"}, "sk": {"N": "1"}},
                                  ConsistentRead=consistent, ReturnConsumedCapacity="TOTAL")
        except ClientError as exc:
            assert exc.response["Error"] == {"Code": "ProvisionedThroughputExceededException",
                                             "Message": TABLE_MESSAGE}
            assert exc.response["ThrottlingReasons"][0]["reason"] == "TableReadProvisionedThroughputExceeded"
            return reads, time.monotonic() - started
        assert answer["ConsumedCapacity"]["CapacityUnits"] == (3.0 if consistent else 1.5)
        assert len(answer["Item"]["blob"]["S"]) == 9000
        reads += 1
        assert reads < 400, "never throttled"


@pytest.mark.parametrize("consistent", [True, False], ids=["consistent", "eventual"])
def test_a_9_kb_read_is_charged_its_three_blocks(metered_or_not, consistent):
    ddb = make_client(metered_or_not.url)
    table = provisioned(ddb, 1, 1000)
    # 9,000 bytes of text and the key: over 8 KB, so three 4 KB blocks: 3 units, or 1.5 eventually consistent
    ddb.put_item(TableName=table, Item={"pk": {"S": "big"}, "sk": {"N": "1"}, "blob": {"S": "x" * 9000}})
    reads, seconds = reads_until_throttled(ddb, table, consistent)
    per_read = 3.0 if consistent else 1.5
    # 300 units banked (one a second for five minutes), and one a second more while it reads
    assert 300 / per_read <= reads <= (300 + seconds + 1) / per_read + 1, (reads, seconds)
    # the server still serves: another table's read, charged its one block
    other = provisioned(ddb, 1, 1)
    assert ddb.get_item(TableName=other, Key={"pk": {"S": "big"}, "sk": {"N": "1"}},
                        ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"] == 0.5


FAILED_WRITES = {  # each refused by its condition, on the 2.5 KB item of key ("guarded", 1)
    "PutItem": lambda ddb, table: ddb.put_item(
        TableName=table, Item={"pk": {"S": "guarded"}, "sk": {"N": "1"}}, ConditionExpression="attribute_not_exists(pk)"),
    "UpdateItem": lambda ddb, table: ddb.update_item(
        TableName=table, Key={"pk": {"S": "guarded"}, "sk": {"N": "1"}}, UpdateExpression="SET n = :one",
        ConditionExpression="#b = :one", ExpressionAttributeNames={"#b": "blob"},
        ExpressionAttributeValues={":one": {"S": "1"}}),
    "DeleteItem": lambda ddb, table: ddb.delete_item(
        TableName=table, Key={"pk": {"S": "guarded"}, "sk": {"N": "1"}}, ConditionExpression="attribute_not_exists(pk)"),
}


@pytest.mark.parametrize("operation", sorted(FAILED_WRITES))
def test_failed_conditional_writes_spend_write_capacity_until_throttled(metered_or_not, operation):
    """DynamoDB charges a write whose condition fails the existing item's write units
    (Developer Guide, "Capacity units consumed by conditional writes"): on a 1-WCU table,
    failed writes of a 2.5 KB item (3 units each) spend its 300 banked units, then are
    throttled; the item is never changed."""
    ddb = make_client(metered_or_not.url)
    table = provisioned(ddb, 1000, 1)
    # 2,500 bytes of text, the key and the names: over 2 KB, so three 1 KB write units
    item = {"pk": {"S": "guarded"}, "sk": {"N": "1"}, "blob": {"S": "x" * 2500}}
    assert ddb.put_item(TableName=table, Item=item,
                        ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"] == 3.0
    failed, started = 0, time.monotonic()
    while True:
        try:
            FAILED_WRITES[operation](ddb, table)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException":
                assert exc.response["Error"]["Message"] == TABLE_MESSAGE
                assert exc.response["ThrottlingReasons"][0]["reason"] == "TableWriteProvisionedThroughputExceeded"
                break
            assert exc.response["Error"] == {"Code": "ConditionalCheckFailedException",
                                             "Message": "The conditional request failed"}
            failed += 1
        assert failed < 400, "never throttled"
    seconds = time.monotonic() - started
    # 300 units banked less the put's 3, and one a second more while it writes; 3 units a failure
    assert (300 - 3) / 3 - 1 <= failed <= (300 - 3 + seconds + 1) / 3 + 1, (failed, seconds)
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "guarded"}, "sk": {"N": "1"}})["Item"] == item
    # the server still serves: another table's write
    other = provisioned(ddb, 1, 1)
    assert ddb.put_item(TableName=other, Item={"pk": {"S": "a"}, "sk": {"N": "1"}},
                        ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"] == 1.0


def test_cancelled_transactions_spend_the_write_capacity_of_their_items(ddb):
    """DynamoDB performs two underlying writes of every item of a transaction (prepare,
    commit), and that capacity is consumed even when the transaction is cancelled: a
    cancelled TransactWriteItems is charged each item's existing size (or one unit) twice
    (the conditional-write rule, as nothing is written).  Here 2 * 3 for the 2.5 KB item
    whose condition fails and 2 * 1 for the missing item put beside it: 8 units a try."""
    table = provisioned(ddb, 1000, 1)
    item = {"pk": {"S": "guarded"}, "sk": {"N": "1"}, "blob": {"S": "x" * 2500}}
    ddb.put_item(TableName=table, Item=item)  # 3 units
    actions = [{"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "guarded"}, "sk": {"N": "1"}},
                                   "ConditionExpression": "attribute_not_exists(pk)"}},
               {"Put": {"TableName": table, "Item": {"pk": {"S": "new"}, "sk": {"N": "2"}}}}]
    cancelled, started = 0, time.monotonic()
    while True:
        try:
            ddb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException":
                assert exc.response["Error"]["Message"] == TABLE_MESSAGE
                break
            assert exc.response["Error"] == {
                "Code": "TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                           "[ConditionalCheckFailed, None]"}
            cancelled += 1
        assert cancelled < 300, "never throttled"
    seconds = time.monotonic() - started
    assert (300 - 3) / 8 - 1 <= cancelled <= (300 - 3 + seconds + 1) / 8 + 1, (cancelled, seconds)
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "new"}, "sk": {"N": "2"}})
