"""A replica whose resource-based policy denies replication: REPLICATION_NOT_AUTHORIZED.

The Developer Guide ("DynamoDB global tables security"): DynamoDB replicates
as the service-linked role AWSServiceRoleForDynamoDBReplication, whose
permissions are the managed policy DynamoDBReplicationServiceRolePolicy. A
replica's resource-based policy that denies the role any of them interrupts
replication "to and from affected replicas", and the replica's status
becomes REPLICATION_NOT_AUTHORIZED. An MREC replica that stays so for more
than 20 hours "is irreversibly converted to a single-Region DynamoDB
table"; an MRSC replica answers writes and strongly consistent reads with
AccessDeniedException and, after seven days, "becomes permanently
inaccessible", while "some management operations like replica deletion will
succeed".

How Shoal does it:

* ``denial(txn, table)``: the table's resource-based policy (PutResourcePolicy)
  evaluated for the replication principals (the role's ARN in this account,
  and the service principal ``replication.dynamodb.amazonaws.com`` that the
  guide's multi-account page names) and the actions replication needs
  (``ACTIONS``). Only an explicit Deny counts: the role's permissions come
  from its own policy, so a table without a policy, or one whose policy
  denies something else, replicates as before. The decision is cached by the
  stored policy's bytes: a batch costs one ``meta`` read, one cursor step
  (the table's stream policies) and a dictionary look-up, nothing parsed.
  The policy of the table's current stream counts too, for the role's stream
  actions (``STREAM_ACTIONS``): the guide's rule is about any resource-based
  policy applied to a replica, and the role reads the replica's stream.
* The receiving region refuses ApplyChanges and CopyItems for such a table
  (``ReplicationNotAuthorizedException``; the sender keeps the records and
  its cursor and tries again every ``CHECK_S``), and MRSC consensus messages
  for it; the region's own replication thread sends none of its writes of
  that table. Nothing is lost: the records stay in the change logs until
  they are delivered.
* ``check(engine, catalog, region, now)``, every ``CHECK_S`` in the
  replication thread: such a table's TableStatus becomes
  REPLICATION_NOT_AUTHORIZED (and ACTIVE again once the policy no longer
  denies), each change sent to the other replicas (``sync``), whose
  DescribeTable shows the replica REPLICATION_NOT_AUTHORIZED, as for
  INACCESSIBLE_ENCRYPTION_CREDENTIALS. When it was first seen is kept in
  ``meta`` (``repl/na/<table id>``). After ``CONFIG.removal_s`` an MREC
  replica leaves the replication group (``control.remove_replica``), its
  table and items staying, a regional table; after ``CONFIG.permanent_s`` an
  MRSC replica is marked permanently unauthorized (its writes and strongly
  consistent reads refused even once the policy allows again).
* Adding a replica to a table whose policy denies replication is refused
  (``control._check_replication_allowed``), and settings changes (a GSI,
  TTL, ReplicaUpdates Update) wait for such a replica (``node``,
  ``protocol._refuse_settings``).
* With a KMS key its region cannot use as well, the first status reached is
  shown (neither the guide nor the API Reference says which wins); when that
  cause ends while the other holds, the table goes straight to the other
  status, never ACTIVE between (``check``, ``control.check_encryption_keys``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import orjson

from shoal.api import DEFAULT_ACCOUNT
from shoal.errors import ShoalError
from shoal.replication.control import NOT_AUTHORIZED
from shoal.settings import from_env

SLR_NAME = "AWSServiceRoleForDynamoDBReplication"
SERVICE_PRINCIPAL = "replication.dynamodb.amazonaws.com"
#: The DynamoDB actions of DynamoDBReplicationServiceRolePolicy (v8), the SLR's
#: permissions on tables, and the three the multi-account page lists for the
#: service principal (ReadDataForReplication, WriteDataForReplication,
#: ReplicateSettings). Denying any of them on the table stops replication.
ACTIONS = (
    "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
    "dynamodb:DescribeTable", "dynamodb:UpdateTable", "dynamodb:Scan", "dynamodb:DescribeStream",
    "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeTimeToLive",
    "dynamodb:UpdateTimeToLive", "dynamodb:DescribeLimits", "dynamodb:GetResourcePolicy",
    "dynamodb:ReadDataForReplication", "dynamodb:WriteDataForReplication", "dynamodb:ReplicateSettings",
)
#: The actions of ``ACTIONS`` whose resource is a stream: a replica's stream has a
#: resource-based policy of its own (PutResourcePolicy on its ARN), checked for these.
STREAM_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
#: Between the replication thread's checks, and a held (peer, table)'s retries.
CHECK_S = 1.0
MARK_PREFIX = b"repl/na/"
__all__ = ["NOT_AUTHORIZED"]  # TableStatus (its own region) and ReplicaStatus (the others) of such a replica


@dataclass(frozen=True)
class AuthorizationConfig:
    """How long a replica may stay REPLICATION_NOT_AUTHORIZED before an MREC
    one leaves its replication group (DynamoDB: 20 hours) and an MRSC one
    becomes permanently inaccessible (seven days). Settable for tests."""

    removal_s: float = 20 * 3600.0
    permanent_s: float = 7 * 86400.0

    @classmethod
    def from_env(cls) -> "AuthorizationConfig":
        return from_env(cls, {"removal_s": "SHOAL_REPLICATION_NOT_AUTHORIZED_REMOVAL_S",
                              "permanent_s": "SHOAL_REPLICATION_NOT_AUTHORIZED_PERMANENT_S"})


CONFIG = AuthorizationConfig.from_env()


class ReplicationNotAuthorizedException(ShoalError):
    """A peer's replication request refused: this region's table's
    resource-based policy denies the replication role. The sender keeps the
    records and sends them again once it allows (``node``)."""

    type_name = "ReplicationNotAuthorizedException"
    status = 400


def slr_arn(account: str = DEFAULT_ACCOUNT) -> str:
    """The replication service-linked role's ARN in ``account``."""
    return f"arn:aws:iam::{account}:role/aws-service-role/{SERVICE_PRINCIPAL}/{SLR_NAME}"


def table_arn(table) -> str:
    return f"arn:aws:dynamodb:{table.region}:{table.account}:table/{table.name}"


@lru_cache(maxsize=1024)
def _principals(account: str) -> tuple:
    from shoal.model.policy import Principal

    role = slr_arn(account)
    return (Principal(arn=role, account=account, kind="assumed-role", name=SLR_NAME, role_arn=role),
            Principal(arn=SERVICE_PRINCIPAL, account=account, kind="assumed-role", name=SERVICE_PRINCIPAL))


@lru_cache(maxsize=1024)
def denied_action(stored: bytes, account: str, resource: str, actions: tuple = ACTIONS) -> str | None:
    """The first of ``actions`` that the stored policy record (``meta``'s
    value: ``{"policy": text, ...}``) explicitly denies the replication
    principals on ``resource``, or None. Cached by the stored bytes: a new
    policy is a new record."""
    from shoal.api.resource_policies import explicit_deny

    text = orjson.loads(stored)["policy"]
    context = {"aws:PrincipalServiceName": SERVICE_PRINCIPAL, "aws:PrincipalIsAWSService": True,
               "aws:SourceAccount": account}
    for action in actions:
        if explicit_deny(text, _principals(account), action, resource, context):
            return action
    return None


def denial(txn, table) -> str | None:
    """The replication action ``table``'s resource-based policy, or its
    current stream's, denies, or None: one ``meta`` read and one cursor step
    (the table's stream policies), and a cached decision."""
    from shoal.api.resource_policies import policy_key

    key = policy_key(table.prefix)
    stored = txn.get("meta", key)
    if stored is not None:
        action = denied_action(bytes(stored), table.account, table_arn(table))
        if action is not None:
            return action
    for stream_key, stored in txn.scan("meta", key + b"/", key + b"0"):
        return _stream_denial(txn, table, bytes(stream_key[len(key) + 1:]).decode(), bytes(stored))
    return None


def _stream_denial(txn, table, label: str, stored: bytes) -> str | None:
    """The stream action (``STREAM_ACTIONS``) the policy of ``table``'s
    stream ``label`` denies the replication principals, if that stream is
    the table's current one (a policy left on an older stream governs
    nothing replication reads). Read only when such a policy exists."""
    from shoal.api.resource_policies import policy_key
    from shoal.api.streams import stream_description

    current = stream_description(txn, table).get("LatestStreamLabel")
    if current is None:
        return None
    if current != label:
        stored = txn.get("meta", policy_key(table.prefix, current))
        if stored is None:
            return None
    return denied_action(bytes(stored), table.account, f"{table_arn(table)}/stream/{current}", STREAM_ACTIONS)


def mark_key(table_id: str) -> bytes:
    return MARK_PREFIX + table_id.encode()


def mark_of(txn, table_id: str) -> dict | None:
    """``{"since": seconds, "permanent": bool}`` of a table that is (or, MRSC
    and permanent, was) REPLICATION_NOT_AUTHORIZED, or None."""
    raw = txn.get("meta", mark_key(table_id))
    return None if raw is None else orjson.loads(raw)


def put_mark(txn, table_id: str, now: float) -> None:
    """Note when ``table_id`` became REPLICATION_NOT_AUTHORIZED (kept if noted already)."""
    if mark_of(txn, table_id) is None:
        txn.put("meta", mark_key(table_id), orjson.dumps({"since": round(now, 3), "permanent": False}))


def refused(txn, table) -> bool:
    """Whether replication into or out of ``table`` is refused now: its
    status says so, or its policy denies (before the next check shows it),
    or an MRSC replica's mark is permanent."""
    if table.description.get("TableStatus") == NOT_AUTHORIZED:
        return True
    return denial(txn, table) is not None


def refusal(table, action: str | None = None) -> ShoalError:
    """The peer operations' refusal (``ReplicationNotAuthorizedException``)."""
    why = f" ({action} is denied)" if action else ""
    return ReplicationNotAuthorizedException(
        f"Table {table.name} is {NOT_AUTHORIZED} in region {table.region}: its resource-based policy denies "
        f"the replication service-linked role {SLR_NAME}{why}, so it takes no replicated changes until it allows "
        "them")


def access_denied(table, permanent: bool = False):
    """A client's write or strongly consistent read of an MRSC replica that
    is REPLICATION_NOT_AUTHORIZED: AccessDeniedException, as the Developer
    Guide says; its wording is not documented, so the message is Shoal's."""
    from shoal.auth.errors import AccessDeniedException

    state = "permanently inaccessible" if permanent else NOT_AUTHORIZED
    return AccessDeniedException(
        f"Replica {table_arn(table)} of a multi-Region strong consistency global table is {state}: its "
        f"resource-based policy denies the replication service-linked role {slr_arn(table.account)}; writes "
        "and strongly consistent reads are refused")


def check_strong_request(engine, table) -> None:
    """Raise ``access_denied`` for a write or strongly consistent read of an
    MRSC ``table`` this region's policy keeps from replicating (``refused``),
    or whose mark is permanent."""
    with engine.read() as txn:
        mark = mark_of(txn, table.table_id) if table.description.get("TableStatus") == NOT_AUTHORIZED else None
        if mark is not None and mark.get("permanent"):
            raise access_denied(table, permanent=True)
        if refused(txn, table):
            raise access_denied(table)


# ---------------------------------------------------------------- the replication thread's check

# Per engine: whether a full check is still needed (the first one, or a table is marked).
_CHECKED: dict[int, bool] = {}


def check(engine, catalog, region: str, now: float) -> bool:
    """Mark this region's replicas whose policy denies replication
    REPLICATION_NOT_AUTHORIZED, unmark those whose policy allows again, and
    carry out what is due for those that stay marked (``module docstring``).
    Each change is sent to the other replicas. True if it changed a table."""
    from shoal.api.catalog import update_description
    from shoal.api.resource_policies import any_policy
    from shoal.replication import apply as replica_apply
    from shoal.replication import control

    changes = []  # (table, marked now?)
    due = []  # (table, "remove" | "permanent")
    with engine.read() as txn:
        policies = any_policy(txn)
        if not policies and not _CHECKED.get(id(engine), True):
            return False
        marked_ids = {bytes(key[len(MARK_PREFIX):]).decode(): orjson.loads(raw)
                      for key, raw in txn.scan("meta", MARK_PREFIX, MARK_PREFIX[:-1] + b"0")}
        tables = replica_apply.global_tables(txn, catalog)
        for table_id in marked_ids.keys() - tables.keys():  # no longer a replica here
            changes.append((table_id, None))
        for table_id, table in tables.items():
            desc = table.description
            if table.region != region or not desc.get("Replicas") \
                    or desc.get("GlobalTableVersion") != control.GLOBAL_TABLE_VERSION:
                continue  # 2017.11.29 replicas take no resource-based policy (Developer Guide)
            shown = desc.get("TableStatus") == NOT_AUTHORIZED
            mark = marked_ids.get(table_id)
            denied = policies and denial(txn, table) is not None
            if denied and desc.get("TableStatus") == "ACTIVE":
                changes.append((table_id, table))
            elif shown and not denied and not (mark or {}).get("permanent"):
                changes.append((table_id, table))
            elif shown and mark is not None:
                if control.is_strong(desc):
                    if not mark.get("permanent") and now - mark["since"] >= CONFIG.permanent_s:
                        due.append((table, "permanent"))
                elif now - mark["since"] >= CONFIG.removal_s:
                    due.append((table, "remove"))
    changed = False
    for table_id, table in changes:
        # Allowed again while its KMS key cannot be used: INACCESSIBLE_ENCRYPTION_CREDENTIALS at once,
        # never ACTIVE between (which would let replication in); a table INACCESSIBLE_ENCRYPTION_CREDENTIALS
        # first stays so (only an ACTIVE one is marked here): the first state reached is the one shown.
        unusable = table is not None and control.key_unusable(engine, table.description)
        with engine.write() as txn:
            if table is None:
                txn.delete("meta", mark_key(table_id))
                continue
            denied = denial(txn, table) is not None

            def change(desc: dict, denied=denied, unusable=unusable) -> None:
                if denied and desc.get("TableStatus") == "ACTIVE":
                    desc["TableStatus"] = NOT_AUTHORIZED
                elif not denied and desc.get("TableStatus") == NOT_AUTHORIZED:
                    desc["TableStatus"] = control.INACCESSIBLE if unusable else "ACTIVE"
                    if unusable:
                        desc.setdefault("SSEDescription", {}).setdefault("InaccessibleEncryptionDateTime",
                                                                         round(now, 3))

            updated = update_description(txn, region, table.name, table.table_id, change, catalog.keys)
            if updated is None:
                continue
            if updated.description.get("TableStatus") == NOT_AUTHORIZED:
                put_mark(txn, table_id, now)
            else:
                txn.delete("meta", mark_key(table_id))
            for replica in updated.description.get("Replicas") or ():
                control.queue_task(txn, {"kind": "sync", "table_id": table_id, "name": table.name,
                                         "peer": replica["RegionName"]})
            changed = True
    for table, what in due:
        if what == "remove":
            changed = control.remove_replica(
                engine, catalog, region, table,
                still=lambda current: current.description.get("TableStatus") == NOT_AUTHORIZED,
                why="its resource-based policy kept denying replication") or changed
            with engine.write() as txn:
                current = catalog.get(txn, region, table.name)
                if current is not None and current.table_id == table.table_id and not current.description.get(
                        "Replicas"):
                    txn.delete("meta", mark_key(table.table_id))
                    update_description(txn, region, table.name, table.table_id, _active, catalog.keys)
        else:
            with engine.write() as txn:
                mark = mark_of(txn, table.table_id)
                if mark is not None:
                    txn.put("meta", mark_key(table.table_id), orjson.dumps({**mark, "permanent": True}))
            logging.getLogger("shoal").warning("table %s: replication stayed unauthorized: this MRSC replica is "
                                               "permanently inaccessible", table.name)
            changed = True
    with engine.read() as txn:
        _CHECKED[id(engine)] = policies or next(iter(txn.scan("meta", MARK_PREFIX, MARK_PREFIX[:-1] + b"0")),
                                                 None) is not None
    return changed


def _active(desc: dict) -> None:
    """A replica converted to a single-Region table is ACTIVE: its policy no
    longer concerns replication."""
    if desc.get("TableStatus") == NOT_AUTHORIZED:
        desc["TableStatus"] = "ACTIVE"
