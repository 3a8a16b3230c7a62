"""The IAM store over a real engine, and the STS handler through botocore's parser."""

from __future__ import annotations

import os
import stat

import pytest

from shoal.auth.iam import EXPIRED_GRACE_S, IamError, IamStore, bootstrap_root
from shoal.model.policy import evaluate
from shoal.storage import open_data_dir

TABLE = "arn:aws:dynamodb:us-east-1:000000000000:table/events"
READ_EVENTS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": TABLE}]}


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def engine(data_dir):
    engine = open_data_dir(data_dir, sync=False)
    yield engine
    engine.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(engine, data_dir, clock):
    return IamStore(engine, data_dir, clock=clock)


def test_user_and_key_round_trip(store, data_dir, engine):
    user = store.create_user("alice")
    assert user["Arn"] == "arn:aws:iam::000000000000:user/alice" and user["UserId"].startswith("AIDA")
    key = store.create_access_key("alice")
    identity = store.lookup(key["AccessKeyId"])
    assert identity.secret == key["SecretAccessKey"]
    assert identity.session_token is None and identity.principal.arn == user["Arn"]
    assert identity.principal.userid == user["UserId"]
    assert [u["UserName"] for u in store.list_users()] == ["alice"]
    assert store.list_access_keys("alice") == [{"UserName": "alice", "AccessKeyId": key["AccessKeyId"], "Status": "Active"}]
    # the secret is stored encrypted; the key file is the owner's only
    with engine.read() as txn:
        stored = txn.get("meta", b"iam/key/" + key["AccessKeyId"].encode())
    assert key["SecretAccessKey"].encode() not in stored
    assert stat.S_IMODE(os.stat(data_dir / "iam.key").st_mode) == 0o600
    # a second store (another process) decrypts with the same key file
    assert IamStore(engine, data_dir).lookup(key["AccessKeyId"]).secret == key["SecretAccessKey"]


def test_errors(store):
    store.create_user("alice")
    with pytest.raises(IamError) as err:
        store.create_user("alice")
    assert (err.value.code, err.value.message) == ("EntityAlreadyExists", "User with name alice already exists.")
    with pytest.raises(IamError) as err:
        store.create_access_key("nobody")
    assert (err.value.code, err.value.message) == ("NoSuchEntity", "The user with name nobody cannot be found.")
    with pytest.raises(IamError) as err:
        store.put_inline_policy("user", "alice", "p", {"Statement": [{"Effect": "Allow", "Resource": "*"}]})
    assert err.value.code == "MalformedPolicyDocument"


def test_policies_from_user_groups_and_managed(store):
    store.create_user("alice")
    key = store.create_access_key("alice")["AccessKeyId"]
    principal = store.lookup(key).principal
    assert not evaluate(principal, "dynamodb:GetItem", TABLE, {}).allowed
    store.create_group("readers")
    store.add_user_to_group("alice", "readers")
    store.put_inline_policy("group", "readers", "read", READ_EVENTS)
    assert evaluate(store.lookup(key).principal, "dynamodb:GetItem", TABLE, {}).allowed
    managed = store.create_policy("writes", {"Statement": {"Effect": "Allow", "Action": "dynamodb:PutItem",
                                                            "Resource": "*"}})
    store.attach_policy("user", "alice", managed["Arn"])
    assert evaluate(store.lookup(key).principal, "dynamodb:PutItem", TABLE, {}).allowed
    assert [p["PolicyName"] for p in store.list_policies()] == ["writes"]
    store.detach_policy("user", "alice", managed["Arn"])
    store.remove_user_from_group("alice", "readers")
    principal = store.lookup(key).principal
    assert not evaluate(principal, "dynamodb:PutItem", TABLE, {}).allowed
    assert not evaluate(principal, "dynamodb:GetItem", TABLE, {}).allowed


def test_cache_revalidates_across_processes(engine, data_dir, clock):
    writer = IamStore(engine, data_dir, clock=clock)
    reader = IamStore(engine, data_dir, clock=clock, ttl=5.0)
    writer.create_user("alice")
    key = writer.create_access_key("alice")["AccessKeyId"]
    assert reader.lookup(key) is not None
    writer.delete_access_key(key)
    assert reader.lookup(key) is not None  # cached within the ttl
    clock.now += 6
    assert reader.lookup(key) is None  # generation changed: re-read


def test_lookup_reads_storage_once_per_ttl(store, clock, engine):
    store.create_user("alice")
    key = store.create_access_key("alice")["AccessKeyId"]
    store.lookup(key)
    reads = []
    real_read = engine.read

    def counting_read():
        reads.append(1)
        return real_read()

    engine.read = counting_read
    try:
        for _ in range(100):
            assert store.lookup(key) is not None
        assert reads == []
        clock.now += 10
        store.lookup(key)
        assert len(reads) == 1  # the generation check only
    finally:
        del engine.read


def test_delete_user_removes_keys(store):
    store.create_user("bob")
    key = store.create_access_key("bob")["AccessKeyId"]
    store.delete_user("bob")
    assert store.lookup(key) is None
    with pytest.raises(IamError):
        store.delete_user("bob")


def test_assume_role(store, clock):
    store.create_user("alice")
    alice = store.lookup(store.create_access_key("alice")["AccessKeyId"]).principal
    store.create_user("mallory")
    mallory = store.lookup(store.create_access_key("mallory")["AccessKeyId"]).principal
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": "sts:AssumeRole"}]}
    role = store.create_role("reader", trust)
    store.put_inline_policy("role", "reader", "read", READ_EVENTS)
    creds = store.assume_role(alice, role["Arn"], "s1", 900)
    assert creds["AccessKeyId"].startswith("ASIA")
    assert creds["Arn"] == "arn:aws:sts::000000000000:assumed-role/reader/s1"
    identity = store.lookup(creds["AccessKeyId"])
    assert identity.session_token == creds["SessionToken"]
    assert identity.expires == int(clock.now) + 900
    assert identity.principal.role_arn == role["Arn"]
    assert evaluate(identity.principal, "dynamodb:GetItem", TABLE, {}).allowed
    with pytest.raises(IamError) as err:
        store.assume_role(mallory, role["Arn"], "s2")
    assert err.value.code == "AccessDenied" and err.value.message == (
        "User: arn:aws:iam::000000000000:user/mallory is not authorized to perform: sts:AssumeRole on resource: "
        "arn:aws:iam::000000000000:role/reader")
    with pytest.raises(IamError) as err:
        store.assume_role(alice, role["Arn"], "s3", 7200)
    assert err.value.code == "ValidationError"
    clock.now += 1000
    assert store.prune_expired() == 0  # expired, but kept for ExpiredTokenException
    clock.now += EXPIRED_GRACE_S
    assert store.prune_expired() == 1


def test_a_second_pruner_changes_nothing(engine, data_dir, clock):
    """Workers (and nodes) prune the same keys: the one that finds them gone
    when it writes deletes nothing and leaves the generation, so no cache is
    dropped for nothing."""
    import contextlib

    store = IamStore(engine, data_dir, clock=clock)
    store.create_user("u")
    store.create_role("r", {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": store.user_arn("u")}, "Action": "sts:AssumeRole"}]})
    store.assume_role(store.lookup(store.create_access_key("u")["AccessKeyId"]).principal, store.role_arn("r"), "s")
    clock.now += EXPIRED_GRACE_S + 10_000
    with engine.read() as txn:
        seen = list(txn.scan("meta", b"iam/key/", b"iam/key0"))  # what a second pruner read before the first wrote

    class SeenBefore:  # the engine, but its reads answer that earlier scan
        def __getattr__(self, name):
            return getattr(engine, name)

        @contextlib.contextmanager
        def read(self, snapshot=True):
            yield type("Txn", (), {"scan": lambda self, *args: iter(seen)})()

    late = IamStore(engine, data_dir, clock=clock)
    assert store.prune_expired() == 1
    with engine.read() as txn:
        generation = txn.get("meta", b"iam/gen")
    late.engine = SeenBefore()
    assert late.prune_expired() == 0
    with engine.read() as txn:
        assert txn.get("meta", b"iam/gen") == generation


def test_bootstrap_root(engine, data_dir):
    access_key, secret, path = bootstrap_root(engine, data_dir)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = open(path).read()
    assert f"aws_access_key_id = {access_key}" in text and f"aws_secret_access_key = {secret}" in text
    assert bootstrap_root(engine, data_dir) == (access_key, secret, path)
    identity = IamStore(engine, data_dir).lookup(access_key)
    assert identity.secret == secret and identity.principal.is_root
    assert identity.principal.arn == "arn:aws:iam::000000000000:root"


def test_bootstrap_root_writes_the_stores_key_again_rather_than_another(engine, data_dir):
    access_key, secret, path = bootstrap_root(engine, data_dir)
    os.unlink(path)  # a lost file (or a node directory new to a shared store)
    assert bootstrap_root(engine, data_dir) == (access_key, secret, path)
    assert [k["AccessKeyId"] for k in IamStore(engine, data_dir).list_access_keys("root")] == [access_key]


def test_bootstrap_root_replaces_a_file_whose_key_is_gone(engine, data_dir):
    access_key, _secret, path = bootstrap_root(engine, data_dir)
    IamStore(engine, data_dir).delete_access_key(access_key)
    new_key, new_secret, _ = bootstrap_root(engine, data_dir)
    assert new_key != access_key and f"aws_access_key_id = {new_key}" in open(path).read()
    assert IamStore(engine, data_dir).lookup(new_key).secret == new_secret


def test_a_data_directory_keeps_its_key_file(engine, data_dir):
    """An existing iam.key is read as before: no key record is put in the
    store of a data directory (a copy of its file alone reveals no secret)."""
    key = IamStore(engine, data_dir).create_access_key(IamStore(engine, data_dir).create_user("ann")["UserName"])
    written = (data_dir / "iam.key").read_bytes()
    assert IamStore(engine, data_dir).lookup(key["AccessKeyId"]).secret == key["SecretAccessKey"]
    assert (data_dir / "iam.key").read_bytes() == written
    with engine.read() as txn:
        assert txn.get("meta", b"iam/secret-key") is None


def test_a_key_record_in_the_store_comes_first(engine, data_dir, tmp_path):
    """A store migrated from PostgreSQL brings its key as iam/secret-key: it
    opens the secrets wherever the store is, with or without a key file."""
    from cryptography.fernet import Fernet

    with engine.write() as txn:
        txn.put("meta", b"iam/secret-key", Fernet.generate_key())
    store = IamStore(engine, tmp_path / "elsewhere")
    key = store.create_access_key(store.create_user("bo")["UserName"])
    assert IamStore(engine, data_dir).lookup(key["AccessKeyId"]).secret == key["SecretAccessKey"]
    assert not (data_dir / "iam.key").exists()


def test_a_shared_store_takes_the_key_file_of_its_first_opener(engine, tmp_path):
    """Over a shared store (``_load_fernet(..., shared=True)``, as for
    PostgreSQL) the key is the store's: the first node directory's iam.key
    from before becomes it, so what that node encrypted still opens; a later
    node's own file is not used; a store with no data directory makes one."""
    from cryptography.fernet import Fernet

    from shoal.auth.iam import _load_fernet, shares_store

    assert not shares_store(engine)  # a data directory's own LMDB
    first, second = tmp_path / "n1", tmp_path / "n2"
    for directory in (first, second):
        directory.mkdir()
        (directory / "iam.key").write_bytes(Fernet.generate_key() + b"\n")
    token = Fernet((first / "iam.key").read_bytes().strip()).encrypt(b"secret")
    assert _load_fernet(engine, first, True).decrypt(token) == b"secret"
    assert _load_fernet(engine, second, True).decrypt(token) == b"secret"
    assert _load_fernet(engine, None, True).decrypt(token) == b"secret"
    with engine.read() as txn:
        assert bytes(txn.get("meta", b"iam/secret-key")) == (first / "iam.key").read_bytes().strip()


def test_a_secret_under_another_key_is_an_unknown_key(engine, data_dir, tmp_path):
    """Keys a node of a shared store made under its own key, before the store
    had one, are refused as unknown (UnrecognizedClientException), not a crash."""
    other = tmp_path / "other"
    other.mkdir()
    store = IamStore(engine, other)  # the key file of another directory
    key = store.create_access_key(store.create_user("cy")["UserName"])
    assert IamStore(engine, data_dir).lookup(key["AccessKeyId"]) is None


# -- STS through botocore's own signer and parser ------------------------------------------

from urllib.parse import urlencode, urlsplit  # noqa: E402

import botocore.session  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials as BotoCredentials  # noqa: E402
from botocore.parsers import create_parser  # noqa: E402

from shoal.auth import sigv4  # noqa: E402
from shoal.auth.sts import parse_form, sts_handle  # noqa: E402
from shoal.server.http import Request  # noqa: E402

STS_MODEL = botocore.session.get_session().get_service_model("sts")


def sts_call(store, key, secret, params, token=None):
    """Sign a form request as boto3 would, verify it, answer it, parse the XML."""
    body = urlencode({"Version": "2011-06-15", **params}).encode()
    aws = AWSRequest(method="POST", url="http://localhost:8000/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(BotoCredentials(key, secret, token), "sts", "us-east-1").add_auth(aws)
    headers = {k.lower(): v for k, v in aws.headers.items()}
    headers["host"] = urlsplit(aws.url).netloc
    request = Request("POST", "/", headers, body, ("127.0.0.1", 1), False)
    credentials = sigv4.verify(request, lookup_secret=store.lookup, service="sts")
    status, content_type, xml = sts_handle(parse_form(request.body), credentials, store=store, request_id="r-1")
    shape = STS_MODEL.operation_model(params["Action"]).output_shape
    parsed = create_parser("query").parse({"body": xml, "headers": {}, "status_code": status}, shape)
    return status, parsed


def test_sts_get_caller_identity_and_assume_role(engine, data_dir):
    store = IamStore(engine, data_dir)  # real clock: botocore signs with the current time
    store.create_user("alice")
    key = store.create_access_key("alice")
    status, parsed = sts_call(store, key["AccessKeyId"], key["SecretAccessKey"], {"Action": "GetCallerIdentity"})
    assert status == 200
    assert parsed["Arn"] == "arn:aws:iam::000000000000:user/alice" and parsed["Account"] == "000000000000"
    assert parsed["ResponseMetadata"]["RequestId"] == "r-1"
    role = store.create_role("reader", {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"AWS": "arn:aws:iam::000000000000:user/alice"}}]})
    status, parsed = sts_call(store, key["AccessKeyId"], key["SecretAccessKey"],
                              {"Action": "AssumeRole", "RoleArn": role["Arn"], "RoleSessionName": "s1"})
    assert status == 200
    creds = parsed["Credentials"]
    assert parsed["AssumedRoleUser"]["Arn"] == "arn:aws:sts::000000000000:assumed-role/reader/s1"
    assert creds["AccessKeyId"].startswith("ASIA") and creds["Expiration"].year >= 2024
    # the temporary credentials sign requests of their own
    status, parsed = sts_call(store, creds["AccessKeyId"], creds["SecretAccessKey"], {"Action": "GetCallerIdentity"},
                              token=creds["SessionToken"])
    assert parsed["Arn"] == "arn:aws:sts::000000000000:assumed-role/reader/s1"
    assert parsed["UserId"].endswith(":s1")


def test_sts_errors(engine, data_dir):
    store = IamStore(engine, data_dir)
    store.create_user("mallory")
    key = store.create_access_key("mallory")
    status, parsed = sts_call(store, key["AccessKeyId"], key["SecretAccessKey"],
                              {"Action": "AssumeRole", "RoleArn": "arn:aws:iam::000000000000:role/none",
                               "RoleSessionName": "x"})
    assert status == 403
    assert parsed["Error"] == {"Type": "Sender", "Code": "AccessDenied", "Message": (
        "User: arn:aws:iam::000000000000:user/mallory is not authorized to perform: sts:AssumeRole on resource: "
        "arn:aws:iam::000000000000:role/none")}
    status, parsed = sts_call(store, key["AccessKeyId"], key["SecretAccessKey"],
                              {"Action": "AssumeRole", "RoleSessionName": "x"})
    assert status == 400 and parsed["Error"]["Code"] == "ValidationError"


# -- the shoal iam commands -----------------------------------------------------------------

import argparse  # noqa: E402
import json  # noqa: E402

from shoal.auth.cli import add_iam_commands  # noqa: E402


def run_cli(capsys, *argv):
    parser = argparse.ArgumentParser(prog="shoal")
    add_iam_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["iam", *argv])
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_cli_round_trip(tmp_path, capsys):
    d = ["--data-dir", str(tmp_path / "cli-data")]
    code, out, _ = run_cli(capsys, "create-user", *d, "--user-name", "alice")
    assert code == 0 and out["User"]["UserName"] == "alice"
    code, out, _ = run_cli(capsys, "create-access-key", *d, "--user-name", "alice")
    key = out["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    policy_file = tmp_path / "p.json"
    policy_file.write_text(json.dumps(READ_EVENTS))
    assert run_cli(capsys, "put-user-policy", *d, "--user-name", "alice", "--policy-name", "read",
                   "--policy-document", f"file://{policy_file}")[0] == 0
    code, out, _ = run_cli(capsys, "create-policy", *d, "--policy-name", "all",
                           "--policy-document", '{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}')
    assert out["Policy"]["Arn"] == "arn:aws:iam::000000000000:policy/all"
    assert run_cli(capsys, "create-group", *d, "--group-name", "admins")[0] == 0
    assert run_cli(capsys, "add-user-to-group", *d, "--user-name", "alice", "--group-name", "admins")[0] == 0
    assert run_cli(capsys, "attach-group-policy", *d, "--group-name", "admins",
                   "--policy-arn", "arn:aws:iam::000000000000:policy/all")[0] == 0
    code, out, _ = run_cli(capsys, "create-role", *d, "--role-name", "r", "--trust-policy",
                           '{"Statement":{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"sts:AssumeRole"}}')
    assert out["Role"]["Arn"] == "arn:aws:iam::000000000000:role/r"
    code, out, _ = run_cli(capsys, "list-users", *d)
    assert [(u["UserName"], u["Groups"]) for u in out["Users"]] == [("alice", ["admins"])]
    code, out, _ = run_cli(capsys, "list-policies", *d)
    assert [p["PolicyName"] for p in out["Policies"]] == ["all"]
    code, out, err = run_cli(capsys, "create-user", *d, "--user-name", "alice")
    assert code == 254 and err.strip() == (
        "shoal: An error occurred (EntityAlreadyExists): User with name alice already exists.")
    code, out, err = run_cli(capsys, "put-role-policy", *d, "--role-name", "r", "--policy-name", "x",
                             "--policy-document", "{bad")
    assert code == 254 and "MalformedPolicyDocument" in err
    assert run_cli(capsys, "delete-access-key", *d, "--access-key-id", key["AccessKeyId"])[0] == 0
    assert run_cli(capsys, "delete-user", *d, "--user-name", "alice")[0] == 0


def test_gate_authenticates_and_authorizes(engine, data_dir):
    from shoal.api.catalog import Catalog
    from shoal.auth.errors import AccessDeniedException
    from shoal.auth.gate import Gate

    gate = Gate(engine, data_dir, Catalog(engine))
    gate.store.create_user("alice")
    key = gate.store.create_access_key("alice")
    gate.store.put_inline_policy("user", "alice", "read", READ_EVENTS)
    body = b'{"TableName":"events","Key":{"user_id":{"S":"u"}}}'
    aws = AWSRequest(method="POST", url="http://localhost:8000/", data=body,
                     headers={"X-Amz-Target": "DynamoDB_20120810.GetItem"})
    SigV4Auth(BotoCredentials(key["AccessKeyId"], key["SecretAccessKey"]), "dynamodb", "us-east-1").add_auth(aws)
    headers = {k.lower(): v for k, v in aws.headers.items()} | {"host": "localhost:8000"}
    request = Request("POST", "/", headers, body, ("10.0.0.1", 5), False)
    credentials = gate.authenticate(request)
    gate.authorize(credentials, "GetItem", json.loads(body), request)
    with pytest.raises(AccessDeniedException) as err:
        gate.authorize(credentials, "DeleteItem", json.loads(body), request)
    assert err.value.message.endswith(
        "dynamodb:DeleteItem on resource: arn:aws:dynamodb:us-east-1:000000000000:table/events "
        "because no identity-based policy allows the dynamodb:DeleteItem action")
