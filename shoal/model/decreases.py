"""The daily budget for decreases of provisioned throughput.

DynamoDB's quotas page ("Decreasing provisioned throughput"): a table, and
each of its global secondary indexes on its own, may be decreased four
times at any time in a UTC day, and once more whenever an hour has passed
since its last decrease (so at most 27 times a day).  A decrease of either
unit counts once, also when the other unit rises in the same call; an
UpdateTable that decreases the table and an index is refused whole when
either is over its budget.  Increases are never limited.

What is counted lives in the ProvisionedThroughput description UpdateTable
keeps (NumberOfDecreasesToday, LastDecreaseDateTime, in epoch seconds):
the count is of the UTC day of the last decrease, so a count from an
earlier day is no count today.

The refusal is LimitExceededException in the words real DynamoDB answers,
as public reports quote them (2023 and 2026): the timestamps in Java's
full English format ("Friday, October 9, 2026 at 12:21:34 AM Coordinated
Universal Time"), the next decrease an hour after the last one, or at
midnight UTC when that comes first (the count starts afresh then).

Pure: it imports nothing of Shoal but its errors, so that UpdateTable (the api layer) and
the auto scaler apply the same rule.
"""

from __future__ import annotations

import time

from shoal.errors import LimitExceededException

FREE_DECREASES = 4  # at any time of a UTC day
INTERVAL_S = 3600.0  # then one decrease an hour after the last one
DAY_S = 86400

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def is_decrease(current: dict, requested: dict) -> bool:
    """Whether ``requested`` lowers either unit of ``current``."""
    return (requested["ReadCapacityUnits"] < current["ReadCapacityUnits"]
            or requested["WriteCapacityUnits"] < current["WriteCapacityUnits"])


def decreases_today(current: dict, now: float) -> int:
    """The decreases counted in the UTC day of ``now`` (none when the last
    decrease was on an earlier day)."""
    last = current.get("LastDecreaseDateTime")
    if last is None or int(last // DAY_S) != int(now // DAY_S):
        return 0
    return int(current.get("NumberOfDecreasesToday") or 0)


def next_decrease_at(current: dict, now: float) -> float | None:
    """When the next decrease is allowed, or None if it is allowed now."""
    if decreases_today(current, now) < FREE_DECREASES:
        return None
    last = float(current["LastDecreaseDateTime"])
    if now - last >= INTERVAL_S:
        return None
    midnight = (int(now // DAY_S) + 1) * DAY_S
    return min(last + INTERVAL_S, float(midnight))


def check_decrease(current: dict, requested: dict, now: float) -> None:
    """Refuse ``requested`` (ReadCapacityUnits, WriteCapacityUnits) with
    DynamoDB's LimitExceededException if it decreases ``current`` (a
    ProvisionedThroughput description, with its counters) beyond today's
    budget; an increase or an allowed decrease passes."""
    if not is_decrease(current, requested):
        return
    at = next_decrease_at(current, now)
    if at is None:
        return
    raise LimitExceededException(
        "Subscriber limit exceeded: Provisioned throughput decreases are limited within a given UTC day. "
        f"After the first {FREE_DECREASES} decreases, each subsequent decrease in the same UTC day can be "
        f"performed at most once every {INTERVAL_S:.0f} seconds. Number of decreases today: "
        f"{decreases_today(current, now)}. Last decrease at {spoken_time(current['LastDecreaseDateTime'])}. "
        f"Next decrease can be made at {spoken_time(at)}"
    )


def spoken_time(epoch: float) -> str:
    """A time as DynamoDB's message writes it: "Friday, October 9, 2026 at
    1:21:34 AM Coordinated Universal Time" (whole seconds, 12-hour clock)."""
    t = time.gmtime(int(epoch))
    hour = t.tm_hour % 12 or 12
    half = "AM" if t.tm_hour < 12 else "PM"
    return (f"{_WEEKDAYS[t.tm_wday]}, {_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year} at "
            f"{hour}:{t.tm_min:02d}:{t.tm_sec:02d} {half} Coordinated Universal Time")
