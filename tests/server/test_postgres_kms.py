"""KMS key states over PostgreSQL (issues 18 and 19): ``shoal keys
kms-key-state KEY STATE --storage postgresql://...`` marks a key in the store
(meta ``kms/key-states``), and every node serving it with ``--region`` sees
it: a table encrypted with that key is INACCESSIBLE_ENCRYPTION_CREDENTIALS,
its item requests refused as over a data directory
(``test_global_tables_kms``), until the key is marked Enabled again.  Two
nodes serve one database: the table is made through one, the other shows the
mark.  Also: a store encrypted at rest keeps the record sealed and needs its
master key to be marked.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import make_client
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.server.item_requests import item_requests
from tests.server.test_global_tables import _wait_table_status
from tests.server.test_global_tables_kms import ACCOUNT, INACCESSIBLE, _kms_message, _refused
from tests.shoal_process import ShoalProcess, free_port

REGION = "eu-west-1"


def shoal(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shoal", *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


def mark(database: str, key: str, state: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return shoal("keys", "kms-key-state", key, state, "--storage", database, *extra, env=env)


def node(tmp_path_factory, database: str, *extra: str) -> ShoalProcess:
    return ShoalProcess(tmp_path_factory.mktemp("node"), "--storage", database, "--region", REGION,
                        "--workers", "2", "--no-metrics", *extra, port=free_port()).start()


@pytest.fixture(scope="module")
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("kms")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, database):
    """Two nodes serving ``database`` as one region, and a client of each."""
    started = [node(tmp_path_factory, database) for _ in range(2)]
    yield [make_client(n.url, region=REGION) for n in started]
    for n in started:
        assert n.stop() == 0


def _table(client, name: str, key: str) -> None:
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key},
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    _wait_table_status(client, name, "ACTIVE")
    client.put_item(TableName=name, Item={"pk": {"S": "a"}})


def _stored_states(database: str):
    """The raw meta record of the store's key states (None if never written)."""
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT v FROM shoal.meta WHERE k = %s", (b"kms/key-states",)).fetchone()
    return None if row is None else bytes(row[0])


def test_a_key_marked_in_the_store_makes_its_table_inaccessible_on_every_node_until_enabled(nodes, database):
    first, second = nodes
    name, other = "pg_kms_orders", "pg_kms_other"
    _table(first, name, "orders-key")
    _table(first, other, "other-key")
    arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/orders-key"
    for state in ("Disabled", "PendingDeletion"):
        done = mark(database, arn, state)
        assert (done.returncode, done.stderr) == (0, ""), done
        assert done.stdout.startswith(f"KMS key {arn} is {state} in postgresql://"), done.stdout
        try:
            for client in (second, first):
                table = _wait_table_status(client, name, INACCESSIBLE)
                assert table["SSEDescription"]["KMSMasterKeyArn"] == arn
                assert "InaccessibleEncryptionDateTime" in table["SSEDescription"]
                expected = _kms_message(state, arn)
                for label, call in item_requests(client, name).items():
                    kind, message, status = _refused(call)
                    assert (kind, status) == ("ValidationException", 400), label
                    assert expected.fullmatch(message), (label, message)
                assert client.get_item(TableName=other, Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}
        finally:
            done = mark(database, "orders-key", "Enabled")
            assert done.returncode == 0, done
        for client in (second, first):
            table = _wait_table_status(client, name, "ACTIVE")
            assert "InaccessibleEncryptionDateTime" not in table["SSEDescription"]
        assert second.scan(TableName=name, ConsistentRead=True)["Items"] == [{"pk": {"S": "a"}}]  # nothing written
    second.put_item(TableName=name, Item={"pk": {"S": "b"}})
    assert first.get_item(TableName=name, Key={"pk": {"S": "b"}}, ConsistentRead=True)["Item"] == {"pk": {"S": "b"}}
    assert _stored_states(database) == b'{"format": 1, "keys": {}}\n'  # Enabled is not kept


def test_a_key_marked_in_the_store_is_refused_by_create_table(nodes, database):
    client = nodes[1]
    done = mark(database, "alias/retired", "Deleted")
    assert done.returncode == 0, done
    try:
        kind, message, status = _refused(lambda: _table(client, "pg_kms_refused", "alias/retired"))
        assert (kind, status) == ("ValidationException", 400), message
        assert "alias/retired" in message, message
        assert "pg_kms_refused" not in client.list_tables()["TableNames"]
    finally:
        assert mark(database, "alias/retired", "Enabled").returncode == 0


def test_an_encrypted_store_keeps_the_states_sealed_and_needs_its_key(postgres_cluster, tmp_path_factory,  # noqa: F811
                                                                      tmp_path):
    from shoal.storage.keyring import generate_master_key_text

    database = postgres_cluster.create_database("kms_sealed")
    key_file = tmp_path / "master.key"
    key_file.write_text(generate_master_key_text() + "\n")
    served = node(tmp_path_factory, database, "--master-key-file", str(key_file))
    try:
        client = make_client(served.url, region=REGION)
        _table(client, "sealed", "sealed-key")
        refused = mark(database, "sealed-key", "Disabled")
        assert refused.returncode == 1 and refused.stderr.startswith("shoal: ") and "encrypted" in refused.stderr, \
            refused
        assert client.describe_table(TableName="sealed")["Table"]["TableStatus"] == "ACTIVE"
        done = mark(database, "sealed-key", "Disabled", env={"SHOAL_MASTER_KEY_FILE": str(key_file)})
        assert done.returncode == 0, done
        _wait_table_status(client, "sealed", INACCESSIBLE)
        with psycopg.connect(database) as conn:  # the record is sealed with the rest of meta
            assert conn.execute("SELECT count(*) FROM shoal.meta WHERE position(%s::bytea in v) > 0 "
                                "OR position(%s::bytea in k) > 0", (b"sealed-key", b"kms/")).fetchone() == (0,)
        assert mark(database, "sealed-key", "Enabled", "--master-key-file", str(key_file)).returncode == 0
        _wait_table_status(client, "sealed", "ACTIVE")
    finally:
        assert served.stop() == 0
