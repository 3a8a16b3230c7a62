"""The viewer-events workload's data, in pure Python (no numpy, no I/O).

``shared/workloads/viewer-events.md`` describes the data; two programs generate it:

* ``shoal demo`` (this package) loads a data set a new user can query: the events
  of the last ``days`` days, per-user sessions laid out in time, and the derived
  continue-watching positions and per-title hourly play counters;
* the benchmark (``bench/workload.py``) imports the names, the constants and
  ``EventGenerator`` from here and lays events out its own way (evenly spread
  keys that its wrk scripts can recompute).

``EventGenerator.event(uid, ts)`` draws from its random generator in exactly the
order the benchmark has always used, so the benchmark's data did not change when
the generator moved here; ``tests/unit/test_demo_workload.py`` pins that sequence.
Everything the demo adds (explicit sessions, positions that move forward) goes
through optional arguments that the benchmark does not pass.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
import time
import uuid
from dataclasses import dataclass, field

EVENTS_TABLE = "viewer_events"
PROGRESS_TABLE = "continue_watching"
COUNTERS_TABLE = "title_counters"
CONTENT_INDEX = "by_content"  # GSI of EVENTS_TABLE: content_id HASH, ts RANGE
TTL_ATTRIBUTE = "expires_at"
COUNTER_SHARDS = 10  # a title's hourly counter is spread over this many items

TTL_S = 90 * 24 * 3600
EVENTS_PER_USER = 30  # the data set has one user per this many events ...
MAX_USERS = 1_000_000  # ... and at most this many users, as the full data set
TITLES = 50_000
TITLE_EXPONENT = 1.1
TOP_USERS_SHARE = 0.20  # the top 1% of users produce 20% of events

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

# Activity by hour of the day (UTC): the evening peak is three times the night trough.
HOUR_WEIGHTS = (1.6, 1.3, 1.1, 1.0, 1.0, 1.1, 1.3, 1.5, 1.6, 1.7, 1.8, 1.9,
                2.0, 2.0, 2.0, 2.1, 2.2, 2.4, 2.7, 2.9, 3.0, 3.0, 2.6, 2.0)
MAX_POSITION_S = 7200.0


def table_definitions() -> list[dict]:
    """CreateTable requests for the demo's three tables (on demand).

    The names and keys are the benchmark's; the demo adds the events table's
    index on (content_id, ts) for "who watched a title recently" (the benchmark
    measures the table without it)."""
    def table(name, keys, **extra):
        return {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t, _ in keys],
            "KeySchema": [{"AttributeName": n, "KeyType": k} for n, _, k in keys if k],
            **extra,
        }
    index = {
        "IndexName": CONTENT_INDEX,
        "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                      {"AttributeName": "ts", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["event_type", "position_s"]},
    }
    return [
        table(EVENTS_TABLE, [("user_id", "S", "HASH"), ("ts", "N", "RANGE"), ("content_id", "S", None)],
              GlobalSecondaryIndexes=[index]),
        table(PROGRESS_TABLE, [("user_id", "S", "HASH"), ("content_id", "S", "RANGE")]),
        table(COUNTERS_TABLE, [("counter_id", "S", "HASH")]),
    ]


def user_id(rank: int) -> str:
    return f"u{rank:08d}"


def content_id(rank: int) -> str:
    return f"c{rank:06d}"


def counter_id(content: str, hour: str, shard: int) -> str:
    """The key of one shard of a title's play counter for one hour (``YYYYMMDDHH``, UTC)."""
    return f"{content}#{hour}#{shard}"


def title_length_s(content: str) -> int:
    """A title's running time in seconds (20 minutes to 2 hours), fixed by its id."""
    return 1200 + int(content[1:]) * 2_654_435_761 % 6001


def hour_of(ms: int) -> str:
    """``YYYYMMDDHH`` (UTC) of an epoch-milliseconds time: the counters' hour."""
    return time.strftime("%Y%m%d%H", time.gmtime(ms // 1000))


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
    content and device, as real viewing does.  Left to itself (the benchmark's
    use) a session ends after its drawn length, whatever the user; the demo
    starts each session itself (``start_session``) and passes the event type and
    the playback position it has worked out.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._titles = _cumulative_zipf(TITLES, TITLE_EXPONENT)
        self._session_left = 0
        self._session: tuple = ()

    def _pick(self, cumulative, values):
        return values[bisect.bisect_right(cumulative, self.rng.random() * cumulative[-1])]

    def content_id(self) -> str:
        """A title drawn by its Zipf popularity (``c000001`` the most popular)."""
        rank = bisect.bisect_right(self._titles, self.rng.random() * self._titles[-1]) + 1
        return f"c{rank:06d}"

    def event_type(self) -> str:
        return self._pick(_EVENT_CUM, EVENT_TYPES)

    def start_session(self) -> int:
        """Start a new session (id, title, device, country); returns its drawn length in events."""
        rng = self.rng
        kind = self._pick(_DEVICE_CUM, _DEVICE_TYPES)
        device = {"type": {"S": kind}, "os": {"S": rng.choice(DEVICE_OS[kind])},
                  "app_version": {"S": f"{rng.randint(3, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"}}
        self._session = (str(uuid.UUID(int=rng.getrandbits(128), version=4)), self.content_id(),
                         {"M": device}, self._pick(_COUNTRY_CUM, COUNTRIES))
        self._session_left = rng.randint(5, 200)
        return self._session_left

    @property
    def session(self) -> tuple[str, str]:
        """(session id, content id) of the current session."""
        return self._session[0], self._session[1]

    def event(self, uid: str, ts: int, kind: str | None = None, position_s: float | None = None) -> dict:
        """One event of user ``uid`` at ``ts`` (epoch ms), in wire form.

        ``kind`` and ``position_s`` are drawn when not given (the position
        uniformly over two hours)."""
        rng = self.rng
        if self._session_left <= 0:
            self.start_session()
        self._session_left -= 1
        session_id, content, device, country = self._session
        if kind is None:
            kind = self._pick(_EVENT_CUM, EVENT_TYPES)
        if position_s is None:
            position_s = rng.uniform(0, MAX_POSITION_S)
        item = {
            "user_id": {"S": uid}, "ts": {"N": str(ts)}, "event_type": {"S": kind},
            "content_id": {"S": content}, "session_id": {"S": session_id}, "device": device,
            "position_s": {"N": f"{position_s:.3f}"}, "country": {"S": country},
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


# ---------------------------------------------------------------- users


def user_exponent(users: int) -> float:
    """The Zipf exponent at which the top 1% of ``users`` hold TOP_USERS_SHARE of the weight."""
    logs = [math.log(r) for r in range(1, users + 1)]
    top = max(1, users // 100)
    low, high = 0.0, 3.0
    while high - low > 1e-6:
        s = (low + high) / 2
        weights = [math.exp(-s * x) for x in logs]
        if sum(weights[:top]) / sum(weights) < TOP_USERS_SHARE:
            low = s
        else:
            high = s
    return (low + high) / 2


def user_counts(events: int) -> list[int]:
    """Events per user by activity rank, summing to ``events`` exactly (largest
    remainder); users left with no event are dropped from the tail.

    One user per EVENTS_PER_USER events (at most MAX_USERS), with activity
    following the Zipf law at which the top 1% produce 20% of events: the
    benchmark's rule, computed without numpy."""
    if events <= 0:
        return []
    users = min(MAX_USERS, max(1, events // EVENTS_PER_USER))
    s = user_exponent(users)
    weights = [r ** -s for r in range(1, users + 1)]
    scale = events / sum(weights)
    shares = [w * scale for w in weights]
    counts = [int(share) for share in shares]
    short = events - sum(counts)
    for i in sorted(range(users), key=lambda i: counts[i] - shares[i])[:short]:
        counts[i] += 1  # largest remainders first
    counts.sort(reverse=True)
    while counts and counts[-1] == 0:
        counts.pop()
    return counts


# ---------------------------------------------------------------- the demo's data set


@dataclass
class DemoData:
    """The demo's data set: ``events`` events ending at ``end_ms`` over ``days`` days.

    ``items()`` yields ``(table, item)`` in wire form: each user's events (the
    users in order of activity, ``u00000001`` the most active), then that user's
    continue-watching positions (the latest event per title), and at the end the
    title counters: plays per title and hour over the last ``counter_hours``
    hours, each play counted on one of COUNTER_SHARDS shards.

    Sessions are laid out in time: a session starts at a time drawn by the
    hour-of-day activity, its events follow each other 10 to 60 seconds apart,
    and the playback position moves forward with them (it stays on a pause,
    jumps on a seek, and starts again at 0 past the end of the title, as the
    next episode would).  Two events of a user in the same millisecond get a
    3-digit decimal suffix (``1765000000000.001``).
    """

    events: int
    seed: int
    end_ms: int
    days: float = 30.0
    counter_hours: int = 24
    counts: list[int] = field(init=False)  # events per user, by activity rank
    start_ms: int = field(init=False)
    counters: dict[str, int] = field(init=False, default_factory=dict)  # counter_id -> plays, by items()

    def __post_init__(self) -> None:
        self.counts = user_counts(self.events)
        self.start_ms = self.end_ms - int(self.days * 86_400_000)

    @property
    def users(self) -> int:
        return len(self.counts)

    def items(self):
        """(table, item) of everything the demo writes; counters last."""
        generator = EventGenerator(self.seed)
        rng = generator.rng
        counters = self.counters
        counted_from = self.end_ms - self.counter_hours * 3_600_000
        for rank, count in enumerate(self.counts, 1):
            uid = user_id(rank)
            used: set[int] = set()
            latest: dict[str, tuple[int, dict]] = {}  # content -> (ms, continue-watching item)
            left = count
            while left:
                length = min(generator.start_session(), left)
                left -= length
                steps = [int(rng.uniform(10_000, 60_000)) for _ in range(length - 1)]
                ms = self._session_start(rng, sum(steps))
                length_s = title_length_s(generator.session[1])
                position = 0.0 if rng.random() < 0.4 else rng.uniform(0, length_s * 0.9)
                for i in range(length):
                    kind = generator.event_type()
                    if kind == "seek":
                        position = rng.uniform(0, length_s)
                    item = generator.event(uid, ms, kind, position)
                    if ms in used:
                        item["ts"] = {"N": self._suffixed(ms, used)}
                    else:
                        used.add(ms)
                    if kind == "play" and ms >= counted_from:
                        key = counter_id(item["content_id"]["S"], hour_of(ms), rng.randrange(COUNTER_SHARDS))
                        counters[key] = counters.get(key, 0) + 1
                    yield EVENTS_TABLE, item
                    if i < length - 1:
                        step = steps[i]
                        if kind != "pause":  # playing on; past the end, the next episode starts
                            position = (position + step / 1000) % length_s
                        ms += step
                session_id, content = generator.session
                if content not in latest or latest[content][0] < ms:
                    latest[content] = (ms, {
                        "user_id": {"S": uid}, "content_id": {"S": content},
                        "position_s": item["position_s"], "updated_at": {"N": str(ms)},
                        "session_id": {"S": session_id},
                    })
            for _ms, progress in latest.values():
                yield PROGRESS_TABLE, progress
        for key, plays in counters.items():
            yield COUNTERS_TABLE, {"counter_id": {"S": key}, "plays": {"N": str(plays)}}

    def _session_start(self, rng: random.Random, duration_ms: int) -> int:
        """A session's start: uniform over the span, thinned by the hour's activity
        (so the evening peak gets three times the sessions of the night), and early
        enough for the session to end by ``end_ms``."""
        span = self.end_ms - self.start_ms
        peak = max(HOUR_WEIGHTS)
        while True:
            ms = self.start_ms + int(rng.random() * span)
            if rng.random() * peak < HOUR_WEIGHTS[ms // 3_600_000 % 24]:
                return min(ms, self.end_ms - duration_ms)

    @staticmethod
    def _suffixed(ms: int, used: set) -> str:
        """``ms`` with the first free 3-digit suffix (the workload's rule for collisions)."""
        for suffix in range(1, 1000):
            text = f"{ms}.{suffix:03d}"
            if text not in used:
                used.add(text)
                return text
        raise ValueError(f"more than 1000 events of one user at {ms}")
