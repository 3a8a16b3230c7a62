"""Encryption at rest over PostgreSQL (issue 19): the sealed keyring lives in
the database, so every node uses the same data keys; items, index entries,
change records and table metadata are stored sealed and their keys
transformed, as in an encrypted data directory; ``shoal keys rotate
--storage postgresql://...`` re-wraps the keyring in the database.

Two in-process dispatchers over two engines on one database stand for two
nodes; the last test is the same end to end, with two ``shoal serve``
processes."""

from __future__ import annotations

import subprocess
import sys
import threading

import orjson
import psycopg
import pytest

from shoal.storage.encrypted import EncryptedEngine, open_encrypted_postgres
from shoal.storage.keyring import KeyringError
from shoal.storage.postgres_engine import PostgresEngine, shown_dsn
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.server.test_postgres_reads import NOT_FOUND, call, dispatcher

MASTER = bytes(range(32))
OTHER = bytes(range(1, 33))
NEEDLES = ("viewerzebra", "attrflamingo", "sortkeyokapi", "tablenarwhal", "colourquokka")


@pytest.fixture
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("sealed")


@pytest.fixture
def nodes(database):
    engines = [open_encrypted_postgres(database, MASTER) for _ in range(2)]
    yield [dispatcher(engine) for engine in engines], engines
    for engine in engines:
        engine.close()


def create_table(node, name: str) -> None:
    status, body = call(node, "CreateTable", {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "S"},
                                 {"AttributeName": "colour", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_colour",
                                    "KeySchema": [{"AttributeName": "colour", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "ALL"}}],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
    assert status == 200, body


def event(n: int) -> dict:
    return {"pk": {"S": "viewerzebra"}, "sk": {"S": f"sortkeyokapi{n:03d}"}, "colour": {"S": "colourquokka"},
            "attrflamingo": {"M": {"inner": {"S": f"viewerzebra played {n}"}}}}


def stored_rows(database) -> list[bytes]:
    """Every key and value of every table of the store, as stored."""
    found = []
    with psycopg.connect(database) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'shoal'").fetchall()]
        for table in tables:
            columns = [row[0] for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'shoal' "
                "AND table_name = %s AND data_type = 'bytea'", (table,)).fetchall()]
            for column in columns:
                found += [bytes(row[0]) for row in conn.execute(f'SELECT "{column}" FROM shoal."{table}"')]
    return found


def test_an_item_written_through_one_node_is_read_through_the_other_and_stored_sealed(nodes, database):
    (first, second), engines = nodes
    assert all(isinstance(engine, EncryptedEngine) for engine in engines)
    create_table(first, "tablenarwhal")
    for n in range(5):
        assert call(first, "PutItem", {"TableName": "tablenarwhal", "Item": event(n)})[0] == 200
    key = {"pk": {"S": "viewerzebra"}, "sk": {"S": "sortkeyokapi003"}}
    assert call(second, "GetItem", {"TableName": "tablenarwhal", "Key": key}) == (200, {"Item": event(3)})
    status, queried = call(second, "Query", {"TableName": "tablenarwhal", "KeyConditionExpression": "pk = :p",
                                             "ExpressionAttributeValues": {":p": {"S": "viewerzebra"}},
                                             "ScanIndexForward": False})
    assert status == 200 and queried["Items"] == [event(n) for n in range(4, -1, -1)]
    status, by_colour = call(second, "Query", {"TableName": "tablenarwhal", "IndexName": "by_colour",
                                               "KeyConditionExpression": "colour = :c",
                                               "ExpressionAttributeValues": {":c": {"S": "colourquokka"}}})
    assert status == 200 and len(by_colour["Items"]) == 5
    status, batch = call(second, "BatchGetItem", {"RequestItems": {"tablenarwhal": {"Keys": [
        key, {"pk": {"S": "viewerzebra"}, "sk": {"S": "sortkeyokapi009"}}]}}})
    assert status == 200 and batch["Responses"]["tablenarwhal"] == [event(3)]
    # Written by the second, read by the first (its catalog entry from its own cache).
    assert call(second, "UpdateItem", {"TableName": "tablenarwhal", "Key": key,
                                       "UpdateExpression": "SET attrflamingo = :v",
                                       "ExpressionAttributeValues": {":v": {"S": "viewerzebra again"}}})[0] == 200
    status, again = call(first, "GetItem", {"TableName": "tablenarwhal", "Key": key, "ConsistentRead": True})
    assert again["Item"]["attrflamingo"] == {"S": "viewerzebra again"}
    status, described = call(second, "DescribeTable", {"TableName": "tablenarwhal"})
    assert described["Table"]["SSEDescription"] == {"Status": "ENABLED", "SSEType": "AES256"}

    rows = stored_rows(database)
    assert len(rows) > 20
    for needle in NEEDLES:
        for form in (needle.encode(), needle.encode("utf-16-le"), needle.encode().hex().encode()):
            assert not any(form in row for row in rows), needle
    with psycopg.connect(database) as conn:
        sealed = [bytes(row[0]) for row in conn.execute("SELECT v FROM shoal.items")]
        logged = [bytes(row[0]) for row in conn.execute("SELECT v FROM shoal.changes")]
        partitions = {row[0] for row in conn.execute("SELECT h FROM shoal.items")}
    assert len(sealed) == 5 and all(value[:1] == b"\x01" for value in sealed)
    assert len(logged) >= 6 and all(value[:1] == b"\x01" for value in logged)  # 5 puts and an update at least
    assert len(partitions) == 1  # one partition key: one hash, from the transformed prefix


def test_get_many_through_the_encryption_reads_sealed_keys_in_one_statement(nodes):
    _, (first, second) = nodes
    keys = [b"item-%02d" % n for n in range(30)]
    with first.write() as txn:
        for key in keys[::3]:
            txn.put("items", key, b"value of " + key)
    expected = [b"value of " + key if n % 3 == 0 else None for n, key in enumerate(keys)]
    for snapshot in (False, True):
        with second.read(snapshot=snapshot) as txn:
            assert txn.get_many("items", keys) == expected
    with second.write() as txn:
        assert txn.get_many("items", keys[:4]) == expected[:4]


def test_health_names_postgresql_through_the_encryption(nodes):
    """GET /health of an encrypted node names its store (it said lmdb)."""
    from shoal.server.http import Request

    answer = nodes[0][0](Request("GET", "/health", {"host": "localhost"}, b"", ("127.0.0.1", 1), False))
    assert (answer.status, orjson.loads(answer.body)) == (200, {"status": "ok", "storage": "postgresql"})


def test_the_keyring_is_in_the_database_and_refused_without_its_key(nodes, database):
    (first, _), _ = nodes
    create_table(first, "tablenarwhal")
    with psycopg.connect(database) as conn:
        [(record,)] = conn.execute("SELECT record FROM shoal.keyring").fetchall()
    assert orjson.loads(bytes(record))["cipher"] == "AES-256-GCM"
    shown = shown_dsn(database)
    with pytest.raises(KeyringError) as wrong:
        open_encrypted_postgres(database, OTHER)
    assert str(wrong.value) == (f"the master key does not open the PostgreSQL store {shown}: "
                                "it is not the key this store was encrypted with")
    with pytest.raises(RuntimeError) as plain:
        PostgresEngine(database)
    assert str(plain.value) == ("the PostgreSQL schema 'shoal' is encrypted at rest: give its master key with "
                                "--master-key-file or SHOAL_MASTER_KEY")
    assert call(first, "DescribeTable", {"TableName": "tablenarwhal"})[0] == 200  # still serving


def test_a_master_key_for_a_plain_store_is_refused(database):
    engine = PostgresEngine(database)
    with engine.write() as txn:
        txn.put("meta", b"table/plain", b"{}")
    engine.close()
    with pytest.raises(KeyringError) as refused:
        open_encrypted_postgres(database, MASTER)
    assert str(refused.value) == (f"the PostgreSQL store {shown_dsn(database)} is not encrypted, but a master key "
                                  "was given: serve it without --master-key-file / SHOAL_MASTER_KEY (a store is "
                                  "encrypted when it is created)")
    engine = PostgresEngine(database)  # left plain
    with engine.read() as txn:
        assert txn.get("meta", b"table/plain") == b"{}"
    engine.close()


def test_nodes_starting_together_on_an_empty_store_agree_on_one_keyring(database):
    opened, errors = [], []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(open_encrypted_postgres(database, MASTER))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        with opened[0].write() as txn:
            txn.put("items", b"from-the-first", b"sealed")
        for engine in opened[1:]:
            with engine.read() as txn:
                assert txn.get("items", b"from-the-first") == b"sealed"
    finally:
        for engine in opened:
            engine.close()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM shoal.keyring").fetchone()[0] == 1


def test_conditional_writes_racing_from_two_nodes_have_one_winner_and_a_complete_log(nodes):
    (first, second), engines = nodes
    create_table(first, "race")
    from shoal.storage.engine import CHANGE_LOG, CHANGE_LOG_HEAD

    def change_log() -> tuple[int, list[int]]:
        with engines[0].read() as txn:
            head = txn.get("meta", CHANGE_LOG_HEAD)
            return (int.from_bytes(head[:8], "big") if head else 0,
                    [int.from_bytes(key, "big") for key, _ in txn.scan(CHANGE_LOG)])

    _, logged_before = change_log()
    racers = 8
    outcomes = [None] * racers
    start = threading.Barrier(racers)

    def race(number: int) -> None:
        node = dispatcher(engines[number % 2])  # a dispatcher per thread, as each worker has its own
        start.wait()
        for _ in range(20):  # as an SDK retries a 500
            status, body = call(node, "PutItem", {
                "TableName": "race", "Item": {"pk": {"S": "k"}, "sk": {"S": "s"}, "colour": {"S": str(number)}},
                "ConditionExpression": "attribute_not_exists(pk)"})
            if status != 500:
                break
        outcomes[number] = body.get("__type", "won").split("#")[-1]

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes.count("won") == 1, outcomes
    assert outcomes.count("ConditionalCheckFailedException") == racers - 1, outcomes
    for n in range(10):  # unconditional writes of other items from both nodes at once
        threads = [threading.Thread(target=call, args=(dispatcher(engines[m]), "PutItem", {
            "TableName": "race", "Item": {"pk": {"S": f"p{n}"}, "sk": {"S": str(m)}, "colour": {"S": "x"}}}))
            for m in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    status, scanned = call(second, "Scan", {"TableName": "race", "ConsistentRead": True})
    assert scanned["Count"] == 21
    head, positions = change_log()
    assert positions == list(range(positions[0], head + 1))  # no gap
    assert len(positions) == len(logged_before) + 21  # one record for each write, none lost


def test_keys_rotate_re_wraps_the_keyring_in_the_database(nodes, database, tmp_path, postgres_cluster):  # noqa: F811
    (first, second), _ = nodes
    create_table(first, "tablenarwhal")
    assert call(first, "PutItem", {"TableName": "tablenarwhal", "Item": event(1)})[0] == 200
    old_file, new_file, wrong_file = tmp_path / "old.key", tmp_path / "new.key", tmp_path / "wrong.key"
    old_file.write_text(MASTER.hex())
    new_file.write_text(OTHER.hex())
    wrong_file.write_text(bytes(32).hex())
    shown = shown_dsn(database)

    def rotate(current, new, storage=database) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shoal", "keys", "rotate", "--storage", storage,
                               "--master-key-file", str(current), "--new-master-key-file", str(new)],
                              capture_output=True, text=True, timeout=120)

    with psycopg.connect(database) as conn:
        before = conn.execute("SELECT record FROM shoal.keyring").fetchone()[0]
    refused = rotate(wrong_file, new_file)
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1, "", f"shoal: the master key does not open the PostgreSQL store {shown}: "
               "it is not the key this store was encrypted with\n")
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT record FROM shoal.keyring").fetchone()[0] == before  # unchanged
    done = rotate(old_file, new_file)
    assert (done.returncode, done.stdout, done.stderr) == (
        0, f"re-wrapped the data keys of {shown} under the new master key\n", "")

    key = {"pk": {"S": "viewerzebra"}, "sk": {"S": "sortkeyokapi001"}}
    assert call(second, "GetItem", {"TableName": "tablenarwhal", "Key": key}) == (200, {"Item": event(1)})
    with pytest.raises(KeyringError):
        open_encrypted_postgres(database, MASTER)  # the old key opens it no more
    rotated = open_encrypted_postgres(database, OTHER)
    try:
        node = dispatcher(rotated)
        assert call(node, "GetItem", {"TableName": "tablenarwhal", "Key": key}) == (200, {"Item": event(1)})
        assert call(node, "GetItem", {"TableName": "missing", "Key": key}) == NOT_FOUND
    finally:
        rotated.close()

    plain = postgres_cluster.create_database("plain")
    PostgresEngine(plain).close()
    not_encrypted = rotate(new_file, old_file, storage=plain)
    assert (not_encrypted.returncode, not_encrypted.stderr) == (
        1, f"shoal: the PostgreSQL store {shown_dsn(plain)} is not encrypted: it has no keys to rotate\n")
    bad_url = rotate(old_file, new_file, storage="mysql://shoal@127.0.0.1/db")
    assert (bad_url.returncode, bad_url.stderr) == (
        2, "shoal: --storage (or SHOAL_STORAGE) must be a postgresql://USER@HOST:PORT/DATABASE URL, "
           "not 'mysql://shoal@127.0.0.1/db'\n")


def test_two_served_nodes_share_the_keyring_and_survive_a_rotation(tmp_path_factory, database):
    from botocore.exceptions import ClientError

    from tests.conftest import make_client
    from tests.shoal_process import ShoalProcess

    keys = tmp_path_factory.mktemp("keys")
    (keys / "old.key").write_text(MASTER.hex())
    (keys / "new.key").write_text(OTHER.hex())

    def node(key: str) -> ShoalProcess:
        return ShoalProcess(tmp_path_factory.mktemp("node"), "--storage", database, "--workers", "2",
                            "--master-key-file", str(keys / key)).start()

    first, second = node("old.key"), node("old.key")
    try:
        writer, reader = make_client(first.url), make_client(second.url)
        writer.create_table(TableName="tablenarwhal", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}])
        item = {"pk": {"S": "viewerzebra"}, "sk": {"S": "sortkeyokapi001"}, "attrflamingo": {"S": "colourquokka"}}
        writer.put_item(TableName="tablenarwhal", Item=item)
        key = {"pk": item["pk"], "sk": item["sk"]}
        assert reader.get_item(TableName="tablenarwhal", Key=key)["Item"] == item
        rows = stored_rows(database)
        assert not any(needle.encode() in row for row in rows for needle in NEEDLES)
        rotated = subprocess.run([sys.executable, "-m", "shoal", "keys", "rotate", "--storage", database,
                                  "--master-key-file", str(keys / "old.key"),
                                  "--new-master-key-file", str(keys / "new.key")],
                                 capture_output=True, text=True, timeout=120)
        assert rotated.returncode == 0, rotated.stderr
        assert reader.get_item(TableName="tablenarwhal", Key=key)["Item"] == item  # serving on
        with pytest.raises(ClientError) as refused:
            reader.put_item(TableName="tablenarwhal", Item={"pk": {"S": "x"}})
        assert refused.value.response["Error"]["Message"] == \
            "One or more parameter values were invalid: Missing the key sk in the item"
    finally:
        first.stop()
        second.stop()
    third = node("new.key")
    try:
        assert make_client(third.url).get_item(TableName="tablenarwhal", Key=key)["Item"] == item
    finally:
        third.stop()
    old = subprocess.run([sys.executable, "-m", "shoal", "serve", "--port", "0", "--storage", database,
                          "--data-dir", str(tmp_path_factory.mktemp("node")),
                          "--master-key-file", str(keys / "old.key")], capture_output=True, text=True, timeout=60)
    assert (old.returncode, old.stderr) == (
        1, f"shoal: the master key does not open the PostgreSQL store {shown_dsn(database)}: "
           "it is not the key this store was encrypted with\n")
