"""The IAM store: users, access keys, groups, roles and policies, kept in the
store's ``meta`` space under the ``iam/`` prefix.

Layout (values are JSON)::

    iam/gen                generation counter, bumped by every IAM change
    iam/user/<name>        {"name", "id", "root", "groups", "inline": {name: doc}, "attached": [arn]}
    iam/group/<name>       {"name", "id", "inline", "attached"}
    iam/role/<name>        {"name", "id", "trust", "max_session", "inline", "attached"}
    iam/policy/<name>      {"name", "id", "document"}            (customer managed policies)
    iam/key/<access key>   {"user" | "role"+"session", "secret", "status", "created", ["token", "expires"]}
    iam/secret-key         the Fernet key of the secrets (raw), in a store shared by nodes (below)

Secrets (and session tokens) are stored encrypted with Fernet.  In a data
directory (LMDB) the key is ``<data dir>/iam.key``, readable only by its
owner, so a copy of the database file alone does not reveal them.  A store
that many nodes share (PostgreSQL, ``shoal serve --storage``) keeps the key
in the store itself, as ``iam/secret-key`` in ``meta``: every node, and
``shoal iam --storage``, must decrypt what any of them encrypted, and a node
owns no files the others could read.  The first opener creates it in a
write transaction that reads (and so locks) the key first, so nodes starting
together agree on one.  Sealed by the storage layer with the rest of ``meta``
when the store is encrypted at rest (``--master-key-file``); otherwise the
database's own access control is what guards it.  A node directory holding an
``iam.key`` from before (when each node made its own) gives that key to a
store that has none yet, so the keys that node made still open; keys made
through other nodes then cannot be decrypted and are refused as unknown keys
(logged): make them again.  A store record takes precedence over the file
in a data directory too (a store migrated from PostgreSQL brings its key).

The root user's access key is the store's: ``bootstrap_root`` writes the
oldest active root key that opens to a node's ``root-credentials`` file, and
creates one only when the store has none, in one IAM transaction, so every
node of a store (and a node whose directory is new) writes the same one.

``lookup(access_key)`` is on the path of every request.  It caches the
resolved identity (secret, principal, compiled policies) per key and
revalidates at most every ``ttl`` seconds with one point read of
``iam/gen``: another worker process may have changed IAM data, and any
change bumps the generation, so comparing its raw bytes tells whether the
whole cache still holds.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import struct
import sys
import time
from dataclasses import dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken

from shoal.model.policy import Policy, PolicyError, Principal, evaluate
from shoal.errors import ShoalError, validation_errors

DEFAULT_ACCOUNT = "000000000000"
KEY_FILE = "iam.key"
ROOT_CREDENTIALS_FILE = "root-credentials"
ROOT_USER = "root"
_GEN = b"iam/gen"
SECRET_KEY_META = _SECRET_KEY = b"iam/secret-key"
log = logging.getLogger("shoal")
_COUNTER = struct.Struct(">Q")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
DEFAULT_SESSION_S = 3600
MIN_SESSION_S = 900
MAX_SESSION_S = 43200
MAX_CACHED = 10000
#: How long ``lookup`` trusts its cache before reading the generation again
#: (``shoal serve`` takes SHOAL_IAM_CACHE_TTL: shoal.auth.gate).
DEFAULT_CACHE_TTL_S = 5.0
#: Expired temporary credentials are kept this long, so that a client still
#: using them gets ExpiredTokenException (as from AWS), not an unknown key.
EXPIRED_GRACE_S = 86400


class IamError(ShoalError):
    """An IAM request that cannot be done; ``code`` is IAM's error code."""

    status = 400

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.type_name = code
        self.status = status


def _no_such(kind: str, name: str) -> IamError:
    return IamError("NoSuchEntity", f"The {kind} with name {name} cannot be found.", 404)


def _exists(kind: str, name: str) -> IamError:
    return IamError("EntityAlreadyExists", f"{kind.capitalize()} with name {name} already exists.", 409)


@dataclass(slots=True, frozen=True)
class KeyIdentity:
    """What an access key stands for; the shape ``sigv4.verify`` expects."""

    access_key: str
    secret: str
    session_token: str | None
    expires: float | None
    principal: Principal
    active: bool = True


def _random_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def shares_store(engine) -> bool:
    """Whether ``engine``'s store is shared by many nodes (PostgreSQL, plain or
    encrypted at rest) rather than a data directory's own."""
    postgres = sys.modules.get("shoal.storage.postgres_engine")  # not loaded: no engine of it exists
    while postgres is not None and engine is not None:
        if isinstance(engine, postgres.PostgresEngine):
            return True
        engine = getattr(engine, "inner", None)  # an EncryptedEngine's
    return False


def _load_fernet(engine, data_dir, shared: bool) -> Fernet:
    """The store's encryption key of secrets (see the module docstring)."""
    with engine.read() as txn:
        stored = txn.get("meta", _SECRET_KEY)
    if stored is not None:
        return Fernet(bytes(stored))
    if not shared:
        return Fernet(_key_file(data_dir))
    from_file = read_key_file(data_dir) if data_dir is not None else None
    with engine.write() as txn:
        stored = txn.get("meta", _SECRET_KEY)  # read under its lock: one key however many nodes start
        if stored is None:
            stored = from_file or Fernet.generate_key()
            txn.put("meta", _SECRET_KEY, stored)
    return Fernet(bytes(stored))


def read_key_file(data_dir) -> bytes | None:
    try:
        with open(os.path.join(os.fspath(data_dir), KEY_FILE), "rb") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _key_file(data_dir) -> bytes:
    """The data directory's key, created on first use with mode 0600."""
    path = os.path.join(os.fspath(data_dir), KEY_FILE)
    found = read_key_file(data_dir)
    if found is not None:
        return found
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return read_key_file(data_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return key


class IamStore:
    """IAM data of one store, with a per-process identity cache.

    ``data_dir``: the data directory of an LMDB store (its ``iam.key``); for
    a shared store, a node directory (whose ``iam.key`` from before, if any,
    is offered to a store that has no key yet) or None."""

    def __init__(self, engine, data_dir, *, account: str = DEFAULT_ACCOUNT, ttl: float = DEFAULT_CACHE_TTL_S,
                 clock=time.time):
        self.engine = engine
        self.account = account
        self.ttl = ttl
        self.clock = clock
        self.shared = shares_store(engine)
        self._fernet = _load_fernet(engine, data_dir, self.shared)
        self._gen_raw: bytes | None = None
        self._checked_at = float("-inf")
        self._identities: dict[str, KeyIdentity | None] = {}

    # -- the request path -----------------------------------------------------------------

    def lookup(self, access_key: str) -> KeyIdentity | None:
        """The identity of ``access_key`` (None if unknown or inactive); at most
        one storage read per ``ttl`` while nothing changes."""
        self._revalidate()
        try:
            return self._identities[access_key]
        except KeyError:
            pass
        with self.engine.read() as txn:
            identity = self._resolve(txn, access_key)
        if len(self._identities) >= MAX_CACHED:
            self._identities.clear()
        self._identities[access_key] = identity
        return identity

    def _revalidate(self) -> None:
        now = self.clock()
        if now - self._checked_at < self.ttl:
            return
        with self.engine.read() as txn:
            raw = txn.get("meta", _GEN)
        if raw != self._gen_raw:
            self._identities = {}
            self._gen_raw = raw
        self._checked_at = now

    def invalidate(self) -> None:
        """Forget cached identities (after this process changed IAM data)."""
        self._identities = {}
        self._checked_at = float("-inf")

    def _resolve(self, txn, access_key: str) -> KeyIdentity | None:
        record = _get(txn, b"iam/key/" + access_key.encode())
        if record is None or record.get("status", "Active") != "Active":
            return None
        try:
            secret = self._decrypt(record["secret"])
            token = self._decrypt(record["token"]) if record.get("token") else None
        except InvalidToken:  # encrypted under another key (see the module docstring)
            log.warning("access key %s cannot be decrypted with the store's key: refused as unknown; "
                        "make a new one", access_key)
            return None
        if "user" in record:
            principal = self._user_principal(txn, record["user"])
        else:
            principal = self._session_principal(txn, record["role"], record["session"])
        if principal is None:
            return None
        return KeyIdentity(access_key, secret, token, record.get("expires"), principal)

    def _user_principal(self, txn, name: str) -> Principal | None:
        user = _get(txn, b"iam/user/" + name.encode())
        if user is None:
            return None
        if user.get("root"):
            arn = f"arn:aws:iam::{self.account}:root"
            return Principal(arn, self.account, "root", name, self.account)
        policies = self._policies_of(txn, user)
        for group_name in user.get("groups", []):
            group = _get(txn, b"iam/group/" + group_name.encode())
            if group is not None:
                policies += self._policies_of(txn, group)
        return Principal(self.user_arn(name), self.account, "user", name, user["id"], policies=tuple(policies))

    def _session_principal(self, txn, role_name: str, session: str) -> Principal | None:
        role = _get(txn, b"iam/role/" + role_name.encode())
        if role is None:
            return None
        arn = f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session}"
        return Principal(arn, self.account, "assumed-role", role_name, f"{role['id']}:{session}",
                         role_arn=self.role_arn(role_name), policies=tuple(self._policies_of(txn, role)))

    def _policies_of(self, txn, entity: dict) -> list[Policy]:
        found = [Policy.parse(doc) for doc in entity.get("inline", {}).values()]
        for arn in entity.get("attached", []):
            managed = _get(txn, b"iam/policy/" + arn.rsplit("/", 1)[-1].encode())
            if managed is not None:
                found.append(Policy.parse(managed["document"]))
        return found

    # -- names ----------------------------------------------------------------------------

    def user_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:user/{name}"

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{name}"

    def policy_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:policy/{name}"

    def group_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:group/{name}"

    # -- changes --------------------------------------------------------------------------

    def _write(self):
        return _Change(self)

    def create_user(self, name: str, *, root: bool = False) -> dict:
        with self._write() as txn:
            key = b"iam/user/" + name.encode()
            if txn.get("meta", key) is not None:
                raise _exists("user", name)
            user = {"name": name, "id": _random_id("AIDA"), "root": root, "groups": [], "inline": {},
                    "attached": [], "created": self.clock()}
            _put(txn, key, user)
        return self._user_view(user)

    def delete_user(self, name: str) -> None:
        with self._write() as txn:
            self._require(txn, "user", name)
            for key, raw in list(txn.scan("meta", b"iam/key/", b"iam/key0")):
                if orjson.loads(raw).get("user") == name:
                    txn.delete("meta", key)
            txn.delete("meta", b"iam/user/" + name.encode())

    def list_users(self) -> list[dict]:
        with self.engine.read() as txn:
            return [self._user_view(orjson.loads(v)) for _, v in txn.scan("meta", b"iam/user/", b"iam/user0")]

    def _user_view(self, user: dict) -> dict:
        return {"UserName": user["name"], "UserId": user["id"], "Arn": self.user_arn(user["name"]),
                "Path": "/", "CreateDate": _iso(user.get("created", 0)), "Groups": user.get("groups", []),
                "Root": bool(user.get("root"))}

    def create_access_key(self, user_name: str) -> dict:
        with self._write() as txn:
            self._require(txn, "user", user_name)
            access_key, secret = self._new_access_key(txn, user_name)
        return {"UserName": user_name, "AccessKeyId": access_key, "SecretAccessKey": secret, "Status": "Active"}

    def _new_access_key(self, txn, user_name: str) -> tuple[str, str]:
        access_key = _random_id("AKIA")
        secret = base64.b64encode(secrets.token_bytes(30)).decode()
        _put(txn, b"iam/key/" + access_key.encode(),
             {"user": user_name, "secret": self._encrypt(secret), "status": "Active", "created": self.clock()})
        return access_key, secret

    def root_access_key(self) -> tuple[str, str]:
        """The store's root access key and secret: the oldest active one that
        opens, made (with the root user) only when there is none.  Found and
        made under the IAM generation's lock, which every IAM change takes,
        so nodes starting together make one between them."""
        with self.engine.read() as txn:
            found = self._root_key(txn)
        if found is not None:
            return found
        with self._write() as txn:
            found = self._root_key(txn)
            if found is not None:
                return found
            key = b"iam/user/" + ROOT_USER.encode()
            if _get(txn, key) is None:
                _put(txn, key, {"name": ROOT_USER, "id": _random_id("AIDA"), "root": True, "groups": [],
                                "inline": {}, "attached": [], "created": self.clock()})
            return self._new_access_key(txn, ROOT_USER)

    def _root_key(self, txn) -> tuple[str, str] | None:
        user = _get(txn, b"iam/user/" + ROOT_USER.encode())
        if user is None or not user.get("root"):
            return None
        keys = sorted((record.get("created", 0), key[len(b"iam/key/"):].decode(), record)
                      for key, record in ((k, orjson.loads(v)) for k, v in txn.scan("meta", b"iam/key/", b"iam/key0"))
                      if record.get("user") == ROOT_USER and record.get("status", "Active") == "Active")
        for _created, access_key, record in keys:
            try:
                return access_key, self._decrypt(record["secret"])
            except InvalidToken:  # made under another key: see the module docstring
                continue
        return None

    def delete_access_key(self, access_key: str) -> None:
        with self._write() as txn:
            if not txn.delete("meta", b"iam/key/" + access_key.encode()):
                raise IamError("NoSuchEntity", f"The Access Key with id {access_key} cannot be found.", 404)

    def list_access_keys(self, user_name: str) -> list[dict]:
        with self.engine.read() as txn:
            self._require(txn, "user", user_name)
            return [{"UserName": user_name, "AccessKeyId": k[len(b"iam/key/"):].decode(), "Status": r["status"]}
                    for k, r in ((k, orjson.loads(v)) for k, v in txn.scan("meta", b"iam/key/", b"iam/key0"))
                    if r.get("user") == user_name]

    def create_group(self, name: str) -> dict:
        with self._write() as txn:
            key = b"iam/group/" + name.encode()
            if txn.get("meta", key) is not None:
                raise _exists("group", name)
            _put(txn, key, {"name": name, "id": _random_id("AGPA"), "inline": {}, "attached": []})
        return {"GroupName": name, "Arn": self.group_arn(name)}

    def add_user_to_group(self, user_name: str, group_name: str) -> None:
        with self._write() as txn:
            user = self._require(txn, "user", user_name)
            self._require(txn, "group", group_name)
            if group_name not in user["groups"]:
                user["groups"].append(group_name)
                _put(txn, b"iam/user/" + user_name.encode(), user)

    def remove_user_from_group(self, user_name: str, group_name: str) -> None:
        with self._write() as txn:
            user = self._require(txn, "user", user_name)
            if group_name in user["groups"]:
                user["groups"].remove(group_name)
                _put(txn, b"iam/user/" + user_name.encode(), user)

    def create_role(self, name: str, trust_policy, max_session: int = DEFAULT_SESSION_S) -> dict:
        trust = _document_text(trust_policy)
        with self._write() as txn:
            key = b"iam/role/" + name.encode()
            if txn.get("meta", key) is not None:
                raise _exists("role", name)
            role = {"name": name, "id": _random_id("AROA"), "trust": trust, "max_session": max_session,
                    "inline": {}, "attached": []}
            _put(txn, key, role)
        return {"RoleName": name, "RoleId": role["id"], "Arn": self.role_arn(name)}

    def get_role(self, name: str) -> dict:
        with self.engine.read() as txn:
            return self._require(txn, "role", name)

    def put_inline_policy(self, kind: str, name: str, policy_name: str, document) -> None:
        """put-user-policy / put-group-policy / put-role-policy."""
        text = _document_text(document)
        with self._write() as txn:
            entity = self._require(txn, kind, name)
            entity["inline"][policy_name] = text
            _put(txn, f"iam/{kind}/{name}".encode(), entity)

    def delete_inline_policy(self, kind: str, name: str, policy_name: str) -> None:
        with self._write() as txn:
            entity = self._require(txn, kind, name)
            if entity["inline"].pop(policy_name, None) is None:
                raise IamError("NoSuchEntity", f"The {kind} policy with name {policy_name} cannot be found.", 404)
            _put(txn, f"iam/{kind}/{name}".encode(), entity)

    def create_policy(self, name: str, document) -> dict:
        text = _document_text(document)
        with self._write() as txn:
            key = b"iam/policy/" + name.encode()
            if txn.get("meta", key) is not None:
                raise IamError("EntityAlreadyExists",
                               f"A policy called {name} already exists. Duplicate names are not allowed.", 409)
            _put(txn, key, {"name": name, "id": _random_id("ANPA"), "document": text})
        return {"PolicyName": name, "Arn": self.policy_arn(name)}

    def delete_policy(self, arn: str) -> None:
        with self._write() as txn:
            if not txn.delete("meta", b"iam/policy/" + arn.rsplit("/", 1)[-1].encode()):
                raise IamError("NoSuchEntity", f"Policy {arn} does not exist or is not attachable.", 404)

    def list_policies(self) -> list[dict]:
        with self.engine.read() as txn:
            return [{"PolicyName": p["name"], "PolicyId": p["id"], "Arn": self.policy_arn(p["name"]),
                     "Document": orjson.loads(p["document"])}
                    for p in (orjson.loads(v) for _, v in txn.scan("meta", b"iam/policy/", b"iam/policy0"))]

    def attach_policy(self, kind: str, name: str, arn: str) -> None:
        """attach-user-policy / attach-group-policy / attach-role-policy."""
        with self._write() as txn:
            entity = self._require(txn, kind, name)
            if txn.get("meta", b"iam/policy/" + arn.rsplit("/", 1)[-1].encode()) is None:
                raise IamError("NoSuchEntity", f"Policy {arn} does not exist or is not attachable.", 404)
            if arn not in entity["attached"]:
                entity["attached"].append(arn)
                _put(txn, f"iam/{kind}/{name}".encode(), entity)

    def detach_policy(self, kind: str, name: str, arn: str) -> None:
        with self._write() as txn:
            entity = self._require(txn, kind, name)
            if arn not in entity["attached"]:
                raise IamError("NoSuchEntity", f"Policy {arn} was not found.", 404)
            entity["attached"].remove(arn)
            _put(txn, f"iam/{kind}/{name}".encode(), entity)

    # -- temporary credentials ------------------------------------------------------------

    def assume_role(self, caller: Principal, role_arn: str, session_name: str,
                    duration: int | None = None) -> dict:
        """AssumeRole: the role's trust policy (and, when it only names the
        account, the caller's identity policies) must allow sts:AssumeRole."""
        role_name = role_arn.rsplit("/", 1)[-1]
        with self.engine.read() as txn:
            role = _get(txn, b"iam/role/" + role_name.encode())
        if role is None or role_arn != self.role_arn(role_name):
            raise IamError("AccessDenied", _assume_denied(caller, role_arn), 403)
        decision = evaluate(caller, "sts:AssumeRole", role_arn, {}, None, role["trust"])
        if not decision.allowed:
            raise IamError("AccessDenied", _assume_denied(caller, role_arn), 403)
        duration = DEFAULT_SESSION_S if duration is None else duration
        if not MIN_SESSION_S <= duration <= role.get("max_session", DEFAULT_SESSION_S):
            raise IamError("ValidationError",
                           "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                           if duration > MIN_SESSION_S else
                           validation_errors([f"Value '{duration}' at 'durationSeconds' failed to satisfy "
                                              "constraint: Member must have value greater than or equal to 900"]))
        access_key = _random_id("ASIA")
        secret = base64.b64encode(secrets.token_bytes(30)).decode()
        token = base64.b64encode(secrets.token_bytes(96)).decode()
        expires = int(self.clock()) + duration
        with self._write() as txn:
            _put(txn, b"iam/key/" + access_key.encode(), {
                "role": role_name, "session": session_name, "secret": self._encrypt(secret),
                "token": self._encrypt(token), "expires": expires, "status": "Active", "created": self.clock()})
        return {"AccessKeyId": access_key, "SecretAccessKey": secret, "SessionToken": token,
                "Expiration": expires, "AssumedRoleId": f"{role['id']}:{session_name}",
                "Arn": f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session_name}"}

    def prune_expired(self, now: float | None = None) -> int:
        """Delete temporary credentials expired for longer than
        ``EXPIRED_GRACE_S``; returns how many."""
        now = self.clock() if now is None else now
        with self.engine.read() as txn:
            doomed = [k for k, v in txn.scan("meta", b"iam/key/", b"iam/key0")
                      if (orjson.loads(v).get("expires") or float("inf")) + EXPIRED_GRACE_S <= now]
        if not doomed:
            return 0  # nothing to change: no write, no cache invalidation
        # Every worker of every node over a shared store prunes: the first
        # deletes, the others find nothing left and leave the generation (and
        # so every cache) as it is.  The generation is locked first, in the
        # order every IAM change takes its locks.
        with self.engine.write() as txn:
            raw = txn.get("meta", _GEN)
            deleted = sum(1 for key in doomed if txn.delete("meta", key))
            if deleted:
                txn.put("meta", _GEN, _COUNTER.pack((_COUNTER.unpack(raw)[0] if raw else 0) + 1))
        if deleted:
            self.invalidate()
        return deleted

    # -- helpers --------------------------------------------------------------------------

    def _require(self, txn, kind: str, name: str) -> dict:
        entity = _get(txn, f"iam/{kind}/{name}".encode())
        if entity is None:
            raise _no_such(kind, name)
        return entity

    def _encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def _decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()


class _Change:
    """A write transaction that bumps the IAM generation, so every process's
    cache notices the change."""

    def __init__(self, store: IamStore) -> None:
        self.store = store
        self._cm = None

    def __enter__(self):
        self._cm = self.store.engine.write()
        txn = self._cm.__enter__()
        raw = txn.get("meta", _GEN)
        txn.put("meta", _GEN, _COUNTER.pack((_COUNTER.unpack(raw)[0] if raw else 0) + 1))
        return txn

    def __exit__(self, *exc_info):
        result = self._cm.__exit__(*exc_info)
        self.store.invalidate()
        return result


def _get(txn, key: bytes) -> dict | None:
    raw = txn.get("meta", key)
    return None if raw is None else orjson.loads(raw)


def _put(txn, key: bytes, value: dict) -> None:
    txn.put("meta", key, orjson.dumps(value))


def _document_text(document) -> str:
    """Validate a policy document and return its JSON text."""
    if isinstance(document, (bytes, str)):
        text = document.decode() if isinstance(document, bytes) else document
    else:
        text = orjson.dumps(document).decode()
    try:
        Policy.parse(text)
    except PolicyError as exc:
        raise IamError("MalformedPolicyDocument", str(exc)) from None
    return text


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _assume_denied(caller: Principal, role_arn: str) -> str:
    return f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"


def bootstrap_root(engine, data_dir, *, account: str = DEFAULT_ACCOUNT) -> tuple[str, str, str]:
    """Write the store's root access key to ``<data dir>/root-credentials``
    (mode 0600, AWS shared credentials format), making the root user and its
    key when the store has none (``IamStore.root_access_key``).  A file that
    names a working root key of the store is kept as it is; one that does not
    (the key deleted, or made by a node of a shared store under its own
    encryption key before the store had one) is replaced.  Returns (access
    key, secret, file path)."""
    path = os.path.join(os.fspath(data_dir), ROOT_CREDENTIALS_FILE)
    store = IamStore(engine, data_dir, account=account)
    if os.path.exists(path):
        values = _read_credentials_file(path)
        access_key, secret = values.get("aws_access_key_id"), values.get("aws_secret_access_key")
        identity = store.lookup(access_key) if access_key else None
        if identity is not None and identity.secret == secret and identity.principal.is_root:
            return access_key, secret, path
    access_key, secret = store.root_access_key()
    text = f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret}\n"
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return access_key, secret, path


def _read_credentials_file(path: str) -> dict:
    values = {}
    with open(path) as f:
        for line in f:
            name, sep, value = line.partition("=")
            if sep:
                values[name.strip()] = value.strip()
    return values
