"""The LMDB engine: each key space is an LMDB named database in one environment.

Why LMDB
    A copy-on-write B+tree in a memory map: a read is a few pointer hops in
    mapped memory with no copying inside LMDB, readers never block writers or
    each other, and many processes may open the same environment at once
    (LMDB's lock file gives single-writer, many-readers across processes).

Processes
    Each worker process opens its own ``LmdbEngine`` after it has forked; an
    environment must never be used in a process other than the one that opened
    it.  An engine inherited through ``fork()`` is disabled in the child (it
    raises ``RuntimeError``) rather than silently corrupting the lock table.
    Writers in different processes and threads queue on LMDB's robust writer
    mutex; ``write()`` blocks (with the GIL released) until it is their turn.

Durability
    With ``sync=True`` (the default) a commit writes the transaction's new
    pages and ``fdatasync``-s the data file while it holds LMDB's writer lock,
    then writes the alternate meta page (the root pointer) without syncing it
    (``metasync=False``); ``flush()`` then syncs the meta page, outside the
    lock.  ``write()`` calls ``flush()`` before it returns, and group commit
    acknowledges a group only after its ``flush()``, so an acknowledged
    transaction survives ``kill -9`` and power loss.  A commit becomes visible
    only through the meta page, and the meta page is written only after the
    pages it points to are on disk, so a crash at any moment leaves either the
    previous or the new commit intact (no recovery step and no write-ahead log
    are needed; at worst an unacknowledged last commit is undone).  Moving the
    second sync out of the lock lets another process (worker) commit while
    this one waits for its meta page.  With ``sync=False`` nothing is
    fsync'd: a killed process loses nothing (its writes are already in the OS
    page cache), but an OS crash or power loss may drop recent commits.
    A reader slot left by a
    killed process is reclaimed when the next engine opens (``reader_check``).

Keys longer than LMDB's limit
    LMDB keys are at most 511 bytes, while a DynamoDB key may reach about 3 KB
    (2048-byte partition key plus 1024-byte sort key).  Keys of up to
    ``_DIRECT_MAX`` bytes, i.e. all common ones, are stored as they are.  A
    longer key ``k`` is split at ``_DIRECT_MAX``: its space holds a *group
    header* under ``k[:_DIRECT_MAX] + b"\\0"`` (the only stored keys of length
    ``_DIRECT_MAX + 1``) whose value is an 8-byte group id, and the internal
    ``overflow`` database holds the entry under ``group_id + k[_DIRECT_MAX:]``,
    recursively split the same way if still too long.  Because no stored key
    other than the prefix itself starts with a header's prefix, the header sorts
    exactly where its group's keys belong, so a scan yields the group in place
    and key order is preserved end to end.  Group ids come from a counter kept
    in the overflow database under eight zero bytes (id 0 is never issued).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref

import lmdb

from shoal.storage.engine import SPACES, Engine, GroupPoisoned, ReadTxn, WriteTxn

#: Address space reserved for the memory map: sparse, so it costs nothing until
#: used; the data file grows only as pages are written.
DEFAULT_MAP_SIZE = (1 << 40) if sys.maxsize > 2**32 else (1 << 30)

#: Reader-table slots (one per concurrently open read transaction across all
#: processes; each slot is 64 bytes of the lock file).
DEFAULT_MAX_READERS = 4096

_OVERFLOW_DB = b"~overflow"
_DIRECT_MAX = 500
_HEADER_LEN = _DIRECT_MAX + 1
_GID_LEN = 8
_COUNTER_KEY = bytes(_GID_LEN)

_live_engines: "weakref.WeakSet[LmdbEngine]" = weakref.WeakSet()
# Environments inherited by a forked child: kept referenced so that the child
# never runs mdb_env_close on its parent's environment.
_inherited_envs: list = []


def _disable_after_fork() -> None:
    for engine in list(_live_engines):
        if engine._env is not None:
            _inherited_envs.append(engine._env)
            engine._env = None
            engine._forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disable_after_fork)


class LmdbEngine(Engine):
    """The default engine: an LMDB environment in directory ``path``."""

    def __init__(
        self,
        path,
        *,
        sync: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        max_readers: int = DEFAULT_MAX_READERS,
        create: bool = True,
    ) -> None:
        """Open (creating when ``create``) the environment in directory ``path``.

        ``sync=False`` trades durability against OS crashes for commit speed
        (see the module docstring).  ``map_size`` bounds the database size.
        """
        self.path = os.fspath(path)
        self.sync = sync
        self._forked = False
        self._local = threading.local()  # .group: the outer txn of a group commit
        self._env = lmdb.Environment(
            self.path,
            map_size=map_size,
            subdir=True,
            readonly=False,
            # The data pages are fsync'd inside the commit (under the writer
            # lock); the meta page is flushed by flush(), outside the lock:
            # see "Durability" above.
            metasync=False,
            sync=sync,
            readahead=False,  # random reads over data larger than RAM
            max_readers=max_readers,
            max_dbs=len(SPACES) + 1,
            lock=True,
            create=create,
            max_spare_txns=4,  # recycled read transactions: read() skips mdb_txn_begin
        )
        try:
            self._env.reader_check()
            self._dbs, self._overflow = self._open_spaces()
        except BaseException:
            self._env.close()
            self._env = None
            raise
        _live_engines.add(self)

    def _open_spaces(self):
        env = self._env
        with env.begin(write=True) as txn:
            dbs = {name: env.open_db(name.encode(), txn=txn, create=True) for name in SPACES}
            overflow = env.open_db(_OVERFLOW_DB, txn=txn, create=True)
        return dbs, overflow

    def _live_env(self):
        env = self._env
        if env is None:
            if self._forked:
                raise RuntimeError("an LmdbEngine cannot be used after fork(); open a new one in the child")
            raise RuntimeError("the storage engine is closed")
        return env

    def snapshot(self, path) -> None:
        """LMDB's own copy (``mdb_env_copy2`` with compaction): it reads
        through one read transaction, so writers go on meanwhile, and leaves
        out free pages.  ``path`` must not exist yet."""
        os.makedirs(path)
        self._live_env().copy(os.fspath(path), compact=True)

    def read(self, snapshot: bool = True) -> "LmdbReadTxn":
        """A snapshot; py-lmdb recycles the underlying read transaction, so this is cheap."""
        env = self._env
        if env is None:
            self._live_env()
        return LmdbReadTxn(env.begin(), self._dbs, self._overflow)

    def write(self) -> "LmdbWriteTxn":
        """A read-write transaction, taken when LMDB's writer lock is free."""
        env = self._env
        if env is None:
            self._live_env()
        group = getattr(self._local, "group", None)
        if group is not None:
            return LmdbGroupedWriteTxn(group, self._dbs, self._overflow)
        return LmdbWriteTxn(env.begin(write=True), self._dbs, self._overflow, self.flush)

    def flush(self) -> None:
        """Make every commit so far durable (fsync the meta page).  Releases
        the GIL and holds no lock, so it may run in another thread while
        this one goes on committing."""
        env = self._env
        if env is not None and self.sync:
            env.sync(True)

    @contextlib.contextmanager
    def group(self, *, flush: bool = True):
        """Run this thread's write() transactions in one outer transaction and
        commit it once at the end: see ``Engine.group``.

        The grouped transactions share the outer LMDB transaction directly
        (LMDB's nested transactions copy every page they touch, which costs
        more than the fsync they save).  A grouped transaction that fails
        before writing anything leaves no trace; one that fails after writing
        marks the group ``poisoned``, and the caller must then let the group
        abort (by raising) and redo its work without grouping.
        """
        env = self._env
        if env is None:
            self._live_env()
        if getattr(self._local, "group", None) is not None:
            yield self._local.group  # already grouping: the outer group commits
            return
        group = _Group(env.begin(write=True))
        self._local.group = group
        try:
            yield group
        except BaseException:
            self._local.group = None
            group.txn.abort()
            raise
        self._local.group = None
        if group.poisoned:
            group.txn.abort()
            raise GroupPoisoned("a grouped write failed after writing; redo the group ungrouped")
        group.txn.commit()
        if flush:
            self.flush()

    def close(self) -> None:
        """Close the environment; idempotent."""
        env = self._env
        if env is not None:
            self._env = None
            _live_engines.discard(self)
            env.close()

    def stats(self) -> dict:
        """Stored entries per space (a key over 500 bytes counts in ``overflow``),
        page size, last transaction id and the data size in bytes."""
        env = self._live_env()
        info = env.info()
        with env.begin() as txn:
            entries = {name: txn.stat(db)["entries"] for name, db in self._dbs.items()}
            overflow = txn.stat(self._overflow)["entries"]
            psize = txn.stat(self._overflow)["psize"]
        return {
            "engine": "lmdb",
            "entries": entries,
            "overflow_entries": overflow,
            "page_size": psize,
            "last_txnid": info["last_txnid"],
            "data_bytes": (info["last_pgno"] + 1) * psize,
            "map_size": info["map_size"],
            "readers_in_use": info["num_readers"],
        }

    def prewarm(self, should_stop=lambda: False) -> int:
        """Map every page of the data file into this process ahead of use.

        LMDB reads through a memory map, so the first touch of each page by a
        process costs a page fault (a disk read, too, when the page is not in
        the OS page cache), and on a table much larger than what recent
        requests touched these faults dominate a read.  This walks the used
        part of the file with ``madvise(MADV_POPULATE_READ)`` (Linux 5.14 and
        later) in 64 MiB steps: the pages are read into the page cache and
        mapped, so later reads fault no more.  The memory is the OS page
        cache (file pages, shared by the workers and reclaimable), which is
        why it counts in RSS but not in the anonymous part.  Returns the
        bytes mapped; 0 where the system cannot do it.
        """
        if self._closed_or_forked():
            return 0
        data_file = os.path.realpath(os.path.join(self.path, "data.mdb"))
        try:
            used = min(os.path.getsize(data_file), self.stats()["data_bytes"])
        except (OSError, RuntimeError):  # no file, or closed meanwhile
            return 0
        start = _mapping_start(data_file)
        if start is None:
            return 0
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        step = 64 << 20
        done = 0
        while done < used and not should_stop() and not self._closed_or_forked():
            length = min(step, used - done)
            if libc.madvise(start + done, length, _MADV_POPULATE_READ) != 0:
                break  # an older kernel (EINVAL), or the map is gone
            done += length
        return done

    def _closed_or_forked(self) -> bool:
        return self._env is None or self._forked

    def __repr__(self) -> str:
        return f"LmdbEngine({self.path!r}, sync={self.sync})"


_MADV_POPULATE_READ = 22  # <linux/mman.h>, Linux 5.14


def _mapping_start(path: str) -> int | None:
    """Where this process maps ``path`` (the lowest address), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as maps:
            starts = [int(line.split("-", 1)[0], 16) for line in maps if line.rstrip().endswith(" " + path)]
    except OSError:
        return None
    return min(starts) if starts else None


class LmdbReadTxn(ReadTxn):
    """A read snapshot (an LMDB read-only transaction)."""

    __slots__ = ("_txn", "_dbs", "_overflow")

    def __init__(self, txn, dbs, overflow) -> None:
        self._txn = txn
        self._dbs = dbs
        self._overflow = overflow

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._txn.abort()

    def get(self, space: str, key: bytes) -> bytes | None:
        """One B+tree lookup for keys of up to 500 bytes."""
        if 0 < len(key) <= _DIRECT_MAX:
            return self._txn.get(key, None, self._dbs[space])
        if not key:
            return None
        return _get_long(self._txn, self._dbs[space], self._overflow, key)

    def scan(self, space, start=None, stop=None, *, reverse=False):
        """Lazy cursor walk over ``start <= key < stop`` (see ``ReadTxn.scan``)."""
        db = self._dbs[space]  # an unknown space fails here, not at first next()
        if not start:
            start = None
        if stop is not None and not stop:
            return iter(())
        return _scan(self._txn, db, self._overflow, start, stop, reverse)


class _Group:
    __slots__ = ("txn", "poisoned")

    def __init__(self, txn) -> None:
        self.txn = txn
        self.poisoned = False


class LmdbWriteTxn(LmdbReadTxn, WriteTxn):
    """A read-write LMDB transaction; commits on normal exit, aborts on exception."""

    __slots__ = ("_flush",)

    one_writer = True  # LMDB's single writer

    def __init__(self, txn, dbs, overflow, flush=None) -> None:
        super().__init__(txn, dbs, overflow)
        self._flush = flush

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._txn.commit()  # data pages fsync'd unless sync=False; LMDB aborts it on failure
            self._flush()  # then the meta page: durable on return
        else:
            self._txn.abort()

    def put(self, space: str, key: bytes, value: bytes) -> None:
        """Insert or replace; keys over 500 bytes go through the overflow groups."""
        if 0 < len(key) <= _DIRECT_MAX:
            self._txn.put(key, value, True, True, False, self._dbs[space])
        elif not key:
            raise ValueError("storage keys must not be empty")
        else:
            _put_long(self._txn, self._dbs[space], self._overflow, key, value)

    def delete(self, space: str, key: bytes) -> bool:
        """Remove ``key``; True if it existed."""
        if 0 < len(key) <= _DIRECT_MAX:
            return self._txn.delete(key, b"", self._dbs[space])
        if not key:
            return False
        return _delete_long(self._txn, self._dbs[space], self._overflow, key)


class LmdbGroupedWriteTxn(LmdbWriteTxn):
    """A write() inside a group: works on the group's outer transaction and
    leaves commit to the group; remembers whether it wrote, so that a failure
    after writing can poison the group instead of leaving half a change."""

    __slots__ = ("_group", "_wrote")

    def __init__(self, group, dbs, overflow) -> None:
        super().__init__(group.txn, dbs, overflow, None)
        self._group = group
        self._wrote = False

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._wrote:
            self._group.poisoned = True

    def put(self, space: str, key: bytes, value: bytes) -> None:
        self._wrote = True
        super().put(space, key, value)

    def delete(self, space: str, key: bytes) -> bool:
        self._wrote = True
        return super().delete(space, key)


# ------------------------------------------------------------ long keys


def _header(key: bytes) -> bytes:
    return key[:_DIRECT_MAX] + b"\0"


def _get_long(txn, db, overflow, key: bytes) -> bytes | None:
    gid = txn.get(_header(key), None, db)
    if gid is None:
        return None
    inner = gid + key[_DIRECT_MAX:]
    if len(inner) <= _DIRECT_MAX:
        return txn.get(inner, None, overflow)
    return _get_long(txn, overflow, overflow, inner)


def _put_long(txn, db, overflow, key: bytes, value: bytes) -> None:
    header = _header(key)
    gid = txn.get(header, None, db)
    if gid is None:
        gid = _new_group_id(txn, overflow)
        txn.put(header, gid, True, True, False, db)
    inner = gid + key[_DIRECT_MAX:]
    if len(inner) <= _DIRECT_MAX:
        txn.put(inner, value, True, True, False, overflow)
    else:
        _put_long(txn, overflow, overflow, inner, value)


def _delete_long(txn, db, overflow, key: bytes) -> bool:
    header = _header(key)
    gid = txn.get(header, None, db)
    if gid is None:
        return False
    inner = gid + key[_DIRECT_MAX:]
    if len(inner) <= _DIRECT_MAX:
        existed = txn.delete(inner, b"", overflow)
    else:
        existed = _delete_long(txn, overflow, overflow, inner)
    if existed and _group_is_empty(txn, overflow, gid):
        txn.delete(header, b"", db)
    return existed


def _new_group_id(txn, overflow) -> bytes:
    last = txn.get(_COUNTER_KEY, None, overflow)
    number = int.from_bytes(last, "big") + 1 if last else 1
    gid = number.to_bytes(_GID_LEN, "big")
    txn.put(_COUNTER_KEY, gid, True, True, False, overflow)
    return gid


def _group_end(gid: bytes) -> bytes:
    return (int.from_bytes(gid, "big") + 1).to_bytes(_GID_LEN, "big")


def _group_is_empty(txn, overflow, gid: bytes) -> bool:
    cursor = txn.cursor(overflow)
    try:
        return not cursor.set_range(gid) or cursor.key()[:_GID_LEN] != gid
    finally:
        cursor.close()


# ------------------------------------------------------------ scans


def _scan(txn, db, overflow, start, stop, reverse):
    """Yield ``(key, value)`` for ``start <= key < stop`` from ``db``, expanding
    overflow groups in place.

    Bounds are mapped into stored-key space: a long ``start`` begins at its
    group's header (the short key equal to its prefix is below it), and a long
    ``stop`` ends just after its group's header (``prefix + b"\\0\\0"``), so the
    group is visited and trimmed by the inner scan.
    """
    low = start if start is None or len(start) <= _DIRECT_MAX else _header(start)
    high = stop if stop is None or len(stop) <= _DIRECT_MAX else _header(stop) + b"\0"
    if reverse:
        return _scan_backward(txn, db, overflow, start, stop, low, high)
    return _scan_forward(txn, db, overflow, start, stop, low, high)


def _scan_forward(txn, db, overflow, start, stop, low, high):
    cursor = txn.cursor(db)
    if not (cursor.first() if low is None else cursor.set_range(low)):
        return
    for key, value in cursor.iternext():
        if high is not None and key >= high:
            return
        if len(key) == _HEADER_LEN:
            yield from _scan_group(txn, overflow, key, value, start, stop, False)
        else:
            yield key, value


def _scan_backward(txn, db, overflow, start, stop, low, high):
    cursor = txn.cursor(db)
    if high is None:
        positioned = cursor.last()
    elif cursor.set_range(high):
        positioned = cursor.prev()  # the last key below the exclusive bound
    else:
        positioned = cursor.last()  # every stored key is below the bound
    if not positioned:
        return
    for key, value in cursor.iterprev():
        if low is not None and key < low:
            return
        if len(key) == _HEADER_LEN:
            yield from _scan_group(txn, overflow, key, value, start, stop, True)
        else:
            yield key, value


def _scan_group(txn, overflow, header, gid, start, stop, reverse):
    """The members of one overflow group that lie in ``[start, stop)``.

    A bound only trims the group when it shares the group's prefix; otherwise
    reaching the header already proves every member is inside that bound.
    """
    prefix = header[:_DIRECT_MAX]
    inner_start = gid
    if start is not None and len(start) > _DIRECT_MAX and start[:_DIRECT_MAX] == prefix:
        inner_start = gid + start[_DIRECT_MAX:]
    inner_stop = _group_end(gid)
    if stop is not None and len(stop) > _DIRECT_MAX and stop[:_DIRECT_MAX] == prefix:
        inner_stop = gid + stop[_DIRECT_MAX:]
    for key, value in _scan(txn, overflow, overflow, inner_start, inner_stop, reverse):
        yield prefix + key[_GID_LEN:], value
