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
* **prune**: an hourly block is deleted once its whole span (sixty days)
  is past 455 days; until then reads leave out its hours past 455 days
  (``shoal.metrics.store.read_parts``), so the disk holds up to one block
  of hours a series more than CloudWatch keeps, and no answer shows it.

The background job ``RollUp`` walks the series in key order, a bounded
amount of work per round (``ROUND_BUDGET``, in periods decoded or
written), its position kept in ``meta`` (``metrics/walk``) in the same
transaction, so workers share the walk; a new walk starts at most once a
minute, so a series' recent hour is sealed within a few minutes of its end
(one block rewritten a series an hour).  Blocks move and are pruned at day
boundaries, so only the first walk of each UTC day looks at them (and at
coarser periods of earlier writers, and forgets a series with no data left
and none for the whole retention): the other walks read no block, only
where each series' minutes begin.
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
    block_decimals,
    block_key,
    block_range,
    data_range,
    decode_data_key,
    has_data,
    iter_series,
    merge_block,
    series_key,
)

ROLLUP_KEY = b"metrics/walk"  # (b"metrics/rollup" held the state before blocks: left alone)
#: when the walk started (epoch s), when the last daily walk started (0: none), when the daily walk
#: before it started (0: none), whether this walk is daily; then, while it is not over, the series to
#: go on from
_STARTED = struct.Struct(">dddB")
PASS_INTERVAL_S = 60.0
# Periods sealed, decoded or written per round (a round is one write transaction on the worker's
# event loop, which waits meanwhile): 10,000 took up to 118 ms on the bench's 100 tables
# (docs/benchmarks.md, "Metrics at scale"); 2,000 keeps a round near 25 ms, in more rounds.
ROUND_BUDGET = 2_000
VISIT_COST = 10  # what looking at a series with nothing to do counts for, in periods


def seal_before(now: float) -> int:
    """Periods starting before this are sealed: the hour that ended ``SEAL_AFTER_S`` ago, and all before it."""
    return int((now - SEAL_AFTER_S) // HOUR * HOUR)


def level_for_age(start: int, now: float) -> int | None:
    """The level a period starting at ``start`` belongs to at ``now``; None past the retention."""
    for level, (_period, keep) in enumerate(LEVELS):
        if start >= now - keep:
            return level
    return None


def roll_up_series(txn, series_id: int, now: float, budget: int, daily: bool = True,
                   since: float | None = None, decimals: int | None = None) -> int:
    """Seal, roll up and prune one series' periods as of ``now``, at most
    about ``budget`` periods' worth; returns how much it did (0: nothing
    to do).  Without ``daily``, only the minutes are sealed: blocks move at
    most once a day, and periods of the coarser levels are only found in
    data written before blocks existed, so ``RollUp`` looks for them in its
    first walk of each day only.  ``since``: when the last daily walk ran,
    if it was the day before (see ``_doomed``); ``decimals``: what the
    series' blocks keep of Sum, Minimum and Maximum
    (``shoal.metrics.store.block_decimals``)."""
    done = _seal(txn, series_id, now, budget, len(LEVELS) if daily else 1, decimals)
    if daily and done < budget:
        done += _roll_blocks(txn, series_id, now, budget - done, since, decimals)
    return done


def _seal(txn, series_id: int, now: float, budget: int, levels: int, decimals: int | None = None) -> int:
    before = seal_before(now)
    rows: list[tuple[int, int, bytes, bytes]] = []  # (level, start, key, stored form)
    for level in range(levels):
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
        done += _merge_into_blocks(txn, series_id, level, cols, now, decimals)
    return done


def _merge_into_blocks(txn, series_id: int, level: int, cols: Columns, now: float,
                       decimals: int | None = None) -> int:
    """Merge periods of ``level`` into the blocks that hold them; returns the periods written.  A
    block already past its level's age is never made (blocks only come past their age as time goes
    by, which is what the daily walk looks for, ``_doomed``): periods are sealed at the level of
    their age and spans nest, so this only guards that rule, sending such periods on to the next
    level (or, past the last, dropping them)."""
    if not len(cols):
        return 0
    span = BLOCK_SPANS[level]
    bases = cols.at - cols.at % span
    done = 0
    for base in np.unique(bases).tolist():
        part = cols.select(bases == base)
        if base + span <= now - LEVELS[level][1]:
            if level + 1 < len(LEVELS):
                done += _merge_into_blocks(txn, series_id, level + 1, blocks.coarsen(part, LEVELS[level + 1][0]),
                                           now, decimals)
            continue
        done += merge_block(txn, series_id, level, int(base), part, decimals)
    return done


def _doomed(txn, series_id: int, level: int, cutoff: int, since: int | None) -> list[tuple[bytes, bytes]]:
    """The series' blocks of ``level`` whose whole span starts before ``cutoff`` (key, stored form).
    Given the cutoff of the last daily walk (``since``), only the blocks that came past it since are
    looked up, by key: a range scan would also read the value of the first block past its end (the
    engine's cursor returns each key with its value), tens of kilobytes a series a day for nothing."""
    span = BLOCK_SPANS[level]
    limit = cutoff - span  # the last base whose span ends by the cutoff
    if since is not None:
        first = max(0, since - span) // span * span + span
        found = []
        for base in range(first, limit + 1, span):
            key = block_key(series_id, level, base)
            raw = txn.get("meta", key)
            if raw is not None:
                found.append((key, bytes(raw)))
        return found
    if limit < 0:
        return []
    low, high = block_range(series_id, level, 0, limit + 1)
    return [(bytes(key), bytes(raw)) for key, raw in txn.scan("meta", low, high)]


def _roll_blocks(txn, series_id: int, now: float, budget: int, since: float | None = None,
                 decimals: int | None = None) -> int:
    """Move the blocks past their level's age to the next level (delete them past the last one);
    ``since``: when the last daily walk ran (None: look at every block)."""
    done = 0
    for level, (_period, keep) in enumerate(LEVELS):
        doomed = _doomed(txn, series_id, level, int(now - keep), None if since is None else int(since - keep))
        doomed = doomed[:max(1, (budget - done) // 1440)]
        for key, raw in doomed:
            txn.delete("meta", key)
            done += 1440
            if level + 1 == len(LEVELS):
                continue
            cols = blocks.decode(raw)
            youngest = level_for_age(int(cols.at[-1]), now) if len(cols) else None
            if youngest is not None:  # else all of it is past the retention
                to = max(level + 1, youngest)
                done += _merge_into_blocks(txn, series_id, to, blocks.coarsen(cols, LEVELS[to][0]), now, decimals)
        if done >= budget:
            break
    return done


class RollUp:
    """The background job of ``roll_up_series`` over every series."""

    __name__ = "metrics_roll_up"

    def __init__(self, engine, clock: Callable[[], float] = time.time, budget: int = ROUND_BUDGET,
                 interval_s: float = PASS_INTERVAL_S, cold_reads=None) -> None:
        self.engine = engine
        self.clock = clock
        self.budget = budget
        self.interval_s = interval_s
        #: a round reads and rewrites blocks no request will read soon: their pages are not kept
        #: mapped (``shoal.storage.resident.ColdReads``; None: kept)
        self.cold_reads = cold_reads

    def __call__(self) -> bool:
        now = self.clock()
        with self.engine.read() as txn:  # most calls: nothing to do, and no cold read to account for
            state = txn.get("meta", ROLLUP_KEY)
            if state is not None and len(state) == _STARTED.size and now - _STARTED.unpack(state)[0] < self.interval_s:
                return False  # the last walk finished less than a minute ago
        if self.cold_reads is not None:
            return self.cold_reads.run(lambda: self._round(now))
        return self._round(now)

    def _round(self, now: float) -> bool:
        from shoal.storage.resident import shed_point  # the blocks a round reads are not all kept mapped

        with self.engine.write() as txn:
            state = txn.get("meta", ROLLUP_KEY)
            if state is None or len(state) == _STARTED.size:
                if state is not None and now - _STARTED.unpack(state)[0] < self.interval_s:
                    return False
                previous, last_daily = _STARTED.unpack(state)[:2] if state is not None else (None, 0.0)
                # the first walk of a UTC day (or ever) also moves blocks and looks for coarser periods
                daily = previous is None or previous // DAY != now // DAY
                before = 0.0
                if daily:
                    last_daily, before = now, last_daily
                started, after = now, SERIES_PREFIX
            else:
                # resume at the series the last round stopped in
                started, last_daily, before, daily = _STARTED.unpack_from(state)
                after = bytes(state[_STARTED.size:])
            # blocks are looked up by key when the daily walk before this one was the day before
            since = before if before and 0 < started - before < 2 * DAY else None
            budget = self.budget
            last = None
            forgotten = []
            for n, info in enumerate(list(iter_series(txn, after))):
                if n & 3 == 3:  # a series' blocks are rewritten: some 100 KiB of the file mapped each
                    shed_point()
                allowed = budget
                done = roll_up_series(txn, info.series_id, now, allowed, bool(daily), since,
                                      block_decimals(info.series, info.unit))
                finished = done < allowed  # it stopped for want of work, not of budget
                if (daily and finished and info.last_minute * 60 < now - LEVELS[-1][1]
                        and not has_data(txn, info.series_id)):
                    forgotten.append(info)
                budget -= VISIT_COST + done
                if budget <= 0:  # the next round goes on in this series, or after it if it is done
                    last = series_key(info.series) + (b"\0" if finished else b"")
                    break
            for info in forgotten:
                txn.delete("meta", series_key(info.series))
                txn.delete("meta", TOTAL_PREFIX + struct.pack(">I", info.series_id))
            if last is None:  # the walk is over: remember when it began
                txn.put("meta", ROLLUP_KEY, _STARTED.pack(started, last_daily, before, daily))
                return False
            txn.put("meta", ROLLUP_KEY, _STARTED.pack(started, last_daily, before, daily) + last)
            return True
