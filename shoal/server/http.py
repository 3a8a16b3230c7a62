"""A lean HTTP/1.1 server: one asyncio Protocol per connection over httptools.

Shoal speaks one protocol (DynamoDB's JSON over ``POST /``), so there is no
ASGI layer: the parser's callbacks build a :class:`Request`, the handler is
called as soon as the message is complete and its :class:`Response` is
written straight to the transport.  Most handlers are synchronous, so a
request costs no task, no future and no timer.

What a connection does, and why:

* **Keep-alive and pipelining.**  HTTP/1.1 keeps the connection open unless
  the client says ``Connection: close``; HTTP/1.0 only with
  ``Connection: keep-alive`` (httptools' ``should_keep_alive`` decides).
  Responses leave in request order: synchronous handlers answer inside the
  parser callback; while an asynchronous answer is outstanding, later
  requests wait in a queue and reading is paused.  Responses produced while
  one network read is parsed are written together, in one system call.
* **Writes once per turn.**  Answers made while network reads are parsed
  are not written at the end of each read but together, when the event
  loop's turn ends (``call_soon`` runs before the loop polls again): one
  turn reads requests from many connections, and a client woken by the
  first answer is then still awake for the others, which saves the kernel
  a wake-up per answer.  Measured on one core with 16 connections
  (docs/optimisations.md): GetItem 30,500 -> 36,000-38,700 req/s, server
  CPU 33 -> 26-28 us per request, p99 1.06 -> 0.63-0.73 ms; the point mix
  18,000-18,800 -> 20,500-21,100 req/s, p99 4.5 -> 3.75 ms.  Answers that
  waited for a group commit are already made together, in one turn, and go
  out at once (deferring them as well cost PutItem 20%).
* **Deferred answers.**  A handler may return a :class:`Deferred` and
  resolve it later on the loop (the GetItems of one turn read together
  over PostgreSQL): no task, and reading goes on unless a pipelined
  request queues behind it.
* **Limits.**  A body above ``max_body`` is answered 413 (a JSON error
  body, as DynamoDB's front end answers), a request target
  above ``max_header`` 414 (as soon as it passes the limit), a request head
  (target and header lines) above ``max_header`` 431, anything httptools
  rejects (bad chunked framing, bad header syntax) 400; each closes the
  connection, since the rest of the byte stream can no longer be trusted.
* **Timeouts.**  One clock tick per server (a ``call_later`` chain, at most
  once a second) checks every connection's deadline, which costs a
  request only two attribute stores instead of a timer each:
  a request must arrive in full within ``read_timeout`` of its first
  byte (a slow client gets 408 and is closed), an idle keep-alive
  connection is closed after ``keepalive_timeout``, and a client that does
  not read its responses for ``read_timeout`` is dropped.
* **Flow control.**  When the transport's write buffer passes its high-water
  mark, reading pauses (so pipelined requests cannot pile up responses)
  and resumes once it drains.
* **Expect: 100-continue** is answered with an interim ``100 Continue``
  before the body is read, unless the announced body is already too large.
* **Graceful shutdown** (:meth:`HttpServer.shutdown`): stop accepting,
  close idle connections, let requests in flight finish (their responses
  carry ``Connection: close``), then return.
"""

from __future__ import annotations

import asyncio
import http
import inspect
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate
from typing import Awaitable, Callable

import httptools

log = logging.getLogger("shoal.http")

DEFAULT_MAX_BODY = 16 * 2**20
# DynamoDB's front end refuses request heads above 16 KB (issue 21); SigV4
# requests from the SDKs carry 1-3 KB.
DEFAULT_MAX_HEADER = 16 * 2**10
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_KEEPALIVE_TIMEOUT = 75.0
DEFAULT_SHUTDOWN_TIMEOUT = 30.0


@dataclass(slots=True)
class Request:
    """One HTTP request, complete with its body."""

    method: str  # "POST"
    path: str  # raw request target, e.g. "/" or "/?X-Amz-Signature=..."
    headers: dict[str, str]  # lower-cased names; repeats joined with "," (Accept-Encoding: the first only)
    body: bytes
    peer: tuple | None  # (host, port) of the client
    secure: bool  # True over TLS


@dataclass(slots=True)
class Response:
    """What a handler answers.  The server adds Content-Length, Date and,
    when it closes the connection, Connection: close."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Deferred:
    """An answer a handler gives later, from the event loop's thread, by
    calling ``resolve(response)`` (``shoal.server.batched_reads``: the
    GetItems of one turn answered together in the next).

    Cheaper than an awaitable, which costs a task and pauses reading (two
    system calls) while it runs: the connection just waits for the call,
    queuing any request pipelined behind it (and then pausing reading, so
    that the queue stays short).  Awaiting one (a caller that wraps the
    answer) works too."""

    __slots__ = ("_conn", "_keep_alive", "_bodyless", "_response", "_waiter")

    def __init__(self) -> None:
        self._conn: "HttpProtocol | None" = None
        self._keep_alive = True
        self._bodyless = False
        self._response: Response | None = None
        self._waiter: asyncio.Future | None = None

    def resolve(self, response: Response) -> None:
        """Give the answer (once; on the event loop's thread)."""
        self._response = response
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn._resolved(self, response)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(response)

    def __await__(self):
        if self._response is None:
            self._waiter = asyncio.get_running_loop().create_future()
            return (yield from self._waiter.__await__())
        return self._response


Handler = Callable[[Request], "Response | Deferred | Awaitable[Response]"]


def _status_line(status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n"


_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
_METHODS = {m.encode(): m for m in ("POST", "GET", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH")}
# Header names as common clients spell them, to skip decode() and lower().
_HEADER_NAMES = {
    spelled.encode(): spelled.lower()
    for name in ("Host", "Content-Type", "Content-Length", "X-Amz-Target", "X-Amz-Date", "Authorization",
                 "User-Agent", "Accept-Encoding", "Accept", "Connection", "Expect", "Transfer-Encoding",
                 "X-Amz-Security-Token", "X-Amz-Content-Sha256", "Amz-Sdk-Invocation-Id", "Amz-Sdk-Request")
    for spelled in (name, name.lower())
}
_SPLICE_LIMIT = 16 * 2**10
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = "Connection: close\r\n"
_INTERNAL_ERROR = Response(
    500,
    [("Content-Type", "application/x-amz-json-1.0")],
    b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}',
)


def _plain(status: int, text: str) -> Response:
    return Response(status, [("Content-Type", "text/plain")], text.encode())


#: What a request above DynamoDB's request size (16 MB) is answered, sent or
#: unpacked (``shoal.server.dispatch.decoded_body``): 413 in the JSON form of
#: DynamoDB's front end, so that an SDK raises a typed, non-retried error.
#: DynamoDB's own wording is not recorded; the type is Coral's, as other AWS
#: JSON services answer it.
TOO_LARGE_TYPE = "com.amazon.coral.service#RequestEntityTooLargeException"
TOO_LARGE_MESSAGE = "Request entity too large"
_TOO_LARGE = Response(
    413,
    [("Content-Type", "application/x-amz-json-1.0")],
    b'{"__type":"%s","message":"%s"}' % (TOO_LARGE_TYPE.encode(), TOO_LARGE_MESSAGE.encode()),
)


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing and answer ``response``
    (then close): the rest of the byte stream cannot be trusted.  With no
    response, parsing just stops (the connection is closing already)."""

    def __init__(self, response: Response | None) -> None:
        super().__init__()
        self.response = response


class ServerState:
    """Settings and bookkeeping shared by the connections of one server."""

    __slots__ = (
        "handler", "loop", "max_body", "max_header", "read_timeout", "keepalive_timeout",
        "connections", "tasks", "closing", "now", "date_line", "_date_second", "_tick", "_unflushed",
    )

    def __init__(self, handler: Handler, loop: asyncio.AbstractEventLoop, *, max_body: int,
                 max_header: int, read_timeout: float, keepalive_timeout: float) -> None:
        self.handler = handler
        self.loop = loop
        self.max_body = max_body
        self.max_header = max_header
        self.read_timeout = read_timeout
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[HttpProtocol] = set()
        self.tasks: set[asyncio.Task] = set()
        self.closing = False
        self.now = loop.time()
        self.date_line = ""
        self._date_second = -1
        self._tick: asyncio.TimerHandle | None = None
        self._unflushed: list[HttpProtocol] | None = None  # connections with output this turn

    def flush_later(self, conn: "HttpProtocol") -> None:
        """Write ``conn``'s queued output when this turn of the loop ends,
        with every other connection's (see "Writes once per turn")."""
        unflushed = self._unflushed
        if unflushed is None:
            self._unflushed = [conn]
            self.loop.call_soon(self._flush_all)
        else:
            unflushed.append(conn)

    def _flush_all(self) -> None:
        unflushed, self._unflushed = self._unflushed, None
        for conn in unflushed:
            conn._flush()

    @property
    def tick_interval(self) -> float:
        """Deadlines are checked at a quarter of the shortest timeout (at
        most once a second), so a timeout fires at most 25% late."""
        return max(0.01, min(1.0, self.read_timeout / 4, self.keepalive_timeout / 4))

    def start_ticking(self) -> None:
        self._on_tick()

    def stop_ticking(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _on_tick(self) -> None:
        self.now = now = self.loop.time()
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            # DynamoDB's front end names itself "Server" in every answer.
            self.date_line = f"Date: {formatdate(second, usegmt=True)}\r\nServer: Server\r\n"
        for conn in [c for c in self.connections if c.deadline <= now]:
            conn.on_deadline()
        self._tick = self.loop.call_later(self.tick_interval, self._on_tick)


class HttpProtocol(asyncio.Protocol):
    """One client connection.

    The per-request fields (``url``, ``headers``, ``body_parts``...) are
    reset by ``on_message_begin``; the per-connection fields hold the
    transport, the order-keeping queue and the flow-control flags.
    """

    __slots__ = (
        "state", "parser", "transport", "peer", "secure", "deadline",
        "url", "headers", "body_parts", "body_size", "head_read", "reads", "read_size", "raw_head", "in_head", "in_request",
        "expect_continue", "keep_alive", "out", "feeding", "pending", "queue",
        "write_paused", "read_paused", "closed", "begun", "eof", "upgrading",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple | None = None
        self.secure = False
        self.deadline = state.now + state.keepalive_timeout
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body_parts: list[bytes] = []
        self.body_size = 0
        self.head_read = 0
        self.reads = 0
        self.read_size = 0
        self.raw_head = 0
        self.in_head = False
        self.in_request = False
        self.expect_continue = False
        self.keep_alive = True
        self.out: list[bytes] = []
        self.feeding = False
        self.pending: "asyncio.Task | Deferred | None" = None  # an answer in progress
        self.queue: deque[tuple[Request, bool]] = deque()  # requests waiting behind it
        self.write_paused = False
        self.read_paused = False
        self.closed = False
        self.eof = False
        self.upgrading = False
        self.begun = 0  # requests begun on this connection

    # -- connection events ----------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = tuple(peer[:2]) if isinstance(peer, tuple) else None
        self.secure = transport.get_extra_info("sslcontext") is not None
        self.deadline = self.state.now + self.state.keepalive_timeout
        self.state.connections.add(self)
        if self.state.closing:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        # A client that leaves mid-request or mid-body is ordinary: drop its
        # state quietly.  An asynchronous answer in progress is not
        # cancelled (it may be a write); its response is discarded.
        self.closed = True
        self.state.connections.discard(self)
        self.queue.clear()
        self.out.clear()
        self.body_parts = []

    def eof_received(self) -> bool | None:
        """The client half-closed.  Answers still being computed are sent
        before closing; a partial request can never complete, so then (and
        when idle) the transport closes at once, after flushing its writes."""
        if self.pending is not None or self.queue:
            self.eof = True
            return True
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        self.deadline = self.state.now + self.state.read_timeout
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.queue:
            self._drain_queue()
        else:
            self._refresh_deadline()
            self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        begun = self.begun
        self.reads += 1
        self.read_size = len(data)
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                if cause.response is not None:
                    self._reject(cause.response)
            else:  # a bug in this module: answer 500 rather than hang
                log.error("HTTP parser callback failed", exc_info=cause)
                self._reject(_INTERNAL_ERROR)
        except httptools.HttpParserUpgrade as exc:
            self._ignore_upgrade(data[exc.args[0]:])
        except httptools.HttpParserError:
            self._reject(_plain(400, "Malformed HTTP request"))
        finally:
            self.feeding = False
        if self.in_head and begun == self.begun:
            self._check_partial_head(len(data))
        if self.closed:
            self._flush()
        elif self.out:
            self.state.flush_later(self)

    def _check_partial_head(self, size: int) -> None:
        """Bound the bytes httptools buffers for a header line that has not
        ended yet (it reports only complete lines), so an endless header
        cannot grow memory until the read timeout.  Only reads that belong
        wholly to the current head are counted, so pipelined requests in
        the same read never add to it."""
        self.raw_head += size
        if self.raw_head > self.state.max_header:
            self._reject(_plain(431, "Request header fields too large"))

    # -- parser callbacks --------------------------------------------------

    def on_message_begin(self) -> None:
        if self.closed:  # a request pipelined behind the last one we answer
            raise _Reject(None)
        self.begun += 1
        self.in_request = True
        self.in_head = True
        self.url = b""
        self.headers = {}
        self.body_parts = []
        self.body_size = 0
        self.head_read = self.reads
        self.raw_head = 0
        self.expect_continue = False
        self.deadline = self.state.now + self.state.read_timeout

    def on_url(self, url: bytes) -> None:
        # httptools hands over the target read so far at the end of each
        # read, so an endless one is refused once past the limit, not
        # buffered until its line ends.
        self.url += url
        if len(self.url) > self.state.max_header:
            raise _Reject(_plain(414, "URI too long"))

    def on_header(self, name: bytes, value: bytes) -> None:
        key = _HEADER_NAMES.get(name) or name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.headers
        if key in headers:
            if key == "accept-encoding":  # DynamoDB reads the first one only
                return
            headers[key] = f"{headers[key]},{text}"
        else:
            headers[key] = text

    def on_headers_complete(self) -> None:
        self.in_head = False
        headers = self.headers
        # A head that came in one read no larger than the limit is within
        # it: only count (rarely) when that is not so.
        if self.head_read != self.reads or self.read_size > self.state.max_header:
            self._check_head_size()
        if self.parser.should_upgrade():
            self.upgrading = True  # see _ignore_upgrade
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.state.max_body:
            raise _Reject(_TOO_LARGE)
        expect = headers.get("expect")
        if expect is not None and expect.lower() == "100-continue" and self.parser.get_http_version() == "1.1":
            if self.pending is None and not self.queue:
                self.out.append(_CONTINUE)
            else:  # an earlier response is still owed: the interim one waits
                self.expect_continue = True

    def _check_head_size(self) -> None:
        size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers.items())
        if size > self.state.max_header:
            raise _Reject(_plain(431, "Request header fields too large"))

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.state.max_body:
            raise _Reject(_TOO_LARGE)
        self.body_parts.append(body)

    def on_message_complete(self) -> None:
        if self.upgrading:
            return
        parts = self.body_parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        method = self.parser.get_method()
        request = Request(
            _METHODS.get(method) or method.decode("latin-1"),
            self.url.decode("latin-1"),
            self.headers,
            body,
            self.peer,
            self.secure,
        )
        self.in_request = False
        self.body_parts = []
        keep_alive = self.parser.should_keep_alive() and self.keep_alive
        if self.pending is not None or self.queue or self.write_paused:
            self.queue.append((request, keep_alive))
            if not self.read_paused:  # behind a Deferred answer, which does not pause reading
                self._update_reading()
        else:
            self._run(request, keep_alive)

    def _ignore_upgrade(self, rest: bytes) -> None:
        """Serve a request that asks to switch protocols (``Upgrade: h2c``
        from ``curl --http2``, say) as plain HTTP/1.1, which RFC 9110 allows.

        httptools stops at the end of such a head and would hand over the
        body as the new protocol's bytes, so the head is rebuilt without
        the upgrade and parsed again, with the bytes that followed it, by a
        fresh parser.  CONNECT (a tunnel) is refused.
        """
        self.upgrading = False
        parser = self.parser
        if parser.get_method() == b"CONNECT":
            self._reject(_plain(400, "CONNECT is not supported"))
            return
        lines = [b"%s %s HTTP/%s\r\n" % (parser.get_method(), self.url, parser.get_http_version().encode())]
        for name, value in self.headers.items():
            if name == "connection":
                value = ",".join(t for t in value.split(",") if t.strip().lower() != "upgrade")
            elif name in ("upgrade", "http2-settings"):
                continue
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(b"\r\n")
        self.parser = httptools.HttpRequestParser(self)
        self.begun -= 1  # the request begins again
        self.data_received(b"".join(lines) + rest)

    # -- answering -----------------------------------------------------------

    def _run(self, request: Request, keep_alive: bool) -> None:
        """Call the handler; write a synchronous answer now, await an
        asynchronous one with reading paused (to keep answers in order), or
        wait for a Deferred one to be resolved."""
        try:
            response = self.state.handler(request)
        except Exception:
            log.error("request handler failed", exc_info=True)
            response = _INTERNAL_ERROR
        if type(response) is not Response:
            if type(response) is Deferred:
                if response._response is not None:  # answered already
                    response = response._response
                else:
                    response._conn = self
                    response._keep_alive = keep_alive
                    response._bodyless = request.method == "HEAD"
                    self.pending = response
                    self.deadline = float("inf")
                    return
            elif inspect.isawaitable(response):
                self.pending = task = self.state.loop.create_task(
                    self._await(response, keep_alive, request.method == "HEAD"))
                self.state.tasks.add(task)
                task.add_done_callback(self.state.tasks.discard)
                self.deadline = float("inf")
                self._update_reading()
                return
            if not isinstance(response, Response):
                log.error("request handler returned %r, not a Response", type(response).__name__)
                response = _INTERNAL_ERROR
        self._respond(response, keep_alive, request.method == "HEAD")

    def _resolved(self, deferred: Deferred, response: Response) -> None:
        """A Deferred answer has come: write it, then serve what waited."""
        if self.pending is not deferred:  # the connection was lost meanwhile
            return
        self.pending = None
        if self.closed:
            return
        if not isinstance(response, Response):
            log.error("request handler resolved %r, not a Response", type(response).__name__)
            response = _INTERNAL_ERROR
        self._respond(response, deferred._keep_alive, deferred._bodyless)
        self._drain_queue()

    async def _await(self, awaitable: Awaitable[Response], keep_alive: bool, bodyless: bool) -> None:
        try:
            response = await awaitable
            if not isinstance(response, Response):
                log.error("request handler returned %r, not a Response", type(response).__name__)
                response = _INTERNAL_ERROR
        except Exception:
            log.error("request handler failed", exc_info=True)
            response = _INTERNAL_ERROR
        self.pending = None
        if self.closed:
            return
        self._respond(response, keep_alive, bodyless)
        self._drain_queue()

    def _drain_queue(self) -> None:
        """Answer the requests that waited (behind an asynchronous answer or
        a full write buffer) until one of those holds them back again."""
        queue = self.queue
        while queue and self.pending is None and not self.write_paused and not self.closed:
            self._run(*queue.popleft())
        if not queue and self.pending is None and not self.closed:
            if self.expect_continue:
                self.expect_continue = False
                self.out.append(_CONTINUE)
            if self.eof:
                self._close()
        self._flush()
        self._refresh_deadline()
        self._update_reading()

    def _respond(self, response: Response, keep_alive: bool, bodyless: bool = False) -> None:
        """Queue the response's bytes (flushed once the current network read
        is parsed); close afterwards unless the connection is kept.  The
        answer to HEAD (``bodyless``) has the length of the body it omits."""
        if self.closed:
            return
        state = self.state
        close = not keep_alive or state.closing
        body = response.body
        head = [_STATUS_LINES.get(response.status) or _status_line(response.status), state.date_line]
        for name, value in response.headers:
            head.append(f"{name}: {value}\r\n")
        head.append(f"Content-Length: {len(body)}\r\n{_CLOSE if close else ''}\r\n")
        head = "".join(head).encode("latin-1")
        if bodyless:
            body = b""
        # One buffer per response: a small body is cheaper to copy than to
        # send as a second buffer; a large one goes out as its own.
        out = self.out
        if len(body) <= _SPLICE_LIMIT:
            out.append(head + body)
        else:
            out += (head, body)
        # Pipelined answers to one read go out together, but not without
        # bound: a large one is written at once, so that a full buffer
        # (pause_writing) makes later requests wait.
        if len(out) > 32 or len(body) > _SPLICE_LIMIT:
            self._flush()
        if close:
            self._close()
        elif not self.in_request and self.pending is None:
            self.deadline = state.now + state.keepalive_timeout

    def _reject(self, response: Response) -> None:
        """Answer a request the parser cannot continue with, then close.  If
        earlier responses are still owed (an asynchronous handler), the
        connection just closes: an answer now would be out of order."""
        self.in_request = False
        self.in_head = False
        if self.pending is None and not self.queue:
            self._respond(response, False)
        else:
            self._close()

    def _flush(self) -> None:
        """Write the queued output in one call (``writelines`` becomes one
        vectored send), and close the transport if the connection is done."""
        out = self.out
        transport = self.transport
        if out:
            if not transport.is_closing():
                if len(out) == 1:
                    transport.write(out[0])
                else:
                    transport.writelines(out)
            out.clear()
        if self.closed and not transport.is_closing():
            transport.close()

    def _close(self) -> None:
        """Stop reading and close once the queued output is written."""
        if self.closed:
            return
        self.closed = True
        self.state.connections.discard(self)
        self.queue.clear()
        if not self.feeding:
            self._flush()
        # otherwise data_received flushes at the end of the read, and closes.

    # -- flow control, timeouts, shutdown -----------------------------------

    def _update_reading(self) -> None:
        """Read only while nothing holds answers back: not while the write
        buffer is full, nor while an asynchronous answer is awaited."""
        pending = self.pending
        want_paused = self.write_paused or (pending is not None and (type(pending) is not Deferred or bool(self.queue)))
        if want_paused == self.read_paused or self.closed or self.transport is None:
            return
        self.read_paused = want_paused
        if want_paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _refresh_deadline(self) -> None:
        state = self.state
        if self.write_paused:
            self.deadline = state.now + state.read_timeout
        elif self.pending is not None:
            self.deadline = float("inf")
        elif self.in_request:
            self.deadline = state.now + state.read_timeout
        else:
            self.deadline = state.now + state.keepalive_timeout

    def on_deadline(self) -> None:
        """Called by the clock tick once ``deadline`` has passed."""
        if self.closed:
            return
        if self.write_paused:  # the client does not read what it asked for
            self.closed = True
            self.state.connections.discard(self)
            self.transport.abort()
        elif self.in_request and self.pending is None and not self.queue:
            self._reject(_plain(408, "Request timeout"))
            self._flush()
        elif self.pending is None and not self.queue:
            self._close()
        else:
            self.deadline = float("inf")

    def shutdown(self) -> None:
        """Close now if idle; otherwise close after the answer in progress
        (every response carries Connection: close once the server closes)."""
        if not self.in_request and self.pending is None and not self.queue:
            self._close()


class HttpServer:
    """A listening HTTP server in the running event loop.

    ``handler`` is called with each :class:`Request`; see the module
    docstring for the limits and timeouts.
    """

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None,
                 max_body: int = DEFAULT_MAX_BODY, max_header: int = DEFAULT_MAX_HEADER,
                 read_timeout: float = DEFAULT_READ_TIMEOUT,
                 keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT) -> None:
        self.handler = handler
        self.ssl_context = _require_tls12(ssl_context)
        self.limits = dict(max_body=max_body, max_header=max_header, read_timeout=read_timeout,
                           keepalive_timeout=keepalive_timeout)
        self.state: ServerState | None = None
        self.server: asyncio.AbstractServer | None = None

    async def start(self, sock=None, *, host: str | None = None, port: int | None = None,
                    backlog: int = 2048) -> asyncio.AbstractServer:
        """Listen on ``sock`` (already bound) or on ``host``/``port``."""
        loop = asyncio.get_running_loop()
        self.state = state = ServerState(self.handler, loop, **self.limits)
        state.start_ticking()
        factory = lambda: HttpProtocol(state)  # noqa: E731
        if sock is not None:
            self.server = await loop.create_server(factory, sock=sock, ssl=self.ssl_context, backlog=backlog)
        else:
            self.server = await loop.create_server(factory, host, port, ssl=self.ssl_context, backlog=backlog)
        return self.server

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def shutdown(self, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        """Stop accepting, close idle connections, let requests in flight
        finish (up to ``timeout`` seconds, then abort what is left)."""
        state = self.state
        state.closing = True
        self.server.close()
        for conn in list(state.connections):
            conn.shutdown()
        deadline = state.loop.time() + timeout
        while (state.connections or state.tasks) and state.loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(state.connections):
            conn.closed = True
            conn.transport.abort()
        state.connections.clear()
        state.stop_ticking()
        await asyncio.sleep(0)  # let the transports' close callbacks run


def _require_tls12(context: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """Refuse TLS below 1.2 (DynamoDB's own floor) on the given context."""
    if context is not None and context.minimum_version < ssl.TLSVersion.TLSv1_2:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
