"""SNS's state in the ``meta`` space, under ``sns/``.

Layout (values are JSON)::

    sns/topic/<topic arn>                  name, attributes, tags, creation time
    sns/sub/<subscription arn>             topic, protocol, endpoint, pending or confirmed,
                                           its confirmation token, Shoal's base URL for its links
    sns/token/<token>                      subscription arn, topic arn, expiry
    sns/out/<due ms u64><delivery id>      one POST to make: url, headers, body, attempts,
                                           and, while a worker holds it, the owner
    sns/signing                            the RSA key and certificate that sign messages

Keys hold ARNs, so the topics of a region and account are one key range in ARN
order (ListTopics), and a topic's subscriptions are the range of the topic ARN
followed by ``:`` (a topic name has no ``:``), which ListSubscriptionsByTopic
and DeleteTopic read.  The outbox is ordered by due time, so a delivery round
reads only what is due; a claim moves a record to its lease's expiry (see
``shoal.sns.delivery``).
"""

from __future__ import annotations

import struct
from typing import Iterator

import orjson

PREFIX = b"sns/"
TOPIC_PREFIX = b"sns/topic/"
SUB_PREFIX = b"sns/sub/"
TOKEN_PREFIX = b"sns/token/"
OUTBOX_PREFIX = b"sns/out/"
SIGNING_KEY = b"sns/signing"

_DUE = struct.Struct(">Q")


def _load(txn, key: bytes) -> dict | None:
    raw = txn.get("meta", key)
    return orjson.loads(bytes(raw)) if raw is not None else None


def _save(txn, key: bytes, value: dict) -> None:
    txn.put("meta", key, orjson.dumps(value))


def topic_key(arn: str) -> bytes:
    return TOPIC_PREFIX + arn.encode()


def sub_key(arn: str) -> bytes:
    return SUB_PREFIX + arn.encode()


def load_topic(txn, arn: str) -> dict | None:
    return _load(txn, topic_key(arn))


def save_topic(txn, topic: dict) -> None:
    _save(txn, topic_key(topic["arn"]), topic)


def load_sub(txn, arn: str) -> dict | None:
    return _load(txn, sub_key(arn))


def save_sub(txn, sub: dict) -> None:
    _save(txn, sub_key(sub["arn"]), sub)


def delete_sub(txn, sub: dict) -> None:
    txn.delete("meta", sub_key(sub["arn"]))
    if sub.get("token"):
        txn.delete("meta", TOKEN_PREFIX + sub["token"].encode())


def load_token(txn, token: str) -> dict | None:
    return _load(txn, TOKEN_PREFIX + token.encode())


def save_token(txn, token: str, value: dict) -> None:
    _save(txn, TOKEN_PREFIX + token.encode(), value)


def _after(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def scan_json(txn, prefix: bytes, start_after: bytes | None = None) -> Iterator[tuple[bytes, dict]]:
    """(key, value) of every record under ``prefix``, in key order, after ``start_after`` if given."""
    start = prefix if start_after is None else start_after + b"\0"
    for key, raw in txn.scan("meta", start, _after(prefix)):
        yield bytes(key), orjson.loads(bytes(raw))


def page(txn, prefix: bytes, after: bytes | None, limit: int) -> tuple[list[dict], bytes | None]:
    """Up to ``limit`` records under ``prefix`` after the key ``after``, and
    the last one's key when more follow (else None)."""
    out, last = [], None
    for key, value in scan_json(txn, prefix, after):
        if len(out) == limit:
            return out, last
        out.append(value)
        last = key
    return out, None


def topic_subs(txn, topic_arn: str) -> Iterator[dict]:
    for _, sub in scan_json(txn, SUB_PREFIX + topic_arn.encode() + b":"):
        yield sub


# ---------------------------------------------------------------- the outbox


def outbox_key(due: float, delivery_id: str) -> bytes:
    return OUTBOX_PREFIX + _DUE.pack(max(0, int(due * 1000))) + bytes.fromhex(delivery_id)


def due_of(key: bytes) -> float:
    return _DUE.unpack_from(key, len(OUTBOX_PREFIX))[0] / 1000


def save_delivery(txn, due: float, record: dict) -> bytes:
    key = outbox_key(due, record["id"])
    _save(txn, key, record)
    return key


def due_deliveries(txn, now: float) -> Iterator[tuple[bytes, dict]]:
    """Outbox records due at ``now`` (free, or their holder's lease expired), oldest first."""
    for key, raw in txn.scan("meta", OUTBOX_PREFIX, outbox_key(now, "ff" * 16) + b"\0"):
        yield bytes(key), orjson.loads(bytes(raw))


def load_delivery(txn, key: bytes) -> dict | None:
    return _load(txn, key)


def outbox(txn) -> Iterator[tuple[float, dict]]:
    """(due time, record) of every delivery still to make (for tools and tests)."""
    for key, record in scan_json(txn, OUTBOX_PREFIX):
        yield due_of(key), record
