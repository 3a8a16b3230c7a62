"""HTTP-level abuse against a real `shoal serve`: each gets a 4xx or a closed
connection, never a crash, a hang or a stalled server."""

from __future__ import annotations

import gzip
import json
import socket
import time
import zlib

import pytest

GOOD = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
        b"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 2\r\n\r\n{}")


class Conn(socket.socket):
    """A socket that can carry a buffered reader for pipelined replies."""

    _reader = None


def connect(shoal) -> socket.socket:
    plain = socket.create_connection(("127.0.0.1", shoal.port), timeout=10)
    sock = Conn(fileno=plain.detach())
    sock.settimeout(10)
    return sock


def read_reply(sock) -> bytes:
    """One HTTP response (head and body) from a socket, leaving later ones."""
    reader = getattr(sock, "_reader", None)
    if reader is None:
        reader = sock._reader = sock.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return head
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + reader.read(length)


def still_serving(shoal) -> None:
    with connect(shoal) as sock:
        sock.sendall(GOOD)
        assert read_reply(sock).startswith(b"HTTP/1.1 200")


def status_or_closed(sock) -> bytes:
    try:
        reply = read_reply(sock)
    except (ConnectionResetError, socket.timeout):
        return b""
    return reply[:12]


def test_client_closing_mid_body(shoal):
    with connect(shoal) as sock:
        sock.sendall(GOOD.replace(b"Content-Length: 2", b"Content-Length: 1000")[:-1])
    still_serving(shoal)


def test_malformed_chunked_encoding(shoal):
    with connect(shoal) as sock:
        sock.sendall(GOOD.replace(b"Content-Length: 2\r\n", b"Transfer-Encoding: chunked\r\n").replace(
            b"\r\n\r\n{}", b"\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"))
        assert status_or_closed(sock) in (b"", b"HTTP/1.1 400")
    still_serving(shoal)


def test_content_length_shorter_than_body(shoal):
    with connect(shoal) as sock:
        sock.sendall(GOOD.replace(b"Content-Length: 2", b"Content-Length: 1"))
        reply = status_or_closed(sock)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 4")
    still_serving(shoal)


def test_huge_header_line(shoal):
    with connect(shoal) as sock:
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = status_or_closed(sock)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 4")
    still_serving(shoal)


def test_slow_client_does_not_stall_others(shoal):
    slow = connect(shoal)
    try:
        slow.sendall(GOOD[:20])  # a request head trickling in
        started = time.monotonic()
        for _ in range(5):
            still_serving(shoal)
        assert time.monotonic() - started < 5
    finally:
        slow.close()


@pytest.mark.parametrize("garbage", [b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"POST / HTTP/9.9\r\n\r\n"])
def test_garbage_request_lines(shoal, garbage):
    with connect(shoal) as sock:
        sock.sendall(garbage)
        reply = status_or_closed(sock)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 4") or reply.startswith(b"HTTP/1.1 505")
    still_serving(shoal)


def test_pipelined_requests_answer_in_order(shoal):
    with connect(shoal) as sock:
        sock.sendall(GOOD * 3)
        replies = [read_reply(sock) for _ in range(3)]
    assert all(r.startswith(b"HTTP/1.1 200") for r in replies)


def test_expect_100_continue(shoal):
    with connect(shoal) as sock:
        sock.sendall(GOOD.replace(b"Content-Length: 2\r\n", b"Content-Length: 2\r\nExpect: 100-continue\r\n")[:-2])
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"{}")
        assert read_reply(sock).startswith(b"HTTP/1.1 200")


def test_head_over_16k_is_431(shoal):
    """DynamoDB's front end takes request heads up to 16 KB."""
    with connect(shoal) as sock:
        sock.sendall(GOOD.replace(b"Host: x\r\n", b"Host: x\r\nX-Big: " + b"a" * 17_000 + b"\r\n"))
        reply = read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 431 ")
        assert reply.endswith(b"\r\n\r\nRequest header fields too large")
    still_serving(shoal)


def _send_tolerantly(sock, data: bytes) -> None:
    """Send what the server may refuse before it has all of it."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def test_head_over_64k_is_431(shoal):
    with connect(shoal) as sock:
        _send_tolerantly(sock, GOOD.replace(b"Host: x\r\n", b"Host: x\r\n" + b"X-Big: %s\r\n" % (b"a" * 8000) * 9))
        reply = read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 431 ")
        assert reply.endswith(b"\r\n\r\nRequest header fields too large")
        assert b"\r\nConnection: close\r\n" in reply
    still_serving(shoal)


def test_head_just_under_16k_is_served(shoal):
    with connect(shoal) as sock:
        sock.sendall(GOOD.replace(b"Host: x\r\n", b"Host: x\r\nX-Big: " + b"a" * 15_000 + b"\r\n"))
        assert read_reply(sock).startswith(b"HTTP/1.1 200 OK")


def test_request_line_over_64k_is_414(shoal):
    with connect(shoal) as sock:
        _send_tolerantly(sock, b"POST /?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 414 ")
        assert reply.endswith(b"\r\n\r\nURI too long")
    still_serving(shoal)


def test_overlong_request_line_is_414_before_it_ends(shoal):
    with connect(shoal) as sock:
        sock.sendall(b"POST /" + b"a" * 17_000)  # the line never ends
        reply = read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 414 ")
        assert reply.endswith(b"\r\n\r\nURI too long")
    still_serving(shoal)


def _post_gzip(shoal, body: bytes) -> tuple[bytes, dict]:
    with connect(shoal) as sock:
        sock.sendall(GOOD.replace(b"Content-Length: 2\r\n\r\n{}", b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                                  % len(body)) + body)
        reply = read_reply(sock)
    head, _, payload = reply.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(payload)


TOO_LARGE = {"__type": "com.amazon.coral.service#RequestEntityTooLargeException",
             "message": "Request entity too large"}


def test_gzipped_body_unpacked_past_16mb_is_refused(shoal):
    """The unpacked body is bounded by DynamoDB's request size (16 MB), as
    an uncompressed one is: 20 MB of JSON gzipped to about 20 KB is refused
    as an over-large request (413), never with a 500."""
    bomb = gzip.compress(b"{}" + b" " * (20 * 2**20), compresslevel=9)
    assert len(bomb) < 30_000
    status, answer = _post_gzip(shoal, bomb)
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert answer == TOO_LARGE
    still_serving(shoal)


def test_deflated_body_unpacked_past_16mb_is_refused(shoal):
    bomb = zlib.compress(b"{}" + b" " * (16 * 2**20 + 1), 9)
    with connect(shoal) as sock:
        sock.sendall(GOOD.replace(b"Content-Length: 2\r\n\r\n{}", b"Content-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
                                  % len(bomb)) + bomb)
        reply = read_reply(sock)
        head, _, payload = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ")
        assert json.loads(payload) == TOO_LARGE
        sock.sendall(GOOD)  # the body was read in full: the connection still serves
        assert read_reply(sock).startswith(b"HTTP/1.1 200")


def test_gzip_members_unpacked_past_16mb_together_are_refused(shoal):
    """Each member alone is within the limit; together they are not."""
    member = gzip.compress(b" " * (9 * 2**20))
    status, answer = _post_gzip(shoal, gzip.compress(b"{}") + member + member)
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert answer == TOO_LARGE
    still_serving(shoal)


def test_plain_body_over_16mb_is_413_in_dynamodb_form(shoal):
    with connect(shoal) as sock:
        try:
            sock.sendall(GOOD.replace(b"Content-Length: 2\r\n\r\n{}", b"Content-Length: %d\r\n\r\n" % (16 * 2**20 + 1)))
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = read_reply(sock)
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert b"\r\nContent-Type: application/x-amz-json-1.0\r\n" in head
    assert json.loads(payload) == TOO_LARGE
    still_serving(shoal)


def test_gzipped_body_that_does_not_decode_is_500(shoal):
    """DynamoDB answers a body it cannot decode with a 500."""
    status, answer = _post_gzip(shoal, gzip.compress(b"{}")[:-5])
    assert status == b"HTTP/1.1 500 Internal Server Error"
    assert answer == {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                      "message": "Internal server error"}
    still_serving(shoal)


def test_gzipped_body_unpacked_to_16mb_is_served(shoal):
    status, answer = _post_gzip(shoal, gzip.compress(b"{}" + b" " * (16 * 2**20 - 2)))
    assert status == b"HTTP/1.1 200 OK"
    assert "TableNames" in answer


def _get_big_item(shoal, ddb, table, accept_lines: bytes) -> bytes:
    """GetItem of a 5 KB item (compressible) with the given Accept-Encoding
    header lines; the Content-Encoding answered and the body decoded."""
    key = {"pk": {"S": "accept"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "x": {"S": "x" * 5000}})
    body = json.dumps({"TableName": table, "Key": key}).encode()
    request = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
               b"X-Amz-Target: DynamoDB_20120810.GetItem\r\n" + accept_lines
               + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    with connect(shoal) as sock:
        sock.sendall(request)
        reply = read_reply(sock)
    head, _, payload = reply.partition(b"\r\n\r\n")
    encoding = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-encoding:"):
            encoding = line.split(b":", 1)[1].strip()
    plain = {b"gzip": gzip.decompress, b"deflate": zlib.decompress, b"": bytes}[encoding](payload)
    assert json.loads(plain)["Item"]["x"]["S"] == "x" * 5000
    return encoding


@pytest.mark.parametrize("accept, encoding", [
    (b"*, deflate", b"deflate"),  # named beats matched by "*" at the same q (RFC 9110 12.5.3)
    (b"deflate, *", b"deflate"),
    (b"*", b"gzip"),
    (b"*;q=0.9, deflate;q=0.5", b"gzip"),  # a higher q still wins
    (b"gzip, deflate", b"gzip"),
])
def test_accept_encoding_star_and_named(shoal, ddb, table, accept, encoding):
    assert _get_big_item(shoal, ddb, table, b"Accept-Encoding: " + accept + b"\r\n") == encoding


def test_only_the_first_accept_encoding_header_counts(shoal, ddb, table):
    assert _get_big_item(shoal, ddb, table, b"Accept-Encoding: identity\r\nAccept-Encoding: gzip\r\n") == b""
    assert _get_big_item(shoal, ddb, table, b"Accept-Encoding: deflate\r\nAccept-Encoding: gzip\r\n") == b"deflate"
