"""The data directory: a FORMAT marker plus the engine's files.

Layout (format 1)::

    <data dir>/FORMAT        "Shoal data directory\\nformat 1\\nengine lmdb\\n"
    <data dir>/lmdb/         the LMDB environment (data.mdb, lock.mdb)
    <data dir>/KEYRING       only when encrypted at rest: the data keys, wrapped by the
                             master key (the marker then has the line ``encryption aes-256-gcm``;
                             see docs/encryption.md and ``shoal.storage.keyring``)

``open_data_dir`` validates before it changes anything, so that pointing Shoal
at the wrong directory (another program's files, a newer Shoal's data, a
damaged copy, a read-only location) stops start-up with a message and leaves
the directory exactly as it was.  The checks read only: the marker file, the
directory listing and the two LMDB meta pages at the head of ``data.mdb``
(magic number, format version, page size, and that the file is as long as the
newest meta page says).  Damage deeper in the B+tree can only be found by
LMDB itself: the engine is opened and the first and last entry of every space
read, and an error there is reported as damage too (by then LMDB has created
or refreshed its lock file, but the data file is untouched).

A fresh directory is initialised marker first (written to a temporary name,
fsync'd, renamed, directory fsync'd), then the LMDB environment; a start-up
interrupted between the two leaves a marker with no environment yet, which the
next start completes, and a temporary marker left by a crash before the rename
is replaced.  Workers that start together serialise this on an advisory
``flock`` of the directory itself.

With ``shoal serve --storage postgresql://...`` (``open_storage``) the tables
and items live in PostgreSQL and the data directory keeps only what belongs
to one node: ``serving.lock``, the root credentials file and audit log of
``--auth sigv4``, the ``--tls-self-signed`` certificate and the ``s3/``
folder.  It then has no ``FORMAT`` marker and no LMDB environment, and a
directory that holds a Shoal LMDB store is refused for it, so that the
store's tables are never silently left behind.

``<data dir>/serving.lock`` tells a serving directory from an idle one:
``shoal serve`` holds a shared ``flock`` on it while it serves
(``hold_for_serving``; the workers it forks inherit it), and the offline
tools (``shoal backup``, ``restore``, ``export``, ``import``) take it
exclusively without waiting (``hold_exclusively``), so that neither starts
while the other works on the directory.  Commands that may run beside a
server (``shoal status``, ``shoal iam``) take no lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import struct

import lmdb

from shoal.storage.engine import SPACES, Engine
from shoal.storage.keyring import DataKeys, KeyringError, keyring_path, load_keyring, write_keyring
from shoal.storage.lmdb_engine import LmdbEngine

FORMAT_VERSION = 1
MARKER_NAME = "FORMAT"
LMDB_DIR = "lmdb"
_MARKER_TITLE = "Shoal data directory"
_MARKER_TEXT = f"{_MARKER_TITLE}\nformat {FORMAT_VERSION}\nengine lmdb\n"
#: The marker line of a directory encrypted at rest (see docs/encryption.md).
ENCRYPTION_LINE = "encryption aes-256-gcm"
_MARKER_MAX_BYTES = 4096
_LMDB_FILES = ("data.mdb", "lock.mdb")
_TEMPORARY_MARKER = re.compile(re.escape(MARKER_NAME) + r"\.\d+\.tmp")

# LMDB 0.9 file layout: pages 0 and 1 are meta pages; each starts with a 16-byte
# page header followed by MDB_meta (magic, version, ..., the free DB's md_pad
# holding the page size, ..., last page number, transaction id).
_PAGE_HEADER = 16
_META_MAGIC = 0xBEEFC0DE
_META_VERSION = 1
_META = struct.Struct("<II8x8xI44x48xQQ")  # magic, version, psize, last_pg, txnid
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class DataDirError(Exception):
    """The data directory cannot be used; the message is what the CLI prints."""


class DataDirBusy(DataDirError):
    """Another process holds the data directory (``serving.lock``)."""


SERVING_LOCK = "serving.lock"


def hold_for_serving(path) -> int:
    """Take the shared serving lock of the data directory ``path`` (opened
    already), held until the returned descriptor is closed (by every process
    forked meanwhile).  Raises ``DataDirBusy`` while an offline tool has it."""
    return _take_lock(path, fcntl.LOCK_SH, "an offline shoal tool", "; start the server once it has finished")


def hold_exclusively(path, what: str) -> int:
    """Take the serving lock of the data directory ``path`` exclusively for
    the offline tool ``what`` (say ``shoal backup``), without waiting; held
    until the returned descriptor is closed.  Raises ``DataDirBusy`` while a
    server (or another tool) holds it."""
    fd = _take_lock(path, fcntl.LOCK_EX, "a running shoal serve", "")
    os.ftruncate(fd, 0)  # who holds it, for the message of whoever is refused
    os.pwrite(fd, f"{what} (process {os.getpid()})".encode(), 0)
    return fd


def _take_lock(path, mode: int, unknown_holder: str, advice: str) -> int:
    """The serving lock in ``mode`` without waiting, or ``DataDirBusy``
    naming who holds it (as the holder wrote it, else ``unknown_holder``)."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise DataDirBusy(f"data directory {os.fspath(path)} is in use by {holder or unknown_holder}{advice}") from None
    return fd


def _open_lock(path) -> int:
    try:
        return os.open(os.path.join(os.fspath(path), SERVING_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DataDirError(f"data directory {os.fspath(path)} is not writable: {SERVING_LOCK} "
                           f"({exc.strerror})") from None


def _lock_holder(fd: int) -> str:
    """What the exclusive holder wrote into the lock file ('' for a server)."""
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


#: The URL schemes of ``open_storage``'s PostgreSQL storage.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(storage: str | None) -> bool:
    """Whether ``storage`` names a PostgreSQL database (``--storage``)."""
    return bool(storage) and storage.startswith(POSTGRES_SCHEMES)


def open_storage(path, storage: str | None = None, *, create: bool = True, sync: bool = True,
                 master_key: bytes | None = None) -> Engine:
    """The engine ``shoal serve`` runs on: the data directory's own (LMDB) when
    ``storage`` is empty, else the PostgreSQL database of the URL ``storage``,
    the directory ``path`` then keeping only node-local files (see the module
    docstring).  Raises ``DataDirError`` with the message the CLI prints."""
    if not storage:
        return open_data_dir(path, create=create, sync=sync, master_key=master_key)
    if not is_postgres_url(storage):
        raise DataDirError(f"--storage must be a postgresql:// URL, not {storage!r}")
    from shoal.storage.postgres_engine import PostgresEngine, StorageUnavailable, shown_dsn

    _check_node_directory(os.fspath(path))
    try:
        if master_key is not None:  # the sealed keyring lives in the database
            from shoal.storage.encrypted import open_encrypted_postgres
            return open_encrypted_postgres(storage, master_key, sync=sync)
        return PostgresEngine(storage, sync=sync)
    except (StorageUnavailable, KeyringError) as exc:
        raise DataDirError(str(exc)) from None
    except RuntimeError as exc:  # a store of another format
        raise DataDirError(f"{shown_dsn(storage)}: {exc}") from None


def _check_node_directory(shown: str) -> None:
    """The data directory of a node over PostgreSQL: created if missing, and
    never one holding an LMDB store."""
    if not os.path.lexists(shown):
        _make_directory(shown)
    elif not os.path.isdir(shown):
        raise DataDirError(f"data directory {shown} is not a directory")
    if os.path.lexists(os.path.join(shown, MARKER_NAME)):
        raise DataDirError(f"data directory {shown} holds a Shoal LMDB store, whose tables --storage would leave "
                           "behind; give a --data-dir for this node's own files only (credentials, audit log, "
                           "certificates), or serve without --storage")


def open_data_dir(path, *, create: bool = True, sync: bool = True, master_key: bytes | None = None) -> Engine:
    """Validate (or, on first use, initialise) the data directory and open its engine.

    Raises ``DataDirError`` without creating or modifying anything when the
    directory is unwritable, was written by an incompatible format version, is
    damaged, or holds files that are not Shoal's.  With ``master_key`` a fresh
    directory is encrypted at rest and an encrypted one is opened through
    ``EncryptedEngine``; an encrypted directory without its key (or with
    another key), or a plain one given a key, is refused the same way.
    """
    shown = os.fspath(path)
    if not os.path.lexists(shown):
        if not create:
            raise DataDirError(f"data directory {shown} does not exist")
        _make_directory(shown)
    elif not os.path.isdir(shown):
        raise DataDirError(f"data directory {shown} is not a directory")
    # Workers started together race to initialise a fresh directory; an
    # advisory lock on the directory itself (which writes nothing) serialises
    # the check-then-create so each sees either nothing or a whole marker.
    with _directory_lock(shown):
        marker = os.path.join(shown, MARKER_NAME)
        if os.path.lexists(marker):
            encrypted = _check_marker(shown, marker)
            _check_lmdb_files(shown)
            data_keys = _check_encryption(shown, encrypted, master_key)
        else:
            leftovers = _check_empty(shown)
            _write_marker(shown, marker, leftovers, encrypted=master_key is not None)
            data_keys = _new_keyring(shown, master_key) if master_key is not None else None
        engine = _open_engine(shown, sync)
        if data_keys is None:
            return engine
        from shoal.storage.encrypted import EncryptedEngine

        return EncryptedEngine(engine, data_keys)


def _check_encryption(shown: str, encrypted: bool, master_key: bytes | None) -> DataKeys | None:
    """The data keys of an encrypted directory, checked against the master key
    (reading only), or None for a plain one."""
    if not encrypted:
        if master_key is not None:
            raise DataDirError(
                f"data directory {shown} is not encrypted, but a master key was given: start it "
                "without --master-key-file / SHOAL_MASTER_KEY (a directory is encrypted when it is created)"
            )
        return None
    if master_key is None:
        raise DataDirError(
            f"data directory {shown} is encrypted: give its master key with --master-key-file "
            "or SHOAL_MASTER_KEY"
        )
    if not os.path.lexists(keyring_path(shown)) and not os.path.lexists(os.path.join(shown, LMDB_DIR, "data.mdb")):
        return _new_keyring(shown, master_key)  # an initialisation interrupted after the marker
    try:
        return load_keyring(shown, master_key)
    except KeyringError as exc:
        raise DataDirError(str(exc)) from None


def _new_keyring(shown: str, master_key: bytes) -> DataKeys:
    keys = DataKeys.generate()
    try:
        write_keyring(shown, keys, master_key)
    except OSError as exc:
        raise DataDirError(f"data directory {shown} is not writable ({exc.strerror})") from None
    return keys


@contextlib.contextmanager
def _directory_lock(shown: str):
    try:
        fd = os.open(shown, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise DataDirError(f"data directory {shown} cannot be read ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _make_directory(shown: str) -> None:
    try:
        os.makedirs(shown)
    except FileExistsError:
        pass  # another worker created it first
    except OSError as exc:
        raise DataDirError(
            f"data directory {shown} is not writable: cannot create it ({exc.strerror})"
        ) from None


def _check_empty(shown: str) -> list[str]:
    """A directory with no marker must be empty, or it is somebody else's (the
    marker is the first thing Shoal writes).  Returns the temporary marker files
    of an initialisation that crashed before its rename, which may be replaced."""
    try:
        entries = os.listdir(shown)
    except OSError as exc:
        raise DataDirError(f"data directory {shown} cannot be read ({exc.strerror})") from None
    leftovers = [name for name in entries if _TEMPORARY_MARKER.fullmatch(name)]
    if len(leftovers) < len(entries):
        raise DataDirError(
            f"data directory {shown} is not a Shoal data directory: it is not empty "
            f"and has no {MARKER_NAME} file"
        )
    return leftovers


def _check_marker(shown: str, marker: str) -> bool:
    """Check the marker; True if it says the directory is encrypted."""
    try:
        with open(marker, "rb") as handle:
            raw = handle.read(_MARKER_MAX_BYTES + 1)
    except OSError as exc:
        raise DataDirError(f"data directory {shown} is damaged: cannot read {MARKER_NAME} ({exc.strerror})") from None
    version = _parse_marker(raw)
    if version is None:
        raise DataDirError(f"data directory {shown} is damaged: {MARKER_NAME} is not a Shoal format marker")
    if version != FORMAT_VERSION:
        raise DataDirError(
            f"data directory {shown} was written by Shoal format {version}; "
            f"this Shoal reads format {FORMAT_VERSION}"
        )
    return ENCRYPTION_LINE in raw.decode("utf-8").splitlines()


def _parse_marker(raw: bytes) -> int | None:
    """The format version a marker declares, or None if it is not a marker."""
    if len(raw) > _MARKER_MAX_BYTES:
        return None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    if len(lines) < 2 or lines[0] != _MARKER_TITLE:
        return None
    word, _, number = lines[1].partition(" ")
    if word != "format" or not number.isdigit():
        return None
    return int(number)


def _check_lmdb_files(shown: str) -> None:
    """Reject a damaged environment by reading its meta pages, before LMDB
    opens it (opening would create or rewrite ``lock.mdb``)."""
    lmdb_dir = os.path.join(shown, LMDB_DIR)
    data_file = os.path.join(lmdb_dir, "data.mdb")
    if not os.path.lexists(lmdb_dir):
        return  # marker written, environment not yet: finish initialising
    if not os.path.isdir(lmdb_dir):
        raise DataDirError(f"data directory {shown} is damaged: {LMDB_DIR} is not a directory")
    present = set(os.listdir(lmdb_dir))
    if "data.mdb" not in present:
        if present - {"lock.mdb"}:
            raise DataDirError(f"data directory {shown} is damaged: {LMDB_DIR}/data.mdb is missing")
        return
    problem = _lmdb_file_problem(data_file)
    if problem:
        raise DataDirError(f"data directory {shown} is damaged: {LMDB_DIR}/data.mdb {problem}")


def _lmdb_file_problem(data_file: str) -> str | None:
    """What is wrong with an LMDB data file's header, or None."""
    try:
        with open(data_file, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            first = handle.read(_PAGE_HEADER + _META.size)
            if len(first) < _PAGE_HEADER + _META.size:
                return "is truncated"
            magic, version, psize, _, _ = _META.unpack_from(first, _PAGE_HEADER)
            if magic != _META_MAGIC:
                return "is not an LMDB file"
            if version != _META_VERSION:
                return f"has LMDB format {version}, expected {_META_VERSION}"
            if psize < 512 or psize & (psize - 1):
                return "has an invalid page size"
            handle.seek(psize)
            second = handle.read(_PAGE_HEADER + _META.size)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if len(second) < _PAGE_HEADER + _META.size:
        return "is truncated"
    metas = [_META.unpack_from(first, _PAGE_HEADER), _META.unpack_from(second, _PAGE_HEADER)]
    if any(meta[0] != _META_MAGIC or meta[1] != _META_VERSION for meta in metas):
        return "has a damaged meta page"
    last_page = max(metas, key=lambda meta: meta[4])[3]
    if size < (last_page + 1) * psize:
        return "is truncated"
    return None


def _write_marker(shown: str, marker: str, leftovers: list[str], *, encrypted: bool = False) -> None:
    """Write the marker atomically and durably, so a crash never leaves half of one."""
    temporary = f"{marker}.{os.getpid()}.tmp"
    for name in leftovers:
        _remove_quietly(os.path.join(shown, name))
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise DataDirError(f"data directory {shown} is not writable ({exc.strerror})") from None
    try:
        try:
            os.write(fd, (_MARKER_TEXT + (ENCRYPTION_LINE + "\n" if encrypted else "")).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, marker)
        _fsync_directory(shown)
    except OSError as exc:
        _remove_quietly(temporary)
        raise DataDirError(f"data directory {shown} is not writable ({exc.strerror})") from None


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _open_engine(shown: str, sync: bool) -> Engine:
    lmdb_dir = os.path.join(shown, LMDB_DIR)
    try:
        os.makedirs(lmdb_dir, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"data directory {shown} is not writable ({exc.strerror})") from None
    _check_files_writable(shown, lmdb_dir)
    try:
        engine = LmdbEngine(lmdb_dir, sync=sync)
    except lmdb.Error as exc:
        raise _engine_error(shown, exc) from None
    try:
        _probe(engine)
    except lmdb.Error as exc:
        engine.close()
        raise _engine_error(shown, exc) from None
    return engine


def _probe(engine: Engine) -> None:
    """Read the first and last entry of every space: a few page reads that find
    a damaged B+tree now, at start-up, rather than in the middle of a request."""
    with engine.read() as txn:
        for space in SPACES:
            next(iter(txn.scan(space)), None)
            next(iter(txn.scan(space, reverse=True)), None)


def _check_files_writable(shown: str, lmdb_dir: str) -> None:
    """Fail before LMDB touches anything if its files cannot be opened for writing."""
    for name in _LMDB_FILES:
        path = os.path.join(lmdb_dir, name)
        if not os.path.exists(path):
            continue
        try:
            os.close(os.open(path, os.O_RDWR))
        except OSError as exc:
            raise DataDirError(
                f"data directory {shown} is not writable: {LMDB_DIR}/{name} ({exc.strerror})"
            ) from None


def _engine_error(shown: str, exc: lmdb.Error) -> DataDirError:
    """Word an LMDB failure for the CLI: an OS permission error means the
    directory is unwritable; anything else means the files are damaged."""
    code = getattr(exc, "code", None)
    if isinstance(exc, lmdb.ReadonlyError) or code in _UNWRITABLE:
        reason = getattr(exc, "reason", None) or str(exc)
        return DataDirError(f"data directory {shown} is not writable: {LMDB_DIR} ({reason})")
    return DataDirError(f"data directory {shown} is damaged: {exc}")
