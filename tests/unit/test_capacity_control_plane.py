"""The control plane's rate (Capacity.control_plane, shoal.capacity.control_plane):
DynamoDB's 2,500 requests a second per account and region, shared by the
workers, over which a control-plane request is ThrottlingException."""

from __future__ import annotations

import pytest

from shoal.capacity import Capacity, SharedBuckets
from shoal.capacity.control_plane import OPERATIONS, RATE, ControlPlaneThrottlingException, rate_from_environment


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_dynamodbs_number_and_operations(monkeypatch):
    monkeypatch.delenv("SHOAL_CONTROL_PLANE_RATE", raising=False)
    assert RATE == 2500.0 and rate_from_environment() == 2500.0
    assert OPERATIONS == {"CreateTable", "DescribeTable", "ListTables", "UpdateTable", "DeleteTable"}
    monkeypatch.setenv("SHOAL_CONTROL_PLANE_RATE", "20")
    assert rate_from_environment() == 20.0
    assert Capacity(SharedBuckets(None)).control_rate == 20.0


def test_a_second_of_requests_is_served_then_throttled_until_the_rate_refills(tmp_path):
    clock = Clock()
    capacity = Capacity(SharedBuckets(str(tmp_path / "capacity"), clock), control_rate=20.0)
    for _ in range(20):
        capacity.control_plane("DescribeTable", "000000000000", "us-east-1")
    with pytest.raises(ControlPlaneThrottlingException) as info:
        capacity.control_plane("CreateTable", "000000000000", "us-east-1")
    assert info.value.to_body() == {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                                    "message": "Rate of requests exceeds the allowed throughput."}
    assert info.value.status == 400
    capacity.control_plane("DescribeTable", "000000000000", "eu-west-1")  # another region: its own budget
    capacity.control_plane("DescribeTable", "111111111111", "us-east-1")  # another account too
    capacity.control_plane("GetItem", "000000000000", "us-east-1")  # the data plane is not counted here
    capacity.control_plane("DescribeTimeToLive", "000000000000", "us-east-1")  # no documented number
    clock.now += 0.25  # five requests' worth
    for _ in range(5):
        capacity.control_plane("ListTables", "000000000000", "us-east-1")
    with pytest.raises(ControlPlaneThrottlingException):
        capacity.control_plane("ListTables", "000000000000", "us-east-1")


def test_two_workers_share_one_budget(tmp_path):
    clock = Clock()
    path = str(tmp_path / "capacity")
    first = Capacity(SharedBuckets(path, clock), control_rate=100.0)
    second = Capacity(SharedBuckets(path, clock), control_rate=100.0)
    served = 0
    for turn in range(300):
        try:
            (first if turn % 2 else second).control_plane("DescribeTable", "000000000000", "us-east-1")
            served += 1
        except ControlPlaneThrottlingException:
            pass
    # A second's 100 between them (each worker takes its share in chunks of a tenth of a second).
    assert 100 <= served <= 102
