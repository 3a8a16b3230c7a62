"""GetShardIterator's AT_TIMESTAMP over a real in-memory engine, with a clock
the test sets to the millisecond: each record's creation time is then known
exactly, so iterators at, just before and just after it are checked at the
precision the change log stores (ms)."""

from __future__ import annotations

import time

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, items, streams, tables
from shoal.api.catalog import Catalog
from shoal.errors import ResourceNotFoundException, ShoalError, ValidationException

REGION = "us-east-1"
INVALID = "One or more parameter values were invalid: "


class SetClock:
    """A clock that stays where the test puts it (seconds)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def clock():
    # A whole second an hour ago: closed shards carry the real time of their
    # closing, which must stay within the retention period measured from here.
    return SetClock(float(int(time.time()) - 3600))


@pytest.fixture
def ctx(engine, clock):
    return Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)


def make_table(ctx, name="events"):
    return tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    })["TableDescription"]["LatestStreamArn"]


def put_at(ctx, clock, at: float, pk: str, name="events") -> None:
    clock.at = at
    items.put_item(ctx, {"TableName": name, "Item": {"pk": {"S": pk}}})


def materialize(engine, config=None):
    job = streams.Materializer(engine, config or streams.StreamConfig())
    while job():
        pass


def shards(ctx, arn) -> list[dict]:
    return streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"]


def iterator(ctx, arn, shard_id, stamp) -> str:
    return streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard_id,
                                            "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": stamp})["ShardIterator"]


def page(ctx, it) -> dict:
    return orjson.loads(streams.get_records(ctx, {"ShardIterator": it}))


def keys(page_: dict) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in page_["Records"]]


def error_of(ctx, body) -> ShoalError:
    with pytest.raises(ShoalError) as info:
        streams.get_shard_iterator(ctx, body)
    return info.value


# ---------------------------------------------------------------- the Timestamp's value


def test_timestamp_is_read_to_the_millisecond_from_its_decimal_text():
    now = 1791316800.0
    assert streams.checked_timestamp_ms(1791316726, now) == 1791316726000
    assert streams.checked_timestamp_ms(1791316726.48, now) == 1791316726480
    assert streams.checked_timestamp_ms(1.001, now) == 1001  # a double just under 1.001: 1000 if multiplied
    assert streams.checked_timestamp_ms(1791316726.4809, now) == 1791316726480  # truncated, not rounded
    assert streams.checked_timestamp_ms(1791316726.001, now) == 1791316726001
    assert streams.checked_timestamp_ms(0.0005, now) == 0
    assert streams.checked_timestamp_ms(-0.0005, now) == -1  # toward the past
    assert streams.checked_timestamp_ms(now, now) == 1791316800000  # now is not the future


@pytest.mark.parametrize("value, message", [
    (None, "Invalid Timestamp"),
    (float("nan"), "Invalid Timestamp"),
    (float("-inf"), "Invalid Timestamp"),
    (float("inf"), "Invalid Timestamp"),
    (1791316800.001, "Timestamp should not be in the future"),
    (1791316801, "Timestamp should not be in the future"),
])
def test_timestamp_refusals(value, message):
    with pytest.raises(ValidationException) as info:
        streams.checked_timestamp_ms(value, 1791316800.0)
    assert info.value.message == INVALID + message


# ---------------------------------------------------------------- positions in an open shard


def test_iterators_at_before_and_after_each_record_time(ctx, engine, clock):
    arn = make_table(ctx)
    t0 = clock.at
    put_at(ctx, clock, t0 + 1.000, "a")
    put_at(ctx, clock, t0 + 1.000, "b")  # the same millisecond as a
    put_at(ctx, clock, t0 + 1.001, "c")
    put_at(ctx, clock, t0 + 2.500, "d")
    clock.at = t0 + 5
    materialize(engine)
    shard = shards(ctx, arn)[0]["ShardId"]
    expected = {
        t0: ["a", "b", "c", "d"],  # before every record: TRIM_HORIZON
        t0 + 0.999: ["a", "b", "c", "d"],
        t0 + 1: ["a", "b", "c", "d"],  # at a's (and b's) time
        t0 + 1.0009: ["a", "b", "c", "d"],  # within a's millisecond: truncated to it
        t0 + 1.001: ["c", "d"],
        t0 + 1.002: ["d"],
        t0 + 2.499: ["d"],
        t0 + 2.5: ["d"],
        t0 + 2.501: [],  # after the newest record: LATEST
        t0 + 5: [],
    }
    for stamp, want in expected.items():
        got = page(ctx, iterator(ctx, arn, shard, stamp))
        assert keys(got) == want, stamp
        assert "NextShardIterator" in got  # the shard is open
    # An iterator after the newest record reads what is written next, as LATEST does.
    late = page(ctx, iterator(ctx, arn, shard, t0 + 5))
    put_at(ctx, clock, t0 + 6, "e")
    materialize(engine)
    assert keys(page(ctx, late["NextShardIterator"])) == ["e"]


def test_the_first_record_in_shard_order_at_or_after_the_time(ctx, engine, clock):
    """Times need not rise along a shard (a clock set back): the iterator
    starts at the first record of the shard written at or after the time,
    not at the first that some later, earlier-stamped record follows."""
    arn = make_table(ctx)
    t0 = clock.at
    put_at(ctx, clock, t0 + 10, "a")
    put_at(ctx, clock, t0 + 8, "b")  # the clock went back
    put_at(ctx, clock, t0 + 12, "c")
    clock.at = t0 + 20
    materialize(engine)
    shard = shards(ctx, arn)[0]["ShardId"]
    assert keys(page(ctx, iterator(ctx, arn, shard, t0 + 9))) == ["a", "b", "c"]
    assert keys(page(ctx, iterator(ctx, arn, shard, t0 + 10.001))) == ["c"]


def test_a_shard_with_no_records_yet(ctx, engine, clock):
    arn = make_table(ctx)
    shard = shards(ctx, arn)[0]["ShardId"]
    it = iterator(ctx, arn, shard, 0)
    put_at(ctx, clock, clock.at + 1, "a")
    materialize(engine)
    assert keys(page(ctx, it)) == ["a"]


def test_records_stored_unshaped_for_a_global_table(ctx, engine, clock, monkeypatch):
    """A global table's records are stored as the change log holds them and
    shaped when read (``streams._deferred``); their time is found the same way."""
    monkeypatch.setattr(streams, "_is_replica_source", lambda txn, table_id: True)
    arn = make_table(ctx)
    t0 = clock.at
    put_at(ctx, clock, t0 + 1, "a")
    put_at(ctx, clock, t0 + 2, "b")
    clock.at = t0 + 3
    materialize(engine)
    with engine.read() as txn:
        assert [value[8:9] for _, value in txn.scan("streams")] == [streams._DEFERRED] * 2
    shard = shards(ctx, arn)[0]["ShardId"]
    assert keys(page(ctx, iterator(ctx, arn, shard, t0 + 1))) == ["a", "b"]
    assert keys(page(ctx, iterator(ctx, arn, shard, t0 + 1.001))) == ["b"]
    assert keys(page(ctx, iterator(ctx, arn, shard, t0 + 2.001))) == []


# ---------------------------------------------------------------- closed shards and retention


def test_a_shard_closed_by_rollover(ctx, engine, clock):
    arn = make_table(ctx)
    t0 = clock.at
    for i, pk in enumerate("abcd"):
        put_at(ctx, clock, t0 + 1 + i, pk)
    clock.at = t0 + 10
    materialize(engine, streams.StreamConfig(rollover_records=3))
    parent, child = shards(ctx, arn)
    assert "EndingSequenceNumber" in parent["SequenceNumberRange"]
    for stamp, want in ((t0, ["a", "b", "c"]), (t0 + 2, ["b", "c"]), (t0 + 3.001, []), (t0 + 4, [])):
        got = page(ctx, iterator(ctx, arn, parent["ShardId"], stamp))
        assert keys(got) == want, stamp
        assert "NextShardIterator" not in got  # the closed shard is read to its end
    got = page(ctx, iterator(ctx, arn, child["ShardId"], t0))  # before the child's first record
    assert keys(got) == ["d"] and "NextShardIterator" in got


def test_a_shard_closed_by_disabling_the_stream(ctx, engine, clock):
    arn = make_table(ctx)
    t0 = clock.at
    put_at(ctx, clock, t0 + 1, "a")
    put_at(ctx, clock, t0 + 2, "b")
    tables.update_table(ctx, {"TableName": "events", "StreamSpecification": {"StreamEnabled": False}})
    clock.at = t0 + 3
    materialize(engine)
    (shard,) = shards(ctx, arn)
    assert "EndingSequenceNumber" in shard["SequenceNumberRange"]
    for stamp, want in ((t0 + 1.5, ["b"]), (t0 + 2.001, [])):
        got = page(ctx, iterator(ctx, arn, shard["ShardId"], stamp))
        assert keys(got) == want and "NextShardIterator" not in got


def test_a_time_before_the_trim_horizon_starts_at_the_oldest_retained_record(ctx, engine, clock, monkeypatch):
    arn = make_table(ctx)
    t0 = clock.at
    put_at(ctx, clock, t0 + 1, "old")
    put_at(ctx, clock, t0 + 100, "new")
    materialize(engine)
    monkeypatch.setattr(streams.CONFIG, "retention_s", 60.0)
    clock.at = t0 + 100  # "old" is past the 60 s retention, not yet deleted by the trimmer
    shard = shards(ctx, arn)[0]["ShardId"]
    for stamp in (t0, t0 + 1, t0 + 50, t0 + 100):
        assert keys(page(ctx, iterator(ctx, arn, shard, stamp))) == ["new"]
    trim = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard,
                                            "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    assert keys(page(ctx, trim)) == ["new"]


# ---------------------------------------------------------------- refusals


def test_get_shard_iterator_refusals(ctx, engine, clock):
    arn = make_table(ctx)
    put_at(ctx, clock, clock.at + 1, "a")
    materialize(engine)
    shard = shards(ctx, arn)[0]["ShardId"]
    base = {"StreamArn": arn, "ShardId": shard}
    seq = page(ctx, iterator(ctx, arn, shard, 0))["Records"][0]["dynamodb"]["SequenceNumber"]
    cases = [
        ({"ShardIteratorType": "AT_TIMESTAMP"}, "Invalid Timestamp"),
        ({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": clock.at + 0.001},
         "Timestamp should not be in the future"),
        ({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": clock.at, "SequenceNumber": seq},
         "SequenceNumber should not be passed for this iterator type"),
        ({"ShardIteratorType": "AT_TIMESTAMP", "SequenceNumber": seq},  # the SequenceNumber is named first
         "SequenceNumber should not be passed for this iterator type"),
        ({"ShardIteratorType": "LATEST", "Timestamp": clock.at},
         "Timestamp should not be passed for this iterator type"),
        ({"ShardIteratorType": "TRIM_HORIZON", "Timestamp": 0},
         "Timestamp should not be passed for this iterator type"),
        ({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": seq, "Timestamp": clock.at},
         "Timestamp should not be passed for this iterator type"),
        ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "Timestamp": clock.at},
         "Timestamp should not be passed for this iterator type"),
    ]
    for body, message in cases:
        err = error_of(ctx, {**base, **body})
        assert (type(err), err.message) == (ValidationException, INVALID + message), body
    # The Timestamp's checks come before the shard is looked up, as the SequenceNumber's do.
    err = error_of(ctx, {**base, "ShardId": "shardId-00000000000000000000-00000000",
                         "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": clock.at + 60})
    assert err.message == INVALID + "Timestamp should not be in the future"
    err = error_of(ctx, {**base, "ShardId": "shardId-00000000000000000000-00000000",
                         "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": clock.at})
    assert type(err) is ResourceNotFoundException
    assert err.message == "Requested resource not found: Shard does not exist"
