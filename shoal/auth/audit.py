"""The audit log: one JSON line per security-relevant event.

What is written (and only that, so allowed requests cost nothing here):

* every authentication failure (bad or missing signature, unknown key,
  expired token...), decision ``deny``;
* every authorization decision that denies, decision ``deny``;
* every IAM change: ``shoal iam`` commands and STS AssumeRole (which creates
  temporary credentials), decision ``allow`` (or ``deny``/``error`` when it
  was refused).

A line holds ``time`` (ISO-8601 UTC, milliseconds), ``principal`` (ARN, or the
access key when the signer is unknown), ``source`` (client address),
``action``, ``resource``, ``decision``, ``reason`` and ``request_id``.

Several processes write one file.  Each opens it with ``O_APPEND`` and writes
a whole line with a single ``write``, so lines never interleave.  Rotation by
size is serialized by an ``flock`` on ``<path>.lock``: the writer that sees the
file past the limit takes the lock, checks again that the path still names
the file it wrote to (another process may have rotated first), and renames
``path`` -> ``path.1`` -> ... -> ``path.<backups>``.  Every writer compares
its descriptor with the path before writing and reopens when the file was
rotated underneath it.  One shared file (rather than one per process) keeps
the log in time order and easy to read and ship; the lock is only touched on
rotation, which is rare.
"""

from __future__ import annotations

import base64

import fcntl
import os
import threading
import time

import orjson

DEFAULT_FILE = "audit.log"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5


def iso_now(now: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2024-05-01T12:00:00.123Z``."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


# A sealed line: this mark, then base64 of nonce + AES-GCM ciphertext.
SEALED_MARK = b"sealed:"
SEAL_CONTEXT = b"shoal audit log"


class AuditLog:
    """An append-only JSON-lines file, rotated by size, shared by processes."""

    def __init__(self, path, *, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS,
                 engine=None) -> None:
        """``engine``: the data directory's engine; when it is encrypted at rest
        (it has ``seal_record``), every line is sealed too, so the log leaks
        nothing a data file would not."""
        self.path = os.fspath(path)
        self._seal = getattr(engine, "seal_record", None)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None

    def record(self, *, principal: str | None, source: str | None, action: str, resource: str | None,
               decision: str, reason: str, request_id: str | None = None, now: float | None = None) -> None:
        """Append one event.  Failing to write is reported on stderr by the
        caller's logging, never to the client: auditing must not turn a
        denial into a 500."""
        line = orjson.dumps({
            "time": iso_now(now), "principal": principal, "source": source, "action": action,
            "resource": resource, "decision": decision, "reason": reason, "request_id": request_id,
        })
        if self._seal is not None:
            line = SEALED_MARK + base64.b64encode(self._seal(line, SEAL_CONTEXT))
        line += b"\n"
        with self._lock:
            fd = self._current_fd()
            os.write(fd, line)
            if os.fstat(fd).st_size >= self.max_bytes:
                self._rotate()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self._inode = None

    # -- files ----------------------------------------------------------------------------

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        st = os.fstat(fd)
        self._fd, self._inode = fd, (st.st_dev, st.st_ino)
        return fd

    def _current_fd(self) -> int:
        """Our descriptor, reopened when the path no longer names its file."""
        if self._fd is None:
            return self._open()
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self._inode
        except FileNotFoundError:
            same = False
        if same:
            return self._fd
        os.close(self._fd)
        return self._open()

    def _rotate(self) -> None:
        """Rename the full file away, under the rotation lock."""
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return
            if (st.st_dev, st.st_ino) != self._inode or st.st_size < self.max_bytes:
                return  # another process rotated it already
            for n in range(self.backups - 1, 0, -1):
                older = f"{self.path}.{n}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{n + 1}")
            if self.backups > 0:
                os.replace(self.path, f"{self.path}.1")
            else:
                os.unlink(self.path)
            os.close(self._fd)
            self._open()


def read_lines(path, engine=None) -> list[dict]:
    """The records of an audit file (for tests and tools); sealed lines are
    opened with ``engine`` (the encrypted data directory's engine)."""
    try:
        with open(path, "rb") as f:
            lines = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        if line.startswith(SEALED_MARK):
            if engine is None or not hasattr(engine, "open_record"):
                raise ValueError(f"{path} is sealed: give the data directory's master key")
            line = engine.open_record(base64.b64decode(line[len(SEALED_MARK):]), SEAL_CONTEXT)
        records.append(orjson.loads(line))
    return records
