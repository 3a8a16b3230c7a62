"""shoal.metrics without a server: statistics, storage, roll-up, the recorder,
the classification of errors and CloudWatch's checks."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pytest

from shoal.api.common import READ, WRITE, meter, meter_records, meter_returned
from shoal.metrics import dynamodb
from shoal.metrics import blocks as columns
from shoal.metrics.cloudwatch import CloudWatch, aggregate, period_values, rounded_start
from shoal.metrics.errors import (
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    SerializationError,
    ValidationError,
)
from shoal.metrics.recorder import Entries, Recorder
from shoal.metrics.retention import RollUp, roll_up_series
from shoal.metrics.stats import HEADER_STATISTICS, RELATIVE_ACCURACY, Stats
from shoal.metrics.store import (
    BLOCK_PREFIX,
    BLOCK_SPANS,
    DATA_PREFIX,
    HOUR,
    HOUR_PREFIX,
    LEVELS,
    SEAL_AFTER_S,
    Writer,
    data_key,
    decode_data_key,
    decode_series_key,
    hour_key,
    iter_series,
    latest,
    latest_stored,
    lookup,
    namespace_range,
    read_periods,
    series_key,
    write_points,
)
from shoal.storage.memory_engine import MemoryEngine

DAY = 86400
T0 = 1_800_000_000  # a minute boundary
LATENCY = ("us-east-1", "AWS/DynamoDB", "SuccessfulRequestLatency", (("Operation", "GetItem"), ("TableName", "t1")))


# ---------------------------------------------------------------- Stats


def exact_percentile(values, p):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def test_stats_answer_the_five_statistics_and_percentiles_within_their_accuracy():
    rng = random.Random(7)
    values = [rng.lognormvariate(0, 1) for _ in range(5000)] + [0.0] * 10
    stats = Stats.of(values)
    assert stats.count == len(values)
    assert stats.sum == pytest.approx(sum(values))
    assert stats.min == 0.0 and stats.max == max(values)
    assert stats.statistic("Average") == pytest.approx(sum(values) / len(values))
    for p in (1, 50, 90, 99, 99.9):
        assert stats.percentile(p) == pytest.approx(exact_percentile(values, p), rel=RELATIVE_ACCURACY)
    assert stats.percentile(100) == max(values)


def test_stats_merge_as_if_recorded_together_and_survive_encoding():
    a, b = [1.0, 2.0, 2.5, 1000.0], [0.0, 0.001, 3.0]
    merged = Stats.of(a).merge(Stats.of(b))
    assert merged == Stats.of(a + b)
    assert Stats.decode(merged.encode()) == merged
    assert Stats.decode(Stats.of([5.0]).encode()).percentile(99) == 5.0  # clamped to [min, max]: exact


def test_negative_values_and_spread_statistic_sets_have_no_percentiles():
    stats = Stats.of([1.0, -2.0])
    assert stats.percentile(50) is None and stats.statistic("Minimum") == -2.0
    assert Stats.decode(stats.encode()).buckets is None
    spread = Stats()
    spread.add_set(10, 55, 1, 10)
    assert spread.statistic("Sum") == 55 and spread.statistic("p90") is None
    same = Stats()
    same.add_set(4, 12, 3, 3)  # four values of 3: percentiles stay available, as in CloudWatch
    assert same.statistic("p50") == 3 and same.count == 4 and same.sum == 12


def test_cumulative_counts_are_a_prometheus_histogram():
    stats = Stats.of([0.1, 0.3, 0.7, 3.0, 30.0])
    assert stats.cumulative([0.25, 0.5, 1, 5, 50]) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------- storage


def test_series_keys_round_trip_and_keep_a_namespace_together():
    odd = ("eu-west-1", "App/Ns", "m\0x", (("A", "v\0\xff"), ("B", "ü")))
    assert decode_series_key(series_key(odd)) == odd
    low, high = namespace_range("eu-west-1", "App/Ns")
    assert low <= series_key(odd) < high
    assert not low <= series_key(("eu-west-1", "App/Ns2", "m", ())) < high


def test_writers_of_several_workers_add_up():
    engine = MemoryEngine()
    for values in ([1.0, 2.0], [3.0]):  # two workers' flushes of the same minute
        with engine.write() as txn:
            write_points(txn, {(LATENCY, "Milliseconds", T0): Stats.of(values)})
    with engine.write() as txn:
        write_points(txn, {(LATENCY, "Milliseconds", T0 + 60): Stats.of([4.0])})
    with engine.read() as txn:
        info = lookup(txn, LATENCY)
        assert info.unit == "Milliseconds" and info.last_minute == T0 // 60 + 1
        periods = list(read_periods(txn, info.series_id, T0, T0 + 120))
        assert [(at, s.count, s.sum) for at, _, s in periods] == [(T0, 3, 6.0), (T0 + 60, 1, 4.0)]
        assert [(at, s.sum) for at, s in sorted(aggregate(txn, info.series_id, T0, T0 + 120, 120).items())] == [
            (T0, 10.0)]
        assert [i.series for i in iter_series(txn)] == [LATENCY]


def sealed_and_unsealed(engine):
    """{level: number of periods} in blocks and in period keys."""
    with engine.read() as txn:
        blocks_found = sum(1 for _ in txn.scan("meta", BLOCK_PREFIX, BLOCK_PREFIX[:-1] + b"0"))
        keys = sum(1 for _ in txn.scan("meta", DATA_PREFIX, DATA_PREFIX[:-1] + b"0"))
    return blocks_found, keys


def test_roll_up_seals_past_hours_then_moves_blocks_to_coarser_periods_and_prunes_the_oldest():
    engine = MemoryEngine()
    with engine.write() as txn:
        writer = Writer(txn)
        for minute in range(12):  # twelve minutes: three five-minute periods, one hour
            writer.add(LATENCY, "Milliseconds", T0 + 60 * minute, Stats.of([float(minute)]))
        writer.finish()

    def levels():
        with engine.read() as txn:
            info = lookup(txn, LATENCY)
            found = [(level, at) for at, level, _ in read_periods(txn, info.series_id, 0, 2**32 - 1)]
            total = sum(s.sum for _, _, s in read_periods(txn, info.series_id, 0, 2**32 - 1))
        return found, total

    def roll(now, budget=100_000):
        with engine.write() as txn:
            return roll_up_series(txn, lookup(txn, LATENCY).series_id, now, budget)

    assert roll(T0 + HOUR + SEAL_AFTER_S - 1) == 0  # the hour ended too recently: still being written
    assert sealed_and_unsealed(engine) == (0, 12)
    assert roll(T0 + HOUR + SEAL_AFTER_S) > 0
    assert sealed_and_unsealed(engine) == (1, 0)  # one block: the day's minutes
    found, total = levels()
    assert found == [(0, T0 + 60 * m) for m in range(12)] and total == sum(range(12))
    assert roll(T0 + 14 * DAY) == 0
    assert roll(T0 + 16 * DAY) > 0  # the day's block is past 15 days: five-minute periods
    found, total = levels()
    assert {level for level, _ in found} == {1} and len(found) == 3 and total == sum(range(12))
    assert roll(T0 + 69 * DAY) > 0  # the five days' block is past 63 days: hours
    found, total = levels()
    assert found == [(2, T0)] and total == sum(range(12))  # T0 is on the hour
    # the job, past the last level's retention: the data is deleted, and the
    # series, with nothing left, forgotten
    job = RollUp(engine, clock=lambda: T0 + 520 * DAY, budget=5)
    while job():
        pass
    with engine.read() as txn:
        assert lookup(txn, LATENCY) is None
    assert sealed_and_unsealed(engine) == (0, 0)


def test_the_walk_seals_every_series_in_bounded_rounds_and_ends():
    engine = MemoryEngine()
    names = [("us-east-1", "App", f"m{i}", ()) for i in range(6)]
    with engine.write() as txn:
        write_points(txn, {(name, "Count", T0 + 60 * m): Stats.of([1.0]) for name in names for m in range(20)})
    job = RollUp(engine, clock=lambda: T0 + 2 * HOUR, budget=45)  # room for about one series a round
    rounds = 1
    while job():
        rounds += 1
        assert rounds < 20
    assert 5 <= rounds and sealed_and_unsealed(engine) == (6, 0)
    assert job() is False  # a new walk waits a minute
    with engine.read() as txn:
        assert [len(columns.decode(raw)) for _, raw in txn.scan("meta", BLOCK_PREFIX, BLOCK_PREFIX[:-1] + b"0")] == [20] * 6

    def walk(now):
        job = RollUp(engine, clock=lambda: now, budget=100_000)
        while job():
            pass

    def levels():
        with engine.read() as txn:
            return sorted({decode_data_key(key)[1] for key, _ in txn.scan("meta", BLOCK_PREFIX, BLOCK_PREFIX[:-1] + b"0")})

    walk(T0 + 2 * HOUR + 120)  # the same day: minutes only
    assert levels() == [0]
    day16 = T0 - T0 % DAY + 16 * DAY
    walk(day16 + 60)  # the first walk of a later day moves the blocks past 15 days
    assert levels() == [1]
    with engine.write() as txn:  # a five-minute period as written before blocks existed
        txn.put("meta", data_key(lookup(txn, names[0]).series_id, 1, T0 - 3 * DAY), Stats.of([2.0]).encode())
    walk(day16 + 200)  # the same day again: coarser periods are not looked for
    assert sealed_and_unsealed(engine) == (6, 1)
    walk(day16 + DAY + 60)
    assert sealed_and_unsealed(engine) == (6, 0)


def test_daily_walks_day_after_day_move_each_block_when_its_span_is_past_its_age():
    engine = MemoryEngine()
    day0 = T0 - T0 % DAY
    with engine.write() as txn:
        write_points(txn, {(LATENCY, "Milliseconds", day0 + 60 * m): Stats.of([1.0]) for m in range(0, 1440, 7)})

    def levels():
        with engine.read() as txn:
            return sorted({decode_data_key(key)[1] for key, _ in txn.scan("meta", BLOCK_PREFIX, BLOCK_PREFIX[:-1] + b"0")})

    seen = {}
    for day in range(1, 80):  # one walk a day, each told when the one before ran: blocks looked up by key
        job = RollUp(engine, clock=lambda day=day: day0 + day * DAY + 600)
        while job():
            pass
        seen[day] = levels()
    assert seen[15] == [0] and seen[16] == [1]  # the day's span ends 16 days after it began
    moved = min(day for day, found in seen.items() if found == [2])
    base1 = day0 - day0 % BLOCK_SPANS[1]
    assert day0 + moved * DAY + 600 - LEVELS[1][1] >= base1 + BLOCK_SPANS[1] > day0 + (moved - 1) * DAY + 600 - LEVELS[1][1]
    with engine.read() as txn:
        series_id = lookup(txn, LATENCY).series_id
        assert sum(v for _, v in period_values(txn, series_id, 0, 2**32 - 1, DAY, "SampleCount")) == len(range(0, 1440, 7))


def test_the_last_level_is_read_within_its_retention_and_deleted_a_block_at_a_time():
    engine = MemoryEngine()
    first = T0 - T0 % BLOCK_SPANS[2] + 10 * DAY  # ten days into a block of hours
    with engine.write() as txn:
        writer = Writer(txn)
        for hour in range(72):
            writer.add(LATENCY, "Milliseconds", first + HOUR * hour, Stats.of([1.0]), level=2)
        writer.finish()
    with engine.write() as txn:
        roll_up_series(txn, lookup(txn, LATENCY).series_id, first + 400 * DAY, 100_000)
    assert sealed_and_unsealed(engine) == (1, 0)
    keep = LEVELS[2][1]

    def hours(now):
        with engine.write() as txn:
            series_id = lookup(txn, LATENCY).series_id
            roll_up_series(txn, series_id, now, 100_000)
            return [at for at, _ in period_values(txn, series_id, 0, 2**32 - 1, HOUR, "Sum", now)]

    assert len(hours(first + keep - 1)) == 72
    assert hours(first + keep + DAY + HOUR + 1) == [first + HOUR * h for h in range(26, 72)]
    assert sealed_and_unsealed(engine) == (1, 0)  # the block stays until its whole span is past
    assert hours(first + keep + 3 * DAY + 1) == []
    assert sealed_and_unsealed(engine) == (1, 0)
    assert hours(first - 10 * DAY + BLOCK_SPANS[2] + keep) == []
    assert sealed_and_unsealed(engine) == (0, 0)


def test_sealed_periods_go_to_the_level_of_their_age_never_into_a_block_past_it():
    """So that blocks only come past their age as time goes by, which daily walks look for by key."""
    engine = MemoryEngine()
    now = T0 + 100 * DAY
    stored = {(0, now - 2 * DAY): 1.0, (0, now - 15 * DAY + 60): 2.0, (0, now - 15 * DAY - 60): 3.0,
              (1, now - 63 * DAY + 600): 4.0, (1, now - 63 * DAY - 600): 5.0, (2, now - 454 * DAY): 6.0,
              (2, now - 456 * DAY): 7.0}
    with engine.write() as txn:
        series_id = Writer(txn).info(LATENCY, "Milliseconds", 0).series_id
        for (level, at), value in stored.items():
            at -= at % LEVELS[level][0]
            txn.put("meta", data_key(series_id, level, at), Stats.of([value]).encode())
    with engine.write() as txn:
        roll_up_series(txn, series_id, now, 100_000)
        found = {s.sum: (level, at) for at, level, s in read_periods(txn, series_id, 0, 2**32 - 1)}
    assert {value: level for value, (level, _) in found.items()} == {1.0: 0, 2.0: 0, 3.0: 1, 4.0: 1, 5.0: 2, 6.0: 2}
    for level, at in found.values():
        assert (at - at % BLOCK_SPANS[level]) + BLOCK_SPANS[level] > now - LEVELS[level][1]
    assert sealed_and_unsealed(engine)[1] == 0


def by_minutes(txn, series_id, start, end, period):
    """What ``aggregate`` answers, from every stored period decoded in full and merged one by one."""
    out = {}
    for at, _level, stats in sorted(read_periods(txn, series_id, start, math.ceil(end)), key=lambda r: r[0]):
        if at < end:
            bucket = start + (at - start) // period * period
            out[bucket] = out[bucket].merge(stats) if bucket in out else stats
    return out


def write_minutes(engine, minutes, rng, base=T0):
    with engine.write() as txn:
        writer = Writer(txn)
        for minute in minutes:
            writer.add(LATENCY, "Milliseconds", base + 60 * minute,
                       Stats.of([float(rng.randint(1, 400)) for _ in range(rng.randint(1, 20))]))
        writer.finish()


STATISTICS = HEADER_STATISTICS + ("p0", "p50", "p90", "p99", "p99.9", "p100")


def assert_reads_agree(engine, windows, now):
    """``aggregate`` and ``period_values`` answer what the stored periods merged one by one give, whether
    they are told the time (and so skip the levels a recent window cannot have) or not."""
    with engine.read() as txn:
        series_id = lookup(txn, LATENCY).series_id
        for start, end, period in windows:
            expected = by_minutes(txn, series_id, start, end, period)
            assert expected, (start, end, period)
            assert aggregate(txn, series_id, start, end, period) == expected, (start, end, period)
            assert aggregate(txn, series_id, start, end, period, now) == expected, (start, end, period)
            for name in STATISTICS:
                wanted = sorted((at, s.statistic(name)) for at, s in expected.items() if s.statistic(name) is not None)
                for told in (None, now):
                    assert period_values(txn, series_id, start, end, period, name, told) == wanted, (
                        start, end, period, name, told)


@pytest.mark.parametrize("dense_cells", [columns._DENSE_CELLS, 0])
def test_reads_add_up_sealed_blocks_late_writes_and_recent_minutes_as_stored_periods_would(dense_cells, monkeypatch):
    monkeypatch.setattr(columns, "_DENSE_CELLS", dense_cells)  # 0: histograms merged by sorting
    rng = random.Random(11)
    engine = MemoryEngine()
    day = T0 - T0 % DAY
    write_minutes(engine, sorted(rng.sample(range(0, 1440 + 300), 900)), rng, day)  # a day and more, with gaps
    with engine.write() as txn:  # a minute whose statistic set has no values: no point
        write_points(txn, {(LATENCY, "Milliseconds", day + 60 * 1500): Stats()})
    with engine.write() as txn:  # two days later: the first day and some hours of the next are sealed
        roll_up_series(txn, lookup(txn, LATENCY).series_id, day + DAY + 3 * HOUR, 1_000_000)
    sealed, unsealed = sealed_and_unsealed(engine)
    assert sealed == 2 and unsealed > 0
    write_minutes(engine, [5, 6, 700, 1441, 1600], rng, day)  # late writes into sealed minutes, and new ones
    windows = [(day, day + 1740 * 60, 60), (day + 600, day + 1500 * 60 + 30.5, 60),  # minutes
               (day, day + 2 * DAY, HOUR), (day + 1740, day + 2 * DAY, HOUR),  # hours, and hours across hours
               (day + 17 * 60, day + 29 * HOUR + 7, 7 * 60), (day, day + 2 * DAY, DAY)]
    assert_reads_agree(engine, windows, day + DAY + 3 * HOUR)
    with engine.write() as txn:  # sealing the late writes changes no answer
        roll_up_series(txn, lookup(txn, LATENCY).series_id, day + 2 * DAY, 1_000_000)
    assert sealed_and_unsealed(engine) == (2, 0)
    assert_reads_agree(engine, windows, day + 2 * DAY)


def test_data_written_before_blocks_is_read_and_sealed_by_the_roll_up():
    """Periods of levels 1 and 2 and hourly totals, as earlier writers stored them."""
    rng = random.Random(3)
    engine = MemoryEngine()
    now = T0 + 80 * DAY
    write_minutes(engine, range(0, 120), rng, now - 2 * DAY)  # recent minutes
    with engine.write() as txn:
        series_id = lookup(txn, LATENCY).series_id
        for i in range(24):  # five-minute periods 20 days old, hours 70 days old
            txn.put("meta", data_key(series_id, 1, now - 20 * DAY + 300 * i), Stats.of([float(i + 1)]).encode())
            txn.put("meta", data_key(series_id, 2, now - 70 * DAY + HOUR * i), Stats.of([float(i), 1.0]).encode())
        hour = now - 2 * DAY
        txn.put("meta", hour_key(series_id, hour - hour % HOUR), Stats.of([1e9]).encode())  # ignored by reads
    windows = [(now - 2 * DAY, now, 60), (now - 21 * DAY, now - 19 * DAY, 300), (now - 71 * DAY, now - 69 * DAY, HOUR),
               (now - 80 * DAY, now, DAY)]
    assert_reads_agree(engine, windows, now)
    with engine.write() as txn:
        roll_up_series(txn, series_id, now, 1_000_000)
    assert sealed_and_unsealed(engine) == (3, 0)
    with engine.read() as txn:
        assert not any(True for _ in txn.scan("meta", HOUR_PREFIX, HOUR_PREFIX[:-1] + b"0"))
    assert_reads_agree(engine, windows, now)


def test_the_newest_minute_is_found_sealed_or_not():
    engine = MemoryEngine()
    gauge = ("us-east-1", "AWS/DynamoDB", "ItemCount", (("TableName", "t1"),))
    with engine.write() as txn:
        write_points(txn, {(gauge, "Count", T0 + 60 * m): Stats.of([float(m)]) for m in range(3)})
    with engine.write() as txn:
        series_id = lookup(txn, gauge).series_id
        roll_up_series(txn, series_id, T0 + 2 * HOUR, 1000)
    with engine.read() as txn:
        assert latest(txn, series_id) == (T0 + 120, Stats.of([2.0]))
        assert latest_stored(txn, series_id) == (T0 + 120, Stats.of([2.0]).encode())
    with engine.write() as txn:
        write_points(txn, {(gauge, "Count", T0 + 120): Stats.of([5.0])})  # a late write to the sealed minute
    with engine.read() as txn:
        assert latest(txn, series_id) == (T0 + 120, Stats.of([2.0, 5.0]))
        assert Stats.decode(latest_stored(txn, series_id)[1]) == Stats.of([2.0, 5.0])
    with engine.write() as txn:
        write_points(txn, {(gauge, "Count", T0 + 3 * HOUR): Stats.of([7.0])})
    with engine.read() as txn:
        assert latest_stored(txn, series_id) == (T0 + 3 * HOUR, Stats.of([7.0]).encode())


def column_cases():
    rng = random.Random(2)
    spread = Stats()
    spread.add_set(10, 55.5, 1, 10)
    negative_zero = Stats.of([-0.0])
    wide = Stats.of([1e-15, 1.0, 1e15])
    big = Stats()
    big.add(3.0, 2**40)
    return {
        "latencies": [(T0 + 60 * i, Stats.of([rng.lognormvariate(0, 1) for _ in range(rng.randint(1, 300))]
                                             + [0.0] * rng.randint(0, 2))) for i in range(0, 1440, 3)],
        "halves": [(T0 + 60 * i, Stats.of([0.5 * rng.randint(1, 8) for _ in range(9)])) for i in range(100)],
        "gauge": [(T0 + 60 * i, Stats.of([float(10**12 + i // 3)])) for i in range(1440)],
        "odd": [(T0, spread), (T0 + 60, negative_zero), (T0 + 120, wide), (T0 + 180, big),
                (T0 + 240, Stats.of([-3.0, 2.5])), (T0 + 300, Stats.of([0.0]))],
        "one": [(T0, Stats.of([4.25]))],
    }


@pytest.mark.parametrize("case", sorted(column_cases()))
def test_a_block_holds_its_periods_exactly(case):
    rows = column_cases()[case]
    base = T0 - T0 % DAY
    raw = columns.encode(columns.Columns.from_stats(rows), base, 60)
    decoded = columns.decode(raw)
    assert decoded.rows() == rows
    for (_, got), (_, want) in zip(decoded.rows(), rows):
        assert math.copysign(1, got.sum) == math.copysign(1, want.sum)  # -0.0 stays -0.0
    assert (columns.block_first(raw), columns.block_last(raw)) == (rows[0][0], rows[-1][0])
    headers = columns.decode(raw, histograms=False)
    assert headers.hoff is None and headers.sum.tolist() == [s.sum for _, s in rows]
    for period in (300, 3600, DAY):
        expected = {}
        for at, stats in rows:
            expected.setdefault(at - at % period, Stats()).merge(stats)
        grouped = columns.coarsen(decoded, period)
        assert [at for at, _ in grouped.rows()] == sorted(expected)
        for (at, got) in grouped.rows():
            want = expected[at]
            assert (got.count, got.min, got.max, got.buckets) == (want.count, want.min, want.max, want.buckets)
            assert got.sum == pytest.approx(want.sum, rel=1e-12)
            for p in (1, 50, 99, 99.99):
                assert got.percentile(p) == want.percentile(p)
        for name in STATISTICS:
            values = columns.statistic(grouped, name)
            assert [None if math.isnan(v) else pytest.approx(v, rel=1e-12) for v in values.tolist()] == [
                expected[at].statistic(name) for at in sorted(expected)], name


def test_histograms_too_wide_for_a_dense_table_are_merged_by_sorting(monkeypatch):
    rows = column_cases()["latencies"] + [(T0 + 60 * 1441, Stats.of([1e-20, 1e20]))]
    cols = columns.Columns.from_stats(rows)
    dense = columns.coarsen(cols, HOUR)
    monkeypatch.setattr(columns, "_DENSE_CELLS", 0)
    sorted_ = columns.coarsen(cols, HOUR)
    assert dense.rows() == sorted_.rows()


def test_sealing_a_days_minutes_is_one_block_a_fraction_of_their_keys():
    rng = random.Random(8)
    engine = MemoryEngine()
    day = T0 - T0 % DAY
    write_minutes(engine, range(1440), rng, day)
    with engine.read() as txn:
        before = sum(len(k) + len(v) for k, v in txn.scan("meta", DATA_PREFIX, DATA_PREFIX[:-1] + b"0"))
    with engine.write() as txn:
        roll_up_series(txn, lookup(txn, LATENCY).series_id, day + DAY + HOUR, 1_000_000)
    with engine.read() as txn:
        after = sum(len(k) + len(v) for k, v in txn.scan("meta", BLOCK_PREFIX, BLOCK_PREFIX[:-1] + b"0"))
    assert after < before / 2, (before, after)


def test_levels_are_cloudwatchs_retention():
    assert LEVELS == ((60, 15 * DAY), (300, 63 * DAY), (3600, 455 * DAY))
    now = T0 + 10 * DAY
    assert rounded_start(now - 3 * DAY + 59, now) == now - 3 * DAY
    assert rounded_start(now - 20 * DAY + 299, now) % 300 == 0
    assert rounded_start(now - 70 * DAY + 3599, now) % 3600 == 0


# ---------------------------------------------------------------- the recorder


def drained(recorder):
    return {(series[2], series[3]): stats for (series, unit, start), stats in recorder.drain().items()}


def test_the_recorder_folds_local_indexes_into_their_table_and_keeps_global_ones_apart():
    recorder = Recorder(MemoryEngine(), clock=lambda: T0)
    minute = T0 // 60
    ctx = SimpleNamespace(region="us-east-1", meter=[])  # what the API reports (shoal.api.common.meter)
    meter(ctx, "t1", WRITE, 2.0, {"GlobalSecondaryIndexes": {"by_content": 1.0},
                                  "LocalSecondaryIndexes": {"by_kind": 1.0}})
    recorder.succeeded(recorder.cell("us-east-1", "t1", "PutItem"), ctx.meter, 0.0035)
    ctx.meter = []
    meter(ctx, "t1", READ, 0.0, {"GlobalSecondaryIndexes": {"by_content": 0.5}})
    meter_returned(ctx, "t1", "Query", 7)
    recorder.succeeded(recorder.cell("us-east-1", "t1", "Query"), ctx.meter, 0.0015)
    recorder.failed("us-east-1", "PutItem", "t1", "ConditionalCheckFailedException", 400, minute)
    recorder.failed("us-east-1", "GetItem", "t1", "ValidationException", 400, minute)
    points = drained(recorder)
    table, gsi = (("TableName", "t1"),), (("GlobalSecondaryIndexName", "by_content"), ("TableName", "t1"))
    assert points[("ConsumedWriteCapacityUnits", table)].sum == 3.0  # table and local index
    assert points[("ConsumedWriteCapacityUnits", gsi)].sum == 1.0
    assert points[("ConsumedReadCapacityUnits", gsi)].sum == 0.5
    assert ("ConsumedReadCapacityUnits", table) not in points  # nothing read from the table itself
    assert points[("ReturnedItemCount", (("Operation", "Query"), ("TableName", "t1")))].sum == 7
    latency = points[("SuccessfulRequestLatency", (("Operation", "PutItem"), ("TableName", "t1")))]
    assert latency.count == 1 and latency.sum == pytest.approx(3.5)
    assert points[("ConditionalCheckFailedRequests", table)].sum == 1
    assert points[("UserErrors", ())].sum == 1  # the conditional failure is not a user error
    assert not recorder.pending()


def test_the_recorder_counts_each_table_of_a_batch_and_only_data_plane_operations():
    recorder = Recorder(MemoryEngine(), clock=lambda: T0 + 30)
    for _ in range(3):
        recorder.succeeded(recorder.cell("us-east-1", "t1", "GetItem"), [("t1", 1 * 2 + False)], 0.001)
    batch = [("a", WRITE, 1.0, None), ("b", WRITE, 2.0, None), ("a", WRITE, 1.0, None)]
    recorder.succeeded(recorder.cell("us-east-1", None, "BatchWriteItem"), batch, 0.004)
    recorder.succeeded(recorder.cell("us-east-1", None, "BatchWriteItem"), [("b", WRITE, 5.0, None)], 0.002)
    recorder.succeeded(recorder.cell("us-east-1", None, "ListTables"), [], 0.001)  # no metrics for it
    recorder.succeeded(recorder.cell("us-east-1", "arn:aws:dynamodb:us-east-1:000000000000:table/t1", "GetItem"),
                       [], 0.001)
    points = {(series[2], series[3]): (start, stats) for (series, unit, start), stats in recorder.drain().items()}
    latency = points[("SuccessfulRequestLatency", (("Operation", "GetItem"), ("TableName", "t1")))]
    assert latency[0] == T0 and latency[1].count == 4 and latency[1].sum == pytest.approx(4.0)
    assert points[("ConsumedReadCapacityUnits", (("TableName", "t1"),))][1].sum == 1.5
    batch_a = points[("SuccessfulRequestLatency", (("Operation", "BatchWriteItem"), ("TableName", "a")))][1]
    batch_b = points[("SuccessfulRequestLatency", (("Operation", "BatchWriteItem"), ("TableName", "b")))][1]
    assert (batch_a.count, batch_a.sum) == (1, pytest.approx(4.0))  # once per request, not per entry
    assert (batch_b.count, batch_b.sum, batch_b.max) == (2, pytest.approx(6.0), pytest.approx(4.0))
    assert points[("ConsumedWriteCapacityUnits", (("TableName", "a"),))][1].sum == 2.0
    assert points[("ConsumedWriteCapacityUnits", (("TableName", "b"),))][1].sum == 7.0
    assert len(points) == 6


def test_the_compact_entries_of_getitem_and_single_item_writes_give_dynamodbs_units():
    """GetItem meters (table, 4 KB blocks * 2 + consistent), a write to a
    table without indexes (table, units): the units are DynamoDB's (half a
    unit a block for an eventually consistent read)."""
    recorder = Recorder(MemoryEngine(), clock=lambda: T0)
    get = recorder.cell("us-east-1", "t1", "GetItem")
    for blocks, consistent in ((1, False), (1, False), (2, True), (1, True), (2, False), (3, False)):
        recorder.succeeded(get, [("t1", blocks * 2 + consistent)], 0.002)
    put = recorder.cell("us-east-1", "t1", "PutItem")
    for units in (1.0, 3.0, 3.0):
        recorder.succeeded(put, [("t1", units)], 0.004)
    points = drained(recorder)
    reads = points[("ConsumedReadCapacityUnits", (("TableName", "t1"),))]
    assert (reads.count, reads.sum, reads.min, reads.max) == (6, 0.5 + 0.5 + 2 + 1 + 1 + 1.5, 0.5, 2.0)
    writes = points[("ConsumedWriteCapacityUnits", (("TableName", "t1"),))]
    assert (writes.count, writes.sum, writes.min, writes.max) == (3, 7.0, 1.0, 3.0)
    latency = points[("SuccessfulRequestLatency", (("Operation", "GetItem"), ("TableName", "t1")))]
    assert latency.count == 6 and latency.sum == pytest.approx(12.0) and latency.percentile(50) == pytest.approx(2.0)


def test_a_bare_number_in_a_tables_cell_is_a_single_item_writes_units_to_that_table():
    """A write may meter just its units (a float) into its table's cell, as
    it would ``(TableName, units)``; an ARN-named cell counts for its table."""
    recorder = Recorder(MemoryEngine(), clock=lambda: T0)
    sink, handle = recorder.request("us-east-1", "t1", "PutItem")
    for units in (1.0, 3.0, 3.0):
        sink.append(units)
        handle.done(0.004)
    sink.append(("t1", 2.0))  # the tuple form still counts with them
    handle.done(0.004)
    arn_sink, arn_handle = recorder.request("us-east-1", "arn:aws:dynamodb:us-east-1:000000000000:table/t1",
                                            "UpdateItem")
    arn_sink.append(5.0)
    arn_handle.done(0.001)
    points = drained(recorder)
    writes = points[("ConsumedWriteCapacityUnits", (("TableName", "t1"),))]
    assert (writes.count, writes.sum, writes.min, writes.max) == (5, 14.0, 1.0, 5.0)
    latency = points[("SuccessfulRequestLatency", (("Operation", "PutItem"), ("TableName", "t1")))]
    assert latency.count == 4


def test_getitem_meters_blocks_from_the_stored_records_length_and_its_size_beyond_4_kb():
    """The stored record is the 4-byte size and the item's JSON, never
    shorter than the item's DynamoDB size: a record of at most 4,100 bytes
    is one 4 KB block without reading the size."""
    from shoal.api.items import get_item, put_item
    from shoal.api.tables import create_table
    from shoal.api.writepath import encode_stored
    from shoal.model.size import item_size

    rng = random.Random(5)
    for _ in range(300):  # every type, names and strings with characters JSON escapes or spells in UTF-8
        name = rng.choice(["a", "é", "\n", "k" * rng.randint(1, 40)])
        value = rng.choice([
            {"S": "".join(rng.choice("aé\n\"€") for _ in range(rng.randint(0, 50)))},
            {"N": rng.choice(["0", "1", "-1e-130", "9" * 38, "123.456", "1E+5"])},
            {"B": bytes(rng.randrange(256) for _ in range(rng.randint(0, 50)))},
            {"BOOL": True}, {"NULL": True}, {"SS": ["x", "é"]}, {"NS": ["1", "22"]}, {"BS": [b"\x00"]},
            {"L": [{"N": "1"}, {"M": {}}]}, {"M": {"é": {"S": ""}}}])
        item = {"id": {"S": "k"}, name: value}
        if "B" in value:
            import base64
            value["B"] = base64.b64encode(value["B"]).decode()
        elif "BS" in value:
            import base64
            value["BS"] = [base64.b64encode(b).decode() for b in value["BS"]]
        assert len(encode_stored(item, 0)) - 4 >= item_size(item), item

    engine = MemoryEngine()
    ctx = _context(engine)
    create_table(ctx, _table("reads"))
    ctx.meter = []
    for key, size in (("tiny", 100), ("small", 4080), ("edge", 4096), ("big", 9000)):
        put_item(ctx, {"TableName": "reads", "Item": {"id": {"S": key}, "v": {"S": "x" * size}}})
    reads = (("tiny", False), ("small", True), ("edge", True), ("big", False), ("none", True))
    ctx.meter = Entries()  # a request naming no table (BatchExecuteStatement's reads): each read a tuple
    for key, consistent in reads:
        get_item(ctx, {"TableName": "reads", "Key": {"id": {"S": key}}, "ConsistentRead": consistent})
    # blocks * 2 + consistent: 1 block; 1 (4,088 bytes, its record over 4,100: the size is read); 2 (4,104
    # bytes); 3 (9,008 bytes); 1 (nothing found)
    assert ctx.meter == [("reads", 2), ("reads", 3), ("reads", 5), ("reads", 6), ("reads", 3)]
    ctx.meter = [0, 0]  # a GetItem's cell: one-block reads counted in the first two slots
    for key, consistent in reads:
        get_item(ctx, {"TableName": "reads", "Key": {"id": {"S": key}}, "ConsistentRead": consistent})
    assert ctx.meter == [1, 1, ("reads", 3), ("reads", 5), ("reads", 6)]  # tiny; nothing found


def test_getrecords_reports_returned_records_and_bytes_by_stream_label():
    recorder = Recorder(MemoryEngine(), clock=lambda: T0)
    ctx = SimpleNamespace(region="us-east-1", meter=[])
    meter_records(ctx, "t1", "2026-12-07T00:00:00.000", 3, 1200)
    recorder.succeeded(recorder.cell("us-east-1", None, "GetRecords"), ctx.meter, 0.003)
    ctx.meter = []
    meter_records(ctx, "t1", "2026-12-07T00:00:00.000", 0, 60)
    recorder.succeeded(recorder.cell("us-east-1", None, "GetRecords"), ctx.meter, 0.001)
    points = drained(recorder)
    dims = (("Operation", "GetRecords"), ("StreamLabel", "2026-12-07T00:00:00.000"), ("TableName", "t1"))
    records, size = points[("ReturnedRecordsCount", dims)], points[("ReturnedBytes", dims)]
    assert (records.count, records.sum, size.sum) == (2, 3, 1260)
    latency = points[("SuccessfulRequestLatency", (("Operation", "GetRecords"), ("TableName", "t1")))]
    assert latency.count == 2 and latency.sum == pytest.approx(4.0)


def test_a_failed_request_leaves_nothing_and_idle_cells_are_retired_after_one_more_flush():
    recorder = Recorder(MemoryEngine(), clock=lambda: T0)
    held = recorder.cell("us-east-1", "nowhere", "GetItem")  # a request that failed: nothing added
    assert drained(recorder) == {} and recorder.cells == {}
    held.latencies.append(0.001)  # a request that held the cell while it ran, answered after the flush
    assert recorder.pending()
    latency = drained(recorder)[("SuccessfulRequestLatency", (("Operation", "GetItem"), ("TableName", "nowhere")))]
    assert latency.count == 1
    held.latencies.append(0.001)  # later than that: lost
    assert drained(recorder) == {} and not recorder.pending()


def test_the_dispatchers_look_up_finds_a_cells_pair_by_operation_table_and_region_until_it_retires():
    """``pairs[operation][TableName][region]`` is what the dispatcher reads
    per request: a cell's shared sink and itself.  A request that holds the
    handle across a flush is counted by the next one; a cell idle through a
    flush leaves ``pairs`` (with the dicts it empties), and the next request
    makes a new one."""
    recorder = Recorder(MemoryEngine(), clock=lambda: T0)
    with pytest.raises(KeyError):
        recorder.pairs["GetItem"]["t1"]["us-east-1"]
    first = recorder.request("us-east-1", "t1", "GetItem")
    recorder.request("eu-west-1", "t1", "GetItem")
    recorder.request("us-east-1", "t2", "PutItem")
    sink, handle = recorder.pairs["GetItem"]["t1"]["us-east-1"]
    assert (sink, handle) == first and handle is recorder.cells[("us-east-1", "t1", "GetItem")]
    assert set(recorder.pairs) == {"GetItem", "PutItem"} and set(recorder.pairs["GetItem"]["t1"]) == {
        "us-east-1", "eu-west-1"}
    sink[1] += 1  # a consistent one-block GetItem (shoal.api.items.get_item)
    handle.done(0.002)
    points = drained(recorder)
    assert points[("ConsumedReadCapacityUnits", (("TableName", "t1"),))].sum == 1.0
    assert points[("SuccessfulRequestLatency", (("Operation", "GetItem"), ("TableName", "t1")))].sum == 2.0
    assert recorder.pairs == {"GetItem": {"t1": {"us-east-1": first}}}  # the idle ones retired
    handle.done(0.004)  # answered after the flush: the next one counts it
    latency = drained(recorder)[("SuccessfulRequestLatency", (("Operation", "GetItem"), ("TableName", "t1")))]
    assert (latency.count, latency.sum) == (1, 4.0)
    assert recorder.pairs == {"GetItem": {"t1": {"us-east-1": first}}}
    assert drained(recorder) == {} and recorder.pairs == {} and recorder.cells == {}
    again = recorder.request("us-east-1", "t1", "GetItem")
    assert again[1] is not handle and recorder.pairs["GetItem"]["t1"]["us-east-1"] == again


def test_latency_statistics_keep_the_milliseconds_and_the_buckets_of_one_by_one_adds():
    rng = random.Random(11)
    seconds = [rng.lognormvariate(-6, 1.5) for _ in range(3000)] + [0.0, 0.0]
    one_by_one = Stats()
    for value in seconds:
        one_by_one.add(value * 1000.0)
    stats = Stats()
    stats.add_values(list(seconds), 1000.0)
    assert stats.buckets == one_by_one.buckets and stats.zeros == 2 and stats.count == len(seconds)
    assert (stats.min, stats.max) == (0.0, max(seconds) * 1000.0)
    assert stats.sum == pytest.approx(sum(seconds) * 1000.0, rel=1e-12)
    for p in (50, 90, 99):
        assert stats.percentile(p) == pytest.approx(exact_percentile([v * 1000 for v in seconds], p),
                                                    rel=RELATIVE_ACCURACY)


def test_errors_count_as_dynamodb_counts_them():
    assert dynamodb.error_metrics("PutItem", "t", "InternalServerError", 500, None) == [
        ("SystemErrors", (("Operation", "PutItem"), ("TableName", "t")))]
    assert dynamodb.error_metrics("Query", "t", "ResourceNotFoundException", 400, None) == [("UserErrors", ())]
    assert dynamodb.error_metrics("TransactWriteItems", None, "TransactionCanceledException", 400, ["a"]) == [
        ("UserErrors", ()), ("TransactionConflict", (("TableName", "a"),))]
    assert dynamodb.error_metrics("PutItem", "t", "ProvisionedThroughputExceededException", 400, None) == [
        ("ThrottledRequests", (("Operation", "PutItem"), ("TableName", "t"))), ("WriteThrottleEvents", (("TableName", "t"),))]
    assert dynamodb.error_metrics("Query", "t", "ThrottlingException", 400, None) == [
        ("ThrottledRequests", (("Operation", "Query"), ("TableName", "t"))), ("ReadThrottleEvents", (("TableName", "t"),))]
    assert dynamodb.error_metrics("BatchWriteItem", None, "RequestLimitExceeded", 400, None) == [
        ("ThrottledRequests", (("Operation", "BatchWriteItem"),))]
    assert dynamodb.error_metrics("DescribeTable", "t", "ThrottlingException", 400, None) == []  # not data plane
    assert dynamodb.table_name("arn:aws:dynamodb:us-east-1:000000000000:table/events") == "events"


# ---------------------------------------------------------------- CloudWatch's checks


@pytest.fixture
def cloudwatch():
    return CloudWatch(MemoryEngine(), clock=lambda: T0)


def run(api, operation, data):
    writes, job = api.prepare(operation, data, "us-east-1")
    return job()


GMS = {"Namespace": "App", "MetricName": "m", "StartTime": T0 - 600, "EndTime": T0, "Period": 60,
       "Statistics": ["Sum"]}


@pytest.mark.parametrize("change, error, message", [
    ({"Namespace": None}, MissingParameter, "The parameter Namespace is required."),
    ({"Dimensions": [{"Name": "a"}]}, MissingParameter, "The parameter Dimensions.member.1.Value is required."),
    ({"Period": "60"}, SerializationError, None),
    ({"Period": 61}, InvalidParameterValue, "The parameter Period must be a multiple of 60."),
    ({"Statistics": ["Median"]}, InvalidParameterValue,
     "The parameter Statistics.member.1 must be a value in the set [ Minimum, Maximum, Average, SampleCount, Sum ]."),
    ({"ExtendedStatistics": ["p99"]}, InvalidParameterCombination, None),
    ({"Statistics": None}, InvalidParameterCombination, None),
    ({"EndTime": T0 - 600}, InvalidParameterValue, "The parameter StartTime must not equal parameter EndTime."),
    ({"StartTime": T0 - 86400 * 2}, InvalidParameterCombination,
     "You have requested up to 2880 datapoints, which exceeds the limit of 1440. You may reduce the datapoints "
     "requested by increasing Period, or decreasing the time range."),
    ({"MetricName": "x" * 256}, ValidationError, None),
])
def test_get_metric_statistics_refuses_as_cloudwatch_does(cloudwatch, change, error, message):
    data = {**GMS, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(error) as caught:
        run(cloudwatch, "GetMetricStatistics", data)
    if message is not None:
        assert caught.value.message == message


def test_put_metric_data_refuses_bad_data(cloudwatch):
    with pytest.raises(InvalidParameterValue):
        run(cloudwatch, "PutMetricData", {"Namespace": "AWS/DynamoDB", "MetricData": [{"MetricName": "m", "Value": 1}]})
    with pytest.raises(InvalidParameterCombination) as caught:
        run(cloudwatch, "PutMetricData", {"Namespace": "App", "MetricData": [
            {"MetricName": "m", "Value": 1, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}]})
    assert caught.value.message == ("The parameters MetricData.member.1.Value and MetricData.member.1.StatisticValues "
                                    "are mutually exclusive and you have specified both.")
    with pytest.raises(InvalidParameterValue):
        run(cloudwatch, "PutMetricData", {"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": "NaN"}]})
    with pytest.raises(InvalidParameterValue):  # older than two weeks
        run(cloudwatch, "PutMetricData", {"Namespace": "App", "MetricData": [
            {"MetricName": "m", "Value": 1, "Timestamp": T0 - 15 * DAY}]})
    with pytest.raises(ValidationError) as caught:
        run(cloudwatch, "GetMetricData", {"StartTime": T0 - 60, "EndTime": T0, "MetricDataQueries": [
            {"Id": "e1", "Expression": "SUM(METRICS("}]})
    assert "Expression" in caught.value.message


# ---------------------------------------------------------------- throttling, the account, a backfill


def test_a_throttled_request_is_counted_as_throttled_not_as_a_user_error():
    recorder = Recorder(MemoryEngine(), clock=lambda: T0)
    minute = T0 // 60
    recorder.failed("us-east-1", "PutItem", "t1", "ProvisionedThroughputExceededException", 400, minute)
    recorder.failed("us-east-1", "GetItem", "t1", "ThrottlingException", 400, minute)
    recorder.failed("us-east-1", "GetItem", "t1", "ThrottlingException", 400, minute)
    points = drained(recorder)
    assert points[("ThrottledRequests", (("Operation", "PutItem"), ("TableName", "t1")))].sum == 1
    assert points[("ThrottledRequests", (("Operation", "GetItem"), ("TableName", "t1")))].sum == 2
    assert points[("WriteThrottleEvents", (("TableName", "t1"),))].sum == 1
    assert points[("ReadThrottleEvents", (("TableName", "t1"),))].sum == 2
    assert ("UserErrors", ()) not in points and len(points) == 4


def _context(engine, region="us-east-1"):
    from shoal.api import Context
    from shoal.api.catalog import Catalog

    return Context(region, "000000000000", engine, Catalog(engine))


def _table(name, billing=None, gsi_throughput=None):
    request = {"TableName": name, "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}
    if billing is None:
        request["BillingMode"] = "PAY_PER_REQUEST"
    else:
        request["ProvisionedThroughput"] = {"ReadCapacityUnits": billing[0], "WriteCapacityUnits": billing[1]}
    if gsi_throughput is not None:
        request["AttributeDefinitions"].append({"AttributeName": "g", "AttributeType": "S"})
        request["GlobalSecondaryIndexes"] = [{
            "IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
            "ProvisionedThroughput": {"ReadCapacityUnits": gsi_throughput[0], "WriteCapacityUnits": gsi_throughput[1]}}]
    return request


def test_the_account_figures_are_the_describelimits_quotas_and_the_provisioned_share_of_them():
    from shoal.api.tables import create_table

    engine = MemoryEngine()
    create_table(_context(engine), _table("big", (400, 100), gsi_throughput=(800, 50)))
    create_table(_context(engine), _table("small", (20, 30)))
    create_table(_context(engine), _table("ondemand"))
    create_table(_context(engine, "eu-west-1"), _table("elsewhere"))
    with engine.read() as txn:
        found = {(series[0], series[2], series[3]): (unit, value) for series, unit, value in dynamodb.gauges(txn)}
    account = {metric: found[("us-east-1", metric, ())] for region, metric, dims in found
               if region == "us-east-1" and dims == ()}
    assert account == {
        "AccountMaxReads": ("Count", 80000.0), "AccountMaxWrites": ("Count", 80000.0),
        "AccountMaxTableLevelReads": ("Count", 40000.0), "AccountMaxTableLevelWrites": ("Count", 40000.0),
        "AccountProvisionedReadCapacityUtilization": ("Percent", 100 * 1220 / 80000),
        "AccountProvisionedWriteCapacityUtilization": ("Percent", 100 * 180 / 80000),
        "MaxProvisionedTableReadCapacityUtilization": ("Percent", 100 * 800 / 40000),  # the GSI is the largest
        "MaxProvisionedTableWriteCapacityUtilization": ("Percent", 100 * 100 / 40000),
    }
    assert found[("us-east-1", "ProvisionedReadCapacityUnits", (("GlobalSecondaryIndexName", "by_g"),
                                                                ("TableName", "big")))] == ("Count", 800.0)
    assert found[("us-east-1", "ProvisionedWriteCapacityUnits", (("TableName", "small"),))] == ("Count", 30.0)
    assert ("us-east-1", "ProvisionedReadCapacityUnits", (("TableName", "ondemand"),)) not in found
    # a region with on-demand tables only: the maxima, no utilization (DynamoDB sends no zero)
    assert sorted(metric for region, metric, dims in found if region == "eu-west-1" and dims == ()) == [
        "AccountMaxReads", "AccountMaxTableLevelReads", "AccountMaxTableLevelWrites", "AccountMaxWrites"]


def test_a_backfill_step_is_recorded_by_the_metrics_of_its_own_engine_only():
    from shoal.api import indexes

    engine, other = MemoryEngine(), MemoryEngine()
    recorder, stranger = Recorder(engine, clock=lambda: T0), Recorder(other, clock=lambda: T0)
    listening = [dynamodb.IndexProgress(engine, recorder), dynamodb.IndexProgress(other, stranger)]
    try:
        for listener in list(indexes.progress_listeners):
            listener(engine, "us-east-1", "t1", "by_g", 50.0, 12.0)
            listener(engine, "us-east-1", "t1", "by_g", 100.0, 0.0)
    finally:
        for listener in listening:
            listener.close()
    assert not any(isinstance(listener, dynamodb.IndexProgress) and listener in listening
                   for listener in indexes.progress_listeners)
    dims = (("GlobalSecondaryIndexName", "by_g"), ("TableName", "t1"))
    points = drained(recorder)
    progress = points[("OnlineIndexPercentageProgress", dims)]
    assert (progress.count, progress.min, progress.max) == (2, 50.0, 100.0)
    assert points[("OnlineIndexConsumedWriteCapacity", dims)].sum == 12.0
    assert drained(stranger) == {}


def test_prometheus_shows_the_account_figures_and_a_backfills_progress_as_gauges():
    from prometheus_client.parser import text_string_to_metric_families

    from shoal.metrics.prometheus import exposition

    engine = MemoryEngine()
    recorder = Recorder(engine, clock=lambda: T0)
    dims = (("GlobalSecondaryIndexName", "by_g"), ("TableName", "t1"))
    for percent in (40.0, 80.0):
        recorder.value("us-east-1", "OnlineIndexPercentageProgress", dims, "Count", percent)
    recorder.flush()
    with engine.write() as txn:
        writer = Writer(txn)
        stats = Stats()
        stats.add(80000.0)
        writer.add(("us-east-1", "AWS/DynamoDB", "AccountMaxReads", ()), "Count", T0, stats, total=False)
        writer.finish()
    families = {f.name: f for f in text_string_to_metric_families(exposition(engine).decode())}
    progress = families["dynamodb_online_index_percentage_progress"]
    assert progress.type == "gauge" and [(s.labels, s.value) for s in progress.samples] == [
        ({"region": "us-east-1", "global_secondary_index_name": "by_g", "table_name": "t1"}, 80.0)]
    assert families["dynamodb_account_max_reads"].type == "gauge"
    assert families["dynamodb_account_max_reads"].samples[0].value == 80000.0


def test_prometheus_renders_again_only_the_series_whose_stored_value_changed():
    from prometheus_client.parser import text_string_to_metric_families

    from shoal.metrics import prometheus

    engine = MemoryEngine()
    writes = ("us-east-1", "AWS/DynamoDB", "ConsumedWriteCapacityUnits", (("TableName", "t1"),))
    with engine.write() as txn:
        write_points(txn, {(LATENCY, "Milliseconds", T0): Stats.of([1.0, 3.0]),
                           (writes, "Count", T0): Stats.of([2.0])})

    def dynamodb_lines(text: bytes) -> list[str]:
        return [line for line in text.decode().splitlines() if "dynamodb_" in line]

    first = prometheus.exposition(engine)
    kept = dict(prometheus._rendered)
    with engine.write() as txn:
        write_points(txn, {(LATENCY, "Milliseconds", T0 + 60): Stats.of([30.0])})
    second = prometheus.exposition(engine)
    assert prometheus._rendered[writes] is kept[writes]  # unchanged: its lines reused
    assert prometheus._rendered[LATENCY] is not kept[LATENCY]
    families = {f.name: f for f in text_string_to_metric_families(second.decode())}
    latency = families["dynamodb_successful_request_latency_milliseconds"].samples
    assert [(s.labels["le"], s.value) for s in latency if s.labels.get("le") in ("2.5", "+Inf")] == [
        ("2.5", 1.0), ("+Inf", 3.0)]
    assert [s.value for s in latency if s.name.endswith("_sum")] == [34.0]
    assert [s.value for s in families["dynamodb_consumed_write_capacity_units"].samples] == [2.0]
    assert dynamodb_lines(first) != dynamodb_lines(second)
    prometheus._rendered = {}  # what a worker with nothing cached renders
    assert dynamodb_lines(prometheus.exposition(engine)) == dynamodb_lines(second)


def test_a_replica_whose_policy_denies_replication_keeps_its_item_count_and_size_gauges():
    """REPLICATION_NOT_AUTHORIZED tables still hold and serve their items
    (``shoal.replication.authorization``): ItemCount and TableSizeBytes go on;
    a table being created has none yet."""
    from shoal.api.catalog import Catalog, update_description
    from shoal.api.tables import create_table

    engine = MemoryEngine()
    for name in ("denied", "creating"):
        create_table(_context(engine), _table(name))
    with engine.read() as txn:
        catalog = Catalog(engine)
        ids = {name: catalog.get(txn, "us-east-1", name).table_id for name in ("denied", "creating")}
    with engine.write() as txn:
        update_description(txn, "us-east-1", "denied", ids["denied"],
                           lambda desc: desc.update(TableStatus="REPLICATION_NOT_AUTHORIZED"))
        update_description(txn, "us-east-1", "creating", ids["creating"],
                           lambda desc: desc.update(TableStatus="CREATING"))
    with engine.read() as txn:
        found = {(series[2], series[3]) for series, unit, value in dynamodb.gauges(txn)}
    assert ("ItemCount", (("TableName", "denied"),)) in found
    assert ("TableSizeBytes", (("TableName", "denied"),)) in found
    assert ("ItemCount", (("TableName", "creating"),)) not in found
