"""Resource-based policies of tables and streams: PutResourcePolicy,
GetResourcePolicy, DeleteResourcePolicy, and CreateTable's ResourcePolicy.

A policy is stored in the ``meta`` space under the table's storage prefix::

    rbp/<16-byte table prefix>             the table's policy (governs its indexes too)
    rbp/<16-byte table prefix>/<label>     the policy of the table's stream <label>

with the JSON value ``{"policy": <document text>, "revision": <RevisionId>}``.
Keying by the table's prefix (not its name) means a deleted and re-created
table never inherits the old table's policy.

Revision ids are epoch milliseconds as text, strictly increasing per
resource, as DynamoDB's are (comparable timestamps); putting the same
document again is a no-op that returns the current revision.

``lookup_policy(txn, catalog, arn)`` is what the auth gate calls to find the
policy that governs a resource ARN (``shoal.auth.actions.find_denial``
evaluates it together with the caller's identity policies).
"""

from __future__ import annotations

import orjson

from shoal.api.changelog import record_table_change
from shoal.model.policy import Policy, PolicyError
from shoal.errors import ResourceNotFoundException, ShoalError, ValidationException
from shoal.errors import INVALID_PARAMETERS as INVALID

NO_POLICY = "NO_POLICY"
#: DynamoDB's limit on a policy document, whitespace included.
MAX_POLICY_BYTES = 20 * 1024
_NOT_FOUND = "Resource-based policy not found for the provided ResourceArn: "


class PolicyNotFoundException(ShoalError):
    type_name = "PolicyNotFoundException"
    status = 400


POLICY_PREFIX = b"rbp/"


def policy_key(table_prefix: bytes, stream_label: str | None = None) -> bytes:
    """The ``meta`` key of a table's (or one of its streams') policy."""
    key = POLICY_PREFIX + table_prefix
    return key if stream_label is None else key + b"/" + stream_label.encode()


def any_policy(txn) -> bool:
    """Whether any table or stream has a resource-based policy (one cursor step):
    without one, nothing can deny the root user."""
    return next(iter(txn.scan("meta", POLICY_PREFIX, POLICY_PREFIX[:-1] + b"0")), None) is not None


# ---------------------------------------------------------------- ARNs


def _split_arn(ctx, arn: str) -> tuple[str, str | None]:
    """(table name, stream label or None) of a table or stream ARN of the
    caller's account and region, or DynamoDB's ValidationException."""
    if not arn.startswith("arn:"):
        raise ValidationException(f"{INVALID}ARNs must start with 'arn:': {arn}")
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "dynamodb" or not parts[5].startswith("table/"):
        raise ValidationException(f"{INVALID}Provided Arn is not a DynamoDB resource arn: {arn}")
    if parts[4] != ctx.account:
        raise ValidationException("This action is only supported by accounts that match the resource owner\u2019s account.")
    if parts[1] != "aws" or parts[3] != ctx.region:
        raise ValidationException(f"{INVALID}Invalid resource Arn: {arn}")
    segments = parts[5].split("/")
    if len(segments) == 2 and segments[1]:
        return segments[1], None
    if len(segments) == 4 and segments[2] == "stream" and segments[1] and segments[3]:
        return segments[1], segments[3]
    if len(segments) == 4 and segments[2] in ("backup", "export", "import"):
        raise ValidationException(f"{INVALID}Provided Arn is not a DynamoDB resource arn: {arn}")
    raise ValidationException(
        f"{INVALID}Invalid resource arn provided, only table or stream is accepted. Provided resource arn: {arn}")


def _resource(ctx, txn, arn: str):
    """(table, stream label or None) an ARN names; ResourceNotFoundException
    for a missing table or stream."""
    name, label = _split_arn(ctx, arn)
    table = ctx.catalog.get(txn, ctx.region, name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    if label is not None and _stream_label(txn, table) != label:
        raise ResourceNotFoundException(f"Requested resource not found: Stream: {label} not found for Table: {name}")
    return table, label


def _stream_label(txn, table) -> str | None:
    from shoal.api.streams import stream_description

    return stream_description(txn, table).get("LatestStreamLabel")


# ---------------------------------------------------------------- documents


def check_document(text) -> str:
    """A resource-based policy document DynamoDB would accept, as text:
    JSON, at most 20 KB, every statement naming a Principal."""
    if not isinstance(text, str):
        raise ValidationException(f"{INVALID}Invalid policy document: policy must be a JSON string")
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise ValidationException(
            f"{INVALID}Policy document size exceeds the maximum allowed size of {MAX_POLICY_BYTES} bytes")
    try:
        policy = Policy.parse(text)
    except PolicyError as exc:
        raise ValidationException(f"{INVALID}Invalid policy document: {exc}") from None
    if any(s.principals is None for s in policy.statements):
        raise ValidationException(
            f"{INVALID}Invalid policy document: Policy statement must contain a Principal or NotPrincipal")
    return text


def _stored(txn, key: bytes) -> dict | None:
    raw = txn.get("meta", key)
    return None if raw is None else orjson.loads(raw)


def _next_revision(ctx, current: dict | None) -> str:
    revision = int(ctx.now() * 1000)
    if current is not None:
        revision = max(revision, int(current["revision"]) + 1)
    return str(revision)


def _check_expected(expected: str | None, current: dict | None, table_name: str, arn: str) -> None:
    """ExpectedRevisionId: the current policy's revision, or NO_POLICY when
    none may exist yet."""
    if expected is None:
        return
    if current is None:
        if expected != NO_POLICY:
            raise PolicyNotFoundException(_NOT_FOUND + arn)
        return
    if expected == NO_POLICY:
        raise PolicyNotFoundException(
            f"{_NOT_FOUND}Requested policy update expecting none to be present for table {table_name}, "
            f"but a policy exists with revision id {current['revision']}.")
    if expected != current["revision"]:
        raise PolicyNotFoundException(
            f"{_NOT_FOUND}Requested update for policy with revision id {expected}, but the policy "
            f"associated to target table {table_name} has revision id {current['revision']}.")


# ---------------------------------------------------------------- operations


def put_resource_policy(ctx, request: dict) -> dict:
    """Attach (or replace) the policy of a table or stream."""
    arn = request["ResourceArn"]
    text = check_document(request["Policy"])
    with ctx.engine.write() as txn:
        table, label = _resource(ctx, txn, arn)
        key = policy_key(table.prefix, label)
        current = _stored(txn, key)
        _check_expected(request.get("ExpectedRevisionId"), current, table.name, arn)
        if current is not None and current["policy"] == text:
            return {"RevisionId": current["revision"]}
        revision = _next_revision(ctx, current)
        txn.put("meta", key, orjson.dumps({"policy": text, "revision": revision}))
        record_table_change(txn, table, "PutResourcePolicy",
                            {"StreamLabel": label, "Policy": text, "RevisionId": revision}, ctx.now())
    return {"RevisionId": revision}


def get_resource_policy(ctx, request: dict) -> dict:
    """The policy of a table or stream, with its revision."""
    arn = request["ResourceArn"]
    with ctx.engine.read() as txn:
        table, label = _resource(ctx, txn, arn)
        current = _stored(txn, policy_key(table.prefix, label))
    if current is None:
        raise PolicyNotFoundException(_NOT_FOUND + arn)
    return {"Policy": current["policy"], "RevisionId": current["revision"]}


def delete_resource_policy(ctx, request: dict) -> dict:
    """Remove the policy; idempotent unless ExpectedRevisionId is given."""
    arn = request["ResourceArn"]
    expected = request.get("ExpectedRevisionId")
    with ctx.engine.write() as txn:
        table, label = _resource(ctx, txn, arn)
        key = policy_key(table.prefix, label)
        current = _stored(txn, key)
        if expected == NO_POLICY and current is None:
            raise PolicyNotFoundException(_NOT_FOUND + arn)
        _check_expected(expected, current, table.name, arn)
        if current is None:
            return {}
        txn.delete("meta", key)
        record_table_change(txn, table, "DeleteResourcePolicy", {"StreamLabel": label}, ctx.now())
    return {"RevisionId": current["revision"]}


def attach_on_create(ctx, txn, table, request: dict) -> None:
    """CreateTable's ResourcePolicy: stored in the creating transaction, so
    the policy applies from the table's first request (as DynamoDB promises)."""
    text = request.get("ResourcePolicy")
    if text is None:
        return
    check_document(text)
    txn.put("meta", policy_key(table.prefix), orjson.dumps({"policy": text, "revision": _next_revision(ctx, None)}))


def lookup_policy(txn, catalog, arn: str) -> str | None:
    """The policy document that governs ``arn`` (a table, index or stream ARN),
    or None.  An index is governed by its table's policy."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "dynamodb" or not parts[5].startswith("table/"):
        return None
    segments = parts[5].split("/")
    if "*" in segments[1] or "?" in segments[1]:
        return None  # a wildcard resource (GetRecords): no one table
    table = catalog.get(txn, parts[3], segments[1])
    if table is None or table.account != parts[4]:
        return None
    label = segments[3] if len(segments) == 4 and segments[2] == "stream" else None
    raw = txn.get("meta", policy_key(table.prefix, label))
    return None if raw is None else orjson.loads(raw)["policy"]


OPERATIONS = {
    "PutResourcePolicy": put_resource_policy,
    "GetResourcePolicy": get_resource_policy,
    "DeleteResourcePolicy": delete_resource_policy,
}


# ---------------------------------------------------------------- replication's principal


def explicit_deny(text: str, principals, action: str, resource: str, context: dict | None = None) -> bool:
    """Whether the resource-based policy ``text`` explicitly denies ``action``
    on ``resource`` to any of ``principals`` (``shoal.model.policy.Principal``).
    A resource-based policy alone grants a service-linked role nothing it
    needs (its own identity policy does), so only an explicit Deny matters:
    an absent policy, or one without such a Deny, denies nothing here."""
    from shoal.model.policy import RESOURCE, evaluate

    deny = f"with an explicit deny in a {RESOURCE} policy"
    return any(evaluate(principal, action, resource, context, (), text).reason == deny for principal in principals)
