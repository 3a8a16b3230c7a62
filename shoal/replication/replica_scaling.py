"""DescribeTableReplicaAutoScaling and UpdateTableReplicaAutoScaling.

A table's auto scaling settings are Application Auto Scaling records
(``shoal.autoscaling``: a scalable target and its target tracking policies
per table or GSI, read or write capacity), kept by each region for its own
replica and followed there by that region's scaler.  These two DynamoDB
operations are a view of those records in every replica region, and a way
to set them:

* ``ProvisionedWriteCapacityAutoScalingUpdate`` (the table) and
  ``GlobalSecondaryIndexUpdates`` (an index's write capacity) apply to every
  replica: DynamoDB keeps a global table's write capacity alike everywhere.
* ``ReplicaUpdates`` set one region's read capacity auto scaling, of the
  table (``ReplicaProvisionedReadCapacityAutoScalingUpdate``) and of its
  indexes (``ReplicaGlobalSecondaryIndexUpdates``).

This region's records change in the request's own transaction; a change for
another replica is queued for it (``kind: autoscaling_update``, sent by the
replication thread as the ``ReplicateAutoScaling`` peer operation, retried
until that region has it, in order with the table's other queued changes).
The answer waits a little for the queued changes to land, then describes
every replica as its own region answers (``DescribeAutoScaling``); a replica
whose change has not landed yet is shown ``UPDATING``, one that does not
answer ``REGION_DISABLED``.

A table with no replicas is described as the one replica it is: DynamoDB
answers these operations for regional tables too.  An on-demand table has no
capacity to scale: its replicas are described without settings, and an
update is refused.

Which wording is whose: ReplicaNotFoundException's and
IndexNotFoundException's messages are DynamoDB's (the same as
UpdateGlobalTableSettings', ``shoal.replication.legacy_ops``); the
ValidationExceptions' sentences are Shoal's (docs/global-tables.md).
"""

from __future__ import annotations

import time

from shoal import autoscaling
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.errors import ValidationException
from shoal.replication import control, legacy

TASK = "autoscaling_update"
#: How long UpdateTableReplicaAutoScaling waits for the other replicas to take its change.
WAIT_S = 3.0
_POLL_S = 0.05
_METRIC = {"read": "DynamoDBReadCapacityUtilization", "write": "DynamoDBWriteCapacityUtilization"}
_CONFIG = ("DisableScaleIn", "ScaleInCooldown", "ScaleOutCooldown", "TargetValue")
#: DynamoDB's range for a target utilization (percent), as Application Auto Scaling checks it.
TARGET_VALUES = (20, 90)


def _dimension(index: str | None, kind: str) -> str:
    units = "ReadCapacityUnits" if kind == "read" else "WriteCapacityUnits"
    return f"dynamodb:{'table' if index is None else 'index'}:{units}"


def _resource(table: str, index: str | None) -> str:
    return f"table/{table}" if index is None else f"table/{table}/index/{index}"


def _provisioned(desc: dict) -> bool:
    return (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED") == "PROVISIONED"


# ---------------------------------------------------------------- one region's view


def _settings(txn, region: str, table: str, index: str | None, kind: str) -> dict:
    """An AutoScalingSettingsDescription from the records: disabled without a target."""
    resource, dimension = _resource(table, index), _dimension(index, kind)
    target = autoscaling.read_target(txn, region, resource, dimension)
    if target is None:
        return {"AutoScalingDisabled": True, "ScalingPolicies": []}
    policies = []
    for policy in autoscaling.read_policies(txn, region, resource, dimension):
        config = policy["TargetTrackingScalingPolicyConfiguration"]
        policies.append({"PolicyName": policy["PolicyName"],
                         "TargetTrackingScalingPolicyConfiguration": {
                             m: (float(config[m]) if m == "TargetValue" else config[m])
                             for m in _CONFIG if config.get(m) is not None}})
    return {"MinimumUnits": target["MinCapacity"], "MaximumUnits": target["MaxCapacity"],
            "AutoScalingRoleArn": target["RoleARN"], "ScalingPolicies": policies}


def replica_description(ctx, name: str) -> dict | None:
    """This region's ReplicaAutoScalingDescription of table ``name`` (None if it has none)."""
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
        return _entry(txn, ctx.region, table) if table is not None else None


def _entry(txn, region: str, table) -> dict:
    desc, name = table.description, table.name
    provisioned = _provisioned(desc)
    indexes = []
    for spec in desc.get("GlobalSecondaryIndexes") or ():
        index = {"IndexName": spec["IndexName"], "IndexStatus": spec.get("IndexStatus", "ACTIVE")}
        if provisioned:
            index["ProvisionedReadCapacityAutoScalingSettings"] = _settings(txn, region, name, spec["IndexName"],
                                                                            "read")
            index["ProvisionedWriteCapacityAutoScalingSettings"] = _settings(txn, region, name, spec["IndexName"],
                                                                             "write")
        indexes.append(index)
    entry = {"RegionName": region, "GlobalSecondaryIndexes": indexes}
    if provisioned:
        entry["ReplicaProvisionedReadCapacityAutoScalingSettings"] = _settings(txn, region, name, None, "read")
        entry["ReplicaProvisionedWriteCapacityAutoScalingSettings"] = _settings(txn, region, name, None, "write")
    entry["ReplicaStatus"] = "CREATING" if desc.get("TableStatus") == "CREATING" else "ACTIVE"
    return entry


def apply_changes(ctx, name: str, changes: list[dict]) -> None:
    """Set this region's records as ``changes`` ask (each ``{index, kind, update}``,
    an AutoScalingSettingsUpdate already checked).  Idempotent: a change sent
    twice sets the same values.  A bound a region lacks (it had no target
    where the checking region had one) is taken from the other bound."""
    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
        if table is None:
            return
        for change in changes:
            _apply(txn, ctx, name, change)


def _apply(txn, ctx, name: str, change: dict) -> None:
    index, kind, update = change.get("index"), change["kind"], change["update"]
    resource, dimension = _resource(name, index), _dimension(index, kind)
    if update.get("AutoScalingDisabled"):
        autoscaling.remove_target(txn, ctx.region, resource, dimension)
        return
    target = autoscaling.read_target(txn, ctx.region, resource, dimension)
    low, high = update.get("MinimumUnits"), update.get("MaximumUnits")
    if target is not None:
        low = target["MinCapacity"] if low is None else low
        high = target["MaxCapacity"] if high is None else high
    low = high if low is None else low
    high = low if high is None else high
    if low is not None:
        autoscaling.write_target(txn, ctx.region, resource, dimension, low, max(low, high), ctx.now(), ctx.account,
                                 update.get("AutoScalingRoleArn"))
    elif target is None:
        return  # nothing to scale between: a policy needs a target
    policy = update.get("ScalingPolicyUpdate")
    if policy is not None:
        config = {m: v for m, v in policy["TargetTrackingScalingPolicyConfiguration"].items() if m in _CONFIG}
        config["PredefinedMetricSpecification"] = {"PredefinedMetricType": _METRIC[kind]}
        autoscaling.write_policy(txn, ctx.region, resource, dimension,
                                 policy.get("PolicyName") or f"{_METRIC[kind]}:{resource}", config, ctx.now(),
                                 ctx.account)


# ---------------------------------------------------------------- the operations


def _table(ctx, txn, text: str):
    from shoal.api.tables import _require, table_name_of

    return _require(ctx, txn, table_name_of(ctx, text))


def describe_table_replica_auto_scaling(ctx, request: dict) -> dict:
    with ctx.engine.read() as txn:
        table = _table(ctx, txn, request["TableName"])
        own = _entry(txn, ctx.region, table)
        pending = _pending(txn, table.table_id)
    return {"TableAutoScalingDescription": _describe(ctx, table, own, pending)}


def _pending(txn, table_id: str) -> set[str]:
    """The regions a change of this table's auto scaling is queued for."""
    return {task["peer"] for _, task in control.pending_tasks(txn)
            if task["kind"] == TASK and task["table_id"] == table_id}


def _describe(ctx, table, own: dict, pending: set[str]) -> dict:
    """Every replica's settings: this region's (``own``, read in the caller's
    transaction), the others' as their regions answer."""
    desc = table.description
    replicas = [own]
    settings = control.settings_of(ctx.engine)
    for replica in desc.get("Replicas") or ():
        region = replica["RegionName"]
        if replica["ReplicaStatus"] == control.CREATION_FAILED:  # no replica there to ask
            replicas.append({"RegionName": region, "ReplicaStatus": control.CREATION_FAILED})
            continue
        entry = _ask(ctx, settings, region, table.name) if replica["ReplicaStatus"] != control.UNREACHABLE else None
        if entry is None:
            entry = {"RegionName": region, "ReplicaStatus": control.UNREACHABLE}
        elif region in pending:
            entry["ReplicaStatus"] = "UPDATING"
        elif replica["ReplicaStatus"] != "ACTIVE":
            entry["ReplicaStatus"] = replica["ReplicaStatus"]
        replicas.append(entry)
    replicas.sort(key=lambda r: r["RegionName"])
    return {"TableName": table.name, "TableStatus": desc["TableStatus"], "Replicas": replicas}


def _ask(ctx, settings, region: str, name: str) -> dict | None:
    """A peer's own ReplicaAutoScalingDescription, or None if it does not answer."""
    if settings is None or region not in settings.peers:
        return None
    from shoal.replication.node import PeerClient, PeerError

    client = PeerClient(region, settings.peers[region], settings.region, settings.credentials)
    client.paused = region in settings.paused
    client.timeout = 2.0
    try:
        return client.call("DescribeAutoScaling", {"TableName": name, "SourceRegion": settings.region}).get("Replica")
    except (PeerError, OSError, ValueError):
        return None
    finally:
        client.close()


def update_table_replica_auto_scaling(ctx, request: dict) -> dict:
    with ctx.engine.write() as txn:
        table = _table(ctx, txn, request["TableName"])
        desc = table.description
        changes = _changes(table.name, desc, ctx.region, request)
        if changes and not _provisioned(desc):
            raise ValidationException(
                f"{INVALID}Auto scaling settings cannot be set for table {table.name}: its billing mode is "
                "PAY_PER_REQUEST")
        for region, asked in changes.items():
            if region == ctx.region:
                _check(txn, ctx.region, table.name, asked)
        for change in changes.get(ctx.region, ()):
            _apply(txn, ctx, table.name, change)
        queued = [region for region in changes if region != ctx.region]
        for region in queued:
            control.queue_task(txn, {"kind": TASK, "table_id": table.table_id, "name": table.name, "peer": region,
                                     "changes": changes[region]})
        # Read here: under group commit (no --region) the change is not committed before the answer is made.
        own = _entry(txn, ctx.region, table)
        pending = _pending(txn, table.table_id)
    if queued:
        pending = _wait(ctx, table.table_id)
    return {"TableAutoScalingDescription": _describe(ctx, table, own, pending)}


def _changes(name: str, desc: dict, own: str, request: dict) -> dict[str, list[dict]]:
    """The request as the changes of each region, after DynamoDB's checks of
    its regions and indexes (ReplicaNotFoundException, IndexNotFoundException)."""
    regions = [own] + [r["RegionName"] for r in desc.get("Replicas") or ()
                       if r["ReplicaStatus"] != control.CREATION_FAILED]  # (one that could not be made is none)
    indexes = {spec["IndexName"] for spec in desc.get("GlobalSecondaryIndexes") or ()}
    everywhere: list[dict] = []
    if request.get("ProvisionedWriteCapacityAutoScalingUpdate") is not None:
        everywhere.append({"index": None, "kind": "write", "update": request["ProvisionedWriteCapacityAutoScalingUpdate"]})
    named_indexes = []
    for update in request.get("GlobalSecondaryIndexUpdates") or ():
        named_indexes.append(update.get("IndexName"))
        if update.get("ProvisionedWriteCapacityAutoScalingUpdate") is not None:
            everywhere.append({"index": update.get("IndexName"), "kind": "write",
                               "update": update["ProvisionedWriteCapacityAutoScalingUpdate"]})
    by_region: dict[str, list[dict]] = {region: list(everywhere) for region in regions} if everywhere else {}
    missing, seen = [], set()
    for update in request.get("ReplicaUpdates") or ():
        region = update["RegionName"]
        if region in seen:
            raise ValidationException(f"{INVALID}Only one replica update per region is allowed: {region}")
        seen.add(region)
        if region not in regions:
            missing.append(region)
            continue
        asked = []
        if update.get("ReplicaProvisionedReadCapacityAutoScalingUpdate") is not None:
            asked.append({"index": None, "kind": "read",
                          "update": update["ReplicaProvisionedReadCapacityAutoScalingUpdate"]})
        for index_update in update.get("ReplicaGlobalSecondaryIndexUpdates") or ():
            named_indexes.append(index_update.get("IndexName"))
            if index_update.get("ProvisionedReadCapacityAutoScalingUpdate") is not None:
                asked.append({"index": index_update.get("IndexName"), "kind": "read",
                              "update": index_update["ProvisionedReadCapacityAutoScalingUpdate"]})
        if asked:
            by_region.setdefault(region, []).extend(asked)
    if missing:
        raise legacy.ReplicaNotFoundException(
            f"Failed to update settings for global table with name: \u2018{name}\u2019 because a replica does not "
            f"exist in regions: \u2018[{', '.join(missing)}]\u2019.")
    unknown = [i for i in dict.fromkeys(named_indexes) if i not in indexes]
    if unknown:
        raise legacy.IndexNotFoundException(
            f"Failed to update settings for global table with name: \u2018{name}\u2019 because the global secondary "
            f"indexes with names: \u2018[{', '.join(str(i) for i in unknown)}]\u2019 do not exist.")
    for changes in by_region.values():
        for change in changes:
            _check_update(name, change)
    return by_region


def _what(name: str, change: dict) -> str:
    units = "read" if change["kind"] == "read" else "write"
    return f"the {units} capacity of " + (f"table {name}" if change["index"] is None
                                          else f"index {change['index']} of table {name}")


def _check_update(name: str, change: dict) -> None:
    """The rules one AutoScalingSettingsUpdate must keep whatever the region's records."""
    update = change["update"]
    low, high = update.get("MinimumUnits"), update.get("MaximumUnits")
    if update.get("AutoScalingDisabled"):
        if update.get("ScalingPolicyUpdate") is not None:
            raise ValidationException(
                f"{INVALID}ScalingPolicyUpdate cannot be given with AutoScalingDisabled for {_what(name, change)}")
        return
    if low is not None and high is not None and low > high:
        raise ValidationException(
            f"{INVALID}MinimumUnits ({low}) cannot be greater than MaximumUnits ({high}) for {_what(name, change)}")
    policy = update.get("ScalingPolicyUpdate")
    if policy is not None:
        value = policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
        if not TARGET_VALUES[0] <= value <= TARGET_VALUES[1]:
            raise ValidationException(
                f"{INVALID}TargetValue must be between {TARGET_VALUES[0]} and {TARGET_VALUES[1]} (percent): {value:g} "
                f"for {_what(name, change)}")


def _check(txn, region: str, name: str, changes: list[dict]) -> None:
    """The rules that depend on this region's records: a range to start auto scaling."""
    for change in changes:
        update = change["update"]
        if update.get("AutoScalingDisabled"):
            continue
        resource, dimension = _resource(name, change["index"]), _dimension(change["index"], change["kind"])
        target = autoscaling.read_target(txn, region, resource, dimension)
        if target is None:
            if update.get("MinimumUnits") is None or update.get("MaximumUnits") is None:
                raise ValidationException(
                    f"{INVALID}MinimumUnits and MaximumUnits are needed to turn on auto scaling of "
                    f"{_what(name, change)}")
            continue
        low = update.get("MinimumUnits", target["MinCapacity"])
        high = update.get("MaximumUnits", target["MaxCapacity"])
        if low > high:
            raise ValidationException(
                f"{INVALID}MinimumUnits ({low}) cannot be greater than MaximumUnits ({high}) for "
                f"{_what(name, change)}")


def _wait(ctx, table_id: str) -> set[str]:
    """Give the replication thread a moment to deliver the changes just queued,
    so that the answer shows them; the regions still waiting for theirs (shown
    UPDATING)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        with ctx.engine.read() as txn:
            pending = _pending(txn, table_id)
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(_POLL_S)


OPERATIONS = {
    "DescribeTableReplicaAutoScaling": describe_table_replica_auto_scaling,
    "UpdateTableReplicaAutoScaling": update_table_replica_auto_scaling,
}
#: Both ask other regions: with ``--region`` they run on a thread, not on the event loop.
ASKING_PEERS = frozenset(OPERATIONS)
