"""The viewer-events workload (shared/workloads/viewer-events.md) for the harness.

Two halves that must agree exactly:

* this module generates the preloaded data set and the tables' schemas;
* ``lua/events.lua`` generates the measured requests inside wrk.

They agree through a *counts file*: line ``r`` holds how many events user of
popularity rank ``r`` has in the preload (user id ``u%08d % r``), and the
``k``-th event of a user with ``count`` events has the sort key
``T0_MS + k * (SPAN_MS // count)`` (see ``event_ts``).  A wrk script that draws
an item index uniformly from ``[0, items)`` and maps it through the cumulative
counts therefore reads existing keys, with users drawn in proportion to their
activity, i.e. by their Zipf popularity.

Sizing: the data set has ``items // EVENTS_PER_USER`` users (at most 1 million,
as in the full data set) whose activity follows a Zipf law whose exponent is
chosen so that the top 1% of users produce 20% of events, as the workload says.
"""

from __future__ import annotations

from dataclasses import dataclass

# The event generator, the table names and the sizing are Shoal's (``shoal demo``
# generates its events with the same generator); re-exported for the harness.
from shoal.demo.workload import (  # noqa: F401
    COUNTERS_TABLE, COUNTRIES, EVENT_TYPES, EVENTS_PER_USER, EVENTS_TABLE, MAX_USERS, PROGRESS_TABLE,
    TOP_USERS_SHARE, TTL_S, EventGenerator, user_id,
)

T0_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: preloaded events fall in the 30 days after it
SPAN_MS = 30 * 24 * 3600 * 1000


def table_definitions() -> list[dict]:
    """CreateTable requests for the three tables the workload uses (on demand)."""
    def table(name, keys):
        return {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t, _ in keys],
            "KeySchema": [{"AttributeName": n, "KeyType": k} for n, _, k in keys],
        }
    return [
        table(EVENTS_TABLE, [("user_id", "S", "HASH"), ("ts", "N", "RANGE")]),
        table(PROGRESS_TABLE, [("user_id", "S", "HASH"), ("content_id", "S", "RANGE")]),
        table(COUNTERS_TABLE, [("counter_id", "S", "HASH")]),
    ]


# ---------------------------------------------------------------- the preloaded data set


@dataclass(frozen=True)
class DataSet:
    """Which events the preload writes: ``counts[r - 1]`` events for the user of rank ``r``."""

    items: int
    counts: tuple[int, ...]

    @classmethod
    def build(cls, items: int) -> "DataSet":
        return cls(items, tuple(user_counts(items)))

    @property
    def users(self) -> int:
        return len(self.counts)

    def write_counts(self, path) -> None:
        """The counts file that ``lua/events.lua`` reads."""
        with open(path, "w") as handle:
            handle.write("\n".join(map(str, self.counts)))
            handle.write("\n")


def event_ts(count: int, k: int) -> int:
    """The sort key of a user's ``k``-th preloaded event (of ``count``): spread over SPAN_MS."""
    return T0_MS + k * (SPAN_MS // count)


def user_exponent(users: int) -> float:
    """The Zipf exponent at which the top 1% of ``users`` hold TOP_USERS_SHARE of the weight."""
    import numpy as np

    weights_rank = np.arange(1, users + 1, dtype=np.float64)
    top = max(1, users // 100)
    low, high = 0.0, 3.0
    for _ in range(40):
        s = (low + high) / 2
        weights = weights_rank ** -s
        if weights[:top].sum() / weights.sum() < TOP_USERS_SHARE:
            low = s
        else:
            high = s
    return (low + high) / 2


def user_counts(items: int) -> list[int]:
    """Events per user by rank, summing to ``items`` exactly (largest remainder);
    users left with no event are dropped from the tail."""
    import numpy as np

    users = min(MAX_USERS, max(1, items // EVENTS_PER_USER))
    weights = np.arange(1, users + 1, dtype=np.float64) ** -user_exponent(users)
    shares = weights / weights.sum() * items
    counts = np.floor(shares).astype(np.int64)
    short = items - int(counts.sum())
    if short:
        counts[np.argsort(counts - shares)[:short]] += 1  # largest remainders first
    counts = sorted(counts.tolist(), reverse=True)
    while counts and counts[-1] == 0:
        counts.pop()
    return counts


def preload_keys(dataset: DataSet, part: int, parts: int):
    """(user_id, ts) of every preloaded event whose user rank is ``part`` mod ``parts``."""
    for rank in range(part + 1, dataset.users + 1, parts):
        count = dataset.counts[rank - 1]
        uid = user_id(rank)
        for k in range(count):
            yield uid, event_ts(count, k)
