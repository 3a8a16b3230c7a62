"""Pre-signed requests for measuring ``shoal serve --auth sigv4`` with wrk.

wrk's Lua cannot compute HMAC-SHA256, so Python signs a pool of distinct
requests right before each run (a SigV4 signature is accepted for 5 minutes
either side of its time) and ``lua/presigned.lua`` sends them in turn,
wrapping round when the pool is used up.  Signing is botocore's own
(``SigV4Auth`` over an ``AWSRequest``), the same code boto3 clients run, so
the server verifies exactly what real SDK traffic would send it.

The bodies follow ``lua/events.lua`` (same counts file, same key mapping and
mixes) but are drawn here with Python's generator: existing keys by the
users' Zipf activity, new events with fresh sort keys.

Pool file format, one request per line: the whole raw HTTP/1.1 request with
every CRLF written as a TAB (DynamoDB JSON bodies as generated here contain
neither TABs nor newlines), so Lua restores a request with one ``gsub``.
"""

from __future__ import annotations

import bisect
import random
import time

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from workload import EVENTS_TABLE, SPAN_MS, T0_MS, EventGenerator, user_id

REGION = "us-east-1"
CONTENT_TYPE = "application/x-amz-json-1.0"
TARGETS = {"get": "GetItem", "query": "Query", "put": "PutItem"}
MIXES = {"point": (("get", 0.9), ("put", 1.0))}  # cumulative shares, as in lua/workload.lua
SIGNED_MODES = ("get", "query", "put", "point")


class Signer:
    """Signs DynamoDB requests for one endpoint with its credentials."""

    def __init__(self, endpoint) -> None:
        key, secret = endpoint.credentials
        self.url = endpoint.url
        self.host = f"{endpoint.host}:{endpoint.port}"
        self._auth = SigV4Auth(Credentials(key, secret), "dynamodb", REGION)

    def headers(self, target: str, body: bytes) -> dict:
        """Content-Type, X-Amz-Target, X-Amz-Date and Authorization of one request (Host is the endpoint's)."""
        request = AWSRequest(method="POST", url=self.url, data=body,
                             headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": target})
        self._auth.add_auth(request)
        return dict(request.headers.items())

    def raw(self, target: str, body: bytes) -> bytes:
        """The whole HTTP/1.1 request, as wrk sends it."""
        lines = [b"POST / HTTP/1.1", b"Host: " + self.host.encode()]
        lines += [f"{name}: {value}".encode() for name, value in self.headers(target, body).items()]
        lines.append(b"Content-Length: " + str(len(body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Bodies:
    """Request bodies of the viewer-events workload, drawn like ``lua/events.lua`` draws them."""

    def __init__(self, counts_path: str, seed: int) -> None:
        with open(counts_path) as handle:
            counts = [int(line) for line in handle if line.strip()]
        self._counts = counts
        self._cumulative, total = [], 0
        for count in counts:
            total += count
            self._cumulative.append(total)
        self._items = total
        self.rng = random.Random(seed)
        self._events = EventGenerator(seed)
        self._next_ts = int(time.time() * 1000)

    def _rank(self) -> int:
        """A user rank drawn by activity: uniform over all preloaded events."""
        return bisect.bisect_right(self._cumulative, int(self.rng.random() * self._items)) + 1

    def get(self) -> tuple[str, dict]:
        rank = self._rank()
        count = self._counts[rank - 1]
        ts = T0_MS + int(self.rng.random() * count) * (SPAN_MS // count)
        return "get", {"TableName": EVENTS_TABLE,
                       "Key": {"user_id": {"S": user_id(rank)}, "ts": {"N": str(ts)}}}

    def query(self) -> tuple[str, dict]:
        return "query", {"TableName": EVENTS_TABLE, "KeyConditionExpression": "user_id = :u",
                         "ExpressionAttributeValues": {":u": {"S": user_id(self._rank())}},
                         "ScanIndexForward": False, "Limit": 20}

    def put(self) -> tuple[str, dict]:
        self._next_ts += 1
        return "put", {"TableName": EVENTS_TABLE, "Item": self._events.event(user_id(self._rank()), self._next_ts)}

    def draw(self, mode: str) -> tuple[str, dict]:
        """(operation, request) of one request of ``mode``."""
        mix = MIXES.get(mode)
        if mix is None:
            return getattr(self, mode)()
        x = self.rng.random()
        for operation, upto in mix:
            if x < upto:
                return getattr(self, operation)()
        return getattr(self, mix[-1][0])()


def write_pool(path: str, endpoint, mode: str, counts_path: str, size: int, seed: int = 1) -> float:
    """Sign ``size`` distinct requests of ``mode`` for ``endpoint`` into ``path``; returns the seconds it took."""
    if mode not in SIGNED_MODES:
        raise ValueError(f"mode {mode!r} cannot be pre-signed; choose from {', '.join(SIGNED_MODES)}")
    started = time.monotonic()
    signer, bodies = Signer(endpoint), Bodies(counts_path, seed)
    with open(path, "wb") as handle:
        for _ in range(size):
            operation, request = bodies.draw(mode)
            raw = signer.raw(f"DynamoDB_20120810.{TARGETS[operation]}", orjson.dumps(request))
            handle.write(raw.replace(b"\r\n", b"\t") + b"\n")
    return time.monotonic() - started
