"""shoal.autoscaling.cron: the documented examples, every wildcard, the
refusals, time zones, and Hypothesis properties against a brute-force
oracle written independently here (a minute matches when each field's
text, read naively, admits it): the next fire time is a matching minute and
no matching minute before it is skipped."""

from __future__ import annotations

import calendar
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.autoscaling.cron import CronError, parse, zone

UTC = datetime.timezone.utc


def at(*parts) -> float:
    return datetime.datetime(*parts, tzinfo=UTC).timestamp()


def fires(expression: str, start: float, count: int, tz=UTC) -> list[str]:
    cron, out = parse(expression), []
    for _ in range(count):
        start = cron.next_after(start, tz)
        out.append(datetime.datetime.fromtimestamp(start, tz).strftime("%Y-%m-%d %a %H:%M"))
    return out


def test_the_user_guides_examples():
    # "30 6 ? * MON *": every Monday at 6:30
    assert fires("cron(30 6 ? * MON *)", at(2026, 12, 7, 6, 30), 2) == ["2026-12-14 Mon 06:30", "2026-12-21 Mon 06:30"]
    assert fires("cron(30 6 ? * MON *)", at(2026, 12, 7, 6, 29), 1) == ["2026-12-07 Mon 06:30"]
    # every 15 minutes, Monday to Friday, 9 to 17 in November and December 2026
    assert fires("cron(0/15 9-17 ? NOV-DEC MON-FRI 2026)", at(2026, 12, 4, 17, 40), 3) == [
        "2026-12-04 Fri 17:45", "2026-12-07 Mon 09:00", "2026-12-07 Mon 09:15"]
    assert parse("cron(0/15 9-17 ? NOV-DEC MON-FRI 2026)").next_after(at(2026, 12, 31, 17, 45)) is None


def test_each_wildcard():
    start = at(2026, 1, 1)
    assert fires("cron(0 12 L * ? *)", start, 3) == ["2026-01-31 Sat 12:00", "2026-02-28 Sat 12:00",
                                                     "2026-03-31 Tue 12:00"]
    assert fires("cron(0 12 LW * ? *)", start, 2) == ["2026-01-30 Fri 12:00", "2026-02-27 Fri 12:00"]
    # 1W: on a Saturday the 1st moves to Monday the 3rd, not back into the month before
    assert fires("cron(0 0 1W AUG ? 2026)", start, 1) == ["2026-08-03 Mon 00:00"]
    assert fires("cron(0 0 15W * ? *)", at(2026, 2, 1), 2) == ["2026-02-16 Mon 00:00", "2026-03-16 Mon 00:00"]
    assert fires("cron(0 0 31W * ? 2026)", at(2026, 5, 1), 1) == ["2026-05-29 Fri 00:00"]  # 31 May: Sunday
    assert fires("cron(0 0 ? * 3#2 *)", start, 2) == ["2026-01-13 Tue 00:00", "2026-02-10 Tue 00:00"]
    assert fires("cron(0 0 ? * 6L *)", start, 2) == ["2026-01-30 Fri 00:00", "2026-02-27 Fri 00:00"]
    assert fires("cron(0 0 ? * L *)", start, 2) == ["2026-01-03 Sat 00:00", "2026-01-10 Sat 00:00"]
    assert fires("cron(*/20 1,3 1-2 * ? *)", start, 4) == ["2026-01-01 Thu 01:00",
                                                          "2026-01-01 Thu 01:20", "2026-01-01 Thu 01:40",
                                                          "2026-01-01 Thu 03:00"]
    assert fires("cron(5 0 ? jan,Jul sun-mon 2027/2)", start, 3) == [
        "2027-01-03 Sun 00:05", "2027-01-04 Mon 00:05", "2027-01-10 Sun 00:05"]
    assert fires("cron(0 0 29 2 ? *)", start, 1) == ["2028-02-29 Tue 00:00"]


@pytest.mark.parametrize("expression", [
    "cron(0 18 * * *)", "cron(0 18 * * * * *)", "rate(5 minutes)", "cron(60 0 * * ? *)", "cron(0 24 * * ? *)",
    "cron(0 0 0 * ? *)", "cron(0 0 * 13 ? *)", "cron(0 0 ? * 8 *)", "cron(0 0 ? * 0 *)", "cron(0 0 * * ? 1969)",
    "cron(0 0 * * ? 2200)", "cron(0 0 ? * ? *)", "cron(0 0 * * MON *)", "cron(0 0 1 * 2 *)", "cron(5-1 0 * * ? *)",
    "cron(0/0 0 * * ? *)", "cron(0 0 ? * 3#6 *)", "cron(0 0 ? * 3#x *)", "cron(0 0 32W * ? *)", "cron(x 0 * * ? *)",
    "cron(0 0 * FOO ? *)", "cron(, 0 * * ? *)", "cron(0 0 ? * 8L *)", "cron()"])
def test_expressions_refused(expression):
    with pytest.raises(CronError):
        parse(expression)


def test_time_zones():
    tokyo = zone("Asia/Tokyo")
    assert fires("cron(0 9 * * ? *)", at(2026, 12, 6, 23), 1, tokyo) == ["2026-12-07 Mon 09:00"]
    assert parse("cron(0 9 * * ? *)").next_after(at(2026, 12, 6, 23), tokyo) == at(2026, 12, 7, 0)
    new_york = zone("America/New_York")
    # 2:30 does not exist on 8 March 2026 in New York: it fires at 3:30 EDT (7:30 UTC), an hour later
    assert parse("cron(30 2 * * ? *)").next_after(at(2026, 3, 8), new_york) == at(2026, 3, 8, 7, 30)
    # 1:30 happens twice on 1 November 2026: once (the first, EDT)
    cron = parse("cron(30 1 * * ? *)")
    first = cron.next_after(at(2026, 11, 1), new_york)
    assert first == at(2026, 11, 1, 5, 30)
    assert cron.next_after(first, new_york) == at(2026, 11, 2, 6, 30)
    assert zone(None) is UTC and zone("Etc/GMT+9").utcoffset(None) == datetime.timedelta(hours=-9)
    for bad in ("Mars/Olympus", "", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(CronError):
            zone(bad)


# -- properties against an oracle --------------------------------------------------------------

NAMES = {"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10,
         "NOV": 11, "DEC": 12, "SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


def admits(text: str, value: int, low: int, high: int) -> bool:
    """A plain field (numbers, names, ranges, *, steps) admits ``value``."""
    def number(t):
        return NAMES[t.upper()] if t.upper() in NAMES else int(t)
    for item in text.split(","):
        base, _, step = item.partition("/")
        step = int(step or 1)
        if base == "*":
            a, b = low, high
        elif "-" in base:
            a, b = map(number, base.split("-"))
        else:
            a = number(base)
            b = high if "/" in item else a
        if a <= value <= b and (value - a) % step == 0:
            return True
    return False


def weekday_of(day: datetime.date) -> int:
    return (day.weekday() + 1) % 7 + 1  # Monday is 2, Sunday 1


def oracle_day(dom: str, dow: str, day: datetime.date) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    if dom != "?":
        if dom == "L":
            return day.day == last
        if dom.endswith("W"):
            wanted = last if dom == "LW" else min(int(dom[:-1]), last)
            candidates = [datetime.date(day.year, day.month, d) for d in range(1, last + 1)
                          if datetime.date(day.year, day.month, d).weekday() < 5]
            nearest = min(candidates, key=lambda c: (abs(c.day - wanted), c.day))
            return day == nearest
        return admits(dom, day.day, 1, 31)
    if dow == "L":
        return weekday_of(day) == 7
    if dow.endswith("L"):
        return weekday_of(day) == int(dow[:-1]) and day.day > last - 7
    if "#" in dow:
        d, n = dow.split("#")
        wanted = NAMES[d] if d in NAMES else int(d)
        return weekday_of(day) == wanted and sum(
            1 for k in range(1, day.day + 1) if weekday_of(datetime.date(day.year, day.month, k)) == wanted) == int(n)
    return admits(dow, weekday_of(day), 1, 7)


def oracle(fields: list[str], wall: datetime.datetime) -> bool:
    minute, hour, dom, month, dow, year = fields
    return (admits(minute, wall.minute, 0, 59) and admits(hour, wall.hour, 0, 23)
            and admits(month, wall.month, 1, 12) and admits(year, wall.year, 1970, 2199)
            and oracle_day(dom, dow, wall.date()))


def plain(low: int, high: int, names: list[str] | None = None):
    number = st.integers(low, high).map(str)
    if names:
        number = number | st.sampled_from(names)
    ranged = st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda ab: f"{min(ab)}-{max(ab)}")
    stepped = st.tuples(st.sampled_from(["*"]) | st.integers(low, high).map(str),
                        st.integers(1, high - low + 1)).map(lambda t: f"{t[0]}/{t[1]}")
    item = number | ranged | stepped | st.just("*")
    return st.lists(item, min_size=1, max_size=3).map(",".join)


DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
dom_field = plain(1, 31) | st.sampled_from(["L", "LW"]) | st.integers(1, 31).map(lambda d: f"{d}W")
dow_field = (plain(1, 7, DAY_NAMES) | st.just("L") | st.integers(1, 7).map(lambda d: f"{d}L")
             | st.tuples(st.integers(1, 7), st.integers(1, 5)).map(lambda t: f"{t[0]}#{t[1]}"))
days = st.one_of(st.tuples(dom_field, st.just("?")), st.tuples(st.just("?"), dow_field))
expressions = st.tuples(plain(0, 59), plain(0, 23), days, plain(1, 12, list(NAMES)[:12]),
                        st.sampled_from(["*", "2026-2028", "2026,2028", "2027/1"])).map(
    lambda t: [t[0], t[1], t[2][0], t[3], t[2][1], t[4]])
WINDOW_DAYS = 400


@settings(max_examples=150, deadline=None)
@given(expressions, st.integers(int(at(2026, 1, 1)), int(at(2027, 12, 31))))
def test_the_next_fire_time_is_the_first_matching_minute(fields, start):
    cron = parse(f"cron({' '.join(fields)})")
    found = cron.next_after(start)
    if found is not None:
        wall = datetime.datetime.fromtimestamp(found, UTC)
        assert found > start and wall.second == 0 and oracle(fields, wall)
        assert cron.matches(wall.replace(tzinfo=None))
    # no matching minute between start and the one found (within a window the oracle can walk)
    first = datetime.datetime.fromtimestamp(start, UTC).replace(second=0) + datetime.timedelta(minutes=1)
    end = datetime.datetime.fromtimestamp(found, UTC) if found is not None else first + datetime.timedelta(
        days=WINDOW_DAYS)
    end = min(end, first + datetime.timedelta(days=WINDOW_DAYS))
    day = first.date()
    while day <= end.date():
        if admits(fields[3], day.month, 1, 12) and admits(fields[5], day.year, 1970, 2199) and \
                oracle_day(fields[2], fields[4], day):
            for hour in range(24):
                for minute in range(60):
                    wall = datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    if first <= wall < end:
                        assert not oracle(fields, wall), (fields, start, wall, found)
        day += datetime.timedelta(days=1)


@settings(max_examples=100, deadline=None)
@given(expressions, st.integers(int(at(2026, 1, 1)), int(at(2027, 12, 31))))
def test_a_fire_time_is_never_repeated_and_the_next_follows_it(fields, start):
    cron = parse(f"cron({' '.join(fields)})")
    first = cron.next_after(start)
    if first is None:
        return
    second = cron.next_after(first)
    assert second is None or second >= first + 60
    assert cron.next_after(first - 1) == first


@settings(max_examples=300, deadline=None)
@given(expressions, st.dates(datetime.date(2026, 1, 1), datetime.date(2028, 12, 31)))
def test_the_days_a_schedule_fires_on_are_the_oracles(fields, first):
    """Day by day over two years (every month length, leap February): the
    day rules (L, LW, nW, nL, n#k, lists, ranges, steps) agree with the oracle."""
    cron = parse(f"cron({' '.join(fields)})")
    for offset in range(731):
        day = first + datetime.timedelta(days=offset)
        wanted = admits(fields[3], day.month, 1, 12) and admits(fields[5], day.year, 1970, 2199) and \
            oracle_day(fields[2], fields[4], day)
        assert cron.day_matches(day) == wanted, (fields, day)
