"""``shoal migrate``: a store moved from a data directory to PostgreSQL and
back, served by a real ``shoal serve`` on each side and read through boto3;
an interrupted migration (kill -9) resumed; the refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from tests.conftest import make_client
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.shoal_process import ShoalProcess

TABLE = "events"


def migrate(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shoal", "migrate", *args], capture_output=True, text=True,
                          timeout=timeout)


def fill(ddb, count: int) -> None:
    """The viewer-events table: a GSI on content_id + ts, a stream, time to live, a tag."""
    ddb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("user_id", "S"), ("ts", "N"), ("content_id", "S"))],
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_content", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                               {"AttributeName": "ts", "KeyType": "RANGE"}]}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        Tags=[{"Key": "team", "Value": "playback"}])
    ddb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={"Enabled": True,
                                                                      "AttributeName": "expires_at"})
    for first in range(0, count, 25):  # 25 a request (BatchWriteItem's most)
        assert ddb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": {
            "user_id": {"S": f"u{n % 17:08d}"}, "ts": {"N": str(1_700_000_000_000 + n)},
            "content_id": {"S": f"c{n % 5:06d}"}, "event_type": {"S": "play"},
            "expires_at": {"N": str(4_000_000_000 + n)}}}} for n in range(first, min(first + 25, count))]}
        )["UnprocessedItems"] == {}


def snapshot(ddb) -> dict:
    """What a user sees of the store: the table, its items, index, stream, settings."""
    table = ddb.describe_table(TableName=TABLE)["Table"]
    items = []
    request = {"TableName": TABLE, "ConsistentRead": True}
    while True:
        page = ddb.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    by_content = ddb.query(TableName=TABLE, IndexName="by_content", KeyConditionExpression="content_id = :c",
                           ExpressionAttributeValues={":c": {"S": "c000003"}})["Items"]
    stream = ddb.describe_table(TableName=TABLE)["Table"].get("LatestStreamArn")
    return {
        "table": {k: table[k] for k in ("KeySchema", "AttributeDefinitions", "ItemCount", "TableArn",
                                        "StreamSpecification", "LatestStreamArn", "CreationDateTime")},
        "index": [(g["IndexName"], g["KeySchema"], g["IndexStatus"]) for g in table["GlobalSecondaryIndexes"]],
        "items": sorted(orjson.dumps(i, option=orjson.OPT_SORT_KEYS) for i in items),
        "by_content": by_content,
        "ttl": ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"],
        "tags": ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"],
        "stream_records": _stream_count(make_client(ddb.meta.endpoint_url, "dynamodbstreams"), stream),
    }


def _stream_count(streams, arn: str) -> int:
    count = 0
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            count += len(page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return count


def served(data_dir, *args) -> ShoalProcess:
    return ShoalProcess(data_dir, "--workers", "1", *args).start()


def assert_served_as(migration, node_dir, database: str, expected: dict) -> None:
    """The migration succeeded, and a node over ``database`` shows ``expected``."""
    assert migration.returncode == 0, migration.stderr
    node = served(node_dir, "--storage", database)
    try:
        assert snapshot(make_client(node.url)) == expected
    finally:
        node.stop()


def wait_for_streams(ddb, expected: int) -> None:
    """Stream records are materialized in the background: wait until all are."""
    deadline = time.monotonic() + 30
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    streams = make_client(ddb.meta.endpoint_url, "dynamodbstreams")
    while _stream_count(streams, arn) < expected:
        assert time.monotonic() < deadline, "stream records not materialized"
        time.sleep(0.2)


def test_a_store_moves_to_postgresql_and_back(tmp_path, postgres_cluster):  # noqa: F811
    source = tmp_path / "source"
    node = served(source)
    ddb = make_client(node.url)
    fill(ddb, 120)
    wait_for_streams(ddb, 120)
    before = snapshot(ddb)
    assert before["stream_records"] == 120 and len(before["items"]) == 120
    # A served data directory cannot be migrated.
    database = postgres_cluster.create_database("migrate")
    busy = migrate("--from", str(source), "--to", database)
    assert busy.returncode == 1 and "is in use by" in busy.stderr and "stop the server first" in busy.stderr
    node.stop()

    moved = migrate("--from", str(source), "--to", database, "--chunk", "50")
    assert "keys copied from" in moved.stderr
    assert_served_as(moved, tmp_path / "node", database, before)

    back = tmp_path / "back"
    returned = migrate("--from", database, "--to", str(back))
    assert returned.returncode == 0, returned.stderr
    node = served(back)
    try:
        again = make_client(node.url)
        assert snapshot(again) == before
        again.put_item(TableName=TABLE, Item={"user_id": {"S": "u99999999"}, "ts": {"N": "1"},
                                              "content_id": {"S": "c000003"}})  # and it serves writes
        assert len(again.query(TableName=TABLE, IndexName="by_content", KeyConditionExpression="content_id = :c",
                               ExpressionAttributeValues={":c": {"S": "c000003"}})["Items"]) == 25
    finally:
        node.stop()

    # Refusals: a destination that is not empty, a second run into a complete one, the same store twice.
    other = tmp_path / "other"
    served(other).stop()
    refused = migrate("--from", str(other), "--to", database)
    assert refused.returncode == 1
    assert f"the destination holds a migration from {source}, not from {other}" in refused.stderr
    complete = migrate("--from", str(source), "--to", database)
    assert complete.returncode == 1
    assert "the destination already holds a complete migration" in complete.stderr
    full = migrate("--from", str(other), "--to", str(source))
    assert full.returncode == 1 and "the destination is not empty" in full.stderr
    same = migrate("--from", str(source), "--to", str(source))
    assert same.returncode == 1
    missing = migrate("--from", str(tmp_path / "nowhere"), "--to", str(tmp_path / "new"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_an_interrupted_migration_resumes_where_it_stopped(tmp_path, postgres_cluster):  # noqa: F811
    from shoal.migrate_cli import STATE_KEY
    from shoal.storage.postgres_engine import PostgresEngine

    source = tmp_path / "source"
    node = served(source)
    ddb = make_client(node.url)
    fill(ddb, 1500)
    wait_for_streams(ddb, 1500)
    before = snapshot(ddb)
    node.stop()
    database = postgres_cluster.create_database("resume")
    process = subprocess.Popen([sys.executable, "-m", "shoal", "migrate", "--from", str(source), "--to", database,
                                "--chunk", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watcher = PostgresEngine(database)
    try:
        deadline = time.monotonic() + 60
        while True:  # kill it once part of the items are in
            with watcher.read() as txn:
                raw = txn.get("meta", STATE_KEY)
            state = orjson.loads(raw) if raw else None
            if state and state["copied"].get("items", 0) >= 200:
                break
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        with watcher.read() as txn:
            state = orjson.loads(txn.get("meta", STATE_KEY))
        assert state["space"] is not None  # not finished
    finally:
        watcher.close()
    resumed = migrate("--from", str(source), "--to", database, "--chunk", "500")
    assert "resuming at" in resumed.stderr
    assert_served_as(resumed, tmp_path / "node", database, before)


def test_an_encrypted_data_directory_stays_where_it_is(tmp_path, postgres_cluster):  # noqa: F811
    key_file = tmp_path / "master.key"
    key_file.write_text(os.urandom(32).hex())
    served(tmp_path / "secret", "--master-key-file", str(key_file)).stop()
    refused = migrate("--from", str(tmp_path / "secret"), "--to", postgres_cluster.create_database("enc"))
    assert refused.returncode == 1
    assert "shoal migrate moves unencrypted stores only" in refused.stderr


