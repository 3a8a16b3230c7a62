"""CloudWatch alarms (shoal.metrics.alarms) over a real in-memory engine, with
metrics published through the CloudWatch API and a clock the test moves."""

from __future__ import annotations

import orjson
import pytest

from shoal.metrics.alarms import Alarms, Evaluator, InvalidFormat, ResourceNotFound, ResourceNotFoundException
from shoal.metrics.cloudwatch import CloudWatch
from shoal.metrics.errors import (
    InvalidNextToken,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    ValidationError,
)
from shoal.storage.memory_engine import MemoryEngine

T0 = 1_800_000_000  # a minute boundary
REGION = "us-east-1"
TOPIC = "arn:aws:sns:us-east-1:000000000000:alerts"


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


class Topics:
    """What the alarms publish (the SNS service's ``publish`` stand-in: a real
    function with the same contract, keeping messages in the transaction's engine)."""

    def __init__(self, existing=(TOPIC,)) -> None:
        self.existing = set(existing)
        self.sent = []

    def __call__(self, txn, region, topic_arn, message, subject):
        if topic_arn not in self.existing:
            return None
        self.sent.append((topic_arn, subject, orjson.loads(message)))
        return f"message-{len(self.sent)}"


@pytest.fixture
def env():
    engine, clock = MemoryEngine(), Clock(T0 + 5)
    cloudwatch = CloudWatch(engine, clock)
    topics = Topics()
    alarms = Alarms(engine, clock, cloudwatch, topics)
    return engine, clock, cloudwatch, alarms, topics


def call(api, operation, data, region=REGION):
    writes, job = api.prepare(operation, data, region)
    return job()


def put_value(cloudwatch, value, at, name="Errors", namespace="App", dimensions=()):
    call(cloudwatch, "PutMetricData", {"Namespace": namespace, "MetricData": [
        {"MetricName": name, "Value": value, "Timestamp": at, "Dimensions": list(dimensions)}]})


ALARM = {"AlarmName": "errors-high", "Namespace": "App", "MetricName": "Errors", "Statistic": "Sum", "Period": 60,
         "EvaluationPeriods": 1, "Threshold": 10.0, "ComparisonOperator": "GreaterThanThreshold",
         "AlarmActions": [TOPIC], "OKActions": [TOPIC]}


def describe(alarms, name="errors-high"):
    found = call(alarms, "DescribeAlarms", {"AlarmNames": [name]})["MetricAlarms"]
    return found[0] if found else None


def test_a_new_alarm_starts_insufficient_and_records_its_creation(env):
    _, _, _, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM)
    alarm = describe(alarms)
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert alarm["StateReason"] == "Unchecked: Initial alarm creation"
    assert alarm["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:000000000000:alarm:errors-high"
    assert alarm["ActionsEnabled"] is True and alarm["Dimensions"] == [] and alarm["InsufficientDataActions"] == []
    history = call(alarms, "DescribeAlarmHistory", {"AlarmName": "errors-high"})["AlarmHistoryItems"]
    assert [(h["HistoryItemType"], h["HistorySummary"]) for h in history] == [
        ("ConfigurationUpdate", 'Alarm "errors-high" created')]


def test_breaching_goes_to_alarm_notifies_and_returns_to_ok(env):
    _, clock, cloudwatch, alarms, topics = env
    call(alarms, "PutMetricAlarm", ALARM)
    put_value(cloudwatch, 25, T0 + 1)
    put_value(cloudwatch, 5, T0 + 2)
    alarms.evaluate_all()  # the minute has not ended: nothing to evaluate, missing data -> INSUFFICIENT
    assert describe(alarms)["StateValue"] == "INSUFFICIENT_DATA" and topics.sent == []
    clock.at = T0 + 65
    assert alarms.evaluate_all() == 1
    alarm = describe(alarms)
    assert alarm["StateValue"] == "ALARM"
    assert alarm["StateReason"] == ("Threshold Crossed: 1 datapoint [30.0 (15/01/27 08:00:00)] was greater than "
                                    "the threshold (10.0).")
    data = orjson.loads(alarm["StateReasonData"])
    assert data["recentDatapoints"] == [30.0] and data["threshold"] == 10.0 and data["period"] == 60
    assert data["statistic"] == "Sum" and data["startDate"] == "2027-01-15T08:00:00.000+0000"
    [(arn, subject, message)] = topics.sent
    assert arn == TOPIC and subject == 'ALARM: "errors-high" in US East (N. Virginia)'
    assert message["NewStateValue"] == "ALARM" and message["OldStateValue"] == "INSUFFICIENT_DATA"
    assert message["Trigger"]["Statistic"] == "SUM" and message["Trigger"]["Threshold"] == 10.0
    assert message["AlarmArn"] == alarm["AlarmArn"] and message["NewStateReason"] == alarm["StateReason"]
    assert alarms.evaluate_all() == 0  # still breaching: no new transition, no second notification
    assert len(topics.sent) == 1
    put_value(cloudwatch, 3, T0 + 70)
    clock.at = T0 + 125
    assert alarms.evaluate_all() == 1
    assert describe(alarms)["StateValue"] == "OK"
    assert describe(alarms)["StateReason"] == ("Threshold Crossed: 1 datapoint [3.0 (15/01/27 08:01:00)] was not "
                                               "greater than the threshold (10.0).")
    assert [s for _, s, _ in topics.sent] == ['ALARM: "errors-high" in US East (N. Virginia)',
                                              'OK: "errors-high" in US East (N. Virginia)']
    kinds = [(h["HistoryItemType"], h["HistorySummary"]) for h in
             call(alarms, "DescribeAlarmHistory", {"AlarmName": "errors-high", "ScanBy": "TimestampAscending"})
             ["AlarmHistoryItems"]]
    assert kinds == [("ConfigurationUpdate", 'Alarm "errors-high" created'),
                     ("StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM"),
                     ("Action", f"Successfully executed action {TOPIC}"),
                     ("StateUpdate", "Alarm updated from ALARM to OK"),
                     ("Action", f"Successfully executed action {TOPIC}")]


def test_m_out_of_n(env):
    _, clock, cloudwatch, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM | {"EvaluationPeriods": 3, "DatapointsToAlarm": 2})
    for minute, value in enumerate([20, 1, 30]):
        put_value(cloudwatch, value, T0 + minute * 60 + 1)
    clock.at = T0 + 3 * 60 + 1
    alarms.evaluate_all()
    alarm = describe(alarms)
    assert alarm["StateValue"] == "ALARM"
    assert alarm["StateReason"] == (
        "Threshold Crossed: 2 out of the last 3 datapoints [30.0 (15/01/27 08:02:00), 1.0 (15/01/27 08:01:00), "
        "20.0 (15/01/27 08:00:00)] were greater than the threshold (10.0) (minimum 2 datapoints for OK -> ALARM "
        "transition).")


def test_one_breach_of_three_is_not_enough_for_two_of_three(env):
    _, clock, cloudwatch, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM | {"EvaluationPeriods": 3, "DatapointsToAlarm": 2})
    for minute, value in enumerate([20, 1, 3]):
        put_value(cloudwatch, value, T0 + minute * 60 + 1)
    clock.at = T0 + 3 * 60 + 1
    alarms.evaluate_all()
    assert describe(alarms)["StateValue"] == "OK"


@pytest.mark.parametrize("treat, expected", [
    ("missing", "INSUFFICIENT_DATA"),
    ("notBreaching", "OK"),
    ("breaching", "ALARM"),
    ("ignore", "OK"),  # kept: SetAlarmState put it in OK below
])
def test_missing_data_is_treated_as_asked(env, treat, expected):
    _, clock, _, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM | {"TreatMissingData": treat})
    call(alarms, "SetAlarmState", {"AlarmName": "errors-high", "StateValue": "OK", "StateReason": "by hand"})
    clock.at = T0 + 600
    alarms.evaluate_all()
    assert describe(alarms)["StateValue"] == expected


def test_dynamodb_metrics_always_ignore_missing_data(env):
    _, clock, _, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM | {"Namespace": "AWS/DynamoDB", "MetricName": "ThrottledRequests",
                                            "TreatMissingData": "breaching"})
    call(alarms, "SetAlarmState", {"AlarmName": "errors-high", "StateValue": "OK", "StateReason": "by hand"})
    clock.at = T0 + 600
    alarms.evaluate_all()
    assert describe(alarms)["StateValue"] == "OK"
    assert describe(alarms)["TreatMissingData"] == "breaching"  # what was asked is kept and shown


def test_less_than_and_percentiles(env):
    _, clock, cloudwatch, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM | {"ComparisonOperator": "LessThanOrEqualToThreshold", "Threshold": 2.0,
                                            "Statistic": None, "ExtendedStatistic": "p50"})
    for value in (1, 2, 2):
        put_value(cloudwatch, value, T0 + 1)
    clock.at = T0 + 61
    alarms.evaluate_all()
    alarm = describe(alarms)
    assert alarm["StateValue"] == "ALARM" and alarm["ExtendedStatistic"] == "p50"
    assert "was less than or equal to the threshold (2.0)." in alarm["StateReason"]


def test_alarm_on_metric_math(env):
    _, clock, cloudwatch, alarms, topics = env
    metrics = [
        {"Id": "errors", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Errors"}, "Period": 60,
                                        "Stat": "Sum"}, "ReturnData": False},
        {"Id": "requests", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Requests"}, "Period": 60,
                                          "Stat": "Sum"}, "ReturnData": False},
        {"Id": "rate", "Expression": "100 * errors / requests", "Label": "error rate", "ReturnData": True},
    ]
    call(alarms, "PutMetricAlarm", {"AlarmName": "error-rate", "Metrics": metrics, "EvaluationPeriods": 1,
                                    "Threshold": 5.0, "ComparisonOperator": "GreaterThanThreshold",
                                    "AlarmActions": [TOPIC]})
    put_value(cloudwatch, 10, T0 + 1)
    put_value(cloudwatch, 100, T0 + 1, name="Requests")
    clock.at = T0 + 61
    alarms.evaluate_all()
    alarm = describe(alarms, "error-rate")
    assert alarm["StateValue"] == "ALARM", alarm["StateReason"]
    assert "[10.0 (" in alarm["StateReason"]
    assert topics.sent[0][2]["Trigger"]["Metrics"][2] == {"id": "rate", "expression": "100 * errors / requests",
                                                          "label": "error rate", "returnData": True}


def test_disabled_actions_change_state_without_notifying(env):
    _, clock, cloudwatch, alarms, topics = env
    call(alarms, "PutMetricAlarm", ALARM)
    call(alarms, "DisableAlarmActions", {"AlarmNames": ["errors-high"]})
    assert describe(alarms)["ActionsEnabled"] is False
    put_value(cloudwatch, 50, T0 + 1)
    clock.at = T0 + 61
    alarms.evaluate_all()
    assert describe(alarms)["StateValue"] == "ALARM" and topics.sent == []
    call(alarms, "EnableAlarmActions", {"AlarmNames": ["errors-high"]})
    call(alarms, "SetAlarmState", {"AlarmName": "errors-high", "StateValue": "OK", "StateReason": "testing",
                                   "StateReasonData": '{"a": 1}'})
    assert [s for _, s, _ in topics.sent] == ['OK: "errors-high" in US East (N. Virginia)']
    alarm = describe(alarms)
    assert alarm["StateReason"] == "testing" and alarm["StateReasonData"] == '{"a": 1}'
    alarms.evaluate_all()  # back to its actual state, as CloudWatch does after SetAlarmState
    assert describe(alarms)["StateValue"] == "ALARM"


def test_a_long_alarm_name_gives_a_shortened_subject(env):
    _, clock, cloudwatch, alarms, topics = env
    name = "viewer-events-" + "x" * 200
    call(alarms, "PutMetricAlarm", ALARM | {"AlarmName": name})
    put_value(cloudwatch, 50, T0 + 1)
    clock.at = T0 + 61
    alarms.evaluate_all()
    [(_, subject, message)] = topics.sent
    assert len(subject) == 100 and subject.startswith('ALARM: "viewer-events-xxx') and subject.endswith("...")
    assert message["AlarmName"] == name


def test_an_action_on_a_missing_topic_is_recorded_as_failed(env):
    _, clock, cloudwatch, alarms, topics = env
    gone = "arn:aws:sns:us-east-1:000000000000:gone"
    call(alarms, "PutMetricAlarm", ALARM | {"AlarmActions": [gone]})
    put_value(cloudwatch, 50, T0 + 1)
    clock.at = T0 + 61
    alarms.evaluate_all()
    history = call(alarms, "DescribeAlarmHistory", {"AlarmName": "errors-high", "HistoryItemType": "Action"})
    [item] = history["AlarmHistoryItems"]
    assert item["HistorySummary"] == f'Failed to execute action {gone}. Received error: "Topic does not exist"'


def test_two_evaluators_make_one_transition(env):
    engine, clock, cloudwatch, alarms, topics = env
    other = Alarms(engine, clock, cloudwatch, topics)  # another worker over the same storage
    call(alarms, "PutMetricAlarm", ALARM)
    put_value(cloudwatch, 50, T0 + 1)
    clock.at = T0 + 61
    assert alarms.evaluate_all() + other.evaluate_all() == 1
    assert len(topics.sent) == 1


def test_an_update_keeps_state_and_tags(env):
    _, clock, cloudwatch, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM | {"Tags": [{"Key": "team", "Value": "video"}]})
    arn = describe(alarms)["AlarmArn"]
    put_value(cloudwatch, 50, T0 + 1)
    clock.at = T0 + 61
    alarms.evaluate_all()
    call(alarms, "PutMetricAlarm", ALARM | {"Threshold": 100.0, "Tags": [{"Key": "ignored", "Value": "x"}]})
    alarm = describe(alarms)
    assert alarm["StateValue"] == "ALARM" and alarm["Threshold"] == 100.0
    assert call(alarms, "ListTagsForResource", {"ResourceARN": arn}) == {"Tags": [{"Key": "team", "Value": "video"}]}
    call(alarms, "TagResource", {"ResourceARN": arn, "Tags": [{"Key": "env", "Value": "prod"}]})
    call(alarms, "UntagResource", {"ResourceARN": arn, "TagKeys": ["team"]})
    assert call(alarms, "ListTagsForResource", {"ResourceARN": arn}) == {"Tags": [{"Key": "env", "Value": "prod"}]}
    alarms.evaluate_all()
    assert describe(alarms)["StateValue"] == "OK"  # re-evaluated against the new threshold


def test_describe_filters_and_pages(env):
    _, _, _, alarms, _ = env
    for i in range(7):
        call(alarms, "PutMetricAlarm", ALARM | {"AlarmName": f"a{i}", "OKActions": [],
                                                "AlarmActions": [] if i % 2 else [TOPIC]})
    call(alarms, "PutMetricAlarm", ALARM | {"AlarmName": "b", "MetricName": "Other"})
    call(alarms, "SetAlarmState", {"AlarmName": "a3", "StateValue": "ALARM", "StateReason": "x"})
    names = []
    token = None
    while True:
        page = call(alarms, "DescribeAlarms", {"AlarmNamePrefix": "a", "MaxRecords": 3} |
                    ({"NextToken": token} if token else {}))
        names += [a["AlarmName"] for a in page["MetricAlarms"]]
        token = page.get("NextToken")
        if not token:
            break
    assert names == [f"a{i}" for i in range(7)]
    assert [a["AlarmName"] for a in call(alarms, "DescribeAlarms", {"StateValue": "ALARM"})["MetricAlarms"]] == ["a3"]
    with_topic = call(alarms, "DescribeAlarms", {"ActionPrefix": "arn:aws:sns"})["MetricAlarms"]
    assert [a["AlarmName"] for a in with_topic] == ["a0", "a2", "a4", "a6", "b"]
    assert call(alarms, "DescribeAlarms", {"AlarmTypes": ["CompositeAlarm"]}) == {"CompositeAlarms": []}
    for_metric = call(alarms, "DescribeAlarmsForMetric", {"Namespace": "App", "MetricName": "Other"})
    assert [a["AlarmName"] for a in for_metric["MetricAlarms"]] == ["b"]
    assert call(alarms, "DescribeAlarms", {}, region="eu-west-1") == {"MetricAlarms": []}
    with pytest.raises(InvalidNextToken):
        call(alarms, "DescribeAlarms", {"NextToken": "not a token"})


def test_history_pages_both_ways(env):
    _, clock, _, alarms, _ = env
    for i in range(5):
        clock.at = T0 + i
        call(alarms, "PutMetricAlarm", ALARM | {"Threshold": float(i)})
    seen, token = [], None
    while True:
        page = call(alarms, "DescribeAlarmHistory", {"MaxRecords": 2} | ({"NextToken": token} if token else {}))
        seen += [h["Timestamp"] for h in page["AlarmHistoryItems"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == [T0 + i for i in reversed(range(5))]
    ascending = call(alarms, "DescribeAlarmHistory", {"ScanBy": "TimestampAscending", "StartDate": T0 + 1,
                                                      "EndDate": T0 + 3})["AlarmHistoryItems"]
    assert [h["Timestamp"] for h in ascending] == [T0 + 1, T0 + 2, T0 + 3]


def test_delete(env):
    _, _, _, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM)
    with pytest.raises(ResourceNotFound) as info:
        call(alarms, "DeleteAlarms", {"AlarmNames": ["errors-high", "nope"]})
    assert info.value.message == "1 out of 2 alarms were not found: nope"
    assert describe(alarms) is not None  # nothing deleted
    call(alarms, "DeleteAlarms", {"AlarmNames": ["errors-high"]})
    assert describe(alarms) is None


@pytest.mark.parametrize("change, error, message", [
    ({"Statistic": None}, MissingParameter, "The parameter Statistic or ExtendedStatistic is required."),
    ({"ExtendedStatistic": "p99"}, InvalidParameterCombination,
     "The parameters Statistic and ExtendedStatistic are mutually exclusive and you have specified both."),
    ({"Period": 45}, InvalidParameterValue, "The parameter Period must be 10, 20, 30 or a multiple of 60."),
    ({"EvaluationPeriods": 1441}, ValidationError,
     "Metrics cannot be checked across more than a day (EvaluationPeriods * Period must be <= 86400)"),
    ({"EvaluationPeriods": 2, "DatapointsToAlarm": 3}, ValidationError,
     "DatapointsToAlarm must be less than or equal to EvaluationPeriods"),
    ({"Threshold": None}, MissingParameter, "The parameter Threshold is required."),
    ({"ComparisonOperator": None}, MissingParameter, "The parameter ComparisonOperator is required."),
    ({"AlarmActions": ["not-an-arn"]}, ValidationError, "Invalid arn syntax: not-an-arn"),
    ({"AlarmActions": ["arn:aws:automate:us-east-1:ec2:stop"]}, ValidationError,
     "Shoal runs only SNS topics and Application Auto Scaling policies as alarm actions, "
     "not arn:aws:automate:us-east-1:ec2:stop"),
    ({"TreatMissingData": "sometimes"}, ValidationError,
     "Option sometimes is not supported. Supported options for parameter TreatMissingData are breaching, "
     "notBreaching, ignore, missing."),
    ({"Metrics": [{"Id": "m", "Expression": "1", "ReturnData": True}]}, ValidationError,
     "MetricName should not be set if list of Metrics is set."),
    ({"MetricName": None, "Metrics": [{"Id": "m", "Expression": "1", "ReturnData": True}]}, ValidationError,
     "Namespace should not be set if list of Metrics is set."),
    ({"MetricName": None, "Statistic": None, "Period": None, "Namespace": None,
      "Metrics": [{"Id": "a", "Expression": "1"}, {"Id": "b", "Expression": "2"}]}, ValidationError,
     "Exactly one element of the metrics list should return data."),
])
def test_put_metric_alarm_errors(env, change, error, message):
    _, _, _, alarms, _ = env
    data = {k: v for k, v in (ALARM | change).items() if v is not None}
    with pytest.raises(error) as info:
        call(alarms, "PutMetricAlarm", data)
    assert info.value.message == message
    assert describe(alarms) is None


def test_a_shape_named_as_one_of_dynamodbs_is_worded_by_its_own_model(env):
    """``shoal.api.shapes`` words DynamoDB's ComparisonOperator in DynamoDB's
    recorded order; CloudWatch's shape of the same name is listed as
    CloudWatch's model lists it, and DynamoDB's is left as it was."""
    from shoal.api.shapes import ShapeValidator
    from shoal.errors import ValidationException

    _, _, _, alarms, _ = env
    with pytest.raises(ValidationError) as info:
        call(alarms, "PutMetricAlarm", ALARM | {"ComparisonOperator": "Bigger"})
    assert info.value.message == (
        "1 validation error detected: Value 'Bigger' at 'comparisonOperator' failed to satisfy constraint: Member "
        "must satisfy enum value set: [GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold, "
        "LessThanOrEqualToThreshold, LessThanLowerOrGreaterThanUpperThreshold, LessThanLowerThreshold, "
        "GreaterThanUpperThreshold]")
    with pytest.raises(ValidationException) as info:
        ShapeValidator.for_service("dynamodb").validate("Scan", {"TableName": "events", "ScanFilter": {
            "a": {"ComparisonOperator": "Bigger"}}})
    assert info.value.message == (
        "1 validation error detected: Value 'Bigger' at 'scanFilter.a.member.comparisonOperator' failed to satisfy "
        "constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, "
        "LE, BEGINS_WITH, GE, CONTAINS]")
    assert describe(alarms) is None  # nothing was made


def test_set_alarm_state_errors(env):
    _, _, _, alarms, _ = env
    with pytest.raises(ResourceNotFound) as info:
        call(alarms, "SetAlarmState", {"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"})
    assert info.value.message == "Alarm nope not found"
    call(alarms, "PutMetricAlarm", ALARM)
    with pytest.raises(InvalidFormat):
        call(alarms, "SetAlarmState", {"AlarmName": "errors-high", "StateValue": "OK", "StateReason": "x",
                                       "StateReasonData": "{not json"})
    with pytest.raises(ResourceNotFoundException):
        call(alarms, "ListTagsForResource", {"ResourceARN": "arn:aws:cloudwatch:us-east-1:000000000000:alarm:x"})


def test_the_evaluator_runs_at_most_every_interval(env):
    _, clock, cloudwatch, alarms, _ = env
    call(alarms, "PutMetricAlarm", ALARM)
    put_value(cloudwatch, 50, T0 + 1)
    clock.at = T0 + 61
    evaluator = Evaluator(alarms, every_s=3600)
    evaluator()
    assert describe(alarms)["StateValue"] == "ALARM"
    call(alarms, "SetAlarmState", {"AlarmName": "errors-high", "StateValue": "OK", "StateReason": "x"})
    evaluator()  # within the interval: not evaluated again
    assert describe(alarms)["StateValue"] == "OK"


def test_alarm_operations_are_authorized_on_the_alarms_they_name():
    from shoal.auth.actions import monitoring_required

    checks = monitoring_required("DeleteAlarms", {"AlarmNames": ["a", "b"]}, "eu-west-1", "123456789012")
    assert [(c.action, c.resource) for c in checks] == [
        ("cloudwatch:DeleteAlarms", "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a"),
        ("cloudwatch:DeleteAlarms", "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:b")]
    [check] = monitoring_required("PutMetricAlarm", {"AlarmName": "x"}, "eu-west-1", "123456789012")
    assert check.resource == "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:x"
    [check] = monitoring_required("ListTagsForResource", {"ResourceARN": "arn:aws:cloudwatch:r:1:alarm:y"})
    assert check.resource == "arn:aws:cloudwatch:r:1:alarm:y"
    [check] = monitoring_required("DescribeAlarms", {})
    assert check.resource == "*"


def test_history_older_than_two_weeks_is_dropped_in_every_region(env):
    _, clock, _, alarms, _ = env
    for region in ("eu-west-1", "us-east-1"):
        call(alarms, "PutMetricAlarm", ALARM, region=region)
    clock.at = T0 + 15 * 86400
    # an item kept in eu-west-1, whose items come first: the scan must go past it to us-east-1's
    call(alarms, "PutMetricAlarm", ALARM | {"Threshold": 20.0}, region="eu-west-1")
    alarms.evaluate_all()

    def summaries(region):
        return [h["HistorySummary"] for h in
                call(alarms, "DescribeAlarmHistory", {"HistoryItemType": "ConfigurationUpdate"}, region=region)
                ["AlarmHistoryItems"]]

    assert summaries("eu-west-1") == ['Alarm "errors-high" updated']
    assert summaries("us-east-1") == []
