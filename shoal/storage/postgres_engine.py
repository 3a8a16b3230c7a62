"""The PostgreSQL engine: every key space is a table ``(k bytea primary key, v bytea)``.

Why
    Many stateless Shoal nodes over one database that already replicates,
    fails over and rebalances (issue 19).  The SQL is kept to what
    PostgreSQL, CockroachDB and YugabyteDB all accept: ``bytea`` keys under a
    primary-key index (``bytea`` compares as unsigned bytes, shorter prefix
    first: the interface's order), ``INSERT ... ON CONFLICT ... DO UPDATE``,
    ``DELETE ... WHERE k = ANY(array)``, ``SELECT ... FOR UPDATE`` and
    ``ORDER BY k [DESC] LIMIT n`` range scans.  Only PostgreSQL is tested here.

Schema
    Created on first open, idempotently, in one schema (``shoal`` unless the
    caller names another): one table per space of ``SPACES``, ``overflow``
    for long keys (below), and ``writer``, a single row that holds the format
    version and is locked by every write transaction.

Reads
    ``read()`` is ``BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY``: one
    snapshot of every table, taken by a ``SELECT 1`` sent with the ``BEGIN``
    (PostgreSQL takes it at the first statement, and the interface promises
    it as of ``read()``), so a GetItem costs three round trips: that, the
    lookup and the ``COMMIT``.  ``scan`` fetches keyset-paginated batches (32
    rows, doubling up to 1024): each batch is one index range scan, and a
    Query that stops after 20 items reads one batch however large the table
    is.  The statements without parameters (``BEGIN``, ``COMMIT``,
    ``ROLLBACK``) go through libpq's simple query protocol directly: less
    work in Python per request, and psycopg does not see the ``ROLLBACK``s,
    on which it would forget its prepared statements (it does so in case
    an object they use was dropped, which never happens to these tables).

Writes, serialized
    LMDB has one writer at a time, and the API layer relies on it (a
    condition read and the write it guards see nothing in between).  This
    first slice keeps that rule across every process and node: ``write()``
    begins ``READ COMMITTED`` and locks the ``writer`` row with ``SELECT ...
    FOR UPDATE`` (one round trip), so writers queue on the
    database, and each statement after the lock sees every earlier writer's
    commit.  A row lock rather than ``pg_advisory_xact_lock``, which
    CockroachDB does not implement.  Finer-grained locking (per item, with
    retries on serialization failures and deadlocks) is the next slice.
    While the lock is held nothing else changes the tables, so a write
    transaction buffers its puts and deletes in memory (its own reads and
    scans merge them over the database's rows, and remember what they read)
    and sends them all with the ``COMMIT`` in one pipeline: one round trip.
    A write transaction that writes nothing ends with ``ROLLBACK``.

Group commit, flush, prewarm, snapshot, stats
    ``group()`` keeps one write transaction (one lock, one commit) for all
    the ``write()`` calls of the thread, with ``Engine.group``'s poisoning
    rule.  A commit is durable when ``COMMIT`` returns (the database's
    ``synchronous_commit``; ``sync=False`` turns it off for this engine's
    sessions), so ``flush()`` has nothing to do, and ``group(flush=False)``
    is as durable as ``group()``.  ``prewarm()`` does nothing: the database
    server owns its cache.  ``snapshot()`` cannot make a file copy of a
    database, and raises ``NotImplementedError`` (it is used only by tests
    and the encrypted engine; backups of a PostgreSQL store are the
    database's own, such as pg_dump or base backups).  ``stats()`` gives the
    engine's name, schema and connection-pool figures (counting a table's
    rows is not cheap in SQL).

Long keys
    A B-tree entry of PostgreSQL must fit in a third of a page (2704 bytes),
    while a Shoal key may be longer (an index entry holds two DynamoDB keys).
    Keys of up to ``_DIRECT_MAX`` bytes are stored as they are.  A longer key
    is split as the LMDB engine splits its long keys: a *group header*
    ``k[:_DIRECT_MAX] + b"\\0"`` in the space (the only stored keys of that
    length) marks where the group sorts, and ``overflow`` holds the entry
    under ``group id + k[_DIRECT_MAX:]``, split again if still too long.  The
    group id is a hash of the space and the header (not a counter), so a get
    of a long key is still one lookup and writers share no counter row.

Connections
    A ``psycopg_pool`` pool per engine (at most ``max_connections``), of
    autocommit connections whose statements are prepared on first use.  An
    engine must be opened in the process that uses it: one inherited through
    ``fork()`` is disabled in the child (it raises ``RuntimeError``), as
    LMDB's is.  A connection found broken when a transaction begins (the
    database restarted, or ended idle sessions) is replaced unseen; one lost
    inside a transaction, or no connection within ``wait_timeout``, raises
    ``StorageUnavailable`` (the server answers 500 InternalServerError,
    which SDKs retry), and for a second after a failed wait the engine
    fails at once rather than wait again.  The pool reconnects by itself, so
    service resumes when the database does, without a restart.  A write
    whose ``COMMIT`` was cut off may or may not have committed, as with
    DynamoDB's own 500s.  Sessions end a transaction left idle for a minute
    (``idle_in_transaction_session_timeout``), so a node that hangs inside
    one cannot hold the writer lock for ever.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import weakref

from bisect import bisect_left, bisect_right, insort

import psycopg
import psycopg_pool

from psycopg import sql

from shoal.storage.engine import SPACES, Engine, GroupPoisoned, ReadTxn, WriteTxn

__all__ = ["PostgresEngine", "StorageUnavailable", "FORMAT_VERSION", "shown_dsn"]

#: The layout version kept in the ``writer`` row; a store of another version is refused.
FORMAT_VERSION = 1
DEFAULT_SCHEMA = "shoal"

_OVERFLOW = "overflow"
_WRITER = "writer"
_DIRECT_MAX = 1000
_HEADER_LEN = _DIRECT_MAX + 1
_GID_LEN = 8
_IDLE_IN_TRANSACTION_MS = 60_000
_FAIL_FAST_S = 1.0
_FAIL_FAST_WAIT = 0.05
# While the pool waits out its reconnection delays (up to seconds after the
# database is back), a connection made at once stands in, at most one
# attempt per interval (see PostgresEngine._direct_connection).
_DIRECT_INTERVAL_S = 0.25
_DIRECT_CONNECT_TIMEOUT_S = 2
_FIRST_BATCH = 32
_MAX_BATCH = 1024

# PostgreSQL takes a REPEATABLE READ snapshot at the first statement after
# BEGIN, and the interface promises it as of read(): hence the SELECT 1.
_BEGIN_READ = b"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1"
_BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE"

_live_engines: "weakref.WeakSet[PostgresEngine]" = weakref.WeakSet()
# Pools inherited by a forked child: kept referenced and never closed there,
# since closing would end the parent's sessions on the shared sockets.
_inherited_pools: list = []


def _disable_after_fork() -> None:
    for engine in list(_live_engines):
        if engine._pool is not None:
            _inherited_pools.append(engine._pool)
            engine._pool = None
            engine._forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disable_after_fork)


class StorageUnavailable(Exception):
    """The database could not be reached, or the connection broke mid-way.
    Retryable: the request may be sent again."""


@contextlib.contextmanager
def _database_errors():
    """Turn a lost or refused connection into ``StorageUnavailable``."""
    try:
        yield
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        raise StorageUnavailable(f"the PostgreSQL storage is unavailable: {exc}".strip()) from exc


def shown_dsn(dsn: str) -> str:
    """The connection string without its password, for messages."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the given connection string"
    user = parts.get("user", "")
    host = parts.get("host", "")
    port = parts.get("port", "")
    where = f"{host}:{port}" if port else host
    return f"postgresql://{user + '@' if user else ''}{where}/{parts.get('dbname', '')}"


class _Statements:
    """The SQL of one schema, composed once (identifiers quoted by psycopg)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        tables = (*SPACES, _OVERFLOW)
        self.table = {name: sql.Identifier(schema, name) for name in tables}
        self.get = {name: self._text("SELECT v FROM {} WHERE k = %s", name) for name in tables}
        # The same point selects for libpq's extended protocol, called directly (_fast_get).
        self.fast_get = {name: self._text("SELECT v FROM {} WHERE k = $1", name).encode() for name in tables}
        self.upsert = {name: self._text("INSERT INTO {} (k, v) VALUES (%s, %s) "
                                        "ON CONFLICT (k) DO UPDATE SET v = excluded.v", name) for name in tables}
        self.delete = {name: self._text("DELETE FROM {} WHERE k = ANY(%s)", name) for name in tables}
        lock = sql.SQL("SELECT format FROM {} WHERE id = 1 FOR UPDATE").format(
            sql.Identifier(schema, _WRITER)).as_string(None)
        self.begin_write = f"{_BEGIN_WRITE}; {lock}".encode()
        self._scans: dict = {}

    def _text(self, template: str, name: str) -> str:
        return sql.SQL(template).format(self.table[name]).as_string(None)

    def scan(self, name: str, low: str | None, high: bool, reverse: bool) -> str:
        """A batch of a range scan: ``low`` is None, ">=" or ">", ``high``
        whether ``k < %s`` bounds it; the limit is the last parameter."""
        key = (name, low, high, reverse)
        text = self._scans.get(key)
        if text is None:
            conditions = []
            if low is not None:
                conditions.append(f"k {low} %s")
            if high:
                conditions.append("k < %s")
            where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            order = "DESC" if reverse else "ASC"
            text = sql.SQL("SELECT k, v FROM {}" + where + f" ORDER BY k {order} LIMIT %s").format(
                self.table[name]).as_string(None)
            self._scans[key] = text
        return text

    def create(self) -> list:
        """The idempotent DDL of the schema: (statement, parameters) pairs."""
        statements = [(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)), None)]
        for name in (*SPACES, _OVERFLOW):
            statements.append((sql.SQL("CREATE TABLE IF NOT EXISTS {} (k bytea PRIMARY KEY, v bytea NOT NULL)")
                               .format(self.table[name]), None))
        writer = sql.Identifier(self.schema, _WRITER)
        statements.append((sql.SQL("CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY, format integer NOT NULL)")
                           .format(writer), None))
        statements.append((sql.SQL("INSERT INTO {} (id, format) VALUES (1, %s) ON CONFLICT (id) DO NOTHING")
                           .format(writer), (FORMAT_VERSION,)))
        return statements

    def format_query(self) -> sql.Composed:
        return sql.SQL("SELECT format FROM {} WHERE id = 1").format(sql.Identifier(self.schema, _WRITER))


class PostgresEngine(Engine):
    """An engine over a PostgreSQL database (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        sync: bool = True,
        min_connections: int = 1,
        max_connections: int = 8,
        connect_timeout: float = 10.0,
        wait_timeout: float = 5.0,
    ) -> None:
        """Connect to ``dsn`` (a libpq connection string or ``postgresql://`` URL)
        and create the schema's tables if they are missing.

        ``wait_timeout`` bounds how long a transaction waits for a connection
        of the pool before ``StorageUnavailable``.  Raises
        ``StorageUnavailable`` when the database cannot be reached within
        ``connect_timeout`` seconds, and ``RuntimeError`` when the schema
        holds a store of another format.
        """
        self.dsn = dsn
        self.schema = schema
        self.sync = sync
        self._forked = False
        self._fail_fast_until = 0.0  # see _getconn
        self._direct = set()  # connections made outside the pool, see _direct_connection
        self._direct_lock = threading.Lock()
        self._next_direct = 0.0
        self._local = threading.local()  # .group: this thread's open group commit
        self._sql = _Statements(schema)
        options = {"autocommit": True, "prepare_threshold": 0}

        def configure(conn) -> None:
            # A node that hangs inside a transaction (stopped, cut off) must
            # not hold the writer lock, or a snapshot, for ever.
            conn.execute(f"SET idle_in_transaction_session_timeout = {_IDLE_IN_TRANSACTION_MS}")
            if not sync:
                conn.execute("SET synchronous_commit = off")

        self._options = options
        self._configure = configure

        # One connection first, that creates the schema and says plainly why
        # it cannot connect (the pool would only retry until its timeout).
        try:
            with psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout)), **options) as conn:
                self._create_schema(conn)
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())
            raise StorageUnavailable(f"cannot connect to PostgreSQL at {shown_dsn(dsn)}: {reason}") from None
        self._pool = psycopg_pool.ConnectionPool(
            dsn, min_size=min_connections, max_size=max_connections, kwargs=options,
            configure=configure, timeout=wait_timeout, open=False, name=f"shoal-{schema}",
            # The pool retries a failed connection with growing delays; giving
            # up after 10 s (the next wait for a connection starts again at 1 s)
            # bounds how late a node notices that the database is back.
            reconnect_timeout=10.0)
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout:
            self._pool.close()
            self._pool = None
            raise StorageUnavailable(f"cannot connect to PostgreSQL at {shown_dsn(dsn)} "
                                     f"within {connect_timeout:g} s") from None
        _live_engines.add(self)

    def _create_schema(self, conn) -> None:
        """Create the tables on first open (idempotent, racing processes
        allowed), and check the format of a store that exists."""
        try:
            found = conn.execute(self._sql.format_query()).fetchone()
        except psycopg.errors.UndefinedTable:  # also a missing schema
            found = None
        if found is None:
            for attempt in range(3):
                try:
                    with conn.transaction():
                        for statement, params in self._sql.create():
                            conn.execute(statement, params)
                    break
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject,
                        psycopg.errors.DuplicateTable, psycopg.errors.DuplicateSchema):
                    if attempt == 2:  # another process creating it at the same moment
                        raise
            found = conn.execute(self._sql.format_query()).fetchone()
        if found[0] != FORMAT_VERSION:
            raise RuntimeError(f"the PostgreSQL schema {self.schema!r} holds a Shoal store of format "
                               f"{found[0]}; this Shoal reads format {FORMAT_VERSION}")

    # ------------------------------------------------------------ connections

    def _live_pool(self) -> psycopg_pool.ConnectionPool:
        pool = self._pool
        if pool is None:
            if self._forked:
                raise RuntimeError("a PostgresEngine cannot be used after fork(); open a new one in the child")
            raise RuntimeError("the storage engine is closed")
        return pool

    def _getconn(self):
        """A connection of the pool, waiting up to ``wait_timeout`` for one;
        but once a wait has failed (the database is unreachable), for the
        next second only an idle one is taken, so that while the database is
        down each request (and each background job of the worker's event
        loop) fails at once instead of waiting in turn."""
        pool = self._live_pool()
        timeout = _FAIL_FAST_WAIT if time.monotonic() < self._fail_fast_until else None
        try:
            return pool.getconn(timeout=timeout)
        except psycopg_pool.PoolTimeout:
            pass
        conn = self._direct_connection()
        if conn is not None:
            return conn
        self._fail_fast_until = time.monotonic() + _FAIL_FAST_S
        raise StorageUnavailable("the PostgreSQL storage is unavailable: no connection could be made") from None

    def _direct_connection(self):
        """A connection made now, outside the pool, or None.  After an
        outage the pool replaces its lost connections with growing delays
        (1, 2, 4 s...), so a node would go on failing for seconds after the
        database is back; a request that finds no pooled connection makes
        its own instead (closed after its transaction).  At most one attempt
        per ``_DIRECT_INTERVAL_S``: while the database is down the others
        fail at once."""
        now = time.monotonic()
        with self._direct_lock:
            if now < self._next_direct:
                return None
            self._next_direct = now + _DIRECT_INTERVAL_S
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=_DIRECT_CONNECT_TIMEOUT_S, **self._options)
        except psycopg.Error:
            return None
        try:
            self._configure(conn)
        except psycopg.Error:
            conn.close()
            return None
        with self._direct_lock:
            self._direct.add(conn)
        return conn

    def _begin(self, begin: bytes):
        """A pooled connection in a transaction begun by ``begin`` (its BEGIN
        and first statement, one round trip).  A connection found
        broken here (the database restarted, or ended idle sessions) is
        dropped and the next one tried, which is safe since nothing of the
        transaction has happened yet; so after an outage, requests fail
        only while the database is still unreachable."""
        tries = self._live_pool().max_size + 1
        while True:
            conn = self._getconn()
            try:
                _simple(conn, begin)
                # The database answered: waits for a connection are normal
                # again (a busy pool after an outage is not a failing one).
                self._fail_fast_until = 0.0
                return conn
            except psycopg.OperationalError as exc:
                broken = conn.closed
                _rollback_quietly(conn)
                self._putconn(conn)
                tries -= 1
                if not broken or tries <= 0:
                    raise StorageUnavailable(f"the PostgreSQL storage is unavailable: {exc}".strip()) from exc
            except BaseException:
                _rollback_quietly(conn)
                self._putconn(conn)
                raise

    def _putconn(self, conn) -> None:
        if self._direct:
            with self._direct_lock:
                direct = conn in self._direct
                self._direct.discard(conn)
            if direct:
                conn.close()
                return
        pool = self._pool
        if pool is None:
            conn.close()
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()  # a transaction could not be ended: never hand it on
        pool.putconn(conn)

    # ------------------------------------------------------------ the interface

    def read(self, snapshot: bool = True) -> "PostgresReadTxn":
        """A REPEATABLE READ, READ ONLY snapshot, taken now (one round trip);
        with ``snapshot=False``, statements each on their own (autocommit):
        no BEGIN and no COMMIT, two round trips fewer."""
        self._live_pool()
        if not snapshot:
            return PostgresStatementReads(self)
        return PostgresReadTxn(self)

    def write(self) -> "PostgresWriteTxn":
        """A write transaction, begun once this engine holds the writer row lock."""
        self._live_pool()
        group = getattr(self._local, "group", None)
        if group is not None:
            return PostgresGroupedWriteTxn(group)
        return PostgresWriteTxn(self)

    @contextlib.contextmanager
    def group(self, *, flush: bool = True):
        """One write transaction for every ``write()`` of this thread inside
        the block: see ``Engine.group``.  ``flush`` changes nothing: the
        commit is durable when it returns."""
        self._live_pool()
        if getattr(self._local, "group", None) is not None:
            yield self._local.group  # already grouping: the outer group commits
            return
        group = _Group(PostgresWriteTxn(self))
        self._local.group = group
        try:
            yield group
        except BaseException:
            self._local.group = None
            group.txn._end(commit=False)
            raise
        self._local.group = None
        if group.poisoned:
            group.txn._end(commit=False)
            raise GroupPoisoned("a grouped write failed after writing; redo the group ungrouped")
        group.txn._end(commit=True)

    def flush(self) -> None:
        """Nothing to do: a commit is durable when ``COMMIT`` returns."""

    def snapshot(self, path) -> None:
        """A file copy of a database cannot exist: refused."""
        raise NotImplementedError("a PostgreSQL store cannot be copied to a directory: back it up with "
                                  "the database's own tools (pg_dump, base backups)")

    def stats(self) -> dict:
        """The engine, its schema and the connection pool's figures."""
        pool = self._live_pool()
        return {"engine": "postgresql", "schema": self.schema, "pool": pool.get_stats()}

    def close(self) -> None:
        """Close the pool's connections; idempotent."""
        pool = self._pool
        if pool is not None:
            reads = getattr(self._local, "reads", None)
            if reads is not None:  # this thread's reading connection (other threads' go with them)
                self._local.reads = None
                pool.putconn(reads)
            self._pool = None
            _live_engines.discard(self)
            pool.close()

    def __repr__(self) -> str:
        return f"PostgresEngine({shown_dsn(self.dsn)!r}, schema={self.schema!r})"


class _Group:
    __slots__ = ("txn", "poisoned")

    def __init__(self, txn) -> None:
        self.txn = txn
        self.poisoned = False


# ------------------------------------------------------------ transactions


class PostgresReadTxn(ReadTxn):
    """A read snapshot on one pooled connection."""

    __slots__ = ("_engine", "_sql", "_conn", "_ended")

    def __init__(self, engine: PostgresEngine, begin: bool = True) -> None:
        self._engine = engine
        self._sql = engine._sql
        self._conn = None
        self._ended = False
        if begin:
            self._begin()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._end(commit=False)

    def _end(self, commit: bool) -> None:
        self._ended = True
        conn, self._conn = self._conn, None
        if conn is not None:
            # COMMIT, not ROLLBACK, although nothing was written: psycopg
            # forgets its prepared statements on every ROLLBACK, and a read-only
            # COMMIT costs no more.  What was read stays valid if it fails.
            try:
                _simple(conn, b"COMMIT")
            except psycopg.Error:
                _rollback_quietly(conn)
            self._engine._putconn(conn)

    def _begin(self) -> None:
        """Take the snapshot now: PostgreSQL takes it at the first query
        after BEGIN, and the interface promises it as of ``read()``."""
        self._conn = self._engine._begin(_BEGIN_READ)

    def _rows(self, statement: str, params) -> list:
        """Run one query (a scan's batch: ``SELECT k, v``) in the transaction."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("the transaction has ended")
        with _database_errors():
            if params is None:  # a statement of another shape (tests, diagnostics)
                return conn.execute(statement, params, binary=True).fetchall()
            return _fast_rows(conn, statement, params)

    # -- the raw level: keys of up to _DIRECT_MAX bytes in one table

    def _raw_get(self, table: str, key: bytes) -> bytes | None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the transaction has ended")
        with _database_errors():
            return _fast_get(conn, self._sql.fast_get[table], key)

    def _raw_scan(self, table, low, high, reverse):
        """Keyset-paginated batches of ``low <= k < high`` in key order."""
        return _db_scan(self, table, low, high, reverse)

    # -- the interface

    def get(self, space: str, key: bytes) -> bytes | None:
        """One indexed lookup (also for a long key: its place is computed)."""
        _check_space(space)
        if not key:
            return None
        table, stored = _location(space, key)
        return self._raw_get(table, stored)

    def scan(self, space, start=None, stop=None, *, reverse=False):
        """Lazy ``start <= key < stop`` walk (see ``ReadTxn.scan``)."""
        _check_space(space)
        if not start:
            start = None
        if stop is not None and not stop:
            return iter(())
        return _scan(self, space, start, stop, reverse)


class PostgresStatementReads(PostgresReadTxn):
    """Reads that need no snapshot across statements (``read(snapshot=False)``):
    each runs on its own in autocommit, on the thread's own connection for
    such reads (taken from the pool once and kept: the pool's check-out and
    return cost as much as a statement).  A connection found broken at the
    first statement is replaced as ``_begin`` replaces one (nothing has been
    read yet)."""

    __slots__ = ("_fresh",)

    def __init__(self, engine: PostgresEngine) -> None:
        super().__init__(engine, begin=False)
        local = engine._local
        conn = getattr(local, "reads", None)
        if conn is not None:
            local.reads = None  # this block's while it runs (a nested read takes another)
        else:
            conn = engine._getconn()
        self._conn = conn
        self._fresh = True

    def _end(self, commit: bool) -> None:
        self._ended = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        local = self._engine._local
        if getattr(local, "reads", None) is None and self._engine._pool is not None and not conn.closed \
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            local.reads = conn  # kept for the thread's next reads
        else:
            self._engine._putconn(conn)

    def _rows(self, statement: str, params) -> list:
        if self._fresh:
            return self._first(lambda conn: _fast_rows(conn, statement, params))
        return super()._rows(statement, params)

    def _raw_get(self, table: str, key: bytes) -> bytes | None:
        if self._fresh:
            return self._first(lambda conn: _fast_get(conn, self._sql.fast_get[table], key))
        return super()._raw_get(table, key)

    def _first(self, run):
        """``run(conn)`` for the first statement: a connection found broken
        is replaced and the statement run again (nothing has been read yet)."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("the transaction has ended")
        self._fresh = False
        tries = self._engine._live_pool().max_size + 1
        while True:
            try:
                out = run(conn)
                self._engine._fail_fast_until = 0.0  # the database answered (see _begin)
                return out
            except psycopg.OperationalError as exc:
                broken = conn.closed
                _rollback_quietly(conn)
                self._engine._putconn(conn)
                self._conn = None
                tries -= 1
                if not broken or tries <= 0:
                    raise StorageUnavailable(f"the PostgreSQL storage is unavailable: {exc}".strip()) from exc
                conn = self._conn = self._engine._getconn()


def _db_scan(txn, table, low, high, reverse):
    if low is not None and high is not None and low >= high:
        return
    batch = _FIRST_BATCH
    statements = txn._sql
    if reverse:
        lower_op, upper = (">=" if low is not None else None), high
        while True:
            params = [b for b in (low, upper) if b is not None] + [batch]
            rows = txn._rows(statements.scan(table, lower_op, upper is not None, True), params)
            yield from rows
            if len(rows) < batch:
                return
            upper = rows[-1][0]
            batch = min(batch * 2, _MAX_BATCH)
    else:
        lower_op, lower = (">=" if low is not None else None), low
        while True:
            params = [b for b in (lower, high) if b is not None] + [batch]
            rows = txn._rows(statements.scan(table, lower_op, high is not None, False), params)
            yield from rows
            if len(rows) < batch:
                return
            lower_op, lower = ">", rows[-1][0]
            batch = min(batch * 2, _MAX_BATCH)


class _Overlay:
    """A write transaction's changes to one table: ``values`` by key (None
    for a delete) and ``keys`` sorted, so scans can merge them in order."""

    __slots__ = ("values", "keys")

    def __init__(self) -> None:
        self.values: dict[bytes, bytes | None] = {}
        self.keys: list[bytes] = []

    def set(self, key: bytes, value: bytes | None) -> None:
        if key not in self.values:
            insort(self.keys, key)
        self.values[key] = value

    def after(self, cursor, low, high, reverse):
        """The next changed key past ``cursor`` (None: from the start) within
        ``low <= k < high``; found by bisection each time, so the keys may
        change between calls (a scan that deletes what it has yielded)."""
        keys = self.keys
        if not reverse:
            if cursor is not None:
                i = bisect_right(keys, cursor)
            else:
                i = bisect_left(keys, low) if low is not None else 0
            if i < len(keys) and (high is None or keys[i] < high):
                return keys[i]
            return None
        if cursor is not None:
            i = bisect_left(keys, cursor) - 1
        else:
            i = (bisect_left(keys, high) if high is not None else len(keys)) - 1
        if i >= 0 and (low is None or keys[i] >= low):
            return keys[i]
        return None


class PostgresWriteTxn(PostgresReadTxn, WriteTxn):
    """A serialized write transaction whose changes wait in memory until commit."""

    __slots__ = ("_overlays", "_seen")

    def __init__(self, engine: PostgresEngine) -> None:
        super().__init__(engine, begin=False)
        self._overlays: dict[str, _Overlay] = {}
        self._seen: dict[str, dict[bytes, bytes | None]] = {}  # committed rows read under the lock
        local = engine._local
        if getattr(local, "writing", False):  # it would wait for its own lock forever
            raise RuntimeError("this thread already has a write() open on this engine")
        self._conn = engine._begin(self._sql.begin_write)  # its lock waits for the writer before us
        local.writing = True

    def __exit__(self, exc_type, exc, tb) -> None:
        self._end(commit=exc_type is None)

    def _end(self, commit: bool) -> None:
        if self._ended:
            return
        self._ended = True
        conn, self._conn = self._conn, None
        try:
            with _database_errors():
                if commit and any(o.values for o in self._overlays.values()):
                    self._commit(conn)
                else:
                    _simple(conn, b"ROLLBACK")
        except BaseException:
            _rollback_quietly(conn)
            raise
        finally:
            self._overlays = {}
            self._seen = {}
            self._engine._local.writing = False
            self._engine._putconn(conn)

    def _commit(self, conn) -> None:
        """Every buffered change and the COMMIT, in one round trip."""
        statements = self._sql
        with conn.pipeline():
            cursor = conn.cursor()
            for table, overlay in self._overlays.items():
                gone = [key for key, value in overlay.values.items() if value is None]
                if gone:
                    conn.execute(statements.delete[table], (gone,))
                kept = [(key, value) for key, value in overlay.values.items() if value is not None]
                if kept:
                    cursor.executemany(statements.upsert[table], kept)
            conn.execute("COMMIT", prepare=False)

    # -- the raw level, with the buffered changes over the committed rows

    def _raw_get(self, table: str, key: bytes) -> bytes | None:
        overlay = self._overlays.get(table)
        if overlay is not None and key in overlay.values:
            return overlay.values[key]
        seen = self._seen.setdefault(table, {})
        if key in seen:
            return seen[key]
        value = seen[key] = super()._raw_get(table, key)
        return value

    def _raw_put(self, table: str, key: bytes, value: bytes) -> None:
        if self._ended:
            raise RuntimeError("the transaction has ended")
        overlay = self._overlays.get(table)
        if overlay is None:
            overlay = self._overlays[table] = _Overlay()
        overlay.set(key, value if type(value) is bytes else bytes(value))

    def _raw_delete(self, table: str, key: bytes) -> bool:
        existed = self._raw_get(table, key) is not None
        if existed:
            overlay = self._overlays.get(table)
            if overlay is None:
                overlay = self._overlays[table] = _Overlay()
            overlay.set(key, None)
        return existed

    def _raw_scan(self, table, low, high, reverse):
        overlay = self._overlays.get(table)
        if overlay is None:
            overlay = self._overlays[table] = _Overlay()
        return _merge(_db_scan(self, table, low, high, reverse), overlay, low, high, reverse)

    # -- the interface

    def put(self, space: str, key: bytes, value: bytes) -> None:
        """Buffer ``key = value``; keys over ``_DIRECT_MAX`` bytes go through overflow groups."""
        _check_space(space)
        if not key:
            raise ValueError("storage keys must not be empty")
        key = key if type(key) is bytes else bytes(key)
        table = space
        while len(key) > _DIRECT_MAX:
            header = key[:_DIRECT_MAX] + b"\0"
            gid = _group_id(table, header)
            self._raw_put(table, header, gid)
            table, key = _OVERFLOW, gid + key[_DIRECT_MAX:]
        self._raw_put(table, key, value)

    def delete(self, space: str, key: bytes) -> bool:
        """Buffer the removal of ``key``; True if it existed.  An overflow
        group left empty loses its header."""
        _check_space(space)
        if not key:
            return False
        levels = []  # (table, header, gid) from the outside in
        table = space
        while len(key) > _DIRECT_MAX:
            header = key[:_DIRECT_MAX] + b"\0"
            gid = _group_id(table, header)
            levels.append((table, header, gid))
            table, key = _OVERFLOW, gid + key[_DIRECT_MAX:]
        existed = self._raw_delete(table, key)
        if existed:
            for table, header, gid in reversed(levels):
                if next(iter(self._raw_scan(_OVERFLOW, gid, _group_end(gid), False)), None) is not None:
                    break
                self._raw_delete(table, header)
        return existed


class PostgresGroupedWriteTxn(PostgresWriteTxn):
    """A ``write()`` inside a group: works on the group's transaction, leaves
    the commit to it, and poisons it when it fails after writing."""

    __slots__ = ("_group", "_wrote")

    def __init__(self, group: _Group) -> None:  # noqa: super().__init__ would begin a transaction
        outer = group.txn
        self._engine = outer._engine
        self._sql = outer._sql
        self._conn = outer._conn
        self._ended = False
        self._overlays = outer._overlays
        self._seen = outer._seen
        self._group = group
        self._wrote = False

    def __exit__(self, exc_type, exc, tb) -> None:
        self._ended = True
        if exc_type is not None and self._wrote:
            self._group.poisoned = True

    def _raw_put(self, table, key, value) -> None:
        self._wrote = True
        super()._raw_put(table, key, value)

    def _raw_delete(self, table, key) -> bool:
        existed = super()._raw_delete(table, key)
        self._wrote = self._wrote or existed
        return existed


def _simple(conn, command: bytes) -> None:
    """Run ``command`` (statements without parameters) through libpq's simple
    query protocol: one round trip for several statements, and much less
    work in Python than psycopg's ``execute`` (this is on every request's path)."""
    result = conn.pgconn.exec_(command)
    if result.status not in (psycopg.pq.ExecStatus.COMMAND_OK, psycopg.pq.ExecStatus.TUPLES_OK):
        if conn.pgconn.status != psycopg.pq.ConnStatus.OK:  # a lost connection has no SQLSTATE
            message = " ".join(result.get_error_message("utf-8").split())
            raise psycopg.OperationalError(message or "the connection to the server was lost")
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def _fast_get(conn, text: bytes, key: bytes) -> bytes | None:
    """One point select through libpq directly, the key and the value in
    binary: psycopg's ``execute`` (a cursor, its adaptation and prepare
    bookkeeping) costs several times the query's own work here, on every
    GetItem."""
    result = _exec(conn, text, [key], [1])
    if result.ntuples == 0:
        return None
    return result.get_value(0, 0)


def _exec(conn, text: bytes, values: list, formats: list):
    """The result of the statement ``text`` with ``values`` (libpq's
    extended protocol, one round trip, results in binary); raises as psycopg
    would.  An unnamed statement, not a prepared one: psycopg sends
    DEALLOCATE ALL on the same sessions at times (after a rollback), which
    would make a named one fail inside the next transaction."""
    result = conn.pgconn.exec_params(text, values, None, formats, 1)
    if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
        _checked_result(conn, result)
    return result


_NUMBERED: dict = {}  # statement text with %s -> the same with $1, $2...


def _fast_rows(conn, statement: str, params) -> list:
    """A two-column ``SELECT k, v`` (a scan's batch) through libpq directly,
    as ``_fast_get``: bytes parameters sent in binary, integers (the LIMIT)
    as text; rows of (key, value) bytes."""
    text = _NUMBERED.get(statement)
    if text is None:
        parts = statement.split("%s")
        text = _NUMBERED[statement] = (parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
                                       ).encode()
    values = [p if type(p) is bytes else str(p).encode() for p in params]
    formats = [1 if type(p) is bytes else 0 for p in params]
    result = _exec(conn, text, values, formats)
    get = result.get_value
    return [(get(row, 0), get(row, 1)) for row in range(result.ntuples)]


def _checked_result(conn, result) -> None:
    """Raise the error of a libpq result that failed, as psycopg would."""
    if result.status in (psycopg.pq.ExecStatus.COMMAND_OK, psycopg.pq.ExecStatus.TUPLES_OK):
        return
    if conn.pgconn.status != psycopg.pq.ConnStatus.OK:  # a lost connection has no SQLSTATE
        message = " ".join(result.get_error_message("utf-8").split())
        raise psycopg.OperationalError(message or "the connection to the server was lost")
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def _rollback_quietly(conn) -> None:
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            _simple(conn, b"ROLLBACK")
    except psycopg.Error:
        conn.close()  # the pool discards it


def _merge(rows, overlay: _Overlay, low, high, reverse):
    """The committed ``rows`` with a write transaction's changes over them, in order."""
    values = overlay.values
    row = next(rows, None)
    cursor = None
    while True:
        while row is not None and row[0] in values:
            row = next(rows, None)  # changed in this transaction: the overlay has it
        changed = overlay.after(cursor, low, high, reverse)
        if changed is None and row is None:
            return
        if changed is not None and (row is None or ((changed < row[0]) != reverse)):
            cursor = changed
            value = values.get(changed)
            if value is not None:
                yield changed, value
        else:
            key, value = row
            row = next(rows, None)
            yield key, value


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise KeyError(space)


# ------------------------------------------------------------ long keys


def _group_id(table: str, header: bytes) -> bytes:
    """The overflow group of ``header`` in ``table``: a hash, so that finding
    a long key needs no read of its header."""
    return hashlib.blake2b(header, digest_size=_GID_LEN, person=table.encode()).digest()


def _group_end(gid: bytes) -> bytes | None:
    """The first key past every key of group ``gid`` (None: past them all)."""
    number = int.from_bytes(gid, "big") + 1
    return number.to_bytes(_GID_LEN, "big") if number < 1 << (8 * _GID_LEN) else None


def _location(table: str, key: bytes) -> tuple[str, bytes]:
    """The table and stored key of ``key``, following its overflow groups."""
    while len(key) > _DIRECT_MAX:
        header = key[:_DIRECT_MAX] + b"\0"
        table, key = _OVERFLOW, _group_id(table, header) + key[_DIRECT_MAX:]
    return table, key


def _scan(txn, table, start, stop, reverse):
    """``start <= key < stop`` of ``table``, overflow groups expanded in place.

    Bounds are mapped to stored keys: a long ``start`` begins at its group's
    header, a long ``stop`` ends just past it, and the group's own scan
    trims its members by the bounds that share its prefix.
    """
    low = start if start is None or len(start) <= _DIRECT_MAX else start[:_DIRECT_MAX] + b"\0"
    high = stop if stop is None or len(stop) <= _DIRECT_MAX else stop[:_DIRECT_MAX] + b"\0\0"
    for key, value in txn._raw_scan(table, low, high, reverse):
        if len(key) != _HEADER_LEN:
            yield key, value
            continue
        prefix = key[:_DIRECT_MAX]
        gid = _group_id(table, key)
        inner_start, inner_stop = gid, _group_end(gid)
        if start is not None and len(start) > _DIRECT_MAX and start[:_DIRECT_MAX] == prefix:
            inner_start = gid + start[_DIRECT_MAX:]
        if stop is not None and len(stop) > _DIRECT_MAX and stop[:_DIRECT_MAX] == prefix:
            inner_stop = gid + stop[_DIRECT_MAX:]
        for inner, inner_value in _scan(txn, _OVERFLOW, inner_start, inner_stop, reverse):
            yield prefix + inner[_GID_LEN:], inner_value
