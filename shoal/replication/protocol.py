"""Requests between deployments, and the home region's screen.

Peers talk DynamoDB's JSON protocol on the same port, with their own target
prefix, ``X-Amz-Target: ShoalReplication_20261206.<Op>``:

    ApplyChanges   {TableName, SourceRegion, Records: [{time, origin, seq, keys, new}]} -> {Applied};
                   ReplicaInaccessibleException while the table here is
                   INACCESSIBLE_ENCRYPTION_CREDENTIALS, NotAReplicaException for a
                   table here that is no replica, ReplicationNotAuthorizedException while
                   the table's resource-based policy denies replication (the sender
                   holds the records)
    CopyItems      the same, for the items of a replica being made
    CreateReplica  {TableName, SourceRegion, Request: <CreateTable request>, Replicas, TimeToLive}
    SyncReplicas   {TableName, SourceRegion, Replicas: [{RegionName, ReplicaStatus}]}
    DeleteReplica  {TableName, SourceRegion}
    Ping           {TableName, SourceRegion}: answers {} (how a sender with
                   nothing to send learns that a peer is reachable again)
    LegacyDescribe {TableName, SourceRegion} -> {Table, Empty, GlobalTable}: a
                   2017.11.29 coordinator looks at this region's table
    LegacyJoin     {TableName, SourceRegion, GlobalTable}: take a 2017.11.29
                   global table's record (join it, follow its regions, or leave)
    LegacyUpdateTables {TableName, SourceRegion, Requests}: UpdateGlobalTableSettings'
                   UpdateTable requests for this region's table
    DescribeAutoScaling {TableName, SourceRegion} -> {Replica}: this region's
                   ReplicaAutoScalingDescription (DescribeTableReplicaAutoScaling elsewhere)
    ReplicateAutoScaling {TableName, SourceRegion, Changes}: UpdateTableReplicaAutoScaling's
                   changes for this region's records (``replica_scaling``)
    ReplicateReplicaUpdate {TableName, SourceRegion, Update} -> {Done}: ReplicaUpdates'
                   Update for this region's replica, applied as UpdateTable here
    Seal, Registers, PeekRegisters, DeleteWitness: an MRSC table leaving for a
                   single-Region table (``strong.leave``): seal this region's
                   acceptor, list or read its registers, drop a witness
    RangeRegisters {TableName, SourceRegion, HashKey, RangeKey, Partition, Low, High,
                   Reverse, Limit} -> {Registers: [{Key, Ballot, Value}], More}: the
                   registers of a key range, for a strongly consistent Query or
                   Scan (``strong.StrongRange``)

A request whose SourceRegion is paused here (``--peer-pause``) is refused
with HTTP 503, ``PeerPausedException``, as a cut network would leave it
unanswered.

Each write runs as one job of the group committer, answered once durable, so
a sender moves its cursor only past what the receiver has on disk.  With auth
on, a peer signs its requests (SigV4, service ``dynamodb``, its own region)
as an identity allowed ``shoal:Replicate`` on the table (the root user is);
with auth off they are taken from anyone, like every other request.

With ``--region``, a DynamoDB request signed for any other region is refused
as AWS refuses a credential scope that does not match the endpoint's region:
``InvalidSignatureException`` (400), "Credential should be scoped to a valid
region, not '<region>'. ", the wording the IAM guide gives for a wrong-region
scope and that AWS's JSON services send.
"""

from __future__ import annotations

import logging

import orjson

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api.changelog import head_position
from shoal.auth.errors import AccessDeniedException, InvalidSignatureException
from shoal.errors import ResourceNotFoundException, SerializationException, ShoalError, UnknownOperationException
from shoal.replication import apply as replica_apply
from shoal.replication import authorization, control, legacy, versions
from shoal.replication.legacy_ops import ASKING_PEERS as LEGACY_ASKING_PEERS
from shoal.replication.replica_scaling import ASKING_PEERS as SCALING_ASKING_PEERS

#: DynamoDB operations that wait for other regions: run on a thread of their own.
ASKING_PEERS = LEGACY_ASKING_PEERS | SCALING_ASKING_PEERS

TARGET_PREFIX = "ShoalReplication_20261206."
ACTION = "shoal:Replicate"
_DYNAMODB = "DynamoDB_20120810."
_SCREENED = (_DYNAMODB, "DynamoDBStreams_20120810.")
#: Item operations that run as consensus rounds on an MRSC table, off the
#: event loop (the reads only with ConsistentRead: ``_names_strong_table``).
_STRONG_ITEM_OPERATIONS = frozenset(("PutItem", "UpdateItem", "DeleteItem", "GetItem", "Query", "Scan"))
#: Reads that are rounds only with ConsistentRead (otherwise the region's own table, on the loop).
_STRONG_READS = frozenset(("GetItem", "Query", "Scan"))
STRONG_THREADS = 32  # concurrent MRSC item requests per worker
_REFUSED_ON_STRONG = frozenset(("ExecuteTransaction",))
#: Operations whose writes to an MRSC table are consensus rounds (through the
#: item operations), so they run off the event loop when they write one.
_STRONG_WRITERS = frozenset(("BatchWriteItem", "ExecuteStatement", "BatchExecuteStatement"))


def _tables_written(operation: str, data: dict) -> set[str]:
    """The tables a request writes (for ExecuteTransaction: names at all)."""
    if operation == "BatchWriteItem":
        return {n.rpartition("/")[2] if n.startswith("arn:") else n for n in data["RequestItems"]}
    from shoal.partiql import parse_statement
    from shoal.partiql.ast import Select

    if operation == "ExecuteStatement":
        texts = [data["Statement"]]
    elif operation == "BatchExecuteStatement":
        texts = [s["Statement"] for s in data["Statements"]]
    else:
        texts = [s["Statement"] for s in data["TransactStatements"]]
    names = set()
    for text in texts:
        try:
            statement = parse_statement(text)
        except ShoalError:
            continue  # the operation words the syntax error
        if operation == "ExecuteTransaction" or not isinstance(statement, Select):
            names.add(getattr(statement, "table", None) or statement.select.table)
    return names


class PeerPausedException(ShoalError):
    """A peer's request refused because ``--peer-pause`` cuts that peer off."""

    type_name = "PeerPausedException"
    status = 503


class ReplicaInaccessibleException(ShoalError):
    """ApplyChanges refused: this region's table is INACCESSIBLE_ENCRYPTION_CREDENTIALS
    (its KMS key cannot be used here), so it takes no changes until it can.
    The sender keeps the records and sends them again later (``node``)."""

    type_name = "ReplicaInaccessibleException"
    status = 400


class NotAReplicaException(ShoalError):
    """ApplyChanges refused: this region's table of that name is not a
    replica of a global table (a table the asking region's replica could not
    be made over, CREATION_FAILED, which the sender may have been told of
    before the refusal).  The sender keeps the records, as for
    ReplicaInaccessibleException, until the replica set it is sent drops
    this region."""

    type_name = "NotAReplicaException"
    status = 400


def wrong_region(scope_region: str) -> InvalidSignatureException:
    return InvalidSignatureException(f"Credential should be scoped to a valid region, not '{scope_region}'. ")


class ReplicationService:
    """The replication endpoint of one worker, and its region screen."""

    def __init__(self, dispatcher, settings: control.Settings) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.region = settings.region
        self._coordinator = None  # the threads of the operations that wait for peers, made when first needed
        self._strong_pool = None  # the threads of MRSC tables' item requests, made when first needed

    # -- the dispatcher's hook -------------------------------------------------------------

    def screen(self, request, request_id: str):
        """None to let the dispatcher go on; else the answer: a peer's
        request, the refusal of a request signed for another region, or a
        2017.11.29 global tables operation that asks peers, run off the loop."""
        target = request.headers.get("x-amz-target", "")
        if target.startswith(TARGET_PREFIX):
            return self.handle(request, request_id, target[len(TARGET_PREFIX):])
        if self.region is not None and target.startswith(_SCREENED):
            from shoal.server.dispatch import region_of

            scope, _ = region_of(request.headers.get("authorization"), self.region)
            if scope != self.region:
                return self._error(request_id, wrong_region(scope))
        if target.startswith(_DYNAMODB) and target[len(_DYNAMODB):] in ASKING_PEERS and self.dispatcher._serving():
            return self._off_loop(request, request_id)
        if target == _DYNAMODB + "DeleteTable" and self.region is not None:
            refusal = self._refused_replica_deletion(request, request_id)
            if refusal is not None:
                return refusal
        if self.settings.strong and target[len(_DYNAMODB):] in _REFUSED_ON_STRONG and target.startswith(_DYNAMODB):
            refusal = self._refused_on_strong_table(request, request_id, target[len(_DYNAMODB):])
            if refusal is not None:
                return refusal
        if self.settings.strong and target[len(_DYNAMODB):] in _STRONG_ITEM_OPERATIONS \
                and target.startswith(_DYNAMODB) and self._names_strong_table(request) and self.dispatcher._serving():
            return self._off_loop(request, request_id, strong=True)
        operation = target[len(_DYNAMODB):]
        if self.settings.strong and operation in _STRONG_WRITERS and target.startswith(_DYNAMODB) \
                and self._writes_strong_table(request, operation) and self.dispatcher._serving():
            return self._off_loop(request, request_id, strong=True)  # its MRSC writes are rounds
        if self.settings.strong and operation == "BatchGetItem" and target.startswith(_DYNAMODB) \
                and self._reads_strong_table(request) and self.dispatcher._serving():
            return self._off_loop(request, request_id, strong=True)  # its consistent MRSC reads are rounds
        return None

    def _reads_strong_table(self, request) -> bool:
        """Whether a BatchGetItem reads one of this region's MRSC tables with
        ConsistentRead: each such key is a round (``shoal.api.batch``)."""
        body = request.body
        if not body or request.headers.get("content-encoding"):
            return False
        try:
            parts = orjson.loads(body)["RequestItems"]
            names = {name.rpartition("/")[2] if name.startswith("arn:") else name
                     for name, spec in parts.items() if spec.get("ConsistentRead") is True}
        except (ValueError, AttributeError, TypeError, KeyError):
            return False
        return bool(names & self.settings.strong)

    def _writes_strong_table(self, request, operation: str) -> bool:
        """Whether a BatchWriteItem or a PartiQL write names one of this
        region's MRSC tables."""
        body = request.body
        if not body or request.headers.get("content-encoding"):
            return False
        try:
            data = orjson.loads(body)
            from shoal.api.partiql import consistent_reads  # a PartiQL SELECT with ConsistentRead is a round too

            return bool((_tables_written(operation, data) | consistent_reads(operation, data)) & self.settings.strong)
        except (ValueError, AttributeError, TypeError, KeyError, ShoalError):
            return False

    def _refused_on_strong_table(self, request, request_id: str, operation: str):
        """ExecuteTransaction naming an MRSC table is refused: DynamoDB has
        no transactions on MRSC tables.  The caller is
        authenticated first, so that the refusal tells no one else which
        tables are MRSC.  A body this cannot read is left to the operation."""
        body = request.body
        if not body or request.headers.get("content-encoding"):
            return None
        try:
            strong = sorted(_tables_written(operation, orjson.loads(body)) & self.settings.strong)
        except (ValueError, AttributeError, TypeError, KeyError, ShoalError):  # orjson's error is a ValueError
            return None
        if not strong:
            return None
        from shoal.errors import ValidationException

        message = ("ExecuteTransaction is not supported on multi-Region strong consistency global tables: "
                   + ", ".join(strong))
        try:
            if self.dispatcher.gate is not None:
                self.dispatcher.gate.authenticate(request, operation=operation, request_id=request_id)
            raise ValidationException(message)
        except ShoalError as exc:
            return self._error(request_id, exc)

    def _refused_replica_deletion(self, request, request_id: str):
        """DeleteTable of one replica of an MRSC table is refused: the
        Developer Guide's MRSC deletion tutorial says a single replica table
        cannot be deleted from an MRSC global table; the other regions are
        removed together with UpdateTable (``control.check_strong_removal``),
        leaving a single-Region table that DeleteTable can then delete.
        (DeleteTable of an MREC replica goes on: it leaves the global table,
        ``control.leave``.)  The catalog is read for every DeleteTable, not
        only for the names in ``Settings.strong``, so that a worker that has
        not seen the table become MRSC refuses it too.  The caller is
        authenticated first; a body this cannot read is left to DeleteTable."""
        body = request.body
        if not body or request.headers.get("content-encoding"):
            return None
        try:
            name = orjson.loads(body).get("TableName")
        except (ValueError, AttributeError):
            return None
        if not isinstance(name, str):
            return None
        if name.startswith("arn:"):
            name = name.rpartition("/")[2]
        dispatcher = self.dispatcher
        with dispatcher.engine.read() as txn:
            table = dispatcher.catalog.get(txn, self.region, name)
        if table is None or not control.is_strong(table.description) or not table.description.get("Replicas"):
            return None
        try:
            if dispatcher.gate is not None:
                dispatcher.gate.authenticate(request, operation="DeleteTable", request_id=request_id)
            if table.description.get("TableStatus") != "ACTIVE":  # leaving MRSC, or its witness being made
                from shoal.errors import ResourceInUseException

                raise ResourceInUseException(
                    "Attempt to change a resource which is still in use: Table is being updated: " + table.name)
            raise control.single_replica_deletion(table)
        except ShoalError as exc:
            return self._error(request_id, exc)

    def _names_strong_table(self, request) -> bool:
        """Whether an item request names one of this region's MRSC tables
        (its round waits for peers: ``shoal.replication.strong``)."""
        body = request.body
        if not body or request.headers.get("content-encoding"):
            return False
        try:
            data = orjson.loads(body)
            name = data.get("TableName")
        except (orjson.JSONDecodeError, AttributeError):
            return False
        target = request.headers.get("x-amz-target", "")
        if target[len(_DYNAMODB):] in _STRONG_READS and data.get("ConsistentRead") is not True:
            return False  # an eventually consistent read is the region's own table: it stays on the loop
        if isinstance(name, str) and name.startswith("arn:"):
            name = name.rpartition("/")[2]
        return name in self.settings.strong

    def _off_loop(self, request, request_id: str, strong: bool = False):
        """Run an operation that waits for peers (CreateGlobalTable, ...) on
        a thread of its own, so that the event loop goes on serving meanwhile;
        the dispatcher still checks, authorizes, meters and answers it."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor
        from time import perf_counter

        from shoal.server.dispatch import JSON_TYPES, _error, _response

        dispatcher = self.dispatcher
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        response_type = "application/json" if content_type == "application/json" else JSON_TYPES[0]
        started = perf_counter()
        try:
            # metered: its metrics handle; its capacity is charged off the loop (shoal.capacity.off_loop)
            _writes, job, metered = dispatcher._prepare(request, request_id, off_loop=True)
        except Exception as exc:
            if dispatcher.metrics is not None:
                dispatcher._record_failure(None, exc, request)
            return _response(request_id, response_type, *_error(exc, request_id))
        if strong:
            if self._strong_pool is None:
                self._strong_pool = ThreadPoolExecutor(max_workers=STRONG_THREADS, thread_name_prefix="shoal-mrsc")
            pool = self._strong_pool
        else:
            if self._coordinator is None:
                self._coordinator = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shoal-global-tables")
            pool = self._coordinator
        future = asyncio.get_running_loop().run_in_executor(pool, job)
        return dispatcher._respond_later(request_id, response_type, future, request.headers, metered, started)

    def handle(self, request, request_id: str, operation: str):
        handler = _OPERATIONS.get(operation)
        try:
            if operation not in _OPERATIONS:
                raise UnknownOperationException()
            data = orjson.loads(request.body) if request.body else None
            if not isinstance(data, dict) or not isinstance(data.get("TableName"), str):
                raise SerializationException()
            source = data.get("SourceRegion")
            if source in self.settings.paused:
                raise PeerPausedException(f"Replication with {source} is paused here (--peer-pause)")
            self._authorize(request, request_id, data["TableName"])
            if operation == "Ping":  # nothing to write: no group commit to wait for
                return self._ok(request_id, b"{}")
        except orjson.JSONDecodeError:
            return self._error(request_id, SerializationException())
        except ShoalError as exc:
            return self._error(request_id, exc)
        dispatcher = self.dispatcher
        ctx = Context(self.region, DEFAULT_ACCOUNT, dispatcher.engine, dispatcher.catalog, None, dispatcher.clock)

        def job() -> bytes:
            return orjson.dumps(handler(ctx, data))

        if dispatcher._serving():
            return self._later(request_id, dispatcher.committer.submit(job))
        try:
            return self._ok(request_id, job())
        except Exception as exc:
            return self._error(request_id, exc)

    def _authorize(self, request, request_id: str, table_name: str) -> None:
        gate = self.dispatcher.gate
        if gate is None:
            return
        credentials = gate.authenticate(request, "dynamodb", operation="Replicate", request_id=request_id)
        principal = credentials.identity.principal
        if principal.is_root:
            return
        from shoal.auth.actions import request_context
        from shoal.model.policy import decide, denied_message

        resource = f"arn:aws:dynamodb:{self.region}:{DEFAULT_ACCOUNT}:table/{table_name}"
        context = request_context(request.peer[0] if request.peer else None, request.secure, gate.clock())
        decision = decide(principal, ACTION, resource, context)
        if not decision.allowed:
            raise AccessDeniedException(denied_message(principal, ACTION, resource, decision))

    async def _later(self, request_id: str, future):
        try:
            body = await future
        except Exception as exc:
            return self._error(request_id, exc)
        return self._ok(request_id, body)

    @staticmethod
    def _ok(request_id: str, body: bytes):
        from shoal.server.dispatch import JSON_TYPES, _response

        return _response(request_id, JSON_TYPES[0], 200, body)

    @staticmethod
    def _error(request_id: str, exc: Exception):
        from shoal.server.dispatch import JSON_TYPES, _error, _response

        return _response(request_id, JSON_TYPES[0], *_error(exc, request_id))


# ---------------------------------------------------------------- operations


def _table(ctx, txn, name: str):
    table = ctx.catalog.get(txn, ctx.region, name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    return table


def apply_changes(ctx, data: dict) -> dict:
    with ctx.engine.write() as txn:
        table = _table(ctx, txn, data["TableName"])
        if not replica_apply.is_global(txn, table.table_id):  # never written into: it is someone else's
            raise NotAReplicaException(
                f"Table {table.name} in region {ctx.region} is not a replica of a global table")
        if table.refused_status == control.INACCESSIBLE:  # as a client's write is refused
            raise ReplicaInaccessibleException(
                f"Table {table.name} is {control.INACCESSIBLE} in region {ctx.region}: its KMS key cannot be used "
                "here, so it takes no changes until it can")
        if authorization.refused(txn, table):  # its resource-based policy denies replication: one cached check
            raise authorization.refusal(table, authorization.denial(txn, table))
        applied = replica_apply.apply_changes(txn, ctx.catalog, table, data["Records"], ctx.now())
    return {"Applied": applied}


def create_replica(ctx, data: dict) -> dict:
    """Make the table here, CREATING (refused to clients until ACTIVE), and
    keep its records for every other region of the set."""
    from shoal.api import tables, ttl

    name = data["TableName"]
    control.check_replica_target(ctx, data)  # a table of that name that is not this replica, a key unusable here
    with ctx.engine.read() as txn:
        existing = ctx.catalog.get(txn, ctx.region, name)
    if existing is None:  # (each step its own transaction: under group commit, one)
        replicas = [r for r in data["Replicas"] if r["RegionName"] != ctx.region]
        extra = {"GlobalTableVersion": control.GLOBAL_TABLE_VERSION, "Replicas": replicas}
        if data.get("MultiRegionConsistency"):
            extra["MultiRegionConsistency"] = data["MultiRegionConsistency"]
        if data.get("Witnesses"):
            extra["GlobalTableWitnesses"] = data["Witnesses"]
        tables.create_table(ctx, data["Request"], status="CREATING", extra=extra)
        if control.is_strong(extra):
            control.settings_of(ctx.engine).strong.add(name)
        spec = data.get("TimeToLive")
        if spec:
            ttl.update_time_to_live(ctx, {"TableName": name, "TimeToLiveSpecification": spec})
    with ctx.engine.write() as txn:
        existing = _table(ctx, txn, name)
        replica_apply.mark_global(txn, existing)
        head = head_position(txn)
        for replica in data["Replicas"]:
            region = replica["RegionName"]
            if region != ctx.region and replica_apply.cursor_of(txn, region, existing.table_id) is None:
                replica_apply.follow(txn, region, existing.table_id, at=head)
    return {}


def sync_replicas(ctx, data: dict) -> dict:
    """Take the replica set the coordinator sends: follow new regions (from
    where this region's cursor for the coordinator stands), forget removed
    ones, show the statuses, and become ACTIVE once this replica is.

    A set for a table that is not a replica here is ignored (answered, so
    the sender does not retry it): one a region queued before it learnt
    that this replica left (its KMS key inaccessible for 20 hours,
    ``control.remove_inaccessible_replica``; a DeleteTable) must not make
    the table left behind, or a new one of the same name, a member again.
    Membership is ``replica_apply.is_global``: ``create_replica`` marks the
    table it makes before any set is sent to it, the coordinator marks its
    own in UpdateTable, and leaving unmarks it.  A CREATING table is taken
    as a replica being made."""
    from shoal.api.catalog import update_description

    source = data["SourceRegion"]
    everyone = data["Replicas"]
    with ctx.engine.write() as txn:
        table = _table(ctx, txn, data["TableName"])
        table_id = table.table_id
        if not replica_apply.is_global(txn, table_id) and table.description.get("TableStatus") != "CREATING":
            logging.getLogger("shoal").info("table %s: a replica set from %s ignored: not a replica here",
                                            table.name, source)
            return {}
        start = replica_apply.cursor_of(txn, source, table_id)
        regions = set()
        for replica in everyone:
            region = replica["RegionName"]
            regions.add(region)
            if region != ctx.region and replica_apply.cursor_of(txn, region, table_id) is None:
                replica_apply.follow(txn, region, table_id, at=start)
        for name in list(followed_peers(txn, table_id)):
            if name not in regions:
                replica_apply.unfollow(txn, name, table_id)
        own = next((r["ReplicaStatus"] for r in everyone if r["RegionName"] == ctx.region), None)
        others = [{"RegionName": r["RegionName"], "ReplicaStatus": r["ReplicaStatus"],
                   **{m: r[m] for m in control.SHOWN_OVERRIDES if r.get(m) is not None}}
                  for r in everyone if r["RegionName"] != ctx.region]

        def change(desc: dict) -> None:
            if data.get("Witnesses"):
                desc["GlobalTableWitnesses"] = data["Witnesses"]
            if not others:  # the last other replica left: a regional table again
                desc.pop("Replicas", None)
                desc.pop("GlobalTableVersion", None)
                if desc.get("TableStatus") != "CREATING":
                    desc["TableStatus"] = "ACTIVE"
                return
            kept = {r["RegionName"]: r for r in desc.get("Replicas") or ()}
            # An ACTIVE replica this region cannot reach stays REGION_DISABLED: reachability is
            # this region's own view (the replication thread sets it back once the peer answers).
            desc["Replicas"] = [
                {**kept[r["RegionName"]], **{m: v for m, v in r.items() if m != "ReplicaStatus"}}
                if r["ReplicaStatus"] == "ACTIVE"
                and kept.get(r["RegionName"], {}).get("ReplicaStatus") == control.UNREACHABLE
                else _merged_entry(kept.get(r["RegionName"], {}), r) for r in others]
            for entry in desc["Replicas"]:
                if entry["ReplicaStatus"] != "CREATING":
                    entry.pop("ReplicaStatusPercentProgress", None)
            desc["GlobalTableVersion"] = control.GLOBAL_TABLE_VERSION
            if desc.get("TableStatus") == "CREATING" and own != "ACTIVE":
                return
            if desc.get("TableStatus") in (control.INACCESSIBLE, control.NOT_AUTHORIZED):
                return  # this region's key check, or its policy check, decides
            desc["TableStatus"] = "UPDATING" if any(r["ReplicaStatus"] == "CREATING" for r in others) else "ACTIVE"

        update_description(txn, ctx.region, table.name, table_id, change, ctx.catalog.keys)
        if not others:
            replica_apply.unmark_global(txn, table_id)
    return {}


def followed_peers(txn, table_id: str):
    """The peers this region keeps ``table_id``'s records for."""
    from shoal.api.changelog import consumers

    suffix = "/" + table_id
    for name in consumers(txn):
        if name.startswith("replica/") and name.endswith(suffix):
            yield name[len("replica/"):-len(suffix)]


def delete_replica(ctx, data: dict) -> dict:
    """Delete this region's replica: the table, its cursors and versions."""
    from shoal.api import tables

    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, ctx.region, data["TableName"])
        if table is None:
            return {}
        for peer in list(followed_peers(txn, table.table_id)):
            replica_apply.unfollow(txn, peer, table.table_id)
        replica_apply.unmark_global(txn, table.table_id)
        versions.forget_table(txn, table.prefix)
        if control.is_strong(table.description):  # an MRSC table's registers, and its seal, go with it
            from shoal.replication import strong

            strong.forget_registers(txn, ctx.region, table.name, table.prefix)
        from shoal.api.catalog import update_description

        def change(desc: dict) -> None:
            desc.pop("DeletionProtectionEnabled", None)  # the coordinator's Delete decides
            desc.pop("Replicas", None)  # the others know already (no control.leave)
            desc.pop("GlobalTableVersion", None)

        update_description(txn, ctx.region, table.name, table.table_id, change, ctx.catalog.keys)
    tables.delete_table(ctx, {"TableName": table.name})
    return {}


def legacy_describe(ctx, data: dict) -> dict:
    return legacy.member_state(ctx, data["TableName"])


def legacy_join(ctx, data: dict) -> dict:
    legacy.join(ctx, data["TableName"], data["GlobalTable"])
    return {}


def legacy_update_tables(ctx, data: dict) -> dict:
    legacy.update_tables(ctx, data["TableName"], data["Requests"])
    return {}


def _refuse_settings(ctx, name: str) -> None:
    """Another region's settings change (a GSI, TTL, ReplicaUpdates Update,
    auto scaling) refused while this region's table's resource-based policy
    denies replication (``authorization.refused``): the sender holds it and
    tries again (``node._settings_state``)."""
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
        if table is not None and authorization.refused(txn, table):
            raise authorization.refusal(table, authorization.denial(txn, table))


def replicate_index_updates(ctx, data: dict) -> dict:
    _refuse_settings(ctx, data["TableName"])
    return {"Done": control.apply_index_updates(ctx, data["TableName"], data["Request"])}


def replicate_replica_update(ctx, data: dict) -> dict:
    """Another region's ReplicaUpdates Update for this region's replica."""
    spec = data.get("Update")
    if not isinstance(spec, dict) or not isinstance(spec.get("RegionName"), str):
        raise SerializationException()
    _refuse_settings(ctx, data["TableName"])
    return {"Done": control.apply_member_update(ctx, data["TableName"], spec)}


def replicate_time_to_live(ctx, data: dict) -> dict:
    _refuse_settings(ctx, data["TableName"])
    control.apply_time_to_live(ctx, data["TableName"], data["TimeToLiveSpecification"])
    return {}


def describe_auto_scaling(ctx, data: dict) -> dict:
    from shoal.replication import replica_scaling

    return {"Replica": replica_scaling.replica_description(ctx, data["TableName"])}


def replicate_auto_scaling(ctx, data: dict) -> dict:
    from shoal.replication import replica_scaling

    if not isinstance(data.get("Changes"), list):
        raise SerializationException()
    replica_scaling.apply_changes(ctx, data["TableName"], data["Changes"])
    return {}


def seal(ctx, data: dict) -> dict:
    from shoal.replication import strong

    return strong.handle_seal(ctx, data)


def registers(ctx, data: dict) -> dict:
    from shoal.replication import strong

    if data.get("After") is not None and not isinstance(data["After"], str):
        raise SerializationException()
    return strong.handle_registers(ctx, data)


def peek_registers(ctx, data: dict) -> dict:
    from shoal.replication import strong

    if not isinstance(data.get("Keys"), list) or not all(isinstance(k, str) for k in data["Keys"]):
        raise SerializationException()
    return strong.handle_peek_registers(ctx, data)


def range_registers(ctx, data: dict) -> dict:
    from shoal.replication import strong

    return strong.handle_range_registers(ctx, data)


def delete_witness(ctx, data: dict) -> dict:
    from shoal.replication import strong

    return strong.delete_witness(ctx, data)


def paxos(ctx, data: dict) -> dict:
    from shoal.replication import strong

    return strong.handle_paxos(ctx, data)


def create_witness(ctx, data: dict) -> dict:
    from shoal.replication import strong

    return strong.create_witness(ctx, data)


def learn(ctx, data: dict) -> dict:
    from shoal.replication import strong

    return strong.handle_learn(ctx, data)


_OPERATIONS = {
    "Paxos": paxos,
    "Learn": learn,
    "CreateWitness": create_witness,
    "ApplyChanges": apply_changes,
    "CopyItems": apply_changes,
    "CreateReplica": create_replica,
    "SyncReplicas": sync_replicas,
    "DeleteReplica": delete_replica,
    "Ping": None,  # answered in ``handle``
    "LegacyDescribe": legacy_describe,
    "LegacyJoin": legacy_join,
    "LegacyUpdateTables": legacy_update_tables,
    "ReplicateIndexUpdates": replicate_index_updates,
    "ReplicateTimeToLive": replicate_time_to_live,
    "ReplicateReplicaUpdate": replicate_replica_update,
    "Seal": seal,
    "Registers": registers,
    "PeekRegisters": peek_registers,
    "RangeRegisters": range_registers,
    "DeleteWitness": delete_witness,
    "DescribeAutoScaling": describe_auto_scaling,
    "ReplicateAutoScaling": replicate_auto_scaling,
}


#: What a replica entry says of its region's reachability, which an entry that
#: is not ACTIVE and does not say it itself must not keep from before.
_REACHABILITY = ("ReplicaStatusDescription", "ReplicaInaccessibleDateTime")


def _merged_entry(kept: dict, incoming: dict) -> dict:
    """A replica's entry as SyncReplicas sends it over this region's own: an
    UPDATING (or CREATING, DELETING) entry drops a stale "has not answered
    since" of the REGION_DISABLED one it replaces."""
    merged = {**kept, **incoming}
    if incoming.get("ReplicaStatus") != "ACTIVE":
        for member in _REACHABILITY:
            if member not in incoming:
                merged.pop(member, None)
    return merged
