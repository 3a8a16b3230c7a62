"""Metrics in the data directory: a catalog of series and their statistics per period.

A series is one metric as CloudWatch names it: (region, namespace, metric
name, dimensions), the dimensions a tuple of (name, value) pairs sorted by
name.  Everything lives in the ``meta`` space under ``metrics/``::

    metrics/series/<region><namespace><name>(<dim name><dim value>)*  -> id (u32), last active minute (u32), unit
    metrics/next                                                       -> the next series id (u32)
    metrics/d/<id u32><level u8><period start, epoch s u32>            -> Stats (shoal.metrics.stats)
    metrics/t/<id u32>                                                 -> Stats of the series' whole life (Prometheus)
    metrics/h/<id u32><hour start, epoch s u32>                        -> Stats of the hour's 1-minute periods

Each text part of a series key is UTF-8 with ``\\0`` escaped as ``\\0\\xff``
and ends with ``\\0\\x01``, so the series of one region and namespace are one
key range in order (ListMetrics).  Levels are resolutions: 0 is one minute,
1 five minutes, 2 one hour (``LEVELS``).  Statistics are merged by addition
(``add``) inside the writer's transaction, so any number of worker processes
can write the same series and period.  A datum lives at exactly one level at
a time: the roll-up (``shoal.metrics.retention``) moves minutes older than 15
days into their five minutes, and those older than 63 days into their hour,
deleting what it moved in the same transaction, so a read adds every level
without counting anything twice.

An hour's total (``metrics/h/``) is a summary of level 0, not a level: when
it exists it is the merge of every 1-minute period of that hour, so a read
of periods of an hour or more takes a whole hour from it rather than from
sixty minutes (CloudWatch, too, answers faster when StartTime and EndTime
are aligned to the period and the hour).  The writer adds a minute to its
hour in the same transaction; it creates an hour's total only when none of
the hour's minutes is stored yet, and the roll-up deletes the total of any
hour it takes minutes from, so an hour cut by the roll-up, or written before
hourly totals existed, has no total and is read by its minutes.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator

from shoal.metrics.stats import Stats

PREFIX = b"metrics/"
SERIES_PREFIX = b"metrics/series/"
NEXT_KEY = b"metrics/next"
DATA_PREFIX = b"metrics/d/"
TOTAL_PREFIX = b"metrics/t/"
HOUR_PREFIX = b"metrics/h/"
HOUR = 3600

#: (period in seconds, how long data stays at this resolution) per level:
#: CloudWatch's retention (1 minute for 15 days, 5 minutes for 63, 1 hour for 455).
LEVELS = ((60, 15 * 86400), (300, 63 * 86400), (3600, 455 * 86400))

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


def data_key(series_id: int, level: int, start: int) -> bytes:
    return DATA_PREFIX + _DATA_SUFFIX.pack(series_id, level, start)


def data_range(series_id: int, level: int, start: int = 0, stop: int = 2**32 - 1) -> tuple[bytes, bytes]:
    """The keys of the series' periods at ``level`` starting in [start, stop) (clamped to what a key holds)."""
    low, high = min(max(0, int(start)), 2**32 - 1), min(max(0, int(stop)), 2**32 - 1)
    return data_key(series_id, level, low), data_key(series_id, level, high)


def hour_key(series_id: int, hour: int) -> bytes:
    return HOUR_PREFIX + _HOUR_SUFFIX.pack(series_id, hour)


def decode_data_key(key) -> tuple[int, int, int]:
    """(series id, level, period start) of a data key."""
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
        if level == 0:
            self._add_to_hour(info.series_id, start, stats)
        key = data_key(info.series_id, level, start)
        old = self.txn.get("meta", key)
        merged = Stats.decode(old).merge(stats) if old is not None else stats
        self.txn.put("meta", key, merged.encode())
        if total:
            total_key = TOTAL_PREFIX + _U32.pack(info.series_id)
            old = self.txn.get("meta", total_key)
            merged = Stats.decode(old).merge(stats) if old is not None else stats.copy()
            self.txn.put("meta", total_key, merged.encode())

    def _add_to_hour(self, series_id: int, start: int, stats: Stats) -> None:
        """Merge a minute's ``stats`` into its hour's total (before the
        minute itself is written: a new total only for an hour with no
        minute stored yet)."""
        hour = start - start % HOUR
        key = hour_key(series_id, hour)
        old = self.txn.get("meta", key)
        if old is None:
            low, high = data_range(series_id, 0, hour, hour + HOUR)
            if next(iter(self.txn.scan("meta", low, high)), None) is not None:
                return  # the hour's other minutes are in no total: it is read by its minutes
            self.txn.put("meta", key, stats.encode())
            return
        self.txn.put("meta", key, Stats.decode(old).merge(stats).encode())

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


def read_periods(txn, series_id: int, start: int, end: int) -> Iterator[tuple[int, int, Stats]]:
    """(period start, level, Stats) of every stored period of a series that
    starts in [start, end), finest level first."""
    for at, level, raw in read_stored(txn, series_id, start, end):
        yield at, level, Stats.decode(raw)


def read_stored(txn, series_id: int, start: int, end: int) -> Iterator[tuple[int, int, bytes]]:
    """As ``read_periods``, with each period's stored form undecoded (for
    ``shoal.metrics.stats.DeferredStats``)."""
    for level in range(len(LEVELS)):
        for at, raw in read_level(txn, series_id, level, start, end):
            yield at, level, raw


def read_level(txn, series_id: int, level: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(period start, stored form) of the series' periods at ``level`` that start in [start, end)."""
    offset = len(DATA_PREFIX) + 5  # the period start, after the series id and level
    low, high = data_range(series_id, level, start, end)
    for key, raw in txn.scan("meta", low, high):
        yield _U32.unpack_from(key, offset)[0], raw


def level_rows(txn, series_id: int, level: int, start: int, end: int) -> list[tuple[int, bytes]]:
    """``read_level`` as a list, built in one comprehension (no generator
    frame resumed per period): for reads that take every period anyway."""
    offset = len(DATA_PREFIX) + 5
    unpack = _U32.unpack_from
    low, high = data_range(series_id, level, start, end)
    return [(unpack(key, offset)[0], raw) for key, raw in txn.scan("meta", low, high)]


def read_hours(txn, series_id: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(hour start, stored form) of the hour totals that exist for hours starting in [start, end)."""
    clamp = lambda at: min(max(0, int(at)), 2**32 - 1)  # noqa: E731
    offset = len(HOUR_PREFIX) + 4
    for key, raw in txn.scan("meta", hour_key(series_id, clamp(start)), hour_key(series_id, clamp(end))):
        yield _U32.unpack_from(key, offset)[0], raw


def latest(txn, series_id: int) -> tuple[int, Stats] | None:
    """The newest minute of a series (for gauges), or None."""
    low, high = data_range(series_id, 0)
    for key, raw in txn.scan("meta", low, high, reverse=True):
        return decode_data_key(key)[2], Stats.decode(raw)
    return None


def latest_stored(txn, series_id: int) -> tuple[int, bytes] | None:
    """As ``latest``, the minute's stored form undecoded."""
    low, high = data_range(series_id, 0)
    for key, raw in txn.scan("meta", low, high, reverse=True):
        return decode_data_key(key)[2], bytes(raw)
    return None


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
