"""MRSC's table side without servers: chosen values reach a region's table in
ballot order (``shoal.replication.strong.apply_chosen``), and a peer's
consensus request names a register by table and key."""

from __future__ import annotations

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, tables
from shoal.api.catalog import Catalog
from shoal.api.changelog import read_raw_changes
from shoal.consensus import Ballot
from shoal.errors import ResourceNotFoundException, SerializationException
from shoal.replication import strong

REGION = "us-east-1"
KEY = {"pk": {"S": "k"}}


@pytest.fixture
def ctx(engine):
    context = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))
    tables.create_table(context, {
        "TableName": "strong", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]},
        extra={"MultiRegionConsistency": "STRONG"})
    return context


def _item(ctx):
    return items.get_item(ctx, {"TableName": "strong", "Key": KEY})


def _changes(engine) -> int:
    with engine.read() as txn:
        return sum(1 for _ in read_raw_changes(txn, 0))


def _apply(ctx, counter: int, value: dict | None) -> bool:
    raw = orjson.dumps(value) if value is not None else None
    return strong.apply_chosen(ctx.engine, ctx.catalog, REGION, "strong", KEY, Ballot(counter, "us-east-2/x"), raw)


def test_chosen_values_land_in_ballot_order_whatever_order_they_come_in(ctx):
    before = _changes(ctx.engine)
    assert _apply(ctx, 2, {**KEY, "v": {"N": "2"}}) is True
    assert _apply(ctx, 1, {**KEY, "v": {"N": "1"}}) is False  # older: the item keeps the newer value
    assert orjson.loads(_item(ctx))["Item"] == {**KEY, "v": {"N": "2"}}
    assert _apply(ctx, 2, {**KEY, "v": {"N": "2"}}) is False  # the same learn twice
    assert _apply(ctx, 3, None) is True  # a delete
    assert _item(ctx) == b"{}"
    assert _changes(ctx.engine) == before + 2  # one change record per value applied


def test_an_unchanged_value_under_a_higher_ballot_writes_no_change_record(ctx):
    _apply(ctx, 1, {**KEY, "v": {"N": "1"}})
    before = _changes(ctx.engine)
    assert _apply(ctx, 5, {**KEY, "v": {"N": "1"}}) is False  # a read's write-back
    assert _changes(ctx.engine) == before
    assert _apply(ctx, 4, {**KEY, "v": {"N": "0"}}) is False  # below the ballot it recorded
    assert orjson.loads(_item(ctx))["Item"] == {**KEY, "v": {"N": "1"}}


def test_a_table_that_is_not_mrsc_takes_no_chosen_value(engine):
    context = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))
    tables.create_table(context, {
        "TableName": "regional", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    assert strong.apply_chosen(engine, context.catalog, REGION, "regional", KEY, Ballot(1, "x"), b'{"pk":{"S":"k"}}') \
        is False
    assert items.get_item(context, {"TableName": "regional", "Key": KEY}) == b"{}"


def test_a_peer_request_names_its_register_by_table_and_key(ctx):
    import base64

    key = base64.b64encode(strong.register_key(KEY)).decode()
    first = strong.handle_paxos(ctx, {"TableName": "strong", "Kind": "prepare", "Key": key, "Ballot": [3, "a/b"]})
    assert first == {"Granted": True, "Promised": [3, "a/b"], "Accepted": [0, ""], "Value": None}
    stale = strong.handle_paxos(ctx, {"TableName": "strong", "Kind": "prepare", "Key": key, "Ballot": [2, "a/b"]})
    assert stale["Granted"] is False and stale["Promised"] == [3, "a/b"]
    peek = strong.handle_paxos(ctx, {"TableName": "strong", "Kind": "peek", "Key": key, "Ballot": [0, ""]})
    assert peek == {"Granted": True, "Promised": [3, "a/b"], "Accepted": [0, ""], "Value": None}
    with pytest.raises(SerializationException):
        strong.handle_paxos(ctx, {"TableName": "strong", "Kind": "prepare", "Key": "not base64!", "Ballot": [1, "x"]})
    with pytest.raises(ResourceNotFoundException):
        strong.handle_paxos(ctx, {"TableName": "absent", "Kind": "prepare", "Key": key, "Ballot": [1, "x"]})


def test_a_witness_keeps_registers_without_a_table(engine):
    import base64

    witness = Context("us-west-2", DEFAULT_ACCOUNT, engine, Catalog(engine))
    strong.create_witness(witness, {"TableName": "strong", "SourceRegion": REGION, "Id": "t-1"})
    key = base64.b64encode(strong.register_key(KEY)).decode()
    value = base64.b64encode(b'{"pk":{"S":"k"}}').decode()
    accepted = strong.handle_paxos(witness, {"TableName": "strong", "Kind": "accept", "Key": key,
                                             "Ballot": [1, "r/x"], "Value": value})
    assert accepted == {"Granted": True, "Promised": [1, "r/x"], "Accepted": [1, "r/x"], "Value": value}
    peek = strong.handle_paxos(witness, {"TableName": "strong", "Kind": "peek", "Key": key, "Ballot": [0, ""]})
    assert peek["Value"] == value


def test_a_learned_value_from_a_peer_is_applied_and_a_malformed_one_refused(ctx):
    learned = {"TableName": "strong", "SourceRegion": "us-east-2", "Key": strong.register_key(KEY).decode(),
               "Ballot": [7, "us-east-2/x"], "Value": '{"pk":{"S":"k"},"v":{"S":"learned"}}'}
    assert strong.handle_learn(ctx, learned) == {"Applied": True}
    assert strong.handle_learn(ctx, learned) == {"Applied": False}
    assert orjson.loads(_item(ctx))["Item"] == {**KEY, "v": {"S": "learned"}}
    for bad in ({"Ballot": [-1, "x"]}, {"Key": "[1]"}, {"Value": "{not json"}, {"Ballot": "7"}):
        with pytest.raises(SerializationException):
            strong.handle_learn(ctx, {**learned, **bad})
    assert orjson.loads(_item(ctx))["Item"] == {**KEY, "v": {"S": "learned"}}
