"""The receiving side of replication: a peer's changes applied through the
write path, last writer wins.

``apply_changes`` runs in one storage transaction (one group commit of the
receiving server): first the local writes not yet in the version store are
folded in (``versions.index_local``), then each incoming change is compared
with the item's version and applied only if newer, through ``WriteLog``'s
``write_item`` (so the table's indexes, counters, stream, TTL and
point-in-time recovery see it as any write).  The change-log record such a
write leaves keeps the writer's ``origin`` and its position there
(``originSeq``, ``originTime``): it is never sent on again, and a later
restore or stream reader can tell it came from elsewhere.

A batch is the records of one or more whole source transactions (the sender
never splits them), applied in one transaction here: a transaction's writes
become visible together in every region.
"""

from __future__ import annotations

import struct
import time

import orjson

from shoal.api import insights as contributor_insights
from shoal.api.changelog import advance_consumer, consumer_cursor, head_position
from shoal.api.common import storage_key
from shoal.api.writepath import WriteLog
from shoal.model.size import item_size
from shoal.replication import versions

_SEQ = struct.Struct(">Q")  # the change log's position and time layouts (shoal.api.changelog)
_TIME = struct.Struct(">Q")

REGISTRY_PREFIX = b"repl/t/"
HOLD_PREFIX = b"repl/hold/"


# ---------------------------------------------------------------- which tables are global


def mark_global(txn, table) -> None:
    """Remember that ``table`` replicates (its id, name and region)."""
    txn.put("meta", REGISTRY_PREFIX + table.table_id.encode(),
            orjson.dumps({"name": table.name, "region": table.region}))
    versions.start_indexing(txn)


def unmark_global(txn, table_id: str) -> None:
    txn.delete("meta", REGISTRY_PREFIX + table_id.encode())


def is_global(txn, table_id: str) -> bool:
    """Whether the table of this id replicates (``mark_global``)."""
    return txn.get("meta", REGISTRY_PREFIX + table_id.encode()) is not None


def global_tables(txn, catalog) -> dict:
    """Every global table of this deployment that still exists, by table id."""
    out = {}
    for key, raw in txn.scan("meta", REGISTRY_PREFIX, REGISTRY_PREFIX[:-1] + b"0"):
        entry = orjson.loads(raw)
        table = catalog.get(txn, entry["region"], entry["name"])
        table_id = bytes(key[len(REGISTRY_PREFIX):]).decode()
        if table is not None and table.table_id == table_id:
            out[table_id] = table
    return out


def consumer_name(peer: str, table_id: str) -> str:
    """The change-log consumer that holds ``table_id``'s records for ``peer``."""
    return f"replica/{peer}/{table_id}"


def hold_key(peer: str, table_id: str) -> bytes:
    """Present while ``peer``'s copy of the table is being made: its records
    are kept but not sent until the copy is done."""
    return HOLD_PREFIX + f"{peer}/{table_id}".encode()


def follow(txn, peer: str, table_id: str, at: int | None = None, hold: bool = False) -> None:
    """Start keeping ``table_id``'s records for ``peer`` after position ``at``
    (default: the head)."""
    from shoal.api.changelog import register_consumer

    register_consumer(txn, consumer_name(peer, table_id), at=at)
    if hold:
        txn.put("meta", hold_key(peer, table_id), b"")


def unfollow(txn, peer: str, table_id: str) -> None:
    from shoal.api.changelog import unregister_consumer

    unregister_consumer(txn, consumer_name(peer, table_id))
    txn.delete("meta", hold_key(peer, table_id))


def cursor_of(txn, peer: str, table_id: str) -> int | None:
    return consumer_cursor(txn, consumer_name(peer, table_id))


# ---------------------------------------------------------------- applying


class ReplicatedWriteLog(WriteLog):
    """``WriteLog`` whose records carry the remote writer's origin, position
    and time instead of this node's (set before each ``write_item``).

    A record is written as the bytes ``orjson.dumps`` would give its object
    ``{"table", "origin", "originSeq", "originTime", "keys", "old", "new"}``
    (the layout ``changelog.item_change_parts`` slices), joined from its
    pieces: the images are the stored items' JSON as they are, and the
    origin's JSON is encoded once per batch (``origin_json``)."""

    __slots__ = ("origin", "origin_seq", "origin_time", "origin_json")

    def item_change(self, table, keys: dict, old_json, new_json, now: float | None = None,
                    user_identity: dict | None = None, storage_key: bytes | None = None) -> int:
        seq = self._next_seq()
        stamp = int((now if now is not None else time.time()) * 1000)
        self.txn.put("changes", _SEQ.pack(seq), b"".join((
            _TIME.pack(stamp), b'{"table":"', table.table_id.encode(), b'","origin":', self.origin_json,
            b',"originSeq":%d,"originTime":%d,"keys":' % (self.origin_seq, self.origin_time), orjson.dumps(keys),
            b',"old":', b"null" if old_json is None else old_json,
            b',"new":', b"null" if new_json is None else new_json, b"}")))
        return seq


def apply_changes(txn, catalog, table, records: list[dict], now: float) -> int:
    """Apply a peer's changes of ``table`` (each ``{"time", "origin", "seq",
    "keys", "new"}``, ``new`` None for a delete) where they are newer than
    the item's version; returns how many were applied.

    This runs for every record a region receives (each region applies every
    other region's writes), so what a record costs here beyond the write
    path's own work is kept to a look-up and a put of its version."""
    versions.index_local(txn, global_tables(txn, catalog))
    log = ReplicatedWriteLog(txn)
    counting = table.table_id in contributor_insights.counting_tables
    origins: dict[str, tuple[bytes, bytes]] = {}  # origin -> (its JSON, its UTF-8), once per batch
    applied = 0
    for record in records:
        origin, time_ms, seq = record["origin"], record["time"], record["seq"]
        keys = record["keys"]
        skey = storage_key(table, keys)
        current = versions.stored(txn, skey)
        if not versions.is_newer(current, time_ms, origin, seq):
            continue  # an older (or the same) write: the item keeps the newer one
        encoded = origins.get(origin)
        if encoded is None:
            encoded = origins[origin] = (orjson.dumps(origin), origin.encode())
        new = record["new"]
        old_raw = txn.get("items", skey)
        log.origin, log.origin_seq, log.origin_time, log.origin_json = origin, seq, time_ms, encoded[0]
        log.write_item(table, skey, keys, old_raw, new, item_size(new) if new is not None else 0, now=now)
        # A replicated write is an access of the receiving replica too (contributor insights
        # count each replica as a table of its own, and writes reach every replica)
        if counting:
            contributor_insights.count_applied_write(table, keys, old_raw, new)
        versions.write_encoded_version(txn, skey, time_ms, encoded[1], seq, new is None, current)
        applied += 1
    log.finish()
    if consumer_cursor(txn, versions.INDEXER) is not None:
        advance_consumer(txn, versions.INDEXER, head_position(txn))  # what was added here is indexed
    return applied
