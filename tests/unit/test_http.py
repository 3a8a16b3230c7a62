"""The HTTP layer (shoal.server.http) driven over real sockets.

Each server runs in its own thread with its own event loop; clients are raw
sockets (to send exactly the bytes under test) or http.client.
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import logging
import socket
import ssl
import threading
import time

import pytest

from shoal.server.http import HttpProtocol, HttpServer, Request, Response, ServerState

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

TOO_LARGE = {"__type": "com.amazon.coral.service#RequestEntityTooLargeException",
             "message": "Request entity too large"}
INTERNAL_ERROR_BODY = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}'
)


async def _slow_reply(request: Request, delay: float) -> Response:
    await asyncio.sleep(delay)
    return Response(200, [("X-Path", request.path)], b"slow:" + request.body)


def app(request: Request):
    """The handler under test: the path chooses the behaviour."""
    path = request.path
    if path == "/boom":
        raise RuntimeError("handler bug")
    if path == "/headers":
        return Response(200, [("Content-Type", "application/json")], json.dumps(request.headers).encode())
    if path == "/info":
        info = {"method": request.method, "secure": request.secure, "peer": list(request.peer or ())}
        return Response(200, [("Content-Type", "application/json")], json.dumps(info).encode())
    if path.startswith("/async-slow"):
        return _slow_reply(request, 0.3)
    if path == "/very-slow":
        return _slow_reply(request, 1.0)
    if path == "/async-boom":
        return _async_boom()
    if path == "/big":
        return Response(200, [], b"x" * 2**20)
    if path == "/not-a-response":
        return "oops"
    return Response(200, [("Content-Type", "text/plain"), ("X-Path", path)], b"echo:" + request.body)


async def _async_boom():
    raise ValueError("async handler bug")


class ServerThread:
    """An HttpServer on a free port, served by a thread's own event loop."""

    def __init__(self, handler=app, **options) -> None:
        self.handler = handler
        self.options = options
        self.loop = uvloop.new_event_loop() if uvloop else asyncio.new_event_loop()
        self.server: HttpServer | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "ServerThread":
        self.thread.start()
        self.server = HttpServer(self.handler, **self.options)
        self._call(self.server.start(host="127.0.0.1", port=0))
        self.port = self.server.port
        return self

    def _call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def shutdown_async(self, timeout: float = 30):
        """Begin a graceful shutdown; returns a concurrent future."""
        return asyncio.run_coroutine_threadsafe(self.server.shutdown(timeout), self.loop)

    def stop(self) -> None:
        if not self.server.state.closing:
            self._call(self.server.shutdown(5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @property
    def connections(self) -> int:
        return len(self.server.state.connections)


@pytest.fixture
def server():
    srv = ServerThread(max_body=100_000).start()
    yield srv
    srv.stop()


@pytest.fixture
def quick_server():
    """Short timeouts, for the slow-client tests."""
    srv = ServerThread(read_timeout=0.5, keepalive_timeout=0.6).start()
    yield srv
    srv.stop()


# -- raw-socket client ----------------------------------------------------------


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class RawClient:
    """A socket plus a buffer, to read pipelined responses one by one."""

    def __init__(self, port: int, timeout: float = 5.0, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a response head: {self.buffer!r}")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def read_response(self) -> RawResponse:
        status, headers = self.read_head()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            if not self._fill():
                raise ConnectionError("closed mid-body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return RawResponse(status, headers, body)

    def is_closed_by_server(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (EOF or reset) in time."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


def post(path: str = "/", body: bytes = b"{}", extra: str = "", version: str = "1.1") -> bytes:
    return (f"POST {path} HTTP/{version}\r\nHost: test\r\nContent-Type: application/x-amz-json-1.0\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


def wait_until(condition, timeout: float = 10.0) -> None:
    """Poll the server's state instead of sleeping a guessed time (a loaded
    machine may take longer than any guess)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server never reached the expected state"
        time.sleep(0.002)


def answering(srv: ServerThread) -> bool:
    """Some connection has an asynchronous answer in progress."""
    return any(conn.pending is not None for conn in list(srv.server.state.connections))


def reading(srv: ServerThread) -> bool:
    """Some connection has begun a request that it has not finished reading."""
    return any(conn.in_request for conn in list(srv.server.state.connections))


def assert_serving(srv: ServerThread) -> None:
    """The server still answers an ordinary request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("POST", "/", body=b'{"ok":1}', headers={"Content-Type": "application/x-amz-json-1.0"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b'echo:{"ok":1}'
    finally:
        conn.close()


# -- ordinary requests ------------------------------------------------------------


def test_simple_post(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/", body=b'{"TableName":"t"}', headers={"Content-Type": "application/x-amz-json-1.0"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.reason == "OK"
    assert response.read() == b'echo:{"TableName":"t"}'
    assert response.getheader("Content-Length") == str(len(b'echo:{"TableName":"t"}'))
    assert response.getheader("X-Path") == "/"
    assert response.getheader("Connection") is None
    date = response.getheader("Date")
    parsed = datetime.datetime.strptime(date, "%a, %d %b %Y %H:%M:%S GMT")
    assert abs((parsed - datetime.datetime.utcnow()).total_seconds()) < 5
    conn.close()


def test_request_fields(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/info")
    info = json.loads(conn.getresponse().read())
    assert info["method"] == "GET"
    assert info["secure"] is False
    assert info["peer"] == list(conn.sock.getsockname()[:2])
    conn.close()


def test_raw_target_is_kept(server):
    client = RawClient(server.port)
    client.send(post("/?X-Amz-Signature=abc%2Fdef&b=1"))
    response = client.read_response()
    assert response.headers["x-path"] == "/?X-Amz-Signature=abc%2Fdef&b=1"


def test_headers_lower_cased_and_repeats_joined(server):
    client = RawClient(server.port)
    client.send(b"POST /headers HTTP/1.1\r\nHost: a\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"
                b"X-Multi: one\r\nx-multi: two\r\nX-MULTI: three\r\nContent-Length: 0\r\n\r\n")
    headers = json.loads(client.read_response().body)
    assert headers["x-amz-target"] == "DynamoDB_20120810.GetItem"
    assert headers["x-multi"] == "one,two,three"
    assert headers["host"] == "a"
    assert all(name == name.lower() for name in headers)


def test_keep_alive_reuses_the_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    sockets = set()
    for i in range(5):
        conn.request("POST", "/", body=str(i).encode())
        response = conn.getresponse()
        assert response.read() == f"echo:{i}".encode()
        sockets.add(conn.sock.getsockname())
    assert len(sockets) == 1
    assert server.connections == 1
    conn.close()


def test_http10_keep_alive_only_when_asked(server):
    client = RawClient(server.port)
    client.send(post(version="1.0", extra="Connection: keep-alive\r\n"))
    first = client.read_response()
    assert first.status == 200 and "connection" not in first.headers
    client.send(post(body=b"again", version="1.0"))
    second = client.read_response()
    assert second.body == b"echo:again"
    assert second.headers["connection"] == "close"
    assert client.is_closed_by_server()


def test_connection_close_from_client(server):
    client = RawClient(server.port)
    client.send(post(extra="Connection: close\r\n"))
    response = client.read_response()
    assert response.status == 200
    assert response.headers["connection"] == "close"
    assert client.is_closed_by_server()
    assert_serving(server)


def test_pipelined_requests_answered_in_order(server):
    client = RawClient(server.port)
    client.send(post(body=b"1") + post(body=b"2") + post(body=b"3"))
    assert [client.read_response().body for _ in range(3)] == [b"echo:1", b"echo:2", b"echo:3"]
    client.send(post(body=b"4"))
    assert client.read_response().body == b"echo:4"


def test_pipelining_keeps_order_behind_an_asynchronous_answer(server):
    client = RawClient(server.port)
    client.send(post(body=b"1") + post("/async-slow", b"2") + post(body=b"3") + post("/async-slow", b"4")
                + post(body=b"5"))
    bodies = [client.read_response().body for _ in range(5)]
    assert bodies == [b"echo:1", b"slow:2", b"echo:3", b"slow:4", b"echo:5"]
    assert_serving(server)


class _RecordingTransport(asyncio.Transport):
    """Records writes, so a test can see when a connection's answers leave."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks) -> None:
        self.writes.append(b"".join(chunks))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_answers_made_in_one_turn_are_written_together_when_it_ends():
    async def main():
        loop = asyncio.get_running_loop()
        state = ServerState(app, loop, max_body=1000, max_header=1000, read_timeout=5, keepalive_timeout=5)
        conns = []
        for _ in range(3):
            protocol, transport = HttpProtocol(state), _RecordingTransport()
            protocol.connection_made(transport)
            conns.append((protocol, transport))
        for n, (protocol, _) in enumerate(conns):  # three reads in one turn of the loop
            protocol.data_received(post(body=b"%d" % n) + post(body=b"again"))
        written_during_the_turn = [list(t.writes) for _, t in conns]
        await asyncio.sleep(0)
        return written_during_the_turn, [t.writes for _, t in conns]

    during, after = asyncio.run(main())
    assert during == [[], [], []]
    for n, writes in enumerate(after):
        assert len(writes) == 1  # both pipelined answers in one write
        assert writes[0].count(b"HTTP/1.1 200") == 2 and b"echo:%d" % n in writes[0]


def test_expect_100_continue(server):
    client = RawClient(server.port)
    body = b'{"big":"body"}'
    client.send(f"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    status, headers = client.read_head()
    assert status == 100
    assert headers == {}
    client.send(body)
    response = client.read_response()
    assert response.status == 200
    assert response.body == b"echo:" + body


def test_expect_100_continue_refused_when_too_large(server):
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 100001\r\n\r\n")
    response = client.read_response()
    assert response.status == 413
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == "application/x-amz-json-1.0"
    assert json.loads(response.body) == TOO_LARGE
    assert client.is_closed_by_server()
    assert_serving(server)


def test_chunked_body(server):
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n")
    response = client.read_response()
    assert response.status == 200
    assert response.body == b"echo:hello world!"
    client.send(post(body=b"next"))
    assert client.read_response().body == b"echo:next"


def test_chunked_body_sent_in_pieces(server):
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
    time.sleep(0.05)
    client.send(b"c\r\n")
    time.sleep(0.05)
    client.send(b"0\r\n\r\n")
    assert client.read_response().body == b"echo:abc"


def test_empty_body(server):
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    assert client.read_response().body == b"echo:"


# -- malformed and abusive requests --------------------------------------------------


def test_malformed_chunked_encoding_is_400_and_close(server):
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    response = client.read_response()
    assert response.status == 400
    assert response.headers["connection"] == "close"
    assert client.is_closed_by_server()
    assert_serving(server)


@pytest.mark.parametrize("garbage", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"POST / HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello to the plain port
])
def test_malformed_request_is_400_and_close(server, garbage):
    client = RawClient(server.port)
    client.send(garbage)
    response = client.read_response()
    assert response.status == 400
    assert client.is_closed_by_server()
    assert_serving(server)


def test_content_length_larger_than_body_then_close(server, caplog):
    caplog.set_level(logging.DEBUG, logger="shoal")
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{\"short\":1}")
    other = RawClient(server.port)  # served meanwhile
    other.send(post(body=b"other"))
    assert other.read_response().body == b"echo:other"
    client.close()
    deadline = time.monotonic() + 5
    while server.connections > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.connections == 1  # the abandoned connection is gone
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert_serving(server)


def test_content_length_smaller_than_body(server):
    # The surplus is read as the next request, which is not HTTP: 400.
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}surplus bytes\r\n\r\n")
    assert client.read_response().body == b"echo:{}"
    assert client.read_response().status == 400
    assert client.is_closed_by_server()
    assert_serving(server)


def test_client_closes_mid_body(server, caplog):
    caplog.set_level(logging.DEBUG, logger="shoal")
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
    time.sleep(0.05)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # a reset, not a clean close
    wait_until(lambda: server.connections == 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert_serving(server)


def test_body_over_the_limit_is_413(server):
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100001\r\n\r\n")
    response = client.read_response()
    assert response.status == 413
    assert response.headers["connection"] == "close"
    assert client.is_closed_by_server()
    assert_serving(server)


def test_body_at_the_limit_is_served(server):
    client = RawClient(server.port)
    client.send(post(body=b"a" * 100_000))
    response = client.read_response()
    assert response.status == 200
    assert len(response.body) == 100_005


def test_chunked_body_over_the_limit_is_413(server):
    client = RawClient(server.port)
    chunk = b"a" * 60_000
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2)
    response = client.read_response()
    assert response.status == 413
    assert client.is_closed_by_server()
    assert_serving(server)


def test_64k_header_line_is_431_and_close(server):
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 65536 + b"\r\nContent-Length: 0\r\n\r\n")
    response = client.read_response()
    assert response.status == 431
    assert response.headers["connection"] == "close"
    assert client.is_closed_by_server()
    assert_serving(server)


def test_many_headers_over_the_limit_is_431(server):
    client = RawClient(server.port)
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(70))
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\n" + lines + b"Content-Length: 0\r\n\r\n")
    assert client.read_response().status == 431
    assert client.is_closed_by_server()
    assert_serving(server)


def test_endless_header_line_is_cut_off(server):
    client = RawClient(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nX-Endless: ")
    try:
        for _ in range(40):  # 40 x 8 KiB, the line never ends
            client.send(b"a" * 8192)
            time.sleep(0.002)
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = client.read_response()
    assert response.status == 431
    assert_serving(server)


def test_large_head_within_the_limit_is_served(server):
    client = RawClient(server.port)
    client.send(b"POST /headers HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 16_000 + b"\r\nContent-Length: 0\r\n\r\n")
    response = client.read_response()
    assert response.status == 200
    assert len(json.loads(response.body)["x-big"]) == 16_000


@pytest.mark.parametrize("pieces", [1, 4])
def test_head_over_16k_is_431(server, pieces):
    """DynamoDB's front end takes request heads up to 16 KB, not 64 KB."""
    client = RawClient(server.port)
    head = b"POST /headers HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 17_000 + b"\r\nContent-Length: 0\r\n\r\n"
    step = -(-len(head) // pieces)
    for start in range(0, len(head), step):
        client.send(head[start:start + step])
        time.sleep(0.01)
    response = client.read_response()
    assert (response.status, response.body) == (431, b"Request header fields too large")
    assert client.is_closed_by_server()
    assert_serving(server)


@pytest.mark.parametrize("size", [17_000, 300_000])
def test_overlong_request_line_is_414_before_it_ends(server, size):
    """A request target longer than the head limit is refused as soon as it
    passes the limit, not read until its line ends (it never does here)."""
    client = RawClient(server.port)
    try:
        client.send(b"POST /" + b"a" * size)
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = client.read_response()
    assert (response.status, response.body) == (414, b"URI too long")
    assert response.headers["connection"] == "close"
    assert client.is_closed_by_server()
    assert_serving(server)


def test_request_line_within_the_limit_is_served(server):
    client = RawClient(server.port)
    client.send(post("/?" + "a" * 15_000))
    response = client.read_response()
    assert response.status == 200
    assert response.headers["x-path"] == "/?" + "a" * 15_000


def test_repeated_accept_encoding_keeps_the_first(server):
    """DynamoDB reads the first Accept-Encoding header and ignores the
    others; other repeated headers are still joined."""
    client = RawClient(server.port)
    client.send(b"POST /headers HTTP/1.1\r\nHost: a\r\nAccept-Encoding: identity\r\n"
                b"accept-encoding: gzip\r\nX-Multi: one\r\nX-Multi: two\r\nContent-Length: 0\r\n\r\n")
    headers = json.loads(client.read_response().body)
    assert headers["accept-encoding"] == "identity"
    assert headers["x-multi"] == "one,two"


def test_upgrade_request_is_served_as_http11(server):
    # curl --http2 over plain HTTP asks for h2c: the upgrade is ignored.
    client = RawClient(server.port)
    client.send(b"POST /headers HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 2\r\n\r\n{}" + post(body=b"next"))
    response = client.read_response()
    assert response.status == 200
    headers = json.loads(response.body)
    assert "upgrade" not in headers and headers["connection"] == "HTTP2-Settings"
    assert client.read_response().body == b"echo:next"
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                b"Content-Length: 5\r\n\r\nab")
    time.sleep(0.05)
    client.send(b"cde")
    assert client.read_response().body == b"echo:abcde"


def test_connect_is_400(server):
    client = RawClient(server.port)
    client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert client.read_response().status == 400
    assert client.is_closed_by_server()
    assert_serving(server)


# -- handler failures ------------------------------------------------------------------------


def test_handler_exception_is_500_and_connection_still_usable(server, caplog):
    caplog.set_level(logging.ERROR, logger="shoal")
    client = RawClient(server.port)
    client.send(post("/boom"))
    response = client.read_response()
    assert response.status == 500
    assert response.body == INTERNAL_ERROR_BODY
    assert response.headers["content-type"] == "application/x-amz-json-1.0"
    assert "connection" not in response.headers
    assert any("handler bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    client.send(post(body=b"after"))
    assert client.read_response().body == b"echo:after"


def test_async_handler_exception_is_500(server):
    client = RawClient(server.port)
    client.send(post("/async-boom") + post(body=b"after"))
    first = client.read_response()
    assert first.status == 500 and first.body == INTERNAL_ERROR_BODY
    assert client.read_response().body == b"echo:after"


def test_handler_returning_garbage_is_500(server):
    client = RawClient(server.port)
    client.send(post("/not-a-response"))
    assert client.read_response().status == 500
    client.send(post(body=b"after"))
    assert client.read_response().body == b"echo:after"


# -- timeouts and flow control -------------------------------------------------------------


def test_slow_client_is_timed_out_while_others_are_served(quick_server):
    slow = RawClient(quick_server.port)
    slow.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Le")  # and never more
    started = time.monotonic()
    for i in range(5):
        other = RawClient(quick_server.port)
        other.send(post(body=str(i).encode()))
        assert other.read_response().body == f"echo:{i}".encode()
        other.close()
    response = slow.read_response()
    assert response.status == 408
    assert slow.is_closed_by_server()
    assert 0.4 < time.monotonic() - started  # not before its read timeout (the client's own 5 s bounds it)
    assert_serving(quick_server)


def test_slow_body_is_timed_out(quick_server):
    slow = RawClient(quick_server.port)
    slow.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab")
    for _ in range(4):  # trickling does not extend the deadline
        time.sleep(0.2)
        try:
            slow.send(b"c")
        except (BrokenPipeError, ConnectionResetError):
            break
    assert slow.read_response().status == 408
    assert_serving(quick_server)


def test_idle_keep_alive_connection_is_closed(quick_server):
    client = RawClient(quick_server.port)
    client.send(post())
    assert client.read_response().status == 200
    started = time.monotonic()
    assert client.is_closed_by_server(timeout=3)
    assert client.buffer == b""  # closed without a response
    assert 0.5 < time.monotonic() - started  # not before the idle timeout (the wait above bounds it)


def test_active_keep_alive_connection_stays_open(quick_server):
    client = RawClient(quick_server.port)
    for i in range(6):  # 6 x 0.2 s, longer than the 0.6 s idle timeout in total
        client.send(post(body=str(i).encode()))
        assert client.read_response().body == f"echo:{i}".encode()
        time.sleep(0.2)


def test_flow_control_with_a_client_that_reads_late(server):
    client = RawClient(server.port, timeout=10)
    count = 40  # 40 MiB of responses, far beyond the socket buffers
    client.send(b"".join(post("/big", str(i).encode()) for i in range(count)))
    time.sleep(0.3)  # the server must pause rather than buffer everything
    transport_buffer = max(
        (conn.transport.get_write_buffer_size() for conn in list(server.server.state.connections)), default=0)
    assert transport_buffer < 8 * 2**20
    for _ in range(count):
        response = client.read_response()
        assert response.status == 200 and len(response.body) == 2**20
    client.send(post(body=b"after"))
    assert client.read_response().body == b"echo:after"


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    srv = ServerThread(ssl_context=context).start()
    yield srv
    srv.stop()


def test_tls(tls_server, certificate):
    client_context = ssl.create_default_context(cafile=certificate[0])
    conn = http.client.HTTPSConnection("127.0.0.1", tls_server.port, context=client_context, timeout=5)
    conn.request("GET", "/info")
    info = json.loads(conn.getresponse().read())
    assert info["secure"] is True
    conn.request("POST", "/", body=b"over tls")  # kept alive over TLS too
    assert conn.getresponse().read() == b"echo:over tls"
    assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    conn.close()


def _handshakes(client: ssl.SSLContext, certificate) -> bool:
    """Whether ``client`` completes a handshake, in memory, with a server that
    allows every TLS version: the control that makes a refusal meaningful."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*certificate)
    server.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    pipes = [ssl.MemoryBIO() for _ in range(4)]  # client in/out, server in/out
    client_end = client.wrap_bio(pipes[0], pipes[1], server_hostname="localhost")
    server_end = server.wrap_bio(pipes[2], pipes[3], server_side=True)
    done = {client_end: False, server_end: False}
    for _ in range(10):
        for end in done:
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    return False
        pipes[2].write(pipes[1].read())
        pipes[0].write(pipes[3].read())
        if all(done.values()):
            return client_end.version() == "TLSv1.1"
    return False


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused(tls_server, certificate):
    assert tls_server.server.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
    old_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_client.load_verify_locations(certificate[0])
    try:
        old_client.minimum_version = ssl.TLSVersion.TLSv1
        old_client.maximum_version = ssl.TLSVersion.TLSv1_1
        # OpenSSL 3 refuses TLS 1.1 at its default security level on its own;
        # level 0 lets this client offer it, so the refusal below is the server's.
        old_client.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1")
    if not _handshakes(old_client, certificate):
        pytest.skip("this OpenSSL cannot complete a TLS 1.1 handshake even with a server that allows it")
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            old_client.wrap_socket(raw, server_hostname="localhost")


def test_plain_http_to_the_tls_port_does_not_break_it(tls_server, certificate):
    client = RawClient(tls_server.port)
    client.send(post())
    assert client.is_closed_by_server()
    client_context = ssl.create_default_context(cafile=certificate[0])
    conn = http.client.HTTPSConnection("127.0.0.1", tls_server.port, context=client_context, timeout=5)
    conn.request("POST", "/", body=b"fine")
    assert conn.getresponse().read() == b"echo:fine"
    conn.close()


# -- graceful shutdown -------------------------------------------------------------------------


def test_graceful_shutdown_finishes_in_flight_requests():
    srv = ServerThread().start()
    try:
        idle = RawClient(srv.port)
        idle.send(post())
        assert idle.read_response().status == 200
        busy = RawClient(srv.port)
        busy.send(post("/very-slow", b"in flight"))
        wait_until(lambda: answering(srv))
        started = time.monotonic()
        done = srv.shutdown_async(timeout=10)
        assert idle.is_closed_by_server(timeout=2)  # idle: closed at once
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", srv.port), timeout=1)
        response = busy.read_response()
        assert response.status == 200
        assert response.body == b"slow:in flight"
        assert response.headers["connection"] == "close"
        assert busy.is_closed_by_server()
        done.result(10)
        assert 0.5 < time.monotonic() - started  # it waited for the answer in flight
    finally:
        srv.stop()


def test_graceful_shutdown_answers_a_request_being_read():
    srv = ServerThread().start()
    try:
        client = RawClient(srv.port)
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
        wait_until(lambda: reading(srv))
        done = srv.shutdown_async(timeout=10)
        wait_until(lambda: srv.server.state.closing)
        client.send(b"cd")
        response = client.read_response()
        assert response.body == b"echo:abcd"
        assert response.headers["connection"] == "close"
        done.result(10)
    finally:
        srv.stop()


def test_shutdown_gives_up_after_its_timeout():
    srv = ServerThread().start()
    try:
        client = RawClient(srv.port)
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")  # never finished
        wait_until(lambda: reading(srv))
        srv.shutdown_async(timeout=0.3).result(5)  # gives up: done well before the request could finish
        assert client.is_closed_by_server()
    finally:
        srv.stop()


def test_head_response_has_no_body(server):
    client = RawClient(server.port)
    client.send(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n" + post(body=b"next"))
    status, headers = client.read_head()
    assert status == 200 and headers["content-length"] == str(len(b"echo:"))
    assert client.read_response().body == b"echo:next"  # no stray body bytes in between


# -- request bodies sent compressed (shoal.server.dispatch.decoded_body) -----------------


def test_decoded_body_unpacks_gzip_members_and_deflate():
    import gzip
    import zlib

    from shoal.server.dispatch import decoded_body

    assert decoded_body(gzip.compress(b'{"a":') + gzip.compress(b"1}"), "gzip") == b'{"a":1}'
    assert decoded_body(zlib.compress(b"{}"), " Deflate ") == b"{}"
    assert decoded_body(b"{}", "identity") == b"{}"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_decoded_body_stops_one_byte_past_the_limit(monkeypatch, encoding):
    import gzip
    import zlib

    from shoal.server import dispatch

    monkeypatch.setattr(dispatch, "MAX_DECODED_BODY", 1000)
    pack = gzip.compress if encoding == "gzip" else zlib.compress
    assert dispatch.decoded_body(pack(b"a" * 1000), encoding) == b"a" * 1000
    with pytest.raises(dispatch.RequestEntityTooLarge) as refused:
        dispatch.decoded_body(pack(b"a" * 1001), encoding)
    assert refused.value.status == 413
    assert refused.value.to_body() == TOO_LARGE


def test_decoded_body_that_does_not_decode_is_an_internal_error():
    import gzip

    from shoal.errors import InternalServerError
    from shoal.server.dispatch import decoded_body

    for body, encoding in ((gzip.compress(b"{}")[:-4], "gzip"), (b"not gzip", "gzip"),
                           (gzip.compress(b"{}") + b"x", "gzip"), (b"{}", "br")):
        with pytest.raises(InternalServerError):
            decoded_body(body, encoding)
