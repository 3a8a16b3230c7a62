"""Columns of periods, and sealed blocks: many periods of one series as one stored value.

A stored period (``shoal.metrics.stats.Stats.encode``) costs its key, a
33-byte header and LMDB's node overhead, on leaf pages that each series
fills only half (issue 17 measured 220 bytes per 1-minute point).  Once a
period can no longer be written by the recorder, the roll-up
(``shoal.metrics.retention``) seals it into its series' *block*: one value
per series, level and span of time (``shoal.metrics.store.BLOCK_SPANS``),
holding every period of that span as columns (version 3):

* the period's slot in the block (its start less the block's, over the
  level's period), delta-coded;
* SampleCount, Sum, Minimum and Maximum, each as integers when every value
  of the block is one, as half-integers when every value times two is one
  (consumed read units), as integers of 10**-decimals when the series
  allows rounding (``decimals``: latencies of AWS/DynamoDB, to the
  microsecond, ``shoal.metrics.store.block_decimals``), else as doubles;
  integers as they are or delta-coded, whichever zstd makes smaller;
* whether each period has percentiles (a bit), its zero count;
* the histograms: a table of counts, bucket by period (one bucket's counts
  over the block's periods, then the next bucket's), as they are or, for
  the five-minute and hourly levels, as differences from what the block's
  bucket totals predict for each period (``_predicted``), whichever is
  smaller; a table too large (``_DENSE_CELLS``) is kept as compressed rows
  (each bucket's index as a step from the one before, and its count).

Integer columns take the narrowest of 1, 2, 4 or 8 bytes that holds them,
the lowest byte of every value first, then the next (so that the high
bytes, mostly alike, come together); the columns up to the histograms,
then the histograms, are compressed with zstd as two frames (level 3), so
that a read without percentiles decompresses only the first.

What a block may round, and by how much: Sum, Minimum and Maximum of
latencies to the microsecond (0.5 us at most; Shoal measures no finer),
and the buckets of the five-minute and hourly levels, joined in pairs
(``shift`` 1, ``shoal.metrics.stats.CoarseStats``), so that a percentile
read from them is within 4% of a value the metric received instead of 2%.
Everything else is what the periods held (a Sum over several periods may
differ in its last bit, as numpy adds them in another order).  Blocks of
version 2 (exact doubles, 2% buckets at every level, histograms as
compressed rows) are still read, and written anew as version 3 when the
roll-up next merges into them or moves them.

``Columns`` is the in-memory form of any set of periods (a block, stored
periods not yet sealed, or the result of grouping them into a request's
periods): numpy arrays, so that a read groups and evaluates thousands of
periods with a few vectorised calls instead of an object per period.  Each
row knows how coarse its buckets are; a period grouped from rows of both
kinds is coarse (its 2% buckets joined in pairs), one made of minutes only
keeps its 2% buckets.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from shoal.metrics.stats import _HEADER, _PERCENTILES, CoarseStats, Stats, bucket_value

VERSION = 3
#: version, base (epoch s), period (s), periods, buckets, first and last period, size of the first frame;
#: then (version 3) a byte: how coarse the buckets are
_BLOCK_HEADER = struct.Struct(">BIIIIIII")
_INT_CODES = ((1, np.int8), (2, np.int16), (4, np.int32), (8, np.int64))
_DTYPES = {code: np.dtype(dtype).newbyteorder("<") for code, dtype in _INT_CODES}
_INTS, _HALVES, _DOUBLES, _DECIMAL = 0, 1, 2, 3  # how a float column is stored
_DELTA = 0x10  # (version 3) the integers of a float column are delta-coded
_DENSE, _SPARSE, _PREDICTED = 0, 1, 2  # (version 3) how the histograms are laid out
_EXACT = 2.0 ** 52
_EMPTY_I = np.zeros(0, np.int64)
_EMPTY_F = np.zeros(0, np.float64)
#: ``Stats.encode``'s header (``shoal.metrics.stats._HEADER``) as a numpy record, to read many at once
_HEADER_DTYPE = np.dtype([("count", ">f8"), ("sum", ">f8"), ("min", ">f8"), ("max", ">f8"), ("flags", "u1")])
_COMPRESSOR = zstandard.ZstdCompressor(level=3)
_DECOMPRESSOR = zstandard.ZstdDecompressor()


class Columns:
    """Periods as arrays: ``at`` (period start, epoch s), ``count``,
    ``sum``, ``min``, ``max``, ``pct`` (percentiles available), ``zeros``,
    and the histograms in compressed-row form: the buckets of row ``i`` are
    ``hidx[hoff[i]:hoff[i + 1]]`` (indices, ascending) with counts ``hcnt``.
    ``hoff`` is None when the histograms were not read."""

    __slots__ = ("at", "count", "sum", "min", "max", "pct", "zeros", "hoff", "hidx", "hcnt", "shift", "dense")

    def __init__(self, at, count, total, low, high, pct, zeros, hoff=None, hidx=None, hcnt=None,
                 shift: int = 0) -> None:
        self.at, self.count, self.sum, self.min, self.max = at, count, total, low, high
        self.pct, self.zeros, self.hoff, self.hidx, self.hcnt = pct, zeros, hoff, hidx, hcnt
        # how coarse each row's buckets are (``shoal.metrics.stats.CoarseStats``): a row's own, so that
        # periods of minutes read beside coarser ones keep their 2% buckets
        self.shift = np.full(len(at), shift, np.uint8) if isinstance(shift, int) else shift
        # (``decode(..., dense=True)``) the histograms as stored instead: (first bucket index, a table of
        # counts, bucket by period); ``sparse()`` turns them into the compressed rows above
        self.dense = None

    def __len__(self) -> int:
        return len(self.at)

    @classmethod
    def empty(cls, histograms: bool = True) -> "Columns":
        return cls(_EMPTY_I, _EMPTY_F, _EMPTY_F, _EMPTY_F, _EMPTY_F, np.zeros(0, bool), _EMPTY_I,
                   np.zeros(1, np.int64) if histograms else None, _EMPTY_I if histograms else None,
                   _EMPTY_I if histograms else None)

    @classmethod
    def from_stats(cls, items) -> "Columns":
        """``[(period start, Stats)]`` as columns (any order)."""
        items = list(items)
        n = len(items)
        shift = np.fromiter((s.shift for _, s in items), np.uint8, n)
        at = np.fromiter((a for a, _ in items), np.int64, n)
        count = np.fromiter((s.count for _, s in items), np.float64, n)
        total = np.fromiter((s.sum for _, s in items), np.float64, n)
        low = np.fromiter((s.min for _, s in items), np.float64, n)
        high = np.fromiter((s.max for _, s in items), np.float64, n)
        pct = np.fromiter((s.buckets is not None for _, s in items), bool, n)
        zeros = np.fromiter((s.zeros if s.buckets is not None else 0 for _, s in items), np.int64, n)
        hoff = np.zeros(n + 1, np.int64)
        indices, counts = [], []
        for i, (_, stats) in enumerate(items):
            buckets = stats.buckets
            if buckets:
                ordered = sorted(buckets.items())
                indices.extend(k for k, _ in ordered)
                counts.extend(c for _, c in ordered)
            hoff[i + 1] = len(indices)
        return cls(at, count, total, low, high, pct, zeros, hoff, np.array(indices, np.int64),
                   np.array(counts, np.int64), shift)

    @classmethod
    def from_stored(cls, rows, histograms: bool) -> "Columns":
        """``[(period start, Stats.encode form)]`` as columns; the histograms
        are decoded only when ``histograms`` (the header answers the rest)."""
        if histograms:
            return cls.from_stats([(at, Stats.decode(raw)) for at, raw in rows])
        n = len(rows)
        if not n:
            return cls.empty(False)
        at = np.fromiter((a for a, _ in rows), np.int64, n)
        header = np.frombuffer(b"".join([raw[:_HEADER.size] for _, raw in rows]), _HEADER_DTYPE, n)
        return cls(at, header["count"].astype(np.float64), header["sum"].astype(np.float64),
                   header["min"].astype(np.float64), header["max"].astype(np.float64),
                   (header["flags"] & _PERCENTILES) != 0, np.zeros(n, np.int64))

    def stats(self, i: int) -> Stats:
        """Row ``i`` as a Stats (a CoarseStats if the buckets are coarse)."""
        stats = CoarseStats() if self.shift[i] else Stats()
        stats.count, stats.sum = float(self.count[i]), float(self.sum[i])
        stats.min, stats.max = float(self.min[i]), float(self.max[i])
        if not self.pct[i]:
            stats.buckets = None
            return stats
        stats.zeros = int(self.zeros[i])
        if self.hoff is not None:
            a, b = self.hoff[i], self.hoff[i + 1]
            stats.buckets = dict(zip(self.hidx[a:b].tolist(), self.hcnt[a:b].tolist()))
        elif self.dense is not None:  # one period of a table: its column
            low, table = self.dense
            column = table[:, i]
            filled = np.flatnonzero(column)
            stats.buckets = dict(zip((filled + low).tolist(), column[filled].tolist()))
        return stats

    def rows(self) -> list[tuple[int, Stats]]:
        return [(int(self.at[i]), self.stats(i)) for i in range(len(self.at))]

    def window(self, start: int, end, copy: bool = False) -> "Columns":
        """The rows starting in [start, end) of columns in time order, as
        views, or with ``copy`` as arrays of their own: a read that keeps
        the windows of many blocks until it groups them (100 tables' three
        hours: a few hundred rows of each day block) then holds only those
        rows, not every block's whole arrays (some 10 MiB at its peak)."""
        i, j = np.searchsorted(self.at, (start, end), side="left").tolist()
        if i == 0 and j == len(self.at):
            return self
        take = (lambda column: column[i:j].copy()) if copy else (lambda column: column[i:j])
        hoff = hidx = hcnt = None
        if self.hoff is not None:
            a, b = int(self.hoff[i]), int(self.hoff[j])
            hoff, hidx, hcnt = self.hoff[i:j + 1] - a, self.hidx[a:b], self.hcnt[a:b]
            if copy:
                hidx, hcnt = hidx.copy(), hcnt.copy()
        out = Columns(take(self.at), take(self.count), take(self.sum), take(self.min), take(self.max),
                      take(self.pct), take(self.zeros), hoff, hidx, hcnt, take(self.shift))
        if self.dense is not None:
            table = self.dense[1][:, i:j]
            out.dense = (self.dense[0], table.copy() if copy else table)
        return out

    def sparse(self) -> "Columns":
        """These columns with their histograms as compressed rows (themselves if they are)."""
        if self.dense is None:
            return self
        low, table = self.dense
        width = table.shape[0]
        by_period = np.ascontiguousarray(table.T).reshape(-1)
        cells = np.flatnonzero(by_period)
        rows = cells // width
        hoff = np.searchsorted(rows, np.arange(len(self) + 1), side="left").astype(np.int64)
        return Columns(self.at, self.count, self.sum, self.min, self.max, self.pct, self.zeros, hoff,
                       cells % width + low, by_period[cells].astype(np.int64), self.shift)

    def select(self, keep) -> "Columns":
        """The rows where the boolean array ``keep`` is true."""
        if keep.all():
            return self
        hoff = hidx = hcnt = None
        if self.hoff is not None:
            lengths = np.diff(self.hoff)
            entry_keep = np.repeat(keep, lengths)
            hidx, hcnt = self.hidx[entry_keep], self.hcnt[entry_keep]
            hoff = np.concatenate(([0], np.cumsum(lengths[keep])))
        return Columns(self.at[keep], self.count[keep], self.sum[keep], self.min[keep], self.max[keep],
                       self.pct[keep], self.zeros[keep], hoff, hidx, hcnt, self.shift[keep])

    def headers(self) -> "Columns":
        """These rows without their histograms."""
        return Columns(self.at, self.count, self.sum, self.min, self.max, self.pct, self.zeros, shift=self.shift)


def to_shift(cols: Columns, shift) -> Columns:
    """``cols`` with each row's buckets at least as coarse as ``shift`` (a number, or one per row):
    2% buckets joined in pairs, and the entries a row then holds twice added up."""
    target = np.maximum(cols.shift, shift).astype(np.uint8)
    if (target == cols.shift).all():
        return cols
    if cols.hoff is None or not len(cols.hidx):
        return Columns(cols.at, cols.count, cols.sum, cols.min, cols.max, cols.pct, cols.zeros, cols.hoff,
                       cols.hidx, cols.hcnt, target)
    lengths = np.diff(cols.hoff)
    rows = np.repeat(np.arange(len(cols)), lengths)
    by = np.repeat(target - cols.shift, lengths).astype(np.int64)
    hoff, hidx, hcnt = _merge_buckets(rows, -((-cols.hidx) >> by), cols.hcnt, len(cols))
    return Columns(cols.at, cols.count, cols.sum, cols.min, cols.max, cols.pct, cols.zeros, hoff, hidx, hcnt, target)


def concat(parts: list) -> Columns:
    """The rows of every part, in order (histograms kept only if every part has them)."""
    parts = [part.sparse() for part in parts if len(part)]
    if not parts:
        return Columns.empty()
    if len(parts) == 1:
        return parts[0]
    histograms = all(part.hoff is not None for part in parts)
    hoff = hidx = hcnt = None
    if histograms:
        offsets, at = [np.zeros(1, np.int64)], 0
        for part in parts:
            offsets.append(part.hoff[1:] + at)
            at += part.hoff[-1]
        hoff = np.concatenate(offsets)
        hidx = np.concatenate([part.hidx for part in parts])
        hcnt = np.concatenate([part.hcnt for part in parts])
    return Columns(*(np.concatenate([getattr(part, name) for part in parts])
                     for name in ("at", "count", "sum", "min", "max", "pct", "zeros")), hoff, hidx, hcnt,
                   np.concatenate([part.shift for part in parts]))


def group(cols: Columns, keys) -> Columns:
    """Rows with equal ``keys`` (an int64 array, one per row; None: their
    ``at``) merged as ``Stats.merge`` merges them: the result has one row per
    distinct key, in key order, ``at`` being the key."""
    if keys is None:
        keys = cols.at
    n = len(cols)
    if n == 0:
        return Columns.empty(cols.hoff is not None)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    at = ordered[starts]
    if len(starts) == n and (order == np.arange(n)).all():
        return Columns(at, cols.count, cols.sum, cols.min, cols.max, cols.pct, cols.zeros,
                       cols.hoff, cols.hidx, cols.hcnt, cols.shift)
    count = np.add.reduceat(cols.count[order], starts)
    total = np.add.reduceat(cols.sum[order], starts)
    low = np.minimum.reduceat(cols.min[order], starts)
    high = np.maximum.reduceat(cols.max[order], starts)
    pct = np.minimum.reduceat(cols.pct[order].astype(np.uint8), starts).astype(bool)
    zeros = np.add.reduceat(cols.zeros[order], starts) * pct
    shift = np.maximum.reduceat(cols.shift[order], starts)  # a period with coarse buckets in it is coarse
    hoff = hidx = hcnt = None
    if cols.hoff is not None:
        new_row = np.empty(n, np.int64)
        new_row[order] = np.cumsum(np.concatenate(([0], (ordered[1:] != ordered[:-1]).astype(np.int64))))
        rows = np.repeat(new_row, np.diff(cols.hoff))
        keep = pct[rows]
        hidx = _coarsened(cols.hidx, np.repeat(shift[new_row] - cols.shift, np.diff(cols.hoff)))
        hoff, hidx, hcnt = _merge_buckets(rows[keep], hidx[keep], cols.hcnt[keep], len(at))
    return Columns(at, count, total, low, high, pct, zeros, hoff, hidx, hcnt, shift)


def _coarsened(hidx, by) -> np.ndarray:
    """Bucket indices made ``by`` (one per entry) coarser: ceil(index / 2**by)."""
    if not len(hidx) or not by.any():
        return hidx
    return -((-hidx) >> by.astype(np.int64))


_DENSE_CELLS = 1 << 22


def _merge_buckets(rows, idx, cnt, n: int) -> tuple:
    """Histogram entries (row, bucket index, count) with equal (row, index)
    added up, as compressed rows for ``n`` rows.  Bucket indices span a
    few hundred values, so a dense (row, index) table counted by
    ``bincount`` does it in linear time; a sort when the table would be
    large."""
    if not len(rows):
        return np.zeros(n + 1, np.int64), _EMPTY_I, _EMPTY_I
    low = int(idx.min())
    width = int(idx.max()) - low + 1
    if n * width <= _DENSE_CELLS:
        table = np.bincount(rows * width + (idx - low), weights=cnt, minlength=n * width)
        cells = np.flatnonzero(table)
        counts = table[cells].astype(np.int64)
        rows, idx = cells // width, cells % width + low
    else:
        sort = np.lexsort((idx, rows))
        rows, idx, cnt = rows[sort], idx[sort], cnt[sort]
        first = np.flatnonzero(np.concatenate(([True], (rows[1:] != rows[:-1]) | (idx[1:] != idx[:-1]))))
        counts = np.add.reduceat(cnt, first)
        rows, idx = rows[first], idx[first]
    return np.searchsorted(rows, np.arange(n + 1), side="left").astype(np.int64), idx, counts


# ---------------------------------------------------------------- statistics of many periods at once


def statistic(cols: Columns, name: str) -> np.ndarray:
    """Statistic ``name`` (SampleCount, Sum, Minimum, Maximum, Average or
    ``pNN``) of every row, as ``Stats.statistic`` gives it, NaN where it
    gives None."""
    present = cols.count != 0
    if name == "SampleCount":
        out = cols.count.copy()
    elif name == "Sum":
        out = cols.sum.copy()
    elif name == "Minimum":
        out = cols.min.copy()
    elif name == "Maximum":
        out = cols.max.copy()
    elif name == "Average":
        with np.errstate(divide="ignore", invalid="ignore"):
            out = cols.sum / np.where(present, cols.count, 1.0)
    else:
        return percentile(cols, float(name[1:]))
    out[~present] = np.nan
    return out


def _answered_without_buckets(cols: Columns, total, p: float, out: np.ndarray):
    """Fill ``out`` where percentile ``p`` needs no bucket (rows holding
    ``total`` values: p at or past 0 or 100 is the Minimum or Maximum, a rank
    within the zeros is 0); (the rows left to find in their buckets, every
    row's rank), or (None, None) when none is left."""
    valid = cols.pct & (cols.count != 0) & (total > 0)
    if p >= 100:
        out[valid] = cols.max[valid]
        return None, None
    if p <= 0:
        out[valid] = cols.min[valid]
        return None, None
    rank = np.maximum(1, np.ceil(p / 100 * total))
    from_zeros = valid & (cols.zeros >= rank)
    out[from_zeros] = np.maximum(0.0, cols.min[from_zeros])
    return np.flatnonzero(valid & ~from_zeros), rank


def percentile(cols: Columns, p: float) -> np.ndarray:
    """``Stats.percentile`` of every row (nearest rank over the buckets,
    clamped to [Minimum, Maximum]); NaN where percentiles are unavailable."""
    n = len(cols)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    lengths = np.diff(cols.hoff)
    rows = np.repeat(np.arange(n), lengths)
    in_buckets = np.bincount(rows, weights=cols.hcnt, minlength=n) if len(rows) else np.zeros(n)
    rest, rank = _answered_without_buckets(cols, cols.zeros + in_buckets, p, out)
    if rest is not None and len(rest):
        seen = np.concatenate(([0], np.cumsum(cols.hcnt)))  # seen[k]: counts before entry k
        targets = seen[cols.hoff[rest]] + (rank[rest] - cols.zeros[rest])
        found = np.searchsorted(seen[1:], targets, side="left")
        ends = cols.hoff[rest + 1]
        for row, at, end in zip(rest.tolist(), found.tolist(), ends.tolist()):
            if at >= end:
                out[row] = cols.max[row]
            else:
                out[row] = min(max(bucket_value(int(cols.hidx[at]), int(cols.shift[row])), float(cols.min[row])),
                               float(cols.max[row]))
    return out


def grouped_percentile(parts: list, start: int, period: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """(period starts, percentile ``p`` of each) of the rows of ``parts``
    (columns with histograms) grouped into periods of ``period`` seconds
    from ``start``: ``percentile(group(concat(parts), ...), p)`` without
    building the merged histograms, which for a week of minutes are half a
    million (period, bucket) entries a series.  The counts go straight into a
    dense table of periods by bucket index, part by part (a block's own table
    summed over each period's columns, ``bincount`` for compressed rows),
    and each period's rank is found in its row's running sum."""
    parts = [part for part in parts if len(part)]
    headers = concat([part.headers() for part in parts]) if parts else Columns.empty(False)
    grouped = group(headers, start + (headers.at - start) // period * period)
    n = len(grouped)
    if n == 0:
        return grouped.at, percentile(_with_no_buckets(grouped), p)
    entries, tables = [], []  # a period holding coarse buckets has its 2% buckets joined in pairs too
    for part in parts:
        rows = np.searchsorted(grouped.at, start + (part.at - start) // period * period)
        by = grouped.shift[rows] - part.shift
        if part.dense is not None and not by.any():
            starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
            low, table = part.dense
            tables.append((rows[starts], low, np.add.reduceat(table, starts, axis=1, dtype=np.int64).T))
            continue
        part = part.sparse()
        lengths = np.diff(part.hoff)
        if len(part.hidx):
            entries.append((np.repeat(rows, lengths), _coarsened(part.hidx, np.repeat(by, lengths)), part.hcnt))
    if not entries and not tables:
        return grouped.at, percentile(_with_no_buckets(grouped), p)
    low = min([int(idx.min()) for _, idx, _ in entries] + [at for _, at, _ in tables])
    width = max([int(idx.max()) for _, idx, _ in entries] + [at + t.shape[1] - 1 for _, at, t in tables]) - low + 1
    if n * width > _DENSE_CELLS:
        whole = concat(parts)
        return grouped.at, percentile(group(whole, start + (whole.at - start) // period * period), p)
    table = np.zeros(n * width)
    for rows, idx, cnt in entries:
        table += np.bincount(rows * width + (idx - low), weights=cnt, minlength=n * width)
    table = table.reshape(n, width)
    for rows, at, sums in tables:
        table[rows, at - low:at - low + sums.shape[1]] += sums
    return grouped.at, _dense_percentile(grouped, table, low, p)


def _with_no_buckets(cols: Columns) -> Columns:
    n = len(cols)
    return Columns(cols.at, cols.count, cols.sum, cols.min, cols.max, cols.pct, cols.zeros,
                   np.zeros(n + 1, np.int64), _EMPTY_I, _EMPTY_I, cols.shift)


def _dense_percentile(cols: Columns, table, low: int, p: float) -> np.ndarray:
    """``percentile`` of rows whose buckets are the rows of a dense table
    (column j: bucket index ``low + j``)."""
    n = len(cols)
    out = np.full(n, np.nan)
    seen = np.cumsum(table, axis=1)
    rest, rank = _answered_without_buckets(cols, cols.zeros + seen[:, -1], p, out)
    if rest is not None and len(rest):
        need = (rank - cols.zeros)[rest]
        reached = seen[rest] >= need[:, None]
        found = reached.argmax(axis=1)
        for row, column, hit in zip(rest.tolist(), found.tolist(), reached[np.arange(len(rest)), found].tolist()):
            if not hit:
                out[row] = cols.max[row]
            else:
                out[row] = min(max(bucket_value(low + column, int(cols.shift[row])), float(cols.min[row])),
                               float(cols.max[row]))
    return out


# ---------------------------------------------------------------- the stored form of a block


def _put_ints(out: list, values, planes: bool = False) -> None:
    """An integer column: a byte naming its width, then its values (little-endian); with ``planes``, the
    lowest bytes of every value first, then the next: the high bytes, mostly alike, come together."""
    if len(values) == 0:
        out.append(b"\x01")
        return
    low, high = int(values.min()), int(values.max())
    for code, dtype in _INT_CODES:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            out.append(bytes((code,)))
            raw = values.astype(_DTYPES[code])
            if planes and code > 1:
                out.append(np.ascontiguousarray(raw.view(np.uint8).reshape(-1, code).T).tobytes())
            else:
                out.append(raw.tobytes())
            return


def _get_ints(raw: bytes, at: int, n: int, planes: bool = False, widen: bool = True) -> tuple[np.ndarray, int]:
    """An integer column as int64 (``widen``) or as the narrow type it is stored in (read-only)."""
    code = raw[at]
    dtype = _DTYPES[code]
    if planes and code > 1:
        grouped = np.frombuffer(raw, np.uint8, n * code, at + 1).reshape(code, n)
        values = np.ascontiguousarray(grouped.T).view(dtype).reshape(n)
    else:
        values = np.frombuffer(raw, dtype, n, at + 1)
    return (values.astype(np.int64) if widen else values), at + 1 + n * code


def _delta(values) -> np.ndarray:
    return np.diff(values, prepend=np.int64(0)) if len(values) else values


def _put_floats(out: list, values, decimals: int | None = None) -> None:
    """A float column, version 3: integers (or half-integers, or, given ``decimals``, the values rounded
    to that many decimals, as integers of that unit) as they are or delta-coded, whichever zstd makes
    smaller; else doubles with their bytes grouped by significance."""
    finite = np.isfinite(values).all()
    negative_zero = bool((np.signbit(values) & (values == 0)).any())
    if finite and not negative_zero and (np.abs(values) < _EXACT).all():
        mode, ints = None, None
        if (values == np.floor(values)).all():
            mode, ints = _INTS, values.astype(np.int64)
        elif ((doubled := values * 2) == np.floor(doubled)).all():
            mode, ints = _HALVES, doubled.astype(np.int64)
        elif decimals is not None and (np.abs(values) * 10.0 ** decimals < _EXACT).all():
            mode, ints = _DECIMAL, np.rint(values * 10.0 ** decimals).astype(np.int64)
        if mode is not None:
            plain, delta = [], []
            _put_ints(plain, ints, True)
            _put_ints(delta, _delta(ints), True)
            plain, delta = b"".join(plain), b"".join(delta)
            if len(_COMPRESSOR.compress(delta)) < len(_COMPRESSOR.compress(plain)):
                mode, body = mode | _DELTA, delta
            else:
                body = plain
            out.append(bytes((mode, decimals or 0)))
            out.append(body)
            return
    out.append(bytes((_DOUBLES, 0)))
    out.append(np.ascontiguousarray(values.astype("<f8").view(np.uint8).reshape(-1, 8).T).tobytes())


def _get_floats(raw: bytes, at: int, n: int, version: int = VERSION) -> tuple[np.ndarray, int]:
    mode = raw[at]
    at += 1
    if version >= 3:
        decimals = raw[at]
        at += 1
    else:  # version 2: integers and half-integers were always delta-coded
        decimals = 0
        if mode != _DOUBLES:
            mode |= _DELTA
    if mode == _DOUBLES:
        grouped = np.frombuffer(raw, np.uint8, 8 * n, at).reshape(8, n)
        return np.ascontiguousarray(grouped.T).view("<f8").reshape(n).astype(np.float64), at + 8 * n
    ints, at = _get_ints(raw, at, n, version >= 3)
    if mode & _DELTA:
        ints = np.cumsum(ints)
    values = ints.astype(np.float64)
    kind = mode & ~_DELTA
    if kind == _HALVES:
        return values / 2, at
    if kind == _DECIMAL:
        return values / 10.0 ** decimals, at
    return values, at


def _in_buckets(count, zeros, pct) -> np.ndarray:
    """How many values each period holds in its buckets, from its header: SampleCount less the zeros
    (none when percentiles are unavailable)."""
    return np.where(pct, count - zeros, 0).astype(np.int64)


def _expected(totals, in_buckets) -> np.ndarray:
    """The count a bucket would hold in each period if every period spread its values over the buckets as
    the whole block does: ``totals`` (per bucket, over the block) times the period's share, rounded, in
    integers (the decoder works it out exactly as the encoder did)."""
    whole = int(totals.sum())
    return (2 * totals[:, None] * in_buckets[None, :] + whole) // (2 * whole)


def _predicted(table, cols: Columns):
    """(the bucket totals, the zigzag residuals of the counts against ``_expected``, stored), or None when
    the headers do not give the periods' bucket counts or the products could overflow.  The residuals
    of a bucket are alike whatever the traffic of each period, where the counts follow it."""
    in_buckets = _in_buckets(cols.count, cols.zeros, cols.pct)
    totals = table.sum(axis=1)
    whole = int(totals.sum())
    if (not whole or not np.array_equal(table.sum(axis=0), in_buckets)
            or 2 * int(totals.max()) * int(in_buckets.max()) + whole >= 2**62):
        return None
    residual = (table - _expected(totals, in_buckets)).reshape(-1)
    out: list = []
    _put_ints(out, (residual << 1) ^ (residual >> 63), True)
    return totals, b"".join(out)


def encode(cols: Columns, base: int, period: int, decimals: int | None = None, shift: int = 0,
           predict: bool = False) -> bytes:
    """A block's stored form: its rows (periods of the span from ``base``,
    with histograms, as compressed rows or as a table, ``Columns.dense``) as
    compressed columns.  ``decimals``: Sum, Minimum and Maximum may be
    rounded to that many decimals (3 for latencies in milliseconds: a
    microsecond); ``shift``: the buckets are made that coarse
    (``shoal.metrics.stats.CoarseStats``; never finer than they are);
    ``predict``: try the histograms as differences from what the block's
    bucket totals predict (``_predicted``), kept if zstd makes them smaller
    (it does for periods of many values: five minutes, an hour)."""
    if cols.dense is not None and ((cols.shift < shift).any() or (len(cols) and (cols.shift != cols.shift[0]).any())):
        cols = cols.sparse()
    if cols.dense is None:
        if len(cols) > 1 and not (cols.at[1:] > cols.at[:-1]).all():
            cols = group(cols, None)
        cols = to_shift(cols, shift)
        if len(cols) and (cols.shift != cols.shift[0]).any():
            cols = to_shift(cols, int(cols.shift.max()))  # one coarseness a block
    n = len(cols)
    parts: list = []
    _put_ints(parts, _delta((cols.at - base) // period), True)
    _put_floats(parts, cols.count)
    for column in (cols.sum, cols.min, cols.max):
        _put_floats(parts, column, decimals)
    parts.append(np.packbits(cols.pct).tobytes())
    _put_ints(parts, cols.zeros, True)
    body: list = []
    table = None
    if cols.dense is not None:
        low, table = cols.dense
        m = int(np.count_nonzero(table))
    else:
        m = int(cols.hoff[-1])
        if m and n * (int(cols.hidx.max()) - int(cols.hidx.min()) + 1) <= _DENSE_CELLS:
            low = int(cols.hidx.min())
            width = int(cols.hidx.max()) - low + 1
            rows = np.repeat(np.arange(n), np.diff(cols.hoff))
            table = np.bincount((cols.hidx - low) * n + rows, weights=cols.hcnt,
                                minlength=width * n).astype(np.int64).reshape(width, n)
    if table is not None:
        # a table of buckets by period, a bucket's row of counts after the other: the counts of
        # a bucket from period to period are alike, and the buckets no period reached are runs of zeros
        width = table.shape[0]
        plain: list = []
        _put_ints(plain, table.reshape(-1), True)
        plain = b"".join(plain)
        layout, meta, body = _DENSE, b"", [plain]
        predicted = _predicted(table, cols) if predict else None
        if predicted is not None:  # whichever zstd makes smaller
            totals, residuals = predicted
            if len(_COMPRESSOR.compress(residuals)) < len(_COMPRESSOR.compress(plain)):
                layout, body = _PREDICTED, [residuals]
                meta = []
                _put_ints(meta, totals, True)
                meta = b"".join(meta)
        parts.append(struct.pack("<BiI", layout, low, width) + meta)
    else:
        lengths = np.diff(cols.hoff)
        parts.append(bytes((_SPARSE,)))
        _put_ints(parts, lengths, True)
        steps = _delta(cols.hidx)
        firsts = cols.hoff[:-1][lengths > 0]
        steps[firsts] = cols.hidx[firsts]
        _put_ints(body, steps, True)
        _put_ints(body, cols.hcnt, True)
    summary = _COMPRESSOR.compress(b"".join(parts))
    first, last = (int(cols.at[0]), int(cols.at[-1])) if n else (base, base)
    return (_BLOCK_HEADER.pack(VERSION, base, period, n, m, first, last, len(summary))
            + bytes((int(cols.shift[0]) if n else shift,))
            + summary + _COMPRESSOR.compress(b"".join(body)))


def appended(old: Columns, new: Columns) -> Columns | None:
    """The rows of ``old`` (decoded with its table, ``decode(..., dense=True)``) followed by those of
    ``new`` (compressed rows, distinct periods in time order, all after ``old``'s last), with one table
    of counts: what sealing the hour after a block's last does, without turning the block's table into
    compressed rows and back.  None when that does not hold (the caller merges them by grouping)."""
    if (old.dense is None or new.hoff is None or not len(old) or not len(new) or new.at[0] <= old.at[-1]
            or (len(new) > 1 and not (new.at[1:] > new.at[:-1]).all())):
        return None
    new = to_shift(new, int(old.shift[0]))
    if (new.shift != old.shift[0]).any():
        return None
    low, table = old.dense
    n_old, n = len(old), len(old) + len(new)
    if len(new.hidx):
        low_all = min(low, int(new.hidx.min()))
        high_all = max(low + table.shape[0] - 1, int(new.hidx.max()))
    else:
        low_all, high_all = low, low + table.shape[0] - 1
    width = high_all - low_all + 1
    if width * n > _DENSE_CELLS:
        return None
    # the table in the narrowest integer type that holds every count (a day of minutes is some 400,000
    # cells: as int64 the roll-up's largest allocation, 3 MiB a series, where the counts fit in 2 bytes)
    highest = max(int(table.max()) if table.size else 0, int(new.hcnt.max()) if len(new.hcnt) else 0)
    lowest = min(int(table.min()) if table.size else 0, int(new.hcnt.min()) if len(new.hcnt) else 0)
    dtype = next(t for _, t in _INT_CODES if np.iinfo(t).min <= lowest and highest <= np.iinfo(t).max)
    merged = np.zeros((width, n), dtype)
    merged[low - low_all:low - low_all + table.shape[0], :n_old] = table
    rows = np.repeat(np.arange(len(new)), np.diff(new.hoff))
    merged[new.hidx - low_all, n_old + rows] = new.hcnt
    out = Columns(*(np.concatenate((getattr(old, name), getattr(new, name)))
                    for name in ("at", "count", "sum", "min", "max", "pct", "zeros")),
                  shift=np.concatenate((old.shift, new.shift)))
    out.dense = (low_all, merged)
    return out


def block_first(raw) -> int:
    """The start of a stored block's first period, from its header."""
    return _BLOCK_HEADER.unpack_from(raw)[5]


def block_last(raw) -> int:
    """The start of a stored block's last period, from its header."""
    return _BLOCK_HEADER.unpack_from(raw)[6]


def decode(raw, histograms: bool = True, dense: bool = False) -> Columns:
    """A block's rows as columns, with their histograms if ``histograms``
    (the columns before them answer every statistic but percentiles);
    ``dense``: histograms stored as a table are returned as it
    (``Columns.dense``), which ``grouped_percentile`` adds up as it is.
    Blocks of version 2 (doubles kept as they were, 2% buckets at every
    level) are read as they are; the roll-up writes them anew in version 3
    when it next merges into them or moves them."""
    version, base, period, n, m, _first, _last, summary = _BLOCK_HEADER.unpack_from(raw)
    at = _BLOCK_HEADER.size
    shift = 0
    if version >= 3:
        shift = raw[at]
        at += 1
    body = _DECOMPRESSOR.decompress(bytes(raw[at:at + summary]))
    histogram_frame = at + summary
    planes = version >= 3
    slots, at = _get_ints(body, 0, n, planes)
    starts = (np.cumsum(slots) * period + base).astype(np.int64)
    count, at = _get_floats(body, at, n, version)
    total, at = _get_floats(body, at, n, version)
    low, at = _get_floats(body, at, n, version)
    high, at = _get_floats(body, at, n, version)
    size = (n + 7) // 8
    pct = np.unpackbits(np.frombuffer(body, np.uint8, size, at), count=n).astype(bool)
    at += size
    zeros, at = _get_ints(body, at, n, planes)
    if not histograms:
        return Columns(starts, count, total, low, high, pct, zeros, shift=shift)
    layout = body[at] if version >= 3 else _SPARSE
    at += 1 if version >= 3 else 0
    if layout in (_DENSE, _PREDICTED):
        bucket_low, width = struct.unpack_from("<iI", body, at)
        # the counts stay in their narrow type (a table of a day of minutes is some 200,000 of them)
        counts, _ = _get_ints(_DECOMPRESSOR.decompress(bytes(raw[histogram_frame:])), 0, width * n, True,
                              widen=layout == _PREDICTED)
        if layout == _PREDICTED:
            totals, _ = _get_ints(body, at + 8, width, True)
            zigzag = counts
            counts = ((zigzag >> 1) ^ -(zigzag & 1)) + _expected(totals, _in_buckets(count, zeros, pct)).reshape(-1)
        out = Columns(starts, count, total, low, high, pct, zeros, shift=shift)
        out.dense = (bucket_low, counts.reshape(width, n))
        return out if dense else out.sparse()
    if m == 0 and version >= 3:
        return Columns(starts, count, total, low, high, pct, zeros, np.zeros(n + 1, np.int64), _EMPTY_I, _EMPTY_I,
                       shift)
    lengths, at = _get_ints(body, at, n, planes)
    body = _DECOMPRESSOR.decompress(bytes(raw[histogram_frame:]))
    steps, at = _get_ints(body, 0, m, planes)
    hcnt, at = _get_ints(body, at, m, planes)
    hoff = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    # a row's first index is stored as is, the next as steps: a running sum restarted at each row
    running = np.cumsum(steps)
    filled = lengths > 0
    firsts = hoff[:-1][filled]
    hidx = running - np.repeat(running[firsts] - steps[firsts], lengths[filled]) if m else _EMPTY_I
    return Columns(starts, count, total, low, high, pct, zeros, hoff, hidx, hcnt, shift)


def coarsen(cols: Columns, period: int) -> Columns:
    """The rows merged into periods of ``period`` seconds (aligned to the epoch)."""
    return group(cols, cols.at - cols.at % period)

