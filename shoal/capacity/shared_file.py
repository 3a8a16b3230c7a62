"""The file a data directory's workers share buckets through: mapped into
each process, its layout recognised by a magic header."""

from __future__ import annotations

import fcntl
import mmap
import os


def map_shared(path: str, magic: bytes, size: int) -> tuple[int, mmap.mmap]:
    """(file descriptor, mapping) of the ``size``-byte file at ``path`` that
    starts with ``magic``; a missing file, or one of another layout, is made
    afresh (buckets are not data), under a lock of the header's bytes so that
    workers starting together make it once."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.lockf(fd, fcntl.LOCK_EX, len(magic), 0)
    try:
        if os.fstat(fd).st_size != size or os.pread(fd, len(magic), 0) != magic:
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
            os.pwrite(fd, magic, 0)
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, len(magic), 0)
    return fd, mmap.mmap(fd, size)
