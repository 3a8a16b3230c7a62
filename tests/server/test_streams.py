"""DynamoDB Streams end to end through boto3 against real ``shoal serve``
processes, with shard rollover, retention and iterator lifetime shortened
through the environment."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table, make_client, unique_name
from tests.shoal_process import ShoalProcess


@contextmanager
def env(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start_server(tmp_path_factory, *args, **settings):
    with env(**settings):
        return ShoalProcess(tmp_path_factory.mktemp("streams"), *args).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start_server(tmp_path_factory, "--workers", "2", SHOAL_SHARD_ROLLOVER_RECORDS=5)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


@pytest.fixture(scope="module")
def ds(server):
    return make_client(server.url, "dynamodbstreams")


def streamed_table(ddb, view="NEW_AND_OLD_IMAGES", range_key=("sk", "N")) -> tuple[str, str]:
    name = unique_name("s")
    create_table(ddb, name=name, range_key=range_key)
    desc = ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
    return name, desc["TableDescription"]["LatestStreamArn"]


def drain(ds, arn, expected: int) -> list[dict]:
    """Read the whole stream at once, following lineage: every acknowledged
    write's record is readable right away (no polling), so it must hold the
    ``expected`` records already."""
    records = read_stream(ds, arn)
    assert len(records) >= expected, records
    return records


def shards_of(ds, arn) -> list[dict]:
    shards, start = [], None
    while True:
        kwargs = {"StreamArn": arn, "Limit": 2}
        if start:
            kwargs["ExclusiveStartShardId"] = start
        desc = ds.describe_stream(**kwargs)["StreamDescription"]
        shards += desc["Shards"]
        start = desc.get("LastEvaluatedShardId")
        if not start:
            return shards


def read_stream(ds, arn) -> list[dict]:
    """Every record, parents before children, each shard until its end (closed)
    or until a page comes back empty (open)."""
    shards = shards_of(ds, arn)
    done: set[str] = set()
    out: list[dict] = []
    pending = list(shards)
    while pending:
        shard = next(s for s in pending if s.get("ParentShardId") in done | {None}
                     or s.get("ParentShardId") not in {x["ShardId"] for x in shards})
        pending.remove(shard)
        iterator = ds.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = ds.get_records(ShardIterator=iterator, Limit=3)
            out += page["Records"]
            iterator = page.get("NextShardIterator")
            if not page["Records"] and "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                break
        done.add(shard["ShardId"])
    return out


def test_table_description_and_list_streams(ddb, ds):
    name, arn = streamed_table(ddb, "KEYS_ONLY")
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    label = table["LatestStreamLabel"]
    assert arn == f"{table['TableArn']}/stream/{label}"
    assert len(label) == 23 and label[10] == "T" and label[19] == "."
    assert ds.list_streams(TableName=name)["Streams"] == [{"StreamArn": arn, "TableName": name, "StreamLabel": label}]
    desc = ds.describe_stream(StreamArn=arn)["StreamDescription"]
    assert desc["StreamStatus"] == "ENABLED" and desc["StreamViewType"] == "KEYS_ONLY"
    assert desc["TableName"] == name and desc["KeySchema"] == table["KeySchema"]
    assert desc["CreationRequestDateTime"].year >= 2024
    shard = desc["Shards"][0]
    assert shard["ShardId"].startswith("shardId-") and len(shard["ShardId"]) >= 28
    assert len(shard["SequenceNumberRange"]["StartingSequenceNumber"]) >= 21


def test_sets_inside_lists_do_not_stop_the_stream(ddb, ds):
    # Comparing the old and new images of such an item once failed on every
    # round of the materializer: every stream request answered a 500.
    name, arn = streamed_table(ddb, "NEW_AND_OLD_IMAGES", range_key=None)
    item = {"pk": {"S": "k"}, "l": {"L": [{"SS": ["x", "y"]}, {"M": {"n": {"NS": ["1", "2"]}}}]}}
    ddb.put_item(TableName=name, Item=item)
    ddb.put_item(TableName=name, Item={**item, "v": {"N": "1"}})
    ddb.put_item(TableName=name, Item={**item, "v": {"N": "1"}})  # changes nothing: no record
    assert [r["eventName"] for r in drain(ds, arn, 2)] == ["INSERT", "MODIFY"]


@pytest.mark.parametrize("view", ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"])
def test_view_types_over_the_wire(ddb, ds, view):
    name, arn = streamed_table(ddb, view, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "k"}, "n": {"N": "1"}})
    ddb.update_item(TableName=name, Key={"pk": {"S": "k"}}, UpdateExpression="SET n = n + :one",
                    ExpressionAttributeValues={":one": {"N": "1"}})
    ddb.delete_item(TableName=name, Key={"pk": {"S": "k"}})
    records = drain(ds, arn, 3)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    images = [(r["dynamodb"].get("NewImage", {}).get("n"), r["dynamodb"].get("OldImage", {}).get("n"))
              for r in records]
    one, two = {"N": "1"}, {"N": "2"}
    new = view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
    old = view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
    assert images == [(one if new else None, None), (two if new else None, one if old else None),
                      (None, two if old else None)]
    for r in records:
        assert r["dynamodb"]["Keys"] == {"pk": {"S": "k"}}
        assert r["dynamodb"]["StreamViewType"] == view
        assert r["eventSource"] == "aws:dynamodb" and r["eventVersion"] == "1.1"
        assert r["awsRegion"] == "us-east-1" and len(r["eventID"]) >= 32


def test_iterator_types_over_the_wire(ddb, ds):
    name, arn = streamed_table(ddb)
    for i in range(3):
        ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"N": str(i)}})
    records = drain(ds, arn, 3)
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    shard = shards_of(ds, arn)[0]["ShardId"]

    def read(kind, seq=None):
        kwargs = {"SequenceNumber": seq} if seq else {}
        it = ds.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=kind, **kwargs)["ShardIterator"]
        return ds.get_records(ShardIterator=it)

    assert [r["dynamodb"]["SequenceNumber"] for r in read("TRIM_HORIZON")["Records"]] == seqs
    assert [r["dynamodb"]["SequenceNumber"] for r in read("AT_SEQUENCE_NUMBER", seqs[1])["Records"]] == seqs[1:]
    assert [r["dynamodb"]["SequenceNumber"] for r in read("AFTER_SEQUENCE_NUMBER", seqs[1])["Records"]] == seqs[2:]
    latest = read("LATEST")
    assert latest["Records"] == []
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"N": "7"}})
    got = ds.get_records(ShardIterator=latest["NextShardIterator"])["Records"]  # at once, no polling
    assert [r["dynamodb"]["Keys"]["sk"]["N"] for r in got] == ["7"]
    with pytest.raises(ClientError) as info:
        ds.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                              SequenceNumber="9" * 21)
    assert info.value.response["Error"] == {
        "Code": "ValidationException", "Message": "One or more parameter values were invalid: Invalid SequenceNumber"}
    with pytest.raises(ClientError) as info:  # AT_TIMESTAMP needs its Timestamp (test_streams_timestamp.py)
        ds.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AT_TIMESTAMP")
    assert info.value.response["Error"] == {
        "Code": "ValidationException", "Message": "One or more parameter values were invalid: Invalid Timestamp"}
    with pytest.raises(ClientError) as info:
        ds.get_records(ShardIterator="garbage|1|" + "A" * 40)
    assert info.value.response["Error"]["Message"] == "Invalid ShardIterator"
    with pytest.raises(ClientError) as info:
        ds.describe_stream(StreamArn=arn + "0")
    assert info.value.response["Error"] == {
        "Code": "ResourceNotFoundException", "Message": f"Requested resource not found: Stream: {arn}0 not found"}


def test_a_record_is_readable_as_soon_as_its_write_is_acknowledged(ddb, ds):
    """Issue 15, point 7: consumers read right after writing and take an
    empty page for the end. Two workers serve (each request may reach either);
    shards roll over every 5 records, so lineage is followed too."""
    name, arn = streamed_table(ddb)
    for i in range(12):
        ddb.put_item(TableName=name, Item={"pk": {"S": "v"}, "sk": {"N": str(i)}})
        records = read_stream(ds, arn)
        assert [r["dynamodb"]["Keys"]["sk"]["N"] for r in records] == [str(n) for n in range(i + 1)]


def test_no_record_for_unchanged_write(ddb, ds):
    name, arn = streamed_table(ddb, range_key=None)
    item = {"pk": {"S": "same"}, "v": {"S": "x"}}
    ddb.put_item(TableName=name, Item=item)
    ddb.put_item(TableName=name, Item=item)
    ddb.update_item(TableName=name, Key={"pk": {"S": "same"}}, UpdateExpression="SET v = :v",
                    ExpressionAttributeValues={":v": {"S": "x"}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "marker"}})
    # the marker's record is readable, so every earlier write's record would be too
    records = drain(ds, arn, 2)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [
        ("INSERT", "same"), ("INSERT", "marker")]


def test_concurrent_writers_lineage_and_exactly_once(ddb, ds, server):
    """Four writers (over two worker processes) each bump their own keys; the
    stream rolls over every 5 records; a consumer following lineage sees every
    change once, in order per key."""
    name, arn = streamed_table(ddb, "NEW_IMAGE", range_key=None)
    writes_per_key, keys_per_writer, writers = 8, 2, 4

    def writer(w: int) -> None:
        client = make_client(server.url)
        for n in range(writes_per_key):
            for k in range(keys_per_writer):
                client.put_item(TableName=name, Item={"pk": {"S": f"w{w}k{k}"}, "n": {"N": str(n)}})

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = writes_per_key * keys_per_writer * writers
    records = drain(ds, arn, total)
    assert len(records) == total
    assert len({r["dynamodb"]["SequenceNumber"] for r in records}) == total
    per_key: dict[str, list[int]] = {}
    for r in records:
        per_key.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(int(r["dynamodb"]["NewImage"]["n"]["N"]))
    assert all(values == list(range(writes_per_key)) for values in per_key.values())
    shards = shards_of(ds, arn)
    assert len(shards) >= total // 5
    for parent, child in zip(shards, shards[1:]):
        assert child["ParentShardId"] == parent["ShardId"]
        assert "EndingSequenceNumber" in parent["SequenceNumberRange"]


def test_disable_and_reenable_over_the_wire(ddb, ds):
    name, arn = streamed_table(ddb, "KEYS_ONLY", range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "one"}})
    ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    assert info.value.response["Error"]["Message"] == f"Table has no stream to disable: TableName: {name}"
    time.sleep(0.01)
    new_arn = ddb.update_table(TableName=name, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})["TableDescription"]["LatestStreamArn"]
    assert new_arn != arn
    ddb.put_item(TableName=name, Item={"pk": {"S": "two"}})
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in drain(ds, new_arn, 1)] == ["two"]
    old = ds.describe_stream(StreamArn=arn)["StreamDescription"]
    assert old["StreamStatus"] == "DISABLED"
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in read_stream(ds, arn)] == ["one"]
    assert {s["StreamArn"] for s in ds.list_streams(TableName=name)["Streams"]} == {arn, new_arn}


def test_streams_operations_only_under_their_own_target(server):
    import urllib.request

    req = urllib.request.Request(server.url, data=b"{}", method="POST", headers={
        "X-Amz-Target": "DynamoDB_20120810.ListStreams", "Content-Type": "application/x-amz-json-1.0"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req)
    assert b"UnknownOperationException" in info.value.read()


# ---------------------------------------------------------------- short retention / iterator lifetime


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory):
    """A server whose clock the test moves (SHOAL_TEST_CLOCK_FILE): no sleeping."""
    clock = tmp_path_factory.mktemp("clock") / "offset"
    clock.write_text("0")
    proc = start_server(tmp_path_factory, SHOAL_STREAM_RETENTION_S=2, SHOAL_ITERATOR_TTL_S=4,
                        SHOAL_TEST_CLOCK_FILE=clock)
    yield proc, clock
    proc.stop()


def test_retention_and_iterator_expiry(short_lived):
    server, clock = short_lived
    ddb, ds = make_client(server.url), make_client(server.url, "dynamodbstreams")
    name, arn = streamed_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "old"}})
    seq = drain(ds, arn, 1)[0]["dynamodb"]["SequenceNumber"]
    shard = shards_of(ds, arn)[0]["ShardId"]
    at_seq = ds.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                   SequenceNumber=seq)["ShardIterator"]
    clock.write_text("2.5")  # the record is now past the 2 s retention; the iterator is still valid
    with pytest.raises(ClientError) as info:
        ds.get_records(ShardIterator=at_seq)
    assert info.value.response["Error"]["Code"] == "TrimmedDataAccessException"
    with pytest.raises(ClientError) as info:
        ds.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                              SequenceNumber=seq)
    assert info.value.response["Error"]["Code"] == "TrimmedDataAccessException"
    horizon = ds.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    assert ds.get_records(ShardIterator=horizon["ShardIterator"])["Records"] == []
    clock.write_text("4.5")  # past the 4 s lifetime of the first iterator
    with pytest.raises(ClientError) as info:
        ds.get_records(ShardIterator=at_seq)
    assert info.value.response["Error"]["Code"] == "ExpiredIteratorException"
    assert info.value.response["Error"]["Message"].startswith("Iterator expired.")
