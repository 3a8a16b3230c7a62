"""Query and Scan: range reads over the storage key space.

A Query reads one item collection (one partition key) as one storage range;
a Scan walks the table's key space in hash order, and each parallel Scan
segment is a contiguous range of it.  Both stop at Limit items evaluated or
1 MB of item data read, as DynamoDB does, and return LastEvaluatedKey.

With IndexName they read the index's entries instead (``shoal.api.indexes``
lays them out like table items), and LastEvaluatedKey carries the index keys
and the table keys.  A local secondary index that does not project what the
request asks for fetches each item from the table, as DynamoDB does; a global
one refuses such requests.
"""

from __future__ import annotations

import orjson

from shoal.api.common import (
    READ,
    checked_key,
    consumed_capacity,
    expression_context,
    key_of,
    meter,
    meter_returned,
    partition_prefix,
    segment_range,
    storage_key,
    successor,
)
from shoal.api.indexes import entry_key, index_partition_prefix, table_suffix_of
from shoal.api.writepath import _SIZE, stored_item, stored_json, stored_size
from shoal.errors import ValidationException, ValueWordingException, newer_wording, validation_errors
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.expressions import check_scalar_keys, parse_condition, parse_key_condition, parse_projection
from shoal.expressions.keycondition import START_KEY_NOT_IN_RANGE, START_KEY_OUTSIDE
from shoal.expressions.legacy import (
    condition_from_filter,
    key_condition_from_key_conditions,
    projection_from_attributes_to_get,
)
from shoal.model.capacity import read_units
from shoal.model.keys import encode_key_prefix, encode_key_value
from shoal.model.values import check_attribute_names, validate_value

PAGE_BYTES = 1024 * 1024


class _Plan:
    """What a Query or Scan reads and how it shapes each item."""

    __slots__ = ("filter", "projection", "select", "limit", "consistent", "fetch")

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
        self.fetch = False  # an LSI read that fetches each item from the table


def _check_select(request: dict, projection_member: str | None) -> str:
    select = request.get("Select")
    if select is None:
        if projection_member:
            return "SPECIFIC_ATTRIBUTES"
        return "ALL_PROJECTED_ATTRIBUTES" if request.get("IndexName") is not None else "ALL_ATTRIBUTES"
    if select == "ALL_PROJECTED_ATTRIBUTES" and request.get("IndexName") is None:
        raise ValidationException(
            "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName"
        )
    if select == "SPECIFIC_ATTRIBUTES" and projection_member is None:
        # Query words it inside the validation envelope, Scan bare (the
        # nubo-db/dynamodb-conformance suite's 2026 recordings of DynamoDB).
        message = "Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES"
        if "KeyConditionExpression" in request or "KeyConditions" in request:
            message = validation_errors([message])
        raise ValidationException(message)
    if select in ("ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES") and projection_member:
        raise ValidationException(
            f"Cannot specify the {projection_member} when choosing to get {select}"
        )
    if select == "COUNT" and projection_member:
        raise ValidationException(
            f"Cannot specify the {projection_member} when choosing to get only the Count"
        )
    return select


def _index_of(table, request: dict, plan: _Plan, operation: str):
    """The index a request reads (None for the table), after DynamoDB's rules
    on reading it; decides whether an LSI read fetches from the table.

    A Query's filter may only name attributes the index projects (even on an
    LSI, which fetches only what the response returns); a Scan's filter sees
    the index entry as it is.
    """
    name = request.get("IndexName")
    if name is None:
        return None
    index = table.index_map.get(name)
    if index is None or index.status == "DELETING":
        raise ValidationException(f"The table does not have the specified index: {name}")
    if not index.local:
        if plan.consistent:
            raise ValidationException("Consistent reads are not supported on global secondary indexes")
        if index.status == "CREATING":
            raise ValidationException(f"Cannot read from backfilling global secondary index: {name}")
    if index.projected is None:
        return index
    if operation == "Query" and plan.filter is not None:
        unprojected = sorted(n for n in plan.filter.top_level_names if n not in index.projected)
        if unprojected:
            raise ValidationException(
                f"{INVALID}Secondary index {name} does not project one or more filter attributes: "
                f"[{', '.join(unprojected)}]"
            )
    if plan.select == "COUNT":
        return index
    wanted = _wanted_names(plan)
    missing = None if wanted is None else [n for n in wanted if n not in index.projected]
    if wanted is None or missing:
        if index.local:
            plan.fetch = True
        elif wanted is None:
            raise ValidationException(
                f"{INVALID}Select type ALL_ATTRIBUTES is not supported for global secondary index "
                f"{name} because its projection type is not ALL"
            )
        else:
            raise ValidationException(
                f"{INVALID}Global secondary index {name} does not project [{', '.join(missing)}]"
            )
    return index


def _wanted_names(plan: _Plan) -> list | None:
    """The top-level attributes a read returns, in order of appearance; None
    for every attribute (Select ALL_ATTRIBUTES)."""
    if plan.select == "ALL_ATTRIBUTES":
        return None
    names: list = []
    if plan.projection is not None:
        for path in plan.projection.paths:
            if path[0] not in names:
                names.append(path[0])
    return names


def key_attribute_names(table) -> tuple[tuple, tuple]:
    """The table's key attributes and its secondary indexes' (which no
    expression may reach into: ``shoal.expressions.check_scalar_keys``)."""
    index_keys = tuple(name for index in (table.index_map or {}).values()
                       for name in (index.hash_keys + index.range_keys or (index.hash_key, index.range_key)))
    return (table.hash_key, table.range_key), index_keys


def check_key_paths(table, *expressions) -> None:
    """Refuse bound expressions (None skipped) that reach into a key
    attribute of the table or of an index, as DynamoDB does; costs one
    attribute test per expression when none reaches into anything."""
    for expression in expressions:
        if expression is not None and expression.nested_names:
            check_scalar_keys(expressions, *key_attribute_names(table))
            return


def _read_keys(table, index) -> tuple[str, str | None]:
    if index is None:
        return table.hash_key, table.range_key
    return index.hash_key, index.range_key


def _check_filter_keys(key_names, plan: _Plan, request: dict) -> None:
    """A Query filter may not refer to key attributes (they belong in the key condition)."""
    if plan.filter is None:
        return
    names = plan.filter.top_level_names
    for key_name in key_names:
        if key_name is not None and key_name in names:
            if request.get("QueryFilter") is not None:
                raise ValidationException(
                    f"QueryFilter can only contain non-primary key attributes: Primary key attribute: {key_name}"
                )
            raise ValidationException(
                "Filter Expression can only contain non-primary key attributes: "
                f"Primary key attribute: {key_name}"
            )


def _start_key(table, index, request: dict, operation: str) -> dict | None:
    """The request's ExclusiveStartKey, checked: the table's key, plus the
    index's key attributes when reading an index.

    A table read's start key naming other attributes than the table's key
    (or another number of them) is refused in DynamoDB's words as recorded
    (the nubo-db/dynamodb-conformance suite, 2026): a Query's "The provided
    starting key is invalid" alone, a Scan's with "The provided key element
    does not match the schema" after it.  An index read's of the wrong size
    keeps DynamoDB Local's words, which users report DynamoDB answering too
    (no recording says for which reads)."""
    esk = request.get("ExclusiveStartKey")
    if esk is None:
        return None
    names = _position_names(table, index)
    if index is None and (len(esk) != len(names) or any(name not in esk for name in names)):
        if operation == "Scan":
            raise ValidationException(f"{START_KEY_INVALID}: The provided key element does not match the schema")
        raise ValidationException(START_KEY_INVALID)
    if len(esk) != len(names):
        raise ValidationException("Exclusive Start Key must have same size as table's key schema")
    try:
        if index is None:
            return checked_key(table, esk)
        return _checked_index_position(table, index, esk, names)
    except ValidationException as exc:
        raise ValidationException(f"The provided starting key is invalid: {exc.message}") from None


def _position_names(table, index) -> list[str]:
    """The attributes of a LastEvaluatedKey: table keys, then index keys."""
    names = [table.hash_key] if table.range_key is None else [table.hash_key, table.range_key]
    if index is not None:
        names += [n for n, _ in index.key_schema if n not in names]
    return names


def _checked_index_position(table, index, esk: dict, names: list[str]) -> dict:
    if any(name not in esk for name in names):
        raise ValidationException("The provided key element does not match the schema")
    out = checked_key(table, {n: esk[n] for n, _ in table.key_schema})
    for name, _ in index.key_schema:
        value = validate_value(esk[name], name)
        if table.attribute_types[name] not in value:
            raise ValidationException("The provided key element does not match the schema")
        out[name] = value
    return out


def _position(table, index, start_key: dict) -> bytes:
    """The storage key (table or index entry) an ExclusiveStartKey names."""
    skey = storage_key(table, start_key)
    if index is None:
        return skey
    return entry_key(table, index, start_key, table_suffix_of(table, skey), True)


# ---------------------------------------------------------------- Query


def query(ctx, request: dict):
    try:
        return _query(ctx, request)
    except ValueWordingException as exc:  # DynamoDB's newer validation words some value faults anew
        raise newer_wording(exc) from None


def _query(ctx, request: dict):
    check_attribute_names(request.get("ExclusiveStartKey") or ())
    # KeyConditions clashes only with KeyConditionExpression: DynamoDB takes
    # it beside a FilterExpression or a ProjectionExpression.
    legacy = ("QueryFilter", "AttributesToGet")
    if request.get("KeyConditionExpression") is not None:
        legacy += ("KeyConditions",)
    exprs = expression_context(
        request, ("KeyConditionExpression", "FilterExpression", "ProjectionExpression"), legacy, bare_values=True
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

    # Each statement a committed state, as DynamoDB's reads are per item (a
    # Query is no snapshot there either): PostgreSQL is spared BEGIN and COMMIT.
    with ctx.engine.read(snapshot=False) as txn:
        table = ctx.catalog.require(txn, ctx.region, request["TableName"])
        index = _index_of(table, request, plan, "Query")
        check_key_paths(table, plan.filter, plan.projection)
        multi = index is not None and index.multi
        if multi:
            key_condition.validate_multi(index.hash_keys, index.range_keys, table.attribute_types)
            _check_filter_keys(index.hash_keys + index.range_keys, plan, request)
        else:
            hash_key, range_key = _read_keys(table, index)
            key_condition.validate(hash_key, range_key, table.attribute_types)
            _check_filter_keys((hash_key, range_key), plan, request)
        if index is None:
            prefix = partition_prefix(table, key_condition.partition_value)
        else:
            prefix = index_partition_prefix(index, key_condition.partition_value, table.keys)
        if key_condition.sort_prefix:  # multi-attribute sort keys fixed by equality
            prefix += b"".join(encode_key_value(*next(iter(v.items()))) for v in key_condition.sort_prefix)
        start, stop = _sort_range(prefix, key_condition)
        start_key = _start_key(table, index, request, "Query")
        if start_key is not None:
            esk = _position(table, index, start_key)
            fault = (_multi_start_key_fault(esk, start, stop, key_condition) if multi
                     else key_condition.start_key_fault(start_key))
            if fault is not None:
                raise ValidationException(fault)
            if forward:
                start = max(start, esk + b"\x00")
            else:
                stop = esk if stop is None else min(stop, esk)
        if not _strong_read(table, index, plan):
            entries = txn.scan("items" if index is None else "indexes", start, stop, reverse=not forward)
            return _page(ctx, txn, table, index, request, plan, entries)
    return _strong().query(ctx, table, request, plan, key_condition.partition_value, start, stop, forward)


def _multi_start_key_fault(esk: bytes | None, start: bytes, stop: bytes | None, kc) -> str | None:
    """Why an ExclusiveStartKey cannot start a Query of an index with
    multi-attribute keys: its entry lies outside the range the key condition
    selects (DynamoDB's words for a start key outside the partition or the
    sort condition)."""
    if esk is None or esk < start or (stop is not None and esk >= stop):
        return START_KEY_OUTSIDE if kc.sort_op is None else START_KEY_NOT_IN_RANGE
    return None


def _sort_range(prefix: bytes, kc) -> tuple[bytes, bytes | None]:
    """The storage range of the items (or index entries) a key condition
    selects within the partition starting with ``prefix``.

    Index entry keys continue after the index sort key (with the table key),
    so "equal to v" is "starts with enc(v)": the bounds use ``successor``.
    """
    end = successor(prefix)
    op = kc.sort_op
    if op is None:
        return prefix, end
    values = [next(iter(v.items())) for v in kc.sort_values]
    enc = [prefix + encode_key_value(t, v) for t, v in values]
    if op == "EQ":
        return enc[0], successor(enc[0])
    if op == "LT":
        return prefix, enc[0]
    if op == "LE":
        return prefix, successor(enc[0])
    if op == "GT":
        return successor(enc[0]), end
    if op == "GE":
        return enc[0], end
    if op == "BETWEEN":
        return enc[0], successor(enc[1])
    if op == "BEGINS_WITH":
        type_, value = values[0]
        low = prefix + encode_key_prefix(type_, value)
        return low, successor(low) or end
    raise ValidationException(f"Unsupported key condition operator {op}")


# ---------------------------------------------------------------- Scan


def scan(ctx, request: dict):
    try:  # Scan words a start key's empty name as a fault of the start key
        check_attribute_names(request.get("ExclusiveStartKey") or ())
    except ValidationException as exc:
        raise ValidationException(f"The provided starting key is invalid: {exc.message}") from None
    exprs = expression_context(
        request, ("FilterExpression", "ProjectionExpression"), ("ScanFilter", "AttributesToGet")
    )
    plan = _Plan(request, exprs, "FilterExpression", "ScanFilter")
    if exprs is not None:
        exprs.check_unused()
    segment = request.get("Segment")
    total = request.get("TotalSegments")
    # DynamoDB's words as the nubo-db/dynamodb-conformance suite recorded them (2026).
    if segment is not None and total is None:
        raise ValidationException(
            "The TotalSegments parameter is required but was not present in the request when Segment parameter "
            "is present"
        )
    if total is not None and segment is None:
        raise ValidationException(
            "The Segment parameter is required but was not present in the request when parameter TotalSegments "
            "is present"
        )
    if segment is not None and segment >= total:
        raise ValidationException(
            "The Segment parameter is zero-based and must be less than parameter TotalSegments: "
            f"Segment: {segment} is not less than TotalSegments: {total}"
        )

    with ctx.engine.read(snapshot=False) as txn:  # as Query's
        table = ctx.catalog.require(txn, ctx.region, request["TableName"])
        index = _index_of(table, request, plan, "Scan")
        check_key_paths(table, plan.filter, plan.projection)
        base = table if index is None else index  # both have the .prefix segment_range needs
        if segment is None:
            start, stop = base.prefix, successor(base.prefix)
        else:
            start, stop = segment_range(base, segment, total)
        start_key = _start_key(table, index, request, "Scan")
        strong = _strong_read(table, index, plan)
        if start_key is not None and not strong:
            position = _position(table, index, start_key)
            if segment is not None and not (start <= position and (stop is None or position < stop)):
                raise ValidationException(segment_start_key_fault(segment, total))
            start = max(start, position + b"\x00")
        if not strong:
            entries = txn.scan("items" if index is None else "indexes", start, stop)
            return _page(ctx, txn, table, index, request, plan, entries)
    return _strong().scan(ctx, table, request, plan, segment, total, start_key)


START_KEY_INVALID = "The provided starting key is invalid"


def segment_start_key_fault(segment: int, total: int) -> str:
    """DynamoDB's words for a parallel Scan's ExclusiveStartKey outside its
    segment, as dynalite's suite recorded them against DynamoDB (DynamoDB
    Local says "Exclusive start key must lie within the segment")."""
    return (f"{START_KEY_INVALID}: Invalid ExclusiveStartKey. Please use ExclusiveStartKey with correct Segment. "
            f"TotalSegments: {total} Segment: {segment}")


# ---------------------------------------------------------------- MRSC


def _strong_read(table, index, plan: _Plan) -> bool:
    """Whether a read is a strongly consistent one of an MRSC table, which
    must see writes other regions acknowledged and this one has not yet
    learned: it reads the registers of two regions instead of this
    region's table (``shoal.replication.strong``), outside this read
    transaction.  A GSI read is refused ConsistentRead before this."""
    return plan.consistent and index is None and table.description.get("MultiRegionConsistency") == "STRONG"


def _strong():
    """The MRSC side, imported only when a table needs it."""
    from shoal.replication import strong

    return strong


# ---------------------------------------------------------------- paging


def _page(ctx, txn, table, index, request: dict, plan: _Plan, entries) -> bytes:
    """Read one page of a Query or Scan and serialize the response.

    Items read but filtered out count in ScannedCount and in consumed
    capacity, as in DynamoDB.  Without a filter or projection the stored JSON
    of each item is spliced into the response unchanged.
    """
    fetched = [0.0] if plan.fetch else None
    limit = plan.limit
    flt = plan.filter
    projection = plan.projection
    count_only = plan.select == "COUNT"
    if fetched is None and flt is None and projection is None and not count_only:
        chunks, scanned, read_bytes, last_raw, truncated = _splice_page(entries, limit)
        return _page_response(ctx, table, index, request, plan, chunks, scanned, read_bytes, last_raw,
                              truncated, fetched, count_only)
    entries = _pairs(entries) if fetched is None else _fetching(txn, table, entries)
    chunks: list = []
    scanned = 0
    read_bytes = 0  # of the entries read: the read's own units
    page_bytes = 0  # and of the items an LSI read fetches for them: what the 1 MB bounds
    last_raw = None
    truncated = False
    for raw, entry in entries:
        size = stored_size(entry)
        fetch_size = 0 if fetched is None else stored_size(raw)
        if page_bytes + size + fetch_size > PAGE_BYTES and scanned:
            truncated = True
            break
        scanned += 1
        read_bytes += size
        page_bytes += size + fetch_size
        if fetched is not None:
            fetched[0] += read_units(fetch_size, plan.consistent)
        last_raw = entry
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
    return _page_response(ctx, table, index, request, plan, chunks, scanned, read_bytes, last_raw,
                          truncated, fetched, count_only)


def _splice_page(entries, limit):
    """The common page: every stored item returned as it is.  The same rules
    as ``_page``'s loop (1 MB, Limit), with the per-item work inlined."""
    unpack = _SIZE.unpack_from
    chunks: list = []
    append = chunks.append
    read_bytes = 0
    last_raw = None
    truncated = False
    budget = limit if limit is not None else -1
    for _key, raw in entries:
        size = unpack(raw)[0]
        if read_bytes + size > PAGE_BYTES and chunks:
            truncated = True
            break
        read_bytes += size
        last_raw = raw
        append(memoryview(raw)[4:])
        if len(chunks) == budget:
            truncated = True
            break
    return chunks, len(chunks), read_bytes, last_raw, truncated


def _page_response(ctx, table, index, request, plan, chunks, scanned, read_bytes, last_raw, truncated,
                   fetched, count_only) -> bytes:
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
        out.append(orjson.dumps(_last_key(table, index, stored_item(last_raw))))
    units = read_units(read_bytes, plan.consistent)
    if ctx.meter is not None:
        _meter_page(ctx, table, index, request, units, fetched[0] if fetched else 0.0, len(chunks))
    if index is None:
        capacity = consumed_capacity(request, table.name, units)
    else:
        capacity = _index_capacity(request, table.name, index, units, fetched[0] if fetched else 0.0)
    if capacity is not None:
        out.append(b',"ConsumedCapacity":')
        out.append(orjson.dumps(capacity))
    out.append(b"}")
    return b"".join(out)


def _fetching(txn, table, entries):
    """Pairs (table item, index entry) for an LSI read that needs attributes
    the index does not project.  ``_page`` charges each fetch it keeps and
    counts the fetched item in the page's 1 MB: a page of such a read is
    not a page of small entries with megabytes of items behind them."""
    for _key, entry in entries:
        item = stored_item(entry)
        raw = txn.get("items", storage_key(table, key_of(table, item)))
        if raw is None:  # cannot happen in one snapshot; skip rather than fail
            continue
        yield raw, entry


def _pairs(entries):
    """(value, entry) pairs when the entry itself is what is returned."""
    for _key, raw in entries:
        yield raw, raw


def _last_key(table, index, item: dict) -> dict:
    if index is None:
        return key_of(table, item)
    return {name: item[name] for name in _position_names(table, index)}


def _meter_page(ctx, table, index, request: dict, units: float, fetched_units: float, returned: int) -> None:
    """The page's units and returned items, for the metrics: a global
    secondary index's units are its own, a local one's the table's."""
    if index is None:
        meter(ctx, table.name, READ, units)
    elif index.local:
        meter(ctx, table.name, READ, units + fetched_units)
    else:
        meter(ctx, table.name, READ, 0.0, {"GlobalSecondaryIndexes": {index.name: units}})
    query = request.get("KeyConditionExpression") is not None or request.get("KeyConditions") is not None
    meter_returned(ctx, table.name, "Query" if query else "Scan", returned)


def _index_capacity(request: dict, table_name: str, index, index_units: float, table_units: float) -> dict | None:
    """ConsumedCapacity of an index read: the index's units, plus the table's
    for items an LSI read fetched; INDEXES details them."""
    mode = request.get("ReturnConsumedCapacity")
    if mode is None or mode == "NONE":
        return None
    out = {"TableName": table_name, "CapacityUnits": index_units + table_units}
    if mode == "INDEXES":
        member = "LocalSecondaryIndexes" if index.local else "GlobalSecondaryIndexes"
        out["Table"] = {"CapacityUnits": table_units}
        out[member] = {index.name: {"CapacityUnits": index_units}}
    return out


OPERATIONS = {"Query": query, "Scan": scan}
