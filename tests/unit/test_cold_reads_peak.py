"""The peak a cold read adds to a worker's memory (issue 17, point 6): ``shed_point`` unmaps the data
file's pages within a long read once it has mapped past the threshold, ``ColdReads`` hands the heap's
free pages back after a read that grew it, and the metrics' long reads (a scrape, GetMetricData over
many series, the table gauges, the roll-up) reach those checkpoints and answer as before."""

from __future__ import annotations

import threading

import numpy as np

from shoal.metrics import blocks, prometheus
from shoal.metrics.cloudwatch import many_period_values, period_values
from shoal.metrics.dynamodb import TableGauges
from shoal.metrics.retention import roll_up_series
from shoal.metrics.stats import Stats
from shoal.metrics.store import Writer, block_decimals, block_key, read_parts
from shoal.storage import resident
from shoal.storage.lmdb_engine import LmdbEngine
from shoal.storage.resident import HEAP_SLACK, MID_READ_FACTOR, ColdReads, data_file_of, drop_mapped, shed_point

MiB = 1 << 20
DAY = 86400
T0 = 1_800_000_000 - 1_800_000_000 % DAY


class FakeProcess:
    """RssFile and RssAnon as a test sets them, and the drops and heap trims asked for."""

    def __init__(self) -> None:
        self.file = 100 * MiB
        self.anon = 50 * MiB
        self.drops = 0
        self.trims = 0

    def cold(self, threshold: int = 4 * MiB) -> ColdReads:
        return ColdReads("data.mdb", threshold, read_rss=lambda: self.file, drop=self._drop,
                         read_anon=lambda: self.anon, trim_heap=self._trim)

    def _drop(self, path: str) -> int:
        self.drops += 1
        self.file = 100 * MiB
        return 0

    def _trim(self) -> None:
        self.trims += 1
        self.anon = 50 * MiB


def test_a_long_read_is_unmapped_at_its_shed_points_once_past_the_threshold():
    proc = FakeProcess()
    cold = proc.cold()
    peaks = []

    def read():
        for _ in range(20):  # 20 MiB mapped, a MiB between checkpoints
            proc.file += MiB
            peaks.append(proc.file)
            shed_point()
        return "answer"

    assert MID_READ_FACTOR == 1
    assert cold.run(read) == "answer"
    # unmapped whenever more than 4 MiB had been mapped: the read never held more than 5 MiB of the file
    assert max(peaks) - 100 * MiB == 5 * MiB
    assert proc.drops == cold.sheds == 4 and cold.owed == 0  # 5, 10, 15, 20 MiB; nothing owed after
    shed_point()  # outside a cold read: nothing
    proc.file += 10 * MiB
    shed_point()
    assert proc.drops == 4


def test_a_shed_point_counts_what_earlier_reads_owe_and_only_its_own_threads_read():
    proc = FakeProcess()
    cold = proc.cold()

    def small():
        proc.file += 3 * MiB

    cold.run(small)
    assert cold.owed == 3 * MiB and proc.drops == 0
    other = []

    def read():
        proc.file += MiB // 2
        thread = threading.Thread(target=lambda: other.append(shed_point()))  # no cold read in that thread
        thread.start()
        thread.join()
        assert proc.drops == 0
        proc.file += 5 * MiB
        shed_point()  # 3 owed + 5.5 mapped by this read: over 4
        assert proc.drops == 1

    cold.run(read)
    assert other == [None] and proc.drops == 1 and cold.owed == 0


def test_the_heap_is_handed_back_after_a_read_that_grew_it_past_the_slack():
    proc = FakeProcess()
    cold = proc.cold()

    def grow(by: int):
        def read():
            proc.anon += by
        return read

    cold.run(grow(HEAP_SLACK // 2))
    assert proc.trims == 0 and cold.heap_floor == 50 * MiB  # the floor: RssAnon before the first cold read
    cold.run(grow(HEAP_SLACK))  # 1.5 slack above the floor
    assert proc.trims == cold.heap_trims == 1 and proc.anon == cold.heap_floor == 50 * MiB
    proc.anon += 10 * MiB  # the process's own growth between reads: the first read after it trims once
    cold.run(grow(0))
    assert proc.trims == 2


def test_over_lmdb_a_read_with_shed_points_holds_about_the_threshold_of_the_file(tmp_path):
    engine = LmdbEngine(tmp_path / "db", sync=False)
    try:
        value = b"x" * 1000
        with engine.write() as txn:
            for i in range(40_000):  # about 40 MiB
                txn.put("items", b"k%08d" % i, value)
        drop_mapped(data_file_of(engine))
        cold = ColdReads(data_file_of(engine), 4 * MiB)
        start = resident.rss_file_bytes()
        highest = [0]

        def read():
            good = 0
            with engine.read() as txn:
                for i in range(40_000):
                    good += txn.get("items", b"k%08d" % i) == value
                    if i % 1000 == 999:  # about a MiB between checkpoints
                        highest[0] = max(highest[0], resident.rss_file_bytes() - start)
                        shed_point()
            return good

        assert cold.run(read) == 40_000
        assert cold.sheds >= 4  # without shed points: one, after the read, which held all 40 MiB at its end
        assert highest[0] < 8 * MiB  # the threshold, a MiB between checkpoints, fault-around
    finally:
        engine.close()


def _metrics_engine(tmp_path, tables: int = 40):
    """An LMDB engine holding three days of minutes of each table's consumed writes and read latency,
    the days before the last hour sealed into blocks."""
    engine = LmdbEngine(tmp_path / "db", sync=False)
    now = T0 + 3 * DAY + 1800
    series = []
    with engine.write() as txn:
        writer = Writer(txn)
        for t in range(tables):
            for name, unit, op in (("ConsumedWriteCapacityUnits", "Count", None),
                                   ("SuccessfulRequestLatency", "Milliseconds", "GetItem"),
                                   ("ItemCount", "Count", None)):
                dims = ((("Operation", op),) if op else ()) + (("TableName", f"t{t:02d}"),)
                s = ("us-east-1", "AWS/DynamoDB", name, dims)
                for minute in range(0, 3 * 24 * 60 + 30, 7):
                    writer.add(s, unit, T0 + 60 * minute, Stats.of([1.0 + (minute * (t + 1)) % 13, 2.5]))
                series.append((s, unit))
        writer.finish()
        ids = [writer.info(s, "", 0).series_id for s, _ in series]
    with engine.write() as txn:
        for (s, unit), series_id in zip(series, ids):
            roll_up_series(txn, series_id, now, 10_000_000, decimals=block_decimals(s, unit))
    return engine, ids, now


def _counting(cold: ColdReads) -> list:
    """Counts ``cold``'s reads of RssFile (two a cold read, one more at each shed point)."""
    calls = []
    read = cold._read_rss

    def counted():
        calls.append(1)
        return read()

    cold._read_rss = counted
    return calls


def test_a_scrape_and_a_read_of_many_series_reach_shed_points_and_answer_the_same(tmp_path):
    engine, ids, now = _metrics_engine(tmp_path)
    try:
        cold = ColdReads(data_file_of(engine), 4 * MiB)
        calls = _counting(cold)
        plain = prometheus.exposition(engine)
        shed = cold.run(lambda: prometheus.exposition(engine))
        assert len(calls) >= 2 + 120 // 32  # 120 series: a shed point every 32
        strip = lambda text: [line for line in text.splitlines() if not line.startswith((b"process_", b"# ", b"shoal_storage_readers"))]
        assert strip(shed) == strip(plain)

        reads = [(series_id, 60, "Sum") for series_id in ids[::3]] + [(ids[1], 3600, "p99"), (ids[4], 300, "p50")]
        start = now - 3 * 3600
        with engine.read() as txn:
            expected = [period_values(txn, series_id, start, now, period, name, now)
                        for series_id, period, name in reads]
            del calls[:]
            got = cold.run(lambda: many_period_values(txn, reads, start, now, now))
        assert got == expected and any(got)
        assert len(calls) >= 2 + 2 + 40 // 16  # a shed point before each percentile, every 16 other reads
    finally:
        engine.close()


def test_the_table_gauges_record_inside_a_cold_read(tmp_path):
    engine, _ids, now = _metrics_engine(tmp_path, tables=2)
    try:
        cold = ColdReads(data_file_of(engine), 4 * MiB)
        calls = _counting(cold)
        TableGauges(engine, lambda: now, cold_reads=cold)()
        assert len(calls) >= 2
    finally:
        engine.close()


def test_a_windows_copy_holds_its_rows_only_and_equals_the_view(tmp_path):
    engine, ids, now = _metrics_engine(tmp_path, tables=1)
    try:
        with engine.read() as txn:
            parts = read_parts(txn, ids[1], now - 5 * 3600, now, True, now, dense=True)
            raw = txn.get("meta", block_key(ids[1], 0, T0 + 2 * DAY))
            whole = blocks.decode(raw, True, dense=True)
        view = whole.window(T0 + 2 * DAY + 3600, T0 + 2 * DAY + 7200)
        copy = whole.window(T0 + 2 * DAY + 3600, T0 + 2 * DAY + 7200, copy=True)
        assert 0 < len(copy) < len(whole)
        for name in ("at", "count", "sum", "min", "max", "pct", "zeros", "shift"):
            assert np.array_equal(getattr(copy, name), getattr(view, name))
            assert not np.shares_memory(getattr(copy, name), getattr(whole, name))
        assert np.array_equal(copy.dense[1], view.dense[1]) and not np.shares_memory(copy.dense[1], whole.dense[1])
        assert [c.stats(i).encode() for c in (copy,) for i in range(len(c))] == \
               [view.stats(i).encode() for i in range(len(view))]
        assert parts and all(len(part) for part in parts)
    finally:
        engine.close()


def test_a_worker_keeps_one_account_of_its_cold_reads_per_data_file(tmp_path):
    engine = LmdbEngine(tmp_path / "db", sync=False)
    try:
        shared = ColdReads.for_engine(engine, {})
        # the CloudWatch API, the scrape, the table gauges and the roll-up owe into one account
        assert shared is ColdReads.for_engine(engine, {}) and shared.threshold == 4 * MiB
        assert ColdReads.for_engine(engine, {"SHOAL_SHED_COLD_READS_MB": "8"}) is not shared
    finally:
        engine.close()


class _BlockScans:
    """A read transaction that records the scans of blocks (``metrics/b/``) made through it."""

    def __init__(self, txn) -> None:
        self.txn = txn
        self.block_scans = 0

    def get(self, *args, **kwargs):
        return self.txn.get(*args, **kwargs)

    def scan(self, space, start=None, stop=None, **kwargs):
        if start is not None and bytes(start).startswith(b"metrics/b/"):
            self.block_scans += 1
        return self.txn.scan(space, start, stop, **kwargs)


def test_a_gauges_minute_of_the_current_hour_is_its_latest_without_reading_its_blocks(tmp_path):
    from shoal.metrics.store import latest_stored

    engine, ids, now = _metrics_engine(tmp_path, tables=2)
    try:
        gauge = ids[2]  # ItemCount of t00: minutes sealed into blocks up to the last hour, then keys
        hour = now - now % 3600
        with engine.write() as txn:
            writer = Writer(txn)
            writer.add(("us-east-1", "AWS/DynamoDB", "ItemCount", (("TableName", "t00"),)), "Count", now + 60,
                       Stats.of([42.0]), total=False)
            writer.finish()
        with engine.read() as txn:
            counted = _BlockScans(txn)
            assert latest_stored(counted, gauge, hour) == latest_stored(txn, gauge) == latest_stored(txn, gauge, None)
            assert counted.block_scans == 0 and Stats.decode(latest_stored(txn, gauge)[1]).max == 42.0
            # a newest key older than the hour (by a clock an hour later): the blocks are looked at, as before
            other = ids[5]
            counted = _BlockScans(txn)
            assert latest_stored(counted, other, hour + 3600) == latest_stored(txn, other)
            assert counted.block_scans == 1
        plain = prometheus.exposition(engine)
        assert [line for line in prometheus.exposition(engine, now).splitlines() if b"item_count" in line] == \
               [line for line in plain.splitlines() if b"item_count" in line]
    finally:
        engine.close()
