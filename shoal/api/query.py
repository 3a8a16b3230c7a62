"""Query and Scan: range reads over the storage key space.

A Query reads one item collection (one partition key) as one storage range;
a Scan walks the table's key space in hash order, and each parallel Scan
segment is a contiguous range of it.  Both stop at Limit items evaluated or
1 MB of item data read, as DynamoDB does, and return LastEvaluatedKey.
"""

from __future__ import annotations

import orjson

from shoal.api.common import (
    checked_key,
    consumed_capacity,
    expression_context,
    key_of,
    partition_prefix,
    segment_range,
    storage_key,
    successor,
)
from shoal.api.writepath import stored_item, stored_json, stored_size
from shoal.errors import ValidationException
from shoal.expressions import parse_condition, parse_key_condition, parse_projection
from shoal.expressions.legacy import (
    condition_from_filter,
    key_condition_from_key_conditions,
    projection_from_attributes_to_get,
)
from shoal.model.capacity import read_units
from shoal.model.keys import encode_key_prefix, encode_key_value

PAGE_BYTES = 1024 * 1024


class _Plan:
    """What a Query or Scan reads and how it shapes each item."""

    __slots__ = ("filter", "projection", "select", "limit", "consistent")

    def __init__(self, request: dict, exprs, filter_member: str, legacy_filter: str):
        text = request.get("FilterExpression")
        if text is not None:
            self.filter = parse_condition(text, exprs, kind="FilterExpression")
        elif request.get(legacy_filter) is not None:
            self.filter = condition_from_filter(
                request[legacy_filter], request.get("ConditionalOperator"), kind=legacy_filter
            )
        else:
            if request.get("ConditionalOperator") is not None:
                raise ValidationException("ConditionalOperator cannot be used without Filter or Expected")
            self.filter = None
        self.projection = None
        projection_member = None
        if request.get("ProjectionExpression") is not None:
            self.projection = parse_projection(request["ProjectionExpression"], exprs)
            projection_member = "ProjectionExpression"
        elif request.get("AttributesToGet") is not None:
            self.projection = projection_from_attributes_to_get(request["AttributesToGet"])
            projection_member = "AttributesToGet"
        self.select = _check_select(request, projection_member)
        self.limit = request.get("Limit")
        self.consistent = bool(request.get("ConsistentRead"))


def _check_select(request: dict, projection_member: str | None) -> str:
    select = request.get("Select")
    if select is None:
        return "SPECIFIC_ATTRIBUTES" if projection_member else "ALL_ATTRIBUTES"
    if select == "ALL_PROJECTED_ATTRIBUTES" and request.get("IndexName") is None:
        raise ValidationException(
            "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName"
        )
    if select == "SPECIFIC_ATTRIBUTES" and projection_member is None:
        raise ValidationException(
            "Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES"
        )
    if select == "ALL_ATTRIBUTES" and projection_member:
        raise ValidationException(
            f"Cannot specify the {projection_member} when choosing to get ALL_ATTRIBUTES"
        )
    if select == "COUNT" and projection_member:
        raise ValidationException(
            f"Cannot specify the {projection_member} when choosing to get only the Count"
        )
    return select


def _check_no_index(table, request: dict) -> None:
    index = request.get("IndexName")
    if index is not None:
        raise ValidationException(f"The table does not have the specified index: {index}")


def _check_filter_keys(table, plan: _Plan, request: dict) -> None:
    """A Query filter may not refer to key attributes (they belong in the key condition)."""
    if plan.filter is None:
        return
    names = plan.filter.top_level_names
    for key_name in (table.hash_key, table.range_key):
        if key_name is not None and key_name in names:
            if request.get("QueryFilter") is not None:
                raise ValidationException(
                    f"QueryFilter can only contain non-key attributes: Primary key attribute: {key_name}"
                )
            raise ValidationException(
                "Filter Expression can only contain non-primary key attributes: "
                f"Primary key attribute: {key_name}"
            )


def _start_key(table, request: dict) -> dict | None:
    esk = request.get("ExclusiveStartKey")
    if esk is None:
        return None
    expected = 1 if table.range_key is None else 2
    if len(esk) != expected:
        raise ValidationException("Exclusive Start Key must have same size as table's key schema")
    try:
        return checked_key(table, esk)
    except ValidationException as exc:
        raise ValidationException(f"The provided starting key is invalid: {exc.message}") from None


# ---------------------------------------------------------------- Query


def query(ctx, request: dict):
    exprs = expression_context(
        request,
        ("KeyConditionExpression", "FilterExpression", "ProjectionExpression"),
        ("KeyConditions", "QueryFilter", "AttributesToGet"),
    )
    if request.get("KeyConditionExpression") is not None:
        key_condition = parse_key_condition(request["KeyConditionExpression"], exprs)
    elif request.get("KeyConditions") is not None:
        key_condition = key_condition_from_key_conditions(request["KeyConditions"])
    else:
        raise ValidationException(
            "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request."
        )
    plan = _Plan(request, exprs, "FilterExpression", "QueryFilter")
    if exprs is not None:
        exprs.check_unused()
    forward = request.get("ScanIndexForward", True) is not False

    with ctx.engine.read() as txn:
        table = ctx.catalog.require(txn, ctx.region, request["TableName"])
        _check_no_index(table, request)
        key_condition.validate(table.hash_key, table.range_key, table.attribute_types)
        _check_filter_keys(table, plan, request)
        start, stop = _sort_range(table, key_condition)
        start_key = _start_key(table, request)
        if start_key is not None:
            if start_key[table.hash_key] != key_condition.partition_value:
                raise ValidationException("The provided starting key does not match the range key predicate")
            esk = storage_key(table, start_key)
            if forward:
                start = max(start, esk + b"\x00")
            else:
                stop = esk if stop is None else min(stop, esk)
        entries = txn.scan("items", start, stop, reverse=not forward)
        return _page(table, request, plan, entries)


def _sort_range(table, kc) -> tuple[bytes, bytes | None]:
    """The storage range of the items a key condition selects."""
    prefix = partition_prefix(table, kc.partition_value)
    end = successor(prefix)
    op = kc.sort_op
    if op is None:
        return prefix, end
    values = [next(iter(v.items())) for v in kc.sort_values]
    enc = [prefix + encode_key_value(t, v) for t, v in values]
    if op == "EQ":
        return enc[0], enc[0] + b"\x00"
    if op == "LT":
        return prefix, enc[0]
    if op == "LE":
        return prefix, enc[0] + b"\x00"
    if op == "GT":
        return enc[0] + b"\x00", end
    if op == "GE":
        return enc[0], end
    if op == "BETWEEN":
        return enc[0], enc[1] + b"\x00"
    if op == "BEGINS_WITH":
        type_, value = values[0]
        low = prefix + encode_key_prefix(type_, value)
        return low, successor(low) or end
    raise ValidationException(f"Unsupported key condition operator {op}")


# ---------------------------------------------------------------- Scan


def scan(ctx, request: dict):
    exprs = expression_context(
        request, ("FilterExpression", "ProjectionExpression"), ("ScanFilter", "AttributesToGet")
    )
    plan = _Plan(request, exprs, "FilterExpression", "ScanFilter")
    if exprs is not None:
        exprs.check_unused()
    segment = request.get("Segment")
    total = request.get("TotalSegments")
    if segment is not None and total is None:
        raise ValidationException("If segment is specified, total segment must also be specified")
    if total is not None and segment is None:
        raise ValidationException(
            "If total segments is specified, a particular segment must also be specified for this request"
        )
    if segment is not None and segment >= total:
        raise ValidationException(
            f"1 validation error detected: Value '{segment}' at 'segment' failed to satisfy constraint: "
            f"Member must have value less than or equal to {total - 1}"
        )

    with ctx.engine.read() as txn:
        table = ctx.catalog.require(txn, ctx.region, request["TableName"])
        _check_no_index(table, request)
        if segment is None:
            start, stop = table.prefix, successor(table.prefix)
        else:
            start, stop = segment_range(table, segment, total)
        start_key = _start_key(table, request)
        if start_key is not None:
            start = max(start, storage_key(table, start_key) + b"\x00")
        entries = txn.scan("items", start, stop)
        return _page(table, request, plan, entries)


# ---------------------------------------------------------------- paging


def _page(table, request: dict, plan: _Plan, entries) -> bytes:
    """Read one page of a Query or Scan and serialize the response.

    Items read but filtered out count in ScannedCount and in consumed
    capacity, as in DynamoDB.  Without a filter or projection the stored JSON
    of each item is spliced into the response unchanged.
    """
    limit = plan.limit
    flt = plan.filter
    projection = plan.projection
    count_only = plan.select == "COUNT"
    chunks: list = []
    scanned = 0
    read_bytes = 0
    last_raw = None
    truncated = False
    for _key, raw in entries:
        size = stored_size(raw)
        if read_bytes + size > PAGE_BYTES and scanned:
            truncated = True
            break
        scanned += 1
        read_bytes += size
        last_raw = raw
        if flt is None and projection is None:
            if not count_only:
                chunks.append(stored_json(raw))
            else:
                chunks.append(None)
        else:
            item = stored_item(raw)
            if flt is None or flt.evaluate(item):
                if count_only:
                    chunks.append(None)
                elif projection is None:
                    chunks.append(stored_json(raw))
                else:
                    chunks.append(orjson.dumps(projection.apply(item)))
        if limit is not None and scanned >= limit:
            truncated = True
            break
    out = []
    if not count_only:
        out.append(b'{"Items":[')
        out.append(b",".join(chunks))
        out.append(b'],"Count":')
    else:
        out.append(b'{"Count":')
    out.append(b"%d,\"ScannedCount\":%d" % (len(chunks), scanned))
    if truncated and last_raw is not None:
        out.append(b',"LastEvaluatedKey":')
        out.append(orjson.dumps(key_of(table, stored_item(last_raw))))
    capacity = consumed_capacity(request, table.name, read_units(read_bytes, plan.consistent))
    if capacity is not None:
        out.append(b',"ConsumedCapacity":')
        out.append(orjson.dumps(capacity))
    out.append(b"}")
    return b"".join(out)


OPERATIONS = {"Query": query, "Scan": scan}
