"""Encryption at rest, end to end: ``shoal serve --master-key-file`` on a fresh
directory, viewer-events writes with distinctive strings (in attribute names,
keys, values, index keys, table names and stream records), then every byte of
every file in the data directory is searched for them; restarts with the
right key, a wrong key and no key; ``shoal keys rotate``."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import make_client
from tests.shoal_process import ShoalProcess

SECRETS = [
    "zebra-crossing-4711",      # an attribute value
    "uzebrauser4711",           # a partition key
    "czebracontent4711",        # a GSI partition key
    "zebraquery4711",           # a sort key of a second table
    "zebra_attribute_4711",     # an attribute name
    "zebratable4711",           # a table name
    "zebra-map-key-4711",       # a map member name
]


def _forms(secret: str) -> list[bytes]:
    """The byte patterns a leak of ``secret`` could take."""
    raw = secret.encode()
    forms = [raw, secret.encode("utf-16-le"), secret.encode("utf-16-be")]
    for pad in range(3):  # base64 at each alignment, without the edge characters
        encoded = base64.b64encode(b"x" * pad + raw)
        forms.append(encoded[4:-4])
    return forms


def _all_files(path) -> dict[str, bytes]:
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as handle:
                out[full] = handle.read()
    return out


def _snapshot(path) -> dict:
    return {name: (hashlib.sha256(data).hexdigest(), os.stat(name).st_mtime_ns)
            for name, data in _all_files(path).items()}


def _start_fails(data_dir, *args) -> str:
    """Start ``shoal serve`` expecting it to refuse; its stderr."""
    done = subprocess.run([sys.executable, "-m", "shoal", "serve", "--port", "0", "--data-dir", str(data_dir),
                           *args], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("SHOAL_MASTER")})
    assert done.returncode != 0
    return done.stderr


@pytest.fixture
def keys(tmp_path):
    first = tmp_path / "master.key"
    first.write_text(os.urandom(32).hex() + "\n")
    second = tmp_path / "new-master.key"
    second.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return first, second


def _write_workload(ddb) -> None:
    ddb.create_table(
        TableName="events", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"},
                              {"AttributeName": "content_id", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_content", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                               {"AttributeName": "ts", "KeyType": "RANGE"}]}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.create_table(
        TableName="zebratable4711", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "query", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "query", "AttributeType": "S"}],
    )
    for ts in range(1700000000000, 1700000000010):
        ddb.put_item(TableName="events", Item={
            "user_id": {"S": "uzebrauser4711"}, "ts": {"N": str(ts)}, "event_type": {"S": "play"},
            "content_id": {"S": "czebracontent4711"}, "session_id": {"S": "zebra-crossing-4711"},
            "device": {"M": {"type": {"S": "tv"}, "zebra-map-key-4711": {"S": "x"}}},
            "zebra_attribute_4711": {"N": "1"}, "tags": {"SS": ["drama", "zebra-crossing-4711"]},
        })
    ddb.update_item(TableName="events", Key={"user_id": {"S": "uzebrauser4711"}, "ts": {"N": "1700000000000"}},
                    UpdateExpression="SET position_s = :p", ExpressionAttributeValues={":p": {"N": "12.5"}})
    ddb.put_item(TableName="zebratable4711", Item={"user_id": {"S": "uzebrauser4711"},
                                                   "query": {"S": "zebraquery4711"}})


def _read_stream(url) -> int:
    streams = make_client(url, "dynamodbstreams")
    arn = streams.list_streams(TableName="events")["Streams"][0]["StreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    deadline = time.monotonic() + 10
    records = []
    while len(records) < 11 and time.monotonic() < deadline:
        out = streams.get_records(ShardIterator=iterator)
        records += out["Records"]
        iterator = out.get("NextShardIterator") or iterator
        if len(records) < 11:
            time.sleep(0.2)
    return len(records)


def _check_readable(ddb) -> None:
    out = ddb.query(TableName="events", KeyConditionExpression="user_id = :u AND ts BETWEEN :a AND :b",
                    ExpressionAttributeValues={":u": {"S": "uzebrauser4711"}, ":a": {"N": "1700000000002"},
                                               ":b": {"N": "1700000000004"}})
    assert [i["ts"]["N"] for i in out["Items"]] == ["1700000000002", "1700000000003", "1700000000004"]
    assert out["Items"][0]["session_id"] == {"S": "zebra-crossing-4711"}
    out = ddb.query(TableName="events", IndexName="by_content", KeyConditionExpression="content_id = :c",
                    ExpressionAttributeValues={":c": {"S": "czebracontent4711"}})
    assert out["Count"] == 10
    got = ddb.get_item(TableName="events", Key={"user_id": {"S": "uzebrauser4711"}, "ts": {"N": "1700000000000"}})
    assert got["Item"]["position_s"] == {"N": "12.5"}
    assert sorted(ddb.list_tables()["TableNames"]) == ["events", "zebratable4711"]
    desc = ddb.describe_table(TableName="events")["Table"]
    assert desc["SSEDescription"] == {"Status": "ENABLED", "SSEType": "AES256"}
    assert desc["ItemCount"] == 10


def test_no_plaintext_on_disk_and_key_handling(tmp_path, keys):
    first, second = keys
    data = tmp_path / "data"
    server = ShoalProcess(data, "--master-key-file", str(first)).start()
    try:
        assert "encrypted at rest" in server.banner
        ddb = make_client(server.url)
        _write_workload(ddb)
        assert _read_stream(server.url) == 11
        _check_readable(ddb)
    finally:
        assert server.stop() == 0

    files = _all_files(data)
    assert any(name.endswith("data.mdb") for name in files)
    for name, content in files.items():
        for secret in SECRETS:
            for form in _forms(secret):
                assert form not in content, f"{secret!r} found in {name} as {form!r}"

    before = _snapshot(data)
    assert f"data directory {data} is encrypted: give its master key" in _start_fails(data)
    assert "the master key does not open data directory" in _start_fails(data, "--master-key-file", str(second))
    assert _snapshot(data) == before

    rotate = subprocess.run([sys.executable, "-m", "shoal", "keys", "rotate", "--data-dir", str(data),
                             "--master-key-file", str(first), "--new-master-key-file", str(second)],
                            capture_output=True, text=True, timeout=60)
    assert rotate.returncode == 0, rotate.stderr
    assert "the master key does not open data directory" in _start_fails(data, "--master-key-file", str(first))

    server = ShoalProcess(data, "--master-key-file", str(second)).start()
    try:
        _check_readable(make_client(server.url))
    finally:
        assert server.stop() == 0


def test_plain_directory_refuses_a_key(tmp_path, keys):
    data = tmp_path / "data"
    server = ShoalProcess(data).start()
    server.stop()
    before = _snapshot(data)
    assert "is not encrypted, but a master key was given" in _start_fails(data, "--master-key-file", str(keys[0]))
    assert _snapshot(data) == before


def test_iam_commands_open_an_encrypted_directory_with_its_key(tmp_path, keys):
    import json

    first, _second = keys
    data = tmp_path / "iamdata"
    server = ShoalProcess(data, "--master-key-file", str(first), "--auth", "sigv4").start()
    server.stop()

    def iam(*extra):
        return subprocess.run([sys.executable, "-m", "shoal", "iam", *extra, "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=60)

    refused = iam("create-user", "--user-name", "zebra-crossing-4711")
    assert refused.returncode != 0 and "is encrypted" in refused.stderr
    made = iam("create-user", "--user-name", "zebra-crossing-4711", "--master-key-file", str(first))
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["User"]["UserName"] == "zebra-crossing-4711"
    for path in data.rglob("*"):
        if path.is_file():
            assert b"zebra-crossing-4711" not in path.read_bytes(), path
    events = iam("list-audit-events", "--master-key-file", str(first))
    assert events.returncode == 0, events.stderr
    assert any(e["resource"].endswith("user/zebra-crossing-4711") for e in json.loads(events.stdout)["Events"])


def test_a_replica_in_a_region_encrypted_at_rest(tmp_path, keys):
    """A global table's replica in a region whose data directory is
    encrypted at rest: with a KMSMasterKeyId override its SSEDescription is
    that key's, in its region (as for a regional table created with that
    SSESpecification); without, the region's own (AES256); the replicated
    items are readable there and nowhere in its files in plaintext."""
    from tests.shoal_process import free_port

    first, _ = keys
    ports = {"us-east-1": free_port(), "eu-west-1": free_port()}

    def start(region: str, *extra: str) -> ShoalProcess:
        other = next(r for r in ports if r != region)
        return ShoalProcess(tmp_path / region, "--region", region, f"--peer={other}=http://127.0.0.1:{ports[other]}",
                            "--workers", "1", "--no-metrics", *extra, port=ports[region]).start()

    home, encrypted = start("us-east-1"), start("eu-west-1", "--master-key-file", str(first))
    try:
        east = make_client(home.url, region="us-east-1")
        west = make_client(encrypted.url, region="eu-west-1")
        for name in ("kms_events", "plain_events"):
            east.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}])
            east.put_item(TableName=name, Item={"user_id": {"S": "uzebrauser4711"},
                                                "session_id": {"S": "zebra-crossing-4711"}})
        east.update_table(TableName="kms_events", ReplicaUpdates=[
            {"Create": {"RegionName": "eu-west-1", "KMSMasterKeyId": "alias/eu-events"}}])
        east.update_table(TableName="plain_events", ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}}])
        def copied(name: str) -> bool:
            try:  # (the replica's table is refused to clients until it is ACTIVE)
                return "Item" in west.get_item(TableName=name, Key={"user_id": {"S": "uzebrauser4711"}})
            except west.exceptions.ResourceNotFoundException:
                return False

        deadline = time.monotonic() + 30
        for name in ("kms_events", "plain_events"):
            while not copied(name):
                assert time.monotonic() < deadline, name
                time.sleep(0.1)
        account = east.describe_table(TableName="kms_events")["Table"]["TableArn"].split(":")[4]
        assert west.describe_table(TableName="kms_events")["Table"]["SSEDescription"] == {
            "Status": "ENABLED", "SSEType": "KMS",
            "KMSMasterKeyArn": f"arn:aws:kms:eu-west-1:{account}:alias/eu-events"}
        assert west.describe_table(TableName="plain_events")["Table"]["SSEDescription"] == {
            "Status": "ENABLED", "SSEType": "AES256"}
        assert "SSEDescription" not in east.describe_table(TableName="plain_events")["Table"]
        east_entry = east.describe_table(TableName="kms_events")["Table"]["Replicas"][0]
        assert (east_entry["RegionName"], east_entry["KMSMasterKeyId"]) == ("eu-west-1", "alias/eu-events")
    finally:
        home.stop()
        assert encrypted.stop() == 0
    for name, content in _all_files(tmp_path / "eu-west-1").items():
        for secret in ("uzebrauser4711", "zebra-crossing-4711"):
            for form in _forms(secret):
                assert form not in content, f"{secret!r} found in {name} as {form!r}"


# ---------------------------------------------------------------- KMS key states of a region
#
# A deployment's KMS keys that are disabled, pending deletion or deleted
# (shoal/storage/keyring.py): what global tables' replicas are checked
# against (tests/server/test_global_tables.py runs them on three regions).


def test_kms_key_states_are_kept_by_key_id_and_worded_as_kms_words_them(tmp_path):
    from shoal.storage.keyring import (
        KeyringError,
        kms_key_id,
        kms_key_problem,
        read_kms_key_states,
        set_kms_key_state,
    )

    assert kms_key_id("arn:aws:kms:eu-west-1:000000000000:key/1234abcd") == "1234abcd"
    assert kms_key_id("arn:aws:kms:eu-west-1:000000000000:alias/orders") == "alias/orders"
    assert kms_key_id("alias/orders") == "alias/orders" and kms_key_id("1234abcd") == "1234abcd"
    assert read_kms_key_states(tmp_path) == {}  # none marked: every key usable
    set_kms_key_state(tmp_path, "arn:aws:kms:eu-west-1:000000000000:key/1234abcd", "Disabled")
    set_kms_key_state(tmp_path, "alias/orders", "PendingDeletion")
    set_kms_key_state(tmp_path, "gone", "Deleted")
    states = read_kms_key_states(tmp_path)
    assert states == {"1234abcd": "Disabled", "alias/orders": "PendingDeletion", "gone": "Deleted"}
    arn = "arn:aws:kms:eu-west-1:000000000000:"
    assert kms_key_problem(states, arn + "key/1234abcd") == arn + "key/1234abcd is disabled."
    assert kms_key_problem(states, arn + "alias/orders") == arn + "alias/orders is pending deletion."
    assert kms_key_problem(states, arn + "key/gone") == f"Key '{arn}key/gone' does not exist"
    assert kms_key_problem(states, arn + "key/other") is None
    set_kms_key_state(tmp_path, "1234abcd", "Enabled")
    assert read_kms_key_states(tmp_path) == {"alias/orders": "PendingDeletion", "gone": "Deleted"}
    with pytest.raises(KeyringError) as caught:
        set_kms_key_state(tmp_path, "1234abcd", "Revoked")
    assert str(caught.value) == "unknown KMS key state Revoked: one of Enabled, Disabled, PendingDeletion, Deleted"
    assert read_kms_key_states(tmp_path) == {"alias/orders": "PendingDeletion", "gone": "Deleted"}  # unchanged
    for damaged in ('{"format": 1, "keys": ["not", "a", "map"]}', "[1]", "not json", '{"keys": {}}'):
        (tmp_path / "KMS_KEYS").write_text(damaged)
        with pytest.raises(KeyringError) as caught:
            read_kms_key_states(tmp_path)
        assert str(caught.value) == f"{tmp_path / 'KMS_KEYS'} is damaged: not a Shoal list of KMS key states"


def test_keys_kms_key_state_marks_a_key_of_the_region_and_enabled_clears_it(tmp_path):
    from shoal.storage.keyring import read_kms_key_states

    def kms(*args):
        return subprocess.run([sys.executable, "-m", "shoal", "keys", "kms-key-state", *args],
                              capture_output=True, text=True, timeout=60)

    arn = "arn:aws:kms:us-west-2:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    disabled = kms(arn, "Disabled", "--data-dir", str(tmp_path))
    assert (disabled.returncode, disabled.stderr) == (0, "")
    assert disabled.stdout == f"KMS key {arn} is Disabled in {tmp_path}\n"
    assert read_kms_key_states(tmp_path) == {"1234abcd-12ab-34cd-56ef-1234567890ab": "Disabled"}
    assert kms("alias/viewer-events", "PendingDeletion", "--data-dir", str(tmp_path)).returncode == 0
    assert read_kms_key_states(tmp_path) == {"1234abcd-12ab-34cd-56ef-1234567890ab": "Disabled",
                                             "alias/viewer-events": "PendingDeletion"}
    assert kms("1234abcd-12ab-34cd-56ef-1234567890ab", "Enabled", "--data-dir", str(tmp_path)).returncode == 0
    assert read_kms_key_states(tmp_path) == {"alias/viewer-events": "PendingDeletion"}

    unknown = kms(arn, "Paused", "--data-dir", str(tmp_path))
    assert unknown.returncode == 2 and "invalid choice: 'Paused'" in unknown.stderr
    missing = kms(arn, "Disabled", "--data-dir", str(tmp_path / "nowhere"))
    assert (missing.returncode, missing.stderr) == (1, f"shoal: {tmp_path / 'nowhere'} is not a directory\n")
    assert read_kms_key_states(tmp_path) == {"alias/viewer-events": "PendingDeletion"}
