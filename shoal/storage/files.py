"""Small files written whole: replaced atomically and durably, never half-written."""

from __future__ import annotations

import os


def write_atomically(path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to a temporary file beside ``path`` with ``mode``, sync
    it, and rename it over ``path``: a reader sees the old file or the new
    one.  (The directory entry itself is durable once the caller syncs the
    directory, where that matters.)"""
    path = os.fspath(path)
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # O_CREAT's mode is narrowed by the umask, and ignored for an old file
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise
