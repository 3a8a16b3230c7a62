"""shoal.api.jobs.Lease: one holder at a time among the workers of a store."""

from __future__ import annotations

from shoal.api.jobs import Lease
from shoal.storage.memory_engine import MemoryEngine


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_holder_at_a_time_renewed_in_its_second_half_and_taken_over_when_it_expires_or_is_released():
    engine, clock = MemoryEngine(), Clock()
    first, second = Lease(engine, b"x/lease", 10.0, clock), Lease(engine, b"x/lease", 10.0, clock)
    assert first.hold() and not second.hold()
    with engine.read() as txn:
        stored = txn.get("meta", b"x/lease")
    clock.now += 4  # first half of the term: held without a write
    assert first.hold() and not second.hold()
    with engine.read() as txn:
        assert txn.get("meta", b"x/lease") == stored
    clock.now += 2  # second half: renewed
    assert first.hold()
    with engine.read() as txn:
        assert txn.get("meta", b"x/lease") != stored
    clock.now += 9.9  # renewed at 1006 for 10 s: still the first's
    assert not second.hold()
    clock.now += 0.2  # expired (the first stopped renewing): the second takes it
    assert second.hold() and not first.hold()
    second.release()
    assert first.hold()
    second.release()  # not its lease: nothing happens
    assert not second.hold()
