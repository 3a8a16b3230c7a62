"""BatchGetItem and BatchWriteItem.

UnprocessedKeys and UnprocessedItems hold what DynamoDB would not process:
the keys past a BatchGetItem response's 16 MB, and the items a table's
throughput cannot serve (``shoal.capacity``).  A table whose throughput is
spent when the batch requires it has its whole part returned, as sent; one
admitted then is served item by item, in the order sent, until its
throughput is spent, and the rest of its part is returned (DynamoDB: "If
any requested operations fail because the table's provisioned throughput is
exceeded ... the failed operations are returned in the UnprocessedItems").
The batch is refused (ProvisionedThroughputExceededException, or an
on-demand table's ThrottlingException) only when none of its items could
be processed, which is when every table it names is throttled at once
(or, off the loop, refused its first item: a batch naming an MRSC table is
served there, each of its tables admitted item by item only, and what its
other tables consumed charged there too, ``_charge_off_loop``).

A BatchGetItem part with ConsistentRead on a multi-Region strong
consistency table reads each key strongly, as GetItem does (a consensus
round, ``_read_strong``), not this region's own table, which may not have
applied a write another region acknowledged.
"""

from __future__ import annotations

from shoal.api.common import (
    READ,
    WRITE,
    add_index_units,
    checked_key,
    consumed_capacity,
    read_projection,
    item_read_units,
    item_write_units,
    meter,
    storage_key,
)
from shoal.api.items import MAX_ITEM_SIZE, checked_key_in_item
from shoal.api.indexes import item_collection_metrics
from shoal.api.query import check_key_paths
from shoal.api.transactions import without_values
from shoal.api.writepath import WriteLog, stored_item, stored_json, stored_size
from shoal.errors import (
    KeySchemaMismatch,
    ProvisionedThroughputExceededException,
    ValidationException,
    ValueWordingException,
    newer_wording,
)
from shoal.model.size import item_size
from shoal.model.values import KEY_MISMATCH, check_attribute_names, validate_sized_item

import orjson

MAX_GET_KEYS = 100
MAX_WRITES = 25
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def _capacity_list(request: dict, units_by_table: dict[str, float], index_units: dict | None = None) -> list | None:
    """One ConsumedCapacity entry per table; index units (writes) are added to
    the total and, for INDEXES, reported per index."""
    mode = request.get("ReturnConsumedCapacity")
    if mode is None or mode == "NONE":
        return None
    index_units = index_units or {}
    return [consumed_capacity(request, name, units, index_units=index_units.get(name))
            for name, units in units_by_table.items()]


# ---------------------------------------------------------------- BatchGetItem


def batch_get_item(ctx, request: dict):
    try:
        return _batch_get_item(ctx, request)
    except ValueWordingException as exc:  # DynamoDB's newer validation words some value faults anew
        raise newer_wording(exc) from None


def _batch_get_item(ctx, request: dict):
    request_items = request["RequestItems"]
    total = sum(len(spec.get("Keys") or ()) for spec in request_items.values())
    if total > MAX_GET_KEYS:
        raise ValidationException("Too many items requested for the BatchGetItem call")
    plans = {}
    for name, spec in request_items.items():
        for key in spec.get("Keys") or ():
            check_attribute_names(key)
        plans[name] = (spec, read_projection(without_values(spec)))
    _check_one_projection_style(request_items)

    responses: dict[str, list] = {}
    unprocessed: dict[str, dict] = {}
    units: dict[str, float] = {}
    budget = MAX_RESPONSE_BYTES
    strong = []  # the parts read strongly from an MRSC table: a round each key, after this transaction
    stopped: dict = {}  # table name as sent -> its throttle, when it refused the part's first key
    # No snapshot across the items (BatchGetItem promises none): over
    # PostgreSQL each table's keys are then one statement (``get_many``).
    capacity = ctx.catalog.capacity
    with ctx.engine.read(snapshot=False) as txn:
        get_many = getattr(txn, "get_many", None)
        tables, throttled = _required(ctx, txn, plans)
        for name, (spec, projection) in plans.items():
            table = tables[name]
            if projection is not None and projection.nested_names:  # no path may reach into a key attribute
                check_key_paths(table, projection)
            consistent = bool(spec.get("ConsistentRead"))
            keys = [checked_key(table, key) for key in spec["Keys"]]
            storage_keys = [storage_key(table, key) for key in keys]
            if len(set(storage_keys)) != len(storage_keys):
                raise ValidationException("Provided list of item keys contains duplicates")
            if name in throttled:  # its throughput is spent: all its keys come back unprocessed
                unprocessed[name] = spec
                continue
            found = responses.setdefault(name, [])
            units[name] = 0.0
            if consistent and table.description.get("MultiRegionConsistency") == "STRONG":
                strong.append((name, spec, projection, table, keys))
                continue
            raws = (get_many("items", storage_keys) if get_many is not None
                    else [txn.get("items", skey) for skey in storage_keys])
            limited = capacity is not None and table.limited
            for number, (key, raw) in enumerate(zip(keys, raws)):
                if limited and _read_refused(capacity, table, name, number, units, stopped):
                    # its throughput is spent: the rest of its keys come back unprocessed
                    left = unprocessed.setdefault(name, {k: v for k, v in spec.items() if k != "Keys"})
                    left.setdefault("Keys", []).extend(keys[number:])
                    break
                if raw is None:  # read like a GetItem of no item: one 4 KB unit
                    units[name] += item_read_units(0, consistent)
                    continue
                if stored_size(raw) > budget:
                    left = unprocessed.setdefault(name, {k: v for k, v in spec.items() if k != "Keys"})
                    left.setdefault("Keys", []).append(key)
                    continue
                budget -= stored_size(raw)
                units[name] += item_read_units(stored_size(raw), consistent)
                if projection is None:
                    found.append(orjson.Fragment(bytes(stored_json(raw))))
                else:
                    projected = projection.apply(stored_item(raw))
                    if projected:
                        found.append(projected)
    failures = []
    for name, spec, projection, table, keys in strong:
        budget = _read_strong(ctx, capacity, name, spec, projection, table, keys, responses[name], units,
                              unprocessed, stopped, failures, budget)
    if failures and sum(len(part.get("Keys") or ()) for part in unprocessed.values()) == total:
        raise failures[0]  # no key could be read: the rounds' failure, as a GetItem's
    _refuse_if_none_read(request, throttled, stopped)
    _charge_reads_off_loop(ctx, tables, units)
    for name, table_units in units.items():
        meter(ctx, tables[name].name, READ, table_units)
    out = {"Responses": responses, "UnprocessedKeys": unprocessed}
    capacity = _capacity_list(request, units)
    if capacity is not None:
        out["ConsumedCapacity"] = capacity
    return out


def _read_refused(capacity, table, name: str, number: int, units: dict, stopped: dict) -> bool:
    """Whether the table's throughput refuses the batch's key ``number`` of
    ``name`` (``Capacity.refuses_another``, what the batch read of it so far
    counted); a refusal of the part's first key is kept in ``stopped``."""
    refusal = capacity.refuses_another(table, False, units[name])
    if refusal is None:
        return False
    if number == 0:
        stopped[name] = refusal
    return True


def _read_strong(ctx, capacity, name: str, spec: dict, projection, table, keys: list, found: list, units: dict,
                 unprocessed: dict, stopped: dict, failures: list, budget: int) -> int:
    """A part with ConsistentRead on a multi-Region strong consistency
    table: each key a strongly consistent read, as GetItem's (a consensus
    round, ``shoal.replication.strong``), which returns the latest
    acknowledged write whatever this region's own table has applied yet;
    charged as GetItem's (the item's strongly consistent read units, one for
    no item), admitted key by key as any table's.  A key whose round found
    no majority, or met another region's write, comes back unprocessed (an
    internal processing failure, in the API Reference's words), as does each
    key past the table's throughput or the response's 16 MB.  What is left
    of the response's budget is returned."""
    from shoal.errors import InternalServerError
    from shoal.replication import strong as mrsc

    limited = capacity is not None and table.limited
    left = None
    for number, key in enumerate(keys):
        if limited and _read_refused(capacity, table, name, number, units, stopped):
            left = left or unprocessed.setdefault(name, {k: v for k, v in spec.items() if k != "Keys"})
            left.setdefault("Keys", []).extend(keys[number:])
            break
        try:
            item = mrsc.batch_read(ctx, table, key)
        except (mrsc.ReplicatedWriteConflictException, InternalServerError) as exc:
            failures.append(exc)
            left = left or unprocessed.setdefault(name, {k: v for k, v in spec.items() if k != "Keys"})
            left.setdefault("Keys", []).append(key)
            continue
        size = item_size(item) if item is not None else 0
        if size > budget:
            left = left or unprocessed.setdefault(name, {k: v for k, v in spec.items() if k != "Keys"})
            left.setdefault("Keys", []).append(key)
            continue
        budget -= size
        units[name] += item_read_units(size, True)
        if item is None:
            continue
        item = item if projection is None else projection.apply(item)
        if item:
            found.append(item)
    return budget


def _refuse_if_none_read(request: dict, throttled: dict, stopped: dict) -> None:
    """Raise the throttle when the batch's throughput let it read none of its
    keys.  On the loop ``_required`` refused such a batch already; off it
    (a batch served there names an MRSC table, ``shoal.replication.protocol``)
    tables are admitted key by key only, as BatchWriteItem's items are
    (``_refuse_if_none_processed``, whose rule it is)."""
    _refuse_if_none_processed(request, throttled, stopped)


def _charge_reads_off_loop(ctx, tables: dict, units: dict) -> None:
    """Charge what a batch served off the loop read of its limited tables,
    to the allowances it was admitted by key by key (``_read_refused``,
    ``shoal.capacity.off_loop``): an MRSC table's rounds included.  On the
    loop (``Capacity.off_loop`` does nothing there) the dispatcher's
    ``settle`` charges what the batch meters."""
    capacity = ctx.catalog.capacity
    if capacity is None:
        return
    for sent, table in tables.items():
        if table.limited and units.get(sent):
            with capacity.off_loop(ctx, table, False, admit=False) as charge:
                charge.add(READ, units[sent])


def _check_one_projection_style(request_items: dict) -> None:
    """One request, one style: DynamoDB refuses a BatchGetItem whose tables
    mix ProjectionExpression and AttributesToGet, as it refuses the mix
    within one table."""
    expressions = any(spec.get("ProjectionExpression") is not None for spec in request_items.values())
    legacy = any(spec.get("AttributesToGet") is not None for spec in request_items.values())
    if expressions and legacy:
        raise ValidationException(
            "Can not use both expression and non-expression parameters in the same request: "
            "Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}"
        )


# ---------------------------------------------------------------- BatchWriteItem


def batch_write_item(ctx, request: dict):
    request_items = request["RequestItems"]
    total = sum(len(writes) for writes in request_items.values())
    if total > MAX_WRITES:
        raise ValidationException("Too many items requested for the BatchWriteItem call")
    prepared = {}
    for name, writes in request_items.items():
        ops = []
        for write in writes:
            put = write.get("PutRequest")
            delete = write.get("DeleteRequest")
            if (put is None) == (delete is None):
                # DynamoDB's own wording for a write request with neither or both members.
                raise ValidationException(
                    "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"
                )
            if put is not None:
                item, size = validate_sized_item(put["Item"], in_place=True)
                if size > MAX_ITEM_SIZE:
                    raise ValidationException("Item size has exceeded the maximum allowed size")
                ops.append(("put", item, size))
            else:
                check_attribute_names(delete["Key"])
                ops.append(("delete", delete["Key"], 0))
        prepared[name] = ops

    units: dict[str, float] = {}
    with ctx.engine.write() as txn:
        tables, throttled = _required(ctx, txn, prepared)
        planned, strong = [], []
        for name, ops in prepared.items():
            table = tables[name]
            seen = set()
            for number, (kind, payload, size) in enumerate(ops):
                key = _put_key(table, payload) if kind == "put" else checked_key(table, payload)
                skey = storage_key(table, key)
                if skey in seen:
                    raise ValidationException("Provided list of item keys contains duplicates")
                seen.add(skey)
                if name in throttled:
                    continue
                if table.description.get("MultiRegionConsistency") == "STRONG":  # a round each, after this
                    strong.append((name, number, table, key, payload if kind == "put" else None, size))
                else:
                    planned.append((name, number, table, skey, key, payload if kind == "put" else None, size))
        now = ctx.now()
        want_metrics = request.get("ReturnItemCollectionMetrics") == "SIZE"
        metrics: dict[str, list] = {}
        index_capacity: dict[str, dict] = {}
        # a throttled table's requests come back as they were sent; an admitted table's, from the
        # first item its throughput cannot serve (``_admitted``)
        unprocessed = {name: request["RequestItems"][name] for name in throttled}
        stopped: dict = {}  # table name as sent -> its throttle if it refused the part's first write, else None
        log = WriteLog(txn)
        for name, number, table, skey, key, item, size in planned:
            if not _admitted(ctx, table, name, number, request, units, index_capacity, unprocessed, stopped):
                continue
            old_raw = txn.get("items", skey)
            index_units = {} if table.indexes else None
            log.write_item(table, skey, key, old_raw, item, size, now=now, index_units=index_units)
            old_size = stored_size(old_raw) if old_raw is not None else 0
            units[table.name] = units.get(table.name, 0.0) + item_write_units(old_size, size)
            add_index_units(index_capacity.setdefault(table.name, {}), index_units)
            if want_metrics and table.has_local_indexes:
                metrics.setdefault(table.name, []).append(item_collection_metrics(txn, table, key))
        log.finish()
    if strong:  # served off the loop: what its other tables consumed is charged there, now it is written
        _charge_off_loop(ctx, tables, units, index_capacity)
        _write_strong(ctx, request, strong, units, unprocessed, index_capacity, stopped)
        _refuse_if_none_processed(request, throttled, stopped)
    for name, table_units in units.items():
        meter(ctx, name, WRITE, table_units, index_capacity.get(name))
    out = {"UnprocessedItems": unprocessed}
    capacity = _capacity_list(request, units, index_capacity)
    if capacity is not None:
        out["ConsumedCapacity"] = capacity
    if metrics:
        out["ItemCollectionMetrics"] = metrics
    return out


def _admitted(ctx, table, name: str, number: int, request: dict, units: dict, index_units: dict,
              unprocessed: dict, stopped: dict) -> bool:
    """Whether the table's throughput serves the batch's write ``number`` to
    ``name`` (``Capacity.refuses_another``, what the batch consumed so far
    counted); if not, it comes back unprocessed as sent, and so does every
    later write to that table (``stopped``: the first refusal ends its part,
    and keeps its throttle when it refused the part's first write)."""
    if not table.limited:
        return True
    if name not in stopped:
        capacity = ctx.catalog.capacity
        refusal = None if capacity is None else capacity.refuses_another(
            table, True, units.get(table.name, 0.0), index_units.get(table.name))
        if refusal is None:
            return True
        stopped[name] = refusal if number == 0 else None
    unprocessed.setdefault(name, []).append(request["RequestItems"][name][number])
    return False


def _refuse_if_none_processed(request: dict, throttled: dict, stopped: dict) -> None:
    """Raise the throttle when the batch's throughput let it process none of
    its items: every table it names throttled (``_required``) or refused its
    first write (``stopped``).  On the loop ``_required`` has refused such a
    batch already; a batch naming an MRSC table runs off the loop, where a
    table is admitted item by item only (``Capacity.refuses_another``), and
    would otherwise answer every item unprocessed where DynamoDB "returns a
    ProvisionedThroughputExceededException" (an on-demand table's
    ThrottlingException).  A part that lost a write to another region's
    (ReplicatedWriteConflictException) was not refused for throughput: the
    batch then answers as it is."""
    refusals = []
    for name in request["RequestItems"]:
        refusal = throttled.get(name) or stopped.get(name)
        if refusal is None:
            return
        refusals.append(refusal)
    if refusals:
        raise refusals[0]


def _write_strong(ctx, request: dict, strong: list, units: dict, unprocessed: dict, index_units: dict,
                  stopped: set) -> None:
    """The writes to multi-Region strong consistency tables, one consensus
    round each (``shoal.replication.strong``), after the batch's local
    transaction, each admitted by the table's throughput as the others are
    (``_admitted``): a write another region's write beat comes back
    unprocessed, to be sent again, as DynamoDB's retryable answers do."""
    from shoal.replication import strong as mrsc

    for name, number, table, key, item, size in strong:
        # each round is charged as it ends (``mrsc.batch_write``): the batch owes the table nothing
        if not _admitted(ctx, table, name, number, request, {}, {}, unprocessed, stopped):
            continue
        try:
            old, written = mrsc.batch_write(ctx, table, key, item)
        except mrsc.ReplicatedWriteConflictException:
            unprocessed.setdefault(name, []).append(request["RequestItems"][name][number])
            continue
        old_size = item_size(old) if old is not None else 0
        units[table.name] = units.get(table.name, 0.0) + item_write_units(old_size, size)
        add_index_units(index_units.setdefault(table.name, {}), written)


def _charge_off_loop(ctx, tables: dict, units: dict, index_units: dict) -> None:
    """Charge what a batch served off the loop (it names an MRSC table,
    ``shoal.replication.protocol``) consumed on its other limited tables
    (``units``, ``index_units``: their writes, committed), to the allowances
    their writes were admitted by item by item (``_admitted``,
    ``shoal.capacity.off_loop``).  On the loop the dispatcher's ``settle``
    charges what the batch meters; off it nothing would (``Capacity.off_loop``
    does nothing on the loop's thread: a batch writing an MRSC table this
    worker did not yet know as one is served and charged on the loop)."""
    capacity = ctx.catalog.capacity
    if capacity is None:
        return
    charged = set()
    for table in tables.values():
        name = table.name
        if not table.limited or name in charged or name not in units:
            continue
        charged.add(name)
        written = index_units.get(name) or {}
        with capacity.off_loop(ctx, table, True, admit=False) as charge:
            charge.add(WRITE, units[name] + sum((written.get("LocalSecondaryIndexes") or {}).values()))
            for index, gsi_units in (written.get("GlobalSecondaryIndexes") or {}).items():
                charge.add(WRITE, gsi_units, index)


def _required(ctx, txn, names) -> tuple[dict, dict]:
    """The batch's tables by name as sent, and the names whose throughput is
    spent (``shoal.capacity``) with their throttle: their part is answered
    unprocessed, and the batch is refused only when every table it names is
    throttled, as DynamoDB does."""
    tables, throttled, first = {}, {}, None
    for name in names:
        try:
            tables[name] = ctx.catalog.require(txn, ctx.region, name)
        except ProvisionedThroughputExceededException as exc:
            tables[name] = exc.table
            throttled[name] = exc
            first = first or exc
    if first is not None and len(throttled) == len(tables):
        raise first
    return tables, throttled


def _put_key(table, item: dict) -> dict:
    """The key of a PutRequest's item.  Unlike PutItem, BatchWriteItem words
    a missing or mistyped key attribute as a lookup key's mismatch."""
    try:
        return checked_key_in_item(table, item)
    except KeySchemaMismatch:
        raise KeySchemaMismatch(KEY_MISMATCH) from None


OPERATIONS = {"BatchGetItem": batch_get_item, "BatchWriteItem": batch_write_item}
