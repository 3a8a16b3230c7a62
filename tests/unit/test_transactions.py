"""The storage-free parts of transactions, and idempotency tokens on a real engine."""

from __future__ import annotations

import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.api.transactions import (
    TOKEN_TTL_S,
    IdempotentParameterMismatchException,
    TransactionCanceledException,
    check_token,
    evaluate,
    plan_get,
    plan_write,
    prune_tokens,
    remember_token,
    request_digest,
)
from shoal.errors import ValidationException
from shoal.storage.lmdb_engine import LmdbEngine

TABLE = types.SimpleNamespace(name="T", hash_key="pk", range_key="sk")
KEY = {"pk": {"S": "u1"}, "sk": {"N": "1"}}


def resolved(action: dict):
    write = plan_write(action)
    write.table, write.key = TABLE, KEY
    return write


# ---------------------------------------------------------------- errors


def test_cancelled_body_lists_codes_in_order():
    exc = TransactionCanceledException([{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Message": "m"}])
    assert exc.status == 400
    assert exc.to_body() == {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Message": "m"}],
        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                   "[None, ConditionalCheckFailed]",
    }


# ---------------------------------------------------------------- plan_write


@pytest.mark.parametrize("action, message", [
    ({}, "Invalid Request: TransactWriteRequest should contain Delete or Put or Update request"),
    ({"Put": None}, "Invalid Request: TransactWriteRequest should contain Delete or Put or Update request"),
    ({"Put": {"TableName": "T", "Item": KEY}, "ConditionCheck": {"TableName": "T", "Key": KEY, "ConditionExpression": "a = a"}},
     "TransactItems can only contain one of Check, Put, Update or Delete"),
    ({"Update": {"TableName": "T", "Key": KEY, "UpdateExpression": "SET a = :a",
                 "ExpressionAttributeValues": {":a": {"S": "x"}, ":b": {"S": "y"}}}},
     "Value provided in ExpressionAttributeValues unused in expressions: keys: {:b}"),
    ({"Put": {"TableName": "T", "Item": dict(KEY, big={"S": "x" * 410_000})}},
     "Item size has exceeded the maximum allowed size"),
])
def test_plan_write_rejects(action, message):
    with pytest.raises(ValidationException) as info:
        plan_write(action)
    assert info.value.message == message


def test_plan_write_normalizes_put_items():
    write = plan_write({"Put": {"TableName": "T", "Item": dict(KEY, n={"N": "1.50"})}})
    assert write.kind == "Put" and write.item["n"] == {"N": "1.5"}


def test_plan_write_ignores_legacy_members():
    write = plan_write({"Put": {"TableName": "T", "Item": KEY, "Expected": {"a": {"Exists": False}}}})
    assert write.condition is None


# ---------------------------------------------------------------- evaluate


def test_failed_condition_reason_returns_old_item_only_when_asked():
    spec = {"TableName": "T", "Key": KEY, "ConditionExpression": "attribute_not_exists(pk)"}
    old = dict(KEY, v={"N": "1"})
    assert evaluate(resolved({"ConditionCheck": spec}), old) == (
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}, None)
    asked = dict(spec, ReturnValuesOnConditionCheckFailure="ALL_OLD")
    reason, _ = evaluate(resolved({"ConditionCheck": asked}), old)
    assert reason["Item"] == old


def test_update_applies_to_the_key_when_the_item_is_missing():
    write = resolved({"Update": {"TableName": "T", "Key": KEY, "UpdateExpression": "ADD n :one",
                                 "ExpressionAttributeValues": {":one": {"N": "1"}}}})
    reason, new = evaluate(write, None)
    assert reason is None and new == dict(KEY, n={"N": "1"}) and write.size > 0


def test_item_dependent_update_errors_are_validation_error_reasons():
    write = resolved({"Update": {"TableName": "T", "Key": KEY, "UpdateExpression": "SET v = w + :one",
                                 "ExpressionAttributeValues": {":one": {"N": "1"}}}})
    assert evaluate(write, dict(KEY, w={"S": "text"}))[0] == {
        "Code": "ValidationError",
        "Message": "An operand in the update expression has an incorrect data type",
    }
    key_update = resolved({"Update": {"TableName": "T", "Key": KEY, "UpdateExpression": "REMOVE sk"}})
    assert evaluate(key_update, None)[0] == {
        "Code": "ValidationError",
        "Message": "One or more parameter values were invalid: Cannot update attribute sk. "
                   "This attribute is part of the key",
    }


def test_delete_and_check_write_no_item():
    assert evaluate(resolved({"Delete": {"TableName": "T", "Key": KEY}}), KEY) == (None, None)


# ---------------------------------------------------------------- plan_get


def test_plan_get_checks_names():
    with pytest.raises(ValidationException) as info:
        plan_get({"Get": {"TableName": "T", "Key": KEY, "ExpressionAttributeNames": {"#a": "a"}}})
    assert info.value.message == "ExpressionAttributeNames can only be specified when using expressions"
    _spec, projection = plan_get({"Get": {"TableName": "T", "Key": KEY, "ProjectionExpression": "a"}})
    assert projection.apply({"a": {"S": "1"}, "b": {"S": "2"}}) == {"a": {"S": "1"}}


# ---------------------------------------------------------------- tokens


@pytest.fixture
def engine(tmp_path):
    with LmdbEngine(str(tmp_path / "lmdb"), sync=False) as eng:
        yield eng


def test_token_replays_same_request_and_rejects_another(engine):
    digest = request_digest({"TransactItems": [{"Put": {"TableName": "T", "Item": KEY}}]})
    other = request_digest({"TransactItems": [{"Delete": {"TableName": "T", "Key": KEY}}]})
    with engine.write() as txn:
        assert not check_token(txn, "us-east-1", "tok", digest, 1000.0)
        remember_token(txn, "us-east-1", "tok", digest, 1000.0)
    with engine.write() as txn:
        assert check_token(txn, "us-east-1", "tok", digest, 1000.0 + TOKEN_TTL_S - 1)
        assert not check_token(txn, "eu-west-1", "tok", digest, 1001.0)  # tokens are per region
        with pytest.raises(IdempotentParameterMismatchException) as info:
            check_token(txn, "us-east-1", "tok", other, 1001.0)
        assert info.value.message == "Request parameters do not match the cached response"
        # after ten minutes the token starts afresh, whatever the request
        assert not check_token(txn, "us-east-1", "tok", other, 1000.0 + TOKEN_TTL_S + 1)


def test_prune_removes_only_expired_tokens_and_their_index(engine):
    digest = b"d" * 32
    with engine.write() as txn:
        for i in range(5):
            remember_token(txn, "us-east-1", f"old{i}", digest, 1000.0 + i)
        remember_token(txn, "us-east-1", "fresh", digest, 1000.0 + TOKEN_TTL_S)
        # reusing an expired token moves its index entry
        remember_token(txn, "us-east-1", "old0", digest, 1000.0 + TOKEN_TTL_S)
    with engine.write() as txn:
        assert prune_tokens(txn, 1000.0 + TOKEN_TTL_S + 10, limit=2) == 2
        assert prune_tokens(txn, 1000.0 + TOKEN_TTL_S + 10) == 2
        assert prune_tokens(txn, 1000.0 + TOKEN_TTL_S + 10) == 0
    with engine.read() as txn:
        left = [key for key, _ in txn.scan("meta", b"txtoken/")]
    assert len(left) == 4  # fresh and old0: a record and an index entry each
    assert sum(key.endswith(b"fresh") for key in left) == 2
    assert sum(key.endswith(b"old0") for key in left) == 2


_values = st.dictionaries(st.sampled_from("abcdef"), st.text(max_size=5), max_size=6)


@given(_values, st.randoms())
def test_digest_ignores_member_order(members, rng):
    shuffled_names = list(members)
    rng.shuffle(shuffled_names)
    a = {"TransactItems": [{"Put": {"TableName": "T", "Item": {k: {"S": v} for k, v in members.items()}}}]}
    b = {"TransactItems": [{"Put": {"Item": {k: {"S": members[k]} for k in shuffled_names}, "TableName": "T"}}],
         "ReturnConsumedCapacity": "TOTAL"}
    assert request_digest(a) == request_digest(b)
