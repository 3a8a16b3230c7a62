"""Data directory checks: fresh start, reopen, and every refusal touching nothing.

Unwritable locations: the tests run as root, for whom permission bits mean
nothing, so they use two things that stop root honestly: a path whose parent
is a regular file (``mkdir`` fails with ENOTDIR), and the ext4/xfs "immutable"
attribute (``chattr +i``), under which even root cannot create, modify or
unlink files (EPERM).  The immutable-attribute tests skip where ``chattr`` is
missing or the filesystem does not support the attribute.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import struct
import subprocess

import pytest

from shoal.storage.datadir import DataDirError, open_data_dir
from shoal.storage.engine import Engine

MARKER = b"Shoal data directory\nformat 1\nengine lmdb\n"


def snapshot(root) -> dict:
    """Everything observable about a tree: names, kinds, sizes, mtimes, contents."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            digest = None
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            seen[os.path.relpath(path, root)] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    seen["."] = os.lstat(root).st_mtime_ns
    return seen


def refused(path) -> str:
    """Open ``path`` expecting a refusal that leaves it unchanged; the message."""
    before = snapshot(path) if os.path.exists(path) else None
    with pytest.raises(DataDirError) as caught:
        open_data_dir(path)
    after = snapshot(path) if os.path.exists(path) else None
    assert after == before
    return str(caught.value)


def make_shoal_dir(path) -> None:
    with open_data_dir(path) as engine, engine.write() as txn:
        txn.put("items", b"k", b"v")


# ------------------------------------------------------------ accepted


def test_missing_directory_is_created_with_a_marker(tmp_path):
    path = str(tmp_path / "deep" / "data")
    engine = open_data_dir(path)
    try:
        assert isinstance(engine, Engine)
        with engine.write() as txn:
            txn.put("items", b"k", b"v")
    finally:
        engine.close()
    with open(os.path.join(path, "FORMAT"), "rb") as handle:
        assert handle.read() == MARKER
    assert sorted(os.listdir(path)) == ["FORMAT", "lmdb"]


def test_existing_empty_directory_is_initialised(tmp_path):
    with open_data_dir(str(tmp_path)) as engine, engine.read() as txn:
        assert txn.get("items", b"k") is None
    assert os.path.exists(tmp_path / "FORMAT")


def test_reopen_keeps_data(tmp_path):
    path = str(tmp_path / "data")
    make_shoal_dir(path)
    with open_data_dir(path) as engine, engine.read() as txn:
        assert txn.get("items", b"k") == b"v"
    with open_data_dir(path, create=False, sync=False) as engine, engine.read() as txn:
        assert txn.get("items", b"k") == b"v"


def test_interrupted_first_start_is_completed(tmp_path):
    """The marker is written first; a start that died before LMDB created its
    files is finished by the next one."""
    (tmp_path / "FORMAT").write_bytes(MARKER)
    with open_data_dir(str(tmp_path)) as engine, engine.read() as txn:
        assert list(txn.scan("items")) == []
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "FORMAT").write_bytes(MARKER)
    (tmp_path / "other" / "lmdb").mkdir()
    with open_data_dir(str(tmp_path / "other")):
        pass


def test_leftover_temporary_marker_from_a_crash_is_replaced(tmp_path):
    (tmp_path / "FORMAT.12345.tmp").write_bytes(b"Shoal da")
    with open_data_dir(str(tmp_path)):
        pass
    assert sorted(os.listdir(tmp_path)) == ["FORMAT", "lmdb"]
    assert (tmp_path / "FORMAT").read_bytes() == MARKER


def _open_and_write(path, number) -> None:
    with open_data_dir(path) as engine, engine.write() as txn:
        txn.put("items", b"worker%d" % number, b"x")


def test_workers_opening_a_fresh_directory_together(tmp_path):
    path = str(tmp_path / "shared")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_open_and_write, args=(path, n)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    with open_data_dir(path) as engine, engine.read() as txn:
        assert [k for k, _ in txn.scan("items")] == [b"worker0", b"worker1", b"worker2", b"worker3"]
    assert sorted(os.listdir(path)) == ["FORMAT", "lmdb"]


# ------------------------------------------------------------ refused, nothing touched


def test_missing_directory_without_create(tmp_path):
    path = str(tmp_path / "absent")
    assert refused_without_create(path) == f"data directory {path} does not exist"
    assert not os.path.exists(path)


def refused_without_create(path) -> str:
    with pytest.raises(DataDirError) as caught:
        open_data_dir(path, create=False)
    return str(caught.value)


def test_path_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"hello")
    assert refused(str(path)) == f"data directory {path} is not a directory"
    assert path.read_bytes() == b"hello"


def test_parent_is_a_regular_file_is_not_writable(tmp_path):
    (tmp_path / "file").write_bytes(b"hello")
    path = str(tmp_path / "file" / "data")
    before = snapshot(tmp_path)
    with pytest.raises(DataDirError) as caught:
        open_data_dir(path)
    assert str(caught.value) == f"data directory {path} is not writable: cannot create it (Not a directory)"
    assert snapshot(tmp_path) == before


def test_incompatible_format_version(tmp_path):
    make_shoal_dir(str(tmp_path))
    (tmp_path / "FORMAT").write_bytes(b"Shoal data directory\nformat 2\nengine lmdb\n")
    assert refused(str(tmp_path)) == (
        f"data directory {tmp_path} was written by Shoal format 2; this Shoal reads format 1"
    )


@pytest.mark.parametrize(
    "marker",
    [b"", b"garbage", b"\xff\xfe\x00\x01", b"Shoal data directory\n", b"Shoal data directory\nformat x\n",
     b"Shoal data directory\nversion 1\n", b"Shoal data directory\nformat 1\n" + b"#" * 5000],
)
def test_garbage_marker_is_damage(tmp_path, marker):
    make_shoal_dir(str(tmp_path))
    (tmp_path / "FORMAT").write_bytes(marker)
    assert refused(str(tmp_path)) == f"data directory {tmp_path} is damaged: FORMAT is not a Shoal format marker"


def test_marker_that_is_a_directory_is_damage(tmp_path):
    (tmp_path / "FORMAT").mkdir()
    message = refused(str(tmp_path))
    assert message.startswith(f"data directory {tmp_path} is damaged: cannot read FORMAT (")


@pytest.mark.parametrize("content", [["notes.txt"], ["data.mdb"], ["lmdb"], [".hidden"]])
def test_foreign_non_empty_directory(tmp_path, content):
    for name in content:
        (tmp_path / name).write_bytes(b"someone else's")
    assert refused(str(tmp_path)) == (
        f"data directory {tmp_path} is not a Shoal data directory: it is not empty and has no FORMAT file"
    )


def _corrupt(path, offset, data) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda f: _corrupt(f, 0, b"\x5a" * 8192), "is not an LMDB file"),
        (lambda f: _corrupt(f, 16, struct.pack("<I", 0xDEADBEEF)), "is not an LMDB file"),
        (lambda f: _corrupt(f, 20, struct.pack("<I", 2)), "has LMDB format 2, expected 1"),
        (lambda f: _corrupt(f, 40, struct.pack("<I", 1000)), "has an invalid page size"),
        (lambda f: _corrupt(f, 4096 + 16, b"\x00" * 8), "has a damaged meta page"),
        (lambda f: os.truncate(f, 100), "is truncated"),
        (lambda f: os.truncate(f, 4096 + 20), "is truncated"),
        (lambda f: os.truncate(f, 3 * 4096), "is truncated"),
        (lambda f: os.truncate(f, 0), "is truncated"),
    ],
)
def test_damaged_lmdb_file(tmp_path, damage, problem):
    make_shoal_dir(str(tmp_path))
    os.remove(tmp_path / "lmdb" / "lock.mdb")  # so a stray LMDB open would show
    damage(str(tmp_path / "lmdb" / "data.mdb"))
    assert refused(str(tmp_path)) == f"data directory {tmp_path} is damaged: lmdb/data.mdb {problem}"
    assert not os.path.exists(tmp_path / "lmdb" / "lock.mdb")


def test_damaged_btree_pages_are_damage(tmp_path):
    """Valid meta pages, garbage tree pages: found by LMDB when the engine opens
    (which may refresh lock.mdb, so only the data file is compared)."""
    with open_data_dir(str(tmp_path)) as engine, engine.write() as txn:
        for number in range(2000):
            txn.put("items", b"k%05d" % number, b"v" * 100)
    data_file = tmp_path / "lmdb" / "data.mdb"
    size = os.path.getsize(data_file)
    _corrupt(data_file, 2 * 4096, b"\xa5" * (size - 2 * 4096))
    before = data_file.read_bytes()
    with pytest.raises(DataDirError) as caught:
        open_data_dir(str(tmp_path))
    assert str(caught.value).startswith(f"data directory {tmp_path} is damaged: ")
    assert "MDB_CORRUPTED" in str(caught.value) or "MDB_PAGE_NOTFOUND" in str(caught.value)
    assert data_file.read_bytes() == before


def test_missing_lmdb_data_file_is_damage(tmp_path):
    make_shoal_dir(str(tmp_path))
    os.remove(tmp_path / "lmdb" / "data.mdb")
    (tmp_path / "lmdb" / "stray").write_bytes(b"x")
    assert refused(str(tmp_path)) == f"data directory {tmp_path} is damaged: lmdb/data.mdb is missing"


def test_lmdb_path_that_is_a_file_is_damage(tmp_path):
    (tmp_path / "FORMAT").write_bytes(MARKER)
    (tmp_path / "lmdb").write_bytes(b"x")
    assert refused(str(tmp_path)) == f"data directory {tmp_path} is damaged: lmdb is not a directory"


# ------------------------------------------------------------ immutable (root-proof) directories


def _chattr(flag: str, *paths) -> bool:
    if shutil.which("chattr") is None:
        return False
    result = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True)
    return result.returncode == 0


@pytest.fixture
def immutable():
    """Mark paths immutable; always cleared afterwards so tmp_path can be removed."""
    marked = []

    def mark(*paths):
        if not _chattr("+i", *paths):
            pytest.skip("the immutable attribute is not available here")
        marked.extend(paths)

    yield mark
    if marked:
        _chattr("-i", *marked)


def test_immutable_empty_directory_is_not_writable(tmp_path, immutable):
    path = tmp_path / "data"
    path.mkdir()
    immutable(path)
    message = refused(str(path))
    assert message == f"data directory {path} is not writable (Operation not permitted)"
    assert os.listdir(path) == []


def test_immutable_missing_parent_is_not_writable(tmp_path, immutable):
    immutable(tmp_path)
    path = tmp_path / "data"
    with pytest.raises(DataDirError) as caught:
        open_data_dir(str(path))
    assert str(caught.value) == f"data directory {path} is not writable: cannot create it (Operation not permitted)"
    assert not path.exists()


def test_immutable_shoal_directory_is_not_writable(tmp_path, immutable):
    make_shoal_dir(str(tmp_path))
    lmdb_dir = tmp_path / "lmdb"
    immutable(lmdb_dir / "data.mdb", lmdb_dir / "lock.mdb", lmdb_dir, tmp_path / "FORMAT", tmp_path)
    message = refused(str(tmp_path))
    assert message == f"data directory {tmp_path} is not writable: lmdb/data.mdb (Operation not permitted)"


def test_lock_file_that_cannot_be_created_is_not_writable(tmp_path, immutable):
    make_shoal_dir(str(tmp_path))
    os.remove(tmp_path / "lmdb" / "lock.mdb")
    immutable(tmp_path / "lmdb")
    message = refused(str(tmp_path))
    assert message == f"data directory {tmp_path} is not writable: lmdb (Operation not permitted)"
    assert sorted(os.listdir(tmp_path / "lmdb")) == ["data.mdb"]
