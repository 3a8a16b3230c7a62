"""The sending side: one replication thread per deployment.

Transport: push.  Each region sends its own writes to every peer, a full
mesh: a record that came from a peer is never sent on (its ``origin`` is
not this region), so a write crosses one link once.  Pushing fits the change
log: the source keeps one consumer cursor per (peer, table) in the log
(``replica/<peer>/<table id>``), so its records are kept until the peer has
them and a peer that was away is sent everything past its cursor when it
answers again; the receiver applies a batch in one transaction, durably,
before it answers, and only then does the cursor move.  Pulling would need
the same cursors on the other side and a poll loop per peer.

The thread (one per deployment: workers take a lease in ``meta``) does, in
rounds, with short storage transactions of its own and never on the event
loop, so that a region's own writes never wait for a peer:

1. fold new local writes into the version store (``versions.index_local``),
   and now and then forget old tombstones;
2. run the control tasks that ``shoal.replication.control`` queued (create,
   sync, copy, activate, drop), the first of each table, in order;
3. for every (peer, table) cursor not held by a copy, send the records
   past it (up to ``BATCH`` and never splitting the records of one write
   time, which is how a transaction's writes stay together), and move it
   in the next round's transaction (step 1's, or one of its own).

A round that sent records is followed by the next ``PACE_S`` after it
began, so that under load a round carries many records: its fixed costs (a
commit with its fsyncs, a request to each peer) are what being a replica
source cost most once the records themselves were no longer decoded.

A peer that does not answer is left alone for ``BACKOFF_S`` (doubled to
``MAX_BACKOFF_S``) while the others go on.  One that has failed for
``UNREACHABLE_S`` is shown ``REGION_DISABLED`` in this region's DescribeTable
(with ReplicaInaccessibleDateTime, when it first failed), and ACTIVE again
once it answers; a peer with nothing to receive is pinged every ``PROBE_S``
so that both happen without writes.

Metrics (with ``--metrics on``), in the sending region's CloudWatch, each
with the dimensions TableName and ReceivingRegion as DynamoDB has them:
``ReplicationLatency`` (milliseconds from a write's time to the peer's
durable answer, one value per record sent) and ``PendingReplicationCount``
(this region's writes of the table the peer does not have yet, sampled
every ``PENDING_EVERY_S``).  They are written straight to the metric store
in the thread's own transactions (``shoal.metrics.store.write_points``), not
through the request recorder, which belongs to the event loop.
"""

from __future__ import annotations

import configparser
import logging
import os
import socket
import ssl
import struct
import threading
import time
import traceback
from urllib.parse import urlsplit

import orjson

from shoal.api.changelog import (
    advance_consumer,
    consumer_cursor,
    consumers,
    decode_change,
    head_position,
    is_table_change,
    read_raw_changes,
)
from shoal.api.common import key_of
from shoal.api.jobs import Lease
from shoal.replication import apply as replica_apply
from shoal.replication import authorization, control, versions
from shoal.replication.protocol import TARGET_PREFIX

log = logging.getLogger("shoal")

BATCH = 500  # records (or copied items) per request
SCAN_FACTOR = 20  # records of other tables passed over per batch, at most
BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0
IDLE_S = 0.1
#: After a round that sent records, the next starts this long after it began:
#: under load, batches grow and the rounds (each a commit, and a request to
#: every peer) stay few, instead of one round per few writes.
PACE_S = 0.1
TIMEOUT_S = 10.0
PRUNE_EVERY_S = 60.0  # between rounds of tombstone pruning
UNREACHABLE_S = 1.0  # failing this long, a peer is shown REGION_DISABLED
PROBE_S = 1.0  # a peer not heard from for this long is pinged
PENDING_EVERY_S = 5.0  # between samples of PendingReplicationCount
PENDING_SCAN = 100_000  # change records counted per sample and cursor, at most
LEASE_KEY = b"repl/lease"
LEASE_S = 5.0


class PeerError(Exception):
    """A peer did not take a request (unreachable, or it answered an error:
    then ``status`` and ``body`` are its answer, so that a caller can pass a
    DynamoDB error on as the peer worded it)."""

    def __init__(self, message: str, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def parse_peers(text: str) -> dict[str, str]:
    """``r1=url,r2=url`` (SHOAL_PEERS) or one ``REGION=URL`` (--peer) as a dict."""
    peers = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        region, sep, url = part.partition("=")
        region, url = region.strip(), url.strip()
        parts = urlsplit(url)
        if not sep or not region or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected REGION=http(s)://HOST:PORT, not {part!r}")
        peers[region] = url.rstrip("/")
    return peers


def parse_paused(text: str) -> frozenset[str]:
    """``r1,r2`` (SHOAL_PEER_PAUSE, or --peer-pause given several times)."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def read_credentials(path: str) -> tuple[str, str]:
    """(access key, secret) from an AWS credentials-style file (its
    ``[default]`` section, or its only one): --peer-credentials."""
    parser = configparser.ConfigParser()
    if not parser.read(path):
        raise ValueError(f"cannot read the peer credentials file {path}")
    section = parser["default"] if parser.has_section("default") else (
        parser[parser.sections()[0]] if parser.sections() else None)
    if section is None or "aws_access_key_id" not in section or "aws_secret_access_key" not in section:
        raise ValueError(f"{path} has no aws_access_key_id and aws_secret_access_key")
    return section["aws_access_key_id"], section["aws_secret_access_key"]


class PeerClient:
    """POSTs replication requests to one peer, keeping its connection."""

    def __init__(self, region: str, url: str, own_region: str, credentials: tuple[str, str] | None) -> None:
        self.region = region
        self.url = url
        self.own_region = own_region
        self.credentials = credentials
        self._connection = None  # a socket, kept alive between calls
        self._sent_request: bytes | None = None  # what ``begin`` sent, until ``end`` has its answer
        self._host: str | None = None  # the Host header
        self.failures = 0
        self.retry_at = 0.0
        self.paused = False  # --peer-pause: every call fails, as if the network were cut
        self.down_since: float | None = None  # wall time of the first failure in a row
        self.marked: bool | None = None  # shown REGION_DISABLED here; None: not known since start
        self.heard_at = 0.0  # monotonic time of the last answer
        self.timeout = TIMEOUT_S  # of a connection's socket operations

    def call(self, operation: str, payload: dict | None = None, body: bytes | None = None) -> dict:
        """POST ``payload`` (or its JSON, ``body``, already encoded) as ``operation``."""
        self.begin(operation, payload, body)
        return self.end()

    def begin(self, operation: str, payload: dict | None = None, body: bytes | None = None) -> None:
        """Send a request without waiting for its answer (``end`` reads it):
        the replication thread sends a round's batches to every peer first and
        then reads the answers, so that a round waits for the slowest peer's
        durable commit rather than for the sum of them."""
        if self.paused:
            raise PeerError(f"{self.region}: paused (--peer-pause)")
        if body is None:
            body = orjson.dumps(payload)
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET_PREFIX + operation}
        if self.credentials is not None:
            headers = self._signed(headers, body)
        request = self._request(headers, body)
        if self._sent_request is not None:
            # an answer never read (a round that stopped between the sends and the reads) must not
            # be taken for this request's: the connection goes with it
            self.close()
            self._sent_request = None
        for attempt in (0, 1):  # a kept connection the peer closed: once more on a fresh one
            try:
                self._connect().sendall(request)
            except (BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt:
                    raise PeerError(f"{self.region}: {exc}") from None
                continue
            except (OSError, ValueError) as exc:
                self.close()
                raise PeerError(f"{self.region}: {exc}") from None
            # kept to send once more if the connection turns out closed: only the first
            # try on a kept connection may be, a fresh one's failure is the peer's
            self._sent_request = request if attempt == 0 else b""
            return

    def end(self) -> dict:
        """The answer to the request ``begin`` sent (PeerError if none came)."""
        request, self._sent_request = self._sent_request, None
        if request is None:
            raise PeerError(f"{self.region}: no request was sent")
        for attempt in (0, 1):
            try:
                if attempt:  # the kept connection was closed before it answered: a fresh one
                    self._connect().sendall(request)
                status, data, close = _read_response(self._connection)
            except (_Closed, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt or not request:
                    raise PeerError(f"{self.region}: {exc}") from None
                continue
            except (OSError, ValueError, AttributeError) as exc:  # AttributeError: no connection left
                self.close()
                raise PeerError(f"{self.region}: {exc}") from None
            if close:
                self.close()
            if status != 200:
                raise PeerError(f"{self.region} answered {status}: {data[:300]!r}", status, data)
            self.heard_at = time.monotonic()
            return orjson.loads(data) if data else {}
        raise PeerError(f"{self.region}: no answer")

    def _request(self, headers: dict, body: bytes) -> bytes:
        """The request's bytes: HTTP/1.1, kept alive.  Written here rather
        than by ``http.client``, whose request and response handling (the
        email package parses its headers) cost more than the replication
        thread's whole work on a batch; a peer is a Shoal server, whose
        answers this reads (``_read_response``)."""
        if self._host is None:
            parts = urlsplit(self.url)
            default = 443 if parts.scheme == "https" else 80
            self._host = parts.hostname if parts.port in (None, default) else f"{parts.hostname}:{parts.port}"
        head = [f"POST / HTTP/1.1\r\nHost: {self._host}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "content-length")
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(head).encode("latin-1") + body

    def _connect(self):
        if self._connection is None:
            parts = urlsplit(self.url)
            https = parts.scheme == "https"
            sock = socket.create_connection((parts.hostname, parts.port or (443 if https else 80)), self.timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if https:
                    context = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
                    sock = context.wrap_socket(sock, server_hostname=parts.hostname)
            except BaseException:
                sock.close()
                raise
            self._connection = sock
        return self._connection

    def _signed(self, headers: dict, body: bytes) -> dict:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(method="POST", url=self.url + "/", data=body, headers=headers)
        SigV4Auth(Credentials(*self.credentials), "dynamodb", self.own_region).add_auth(request)
        return dict(request.headers.items())

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Closed(Exception):
    """The peer closed a kept connection before answering (it may have timed
    it out): the request is sent once more on a fresh one."""


_MAX_HEAD = 64 * 1024


def _read_response(sock) -> tuple[int, bytes, bool]:
    """(status, body, whether the peer closes the connection) of one HTTP/1.1
    response: a body framed by Content-Length or chunked, or by the end of
    the connection."""
    buffer = b""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buffer) > _MAX_HEAD:
            raise ValueError("the peer's response head is too long")
        chunk = sock.recv(65536)
        if not chunk:
            if buffer:
                raise ConnectionResetError("the peer closed the connection mid-response")
            raise _Closed("the peer closed the connection")
        buffer += chunk
    lines = buffer[:end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:100]!r}")
    status = int(rest[:3])
    length, chunked, close = None, False, version == "HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value
        elif name == "connection":
            close = "close" in value if version != "HTTP/1.0" else "keep-alive" not in value
    rest = buffer[end + 4:]
    if chunked:
        return status, _read_chunked(sock, rest), close
    if length is None:  # to the end of the connection
        parts = [rest]
        while chunk := sock.recv(65536):
            parts.append(chunk)
        return status, b"".join(parts), True
    parts, have = [rest], len(rest)
    while have < length:
        chunk = sock.recv(min(65536 * 4, length - have))
        if not chunk:
            raise ConnectionResetError("the peer closed the connection mid-response")
        parts.append(chunk)
        have += len(chunk)
    return status, b"".join(parts)[:length], close


def _read_chunked(sock, buffer: bytes) -> bytes:
    body = []
    while True:
        while b"\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the peer closed the connection mid-response")
            buffer += chunk
        line, _, buffer = buffer.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        while len(buffer) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the peer closed the connection mid-response")
            buffer += chunk
        if size == 0:
            return b"".join(body)  # trailers are not read: none are sent
        body.append(buffer[:size])
        buffer = buffer[size + 2:]


class Replicator:
    """The replication thread of one worker (active while it holds the lease)."""

    def __init__(self, engine, catalog, settings: control.Settings, credentials: tuple[str, str] | None = None,
                 clock=time.time, metrics: bool = False) -> None:
        self.engine = engine
        self.catalog = catalog
        self.settings = settings
        self.region = settings.region
        self.clock = clock
        self.peers = {region: PeerClient(region, url, settings.region, credentials)
                      for region, url in settings.peers.items()}
        for region in settings.paused & self.peers.keys():
            self.peers[region].paused = True
        self.metrics = metrics
        self._next_pending = 0.0
        self._next_probe = 0.0
        # cursors whose last PendingReplicationCount was not 0; None until the first sample, which
        # records every cursor's (a backlog a previous run left shown falls to 0)
        self._pending_shown: set[str] | None = None
        self._lease = Lease(engine, LEASE_KEY, LEASE_S)
        self._next_prune = 0.0
        self._next_key_check = 0.0
        # MRSC tables settled against the other regions' registers (``strong.catch_up``): a
        # few seconds after start, so that a region back from being down gets what it missed
        self._next_catch_up = time.monotonic() + 2.0
        self._catching_up: threading.Thread | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # position -> (time, origin, keys JSON, new image JSON) of the local writes indexed this
        # round (``versions.index_local``)
        self._decoded: dict = {}
        # (peer region, table id) -> monotonic time before which nothing is sent there: the
        # peer's table is INACCESSIBLE_ENCRYPTION_CREDENTIALS (``_held_by_peer``)
        self._held: dict[tuple[str, str], float] = {}
        # the same for settings changes (a GSI, TTL, ReplicaUpdates Update) a peer refused because its
        # table's resource-based policy denies replication (``_settings_state``)
        self._settings_held: dict[tuple[str, str], float] = {}
        # what the peers took, not yet stored: (consumer, cursor sent from, new cursor), and the
        # ReplicationLatency values (``_store_sent``)
        self._sent: list[tuple[str, int, int]] = []
        self._points: dict = {}

    def start(self) -> "Replicator":
        self._thread = threading.Thread(target=self._run, name="shoal-replication", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_S + 1)
        try:
            self.flush()
        except Exception:  # the engine is closed already: the peers are sent those records again
            pass
        for peer in self.peers.values():
            peer.close()
        try:
            self._lease.release()  # let another worker take over at once
        except Exception:  # the engine is closed already: the lease expires by itself
            pass

    def _run(self) -> None:
        _name_os_thread(b"shoal-repl")
        while not self._stop.is_set():
            busy = False
            started = time.monotonic()
            try:
                if self._lease.hold():
                    busy = self.run_once()
            except Exception:
                log.error("replication round failed:\n%s", traceback.format_exc())
            if busy:
                continue
            # A round that sent records is followed by the next PACE_S after it began (what was
            # written meanwhile goes as one batch); an idle one sleeps.
            self._stop.wait(max(0.0, started + PACE_S - time.monotonic()) if self._sent else IDLE_S)

    # -- one round ------------------------------------------------------------------------

    def run_once(self) -> bool:
        """One round of indexing, tasks and sending; True while a backlog
        remains (more than a batch to send, tasks, records to index).  What
        the peers took is stored by the next round (``_store_sent``)."""
        self._decoded.clear()
        busy = self._index()
        self.flush()  # what the last round sent, when there was nothing to index to store it with
        busy = self._tasks() or busy
        busy = self._send() or busy
        self._decoded.clear()
        self._probe()
        if self.metrics and time.monotonic() >= self._next_pending:
            self._next_pending = time.monotonic() + PENDING_EVERY_S
            self._sample_pending()
        if time.monotonic() >= self._next_key_check:  # this region's tables whose KMS key cannot be used
            self._next_key_check = time.monotonic() + control.KEY_CHECK_S
            busy = control.check_encryption_keys(self.engine, self.catalog, self.region, self.clock()) or busy
            # and those whose resource-based policy denies replication (REPLICATION_NOT_AUTHORIZED)
            busy = authorization.check(self.engine, self.catalog, self.region, self.clock()) or busy
        if time.monotonic() >= self._next_catch_up:
            self._catch_up_strong_tables()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_S
            with self.engine.write() as txn:
                busy = versions.prune_tombstones(txn, int(self.clock() * 1000)) > 0 or busy
        return busy

    def _catch_up_strong_tables(self) -> None:
        """Start settling this region's MRSC tables (``strong.catch_up``) on a
        thread of its own (rounds wait on peers: the sending rounds go on);
        again ``strong.CATCH_UP_S`` later, or soon if it failed."""
        from shoal.replication import strong

        if self._catching_up is not None and self._catching_up.is_alive():
            return
        names = control.strong_tables(self.engine, self.catalog, self.region)
        if not names:
            self._next_catch_up = time.monotonic() + strong.CATCH_UP_S
            return
        self._next_catch_up = float("inf")  # set again when the thread ends

        def run() -> None:
            failed = False
            for name in sorted(names):
                try:
                    with self.engine.read() as txn:
                        table = self.catalog.get(txn, self.region, name)
                    if table is None or table.refused_status is not None or not control.is_strong(table.description):
                        continue  # gone, CREATING, inaccessible, or no longer MRSC
                    strong.catch_up(self.engine, self.catalog, table)
                except Exception as exc:  # no other region answered, the table went: tried again soon
                    failed = True
                    log.debug("catching up MRSC table %s failed: %s", table.name, exc)
            self._next_catch_up = time.monotonic() + (strong.CATCH_UP_RETRY_S if failed else strong.CATCH_UP_S)

        self._catching_up = threading.Thread(target=run, name="shoal-mrsc-catch-up", daemon=True)
        self._catching_up.start()

    def _index(self) -> bool:
        """Fold new local writes into the version store, in the transaction
        that also stores what the last round's peers took (one commit, with
        its fsyncs, per round instead of two); True while more remain."""
        with self.engine.read() as txn:
            cursor = consumer_cursor(txn, versions.INDEXER)
            if cursor is None or cursor >= head_position(txn):
                return False
            idle = not replica_apply.global_tables(txn, self.catalog)
        with self.engine.write() as txn:
            self._store_sent(txn)
            if idle and not replica_apply.global_tables(txn, self.catalog):
                # No table replicates (the last one's replicas were removed): the indexer would
                # read every write only to pass it over, and hold the change log for nothing.
                # The next table made global registers it again, at the head.
                versions.stop_indexing(txn)
                return False
            versions.index_local(txn, replica_apply.global_tables(txn, self.catalog), limit=BATCH * SCAN_FACTOR,
                                 decoded=self._decoded)
            return consumer_cursor(txn, versions.INDEXER) < head_position(txn)

    def _available(self, region: str) -> PeerClient | None:
        peer = self.peers.get(region)
        if peer is None or peer.retry_at > time.monotonic():
            return None
        return peer

    def _failed(self, peer: PeerClient, exc: Exception) -> None:
        peer.failures += 1
        delay = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** min(peer.failures - 1, 6))
        peer.retry_at = time.monotonic() + delay
        if peer.failures in (1, 10) or peer.failures % 100 == 0:
            log.warning("replication to %s failed (%d in a row): %s", peer.region, peer.failures, exc)
        now = time.time()
        if peer.down_since is None:
            peer.down_since = now
        if peer.marked is not True and now - peer.down_since >= UNREACHABLE_S:
            self._show_reachable(peer.region, peer.down_since)
            peer.marked = True

    def _succeeded(self, peer: PeerClient) -> None:
        peer.failures = 0
        peer.retry_at = 0.0
        peer.down_since = None
        if peer.marked is not False:
            self._show_reachable(peer.region, None)
            peer.marked = False

    def _show_reachable(self, region: str, down_since: float | None) -> None:
        """Show ``region``'s replicas REGION_DISABLED (unreachable since
        ``down_since``) or, with None, ACTIVE again, in every global table here."""
        from shoal.api.catalog import update_description

        def change(desc: dict) -> None:
            for entry in desc.get("Replicas") or ():
                if entry["RegionName"] != region:
                    continue
                if down_since is not None and entry["ReplicaStatus"] == "ACTIVE":
                    entry["ReplicaStatus"] = control.UNREACHABLE
                    entry["ReplicaStatusDescription"] = f"Region {region} has not answered since " + time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(down_since))
                    entry["ReplicaInaccessibleDateTime"] = round(down_since, 3)
                elif down_since is None and entry["ReplicaStatus"] == control.UNREACHABLE:
                    entry["ReplicaStatus"] = "ACTIVE"
                    entry.pop("ReplicaStatusDescription", None)
                    entry.pop("ReplicaInaccessibleDateTime", None)

        wanted = "ACTIVE" if down_since is not None else control.UNREACHABLE
        with self.engine.write() as txn:
            for table in replica_apply.global_tables(txn, self.catalog).values():
                if any(r["RegionName"] == region and r["ReplicaStatus"] == wanted
                       for r in table.description.get("Replicas") or ()):
                    update_description(txn, self.region, table.name, table.table_id, change, self.catalog.keys)

    def _probe(self) -> None:
        """Ping each peer that replicates a table of ours and has not been
        heard from for ``PROBE_S``, so that its reachability is known
        without writes to send."""
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + PROBE_S / 2
        waiting = [p for p in self.peers.values() if now - p.heard_at >= PROBE_S and p.retry_at <= now]
        if not waiting:
            return
        with self.engine.read() as txn:
            names = {}
            for name in consumers(txn):
                if name.startswith("replica/"):
                    region, table_id = name[len("replica/"):].rsplit("/", 1)
                    names.setdefault(region, table_id)
            tables = replica_apply.global_tables(txn, self.catalog) if names else {}
        for peer in waiting:
            table = tables.get(names.get(peer.region))
            if table is None:
                continue
            try:
                peer.call("Ping", {"TableName": table.name, "SourceRegion": self.region})
            except control_errors() as exc:
                self._failed(peer, exc)
                continue
            self._succeeded(peer)

    # -- metrics --------------------------------------------------------------------------

    def _add_point(self, points: dict, metric: str, table: str, peer: str, unit: str, values: list) -> None:
        """Add ``values`` to this minute's period of the metric in ``points``
        (``shoal.metrics.store.write_points``' argument)."""
        from shoal.metrics.dynamodb import NAMESPACE
        from shoal.metrics.stats import Stats

        series = (self.region, NAMESPACE, metric, (("ReceivingRegion", peer), ("TableName", table)))
        key = (series, unit, int(self.clock() // 60) * 60)
        stats = points.get(key)
        if stats is None:
            stats = points[key] = Stats()
        stats.add_values([float(v) for v in values])

    def _record(self, metric: str, table: str, peer: str, unit: str, values: list) -> None:
        from shoal.metrics.store import write_points

        points: dict = {}
        self._add_point(points, metric, table, peer, unit, values)
        with self.engine.write() as txn:
            write_points(txn, points)

    def _sample_pending(self) -> None:
        """PendingReplicationCount of every (peer, table) cursor: this
        region's writes of the table past it (counted over at most
        ``PENDING_SCAN`` records; beyond, every later record is counted)."""
        own = self.region + ":"
        samples = []
        self.flush()  # the cursors as the peers have them
        with self.engine.read() as txn:
            head = head_position(txn)
            tables = replica_apply.global_tables(txn, self.catalog)
            for name, (cursor, _) in consumers(txn).items():
                if not name.startswith("replica/"):
                    continue
                peer, table_id = name[len("replica/"):].rsplit("/", 1)
                table = tables.get(table_id)
                if table is None:
                    continue
                count, seen, last = 0, 0, cursor
                for seq, record_table, value in read_raw_changes(txn, cursor):
                    if seen >= PENDING_SCAN:
                        count += head - last
                        break
                    seen, last = seen + 1, seq
                    if record_table != table_id:
                        continue
                    record = decode_change(value)[1]
                    if not is_table_change(record) and "originSeq" not in record and record["origin"].startswith(own):
                        count += 1
                if count or self._pending_shown is None or name in self._pending_shown:  # 0 once: it is gone
                    samples.append((name, table.name, peer, count))
        self._pending_shown = self._pending_shown or set()
        for name, table_name, peer, count in samples:
            self._record("PendingReplicationCount", table_name, peer, "Count", [count])
            if count:
                self._pending_shown.add(name)
            else:
                self._pending_shown.discard(name)

    def _tasks(self) -> bool:
        with self.engine.read() as txn:
            tasks = control.pending_tasks(txn)
        busy = False
        started = set()
        for key, task in tasks:
            if task["kind"] in SETTINGS_TASKS:
                state = self._settings_state(task)
                if state == "moot":
                    with self.engine.write() as txn:
                        txn.delete("meta", key)
                    continue
                if state == "held":
                    continue  # (the table's tasks for other regions go on)
            if task["table_id"] in started:
                continue
            started.add(task["table_id"])
            peer = self._available(task["peer"])
            if peer is None:
                continue
            try:
                done = getattr(self, "_task_" + task["kind"])(peer, task)
            except control_errors() as exc:
                if task["kind"] in SETTINGS_TASKS and _not_authorized(exc):
                    self._settings_held[task["peer"], task["table_id"]] = time.monotonic() + authorization.CHECK_S
                    self._succeeded(peer)  # it answered: reachable
                    continue
                self._failed(peer, exc)
                candidates = task.get("candidates")
                if candidates and len(candidates) > 1:  # another region can do it: that one next time
                    task["peer"] = candidates[(candidates.index(task["peer"]) + 1) % len(candidates)]
                    with self.engine.write() as txn:
                        txn.put("meta", key, orjson.dumps(task))
                continue
            self._succeeded(peer)
            with self.engine.write() as txn:
                if done:
                    txn.delete("meta", key)
                else:
                    txn.put("meta", key, orjson.dumps(task))
            busy = True
        return busy

    def _settings_state(self, task: dict) -> str | None:
        """Whether a settings change (``SETTINGS_TASKS``) waits ("held"): the
        peer's table refused the last one because its resource-based policy
        denies replication there (REPLICATION_NOT_AUTHORIZED: tried again
        after ``authorization.CHECK_S``), or this region's table is refused
        so (replication stops "to and from" such a replica, settings
        included); its later settings changes for that region wait behind it,
        in order. "moot" when that region is no longer one of the table's
        replicas here (it left while its change waited: 20 hours not
        authorized, or removed): the change is dropped, never applied to what
        is a regional table there now."""
        until = self._settings_held.get((task["peer"], task["table_id"]))
        if until is not None:
            if time.monotonic() < until:
                return "held"
            del self._settings_held[task["peer"], task["table_id"]]
        with self.engine.read() as txn:
            table = self.catalog.get(txn, self.region, task["name"])
            if table is None or table.table_id != task["table_id"]:
                return None  # (the task itself finds the table gone)
            if task["peer"] not in {r["RegionName"] for r in table.description.get("Replicas") or ()}:
                return "moot"
            return "held" if authorization.refused(txn, table) else None

    def _description(self, name: str, table_id: str) -> dict | None:
        with self.engine.read() as txn:
            table = self.catalog.get(txn, self.region, name)
            return table.description if table is not None and table.table_id == table_id else None

    def _task_create(self, peer: PeerClient, task: dict) -> bool:
        desc = self._description(task["name"], task["table_id"])
        if desc is None:
            return True  # the table is gone: nothing to make
        try:
            peer.call("CreateReplica", {"TableName": task["name"], "SourceRegion": self.region,
                                        "Request": task["request"], "Replicas": control.replica_set(desc, self.region),
                                        "TimeToLive": _ttl_spec(task.get("ttl")),
                                        "MultiRegionConsistency": desc.get("MultiRegionConsistency"),
                                        "Witnesses": desc.get("GlobalTableWitnesses")})
        except PeerError as exc:  # a refusal makes the replica CREATION_FAILED; other errors are retried
            if control.replica_creation_failed(self.engine, self.catalog, self.region, task, exc.status, exc.body):
                return True
            raise
        return True

    def _task_witness(self, peer: PeerClient, task: dict) -> bool:
        """Make the witness of an MRSC table (an acceptor of its registers,
        no table), show it ACTIVE here, and tell the replicas."""
        from shoal.api.catalog import update_description

        if self._description(task["name"], task["table_id"]) is None:
            return True
        try:
            peer.call("CreateWitness", {"TableName": task["name"], "SourceRegion": self.region,
                                        "Id": task["table_id"]})
        except PeerError as exc:  # a refusal makes the witness CREATION_FAILED; other errors are retried
            if control.witness_creation_failed(self.engine, self.catalog, self.region, task, exc.status, exc.body):
                return True
            raise

        def change(desc: dict) -> None:
            for entry in desc.get("GlobalTableWitnesses") or ():
                if entry["RegionName"] == task["peer"]:
                    entry["WitnessStatus"] = "ACTIVE"

        with self.engine.write() as txn:
            updated = update_description(txn, self.region, task["name"], task["table_id"], change, self.catalog.keys)
            for entry in (updated.description.get("Replicas") or ()) if updated is not None else ():
                control.queue_task(txn, {"kind": "sync", "table_id": task["table_id"], "name": task["name"],
                                         "peer": entry["RegionName"]})
        return True

    def _task_sync(self, peer: PeerClient, task: dict) -> bool:
        replicas = task.get("replicas")  # fixed when queued (the replica left: control.leave)
        if replicas is None:
            desc = self._description(task["name"], task["table_id"])
            if desc is None:
                return True
            replicas = control.replica_set(desc, self.region)
        payload = {"TableName": task["name"], "SourceRegion": self.region, "Replicas": replicas}
        desc = self._description(task["name"], task["table_id"])
        if desc is not None and desc.get("GlobalTableWitnesses"):
            payload["Witnesses"] = desc["GlobalTableWitnesses"]
        peer.call("SyncReplicas", payload)
        return True

    def _task_index_update(self, peer: PeerClient, task: dict) -> bool:
        """A GSI Create or Delete made here, for a replica (control.propagate_index_updates)."""
        if self._description(task["name"], task["table_id"]) is None:
            return True  # the table is gone here
        answer = peer.call("ReplicateIndexUpdates", {"TableName": task["name"], "SourceRegion": self.region,
                                                     "Request": task["request"]})
        return answer.get("Done", True)  # not yet when the replica is building another index

    def _task_replica_update(self, peer: PeerClient, task: dict) -> bool:
        """ReplicaUpdates' Update for that replica's region (control._queue_member_update)."""
        if self._description(task["name"], task["table_id"]) is None:
            return True
        answer = peer.call("ReplicateReplicaUpdate", {"TableName": task["name"], "SourceRegion": self.region,
                                                      "Update": task["spec"]})
        return answer.get("Done", True)  # not yet while that table is being changed

    def _task_ttl_update(self, peer: PeerClient, task: dict) -> bool:
        """An UpdateTimeToLive made here, for a replica (control.propagate_time_to_live)."""
        if self._description(task["name"], task["table_id"]) is None:
            return True
        peer.call("ReplicateTimeToLive", {"TableName": task["name"], "SourceRegion": self.region,
                                          "TimeToLiveSpecification": task["spec"]})
        return True

    def _task_autoscaling_update(self, peer: PeerClient, task: dict) -> bool:
        """UpdateTableReplicaAutoScaling's changes for a replica's region (``replica_scaling``)."""
        if self._description(task["name"], task["table_id"]) is None:
            return True
        peer.call("ReplicateAutoScaling", {"TableName": task["name"], "SourceRegion": self.region,
                                           "Changes": task["changes"]})
        return True

    def _task_mrsc_leave(self, peer: PeerClient, task: dict) -> bool:
        """Make an MRSC table a single-Region table here (``strong.leave``)."""
        from shoal.replication import strong

        return strong.leave(self.engine, self.catalog, self.region, task, peer)

    def _task_drop_witness(self, peer: PeerClient, task: dict) -> bool:
        peer.call("DeleteWitness", {"TableName": task["name"], "SourceRegion": self.region})
        return True

    def _task_legacy_join(self, peer: PeerClient, task: dict) -> bool:
        """Send a 2017.11.29 global table's record (this region left it: DeleteTable)."""
        peer.call("LegacyJoin", {"TableName": task["name"], "SourceRegion": self.region, "GlobalTable": task["record"]})
        return True

    def _task_drop(self, peer: PeerClient, task: dict) -> bool:
        peer.call("DeleteReplica", {"TableName": task["name"], "SourceRegion": self.region})
        return True

    def _task_copy(self, peer: PeerClient, task: dict) -> bool:
        """Send the next chunk of the table's items with their versions."""
        with self.engine.write() as txn:  # versions of every local write so far
            versions.index_local(txn, replica_apply.global_tables(txn, self.catalog))
        items = []
        with self.engine.read() as txn:
            table = self.catalog.get(txn, self.region, task["name"])
            if table is None or table.table_id != task["table_id"]:
                return True
            start = bytes.fromhex(task["after"]) + b"\0" if task["after"] else table.prefix
            stop = _prefix_end(table.prefix)
            last = None
            for key, raw in txn.scan("items", start, stop):
                key = bytes(key)
                item = orjson.loads(memoryview(raw)[4:])
                version = versions.read_version(txn, key)
                time_ms, origin, seq = version[0] if version is not None else versions.ZERO
                items.append({"time": time_ms, "origin": origin, "seq": seq, "keys": key_of(table, item),
                              "new": item})
                last = key
                if len(items) >= BATCH:
                    break
        if items:
            peer.call("CopyItems", {"TableName": task["name"], "SourceRegion": self.region, "Records": items})
            task["after"] = last.hex()
        return len(items) < BATCH

    def _task_activate(self, peer: PeerClient, task: dict) -> bool:
        """The copy is made: send the held changes from now on, make the new
        replica ACTIVE there first (so that a client seeing ACTIVE here can
        use it), then here, and tell the other replicas."""
        from shoal.api.catalog import update_description

        with self.engine.write() as txn:
            txn.delete("meta", replica_apply.hold_key(task["peer"], task["table_id"]))
        desc = self._description(task["name"], task["table_id"])
        if desc is None:
            return True
        everyone = [{**r, "ReplicaStatus": "ACTIVE"} if r["RegionName"] == task["peer"] else r
                    for r in control.replica_set(desc, self.region)]
        peer.call("SyncReplicas", {"TableName": task["name"], "SourceRegion": self.region, "Replicas": everyone})

        def change(desc: dict) -> None:
            for entry in desc.get("Replicas") or ():
                if entry["RegionName"] == task["peer"]:
                    entry["ReplicaStatus"] = "ACTIVE"
                    entry.pop("ReplicaStatusPercentProgress", None)
            if not any(r["ReplicaStatus"] == "CREATING" for r in desc.get("Replicas") or ()):
                desc["TableStatus"] = "ACTIVE"

        with self.engine.write() as txn:
            updated = update_description(txn, self.region, task["name"], task["table_id"], change, self.catalog.keys)
            for entry in (updated.description.get("Replicas") or ()) if updated is not None else ():
                if entry["RegionName"] != task["peer"]:
                    control.queue_task(txn, {"kind": "sync", "table_id": task["table_id"], "name": task["name"],
                                             "peer": entry["RegionName"]})
        return True

    # -- streaming ------------------------------------------------------------------------

    def flush(self) -> None:
        """Store what the peers took and is not stored yet (``_store_sent``)."""
        if self._sent or self._points:
            with self.engine.write() as txn:
                self._store_sent(txn)

    def _store_sent(self, txn) -> None:
        """Move the cursors of the batches the peers took, and write their
        ReplicationLatency values.  This waits for the next round's
        transaction (``_index``, or ``flush`` when it has nothing to fold):
        a transaction of its own per round cost a commit with its fsyncs,
        under LMDB's writer lock, which the region's own writes wait for.  A
        peer that took a batch and is resent it after a crash before that
        commit applies it again, harmlessly: last writer wins by the
        records' own versions."""
        for consumer, was, last in self._sent:
            if consumer_cursor(txn, consumer) == was:  # not dropped nor moved meanwhile
                advance_consumer(txn, consumer, last)
        if self._points:
            from shoal.metrics.store import write_points

            write_points(txn, self._points)
        self._sent, self._points = [], {}

    def _send(self) -> bool:
        """Send every (peer, table) cursor's next batch (stored by the next
        round: ``_store_sent``); True while a cursor has more than a batch.

        Every batch is read in one read snapshot first, so that the peers at
        one cursor are sent the same batch, read and encoded once, up to the
        same indexer position (the region's writes go on meanwhile)."""
        with self.engine.read() as txn:
            head = head_position(txn)
            cursors = [(name, cursor) for name, (cursor, _) in consumers(txn).items()
                       if name.startswith("replica/") and cursor < head]
            if not cursors:
                return False
            indexed = consumer_cursor(txn, versions.INDEXER)
            tables = replica_apply.global_tables(txn, self.catalog)
            batches: dict = {}  # (table id, cursor) -> (record times, position read to, more, body)
            plan = []
            for name, cursor in cursors:
                peer_region, table_id = name[len("replica/"):].rsplit("/", 1)
                peer = self._available(peer_region)
                if peer is None or txn.get("meta", replica_apply.hold_key(peer_region, table_id)) is not None:
                    continue
                if self._held and self._held.get((peer_region, table_id), 0.0) > time.monotonic():
                    continue
                table = tables.get(table_id)
                if table is not None and authorization.refused(txn, table):
                    continue  # its policy denies replication here: its records wait (one cached check)
                if table is not None and (table_id, cursor) not in batches:
                    batches[table_id, cursor] = self._batch(txn, table, cursor, indexed)
                plan.append((peer, table_id, table, name, cursor))
        busy = False
        queues: dict[str, list] = {}  # peer region -> its cursors' batches, sent one after another
        for entry in plan:
            peer, table_id, table, name, cursor = entry
            if table is None:  # deleted here: stop keeping its records
                with self.engine.write() as txn:
                    replica_apply.unfollow(txn, peer.region, table_id)
                    replica_apply.unmark_global(txn, table_id)
                continue
            queues.setdefault(peer.region, []).append(entry)
        while queues:
            # One batch to each peer at a time, every request sent before any answer is read: the
            # peers apply and commit theirs at the same time.
            wave = []
            for region in list(queues):
                entry = queues[region].pop(0)
                if not queues[region]:
                    del queues[region]
                peer, table_id, table, name, cursor = entry
                if peer.retry_at > time.monotonic():  # failed this round already
                    continue
                batch = batches[table_id, cursor]
                if batch[0]:
                    try:
                        peer.begin("ApplyChanges", body=batch[3])
                    except control_errors() as exc:
                        self._failed(peer, exc)
                        continue
                wave.append((entry, batch, peer.heard_at))
            for (peer, table_id, table, name, cursor), batch, heard in wave:
                try:
                    busy = self._sent_batch(peer, table, name, cursor, batch) or busy
                except control_errors() as exc:
                    if self._held_by_peer(peer, table_id, exc):
                        continue
                    self._failed(peer, exc)
                    continue
                if self._held:
                    self._held.pop((peer.region, table_id), None)
                if peer.heard_at != heard:  # a batch went
                    self._succeeded(peer)
        return busy

    def _held_by_peer(self, peer: PeerClient, table_id: str, exc: Exception) -> bool:
        """Whether ``exc`` is the peer's refusal of changes to a table that is
        INACCESSIBLE_ENCRYPTION_CREDENTIALS there, whose policy denies
        replication there (REPLICATION_NOT_AUTHORIZED), or is no replica there
        (``protocol.apply_changes``): then the cursor stays where it is (the
        records are kept) and that (peer, table) is tried again after
        ``control.KEY_CHECK_S``, once the peer's key check may have found the
        key usable (or a replica set without that region has stopped it).  The peer answered,
        so it is reachable: its other tables go on, and it is not shown
        REGION_DISABLED."""
        if not isinstance(exc, PeerError) or exc.status != 400 or not (
                b"ReplicaInaccessibleException" in exc.body or b"NotAReplicaException" in exc.body
                or b"ReplicationNotAuthorizedException" in exc.body):
            return False
        self._held[peer.region, table_id] = time.monotonic() + control.KEY_CHECK_S
        peer.heard_at = time.monotonic()
        self._succeeded(peer)
        return True

    def _batch(self, txn, table, cursor: int, indexed: int | None) -> tuple[list, int, bool, bytes | None]:
        """(record times, position read to, more, ApplyChanges body) after ``cursor``."""
        # An MRSC table's writes reach the other regions by consensus
        # (shoal.replication.strong), not by last writer wins: passed over.
        pieces, times, last, more = self._pending(txn, table.table_id, cursor, indexed,
                                                  send=not control.is_strong(table.description))
        body = b"".join((b'{"TableName":', orjson.dumps(table.name), b',"SourceRegion":',
                         orjson.dumps(self.region), b',"Records":[', b",".join(pieces), b"]}")) if pieces else None
        return times, last, more, body

    def _sent_batch(self, peer: PeerClient, table, consumer: str, cursor: int, batch: tuple) -> bool:
        """Read the peer's answer to a batch ``begin`` sent (none was for a
        batch without records), and keep its cursor to store; True if more
        records remain past it."""
        times, last, more, _body = batch
        if times:
            peer.end()
            if self.metrics:  # the peer has them durably now
                now_ms = self.clock() * 1000
                self._add_point(self._points, "ReplicationLatency", table.name, peer.region, "Milliseconds",
                                [max(0.0, now_ms - t) for t in times])
        if last != cursor:
            self._sent.append((consumer, cursor, last))
        return more

    def _pending(self, txn, table_id: str, cursor: int, indexed: int | None,
                 send: bool = True) -> tuple[list, list, int, bool]:
        """This region's own changes of the table after ``cursor``, up to the
        indexer's cursor (their versions are known), whole write times at a
        time: (each record's JSON, each record's time, the position read to,
        whether more remain).

        A record is ``{"time", "seq", "origin", "keys", "new"}`` (the
        protocol's ``ApplyChanges``; a receiver reads it as a JSON object,
        so the order of its fields does not matter), spliced from the bytes
        the change log holds: nothing of an item is decoded or encoded again
        on its way to the peers.  A local write in ``item_change``'s layout
        (nearly every one) is spliced here in a few byte searches
        (``_splice``); any other record goes through
        ``versions.local_change``.  This loop runs once for every write of a
        global table, so each step of it is a measurable part of what being a
        replica source costs."""
        own = self.region + ":"
        own_field = b'","origin":"' + own.encode()
        needle = _TABLE_FIELD + table_id.encode()
        pieces: list[bytes] = []
        times: list[int] = []
        last, seen, last_ms = cursor, 0, None
        origins: dict[str, bytes] = {}
        bumped = None
        decoded = self._decoded
        limit = BATCH * SCAN_FACTOR
        unpack_seq, unpack_time = _SEQ.unpack, _TIME.unpack_from
        for key, value in txn.scan("changes", _SEQ.pack(cursor + 1)):
            seq = unpack_seq(key)[0]
            if indexed is not None and seq > indexed:
                return pieces, times, last, False
            if seen >= limit:
                return pieces, times, last, True
            if value[_TIME_SIZE:_TABLE_ID_END] != needle:
                if value[_TIME_SIZE:_TABLE_START] == _TABLE_FIELD or not _decoded_table_is(value, table_id):
                    last, seen = seq, seen + 1
                    continue  # another table's record
            ms = unpack_time(value)[0]
            if send and value.startswith(own_field, _TABLE_ID_END):
                piece = _splice(value)
                if piece is not None:  # a local write in item_change's layout
                    if len(pieces) >= BATCH and ms != last_ms:
                        return pieces, times, last, True
                    last, seen, last_ms = seq, seen + 1, ms
                    if bumped is None:  # the times index_local moved, from here to the indexer's cursor
                        bumped = versions.bumped_times(txn, seq, indexed)
                    sent_ms = bumped.get(seq, ms)
                    pieces.append(b'{"time":%d,"seq":%d,%b' % (sent_ms, seq, piece))
                    times.append(sent_ms)
                    continue
            change = decoded.get(seq)  # indexed this round: sliced already
            if change is None:
                change = versions.local_change(value)
            ms = change[0] if change is not None else ms
            if len(pieces) >= BATCH and ms != last_ms:
                return pieces, times, last, True
            last, seen = seq, seen + 1
            if not send or change is None or not change[1].startswith(own):
                continue
            last_ms = ms
            if bumped is None:
                bumped = versions.bumped_times(txn, seq, indexed)
            _, origin, keys_json, new_json = change
            origin_json = origins.get(origin)
            if origin_json is None:
                origin_json = origins[origin] = orjson.dumps(origin)
            ms = bumped.get(seq, ms)
            pieces.append(b'{"time":%d,"origin":%b,"seq":%d,"keys":%b,"new":%b}'
                          % (ms, origin_json, seq, keys_json, b"null" if new_json is None else new_json))
            times.append(ms)
        return pieces, times, last, False


_SEQ = struct.Struct(">Q")
_TIME = struct.Struct(">Q")
_TABLE_FIELD = b'{"table":"'
_TIME_SIZE = _TIME.size
_TABLE_START = _TIME_SIZE + len(_TABLE_FIELD)
_TABLE_ID_END = _TABLE_START + 36  # a table id is a 36-character UUID
_ORIGIN_AT = _TABLE_ID_END + 2  # '"origin":' after the table id's closing quote and comma
_KEYS_FIELD = b'","keys":'  # the origin's closing quote, then the keys
_KEYS_END = b'"}},"old":'  # a key value's closing quote and brace, the keys' brace, the old image
_NEW_FIELD = b',"new":'
_USER_IDENTITY_FIELD = b'"userIdentity"'
_ORIGIN_TEXT_AT = _ORIGIN_AT + len(b'"origin":"')  # the origin's first character
_KEYS_FIELD_LEN = len(_KEYS_FIELD)
_KEYS_END_LEN = len(_KEYS_END)
_NO_OLD_IMAGE = b'null,"new":'  # what follows '"old":' in a new item's record


def _splice(value: bytes) -> bytes | None:
    """``"origin":..,"keys":..,"new":..}`` of a stored change of an item
    written here, cut out of its bytes without the image before; None for
    any other record (a change of the table, a peer's write, which carries
    ``originSeq`` after the origin, or one whose layout
    ``changelog.read_item_befores`` describes as decoded instead: an
    attribute named ``new``, a ``userIdentity``).  The caller has checked
    that the table id and this region's origin open the record."""
    quote = value.find(_KEYS_FIELD, _ORIGIN_AT)  # the origin's end: an origin holds no quote
    if quote < 0 or value.find(b'"', _ORIGIN_TEXT_AT, quote) >= 0:
        return None
    keys_end = value.find(_KEYS_END, quote + _KEYS_FIELD_LEN)
    if keys_end < 0:
        return None
    if value.startswith(_NO_OLD_IMAGE, keys_end + _KEYS_END_LEN) and value.endswith(b"}}}"):
        # A new item (nearly every write): the first ',"new":' is the one after "old":null, so
        # an attribute named "new" further on is no ambiguity, and what follows is the image to
        # the record's end: a userIdentity is recorded only with a delete (``item_change``), whose
        # record ends with the identity's closing quote and braces, not with an item's "}}".
        return value[_ORIGIN_AT:keys_end + 3] + value[keys_end + _KEYS_END_LEN + 4:]
    new = value.find(_NEW_FIELD, keys_end + _KEYS_END_LEN)
    if new < 0 or value.find(_NEW_FIELD, new + len(_NEW_FIELD)) >= 0 \
            or value.find(_USER_IDENTITY_FIELD, new) >= 0:
        return None
    return value[_ORIGIN_AT:keys_end + 3] + value[new:]


def _decoded_table_is(value, table_id: str) -> bool:
    """Whether a record not written in this module's layout (its first
    field is not the table) is of ``table_id``: decoded to find out."""
    return decode_change(value)[1]["table"] == table_id


def _name_os_thread(name: bytes) -> None:
    """Give the calling thread ``name`` as the kernel shows it (/proc's
    comm, top, py-spy): Python 3.11 does not, and a profile or a CPU reading
    per thread must tell the replication thread from the event loop."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: names are only a convenience
        pass


#: The tasks that carry a table's settings to a replica (the service principal's ReplicateSettings):
#: held while replication to or from that replica is not authorized.
SETTINGS_TASKS = frozenset({"index_update", "replica_update", "ttl_update"})


def _not_authorized(exc: Exception) -> bool:
    """A peer's ``ReplicationNotAuthorizedException``."""
    return isinstance(exc, PeerError) and exc.status == 400 and b"ReplicationNotAuthorizedException" in exc.body


def control_errors():
    return (PeerError, OSError, ValueError)


def _prefix_end(prefix: bytes) -> bytes:
    return (int.from_bytes(prefix, "big") + 1).to_bytes(len(prefix), "big")


def _ttl_spec(setting: dict | None) -> dict | None:
    if not setting or setting.get("status") != "ENABLED":
        return None
    return {"Enabled": True, "AttributeName": setting["attr"]}
