"""shoal.storage.resident: unmapping LMDB's data file pages loses nothing and lowers RssFile.

The storage tests run on a real LMDB environment and read this process's real
/proc/self/status: what the trim claims (pages unmapped, data intact, dirty
pages kept) is checked against the kernel, not assumed.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading

import pytest

from shoal.storage import resident
from shoal.storage.encrypted import EncryptedEngine
from shoal.storage.lmdb_engine import LmdbEngine
from shoal.storage.memory_engine import MemoryEngine
from shoal.storage.resident import ResidentTrimmer, budget_from_env, data_file_of, drop_mapped, mapped_ranges

MiB = 1 << 20
VALUE_BYTES = 1000
ITEMS = 40_000  # about 40 MiB of values, several times what the tests' thresholds need


def value_of(i: int) -> bytes:
    return (b"%08d" % i) * (VALUE_BYTES // 8)


def fill(engine, start: int, count: int) -> None:
    with engine.write() as txn:
        for i in range(start, start + count):
            txn.put("items", b"k%08d" % i, value_of(i))


def read_all(engine, count: int) -> int:
    """Reads every item through the map (so its pages become resident); the number that read back right."""
    good = 0
    with engine.read() as txn:
        for i in range(count):
            good += txn.get("items", b"k%08d" % i) == value_of(i)
    return good


def rss_file() -> int:
    value = resident.rss_file_bytes()
    assert value is not None
    return value


@pytest.fixture
def big_engine(tmp_path):
    eng = LmdbEngine(tmp_path / "db", sync=False)
    fill(eng, 0, ITEMS)
    yield eng
    eng.close()


# ---------------------------------------------------------------- the setting


def test_budget_default_off_and_value():
    assert budget_from_env({}) == resident.DEFAULT_BUDGET_MB * MiB == 0
    assert budget_from_env({"SHOAL_MAX_MAPPED_RESIDENT_MB": "0"}) == 0
    assert budget_from_env({"SHOAL_MAX_MAPPED_RESIDENT_MB": " 200 "}) == 200 * MiB
    assert budget_from_env({"SHOAL_MAX_MAPPED_RESIDENT_MB": ""}) == 0


def test_budget_off_by_default_with_prewarm_unless_set():
    assert budget_from_env({"SHOAL_PREWARM": "true"}) == 0
    assert budget_from_env({"SHOAL_PREWARM": "0", "SHOAL_MAX_MAPPED_RESIDENT_MB": "48"}) == 48 * MiB
    assert budget_from_env({"SHOAL_PREWARM": "1", "SHOAL_MAX_MAPPED_RESIDENT_MB": "64"}) == 64 * MiB


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "48MB"])
def test_budget_bad_value(text):
    with pytest.raises(ValueError) as caught:
        budget_from_env({"SHOAL_MAX_MAPPED_RESIDENT_MB": text})
    assert str(caught.value) == (
        f"SHOAL_MAX_MAPPED_RESIDENT_MB: {text!r} is not a whole number of MiB (0 turns the bound off)")


# ---------------------------------------------------------------- /proc parsing


def test_rss_file_parsed(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmRSS:\t   90000 kB\nRssAnon:\t   30000 kB\nRssFile:\t   51234 kB\n"
                      "RssShmem:\t       0 kB\n")
    assert resident.rss_file_bytes(str(status)) == 51234 * 1024
    status.write_text("Name:\tpython\n")
    assert resident.rss_file_bytes(str(status)) is None
    assert resident.rss_file_bytes(str(tmp_path / "missing")) is None


def test_mapped_ranges_parsed(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f0000000000-7f0001000000 r--s 00000000 fd:01 123 /data dir/db/data.mdb\n"
        "7f0002000000-7f0002001000 rw-s 00000000 fd:01 124 /data dir/db/lock.mdb\n"
        "7f0003000000-7f0003400000 r--s 00400000 fd:01 123 /data dir/db/data.mdb\n"
        "7f0004000000-7f0004001000 rw-p 00000000 00:00 0 \n")
    assert mapped_ranges("/data dir/db/data.mdb", str(maps)) == [
        (0x7F0000000000, 0x7F0001000000, 0), (0x7F0003000000, 0x7F0003400000, 0x400000)]
    assert mapped_ranges("/data dir/db/data", str(maps)) == []


def test_data_file_of_engines(lmdb_engine, engine):
    path = os.path.realpath(os.path.join(lmdb_engine.path, "data.mdb"))
    assert data_file_of(lmdb_engine) == path
    assert data_file_of(EncryptedEngine.__new__(EncryptedEngine)) is None  # no inner yet: maps nothing
    wrapped = EncryptedEngine.__new__(EncryptedEngine)
    wrapped.inner = lmdb_engine
    assert data_file_of(wrapped) == path
    assert data_file_of(engine) is None  # the in-memory engine maps no file
    assert isinstance(engine, MemoryEngine)


def test_for_engine(lmdb_engine, engine):
    trimmer = ResidentTrimmer.for_engine(lmdb_engine, {"SHOAL_MAX_MAPPED_RESIDENT_MB": "20"})
    assert trimmer.budget == 20 * MiB
    assert trimmer.data_file == data_file_of(lmdb_engine)
    assert ResidentTrimmer.for_engine(lmdb_engine, {"SHOAL_MAX_MAPPED_RESIDENT_MB": "0"}) is None
    assert ResidentTrimmer.for_engine(engine, {}) is None
    with pytest.raises(ValueError):
        ResidentTrimmer.for_engine(lmdb_engine, {"SHOAL_MAX_MAPPED_RESIDENT_MB": "x"})


# ---------------------------------------------------------------- the kernel's side


def test_lmdb_maps_data_file_shared_and_read_only(lmdb_engine):
    """What the safety argument rests on: without writemap the map is r--s
    (shared, read-only), so no page is ever written through it."""
    path = data_file_of(lmdb_engine)
    with open("/proc/self/maps") as maps:
        perms = {line.split()[1] for line in maps if line.rstrip("\n").endswith(" " + path)}
    assert perms == {"r--s"}


def test_trim_lowers_rss_file_and_loses_nothing(big_engine, tmp_path):
    read_all(big_engine, ITEMS)
    before = rss_file()
    advised = drop_mapped(data_file_of(big_engine))
    after = rss_file()
    data_bytes = big_engine.stats()["data_bytes"]
    assert advised >= data_bytes
    assert before - after >= 30 * MiB  # the ~40 MiB of values read above left the process
    assert read_all(big_engine, ITEMS) == ITEMS  # read back through minor faults, every byte right
    assert rss_file() - after >= 30 * MiB  # and mapped again by reading them
    # writes after a trim, a trim between writes, and a reopened environment
    drop_mapped(data_file_of(big_engine))
    fill(big_engine, ITEMS, 1000)
    drop_mapped(data_file_of(big_engine))
    with big_engine.write() as txn:
        txn.delete("items", b"k%08d" % 5)
    drop_mapped(data_file_of(big_engine))
    big_engine.close()
    reopened = LmdbEngine(tmp_path / "db", sync=False)
    try:
        with reopened.read() as txn:
            assert txn.get("items", b"k%08d" % 5) is None
            assert txn.get("items", b"k%08d" % (ITEMS + 999)) == value_of(ITEMS + 999)
        assert read_all(reopened, ITEMS + 1000) == ITEMS + 1000 - 1
    finally:
        reopened.close()


def test_trim_of_a_writable_shared_mapping_keeps_dirty_pages(tmp_path):
    """Were the map written through (LMDB's writemap), a dirty page would stay
    dirty in the page cache: DONTNEED on a shared file mapping unmaps, never
    discards.  Checked on a file the test maps itself, before any msync."""
    path = os.path.realpath(tmp_path / "shared.bin")
    size = 8 * MiB
    with open(path, "wb") as handle:
        handle.truncate(size)
    fd = os.open(path, os.O_RDWR)
    try:
        view = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        pattern = b"dirty page %06d " * 256
        for page in range(0, size, mmap.PAGESIZE):
            view[page:page + 32] = pattern[:32]
        assert drop_mapped(path) == size
        assert all(view[page:page + 32] == pattern[:32] for page in range(0, size, mmap.PAGESIZE))
        with open(path, "rb") as other:  # read through the page cache, not the map
            data = other.read()
        assert all(data[page:page + 32] == pattern[:32] for page in range(0, size, mmap.PAGESIZE))
        view.close()
    finally:
        os.close(fd)


def test_trim_while_other_threads_read(big_engine):
    """Readers in other threads see every value right while the map is trimmed under them."""
    path = data_file_of(big_engine)
    stop = threading.Event()
    results = []

    def reader(offset: int) -> None:
        rounds = 0
        while not stop.is_set() or rounds == 0:
            with big_engine.read() as txn:
                for i in range(offset, ITEMS, 7):
                    if txn.get("items", b"k%08d" % i) != value_of(i):
                        results.append(("wrong", i))
            rounds += 1
        results.append(("rounds", rounds))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    trims = 0
    try:
        while trims < 200 and all(t.is_alive() for t in threads):
            drop_mapped(path)
            trims += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert trims == 200
    assert [r for r in results if r[0] == "wrong"] == []
    assert sorted(r[0] for r in results) == ["rounds", "rounds"]


# ---------------------------------------------------------------- the job's rules


class Fake:
    """RssFile readings and trims the trimmer sees, and a clock."""

    def __init__(self, rss: int) -> None:
        self.rss = rss
        self.dropped: list[str] = []
        self.after_drop = 20 * MiB  # what the other mapped files hold
        self.fail = False

    def read(self) -> int:
        return self.rss

    def drop(self, path: str) -> int:
        if self.fail:
            raise OSError(22, f"madvise(MADV_DONTNEED) on {path}: Invalid argument")
        self.dropped.append(path)
        self.rss = self.after_drop
        return 1

    def trimmer(self, budget: int = 48 * MiB) -> ResidentTrimmer:
        return ResidentTrimmer("/db/data.mdb", budget, read_rss=self.read, drop=self.drop)


def test_trims_only_past_the_budget():
    fake = Fake(48 * MiB)
    trimmer = fake.trimmer()
    assert trimmer() is False
    assert fake.dropped == []
    fake.rss = 48 * MiB + 4096
    assert trimmer() is False  # a trim never asks the loop to hurry
    assert fake.dropped == ["/db/data.mdb"]
    assert (trimmer.trims, trimmer.floor) == (1, 20 * MiB)


def test_other_files_over_the_budget_do_not_set_off_a_trim_every_round(caplog):
    fake = Fake(70 * MiB)
    fake.after_drop = 60 * MiB  # libraries alone over a 48 MiB budget
    trimmer = fake.trimmer()
    with caplog.at_level(logging.WARNING, logger="shoal"):
        trimmer()
    assert trimmer.trims == 1
    assert [r.getMessage() for r in caplog.records] == [
        "mapped files other than the data file take 60 MiB, over SHOAL_MAX_MAPPED_RESIDENT_MB (48 MiB): "
        "trimming the data file's pages cannot meet it"]
    fake.rss = 60 * MiB + trimmer.slack - 1  # grown by less than the slack (12 MiB): no trim
    trimmer()
    assert trimmer.trims == 1
    fake.rss = 60 * MiB + trimmer.slack
    with caplog.at_level(logging.WARNING, logger="shoal"):
        trimmer()
    assert trimmer.trims == 2
    assert len(caplog.records) == 1  # warned once


def test_a_failing_madvise_turns_the_job_off(caplog):
    fake = Fake(100 * MiB)
    fake.fail = True
    trimmer = fake.trimmer()
    with caplog.at_level(logging.WARNING, logger="shoal"):
        assert trimmer() is False
    assert [r.getMessage() for r in caplog.records] == [
        "madvise(MADV_DONTNEED) on /db/data.mdb: Invalid argument; "
        "the bound on mapped resident memory is off in this worker"]
    fake.fail = False
    trimmer()
    assert fake.dropped == []


def test_the_job_on_a_real_engine(big_engine):
    read_all(big_engine, ITEMS)
    assert rss_file() > 30 * MiB
    budget = max(rss_file() - 24 * MiB, 8 * MiB)  # under what reading the table left resident
    trimmer = ResidentTrimmer(data_file_of(big_engine), budget)
    trimmer()
    assert trimmer.trims == 1
    assert rss_file() <= budget
    assert read_all(big_engine, ITEMS) == ITEMS


# ---------------------------------------------------------------- the worker's loop


def test_worker_runs_the_trimmer_as_a_watcher(lmdb_engine, monkeypatch):
    from shoal.api.catalog import Catalog
    from shoal.server.background import BackgroundJobs

    monkeypatch.setenv("SHOAL_MAX_MAPPED_RESIDENT_MB", "32")
    jobs = BackgroundJobs.for_worker(lmdb_engine, Catalog(lmdb_engine), change_retention_s=3600)
    try:
        assert [type(w) for w in jobs.watchers] == [ResidentTrimmer]
        assert jobs.watchers[0].budget == 32 * MiB
        assert not any(isinstance(job, ResidentTrimmer) for job in jobs.jobs)
    finally:
        jobs.close()
    monkeypatch.setenv("SHOAL_MAX_MAPPED_RESIDENT_MB", "0")
    jobs = BackgroundJobs.for_worker(lmdb_engine, Catalog(lmdb_engine), change_retention_s=3600)
    try:
        assert jobs.watchers == []
    finally:
        jobs.close()


def test_watchers_run_on_their_own_cadence_between_rounds():
    import asyncio

    from shoal.server.background import BackgroundJobs

    rounds, checks = [], []
    jobs = BackgroundJobs([lambda: rounds.append(1)], watchers=[lambda: checks.append(1)])
    jobs.INTERVAL_S = 1000.0  # no second round of the jobs during the test
    jobs.WATCH_INTERVAL_S = 0.01

    async def serve_until_five_checks():
        jobs.start(asyncio.get_running_loop())
        for _ in range(500):
            if len(checks) >= 5:
                break
            await asyncio.sleep(0.01)
        jobs.stop()

    asyncio.run(serve_until_five_checks())
    assert len(checks) >= 5
    assert len(rounds) == 1


# ---------------------------------------------------------------- cold reads (metrics history)


def test_cold_reads_setting(lmdb_engine, engine):
    from shoal.storage.resident import ColdReads

    cold = ColdReads.for_engine(lmdb_engine, {})
    assert cold.threshold == resident.DEFAULT_SHED_MB * MiB and cold.data_file == data_file_of(lmdb_engine)
    assert ColdReads.for_engine(lmdb_engine, {"SHOAL_SHED_COLD_READS_MB": "16"}).threshold == 16 * MiB
    assert ColdReads.for_engine(lmdb_engine, {"SHOAL_SHED_COLD_READS_MB": "0"}) is None
    assert ColdReads.for_engine(engine, {}) is None  # the in-memory engine maps no file
    with pytest.raises(ValueError, match="SHOAL_SHED_COLD_READS_MB"):
        ColdReads.for_engine(lmdb_engine, {"SHOAL_SHED_COLD_READS_MB": "-1"})


def test_cold_reads_trim_once_what_they_mapped_passes_the_threshold_not_what_others_mapped():
    from shoal.storage.resident import ColdReads

    rss = [100 * MiB]
    drops = []
    cold = ColdReads("data.mdb", 4 * MiB, read_rss=lambda: rss[0], drop=lambda path: drops.append(path))

    def read(mapped: int):
        def run():
            rss[0] += mapped
            return mapped
        return run

    assert cold.run(read(3 * MiB)) == 3 * MiB and drops == []  # under the threshold: kept
    rss[0] += 50 * MiB  # item requests map pages meanwhile: not the cold reads' doing
    assert cold.run(read(0)) == 0 and drops == []
    cold.run(read(2 * MiB))  # 5 MiB owed by cold reads in all: over 4
    assert drops == ["data.mdb"] and cold.sheds == 1 and cold.owed == 0
    with pytest.raises(KeyError):  # a read that fails still counts what it mapped
        cold.run(lambda: (rss.__setitem__(0, rss[0] + 5 * MiB), {}["x"]))
    assert drops == ["data.mdb"] * 2


def test_cold_reads_over_lmdb_lower_rss_file_and_lose_nothing(big_engine):
    from shoal.storage.resident import ColdReads

    drop_mapped(data_file_of(big_engine))
    cold = ColdReads(data_file_of(big_engine), 4 * MiB)
    before = rss_file()
    assert cold.run(lambda: read_all(big_engine, ITEMS)) == ITEMS
    assert cold.sheds == 1
    assert rss_file() - before < 10 * MiB  # the ~40 MiB the read mapped were unmapped after it
    assert read_all(big_engine, ITEMS) == ITEMS
