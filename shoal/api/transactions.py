"""TransactWriteItems and TransactGetItems: all-or-nothing groups of item actions.

A write transaction is checked in two phases.  The first needs no storage: each
action is exactly one of Put, Update, Delete or ConditionCheck, its expressions
parse and use every placeholder, a Put's item is valid and small enough; any
failure is a ValidationException for the whole request.  The second runs in ONE
storage write transaction: tables and keys are resolved (ResourceNotFound,
schema mismatches and two actions on one item are again errors of the whole
request), then every action is evaluated against the item as stored.  A failed
condition, or an error that depends on the stored item (an update operand of
the wrong type, an item grown past 400 KB, ...), becomes that action's
cancellation reason; if any action has one, nothing is written and the request
fails with TransactionCanceledException listing a reason per action, in order.
Otherwise every write goes through ``writepath.WriteLog.write_item`` in that same
storage transaction, so the change log and the table statistics move together
with the items.

Idempotency: a ClientRequestToken is remembered, in the same storage
transaction as the writes, under ``meta`` key ``b"txtoken/t" + region + 0 +
token`` with the time and a digest of the request's TransactItems.  For ten
minutes the same token with the same TransactItems returns success without
writing again (with read capacity, as DynamoDB documents); with other
TransactItems it is an IdempotentParameterMismatchException.  A time index
(``b"txtoken/i" + time + key``) lets each tokened request prune a bounded
number of expired records.

A read transaction reads every item from one storage snapshot, so it never
sees half of a write transaction.
"""

from __future__ import annotations

import hashlib
import struct

import orjson

from shoal.api.common import (
    READ,
    WRITE,
    add_index_units,
    checked_key,
    consumed_capacity,
    expression_context,
    failed_write_units,
    meter,
    read_projection,
    storage_key,
)
from shoal.api.indexes import UPDATE_EMPTY_INDEX_KEY
from shoal.api.query import check_key_paths
from shoal.api.items import MAX_ITEM_SIZE, checked_key_in_item, created_by
from shoal.api.writepath import WriteLog, stored_item, stored_json, stored_size
from shoal.errors import INVALID_PARAMETERS, KeySchemaMismatch, ShoalError, ValidationException
from shoal.expressions import parse_condition, parse_update
from shoal.model.capacity import read_units, write_units
from shoal.model.size import item_size
from shoal.model.values import check_attribute_names, validate_sized_item

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
TOKEN_TTL_S = 10 * 60
TOKEN_PREFIX = b"txtoken/"
_TOKEN_RECORD = TOKEN_PREFIX + b"t"
_TOKEN_INDEX = TOKEN_PREFIX + b"i"
_TOKEN_INDEX_END = TOKEN_PREFIX + b"j"
_PRUNE_BATCH = 64
_STAMP = struct.Struct(">Q")

WRITE_KINDS = ("ConditionCheck", "Put", "Delete", "Update")
_EXPRESSIONS = {
    "Put": ("ConditionExpression",),
    "Delete": ("ConditionExpression",),
    "ConditionCheck": ("ConditionExpression",),
    "Update": ("UpdateExpression", "ConditionExpression"),
}

NO_ACTION = "Invalid Request: TransactWriteRequest should contain Delete or Put or Update request"
SEVERAL_ACTIONS = "TransactItems can only contain one of Check, Put, Update or Delete"
SAME_ITEM = "Transaction request cannot include multiple operations on one item"
CONDITION_FAILED = "The conditional request failed"
TOKEN_MISMATCH = "Request parameters do not match the cached response"

_NONE_REASON = {"Code": "None"}


# ---------------------------------------------------------------- errors


class TransactionCanceledException(ShoalError):
    """The whole transaction was cancelled; ``reasons`` has one entry per
    action, in request order (``{"Code": "None"}`` for actions that were fine)."""

    type_name = "TransactionCanceledException"
    status = 400

    def __init__(self, reasons: list[dict]) -> None:
        codes = ", ".join(reason["Code"] for reason in reasons)
        super().__init__(
            f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
        )
        self.reasons = reasons

    def to_body(self) -> dict:
        # DynamoDB spells this error's message member "Message".
        return {"__type": self.wire_type, "CancellationReasons": self.reasons, "Message": self.message}


class IdempotentParameterMismatchException(ShoalError):
    type_name = "IdempotentParameterMismatchException"
    status = 400


# ---------------------------------------------------------------- plans


class _Write:
    """One action of a TransactWriteItems, validated, then resolved to storage."""

    __slots__ = ("kind", "spec", "condition", "update", "item", "size", "table", "key", "skey")

    def __init__(self, kind: str, spec: dict, condition, update, item, size: int) -> None:
        self.kind = kind
        self.spec = spec
        self.condition = condition
        self.update = update
        self.item = item
        self.size = size
        self.table = self.key = self.skey = None


def plan_write(action: dict) -> _Write:
    """Check one TransactItems entry without storage; the errors are
    ValidationExceptions of the whole request, as in DynamoDB."""
    kinds = [kind for kind in WRITE_KINDS if action.get(kind) is not None]
    if not kinds:
        raise ValidationException(NO_ACTION)
    if len(kinds) > 1:
        raise ValidationException(SEVERAL_ACTIONS)
    kind = kinds[0]
    spec = action[kind]
    # Transactions take expressions only: legacy members (Expected, ...) are
    # not in these structures' model, and DynamoDB ignores unknown members.
    if spec.get("Key") is not None:
        check_attribute_names(spec["Key"])
    exprs = expression_context(spec, _EXPRESSIONS[kind], ())
    update = parse_update(spec["UpdateExpression"], exprs) if kind == "Update" else None
    condition = None
    if spec.get("ConditionExpression") is not None:
        condition = parse_condition(spec["ConditionExpression"], exprs, kind="ConditionExpression")
    if exprs is not None:
        exprs.check_unused()
    item, size = None, 0
    if kind == "Put":
        item, size = validate_sized_item(spec["Item"])
        if size > MAX_ITEM_SIZE:
            raise ValidationException("Item size has exceeded the maximum allowed size")
    return _Write(kind, spec, condition, update, item, size)


def resolve_writes(ctx, txn, writes: list[_Write]) -> None:
    """Find each action's table and storage key; reject a missing table, a key
    that does not match the schema, two actions on one item, and a payload
    over 4 MB, all as errors of the whole request."""
    seen = set()
    payload = 0
    cancelled: TransactionCanceledException | None = None
    for index, write in enumerate(writes):
        table = ctx.catalog.require(txn, ctx.region, write.spec["TableName"])
        if table.description.get("MultiRegionConsistency") == "STRONG":
            raise _strong_refused("TransactWriteItems", table.name)
        try:
            if write.kind == "Put":
                key = checked_key_in_item(table, write.item)
            else:
                key = checked_key(table, write.spec["Key"])
        except KeySchemaMismatch as exc:
            cancelled = cancelled or _cancelled_by_key(exc, index, len(writes))
            continue
        payload += write.size if write.kind == "Put" else item_size(key)
        skey = storage_key(table, key)
        if skey in seen:
            raise ValidationException(SAME_ITEM)
        seen.add(skey)
        write.table, write.key, write.skey = table, key, skey
    if cancelled is not None:
        raise cancelled
    if payload > MAX_PAYLOAD_BYTES:
        raise ValidationException(
            f"Transaction payload size cannot exceed 4MB. Payload Size: {payload}"
        )


def _strong_refused(operation: str, name: str) -> ValidationException:
    """DynamoDB does not support transactions on MRSC tables (its Developer
    Guide); the wording of its error is not documented: this one is Shoal's."""
    return ValidationException(f"{operation} is not supported on multi-Region strong consistency "
                               f"global tables: {name}")


def _cancelled_by_key(exc: KeySchemaMismatch, index: int, count: int) -> TransactionCanceledException:
    """A key that does not fit the table's schema cancels the transaction:
    that action's reason says why, every other action's is None.  (An empty
    or oversized key value is an error of the whole request instead.)"""
    reasons = [_NONE_REASON] * count
    reasons[index] = {"Code": "ValidationError", "Message": exc.message}
    return TransactionCanceledException(reasons)


# ---------------------------------------------------------------- evaluation


def evaluate(write: _Write, old: dict | None):
    """(reason, new item) for one action against the stored item ``old``.

    ``reason`` is None when the action may proceed.  The new item is None for
    a Delete (and irrelevant for a ConditionCheck).  Errors that depend on the
    stored item are cancellation reasons with Code ValidationError.
    """
    try:
        if write.kind == "Update":
            _check_key_not_updated(write)
        if write.condition is not None and not write.condition.evaluate(old):
            return _condition_failed(write, old), None
        if write.kind == "Put":
            new_item = write.item
        elif write.kind == "Update":
            new_item = _updated(write, old)
        else:
            return None, None
    except ValidationException as exc:
        return {"Code": "ValidationError", "Message": exc.message}, None
    return None, new_item


# An update expression's empty index key value, in DynamoDB's words for it
# (a Put's, naming the index and key, is the write path's: shoal.api.indexes).
EMPTY_INDEX_KEY = ("One or more parameter values are not valid. A value specified for a secondary index key is "
                   "not supported. The AttributeValue for a key attribute cannot contain an empty {} value. "
                   "IndexName: {}, IndexKey: {}")


def _index_key_reason(write: _Write, item: dict) -> dict | None:
    """What DynamoDB answers for an item a Put or Update would write whose
    secondary index key it cannot index (recorded against DynamoDB, eu-west-2,
    by the dynamodb-conformance suite in 2026-06): a key attribute of another
    type, or not a scalar, cancels the transaction with a ValidationError
    reason; an empty string or binary is a ValidationException of the whole
    request.  As on the write path, an index whose key attributes the item
    lacks is not checked (the item is not in it), and the first index of the
    table that refuses the item is named."""
    for index in write.table.indexes:
        if index.vector is not None:  # vector indexes have rules of their own (shoal.api.vectors)
            continue
        if index.multi:
            pairs = list(zip(index.hash_keys + index.range_keys, index.hash_types + index.range_types))
        else:
            pairs = [(index.hash_key, index.hash_type)]
            if index.range_key is not None:
                pairs.append((index.range_key, index.range_type))
        values = [item.get(name) for name, _ in pairs]
        if None in values:
            continue
        for (name, expected), value in zip(pairs, values):
            (type_, text), = value.items()
            if type_ != expected:
                return {"Code": "ValidationError",
                        "Message": f"{INVALID_PARAMETERS}Type mismatch for Index Key {name} Expected: {expected} "
                                   f"Actual: {type_} IndexName: {index.name}"}
            if type_ != "N" and not text:
                kind = "string" if type_ == "S" else "binary"
                raise ValidationException(UPDATE_EMPTY_INDEX_KEY.format(kind) if write.kind == "Update"
                                          else EMPTY_INDEX_KEY.format(kind, index.name, name))
    return None


def _check_key_not_updated(write: _Write) -> None:
    table = write.table
    for name in write.update.top_level_names:
        if name == table.hash_key or name == table.range_key:
            raise ValidationException(
                INVALID_PARAMETERS + "Cannot update attribute "
                f"{name}. This attribute is part of the key"
            )


def _updated(write: _Write, old: dict | None) -> dict | None:
    new_item = created_by(write.update, old, write.key)
    if new_item is None:  # nothing to create: recorded as no write at all
        write.size = 0
        return None
    write.size = item_size(new_item)
    if write.size > MAX_ITEM_SIZE:
        raise ValidationException("Item size to update has exceeded the maximum allowed size")
    return new_item


def _condition_failed(write: _Write, old: dict | None) -> dict:
    reason = {"Code": "ConditionalCheckFailed", "Message": CONDITION_FAILED}
    if old is not None and write.spec.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
        reason["Item"] = old
    return reason


# ---------------------------------------------------------------- TransactWriteItems


def transact_write_items(ctx, request: dict):
    """TransactWriteItems: validate every action, then check and apply them
    all in one storage write transaction (see the module docstring)."""
    writes = [plan_write(action) for action in request["TransactItems"]]
    token = request.get("ClientRequestToken")
    try:
        with ctx.engine.write() as txn:
            resolve_writes(ctx, txn, writes)
            if token:
                now = ctx.now()
                digest = request_digest(request)
                if check_token(txn, ctx.region, token, digest, now):
                    replayed = _replay_units(txn, writes)
                    _meter(ctx, READ, replayed)
                    return _response(request, replayed)
                units, index_units = _execute(txn, writes, now)
                remember_token(txn, ctx.region, token, digest, now)
                prune_tokens(txn, now)
            else:
                units, index_units = _execute(txn, writes, ctx.now())
    except _Cancelled as exc:  # what its evaluation consumed, metered (and so charged to limited tables)
        _meter(ctx, WRITE, exc.units)
        raise
    _meter(ctx, WRITE, units, index_units)
    return _response(request, units, index_units)


class _Cancelled(TransactionCanceledException):
    """A cancellation after every action was evaluated against its item,
    carrying the write units that consumed (``_cancelled_units``); rendered
    as any TransactionCanceledException."""

    def __init__(self, reasons: list[dict], units: dict[str, float]) -> None:
        super().__init__(reasons)
        self.units = units


def _cancelled_units(writes: list[_Write], olds: list) -> dict[str, float]:
    """Write units per table of a transaction cancelled once its actions were
    evaluated.  The Developer Guide: DynamoDB performs two underlying writes
    of every item (prepare and commit) and that capacity is consumed even
    when the transaction does not succeed; nothing is written, so each item
    is charged as a failed conditional write is, its existing size or one
    unit (``failed_write_units``), twice.  No index is written."""
    units: dict[str, float] = {}
    for write, old_raw in zip(writes, olds):
        name = write.table.name
        units[name] = units.get(name, 0.0) + 2 * failed_write_units(
            stored_size(old_raw) if old_raw is not None else None)
    return units


def _meter(ctx, kind: str, units: dict[str, float], index_units: dict | None = None) -> None:
    for name, table_units in units.items():
        meter(ctx, name, kind, table_units, (index_units or {}).get(name))


def _execute(txn, writes: list[_Write], now: float) -> tuple[dict[str, float], dict[str, dict]]:
    """Evaluate every action, then either cancel (raising, so the storage
    transaction aborts) or apply them all; returns write units per table."""
    olds = [txn.get("items", write.skey) for write in writes]
    reasons, new_items, failed = [], [], False
    for write, old_raw in zip(writes, olds):
        # Only conditions and updates look at the stored item: a plain Put or
        # Delete never parses it.
        needs_old = old_raw is not None and (write.condition is not None or write.update is not None)
        reason, new_item = evaluate(write, stored_item(old_raw) if needs_old else None)
        if reason is None and new_item is not None and write.table.indexes:
            reason = _index_key_reason(write, new_item)
            if reason is not None:
                new_item = None
        failed = failed or reason is not None
        reasons.append(reason or _NONE_REASON)
        new_items.append(new_item)
    if failed:
        raise _Cancelled(reasons, _cancelled_units(writes, olds))
    units: dict[str, float] = {}
    index_units: dict[str, dict] = {}
    log = WriteLog(txn)
    for write, old_raw, new_item in zip(writes, olds, new_items):
        old_size = stored_size(old_raw) if old_raw is not None else 0
        name = write.table.name
        if write.kind != "ConditionCheck":
            written = {} if write.table.indexes else None
            log.write_item(write.table, write.skey, write.key, old_raw, new_item, write.size, now=now,
                           index_units=written)
            add_index_units(index_units.setdefault(name, {}), written, factor=2)  # transactional: doubled
        new_size = write.size if new_item is not None else 0
        units[name] = units.get(name, 0.0) + write_units(max(old_size, new_size), transactional=True)
    log.finish()
    return units, index_units





def _replay_units(txn, writes: list[_Write]) -> dict[str, float]:
    """A replayed request only reads its items: DynamoDB reports read units."""
    units: dict[str, float] = {}
    for write in writes:
        raw = txn.get("items", write.skey)
        size = stored_size(raw) if raw is not None else 0
        name = write.table.name
        units[name] = units.get(name, 0.0) + read_units(size, True, transactional=True)
    return units


def _response(request: dict, units: dict[str, float], index_units: dict | None = None) -> dict:
    capacity = capacity_list(request, units, index_units)
    return {} if capacity is None else {"ConsumedCapacity": capacity}


def capacity_list(request: dict, units: dict[str, float], index_units: dict | None = None) -> list | None:
    """ConsumedCapacity of a multi-table operation: one entry per table, in
    the order the request first names them."""
    mode = request.get("ReturnConsumedCapacity")
    if mode is None or mode == "NONE":
        return None
    index_units = index_units or {}
    return [consumed_capacity(request, name, total, index_units=index_units.get(name))
            for name, total in units.items()]


# ---------------------------------------------------------------- idempotency tokens


def request_digest(request: dict) -> bytes:
    """What makes two requests "the same" for a ClientRequestToken: their
    TransactItems, whatever the order of JSON members.  ReturnConsumedCapacity
    and ReturnItemCollectionMetrics only shape the response, so a retry may
    change them."""
    canonical = orjson.dumps(request["TransactItems"], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


def _token_key(region: str, token: str) -> bytes:
    return _TOKEN_RECORD + region.encode() + b"\0" + token.encode()


def check_token(txn, region: str, token: str, digest: bytes, now: float) -> bool:
    """True if this token already applied this request within ten minutes;
    raises IdempotentParameterMismatchException if it applied another one."""
    raw = txn.get("meta", _token_key(region, token))
    if raw is None:
        return False
    stamp = _STAMP.unpack_from(raw)[0]
    if stamp < int((now - TOKEN_TTL_S) * 1000):
        return False  # expired: the request is a new one
    if bytes(raw[_STAMP.size :]) != digest:
        raise IdempotentParameterMismatchException(TOKEN_MISMATCH)
    return True


def remember_token(txn, region: str, token: str, digest: bytes, now: float) -> None:
    """Record the token (in the caller's transaction, with the writes)."""
    key = _token_key(region, token)
    old = txn.get("meta", key)
    if old is not None:  # an expired record being reused: drop its index entry
        txn.delete("meta", _TOKEN_INDEX + bytes(old[: _STAMP.size]) + key)
    stamp = _STAMP.pack(int(now * 1000))
    txn.put("meta", key, stamp + digest)
    txn.put("meta", _TOKEN_INDEX + stamp + key, b"")


def prune_tokens(txn, now: float, limit: int = _PRUNE_BATCH) -> int:
    """Delete up to ``limit`` token records older than ten minutes, oldest first."""
    cutoff = _STAMP.pack(max(0, int((now - TOKEN_TTL_S) * 1000)))
    doomed = []
    for index_key, _ in txn.scan("meta", _TOKEN_INDEX, _TOKEN_INDEX + cutoff):
        doomed.append(index_key)
        if len(doomed) >= limit:
            break
    start = len(_TOKEN_INDEX) + _STAMP.size
    for index_key in doomed:
        txn.delete("meta", index_key)
        txn.delete("meta", index_key[start:])
    return len(doomed)


# ---------------------------------------------------------------- TransactGetItems


def plan_get(action: dict):
    """(Get spec, projection or None), checked without storage."""
    spec = action["Get"]
    check_attribute_names(spec.get("Key") or ())
    return spec, read_projection(without_values(spec), legacy=())


def without_values(spec: dict) -> dict:
    """A read structure (KeysAndAttributes, Get) without the
    ExpressionAttributeValues it does not have as a member: DynamoDB ignores
    a member a structure does not have, as it does here, rather than calling
    the values unused."""
    if "ExpressionAttributeValues" not in spec:
        return spec
    return {name: value for name, value in spec.items() if name != "ExpressionAttributeValues"}


def transact_get_items(ctx, request: dict):
    """TransactGetItems: every item from one read snapshot, in request order,
    so a read never sees part of a concurrent write transaction."""
    plans = [plan_get(action) for action in request["TransactItems"]]
    responses = []
    units: dict[str, float] = {}
    seen = set()
    payload = 0
    with ctx.engine.read() as txn:
        keys = []
        for index, (spec, projection) in enumerate(plans):
            table = ctx.catalog.require(txn, ctx.region, spec["TableName"])
            if table.description.get("MultiRegionConsistency") == "STRONG":
                raise _strong_refused("TransactGetItems", table.name)
            if projection is not None and projection.nested_names:  # no path may reach into a key attribute
                check_key_paths(table, projection)
            try:
                keys.append((table, checked_key(table, spec["Key"])))
            except KeySchemaMismatch as exc:
                raise _cancelled_by_key(exc, index, len(plans)) from None
        for (spec, projection), (table, key) in zip(plans, keys):
            skey = storage_key(table, key)
            if skey in seen:
                raise ValidationException(SAME_ITEM)
            seen.add(skey)
            raw = txn.get("items", skey)
            response, returned = _item_response(raw, projection)
            responses.append(response)
            payload += returned
            size = stored_size(raw) if raw is not None else 0
            units[table.name] = units.get(table.name, 0.0) + read_units(size, True, transactional=True)
    if payload > MAX_PAYLOAD_BYTES:
        raise ValidationException(f"Payload in response is too large.{payload}")
    _meter(ctx, READ, units)
    out = {"Responses": responses}
    capacity = capacity_list(request, units)
    if capacity is not None:
        out["ConsumedCapacity"] = capacity
    return out


def _item_response(raw: bytes | None, projection) -> tuple[dict, int]:
    """(the ItemResponse, the size of the item it returns).

    A missing item is an empty response; an item without any projected
    attribute is an empty Item, as DynamoDB answers.  The stored JSON is
    spliced in unparsed when nothing is projected.
    """
    if raw is None:
        return {}, 0
    if projection is None:
        return {"Item": orjson.Fragment(bytes(stored_json(raw)))}, stored_size(raw)
    projected = projection.apply(stored_item(raw))
    return {"Item": projected}, item_size(projected)


OPERATIONS = {
    "TransactWriteItems": transact_write_items,
    "TransactGetItems": transact_get_items,
}
