"""The storage engine interface: ordered byte keys in a few named key spaces.

Everything above ``shoal.storage`` sees storage only through the three small
classes here, so that the LMDB engine (``lmdb_engine``) and a later PostgreSQL
engine are interchangeable.  The interface is deliberately SQL-mappable: a key
space is a table ``(key bytea primary key, value bytea)``, ``get`` is a point
select, ``scan`` is a range select ordered by key, and ``write`` is one
transaction.

Rules every engine honours (the conformance suite in
``tests/unit/test_storage_engine.py`` checks them):

* Keys and values are ``bytes``.  Keys are non-empty and of any length (DynamoDB
  keys reach about 3 KB); they compare as unsigned bytes (``memcmp`` order, a
  prefix before its extensions).  ``put`` of an empty key raises ``ValueError``;
  a space name not in ``SPACES`` raises ``KeyError``.
* While a scan of a write transaction is being consumed, deleting keys it has
  already yielded is allowed (log pruning does this); other changes to the
  scanned range during iteration may or may not be seen by it.
* ``read()`` gives a consistent snapshot: writes committed after it began are
  invisible to it.
* ``write()`` is one atomic transaction that sees its own writes.  It commits
  when the ``with`` block ends normally and aborts when it raises.  Once the
  block has exited, the commit is durable (survives a process kill and a power
  loss) unless the engine was opened with ``sync=False``.  A single WriteTxn may
  carry many logical operations, which is how a group-commit layer will batch
  several requests into one durable commit.
* Transactions are synchronous and belong to the thread that opened them; do
  not hold one across an ``await``.  Never open a ``write()`` inside another
  ``write()`` of the same engine in the same thread (single-writer engines would
  deadlock).
* Write transactions may run concurrently (the PostgreSQL engine, from many
  processes and nodes).  Each is still serializable with respect to the keys
  it reads with ``get`` or through a scan and the keys it writes: what it
  read stays as it read it until it commits.  Two kinds of keys, which every
  writer reads and rewrites, are the exception, so that writers of different
  items do not queue on them (engines with one writer need do nothing): the
  change log (``CHANGE_LOG_HEAD``: a big-endian u64 position, then a node id;
  its records in ``CHANGE_LOG`` under big-endian u64 keys), whose records a
  transaction appends are renumbered at commit to follow the head as it is
  then, so the log stays gap-free in commit order; and counters
  (``meta`` keys under ``COUNTER_PREFIXES``, big-endian signed 64-bit
  fields), where what a transaction wrote minus what it read is added at
  commit to the value then stored.  Keys under ``SHARED_PREFIXES`` are read
  by many writers at once.  A transaction that loses a race it cannot
  resolve by itself raises ``WriteConflict`` and leaves nothing.
"""

from __future__ import annotations

import contextlib

from abc import ABC, abstractmethod
from typing import ContextManager, Iterator

#: The named key spaces.  ``meta``: table catalog and counters; ``items``:
#: table items; ``changes``: the change log streams read; ``indexes``:
#: secondary index entries.
SPACES = ("meta", "items", "changes", "indexes", "streams")


#: The change log's space and its head's ``meta`` key (see the module docstring).
CHANGE_LOG = "changes"
CHANGE_LOG_HEAD = b"changes/seq"
#: ``meta`` keys with these prefixes are read by every writer of a table and
#: written by few (the table catalog): an engine with concurrent writers may
#: let their readers share them.
SHARED_PREFIXES = (b"table/",)
#: ``meta`` keys with these prefixes are counters: fields of big-endian signed
#: 64-bit integers that writers add to (a table's and an index's item count and size).
COUNTER_PREFIXES = (b"stats/", b"istats/")


class WriteConflict(Exception):
    """A write transaction lost a race with a concurrent writer after what it
    had read was used: nothing of it was written.  Run the whole unit of work
    again (the server answers 500 InternalServerError, which SDKs retry)."""


class GroupPoisoned(Exception):
    """A grouped write failed half-way: the group was aborted as a whole
    (see ``Engine.group``); redo its work ungrouped."""


class ReadTxn(ABC):
    """A consistent, read-only view of every key space."""

    __slots__ = ()

    @abstractmethod
    def get(self, space: str, key: bytes) -> bytes | None:
        """The value stored under ``key`` in ``space``, or None.

        This is the whole GetItem storage path, so engines keep it to one lookup.
        """

    @abstractmethod
    def scan(
        self,
        space: str,
        start: bytes | None = None,
        stop: bytes | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Lazily yield ``(key, value)`` for keys ``start <= key < stop``.

        ``None`` leaves that side unbounded.  Keys come in ascending order, or
        descending when ``reverse`` is true (still ``start`` inclusive, ``stop``
        exclusive).  The iterator is lazy: a Query that stops after 20 items
        touches about 20 entries however large the space is.  It is valid only
        while its transaction is open.
        """


class WriteTxn(ReadTxn):
    """A read-write transaction; reads see the transaction's own writes."""

    __slots__ = ()

    #: Whether the engine runs one write transaction at a time, so that what
    #: a transaction read stays true until it commits and the change-log
    #: positions it gives are final (LMDB and the memory engine).  An engine
    #: with concurrent writers (PostgreSQL) leaves it False: the change log
    #: then trusts no mark a writer cannot lock (``shoal.api.changelog``).
    one_writer = False

    @abstractmethod
    def put(self, space: str, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key`` in ``space``, replacing any old value."""

    @abstractmethod
    def delete(self, space: str, key: bytes) -> bool:
        """Remove ``key`` from ``space``; True if it was there.

        Returning whether it existed saves callers (DeleteItem, change-log
        pruning) a separate ``get``.
        """


class Engine(ABC):
    """An open database: hands out read snapshots and write transactions."""

    @abstractmethod
    def read(self, snapshot: bool = True) -> ContextManager[ReadTxn]:
        """A consistent snapshot for the duration of the ``with`` block.

        Cheap enough to open once per request.  With ``snapshot=False`` the
        caller asks only that each ``get`` (and each scan) see a committed
        state: an engine where a snapshot costs round trips (PostgreSQL) then
        runs each statement on its own; the others give a snapshot anyway.
        """

    @abstractmethod
    def write(self) -> ContextManager[WriteTxn]:
        """One atomic transaction: commits on normal exit, aborts on exception.

        When the ``with`` block has exited normally the commit is durable
        (fsync'd) unless the engine was opened with ``sync=False``.
        """

    #: Whether ``read_ahead`` saves round trips (an engine over a network:
    #: PostgreSQL), so that the server gathers the point reads of requests
    #: that arrive together (``shoal.server.batched_reads``).
    reads_ahead = False

    def read_ahead(self, space: str, keys) -> ContextManager[None]:
        """Read ``keys`` of ``space`` now, together (PostgreSQL: one statement),
        and, inside the block, answer this thread's statement reads
        (``read(snapshot=False)``) of those keys from what was read; any
        other read goes to storage as usual.

        The caller promises that a value read now is a right answer for such
        a read in the block: the requests it serves arrived before the block
        began and have not written since (GetItems of one event-loop turn).
        A write transaction of the thread ends the read-ahead (nothing read
        before it may answer after it).  Engines whose reads are local
        (LMDB, memory) read nothing ahead: the default is an empty block.
        Storage failures of the read raise here, before the block."""
        return contextlib.nullcontext()

    def lock_ahead(self, space: str, keys) -> None:
        """Inside ``group()``: lock ``keys`` of ``space`` for the group's
        write transaction and read them now, together (PostgreSQL: one
        statement, the locks taken in their order, so that two groups
        locking overlapping sets do not deadlock), so that the grouped
        writes' reads of them are answered from what was read.  Since the
        locks are held to the group's commit, every such answer is the one
        the write's own locked read would have got; a key the writes then
        leave alone is only locked a little longer than needed.  The keys
        may be many writes' (a group's PutItems) or one write's (a
        BatchWriteItem's, a TransactWriteItems': ``shoal.api.keys_ahead``),
        one statement in place of a round trip per item.  Outside a
        group, and on engines whose reads are local (LMDB, memory), it does
        nothing (the default).  Storage failures raise here (the caller's
        group then fails as a whole)."""

    def flush(self) -> None:
        """Make every commit so far durable, for engines whose group commits
        are not durable on exit (``group(flush=False)``)."""

    def group(self, *, flush: bool = True) -> ContextManager[None]:
        """Group commit: one durable commit for many ``write()`` transactions.

        Inside the block, each ``write()`` of the calling thread joins one
        outer transaction; nothing becomes visible to other readers, nor
        durable, until the block exits and the outer transaction commits once,
        with one fsync.  Callers acknowledge the grouped writes only after the
        block has exited.  An exception escaping the block aborts them all.
        A grouped ``write()`` that raises before writing anything leaves no
        trace; one that raises after writing makes the block's exit raise
        ``GroupPoisoned`` (everything aborted), and the caller redoes the
        work ungrouped.  With ``flush=False`` the commit at the end of the
        block is not yet durable: call ``flush()`` (from any thread) before
        acknowledging.  The default does no grouping: each ``write()``
        commits on its own.
        """
        return contextlib.nullcontext()

    def prewarm(self, should_stop=lambda: False) -> int:
        """Bring the stored data into memory ahead of requests (``shoal serve
        --prewarm``), stopping early when ``should_stop()`` says so; returns
        the bytes warmed.  The default does nothing."""
        return 0

    def snapshot(self, path) -> None:
        """Write a consistent copy of the whole store, as of one moment, to
        the new directory ``path`` (which an engine of the same kind opens),
        without blocking writers: the base a backup is taken from.  Engines
        that cannot copy themselves raise NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} cannot make snapshots")

    @abstractmethod
    def close(self) -> None:
        """Release the engine's resources; idempotent.

        Transactions must be finished first.
        """

    def stats(self) -> dict:
        """Cheap engine facts for diagnostics (entries per space and so on).

        Optional: the default knows nothing.
        """
        return {}

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
