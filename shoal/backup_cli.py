"""``shoal backup``, ``shoal restore``, ``shoal export`` and ``shoal import``:
the offline tools, and the backup schedules.

The offline tools work on a data directory that no server is serving: they
take its serving lock exclusively (``shoal.storage.datadir.hold_exclusively``)
and refuse, in one line that says what to do, while ``shoal serve`` holds it
(and ``shoal serve`` refuses to start while a tool works).  They run the API's
own operations in this process, on a ``shoal.api.Context`` over the data
directory: CreateBackup, RestoreTableFromBackup, RestoreTableToPointInTime,
ExportTableToPointInTime and ImportTable, with the checks, errors and stored
records of a request to the server (a backup made here is in ListBackups, an
export in ListExports).  The operations that answer at once and go on in a
job (restores, exports, imports) are waited for (``jobs.wait_for_jobs``);
meanwhile a progress bar on stderr, when it is a terminal, shows how far they
are, and a summary is printed at the end.

Folders stand for S3 as ``shoal serve --s3-dir`` makes them: ``--out
FOLDER`` of an export is the bucket (the files go to FOLDER/AWSDynamoDB/<export
id>/...), and ``--from FOLDER`` of an import is the bucket it reads (only the
``data/`` files of the one export a folder holds, if it holds one).  Parquet
exports are ``shoal.api.parquet``'s.

``shoal backup schedule`` sets, lists and removes a table's schedule of
automatic backups (``shoal.api.schedules``), which the server takes.  Like
``shoal iam`` it may run beside a serving server: it writes one small record.

Over PostgreSQL (``--storage postgresql://...`` or SHOAL_STORAGE, as ``shoal
serve`` takes it) there is no directory to lock, and the tools run while
nodes serve the store: each is then what one more node doing that request
would be.  A backup or an export reads the table in one snapshot (a
REPEATABLE READ transaction: every item as of one position of the change
log, writers never blocked), so what nodes write meanwhile is either wholly
in it or not at all; its record (ListBackups, ListExports) is in the
database.  A restore or an import creates a new table through the same
catalog and write path as CreateTable and the item writes (the catalog
version every node checks moves, so every node sees the table within a
second, CREATING until its items are loaded), and a name taken meanwhile by a
node's CreateTable is refused as DynamoDB refuses it.  Its job record names
this process and beats, so nodes judge it by its heartbeat.  A schedule is a
record in the database, taken by whichever node claims it first.  What a node
does at its start for the jobs of processes that stopped (drop a half-made
backup, delete a half-restored table, mark an export or import FAILED) a
tool does at its start too over PostgreSQL, where nodes start rarely; and an
interrupted tool (Ctrl-C, SIGTERM) stops its job and undoes it at once, over
either engine.  What cannot be done over PostgreSQL is refused:
``shoal keys kms-key-state`` (nodes over PostgreSQL read no KMS key states),
and a store that is not there for the tools that only read one (nothing is
created in the wrong database).  These tools are not authorized by IAM:
whoever holds the database's URL (and the master key of a store encrypted at
rest) holds every table, as with a data directory.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone

from shoal.keys_cli import add_data_dir_options, add_storage_option, open_data_dir_of, storage_problem

#: argparse's name for ``shoal backup TABLE``: not a possible table name, so
#: that a table may be called anything but ``schedule``.
_TAKE = "take:"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_EXPORT_FORMATS = {"dynamodb-json": "DYNAMODB_JSON", "ion": "ION", "parquet": "PARQUET"}
_IMPORT_FORMATS = {"dynamodb-json": "DYNAMODB_JSON", "ion": "ION", "csv": "CSV"}
_COMPRESSIONS = {"gzip": "GZIP", "zstd": "ZSTD", "none": "NONE"}


# ---------------------------------------------------------------- the command line


class _AnyWord(dict):
    """The choices of ``shoal backup``'s first word: any word is one (argparse
    checks it before the action sees it)."""

    def __contains__(self, word) -> bool:
        return True


class _TableOrCommand(argparse._SubParsersAction):
    """``shoal backup``'s first word: ``schedule``, or else a table name
    (parsed by the parser registered as ``_TAKE``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.choices = _AnyWord()  # what argparse checks; the parsers stay in _name_parser_map

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] not in self._name_parser_map:
            values = [_TAKE, *values]
        super().__call__(parser, namespace, values, option_string)


def _common(parser) -> None:
    add_data_dir_options(parser)
    add_storage_option(parser, "work on this PostgreSQL store (as shoal serve --storage serves it; its nodes may "
                               "serve on meanwhile) instead of a data directory (env SHOAL_STORAGE); --data-dir "
                               "is then not used")
    parser.add_argument("--region", default=os.environ.get("SHOAL_REGION", "us-east-1"),
                        help="the region of the tables (env SHOAL_REGION; default us-east-1)")


def add_backup_commands(commands) -> None:
    """Register ``backup``, ``restore``, ``export`` and ``import``."""
    offline = ("It works on a data directory no server is serving (stop the server first; it refuses while "
               "one serves it), or with --storage on a PostgreSQL store while its nodes serve, and shows a "
               "progress bar on stderr when that is a terminal.")
    backup = commands.add_parser(
        "backup", help="back up a table of a data directory, or schedule automatic backups",
        description="shoal backup TABLE --data-dir DIR [--name NAME]: make an on-demand backup of TABLE (as "
                    f"CreateBackup does), listed by ListBackups and restorable by shoal restore. {offline} "
                    "shoal backup schedule TABLE --every 1h --keep 7d: have the server back up TABLE every hour "
                    "and keep each backup 7 days (SYSTEM backups); --list and --remove. See shoal backup TABLE "
                    "--help and shoal backup schedule --help.")
    words = backup.add_subparsers(dest="backup_command", metavar="TABLE | schedule", action=_TableOrCommand,
                                  help="the table to back up, or schedule")
    take = words.add_parser(_TAKE, prog="shoal backup", description=f"Make an on-demand backup of TABLE. {offline}")
    take.add_argument("table", metavar="TABLE", help="the table to back up (its name or ARN)")
    take.add_argument("--name", help="the backup's name (default: the table's name and the time)")
    _common(take)
    take.set_defaults(handler=_backup)

    schedule = words.add_parser(
        "schedule", help="back up a table automatically",
        description="Have the server back up TABLE every --every and keep each backup for --keep (at most "
                    "35 days), as SYSTEM backups named TABLE$ScheduledBackup (ListBackups with BackupType "
                    "SYSTEM or ALL shows them). The first is taken at once. It may run while the server serves.")
    schedule.add_argument("table", metavar="TABLE", nargs="?", help="the table")
    schedule.add_argument("--every", type=_duration, help="how often: a number and s, m, h, d or w (1h, 30m)")
    schedule.add_argument("--keep", type=_duration, help="how long each backup is kept (7d)")
    schedule.add_argument("--list", action="store_true", help="list the schedules")
    schedule.add_argument("--remove", action="store_true",
                          help="remove TABLE's schedule (its backups stay until they expire)")
    _common(schedule)
    schedule.set_defaults(handler=_schedule)
    backup.set_defaults(handler=lambda args: _usage(backup))

    restore = commands.add_parser(
        "restore", help="restore a backup, or a table as it was at a time, as a new table",
        description="Restore backup --backup-arn (as RestoreTableFromBackup does), or table --from-table as it "
                    "was at --at, a time of its point-in-time recovery window (as RestoreTableToPointInTime "
                    f"does), as the new table --target. {offline}")
    restore.add_argument("--backup-arn", help="the backup to restore")
    restore.add_argument("--from-table", help="the table to restore as it was at --at")
    restore.add_argument("--at", type=_instant, help="ISO 8601 time (UTC unless it has a zone), epoch seconds, "
                                                    "or 'latest'")
    restore.add_argument("--target", required=True, help="the new table's name")
    _common(restore)
    restore.set_defaults(handler=_restore)

    export = commands.add_parser(
        "export", help="write a table to files: DynamoDB JSON, Ion or Parquet",
        description="Write TABLE (as it is, or as it was at --at, a time of its point-in-time recovery window) "
                    "into --out: dynamodb-json and ion as ExportTableToPointInTime writes them "
                    "(AWSDynamoDB/<export id>/...), parquet as part-NNNNN.parquet files with a schema inferred "
                    f"from the attributes, for DuckDB, pandas or Spark. {offline}")
    export.add_argument("table", metavar="TABLE", help="the table (its name or ARN)")
    export.add_argument("--format", required=True, choices=sorted(_EXPORT_FORMATS), help="the files' format")
    export.add_argument("--out", required=True, metavar="FOLDER", help="where the files go (created if missing)")
    export.add_argument("--at", type=_instant, help="ISO 8601 time (UTC unless it has a zone) or epoch seconds")
    _common(export)
    export.set_defaults(handler=_export)

    importing = commands.add_parser(
        "import", help="make a new table from files: DynamoDB JSON, Ion or CSV",
        description="Make the new table --table from the files under --from (as ImportTable does): an export's "
                    "data files if the folder holds one export (shoal export's --out, or DynamoDB's), else "
                    f"every file in it. Bad items are counted and skipped. {offline}")
    importing.add_argument("--from", dest="source", required=True, metavar="FOLDER", help="the files to import")
    importing.add_argument("--format", required=True, choices=sorted(_IMPORT_FORMATS), help="the files' format")
    importing.add_argument("--table", required=True, help="the new table's name")
    importing.add_argument("--key", required=True, type=_key_schema, metavar="NAME:TYPE[,NAME:TYPE]",
                           help="the partition key, and the sort key if any, with their types S, N or B "
                                "(user_id:S,ts:N)")
    importing.add_argument("--compression", choices=("auto", *_COMPRESSIONS), default="auto",
                           help="of the files (default: by their names' endings: .gz, .zst)")
    _common(importing)
    importing.set_defaults(handler=_import)


def _usage(parser) -> int:
    parser.print_help()
    return 2


def _duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a number and s, m, h, d or w (like 1h or 7d), not {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def _instant(text: str) -> float | str:
    """Epoch seconds of an ISO 8601 time or a number; 'latest' as it is."""
    if text == "latest":
        return text
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time like 2025-06-01T12:00:00Z, not {text!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _key_schema(text: str) -> list[tuple[str, str]]:
    parts = [part.strip() for part in text.split(",")]
    keys = []
    for part in parts:
        name, _, kind = part.rpartition(":")
        if not name or kind not in ("S", "N", "B"):
            raise argparse.ArgumentTypeError(f"expected NAME:TYPE with TYPE S, N or B, not {part!r}")
        keys.append((name, kind))
    if len(keys) > 2:
        raise argparse.ArgumentTypeError("at most two keys: the partition key and the sort key")
    return keys


# ---------------------------------------------------------------- what every tool shares


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a
    terminal (a log file or a pipe gets the summary alone)."""

    WIDTH = 30

    def __init__(self, label: str, unit: str = "items", stream=None) -> None:
        self.stream = stream or sys.stderr
        self.label, self.unit = label, unit
        self.shown = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: float, total: float | None = None, force: bool = False) -> None:
        if not self.shown:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        elapsed = now - self.started
        amount = _amount(done, self.unit)
        if total:
            share = min(done / total, 1.0)
            bar = "#" * int(share * self.WIDTH)
            line = (f"{self.label} [{bar:<{self.WIDTH}}] {share * 100:3.0f}% {amount}/{_amount(total, self.unit)} "
                    f"{elapsed:.1f} s")
        else:
            line = f"{self.label} {amount} {elapsed:.1f} s"
        self.stream.write("\r" + line[:200] + "\033[K")
        self.stream.flush()

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _amount(value: float, unit: str) -> str:
    if unit == "bytes":
        return _size(value)
    return f"{int(value):,} {unit}"


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


class _Refused(Exception):
    """The tool stops with this one-line message (exit code 1)."""


class _Workspace:
    """The store a tool works on and a Context of the API over it: a data
    directory held exclusively, or a PostgreSQL store (``--storage``) that
    nodes may be serving.  A ``with`` block: at its end it waits for the jobs
    the operation started, or, when it ends by an interruption, stops them
    and undoes what they had half done (``_undo_interrupted``)."""

    def __init__(self, args, what: str, instead: str | None, *, create: bool = False,
                 s3_dir: str | None = None) -> None:
        from shoal.api import DEFAULT_ACCOUNT, Context
        from shoal.api.catalog import Catalog
        from shoal.settings import request_clock
        from shoal.storage.datadir import DataDirBusy, hold_exclusively

        self.lock = None
        self.engine = open_data_dir_of(args, create=create)  # the --storage store, if given
        if self.engine is None:
            raise _Refused(None)  # open_data_dir_of said why
        if not args.storage:
            try:
                self.lock = hold_exclusively(args.data_dir, what)
            except DataDirBusy as exc:
                self.engine.close()
                raise _Refused(f"{exc}: stop the server first{', or ' + instead if instead else ''}") from None
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        self.ctx = Context(args.region, DEFAULT_ACCOUNT, self.engine, Catalog(self.engine), now=request_clock(),
                           s3_dir=s3_dir)
        if args.storage:
            # Nodes clear up after stopped processes only when they start,
            # which over PostgreSQL may be seldom: a tool killed before this
            # one left its half-made work to whoever starts next.
            try:
                self._recover()
            except BaseException:
                self.engine.close()
                raise

    def __enter__(self) -> "_Workspace":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from shoal.api import jobs

        try:
            interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
            if not interrupted:
                with _interruptions.deferred():
                    while not jobs.wait_for_jobs(self.engine, 0.2):
                        if _interruptions.pending:
                            interrupted = True
                            break
            if interrupted:
                with _interruptions.deferred():  # a second Ctrl-C waits for the undoing
                    self._undo_interrupted()
                if exc_type is None:
                    raise KeyboardInterrupt
        finally:
            self.engine.close()
            if self.lock is not None:
                os.ftruncate(self.lock, 0)
                os.close(self.lock)

    def _recover(self) -> None:
        """What a node does at its start: the backups left CREATING, the
        restored tables left half-loaded and the exports and imports left
        IN_PROGRESS by processes that stopped (judged by their heartbeats)."""
        from shoal.api import backups, exports

        exports.recover_interrupted(self.engine)
        backups.recover_interrupted(self.engine, self.ctx.catalog)

    def _undo_interrupted(self) -> None:
        """Stop this process's jobs where they are and undo them now (a
        restore's table deleted, an export or import FAILED), rather than at
        the next start of a server.  A backup copy runs on the main thread:
        the interruption has already dropped it (``backups._copy``)."""
        from shoal.api import jobs

        jobs.stop_jobs(self.engine)
        try:
            self._recover()
        except Exception as exc:  # the store may be what failed; the next start of a node clears up
            print(f"shoal: could not undo the interrupted work now ({exc}); the next start of a server will",
                  file=sys.stderr)

    def table(self, name: str):
        """The table (name or ARN), or _Refused in DynamoDB's words."""
        from shoal.api import tables
        from shoal.errors import ShoalError

        try:
            resolved = tables.table_name_of(self.ctx, name)
        except ShoalError:
            resolved = None
        with self.engine.read() as txn:
            table = self.ctx.catalog.get(txn, self.ctx.region, resolved) if resolved else None
        if table is None:
            raise _Refused(f"Table not found: {name} (in region {self.ctx.region})")
        return table

    def item_count(self, name: str) -> int:
        from shoal.api.catalog import read_stats

        with self.engine.read() as txn:
            table = self.ctx.catalog.get(txn, self.ctx.region, name)
            return read_stats(txn, table.prefix)[0] if table is not None else 0

    def wait(self, progress: Progress, measure) -> None:
        """Wait for the jobs the operation started, showing ``measure()`` =
        (done, total or None) meanwhile."""
        from shoal.api import jobs

        try:
            with _interruptions.deferred():
                while not jobs.wait_for_jobs(self.engine, 0.2):
                    _interruptions.check()
                    progress.update(*measure())
            progress.update(*measure(), force=True)
        finally:
            progress.finish()


def _run(tool):
    """A tool's handler: ``tool(args)``, with refusals and the API's errors as
    one ``shoal:`` line; SIGTERM interrupts it as Ctrl-C does (exit 130)."""
    from shoal.errors import ShoalError

    def handler(args) -> int:
        problem = storage_problem(args.storage)
        if problem:
            print(f"shoal: {problem}", file=sys.stderr)
            return 2
        previous = {number: signal.signal(number, _interruptions.handle) for number in (signal.SIGINT, signal.SIGTERM)}
        _interruptions.pending = False
        try:
            return tool(args)
        except _Refused as exc:
            if exc.args[0]:
                print(f"shoal: {exc.args[0]}", file=sys.stderr)
            return 1
        except ShoalError as exc:
            print(f"shoal: {exc.message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("shoal: interrupted (what had not finished was stopped: a restore's table deleted, an export or "
                  "import marked FAILED, a backup dropped)", file=sys.stderr)
            return 130
        finally:
            for number, handler_before in previous.items():
                signal.signal(number, handler_before)

    return handler


class _Interruptions:
    """Ctrl-C (SIGINT) and SIGTERM raise ``KeyboardInterrupt`` at once,
    except while the main thread waits for a thread to end (``deferred``):
    then the signal is noted, and ``check`` raises it between two waits.  An
    exception raised inside ``Thread.join`` can leave a thread that still
    runs marked as finished (CPython before 3.13), and the jobs would then
    not be stopped and undone."""

    def __init__(self) -> None:
        self.pending = False
        self._deferring = 0

    def handle(self, signum, frame) -> None:
        if self._deferring:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


_interruptions = _Interruptions()


def _validated(operation: str, request: dict) -> dict:
    """``request`` checked against the API model, as the server checks it."""
    from shoal.api.shapes import ShapeValidator

    ShapeValidator.for_service("dynamodb").validate(operation, request)
    return request


# ---------------------------------------------------------------- shoal backup TABLE


@_run
def _backup(args) -> int:
    from shoal.api import backups

    with _Workspace(args, "shoal backup", "use CreateBackup through it (aws dynamodb create-backup)") as work:
        table = work.table(args.table)
        name = args.name or f"{table.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
        request = _validated("CreateBackup", {"TableName": table.name, "BackupName": name})
        total = work.item_count(table.name)
        progress = Progress(f"backing up {table.name}")
        # The copy runs on this thread, so that an interruption reaches it:
        # it then drops the half-made backup itself.
        with _Shown(progress, lambda: (_copied(work, table, name), total)):
            details = backups.create_backup(work.ctx, request)["BackupDetails"]
        made = backups.describe_backup(work.ctx, {"BackupArn": details["BackupArn"]})["BackupDescription"]
        print(f"Backed up {table.name}: {made['SourceTableDetails']['ItemCount']:,} items, "
              f"{_size(details['BackupSizeBytes'])}, in {progress.elapsed():.1f} s, as backup {name!r}")
        print(f"BackupArn: {details['BackupArn']}")
        return 0


class _Shown:
    """A ``with`` block during which a thread draws ``progress`` of
    ``measure()`` = (done, total) every 0.2 s (when it is drawn at all)."""

    def __init__(self, progress: Progress, measure) -> None:
        self.progress, self.measure = progress, measure
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._draw, name="shoal-progress", daemon=True)

    def _draw(self) -> None:
        while not self.stop.wait(0.2):
            try:
                self.progress.update(*self.measure())
            except Exception:  # a progress bar is not worth failing for
                pass

    def __enter__(self) -> "_Shown":
        if self.progress.shown:
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        if self.thread.is_alive():
            with _interruptions.deferred():
                self.thread.join()
        self.progress.finish()


def _copied(work, table, name: str) -> int:
    """How many items the backup being made has copied: the last ordinal under its prefix."""
    import orjson

    from shoal.api import backups
    from shoal.api.common import successor

    first = backups.backup_key(work.ctx.region, table.arn + "/backup/")
    with work.engine.read() as txn:
        for _, raw in txn.scan("meta", first, successor(first), reverse=True):
            record = orjson.loads(raw)
            if record["name"] == name and record["status"] == "CREATING":
                prefix = bytes.fromhex(record["prefix"])
                last = next(iter(txn.scan("items", prefix, successor(prefix), reverse=True)), None)
                return 0 if last is None else int.from_bytes(bytes(last[0])[len(prefix):], "big") + 1
    return 0


# ---------------------------------------------------------------- shoal backup schedule


@_run
def _schedule(args) -> int:
    from shoal.api import DEFAULT_ACCOUNT, Context, schedules
    from shoal.api.catalog import Catalog
    from shoal.settings import request_clock

    if args.list:
        if args.every or args.keep or args.remove:
            raise _Refused("--list takes no --every, --keep or --remove")
    elif not args.table:
        raise _Refused("give the table: shoal backup schedule TABLE --every 1h --keep 7d (or --list)")
    elif args.remove and (args.every or args.keep):
        raise _Refused("--remove takes no --every or --keep")
    elif not args.remove and not (args.every and args.keep):
        raise _Refused("give both --every and --keep (like --every 1h --keep 7d), or --remove")
    # Beside a running server, as shoal iam: one small write, no lock (over
    # PostgreSQL a record in the database, which every node reads).
    engine = open_data_dir_of(args, create=False)
    if engine is None:
        return 1
    try:
        ctx = Context(args.region, DEFAULT_ACCOUNT, engine, Catalog(engine), now=request_clock())
        if args.list:
            found = schedules.list_schedules(engine, args.region)
            for record in found:
                print(_describe_schedule(record))
            if not found:
                print(f"no backup schedules in region {args.region}")
            return 0
        if args.remove:
            if not schedules.remove_schedule(ctx, args.table):
                raise _Refused(f"table {args.table} has no backup schedule")
            print(f"removed the backup schedule of {args.table}; its backups stay until they expire")
            return 0
        record = schedules.set_schedule(ctx, args.table, args.every, args.keep)
        print(_describe_schedule(record) + " (the server takes them; the first at once)")
        return 0
    finally:
        engine.close()


def _describe_schedule(record: dict) -> str:
    from shoal.api import schedules
    from shoal.api.backups import iso_time

    text = (f"{record['table']}: a backup every {_span(record['every_s'])}, each kept {_span(record['keep_s'])}")
    due = schedules.next_due(record)
    text += f"; next {'at once' if due is None else 'at ' + iso_time(due)}"
    if record.get("last_arn"):
        text += f"; last {record['last_arn']}"
    if record.get("last_error"):
        text += f"; last failed: {record['last_error']}"
    return text


def _span(seconds: float) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


# ---------------------------------------------------------------- shoal restore


@_run
def _restore(args) -> int:
    from shoal.api import backups, pitr

    if bool(args.backup_arn) == bool(args.from_table):
        raise _Refused("give either --backup-arn, or --from-table and --at")
    if args.from_table and args.at is None:
        raise _Refused("--from-table needs --at: a time of its point-in-time recovery window, or latest")
    if args.backup_arn and args.at is not None:
        raise _Refused("--at is for --from-table; a backup is restored as it was made")
    with _Workspace(args, "shoal restore",
                    "use RestoreTableFromBackup or RestoreTableToPointInTime through it") as work:
        if args.backup_arn:
            request = _validated("RestoreTableFromBackup", {"BackupArn": args.backup_arn,
                                                            "TargetTableName": args.target})
            total = backups.describe_backup(work.ctx, {"BackupArn": args.backup_arn})[
                "BackupDescription"]["SourceTableDetails"]["ItemCount"]
            created = backups.restore_table_from_backup(work.ctx, request)["TableDescription"]
            source = f"backup {args.backup_arn}"
        else:
            request = {"SourceTableName": work.table(args.from_table).name, "TargetTableName": args.target}
            if args.at == "latest":
                request["UseLatestRestorableTime"] = True
            else:
                request["RestoreDateTime"] = args.at
            _validated("RestoreTableToPointInTime", dict(request))
            total = work.item_count(request["SourceTableName"])
            created = pitr.restore_table_to_point_in_time(work.ctx, request)["TableDescription"]
            source = f"table {request['SourceTableName']} as it was at " \
                     f"{backups.iso_time(created['RestoreSummary']['RestoreDateTime'])}"
        progress = Progress(f"restoring {args.target}")
        work.wait(progress, lambda: (work.item_count(args.target), total))
        with work.engine.read() as txn:
            table = work.ctx.catalog.get(txn, work.ctx.region, args.target)
        if table is None or table.table_id != created["TableId"] or table.description["TableStatus"] != "ACTIVE":
            raise _Refused(f"the restore of {args.target} failed (see the log above); nothing was restored")
        print(f"Restored {source} as table {args.target}: {work.item_count(args.target):,} items in "
              f"{progress.elapsed():.1f} s")
        return 0


# ---------------------------------------------------------------- shoal export


@_run
def _export(args) -> int:
    out = os.path.abspath(args.out)
    instead = "use ExportTableToPointInTime through it" if args.format != "parquet" else None
    with _Workspace(args, "shoal export", instead, s3_dir=os.path.dirname(out)) as work:
        table = work.table(args.table)
        if args.format == "parquet":
            return _export_parquet(work, table, out, args.at)
        return _export_dynamodb(work, table, out, _EXPORT_FORMATS[args.format], args.at)


def _export_parquet(work, table, out: str, at: float | None) -> int:
    from shoal.api import parquet

    try:
        parquet.pyarrow_modules()
    except ImportError as exc:
        raise _Refused(str(exc)) from None
    progress = Progress(f"exporting {table.name}")
    phases = {"schema": "reading", "write": "writing"}

    def show(phase: str, done: int, total: int) -> None:
        progress.label = f"exporting {table.name} ({phases[phase]})"
        progress.update(done, total)

    try:
        summary = parquet.export_table(work.ctx, table.name, out, at=at, progress=show)
    except parquet.NotEmpty as exc:
        raise _Refused(str(exc)) from None
    finally:
        progress.finish()
    print(f"Exported {table.name} as it was at {summary['export_time']}: {summary['items']:,} items in "
          f"{len(summary['files'])} Parquet file(s) in {progress.elapsed():.1f} s")
    for name, typed in summary["columns"].items():
        print(f"  {name}: {typed}")
    print(f"Files: {os.path.join(out, 'part-*.parquet')}")
    return 0


def _export_dynamodb(work, table, out: str, export_format: str, at: float | None) -> int:
    from shoal.api import exports, pitr

    os.makedirs(out, exist_ok=True)
    with work.engine.read() as txn:
        recovery_on = pitr.setting(txn, table) is not None
    progress = Progress(f"exporting {table.name}", unit="bytes")
    if recovery_on or at is not None:
        # The operation itself: its checks (the time within the recovery
        # window), its record (ListExports shows it), its job.
        request = {"TableArn": table.arn, "S3Bucket": os.path.basename(out), "ExportFormat": export_format}
        if at is not None:
            request["ExportTime"] = at
        arn = exports.export_table_to_point_in_time(work.ctx, request)["ExportDescription"]["ExportArn"]
        work.wait(progress, lambda: (_bytes_under(out), None))
        description = exports.describe_export(work.ctx, {"ExportArn": arn})["ExportDescription"]
        if description["ExportStatus"] != "COMPLETED":
            raise _Refused(f"the export failed: {description.get('FailureCode')}: {description.get('FailureMessage')}")
        items, manifest, when = description["ItemCount"], description["ExportManifest"], description["ExportTime"]
    else:
        # ExportTableToPointInTime needs point-in-time recovery, as
        # DynamoDB's; the table as it is needs none: its job, run directly.
        items, manifest, when = _export_now(work, table, out, export_format, progress)
    print(f"Exported {table.name} as it was at {exports.iso_time(when)}: {items:,} items, {export_format}, "
          f"in {progress.elapsed():.1f} s")
    print(f"Manifest: {os.path.join(out, manifest)}")
    return 0


def _export_now(work, table, out: str, export_format: str, progress: Progress):
    """Export the table as it is with the export job of ``shoal.api.exports``
    (``write_export``), whose record is kept nowhere (no ListExports entry):
    that operation refuses a table without point-in-time recovery."""
    import uuid

    from shoal.api import exports

    now = work.ctx.now()
    at = int(now * 1000) / 1000
    record = {
        "kind": "export", "arn": exports.new_arn(table.arn, "export", now), "region": work.ctx.region,
        "table_arn": table.arn, "table_id": table.table_id, "table_name": table.name, "token": str(uuid.uuid4()),
        "status": "IN_PROGRESS", "start": round(now, 3), "end": None, "format": export_format, "type": None,
        "export_time": at, "from": None, "to": None, "view": None, "bucket": os.path.basename(out), "owner": None,
        "prefix": None, "sse": None, "kms": None,
    }
    outcome: dict = {}
    stop = threading.Event()

    def run() -> None:
        try:
            outcome.update(exports.write_export(work.ctx, record, stop))
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="shoal-export")
    thread.start()
    try:
        with _interruptions.deferred():
            while thread.is_alive():
                thread.join(0.2)
                _interruptions.check()
                progress.update(_bytes_under(out))
    finally:
        stop.set()  # an interruption: the job leaves its files where they are (no record names them)
        with _interruptions.deferred():
            thread.join()
        progress.finish()
    if "error" in outcome:
        error = outcome["error"]
        raise _Refused(f"the export failed: {getattr(error, 'message', error)}")
    return outcome["items"], outcome["manifest"], at


def _bytes_under(folder: str) -> int:
    total = 0
    for path, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.path.getsize(os.path.join(path, name))
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- shoal import


@_run
def _import(args) -> int:
    from shoal.api import imports

    source = os.path.abspath(args.source)
    if not os.path.isdir(source):
        raise _Refused(f"{args.source} is not a folder")
    prefix = _data_prefix(source)
    compression = _COMPRESSIONS.get(args.compression) or _compression_of(source, prefix)
    with _Workspace(args, "shoal import", "use ImportTable through it (aws dynamodb import-table)", create=True,
                    s3_dir=os.path.dirname(source)) as work:
        keys = [{"AttributeName": name, "KeyType": kind} for (name, _), kind in zip(args.key, ("HASH", "RANGE"))]
        request = {
            "S3BucketSource": {"S3Bucket": os.path.basename(source), "S3KeyPrefix": prefix},
            "InputFormat": _IMPORT_FORMATS[args.format], "InputCompressionType": compression,
            "TableCreationParameters": {
                "TableName": args.table, "KeySchema": keys, "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": name, "AttributeType": kind} for name, kind in args.key]},
        }
        arn = imports.import_table(work.ctx, request)["ImportTableDescription"]["ImportArn"]
        progress = Progress(f"importing {args.table}")
        work.wait(progress, lambda: (work.item_count(args.table), None))
        job = imports.describe_import(work.ctx, {"ImportArn": arn})["ImportTableDescription"]
        print(f"Imported {job['ImportedItemCount']:,} items into {args.table} from {job['ProcessedItemCount']:,} "
              f"read ({_size(job['ProcessedSizeBytes'])}), {job['ErrorCount']:,} bad, in {progress.elapsed():.1f} s")
        if job["ImportStatus"] != "COMPLETED":
            if job.get("FailureCode") == imports.ITEM_VALIDATION[0]:
                raise _Refused(f"{job['ErrorCount']:,} bad item(s) skipped (logged above); {args.table} holds the "
                               "good ones")
            raise _Refused(f"the import failed: {job.get('FailureCode')}: {job.get('FailureMessage')}")
        return 0


def _data_prefix(folder: str) -> str:
    """The key prefix of what to import from ``folder``: the data files of
    the one export it holds (beside its manifest-summary.json), else all."""
    manifests = []
    for path, _, names in os.walk(folder):
        if "manifest-summary.json" in names:
            manifests.append(os.path.relpath(path, folder))
    if len(manifests) > 1:
        shown = ", ".join(sorted(manifests)[:3]) + (", ..." if len(manifests) > 3 else "")
        raise _Refused(f"{folder} holds {len(manifests)} exports ({shown}): give the folder of one")
    if not manifests:
        return ""
    where = manifests[0].replace(os.sep, "/")
    return "data/" if where == "." else f"{where}/data/"


def _compression_of(folder: str, prefix: str) -> str:
    for path, _, names in os.walk(os.path.join(folder, prefix) if prefix else folder):
        for name in sorted(names):
            if name.endswith(".gz"):
                return "GZIP"
            if name.endswith((".zst", ".zstd")):
                return "ZSTD"
            return "NONE"
    return "NONE"
