"""Two ``shoal serve`` nodes over one PostgreSQL, writing at the same time
(issue 19): no writer lock across nodes, yet conditional writes and
transactions racing from both nodes give the answers one node would, the
change log (and so the stream) stays complete, and a transaction held open
on one item does not hold up a write of another.

The clients retry as SDKs do by default (a write that lost a deadlock twice
is answered with a retryable 500 and left undone); every outcome is still
checked exactly."""

from __future__ import annotations

import threading
import time

import boto3
import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import unique_name
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.shoal_process import ShoalProcess


@pytest.fixture(scope="module")
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("race")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, database):
    """Two nodes of two workers each: four processes writing to one database."""
    started = [ShoalProcess(tmp_path_factory.mktemp("node"), "--storage", database, "--workers", "2").start()
               for _ in range(2)]
    yield started
    for node in started:
        node.stop()


def client(node, service: str = "dynamodb"):
    """A client of its own (own connections), retrying as the SDKs' standard mode does."""
    return boto3.client(service, endpoint_url=node.url, region_name="us-east-1",
                        aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 8, "mode": "standard"}, read_timeout=60))


def make_table(ddb, stream: bool = False) -> str:
    name = unique_name("race")
    extra = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}} if stream else {}
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **extra)
    return name


def run_all(work, count: int) -> None:
    """``work(n)`` in ``count`` threads started together; their exceptions re-raised."""
    start, errors = threading.Barrier(count), []

    def run(number):
        start.wait()
        try:
            work(number)
        except Exception as exc:  # shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def test_compare_and_set_increments_from_both_nodes_lose_nothing(nodes):
    """Optimistic increments (read, then write on the condition that the
    value is still what was read) racing on one item: every increment that
    succeeded counted once, and each lost race was a ConditionalCheckFailed."""
    setup = client(nodes[0])
    name = make_table(setup)
    setup.put_item(TableName=name, Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    racers, rounds = 6, 10

    def increment(number):
        ddb = client(nodes[number % 2])
        for _ in range(rounds):
            while True:
                seen = ddb.get_item(TableName=name, Key={"pk": {"S": "counter"}}, ConsistentRead=True)
                value = int(seen["Item"]["n"]["N"])
                try:
                    ddb.put_item(TableName=name, Item={"pk": {"S": "counter"}, "n": {"N": str(value + 1)}},
                                 ConditionExpression="n = :seen",
                                 ExpressionAttributeValues={":seen": {"N": str(value)}})
                    break
                except ClientError as exc:
                    assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"

    run_all(increment, racers)
    final = setup.get_item(TableName=name, Key={"pk": {"S": "counter"}}, ConsistentRead=True)["Item"]
    assert final["n"] == {"N": str(racers * rounds)}


def test_transfers_in_transactions_from_both_nodes_keep_the_total(nodes):
    """TransactWriteItems moving units between four accounts, each guarded by
    the source's balance: the total is kept, no balance goes negative, and
    the balances are what the successful transfers say."""
    setup = client(nodes[0])
    name = make_table(setup)
    accounts = ["a", "b", "c", "d"]
    for account in accounts:
        setup.put_item(TableName=name, Item={"pk": {"S": account}, "balance": {"N": "20"}})
    done = []

    def transfer(number):
        ddb = client(nodes[number % 2])
        for step in range(12):
            source, target = accounts[(number + step) % 4], accounts[(number + 2 * step + 1) % 4]
            if source == target:
                continue
            try:
                ddb.transact_write_items(TransactItems=[
                    {"Update": {"TableName": name, "Key": {"pk": {"S": source}},
                                "UpdateExpression": "SET balance = balance - :three",
                                "ConditionExpression": "balance >= :three",
                                "ExpressionAttributeValues": {":three": {"N": "3"}}}},
                    {"Update": {"TableName": name, "Key": {"pk": {"S": target}},
                                "UpdateExpression": "SET balance = balance + :three",
                                "ExpressionAttributeValues": {":three": {"N": "3"}}}}])
                done.append((source, target))
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "TransactionCanceledException", exc.response
                reasons = [r["Code"] for r in exc.response["CancellationReasons"]]
                assert reasons in (["ConditionalCheckFailed", "None"], ["TransactionConflict", "None"],
                                   ["None", "TransactionConflict"], ["TransactionConflict", "TransactionConflict"])

    run_all(transfer, 6)
    balances = {item["pk"]["S"]: int(item["balance"]["N"])
                for item in setup.scan(TableName=name, ConsistentRead=True)["Items"]}
    expected = dict.fromkeys(accounts, 20)
    for source, target in done:
        expected[source] -= 3
        expected[target] += 3
    assert balances == expected
    assert sum(balances.values()) == 80 and min(balances.values()) >= 0
    assert done  # some transfers went through


def test_writes_of_different_items_from_both_nodes_all_reach_the_table_and_the_stream(nodes):
    setup = client(nodes[0])
    name = make_table(setup, stream=True)

    def write(number):
        ddb = client(nodes[number % 2])
        for n in range(15):
            ddb.put_item(TableName=name, Item={"pk": {"S": f"w{number}-{n}"}},
                         ConditionExpression="attribute_not_exists(pk)")

    run_all(write, 6)
    keys = sorted(item["pk"]["S"] for item in setup.scan(TableName=name, ConsistentRead=True)["Items"])
    assert keys == sorted(f"w{w}-{n}" for w in range(6) for n in range(15))
    streams = client(nodes[1], "dynamodbstreams")
    arn = setup.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    assert sorted(r["dynamodb"]["Keys"]["pk"]["S"] for r in records) == keys
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def _lock_waits(database) -> int:
    with psycopg.connect(database, autocommit=True) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND wait_event_type = 'Lock'").fetchone()[0]


def test_an_open_transaction_on_one_item_holds_up_only_that_item(nodes, database):
    """A write transaction (of a third node: an engine in this process) holds
    item A: node one's write of item B completes meanwhile, node two's update
    of A waits on A's lock (seen in pg_stat_activity, not timed), and goes on
    from what the transaction committed."""
    from shoal.storage.postgres_engine import PostgresEngine

    ddb = client(nodes[0])
    name = make_table(ddb)
    ddb.put_item(TableName=name, Item={"pk": {"S": "item-a"}, "marker": {"S": "held-item"}, "n": {"N": "1"}})
    with psycopg.connect(database) as conn:
        (key_a, stored), = conn.execute("SELECT k, v FROM shoal.items WHERE position(%s in v) > 0",
                                        (b'"held-item"',)).fetchall()
    engine = PostgresEngine(database)
    try:
        waiter = threading.Thread(target=lambda: client(nodes[1]).update_item(
            TableName=name, Key={"pk": {"S": "item-a"}}, UpdateExpression="SET n = n + :one",
            ExpressionAttributeValues={":one": {"N": "1"}}))
        with engine.write() as txn:
            assert txn.get("items", key_a) == stored  # item A is now locked by this transaction
            ddb.put_item(TableName=name, Item={"pk": {"S": "item-b"}})  # completes meanwhile
            assert client(nodes[1]).get_item(TableName=name, Key={"pk": {"S": "item-b"}},
                                             ConsistentRead=True)["Item"] == {"pk": {"S": "item-b"}}
            waiter.start()
            deadline = time.monotonic() + 30
            while _lock_waits(database) < 1:  # node two's update waits for A's lock
                assert time.monotonic() < deadline, "the update of the held item did not wait for its lock"
                time.sleep(0.02)
            assert waiter.is_alive()
            txn.put("items", key_a, stored.replace(b'{"N":"1"}', b'{"N":"10"}'))
        waiter.join(60)
        assert not waiter.is_alive()
    finally:
        engine.close()
    item = ddb.get_item(TableName=name, Key={"pk": {"S": "item-a"}}, ConsistentRead=True)["Item"]
    assert item["n"] == {"N": "11"}  # the update read what the transaction committed
    # Bad input on the same nodes: refused with DynamoDB's message, and they serve on.
    with pytest.raises(ClientError) as refused:
        ddb.put_item(TableName=name, Item={"other": {"S": "x"}}, ConditionExpression="attribute_not_exists(pk)")
    assert refused.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "One or more parameter values were invalid: Missing the key pk in the item"}
    assert client(nodes[1]).get_item(TableName=name, Key={"pk": {"S": "item-b"}})["Item"] == {"pk": {"S": "item-b"}}
