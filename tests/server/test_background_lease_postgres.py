"""Background work over PostgreSQL runs once for the store, not once per node
(issue 19, point 2): the node holding the lease ``background/lease`` sweeps
expired items, backfills indexes and materializes streams; the other node
waits while the holder lives, and takes over when the holder is killed
(kill -9) mid-load, once the lease's term (here 4 s) has run out; no write
acknowledged by the surviving node is lost."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.config import Config

from shoal.server.background import LEASE_KEY, holder_pid
from shoal.storage.postgres_engine import PostgresEngine
from tests.conftest import unique_name, wait_for
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.shoal_process import ShoalProcess

ENV = {"SHOAL_BACKGROUND_LEASE_S": "4", "SHOAL_TTL_SWEEP_INTERVAL_S": "0.5"}


@pytest.fixture(scope="module")
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("lease")


@pytest.fixture
def store(database):
    engine = PostgresEngine(database, sync=False)
    yield engine
    engine.close()


def client(node):
    return boto3.client("dynamodb", endpoint_url=node.url, region_name="us-east-1",
                        aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 8, "mode": "standard"}, read_timeout=60))


def lease_holder(store) -> int | None:
    with store.read() as txn:
        raw = txn.get("meta", LEASE_KEY)
    return None if raw is None else holder_pid(raw)


def test_one_node_does_the_background_work_and_the_other_takes_over_when_it_is_killed(tmp_path, database, store):
    first = ShoalProcess(tmp_path / "a", "--storage", database, "--workers", "1", env=ENV).start()
    second = None
    try:
        wait_for(lambda: lease_holder(store) == first.proc.pid, 15, "the first node holds the lease")
        second = ShoalProcess(tmp_path / "b", "--storage", database, "--workers", "1", env=ENV).start()
        ddb = client(second)
        table = unique_name("lease")
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "OLD_IMAGE"})
        ddb.update_time_to_live(TableName=table,
                                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
        past = str(int(time.time()) - 3600)
        for n in range(20):
            ddb.put_item(TableName=table, Item={"pk": {"S": f"old-{n}"}, "expires": {"N": past},
                                                "title": {"S": f"t{n % 4}"}})
        # swept by the holder: every expired item deleted once, one REMOVE record each
        wait_for(lambda: ddb.scan(TableName=table, Select="COUNT")["Count"] == 0, 60, "the expired items swept")
        time.sleep(5)  # more than the lease's term: the second node, alive all along, never took it
        assert lease_holder(store) == first.proc.pid
        streams = boto3.client("dynamodbstreams", endpoint_url=second.url, region_name="us-east-1",
                               aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret")
        arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]

        def removes():
            found = []
            for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                while iterator:
                    page = streams.get_records(ShardIterator=iterator, Limit=1000)
                    found += [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"] if r["eventName"] == "REMOVE"]
                    if not page["Records"]:
                        break
                    iterator = page.get("NextShardIterator")
            return found

        wait_for(lambda: len(removes()) >= 20, 30, "the sweep's REMOVE records")
        assert sorted(removes()) == sorted(f"old-{n}" for n in range(20))

        # mid-load, the holder is killed; the survivor's acknowledged writes all stay
        acknowledged, stop = [], threading.Event()

        def load():
            n = 0
            while not stop.is_set():
                ddb.put_item(TableName=table, Item={"pk": {"S": f"live-{n}"}, "title": {"S": f"t{n % 4}"}})
                acknowledged.append(f"live-{n}")
                n += 1

        writer = threading.Thread(target=load)
        writer.start()
        time.sleep(0.5)
        first.kill()
        # work only the holder does: a new index's backfill, and the sweep of newly expired items
        ddb.update_table(TableName=table, AttributeDefinitions=[{"AttributeName": "title", "AttributeType": "S"}],
                         GlobalSecondaryIndexUpdates=[{"Create": {
                             "IndexName": "by-title", "KeySchema": [{"AttributeName": "title", "KeyType": "HASH"}],
                             "Projection": {"ProjectionType": "KEYS_ONLY"}}}])
        ddb.put_item(TableName=table, Item={"pk": {"S": "late"}, "expires": {"N": past}})
        wait_for(lambda: lease_holder(store) == second.proc.pid, 30, "the second node took the lease over")
        wait_for(lambda: ddb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"][0]["IndexStatus"]
                 == "ACTIVE", 60, "the index backfilled by the new holder")
        wait_for(lambda: "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "late"}}), 60,
                 "the item expired after the kill swept")
        stop.set()
        writer.join(60)
        assert not writer.is_alive() and len(acknowledged) > 0
        for start in range(0, len(acknowledged), 100):
            keys = [{"pk": {"S": pk}} for pk in acknowledged[start:start + 100]]
            got = 0
            while keys:
                page = ddb.batch_get_item(RequestItems={table: {"Keys": keys}})
                got += len(page["Responses"][table])
                keys = page.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            assert got == len(acknowledged[start:start + 100])
        backfilled = ddb.query(TableName=table, IndexName="by-title", KeyConditionExpression="title = :t",
                               ExpressionAttributeValues={":t": {"S": "t1"}}, Select="COUNT")["Count"]
        assert backfilled == sum(1 for pk in acknowledged if int(pk.split("-")[1]) % 4 == 1)
    finally:
        first.stop()
        if second is not None:
            second.stop()
