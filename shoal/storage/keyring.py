"""The master key and the keyring of an encrypted data directory.

Two levels of keys, as in envelope encryption:

* The **master key** (32 bytes) never touches the data directory.  The
  operator keeps it in a file (``--master-key-file``) or passes it in the
  environment (``SHOAL_MASTER_KEY``), as 64 hex digits, base64, or 32 raw bytes.
* The **data keys** are generated at the first start of an encrypted data
  directory and stored in ``<data dir>/KEYRING``, sealed (wrapped) with
  AES-256-GCM under the master key.  They encrypt everything else.  Rotating
  the master key re-wraps this one small file; the data never has to be
  rewritten.

The keyring file is JSON::

    {"format": 1, "cipher": "AES-256-GCM", "nonce": <base64>, "sealed": <base64>}

where ``sealed`` decrypts (with the associated data ``_AAD``) to the JSON of the
three data keys (base64): ``value`` seals stored values, ``partition`` keys the
hash that replaces partition-key bytes, ``order`` seeds the order-preserving
key transform.  A wrong master key fails GCM authentication, so it is detected
before anything is read or written with it.  The file is replaced atomically
(temporary file, fsync, rename, directory fsync).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shoal.storage.files import write_atomically

KEYRING_NAME = "KEYRING"
KEY_BYTES = 32
_FORMAT = 1
_CIPHER = "AES-256-GCM"
_AAD = b"shoal keyring 1"
_DATA_KEYS = ("value", "partition", "order")


class KeyringError(Exception):
    """The master key or the keyring cannot be used; the message is for the CLI."""


@dataclass(frozen=True, slots=True)
class DataKeys:
    """The unwrapped data keys of one data directory."""

    value: bytes
    partition: bytes
    order: bytes

    @classmethod
    def generate(cls) -> "DataKeys":
        """Fresh random data keys, for a new encrypted data directory."""
        return cls(*(os.urandom(KEY_BYTES) for _ in _DATA_KEYS))


def parse_master_key(text: bytes, source: str) -> bytes:
    """The 32-byte master key written in ``text`` (hex, base64, or raw bytes).

    ``source`` names where it came from, for the error message.
    """
    stripped = text.strip()
    if len(stripped) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(stripped.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    try:
        decoded = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == KEY_BYTES:
        return decoded
    if len(text) == KEY_BYTES:
        return bytes(text)
    raise KeyringError(
        f"the master key in {source} is not a 32-byte key: give 64 hex digits, "
        "base64 of 32 bytes, or 32 raw bytes"
    )


def read_master_key_file(path) -> bytes:
    """Read and parse a master key file."""
    shown = os.fspath(path)
    try:
        with open(shown, "rb") as handle:
            text = handle.read(4096)
    except OSError as exc:
        raise KeyringError(f"cannot read the master key file {shown} ({exc.strerror})") from None
    return parse_master_key(text, f"file {shown}")


def generate_master_key_text() -> str:
    """A new master key as 64 hex digits (what ``shoal keys generate`` prints)."""
    return os.urandom(KEY_BYTES).hex()


def keyring_path(data_dir) -> str:
    return os.path.join(os.fspath(data_dir), KEYRING_NAME)


def load_keyring(data_dir, master_key: bytes) -> DataKeys:
    """Unwrap the data keys of ``data_dir`` with ``master_key``; reads only."""
    path = keyring_path(data_dir)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(65536)
    except FileNotFoundError:
        raise KeyringError(
            f"data directory {os.fspath(data_dir)} is damaged: its {KEYRING_NAME} file is missing"
        ) from None
    except OSError as exc:
        raise KeyringError(f"cannot read {path} ({exc.strerror})") from None
    return _unseal(raw, path, master_key, f"the master key does not open data directory {os.fspath(data_dir)}: "
                   "it is not the key this directory was encrypted with")


def _unseal(raw: bytes, where: str, master_key: bytes, refusal: str) -> DataKeys:
    """The data keys of the keyring record ``raw`` (found at ``where``);
    ``refusal`` is the message when ``master_key`` does not open it."""
    nonce, sealed = _parse_keyring(raw, where)
    try:
        plain = AESGCM(master_key).decrypt(nonce, sealed, _AAD)
    except InvalidTag:
        raise KeyringError(refusal) from None
    keys = json.loads(plain)
    return DataKeys(*(base64.b64decode(keys[name]) for name in _DATA_KEYS))


def _parse_keyring(raw: bytes, path: str) -> tuple[bytes, bytes]:
    try:
        record = json.loads(raw)
        if record.get("format") != _FORMAT or record.get("cipher") != _CIPHER:
            raise ValueError("unknown keyring format")
        return base64.b64decode(record["nonce"]), base64.b64decode(record["sealed"])
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise KeyringError(f"{path} is damaged: not a Shoal keyring") from None


# ---------------------------------------------------------------- in a PostgreSQL store
#
# Over ``--storage postgresql://...`` every node must use the same data keys,
# so the keyring record (the same bytes as a KEYRING file) is a row of the
# database (``PostgresEngine.read_keyring`` and its kin), and its presence
# marks the store encrypted.  The master key stays with each node.


def database_keyring(engine, master_key: bytes, shown: str) -> DataKeys:
    """The data keys of the PostgreSQL store ``engine`` (a ``PostgresEngine``
    opened with ``encrypted=True``; ``shown`` names it in messages), made and
    stored at the first start of an empty store.  A store that holds data
    but no keyring is a plain one, and a master key for it is refused, as
    for a plain data directory."""
    record = engine.read_keyring()
    if record is None:
        record = engine.create_keyring(seal_keyring(DataKeys.generate(), master_key))
        if record is None:
            raise KeyringError(
                f"the PostgreSQL store {shown} is not encrypted, but a master key was given: serve it without "
                "--master-key-file / SHOAL_MASTER_KEY (a store is encrypted when it is created)"
            )
    return _unseal(record, f"the keyring of {shown}", master_key,
                   f"the master key does not open the PostgreSQL store {shown}: "
                   "it is not the key this store was encrypted with")


def rotate_database_master_key(engine, old_master: bytes, new_master: bytes, shown: str) -> None:
    """Re-wrap the data keys kept in the PostgreSQL store ``engine`` under
    ``new_master``, in one transaction; the old key must open them first,
    so a wrong old key changes nothing.  Running nodes keep serving (their
    data keys are unchanged); the next start of any node needs the new key."""

    def rewrap(record: bytes) -> bytes:
        keys = _unseal(record, f"the keyring of {shown}", old_master,
                       f"the master key does not open the PostgreSQL store {shown}: "
                       "it is not the key this store was encrypted with")
        return seal_keyring(keys, new_master)

    try:
        engine.replace_keyring(rewrap)
    except LookupError:
        raise KeyringError(f"the PostgreSQL store {shown} is not encrypted: it has no keys to rotate") from None


def seal_keyring(keys: DataKeys, master_key: bytes) -> bytes:
    """The keyring file's bytes: ``keys`` wrapped under ``master_key``."""
    plain = json.dumps({name: base64.b64encode(getattr(keys, name)).decode() for name in _DATA_KEYS})
    nonce = os.urandom(12)
    sealed = AESGCM(master_key).encrypt(nonce, plain.encode(), _AAD)
    record = {
        "format": _FORMAT,
        "cipher": _CIPHER,
        "nonce": base64.b64encode(nonce).decode(),
        "sealed": base64.b64encode(sealed).decode(),
    }
    return (json.dumps(record) + "\n").encode()


def write_keyring(data_dir, keys: DataKeys, master_key: bytes) -> None:
    """Atomically and durably (re)place the keyring of ``data_dir``."""
    write_atomically(keyring_path(data_dir), seal_keyring(keys, master_key), 0o600)
    dir_fd = os.open(os.fspath(data_dir), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def rotate_master_key(data_dir, old_master: bytes, new_master: bytes) -> None:
    """Re-wrap the data keys of ``data_dir`` under ``new_master``.

    The old key must open the keyring first (so a mistyped old key changes
    nothing); the data itself is untouched, as it is encrypted with the data
    keys, which stay the same.
    """
    keys = load_keyring(data_dir, old_master)
    try:
        write_keyring(data_dir, keys, new_master)
    except OSError as exc:
        raise KeyringError(f"cannot replace {keyring_path(data_dir)} ({exc.strerror})") from None


# ---------------------------------------------------------------- KMS keys of this region
#
# Shoal has no KMS: a table's SSESpecification names a KMS key and Shoal
# records it (SSEDescription) without asking anyone.  What it can do is what
# DynamoDB does when a table's key stops being usable: the operator marks a
# key id or alias disabled, pending deletion or deleted in this region (a
# deployment's data directory) and Shoal treats every table encrypted with
# it as DynamoDB treats a table whose KMS key is inaccessible.  Keys not
# listed are usable.  The states are KMS's KeyState values (and Deleted, for
# a key that is gone).  A data directory keeps them in its KMS_KEYS file; a
# store shared by many nodes (PostgreSQL) has no such file, so it keeps the
# same record in the store, as the meta key ``kms/key-states``: every node of
# the region reads it there (one point read a second, by the key check).

KMS_KEYS_NAME = "KMS_KEYS"
KMS_KEY_STATES = ("Enabled", "Disabled", "PendingDeletion", "Deleted")
#: The meta key of a shared store's KMS key states (the KMS_KEYS file's record).
KMS_KEY_STATES_META = b"kms/key-states"


def kms_key_id(key: str) -> str:
    """The key id (``1234abcd-...``) or alias (``alias/name``) a KMSMasterKeyId
    names, whether given bare or as a key or alias ARN."""
    if key.startswith("arn:"):
        resource = key.split(":", 5)[-1]
        return resource[len("key/"):] if resource.startswith("key/") else resource
    return key


def kms_keys_path(data_dir) -> str:
    return os.path.join(os.fspath(data_dir), KMS_KEYS_NAME)


def read_kms_key_states(data_dir) -> dict[str, str]:
    """The KMS keys of this data directory's region that are not Enabled, by
    key id or alias (``kms_key_id``); empty when none were ever marked."""
    path = kms_keys_path(data_dir)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(1 << 20)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise KeyringError(f"cannot read {path} ({exc.strerror})") from None
    return _parse_kms_key_states(raw, path)


def _parse_kms_key_states(raw: bytes, where: str) -> dict[str, str]:
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    keys = record.get("keys") if isinstance(record, dict) else None
    if not isinstance(record, dict) or record.get("format") != _FORMAT or not isinstance(keys, dict):
        raise KeyringError(f"{where} is damaged: not a Shoal list of KMS key states")
    return {str(k): str(v) for k, v in keys.items() if v != "Enabled"}


def _with_kms_key_state(states: dict[str, str], key: str, state: str) -> bytes:
    """The record of ``states`` once ``key`` is marked ``state`` (one of KMS_KEY_STATES)."""
    states = dict(states)
    states.pop(kms_key_id(key), None)
    if state != "Enabled":
        states[kms_key_id(key)] = state
    return (json.dumps({"format": _FORMAT, "keys": dict(sorted(states.items()))}) + "\n").encode()


def set_kms_key_state(data_dir, key: str, state: str) -> None:
    """Mark a KMS key of this region ``state`` (Enabled makes it usable again);
    the file is replaced atomically, and a running server sees the change
    within a few seconds."""
    if state not in KMS_KEY_STATES:
        raise KeyringError(f"unknown KMS key state {state}: one of {', '.join(KMS_KEY_STATES)}")
    record = _with_kms_key_state(read_kms_key_states(data_dir), key, state)
    write_atomically(kms_keys_path(data_dir), record, 0o600)


def stored_kms_key_states(engine) -> dict[str, str]:
    """``read_kms_key_states`` for a store shared by nodes: its meta record
    ``kms/key-states`` (sealed with the rest of meta when the store is
    encrypted at rest); empty when none were ever marked."""
    with engine.read() as txn:
        raw = txn.get("meta", KMS_KEY_STATES_META)
    return {} if raw is None else _parse_kms_key_states(bytes(raw), "the store's KMS key states (meta kms/key-states)")


def set_stored_kms_key_state(engine, key: str, state: str) -> None:
    """``set_kms_key_state`` for a store shared by nodes: the record read and
    replaced in one write transaction (two marks made at once both count),
    seen by every node's next key check."""
    if state not in KMS_KEY_STATES:
        raise KeyringError(f"unknown KMS key state {state}: one of {', '.join(KMS_KEY_STATES)}")
    with engine.write() as txn:
        raw = txn.get("meta", KMS_KEY_STATES_META)
        states = {} if raw is None else _parse_kms_key_states(
            bytes(raw), "the store's KMS key states (meta kms/key-states)")
        txn.put("meta", KMS_KEY_STATES_META, _with_kms_key_state(states, key, state))


def kms_key_problem(states: dict[str, str], arn: str) -> str | None:
    """Why the KMS key ``arn`` cannot be used, in KMS's own words (its
    DisabledException, KMSInvalidStateException and NotFoundException), or
    None if it can; ``states`` is ``read_kms_key_states``' answer."""
    state = states.get(kms_key_id(arn), "Enabled")
    if state == "Disabled":
        return f"{arn} is disabled."
    if state == "PendingDeletion":
        return f"{arn} is pending deletion."
    if state == "Deleted":
        return f"Key '{arn}' does not exist"
    return None
