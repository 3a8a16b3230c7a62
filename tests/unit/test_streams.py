"""Streams and TTL over a real LMDB engine, driving the operations and the
background jobs directly (no HTTP): view types, lineage, trimming, expiry."""

from __future__ import annotations

import time

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, streams, tables, ttl
from shoal.api.catalog import Catalog
from shoal.errors import ResourceNotFoundException, ShoalError, ValidationException

REGION = "us-east-1"


@pytest.fixture
def ctx(engine, clock):
    return Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)


def make_table(ctx, name="events", view="NEW_AND_OLD_IMAGES", range_key=True):
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    defs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_key:
        schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
        defs.append({"AttributeName": "sk", "AttributeType": "N"})
    body = {"TableName": name, "KeySchema": schema, "AttributeDefinitions": defs, "BillingMode": "PAY_PER_REQUEST"}
    if view:
        body["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    return tables.create_table(ctx, body)["TableDescription"]


def put(ctx, name, **attrs):
    items.put_item(ctx, {"TableName": name, "Item": attrs})


def materialize(engine, config=None):
    job = streams.Materializer(engine, config or streams.StreamConfig())
    while job():
        pass


def read_all(ctx, arn, kind="TRIM_HORIZON", seq=None):
    """Every record of every shard, following lineage in DescribeStream order."""
    out = []
    desc = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]
    for shard in desc["Shards"]:
        request = {"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": kind}
        if seq is not None:
            request["SequenceNumber"] = seq
        iterator = streams.get_shard_iterator(ctx, request)["ShardIterator"]
        while iterator:
            page = orjson.loads(streams.get_records(ctx, {"ShardIterator": iterator}))
            out.extend(page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return out


def error_of(fn, ctx, body) -> ShoalError:
    with pytest.raises(ShoalError) as info:
        fn(ctx, body)
    return info.value


# ---------------------------------------------------------------- pure helpers


def test_sequence_numbers_are_21_digit_decimal_strings():
    assert streams.format_seq(1) == "100000000000000000001"
    assert streams.parse_seq("100000000000000000457") == 457
    assert streams.parse_seq("12a") is None
    assert streams.parse_seq("000000000000000000001") is None  # below the base


def test_stream_label_is_iso8601_with_milliseconds():
    assert streams.stream_label(1704067200.5) == "2024-01-01T00:00:00.500"


def test_iterators_round_trip_and_resist_forgery():
    secret = b"k" * 32
    stream = {"id": "00" * 16, "arn": "arn:aws:dynamodb:us-east-1:0:table/x/stream/l"}
    token = streams.encode_iterator(secret, stream, 3, 99, 1234)
    assert streams.decode_iterator(secret, token) == (bytes(16), 3, 99, 1234)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (forged, "x" * 40, token.replace("|1|", "|1|A")):
        with pytest.raises(ValidationException, match="^Invalid ShardIterator$"):
            streams.decode_iterator(secret, bad)
    with pytest.raises(ValidationException):
        streams.decode_iterator(b"other" * 8, token)


def test_unchanged_writes_are_recognized_even_with_reordered_sets():
    a = {"pk": {"S": "a"}, "tags": {"SS": ["x", "y"]}, "m": {"M": {"n": {"NS": ["1", "2"]}}}}
    b = {"m": {"M": {"n": {"NS": ["2", "1"]}}}, "tags": {"SS": ["y", "x"]}, "pk": {"S": "a"}}
    assert streams._same_image(a, b)
    assert not streams._same_image(a, {**b, "tags": {"SS": ["x"]}})
    assert not streams._same_image(None, a)


def test_images_with_sets_inside_lists_compare():
    # A set inside a list (directly or in a map) once made the materializer
    # fail on every round: the stream stopped and its readers answered 500s.
    a = {"pk": {"S": "a"}, "l": {"L": [{"SS": ["x", "y"]}, {"M": {"b": {"BS": ["AQ==", "Ag=="]}}}, {"L": []}]}}
    b = {"pk": {"S": "a"}, "l": {"L": [{"SS": ["y", "x"]}, {"M": {"b": {"BS": ["Ag==", "AQ=="]}}}, {"L": []}]}}
    assert streams._same_image(a, b)
    assert not streams._same_image(a, {**b, "l": {"L": [{"SS": ["x"]}, b["l"]["L"][1], {"L": []}]}})
    assert not streams._same_image(a, {**b, "l": {"L": list(reversed(b["l"]["L"]))}})


# ---------------------------------------------------------------- records per view type


@pytest.mark.parametrize("view", streams.VIEW_TYPES)
def test_each_view_type_shapes_records(ctx, engine, view):
    arn = make_table(ctx, view=view)["LatestStreamArn"]
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"}, v={"N": "1"})
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"}, v={"N": "2"})
    items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}}})
    materialize(engine)
    records = read_all(ctx, arn)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    keys = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    v1 = {**keys, "v": {"N": "1"}}
    v2 = {**keys, "v": {"N": "2"}}
    new = view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
    old = view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
    expected = [(v1 if new else None, None), (v2 if new else None, v1 if old else None), (None, v2 if old else None)]
    for record, (new_image, old_image) in zip(records, expected):
        data = record["dynamodb"]
        assert data["Keys"] == keys
        assert data.get("NewImage") == new_image
        assert data.get("OldImage") == old_image
        assert data["StreamViewType"] == view
        assert record["eventVersion"] == "1.1" and record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == REGION and "userIdentity" not in record
        # keys: pk(2+1) + sk(2+2) = 7; each image adds v(1+2) = 3 more
        assert data["SizeBytes"] == 7 + sum(7 + 3 for image in (new_image, old_image) if image)
        assert abs(data["ApproximateCreationDateTime"] - time.time()) < 60
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_no_record_for_a_write_that_changes_nothing(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"}, tags={"SS": ["x", "y"]})
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"}, tags={"SS": ["x", "y"]})
    items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "zz"}, "sk": {"N": "1"}}})
    materialize(engine)
    assert [r["eventName"] for r in read_all(ctx, arn)] == ["INSERT"]


def test_changes_before_the_stream_was_enabled_are_not_in_it(ctx, engine):
    make_table(ctx, view=None)
    put(ctx, "events", pk={"S": "before"}, sk={"N": "1"})
    desc = tables.update_table(ctx, {"TableName": "events", "StreamSpecification": {
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}})["TableDescription"]
    assert desc["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    put(ctx, "events", pk={"S": "after"}, sk={"N": "1"})
    materialize(engine)
    records = read_all(ctx, desc["LatestStreamArn"])
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["after"]


# ---------------------------------------------------------------- iterator types


def test_changes_of_tables_without_streams_are_passed_over(ctx, engine):
    """The materializer skips other tables' changes without decoding them,
    in bounded rounds, and jumps to the head when no stream is open."""
    make_table(ctx, "quiet", view=None)
    for i in range(30):
        put(ctx, "quiet", pk={"S": "q"}, sk={"N": str(i)})
    job = streams.Materializer(engine, streams.StreamConfig(), chunk=2)
    assert job() is False  # no stream anywhere: one round reaches the head
    with engine.read() as txn:
        assert streams._cursor(txn) == streams._head_seq(txn)

    desc = make_table(ctx, "loud")
    for i in range(30):
        put(ctx, "quiet", pk={"S": "q"}, sk={"N": str(100 + i)})
        if i % 3 == 0:
            put(ctx, "loud", pk={"S": "l"}, sk={"N": str(i)})
    rounds = 1
    while job():
        rounds += 1
    assert rounds > 1  # the chunk bounded each round
    records = read_all(ctx, desc["LatestStreamArn"])
    assert [r["dynamodb"]["Keys"]["sk"]["N"] for r in records] == [str(i) for i in range(0, 30, 3)]


def test_iterator_types(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    for i in range(3):
        put(ctx, "events", pk={"S": "a"}, sk={"N": str(i)})
    materialize(engine)
    records = read_all(ctx, arn)
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert [r["dynamodb"]["SequenceNumber"] for r in read_all(ctx, arn, "AT_SEQUENCE_NUMBER", seqs[1])] == seqs[1:]
    assert [r["dynamodb"]["SequenceNumber"] for r in read_all(ctx, arn, "AFTER_SEQUENCE_NUMBER", seqs[1])] == seqs[2:]
    shard = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"][0]["ShardId"]
    latest = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "LATEST"})
    put(ctx, "events", pk={"S": "a"}, sk={"N": "9"})
    materialize(engine)
    page = orjson.loads(streams.get_records(ctx, {"ShardIterator": latest["ShardIterator"]}))
    assert [r["dynamodb"]["Keys"]["sk"]["N"] for r in page["Records"]] == ["9"]
    page = orjson.loads(streams.get_records(ctx, {"ShardIterator": page["NextShardIterator"]}))
    assert page["Records"] == [] and "NextShardIterator" in page


def test_get_shard_iterator_errors(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    shard = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"][0]["ShardId"]
    base = {"StreamArn": arn, "ShardId": shard}
    err = error_of(streams.get_shard_iterator, ctx, {**base, "ShardIteratorType": "TRIM_HORIZON",
                                                      "SequenceNumber": "100000000000000000001"})
    assert err.message == ("One or more parameter values were invalid: "
                           "SequenceNumber should not be passed for this iterator type")
    err = error_of(streams.get_shard_iterator, ctx, {**base, "ShardIteratorType": "AT_SEQUENCE_NUMBER"})
    assert err.message == "One or more parameter values were invalid: Invalid SequenceNumber"
    err = error_of(streams.get_shard_iterator, ctx, {**base, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                                                      "SequenceNumber": "999999999999999999999"})
    assert err.message == "One or more parameter values were invalid: Invalid SequenceNumber"
    err = error_of(streams.get_shard_iterator, ctx, {**base, "ShardId": "shardId-00000000000000000000-00000000",
                                                      "ShardIteratorType": "LATEST"})
    assert type(err) is ResourceNotFoundException
    err = error_of(streams.get_shard_iterator, ctx, {**base, "StreamArn": arn + "x", "ShardIteratorType": "LATEST"})
    assert type(err) is ResourceNotFoundException
    err = error_of(streams.describe_stream, ctx, {"StreamArn": arn + "x"})
    assert err.message == f"Requested resource not found: Stream: {arn}x not found"
    it = streams.get_shard_iterator(ctx, {**base, "ShardIteratorType": "LATEST"})["ShardIterator"]
    err = error_of(streams.get_records, ctx, {"ShardIterator": it, "Limit": 1001})
    assert err.message == "One or more parameter values were invalid: Limit should be less than or equal to 1000"
    # A StreamArn that cannot be one is malformed, not missing.
    for call, body in ((streams.describe_stream, {"StreamArn": "fake-stream"}),
                       (streams.get_shard_iterator, {**base, "StreamArn": "fake-stream", "ShardIteratorType": "LATEST"}),
                       (streams.list_streams, {"ExclusiveStartStreamArn": "fake-stream"})):
        err = error_of(call, ctx, body)
        assert (type(err), err.message) == (ValidationException, "Invalid StreamArn")
    for call, body in ((streams.list_streams, {"Limit": 101}), (streams.describe_stream, {"StreamArn": arn, "Limit": 101})):
        err = error_of(call, ctx, body)
        assert err.message == ("1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: "
                               "Member must have value less than or equal to 100")


def test_the_starting_sequence_number_of_an_empty_shard_is_a_valid_position(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    shard = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"][0]
    start = shard["SequenceNumberRange"]["StartingSequenceNumber"]
    iterators = {kind: streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard["ShardId"],
                                                       "ShardIteratorType": kind, "SequenceNumber": start})
                 for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")}
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"})
    materialize(engine)
    page = orjson.loads(streams.get_records(ctx, {"ShardIterator": iterators["AT_SEQUENCE_NUMBER"]["ShardIterator"]}))
    assert [r["dynamodb"]["Keys"]["sk"]["N"] for r in page["Records"]] == ["1"]


def test_get_records_limit_pages(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    for i in range(5):
        put(ctx, "events", pk={"S": "a"}, sk={"N": str(i)})
    materialize(engine)
    shard = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard,
                                          "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    seen = []
    for _ in range(3):
        page = orjson.loads(streams.get_records(ctx, {"ShardIterator": it, "Limit": 2}))
        seen.extend(r["dynamodb"]["Keys"]["sk"]["N"] for r in page["Records"])
        it = page["NextShardIterator"]
    assert seen == ["0", "1", "2", "3", "4"]


# ---------------------------------------------------------------- lineage, disable, re-enable


def test_rollover_by_count_keeps_lineage_and_every_record_once(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    config = streams.StreamConfig(rollover_records=3)
    for i in range(10):
        put(ctx, "events", pk={"S": "a"}, sk={"N": str(i)})
        if i % 4 == 0:
            materialize(engine, config)
    materialize(engine, config)
    shards = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"]
    assert len(shards) == 4
    assert "ParentShardId" not in shards[0]
    for parent, child in zip(shards, shards[1:]):
        assert child["ParentShardId"] == parent["ShardId"]
        assert int(parent["SequenceNumberRange"]["EndingSequenceNumber"]) < int(
            child["SequenceNumberRange"]["StartingSequenceNumber"])
    assert "EndingSequenceNumber" not in shards[-1]["SequenceNumberRange"]
    assert [r["dynamodb"]["Keys"]["sk"]["N"] for r in read_all(ctx, arn)] == [str(i) for i in range(10)]


def test_describe_stream_pages_shards(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    config = streams.StreamConfig(rollover_records=1)
    for i in range(4):
        put(ctx, "events", pk={"S": "a"}, sk={"N": str(i)})
    materialize(engine, config)
    first = streams.describe_stream(ctx, {"StreamArn": arn, "Limit": 3})["StreamDescription"]
    assert len(first["Shards"]) == 3
    ids = [shard["ShardId"] for shard in first["Shards"]]
    assert ids == sorted(ids) and len(set(ids)) == 3  # opened in the same millisecond, still in order
    rest = streams.describe_stream(ctx, {"StreamArn": arn, "ExclusiveStartShardId": first["LastEvaluatedShardId"]})
    assert len(rest["StreamDescription"]["Shards"]) == 1
    assert "LastEvaluatedShardId" not in rest["StreamDescription"]


def test_disable_closes_the_shard_and_reenable_makes_a_new_stream(ctx, engine, clock):
    old_arn = make_table(ctx, name="events")["LatestStreamArn"]
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"})
    err = error_of(tables.update_table, ctx, {"TableName": "events", "StreamSpecification": {
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}})
    assert err.message == "Table already has an enabled stream: TableName: events"
    desc = tables.update_table(ctx, {"TableName": "events", "StreamSpecification": {"StreamEnabled": False}})
    assert "StreamSpecification" not in desc["TableDescription"]
    assert desc["TableDescription"]["LatestStreamArn"] == old_arn
    err = error_of(tables.update_table, ctx, {"TableName": "events", "StreamSpecification": {"StreamEnabled": False}})
    assert err.message == "Table has no stream to disable: TableName: events"
    put(ctx, "events", pk={"S": "not-streamed"}, sk={"N": "1"})
    clock.offset = 0.01
    new_arn = tables.update_table(ctx, {"TableName": "events", "StreamSpecification": {
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}})["TableDescription"]["LatestStreamArn"]
    assert new_arn != old_arn
    put(ctx, "events", pk={"S": "b"}, sk={"N": "1"})
    materialize(engine)
    old = streams.describe_stream(ctx, {"StreamArn": old_arn})["StreamDescription"]
    assert old["StreamStatus"] == "DISABLED"
    assert "EndingSequenceNumber" in old["Shards"][0]["SequenceNumberRange"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in read_all(ctx, old_arn)] == ["a"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in read_all(ctx, new_arn)] == ["b"]
    listed = streams.list_streams(ctx, {"TableName": "events"})["Streams"]
    assert {s["StreamArn"] for s in listed} == {old_arn, new_arn}
    page = streams.list_streams(ctx, {"Limit": 1})
    assert len(page["Streams"]) == 1 and page["LastEvaluatedStreamArn"] == page["Streams"][0]["StreamArn"]
    rest = streams.list_streams(ctx, {"ExclusiveStartStreamArn": page["LastEvaluatedStreamArn"]})
    assert len(rest["Streams"]) == 1 and "LastEvaluatedStreamArn" not in rest


def test_deleting_the_table_disables_its_stream(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"})
    tables.delete_table(ctx, {"TableName": "events"})
    materialize(engine)
    desc = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]
    assert desc["StreamStatus"] == "DISABLED"
    assert len(read_all(ctx, arn)) == 1


# ---------------------------------------------------------------- retention and expiry


def test_trimmed_records_and_expired_iterators(ctx, engine, clock, monkeypatch):
    arn = make_table(ctx)["LatestStreamArn"]
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"})
    materialize(engine)
    shard = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"][0]["ShardId"]
    base = {"StreamArn": arn, "ShardId": shard}
    seq = read_all(ctx, arn)[0]["dynamodb"]["SequenceNumber"]
    old_it = streams.get_shard_iterator(ctx, {**base, "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]

    clock.offset = 16 * 60
    err = error_of(streams.get_records, ctx, {"ShardIterator": old_it})
    assert type(err) is streams.ExpiredIteratorException
    assert err.message.startswith("Iterator expired. The iterator was created at time ")

    monkeypatch.setattr(streams.CONFIG, "retention_s", 10.0)
    clock.offset = 11
    fresh = streams.get_shard_iterator(ctx, {**base, "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    assert orjson.loads(streams.get_records(ctx, {"ShardIterator": fresh}))["Records"] == []
    err = error_of(streams.get_shard_iterator, ctx, {**base, "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                                                      "SequenceNumber": seq})
    assert type(err) is streams.TrimmedDataAccessException
    err = error_of(streams.get_records, ctx, {"ShardIterator": old_it})
    assert type(err) is streams.TrimmedDataAccessException
    assert err.wire_type == "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException"


def test_trimmer_deletes_old_records_and_forgets_old_disabled_streams(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    put(ctx, "events", pk={"S": "a"}, sk={"N": "1"})
    materialize(engine)
    tables.update_table(ctx, {"TableName": "events", "StreamSpecification": {"StreamEnabled": False}})
    materialize(engine)
    time.sleep(0.05)
    streams.Trimmer(engine, streams.StreamConfig(retention_s=0.01))()
    with engine.read() as txn:
        assert list(txn.scan("streams")) == []
    with pytest.raises(ResourceNotFoundException):
        streams.describe_stream(ctx, {"StreamArn": arn})
    desc = tables.describe_table(ctx, {"TableName": "events"})["Table"]
    assert "LatestStreamArn" not in desc


# ---------------------------------------------------------------- TTL


def test_ttl_expiry_rule():
    now = 1_700_000_000.0
    assert ttl.expired({"N": "1699999999"}, now)
    assert ttl.expired({"N": str(int(now))}, now)
    assert not ttl.expired({"N": "1700000001"}, now)
    assert not ttl.expired({"N": str(int(now - 6 * 365 * 86400))}, now)
    assert not ttl.expired({"S": "1699999999"}, now)
    assert not ttl.expired(None, now)


def ttl_request(enabled, attr="expires_at"):
    return {"TableName": "events", "TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attr}}


def test_update_and_describe_time_to_live(ctx, engine, monkeypatch):
    make_table(ctx, view=None)
    describe = lambda: ttl.describe_time_to_live(ctx, {"TableName": "events"})["TimeToLiveDescription"]  # noqa: E731
    assert describe() == {"TimeToLiveStatus": "DISABLED"}
    assert error_of(ttl.update_time_to_live, ctx, ttl_request(False)).message == "TimeToLive is already disabled"
    assert ttl.update_time_to_live(ctx, ttl_request(True)) == {
        "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires_at"}}
    assert describe() == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}  # at once, as DynamoDB
    assert error_of(ttl.update_time_to_live, ctx, ttl_request(True)).message == "TimeToLive is already enabled"
    assert error_of(ttl.update_time_to_live, ctx, ttl_request(True, "other")).message == (
        "TimeToLive is active on a different AttributeName: current AttributeName is expires_at")
    assert error_of(ttl.update_time_to_live, ctx, ttl_request(False)).message == (
        "Time to live has been modified multiple times within a fixed interval")
    monkeypatch.setattr(ttl.CONFIG, "modify_interval_s", 0.0)
    ttl.update_time_to_live(ctx, ttl_request(False))
    assert describe() == {"TimeToLiveStatus": "DISABLED"}
    err = error_of(ttl.describe_time_to_live, ctx, {"TableName": "nope"})
    assert type(err) is ResourceNotFoundException
    assert err.message == "Requested resource not found: Table: nope not found"


def test_sweeper_deletes_only_expired_items_in_chunks(ctx, engine):
    arn = make_table(ctx)["LatestStreamArn"]
    now = int(time.time())
    put(ctx, "events", pk={"S": "past"}, sk={"N": "1"}, expires_at={"N": str(now - 10)})
    put(ctx, "events", pk={"S": "future"}, sk={"N": "1"}, expires_at={"N": str(now + 3600)})
    put(ctx, "events", pk={"S": "ancient"}, sk={"N": "1"}, expires_at={"N": str(now - 6 * 365 * 86400)})
    put(ctx, "events", pk={"S": "text"}, sk={"N": "1"}, expires_at={"S": str(now - 10)})
    put(ctx, "events", pk={"S": "nested"}, sk={"N": "1"}, m={"M": {"expires_at": {"N": str(now - 10)}}})
    for i in range(5):
        put(ctx, "events", pk={"S": f"past{i}"}, sk={"N": "1"}, expires_at={"N": str(now - 10)})
    ttl.update_time_to_live(ctx, ttl_request(True))
    sweeper = ttl.Sweeper(engine, ctx.catalog, ttl.TtlConfig(sweep_interval_s=3600), chunk=3)
    rounds = 0
    while sweeper():
        rounds += 1
    assert rounds >= 3
    left = items_of(ctx)
    assert left == ["ancient", "future", "nested", "text"]
    materialize(engine)
    removes = [r for r in read_all(ctx, arn) if r["eventName"] == "REMOVE"]
    assert len(removes) == 6
    assert all(r["userIdentity"] == {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"} for r in removes)
    assert tables.describe_table(ctx, {"TableName": "events"})["Table"]["ItemCount"] == 4
    assert sweeper() is False  # the pass is done; the next starts after the interval


def items_of(ctx):
    from shoal.api import query

    result = query.scan(ctx, {"TableName": "events"})
    result = orjson.loads(result) if isinstance(result, bytes) else result
    return sorted(i["pk"]["S"] for i in result["Items"])
