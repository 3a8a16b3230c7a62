"""Multi-Region strong consistency (MRSC) wired to tables: item requests as
consensus rounds over the three regions (``shoal.consensus``).

Each item of an MRSC table is a CASPaxos register whose acceptors are the
table's three regions: this region's ``Acceptor`` called in process, the
others over the peer endpoint (``ShoalReplication_20261206.Paxos``, under the
peer operations' authentication, each answer durable before it is sent).  A
register is named, between regions, by its table's name and the item's key
attributes (``register_key``); each region keeps it under its own storage key
of the item (its table ids, and with encryption at rest its keys, differ).

PutItem, UpdateItem and DeleteItem build a change (current item -> new item)
from the request's own code (conditions, update expressions, ReturnValues)
and run a round; GetItem with ConsistentRead runs an identity round.  A value
a round has chosen reaches a region's table through the write path
(``apply_chosen``: indexes, counters, stream), in ballot order per item (the
ballot last applied is kept under ``mrsc/applied/`` + the storage key): in
the proposing region before the request is answered, in the others by a
``Learn`` message sent after it (and by any later round they take part in as
proposer).  Eventually consistent reads read the local table, which may lag
a lost Learn until the item's next round or the region's next catch-up
(``catch_up``: a few seconds after start, then every ``CATCH_UP_S``).

A round blocks on peers, so these requests must not run on the event loop:
``protocol.ReplicationService.screen`` sends the requests naming a table in
``Settings.strong`` to a thread pool.  (A request the screen missed, in a
worker that has not yet seen the table become MRSC, still runs correctly, on
the loop, and teaches the screen the name.)

Errors: ``WriteConflict`` that certainly did not apply is DynamoDB's
``ReplicatedWriteConflictException`` (400); ``Unavailable``, and a conflict
that may still apply, are ``InternalServerError`` (500): the outcome is
unknown, and the SDKs retry both.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import queue
import threading
import time
import zlib

from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import orjson

from shoal.api.common import storage_key
from shoal.consensus import CONFLICT_MESSAGE, ZERO, Acceptor, Ballot, Proposer, Unavailable, WriteConflict, identity
from shoal.consensus.acceptor import pack_ballot, unpack_ballot
from shoal.consensus.proposer import Message
from shoal.consensus.transport import decode_reply, encode_request
from shoal.errors import (ConditionalCheckFailedException, InternalServerError, ResourceNotFoundException,
                          ShoalError)
from shoal.replication import authorization, control

APPLIED_PREFIX = b"mrsc/applied/"
#: A round gives up after this long (below the SDKs' default read timeout of 60 s,
#: and short enough that a region down costs a client little).
ROUND_TIMEOUT_S = 3.0
PEER_TIMEOUT_S = 2.5  # a message's socket timeout
CONNECTIONS_PER_PEER = 32  # kept open per peer, at most
ROUND_WORKERS = 96  # threads sending the messages of rounds
SETTLING_ROUNDS = 16  # a strongly consistent Query or Scan's rounds running at once, per process


#: Pauses before each try of a Learn message (the first at once).
LEARN_RETRY_DELAYS_S = (0.0, 0.2, 1.0, 3.0)


class ReplicatedWriteConflictException(ShoalError):
    """DynamoDB's error for a write that met a write of the same item from
    another region (declared on PutItem, UpdateItem, DeleteItem, BatchWriteItem)."""

    type_name = "ReplicatedWriteConflictException"
    status = 400


def register_key(key: dict) -> bytes:
    """A register's name between regions: the item's key attributes."""
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS)


def _applied_key(skey: bytes) -> bytes:
    return APPLIED_PREFIX + skey


# ---------------------------------------------------------------- acceptors


class LocalAcceptor:
    """This region's acceptor of one register (its storage key ``skey``),
    refusing while the table is sealed (``seal``)."""

    __slots__ = ("acceptor", "skey", "seal_key")

    def __init__(self, engine, skey: bytes, seal_key: bytes) -> None:
        self.acceptor = Acceptor(engine)
        self.skey = skey
        self.seal_key = seal_key

    def prepare(self, key: bytes, ballot: Ballot):
        return sealed_call(self.acceptor.engine, self.seal_key, self.skey, "prepare", ballot)

    def accept(self, key: bytes, ballot: Ballot, value: bytes | None):
        return sealed_call(self.acceptor.engine, self.seal_key, self.skey, "accept", ballot, value, name=key)

    def peek(self, key: bytes):
        return self.acceptor.peek(self.skey)


# ---------------------------------------------------------------- sealing, for a table leaving MRSC
#
# To make an MRSC table a single-Region table again without losing a chosen
# value, the region that stays (``leave``) first seals its own acceptor and one
# other region's: a sealed acceptor refuses every prepare and accept of the
# table's registers, checked in the same transaction as the message, so once
# both seals are committed no round can reach a majority and nothing more is
# chosen.  Then every value chosen so far was accepted by one of the two
# (any two regions of three are a majority, and majorities meet), and the one
# with the higher accepted ballot per register is the latest chosen value, or
# a later one a round had accepted and not finished, which adopting completes
# (as a strongly consistent read would).  The staying region applies those to
# its table and stops being MRSC.

SEALED_PREFIX = b"mrsc/sealed/"
#: + a register's storage key: its name, for deletes in an encrypted directory (``sealed_call``)
NAMES_PREFIX = b"mrsc/names/"


class Sealed(ShoalError):
    """A prepare or accept of a sealed table's register (a peer's round counts it missing)."""

    type_name = "ResourceInUseException"
    status = 400


def seal_key(region: str, name: str) -> bytes:
    return SEALED_PREFIX + f"{region}/{name}".encode()


def sealed_call(engine, seal: bytes, skey: bytes, kind: str, ballot: Ballot, value: bytes | None = None,
                name: bytes | None = None):
    """An acceptor's prepare or accept (``shoal.consensus.acceptor``'s rules),
    refused with ``Sealed`` when ``seal`` is set, in one transaction.

    An accepted absence (a delete) under an encrypted data directory also
    records the register's ``name`` (``NAMES_PREFIX``): its storage key holds
    a keyed hash of the partition key, so nothing else would tell a
    strongly consistent Scan which item the register is."""
    from shoal.consensus.acceptor import PREFIX as PAXOS, Reply, State, encode_state, read_state

    ballot = Ballot(*ballot)
    with engine.write() as txn:
        if txn.get("meta", seal) is not None:
            raise Sealed("Attempt to change a resource which is still in use: the table is becoming a "
                         "single-Region table")
        state = read_state(txn, skey)
        if ballot < state.promised:
            return Reply(False, state.promised, state.accepted, state.value)
        if kind == "prepare":
            if ballot != state.promised:
                txn.put("meta", PAXOS + skey, encode_state(state._replace(promised=ballot)))
            return Reply(True, ballot, state.accepted, state.value)
        if state.accepted != ballot or state.value != value:
            txn.put("meta", PAXOS + skey, encode_state(State(ballot, ballot, value)))
            if value is None and name is not None and getattr(engine, "keys", None) is not None:
                txn.put("meta", NAMES_PREFIX + skey, name)
        return Reply(True, ballot, ballot, value)


class PeerPool:
    """Connections to one peer, one per concurrent message (``PeerClient``
    keeps one connection and is not shared between threads)."""

    def __init__(self, region: str, url: str, own_region: str, credentials, paused: bool) -> None:
        self.region, self.url, self.own_region = region, url, own_region
        self.credentials, self.paused = credentials, paused
        self._idle: queue.LifoQueue = queue.LifoQueue()

    def call(self, operation: str, payload: dict) -> dict:
        from shoal.replication.node import PeerClient

        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            client = PeerClient(self.region, self.url, self.own_region, self.credentials)
            client.timeout = PEER_TIMEOUT_S
            client.paused = self.paused
        try:
            answer = client.call(operation, payload)
        except Exception:
            client.close()
            raise
        if self._idle.qsize() < CONNECTIONS_PER_PEER:
            self._idle.put(client)
        else:
            client.close()
        return answer


class PeerAcceptor:
    """A peer region's acceptor of one register, over the peer endpoint; a
    refusal or failure of the transport raises (the round counts it lost)."""

    __slots__ = ("pool", "table_name")

    def __init__(self, pool: PeerPool, table_name: str) -> None:
        self.pool = pool
        self.table_name = table_name

    def _send(self, message: Message):
        payload = encode_request(message)
        payload["TableName"] = self.table_name
        payload["SourceRegion"] = self.pool.own_region
        return decode_reply(self.pool.call("Paxos", payload))

    def prepare(self, key: bytes, ballot: Ballot):
        return self._send(Message("", "prepare", key, ballot))

    def accept(self, key: bytes, ballot: Ballot, value: bytes | None):
        return self._send(Message("", "accept", key, ballot, value))

    def peek(self, key: bytes):
        return self._send(Message("", "peek", key, Ballot(0, "")))


class Missing:
    """A region of the table that is not a peer of this deployment: never answers."""

    def prepare(self, *message):
        raise ConnectionError("not a peer")

    accept = peek = prepare


# ---------------------------------------------------------------- the node


class StrongNode:
    """The proposer side of one process (one per engine): the proposer,
    connections to the peers, and the thread that sends Learn messages."""

    def __init__(self, engine, catalog, settings: control.Settings) -> None:
        self.engine = engine
        self.catalog = catalog
        self.region = settings.region
        self.pools = {region: PeerPool(region, url, settings.region, settings.credentials,
                                       region in settings.paused)
                      for region, url in settings.peers.items()}
        self.proposer = Proposer(settings.region, {}, timeout=ROUND_TIMEOUT_S, workers=ROUND_WORKERS, settle=True)
        self._learners = ThreadPoolExecutor(max_workers=4, thread_name_prefix="shoal-mrsc-learn")
        #: the settling rounds of a strongly consistent Query or Scan page, run together (``StrongRange``)
        self.settlers = ThreadPoolExecutor(max_workers=SETTLING_ROUNDS, thread_name_prefix="shoal-mrsc-settle")

    def acceptors(self, table, skey: bytes) -> dict:
        out = {self.region: LocalAcceptor(self.engine, skey, seal_key(self.region, table.name))}
        for replica in (*(table.description.get("Replicas") or ()),
                        *(table.description.get("GlobalTableWitnesses") or ())):
            pool = self.pools.get(replica["RegionName"])
            # A region whose replica or witness could not be made is still one of the three (a
            # majority stays two) but is never asked: a table there of that name is not this one.
            usable = pool is not None and control.CREATION_FAILED not in (
                replica.get("ReplicaStatus"), replica.get("WitnessStatus"))
            out[replica["RegionName"]] = PeerAcceptor(pool, table.name) if usable else Missing()
        return out

    def round(self, table, key: dict, change):
        """Run one round on ``key``'s register; the finished ``Round``.
        Raises the change's own error, or the DynamoDB error of a round
        without a majority."""
        authorization.check_strong_request(self.engine, table)  # a replica its policy keeps from replicating
        skey = storage_key(table, key)
        try:
            return self.proposer.run(register_key(key), change, self.acceptors(table, skey))
        except WriteConflict as exc:
            if exc.maybe_applied:
                raise InternalServerError(f"Internal server error: the write may or may not have been applied "
                                          f"({exc})") from None
            raise ReplicatedWriteConflictException(CONFLICT_MESSAGE) from None
        except Unavailable as exc:
            outcome = "may or may not have been applied" if exc.maybe_applied else "was not applied"
            raise InternalServerError(f"Internal server error: the request {outcome}: {exc}") from None

    def write(self, table, key: dict, change):
        """A write round, its value applied here before it returns and
        sent to the other regions after."""
        done = self.round(table, key, change)
        self.learn(table, key, done.chosen, done.result, here=True)
        return done

    def read(self, table, key: dict):
        """A strongly consistent read: the latest acknowledged value."""
        done = self.round(table, key, identity)
        self.learn(table, key, done.chosen, done.result, here=False)
        return done

    def learn(self, table, key: dict, ballot: Ballot, value: bytes | None, here: bool) -> None:
        """Apply a chosen value here (now, or with ``here`` false in the
        background) and tell the other regions (in the background)."""
        if here:
            apply_chosen(self.engine, self.catalog, self.region, table.name, key, ballot, value, from_peer=False)
        else:
            self._learners.submit(self._apply_quietly, table.name, key, ballot, value)
            return
        payload = {"TableName": table.name, "SourceRegion": self.region, "Key": register_key(key).decode(),
                   "Ballot": list(ballot), "Value": value.decode() if value is not None else None}
        for replica in table.description.get("Replicas") or ():
            pool = self.pools.get(replica["RegionName"])
            if pool is not None and replica["ReplicaStatus"] != control.CREATION_FAILED:
                self._learners.submit(self._send_quietly, pool, payload)

    def _apply_quietly(self, name, key, ballot, value) -> None:
        try:
            apply_chosen(self.engine, self.catalog, self.region, name, key, ballot, value)
        except Exception:  # the engine closed, the table went: the next round applies it
            pass

    @staticmethod
    def _send_quietly(pool: PeerPool, payload: dict) -> None:
        """Send a Learn, tried again a few times over about four seconds (a
        peer busy or briefly unreachable); after that, that region learns the
        value with the item's next round there."""
        for delay in LEARN_RETRY_DELAYS_S:
            if delay:
                time.sleep(delay)
            try:
                pool.call("Learn", payload)
                return
            except Exception:
                continue

    def close(self) -> None:
        self._learners.shutdown(wait=False, cancel_futures=True)
        self.settlers.shutdown(wait=False, cancel_futures=True)
        self.proposer.close()


_NODES: dict[int, StrongNode] = {}
_NODES_LOCK = threading.Lock()


def node_of(ctx) -> StrongNode:
    """This process's node for ``ctx``'s engine (made when first needed)."""
    node = _NODES.get(id(ctx.engine))
    if node is not None:
        return node
    settings = control.settings_of(ctx.engine)
    if settings is None or settings.region is None:
        raise InternalServerError("Internal server error: this deployment has no region (shoal serve --region)")
    with _NODES_LOCK:
        node = _NODES.get(id(ctx.engine))
        if node is None:
            from shoal.api.catalog import Catalog

            catalog = ctx.catalog if isinstance(ctx.catalog, Catalog) else Catalog(ctx.engine)
            node = _NODES[id(ctx.engine)] = StrongNode(ctx.engine, catalog, settings)
            atexit.register(node.close)
    return node


def forget(engine) -> None:
    node = _NODES.pop(id(engine), None)
    if node is not None:
        node.close()


def _noted(ctx, table) -> None:
    """A request on an MRSC table that reached the loop: route the next off it."""
    settings = control.settings_of(ctx.engine)
    if settings is not None and table.name not in settings.strong:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        settings.strong.add(table.name)


# ---------------------------------------------------------------- the table's side


def apply_chosen(engine, catalog, region: str, name: str, key: dict, ballot: Ballot,
                 value: bytes | None, from_peer: bool = True) -> bool:
    """Make ``key``'s item in this region's table ``value`` (the item's JSON,
    None: absent), chosen under ``ballot``, unless a later ballot's value is
    already there.  Returns whether the table changed.  A value this region's
    own request did not write (``from_peer``) is counted by contributor
    insights as a replicated write; the request's own is counted by the
    dispatcher."""
    from shoal.api import insights as contributor_insights
    from shoal.api.writepath import stored_json, write_item
    from shoal.model.size import item_size

    ballot = Ballot(*ballot)
    with engine.read() as txn:
        table = catalog.get(txn, region, name)
        if table is None or not control.is_strong(table.description):
            return False
        skey = storage_key(table, key)
        raw = txn.get("meta", _applied_key(skey))
        if raw is not None and unpack_ballot(raw)[0] >= ballot:
            return False
    with engine.write() as txn:
        table = catalog.get(txn, region, name)
        if table is None or not control.is_strong(table.description):
            return False
        raw = txn.get("meta", _applied_key(skey))
        if raw is not None and unpack_ballot(raw)[0] >= ballot:
            return False
        old_raw = txn.get("items", skey)
        changed = False
        if old_raw is None and value is None:
            pass
        elif old_raw is not None and value is not None and bytes(stored_json(old_raw)) == value:
            pass  # a read's write-back, or a value applied before under a lower ballot
        else:
            new = orjson.loads(value) if value is not None else None
            write_item(txn, table, skey, key, old_raw, new, item_size(new) if new is not None else 0,
                       now=time.time())
            changed = True
            if from_peer and table.table_id in contributor_insights.counting_tables:
                contributor_insights.count_applied_write(table, key, old_raw, new)
        txn.put("meta", _applied_key(skey), pack_ballot(ballot))
        return changed


# ---------------------------------------------------------------- the peer operations


WITNESS_PREFIX = b"mrsc/witness/"


def _witness_key(region: str, name: str) -> bytes:
    return WITNESS_PREFIX + f"{region}/{name}".encode()


def create_witness(ctx, data: dict) -> dict:
    """Be the witness of a peer's MRSC table: an acceptor of its registers,
    kept under the table's id (from the region that made it) and the
    register's name; no table, so no client reads or writes it here."""
    from shoal.errors import ResourceInUseException

    with ctx.engine.write() as txn:
        key = _witness_key(ctx.region, data["TableName"])
        raw = txn.get("meta", key)
        if raw is not None and orjson.loads(raw)["id"] != data["Id"]:  # (the same one again: an answer lost)
            # Its registers would be mixed with the other table's: refused, and the asking
            # region shows the witness CREATION_FAILED (``control.witness_creation_failed``).
            raise ResourceInUseException(
                f"Region {ctx.region} is already the witness of another table {data['TableName']}")
        txn.put("meta", key, orjson.dumps({"id": data["Id"], "source": data["SourceRegion"]}))
    return {}


def _witnessed(ctx, name: str) -> bytes | None:
    """The prefix of the registers this region keeps as ``name``'s witness."""
    with ctx.engine.read() as txn:
        raw = txn.get("meta", _witness_key(ctx.region, name))
    return None if raw is None else b"w/" + orjson.loads(raw)["id"].encode() + b"/"


def handle_paxos(ctx, data: dict) -> dict:
    """A peer's prepare, accept or peek for one of this region's MRSC tables
    (or a table it is the witness of)."""
    from shoal.consensus.transport import decode_request, encode_reply

    witnessed = None
    try:
        table = _strong_table(ctx, data["TableName"])
    except ResourceNotFoundException:
        witnessed = _witnessed(ctx, data["TableName"])
        if witnessed is None:
            raise
    try:
        message = decode_request(data)
        key = orjson.loads(message.key)
        skey = witnessed + register_key(key) if witnessed is not None else storage_key(table, key)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        from shoal.errors import SerializationException

        raise SerializationException(f"not a consensus request: {exc}") from None
    if witnessed is None:
        _check_authorized(ctx, table)
    if message.kind == "peek":
        return encode_reply(Acceptor(ctx.engine).peek(skey))
    return encode_reply(sealed_call(ctx.engine, seal_key(ctx.region, data["TableName"]), skey, message.kind,
                                    message.ballot, message.value if message.kind == "accept" else None,
                                    name=message.key))


def handle_learn(ctx, data: dict) -> dict:
    """A value a peer's round chose: applied here in ballot order."""
    from shoal.consensus.transport import ballot_of

    _check_authorized(ctx, _strong_table(ctx, data["TableName"]))
    try:
        key, ballot, value = orjson.loads(data["Key"]), ballot_of(data["Ballot"]), data.get("Value")
        if not isinstance(key, dict) or not (value is None or isinstance(value, str)):
            raise ValueError("Key must be an object and Value a string or null")
        if value is not None:
            orjson.loads(value)
    except (ValueError, KeyError, TypeError) as exc:  # orjson's decode error is a ValueError
        from shoal.errors import SerializationException

        raise SerializationException(f"not a learned value: {exc}") from None
    applied = apply_chosen(ctx.engine, ctx.catalog, ctx.region, data["TableName"], key, ballot,
                           value.encode() if value is not None else None)
    return {"Applied": applied}


def _check_authorized(ctx, table) -> None:
    """A peer's consensus message for a replica whose resource-based policy
    denies replication here is refused (``authorization.refusal``): its
    region takes no part in rounds, which the other two still make a
    majority of; a permanently unauthorized replica takes none again."""
    with ctx.engine.read() as txn:
        if authorization.refused(txn, table):
            raise authorization.refusal(table, authorization.denial(txn, table))


def _strong_table(ctx, name: str):
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
    if table is None or not control.is_strong(table.description):
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} is not a "
                                        "multi-Region strong consistency replica here")
    return table


# ---------------------------------------------------------------- the item operations


def _decoded(value: bytes | None) -> dict | None:
    return orjson.loads(value) if value is not None else None


def _charged(ctx, table, writes: bool, admit: bool = True):
    """What the request draws on the table's capacity: it runs off the loop
    (a round waits for peers), where the loop's admission does nothing, so
    it is admitted (unless not ``admit``) and charged here
    (``shoal.capacity.off_loop``); on the loop, or for a table without
    limits, nothing more is done."""
    from shoal.capacity.off_loop import NO_CHARGE

    capacity = getattr(ctx.catalog, "capacity", None)
    if capacity is None or not table.limited:
        return NO_CHARGE
    return capacity.off_loop(ctx, table, writes, admit=admit)


def _failed_condition(ctx, table, old: dict | None) -> None:
    """A write whose condition failed consumes write capacity all the same
    (the existing item's size, or one unit), as on any table: metered (the
    ConsumedWriteCapacityUnits metric) and charged (``_charged``, or on the
    loop ``Capacity.settle``) before ConditionalCheckFailedException is raised."""
    from shoal.api.common import meter_failed_write
    from shoal.model.size import item_size

    meter_failed_write(ctx, table, item_size(old) if old is not None else None)


def _check_index_keys(table, item: dict) -> None:
    """The write path's refusal of an index key of the wrong type, before the
    round: a chosen value must be one every region's table takes."""
    if table.indexes:
        from shoal.api.indexes import entry_key

        for index in table.indexes:
            entry_key(table, index, item, b"", True)


def _index_units(table, key: dict, old: dict | None, new: dict | None) -> dict | None:
    """The write units a write from ``old`` to ``new`` (None: no item)
    consumes in the table's secondary indexes, as the write path counts them
    (``shoal.api.indexes.maintain``: an entry removed, an entry written; none
    where the entry's key and projection did not change), in
    ``{"GlobalSecondaryIndexes": {name: units}, "LocalSecondaryIndexes": ...}``
    (ConsumedCapacity's form), or None.  Counted from the round's own values,
    the item the round found and the one it chose, not from what this
    region's table held when the value was applied here."""
    if not table.indexes:
        return None
    from shoal.api.indexes import entry_key, entry_size, projected_entry, table_suffix_of
    from shoal.model.capacity import write_units

    suffix = table_suffix_of(table, storage_key(table, key))
    out: dict = {}
    for index in table.indexes:
        if index.vector is not None:  # not counted in write units (shoal.api.indexes._apply_entry)
            continue
        old_key = entry_key(table, index, old, suffix, False) if old is not None else None
        new_key = entry_key(table, index, new, suffix, False) if new is not None else None
        old_value = projected_entry(index, old, None) if old_key is not None else None
        new_value = projected_entry(index, new, None) if new_key is not None else None
        if old_key == new_key and old_value == new_value:
            continue  # only attributes the index does not project changed (or it holds neither)
        units = 0.0
        if old_value is not None and old_key != new_key:
            units += write_units(entry_size(old_value))
        if new_value is not None:
            units += write_units(entry_size(new_value))
        if units:
            by_name = out.setdefault("LocalSecondaryIndexes" if index.local else "GlobalSecondaryIndexes", {})
            by_name[index.name] = by_name.get(index.name, 0.0) + units
    return out or None


def _write_response(ctx, table, request: dict, key: dict, old: dict | None, new: dict | None, new_size: int,
                    attributes):
    """A write round's answer: its Attributes and ConsumedCapacity, its
    units (the table's and its indexes') metered, and so charged (the
    request runs in ``_charged``)."""
    from shoal.api.common import consumed_capacity, item_write_units, meter_item_write
    from shoal.model.size import item_size

    units = item_write_units(item_size(old) if old is not None else 0, new_size)
    index_units = _index_units(table, key, old, new)
    if ctx.meter is not None:
        meter_item_write(ctx, table.name, units, index_units)
    out = {}
    if attributes:
        out["Attributes"] = attributes
    capacity = consumed_capacity(request, table.name, units, index_units=index_units)
    if capacity is not None:
        out["ConsumedCapacity"] = capacity
    return out


def put_item(ctx, moved, request: dict, item: dict, size: int, condition, return_values: str):
    table, key = moved.table, moved.key
    with _charged(ctx, table, True):
        old = _replace(ctx, table, key, item, condition, request)
        return _write_response(ctx, table, request, key, old, item, size,
                               old if return_values == "ALL_OLD" else None)


def _replace(ctx, table, key: dict, item: dict | None, condition=None, request: dict | None = None) -> dict | None:
    """A round that makes ``key``'s item ``item`` (None: deletes it), the
    ``condition`` (if any) judged on the value the round found; the item as
    it was before (None if there was none)."""
    _noted(ctx, table)
    if item is not None:
        _check_index_keys(table, item)
    value = orjson.dumps(item) if item is not None else None
    seen: dict = {}

    def change(current: bytes | None) -> bytes | None:
        old = seen["old"] = _decoded(current)
        if condition is not None:
            from shoal.api.items import check_condition

            check_condition(condition, old, request)
        return value

    try:
        node_of(ctx).write(table, key, change)
    except ConditionalCheckFailedException:
        _failed_condition(ctx, table, seen["old"])
        raise
    return seen["old"]


def batch_write(ctx, table, key: dict, item: dict | None) -> tuple[dict | None, dict | None]:
    """One put (``item``) or delete (None) of a BatchWriteItem on an MRSC
    table, as a round: the item as it was before (None if there was none),
    and the write units its indexes consumed (``_index_units``' form, or None).
    Raises ReplicatedWriteConflictException when another region's write won
    (BatchWriteItem answers it unprocessed) and InternalServerError when no
    majority answered.  Its write units, the table's and its indexes', are
    charged to the table's capacity (the batch meters them); the batch admits
    it first, as each item (``Capacity.refuses_another``), leaving it
    unprocessed when the table's or a GSI's capacity is spent (and refused
    when that leaves the batch nothing processed)."""
    from shoal.api.common import WRITE, item_write_units
    from shoal.model.size import item_size

    with _charged(ctx, table, True, admit=False) as charge:
        old = _replace(ctx, table, key, item)
        index_units = _index_units(table, key, old, item)
        local = sum(((index_units or {}).get("LocalSecondaryIndexes") or {}).values())  # the table's capacity
        charge.add(WRITE, local + item_write_units(item_size(old) if old is not None else 0,
                                                   item_size(item) if item is not None else 0))
        for index, units in ((index_units or {}).get("GlobalSecondaryIndexes") or {}).items():
            charge.add(WRITE, units, index)
    return old, index_units


def update_item(ctx, moved, request: dict, update, condition, return_values: str):
    from shoal.api.items import MAX_ITEM_SIZE, _update_return_values, check_condition, created_by
    from shoal.errors import ValidationException
    from shoal.model.size import item_size

    table, key = moved.table, moved.key
    _noted(ctx, table)
    seen: dict = {}

    def change(current: bytes | None) -> bytes | None:
        old = seen["old"] = _decoded(current)
        check_condition(condition, old, request)
        new_item = created_by(update, old, key)
        size = item_size(new_item) if new_item is not None else 0
        if size > MAX_ITEM_SIZE:
            raise ValidationException("Item size to update has exceeded the maximum allowed size")
        if new_item is not None:
            _check_index_keys(table, new_item)
        seen.update(new=new_item, size=size)
        return orjson.dumps(new_item) if new_item is not None else None

    with _charged(ctx, table, True):
        try:
            node_of(ctx).write(table, key, change)
        except ConditionalCheckFailedException:
            _failed_condition(ctx, table, seen["old"])
            raise
        return _write_response(ctx, table, request, key, seen["old"], seen["new"], seen["size"],
                               _update_return_values(return_values, update, seen["old"], seen["new"]))


def delete_item(ctx, moved, request: dict, condition, return_values: str):
    table, key = moved.table, moved.key
    with _charged(ctx, table, True):
        old = _replace(ctx, table, key, None, condition, request)
        return _write_response(ctx, table, request, key, old, None, 0,
                               old if return_values == "ALL_OLD" else None)


def get_item(ctx, moved, request: dict, projection):
    """GetItem with ConsistentRead: the item as a majority of regions holds it."""
    from shoal.api.common import READ, consumed_capacity, item_read_units, meter
    from shoal.model.size import item_size

    table = moved.table
    _noted(ctx, table)
    with _charged(ctx, table, False):
        item = _decoded(node_of(ctx).read(table, moved.key).result)
        size = item_size(item) if item is not None else 0
        units = item_read_units(size, True)
        meter(ctx, table.name, READ, units)
    out = {}
    if item is not None:
        out["Item"] = item if projection is None else projection.apply(item)
    capacity = consumed_capacity(request, table.name, units)
    if capacity is not None:
        out["ConsumedCapacity"] = capacity
    return out


def batch_read(ctx, table, key: dict) -> dict | None:
    """One key of a BatchGetItem with ConsistentRead on an MRSC table: the
    item as a majority of regions holds it (None: none), read as GetItem's
    strongly consistent read is.  The batch admits it (``Capacity.refuses_another``),
    meters its read units and charges them with its other keys'.  Raises
    ReplicatedWriteConflictException or InternalServerError when its round
    could not finish (the batch answers the key unprocessed)."""
    _noted(ctx, table)
    return _decoded(node_of(ctx).read(table, key).result)


# ---------------------------------------------------------------- strongly consistent Query and Scan
#
# A page is read from the registers of two regions, this one and one other
# (a replica, or the witness when no replica answers), merged by key in one
# order.  A write acknowledged before the read began was accepted by two
# regions of three, and any two regions share one, so one of the pair holds
# it or a later ballot.  Where both hold the same accepted ballot that value
# was accepted by a majority: it is chosen, and is returned as it is.
# Anywhere else (one holds a ballot the other lacks) a write may be in
# flight, and the key is settled by an identity round (``StrongNode.read``)
# before it is returned, so nothing returned is later lost.  Keys are merged
# lazily, as the page consumes them, so a page settles only what it returns
# (and the one item past its 1 MB limit).
#
# The order is "plain": the storage key an unencrypted region gives the item,
# without the table's prefix (the 4-byte hash of the partition key, the
# partition key, the sort key), which every region can compute from a key.
# Within a partition it is the sort key's order in every region; across
# partitions it is an unencrypted region's own Scan order.  (An encrypted
# directory hashes partition keys with its own key, so its Scan order is its
# own: its strong Scan goes in plain order, and lists its registers whole.)

RANGE_PAGE = 500  # registers per RangeRegisters answer, at most
RANGE_BYTES = 1024 * 1024  # and about this many bytes of values


class RangeSpec:
    """The registers a page may read, in plain positions: for a Query, the
    sort-key suffixes within ``partition`` (a key value); for a Scan
    (``partition`` None), whole positions.  ``low`` inclusive, ``high``
    exclusive (None: no end)."""

    __slots__ = ("hash_key", "range_key", "partition", "low", "high", "reverse")

    def __init__(self, hash_key: str, range_key: str | None, partition: dict | None, low: bytes,
                 high: bytes | None, reverse: bool) -> None:
        self.hash_key, self.range_key, self.partition = hash_key, range_key, partition
        self.low, self.high, self.reverse = low, high, reverse

    def position(self, key: dict) -> bytes:
        """``key``'s plain position in this spec's order."""
        from shoal.model.keys import encode_key_value

        sort = b""
        if self.range_key is not None:
            (type_, value), = key[self.range_key].items()
            sort = encode_key_value(type_, value)
        if self.partition is not None:
            return sort
        (type_, value), = key[self.hash_key].items()
        encoded = encode_key_value(type_, value)
        return zlib.crc32(encoded).to_bytes(4, "big") + encoded + sort

    def contains(self, position: bytes) -> bool:
        return self.low <= position and (self.high is None or position < self.high)

    def to_wire(self, limit: int) -> dict:
        return {"HashKey": self.hash_key, "RangeKey": self.range_key, "Partition": self.partition,
                "Low": self.low.hex(), "High": None if self.high is None else self.high.hex(),
                "Reverse": self.reverse, "Limit": limit}

    @classmethod
    def from_wire(cls, data: dict) -> "RangeSpec":
        """ValueError, TypeError or KeyError when ``data`` is not one."""
        hash_key, range_key, partition = data["HashKey"], data.get("RangeKey"), data.get("Partition")
        if not isinstance(hash_key, str) or not (range_key is None or isinstance(range_key, str)):
            raise ValueError("HashKey and RangeKey must be attribute names")
        if partition is not None and not (isinstance(partition, dict) and len(partition) == 1
                                          and next(iter(partition)) in ("S", "N", "B")):
            raise ValueError("Partition must be a key value")
        high = data.get("High")
        reverse = data.get("Reverse", False)
        if not isinstance(reverse, bool):
            raise ValueError("Reverse must be a boolean")
        return cls(hash_key, range_key, partition, bytes.fromhex(data["Low"]),
                   None if high is None else bytes.fromhex(high), reverse)


class Register(NamedTuple):
    """One register as a range read lists it."""

    position: bytes
    name: str  # register_key(key), decoded
    key: dict
    ballot: Ballot
    value: bytes | None
    applied: Ballot = ZERO  # (this region's own, when asked) the ballot its table last applied


def range_registers(engine, catalog, region: str, name: str, spec: RangeSpec,
                    limit: int, applied: bool = False) -> tuple[list[Register], bool]:
    """Up to ``limit`` registers of ``name`` (this region's MRSC table, or a
    table it witnesses) in ``spec``'s range and order, and whether more
    follow; with ``applied``, each with the ballot this region's table last
    applied.  An unencrypted replica (any replica, for a Query) reads one
    storage range; a witness, whose registers are keyed by name, and an
    encrypted replica's Scan list every register and sort them."""
    from shoal.api.common import partition_prefix, successor
    from shoal.consensus.acceptor import PREFIX as PAXOS, decode_state

    limit = max(1, min(limit, RANGE_PAGE))
    with engine.read() as txn:
        table = catalog.get(txn, region, name)
        witnessed = None
        if table is None or not control.is_strong(table.description):
            raw = txn.get("meta", _witness_key(region, name))
            if raw is None:
                raise ResourceNotFoundException(f"Requested resource not found: Table: {name} is not a "
                                                "multi-Region strong consistency replica here")
            witnessed = b"w/" + orjson.loads(raw)["id"].encode() + b"/"
        out: list[Register] = []
        size = 0
        if witnessed is None and (spec.partition is not None or getattr(engine, "keys", None) is None):
            base = partition_prefix(table, spec.partition) if spec.partition is not None else table.prefix
            low = PAXOS + base + spec.low
            high = PAXOS + base + spec.high if spec.high is not None else successor(PAXOS + base)
            for skey, raw in txn.scan("meta", low, high, reverse=spec.reverse):
                if len(out) == limit or size > RANGE_BYTES:
                    return out, True
                state = decode_state(raw)
                position = bytes(skey[len(PAXOS) + len(base):])
                key = _key_at(table, spec, position, state.value)
                out.append(Register(position, register_key(key).decode(), key, state.accepted, state.value,
                                    _applied(txn, bytes(skey[len(PAXOS):])) if applied else ZERO))
                size += len(state.value or b"")
            return out, False
        # Every register, named, filtered and sorted
        prefix = PAXOS + (witnessed if witnessed is not None else table.prefix)
        found = []
        for skey, raw in txn.scan("meta", prefix, successor(prefix)):
            state = decode_state(raw)
            if witnessed is not None:
                key = orjson.loads(bytes(skey[len(prefix):]))
            elif state.value is not None:
                from shoal.api.common import key_of

                key = key_of(table, orjson.loads(state.value))
            else:
                recorded = txn.get("meta", NAMES_PREFIX + bytes(skey[len(PAXOS):]))
                if recorded is None:
                    continue  # a delete from before names were recorded: not nameable
                key = orjson.loads(bytes(recorded))
            if spec.partition is not None and key.get(spec.hash_key) != spec.partition:
                continue
            position = spec.position(key)
            if spec.contains(position):
                found.append(Register(position, register_key(key).decode(), key, state.accepted, state.value,
                                      _applied(txn, bytes(skey[len(PAXOS):])) if applied else ZERO))
    found.sort(key=lambda r: r.position, reverse=spec.reverse)
    for register in found:
        if len(out) == limit or size > RANGE_BYTES:
            return out, True
        out.append(register)
        size += len(register.value or b"")
    return out, False


def _applied(txn, skey: bytes) -> Ballot:
    raw = txn.get("meta", _applied_key(skey))
    return ZERO if raw is None else unpack_ballot(raw)[0]


def _key_at(table, spec: RangeSpec, position: bytes, value: bytes | None) -> dict:
    """The key of the register at plain ``position`` of an unencrypted
    replica (or within a Query's partition): from its value, else decoded."""
    from shoal.model.keys import decode_key_value

    if value is not None:
        from shoal.api.common import key_of

        return key_of(table, orjson.loads(value))
    offset = 0
    if spec.partition is not None:
        key = {table.hash_key: spec.partition}
    else:
        type_ = table.attribute_types[table.hash_key]
        text, offset = decode_key_value(type_, position, 4)
        key = {table.hash_key: {type_: text}}
    if table.range_key is not None:
        type_ = table.attribute_types[table.range_key]
        key[table.range_key] = {type_: decode_key_value(type_, position, offset)[0]}
    return key


def handle_range_registers(ctx, data: dict) -> dict:
    """A peer's strongly consistent Query or Scan: a page of registers in a
    range ({Key, Ballot, Value}, in order) and whether more follow."""
    try:
        spec = RangeSpec.from_wire(data)
        limit = data["Limit"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError("Limit must be a positive integer")
    except (ValueError, KeyError, TypeError) as exc:
        from shoal.errors import SerializationException

        raise SerializationException(f"not a range of registers: {exc}") from None
    registers, more = range_registers(ctx.engine, ctx.catalog, ctx.region, data["TableName"], spec, limit)
    return {"Registers": [{"Key": r.name, "Ballot": list(r.ballot),
                           "Value": r.value.decode() if r.value is not None else None} for r in registers],
            "More": more}


class _Side:
    """One region's registers in a range, fetched a batch at a time."""

    def __init__(self, fetch, spec: RangeSpec, batch: int) -> None:
        self.fetch = fetch  # (spec, limit) -> (registers, more)
        self.spec = RangeSpec(spec.hash_key, spec.range_key, spec.partition, spec.low, spec.high, spec.reverse)
        self.batch = batch
        self.buffer: list[Register] = []
        self.more = True

    def refill(self) -> None:
        registers, more = self.fetch(self.spec, self.batch)
        if registers:
            last = registers[-1].position
            if self.spec.reverse:
                self.spec.high = last
            else:
                self.spec.low = last + b"\x00"
        self.buffer = registers[::-1]  # popped from the end
        self.more = more and bool(registers)


class StrongRange:
    """The merged registers of a strongly consistent Query or Scan page:
    yields ``(position, stored item)`` in order, each key's value chosen or
    settled by a round, absent keys left out."""

    def __init__(self, node: StrongNode, table, spec: RangeSpec, batch: int) -> None:
        self.node, self.table, self.spec, self.batch = node, table, spec, batch
        self.peers = self._peers()
        self.failed = 0

    def _peers(self) -> list:
        """The other regions to ask, replicas first (the witness lists its
        registers whole), those not cut off (``--peer-pause``) first."""
        names = [r["RegionName"] for r in self.table.description.get("Replicas") or ()
                 if r["ReplicaStatus"] != control.CREATION_FAILED]
        names += [w["RegionName"] for w in self.table.description.get("GlobalTableWitnesses") or ()
                  if w.get("WitnessStatus") != control.CREATION_FAILED]
        failed = len(self.table.description.get("Replicas") or ()) + len(
            self.table.description.get("GlobalTableWitnesses") or ()) - len(names)
        pools = [self.node.pools[n] for n in names if n in self.node.pools]
        self.missing = len(names) - len(pools) + failed
        return sorted(pools, key=lambda pool: pool.paused)

    def _local(self, spec: RangeSpec, limit: int):
        node = self.node
        return range_registers(node.engine, node.catalog, node.region, self.table.name, spec, limit, applied=True)

    def _remote(self, pool: PeerPool):
        def fetch(spec: RangeSpec, limit: int):
            payload = spec.to_wire(limit)
            payload.update(TableName=self.table.name, SourceRegion=self.node.region)
            answer = pool.call("RangeRegisters", payload)
            out = []
            for entry in answer["Registers"]:
                key = orjson.loads(entry["Key"])
                value = entry["Value"].encode() if entry["Value"] is not None else None
                out.append(Register(spec.position(key), entry["Key"], key, Ballot(*entry["Ballot"]), value))
            return out, bool(answer["More"])
        return fetch

    def _refill_remote(self, side: _Side) -> None:
        """Refill from the current peer; on its failure, the next peer
        carries on from the same position; none left: unavailable."""
        while True:
            try:
                side.refill()
                return
            except Exception:
                self.failed += 1
                self.peers.pop(0)
                if not self.peers:
                    total = 1 + self.failed + self.missing
                    lost = self.failed + self.missing
                    raise InternalServerError(
                        f"Internal server error: the request was not applied: {lost} of {total} regions did not "
                        f"answer; a majority ({total // 2 + 1}) is needed") from None
                side.fetch = self._remote(self.peers[0])

    def _merged(self):
        """``(position, value or a future round)`` per key in order: the
        value where both regions hold one ballot (chosen), None where
        neither accepted anything, else the key's settling round, started
        on ``StrongNode.settlers`` so that the rounds of a batch overlap."""
        if not self.peers:
            total = 1 + self.missing
            raise InternalServerError(f"Internal server error: the request was not applied: {self.missing} of "
                                      f"{total} regions did not answer; a majority ({total // 2 + 1}) is needed")
        own = _Side(self._local, self.spec, self.batch)
        other = _Side(self._remote(self.peers[0]), self.spec, self.batch)
        reverse = self.spec.reverse
        while True:
            if not own.buffer and own.more:
                own.refill()
            if not other.buffer and other.more:
                self._refill_remote(other)
            heads = [side.buffer[-1].position for side in (own, other) if side.buffer]
            if not heads:
                return
            position = max(heads) if reverse else min(heads)
            mine = own.buffer.pop() if own.buffer and own.buffer[-1].position == position else None
            theirs = other.buffer.pop() if other.buffer and other.buffer[-1].position == position else None
            if mine is not None and theirs is not None and mine.ballot == theirs.ballot:
                if mine.applied < mine.ballot:  # chosen, and its Learn lost here: this region's table catches up
                    self.node.learn(self.table, mine.key, mine.ballot, mine.value, here=False)
                yield position, mine.value  # accepted by both: chosen
            elif (mine or theirs).ballot == ZERO and (theirs or mine).ballot == ZERO:
                continue  # promised, never accepted, anywhere asked
            else:  # in flight, or not yet learned: settled by a round
                yield position, self.node.settlers.submit(self.node.read, self.table, (mine or theirs).key)

    def __iter__(self):
        """``(position, stored item)`` in order, a batch of keys at a time
        (their rounds running together), absent keys left out."""
        from shoal.api.writepath import encode_stored_json
        from shoal.model.size import item_size

        merged = self._merged()
        while True:
            batch = list(itertools.islice(merged, self.batch))
            if not batch:
                return
            try:
                for position, value in batch:
                    if isinstance(value, Future):
                        value = value.result().result
                    if value is not None:
                        yield position, encode_stored_json(value, item_size(orjson.loads(value)))
            finally:  # a page that ended (or failed) early: the rounds not begun are not needed
                for _, value in batch:
                    if isinstance(value, Future):
                        value.cancel()


#: How often each region settles its MRSC tables' registers against another
#: region's (``catch_up``), and how soon it tries again after a catch-up failed.
CATCH_UP_S = float(os.environ.get("SHOAL_MRSC_CATCH_UP_S", "600"))
CATCH_UP_RETRY_S = 5.0


def catch_up(engine, catalog, table, batch: int = 100) -> int:
    """Bring this region's copy of MRSC ``table`` up to every value chosen
    without it: a Learn lost (a peer busy past its retries), or rounds run
    while this region was down, which it never heard of.  A strongly
    consistent Scan of the whole table (``StrongRange``) does it: a key both
    regions hold at one ballot and this one has not applied is applied here,
    any other key this region does not hold as the other does is settled by
    a round this region proposes, which applies its value here.  Returns the
    keys read.  Raises InternalServerError when no other region answers."""
    from types import SimpleNamespace

    node = node_of(SimpleNamespace(engine=engine, catalog=catalog))
    spec = RangeSpec(table.hash_key, table.range_key, None, b"", None, False)
    return sum(1 for _ in StrongRange(node, table, spec, batch))


def _strong_page(ctx, table, request: dict, plan, spec: RangeSpec) -> bytes:
    from shoal.api.query import _page

    _noted(ctx, table)
    authorization.check_strong_request(ctx.engine, table)  # a replica its policy keeps from replicating
    limit = plan.limit
    batch = min(RANGE_PAGE, limit + 1) if limit is not None else 100
    with _charged(ctx, table, False):
        entries = iter(StrongRange(node_of(ctx), table, spec, batch))
        return _page(ctx, None, table, None, request, plan, entries)


def query(ctx, table, request: dict, plan, partition_value: dict, start: bytes, stop: bytes | None,
          forward: bool) -> bytes:
    """A Query with ConsistentRead of an MRSC table: ``start`` and ``stop``
    are this region's storage range (the key condition and
    ExclusiveStartKey applied), made plain positions within the partition."""
    from shoal.api.common import partition_prefix

    prefix = partition_prefix(table, partition_value)
    if start.startswith(prefix):
        low = start[len(prefix):]
    elif start < prefix:
        low = b""
    else:  # past the partition: nothing in range
        low, stop = b"\xff" * 8, prefix
    high = stop[len(prefix):] if stop is not None and stop.startswith(prefix) else (
        b"" if stop is not None and stop <= prefix else None)
    spec = RangeSpec(table.hash_key, table.range_key, partition_value, low, high, not forward)
    return _strong_page(ctx, table, request, plan, spec)


def scan(ctx, table, request: dict, plan, segment: int | None, total: int | None,
         start_key: dict | None) -> bytes:
    """A Scan with ConsistentRead of an MRSC table, in plain order (an
    unencrypted region's own); a parallel Scan's segments are ranges of
    the plain partition-key hash, and ExclusiveStartKey must lie in its
    segment."""
    from shoal.api.common import _HASH_SPACE
    from shoal.errors import ValidationException

    low, high = b"", None
    if segment is not None:
        lo = segment * _HASH_SPACE // total
        hi = (segment + 1) * _HASH_SPACE // total
        low = lo.to_bytes(4, "big")
        high = hi.to_bytes(4, "big") if hi < _HASH_SPACE else None
    spec = RangeSpec(table.hash_key, table.range_key, None, low, high, False)
    if start_key is not None:
        position = spec.position(start_key)
        if segment is not None and not spec.contains(position):
            from shoal.api.query import segment_start_key_fault

            raise ValidationException(segment_start_key_fault(segment, total))
        spec.low = max(spec.low, position + b"\x00")
    return _strong_page(ctx, table, request, plan, spec)


# ---------------------------------------------------------------- leaving MRSC (see "sealing" above)


def _register_prefix(ctx, name: str) -> tuple[bytes, object]:
    """(where ``name``'s registers lie in ``meta``, the table or None for a witness)."""
    from shoal.consensus.acceptor import PREFIX as PAXOS

    try:
        table = _strong_table(ctx, name)
        return PAXOS + table.prefix, table
    except ResourceNotFoundException:
        witnessed = _witnessed(ctx, name)
        if witnessed is None:
            raise
        return PAXOS + witnessed, None


def handle_seal(ctx, data: dict) -> dict:
    """Seal this region's acceptor of a table (or of a table it witnesses)."""
    _register_prefix(ctx, data["TableName"])
    with ctx.engine.write() as txn:
        txn.put("meta", seal_key(ctx.region, data["TableName"]), b"1")
    return {}


REGISTERS_PAGE = 500


def handle_registers(ctx, data: dict) -> dict:
    """A page of a table's registers that hold an item ({Key, Ballot, Value});
    a witness lists its deletes too (it knows registers by name)."""
    from shoal.api.common import key_of, successor
    from shoal.consensus.acceptor import decode_state

    prefix, table = _register_prefix(ctx, data["TableName"])
    after = data.get("After")
    start = prefix if after is None else bytes.fromhex(after) + b"\x00"
    out, last = [], None
    with ctx.engine.read() as txn:
        for skey, raw in txn.scan("meta", start, successor(prefix)):
            if len(out) == REGISTERS_PAGE:
                return {"Registers": out, "After": last}
            last = bytes(skey).hex()
            state = decode_state(raw)
            if table is not None:
                if state.value is None:
                    continue
                name = register_key(key_of(table, orjson.loads(state.value))).decode()
            else:
                name = bytes(skey[len(prefix):]).decode()
            out.append({"Key": name, "Ballot": list(state.accepted),
                        "Value": state.value.decode() if state.value is not None else None})
    return {"Registers": out, "After": None}


def handle_peek_registers(ctx, data: dict) -> dict:
    """The accepted ballot and value of each register named in ``Keys``."""
    from shoal.consensus.acceptor import PREFIX as PAXOS, read_state

    prefix, table = _register_prefix(ctx, data["TableName"])
    states = []
    with ctx.engine.read() as txn:
        for name in data["Keys"]:
            skey = storage_key(table, orjson.loads(name)) if table is not None else prefix[len(PAXOS):] + name.encode()
            state = read_state(txn, skey)
            states.append({"Ballot": list(state.accepted),
                           "Value": state.value.decode() if state.value is not None else None})
    return {"States": states}


def forget_registers(txn, region: str, name: str, prefix: bytes) -> None:
    """Drop a table's registers (``prefix``: under ``paxos/``), applied ballots and seal."""
    from shoal.api.common import successor
    from shoal.consensus.acceptor import PREFIX as PAXOS

    for low in (PAXOS + prefix, APPLIED_PREFIX + prefix, NAMES_PREFIX + prefix):
        for skey in [bytes(k) for k, _ in txn.scan("meta", low, successor(low))]:
            txn.delete("meta", skey)
    txn.delete("meta", seal_key(region, name))


def delete_witness(ctx, data: dict) -> dict:
    """Stop being the witness of a table that left MRSC: its records go."""
    name = data["TableName"]
    with ctx.engine.write() as txn:
        raw = txn.get("meta", _witness_key(ctx.region, name))
        if raw is None:
            return {}
        forget_registers(txn, ctx.region, name, b"w/" + orjson.loads(raw)["id"].encode() + b"/")
        txn.delete("meta", _witness_key(ctx.region, name))
    return {}


def leave(engine, catalog, region: str, task: dict, peer) -> bool:
    """The staying region's part of UpdateTable removing an MRSC table's other
    regions (``control.apply_replica_updates``): seal here and at ``peer`` (a
    removed region), take every register's latest value from the two, apply
    them to this region's table, then make it a single-Region table and queue
    the removed regions' deletion.  Each step may run again after a crash or
    a failed peer (the task is retried, with another removed region if this
    one does not answer)."""
    from shoal.api.catalog import update_description
    from shoal.api.common import key_of, successor
    from shoal.api.writepath import stored_item
    from shoal.consensus.acceptor import ZERO, read_state
    from shoal.consensus.transport import ballot_of
    from shoal.replication import apply as replica_apply

    name = task["name"]
    with engine.write() as txn:
        table = catalog.get(txn, region, name)
        if table is None or table.table_id != task["table_id"] or not control.is_strong(table.description):
            return True
        txn.put("meta", seal_key(region, name), b"1")
    peer.call("Seal", {"TableName": name, "SourceRegion": region})
    # The peer's registers that hold an item, and the keys of this region's items and registers
    theirs: dict[str, tuple] = {}
    after = None
    while True:
        page = peer.call("Registers", {"TableName": name, "SourceRegion": region, "After": after})
        for entry in page["Registers"]:
            theirs[entry["Key"]] = (ballot_of(entry["Ballot"]), entry["Value"])
        after = page.get("After")
        if after is None:
            break
    keys: dict[str, dict] = {}
    with engine.read() as txn:
        for _, raw in txn.scan("items", table.prefix, successor(table.prefix)):
            key = key_of(table, stored_item(raw))
            keys[register_key(key).decode()] = key
        from shoal.consensus.acceptor import PREFIX as PAXOS, decode_state

        for _, raw in txn.scan("meta", PAXOS + table.prefix, successor(PAXOS + table.prefix)):
            state = decode_state(raw)
            if state.value is not None:
                key = key_of(table, orjson.loads(state.value))
                keys[register_key(key).decode()] = key
    for name_ in theirs:
        keys.setdefault(name_, orjson.loads(name_))
    unknown = [k for k in keys if k not in theirs]
    for start in range(0, len(unknown), REGISTERS_PAGE):
        chunk = unknown[start:start + REGISTERS_PAGE]
        answer = peer.call("PeekRegisters", {"TableName": name, "SourceRegion": region, "Keys": chunk})
        for name_, state in zip(chunk, answer["States"]):
            theirs[name_] = (ballot_of(state["Ballot"]), state["Value"])
    for name_, key in keys.items():
        with engine.read() as txn:
            own = read_state(txn, storage_key(table, key))
        ballot, value = theirs.get(name_, (ZERO, None))
        if own.accepted > ballot:
            ballot, value = own.accepted, (own.value.decode() if own.value is not None else None)
        if ballot > ZERO:
            apply_chosen(engine, catalog, region, name, key, ballot, value.encode() if value is not None else None)
    # A single-Region table from here on
    with engine.write() as txn:
        from shoal.replication.protocol import followed_peers

        def change(desc: dict) -> None:
            for member in ("MultiRegionConsistency", "GlobalTableWitnesses", "Replicas", "GlobalTableVersion"):
                desc.pop(member, None)
            desc["TableStatus"] = "ACTIVE"

        if update_description(txn, region, name, table.table_id, change, catalog.keys) is None:
            return True
        for other in list(followed_peers(txn, table.table_id)):
            replica_apply.unfollow(txn, other, table.table_id)
        replica_apply.unmark_global(txn, table.table_id)
        forget_registers(txn, region, name, table.prefix)
        # The sealed region first: it has just answered, and a table's tasks run one at a time, in
        # order, so a removed region that does not answer holds back only what is queued after it.
        for other in sorted(task["replicas"], key=lambda r: r != peer.region):
            control.queue_task(txn, {"kind": "drop", "table_id": table.table_id, "name": name, "peer": other})
        if task.get("witness"):
            control.queue_task(txn, {"kind": "drop_witness", "table_id": table.table_id, "name": name,
                                     "peer": task["witness"]})
    settings = control.settings_of(engine)
    if settings is not None:
        settings.strong.discard(name)
    return True
