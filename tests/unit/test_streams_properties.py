"""Property: whatever the writes and however often shards roll over, a
consumer following lineage sees each effective change exactly once, in
order, and replaying the stream rebuilds the table."""

from __future__ import annotations

import tempfile

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.api import DEFAULT_ACCOUNT, Context, items, query, streams, tables
from shoal.api.catalog import Catalog
from shoal.storage.lmdb_engine import LmdbEngine

KEYS = ["a", "b", "c"]
operation = st.tuples(st.sampled_from(["put", "delete"]), st.sampled_from(KEYS), st.integers(0, 2))


def replay(ctx, arn) -> tuple[dict, int]:
    state, count = {}, 0
    for shard in streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard["ShardId"],
                                                    "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        while iterator:
            page = orjson.loads(streams.get_records(ctx, {"ShardIterator": iterator, "Limit": 2}))
            for record in page["Records"]:
                count += 1
                key = record["dynamodb"]["Keys"]["pk"]["S"]
                if record["eventName"] == "REMOVE":
                    assert state.pop(key) == record["dynamodb"]["OldImage"]
                else:
                    assert state.get(key) == record["dynamodb"].get("OldImage")
                    state[key] = record["dynamodb"]["NewImage"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return state, count


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(operation, max_size=6), min_size=1, max_size=5), st.integers(1, 4))
def test_stream_replays_to_the_table(batches, rollover):
    with tempfile.TemporaryDirectory() as path:
        engine = LmdbEngine(path, sync=False)
        try:
            ctx = Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine))
            arn = tables.create_table(ctx, {
                "TableName": "prop", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
                "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            })["TableDescription"]["LatestStreamArn"]
            job = streams.Materializer(engine, streams.StreamConfig(rollover_records=rollover), chunk=3)
            model, effective = {}, 0
            for batch in batches:
                for op, key, value in batch:
                    if op == "put":
                        item = {"pk": {"S": key}, "v": {"N": str(value)}}
                        effective += model.get(key) != item
                        model[key] = item
                        items.put_item(ctx, {"TableName": "prop", "Item": item})
                    else:
                        effective += key in model
                        model.pop(key, None)
                        items.delete_item(ctx, {"TableName": "prop", "Key": {"pk": {"S": key}}})
                while job():
                    pass
            state, count = replay(ctx, arn)
            assert state == model
            assert count == effective
            scanned = query.scan(ctx, {"TableName": "prop"})
            scanned = orjson.loads(scanned) if isinstance(scanned, bytes) else scanned
            assert len(scanned["Items"]) == len(model)
        finally:
            engine.close()
