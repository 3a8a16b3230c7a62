"""Fixtures shared by the unit tests that drive operations over a storage engine."""

from __future__ import annotations

import time

import pytest

from shoal.storage.lmdb_engine import LmdbEngine
from shoal.storage.memory_engine import MemoryEngine
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "lmdb_only: a test of what only LMDB has (files, reopening, processes, fork, kill -9, "
        "its internals); the engine suite runs it on LMDB and not on the in-memory engine",
    )


@pytest.fixture
def engine():
    """A fresh in-memory engine: the API's unit tests need an engine, not LMDB
    (the conformance suite holds the two to the same rules)."""
    eng = MemoryEngine()
    yield eng
    eng.close()


@pytest.fixture
def lmdb_engine(tmp_path):
    """A fresh LMDB engine (no fsync: these tests do not crash the machine),
    for tests of what LMDB does differently: files, processes, fork."""
    eng = LmdbEngine(tmp_path / "db", sync=False)
    yield eng
    eng.close()


class Clock:
    """``time.time()`` moved by ``offset`` seconds, for tests of expiry."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock():
    return Clock()
