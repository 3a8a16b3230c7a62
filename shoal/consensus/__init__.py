"""Multi-region strong consistency (MRSC): one Paxos register per item.

Every item of an MRSC table is a single-decree register in the style of
CASPaxos (Rystsov, 2018): no leader, no log.  Each of the table's three
regions (or two and a witness) runs an ``Acceptor`` over its own storage
engine; the region that receives a request runs the ``Proposer`` round that
reads the item's state from a majority, applies the request's change and has
a majority accept the result.  Values are opaque bytes and changes are
callables, so this package knows neither HTTP nor DynamoDB items.
docs/mrsc.md has the design and what integration remains.

    acceptor   the durable promise/accept state per key, in ``meta``
    proposer   one round per request (``Round`` without I/O, ``Proposer`` on threads)
    transport  the messages as JSON-ready dicts for the peer protocol
"""

from __future__ import annotations

from shoal.consensus.acceptor import ZERO, Acceptor, Ballot, Reply
from shoal.consensus.proposer import (
    CONFLICT_MESSAGE,
    Ballots,
    ConsensusError,
    Message,
    Proposer,
    Round,
    Unavailable,
    WriteConflict,
    identity,
)

__all__ = [
    "Acceptor", "Ballot", "Ballots", "CONFLICT_MESSAGE", "ConsensusError", "Message", "Proposer", "Reply",
    "Round", "Unavailable", "WriteConflict", "ZERO", "identity",
]
