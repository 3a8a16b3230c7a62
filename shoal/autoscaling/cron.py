"""Cron schedules of Application Auto Scaling's scheduled actions.

``cron(Minutes Hours Day-of-month Month Day-of-week Year)``, the syntax the
Application Auto Scaling User Guide ("Schedule recurring scaling actions
using cron expressions") takes from EventBridge's cron reference, not
Unix cron's:

=============  ==========================  =====================
field          values                      wildcards
=============  ==========================  =====================
Minutes        0-59                        , - * /
Hours          0-23                        , - * /
Day-of-month   1-31                        , - * ? / L W
Month          1-12 or JAN-DEC             , - * /
Day-of-week    1-7 or SUN-SAT (1 is SUN)   , - * ? L #
Year           1970-2199                   , - * /
=============  ==========================  =====================

One of Day-of-month and Day-of-week must be ``?`` (EventBridge: "you can't
specify the Day-of-month and Day-of-week fields in the same cron
expression").  ``L`` is the month's last day (``L`` in Day-of-week:
Saturday, the week's last; ``5L``: the month's last Thursday); ``15W`` the
weekday nearest the 15th within the month (``LW``: the last weekday);
``3#2`` the month's second Tuesday; ``a/n`` every n from a, ``*/n`` from the
field's first value.

A schedule is evaluated in its time zone's wall time (``zoneinfo``); a wall
minute that a daylight-saving change skips fires at the instant zoneinfo
gives it (an hour later), one that occurs twice fires the first time.
Written here rather than taken from PyPI: the Unix-cron libraries
(croniter and the like) read five fields, Sunday as 0 and no ``?``, and
their Quartz modes differ in details (year range, ``LW``) from
EventBridge's; the grammar is small enough to own and test exhaustively.
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {name: n for n, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
DAYS = {name: n for n, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}
FIRST_YEAR, LAST_YEAR = 1970, 2199
_CRON = re.compile(r"cron\((.*)\)", re.S)


class CronError(ValueError):
    """A schedule that is not a cron expression Application Auto Scaling takes."""


@dataclass(frozen=True)
class Cron:
    minutes: frozenset
    hours: frozenset
    months: frozenset
    years: frozenset
    #: Day-of-month: None for ``?``, else (days, last, last_weekday, nearest_weekday_of)
    month_days: tuple | None
    #: Day-of-week: None for ``?``, else (days 1-7, last_of (weekday or None), (weekday, nth) or None)
    week_days: tuple | None

    def day_matches(self, day: datetime.date) -> bool:
        """Whether ``day`` (a wall-clock date) is one of the schedule's days."""
        if day.year not in self.years or day.month not in self.months:
            return False
        length = calendar.monthrange(day.year, day.month)[1]
        if self.month_days is not None:
            days, last, last_weekday, nearest = self.month_days
            if day.day in days or (last and day.day == length):
                return True
            if last_weekday and day == _nearest_weekday(day.replace(day=length)):
                return True
            return nearest is not None and day == _nearest_weekday(day.replace(day=min(nearest, length)))
        days, last_of, nth = self.week_days
        weekday = day.isoweekday() % 7 + 1  # 1 is Sunday
        if weekday in days:
            return True
        if last_of is not None and weekday == last_of and day.day + 7 > length:
            return True
        return nth is not None and weekday == nth[0] and (day.day - 1) // 7 + 1 == nth[1]

    def matches(self, wall: datetime.datetime) -> bool:
        """Whether the wall-clock minute ``wall`` is one the schedule fires at."""
        return wall.minute in self.minutes and wall.hour in self.hours and self.day_matches(wall.date())

    def next_after(self, epoch: float, zone: datetime.tzinfo = datetime.timezone.utc) -> float | None:
        """The first instant after ``epoch`` (seconds) at which a matching
        wall-clock minute of ``zone`` begins; None if there is none (the
        years run out)."""
        start = datetime.datetime.fromtimestamp(epoch, zone).replace(tzinfo=None, second=0, microsecond=0)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        day = start.date()
        while day.year <= LAST_YEAR:
            if day.year not in self.years:
                day = datetime.date(day.year + 1, 1, 1)
                continue
            if day.month not in self.months:
                day = (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
                continue
            if self.day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        wall = datetime.datetime(day.year, day.month, day.day, hour, minute)
                        if wall < start:
                            continue
                        at = wall.replace(tzinfo=zone).timestamp()
                        if at > epoch:
                            return at
            day += datetime.timedelta(days=1)
        return None


def _nearest_weekday(day: datetime.date) -> datetime.date:
    """The weekday (Monday to Friday) nearest ``day`` within its month (``W``)."""
    weekday = day.weekday()
    if weekday < 5:
        return day
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - datetime.timedelta(days=1) if day.day > 1 else day + datetime.timedelta(days=2)
    length = calendar.monthrange(day.year, day.month)[1]  # Sunday: the Monday after, or the Friday before
    return day + datetime.timedelta(days=1) if day.day < length else day - datetime.timedelta(days=2)


def _value(text: str, low: int, high: int, names: dict | None, field: str) -> int:
    if names is not None and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit() or not low <= int(text) <= high:
        raise CronError(f"Invalid value {text!r} in the {field} field of the cron expression")
    return int(text)


def _values(text: str, low: int, high: int, names: dict | None, field: str) -> set[int]:
    """A field's ``,``-separated items of numbers, names, ranges, ``*`` and steps."""
    out: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, low, high, names, field), _value(b, low, high, names, field)
            if first > last:
                raise CronError(f"Invalid range {base!r} in the {field} field of the cron expression")
        else:
            first = _value(base, low, high, names, field)
            last = high if slash else first
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"Invalid increment {step_text!r} in the {field} field of the cron expression")
            step = int(step_text)
        out.update(range(first, last + 1, step))
    return out


def _month_days(text: str):
    if text == "?":
        return None
    upper = text.upper()
    if upper == "L":
        return frozenset(), True, False, None
    if upper == "LW":
        return frozenset(), False, True, None
    if upper.endswith("W"):
        return frozenset(), False, False, _value(upper[:-1], 1, 31, None, "Day-of-month")
    return frozenset(_values(text, 1, 31, None, "Day-of-month")), False, False, None


def _week_days(text: str):
    if text == "?":
        return None
    upper = text.upper()
    if upper == "L":
        return frozenset({7}), None, None
    if upper.endswith("L"):
        return frozenset(), _value(upper[:-1], 1, 7, DAYS, "Day-of-week"), None
    if "#" in upper:
        day, _, nth = upper.partition("#")
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise CronError(f"Invalid value {nth!r} after # in the Day-of-week field of the cron expression")
        return frozenset(), None, (_value(day, 1, 7, DAYS, "Day-of-week"), int(nth))
    return frozenset(_values(text, 1, 7, DAYS, "Day-of-week")), None, None


def parse(schedule: str) -> Cron:
    """The schedule ``cron(...)`` parsed; CronError says what is wrong."""
    match = _CRON.fullmatch(schedule.strip())
    if match is None:
        raise CronError("A cron schedule has the form cron(Minutes Hours Day-of-month Month Day-of-week Year)")
    fields = match[1].split()
    if len(fields) != 6:
        raise CronError(f"A cron expression has 6 fields (Minutes Hours Day-of-month Month Day-of-week Year), "
                        f"not {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise CronError("One of the Day-of-month and Day-of-week fields of a cron expression must be ?, "
                        "and only one")
    return Cron(minutes=frozenset(_values(minute, 0, 59, None, "Minutes")),
                hours=frozenset(_values(hour, 0, 23, None, "Hours")),
                months=frozenset(_values(month, 1, 12, MONTHS, "Month")),
                years=frozenset(_values(year, FIRST_YEAR, LAST_YEAR, None, "Year")),
                month_days=_month_days(dom), week_days=_week_days(dow))


def zone(name: str | None) -> datetime.tzinfo:
    """The IANA time zone ``name`` (UTC when None); CronError if unknown."""
    if name is None:
        return datetime.timezone.utc
    try:
        if not isinstance(name, str) or not name or ".." in name or name.startswith("/"):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"Time zone {name!r} is not a valid IANA time zone name") from None
