"""What the item operations share: key encoding, expression parameters,
consumed capacity and ReturnValues shaping."""

from __future__ import annotations

import re
import zlib

from shoal.errors import VALIDATION_ERRORS_PATTERN, ValidationException, validation_errors
from shoal.expressions import ExpressionContext, parse_projection
from shoal.expressions.legacy import projection_from_attributes_to_get
from shoal.model.capacity import read_units, write_units
from shoal.model.keys import encode_key_value
from shoal.model.numbers import MAX_DIGITS, is_normalized_short
from shoal.model.values import MAX_NAME_BYTES, NAME_TOO_LONG, validate_key, validate_value

_HASH_SPACE = 1 << 32


# ---------------------------------------------------------------- keys


def partition_prefix(table, partition_value: dict) -> bytes:
    """The storage-key prefix of one item collection (partition).

    A 4-byte hash of the encoded partition key comes first, as in DynamoDB,
    where items are spread by the hash of their partition key: Scan walks
    partitions in hash order and parallel Scan segments are ranges of it.
    """
    (type_, value), = partition_value.items()
    encoded = encode_key_value(type_, value)
    if table.keys is not None:  # encrypted at rest: a keyed hash stands for the value
        encoded = table.keys.partition(encoded)
    return table.prefix + zlib.crc32(encoded).to_bytes(4, "big") + encoded


def storage_key(table, key: dict) -> bytes:
    """The storage key of the item whose (validated) key attributes are ``key``."""
    prefix = partition_prefix(table, key[table.hash_key])
    if table.range_key is None:
        return prefix
    (type_, value), = key[table.range_key].items()
    return prefix + encode_key_value(type_, value)


def key_of(table, item: dict) -> dict:
    """The key attributes of a stored item."""
    if table.range_key is None:
        return {table.hash_key: item[table.hash_key]}
    return {table.hash_key: item[table.hash_key], table.range_key: item[table.range_key]}


def checked_key(table, key: dict) -> dict:
    """A request's Key, validated against the table's key schema.

    The common case (each key attribute a non-empty string of at most 256
    characters, hence at most 1,024 UTF-8 bytes, or a number already in short
    normalized form) is recognised inline and the key returned as it is;
    anything else goes through the full validation and its messages.
    """
    if len(key) == len(table.key_schema):
        types = table.attribute_types
        for name, _role in table.key_schema:
            av = key.get(name)
            if av is None or len(av) != 1:
                break
            type_ = types[name]
            value = av.get(type_)
            if type_ == "S":
                if type(value) is not str or not 0 < len(value) <= 256:
                    break
            elif type_ == "N":
                if type(value) is not str or len(value) > MAX_DIGITS or not is_normalized_short(value):
                    break
            else:
                break
        else:
            return key
    return validate_key(key, table.key_schema, table.attribute_types)


def successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def segment_range(table, segment: int, total: int) -> tuple[bytes, bytes | None]:
    """The storage-key range of one parallel Scan segment."""
    lo = segment * _HASH_SPACE // total
    hi = (segment + 1) * _HASH_SPACE // total
    start = table.prefix + lo.to_bytes(4, "big")
    stop = table.prefix + hi.to_bytes(4, "big") if hi < _HASH_SPACE else successor(table.prefix)
    return start, stop


# ---------------------------------------------------------------- expressions

_LEGACY_OF = {
    "ConditionExpression": "Expected",
    "UpdateExpression": "AttributeUpdates",
    "ProjectionExpression": "AttributesToGet",
    "FilterExpression": ("QueryFilter", "ScanFilter"),
    "KeyConditionExpression": "KeyConditions",
}


def expression_context(request: dict, expression_members: tuple[str, ...], legacy_members: tuple[str, ...],
                       *, current: bool = False, bare_values: bool = False) -> ExpressionContext | None:
    """Check the ExpressionAttributeNames/Values rules of a request and make the
    context its expressions are parsed in.

    Returns None when the request uses no expression at all.  ``current``
    selects the wording of DynamoDB's newer request validation (PutItem,
    UpdateItem, DeleteItem): no list of null expressions after "can only be
    specified when using expressions", and a bad value's own message without
    "ExpressionAttributeValues contains invalid value: ... for key :v".
    ``bare_values`` keeps only the latter (Query).
    """
    used_expr = [m for m in expression_members if request.get(m) is not None]
    used_legacy = [m for m in legacy_members if request.get(m) is not None]
    if used_expr and used_legacy:
        raise ValidationException(
            "Can not use both expression and non-expression parameters in the same request: "
            f"Non-expression parameters: {{{', '.join(used_legacy)}}} "
            f"Expression parameters: {{{', '.join(used_expr)}}}"
        )
    names = request.get("ExpressionAttributeNames")
    values = request.get("ExpressionAttributeValues")
    if not used_expr:
        if names is not None:
            raise ValidationException("ExpressionAttributeNames can only be specified when using expressions")
        if values is not None:
            if current:
                raise ValidationException("ExpressionAttributeValues can only be specified when using expressions")
            takers = sorted(m for m in expression_members if m != "ProjectionExpression")
            verb = "is" if len(takers) == 1 else "are"
            raise ValidationException(
                "ExpressionAttributeValues can only be specified when using expressions: "
                f"{' and '.join(takers)} {verb} null"
            )
        return None
    if names is not None:
        if not names:
            raise ValidationException("ExpressionAttributeNames must not be empty")
        for key, name in names.items():
            _check_placeholder("ExpressionAttributeNames", key, _NAME_KEY)
            if not name:
                raise ValidationException(
                    f"ExpressionAttributeNames contains invalid value: Empty attribute name for key {key}")
            if not name.isascii() and len(name.encode("utf-8")) > MAX_NAME_BYTES:  # the shape counts characters
                raise ValidationException(f"ExpressionAttributeNames contains invalid value: {NAME_TOO_LONG} for key {key}")
    if values is not None:
        if not values:
            raise ValidationException("ExpressionAttributeValues must not be empty")
        checked = {}
        for name, value in values.items():
            _check_placeholder("ExpressionAttributeValues", name, _VALUE_KEY)
            try:
                checked[name] = validate_value(value, name)
            except ValidationException as exc:
                if current or bare_values:
                    raise
                raise ValidationException(
                    f"ExpressionAttributeValues contains invalid value: {exc.message} for key {name}"
                ) from None
        values = checked
    return ExpressionContext(names, values)


_NAME_KEY = re.compile(r"#[A-Za-z0-9_]+\Z")
_VALUE_KEY = re.compile(r":[A-Za-z0-9_]+\Z")
MAX_PLACEHOLDER_BYTES = 255


def _check_placeholder(member: str, key: str, pattern) -> None:
    """Placeholder keys: '#' or ':' then letters, digits or '_', at most 255 bytes."""
    if len(key) > MAX_PLACEHOLDER_BYTES:
        detail = f" size of key: {len(key.encode())}" if member == "ExpressionAttributeNames" else ""
        raise ValidationException(
            f"{member} contains invalid key: The expression attribute map contains a key that is too long;{detail}")
    if not pattern.match(key):
        raise ValidationException(f'{member} contains invalid key: Syntax error; key: "{key}"')


def read_projection(request: dict, legacy: tuple[str, ...] = ("AttributesToGet",)):
    """The projection of a read whose only expression is a ProjectionExpression
    (GetItem, a BatchGetItem table, a TransactGetItems Get), or its legacy
    AttributesToGet; None when the whole item is wanted."""
    if (
        "ProjectionExpression" not in request
        and "AttributesToGet" not in request
        and "ExpressionAttributeNames" not in request
        and "ExpressionAttributeValues" not in request
    ):
        return None  # the common case: nothing to check
    exprs = expression_context(request, ("ProjectionExpression",), legacy)
    projection = None
    if request.get("ProjectionExpression") is not None:
        projection = parse_projection(request["ProjectionExpression"], exprs)
    elif legacy and request.get("AttributesToGet") is not None:
        projection = projection_from_attributes_to_get(request["AttributesToGet"])
    if exprs is not None:
        exprs.check_unused()
    return projection


# ---------------------------------------------------------------- capacity

#: The kinds of entry ``meter`` records.
READ, WRITE, RETURNED, RECORDS, BYTES = "read", "write", "returned", "records", "bytes"
CONDITION_FAILED = "condition_failed"  # ``meter_condition_failed``'s


class _Unlimited:
    """The charge of a request nothing limits here (or that the loop's
    ``admit`` and ``settle`` charge), as ``shoal.capacity.off_loop`` hands
    out: does nothing."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add(self, kind: str, units: float, index: str | None = None) -> None:
        return None


NO_CHARGE = _Unlimited()


def meter(ctx, table_name: str, kind: str, amount: float, index_units: dict | None = None) -> None:
    """Report to the server's metrics what a request consumed on one table,
    whether or not it asked for ReturnConsumedCapacity: ``ctx.meter`` (a
    list, or None when metrics are off) receives ``(table_name, kind, units,
    index)`` tuples, ``kind`` READ or WRITE: one for the table (its own
    ``amount`` plus its local secondary indexes', which share its capacity;
    none when that is 0) and one per global secondary index in
    ``index_units`` (``{"GlobalSecondaryIndexes": {name: units}, ...}``, as
    ConsumedCapacity's INDEXES detail has them), named by ``index``.

    The hottest requests meter in a cheaper form (``shoal.metrics.recorder``
    works out the rest when it flushes): a GetItem of one 4 KB block adds one
    to ``ctx.meter[consistent]`` when the meter is a plain list (the shared
    list of the request's cell, whose first two slots count such reads; a
    stored record of at most 4,100 bytes is one block, as an item is never
    larger than its JSON, so its size need not be read); any other GetItem
    appends ``(table_name, blocks * 2 + consistent)``, an int (``blocks`` the
    item's 4 KB blocks, at least one); a single-item write to a table without
    indexes ``(table_name, units)``, a float."""
    sink = ctx.meter
    if sink is None:
        return
    if index_units:
        for name, units in (index_units.get("GlobalSecondaryIndexes") or {}).items():
            sink.append((table_name, kind, units, name))
        amount += sum((index_units.get("LocalSecondaryIndexes") or {}).values())
    if amount > 0:
        sink.append((table_name, kind, amount, None))


def meter_item_write(ctx, table_name: str, units: float, index_units: dict | None) -> None:
    """Report one item's write (the caller checked ``ctx.meter`` is not
    None): into a table's own metrics cell (a plain ``list``: the request
    named the table it writes) the units alone, a float, which the garbage
    collector does not track until the flush (shoal.metrics.recorder);
    elsewhere the compact ``(TableName, units)`` entry when no index was
    written, ``meter``'s entries otherwise."""
    if index_units:
        meter(ctx, table_name, WRITE, units, index_units)
    elif ctx.meter.__class__ is list:
        ctx.meter.append(units)
    else:
        ctx.meter.append((table_name, units))


def failed_write_units(old_size: int | None) -> float:
    """What a write whose condition evaluated to false consumes: DynamoDB
    "still consumes write capacity from the table", the size of the item
    that exists (rounded up to 1 KB units), or one unit when there is none
    (Developer Guide, "Capacity units consumed by conditional writes").  No
    index is written, so none is charged."""
    return write_units(old_size) if old_size else 1.0


def meter_failed_write(ctx, table, old_size: int | None) -> None:
    """Charge a PutItem, UpdateItem or DeleteItem whose condition failed:
    its units (``failed_write_units``) go to the metrics
    (ConsumedWriteCapacityUnits) and, on a limited table, to its write
    capacity (``Capacity.condition_failed`` for a request charged at
    admission; a request metered apart is charged by ``settle`` from the
    same entry).  The request still fails with ConditionalCheckFailedException,
    whose response carries no ConsumedCapacity, as DynamoDB's does not."""
    units = failed_write_units(old_size)
    capacity = ctx.catalog.capacity
    if capacity is not None and table.limited:
        capacity.condition_failed(table, units)
    if ctx.meter is not None:
        meter_item_write(ctx, table.name, units, None)


def meter_condition_failed(ctx, table_name: str) -> None:
    """Report a write whose condition failed inside a request that still
    succeeds (a BatchExecuteStatement member): ``(table_name,
    CONDITION_FAILED, 1, None)``, one in the table's
    ConditionalCheckFailedRequests.  (A request that fails with
    ConditionalCheckFailedException is counted from its error.)"""
    if ctx.meter is not None:
        ctx.meter.append((table_name, CONDITION_FAILED, 1, None))


def meter_returned(ctx, table_name: str, operation: str, items: int) -> None:
    """Report the items a Query or Scan page returned: ``(table_name,
    RETURNED, items, operation)`` in ``ctx.meter``."""
    if ctx.meter is not None:
        ctx.meter.append((table_name, RETURNED, items, operation))


def meter_records(ctx, table_name: str, stream_label: str, records: int, size: int) -> None:
    """Report what a GetRecords returned (ReturnedRecordsCount and
    ReturnedBytes, by the stream's table and label)."""
    if ctx.meter is not None:
        ctx.meter.append((table_name, RECORDS, records, stream_label))
        ctx.meter.append((table_name, BYTES, size, stream_label))


def consumed_capacity(request: dict, table_name: str, units: float, *, index_units: dict | None = None) -> dict | None:
    """The ConsumedCapacity member for ReturnConsumedCapacity TOTAL / INDEXES."""
    mode = request.get("ReturnConsumedCapacity")
    if mode is None or mode == "NONE":
        return None
    total = units
    if index_units:
        total += sum(u for by_name in index_units.values() for u in by_name.values())
    result = {"TableName": table_name, "CapacityUnits": total}
    if mode == "INDEXES":
        result["Table"] = {"CapacityUnits": units}
        if index_units:  # {"GlobalSecondaryIndexes": {name: units}, ...}
            for member, by_name in index_units.items():
                result[member] = {name: {"CapacityUnits": u} for name, u in by_name.items()}
    return result


def add_index_units(total: dict, written: dict | None, factor: float = 1.0) -> None:
    """Add one write's per-index units ({"GlobalSecondaryIndexes": {name: units}, ...},
    as ``write_item`` reports them) into ``total``; transactions pass factor 2."""
    for member, by_name in (written or {}).items():
        into = total.setdefault(member, {})
        for name, units in by_name.items():
            into[name] = into.get(name, 0.0) + factor * units


def item_read_units(size: int, consistent: bool) -> float:
    return read_units(size, consistent)


def item_write_units(old_size: int, new_size: int) -> float:
    """A write is charged for the larger of the item before and after it."""
    return write_units(max(old_size, new_size))


def check_return_values(request: dict, allowed: tuple[str, ...]) -> str:
    value = request.get("ReturnValues") or "NONE"
    if value not in allowed:
        raise ValidationException("ReturnValues can only be " + " or ".join(allowed[::-1]))
    return value


_ENVELOPE = re.compile(VALIDATION_ERRORS_PATTERN)


def in_envelope(exc: ValidationException) -> ValidationException:
    """The error as DynamoDB's newer request validation reports it (PutItem,
    UpdateItem and DeleteItem, in us-east-1 since 2026): inside the
    "1 validation error detected: " envelope, unless it is in one already."""
    if _ENVELOPE.match(exc.message):
        return exc
    return ValidationException(validation_errors([exc.message]))
