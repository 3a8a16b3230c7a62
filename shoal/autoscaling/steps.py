"""Step scaling: a StepScalingPolicyConfiguration checked, and the capacity
it asks for when an alarm that names the policy invokes it.

What the Application Auto Scaling API Reference (StepScalingPolicyConfiguration,
StepAdjustment) and User Guide ("Step scaling policies") say, and Shoal does:

- a step's bounds are relative to the alarm's threshold: the breach is the
  metric's value minus the threshold; a null lower bound is minus infinity,
  a null upper bound plus infinity; above the threshold the lower bound is
  inclusive and the upper exclusive, below it the other way round (a value
  at the threshold counts as below for a Less... alarm, above otherwise);
- the steps may not overlap nor leave a gap, at most one has a null lower
  bound (and one must, if a lower bound is negative), at most one a null
  upper bound (and one must, if an upper bound is positive), and no step
  has both null;
- ``ChangeInCapacity`` adds the step's ScalingAdjustment, ``ExactCapacity``
  sets it (not negative), ``PercentChangeInCapacity`` adds that percentage
  of the current capacity, rounded toward zero when its magnitude is above
  1 and to plus or minus 1 below, then at least ``MinAdjustmentMagnitude``;
- ``Cooldown`` (default 300 seconds) is kept by the scaler (``shoal.autoscaling.Scaler``).

The validation messages are Shoal's: the API Reference lists the rules,
not the words.
"""

from __future__ import annotations

import math

ADJUSTMENT_TYPES = ("ChangeInCapacity", "PercentChangeInCapacity", "ExactCapacity")
AGGREGATIONS = ("Average", "Minimum", "Maximum")
DEFAULT_COOLDOWN_S = 300


class StepConfigError(ValueError):
    """A StepScalingPolicyConfiguration that breaks a rule (its message says which)."""


def _bound(value, name: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StepConfigError(f"{name} must be a number")
    return float(value)


def checked(config) -> dict:
    """``config`` after the rules above, with its defaults (Cooldown)."""
    if not isinstance(config, dict):
        raise StepConfigError("StepScalingPolicyConfiguration is required for a StepScaling policy")
    kind = config.get("AdjustmentType")
    if kind not in ADJUSTMENT_TYPES:
        raise StepConfigError(f"AdjustmentType must be one of {', '.join(ADJUSTMENT_TYPES)}")
    steps = config.get("StepAdjustments")
    if not isinstance(steps, list) or not steps:
        raise StepConfigError("At least one step adjustment is required")
    intervals = []
    for step in steps:
        if not isinstance(step, dict):
            raise StepConfigError("A step adjustment must be an object")
        adjustment = step.get("ScalingAdjustment")
        if isinstance(adjustment, bool) or not isinstance(adjustment, int):
            raise StepConfigError("ScalingAdjustment is required and must be an integer")
        if kind == "ExactCapacity" and adjustment < 0:
            raise StepConfigError("ScalingAdjustment must not be negative for ExactCapacity")
        low = _bound(step.get("MetricIntervalLowerBound"), "MetricIntervalLowerBound")
        high = _bound(step.get("MetricIntervalUpperBound"), "MetricIntervalUpperBound")
        if low is None and high is None:
            raise StepConfigError("The upper and lower bound of a step adjustment cannot both be null")
        if low is not None and high is not None and high <= low:
            raise StepConfigError("The upper bound of a step adjustment must be greater than its lower bound")
        intervals.append((-math.inf if low is None else low, math.inf if high is None else high))
    intervals.sort()
    if sum(low == -math.inf for low, _ in intervals) > 1:
        raise StepConfigError("At most one step adjustment may have a null lower bound")
    if sum(high == math.inf for _, high in intervals) > 1:
        raise StepConfigError("At most one step adjustment may have a null upper bound")
    for (_, high), (low, _) in zip(intervals, intervals[1:]):
        if low < high:
            raise StepConfigError("The step adjustments' intervals must not overlap")
        if low > high:
            raise StepConfigError("The step adjustments' intervals must not leave a gap")
    if intervals[0][0] < 0 and intervals[0][0] != -math.inf:
        raise StepConfigError("A step adjustment with a null lower bound is required when a lower bound is negative")
    if intervals[-1][1] > 0 and intervals[-1][1] != math.inf:
        raise StepConfigError("A step adjustment with a null upper bound is required when an upper bound is positive")
    magnitude = config.get("MinAdjustmentMagnitude")
    if magnitude is not None:
        if kind != "PercentChangeInCapacity":
            raise StepConfigError("MinAdjustmentMagnitude is only supported with PercentChangeInCapacity")
        if isinstance(magnitude, bool) or not isinstance(magnitude, int) or magnitude < 1:
            raise StepConfigError("MinAdjustmentMagnitude must be a positive integer")
    cooldown = config.get("Cooldown", DEFAULT_COOLDOWN_S)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
        raise StepConfigError("Cooldown must be a non-negative integer")
    aggregation = config.get("MetricAggregationType")
    if aggregation is not None and aggregation not in AGGREGATIONS:
        raise StepConfigError(f"MetricAggregationType must be one of {', '.join(AGGREGATIONS)}")
    return {**config, "Cooldown": cooldown}


def step_for(config: dict, breach: float, below: bool | None = None) -> dict | None:
    """The step adjustment whose interval holds ``breach`` (metric minus
    threshold), or None.  ``below`` says which rule of bounds applies to a
    breach of 0 (a Less... alarm's): by default, the one above the threshold."""
    below = breach < 0 if below is None else below
    for step in config["StepAdjustments"]:
        low = step.get("MetricIntervalLowerBound")
        high = step.get("MetricIntervalUpperBound")
        low = -math.inf if low is None else low
        high = math.inf if high is None else high
        inside = low < breach <= high if below else low <= breach < high
        if inside:
            return step
    return None


def adjusted(config: dict, step: dict, capacity: int) -> int:
    """The capacity ``step`` asks for from ``capacity`` (before the target's range is applied)."""
    kind, amount = config["AdjustmentType"], step["ScalingAdjustment"]
    if kind == "ExactCapacity":
        return amount
    if kind == "ChangeInCapacity":
        return capacity + amount
    change = capacity * amount / 100.0
    if change == 0 and amount == 0:
        return capacity
    if abs(change) < 1:
        change = math.copysign(1, change) if change else math.copysign(1, amount)
    else:
        change = math.trunc(change)
    least = config.get("MinAdjustmentMagnitude") or 0
    if abs(change) < least:
        change = math.copysign(least, change)
    return capacity + int(change)
