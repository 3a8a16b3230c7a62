"""Metric math in GetMetricData, through boto3 against a real ``shoal serve``:
data published with PutMetricData, expressions over it, hidden inputs,
ScanBy, pages, and the refusals with their messages."""

from __future__ import annotations

import datetime

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tests.shoal_process import ShoalProcess

NO_RETRY = botocore.config.Config(retries={"max_attempts": 1})
UTC = datetime.timezone.utc
MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("cloudwatch-math"), "--workers", "1").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def published(server):
    """A client, and the minute the data starts: Errors 1, 0, 3, -, 5 and
    Requests 10, 0, 30, 40, 50, one a minute."""
    cw = boto3.client("cloudwatch", endpoint_url=server.url, region_name="eu-north-1", aws_access_key_id="any",
                      aws_secret_access_key="any", config=NO_RETRY)
    base = datetime.datetime.now(UTC).replace(second=0, microsecond=0) - 20 * MINUTE
    data = [("Errors", m, v) for m, v in enumerate([1, 0, 3, None, 5]) if v is not None]
    data += [("Requests", m, v) for m, v in enumerate([10, 0, 30, 40, 50])]
    cw.put_metric_data(Namespace="Viewer/Math", MetricData=[
        {"MetricName": name, "Timestamp": base + m * MINUTE, "Value": float(v), "Unit": "Count"}
        for name, m, v in data])
    return cw, base


def stat(name, query_id, **extra):
    return {"Id": query_id, "MetricStat": {"Metric": {"Namespace": "Viewer/Math", "MetricName": name},
                                           "Period": 60, "Stat": "Sum"}, **extra}


def window(base):
    return dict(StartTime=base, EndTime=base + 6 * MINUTE)


def minutes(result, base):
    return [round((t.astimezone(UTC) - base).total_seconds() / 60) for t in result["Timestamps"]]


def test_an_expression_over_two_hidden_metrics(published):
    cw, base = published
    out = cw.get_metric_data(MetricDataQueries=[
        stat("Errors", "errors", ReturnData=False), stat("Requests", "requests", ReturnData=False),
        {"Id": "rate", "Expression": "100 * errors / requests", "Label": "Error rate"},
        {"Id": "filled", "Expression": "FILL(errors, 0) + requests"},
        {"Id": "scaled", "Expression": "METRICS() / 10"}], ScanBy="TimestampAscending", **window(base))
    results = out["MetricDataResults"]
    assert [(r["Id"], r["Label"]) for r in results] == [
        ("rate", "Error rate"), ("filled", "filled"), ("scaled", "Errors"), ("scaled", "Requests")]
    rate = results[0]
    # 0 / 0 at minute 1 is dropped, and said so; minute 3 has no Errors: no point either
    assert (minutes(rate, base), rate["Values"]) == ([0, 2, 4], [10.0, 10.0, 10.0])
    assert rate["Messages"] == [{"Code": "ArithmeticError", "Value": "One or more data-points have been dropped "
                                                                     "due to non-numeric values (NaN, -Infinite, "
                                                                     "+Infinite)"}]
    filled = results[1]
    assert (minutes(filled, base), filled["Values"]) == ([0, 1, 2, 3, 4], [11.0, 0.0, 33.0, 40.0, 55.0])
    assert filled["StatusCode"] == "Complete" and not filled.get("Messages")
    assert results[2]["Values"] == [0.1, 0.0, 0.3, 0.5] and results[3]["Values"] == [1.0, 0.0, 3.0, 4.0, 5.0]


def test_newest_first_by_default(published):
    cw, base = published
    out = cw.get_metric_data(MetricDataQueries=[stat("Requests", "m1", ReturnData=False),
                                                {"Id": "e1", "Expression": "RUNNING_SUM(m1)"}], **window(base))
    (result,) = out["MetricDataResults"]
    assert (minutes(result, base), result["Values"]) == ([4, 3, 2, 1, 0], [130.0, 80.0, 40.0, 10.0, 10.0])


def test_pages_go_across_metrics_and_expressions(published):
    cw, base = published
    queries = [stat("Errors", "m1"), {"Id": "e1", "Expression": "m1 * 2"}]
    pages, token = [], None
    while True:
        kwargs = {"NextToken": token} if token else {}
        out = cw.get_metric_data(MetricDataQueries=queries, MaxDatapoints=3, ScanBy="TimestampAscending",
                                 **window(base), **kwargs)
        pages.append([(r["Id"], r["Values"], r["StatusCode"]) for r in out["MetricDataResults"]])
        token = out.get("NextToken")
        if token is None:
            break
    assert pages == [
        [("m1", [1.0, 0.0, 3.0], "PartialData"), ("e1", [], "PartialData")],
        [("m1", [5.0], "Complete"), ("e1", [2.0, 0.0], "PartialData")],
        [("m1", [], "Complete"), ("e1", [6.0, 10.0], "Complete")]]


def error(cw, queries, base):
    with pytest.raises(ClientError) as caught:
        cw.get_metric_data(MetricDataQueries=queries, **window(base))
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


@pytest.mark.parametrize("queries, message", [
    ([stat("Errors", "m1"), {"Id": "e1", "Expression": "m1 * (2"}],
     "The value m1 * (2 for parameter MetricDataQueries.member.2.Expression is invalid: Syntax error: unexpected "
     "end of the expression, expected ')'."),
    ([stat("Errors", "m1"), {"Id": "e1", "Expression": "m1 + m2"}],
     "The value m1 + m2 for parameter MetricDataQueries.member.2.Expression is invalid: Unknown metric or "
     "expression Id m2."),
    ([stat("Errors", "m1"), {"Id": "e1", "Expression": "e2 / m1"}, {"Id": "e2", "Expression": "e1 * 2"}],
     "The value e2 / m1 for parameter MetricDataQueries.member.2.Expression is invalid: Circular dependency "
     "between expressions: e1 -> e2 -> e1."),
    ([stat("Errors", "m1"), {"Id": "e1", "Expression": "MEDIAN(m1)"}],
     "The value MEDIAN(m1) for parameter MetricDataQueries.member.2.Expression is invalid: Unknown function MEDIAN."),
    ([stat("Errors", "m1"), {"Id": "e1", "Expression": "AVG(m1)"}],
     "The value AVG(m1) for parameter MetricDataQueries.member.2.Expression is invalid: The expression must result "
     "in a time series or an array of time series, not a scalar."),
    ([{**stat("Errors", "m1"), "Expression": "m1"}],
     "The parameters MetricDataQuery Expression and MetricStat are mutually exclusive and you have specified both."),
    ([{"Id": "q1", "Expression": 'SELECT SUM(Errors) FROM "Viewer/Math"'}],
     "Shoal does not run Metrics Insights queries yet (MetricDataQueries.member.1.Expression); use MetricStat and "
     "metric math."),
])
def test_bad_expressions_refuse_the_request(published, queries, message):
    cw, base = published
    code, status, text = error(cw, queries, base)
    assert (code, status, text.rstrip("\n")) == ("ValidationError", 400, message)
