"""Single-item operations: PutItem, GetItem, UpdateItem, DeleteItem."""

from __future__ import annotations

import orjson

from shoal.api.common import (
    READ,
    WRITE,
    check_return_values,
    checked_key,
    consumed_capacity,
    expression_context,
    in_envelope,
    item_read_units,
    item_write_units,
    meter_failed_write,
    meter_item_write,
    read_projection,
    storage_key,
)
from shoal.api.indexes import check_updated_index_keys, item_collection_metrics
from shoal.api.query import check_key_paths
from shoal.api.writepath import stored_item, stored_json, stored_size, write_item
from shoal.errors import (
    INVALID_PARAMETERS,
    ConditionalCheckFailedException,
    ValidationException,
    ValueWordingException,
    newer_wording,
)
from shoal.expressions import parse_condition, parse_update, project
from shoal.expressions.legacy import (
    condition_from_expected,
    update_from_attribute_updates,
)
from shoal.model.size import item_size
from shoal.model.values import check_attribute_names, validate_key, validate_sized_item, validate_value

MAX_ITEM_SIZE = 400 * 1024


# ---------------------------------------------------------------- shared pieces


class StrongTable(Exception):
    """Raised inside an item request's storage transaction (which it ends,
    having written nothing) when the table is MRSC: the request then runs
    as a consensus round (``shoal.replication.strong``)."""

    def __init__(self, table, key: dict) -> None:
        self.table = table
        self.key = key


def _strong():
    """The MRSC side (shoal.replication.strong), imported when a table needs
    it: a table whose description says MultiRegionConsistency STRONG has its
    item requests run as consensus rounds there; every other table keeps the
    path below, with one dictionary look-up more."""
    from shoal.replication import strong

    return strong


def parse_write_condition(request: dict, ctx_expr):
    """The condition of a write: ConditionExpression or legacy Expected."""
    text = request.get("ConditionExpression")
    if text is not None:
        return parse_condition(text, ctx_expr, kind="ConditionExpression")
    expected = request.get("Expected")
    if expected:  # an empty Expected is no condition at all
        return condition_from_expected(expected, request.get("ConditionalOperator"))
    if request.get("ConditionalOperator") is not None:
        raise ValidationException("ConditionalOperator cannot be used without Filter or Expected")
    return None


def check_condition(condition, old: dict | None, request: dict) -> None:
    if condition is not None and not condition.evaluate(old):
        item = old if request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None
        raise ConditionalCheckFailedException(item=item)


def _condition_failed(ctx, table, old_raw) -> None:
    """A write whose condition failed still consumes write capacity in
    DynamoDB (the existing item's size, or one unit): metered and charged
    (``shoal.api.common.meter_failed_write``) before the error is raised."""
    meter_failed_write(ctx, table, stored_size(old_raw) if old_raw is not None else None)


def _response(attributes=None, capacity=None, metrics=None) -> dict:
    out = {}
    if attributes:
        out["Attributes"] = attributes
    if capacity is not None:
        out["ConsumedCapacity"] = capacity
    if metrics is not None:
        out["ItemCollectionMetrics"] = metrics
    return out


def _collection_metrics(txn, table, request: dict, key: dict):
    """ItemCollectionMetrics when asked for (tables with LSIs only)."""
    if request.get("ReturnItemCollectionMetrics") != "SIZE":
        return None
    return item_collection_metrics(txn, table, key)


def _raw_fragment(raw: bytes) -> orjson.Fragment:
    return orjson.Fragment(bytes(stored_json(raw)))


# ---------------------------------------------------------------- PutItem


def put_item(ctx, request: dict):
    try:  # the request's own checks, before any table: DynamoDB's newer wording
        item, size = validate_sized_item(request["Item"], in_place=True)
        exprs = expression_context(request, ("ConditionExpression",), ("Expected",), current=True)
        condition = parse_write_condition(request, exprs)
        if exprs is not None:
            exprs.check_unused()
        return_values = check_return_values(request, ("NONE", "ALL_OLD"))
        if size > MAX_ITEM_SIZE:
            raise ValidationException("Item size has exceeded the maximum allowed size")
    except ValidationException as exc:
        raise in_envelope(newer_wording(exc)) from None

    try:
        with ctx.engine.write() as txn:
            table = ctx.catalog.require(txn, ctx.region, request["TableName"])
            if condition is not None and condition.nested_names:  # no path may reach into a key attribute
                check_key_paths(table, condition)
            key = checked_key_in_item(table, item)
            if table.description.get("MultiRegionConsistency") == "STRONG":
                raise StrongTable(table, key)
            skey = storage_key(table, key)
            old_raw = txn.get("items", skey)
            if condition is not None:
                try:
                    check_condition(condition, stored_item(old_raw) if old_raw is not None else None, request)
                except ConditionalCheckFailedException:
                    _condition_failed(ctx, table, old_raw)
                    raise
            index_units = {} if table.indexes else None
            write_item(txn, table, skey, key, old_raw, item, size, now=ctx.now(), index_units=index_units)
            metrics = _collection_metrics(txn, table, request, key)
    except StrongTable as exc:
        return _strong().put_item(ctx, exc, request, item, size, condition, return_values)

    old_size = stored_size(old_raw) if old_raw is not None else 0
    units = item_write_units(old_size, size)
    if ctx.meter is not None:  # for the metrics (shoal.api.common.meter)
        meter_item_write(ctx, table.name, units, index_units)
    if table.limited and (units != 1.0 or index_units) and ctx.catalog.capacity is not None:
        ctx.catalog.capacity.beyond(table, WRITE, units - 1.0, index_units)  # its first unit: charged at admission
    capacity = consumed_capacity(request, table.name, units, index_units=index_units)
    attributes = _raw_fragment(old_raw) if return_values == "ALL_OLD" and old_raw is not None else None
    return _response(attributes, capacity, metrics)


def check_key_values(key: dict) -> None:
    """Check a Key's values as values (numbers, sets, emptiness of the value
    itself), before the table's schema is known."""
    check_attribute_names(key)
    for name, value in key.items():
        validate_value(value, name)


def checked_key_in_item(table, item: dict) -> dict:
    return validate_key(item, table.key_schema, table.attribute_types, what="item")


# ---------------------------------------------------------------- GetItem


def get_item(ctx, request: dict):
    check_attribute_names(request["Key"])  # before the table, as DynamoDB does
    if "ExpressionAttributeValues" in request:
        # Not a member of GetItemInput: ignored, as DynamoDB ignores any member a
        # structure does not have (BatchGetItem's and TransactGetItems' too).
        request = {name: value for name, value in request.items() if name != "ExpressionAttributeValues"}
    projection = read_projection(request)
    consistent = bool(request.get("ConsistentRead"))

    # Two point reads (the table's entry, the item), each a committed state:
    # no snapshot across them is needed, which spares PostgreSQL two round trips.
    with ctx.engine.read(snapshot=False) as txn:
        table = ctx.catalog.require(txn, ctx.region, request["TableName"])
        if projection is not None and projection.nested_names:  # no path may reach into a key attribute
            check_key_paths(table, projection)
        try:
            key = checked_key(table, request["Key"])
        except ValueWordingException as exc:  # DynamoDB's newer validation words some value faults anew
            raise newer_wording(exc) from None
        if consistent and table.description.get("MultiRegionConsistency") == "STRONG":
            strong = StrongTable(table, key)
        else:
            strong = None
            raw = txn.get("items", storage_key(table, key))
    if strong is not None:
        return _strong().get_item(ctx, strong, request, projection)

    want_capacity = request.get("ReturnConsumedCapacity") not in (None, "NONE")
    sink = ctx.meter
    if sink is not None:  # for the metrics: the read's 4 KB blocks and consistency (shoal.api.common.meter)
        if (raw is None or len(raw) <= 4100) and sink.__class__ is list:  # one block: its cell's count
            sink[consistent] += 1
        else:
            sink.append((table.name, (2 if raw is None or len(raw) <= 4100 else
                                      -(-stored_size(raw) // 4096) * 2) + consistent))
    if table.limited and raw is not None and len(raw) > 4100 and ctx.catalog.capacity is not None:
        blocks = -(-stored_size(raw) // 4096)  # its first block: charged at admission (shoal.capacity)
        if blocks > 1:
            ctx.catalog.capacity.beyond(table, READ, (blocks - 1) * (1.0 if consistent else 0.5))
    if raw is None:
        if not want_capacity:
            return b"{}"
        return {"ConsumedCapacity": consumed_capacity(request, table.name, item_read_units(0, consistent))}
    if projection is None and not want_capacity:
        # The common case: splice the stored JSON into the response unchanged.
        return b"".join((b'{"Item":', stored_json(raw), b"}"))
    out = {}
    if projection is None:
        out["Item"] = _raw_fragment(raw)
    else:
        out["Item"] = projection.apply(stored_item(raw))
    if want_capacity:
        out["ConsumedCapacity"] = consumed_capacity(
            request, table.name, item_read_units(stored_size(raw), consistent)
        )
    return out


def item_key_ahead(ctx, txn, operation: str, request: dict) -> bytes | None:
    """The ``items`` key a GetItem, PutItem, UpdateItem or DeleteItem
    ``request`` will read (and a write write), looked up in ``txn`` without
    charging or refusing anything, so that the server can read the keys of
    many GetItems ahead in one round trip, or lock and read a group's writes'
    (``shoal.server.batched_reads``, ``shoal.server.committer``).  None when
    it is not known here: a request the operation refuses (it does so itself,
    in its own words), or any request of an MRSC table (its reads and writes
    are consensus rounds, which must not be answered from before them)."""
    try:
        table = table_ahead(ctx, txn, request["TableName"])
        if table is None:
            return None
        key = checked_key_in_item(table, request["Item"]) if operation == "PutItem" else \
            checked_key(table, request["Key"])
        return storage_key(table, key)
    except Exception:  # anything amiss is the operation's own to report
        return None


def table_ahead(ctx, txn, name):
    """The table ``name`` whose items a request's keys may be read ahead
    (``item_key_ahead``, ``shoal.api.keys_ahead``), looked up without
    charging or refusing anything; None for a missing or refused table and
    for an MRSC table."""
    table = ctx.catalog.get(txn, ctx.region, name)
    if table is None or table.refused_status is not None:
        return None
    if table.description.get("MultiRegionConsistency") == "STRONG":
        return None
    return table


# ---------------------------------------------------------------- UpdateItem


def update_item(ctx, request: dict):
    try:  # the request's own checks, before any table: DynamoDB's newer wording
        check_key_values(request["Key"])
        exprs = expression_context(
            request, ("UpdateExpression", "ConditionExpression"), ("AttributeUpdates", "Expected"), current=True
        )
        update = None
        if request.get("UpdateExpression") is not None:
            update = parse_update(request["UpdateExpression"], exprs)
        elif request.get("AttributeUpdates") is not None:
            update = update_from_attribute_updates(request["AttributeUpdates"])
        condition = parse_write_condition(request, exprs)
        if exprs is not None:
            exprs.check_unused()
        return_values = check_return_values(
            request, ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW")
        )
    except ValidationException as exc:
        raise in_envelope(newer_wording(exc)) from None

    try:
        with ctx.engine.write() as txn:
            table = ctx.catalog.require(txn, ctx.region, request["TableName"])
            key = checked_key(table, request["Key"])
            if update is not None:
                for name in update.top_level_names:
                    if name == table.hash_key or name == table.range_key:
                        raise ValidationException(
                            INVALID_PARAMETERS + "Cannot update attribute "
                            f"{name}. This attribute is part of the key"
                        )
            if (update is not None and update.nested_names) or (condition is not None and condition.nested_names):
                check_key_paths(table, condition, update)  # no path may reach into a key attribute
            if table.description.get("MultiRegionConsistency") == "STRONG":
                raise StrongTable(table, key)
            skey = storage_key(table, key)
            old_raw = txn.get("items", skey)
            old = stored_item(old_raw) if old_raw is not None else None
            if condition is not None:
                try:
                    check_condition(condition, old, request)
                except ConditionalCheckFailedException:
                    _condition_failed(ctx, table, old_raw)
                    raise
            new_item = created_by(update, old, key)
            size = item_size(new_item) if new_item is not None else 0
            if size > MAX_ITEM_SIZE:
                raise ValidationException("Item size to update has exceeded the maximum allowed size")
            index_units = {} if table.indexes else None
            if index_units is not None and update is not None:
                check_updated_index_keys(table, update.top_level_names, new_item)
            write_item(txn, table, skey, key, old_raw, new_item, size, now=ctx.now(), index_units=index_units)
            metrics = _collection_metrics(txn, table, request, key)
    except StrongTable as exc:
        return _strong().update_item(ctx, exc, request, update, condition, return_values)

    old_size = stored_size(old_raw) if old_raw is not None else 0
    units = item_write_units(old_size, size)
    if ctx.meter is not None:  # for the metrics (shoal.api.common.meter)
        meter_item_write(ctx, table.name, units, index_units)
    capacity = consumed_capacity(request, table.name, units, index_units=index_units)
    return _response(_update_return_values(return_values, update, old, new_item), capacity, metrics)


def created_by(update, old: dict | None, key: dict) -> dict | None:
    """The item an UpdateItem leaves: ``update`` applied to ``old``, or to the
    key alone when there is no item.  None when there is no item and the
    update's actions change nothing (REMOVE, DELETE from a set): DynamoDB then
    creates no item.  An update without actions (no UpdateExpression, empty
    AttributeUpdates) creates the item with its key alone."""
    if update is None:
        return old if old is not None else dict(key)
    if old is not None:
        return update.apply(old)[0]
    new_item, changed = update.apply(dict(key), missing=True)
    if not changed and update.paths:
        return None
    return new_item


def _update_return_values(mode: str, update, old: dict | None, new: dict | None):
    if mode == "NONE":
        return None
    if mode == "ALL_OLD":
        return old
    if mode == "ALL_NEW":
        return new
    if update is None or new is None:
        return None
    source = old if mode == "UPDATED_OLD" else new
    if source is None:
        return None
    return project(source, update.returned_paths)


# ---------------------------------------------------------------- DeleteItem


def delete_item(ctx, request: dict):
    try:  # the request's own checks, before any table: DynamoDB's newer wording
        check_key_values(request["Key"])
        exprs = expression_context(request, ("ConditionExpression",), ("Expected",), current=True)
        condition = parse_write_condition(request, exprs)
        if exprs is not None:
            exprs.check_unused()
        return_values = check_return_values(request, ("NONE", "ALL_OLD"))
    except ValidationException as exc:
        raise in_envelope(newer_wording(exc)) from None

    try:
        with ctx.engine.write() as txn:
            table = ctx.catalog.require(txn, ctx.region, request["TableName"])
            if condition is not None and condition.nested_names:  # no path may reach into a key attribute
                check_key_paths(table, condition)
            key = checked_key(table, request["Key"])
            if table.description.get("MultiRegionConsistency") == "STRONG":
                raise StrongTable(table, key)
            skey = storage_key(table, key)
            old_raw = txn.get("items", skey)
            if condition is not None:
                try:
                    check_condition(condition, stored_item(old_raw) if old_raw is not None else None, request)
                except ConditionalCheckFailedException:
                    _condition_failed(ctx, table, old_raw)
                    raise
            index_units = {} if table.indexes else None
            write_item(txn, table, skey, key, old_raw, None, now=ctx.now(), index_units=index_units)
            metrics = _collection_metrics(txn, table, request, key)
    except StrongTable as exc:
        return _strong().delete_item(ctx, exc, request, condition, return_values)

    old_size = stored_size(old_raw) if old_raw is not None else 0
    units = item_write_units(old_size, 0)
    if ctx.meter is not None:  # for the metrics (shoal.api.common.meter)
        meter_item_write(ctx, table.name, units, index_units)
    capacity = consumed_capacity(request, table.name, units, index_units=index_units)
    attributes = _raw_fragment(old_raw) if return_values == "ALL_OLD" and old_raw is not None else None
    return _response(attributes, capacity, metrics)


OPERATIONS = {
    "PutItem": put_item,
    "GetItem": get_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
}
