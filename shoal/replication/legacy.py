"""Global tables version 2017.11.29 (Legacy), on the replication of 2019.11.21.

In this version the user makes the table in every region (same name, same
key schema and indexes, empty, a stream with NEW_AND_OLD_IMAGES) and then
joins them with CreateGlobalTable; UpdateGlobalTable adds or removes a
region, under the same conditions (the API Reference: "None of the replica
tables in the global table can contain any data" when a replica is added).
As no table of the group holds data when a region joins, nothing is copied:
each member starts keeping its change records for every other member at its
log's head (``apply.follow``) and the replication thread sends them, last
writer wins, exactly as for a 2019.11.21 table.

The global table itself is a record kept by every member region, in
``meta`` under ``repl/g/`` + its name: ``{GlobalTableName,
CreationDateTime, GlobalTableStatus, Regions}``.  A member's table
description carries ``GlobalTableVersion: "2017.11.29"`` (DescribeTable
shows it) and no ``Replicas``, which are 2019.11.21's; a table cannot be a
member of both versions.

The region that receives CreateGlobalTable, UpdateGlobalTable or the
settings operations coordinates: it asks every member for its table
(``LegacyDescribe``), checks DynamoDB's conditions, then sends every member
the new record (``LegacyJoin``: follow the others, forget removed ones,
leave if not in it), first CREATING or UPDATING and then ACTIVE.  These
requests wait for peers, so the server runs them on a thread of their own
(``protocol.ReplicationService``), never on the event loop.
"""

from __future__ import annotations

import orjson

from shoal.api.changelog import consumers, head_position
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.errors import ShoalError, TableNotFoundException, ValidationException
from shoal.replication import apply as replica_apply
from shoal.replication import control

GLOBAL_TABLE_VERSION = "2017.11.29"
RECORD_PREFIX = b"repl/g/"
LIST_LIMIT = 100  # ListGlobalTables' page without a Limit (the API Reference)
NEW_AND_OLD = "NEW_AND_OLD_IMAGES"


class GlobalTableNotFoundException(ShoalError):
    type_name = "GlobalTableNotFoundException"
    status = 400


class GlobalTableAlreadyExistsException(ShoalError):
    type_name = "GlobalTableAlreadyExistsException"
    status = 400


class ReplicaAlreadyExistsException(ShoalError):
    type_name = "ReplicaAlreadyExistsException"
    status = 400


class ReplicaNotFoundException(ShoalError):
    type_name = "ReplicaNotFoundException"
    status = 400


class IndexNotFoundException(ShoalError):
    type_name = "IndexNotFoundException"
    status = 400


class PeerAnswerError(ShoalError):
    """A peer's DynamoDB error, passed on to the client as the peer worded it."""

    def __init__(self, type_name: str, namespace: str, status: int, message: str) -> None:
        super().__init__(message)
        self.type_name, self.namespace, self.status = type_name, namespace, status


def not_found(name: str) -> GlobalTableNotFoundException:
    # DynamoDB's words (its DescribeTableReplicaAutoScaling sends the same for a regional table).
    return GlobalTableNotFoundException(f"Global table with name: '{name}' does not exist.")


def table_not_found(name: str, region: str) -> TableNotFoundException:
    return TableNotFoundException(f"Table not found: Table: '{name}' not found in region: '{region}'.")


def global_table_arn(account: str, name: str) -> str:
    return f"arn:aws:dynamodb::{account}:global-table/{name}"


# ---------------------------------------------------------------- records


def read_record(txn, name: str) -> dict | None:
    raw = txn.get("meta", RECORD_PREFIX + name.encode())
    return orjson.loads(raw) if raw is not None else None


def write_record(txn, record: dict) -> None:
    txn.put("meta", RECORD_PREFIX + record["GlobalTableName"].encode(), orjson.dumps(record))


def all_records(txn) -> list[dict]:
    """This region's global tables, by name (table names sort as bytes)."""
    return [orjson.loads(raw) for _, raw in txn.scan("meta", RECORD_PREFIX, RECORD_PREFIX[:-1] + b"0")]


def describe(record: dict, account: str, status: str | None = None) -> dict:
    """A GlobalTableDescription."""
    return {
        "ReplicationGroup": [{"RegionName": region} for region in record["Regions"]],
        "GlobalTableArn": global_table_arn(account, record["GlobalTableName"]),
        "CreationDateTime": record["CreationDateTime"],
        "GlobalTableStatus": status or record["GlobalTableStatus"],
        "GlobalTableName": record["GlobalTableName"],
    }


def is_member(description: dict) -> bool:
    """Whether a table description is that of a 2017.11.29 global table's member."""
    return description.get("GlobalTableVersion") == GLOBAL_TABLE_VERSION


# ---------------------------------------------------------------- a member's side


def member_state(ctx, name: str) -> dict:
    """What the coordinator checks of this region's table ``name``: its
    description (None: no such table), whether it is empty, and the global
    table record this region holds under that name."""
    from shoal.api import tables

    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
        record = read_record(txn, name)
        if table is None:
            return {"Table": None, "Empty": True, "GlobalTable": record}
        empty = _empty(txn, table)
        return {"Table": tables.describe(txn, table), "Empty": empty, "GlobalTable": record}


def _empty(txn, table) -> bool:
    for _ in txn.scan("items", table.prefix, _prefix_end(table.prefix)):
        return False
    return True


def _prefix_end(prefix: bytes) -> bytes:
    return (int.from_bytes(prefix, "big") + 1).to_bytes(len(prefix), "big")


def join(ctx, name: str, record: dict) -> None:
    """Take the global table ``record``: follow every other region of it,
    forget the regions no longer in it, or leave if this region is not in
    it.  A region joining checks its table again (it may have been written
    since the coordinator looked)."""
    from shoal.api.catalog import update_description

    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
        if table is None:
            raise table_not_found(name, ctx.region)
        regions = record["Regions"]
        current = read_record(txn, name)
        if ctx.region not in regions:
            if current is None:
                return
            for peer in followed_peers(txn, table.table_id):
                replica_apply.unfollow(txn, peer, table.table_id)
            replica_apply.unmark_global(txn, table.table_id)
            txn.delete("meta", RECORD_PREFIX + name.encode())
            update_description(txn, ctx.region, name, table.table_id,
                               lambda desc: desc.pop("GlobalTableVersion", None), ctx.catalog.keys)
            return
        if current is None:
            from shoal.api import tables

            check_joining(name, ctx.region, {"Table": tables.describe(txn, table), "Empty": _empty(txn, table),
                                             "GlobalTable": None})
        replica_apply.mark_global(txn, table)
        head = head_position(txn)
        for region in regions:
            if region != ctx.region and replica_apply.cursor_of(txn, region, table.table_id) is None:
                replica_apply.follow(txn, region, table.table_id, at=head)
        for peer in list(followed_peers(txn, table.table_id)):
            if peer not in regions:
                replica_apply.unfollow(txn, peer, table.table_id)
        write_record(txn, record)
        if not is_member(table.description):
            update_description(txn, ctx.region, name, table.table_id,
                               lambda desc: desc.__setitem__("GlobalTableVersion", GLOBAL_TABLE_VERSION),
                               ctx.catalog.keys)


def followed_peers(txn, table_id: str) -> list[str]:
    """The peers this region keeps ``table_id``'s records for."""
    suffix = "/" + table_id
    return [name[len("replica/"):-len(suffix)] for name in consumers(txn)
            if name.startswith("replica/") and name.endswith(suffix)]


def update_tables(ctx, name: str, requests: list[dict]) -> None:
    """Run UpdateSettings' UpdateTable requests on this region's table."""
    from shoal.api import tables

    for request in requests:
        tables.update_table(ctx, {**request, "TableName": name})


def leave_on_delete(txn, table) -> None:
    """DeleteTable of a member in its own region: the region leaves the
    global table here at once and the other members are told (a queued
    ``legacy_join`` each, sent by the replication thread)."""
    record = read_record(txn, table.name)
    if record is None:
        return
    rest = {**record, "Regions": [r for r in record["Regions"] if r != table.region]}
    for peer in followed_peers(txn, table.table_id):
        replica_apply.unfollow(txn, peer, table.table_id)
    for region in rest["Regions"]:
        control.queue_task(txn, {"kind": "legacy_join", "table_id": table.table_id, "name": table.name,
                                 "peer": region, "record": rest})
    replica_apply.unmark_global(txn, table.table_id)
    txn.delete("meta", RECORD_PREFIX + table.name.encode())


# ---------------------------------------------------------------- conditions


def check_joining(name: str, region: str, state: dict, like: dict | None = None) -> None:
    """DynamoDB's conditions on a table joining a global table: it exists,
    belongs to no global table, has a stream with new and old images, is
    empty and (``like``: another member's description) has the same key
    schema and indexes."""
    desc = state["Table"]
    if desc is None:
        raise table_not_found(name, region)
    if state.get("GlobalTable") is not None or is_member(desc):
        raise GlobalTableAlreadyExistsException(f"Global table with name: '{name}' already exists.")
    if desc.get("Replicas") or desc.get("GlobalTableVersion"):
        raise ValidationException(
            f"{INVALID}Table: {name} in region: {region} is a replica of a global table of version "
            f"{desc.get('GlobalTableVersion')}: a table cannot be a replica of both versions")
    view = (desc.get("StreamSpecification") or {}).get("StreamViewType")
    if view != NEW_AND_OLD:
        raise ValidationException(
            f"{INVALID}Table: {name} in region: {region} must have DynamoDB Streams enabled with "
            f"StreamViewType {NEW_AND_OLD}")
    if not state["Empty"]:
        raise ValidationException(f"{INVALID}Table: {name} in region: {region} is not empty: "
                                  "the tables of a global table must be empty when a replica is added")
    if like is None:
        return
    if _typed_keys(desc, desc["KeySchema"]) != _typed_keys(like, like["KeySchema"]):
        raise ValidationException(
            f"{INVALID}Table: {name} in region: {region} does not have the same key schema as the other replicas")
    for member, what in (("GlobalSecondaryIndexes", "global"), ("LocalSecondaryIndexes", "local")):
        if _indexes(desc.get(member)) != _indexes(like.get(member)):
            raise ValidationException(
                f"{INVALID}Table: {name} in region: {region} does not have the same {what} secondary indexes "
                "(names and key schemas) as the other replicas")


def _keys(schema: list[dict]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def _typed_keys(desc: dict, schema: list[dict]) -> list[tuple[str, str, str]]:
    types = {d["AttributeName"]: d["AttributeType"] for d in desc["AttributeDefinitions"]}
    return [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "")) for k in schema]


def _indexes(specs) -> dict:
    return {spec["IndexName"]: _keys(spec["KeySchema"]) for spec in specs or ()}
