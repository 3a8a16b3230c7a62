"""The items keys a write request will read, named before it runs
(``shoal.api.keys_ahead``, for the group committer's ``Engine.lock_ahead``):
a BatchWriteItem's PutRequests and DeleteRequests, a TransactWriteItems'
Puts, Updates, Deletes and ConditionChecks, a single-item write's key;
whatever the operation would refuse is left out, never raised."""

from __future__ import annotations

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api.common import storage_key
from shoal.api.keys_ahead import KEYED_WRITES, write_keys_ahead
from shoal.server.dispatch import Dispatcher
from shoal.server.http import Request
from shoal.storage.lmdb_engine import LmdbEngine


@pytest.fixture
def node(tmp_path):
    engine = LmdbEngine(tmp_path / "db", sync=False)
    dispatcher = Dispatcher(engine, metrics=False, capacity=False, group_commit=False)
    for name, key_schema, types in (("pairs", [("pk", "HASH"), ("sk", "RANGE")], {"pk": "S", "sk": "N"}),
                                    ("plain", [("pk", "HASH")], {"pk": "S"})):
        answer = dispatcher(Request("POST", "/", {
            "x-amz-target": "DynamoDB_20120810.CreateTable", "content-type": "application/x-amz-json-1.0"},
            orjson.dumps({"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                          "KeySchema": [{"AttributeName": a, "KeyType": t} for a, t in key_schema],
                          "AttributeDefinitions": [{"AttributeName": a, "AttributeType": t}
                                                   for a, t in types.items()]}),
            ("127.0.0.1", 1), False))
        assert answer.status == 200, answer.body
    yield Context("us-east-1", DEFAULT_ACCOUNT, engine, dispatcher.catalog, None, dispatcher.clock, None)
    dispatcher.close()
    engine.close()


def keys(ctx, operation: str, request: dict) -> list:
    with ctx.engine.read() as txn:
        return write_keys_ahead(ctx, txn, operation, request)


def stored(ctx, name: str, key: dict) -> bytes:
    with ctx.engine.read() as txn:
        return storage_key(ctx.catalog.get(txn, ctx.region, name), key)


def pair(pk: str, sk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"N": sk}}


def test_a_batch_s_puts_and_deletes_in_order_of_its_tables_and_requests(node):
    request = {"RequestItems": {
        "pairs": [{"PutRequest": {"Item": {**pair("a", "1"), "x": {"S": "y"}}}},
                  {"DeleteRequest": {"Key": pair("b", "2")}},
                  {"PutRequest": {"Item": {"pk": {"S": "no sort key"}}}},  # refused by the batch: left out
                  {"DeleteRequest": {"Key": {"pk": {"N": "1"}, "sk": {"N": "1"}}}},  # mistyped: left out
                  {}],
        "plain": [{"DeleteRequest": {"Key": {"pk": {"S": "c"}}}}],
        "missing": [{"DeleteRequest": {"Key": {"pk": {"S": "d"}}}}]}}
    assert keys(node, "BatchWriteItem", request) == [
        stored(node, "pairs", pair("a", "1")), stored(node, "pairs", pair("b", "2")),
        stored(node, "plain", {"pk": {"S": "c"}})]


def test_a_transaction_s_actions_each_name_their_item(node):
    request = {"TransactItems": [
        {"Put": {"TableName": "plain", "Item": {"pk": {"S": "a"}, "n": {"N": "1"}}}},
        {"Update": {"TableName": "pairs", "Key": pair("b", "2"), "UpdateExpression": "SET n = :n"}},
        {"Delete": {"TableName": "plain", "Key": {"pk": {"S": "c"}}}},
        {"ConditionCheck": {"TableName": "pairs", "Key": pair("d", "4"), "ConditionExpression": "x"}},
        {"Delete": {"TableName": "missing", "Key": {"pk": {"S": "e"}}}},
        {"Update": {"TableName": "plain", "Key": {"pk": {"N": "5"}}}},
        {},
        {"Bogus": {"TableName": "plain", "Key": {"pk": {"S": "f"}}}}]}
    assert keys(node, "TransactWriteItems", request) == [
        stored(node, "plain", {"pk": {"S": "a"}}), stored(node, "pairs", pair("b", "2")),
        stored(node, "plain", {"pk": {"S": "c"}}), stored(node, "pairs", pair("d", "4"))]


def test_single_item_writes_and_malformed_requests(node):
    assert keys(node, "PutItem", {"TableName": "plain", "Item": {"pk": {"S": "a"}}}) == [
        stored(node, "plain", {"pk": {"S": "a"}})]
    assert keys(node, "DeleteItem", {"TableName": "plain", "Key": {"pk": {"S": "b"}}}) == [
        stored(node, "plain", {"pk": {"S": "b"}})]
    assert keys(node, "UpdateItem", {"TableName": "missing", "Key": {"pk": {"S": "b"}}}) == []
    for operation in ("BatchWriteItem", "TransactWriteItems"):
        assert keys(node, operation, {}) == []
        assert keys(node, operation, {"RequestItems": [], "TransactItems": {"a": 1}}) == []
    assert KEYED_WRITES == {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
