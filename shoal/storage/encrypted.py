"""Encryption at rest: an ``Engine`` wrapper that seals values and disguises keys.

``EncryptedEngine(inner, data_keys)`` wraps any engine.  Above it nothing
changes: keys and values are the same bytes as with a plain engine.  Below it
(in the inner engine's files) every byte is either ciphertext or a keyed
transform:

* **Values** are sealed with AES-256-GCM under the ``value`` data key, as
  ``0x01 + nonce (12 random bytes) + ciphertext + tag (16)``.  The associated
  data is the space name and the stored key, so a value moved to another key
  or space fails authentication (``IntegrityError``) instead of being read.
* **Keys** go through ``KeyTransform``: each byte ``b`` at position ``i``
  becomes the two bytes of ``T[i % 16][b]``, where ``T[r]`` is a keyed, strictly
  increasing map from 0..255 into 0..65535.  The map is a bijection onto its
  image that keeps bytewise order and prefixes, so range scans, ``successor``
  bounds and prefix ranges built above the wrapper work unchanged, and scanned
  keys are mapped back.  It hides byte values but not their order: what it
  leaks is written down exactly in docs/encryption.md.
* **Partition keys** would leak most through that transform (they are the
  high-entropy identifiers: user ids), and their order is never needed.  So the
  API layer replaces the encoded partition-key value with a keyed 16-byte hash
  before building a storage key: ``KeyCodec.partition`` (found as
  ``engine.keys`` and ``txn.keys``; a plain engine has no ``keys``, and the
  API layer then uses the encoded value itself).  Equality, and so grouping
  into item collections, is kept; nothing else is revealed.

The unencrypted path does not go through this module at all.

Over PostgreSQL (``open_encrypted_postgres``) the keyring lives in the
database, so that every node uses the same data keys, and the inner engine is
told what the transform does to the keys it must recognise
(``PostgresEngine.sealed_above``): the tables' catalog entries, which it
caches and shares among readers, and the partition prefix it hashes.  The
counters and the change log's head are sealed, so it cannot add to them or
renumber them at commit: there, they are locked like any key, and item
writers wait for each other at the log's head.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shoal.storage.engine import Engine, ReadTxn, WriteTxn
from shoal.storage.keyring import DataKeys, database_keyring

_VERSION = b"\x01"
_NONCE = 12
_HEADER = 1 + _NONCE
_RESIDUES = 16  # positions cycle through this many independent byte maps
_PARTITION_BYTES = 16


class IntegrityError(Exception):
    """A stored value failed authentication: the files were altered or damaged."""


class KeyCodec:
    """What the API layer needs to build storage keys of an encrypted directory."""

    __slots__ = ("_key",)

    def __init__(self, partition_key: bytes) -> None:
        self._key = partition_key

    def partition(self, encoded: bytes) -> bytes:
        """The 16-byte keyed hash (BLAKE2b-MAC) standing for an encoded
        partition-key value.  Fixed length, so keys stay self-delimiting."""
        return hashlib.blake2b(encoded, key=self._key, digest_size=_PARTITION_BYTES).digest()


def _byte_maps(seed: bytes) -> tuple[list[list[int]], list[dict[int, int]]]:
    """``_RESIDUES`` keyed strictly increasing maps 0..255 -> 0..65535 (each a
    uniformly random 256-subset of 0..65535, sorted), and their inverses keyed
    by the native-endian 16-bit reading of the two output bytes."""
    forward = []
    inverse = []
    for residue in range(_RESIDUES):
        chosen: set[int] = set()
        counter = 0
        while len(chosen) < 256:
            block = hashlib.blake2b(
                counter.to_bytes(8, "big"), key=seed, person=residue.to_bytes(16, "big")
            ).digest()
            counter += 1
            for i in range(0, len(block), 2):
                if len(chosen) < 256:
                    chosen.add(int.from_bytes(block[i:i + 2], "big"))
        values = sorted(chosen)
        forward.append(values)
        inverse.append({int.from_bytes(v.to_bytes(2, "big"), sys.byteorder): b for b, v in enumerate(values)})
    return forward, inverse


class KeyTransform:
    """The keyed, order-preserving, invertible key map (see the module doc)."""

    __slots__ = ("_pairs", "_inverse")

    def __init__(self, seed: bytes) -> None:
        forward, self._inverse = _byte_maps(seed)
        self._pairs = [[v.to_bytes(2, "big") for v in values] for values in forward]

    def encode(self, key: bytes) -> bytes:
        """The stored form of ``key``."""
        pairs = self._pairs
        return b"".join([pairs[i % _RESIDUES][b] for i, b in enumerate(key)])

    def decode(self, stored) -> bytes:
        """The key whose stored form is ``stored``; KeyError if it is none."""
        inverse = self._inverse
        return bytes([inverse[i % _RESIDUES][v] for i, v in enumerate(memoryview(stored).cast("H"))])


class _Crypt:
    """The keys and transforms one engine uses, shared by its transactions."""

    __slots__ = ("aead", "keys", "transform", "space_tags")

    def __init__(self, data_keys: DataKeys) -> None:
        self.aead = AESGCM(data_keys.value)
        self.keys = KeyCodec(data_keys.partition)
        self.transform = KeyTransform(data_keys.order)
        self.space_tags: dict[str, bytes] = {}

    def aad(self, space: str, stored_key: bytes) -> bytes:
        tag = self.space_tags.get(space)
        if tag is None:
            tag = self.space_tags[space] = space.encode() + b"\0"
        return tag + stored_key

    def seal(self, space: str, stored_key: bytes, value: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self.aead.encrypt(nonce, bytes(value), self.aad(space, stored_key))

    def open(self, space: str, stored_key: bytes, sealed) -> bytes:
        sealed = bytes(sealed)
        if sealed[:1] != _VERSION:
            raise IntegrityError(f"a stored value in {space} has an unknown format")
        try:
            return self.aead.decrypt(sealed[1:_HEADER], sealed[_HEADER:], self.aad(space, stored_key))
        except InvalidTag:
            raise IntegrityError(
                f"a stored value in {space} failed authentication: the data directory was altered or damaged"
            ) from None


class EncryptedReadTxn(ReadTxn):
    """A read transaction of the inner engine, seen through the crypt."""

    __slots__ = ("_cm", "_txn", "_crypt", "keys")

    def __init__(self, cm, crypt: _Crypt) -> None:
        self._cm = cm
        self._txn = None
        self._crypt = crypt
        self.keys = crypt.keys

    def __enter__(self):
        self._txn = self._cm.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        return self._cm.__exit__(exc_type, exc, tb)

    def get(self, space: str, key: bytes) -> bytes | None:
        stored_key = self._crypt.transform.encode(key)
        sealed = self._txn.get(space, stored_key)
        return None if sealed is None else self._crypt.open(space, stored_key, sealed)

    def get_many(self, space: str, keys) -> list:
        """``[get(space, key) for key in keys]``, through the inner engine's
        ``get_many`` where it has one (PostgreSQL: one statement)."""
        crypt = self._crypt
        stored = [crypt.transform.encode(key) for key in keys]
        inner = getattr(self._txn, "get_many", None)
        sealed = inner(space, stored) if inner is not None else [self._txn.get(space, key) for key in stored]
        return [None if value is None else crypt.open(space, key, value) for key, value in zip(stored, sealed)]

    def scan(self, space, start=None, stop=None, *, reverse=False) -> Iterator[tuple[bytes, bytes]]:
        crypt = self._crypt
        encode = crypt.transform.encode
        low = encode(start) if start is not None else None
        high = encode(stop) if stop is not None else None
        # The inner scan is made now, so an unknown space fails here, as it
        # does on a plain engine, not at the first iteration.
        return self._opened(space, self._txn.scan(space, low, high, reverse=reverse))

    def _opened(self, space, entries):
        crypt = self._crypt
        decode = crypt.transform.decode
        for stored_key, sealed in entries:
            stored_key = bytes(stored_key)
            yield decode(stored_key), crypt.open(space, stored_key, sealed)


class EncryptedWriteTxn(EncryptedReadTxn, WriteTxn):
    """A write transaction of the inner engine, sealing what it stores."""

    __slots__ = ()

    @property
    def one_writer(self) -> bool:  # as the inner engine runs its writers
        return self._txn.one_writer

    def put(self, space: str, key: bytes, value: bytes) -> None:
        if not key:
            raise ValueError("storage keys must not be empty")
        stored_key = self._crypt.transform.encode(key)
        self._txn.put(space, stored_key, self._crypt.seal(space, stored_key, value))

    def delete(self, space: str, key: bytes) -> bool:
        return self._txn.delete(space, self._crypt.transform.encode(key))


class EncryptedEngine(Engine):
    """Any engine, with every value sealed and every key transformed."""

    def __init__(self, inner: Engine, data_keys: DataKeys) -> None:
        self.inner = inner
        self._crypt = _Crypt(data_keys)
        #: The key codec the API layer uses for partition keys.
        self.keys = self._crypt.keys
        sealed_above = getattr(inner, "sealed_above", None)
        if sealed_above is not None:  # PostgreSQL (see the module docstring)
            sealed_above(self._crypt.transform.encode)

    def read(self, snapshot: bool = True) -> EncryptedReadTxn:
        return EncryptedReadTxn(self.inner.read(snapshot), self._crypt)

    def write(self) -> EncryptedWriteTxn:
        return EncryptedWriteTxn(self.inner.write(), self._crypt)

    @property
    def reads_ahead(self) -> bool:
        return self.inner.reads_ahead

    def read_ahead(self, space: str, keys):
        """The inner engine's read-ahead of the stored keys: what it answers
        is opened by this engine's reads as anything they read."""
        encode = self._crypt.transform.encode
        return self.inner.read_ahead(space, [encode(key) for key in keys])

    def lock_ahead(self, space: str, keys) -> None:
        """The inner engine's locked read-ahead of the stored keys (as
        ``read_ahead``: what it reads is opened by this engine's reads)."""
        encode = self._crypt.transform.encode
        self.inner.lock_ahead(space, [encode(key) for key in keys])

    def flush(self) -> None:
        self.inner.flush()

    def prewarm(self, should_stop=lambda: False) -> int:
        return self.inner.prewarm(should_stop)

    def snapshot(self, path) -> None:
        """The inner engine's copy: still sealed, so it opens only with this
        data directory's keyring (and master key) beside it."""
        self.inner.snapshot(path)

    def group(self, *, flush: bool = True):
        return self.inner.group(flush=flush)

    def close(self) -> None:
        self.inner.close()

    def stats(self) -> dict:
        return {**self.inner.stats(), "encrypted": True}

    def seal_record(self, data: bytes, context: bytes) -> bytes:
        """Seal a record kept outside the engine (an audit-log line) with the
        value key: nonce + AES-GCM ciphertext, bound to ``context``."""
        nonce = os.urandom(12)
        return nonce + self._crypt.aead.encrypt(nonce, data, context)

    def open_record(self, sealed: bytes, context: bytes) -> bytes:
        """The data of ``seal_record``'s output; IntegrityError if altered."""
        try:
            return self._crypt.aead.decrypt(sealed[:12], sealed[12:], context)
        except InvalidTag:
            raise IntegrityError("a sealed record failed its integrity check") from None

    def __repr__(self) -> str:
        return f"EncryptedEngine({self.inner!r})"


def open_encrypted_postgres(dsn: str, master_key: bytes, **options) -> EncryptedEngine:
    """The PostgreSQL store ``dsn`` encrypted at rest under ``master_key``:
    its data keys from the keyring kept in the database (made at the first
    start of an empty store; see ``shoal.storage.keyring.database_keyring``).
    ``options`` go to ``PostgresEngine``.  Raises ``KeyringError`` for a
    wrong key or a plain store, and what ``PostgresEngine`` raises."""
    from shoal.storage.postgres_engine import PostgresEngine, shown_dsn

    inner = PostgresEngine(dsn, encrypted=True, **options)
    try:
        return EncryptedEngine(inner, database_keyring(inner, master_key, shown_dsn(dsn)))
    except BaseException:
        inner.close()
        raise
