"""A statistic set with a histogram: what one metric keeps for one period.

CloudWatch answers SampleCount, Sum, Minimum, Maximum, Average and
percentiles (``p99``, ``p99.9``) of the values a metric received in a
period.  The first five come from four numbers; percentiles need the
distribution, which is kept as a histogram over logarithmic buckets:
bucket ``i`` holds the values in (GAMMA**(i-1), GAMMA**i], so a percentile
read from it is within ``RELATIVE_ACCURACY`` (2%) of a value the metric
received (and it is clamped to [Minimum, Maximum], which are exact).  The
histogram of a period merges by adding bucket counts, so the statistics of
several worker processes, of the minutes of an hour, or of a whole lifetime
combine exactly; its size grows with the spread of the values (a factor of
two spans 18 buckets), not with their number.

A value's bucket is found in a precomputed table of bucket bounds (the
powers of GAMMA from ``_LOW`` to ``_HIGH``, about 1e-21 to 1e21) with
``bisect``, the logarithm serving only outside it; a list of values is
sorted first, so that each bucket it fills costs two bisections whatever the
number of values in it (a second of latencies is a few dozen buckets): the
per-value work is the C sort.

Sealed periods of the five-minute and hourly levels keep *coarse* buckets
(``CoarseStats``, ``shift`` 1): bucket ``j`` joins the 2% buckets ``2j - 1``
and ``2j``, the values in (GAMMA**(2j-2), GAMMA**(2j)], so a percentile
read from them is within ``COARSE_RELATIVE_ACCURACY`` (4%, the bound the
project allows is 5%) of a value the metric received.  Merging coarse and
fine statistics makes the result coarse.

As CloudWatch does, a negative value, or a statistic set of several values
whose minimum and maximum differ (PutMetricData's StatisticValues), makes
percentiles unavailable for the period (``buckets`` is None).

Stored form (``encode``): four big-endian doubles (count, sum, min, max), a
flags byte (1: percentiles available), then varints: the zero count, the
number of buckets, and per bucket in index order the zigzag-encoded
difference from the previous index and the count.  The header alone gives
SampleCount, Sum, Minimum, Maximum and Average, so a read that asks none of
the percentiles need not walk the varints.  Periods past their hour are
sealed into blocks of columns (``shoal.metrics.blocks``), which keep the
same numbers and buckets.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left, bisect_right

RELATIVE_ACCURACY = 0.02
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
#: The accuracy of coarse buckets (two 2% buckets each): (GAMMA**2 - 1) / (GAMMA**2 + 1).
COARSE_RELATIVE_ACCURACY = (GAMMA ** 2 - 1) / (GAMMA ** 2 + 1)
_INV_LOG_GAMMA = 1 / math.log(GAMMA)
_HEADER = struct.Struct(">ddddB")
_PERCENTILES = 1
_COARSE = 2  # flags: the buckets are coarse (shift 1)
_LOW, _HIGH = -1200, 1200
_UPPER = [GAMMA ** index for index in range(_LOW, _HIGH + 1)]  # _UPPER[i - _LOW]: bucket i's upper bound
_TABLE_MIN, _TABLE_MAX = _UPPER[0], _UPPER[-1]


def bucket_of(value: float) -> int:
    """The histogram bucket of a positive value: the i with
    GAMMA**(i-1) < value <= GAMMA**i."""
    if _TABLE_MIN < value <= _TABLE_MAX:
        return bisect_left(_UPPER, value) + _LOW
    return math.ceil(math.log(value) * _INV_LOG_GAMMA)


def bucket_value(index: int, shift: int = 0) -> float:
    """The value a bucket stands for: the point whose relative distance to
    either bound of the bucket is the same (``shift`` 1: a coarse bucket,
    two 2% buckets wide)."""
    width = 1 << shift
    return 2 * GAMMA ** (index * width) / (GAMMA ** width + 1)


def bucket_upper(index: int, shift: int = 0) -> float:
    """The upper bound of a bucket (the values it holds are <= it)."""
    return GAMMA ** (index << shift)


def coarser(index: int, shift: int) -> int:
    """The bucket, ``shift`` times as coarse, that holds 2% bucket ``index``: ceil(index / 2**shift)."""
    return -((-index) >> shift)


class Stats:
    """SampleCount, Sum, Minimum, Maximum and a histogram of some values."""

    __slots__ = ("count", "sum", "min", "max", "zeros", "buckets")
    #: how coarse the buckets are (a class attribute: ``CoarseStats`` sets it to 1)
    shift = 0

    def __init__(self) -> None:
        self.count = 0.0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zeros = 0
        self.buckets: dict[int, int] | None = {}

    @classmethod
    def of(cls, values) -> "Stats":
        stats = cls()
        stats.add_values(list(values))
        return stats

    def __repr__(self) -> str:
        return f"Stats(count={self.count}, sum={self.sum}, min={self.min}, max={self.max})"

    def __eq__(self, other) -> bool:
        return (isinstance(other, Stats) and self.shift == other.shift and self.count == other.count
                and self.sum == other.sum and self.min == other.min and self.max == other.max
                and self.zeros == other.zeros and self.buckets == other.buckets)

    def add(self, value: float, times: int = 1) -> None:
        """Count ``value`` ``times`` times."""
        self.count += times
        self.sum += value * times
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        buckets = self.buckets
        if buckets is None:
            return
        if value > 0:
            index = bucket_of(value)
            buckets[index] = buckets.get(index, 0) + times
        elif value == 0:
            self.zeros += times
        else:  # CloudWatch: no percentiles for a metric with negative values
            self.buckets = None

    def add_values(self, values: list, scale: float = 1.0) -> None:
        """Count each of ``values`` times ``scale`` (the recorder keeps
        seconds and reports milliseconds), as ``add`` does one by one.
        ``values`` is sorted in place: the sums come from C built-ins, and
        each bucket from two bisections (``_sorted_buckets``)."""
        if not values:
            return
        values.sort()
        low, high = values[0] * scale, values[-1] * scale
        self.count += len(values)
        self.sum += math.fsum(values) * scale if scale != 1.0 else math.fsum(values)
        if low < self.min:
            self.min = low
        if high > self.max:
            self.max = high
        if self.buckets is None:
            return
        if low < 0:
            self.buckets = None
            return
        at = 0
        if low == 0:
            at = bisect_right(values, 0.0)
            self.zeros += at
        _sorted_buckets(self.buckets, values, at, scale)

    def add_set(self, count: float, total: float, minimum: float, maximum: float) -> None:
        """A statistic set (PutMetricData's StatisticValues): percentiles stay
        available only if it stands for one value, or for values all equal."""
        if count <= 0:
            return
        if minimum == maximum and count == int(count):
            self.add(minimum, int(count))
            self.sum += total - minimum * count  # the set's own sum, exactly
            return
        self.count += count
        self.sum += total
        self.min = min(self.min, minimum)
        self.max = max(self.max, maximum)
        self.buckets = None

    def merge(self, other: "Stats") -> "Stats":
        """Add ``other``'s values to these; returns self (coarse if either is)."""
        if other.shift != self.shift:
            return self._merge_coarse(other)
        self.count += other.count
        self.sum += other.sum
        if other.min < self.min:
            self.min = other.min
        if other.max > self.max:
            self.max = other.max
        if self.buckets is None or other.buckets is None:
            self.buckets = None
        else:
            self.zeros += other.zeros
            buckets = self.buckets
            for index, n in other.buckets.items():
                buckets[index] = buckets.get(index, 0) + n
        return self

    def _merge_coarse(self, other: "Stats") -> "Stats":
        """``merge`` of statistics whose buckets differ in coarseness: the finer made as coarse first."""
        if self.shift < other.shift:
            if self.buckets is not None:
                self.buckets = _coarsened(self.buckets, other.shift - self.shift)
            self.__class__ = type(other)
        else:
            other = other.copy()
            if other.buckets is not None:
                other.buckets = _coarsened(other.buckets, self.shift - other.shift)
            other.__class__ = type(self)
        return self.merge(other)

    def copy(self) -> "Stats":
        return type(self)().merge(self)

    @property
    def average(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def statistic(self, name: str) -> float | None:
        """SampleCount, Sum, Minimum, Maximum, Average, or a percentile
        ``pNN``; None when not available (no values, or percentiles
        unavailable)."""
        if not self.count:
            return None
        if name == "SampleCount":
            return self.count
        if name == "Sum":
            return self.sum
        if name == "Minimum":
            return self.min
        if name == "Maximum":
            return self.max
        if name == "Average":
            return self.sum / self.count
        return self.percentile(float(name[1:]))

    def percentile(self, p: float) -> float | None:
        """The value below which ``p`` percent of the values fall (nearest
        rank over the histogram), or None when percentiles are unavailable."""
        if self.buckets is None or not self.count:
            return None
        total = self.zeros + sum(self.buckets.values())
        if total <= 0:
            return None
        if p >= 100:
            return self.max
        if p <= 0:
            return self.min
        rank = max(1, math.ceil(p / 100 * total))
        seen = self.zeros
        if seen >= rank:
            return max(0.0, self.min)
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(max(bucket_value(index, self.shift), self.min), self.max)
        return self.max

    def cumulative(self, bounds) -> list[int]:
        """How many values are <= each of ``bounds`` (sorted), as far as the
        buckets tell (a bucket counts under a bound its upper edge does not
        pass): a Prometheus histogram's buckets.  Empty when percentiles are
        unavailable."""
        if self.buckets is None:
            return []
        ordered = sorted(self.buckets.items())
        out, seen, at = [], self.zeros, 0
        for bound in bounds:
            while at < len(ordered) and bucket_upper(ordered[at][0], self.shift) <= bound * (1 + 1e-12):
                seen += ordered[at][1]
                at += 1
            out.append(seen)
        return out

    # -- stored form -------------------------------------------------------------------------

    def encode(self) -> bytes:
        out = bytearray(_HEADER.pack(self.count, self.sum, self.min, self.max,
                                     (_PERCENTILES | (_COARSE if self.shift else 0)) if self.buckets is not None
                                     else 0))
        if self.buckets is not None:
            _varint(out, self.zeros)
            _varint(out, len(self.buckets))
            previous = 0
            append, buckets = out.append, self.buckets
            for index in sorted(buckets):  # (most numbers take one byte: appended without a call)
                delta = index - previous
                zigzag = (delta << 1) ^ (delta >> 63)
                if zigzag < 0x80:
                    append(zigzag)
                else:
                    _varint(out, zigzag)
                n = buckets[index]
                if n < 0x80:
                    append(n)
                else:
                    _varint(out, n)
                previous = index
        return bytes(out)

    @classmethod
    def decode(cls, raw) -> "Stats":
        raw = bytes(raw)
        stats = cls()
        stats.count, stats.sum, stats.min, stats.max, flags = _HEADER.unpack_from(raw)
        if flags & _COARSE:
            stats.__class__ = CoarseStats
        if not flags & _PERCENTILES:
            stats.buckets = None
            return stats
        at = _HEADER.size
        stats.zeros, at = _read_varint(raw, at)
        n, at = _read_varint(raw, at)
        buckets = stats.buckets
        index = 0
        for _ in range(n):  # (a byte under 0x80 is a whole number: read without a call)
            zigzag = raw[at]
            if zigzag < 0x80:
                at += 1
            else:
                zigzag, at = _read_varint(raw, at)
            index += (zigzag >> 1) ^ -(zigzag & 1)
            count = raw[at]
            if count < 0x80:
                at += 1
            else:
                count, at = _read_varint(raw, at)
            buckets[index] = count
        return stats


class CoarseStats(Stats):
    """Stats whose buckets are coarse (``shift`` 1): what the sealed periods
    of the five-minute and hourly levels keep.  Values added to it are
    bucketed at 2% and then coarsened."""

    __slots__ = ()
    shift = 1

    def add(self, value: float, times: int = 1) -> None:
        fine = Stats()
        fine.add(value, times)
        self.merge(fine)

    def add_values(self, values: list, scale: float = 1.0) -> None:
        fine = Stats()
        fine.add_values(values, scale)
        self.merge(fine)

    def add_set(self, count: float, total: float, minimum: float, maximum: float) -> None:
        fine = Stats()
        fine.add_set(count, total, minimum, maximum)
        self.merge(fine)


def _coarsened(buckets: dict, shift: int) -> dict:
    out: dict[int, int] = {}
    for index, n in buckets.items():
        index = -((-index) >> shift)
        out[index] = out.get(index, 0) + n
    return out


#: The statistics a stored period's header answers, without its histogram.
HEADER_STATISTICS = ("SampleCount", "Sum", "Minimum", "Maximum", "Average")


def _sorted_buckets(buckets: dict, values: list, at: int, scale: float) -> None:
    """Add the positive ``values[at:]`` (sorted, each times ``scale``) to
    ``buckets``: per bucket, a bisection of the bounds table for its index
    and one of the values for where it ends."""
    n = len(values)
    while at < n:
        value = values[at] * scale
        index = bucket_of(value)
        if _LOW < index <= _HIGH:
            end = bisect_right(values, _UPPER[index - _LOW] / scale, at + 1)
            # the bound, divided back, may round either way: the values it
            # covers are checked times scale, as ``add`` would bucket them
            while end > at + 1 and values[end - 1] * scale > _UPPER[index - _LOW]:
                end -= 1
            while end < n and values[end] * scale <= _UPPER[index - _LOW]:
                end += 1
        else:
            end = at + 1
        buckets[index] = buckets.get(index, 0) + end - at
        at = end


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_varint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
