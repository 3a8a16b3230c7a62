"""The operations of global tables version 2017.11.29 (Legacy).

CreateGlobalTable, UpdateGlobalTable, DescribeGlobalTableSettings and
UpdateGlobalTableSettings ask other regions (``Member``) and so must not run
on the event loop: with ``--region``, ``protocol.ReplicationService`` runs
them on a thread of their own.  DescribeGlobalTable and ListGlobalTables
read this region's records only.  ``shoal.replication.legacy`` has the
records, a member's side and DynamoDB's conditions.

Which wording is whose: "Global table with name: 'T' does not exist." and
"Table not found: Table: 'T' not found in region: 'R'." are DynamoDB's;
"Failed to update settings for global table with name: ..." follows
DynamoDB's words for UpdateTableReplicaAutoScaling.  The others are Shoal's
(docs/global-tables.md).
"""

from __future__ import annotations

import logging

import orjson

from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.errors import InternalServerError, ValidationException
from shoal.replication import control, legacy

log = logging.getLogger("shoal")


class Member:
    """One region of a global table as the coordinating region reaches it:
    this region itself (direct calls) or a peer (its replication endpoint)."""

    def __init__(self, ctx, region: str, settings: control.Settings) -> None:
        self.ctx = ctx
        self.region = region
        self.local = region == settings.region
        self.settings = settings

    def _call(self, operation: str, payload: dict) -> dict:
        from shoal.replication.node import PeerClient, PeerError

        client = PeerClient(self.region, self.settings.peers[self.region], self.settings.region,
                            self.settings.credentials)
        client.paused = self.region in self.settings.paused
        try:
            return client.call(operation, {**payload, "SourceRegion": self.settings.region})
        except PeerError as exc:
            raise _passed_on(self.region, exc) from None
        except (OSError, ValueError) as exc:
            raise InternalServerError(f"Region {self.region} did not answer: {exc}") from None
        finally:
            client.close()

    def state(self, name: str) -> dict:
        if self.local:
            return legacy.member_state(self.ctx, name)
        return self._call("LegacyDescribe", {"TableName": name})

    def join(self, name: str, record: dict) -> None:
        if self.local:
            legacy.join(self.ctx, name, record)
        else:
            self._call("LegacyJoin", {"TableName": name, "GlobalTable": record})

    def update_tables(self, name: str, requests: list[dict]) -> None:
        if self.local:
            legacy.update_tables(self.ctx, name, requests)
        else:
            self._call("LegacyUpdateTables", {"TableName": name, "Requests": requests})


def _passed_on(region: str, exc) -> Exception:
    """A peer's DynamoDB error as the client's, or a server error if the peer did not answer one."""
    if exc.status is not None and 400 <= exc.status < 500:
        try:
            body = orjson.loads(exc.body)
            namespace, _, type_name = body["__type"].rpartition("#")
            if type_name != "PeerPausedException":
                return legacy.PeerAnswerError(type_name, namespace, exc.status, body.get("message", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            pass
    return InternalServerError(f"Region {region} did not answer: {exc}")


def _settings(ctx) -> control.Settings:
    settings = control.settings_of(ctx.engine)
    if settings is None or settings.region is None:
        raise ValidationException(
            f"{INVALID}Global tables need a deployment that is the home of one region: "
            "start Shoal with --region and --peer REGION=URL")
    return settings


def _members(ctx, settings: control.Settings, regions) -> dict[str, Member]:
    for region in regions:
        if region != settings.region and region not in settings.peers:
            raise ValidationException(
                f"{INVALID}Region {region} is not a peer of this deployment (shoal serve --peer {region}=URL)")
    return {region: Member(ctx, region, settings) for region in regions}


def _record(ctx, name: str) -> dict:
    with ctx.engine.read() as txn:
        record = legacy.read_record(txn, name)
    if record is None:
        raise legacy.not_found(name)
    return record


def _spread(members: dict[str, Member], name: str, record: dict, status: str) -> None:
    """Send ``record`` to every member, ``status`` first and then ACTIVE (a
    member that misses the second keeps showing ``status``).  This region's
    own record changes last, so that a request that failed half-way can be
    sent again; a region removed that does not answer is told later by the
    replication thread (a queued ``legacy_join``)."""
    for member in sorted(members.values(), key=lambda m: m.local):
        try:
            member.join(name, {**record, "GlobalTableStatus": status})
        except InternalServerError:
            if member.region in record["Regions"]:
                raise
            _tell_later(member.ctx, name, member.region, record)
    _activate(members, name, record)


def _tell_later(ctx, name: str, region: str, record: dict) -> None:
    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
        control.queue_task(txn, {"kind": "legacy_join", "table_id": table.table_id if table else name, "name": name,
                                 "peer": region, "record": record})


def _activate(members: dict[str, Member], name: str, record: dict) -> None:
    for member in members.values():
        if member.region not in record["Regions"]:
            continue
        try:
            member.join(name, {**record, "GlobalTableStatus": "ACTIVE"})
        except Exception as exc:  # noqa: BLE001 - the group is made; the status is cosmetic
            log.warning("global table %s: region %s not told it is ACTIVE: %s", name, member.region, exc)


# ---------------------------------------------------------------- operations


def create_global_table(ctx, request: dict) -> dict:
    """Join the tables named GlobalTableName of the ReplicationGroup's
    regions, each checked for DynamoDB's conditions first."""
    settings = _settings(ctx)
    name = request["GlobalTableName"]
    regions = [replica.get("RegionName") for replica in request["ReplicationGroup"]]
    if not regions:
        raise ValidationException(f"{INVALID}ReplicationGroup must name at least one region")
    for region in regions:
        if not isinstance(region, str) or not region:
            raise ValidationException(f"{INVALID}Every replica of ReplicationGroup needs a RegionName")
        if regions.count(region) > 1:
            raise ValidationException(f"{INVALID}Region {region} is named more than once in ReplicationGroup")
    with ctx.engine.read() as txn:
        if legacy.read_record(txn, name) is not None:
            raise legacy.GlobalTableAlreadyExistsException(f"Global table with name: '{name}' already exists.")
    members = _members(ctx, settings, regions)
    states = {region: member.state(name) for region, member in members.items()}
    first = None
    for region in regions:
        legacy.check_joining(name, region, states[region], like=first)
        first = first or states[region]["Table"]
    record = {"GlobalTableName": name, "CreationDateTime": round(ctx.now(), 3), "GlobalTableStatus": "CREATING",
              "Regions": regions}
    joined = []
    try:
        for member in members.values():
            member.join(name, record)
            joined.append(member)
    except Exception:
        for member in joined:  # undo: the global table is made everywhere or nowhere
            try:
                member.join(name, {**record, "Regions": []})
            except Exception as exc:  # noqa: BLE001
                log.warning("global table %s: region %s could not leave again: %s", name, member.region, exc)
        raise
    _activate(members, name, record)
    return {"GlobalTableDescription": legacy.describe(record, ctx.account, "CREATING")}


def describe_global_table(ctx, request: dict) -> dict:
    return {"GlobalTableDescription": legacy.describe(_record(ctx, request["GlobalTableName"]), ctx.account)}


def list_global_tables(ctx, request: dict) -> dict:
    """This region's global tables by name, a page of up to Limit (100);
    RegionName keeps those with a replica in that region.
    LastEvaluatedGlobalTableName is returned only when more remain."""
    limit = request.get("Limit") or legacy.LIST_LIMIT
    start = request.get("ExclusiveStartGlobalTableName")
    region = request.get("RegionName")
    with ctx.engine.read() as txn:
        records = legacy.all_records(txn)
    page = []
    for record in records:
        if start is not None and record["GlobalTableName"].encode() <= start.encode():
            continue
        if region is not None and region not in record["Regions"]:
            continue
        if len(page) == limit:
            return {"GlobalTables": page, "LastEvaluatedGlobalTableName": page[-1]["GlobalTableName"]}
        page.append({"GlobalTableName": record["GlobalTableName"],
                     "ReplicationGroup": [{"RegionName": r} for r in record["Regions"]]})
    return {"GlobalTables": page}


def update_global_table(ctx, request: dict) -> dict:
    """Add (Create) or remove (Delete) regions.  A region added must hold an
    empty table like the others, and so must every member: the API
    Reference's conditions for adding a replica to a global table."""
    settings = _settings(ctx)
    name = request["GlobalTableName"]
    record = _record(ctx, name)
    regions = list(record["Regions"])
    added, removed = [], []
    for update in request["ReplicaUpdates"]:
        actions = [a for a in ("Create", "Delete") if update.get(a) is not None]
        if len(actions) != 1:
            raise ValidationException(f"{INVALID}One of ReplicaUpdate.Create, ReplicaUpdate.Delete must be specified")
        region = update[actions[0]]["RegionName"]
        if region in added or region in removed:
            raise ValidationException(f"{INVALID}Only one replica update per region is allowed: {region}")
        if actions[0] == "Create":
            if region in regions:
                raise legacy.ReplicaAlreadyExistsException(
                    f"Replica in region: '{region}' already exists for global table: '{name}'.")
            regions.append(region)
            added.append(region)
        else:
            if region not in regions:
                raise legacy.ReplicaNotFoundException(
                    f"Replica in region: '{region}' does not exist for global table: '{name}'.")
            regions.remove(region)
            removed.append(region)
    everyone = _members(ctx, settings, list(record["Regions"]) + added)
    if added:
        states = {region: member.state(name) for region, member in everyone.items()}
        kept = [r for r in record["Regions"] if r not in removed]
        like = states[kept[0]]["Table"] if kept else None
        for region in record["Regions"]:
            if states[region]["Table"] is None:
                raise legacy.table_not_found(name, region)
            if not states[region]["Empty"]:
                raise ValidationException(f"{INVALID}Table: {name} in region: {region} is not empty: "
                                          "the tables of a global table must be empty when a replica is added")
        for region in added:
            legacy.check_joining(name, region, states[region], like=like)
            like = like or states[region]["Table"]
    new = {**record, "Regions": regions}
    _spread(everyone, name, new, "UPDATING")
    return {"GlobalTableDescription": legacy.describe(new, ctx.account, "UPDATING")}


# ---------------------------------------------------------------- settings


def _replica_settings(region: str, state: dict | None) -> dict:
    """A ReplicaSettingsDescription of one region's table (REGION_DISABLED:
    the region did not answer)."""
    desc = (state or {}).get("Table")
    if desc is None:
        return {"RegionName": region, "ReplicaStatus": control.UNREACHABLE}
    billing = desc.get("BillingModeSummary") or {"BillingMode": "PROVISIONED"}
    provisioned = billing["BillingMode"] == "PROVISIONED"
    throughput = desc.get("ProvisionedThroughput") or {}
    out = {
        "RegionName": region,
        "ReplicaStatus": desc["TableStatus"] if desc["TableStatus"] in ("CREATING", "UPDATING") else "ACTIVE",
        "ReplicaBillingModeSummary": billing,
        "ReplicaProvisionedReadCapacityUnits": throughput.get("ReadCapacityUnits", 0),
        "ReplicaProvisionedWriteCapacityUnits": throughput.get("WriteCapacityUnits", 0),
    }
    indexes = []
    for spec in desc.get("GlobalSecondaryIndexes") or ():
        index = {"IndexName": spec["IndexName"], "IndexStatus": spec.get("IndexStatus", "ACTIVE")}
        if provisioned:
            pt = spec.get("ProvisionedThroughput") or {}
            index["ProvisionedReadCapacityUnits"] = pt.get("ReadCapacityUnits")
            index["ProvisionedWriteCapacityUnits"] = pt.get("WriteCapacityUnits")
        indexes.append(index)
    if indexes:
        out["ReplicaGlobalSecondaryIndexSettings"] = indexes
    if desc.get("TableClassSummary"):
        out["ReplicaTableClassSummary"] = desc["TableClassSummary"]
    return out


def _states(members: dict[str, Member], name: str, tolerate: bool) -> dict[str, dict | None]:
    states = {}
    for region, member in members.items():
        try:
            states[region] = member.state(name)
        except InternalServerError:
            if not tolerate:
                raise
            states[region] = None  # shown REGION_DISABLED
    return states


def describe_global_table_settings(ctx, request: dict) -> dict:
    """Every region's billing mode, capacity, index capacity and table class."""
    name = request["GlobalTableName"]
    record = _record(ctx, name)
    members = _members(ctx, _settings(ctx), record["Regions"])
    states = _states(members, name, tolerate=True)
    return {"GlobalTableName": name,
            "ReplicaSettings": [_replica_settings(region, states[region]) for region in record["Regions"]]}


_AUTO_SCALING = ("GlobalTableProvisionedWriteCapacityAutoScalingSettingsUpdate",)


def update_global_table_settings(ctx, request: dict) -> dict:
    """Change the billing mode and write capacity of every replica, each
    replica's read capacity and table class, and its indexes' capacities:
    checked for every region first, then applied to each region's table as
    UpdateTable requests."""
    name = request["GlobalTableName"]
    record = _record(ctx, name)
    _check_no_auto_scaling(request)
    replica_updates = {u["RegionName"]: u for u in request.get("ReplicaSettingsUpdate") or ()}
    missing = [r for r in replica_updates if r not in record["Regions"]]
    if missing:
        raise legacy.ReplicaNotFoundException(
            f"Failed to update settings for global table with name: \u2018{name}\u2019 because a replica does not "
            f"exist in regions: \u2018[{', '.join(missing)}]\u2019.")
    members = _members(ctx, _settings(ctx), record["Regions"])
    states = _states(members, name, tolerate=False)
    plans = {}
    for region in record["Regions"]:
        desc = states[region]["Table"]
        if desc is None:
            raise legacy.table_not_found(name, region)
        plans[region] = _settings_requests(name, desc, request, replica_updates.get(region) or {})
    for region, requests in plans.items():
        if requests:
            members[region].update_tables(name, requests)
    after = _states(members, name, tolerate=True)
    return {"GlobalTableName": name,
            "ReplicaSettings": [_replica_settings(region, after[region]) for region in record["Regions"]]}


def _check_no_auto_scaling(request: dict) -> None:
    nested = [request.get(m) for m in _AUTO_SCALING]
    nested += [u.get("ProvisionedWriteCapacityAutoScalingSettingsUpdate")
               for u in request.get("GlobalTableGlobalSecondaryIndexSettingsUpdate") or ()]
    for update in request.get("ReplicaSettingsUpdate") or ():
        nested.append(update.get("ReplicaProvisionedReadCapacityAutoScalingSettingsUpdate"))
        nested += [u.get("ProvisionedReadCapacityAutoScalingSettingsUpdate")
                   for u in update.get("ReplicaGlobalSecondaryIndexSettingsUpdate") or ()]
    if any(n is not None for n in nested):
        raise ValidationException("Shoal does not support auto scaling settings yet")


def _settings_requests(name: str, desc: dict, request: dict, replica: dict) -> list[dict]:
    """The UpdateTable requests that give one region's table the settings
    asked for (none if it has them already); TableClass goes alone, as
    UpdateTable requires."""
    current = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    billing = request.get("GlobalTableBillingMode") or current
    gsis = {spec["IndexName"]: spec for spec in desc.get("GlobalSecondaryIndexes") or ()}
    global_gsi = {u["IndexName"]: u for u in request.get("GlobalTableGlobalSecondaryIndexSettingsUpdate") or ()}
    replica_gsi = {u["IndexName"]: u for u in replica.get("ReplicaGlobalSecondaryIndexSettingsUpdate") or ()}
    unknown = [i for i in list(global_gsi) + list(replica_gsi) if i not in gsis]
    if unknown:
        raise legacy.IndexNotFoundException(
            f"Failed to update settings for global table with name: \u2018{name}\u2019 because the global secondary "
            f"indexes with names: \u2018[{', '.join(dict.fromkeys(unknown))}]\u2019 do not exist.")
    capacities = [request.get("GlobalTableProvisionedWriteCapacityUnits"),
                  replica.get("ReplicaProvisionedReadCapacityUnits")]
    capacities += [u.get("ProvisionedWriteCapacityUnits") for u in global_gsi.values()]
    capacities += [u.get("ProvisionedReadCapacityUnits") for u in replica_gsi.values()]
    update: dict = {}
    if billing != current:
        update["BillingMode"] = billing
    if billing == "PAY_PER_REQUEST":
        if any(c is not None for c in capacities):
            raise ValidationException(
                f"{INVALID}Provisioned capacity cannot be set for a global table whose billing mode is PAY_PER_REQUEST")
    else:
        throughput = desc.get("ProvisionedThroughput") or {}
        was = (throughput.get("ReadCapacityUnits"), throughput.get("WriteCapacityUnits"))
        write = request.get("GlobalTableProvisionedWriteCapacityUnits") or (was[1] if current == billing else None)
        read = replica.get("ReplicaProvisionedReadCapacityUnits") or (was[0] if current == billing else write)
        if write is None:
            raise ValidationException(
                f"{INVALID}GlobalTableProvisionedWriteCapacityUnits is needed to switch a global table to PROVISIONED")
        if (read, write) != was or billing != current:
            update["ProvisionedThroughput"] = {"ReadCapacityUnits": read, "WriteCapacityUnits": write}
        index_updates = []
        for index_name, spec in gsis.items():
            pt = spec.get("ProvisionedThroughput") or {}
            had = (pt.get("ReadCapacityUnits"), pt.get("WriteCapacityUnits"))
            same_mode = current == billing
            index_write = (global_gsi.get(index_name) or {}).get("ProvisionedWriteCapacityUnits") or (
                had[1] if same_mode else write)
            index_read = (replica_gsi.get(index_name) or {}).get("ProvisionedReadCapacityUnits") or (
                had[0] if same_mode else read)
            if (index_read, index_write) != had or not same_mode:
                index_updates.append({"Update": {"IndexName": index_name, "ProvisionedThroughput": {
                    "ReadCapacityUnits": index_read, "WriteCapacityUnits": index_write}}})
        if index_updates:
            update["GlobalSecondaryIndexUpdates"] = index_updates
    requests = [update] if update else []
    table_class = replica.get("ReplicaTableClass")
    if table_class is not None and table_class != (desc.get("TableClassSummary") or {}).get("TableClass", "STANDARD"):
        requests.append({"TableClass": table_class})
    return requests


OPERATIONS = {
    "CreateGlobalTable": create_global_table,
    "DescribeGlobalTable": describe_global_table,
    "ListGlobalTables": list_global_tables,
    "UpdateGlobalTable": update_global_table,
    "DescribeGlobalTableSettings": describe_global_table_settings,
    "UpdateGlobalTableSettings": update_global_table_settings,
}
#: The operations that ask other regions: run on a thread, not on the event loop.
ASKING_PEERS = frozenset({"CreateGlobalTable", "UpdateGlobalTable", "DescribeGlobalTableSettings",
                          "UpdateGlobalTableSettings"})
