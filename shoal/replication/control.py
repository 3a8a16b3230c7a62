"""Replicas of a table: UpdateTable's ReplicaUpdates and what a peer asks.

The region that receives ``ReplicaUpdates`` coordinates the change.  Inside
UpdateTable's own transaction it records the new replica set in the table's
description, starts keeping the table's change records for the new peer
(``apply.follow``, held back until the copy is made) and queues the work
that talks to other regions (``tasks``); the replication thread
(``shoal.replication.node``) does that work, retrying until each peer answers:

* Create R: ``create`` (R makes the table, CREATING), ``sync`` to every other
  replica (each starts keeping its own records for R from where its cursor
  for the coordinator stands, so that nothing it wrote is in neither the
  copy nor its own stream to R), ``copy`` (the items, from read snapshots
  taken after the log position the new cursor starts at, with their
  versions), ``activate`` (the hold is lifted: R receives every change since
  that position; last writer wins makes the overlap harmless), then a
  ``sync`` of the ACTIVE status to every replica.  If R refuses to make the
  table (``check_replica_target``: a table of that name that is not this
  replica, or a KMS key R cannot use), the replica is CREATION_FAILED here
  (``replica_creation_failed``) and R is sent nothing more until a Delete
  removes the entry.
* Delete R: the peer is forgotten here at once, ``sync`` tells the others
  to stop sending to R and ``drop`` deletes R's table (last, and with
  whatever was still queued for R dropped: a gone region holds back nothing).
* Update R (its settings): the entry shows the overrides and R UPDATING;
  ``replica_update`` applies them as UpdateTable in R (a KMSMasterKeyId as
  its SSESpecification), then ``activate`` shows R ACTIVE everywhere.

``sync`` always sends the whole replica set (every region and its status),
so it is idempotent and a late one cannot undo a newer one's effect on
membership... as long as one coordinator acts at a time (see
docs/global-tables.md: concurrent ReplicaUpdates from two regions are not
serialized).
"""

from __future__ import annotations

import logging
import os
import struct

import orjson

from shoal.api.changelog import head_position
from shoal.errors import INVALID_PARAMETERS as INVALID
from shoal.errors import ShoalError, ValidationException
from shoal.replication import apply as replica_apply
from shoal.storage import keyring

GLOBAL_TABLE_VERSION = "2019.11.21"
#: A replica this region cannot reach (ReplicaDescription's status for an inaccessible region).
UNREACHABLE = "REGION_DISABLED"
TASK_PREFIX = b"repl/task/"
_TASK_ID = struct.Struct(">Q")
_NEXT_TASK = b"repl/nexttask"
#: A replica its region refused to make (ReplicaDescription's "CREATION_FAILED").
CREATION_FAILED = "CREATION_FAILED"
#: ``repl/failed/<table id>/<region>``: present while that region's replica of
#: the table is CREATION_FAILED here (until a ReplicaUpdates Delete of it).
FAILED_PREFIX = b"repl/failed/"

#: Members of a replica's entry that ReplicaUpdates' Create and Update may set and DescribeTable shows.
_OVERRIDES = ("KMSMasterKeyId", "ProvisionedThroughputOverride", "OnDemandThroughputOverride",
              "GlobalSecondaryIndexes")

# The process's replication settings, by engine (one per ``shoal serve`` worker;
# tests may hold several in one process).
_SETTINGS: dict[int, "Settings"] = {}


class Settings:
    """This deployment's region, its peers (``shoal serve --region --peer``)
    and the peers it neither sends to nor accepts from (``--peer-pause``, a
    test aid that stands for a network cut between two regions)."""

    def __init__(self, region: str | None, peers: dict[str, str], paused=(),
                 credentials: tuple[str, str] | None = None) -> None:
        self.region = region
        self.peers = dict(peers)
        self.paused = frozenset(paused)
        #: (access key, secret) signing requests to peers (--peer-credentials), or None
        self.credentials = credentials
        #: names of this region's MRSC tables known to this process: their item
        #: requests run off the event loop (a name stays after its table goes:
        #: harmless, the request just runs on a thread)
        self.strong: set[str] = set()


def configure(engine, settings: Settings) -> None:
    _SETTINGS[id(engine)] = settings


def unconfigure(engine) -> None:
    _SETTINGS.pop(id(engine), None)


def settings_of(engine) -> Settings | None:
    return _SETTINGS.get(id(engine))


# ---------------------------------------------------------------- tasks


def queue_task(txn, task: dict) -> None:
    """Queue ``task`` for the replication thread; nothing is queued for a
    region whose replica of the table could not be made (``failed_key``):
    it has no replica to receive it, and a task it cannot take would hold
    back the table's later ones."""
    if "peer" in task and txn.get("meta", failed_key(task["table_id"], task["peer"])) is not None:
        return
    raw = txn.get("meta", _NEXT_TASK)
    number = _TASK_ID.unpack(raw)[0] if raw else 1
    txn.put("meta", _NEXT_TASK, _TASK_ID.pack(number + 1))
    txn.put("meta", TASK_PREFIX + _TASK_ID.pack(number), orjson.dumps(task))


def pending_tasks(txn) -> list[tuple[bytes, dict]]:
    return [(bytes(k), orjson.loads(v)) for k, v in txn.scan("meta", TASK_PREFIX, TASK_PREFIX[:-1] + b"0")]


def failed_key(table_id: str, region: str) -> bytes:
    return FAILED_PREFIX + f"{table_id}/{region}".encode()


# ---------------------------------------------------------------- a replica that could not be made

#: The errors a peer answers CreateReplica with when it will not make the
#: replica: asking again would get the same answer.  Others (unreachable, paused,
#: authentication, a 500) are retried.
_REFUSALS = ("ValidationException", "ResourceInUseException")


def creation_refusal(status: int | None, body: bytes) -> str | None:
    """The reason a peer's answer to CreateReplica gives for refusing the
    replica (its error type and message), or None if it is not a refusal."""
    if status != 400:
        return None
    try:
        error = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(error, dict):
        return None
    kind = str(error.get("__type", "")).rsplit("#", 1)[-1]
    if kind not in _REFUSALS:
        return None
    return f"{kind}: {error.get('message') or error.get('Message') or ''}"


def replica_creation_failed(engine, catalog, region: str, task: dict, status: int | None, body: bytes) -> bool:
    """The replication thread's ``create`` task got an error from the peer:
    if it is a refusal (``creation_refusal``), show the replica
    CREATION_FAILED with the peer's reason as its ReplicaStatusDescription,
    the table ACTIVE again unless another replica is being made, stop keeping
    the table's records for that region and forget what was queued for it
    (its copy, its activation); True then (the task is done).  False for
    any other error, which the caller retries.

    The API Reference's ReplicaDescription has CREATION_FAILED ("The replica
    could not be created") without saying what follows; the replica stays
    listed, is sent nothing (``queue_task``, ``replica_set``) and is removed
    with a ReplicaUpdates Delete, which deletes nothing in its region (the
    table there, if any, is not a replica).  The other replicas, which may
    have been told of it while it was CREATING (a Create of two regions at
    once), are sent the replica set without it.  An MRSC table's failed
    replica (or witness, ``witness_creation_failed``) is no acceptor of its
    rounds either (``strong.StrongNode.acceptors``): the other two regions
    are its majority until it leaves MRSC (``check_strong_removal``)."""
    from shoal.api.catalog import update_description

    reason = creation_refusal(status, body)
    if reason is None:
        return False
    peer, table_id = task["peer"], task["table_id"]
    with engine.write() as txn:
        table = catalog.get(txn, region, task["name"])
        if table is None or table.table_id != table_id:
            return True  # the table is gone: nothing to show

        def change(desc: dict) -> None:
            for entry in desc.get("Replicas") or ():
                if entry["RegionName"] == peer:
                    entry["ReplicaStatus"] = CREATION_FAILED
                    entry["ReplicaStatusDescription"] = f"The replica in region {peer} could not be created: {reason}"
                    entry.pop("ReplicaStatusPercentProgress", None)
            if not any(r["ReplicaStatus"] == "CREATING" for r in desc.get("Replicas") or ()):
                desc["TableStatus"] = "ACTIVE"

        updated = update_description(txn, region, table.name, table_id, change, catalog.keys)
        _forget_failed_peer(txn, table_id, peer)
        _tell_others(txn, updated, peer)
    return True


def witness_creation_failed(engine, catalog, region: str, task: dict, status: int | None, body: bytes) -> bool:
    """The ``witness`` task's CreateWitness refused (``creation_refusal``):
    the witness is shown CREATION_FAILED (a status GlobalTableWitnessDescription's
    model does not list, which has CREATING, DELETING and ACTIVE: DynamoDB
    documents no failure of a witness), the reason is logged, nothing more is
    sent there, and the replicas are told.  True then; False for any other
    error, which the caller retries."""
    from shoal.api.catalog import update_description

    reason = creation_refusal(status, body)
    if reason is None:
        return False
    peer, table_id = task["peer"], task["table_id"]
    logging.getLogger("shoal").warning("the witness of table %s in region %s could not be created: %s",
                                       task["name"], peer, reason)
    with engine.write() as txn:
        table = catalog.get(txn, region, task["name"])
        if table is None or table.table_id != table_id:
            return True

        def change(desc: dict) -> None:
            for entry in desc.get("GlobalTableWitnesses") or ():
                if entry["RegionName"] == peer:
                    entry["WitnessStatus"] = CREATION_FAILED

        updated = update_description(txn, region, table.name, table_id, change, catalog.keys)
        _forget_failed_peer(txn, table_id, peer)
        _tell_others(txn, updated, peer)
    return True


def _forget_failed_peer(txn, table_id: str, peer: str) -> None:
    """Stop keeping a table's records for a region whose replica (or
    witness) could not be made, drop what was queued for it, and mark it
    (``failed_key``: nothing is queued for it from now on)."""
    replica_apply.unfollow(txn, peer, table_id)
    for key, queued in pending_tasks(txn):
        if queued["table_id"] == table_id and queued.get("peer") == peer:
            txn.delete("meta", key)
    txn.put("meta", failed_key(table_id, peer), b"")


def _tell_others(txn, table, failed: str) -> None:
    """Queue a ``sync`` of the replica set (which leaves out what could not
    be made) for every other replica of ``table`` that was made or is being
    made."""
    if table is None:
        return
    for entry in table.description.get("Replicas") or ():
        if entry["RegionName"] != failed and entry["ReplicaStatus"] != CREATION_FAILED:
            queue_task(txn, {"kind": "sync", "table_id": table.table_id, "name": table.name,
                             "peer": entry["RegionName"]})


def check_replica_target(ctx, data: dict) -> None:
    """CreateReplica's checks in the region asked to make a replica, before
    anything is made: the table name must be free, or already this replica
    (a CreateReplica sent again after an answer that was lost: a 2019.11.21
    replica listing the source region, with the request's key schema); and
    the KMS key the request names must be usable here (``kms_key_states``).
    A refusal ends with the replica CREATION_FAILED in the source region
    (``replica_creation_failed``).  The public reports of such failures (a
    table of that name already in the destination Region, a replica's KMS
    key unavailable there) give no wording: these are CreateTable's
    ResourceInUseException and Shoal's ValidationExceptions."""
    from shoal.errors import ResourceInUseException

    name, source, request = data["TableName"], data.get("SourceRegion"), data["Request"]
    with ctx.engine.read() as txn:
        existing = ctx.catalog.get(txn, ctx.region, name)
    if existing is not None:
        desc = existing.description
        ours = desc.get("GlobalTableVersion") == GLOBAL_TABLE_VERSION and any(
            r["RegionName"] == source for r in desc.get("Replicas") or ())
        if not ours:
            raise ResourceInUseException(f"Table already exists: {name}")
        if desc["KeySchema"] != request["KeySchema"] or _key_types(desc) != _key_types(request):
            raise ValidationException(
                f"{INVALID}Table {name} in region {ctx.region} has another key schema than the global table's")
        return
    key = (request.get("SSESpecification") or {}).get("KMSMasterKeyId")
    if key is not None:
        arn = kms_key_arn(key, ctx.region, ctx.account)
        problem = keyring.kms_key_problem(kms_key_states(ctx.engine), arn)
        if problem is not None:
            raise ValidationException(f"{INVALID}KMSMasterKeyId cannot be used in region {ctx.region}: {problem}")


def data_dir_of(engine) -> str | None:
    """The data directory of an engine (through the encrypting wrapper): the
    one whose ``lmdb`` subdirectory it opened; None for an engine without
    one (PostgreSQL, in memory)."""
    from shoal.storage.datadir import LMDB_DIR

    while engine is not None:
        path = getattr(engine, "path", None)
        if isinstance(path, str):
            parent, leaf = os.path.split(os.path.normpath(path))
            return parent if leaf == LMDB_DIR else path
        engine = getattr(engine, "inner", None)
    return None


def kms_key_states(engine) -> dict[str, str]:
    """This region's KMS keys that are not usable: a data directory's KMS_KEYS
    file (``keyring.read_kms_key_states``), or the meta record of a store
    shared by nodes (``keyring.stored_kms_key_states``: PostgreSQL, where
    every node reads the states ``shoal keys kms-key-state --storage`` set);
    none for another engine (in memory)."""
    from shoal.auth.iam import shares_store

    path = data_dir_of(engine)
    if path is not None:
        return keyring.read_kms_key_states(path)
    return keyring.stored_kms_key_states(engine) if shares_store(engine) else {}


# ---------------------------------------------------------------- a KMS key this region cannot use

#: A table (and, in the other regions' DescribeTable, a replica) whose KMS key
#: is inaccessible: TableStatus's and ReplicaStatus's value for it.
INACCESSIBLE = "INACCESSIBLE_ENCRYPTION_CREDENTIALS"
#: A replica whose resource-based policy denies replication (``shoal.replication.authorization``).
NOT_AUTHORIZED = "REPLICATION_NOT_AUTHORIZED"
#: Between the replication thread's checks of this region's tables' keys.
KEY_CHECK_S = 1.0
# Per engine: whether a full check is still needed (the first, or a table may
# be marked inaccessible); skipped otherwise while no key is marked unusable.
_KEYS_CHECKED: dict[int, bool] = {}
_KEY_LIST_ERRORS: dict[int, str] = {}  # the last error reading the key states, logged once


def check_encryption_keys(engine, catalog, region: str, now: float) -> bool:
    """The replication thread's check (every ``KEY_CHECK_S``) of this
    region's tables encrypted with a customer managed KMS key against the
    region's key states (``kms_key_states``): a table whose key cannot be
    used becomes INACCESSIBLE_ENCRYPTION_CREDENTIALS, with SSEDescription's
    InaccessibleEncryptionDateTime (when it was first detected), and ACTIVE
    again, without it, once the key can be used; each change of a global
    table is sent to its replicas (``sync``: ``replica_set`` gives this
    region's status), whose DescribeTable then shows this replica
    INACCESSIBLE_ENCRYPTION_CREDENTIALS.  Only an ACTIVE table is marked
    (one being changed is checked again next time).  A key that stays
    inaccessible has consequences (``_consequences``): a replica of a global
    table leaves its replication group after 20 hours, a regional table is
    archived after seven days (``shoal.api.archival``).  True if it changed a table.

    The API Reference: TableStatus INACCESSIBLE_ENCRYPTION_CREDENTIALS, "The
    KMS key used to encrypt the table in inaccessible"; SSEDescription's
    InaccessibleEncryptionDateTime, "automatically cleared when DynamoDB
    detects that the table's KMS key is accessible again"; ReplicaStatus
    INACCESSIBLE_ENCRYPTION_CREDENTIALS, "The KMS key used to encrypt the
    table is inaccessible"."""
    from shoal.api import archival
    from shoal.api.catalog import update_description

    try:
        states = kms_key_states(engine)
    except keyring.KeyringError as exc:  # a damaged list: nothing changes until it is readable
        if _KEY_LIST_ERRORS.get(id(engine)) != str(exc):
            _KEY_LIST_ERRORS[id(engine)] = str(exc)
            logging.getLogger("shoal").warning("KMS key states not checked: %s", exc)
        return False
    _KEY_LIST_ERRORS.pop(id(engine), None)
    if not states and not _KEYS_CHECKED.get(id(engine), True):
        return False
    changes = []
    due = []  # (what, table): the consequences of a key that stays inaccessible
    marked = False
    with engine.read() as txn:
        for name in catalog.iter_names(txn, region):
            table = catalog.get(txn, region, name)
            if table is None:
                continue
            desc = table.description
            if desc.get("TableStatus") == archival.ARCHIVING:  # whatever its key's state now
                marked = True
                if archival.backup_due(desc, now):
                    due.append((archival.finish, table))
                continue
            arn = _table_key(desc)
            shown = desc.get("TableStatus") == INACCESSIBLE
            marked = marked or shown
            if not _customer_managed(arn) and not shown:
                continue
            problem = keyring.kms_key_problem(states, arn) if _customer_managed(arn) else None
            if (problem is not None and desc.get("TableStatus") == "ACTIVE") or (problem is None and shown):
                changes.append((table, problem is not None))
            elif problem is not None and shown:
                consequence = _consequence(txn, table, now)
                if consequence is not None:
                    due.append((consequence, table))
    for table, inaccessible in changes:
        with engine.write() as txn:
            # A key usable again while the replica's policy denies replication: REPLICATION_NOT_AUTHORIZED
            # at once (``authorization``: the first state reached is shown while both hold).
            denied = not inaccessible and _policy_denies_replication(txn, table)

            def change(desc: dict, inaccessible=inaccessible, denied=denied) -> None:
                sse = desc.setdefault("SSEDescription", {})
                if inaccessible:
                    desc["TableStatus"] = INACCESSIBLE
                    sse.setdefault("InaccessibleEncryptionDateTime", round(now, 3))
                elif desc.get("TableStatus") == INACCESSIBLE:
                    desc["TableStatus"] = NOT_AUTHORIZED if denied else "ACTIVE"
                    sse.pop("InaccessibleEncryptionDateTime", None)

            updated = update_description(txn, region, table.name, table.table_id, change, catalog.keys)
            if denied and updated is not None and updated.description.get("TableStatus") == NOT_AUTHORIZED:
                from shoal.replication import authorization

                authorization.put_mark(txn, table.table_id, now)
            if updated is None or updated.description.get("GlobalTableVersion") != GLOBAL_TABLE_VERSION:
                continue
            for replica in updated.description.get("Replicas") or ():
                queue_task(txn, {"kind": "sync", "table_id": table.table_id, "name": table.name,
                                 "peer": replica["RegionName"]})
    acted = False
    for consequence, table in due:
        acted = consequence(engine, catalog, region, table, now) or acted
    _KEYS_CHECKED[id(engine)] = marked or any(inaccessible for _, inaccessible in changes)
    return bool(changes) or acted


def _policy_denies_replication(txn, table) -> bool:
    """Whether ``table`` is a replica (this version of global tables) whose
    resource-based policy denies replication (``authorization.denial``)."""
    from shoal.replication import authorization

    desc = table.description
    return bool(desc.get("Replicas")) and desc.get("GlobalTableVersion") == GLOBAL_TABLE_VERSION \
        and authorization.denial(txn, table) is not None


def key_unusable(engine, desc: dict) -> bool:
    """Whether the customer managed KMS key of a table (``desc``) is one its
    region cannot use now (``kms_key_states``); an unreadable list of states
    changes nothing (False), as in ``check_encryption_keys``."""
    arn = _table_key(desc)
    if not _customer_managed(arn):
        return False
    try:
        states = kms_key_states(engine)
    except keyring.KeyringError:
        return False
    return keyring.kms_key_problem(states, arn) is not None


def _consequence(txn, table, now: float):
    """What is due for ``table``, INACCESSIBLE_ENCRYPTION_CREDENTIALS since
    its SSEDescription's InaccessibleEncryptionDateTime, now: None, or the
    function doing it (called as ``check_encryption_keys`` calls ``archival.finish``).

    The API Reference's ReplicaStatus INACCESSIBLE_ENCRYPTION_CREDENTIALS:
    "If the KMS key remains inaccessible for more than 20 hours, DynamoDB
    will remove this replica from the replication group. The replica will
    not be deleted and replication will stop from and to this region"
    (``remove_inaccessible_replica``).  A regional table is archived after
    seven days (``archival.begin``).  A replica of an MRSC table, and a
    member of a version 2017.11.29 global table, stay as they are: DynamoDB
    documents nothing for them (MRSC replicas that cannot replicate for other
    reasons become permanently inaccessible, not removed)."""
    from shoal.api import archival

    desc = table.description
    since = (desc.get("SSEDescription") or {}).get("InaccessibleEncryptionDateTime")
    if since is None:
        return None
    if desc.get("Replicas") or desc.get("GlobalTableVersion") or replica_apply.is_global(txn, table.table_id):
        removable = desc.get("GlobalTableVersion") == GLOBAL_TABLE_VERSION and not is_strong(desc)
        if removable and now - since >= archival.CONFIG.replica_removal_s:
            return remove_inaccessible_replica
        return None
    return archival.begin if archival.archival_due(desc, now) else None


def remove_inaccessible_replica(engine, catalog, region: str, table, now: float) -> bool:
    """Remove this region's replica, whose KMS key has been inaccessible for
    20 hours, from its replication group (``remove_replica``): its table
    stays, a regional table, still INACCESSIBLE_ENCRYPTION_CREDENTIALS and
    archived in its turn.  True if it removed it."""
    return remove_replica(engine, catalog, region, table, still=is_inaccessible,
                          why="its KMS key stayed inaccessible")


def remove_replica(engine, catalog, region: str, table, still, why: str) -> bool:
    """Remove this region's replica from its replication group, while
    ``still(current table)`` holds: it leaves as DeleteTable's replica does
    (``leave``: the others are sent the set without it, and forget it; this
    region stops keeping records for them) but its table stays, a regional
    table.  What was queued here for the others is dropped first: a replica
    set sent after the removal would make it a member again; a set another
    region queued before it learnt of the removal is ignored here
    (``protocol.sync_replicas``: the table is no longer marked global).
    A KMS key inaccessible for 20 hours (``remove_inaccessible_replica``) and
    replication not authorized for 20 hours (``authorization.check``) do
    this.  True if it removed it."""
    from shoal.api.catalog import update_description

    with engine.write() as txn:
        current = catalog.get(txn, region, table.name)
        if current is None or current.table_id != table.table_id or not still(current) \
                or not current.description.get("Replicas"):
            return False
        _drop_tasks(txn, table.table_id, [r["RegionName"] for r in current.description["Replicas"]])
        leave(txn, current)

        def change(desc: dict) -> None:
            desc.pop("Replicas", None)
            desc.pop("GlobalTableVersion", None)

        update_description(txn, region, table.name, table.table_id, change, catalog.keys)
    logging.getLogger("shoal").warning("table %s: %s: this replica left its global table's replication group",
                                       table.name, why)
    return True


#: How DynamoDB words a request that needs a KMS key it cannot use, by the
#: key's state: KMS's exception wrapped in DynamoDB's ValidationException
#: (head, KMS exception).
_KMS_ERRORS = {
    "Disabled": ("KMS key disabled error", "DisabledException"),
    "PendingDeletion": ("KMS validation error", "KMSInvalidStateException"),
    "Deleted": ("KMS validation error", "NotFoundException"),
}


def kms_key_error(engine, arn: str, assume_disabled: bool = False) -> ValidationException | None:
    """DynamoDB's error for a request that needs the KMS key ``arn`` of this
    region while the key cannot be used (``kms_key_states``), None if it can.

    Recorded against DynamoDB (ack-api-quirks, October 2026): CreateTable and
    UpdateTable naming such a key (DDB-TABLE-020/021/139/461), and item and
    KMS-dependent table requests on a table whose key it is (DDB-TABLE-331/333),
    answer HTTP 400 ValidationException, "KMS key disabled error:
    com.amazonaws.services.kms.model.DisabledException: <key ARN> is
    disabled. (Service: AWSKMS; Status Code: 400; Error Code:
    DisabledException; Request ID: <uuid>; Proxy: null)"; a key pending
    deletion "KMS validation error: ...KMSInvalidStateException: <key ARN> is
    pending deletion. (...)"; a key that does not exist "KMS validation
    error: ...NotFoundException: Key '<key ARN>' does not exist (...)", an
    alias "Alias <alias ARN> is not found. (...)" (DDB-TABLE-037).  A key
    marked by alias is named by its alias ARN: Shoal has no KMS to resolve it
    to its key, which DynamoDB's message names.  With ``assume_disabled`` a
    usable key (or an unreadable KMS_KEYS) is worded as disabled: a table
    still shown INACCESSIBLE_ENCRYPTION_CREDENTIALS until the next key check."""
    import uuid

    try:
        states = kms_key_states(engine)
    except keyring.KeyringError:
        states = {}
    state = states.get(keyring.kms_key_id(arn))
    if state not in _KMS_ERRORS:
        if not assume_disabled:
            return None
        state = "Disabled"
    head, kind = _KMS_ERRORS[state]
    if state == "Deleted" and keyring.kms_key_id(arn).startswith("alias/"):
        problem = f"Alias {arn} is not found."
    else:
        problem = keyring.kms_key_problem({keyring.kms_key_id(arn): state}, arn)
    return ValidationException(
        f"{head}: com.amazonaws.services.kms.model.{kind}: {problem} (Service: AWSKMS; Status Code: 400; "
        f"Error Code: {kind}; Request ID: {uuid.uuid4()}; Proxy: null)")


def inaccessible_error(engine, table) -> ShoalError:
    """The error of a request that needs the KMS key of ``table`` while it is
    INACCESSIBLE_ENCRYPTION_CREDENTIALS (``kms_key_error``, naming the
    table's key): item requests (``Catalog.require`` raises it), and the
    table requests DynamoDB refuses then (DDB-TABLE-333: UpdateTimeToLive,
    CreateBackup, UpdateContributorInsights and any SSESpecification change,
    which names the old key).  The API Reference says only that "table
    operations may fail due to failure to use the KMS key".  The key's state
    is read here, off the hot path (only a refused request gets this far).
    An ARCHIVING or ARCHIVED table is refused as archived (``archival.refusal``)."""
    from shoal.api import archival

    if archival.is_archived(table.description):
        return archival.refusal(table)
    return description_key_error(engine, table.description)


def description_key_error(engine, desc: dict) -> ValidationException:
    """``inaccessible_error`` of the table described by ``desc`` (a snapshot's)."""
    return kms_key_error(engine, _table_key(desc) or "", assume_disabled=True)


def is_inaccessible(table) -> bool:
    """Whether ``table`` is INACCESSIBLE_ENCRYPTION_CREDENTIALS (its key
    cannot be used here: ``check_encryption_keys``), or ARCHIVING or
    ARCHIVED after that (``shoal.api.archival``): the requests that need
    the key are refused (``inaccessible_error``)."""
    return table.description.get("TableStatus") in (INACCESSIBLE, "ARCHIVING", "ARCHIVED")


def _key_types(desc: dict) -> dict:
    keys = {k["AttributeName"] for k in desc["KeySchema"]}
    return {d["AttributeName"]: d["AttributeType"] for d in desc["AttributeDefinitions"] if d["AttributeName"] in keys}


# ---------------------------------------------------------------- ReplicaUpdates


def check_replica_updates(ctx, table, request: dict) -> None:
    """DynamoDB's rules on ReplicaUpdates, before anything is written."""
    settings = settings_of(ctx.engine)
    updates = request["ReplicaUpdates"]
    if settings is None or settings.region is None:
        raise ValidationException(
            f"{INVALID}ReplicaUpdates needs a deployment that is the home of one region: "
            "start Shoal with --region and --peer REGION=URL")
    if is_strong(table.description):
        if any(u.get("Create") is not None for u in updates):
            raise ValidationException(
                f"{INVALID}Replicas cannot be added to a multi-Region strong consistency global table")
        if all(u.get("Update") is not None and u.get("Delete") is None for u in updates):
            _check_member_updates(settings, table, updates)
            _check_replica_keys(table, updates)
            _check_not_in_use(table.description, strong=True)
            return
        if any(u.get("Delete") is None for u in updates):
            raise ValidationException(
                f"{INVALID}ReplicaUpdates of a multi-Region strong consistency global table either update replicas "
                "or remove the other regions, not both in one UpdateTable")
        check_strong_removal(ctx, table, request)
        return
    current = {r["RegionName"] for r in table.description.get("Replicas") or ()}
    seen = set()
    for update in updates:
        actions = [a for a in ("Create", "Update", "Delete", "Disassociate") if update.get(a) is not None]
        if len(actions) != 1:
            raise ValidationException(
                f"{INVALID}One of ReplicationGroupUpdate.Create, ReplicationGroupUpdate.Update, "
                "ReplicationGroupUpdate.Delete must be specified")
        action = actions[0]
        if action == "Disassociate":
            raise ValidationException("Shoal does not support ReplicaUpdates Disassociate yet")
        region = update[action]["RegionName"]
        if region in seen:
            raise ValidationException(f"{INVALID}Only one replica update per region is allowed: {region}")
        seen.add(region)
        if region == settings.region:
            raise ValidationException(f"{INVALID}Replica region {region} is the region of the table itself")
        if action == "Create":
            if region in current:
                raise ValidationException(f"{INVALID}Replica already exists in region {region}")
            if region not in settings.peers:
                raise ValidationException(
                    f"{INVALID}Region {region} is not a peer of this deployment (shoal serve --peer {region}=URL)")
            table_class = update["Create"].get("TableClassOverride")
            if table_class is not None:
                from shoal.api.tables import check_table_class

                check_table_class(table_class)
        elif region not in current:
            raise ValidationException(f"{INVALID}Replica does not exist in region {region}")
    _check_member_updates(settings, table, [u for u in updates if u.get("Update") is not None])
    _check_replica_keys(table, updates)
    if any(u.get("Create") is not None for u in updates):
        _check_replication_allowed(ctx, table)
    _check_not_in_use(table.description, strong=False,
                      deleting={u["Delete"]["RegionName"] for u in updates if u.get("Delete") is not None})


def _check_replication_allowed(ctx, table) -> None:
    """A replica is not added to a table whose resource-based policy denies
    the replication service-linked role an action it needs: the Developer
    Guide's "DynamoDB resource-based policy considerations" says that adding
    (or deleting) a replica "will fail with an error" then.  Deleting one is
    left to succeed: the guide's "DynamoDB global tables security", about a
    replica already REPLICATION_NOT_AUTHORIZED, says "replica deletion will
    succeed" (``check_strong_removal``, ``_check_not_in_use``).  The error's
    words are not documented: they are Shoal's."""
    from shoal.replication import authorization

    with ctx.engine.read() as txn:  # (a read beside the request's write: the stored policy, one get)
        action = authorization.denial(txn, table)
    if action is not None:
        raise ValidationException(
            f"{INVALID}Replicas cannot be added to table {table.name}: its resource-based policy denies the "
            f"replication service-linked role {authorization.SLR_NAME} {action}; allow it (PutResourcePolicy or "
            "DeleteResourcePolicy) and add the replica again")


def _check_not_in_use(desc: dict, strong: bool, deleting=frozenset()) -> None:
    """A replica CREATING or UPDATING (or, on an MRSC table, anything not
    ACTIVE: the table leaving MRSC, a witness being made) is
    ResourceInUseException.  An unreachable replica (REGION_DISABLED) is
    still a member: it can be deleted or updated, and others added; so is
    one whose KMS key its region cannot use (INACCESSIBLE_ENCRYPTION_CREDENTIALS)
    and one that could not be made (CREATION_FAILED), which can be deleted.  A
    replica UPDATING can be deleted (``deleting``): its change may wait for
    a region that is gone, and deleting it drops what was queued for it
    (``_drop_tasks``)."""
    busy = any(r["ReplicaStatus"] not in ("ACTIVE", UNREACHABLE, CREATION_FAILED, INACCESSIBLE, NOT_AUTHORIZED)
               and not (r["ReplicaStatus"] == "UPDATING" and r["RegionName"] in deleting)
               for r in desc.get("Replicas") or ())
    if strong:
        busy = busy or desc.get("TableStatus") not in ("ACTIVE", NOT_AUTHORIZED) or any(
            w.get("WitnessStatus") not in ("ACTIVE", CREATION_FAILED) for w in desc.get("GlobalTableWitnesses") or ())
    if busy:
        from shoal.errors import ResourceInUseException

        raise ResourceInUseException(
            "Attempt to change a resource which is still in use: Table is being updated: " + desc["TableName"])


def _billing(desc: dict) -> str:
    return (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")


def _check_member_updates(settings, table, updates: list) -> None:
    """ReplicaUpdates' Update actions (UpdateReplicationGroupMemberAction):
    the region is another replica of the table (a witness has no table to
    update), a table class is a class, a throughput override matches the
    table's billing mode (ProvisionedThroughputOverride on a provisioned
    table, OnDemandThroughputOverride on an on-demand one, as UpdateTable's
    own members do), and an index override names one of the table's GSIs.
    DynamoDB documents these members, not the wording of their refusals: the
    messages are Shoal's, after UpdateTable's."""
    desc = table.description
    replicas = {r["RegionName"] for r in desc.get("Replicas") or ()}
    failed = {r["RegionName"] for r in desc.get("Replicas") or () if r["ReplicaStatus"] == CREATION_FAILED}
    indexes = {g["IndexName"] for g in desc.get("GlobalSecondaryIndexes") or ()}
    billing = _billing(desc)
    seen = set()
    for update in updates:
        spec = update["Update"]
        region = spec["RegionName"]
        if region in seen:
            raise ValidationException(f"{INVALID}Only one replica update per region is allowed: {region}")
        seen.add(region)
        if settings is not None and region == settings.region:
            raise ValidationException(f"{INVALID}Replica region {region} is the region of the table itself")
        if region not in replicas:
            raise ValidationException(f"{INVALID}Replica does not exist in region {region}")
        if region in failed:
            if is_strong(desc):  # no replica can be added to it again: only leaving MRSC removes it
                raise ValidationException(
                    f"{INVALID}The replica in region {region} could not be created: remove it, with every other "
                    "region of the multi-Region strong consistency global table, in one UpdateTable")
            raise ValidationException(
                f"{INVALID}The replica in region {region} could not be created: delete it with ReplicaUpdates "
                "Delete, then create it again")
        if spec.get("TableClassOverride") is not None:
            from shoal.api.tables import check_table_class

            check_table_class(spec["TableClassOverride"])
        for scope, part in [(f"table {table.name}", spec), *(
                (f"index {g['IndexName']}", g) for g in spec.get("GlobalSecondaryIndexes") or ())]:
            if part is not spec and part["IndexName"] not in indexes:
                raise ValidationException(
                    f"{INVALID}Global secondary index {part['IndexName']} does not exist in table {table.name}")
            if part.get("ProvisionedThroughputOverride") is not None and billing != "PROVISIONED":
                raise ValidationException(
                    f"{INVALID}ProvisionedThroughputOverride for {scope} cannot be specified when the table "
                    "BillingMode is PAY_PER_REQUEST")
            if part.get("OnDemandThroughputOverride") is not None and billing != "PAY_PER_REQUEST":
                raise ValidationException(
                    f"{INVALID}OnDemandThroughputOverride for {scope} cannot be specified when the table "
                    "BillingMode is PROVISIONED")


#: The AWS managed key of DynamoDB, which every region has under this alias.
AWS_MANAGED_KEY = "alias/aws/dynamodb"


def kms_key_arn(key: str, region: str, account: str) -> str:
    """The ARN a KMSMasterKeyId (key id, key ARN, alias name or alias ARN)
    stands for in ``region``: SSEDescription's KMSMasterKeyArn, as
    ``shoal.api.tables`` makes it for SSESpecification."""
    if key.startswith("arn:"):
        return key
    return f"arn:aws:kms:{region}:{account}:{key if key.startswith('alias/') else 'key/' + key}"


def _table_key(desc: dict) -> str | None:
    """The KMS key ARN a table is encrypted with (None: the AWS owned key)."""
    sse = desc.get("SSEDescription") or {}
    return sse.get("KMSMasterKeyArn") if sse.get("SSEType") == "KMS" else None


def _customer_managed(arn: str | None) -> bool:
    return arn is not None and not arn.endswith(":" + AWS_MANAGED_KEY)


def _check_replica_keys(table, updates: list) -> None:
    """ReplicaUpdates' KMSMasterKeyId: a KMS key is regional, so a key given
    by ARN must be one of the replica's region ("The key must be created in
    the same region as the replica", CloudFormation's ReplicaSSESpecification),
    and a table encrypted with a customer managed key gets no replica
    without a key of the replica's region ("each regional replica of your
    global table requires a regional customer managed key", AWS's
    announcement of customer managed keys for global tables, November
    2020).  A table with the AWS managed key gets the replica region's
    own.  DynamoDB's messages for these are not documented: Shoal's."""
    for update in updates:
        for action in ("Create", "Update"):
            spec = update.get(action)
            if spec is None:
                continue
            region, key = spec["RegionName"], spec.get("KMSMasterKeyId")
            if key is not None and key.startswith("arn:") and key.split(":")[3:4] != [region]:
                raise ValidationException(
                    f"{INVALID}KMSMasterKeyId {key} is not a key of replica region {region}: "
                    "a replica's KMS key must be in the replica's region")
            if action == "Create" and key is None and _customer_managed(_table_key(table.description)):
                raise ValidationException(
                    f"{INVALID}Table {table.name} is encrypted with a customer managed KMS key: the replica in "
                    f"region {region} needs KMSMasterKeyId, a key of that region")


#: The region sets of multi-Region strong consistency: an MRSC table's three
#: regions (replicas and witness) lie in one (DynamoDB's documentation of
#: GlobalTableWitnessGroupUpdate and the Developer Guide's MRSC pages).
REGION_SETS = {
    "US": ("us-east-1", "us-east-2", "us-west-2"),
    "EU": ("eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"),
    "AP": ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3"),
}
STRONG = "STRONG"


def is_strong(desc: dict) -> bool:
    """Whether a table's description makes it an MRSC global table."""
    return desc.get("MultiRegionConsistency") == STRONG


def strong_tables(engine, catalog, region: str) -> set[str]:
    """The names of ``region``'s MRSC tables (read when a worker starts)."""
    with engine.read() as txn:
        return {name for name in catalog.iter_names(txn, region)
                if (table := catalog.get(txn, region, name)) is not None and is_strong(table.description)}


def region_set(region: str) -> str | None:
    return next((name for name, regions in REGION_SETS.items() if region in regions), None)


def check_strong_removal(ctx, table, request: dict) -> None:
    """DynamoDB's rules for removing regions from an MRSC table: it becomes a
    single-Region table in the region that asks, so the request removes every
    other region at once, both other replicas, or the other replica and the
    witness together ("You cannot delete a single witness from a MRSC global
    table - you must delete both a replica and the witness together", the API
    Reference's DeleteGlobalTableWitnessGroupMemberAction).  The messages are
    Shoal's."""
    settings = settings_of(ctx.engine)
    desc = table.description
    replicas = {r["RegionName"] for r in desc.get("Replicas") or ()}
    witnesses = {w["RegionName"] for w in desc.get("GlobalTableWitnesses") or ()}
    deleted = [u["Delete"]["RegionName"] for u in request.get("ReplicaUpdates") or ()]
    witness_updates = request.get("GlobalTableWitnessUpdates") or ()
    if any(w.get("Delete") is None for w in witness_updates):
        raise ValidationException(
            f"{INVALID}A witness can only be added when a multi-Region strong consistency global table is created")
    removed_witnesses = [w["Delete"]["RegionName"] for w in witness_updates]
    for region in deleted:
        if settings is not None and region == settings.region:
            raise ValidationException(f"{INVALID}Replica region {region} is the region of the table itself")
        if region not in replicas:
            raise ValidationException(f"{INVALID}Replica does not exist in region {region}")
    for region in removed_witnesses:
        if region not in witnesses:
            raise ValidationException(f"{INVALID}Witness does not exist in region {region}")
    if len(set(deleted)) != len(deleted) or len(removed_witnesses) > 1:
        raise ValidationException(f"{INVALID}Only one replica update per region is allowed")
    if set(deleted) != replicas or set(removed_witnesses) != witnesses:
        others = sorted(replicas) + [f"{w} (witness)" for w in sorted(witnesses)]
        raise ValidationException(
            f"{INVALID}Regions of a multi-Region strong consistency global table are removed all at once, leaving "
            f"a single-Region table: remove {' and '.join(others)} in one UpdateTable")
    if request.get("MultiRegionConsistency") is not None:
        raise ValidationException(
            f"{INVALID}The consistency mode of a global table cannot be changed after it is created: "
            f"table {table.name} already has replicas")
    # (an UPDATING replica may be removed: its queued change is dropped, ``_leave_strong``; one
    # that could not be made is only forgotten)
    # A replica whose policy denies replication (REPLICATION_NOT_AUTHORIZED) is removable too: the
    # Developer Guide says replica deletion succeeds then.
    removable = ("ACTIVE", UNREACHABLE, "UPDATING", CREATION_FAILED, NOT_AUTHORIZED)
    if any(r.get("ReplicaStatus") not in removable for r in desc.get("Replicas") or ()) or any(
            w.get("WitnessStatus") not in ("ACTIVE", CREATION_FAILED) for w in desc.get("GlobalTableWitnesses") or ()) \
            or desc.get("TableStatus") not in ("ACTIVE", NOT_AUTHORIZED):
        from shoal.errors import ResourceInUseException

        raise ResourceInUseException(
            "Attempt to change a resource which is still in use: Table is being updated: " + table.name)


def single_replica_deletion(table) -> ValidationException:
    """DeleteTable's refusal of one replica of an MRSC table (the Developer
    Guide: a single replica table cannot be deleted from an MRSC global
    table; the message is Shoal's, naming the UpdateTable that is allowed)."""
    desc = table.description
    others = sorted(r["RegionName"] for r in desc.get("Replicas") or ()) + [
        f"{w['RegionName']} (witness)" for w in sorted(desc.get("GlobalTableWitnesses") or (),
                                                      key=lambda w: w["RegionName"])]
    return ValidationException(
        f"{INVALID}Table {table.name} is a replica of a multi-Region strong consistency global table: a single "
        f"replica cannot be deleted. Remove {' and '.join(others)} in one UpdateTable, leaving a single-Region "
        "table, then delete it")


def check_consistency_update(ctx, txn, table, request: dict) -> None:
    """UpdateTable's MultiRegionConsistency and GlobalTableWitnessUpdates,
    checked before anything is written.

    DynamoDB documents the rules (MultiRegionConsistency "is only valid when
    you create a global table by specifying one or more Create actions in the
    ReplicaUpdates action list"; the mode cannot change once the table is
    global; MRSC is three replicas, or two and one witness, of one region set,
    on an empty table without TTL or LSI) but not the messages of their
    ValidationExceptions: those are Shoal's (docs/mrsc.md)."""
    mode = request.get("MultiRegionConsistency")
    witnesses = request.get("GlobalTableWitnessUpdates")
    if is_strong(table.description) and any(w.get("Delete") is not None for w in witnesses or ()):
        check_strong_removal(ctx, table, request)  # (ReplicaUpdates was checked by the same rule)
        return
    if witnesses is not None:
        if any(w.get("Delete") is not None for w in witnesses):
            raise ValidationException(
                f"{INVALID}Witness does not exist in region {next(w['Delete']['RegionName'] for w in witnesses if w.get('Delete') is not None)}")
        if mode != STRONG:
            raise ValidationException(
                f"{INVALID}GlobalTableWitnessUpdates is only valid when creating a multi-Region strong consistency "
                "global table (MultiRegionConsistency STRONG with ReplicaUpdates)")
        if len(witnesses) != 1 or witnesses[0].get("Create") is None:
            raise ValidationException(f"{INVALID}Only one witness can be configured per multi-Region strong "
                                      "consistency global table")
    updates = request.get("ReplicaUpdates") or ()
    creates = [u["Create"]["RegionName"] for u in updates if u.get("Create") is not None]
    if not creates:
        raise ValidationException(
            f"{INVALID}MultiRegionConsistency is only valid when creating a global table "
            "with one or more Create actions in ReplicaUpdates")
    if table.description.get("Replicas"):
        raise ValidationException(
            f"{INVALID}The consistency mode of a global table cannot be changed after it is created: "
            f"table {table.name} already has replicas")
    if mode != STRONG:
        return
    witness = witnesses[0]["Create"]["RegionName"] if witnesses else None
    if len(updates) != len(creates) or len(creates) + (witness is not None) != 2:
        raise ValidationException(
            f"{INVALID}A multi-Region strong consistency global table must have exactly three replicas, or two "
            "replicas and one witness: ReplicaUpdates must create two replicas in other Regions, or one replica "
            "and GlobalTableWitnessUpdates one witness")
    own = ctx.region
    home = region_set(own)
    if home is None:
        raise ValidationException(
            f"{INVALID}Multi-Region strong consistency is not available in Region {own}")
    for region in creates + ([witness] if witness is not None else []):
        if region_set(region) != home:
            raise ValidationException(
                f"{INVALID}The replicas of a multi-Region strong consistency global table must be in one "
                f"Region set: {region} is not in the Region set of {own} ({', '.join(REGION_SETS[home])})")
    if witness is not None:
        settings = settings_of(ctx.engine)
        if witness in (own, *creates):
            raise ValidationException(
                f"{INVALID}The witness must be in a different Region than the replicas: {witness}")
        if witness not in settings.peers:
            raise ValidationException(
                f"{INVALID}Region {witness} is not a peer of this deployment (shoal serve --peer {witness}=URL)")
    from shoal.api.catalog import read_stats

    if read_stats(txn, table.prefix)[0]:
        raise ValidationException(
            f"{INVALID}Multi-Region strong consistency can only be enabled on an empty table: "
            f"table {table.name} has items")
    if table.description.get("LocalSecondaryIndexes"):
        raise ValidationException(
            f"{INVALID}Multi-Region strong consistency global tables do not support local secondary indexes")
    from shoal.api.ttl import read_setting

    setting = read_setting(txn, table.prefix)
    if setting is not None and setting.get("status") in ("ENABLED", "ENABLING"):
        raise ValidationException(
            f"{INVALID}Multi-Region strong consistency global tables do not support Time to Live: "
            f"disable it on table {table.name} first")


def apply_consistency_update(txn, ctx, table, desc: dict, request: dict) -> None:
    """Record what ``check_consistency_update`` accepted in ``desc`` and queue
    the witness's creation; an MRSC table's item requests are from then on
    served off the event loop (``Settings.strong``, for
    ``protocol.ReplicationService.screen``)."""
    mode = request.get("MultiRegionConsistency")
    if mode is None:  # a witness removed with the other replica: ``apply_replica_updates`` did it
        return
    desc["MultiRegionConsistency"] = mode
    if mode != STRONG:
        return
    settings = settings_of(ctx.engine)
    if settings is not None:
        settings.strong.add(table.name)
    for update in request.get("GlobalTableWitnessUpdates") or ():
        region = update["Create"]["RegionName"]
        desc["GlobalTableWitnesses"] = [{"RegionName": region, "WitnessStatus": "CREATING"}]
        queue_task(txn, {"kind": "witness", "table_id": table.table_id, "name": table.name, "peer": region})


def stream_for_replicas(txn, table, view_of) -> dict | None:
    """The StreamSpecification to enable with a first replica (None if the
    table already streams new and old images); refuses another view type."""
    view = view_of(txn, table)
    if view is None:
        return {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if view != "NEW_AND_OLD_IMAGES":
        raise ValidationException(
            f"{INVALID}Table {table.name} has a stream of view type {view}: a global table's replicas need "
            "NEW_AND_OLD_IMAGES (disable the stream, or enable it with NEW_AND_OLD_IMAGES)")
    return None


def apply_replica_updates(txn, ctx, table, desc: dict, request: dict, ttl_setting: dict | None) -> None:
    """Record ReplicaUpdates in ``desc`` (a fresh copy) and queue the work;
    ``table`` is the updated table (its description already ``desc``'s)."""
    if is_strong(desc):
        if all(u.get("Update") is not None for u in request["ReplicaUpdates"]):
            _update_members(txn, table, desc, request["ReplicaUpdates"])
        else:
            _leave_strong(txn, table, desc, request, settings_of(ctx.engine))
        return
    replicas = [dict(r) for r in desc.get("Replicas") or ()]
    before = {r["RegionName"] for r in replicas}
    # (regions whose replica could not be made: there is nothing to delete or tell there)
    failed = {r["RegionName"] for r in replicas if r["ReplicaStatus"] == CREATION_FAILED}
    created, deleted = [], []
    for update in request["ReplicaUpdates"]:
        if update.get("Create") is not None:
            spec = update["Create"]
            entry = {"RegionName": spec["RegionName"], "ReplicaStatus": "CREATING",
                     "ReplicaStatusPercentProgress": "0"}
            _copy_overrides(entry, spec)
            if spec.get("TableClassOverride"):
                entry["ReplicaTableClassSummary"] = {"TableClass": spec["TableClassOverride"]}
            replicas.append(entry)
            created.append(spec["RegionName"])
        elif update.get("Update") is not None:
            _record_member_update(replicas, update["Update"])
        else:
            region = update["Delete"]["RegionName"]
            replicas = [r for r in replicas if r["RegionName"] != region]
            deleted.append(region)
    if replicas:
        desc["GlobalTableVersion"] = GLOBAL_TABLE_VERSION
        desc["Replicas"] = replicas
    else:
        desc.pop("GlobalTableVersion", None)
        desc.pop("Replicas", None)
    if created:
        desc["TableStatus"] = "UPDATING"
    name, table_id = table.name, table.table_id
    if replicas:
        replica_apply.mark_global(txn, table)
    else:
        replica_apply.unmark_global(txn, table_id)
    _drop_tasks(txn, table_id, deleted)
    for region in deleted:
        replica_apply.unfollow(txn, region, table_id)
    head = head_position(txn)
    for region in created:
        replica_apply.follow(txn, region, table_id, at=head, hold=True)
        queue_task(txn, {"kind": "create", "table_id": table_id, "name": name, "peer": region,
                         "request": replica_create_request(desc, region), "ttl": ttl_setting})
    updated = [u["Update"]["RegionName"] for u in request["ReplicaUpdates"] if u.get("Update") is not None]
    # The regions being updated are told last: a table's tasks run one at a
    # time, in order, and an updated region that does not answer must not
    # hold back the others' view of it (UPDATING).
    others = sorted((r for r in before if r not in deleted and r not in failed), key=lambda r: r in updated)
    for region in others:
        queue_task(txn, {"kind": "sync", "table_id": table_id, "name": name, "peer": region})
    for region in created:
        queue_task(txn, {"kind": "copy", "table_id": table_id, "name": name, "peer": region, "after": None})
        queue_task(txn, {"kind": "activate", "table_id": table_id, "name": name, "peer": region})
    for update in request["ReplicaUpdates"]:
        if update.get("Update") is not None:
            _queue_member_update(txn, table, update["Update"])
    for region in deleted:  # last: a deleted region that does not answer holds back nothing else
        if region in failed:  # its table, if it has one, is not a replica: left alone
            txn.delete("meta", failed_key(table_id, region))
        else:
            queue_task(txn, {"kind": "drop", "table_id": table_id, "name": name, "peer": region})


def _record_member_update(replicas: list[dict], spec: dict) -> None:
    """Show an Update's overrides in the replica's entry (``replicas`` are
    copies), and the replica UPDATING until the change has reached its
    region (``_queue_member_update``)."""
    entry = next(r for r in replicas if r["RegionName"] == spec["RegionName"])
    _show_updating(entry)
    shown = {g["IndexName"]: dict(g) for g in entry.get("GlobalSecondaryIndexes") or ()}
    _copy_overrides(entry, spec)
    if spec.get("GlobalSecondaryIndexes") is not None:  # merged by index: one Update may name some of them
        for index in spec["GlobalSecondaryIndexes"]:
            shown[index["IndexName"]] = {**shown.get(index["IndexName"], {}), **index}
        entry["GlobalSecondaryIndexes"] = list(shown.values())
    if spec.get("TableClassOverride"):
        entry["ReplicaTableClassSummary"] = {"TableClass": spec["TableClassOverride"]}


def _queue_member_update(txn, table, spec: dict) -> None:
    """The Update reaches its region: "New parameters for an existing
    replica. This request invokes the UpdateTable action in the destination
    Region" (the API Reference's ReplicationGroupUpdate), sent by the
    replication thread as ``ReplicateReplicaUpdate`` and applied there by
    ``apply_member_update``, in order with the table's other queued changes."""
    queue_task(txn, {"kind": "replica_update", "table_id": table.table_id, "name": table.name,
                     "peer": spec["RegionName"], "spec": spec})
    _queue_reached(txn, table, spec["RegionName"])


#: Queued changes for a replica that its removal makes moot.
_MOOT_WHEN_REMOVED = frozenset(("sync", "replica_update", "activate", "index_update", "ttl_update",
                                "autoscaling_update"))


def _drop_tasks(txn, table_id: str, regions) -> None:
    """Forget the changes queued for ``regions``' replicas of a table that
    they are removed from.  A table's tasks run one at a time, in order: a
    change waiting for a region that is gone would hold back the removal
    queued after it."""
    regions = set(regions)
    for key, task in pending_tasks(txn):
        if task["table_id"] == table_id and task["peer"] in regions and task["kind"] in _MOOT_WHEN_REMOVED:
            txn.delete("meta", key)


def _show_updating(entry: dict) -> None:
    """A replica whose settings change is UPDATING (the API Reference's
    ReplicaDescription: "The replica is being updated") until the change
    has reached its region.  One that was unreachable is shown UPDATING
    too: the change is what it waits for now, and ``_queue_reached`` makes
    it ACTIVE once its region has taken it."""
    entry["ReplicaStatus"] = "UPDATING"
    entry.pop("ReplicaStatusDescription", None)
    entry.pop("ReplicaInaccessibleDateTime", None)


def _queue_reached(txn, table, region: str) -> None:
    """After a change queued for ``region`` (a ReplicaUpdates Update, a GSI
    made or deleted in another replica), the replication thread's
    ``activate`` task: the table's tasks run one at a time and in order, so
    it runs once that region has taken the change, and then sends that
    region the replica set with itself ACTIVE, shows it ACTIVE here and
    tells the other replicas (the copy hold it lifts is not there: a no-op).
    Until then the replica is UPDATING in every region's DescribeTable."""
    queue_task(txn, {"kind": "activate", "table_id": table.table_id, "name": table.name, "peer": region})


def _update_members(txn, table, desc: dict, updates: list) -> None:
    """ReplicaUpdates made only of Update actions, on an MRSC table: the
    overrides are recorded here, sent to their regions and shown to every
    replica (a ``sync``); membership and the consensus are untouched."""
    replicas = [dict(r) for r in desc.get("Replicas") or ()]
    for update in updates:
        _record_member_update(replicas, update["Update"])
    desc["Replicas"] = replicas
    updated = [u["Update"]["RegionName"] for u in updates]
    for replica in replicas:  # the others first, so that they show UPDATING while the updated ones are away
        if replica["RegionName"] not in updated:
            queue_task(txn, {"kind": "sync", "table_id": table.table_id, "name": table.name,
                             "peer": replica["RegionName"]})
    for update in updates:  # each change, then its region ACTIVE, told to every replica
        _queue_member_update(txn, table, update["Update"])


def member_update_requests(desc: dict, spec: dict) -> list[dict]:
    """The UpdateTable requests (without TableName) that give this region's
    table ``desc`` an Update's settings: the read capacity or maximum read
    request units of the table and of its GSIs (their write side stays the
    table's: global tables share it), and the table class (alone, as
    UpdateTable requires).  What is already as asked is left out, so a
    repeated Update asks for nothing.  The KMS key is ``key_update_request``'s."""
    billing = _billing(desc)
    change: dict = {}
    override = spec.get("ProvisionedThroughputOverride") or {}
    if billing == "PROVISIONED" and override.get("ReadCapacityUnits") is not None:
        current = desc["ProvisionedThroughput"]
        if current["ReadCapacityUnits"] != override["ReadCapacityUnits"]:
            change["ProvisionedThroughput"] = {"ReadCapacityUnits": override["ReadCapacityUnits"],
                                               "WriteCapacityUnits": current["WriteCapacityUnits"]}
    on_demand = spec.get("OnDemandThroughputOverride") or {}
    if billing == "PAY_PER_REQUEST" and on_demand.get("MaxReadRequestUnits") is not None:
        if (desc.get("OnDemandThroughput") or {}).get("MaxReadRequestUnits") != on_demand["MaxReadRequestUnits"]:
            change["OnDemandThroughput"] = {"MaxReadRequestUnits": on_demand["MaxReadRequestUnits"]}
    gsis = {g["IndexName"]: g for g in desc.get("GlobalSecondaryIndexes") or ()}
    index_updates = []
    for index in spec.get("GlobalSecondaryIndexes") or ():
        gsi = gsis.get(index["IndexName"])
        if gsi is None:
            continue
        read = (index.get("ProvisionedThroughputOverride") or {}).get("ReadCapacityUnits")
        if billing == "PROVISIONED" and read is not None and gsi["ProvisionedThroughput"]["ReadCapacityUnits"] != read:
            index_updates.append({"Update": {"IndexName": index["IndexName"], "ProvisionedThroughput": {
                "ReadCapacityUnits": read,
                "WriteCapacityUnits": gsi["ProvisionedThroughput"]["WriteCapacityUnits"]}}})
        most = (index.get("OnDemandThroughputOverride") or {}).get("MaxReadRequestUnits")
        if billing == "PAY_PER_REQUEST" and most is not None and (
                gsi.get("OnDemandThroughput") or {}).get("MaxReadRequestUnits") != most:
            index_updates.append({"Update": {"IndexName": index["IndexName"],
                                             "OnDemandThroughput": {"MaxReadRequestUnits": most}}})
    if index_updates:
        change["GlobalSecondaryIndexUpdates"] = index_updates
    requests = [change] if change else []
    table_class = spec.get("TableClassOverride")
    if table_class and (desc.get("TableClassSummary") or {}).get("TableClass", "STANDARD") != table_class:
        requests.append({"TableClass": table_class})
    return requests


def key_update_request(desc: dict, spec: dict, region: str, account: str) -> dict | None:
    """The UpdateTable request (without TableName) that gives this region's
    table ``desc`` an Update's KMSMasterKeyId, as UpdateTable's
    SSESpecification (alone, as UpdateTable requires); None when the table
    already has that key or none is given."""
    key = spec.get("KMSMasterKeyId")
    if key is None or _table_key(desc) == kms_key_arn(key, region, account):
        return None
    return {"SSESpecification": replica_sse(desc, key)}


def apply_member_update(ctx, name: str, spec: dict) -> bool:
    """Another region's ReplicaUpdates Update for this region's replica,
    applied as UpdateTable here (not propagated again).  False when the
    table cannot take it yet (being updated, or an index change under
    way): the sender tries again later.  A change UpdateTable refuses here
    (a decrease past the day's budget, say) is dropped: the coordinator
    checked what it could, and retrying would not change the answer."""
    from shoal.api import tables
    from shoal.errors import LimitExceededException, ResourceInUseException

    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
    if table is None:
        return True
    requests = member_update_requests(table.description, spec)
    key = key_update_request(table.description, spec, ctx.region, ctx.account)
    for request in requests if key is None else [*requests, key]:
        try:
            tables.update_table(ctx, {"TableName": name, **request, REPLICATED: True})
        except (LimitExceededException, ResourceInUseException):
            return False
        except ValidationException:
            continue
    return True


def _leave_strong(txn, table, desc: dict, request: dict, settings: Settings | None = None) -> None:
    """Start making an MRSC table a single-Region table here
    (``check_strong_removal`` accepted it): the table is UPDATING, the
    removed regions DELETING, and the replication thread runs
    ``strong.leave`` (trying each removed region in turn as the one sealed
    with this one), which ends with the table ACTIVE and regional and the
    others' replicas and witness deleted."""
    removed = [u["Delete"]["RegionName"] for u in request["ReplicaUpdates"]]
    witness = next((w["Delete"]["RegionName"] for w in request.get("GlobalTableWitnessUpdates") or ()), None)
    # Regions whose replica or witness could not be made (CREATION_FAILED) have nothing to seal,
    # read or delete (a table there of that name is not this replica): they are only forgotten.
    failed = {r["RegionName"] for r in desc.get("Replicas") or () if r["ReplicaStatus"] == CREATION_FAILED}
    failed |= {w["RegionName"] for w in desc.get("GlobalTableWitnesses") or ()
               if w.get("WitnessStatus") == CREATION_FAILED}
    for region in failed:
        txn.delete("meta", failed_key(table.table_id, region))
    removed = [r for r in removed if r not in failed]
    witness = witness if witness not in failed else None
    candidates = removed + ([witness] if witness else [])
    _drop_tasks(txn, table.table_id, candidates)
    if not candidates:
        # No other region was ever an acceptor, so no round reached a majority: nothing was
        # chosen that this region's table lacks.  A single-Region table at once.
        from shoal.replication import strong

        for member in ("MultiRegionConsistency", "GlobalTableWitnesses", "Replicas", "GlobalTableVersion"):
            desc.pop(member, None)
        desc["TableStatus"] = "ACTIVE"
        replica_apply.unmark_global(txn, table.table_id)
        strong.forget_registers(txn, table.region, table.name, table.prefix)
        if settings is not None:
            settings.strong.discard(table.name)
        return
    desc["TableStatus"] = "UPDATING"
    desc["Replicas"] = [{**r, "ReplicaStatus": "DELETING"} for r in desc.get("Replicas") or ()
                        if r["RegionName"] not in failed]
    if desc.get("GlobalTableWitnesses"):
        desc["GlobalTableWitnesses"] = [{**w, "WitnessStatus": "DELETING"} for w in desc["GlobalTableWitnesses"]
                                        if w["RegionName"] not in failed] or None
        if desc["GlobalTableWitnesses"] is None:
            del desc["GlobalTableWitnesses"]
    queue_task(txn, {"kind": "mrsc_leave", "table_id": table.table_id, "name": table.name, "peer": candidates[0],
                     "candidates": candidates, "replicas": removed, "witness": witness})


def _copy_overrides(entry: dict, spec: dict) -> None:
    for member in _OVERRIDES:
        if spec.get(member) is not None:
            entry[member] = spec[member]


def propagate_index_updates(txn, table, request: dict, desc: dict | None = None) -> None:
    """A global table's GSIs and vector indexes are the same in every
    replica (version 2019.11.21; for vector indexes the Developer Guide's
    "You do not create the vector index separately in each Region"): a
    Create or Delete of an index here is queued for each replica, which
    applies it when the replication thread sends it (``apply_index_updates``).
    Throughput changes (Update) stay regional.
    Given ``desc`` (the table's new description, a fresh copy), each
    replica is shown UPDATING in it until its region has taken the change,
    as DynamoDB shows a replica whose settings are changing."""
    if table.description.get("GlobalTableVersion") != GLOBAL_TABLE_VERSION:
        return
    replicated = {}
    for member in ("GlobalSecondaryIndexUpdates", "VectorIndexUpdates"):
        updates = [u for u in request.get(member) or () if u.get("Create") is not None or u.get("Delete") is not None]
        if updates:
            replicated[member] = updates
    if not replicated:
        return
    if request.get("AttributeDefinitions") is not None:
        replicated["AttributeDefinitions"] = request["AttributeDefinitions"]
    if desc is not None:
        desc["Replicas"] = [dict(r) for r in desc.get("Replicas") or ()]
        for entry in desc["Replicas"]:
            if entry["ReplicaStatus"] == CREATION_FAILED:
                continue
            _show_updating(entry)
            queue_task(txn, {"kind": "sync", "table_id": table.table_id, "name": table.name,
                             "peer": entry["RegionName"]})
    for replica in table.description.get("Replicas") or ():
        queue_task(txn, {"kind": "index_update", "table_id": table.table_id, "name": table.name,
                         "peer": replica["RegionName"], "request": replicated})
        if desc is not None:
            _queue_reached(txn, table, replica["RegionName"])


def apply_index_updates(ctx, name: str, request: dict) -> bool:
    """Another replica's GSI or vector index Create or Delete, on this
    region's table: an index that is already as asked (made here too, or already gone) is
    done.  False when the table cannot take it yet (another index being
    built or deleted): the sender tries again later.  Not propagated again."""
    from shoal.api import tables
    from shoal.errors import LimitExceededException

    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
    if table is None:
        return True
    if not _apply_vector_index_updates(ctx, table, request):
        return False
    for update in request.get("GlobalSecondaryIndexUpdates") or ():
        if update.get("Create") is not None:
            if update["Create"]["IndexName"] in table.index_map:
                continue
        elif update["Delete"]["IndexName"] not in table.index_map:
            continue
        one = {"TableName": name, "GlobalSecondaryIndexUpdates": [update], REPLICATED: True}
        if request.get("AttributeDefinitions") is not None and update.get("Create") is not None:
            one["AttributeDefinitions"] = request["AttributeDefinitions"]
        if update.get("Create") is not None and (table.description.get("BillingModeSummary") or {}).get(
                "BillingMode", "PROVISIONED") == "PROVISIONED" and "ProvisionedThroughput" not in update["Create"]:
            throughput = table.description["ProvisionedThroughput"]
            update = {"Create": {**update["Create"], "ProvisionedThroughput": {
                "ReadCapacityUnits": throughput["ReadCapacityUnits"],
                "WriteCapacityUnits": throughput["WriteCapacityUnits"]}}}
            one["GlobalSecondaryIndexUpdates"] = [update]
        try:
            tables.update_table(ctx, one)
        except LimitExceededException:  # one online index change at a time
            return False
    return True


def _apply_vector_index_updates(ctx, table, request: dict) -> bool:
    """The vector index Creates and Deletes of ``apply_index_updates``'
    request on this region's ``table``; one already as asked is done.  False
    while the table is building or deleting another index."""
    from shoal.api import tables
    from shoal.errors import LimitExceededException

    present = {v["IndexName"] for v in table.description.get("VectorIndexes") or ()
               if v.get("IndexStatus") != "DELETING"}
    for update in request.get("VectorIndexUpdates") or ():
        if update.get("Create") is not None:
            if update["Create"]["IndexName"] in present:
                continue
        elif update["Delete"]["IndexName"] not in present:
            continue
        one = {"TableName": table.name, "VectorIndexUpdates": [update], REPLICATED: True}
        if request.get("AttributeDefinitions") is not None and update.get("Create") is not None:
            one["AttributeDefinitions"] = request["AttributeDefinitions"]
        try:
            tables.update_table(ctx, one)
        except LimitExceededException:  # one online index change at a time
            return False
    return True


def propagate_time_to_live(txn, table, spec: dict) -> None:
    """A global table's replicas share one TTL setting: UpdateTimeToLive
    here is queued for each replica (``apply_time_to_live``)."""
    if table.description.get("GlobalTableVersion") != GLOBAL_TABLE_VERSION:
        return
    for replica in table.description.get("Replicas") or ():
        queue_task(txn, {"kind": "ttl_update", "table_id": table.table_id, "name": table.name,
                         "peer": replica["RegionName"], "spec": spec})


def apply_time_to_live(ctx, name: str, spec: dict) -> None:
    """Another replica's TTL setting on this region's table, as it is there
    (not UpdateTimeToLive's once-an-hour rule: the change was checked where
    it was made); a setting already as asked is left alone."""
    from shoal.api import ttl

    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, ctx.region, name)
        if table is None:
            return
        current = ttl.read_setting(txn, table.prefix)
        active = current is not None and current["status"] in ("ENABLING", "ENABLED")
        if active == bool(spec["Enabled"]) and (not active or current["attr"] == spec["AttributeName"]):
            return
        ttl.set_time_to_live(txn, table, bool(spec["Enabled"]), spec["AttributeName"], ctx.now())


#: The member of an UpdateTable request that another replica sent (not propagated again).
REPLICATED = "ShoalReplicatedFrom"


def replica_create_request(desc: dict, region: str) -> dict:
    """The CreateTable request that makes ``desc``'s table in a replica region:
    same key schema, attribute definitions, indexes, billing and class, with
    the stream replication needs."""
    request = {
        "TableName": desc["TableName"],
        "KeySchema": desc["KeySchema"],
        "AttributeDefinitions": desc["AttributeDefinitions"],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    billing = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    request["BillingMode"] = billing
    entry = next((r for r in desc.get("Replicas") or () if r["RegionName"] == region), {})
    if billing == "PROVISIONED":
        throughput = desc["ProvisionedThroughput"]
        override = entry.get("ProvisionedThroughputOverride") or {}
        request["ProvisionedThroughput"] = {
            "ReadCapacityUnits": override.get("ReadCapacityUnits", throughput["ReadCapacityUnits"]),
            "WriteCapacityUnits": throughput["WriteCapacityUnits"]}
    for member in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
        specs = []
        for spec in desc.get(member) or ():
            index = {"IndexName": spec["IndexName"], "KeySchema": spec["KeySchema"], "Projection": spec["Projection"]}
            if member == "GlobalSecondaryIndexes" and billing == "PROVISIONED":
                pt = spec["ProvisionedThroughput"]
                index["ProvisionedThroughput"] = {"ReadCapacityUnits": pt["ReadCapacityUnits"],
                                                  "WriteCapacityUnits": pt["WriteCapacityUnits"]}
            specs.append(index)
        if specs:
            request[member] = specs
    from shoal.api.snapshots import vector_index_specs

    # A replica has the table's vector indexes too, one still being built here included: the
    # replica builds its own from the items it is sent (one being deleted is left out).
    vector_indexes = vector_index_specs({"VectorIndexes": [
        {**spec, "IndexStatus": "ACTIVE"} if spec.get("IndexStatus") == "CREATING" else spec
        for spec in desc.get("VectorIndexes") or ()]})
    if vector_indexes:
        request["VectorIndexes"] = vector_indexes
    table_class = (entry.get("ReplicaTableClassSummary") or desc.get("TableClassSummary") or {}).get("TableClass")
    if table_class:
        request["TableClass"] = table_class
    sse = replica_sse(desc, entry.get("KMSMasterKeyId"))
    if sse is not None:
        request["SSESpecification"] = sse
    return request


def replica_sse(desc: dict, key: str | None) -> dict | None:
    """The SSESpecification of a replica of ``desc``'s table: its
    KMSMasterKeyId override, which the replica's region makes its
    SSEDescription (a key id or alias is read as one of that region, as a
    regional table's SSESpecification is); without one, the AWS managed key
    of that region if the table has the AWS managed key (a customer managed
    key needs an override: ``_check_replica_keys``), else none (the AWS
    owned key, DynamoDB's default)."""
    if key is not None:
        return {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}
    if _table_key(desc) is not None:
        return {"Enabled": True, "SSEType": "KMS"}
    return None


def leave(txn, table) -> None:
    """DeleteTable of a replica (in its own region): the replica leaves the
    global table.  This region stops keeping records for the others, and
    each other region is sent the set without it (a ``sync`` whose set is
    fixed now, the table being gone when it is sent)."""
    others = [{"RegionName": r["RegionName"], "ReplicaStatus": r["ReplicaStatus"]}
              for r in table.description.get("Replicas") or () if r["ReplicaStatus"] != CREATION_FAILED]
    for replica in table.description.get("Replicas") or ():
        txn.delete("meta", failed_key(table.table_id, replica["RegionName"]))
    for replica in others:
        replica_apply.unfollow(txn, replica["RegionName"], table.table_id)
        queue_task(txn, {"kind": "sync", "table_id": table.table_id, "name": table.name,
                         "peer": replica["RegionName"], "replicas": others})
    replica_apply.unmark_global(txn, table.table_id)


#: Members of a replica's entry that every region shows alike (sent with the replica set).
SHOWN_OVERRIDES = (*_OVERRIDES, "ReplicaTableClassSummary")


def replica_set(desc: dict, own_region: str) -> list[dict]:
    """Every region of a global table with its status and the overrides
    ReplicaUpdates gave it, this one first (not those whose replica could not
    be made)."""
    status = desc.get("TableStatus")
    own = status if status in ("CREATING", INACCESSIBLE, NOT_AUTHORIZED) else "ACTIVE"
    # Reachability is each region's own view, not membership: it is not sent.
    # A replica that could not be made is not a member: only this region lists it.
    return [{"RegionName": own_region, "ReplicaStatus": own},
            *({"RegionName": r["RegionName"],
               "ReplicaStatus": "ACTIVE" if r["ReplicaStatus"] == UNREACHABLE else r["ReplicaStatus"],
               **{m: r[m] for m in SHOWN_OVERRIDES if r.get(m) is not None}}
              for r in desc.get("Replicas") or () if r["ReplicaStatus"] != CREATION_FAILED)]
