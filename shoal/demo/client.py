"""A lean DynamoDB JSON client for ``shoal demo``: keep-alive HTTP connections.

boto3 spends milliseconds of client CPU on each BatchWriteItem of 25 (shape
validation and serialization), more than the server spends storing it, which
would make loading a million events take many minutes.  This client posts
bodies that orjson serialized: ``Connection`` (``http.client``, blocking) for
the few calls that set up tables and answer the access patterns,
``AsyncConnection`` (asyncio streams, one buffer out, Content-Length in) for
the load, where the client's CPU per request matters.

Signing: a Shoal serving with ``--auth off`` (the default on a loopback address)
accepts any credentials, so requests carry a fixed, well-formed but unsigned
``Authorization`` header (its credential scope names the region, which is where
tables live).  Against a server that verifies signatures, ``Signer`` signs each
request with botocore's SigV4 (about 0.2 ms per request, so 8 µs per event of
a batch of 25).
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
import time
from urllib.parse import urlsplit

import orjson

TARGET_PREFIX = "DynamoDB_20120810."
# Errors after which a request may simply be sent again.
RETRYABLE = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                       "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable",
                       "LimitExceededException"})
# Errors that mean "this server wants real credentials".
AUTH_ERRORS = frozenset({"UnrecognizedClientException", "InvalidSignatureException",
                         "MissingAuthenticationTokenException", "IncompleteSignatureException",
                         "MissingAuthenticationToken"})


class DynamoError(Exception):
    """An error answer: the AWS error type (without its namespace) and message."""

    def __init__(self, status: int, body: dict) -> None:
        self.status = status
        self.type = str(body.get("__type", "")).rpartition("#")[2] or f"HTTP {status}"
        self.message = body.get("message") or body.get("Message") or ""
        super().__init__(f"{self.type}: {self.message}" if self.message else self.type)


class Endpoint:
    """Where the server is, the region, and how to authenticate (``signer`` None: unsigned)."""

    def __init__(self, url: str, region: str, signer=None, verify_tls: bool = True) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.netloc = parts.netloc  # the Host header: what a signature covers
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.region = region
        self.signer = signer
        self.verify_tls = verify_tls
        self.unsigned_headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Date": "20240101T000000Z",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=shoal-demo/20240101/{region}/dynamodb/aws4_request, "
                             "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64,
        }

    def headers(self, operation: str, body: bytes) -> dict:
        if self.signer is None:
            return {**self.unsigned_headers, "X-Amz-Target": TARGET_PREFIX + operation}
        return self.signer.headers(self.url, operation, body)

    def request_bytes(self, operation: str, body: bytes) -> bytes:
        """The whole HTTP/1.1 request (for AsyncConnection)."""
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers(operation, body).items())
        return (f"POST / HTTP/1.1\r\nHost: {self.netloc}\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                .encode("latin-1") + body)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context()
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class Signer:
    """SigV4 signatures with botocore, for a server that verifies them."""

    def __init__(self, credentials, region: str) -> None:
        from botocore.auth import SigV4Auth

        self._auth = SigV4Auth(credentials, "dynamodb", region)

    @classmethod
    def from_environment(cls, region: str, profile: str | None = None) -> "Signer | None":
        """A signer with the credentials botocore finds (``profile``, the AWS_* environment
        variables, ~/.aws files, ...); None if it finds none."""
        import botocore.session
        from botocore.exceptions import BotoCoreError

        try:
            credentials = botocore.session.Session(profile=profile).get_credentials()
        except BotoCoreError as exc:  # an unknown profile, a broken config file
            raise DynamoError(0, {"__type": "UnrecognizedClientException", "message": str(exc)}) from None
        return cls(credentials, region) if credentials is not None else None

    def headers(self, url: str, operation: str, body: bytes) -> dict:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="POST", url=url + "/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET_PREFIX + operation})
        self._auth.add_auth(request)
        return dict(request.headers.items())


class Connection:
    """One keep-alive connection; reconnects (and resends) once when the socket was dropped."""

    def __init__(self, endpoint: Endpoint, timeout: float = 60.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        endpoint = self.endpoint
        if endpoint.tls:
            return http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=self.timeout,
                                               context=endpoint.ssl_context())
        return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=self.timeout)

    def post(self, operation: str, body: bytes) -> dict:
        """Send one request; its parsed answer, or DynamoError."""
        headers = self.endpoint.headers(operation, body)
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.request("POST", "/", body, headers)
                response = self._conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        answer = orjson.loads(raw) if raw else {}
        if response.status != 200:
            raise DynamoError(response.status, answer if isinstance(answer, dict) else {})
        return answer

    def call(self, operation: str, request: dict, retries: int = 8) -> dict:
        """``post`` of a request dict, retrying throttling and server errors with back-off."""
        body = orjson.dumps(request)
        delay = 0.05
        for attempt in range(retries + 1):
            try:
                return self.post(operation, body)
            except DynamoError as exc:
                if exc.type not in RETRYABLE or attempt == retries:
                    raise
            time.sleep(delay)
            delay = min(2.0, delay * 2)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AsyncConnection:
    """One keep-alive connection for asyncio, for bulk loading: the request is written as
    one buffer and the answer read by its Content-Length (or chunks), which costs a
    fraction of ``http.client``'s client CPU per request."""

    def __init__(self, endpoint: Endpoint, timeout: float = 60.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, operation: str, body: bytes) -> dict:
        """Send one request; its parsed answer, or DynamoError."""
        request = self.endpoint.request_bytes(operation, body)
        for attempt in (1, 2):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(
                    self.endpoint.host, self.endpoint.port, ssl=self.endpoint.ssl_context())
            try:
                self._writer.write(request)
                status, raw, keep_alive = await asyncio.wait_for(self._response(), self.timeout)
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        if not keep_alive:
            self.close()
        answer = orjson.loads(raw) if raw else {}
        if status != 200:
            raise DynamoError(status, answer if isinstance(answer, dict) else {})
        return answer

    async def _response(self) -> tuple[int, bytes, bool]:
        reader = self._reader
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head[9:12])
        headers = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
        keep_alive = headers.get("connection", "").strip() != "close"
        if "content-length" in headers:
            return status, await reader.readexactly(int(headers["content-length"])), keep_alive
        if headers.get("transfer-encoding", "").strip() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # no trailers
            return status, b"".join(chunks), keep_alive
        return status, await reader.read(), False  # the body runs to the end of the connection

    async def call(self, operation: str, request: dict, retries: int = 8) -> dict:
        """``post`` of a request dict, retrying throttling and server errors with back-off."""
        body = orjson.dumps(request)
        delay = 0.05
        for attempt in range(retries + 1):
            try:
                return await self.post(operation, body)
            except DynamoError as exc:
                if exc.type not in RETRYABLE or attempt == retries:
                    raise
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


def open_endpoint(url: str, region: str, profile: str | None = None, verify_tls: bool = True) -> Endpoint:
    """An Endpoint for ``url``, signing only if it has to.

    With ``profile`` every request is signed with that profile's credentials.
    Otherwise a first unsigned ListTables tells whether the server verifies
    signatures; if it does, requests are signed with the credentials botocore
    finds in the environment.  Raises DynamoError (auth errors included) and
    OSError (nothing listening)."""
    if profile:
        signer = Signer.from_environment(region, profile)
        if signer is None:
            raise DynamoError(0, {"__type": "UnrecognizedClientException",
                                  "message": f"no credentials in profile {profile!r}"})
        endpoint = Endpoint(url, region, signer, verify_tls)
        _probe(endpoint)
        return endpoint
    endpoint = Endpoint(url, region, None, verify_tls)
    try:
        _probe(endpoint)
        return endpoint
    except DynamoError as exc:
        if exc.type not in AUTH_ERRORS:
            raise
    endpoint.signer = Signer.from_environment(region)
    if endpoint.signer is None:
        raise DynamoError(0, {"__type": "UnrecognizedClientException",
                              "message": "the server verifies signatures and no AWS credentials were found: "
                                         "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give --profile"})
    _probe(endpoint)
    return endpoint


def _probe(endpoint: Endpoint) -> None:
    connection = Connection(endpoint, timeout=10)
    try:
        connection.call("ListTables", {"Limit": 1}, retries=0)
    finally:
        connection.close()
