"""Application Auto Scaling for DynamoDB tables and GSIs (issue 20, first slice).

The API (JSON 1.1, ``X-Amz-Target: AnyScaleFrontendService.<Op>``, signed
as ``application-autoscaling``) on Shoal's port: RegisterScalableTarget,
DescribeScalableTargets, DeregisterScalableTarget, PutScalingPolicy
(TargetTrackingScaling on DynamoDBReadCapacityUtilization or
DynamoDBWriteCapacityUtilization), DescribeScalingPolicies,
DeleteScalingPolicy, DescribeScalingActivities.  What they record lives
in the ``meta`` space under ``autoscaling/``.

The scaler (``Scaler``, a background job; one worker at a time holds its
lease) samples every ``interval_s`` what each registered table or index
consumed (the tokens taken from its capacity bucket, ``shoal.capacity``),
and does what AWS's target tracking does with the two alarms it makes:
when utilization (consumed units a second over provisioned) stayed above
the target for ``scale_out_s`` (AWS: two minutes), it raises capacity to
what brings utilization back to the target; when it stayed below 80% of the
target for ``scale_in_s`` (AWS: fifteen minutes), it lowers capacity the
same way; always within the target's MinCapacity and MaxCapacity (a
capacity outside them is brought into them at once), through UpdateTable,
each change recorded as a scaling activity.  The three times come from
``SHOAL_AUTOSCALING_INTERVAL_S``, ``SHOAL_AUTOSCALING_SCALE_OUT_S`` and
``SHOAL_AUTOSCALING_SCALE_IN_S`` (defaults 10, 120 and 900 seconds), so
that tests need not wait minutes.

Scheduled actions (PutScheduledAction, DescribeScheduledActions,
DeleteScheduledAction) with ``at(...)``, ``rate(...)`` and ``cron(...)``
schedules (``shoal.autoscaling.cron``), at() and cron() in the action's
Timezone (an IANA name, UTC by default), within its StartTime and EndTime,
change a target's MinCapacity and MaxCapacity when due.  A cron action keeps
its next fire time (hidden from DescribeScheduledActions); minutes missed
while no worker ran fire once, not once each.

A scale-in stays within DynamoDB's daily budget for decreases
(``shoal.capacity.decreases``): one the budget refuses is recorded as a
Failed activity in AWS's words ("Failed to set write capacity units to 5.
Reason: Failed updating table: Subscriber limit exceeded: ...") and tried
again when the budget next allows a decrease, not every round.

Step scaling (``shoal.autoscaling.steps``): a StepScaling policy is run
by the CloudWatch alarms whose actions name its ARN (``shoal.metrics.alarms``),
as AWS runs it: each round, every alarm in a state whose action list names
a step policy invokes it, at the transition and then once every
``SHOAL_AUTOSCALING_ALARM_REPEAT_S`` (CloudWatch: once a minute) while it
stays there; the breach (the alarm's latest datapoint less its threshold,
0 without one, as after SetAlarmState, on the side of the threshold the
alarm's comparison looks at) picks the step; the policy's
Cooldown holds a further scale-in after any change, and a further scale-out
after a scale-out unless it asks for more than that one reached (counted from
the capacity before it).  The activity's Cause is AWS's "monitor alarm NAME
in state ALARM triggered policy POLICY".

A target tracking policy gets the two CloudWatch alarms AWS makes
(``shoal.autoscaling.tracking_alarms``): listed in the policy's Alarms and
by DescribeAlarms, their thresholds kept in step with the capacity, deleted
with the policy (or its target).

A target's SuspendedState holds what it names: DynamicScalingOutSuspended
and DynamicScalingInSuspended a policy's (target tracking or step) increases
and decreases, ScheduledScalingSuspended its scheduled actions (whose due
times then pass unused).  Bringing a capacity into the target's range is not
held.

A target tracking policy's ScaleOutCooldown and ScaleInCooldown (0 for
DynamoDB unless set, as the API Reference gives them) hold its own changes,
as the Application Auto Scaling User Guide describes them: after its
scale-out only a larger one, after its scale-in no other scale-in; a
scale-out ends a scale-in cooldown.  Their time is the server's clock (a
test moves it).  A policy's cooldown (target tracking's, and a step
policy's Cooldown) is kept in the policy's record, beside the scalable
targets, not in the memory of the worker holding the scaler's lease: a
restart, or the lease passing to another worker, still honours it.
DisableScaleIn keeps the policy from scaling in.  Neither holds bringing a
capacity into the target's range (nor scheduled actions, which the User
Guide exempts).

Not made: the ProvisionedCapacityHigh/Low alarms AWS's consoles show beside
a DynamoDB policy's AlarmHigh/AlarmLow (``shoal.autoscaling.tracking_alarms``).
"""

from __future__ import annotations

import datetime
import math
import os
import re
import time
import uuid

import orjson

from shoal.api.jobs import Lease
from shoal.autoscaling import cron, steps, tracking_alarms
from shoal.capacity.decreases import check_decrease, next_decrease_at
from shoal.errors import LimitExceededException, ShoalError

TARGET_PREFIX = "AnyScaleFrontendService."
PREFIX = b"autoscaling/"
_TARGET = PREFIX + b"target/"
_POLICY = PREFIX + b"policy/"
_ACTIVITY = PREFIX + b"activity/"
_SCHEDULED = PREFIX + b"scheduled/"
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_RATE = re.compile(r"rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
_LEASE_KEY = PREFIX + b"lease"
LEASE_S = 30.0
SCALE_IN_SHARE = 0.8  # scale in once utilization stays under this share of the target
DIMENSIONS = {
    "dynamodb:table:ReadCapacityUnits": ("table", "ReadCapacityUnits", "read"),
    "dynamodb:table:WriteCapacityUnits": ("table", "WriteCapacityUnits", "write"),
    "dynamodb:index:ReadCapacityUnits": ("index", "ReadCapacityUnits", "read"),
    "dynamodb:index:WriteCapacityUnits": ("index", "WriteCapacityUnits", "write"),
}
METRICS = {"DynamoDBReadCapacityUtilization": "read", "DynamoDBWriteCapacityUtilization": "write"}
_RESOURCE = re.compile(r"table/([a-zA-Z0-9_.-]{3,255})(?:/index/([a-zA-Z0-9_.-]{3,255}))?")
ROLE = ("arn:aws:iam::{account}:role/aws-service-role/dynamodb.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_DynamoDBTable")


class AutoScalingError(ShoalError):
    """Application Auto Scaling's errors: JSON 1.1, the type bare, ``Message``."""

    status = 400

    def to_body(self) -> dict:
        return {"__type": self.type_name, "Message": self.message}


class ValidationException(AutoScalingError):
    type_name = "ValidationException"


class ObjectNotFoundException(AutoScalingError):
    type_name = "ObjectNotFoundException"


def _key(kind: bytes, region: str, *parts: str) -> bytes:
    return kind + "\x00".join((region, *parts)).encode() + b"\x00"


def _range(kind: bytes, region: str, *parts: str) -> tuple[bytes, bytes]:
    low = kind + "\x00".join((region, *parts)).encode() + b"\x00"
    return low, low[:-1] + b"\x01"


def settings() -> tuple[float, float, float]:
    """(interval, scale-out window, scale-in window) in seconds, from the environment."""
    get = lambda name, default: float(os.environ.get(name, default))  # noqa: E731
    return (get("SHOAL_AUTOSCALING_INTERVAL_S", 10), get("SHOAL_AUTOSCALING_SCALE_OUT_S", 120),
            get("SHOAL_AUTOSCALING_SCALE_IN_S", 900))


class AutoScaling:
    """The API over one worker's storage."""

    OPERATIONS = ("RegisterScalableTarget", "DescribeScalableTargets", "DeregisterScalableTarget",
                  "PutScalingPolicy", "DescribeScalingPolicies", "DeleteScalingPolicy", "DescribeScalingActivities",
                  "PutScheduledAction", "DescribeScheduledActions", "DeleteScheduledAction")
    WRITES = frozenset({"RegisterScalableTarget", "DeregisterScalableTarget", "PutScalingPolicy",
                        "DeleteScalingPolicy", "PutScheduledAction", "DeleteScheduledAction"})

    def __init__(self, engine, catalog, clock=time.time, account: str = "000000000000") -> None:
        self.engine, self.catalog, self.clock, self.account = engine, catalog, clock, account

    def known(self, operation: str) -> bool:
        return operation in self.OPERATIONS

    def prepare(self, operation: str, data, region: str):
        """(whether it writes, a job returning the operation's output)."""
        if operation not in self.OPERATIONS:
            raise ValidationException(f"Shoal does not implement the Application Auto Scaling operation "
                                      f"{operation} yet")
        if not isinstance(data, dict):
            raise ValidationException("The request body must be a JSON object")
        handler = getattr(self, "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", operation).lower())
        return operation in self.WRITES, lambda: handler(data, region)

    # -- targets ---------------------------------------------------------------------------

    def _checked_target(self, data: dict, region: str, txn) -> tuple[str, str, str | None, str]:
        namespace = data.get("ServiceNamespace")
        if namespace != "dynamodb":
            raise ValidationException(f"Unsupported service namespace {namespace!r}: Shoal scales DynamoDB "
                                      "tables and indexes only")
        resource, dimension = data.get("ResourceId"), data.get("ScalableDimension")
        match = _RESOURCE.fullmatch(resource) if isinstance(resource, str) else None
        if match is None:
            raise ValidationException(f"Unsupported resource ID {resource!r}: expected table/NAME or "
                                      "table/NAME/index/INDEX")
        if dimension not in DIMENSIONS or (DIMENSIONS[dimension][0] == "index") != (match[2] is not None):
            raise ValidationException(f"Unsupported scalable dimension {dimension!r} for resource ID {resource}")
        table = self.catalog.get(txn, region, match[1])
        if table is None:
            raise ValidationException(f"DynamoDB table {match[1]} does not exist")
        if match[2] is not None and match[2] not in {g["IndexName"] for g in
                                                     table.description.get("GlobalSecondaryIndexes") or ()}:
            raise ValidationException(f"DynamoDB index {match[2]} does not exist on table {match[1]}")
        return resource, match[1], match[2], dimension

    def _register_scalable_target(self, data: dict, region: str) -> dict:
        with self.engine.write() as txn:
            resource, table_name, _, dimension = self._checked_target(data, region, txn)
            target = read_target(txn, region, resource, dimension)
            if target is None and (data.get("MinCapacity") is None or data.get("MaxCapacity") is None):
                raise ValidationException("MinCapacity and MaxCapacity are required for a new scalable target")
            for member in ("MinCapacity", "MaxCapacity"):
                if data.get(member) is not None and (not isinstance(data[member], int) or data[member] < 1):
                    raise ValidationException(f"{member} must be a positive integer for DynamoDB")
            low, high = (data[m] if data.get(m) is not None else target[m] for m in ("MinCapacity", "MaxCapacity"))
            if low > high:
                raise ValidationException("Minimum capacity cannot be greater than maximum capacity")
            target = write_target(txn, region, resource, dimension, low, high, self.clock(), self.account)
            if isinstance(data.get("SuspendedState"), dict):
                target["SuspendedState"].update({k: bool(v) for k, v in data["SuspendedState"].items()
                                                 if k in target["SuspendedState"]})
                txn.put("meta", _key(_TARGET, region, resource, dimension), orjson.dumps(target))
        return {"ScalableTargetARN": target["ScalableTargetARN"]}

    def _describe_scalable_targets(self, data: dict, region: str) -> dict:
        self._namespace(data)
        low, high = _range(_TARGET, region)
        with self.engine.read() as txn:
            targets = [orjson.loads(raw) for _, raw in txn.scan("meta", low, high)]
        ids, dimension = data.get("ResourceIds"), data.get("ScalableDimension")
        found = [t for t in targets if (not ids or t["ResourceId"] in ids)
                 and (dimension is None or t["ScalableDimension"] == dimension)]
        return _page(found, data, "ScalableTargets")

    def _deregister_scalable_target(self, data: dict, region: str) -> dict:
        self._namespace(data)
        with self.engine.write() as txn:
            key = _key(_TARGET, region, str(data.get("ResourceId")), str(data.get("ScalableDimension")))
            if txn.get("meta", key) is None:
                raise ObjectNotFoundException(f"No scalable target registered for service namespace: dynamodb, "
                                              f"resource ID: {data.get('ResourceId')}, scalable dimension: "
                                              f"{data.get('ScalableDimension')}")
            remove_target(txn, region, data["ResourceId"], data["ScalableDimension"])
        return {}

    # -- policies --------------------------------------------------------------------------

    def _put_scaling_policy(self, data: dict, region: str) -> dict:
        name = data.get("PolicyName")
        if not isinstance(name, str) or not name:
            raise ValidationException("PolicyName is required")
        policy_type = data.get("PolicyType", "StepScaling")
        if policy_type == "StepScaling":
            return self._put_step_policy(data, region, name)
        if policy_type != "TargetTrackingScaling":
            raise ValidationException(f"Unsupported policy type {policy_type!r}: Shoal scales DynamoDB with "
                                      "TargetTrackingScaling and StepScaling policies")
        config = data.get("TargetTrackingScalingPolicyConfiguration")
        if not isinstance(config, dict):
            raise ValidationException("TargetTrackingScalingPolicyConfiguration is required for a "
                                      "TargetTrackingScaling policy")
        target_value = config.get("TargetValue")
        if not isinstance(target_value, (int, float)) or not 20 <= target_value <= 90:
            raise ValidationException("TargetValue for DynamoDB capacity utilization must be between 20 and 90")
        for member in ("ScaleOutCooldown", "ScaleInCooldown"):
            value = config.get(member)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValidationException(f"{member} must be a non-negative integer")
        if "DisableScaleIn" in config and not isinstance(config["DisableScaleIn"], bool):
            raise ValidationException("DisableScaleIn must be a boolean")
        metric = (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
        with self.engine.write() as txn:
            resource, table_name, _, dimension = self._checked_target(data, region, txn)
            if metric not in METRICS or METRICS[metric] != DIMENSIONS[dimension][2]:
                raise ValidationException(f"PredefinedMetricType {metric} does not fit scalable dimension "
                                          f"{dimension}")
            if txn.get("meta", _key(_TARGET, region, resource, dimension)) is None:
                raise ObjectNotFoundException(f"No scalable target registered for service namespace: dynamodb, "
                                              f"resource ID: {resource}, scalable dimension: {dimension}")
            policy = write_policy(txn, region, resource, dimension, name, config, self.clock(), self.account)
        return {"PolicyARN": policy["PolicyARN"], "Alarms": policy["Alarms"]}

    def _put_step_policy(self, data: dict, region: str, name: str) -> dict:
        try:
            config = steps.checked(data.get("StepScalingPolicyConfiguration"))
        except steps.StepConfigError as exc:
            raise ValidationException(str(exc)) from None
        with self.engine.write() as txn:
            resource, _, _, dimension = self._checked_target(data, region, txn)
            if txn.get("meta", _key(_TARGET, region, resource, dimension)) is None:
                raise ObjectNotFoundException(f"No scalable target registered for service namespace: dynamodb, "
                                              f"resource ID: {resource}, scalable dimension: {dimension}")
            policy = write_policy(txn, region, resource, dimension, name, config, self.clock(), self.account,
                                  "StepScaling")
        return {"PolicyARN": policy["PolicyARN"], "Alarms": []}

    def _describe_scaling_policies(self, data: dict, region: str) -> dict:
        out = self._describe(_POLICY, data, region, "PolicyNames", "PolicyName", "ScalingPolicies", _INTERNAL)
        if any(p["PolicyType"] == "StepScaling" for p in out["ScalingPolicies"]):
            from shoal.metrics import alarms as cloudwatch_alarms

            with self.engine.read() as txn:  # a step policy's alarms are those whose actions name it
                naming = {}
                for _, alarm in cloudwatch_alarms.iter_alarms(txn, region):
                    for arn in {a for field in cloudwatch_alarms.ACTION_LISTS.values()
                                for a in alarm.get(field) or ()}:
                        naming.setdefault(arn, []).append({"AlarmName": alarm["AlarmName"],
                                                           "AlarmARN": alarm["AlarmArn"]})
            for policy in out["ScalingPolicies"]:
                if policy["PolicyType"] == "StepScaling":
                    policy["Alarms"] = naming.get(policy["PolicyARN"], [])
        return out

    def _delete_scaling_policy(self, data: dict, region: str) -> dict:
        return self._delete(_POLICY, data, region, "PolicyName", "scaling policy", "policy name",
                            lambda txn, policy: tracking_alarms.delete(txn, region, policy))

    def _describe_scaling_activities(self, data: dict, region: str) -> dict:
        self._namespace(data)
        low, high = _range(_ACTIVITY, region)
        with self.engine.read() as txn:
            activities = [orjson.loads(raw) for _, raw in txn.scan("meta", low, high)]
        resource, dimension = data.get("ResourceId"), data.get("ScalableDimension")
        found = [a for a in activities if (resource is None or a["ResourceId"] == resource)
                 and (dimension is None or a["ScalableDimension"] == dimension)]
        found.sort(key=lambda a: a["StartTime"], reverse=True)
        return _page(found, data, "ScalingActivities")

    # -- scheduled actions -----------------------------------------------------------------

    def _put_scheduled_action(self, data: dict, region: str) -> dict:
        name = data.get("ScheduledActionName")
        if not isinstance(name, str) or not name:
            raise ValidationException("ScheduledActionName is required")
        with self.engine.write() as txn:
            resource, _, _, dimension = self._checked_target(data, region, txn)
            if txn.get("meta", _key(_TARGET, region, resource, dimension)) is None:
                raise ObjectNotFoundException(f"No scalable target registered for service namespace: dynamodb, "
                                              f"resource ID: {resource}, scalable dimension: {dimension}")
            key = _key(_SCHEDULED, region, resource, dimension, name)
            raw = txn.get("meta", key)
            action = orjson.loads(raw) if raw is not None else {
                "ScheduledActionName": name, "ServiceNamespace": "dynamodb", "ResourceId": resource,
                "ScalableDimension": dimension, "CreationTime": round(self.clock(), 3),
                "ScheduledActionARN": f"arn:aws:autoscaling:{region}:{self.account}:scheduledAction:"
                                      f"{uuid.uuid4()}:resource/dynamodb/{resource}:scheduledActionName/{name}"}
            schedule = data.get("Schedule", action.get("Schedule"))
            timezone = data.get("Timezone", action.get("Timezone"))
            try:
                tz = cron.zone(timezone)
                recurrence = cron.parse(schedule) if isinstance(schedule, str) and \
                    schedule.startswith("cron(") else None
            except cron.CronError as exc:
                raise ValidationException(str(exc)) from None
            if recurrence is None and (not isinstance(schedule, str) or not (
                    _AT.fullmatch(schedule) or _RATE.fullmatch(schedule))):
                raise ValidationException(f"Unsupported schedule {schedule!r}: expected at(yyyy-mm-ddThh:mm:ss), "
                                          "rate(N minutes|hours|days) or cron(Minutes Hours Day-of-month Month "
                                          "Day-of-week Year)")
            target_action = data.get("ScalableTargetAction", action.get("ScalableTargetAction")) or {}
            if not isinstance(target_action, dict) or not any(
                    isinstance(target_action.get(m), int) for m in ("MinCapacity", "MaxCapacity")):
                raise ValidationException("ScalableTargetAction must set MinCapacity, MaxCapacity or both")
            action.update({"Schedule": schedule, "ScalableTargetAction": target_action,
                           "Timezone": timezone or "UTC"})
            for member in ("StartTime", "EndTime"):
                if data.get(member) is not None:
                    if not isinstance(data[member], (int, float)):
                        raise ValidationException(f"{member} must be a timestamp")
                    action[member] = data[member]
            if action.get("StartTime", float("-inf")) >= action.get("EndTime", float("inf")):
                raise ValidationException("EndTime must be after StartTime")
            action.pop("last", None)  # a changed schedule runs afresh
            action.pop("next", None)
            if recurrence is not None:
                # the first matching minute from StartTime (included) or from now
                start = max(action.get("StartTime", 0) - 0.001, self.clock())
                action["next"] = recurrence.next_after(start, tz)
            txn.put("meta", key, orjson.dumps(action))
        return {}

    def _describe_scheduled_actions(self, data: dict, region: str) -> dict:
        return self._describe(_SCHEDULED, data, region, "ScheduledActionNames", "ScheduledActionName",
                              "ScheduledActions", ("last", "next"))

    def _delete_scheduled_action(self, data: dict, region: str) -> dict:
        return self._delete(_SCHEDULED, data, region, "ScheduledActionName", "scheduled action",
                            "scheduled action name")

    # -- what policies and scheduled actions share -----------------------------------------

    def _describe(self, kind: bytes, data: dict, region: str, names_member: str, name_member: str, member: str,
                  internal: tuple[str, ...]) -> dict:
        """The records of ``kind`` the request names (by ``names_member``,
        ResourceId, ScalableDimension), in pages, without their ``internal`` fields."""
        self._namespace(data)
        low, high = _range(kind, region)
        with self.engine.read() as txn:
            records = [orjson.loads(raw) for _, raw in txn.scan("meta", low, high)]
        names, resource, dimension = data.get(names_member), data.get("ResourceId"), data.get("ScalableDimension")
        found = [{k: v for k, v in r.items() if k not in internal} for r in records
                 if (not names or r[name_member] in names) and (resource is None or r["ResourceId"] == resource)
                 and (dimension is None or r["ScalableDimension"] == dimension)]
        return _page(found, data, member)

    def _delete(self, kind: bytes, data: dict, region: str, name_member: str, what: str, name_words: str,
                also=None) -> dict:
        """Delete the record of ``kind`` the request names (and what ``also``
        deletes with it, in the same transaction), or ObjectNotFoundException in AWS's form."""
        self._namespace(data)
        key = _key(kind, region, str(data.get("ResourceId")), str(data.get("ScalableDimension")),
                   str(data.get(name_member)))
        with self.engine.write() as txn:
            raw = txn.get("meta", key)
            if raw is None:
                raise ObjectNotFoundException(f"No {what} found for service namespace: dynamodb, resource ID: "
                                              f"{data.get('ResourceId')}, scalable dimension: "
                                              f"{data.get('ScalableDimension')}, {name_words}: {data.get(name_member)}")
            if also is not None:
                also(txn, orjson.loads(bytes(raw)))
            txn.delete("meta", key)
        return {}

    @staticmethod
    def _namespace(data: dict) -> None:
        if data.get("ServiceNamespace") != "dynamodb":
            raise ValidationException(f"Unsupported service namespace {data.get('ServiceNamespace')!r}: Shoal "
                                      "scales DynamoDB tables and indexes only")


class InvalidNextToken(AutoScalingError):
    type_name = "InvalidNextTokenException"


def _page(items: list, data: dict, member: str) -> dict:
    """MaxResults (at most 50) and NextToken (the position, as a string) over ``items``."""
    limit = data.get("MaxResults") or 50
    if not isinstance(limit, int) or not 1 <= limit <= 50:
        raise ValidationException("MaxResults must be between 1 and 50")
    token = data.get("NextToken")
    start = 0
    if token is not None:
        if not isinstance(token, str) or not token.isdigit() or int(token) > len(items):
            raise InvalidNextToken("Invalid token")
        start = int(token)
    out = {member: items[start:start + limit]}
    if start + limit < len(items):
        out["NextToken"] = str(start + limit)
    return out


# -- the records, for this API and for DynamoDB's UpdateTableReplicaAutoScaling ---------------
# (``shoal.replication.replica_scaling``: a global table's auto scaling settings are these
# records, in each replica's region)


def read_target(txn, region: str, resource: str, dimension: str) -> dict | None:
    """The scalable target of ``resource`` (``table/T`` or ``table/T/index/I``) and dimension, or None."""
    raw = txn.get("meta", _key(_TARGET, region, resource, dimension))
    return orjson.loads(raw) if raw is not None else None


def read_policies(txn, region: str, resource: str, dimension: str,
                  policy_type: str | None = "TargetTrackingScaling") -> list[dict]:
    """The scaling policies of one target of ``policy_type`` (None: every
    type), by name.  Target tracking by default: DynamoDB's auto scaling
    descriptions (UpdateTableReplicaAutoScaling's) have no other kind."""
    low, high = _range(_POLICY, region, resource, dimension)
    policies = [orjson.loads(raw) for _, raw in txn.scan("meta", low, high)]
    return [p for p in policies if policy_type is None or p["PolicyType"] == policy_type]


def write_target(txn, region: str, resource: str, dimension: str, minimum: int, maximum: int, now: float,
                 account: str, role: str | None = None) -> dict:
    """Register the target, or change its range (the caller checked ``minimum <= maximum``)
    and, if given, its role."""
    key = _key(_TARGET, region, resource, dimension)
    raw = txn.get("meta", key)
    target = orjson.loads(raw) if raw is not None else {
        "ServiceNamespace": "dynamodb", "ResourceId": resource, "ScalableDimension": dimension,
        "RoleARN": ROLE.format(account=account), "CreationTime": round(now, 3),
        "ScalableTargetARN": f"arn:aws:application-autoscaling:{region}:{account}:"
                             f"scalable-target/{uuid.uuid4().hex[:24]}",
        "SuspendedState": {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                           "ScheduledScalingSuspended": False}}
    target["MinCapacity"], target["MaxCapacity"] = minimum, maximum
    if role is not None:
        target["RoleARN"] = role
    txn.put("meta", key, orjson.dumps(target))
    return target


def remove_target(txn, region: str, resource: str, dimension: str) -> bool:
    """Deregister the target and its policies; whether there was one."""
    key = _key(_TARGET, region, resource, dimension)
    if txn.get("meta", key) is None:
        return False
    txn.delete("meta", key)
    low, high = _range(_POLICY, region, resource, dimension)
    for policy_key, raw in [(bytes(k), bytes(v)) for k, v in txn.scan("meta", low, high)]:
        tracking_alarms.delete(txn, region, orjson.loads(raw))
        txn.delete("meta", policy_key)
    return True


def policy_by_arn(txn, region: str, arn: str) -> dict | None:
    """The scaling policy of ``arn`` in ``region``, or None."""
    low, high = _range(_POLICY, region)
    for _, raw in txn.scan("meta", low, high):
        policy = orjson.loads(raw)
        if policy["PolicyARN"] == arn:
            return policy
    return None


def _capacity_of(txn, region: str, resource: str, dimension: str) -> int:
    """The provisioned units of the target's table or GSI (0 if there are none)."""
    from shoal.api.catalog import table_key

    match = _RESOURCE.fullmatch(resource)
    raw = txn.get("meta", table_key(region, match[1])) if match else None
    if raw is None:
        return 0
    desc = orjson.loads(bytes(raw))["desc"]
    part = desc if match[2] is None else next((g for g in desc.get("GlobalSecondaryIndexes") or ()
                                               if g["IndexName"] == match[2]), {})
    return int((part.get("ProvisionedThroughput") or {}).get(DIMENSIONS[dimension][1]) or 0)


#: A policy record's fields DescribeScalingPolicies does not show: its id, the
#: capacity its target tracking alarms' thresholds were set for, and its cooldown
#: (``Scaler._keep_cooldown``).
_INTERNAL = ("id", "capacity", "cooldown")


def write_policy(txn, region: str, resource: str, dimension: str, name: str, config: dict, now: float,
                 account: str, policy_type: str = "TargetTrackingScaling") -> dict:
    """Create or replace the policy ``name`` (its ARN kept): a target
    tracking policy with its two CloudWatch alarms, set for the target's
    present capacity (``tracking_alarms``), or a step scaling policy, which
    has none of its own (the alarms that name it run it)."""
    key = _key(_POLICY, region, resource, dimension, name)
    raw = txn.get("meta", key)
    old = orjson.loads(raw) if raw is not None else {}
    policy_id = old.get("id") or str(uuid.uuid4())
    arn = (f"arn:aws:autoscaling:{region}:{account}:scalingPolicy:{policy_id}:resource/dynamodb/"
           f"{resource}:policyName/{name}")
    tracking = policy_type == "TargetTrackingScaling"
    if old and not tracking:
        tracking_alarms.delete(txn, region, old)  # a target tracking policy replaced by a step policy
    policy = {"PolicyARN": arn, "PolicyName": name, "ServiceNamespace": "dynamodb", "ResourceId": resource,
              "ScalableDimension": dimension, "PolicyType": policy_type,
              ("TargetTrackingScalingPolicyConfiguration" if tracking else "StepScalingPolicyConfiguration"): config,
              "Alarms": tracking_alarms.names(arn, resource) if tracking else [],
              "CreationTime": old.get("CreationTime") or round(now, 3), "id": policy_id}
    if old.get("PolicyType") == policy_type and "cooldown" in old:  # a changed policy: its last change still counts
        policy["cooldown"] = old["cooldown"]
    if tracking:
        match = _RESOURCE.fullmatch(resource)
        policy["capacity"] = _capacity_of(txn, region, resource, dimension)
        tracking_alarms.put(txn, region, account, policy, match[1], match[2], DIMENSIONS[dimension][2],
                            policy["capacity"], now)
    txn.put("meta", key, orjson.dumps(policy))
    return policy


class Scaler:
    """The background job that follows each target's consumption (see the module's docstring)."""

    __name__ = "autoscaling"
    per_worker = True  # under a lease of its own (shoal.server.background)

    def __init__(self, engine, catalog, capacity, clock=time.time) -> None:
        self.engine, self.catalog, self.capacity, self.clock = engine, catalog, capacity, clock
        self.interval_s, self.scale_out_s, self.scale_in_s = settings()
        self._samples: dict[tuple, list] = {}  # (region, resource, dimension) -> [(time, taken, provisioned)]
        #: (region, resource, dimension) -> the wall time before which no decrease is allowed
        #: (shoal.capacity.decreases): a refused scale-in is recorded once, not every round.
        self._blocked: dict[tuple, float] = {}
        self._next = 0.0
        self._lease = Lease(engine, _LEASE_KEY, LEASE_S, clock)
        #: How often an alarm that stays in a state invokes the step policy its actions name
        #: (CloudWatch: once a minute).
        self.repeat_s = float(os.environ.get("SHOAL_AUTOSCALING_ALARM_REPEAT_S", 60))
        self._invoked: dict[tuple, float] = {}  # (policy ARN, alarm name) -> wall time of the last invocation
        # A policy's cooldown is its record's "cooldown" (``_keep_cooldown``): a step policy's
        # [wall time it ends, "out" or "in", the capacity before that change]; a target tracking
        # policy's [wall time its scale-out cooldown ends, the capacity that scale-out set, wall
        # time its scale-in cooldown ends] (``_held``).

    def __call__(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval_s
        if self.capacity is None or not self._lease.hold():
            return False
        self._run_scheduled()
        with self.engine.read() as txn:
            low, high = PREFIX + b"target/", PREFIX + b"target0"
            targets = [orjson.loads(raw) for _, raw in txn.scan("meta", low, high)]
            policies = [orjson.loads(raw) for _, raw in txn.scan("meta", _POLICY, PREFIX + b"policy0")]
        for target in targets:
            try:
                self._follow(target, policies, now)
            except Exception:  # one target's trouble must not stop the others
                _log_failure(target["ResourceId"])
        if any(p["PolicyType"] == "StepScaling" for p in policies):
            self._run_step_policies(targets, policies)
        return False

    def _run_step_policies(self, targets: list, policies: list) -> None:
        """Invoke each step policy named by an alarm's actions for the state
        the alarm is in: at the transition, then every ``repeat_s`` while it stays."""
        from shoal.metrics import alarms as cloudwatch_alarms

        wall = self.clock()
        with self.engine.read() as txn:
            alarms = list(cloudwatch_alarms.iter_alarms(txn))
        naming: dict[str, list] = {}
        for region, alarm in alarms:
            if alarm.get("ActionsEnabled", True):
                for arn in alarm.get(cloudwatch_alarms.ACTION_LISTS[alarm["StateValue"]]) or ():
                    naming.setdefault(arn, []).append(alarm)
        by_target = {_identity(t, "ScalableTargetARN"): t for t in targets}
        for policy in policies:
            target = by_target.get(_identity(policy, "PolicyARN"))
            if policy["PolicyType"] != "StepScaling" or target is None:
                continue
            for alarm in naming.get(policy["PolicyARN"], ()):
                key = (policy["PolicyARN"], alarm["AlarmName"])
                last = self._invoked.get(key)
                if last is not None and last >= alarm["StateUpdatedTimestamp"] and wall - last < self.repeat_s:
                    continue
                self._invoked[key] = wall
                try:
                    self._step(target, policy, alarm, wall)
                except Exception:
                    _log_failure(target["ResourceId"])

    def _step(self, target: dict, policy: dict, alarm: dict, wall: float) -> None:
        """Run step policy ``policy`` as ``alarm`` invokes it (see the module's docstring)."""
        found = self._part_of(target)
        if found is None:
            return
        region, table_name, index, units_member, part, provisioned = found
        config = policy["StepScalingPolicyConfiguration"]
        points = orjson.loads(alarm["StateReasonData"]).get("recentDatapoints") if alarm.get("StateReasonData") \
            else None
        breach = (points[-1] - alarm["Threshold"]) if points else 0.0
        below = breach < 0 or (breach == 0 and alarm.get("ComparisonOperator", "").startswith("Less"))
        step = steps.step_for(config, breach, below)
        if step is None:
            return
        base = provisioned
        until, direction, before = policy.get("cooldown") or (0.0, "", 0)
        cooling = wall < until
        wanted = steps.adjusted(config, step, base)
        if cooling and direction == "out" and wanted > provisioned:
            wanted = max(provisioned, steps.adjusted(config, step, before))  # the last scale-out counts
        wanted = min(max(wanted, target["MinCapacity"]), target["MaxCapacity"])
        if wanted == provisioned or (cooling and wanted < provisioned) or _suspended(target, wanted, provisioned):
            return
        cause = (f"monitor alarm {alarm['AlarmName']} in state {alarm['StateValue']} triggered policy "
                 f"{policy['PolicyName']}")
        if self._apply(region, table_name, index, units_member, part, wanted, target, cause, provisioned):
            out = wanted > provisioned
            start = before if cooling and direction == "out" and out else provisioned
            self._keep_cooldown(policy, [wall + config.get("Cooldown", steps.DEFAULT_COOLDOWN_S),
                                         "out" if out else "in", start])

    def _part_of(self, target: dict):
        """(region, table name, index, units member, the table's or GSI's
        description, its provisioned units) of a provisioned target, else None."""
        region = target["ScalableTargetARN"].split(":")[3]
        match = _RESOURCE.fullmatch(target["ResourceId"])
        table_name, index = match[1], match[2]
        units_member = DIMENSIONS[target["ScalableDimension"]][1]
        with self.engine.read() as txn:
            table = self.catalog.get(txn, region, table_name)
        if table is None:
            return None
        desc = table.description
        part = desc if index is None else next((g for g in desc.get("GlobalSecondaryIndexes") or ()
                                                if g["IndexName"] == index), None)
        if part is None or (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED") != "PROVISIONED":
            return None
        provisioned = int((part.get("ProvisionedThroughput") or {}).get(units_member) or 0)
        if provisioned <= 0:
            return None
        return region, table_name, index, units_member, part, provisioned

    def _retune_alarms(self, region: str, target: dict, policies: list, table_name: str, index, kind: str,
                       provisioned: int) -> None:
        """Set the target tracking alarms' thresholds for the capacity the target now has."""
        stale = [p for p in policies if p["PolicyType"] == "TargetTrackingScaling"
                 and _identity(p, "PolicyARN") == _identity(target, "ScalableTargetARN")
                 and p.get("capacity") != provisioned]
        if not stale:
            return
        with self.engine.write() as txn:
            for policy in stale:
                key = _key(_POLICY, region, policy["ResourceId"], policy["ScalableDimension"], policy["PolicyName"])
                raw = txn.get("meta", key)
                if raw is None:
                    continue
                stored = orjson.loads(bytes(raw))
                stored["capacity"] = provisioned
                tracking_alarms.put(txn, region, stored["PolicyARN"].split(":")[4], stored, table_name, index, kind,
                                    provisioned, self.clock())
                txn.put("meta", key, orjson.dumps(stored))

    def _run_scheduled(self) -> None:
        """Apply each scheduled action whose time has come (once for at(),
        every period for rate(), within its StartTime and EndTime) to its
        target's MinCapacity and MaxCapacity; the target's capacity is then
        brought into the new range by ``_follow``."""
        wall = self.clock()
        with self.engine.read() as txn:  # most servers have none: no write transaction every round
            if not any(True for _ in txn.scan("meta", _SCHEDULED, PREFIX + b"scheduled0")):
                return
        with self.engine.write() as txn:
            for key, raw in list(txn.scan("meta", _SCHEDULED, PREFIX + b"scheduled0")):
                action = orjson.loads(raw)
                if wall < action.get("StartTime", 0) or wall >= action.get("EndTime", float("inf")):
                    continue
                last = action.get("last")
                at = _AT.fullmatch(action["Schedule"])
                if at is not None:
                    local = datetime.datetime.strptime(at[1], "%Y-%m-%dT%H:%M:%S")
                    due = local.replace(tzinfo=cron.zone(action.get("Timezone"))).timestamp()
                    if last is not None or wall < due:
                        continue
                elif action["Schedule"].startswith("cron("):
                    due = action.get("next")
                    if due is None or wall < due:
                        continue
                    # missed minutes (a server down) fire once, then the schedule goes on from now
                    action["next"] = cron.parse(action["Schedule"]).next_after(
                        wall, cron.zone(action.get("Timezone")))
                else:
                    rate = _RATE.fullmatch(action["Schedule"])
                    period = int(rate[1]) * _UNIT_S[rate[2].rstrip("s")]
                    start = action.get("StartTime", action["CreationTime"])
                    due = start + ((wall - start) // period) * period
                    if last is not None and last >= due:
                        continue
                region = action["ScheduledActionARN"].split(":")[3]
                target_key = _key(_TARGET, region, action["ResourceId"], action["ScalableDimension"])
                target_raw = txn.get("meta", target_key)
                if target_raw is None:
                    continue
                target = orjson.loads(target_raw)
                if target.get("SuspendedState", {}).get("ScheduledScalingSuspended"):
                    action["last"] = wall  # a suspended schedule's due time passes unused, as in AWS
                    txn.put("meta", bytes(key), orjson.dumps(action))
                    continue
                wanted = {**{m: target[m] for m in ("MinCapacity", "MaxCapacity")},
                          **{m: v for m, v in action["ScalableTargetAction"].items()
                             if m in ("MinCapacity", "MaxCapacity") and isinstance(v, int)}}
                wanted["MaxCapacity"] = max(wanted["MaxCapacity"], wanted["MinCapacity"])
                target.update(wanted)
                txn.put("meta", target_key, orjson.dumps(target))
                action["last"] = wall
                txn.put("meta", bytes(key), orjson.dumps(action))
                started = round(wall, 3)
                activity = {"ActivityId": str(uuid.uuid4()), "ServiceNamespace": "dynamodb",
                            "ResourceId": action["ResourceId"], "ScalableDimension": action["ScalableDimension"],
                            "Description": f"Setting min capacity to {wanted['MinCapacity']} and max capacity to "
                                           f"{wanted['MaxCapacity']}",
                            "Cause": f"scheduled action name {action['ScheduledActionName']} was triggered",
                            "StartTime": started, "EndTime": started, "StatusCode": "Successful",
                            "StatusMessage": f"Successfully set min capacity to {wanted['MinCapacity']} and max "
                                             f"capacity to {wanted['MaxCapacity']}"}
                txn.put("meta", _key(_ACTIVITY, region, action["ResourceId"], action["ScalableDimension"],
                                     f"{int(started * 1000):015d}", activity["ActivityId"]), orjson.dumps(activity))

    def _follow(self, target: dict, policies: list, now: float) -> None:
        from shoal.capacity import policy_of

        found = self._part_of(target)
        if found is None:
            return
        region, table_name, index, units_member, part, provisioned = found
        kind = DIMENSIONS[target["ScalableDimension"]][2]
        self._retune_alarms(region, target, policies, table_name, index, kind, provisioned)
        with self.engine.read() as txn:
            table = self.catalog.get(txn, region, table_name)
        if table is None:
            return
        limits = policy_of(table)
        limit = (limits.reads if kind == "read" else limits.writes).get(index) if limits else None
        if limit is None:
            return
        samples = self._samples.setdefault((region, target["ResourceId"], target["ScalableDimension"]), [])
        samples.append((now, self.capacity.shared.taken(limit.key), provisioned))
        horizon = max(self.scale_out_s, self.scale_in_s) + 2 * self.interval_s
        while samples and now - samples[0][0] > horizon:
            samples.pop(0)
        wanted, cause, acting = None, None, None
        low, high = target["MinCapacity"], target["MaxCapacity"]
        wall = self.clock()
        if provisioned < low or provisioned > high:
            wanted = min(max(provisioned, low), high)
            cause = (f"the capacity {provisioned} was outside the scalable target's range [{low}, {high}]: "
                     f"from {provisioned} to {wanted}")
        else:
            for policy in policies:
                if _identity(policy, "PolicyARN") != _identity(target, "ScalableTargetARN") \
                        or policy["PolicyType"] != "TargetTrackingScaling":
                    continue
                goal = policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] / 100.0
                decided = self._decide(samples, now, provisioned, goal, policy)
                if decided is not None and _suspended(target, decided[0], provisioned):
                    break
                if decided is not None:
                    bounded = min(max(decided[0], low), high)
                    if bounded == provisioned or self._held(policy, bounded, provisioned, wall):
                        continue  # this policy's cooldown holds it: another policy may still act
                    wanted, cause, acting = bounded, f"{decided[1]}: from {provisioned} to {bounded}", policy
                    break
        if wanted is None or wanted == provisioned:
            return
        key = (region, target["ResourceId"], target["ScalableDimension"])
        if wanted < provisioned and wall < self._blocked.get(key, 0.0):
            return  # the day's decreases are spent: tried again once the budget allows one
        if self._apply(region, table_name, index, units_member, part, wanted, target, cause, provisioned):
            samples.clear()  # the new capacity is judged afresh
            if acting is not None:
                self._cool(acting, wanted, provisioned, wall)

    def _held(self, policy: dict, wanted: int, provisioned: int, wall: float) -> bool:
        """Whether the policy's cooldowns hold its change from ``provisioned`` to ``wanted``.

        The Application Auto Scaling User Guide ("Target tracking scaling
        policies", Cooldown period): during the scale-out cooldown the
        capacity the initiating scale-out added counts as part of the desired
        capacity, so only a larger scale-out (past the capacity that one set)
        is made; during the scale-in cooldown no scale-in is.  A scale-out
        ends a scale-in cooldown (``_cool``)."""
        state = policy.get("cooldown")
        if state is None:
            return False
        out_until, reached, in_until = state
        if wanted > provisioned:
            return wall < out_until and wanted <= reached
        return wall < in_until

    def _cool(self, policy: dict, wanted: int, provisioned: int, wall: float) -> None:
        """Start the cooldown of the change the policy just made: ScaleOutCooldown
        or ScaleInCooldown seconds (0 for DynamoDB unless set, the API Reference's
        default for DynamoDB tables and GSIs)."""
        config = policy["TargetTrackingScalingPolicyConfiguration"]
        out_until, reached, in_until = policy.get("cooldown") or (0.0, 0, 0.0)
        if wanted > provisioned:  # a scale-out stops a scale-in cooldown, which then does not complete
            out_until, reached, in_until = wall + (config.get("ScaleOutCooldown") or 0), wanted, 0.0
        else:
            in_until = wall + (config.get("ScaleInCooldown") or 0)
        self._keep_cooldown(policy, [out_until, reached, in_until])

    def _keep_cooldown(self, policy: dict, state: list) -> None:
        """Record a policy's cooldown ``state`` in its record, where the
        scalable targets and policies are kept (and in ``policy``, this
        round's copy): a restart within the cooldown, or the scaler's lease
        passing to another worker, still honours it.  A policy deleted or
        replaced by a new one (another ARN) meanwhile keeps nothing."""
        policy["cooldown"] = state
        region = policy["PolicyARN"].split(":")[3]
        key = _key(_POLICY, region, policy["ResourceId"], policy["ScalableDimension"], policy["PolicyName"])
        with self.engine.write() as txn:
            raw = txn.get("meta", key)
            if raw is None:
                return
            stored = orjson.loads(bytes(raw))
            if stored["PolicyARN"] != policy["PolicyARN"]:
                return
            stored["cooldown"] = state
            txn.put("meta", key, orjson.dumps(stored))

    def _decide(self, samples: list, now: float, provisioned: int, goal: float, policy: dict):
        """(new capacity, cause) when the policy's alarm would fire, else None."""
        rates = []  # (end time, units a second) of each interval between samples
        for (t0, taken0, _), (t1, taken1, _) in zip(samples, samples[1:]):
            if t1 > t0:
                rates.append((t1, (taken1 - taken0) / (t1 - t0)))
        if not rates:
            return None

        def window(seconds: float):
            inside = [rate for end, rate in rates if now - end < seconds]
            covered = now - samples[0][0] >= seconds - self.interval_s / 2
            return inside if covered and inside else None

        high = window(self.scale_out_s)
        if high is not None and all(rate > goal * provisioned for rate in high):
            used = sum(high) / len(high)
            return (max(provisioned + 1, math.ceil(used / goal)),
                    f"utilization above {goal * 100:g}% of {provisioned} for {self.scale_out_s:g} s "
                    f"(policy {policy['PolicyName']})")
        config = policy["TargetTrackingScalingPolicyConfiguration"]
        low = window(self.scale_in_s)
        if not config.get("DisableScaleIn") and low is not None and \
                all(rate < SCALE_IN_SHARE * goal * provisioned for rate in low):
            used = sum(low) / len(low)
            wanted = max(1, math.ceil(used / goal))
            if wanted < provisioned:
                return wanted, (f"utilization below {SCALE_IN_SHARE * goal * 100:g}% of {provisioned} for "
                                f"{self.scale_in_s:g} s (policy {policy['PolicyName']})")
        return None

    def _apply(self, region, table_name, index, units_member, part, wanted, target, cause, was) -> bool:
        """Set the capacity through UpdateTable and record the activity; whether it was set."""
        from shoal.api import DEFAULT_ACCOUNT, Context
        from shoal.api import tables as table_ops

        throughput = dict(part["ProvisionedThroughput"])
        settings_ = {"ReadCapacityUnits": throughput.get("ReadCapacityUnits"),
                     "WriteCapacityUnits": throughput.get("WriteCapacityUnits"), units_member: wanted}
        request = {"TableName": table_name}
        if index is None:
            request["ProvisionedThroughput"] = settings_
        else:
            request["GlobalSecondaryIndexUpdates"] = [{"Update": {"IndexName": index,
                                                                  "ProvisionedThroughput": settings_}}]
        started = round(self.clock(), 3)
        ctx = Context(region, DEFAULT_ACCOUNT, self.engine, self.catalog, now=self.clock)
        status, message = "Successful", "Successfully set " + units_member + f" to {wanted}."
        word = "read" if units_member.startswith("Read") else "write"
        try:
            # UpdateTable's own rule, applied here too so that a scale-in waits for the budget
            check_decrease(throughput, settings_, started)
            table_ops.update_table(ctx, request)
        except ShoalError as exc:
            status = "Failed"
            message = f"Failed to set {word} capacity units to {wanted}. Reason: Failed updating table: {exc.message}"
            if isinstance(exc, LimitExceededException):
                key = (region, target["ResourceId"], target["ScalableDimension"])
                self._blocked[key] = next_decrease_at(throughput, started) or 0.0
        activity = {"ActivityId": str(uuid.uuid4()), "ServiceNamespace": "dynamodb",
                    "ResourceId": target["ResourceId"], "ScalableDimension": target["ScalableDimension"],
                    "Description": f"Setting {word} capacity units to {wanted}.",
                    "Cause": cause, "StartTime": started,
                    "EndTime": round(self.clock(), 3), "StatusCode": status, "StatusMessage": message}
        with self.engine.write() as txn:
            txn.put("meta", _key(_ACTIVITY, region, target["ResourceId"], target["ScalableDimension"],
                                 f"{int(started * 1000):015d}", activity["ActivityId"]), orjson.dumps(activity))
        return status == "Successful"


def _log_failure(resource: str) -> None:
    """One target's trouble is logged and must not stop the others."""
    import logging
    import traceback

    logging.getLogger("shoal").error("auto scaling of %s failed:\n%s", resource, traceback.format_exc())


def _suspended(target: dict, wanted: int, provisioned: int) -> bool:
    """Whether the target's SuspendedState holds a dynamic change from ``provisioned`` to ``wanted``."""
    state = target.get("SuspendedState") or {}
    return bool(state.get("DynamicScalingOutSuspended") if wanted > provisioned
                else state.get("DynamicScalingInSuspended"))


def _identity(record: dict, arn_member: str) -> tuple[str, str, str]:
    """(region, resource, dimension) of a target or policy record: what ties a
    policy to its target, region included (each region has its own)."""
    return record[arn_member].split(":")[3], record["ResourceId"], record["ScalableDimension"]
