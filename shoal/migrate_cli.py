"""``shoal migrate --from SOURCE --to DESTINATION``: move a whole store
between the embedded engine (a data directory) and PostgreSQL, either way.

Both engines hold the same key spaces with the same keys and values (the
storage interface is the boundary: ``shoal.storage.engine``), so a store
moves as its key spaces, copied key by key in key order: tables, their
items, secondary index entries, stream settings and records, the change
log, time to live settings, backups' catalog, IAM users, metrics, all of it.
The copy goes in chunks of ``--chunk`` keys, each in one write transaction
of the destination that also records where the copy stands
(``migrate/state`` in ``meta``), so an interrupted migration (a kill, a
lost connection) resumes where its last chunk ended when run again with the
same source, and never copies a key twice or leaves one out.

The source must not be served meanwhile: a data directory is held
exclusively (a running ``shoal serve`` refuses the migration, and the
migration refuses a server); over PostgreSQL, stop the nodes first.  The
destination must be empty, or hold this source's interrupted migration.
An encrypted data directory cannot be moved to PostgreSQL (which has no
encryption at rest in Shoal: use the database's own), nor written by this
tool.
"""

from __future__ import annotations

import os
import sys
import time

import orjson

#: The destination's record of the copy, in ``meta``; never copied itself.
STATE_KEY = b"migrate/state"
_OWN_PREFIX = b"migrate/"
DEFAULT_CHUNK = 1000


class Refused(Exception):
    """The migration cannot start: the message says why."""


def add_migrate_command(commands) -> None:
    """Register ``shoal migrate`` on the CLI's subcommand parser."""
    parser = commands.add_parser(
        "migrate", help="copy a whole store between a data directory and PostgreSQL (either way)",
        description="Copy every table, index, stream, setting and item of a store to another engine: "
                    "a data directory (the embedded LMDB engine) or a postgresql:// URL, either way. "
                    "Resumable: run it again after an interruption. Stop the servers of the source first.")
    parser.add_argument("--from", dest="source", required=True,
                        help="the source: a data directory, or postgresql://USER@HOST:PORT/DB")
    parser.add_argument("--to", dest="destination", required=True,
                        help="the destination: a data directory (new or empty), or a postgresql:// URL")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                        help=f"keys per destination transaction (default {DEFAULT_CHUNK})")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from shoal.backup_cli import Progress

    if args.chunk < 1:
        print("shoal migrate: --chunk must be at least 1", file=sys.stderr)
        return 2
    try:
        with _Store(args.source, "source") as source, _Store(args.destination, "destination") as destination:
            if source.shown == destination.shown:
                raise Refused("the source and the destination are the same store")
            status = migrate(source.engine, destination.engine, source.shown, args.chunk, Progress)
            _carry_iam_key(args.source, destination.engine)
            return status
    except Refused as exc:
        print(f"shoal migrate: {exc}", file=sys.stderr)
        return 1


def migrate(source, destination, source_name: str, chunk: int, progress_class=None, out=None) -> int:
    """Copy every key space of the engine ``source`` into ``destination``
    (resuming a copy of the same ``source_name``); returns the exit status."""
    from shoal.storage.engine import SPACES

    out = out or sys.stderr
    state = _start(destination, source_name)
    totals = _totals(source)
    total = sum(totals.values())
    done = sum(state["copied"].values())
    if state["space"] is not None and done:
        print(f"shoal migrate: resuming at {done:,} of {total:,} keys", file=out)
    progress = progress_class("copying", "keys") if progress_class else None
    started = time.monotonic()
    for space in SPACES[SPACES.index(state["space"]):] if state["space"] else ():
        after = bytes.fromhex(state["after"]) if state["after"] is not None else None
        while True:
            with source.read() as txn:
                rows = []
                for key, value in txn.scan(space, after + b"\x00" if after is not None else b"", None):
                    if space == "meta" and key.startswith(_OWN_PREFIX):
                        continue  # a migration's own record, if the source was once a destination
                    rows.append((key, bytes(value)))
                    if len(rows) >= chunk:
                        break
            with destination.write() as txn:
                for key, value in rows:
                    txn.put(space, key, value)
                state["copied"][space] = state["copied"].get(space, 0) + len(rows)
                if len(rows) < chunk:  # the space is done: on to the next one
                    following = SPACES.index(space) + 1
                    state["space"] = SPACES[following] if following < len(SPACES) else None
                    state["after"] = None
                else:
                    after = rows[-1][0]
                    state["after"] = after.hex()
                txn.put("meta", STATE_KEY, orjson.dumps(state))
            if progress is not None:
                progress.update(sum(state["copied"].values()), total)
            if len(rows) < chunk:
                break
    if progress is not None:
        progress.finish()
    copied = sum(state["copied"].values())
    counts = ", ".join(f"{space} {state['copied'].get(space, 0):,}" for space in SPACES)
    print(f"shoal migrate: {copied:,} keys copied from {source_name} ({counts}) "
          f"in {time.monotonic() - started:.1f} s", file=out)
    return 0


def _carry_iam_key(source_where: str, destination) -> None:
    """A data directory keeps the key of its IAM secrets in a file beside the
    store (``iam.key``), which copying the key spaces leaves behind: put it
    in the destination's ``meta`` as a shared store keeps it (``iam/secret-key``,
    ``shoal.auth.iam``), unless the destination has one, so the migrated
    access keys still sign.  From PostgreSQL the key is in ``meta`` already,
    and was copied with it."""
    from shoal.auth.iam import SECRET_KEY_META, read_key_file
    from shoal.storage.datadir import is_postgres_url

    if is_postgres_url(source_where):
        return
    key = read_key_file(source_where)
    if key is None:
        return
    with destination.write() as txn:
        if txn.get("meta", SECRET_KEY_META) is None:
            txn.put("meta", SECRET_KEY_META, key)


def _start(destination, source_name: str) -> dict:
    """The copy's state in the destination: new for an empty one, the
    interrupted copy of the same source's, else ``Refused``."""
    from shoal.storage.engine import SPACES

    with destination.read() as txn:
        raw = txn.get("meta", STATE_KEY)
        if raw is not None:
            state = orjson.loads(raw)
            if state["source"] != source_name:
                raise Refused(f"the destination holds a migration from {state['source']}, not from {source_name}")
            if state["space"] is None:
                raise Refused(f"the destination already holds a complete migration from {source_name}")
            return state
        for space in SPACES:
            for key, _ in txn.scan(space, b"", None):
                raise Refused("the destination is not empty: give a new data directory or an empty database")
    state = {"source": source_name, "space": SPACES[0], "after": None, "copied": {}, "started": time.time()}
    with destination.write() as txn:
        txn.put("meta", STATE_KEY, orjson.dumps(state))
    return state


def _totals(engine) -> dict[str, int]:
    """Keys per space (for the progress bar)."""
    from shoal.storage.engine import SPACES

    totals = {}
    with engine.read() as txn:
        for space in SPACES:
            totals[space] = sum(1 for _ in txn.scan(space, b"", None))
    return totals


class _Store:
    """A data directory (held exclusively, as the offline tools hold it) or
    a PostgreSQL database, opened for the migration."""

    def __init__(self, where: str, role: str) -> None:
        self.where, self.role = where, role
        self.engine = None
        self.lock = None
        self.shown = where

    def __enter__(self) -> "_Store":
        from shoal.storage.datadir import DataDirBusy, DataDirError, hold_exclusively, is_postgres_url, open_data_dir

        if is_postgres_url(self.where):
            from shoal.storage.postgres_engine import PostgresEngine, StorageUnavailable, shown_dsn

            self.shown = shown_dsn(self.where)
            try:
                self.engine = PostgresEngine(self.where, sync=True)
            except StorageUnavailable as exc:
                raise Refused(str(exc)) from None
            except RuntimeError as exc:  # a store of another format
                raise Refused(f"{self.shown}: {exc}") from None
            return self
        self.shown = os.path.abspath(self.where)
        if self.role == "source" and not os.path.isdir(self.where):
            raise Refused(f"data directory {self.where} does not exist")
        try:
            self.engine = open_data_dir(self.where, create=self.role == "destination")
        except DataDirError as exc:
            raise Refused(f"{exc} (shoal migrate moves unencrypted stores only)"
                          if "encrypt" in str(exc) else str(exc)) from None
        try:
            self.lock = hold_exclusively(self.where, "shoal migrate")
        except DataDirBusy as exc:
            self.engine.close()
            raise Refused(f"{exc}: stop the server first") from None
        return self

    def __exit__(self, *exc_info) -> None:
        if self.engine is not None:
            self.engine.close()
        if self.lock is not None:
            os.ftruncate(self.lock, 0)
            os.close(self.lock)
