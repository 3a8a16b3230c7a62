"""Group commit: shared durable commits, isolated failures."""

from __future__ import annotations

import asyncio

import pytest

from shoal.errors import ValidationException
from shoal.server.committer import GroupCommitter
from shoal.storage.lmdb_engine import LmdbEngine


@pytest.fixture
def engine(tmp_path):
    eng = LmdbEngine(str(tmp_path))
    yield eng
    eng.close()


def put(engine, key: bytes, fail_after_write: bool = False, fail_before_write: bool = False):
    def job():
        with engine.write() as txn:
            if fail_before_write:
                raise ValidationException("refused")
            txn.put("items", key, b"v")
            if fail_after_write:
                raise ValidationException("failed half-way")
        return key
    return job


def run(engine, jobs):
    async def main():
        committer = GroupCommitter(engine)
        futures = [committer.submit(job) for job in jobs]
        return await asyncio.gather(*futures, return_exceptions=True)
    return asyncio.run(main())


def stored(engine):
    with engine.read() as txn:
        return [k for k, _ in txn.scan("items")]


def test_jobs_of_one_turn_share_a_group_and_all_commit(engine):
    results = run(engine, [put(engine, b"a"), put(engine, b"b"), put(engine, b"c")])
    assert results == [b"a", b"b", b"c"]
    assert stored(engine) == [b"a", b"b", b"c"]


def test_a_refused_job_does_not_affect_the_others(engine):
    results = run(engine, [put(engine, b"a"), put(engine, b"b", fail_before_write=True), put(engine, b"c")])
    assert results[0] == b"a" and results[2] == b"c"
    assert isinstance(results[1], ValidationException)
    assert stored(engine) == [b"a", b"c"]


def test_a_job_failing_half_way_is_redone_alone_and_leaves_no_trace(engine):
    results = run(engine, [put(engine, b"a"), put(engine, b"b", fail_after_write=True), put(engine, b"c")])
    assert results[0] == b"a" and results[2] == b"c"
    assert isinstance(results[1], ValidationException)
    assert stored(engine) == [b"a", b"c"]
