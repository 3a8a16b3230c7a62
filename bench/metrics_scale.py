"""Metrics at scale (issue 17, point 6): disk, memory and read times of 100 tables' metrics.

    python bench/metrics_scale.py [--tables 100] [--minute-days 15] [--five-minute-days 48] [--hour-days 392]
    python bench/metrics_scale.py --floors     # seconds: what coarser histograms, or none, would take

The bounds measured: ``GET /metrics`` and GetMetricData answer in under 50 ms
for 100 tables; the metrics of 100 tables kept for CloudWatch's full
retention (``shoal.metrics.store.LEVELS``: 1-minute periods for 15 days,
5-minute for the 48 days after, hourly for the 392 after that) take under
200 MB of disk and under 30 MB of the server's memory.

1. A data directory with ``--tables`` real tables (CreateTable through a
   ``shoal serve``), then, in-process, the metrics DynamoDB would publish for
   them under steady traffic, stored as the server keeps them in a steady
   state: per table ConsumedReadCapacityUnits, ConsumedWriteCapacityUnits,
   SuccessfulRequestLatency for GetItem, PutItem, Query and BatchWriteItem,
   ReturnedItemCount for Query, ItemCount and TableSizeBytes every period,
   ConditionalCheckFailedRequests in 5% of minutes; and the account's
   UserErrors in 10% of minutes.  A table serves 100 to 600 requests a minute
   (log-uniform), half GetItem, a quarter PutItem, 15% Query, 10%
   BatchWriteItem, with log-normal latencies (medians 1.2, 2.8, 2.2 and
   7 ms).  A minute's statistics are drawn from a pool of 256 per metric
   built from such samples (``shoal.metrics.stats.Stats``); a five-minute
   period merges five minutes of the pool and an hour twelve five-minute
   periods, as the roll-up merges them.  Periods are written at the ages
   they have in a steady state (the newest ``--minute-days`` of minutes,
   5-minute periods from 15 days ago backwards, hours from 63 days ago
   backwards): those the roll-up (``shoal.metrics.retention``) would have
   sealed as blocks (``shoal.metrics.blocks``, one per series, level and
   span, oldest first), the current hour's minutes as period keys through
   ``shoal.metrics.store.Writer``; lifetime totals (``metrics/t/``) are the
   merge of everything written; the roll-up's state is that of a server
   whose walk of the day (the one that moves blocks) ran this morning.  The
   growth of the directory (``du``) and of
   LMDB's used pages is measured after each level, and extrapolated
   linearly to the full retention when fewer days are written (bytes per
   point times the full number of points of the level); the blocks' bytes
   per period are then read back by metric (``kind_sizes``).  With
   ``--fresh-json``, blocks of the busiest series drawn anew, every period
   its own requests, are encoded beside blocks drawn from the pool, to see
   whether the pool's repeats flatter the sizes, with the order-0 entropy of
   the buckets' counts (``fresh_sizes``, ``bucket_entropy``: a floor for any
   exact encoding of the histograms).
2. A copy of the directory taken before the metrics were written is the
   control: the same tables and no metrics history.  On each directory a
   ``shoal serve --workers 1`` is started and measured: RSS (VmRSS, VmHWM,
   RssAnon, RssFile from ``/proc/<pid>/status``, summed over the process
   tree) after start, after the scrapes and after the queries; ``GET
   /metrics`` 50 times; GetMetricData (JSON protocol, a raw HTTP request on
   a kept-alive connection, auth off on loopback) for one table's dashboard
   (6 queries) over 3 hours at 1 minute and over 7 days at 1 hour, and every
   table's ConsumedWriteCapacityUnits over 3 hours at 1 minute (one query a
   table), 50 calls each, the dashboard's table changing from call to call,
   every window ending a minute after the newest minute written; and the
   7-day dashboard again ending at the hour before (CloudWatch advises
   aligned windows; Shoal's reads no longer depend on it).  The first
   call of each kind is timed apart (cold) and not in the median or p99
   (with 50 calls, p99 is the slowest but one); the server's CPU time per
   call (from ``/proc``) is given too, as other work on a shared machine
   inflates the elapsed times but not it.  ``--reuse`` measures the
   directories of an earlier run again.
3. Prints a markdown table and, unless ``--no-docs``, writes the section
   "Metrics at scale (issue 17)" at the end of docs/benchmarks.md (between
   ``<!-- kept section: metrics-scale -->`` and ``<!-- end of kept section
   -->``, replaced in place when there is one already), with the figures of
   the run before blocks (``BEFORE``) beside this one's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

from systems import disk_bytes, free_port, process_tree, shoal_command

import numpy as np

from shoal.metrics import blocks
from shoal.metrics.blocks import Columns
from shoal.metrics.retention import _STARTED, ROLLUP_KEY, RollUp, seal_before
from shoal.metrics.stats import Stats
from shoal.metrics.store import (
    BLOCK_SHIFTS,
    BLOCK_SPANS,
    LEVELS,
    TOTAL_PREFIX,
    Writer,
    block_decimals,
    block_key,
    data_key,
)
from shoal.storage.datadir import open_data_dir

REGION = "us-east-1"
NAMESPACE = "AWS/DynamoDB"
DAY = 86400
POOL = 256
CHUNK = 100_000  # points per write transaction
#: operation -> (share of a table's requests, median latency in ms, sigma of its logarithm)
OPERATIONS = {"GetItem": (0.50, 1.2, 0.45), "PutItem": (0.25, 2.8, 0.5),
              "Query": (0.15, 2.2, 0.6), "BatchWriteItem": (0.10, 7.0, 0.5)}
RATE = (100, 600)  # a table's requests per minute, log-uniform
#: full retention per level, in days (the time each level holds data: 15, 63 - 15, 455 - 63)
FULL_DAYS = tuple((keep - (LEVELS[i - 1][1] if i else 0)) / DAY for i, (_, keep) in enumerate(LEVELS))
BOUND_MS, BOUND_DISK_MB, BOUND_MEMORY_MB = 50.0, 200.0, 30.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
KEPT_BEGIN = "<!-- kept section: metrics-scale -->"
KEPT_END = "<!-- end of kept section -->"
MB = 1e6
MIB = 1 << 20


# ---------------------------------------------------------------- the metrics of a table under steady traffic


class Workload:
    """Pools of statistics per metric and level, drawn from sampled requests."""

    def __init__(self, seed: int = 17) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        minutes: dict[str, list] = {}
        for op, (share, median, sigma) in OPERATIONS.items():
            minutes["latency:" + op] = [self._latency(share, median, sigma) for _ in range(POOL)]
        minutes["read"] = [self._minute(self._reads) for _ in range(POOL)]
        minutes["write"] = [self._minute(self._writes) for _ in range(POOL)]
        minutes["returned"] = [self._minute(self._returned) for _ in range(POOL)]
        minutes["conditional"] = [self._counts(1, 3) for _ in range(POOL)]
        minutes["user_errors"] = [self._counts(1, 4) for _ in range(POOL)]
        self.presence = {"conditional": 0.05, "user_errors": 0.10}  # of a minute
        self.pools = [minutes]
        for merged in (5, 12):  # five minutes, then an hour of five-minute periods
            finer = self.pools[-1]
            self.pools.append({kind: [self._merge(rng.sample(pool, merged)) for _ in range(POOL)]
                               for kind, pool in finer.items()})
        self.sizes = [{kind: [len(s.encode()) for s in pool] for kind, pool in level.items()}
                      for level in self.pools]

    def _rate(self) -> float:
        low, high = RATE
        return math.exp(self.rng.uniform(math.log(low), math.log(high)))

    def _latency(self, share: float, median: float, sigma: float) -> Stats:
        rng = self.rng
        n = max(1, round(self._rate() * share))
        values = [rng.lognormvariate(math.log(median), sigma) for _ in range(n)]
        for i in range(max(1, n // 100)):  # a slow tail: one request in a hundred five times slower
            values[i] *= 5
        return Stats.of(values)

    def _minute(self, per_request) -> Stats:
        n = round(self._rate())
        return Stats.of([v for v in (per_request() for _ in range(n)) if v is not None])

    def _reads(self):
        """RCUs of a request: GetItem 0.5 (1 strongly consistent), Query 0.5 per 4 KB read."""
        rng = self.rng
        x = rng.random()
        if x < 0.5:
            return 1.0 if rng.random() < 0.2 else 0.5
        if x < 0.65:
            return 0.5 * rng.randint(1, 8)
        return None

    def _writes(self):
        """WCUs of a request: PutItem 1 (2 for items over 1 KB), BatchWriteItem 1 per item."""
        rng = self.rng
        x = rng.random()
        if 0.5 <= x < 0.75:
            return 2.0 if rng.random() < 0.1 else 1.0
        if 0.75 <= x < 0.85:
            return float(rng.randint(5, 25))
        return None

    def _returned(self):
        rng = self.rng
        return float(min(100, int(rng.expovariate(1 / 12)))) if rng.random() < 0.15 else None

    def _counts(self, low: int, high: int) -> Stats:
        stats = Stats()
        stats.add(1.0, self.rng.randint(low, high))
        return stats

    @staticmethod
    def _merge(parts) -> Stats:
        out = Stats()
        for part in parts:
            out.merge(part)
        return out

    def pick(self, level: int, kind: str) -> tuple[Stats, int] | None:
        """A period's statistics of ``kind`` at ``level`` and their encoded size, or None (no data)."""
        rng = self.rng
        chance = self.presence.get(kind)
        if chance is not None:
            minutes = (1, 5, 60)[level]
            if rng.random() >= 1 - (1 - chance) ** minutes:
                return None
        i = rng.randrange(POOL)
        return self.pools[level][kind][i], self.sizes[level][kind][i]


def table_name(i: int) -> str:
    return f"viewer-events-{i:03d}"


def table_series(name: str) -> list[tuple[tuple, str, str]]:
    """(series, unit, kind) of one table's metrics; kind ``gauge:...`` are per-period values."""
    dims = (("TableName", name),)
    out = [((REGION, NAMESPACE, "ConsumedReadCapacityUnits", dims), "Count", "read"),
           ((REGION, NAMESPACE, "ConsumedWriteCapacityUnits", dims), "Count", "write")]
    for op in OPERATIONS:
        out.append(((REGION, NAMESPACE, "SuccessfulRequestLatency", (("Operation", op), ("TableName", name))),
                    "Milliseconds", "latency:" + op))
    out.append(((REGION, NAMESPACE, "ReturnedItemCount", (("Operation", "Query"), ("TableName", name))),
                "Count", "returned"))
    out.append(((REGION, NAMESPACE, "ConditionalCheckFailedRequests", dims), "Count", "conditional"))
    out.append(((REGION, NAMESPACE, "ItemCount", dims), "Count", "gauge:items"))
    out.append(((REGION, NAMESPACE, "TableSizeBytes", dims), "Bytes", "gauge:bytes"))
    return out


def all_series(tables: int) -> list[tuple[tuple, str, str]]:
    out = [((REGION, NAMESPACE, "UserErrors", ()), "Count", "user_errors")]
    for i in range(tables):
        out.extend(table_series(table_name(i)))
    return out


def _gauge(kind: str, table: int, at: int, level: int) -> Stats:
    """ItemCount / TableSizeBytes of a table growing by a few items a minute, sampled each minute."""
    minutes = (1, 5, 60)[level]
    base = 50_000 * (1 + table % 7) + (at // 60) % 10_000_000 // 3
    values = [float(base + m // 3) for m in range(minutes)]
    if kind == "gauge:bytes":
        values = [v * 420 for v in values]
    return Stats.of(values)


# ---------------------------------------------------------------- building the data directory


CHECKPOINT_DAYS = (1, 2, 7, 15, 30, 48, 100, 200, 392)


def pool_columns(workload: Workload) -> list[dict]:
    """The pools as columns (row i: the pool's i-th Stats), to build blocks by indexing."""
    return [{kind: Columns.from_stats(list(enumerate(pool))) for kind, pool in level.items()}
            for level in workload.pools]


def _rows_of(pool: Columns, idx, at) -> Columns:
    """Rows ``idx`` of a pool's columns, as periods starting at ``at``."""
    lengths = np.diff(pool.hoff)[idx]
    hoff = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    entries = np.repeat(pool.hoff[idx] - hoff[:-1], lengths) + np.arange(hoff[-1])
    return Columns(np.asarray(at, np.int64), pool.count[idx], pool.sum[idx], pool.min[idx], pool.max[idx],
                   pool.pct[idx], pool.zeros[idx], hoff, pool.hidx[entries], pool.hcnt[entries])


def block_columns(workload: Workload, pools: list, rng, kind: str, table: int, level: int, at) -> Columns:
    """A series' periods starting at ``at`` (an array) at ``level``, as the steady state would store them."""
    if kind.startswith("gauge:"):
        return Columns.from_stats([(int(t), _gauge(kind, table, int(t), level)) for t in at])
    chance = workload.presence.get(kind)
    if chance is not None:
        at = at[rng.random(len(at)) < 1 - (1 - chance) ** (1, 5, 60)[level]]
    return _rows_of(pools[level][kind], rng.integers(POOL, size=len(at)), at)


def write_level(engine, workload: Workload, pools: list, series: list, level: int, first: int, stop: int,
                totals: dict, raw_from: int) -> dict:
    """Write every series' periods of ``level`` starting in [first, stop): those before ``raw_from`` as
    the roll-up seals them (one block per series and ``BLOCK_SPANS[level]``, oldest first), the rest as
    period keys through ``Writer`` (the current hour, which the recorder is still writing).  Returns
    counts, with the engine's used bytes after 1, 2, 7... days written (``checkpoints``: is growth
    linear?)."""
    period, span = LEVELS[level][0], BLOCK_SPANS[level]
    rng = np.random.default_rng(level + 1)
    starts = np.arange(first, stop, period, dtype=np.int64)
    sealed = starts[starts < raw_from]
    points = key_bytes = value_bytes = blocks_written = 0
    base_bytes = engine.stats()["data_bytes"]
    checkpoints = []
    marks = [d for d in CHECKPOINT_DAYS if d * DAY < stop - first]
    bases = sealed - sealed % span
    for base in np.unique(bases).tolist():
        if marks and base - first >= marks[0] * DAY:
            checkpoints.append({"days": (base - first) / DAY, "points": points,
                                "data_bytes": engine.stats()["data_bytes"] - base_bytes})
            marks.pop(0)
        at = sealed[bases == base]
        for chunk in range(0, len(series), 250):  # a transaction of at most 250 series' blocks
            with engine.write() as txn:
                writer = Writer(txn)
                for index in range(chunk, min(len(series), chunk + 250)):
                    name, unit, kind = series[index]
                    cols = block_columns(workload, pools, rng, kind, (index - 1) // 10, level, at)
                    if not len(cols):
                        continue
                    info = writer.info(name, unit, int(cols.at[-1]) // 60)
                    key = block_key(info.series_id, level, base)
                    value = blocks.encode(cols, base, period, block_decimals(name, unit), BLOCK_SHIFTS[level],
                                          predict=level > 0)
                    txn.put("meta", key, value)
                    if not kind.startswith("gauge:"):
                        whole = blocks.group(cols, np.zeros(len(cols), np.int64)).stats(0)
                        have = totals.get(name)
                        totals[name] = whole if have is None else have.merge(whole)
                    points += len(cols)
                    key_bytes += len(key)
                    value_bytes += len(value)
                    blocks_written += 1
                writer.finish()
    unsealed = starts[starts >= raw_from]
    if len(unsealed):
        with engine.write() as txn:
            writer = Writer(txn)
            for index, (name, unit, kind) in enumerate(series):
                cols = block_columns(workload, pools, rng, kind, (index - 1) // 10, level, unsealed)
                for at, stats in cols.rows():
                    writer.add(name, unit, at, stats, level=level, total=False)
                    key_bytes += len(data_key(1, level, at))
                    value_bytes += len(stats.encode())
                    points += 1
                    if not kind.startswith("gauge:"):
                        have = totals.get(name)
                        totals[name] = stats.copy() if have is None else have.merge(stats)
            writer.finish()
    return {"points": points, "key_bytes": key_bytes, "value_bytes": value_bytes, "periods": len(starts),
            "blocks": blocks_written, "checkpoints": checkpoints}


def write_totals(engine, totals: dict) -> int:
    """The lifetime statistics the store keeps per series for Prometheus (``metrics/t/<id>``)."""
    from shoal.metrics.store import lookup

    written = 0
    with engine.write() as txn:
        for series, stats in totals.items():
            info = lookup(txn, series)
            txn.put("meta", TOTAL_PREFIX + struct.pack(">I", info.series_id), stats.encode())
            written += 1
    return written


def lmdb_pages(data_dir: str) -> dict:
    """Pages of the ``meta`` space (where metrics live) and of the whole file, read with the engine closed."""
    import lmdb

    env = lmdb.open(os.path.join(data_dir, "lmdb"), readonly=True, lock=False, max_dbs=32, subdir=True)
    try:
        db = env.open_db(b"meta", create=False)
        with env.begin() as txn:
            stat = txn.stat(db)
        info = env.info()
        return {"page_size": stat["psize"], "leaf_pages": stat["leaf_pages"],
                "branch_pages": stat["branch_pages"], "overflow_pages": stat["overflow_pages"],
                "entries": stat["entries"], "depth": stat["depth"],
                "data_bytes": (info["last_pgno"] + 1) * stat["psize"]}
    finally:
        env.close()


def snapshot_sizes(data_dir: str) -> dict:
    out = lmdb_pages(data_dir)
    out["du_bytes"] = disk_bytes(data_dir)
    return out


def build(data_dir: str, control_dir: str, tables: int, days: tuple, now: float, log) -> dict:
    """Tables through a server, the control copy, then the metrics in-process, level by level."""
    with Server(data_dir) as server:
        for i in range(tables):
            server.call("DynamoDB_20120810.CreateTable", {
                "TableName": table_name(i), "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                         {"AttributeName": "ts", "AttributeType": "N"}],
                "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                              {"AttributeName": "ts", "KeyType": "RANGE"}]})
    shutil.copytree(data_dir, control_dir)
    workload = Workload()
    pools = pool_columns(workload)
    series = all_series(tables)
    sizes = [snapshot_sizes(data_dir)]
    levels = []
    totals: dict = {}
    minute_now = int(now // 60 * 60)
    # oldest level first: each period written at the age it has in a steady state
    for level in (2, 1, 0):
        period, keep = LEVELS[level]
        newest = minute_now + 60 if level == 0 else int((now - LEVELS[level - 1][1]) // period * period)
        first = newest - int(days[level] * DAY)
        if first >= newest:
            continue
        began = time.perf_counter()
        engine = open_data_dir(data_dir, sync=False)
        try:
            counts = write_level(engine, workload, pools, series, level, first, newest, totals, seal_before(now))
            if level == min(i for i in range(len(days)) if days[i] > 0):
                write_totals(engine, totals)  # with the last level written
        finally:
            engine.close()
        counts["seconds"] = time.perf_counter() - began
        counts["level"] = level
        counts["days"] = days[level]
        sizes.append(snapshot_sizes(data_dir))
        counts["du_bytes"] = sizes[-1]["du_bytes"] - sizes[-2]["du_bytes"]
        counts["data_bytes"] = sizes[-1]["data_bytes"] - sizes[-2]["data_bytes"]
        counts["leaf_bytes"] = (sizes[-1]["leaf_pages"] + sizes[-1]["overflow_pages"] - sizes[-2]["leaf_pages"]
                                - sizes[-2]["overflow_pages"]) * sizes[-1]["page_size"]
        counts["branch_bytes"] = (sizes[-1]["branch_pages"] - sizes[-2]["branch_pages"]) * sizes[-1]["page_size"]
        levels.append(counts)
        log(f"level {level}: {counts['points']:,} points in {counts['seconds']:.0f} s, "
            f"du +{counts['du_bytes'] / MIB:.1f} MiB, LMDB +{counts['data_bytes'] / MIB:.1f} MiB")
    engine = open_data_dir(data_dir, sync=False)
    try:  # the roll-up's state as a server running for days has it: its daily walk done this morning
        with engine.write() as txn:
            midnight = now - now % DAY
            txn.put("meta", ROLLUP_KEY, _STARTED.pack(now - 60, midnight + 60, midnight + 60 - DAY, 0))
    finally:
        engine.close()
    return {"series": len(series), "levels": sorted(levels, key=lambda c: c["level"]),
            "before": sizes[0], "after": sizes[-1]}


# ---------------------------------------------------------------- what the blocks hold, by metric


def kind_sizes(data_dir: str) -> dict:
    """Bytes of the stored blocks and their periods, per level and metric (the latency series together),
    read back from the data directory: {level: {metric: [blocks, periods, bytes]}}."""
    from shoal.metrics.blocks import decode
    from shoal.metrics.store import BLOCK_PREFIX, decode_data_key, iter_series

    engine = open_data_dir(data_dir, create=False)
    out: dict = {}
    try:
        with engine.read() as txn:
            names = {info.series_id: info.series[2] for info in iter_series(txn)}
            for key, raw in txn.scan("meta", BLOCK_PREFIX, BLOCK_PREFIX[:-1] + b"0"):
                series_id, level, _base = decode_data_key(key)
                entry = out.setdefault(str(level), {}).setdefault(names.get(series_id, "?"), [0, 0, 0])
                entry[0] += 1
                entry[1] += len(decode(raw, histograms=False))
                entry[2] += len(key) + len(raw)
    finally:
        engine.close()
    return out


# ---------------------------------------------------------------- the pool against data drawn anew


#: Periods per block in ``fresh_sizes`` (fewer hours: each is 60 minutes of requests drawn one by one).
FRESH_PERIODS = (1440, 1440, 240)


def _drawn(workload: "Workload", level: int, n: int, kinds=None):
    """``(kind, metric, unit, columns)`` of one block per busy metric at ``level``: ``n`` periods, every
    one drawn anew (its own requests, as real traffic gives), not from the pool."""
    from shoal.metrics.stats import Stats as _Stats

    kinds = kinds or FRESH_KINDS

    def minute(kind):
        if kind.startswith("latency:"):
            return workload._latency(*OPERATIONS[kind.split(":")[1]])
        return workload._minute({"read": workload._reads, "write": workload._writes,
                                 "returned": workload._returned}[kind])

    period = LEVELS[level][0]
    at = np.arange(n, dtype=np.int64) * period
    for kind, (metric, unit) in kinds.items():
        drawn = []
        for t in at.tolist():
            stats = _Stats()
            for _ in range(period // 60):
                stats.merge(minute(kind))
            drawn.append((t, stats))
        yield kind, metric, unit, Columns.from_stats(drawn)


FRESH_KINDS = {"latency:" + op: ("SuccessfulRequestLatency", "Milliseconds") for op in OPERATIONS}
FRESH_KINDS.update({"read": ("ConsumedReadCapacityUnits", "Count"), "write": ("ConsumedWriteCapacityUnits", "Count"),
                    "returned": ("ReturnedItemCount", "Count")})


def fresh_sizes(periods=FRESH_PERIODS) -> dict:
    """Bytes per period of one block per metric and level, its periods drawn from the pool (as the
    build does) and drawn anew, every period its own requests (as real traffic gives): the pool
    repeats 256 statistic sets a metric, which a compressor could find again, real traffic does not.
    {level: {kind: [pool bytes per period, fresh bytes per period]}}."""
    workload = Workload(seed=29)
    pools = pool_columns(workload)
    rng = np.random.default_rng(29)
    out: dict = {}
    for level, n in enumerate(periods):
        period = LEVELS[level][0]
        at = np.arange(n, dtype=np.int64) * period
        for kind, metric, unit, drawn in _drawn(workload, level, n):
            decimals = block_decimals((REGION, NAMESPACE, metric, ()), unit)
            pooled = block_columns(workload, pools, rng, kind, 0, level, at)
            sizes = [len(blocks.encode(cols, 0, period, decimals, BLOCK_SHIFTS[level], predict=level > 0)) / n
                     for cols in (pooled, drawn)]
            out.setdefault(str(level), {})[kind] = sizes + [bucket_entropy(blocks.to_shift(drawn, BLOCK_SHIFTS[level]))]
    return out


#: what the floors compare: name -> (the buckets' coarseness at each level or None: no histograms,
#: decimals kept of latencies' Sum, Minimum and Maximum: None as stored, else that many)
FLOOR_VARIANTS = {
    "as stored (2% / 4% / 4%)": ((0, 1, 1), None),
    "buckets 4% at every level": ((1, 1, 1), None),
    "buckets 8%": ((2, 2, 2), None),
    "buckets 16%": ((3, 3, 3), None),
    "no percentiles": ((None, None, None), None),
    "no percentiles, latencies to 0.1 ms": ((None, None, None), 1),
}


def floors(periods=(1440, 288, 48), tables: int = 100) -> dict:
    """What the blocks of ``tables`` tables would take at the full retention if the histograms were
    coarser, or not kept at all: bytes a period of each busy metric's block (drawn anew, as
    ``fresh_sizes``) under each of ``FLOOR_VARIANTS``, and the megabytes at full retention per level
    (blocks' bytes only: LMDB's pages add about 12%, the gauges and the sparse series 3-4 bytes a
    table and minute more, so these are floors)."""
    workload = Workload(seed=31)
    empty = np.zeros(0, np.int64)
    out: dict = {"per_period": {}, "mb": {}}
    for level, n in enumerate(periods):
        period = LEVELS[level][0]
        for kind, metric, unit, cols in _drawn(workload, level, n):
            decimals = block_decimals((REGION, NAMESPACE, metric, ()), unit)
            bare = Columns(cols.at, cols.count, cols.sum, cols.min, cols.max, np.zeros(n, bool),
                           np.zeros(n, np.int64), np.zeros(n + 1, np.int64), empty, empty)
            for name, (shifts, rounded) in FLOOR_VARIANTS.items():
                kept = decimals if rounded is None or decimals is None else rounded
                shift = shifts[level]
                raw = blocks.encode(bare if shift is None else cols, 0, period, kept, shift or 0,
                                    predict=shift is not None and level > 0)
                out["per_period"].setdefault(name, {}).setdefault(str(level), {})[kind] = len(raw) / n
    for name, levels in out["per_period"].items():
        out["mb"][name] = [sum(levels[str(level)].values()) * FULL_DAYS[level] * DAY / LEVELS[level][0] * tables / MB
                           for level in range(len(LEVELS))]
    return out


def render_floors(result: dict) -> str:
    lines = ["| histograms kept | bytes a table and minute (level 0) | 1 min, 15 d (MB) | 5 min, 48 d (MB) "
             "| 1 h, 392 d (MB) | all (MB) | without the hourly level (MB) |", "|---|---|---|---|---|---|---|"]
    for name, mb in result["mb"].items():
        minute = sum(result["per_period"][name]["0"].values())
        lines.append(f"| {name} | {minute:.1f} | {mb[0]:.1f} | {mb[1]:.1f} | {mb[2]:.1f} | **{sum(mb):.1f}** "
                     f"| {mb[0] + mb[1]:.1f} |")
    return "\n".join(lines)


def bucket_entropy(cols: Columns) -> float:
    """Bytes a period that the histograms' counts carry, as far as a coder that knows each bucket's
    distribution of counts over the block (order-0 entropy bucket by bucket) could tell: a floor for
    any encoding of them that keeps them exact."""
    n = len(cols)
    if not len(cols.hidx):
        return 0.0
    low = int(cols.hidx.min())
    width = int(cols.hidx.max()) - low + 1
    table = np.zeros((width, n), np.int64)
    table[cols.hidx - low, np.repeat(np.arange(n), np.diff(cols.hoff))] = cols.hcnt
    bits = 0.0
    for row in table:
        _, counts = np.unique(row, return_counts=True)
        bits -= float((counts * np.log2(counts / n)).sum())
    return bits / 8 / n


# ---------------------------------------------------------------- the server


class Server:
    """A ``shoal serve --workers 1`` on a free port, with a kept-alive connection."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc = None
        self.conn = None

    def __enter__(self) -> "Server":
        self.log = open(os.path.join(os.path.dirname(self.data_dir), os.path.basename(self.data_dir) + ".log"), "w")
        self.proc = subprocess.Popen([*shoal_command(), "serve", "--workers", "1", "--port", str(self.port),
                                      "--data-dir", self.data_dir], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shoal exited during start-up; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("shoal did not answer in time")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> bytes:
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return payload

    def call(self, target: str, data: dict) -> dict:
        """A JSON-protocol request (auth is off on loopback: unsigned, so in the default region)."""
        raw = self.request("POST", "/", json.dumps(data).encode(),
                           {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
        return json.loads(raw)

    def cpu_seconds(self) -> float:
        """utime + stime of the server's process tree."""
        ticks = 0
        for pid in process_tree(self.proc.pid):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def memory(self) -> dict:
        """VmRSS, VmHWM, RssAnon and RssFile in bytes, summed over the server's process tree."""
        out = {"VmRSS": 0, "VmHWM": 0, "RssAnon": 0, "RssFile": 0, "processes": 0}
        for pid in process_tree(self.proc.pid):
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        name, _, value = line.partition(":")
                        if name in out:
                            out[name] += int(value.split()[0]) * 1024
            except OSError:
                continue
            out["processes"] += 1
        return out


def _timed(server: "Server", calls: int, run) -> dict:
    """The first call apart (cold), then median and p99 (nearest rank) of ``calls`` more, in ms, and
    the server's CPU time per call over those (what the machine's other load does not inflate)."""
    began = time.perf_counter()
    first_result = run(0)
    first = (time.perf_counter() - began) * 1000
    times = []
    cpu = server.cpu_seconds()
    for i in range(1, calls + 1):
        began = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - began) * 1000)
    cpu = server.cpu_seconds() - cpu
    times.sort()
    return {"first_ms": first, "median_ms": statistics.median(times),
            "p99_ms": times[max(1, math.ceil(0.99 * len(times))) - 1], "max_ms": times[-1],
            "cpu_ms": cpu * 1000 / calls, "calls": calls, "sample": first_result}


def _query(i: int, table: str, metric: str, stat: str, period: int, operation: str | None = None) -> dict:
    dims = [{"Name": "TableName", "Value": table}]
    if operation:
        dims.insert(0, {"Name": "Operation", "Value": operation})
    return {"Id": f"q{i}", "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": metric,
                                                       "Dimensions": dims}, "Period": period, "Stat": stat}}


def dashboard(table: str, period: int) -> list[dict]:
    """One table's dashboard: consumed capacity, latency of reads and writes, items a Query returns."""
    return [_query(0, table, "ConsumedReadCapacityUnits", "Sum", period),
            _query(1, table, "ConsumedWriteCapacityUnits", "Sum", period),
            _query(2, table, "SuccessfulRequestLatency", "Average", period, "GetItem"),
            _query(3, table, "SuccessfulRequestLatency", "p99", period, "PutItem"),
            _query(4, table, "SuccessfulRequestLatency", "p99", period, "Query"),
            _query(5, table, "ReturnedItemCount", "Sum", period, "Query")]


def _points(answer: dict) -> list[int]:
    return [len(result["Values"]) for result in answer["MetricDataResults"]]


def data_end(data_dir: str) -> int:
    """A minute after the newest minute written: the queries' EndTime, so that their windows hold as many
    periods as at the end of a steady state even when the build ended minutes before the measurement."""
    from shoal.metrics.store import latest, lookup

    engine = open_data_dir(data_dir, create=False)
    try:
        with engine.read() as txn:
            info = lookup(txn, (REGION, NAMESPACE, "ConsumedWriteCapacityUnits", (("TableName", table_name(0)),)))
            newest = latest(txn, info.series_id)
        return newest[0] + 60
    finally:
        engine.close()


def measure(data_dir: str, tables: int, calls: int, scrapes: int, end: int, log) -> dict:
    out: dict = {}
    with Server(data_dir) as server:
        time.sleep(8)  # the background jobs' first round (the roll-up walk begins about 4 s after start)
        out["memory_start"] = server.memory()
        scrape = _timed(server, scrapes, lambda i: server.request("GET", "/metrics"))
        scrape["bytes"] = len(scrape.pop("sample"))
        out["scrape"] = scrape
        out["memory_scrapes"] = server.memory()
        # the 7-day dashboard twice: ending a minute after the newest minute, and ending at the hour before,
        # as CloudWatch advises (StartTime and EndTime aligned to the period and the hour answer faster)
        windows = {"dashboard_3h": (3 * 3600, 60, False, end), "dashboard_7d": (7 * DAY, 3600, False, end),
                   "dashboard_7d_hours": (7 * DAY, 3600, False, end - end % 3600),
                   "all_tables_3h": (3 * 3600, 60, True, end)}
        for name, (span, period, every_table, until) in windows.items():
            def run(i: int, span=span, period=period, every_table=every_table, until=until) -> dict:
                if every_table:
                    queries = [_query(t, table_name(t), "ConsumedWriteCapacityUnits", "Sum", period)
                               for t in range(tables)]
                else:
                    queries = dashboard(table_name(i % tables), period)
                return server.call("GraniteServiceVersion20100801.GetMetricData", {
                    "MetricDataQueries": queries, "StartTime": until - span, "EndTime": until})
            result = _timed(server, calls, run)
            points = _points(result.pop("sample"))
            result["results"] = len(points)
            result["points"] = sum(points)
            result["points_min"] = min(points) if points else 0
            out[name] = result
            log(f"{name}: median {result['median_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                f"{result['points']} points")
        out["memory_queries"] = server.memory()
    return out


def walk_costs(data_dir: str, work: str) -> dict:
    """What the roll-up's walks cost on a copy of the directory, in this process: the walk that seals
    the hour that just ended (every series' day block rewritten), and the first walk of the next day
    (each series' oldest day of minutes moved into its five-minute block), each to its end: rounds,
    wall and CPU seconds, the longest round, and the pages of the file it touched (RssFile growth)."""
    copy = os.path.join(work, "walks")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data_dir, copy)
    os.sync()  # else the walk's first commit waits for the copy's pages to reach the disk
    engine = open_data_dir(copy, create=False)
    out = {}
    try:
        with engine.read() as txn:
            started = _STARTED.unpack_from(txn.get("meta", ROLLUP_KEY))[0]
        hour = started - started % 3600 + 3600
        for name, now in (("hourly", hour + 360), ("daily", started - started % DAY + DAY + 360)):
            job = RollUp(engine, clock=lambda now=now: now)
            rss = _rss_file()
            cpu, began, rounds = time.process_time(), time.perf_counter(), []
            while True:
                at = time.perf_counter()
                more = job()
                rounds.append((time.perf_counter() - at) * 1000)
                if not more:
                    break
            out[name] = {"rounds": len(rounds), "wall_s": time.perf_counter() - began, "cpu_s": time.process_time() - cpu,
                         "first_ms": rounds[0], "longest_ms": max(rounds), "longest_after_first_ms": max(rounds[1:] or [0]),
                         "touched_mib": (_rss_file() - rss) / MIB}
    finally:
        engine.close()
        shutil.rmtree(copy, ignore_errors=True)
    return out


def _rss_file() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------- the report


def extrapolate(levels: list[dict]) -> list[dict]:
    out = []
    for counts in levels:
        level = counts["level"]
        scale = FULL_DAYS[level] / counts["days"]
        per_point = counts["data_bytes"] / counts["points"]
        out.append({"level": level, "period": LEVELS[level][0], "days": counts["days"], "full_days": FULL_DAYS[level],
                    "points": counts["points"], "full_points": counts["points"] * scale,
                    "bytes_per_point": per_point, "du_per_point": counts["du_bytes"] / counts["points"],
                    "raw_per_point": (counts["key_bytes"] + counts["value_bytes"]) / counts["points"],
                    "value_per_point": counts["value_bytes"] / counts["points"],
                    "fill": (counts["key_bytes"] + counts["value_bytes"]) / max(1, counts["leaf_bytes"]),
                    "full_bytes": counts["data_bytes"] * scale, "full_du": counts["du_bytes"] * scale,
                    "write_s": counts["seconds"]})
    return out


def _ms(x: float) -> str:
    return f"{x:,.1f}"


def _mb(x: float) -> str:
    return f"{x / MB:,.1f}"


def _verdict(value: float, bound: float) -> str:
    if value < bound:
        return f"met ({value / bound:.0%} of the bound)"
    return f"**not met** ({value / bound:.1f}x the bound)"


def render(run: dict) -> str:
    lines = []
    levels = extrapolate(run["levels"])
    lines.append("| level | period | days written | points written | LMDB bytes/point | du bytes/point | "
                 "key+value bytes/point | leaf fill | days kept | points kept | LMDB at full retention (MB) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for x in levels:
        lines.append(f"| {x['level']} | {x['period'] // 60} min | {x['days']:g} | {x['points']:,} | "
                     f"{x['bytes_per_point']:.0f} | {x['du_per_point']:.0f} | {x['raw_per_point']:.0f} | "
                     f"{x['fill']:.0%} | {x['full_days']:g} | {x['full_points']:,.0f} | {_mb(x['full_bytes'])} |")
    full = sum(x["full_bytes"] for x in levels)
    full_du = sum(x["full_du"] for x in levels)
    lines.append(f"| all | | | {sum(x['points'] for x in levels):,} | | | | | | "
                 f"{sum(x['full_points'] for x in levels):,.0f} | **{_mb(full)}** (du {_mb(full_du)}) |")
    lines.append("")
    lines.append("Is growth linear? LMDB bytes per point after so many days of a level written:")
    lines.append("")
    lines.append("| level | bytes per point after (days written) |")
    lines.append("|---|---|")
    for counts in run["levels"]:
        cells = [f"{c['days']:.0f} d: {c['data_bytes'] / c['points']:.0f}" for c in counts["checkpoints"] if c["points"]]
        cells.append(f"{counts['days']:g} d: {counts['data_bytes'] / counts['points']:.0f}")
        lines.append(f"| {counts['level']} | " + ", ".join(cells) + " |")
    lines.append("")
    lines.append("| request | cold first call (ms) | median (ms) | p99 (ms) | server CPU per call (ms) | "
                 "points per answer | same on the control (median ms) |")
    lines.append("|---|---|---|---|---|---|---|")
    names = {"scrape": "GET /metrics", "dashboard_3h": "GetMetricData, one table's dashboard, 6 queries, 3 h at 1 min",
             "dashboard_7d": "GetMetricData, one table's dashboard, 6 queries, 7 days at 1 h",
             "dashboard_7d_hours": "the same, 7 days at 1 h ending at an hour",
             "all_tables_3h": f"GetMetricData, ConsumedWriteCapacityUnits of {run['tables']} tables, 3 h at 1 min"}
    measured, control = run["measured"], run["control"]
    for key, label in names.items():
        if key not in measured:  # a run before the window was measured
            continue
        x, c = measured[key], control[key]
        points = f"{x['bytes']:,} bytes" if key == "scrape" else f"{x['points']:,}"
        lines.append(f"| {label} | {_ms(x['first_ms'])} | {_ms(x['median_ms'])} | {_ms(x['p99_ms'])} | "
                     f"{_ms(x['cpu_ms'])} | {points} | {_ms(c['median_ms'])} |")
    lines.append("")
    lines.append("| server memory (MiB, process tree) | VmRSS | VmHWM | RssAnon | RssFile |")
    lines.append("|---|---|---|---|---|")
    for label, key in (("after start", "memory_start"), ("after the scrapes", "memory_scrapes"),
                       ("after the queries", "memory_queries")):
        for who, source in (("with metrics", measured), ("control, no metrics history", control)):
            m = source[key]
            lines.append(f"| {label}, {who} | {m['VmRSS'] / MIB:.1f} | {m['VmHWM'] / MIB:.1f} | "
                         f"{m['RssAnon'] / MIB:.1f} | {m['RssFile'] / MIB:.1f} |")
    kinds = run.get("kinds")
    if kinds:
        lines.append("")
        lines.append("Key and value bytes per period in the blocks, by metric (a series' periods at one level, "
                     "over every table):")
        lines.append("")
        metrics = sorted({name for level in kinds.values() for name in level})
        lines.append("| level | " + " | ".join(metrics) + " |")
        lines.append("|---|" + "---|" * len(metrics))
        for level in sorted(kinds):
            cells = []
            for name in metrics:
                blocks_, periods, size = kinds[level].get(name, (0, 0, 0))
                cells.append(f"{size / periods:.1f}" if periods else "")
            lines.append(f"| {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(run: dict) -> list[str]:
    levels = extrapolate(run["levels"])
    full = sum(x["full_bytes"] for x in levels)
    measured, control = run["measured"], run["control"]
    scaled = any(x["days"] < x["full_days"] for x in levels)
    out = [f"Disk, {run['tables']} tables at full retention (LMDB's used pages{', extrapolated' if scaled else ''}): "
           f"{_mb(full)} MB "
           f"against {BOUND_DISK_MB:.0f} MB: {_verdict(full / MB, BOUND_DISK_MB)}."]
    for key, label in (("scrape", "GET /metrics"), ("dashboard_3h", "dashboard over 3 h"),
                       ("dashboard_7d", "dashboard over 7 days"),
                       ("dashboard_7d_hours", "dashboard over 7 days ending at an hour"),
                       ("all_tables_3h", "every table's writes over 3 h")):
        if key not in measured:
            continue
        p99, cpu = measured[key]["p99_ms"], measured[key]["cpu_ms"]
        out.append(f"{label}: p99 {_ms(p99)} ms (median {_ms(measured[key]['median_ms'])} ms) against "
                   f"{BOUND_MS:.0f} ms: {_verdict(p99, BOUND_MS)}; the server's CPU per call, {_ms(cpu)} ms, "
                   f"is {'within' if cpu < BOUND_MS else 'over'} the bound on its own.")
    extra = measured["memory_queries"]["VmHWM"] - control["memory_queries"]["VmHWM"]
    anon = measured["memory_queries"]["RssAnon"] - control["memory_queries"]["RssAnon"]
    out.append(f"Memory the metrics add (with metrics less the control, after the queries): resident (peak "
               f"VmHWM) {extra / MIB:,.1f} MiB, {_verdict(extra / MB, BOUND_MEMORY_MB)}; anonymous (RssAnon) "
               f"{anon / MIB:.1f} MiB, {_verdict(anon / MB, BOUND_MEMORY_MB)}. The rest is mapped pages of "
               f"LMDB's file; the whole server peaks at {measured['memory_queries']['VmHWM'] / MIB:,.1f} MiB.")
    for counts in run["levels"]:
        if counts["days"] >= FULL_DAYS[counts["level"]] and counts["checkpoints"]:
            full = counts["data_bytes"] / counts["points"]
            early = min(counts["checkpoints"], key=lambda c: abs(c["days"] - 30))
            ratio = early["data_bytes"] / early["points"] / full
            out.append(f"Extrapolation check: level {counts['level']} was written in full ({counts['days']:g} days): "
                       f"{full:.0f} bytes per point; after {early['days']:.0f} days it was "
                       f"{early['data_bytes'] / early['points']:.0f}, so extrapolating from there would be "
                       f"{abs(ratio - 1):.0%} {'high' if ratio > 1 else 'low'}.")
    return out


#: The run before blocks of version 3 (docs/benchmarks.md of 2026-12-07 08:32 UTC, this bench on this machine, every
#: level written in full, load average 7.0): blocks of version 2, exact doubles and 2% buckets at every level.  Kept to
#: compare against; a key per period (the layout before blocks) took 10,454.6 MB.
BEFORE = {"date": "2026-12-07 08:32 UTC", "load": "7.0", "disk_mb": 872.1, "bytes_per_point": 20.9, "hwm_added_mib": 187.5,
          "scrape": (48.0, 12.3), "dashboard_3h": (27.8, 6.0), "dashboard_7d": (131.0, 24.3),
          "dashboard_7d_hours": (106.6, 21.7), "all_tables_3h": (167.8, 36.0)}  # p99 ms, server CPU ms per call


def analysis(run: dict) -> list[str]:
    """What dominates, and the comparison with the layout before, from the run's own figures."""
    levels = extrapolate(run["levels"])
    full = sum(x["full_bytes"] for x in levels) / MB
    points = sum(x["full_points"] for x in levels)
    measured = run["measured"]
    out = []
    kinds = run.get("kinds") or {}
    if kinds:
        latency = [v for name, v in kinds.get("0", {}).items() if name == "SuccessfulRequestLatency"]
        share = sum(v[2] for level in kinds.values() for name, v in level.items() if name == "SuccessfulRequestLatency")
        total = sum(v[2] for level in kinds.values() for v in level.values())

        def per_minute(name):
            entry = kinds["0"].get(name, [0, 1, 0])
            return entry[2] / max(1, entry[1])

        if latency and total:
            out.append(f"What the disk holds: blocks of version 3 (`shoal.metrics.blocks`), {full * MB / points:.1f} "
                       f"bytes a period on average over every level, against {BEFORE['bytes_per_point']} for "
                       f"version 2. Latencies (AWS/DynamoDB's milliseconds) keep Sum, Minimum and Maximum to the "
                       "microsecond, as integers; integer columns are stored as they are or delta-coded, whichever "
                       "zstd makes smaller, their bytes grouped by significance; a block's histograms are a table "
                       "of buckets by period (bucket after bucket), stored as they are or as the difference from "
                       "what the block's bucket totals predict for each period's count, whichever is smaller; the "
                       "five-minute and hourly levels keep buckets twice as wide (percentiles within 4%). The "
                       f"latency histograms still dominate: SuccessfulRequestLatency is {share / total:.0%} of the "
                       f"blocks' bytes, {latency[0][2] / latency[0][1]:.0f} bytes a minute; a count such as "
                       f"ConsumedWriteCapacityUnits takes {per_minute('ConsumedWriteCapacityUnits'):.1f} bytes a "
                       f"minute, a gauge such as ItemCount {per_minute('ItemCount'):.1f}.")
    fresh = run.get("fresh")
    table_periods = sum(x["full_points"] for x in levels) / max(1, run["series"]) * run["tables"]
    text = (f"The 200 MB bound leaves {BOUND_DISK_MB * MB / points:.1f} bytes a period, "
            f"{BOUND_DISK_MB * MB / table_periods:.0f} bytes a table and period for its ten series.")
    if fresh:
        floor = sum(v[2] for kind, v in fresh["0"].items() if kind.startswith("latency:"))
        minutes = FULL_DAYS[0] * DAY / 60 * run["tables"]
        text += (f" The counts of the 2% buckets of a table's four latency series carry {floor:.0f} bytes of "
                 "information a minute at this traffic (the order-0 entropy of each bucket's counts over a day of "
                 "minutes drawn anew, `bucket_entropy`: a floor for any exact encoding of them), so the level of "
                 f"minutes alone needs at least {floor * minutes / MB:.0f} MB for them, before Sum, Minimum, Maximum "
                 "and the other series: kept at 2%, the minutes cannot fit in 200 MB at this traffic, whatever "
                 "the encoding. Meeting the bound would take what the project has not allowed (coarser buckets "
                 "for the minutes too, or percentiles for fewer levels) or less traffic per table.")
    out.append(text)
    if fresh:
        rows = []
        for level in sorted(fresh):
            pooled = sum(v[0] for v in fresh[level].values())
            drawn = sum(v[1] for v in fresh[level].values())
            rows.append(f"level {level}: {pooled:.0f} bytes from the pool, {drawn:.0f} drawn anew")
        out.append("Does the pool of 256 statistic sets a metric flatter these figures? Blocks of the seven "
                   "busiest series of a table (`fresh_sizes`), bytes a period summed over them: " + "; ".join(rows)
                   + ". Version 3 keeps a block's periods as a table of counts, in which a repeated period is no "
                   "longer a repeated run of bytes, so the pool gives about what real traffic gives (the hourly "
                   "blocks drawn anew hold 240 periods, not 1,440: their fixed bytes weigh more).")
    out.append("What the reads cost: a read decodes the blocks its window touches (a day of minutes is one value, "
               "its histograms a second zstd frame read only for a percentile, and then as the table they are "
               "stored as, summed over each requested period's columns) and the recent hour's period keys. "
               "GetMetricData groups the periods of all its queries that need no histogram at once "
               "(`shoal.metrics.cloudwatch.many_period_values`: one numpy grouping keyed by query and period), "
               "so the fixed work left per series is the look-ups and a block's decoding: about "
               f"{measured['all_tables_3h']['cpu_ms'] * 10:.0f} microseconds of server CPU a series, answer "
               "included, in the query over every table.")
    out.append("Memory: the anonymous memory hardly moves; what grows is RssFile, the pages of LMDB's memory-mapped "
               "file the server touched (the OS page cache, shared with other processes and reclaimed under "
               "pressure), so it grows with the bytes read: the queries above read the blocks of the 30 tables "
               "their calls name, and the period keys of the current hour.")
    walks = run.get("walks")
    if walks:
        hourly, daily = walks["hourly"], walks["daily"]
        out.append(f"The roll-up, measured apart on a copy of the directory (`walk_costs`): the walk after an hour "
                   f"ends seals it, rewriting every series' day block, in {hourly['rounds']} rounds, "
                   f"{hourly['cpu_s']:.1f} s of CPU ({hourly['wall_s']:.1f} s wall; a round holds the worker's "
                   f"event loop: the first {hourly['first_ms']:.0f} ms, the others at most "
                   f"{hourly['longest_after_first_ms']:.0f} ms), "
                   f"touching {hourly['touched_mib']:.0f} MiB of the file; the first "
                   f"walk of a day also moves each series' oldest day of minutes into its five-minute block: "
                   f"{daily['rounds']} rounds, {daily['cpu_s']:.1f} s of CPU ({daily['wall_s']:.1f} s wall, rounds of "
                   f"at most {daily['longest_ms']:.0f} ms), {daily['touched_mib']:.0f} MiB touched. Those pages "
                   "are what a server's resident size shows after such a walk; sealing into blocks of an hour, "
                   "merged into the day's block by the daily walk, would bring the hourly figure down to the hour's "
                   "own bytes (not built).")
    rows = []
    for key, label in (("scrape", "GET /metrics"), ("dashboard_3h", "dashboard over 3 h"),
                       ("dashboard_7d", "dashboard over 7 days"),
                       ("dashboard_7d_hours", "dashboard over 7 days ending at an hour"),
                       ("all_tables_3h", "every table's writes over 3 h")):
        if key in measured:
            p99, cpu = BEFORE[key]
            rows.append(f"{label} {_ms(p99)} / {_ms(cpu)} ms before, {_ms(measured[key]['p99_ms'])} / "
                        f"{_ms(measured[key]['cpu_ms'])} ms now")
    added = (measured["memory_queries"]["VmHWM"] - run["control"]["memory_queries"]["VmHWM"]) / MIB
    out.append(f"Before and after (the run of {BEFORE['date']}, blocks of version 2, at a load average of "
               f"{BEFORE['load']}, against this one at {run['load_before']}: compare the CPU figures; p99 / "
               f"server CPU per call): disk at full retention {BEFORE['disk_mb']:,.1f} MB before, {full:,.1f} MB "
               f"now; " + "; ".join(rows) + f"; resident memory the metrics add {BEFORE['hwm_added_mib']:,.1f} MiB "
               f"before, {added:,.1f} MiB now.")
    return out


def section(run: dict) -> str:
    levels = run["levels"]
    days = " / ".join(f"{x['days']:g}" for x in levels)
    return "\n".join([
        KEPT_BEGIN,
        "## Metrics at scale (issue 17)",
        "",
        f"* Date: {run['date']}"
        + (f" (measured again {run['remeasured']})" if run.get("remeasured") else "")
        + f"; build {run['build_s'] / 60:.1f} min, measurement {run['measure_s'] / 60:.1f} min",
        f"* Command: `{run['command']}`; Shoal: {run['code']}",
        f"* Machine: {run['machine']}; load average {run['load_before']} before, {run['load_after']} after "
        "(a shared machine: other work ran beside the bench)",
        f"* Data: {run['tables']} tables, {run['series']} series (see the docstring of `bench/metrics_scale.py`: "
        "what a table under steady traffic publishes); "
        f"days written at 1 min / 5 min / 1 h: {days}"
        + ("" if all(x["days"] >= FULL_DAYS[x["level"]] for x in levels)
           else ", extrapolated linearly to 15 / 48 / 392"),
        "",
        render(run),
        "",
        *[f"* {line}" for line in verdicts(run)],
        *[f"* {line}" for line in analysis(run)],
        "",
        KEPT_END,
    ])


def write_docs(text: str) -> None:
    """Replace the section if the page has it, else append it at the very end."""
    with open(DOCS) as f:
        page = f.read()
    start = page.find(KEPT_BEGIN)
    if start >= 0:
        end = page.find(KEPT_END, start) + len(KEPT_END)
        page = page[:start] + text + page[end:]
    else:
        page = page.rstrip("\n") + "\n\n" + text + "\n"
    with open(DOCS, "w") as f:
        f.write(page)


def _machine() -> str:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return (f"{cores} cores (shared), {memory:.1f} GiB memory, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def _code() -> str:
    """Which Shoal ran: the working tree's, or another copy of the commit (``PYTHONPATH``), as the
    tree may hold other people's unfinished edits."""
    import shoal

    inside = os.path.realpath(shoal.__file__).startswith(os.path.realpath(ROOT) + os.sep)
    if not inside:
        return "a copy outside this checkout (PYTHONPATH)"
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return f"the working tree at commit {commit}"


_PATH_OPTIONS = {"--work-dir": "DIR", "--json": "RUN.json", "--reuse": "RUN.json", "--from-json": "RUN.json",
                 "--fresh-json": "FRESH.json"}


def _shown_command(args: list) -> str:
    """The command line as the report shows it: paths of this machine replaced by placeholders."""
    shown, args = [], list(args)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in _PATH_OPTIONS:
            shown.append(f"{name}={_PATH_OPTIONS[name]}" if eq else name)
            if not eq and args:
                args.pop(0)
                shown.append(_PATH_OPTIONS[name])
            continue
        shown.append(arg)
    return shlex.join(["python3", "bench/metrics_scale.py", *shown])


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _fresh(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    fresh = fresh_sizes()
    with open(path, "w") as f:
        json.dump(fresh, f, indent=1)
    return fresh


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=100)
    parser.add_argument("--minute-days", type=float, default=15.0, help="days of 1-minute data written (15 kept)")
    parser.add_argument("--five-minute-days", type=float, default=48.0, help="days of 5-minute data (48 kept)")
    parser.add_argument("--hour-days", type=float, default=392.0, help="days of hourly data (392 kept)")
    parser.add_argument("--calls", type=int, default=50, help="GetMetricData calls of each kind")
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--work-dir", help="where the data directories go (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--reuse", metavar="RUN_JSON", help="measure again the directories in --work-dir that "
                        "the run saved in RUN_JSON built (its build figures are kept)")
    parser.add_argument("--code", help="how to name the Shoal measured in the report (default: worked out)")
    parser.add_argument("--from-json", help="render the results of an earlier run (its --json) instead of running")
    parser.add_argument("--floors", action="store_true", help="only print what coarser histograms, or none, "
                        "would take at the full retention (``floors``), in-process, and exit")
    parser.add_argument("--fresh-json", help="also report the sizes of blocks drawn anew (``fresh_sizes``) "
                        "from this file, or measure them and write them there")
    args = parser.parse_args(argv)
    if args.floors:
        result = floors(tables=args.tables)
        print(render_floors(result))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
        return 0
    if args.from_json:
        with open(args.from_json) as f:
            run = json.load(f)
        if args.fresh_json:
            run["fresh"] = _fresh(args.fresh_json)
        text = section(run)
        print(text)
        if not args.no_docs:
            write_docs(text)
        return 0

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    work = args.work_dir or tempfile.mkdtemp(prefix="shoal-metrics-scale-")
    os.makedirs(work, exist_ok=True)
    data_dir, control_dir = os.path.join(work, "data"), os.path.join(work, "control")
    days = (args.minute_days, args.five_minute_days, args.hour_days)
    run = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(),
           "tables": args.tables, "load_before": _load(), "code": args.code or _code(),
           "command": _shown_command(argv if argv is not None else sys.argv[1:])}
    try:
        began = time.perf_counter()
        if args.reuse:  # the directories of an earlier run (--keep or --work-dir), measured again
            with open(args.reuse) as f:
                earlier = json.load(f)
            run["remeasured"] = run["date"]
            for key in ("build_s", "series", "levels", "sizes", "tables", "date", "kinds"):
                if key in earlier:
                    run[key] = earlier[key]
            run["command"] = earlier["command"] + "; measured again with " + run["command"]
        else:
            built = build(data_dir, control_dir, args.tables, days, time.time(), log)
            run["build_s"] = time.perf_counter() - began
            run["series"] = built["series"]
            run["levels"] = [{k: v for k, v in x.items()} for x in built["levels"]]
            run["sizes"] = {"before": built["before"], "after": built["after"]}
            run["kinds"] = kind_sizes(data_dir)
        began = time.perf_counter()
        end = data_end(data_dir)
        run["measured"] = measure(data_dir, run["tables"], args.calls, args.scrapes, end, log)
        run["control"] = measure(control_dir, run["tables"], args.calls, args.scrapes, end, log)
        run["measure_s"] = time.perf_counter() - began
        run["walks"] = walk_costs(data_dir, work)
        if args.fresh_json:
            run["fresh"] = _fresh(args.fresh_json)
        run["load_after"] = _load()
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    text = section(run)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(run, f, indent=1)
    if not args.no_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
