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

import bisect
import functools
import itertools
import random
import uuid
from dataclasses import dataclass

T0_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: preloaded events fall in the 30 days after it
SPAN_MS = 30 * 24 * 3600 * 1000
TTL_S = 90 * 24 * 3600
EVENTS_PER_USER = 30
MAX_USERS = 1_000_000
TITLES = 50_000
TITLE_EXPONENT = 1.1
TOP_USERS_SHARE = 0.20  # the top 1% of users produce 20% of events

EVENTS_TABLE = "viewer_events"
PROGRESS_TABLE = "continue_watching"
COUNTERS_TABLE = "title_counters"

EVENT_TYPES = ("play", "heartbeat", "pause", "seek", "stop", "rating", "search")
EVENT_WEIGHTS = (30, 40, 10, 8, 7, 2, 3)
COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "CA", "MX", "ES", "IT", "AU", "NL", "SE", "PL",
             "KR", "AR", "TR", "ZA", "NG", "EG", "ID", "PH", "VN", "TH", "CO", "CL", "NO", "DK", "IE")
DEVICE_OS = {"tv": ("tizen", "webos", "androidtv", "tvos"), "mobile": ("ios", "android"),
             "web": ("chrome", "firefox", "safari", "edge"), "console": ("ps5", "xbox")}
DEVICE_WEIGHTS = {"tv": 35, "mobile": 35, "web": 20, "console": 10}
BITRATES = (800, 1500, 3000, 4500, 6000, 8000, 12000, 16000)
GENRES = ("drama", "comedy", "action", "thriller", "documentary", "kids", "anime", "horror",
          "romance", "scifi", "crime", "reality", "sports", "music", "history")
QUERY_WORDS = ("night", "love", "war", "star", "last", "city", "blue", "house", "dark", "road",
               "king", "girl", "summer", "ocean", "ghost", "game", "secret", "wild", "time", "world")


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


def user_id(rank: int) -> str:
    return f"u{rank:08d}"


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


# ---------------------------------------------------------------- events


@functools.lru_cache(maxsize=None)
def _cumulative_zipf(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(r ** -s for r in range(1, n + 1)))


def _weighted_cumulative(weights) -> list[float]:
    return list(itertools.accumulate(weights))


_EVENT_CUM = _weighted_cumulative(EVENT_WEIGHTS)
_COUNTRY_CUM = _cumulative_zipf(len(COUNTRIES), 1.0)
_DEVICE_TYPES = tuple(DEVICE_WEIGHTS)
_DEVICE_CUM = _weighted_cumulative(DEVICE_WEIGHTS.values())


class EventGenerator:
    """Random events in DynamoDB wire form; one per ``event(user, ts)`` call.

    Sessions run for 5 to 200 events, so consecutive events share a session id,
    content and device, as real viewing does.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._titles = _cumulative_zipf(TITLES, TITLE_EXPONENT)
        self._session_left = 0
        self._session: tuple = ()

    def _pick(self, cumulative, values):
        return values[bisect.bisect_right(cumulative, self.rng.random() * cumulative[-1])]

    def content_id(self) -> str:
        rank = bisect.bisect_right(self._titles, self.rng.random() * self._titles[-1]) + 1
        return f"c{rank:06d}"

    def _new_session(self) -> None:
        rng = self.rng
        kind = self._pick(_DEVICE_CUM, _DEVICE_TYPES)
        device = {"type": {"S": kind}, "os": {"S": rng.choice(DEVICE_OS[kind])},
                  "app_version": {"S": f"{rng.randint(3, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"}}
        self._session = (str(uuid.UUID(int=rng.getrandbits(128), version=4)), self.content_id(),
                         {"M": device}, self._pick(_COUNTRY_CUM, COUNTRIES))
        self._session_left = rng.randint(5, 200)

    def event(self, uid: str, ts: int) -> dict:
        """One event of user ``uid`` at ``ts`` (epoch ms), in wire form."""
        rng = self.rng
        if self._session_left <= 0:
            self._new_session()
        self._session_left -= 1
        session_id, content_id, device, country = self._session
        kind = self._pick(_EVENT_CUM, EVENT_TYPES)
        item = {
            "user_id": {"S": uid}, "ts": {"N": str(ts)}, "event_type": {"S": kind},
            "content_id": {"S": content_id}, "session_id": {"S": session_id}, "device": device,
            "position_s": {"N": f"{rng.uniform(0, 7200):.3f}"}, "country": {"S": country},
            "expires_at": {"N": str(ts // 1000 + TTL_S)},
        }
        if kind in ("play", "heartbeat"):
            item["bitrate_kbps"] = {"N": str(rng.choice(BITRATES))}
        elif kind == "rating":
            item["rating"] = {"N": str(rng.randint(1, 5))}
        elif kind == "search":
            item["query"] = {"S": " ".join(rng.sample(QUERY_WORDS, rng.randint(1, 3)))}
        tags = rng.randint(0, 5)
        if tags:
            item["tags"] = {"SS": rng.sample(GENRES, tags)}
        return item
