"""Vector indexes and SearchVectors: similarity search, exact on small indexes.

A vector index (CreateTable's ``VectorIndexes``, UpdateTable's
``VectorIndexUpdates``) holds, for every item whose vector attribute is a list
of numbers of the index's dimensions, one entry in the ``indexes`` space::

    table prefix + index number (2 bytes)
      + [crc32(enc(HASH value)) + enc(HASH value)]    (with a SearchSchema HASH)
      + enc(table pk) + [enc(table sk)]

so a search reads one contiguous range: the whole index, or with a HASH
attribute only the entries of the value the SearchConditionExpression names.
The entry value is ``size (4 bytes) + the vector as little-endian float32
(4 bytes a dimension) + JSON of the projected item without the vector``: the
vector is kept at float32 precision, as DynamoDB keeps it, and a search reads
it without parsing JSON (the JSON is parsed only for an INLINE_FILTER test and
for the results).  The size is the DynamoDB size of the projected item with its
vector: what ItemCount/IndexSizeBytes add up.

``shoal.api.indexes`` keeps these entries in step with every write, in the
writing transaction, through ``entry_key`` and ``entry_value``, and builds or
purges an index added or deleted by UpdateTable with its background job.
Which items are indexed follows the developer guide (VectorSearchDataSync and
"Writing items with vector data"): no vector attribute, or no HASH attribute,
leaves the item out; a vector of the wrong type or dimension, or a HASH value
of the wrong type, refuses the write.

Each worker keeps the vectors of the ranges it searched in memory
(``shoal.api.vector_cache``: a matrix kept exact through the change log), so a
search is one matrix product, not a scan that decodes every entry; the scan
(``_nearest``) is the reference it is checked against, and the fallback.  A
range of many entries (``SHOAL_VECTOR_ANN_MIN_ROWS``) also gets an HNSW graph
(``shoal.api.vector_ann``): the search is then approximate in which entries it
finds, never in their scores, freshness or filters.
"""

from __future__ import annotations

import heapq
import math
import struct
import zlib
from array import array

import orjson

from shoal.api import vector_cache
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.errors import (
    LimitExceededException,
    ResourceInUseException,
    ResourceNotFoundException,
    ValidationException,
)
from shoal.expressions import ast
from shoal.expressions.evaluator import Binder
from shoal.expressions import parse_condition_ast, parse_projection
from shoal.model.keys import encode_key_value
from shoal.model.numbers import normalize_number
from shoal.model.size import item_size

MAX_DIMENSIONS = 4096
MAX_VECTOR_INDEXES = 5  # per table
MAX_TOP_K = 100
DISTANCES = ("COSINE", "EUCLIDEAN", "DOT_PRODUCT")

# The write path's vector messages end DynamoDB's head with a full stop.
INVALID_VECTOR = INVALID[:-2] + ". "

_SIZE = struct.Struct(">I")
_LITTLE = struct.pack("=I", 1) == struct.pack("<I", 1)  # array("f") is in native byte order

# DynamoDB's words (developer guide, "Troubleshooting vector indexes", and
# responses recorded from DynamoDB where the guide abbreviates them).
NO_SUCH_INDEX = "The table does not have the specified index: {}"
BACKFILLING = "Cannot search backfilling vector index: {}"
HASH_REQUIRED = "SearchConditionExpression must be provided when SearchSchema has a HASH key"
BAD_COMPARATOR = "Invalid SearchConditionExpression: Invalid comparator used in SearchConditionExpression"
NOT_IN_SCHEMA = "SearchConditionExpression must not contain any attributes that is not in SearchSchema. " \
                "Invalid attribute: {}"
TOP_K_RANGE = "Provided TopK value '{}' is out of valid range. The value must be between 1 and 100 inclusive"
SEARCH_DIMENSION = "Input search vector dimension {} does not match vector index dimension {}"
SEARCH_VALUES = "Search vector contains invalid values. All values in the search vector must be a 32-bit " \
                "floating-point number attribute"
ONLY_ON_DEMAND = INVALID + "Vector indexes are only supported for PAY_PER_REQUEST tables"
COUNT_LIMIT_CREATE = INVALID + f"VectorIndex count exceeds the per-table limit of {MAX_VECTOR_INDEXES}"
COUNT_LIMIT_UPDATE = ("Subscriber limit exceeded: Number of vector secondary indexes exceeds per-table limit of "
                      f"{MAX_VECTOR_INDEXES}")
SCHEMA_UNDEFINED = INVALID + "One element in SearchSchema is not defined in attribute definitions"
DIMENSIONS_RANGE = INVALID + f"Number of dimensions must be between 1 and {MAX_DIMENSIONS} inclusive."


# ---------------------------------------------------------------- entries


def entry_key(table, index, item: dict, table_suffix: bytes, strict: bool) -> bytes | None:
    """The storage key of ``item``'s entry in the vector ``index``, or None
    when the item is not in it (no vector attribute, or no HASH attribute).

    With ``strict`` (a write) a vector that is not a list of ``Dimensions``
    numbers, or a HASH or INLINE_FILTER value of the wrong type, raises
    DynamoDB's ValidationException; without it (backfill, old images) such an
    item is simply not indexed.
    """
    spec = index.vector
    value = item.get(spec.attribute)
    if value is None:
        return None
    if vector_bytes(index, value, strict) is None:
        return None
    for name, expected in spec.filters:
        found = item.get(name)
        if found is not None and next(iter(found)) != expected:
            if not strict:
                return None
            raise ValidationException(
                f"{INVALID}Type mismatch for Index Key {name} Expected: {expected} "
                f"Actual: {next(iter(found))} IndexName: {index.name}")
    if spec.hash_type is None:
        return index.prefix + table_suffix
    hash_value = item.get(index.hash_key)
    if hash_value is None:
        return None
    from shoal.api.indexes import _key_bytes  # the key rules (type, empty value, size) of every index

    head = _key_bytes(index, index.hash_key, spec.hash_type, hash_value, strict)
    if head is None:
        return None
    if table.keys is not None:  # encrypted at rest: see common.partition_prefix
        head = table.keys.partition(head)
    return b"".join((index.prefix, zlib.crc32(head).to_bytes(4, "big"), head, table_suffix))


def partition_range(table, index, hash_value: dict | None) -> tuple[bytes, bytes | None]:
    """The [start, stop) range of the entries a search reads."""
    if hash_value is None:
        start = index.prefix
    else:
        (type_, text), = hash_value.items()
        head = encode_key_value(type_, text)
        if table.keys is not None:
            head = table.keys.partition(head)
        start = index.prefix + zlib.crc32(head).to_bytes(4, "big") + head
    return start, _successor(start)


def vector_bytes(index, value: dict, strict: bool) -> bytes | None:
    """The vector attribute's value as float32 bytes, or None (or, with
    ``strict``, DynamoDB's ValidationException) if it is not a list of
    ``Dimensions`` numbers that float32 can hold."""
    spec = index.vector
    name = spec.attribute
    elements = value.get("L")
    if elements is None:
        if not strict:
            return None
        raise ValidationException(
            f"{INVALID_VECTOR}Invalid type for parameter {name}, "
            f"Expected: 32-bit floating point number list IndexName: {index.name}")
    if len(elements) != spec.dimensions:
        if not strict:
            return None
        raise ValidationException(
            f"{INVALID_VECTOR}Invalid size for parameter {name}, "
            f"Expected: {spec.dimensions}, Actual: {len(elements)} IndexName: {index.name}")
    floats = []
    for position, element in enumerate(elements):
        text = element.get("N")
        number = _f32(text) if text is not None else None
        if number is None:
            if not strict:
                return None
            raise ValidationException(
                f"{INVALID_VECTOR}Invalid type for parameter {name}[{position}], "
                f"Expected: 32-bit floating point number, Actual: {next(iter(element))}. IndexName: {index.name}")
        floats.append(number)
    return struct.pack(f"<{len(floats)}f", *floats)


def _f32(text: str) -> float | None:
    """The number as float32 holds it; None beyond float32's range."""
    try:
        return struct.unpack("<f", struct.pack("<f", float(text)))[0]
    except (OverflowError, ValueError):
        return None


def entry_value(index, item: dict) -> bytes:
    """The stored value of ``item``'s entry (see the module docstring)."""
    spec = index.vector
    if index.projected is None:
        projected = item
    else:
        keep = index.projected
        projected = {name: value for name, value in item.items() if name in keep}
    vector = vector_bytes(index, item[spec.attribute], False)
    rest = {name: value for name, value in projected.items() if name != spec.attribute}
    return _SIZE.pack(item_size(projected)) + vector + orjson.dumps(rest)


# ---------------------------------------------------------------- CreateTable and UpdateTable


def check_vector_indexes(request: dict, billing: str, def_names: list[str]) -> set[str]:
    """CreateTable's VectorIndexes rules; returns the attributes their
    SearchSchemas use (so that AttributeDefinitions count them as used)."""
    specs = request.get("VectorIndexes")
    if not specs:
        return set()
    if billing != "PAY_PER_REQUEST":
        raise ValidationException(ONLY_ON_DEMAND)
    taken = {i["IndexName"] for key in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes")
             for i in request.get(key) or ()}
    used: set[str] = set()
    dimensions: dict[str, int] = {}
    for spec in specs:
        used |= check_vector_index(spec, def_names, dimensions)
        if spec["IndexName"] in taken:
            raise ValidationException(f"{INVALID}Duplicate index name: {spec['IndexName']}")
        taken.add(spec["IndexName"])
    if len(specs) > MAX_VECTOR_INDEXES:
        raise ValidationException(COUNT_LIMIT_CREATE)
    return used


def check_vector_index(spec: dict, def_names, dimensions: dict) -> set[str]:
    """One vector index's own rules; ``dimensions`` maps each vector attribute
    to the dimensions of the indexes already checked (they must agree).
    Returns the SearchSchema's attribute names."""
    from shoal.api.tables import _check_projection  # the rules every index's Projection obeys

    attribute = spec["VectorAttribute"]["AttributeName"]
    if not 1 <= spec["Dimensions"] <= MAX_DIMENSIONS:
        raise ValidationException(DIMENSIONS_RANGE)
    if attribute in def_names:
        raise ValidationException(
            f"{INVALID}Conflicting attribute definition for '{attribute}'. An attribute cannot be defined in "
            "AttributeDefinitions when used as a VectorAttribute.")
    if dimensions.setdefault(attribute, spec["Dimensions"]) != spec["Dimensions"]:
        raise ValidationException(
            f"{INVALID}Conflicting attribute definition for '{attribute}'. All VectorIndexes on the same vector "
            "attribute must use the same dimensions.")
    schema = spec.get("SearchSchema") or ()
    names = [e["AttributeName"] for e in schema]
    if any(name not in def_names for name in names):
        raise ValidationException(SCHEMA_UNDEFINED)
    # Not published by DynamoDB; worded as its rules on key schemas are.
    if sum(e["SearchSchemaElementType"] == "HASH" for e in schema) > 1:
        raise ValidationException(f"{INVALID}A SearchSchema can have at most one HASH element. "
                                  f"IndexName: {spec['IndexName']}")
    if len(set(names)) != len(names) or attribute in names:
        raise ValidationException(f"{INVALID}Duplicate attribute in SearchSchema. IndexName: {spec['IndexName']}")
    _check_projection(spec)
    return set(names)


def projected_count(spec: dict) -> int:
    """What a vector index adds to the table's count of projected non-key
    attributes: its NonKeyAttributes, the vector attribute and each
    INLINE_FILTER attribute (the API reference's rule for VectorIndexes)."""
    non_key = spec["Projection"].get("NonKeyAttributes") or ()
    filters = sum(e["SearchSchemaElementType"] == "INLINE_FILTER" for e in spec.get("SearchSchema") or ())
    return len(non_key) + 1 + filters


def description(spec: dict, table_arn: str, status: str) -> dict:
    """The stored VectorIndexDescription, in the API model's member order
    (IndexSizeBytes and ItemCount are added live by DescribeTable)."""
    out = {"IndexName": spec["IndexName"]}
    if spec.get("SearchSchema"):
        out["SearchSchema"] = [{"AttributeName": e["AttributeName"],
                                "SearchSchemaElementType": e["SearchSchemaElementType"]}
                               for e in spec["SearchSchema"]]
    projection = {"ProjectionType": spec["Projection"]["ProjectionType"]}
    if spec["Projection"].get("NonKeyAttributes") is not None:
        projection["NonKeyAttributes"] = sorted(spec["Projection"]["NonKeyAttributes"])
    out["Projection"] = projection
    out["VectorAttribute"] = {"AttributeName": spec["VectorAttribute"]["AttributeName"]}
    out["Dimensions"] = spec["Dimensions"]
    out["DistanceFunction"] = spec["DistanceFunction"]
    out["IndexStatus"] = status
    if status == "CREATING":
        out["Backfilling"] = True
    out["IndexArn"] = f"{table_arn}/index/{spec['IndexName']}"
    return out


def check_update_shape(updates: list) -> None:
    """VectorIndexUpdates' rules checked before the table is looked up: one
    action per element, and one Create or Delete per request (the developer
    guide: "You can add or remove one vector index for each UpdateTable
    operation", refused as for GSIs)."""
    from shoal.api.tables import _ONE_ONLINE_INDEX, _check_projection

    if not updates:
        raise ValidationException(INVALID + "List of VectorIndexUpdates is empty")
    for update in updates:
        actions = [update.get(a) for a in ("Create", "Delete") if update.get(a) is not None]
        if not actions:
            raise ValidationException(
                INVALID + "One of VectorIndexUpdate.Create, VectorIndexUpdate.Delete must not be null")
        if len(actions) > 1:
            raise ValidationException(
                INVALID + "Only one vector index action is allowed per VectorIndexUpdate object")
    if len(updates) > 1:
        raise LimitExceededException(_ONE_ONLINE_INDEX)
    create = updates[0].get("Create")
    if create is not None:
        _check_projection(create)


def apply_update(table, desc: dict, request: dict, numbers: dict, next_index: int) -> tuple[int, list]:
    """Apply the request's one VectorIndexUpdate to ``desc`` (a fresh copy)
    and ``numbers``; return the next index number and the background jobs to
    queue: a new index on a table is CREATING (Backfilling) until its job has
    read every item; a deleted one is DELETING until its entries are purged."""
    from shoal.api.tables import _ONE_ONLINE_INDEX, _check_projected_count, _schema_text, _schema_using

    update = request["VectorIndexUpdates"][0]
    vectors = [dict(spec) for spec in desc.get("VectorIndexes") or ()]
    gsis = desc.get("GlobalSecondaryIndexes") or ()
    if update.get("Delete") is not None:
        name = update["Delete"]["IndexName"]
        for spec in vectors:
            if spec["IndexName"] == name:
                if spec["IndexStatus"] == "DELETING":
                    raise ResourceInUseException(
                        "Attempt to change a resource which is still in use: Index is being deleted.")
                # An index being built may be deleted; another one being built or deleted forbids it.
                if any(s.get("IndexStatus") in ("CREATING", "DELETING") and s["IndexName"] != name
                       for s in (*gsis, *vectors)):
                    raise LimitExceededException(_ONE_ONLINE_INDEX)
                spec.pop("Backfilling", None)
                spec["IndexStatus"] = "DELETING"
                desc["VectorIndexes"] = vectors
                return next_index, [(name, "purge")]
        raise ResourceNotFoundException(f"Requested resource not found: Index {name} for table {desc['TableName']}")
    spec = update["Create"]
    name = spec["IndexName"]
    if desc.get("BillingModeSummary", {}).get("BillingMode") != "PAY_PER_REQUEST":
        raise ValidationException(ONLY_ON_DEMAND)
    definitions = request.get("AttributeDefinitions") or []
    types = dict(table.attribute_types)
    for d in definitions:
        known = types.get(d["AttributeName"])
        if known is not None and known != d["AttributeType"]:
            raise ValidationException(
                f"{INVALID}Attributes cannot be redefined. Please check that your attribute has the same type as "
                f"previously defined. Attribute: {d['AttributeName']}")
    # The SearchSchema's attributes must be defined in this request
    # (recorded from DynamoDB), and the vector attribute must not be a key.
    dimensions = {s["VectorAttribute"]["AttributeName"]: s["Dimensions"] for s in vectors}
    used = check_vector_index(spec, [d["AttributeName"] for d in definitions], dimensions)
    attribute = spec["VectorAttribute"]["AttributeName"]
    if attribute in table.attribute_types:  # a key attribute of the table or of an index
        raise ValidationException(
            f"{INVALID}Attributes cannot be redefined. Please check that your attribute has the same type as "
            f"previously defined. Existing schema: {_schema_text(_schema_using(table, attribute), types)} "
            f"New schema: VectorIndexSchema:[VectorAttribute: key{{{attribute}:L:{spec['Dimensions']}}}]")
    if name in table.index_map or name in table.vector_map:
        raise ValidationException("Attempting to create an index which already exists")
    busy = [s for s in (*gsis, *vectors) if s.get("IndexStatus") in ("CREATING", "DELETING")]
    if busy:
        raise LimitExceededException(_ONE_ONLINE_INDEX)
    if len(vectors) >= MAX_VECTOR_INDEXES:
        raise LimitExceededException(COUNT_LIMIT_UPDATE)
    _check_projected_count([*(desc.get("LocalSecondaryIndexes") or ()), *gsis], [*vectors, spec])
    defined = {d["AttributeName"] for d in desc["AttributeDefinitions"]}
    added = [{"AttributeName": n, "AttributeType": next(d["AttributeType"] for d in definitions
                                                         if d["AttributeName"] == n)}
             for n in sorted(used) if n not in defined]
    if added:
        desc["AttributeDefinitions"] = sorted([*desc["AttributeDefinitions"], *added],
                                              key=lambda d: d["AttributeName"])
    vectors.append(description(spec, desc["TableArn"], "CREATING"))
    desc["VectorIndexes"] = vectors
    numbers[name] = next_index
    return next_index + 1, [(name, "backfill")]


# ---------------------------------------------------------------- SearchVectors


def search_vectors(ctx, request: dict) -> dict:
    """The TopK entries of the index nearest to SearchVector, best first."""
    from shoal.api.common import expression_context

    top_k = request["TopK"]
    if top_k > MAX_TOP_K:  # checked before the table and the index, as DynamoDB does
        raise ValidationException(TOP_K_RANGE.format(top_k))
    exprs = expression_context(request, ("SearchConditionExpression", "ProjectionExpression"), ())
    with ctx.engine.read() as txn:
        table = ctx.catalog.require(txn, ctx.region, request["TableName"])
        name = request["IndexName"]
        index = table.vector_map.get(name)
        if index is None or index.status == "DELETING":
            raise ValidationException(NO_SUCH_INDEX.format(name))
        if index.status != "ACTIVE":
            raise ValidationException(BACKFILLING.format(name))
        spec = index.vector
        query = _search_vector(request["SearchVector"], spec.dimensions)
        hash_value, filters = _search_condition(request.get("SearchConditionExpression"), exprs, index)
        projection = None
        if request.get("ProjectionExpression") is not None:
            projection = parse_projection(request["ProjectionExpression"], exprs)
        if exprs is not None:
            exprs.check_unused()
        best, read = [], 0
        if filters is not None:
            start, stop = partition_range(table, index, hash_value)
            # The worker's in-memory vectors of the range (shoal.api.vector_cache), kept exact
            # through the change log, and above a size their HNSW graph; the scan when they cannot answer.
            found = vector_cache.nearest(txn, table, start, stop, query, spec, filters, top_k,
                                         _scorer(spec.distance, query), _passes)
            best, read = found if found is not None else _nearest(txn, start, stop, query, spec, filters, top_k)
    results = []
    width = 4 + 4 * spec.dimensions
    for score, raw in best:
        item = orjson.loads(memoryview(raw)[width:])
        if projection is not None:  # the vector only when asked for, and the index's float32 copy of it
            if spec.attribute in projection.top_level_names:
                item[spec.attribute] = _vector_value(raw, spec.dimensions)
            item = projection.apply(item)
        results.append({"Item": item, "Score": score})
    out = {"SearchResults": results}
    if request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
        out["ConsumedCapacity"] = {"VectorSearchRequestBytes": float(read)}
    return out


def _search_vector(values: list, dimensions: int) -> array:
    floats = array("f")
    for value in values:
        text = value.get("N") if len(value) == 1 else None
        number = _f32(text) if text is not None else None
        if number is None:
            raise ValidationException(SEARCH_VALUES)
        floats.append(number)
    if len(floats) != dimensions:
        raise ValidationException(SEARCH_DIMENSION.format(len(floats), dimensions))
    return floats


def _search_condition(text: str | None, exprs, index) -> tuple[dict | None, list | None]:
    """The HASH value a search is confined to (None without a HASH) and the
    INLINE_FILTER equalities [(name, {encoded values})] it must meet; None
    for them when the condition can match nothing (two HASH values)."""
    spec = index.vector
    if text is None:
        if spec.hash_type is not None:
            raise ValidationException(HASH_REQUIRED)
        return None, []
    tree = parse_condition_ast(text, "SearchConditionExpression")
    binder = Binder(exprs, "SearchConditionExpression")
    binder.condition(tree)  # the checks every condition gets (placeholders, operand types)
    types = dict(spec.filters)
    if spec.hash_type is not None:
        types[index.hash_key] = spec.hash_type
    equal: dict[str, list] = {}
    for node in _conjuncts(tree):
        if type(node) is not ast.Compare or node.op != "=":
            raise ValidationException(BAD_COMPARATOR)
        left, right = ast.unparen(node.left), ast.unparen(node.right)
        if type(left) is ast.Value:
            left, right = right, left
        if type(left) is not ast.Path or type(right) is not ast.Value:
            raise ValidationException(BAD_COMPARATOR)
        path = binder.resolve_path(left)
        if len(path) != 1 or path[0] not in types:
            raise ValidationException(NOT_IN_SCHEMA.format(path[0]))
        value = binder.value(right)
        (type_, raw), = value.items()
        if type_ != types[path[0]]:
            raise ValidationException(INVALID + "Condition parameter type does not match schema type")
        equal.setdefault(path[0], []).append(value)
    hash_value = None
    if spec.hash_type is not None:
        if index.hash_key not in equal:
            raise ValidationException(HASH_REQUIRED)
        hash_value = equal.pop(index.hash_key)
        if len({_encoded(v) for v in hash_value}) > 1:
            return None, None
        hash_value = hash_value[0]
    filters = []
    for name, values in equal.items():
        wanted = {_encoded(v) for v in values}
        if len(wanted) > 1:
            return None, None  # one attribute equal to two values: nothing can match
        filters.append((name, wanted))
    return hash_value, filters


def _conjuncts(node) -> list:
    node = ast.unparen(node)
    if type(node) is ast.And:
        return [part for operand in node.operands for part in _conjuncts(operand)]
    return [node]


def _encoded(value: dict) -> bytes:
    (type_, text), = value.items()
    return encode_key_value(type_, text)


def _nearest(txn, start: bytes, stop: bytes | None, query: array, spec, filters, top_k: int) -> tuple[list, int]:
    """Score every entry of [start, stop); the ``top_k`` best as (score,
    entry value) in rank order, and the bytes of the entries read."""
    dims = spec.dimensions
    width = 4 + 4 * dims
    score = _scorer(spec.distance, query)
    higher_is_better = spec.distance == "DOT_PRODUCT"
    heap: list = []  # (rank key, sequence, score, value): the worst kept first
    read = 0
    sequence = 0
    for _, value in txn.scan("indexes", start, stop):
        read += len(value)
        if filters and not _passes(value, width, filters):
            continue
        vector = array("f")
        vector.frombytes(bytes(value[4:width]))
        if not _LITTLE:
            vector.byteswap()
        s = score(vector)
        rank = s if higher_is_better else -s  # the heap's smallest rank is the worst kept
        sequence += 1
        entry = (rank, -sequence, s, bytes(value))  # equal scores: the first in key order ranks first
        if len(heap) < top_k:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)
    best = sorted(heap, reverse=True)
    return [(s, value) for _, _, s, value in best], read


def _passes(value, width: int, filters) -> bool:
    item = orjson.loads(memoryview(value)[width:])
    for name, wanted in filters:
        found = item.get(name)
        if found is None or _encoded(found) not in wanted:  # all equalities on one name must hold
            return False
    return True


def _scorer(distance: str, query: array):
    """score(vector) -> float for one distance function, as the API reference
    defines them: COSINE the cosine distance 1 - cos (0 identical .. 2
    opposite), EUCLIDEAN the L2 distance, DOT_PRODUCT the inner product.
    Computed in double precision on the float32 values, then rounded to
    float32, the precision the index keeps."""
    if distance == "DOT_PRODUCT":
        return lambda v: _to_f32(math.fsum(map(float.__mul__, query, v)))
    if distance == "EUCLIDEAN":
        return lambda v: _to_f32(math.dist(query, v))
    query_norm = math.sqrt(math.fsum(x * x for x in query))

    def cosine(v) -> float:
        norm = math.sqrt(math.fsum(x * x for x in v)) * query_norm
        if norm == 0.0:
            return 1.0  # a zero vector has no direction: neither similar nor opposite
        return _to_f32(min(2.0, max(0.0, 1.0 - math.fsum(map(float.__mul__, query, v)) / norm)))

    return cosine


def _to_f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _vector_value(raw, dims: int) -> dict:
    """The indexed vector as an L of N: each number the shortest decimal
    that reads back as its float32 (the index's copy, not the item's text)."""
    floats = struct.unpack_from(f"<{dims}f", raw, 4)
    return {"L": [{"N": _f32_text(x)} for x in floats]}


def _f32_text(x: float) -> str:
    for digits in range(1, 10):
        text = f"{x:.{digits}g}"
        if _to_f32(float(text)) == x:
            return normalize_number(text)
    return normalize_number(repr(x))


def _successor(prefix: bytes) -> bytes | None:
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


OPERATIONS = {"SearchVectors": search_vectors}
