"""The table catalog: which tables exist, their key schema and their description.

Every table is one entry in the ``meta`` key space under ``table_key(region,
name)``: ``b"table/" + region + b"\\0" + name``.  The ``\\0`` separator makes
the tables of one region a contiguous key range ordered by name, so ListTables
is a range scan.  The value is the JSON of a small record::

    {"account": ..., "id": <uuid4 text>, "desc": <TableDescription>}

The stored TableDescription is the single source of truth: the key schema,
the attribute types and the storage prefix of the table's items are derived
from it.  ItemCount and TableSizeBytes are not in it; the write path keeps
them under ``STATS_KEY(prefix)``, so that item writes never rewrite the
catalog entry (and never invalidate the catalog caches of other processes).
Tags live under ``TAGS_KEY(prefix)`` for the same reason.

Secondary indexes are described in the stored TableDescription as DynamoDB
describes them (``LocalSecondaryIndexes`` / ``GlobalSecondaryIndexes``, without
the live IndexSizeBytes and ItemCount).  Each index also has a number, assigned
at creation and never reused within the table, kept in the record beside the
description (``"ix": {name: number}``, ``"nix"``: the next number); an index's
entries live in the ``indexes`` space under ``table prefix + number`` (see
``shoal.api.indexes``).  Vector indexes (``VectorIndexes``, ``shoal.api.vectors``)
share that numbering and key space.

Every item key of a table starts with the table's 16-byte prefix (the bytes of
its uuid4 table id).  A re-created table gets a new prefix, so the items of a
deleted table can be purged lazily without ever being seen by its successor.

``Catalog.get`` is on the path of every item operation.  It caches the parsed
``Table`` per (region, name) together with the raw stored bytes and
revalidates by one point read plus a byte comparison: another worker process
may have updated, deleted or re-created the table since.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

import orjson

from shoal.errors import ResourceNotFoundException

_TABLE_PREFIX = b"table/"
_STATS = struct.Struct(">qq")

# How many parsed tables one Catalog keeps; beyond it the cache is dropped and
# refilled (a process serving more tables than this pays one parse per miss).
MAX_CACHED = 4096


def STATS_KEY(prefix: bytes) -> bytes:  # noqa: N802 (the agreed interface name)
    """The ``meta`` key of a table's (ItemCount, TableSizeBytes) counter."""
    return b"stats/" + prefix


def TAGS_KEY(prefix: bytes) -> bytes:  # noqa: N802
    """The ``meta`` key of a table's tags (JSON list of {"Key", "Value"})."""
    return b"tags/" + prefix


def INDEX_STATS_KEY(prefix: bytes, number: int) -> bytes:  # noqa: N802
    """The ``meta`` key of an index's (ItemCount, IndexSizeBytes) counter."""
    return b"istats/" + prefix + number.to_bytes(2, "big")


def table_key(region: str, name: str) -> bytes:
    """The ``meta`` key of a table's catalog entry."""
    return _TABLE_PREFIX + region.encode() + b"\0" + name.encode()


def region_range(region: str) -> tuple[bytes, bytes]:
    """The [start, stop) ``meta`` key range holding every table of ``region``."""
    base = _TABLE_PREFIX + region.encode()
    return base + b"\0", base + b"\x01"


def read_stats(txn, prefix: bytes) -> tuple[int, int]:
    """(ItemCount, TableSizeBytes) of the table with this prefix; absent = (0, 0)."""
    raw = txn.get("meta", STATS_KEY(prefix))
    return _STATS.unpack(raw) if raw else (0, 0)


def read_index_stats(txn, prefix: bytes, number: int) -> tuple[int, int]:
    """(ItemCount, IndexSizeBytes) of one index; absent = (0, 0)."""
    raw = txn.get("meta", INDEX_STATS_KEY(prefix, number))
    return _STATS.unpack(raw) if raw else (0, 0)


@dataclass(slots=True)
class Index:
    """A secondary index as the write path and Query/Scan need it."""

    name: str
    local: bool
    number: int
    prefix: bytes  # table prefix + 2-byte index number: the index's key range
    hash_key: str
    range_key: str | None
    hash_type: str
    range_type: str | None
    key_schema: list[tuple[str, str]]
    projection_type: str  # ALL, KEYS_ONLY or INCLUDE
    projected: frozenset | None  # top-level names an entry keeps; None = all
    status: str  # ACTIVE, CREATING (backfilling) or DELETING
    # Multi-attribute keys (a GSI's partition and sort keys of up to four
    # attributes each): every key attribute in KeySchema order, and their
    # types; ``hash_key``/``range_key`` are the first of each.
    hash_keys: tuple = ()
    hash_types: tuple = ()
    range_keys: tuple = ()
    range_types: tuple = ()
    multi: bool = False  # more than one attribute in either key
    # A vector index (``shoal.api.vectors``): what its entries hold; None
    # for a secondary index.  Its ``hash_key`` is its SearchSchema HASH
    # attribute ("" without one) and its ``key_schema`` is empty.
    vector: VectorSpec | None = None


@dataclass(slots=True, frozen=True)
class VectorSpec:
    """What a vector index keeps of an item: the vector, and the
    SearchSchema attributes a search may test for equality."""

    attribute: str  # VectorAttribute.AttributeName: a list of numbers
    dimensions: int
    distance: str  # COSINE, EUCLIDEAN or DOT_PRODUCT
    hash_type: str | None  # the SearchSchema HASH attribute's type, if any
    filters: tuple  # (name, type) of each INLINE_FILTER attribute


class _NoPlan:
    """``Table.plan`` until the capacity hook makes one: nothing is charged inline."""

    __slots__ = ()
    owner = direct = None


NO_PLAN = _NoPlan()


@dataclass(slots=True)
class Table:
    """A table as the data plane needs it, parsed once from its catalog entry."""

    name: str
    region: str
    account: str
    table_id: str
    prefix: bytes
    hash_key: str
    range_key: str | None
    attribute_types: dict[str, str]
    arn: str
    description: dict  # the stored TableDescription; treat as read-only
    key_schema: list[tuple[str, str]]
    # Indexes the write path maintains (ACTIVE and CREATING), in description
    # order: secondary indexes, then vector indexes.
    indexes: tuple = ()
    # Every secondary index by name, DELETING ones included (Query, Scan and
    # PartiQL read these; vector indexes are not among them).
    index_map: dict = None  # type: ignore[assignment]
    # Every vector index by name, DELETING ones included.
    vector_map: dict = None  # type: ignore[assignment]
    index_numbers: dict = None  # type: ignore[assignment]  # name -> number
    next_index: int = 0
    has_local_indexes: bool = False
    # The data directory's key codec (``shoal.storage.encrypted.KeyCodec``)
    # when it is encrypted at rest: storage keys then hash partition keys.
    keys: object = None
    # Whether its description limits its throughput (``has_limits``): only
    # then does a request's ``Catalog.require`` call the capacity hook.
    limited: bool = False
    # The capacity hook's plan of this version of the table (``shoal.capacity.Plan``),
    # made when a request first requires it; NO_PLAN until then (whose ``direct`` is None).
    plan: object = NO_PLAN
    # The TableStatus that refuses item requests (CREATING: a restore or an
    # import is filling it; INACCESSIBLE_ENCRYPTION_CREDENTIALS: its KMS key
    # cannot be used; ARCHIVING, ARCHIVED: its data is gone, in a backup,
    # ``shoal.api.archival``), None otherwise: read by every ``Catalog.require``,
    # so that an available table costs one attribute test.
    refused_status: str | None = None


#: True while per-partition limits are on (``shoal.capacity`` sets it when they are): every
#: table's requests then reach the capacity hook, each key having its partition's limit.
LIMIT_EVERY_TABLE = False


def has_limits(desc: dict) -> bool:
    """Whether a table's description sets throughput limits: provisioned
    capacity (of the table or a GSI), or on-demand maximums."""
    provisioned = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED") == "PROVISIONED"
    for part in (desc, *(desc.get("GlobalSecondaryIndexes") or ())):
        if provisioned:
            settings = part.get("ProvisionedThroughput") or {}
            if settings.get("ReadCapacityUnits") or settings.get("WriteCapacityUnits"):
                return True
        else:
            settings = part.get("OnDemandThroughput") or {}
            if (settings.get("MaxReadRequestUnits") or -1) > 0 or (settings.get("MaxWriteRequestUnits") or -1) > 0:
                return True
    return False


#: TableStatus values whose table ``Catalog.require`` refuses (``Table.refused_status``).
INACCESSIBLE = "INACCESSIBLE_ENCRYPTION_CREDENTIALS"
_REFUSED_STATUSES = frozenset(("CREATING", INACCESSIBLE, "ARCHIVING", "ARCHIVED"))


def table_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def encode_entry(account: str, table_id: str, description: dict,
                 index_numbers: dict | None = None, next_index: int = 0) -> bytes:
    """The stored form of a catalog entry."""
    record = {"account": account, "id": table_id, "desc": description}
    if index_numbers:
        record["ix"] = index_numbers
    if next_index:
        record["nix"] = next_index
    return orjson.dumps(record)


def update_description(txn, region: str, name: str, table_id: str, change, keys=None) -> Table | None:
    """Apply ``change(description)`` (it edits the dict in place) to the stored
    description of table ``name`` if it is still the table ``table_id``, and
    store it; returns the updated ``Table``, or None if the table is gone."""
    key = table_key(region, name)
    raw = txn.get("meta", key)
    entry = orjson.loads(raw) if raw is not None else None
    if entry is None or entry["id"] != table_id:
        return None
    change(entry["desc"])
    raw = encode_entry(entry["account"], table_id, entry["desc"], entry.get("ix"), entry.get("nix", 0))
    txn.put("meta", key, raw)
    return decode_entry(region, raw, keys)


def decode_entry(region: str, raw: bytes, keys=None) -> Table:
    """Parse a stored catalog entry into a ``Table``.

    ``keys`` is the engine's key codec (``engine.keys`` / ``txn.keys``, None
    for an unencrypted data directory); storage keys built for the table use it.
    """
    record = orjson.loads(raw)
    desc = record["desc"]
    key_schema = [(k["AttributeName"], k["KeyType"]) for k in desc["KeySchema"]]
    table_id = record["id"]
    prefix = uuid.UUID(table_id).bytes
    types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
    numbers = record.get("ix") or {}
    index_map = _parse_indexes(desc, key_schema, types, numbers, prefix)
    vector_map = _parse_vector_indexes(desc, key_schema, types, numbers, prefix)
    maintained = [i for i in index_map.values() if i.status != "DELETING"]
    maintained += [i for i in vector_map.values() if i.status != "DELETING"]
    return Table(
        name=desc["TableName"],
        region=region,
        account=record["account"],
        table_id=table_id,
        prefix=prefix,
        hash_key=key_schema[0][0],
        range_key=key_schema[1][0] if len(key_schema) > 1 else None,
        attribute_types=types,
        arn=desc["TableArn"],
        description=desc,
        key_schema=key_schema,
        indexes=tuple(maintained),
        index_map=index_map,
        vector_map=vector_map,
        index_numbers=numbers,
        next_index=record.get("nix", 0),
        has_local_indexes=bool(desc.get("LocalSecondaryIndexes")),
        keys=keys,
        limited=LIMIT_EVERY_TABLE or has_limits(desc),
        refused_status=desc.get("TableStatus") if desc.get("TableStatus") in _REFUSED_STATUSES else None,
    )


def _parse_indexes(desc: dict, table_schema, types: dict, numbers: dict, prefix: bytes) -> dict:
    """Every index of a stored description, by name."""
    table_keys = [name for name, _ in table_schema]
    out = {}
    for member, local in (("LocalSecondaryIndexes", True), ("GlobalSecondaryIndexes", False)):
        for spec in desc.get(member) or ():
            out[spec["IndexName"]] = _parse_index(spec, local, table_keys, types, numbers, prefix)
    return out


def _parse_index(spec: dict, local: bool, table_keys: list, types: dict, numbers: dict, prefix: bytes) -> Index:
    schema = [(k["AttributeName"], k["KeyType"]) for k in spec["KeySchema"]]
    hash_keys = tuple(name for name, kind in schema if kind == "HASH")
    range_keys = tuple(name for name, kind in schema if kind == "RANGE")
    hash_key = hash_keys[0]
    range_key = range_keys[0] if range_keys else None
    projection = spec["Projection"]
    kind = projection.get("ProjectionType", "ALL")
    projected = None
    if kind != "ALL":
        keep = set(table_keys)
        keep.update(name for name, _ in schema)
        keep.update(projection.get("NonKeyAttributes") or ())
        projected = frozenset(keep)
    number = numbers[spec["IndexName"]]
    return Index(
        name=spec["IndexName"],
        local=local,
        number=number,
        prefix=prefix + number.to_bytes(2, "big"),
        hash_key=hash_key,
        range_key=range_key,
        hash_type=types[hash_key],
        range_type=types[range_key] if range_key else None,
        key_schema=schema,
        projection_type=kind,
        projected=projected,
        status=spec.get("IndexStatus", "ACTIVE"),
        hash_keys=hash_keys,
        hash_types=tuple(types[n] for n in hash_keys),
        range_keys=range_keys,
        range_types=tuple(types[n] for n in range_keys),
        multi=len(hash_keys) > 1 or len(range_keys) > 1,
    )


def _parse_vector_indexes(desc: dict, table_schema, types: dict, numbers: dict, prefix: bytes) -> dict:
    """Every vector index of a stored description, by name."""
    out = {}
    table_keys = [name for name, _ in table_schema]
    for spec in desc.get("VectorIndexes") or ():
        schema = spec.get("SearchSchema") or ()
        hashes = [e["AttributeName"] for e in schema if e["SearchSchemaElementType"] == "HASH"]
        filters = tuple((e["AttributeName"], types[e["AttributeName"]])
                        for e in schema if e["SearchSchemaElementType"] == "INLINE_FILTER")
        attribute = spec["VectorAttribute"]["AttributeName"]
        projection = spec["Projection"]
        kind = projection.get("ProjectionType", "ALL")
        projected = None
        if kind != "ALL":  # the keys, the search schema and the vector are always there
            projected = frozenset((*table_keys, *hashes, *(n for n, _ in filters), attribute,
                                   *(projection.get("NonKeyAttributes") or ())))
        hash_key = hashes[0] if hashes else ""
        number = numbers[spec["IndexName"]]
        out[spec["IndexName"]] = Index(
            name=spec["IndexName"],
            local=False,
            number=number,
            prefix=prefix + number.to_bytes(2, "big"),
            hash_key=hash_key,
            range_key=None,
            hash_type=types[hash_key] if hashes else "",
            range_type=None,
            key_schema=[],
            projection_type=kind,
            projected=projected,
            status=spec.get("IndexStatus", "ACTIVE"),
            vector=VectorSpec(attribute, spec["Dimensions"], spec["DistanceFunction"],
                              types[hash_key] if hashes else None, filters),
        )
    return out


class Catalog:
    """Looks tables up by (region, name), with a per-process parse cache."""

    __slots__ = ("engine", "keys", "_cache", "capacity")

    def __init__(self, engine) -> None:
        self.engine = engine
        self.keys = getattr(engine, "keys", None)  # set for an encrypted data directory
        #: The worker's capacity hook (``shoal.capacity.Capacity``): every table whose throughput
        #: is limited (``Table.limited``) that a request requires is admitted by it, which refuses
        #: the request when that throughput is spent; None: nothing limits.
        self.capacity = None
        self._cache: dict[tuple[str, str], tuple[bytes, bytes, Table]] = {}  # key, raw, parsed

    def get(self, txn, region: str, name: str) -> Table | None:
        """The table, or None; fresh as of ``txn``'s snapshot.

        One point read per call; the JSON is parsed only when the stored bytes
        differ from the cached ones (first use, or a change by any process).
        """
        cache_key = (region, name)
        cached = self._cache.get(cache_key)
        key = cached[0] if cached is not None else table_key(region, name)
        raw = txn.get("meta", key)
        if raw is None:
            if cached is not None:
                del self._cache[cache_key]
            if name.startswith("arn:"):
                return self._get_by_arn(txn, region, name)
            return None
        if cached is not None and cached[1] == raw:
            return cached[2]
        table = decode_entry(region, raw, self.keys)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[cache_key] = (key, bytes(raw), table)
        return table

    def _get_by_arn(self, txn, region: str, arn: str) -> Table | None:
        """TableName may be the table's ARN (of the caller's region), exactly as
        DynamoDB gives it: authorization checks the ARN as sent, so any other
        spelling that resolved here (another partition) would be checked as a
        resource no policy names."""
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[1] != "aws" or parts[2] != "dynamodb" or parts[3] != region:
            return None
        kind, _, name = parts[5].partition("/")
        if kind != "table" or not name or name.startswith("arn:"):
            return None
        table = self.get(txn, region, name)
        if table is None or table.account != parts[4]:
            return None
        return table

    def require(self, txn, region: str, name: str) -> Table:
        """The table, or DynamoDB's data-plane ResourceNotFoundException (also
        while the table is CREATING: a restore or an import is filling it; and
        ARCHIVING or ARCHIVED: its data is gone, ``shoal.api.archival``);
        a table whose KMS key cannot be used (INACCESSIBLE_ENCRYPTION_CREDENTIALS)
        gets the error DynamoDB answers then (``control.inaccessible_error``)."""
        table = self.get(txn, region, name)
        if table is None or table.refused_status is not None:
            if table is not None and table.refused_status == INACCESSIBLE:
                from shoal.replication.control import inaccessible_error

                raise inaccessible_error(self.engine, table)
            raise ResourceNotFoundException("Requested resource not found")
        if table.limited:
            capacity = self.capacity
            if capacity is not None:
                # A GetItem or PutItem of its own table far from its limit, charged here the least it
                # consumes (Capacity.admit does the same the long way, and everything else).  The request's
                # own look-up passes its TableName object itself; another thread's (an export, a restore)
                # passes its own string and goes the long way, never refused nor charged.  Once charged,
                # the request is its plan's marker (a second look-up goes to ``admit``, which charges
                # nothing).  Few steps: what enforcement costs a GetItem is mostly the interpreter's
                # dispatch of each bytecode here and in the dispatcher's job (bench/overhead_ab.py).
                current = capacity.current
                plan = table.plan
                if current is not None and plan.direct is capacity:
                    operation, _, data, _ = current
                    if operation == "GetItem":
                        allowance = plan.read
                        # (0.0: a float, the comparison the interpreter specializes)
                        if data["TableName"] is name and allowance.balance > 0.0:
                            allowance.balance -= 1.0 if "ConsistentRead" in data and data["ConsistentRead"] else 0.5
                            capacity.current = plan.marker
                            return table
                    elif operation == "PutItem" and data["TableName"] is name:
                        allowance = plan.write_alone  # a table without GSI limits: its writes alone
                        if allowance is not None:
                            if allowance.balance > 0.0:
                                allowance.balance -= 1.0
                                capacity.current = plan.marker
                                return table
                        else:
                            for allowance in plan.writes:  # the table's, then each GSI's
                                if allowance.balance <= 0.0:
                                    break
                            else:
                                plan.write.balance -= 1.0
                                capacity.current = plan.marker
                                return table
                capacity.admit(table)
        return table

    def list_names(self, txn, region: str) -> list[str]:
        """Every table name of ``region``, sorted (by UTF-8 bytes, as stored)."""
        return list(self.iter_names(txn, region))

    def iter_names(self, txn, region: str, after: str | None = None):
        """Table names of ``region`` in order, starting after ``after`` if given."""
        first, stop = region_range(region)
        start = first if after is None else table_key(region, after) + b"\0"
        skip = len(first)
        for key, _ in txn.scan("meta", start, stop):
            yield key[skip:].decode()


class PinnedCatalog:
    """The catalog as one authorized request sees it: a table that
    authorization resolved is answered only while it is still that table.

    Authorization reads key attribute names (``dynamodb:LeadingKeys`` and the
    like) in its own read transaction; the operation looks the table up again
    in its own.  If in between the table was deleted and re-created (or an
    index re-created) with other keys, the permission was decided on keys the
    request no longer touches, so here the table is gone:
    ``ResourceNotFoundException``, as if the request had come a moment later
    than the deletion and sooner than the creation.

    ``pins`` maps (region, TableName as sent) to (table_id or None, {index
    name: key attribute names or None}) as authorization saw them.
    """

    __slots__ = ("catalog", "pins")

    def __init__(self, catalog: Catalog, pins: dict) -> None:
        self.catalog = catalog
        self.pins = pins

    def __getattr__(self, name: str):
        return getattr(self.catalog, name)

    def get(self, txn, region: str, name: str) -> Table | None:
        table = self.catalog.get(txn, region, name)
        pin = self.pins.get((region, name))
        if pin is None or table is None and pin[0] is None:
            return table
        table_id, indexes = pin
        if table is None or table.table_id != table_id:
            return None
        for index_name, keys in indexes.items():
            index = table.index_map.get(index_name)
            if (None if index is None else key_names(index)) != keys:
                return None
        return table

    require = Catalog.require  # through this view's get


def key_names(table_or_index) -> tuple:
    """The key attribute names of a table or index, partition key first."""
    return tuple(name for name, _ in table_or_index.key_schema)
