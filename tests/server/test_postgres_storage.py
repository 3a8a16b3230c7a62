"""``shoal serve --storage postgresql://...`` end to end through boto3: one
node over a throwaway PostgreSQL (tests/postgres_cluster.py), a restart that
finds everything again, and two nodes on one database with requests
alternating between them and racing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_client, unique_name
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.shoal_process import ShoalProcess


@pytest.fixture(scope="module")
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("serve")


def start_node(tmp_path_factory, database, *args) -> ShoalProcess:
    return ShoalProcess(tmp_path_factory.mktemp("node"), "--storage", database, "--workers", "2", *args).start()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, database):
    """Two ``shoal serve`` processes (two workers each) on one database."""
    first = start_node(tmp_path_factory, database)
    second = start_node(tmp_path_factory, database)
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def clients(nodes):
    return [make_client(node.url) for node in nodes]


def indexed_table(ddb) -> str:
    name = unique_name("pg")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "colour", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_colour",
                                 "KeySchema": [{"AttributeName": "colour", "KeyType": "HASH"},
                                               {"AttributeName": "sk", "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return name


def item(pk: str, sk: int, colour: str, **more) -> dict:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}, "colour": {"S": colour},
            **{name: {"S": value} for name, value in more.items()}}


def stream_records(ds, arn) -> list[dict]:
    records = []
    for shard in ds.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = ds.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = ds.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def test_every_operation_over_postgresql_and_after_a_restart(tmp_path_factory, database, postgres_cluster):  # noqa: F811
    node = start_node(tmp_path_factory, database)
    assert "storage: postgresql://shoal@127.0.0.1:" in node.banner
    ddb = make_client(node.url)
    name = indexed_table(ddb)
    assert ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"

    ddb.put_item(TableName=name, Item=item("a", 1, "red", note="first"))
    assert ddb.get_item(TableName=name, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"] == \
        item("a", 1, "red", note="first")
    ddb.update_item(TableName=name, Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
                    UpdateExpression="SET note = :n", ExpressionAttributeValues={":n": {"S": "second"}})
    with pytest.raises(ClientError) as failed:
        ddb.update_item(TableName=name, Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
                        UpdateExpression="SET note = :n", ConditionExpression="note = :old",
                        ExpressionAttributeValues={":n": {"S": "third"}, ":old": {"S": "first"}})
    assert failed.value.response["Error"] == {"Code": "ConditionalCheckFailedException",
                                              "Message": "The conditional request failed"}

    ddb.batch_write_item(RequestItems={name: [
        {"PutRequest": {"Item": item("b", n, "blue" if n % 2 else "red")}} for n in range(1, 21)]})
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": name, "Item": item("c", 1, "green"),
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Delete": {"TableName": name, "Key": {"pk": {"S": "b"}, "sk": {"N": "20"}}}},
    ])
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": item("c", 1, "never"),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": name, "Item": item("d", 1, "never")}},
        ])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]

    query = ddb.query(TableName=name, KeyConditionExpression="pk = :p AND sk BETWEEN :lo AND :hi",
                      ExpressionAttributeValues={":p": {"S": "b"}, ":lo": {"N": "5"}, ":hi": {"N": "9"}},
                      ScanIndexForward=False)
    assert [i["sk"]["N"] for i in query["Items"]] == ["9", "8", "7", "6", "5"]
    by_colour = ddb.query(TableName=name, IndexName="by_colour", KeyConditionExpression="colour = :c",
                          ExpressionAttributeValues={":c": {"S": "red"}})
    assert [(i["pk"]["S"], i["sk"]["N"]) for i in by_colour["Items"]] == \
        [("a", "1")] + [("b", str(n)) for n in range(2, 20, 2)]
    scanned = ddb.scan(TableName=name)["Items"]
    expected = sorted([("a", 1), ("c", 1)] + [("b", n) for n in range(1, 20)])
    assert sorted((i["pk"]["S"], int(i["sk"]["N"])) for i in scanned) == expected

    arn = ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    records = stream_records(make_client(node.url, "dynamodbstreams"), arn)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"] + ["INSERT"] * 20 + ["INSERT", "REMOVE"]
    assert records[1]["dynamodb"]["NewImage"]["note"] == {"S": "second"}

    # Bad input is refused, and the node goes on serving.
    with pytest.raises(ClientError) as refused:
        ddb.put_item(TableName=name, Item={"pk": {"S": "x"}})
    assert refused.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "One or more parameter values were invalid: Missing the key sk in the item"}
    assert ddb.get_item(TableName=name, Key={"pk": {"S": "c"}, "sk": {"N": "1"}})["Item"] == item("c", 1, "green")

    node.stop()
    # A new node, with a data directory of its own: everything is in the database.
    node = start_node(tmp_path_factory, database)
    try:
        ddb = make_client(node.url)
        assert sorted((i["pk"]["S"], int(i["sk"]["N"])) for i in ddb.scan(TableName=name)["Items"]) == expected
        assert ddb.get_item(TableName=name, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"] == \
            item("a", 1, "red", note="second")
        assert ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"][0]["IndexName"] == "by_colour"
        assert len(stream_records(make_client(node.url, "dynamodbstreams"), arn)) == len(records)
    finally:
        node.stop()


def test_two_nodes_alternating_serve_one_truth(clients):
    first, second = clients
    name = indexed_table(first)
    assert second.describe_table(TableName=name)["Table"]["TableName"] == name
    for n in range(1, 11):
        writer, reader = (first, second) if n % 2 else (second, first)
        writer.put_item(TableName=name, Item=item("k", n, "red"))
        assert reader.get_item(TableName=name, Key={"pk": {"S": "k"}, "sk": {"N": str(n)}},
                               ConsistentRead=True)["Item"] == item("k", n, "red")
    for n in range(10):
        (first, second)[n % 2].update_item(TableName=name, Key={"pk": {"S": "counter"}, "sk": {"N": "0"}},
                                           UpdateExpression="ADD hits :one",
                                           ExpressionAttributeValues={":one": {"N": "1"}})
    assert second.get_item(TableName=name, Key={"pk": {"S": "counter"}, "sk": {"N": "0"}})["Item"]["hits"] == \
        {"N": "10"}
    listed = first.query(TableName=name, KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": "k"}})["Items"]
    assert [i["sk"]["N"] for i in listed] == [str(n) for n in range(1, 11)]
    second.delete_table(TableName=name)
    with pytest.raises(ClientError) as gone:
        first.describe_table(TableName=name)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_table_deleted_through_one_node_is_gone_on_the_other_within_the_bound(clients):
    """The other node's workers answer GetItem from their cached catalog
    entry, but never later than CATALOG_TRUST_S after the deletion."""
    from shoal.storage.postgres_engine import CATALOG_TRUST_S

    first, second = clients
    name = unique_name("gone")
    first.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    first.put_item(TableName=name, Item={"pk": {"S": "a"}})
    for _ in range(4):  # both workers of the second node have the entry
        assert second.get_item(TableName=name, Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}
    first.delete_table(TableName=name)
    time.sleep(CATALOG_TRUST_S)
    for _ in range(4):
        with pytest.raises(ClientError) as gone:
            second.get_item(TableName=name, Key={"pk": {"S": "a"}})
        assert gone.value.response["Error"] == {"Code": "ResourceNotFoundException",
                                                "Message": "Requested resource not found"}


def test_racing_conditional_creates_from_two_nodes_one_wins(nodes):
    name = unique_name("race")
    setup = make_client(nodes[0].url)
    setup.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    racers = 12
    for key in ("k1", "k2", "k3"):
        outcomes = [None] * racers
        start = threading.Barrier(racers)

        def race(number: int) -> None:
            ddb = make_client(nodes[number % 2].url)  # a client (and connection) of its own per racer
            start.wait()
            try:
                ddb.put_item(TableName=name, Item={"pk": {"S": key}, "by": {"N": str(number)}},
                             ConditionExpression="attribute_not_exists(pk)")
                outcomes[number] = "won"
            except ClientError as exc:
                outcomes[number] = exc.response["Error"]["Code"]

        threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert outcomes.count("won") == 1, outcomes
        assert outcomes.count("ConditionalCheckFailedException") == racers - 1, outcomes
        winner = outcomes.index("won")
        stored = make_client(nodes[1 - winner % 2].url).get_item(TableName=name, Key={"pk": {"S": key}})
        assert stored["Item"]["by"] == {"N": str(winner)}


def health(node) -> tuple[int, dict]:
    """GET /health of a node: (status, body)."""
    try:
        with urllib.request.urlopen(node.url + "/health", timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_database_outage_is_a_retryable_500_and_service_resumes(nodes, clients, database,
                                                                  postgres_cluster):  # noqa: F811
    ddb = clients[0]
    assert health(nodes[0]) == (200, {"status": "ok", "storage": "postgresql"})
    name = unique_name("outage")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    ddb.put_item(TableName=name, Item={"pk": {"S": "kept"}})
    with psycopg.connect(database, autocommit=True) as admin:  # idle sessions ended: replaced unseen
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert ddb.get_item(TableName=name, Key={"pk": {"S": "kept"}})["Item"] == {"pk": {"S": "kept"}}
    postgres_cluster.pause()
    try:
        for call in (lambda: ddb.get_item(TableName=name, Key={"pk": {"S": "kept"}}),
                     lambda: ddb.put_item(TableName=name, Item={"pk": {"S": "during"}})):
            with pytest.raises(ClientError) as failed:
                call()
            assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
            assert failed.value.response["Error"] == {"Code": "InternalServerError",
                                                      "Message": "Internal server error"}
        status, body = health(nodes[0])  # a load balancer takes the node out
        assert (status, body["status"], body["storage"]) == (503, "unavailable", "postgresql")
    finally:
        postgres_cluster.resume()
    deadline = time.monotonic() + 30
    while True:  # as an SDK retries: the node reconnects by itself, without a restart
        try:
            ddb.put_item(TableName=name, Item={"pk": {"S": "after"}})
            break
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InternalServerError"
            assert time.monotonic() < deadline, "the node did not reconnect"
            time.sleep(0.2)
    assert sorted(i["pk"]["S"] for i in ddb.scan(TableName=name, ConsistentRead=True)["Items"]) == ["after", "kept"]
    deadline = time.monotonic() + 30
    while health(nodes[0])[0] != 200:  # and back in (each of its pooled connections is replaced as it is used)
        assert time.monotonic() < deadline, health(nodes[0])
        time.sleep(0.2)
    for _ in range(8):  # every worker of the node, not only the one that answered first
        assert health(nodes[0]) == (200, {"status": "ok", "storage": "postgresql"})


def test_start_up_refusals(tmp_path, postgres_cluster):  # noqa: F811
    def serve(*args) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shoal", "serve", "--port", "0", *args],
                              capture_output=True, text=True, timeout=60)

    wrong = serve("--data-dir", str(tmp_path / "node"), "--storage", "mysql://shoal@127.0.0.1/db")
    assert (wrong.returncode, wrong.stderr) == (2, "shoal: --storage (or SHOAL_STORAGE) must be a "
                                                "postgresql://USER@HOST:PORT/DATABASE URL, not 'mysql://shoal@127.0.0.1/db'\n")
    assert not (tmp_path / "node").exists()
    lmdb_dir = tmp_path / "lmdb"
    from shoal.storage.datadir import open_data_dir

    open_data_dir(lmdb_dir).close()
    url = postgres_cluster.dsn("postgres")
    refused = serve("--data-dir", str(lmdb_dir), "--storage", url)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"shoal: data directory {lmdb_dir} holds a Shoal LMDB store, whose tables --storage would leave behind; "
        "give a --data-dir for this node's own files only (credentials, audit log, certificates), or serve "
        "without --storage\n")
    missing = serve("--data-dir", str(tmp_path / "node"), "--storage",
                    f"postgresql://shoal@127.0.0.1:{postgres_cluster.port}/no_such_database")
    assert missing.returncode == 1
    assert missing.stderr == (
        f"shoal: cannot connect to PostgreSQL at postgresql://shoal@127.0.0.1:{postgres_cluster.port}/"
        f"no_such_database: connection failed: connection to server at \"127.0.0.1\", port {postgres_cluster.port} "
        "failed: FATAL: database \"no_such_database\" does not exist\n")
