"""The consensus messages as JSON-ready dicts, for the peer protocol.

Only the encoding: the HTTP side (a ``ShoalReplication`` operation that hands
a request to this region's ``Acceptor``, and an acceptor object that sends
one to a peer) is integration work.  Values are opaque bytes, sent base64.

    request  {"Kind": "prepare"|"accept"|"peek", "Key": b64, "Ballot": [n, "proposer"], "Value": b64|null}
    reply    {"Granted": bool, "Promised": [n, p], "Accepted": [n, p], "Value": b64|null}
"""

from __future__ import annotations

import base64

from shoal.consensus.acceptor import Acceptor, Ballot, Reply
from shoal.consensus.proposer import Message


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


def ballot_of(pair) -> Ballot:
    """A ballot sent as `[counter, proposer]`; ValueError if it is not one."""
    counter, proposer = pair
    if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0 or not isinstance(proposer, str):
        raise ValueError(f"not a ballot: {pair!r}")
    return Ballot(counter, proposer)


def encode_request(message: Message) -> dict:
    return {"Kind": message.kind, "Key": _b64(message.key), "Ballot": list(message.ballot),
            "Value": _b64(message.value)}


def decode_request(body: dict, acceptor: str = "") -> Message:
    """A request as ``Message``; ValueError if it is not one."""
    try:
        kind = body["Kind"]
        if kind not in ("prepare", "accept", "peek"):
            raise ValueError(f"unknown kind {kind!r}")
        return Message(acceptor, kind, _bytes(body["Key"]), ballot_of(body["Ballot"]), _bytes(body.get("Value")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a consensus request: {exc}") from None


def encode_reply(reply: Reply) -> dict:
    return {"Granted": reply.granted, "Promised": list(reply.promised), "Accepted": list(reply.accepted),
            "Value": _b64(reply.value)}


def decode_reply(body: dict) -> Reply:
    try:
        return Reply(bool(body["Granted"]), ballot_of(body["Promised"]), ballot_of(body["Accepted"]),
                     _bytes(body.get("Value")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a consensus reply: {exc}") from None


def handle(acceptor: Acceptor, body: dict) -> dict:
    """What a region answers a peer's request with."""
    message = decode_request(body)
    if message.kind == "prepare":
        return encode_reply(acceptor.prepare(message.key, message.ballot))
    if message.kind == "peek":
        return encode_reply(acceptor.peek(message.key))
    return encode_reply(acceptor.accept(message.key, message.ballot, message.value))
