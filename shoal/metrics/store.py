"""Metrics in the data directory: a catalog of series and their statistics per period.

A series is one metric as CloudWatch names it: (region, namespace, metric
name, dimensions), the dimensions a tuple of (name, value) pairs sorted by
name.  Everything lives in the ``meta`` space under ``metrics/``::

    metrics/series/<region><namespace><name>(<dim name><dim value>)*  -> id (u32), last active minute (u32), unit
    metrics/next                                                       -> the next series id (u32)
    metrics/d/<id u32><level u8><period start, epoch s u32>            -> Stats (shoal.metrics.stats): a recent period
    metrics/b/<id u32><level u8><block start, epoch s u32>             -> a sealed block (shoal.metrics.blocks)
    metrics/t/<id u32>                                                 -> Stats of the series' whole life (Prometheus)

Each text part of a series key is UTF-8 with ``\\0`` escaped as ``\\0\\xff``
and ends with ``\\0\\x01``, so the series of one region and namespace are one
key range in order (ListMetrics).  Levels are resolutions: 0 is one minute,
1 five minutes, 2 one hour (``LEVELS``).

Writers add a minute's statistics to its own key (``metrics/d/``, level 0),
merged by addition (``add``) inside their transaction, so any number of
worker processes can write the same series and minute; that is all the
recording path does.  The roll-up (``shoal.metrics.retention``) then
*seals* every stored period older than the current hour (``SEAL_AFTER_S``)
into its series' block of that level and span (``BLOCK_SPANS``: a day of
minutes, five days of five minutes, sixty days of hours), deleting the
period's key in the same transaction, and later moves whole blocks to the
next level as they pass their level's retention.  A datum is therefore in
exactly one place, a period key or a block (a late write to a sealed minute
makes a new key beside the block, sealed in turn), and a read adds up both
(``read_columns``) without counting anything twice.

Keys written before blocks existed are still read: periods of levels 1 and
2, which the roll-up seals like any other; and the hourly totals of the
minutes (``metrics/h/``), summaries that reads no longer use, which the
roll-up deletes.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator

from shoal.metrics import blocks
from shoal.metrics.blocks import Columns
from shoal.metrics.stats import Stats

PREFIX = b"metrics/"
SERIES_PREFIX = b"metrics/series/"
NEXT_KEY = b"metrics/next"
DATA_PREFIX = b"metrics/d/"
BLOCK_PREFIX = b"metrics/b/"
TOTAL_PREFIX = b"metrics/t/"
HOUR_PREFIX = b"metrics/h/"  # hourly totals of earlier writers: deleted by the roll-up
HOUR = 3600
DAY = 86400

#: (period in seconds, how long data stays at this resolution) per level:
#: CloudWatch's retention (1 minute for 15 days, 5 minutes for 63, 1 hour for 455).
LEVELS = ((60, 15 * DAY), (300, 63 * DAY), (3600, 455 * DAY))
#: The span of time one block holds, per level (aligned to the epoch): about
#: 1,440 periods each, so a week's read takes a handful of values a series.
BLOCK_SPANS = (DAY, 5 * DAY, 60 * DAY)
#: How coarse the buckets of a sealed block are, per level (``shoal.metrics.stats.CoarseStats``): the
#: minutes keep 2% buckets; five-minute and hourly periods keep buckets twice as wide, so that a
#: percentile read from them is within 4% of a value the metric received (the project's bound: 5%).
BLOCK_SHIFTS = (0, 1, 1)
#: Periods are sealed once their hour ended this long ago (a worker's
#: flush comes within seconds; PutMetricData may still write older minutes).
SEAL_AFTER_S = 300

_U32 = struct.Struct(">I")
_SERIES_VALUE = struct.Struct(">II")
_DATA_SUFFIX = struct.Struct(">IBI")
_HOUR_SUFFIX = struct.Struct(">II")
_END = b"\0\x01"

Series = tuple  # (region, namespace, name, ((dimension name, value), ...))


def _part(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").replace(b"\0", b"\0\xff") + _END


def series_key(series: Series) -> bytes:
    region, namespace, name, dimensions = series
    parts = [SERIES_PREFIX, _part(region), _part(namespace), _part(name)]
    for dim_name, dim_value in dimensions:
        parts.append(_part(dim_name))
        parts.append(_part(dim_value))
    return b"".join(parts)


def namespace_range(region: str, namespace: str | None = None) -> tuple[bytes, bytes]:
    """The [start, stop) key range of a region's series (of one namespace)."""
    start = SERIES_PREFIX + _part(region) + (_part(namespace) if namespace is not None else b"")
    return start, start[:-1] + b"\x02"


def decode_series_key(key) -> Series:
    parts = [part.replace(b"\0\xff", b"\0").decode("utf-8", "surrogatepass")
             for part in bytes(key)[len(SERIES_PREFIX):].split(_END)[:-1]]
    region, namespace, name, rest = parts[0], parts[1], parts[2], parts[3:]
    return region, namespace, name, tuple(zip(rest[::2], rest[1::2]))


def _clamp(at) -> int:
    return min(max(0, int(at)), 2**32 - 1)


def data_key(series_id: int, level: int, start: int) -> bytes:
    return DATA_PREFIX + _DATA_SUFFIX.pack(series_id, level, start)


def data_range(series_id: int, level: int, start: int = 0, stop: int = 2**32 - 1) -> tuple[bytes, bytes]:
    """The keys of the series' periods at ``level`` starting in [start, stop) (clamped to what a key holds)."""
    return data_key(series_id, level, _clamp(start)), data_key(series_id, level, _clamp(stop))


def block_key(series_id: int, level: int, base: int) -> bytes:
    return BLOCK_PREFIX + _DATA_SUFFIX.pack(series_id, level, base)


def block_base(level: int, at: int) -> int:
    """The start of the block of ``level`` that holds a period starting at ``at``."""
    return at - at % BLOCK_SPANS[level]


def block_range(series_id: int, level: int, start: int = 0, stop: int = 2**32 - 1) -> tuple[bytes, bytes]:
    """The keys of the series' blocks at ``level`` that may hold periods starting in [start, stop)."""
    return (block_key(series_id, level, _clamp(block_base(level, _clamp(start)))),
            block_key(series_id, level, _clamp(stop)))


def hour_key(series_id: int, hour: int) -> bytes:
    return HOUR_PREFIX + _HOUR_SUFFIX.pack(series_id, hour)


def decode_data_key(key) -> tuple[int, int, int]:
    """(series id, level, period start) of a data or block key."""
    return _DATA_SUFFIX.unpack_from(key, len(DATA_PREFIX))


class SeriesInfo:
    """What the catalog keeps of a series."""

    __slots__ = ("series", "series_id", "last_minute", "unit")

    def __init__(self, series: Series, series_id: int, last_minute: int, unit: str) -> None:
        self.series = series
        self.series_id = series_id
        self.last_minute = last_minute
        self.unit = unit


def _decode_info(series: Series, raw) -> SeriesInfo:
    raw = bytes(raw)
    series_id, last_minute = _SERIES_VALUE.unpack_from(raw)
    return SeriesInfo(series, series_id, last_minute, raw[_SERIES_VALUE.size:].decode())


def lookup(txn, series: Series) -> SeriesInfo | None:
    raw = txn.get("meta", series_key(series))
    return _decode_info(series, raw) if raw is not None else None


def iter_series(txn, start: bytes = SERIES_PREFIX, stop: bytes = SERIES_PREFIX[:-1] + b"0") -> Iterator[SeriesInfo]:
    for key, raw in txn.scan("meta", start, stop):
        yield _decode_info(decode_series_key(key), raw)


class Writer:
    """Adds statistics to series in one write transaction, creating series
    (with the next id) as needed."""

    def __init__(self, txn) -> None:
        self.txn = txn
        self._infos: dict[Series, SeriesInfo] = {}
        self._dirty: set[Series] = set()

    def info(self, series: Series, unit: str, minute: int) -> SeriesInfo:
        info = self._infos.get(series)
        if info is None:
            info = lookup(self.txn, series)
            if info is None:
                raw = self.txn.get("meta", NEXT_KEY)
                series_id = _U32.unpack(raw)[0] if raw else 1
                self.txn.put("meta", NEXT_KEY, _U32.pack(series_id + 1))
                info = SeriesInfo(series, series_id, 0, unit)
                self._dirty.add(series)
            self._infos[series] = info
        if minute > info.last_minute:
            info.last_minute = minute
            self._dirty.add(series)
        if unit and unit != "None" and unit != info.unit:  # the latest unit named wins
            info.unit = unit
            self._dirty.add(series)
        return info

    def add(self, series: Series, unit: str, start: int, stats: Stats, *, level: int = 0,
            total: bool = True) -> None:
        """Merge ``stats`` into the series' period starting at ``start``
        (epoch seconds, a multiple of the level's period), and into its
        lifetime total unless ``total`` is false."""
        info = self.info(series, unit, start // 60)
        key = data_key(info.series_id, level, start)
        old = self.txn.get("meta", key)
        merged = Stats.decode(old).merge(stats) if old is not None else stats
        self.txn.put("meta", key, merged.encode())
        if total:
            total_key = TOTAL_PREFIX + _U32.pack(info.series_id)
            old = self.txn.get("meta", total_key)
            merged = Stats.decode(old).merge(stats) if old is not None else stats.copy()
            self.txn.put("meta", total_key, merged.encode())

    def finish(self) -> None:
        """Store the catalog entries this writer changed."""
        for series in self._dirty:
            info = self._infos[series]
            self.txn.put("meta", series_key(series),
                         _SERIES_VALUE.pack(info.series_id, info.last_minute) + info.unit.encode())
        self._dirty.clear()


def write_points(txn, points: dict) -> None:
    """Merge ``{(series, unit, minute start): Stats}`` into storage."""
    writer = Writer(txn)
    for (series, unit, start), stats in points.items():
        writer.add(series, unit, start, stats)
    writer.finish()


#: The namespace and unit of the latencies Shoal measures itself, which a block keeps to the
#: microsecond (``block_decimals``).
_LATENCY_NAMESPACE, _LATENCY_UNIT = "AWS/DynamoDB", "Milliseconds"


def block_decimals(series: Series, unit: str) -> int | None:
    """How many decimals a sealed block keeps of a series' Sum, Minimum and
    Maximum (``blocks.encode``): 3 (a microsecond) for the latencies
    DynamoDB's namespace reports in milliseconds, which Shoal measures no
    finer, so that they are stored as integers; None (exact doubles) for
    every other series, custom metrics among them."""
    return 3 if series[1] == _LATENCY_NAMESPACE and unit == _LATENCY_UNIT else None


def merge_block(txn, series_id: int, level: int, base: int, cols: Columns, decimals: int | None = None) -> int:
    """Merge ``cols`` (periods of ``level`` inside the block from ``base``)
    into the stored block, made if there is none; returns the number of
    periods the block holds now (the work it took).  ``decimals``: see
    ``block_decimals``; the five-minute and hourly levels keep coarse
    buckets (``BLOCK_SHIFTS``)."""
    key = block_key(series_id, level, base)
    old = txn.get("meta", key)
    if old is not None:
        old = blocks.decode(old, dense=True)
        # the usual case, sealing the hour after the block's last: its table of counts grows by columns
        merged = blocks.appended(old, cols)
        cols = merged if merged is not None else blocks.group(blocks.concat([old, cols]), None)
    txn.put("meta", key, blocks.encode(cols, base, LEVELS[level][0], decimals, BLOCK_SHIFTS[level], predict=level > 0))
    return len(cols)


# ---------------------------------------------------------------- reads


def read_parts(txn, series_id: int, start: int, end, histograms: bool = True, now: float | None = None,
               dense: bool = False) -> list:
    """Every stored period of a series that starts in [start, end), sealed
    or not, at every level, as a list of columns (a block's, the unsealed
    periods' of a level; a period may appear more than once, a block's and
    a later write's: ``blocks.group`` adds them up), with their histograms
    if ``histograms``.  Given ``now``, the coarser levels are not looked at
    for a window younger than their age: the roll-up moves nothing younger
    there, so a recent window reads one level.  ``dense``: blocks' histograms
    may come as their tables (``blocks.decode``)."""
    parts, rows = read_blocks_and_rows(txn, series_id, start, end, histograms, now, dense)
    if rows:
        parts.append(Columns.from_stored(rows, histograms))
    return parts


def read_blocks_and_rows(txn, series_id: int, start: int, end, histograms: bool = True, now: float | None = None,
                         dense: bool = False) -> tuple[list, list]:
    """``read_parts`` as (the blocks' columns, the unsealed periods in their stored form: [(period
    start, ``Stats.encode`` form)]), so that a read of many series turns all their unsealed periods
    into columns at once."""
    stop = _clamp(-(-end // 1))
    if now is not None:  # periods past the retention, in a last block not yet wholly past it, are not read
        start = max(start, -(-(now - LEVELS[-1][1]) // 1))
    parts, rows = [], []
    for level in range(len(LEVELS)):
        if level and now is not None and start >= now - LEVELS[level - 1][1]:
            break
        for raw in _blocks_in(txn, series_id, level, start, stop):
            cols = blocks.decode(raw, histograms, dense).window(start, end, copy=True)
            if len(cols):
                parts.append(cols)
        found = level_rows(txn, series_id, level, start, stop)
        if found and found[-1][0] >= end:
            found = [row for row in found if row[0] < end]
        rows.extend(found)  # (levels one after the other: not in time order across them)
    return parts, rows


#: Up to this many blocks a window may hold are looked up one by one.
_BLOCK_GETS = 64


def _blocks_in(txn, series_id: int, level: int, start: int, stop: int) -> Iterator:
    """The stored blocks of ``level`` that may hold periods starting in [start, stop).  Their keys
    are known (a block starts at a multiple of its span), so a window of a few blocks looks each up:
    a range scan would also read the value of the key past its end (the engine's cursor returns each
    key with its value), another block of the series, tens of kilobytes decoded for nothing."""
    span = BLOCK_SPANS[level]
    first = block_base(level, _clamp(start))
    if (stop - first) // span < _BLOCK_GETS:
        for base in range(first, stop, span):
            raw = txn.get("meta", block_key(series_id, level, base))
            if raw is not None:
                yield raw
        return
    low, high = block_range(series_id, level, start, stop)
    for _key, raw in txn.scan("meta", low, high):
        yield raw


def read_columns(txn, series_id: int, start: int, end, histograms: bool = True, now: float | None = None) -> Columns:
    """``read_parts`` as one set of columns."""
    cols = blocks.concat(read_parts(txn, series_id, start, end, histograms, now))
    if not histograms and cols.hoff is not None:  # an empty result
        cols.hoff = cols.hidx = cols.hcnt = None
    return cols


def read_periods(txn, series_id: int, start: int, end: int) -> Iterator[tuple[int, int, Stats]]:
    """(period start, level, Stats) of every stored period of a series that
    starts in [start, end), sealed or not, finest level first (a sealed
    period and a later write to it come apart)."""
    for level in range(len(LEVELS)):
        low, high = block_range(series_id, level, start, end)
        for _key, raw in txn.scan("meta", low, high):
            for at, stats in blocks.decode(raw).rows():
                if start <= at < end:
                    yield at, level, stats
        for at, raw in read_level(txn, series_id, level, start, end):
            yield at, level, Stats.decode(raw)


def read_level(txn, series_id: int, level: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(period start, stored form) of the series' unsealed periods at ``level`` that start in [start, end)."""
    offset = len(DATA_PREFIX) + 5  # the period start, after the series id and level
    low, high = data_range(series_id, level, start, end)
    for key, raw in txn.scan("meta", low, high):
        yield _U32.unpack_from(key, offset)[0], raw


def level_rows(txn, series_id: int, level: int, start: int, end: int) -> list[tuple[int, bytes]]:
    """``read_level`` as a list, built in one comprehension (no generator
    frame resumed per period)."""
    offset = len(DATA_PREFIX) + 5
    unpack = _U32.unpack_from
    low, high = data_range(series_id, level, start, end)
    return [(unpack(key, offset)[0], bytes(raw)) for key, raw in txn.scan("meta", low, high)]


def latest(txn, series_id: int) -> tuple[int, Stats] | None:
    """The newest minute of a series (for gauges), sealed or not, or None."""
    found = None
    low, high = data_range(series_id, 0)
    for key, raw in txn.scan("meta", low, high, reverse=True):
        found = (decode_data_key(key)[2], Stats.decode(raw))
        break
    low, high = block_range(series_id, 0)
    for _key, raw in txn.scan("meta", low, high, reverse=True):
        cols = blocks.decode(raw, dense=True)  # one period is wanted: not the whole table as rows
        if len(cols):
            at = int(cols.at[-1])
            sealed = cols.stats(len(cols) - 1)
            if found is None or at > found[0]:
                found = (at, sealed)
            elif at == found[0]:
                found[1].merge(sealed)
        break
    return found


def latest_stored(txn, series_id: int, unsealed_from: int | None = None) -> tuple[int, bytes] | None:
    """As ``latest``, the minute in its stored form (``Stats.encode``).  ``unsealed_from``: the
    start of the current hour by the clock the roll-up seals by; no block holds a period that
    late (an hour is sealed ``SEAL_AFTER_S`` after it ended), so a newest unsealed minute from
    then on is the answer without reading the newest block (whose value, tens of kilobytes, the
    engine copies whole: a scrape did that for every gauge)."""
    low, high = data_range(series_id, 0)
    newest_key = None
    for key, raw in txn.scan("meta", low, high, reverse=True):
        newest_key = (decode_data_key(key)[2], bytes(raw))
        break
    if newest_key is not None and unsealed_from is not None and newest_key[0] >= unsealed_from:
        return newest_key
    if newest_key is not None:
        low, high = block_range(series_id, 0)
        newest_block = next(iter(txn.scan("meta", low, high, reverse=True)), None)
        if newest_block is None or blocks.block_last(newest_block[1]) < newest_key[0]:
            return newest_key  # nothing sealed as late: the usual case of a gauge written each minute
    found = latest(txn, series_id)
    return (found[0], found[1].encode()) if found is not None else None


def has_data(txn, series_id: int) -> bool:
    """Whether any period of the series is stored, sealed or not."""
    for level in range(len(LEVELS)):
        for low, high in (data_range(series_id, level), block_range(series_id, level)):
            if next(iter(txn.scan("meta", low, high)), None) is not None:
                return True
    return False


def total(txn, series_id: int) -> Stats | None:
    raw = txn.get("meta", TOTAL_PREFIX + _U32.pack(series_id))
    return Stats.decode(raw) if raw is not None else None


def total_stored(txn, series_id: int) -> bytes | None:
    """The stored form of the series' lifetime total (``total`` undecoded)."""
    raw = txn.get("meta", TOTAL_PREFIX + _U32.pack(series_id))
    return bytes(raw) if raw is not None else None


def merge_points(into: dict, points: Iterable[tuple[tuple, Stats]]) -> dict:
    for key, stats in points:
        have = into.get(key)
        if have is None:
            into[key] = stats
        else:
            have.merge(stats)
    return into

