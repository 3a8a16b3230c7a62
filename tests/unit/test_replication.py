"""shoal.replication's core over a real engine: versions and last writer
wins, what a region sends, ReplicaUpdates' rules, the peer list."""

from __future__ import annotations

import time

import orjson
import pytest

from shoal import cli
from shoal.api import DEFAULT_ACCOUNT, Context, items, streams, tables, transactions
from shoal.api.catalog import Catalog
from shoal.api.changelog import decode_change, read_raw_changes
from shoal.errors import ShoalError, ValidationException
from shoal.replication import apply as replica_apply
from shoal.replication import control, node, versions
from shoal.replication.protocol import wrong_region

HOME, PEER, OTHER = "us-east-1", "eu-west-1", "ap-south-1"


@pytest.fixture
def ctx(engine, clock):
    control.configure(engine, control.Settings(HOME, {PEER: "http://127.0.0.1:1", OTHER: "http://127.0.0.1:2"}))
    yield Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    control.unconfigure(engine)


def _create(ctx, name="events") -> None:
    tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "kind", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "ALL"}}]})


def _global(ctx, name="events"):
    _create(ctx, name)
    tables.update_table(ctx, {"TableName": name, "ReplicaUpdates": [{"Create": {"RegionName": PEER}}]})
    with ctx.engine.read() as txn:
        return ctx.catalog.get(txn, HOME, name)


def _change(time_ms, origin, seq, pk, **attrs):
    new = None if attrs.get("deleted") else {"pk": {"S": pk}, "kind": {"S": "k"},
                                             **{k: {"S": v} for k, v in attrs.items()}}
    return {"time": time_ms, "origin": origin, "seq": seq, "keys": {"pk": {"S": pk}}, "new": new}


def _apply(ctx, table, *changes) -> int:
    with ctx.engine.write() as txn:
        return replica_apply.apply_changes(txn, ctx.catalog, table, list(changes), ctx.now())


def _get(ctx, pk):
    return items.get_item(ctx, {"TableName": "events", "Key": {"pk": {"S": pk}}, "ConsistentRead": True})


def _pending(sender, txn, table_id, cursor):
    """The records the sender would send after ``cursor`` (decoded from the
    JSON it splices), the position read to, and whether more remain."""
    pieces, times, last, more = sender._pending(txn, table_id, cursor, None)
    records = [orjson.loads(piece) for piece in pieces]
    assert [r["time"] for r in records] == times
    return records, last, more


def _item(ctx, pk):
    answer = _get(ctx, pk)
    answer = orjson.loads(answer) if isinstance(answer, bytes) else answer
    return answer.get("Item")


# ---------------------------------------------------------------- last writer wins


def test_a_newer_write_wins_whatever_order_the_writes_arrive_in(ctx):
    table = _global(ctx)
    old = _change(1000, f"{OTHER}:aa", 7, "x", by="old")
    new = _change(2000, f"{PEER}:bb", 3, "x", by="new")
    assert _apply(ctx, table, new) == 1
    assert _apply(ctx, table, old) == 0
    assert _item(ctx, "x")["by"] == {"S": "new"}
    assert _apply(ctx, table, new) == 0  # the same write twice is applied once


def test_equal_times_are_ordered_by_origin_then_position(ctx):
    table = _global(ctx)
    assert _apply(ctx, table, _change(5000, f"{PEER}:bb", 9, "x", by="peer9")) == 1
    assert _apply(ctx, table, _change(5000, f"{OTHER}:aa", 99, "x", by="other")) == 0  # "ap-" < "eu-"
    assert _apply(ctx, table, _change(5000, f"{PEER}:bb", 10, "x", by="peer10")) == 1
    assert _item(ctx, "x")["by"] == {"S": "peer10"}


def test_a_delete_leaves_a_tombstone_an_older_update_does_not_undo(ctx):
    table = _global(ctx)
    _apply(ctx, table, _change(1000, f"{PEER}:bb", 1, "x", by="first"))
    assert _apply(ctx, table, _change(3000, f"{PEER}:bb", 2, "x", deleted=True)) == 1
    assert _item(ctx, "x") is None
    assert _apply(ctx, table, _change(2000, f"{OTHER}:aa", 5, "x", by="late")) == 0
    assert _item(ctx, "x") is None
    with ctx.engine.read() as txn:
        from shoal.api.common import storage_key

        assert versions.read_version(txn, storage_key(table, {"pk": {"S": "x"}})) == ((3000, f"{PEER}:bb", 2), True)
    with ctx.engine.write() as txn:  # forgotten once older than the retention
        assert versions.prune_tombstones(txn, 3000 + int(versions.TOMBSTONE_RETENTION_S * 1000) - 1) == 0
        assert versions.prune_tombstones(txn, 3000 + int(versions.TOMBSTONE_RETENTION_S * 1000) + 1) == 1


def test_a_local_write_is_compared_with_remote_ones_in_log_order(ctx, clock):
    table = _global(ctx)
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "x"}, "kind": {"S": "k"}, "by": {"S": "local"}}})
    now_ms = int(clock() * 1000)
    # A remote write older than the local one arrives: the local one stays.
    assert _apply(ctx, table, _change(now_ms - 60_000, f"{PEER}:bb", 1, "x", by="remote")) == 0
    assert _item(ctx, "x")["by"] == {"S": "local"}


def test_a_local_write_after_a_newer_remote_one_is_given_a_newer_time(ctx, clock):
    table = _global(ctx)
    ahead = int(clock() * 1000) + 60_000  # a peer whose clock runs a minute ahead
    _apply(ctx, table, _change(ahead, f"{PEER}:bb", 1, "x", by="remote"))
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "x"}, "kind": {"S": "k"}, "by": {"S": "local"}}})
    with ctx.engine.write() as txn:
        versions.index_local(txn, replica_apply.global_tables(txn, ctx.catalog))
    sender = node.Replicator(ctx.engine, ctx.catalog, control.Settings(HOME, {}))
    with ctx.engine.read() as txn:
        records, _, _ = _pending(sender, txn, table.table_id, 0)
    assert [(r["keys"]["pk"]["S"], r["new"]["by"]["S"], r["time"]) for r in records] == [("x", "local", ahead + 1)]
    # So the peer, which holds the remote write, takes it.
    assert _apply(ctx, table, _change(ahead, f"{PEER}:bb", 1, "x", by="remote")) == 0


def test_a_local_write_is_folded_in_its_own_transaction_when_the_indexer_is_caught_up(ctx):
    """The version store's fold is done by the write's own transaction when
    nothing before it is left to fold; otherwise by ``index_local``, later, in
    log order, which then catches up so that the next writes fold themselves."""
    from shoal.api.changelog import consumer_cursor, head_position
    from shoal.api.common import storage_key

    table = _global(ctx)
    _create(ctx, "plain")

    def state(pk):
        with ctx.engine.read() as txn:
            version = versions.read_version(txn, storage_key(table, {"pk": {"S": pk}}))
            return version, consumer_cursor(txn, versions.INDEXER), head_position(txn)

    with ctx.engine.write() as txn:  # what UpdateTable logged is indexed
        versions.index_local(txn, replica_apply.global_tables(txn, ctx.catalog))
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "a"}, "kind": {"S": "k"}}})
    version, cursor, head = state("a")
    assert version is not None and version[0][1:] == (f"{HOME}:{version[0][1].split(':')[1]}", head)
    assert cursor == head and not version[1]
    items.put_item(ctx, {"TableName": "plain", "Item": {"pk": {"S": "p"}, "kind": {"S": "k"}}})  # not folded
    items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "a"}}})
    version, cursor, head = state("a")
    assert version[0][2] == head - 2 and cursor == head - 2  # the indexer is behind: left to it
    with ctx.engine.write() as txn:
        versions.index_local(txn, replica_apply.global_tables(txn, ctx.catalog))
    version, cursor, head = state("a")
    assert (version[0][2], version[1], cursor) == (head, True, head)  # the delete's version, a tombstone
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "b"}, "kind": {"S": "k"}}})
    version, cursor, head = state("b")
    assert version[0][2] == head and cursor == head  # folded by its own transaction again


def test_an_applied_write_goes_through_the_write_path_and_keeps_its_origin(ctx):
    table = _global(ctx)
    _apply(ctx, table, _change(1000, f"{PEER}:bb", 42, "x", by="remote"))
    found = tables.describe_table(ctx, {"TableName": "events"})["Table"]
    assert found["ItemCount"] == 1
    from shoal.api import query

    page = query.query(ctx, {"TableName": "events", "IndexName": "by_kind", "KeyConditionExpression": "kind = :k",
                             "ExpressionAttributeValues": {":k": {"S": "k"}}})
    page = orjson.loads(page) if isinstance(page, bytes) else page
    assert [i["pk"]["S"] for i in page["Items"]] == ["x"]
    with ctx.engine.read() as txn:
        last = [decode_change(value)[1] for _, _, value in read_raw_changes(txn)][-1]
    assert (last["origin"], last["originSeq"], last["originTime"]) == (f"{PEER}:bb", 42, 1000)
    # It is a stream record of this region (streams were enabled with the replica).
    streams.catch_up(ctx.engine)
    arn = found["LatestStreamArn"]
    shard = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard,
                                                "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    records = orjson.loads(streams.get_records(ctx, {"ShardIterator": iterator}))["Records"]
    assert [(r["eventName"], r["dynamodb"]["NewImage"]["by"]["S"]) for r in records] == [("INSERT", "remote")]
    # And it is not sent back: a region sends its own writes only.
    sender = node.Replicator(ctx.engine, ctx.catalog, control.Settings(HOME, {}))
    with ctx.engine.read() as txn:
        assert _pending(sender, txn, table.table_id, 0)[0] == []


def test_the_writes_of_one_transaction_are_never_split_between_batches(ctx, clock, monkeypatch):
    """A transaction's records share their write time (and are contiguous):
    a batch that reaches its size takes the rest of that time's records."""
    table = _global(ctx)
    monkeypatch.setattr(node, "BATCH", 2)
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "alone"}, "kind": {"S": "k"}}})
    clock.offset += 1
    transactions.transact_write_items(ctx, {"TransactItems": [
        {"Put": {"TableName": "events", "Item": {"pk": {"S": f"t{n}"}, "kind": {"S": "k"}}}} for n in range(3)]})
    clock.offset += 1
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "after"}, "kind": {"S": "k"}}})
    sender = node.Replicator(ctx.engine, ctx.catalog, control.Settings(HOME, {}))
    with ctx.engine.read() as txn:
        first, last, more = _pending(sender, txn, table.table_id, 0)
        assert [r["keys"]["pk"]["S"] for r in first] == ["alone", "t0", "t1", "t2"] and more
        second, _, more = _pending(sender, txn, table.table_id, last)
    assert [r["keys"]["pk"]["S"] for r in second] == ["after"] and not more


def test_a_sent_record_is_the_change_logs_keys_and_image_after_whatever_its_attributes(ctx, clock):
    """The sender splices each record out of the log's bytes (``node._splice``);
    a record it cannot splice (an attribute named ``new`` or ``old``, quotes
    and braces in strings) is decoded instead: either way a peer is sent
    exactly the write's keys and image after, its time, origin and position,
    and neither a peer's write nor another table's."""
    table = _global(ctx)
    _create(ctx, "plain")
    awkward = {"pk": {"S": 'q"}},"old":x'}, "kind": {"S": "k"}, "note": {"S": ',"new":{"S":"y"}}'}}
    put = lambda name, item: items.put_item(ctx, {"TableName": name, "Item": item})  # noqa: E731
    put("events", {"pk": {"S": "a"}, "kind": {"S": "k"}, "n": {"N": "1"}})
    put("plain", {"pk": {"S": "p"}, "kind": {"S": "k"}})
    put("events", awkward)
    put("events", {"pk": {"S": "b"}, "kind": {"S": "k"}, "new": {"S": "an attribute named new"}})
    put("events", {"pk": {"S": "a"}, "kind": {"S": "k"}, "old": {"BOOL": True}})
    _apply(ctx, table, _change(1000, f"{PEER}:bb", 3, "r", by="remote"))
    items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "b"}}})
    with ctx.engine.read() as txn:
        expected = []
        for seq, table_id, value in read_raw_changes(txn):
            ms, record = decode_change(value)
            if table_id == table.table_id and "keys" in record and "originSeq" not in record:
                expected.append({"time": ms, "origin": record["origin"], "seq": seq, "keys": record["keys"],
                                 "new": record["new"]})
        sender = node.Replicator(ctx.engine, ctx.catalog, control.Settings(HOME, {}))
        records, _, more = _pending(sender, txn, table.table_id, 0)
    assert [r["keys"]["pk"]["S"] for r in expected] == ["a", 'q"}},"old":x', "b", "a", "b"]
    assert records == expected and not more
    assert [sorted(r) for r in records] == [["keys", "new", "origin", "seq", "time"]] * 5
    assert records[1]["new"] == awkward and records[4]["new"] is None


def test_a_batch_sent_again_after_a_crash_is_applied_once(ctx, engine, clock):
    """What the peers took is stored by the sender's next round: a sender
    that stops before then sends the same records again, and the receiver,
    comparing each with the item's version, applies none of them twice
    (a later write of the item stays)."""
    table = _global(ctx)
    for pk in ("a", "b"):
        items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": pk}, "kind": {"S": "k"}, "by": {"S": "one"}}})
    with ctx.engine.read() as txn:
        first, _, _ = _pending(node.Replicator(ctx.engine, ctx.catalog, control.Settings(HOME, {})), txn,
                               table.table_id, 0)
    # The receiving region (its own table in the same engine) takes the batch...
    peer_ctx = Context(PEER, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    tables.create_table(peer_ctx, {"TableName": "events", "BillingMode": "PAY_PER_REQUEST",
                                   "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                                   "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    with engine.read() as txn:
        peer_table = peer_ctx.catalog.get(txn, PEER, "events")
    with engine.write() as txn:
        assert replica_apply.apply_changes(txn, peer_ctx.catalog, peer_table, first, clock()) == 2
    # ...then a later write of "a" reaches it, and the sender, restarted, sends the batch again.
    later = _change(int(clock() * 1000) + 5000, f"{OTHER}:cc", 9, "a", by="later")
    with engine.write() as txn:
        assert replica_apply.apply_changes(txn, peer_ctx.catalog, peer_table, [later], clock()) == 1
        assert replica_apply.apply_changes(txn, peer_ctx.catalog, peer_table, first, clock()) == 0
    got = {}
    for pk in ("a", "b"):
        answer = items.get_item(peer_ctx, {"TableName": "events", "Key": {"pk": {"S": pk}}})
        got[pk] = (orjson.loads(answer) if isinstance(answer, bytes) else answer)["Item"]["by"]["S"]
    assert got == {"a": "later", "b": "one"}


def _stream_records(ctx, name="events"):
    streams.catch_up(ctx.engine)
    arn = tables.describe_table(ctx, {"TableName": name})["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard,
                                                "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    return orjson.loads(streams.get_records(ctx, {"ShardIterator": iterator}))["Records"]


def test_a_global_tables_stream_records_are_shaped_when_read_as_any_others(ctx, clock):
    """A replica source stores its stream's records as the change log holds
    them and shapes them when read: what GetRecords returns is what the
    materializer shapes for any table (``build_record``), no-op writes
    (the same image, whatever its attributes' or set elements' order)
    included as absent."""
    table = _global(ctx)
    put = lambda item: items.put_item(ctx, {"TableName": "events", "Item": item})  # noqa: E731
    put({"pk": {"S": "a"}, "kind": {"S": "k"}, "tags": {"SS": ["x", "y"]}})
    put({"pk": {"S": "a"}, "kind": {"S": "k"}, "tags": {"SS": ["x", "y"]}})  # no change
    put({"tags": {"SS": ["y", "x"]}, "kind": {"S": "k"}, "pk": {"S": "a"}})  # no change either
    clock.offset += 2
    put({"pk": {"S": "a"}, "kind": {"S": "k2"}, "tags": {"SS": ["x"]}})
    items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "a"}}})
    records = _stream_records(ctx)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    with ctx.engine.read() as txn:
        history = orjson.loads(txn.get("meta", b"streams/table/" + table.prefix))
        stream = streams.load_stream(txn, bytes.fromhex(history[-1]["id"]))
        stored = [bytes(value) for _, value in txn.scan("streams", bytes.fromhex(stream["id"]),
                                                        bytes.fromhex(stream["id"]) + b"\xff")]
        assert [value[8:9] for value in stored] == [b"\x00"] * 3  # unshaped: the change record as logged
        expected = []
        for record in records:
            seq = int(record["dynamodb"]["SequenceNumber"]) - streams.SEQ_BASE
            ms, change = decode_change(next(iter(txn.scan("changes", seq.to_bytes(8, "big"))))[1])
            expected.append(orjson.loads(streams.build_record(stream, seq, ms, change)))
    assert records == expected
    assert records[1]["dynamodb"]["OldImage"]["tags"] == {"SS": ["x", "y"]}
    assert records[1]["dynamodb"]["NewImage"]["kind"] == {"S": "k2"}


# ---------------------------------------------------------------- ReplicaUpdates


def _refusal(ctx, *updates, name="events") -> str:
    with pytest.raises(ShoalError) as caught:
        tables.update_table(ctx, {"TableName": name, "ReplicaUpdates": list(updates)})
    return f"{caught.value.type_name}: {caught.value.message}"


def test_adding_a_replica_records_it_enables_the_stream_and_queues_the_work(ctx):
    _create(ctx)
    out = tables.update_table(ctx, {"TableName": "events", "ReplicaUpdates": [{"Create": {
        "RegionName": PEER, "ProvisionedThroughputOverride": {"ReadCapacityUnits": 5}}}]})["TableDescription"]
    assert out["TableStatus"] == "UPDATING"
    assert out["GlobalTableVersion"] == "2019.11.21"
    assert out["Replicas"] == [{"RegionName": PEER, "ReplicaStatus": "CREATING", "ReplicaStatusPercentProgress": "0",
                                "ProvisionedThroughputOverride": {"ReadCapacityUnits": 5}}]
    assert out["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    with ctx.engine.read() as txn:
        kinds = [(task["kind"], task["peer"]) for _, task in control.pending_tasks(txn)]
        table = ctx.catalog.get(txn, HOME, "events")
        assert txn.get("meta", replica_apply.hold_key(PEER, table.table_id)) is not None
        assert replica_apply.cursor_of(txn, PEER, table.table_id) is not None
    assert kinds == [("create", PEER), ("copy", PEER), ("activate", PEER)]
    request = control.replica_create_request(out, PEER)
    assert request["GlobalSecondaryIndexes"] == [{"IndexName": "by_kind", "KeySchema": [
        {"AttributeName": "kind", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}]
    assert request["BillingMode"] == "PAY_PER_REQUEST"
    # Another change waits until the replica is ACTIVE.
    assert _refusal(ctx, {"Create": {"RegionName": OTHER}}) == (
        "ResourceInUseException: Attempt to change a resource which is still in use: Table is being updated: events")


def test_replica_updates_are_refused_with_their_reasons(ctx):
    _create(ctx)
    invalid = "ValidationException: One or more parameter values were invalid: "
    assert _refusal(ctx, {"Create": {"RegionName": "sa-east-1"}}) == (
        invalid + "Region sa-east-1 is not a peer of this deployment (shoal serve --peer sa-east-1=URL)")
    assert _refusal(ctx, {"Create": {"RegionName": HOME}}) == (
        invalid + f"Replica region {HOME} is the region of the table itself")
    assert _refusal(ctx, {"Delete": {"RegionName": PEER}}) == invalid + f"Replica does not exist in region {PEER}"
    assert _refusal(ctx, {"Create": {"RegionName": PEER}}, {"Delete": {"RegionName": PEER}}) == (
        invalid + f"Only one replica update per region is allowed: {PEER}")
    assert _refusal(ctx, {"Create": {"RegionName": PEER, "TableClassOverride": "COLD"}}) == (
        "ValidationException: Invalid table-class parameter provided. Please try again with a valid table-class "
        "value: [STANDARD, STANDARD_INFREQUENT_ACCESS].")
    tables.update_table(ctx, {"TableName": "events",
                              "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}})
    assert _refusal(ctx, {"Create": {"RegionName": PEER}}) == (
        invalid + "Table events has a stream of view type NEW_IMAGE: a global table's replicas need "
        "NEW_AND_OLD_IMAGES (disable the stream, or enable it with NEW_AND_OLD_IMAGES)")


def test_a_global_tables_stream_cannot_be_disabled(ctx):
    _global(ctx)
    with ctx.engine.write() as txn:  # as the replication thread does once the copy is made
        from shoal.api.catalog import update_description

        table = ctx.catalog.get(txn, HOME, "events")
        update_description(txn, HOME, "events", table.table_id,
                           lambda d: (d["Replicas"][0].update(ReplicaStatus="ACTIVE"), d.update(TableStatus="ACTIVE")))
    with pytest.raises(ValidationException) as caught:
        tables.update_table(ctx, {"TableName": "events", "StreamSpecification": {"StreamEnabled": False}})
    assert caught.value.message == ("One or more parameter values were invalid: Table events has replicas: its "
                                    "stream cannot be disabled while it is a global table")


def _activate(ctx, name="events") -> None:
    """What the replication thread does once a replica's copy is made."""
    from shoal.api.catalog import update_description

    def change(desc):
        for entry in desc["Replicas"]:
            entry["ReplicaStatus"] = "ACTIVE"
        desc["TableStatus"] = "ACTIVE"

    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, HOME, name)
        update_description(txn, HOME, name, table.table_id, change)
        for key, _ in control.pending_tasks(txn):
            txn.delete("meta", key)


def test_deleting_the_last_replica_makes_a_regional_table_again(ctx):
    table = _global(ctx)
    _activate(ctx)
    out = tables.update_table(ctx, {"TableName": "events", "ReplicaUpdates": [{"Delete": {"RegionName": PEER}}]})
    assert "Replicas" not in out["TableDescription"] and "GlobalTableVersion" not in out["TableDescription"]
    with ctx.engine.read() as txn:
        assert [(t["kind"], t["peer"]) for _, t in control.pending_tasks(txn)] == [("drop", PEER)]
        assert replica_apply.cursor_of(txn, PEER, table.table_id) is None
        assert replica_apply.global_tables(txn, ctx.catalog) == {}


def test_delete_table_of_a_replica_tells_the_others_it_left(ctx):
    table = _global(ctx)
    _activate(ctx)
    tables.delete_table(ctx, {"TableName": "events"})
    with ctx.engine.read() as txn:
        tasks = [task for _, task in control.pending_tasks(txn)]
        assert replica_apply.cursor_of(txn, PEER, table.table_id) is None
    assert tasks == [{"kind": "sync", "table_id": table.table_id, "name": "events", "peer": PEER,
                      "replicas": [{"RegionName": PEER, "ReplicaStatus": "ACTIVE"}]}]


def test_without_a_home_region_replica_updates_are_refused(engine):
    ctx = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine))
    _create(ctx)
    assert _refusal(ctx, {"Create": {"RegionName": PEER}}) == (
        "ValidationException: One or more parameter values were invalid: ReplicaUpdates needs a deployment that "
        "is the home of one region: start Shoal with --region and --peer REGION=URL")


# ---------------------------------------------------------------- configuration


def test_peers_are_parsed_from_the_option_and_the_variable():
    assert node.parse_peers("eu-west-1=http://10.0.0.2:8000/, ap-south-1=https://ap.example:443") == {
        "eu-west-1": "http://10.0.0.2:8000", "ap-south-1": "https://ap.example:443"}
    for wrong in ("eu-west-1", "=http://x:1", "eu-west-1=ftp://x", "eu-west-1=http://"):
        with pytest.raises(ValueError) as caught:
            node.parse_peers(wrong)
        assert str(caught.value) == f"expected REGION=http(s)://HOST:PORT, not {wrong!r}"


def test_peer_is_repeatable_and_the_command_line_replaces_the_variable(monkeypatch):
    monkeypatch.setenv("SHOAL_PEERS", "a=http://x:1,b=http://y:2")
    assert cli.build_parser().parse_args(["serve"]).peer == "a=http://x:1,b=http://y:2"
    args = cli.build_parser().parse_args(["serve", "--peer", "c=http://z:3", "--peer", "d=http://w:4"])
    assert args.peer == "c=http://z:3,d=http://w:4"
    monkeypatch.delenv("SHOAL_PEERS")
    assert cli.build_parser().parse_args(["serve"]).peer is None
    assert cli.build_parser().parse_args(["serve"]).region is None


def test_peer_credentials_come_from_an_aws_credentials_file(tmp_path):
    path = tmp_path / "peer"
    path.write_text("[default]\naws_access_key_id = AKIDPEER\naws_secret_access_key = s3cret\n")
    assert node.read_credentials(str(path)) == ("AKIDPEER", "s3cret")
    path.write_text("[default]\naws_access_key_id = AKIDPEER\n")
    with pytest.raises(ValueError) as caught:
        node.read_credentials(str(path))
    assert str(caught.value) == f"{path} has no aws_access_key_id and aws_secret_access_key"


def test_the_wrong_region_refusal_is_dynamodbs_signature_error():
    error = wrong_region("eu-west-1")
    assert (error.type_name, error.status, error.message) == (
        "InvalidSignatureException", 400, "Credential should be scoped to a valid region, not 'eu-west-1'. ")


# ---------------------------------------------------------------- unreachable peers and metrics


class _FixedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _Peer:
    """A real HTTP server standing for a peer region: answers 200 {} and keeps the targets it got."""

    def __init__(self) -> None:
        import http.server
        import threading

        targets = self.targets = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                targets.append(self.headers["X-Amz-Target"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _metric(engine, metric: str, table="events", receiving=PEER):
    """(count, sum, min, max) of a metric recorded in HOME, or None."""
    from shoal.metrics.store import lookup, total

    series = (HOME, "AWS/DynamoDB", metric, (("ReceivingRegion", receiving), ("TableName", table)))
    with engine.read() as txn:
        info = lookup(txn, series)
        stats = total(txn, info.series_id) if info is not None else None
    return None if stats is None else (stats.count, stats.sum, stats.min, stats.max)


def _replica(ctx, region=PEER) -> dict:
    with ctx.engine.read() as txn:
        desc = ctx.catalog.get(txn, HOME, "events").description
    return next(r for r in desc["Replicas"] if r["RegionName"] == region)


def test_a_paused_peer_is_shown_region_disabled_and_its_backlog_counted(engine, monkeypatch):
    """--peer-pause: nothing is sent; after UNREACHABLE_S the replica is
    REGION_DISABLED with the time it was first found unreachable, and
    PendingReplicationCount counts this region's writes it lacks."""
    clock = _FixedClock(1_800_000_000.0)
    control.configure(engine, control.Settings(HOME, {PEER: "http://127.0.0.1:1"}))
    ctx = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    try:
        _global(ctx)
        _activate(ctx)
        for pk in ("a", "b"):
            items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": pk}, "kind": {"S": "k"}}})
        monkeypatch.setattr(node, "UNREACHABLE_S", 0.0)
        sender = node.Replicator(engine, ctx.catalog, control.Settings(HOME, {PEER: "http://127.0.0.1:1"}, {PEER}),
                                 clock=clock, metrics=True)
        assert sender.peers[PEER].paused
        with pytest.raises(node.PeerError) as caught:
            sender.peers[PEER].call("Ping", {"TableName": "events", "SourceRegion": HOME})
        assert str(caught.value) == f"{PEER}: paused (--peer-pause)"
        before = time.time()
        sender.run_once()
        replica = _replica(ctx)
        assert replica["ReplicaStatus"] == "REGION_DISABLED"
        assert before - 1 <= replica["ReplicaInaccessibleDateTime"] <= time.time() + 0.001  # kept to the ms, rounded
        assert replica["ReplicaStatusDescription"].startswith(f"Region {PEER} has not answered since ")
        assert _metric(engine, "PendingReplicationCount") == (1.0, 2.0, 2.0, 2.0)
        assert _metric(engine, "ReplicationLatency") is None
        # what a sync from the coordinator says (ACTIVE) does not hide what this region sees
        from shoal.replication.protocol import sync_replicas

        sync_replicas(ctx, {"TableName": "events", "SourceRegion": PEER,
                            "Replicas": [{"RegionName": PEER, "ReplicaStatus": "ACTIVE"},
                                         {"RegionName": HOME, "ReplicaStatus": "ACTIVE"}]})
        assert _replica(ctx)["ReplicaStatus"] == "REGION_DISABLED"
        # and the replica set it sends says ACTIVE: reachability is not membership
        with engine.read() as txn:
            desc = ctx.catalog.get(txn, HOME, "events").description
        assert control.replica_set(desc, HOME) == [{"RegionName": HOME, "ReplicaStatus": "ACTIVE"},
                                                   {"RegionName": PEER, "ReplicaStatus": "ACTIVE"}]
    finally:
        control.unconfigure(engine)


def test_a_peer_back_is_active_again_and_the_latency_is_recorded(engine, monkeypatch):
    """The peer answers again: its writes go, ReplicationLatency gets one
    value per record (the time from the write to the peer's answer), the
    replica is ACTIVE without the inaccessible fields, and the backlog falls to 0."""
    clock = _FixedClock(1_800_000_000.0)
    peer = _Peer()
    control.configure(engine, control.Settings(HOME, {PEER: peer.url}))
    ctx = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine), now=clock)
    try:
        table = _global(ctx)
        _activate(ctx)
        with engine.write() as txn:  # the copy is made: changes go
            txn.delete("meta", replica_apply.hold_key(PEER, table.table_id))
        items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "a"}, "kind": {"S": "k"}}})
        monkeypatch.setattr(node, "UNREACHABLE_S", 0.0)
        paused = node.Replicator(engine, ctx.catalog, control.Settings(HOME, {PEER: peer.url}, {PEER}),
                                 clock=clock, metrics=True)
        paused.run_once()
        assert _replica(ctx)["ReplicaStatus"] == "REGION_DISABLED" and peer.targets == []
        clock.now += 2.5
        sender = node.Replicator(engine, ctx.catalog, control.Settings(HOME, {PEER: peer.url}), clock=clock,
                                 metrics=True)
        sender.run_once()
        assert "ShoalReplication_20261206.ApplyChanges" in peer.targets
        assert _metric(engine, "ReplicationLatency") == (1.0, 2500.0, 2500.0, 2500.0)
        replica = _replica(ctx)
        assert replica["ReplicaStatus"] == "ACTIVE"
        assert "ReplicaInaccessibleDateTime" not in replica and "ReplicaStatusDescription" not in replica
        assert _metric(engine, "PendingReplicationCount") == (2.0, 1.0, 0.0, 1.0)
    finally:
        control.unconfigure(engine)
        peer.close()


def test_an_idle_peer_is_pinged(engine):
    peer = _Peer()
    control.configure(engine, control.Settings(HOME, {PEER: peer.url}))
    ctx = Context(HOME, DEFAULT_ACCOUNT, engine, Catalog(engine))
    try:
        _global(ctx)
        _activate(ctx)
        sender = node.Replicator(engine, ctx.catalog, control.Settings(HOME, {PEER: peer.url}))
        sender._probe()
        assert peer.targets == ["ShoalReplication_20261206.Ping"]
        sender._probe()  # heard from just now
        assert peer.targets == ["ShoalReplication_20261206.Ping"]
    finally:
        control.unconfigure(engine)
        peer.close()


def test_peer_pause_is_repeatable_and_comes_from_its_variable(monkeypatch):
    monkeypatch.setenv("SHOAL_PEER_PAUSE", "a,b")
    assert node.parse_paused(cli.build_parser().parse_args(["serve"]).peer_pause) == {"a", "b"}
    args = cli.build_parser().parse_args(["serve", "--peer-pause", "c", "--peer-pause", "d"])
    assert node.parse_paused(args.peer_pause) == {"c", "d"}


def test_with_no_global_table_left_the_indexer_stops_and_comes_back_at_the_head(ctx):
    """Once the last replica is removed, a round of the replication thread
    unregisters the version store's indexer (it would read every write only
    to pass it over, and keep the change log for it); the next table made
    global registers it again at the head, and its writes fold as before."""
    from shoal.api.changelog import consumer_cursor, head_position

    _global(ctx)
    _activate(ctx)
    tables.update_table(ctx, {"TableName": "events", "ReplicaUpdates": [{"Delete": {"RegionName": PEER}}]})
    items.put_item(ctx, {"TableName": "events", "Item": {"pk": {"S": "a"}, "kind": {"S": "k"}}})
    with ctx.engine.read() as txn:
        assert consumer_cursor(txn, versions.INDEXER) < head_position(txn)
    sender = node.Replicator(ctx.engine, ctx.catalog, control.Settings(HOME, {}))
    assert sender._index() is False
    with ctx.engine.read() as txn:
        assert consumer_cursor(txn, versions.INDEXER) is None
    assert sender._index() is False  # nothing to do without it
    table = _global(ctx, "again")
    with ctx.engine.read() as txn:
        assert consumer_cursor(txn, versions.INDEXER) == head_position(txn) - 1  # UpdateTable's own record
    sender._index()
    items.put_item(ctx, {"TableName": "again", "Item": {"pk": {"S": "b"}, "kind": {"S": "k"}}})
    from shoal.api.common import storage_key

    with ctx.engine.read() as txn:
        version = versions.read_version(txn, storage_key(table, {"pk": {"S": "b"}}))
        assert version[0][2] == head_position(txn) == consumer_cursor(txn, versions.INDEXER)
