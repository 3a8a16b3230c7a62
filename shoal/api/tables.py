"""The control plane: CreateTable, DescribeTable, ListTables, UpdateTable,
DeleteTable, the tagging operations, DescribeEndpoints and DescribeLimits.

``shoal.api.shapes`` has already checked JSON types, required members, lengths,
patterns and enums against the API model, so the checks here are DynamoDB's
cross-field rules, in DynamoDB's order and with its messages.

Shoal applies every table change at once, so tables are always ``ACTIVE``:
clients that wait for ``ACTIVE`` (boto3 waiters, Terraform) see it on their
first DescribeTable.
"""

from __future__ import annotations

import re
import uuid

import orjson

from shoal.api.catalog import (
    STATS_KEY,
    TAGS_KEY,
    Table,
    decode_entry,
    encode_entry,
    read_stats,
    table_arn,
    table_key,
)
from shoal.errors import ResourceInUseException, ResourceNotFoundException, ValidationException

INVALID = "One or more parameter values were invalid: "
MAX_CAPACITY_UNITS = 1_000_000_000_000  # beyond this DynamoDB says "out of bounds"
MAX_TAGS = 50
MAX_LSI = 5
MAX_GSI = 20
PURGE_CHUNK = 1000  # item keys deleted per transaction when a table is dropped

# DynamoDB's default quotas (us-east-1), as DescribeLimits reports them.
LIMITS = {
    "AccountMaxReadCapacityUnits": 80000,
    "AccountMaxWriteCapacityUnits": 80000,
    "TableMaxReadCapacityUnits": 40000,
    "TableMaxWriteCapacityUnits": 40000,
}

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
        raise ValidationException(coral(errors))


def coral(errors: list[str]) -> str:
    """Coral's summary of several constraint violations."""
    plural = "s" if len(errors) > 1 else ""
    return f"{len(errors)} validation error{plural} detected: " + "; ".join(errors)


def table_name_of(ctx, text: str) -> str:
    """The table named by a TableName member, which may also be the table's ARN."""
    if text.startswith("arn:"):
        region, account, name = parse_table_arn(text)
        if region != ctx.region or account != ctx.account:
            raise ResourceNotFoundException(f"Requested resource not found: Table: {text} not found")
        return name
    check_table_name(text)
    return text


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
    for key, value in table.description.items():
        out[key] = value
        if key == "ProvisionedThroughput":
            out["TableSizeBytes"] = size
            out["ItemCount"] = count
    if status is not None:
        out["TableStatus"] = status
    return out


def _now(ctx) -> float:
    return round(ctx.now(), 3)


# ---------------------------------------------------------------- CreateTable


def create_table(ctx, request: dict) -> dict:
    """Create a table, ACTIVE at once; its TableDescription is the response."""
    name = table_name_of(ctx, request["TableName"])
    _check_required_schema(request)
    billing = request.get("BillingMode") or "PROVISIONED"
    throughput = _check_billing(billing, request.get("ProvisionedThroughput"))
    definitions = _check_definitions(request)
    _check_unsupported_create(request, billing)
    tags = _check_tags(request.get("Tags") or [])

    now = _now(ctx)
    table_id = str(uuid.uuid4())
    desc = _new_description(ctx, request, name, table_id, now, billing, throughput, definitions)
    key = table_key(ctx.region, name)
    raw = encode_entry(ctx.account, table_id, desc)
    with ctx.engine.write() as txn:
        if txn.get("meta", key) is not None:
            raise ResourceInUseException(f"Table already exists: {name}")
        txn.put("meta", key, raw)
        table = decode_entry(ctx.region, raw)
        if tags:
            txn.put("meta", TAGS_KEY(table.prefix), orjson.dumps(tags))
        return {"TableDescription": describe(txn, table)}


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
    for kind, member in (("LocalSecondaryIndexes", "localSecondaryIndexes"),
                         ("GlobalSecondaryIndexes", "globalSecondaryIndexes")):
        for i, index in enumerate(request.get(kind) or (), 1):
            errors += _key_schema_length_errors(index.get("KeySchema"), f"{member}.{i}.member.keySchema")
    if errors:
        raise ValidationException(coral(errors))


def _key_schema_length_errors(schema: list | None, where: str) -> list[str]:
    if schema is None or len(schema) <= 2:
        return []
    shown = ", ".join(
        f"KeySchemaElement(AttributeName={k.get('AttributeName')}, KeyType={k.get('KeyType')})" for k in schema
    )
    return [f"Value '[{shown}]' at '{where}' failed to satisfy constraint: "
            "Member must have length less than or equal to 2"]


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
    if lsis is None and gsis is None:
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
    if len(used) < len(types):
        raise ValidationException(
            f"{INVALID}Some AttributeDefinitions are not used. AttributeDefinitions: "
            f"[{', '.join(def_names)}], keys used: [{', '.join(sorted(used))}]"
        )
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


def _check_projection(index: dict) -> None:
    projection = index["Projection"]
    kind = projection.get("ProjectionType")
    if kind is None:
        raise ValidationException(INVALID + "Unknown ProjectionType: null")
    if projection.get("NonKeyAttributes") is not None and kind != "INCLUDE":
        raise ValidationException(f"{INVALID}ProjectionType is {kind}, but NonKeyAttributes is specified")


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
        _check_key_schema(schema, def_names)
        _check_projection(index)
        name = index["IndexName"]
        if billing == "PAY_PER_REQUEST" and index.get("ProvisionedThroughput") is not None:
            raise ValidationException(
                f"{INVALID}ProvisionedThroughput should not be specified for index: {name} "
                "when BillingMode is PAY_PER_REQUEST"
            )
        _check_index_name(name, seen)
        if name in names:
            raise ValidationException(f"{INVALID}Duplicate index name: {name}")
        used.update(k["AttributeName"] for k in schema)
    if len(gsis) > MAX_GSI:
        raise ValidationException(
            f"{INVALID}GlobalSecondaryIndex count exceeds the per-table limit of {MAX_GSI}"
        )
    return used


def _check_index_name(name: str, seen: set[str]) -> None:
    if name in seen:
        raise ValidationException(f"{INVALID}Duplicate index name: {name}")
    seen.add(name)


def _check_unsupported_create(request: dict, billing: str) -> None:
    """Refuse, after validating them, the features Shoal does not offer yet."""
    for member in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
        if request.get(member) is not None:
            raise ValidationException(f"Shoal does not support {member} yet")
    _check_stream_specification(request.get("StreamSpecification"), creating=True)
    if request.get("ResourcePolicy") is not None:
        raise ValidationException("Shoal does not support ResourcePolicy yet")
    for member in ("GlobalTableSourceArn", "GlobalTableSettingsReplicationMode"):
        if request.get(member) is not None:
            raise ValidationException(f"Shoal does not support {member} yet")


def _check_stream_specification(spec: dict | None, creating: bool, table_name: str = "") -> None:
    """StreamSpecification rules; Shoal has no streams yet, so enabling one is refused."""
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
    if enabled:
        raise ValidationException("Shoal does not support StreamSpecification yet")
    if not creating:
        raise ValidationException(f"Table has no stream to disable: TableName: {table_name}")


def _new_description(ctx, request, name, table_id, now, billing, throughput, types) -> dict:
    """The stored TableDescription of a new table, in DynamoDB's member order."""
    key_schema = [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in request["KeySchema"]]
    desc = {
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in types.items()],
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
    elif request.get("BillingMode") is not None:
        desc["BillingModeSummary"] = {"BillingMode": billing}
    sse = _sse_description(ctx, request.get("SSESpecification"))
    if sse is not None:
        desc["SSEDescription"] = sse
    if request.get("TableClass") is not None:
        desc["TableClassSummary"] = {"TableClass": request["TableClass"]}
    desc["DeletionProtectionEnabled"] = bool(request.get("DeletionProtectionEnabled", False))
    if request.get("OnDemandThroughput") is not None:
        desc["OnDemandThroughput"] = _on_demand(request["OnDemandThroughput"], None, billing, False)
    if request.get("WarmThroughput") is not None:
        desc["WarmThroughput"] = _warm(request["WarmThroughput"], None)
    return desc


def _sse_description(ctx, spec: dict | None) -> dict | None:
    """What DynamoDB reports for SSESpecification: nothing for the default
    (AWS owned key), a KMS description when a KMS key is asked for."""
    if not spec:
        return None
    if not spec.get("Enabled"):
        for member in ("SSEType", "KMSMasterKeyId"):
            if spec.get(member) is not None:
                raise ValidationException(f"{INVALID}{member} can not be specified if Enabled is false")
        return None
    if spec.get("SSEType") == "AES256":
        raise ValidationException(INVALID + "SSEType AES256 is not supported")
    key = spec.get("KMSMasterKeyId") or "alias/aws/dynamodb"
    if not key.startswith("arn:"):
        key = f"arn:aws:kms:{ctx.region}:{ctx.account}:{key if key.startswith('alias/') else 'key/' + key}"
    return {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": key}


def _on_demand(spec: dict, current: dict | None, billing: str, updating: bool) -> dict:
    """OnDemandThroughput (on-demand tables only); -1 means "no maximum",
    which an update may also set explicitly to clear a maximum."""
    out = dict(current or {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": -1})
    for member in ("MaxReadRequestUnits", "MaxWriteRequestUnits"):
        value = spec.get(member)
        if value is None:
            continue
        if billing != "PAY_PER_REQUEST":
            raise ValidationException(
                f"{INVALID}{member} for OnDemandThroughput cannot be specified when the table BillingMode is PROVISIONED"
            )
        if value < 1 and not (updating and value == -1):
            raise ValidationException(
                f"{INVALID}Requested {member} for OnDemandThroughput for table is outside of valid range"
            )
        out[member] = value
    return out


def _warm(spec: dict, current: dict | None) -> dict:
    out = dict(current or {})
    for member in ("ReadUnitsPerSecond", "WriteUnitsPerSecond"):
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


def delete_table(ctx, request: dict) -> dict:
    """Drop a table: its catalog entry, counters and tags at once, then its items.

    The items are purged in chunks of separate transactions after the catalog
    entry is gone; nothing can reach them meanwhile (a re-created table gets a
    new prefix), so a crash mid-purge leaves only unreachable keys behind.
    Change-log records are kept: streams may still read them.
    """
    name = table_name_of(ctx, request["TableName"])
    with ctx.engine.write() as txn:
        table = _require(ctx, txn, name)
        if table.description.get("DeletionProtectionEnabled"):
            raise ValidationException(
                "Resource cannot be deleted as it is currently protected against deletion. "
                "Disable deletion protection first."
            )
        response = {"TableDescription": describe(txn, table, "DELETING")}
        txn.delete("meta", table_key(ctx.region, name))
        txn.delete("meta", STATS_KEY(table.prefix))
        txn.delete("meta", TAGS_KEY(table.prefix))
    for space in ("items", "indexes"):
        purge_prefix(ctx.engine, space, table.prefix)
    return response


def purge_prefix(engine, space: str, prefix: bytes, chunk: int = PURGE_CHUNK) -> int:
    """Delete every key of ``space`` starting with ``prefix``, ``chunk`` keys per
    transaction so that one huge table never holds the writer lock for long."""
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
)
# Updates that must come alone, with DynamoDB's name for each.
_ALONE = (
    ("SSESpecification", "Server-Side Encryption modification must be the only operation in the request"),
    ("TableClass", "TableClass modification must be the only operation in the request"),
    ("DeletionProtectionEnabled", "DeletionProtection modification must be the only operation in the request"),
    ("WarmThroughput", "WarmThroughput must be the only operation in the request"),
)
_NOT_YET = (
    "GlobalSecondaryIndexUpdates", "SSESpecification", "ReplicaUpdates", "MultiRegionConsistency",
    "GlobalTableWitnessUpdates", "GlobalTableSettingsReplicationMode", "AttributeDefinitions",
)


def update_table(ctx, request: dict) -> dict:
    """Change billing mode, throughput, table class, deletion protection,
    on-demand or warm throughput; applied at once (the table stays ACTIVE)."""
    name = table_name_of(ctx, request["TableName"])
    _check_update_shape(request)
    with ctx.engine.write() as txn:
        table = _require(ctx, txn, name)
        _check_stream_specification(request.get("StreamSpecification"), False, name)
        desc = _updated_description(ctx, table.description, request)
        raw = encode_entry(table.account, table.table_id, desc)
        txn.put("meta", table_key(ctx.region, name), raw)
        return {"TableDescription": describe(txn, decode_entry(ctx.region, raw))}


def _check_update_shape(request: dict) -> None:
    """The rules on which members an UpdateTable combines, then what Shoal
    cannot do yet; all before the table is looked up, as in DynamoDB."""
    present = [m for m in _UPDATES if request.get(m) is not None]
    if not present:
        listed = [m for m in _NOTHING_TO_UPDATE if request.get(m) is None]
        raise ValidationException(f"At least one of {', '.join(listed[:-1])} or {listed[-1]} is required")
    if len(present) > 1:
        for member, message in _ALONE:
            if member in present:
                raise ValidationException(INVALID + message)
        if "OnDemandThroughput" in present and set(present) - {"OnDemandThroughput", "BillingMode"}:
            raise ValidationException(
                INVALID + "OnDemandThroughput can only be combined with BillingMode in an UpdateTable request"
            )
    throughput = request.get("ProvisionedThroughput")
    if throughput is not None:
        _check_capacity_bounds(throughput)
    for member in _NOT_YET:
        if request.get(member) is not None:
            raise ValidationException(f"Shoal does not support {member} in UpdateTable yet")


def _updated_description(ctx, current: dict, request: dict) -> dict:
    """A new TableDescription with the request's changes (``current`` is shared
    with the catalog cache and stays untouched)."""
    desc = dict(current)
    now = _now(ctx)
    _apply_billing(desc, request, now)
    if request.get("TableClass") is not None:
        desc["TableClassSummary"] = {"TableClass": request["TableClass"], "LastUpdateDateTime": now}
    if request.get("DeletionProtectionEnabled") is not None:
        desc["DeletionProtectionEnabled"] = request["DeletionProtectionEnabled"]
    if request.get("OnDemandThroughput") is not None:
        desc["OnDemandThroughput"] = _on_demand(
            request["OnDemandThroughput"], desc.get("OnDemandThroughput"), _billing_mode(desc), True
        )
    if request.get("WarmThroughput") is not None:
        desc["WarmThroughput"] = _warm(request["WarmThroughput"], desc.get("WarmThroughput"))
    return desc


def _billing_mode(desc: dict) -> str:
    summary = desc.get("BillingModeSummary")
    return summary["BillingMode"] if summary else "PROVISIONED"


def _apply_billing(desc: dict, request: dict, now: float) -> None:
    """BillingMode and ProvisionedThroughput changes, with DynamoDB's rules."""
    current_mode = _billing_mode(desc)
    mode = request.get("BillingMode") or current_mode
    throughput = request.get("ProvisionedThroughput")
    if mode == "PAY_PER_REQUEST":
        if throughput is not None:
            raise ValidationException(
                INVALID + "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified "
                "when BillingMode is PAY_PER_REQUEST"
            )
        if current_mode != "PAY_PER_REQUEST":
            desc["BillingModeSummary"] = {"BillingMode": mode, "LastUpdateToPayPerRequestDateTime": now}
            desc["ProvisionedThroughput"] = {**desc["ProvisionedThroughput"], "ReadCapacityUnits": 0,
                                             "WriteCapacityUnits": 0}
        return
    if current_mode == "PAY_PER_REQUEST":
        if throughput is None:
            raise ValidationException(
                INVALID + "ProvisionedThroughput must be specified when BillingMode is PROVISIONED"
            )
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
        desc["ProvisionedThroughput"] = _changed_throughput(desc["ProvisionedThroughput"], throughput, now)


def _check_throughput_changes(current: dict, requested: dict) -> None:
    old_r, old_w = current["ReadCapacityUnits"], current["WriteCapacityUnits"]
    new_r, new_w = requested["ReadCapacityUnits"], requested["WriteCapacityUnits"]
    if (old_r, old_w) == (new_r, new_w):
        raise ValidationException(
            "The provisioned throughput for the table will not change. The requested value equals "
            f"the current value. Current ReadCapacityUnits provisioned for the table: {old_r}. "
            f"Requested ReadCapacityUnits: {new_r}. Current WriteCapacityUnits provisioned for the "
            f"table: {old_w}. Requested WriteCapacityUnits: {new_w}. Refer to the Amazon DynamoDB "
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
    region, account, name = parse_table_arn(arn)
    if region != ctx.region:
        raise ValidationException(f"Invalid TableArn: Invalid ResourceArn provided as input {arn}")
    table = ctx.catalog.get(txn, region, name) if account == ctx.account else None
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: ResourcArn: {arn} not found")
    return table


def _stored_tags(txn, table: Table) -> list[dict]:
    raw = txn.get("meta", TAGS_KEY(table.prefix))
    return orjson.loads(raw) if raw else []


def tag_resource(ctx, request: dict) -> dict:
    """Add or overwrite tags of a table (at most 50 per table)."""
    arn = request["ResourceArn"]
    parse_table_arn(arn)
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
    return {}


def untag_resource(ctx, request: dict) -> dict:
    """Remove tags by key; keys the table does not have are ignored."""
    arn = request["ResourceArn"]
    parse_table_arn(arn)
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
    return {}


def list_tags_of_resource(ctx, request: dict) -> dict:
    """A table's tags.  A table has at most 50, so one page holds them all and
    no NextToken is ever returned; a NextToken given is accepted and ignored."""
    arn = request["ResourceArn"]
    parse_table_arn(arn)
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
