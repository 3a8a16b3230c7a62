"""The CloudWatch alarms Application Auto Scaling makes for a DynamoDB
target tracking policy, and keeps in step with the capacity.

AWS (DynamoDB Developer Guide, "Managing throughput capacity automatically
with DynamoDB auto scaling"; the knowledge center's "DynamoDB auto scaling"
page) creates, for a policy of target T% on a table's or GSI's read or write
capacity, alarms named ``TargetTracking-table/NAME-AlarmHigh-<uuid>`` and
``...-AlarmLow-<uuid>`` on ``AWS/DynamoDB`` ``Consumed<Read|Write>CapacityUnits``
(Sum over one minute): High when consumption stays above T% of the capacity
for 2 consecutive minutes, Low when it stays 20 points below the target
(T - 20 %) for 15 consecutive minutes; their action is the policy's ARN, and
they are deleted with the policy.  The thresholds follow the capacity: the
scaler rewrites them when the capacity it sees has changed.

In Shoal these alarms are real (DescribeAlarms lists them, the evaluator
moves their state and records their action), but the scaler decides target
tracking from its own samples of the capacity buckets
(``shoal.autoscaling.Scaler``, times settable for tests), not from their
state, so that the decision does not wait for minute-long periods.

Not made: the ProvisionedCapacityHigh and ProvisionedCapacityLow alarms that
accounts' exported alarm lists show beside these two.  No AWS page documents
them (their metric, threshold, periods or purpose), and Shoal makes only what
AWS documents.
"""

from __future__ import annotations

import uuid

from shoal.metrics import alarms as cloudwatch_alarms

PERIOD_S = 60
HIGH_PERIODS, LOW_PERIODS = 2, 15
LOW_POINTS_BELOW = 20.0  # AlarmLow's threshold: the target less 20 percentage points
METRIC = {"read": "ConsumedReadCapacityUnits", "write": "ConsumedWriteCapacityUnits"}


def names(policy_arn: str, resource: str) -> list[dict]:
    """The two alarms' AlarmName and AlarmARN, fixed for the policy's ARN."""
    region, account = policy_arn.split(":")[3:5]
    out = []
    for side in ("High", "Low"):
        name = f"TargetTracking-{resource}-Alarm{side}-{uuid.uuid5(uuid.NAMESPACE_URL, policy_arn + side)}"
        out.append({"AlarmName": name, "AlarmARN": cloudwatch_alarms.alarm_arn(region, account, name)})
    return out


def configs(policy: dict, table: str, index: str | None, kind: str, capacity: int) -> list[dict]:
    """PutMetricAlarm's form of the two alarms for ``capacity`` units."""
    target = float(policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"])
    dimensions = [{"Name": "TableName", "Value": table}]
    if index is not None:
        dimensions.append({"Name": "GlobalSecondaryIndexName", "Value": index})
    out = []
    for alarm, (periods, share, comparison) in zip(policy["Alarms"], (
            (HIGH_PERIODS, target, "GreaterThanThreshold"),
            (LOW_PERIODS, max(0.0, target - LOW_POINTS_BELOW), "LessThanThreshold"))):
        out.append({
            "AlarmName": alarm["AlarmName"],
            "AlarmDescription": f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy['PolicyARN']}.",
            "ActionsEnabled": True, "OKActions": [], "AlarmActions": [policy["PolicyARN"]],
            "InsufficientDataActions": [], "MetricName": METRIC[kind], "Namespace": "AWS/DynamoDB",
            "Statistic": "Sum", "Dimensions": dimensions, "Period": PERIOD_S, "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods, "Threshold": capacity * PERIOD_S * share / 100.0,
            "ComparisonOperator": comparison})
    return out


def put(txn, region: str, account: str, policy: dict, table: str, index: str | None, kind: str, capacity: int,
        now: float) -> None:
    """Write (or retune) the policy's alarms for ``capacity``, in the caller's write transaction."""
    for config in configs(policy, table, index, kind, capacity):
        cloudwatch_alarms.put_service_alarm(txn, region, account, config, now)


def delete(txn, region: str, policy: dict) -> None:
    for alarm in policy.get("Alarms") or ():
        cloudwatch_alarms.delete_service_alarm(txn, region, alarm["AlarmName"])
