"""PeerClient's HTTP/1.1 over real sockets: what it sends, the framings of
the answers it reads, a kept connection the peer closed, and errors."""

from __future__ import annotations

import socket
import threading

import pytest

from shoal.replication import node


class _Scripted:
    """A TCP server on loopback answering each request it reads with the next
    of ``answers`` (raw bytes; None: close the connection without answering),
    keeping the requests and counting the connections it accepted."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.answers:
                    request = self._read(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break  # closed without answering
                    conn.sendall(answer)
                    if b"Connection: close" in answer or answer.startswith(b"HTTP/1.0"):
                        break

    @staticmethod
    def _read(conn) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        while len(body) < length:
            body += conn.recv(65536)
        return data

    def close(self) -> None:
        self.listener.close()


def _client(url: str) -> node.PeerClient:
    client = node.PeerClient("eu-west-1", url, "us-east-1", None)
    client.timeout = 5.0
    return client


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n" + extra + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_requests_go_over_one_kept_connection_as_dynamodb_json():
    peer = _Scripted([_ok(b'{"a":1}'), _ok(b"{}")])
    client = _client(peer.url)
    try:
        assert client.call("Ping", {"TableName": "t", "SourceRegion": "us-east-1"}) == {"a": 1}
        assert client.call("ApplyChanges", body=b'{"Records":[]}') == {}
    finally:
        client.close()
        peer.close()
    assert peer.connections == 1
    head, _, body = peer.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST / HTTP/1.1"
    assert set(lines[1:]) == {f"Host: {peer.url[len('http://'):]}", "Content-Type: application/x-amz-json-1.0",
                              "X-Amz-Target: ShoalReplication_20261206.Ping", f"Content-Length: {len(body)}"}
    assert body == b'{"TableName":"t","SourceRegion":"us-east-1"}'
    assert peer.requests[1].endswith(b"\r\n\r\n" + b'{"Records":[]}')
    assert b"X-Amz-Target: ShoalReplication_20261206.ApplyChanges\r\n" in peer.requests[1]


def test_a_chunked_answer_and_one_ended_by_closing_are_read_whole():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:2}\r\n0\r\n\r\n"
    peer = _Scripted([chunked, b"HTTP/1.0 200 OK\r\n\r\n{\"b\":[1,2]}"])
    client = _client(peer.url)
    try:
        assert client.call("Ping", {}) == {"a": 2}
        assert client.call("Ping", {}) == {"b": [1, 2]}  # HTTP/1.0 without a length: to the end
        assert client._connection is None  # which closed the connection
    finally:
        client.close()
        peer.close()


def test_a_kept_connection_the_peer_closed_is_replaced_once():
    peer = _Scripted([_ok(b"{}"), None, _ok(b'{"again":true}')])
    client = _client(peer.url)
    try:
        assert client.call("Ping", {}) == {}
        assert client.call("Ping", {}) == {"again": True}  # the second try, on a new connection
    finally:
        client.close()
        peer.close()
    assert peer.connections == 2 and len(peer.requests) == 3


def test_an_error_answer_is_a_peer_error_with_its_status_and_body():
    body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"no"}'
    peer = _Scripted([b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(body) + body, _ok(b"{}")])
    client = _client(peer.url)
    try:
        with pytest.raises(node.PeerError) as caught:
            client.call("Ping", {})
        assert (caught.value.status, caught.value.body) == (400, body)
        assert str(caught.value) == f"eu-west-1 answered 400: {body[:300]!r}"
        assert client.call("Ping", {}) == {}  # the connection is still good
    finally:
        client.close()
        peer.close()
    assert peer.connections == 1


def test_no_peer_and_a_peer_that_never_answers_are_peer_errors():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(node.PeerError) as caught:
        _client(f"http://127.0.0.1:{port}").call("Ping", {})
    assert str(caught.value).startswith("eu-west-1: ")
    peer = _Scripted([None, None])  # closes every connection without answering
    client = _client(peer.url)
    try:
        with pytest.raises(node.PeerError) as caught:
            client.call("Ping", {})
        assert str(caught.value) == "eu-west-1: the peer closed the connection"
    finally:
        client.close()
        peer.close()
    assert peer.connections == 2  # tried once more on a fresh connection


def test_a_garbled_answer_is_a_peer_error():
    peer = _Scripted([b"SSH-2.0-OpenSSH\r\n\r\n"])
    client = _client(peer.url)
    try:
        with pytest.raises(node.PeerError) as caught:
            client.call("Ping", {})
        assert str(caught.value) == "eu-west-1: not an HTTP response: 'SSH-2.0-OpenSSH'"
    finally:
        client.close()
        peer.close()
