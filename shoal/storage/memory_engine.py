"""The in-memory engine: each key space is a sorted list of keys and a dict.

Why it exists
    The unit tests of the API layers need an engine, not LMDB: opening an LMDB
    environment per test costs a directory, a data file and a memory map,
    while this engine costs two empty containers per space.  It is also the
    reference model of ``shoal.storage.engine``'s rules written as plainly as
    possible: the conformance suite (``tests/unit/test_storage_engine.py``)
    runs against it and LMDB alike, and a PostgreSQL engine will be checked
    against the same rules.  When an engine and this one disagree, one of them
    (or the suite) has a bug.

Limits
    Nothing is durable: the data lives in this process and is gone when the
    engine is closed or the process ends.  It is one process only: there is
    no file to share, so workers cannot open "the same" engine, and an engine
    inherited through ``fork()`` is a private copy in the child.  Every commit
    copies the spaces it changed (see below), so a commit costs time in
    proportion to the size of those spaces: fine for test-sized data, not for
    millions of items.

Snapshots
    The committed state is a dict from space name to an immutable
    ``_Space`` (a sorted ``list`` of keys and a ``dict`` of values), and that
    dict is never changed, only replaced whole by a commit.  ``read()`` takes a
    reference to the current dict: one attribute read, so it sees every space
    as of one commit, and later commits (which build new ``_Space`` objects)
    cannot change what it sees.

Writes
    One writer at a time, as in LMDB: ``write()`` takes the engine's writer
    lock (a thread opening ``write()`` while another thread's is open waits;
    a second ``write()`` in the thread already writing raises instead of
    deadlocking).  The first change a transaction makes to a space copies that
    space's list and dict; later changes go to the copies, which the
    transaction's own reads and scans see.  Commit publishes a new state dict
    holding the copies; abort drops them.  Group commit keeps one such
    transaction open for the whole group, exactly as the LMDB engine keeps one
    LMDB transaction, with the same ``GroupPoisoned`` rule.
"""

from __future__ import annotations

import contextlib
import threading

from bisect import bisect_left, bisect_right, insort

from shoal.storage.engine import SPACES, Engine, GroupPoisoned, ReadTxn, WriteTxn

__all__ = ["MemoryEngine", "GroupPoisoned"]


class _Space:
    """One key space: ``keys`` sorted (bytes compare as unsigned bytes) and
    ``values`` by key.  Immutable once committed."""

    __slots__ = ("keys", "values")

    def __init__(self, keys: list, values: dict) -> None:
        self.keys = keys
        self.values = values


class _Ended(dict):
    """The spaces of a finished transaction: any use is an error."""

    def __getitem__(self, space):
        raise RuntimeError("the transaction has ended")


_ENDED = _Ended()


def _as_bytes(data) -> bytes:
    # Callers pass bytes; a bytearray or memoryview would be unhashable or
    # would change under us after the put, so store a copy of those.
    return data if type(data) is bytes else bytes(data)


class MemoryEngine(Engine):
    """An engine whose data lives in this process's memory (see the module docstring)."""

    def __init__(self) -> None:
        self._committed: dict[str, _Space] | None = {name: _Space([], {}) for name in SPACES}
        self._writer = threading.Lock()
        self._writer_thread: int | None = None  # ident of the thread holding _writer
        self._local = threading.local()  # .group: this thread's open group commit
        self._commits = 0

    def _live(self) -> dict:
        committed = self._committed
        if committed is None:
            raise RuntimeError("the storage engine is closed")
        return committed

    def read(self, snapshot: bool = True) -> "MemoryReadTxn":
        """A snapshot: the state as of the last commit before this call."""
        return MemoryReadTxn(self._live())

    def write(self) -> "WriteTxn":
        """A read-write transaction, once no other thread is writing."""
        self._live()
        group = getattr(self._local, "group", None)
        if group is not None:
            return MemoryGroupedWriteTxn(group)
        return MemoryWriteTxn(self)

    def _begin(self) -> dict:
        """Take the writer lock; the committed state the transaction starts from."""
        me = threading.get_ident()
        if self._writer_thread == me:
            raise RuntimeError("this thread already has a write() open on this engine")
        self._writer.acquire()
        self._writer_thread = me
        if self._committed is None:  # closed while we waited
            self._end()
            self._live()
        return self._committed

    def _publish(self, changed: dict) -> None:
        """Make a transaction's changed spaces the committed state (the lock is held)."""
        committed = self._live()  # closed under an open transaction: the commit fails
        if changed:
            self._committed = {**committed, **changed}
            self._commits += 1

    def _end(self) -> None:
        self._writer_thread = None
        self._writer.release()

    @contextlib.contextmanager
    def group(self, *, flush: bool = True):
        """Run this thread's write() transactions in one transaction committed
        at the end: see ``Engine.group``.  ``flush`` changes nothing here (no
        commit is durable)."""
        self._live()
        if getattr(self._local, "group", None) is not None:
            yield self._local.group  # already grouping: the outer group commits
            return
        group = _Group(MemoryWriteTxn(self))
        self._local.group = group
        try:
            yield group
        except BaseException:
            self._local.group = None
            group.txn._abort()
            raise
        self._local.group = None
        if group.poisoned:
            group.txn._abort()
            raise GroupPoisoned("a grouped write failed after writing; redo the group ungrouped")
        group.txn._commit()

    def close(self) -> None:
        """Drop the data; idempotent.  Open read snapshots keep what they hold."""
        self._committed = None

    def stats(self) -> dict:
        """Entries per space and the number of commits so far."""
        committed = self._live()
        return {
            "engine": "memory",
            "entries": {name: len(space.keys) for name, space in committed.items()},
            "commits": self._commits,
        }

    def __repr__(self) -> str:
        return "MemoryEngine()" if self._committed is not None else "MemoryEngine(closed)"


class _Group:
    __slots__ = ("txn", "poisoned")

    def __init__(self, txn: "MemoryWriteTxn") -> None:
        self.txn = txn
        self.poisoned = False


class MemoryReadTxn(ReadTxn):
    """A read snapshot: references to the committed spaces of one moment."""

    __slots__ = ("_spaces",)

    def __init__(self, spaces: dict) -> None:
        self._spaces = spaces

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._spaces = _ENDED

    def get(self, space: str, key: bytes) -> bytes | None:
        """One dict lookup."""
        try:
            return self._spaces[space].values.get(key)
        except TypeError:  # an unhashable bytearray, which LMDB accepts too
            return self._spaces[space].values.get(bytes(key))

    def scan(self, space, start=None, stop=None, *, reverse=False):
        """Lazy walk of ``start <= key < stop`` (see ``ReadTxn.scan``)."""
        snapshot = self._spaces[space]  # an unknown space fails here, not at first next()
        start, stop = _bounds(start, stop)
        if stop == b"":
            return iter(())
        return _scan_snapshot(snapshot, start, stop, reverse)


def _bounds(start, stop):
    """Bounds as bytes, an empty ``start`` meaning unbounded (nothing is below b"")."""
    start = _as_bytes(start) if start else None
    if stop is not None:
        stop = _as_bytes(stop)
    return start, stop


def _scan_snapshot(space: _Space, start, stop, reverse):
    keys, values = space.keys, space.values
    low = 0 if start is None else bisect_left(keys, start)
    high = len(keys) if stop is None else bisect_left(keys, stop)
    positions = range(high - 1, low - 1, -1) if reverse else range(low, high)
    for position in positions:
        key = keys[position]
        yield key, values[key]


class MemoryWriteTxn(MemoryReadTxn, WriteTxn):
    """A read-write transaction; commits on normal exit, aborts on exception.

    ``_spaces`` starts as a copy of the committed state dict; ``_own`` names
    the spaces already copied for writing, and ``_reshaped`` counts the
    changes to key lists, so that a scan in progress knows when to find its
    place again.
    """

    __slots__ = ("_engine", "_own", "_reshaped")

    one_writer = True  # one write transaction at a time, under the engine's lock

    def __init__(self, engine: MemoryEngine) -> None:
        super().__init__(dict(engine._begin()))
        self._engine = engine
        self._own: set[str] = set()
        self._reshaped = 0

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._commit()
        else:
            self._abort()

    def _commit(self) -> None:
        spaces, self._spaces = self._spaces, _ENDED
        try:
            self._engine._publish({name: spaces[name] for name in self._own})
        finally:
            self._engine._end()

    def _abort(self) -> None:
        self._spaces = _ENDED
        self._engine._end()

    def _writable(self, space: str) -> _Space:
        current = self._spaces[space]
        if space in self._own:
            return current
        copy = _Space(current.keys.copy(), current.values.copy())
        self._spaces[space] = copy
        self._own.add(space)
        self._reshaped += 1
        return copy

    def put(self, space: str, key: bytes, value: bytes) -> None:
        """Insert or replace."""
        if not key:
            raise ValueError("storage keys must not be empty")
        key = _as_bytes(key)
        target = self._writable(space)
        if key not in target.values:
            insort(target.keys, key)
            self._reshaped += 1
        target.values[key] = _as_bytes(value)

    def delete(self, space: str, key: bytes) -> bool:
        """Remove ``key``; True if it existed."""
        key = _as_bytes(key)
        if key not in self._spaces[space].values:
            return False
        target = self._writable(space)
        del target.values[key]
        keys = target.keys
        del keys[bisect_left(keys, key)]
        self._reshaped += 1
        return True

    def scan(self, space, start=None, stop=None, *, reverse=False):
        """Lazy walk of ``start <= key < stop`` that follows the transaction's
        own changes: after any insert or delete it finds its place again just
        past the last key it yielded, so deleting yielded keys is safe."""
        self._spaces[space]  # an unknown space fails here
        start, stop = _bounds(start, stop)
        if stop == b"":
            return iter(())
        if reverse:
            return _scan_live_backward(self, space, start, stop)
        return _scan_live_forward(self, space, start, stop)


def _scan_live_forward(txn: MemoryWriteTxn, space: str, start, stop):
    keys = txn._spaces[space].keys
    seen = txn._reshaped
    position = 0 if start is None else bisect_left(keys, start)
    while position < len(keys):
        key = keys[position]
        if stop is not None and key >= stop:
            return
        yield key, txn._spaces[space].values[key]
        if txn._reshaped == seen:
            position += 1
        else:  # keys came or went meanwhile: resume just past ``key``
            keys = txn._spaces[space].keys
            seen = txn._reshaped
            position = bisect_right(keys, key)


def _scan_live_backward(txn: MemoryWriteTxn, space: str, start, stop):
    keys = txn._spaces[space].keys
    seen = txn._reshaped
    position = (len(keys) if stop is None else bisect_left(keys, stop)) - 1
    while position >= 0:
        key = keys[position]
        if start is not None and key < start:
            return
        yield key, txn._spaces[space].values[key]
        if txn._reshaped == seen:
            position -= 1
        else:  # keys came or went meanwhile: resume just before ``key``
            keys = txn._spaces[space].keys
            seen = txn._reshaped
            position = bisect_left(keys, key) - 1


class MemoryGroupedWriteTxn(WriteTxn):
    """A write() inside a group: works on the group's transaction and leaves
    commit to the group; a failure after writing poisons the group (the rule
    of ``LmdbGroupedWriteTxn``)."""

    __slots__ = ("_group", "_txn", "_wrote")

    one_writer = True

    def __init__(self, group: _Group) -> None:
        self._group = group
        self._txn = group.txn
        self._wrote = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._wrote:
            self._group.poisoned = True

    def get(self, space: str, key: bytes) -> bytes | None:
        return self._txn.get(space, key)

    def scan(self, space, start=None, stop=None, *, reverse=False):
        return self._txn.scan(space, start, stop, reverse=reverse)

    def put(self, space: str, key: bytes, value: bytes) -> None:
        self._wrote = True
        self._txn.put(space, key, value)

    def delete(self, space: str, key: bytes) -> bool:
        self._wrote = True
        return self._txn.delete(space, key)
