"""Fixtures shared by the unit tests that drive operations over a real LMDB engine."""

from __future__ import annotations

import time

import pytest

from shoal.storage.lmdb_engine import LmdbEngine


@pytest.fixture
def engine(tmp_path):
    """A fresh LMDB engine (no fsync: these tests do not crash the machine)."""
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
