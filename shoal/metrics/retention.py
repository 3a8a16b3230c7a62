"""Roll-up and pruning of stored metrics, as CloudWatch keeps them.

One-minute periods older than 15 days are merged into their five-minute
period, five-minute periods older than 63 days into their hour, and hours
older than 455 days are deleted (``shoal.metrics.store.LEVELS``); an hour's
total of minutes (``metrics/h/``) is deleted with the first minute moved out
of it, as a total must hold all of its hour's minutes or not be.  A datum
moves in the transaction that deletes it where it was, so reads never see it
twice or miss it.  The background job ``RollUp`` walks the series in key
order, a bounded number of periods per round, its position kept in ``meta``
(``metrics/rollup``) in the same transaction, so workers share the walk; a
new walk starts at most once a minute.  A series with no data left and no
data for the whole retention is forgotten.
"""

from __future__ import annotations

import struct
import time
from typing import Callable

from shoal.metrics.stats import Stats
from shoal.metrics.store import (
    HOUR,
    LEVELS,
    SERIES_PREFIX,
    TOTAL_PREFIX,
    data_key,
    data_range,
    decode_data_key,
    hour_key,
    iter_series,
    series_key,
)

ROLLUP_KEY = b"metrics/rollup"
_STARTED = struct.Struct(">d")  # when the walk started (epoch s), then the last series key done
PASS_INTERVAL_S = 60.0
ROUND_BUDGET = 2000  # periods moved or deleted per round


def roll_up_series(txn, series_id: int, now: float, budget: int) -> int:
    """Move or delete the periods of one series past their level's
    retention, at most ``budget`` of them; returns how many it touched."""
    done = 0
    for level, (period, keep) in enumerate(LEVELS):
        cutoff = int(now - keep)
        low, high = data_range(series_id, level, 0, max(0, cutoff))
        doomed = []
        for key, raw in txn.scan("meta", low, high):
            if done + len(doomed) >= budget:
                break
            doomed.append((bytes(key), bytes(raw)))
        if not doomed:
            continue
        coarser = LEVELS[level + 1][0] if level + 1 < len(LEVELS) else None
        merged: dict[int, Stats] = {}
        if level == 0:
            for start in {decode_data_key(key)[2] // HOUR * HOUR for key, _ in doomed}:
                txn.delete("meta", hour_key(series_id, start))
        for key, raw in doomed:
            txn.delete("meta", key)
            if coarser is not None:
                start = decode_data_key(key)[2]
                start -= start % coarser
                stats = Stats.decode(raw)
                have = merged.get(start)
                merged[start] = stats if have is None else have.merge(stats)
        for start, stats in merged.items():
            key = data_key(series_id, level + 1, start)
            old = txn.get("meta", key)
            txn.put("meta", key, (Stats.decode(old).merge(stats) if old is not None else stats).encode())
        done += len(doomed)
        if done >= budget:
            break
    return done


def _has_data(txn, series_id: int) -> bool:
    for level in range(len(LEVELS)):
        low, high = data_range(series_id, level)
        if next(iter(txn.scan("meta", low, high)), None) is not None:
            return True
    return False


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
                if info.last_minute * 60 < now - LEVELS[-1][1] and not _has_data(txn, info.series_id):
                    forgotten.append(info)
            for info in forgotten:
                txn.delete("meta", series_key(info.series))
                txn.delete("meta", TOTAL_PREFIX + struct.pack(">I", info.series_id))
            if last is None:  # the walk is over: remember when it began
                txn.put("meta", ROLLUP_KEY, _STARTED.pack(started))
                return False
            txn.put("meta", ROLLUP_KEY, _STARTED.pack(started) + last)
            return True
