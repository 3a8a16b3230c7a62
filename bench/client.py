"""A minimal DynamoDB JSON client for the harness's own set-up traffic.

Set-up (readiness probes, CreateTable, preload) talks to every system the same
way the measured load does: plain HTTP/1.1 keep-alive POSTs with a fixed,
syntactically valid but unsigned SigV4 ``Authorization`` header.  None of the
systems under test verify signatures, but DynamoDB Local and dynalite insist
that the header (and ``X-Amz-Date``) is present.  boto3 would sign every
request, which costs more client CPU than the preload is worth.
"""

from __future__ import annotations

import http.client
import time

import orjson

REGION = "us-east-1"
AUTHORIZATION = (
    f"AWS4-HMAC-SHA256 Credential=bench/20240101/{REGION}/dynamodb/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)
HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "Authorization": AUTHORIZATION,
    "X-Amz-Date": "20240101T000000Z",
}


class DynamoError(Exception):
    """A non-2xx answer: the AWS error type and message."""

    def __init__(self, status: int, body: dict) -> None:
        self.status = status
        self.type = str(body.get("__type", "")).rpartition("#")[2]
        self.message = body.get("message") or body.get("Message") or ""
        super().__init__(f"{status} {self.type}: {self.message}")


class Client:
    """One keep-alive connection to one system; reconnects once on a dropped socket."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._conn: http.client.HTTPConnection | None = None

    def call(self, operation: str, request: dict) -> dict:
        """Send one operation; returns the decoded answer or raises ``DynamoError``."""
        body = orjson.dumps(request)
        headers = dict(HEADERS, **{"X-Amz-Target": f"DynamoDB_20120810.{operation}"})
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
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def answers(port: int) -> bool:
    """Whether the system at ``port`` answers a ListTables with 2xx right now."""
    client = Client(port, timeout=2.0)
    try:
        client.call("ListTables", {})
        return True
    except (OSError, DynamoError, http.client.HTTPException, ValueError):
        return False
    finally:
        client.close()


def wait_until_answering(port: int, timeout: float, poll: float = 0.01, alive=lambda: True) -> float:
    """Poll until the first answered request; returns the monotonic time it came.

    ``alive`` lets the caller stop waiting when the server process died.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(port):
            return time.monotonic()
        if not alive():
            raise RuntimeError(f"server on port {port} exited before answering")
        time.sleep(poll)
    raise TimeoutError(f"server on port {port} did not answer within {timeout:.0f}s")
