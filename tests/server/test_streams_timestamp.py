"""GetShardIterator's AT_TIMESTAMP through boto3's dynamodbstreams client on a
real ``shoal serve``, whose clock the test moves (SHOAL_TEST_CLOCK_FILE) so
that records are written seconds apart without sleeping.

A record shows its ApproximateCreationDateTime rounded down to the second;
the iterator compares the millisecond time Shoal stores, which the test
bounds by reading the server's clock before and after each write.  (The
unit tests, whose clock stands still, check each record's exact millisecond.)
"""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table, make_client
from tests.shoal_process import ShoalProcess, moved_clock

INVALID = "One or more parameter values were invalid: "
RETENTION_S = 3600


class ServerClock:
    """The server's clock: the machine's, plus the offset in its clock file."""

    def __init__(self, path) -> None:
        self.path = path
        self.offset = 0.0

    def move(self, seconds: float) -> None:
        self.offset += seconds
        self.path.write_text(repr(self.offset))

    def now(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = moved_clock(tmp_path_factory)
    proc = ShoalProcess(tmp_path_factory.mktemp("streams_ts"), env={
        "SHOAL_TEST_CLOCK_FILE": str(path), "SHOAL_SHARD_ROLLOVER_RECORDS": "3",
        "SHOAL_STREAM_RETENTION_S": str(RETENTION_S)}).start()
    yield proc, ServerClock(path)
    proc.stop()


@pytest.fixture(scope="module")
def clock(server):
    return server[1]


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server[0].url)


@pytest.fixture(scope="module")
def ds(server):
    return make_client(server[0].url, "dynamodbstreams")


def streamed_table(ddb) -> tuple[str, str]:
    name = create_table(ddb, range_key=None)
    desc = ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    return name, desc["TableDescription"]["LatestStreamArn"]


def write(ddb, clock, name: str, pk: str) -> tuple[float, float]:
    """Put item ``pk``; the server's time of the write lies in the window returned."""
    before = clock.now()
    ddb.put_item(TableName=name, Item={"pk": {"S": pk}})
    return before, clock.now()


def shards(ds, arn) -> list[dict]:
    return ds.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]


def read_at(ds, arn, shard_id: str, stamp) -> dict:
    it = ds.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="AT_TIMESTAMP",
                               Timestamp=stamp)["ShardIterator"]
    return ds.get_records(ShardIterator=it)


def keys(page: dict) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]]


def shown_time(page: dict, pk: str) -> float:
    """A record's ApproximateCreationDateTime (whole seconds) as epoch seconds."""
    return next(r["dynamodb"]["ApproximateCreationDateTime"].timestamp() for r in page["Records"]
                if r["dynamodb"]["Keys"]["pk"]["S"] == pk)


def test_an_open_shard(ddb, ds, clock):
    name, arn = streamed_table(ddb)
    a = write(ddb, clock, name, "a")
    clock.move(10)
    b = write(ddb, clock, name, "b")
    clock.move(10)
    (shard,) = shards(ds, arn)
    horizon = ds.get_records(ShardIterator=ds.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"])
    assert keys(horizon) == ["a", "b"]
    shown_a, shown_b = shown_time(horizon, "a"), shown_time(horizon, "b")
    assert a[0] - 1 < shown_a <= a[1] and b[0] - 1 < shown_b <= b[1]  # rounded down to the second
    for stamp, want in ((0, ["a", "b"]),  # before the oldest record: TRIM_HORIZON
                        (a[0] - 1, ["a", "b"]),
                        (shown_a, ["a", "b"]),  # a's shown time is at or before its own
                        (a[1] + 0.002, ["b"]),
                        (shown_b, ["b"]),
                        (b[1] + 0.002, [])):
        page = read_at(ds, arn, shard["ShardId"], stamp)
        assert keys(page) == want, stamp
        assert "NextShardIterator" in page  # the shard is open
    assert read_at(ds, arn, shard["ShardId"], shown_a)["Records"] == horizon["Records"]  # the same records
    # After the newest record, as LATEST: what is written next is read next.
    late = read_at(ds, arn, shard["ShardId"], b[1] + 0.002)
    write(ddb, clock, name, "c")
    assert keys(ds.get_records(ShardIterator=late["NextShardIterator"])) == ["c"]


def test_a_shard_closed_by_rollover(ddb, ds, clock):
    name, arn = streamed_table(ddb)
    windows = {}
    for pk in ("r0", "r1", "r2", "r3"):  # three records a shard: r3 opens the child
        windows[pk] = write(ddb, clock, name, pk)
        clock.move(10)
    parent, child = shards(ds, arn)
    assert child["ParentShardId"] == parent["ShardId"]
    assert "EndingSequenceNumber" in parent["SequenceNumberRange"]
    for stamp, want in ((windows["r1"][0] - 0.002, ["r1", "r2"]),
                        (windows["r2"][1] + 0.002, []),  # after the closed shard's newest record
                        (windows["r3"][0], [])):
        page = read_at(ds, arn, parent["ShardId"], stamp)
        assert keys(page) == want, stamp
        assert "NextShardIterator" not in page  # a closed shard read to its end
    page = read_at(ds, arn, child["ShardId"], windows["r0"][0])  # before the child's oldest record
    assert keys(page) == ["r3"] and "NextShardIterator" in page


def test_a_shard_closed_by_disabling_the_stream(ddb, ds, clock):
    name, arn = streamed_table(ddb)
    a = write(ddb, clock, name, "a")
    clock.move(10)
    b = write(ddb, clock, name, "b")
    clock.move(10)
    ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    (shard,) = shards(ds, arn)
    assert "EndingSequenceNumber" in shard["SequenceNumberRange"]
    for stamp, want in ((a[0] - 1, ["a", "b"]), (a[1] + 0.002, ["b"]), (b[1] + 0.002, [])):
        page = read_at(ds, arn, shard["ShardId"], stamp)
        assert keys(page) == want and "NextShardIterator" not in page, stamp


def test_a_time_before_the_trim_horizon(ddb, ds, clock):
    name, arn = streamed_table(ddb)
    old = write(ddb, clock, name, "old")
    clock.move(RETENTION_S + 60)  # "old" is past the retention period
    new = write(ddb, clock, name, "new")
    (shard,) = shards(ds, arn)
    for stamp in (old[0], old[1] + 0.002, new[0] - 1):
        assert keys(read_at(ds, arn, shard["ShardId"], stamp)) == ["new"], stamp


def test_refusals_and_the_server_still_serves(ddb, ds, clock):
    name, arn = streamed_table(ddb)
    a = write(ddb, clock, name, "a")
    (shard,) = shards(ds, arn)
    base = {"StreamArn": arn, "ShardId": shard["ShardId"]}
    seq = ds.get_records(ShardIterator=ds.get_shard_iterator(
        **base, ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"][0]["dynamodb"]["SequenceNumber"]
    cases = [
        ({"ShardIteratorType": "AT_TIMESTAMP"}, "ValidationException", INVALID + "Invalid Timestamp"),
        ({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": clock.now() + 60}, "ValidationException",
         INVALID + "Timestamp should not be in the future"),
        ({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": a[1], "SequenceNumber": seq}, "ValidationException",
         INVALID + "SequenceNumber should not be passed for this iterator type"),
        ({"ShardIteratorType": "LATEST", "Timestamp": a[1]}, "ValidationException",
         INVALID + "Timestamp should not be passed for this iterator type"),
        ({"ShardIteratorType": "TRIM_HORIZON", "Timestamp": 0}, "ValidationException",
         INVALID + "Timestamp should not be passed for this iterator type"),
        ({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": seq, "Timestamp": a[1]},
         "ValidationException", INVALID + "Timestamp should not be passed for this iterator type"),
        ({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": a[1], "ShardId": "shardId-00000000000000000000-00000000"},
         "ResourceNotFoundException", "Requested resource not found: Shard does not exist"),
        ({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": a[1], "StreamArn": arn + "0"},
         "ResourceNotFoundException", "Requested resource not found: Stream does not exist"),
    ]
    for body, code, message in cases:
        with pytest.raises(ClientError) as info:
            ds.get_shard_iterator(**{**base, **body})
        assert info.value.response["Error"] == {"Code": code, "Message": message}, body
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert keys(read_at(ds, arn, shard["ShardId"], a[0] - 1)) == ["a"]
    write(ddb, clock, name, "b")
    assert keys(read_at(ds, arn, shard["ShardId"], a[1] + 0.002)) == ["b"]
