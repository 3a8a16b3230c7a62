"""What a replica source does for each write of a global table, on its
short paths: the sender's splice of a new item's record (``node._splice``)
and the stream job's copy of it (``Materializer._copy``), checked against
the records decoded the long way, with the attributes and records that could
mislead a slicer (an attribute named ``new``, ``old`` or ``userIdentity``, a
TTL deletion's identity) and with several tables' writes interleaved."""

from __future__ import annotations

import time

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, streams, tables, ttl
from shoal.api.catalog import Catalog
from shoal.api.changelog import decode_change, read_raw_changes
from shoal.replication import control, node

HOME, PEER = "us-east-1", "eu-west-1"


@pytest.fixture
def ctx(engine, clock):
    control.configure(engine, control.Settings(HOME, {PEER: "http://127.0.0.1:1"}))
    yield Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    control.unconfigure(engine)


def _create(ctx, name: str, stream: bool = False) -> None:
    request = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
               "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    tables.create_table(ctx, request)


def _global(ctx, name: str) -> None:
    _create(ctx, name)
    tables.update_table(ctx, {"TableName": name, "ReplicaUpdates": [{"Create": {"RegionName": PEER}}]})


def _put(ctx, name: str, item: dict) -> None:
    items.put_item(ctx, {"TableName": name, "Item": item})


AWKWARD = [  # new items whose images hold what the slicers look for
    {"pk": {"S": "n"}, "new": {"S": "an attribute named new"}},
    {"pk": {"S": "o"}, "old": {"M": {"new": {"S": ',"new":null}'}}}},
    {"pk": {"S": "u"}, "userIdentity": {"M": {"type": {"S": "Service"}}}},
    {"pk": {"S": 'q"}},"old":null,"new":'}, "x": {"S": '"}}}'}},
    {"pk": {"S": "l"}, "list": {"L": [{"M": {"a": {"S": "}}}"}}}]}},
]


def _records(ctx, name: str) -> list[dict]:
    streams.catch_up(ctx.engine)
    arn = tables.describe_table(ctx, {"TableName": name})["Table"]["LatestStreamArn"]
    out = []
    for shard in streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard["ShardId"],
                                                    "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        out.extend(orjson.loads(streams.get_records(ctx, {"ShardIterator": iterator}))["Records"])
    return out


def test_the_senders_splice_of_every_record_is_the_decoded_records_origin_keys_and_image(ctx, clock):
    """``_splice`` cuts a new item's record without searching its image
    (the first ``,"new":`` follows ``"old":null``); whatever the image
    holds, the piece is the record's origin, keys and image after, as the
    record decoded says; an update's and a delete's records take the long
    way (one whose image before holds ``,"new":`` is decoded instead), and a
    TTL deletion's (its userIdentity) is left to the decoder."""
    _global(ctx, "events")
    for item in AWKWARD:
        _put(ctx, "events", item)
    _put(ctx, "events", {"pk": {"S": "n"}, "new": {"S": "updated"}})  # an update: an image before
    items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "o"}}})
    _put(ctx, "events", {"pk": {"S": "t"}, "exp": {"N": str(int(time.time()) - 10)}})
    ttl.update_time_to_live(ctx, {"TableName": "events",
                                  "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "exp"}})
    sweeper = ttl.Sweeper(ctx.engine, ctx.catalog, ttl.TtlConfig(sweep_interval_s=3600))
    while sweeper():
        pass
    spliced, kinds = 0, []
    with ctx.engine.read() as txn:
        for _seq, _table_id, value in read_raw_changes(txn):
            _ms, record = decode_change(value)
            if "keys" not in record:
                continue
            piece = node._splice(bytes(value))
            if "userIdentity" in record:
                assert piece is None  # decoded by the sender instead
                kinds.append("ttl")
                continue
            kind = "insert" if record["old"] is None else "delete" if record["new"] is None else "update"
            kinds.append(kind)
            if piece is None:  # an image before holding ',"new":' (the update of "n"): decoded instead
                assert kind == "update"
                continue
            assert orjson.loads(b"{" + piece) == {k: record[k] for k in ("origin", "keys", "new")}
            spliced += 1
    assert kinds == ["insert"] * 5 + ["update", "delete", "insert", "ttl"] and spliced == 7


def test_a_global_tables_stream_holds_its_own_records_when_tables_writes_interleave(ctx, clock):
    """The stream job knows a run of one table's records by comparing their
    first bytes with the last record's: with two global tables and a
    regional table with a stream written in turn, each stream has exactly
    its table's records, in order, with their images and sequence numbers."""
    _global(ctx, "one")
    _global(ctx, "two")
    _create(ctx, "regional", stream=True)
    written = {"one": [], "two": [], "regional": []}
    for n in range(12):
        for name in (("one", "two", "regional") if n % 3 else ("one", "one", "regional", "two")):
            item = dict(AWKWARD[n % len(AWKWARD)], pk={"S": f"{name}-{n}-{len(written[name])}"})
            _put(ctx, name, item)
            written[name].append(item)
        if n == 5:
            streams.catch_up(ctx.engine)  # a round in the middle: the next one starts from a cursor
    for name, expected in written.items():
        records = _records(ctx, name)
        assert [r["dynamodb"]["NewImage"] for r in records] == expected
        assert all(r["eventName"] == "INSERT" and "OldImage" not in r["dynamodb"] for r in records)
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
