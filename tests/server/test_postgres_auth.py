"""Authentication and IAM across nodes over PostgreSQL (issue 19): two ``shoal
serve --auth sigv4 --storage postgresql://...`` nodes, each with its own node
directory, over one database, answer as one node would.

The store's secret-encryption key and its root access key are the store's,
not a node's: both nodes write the same ``root-credentials``; a user, its key
and its policies made with ``shoal iam --storage`` sign requests that both
nodes accept; a policy removed is enforced by both within the IAM cache's
time; a wrong secret is refused by both; temporary credentials of an
AssumeRole answered by one node work on the other.  On a store encrypted at
rest the key is sealed in the database like the rest.  ``shoal triggers
--storage`` configures a trigger that the nodes deliver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.shoal_process import ShoalProcess, root_credentials

NO_RETRY = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)
ACCOUNT = "000000000000"
#: The nodes' IAM cache time (SHOAL_IAM_CACHE_TTL, shoal.auth.gate; 5 s by
#: default): how late a node may see a change made elsewhere.
CACHE_TTL_S = 1.0
NODE_ENV = {"SHOAL_IAM_CACHE_TTL": str(CACHE_TTL_S), "SHOAL_TRIGGER_BACKOFF_S": "0.2",
            "SHOAL_TRIGGER_BACKOFF_MAX_S": "1.0", "SHOAL_TRIGGER_LEASE_S": "3"}


def client(url, key, secret, service="dynamodb", token=None):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token, config=NO_RETRY)


def shoal(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shoal", *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


def error_code(call, **kwargs) -> str:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("auth")


def start_together(*nodes: ShoalProcess) -> None:
    """Start ``nodes`` at the same time (each start-up makes the store's keys
    if it finds none: they race); raises the first start-up's failure."""
    failures = []

    def start(node):
        try:
            node.start(timeout=60)
        except Exception as exc:  # noqa: BLE001 (re-raised below)
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, database):
    """Two nodes started together over the new ``database``, each with a
    fresh node directory."""
    started = [ShoalProcess(tmp_path_factory.mktemp(f"node-{name}"), "--storage", database, "--auth", "sigv4",
                            "--workers", "1", env=NODE_ENV) for name in ("a", "b")]
    try:
        start_together(*started)
        yield started
    finally:
        for node in started:
            node.stop()


def iam(database, *args):
    out = shoal("iam", *args, "--storage", database)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


@pytest.fixture(scope="module")
def store(database, nodes):
    """The store's IAM data opened in this process, as ``shoal iam --storage``
    opens it (quicker than a command per change)."""
    from shoal.auth.iam import IamStore
    from shoal.storage.postgres_engine import PostgresEngine

    engine = PostgresEngine(database, min_connections=1, max_connections=2)
    yield IamStore(engine, None)
    engine.close()


@pytest.fixture(scope="module")
def table(nodes):
    a, _ = nodes
    root = client(a.url, *root_credentials(a.data_dir))
    root.create_table(TableName="events", KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST")
    root.put_item(TableName="events", Item={"user_id": {"S": "alice"}, "n": {"N": "1"}})
    return "events"


def test_root_credentials_are_the_stores(nodes, table):
    a, b = nodes
    assert root_credentials(a.data_dir) == root_credentials(b.data_dir)
    for node in nodes:
        root = client(node.url, *root_credentials(a.data_dir))
        assert root.get_item(TableName=table, Key={"user_id": {"S": "alice"}})["Item"]["n"] == {"N": "1"}


def test_a_third_node_with_a_fresh_directory_writes_the_same_root_key(tmp_path, database, nodes):
    a, _ = nodes
    third = ShoalProcess(tmp_path / "node-c", "--storage", database, "--auth", "sigv4", "--workers", "1").start()
    try:
        assert root_credentials(third.data_dir) == root_credentials(a.data_dir)
    finally:
        third.stop()


def test_a_users_key_signs_on_every_node_and_a_wrong_secret_on_none(database, nodes, table):
    iam(database, "create-user", "--user-name", "dana")
    key = iam(database, "create-access-key", "--user-name", "dana")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": f"arn:aws:dynamodb:*:*:table/{table}"}]}
    iam(database, "put-user-policy", "--user-name", "dana", "--policy-name", "read",
        "--policy-document", json.dumps(policy))
    for node in nodes:
        dana = client(node.url, key["AccessKeyId"], key["SecretAccessKey"])
        assert dana.get_item(TableName=table, Key={"user_id": {"S": "alice"}})["Item"]["n"] == {"N": "1"}
        assert error_code(dana.list_tables) == "AccessDeniedException"
        wrong = client(node.url, key["AccessKeyId"], key["SecretAccessKey"][:-2] + "xy")
        assert error_code(wrong.list_tables) == "InvalidSignatureException"
        unknown = client(node.url, "AKIAUNKNOWN000000000", "secret")
        assert error_code(unknown.list_tables) == "UnrecognizedClientException"
    listed = iam(database, "list-access-keys", "--user-name", "dana")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]


def test_a_policy_change_reaches_both_nodes_within_the_cache_time(database, nodes, table, store):
    store.create_user("erin")
    key = store.create_access_key("erin")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"}]}
    store.put_inline_policy("user", "erin", "read", policy)
    erins = [client(node.url, key["AccessKeyId"], key["SecretAccessKey"]) for node in nodes]
    for erin in erins:  # each node now holds erin's identity, and her policy, in its cache
        assert erin.get_item(TableName=table, Key={"user_id": {"S": "alice"}})["Item"]
    iam(database, "delete-user-policy", "--user-name", "erin", "--policy-name", "read")
    changed = time.monotonic()
    pending = list(erins)
    while pending and time.monotonic() - changed < CACHE_TTL_S + 2:
        for erin in list(pending):
            try:
                erin.get_item(TableName=table, Key={"user_id": {"S": "alice"}})
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "AccessDeniedException"
                pending.remove(erin)
        time.sleep(0.1)
    assert not pending, "a node still allowed what the policy no longer allows"


def test_a_resource_policy_put_through_one_node_is_enforced_by_the_other(nodes, table, store):
    """Resource-based policies are read from the store at every decision (no
    cache): one put through node A denies at once on node B."""
    a, b = nodes
    store.create_user("hal")
    key = store.create_access_key("hal")
    store.put_inline_policy("user", "hal", "read", {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"}]})
    hal = client(b.url, key["AccessKeyId"], key["SecretAccessKey"])
    assert hal.get_item(TableName=table, Key={"user_id": {"S": "alice"}})["Item"]
    arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}"
    root = client(a.url, *root_credentials(a.data_dir))
    root.put_resource_policy(ResourceArn=arn, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/hal"}, "Action": "dynamodb:GetItem",
        "Resource": arn}]}))
    try:
        assert error_code(hal.get_item, TableName=table, Key={"user_id": {"S": "alice"}}) == "AccessDeniedException"
    finally:
        root.delete_resource_policy(ResourceArn=arn)


def test_temporary_credentials_from_one_node_work_on_the_other(database, nodes, table, store):
    a, b = nodes
    store.create_user("frank")
    key = store.create_access_key("frank")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/frank"}, "Action": "sts:AssumeRole"}]}
    store.create_role("reader", trust)
    read_only = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"}]}
    store.put_inline_policy("role", "reader", "read", read_only)
    sts = client(a.url, key["AccessKeyId"], key["SecretAccessKey"], service="sts")
    temporary = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/reader", RoleSessionName="s1")["Credentials"]
    for node in nodes:
        reader = client(node.url, temporary["AccessKeyId"], temporary["SecretAccessKey"],
                        token=temporary["SessionToken"])
        assert reader.get_item(TableName=table, Key={"user_id": {"S": "alice"}})["Item"]
        assert error_code(reader.put_item, TableName=table, Item={"user_id": {"S": "x"}}) == "AccessDeniedException"
        caller = client(node.url, temporary["AccessKeyId"], temporary["SecretAccessKey"], service="sts",
                        token=temporary["SessionToken"]).get_caller_identity()
        assert caller["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/s1"


def test_shoal_iam_storage_refusals(tmp_path, postgres_cluster):  # noqa: F811
    bad = shoal("iam", "list-users", "--storage", "mysql://x@127.0.0.1/db")
    assert bad.returncode == 2 and "must be a postgresql://" in bad.stderr
    empty = postgres_cluster.create_database("noauth")
    refused = shoal("iam", "create-user", "--user-name", "x", "--storage", empty, "--data-dir", str(tmp_path))
    assert refused.returncode == 1 and "holds no Shoal store" in refused.stderr
    assert not list(tmp_path.iterdir())


def test_the_audit_line_of_a_change_without_a_node_directory(database, nodes, tmp_path):
    """``shoal iam --storage`` run where there is no node directory writes its
    audit line to stderr; with a node directory, to its audit.log."""
    out = shoal("iam", "create-group", "--group-name", "ops", "--storage", database,
                "--data-dir", str(tmp_path / "none"))
    assert out.returncode == 0, out.stderr
    assert "shoal: audit: " in out.stderr and '"action": "iam:CreateGroup"' in out.stderr
    a, _ = nodes
    out = shoal("iam", "create-group", "--group-name", "devs", "--storage", database, "--data-dir", a.data_dir)
    assert out.returncode == 0 and "audit" not in out.stderr, out.stderr
    events = json.loads(shoal("iam", "list-audit-events", "--storage", database, "--data-dir", a.data_dir).stdout)
    assert [e["resource"] for e in events["Events"] if e["action"] == "iam:CreateGroup"] == [
        f"arn:aws:iam::{ACCOUNT}:group/devs"]


def test_an_encrypted_store_keeps_its_iam_key_sealed(tmp_path_factory, postgres_cluster):  # noqa: F811
    """With --master-key-file the key is sealed in the database like any
    value, and a key made by ``shoal iam --storage --master-key-file`` (its
    own opener of the store) signs requests the node accepts."""
    from shoal.storage.encrypted import open_encrypted_postgres

    database = postgres_cluster.create_database("authsealed")
    master = tmp_path_factory.mktemp("keys") / "master.key"
    master.write_text(bytes(range(32)).hex())
    node = ShoalProcess(tmp_path_factory.mktemp("sealed"), "--storage", database, "--auth", "sigv4",
                        "--workers", "1", "--master-key-file", str(master), env=NODE_ENV).start()
    try:
        sealed = ("--storage", database, "--master-key-file", str(master), "--audit-log", os.devnull)
        made = shoal("iam", "create-user", "--user-name", "gil", *sealed)
        assert made.returncode == 0, made.stderr
        key = json.loads(shoal("iam", "create-access-key", "--user-name", "gil", *sealed).stdout)["AccessKey"]
        gil = client(node.url, key["AccessKeyId"], key["SecretAccessKey"])
        assert error_code(gil.list_tables) == "AccessDeniedException"  # known, signed, and not allowed
        root = client(node.url, *root_credentials(node.data_dir))
        assert root.list_tables()["TableNames"] == []
        engine = open_encrypted_postgres(database, bytes(range(32)))
        try:
            with engine.read() as txn:
                secret_key = bytes(txn.get("meta", b"iam/secret-key"))
        finally:
            engine.close()
        import psycopg

        with psycopg.connect(database) as conn:
            stored = [bytes(row[0]) for row in conn.execute("SELECT v FROM shoal.meta")]
        assert stored and not any(secret_key in value for value in stored)
    finally:
        node.stop()


def test_shoal_triggers_storage_adds_a_trigger_the_nodes_deliver(database, nodes, table):
    from tests.unit.test_triggers import Receiver

    a, b = nodes
    root = client(b.url, *root_credentials(b.data_dir))
    root.create_table(TableName="watched", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST",
                      StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    receiver = Receiver()
    try:
        out = shoal("triggers", "add", "--table", "watched", "--url", receiver.url, "--storage", database)
        assert out.returncode == 0, out.stderr
        trigger_id = json.loads(out.stdout)["Trigger"]["Id"]
        for n in range(3):
            root.put_item(TableName="watched", Item={"k": {"S": f"k{n}"}})
        deadline = time.monotonic() + 30
        while len(receiver.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r["dynamodb"]["Keys"]["k"]["S"] for r in receiver.records] == ["k0", "k1", "k2"]
        listed = json.loads(shoal("triggers", "list", "--storage", database).stdout)["Triggers"]
        assert [t["Id"] for t in listed] == [trigger_id]
    finally:
        receiver.close()


def test_a_data_directory_migrated_to_postgresql_keeps_its_access_keys(tmp_path, postgres_cluster):  # noqa: F811
    """``shoal migrate`` carries a data directory's IAM secret key (a file
    beside the store, not a key space) into the database, so the keys made
    before the move still sign on a node over PostgreSQL."""
    source = tmp_path / "source"
    made = shoal("iam", "create-user", "--user-name", "hal", "--data-dir", str(source))
    assert made.returncode == 0, made.stderr
    key = json.loads(shoal("iam", "create-access-key", "--user-name", "hal", "--data-dir", str(source)).stdout)[
        "AccessKey"]
    database = postgres_cluster.create_database("authmigrated")
    moved = shoal("migrate", "--from", str(source), "--to", database)
    assert moved.returncode == 0, moved.stderr
    node = ShoalProcess(tmp_path / "node", "--storage", database, "--auth", "sigv4", "--workers", "1",
                        env=NODE_ENV).start()
    try:
        hal = client(node.url, key["AccessKeyId"], key["SecretAccessKey"])
        assert error_code(hal.list_tables) == "AccessDeniedException"  # known, signed, and not allowed
        wrong = client(node.url, key["AccessKeyId"], key["SecretAccessKey"][:-2] + "xy")
        assert error_code(wrong.list_tables) == "InvalidSignatureException"
    finally:
        node.stop()
