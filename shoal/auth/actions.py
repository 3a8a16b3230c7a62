"""What a DynamoDB request asks IAM for: actions, resources, condition keys.

DynamoDB authorizes each operation as the IAM action of the same name
(``dynamodb:GetItem``) on the resource it touches: the table ARN, the index
ARN when ``IndexName`` is given, every table of a batch, each item of a
transaction as the action of its kind (``TransactWriteItems`` needs
``dynamodb:PutItem`` for a Put, ``dynamodb:ConditionCheckItem`` for a
ConditionCheck...), ``dynamodb:PartiQL*`` for PartiQL statements, and ``*``
for account-level operations such as ListTables.

Fine-grained access control reads these condition keys from the request:

* ``dynamodb:LeadingKeys``: the partition key values the request names;
* ``dynamodb:Attributes``: the top-level attribute names it reads or writes
  (projections, written items, update targets and the key attributes);
* ``dynamodb:Select``, ``dynamodb:ReturnValues``,
  ``dynamodb:ReturnConsumedCapacity``: the parameters of the same name.

A PartiQL statement is authorized as what it runs: the statements come from
``shoal.api.partiql.request_statements``, the parser and binding the operation
itself uses, never from scanning the text, so no statement form can be
authorized as one action and run as another.  Its condition keys are those of
the item operation it stands for, read from the parsed statement, plus
``dynamodb:FullTableScan`` (a SELECT without an equality, or an IN or OR of
them, on each attribute of the partition key reads the whole table or index)
and ``dynamodb:EnclosingOperation``.

``lookup_table_keys(table_name, index_name)`` gives the key attribute names
of the table (or of the index), partition key first, or None when unknown; it
is the catalog's job, so this module never touches storage.  For an index
whose partition key has several attributes it gives them as ``KeyNames``,
which says how many of the names are the partition key's: a SELECT on it is a
key read only when its WHERE fixes each of them, as its plan requires
(``shoal.api.partiql.select``), else a full scan.
"""

from __future__ import annotations

import time
from functools import lru_cache
from dataclasses import dataclass
from typing import Callable, Iterable

from shoal.api.partiql import partition_equality, request_statements
from shoal.auth.errors import AccessDeniedException
from shoal.model.policy import Decision, Principal, decide, denied_message
from shoal.errors import ShoalError
from shoal.expressions import ExpressionContext, parse_key_condition, parse_projection, parse_update_ast
from shoal.expressions.evaluator import Binder
from shoal.partiql import ast as partiql_ast
from shoal.partiql.translate import bind_value, split_key

KeyLookup = Callable[[str, "str | None"], "tuple[str, ...] | None"]


class KeyNames(tuple):
    """The key attribute names of an index whose partition key has several
    attributes (a multi-attribute GSI key), partition attributes first:
    ``partition`` of them.  Equal to the plain tuple of the same names."""

    partition: int

    def __new__(cls, names, partition: int):
        keys = super().__new__(cls, names)
        keys.partition = partition
        return keys


# Operations on one table named by TableName.
_TABLE_OPERATIONS = frozenset({
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable", "CreateTable",
    "UpdateTable", "DeleteTable", "DescribeTimeToLive", "UpdateTimeToLive", "DescribeContinuousBackups",
    "UpdateContinuousBackups", "CreateBackup", "DescribeKinesisStreamingDestination",
    "EnableKinesisStreamingDestination", "DisableKinesisStreamingDestination",
    "UpdateKinesisStreamingDestination", "DescribeContributorInsights", "UpdateContributorInsights",
    "DescribeTableReplicaAutoScaling", "UpdateTableReplicaAutoScaling", "StartBulkPutItems",
})
# Operations on a resource named by an ARN member.
_ARN_OPERATIONS = {
    "TagResource": "ResourceArn", "UntagResource": "ResourceArn", "ListTagsOfResource": "ResourceArn",
    "GetResourcePolicy": "ResourceArn", "PutResourcePolicy": "ResourceArn", "DeleteResourcePolicy": "ResourceArn",
    "ExportTableToPointInTime": "TableArn", "DescribeBackup": "BackupArn", "DeleteBackup": "BackupArn",
    "RestoreTableFromBackup": "BackupArn", "DescribeExport": "ExportArn", "DescribeImport": "ImportArn",
    "DescribeStream": "StreamArn", "GetShardIterator": "StreamArn",
    "DescribeBulkOperation": "BulkOperationArn", "CancelBulkOperation": "BulkOperationArn",
}
_GLOBAL_TABLE_OPERATIONS = frozenset({
    "CreateGlobalTable", "UpdateGlobalTable", "DescribeGlobalTable", "DescribeGlobalTableSettings",
    "UpdateGlobalTableSettings",
})
_TRANSACT_WRITE_ACTIONS = {
    "Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
_PARTIQL_ACTIONS = {
    partiql_ast.Select: "dynamodb:PartiQLSelect", partiql_ast.Insert: "dynamodb:PartiQLInsert",
    partiql_ast.Update: "dynamodb:PartiQLUpdate", partiql_ast.Delete: "dynamodb:PartiQLDelete",
    # EXISTS(SELECT ...) reads the item it checks
    partiql_ast.Exists: "dynamodb:PartiQLSelect",
}
_PARTIQL_OPERATIONS = frozenset({"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"})
# What a restore does to its target table (the Developer Guide's "Using IAM with backup and restore").
_RESTORE_TARGET_ACTIONS = tuple("dynamodb:" + name for name in (
    "PutItem", "UpdateItem", "DeleteItem", "GetItem", "Query", "Scan", "BatchWriteItem"))


@dataclass(slots=True, frozen=True)
class Check:
    """One permission a request needs: an action on a resource, with the
    condition keys of that part of the request."""

    action: str
    resource: str
    context: dict


def table_arn(region: str, account: str, table: str) -> str:
    """The ARN of a table; DynamoDB also accepts a table ARN as TableName."""
    if table.startswith("arn:"):
        return table
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}"


def required(operation: str, body: dict, region: str, account: str, lookup_table_keys: KeyLookup, *,
             lookup_iterator_stream: Callable[[str], "str | None"] | None = None) -> list[Check]:
    """The permissions ``operation`` with request ``body`` needs, in order.
    ``lookup_iterator_stream(shard_iterator)`` gives the ARN of the stream a
    GetRecords iterator reads, or None."""
    action = "dynamodb:" + operation
    if operation in _TABLE_OPERATIONS:
        checks = [_table_check(operation, action, body, region, account, lookup_table_keys)]
        if operation == "CreateTable" and body.get("ResourcePolicy") is not None:
            # As DynamoDB documents: creating a table with a policy needs both actions.
            checks.append(Check("dynamodb:PutResourcePolicy", checks[0].resource, {}))
        return checks
    if operation == "RestoreTableFromBackup":
        # As DynamoDB documents: the action on the backup, and read and write
        # permissions on the table the restore creates and fills.
        target = table_arn(region, account, str(body.get("TargetTableName", "")))
        return [Check(action, str(body.get("BackupArn", "*")), {}),
                *(Check(needed, target, {}) for needed in _RESTORE_TARGET_ACTIONS)]
    if operation in _ARN_OPERATIONS:
        return [Check(action, str(body.get(_ARN_OPERATIONS[operation], "*")), _common(body))]
    if operation == "BatchGetItem":
        return [Check(action, table_arn(region, account, table), _batch_get_context(table, request, lookup_table_keys))
                for table, request in (body.get("RequestItems") or {}).items()]
    if operation == "BatchWriteItem":
        return [Check(action, table_arn(region, account, table), _batch_write_context(table, writes, lookup_table_keys))
                for table, writes in (body.get("RequestItems") or {}).items()]
    if operation == "TransactGetItems":
        return [_transact_check("dynamodb:GetItem", "GetItem", entry["Get"], region, account, lookup_table_keys)
                for entry in body.get("TransactItems") or [] if "Get" in entry]
    if operation == "TransactWriteItems":
        return [_transact_check(_TRANSACT_WRITE_ACTIONS[kind], kind, part, region, account, lookup_table_keys)
                for entry in body.get("TransactItems") or [] for kind, part in entry.items()
                if kind in _TRANSACT_WRITE_ACTIONS]
    if operation in _PARTIQL_OPERATIONS:
        return _partiql_checks(operation, body, region, account, lookup_table_keys)
    if operation == "RestoreTableToPointInTime":
        # As for RestoreTableFromBackup: the action on the source table, and
        # read and write permissions on the table the restore creates and fills.
        source = body.get("SourceTableArn") or table_arn(region, account, str(body.get("SourceTableName", "")))
        target = table_arn(region, account, str(body.get("TargetTableName", "")))
        return [Check(action, str(source), {}), *(Check(needed, target, {}) for needed in _RESTORE_TARGET_ACTIONS)]
    if operation == "ImportTable":
        name = (body.get("TableCreationParameters") or {}).get("TableName", "")
        return [Check(action, table_arn(region, account, name), {})]
    if operation == "SearchVectors":
        # As DynamoDB documents: on the vector index's ARN; fine-grained access control does not apply.
        resource = f"{table_arn(region, account, str(body.get('TableName', '')))}/index/{body.get('IndexName', '')}"
        return [Check(action, resource, _common(body))]
    if operation in _GLOBAL_TABLE_OPERATIONS:
        return [Check(action, f"arn:aws:dynamodb::{account}:global-table/{body.get('GlobalTableName', '')}", {})]
    if operation == "GetRecords":
        # The stream the iterator reads; an iterator that reads none is refused by GetRecords.
        stream = lookup_iterator_stream(body.get("ShardIterator", "")) if lookup_iterator_stream else None
        return [Check(action, stream or f"arn:aws:dynamodb:{region}:{account}:table/*/stream/*", {})]
    return [Check(action, "*", {})]  # ListTables, DescribeLimits, ListStreams, ...


# CloudWatch's alarm operations act on alarms, named by ARN in policies:
# the members of the request that name them.
_ALARM_NAMES = {"PutMetricAlarm": "AlarmName", "SetAlarmState": "AlarmName", "DescribeAlarmHistory": "AlarmName",
                "DeleteAlarms": "AlarmNames", "EnableAlarmActions": "AlarmNames", "DisableAlarmActions": "AlarmNames",
                "DescribeAlarms": "AlarmNames"}
_ALARM_ARNS = ("TagResource", "UntagResource", "ListTagsForResource")


def monitoring_required(operation: str, body: dict, region: str = "*", account: str = "*") -> list[Check]:
    """The permissions a CloudWatch request needs: ``cloudwatch:<Operation>``
    on ``*`` for the metric actions (they name no resource), with the
    condition key ``cloudwatch:namespace`` for PutMetricData; on each alarm's
    ARN (``arn:aws:cloudwatch:<region>:<account>:alarm:<name>``) for the
    alarm actions that name alarms."""
    context = {}
    action = "cloudwatch:" + operation
    body = body if isinstance(body, dict) else {}
    namespace = body.get("Namespace")
    if operation == "PutMetricData" and isinstance(namespace, str):
        context["cloudwatch:namespace"] = namespace
    member = _ALARM_NAMES.get(operation)
    names = body.get(member) if member else None
    if isinstance(names, str):
        names = [names]
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return [Check(action, f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}", context) for name in names]
    if operation in _ALARM_ARNS and isinstance(body.get("ResourceARN"), str):
        return [Check(action, body["ResourceARN"], context)]
    return [Check(action, "*", context)]


def autoscaling_required(operation: str) -> list[Check]:
    """The permission an Application Auto Scaling request needs:
    ``application-autoscaling:<Operation>`` on ``*`` (its resources are not
    named by ARN in policies)."""
    return [Check("application-autoscaling:" + operation, "*", {})]


def sns_required(operation: str, body: dict, region: str = "*", account: str = "*") -> list[Check]:
    """The permission an SNS request needs: ``sns:<Operation>`` on the topic
    it names (TopicArn, the topic of a SubscriptionArn, or CreateTopic's
    Name), on ``*`` for the listings."""
    body = body if isinstance(body, dict) else {}
    action = "sns:" + operation
    arn = body.get("TopicArn") or body.get("ResourceArn")
    if not isinstance(arn, str) and isinstance(body.get("SubscriptionArn"), str):
        arn = body["SubscriptionArn"].rsplit(":", 1)[0]
    if not isinstance(arn, str) and operation == "CreateTopic" and isinstance(body.get("Name"), str):
        arn = f"arn:aws:sns:{region}:{account}:{body['Name']}"
    return [Check(action, arn if isinstance(arn, str) and arn else "*", {})]


def authorize(
    principal: Principal,
    operation: str,
    body: dict,
    region: str,
    account: str,
    lookup_table_keys: KeyLookup,
    *,
    request_context: dict | None = None,
    lookup_resource_policy: Callable[[str], object] | None = None,
) -> None:
    """Raise AccessDeniedException unless ``principal`` holds every permission
    the request needs.  ``request_context`` carries the global keys of the
    request (``aws:SourceIp``, ``aws:SecureTransport``, ``aws:CurrentTime``...)."""
    denial = find_denial(principal, operation, body, region, account, lookup_table_keys,
                         request_context=request_context, lookup_resource_policy=lookup_resource_policy)
    if denial is not None:
        check, decision = denial
        raise AccessDeniedException(denied_message(principal, check.action, check.resource, decision))


def find_denial(
    principal: Principal,
    operation: str,
    body: dict,
    region: str,
    account: str,
    lookup_table_keys: KeyLookup,
    *,
    request_context: dict | None = None,
    lookup_resource_policy: Callable[[str], object] | None = None,
    lookup_iterator_stream: Callable[[str], "str | None"] | None = None,
) -> tuple[Check, Decision] | None:
    """The first permission the request lacks, with IAM's decision, or None.

    ``lookup_resource_policy(resource_arn)`` gives the resource-based policy
    that governs a resource (a table's also governs its indexes) or None.
    The root user needs no identity policy, but an explicit deny in a
    resource-based policy still applies to it, except for
    DeleteResourcePolicy (so an account can never lock itself out).
    """
    if principal.is_root and (lookup_resource_policy is None or operation == "DeleteResourcePolicy"):
        return None
    for check in required(operation, body, region, account, lookup_table_keys,
                          lookup_iterator_stream=lookup_iterator_stream):
        context = dict(request_context) if request_context else {}
        context.update(check.context)
        resource_policy = lookup_resource_policy(check.resource) if lookup_resource_policy else None
        if principal.is_root and resource_policy is None:
            continue
        decision = decide(principal, check.action, check.resource, context, resource_policy)
        if not decision.allowed:
            return check, decision
    return None


def request_context(source_ip: str | None, secure: bool, now: float) -> dict:
    """The global condition keys every request carries."""
    second = int(now)
    ctx = {"aws:SecureTransport": secure, "aws:CurrentTime": _iso_time(second), "aws:EpochTime": second}
    if source_ip:
        ctx["aws:SourceIp"] = source_ip
    return ctx


@lru_cache(maxsize=4)
def _iso_time(second: int) -> str:
    """aws:CurrentTime's text; concurrent requests share their second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


# -- per-operation condition keys ---------------------------------------------------------


def _common(body: dict) -> dict:
    ctx = {}
    for member, key in (("Select", "dynamodb:Select"), ("ReturnValues", "dynamodb:ReturnValues"),
                        ("ReturnConsumedCapacity", "dynamodb:ReturnConsumedCapacity")):
        value = body.get(member)
        if value is not None:
            ctx[key] = value
    return ctx


def _table_check(operation: str, action: str, body: dict, region: str, account: str, keys: KeyLookup) -> Check:
    table = body.get("TableName", "")
    index = body.get("IndexName")
    resource = table_arn(region, account, table)
    if index and operation in ("Query", "Scan"):
        resource = f"{resource}/index/{index}"
    ctx = _common(body)
    names = body.get("ExpressionAttributeNames") or {}
    if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"):
        hash_key = _hash_key(keys, table, index if operation == "Query" else None)
        leading = _leading_keys(operation, body, hash_key, names)
        if leading is not None:
            ctx["dynamodb:LeadingKeys"] = leading
    attributes = _attributes(operation, body, names)
    if attributes is not None:
        ctx["dynamodb:Attributes"] = attributes
    return Check(action, resource, ctx)


def _transact_check(action: str, kind: str, part: dict, region: str, account: str, keys: KeyLookup) -> Check:
    operation = {"Get": "GetItem", "Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "GetItem", "GetItem": "GetItem"}[kind]
    return _table_check(operation, action, part, region, account, keys)


def _partiql_checks(operation: str, body: dict, region: str, account: str, keys: KeyLookup) -> list[Check]:
    """One check per statement that will run, from the statements as the
    operation parses and binds them.  A statement that does not parse fails
    here as it would in the operation (ExecuteStatement, ExecuteTransaction);
    in a batch it runs nothing (its response is an error) and needs nothing."""
    checks = []
    common = _common(body)
    for parsed in request_statements(operation, body):
        if isinstance(parsed, ShoalError):
            continue
        statement, params = parsed
        try:
            checks.append(_statement_check(statement, params, operation, common, region, account, keys))
        except ShoalError:
            # A value the statement binds is malformed: the operation binds the
            # same nodes with the same Parameters first, so it fails and runs
            # nothing; its error is the operation's to report.
            continue
    return checks


def _statement_check(statement, params: list, operation: str, common: dict, region: str, account: str,
                     keys: KeyLookup) -> Check:
    action = _PARTIQL_ACTIONS[type(statement)]
    target = statement.select if isinstance(statement, partiql_ast.Exists) else statement
    index = target.index if isinstance(target, partiql_ast.Select) else None
    resource = table_arn(region, account, target.table)
    if index is not None:
        resource += "/index/" + index
    ctx = dict(common)
    ctx["dynamodb:EnclosingOperation"] = operation
    key_names = keys(target.table, index) or ()
    hash_key = key_names[0] if key_names else None
    attributes = None
    if isinstance(target, partiql_ast.Insert):
        item = bind_value(target.item, params)["M"]
        leading = _value_text(item.get(hash_key)) if hash_key else None
        attributes = list(item)
    else:
        partition = partition_equality(target.where, hash_key) if hash_key else None
        leading = _value_text(bind_value(partition[1], params)) if partition else None
        if isinstance(target, partiql_ast.Select):
            # pk IN [...] or pk = a OR pk = b reads those partitions only (shoal.api.partiql.select):
            # no full table scan, and each of them a leading key
            from shoal.api.partiql import partition_values
            several = partition_values(target.where, hash_key, params) if hash_key and not partition else None
            if getattr(key_names, "partition", 1) > 1 and not _fixes_partition(
                    target.where, key_names[:key_names.partition], params):
                partition = several = leading = None  # a multi-attribute partition key not fixed whole: a scan
            if several is not None:
                leading = [text for text in map(_value_text, several[0]) if text is not None]
            ctx["dynamodb:FullTableScan"] = partition is None and several is None
            ctx["dynamodb:Select"] = "ALL_ATTRIBUTES" if target.projection is None else "SPECIFIC_ATTRIBUTES"
            if target.projection is not None:
                attributes = _unique(path.elements[0] for path in target.projection)
        else:  # UPDATE, DELETE: the key attributes, and what an UPDATE writes
            attributes = list(split_key(target.where, key_names, params)[0]) if key_names else []
            if isinstance(target, partiql_ast.Update):
                attributes = _unique([*attributes, *(clause.path.elements[0] for clause in target.clauses)])
            if target.returning is not None:
                ctx["dynamodb:ReturnValues"] = target.returning
    if leading is not None:
        ctx["dynamodb:LeadingKeys"] = leading if isinstance(leading, list) else [leading]
    if attributes is not None:
        ctx["dynamodb:Attributes"] = attributes
    return Check(action, resource, ctx)


def _fixes_partition(where, names: tuple, params: list) -> bool:
    """Whether a SELECT's WHERE fixes every attribute ``names`` of a
    multi-attribute partition key, as its plan requires to read it by key
    (``shoal.api.partiql._multi_key_condition``): each by an equality, or
    one of them by an IN or an OR of equalities; else the SELECT scans."""
    from shoal.api.partiql import partition_values

    several = False
    for name in names:
        if partition_equality(where, name) is not None:
            continue
        if several or partition_values(where, name, params) is None:
            return False
        several = True
    return True


def _hash_key(keys: KeyLookup, table: str, index: str | None) -> str | None:
    names = keys(table, index)
    return names[0] if names else None


def _value_text(value) -> str | None:
    """The condition-key form of a key attribute value: its S, N or B text."""
    if isinstance(value, dict) and len(value) == 1:
        inner = next(iter(value.values()))
        if isinstance(inner, str):
            return inner
    return None


def _leading_keys(operation: str, body: dict, hash_key: str | None, names: dict) -> list | None:
    if hash_key is None:
        return None
    if operation == "Query":
        value = _query_hash_value(body, hash_key, names)
        return None if value is None else [value]
    source = body.get("Item") if operation == "PutItem" else body.get("Key")
    value = _value_text((source or {}).get(hash_key))
    return None if value is None else [value]


def _query_hash_value(body: dict, hash_key: str, names: dict) -> str | None:
    expression = body.get("KeyConditionExpression")
    if expression:
        # The operation's own parser: what it reads by is what is authorized.
        condition = parse_key_condition(expression, ExpressionContext(names, body.get("ExpressionAttributeValues")))
        for name, operator, values in condition.conditions:
            if name == hash_key and operator == "EQ":
                return _value_text(values[0])
        return None
    condition = (body.get("KeyConditions") or {}).get(hash_key) or {}
    values = condition.get("AttributeValueList") or []
    return _value_text(values[0]) if values else None


def _attributes(operation: str, body: dict, names: dict) -> list | None:
    """Top-level attribute names the request reads or writes; None when it
    names none (a GetItem without projection reads every attribute)."""
    if operation == "PutItem":
        return list(body.get("Item") or {})
    if operation == "UpdateItem":
        found = list(body.get("Key") or {})
        if body.get("UpdateExpression"):
            found += _update_targets(body["UpdateExpression"], names)
        found += list(body.get("AttributeUpdates") or {})
        return _unique(found)
    if operation == "DeleteItem":
        return list(body.get("Key") or {})
    if operation in ("GetItem", "Query", "Scan"):
        if body.get("ProjectionExpression"):
            return _unique(path[0] for path in parse_projection(body["ProjectionExpression"],
                                                                ExpressionContext(names)).paths)
        if body.get("AttributesToGet"):
            return list(body["AttributesToGet"])
    return None


def _batch_get_context(table: str, request: dict, keys: KeyLookup) -> dict:
    ctx = {}
    hash_key = _hash_key(keys, table, None)
    if hash_key is not None:
        ctx["dynamodb:LeadingKeys"] = _unique(
            v for v in (_value_text(k.get(hash_key)) for k in request.get("Keys") or []) if v is not None)
    attributes = _attributes("GetItem", request, request.get("ExpressionAttributeNames") or {})
    if attributes is not None:
        ctx["dynamodb:Attributes"] = attributes
    return ctx


def _batch_write_context(table: str, writes: list, keys: KeyLookup) -> dict:
    hash_key = _hash_key(keys, table, None)
    leading, attributes = [], []
    for write in writes or []:
        if "PutRequest" in write:
            item = write["PutRequest"].get("Item") or {}
            attributes.extend(item)
        else:
            item = (write.get("DeleteRequest") or {}).get("Key") or {}
            attributes.extend(item)
        value = _value_text(item.get(hash_key)) if hash_key else None
        if value is not None:
            leading.append(value)
    ctx = {"dynamodb:Attributes": _unique(attributes)}
    if hash_key is not None:
        ctx["dynamodb:LeadingKeys"] = _unique(leading)
    return ctx


def _update_targets(expression: str, names: dict) -> list[str]:
    """The top-level attributes an UpdateExpression assigns, removes, adds to
    or deletes from, as the operation's parser reads them."""
    binder = Binder(ExpressionContext(names), "UpdateExpression")
    return [binder.resolve_path(action.path)[0] for action in parse_update_ast(expression).actions]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
