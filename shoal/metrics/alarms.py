"""CloudWatch's metric alarms: their API, and their evaluation.

Operations: PutMetricAlarm, DescribeAlarms, DescribeAlarmsForMetric,
DescribeAlarmHistory, DeleteAlarms, SetAlarmState, EnableAlarmActions,
DisableAlarmActions, and TagResource / UntagResource / ListTagsForResource on
alarm ARNs.  Requests are checked as ``shoal.metrics.cloudwatch`` checks its
own (required parameters, the model's types and constraints, then
CloudWatch's rules) and answered as dicts that the request's protocol renders.

Evaluation (``Evaluator``, a background job of every worker, a round every
``EVALUATE_EVERY_S`` seconds) follows the CloudWatch User Guide's "Alarm
evaluation" and "Configuring how CloudWatch alarms treat missing data":

* an alarm looks at its ``EvaluationPeriods`` (N) most recent periods that
  have ended (CloudWatch's own notifications show the latest datapoint as the
  period that ended before the evaluation), each period's value the alarm's
  statistic of the metric, or the value of the metric math expression that
  returns data (``Metrics``, evaluated by GetMetricData);
* it goes to ALARM when at least ``DatapointsToAlarm`` (M, default N) of them
  breach the threshold, to OK otherwise;
* a period with no data is treated as ``TreatMissingData`` says: ``missing``
  (the default: if every datapoint is missing the alarm goes to
  INSUFFICIENT_DATA, otherwise the present ones are evaluated),
  ``notBreaching``, ``breaching``, or ``ignore`` (if every datapoint is
  missing the state stays as it is).  As the guide says, alarms on metrics of
  the ``AWS/DynamoDB`` namespace always ignore missing data, whatever they
  ask: DynamoDB publishes a datapoint only when something happened.
  Simplification: CloudWatch's "evaluation range" reaches back further than N
  periods to find datapoints when some are missing; Shoal looks at the N
  periods only.

A change of state is written with its history item and, when actions are
enabled, the SNS notifications of the new state's actions (``publish``, the
SNS service's), all in one write transaction that first checks the state it
read is still the stored one: several worker processes evaluate the same
alarms, and exactly one of them makes each transition.  SetAlarmState changes
the state (and runs the actions) the same way; the next evaluation returns the
alarm to its actual state, as in CloudWatch.

An action may also name an Application Auto Scaling policy (its ARN,
``arn:aws:autoscaling:...:scalingPolicy:...``): as CloudWatch does for such
actions, the policy is invoked while the alarm stays in the state (once a
minute, not only at the transition), by the auto scaler
(``shoal.autoscaling.Scaler``), which reads the alarms; a transition records
the action in the history.  The target tracking alarms Application Auto
Scaling makes are written here too (``put_service_alarm``).

Not offered: composite alarms (PutCompositeAlarm is an unknown operation;
DescribeAlarms answers no CompositeAlarms), anomaly detection thresholds
(``ThresholdMetricId``), PromQL alarms (``EvaluationCriteria``), actions other
than SNS topics and scaling policies (EC2, EC2 Auto Scaling, Systems Manager),
and ``EvaluateLowSampleCountPercentile`` (accepted and kept, not applied).
"""

from __future__ import annotations

import base64
import math
import operator
import struct
import time
from datetime import datetime, timezone
from typing import Callable

import orjson

from shoal.api import DEFAULT_ACCOUNT
from shoal.metrics.errors import (
    CloudWatchError,
    InvalidNextToken,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    ValidationError,
)

OPERATIONS = frozenset({
    "PutMetricAlarm", "DescribeAlarms", "DescribeAlarmsForMetric", "DescribeAlarmHistory", "DeleteAlarms",
    "SetAlarmState", "EnableAlarmActions", "DisableAlarmActions", "TagResource", "UntagResource",
    "ListTagsForResource",
})
WRITES = frozenset({"PutMetricAlarm", "DeleteAlarms", "SetAlarmState", "EnableAlarmActions", "DisableAlarmActions",
                    "TagResource", "UntagResource"})

EVALUATE_EVERY_S = 5.0  # the issue asks for at least every 10 seconds
HISTORY_KEPT_S = 14 * 86400  # CloudWatch keeps alarm history for two weeks
MAX_ACTIONS = 5  # per state
MAX_TAGS = 50
MAX_SUBJECT = 100  # an SNS subject's length
MAX_DAY_S = 86400
MAX_WEEK_S = 7 * 86400

STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
ACTION_LISTS = {"OK": "OKActions", "ALARM": "AlarmActions", "INSUFFICIENT_DATA": "InsufficientDataActions"}
COMPARISONS = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
BAND_COMPARISONS = ("LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold", "GreaterThanUpperThreshold")
TREATMENTS = ("breaching", "notBreaching", "ignore", "missing")

# Region names as CloudWatch's notifications spell them (others: the code).
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)", "eu-west-1": "EU (Ireland)", "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)", "eu-central-1": "EU (Frankfurt)", "eu-north-1": "EU (Stockholm)",
    "ap-northeast-1": "Asia Pacific (Tokyo)", "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-southeast-1": "Asia Pacific (Singapore)", "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-south-1": "Asia Pacific (Mumbai)", "sa-east-1": "South America (Sao Paulo)",
    "ca-central-1": "Canada (Central)",
}

ALARM_PREFIX = b"alarms/a/"
HISTORY_PREFIX = b"alarms/h/"
_HISTORY_SUFFIX = struct.Struct(">QI")  # time in ms, a counter within this process


class ResourceNotFound(CloudWatchError):
    type_name = "ResourceNotFound"
    code = "ResourceNotFound"
    status = 404


class ResourceNotFoundException(CloudWatchError):
    type_name = "ResourceNotFoundException"
    code = "ResourceNotFoundException"
    status = 404


class InvalidFormat(CloudWatchError):
    type_name = "InvalidFormatFault"
    code = "InvalidFormat"


# ---------------------------------------------------------------- storage


def _alarm_key(region: str, name: str) -> bytes:
    return ALARM_PREFIX + region.encode() + b"\0" + name.encode("utf-8", "surrogatepass")


def _region_range(region: str, prefix: bytes) -> tuple[bytes, bytes]:
    start = prefix + region.encode() + b"\0"
    return start, start[:-1] + b"\x01"


def load(txn, region: str, name: str) -> dict | None:
    raw = txn.get("meta", _alarm_key(region, name))
    return orjson.loads(bytes(raw)) if raw is not None else None


def _store(txn, region: str, alarm: dict) -> None:
    txn.put("meta", _alarm_key(region, alarm["AlarmName"]), orjson.dumps(alarm))


def iter_alarms(txn, region: str | None = None):
    """(region, alarm) in name order, of one region or of all."""
    start, stop = _region_range(region, ALARM_PREFIX) if region is not None else (ALARM_PREFIX, b"alarms/a0")
    for key, value in txn.scan("meta", start, stop):
        alarm_region = bytes(key)[len(ALARM_PREFIX):].split(b"\0", 1)[0].decode()
        yield alarm_region, orjson.loads(bytes(value))


class _History:
    """History items, per region in time order: ``alarms/h/<region>\\0<ms><n>``."""

    def __init__(self) -> None:
        self._counter = 0

    def add(self, txn, region: str, name: str, now: float, item_type: str, summary: str, data: dict) -> None:
        self._counter = (self._counter + 1) & 0xFFFFFFFF
        key = _region_range(region, HISTORY_PREFIX)[0] + _HISTORY_SUFFIX.pack(int(now * 1000), self._counter)
        item = {"AlarmName": name, "AlarmType": "MetricAlarm", "Timestamp": now, "HistoryItemType": item_type,
                "HistorySummary": summary, "HistoryData": orjson.dumps(data).decode()}
        txn.put("meta", key, orjson.dumps(item))

    @staticmethod
    def expired(txn, now: float, limit: int = 1000) -> list[bytes]:
        """Keys of items older than two weeks (at most ``limit``).  A
        region's items are in time order: its scan stops at the first one
        still kept, so a round reads little more than what it drops."""
        cutoff = int((now - HISTORY_KEPT_S) * 1000)
        out: list[bytes] = []
        start = HISTORY_PREFIX
        while len(out) < limit:
            kept_from = None
            for key, _ in txn.scan("meta", start, b"alarms/h0"):
                key = bytes(key)
                if _HISTORY_SUFFIX.unpack(key[-_HISTORY_SUFFIX.size:])[0] >= cutoff:
                    kept_from = key
                    break
                out.append(key)
                if len(out) >= limit:
                    break
            if kept_from is None:
                break
            region_end = kept_from.index(b"\0", len(HISTORY_PREFIX))
            start = kept_from[:region_end] + b"\x01"  # the next region's items
        return out


# ---------------------------------------------------------------- formatting


def _iso(at: float) -> str:
    """CloudWatch's timestamps in reason data: ``2022-11-08T11:26:05.399+0000``."""
    moment = datetime.fromtimestamp(at, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _short(at: float) -> str:
    """Datapoint times in a state reason: ``08/11/22 11:25:00`` (day/month/year)."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def _number(value: float) -> str:
    """A value as CloudWatch writes it in reasons (Java's double: ``5.0``, ``1.0E10``)."""
    if value == int(value) and abs(value) < 1e7:
        return f"{float(value)!r}"
    return repr(float(value)).replace("e+", "E").replace("e-", "E-")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def alarm_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"


def _token(value) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode()


INVALID_TOKEN = "The service couldn't process your request because the NextToken is invalid."


def _untoken(token: str) -> str:
    """The text a NextToken of ``_token`` carries (an alarm name, a history
    key's suffix); InvalidNextToken for anything else, not an error of the
    server."""
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidNextToken(INVALID_TOKEN) from None
    if not isinstance(value, str):
        raise InvalidNextToken(INVALID_TOKEN)
    return value


def _history_ms(at) -> int:
    """A DescribeAlarmHistory bound in the milliseconds history keys hold:
    any time before 1970 is its start, any past the keys' range their end."""
    return min(max(0, int(float(at) * 1000)), 0xFFFFFFFFFFFFFFFF)


def _history_resume(token: str) -> bytes:
    """The history key suffix (time, counter) a DescribeAlarmHistory NextToken resumes after."""
    try:
        suffix = base64.b64decode(_untoken(token), validate=True)
    except ValueError:
        raise InvalidNextToken(INVALID_TOKEN) from None
    if len(suffix) != _HISTORY_SUFFIX.size:
        raise InvalidNextToken(INVALID_TOKEN)
    return suffix


# ---------------------------------------------------------------- the API


class Alarms:
    """The alarm operations, and their evaluation, over one worker's storage.

    ``metric_data(request, region)`` is GetMetricData's internal form (the
    CloudWatch API's ``get_metric_data``); ``publish(txn, region, topic_arn,
    message, subject)`` queues an SNS notification in the caller's write
    transaction and returns its message id, or None when the topic does not
    exist."""

    def __init__(self, engine, clock: Callable[[], float], cloudwatch, publish=None, *,
                 account: str = DEFAULT_ACCOUNT) -> None:
        self.engine = engine
        self.clock = clock
        self.cloudwatch = cloudwatch
        self.publish = publish
        self.account = account
        self.history = _History()
        self._handlers = {
            "PutMetricAlarm": self.put_metric_alarm, "DescribeAlarms": self.describe_alarms,
            "DescribeAlarmsForMetric": self.describe_alarms_for_metric,
            "DescribeAlarmHistory": self.describe_alarm_history, "DeleteAlarms": self.delete_alarms,
            "SetAlarmState": self.set_alarm_state, "EnableAlarmActions": self.enable_alarm_actions,
            "DisableAlarmActions": self.disable_alarm_actions, "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource, "ListTagsForResource": self.list_tags_for_resource,
        }

    def prepare(self, operation: str, data, region: str) -> tuple[bool, Callable[[], dict]]:
        """Check a request; return (whether it writes, a job that runs it and
        returns the operation's output as a dict)."""
        from shoal.metrics.cloudwatch import _model_checked

        if operation == "PutMetricAlarm" and isinstance(data, dict) and data.get("Threshold") in (
                "NaN", "Infinity", "-Infinity"):  # botocore's JSON form of them: no threshold, as 1e400 is none
            raise InvalidParameterValue("The parameter Threshold must be a finite number.")
        _model_checked(self.cloudwatch.validator, self.cloudwatch.required, operation, data)
        run = self._handlers[operation](data, region)
        return operation in WRITES, run

    # -- PutMetricAlarm ----------------------------------------------------------------------

    def put_metric_alarm(self, data: dict, region: str) -> Callable[[], dict]:
        config = self._checked_alarm(data)
        name = data["AlarmName"]

        def job() -> dict:
            now = self.clock()
            with self.engine.write() as txn:
                old = load(txn, region, name)
                alarm = dict(config)
                alarm["AlarmArn"] = alarm_arn(region, self.account, name)
                alarm["AlarmConfigurationUpdatedTimestamp"] = now
                if old is None:
                    alarm.update(StateValue="INSUFFICIENT_DATA", StateReason="Unchecked: Initial alarm creation",
                                 StateUpdatedTimestamp=now, StateTransitionedTimestamp=now,
                                 Tags=list(data.get("Tags") or ()))
                    summary, history = f'Alarm "{name}" created', {"type": "Create", "createdAlarm": _public(alarm)}
                else:  # an update keeps the state (and the tags: PutMetricAlarm's Tags apply on creation only)
                    for field in ("StateValue", "StateReason", "StateReasonData", "StateUpdatedTimestamp",
                                  "StateTransitionedTimestamp", "Tags"):
                        if field in old:
                            alarm[field] = old[field]
                    summary = f'Alarm "{name}" updated'
                    history = {"type": "Update", "originalAlarm": _public(old), "updatedAlarm": _public(alarm)}
                _store(txn, region, alarm)
                self.history.add(txn, region, name, now, "ConfigurationUpdate", summary, history)
            return {}

        return job

    def _checked_alarm(self, data: dict) -> dict:
        """The alarm's configuration from PutMetricAlarm, after CloudWatch's rules."""
        if data.get("EvaluationCriteria") is not None or data.get("EvaluationInterval") is not None:
            raise ValidationError("Shoal does not support PromQL alarms (EvaluationCriteria, EvaluationInterval).")
        if data.get("ThresholdMetricId") is not None:
            raise ValidationError("Shoal does not support anomaly detection alarms (ThresholdMetricId).")
        for name in ("EvaluationPeriods", "ComparisonOperator"):
            if data.get(name) is None:
                raise MissingParameter(f"The parameter {name} is required.")
        comparison = data["ComparisonOperator"]
        if comparison in BAND_COMPARISONS:
            raise ValidationError(f"Shoal does not support anomaly detection alarms ({comparison}).")
        metrics = data.get("Metrics")
        single = ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit")
        if metrics is not None:
            for name in single:
                if data.get(name) is not None:  # CloudWatch's words, as recorded for Statistic (2019)
                    raise ValidationError(f"{name} should not be set if list of Metrics is set.")
            period = self._checked_metrics(metrics)
        else:
            for name in ("MetricName", "Namespace"):
                if data.get(name) is None:
                    raise MissingParameter(f"The parameter {name} is required.")
            statistic, extended = data.get("Statistic"), data.get("ExtendedStatistic")
            if statistic is not None and extended is not None:
                raise InvalidParameterCombination("The parameters Statistic and ExtendedStatistic are mutually "
                                                  "exclusive and you have specified both.")
            if statistic is None and extended is None:
                raise MissingParameter("The parameter Statistic or ExtendedStatistic is required.")
            if extended is not None:
                from shoal.metrics.cloudwatch import _checked_percentile

                _checked_percentile(extended, "ExtendedStatistic")
            if data.get("Period") is None:
                raise MissingParameter("The parameter Period is required.")
            period = data["Period"]
            _checked_alarm_period(period, "Period")
            dims = [d["Name"] for d in data.get("Dimensions") or ()]
            if len(set(dims)) != len(dims):
                raise InvalidParameterValue("The collection Dimensions must not contain duplicate names.")
        if data.get("Threshold") is None:
            raise MissingParameter("The parameter Threshold is required.")
        if not math.isfinite(data["Threshold"]):
            raise InvalidParameterValue("The parameter Threshold must be a finite number.")
        periods = data["EvaluationPeriods"]
        longest = MAX_WEEK_S if period >= 3600 else MAX_DAY_S
        if periods * period > longest:
            days = "a day" if longest == MAX_DAY_S else "7 days"
            raise ValidationError(f"Metrics cannot be checked across more than {days} "
                                  f"(EvaluationPeriods * Period must be <= {longest})")
        to_alarm = data.get("DatapointsToAlarm")
        if to_alarm is not None and to_alarm > periods:
            raise ValidationError("DatapointsToAlarm must be less than or equal to EvaluationPeriods")
        treat = data.get("TreatMissingData")
        if treat is not None and treat not in TREATMENTS:
            raise ValidationError(f"Option {treat} is not supported. Supported options for parameter "
                                  f"TreatMissingData are {', '.join(TREATMENTS)}.")
        low = data.get("EvaluateLowSampleCountPercentile")
        if low is not None:
            if data.get("ExtendedStatistic") is None:
                raise ValidationError("Option EvaluateLowSampleCountPercentile is only supported for percentiles.")
            if low not in ("evaluate", "ignore"):
                raise ValidationError(f"Option {low} is not supported. Supported options for parameter "
                                      "EvaluateLowSampleCountPercentile are evaluate, ignore.")
        for field in ACTION_LISTS.values():
            actions = data.get(field) or []
            if len(actions) > MAX_ACTIONS:
                raise ValidationError(f"The collection {field} must not have a size greater than {MAX_ACTIONS}.")
            for arn in actions:
                _checked_action(arn)
        if len(data.get("Tags") or ()) > MAX_TAGS:
            raise ValidationError(f"The collection Tags must not have a size greater than {MAX_TAGS}.")
        config = {key: value for key, value in data.items() if value is not None and key != "Tags"}
        config.setdefault("ActionsEnabled", True)
        for field in ACTION_LISTS.values():
            config.setdefault(field, [])
        if metrics is None:
            config.setdefault("Dimensions", [])
        return config

    @staticmethod
    def _checked_metrics(metrics: list) -> int:
        """The rules of an alarm's ``Metrics``; the period it evaluates.

        The User Guide's quota: an alarm on metric math has at most 10
        metrics.  An Id CloudWatch cannot take is "Invalid metrics list" (its
        answer as CloudFormation reports it); a statistic, a metric without
        its namespace or name, or an expression GetMetricData would refuse is
        refused here in GetMetricData's words, naming the alarm's parameter,
        rather than made into an alarm that can never be evaluated."""
        from shoal.metrics.cloudwatch import MAX_ALARM_METRICS, STATISTICS, _METRIC_ID, _PERCENTILE
        from shoal.metrics.math import MathError, compile_expression, references

        if not metrics:
            raise ValidationError("The parameter Metrics must contain at least one query.")
        if sum(1 for query in metrics if query.get("MetricStat") is not None) > MAX_ALARM_METRICS:
            raise ValidationError(f"Alarms based on metric math expressions can have up to {MAX_ALARM_METRICS} "
                                  "metrics.")
        returning = [q for q in metrics if q.get("ReturnData", True)]
        if len(returning) != 1:
            raise ValidationError("Exactly one element of the metrics list should return data.")
        ids = [q.get("Id") for q in metrics]
        if len(set(ids)) != len(ids):
            raise ValidationError("The values of the Id fields in Metrics must be unique.")
        if not all(_METRIC_ID.match(query_id) for query_id in ids):
            raise ValidationError("Invalid metrics list")
        periods = []
        for i, query in enumerate(metrics, 1):
            path = f"Metrics.member.{i}"
            has_stat, has_expression = query.get("MetricStat") is not None, query.get("Expression") is not None
            if has_stat == has_expression:
                raise ValidationError(f"Exactly one of MetricStat and Expression must be specified in {path}.")
            if has_stat:
                stat = query["MetricStat"]
                for member in ("Namespace", "MetricName"):
                    if stat["Metric"].get(member) is None:
                        raise MissingParameter(f"The parameter {path}.MetricStat.Metric.{member} is required.")
                if stat["Stat"] not in STATISTICS and not _PERCENTILE.match(stat["Stat"]):
                    raise ValidationError(f"The value {stat['Stat']} for parameter {path}.MetricStat.Stat is not "
                                          "a valid statistic.")
                periods.append(_checked_alarm_period(stat["Period"], f"{path}.MetricStat.Period"))
                continue
            expression = query["Expression"]
            try:
                unknown = sorted(references(compile_expression(expression)) - set(ids))
                if unknown:
                    raise MathError(f"Unknown metric or expression Id {unknown[0]}")
            except MathError as exc:
                raise ValidationError(f"The value {expression} for parameter {path}.Expression is invalid: "
                                      f"{exc.message}.") from None
            if query.get("Period") is not None:
                periods.append(_checked_alarm_period(query["Period"], f"{path}.Period"))
        if not periods:
            raise ValidationError("The Metrics of an alarm must include at least one MetricStat.")
        chosen = returning[0]
        if chosen.get("MetricStat") is not None:
            return chosen["MetricStat"]["Period"]
        return chosen.get("Period") or max(periods)

    # -- reads ----------------------------------------------------------------------------

    def describe_alarms(self, data: dict, region: str) -> Callable[[], dict]:
        names, prefix = data.get("AlarmNames"), data.get("AlarmNamePrefix")
        if names and prefix is not None:
            raise InvalidParameterCombination("The parameters AlarmNames and AlarmNamePrefix are mutually exclusive "
                                              "and you have specified both.")
        if (data.get("ChildrenOfAlarmName") or data.get("ParentsOfAlarmName")) and (names or prefix):
            raise InvalidParameterCombination("ChildrenOfAlarmName and ParentsOfAlarmName cannot be combined with "
                                              "AlarmNames or AlarmNamePrefix.")
        types = data.get("AlarmTypes") or ["MetricAlarm"]
        limit = data.get("MaxRecords") or 50
        after = _untoken(data["NextToken"]) if data.get("NextToken") else None
        state, action_prefix = data.get("StateValue"), data.get("ActionPrefix")
        wanted = set(names) if names else None

        def run() -> dict:
            out, token = [], None
            if "MetricAlarm" in types and not (data.get("ChildrenOfAlarmName") or data.get("ParentsOfAlarmName")):
                with self.engine.read() as txn:
                    for _, alarm in iter_alarms(txn, region):
                        name = alarm["AlarmName"]
                        if after is not None and name <= after:
                            continue
                        if wanted is not None and name not in wanted or prefix is not None and \
                                not name.startswith(prefix):
                            continue
                        if state is not None and alarm["StateValue"] != state:
                            continue
                        if action_prefix is not None and not any(
                                arn.startswith(action_prefix) for field in ACTION_LISTS.values()
                                for arn in alarm.get(field, ())):
                            continue
                        if len(out) == limit:
                            token = _token(out[-1]["AlarmName"])
                            break
                        out.append(_public(alarm))
            result = {}
            if "MetricAlarm" in types:
                result["MetricAlarms"] = out
            if "CompositeAlarm" in types:
                result["CompositeAlarms"] = []
            if token:
                result["NextToken"] = token
            return result

        return run

    def describe_alarms_for_metric(self, data: dict, region: str) -> Callable[[], dict]:
        want_dims = sorted((d["Name"], d["Value"]) for d in data.get("Dimensions") or ())

        def matches(alarm: dict) -> bool:
            if alarm.get("MetricName") != data["MetricName"] or alarm.get("Namespace") != data["Namespace"]:
                return False
            if sorted((d["Name"], d["Value"]) for d in alarm.get("Dimensions") or ()) != want_dims:
                return False
            return all(data.get(field) is None or alarm.get(field) == data[field]
                       for field in ("Statistic", "ExtendedStatistic", "Period", "Unit"))

        def run() -> dict:
            with self.engine.read() as txn:
                return {"MetricAlarms": [_public(a) for _, a in iter_alarms(txn, region) if matches(a)]}

        return run

    def describe_alarm_history(self, data: dict, region: str) -> Callable[[], dict]:
        name, kind = data.get("AlarmName"), data.get("HistoryItemType")
        types = data.get("AlarmTypes") or ["MetricAlarm", "CompositeAlarm"]
        start = data.get("StartDate")
        end = data.get("EndDate")
        if start is not None and end is not None and start > end:
            raise InvalidParameterValue("The parameter StartDate must be less than the parameter EndDate.")
        limit = data.get("MaxRecords") or 100
        descending = data.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        after = _history_resume(data["NextToken"]) if data.get("NextToken") else None

        def run() -> dict:
            lo, hi = _region_range(region, HISTORY_PREFIX)
            base = lo
            if start is not None:
                lo = base + _HISTORY_SUFFIX.pack(_history_ms(start), 0)
            if end is not None:
                hi = base + _HISTORY_SUFFIX.pack(_history_ms(end), 0xFFFFFFFF)
            if after is not None:
                resume = base + after
                if descending:
                    hi = min(hi, resume)
                else:
                    lo = max(lo, resume + b"\0")
            items, token = [], None
            if "MetricAlarm" not in types:
                return {"AlarmHistoryItems": []}
            with self.engine.read() as txn:
                for key, value in txn.scan("meta", lo, hi, reverse=descending):
                    item = orjson.loads(bytes(value))
                    if name is not None and item["AlarmName"] != name or kind is not None and \
                            item["HistoryItemType"] != kind:
                        continue
                    if len(items) == limit:
                        token = _token(base64.b64encode(last_key[len(base):]).decode())
                        break
                    items.append(item)
                    last_key = bytes(key)
            result = {"AlarmHistoryItems": items}
            if token:
                result["NextToken"] = token
            return result

        return run

    # -- writes ---------------------------------------------------------------------------

    def delete_alarms(self, data: dict, region: str) -> Callable[[], dict]:
        names = data["AlarmNames"]

        def job() -> dict:
            with self.engine.write() as txn:
                missing = [n for n in names if load(txn, region, n) is None]
                if missing:
                    raise ResourceNotFound(f"{len(missing)} out of {len(names)} alarms were not found: "
                                           f"{', '.join(missing)}")
                for n in names:
                    txn.delete("meta", _alarm_key(region, n))
            return {}

        return job

    def set_alarm_state(self, data: dict, region: str) -> Callable[[], dict]:
        reason_data = data.get("StateReasonData")
        if reason_data is not None:
            try:
                orjson.loads(reason_data)
            except orjson.JSONDecodeError:
                raise InvalidFormat("Data was not syntactically valid JSON") from None
        name = data["AlarmName"]

        def job() -> dict:
            with self.engine.write() as txn:
                alarm = load(txn, region, name)
                if alarm is None:
                    raise ResourceNotFound(f"Alarm {name} not found")
                self._transition(txn, region, alarm, data["StateValue"], data["StateReason"], reason_data,
                                 self.clock())
            return {}

        return job

    def _actions_switch(self, enabled: bool):
        def handler(data: dict, region: str) -> Callable[[], dict]:
            def job() -> dict:
                now = self.clock()
                with self.engine.write() as txn:
                    for name in data["AlarmNames"]:
                        alarm = load(txn, region, name)
                        if alarm is None or alarm.get("ActionsEnabled", True) == enabled:
                            continue
                        original = _public(alarm)
                        alarm["ActionsEnabled"] = enabled
                        alarm["AlarmConfigurationUpdatedTimestamp"] = now
                        _store(txn, region, alarm)
                        self.history.add(txn, region, name, now, "ConfigurationUpdate", f'Alarm "{name}" updated',
                                         {"type": "Update", "originalAlarm": original,
                                          "updatedAlarm": _public(alarm)})
                return {}

            return job
        return handler

    def enable_alarm_actions(self, data: dict, region: str) -> Callable[[], dict]:
        return self._actions_switch(True)(data, region)

    def disable_alarm_actions(self, data: dict, region: str) -> Callable[[], dict]:
        return self._actions_switch(False)(data, region)

    # -- tags -----------------------------------------------------------------------------

    def _tagged(self, arn: str, region: str) -> str:
        """The alarm name an ARN names, in this region and account."""
        prefix = f"arn:aws:cloudwatch:{region}:{self.account}:alarm:"
        if not arn.startswith("arn:"):
            raise InvalidParameterValue(f"Invalid ARN: {arn}")
        if not arn.startswith(prefix) or len(arn) == len(prefix):
            raise ResourceNotFoundException(f"Resource {arn} does not exist.")
        return arn[len(prefix):]

    def _with_alarm(self, arn: str, region: str, change) -> Callable[[], dict]:
        name = self._tagged(arn, region)

        def job() -> dict:
            with self.engine.write() as txn:
                alarm = load(txn, region, name)
                if alarm is None:
                    raise ResourceNotFoundException(f"Resource {arn} does not exist.")
                change(alarm)
                _store(txn, region, alarm)
            return {}

        return job

    def tag_resource(self, data: dict, region: str) -> Callable[[], dict]:
        new = {tag["Key"]: tag["Value"] for tag in data["Tags"]}

        def change(alarm: dict) -> None:
            tags = {tag["Key"]: tag["Value"] for tag in alarm.get("Tags") or ()}
            tags.update(new)
            if len(tags) > MAX_TAGS:
                raise InvalidParameterValue(f"A resource can have at most {MAX_TAGS} tags.")
            alarm["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]

        return self._with_alarm(data["ResourceARN"], region, change)

    def untag_resource(self, data: dict, region: str) -> Callable[[], dict]:
        drop = set(data["TagKeys"])

        def change(alarm: dict) -> None:
            alarm["Tags"] = [tag for tag in alarm.get("Tags") or () if tag["Key"] not in drop]

        return self._with_alarm(data["ResourceARN"], region, change)

    def list_tags_for_resource(self, data: dict, region: str) -> Callable[[], dict]:
        arn = data["ResourceARN"]
        name = self._tagged(arn, region)

        def run() -> dict:
            with self.engine.read() as txn:
                alarm = load(txn, region, name)
            if alarm is None:
                raise ResourceNotFoundException(f"Resource {arn} does not exist.")
            return {"Tags": list(alarm.get("Tags") or ())}

        return run

    # -- state changes --------------------------------------------------------------------

    def _transition(self, txn, region: str, alarm: dict, state: str, reason: str, reason_data: str | None,
                    now: float) -> bool:
        """Move ``alarm`` (as stored in ``txn``) to ``state``: its record, a
        history item, and its actions' notifications.  False if it is there already."""
        old_state = alarm["StateValue"]
        if old_state == state:
            return False
        name = alarm["AlarmName"]
        old = {"stateValue": old_state, "stateReason": alarm.get("StateReason", "")}
        if alarm.get("StateReasonData"):
            old["stateReasonData"] = orjson.loads(alarm["StateReasonData"])
        alarm.update(StateValue=state, StateReason=reason, StateUpdatedTimestamp=now, StateTransitionedTimestamp=now)
        if reason_data is not None:
            alarm["StateReasonData"] = reason_data
        else:
            alarm.pop("StateReasonData", None)
        new = {"stateValue": state, "stateReason": reason}
        if reason_data is not None:
            new["stateReasonData"] = orjson.loads(reason_data)
        _store(txn, region, alarm)
        self.history.add(txn, region, name, now, "StateUpdate", f"Alarm updated from {old_state} to {state}",
                         {"version": "1.0", "oldState": old, "newState": new})
        if alarm.get("ActionsEnabled", True):
            for arn in alarm.get(ACTION_LISTS[state]) or ():
                self._act(txn, region, alarm, arn, old_state, now)
        return True

    def _act(self, txn, region: str, alarm: dict, arn: str, old_state: str, now: float) -> None:
        name = alarm["AlarmName"]
        if is_scaling_policy(arn):  # the scaler runs it (``shoal.autoscaling``): here it is only checked
            from shoal import autoscaling

            data = {"actionState": "Succeeded", "stateUpdateTimestamp": now * 1000, "notificationResource": arn}
            if autoscaling.policy_by_arn(txn, region, arn) is not None:
                summary = f"Successfully executed action {arn}"
            else:
                error = "No scaling policy found for the ARN"
                summary = f"Failed to execute action {arn}. Received error: \"{error}\""
                data.update(actionState="Failed", error=error)
            self.history.add(txn, region, name, now, "Action", summary, data)
            return
        message_id = None
        if self.publish is not None:
            subject = f'{alarm["StateValue"]}: "{name}" in {REGION_NAMES.get(region, region)}'
            if len(subject) > MAX_SUBJECT or not subject.isascii():  # SNS takes 100 ASCII characters
                subject = subject.encode("ascii", "replace").decode()[:MAX_SUBJECT - 3] + "..."
            message_id = self.publish(txn, region, arn, orjson.dumps(notification(alarm, region, self.account,
                                                                                   old_state)).decode(), subject)
        if message_id is not None:
            summary = f"Successfully executed action {arn}"
            data = {"actionState": "Succeeded", "stateUpdateTimestamp": now * 1000, "notificationResource": arn,
                    "publishedMessage": message_id}
        else:
            summary = f"Failed to execute action {arn}. Received error: \"Topic does not exist\""
            data = {"actionState": "Failed", "stateUpdateTimestamp": now * 1000, "notificationResource": arn,
                    "error": "Topic does not exist"}
        self.history.add(txn, region, name, now, "Action", summary, data)

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self, region: str, alarm: dict, now: float) -> tuple[str, str, str] | None:
        """The state the alarm's data puts it in now: (state, reason, reason
        data as JSON), or None to keep the state it has."""
        period = alarm["Period"] if alarm.get("Metrics") is None else self._checked_metrics(alarm["Metrics"])
        periods = alarm["EvaluationPeriods"]
        needed = alarm.get("DatapointsToAlarm") or periods
        end = int(now // period * period)
        start = end - periods * period
        values = self._values(region, alarm, start, end, period)
        points = [(at, values.get(at)) for at in range(end - period, start - 1, -period)]  # newest first
        treat = alarm.get("TreatMissingData") or "missing"
        if self._dynamodb_only(alarm):
            treat = "ignore"
        compare, words = COMPARISONS[alarm["ComparisonOperator"]]
        threshold = alarm["Threshold"]
        present = [(at, v) for at, v in points if v is not None]
        if not present and treat in ("missing", "ignore"):
            if treat == "ignore":
                return None
            reason = (f"Insufficient Data: {_plural(periods, 'datapoint')} "
                      f"{'was' if periods == 1 else 'were'} unknown.")
            return "INSUFFICIENT_DATA", reason, self._reason_data(alarm, now, start, period, [], threshold)
        breaching = sum(1 for _, v in present if compare(v, threshold))
        if treat == "breaching":
            breaching += len(points) - len(present)
        state = "ALARM" if breaching >= needed else "OK"
        shown = ", ".join(f"{_number(v)} ({_short(at)})" for at, v in present)
        verb = words if state == "ALARM" else f"not {words}"
        if len(points) == 1:
            reason = f"Threshold Crossed: 1 datapoint [{shown}] was {verb} the threshold ({_number(threshold)})."
        else:
            counted = breaching if state == "ALARM" else len(points) - breaching
            minimum = needed if state == "ALARM" else periods - needed + 1
            direction = "OK -> ALARM" if state == "ALARM" else "ALARM -> OK"
            reason = (f"Threshold Crossed: {counted} out of the last {len(points)} datapoints [{shown}] were {verb} "
                      f"the threshold ({_number(threshold)}) (minimum {_plural(minimum, 'datapoint')} for "
                      f"{direction} transition).")
        return state, reason, self._reason_data(alarm, now, start, period, present, threshold)

    @staticmethod
    def _dynamodb_only(alarm: dict) -> bool:
        if alarm.get("Metrics") is None:
            return alarm.get("Namespace") == "AWS/DynamoDB"
        stats = [q["MetricStat"]["Metric"].get("Namespace") for q in alarm["Metrics"] if q.get("MetricStat")]
        return bool(stats) and all(ns == "AWS/DynamoDB" for ns in stats)

    def _values(self, region: str, alarm: dict, start: int, end: int, period: int) -> dict[int, float]:
        """{period start: value} of the alarm's metric or expression over [start, end)."""
        if alarm.get("Metrics") is not None:
            queries = alarm["Metrics"]
        else:
            stat = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
            metric = {"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"],
                      "Dimensions": alarm.get("Dimensions") or []}
            query = {"Metric": metric, "Period": period, "Stat": stat}
            if alarm.get("Unit"):
                query["Unit"] = alarm["Unit"]
            queries = [{"Id": "m", "MetricStat": query, "ReturnData": True}]
        request = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending"}
        result = self.cloudwatch.get_metric_data(request, region)
        out: dict[int, float] = {}
        for series in result.get("MetricDataResults", ()):
            for at, value in zip(series.get("Timestamps", ()), series.get("Values", ())):
                if value is not None and math.isfinite(value):
                    out[int(float(at))] = value
        return out

    @staticmethod
    def _reason_data(alarm: dict, now: float, start: int, period: int, present: list, threshold: float) -> str:
        data = {"version": "1.0", "queryDate": _iso(now), "startDate": _iso(start)}
        if alarm.get("Statistic"):
            data["statistic"] = alarm["Statistic"]
        elif alarm.get("ExtendedStatistic"):
            data["statistic"] = alarm["ExtendedStatistic"]
        if alarm.get("Unit"):
            data["unit"] = alarm["Unit"]
        data.update(period=period, recentDatapoints=[v for _, v in reversed(present)], threshold=threshold,
                    evaluatedDatapoints=[{"timestamp": _iso(at), "value": v} for at, v in present])
        return orjson.dumps(data).decode()

    def evaluate_all(self) -> int:
        """One round: every alarm of every region evaluated, and each change
        of state written (compare and set: see the module's docstring).
        Returns how many alarms changed state."""
        now = self.clock()
        with self.engine.read() as txn:
            alarms = list(iter_alarms(txn))
        changed = 0
        for region, alarm in alarms:
            try:
                outcome = self.evaluate(region, alarm, now)
            except CloudWatchError:  # the data could not be read (a metric math error): keep the state
                outcome = None
            if outcome is None:
                continue
            state, reason, reason_data = outcome
            if state == alarm["StateValue"]:
                continue
            with self.engine.write() as txn:
                stored = load(txn, region, alarm["AlarmName"])
                if stored is None or stored["StateValue"] != alarm["StateValue"] or \
                        stored.get("StateUpdatedTimestamp") != alarm.get("StateUpdatedTimestamp"):
                    continue  # deleted, or moved by another worker or SetAlarmState since it was read
                if self._transition(txn, region, stored, state, reason, reason_data, now):
                    changed += 1
        with self.engine.read() as txn:
            expired = _History.expired(txn, now)
        if expired:  # a write transaction only when something is due to go
            with self.engine.write() as txn:
                for key in expired:
                    txn.delete("meta", key)
        return changed


def _checked_alarm_period(period: int, path: str) -> int:
    if period not in (10, 20, 30) and period % 60:
        raise InvalidParameterValue(f"The parameter {path} must be 10, 20, 30 or a multiple of 60.")
    if period < 60:
        raise InvalidParameterValue(f"The parameter {path} must be a multiple of 60: Shoal keeps metrics at "
                                    "one-minute resolution, so alarms evaluate periods of a minute or more.")
    return period


def _checked_action(arn: str) -> None:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise ValidationError(f"Invalid arn syntax: {arn}")
    if parts[2] != "sns" and not is_scaling_policy(arn):
        raise ValidationError(f"Shoal runs only SNS topics and Application Auto Scaling policies as alarm actions, "
                              f"not {arn}")


def is_scaling_policy(arn: str) -> bool:
    """Whether an action's ARN names an Application Auto Scaling policy
    (``arn:aws:autoscaling:REGION:ACCOUNT:scalingPolicy:ID:resource/...``)."""
    return arn.startswith("arn:aws:autoscaling:") and ":scalingPolicy:" in arn


# ---------------------------------------------------------------- alarms another service makes

_SERVICE_HISTORY = _History()


def put_service_alarm(txn, region: str, account: str, config: dict, now: float) -> None:
    """Create, or update keeping its state, an alarm a service makes on the
    caller's behalf (Application Auto Scaling's target tracking alarms), in
    the caller's write transaction: the same record and history item as
    PutMetricAlarm's, without its request checks (``config`` is well formed)."""
    name = config["AlarmName"]
    old = load(txn, region, name)
    alarm = {**config, "AlarmArn": alarm_arn(region, account, name), "AlarmConfigurationUpdatedTimestamp": now}
    alarm.setdefault("ActionsEnabled", True)
    for field in ACTION_LISTS.values():
        alarm.setdefault(field, [])
    if old is None:
        alarm.update(StateValue="INSUFFICIENT_DATA", StateReason="Unchecked: Initial alarm creation",
                     StateUpdatedTimestamp=now, StateTransitionedTimestamp=now, Tags=[])
        summary, data = f'Alarm "{name}" created', {"type": "Create", "createdAlarm": _public(alarm)}
    else:
        for field in ("StateValue", "StateReason", "StateReasonData", "StateUpdatedTimestamp",
                      "StateTransitionedTimestamp", "Tags"):
            if field in old:
                alarm[field] = old[field]
        if {k: v for k, v in old.items() if k != "AlarmConfigurationUpdatedTimestamp"} == \
                {k: v for k, v in alarm.items() if k != "AlarmConfigurationUpdatedTimestamp"}:
            return  # unchanged: no history item
        summary = f'Alarm "{name}" updated'
        data = {"type": "Update", "originalAlarm": _public(old), "updatedAlarm": _public(alarm)}
    _store(txn, region, alarm)
    _SERVICE_HISTORY.add(txn, region, name, now, "ConfigurationUpdate", summary, data)


def delete_service_alarm(txn, region: str, name: str) -> None:
    """Delete an alarm a service made (if it is still there)."""
    txn.delete("meta", _alarm_key(region, name))


def _public(alarm: dict) -> dict:
    """An alarm as DescribeAlarms shows it (its tags are listed apart)."""
    return {key: value for key, value in alarm.items() if key != "Tags" and not key.startswith("_")}


def notification(alarm: dict, region: str, account: str, old_state: str) -> dict:
    """The message CloudWatch publishes to an alarm action's SNS topic."""
    message = {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": _iso(alarm["AlarmConfigurationUpdatedTimestamp"]),
        "NewStateValue": alarm["StateValue"],
        "NewStateReason": alarm["StateReason"],
        "StateChangeTime": _iso(alarm["StateUpdatedTimestamp"]),
        "Region": REGION_NAMES.get(region, region),
        "AlarmArn": alarm["AlarmArn"],
        "OldStateValue": old_state,
        "OKActions": alarm.get("OKActions") or [],
        "AlarmActions": alarm.get("AlarmActions") or [],
        "InsufficientDataActions": alarm.get("InsufficientDataActions") or [],
    }
    if alarm.get("Metrics") is None:
        trigger = {
            "MetricName": alarm["MetricName"], "Namespace": alarm["Namespace"],
            "Unit": alarm.get("Unit"),
            "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions") or ()],
            "Period": alarm["Period"],
        }
        if alarm.get("Statistic"):
            trigger.update(StatisticType="Statistic", Statistic=alarm["Statistic"].upper())
        else:
            trigger.update(StatisticType="ExtendedStatistic", ExtendedStatistic=alarm["ExtendedStatistic"])
    else:
        trigger = {"Metrics": [_lower_keys(q) for q in alarm["Metrics"]]}
    trigger.update(EvaluationPeriods=alarm["EvaluationPeriods"], ComparisonOperator=alarm["ComparisonOperator"],
                   Threshold=alarm["Threshold"], TreatMissingData=alarm.get("TreatMissingData", "missing"),
                   EvaluateLowSampleCountPercentile=alarm.get("EvaluateLowSampleCountPercentile", ""))
    if alarm.get("DatapointsToAlarm") is not None:
        trigger["DatapointsToAlarm"] = alarm["DatapointsToAlarm"]
    message["Trigger"] = trigger
    return message


def _lower_keys(value):
    """Metric math queries as notifications spell them (``id``, ``metricStat``...)."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: _lower_keys(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


class Evaluator:
    """The background job: a round of ``Alarms.evaluate_all`` every
    ``EVALUATE_EVERY_S`` seconds of the monotonic clock."""

    __name__ = "alarm_evaluator"

    def __init__(self, alarms: Alarms, every_s: float = EVALUATE_EVERY_S) -> None:
        self.alarms = alarms
        self.every_s = every_s
        self._next = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every_s
        self.alarms.evaluate_all()
        return False
