"""A minimal DynamoDB JSON client for the harness's own set-up traffic.

Set-up (readiness probes, CreateTable, preload) talks to every system the same
way the measured load does: plain HTTP/1.1 keep-alive POSTs with a fixed,
syntactically valid but unsigned SigV4 ``Authorization`` header.  Most
systems under test do not verify signatures, but DynamoDB Local and dynalite
insist that the header (and ``X-Amz-Date``) is present.  boto3 would sign every
request, which costs more client CPU than the preload is worth.  The exceptions
are Shoal's security variants: an ``Endpoint`` with credentials (``shoal serve
--auth sigv4``) has every request really signed, and one with ``tls`` talks
HTTPS (to a self-signed certificate, so without verification).
"""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass

import orjson

REGION = "us-east-1"


def unsigned_headers(region: str = REGION) -> dict:
    """The fixed headers of an unsigned request whose credential scope names ``region``
    (a deployment started with ``shoal serve --region`` refuses other regions)."""
    return {
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": (f"AWS4-HMAC-SHA256 Credential=bench/20240101/{region}/dynamodb/aws4_request, "
                          "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64),
        "X-Amz-Date": "20240101T000000Z",
    }


HEADERS = unsigned_headers()


@dataclass(frozen=True)
class Endpoint:
    """Where a system listens and how to talk to it (picklable, for the preload processes)."""

    port: int
    host: str = "127.0.0.1"
    tls: bool = False
    credentials: tuple[str, str] | None = None  # (access key id, secret): sign every request
    region: str = REGION  # the credential scope's region of unsigned requests

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/"


def _as_endpoint(target) -> Endpoint:
    return target if isinstance(target, Endpoint) else Endpoint(int(target))


def unverified_tls() -> ssl.SSLContext:
    """A client context for the harness's self-signed certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class DynamoError(Exception):
    """A non-2xx answer: the AWS error type and message."""

    def __init__(self, status: int, body: dict) -> None:
        self.status = status
        self.type = str(body.get("__type", "")).rpartition("#")[2]
        self.message = body.get("message") or body.get("Message") or ""
        super().__init__(f"{status} {self.type}: {self.message}")


class Client:
    """One keep-alive connection to one system; reconnects once on a dropped socket.

    ``target`` is a port (plain HTTP, unsigned) or an ``Endpoint``.
    """

    def __init__(self, target, timeout: float = 60.0) -> None:
        self.endpoint = _as_endpoint(target)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._signer = None
        self._headers = HEADERS if self.endpoint.region == REGION else unsigned_headers(self.endpoint.region)
        if self.endpoint.credentials:
            from presign import Signer

            self._signer = Signer(self.endpoint)

    def call(self, operation: str, request: dict) -> dict:
        """Send one operation; returns the decoded answer or raises ``DynamoError``."""
        body = orjson.dumps(request)
        target = f"DynamoDB_20120810.{operation}"
        if self._signer is not None:
            headers = self._signer.headers(target, body)
        else:
            headers = dict(self._headers, **{"X-Amz-Target": target})
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", "/", body, headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        answer = orjson.loads(raw) if raw else {}
        if response.status >= 300:
            raise DynamoError(response.status, answer)
        return answer

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            endpoint = self.endpoint
            if endpoint.tls:
                self._conn = http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=self.timeout,
                                                         context=unverified_tls())
            else:
                self._conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def answers(target) -> bool:
    """Whether the system at ``target`` (a port or an ``Endpoint``) answers a ListTables with 2xx right now."""
    client = Client(target, timeout=2.0)
    try:
        client.call("ListTables", {})
        return True
    except (OSError, DynamoError, http.client.HTTPException, ValueError):
        return False
    finally:
        client.close()


def wait_until_answering(target, timeout: float, poll: float = 0.01, alive=lambda: True) -> float:
    """Poll until the first answered request; returns the monotonic time it came.

    ``target`` is a port, an ``Endpoint``, or a callable returning one (asked
    again at every poll: a SigV4 server's credentials appear only once it has
    written them).  ``alive`` lets the caller stop waiting when the server
    process died.
    """
    current = target if callable(target) else (lambda: target)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(current()):
            return time.monotonic()
        if not alive():
            raise RuntimeError(f"server at {_as_endpoint(current()).url} exited before answering")
        time.sleep(poll)
    raise TimeoutError(f"server at {_as_endpoint(current()).url} did not answer within {timeout:.0f}s")
