"""shoal.autoscaling.steps without a server (the pure rules the step scaling
policies of test_autoscaling_alarms.py run on): which step a breach picks on
each side of the threshold, and the capacity each adjustment type asks for."""

from __future__ import annotations

import pytest

from shoal.autoscaling import steps

TWO_SIDED = steps.checked({"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [
    {"MetricIntervalUpperBound": -10, "ScalingAdjustment": -2},
    {"MetricIntervalLowerBound": -10, "MetricIntervalUpperBound": 0, "ScalingAdjustment": -1},
    {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
    {"MetricIntervalLowerBound": 10, "ScalingAdjustment": 2}]})


@pytest.mark.parametrize("breach, below, adjustment", [
    (15, None, 2), (10, None, 2), (9.5, None, 1), (0, None, 1), (0, True, -1), (-9.5, None, -1), (-10, None, -2),
])
def test_a_breach_picks_the_step_whose_bounds_hold_it(breach, below, adjustment):
    assert steps.step_for(TWO_SIDED, breach, below)["ScalingAdjustment"] == adjustment


def test_the_default_cooldown_is_300_seconds():
    assert TWO_SIDED["Cooldown"] == 300


@pytest.mark.parametrize("kind, amount, magnitude, capacity, wanted", [
    ("ChangeInCapacity", 3, None, 10, 13),
    ("ExactCapacity", 7, None, 10, 7),
    ("PercentChangeInCapacity", 25, None, 10, 12),   # 2.5 rounded toward zero
    ("PercentChangeInCapacity", 5, None, 10, 11),    # 0.5: at least 1
    ("PercentChangeInCapacity", -5, None, 10, 9),    # -0.5: at least -1
    ("PercentChangeInCapacity", -67, None, 10, 4),   # -6.7 rounded toward zero
    ("PercentChangeInCapacity", 25, 4, 4, 8),        # 1, but at least MinAdjustmentMagnitude
])
def test_each_adjustment_type_asks_for_its_capacity(kind, amount, magnitude, capacity, wanted):
    config = {"AdjustmentType": kind, "StepAdjustments": [{"MetricIntervalLowerBound": 0,
                                                          "ScalingAdjustment": amount}]}
    if magnitude is not None:
        config["MinAdjustmentMagnitude"] = magnitude
    config = steps.checked(config)
    assert steps.adjusted(config, config["StepAdjustments"][0], capacity) == wanted


@pytest.mark.parametrize("config, message", [
    ({"AdjustmentType": "Double", "StepAdjustments": [{"ScalingAdjustment": 1, "MetricIntervalLowerBound": 0}]},
     "AdjustmentType must be one of ChangeInCapacity, PercentChangeInCapacity, ExactCapacity"),
    ({"AdjustmentType": "ExactCapacity", "StepAdjustments": [{"ScalingAdjustment": -1,
                                                              "MetricIntervalLowerBound": 0}]},
     "ScalingAdjustment must not be negative for ExactCapacity"),
    ({"AdjustmentType": "ChangeInCapacity", "MinAdjustmentMagnitude": 2,
      "StepAdjustments": [{"ScalingAdjustment": 1, "MetricIntervalLowerBound": 0}]},
     "MinAdjustmentMagnitude is only supported with PercentChangeInCapacity"),
    ({"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [
        {"ScalingAdjustment": 1, "MetricIntervalLowerBound": -5, "MetricIntervalUpperBound": 0},
        {"ScalingAdjustment": 1, "MetricIntervalLowerBound": 0}]},
     "A step adjustment with a null lower bound is required when a lower bound is negative"),
    ({"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [
        {"ScalingAdjustment": 1, "MetricIntervalUpperBound": 0}, {"ScalingAdjustment": 1, "MetricIntervalUpperBound": 5}]},
     "At most one step adjustment may have a null lower bound"),
    ({"AdjustmentType": "ChangeInCapacity", "Cooldown": -1,
      "StepAdjustments": [{"ScalingAdjustment": 1, "MetricIntervalLowerBound": 0}]},
     "Cooldown must be a non-negative integer"),
])
def test_the_rules_of_a_configuration(config, message):
    with pytest.raises(steps.StepConfigError) as info:
        steps.checked(config)
    assert str(info.value) == message
