"""Capacity buckets shared by every node of a PostgreSQL store.

``SharedBuckets`` shares a table's budget between the workers of one
machine (a file they all map); nodes over one PostgreSQL database each
have their own data directory, so each would grant the whole rate: two
nodes, twice the capacity.  ``PostgresBuckets`` keeps the buckets in the
database instead, one row per bucket (``capacity_buckets`` in the store's
schema), with the same interface: a worker still takes tokens a chunk at a
time (``CHUNK_S`` of the rate) and spends them locally, so the database is
asked once per chunk, not per request; a take is one transaction that
locks the bucket's row, refills it to now by the database's clock (the
nodes' clocks need not agree), and takes what it holds.  Every node and
worker then grants no more than the rate and a chunk each, over any number
of nodes.

An on-demand bucket's peak state (``shoal.capacity.on_demand``) lives in
the row too.  Hot keys' buckets (``--partition-limits``) stay per process.

The cost: a take is a round trip to the database (about 0.45 ms on a
loaded 2-core machine, against 3 us for the file), made once per chunk per
worker and bucket.  A bucket found empty is not asked again for the time
it takes to refill what was wanted (at most ``CHUNK_S``): a client
hammering a throttled table costs the database about ten asks a second
per worker, not one per refused request.

Which buckets a server uses: ``shoal.capacity.shared_buckets``.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Callable

from shoal.capacity import CHUNK_S, Bucket, Limit, SharedBuckets
from shoal.capacity.on_demand import EMPTY, STATE, OnDemandRules

TABLE = "capacity_buckets"


class PostgresBuckets(SharedBuckets):
    """Buckets in the rows of ``<schema>.capacity_buckets`` of the database at ``dsn``."""

    def __init__(self, dsn: str, schema: str, clock: Callable[[], float] | None = None,
                 rules: OnDemandRules | None = None) -> None:
        super().__init__(None, clock or time.time, rules)
        self._private = None  # (the base keeps private buckets without a path: these are the database's)
        self.dsn, self.schema = dsn, schema
        #: The database's clock unless a test gives one.
        self._own_clock = clock is not None
        self._conn = None
        self._pid = os.getpid()
        #: bucket digest -> the time (``clock``) before which it is not asked again: it was empty
        self._empty_until: dict[bytes, float] = {}
        from psycopg import sql

        table = sql.Identifier(schema, TABLE)
        self._create = [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)),
                        sql.SQL("CREATE TABLE IF NOT EXISTS {} (k bytea PRIMARY KEY, tokens float8 NOT NULL, "
                                "updated float8 NOT NULL, rate float8 NOT NULL, capacity float8 NOT NULL, "
                                "taken float8 NOT NULL, peak bytea NOT NULL)").format(table)]
        # A new bucket is inserted unset (rate 0); the row is locked either way, and read.
        self._lock_row = sql.SQL(
            "INSERT INTO {} AS b (k, tokens, updated, rate, capacity, taken, peak) VALUES (%s, 0, 0, 0, 0, 0, %s) "
            "ON CONFLICT (k) DO UPDATE SET k = b.k "
            "RETURNING tokens, updated, rate, capacity, taken, peak, "
            "extract(epoch from clock_timestamp())::float8").format(table)
        self._store = sql.SQL("UPDATE {} SET tokens = %s, updated = %s, rate = %s, capacity = %s, taken = %s, "
                              "peak = %s WHERE k = %s").format(table)
        self._read = sql.SQL("SELECT taken, peak FROM {} WHERE k = %s").format(table)
        self._connection()  # the table made now, and the database reachable

    def _connection(self):
        """This process's connection (made again after a failure)."""
        import psycopg

        if self._pid != os.getpid():  # a forked child: the parent's session is not closed from here
            _inherited.append(self._conn)
            self._conn, self._pid = None, os.getpid()
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
            for statement in self._create:
                _create_racing(self._conn, statement)
        return self._conn

    def _call(self, work):
        """``work(connection)`` under this process's lock; a connection that
        failed is dropped (the next call connects again) and the error raised."""
        import psycopg

        with self._lock:
            try:
                return work(self._connection())
            except psycopg.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise

    def close(self) -> None:
        while self.companions:
            self.companions.pop().close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def take(self, limit: Limit, wanted: float) -> float:
        """Up to ``wanted`` tokens from the bucket of ``limit``, in one
        transaction on its row (see ``SharedBuckets.take``)."""
        digest = _digest(limit.key)
        until = self._empty_until.get(digest)
        if until is not None:
            if self.clock() < until:
                return 0.0
            self._empty_until.pop(digest, None)

        def work(conn) -> float:
            with conn.transaction():
                tokens, updated, rate, capacity, taken, peak, now = conn.execute(
                    self._lock_row, (digest, STATE.pack(*EMPTY))).fetchone()
                if self._own_clock:
                    now = self.clock()
                bucket = Bucket(rate, capacity, updated, tokens) if rate > 0 else None
                rate, capacity = limit.rate, limit.capacity
                if limit.warm:
                    state, rate, capacity = self._on_demand(limit, STATE.unpack(peak), taken, now)
                    peak = STATE.pack(*state)
                if bucket is None:
                    bucket = Bucket(rate, capacity, now)
                got = self._take(bucket, rate, capacity, wanted, now)
                conn.execute(self._store, (bucket.tokens, bucket.updated, bucket.rate, bucket.capacity, taken + got,
                                           peak, digest))
                if got < wanted:  # spent: what was missing refills in this long
                    self._empty_until[digest] = self.clock() + min(CHUNK_S, (wanted - got) / max(bucket.rate, 1e-9))
                return got

        return self._call(work)

    def _row(self, key: str):
        return self._call(lambda conn: conn.execute(self._read, (_digest(key),)).fetchone())

    def taken(self, key: str) -> float:
        """The tokens taken from bucket ``key`` by every node and worker."""
        row = self._row(key)
        return row[0] if row is not None else 0.0

    def peak(self, key: str) -> tuple:
        row = self._row(key)
        return STATE.unpack(row[1]) if row is not None else EMPTY


#: Connections a forked child inherited: kept referenced, never closed there.
_inherited: list = []


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def _create_racing(conn, statement) -> None:
    """Run a CREATE ... IF NOT EXISTS that other processes (a server's
    workers start together, and nodes) may run at the same moment:
    PostgreSQL does not make that safe (the loser can fail on the catalog's
    unique index, pg_type's for a table), so a loser runs it again, when it
    finds the winner's object."""
    import time

    from psycopg import errors

    for attempt in range(5):
        try:
            conn.execute(statement)
            return
        except (errors.UniqueViolation, errors.DuplicateTable, errors.DuplicateSchema, errors.DuplicateObject):
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
