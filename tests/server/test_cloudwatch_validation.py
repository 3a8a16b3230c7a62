"""CloudWatch's refusals of bad requests, in each protocol, against a real
``shoal serve``: the JSON protocol through boto3 with its own checks off, the
query and Smithy RPC v2 CBOR protocols with requests built by botocore's own
serializers (their checks off too) and answers read by its own parsers.  Each
case asserts the error's code, HTTP status and message, and that the server
answers the next request.

Where the wording comes from: a constraint of botocore's model is Coral's
sentence ("1 validation error detected: Value ... at 'comparisonOperator'
failed to satisfy constraint: ...", CloudWatch's ValidationError);
GetMetricData's "... is not a valid statistic.", "... is not matching the
expected pattern ^[a-z][a-zA-Z0-9_]*$." (one line per fault), "The values
for parameter id in MetricDataQueries are not unique.", "Statistic should
not be set if list of Metrics is set." (and so for MetricName) and "Invalid
metrics list" as CloudWatch answered them in public reports; the rest is
Shoal's, in CloudWatch's forms."""

from __future__ import annotations

import base64
import datetime
import urllib.error
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.parsers
import botocore.serialize
import botocore.session
import pytest
from botocore.exceptions import ClientError

from tests.shoal_process import ShoalProcess

MODEL = botocore.session.get_session().get_service_model("cloudwatch")
REGION = "eu-west-3"
UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
WINDOW = {"StartTime": NOW - datetime.timedelta(hours=1), "EndTime": NOW}
ALARM = {"AlarmName": "guard", "Namespace": "App", "MetricName": "Errors", "Statistic": "Sum", "Period": 60,
         "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold"}
COMPARISONS = ("GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold, LessThanOrEqualToThreshold, "
               "LessThanLowerOrGreaterThanUpperThreshold, LessThanLowerThreshold, GreaterThanUpperThreshold")
PROTOCOLS = ("json", "query", "smithy-rpc-v2-cbor")


def metric_stat(query_id, stat="Sum", **metric):
    return {"Id": query_id, "MetricStat": {"Metric": metric or {"Namespace": "App", "MetricName": "Errors"},
                                           "Period": 60, "Stat": stat}}


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("cw-validation")).start()
    cw = client(proc)
    cw.put_metric_alarm(**ALARM)
    cw.put_metric_alarm(**{**ALARM, "AlarmName": "guard-2"})
    yield proc
    proc.stop()


def client(server):
    return boto3.client("cloudwatch", endpoint_url=server.url, region_name=REGION, aws_access_key_id="any",
                        aws_secret_access_key="any",
                        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))


def send(server, protocol: str, operation: str, params: dict) -> tuple[int, dict]:
    """(HTTP status, parsed answer) of one request in ``protocol``, built and read by botocore."""
    if protocol == "json":
        try:
            answer = getattr(client(server), botocore.xform_name(operation))(**params)
        except ClientError as error:
            return error.response["ResponseMetadata"]["HTTPStatusCode"], error.response
        return answer["ResponseMetadata"]["HTTPStatusCode"], answer
    op = MODEL.operation_model(operation)
    request = botocore.serialize.create_serializer(protocol, include_validation=False).serialize_to_request(
        params, op)
    aws = botocore.awsrequest.AWSRequest(method=request["method"], url=server.url.rstrip("/") + request["url_path"],
                                         data=request["body"], headers=request["headers"])
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("any", "any"), "monitoring", REGION).add_auth(aws)
    prepared = aws.prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    http = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method=prepared.method)
    try:
        with urllib.request.urlopen(http) as answer:
            status, headers, body = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, dict(error.headers), error.read()
    parsed = botocore.parsers.create_parser(protocol).parse(
        {"status_code": status, "headers": {k.lower(): v for k, v in headers.items()}, "body": body},
        op.output_shape)
    return status, parsed


CASES = [
    # the model's constraints: ValidationError in Coral's words
    pytest.param("PutMetricAlarm", {**ALARM, "ComparisonOperator": "Bigger"}, "ValidationError", 400,
                 "1 validation error detected: Value 'Bigger' at 'comparisonOperator' failed to satisfy constraint: "
                 f"Member must satisfy enum value set: [{COMPARISONS}]", id="comparison-enum"),
    pytest.param("PutMetricAlarm", {**ALARM, "AlarmName": "a" * 256}, "ValidationError", 400,
                 f"1 validation error detected: Value '{'a' * 256}' at 'alarmName' failed to satisfy constraint: "
                 "Member must have length less than or equal to 255", id="alarm-name-length"),
    pytest.param("DescribeAlarms", {"MaxRecords": 101}, "ValidationError", 400,
                 "1 validation error detected: Value '101' at 'maxRecords' failed to satisfy constraint: Member must "
                 "have value less than or equal to 100", id="max-records-range"),
    pytest.param("SetAlarmState", {"AlarmName": "guard", "StateValue": "RED", "StateReason": "x"},
                 "ValidationError", 400,
                 "1 validation error detected: Value 'RED' at 'stateValue' failed to satisfy constraint: Member must "
                 "satisfy enum value set: [OK, ALARM, INSUFFICIENT_DATA]", id="state-enum"),
    pytest.param("GetMetricStatistics", {"Namespace": ":App", "MetricName": "Errors", "Period": 60,
                                         "Statistics": ["Sum"], **WINDOW}, "ValidationError", 400,
                 "1 validation error detected: Value ':App' at 'namespace' failed to satisfy constraint: Member must "
                 "satisfy regular expression pattern: [^:].*", id="namespace-pattern"),
    pytest.param("ListMetrics", {"RecentlyActive": "PT1H"}, "ValidationError", 400,
                 "1 validation error detected: Value 'PT1H' at 'recentlyActive' failed to satisfy constraint: Member "
                 "must satisfy enum value set: [PT3H]", id="recently-active-enum"),
    # required members: MissingParameter, named as the query protocol names them
    pytest.param("GetMetricStatistics", {"Namespace": "App", "Period": 60, "Statistics": ["Sum"], **WINDOW},
                 "MissingParameter", 400, "The parameter MetricName is required.", id="missing-metric-name"),
    pytest.param("PutMetricData", {"Namespace": "App", "MetricData": [{"Value": 1.0}]}, "MissingParameter", 400,
                 "The parameter MetricData.member.1.MetricName is required.", id="missing-datum-name"),
    pytest.param("DeleteAlarms", {}, "MissingParameter", 400, "The parameter AlarmNames is required.",
                 id="missing-alarm-names"),
    # CloudWatch's own rules
    pytest.param("GetMetricStatistics", {"Namespace": "App", "MetricName": "Errors", "Period": 60,
                                         "Statistics": ["Sum"], "ExtendedStatistics": ["p99"], **WINDOW},
                 "InvalidParameterCombination", 400,
                 "The parameters Statistics and ExtendedStatistics are mutually exclusive and you have specified "
                 "both.", id="statistics-and-extended"),
    pytest.param("PutMetricData", {"Namespace": "AWS/App", "MetricData": [{"MetricName": "m", "Value": 1.0}]},
                 "InvalidParameterValue", 400, "The value AWS/App for parameter Namespace is invalid.",
                 id="reserved-namespace"),
    pytest.param("GetMetricData", {"MetricDataQueries": [
        metric_stat("5xx_errors"), metric_stat("m2", stat="None"), metric_stat("m2", Namespace="App"),
        {"Id": "e1", "Expression": "m2 * 2", "MetricStat": metric_stat("x")["MetricStat"]}], **WINDOW},
                 "ValidationError", 400,
                 "The value 5xx_errors for parameter MetricDataQueries.member.1.Id is not matching the expected "
                 "pattern ^[a-z][a-zA-Z0-9_]*$.\n"
                 "The value None for parameter MetricDataQueries.member.2.MetricStat.Stat is not a valid statistic.\n"
                 "The values for parameter id in MetricDataQueries are not unique.\n"
                 "The parameter MetricDataQueries.member.3.MetricStat.Metric.MetricName is required.\n"
                 "The parameters MetricDataQuery Expression and MetricStat are mutually exclusive and you have "
                 "specified both.\n", id="metric-data-queries"),
    pytest.param("GetMetricData", {"MetricDataQueries": [metric_stat("m1"), metric_stat("m1"), metric_stat("m1"),
                                                         {"Id": "m1", "Expression": "m1 * 2"}], **WINDOW},
                 "ValidationError", 400, "The values for parameter id in MetricDataQueries are not unique.\n",
                 id="metric-data-duplicate-ids"),
    pytest.param("GetMetricData", {"MetricDataQueries": [metric_stat("Errors"), metric_stat("m_2"),
                                                         metric_stat("m3\n")], **WINDOW},
                 "ValidationError", 400,
                 "The value Errors for parameter MetricDataQueries.member.1.Id is not matching the expected pattern "
                 "^[a-z][a-zA-Z0-9_]*$.\n"
                 "The value m3\n for parameter MetricDataQueries.member.3.Id is not matching the expected pattern "
                 "^[a-z][a-zA-Z0-9_]*$.\n", id="metric-data-id-pattern"),
    pytest.param("GetMetricData", {"MetricDataQueries": [
        {**metric_stat("m1"), "MetricStat": {**metric_stat("m1")["MetricStat"], "Period": 90}}], **WINDOW},
                 "ValidationError", 400,
                 "The parameter MetricDataQueries.member.1.MetricStat.Period must be a multiple of 60.\n",
                 id="metric-data-period"),
    pytest.param("PutMetricAlarm", {key: value for key, value in ALARM.items() if key not in (
        "Namespace", "MetricName", "Period")} | {"Metrics": [metric_stat("m1")]}, "ValidationError", 400,
                 "Statistic should not be set if list of Metrics is set.", id="alarm-statistic-and-metrics"),
    pytest.param("PutMetricAlarm", {**ALARM, "Metrics": [metric_stat("m1")]}, "ValidationError", 400,
                 "MetricName should not be set if list of Metrics is set.", id="alarm-metric-name-and-metrics"),
    pytest.param("PutMetricAlarm", {"AlarmName": "math", "EvaluationPeriods": 1, "Threshold": 1.0,
                                    "ComparisonOperator": "GreaterThanThreshold", "Metrics": [metric_stat("Errors")]},
                 "ValidationError", 400, "Invalid metrics list", id="alarm-metric-id"),
    pytest.param("PutMetricAlarm", {"AlarmName": "math", "EvaluationPeriods": 1, "Threshold": 1.0,
                                    "ComparisonOperator": "GreaterThanThreshold",
                                    "Metrics": [{**metric_stat(f"m{i}"), "ReturnData": False} for i in range(11)]
                                    + [{"Id": "total", "Expression": "SUM(METRICS())"}]},
                 "ValidationError", 400, "Alarms based on metric math expressions can have up to 10 metrics.",
                 id="alarm-metric-quota"),
    pytest.param("PutMetricAlarm", {"AlarmName": "math", "EvaluationPeriods": 1, "Threshold": 1.0,
                                    "ComparisonOperator": "GreaterThanThreshold",
                                    "Metrics": [{**metric_stat("m1", stat="Median"), "ReturnData": False},
                                                {"Id": "e1", "Expression": "m1 * 2"}]},
                 "ValidationError", 400,
                 "The value Median for parameter Metrics.member.1.MetricStat.Stat is not a valid statistic.",
                 id="alarm-metric-stat"),
    pytest.param("PutMetricAlarm", {"AlarmName": "math", "EvaluationPeriods": 1, "Threshold": 1.0,
                                    "ComparisonOperator": "GreaterThanThreshold",
                                    "Metrics": [{**metric_stat("m1"), "ReturnData": False},
                                                {"Id": "e1", "Expression": "m1 + m9"}]},
                 "ValidationError", 400,
                 "The value m1 + m9 for parameter Metrics.member.2.Expression is invalid: Unknown metric or "
                 "expression Id m9.", id="alarm-expression"),
    # next tokens that no page gave: InvalidNextToken, not a server error
    pytest.param("GetMetricData", {"MetricDataQueries": [metric_stat("m1")], "NextToken": token('{"0": -5}'),
                                   **WINDOW}, "InvalidNextToken", 400, "The service couldn't process the NextToken.",
                 id="metric-data-token"),
    pytest.param("DescribeAlarms", {"NextToken": token("123")}, "InvalidNextToken", 400,
                 "The service couldn't process your request because the NextToken is invalid.", id="alarms-token"),
    pytest.param("DescribeAlarmHistory", {"NextToken": token('"!!!"')}, "InvalidNextToken", 400,
                 "The service couldn't process your request because the NextToken is invalid.", id="history-token"),
    # resources that do not exist
    pytest.param("SetAlarmState", {"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"}, "ResourceNotFound",
                 404, "Alarm nope not found", id="alarm-not-found"),
    pytest.param("ListTagsForResource", {"ResourceARN": f"arn:aws:cloudwatch:{REGION}:000000000000:alarm:nope"},
                 "ResourceNotFoundException", 404,
                 f"Resource arn:aws:cloudwatch:{REGION}:000000000000:alarm:nope does not exist.", id="tags-not-found"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("operation, params, code, status, message", CASES)
def test_a_bad_request_is_refused_in_cloudwatchs_words(server, protocol, operation, params, code, status, message):
    answered, answer = send(server, protocol, operation, params)
    assert (answered, answer["Error"]["Code"], answer["Error"]["Message"]) == (status, code, message)
    # nothing was made, and the server answers the next request
    answered, alarms = send(server, protocol, "DescribeAlarms", {})
    assert answered == 200 and [a["AlarmName"] for a in alarms["MetricAlarms"]] == ["guard", "guard-2"]


def test_a_value_of_the_wrong_type(server):
    """The JSON protocol's SerializationException, Coral's sentence; the query
    protocol reads text and refuses what does not convert as InvalidParameterValue."""
    params = {"Namespace": "App", "MetricName": "Errors", "Period": "soon", "Statistics": ["Sum"], **WINDOW}
    status, answer = send(server, "json", "GetMetricStatistics", params)
    assert (status, answer["Error"]["Code"], answer["Error"]["Message"]) == (
        400, "SerializationException", "class java.lang.String can not be converted to an Integer")
    status, answer = send(server, "query", "GetMetricStatistics", params)
    assert (status, answer["Error"]["Code"], answer["Error"]["Message"]) == (
        400, "InvalidParameterValue", "The value soon for parameter Period is invalid.")
    assert send(server, "query", "ListMetrics", {})[0] == 200


def test_pages_still_resume_from_their_own_tokens(server):
    """The checks of a NextToken take the ones the server gave."""
    cw = client(server)
    first = cw.describe_alarms(MaxRecords=1)
    assert [a["AlarmName"] for a in first["MetricAlarms"]] == ["guard"]
    rest = cw.describe_alarms(MaxRecords=1, NextToken=first["NextToken"])
    assert [a["AlarmName"] for a in rest["MetricAlarms"]] == ["guard-2"] and "NextToken" not in rest
    history = cw.describe_alarm_history(MaxRecords=1, ScanBy="TimestampAscending")
    assert [h["HistorySummary"] for h in history["AlarmHistoryItems"]] == ['Alarm "guard" created']
    more = cw.describe_alarm_history(MaxRecords=1, ScanBy="TimestampAscending", NextToken=history["NextToken"])
    assert [h["HistorySummary"] for h in more["AlarmHistoryItems"]] == ['Alarm "guard-2" created']
    # a valid alarm on metric math is still taken
    cw.put_metric_alarm(AlarmName="math-ok", EvaluationPeriods=1, Threshold=1.0,
                        ComparisonOperator="GreaterThanThreshold",
                        Metrics=[{**metric_stat("m1"), "ReturnData": False}, {"Id": "e1", "Expression": "m1 * 2"}])
    assert [a["AlarmName"] for a in cw.describe_alarms(AlarmNames=["math-ok"])["MetricAlarms"]] == ["math-ok"]
    cw.delete_alarms(AlarmNames=["math-ok"])


def post(server, body: bytes, headers: dict) -> tuple[int, bytes]:
    """A request botocore would not build (numbers past a double's range), sent as is."""
    request = urllib.request.Request(server.url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_numbers_past_their_range(server):
    """A number a double cannot hold is refused as unreadable (it was read as
    infinity, and named so); a time far past the history's keys reads an
    empty page (a 500 before); NaN as a threshold is not a number."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = post(server, b"Action=PutMetricData&Version=2010-08-01&Namespace=App&"
                                b"MetricData.member.1.MetricName=m&MetricData.member.1.Value=1e400", form)
    assert status == 400 and b"<Code>InvalidParameterValue</Code>" in body
    assert b"<Message>The value 1e400 for parameter MetricData.member.1.Value is invalid.</Message>" in body
    status, body = post(server, b"Action=DescribeAlarmHistory&Version=2010-08-01&StartDate=1e300", form)
    assert status == 200 and b"<AlarmHistoryItems></AlarmHistoryItems>" in body
    status, body = post(server, b'{"StartDate": 1e300}', {
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "GraniteServiceVersion20100801.DescribeAlarmHistory"})
    assert (status, body) == (200, b'{"AlarmHistoryItems":[]}')
    status, answer = send(server, "json", "PutMetricAlarm", {**ALARM, "AlarmName": "nan", "Threshold": float("nan")})
    assert (status, answer["Error"]["Code"], answer["Error"]["Message"]) == (
        400, "InvalidParameterValue", "The parameter Threshold must be a finite number.")
    assert [a["AlarmName"] for a in client(server).describe_alarms()["MetricAlarms"]] == ["guard", "guard-2"]
