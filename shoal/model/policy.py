"""IAM policy evaluation, as IAM evaluates policies within one account.

The decision (IAM's "Policy evaluation logic"):

1. An explicit ``Deny`` in any applicable policy denies.
2. Otherwise an ``Allow`` in an identity-based policy, or in the resource-based
   policy naming the principal (same account: either one suffices), allows.
3. Otherwise the request is implicitly denied.

A statement applies when its Action/NotAction, Resource/NotResource,
Principal/NotPrincipal (resource-based policies only) and every condition
match.  Actions compare case-insensitively, ARNs case-sensitively, both with
``*`` and ``?`` wildcards; ARN patterns match segment by segment, as IAM does.

Conditions follow IAM's rules: operators of a block are ANDed, keys of an
operator ANDed, values of a key ORed; a negated operator (``StringNotEquals``)
is the negation of its positive form, so it holds when the key is absent;
``...IfExists`` holds when the key is absent; ``ForAllValues`` holds for an
absent or empty key, ``ForAnyValue`` does not.  An unqualified operator
applied to a multivalued key behaves as ``ForAnyValue``.

Policy documents are compiled once (``Policy.parse``, cached by text) into
plain tuples and pre-compiled patterns, so evaluating a request is a few
dictionary lookups and regular-expression matches.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Iterable

import orjson

IDENTITY = "identity-based"
RESOURCE = "resource-based"


@dataclass(slots=True, frozen=True)
class Principal:
    """The caller as policies see it."""

    arn: str  # arn:aws:iam::000000000000:user/alice, ...:root, arn:aws:sts::...:assumed-role/r/s
    account: str
    kind: str = "user"  # "user", "root", "assumed-role"
    name: str = ""  # user name, or role name for a session
    userid: str = ""  # user id, or "ROLEID:session" for a session
    role_arn: str | None = None  # the role an assumed-role session came from
    policies: tuple = ()  # the identity-based Policy objects in force
    tags: dict = field(default_factory=dict)
    # Decisions already taken for this principal (see ``decide``); a principal
    # is rebuilt whenever IAM data changes, and its memory with it.
    decisions: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def is_root(self) -> bool:
        return self.kind == "root"

    def context(self) -> dict:
        """The global condition keys that describe the principal."""
        ctx = {
            "aws:PrincipalArn": self.role_arn or self.arn,
            "aws:PrincipalAccount": self.account,
            "aws:userid": self.userid,
            "aws:PrincipalType": {"user": "User", "root": "Account", "assumed-role": "AssumedRole"}[self.kind],
        }
        if self.kind == "user":
            ctx["aws:username"] = self.name
        for key, value in self.tags.items():
            ctx[f"aws:PrincipalTag/{key}"] = value
        return ctx


@dataclass(slots=True, frozen=True)
class Decision:
    """The outcome; ``reason`` is the tail of AWS's AccessDenied message
    ("because no identity-based policy allows the dynamodb:GetItem action",
    "with an explicit deny in an identity-based policy") or "allowed"."""

    allowed: bool
    reason: str


class PolicyError(ValueError):
    """A policy document IAM would refuse (MalformedPolicyDocument)."""


# -- compiling ----------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Statement:
    effect_allow: bool
    actions: tuple  # compiled patterns
    not_action: bool
    resources: tuple  # raw pattern strings (may hold policy variables)
    not_resource: bool
    principals: tuple | None  # None: no Principal element (identity policy)
    not_principal: bool
    conditions: tuple  # (qualifier, operator, negate, if_exists, key, values)


@dataclass(slots=True, frozen=True)
class Policy:
    statements: tuple
    text: str = ""
    keys: tuple = ()  # every condition key and policy variable the document reads

    @staticmethod
    def parse(document) -> "Policy":
        """Compile a policy document (JSON text, bytes or dict); cached by text."""
        if isinstance(document, Policy):
            return document
        if isinstance(document, dict):
            document = orjson.dumps(document).decode()
        elif isinstance(document, bytes):
            document = document.decode()
        return _parse_text(document)


@lru_cache(maxsize=4096)
def _parse_text(text: str) -> Policy:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise PolicyError("Syntax errors in policy.") from None
    if not isinstance(doc, dict) or "Statement" not in doc:
        raise PolicyError("Syntax errors in policy.")
    statements = doc["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    compiled = tuple(_statement(s) for s in statements)
    return Policy(compiled, text, _referenced_keys(compiled))


def _referenced_keys(statements: tuple) -> tuple:
    """The context keys a decision under these statements can depend on: the
    condition keys and the ``${...}`` variables of resources and values."""
    keys = set()
    for statement in statements:
        texts = list(statement.resources)
        for condition in statement.conditions:
            keys.add(condition[5])
            texts.extend(condition[6])
        for text in texts:
            for inner in _VARIABLE.findall(text):
                if inner not in ("*", "?", "$"):
                    keys.add(inner.partition(",")[0].strip())
    return tuple(sorted(keys))


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _statement(raw: dict) -> Statement:
    if not isinstance(raw, dict) or raw.get("Effect") not in ("Allow", "Deny"):
        raise PolicyError("Syntax errors in policy.")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError("Policy statement must contain actions.")
    not_action = "NotAction" in raw
    actions = tuple(_glob(a, ignore_case=True) for a in _as_list(raw["NotAction" if not_action else "Action"]))
    not_resource = "NotResource" in raw
    resources = tuple(_as_list(raw.get("NotResource" if not_resource else "Resource", "*")))
    principals = None
    not_principal = "NotPrincipal" in raw
    if "Principal" in raw or not_principal:
        principals = _principals(raw["NotPrincipal" if not_principal else "Principal"])
    return Statement(raw["Effect"] == "Allow", actions, not_action, resources, not_resource,
                     principals, not_principal, _conditions(raw.get("Condition") or {}))


def _principals(value) -> tuple:
    if value == "*":
        return ("*",)
    if not isinstance(value, dict):
        raise PolicyError("Invalid principal in policy")
    found = []
    for kind, names in value.items():
        for name in _as_list(names):
            found.append("*" if name == "*" else name)
    return tuple(found)


def _conditions(block: dict) -> tuple:
    compiled = []
    for operator_name, keys in block.items():
        qualifier = None
        name = operator_name
        if ":" in name:
            qualifier, name = name.split(":", 1)
            if qualifier not in ("ForAllValues", "ForAnyValue"):
                raise PolicyError(f"Invalid Condition type : {operator_name}")
        if_exists = name.endswith("IfExists") and name != "IfExists"
        base = name[:-8] if if_exists else name
        if base not in _OPERATORS:
            raise PolicyError(f"Invalid Condition type : {operator_name}")
        matcher, negate = _OPERATORS[base]
        for key, values in keys.items():
            texts = tuple(_scalar_text(v) for v in _as_list(values))
            compiled.append((qualifier, base, matcher, negate, if_exists, key, texts))
    return tuple(compiled)


def _scalar_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@lru_cache(maxsize=8192)
def _glob(pattern: str, ignore_case: bool = False) -> re.Pattern:
    """``*`` (any run) and ``?`` (any one character) wildcards as a regex."""
    parts = []
    for char in pattern:
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


# -- policy variables ---------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def substitute(text: str, context: dict) -> str | None:
    """Replace ``${key}`` policy variables from the request context; None when
    a variable has no value (IAM then treats the element as not matching).
    ``${key, 'default'}`` supplies a default; ``${*}``, ``${?}``, ``${$}`` are
    the literal characters."""
    if "${" not in text:
        return text
    missing = False

    def replace(match: re.Match) -> str:
        nonlocal missing
        inner = match.group(1)
        if inner in ("*", "?", "$"):
            return inner
        key, _, default = inner.partition(",")
        value = _context_get(context, key.strip())
        if value is None or isinstance(value, list):
            default = default.strip()
            if len(default) >= 2 and default[0] == default[-1] == "'":
                return default[1:-1]
            missing = True
            return ""
        return _scalar_text(value)

    result = _VARIABLE.sub(replace, text)
    return None if missing else result


def _context_get(context: dict, key: str):
    """Condition keys are case-insensitive; try the exact spelling first."""
    value = context.get(key)
    if value is None:
        lowered = key.lower()
        for name, candidate in context.items():
            if name.lower() == lowered:
                return candidate
    return value


# -- operators: each takes (context value text, policy value text) -------------------------


def _string_equals(ctx: str, pol: str) -> bool:
    return ctx == pol


def _string_equals_ignore_case(ctx: str, pol: str) -> bool:
    return ctx.lower() == pol.lower()


def _string_like(ctx: str, pol: str) -> bool:
    return _glob(pol).fullmatch(ctx) is not None


def _number(text) -> Decimal | None:
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None


def _numeric(compare):
    def match(ctx, pol) -> bool:
        a, b = _number(ctx), _number(pol)
        return a is not None and b is not None and compare(a, b)
    return match


def _date(text) -> float | None:
    text = str(text)
    try:
        return float(text)  # epoch seconds
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _dated(compare):
    def match(ctx, pol) -> bool:
        a, b = _date(ctx), _date(pol)
        return a is not None and b is not None and compare(a, b)
    return match


def _bool(ctx, pol) -> bool:
    return _scalar_text(ctx).lower() == pol.lower()


def _binary(ctx, pol) -> bool:
    try:
        return base64.b64decode(ctx) == base64.b64decode(pol)
    except ValueError:
        return False


@lru_cache(maxsize=1024)
def _network(text: str):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _ip(ctx, pol) -> bool:
    net = _network(pol)
    try:
        return net is not None and ipaddress.ip_address(str(ctx)) in net
    except ValueError:
        return False


def arn_like(arn: str, pattern: str) -> bool:
    """IAM's ARN match: the six colon-separated parts compare one by one, each
    with wildcards (so a ``*`` does not swallow a colon of the first five)."""
    if pattern == "*":
        return True
    pat = pattern.split(":", 5)
    got = arn.split(":", 5)
    if len(pat) != 6 or len(got) != 6:
        return False  # not an ARN pattern: IAM matches nothing with it
    return all(_glob(p).fullmatch(g) is not None for p, g in zip(pat, got))


def _null(ctx_present: bool, pol: str) -> bool:  # handled specially
    return (pol.lower() == "true") != ctx_present


_lt, _le = (lambda a, b: a < b), (lambda a, b: a <= b)
_gt, _ge = (lambda a, b: a > b), (lambda a, b: a >= b)
_eq = lambda a, b: a == b  # noqa: E731

# name -> (match of one context value against one policy value, negated?)
_OPERATORS = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "NumericEquals": (_numeric(_eq), False),
    "NumericNotEquals": (_numeric(_eq), True),
    "NumericLessThan": (_numeric(_lt), False),
    "NumericLessThanEquals": (_numeric(_le), False),
    "NumericGreaterThan": (_numeric(_gt), False),
    "NumericGreaterThanEquals": (_numeric(_ge), False),
    "DateEquals": (_dated(_eq), False),
    "DateNotEquals": (_dated(_eq), True),
    "DateLessThan": (_dated(_lt), False),
    "DateLessThanEquals": (_dated(_le), False),
    "DateGreaterThan": (_dated(_gt), False),
    "DateGreaterThanEquals": (_dated(_ge), False),
    "Bool": (_bool, False),
    "BinaryEquals": (_binary, False),
    "IpAddress": (_ip, False),
    "NotIpAddress": (_ip, True),
    "ArnEquals": (arn_like, False),
    "ArnLike": (arn_like, False),
    "ArnNotEquals": (arn_like, True),
    "ArnNotLike": (arn_like, True),
    "Null": (None, False),
}


def _condition_holds(condition: tuple, context: dict) -> bool:
    qualifier, base, matcher, negate, if_exists, key, policy_values = condition
    value = _context_get(context, key)
    present = value is not None and value != []
    if base == "Null":
        return any(_null(present, v) for v in policy_values)
    if policy_values and any("${" in v for v in policy_values):
        policy_values = tuple(s for s in (substitute(v, context) for v in policy_values) if s is not None)
    values = value if isinstance(value, list) else ([] if value is None else [value])

    def one(ctx_value) -> bool:  # does this context value satisfy the operator?
        hit = any(matcher(ctx_value if base == "Bool" else _scalar_text(ctx_value), p) for p in policy_values)
        return hit != negate

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    if qualifier == "ForAnyValue":
        return any(one(v) for v in values)
    if not present:
        return if_exists or negate
    if negate:
        return all(one(v) for v in values)
    return any(one(v) for v in values)


# -- evaluation ---------------------------------------------------------------------------


def _action_matches(statement: Statement, action: str) -> bool:
    hit = any(p.fullmatch(action) for p in statement.actions)
    return hit != statement.not_action


def _resource_matches(statement: Statement, resource: str, context: dict) -> bool:
    hit = False
    for pattern in statement.resources:
        pattern = substitute(pattern, context)
        if pattern is not None and arn_like(resource, pattern):
            hit = True
            break
    return hit != statement.not_resource


def _principal_matches(statement: Statement, principal: Principal) -> tuple[bool, bool]:
    """(applies, names the principal itself).  Naming the account (its id or
    ``:root`` ARN) applies too, but only delegates to the account: the
    principal's identity policies must then allow as well."""
    names = {principal.arn, principal.role_arn}
    account_names = {principal.account, f"arn:aws:iam::{principal.account}:root"}
    direct = delegated = False
    for name in statement.principals:
        if name == "*" or name in names or (name != "*" and arn_like(principal.arn, name) and "*" in name):
            direct = True
        elif name in account_names:
            delegated = True
    if statement.not_principal:
        return not (direct or delegated), False
    return direct or delegated, direct


def _applies(statement: Statement, action: str, resource: str, context: dict) -> bool:
    if not _action_matches(statement, action):
        return False
    if not _resource_matches(statement, resource, context):
        return False
    return all(_condition_holds(c, context) for c in statement.conditions)


def evaluate(
    principal: Principal,
    action: str,
    resource_arn: str,
    context: dict | None,
    identity_policies: Iterable | None = None,
    resource_policy=None,
) -> Decision:
    """Decide whether ``principal`` may perform ``action`` on ``resource_arn``.

    ``context`` holds the request's condition keys (service keys such as
    ``dynamodb:LeadingKeys`` and global ones such as ``aws:SourceIp``); the
    principal's own keys (``aws:username``...) are added here.
    ``identity_policies`` defaults to ``principal.policies``; documents may be
    dicts, JSON text or compiled ``Policy`` objects.
    """
    full = principal.context()
    if context:
        full.update(context)
    policies = principal.policies if identity_policies is None else identity_policies
    identity_allows = False
    for document in policies:
        for statement in Policy.parse(document).statements:
            if _applies(statement, action, resource_arn, full):
                if not statement.effect_allow:
                    return Decision(False, f"with an explicit deny in an {IDENTITY} policy")
                identity_allows = True
    resource_allows = False
    if resource_policy is not None:
        for statement in Policy.parse(resource_policy).statements:
            if statement.principals is None:
                continue
            applies, direct = _principal_matches(statement, principal)
            if applies and _applies(statement, action, resource_arn, full):
                if not statement.effect_allow:
                    return Decision(False, f"with an explicit deny in a {RESOURCE} policy")
                resource_allows = resource_allows or direct
    if principal.is_root or identity_allows or resource_allows:
        return Decision(True, "allowed")
    return Decision(False, f"because no {IDENTITY} policy allows the {action} action")


#: Decisions remembered per principal before its memory is emptied.
MAX_DECISIONS = 4096
_KEYS = object()  # a principal's memory holds its policies' keys under this


def decide(principal: Principal, action: str, resource_arn: str, context: dict, resource_policy=None) -> Decision:
    """``evaluate`` with the principal's own policies, remembered.

    A decision is a function of the principal (whose policies are fixed for
    the life of the object), the action, the resource, the resource-based
    policy and the values of the context keys the policies read; so it is
    remembered under exactly those, and a request whose keys take values
    already seen costs one dictionary lookup.  A policy that reads
    ``aws:CurrentTime`` makes the time part of the key, as it must.
    """
    if not isinstance(resource_policy, (str, type(None))):
        return evaluate(principal, action, resource_arn, context, None, resource_policy)
    memory = principal.decisions
    keys = memory.get(_KEYS)
    if keys is None:
        keys = memory[_KEYS] = tuple(sorted({k for p in principal.policies for k in Policy.parse(p).keys}))
    if resource_policy is not None:
        keys = keys + Policy.parse(resource_policy).keys
    values = tuple(_frozen(_context_get(context, key)) for key in keys)
    memo = (action, resource_arn, resource_policy, values)
    decision = memory.get(memo)
    if decision is None:
        decision = evaluate(principal, action, resource_arn, context, None, resource_policy)
        if len(memory) > MAX_DECISIONS:
            memory.clear()  # the policies' keys are gathered again on the next call
        memory[memo] = decision
    return decision


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


def denied_message(principal: Principal, action: str, resource_arn: str, decision: Decision) -> str:
    """AWS's AccessDenied wording for a denied decision."""
    return (f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource_arn} "
            f"{decision.reason}")


def validate_document(document: Any) -> Policy:
    """Compile a document a user stores, raising PolicyError for one IAM
    would refuse; returns the compiled policy."""
    return Policy.parse(document)
