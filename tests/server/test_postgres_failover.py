"""High availability over PostgreSQL (issue 19): a Shoal node whose
``--storage`` names a primary and its synchronous standby
(``target_session_attrs=read-write``) goes on serving when the primary is
killed mid-load and the standby promoted, without a restart; requests in
between get DynamoDB's retryable 500, never a wrong answer, and no
acknowledged write is lost; ``GET /health`` says 503 while no primary is
reachable."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from tests.conftest import make_client, unique_name
from tests.postgres_cluster import REPLICATION, SUPERUSER, PostgresCluster, make_synchronous, postgres_bin_dir
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (installs PostgreSQL when missing)
from tests.shoal_process import ShoalProcess


@pytest.fixture
def pair(postgres_cluster):  # noqa: F811 (only to have PostgreSQL installed)
    primary = PostgresCluster(postgres_bin_dir(), REPLICATION).start()
    standby = None
    try:
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "ha"')
        standby = PostgresCluster.standby_of(primary)
        make_synchronous(primary)
        deadline = time.monotonic() + 60
        while True:  # the standby streams, synchronously
            with psycopg.connect(primary.dsn(), autocommit=True) as conn:
                states = [row[0] for row in conn.execute("SELECT sync_state FROM pg_stat_replication")]
            if states == ["sync"]:
                break
            assert time.monotonic() < deadline, f"the standby is not synchronous: {states}\n{standby.log()}"
            time.sleep(0.2)
        yield primary, standby
    finally:
        primary.stop()
        if standby is not None:
            standby.stop()


def health(node) -> int:
    try:
        with urllib.request.urlopen(node.url + "/health", timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        json.loads(error.read())  # an answer, with its body
        return error.code


def test_the_standby_takes_over_and_no_acknowledged_write_is_lost(pair, tmp_path):
    primary, standby = pair
    dsn = (f"postgresql://{SUPERUSER}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/ha"
           "?target_session_attrs=read-write")
    node = ShoalProcess(tmp_path / "node", "--storage", dsn, "--workers", "1").start()
    try:
        ddb = make_client(node.url)
        table = unique_name("ha")
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        acknowledged: list[str] = []
        refused: set[str] = set()
        stop = threading.Event()

        def writer() -> None:  # each write sent again until acknowledged, as an SDK retries
            client = make_client(node.url)
            n = 0
            while not stop.is_set():
                key = f"e{n:05d}"
                try:
                    client.put_item(TableName=table, Item={"pk": {"S": key}, "n": {"N": str(n)}})
                    acknowledged.append(key)
                    n += 1
                except ClientError as exc:
                    refused.add(exc.response["Error"]["Code"])
                    time.sleep(0.1)
                except (EndpointConnectionError, ReadTimeoutError):
                    time.sleep(0.1)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while len(acknowledged) < 100:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            primary.kill()  # mid-load, as a crash would
            before = len(acknowledged)
            time.sleep(1)
            assert health(node) == 503  # no primary: out of the load balancer
            standby.promote()
            deadline = time.monotonic() + 60
            while len(acknowledged) < before + 100:  # the node finds the new primary by itself
                assert time.monotonic() < deadline, f"no writes after the failover; refused: {refused}"
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(60)
        assert refused <= {"InternalServerError"}  # the retryable 500, nothing else
        assert health(node) == 200
        found = set()
        request = {"TableName": table, "ConsistentRead": True}
        while True:
            page = ddb.scan(**request)
            found.update(item["pk"]["S"] for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        assert set(acknowledged) <= found, sorted(set(acknowledged) - found)[:10]
    finally:
        node.stop()
