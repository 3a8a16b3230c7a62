"""Sealing, roll-up and pruning of stored metrics, as CloudWatch keeps them.

Three moves, each in the transaction that deletes what it moved, so reads
never see a datum twice or miss it (``shoal.metrics.store``):

* **seal**: a stored period (``metrics/d/``) whose hour ended
  ``SEAL_AFTER_S`` ago is merged into its series' block of the level its
  age calls for (a minute younger than 15 days into the day's block of
  minutes; older data, such as periods written before blocks existed, into
  a five-minute or hourly block; data past 455 days is dropped), and its key
  deleted, with any hourly total of earlier writers (``metrics/h/``);
* **roll up**: a block of minutes whose whole span is older than 15 days is
  merged into five-minute periods of the next level's block and deleted;
  likewise five-minute blocks past 63 days into hours.  Data thus stays at
  the finer resolution up to one block span (a day of minutes, five days of
  five minutes) past CloudWatch's age, which changes no answer: reads of
  data that old take periods of the coarser resolution, which the finer
  periods add up to exactly;
* **prune**: an hourly block whose span ended 455 days ago is deleted, and
  one whose oldest hour is a day past 455 days is cut to the hours within.

The background job ``RollUp`` walks the series in key order, a bounded
amount of work per round (``ROUND_BUDGET``, in periods decoded or
written), its position kept in ``meta`` (``metrics/rollup``) in the same
transaction, so workers share the walk; a new walk starts at most once a
minute, so a series' recent hour is sealed within a few minutes of its end
(one block rewritten a series an hour).  A series with no data left and no
data for the whole retention is forgotten.
"""

from __future__ import annotations

import struct
import time
from typing import Callable

import numpy as np

from shoal.metrics import blocks
from shoal.metrics.blocks import Columns
from shoal.metrics.store import (
    BLOCK_SPANS,
    DAY,
    HOUR,
    HOUR_PREFIX,
    LEVELS,
    SEAL_AFTER_S,
    SERIES_PREFIX,
    TOTAL_PREFIX,
    block_base,
    block_key,
    block_range,
    data_range,
    decode_data_key,
    has_data,
    iter_series,
    merge_block,
    series_key,
)

ROLLUP_KEY = b"metrics/rollup"
_STARTED = struct.Struct(">d")  # when the walk started (epoch s), then the last series key done
PASS_INTERVAL_S = 60.0
ROUND_BUDGET = 20_000  # periods sealed, decoded or written per round


def seal_before(now: float) -> int:
    """Periods starting before this are sealed: the hour that ended ``SEAL_AFTER_S`` ago, and all before it."""
    return int((now - SEAL_AFTER_S) // HOUR * HOUR)


def level_for_age(start: int, now: float) -> int | None:
    """The level a period starting at ``start`` belongs to at ``now``; None past the retention."""
    for level, (_period, keep) in enumerate(LEVELS):
        if start >= now - keep:
            return level
    return None


def roll_up_series(txn, series_id: int, now: float, budget: int) -> int:
    """Seal, roll up and prune one series' periods as of ``now``, at most
    about ``budget`` periods' worth; returns how much it did (0: nothing
    to do)."""
    done = _seal(txn, series_id, now, budget)
    if done < budget:
        done += _roll_blocks(txn, series_id, now, budget - done)
    return done


def _seal(txn, series_id: int, now: float, budget: int) -> int:
    before = seal_before(now)
    rows: list[tuple[int, int, bytes, bytes]] = []  # (level, start, key, stored form)
    for level in range(len(LEVELS)):
        low, high = data_range(series_id, level, 0, before)
        for key, raw in txn.scan("meta", low, high):
            if len(rows) >= budget:
                break
            key = bytes(key)
            rows.append((level, decode_data_key(key)[2], key, bytes(raw)))
    if not rows:
        return 0
    for level, _start, key, _raw in rows:
        txn.delete("meta", key)
    hours = {start - start % HOUR for level, start, _key, _raw in rows if level == 0}
    for hour in hours:  # earlier writers' hourly totals: summaries of minutes that now move
        txn.delete("meta", HOUR_PREFIX + struct.pack(">II", series_id, hour))
    targets: dict[int, list] = {}
    for level, start, _key, raw in rows:
        target = level_for_age(start, now)
        if target is None:
            continue  # past the retention: dropped
        targets.setdefault(max(level, target), []).append((start, raw))
    done = len(rows)
    for level, stored in targets.items():
        cols = blocks.coarsen(Columns.from_stored(stored, True), LEVELS[level][0])
        done += _merge_into_blocks(txn, series_id, level, cols)
    return done


def _merge_into_blocks(txn, series_id: int, level: int, cols: Columns) -> int:
    """Merge periods of ``level`` into the blocks that hold them; returns the periods written."""
    if not len(cols):
        return 0
    bases = cols.at - cols.at % BLOCK_SPANS[level]
    return sum(merge_block(txn, series_id, level, int(base), cols.select(bases == base))
               for base in np.unique(bases).tolist())


def _roll_blocks(txn, series_id: int, now: float, budget: int) -> int:
    done = 0
    for level, (_period, keep) in enumerate(LEVELS):
        cutoff = int(now - keep)
        span = BLOCK_SPANS[level]
        last = level + 1 == len(LEVELS)
        # blocks whose whole span is past the level's age: moved on (or, at the last level, deleted)
        low, high = block_range(series_id, level, 0, max(0, cutoff - span + 1))
        doomed = []
        for key, raw in txn.scan("meta", low, high):
            if decode_data_key(key)[2] + span > cutoff:
                break
            doomed.append((bytes(key), None if last else bytes(raw)))
            if done + len(doomed) * 1440 >= budget:
                break
        for key, raw in doomed:
            txn.delete("meta", key)
            done += 1440
            cols = blocks.decode(raw) if raw is not None else None
            if cols is None or not len(cols):
                continue
            youngest = level_for_age(int(cols.at[-1]), now)
            if youngest is not None:  # else all of it is past the retention
                to = max(level + 1, youngest)
                done += _merge_into_blocks(txn, series_id, to, blocks.coarsen(cols, LEVELS[to][0]))
        if last:  # the block holding the cutoff: its hours a day past the retention are cut
            base = block_base(level, max(0, cutoff))
            key = block_key(series_id, level, base)
            raw = txn.get("meta", key)
            if raw is not None and blocks.block_first(raw) < cutoff - DAY:
                cols = blocks.decode(raw)
                cols = cols.select(cols.at >= cutoff)
                if len(cols):
                    txn.put("meta", key, blocks.encode(cols, base, LEVELS[level][0]))
                else:
                    txn.delete("meta", key)
                done += 1440
        if done >= budget:
            break
    return done


class RollUp:
    """The background job of ``roll_up_series`` over every series."""

    __name__ = "metrics_roll_up"

    def __init__(self, engine, clock: Callable[[], float] = time.time, budget: int = ROUND_BUDGET,
                 interval_s: float = PASS_INTERVAL_S) -> None:
        self.engine = engine
        self.clock = clock
        self.budget = budget
        self.interval_s = interval_s

    def __call__(self) -> bool:
        now = self.clock()
        with self.engine.read() as txn:
            state = txn.get("meta", ROLLUP_KEY)
            if state is not None and len(state) == _STARTED.size and now - _STARTED.unpack(state)[0] < self.interval_s:
                return False  # the last walk finished less than a minute ago
        with self.engine.write() as txn:
            state = txn.get("meta", ROLLUP_KEY)
            if state is None or len(state) == _STARTED.size:
                if state is not None and now - _STARTED.unpack(state)[0] < self.interval_s:
                    return False
                started, after = now, SERIES_PREFIX
            else:
                # resume at the series the last round stopped in
                started, after = _STARTED.unpack_from(state)[0], bytes(state[_STARTED.size:])
            budget = self.budget
            last = None
            forgotten = []
            for info in list(iter_series(txn, after)):
                budget -= roll_up_series(txn, info.series_id, now, budget)
                if budget <= 0:
                    last = series_key(info.series)
                    break
                if info.last_minute * 60 < now - LEVELS[-1][1] and not has_data(txn, info.series_id):
                    forgotten.append(info)
            for info in forgotten:
                txn.delete("meta", series_key(info.series))
                txn.delete("meta", TOTAL_PREFIX + struct.pack(">I", info.series_id))
            if last is None:  # the walk is over: remember when it began
                txn.put("meta", ROLLUP_KEY, _STARTED.pack(started))
                return False
            txn.put("meta", ROLLUP_KEY, _STARTED.pack(started) + last)
            return True
