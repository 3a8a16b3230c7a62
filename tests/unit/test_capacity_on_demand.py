"""On-demand tables' throughput (shoal.capacity.on_demand): the previous
peak and its doubling, the warm throughput as the starting point, the
maximums as a cap, and the error each throttle answers; driven with a
controllable clock, in-process and through the shared file."""

from __future__ import annotations

import pytest

from shoal.capacity import Capacity, Limit, SharedBuckets
from shoal.capacity.on_demand import (
    EMPTY,
    MAX_MESSAGE,
    PEAK_MESSAGE,
    OnDemandRules,
    OnDemandThrottlingException,
    advance,
    ceiling,
)

RULES = OnDemandRules(read_units=20, write_units=10, window_s=1.0, scale_s=5.0)
ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/t"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def on_demand(key: str = "id/" + "/write", warm: float = 10.0, maximum: float = 0.0) -> Limit:
    floor = min(warm, maximum) if maximum else warm
    return Limit(key, floor, floor, "TableWriteKeyRangeThroughputExceeded", ARN, PEAK_MESSAGE, warm, maximum,
                 "TableWriteMaxOnDemandThroughputExceeded")


def test_a_sustained_rate_above_the_peak_becomes_the_previous_peak_after_the_scaling_time():
    state = advance(EMPTY, 0.0, 100.0, RULES, 100.0)  # the first take opens a window
    state = advance(state, 15.0, 101.0, RULES, 100.0)  # 15 a second: pending since the window began
    assert state[:3] == (0.0, 15.0, 100.0)
    state = advance(state, 35.0, 102.0, RULES, 100.0)  # 20 a second: the pending peak rises, not its start
    assert state[:3] == (0.0, 20.0, 100.0)
    state = advance(state, 35.0, 104.9, RULES, 100.0)
    assert state[0] == 0.0  # not yet five seconds
    state = advance(state, 35.0, 105.0, RULES, 100.0)
    assert state[:3] == (20.0, 0.0, 0.0) and ceiling(10.0, state[0]) == 40.0
    for second in range(106, 200):  # quiet: a peak never decays
        state = advance(state, 35.0, float(second), RULES, 100.0)
    assert state[0] == 20.0


def test_a_windows_rate_counts_at_most_what_the_bucket_serves():
    state = advance(EMPTY, 0.0, 100.0, RULES, 10.0)
    state = advance(state, 20.0, 101.0, RULES, 10.0)  # the banked second and the refill: 20, but 10 sustained
    assert state[1] == 10.0


def granted_per_second(shared: SharedBuckets, clock: Clock, limit: Limit, seconds: int) -> list[float]:
    """Units granted in each second to a client asking for far more, every tenth of a second."""
    out = []
    for _ in range(seconds):
        got = 0.0
        for _ in range(10):
            clock.now += 0.1
            got += shared.take(limit, 1000.0)
        out.append(round(got, 6))
    return out


def test_traffic_held_above_the_ceiling_is_served_at_it_and_doubles_it_once_per_scaling_time(tmp_path):
    clock = Clock()
    shared = SharedBuckets(str(tmp_path / "capacity"), clock, RULES)
    try:
        limit = on_demand()
        assert shared.take(limit, 1000.0) == 10.0  # a new table: one second of its warm throughput banked
        # the warm throughput (double an implicit peak of 5); 10 sustained is the previous peak five
        # seconds later, so 20 is served; and so on: the ceiling doubles once per scaling time
        assert granted_per_second(shared, clock, limit, 16) == [10.0] * 5 + [20.0] * 5 + [40.0] * 5 + [80.0]
        assert shared.peak(limit.key)[0] == 40.0
        other = SharedBuckets(str(tmp_path / "capacity"), clock, RULES)  # another worker sees the same peak
        try:
            assert other.peak(limit.key)[0] == 40.0
        finally:
            other.close()
    finally:
        shared.close()


def test_traffic_within_double_the_peak_is_served_at_once_and_a_warm_throughput_starts_higher():
    clock = Clock()
    shared = SharedBuckets(None, clock, RULES)
    limit = on_demand()
    granted_per_second(shared, clock, limit, 7)  # the peak is now 10: 20 a second at once
    assert shared.ceilings[limit.key] == 20.0
    warmed = on_demand(key="id2//write", warm=100.0)
    assert granted_per_second(shared, clock, warmed, 3)[1:] == [100.0, 100.0]


def test_a_maximum_caps_the_ceiling_and_names_itself_once_it_is_the_lower():
    clock = Clock()
    capacity = Capacity(SharedBuckets(None, clock, RULES))
    limit = on_demand(maximum=15.0)
    assert capacity._has(limit)
    capacity._spend(limit, 100.0)
    assert not capacity._has(limit)
    exc = capacity._throttle(limit)  # the ceiling (10) is below the maximum: the peak refuses
    assert isinstance(exc, OnDemandThrottlingException) and exc.message == PEAK_MESSAGE
    assert exc.reasons == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": ARN}]
    assert granted_per_second(capacity.shared, clock, limit, 12)[-3:] == [15.0] * 3  # the ceiling is 20 by now
    exc = capacity._throttle(limit)
    assert exc.message == MAX_MESSAGE
    assert exc.reasons == [{"reason": "TableWriteMaxOnDemandThroughputExceeded", "resource": ARN}]


def test_the_throttle_is_dynamodbs_throttling_exception_on_the_wire():
    exc = OnDemandThrottlingException(MAX_MESSAGE, [{"reason": "IndexReadMaxOnDemandThroughputExceeded",
                                                     "resource": ARN + "/index/g"}])
    assert (exc.status, exc.to_body()) == (400, {
        "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        "message": "Throughput exceeds the maximum OnDemandThroughput configured on table or index",
        "throttlingReasons": [{"reason": "IndexReadMaxOnDemandThroughputExceeded", "resource": ARN + "/index/g"}]})


@pytest.mark.parametrize("name,value", [("SHOAL_ON_DEMAND_READ_UNITS", "30"), ("SHOAL_ON_DEMAND_SCALE_S", "2.5")])
def test_the_numbers_come_from_the_environment(monkeypatch, name, value):
    assert OnDemandRules.from_environment() == OnDemandRules()  # DynamoDB's: 12,000 / 4,000, 60 s, 30 min
    monkeypatch.setenv(name, value)
    rules = OnDemandRules.from_environment()
    assert (rules.read_units if "READ" in name else rules.scale_s) == float(value)
