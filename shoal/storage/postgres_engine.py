"""The PostgreSQL engine: every key space is a table ``(k bytea primary key, v bytea)``
(``items`` with its partition hash ``h`` too).

Why
    Many stateless Shoal nodes over one database that already replicates,
    fails over and rebalances (issue 19).  The SQL is kept to what
    PostgreSQL, CockroachDB and YugabyteDB all accept: ``bytea`` keys under a
    primary-key index (``bytea`` compares as unsigned bytes, shorter prefix
    first: the interface's order), ``INSERT ... ON CONFLICT ... DO UPDATE``
    (and ``DO NOTHING``), ``INSERT ... SELECT ... FROM unnest(array)``,
    ``DELETE ... WHERE k = ANY(array)``, ``SELECT ... FOR UPDATE``, ``READ
    COMMITTED`` and ``ORDER BY k [DESC] LIMIT n`` range scans.  Only
    PostgreSQL is tested here.

Schema
    Created on first open, idempotently, in one schema (``shoal`` unless the
    caller names another): one table per space of ``SPACES``, ``overflow``
    for long keys (below), ``locks`` (key locks, below), ``writer``, a
    single row that holds the format version, ``catalog_version`` (below)
    and ``keyring``, the sealed keyring of a store encrypted at rest
    (``shoal.storage.encrypted.open_encrypted_postgres``; its one row also
    marks the store encrypted, and a plain open of it is refused).  The
    last two came after format 2 was first written: a store without them
    gets them when it is opened.  ``items`` has a third column,
    ``h``: a 64-bit hash of the key's first 20 bytes, which for an item are
    its table's prefix and the hash of its partition key, so every item of a
    partition has the same ``h``.  Its primary key is ``(h, k)`` (Citus
    distributes a table on a column its primary key starts with:
    ``SELECT create_distributed_table('shoal.items', 'h')``), and an index
    on ``k`` serves the scans that cross partitions.  A GetItem is one
    lookup of the primary key, a Query (a range within one partition) one
    range of it.

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

    ``read(snapshot=False)`` (GetItem, Query, Scan: each statement sees a
    committed state of its own) sends no ``BEGIN`` or ``COMMIT``, and keeps
    the tables' catalog entries (``meta`` keys under ``CATALOG_PREFIXES``),
    so that a GetItem is one round trip: the item and the catalog's version
    (a row that every commit writing a catalog entry moves) in one
    statement, prepared once per connection.  A cached entry is used only
    while the version was seen unchanged by a statement sent less than
    ``CATALOG_TRUST_S`` ago; a version that moved drops the cache, and so
    does a commit of this engine that moves it.  Under load every item read
    keeps the cache trusted; after a pause the next read of an entry costs
    a round trip more.  So a CreateTable, UpdateTable or DeleteTable
    committed by any node is seen by every node's next request begun
    ``CATALOG_TRUST_S`` later at the latest, and by the node that made it at
    once; writes always read the entry itself, under its lock.
    ``get_many`` reads many keys in one statement (``h = ANY`` and ``k =
    ANY``: one probe of the primary key per key).  ``read_ahead`` runs
    one for the GetItems that arrived together (``shoal.server.batched_reads``)
    and answers each one's statement read from it: one round trip for
    all of them instead of one each.

Concurrent writers
    No lock is shared by all writers: writers of different items, from any
    number of processes and nodes, run side by side.  A write transaction
    is ``READ COMMITTED``, and every key it reads (``get``, or a row a scan
    returns) is first locked: a row of ``locks`` named by a hash of the
    table and the key (modulo ``_LOCK_STRIPES``), taken by an upsert, which
    locks absent keys as well as present ones, and read after the lock is
    granted, in the same round trip (each statement has its own snapshot).
    So what a transaction read stays so until it commits: a condition and
    the write it guards see nothing in between, as under LMDB's single
    writer.  Keys written without being read are locked at commit.  Its puts
    and deletes wait in memory (its own reads and scans merge them over the
    database's rows) and are sent with the ``COMMIT`` in one pipeline.  A
    scan's range is not locked against new keys (no predicate locks); the
    rows it returned are.

    Two kinds of keys that every item write reads and rewrites would make
    every writer wait for every other: the change log's head and the
    counters (``engine.CHANGE_LOG_HEAD``, ``engine.COUNTER_PREFIXES``).
    They are read without a lock, and at commit, in one round trip, the
    transaction locks them (``SELECT ... FOR UPDATE``, after placeholders
    for rows not yet there), adds what it added to each counter to the value
    now stored, and renumbers the change records it appended to follow the
    head as it now is.  The head's lock is held from there to the end of
    the ``COMMIT``, so positions are given in commit order, without gaps: a
    reader that sees position n sees every position before it, from every
    node.  A transaction that read the head for another purpose (a stream's
    starting position) sees it as of its read.

    A deadlock (two writers locking two keys in opposite orders; the
    database aborts one after ``deadlock_timeout``) or a serialization
    failure (CockroachDB) is handled here: the aborted transaction begins
    again, takes its locks and does its reads again in the same order and,
    when every read answers as before, goes on from where it was (what the
    caller computed from them still holds).  When one answers otherwise, or
    after ``_ATTEMPTS`` tries, it raises ``WriteConflict``, and nothing of it
    is written.  A writer that was never aborted never raises it.

Group commit, flush, prewarm, snapshot, stats
    ``group()`` keeps one write transaction (one set of locks, one commit) for all
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
    one cannot hold its locks for ever.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import random
import threading
import time
import weakref

from bisect import bisect_left, bisect_right, insort

import psycopg
import psycopg_pool

from psycopg import sql
from psycopg.types.numeric import Int8

from shoal.storage.engine import (
    CHANGE_LOG,
    CHANGE_LOG_HEAD,
    COUNTER_PREFIXES,
    SHARED_PREFIXES,
    SPACES,
    Engine,
    GroupPoisoned,
    ReadTxn,
    WriteConflict,
    WriteTxn,
)

__all__ = ["PostgresEngine", "StorageUnavailable", "FORMAT_VERSION", "shown_dsn", "partition_hash"]

#: The layout version kept in the ``writer`` row; a store of another version is refused.
#: 2: the ``items`` table's ``h`` column and the ``locks`` table.
FORMAT_VERSION = 2
DEFAULT_SCHEMA = "shoal"

_OVERFLOW = "overflow"
_WRITER = "writer"
_LOCKS = "locks"
#: One row: the catalog's version, moved by every commit that writes a table's
#: catalog entry (``CATALOG_PREFIXES``): see "Reads" in the module docstring.
_CATALOG_VERSION = "catalog_version"
#: One row: the sealed keyring of a store encrypted at rest (shoal.storage.keyring).
_KEYRING = "keyring"
#: ``meta`` keys the statement reads cache: the tables' catalog entries.
CATALOG_PREFIXES = SHARED_PREFIXES
#: How long a cached catalog entry is trusted after the catalog's version was
#: last seen unchanged: the bound on how late a node sees another node's
#: CreateTable, UpdateTable or DeleteTable (issue 19 asks for a second).
CATALOG_TRUST_S = 0.5
#: The spaces whose table has the partition hash column ``h``.
_PARTITIONED = ("items",)
#: An item's storage key begins with its table's 16-byte prefix and the 4-byte
#: hash of its partition key (shoal.api.common.partition_prefix): the bytes
#: every item of one partition shares.
_PARTITION_PREFIX = 20
#: Key locks are rows of ``locks`` named by a hash of (table, key) modulo
#: this: the table stays bounded, and two keys share a lock rarely enough.
_LOCK_STRIPES = 1 << 22
#: How often a write transaction is restarted after a deadlock or a
#: serialization failure before it gives up with WriteConflict.
_ATTEMPTS = 10
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
#: At most this many catalog entries cached per engine (then the cache starts again).
_CATALOG_CACHED = 4096
_MISS = object()
_MAX_BATCH = 1024

# PostgreSQL takes a REPEATABLE READ snapshot at the first statement after
# BEGIN, and the interface promises it as of read(): hence the SELECT 1.
_BEGIN_READ = b"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1"
_BEGIN_WRITE = b"BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE"

# What makes the database abort a transaction that may simply be run again:
# a serialization failure (40001) and a deadlock (40P01); psycopg makes the
# latter no subclass of the former's TransactionRollback.
_CONFLICTS = (psycopg.errors.TransactionRollback, psycopg.errors.DeadlockDetected)

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


def partition_hash(key: bytes, prefix: int = _PARTITION_PREFIX) -> int:
    """The ``h`` column of an ``items`` row: a signed 64-bit hash of the key's
    first ``prefix`` bytes (table and partition; 40 under encryption at rest, whose
    transform doubles every byte), the same for
    every item of a partition, so a distributed database sharding on it keeps
    a partition on one shard (Citus: ``create_distributed_table(..., 'h')``)."""
    return int.from_bytes(hashlib.blake2b(key[:prefix], digest_size=8).digest(), "big", signed=True)


def _lock_id(table: str, key: bytes) -> int:
    """The ``locks`` row that stands for ``key`` of ``table`` (see ``_LOCK_STRIPES``)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8, person=table.encode()).digest(), "big") % _LOCK_STRIPES


def _literal(value) -> str:
    """``value`` (bytes or int) as an SQL literal, for the statements sent
    with others in one simple query (see ``_simple_result``)."""
    if type(value) is int:
        return str(value)
    return "'\\x" + bytes(value).hex() + "'::bytea"


def _with_literals(statement: str, params) -> str:
    parts = statement.split("%s")
    return parts[0] + "".join(_literal(param) + part for param, part in zip(params, parts[1:]))


class _Statements:
    """The SQL of one schema, composed once (identifiers quoted by psycopg)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        tables = (*SPACES, _OVERFLOW)
        self.table = {name: sql.Identifier(schema, name) for name in (*tables, _LOCKS, _CATALOG_VERSION, _KEYRING)}
        self.get = {name: self._text("SELECT v FROM {} WHERE h = %s AND k = %s" if name in _PARTITIONED
                                     else "SELECT v FROM {} WHERE k = %s", name) for name in tables}
        # The same point selects for libpq's extended protocol, called directly (_fast_get).
        self.fast_get = {name: self._text("SELECT v FROM {} WHERE h = $1 AND k = $2" if name in _PARTITIONED
                                          else "SELECT v FROM {} WHERE k = $1", name).encode() for name in tables}
        self.upsert = {name: self._text("INSERT INTO {} (h, k, v) VALUES (%s, %s, %s) "
                                        "ON CONFLICT (h, k) DO UPDATE SET v = excluded.v" if name in _PARTITIONED
                                        else "INSERT INTO {} (k, v) VALUES (%s, %s) "
                                        "ON CONFLICT (k) DO UPDATE SET v = excluded.v", name) for name in tables}
        self.delete = {name: self._text("DELETE FROM {} WHERE k = ANY(%s)", name) for name in tables}
        # Many keys read in one statement once locked (PostgresWriteTxn._lock_ahead):
        # for ``items``, ``h`` and ``k`` each matched against an array, as vget_many does.
        self.read_many = {name: self._text("SELECT k, v FROM {} WHERE h = ANY(%s::bigint[]) AND k = ANY(%s::bytea[])"
                                           if name in _PARTITIONED else
                                           "SELECT k, v FROM {} WHERE k = ANY(%s::bytea[])", name) for name in tables}
        # Taking key locks: an upsert locks the row it inserts or finds, and
        # waits for a transaction holding it (PostgreSQL, CockroachDB and
        # YugabyteDB all lock on ON CONFLICT DO UPDATE).  Sorted, so that two
        # transactions locking the same set do not deadlock.
        self.lock_one = self._text("INSERT INTO {} (h) VALUES (%s) ON CONFLICT (h) DO UPDATE SET h = excluded.h",
                                   _LOCKS)
        self.lock_many = self._text("INSERT INTO {} (h) SELECT x FROM unnest(%s::bigint[]) AS t(x) ORDER BY x "
                                    "ON CONFLICT (h) DO UPDATE SET h = excluded.h", _LOCKS)
        # The statement reads' point selects with the catalog's version, in one
        # statement (one snapshot): (version, value).
        versioned = ("SELECT (SELECT version FROM {} WHERE id = 1), (SELECT v FROM {} WHERE h = $1 AND k = $2)",
                     "SELECT (SELECT version FROM {} WHERE id = 1), (SELECT v FROM {} WHERE k = $1)")
        self.vget = {name: sql.SQL(versioned[name not in _PARTITIONED]).format(
            self.table[_CATALOG_VERSION], self.table[name]).as_string(None).encode() for name in tables}
        # Many keys of one table at once (BatchGetItem): the version with each
        # row found, or alone (NULLs) when none is.  For ``items``, ``h`` and
        # ``k`` are each matched against their arrays: as h is a function of
        # k, that finds exactly the keys asked for, by the primary key.
        self.vget_many = {name: sql.SQL(
            "SELECT c.version, t.k, t.v FROM {} AS c LEFT JOIN {} AS t ON "
            + ("t.h = ANY($2::bigint[]) AND " if name in _PARTITIONED else "")
            + "t.k = ANY($1::bytea[]) WHERE c.id = 1").format(
            self.table[_CATALOG_VERSION], self.table[name]).as_string(None).encode() for name in tables}
        self.bump_catalog = self._text("UPDATE {} SET version = version + 1 WHERE id = 1 RETURNING version",
                                       _CATALOG_VERSION)
        self.placeholders = self._text("INSERT INTO {} (k, v) VALUES %s ON CONFLICT (k) DO NOTHING", "meta")
        self.lock_meta = self._text("SELECT k, v FROM {} WHERE k = ANY(%s::bytea[]) ORDER BY k FOR UPDATE", "meta")
        self._scans: dict = {}

    def _text(self, template: str, name: str) -> str:
        return sql.SQL(template).format(self.table[name]).as_string(None)

    def scan(self, name: str, low: str | None, high: bool, reverse: bool, partition: bool = False) -> str:
        """A batch of a range scan: ``partition`` whether ``h = %s`` comes
        first (a scan within one partition of ``items``: one range of its
        primary key), ``low`` None, ">=" or ">", ``high`` whether ``k < %s``
        bounds it; the limit is the last parameter."""
        key = (name, low, high, reverse, partition)
        text = self._scans.get(key)
        if text is None:
            conditions = ["h = %s"] if partition else []
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
            if name in _PARTITIONED:
                # The primary key leads with the hash column, as Citus wants
                # of a table distributed on it; the index on k alone serves
                # the scans that cross partitions (a Scan, the table's range).
                statements.append((sql.SQL("CREATE TABLE IF NOT EXISTS {} (h bigint NOT NULL, k bytea NOT NULL, "
                                           "v bytea NOT NULL, PRIMARY KEY (h, k))").format(self.table[name]), None))
                statements.append((sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (k)").format(
                    sql.Identifier(f"{name}_by_key"), self.table[name]), None))
                continue
            statements.append((sql.SQL("CREATE TABLE IF NOT EXISTS {} (k bytea PRIMARY KEY, v bytea NOT NULL)")
                               .format(self.table[name]), None))
        statements.append((sql.SQL("CREATE TABLE IF NOT EXISTS {} (h bigint PRIMARY KEY)")
                           .format(self.table[_LOCKS]), None))
        statements += self.additions()
        writer = sql.Identifier(self.schema, _WRITER)
        statements.append((sql.SQL("CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY, format integer NOT NULL)")
                           .format(writer), None))
        statements.append((sql.SQL("INSERT INTO {} (id, format) VALUES (1, %s) ON CONFLICT (id) DO NOTHING")
                           .format(writer), (FORMAT_VERSION,)))
        return statements

    def additions(self) -> list:
        """The tables added to format 2 without changing it (a store made
        before them gets them when it is next opened): the catalog's version
        and the keyring of a store encrypted at rest."""
        return [
            (sql.SQL("CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY, version bigint NOT NULL)")
             .format(self.table[_CATALOG_VERSION]), None),
            (sql.SQL("INSERT INTO {} (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
             .format(self.table[_CATALOG_VERSION]), None),
            (sql.SQL("CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY, record bytea NOT NULL)")
             .format(self.table[_KEYRING]), None),
        ]

    def catalog_version_query(self) -> sql.Composed:
        return sql.SQL("SELECT version FROM {} WHERE id = 1").format(self.table[_CATALOG_VERSION])

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
        encrypted: bool = False,
    ) -> None:
        """Connect to ``dsn`` (a libpq connection string or ``postgresql://`` URL)
        and create the schema's tables if they are missing.

        ``wait_timeout`` bounds how long a transaction waits for a connection
        of the pool before ``StorageUnavailable``.  Raises
        ``StorageUnavailable`` when the database cannot be reached within
        ``connect_timeout`` seconds, and ``RuntimeError`` when the schema
        holds a store of another format, or one encrypted at rest and
        ``encrypted`` is false (``shoal.storage.encrypted.open_encrypted_postgres``
        opens those).
        """
        self.dsn = dsn
        self.schema = schema
        self.sync = sync
        self._forked = False
        self._fail_fast_until = 0.0  # see _getconn
        self._direct = set()  # connections made outside the pool, see _direct_connection
        self._direct_lock = threading.Lock()
        self._next_direct = 0.0
        self._local = _ThreadState()
        self._sql = _Statements(schema)
        # The statement reads' catalog cache (see "Reads" in the module docstring).
        self._catalog_lock = threading.Lock()
        self._catalog_version: int | None = None  # the version the cached entries are of
        self._catalog_checked = float("-inf")  # when a statement last saw that version, at the latest
        self._catalog_entries: dict[bytes, bytes] = {}
        # What this engine knows of the keys above it: set by sealed_above().
        self._catalog_prefixes = CATALOG_PREFIXES
        self._shared_prefixes = SHARED_PREFIXES
        self._merges = True  # counters added to and the log renumbered at commit
        self._partition_prefix = _PARTITION_PREFIX
        options = {"autocommit": True, "prepare_threshold": 0}

        def configure(conn) -> None:
            # A node that hangs inside a transaction (stopped, cut off) must
            # not hold its locks, or a snapshot, for ever.
            conn.execute(f"SET idle_in_transaction_session_timeout = {_IDLE_IN_TRANSACTION_MS}")
            if not sync:
                conn.execute("SET synchronous_commit = off")
            # Every statement here reads keys or key ranges, which an index
            # scan reads in order and stops at the LIMIT.  A bitmap scan reads
            # every row in the range, then sorts: PostgreSQL chose it for a
            # Query of a partition that had grown far past what the table's
            # statistics said (it expected 4 rows), and "a busy user's latest
            # 20 events" then read all of them (bench/pg_nodes.py, seen with
            # auto_explain: 1,551 rows, 974 buffers, 3 ms;
            # PostgreSQL's CPU per Query-20 185 -> 2,600-5,100 µs after 20-40 s
            # of PutItems, 235-245 µs with this).  A database without the
            # setting (CockroachDB, which has no bitmap scans) refuses it: no harm.
            try:
                conn.execute("SET enable_bitmapscan = off")
            except psycopg.Error:
                pass

        self._options = options
        self._configure = configure

        # One connection first, that creates the schema and says plainly why
        # it cannot connect (the pool would only retry until its timeout).
        try:
            with psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout)), **options) as conn:
                self._create_schema(conn)
                if not encrypted and conn.execute(sql.SQL("SELECT 1 FROM {} WHERE id = 1").format(
                        self._sql.table[_KEYRING])).fetchone() is not None:
                    raise RuntimeError(f"the PostgreSQL schema {schema!r} is encrypted at rest: give its master key "
                                       f"with --master-key-file or SHOAL_MASTER_KEY")
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
        try:
            conn.execute(self._sql.catalog_version_query()).fetchone()
        except psycopg.errors.UndefinedTable:  # a format-2 store made before the additions
            for attempt in range(3):
                try:
                    with conn.transaction():
                        for statement, params in self._sql.additions():
                            conn.execute(statement, params)
                    break
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject,
                        psycopg.errors.DuplicateTable):
                    if attempt == 2:
                        raise

    def sealed_above(self, encode) -> None:
        """Declare that an encryption layer above (``EncryptedEngine``) stores
        every key as ``encode(key)`` (an order- and prefix-preserving map) and
        seals every value: the catalog's entries and an item's partition are
        then recognised by their transformed prefixes; and counters and the
        change log's head, sealed, cannot be added to or renumbered here, so
        they are locked and read as any other key (their writers then wait
        for each other)."""
        self._catalog_prefixes = tuple(encode(prefix) for prefix in CATALOG_PREFIXES)
        self._shared_prefixes = tuple(encode(prefix) for prefix in SHARED_PREFIXES)
        self._partition_prefix = len(encode(bytes(_PARTITION_PREFIX)))
        self._merges = False
        with self._catalog_lock:
            self._catalog_entries.clear()

    def read_keyring(self) -> bytes | None:
        """The sealed keyring record kept in the database, or None."""
        with _database_errors(), self._live_pool().connection() as conn:
            row = conn.execute(sql.SQL("SELECT record FROM {} WHERE id = 1").format(self._sql.table[_KEYRING])
                               ).fetchone()
        return None if row is None else bytes(row[0])

    def create_keyring(self, record: bytes) -> bytes | None:
        """Store ``record`` as the keyring, unless the database holds one or
        any data already: then nothing is written and the keyring found (None
        for a store that holds data and no keyring: a plain one) is
        returned; ``record`` itself when it was stored.  Two nodes starting
        at once on an empty store agree on one keyring."""
        table = self._sql.table[_KEYRING]
        select = sql.SQL("SELECT record FROM {} WHERE id = 1").format(table)
        with _database_errors(), self._live_pool().connection() as conn:
            row = conn.execute(select).fetchone()
            if row is not None:
                return bytes(row[0])
            if any(conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(self._sql.table[space])).fetchone()
                   for space in SPACES):
                return None
            # The first insert wins; a node that lost the race reads the winner's.
            conn.execute(sql.SQL("INSERT INTO {} (id, record) VALUES (1, %s) ON CONFLICT (id) DO NOTHING")
                         .format(table), (record,))
            return bytes(conn.execute(select).fetchone()[0])

    def replace_keyring(self, rewrap) -> None:
        """Replace the keyring record by ``rewrap(record)``, in one
        transaction that holds the row (two rotations never interleave);
        ``rewrap`` raising leaves the record as it was."""
        table = self._sql.table[_KEYRING]
        with _database_errors(), self._live_pool().connection() as conn:
            with conn.transaction():
                row = conn.execute(sql.SQL("SELECT record FROM {} WHERE id = 1 FOR UPDATE").format(table)
                                   ).fetchone()
                if row is None:
                    raise LookupError("the store holds no keyring")
                conn.execute(sql.SQL("UPDATE {} SET record = %s WHERE id = 1").format(table),
                             (rewrap(bytes(row[0])),))

    # -- the statement reads' catalog cache

    def _cached_entry(self, key: bytes):
        """The cached catalog entry ``key``, or ``_MISS`` when it must be read:
        not cached, or the version last seen too long ago."""
        if time.monotonic() - self._catalog_checked < CATALOG_TRUST_S:
            value = self._catalog_entries.get(key)
            if value is not None:
                return value
        return _MISS

    def _catalog_seen(self, version: int, sent: float, key: bytes | None = None, value=None) -> None:
        """A statement sent at ``sent`` saw the catalog at ``version`` (and
        ``key``'s entry as ``value``): the cache is dropped when the version
        moved, trusted from ``sent`` when it did not."""
        if key is None and version == self._catalog_version:
            # Every item read: no lock.  Racing a thread that saw the version
            # move, this can only date the trust of the newer entries from
            # ``sent``, before the next version could have been committed
            # (this statement saw the older one after ``sent``): still within
            # CATALOG_TRUST_S of any change, as promised.
            if sent > self._catalog_checked:
                self._catalog_checked = sent
            return
        with self._catalog_lock:
            current = self._catalog_version
            if current is None or version > current:
                self._catalog_entries.clear()
                self._catalog_version = version
                self._catalog_checked = sent
            elif version < current:  # a statement older than what is known: nothing learnt
                return
            elif sent > self._catalog_checked:
                self._catalog_checked = sent
            if key is not None:
                entries = self._catalog_entries
                if value is None:
                    entries.pop(key, None)
                else:
                    if len(entries) >= _CATALOG_CACHED:
                        entries.clear()
                    entries[key] = bytes(value)

    def _catalog_committed(self, version: int | None) -> None:
        """This engine committed a change of the catalog, moving it to
        ``version`` (None: unknown): nothing cached before stays in use."""
        with self._catalog_lock:
            self._catalog_entries.clear()
            self._catalog_checked = float("-inf")
            if version is not None and (self._catalog_version is None or version > self._catalog_version):
                self._catalog_version = version

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
        if not snapshot:
            local = self._local
            reader = getattr(local, "reads", None)
            if reader is not None and self._pool is not None:
                # The thread's kept connection and its block object, reused
                # as they are (this is on every GetItem's path).
                local.reads = None  # this block's while it runs (a nested read takes another)
                txn = reader.reads
                txn._conn = reader.conn
                txn._fresh = True
                txn._ended = False
                return txn
            self._live_pool()
            return PostgresStatementReads(self, _Reader(self._getconn()))
        self._live_pool()
        return PostgresReadTxn(self)

    reads_ahead = True

    @contextlib.contextmanager
    def read_ahead(self, space: str, keys):
        """Read ``keys`` of ``space`` in one statement (``get_many``), then
        answer the thread's statement reads of them from what was read,
        until the block ends or the thread opens a write: see
        ``Engine.read_ahead``.  Long keys (overflow groups) are left to be
        read when asked for."""
        _check_space(space)
        keys = list({key: None for key in keys if 0 < len(key) <= _DIRECT_MAX})
        local = self._local
        if not keys:
            yield
            return
        with self.read(snapshot=False) as txn:
            values = txn.get_many(space, keys)
        local.ahead = (space, dict(zip(keys, values)))
        try:
            yield
        finally:
            local.ahead = None

    def lock_ahead(self, space: str, keys) -> None:
        """Lock and read ``keys`` of ``space`` for the thread's open group in
        one statement (``Engine.lock_ahead``); nothing outside a group.
        Long keys (overflow groups) are left to be read when asked for."""
        _check_space(space)
        group = self._local.group
        if group is not None:
            group.txn._lock_ahead(space, keys)

    def write(self) -> "PostgresWriteTxn":
        """A write transaction (READ COMMITTED, locking what it reads: see the module docstring)."""
        self._live_pool()
        local = self._local
        local.ahead = None  # nothing read before this write may answer a read after it
        group = local.group
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
                pool.putconn(reads.conn)
            self._pool = None
            _live_engines.discard(self)
            pool.close()

    def __repr__(self) -> str:
        return f"PostgresEngine({shown_dsn(self.dsn)!r}, schema={self.schema!r})"


class _ThreadState(threading.local):
    """What an engine keeps per thread: ``group``, the open group commit;
    ``reads``, the kept connection of statement reads (``_Reader``);
    ``writing``, whether a write is open; ``ahead``, ``(space, {key:
    value})`` read ahead (``PostgresEngine.read_ahead``)."""

    group = None
    reads = None
    writing = False
    ahead = None


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

    def _rows(self, statement: str, params, table: str | None = None) -> list:
        """Run one query (a scan's batch of ``table``: ``SELECT k, v``) in the transaction."""
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
            return _fast_get(conn, self._sql.fast_get[table], _get_params(table, key, self._engine._partition_prefix))

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

    def get_many(self, space: str, keys) -> list:
        """``[get(space, key) for key in keys]`` in one statement (BatchGetItem's
        100 keys in one round trip); long keys, in overflow groups, one by one."""
        _check_space(space)
        out: list = [None] * len(keys)
        direct: dict[bytes, list[int]] = {}
        for at, key in enumerate(keys):
            if not key:
                continue
            key = key if type(key) is bytes else bytes(key)
            if len(key) > _DIRECT_MAX:
                out[at] = self.get(space, key)
            else:
                direct.setdefault(key, []).append(at)
        if direct:
            found = self._raw_get_many(space, list(direct))
            for key, places in direct.items():
                value = found.get(key)
                for at in places:
                    out[at] = value
        return out

    def _raw_get_many(self, table: str, keys: list) -> dict:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the transaction has ended")
        params = [_bytea_array(keys)]
        if table in _PARTITIONED:
            prefix = self._engine._partition_prefix
            params.append(("{" + ",".join(str(h) for h in {partition_hash(key, prefix) for key in keys}) + "}"
                           ).encode())
        with _database_errors():
            result = _exec(conn, self._sql.vget_many[table], params, [0] * len(params))
        get = result.get_value
        return {get(row, 1): get(row, 2) for row in range(result.ntuples) if get(row, 1) is not None}


class _Reader:
    """A connection kept for statement reads, with the names of the
    statements prepared on it (found once per check-out from the pool, not
    once per statement), and the block object that uses it (``reads``),
    reused by each of the thread's blocks in turn."""

    __slots__ = ("conn", "pgconn", "prepared", "reads")

    def __init__(self, conn) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        names = _PREPARED.get(conn)
        if names is None:
            names = _PREPARED[conn] = set()
        self.prepared = names
        self.reads = None


class PostgresStatementReads(PostgresReadTxn):
    """Reads that need no snapshot across statements (``read(snapshot=False)``):
    each runs on its own in autocommit, on the thread's own connection for
    such reads (taken from the pool once and kept: the pool's check-out and
    return cost as much as a statement).  A connection found broken at the
    first statement is replaced as ``_begin`` replaces one (nothing has been
    read yet).  The object is the kept connection's, reused by the thread's
    next block once this one has ended: like any transaction, it is valid
    only inside its block.

    This is every GetItem's path, and on a node over PostgreSQL its Python
    costs as much as the round trip's system calls: ``get`` of an item or of
    a catalog entry goes straight to its statement, and no step allocates
    what it need not (a context manager, a closure, a weak reference)."""

    __slots__ = ("_fresh", "_reader")

    def __init__(self, engine: PostgresEngine, reader: _Reader) -> None:  # noqa: the base's fields, set here
        self._engine = engine
        self._sql = engine._sql
        self._ended = False
        reader.reads = self
        self._reader = reader
        self._conn = reader.conn
        self._fresh = True

    def __exit__(self, exc_type, exc, tb) -> None:
        self._end(False)

    def _end(self, commit: bool) -> None:
        self._ended = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        engine = self._engine
        local = engine._local
        # An idle transaction status also says the connection is open and sound.
        if conn.pgconn.transaction_status == _TRANSACTION_IDLE and engine._pool is not None \
                and getattr(local, "reads", None) is None:
            local.reads = self._reader  # kept for the thread's next reads
        else:
            engine._putconn(conn)

    def get(self, space: str, key: bytes) -> bytes | None:
        """An item, or a table's catalog entry (from the cache while it is
        trusted), by the statement that also reads the catalog's version;
        any other key as ``PostgresReadTxn.get`` reads it.  A key read
        ahead (``PostgresEngine.read_ahead``) is answered from that."""
        ahead = self._engine._local.ahead
        if ahead is not None and ahead[0] == space and type(key) is bytes:
            value = ahead[1].get(key, _MISS)
            if value is not _MISS:
                return value
        if space == "items":
            if 0 < len(key) <= _DIRECT_MAX:
                return self._versioned("items", key, False)
        elif space == "meta" and 0 < len(key) <= _DIRECT_MAX:
            engine = self._engine
            if key.startswith(engine._catalog_prefixes):
                if time.monotonic() - engine._catalog_checked < CATALOG_TRUST_S:
                    value = engine._catalog_entries.get(key)
                    if value is not None:
                        return value
                return self._versioned("meta", key, True)
        return PostgresReadTxn.get(self, space, key)

    def _versioned(self, table: str, key: bytes, catalog: bool) -> bytes | None:
        """``key`` of ``table`` (a stored key of at most ``_DIRECT_MAX``
        bytes) with the catalog's version, in one prepared statement."""
        engine = self._engine
        if table in _PARTITIONED:
            # The h column's 8 bytes in binary: partition_hash's digest as it is.
            params = [hashlib.blake2b(key[:engine._partition_prefix], digest_size=8).digest(), key]
        else:
            params = [key]
        sent = time.monotonic()
        result = self._prepared(_VGET_NAMES[table], self._sql.vget[table], params, _BINARY[len(params)])
        value = result.get_value(0, 1)
        engine._catalog_seen(int.from_bytes(result.get_value(0, 0), "big", signed=True), sent,
                             key if catalog else None, value)
        return value

    def _rows(self, statement: str, params, table: str | None = None) -> list:
        if self._fresh:
            return self._first(_rows_on, statement, params)
        return super()._rows(statement, params)

    def _raw_get(self, table: str, key: bytes) -> bytes | None:
        """What ``get`` does not read itself: the long keys' groups (``overflow``)."""
        if table == "items" or (table == "meta" and key.startswith(self._engine._catalog_prefixes)):
            return self._versioned(table, key, table == "meta")
        if self._fresh:
            return self._first(_get_on, self._sql.fast_get[table],
                               _get_params(table, key, self._engine._partition_prefix))
        return super()._raw_get(table, key)

    def _raw_get_many(self, table: str, keys: list) -> dict:
        """The values of ``keys`` (stored keys of ``table``) found, in one
        statement, which also refreshes the catalog's version."""
        engine = self._engine
        sent = time.monotonic()
        params = [_bytea_array(keys)]
        if table in _PARTITIONED:
            prefix = engine._partition_prefix
            params.append(("{" + ",".join(str(h) for h in {partition_hash(key, prefix) for key in keys}) + "}"
                           ).encode())
        result = self._prepared(_VGET_MANY_NAMES[table], self._sql.vget_many[table], params, _TEXT[len(params)])
        get = result.get_value
        engine._catalog_seen(int.from_bytes(get(0, 0), "big", signed=True), sent)
        return {get(row, 1): get(row, 2) for row in range(result.ntuples) if get(row, 1) is not None}

    def _prepared(self, name: bytes, text: bytes, params: list, formats: list):
        """The result of the named statement on this block's connection
        (``_first``'s work inlined: a GetItem's statement is its first)."""
        if self._conn is None:
            raise RuntimeError("the transaction has ended")
        if self._fresh:
            self._fresh = False
            try:
                result = _prepared(self._reader, name, text, params, formats)
            except psycopg.OperationalError as exc:
                return self._replaced(exc, _prepared, name, text, params, formats)
            if self._engine._fail_fast_until:
                self._engine._fail_fast_until = 0.0  # the database answered (see _begin)
            return result
        try:
            return _prepared(self._reader, name, text, params, formats)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StorageUnavailable(f"the PostgreSQL storage is unavailable: {exc}".strip()) from exc

    def _first(self, run, *args):
        """``run(reader, *args)`` for the first statement: a connection found
        broken is replaced and the statement run again (nothing has been read yet)."""
        if self._conn is None:
            raise RuntimeError("the transaction has ended")
        self._fresh = False
        try:
            out = run(self._reader, *args)
        except psycopg.OperationalError as exc:
            return self._replaced(exc, run, *args)
        if self._engine._fail_fast_until:
            self._engine._fail_fast_until = 0.0  # the database answered (see _begin)
        return out

    def _replaced(self, failure, run, *args):
        """After the first statement failed with ``failure``: while the
        connection proves broken, another replaces it and ``run`` is tried again."""
        engine = self._engine
        tries = engine._live_pool().max_size
        while True:
            conn = self._conn
            broken = conn.closed
            _rollback_quietly(conn)
            engine._putconn(conn)
            self._conn = None
            if not broken or tries <= 0:
                raise StorageUnavailable(f"the PostgreSQL storage is unavailable: {failure}".strip()) from failure
            tries -= 1
            self._reader = _Reader(engine._getconn())
            self._reader.reads = self
            self._conn = self._reader.conn
            try:
                out = run(self._reader, *args)
            except psycopg.OperationalError as exc:
                failure = exc
                continue
            engine._fail_fast_until = 0.0
            return out


def _rows_on(reader: _Reader, statement: str, params) -> list:
    return _fast_rows(reader.conn, statement, params)


def _get_on(reader: _Reader, text: bytes, params: list) -> bytes | None:
    return _fast_get(reader.conn, text, params)


_BINARY = {1: [1], 2: [1, 1]}  # parameter formats: all binary, by count
_TEXT = {1: [0], 2: [0, 0]}  # all text
_TRANSACTION_IDLE = int(psycopg.pq.TransactionStatus.IDLE)


def _get_params(table: str, key: bytes, prefix: int) -> list:
    """The parameters of ``fast_get[table]``: the hash column first where there is one."""
    if table in _PARTITIONED:
        return [partition_hash(key, prefix).to_bytes(8, "big", signed=True), key]
    return [key]


def _db_scan(txn, table, low, high, reverse):
    if low is not None and high is not None and low >= high:
        return
    batch = _FIRST_BATCH
    statements = txn._sql
    # A range within one partition (a Query) is one range of the primary key (h, k).
    prefix = txn._engine._partition_prefix
    partition = (table in _PARTITIONED and low is not None and high is not None
                 and len(low) >= prefix and low[:prefix] == high[:prefix])
    first = [partition_hash(low, prefix)] if partition else []
    if reverse:
        lower_op, upper = (">=" if low is not None else None), high
        while True:
            params = first + [b for b in (low, upper) if b is not None] + [batch]
            rows = txn._rows(statements.scan(table, lower_op, upper is not None, True, partition), params, table)
            yield from rows
            if len(rows) < batch:
                return
            upper = rows[-1][0]
            batch = min(batch * 2, _MAX_BATCH)
    else:
        lower_op, lower = (">=" if low is not None else None), low
        while True:
            params = first + [b for b in (lower, high) if b is not None] + [batch]
            rows = txn._rows(statements.scan(table, lower_op, high is not None, False, partition), params, table)
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


class _WriteState:
    """What a write transaction (and the grouped writes sharing it) has done,
    kept so that it can be restarted after a deadlock and replayed."""

    __slots__ = ("overlays", "seen", "locked", "replay", "bases", "doomed", "begun")

    def __init__(self) -> None:
        self.overlays: dict[str, _Overlay] = {}
        self.seen: dict[str, dict[bytes, bytes | None]] = {}  # committed values read, by table and key
        self.locked: set[int] = set()  # the key locks held (``locks`` rows)
        # What the work was told, in order: ("get", table, key, value) and
        # ("rows", table, statement, params, rows); all under key locks.
        self.replay: list = []
        self.bases: dict[bytes, bytes | None] = {}  # the log head and counters as first read (no lock)
        self.doomed = False  # a restart found a changed answer: only a rollback is left
        self.begun = False  # BEGIN is sent with the first statement


def _is_special(table: str, key: bytes) -> bool:
    """The ``meta`` keys read without a lock and merged at commit (the log head, counters)."""
    return table == "meta" and (key == CHANGE_LOG_HEAD or key.startswith(COUNTER_PREFIXES))


def _added(current: bytes | None, base: bytes | None, written: bytes) -> bytes:
    """A counter's value at commit: ``current`` plus what the transaction
    added (``written - base``), field by field; ``written`` itself when the
    layouts differ (nothing to add to)."""
    size = len(written)
    if size % 8 or (base is not None and len(base) != size) or (current is not None and len(current) != size):
        return written
    out = bytearray()
    for at in range(0, size, 8):
        field = int.from_bytes(written[at:at + 8], "big", signed=True)
        if base is not None:
            field -= int.from_bytes(base[at:at + 8], "big", signed=True)
        if current is not None:
            field += int.from_bytes(current[at:at + 8], "big", signed=True)
        out += (field & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    return bytes(out)


class PostgresWriteTxn(PostgresReadTxn, WriteTxn):
    """A write transaction: READ COMMITTED, every key it reads locked, its
    changes waiting in memory until commit (see the module docstring)."""

    __slots__ = ("_st", "_tries")

    def __init__(self, engine: PostgresEngine) -> None:
        super().__init__(engine, begin=False)
        self._st = _WriteState()
        local = engine._local
        if getattr(local, "writing", False):  # nested writes are outside the interface
            raise RuntimeError("this thread already has a write() open on this engine")
        self._conn = engine._getconn()  # BEGIN goes with the first statement: one round trip fewer
        self._tries = engine._live_pool().max_size
        local.writing = True

    def __exit__(self, exc_type, exc, tb) -> None:
        self._end(commit=exc_type is None)

    def _end(self, commit: bool) -> None:
        if self._ended:
            return
        self._ended = True
        conn = self._conn
        if conn is None:  # no connection could replace a broken one: nothing had begun
            self._st = _WriteState()
            self._engine._local.writing = False
            return
        try:
            with _database_errors():
                if commit and any(o.values for o in self._st.overlays.values()):
                    self._guarded(self._commit)
                elif self._st.begun:
                    _simple(conn, b"ROLLBACK")
        except BaseException:
            _rollback_quietly(conn)
            raise
        finally:
            self._conn = None
            self._st = _WriteState()
            self._engine._local.writing = False
            self._engine._putconn(conn)

    # -- conflicts: restart and replay

    def _guarded(self, run):
        """``run(conn)``; after a deadlock or a serialization failure (the
        database aborted the transaction), the transaction is begun again,
        its locked reads replayed, and ``run`` retried.  Replayed reads that
        answer as before leave the work's conclusions valid, so it never
        learns of the restart; one that answers otherwise raises
        ``WriteConflict``."""
        st = self._st
        if st.doomed:
            raise WriteConflict("the write transaction lost a race with another writer; run it again")
        if self._conn is None:
            raise StorageUnavailable("the PostgreSQL storage is unavailable: no connection could be made")
        attempt = 0
        while True:
            with _database_errors():
                fresh = not st.begun
                try:
                    return run(self._conn)
                except _CONFLICTS:
                    pass
                except psycopg.OperationalError:
                    # A connection found broken by the transaction's first
                    # statement (the database restarted, or ended idle
                    # sessions): nothing has happened yet, so another one is
                    # taken, as PostgresEngine._begin does.
                    if not (fresh and self._conn.closed and self._tries > 0):
                        raise
                    self._tries -= 1
                    self._engine._putconn(self._conn)
                    self._conn = None
                    self._conn = self._engine._getconn()
                    continue
                while True:
                    attempt += 1
                    if attempt >= _ATTEMPTS:
                        st.doomed = True
                        raise WriteConflict(f"the write transaction was aborted {attempt} times by "
                                            "deadlocks with other writers; run it again")
                    try:
                        self._restart(attempt)
                        break
                    except _CONFLICTS:
                        continue

    def _restart(self, attempt: int) -> None:
        conn = self._conn
        _rollback_quietly(conn)
        if conn.closed:
            raise psycopg.OperationalError("the connection to the server was lost")
        time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** attempt)))  # let the other side finish
        st = self._st
        _simple(conn, _BEGIN_WRITE)
        st.begun = True
        st.locked.clear()
        for entry in st.replay:
            if entry[0] == "get":
                _, table, key, value = entry
                same = self._locked_get(conn, table, key) == value
            else:
                _, table, statement, params, rows = entry
                same = self._locked_rows(conn, table, statement, params) == rows
            if not same:
                st.doomed = True
                raise WriteConflict("the write transaction lost a race with another writer; run it again")

    # -- statements

    def _query(self, conn, text: str):
        """``_simple_result`` of ``text``, after the BEGIN if it is still to be sent."""
        st = self._st
        if st.begun:
            return _simple_result(conn, text.encode())
        try:
            result = _simple_result(conn, _BEGIN_WRITE + b"; " + text.encode())
        finally:
            st.begun = not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        self._engine._fail_fast_until = 0.0  # the database answered (see PostgresEngine._begin)
        return result

    def _begun(self, conn):
        """``conn``, in the transaction (BEGIN sent on its own if no statement has been)."""
        st = self._st
        if not st.begun:
            _simple(conn, _BEGIN_WRITE)
            st.begun = True
            self._engine._fail_fast_until = 0.0
        return conn

    # -- locked reads

    def _locked_get(self, conn, table: str, key: bytes) -> bytes | None:
        """Lock ``key`` and read it, in one round trip (read after the lock
        is granted: READ COMMITTED gives each statement a fresh snapshot)."""
        st = self._st
        lock = _lock_id(table, key)
        statements = self._sql
        read = _with_literals(statements.get[table], _get_params_text(table, key, self._engine._partition_prefix))
        if table == "meta" and key.startswith(self._engine._shared_prefixes):
            # Read by every writer of a table, written by few: a shared lock
            # on the row; a key not there yet is locked as any other.
            read += " FOR SHARE"
            result = self._query(conn, read)
            if result.ntuples:
                return _unhex(result.get_value(0, 0))
        if lock in st.locked:
            result = self._query(conn, read)
        else:
            result = self._query(conn, _with_literals(statements.lock_one, (lock,)) + "; " + read)
            st.locked.add(lock)
        return _unhex(result.get_value(0, 0)) if result.ntuples else None

    def _locked_rows(self, conn, table: str, statement: str, params) -> list:
        """A scan's batch, its rows locked: read, lock what came back, read
        again (one round trip) until no new key came back."""
        st = self._st
        rows = _fast_rows(self._begun(conn), statement, params)
        again = _with_literals(statement, params)
        while True:
            locks = {_lock_id(table, key) for key, _ in rows} - st.locked
            if not locks:
                return rows
            result = self._query(conn, _lock_many(self._sql, locks) + "; " + again)
            st.locked |= locks
            get = result.get_value
            rows = [(_unhex(get(row, 0)), _unhex(get(row, 1))) for row in range(result.ntuples)]

    def _lock_ahead(self, table: str, keys) -> None:
        """``PostgresEngine.lock_ahead``: the keys' locks taken (in lock
        order, as ``_lock_many`` does) and the keys read after them, in one
        round trip; each read then answered from ``seen`` and replayed after
        a restart as if read alone.  Keys already read or written here, and
        a single key (its own read is one round trip too), are left alone."""
        st = self._st
        seen = st.seen.setdefault(table, {})
        overlay = st.overlays.get(table)
        written = overlay.values if overlay is not None else ()
        keys = sorted({bytes(key) for key in keys if 0 < len(key) <= _DIRECT_MAX} - seen.keys()
                      - set(written))
        if len(keys) < 2:
            return
        if self._conn is None:
            raise RuntimeError("the transaction has ended")
        locks = {_lock_id(table, key) for key in keys}
        listed = "ARRAY[" + ",".join(_literal(key) for key in keys) + "]"
        if table in _PARTITIONED:
            prefix = self._engine._partition_prefix
            hashes = "ARRAY[" + ",".join(str(h) for h in {partition_hash(key, prefix) for key in keys}) + "]"
            read = self._sql.read_many[table].replace("%s", hashes, 1).replace("%s", listed, 1)
        else:
            read = self._sql.read_many[table].replace("%s", listed, 1)

        def run(conn):
            fresh = locks - st.locked  # a restart replayed some of them already
            return self._query(conn, (_lock_many(self._sql, fresh) + "; " if fresh else "") + read)

        result = self._guarded(run)
        st.locked |= locks
        get = result.get_value
        found = {_unhex(get(row, 0)): _unhex(get(row, 1)) for row in range(result.ntuples)}
        for key in keys:
            value = found.get(key)
            seen[key] = value
            st.replay.append(("get", table, key, value))

    def _rows(self, statement: str, params, table: str | None = None) -> list:
        if self._conn is None:
            raise RuntimeError("the transaction has ended")
        rows = self._guarded(lambda conn: self._locked_rows(conn, table, statement, params))
        self._st.replay.append(("rows", table, statement, params, rows))
        return rows

    # -- commit

    def _commit(self, conn) -> None:
        """Lock what was written blind and the log head and counters it
        moved (one round trip), then every change and the COMMIT (one more)."""
        st = self._st
        statements = self._sql
        head_base = st.bases.get(CHANGE_LOG_HEAD)
        base_seq = int.from_bytes(head_base[:8], "big") if head_base else 0
        meta = st.overlays.get("meta")
        head_written = meta.values.get(CHANGE_LOG_HEAD) if meta is not None and CHANGE_LOG_HEAD in st.bases \
            else None
        written_seq = int.from_bytes(head_written[:8], "big") if head_written else base_seq
        blind: set[int] = set()
        merged: list[bytes] = []
        shared: list[bytes] = []
        shared_prefixes = self._engine._shared_prefixes
        for table, overlay in st.overlays.items():
            for key in overlay.values:
                if table == "meta" and key in st.bases:
                    merged.append(key)
                elif table == "meta" and key.startswith(shared_prefixes):
                    shared.append(key)  # its row locked before the head: see below
                    blind.add(_lock_id(table, key))
                elif table == CHANGE_LOG and head_written is not None and len(key) == 8 \
                        and base_seq < int.from_bytes(key, "big") <= written_seq:
                    continue  # appended: numbered under the head's lock below
                else:
                    blind.add(_lock_id(table, key))
        blind -= st.locked
        parts = []
        if blind:
            parts.append(_lock_many(statements, blind))
        if shared:
            # The rows other writers read FOR SHARE, locked before the head,
            # which those writers lock at their commit while holding them.
            shared.sort()
            parts.append(statements.lock_meta.replace("%s", "ARRAY[" + ",".join(
                _literal(key) for key in shared) + "]"))
        if merged:
            merged.sort()
            # A row to lock even where there is none yet (the first write to
            # a new table, to an empty log): placeholders of zeros, replaced
            # below; inserters of the same key wait for each other here.
            meta_written = st.overlays["meta"].values
            absent = [(key, _zeros(key, meta_written[key])) for key in merged if meta_written[key] is not None]
            if absent:
                parts.append(statements.placeholders.replace("%s", ", ".join(
                    f"({_literal(key)}, {_literal(value)})" for key, value in absent)))
            parts.append(statements.lock_meta.replace("%s", "ARRAY[" + ",".join(
                _literal(key) for key in merged) + "]"))
        current: dict[bytes, bytes] = {}
        if parts:
            result = self._query(conn, "; ".join(parts))
            st.locked |= blind
            if merged:
                get = result.get_value
                current = {_unhex(get(row, 0)): _unhex(get(row, 1)) for row in range(result.ntuples)}
        # The final values: counters added to, the log renumbered after the head as it is now.
        changes = {table: dict(overlay.values) for table, overlay in st.overlays.items()}
        for key in merged:
            written = changes["meta"][key]
            if written is None or key == CHANGE_LOG_HEAD:
                continue
            changes["meta"][key] = _added(current.get(key), st.bases[key], written)
        if head_written is not None:
            now = current.get(CHANGE_LOG_HEAD)
            now_seq = int.from_bytes(now[:8], "big") if now else 0
            shift = now_seq - base_seq
            if shift:
                log = changes.get(CHANGE_LOG, {})
                for seq in range(written_seq, base_seq, -1):
                    old = seq.to_bytes(8, "big")
                    if old in log:
                        log[(seq + shift).to_bytes(8, "big")] = log.pop(old)
            node = now[8:] if now and len(now) > 8 else head_written[8:]
            changes["meta"][CHANGE_LOG_HEAD] = (written_seq + shift).to_bytes(8, "big") + node
        self._begun(conn)
        with conn.pipeline():
            cursor = conn.cursor()
            for table, values in changes.items():
                gone = [key for key, value in values.items() if value is None]
                if gone:
                    conn.execute(statements.delete[table], (gone,))
                if table in _PARTITIONED:
                    prefix = self._engine._partition_prefix
                    kept = [(Int8(partition_hash(key, prefix)), key, value) for key, value in values.items()
                            if value is not None]
                else:
                    kept = [(key, value) for key, value in values.items() if value is not None]
                if kept:
                    cursor.executemany(statements.upsert[table], kept)
            # A catalog entry written: the version moves, so that every
            # node's cached entries are dropped (after the writes: the row is
            # held only for the COMMIT, and DDL writers wait on nothing else).
            catalog = self._engine._catalog_prefixes
            bumped = conn.execute(statements.bump_catalog, prepare=False) if any(
                key.startswith(catalog) for key in changes.get("meta", ())) else None
            conn.execute("COMMIT", prepare=False)
        if bumped is not None:
            self._engine._catalog_committed(bumped.fetchone()[0])

    def get_many(self, space: str, keys) -> list:
        """Each key locked and read as ``get`` does."""
        return [self.get(space, key) for key in keys]

    # -- the raw level, with the buffered changes over the committed rows

    def _raw_get(self, table: str, key: bytes) -> bytes | None:
        st = self._st
        overlay = st.overlays.get(table)
        if overlay is not None and key in overlay.values:
            return overlay.values[key]
        seen = st.seen.get(table)
        if seen is None:
            seen = st.seen[table] = {}
        elif key in seen:
            return seen[key]
        if self._conn is None:
            raise RuntimeError("the transaction has ended")
        if self._engine._merges and _is_special(table, key):
            value = self._guarded(lambda conn: _fast_get(self._begun(conn), self._sql.fast_get[table], [key]))
            st.bases.setdefault(key, value)
        else:
            value = self._guarded(lambda conn: self._locked_get(conn, table, key))
            st.replay.append(("get", table, key, value))
        seen[key] = value
        return value

    def _raw_put(self, table: str, key: bytes, value: bytes) -> None:
        if self._ended:
            raise RuntimeError("the transaction has ended")
        overlay = self._st.overlays.get(table)
        if overlay is None:
            overlay = self._st.overlays[table] = _Overlay()
        overlay.set(key, value if type(value) is bytes else bytes(value))

    def _raw_delete(self, table: str, key: bytes) -> bool:
        existed = self._raw_get(table, key) is not None
        if existed:
            overlay = self._st.overlays.get(table)
            if overlay is None:
                overlay = self._st.overlays[table] = _Overlay()
            overlay.set(key, None)
        return existed

    def _raw_scan(self, table, low, high, reverse):
        overlay = self._st.overlays.get(table)
        if overlay is None:
            overlay = self._st.overlays[table] = _Overlay()
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
        self._st = outer._st
        self._tries = 0
        self._group = group
        self._wrote = False

    def _guarded(self, run):
        """The group's transaction runs it: a restart, or a broken
        connection replaced before anything began, is the group's."""
        outer = self._group.txn
        try:
            return outer._guarded(run)
        finally:
            self._conn = outer._conn

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


def _zeros(key: bytes, written: bytes) -> bytes:
    """A merged key's placeholder: a head at position 0 with the written node
    id, or a counter of zeros."""
    if key == CHANGE_LOG_HEAD:
        return bytes(8) + written[8:]
    return bytes(len(written))


def _lock_many(statements: _Statements, locks) -> str:
    """The statement taking the key locks ``locks`` (lock ids), in order."""
    return statements.lock_many.replace("%s", "ARRAY[" + ",".join(map(str, sorted(locks))) + "]")


def _get_params_text(table: str, key: bytes, prefix: int) -> list:
    """The parameters of ``get[table]`` (the hash column first where there is one)."""
    return [partition_hash(key, prefix), key] if table in _PARTITIONED else [key]


def _unhex(text: bytes) -> bytes:
    """A bytea in text form (``\\x`` and hex digits) as bytes."""
    return binascii.unhexlify(memoryview(text)[2:])


def _simple_result(conn, command: bytes):
    """The result of the last of the statements ``command`` (libpq's simple
    query protocol: several statements in one round trip, each with its own
    snapshot under READ COMMITTED; values come back as text).  Raises as
    psycopg would for the first that fails."""
    result = conn.pgconn.exec_(command)
    _checked_result(conn, result)
    return result


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


def _fast_get(conn, text: bytes, params: list) -> bytes | None:
    """One point select through libpq directly, the key and the value in
    binary: psycopg's ``execute`` (a cursor, its adaptation and prepare
    bookkeeping) costs several times the query's own work here, on every
    GetItem."""
    result = _exec(conn, text, params, [1] * len(params))
    if result.ntuples == 0:
        return None
    return result.get_value(0, 0)


_VGET_NAMES = {name: f"shoal_vget_{name}".encode() for name in (*SPACES, _OVERFLOW)}
_VGET_MANY_NAMES = {name: f"shoal_vget_many_{name}".encode() for name in (*SPACES, _OVERFLOW)}
# The named statements prepared on each connection (by _prepared).
_PREPARED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_UNDEFINED_STATEMENT = b"26000"  # psycopg sent DEALLOCATE ALL on the session since
_DUPLICATE_STATEMENT = b"42P05"


def _prepared(reader: _Reader, name: bytes, text: bytes, values: list, formats: list):
    """The result of the named prepared statement ``name`` (``text``),
    prepared on the reader's connection first if it is not yet: a GetItem is
    then one round trip that the server neither parses nor plans.  Only
    outside a transaction (the statement reads): psycopg drops every
    prepared statement of a session after a rollback (``DEALLOCATE ALL``),
    and the execution that finds it gone, which fails harmlessly in
    autocommit, is prepared again and retried."""
    names = reader.prepared
    pgconn = reader.pgconn
    for _ in range(2):
        if name not in names:
            prepared = pgconn.prepare(name, text)
            if prepared.status != _COMMAND_OK and \
                    prepared.error_field(psycopg.pq.DiagnosticField.SQLSTATE) != _DUPLICATE_STATEMENT:
                _checked_result(reader.conn, prepared)
            names.add(name)
        result = pgconn.exec_prepared(name, values, formats, 1)
        if result.status == _TUPLES_OK:
            return result
        if result.error_field(psycopg.pq.DiagnosticField.SQLSTATE) != _UNDEFINED_STATEMENT:
            break
        names.discard(name)
    _checked_result(reader.conn, result)
    return result


_TUPLES_OK = int(psycopg.pq.ExecStatus.TUPLES_OK)
_COMMAND_OK = int(psycopg.pq.ExecStatus.COMMAND_OK)


def _bytea_array(keys) -> bytes:
    """``keys`` as the text of a bytea[] parameter."""
    return ("{" + ",".join('"\\\\x' + key.hex() + '"' for key in keys) + "}").encode()


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
