"""``shoal keys``: master keys of data directories encrypted at rest.

``shoal keys generate`` prints a new master key (64 hex digits) to store in a
file given to ``--master-key-file``.  ``shoal keys rotate`` re-wraps a data
directory's data keys under a new master key: only the small KEYRING file is
rewritten (atomically), the data is untouched, and the old key must open the
keyring first, so a wrong old key changes nothing.  With ``--storage
postgresql://...`` (or SHOAL_STORAGE) it re-wraps the keyring kept in that
database instead, in one transaction, while the nodes serve on.
``shoal keys kms-key-state KEY STATE`` marks a KMS key of this region
Disabled, PendingDeletion, Deleted or Enabled again (Shoal has no KMS: the
region's ``KMS_KEYS`` file stands for it); a table or replica whose key cannot
be used shows INACCESSIBLE_ENCRYPTION_CREDENTIALS until it can, and meanwhile
refuses item requests, UpdateTimeToLive, CreateBackup, UpdateContributorInsights
and SSE changes, and takes no replicated changes (they wait in the sending
regions); a CreateTable, UpdateTable or restore naming such a key is refused.
With ``--storage postgresql://...`` (or SHOAL_STORAGE) the mark is made in
that store (its meta record ``kms/key-states``, in one write transaction; a
store encrypted at rest needs its ``--master-key-file``), which every node
serving it with ``--region`` reads at its next key check.

``add_storage_option`` and ``open_database_of`` are how the commands that
work on a store (``shoal backup``, ``restore``, ``export``, ``import``) take
``--storage postgresql://...`` as ``shoal serve`` does: a database that holds
no Shoal store is refused by those that only read one, and left untouched.
"""

from __future__ import annotations

import os
import sys

from shoal.storage.keyring import (
    KMS_KEY_STATES,
    KeyringError,
    generate_master_key_text,
    parse_master_key,
    read_master_key_file,
    rotate_database_master_key,
    rotate_master_key,
)

MASTER_KEY_ENV = "SHOAL_MASTER_KEY"
MASTER_KEY_FILE_ENV = "SHOAL_MASTER_KEY_FILE"
STORAGE_ENV = "SHOAL_STORAGE"
_CONNECT_TIMEOUT_S = 10


def master_key_from(path: str | None) -> bytes | None:
    """The master key ``serve`` (and other commands) should use: from the file
    ``path`` (``--master-key-file`` / SHOAL_MASTER_KEY_FILE) or else from the
    key itself in SHOAL_MASTER_KEY; None when neither is set (no encryption)."""
    if path:
        return read_master_key_file(path)
    text = os.environ.get(MASTER_KEY_ENV)
    if text:
        return parse_master_key(text.encode(), f"${MASTER_KEY_ENV}")
    return None


def add_data_dir_options(parser, master_key_help: str | None = None) -> None:
    """``--data-dir`` and ``--master-key-file``, as every command that works on
    a data directory takes them."""
    parser.add_argument("--data-dir", default=os.environ.get("SHOAL_DATA_DIR", "./shoal-data"),
                        help="the data directory (env SHOAL_DATA_DIR; default ./shoal-data)")
    parser.add_argument("--master-key-file", default=os.environ.get(MASTER_KEY_FILE_ENV),
                        help=master_key_help or "the master key of an encrypted data directory "
                        f"(env {MASTER_KEY_FILE_ENV}, or the key itself in {MASTER_KEY_ENV})")


def open_data_dir_of(args, *, create: bool = True):
    """The engine of ``args.data_dir`` opened with its master key, or None
    after printing why it cannot be opened (the caller exits with 1).  A
    command that takes ``--storage`` (``add_storage_option``) and was given a
    URL opens that PostgreSQL store instead (``open_database_of``)."""
    from shoal.storage.datadir import DataDirError, open_data_dir

    if getattr(args, "storage", None):
        return open_database_of(args, create=create)
    try:
        return open_data_dir(args.data_dir, create=create, master_key=master_key_from(args.master_key_file))
    except (DataDirError, KeyringError) as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return None


def add_storage_option(parser, help_text: str | None = None) -> None:
    """``--storage`` (env SHOAL_STORAGE), as ``shoal serve`` takes it: the
    PostgreSQL store to work on instead of the data directory."""
    parser.add_argument("--storage", default=os.environ.get(STORAGE_ENV) or None,
                        metavar="postgresql://USER@HOST:PORT/DB",
                        help=help_text or "work on this PostgreSQL store (as shoal serve --storage serves it) "
                        f"instead of the data directory (env {STORAGE_ENV}); --data-dir is then not used")


def storage_problem(storage: str | None) -> str | None:
    """What is wrong with a ``--storage`` value (the command exits with 2), or None."""
    from shoal.storage.datadir import is_postgres_url

    if storage and not is_postgres_url(storage):
        return (f"--storage (or {STORAGE_ENV}) must be a postgresql://USER@HOST:PORT/DATABASE URL, "
                f"not {storage!r}")
    return None


def open_database_of(args, *, create: bool = True, **options):
    """The PostgreSQL store ``args.storage`` opened with the master key of
    ``args.master_key_file`` (or SHOAL_MASTER_KEY) if one is given, or None
    after printing why it cannot be opened (the caller exits with 1).

    Without ``create`` a database that holds no Shoal store is refused, and
    left as it was (opening would create the store's tables, and with a
    master key its keyring): a command that reads a store must not make one
    in the wrong database.  ``options`` go to ``PostgresEngine``."""
    from shoal.storage.postgres_engine import DEFAULT_SCHEMA, StorageUnavailable, shown_dsn

    shown = shown_dsn(args.storage)
    try:
        master_key = master_key_from(args.master_key_file)
        if not _holds_store(args.storage) and not create:
            print(f"shoal: {shown} holds no Shoal store (no {DEFAULT_SCHEMA} schema with its tables): check the "
                  "URL, or serve it once with shoal serve --storage", file=sys.stderr)
            return None
        if master_key is not None:
            from shoal.storage.encrypted import open_encrypted_postgres

            return open_encrypted_postgres(args.storage, master_key, **options)
        from shoal.storage.postgres_engine import PostgresEngine

        return PostgresEngine(args.storage, **options)
    except (KeyringError, StorageUnavailable) as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return None
    except RuntimeError as exc:  # a store of another format, or encrypted and no key given
        print(f"shoal: {shown}: {exc}", file=sys.stderr)
        return None


def _holds_store(dsn: str) -> bool:
    """Whether the database ``dsn`` holds a Shoal store (its ``writer`` table),
    asked of ``information_schema`` (which PostgreSQL, CockroachDB and
    YugabyteDB all have), creating nothing; ``StorageUnavailable`` when it
    cannot be reached, worded as the engine words it."""
    import psycopg

    from shoal.storage.postgres_engine import DEFAULT_SCHEMA, StorageUnavailable, shown_dsn

    try:
        with psycopg.connect(dsn, connect_timeout=_CONNECT_TIMEOUT_S, autocommit=True) as conn:
            row = conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                               "AND table_name = 'writer'", (DEFAULT_SCHEMA,)).fetchone()
    except psycopg.Error as exc:  # refused, unknown host or database, bad password, a malformed URL
        reason = " ".join(str(exc).split())
        raise StorageUnavailable(f"cannot connect to PostgreSQL at {shown_dsn(dsn)}: {reason}") from None
    return row is not None


def add_keys_commands(commands) -> None:
    """Register ``shoal keys ...`` on the CLI's subcommand parser."""
    keys = commands.add_parser("keys", help="manage the master key of an encrypted data directory",
                               description="Manage the master key of a data directory encrypted at rest.")
    sub = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", help="one of:")
    generate = sub.add_parser("generate", help="print a new random master key (64 hex digits)")
    generate.set_defaults(handler=_generate)
    rotate = sub.add_parser("rotate", help="re-wrap the data keys under a new master key")
    add_data_dir_options(rotate, f"the current master key file (env {MASTER_KEY_FILE_ENV}, "
                                 f"or the key in ${MASTER_KEY_ENV})")
    rotate.add_argument("--new-master-key-file", required=True, help="the new master key file")
    add_storage_option(rotate, "the postgresql:// URL of a store served with --storage, whose keyring is in the "
                               f"database (env {STORAGE_ENV}); --data-dir is then not used")
    rotate.set_defaults(handler=_rotate)
    kms = sub.add_parser("kms-key-state", help="mark a KMS key of this region usable or not (its key state)")
    kms.add_argument("key", help="the KMS key id, alias or ARN, as a table's KMSMasterKeyId names it")
    kms.add_argument("state", choices=KMS_KEY_STATES, help="the key's state in this region")
    kms.add_argument("--data-dir", default=os.environ.get("SHOAL_DATA_DIR", "./shoal-data"),
                     help="the region's data directory (env SHOAL_DATA_DIR; default ./shoal-data)")
    kms.add_argument("--master-key-file", default=os.environ.get(MASTER_KEY_FILE_ENV),
                     help=f"with --storage: the master key of a store encrypted at rest (env {MASTER_KEY_FILE_ENV}, "
                     f"or the key itself in {MASTER_KEY_ENV})")
    add_storage_option(kms, "mark the key in this PostgreSQL store (as shoal serve --storage serves it; env "
                            f"{STORAGE_ENV}), read by every node serving it; --data-dir is then not used")
    kms.set_defaults(handler=_kms_key_state)
    keys.set_defaults(handler=lambda args: _usage(keys))


def _usage(parser) -> int:
    parser.print_help()
    return 2


def _generate(args) -> int:
    print(generate_master_key_text())
    return 0


def _kms_key_state(args) -> int:
    from shoal.storage.keyring import set_kms_key_state

    if args.storage:
        return _kms_key_state_in_database(args)
    if not os.path.isdir(args.data_dir):
        print(f"shoal: {args.data_dir} is not a directory", file=sys.stderr)
        return 1
    try:
        set_kms_key_state(args.data_dir, args.key, args.state)
    except KeyringError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    print(f"KMS key {args.key} is {args.state} in {os.path.abspath(args.data_dir)}")
    return 0


def _kms_key_state_in_database(args) -> int:
    """``shoal keys kms-key-state KEY STATE --storage postgresql://...``: the
    store's record of key states (``keyring.set_stored_kms_key_state``); a
    database with no store is refused and left untouched."""
    from shoal.storage.keyring import set_stored_kms_key_state
    from shoal.storage.postgres_engine import StorageUnavailable, shown_dsn

    problem = storage_problem(args.storage)
    if problem:
        print(f"shoal: {problem}", file=sys.stderr)
        return 2
    engine = open_database_of(args, create=False, min_connections=1, max_connections=1)
    if engine is None:
        return 1
    try:
        set_stored_kms_key_state(engine, args.key, args.state)
    except (KeyringError, StorageUnavailable) as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    print(f"KMS key {args.key} is {args.state} in {shown_dsn(args.storage)}")
    return 0


def _rotate(args) -> int:
    from shoal.storage.datadir import ENCRYPTION_LINE, MARKER_NAME

    if args.storage:
        return _rotate_in_database(args)

    marker = os.path.join(args.data_dir, MARKER_NAME)
    try:
        with open(marker, encoding="utf-8", errors="replace") as handle:
            encrypted = ENCRYPTION_LINE in handle.read(4096).splitlines()
    except OSError:
        print(f"shoal: {args.data_dir} is not a Shoal data directory (no {MARKER_NAME} file)", file=sys.stderr)
        return 1
    if not encrypted:
        print(f"shoal: data directory {args.data_dir} is not encrypted: it has no keys to rotate", file=sys.stderr)
        return 1
    try:
        keys = _old_and_new(args)
        if keys is None:
            return 2
        rotate_master_key(args.data_dir, *keys)
    except KeyringError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    print(f"re-wrapped the data keys of {os.path.abspath(args.data_dir)} under the new master key")
    return 0


def _old_and_new(args) -> tuple[bytes, bytes] | None:
    """``rotate``'s current and new master keys, or None after saying that the
    current one is missing (exit 2); a bad key file raises KeyringError."""
    old = master_key_from(args.master_key_file)
    if old is None:
        print("shoal: give the current master key with --master-key-file or SHOAL_MASTER_KEY", file=sys.stderr)
        return None
    return old, read_master_key_file(args.new_master_key_file)


def _rotate_in_database(args) -> int:
    """``shoal keys rotate --storage postgresql://...``: the keyring row of the database."""
    problem = storage_problem(args.storage)
    if problem:
        print(f"shoal: {problem}", file=sys.stderr)
        return 2
    from shoal.storage.postgres_engine import PostgresEngine, StorageUnavailable, shown_dsn

    shown = shown_dsn(args.storage)
    try:
        keys = _old_and_new(args)
        if keys is None:
            return 2
        if not _holds_store(args.storage):
            print(f"shoal: {shown} holds no Shoal store: it has no keys to rotate", file=sys.stderr)
            return 1
        engine = PostgresEngine(args.storage, encrypted=True, min_connections=1, max_connections=1)
        try:
            rotate_database_master_key(engine, *keys, shown)
        finally:
            engine.close()
    except (KeyringError, StorageUnavailable) as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a store of another format
        print(f"shoal: {shown}: {exc}", file=sys.stderr)
        return 1
    print(f"re-wrapped the data keys of {shown} under the new master key")
    return 0
