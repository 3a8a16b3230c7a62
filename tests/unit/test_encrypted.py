"""Encryption at rest: the key transform, the partition-key codec, value
sealing, the keyring, the data directory checks, and the API over an
encrypted engine (shoal.storage.encrypted, shoal.storage.keyring)."""

from __future__ import annotations

import base64
import hashlib
import os

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import items, query, tables
from shoal.api.catalog import Catalog
from shoal.model.keys import encode_key_value
from shoal.storage.datadir import DataDirError, open_data_dir
from shoal.storage.encrypted import EncryptedEngine, IntegrityError, KeyCodec, KeyTransform
from shoal.storage.keyring import (
    DataKeys,
    KeyringError,
    load_keyring,
    parse_master_key,
    rotate_master_key,
    write_keyring,
)
from shoal.storage.lmdb_engine import LmdbEngine

SEED = bytes(range(32))
TRANSFORM = KeyTransform(SEED)
KEYS = DataKeys(b"v" * 32, b"p" * 32, b"o" * 32)
MASTER = bytes(range(100, 132))
OTHER = bytes(range(200, 232))


# ---------------------------------------------------------------- key transform


@given(st.binary(max_size=80), st.binary(max_size=80))
@settings(max_examples=400)
def test_transform_keeps_bytewise_order(a, b):
    ea, eb = TRANSFORM.encode(a), TRANSFORM.encode(b)
    assert (a < b) == (ea < eb)
    assert (a == b) == (ea == eb)


@given(st.binary(max_size=80), st.binary(max_size=40))
def test_transform_keeps_prefixes_and_round_trips(a, b):
    assert TRANSFORM.encode(a + b).startswith(TRANSFORM.encode(a))
    assert TRANSFORM.decode(TRANSFORM.encode(a + b)) == a + b
    assert len(TRANSFORM.encode(a)) == 2 * len(a)


_VALUES = {
    "S": st.text(min_size=1, max_size=30),
    "N": st.decimals(allow_nan=False, allow_infinity=False, places=4,
                     min_value=-10**20, max_value=10**20).map(str),
    "B": st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(b).decode()),
}


@given(st.data())
def test_transformed_sort_keys_keep_dynamodb_order(data):
    type_ = data.draw(st.sampled_from("SNB"))
    values = [(type_, v) for v in data.draw(st.lists(_VALUES[type_], min_size=2, max_size=8))]
    from shoal.model.numbers import normalize_number

    encoded = [encode_key_value(t, normalize_number(v) if t == "N" else v) for t, v in values]
    prefix = b"\x07" * 36  # a table prefix, hash and partition hash
    plain = sorted(range(len(encoded)), key=lambda i: encoded[i])
    hidden = sorted(range(len(encoded)), key=lambda i: TRANSFORM.encode(prefix + encoded[i]))
    assert [encoded[i] for i in plain] == [encoded[i] for i in hidden]


def test_transform_depends_on_the_key_and_hides_plaintext():
    other = KeyTransform(bytes(32))
    text = b"zebra-crossing-4711"
    assert TRANSFORM.encode(text) != other.encode(text)
    assert text not in TRANSFORM.encode(text)
    assert text.decode().encode("utf-16-le") not in TRANSFORM.encode(text)


# ---------------------------------------------------------------- partition codec


def test_partition_hash_keeps_equality_only():
    codec = KeyCodec(b"p" * 32)
    a = encode_key_value("S", "u00000001")
    assert codec.partition(a) == codec.partition(encode_key_value("S", "u00000001"))
    assert codec.partition(a) != codec.partition(encode_key_value("S", "u00000002"))
    assert len(codec.partition(a)) == 16
    assert KeyCodec(b"q" * 32).partition(a) != codec.partition(a)


# ---------------------------------------------------------------- the engine wrapper


@pytest.fixture
def raw_and_encrypted(tmp_path):
    inner = LmdbEngine(tmp_path / "db", sync=False)
    yield inner, EncryptedEngine(inner, KEYS)
    inner.close()


def test_values_round_trip_and_are_sealed(raw_and_encrypted):
    inner, engine = raw_and_encrypted
    with engine.write() as txn:
        txn.put("items", b"key-zebra", b"value-zebra-crossing-4711")
    with engine.read() as txn:
        assert txn.get("items", b"key-zebra") == b"value-zebra-crossing-4711"
        assert list(txn.scan("items")) == [(b"key-zebra", b"value-zebra-crossing-4711")]
    with inner.read() as txn:
        ((stored_key, sealed),) = list(txn.scan("items"))
    assert stored_key == TRANSFORM.__class__(KEYS.order).encode(b"key-zebra")
    assert b"zebra" not in stored_key and b"zebra" not in sealed
    assert len(sealed) == len(b"value-zebra-crossing-4711") + 1 + 12 + 16


def test_same_value_seals_differently_each_write(raw_and_encrypted):
    inner, engine = raw_and_encrypted
    with engine.write() as txn:
        txn.put("meta", b"a", b"same")
        txn.put("meta", b"b", b"same")
    with inner.read() as txn:
        first, second = [v for _, v in txn.scan("meta")]
    assert first != second


def test_tampered_value_is_detected(raw_and_encrypted):
    inner, engine = raw_and_encrypted
    with engine.write() as txn:
        txn.put("items", b"k", b"hello")
    with inner.write() as txn:
        ((stored_key, sealed),) = list(txn.scan("items"))
        stored_key, sealed = bytes(stored_key), bytearray(sealed)
        sealed[-1] ^= 1
        txn.put("items", stored_key, bytes(sealed))
    with engine.read() as txn, pytest.raises(IntegrityError, match="failed authentication"):
        txn.get("items", b"k")


def test_value_moved_to_another_key_is_detected(raw_and_encrypted):
    inner, engine = raw_and_encrypted
    with engine.write() as txn:
        txn.put("items", b"alice", b"alice's item")
        txn.put("items", b"bob", b"bob's item")
    transform = KeyTransform(KEYS.order)
    with inner.write() as txn:
        txn.put("items", transform.encode(b"bob"), txn.get("items", transform.encode(b"alice")))
    with engine.read() as txn, pytest.raises(IntegrityError):
        txn.get("items", b"bob")


def test_wrong_data_key_cannot_read(tmp_path):
    inner = LmdbEngine(tmp_path / "db", sync=False)
    try:
        with EncryptedEngine(inner, KEYS).write() as txn:
            txn.put("items", b"k", b"v")
        wrong = DataKeys(b"w" * 32, KEYS.partition, KEYS.order)
        with EncryptedEngine(inner, wrong).read() as txn, pytest.raises(IntegrityError):
            txn.get("items", b"k")
    finally:
        inner.close()


# ---------------------------------------------------------------- keyring and master keys


def test_master_key_formats():
    key = bytes(range(32))
    assert parse_master_key(key.hex().encode() + b"\n", "f") == key
    assert parse_master_key(base64.b64encode(key) + b"\n", "f") == key
    assert parse_master_key(key, "f") == key
    with pytest.raises(KeyringError, match="the master key in f is not a 32-byte key"):
        parse_master_key(b"short", "f")


def test_keyring_opens_only_with_its_master_key_and_rotates(tmp_path):
    write_keyring(tmp_path, KEYS, MASTER)
    assert load_keyring(tmp_path, MASTER) == KEYS
    with pytest.raises(KeyringError, match="the master key does not open data directory"):
        load_keyring(tmp_path, OTHER)
    before = (tmp_path / "KEYRING").read_bytes()
    with pytest.raises(KeyringError):
        rotate_master_key(tmp_path, OTHER, MASTER)  # a wrong old key changes nothing
    assert (tmp_path / "KEYRING").read_bytes() == before
    rotate_master_key(tmp_path, MASTER, OTHER)
    assert load_keyring(tmp_path, OTHER) == KEYS
    with pytest.raises(KeyringError):
        load_keyring(tmp_path, MASTER)
    assert sorted(os.listdir(tmp_path)) == ["KEYRING"]  # no temporary left behind


# ---------------------------------------------------------------- the data directory


def _snapshot(path) -> dict:
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            stat = os.stat(full)
            with open(full, "rb") as handle:
                out[full] = (hashlib.sha256(handle.read()).hexdigest(), stat.st_mtime_ns, stat.st_size)
    return out


def test_encrypted_directory_round_trip_and_refusals(tmp_path):
    data = tmp_path / "data"
    engine = open_data_dir(data, sync=False, master_key=MASTER)
    assert isinstance(engine, EncryptedEngine)
    with engine.write() as txn:
        txn.put("meta", b"hello", b"world")
    engine.close()
    assert "encryption aes-256-gcm" in (data / "FORMAT").read_text().splitlines()
    before = _snapshot(data)
    with pytest.raises(DataDirError) as missing:
        open_data_dir(data, master_key=None)
    assert str(missing.value) == (
        f"data directory {data} is encrypted: give its master key with --master-key-file or SHOAL_MASTER_KEY"
    )
    with pytest.raises(DataDirError) as wrong:
        open_data_dir(data, master_key=OTHER)
    assert str(wrong.value) == (
        f"the master key does not open data directory {data}: it is not the key this directory was encrypted with"
    )
    assert _snapshot(data) == before
    engine = open_data_dir(data, sync=False, master_key=MASTER)
    with engine.read() as txn:
        assert txn.get("meta", b"hello") == b"world"
    engine.close()


def test_plain_directory_refuses_a_master_key(tmp_path):
    data = tmp_path / "data"
    open_data_dir(data, sync=False).close()
    before = _snapshot(data)
    with pytest.raises(DataDirError, match="is not encrypted, but a master key was given"):
        open_data_dir(data, master_key=MASTER)
    assert _snapshot(data) == before


def test_missing_keyring_of_a_used_directory_is_damage(tmp_path):
    data = tmp_path / "data"
    open_data_dir(data, sync=False, master_key=MASTER).close()
    os.remove(data / "KEYRING")
    with pytest.raises(DataDirError, match="is damaged: its KEYRING file is missing"):
        open_data_dir(data, master_key=MASTER)


# ---------------------------------------------------------------- the API over an encrypted engine


@pytest.fixture(params=["plain", "encrypted"])
def ctx(request, tmp_path):
    inner = LmdbEngine(tmp_path / "db", sync=False)
    engine = inner if request.param == "plain" else EncryptedEngine(inner, KEYS)
    yield Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: 1_700_000_000.0)
    inner.close()


def _setup_events(ctx):
    tables.create_table(ctx, {
        "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"},
                                 {"AttributeName": "video", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_video", "Projection": {"ProjectionType": "ALL"},
                                    "KeySchema": [{"AttributeName": "video", "KeyType": "HASH"},
                                                  {"AttributeName": "ts", "KeyType": "RANGE"}]}],
    })
    for user in ("u1", "u2", "u3"):
        for ts in (-5, 0, 7, 30, 1000, 1700000000000):
            items.put_item(ctx, {"TableName": "events", "Item": {
                "user_id": {"S": user}, "ts": {"N": str(ts)}, "video": {"S": f"v{ts % 3}"}}})


def _query(ctx, **request):
    return orjson.loads(query.query(ctx, {"TableName": "events", **request}))


def test_api_reads_the_same_through_encryption(ctx):
    _setup_events(ctx)
    got = orjson.loads(items.get_item(ctx, {"TableName": "events",
                                            "Key": {"user_id": {"S": "u2"}, "ts": {"N": "30"}}}))
    assert got["Item"]["video"] == {"S": "v0"}
    out = _query(ctx, KeyConditionExpression="user_id = :u AND ts BETWEEN :a AND :b",
                 ExpressionAttributeValues={":u": {"S": "u1"}, ":a": {"N": "-5"}, ":b": {"N": "30"}})
    assert [i["ts"]["N"] for i in out["Items"]] == ["-5", "0", "7", "30"]
    out = _query(ctx, KeyConditionExpression="user_id = :u AND ts > :a", ScanIndexForward=False,
                 ExpressionAttributeValues={":u": {"S": "u3"}, ":a": {"N": "7"}})
    assert [i["ts"]["N"] for i in out["Items"]] == ["1700000000000", "1000", "30"]
    out = _query(ctx, IndexName="by_video", KeyConditionExpression="video = :v",
                 ExpressionAttributeValues={":v": {"S": "v1"}})
    assert sorted((i["user_id"]["S"], i["ts"]["N"]) for i in out["Items"]) == [
        (u, str(t)) for u in ("u1", "u2", "u3") for t in sorted((-5, 7, 1000), key=str)]
    page = _query(ctx, KeyConditionExpression="user_id = :u", Limit=2,
                  ExpressionAttributeValues={":u": {"S": "u1"}})
    rest = _query(ctx, KeyConditionExpression="user_id = :u", ExclusiveStartKey=page["LastEvaluatedKey"],
                  ExpressionAttributeValues={":u": {"S": "u1"}})
    assert len(page["Items"]) + len(rest["Items"]) == 6
    segments = [orjson.loads(query.scan(ctx, {"TableName": "events", "Segment": s, "TotalSegments": 3}))
                for s in range(3)]
    assert sum(s["Count"] for s in segments) == 18
    desc = tables.describe_table(ctx, {"TableName": "events"})["Table"]
    assert desc["ItemCount"] == 18
    if isinstance(ctx.engine, EncryptedEngine):
        assert desc["SSEDescription"] == {"Status": "ENABLED", "SSEType": "AES256"}
    else:
        assert "SSEDescription" not in desc
