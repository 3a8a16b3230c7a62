"""A table (or a point in time of it) as Parquet files, for DuckDB, pandas,
Spark and the other readers of a data lake (``shoal export --format parquet``).

DynamoDB items have no schema; Parquet files have one.  The export reads the
table twice in one read transaction (one state of the table): the first pass
infers a schema from every item's attributes (``Shape``), the second writes
the items under it, ``ROW_GROUP`` rows per row group and ``FILE_ROWS`` per
file, compressed with zstd.  The items are those of ``pitr.stored_items_at``:
the table as it is, or as it was at a time of its point-in-time recovery
window.

One column per top-level attribute name (the key attributes first, then the
others by name).  A column whose values all have one DynamoDB type gets the
Arrow type that holds it exactly:

    S      string
    N      int64 when every value is an integer that fits; else decimal128(p, s)
           with s the most digits after the point and p the most before it plus
           s, when p <= 38; else (mixing 1E+100 and 1E-100, say) the DynamoDB JSON
    B      binary (the bytes, decoded from base64)
    BOOL   bool
    NULL   a column of only NULLs is of Arrow's null type
    SS     list<string>;  NS  list<int64 or decimal128, as N>;  BS  list<binary>
    L      list<T> when every member, in every item, has the one type T above
    M      struct<...> with a field per key found in the maps (at most
           ``MAX_STRUCT_FIELDS``), each field typed by these rules

Anything else, a column mixing types (S in one item, N in another) or a list
or map with a member that has no exact type, is a string column holding the
DynamoDB JSON of each attribute value, as DynamoDB's exports write it
(``{"N":"1"}``, ``{"L":[{"S":"a"},{"N":"1"}]}``).  An item without the
attribute, and a NULL value in a typed column, are Parquet nulls.

Why not float64 for numbers: DynamoDB numbers are exact decimals of up to 38
significant digits; float64 keeps about 16, so prices, counters and ids above
2**53 would change silently.  int64 covers the common case (timestamps,
counts) at full speed in every reader, and decimal128 the rest exactly (DuckDB
reads it as DECIMAL(p, s), pandas as ``decimal.Decimal`` objects: cast to
float there if exactness does not matter).

The schema records what each column was: the field metadata ``dynamodb_type``
is the DynamoDB type (``S``, ``SS``, ``L``, ..., or ``mixed``) and ``encoding``
is ``dynamodb-json`` for a column of DynamoDB JSON; the file metadata names
the table (``shoal.table``, ``shoal.table_arn``) and the time it was read at
(``shoal.export_time``).

Files are written under temporary names beginning with a dot (which readers
of a folder skip) and renamed once all are complete.
"""

from __future__ import annotations

import base64
import os
import secrets
from typing import Callable

import orjson

from shoal.api import tables
from shoal.api.backups import iso_time
from shoal.api.catalog import read_stats
from shoal.api.changelog import head_position, position_at
from shoal.api.exports import InvalidExportTimeException
from shoal.api.pitr import setting, stored_items_at, window
from shoal.errors import PointInTimeRecoveryUnavailableException

#: Rows per row group and per file; items converted to Arrow at a time.
ROW_GROUP = 100_000
FILE_ROWS = 1_000_000
CONVERT_BATCH = 10_000
#: A column of maps with more distinct keys than this is DynamoDB JSON (a map
#: used as a dictionary, not as a record, would make a struct of thousands of fields).
MAX_STRUCT_FIELDS = 256
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_PRECISION = 38
_JSON = "dynamodb-json"


class NotEmpty(Exception):
    """The output folder already holds Parquet files."""


def pyarrow_modules():
    """(pyarrow, pyarrow.parquet); ImportError says how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError("Parquet export needs pyarrow: pip install 'shoal[parquet]'") from None
    return pyarrow, pyarrow.parquet


# ---------------------------------------------------------------- inference


class _Numbers:
    """What the N values of one place have been: integers within int64, and
    the most digits before and after the point (numbers are stored as
    normalized text without exponent: ``shoal.model.numbers``)."""

    __slots__ = ("integral", "whole", "scale")

    def __init__(self) -> None:
        self.integral = True
        self.whole = 0
        self.scale = 0

    def add(self, text: str) -> None:
        whole, _, fraction = text.lstrip("-").partition(".")
        whole = whole.lstrip("0")
        if len(whole) > self.whole:
            self.whole = len(whole)
        if fraction:
            self.integral = False
            if len(fraction) > self.scale:
                self.scale = len(fraction)
        elif self.integral and len(whole) > 18 and not _INT64_MIN <= int(text) <= _INT64_MAX:
            self.integral = False


class Shape:
    """The DynamoDB types seen at one place of the items (a top-level
    attribute, a map's field, the members of lists or sets), and what is
    needed to type them: number ranges, the members' shape, the fields'."""

    __slots__ = ("tags", "numbers", "members", "fields", "wide", "plain")

    def __init__(self) -> None:
        #: The one tag seen so far when it needs no more than being seen (S,
        #: B, BOOL): a value with that tag can be skipped (the common case).
        self.plain: str | None = None
        self.tags: set[str] = set()
        self.numbers = _Numbers()
        self.members: Shape | None = None
        self.fields: dict[str, Shape] | None = None
        self.wide = False  # a map with more than MAX_STRUCT_FIELDS keys

    def add(self, av: dict) -> None:
        (tag, value), = av.items()
        if tag == "NULL":
            return
        tags = self.tags
        if tag not in tags:
            tags.add(tag)
            self.plain = tag if len(tags) == 1 and tag in ("S", "B", "BOOL") else None
        if len(tags) > 1:
            return  # mixed: DynamoDB JSON whatever else comes
        if tag == "N":
            self.numbers.add(value)
        elif tag == "NS":
            add = self.numbers.add
            for member in value:
                add(member)
        elif tag == "L":
            members = self.members
            if members is None:
                members = self.members = Shape()
            for member in value:
                members.add(member)
        elif tag == "M":
            if self.wide:
                return
            fields = self.fields
            if fields is None:
                fields = self.fields = {}
            for name, member in value.items():
                shape = fields.get(name)
                if shape is None:
                    if len(fields) >= MAX_STRUCT_FIELDS:
                        self.wide = True
                        return
                    shape = fields[name] = Shape()
                shape.add(member)


# ---------------------------------------------------------------- typing
#
# A column is converted by Arrow itself, not value by value in Python: the
# attribute values (dicts as stored, ``{"N": "12.5"}``) become an array of
# their *wire type*, the Arrow type of their JSON (``struct<N: string>``),
# and compute functions turn that into the column's type (the field, then a
# cast to int64 or decimal128; lists and structs member by member).  Only
# binaries (base64) and DynamoDB JSON columns go through Python.


class Column:
    """One column: its Arrow type, the DynamoDB type it holds, the wire type
    of its attribute values and the conversion of an array of that type."""

    def __init__(self, name: str, arrow_type, dynamodb_type: str, wire_type, convert: Callable) -> None:
        self.name, self.arrow_type, self.dynamodb_type = name, arrow_type, dynamodb_type
        self.wire_type, self.convert = wire_type, convert

    def field(self, pa):
        metadata = {"dynamodb_type": self.dynamodb_type}
        if self.wire_type is None:
            metadata["encoding"] = _JSON
        return pa.field(self.name, self.arrow_type, nullable=True, metadata=metadata)

    def array(self, pa, values: list):
        """The column of these attribute values (None where absent)."""
        if self.wire_type is None:  # DynamoDB JSON
            return pa.array([None if av is None else orjson.dumps(av).decode() for av in values], type=pa.string())
        return self.convert(pa.array(values, type=self.wire_type))


def _number_type(pa, numbers: _Numbers):
    """The Arrow type of numbers, or None if none holds them exactly."""
    if numbers.integral:
        return pa.int64()
    precision = numbers.whole + numbers.scale
    if precision > _MAX_PRECISION:
        return None
    return pa.decimal128(max(precision, 1), numbers.scale)


def _base64_decoded(pa, strings):
    return pa.array([None if text is None else base64.b64decode(text) for text in strings.to_pylist()],
                    type=pa.binary())


def _exact(pa, shape: Shape):
    """(Arrow type, DynamoDB type, wire type, conversion) for the values of
    ``shape``, or None where no Arrow type holds them exactly."""
    import pyarrow.compute as pc

    if not shape.tags:
        return pa.null(), "NULL", pa.struct([("NULL", pa.bool_())]), lambda wire: pa.nulls(len(wire))
    if len(shape.tags) > 1:
        return None
    tag = next(iter(shape.tags))

    def wire_of(value_type):
        return pa.struct([(tag, value_type)])

    def member(wire):
        return pc.struct_field(wire, tag)

    if tag in ("S", "BOOL", "SS"):
        arrow_type = {"S": pa.string(), "BOOL": pa.bool_(), "SS": pa.list_(pa.string())}[tag]
        return arrow_type, tag, wire_of(arrow_type), member
    if tag == "N" or tag == "NS":
        number = _number_type(pa, shape.numbers)
        if number is None:
            return None
        arrow_type = number if tag == "N" else pa.list_(number)
        wire = pa.string() if tag == "N" else pa.list_(pa.string())
        return arrow_type, tag, wire_of(wire), lambda array: member(array).cast(arrow_type)
    if tag == "B":
        return pa.binary(), tag, wire_of(pa.string()), lambda array: _base64_decoded(pa, member(array))
    if tag == "BS":
        def decode_set(array):
            sets = member(array)
            return pa.ListArray.from_arrays(sets.offsets, _base64_decoded(pa, sets.values), mask=sets.is_null())

        return pa.list_(pa.binary()), tag, wire_of(pa.list_(pa.string())), decode_set
    if tag == "L":
        members = shape.members or Shape()
        if not members.tags:  # only empty lists (or lists of NULLs): any type holds them
            members.tags.add("S")
        typed = _exact(pa, members)
        if typed is None:
            return None
        member_type, _, member_wire, convert_member = typed

        def convert_list(array):
            lists = member(array)
            return pa.ListArray.from_arrays(lists.offsets, convert_member(lists.values), mask=lists.is_null())

        return pa.list_(member_type), tag, wire_of(pa.list_(member_wire)), convert_list
    if tag == "M":
        if shape.wide or not shape.fields:  # too many keys, or only empty maps (Parquet has no empty struct)
            return None
        fields = []
        for name in sorted(shape.fields):
            typed = _exact(pa, shape.fields[name])
            if typed is None:
                return None
            fields.append((name, typed))
        struct = pa.struct([(name, typed[0]) for name, typed in fields])
        wire = pa.struct([(name, typed[2]) for name, typed in fields])

        def convert_map(array):
            maps = member(array)
            children = [typed[3](pc.struct_field(maps, name)) for name, typed in fields]
            return pa.StructArray.from_arrays(children, fields=list(struct), mask=maps.is_null())

        return struct, tag, wire_of(wire), convert_map
    return None


def column_of(pa, name: str, shape: Shape) -> Column:
    """The column of top-level attribute ``name``."""
    typed = _exact(pa, shape)
    if typed is None:
        return Column(name, pa.string(), "mixed" if len(shape.tags) > 1 else next(iter(shape.tags)), None, None)
    arrow_type, dynamodb_type, wire_type, convert = typed
    return Column(name, arrow_type, dynamodb_type, wire_type, convert)


def infer_columns(pa, items, key_names: list[str]) -> tuple[list[Column], int]:
    """The columns of ``items`` (wire-form dicts), keys first; and their count."""
    shapes: dict[str, Shape] = {}
    count = 0
    for item in items:
        count += 1
        for name, av in item.items():
            shape = shapes.get(name)
            if shape is None:
                shape = shapes[name] = Shape()
            elif shape.plain is not None and shape.plain in av:
                continue
            shape.add(av)
    order = [name for name in key_names if name in shapes]
    order += sorted(name for name in shapes if name not in order)
    return [column_of(pa, name, shapes[name]) for name in order], count


def record_batch(pa, schema, columns: list[Column], items: list[dict]):
    """``items`` as one Arrow record batch of ``columns`` (``schema``'s)."""
    arrays = [column.array(pa, [item.get(column.name) for item in items]) for column in columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------- the export


def export_table(ctx, table_name: str, out_dir: str, *, at: float | None = None,
                 progress: Callable[[str, int, int], object] | None = None) -> dict:
    """Write table ``table_name`` of ``ctx``'s region (as it was at ``at``,
    epoch seconds within its recovery window, or as it is) into ``out_dir``
    as Parquet files.  ``progress(phase, done, total)`` is called as items are
    read ("schema") and written ("write").  Returns a summary: the table, the
    time, the files, the item count and the columns with their types."""
    pa, pq = pyarrow_modules()
    _check_out_dir(out_dir)
    now = ctx.now()
    with ctx.engine.read() as txn:
        table = tables.source_table(ctx, txn, table_name)
        if at is None:
            at, position = now, head_position(txn)
        else:
            current = setting(txn, table)
            if current is None:
                raise PointInTimeRecoveryUnavailableException(
                    f"Point in time recovery is not enabled for table '{table.name}'")
            earliest, latest = window(txn, current, now)
            if not earliest <= at <= latest:
                raise InvalidExportTimeException(
                    f"Export Time is invalid: {iso_time(at)} is not within EarliestRestorableDateTime "
                    f"{iso_time(earliest)} and LatestRestorableDateTime {iso_time(latest)}")
            position = position_at(txn, int(at * 1000))
        expected = read_stats(txn, table.prefix)[0]  # the count now: the progress bar's length

        def items(phase: str):
            done = 0
            for item_json, _size in stored_items_at(txn, table, position):
                yield orjson.loads(item_json)
                done += 1
                if progress is not None and done % 10_000 == 0:
                    progress(phase, done, max(expected, done))

        keys = [name for name, _ in table.key_schema]
        columns, count = infer_columns(pa, items("schema"), keys)
        if progress is not None:
            progress("schema", count, count)
        schema = pa.schema([column.field(pa) for column in columns], metadata={
            "shoal.table": table.name, "shoal.table_arn": table.arn, "shoal.export_time": iso_time(at)})
        files = _write_files(pa, pq, schema, columns, items("write"), count, out_dir, progress)
    return {"table": table.name, "export_time": iso_time(at), "items": count, "files": files,
            "columns": {column.name: f"{column.dynamodb_type} -> {column.arrow_type}" for column in columns}}




def _check_out_dir(out_dir: str) -> None:
    if os.path.isdir(out_dir) and any(name.endswith(".parquet") for name in os.listdir(out_dir)):
        raise NotEmpty(f"{out_dir} already holds Parquet files: give an empty or new folder")
    os.makedirs(out_dir, exist_ok=True)


def _write_files(pa, pq, schema, columns, items, count: int, out_dir: str, progress) -> list[str]:
    """Write ``items`` as ``part-NNNNN.parquet`` files; their paths.  Items
    are converted ``CONVERT_BATCH`` at a time (few decoded dicts alive at
    once: the garbage collector walks every one) and written a row group at a time."""
    token = secrets.token_hex(4)
    written: list[tuple[str, str]] = []  # (temporary, final)
    writer = None
    rows_in_file = done = 0
    pending: list = []  # converted batches of the next row group
    pending_rows = 0
    batch: list[dict] = []

    def write_row_group() -> None:
        nonlocal writer, rows_in_file, pending, pending_rows
        if writer is None or rows_in_file >= FILE_ROWS:
            if writer is not None:
                writer.close()
            final = os.path.join(out_dir, f"part-{len(written):05d}.parquet")
            temporary = os.path.join(out_dir, f".part-{len(written):05d}.{token}.tmp")
            written.append((temporary, final))
            writer = pq.ParquetWriter(temporary, schema, compression="zstd")
            rows_in_file = 0
        writer.write_table(pa.Table.from_batches(pending, schema=schema), row_group_size=ROW_GROUP)
        rows_in_file += pending_rows
        pending, pending_rows = [], 0

    try:
        for item in items:
            batch.append(item)
            if len(batch) < CONVERT_BATCH:
                continue
            pending.append(record_batch(pa, schema, columns, batch))
            pending_rows += len(batch)
            done += len(batch)
            batch = []
            if pending_rows >= ROW_GROUP:
                write_row_group()
            if progress is not None:
                progress("write", done, max(count, done))
        if batch:
            pending.append(record_batch(pa, schema, columns, batch))
            pending_rows += len(batch)
            done += len(batch)
        if pending or writer is None:  # (an empty table: one file with the schema and no rows)
            write_row_group()
        writer.close()
        writer = None
        for temporary, final in written:
            os.replace(temporary, final)
    except BaseException:
        if writer is not None:
            writer.close()
        for temporary, _ in written:
            _remove_quietly(temporary)
        raise
    if progress is not None:
        progress("write", done, done)
    return [final for _, final in written]


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
