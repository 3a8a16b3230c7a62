"""The storage engine conformance suite, run against ``EncryptedEngine``
wrapping LMDB: the wrapper must be indistinguishable from a plain engine."""

from __future__ import annotations

import os

import pytest

from shoal.storage.encrypted import EncryptedEngine
from shoal.storage.keyring import DataKeys
from shoal.storage.lmdb_engine import LmdbEngine
from tests.unit.test_storage_engine import *  # noqa: F401,F403 (the conformance tests)
from tests.unit import test_storage_engine as _suite

_KEYS = DataKeys(b"v" * 32, b"p" * 32, b"o" * 32)


def open_encrypted(path, *, sync: bool = True):
    return EncryptedEngine(LmdbEngine(os.path.join(path, "lmdb"), sync=sync), _KEYS)


@pytest.fixture
def opener():
    return open_encrypted


# The suite's own LMDB-only test inspects LMDB internals; it runs in its module.
del test_long_keys_leave_no_residue_after_delete  # noqa: F821
assert _suite.ENGINES
