"""The acceptor: one region's durable half of every item's Paxos register.

Each key (for MRSC, a table's item) is a single-decree register in the style
of CASPaxos (Rystsov, 2018): the acceptor keeps, per key, the highest ballot
it has *promised* and the ballot and value it last *accepted*.  It answers
two messages, each handled in one storage write transaction, so that what it
answered is on disk (with a durable engine) before the answer leaves:

``prepare(key, ballot)``
    Granted when ``ballot`` is at least the promised one: the promise is
    raised to ``ballot`` and the reply carries the accepted ballot and value,
    from which the proposer learns the register's current state.
``accept(key, ballot, value)``
    Granted when ``ballot`` is at least the promised one: the value is
    stored with that ballot (and the promise raised to it).

"At least", not "greater than", makes a duplicated message harmless: a ballot
belongs to one proposer and one round, so seeing it again is that round's
own message.  A refusal is an answer too (``granted`` false) carrying the
acceptor's promised and accepted ballots, which tell the proposer whether
another round is in flight (promised above accepted) or its own ballot was
merely stale.  A lost message or a region that is down is not an answer: the
transport raises instead, and the proposer counts it as missing.

The state lives in the engine's ``meta`` space under ``paxos/`` + the key, so
it shares the engine (and its backups) with the region's tables.  A deleted
item keeps its record (value absent): ballots must never go backwards.
Values are opaque bytes; the acceptor knows nothing of items.  A witness
region is an acceptor and nothing else.
"""

from __future__ import annotations

import struct

from typing import NamedTuple

#: Where the registers live in ``meta``.
PREFIX = b"paxos/"

_COUNTER = struct.Struct(">QH")  # a ballot's counter, then the length of its proposer id
_FLAG = struct.Struct(">B")


class Ballot(NamedTuple):
    """A round's number: ``(counter, proposer)``, compared as a tuple.

    The proposer id (a region, or ``region/node`` when a region runs several
    proposers) makes ballots of different proposers distinct, so no two
    rounds ever share one.
    """

    counter: int
    proposer: str

    def next(self, proposer: str) -> "Ballot":
        """The smallest ballot of ``proposer`` above this one."""
        return Ballot(self.counter + 1, proposer)


#: Older than every real ballot: the state of a register never written.
ZERO = Ballot(0, "")


class Reply(NamedTuple):
    """An acceptor's answer to prepare or accept.

    ``granted``: the request was taken.  ``promised``: the acceptor's
    promise after handling it.  ``accepted`` and ``value``: what it holds
    (``ZERO`` and None when nothing was ever accepted; a value of None
    under a real ballot is an accepted "absent", a delete).
    """

    granted: bool
    promised: Ballot
    accepted: Ballot
    value: bytes | None


class State(NamedTuple):
    promised: Ballot
    accepted: Ballot
    value: bytes | None


EMPTY = State(ZERO, ZERO, None)


def pack_ballot(ballot: Ballot) -> bytes:
    proposer = ballot.proposer.encode()
    return _COUNTER.pack(ballot.counter, len(proposer)) + proposer


def unpack_ballot(raw, offset: int = 0) -> tuple[Ballot, int]:
    counter, size = _COUNTER.unpack_from(raw, offset)
    offset += _COUNTER.size
    return Ballot(counter, bytes(raw[offset:offset + size]).decode()), offset + size


def encode_state(state: State) -> bytes:
    """promised ballot, accepted ballot, a present flag, then the value."""
    present = state.value is not None
    return (pack_ballot(state.promised) + pack_ballot(state.accepted) + _FLAG.pack(present)
            + (state.value if present else b""))


def decode_state(raw) -> State:
    promised, offset = unpack_ballot(raw, 0)
    accepted, offset = unpack_ballot(raw, offset)
    (present,) = _FLAG.unpack_from(raw, offset)
    offset += _FLAG.size
    return State(promised, accepted, bytes(raw[offset:]) if present else None)


def read_state(txn, key: bytes) -> State:
    """The register of ``key`` as ``txn`` sees it (``EMPTY`` if never touched)."""
    raw = txn.get("meta", PREFIX + key)
    return EMPTY if raw is None else decode_state(raw)


class Acceptor:
    """One region's acceptor over a storage engine (``shoal.storage.engine``).

    Thread-safe as the engine is: each message is one write transaction,
    and engines run one writer at a time.
    """

    def __init__(self, engine) -> None:
        self.engine = engine

    def prepare(self, key: bytes, ballot: Ballot) -> Reply:
        """Promise ``ballot`` if no higher one was promised; report what is accepted."""
        ballot = Ballot(*ballot)
        with self.engine.write() as txn:
            state = read_state(txn, key)
            if ballot < state.promised:
                return Reply(False, state.promised, state.accepted, state.value)
            if ballot != state.promised:
                txn.put("meta", PREFIX + key, encode_state(state._replace(promised=ballot)))
            return Reply(True, ballot, state.accepted, state.value)

    def accept(self, key: bytes, ballot: Ballot, value: bytes | None) -> Reply:
        """Store ``value`` under ``ballot`` unless a higher ballot was promised."""
        ballot = Ballot(*ballot)
        with self.engine.write() as txn:
            state = read_state(txn, key)
            if ballot < state.promised:
                return Reply(False, state.promised, state.accepted, state.value)
            if state.accepted != ballot or state.value != value:
                txn.put("meta", PREFIX + key, encode_state(State(ballot, ballot, value)))
            return Reply(True, ballot, ballot, value)

    def peek(self, key: bytes) -> Reply:
        """What ``key``'s register holds, promising nothing: the first step
        of a read (``Round(settle=True)``), which ends there when a majority
        reports one accepted ballot, and so leaves no promise behind that a
        later writer would take for a round in flight."""
        state = self.state(key)
        return Reply(True, state.promised, state.accepted, state.value)

    def state(self, key: bytes) -> State:
        """This acceptor's own view of ``key``, without a round: what an
        eventually consistent read may serve (it can be a value accepted by
        this region alone, not yet, or never, acknowledged)."""
        with self.engine.read() as txn:
            return read_state(txn, key)
