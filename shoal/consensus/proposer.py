"""The proposer: one round of CASPaxos per request, in the region that got it.

A write of key K with a change ``f`` (current value or None -> new value or
None) is one round (Rystsov, "CASPaxos: Replicated State Machines without
logs", 2018):

1. prepare(K, b) to every acceptor, with a ballot b above any this proposer
   has seen;
2. with promises from a majority, the value under the highest accepted ballot
   among them is K's current state (None if none was ever accepted);
3. ``f`` is applied to it;
4. accept(K, b, f(state)) to every acceptor; a majority of accepts
   acknowledges the write.

If ``f`` raises (a condition that does not hold), the round accepts the state
it saw, unchanged, and then answers with ``f``'s exception (at once, when
the promises show that state accepted by a majority under one ballot: it is
chosen, and cannot be superseded).  Answering at
once would not be linearizable: the state read from a majority may be a
value that only a minority has accepted (its round still in flight, or
abandoned), which a later round can supersede, so the refusal would have
been judged against a value that then never was.  (The random schedules of
tests/unit/test_consensus.py found exactly that history.)

A strongly consistent read is the same round with the identity change, so a
value that only a minority accepted (its proposer died, or gave up) is either
completed or superseded before anyone can read it, and never seen and then
lost.  When the majority's promises agree on the latest ballot, the value is
already chosen and the read ends after the prepare: one round trip.

Conflicts.  A refusal from an acceptor that has promised a ballot it has not
yet accepted means another round on K is in flight (another region writing
the same item): the round gives up with ``WriteConflict``, which the API
layer answers as DynamoDB's ReplicatedWriteConflictException; it is never
retried into a different result.  A refusal from an acceptor whose promised
ballot is also its accepted one only says that this proposer's ballot was
stale (it restarted, or another region's round has finished): the round
starts again with a higher ballot, before anything was accepted, at most
``max_restarts`` times.  A read starts again on a conflict too: it has no
change to lose, and DynamoDB's reads have no conflict error.

Outcomes.  ``WriteConflict`` and ``Unavailable`` (no majority answered in
time) carry ``maybe_applied``: false when no accept can have been stored (the
write did not happen, ever); true when some accept was stored or lost in the
network, so that a later round may still complete the value.  A round
that cannot win its accept phase still waits for every answer (or its
timeout) before failing, so that this is as exact as the network allows.  A
client's
timeout has the same meaning in every database; the API layer picks the
error (a conflict, or an internal error the SDKs retry).

``Round`` is the protocol without I/O (it is handed replies and hands back
messages), so tests drive it through a simulated network deterministically;
``Proposer`` runs rounds over acceptor objects on a thread pool, with a
timeout.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Mapping, NamedTuple, Sequence

from shoal.consensus.acceptor import ZERO, Ballot, Reply

#: ReplicatedWriteConflictException's meaning as the API Reference words it
#: (botocore's model of DynamoDB): the message the API layer answers with.
CONFLICT_MESSAGE = ("The request was rejected because one or more items in the request "
                    "are being modified by a request in another Region.")

Change = Callable[[bytes | None], bytes | None]


class ConsensusError(Exception):
    """A round that did not reach a majority.  ``maybe_applied``: whether
    the value may still take effect (some accept was stored or lost)."""

    def __init__(self, message: str, maybe_applied: bool) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class WriteConflict(ConsensusError):
    """Another round on the same key holds a higher ballot: DynamoDB's
    ReplicatedWriteConflictException."""


class Unavailable(ConsensusError):
    """Too few acceptors answered (regions down, or the network cut)."""


def identity(value: bytes | None) -> bytes | None:
    """The change of a strongly consistent read."""
    return value


class Message(NamedTuple):
    """A request of a round to one acceptor (``kind``: prepare or accept)."""

    acceptor: str
    kind: str
    key: bytes
    ballot: Ballot
    value: bytes | None = None


class Ballots:
    """A proposer's ballot numbers: strictly increasing, above every ballot
    it has seen, never reused (thread-safe).  ``proposer`` must be unique
    among live proposers *and* across restarts: a proposer that came back
    with the same name and a counter from zero would reuse a ballot."""

    def __init__(self, proposer: str) -> None:
        self.proposer = proposer
        self._counter = 0
        self._lock = threading.Lock()

    def next(self, above: Ballot = ZERO) -> Ballot:
        with self._lock:
            self._counter = max(self._counter, above.counter) + 1
            return Ballot(self._counter, self.proposer)

    def observe(self, ballot: Ballot) -> None:
        with self._lock:
            self._counter = max(self._counter, ballot.counter)


class Round:
    """One proposer round on one key, without I/O.

    ``start()`` gives the first messages; hand each answer to ``on_reply``
    and each message known lost (acceptor down, timeout) to ``on_lost``;
    both give the next messages to send.  ``expire()`` ends a round whose
    time is up.  When ``done``, either ``result`` (the value now stored) or
    ``error`` is set.  ``retry_conflicts`` (for reads, whose change has no
    effect to lose) starts again with a higher ballot on a conflict too, up
    to ``max_restarts`` times in all.  Answers to messages of an earlier
    ballot, duplicates and anything after the end are ignored.
    """

    def __init__(self, ballots: Ballots, acceptors: Sequence[str], key: bytes, change: Change,
                 *, max_restarts: int = 2, retry_conflicts: bool = False, settle: bool = False) -> None:
        self.ballots = ballots
        self.acceptors = list(acceptors)
        self.majority = len(self.acceptors) // 2 + 1
        self.key = key
        self.change = change
        self.max_restarts = max_restarts
        self.retry_conflicts = retry_conflicts
        #: leave no promise without its accept: a read first ``peek``s (no
        #: promise) and ends there if a majority holds one accepted ballot;
        #: a refused change always writes back what it saw.  A promise left
        #: alone looks to the next proposer like a round in flight (a
        #: conflict), which a server whose reads come from every region
        #: cannot afford on every write after a read.
        self.settle = settle
        self.restarts = 0
        self.done = False
        self.result: bytes | None = None
        #: the ballot under which ``result`` is held by a majority (chosen): a
        #: region applying chosen values to its table applies them in this order
        self.chosen = ZERO
        self.error: Exception | None = None
        self.seen = ZERO  # the highest ballot any acceptor reported
        self.ballot = ZERO
        self.phase = ""
        self.value: bytes | None = None  # the value being accepted
        self.refusal: Exception | None = None  # what the change raised, once the state it saw is written back
        self.answers: dict[str, Reply | None] = {}  # this phase's, by acceptor (None: lost)

    # -- driving ------------------------------------------------------------------------------

    def start(self) -> list[Message]:
        if self.settle and self.change is identity:
            self.phase = "peek"
            return [Message(name, "peek", self.key, ZERO) for name in self.acceptors]
        return self._prepare(ZERO)

    def on_reply(self, message: Message, reply: Reply) -> list[Message]:
        if not self._current(message):
            return []
        self.seen = max(self.seen, reply.promised, reply.accepted)
        self.answers.setdefault(message.acceptor, reply)
        return self._decide()

    def on_lost(self, message: Message) -> list[Message]:
        if not self._current(message):
            return []
        self.answers.setdefault(message.acceptor, None)
        return self._decide()

    def expire(self) -> None:
        """Time is up: whoever has not answered counts as lost, no restart."""
        if self.done:
            return
        self.max_restarts = self.restarts
        for name in self.acceptors:
            self.answers.setdefault(name, None)
        self._decide()

    def pending(self) -> list[str]:
        """The acceptors whose answer the current phase still waits for."""
        return [] if self.done else [n for n in self.acceptors if n not in self.answers]

    # -- the protocol -------------------------------------------------------------------------

    def _current(self, message: Message) -> bool:
        return not self.done and message.kind == self.phase and message.ballot == self.ballot

    def _prepare(self, above: Ballot) -> list[Message]:
        self.ballot = self.ballots.next(above)
        self.phase = "prepare"
        self.answers = {}
        self.refusal = None
        return [Message(name, "prepare", self.key, self.ballot) for name in self.acceptors]

    def _decide(self) -> list[Message]:
        granted = [r for r in self.answers.values() if r is not None and r.granted]
        refused = [r for r in self.answers.values() if r is not None and not r.granted]
        lost = sum(1 for r in self.answers.values() if r is None)
        waiting = len(self.acceptors) - len(self.answers)
        if self.phase == "peek":
            if len(granted) >= self.majority:
                latest = max(granted, key=lambda r: r.accepted)
                if sum(1 for r in granted if r.accepted == latest.accepted) >= self.majority:
                    # A majority holds it: chosen, and nothing newer was acknowledged
                    # before this read began (that majority would meet this one).
                    self.done = True
                    self.result = latest.value
                    self.chosen = latest.accepted
                    self.ballots.observe(self.seen)
                    return []
                return self._prepare(self.seen)  # a value some region lacks: a full round settles it
            if len(granted) + waiting >= self.majority:
                return []
            return self._fail(Unavailable(self._unavailable(lost), False))
        if self.phase == "prepare":
            if len(granted) >= self.majority:
                return self._accept(granted)
            if len(granted) + waiting >= self.majority:
                return []
            # This ballot cannot win.  Nothing was accepted under it.
            in_flight = any(r.promised > r.accepted for r in refused)
            if in_flight and not self.retry_conflicts:
                return self._fail(WriteConflict(CONFLICT_MESSAGE, False))
            answered = len(granted) + len(refused) >= self.majority
            if not answered and waiting:
                return []  # the rest tell a stale ballot from regions that are down
            if refused and answered and self.restarts < self.max_restarts:
                self.restarts += 1
                return self._prepare(self.seen)
            if refused and answered:
                return self._fail(WriteConflict(CONFLICT_MESSAGE, False))
            return self._fail(Unavailable(self._unavailable(lost), False))
        if len(granted) >= self.majority:
            if self.refusal is not None:
                return self._fail(self.refusal)
            self.done = True
            self.result = self.value
            self.chosen = self.ballot
            self.ballots.observe(self.seen)
            return []
        if len(granted) + waiting >= self.majority:
            return []
        if refused and self.retry_conflicts and self.restarts < self.max_restarts:
            self.restarts += 1
            return self._prepare(self.seen)
        if waiting:
            return []  # every answer (or the timeout) first: it tells whether the write may apply
        # Stored, or lost (maybe delivered), an accept may take effect.  A
        # refused change wrote back the state it saw: its own change never applies.
        maybe = self.refusal is None and (bool(granted) or lost > 0)
        if refused:
            return self._fail(WriteConflict(CONFLICT_MESSAGE, maybe))
        return self._fail(Unavailable(self._unavailable(lost), maybe))

    def _accept(self, promises: list[Reply]) -> list[Message]:
        latest = max(promises, key=lambda r: r.accepted)
        # A majority holding the latest value under one ballot: it is chosen,
        # no later round can lose it, and a read or a refusal needs no write-back.
        chosen = sum(1 for r in promises if r.accepted == latest.accepted) >= self.majority
        try:
            self.value = self.change(latest.value)
        except Exception as exc:
            # The request's own refusal (a condition that does not hold).  The
            # state it judged may have been accepted by a minority only, and
            # could yet be superseded: write it back, as a read does, so that
            # what the refusal saw stays seen.  Its own change is not applied.
            if chosen and not self.settle:
                return self._fail(exc)
            self.refusal = exc
            self.value = latest.value
        else:
            if chosen and self.change is identity:
                self.done = True
                self.result = self.value
                self.chosen = latest.accepted
                self.ballots.observe(self.seen)
                return []
        self.phase = "accept"
        self.answers = {}
        return [Message(name, "accept", self.key, self.ballot, self.value) for name in self.acceptors]

    def _fail(self, error: Exception) -> list[Message]:
        self.done = True
        self.error = error
        self.ballots.observe(self.seen)
        return []

    def _unavailable(self, lost: int) -> str:
        return (f"{lost} of {len(self.acceptors)} regions did not answer; "
                f"a majority ({self.majority}) is needed")


class Proposer:
    """Runs rounds over acceptor objects: anything with ``prepare(key,
    ballot)`` and ``accept(key, ballot, value)`` returning a ``Reply`` and
    raising on a lost message or a region that is down.

    ``acceptors`` is a mapping of names to acceptors, or a sequence (named
    by position).  Messages of a phase go out in parallel on a thread pool;
    a round that has not finished after ``timeout`` seconds ends as if the
    silent acceptors were down.  ``node`` tells proposers of one region
    apart; by default a random token, unique per process start (see
    ``Ballots``).
    """

    def __init__(self, region: str, acceptors: Mapping[str, object] | Sequence[object], *,
                 node: str | None = None, timeout: float = 5.0, max_restarts: int = 2,
                 read_restarts: int = 5, workers: int | None = None, settle: bool = False) -> None:
        if not isinstance(acceptors, Mapping):
            acceptors = {str(i): a for i, a in enumerate(acceptors)}
        self.region = region
        self.acceptors = dict(acceptors)
        self.ballots = Ballots(f"{region}/{node if node is not None else secrets.token_hex(4)}")
        self.timeout = timeout
        self.max_restarts = max_restarts
        self.read_restarts = read_restarts
        self.settle = settle  # see Round
        self._pool = ThreadPoolExecutor(max_workers=workers or 4 * len(self.acceptors),
                                        thread_name_prefix=f"proposer-{region}")

    def write(self, key: bytes, change: Change) -> bytes | None:
        """Apply ``change`` to ``key``'s value once a majority holds the
        result; returns the new value.  Raises what ``change`` raised,
        ``WriteConflict`` or ``Unavailable``."""
        return self._run(Round(self.ballots, list(self.acceptors), key, change,
                               max_restarts=self.max_restarts, settle=self.settle))

    def read(self, key: bytes) -> bytes | None:
        """The latest acknowledged value of ``key`` (None: absent).

        A read meeting another round starts again above it (up to
        ``read_restarts`` times) rather than failing: GetItem, Query and Scan
        do not have ReplicatedWriteConflictException among their errors, and
        a read that restarts changes nothing that could be lost."""
        return self._run(Round(self.ballots, list(self.acceptors), key, identity,
                               max_restarts=self.read_restarts, retry_conflicts=True, settle=self.settle))

    def run(self, key: bytes, change: Change, acceptors: Mapping[str, object]) -> Round:
        """One finished round over ``acceptors`` (for this call: a register's
        acceptors may depend on its key); a read when ``change`` is
        ``identity``.  Raises as ``write`` does; the round has ``result`` and
        ``chosen``."""
        if change is identity:
            round_ = Round(self.ballots, list(acceptors), key, identity,
                           max_restarts=self.read_restarts, retry_conflicts=True, settle=self.settle)
        else:
            round_ = Round(self.ballots, list(acceptors), key, change, max_restarts=self.max_restarts,
                           settle=self.settle)
        self._run(round_, acceptors)
        return round_

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, round_: Round, acceptors: Mapping[str, object] | None = None) -> bytes | None:
        answers: queue.Queue = queue.Queue()
        deadline = time.monotonic() + self.timeout

        acceptors = self.acceptors if acceptors is None else acceptors

        def call(message: Message) -> None:
            acceptor = acceptors[message.acceptor]
            try:
                if message.kind == "prepare":
                    reply = acceptor.prepare(message.key, message.ballot)
                elif message.kind == "peek":
                    reply = acceptor.peek(message.key)
                else:
                    reply = acceptor.accept(message.key, message.ballot, message.value)
            except Exception:  # lost, refused by the transport, region down: no answer
                reply = None
            answers.put((message, reply))

        def send(messages: list[Message]) -> None:
            for message in messages:
                self._pool.submit(call, message)

        send(round_.start())
        while not round_.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                round_.expire()
                break
            try:
                message, reply = answers.get(timeout=remaining)
            except queue.Empty:
                continue
            send(round_.on_reply(message, reply) if reply is not None else round_.on_lost(message))
        if round_.error is not None:
            raise round_.error
        return round_.result
