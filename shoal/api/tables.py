"""The control plane: CreateTable, DescribeTable, ListTables, UpdateTable,
DeleteTable, the tagging operations, DescribeEndpoints and DescribeLimits.

``shoal.api.shapes`` has already checked JSON types, required members, lengths,
patterns and enums against the API model, so the checks here are DynamoDB's
cross-field rules, in DynamoDB's order and with its messages.

Shoal applies every table change at once, so tables are always ``ACTIVE``:
clients that wait for ``ACTIVE`` (boto3 waiters, Terraform) see it on their
first DescribeTable.  The answers of the writes still say what DynamoDB's say
(CreateTable ``CREATING``, UpdateTable ``UPDATING`` for most changes,
DeleteTable ``DELETING``), as clients may read them.  The one exception is a global secondary index added by
UpdateTable: it is ``CREATING`` (Backfilling) until a background job has
indexed the table's items, and a deleted one is ``DELETING`` until its entries
are purged (``shoal.api.indexes``).  A deleted table leaves the catalog at
once; its storage is purged by the same background job runner.  A table
gaining a replica in another region (UpdateTable's ReplicaUpdates,
``shoal.replication``) is UPDATING until the replica is ACTIVE.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import uuid

import orjson

from shoal.api import indexes as index_store
from shoal.api import archival, backups, pitr, resource_policies, streams, vectors
from shoal.api.catalog import (
    INACCESSIBLE,
    STATS_KEY,
    TAGS_KEY,
    Table,
    decode_entry,
    encode_entry,
    read_index_stats,
    read_stats,
    table_arn,
    table_key,
)
from shoal.api.changelog import record_table_change
from shoal.model.decreases import check_decrease
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.errors import (
    LimitExceededException,
    ResourceInUseException,
    ResourceNotFoundException,
    TableNotFoundException,
    ValidationException,
    validation_errors,
)

MAX_CAPACITY_UNITS = 1_000_000_000_000  # beyond this DynamoDB says "out of bounds"
MAX_TAGS = 50
MAX_LSI = 5
MAX_GSI = 20
MAX_KEY_ATTRIBUTES = 4  # per key (partition or sort) of a GSI with multi-attribute keys
MAX_GSI_KEY_ELEMENTS = 2 * MAX_KEY_ATTRIBUTES
MAX_PROJECTED = 100  # NonKeyAttributes over all the indexes of a table
PURGE_CHUNK = 1000  # keys deleted per transaction by purge_prefix

# DynamoDB's default quotas (us-east-1), as DescribeLimits reports them.
LIMITS = {
    "AccountMaxReadCapacityUnits": 80000,
    "AccountMaxWriteCapacityUnits": 80000,
    "TableMaxReadCapacityUnits": 40000,
    "TableMaxWriteCapacityUnits": 40000,
}

TABLE_CLASSES = ("STANDARD", "STANDARD_INFREQUENT_ACCESS")

#: The warm throughput of a new on-demand table or GSI (the Developer Guide's "Understanding DynamoDB
#: warm throughput in different scenarios"), as ``shoal.capacity.on_demand`` serves it at once; a
#: server whose tests lower those numbers (SHOAL_ON_DEMAND_*_UNITS) reports the lowered ones.
ON_DEMAND_WARM = (int(float(os.environ.get("SHOAL_ON_DEMAND_READ_UNITS", 12000))),
                  int(float(os.environ.get("SHOAL_ON_DEMAND_WRITE_UNITS", 4000))))

_NAME_RE = re.compile(r"[a-zA-Z0-9_.-]+\Z")
_TAG_SPECIALS = frozenset("_.:/=+-@")


# ---------------------------------------------------------------- names and ARNs


def parse_table_arn(arn: str) -> tuple[str, str, str]:
    """(region, account, table name) of a table ARN, or DynamoDB's error."""
    if not arn.startswith("arn:"):
        raise ValidationException(f"{INVALID}ARNs must start with 'arn:': {arn}")
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[3] or not parts[4]:
        raise ValidationException(f"Invalid TableArn: Invalid ResourceArn provided as input {arn}")
    if parts[2] != "dynamodb":
        raise ValidationException(f"{INVALID}Provided Arn is not a DynamoDB resource arn: {arn}")
    kind, _, name = parts[5].partition("/")
    if kind != "table" or "/" in name:
        raise ValidationException(
            f"{INVALID}Invalid resource arn provided, only table or stream is accepted. Provided resource arn: {arn}"
        )
    if not 3 <= len(name) <= 255 or not _NAME_RE.match(name):
        raise ValidationException(f"Invalid TableArn: Invalid ResourceArn provided as input {arn}")
    return parts[3], parts[4], name


def parse_resource_arn(arn: str) -> tuple[str, str, str]:
    """``parse_table_arn`` for the tagging operations, which refuse another
    service's ARN (``arn:aws:s3:::bucket``) before looking at its region and account."""
    parts = arn.split(":", 5)
    if parts[0] == "arn" and len(parts) == 6 and parts[2] != "dynamodb":
        raise ValidationException(f"{INVALID}Provided Arn is not a DynamoDB resource arn: {arn}")
    return parse_table_arn(arn)


def check_table_name(name: str, member: str = "tableName") -> None:
    """The Coral errors for a malformed table name (pattern first, then length).

    The API model types TableName as "name or ARN" (1-1024 characters, no
    pattern), so the model-driven validation cannot apply these rules.
    """
    errors = []
    if not _NAME_RE.match(name):
        errors.append(f"Value '{name}' at '{member}' failed to satisfy constraint: "
                      "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
    if len(name) < 3:
        errors.append(f"Value '{name}' at '{member}' failed to satisfy constraint: "
                      "Member must have length greater than or equal to 3")
    elif len(name) > 255:
        errors.append(f"Value '{name}' at '{member}' failed to satisfy constraint: "
                      "Member must have length less than or equal to 255")
    if errors:
        raise ValidationException(validation_errors(errors))


def check_table_class(table_class: str | None) -> None:
    """DynamoDB checks TableClass itself, not as a model enum (``shoal.api.shapes``)."""
    if table_class is not None and table_class not in TABLE_CLASSES:
        raise ValidationException(
            "Invalid table-class parameter provided. Please try again with a valid table-class value: "
            f"[{', '.join(TABLE_CLASSES)}]."
        )


def table_name_of(ctx, text: str) -> str:
    """The table named by a TableName member, which may also be the table's
    ARN; an ARN of a region AWS does not know is refused as DynamoDB's
    recorded answers refuse it (ack-api-quirks DDB-TABLE-442, 2026-10-09)."""
    if text.startswith("arn:"):
        region, account, name = parse_table_arn(text)
        if not region_of_partition(region, text.split(":")[1], ctx.region, any_partition=True):
            raise ValidationException(validation_errors([f"Invalid AWS region in '{text}'"]))
        # Only the table's own ARN names it: authorization checked the ARN as sent.
        if text != table_arn(ctx.region, ctx.account, name):
            raise ResourceNotFoundException(f"Requested resource not found: Table: {text} not found")
        return name
    check_table_name(text)
    return text


@functools.cache
def _partitions() -> dict[str, frozenset[str]]:
    """AWS's partitions and their regions, from botocore's copy of the
    endpoint data (read without importing botocore, as ``shapes`` does)."""
    spec = importlib.util.find_spec("botocore")
    path = os.path.join(os.path.dirname(spec.origin), "data", "partitions.json")
    with open(path, "rb") as source:
        data = orjson.loads(source.read())
    return {p["id"]: frozenset(p["regions"]) for p in data["partitions"]}


def region_of_partition(region: str, partition: str, home: str, any_partition: bool = False) -> bool:
    """Whether ``region`` is a region AWS knows in ``partition``, which must
    be the partition of this deployment's region ``home`` (with
    ``any_partition``: in any partition).  ``home`` itself always counts (a local deployment
    may name a region AWS does not know; it is then in the ``aws`` partition)."""
    partitions = _partitions()
    if region == home:
        return True
    if any_partition:
        return any(region in regions for regions in partitions.values())
    home_partition = next((name for name, regions in partitions.items() if home in regions), "aws")
    return partition == home_partition and region in partitions.get(partition, ())


def source_table(ctx, txn, text: str) -> Table:
    """The table a TableName member (a name or the table's ARN) names, or the
    TableNotFoundException of the backup and recovery operations."""
    try:
        name = table_name_of(ctx, text)
    except ResourceNotFoundException:
        name = None
    table = ctx.catalog.get(txn, ctx.region, name) if name is not None else None
    if table is None or archival.is_archived(table.description):  # an archived table's data is gone
        raise TableNotFoundException(f"Table not found: {text}")
    return table


def _require(ctx, txn, name: str) -> Table:
    """The table, or the control plane's ResourceNotFoundException."""
    table = ctx.catalog.get(txn, ctx.region, name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    return table


# ---------------------------------------------------------------- descriptions


def describe(txn, table: Table, status: str | None = None) -> dict:
    """A TableDescription for responses: the stored one plus the live counters.

    The stored dict is shared with the catalog cache, so this builds a new one.
    """
    count, size = read_stats(txn, table.prefix)
    out = {}
    desc = table.description
    for key, value in desc.items():
        if key == "WarmThroughput":
            continue  # reported on every table, below
        if key in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes", "VectorIndexes"):
            value = [_describe_index(txn, table, spec, key == "GlobalSecondaryIndexes") for spec in value]
        out[key] = value
        if key == "ProvisionedThroughput":
            out["TableSizeBytes"] = size
            out["ItemCount"] = count
    out.update(streams.stream_description(txn, table))
    if table.keys is not None and "SSEDescription" not in out:
        out["SSEDescription"] = ENCRYPTED_AT_REST  # the data directory is encrypted at rest
    if status is not None:
        out["TableStatus"] = status
    out["WarmThroughput"] = {**warm_throughput(desc, desc), "Status": out.get("TableStatus", "ACTIVE")}
    return out


def warm_throughput(part: dict, table_desc: dict) -> dict:
    """The warm throughput DynamoDB reports for a table or a GSI (``part``)
    since November 2024, on every table: what it set or reached
    (WarmThroughput, kept by UpdateTable as throughput changes), and at
    least 12,000 read and 4,000 write units a second on demand, or at least
    its provisioned capacity when provisioned (a provisioned table echoes its
    capacity: 5 and 5 on a 5/5 table, as DynamoDB shows)."""
    stored = part.get("WarmThroughput") or {}
    if _billing_mode(table_desc) == "PAY_PER_REQUEST":
        floor_r, floor_w = ON_DEMAND_WARM
    else:
        settings = part.get("ProvisionedThroughput") or {}
        floor_r, floor_w = settings.get("ReadCapacityUnits") or 1, settings.get("WriteCapacityUnits") or 1
    return {"ReadUnitsPerSecond": max(stored.get("ReadUnitsPerSecond") or 0, floor_r),
            "WriteUnitsPerSecond": max(stored.get("WriteUnitsPerSecond") or 0, floor_w)}


def _keep_warm(part: dict, table_desc: dict) -> None:
    """Before ``part``'s (a table's or GSI's) throughput or billing mode
    changes: keep the warm throughput it has reached, which DynamoDB never
    lowers (a decrease of provisioned capacity leaves it where it was)."""
    part["WarmThroughput"] = {**warm_throughput(part, table_desc), "Status": "ACTIVE"}


#: SSEDescription of a table in a data directory encrypted at rest with
#: Shoal-managed keys (docs/encryption.md); a table created with a KMS
#: SSESpecification keeps its KMS description.
ENCRYPTED_AT_REST = {"Status": "ENABLED", "SSEType": "AES256"}


def _describe_index(txn, table: Table, spec: dict, global_index: bool = False) -> dict:
    """An index description with its live IndexSizeBytes and ItemCount, and
    a GSI's warm throughput."""
    count, size = read_index_stats(txn, table.prefix, table.index_numbers[spec["IndexName"]])
    out = {}
    for key, value in spec.items():
        if key == "WarmThroughput":
            continue
        if key == "IndexArn":
            out["IndexSizeBytes"] = size
            out["ItemCount"] = count
        out[key] = value
    if global_index:
        out["WarmThroughput"] = {**warm_throughput(spec, table.description),
                                 "Status": spec.get("IndexStatus", "ACTIVE")}
    return out


def _now(ctx) -> float:
    return round(ctx.now(), 3)


# ---------------------------------------------------------------- CreateTable


def create_table(ctx, request: dict, *, status: str = "ACTIVE", extra: dict | None = None) -> dict:
    """Create a table, ACTIVE at once; its TableDescription, CREATING, is
    the response (``_created_answer``).

    A restore or an import creates its table CREATING (``status``), with
    ``extra`` members in its description (RestoreSummary), and makes it
    ACTIVE once it is filled; data-plane operations cannot reach it before."""
    name = table_name_of(ctx, request["TableName"])
    check_table_class(request.get("TableClass"))
    _check_required_schema(request)
    billing = request.get("BillingMode") or "PROVISIONED"
    throughput = _check_billing(billing, request.get("ProvisionedThroughput"))
    definitions = _check_definitions(request)
    _check_unsupported_create(request, billing)
    tags = _check_tags(request.get("Tags") or [])
    _check_create_limits(ctx, throughput, request.get("GlobalSecondaryIndexes") or ())

    now = _now(ctx)
    table_id = str(uuid.uuid4())
    desc = _new_description(ctx, request, name, table_id, now, billing, throughput, definitions)
    _check_kms_key(ctx, desc)
    desc["TableStatus"] = status
    if extra:
        desc.update(extra)
    numbers = {spec["IndexName"]: n for n, spec in enumerate(
        (*desc.get("LocalSecondaryIndexes", ()), *desc.get("GlobalSecondaryIndexes", ()),
         *desc.get("VectorIndexes", ())))}
    key = table_key(ctx.region, name)
    raw = encode_entry(ctx.account, table_id, desc, numbers, len(numbers))
    with ctx.engine.write() as txn:
        if txn.get("meta", key) is not None:
            raise ResourceInUseException(f"Table already exists: {name}")
        _check_account_limits(ctx, txn, name, None, desc)
        txn.put("meta", key, raw)
        table = decode_entry(ctx.region, raw, ctx.catalog.keys)
        streams.apply_stream_specification(txn, table, request.get("StreamSpecification"), now, creating=True)
        resource_policies.attach_on_create(ctx, txn, table, request)
        if tags:
            txn.put("meta", TAGS_KEY(table.prefix), orjson.dumps(tags))
        record_table_change(txn, table, "CreateTable", {"Request": request, "TableDescription": desc}, now)
        return {"TableDescription": _created_answer(describe(txn, table), request)}


def _created_answer(out: dict, request: dict) -> dict:
    """CreateTable's answer: the table and its GSIs CREATING, as DynamoDB
    answers (API Reference example; the recorded answers, ack-api-quirks
    DDB-TABLE-148), though Shoal made them ACTIVE already (DescribeTable
    right after says so, as DynamoDB's does within seconds: boto3's
    table_exists waiter returns on its first DescribeTable).  The table's
    WarmThroughput is in the answer only when the request set one: DynamoDB's
    CreateTable answer lacks it otherwise, DescribeTable adds it later
    (DDB-TABLE-033, every recorded shape; the API Reference's example has
    none).  The warm throughput's own Status is left as it is: DynamoDB's
    does not follow the table's (ACTIVE while the table is UPDATING,
    DDB-TABLE-064), and what it says during creation is not recorded."""
    if request.get("WarmThroughput") is None:
        out.pop("WarmThroughput", None)
    if out.get("TableStatus") == "ACTIVE":
        out["TableStatus"] = "CREATING"
    for index in out.get("GlobalSecondaryIndexes") or ():
        if index.get("IndexStatus") == "ACTIVE":
            index["IndexStatus"] = "CREATING"
    return _without_switch_time(out)


def _without_switch_time(desc: dict) -> dict:
    """The BillingModeSummary of CreateTable's response, and of UpdateTable's
    when it switches to on-demand: the mode only, without the
    LastUpdateToPayPerRequestDateTime that DescribeTable shows."""
    summary = desc.get("BillingModeSummary")
    if summary is not None:
        desc["BillingModeSummary"] = {"BillingMode": summary["BillingMode"]}
    return desc


def _check_required_schema(request: dict) -> None:
    """AttributeDefinitions and KeySchema are optional in the API model (a
    table created from a global table source has neither), required here; a
    key schema has at most two elements."""
    errors = [
        f"Value null at '{member}' failed to satisfy constraint: Member must not be null"
        for member, key in (("attributeDefinitions", "AttributeDefinitions"), ("keySchema", "KeySchema"))
        if request.get(key) is None
    ]
    errors += _key_schema_length_errors(request.get("KeySchema"), "keySchema")
    for kind, member, most in (("LocalSecondaryIndexes", "localSecondaryIndexes", 2),
                               ("GlobalSecondaryIndexes", "globalSecondaryIndexes", MAX_GSI_KEY_ELEMENTS)):
        for i, index in enumerate(request.get(kind) or (), 1):
            errors += _key_schema_length_errors(index.get("KeySchema"), f"{member}.{i}.member.keySchema", most)
    if errors:
        raise ValidationException(validation_errors(errors))


def _key_schema_length_errors(schema: list | None, where: str, most: int = 2) -> list[str]:
    """A table's or LSI's key schema has at most 2 elements, a GSI's 8
    (multi-attribute keys: up to four partition and four sort attributes)."""
    if schema is None or len(schema) <= most:
        return []
    shown = ", ".join(
        f"KeySchemaElement(AttributeName={k.get('AttributeName')}, KeyType={k.get('KeyType')})" for k in schema
    )
    return [f"Value '[{shown}]' at '{where}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {most}"]


def _check_billing(billing: str, throughput: dict | None) -> dict | None:
    """The ProvisionedThroughput to record, after DynamoDB's billing-mode rules."""
    if billing == "PAY_PER_REQUEST":
        if throughput is not None:
            raise ValidationException(
                INVALID + "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified "
                "when BillingMode is PAY_PER_REQUEST"
            )
        return None
    if not throughput or not throughput.get("ReadCapacityUnits") or not throughput.get("WriteCapacityUnits"):
        raise ValidationException(
            INVALID + "ReadCapacityUnits and WriteCapacityUnits must both be specified "
            "when BillingMode is PROVISIONED"
        )
    _check_capacity_bounds(throughput)
    return throughput


def _check_capacity_bounds(throughput: dict) -> None:
    for member in ("ReadCapacityUnits", "WriteCapacityUnits"):
        value = throughput[member]
        if value > MAX_CAPACITY_UNITS:
            raise ValidationException(f"Given value {value} for {member} is out of bounds")


def _check_capacity_limits(ctx, throughput: dict, index: str | None = None) -> None:
    """The per-table quotas DescribeLimits reports, which bind each index too."""
    for member in ("ReadCapacityUnits", "WriteCapacityUnits"):
        value, maximum = throughput[member], LIMITS[f"TableMax{member}"]
        if value > maximum:
            requested, scope = (f"{member} for index {index}", "index") if index else (member, "table")
            raise LimitExceededException(
                f"The requested {requested}, {value}, is above the per {scope} maximum for the account in "
                f"{ctx.region}. Per table maximum: {maximum}. Refer to the Amazon DynamoDB Developer Guide "
                "for current limits and how to request higher limits."
            )


def _reserved(desc: dict) -> dict[str, int]:
    """The capacity units a table and its GSIs reserve for the account
    (on-demand tables none: their ProvisionedThroughput reads 0)."""
    if _billing_mode(desc) == "PAY_PER_REQUEST":
        return {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
    parts = (desc, *(g for g in desc.get("GlobalSecondaryIndexes") or () if g.get("IndexStatus") != "DELETING"))
    return {member: sum(int((p.get("ProvisionedThroughput") or {}).get(member) or 0) for p in parts)
            for member in ("ReadCapacityUnits", "WriteCapacityUnits")}


def _check_account_limits(ctx, txn, name: str, before: dict | None, after: dict) -> None:
    """The account quotas DescribeLimits reports (AccountMax*CapacityUnits):
    the units every provisioned table and GSI of the account and region
    reserve, this table's as ``after`` has them.  Only a request that raises
    this table's reservation is refused, so that an account already over its
    quota may still lower it.  Control plane only: one pass over the region's
    tables (parsed once, then cached by the catalog).  DynamoDB's message as
    observed (the API Reference gives none); "Requested" is this table's
    reservation after the request."""
    wanted = _reserved(after)
    had = _reserved(before) if before is not None else {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
    members = [m for m in ("ReadCapacityUnits", "WriteCapacityUnits") if wanted[m] > had[m]]
    if not members:
        return
    others = {m: 0 for m in members}
    for other in ctx.catalog.iter_names(txn, ctx.region):
        if other == name:
            continue
        table = ctx.catalog.get(txn, ctx.region, other)
        if table is not None and table.account == ctx.account:
            reserved = _reserved(table.description)
            for m in members:
                others[m] += reserved[m]
    for m in members:
        limit = LIMITS[f"AccountMax{m}"]
        if others[m] + wanted[m] > limit:
            raise LimitExceededException(
                f"This request would have caused the {m} limit to be exceeded for the account in {ctx.region}. "
                f"Current {m} reserved by the account: {others[m] + had[m]}. Limit: {limit}. "
                f"Requested: {wanted[m]}")


def _check_create_limits(ctx, throughput: dict | None, gsis) -> None:
    if throughput is not None:
        _check_capacity_limits(ctx, throughput)
    for index in gsis:
        if index.get("ProvisionedThroughput") is not None:
            _check_capacity_limits(ctx, index["ProvisionedThroughput"], index["IndexName"])


def _check_definitions(request: dict) -> dict[str, str]:
    """Check KeySchema against AttributeDefinitions; return name -> type."""
    defs = request.get("AttributeDefinitions") or []
    key_schema = request["KeySchema"]
    def_names = [d["AttributeName"] for d in defs]
    if len(key_schema) > len(def_names):
        raise ValidationException("Invalid KeySchema: Some index key attribute have no definition")
    _check_key_schema(key_schema, def_names)
    types: dict[str, str] = {}
    for d in defs:
        if d["AttributeName"] in types:
            raise ValidationException(f"Attribute Name is duplicated: {d['AttributeName']}")
        types[d["AttributeName"]] = d["AttributeType"]
    lsis = request.get("LocalSecondaryIndexes")
    gsis = request.get("GlobalSecondaryIndexes")
    vector_specs = request.get("VectorIndexes")
    if lsis is None and gsis is None and vector_specs is None:
        if len(key_schema) != len(defs):
            raise ValidationException(
                INVALID + "Number of attributes in KeySchema does not exactly match number of "
                "attributes defined in AttributeDefinitions"
            )
        return types
    used = {k["AttributeName"] for k in key_schema}
    if lsis is not None:
        used |= _check_local_indexes(lsis, key_schema, def_names)
    if gsis is not None:
        used |= _check_global_indexes(gsis, def_names, request.get("BillingMode"), lsis)
    used |= vectors.check_vector_indexes(request, request.get("BillingMode") or "PROVISIONED", def_names)
    if len(used) < len(types):
        raise ValidationException(
            f"{INVALID}Some AttributeDefinitions are not used. AttributeDefinitions: "
            f"[{', '.join(def_names)}], keys used: [{', '.join(sorted(used))}]"
        )
    _check_projected_count([*(lsis or ()), *(gsis or ())], vector_specs or ())
    return types


def _check_key_schema(key_schema: list, def_names: list[str]) -> None:
    """The rules every key schema (table or index) obeys."""
    keys = [k["AttributeName"] for k in key_schema]
    if any(k not in def_names for k in keys):
        raise ValidationException(
            f"{INVALID}Some index key attributes are not defined in AttributeDefinitions. "
            f"Keys: [{', '.join(keys)}], AttributeDefinitions: [{', '.join(def_names)}]"
        )
    if len(keys) > 1 and keys[0] == keys[1]:
        raise ValidationException("Both the Hash Key and the Range Key element in the KeySchema have the same name")
    if key_schema[0]["KeyType"] != "HASH":
        raise ValidationException("Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    if len(key_schema) > 1 and key_schema[1]["KeyType"] != "RANGE":
        raise ValidationException("Invalid KeySchema: The second KeySchemaElement is not a RANGE key type")


def _check_gsi_key_schema(key_schema: list, def_names: list[str]) -> None:
    """A GSI's key schema: one attribute per key as for any key schema, or
    multi-attribute keys, up to four HASH elements followed by up to four
    RANGE elements (in the order queries use them), each attribute once.
    The multi-attribute rules answer in DynamoDB's recorded words
    (ack-api-quirks DDB-TABLE-123 and the DDB-TABLE-442 catalogue,
    2026-10-08/09); which rule DynamoDB checks first is not recorded."""
    if len(key_schema) <= 2 and (len(key_schema) < 2 or key_schema[1]["KeyType"] == "RANGE"):
        _check_key_schema(key_schema, def_names)
        return
    keys = [k["AttributeName"] for k in key_schema]
    if any(k not in def_names for k in keys):
        raise ValidationException(
            f"{INVALID}Some index key attributes are not defined in AttributeDefinitions. "
            f"Keys: [{', '.join(keys)}], AttributeDefinitions: [{', '.join(def_names)}]"
        )
    if key_schema[0]["KeyType"] != "HASH":
        raise ValidationException("Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    kinds = [k["KeyType"] for k in key_schema]
    hashes = kinds.count("HASH")
    if kinds != ["HASH"] * hashes + ["RANGE"] * (len(kinds) - hashes):
        raise ValidationException(f"{INVALID}All HASH key attributes must precede RANGE key attributes in the KeySchema")
    for kind, count in (("HASH", hashes), ("RANGE", len(kinds) - hashes)):
        if count > MAX_KEY_ATTRIBUTES:
            raise ValidationException(
                f"{INVALID}The KeySchema exceeds the maximum allowed number of {kind} key attributes")
    if len(set(keys)) < len(keys):
        raise ValidationException("The KeySchema contains multiple key attributes with the same name")


def _check_projection(index: dict) -> None:
    projection = index["Projection"]
    kind = projection.get("ProjectionType")
    if kind is None:
        raise ValidationException(INVALID + "Unknown ProjectionType: null")
    if projection.get("NonKeyAttributes") is not None and kind != "INCLUDE":
        raise ValidationException(f"{INVALID}ProjectionType is {kind}, but NonKeyAttributes is specified")
    non_key = projection.get("NonKeyAttributes")
    if kind == "INCLUDE" and not non_key:
        raise ValidationException(f"{INVALID}ProjectionType is INCLUDE, but NonKeyAttributes is not specified")
    seen: set[str] = set()
    for name in non_key or ():
        if name in seen:
            raise ValidationException(f"{INVALID}Duplicate element in NonKeyAttributes: {name}")
        seen.add(name)


def _check_projected_count(specs, vector_specs=()) -> None:
    """At most 100 NonKeyAttributes over all the indexes of a table (an
    attribute named by two indexes counts twice); a vector index counts its
    vector and INLINE_FILTER attributes too (``vectors.projected_count``)."""
    total = sum(len(spec["Projection"].get("NonKeyAttributes") or ()) for spec in specs)
    total += sum(vectors.projected_count(spec) for spec in vector_specs)
    if total > MAX_PROJECTED:
        raise ValidationException(
            f"{INVALID}Number of projected attributes in all indexes exceeds limit of {MAX_PROJECTED}"
        )


def _check_local_indexes(lsis: list, table_schema: list, def_names: list[str]) -> set[str]:
    if not lsis:
        raise ValidationException(INVALID + "List of LocalSecondaryIndexes is empty")
    if len(table_schema) != 2:
        raise ValidationException(
            INVALID + "Table KeySchema does not have a range key, which is required when "
            "specifying a LocalSecondaryIndex"
        )
    table_hash = table_schema[0]["AttributeName"]
    names: set[str] = set()
    used: set[str] = set()
    for index in lsis:
        schema = index["KeySchema"]
        _check_key_schema(schema, def_names)
        if len(schema) != 2:
            raise ValidationException(
                f"{INVALID}Index KeySchema does not have a range key for index: {index['IndexName']}"
            )
        if schema[0]["AttributeName"] != table_hash:
            raise ValidationException(
                f"{INVALID}Index KeySchema does not have the same leading hash key as table KeySchema "
                f"for index: {index['IndexName']}. index hash key: {schema[0]['AttributeName']}, "
                f"table hash key: {table_hash}"
            )
        _check_projection(index)
        _check_index_name(index["IndexName"], names)
        used.update(k["AttributeName"] for k in schema)
    if len(lsis) > MAX_LSI:
        raise ValidationException(
            f"{INVALID}Number of LocalSecondaryIndexes exceeds per-table limit of {MAX_LSI}"
        )
    return used


def _check_global_indexes(gsis: list, def_names: list[str], billing: str | None, lsis) -> set[str]:
    if not gsis:
        raise ValidationException(INVALID + "List of GlobalSecondaryIndexes is empty")
    names = {i["IndexName"] for i in lsis or ()}
    used: set[str] = set()
    seen: set[str] = set()
    for index in gsis:
        schema = index["KeySchema"]
        _check_gsi_key_schema(schema, def_names)
        _check_projection(index)
        name = index["IndexName"]
        _check_index_throughput(index, billing, updating=False)
        _check_index_name(name, seen)
        if name in names:
            raise ValidationException(f"{INVALID}Duplicate index name: {name}")
        used.update(k["AttributeName"] for k in schema)
    if len(gsis) > MAX_GSI:
        raise ValidationException(
            f"{INVALID}GlobalSecondaryIndex count exceeds the per-table limit of {MAX_GSI}"
        )
    return used


def _check_index_throughput(index: dict, billing: str | None, updating: bool) -> None:
    """A new GSI has its own throughput on a PROVISIONED table, none on an
    on-demand one; CreateTable and UpdateTable word the rule differently."""
    name = index["IndexName"]
    throughput = index.get("ProvisionedThroughput")
    if billing == "PAY_PER_REQUEST":
        if throughput is not None:
            raise ValidationException(INVALID + (
                f"Neither ReadCapacityUnits nor WriteCapacityUnits can be specified for index: {name} "
                "when BillingMode is PAY_PER_REQUEST" if updating else
                f"ProvisionedThroughput should not be specified for index: {name} when BillingMode is PAY_PER_REQUEST"
            ))
        return
    if throughput is None:
        raise ValidationException(INVALID + (
            f"Both ReadCapacityUnits and WriteCapacityUnits must be specified for index: {name}" if updating
            else f"ProvisionedThroughput is not specified for index: {name}"
        ))
    _check_capacity_bounds(throughput)


def _check_index_name(name: str, seen: set[str]) -> None:
    if name in seen:
        raise ValidationException(f"{INVALID}Duplicate index name: {name}")
    seen.add(name)


def _check_unsupported_create(request: dict, billing: str) -> None:
    """Refuse, after validating them, the features Shoal does not offer yet."""
    _check_stream_specification(request.get("StreamSpecification"), creating=True)
    for member in ("GlobalTableSourceArn", "GlobalTableSettingsReplicationMode"):
        if request.get(member) is not None:
            raise ValidationException(f"Shoal does not support {member} yet")


def _check_stream_specification(spec: dict | None, creating: bool, table_name: str = "") -> None:
    """StreamSpecification's shape rules (``streams.apply_stream_specification`` applies it)."""
    if spec is None:
        return
    enabled = spec.get("StreamEnabled")
    view_type = spec.get("StreamViewType")
    if enabled and not view_type:
        raise ValidationException(INVALID + (
            "Table is being created with a stream enabled, UpdateViewType is required" if creating
            else "If stream is being enabled then UpdateViewType is required"))
    if not enabled and view_type:
        raise ValidationException(INVALID + (
            "Table is being created with a stream disabled, UpdateViewType should not be specified" if creating
            else "If stream is being disabled, then UpdateViewType must not be specified"))


def _new_description(ctx, request, name, table_id, now, billing, throughput, types) -> dict:
    """The stored TableDescription of a new table, in DynamoDB's member order."""
    key_schema = [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in request["KeySchema"]]
    desc = {
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in sorted(types.items())],
        "TableName": name,
        "KeySchema": key_schema,
        "TableStatus": "ACTIVE",
        "CreationDateTime": now,
        "ProvisionedThroughput": {
            "NumberOfDecreasesToday": 0,
            "ReadCapacityUnits": throughput["ReadCapacityUnits"] if throughput else 0,
            "WriteCapacityUnits": throughput["WriteCapacityUnits"] if throughput else 0,
        },
        "TableArn": table_arn(ctx.region, ctx.account, name),
        "TableId": table_id,
    }
    if billing == "PAY_PER_REQUEST":
        desc["BillingModeSummary"] = {"BillingMode": billing, "LastUpdateToPayPerRequestDateTime": now}
    arn = desc["TableArn"]
    if request.get("LocalSecondaryIndexes"):
        desc["LocalSecondaryIndexes"] = [_local_index_description(spec, arn)
                                         for spec in request["LocalSecondaryIndexes"]]
    if request.get("GlobalSecondaryIndexes"):
        desc["GlobalSecondaryIndexes"] = [_global_index_description(ctx, spec, arn, billing, "ACTIVE")
                                          for spec in request["GlobalSecondaryIndexes"]]
    if request.get("VectorIndexes"):
        desc["VectorIndexes"] = [vectors.description(spec, arn, "ACTIVE") for spec in request["VectorIndexes"]]
    sse = _sse_description(ctx, request.get("SSESpecification"), creating=True)
    if sse is not None:
        desc["SSEDescription"] = sse
    if request.get("TableClass") is not None:
        desc["TableClassSummary"] = {"TableClass": request["TableClass"]}
    desc["DeletionProtectionEnabled"] = bool(request.get("DeletionProtectionEnabled", False))
    if request.get("OnDemandThroughput") is not None:
        desc["OnDemandThroughput"] = _on_demand(ctx, request["OnDemandThroughput"], None, billing, False)
    if request.get("WarmThroughput") is not None:
        desc["WarmThroughput"] = _warm(ctx, request["WarmThroughput"], desc, desc, creating=True)
    return desc


def _index_head(spec: dict) -> dict:
    projection = {"ProjectionType": spec["Projection"]["ProjectionType"]}
    if spec["Projection"].get("NonKeyAttributes") is not None:
        projection["NonKeyAttributes"] = sorted(spec["Projection"]["NonKeyAttributes"])
    return {
        "IndexName": spec["IndexName"],
        "KeySchema": [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in spec["KeySchema"]],
        "Projection": projection,
    }


def _local_index_description(spec: dict, table_arn_: str) -> dict:
    """The stored LocalSecondaryIndexDescription (IndexSizeBytes and ItemCount
    are added live by ``describe``)."""
    out = _index_head(spec)
    out["IndexArn"] = f"{table_arn_}/index/{spec['IndexName']}"
    return out


def _global_index_description(ctx, spec: dict, table_arn_: str, billing: str, status: str) -> dict:
    """The stored GlobalSecondaryIndexDescription."""
    out = _index_head(spec)
    out["IndexStatus"] = status
    if status == "CREATING":
        out["Backfilling"] = True
    throughput = spec.get("ProvisionedThroughput") if billing != "PAY_PER_REQUEST" else None
    out["ProvisionedThroughput"] = {
        "NumberOfDecreasesToday": 0,
        "ReadCapacityUnits": throughput["ReadCapacityUnits"] if throughput else 0,
        "WriteCapacityUnits": throughput["WriteCapacityUnits"] if throughput else 0,
    }
    if spec.get("OnDemandThroughput") is not None:
        out["OnDemandThroughput"] = _on_demand(ctx, spec["OnDemandThroughput"], None, billing, False,
                                               spec["IndexName"])
    if spec.get("WarmThroughput"):  # DynamoDB accepts an empty one at creation
        mode = {"BillingModeSummary": {"BillingMode": billing}}
        out["WarmThroughput"] = _warm(ctx, spec["WarmThroughput"], out, mode, spec["IndexName"], creating=True)
    out["IndexArn"] = f"{table_arn_}/index/{spec['IndexName']}"
    return out


def _sse_description(ctx, spec: dict | None, creating: bool = False) -> dict | None:
    """What DynamoDB reports for SSESpecification: nothing for the default
    (AWS owned key), a KMS description when a KMS key is asked for.  At
    creation, SSEType KMS without Enabled asks for one, and a KMSMasterKeyId
    needs SSEType KMS."""
    if not spec:
        return None
    enabled = spec.get("Enabled")
    if creating and enabled is None and spec.get("SSEType") == "KMS":
        enabled = True
    if not enabled:
        for member in ("SSEType", "KMSMasterKeyId"):
            if spec.get(member) is not None:
                raise ValidationException(f"{INVALID}{member} can not be specified if Enabled is false")
        return None
    if spec.get("SSEType") == "AES256":
        raise ValidationException(INVALID + "SSEType AES256 is not supported")
    if creating and spec.get("KMSMasterKeyId") is not None and spec.get("SSEType") is None:
        raise ValidationException(INVALID + "SSEType KMS is required if KMSMasterKeyId is specified")
    key = spec.get("KMSMasterKeyId") or "alias/aws/dynamodb"
    if not key.startswith("arn:"):
        key = f"arn:aws:kms:{ctx.region}:{ctx.account}:{key if key.startswith('alias/') else 'key/' + key}"
    return {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": key}


def _check_kms_key(ctx, desc: dict) -> None:
    """Refuse a table description whose KMS key this region cannot use
    (marked in its KMS_KEYS), as DynamoDB refuses CreateTable and UpdateTable
    naming a disabled, pending-deletion or missing key: at once, with KMS's
    exception in a ValidationException, nothing made or changed
    (``control.kms_key_error``; ack-api-quirks DDB-TABLE-020/021/139/461)."""
    sse = desc.get("SSEDescription")
    if sse is None or sse.get("SSEType") != "KMS":
        return
    from shoal.replication import control

    error = control.kms_key_error(ctx.engine, sse["KMSMasterKeyArn"])
    if error is not None:
        raise error


def _on_demand(ctx, spec: dict, current: dict | None, billing: str, updating: bool, index: str | None = None) -> dict:
    """OnDemandThroughput (on-demand tables only); -1 means "no maximum",
    which an update may also set explicitly to clear a maximum.  A maximum
    above the table quota DescribeLimits reports (TableMax*CapacityUnits) is
    refused: the Developer Guide bounds on-demand throughput by that quota,
    and DynamoDB answers LimitExceededException in the words kept here (as
    recorded from its responses; the API Reference gives no message)."""
    out = dict(current or {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": -1})
    where = f"index : {index}" if index is not None else "table"
    for member in ("MaxReadRequestUnits", "MaxWriteRequestUnits"):
        value = spec.get(member)
        if value is None:
            continue
        if billing != "PAY_PER_REQUEST":
            raise ValidationException(_on_demand_on_provisioned(member, updating, index))
        if value < 1 and not (updating and value == -1):
            raise ValidationException(
                f"{INVALID}Requested {member} for OnDemandThroughput for {where} is outside of valid range"
            )
        quota = "TableMaxReadCapacityUnits" if member == "MaxReadRequestUnits" else "TableMaxWriteCapacityUnits"
        if value > LIMITS[quota]:
            raise LimitExceededException(
                f"Subscriber limit exceeded: Requested {member} for OnDemandThroughput for {where} exceeds {quota} "
                f"of the account in region {ctx.region}"
            )
        out[member] = value
    return out


def _on_demand_on_provisioned(member: str, updating: bool, index: str | None) -> str:
    """DynamoDB's refusal of OnDemandThroughput on a provisioned table, as
    recorded (ack-api-quirks DDB-TABLE-038, 2026-10-08): CreateTable's and
    ImportTable's sentence says "when table BillingMode" and ends with a
    period; UpdateTable's says "when the table BillingMode", no period.  A
    GSI's at creation was recorded only as far as "... for OnDemandThroughput
    for index: <IDX> cannot be specified ...": its end follows the table's."""
    if updating:
        return f"{INVALID}{member} for OnDemandThroughput cannot be specified when the table BillingMode is PROVISIONED"
    where = f" for index: {index}" if index is not None else ""
    return f"{INVALID}{member} for OnDemandThroughput{where} cannot be specified when table BillingMode is PROVISIONED."


#: WarmThroughput's members, with the quota and the provisioned member each is compared with.
_WARM_MEMBERS = (("ReadUnitsPerSecond", "TableMaxReadCapacityUnits", "ReadCapacityUnits"),
                 ("WriteUnitsPerSecond", "TableMaxWriteCapacityUnits", "WriteCapacityUnits"))
#: Where CreateTable's message for an on-demand warm throughput below the initial one points.
_ON_DEMAND_INITIAL = ("https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode.html"
                      "#on-demand-capacity-mode-initial")


def _warm(ctx, spec: dict, part: dict, table_desc: dict, index: str | None = None, creating: bool = False) -> dict:
    """The WarmThroughput ``spec`` sets on ``part`` (the table's or a GSI's
    description; ``table_desc`` the table's), after DynamoDB's rules: a
    value may not be lower than what the part has (at creation: the
    on-demand initial throughput, or its provisioned capacity; later: its
    current warm throughput, which DynamoDB never lowers), nor above the
    table quota DescribeLimits reports ("you can pre-warm up to the account's
    table or index quota": LimitExceededException).  Validation comes before
    the quota, as in DynamoDB.  The words are DynamoDB's as recorded from
    its responses (the API Reference gives none); the quota's message was
    recorded only in part and is completed after OnDemandThroughput's."""
    where = f"index {index}" if index is not None else "table"
    if index is not None and all(spec.get(m) is None for m, _, _ in _WARM_MEMBERS):
        raise ValidationException(f"{INVALID}WarmThroughput must have at least one of ReadUnitsPerSecond or "
                                  f"WriteUnitsPerSecond specified for index: {index}")
    on_demand = _billing_mode(table_desc) == "PAY_PER_REQUEST"
    current = warm_throughput(part, table_desc)
    for (member, _, units), initial in zip(_WARM_MEMBERS, ON_DEMAND_WARM):
        value = spec.get(member)
        if value is None:
            continue
        if not creating:
            if value < current[member]:
                raise ValidationException(f"{INVALID}Requested {member} for WarmThroughput for {where} is lower "
                                          "than current WarmThroughput, decreasing WarmThroughput is not supported")
        elif on_demand and value < initial:
            raise ValidationException(f"{INVALID}Requested {member} for WarmThroughput for {where} is lower than "
                                      f"initial throughput for OnDemand. See: {_ON_DEMAND_INITIAL}")
        elif not on_demand and value < ((part.get("ProvisionedThroughput") or {}).get(units) or 0):
            raise ValidationException(f"{INVALID}Requested {member} for WarmThroughput for {where} is lower than "
                                      f"{units} of ProvisionedThroughput")
    for member, quota, _ in _WARM_MEMBERS:
        if spec.get(member) is not None and spec[member] > LIMITS[quota]:
            raise LimitExceededException(f"Subscriber limit exceeded: Requested {member} for WarmThroughput for "
                                         f"{where} exceeds {quota} of the account in region {ctx.region}")
    out = dict(part.get("WarmThroughput") or {})
    for member, _, _ in _WARM_MEMBERS:
        if spec.get(member) is not None:
            out[member] = spec[member]
    out["Status"] = "ACTIVE"
    return out


# ---------------------------------------------------------------- DescribeTable / ListTables


def describe_table(ctx, request: dict) -> dict:
    """The table's current description, with live ItemCount and TableSizeBytes."""
    name = table_name_of(ctx, request["TableName"])
    with ctx.engine.read() as txn:
        return {"Table": describe(txn, _require(ctx, txn, name))}


def list_tables(ctx, request: dict) -> dict:
    """Table names of the caller's region in order, a page of up to Limit (100).

    LastEvaluatedTableName is returned only when more names remain.
    """
    limit = request.get("Limit") or 100
    after = request.get("ExclusiveStartTableName")
    names = []
    with ctx.engine.read() as txn:
        for name in ctx.catalog.iter_names(txn, ctx.region, after):
            if len(names) == limit:
                return {"TableNames": names, "LastEvaluatedTableName": names[-1]}
            names.append(name)
    return {"TableNames": names}


# ---------------------------------------------------------------- DeleteTable


# What DynamoDB's DeleteTable leaves out of the description DescribeTable gives.
_NOT_IN_DELETE_TABLE = ("CreationDateTime", "KeySchema", "AttributeDefinitions",
                        "GlobalSecondaryIndexes", "LocalSecondaryIndexes")


def delete_table(ctx, request: dict) -> dict:
    """Drop a table: gone from the catalog at once, purged from storage in bounded steps.

    One transaction removes the catalog entry, the counters and the tags, ends
    the table's stream, and queues a job (``indexes.schedule_drop``) that
    deletes every other key the table owned: items, index entries and the
    ``meta`` records kept under its prefix (``_owned_ranges``).  The same
    transaction runs the job's first step (``DROP_CHUNK`` keys), so a small
    table is purged entirely before DeleteTable answers; what remains of a
    larger one is deleted by the background job runner (``IndexJobs``), one
    short write transaction per step, resumed after a restart.  Nothing can
    reach the old keys meanwhile: a re-created table gets a new prefix (its
    own uuid4 table id).  Change-log records and the stream history are
    kept: streams may still read them.
    """
    name = table_name_of(ctx, request["TableName"])
    with ctx.engine.write() as txn:
        table = _require(ctx, txn, name)
        if table.description.get("TableStatus") == archival.ARCHIVING:  # an ARCHIVED one may be deleted
            raise archival.refusal(table)
        if table.description.get("DeletionProtectionEnabled"):
            raise ValidationException(
                "Resource cannot be deleted as it is currently protected against deletion. "
                "Disable deletion protection first."
            )
        gsis = table.description.get("GlobalSecondaryIndexes") or ()
        if any(g["IndexStatus"] in ("CREATING", "DELETING") for g in gsis):
            raise ResourceInUseException(
                "Attempt to change a resource which is still in use: "
                "Cannot delete table while indexes are being created, updated, or deleted."
            )
        description = describe(txn, table, "DELETING")
        for member in _NOT_IN_DELETE_TABLE:
            description.pop(member, None)
        response = {"TableDescription": description}
        ranges = _owned_ranges(table)
        if pitr.setting(txn, table) is not None:  # the items stay, as a system backup
            backups.keep_deleted_table(ctx, txn, table)
            ranges = [r for r in ranges if r[0] != "items"]
            pitr.forget(txn, table)
        txn.delete("meta", table_key(ctx.region, name))
        txn.delete("meta", STATS_KEY(table.prefix))
        txn.delete("meta", TAGS_KEY(table.prefix))
        streams.on_table_deleted(txn, table, _now(ctx))
        if table.description.get("Replicas"):  # a global table's replica: the others are told it left
            from shoal.replication.control import leave

            leave(txn, table)
        elif table.description.get("GlobalTableVersion") == "2017.11.29":  # a member leaves its global table
            from shoal.replication.legacy import leave_on_delete

            leave_on_delete(txn, table)
        record_table_change(txn, table, "DeleteTable", {"TableName": table.name}, _now(ctx))
        job_key, job = index_store.schedule_drop(txn, table, ranges)
        index_store.purge_step(txn, job_key, job, index_store.DROP_CHUNK)
    return response


def _owned_ranges(table: Table) -> list[tuple[str, bytes, bytes | None]]:
    """The (space, start, stop) key ranges a deleted table's purge empties, the
    small ``meta`` ones first.  The stream history (``streams/table/`` +
    prefix) is not among them: the streams trimmer forgets it after retention."""
    prefix = table.prefix
    return [
        _under("meta", resource_policies.policy_key(prefix)),  # the table's and its streams' policies
        _under("meta", pitr.setting_key(prefix)),  # shoal.api.pitr: the point-in-time recovery setting
        *data_ranges(table),
    ]


def data_ranges(table: Table) -> list[tuple[str, bytes, bytes | None]]:
    """The key ranges of a table's data and what is kept of it (its items,
    index entries, their counters, the TTL sweep and the index builds), the
    small ``meta`` ones first: what a deleted table's purge empties after
    its settings, and all an archived table's purge empties
    (``shoal.api.archival``)."""
    prefix = table.prefix
    return [
        _under("meta", b"ttl/" + prefix),  # shoal.api.ttl: the TTL setting
        _under("meta", b"ttlpass/" + prefix),  # and the sweeper's position
        _under("meta", b"istats/" + prefix),  # index counters (catalog.INDEX_STATS_KEY)
        ("meta", *index_store.index_jobs_range(prefix)),
        _under("items", prefix),
        _under("indexes", prefix),
        _under("meta", index_store.collection_range(table)),  # LSI item-collection sizes
    ]


def _under(space: str, head: bytes) -> tuple[str, bytes, bytes | None]:
    return space, head, _successor(head)


def purge_prefix(engine, space: str, prefix: bytes, chunk: int = PURGE_CHUNK) -> int:
    """Delete every key of ``space`` starting with ``prefix``, ``chunk`` keys per
    ``engine.write()`` transaction.  Inside ``Engine.group`` (a request under
    group commit) those transactions are one, so this is for small ranges
    and tests; a deleted table is purged by a background job instead."""
    stop = _successor(prefix)
    removed = 0
    while True:
        with engine.write() as txn:
            keys = []
            for key, _ in txn.scan(space, prefix, stop):
                keys.append(key)
                if len(keys) >= chunk:
                    break
            for key in keys:
                txn.delete(space, key)
        removed += len(keys)
        if len(keys) < chunk:
            return removed


def _successor(prefix: bytes) -> bytes | None:
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


# ---------------------------------------------------------------- UpdateTable

# The members DynamoDB names when an UpdateTable changes nothing, in its order
# (it leaves out those present in the request; MultiAccountReplicaReady and
# ReplicaTransitRoleArn are not in the public model).
_NOTHING_TO_UPDATE = (
    "ProvisionedThroughput", "BillingMode", "UpdateStreamEnabled", "GlobalSecondaryIndexUpdates",
    "SSESpecification", "ReplicaUpdates", "MultiAccountReplicaReady", "ReplicaTransitRoleArn",
    "MultiRegionConsistency", "DeletionProtectionEnabled", "OnDemandThroughput", "WarmThroughput",
    "TableClass",
)
# Members that are an update by themselves (StreamSpecification is DynamoDB's
# "UpdateStreamEnabled").
_UPDATES = (
    "ProvisionedThroughput", "BillingMode", "StreamSpecification", "GlobalSecondaryIndexUpdates",
    "SSESpecification", "ReplicaUpdates", "DeletionProtectionEnabled", "OnDemandThroughput",
    "WarmThroughput", "TableClass", "GlobalTableWitnessUpdates", "GlobalTableSettingsReplicationMode",
    "VectorIndexUpdates",
)
# Updates that must come alone, with DynamoDB's name for each.
_ALONE = (
    ("SSESpecification", "Server-Side Encryption modification must be the only operation in the request"),
    ("TableClass", "TableClass modification must be the only operation in the request"),
    ("DeletionProtectionEnabled", "DeletionProtection modification must be the only operation in the request"),
    ("WarmThroughput", "WarmThroughput must be the only operation in the request"),
)
_NOT_YET = ("GlobalTableSettingsReplicationMode",)
# Multi-Region strong consistency: ``shoal.replication.control`` decides.
_CONSISTENCY_MEMBERS = ("MultiRegionConsistency", "GlobalTableWitnessUpdates")
_ONE_ONLINE_INDEX = "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table"


def update_table(ctx, request: dict) -> dict:
    """Change billing mode, throughput, table class, deletion protection,
    encryption, on-demand or warm throughput (applied at once), or create, update or
    delete a global secondary index (creation and deletion finish in the
    background: the index is CREATING, then ACTIVE; DELETING, then gone)."""
    name = table_name_of(ctx, request["TableName"])
    check_table_class(request.get("TableClass"))
    _check_update_shape(request)
    gsi_updates = request.get("GlobalSecondaryIndexUpdates")
    if gsi_updates is not None:
        _check_gsi_update_shape(gsi_updates)
    vector_updates = request.get("VectorIndexUpdates")
    if vector_updates is not None:
        vectors.check_update_shape(vector_updates)
        if any(u.get("Create") is not None or u.get("Delete") is not None for u in gsi_updates or ()):
            raise LimitExceededException(_ONE_ONLINE_INDEX)  # one online index per table, GSI or vector
    with ctx.engine.write() as txn:
        table = _require(ctx, txn, name)
        if table.description.get("TableStatus") == "CREATING":  # a restore or an import is filling it
            raise ResourceInUseException(f"Attempt to change a resource which is still in use: "
                                         f"Table is being created: {name}")
        if archival.is_archived(table.description):
            raise archival.refusal(table)
        # Everything is checked before anything is written: a failure after a
        # write would poison the group commit it shares with other requests.
        _check_stream_specification(request.get("StreamSpecification"), False, name)
        streams.check_stream_specification(txn, table, request.get("StreamSpecification"))
        stream_spec = request.get("StreamSpecification")
        stream_spec = _check_replica_updates(ctx, txn, table, request, stream_spec)
        consistency = any(request.get(m) is not None for m in _CONSISTENCY_MEMBERS)
        if consistency:
            from shoal.replication import control

            control.check_consistency_update(ctx, txn, table, request)
        desc = _updated_description(ctx, table.description, request)
        if request.get("SSESpecification") is not None:
            _check_sse_change(ctx, table, desc)
        numbers, next_index, jobs = table.index_numbers, table.next_index, []
        if gsi_updates:
            numbers = dict(numbers)
            next_index, jobs = _apply_gsi_updates(ctx, table, desc, request, numbers, next_index)
        if vector_updates:
            numbers = dict(numbers)
            next_index, vector_jobs = vectors.apply_update(table, desc, request, numbers, next_index)
            jobs = [*jobs, *vector_jobs]
        if desc.get("VectorIndexes") and _billing_mode(desc) != "PAY_PER_REQUEST":
            raise ValidationException(vectors.ONLY_ON_DEMAND)
        _check_account_limits(ctx, txn, name, table.description, desc)
        if request.get("ReplicaUpdates") is not None:
            from shoal.api.ttl import read_setting
            from shoal.replication.control import apply_replica_updates

            apply_replica_updates(txn, ctx, table, desc, request, read_setting(txn, table.prefix))
        if consistency:
            control.apply_consistency_update(txn, ctx, table, desc, request)
        if (gsi_updates or vector_updates) and table.description.get("Replicas"):
            from shoal.replication import control as replication

            if not request.get(replication.REPLICATED):  # not one another replica sent
                replication.propagate_index_updates(txn, table, request, desc)
        streams.apply_stream_specification(txn, table, stream_spec, _now(ctx))
        raw = encode_entry(table.account, table.table_id, desc, numbers, next_index)
        txn.put("meta", table_key(ctx.region, name), raw)
        updated = decode_entry(ctx.region, raw, ctx.catalog.keys)
        for index_name, kind in jobs:
            index_store.schedule(txn, updated, index_name, numbers[index_name], kind)
        record_table_change(txn, updated, "UpdateTable", {"Request": request, "TableDescription": desc}, _now(ctx))
        out = _with_transitional_status(describe(txn, updated), request)
        if _billing_mode(table.description) != "PAY_PER_REQUEST" and _billing_mode(desc) == "PAY_PER_REQUEST":
            _without_switch_time(out)
        return {"TableDescription": _as_before(out, table.description, request)}


def _check_sse_change(ctx, table: Table, desc: dict) -> None:
    """An SSESpecification change needs the table's current key and the new
    one.  On a table INACCESSIBLE_ENCRYPTION_CREDENTIALS every change (to
    another key, to the AWS managed or the AWS owned key) is refused naming
    the old key; a re-send of the current key was refused before, as
    already encrypted with it (ack-api-quirks DDB-TABLE-333).  Otherwise a
    new key this region cannot use is refused (``_check_kms_key``).  The
    table's other updates go through (DDB-TABLE-325)."""
    from shoal.replication import control

    if control.is_inaccessible(table):
        raise control.inaccessible_error(ctx.engine, table)
    _check_kms_key(ctx, desc)


#: UpdateTable members whose change DynamoDB answers with the table UPDATING
#: (its responses as recorded, ack-api-quirks 2026-10-08/09: throughput
#: DDB-TABLE-058/370, billing mode DDB-TABLE-064, even a PAY_PER_REQUEST resend
#: that changes nothing DDB-TABLE-156, stream DDB-TABLE-050, table class
#: DDB-TABLE-284, a GSI created or deleted DDB-TABLE-148; and the API
#: Reference's UpdateTable example).  DeletionProtectionEnabled and
#: OnDemandThroughput are synchronous (the answer says ACTIVE), a
#: WarmThroughput or SSE change leaves the table ACTIVE and says UPDATING in
#: its own Status (DDB-TABLE-179, DDB-TABLE-371), a GSI's throughput update in
#: its IndexStatus (DDB-TABLE-135/165).  Vector indexes follow GSIs.
_UPDATING_MEMBERS = ("ProvisionedThroughput", "BillingMode", "StreamSpecification", "TableClass")


def _with_transitional_status(out: dict, request: dict) -> dict:
    """UpdateTable's answer: the status DynamoDB's answer gives while the
    change is applied.  Shoal applies every change at once (DescribeTable
    right after says ACTIVE, as DynamoDB's soon does), so only the answer
    carries the transitional status; a status the table itself is in (a
    replica being added: UPDATING) is answered as it is.  A table whose KMS
    key cannot be used goes through UPDATING back to
    INACCESSIBLE_ENCRYPTION_CREDENTIALS, not ACTIVE (DDB-TABLE-325), so its
    answer says UPDATING as an ACTIVE table's does."""
    creates_or_deletes = any(
        u.get("Create") is not None or u.get("Delete") is not None
        for u in (*(request.get("GlobalSecondaryIndexUpdates") or ()), *(request.get("VectorIndexUpdates") or ())))
    if out.get("TableStatus") in ("ACTIVE", INACCESSIBLE) and (
            creates_or_deletes or any(request.get(m) is not None for m in _UPDATING_MEMBERS)):
        out["TableStatus"] = "UPDATING"
    if request.get("WarmThroughput") is not None and "WarmThroughput" in out:
        out["WarmThroughput"]["Status"] = "UPDATING"
    if request.get("SSESpecification") is not None and (out.get("SSEDescription") or {}).get("SSEType") == "KMS":
        out["SSEDescription"] = {**out["SSEDescription"], "Status": "UPDATING"}
    updated = {u["Update"]["IndexName"]: u["Update"] for u in request.get("GlobalSecondaryIndexUpdates") or ()
               if u.get("Update") is not None}
    for index in out.get("GlobalSecondaryIndexes") or ():
        update = updated.get(index["IndexName"])
        if update is None or index.get("IndexStatus") != "ACTIVE":
            continue
        if update.get("ProvisionedThroughput") is not None or update.get("OnDemandThroughput") is not None:
            index["IndexStatus"] = "UPDATING"
        if update.get("WarmThroughput") is not None and "WarmThroughput" in index:
            index["WarmThroughput"]["Status"] = "UPDATING"
    return out


def _as_before(out: dict, before: dict, request: dict) -> dict:
    """UpdateTable's answer repeats what the table had before the call for
    the members DynamoDB changes asynchronously; DescribeTable right after
    shows the new values (Shoal applied them at once, as DynamoDB's does
    once the table is ACTIVE again).  Recorded (ack-api-quirks 2026-10-08/09)
    and in the API Reference's example (10/10 asked, 1/1 answered):

    - a throughput change of a provisioned table: the old read and write
      units and the old NumberOfDecreasesToday, with the new
      LastIncreaseDateTime or LastDecreaseDateTime (DDB-TABLE-060/184);
    - a table class change: the old TableClassSummary, absent if the table
      never had one (DDB-TABLE-180);
    - the warm throughput: the old values (DDB-TABLE-179: its Status says
      UPDATING, the table stays ACTIVE), after a warm throughput, throughput
      or billing change alike (the table's warm throughput moves with them).

    A billing mode switch answers the new mode (DDB-TABLE-060/064: the
    switch to on-demand answers 0/0), and a stream change the requested
    stream (DDB-TABLE-180), so both are left as they are."""
    throughput = request.get("ProvisionedThroughput")
    if (throughput is not None and _billing_mode(before) == "PROVISIONED"
            and (request.get("BillingMode") or "PROVISIONED") == "PROVISIONED"):
        old = before["ProvisionedThroughput"]
        answered = {**out["ProvisionedThroughput"], "ReadCapacityUnits": old["ReadCapacityUnits"],
                    "WriteCapacityUnits": old["WriteCapacityUnits"]}
        if "NumberOfDecreasesToday" in old:
            answered["NumberOfDecreasesToday"] = old["NumberOfDecreasesToday"]
        out["ProvisionedThroughput"] = _ordered_throughput(answered)
    if request.get("TableClass") is not None:
        if "TableClassSummary" in before:
            out["TableClassSummary"] = before["TableClassSummary"]
        else:
            out.pop("TableClassSummary", None)
    if "WarmThroughput" in out:
        out["WarmThroughput"] = {**out["WarmThroughput"], **warm_throughput(before, before)}
    return out


def _check_replica_updates(ctx, txn, table: Table, request: dict, stream_spec: dict | None) -> dict | None:
    """ReplicaUpdates' rules (``shoal.replication.control``) and the stream
    a global table needs: the StreamSpecification UpdateTable applies (a
    first replica enables NEW_AND_OLD_IMAGES if the table has no stream)."""
    legacy = table.description.get("GlobalTableVersion") == "2017.11.29"
    if request.get("ReplicaUpdates") is None:
        if stream_spec is not None and not stream_spec.get("StreamEnabled") and (
                table.description.get("Replicas") or legacy):
            raise ValidationException(
                f"{INVALID}Table {table.name} has replicas: its stream cannot be disabled while it is a global table")
        return stream_spec
    if legacy:  # a table is a replica of one version of global tables only
        raise ValidationException(
            f"{INVALID}Table {table.name} is a replica of a global table of version 2017.11.29: "
            "use UpdateGlobalTable to change its replicas")
    from shoal.replication import control

    control.check_replica_updates(ctx, table, request)
    if not any(u.get("Create") is not None for u in request["ReplicaUpdates"]):
        return stream_spec

    def view_of(txn, table):
        spec = streams.stream_description(txn, table).get("StreamSpecification")
        return spec["StreamViewType"] if spec else None

    return control.stream_for_replicas(txn, table, view_of) or stream_spec


def _check_gsi_update_shape(updates: list) -> None:
    """DynamoDB's rules on a GlobalSecondaryIndexUpdates list, checked before
    the table is looked up: one action per element, one per index, and at
    most one Create or Delete."""
    seen: set[str] = set()
    online = 0
    for update in updates:
        actions = [update.get(a) for a in ("Update", "Create", "Delete") if update.get(a) is not None]
        if not actions:
            raise ValidationException(
                INVALID + "One of GlobalSecondaryIndexUpdate.Update, GlobalSecondaryIndexUpdate.Create, "
                "GlobalSecondaryIndexUpdate.Delete must not be null"
            )
        if len(actions) > 1:
            raise ValidationException(
                INVALID + "Only one global secondary index action is allowed per GlobalSecondaryIndexUpdate object"
            )
        name = actions[0]["IndexName"]
        if name in seen:
            raise ValidationException(
                f"{INVALID}Only one global secondary index update per index is allowed simultaneously. "
                f"Index: {name}"
            )
        seen.add(name)
        online += update.get("Update") is None
    if online > 1:
        raise LimitExceededException(_ONE_ONLINE_INDEX)
    for update in updates:
        create = update.get("Create")
        if create is not None:
            errors = _key_schema_length_errors(create.get("KeySchema"), "globalSecondaryIndexUpdates.1.member.create.keySchema",
                                               MAX_GSI_KEY_ELEMENTS)
            if errors:
                raise ValidationException(validation_errors(errors))
            _check_projection(create)


def _apply_gsi_updates(ctx, table: Table, desc: dict, request: dict, numbers: dict,
                       next_index: int) -> tuple[int, list]:
    """Apply GlobalSecondaryIndexUpdates to ``desc`` (a fresh copy) and
    ``numbers``; return the next index number and the background jobs to queue."""
    gsis = [dict(spec) for spec in desc.get("GlobalSecondaryIndexes") or ()]
    billing = _billing_mode(desc)
    jobs = []
    for update in request["GlobalSecondaryIndexUpdates"]:
        if update.get("Create") is not None:
            spec = update["Create"]
            _check_gsi_create(ctx, table, desc, gsis, spec, request.get("AttributeDefinitions"), billing)
            gsis.append(_global_index_description(ctx, spec, desc["TableArn"], billing, "CREATING"))
            numbers[spec["IndexName"]] = next_index
            next_index += 1
            jobs.append((spec["IndexName"], "backfill"))
        elif update.get("Delete") is not None:
            current = _find_gsi(desc, gsis, update["Delete"]["IndexName"], "delete")
            current.pop("Backfilling", None)
            current["IndexStatus"] = "DELETING"
            jobs.append((current["IndexName"], "purge"))
        else:
            _update_gsi_throughput(ctx, desc, gsis, update["Update"], billing)
    desc["GlobalSecondaryIndexes"] = gsis
    return next_index, jobs


def _find_gsi(desc: dict, gsis: list, name: str, action: str) -> dict:
    """The GSI an Update or Delete (``action``) names, or DynamoDB's error."""
    for spec in gsis:
        if spec["IndexName"] == name:
            if spec["IndexStatus"] == "DELETING":
                raise ResourceInUseException(
                    "Attempt to change a resource which is still in use: Index is being deleted."
                )
            return spec
    if any(spec["IndexName"] == name for spec in desc.get("LocalSecondaryIndexes") or ()):
        raise ValidationException(f"Cannot {action} an index that is not a GlobalSecondaryIndex: {name}")
    raise ResourceNotFoundException(f"Requested resource not found: Index {name} for table {desc['TableName']}")


def _schema_using(table: Table, name: str) -> list[tuple[str, str]]:
    """The key schema (the table's, or an index's) that defines ``name``."""
    for schema in (table.key_schema, *(index.key_schema for index in table.index_map.values())):
        if any(attr == name for attr, _ in schema):
            return schema
    return [(name, "HASH")]


def _schema_text(schema, types: dict) -> str:
    """A key schema as DynamoDB prints it in messages:
    ``Schema:[SchemaElement: key{xyz:S:HASH}]``."""
    elements = ", ".join(f"SchemaElement: key{{{name}:{types.get(name)}:{kind}}}" for name, kind in schema)
    return f"Schema:[{elements}]"


def _check_gsi_create(ctx, table: Table, desc: dict, gsis: list, spec: dict, definitions, billing: str) -> None:
    """The rules a new GSI obeys; adds its key attributes' definitions to ``desc``."""
    if not definitions:
        raise ValidationException(f"{INVALID}AttributeDefinitions is not specified for index: {spec['IndexName']}")
    types = dict(table.attribute_types)
    for d in definitions:
        known = types.get(d["AttributeName"])
        if known is not None and known != d["AttributeType"]:
            new_types = {**types, **{x["AttributeName"]: x["AttributeType"] for x in definitions}}
            raise ValidationException(
                f"{INVALID}Attributes cannot be redefined. Please check that your attribute has the same type as "
                "previously defined. Existing schema: "
                f"{_schema_text(_schema_using(table, d['AttributeName']), table.attribute_types)} New schema: "
                f"{_schema_text([(k['AttributeName'], k['KeyType']) for k in spec['KeySchema']], new_types)}"
            )
        types[d["AttributeName"]] = d["AttributeType"]
    _check_gsi_key_schema(spec["KeySchema"], list(types))
    name = spec["IndexName"]
    if name in table.index_map:
        raise ValidationException("Attempting to create an index which already exists")
    if any(g["IndexStatus"] in ("CREATING", "DELETING") for g in (*gsis, *(desc.get("VectorIndexes") or ()))):
        raise LimitExceededException(_ONE_ONLINE_INDEX)
    if len(gsis) >= MAX_GSI:
        raise LimitExceededException(
            f"Subscriber limit exceeded: Number of global secondary indexes exceeds per-table limit of {MAX_GSI}"
        )
    _check_index_throughput(spec, billing, updating=True)
    if billing != "PAY_PER_REQUEST":
        _check_capacity_limits(ctx, spec["ProvisionedThroughput"], name)
    _check_projected_count([*(desc.get("LocalSecondaryIndexes") or ()), *gsis, spec],
                           desc.get("VectorIndexes") or ())
    defined = {d["AttributeName"] for d in desc["AttributeDefinitions"]}
    added = [{"AttributeName": k["AttributeName"], "AttributeType": types[k["AttributeName"]]}
             for k in spec["KeySchema"] if k["AttributeName"] not in defined]
    if added:
        desc["AttributeDefinitions"] = sorted([*desc["AttributeDefinitions"], *added],
                                              key=lambda d: d["AttributeName"])


def _update_gsi_throughput(ctx, desc: dict, gsis: list, spec: dict, billing: str) -> None:
    name = spec["IndexName"]
    current = _find_gsi(desc, gsis, name, "update")
    throughput = spec.get("ProvisionedThroughput")
    if throughput is not None:
        if billing == "PAY_PER_REQUEST":
            raise ValidationException(
                f"{INVALID}The only Updates for index: {name} when TableThroughputMode is PAY_PER_REQUEST "
                "can be to OnDemandThroughput, WarmThroughput"
            )
        _check_capacity_bounds(throughput)
        _check_capacity_limits(ctx, throughput, name)
        _check_throughput_changes(current["ProvisionedThroughput"], throughput, f"index {name}")
        check_decrease(current["ProvisionedThroughput"], throughput, _now(ctx))  # the daily budget, per index
        _keep_warm(current, desc)
        current["ProvisionedThroughput"] = _changed_throughput(current["ProvisionedThroughput"], throughput,
                                                               _now(ctx))
    if spec.get("OnDemandThroughput") is not None:
        current["OnDemandThroughput"] = _on_demand(ctx, spec["OnDemandThroughput"],
                                                   current.get("OnDemandThroughput"), billing, True, name)
    if spec.get("WarmThroughput") is not None:
        current["WarmThroughput"] = _warm(ctx, spec["WarmThroughput"], current, desc, name)
    # Keep DynamoDB's member order: IndexArn last.
    current["IndexArn"] = current.pop("IndexArn")


def _check_update_shape(request: dict) -> None:
    """The rules on which members an UpdateTable combines, then what Shoal
    cannot do yet; all before the table is looked up, as in DynamoDB."""
    # An empty GlobalSecondaryIndexUpdates counts as absent for "at least
    # one"; beside another change it is refused itself (DynamoDB, verified).
    empty_gsi_updates = request.get("GlobalSecondaryIndexUpdates") == []

    def absent(member: str) -> bool:
        return request.get(member) is None or (member == "GlobalSecondaryIndexUpdates" and empty_gsi_updates)

    present = [m for m in _UPDATES if not absent(m)]
    if not present:
        listed = [m for m in _NOTHING_TO_UPDATE if absent(m)]
        raise ValidationException(f"At least one of {', '.join(listed[:-1])} or {listed[-1]} is required")
    if empty_gsi_updates:
        raise ValidationException(INVALID + "List of GlobalSecondaryIndexUpdates is empty")
    if len(present) > 1:
        for member, message in _ALONE:
            if member in present:
                raise ValidationException(INVALID + _alone_message(request, member, message))
        if "OnDemandThroughput" in present and set(present) - {"OnDemandThroughput", "BillingMode"}:
            raise ValidationException(
                INVALID + "OnDemandThroughput can only be combined with BillingMode in an UpdateTable request"
            )
        _check_forbidden_pairs(request)
    _check_billing_update(request)
    throughput = request.get("ProvisionedThroughput")
    if throughput is not None:
        _check_capacity_bounds(throughput)
    for member in _NOT_YET:
        if request.get(member) is not None:
            raise ValidationException(f"Shoal does not support {member} in UpdateTable yet")


def _alone_message(request: dict, member: str, message: str) -> str:
    """WarmThroughput beside an index creation gets a message of its own."""
    creates = any(u.get("Create") is not None for u in request.get("GlobalSecondaryIndexUpdates") or ())
    if member == "WarmThroughput" and creates:
        return "Create global secondary index cannot be specified when updating WarmThroughput"
    return message


def _check_forbidden_pairs(request: dict) -> None:
    """Changes DynamoDB will not make in one UpdateTable: an index created or
    deleted beside a throughput or stream change, a stream beside throughput."""
    online = any(u.get("Create") is not None or u.get("Delete") is not None
                 for u in (*(request.get("GlobalSecondaryIndexUpdates") or ()),
                           *(request.get("VectorIndexUpdates") or ())))
    throughput = request.get("ProvisionedThroughput") is not None
    stream = request.get("StreamSpecification") is not None
    if online and throughput:
        raise ValidationException(INVALID + "You cannot create or delete index while updating table IOPS")
    if online and stream:
        raise ValidationException(INVALID + "You cannot create or delete index while changing stream status")
    if stream and throughput:
        raise ValidationException(INVALID + "You cannot modify stream status while updating table IOPS")


def _check_billing_update(request: dict) -> None:
    """An explicit BillingMode decides whether ProvisionedThroughput belongs in
    the request, whatever the table's mode is now."""
    mode = request.get("BillingMode")
    throughput = request.get("ProvisionedThroughput")
    if mode == "PROVISIONED" and throughput is None:
        raise ValidationException(INVALID + "ProvisionedThroughput must be specified when BillingMode is PROVISIONED")
    if mode == "PAY_PER_REQUEST" and throughput is not None:
        raise ValidationException(
            INVALID + "ProvisionedThroughput cannot be specified when BillingMode is PAY_PER_REQUEST"
        )


def _updated_description(ctx, current: dict, request: dict) -> dict:
    """A new TableDescription with the request's changes (``current`` is shared
    with the catalog cache and stays untouched)."""
    desc = dict(current)
    now = _now(ctx)
    _apply_billing(ctx, desc, request, now)
    table_class = request.get("TableClass")
    # STANDARD on a table that never chose a class is no change (DynamoDB, verified).
    if table_class is not None and not (table_class == "STANDARD" and "TableClassSummary" not in desc):
        desc["TableClassSummary"] = {"TableClass": table_class, "LastUpdateDateTime": now}
    if request.get("SSESpecification") is not None:
        _apply_sse(ctx, desc, request["SSESpecification"])
    if request.get("DeletionProtectionEnabled") is not None:
        desc["DeletionProtectionEnabled"] = request["DeletionProtectionEnabled"]
    if request.get("OnDemandThroughput") is not None:
        desc["OnDemandThroughput"] = _on_demand(
            ctx, request["OnDemandThroughput"], desc.get("OnDemandThroughput"), _billing_mode(desc), True
        )
    if request.get("WarmThroughput") is not None:
        desc["WarmThroughput"] = _warm(ctx, request["WarmThroughput"], desc, desc)
    return desc


def _apply_sse(ctx, desc: dict, spec: dict) -> None:
    """Switch between the default encryption (AWS owned key, no
    SSEDescription) and a KMS key, or from one KMS key to another."""
    current = desc.get("SSEDescription")
    wanted = _sse_description(ctx, spec)
    if wanted is None:
        if current is None:
            raise ValidationException(INVALID + "Table is already encrypted by default")
        del desc["SSEDescription"]
        return
    if current is not None and current.get("KMSMasterKeyArn") == wanted["KMSMasterKeyArn"]:
        raise ValidationException(
            INVALID + "Table is already encrypted with given KMSMasterKeyId. "
            "Use KMSMasterKeyId parameter if you want to change Master Key"
        )
    desc["SSEDescription"] = wanted


def _billing_mode(desc: dict) -> str:
    summary = desc.get("BillingModeSummary")
    return summary["BillingMode"] if summary else "PROVISIONED"


def _apply_billing(ctx, desc: dict, request: dict, now: float) -> None:
    """BillingMode and ProvisionedThroughput changes, with DynamoDB's rules."""
    current_mode = _billing_mode(desc)
    mode = request.get("BillingMode") or current_mode
    throughput = request.get("ProvisionedThroughput")
    if throughput is not None and mode != "PAY_PER_REQUEST":
        _check_capacity_limits(ctx, throughput)
    if mode != current_mode or throughput is not None:
        before = dict(desc)
        _keep_warm(desc, before)
        if mode != current_mode and desc.get("GlobalSecondaryIndexes"):
            desc["GlobalSecondaryIndexes"] = [dict(g) for g in desc["GlobalSecondaryIndexes"]]
            for g in desc["GlobalSecondaryIndexes"]:
                _keep_warm(g, before)
    if mode == "PAY_PER_REQUEST":
        if throughput is not None:  # sent without BillingMode (_check_billing_update has the other case)
            raise ValidationException(
                INVALID + "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified "
                "when BillingMode is PAY_PER_REQUEST"
            )
        if current_mode != "PAY_PER_REQUEST":
            desc["BillingModeSummary"] = {"BillingMode": mode, "LastUpdateToPayPerRequestDateTime": now}
            desc["ProvisionedThroughput"] = {**desc["ProvisionedThroughput"], "ReadCapacityUnits": 0,
                                             "WriteCapacityUnits": 0}
            if desc.get("GlobalSecondaryIndexes"):  # on-demand indexes have no throughput either
                desc["GlobalSecondaryIndexes"] = [
                    {**g, "ProvisionedThroughput": {**g["ProvisionedThroughput"], "ReadCapacityUnits": 0,
                                                    "WriteCapacityUnits": 0}}
                    for g in desc["GlobalSecondaryIndexes"]]
        return
    if current_mode == "PAY_PER_REQUEST":  # throughput is given: _check_billing_update
        _check_index_throughputs_given(desc, request)
        summary = {"BillingMode": "PROVISIONED"}
        last = desc["BillingModeSummary"].get("LastUpdateToPayPerRequestDateTime")
        if last is not None:
            summary["LastUpdateToPayPerRequestDateTime"] = last
        desc["BillingModeSummary"] = summary
        desc.pop("OnDemandThroughput", None)
        desc["ProvisionedThroughput"] = _changed_throughput(desc["ProvisionedThroughput"], throughput, now)
        return
    if throughput is not None:
        _check_throughput_changes(desc["ProvisionedThroughput"], throughput)
        check_decrease(desc["ProvisionedThroughput"], throughput, now)  # the daily budget for decreases
        desc["ProvisionedThroughput"] = _changed_throughput(desc["ProvisionedThroughput"], throughput, now)


def _check_index_throughputs_given(desc: dict, request: dict) -> None:
    """A switch to PROVISIONED gives every index its throughput in the same
    call (the GSI Updates apply it in ``_apply_gsi_updates``)."""
    given = {u["Update"]["IndexName"] for u in request.get("GlobalSecondaryIndexUpdates") or ()
             if u.get("Update") is not None and u["Update"].get("ProvisionedThroughput") is not None}
    for spec in desc.get("GlobalSecondaryIndexes") or ():
        if spec["IndexStatus"] != "DELETING" and spec["IndexName"] not in given:
            raise ValidationException(
                f"{INVALID}ProvisionedThroughput must be specified for index: {spec['IndexName']}"
            )


def _check_throughput_changes(current: dict, requested: dict, subject: str = "the table") -> None:
    """Refuse a throughput change that changes nothing; ``subject`` is "the
    table" or "index <name>" (DynamoDB says "for the index <name>" first)."""
    old_r, old_w = current["ReadCapacityUnits"], current["WriteCapacityUnits"]
    new_r, new_w = requested["ReadCapacityUnits"], requested["WriteCapacityUnits"]
    if (old_r, old_w) == (new_r, new_w):
        whose = "the table" if subject == "the table" else f"the {subject}"
        raise ValidationException(
            f"The provisioned throughput for {whose} will not change. The requested value equals "
            f"the current value. Current ReadCapacityUnits provisioned for {subject}: {old_r}. "
            f"Requested ReadCapacityUnits: {new_r}. Current WriteCapacityUnits provisioned for "
            f"{subject}: {old_w}. Requested WriteCapacityUnits: {new_w}. Refer to the Amazon DynamoDB "
            "Developer Guide for current limits and how to request higher limits."
        )


def _changed_throughput(current: dict, requested: dict, now: float) -> dict:
    """The ProvisionedThroughput description after a change: increases and
    decreases are stamped, decreases counted per UTC day."""
    out = dict(current)
    old_r, old_w = current["ReadCapacityUnits"], current["WriteCapacityUnits"]
    new_r, new_w = requested["ReadCapacityUnits"], requested["WriteCapacityUnits"]
    if new_r > old_r or new_w > old_w:
        out["LastIncreaseDateTime"] = now
    if (new_r < old_r or new_w < old_w) and (old_r or old_w):
        last = current.get("LastDecreaseDateTime")
        same_day = last is not None and int(last // 86400) == int(now // 86400)
        out["NumberOfDecreasesToday"] = (current.get("NumberOfDecreasesToday", 0) if same_day else 0) + 1
        out["LastDecreaseDateTime"] = now
    out["ReadCapacityUnits"] = new_r
    out["WriteCapacityUnits"] = new_w
    return _ordered_throughput(out)


def _ordered_throughput(pt: dict) -> dict:
    order = ("LastIncreaseDateTime", "LastDecreaseDateTime", "NumberOfDecreasesToday",
             "ReadCapacityUnits", "WriteCapacityUnits")
    return {k: pt[k] for k in order if k in pt}


# ---------------------------------------------------------------- tags


def _check_tags(tags: list) -> list[dict]:
    """A request's tags, checked: characters, the reserved prefix, one entry
    per key, at most 50."""
    seen: set[str] = set()
    for tag in tags:
        key, value = tag.get("Key"), tag.get("Value")
        if key is None or not _valid_tag_text(key):
            raise ValidationException(f"The Tag Key provided is invalid, Key: {key}")
        if value is None or not _valid_tag_text(value):
            raise ValidationException(f"The Tag Value provided is invalid, Value: {value}")
        if key.startswith("aws:"):
            raise ValidationException(f"Tag Key cannot be prefixed with aws:, Key: {key}")
        if key in seen:
            raise ValidationException(f"Duplicate Tag Keys provided as input: Duplicate Tag Key found {key}")
        seen.add(key)
    _check_tag_count(len(seen))
    return [{"Key": t["Key"], "Value": t["Value"]} for t in tags]


def _check_tag_count(count: int) -> None:
    if count > MAX_TAGS:
        raise ValidationException("Number of Tags exceed the current limit for the provided ResourceArn")


def _valid_tag_text(text: str) -> bool:
    """Letters, digits, white space and ``_ . : / = + - @`` (1-128 / 0-256
    characters, which the model-driven validation checks)."""
    return all(c.isalnum() or c.isspace() or c in _TAG_SPECIALS for c in text)


def _tagged_table(ctx, txn, arn: str) -> Table:
    """The table an ARN names, or DynamoDB's errors for ARNs."""
    region, account, name = parse_resource_arn(arn)
    if region != ctx.region:
        raise ValidationException(f"Invalid TableArn: Invalid ResourceArn provided as input {arn}")
    # Only the table's own ARN names it (not another partition's): authorization checked the ARN as sent.
    table = ctx.catalog.get(txn, region, name) if arn == table_arn(region, ctx.account, name) else None
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: ResourcArn: {arn} not found")
    return table


def _stored_tags(txn, table: Table) -> list[dict]:
    raw = txn.get("meta", TAGS_KEY(table.prefix))
    return orjson.loads(raw) if raw else []


def tag_resource(ctx, request: dict) -> bytes:
    """Add or overwrite tags of a table (at most 50 per table)."""
    arn = request["ResourceArn"]
    parse_resource_arn(arn)
    if not request.get("Tags"):
        raise ValidationException("Atleast one Tag needs to be provided as Input.")
    new = _check_tags(request["Tags"])
    with ctx.engine.write() as txn:
        table = _tagged_table(ctx, txn, arn)
        merged = {t["Key"]: t["Value"] for t in _stored_tags(txn, table)}
        merged.update((t["Key"], t["Value"]) for t in new)
        _check_tag_count(len(merged))
        tags = [{"Key": k, "Value": v} for k, v in merged.items()]
        txn.put("meta", TAGS_KEY(table.prefix), orjson.dumps(tags))
        record_table_change(txn, table, "TagResource", {"Tags": new}, _now(ctx))
    return b""  # DynamoDB answers these with an empty body, not {}


def untag_resource(ctx, request: dict) -> bytes:
    """Remove tags by key; keys the table does not have are ignored."""
    arn = request["ResourceArn"]
    parse_resource_arn(arn)
    if not request.get("TagKeys"):
        raise ValidationException("Atleast one Tag Key needs to be provided as Input.")
    for key in request["TagKeys"]:
        if not _valid_tag_text(key):
            raise ValidationException(f"The Tag Key provided is invalid, Key: {key}")
    doomed = set(request["TagKeys"])
    with ctx.engine.write() as txn:
        table = _tagged_table(ctx, txn, arn)
        tags = [t for t in _stored_tags(txn, table) if t["Key"] not in doomed]
        if tags:
            txn.put("meta", TAGS_KEY(table.prefix), orjson.dumps(tags))
        else:
            txn.delete("meta", TAGS_KEY(table.prefix))
        record_table_change(txn, table, "UntagResource", {"TagKeys": request["TagKeys"]}, _now(ctx))
    return b""  # DynamoDB answers these with an empty body, not {}


def list_tags_of_resource(ctx, request: dict) -> dict:
    """A table's tags.  A table has at most 50, so one page holds them all and
    no NextToken is ever returned; a NextToken given is accepted and ignored."""
    arn = request["ResourceArn"]
    parse_resource_arn(arn)
    with ctx.engine.read() as txn:
        table = _tagged_table(ctx, txn, arn)
        return {"Tags": _stored_tags(txn, table)}


# ---------------------------------------------------------------- endpoints and limits


def describe_endpoints(ctx, request: dict) -> dict:
    """The regional endpoint, as DynamoDB answers endpoint discovery."""
    return {"Endpoints": [{"Address": f"dynamodb.{ctx.region}.amazonaws.com", "CachePeriodInMinutes": 1440}]}


def describe_limits(ctx, request: dict) -> dict:
    """DynamoDB's default account and table throughput quotas."""
    return dict(LIMITS)


OPERATIONS = {
    "CreateTable": create_table,
    "DescribeTable": describe_table,
    "ListTables": list_tables,
    "UpdateTable": update_table,
    "DeleteTable": delete_table,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsOfResource": list_tags_of_resource,
    "DescribeEndpoints": describe_endpoints,
    "DescribeLimits": describe_limits,
}
