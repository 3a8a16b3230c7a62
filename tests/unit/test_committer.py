"""Group commit: shared durable commits, isolated failures."""

from __future__ import annotations

import asyncio

import pytest

from shoal.errors import ValidationException
from shoal.server.committer import GroupCommitter
from shoal.storage.engine import WriteConflict
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


def conflicting(engine, key: bytes, losses: int):
    """A job whose write loses a race ``losses`` times, then goes in: as a
    PostgreSQL store's replay of a deadlocked transaction raises
    WriteConflict once the transaction has written (in a group: the group's
    earlier jobs), aborting all of it."""
    tries = []

    def job():
        tries.append(1)
        with engine.write() as txn:
            txn.put("items", key, b"v")
            if len(tries) <= losses:
                raise WriteConflict("lost a race")
        return len(tries)
    return job


def test_a_job_that_lost_a_race_is_run_again_alone(engine):
    results = run(engine, [put(engine, b"a"), conflicting(engine, b"b", losses=2), put(engine, b"c")])
    assert results == [b"a", 3, b"c"]  # lost in the group, lost alone, then in
    assert stored(engine) == [b"a", b"b", b"c"]


def test_a_job_that_keeps_losing_races_answers_the_conflict(engine):
    results = run(engine, [conflicting(engine, b"b", losses=100)])
    assert isinstance(results[0], WriteConflict)
    assert stored(engine) == []


def commits(engine) -> int:
    return engine.stats()["last_txnid"]


async def _busy(committer, turns: int) -> None:
    """Another request arrives on each of the next ``turns`` turns of the loop."""
    for _ in range(turns):
        committer.arrivals += 1
        await asyncio.sleep(0)


def test_a_write_on_a_quiet_server_is_not_held_back(engine):
    async def main():
        committer = GroupCommitter(engine, gather=16, max_wait_s=30.0)
        before = commits(engine)
        await asyncio.wait_for(committer.submit(put(engine, b"a")), 5)  # not the 30 s of max_wait_s
        return commits(engine) - before
    assert asyncio.run(main()) == 1


def test_while_requests_keep_arriving_writes_gather_into_one_commit(engine):
    async def main():
        committer = GroupCommitter(engine, gather=4, max_wait_s=30.0)
        before = commits(engine)
        futures = [committer.submit(put(engine, b"a"))]
        for key in (b"b", b"c", b"d"):  # each a few busy turns after the last
            await _busy(committer, 3)
            futures.append(committer.submit(put(engine, key)))
        results = await asyncio.wait_for(asyncio.gather(*futures), 5)
        return results, commits(engine) - before
    results, count = asyncio.run(main())
    assert results == [b"a", b"b", b"c", b"d"]
    assert count == 1
    assert stored(engine) == [b"a", b"b", b"c", b"d"]


def test_gathering_stops_when_the_server_goes_quiet(engine):
    async def main():
        committer = GroupCommitter(engine, gather=16, max_wait_s=30.0)
        before = commits(engine)
        first = committer.submit(put(engine, b"a"))
        await _busy(committer, 3)  # then nothing more arrives
        await asyncio.wait_for(first, 5)
        second = committer.submit(put(engine, b"b"))
        await asyncio.wait_for(second, 5)
        return commits(engine) - before
    assert asyncio.run(main()) == 2


def test_the_wait_for_more_writes_is_bounded(engine):
    async def main():
        committer = GroupCommitter(engine, gather=16, max_wait_s=0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        future = committer.submit(put(engine, b"a"))
        busy = loop.create_task(_busy(committer, 10**9))  # never quiet
        try:
            await asyncio.wait_for(future, 5)
        finally:
            busy.cancel()
        return loop.time() - started
    assert asyncio.run(main()) < 5
    assert stored(engine) == [b"a"]


def test_no_wait_commits_on_every_turn(engine):
    async def main():
        committer = GroupCommitter(engine, gather=16, max_wait_s=0)
        before = commits(engine)
        first = committer.submit(put(engine, b"a"))
        await _busy(committer, 3)
        second = committer.submit(put(engine, b"b"))
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        return commits(engine) - before
    assert asyncio.run(main()) == 2
