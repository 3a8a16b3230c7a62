"""shoal.replication's core over a real engine: versions and last writer
wins, what a region sends, ReplicaUpdates' rules, the peer list."""

from __future__ import annotations

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
        records, _, _ = sender._pending(txn, table.table_id, 0, None)
    assert [(r["keys"]["pk"]["S"], r["new"]["by"]["S"], r["time"]) for r in records] == [("x", "local", ahead + 1)]
    # So the peer, which holds the remote write, takes it.
    assert _apply(ctx, table, _change(ahead, f"{PEER}:bb", 1, "x", by="remote")) == 0


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
        assert sender._pending(txn, table.table_id, 0, None)[0] == []


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
        first, last, more = sender._pending(txn, table.table_id, 0, None)
        assert [r["keys"]["pk"]["S"] for r in first] == ["alone", "t0", "t1", "t2"] and more
        second, _, more = sender._pending(txn, table.table_id, last, None)
    assert [r["keys"]["pk"]["S"] for r in second] == ["after"] and not more


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
