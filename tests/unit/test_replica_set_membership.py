"""A replica set (``protocol.sync_replicas``) is taken only by a table that
is a replica here: one a region queued before it learnt that this replica
left its global table (removed after its KMS key stayed inaccessible for 20
hours, ``control.remove_inaccessible_replica``) must not make the table left
behind a member again.  Driven directly, without servers: the late set is
handed to the receiving region's code as the replication thread would."""

from __future__ import annotations

from shoal.api import tables
from shoal.api.catalog import update_description
from shoal.replication import apply as replica_apply
from shoal.replication import control
from shoal.replication.protocol import sync_replicas
from tests.unit.test_replication import HOME, OTHER, PEER, ctx  # noqa: F401 (ctx: a fixture, HOME's)



def _create(ctx) -> None:
    tables.create_table(ctx, {"TableName": "events", "BillingMode": "PAY_PER_REQUEST",
                              "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                              "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})


def _global(ctx) -> None:
    """A global table of HOME and PEER, both ACTIVE, nothing left to send."""
    _create(ctx)
    tables.update_table(ctx, {"TableName": "events", "ReplicaUpdates": [{"Create": {"RegionName": PEER}}]})

    def change(desc):
        for entry in desc["Replicas"]:
            entry["ReplicaStatus"] = "ACTIVE"
        desc["TableStatus"] = "ACTIVE"

    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, HOME, "events")
        update_description(txn, HOME, "events", table.table_id, change)
        for key, _ in control.pending_tasks(txn):
            txn.delete("meta", key)


def _table(ctx):
    with ctx.engine.read() as txn:
        return ctx.catalog.get(txn, HOME, "events")


def _late_set(ctx) -> None:
    """The set PEER queued before it learnt that HOME left: HOME, PEER and a third region."""
    sync_replicas(ctx, {"TableName": "events", "SourceRegion": PEER,
                        "Replicas": [{"RegionName": PEER, "ReplicaStatus": "ACTIVE"},
                                     {"RegionName": HOME, "ReplicaStatus": "ACTIVE"},
                                     {"RegionName": OTHER, "ReplicaStatus": "ACTIVE"}]})


def _membership(ctx) -> tuple:
    table = _table(ctx)
    with ctx.engine.read() as txn:
        return (table.description.get("Replicas"), table.description.get("GlobalTableVersion"),
                replica_apply.is_global(txn, table.table_id),
                [replica_apply.cursor_of(txn, region, table.table_id) for region in (PEER, OTHER)])


def test_a_replica_removed_for_its_inaccessible_key_ignores_a_set_sent_before_it_left(ctx, clock):
    _global(ctx)
    table = _table(ctx)

    def inaccessible(desc):
        desc["TableStatus"] = control.INACCESSIBLE

    with ctx.engine.write() as txn:
        update_description(txn, HOME, "events", table.table_id, inaccessible)
    assert control.remove_inaccessible_replica(ctx.engine, ctx.catalog, HOME, _table(ctx), clock())
    assert _membership(ctx) == (None, None, False, [None, None])

    _late_set(ctx)
    assert _membership(ctx) == (None, None, False, [None, None])  # still a regional table
    assert _table(ctx).description["TableStatus"] == control.INACCESSIBLE


def test_a_regional_table_ignores_a_replica_set(ctx):
    """A table of the same name that never was a replica (or one made after
    the replica was deleted) is not made one by a set."""
    _create(ctx)
    _late_set(ctx)
    assert _membership(ctx) == (None, None, False, [None, None])
    assert _table(ctx).description["TableStatus"] == "ACTIVE"


def test_a_replica_still_takes_the_set_it_is_sent(ctx):
    _global(ctx)
    _late_set(ctx)
    replicas, version, is_global, cursors = _membership(ctx)
    assert [r["RegionName"] for r in replicas] == [PEER, OTHER]
    assert (version, is_global) == (control.GLOBAL_TABLE_VERSION, True)
    assert all(cursor is not None for cursor in cursors)
