"""The MRSC consensus core (shoal.consensus): three acceptors over three real
LMDB engines, proposers in front of them, and in-process networks that lose,
delay, duplicate and reorder messages and take regions down.

Two kinds of drivers: the blocking ``Proposer`` over ``Link`` objects (threads,
timeouts), and ``Simulation``, which hands ``Round`` messages to acceptors one
at a time in an order a scheduler picks (Hypothesis, or a seeded random), so
that any interleaving of several proposers, lost and duplicated messages and
crashes can be produced and replayed.  The histories both record are checked
by tests/linearizability.py.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.consensus import (
    CONFLICT_MESSAGE,
    ZERO,
    Acceptor,
    Ballot,
    Ballots,
    Message,
    Proposer,
    Reply,
    Round,
    Unavailable,
    WriteConflict,
    identity,
)
from shoal.consensus import transport
from shoal.consensus.acceptor import PREFIX, State, decode_state, encode_state
from shoal.storage.lmdb_engine import LmdbEngine
from tests.linearizability import CAS, FAIL, INFO, OK, READ, WRITE, Operation, check

KEY = b"table-1/item-7"
NAMES = ("us-east-1", "us-east-2", "us-west-2")


class RegionDown(Exception):
    """What a link raises for a region that does not answer."""


class Region:
    """One region's acceptor over its own LMDB engine, which can be closed
    (the region is down) and reopened (it restarts from its files)."""

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name
        self.engine = None
        self.acceptor = None
        self.start()

    @property
    def up(self) -> bool:
        return self.engine is not None

    def start(self) -> None:
        self.engine = LmdbEngine(self.path, sync=False)
        self.acceptor = Acceptor(self.engine)

    def crash(self) -> None:
        self.engine.close()
        self.engine = self.acceptor = None

    def restart(self) -> None:
        if self.up:
            self.crash()
        self.start()

    def state(self, key: bytes = KEY) -> State:
        return self.acceptor.state(key)


@pytest.fixture
def regions(tmp_path):
    made = [Region(str(tmp_path / name), name) for name in NAMES]
    yield made
    for region in made:
        if region.up:
            region.crash()


class Link:
    """The network between one proposer and one region.

    ``down``: every message fails at once (connection refused).  ``drop``:
    the probability that a message is lost (the request before it arrives,
    or the reply after it was handled: the sender cannot tell which), which
    the sender sees as a failure after ``lost_after`` seconds.  ``delay``:
    an upper bound on a random delay before delivery.  ``duplicate``: the
    probability that a request is delivered twice.
    """

    def __init__(self, region: Region, rng: random.Random | None = None, *, drop=0.0, delay=0.0,
                 duplicate=0.0, lost_after=0.0) -> None:
        self.region = region
        self.rng = rng or random.Random(0)
        self.lock = threading.Lock()
        self.drop, self.delay, self.duplicate, self.lost_after = drop, delay, duplicate, lost_after
        self.down = False
        self.sent = 0

    def _roll(self) -> tuple[float, float, float]:
        with self.lock:
            return self.rng.random(), self.rng.random(), self.rng.random()

    def _send(self, handle):
        self.sent += 1
        if self.down or not self.region.up:
            raise RegionDown(self.region.name)
        lose, wait, twice = self._roll()
        if self.delay:
            time.sleep(wait * self.delay)
        if lose < self.drop / 2:  # the request is lost
            time.sleep(self.lost_after)
            raise RegionDown(self.region.name)
        reply = handle(self.region.acceptor)
        if twice < self.duplicate:
            handle(self.region.acceptor)
        if lose < self.drop:  # the reply is lost
            time.sleep(self.lost_after)
            raise RegionDown(self.region.name)
        return reply

    def prepare(self, key, ballot):
        return self._send(lambda acceptor: acceptor.prepare(key, ballot))

    def accept(self, key, ballot, value):
        return self._send(lambda acceptor: acceptor.accept(key, ballot, value))

    def peek(self, key):
        return self._send(lambda acceptor: acceptor.peek(key))


def proposer(regions, name="us-east-1", *, node="n1", timeout=2.0, links=None, **kwargs) -> Proposer:
    links = links or [Link(region) for region in regions]
    return Proposer(name, {link.region.name: link for link in links}, node=node, timeout=timeout, **kwargs)


def settled(regions, key: bytes = KEY) -> list[State]:
    """The regions' states once the last accepts still on their way (a write
    returns on a majority; the third region's accept may trail) have landed."""
    deadline = time.monotonic() + 2.0
    while True:
        states = [region.state(key) for region in regions]
        if len({(s.accepted, s.value) for s in states}) == 1 or time.monotonic() > deadline:
            return states
        time.sleep(0.005)


def put(value: bytes):
    return lambda current: value


class ConditionFailed(Exception):
    """A change's own refusal, as ConditionalCheckFailed would be."""


def compare_and_set(expected, new):
    def change(current):
        if current != expected:
            raise ConditionFailed(current)
        return new
    return change


# -- the acceptor --------------------------------------------------------------------------------


def test_acceptor_promises_only_rising_ballots(regions):
    acceptor = regions[0].acceptor
    assert acceptor.prepare(KEY, Ballot(2, "a")) == Reply(True, Ballot(2, "a"), ZERO, None)
    # The same ballot again (a duplicated message) is granted again.
    assert acceptor.prepare(KEY, Ballot(2, "a")) == Reply(True, Ballot(2, "a"), ZERO, None)
    # A lower one is refused, with what the acceptor has promised.
    assert acceptor.prepare(KEY, Ballot(1, "z")) == Reply(False, Ballot(2, "a"), ZERO, None)
    assert acceptor.accept(KEY, Ballot(1, "z"), b"old") == Reply(False, Ballot(2, "a"), ZERO, None)
    assert acceptor.accept(KEY, Ballot(2, "a"), b"v") == Reply(True, Ballot(2, "a"), Ballot(2, "a"), b"v")
    # Equal counters: the proposer id decides.
    assert acceptor.prepare(KEY, Ballot(2, "b")) == Reply(True, Ballot(2, "b"), Ballot(2, "a"), b"v")
    assert acceptor.accept(KEY, Ballot(2, "a"), b"late") == Reply(False, Ballot(2, "b"), Ballot(2, "a"), b"v")
    # An accept above the promise is taken without a prepare at this acceptor.
    assert acceptor.accept(KEY, Ballot(3, "c"), None) == Reply(True, Ballot(3, "c"), Ballot(3, "c"), None)
    assert acceptor.state(KEY) == State(Ballot(3, "c"), Ballot(3, "c"), None)
    # Other keys are registers of their own.
    assert acceptor.state(b"other") == State(ZERO, ZERO, None)


def test_acceptor_state_survives_a_restart(regions):
    region = regions[0]
    region.acceptor.prepare(KEY, Ballot(7, "a"))
    region.acceptor.accept(b"k2", Ballot(3, "b"), b"\x00value\xff")
    region.restart()
    assert region.acceptor.prepare(KEY, Ballot(6, "z")) == Reply(False, Ballot(7, "a"), ZERO, None)
    assert region.state(b"k2") == State(Ballot(3, "b"), Ballot(3, "b"), b"\x00value\xff")
    with region.engine.read() as txn:
        assert sorted(k for k, _ in txn.scan("meta", PREFIX, PREFIX + b"\xff")) == [PREFIX + b"k2", PREFIX + KEY]


def test_state_encoding_round_trips():
    for state in (State(ZERO, ZERO, None), State(Ballot(1, "r/é"), ZERO, None),
                  State(Ballot(9, "b"), Ballot(8, "a"), b""), State(Ballot(2**63, "x"), Ballot(2**63, "x"), b"\x00" * 500)):
        assert decode_state(encode_state(state)) == state
    # An empty value and an absent one are different things.
    assert encode_state(State(ZERO, ZERO, b"")) != encode_state(State(ZERO, ZERO, None))


# -- one proposer ----------------------------------------------------------------------------------


def test_single_proposer_writes_and_reads(regions):
    p = proposer(regions)
    try:
        assert p.read(KEY) is None
        assert p.write(KEY, put(b"one")) == b"one"
        assert p.read(KEY) == b"one"
        seen = []
        assert p.write(KEY, lambda current: seen.append(current) or current + b"+two") == b"one+two"
        assert seen == [b"one"]
        assert p.write(KEY, lambda current: None) is None  # a delete
        assert p.read(KEY) is None
        assert p.write(KEY, put(b"three")) == b"three"
        assert p.read(b"another key") is None
        # Every region holds the value under the same ballot.
        states = settled(regions)
        assert {s.value for s in states} == {b"three"}
        assert len({s.accepted for s in states}) == 1
        assert states[0].accepted.proposer == "us-east-1/n1"
    finally:
        p.close()


def test_acceptors_given_as_a_sequence_are_named_by_position(regions):
    p = Proposer("us-east-1", [region.acceptor for region in regions], node="seq")
    try:
        assert sorted(p.acceptors) == ["0", "1", "2"]
        assert p.write(KEY, put(b"x")) == b"x"
        assert p.read(KEY) == b"x"
        assert p.ballots.proposer == "us-east-1/seq"
    finally:
        p.close()
    # Without a node, each proposer draws its own token.
    a, b = (Proposer("us-east-1", [r.acceptor for r in regions]) for _ in range(2))
    assert a.ballots.proposer != b.ballots.proposer and a.ballots.proposer.startswith("us-east-1/")
    a.close()
    b.close()


def test_a_failed_condition_changes_nothing(regions):
    p = proposer(regions)
    try:
        p.write(KEY, put(b"v1"))
        settled(regions)
        with pytest.raises(ConditionFailed) as failed:
            p.write(KEY, compare_and_set(b"v0", b"v2"))
        assert failed.value.args == (b"v1",)  # the change saw the current value
        assert [s.value for s in settled(regions)] == [b"v1"] * 3
        assert p.write(KEY, compare_and_set(b"v1", b"v2")) == b"v2"
    finally:
        p.close()


def test_a_failed_condition_makes_the_state_it_judged_stay(regions):
    """A condition judged against a value only a minority accepted must not
    be answered until that value is written back: otherwise a later round
    that misses the minority supersedes it, and the refusal was judged
    against a value that never was."""
    links = [Link(region) for region in regions]
    p = proposer(regions, links=links)
    try:
        partial = Round(Ballots("us-east-2/n"), NAMES, KEY, put(b"minority"))
        _drive(partial, regions, lambda m: m.kind == "prepare" or m.acceptor == "us-east-1")
        assert partial.error.maybe_applied is True
        links[2].down = True  # the conditional write hears from us-east-1 and us-east-2
        with pytest.raises(WriteConflict):  # us-east-2 still holds the abandoned round's promise
            p.write(KEY, compare_and_set(None, b"mine"))
        with pytest.raises(ConditionFailed) as failed:  # the client's retry
            p.write(KEY, compare_and_set(None, b"mine"))
        assert failed.value.args == (b"minority",)
        # Now a read that misses us-east-1 still sees what the condition saw.
        links[2].down = False
        links[0].down = True
        assert p.read(KEY) == b"minority"
    finally:
        p.close()


def test_a_failed_condition_whose_write_back_fails_is_not_answered_as_a_refusal(regions):
    links = [Link(region) for region in regions]
    p = proposer(regions, links=links)
    try:
        p.write(KEY, put(b"v1"))
        settled(regions)
        # us-east-1 alone accepted a later value (a round that reached it only).
        regions[0].acceptor.accept(KEY, Ballot(9, "us-east-2/n"), b"v9")
        ballots = Ballots("us-west-2/n")
        ballots.observe(Ballot(10, ""))
        round_ = Round(ballots, NAMES, KEY, compare_and_set(b"v0", b"v2"))
        # It judges v9 (not chosen) and its write-back reaches us-east-1 only.
        _drive(round_, regions, lambda m: m.kind == "prepare" or m.acceptor == "us-east-1")
        assert isinstance(round_.error, Unavailable)
        assert round_.error.maybe_applied is False  # its change never applies
        # It left promises in flight: one conflict, then the refusal, written
        # back.  (us-west-2 is away so that the answer hears us-east-1: the
        # other two alone agree on v1, still chosen, as v9 was never seen.)
        links[2].down = True
        with pytest.raises(WriteConflict):
            p.write(KEY, compare_and_set(b"v0", b"v2"))
        with pytest.raises(ConditionFailed) as failed:
            p.write(KEY, compare_and_set(b"v0", b"v2"))
        assert failed.value.args == (b"v9",)
        links[2].down = False
        assert p.read(KEY) == b"v9"
    finally:
        p.close()


def test_a_new_proposer_with_a_stale_counter_is_not_a_conflict(regions):
    """A proposer that (re)starts from counter zero meets ballots of rounds
    that have finished: it starts again above them, it does not fail."""
    first = proposer(regions, node="first")
    for i in range(5):
        first.write(KEY, put(b"%d" % i))
    settled(regions)  # the last round's trailing accept landed: no round is left in flight (that would be a conflict)
    first.close()
    late = proposer(regions, "us-west-2", node="late")
    try:
        assert late.write(KEY, lambda current: current + b"!") == b"4!"
        assert late.ballots.next().counter > 6
    finally:
        late.close()


# -- failures --------------------------------------------------------------------------------------


def test_one_region_down_writes_and_reads_go_on(regions):
    links = [Link(region) for region in regions]
    p = proposer(regions, links=links)
    try:
        p.write(KEY, put(b"before"))
        settled(regions)
        links[2].down = True
        assert p.write(KEY, put(b"during")) == b"during"
        assert p.read(KEY) == b"during"
        assert regions[2].state().value == b"before"
        # The region comes back; the next write reaches it again.
        links[2].down = False
        settled(regions[:2])
        links[0].down = True
        assert p.read(KEY) == b"during"
        assert regions[2].state().value == b"during"
    finally:
        p.close()


def test_two_regions_down_writes_fail_and_nothing_is_acknowledged(regions):
    links = [Link(region) for region in regions]
    p = proposer(regions, links=links)
    try:
        p.write(KEY, put(b"kept"))
        settled(regions)
        links[1].down = links[2].down = True
        with pytest.raises(Unavailable) as failed:
            p.write(KEY, put(b"lost"))
        assert str(failed.value) == "2 of 3 regions did not answer; a majority (2) is needed"
        assert failed.value.maybe_applied is False
        with pytest.raises(Unavailable):
            p.read(KEY)
        # The region that answered promised, but accepted nothing new.
        assert regions[0].state().value == b"kept"
        links[1].down = links[2].down = False
        assert p.read(KEY) == b"kept"
        assert p.write(KEY, put(b"after")) == b"after"  # and service resumes
    finally:
        p.close()


def test_a_region_that_crashes_and_restarts_keeps_what_it_accepted(regions):
    p = proposer(regions)
    try:
        p.write(KEY, put(b"v1"))
        settled(regions)
        for region in regions:
            region.restart()
        assert p.read(KEY) == b"v1"
        regions[0].crash()
        assert p.write(KEY, put(b"v2")) == b"v2"
        regions[1].crash()
        regions[0].start()
        # us-east-1 missed v2, but us-west-2 has it with the higher ballot.
        assert p.read(KEY) == b"v2"
        assert regions[0].state().value == b"v2"
    finally:
        p.close()


def test_silent_regions_time_out(regions):
    links = [Link(region, delay=0.0) for region in regions]
    for link in links[1:]:
        link.drop, link.lost_after = 1.0, 1.0  # every message vanishes: nobody answers
    p = proposer(regions, links=links, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable) as failed:
            p.write(KEY, put(b"x"))
        assert time.monotonic() - started < 1.0
        assert failed.value.maybe_applied is False
        assert str(failed.value) == "2 of 3 regions did not answer; a majority (2) is needed"
    finally:
        p.close()


def _drive(round_: Round, regions, deliver=lambda message: True) -> list[Message]:
    """Hand a round's messages to the regions that ``deliver`` lets through
    (the others are lost) until it needs nothing more; returns the lost ones."""
    lost = []
    queue_ = round_.start()
    by_name = {region.name: region for region in regions}
    while queue_:
        message = queue_.pop(0)
        if not deliver(message):
            lost.append(message)
            queue_ += round_.on_lost(message)
            continue
        acceptor = by_name[message.acceptor].acceptor
        if message.kind == "prepare":
            reply = acceptor.prepare(message.key, message.ballot)
        elif message.kind == "peek":
            reply = acceptor.peek(message.key)
        else:
            reply = acceptor.accept(message.key, message.ballot, message.value)
        queue_ += round_.on_reply(message, reply)
    return lost


def test_a_witness_carries_a_write_across_the_loss_of_the_region_that_made_it(tmp_path):
    """Two replicas and a witness: the witness is an acceptor that no client
    uses.  A write acknowledged by us-east-2 and the witness while us-east-1
    was away must be what us-east-1 reads once us-east-2 is gone: the
    witness alone brings it, so it must hold values, not just ballots."""
    made = [Region(str(tmp_path / name), name) for name in ("us-east-1", "us-east-2", "us-west-2")]
    try:
        east1, east2 = [[Link(region) for region in made] for _ in range(2)]
        p1 = Proposer("us-east-1", {link.region.name: link for link in east1}, node="a", timeout=2.0)
        p2 = Proposer("us-east-2", {link.region.name: link for link in east2}, node="b", timeout=2.0)
        p1.write(KEY, put(b"v1"))
        settled(made)
        east2[0].down = True  # us-east-1 unreachable from us-east-2
        assert p2.write(KEY, put(b"v2")) == b"v2"
        assert [r.state().value for r in made] == [b"v1", b"v2", b"v2"]
        east1[1].down = True  # now us-east-2 is gone
        assert p1.read(KEY) == b"v2"
        assert p1.write(KEY, lambda current: current + b"+") == b"v2+"
        assert made[2].state().value == b"v2+"  # the witness holds every value
        p1.close()
        p2.close()
    finally:
        for region in made:
            region.crash()


def test_a_value_accepted_by_a_minority_is_completed_by_the_next_read(regions):
    links = [Link(region) for region in regions]
    p = proposer(regions, links=links)
    try:
        p.write(KEY, put(b"old"))
        settled(regions)
        # A round whose accepts reach us-east-1 only: its proposer gives up, unsure.
        partial = Round(Ballots("us-east-2/n"), NAMES, KEY, put(b"new"))
        _drive(partial, regions, lambda m: m.kind == "prepare" or m.acceptor == "us-east-1")
        assert isinstance(partial.error, Unavailable) and partial.error.maybe_applied is True
        assert [r.state().value for r in regions] == [b"new", b"old", b"old"]
        # A read that hears from us-east-1 (us-west-2 is away) finishes the write.
        links[2].down = True
        assert p.read(KEY) == b"new"
        assert [r.state().value for r in regions] == [b"new", b"new", b"old"]
        links[2].down = False
        # Chosen now: a read that hears the two ends after the prepare; the
        # third region catches up with the next write.
        assert p.read(KEY) == b"new"
        assert p.write(KEY, lambda current: current + b"!") == b"new!"
        assert [s.value for s in settled(regions)] == [b"new!"] * 3
    finally:
        p.close()


def test_a_value_accepted_by_a_minority_is_superseded_by_a_write_that_misses_it(regions):
    links = [Link(region) for region in regions]
    p = proposer(regions, links=links)
    try:
        p.write(KEY, put(b"old"))
        settled(regions)
        partial = Round(Ballots("us-east-2/n"), NAMES, KEY, put(b"new"))
        _drive(partial, regions, lambda m: m.kind == "prepare" or m.acceptor == "us-east-1")
        links[0].down = True
        # The two others agree on "old" (chosen): the read ends after its prepare.
        assert p.read(KEY) == b"old"
        assert p.write(KEY, put(b"newer")) == b"newer"  # above the abandoned round's ballot
        links[0].down = False
        assert p.read(KEY) == b"newer"  # "new" can never come back
        assert p.write(KEY, lambda current: current + b"!") == b"newer!"
        assert [s.value for s in settled(regions)] == [b"newer!"] * 3
    finally:
        p.close()


def test_a_read_of_a_chosen_value_is_one_round_trip(regions):
    links = [Link(region) for region in regions]
    p = proposer(regions, links=links)
    try:
        p.write(KEY, put(b"v"))
        settled(regions)
        before = [link.sent for link in links]
        states = [r.state() for r in regions]
        assert p.read(KEY) == b"v"
        deadline = time.monotonic() + 2.0  # the third prepare may still be on its way out
        while sum(links[i].sent - before[i] for i in range(3)) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.02)
        assert [link.sent - b for link, b in zip(links, before)] == [1, 1, 1]  # prepares only
        assert [(s.accepted, s.value) for s in (r.state() for r in regions)] == [(s.accepted, s.value) for s in states]
    finally:
        p.close()


def test_two_proposers_racing_one_wins_the_other_gets_the_conflict(regions):
    east = Round(Ballots("us-east-1/n"), NAMES, KEY, put(b"east"))
    west = Round(Ballots("us-west-2/n"), NAMES, KEY, put(b"west"))
    by_name = {region.name: region.acceptor for region in regions}

    def deliver(round_, message):
        acceptor = by_name[message.acceptor]
        if message.kind == "prepare":
            return round_.on_reply(message, acceptor.prepare(message.key, message.ballot))
        return round_.on_reply(message, acceptor.accept(message.key, message.ballot, message.value))

    east_prepares = east.start()
    accepts = []
    for message in east_prepares:
        accepts += deliver(east, message)
    assert [m.kind for m in accepts] == ["accept"] * 3 and east.ballot == Ballot(1, "us-east-1/n")
    # West prepares with the same counter and a greater id, before east's accepts land.
    west_messages = west.start()
    assert west.ballot == Ballot(1, "us-west-2/n")
    west_accepts = []
    for message in west_messages:
        west_accepts += deliver(west, message)
    for message in accepts:
        deliver(east, message)
    assert isinstance(east.error, WriteConflict)
    assert str(east.error) == CONFLICT_MESSAGE
    assert east.error.maybe_applied is False  # every accept was refused: certainly not applied
    for message in west_accepts:
        deliver(west, message)
    assert west.error is None and west.result == b"west"
    assert {region.state().value for region in regions} == {b"west"}


def test_a_round_in_flight_elsewhere_is_a_conflict_once(regions):
    """An acceptor that promised a ballot it never saw accepted says a round
    is in flight (or its proposer died): the write is refused once as a
    conflict, and the retry, with a higher ballot, goes through."""
    stalled = Round(Ballots("us-west-2/n"), NAMES, KEY, put(b"never"))
    stalled.ballots.next(Ballot(10, ""))  # it numbers its ballots above what this proposer will use
    _drive(stalled, regions, lambda m: m.kind == "prepare")  # prepares everywhere, then dies
    p = proposer(regions)
    try:
        with pytest.raises(WriteConflict) as conflict:
            p.write(KEY, put(b"mine"))
        assert str(conflict.value) == CONFLICT_MESSAGE
        assert conflict.value.maybe_applied is False
        assert {r.state().value for r in regions} == {None}
        assert p.write(KEY, put(b"mine")) == b"mine"
    finally:
        p.close()


def test_duplicated_and_late_messages_change_nothing(regions):
    round_ = Round(Ballots("us-east-1/n"), NAMES, KEY, put(b"v"))
    sent = []

    def deliver(message):
        sent.append(message)
        return True

    _drive(round_, regions, deliver)
    assert round_.result == b"v"
    states = [r.state() for r in regions]
    acceptors = {r.name: r.acceptor for r in regions}
    for message in sent:  # every message again, after the round ended
        acceptor = acceptors[message.acceptor]
        if message.kind == "prepare":
            reply = acceptor.prepare(message.key, message.ballot)
        else:
            reply = acceptor.accept(message.key, message.ballot, message.value)
        assert reply.granted
        assert round_.on_reply(message, reply) == []
    assert [r.state() for r in regions] == states


def test_racing_increments_are_never_both_acknowledged(regions):
    """Three proposers, one per region, increment one counter concurrently
    over lossy links: every acknowledged increment read a distinct value, and
    the final value counts every acknowledged one (plus unsure ones only)."""
    rng = random.Random(5)
    proposers = []
    for i, name in enumerate(NAMES):
        links = [Link(region, random.Random(rng.random()), drop=0.05, delay=0.002) for region in regions]
        proposers.append(proposer(regions, name, node=f"n{i}", links=links, timeout=1.0))
    acknowledged, unsure, conflicts = [], [], []
    lock = threading.Lock()

    def worker(p):
        for _ in range(25):
            seen = []

            def increment(current):
                n = int(current or b"0")
                seen.append(n)
                return b"%d" % (n + 1)
            try:
                p.write(KEY, increment)
                with lock:
                    acknowledged.append(seen[-1])
            except WriteConflict as exc:
                with lock:
                    conflicts.append(exc)
                    if exc.maybe_applied:
                        unsure.append(1)
            except Unavailable as exc:
                if exc.maybe_applied:
                    with lock:
                        unsure.append(1)

    threads = [threading.Thread(target=worker, args=(p,)) for p in proposers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = int(proposers[0].read(KEY) or b"0")
    for p in proposers:
        p.close()
    assert len(acknowledged) == len(set(acknowledged)), "two acknowledged writes read the same state"
    assert len(acknowledged) <= final <= len(acknowledged) + len(unsure)
    assert acknowledged  # the race let some through


# -- the transport's encoding ----------------------------------------------------------------------


def test_transport_round_trips_and_serves(regions):
    message = Message("", "accept", b"\x00k", Ballot(3, "eu-west-1/n"), b"\xffv")
    body = transport.encode_request(message)
    assert body == {"Kind": "accept", "Key": "AGs=", "Ballot": [3, "eu-west-1/n"], "Value": "/3Y="}
    assert transport.decode_request(body) == message
    answer = transport.handle(regions[0].acceptor, body)
    assert answer == {"Granted": True, "Promised": [3, "eu-west-1/n"], "Accepted": [3, "eu-west-1/n"], "Value": "/3Y="}
    assert transport.decode_reply(answer) == Reply(True, Ballot(3, "eu-west-1/n"), Ballot(3, "eu-west-1/n"), b"\xffv")
    prepare = transport.encode_request(Message("", "prepare", b"\x00k", Ballot(2, "x")))
    assert transport.decode_reply(transport.handle(regions[0].acceptor, prepare)) == Reply(
        False, Ballot(3, "eu-west-1/n"), Ballot(3, "eu-west-1/n"), b"\xffv")


@pytest.mark.parametrize("body", [
    {}, {"Kind": "commit", "Key": "AA==", "Ballot": [1, "a"]}, {"Kind": "prepare", "Key": "not base64!", "Ballot": [1, "a"]},
    {"Kind": "prepare", "Key": "AA==", "Ballot": [-1, "a"]}, {"Kind": "prepare", "Key": "AA==", "Ballot": [True, "a"]},
    {"Kind": "prepare", "Key": "AA==", "Ballot": "1a"}, {"Kind": "accept", "Key": "AA==", "Ballot": [1, 2]},
])
def test_transport_refuses_what_is_not_a_request(regions, body):
    with pytest.raises(ValueError, match="not a consensus request"):
        transport.handle(regions[0].acceptor, body)
    assert regions[0].state(b"\x00") == State(ZERO, ZERO, None)


def test_transport_refuses_what_is_not_a_reply():
    with pytest.raises(ValueError, match="not a consensus reply"):
        transport.decode_reply({"Granted": True, "Promised": [1, "a"]})


# -- random schedules, checked for linearizability -------------------------------------------------


class Simulation:
    """Clients on proposers in three regions, with every message of every
    round in flight until a scheduler picks what happens next: a delivery, a
    loss, a duplicate, a timeout, a crash or a restart.  Time is the step
    count.  Each client has one operation at a time, as a Jepsen process."""

    CLIENTS = 3
    PATIENCE = 30  # steps before a client may time out

    def __init__(self, directory: str, choose, *, majority: int | None = None, round_class=Round,
                 settle: bool = False) -> None:
        self.choose = choose
        self.settling = settle  # rounds that peek first and always write a refusal back
        # To break the protocol on purpose (the checker must notice):
        self.majority = majority
        self.round_class = round_class
        self.regions = {name: Region(os.path.join(directory, name), name) for name in NAMES}
        self.ballots = [Ballots(f"{NAMES[i % 3]}/c{i}") for i in range(self.CLIENTS)]
        self.flight: list[tuple[int, str, Message, Reply | None]] = []  # (client, "request"|"reply", ...)
        self.rounds: dict[int, tuple[Round, str, object, int]] = {}
        self.history: list[Operation] = []
        self.now = 0
        self.written = 0

    def close(self) -> None:
        for region in self.regions.values():
            if region.up:
                region.crash()

    def pick(self, items):
        return items[self.choose(len(items))]

    # -- the actions -------------------------------------------------------------------

    def invoke(self, client: int) -> None:
        kind = self.pick([WRITE, WRITE, READ, READ, CAS])
        if kind == WRITE:
            self.written += 1
            value = f"v{self.written}"
            change = put(value.encode())
        elif kind == READ:
            value, change = None, identity
        else:
            expected = self.pick([None] + [f"v{i}" for i in range(1, self.written + 1)])
            self.written += 1
            value = (expected, f"v{self.written}")
            change = compare_and_set(None if expected is None else expected.encode(), value[1].encode())
        round_ = self.round_class(self.ballots[client], NAMES, KEY, change, settle=self.settling)
        if self.majority is not None:
            round_.majority = self.majority
        self.rounds[client] = (round_, kind, value, self.now)
        self.send(client, round_.start())

    def send(self, client: int, messages: list[Message]) -> None:
        self.flight += [(client, "request", m, None) for m in messages]
        self.settle(client)

    def settle(self, client: int) -> None:
        """Record the client's operation if its round has ended."""
        if client not in self.rounds or not self.rounds[client][0].done:
            return
        round_, kind, value, call = self.rounds.pop(client)
        error = round_.error
        if error is None:
            result = None if round_.result is None else round_.result.decode()
            if kind == READ:
                self.history.append(Operation(READ, None, result, call, self.now, OK, client))
            else:
                self.history.append(Operation(kind, value, True if kind == CAS else None, call, self.now, OK, client))
        elif isinstance(error, ConditionFailed):
            self.history.append(Operation(CAS, value, False, call, self.now, OK, client))
        else:
            status = INFO if error.maybe_applied else FAIL
            self.history.append(Operation(kind, value, None, call, self.now, status, client))

    def deliver(self, index: int) -> None:
        client, what, message, reply = self.flight.pop(index)
        if client not in self.rounds:
            round_ = None  # its round has ended: a reply goes nowhere, a request still lands
        else:
            round_ = self.rounds[client][0]
        if what == "request":
            region = self.regions[message.acceptor]
            if not region.up:
                if round_ is not None:  # connection refused: the proposer knows at once
                    self.send(client, round_.on_lost(message))
                return
            if message.kind == "prepare":
                answer = region.acceptor.prepare(message.key, message.ballot)
            elif message.kind == "peek":
                answer = region.acceptor.peek(message.key)
            else:
                answer = region.acceptor.accept(message.key, message.ballot, message.value)
            self.flight.append((client, "reply", message, answer))
        elif round_ is not None:
            self.send(client, round_.on_reply(message, reply))

    def step(self) -> None:
        self.now += 1
        idle = [c for c in range(self.CLIENTS) if c not in self.rounds]
        actions = ["deliver"] * 16 + ["lose", "duplicate", "timeout", "timeout", "crash"] + ["restart"] * 3
        if idle:
            actions += ["invoke"] * 3
        action = self.pick(actions)
        if action == "invoke":
            self.invoke(self.pick(idle))
        elif action == "deliver" and self.flight:
            # Mostly in order, but any of the oldest few may overtake the others.
            self.deliver(self.choose(min(len(self.flight), 4)))
        elif action == "lose" and self.flight:
            self.flight.pop(self.choose(len(self.flight)))
        elif action == "duplicate" and self.flight:
            self.flight.append(self.flight[self.choose(len(self.flight))])
        elif action == "timeout":
            # A client gives up on a round that has run for a while.
            old = [c for c, (_, _, _, call) in sorted(self.rounds.items()) if self.now - call > self.PATIENCE]
            if old:
                client = self.pick(old)
                self.rounds[client][0].expire()
                self.settle(client)
        elif action == "crash":
            up = [r for r in self.regions.values() if r.up]
            if len(up) > 1:
                self.pick(up).crash()
        elif action == "restart":
            down = [r for r in self.regions.values() if not r.up]
            if down:
                self.pick(down).start()

    def finish(self) -> str | None:
        """Time out what is left, bring every region back, and read once more
        with every message delivered: that read must succeed."""
        for client in sorted(self.rounds):
            self.now += 1
            self.rounds[client][0].expire()
            self.settle(client)
        while self.flight:  # late requests still land; their replies go nowhere
            self.deliver(0)
        for region in self.regions.values():
            if not region.up:
                region.start()
        self.now += 1
        final = Round(Ballots("reader/final"), NAMES, KEY, identity, max_restarts=5, retry_conflicts=True)
        _drive(final, list(self.regions.values()))
        assert final.error is None, final.error
        self.now += 1
        result = None if final.result is None else final.result.decode()
        self.history.append(Operation(READ, None, result, self.now - 1, self.now, OK, "final"))
        return result


def run_simulation(choose, steps: int, **kwargs):
    with tempfile.TemporaryDirectory() as directory:
        sim = Simulation(directory, choose, **kwargs)
        try:
            for _ in range(steps):
                sim.step()
            final = sim.finish()
            states = [region.state() for region in sim.regions.values()]
            # The final read's value is held by a majority under one ballot (chosen).
            value = None if final is None else final.encode()
            held = max(sum(1 for s in states if s.accepted == ballot and s.value == value)
                       for ballot in {s.accepted for s in states})
            assert held >= 2
        finally:
            sim.close()
    return sim.history, final, states


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), steps=st.integers(10, 120))
def test_random_schedules_are_linearizable(data, steps):
    history, final, states = run_simulation(lambda n: data.draw(st.integers(0, n - 1)), steps)
    result = check(history)
    assert result.ok, f"not linearizable; deepest linearization {result.deepest}; history {history}"


def test_seeded_schedules_are_linearizable():
    """Longer schedules than Hypothesis draws, from fixed seeds."""
    completed = acknowledged = 0
    for seed in range(25):
        rng = random.Random(seed)
        history, _, _ = run_simulation(rng.randrange, 400)
        assert check(history).ok, f"seed {seed}: {history}"
        completed += sum(1 for op in history if op.status == OK and op.process != "final")
        acknowledged += sum(1 for op in history
                            if op.status == OK and (op.kind == WRITE or (op.kind == CAS and op.result)))
    # The schedules do let operations through (124 and 48 with these seeds).
    assert completed > 100 and acknowledged > 40


def test_seeded_schedules_of_settling_rounds_are_linearizable():
    """The rounds Shoal's MRSC tables run (``settle``: reads peek first and
    end there on a value a majority holds; refusals always write back)."""
    completed = 0
    for seed in range(25):
        rng = random.Random(1000 + seed)
        history, _, _ = run_simulation(rng.randrange, 400, settle=True)
        assert check(history).ok, f"seed {seed}: {history}"
        completed += sum(1 for op in history if op.status == OK and op.process != "final")
    assert completed > 100


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), steps=st.integers(10, 120))
def test_random_schedules_of_settling_rounds_are_linearizable(data, steps):
    history, final, states = run_simulation(lambda n: data.draw(st.integers(0, n - 1)), steps, settle=True)
    result = check(history)
    assert result.ok, f"not linearizable; deepest linearization {result.deepest}; history {history}"


def test_a_settling_read_leaves_no_promise_for_the_next_writer_to_meet(regions):
    """A read that ends after its prepare leaves a promise without an accept,
    which the next proposer takes for a round in flight (a conflict); a
    settling read peeks instead, and a refusal writes back what it judged."""
    writer = proposer(regions, "us-east-1", node="w")
    writer.write(KEY, put(b"v1"))
    settled(regions)
    hasty = proposer(regions, "us-east-2", node="r")
    hasty.ballots.observe(Ballot(10, ""))  # its ballots above the writer's next
    assert hasty.read(KEY) == b"v1"
    with pytest.raises(WriteConflict) as caught:
        writer.write(KEY, put(b"v2"))
    assert caught.value.maybe_applied is False

    writer.write(KEY, put(b"v2"))  # past the read's promise now
    settled(regions)
    reader = proposer(regions, "us-east-2", node="s", settle=True)
    reader.ballots.observe(Ballot(100, ""))
    promised = [region.state(KEY).promised for region in regions]
    assert reader.read(KEY) == b"v2"
    assert [region.state(KEY).promised for region in regions] == promised  # peeked: nothing promised
    with pytest.raises(ConditionFailed):
        reader.write(KEY, compare_and_set(b"v1", b"v3"))
    for state in settled(regions):
        assert state.promised == state.accepted and state.value == b"v2"
    writer.write(KEY, put(b"v4"))  # no conflict: every promise was followed by its accept
    assert reader.read(KEY) == b"v4"


def test_a_settling_read_that_sees_a_value_some_region_lacks_completes_it(regions):
    """Two answers that disagree are not a majority for one ballot: the read
    falls back to a full round, which writes the newer value back."""
    ballots = Ballots("us-east-1/w")
    partial = Round(ballots, [r.name for r in regions], KEY, put(b"partial"))
    _drive(partial, regions, deliver=lambda m: m.kind == "prepare" or m.acceptor == regions[0].name)
    assert regions[0].state(KEY).value == b"partial" and regions[1].state(KEY).value is None
    reader = Round(Ballots("us-east-2/r"), [r.name for r in regions], KEY, identity, settle=True,
                   retry_conflicts=True, max_restarts=5)
    kinds = set()
    _drive(reader, regions, deliver=lambda m: kinds.add(m.kind) or True)
    assert reader.result == b"partial"
    assert kinds == {"peek", "prepare", "accept"}
    assert [r.state(KEY).value for r in regions] == [b"partial"] * 3


def test_the_simulation_catches_a_broken_quorum():
    """With a 'majority' of one, rounds that do not overlap lose writes: the
    same schedules must then produce a history the checker rejects.  If
    this failed, the linearizability tests above would prove nothing."""
    for seed in range(200):
        rng = random.Random(seed)
        history, _, _ = run_simulation(rng.randrange, 200, majority=1)
        if not check(history).ok:
            return
    pytest.fail("no schedule exposed a quorum of one")


class HastyRound(Round):
    """A round that answers a failed condition at once, without writing
    back the state it judged (what shoal.consensus did first)."""

    def _accept(self, promises):
        try:
            self.change(max(promises, key=lambda r: r.accepted).value)
        except Exception as exc:
            return self._fail(exc)
        return super()._accept(promises)


def test_the_simulation_catches_a_refusal_answered_without_write_back():
    for seed in range(300):
        rng = random.Random(seed)
        history, _, _ = run_simulation(rng.randrange, 120, round_class=HastyRound)
        if not check(history).ok:
            return
    pytest.fail("no schedule exposed a refusal judged against a value later superseded")


def test_threaded_proposers_over_lossy_links_are_linearizable(regions):
    """The blocking Proposer on threads, a client in each region, links
    that drop, delay and duplicate, and a region down for a while: the
    history, timed by the clock, is linearizable."""
    rng = random.Random(11)
    proposers = []
    all_links = []
    for i, name in enumerate(NAMES):
        links = [Link(region, random.Random(rng.random()), drop=0.05, delay=0.003, duplicate=0.1)
                 for region in regions]
        all_links += links
        proposers.append(proposer(regions, name, node=f"t{i}", links=links, timeout=0.5))
    history: list[Operation] = []
    lock = threading.Lock()
    counter = iter(range(1, 10_000))

    def client(index, p):
        local = random.Random(index)
        for n in range(30):
            kind = local.choice([WRITE, READ, READ, CAS])
            with lock:
                value = f"v{next(counter)}"
            expected = None
            if kind == WRITE:
                change, op_value = put(value.encode()), value
            elif kind == READ:
                change, op_value = identity, None
            else:
                with lock:
                    written = [op.value for op in history if op.kind == WRITE]
                expected = local.choice(written) if written else None
                change = compare_and_set(None if expected is None else expected.encode(), value.encode())
                op_value = (expected, value)
            call = time.monotonic()
            try:
                result = p.write(KEY, change)
                ret = time.monotonic()
                if kind == READ:
                    op = Operation(READ, None, None if result is None else result.decode(), call, ret, OK, index)
                else:
                    op = Operation(kind, op_value, True if kind == CAS else None, call, ret, OK, index)
            except ConditionFailed:
                op = Operation(CAS, op_value, False, call, time.monotonic(), OK, index)
            except (WriteConflict, Unavailable) as exc:
                op = Operation(kind, op_value, None, call, time.monotonic(), INFO if exc.maybe_applied else FAIL, index)
            with lock:
                history.append(op)
            time.sleep(local.random() * 0.01)  # think time: contention, not a stampede
            if index == 0 and n == 10:
                for link in all_links:
                    if link.region is regions[1]:
                        link.down = True
            if index == 0 and n == 20:
                for link in all_links:
                    link.down = False

    threads = [threading.Thread(target=client, args=(i, proposers[i])) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in proposers:
        p.close()
    result = check(history)
    assert result.ok, f"not linearizable: {history}"
    # Three clients racing on one key conflict often; about half get through.
    assert sum(1 for op in history if op.status == OK) > 20


class SealableAcceptor:
    """A region's acceptor as ``shoal.replication.strong`` runs it: prepare and
    accept refused once the table is sealed (checked in the message's own
    transaction), peek always answered."""

    SEAL = b"mrsc/sealed/test/table"

    def __init__(self, region: Region) -> None:
        self.region = region

    def seal(self) -> None:
        with self.region.engine.write() as txn:
            txn.put("meta", self.SEAL, b"1")

    def prepare(self, key, ballot):
        from shoal.replication.strong import sealed_call

        return sealed_call(self.region.engine, self.SEAL, key, "prepare", ballot)

    def accept(self, key, ballot, value):
        from shoal.replication.strong import sealed_call

        return sealed_call(self.region.engine, self.SEAL, key, "accept", ballot, value)

    def peek(self, key):
        return Acceptor(self.region.engine).peek(key)

    def state(self, key):
        return Acceptor(self.region.engine).state(key)


def test_two_sealed_regions_stop_every_round_and_hold_the_last_acknowledged_value(regions):
    """Leaving MRSC (strong.leave): once two of three acceptors are sealed no
    round reaches a majority, and the higher accepted ballot of the two is the
    last acknowledged value, even when one of them missed it."""
    from shoal.replication.strong import Sealed

    links = [Link(region) for region in regions]
    for link in links:
        link.region.acceptor = SealableAcceptor(link.region)
    p = proposer(regions, links=links)
    try:
        p.write(KEY, put(b"one"))
        links[0].down = True  # us-east-1 misses the next value
        assert p.write(KEY, put(b"two")) == b"two"
        links[0].down = False
        assert regions[0].state().value == b"one"
        regions[0].acceptor.seal()
        regions[1].acceptor.seal()
        with pytest.raises(Sealed):
            regions[0].acceptor.accept(KEY, Ballot(10 ** 6, "x"), b"late")
        with pytest.raises(Unavailable) as failed:
            p.write(KEY, put(b"three"))
        assert failed.value.maybe_applied is False
        sealed = [regions[0].acceptor.peek(KEY), regions[1].acceptor.peek(KEY)]
        assert max(sealed, key=lambda reply: reply.accepted).value == b"two"
        assert regions[2].state().value == b"two"  # the third accepted nothing new either
    finally:
        p.close()


# ---------------------------------------------------------------- a range of registers (strongly consistent Query and Scan)


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_regions_registers_of_a_range_come_named_in_plain_order(tmp_path, encrypted):
    """``strong.range_registers``: a Query's partition in sort order (either
    way, a page at a time), a Scan's every register in plain order, deletes
    named too (an encrypted directory records their names: its storage keys
    hash the partition key)."""
    import orjson

    from shoal.api import DEFAULT_ACCOUNT, Context, tables
    from shoal.api.catalog import Catalog
    from shoal.api.common import storage_key
    from shoal.replication import strong
    from shoal.storage.encrypted import EncryptedEngine
    from shoal.storage.keyring import DataKeys

    engine = LmdbEngine(str(tmp_path / "db"), sync=False)
    if encrypted:
        engine = EncryptedEngine(engine, DataKeys(b"v" * 32, b"p" * 32, b"o" * 32))
    try:
        ctx = Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine))
        tables.create_table(ctx, {
            "TableName": "ranged", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "N"}]},
            extra={"MultiRegionConsistency": "STRONG"})
        with engine.read() as txn:
            table = ctx.catalog.get(txn, "us-east-1", "ranged")
        keys = [{"pk": {"S": p}, "sk": {"N": n}} for p in ("a", "b", "c") for n in ("1", "2", "10")]
        states = {}
        for i, key in enumerate(keys):
            value = None if key["sk"]["N"] == "2" else orjson.dumps({**key, "v": {"N": str(i)}})
            acceptor = strong.LocalAcceptor(engine, storage_key(table, key), strong.seal_key("us-east-1", "ranged"))
            assert acceptor.accept(strong.register_key(key), Ballot(i + 1, "us-east-2/x"), value).granted
            states[strong.register_key(key).decode()] = (Ballot(i + 1, "us-east-2/x"), value)

        def listed(spec, limit=100):
            registers, more = strong.range_registers(engine, ctx.catalog, "us-east-1", "ranged", spec, limit)
            for r in registers:
                assert (r.ballot, r.value) == states[r.name] and r.name == strong.register_key(r.key).decode()
                assert r.position == spec.position(r.key)
            return [r.key for r in registers], more

        partition_b = [k for k in keys if k["pk"] == {"S": "b"}]  # sk 1, 2, 10: numbers in number order
        query = strong.RangeSpec("pk", "sk", {"S": "b"}, b"", None, False)
        assert listed(query) == (partition_b, False)
        assert listed(query, limit=2) == (partition_b[:2], True)
        backwards = strong.RangeSpec("pk", "sk", {"S": "b"}, b"", None, True)
        assert listed(backwards, limit=2) == (partition_b[::-1][:2], True)
        after_one = strong.RangeSpec("pk", "sk", {"S": "b"}, query.position(partition_b[0]) + b"\x00", None, False)
        assert listed(after_one) == (partition_b[1:], False)
        scan = strong.RangeSpec("pk", "sk", None, b"", None, False)
        in_order = sorted(keys, key=scan.position)
        assert listed(scan) == (in_order, False)
        assert listed(scan, limit=4) == (in_order[:4], True)
        upper = strong.RangeSpec("pk", "sk", None, scan.position(in_order[4]), None, False)
        assert listed(upper) == (in_order[4:], False)
        # asked for, the ballot this region's table applied (how a consistent read sees a Learn lost here)
        ballot, value = states[strong.register_key(partition_b[0]).decode()]
        assert strong.apply_chosen(engine, ctx.catalog, "us-east-1", "ranged", partition_b[0], ballot, value)
        for spec in (query, scan):
            registers, _ = strong.range_registers(engine, ctx.catalog, "us-east-1", "ranged", spec, 100, applied=True)
            assert {r.name: r.applied for r in registers if r.applied != ZERO} == {
                strong.register_key(partition_b[0]).decode(): ballot}
    finally:
        engine.close()
