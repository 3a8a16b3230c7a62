"""Sealed blocks of version 3 (shoal.metrics.blocks): what they may round and how far (latencies to
the microsecond, coarse buckets for five-minute and hourly periods), and blocks of version 2 still read
and moved by the roll-up."""

from __future__ import annotations

import base64
import math
import random

import numpy as np
import pytest

from shoal.metrics import blocks
from shoal.metrics.blocks import Columns
from shoal.metrics.cloudwatch import aggregate, many_period_values, period_values
from shoal.metrics.retention import roll_up_series
from shoal.metrics.stats import COARSE_RELATIVE_ACCURACY, RELATIVE_ACCURACY, CoarseStats, Stats
from shoal.metrics.store import (
    BLOCK_PREFIX,
    LEVELS,
    Writer,
    block_decimals,
    block_key,
    merge_block,
    read_periods,
)
from shoal.storage.memory_engine import MemoryEngine

DAY = 86400
T0 = 1_800_000_000 - 1_800_000_000 % DAY
LATENCY = ("us-east-1", "AWS/DynamoDB", "SuccessfulRequestLatency", (("Operation", "GetItem"), ("TableName", "t1")))
CUSTOM = ("us-east-1", "Viewer", "RenderTime", ())
US = 0.001  # a microsecond, in milliseconds

#: A day block of minutes as version 2 wrote it (``v2_latency_rows`` are its periods): base T0, six minutes.
V2_BLOCK = base64.b64decode(
    "AmtJYYAAAAA8AAAABgAAAC9rSWGAa0lj2AAAAK8otS/9ILE1BQCUCQEAAgABDPwC/gH7AsGk3LtRZhsvLcxO0liJMLGr0JV6S2fBdahZ"
    "r93ULe1lB+uWUTUsNC8xHkACAqPdnb8IbFq7Q6GMCF1jSR3zNqAlaVIy0nqkOyiKpvTNfuAT4OHY4OnrPwKrkM6RdaQK5gt/P4w0i23y"
    "ZM/jkHDaFH3WMdAHqA23fRc5tagWEgsRFBBA/AEAAQoICQgIBAUQADJ4hU2T7MANKLUv/SBg9QEAJAMB8A8CAgMFCgIFEPILBgIHBwET"
    "6R8CAQEOAQIC8AwGBAgOAQj7CgIBAgEUC/wCDxcBAQMANW0ACORBgQI=")


def v2_latency_rows():
    rng = random.Random(5)
    return [(T0 + 60 * i, Stats.of([rng.lognormvariate(0.5, 0.6) for _ in range(rng.randint(3, 12))]))
            for i in range(0, 12, 2)]


def exact_percentile(values, p):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def latency_minutes(rng, minutes, base=T0):
    """[(minute start, the values)]: log-normal latencies in milliseconds with a slow tail."""
    out = []
    for i in range(minutes):
        values = [rng.lognormvariate(math.log(2.0), 0.5) for _ in range(rng.randint(20, 200))]
        values[0] *= 5
        out.append((base + 60 * i, values))
    return out


def test_a_version_2_block_is_read_as_it_was_written():
    decoded = blocks.decode(V2_BLOCK)
    assert V2_BLOCK[0] == 2
    assert decoded.rows() == v2_latency_rows()
    assert (blocks.block_first(V2_BLOCK), blocks.block_last(V2_BLOCK)) == (T0, T0 + 600)
    assert blocks.decode(V2_BLOCK, histograms=False).sum.tolist() == [s.sum for _, s in v2_latency_rows()]


def test_a_store_holding_version_2_blocks_answers_the_same_and_the_roll_up_moves_them_to_version_3():
    engine = MemoryEngine()
    rows = v2_latency_rows()
    with engine.write() as txn:
        series_id = Writer(txn).info(LATENCY, "Milliseconds", 0).series_id
        Writer(txn).finish()
        txn.put("meta", block_key(series_id, 0, T0), V2_BLOCK)
    window = (T0, T0 + DAY, 300)
    with engine.read() as txn:
        got = aggregate(txn, series_id, *window)
        assert period_values(txn, series_id, *window, "p90") == [
            (at, stats.percentile(90)) for at, stats in sorted(got.items())]
    expected = {}
    for at, stats in rows:
        expected.setdefault(at - at % 300, Stats()).merge(stats)
    assert got == expected
    # 16 days on, the daily walk moves the day of minutes to the five-minute level, as version 3
    with engine.write() as txn:
        roll_up_series(txn, series_id, T0 + 16 * DAY + 3600, 1_000_000,
                       decimals=block_decimals(LATENCY, "Milliseconds"))
    with engine.read() as txn:
        stored = [bytes(v) for _, v in txn.scan("meta", BLOCK_PREFIX, BLOCK_PREFIX[:-1] + b"0")]
        moved = aggregate(txn, series_id, *window)
    assert [raw[0] for raw in stored] == [blocks.VERSION] and blocks.VERSION == 3
    assert sorted(moved) == sorted(expected)
    for at, stats in moved.items():
        want = expected[at]
        assert isinstance(stats, CoarseStats)
        assert (stats.count, stats.min, stats.max) == (want.count, round(want.min * 1000) / 1000,
                                                       round(want.max * 1000) / 1000)
        assert stats.sum == pytest.approx(want.sum, abs=US / 2 + 1e-12)


def test_latencies_are_kept_to_the_microsecond_and_other_series_exactly():
    rng = random.Random(3)
    minutes = latency_minutes(rng, 300)
    rows = [(at, Stats.of(values)) for at, values in minutes]
    assert block_decimals(LATENCY, "Milliseconds") == 3
    assert block_decimals(CUSTOM, "Milliseconds") is None
    assert block_decimals(LATENCY[:2] + ("ConsumedReadCapacityUnits", LATENCY[3]), "Count") is None
    exact = blocks.decode(blocks.encode(Columns.from_stats(rows), T0, 60, None))
    assert exact.rows() == rows
    rounded = blocks.decode(blocks.encode(Columns.from_stats(rows), T0, 60, 3))
    for (at, got), (_, want) in zip(rounded.rows(), rows):
        assert got.count == want.count and got.buckets == want.buckets and got.zeros == want.zeros
        for name in ("sum", "min", "max"):
            assert abs(getattr(got, name) - getattr(want, name)) <= US / 2 + 1e-12, (at, name)
            assert getattr(got, name) == round(getattr(want, name) * 1000) / 1000
        assert abs(got.statistic("Average") - want.statistic("Average")) <= US
        for p in (50, 99):  # the minutes' percentiles are today's: 2% buckets, clamped to [min, max]
            assert got.percentile(p) == pytest.approx(want.percentile(p), abs=US)
    # rounding again what was rounded changes nothing
    again = blocks.decode(blocks.encode(rounded, T0, 60, 3))
    assert again.rows() == rounded.rows()


def test_a_percentile_of_a_sealed_five_minute_or_hourly_period_is_within_the_coarse_bound():
    assert RELATIVE_ACCURACY < COARSE_RELATIVE_ACCURACY <= 0.05
    assert COARSE_RELATIVE_ACCURACY == pytest.approx(0.04, abs=1e-4)
    rng = random.Random(11)
    minutes = latency_minutes(rng, 1440)
    engine = MemoryEngine()
    with engine.write() as txn:
        writer = Writer(txn)
        for at, values in minutes:
            writer.add(LATENCY, "Milliseconds", at, Stats.of(values))
        writer.finish()
        series_id = writer.info(LATENCY, "Milliseconds", 0).series_id
    now = T0 + 20 * DAY  # the day is past 15 days: sealed straight into the five-minute level
    with engine.write() as txn:
        roll_up_series(txn, series_id, now, 10_000_000)
    with engine.read() as txn:
        levels = {level for _, level, _ in read_periods(txn, series_id, T0, T0 + DAY)}
        assert levels == {1}
        worst = 0.0
        for period in (300, 3600, DAY):
            for p in (10, 50, 90, 99, 99.9):
                answered = dict(period_values(txn, series_id, T0, T0 + DAY, period, f"p{p}", now))
                grouped: dict = {}
                for at, values in minutes:
                    grouped.setdefault(at - at % period, []).extend(values)
                assert sorted(answered) == sorted(grouped)
                for at, values in grouped.items():
                    exact = exact_percentile(values, p)
                    error = abs(answered[at] - exact) / exact
                    assert error <= COARSE_RELATIVE_ACCURACY + 1e-9, (period, p, at, answered[at], exact)
                    worst = max(worst, error)
    assert worst > RELATIVE_ACCURACY  # the bound is used: these are coarse buckets, not 2% ones


def test_minutes_read_beside_coarse_periods_keep_their_two_percent_buckets():
    rng = random.Random(12)
    fine = Columns.from_stats([(T0 + 60 * i, Stats.of(v)) for i, (_, v) in enumerate(latency_minutes(rng, 60))])
    coarse_rows = [(T0 - 3600 + 300 * i, CoarseStats().merge(Stats.of(v)))
                   for i, (_, v) in enumerate(latency_minutes(rng, 12))]
    coarse = blocks.decode(blocks.encode(Columns.from_stats(coarse_rows), T0 - DAY, 300, 3, 1))
    assert coarse.shift.tolist() == [1] * 12
    both = blocks.concat([coarse, fine])
    hours = blocks.group(both, both.at - both.at % 3600)
    assert hours.shift.tolist() == [1, 0]
    assert hours.stats(1) == blocks.group(fine, fine.at - fine.at % 3600).stats(0)  # 2% buckets, as stored
    # a period holding both is coarse: its minutes' buckets joined in pairs
    days = blocks.group(both, np.zeros(len(both), np.int64))
    merged = CoarseStats()
    for _, stats in coarse.rows() + fine.rows():
        merged.merge(stats)
    got = days.stats(0)
    assert days.shift.tolist() == [1] and isinstance(got, CoarseStats)
    assert (got.count, got.min, got.max, got.zeros, got.buckets) == (
        merged.count, merged.min, merged.max, merged.zeros, merged.buckets)
    assert got.sum == pytest.approx(merged.sum, rel=1e-12)
    for p in (50, 99):
        at, values = blocks.grouped_percentile([coarse, fine], T0 - 3600, 3600, p)
        assert values.tolist() == [hours.stats(0).percentile(p), hours.stats(1).percentile(p)]


def test_coarse_statistics_merge_encode_and_answer_as_coarse_buckets():
    values = [0.5, 1.0, 1.03, 1.07, 2.0, 2.0, 7.5, 0.0]  # 1.03 and 1.07: 2% buckets 1 and 2, coarse bucket 1
    fine = Stats.of(values)
    coarse = CoarseStats().merge(fine)
    assert coarse.count == fine.count and coarse.zeros == fine.zeros
    assert sum(coarse.buckets.values()) == sum(fine.buckets.values())
    assert len(coarse.buckets) < len(fine.buckets)
    assert Stats.decode(coarse.encode()) == coarse and isinstance(Stats.decode(coarse.encode()), CoarseStats)
    assert Stats.decode(fine.encode()) == fine and type(Stats.decode(fine.encode())) is Stats
    added = CoarseStats()
    added.add_values(list(values))
    assert added == coarse
    mixed = Stats.of(values[:4]).merge(CoarseStats().merge(Stats.of(values[4:])))
    assert mixed == coarse
    for p in (10, 50, 70, 90):
        exact = exact_percentile(values, p)
        assert abs(coarse.percentile(p) - exact) <= COARSE_RELATIVE_ACCURACY * exact + 1e-12
    assert coarse.cumulative([1.0, 2.0, 10.0])[-1] == len(values)


@pytest.mark.parametrize("dense_cells", [blocks._DENSE_CELLS, 0])
def test_version_3_blocks_hold_their_periods_in_either_histogram_layout(dense_cells, monkeypatch):
    monkeypatch.setattr(blocks, "_DENSE_CELLS", dense_cells)
    rng = random.Random(4)
    spread = Stats()
    spread.add_set(10, 55.5, 1, 10)
    rows = [(T0 + 60 * i, Stats.of([rng.lognormvariate(0, 1) for _ in range(rng.randint(1, 50))] + [0.0] * (i % 3)))
            for i in range(0, 1440, 7)]
    rows += [(T0 + DAY - 120, spread), (T0 + DAY - 60, Stats.of([1e-15, 1e15]))]
    decoded = blocks.decode(blocks.encode(Columns.from_stats(rows), T0, 60))
    assert decoded.rows() == rows
    empty = blocks.decode(blocks.encode(Columns.from_stats([(T0, spread)]), T0, 60))
    assert empty.rows() == [(T0, spread)]


def test_merging_into_a_level_1_block_makes_it_coarse_and_rounds_latencies_only():
    engine = MemoryEngine()
    rng = random.Random(9)
    rows = [(T0 + 300 * i, Stats.of(v)) for i, (_, v) in enumerate(latency_minutes(rng, 20))]
    with engine.write() as txn:
        merge_block(txn, 1, 1, T0, Columns.from_stats(rows[:10]), 3)
        merge_block(txn, 1, 1, T0, Columns.from_stats(rows[10:]), 3)
        merge_block(txn, 2, 1, T0, Columns.from_stats(rows), None)
        latency = blocks.decode(txn.get("meta", block_key(1, 1, T0)))
        custom = blocks.decode(txn.get("meta", block_key(2, 1, T0)))
    assert latency.shift.tolist() == custom.shift.tolist() == [1] * 20
    assert custom.sum.tolist() == [s.sum for _, s in rows]  # exact doubles
    assert np.abs(latency.sum - custom.sum).max() <= US / 2 + 1e-12
    assert [s.buckets for _, s in latency.rows()] == [CoarseStats().merge(s).buckets for _, s in rows]
    assert LEVELS[1][0] == 300


def test_many_reads_at_once_answer_what_each_read_alone_answers():
    rng = random.Random(21)
    engine = MemoryEngine()
    names = [("us-east-1", "AWS/DynamoDB", "ConsumedWriteCapacityUnits", (("TableName", f"t{i}"),)) for i in range(4)]
    names.append(LATENCY)
    now = T0 + 3 * DAY + 1800
    with engine.write() as txn:
        writer = Writer(txn)
        for series in names:
            unit = "Milliseconds" if series == LATENCY else "Count"
            for minute in range(0, 3 * 24 * 60 + 30, 1 + rng.randint(0, 3)):
                values = [rng.lognormvariate(0, 1) if series == LATENCY else float(rng.randint(1, 5))
                          for _ in range(rng.randint(1, 9))]
                writer.add(series, unit, T0 + 60 * minute, Stats.of(values))
        writer.finish()
        ids = [writer.info(series, "", 0).series_id for series in names]
    with engine.write() as txn:  # the days before are sealed, the current hour is not
        for series, series_id in zip(names, ids):
            roll_up_series(txn, series_id, now, 10_000_000, decimals=block_decimals(series, "Count"))
    reads = [(series_id, period, name) for series_id in ids for period, name in
             ((60, "Sum"), (300, "Average"), (3600, "SampleCount"), (60, "Maximum"), (900, "Minimum"), (300, "p90"))]
    reads.append((999, 60, "Sum"))  # no such series: nothing
    with engine.read() as txn:
        for start, end in ((now - 3 * 3600, now), (T0, now), (now - 600, now + 60), (now + 60, now + 120)):
            got = many_period_values(txn, reads, start, end, now)
            assert got == [period_values(txn, *read[:1], start, end, *read[1:], now) for read in reads]
            assert any(got) or start > now
        assert many_period_values(txn, [], T0, now, now) == []


def test_sealing_an_hour_after_a_blocks_last_grows_its_table_as_a_full_merge_would():
    rng = random.Random(31)
    rows = [(at, Stats.of(values)) for at, values in latency_minutes(rng, 180)]
    rows[100] = (rows[100][0], Stats.of([1e-9, 1e9]))  # far buckets widen the table
    whole = Columns.from_stats(rows)
    head = blocks.decode(blocks.encode(whole.window(T0, T0 + 3600), T0, 60, 3), dense=True)
    tail = whole.window(T0 + 3600, T0 + 3 * 3600)
    grown = blocks.appended(head, tail)
    assert grown is not None and grown.dense is not None
    merged = blocks.group(blocks.concat([head, tail]), None)
    stored = blocks.decode(blocks.encode(grown, T0, 60, 3)).rows()
    assert stored == blocks.decode(blocks.encode(merged, T0, 60, 3)).rows()
    assert grown.sparse().rows() == merged.rows()
    # a late write to a period the block holds is added up by grouping instead
    assert blocks.appended(head, whole.window(T0 + 1800, T0 + 7200)) is None
    engine = MemoryEngine()
    with engine.write() as txn:
        merge_block(txn, 1, 0, T0, whole.window(T0, T0 + 3600), 3)
        merge_block(txn, 1, 0, T0, tail, 3)
        merge_block(txn, 1, 0, T0, Columns.from_stats([(T0 + 60, Stats.of([5.0]))]), 3)
        stored = blocks.decode(txn.get("meta", block_key(1, 0, T0)))
    expected = dict(blocks.decode(blocks.encode(whole, T0, 60, 3)).rows())
    expected[T0 + 60] = expected[T0 + 60].merge(Stats.of([5.0]))
    got = dict(stored.rows())
    assert sorted(got) == sorted(expected)
    for at, stats in got.items():
        want = expected[at]
        assert (stats.count, stats.min, stats.max, stats.buckets) == (want.count, want.min, want.max, want.buckets)
        assert stats.sum == pytest.approx(want.sum, abs=US)


def test_a_period_of_a_blocks_table_is_the_period_it_holds():
    rng = random.Random(41)
    rows = [(at, Stats.of(values)) for at, values in latency_minutes(rng, 30)]
    spread = Stats()
    spread.add_set(4, 10.0, 1.0, 4.0)
    rows.append((T0 + 1800, spread))
    raw = blocks.encode(Columns.from_stats(rows), T0, 60)
    table = blocks.decode(raw, dense=True)
    assert table.dense is not None and table.hoff is None
    assert [table.stats(i) for i in range(len(rows))] == [stats for _, stats in rows]
    assert [table.window(T0 + 600, T0 + 1200).stats(i) for i in range(10)] == [s for _, s in rows[10:20]]
