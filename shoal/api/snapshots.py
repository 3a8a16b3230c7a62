"""Snapshots of a table, and a table built from one plus a replay of the log.

This is the base that backups and point-in-time recovery stand on (as
litestream does it: a snapshot, then the change log replayed to a position):

* ``snapshot_table`` reads one table in a single read transaction: its
  description and items as of one position of the change log.  The engine
  gives that transaction a consistent view (LMDB's MVCC), so writers are
  never blocked while a snapshot is taken; items come lazily, in chunks.
* ``build_table`` creates a new table from a snapshot (its key schema,
  billing and indexes), writes the snapshot's items through the one write
  path (so indexes, counters and the new table's own change records are
  kept), then replays the source table's item records from the snapshot's
  position up to ``until`` (a log position) or to the head.

Changes of the source table itself after the snapshot (an index created,
TTL switched on) are not replayed: the new table has the schema of the
snapshot.  Records pruned from the log cannot be replayed: ``build_table``
refuses a replay that would need them rather than build a table with a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from shoal.api import tables
from shoal.api.changelog import decode_change, head_position, is_table_change, read_raw_changes
from shoal.api.common import key_of, storage_key, successor
from shoal.api.writepath import WriteLog, stored_item
from shoal.errors import ResourceNotFoundException, ValidationException
from shoal.model.size import item_size

#: Items written per transaction while a table is built.
BUILD_CHUNK = 500


@dataclass
class TableSnapshot:
    """One table at one position of the change log."""

    table_id: str
    description: dict
    position: int  # every change up to here is in the items, none after
    items: Iterator[dict]  # wire-form items, lazily, while the snapshot's transaction is open
    # The same items in their stored form (``writepath.encode_stored``), in
    # the same order, for a copy that need not decode them (a backup).
    raw_items: Iterator[bytes] = field(default_factory=lambda: iter(()))


def snapshot_table(engine, catalog, region: str, name: str):
    """A context manager giving a ``TableSnapshot`` of table ``name``: its
    items are read from one read transaction, held open until the block ends."""
    return _Snapshot(engine, catalog, region, name)


class _Snapshot:
    def __init__(self, engine, catalog, region: str, name: str) -> None:
        self.engine, self.catalog, self.region, self.name = engine, catalog, region, name
        self._txn = None

    def __enter__(self) -> TableSnapshot:
        self._context = self.engine.read()
        txn = self._txn = self._context.__enter__()
        table = self.catalog.get(txn, self.region, self.name)
        if table is None:
            self._context.__exit__(None, None, None)
            raise ResourceNotFoundException(f"Requested resource not found: Table: {self.name} not found")
        stop = successor(table.prefix)
        items = (stored_item(raw) for _, raw in txn.scan("items", table.prefix, stop))
        raw_items = (bytes(raw) for _, raw in txn.scan("items", table.prefix, stop))
        return TableSnapshot(table.table_id, dict(table.description), head_position(txn), items, raw_items)

    def __exit__(self, *exc_info) -> None:
        self._context.__exit__(*exc_info)


def create_request(description: dict, name: str) -> dict:
    """The CreateTable request that makes a table of ``description``'s
    schema, billing and indexes under ``name``."""
    billing = (description.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    request = {"TableName": name, "KeySchema": description["KeySchema"],
               "AttributeDefinitions": description["AttributeDefinitions"], "BillingMode": billing}
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = _throughput(description["ProvisionedThroughput"])
    for member in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
        specs = []
        for index in description.get(member) or ():
            if index.get("IndexStatus") in ("CREATING", "DELETING"):
                continue  # not part of the table yet, or no longer
            spec = {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
            if member == "GlobalSecondaryIndexes" and billing == "PROVISIONED":
                spec["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
            specs.append(spec)
        if specs:
            request[member] = specs
    vector_specs = vector_index_specs(description)
    if vector_specs:
        request["VectorIndexes"] = vector_specs
    return keep_needed_definitions(request)


#: The members of a vector index's description that CreateTable takes back.
_VECTOR_MEMBERS = ("IndexName", "VectorAttribute", "SearchSchema", "Projection", "Dimensions", "DistanceFunction")


def vector_index_specs(description: dict) -> list:
    """The vector indexes of a table description as CreateTable's
    VectorIndexes (and SourceTableFeatureDetails' VectorIndexInfo) has them:
    those the table has (not those being built or deleted)."""
    return [{m: index[m] for m in _VECTOR_MEMBERS if index.get(m) is not None}
            for index in description.get("VectorIndexes") or ()
            if index.get("IndexStatus") not in ("CREATING", "DELETING")]


def keep_needed_definitions(request: dict) -> dict:
    """Drop from a CreateTable request's AttributeDefinitions those no key of
    the table or of its indexes uses (CreateTable refuses them); returns it."""
    needed = {k["AttributeName"] for k in request["KeySchema"]}
    for member in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
        for spec in request.get(member, ()):
            needed.update(k["AttributeName"] for k in spec["KeySchema"])
    for spec in request.get("VectorIndexes", ()):  # their search schema's attributes are defined too
        needed.update(k["AttributeName"] for k in spec.get("SearchSchema") or ())
    request["AttributeDefinitions"] = [d for d in request["AttributeDefinitions"] if d["AttributeName"] in needed]
    return request


def build_table(ctx, snapshot: TableSnapshot, name: str, until: int | None = None, *,
                request: dict | None = None) -> dict:
    """Create table ``name`` from ``snapshot`` and replay the source's item
    changes after the snapshot's position up to ``until`` (default: the
    head, as of the start of the replay).  Returns the new table's description.

    ``request`` is the CreateTable request to make it with, when not
    ``create_request(snapshot.description, name)`` (a restore with overrides).
    ``until=snapshot.position`` builds the snapshot alone, with no replay."""
    if request is None:
        request = create_request(snapshot.description, name)
    description = tables.create_table(ctx, request)["TableDescription"]
    with ctx.engine.read() as txn:
        table = ctx.catalog.require(txn, ctx.region, name)
    write_items(ctx, table, snapshot.items)
    _replay(ctx, table, snapshot, until)
    return description


def write_items(ctx, table, items: Iterator[dict]) -> int:
    """Put ``items`` into ``table`` through the write path (indexes, counters,
    change records), ``BUILD_CHUNK`` per transaction; returns how many."""
    chunk: list[tuple[dict, bool]] = []
    written = 0
    for item in items:
        chunk.append((item, False))
        if len(chunk) >= BUILD_CHUNK:
            _write(ctx, table, chunk)
            written += len(chunk)
            chunk = []
    _write(ctx, table, chunk)
    return written + len(chunk)


def _replay(ctx, table, snapshot: TableSnapshot, until: int | None) -> None:
    position = snapshot.position
    while True:
        batch: list[tuple[dict, bool]] = []
        with ctx.engine.read() as txn:
            end = head_position(txn) if until is None else until
            if position >= end:
                return
            first = next(iter(read_raw_changes(txn, position)), None)
            if first is None or first[0] > position + 1:
                raise ValidationException(
                    f"The change log no longer holds position {position + 1}: it was pruned; "
                    "the table cannot be built to that point")
            for seq, table_id, value in read_raw_changes(txn, position):
                if seq > end:
                    position = end
                    break
                if len(batch) >= BUILD_CHUNK:
                    break  # the rest in the next transaction
                position = seq
                if table_id != snapshot.table_id:
                    continue
                _, record = decode_change(value)
                if is_table_change(record):
                    continue
                if record["new"] is not None:
                    batch.append((record["new"], False))
                else:
                    batch.append((record["keys"], True))
            else:
                position = end  # the log holds nothing more up to the end
        _write(ctx, table, batch)


def _write(ctx, table, writes: list[tuple[dict, bool]]) -> None:
    """Put each item (or, with True, delete the item of that key) in one transaction."""
    if not writes:
        return
    with ctx.engine.write() as txn:
        log = WriteLog(txn)
        for item, delete in writes:
            keys = key_of(table, item)
            skey = storage_key(table, keys)
            old = txn.get("items", skey)
            if delete:
                log.write_item(table, skey, keys, old, None, now=ctx.now())
            else:
                log.write_item(table, skey, keys, old, item, item_size(item), now=ctx.now())
        log.finish()


def _throughput(value: dict) -> dict:
    return {"ReadCapacityUnits": value["ReadCapacityUnits"], "WriteCapacityUnits": value["WriteCapacityUnits"]}
