"""The daily budget for decreases of provisioned throughput
(shoal.capacity.decreases), against the rule DynamoDB documents and the
LimitExceededException message real DynamoDB answers."""

from __future__ import annotations

import calendar

import pytest

from shoal.capacity.decreases import check_decrease, decreases_today, next_decrease_at, spoken_time
from shoal.errors import LimitExceededException


def at(hour: int, minute: int = 0, second: int = 0, day: int = 9) -> float:
    return float(calendar.timegm((2026, 10, day, hour, minute, second, 0, 0, 0)))


def throughput(rcu: int, wcu: int, count: int | None = None, last: float | None = None) -> dict:
    out = {"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu}
    if count is not None:
        out.update(NumberOfDecreasesToday=count, LastDecreaseDateTime=last)
    return out


def refusal(current: dict, requested: dict, now: float) -> str:
    with pytest.raises(LimitExceededException) as info:
        check_decrease(current, requested, now)
    return info.value.message


def test_four_decreases_are_free_at_any_time_of_the_day():
    for count in range(4):  # the 1st to the 4th, a second after the previous one
        check_decrease(throughput(10, 10, count or None, at(0, 21, 33) if count else None),
                       throughput(9, 10), at(0, 21, 34))


def test_the_fifth_waits_an_hour_after_the_last_in_dynamodbs_words():
    current = throughput(6, 10, 4, at(0, 21, 34))
    assert refusal(current, throughput(5, 10), at(0, 26, 34)) == (
        "Subscriber limit exceeded: Provisioned throughput decreases are limited within a given UTC day. After the "
        "first 4 decreases, each subsequent decrease in the same UTC day can be performed at most once every 3600 "
        "seconds. Number of decreases today: 4. Last decrease at Friday, October 9, 2026 at 12:21:34 AM "
        "Coordinated Universal Time. Next decrease can be made at Friday, October 9, 2026 at 1:21:34 AM "
        "Coordinated Universal Time")
    # the top of the hour does not reset it; 3,599 seconds later still refused, 3,600 allowed
    refusal(current, throughput(5, 10), at(1, 0, 20))
    refusal(current, throughput(5, 10), at(1, 21, 33))
    check_decrease(current, throughput(5, 10), at(1, 21, 34))


def test_after_the_fifth_one_more_an_hour_later_so_at_most_27_a_day():
    current = throughput(5, 10, 5, at(1, 21, 36))
    assert "Number of decreases today: 5. Last decrease at Friday, October 9, 2026 at 1:21:36 AM" in \
        refusal(current, throughput(4, 10), at(1, 21, 37))
    assert next_decrease_at(current, at(1, 26)) == at(2, 21, 36)
    allowed, now = 0, at(0)  # a decrease whenever the budget allows it, over one day
    state = throughput(1000, 10)
    while now < at(0, day=10):
        if next_decrease_at(state, now) is None:
            allowed += 1
            state = throughput(state["ReadCapacityUnits"] - 1, 10, decreases_today(state, now) + 1, now)
        now += 60
    assert allowed == 4 + 23  # four in the first hour, then one in each of the 23 after it


def test_a_new_utc_day_starts_the_count_afresh_and_midnight_can_come_before_the_hour():
    current = throughput(6, 10, 7, at(23, 30))
    assert "Next decrease can be made at Saturday, October 10, 2026 at 12:00:00 AM Coordinated Universal Time" \
        in refusal(current, throughput(5, 10), at(23, 40))
    assert decreases_today(current, at(0, 0, 1, day=10)) == 0
    check_decrease(current, throughput(5, 10), at(0, 0, 1, day=10))


def test_a_decrease_of_either_unit_counts_even_beside_an_increase_and_increases_never_do():
    current = throughput(6, 6, 4, at(12))
    refusal(current, throughput(20, 5), at(12, 5))  # writes down, reads up: still a decrease
    check_decrease(current, throughput(20, 6), at(12, 5))  # an increase only
    check_decrease(current, throughput(6, 6), at(12, 5))  # no change is not this rule's to refuse


def test_times_are_written_on_a_twelve_hour_clock():
    assert spoken_time(at(12, 5, 9)) == "Friday, October 9, 2026 at 12:05:09 PM Coordinated Universal Time"
    assert spoken_time(at(23, 59, 59, day=4)) == "Sunday, October 4, 2026 at 11:59:59 PM Coordinated Universal Time"
