"""The one object the dispatcher calls to authenticate and authorize a request.

``Gate.authenticate(request)`` verifies the SigV4 signature against the IAM
store and returns the ``Credentials`` (region from the credential scope);
``Gate.authorize(credentials, operation, data, request)`` raises
AccessDeniedException unless the caller's identity policies and the
resource-based policy of the resource allow the operation;
``Gate.authorize_monitoring`` does the same for CloudWatch's operations
(``cloudwatch:<Operation>``, signed for the service ``monitoring``);
``Gate.sts(request, request_id)`` answers the STS endpoint.  Failures,
denials and AssumeRole are written to the audit log; allowed requests write
nothing.

The catalog supplies key attribute names (``dynamodb:LeadingKeys``, PartiQL) and the
storage prefix under which a table's resource-based policy is kept; both are
read in one read transaction per authorization.

``SHOAL_AUTH_CLOCK_OFFSET`` (seconds, read at start-up) shifts the clock the
auth layer uses (signature time, token expiry, ``aws:CurrentTime``).  It
exists for tests of expiry; leave it unset otherwise.

``SHOAL_IAM_CACHE_TTL`` (seconds, read at start-up; default 5) is how long
a worker trusts its cached identities and policies before it reads the IAM
generation again: the bound on how late an IAM change made by ``shoal iam``,
another worker or another node over the same store takes effect here, and
the rate (one point read per ttl) at which an idle worker asks.
"""

from __future__ import annotations

import logging
import os
import time

from shoal.api import resource_policies
from shoal.api.catalog import key_names
from shoal.api.streams import iterator_stream_arn
from shoal.auth.actions import (
    KeyNames,
    autoscaling_required,
    find_denial,
    monitoring_required,
    request_context,
    sns_required,
)
from shoal.auth.audit import DEFAULT_FILE, AuditLog
from shoal.auth.errors import AccessDeniedException
from shoal.auth.iam import DEFAULT_ACCOUNT, DEFAULT_CACHE_TTL_S, IamStore
from shoal.model.policy import decide, denied_message
from shoal.auth.sigv4 import Credentials, verify
from shoal.errors import ShoalError

log = logging.getLogger("shoal")
CLOCK_OFFSET_ENV = "SHOAL_AUTH_CLOCK_OFFSET"
CACHE_TTL_ENV = "SHOAL_IAM_CACHE_TTL"


def _clock_offset() -> float:
    try:
        return float(os.environ.get(CLOCK_OFFSET_ENV, "0") or 0)
    except ValueError:
        return 0.0


def _cache_ttl() -> float:
    try:
        ttl = float(os.environ.get(CACHE_TTL_ENV) or DEFAULT_CACHE_TTL_S)
    except ValueError:
        return DEFAULT_CACHE_TTL_S
    return ttl if ttl >= 0 else DEFAULT_CACHE_TTL_S


class Gate:
    """Authentication and authorization of one worker process."""

    def __init__(self, engine, data_dir, catalog, *, account: str = DEFAULT_ACCOUNT,
                 audit_path=None) -> None:
        self.engine = engine
        self.catalog = catalog
        self.account = account
        offset = _clock_offset()
        self.clock = (lambda: time.time() + offset) if offset else time.time
        self.store = IamStore(engine, data_dir, account=account, clock=self.clock, ttl=_cache_ttl())
        if audit_path is None and data_dir is not None:
            audit_path = os.path.join(os.fspath(data_dir), DEFAULT_FILE)
        self.audit = AuditLog(audit_path, engine=engine) if audit_path else None

    # -- authentication -------------------------------------------------------------------

    def authenticate(self, request, service: str = "dynamodb", *, operation: str | None = None,
                     request_id: str | None = None) -> Credentials:
        """Who signed ``request``; raises (and audits) the AWS authentication errors."""
        try:
            return verify(request, lookup_secret=self.store.lookup, service=service, now=self.clock())
        except ShoalError as exc:
            self._audit(_claimed_key(request), request, f"{service}:{operation or '*'}", None, "deny",
                        f"{exc.type_name}: {exc.message}", request_id)
            raise

    # -- authorization --------------------------------------------------------------------

    def authorize(self, credentials: Credentials, operation: str, data: dict, request,
                  request_id: str | None = None) -> dict | None:
        """Raise AccessDeniedException unless the signer may run ``operation``.

        Returns the tables whose keys the decision read, for ``PinnedCatalog``
        (the operation then runs on those tables only if they are unchanged),
        or None when it read none."""
        principal = credentials.identity.principal
        region = credentials.region
        peer = request.peer[0] if request.peer else None
        context = request_context(peer, request.secure, self.clock())
        pins: dict = {}
        with self.engine.read() as txn:
            if principal.is_root and not resource_policies.any_policy(txn):
                return None  # root needs no identity policy; only a resource policy could deny it
            denial = find_denial(principal, operation, data, region, self.account,
                                 self._key_lookup(txn, region, pins), request_context=context,
                                 lookup_resource_policy=self._policy_lookup(txn),
                                 lookup_iterator_stream=lambda text: iterator_stream_arn(self.engine, txn, text))
        if denial is None:
            return pins or None
        check, decision = denial
        message = denied_message(principal, check.action, check.resource, decision)
        self._audit(principal.arn, request, check.action, check.resource, "deny", decision.reason, request_id)
        raise AccessDeniedException(message)

    def authorize_monitoring(self, credentials: Credentials, operation: str, data, request,
                             request_id: str | None = None) -> None:
        """Raise AccessDeniedException unless the signer may run the
        CloudWatch ``operation`` (``cloudwatch:<Operation>``, identity
        policies only: CloudWatch metrics have no resource-based policies)."""
        self._authorize_checks(credentials, monitoring_required(operation, data, credentials.region, self.account),
                               request, request_id)

    def authorize_autoscaling(self, credentials: Credentials, operation: str, request,
                              request_id: str | None = None) -> None:
        """Raise AccessDeniedException unless the signer may run the
        Application Auto Scaling ``operation`` (identity policies only)."""
        self._authorize_checks(credentials, autoscaling_required(operation), request, request_id)

    def authorize_sns(self, credentials: Credentials, operation: str, data, request,
                      request_id: str | None = None) -> None:
        """Raise AccessDeniedException unless the signer may run the SNS
        ``operation`` (``sns:<Operation>`` on the topic it names; identity
        policies only)."""
        self._authorize_checks(credentials, sns_required(operation, data, credentials.region, self.account),
                               request, request_id)

    def _authorize_checks(self, credentials: Credentials, checks, request, request_id: str | None) -> None:
        principal = credentials.identity.principal
        if principal.is_root:
            return
        peer = request.peer[0] if request.peer else None
        context = request_context(peer, request.secure, self.clock())
        for check in checks:
            decision = decide(principal, check.action, check.resource, {**context, **check.context})
            if not decision.allowed:
                self._audit(principal.arn, request, check.action, check.resource, "deny", decision.reason,
                            request_id)
                raise AccessDeniedException(denied_message(principal, check.action, check.resource, decision))

    def _key_lookup(self, txn, region: str, pins: dict):
        """Key names for the decision, each table's identity recorded in ``pins``."""
        def lookup(table_name: str, index_name: str | None):
            table = self.catalog.get(txn, region, table_name)
            pin = pins.setdefault((region, table_name), (table.table_id if table else None, {}))
            if table is None:
                return None
            found = table if index_name is None else table.index_map.get(index_name)
            names = None if found is None else key_names(found)
            if names is not None:
                partition = sum(1 for _, kind in found.key_schema if kind == "HASH")
                if partition > 1:  # a multi-attribute partition key: a key read fixes each attribute
                    names = KeyNames(names, partition)
            if index_name is not None:
                pin[1][index_name] = names
            return names
        return lookup

    def _policy_lookup(self, txn):
        return lambda arn: resource_policies.lookup_policy(txn, self.catalog, arn)

    # -- STS ------------------------------------------------------------------------------

    def sts(self, request, request_id: str) -> tuple[int, str, bytes]:
        """Answer an STS query-protocol request; AssumeRole, granted or
        refused, is an IAM change and is audited."""
        from shoal.auth.sts import parse_form, sts_handle

        form = parse_form(request.body)
        credentials = self.authenticate(request, "sts", operation=form.get("Action"), request_id=request_id)

        def audit(action: str, resource: str, decision: str, reason: str) -> None:
            self._audit(credentials.identity.principal.arn, request, action, resource, decision, reason, request_id)

        return sts_handle(form, credentials, store=self.store, request_id=request_id, audit=audit)

    # -- audit ----------------------------------------------------------------------------

    def _audit(self, principal, request, action, resource, decision, reason, request_id) -> None:
        if self.audit is None:
            return
        try:
            self.audit.record(principal=principal, source=request.peer[0] if request.peer else None,
                              action=action, resource=resource, decision=decision, reason=reason,
                              request_id=request_id, now=self.clock())
        except OSError as exc:  # never turn a denial into a server error
            log.error("cannot write the audit log %s: %s", self.audit.path, exc)

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()


def _claimed_key(request) -> str | None:
    """The access key a request claims (from the header or the presigned
    query), for the audit line of a failed authentication."""
    auth = request.headers.get("authorization", "")
    at = auth.find("Credential=")
    if at >= 0:
        return auth[at + 11:].split("/", 1)[0].strip() or None
    path = request.path
    at = path.find("X-Amz-Credential=")
    if at >= 0:
        return path[at + 17:].split("%2F", 1)[0].split("/", 1)[0].split("&", 1)[0] or None
    return None

