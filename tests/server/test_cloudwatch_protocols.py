"""CloudWatch's query and Smithy RPC v2 CBOR protocols against a real ``shoal
serve``: requests built by botocore's own serializers and signed by its
SigV4 signer, answers read by its own parsers, as older SDKs (query) and
CBOR SDKs send and read them.  The same operations through boto3's JSON
client see what the other protocols wrote."""

from __future__ import annotations

import datetime
import urllib.error
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.parsers
import botocore.serialize
import botocore.session
import pytest

from tests.shoal_process import ShoalProcess

MODEL = botocore.session.get_session().get_service_model("cloudwatch")
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("cw-protocols")).start()
    yield proc
    proc.stop()


def send(server, protocol: str, operation: str, params: dict, region: str = "eu-central-1"):
    """(HTTP status, parsed answer) of one request in ``protocol``."""
    op = MODEL.operation_model(operation)
    serializer = botocore.serialize.create_serializer(protocol, include_validation=True)
    request = serializer.serialize_to_request(params, op)
    url = server.url.rstrip("/") + request["url_path"]
    if request.get("query_string"):
        url += "?" + "&".join(f"{k}={v}" for k, v in request["query_string"].items())
    aws = botocore.awsrequest.AWSRequest(method=request["method"], url=url, data=request["body"],
                                         headers=request["headers"])
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("any", "any"), "monitoring", region).add_auth(aws)
    prepared = aws.prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    http = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers),
                                  method=prepared.method)
    try:
        with urllib.request.urlopen(http) as answer:
            status, headers, body = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, dict(error.headers), error.read()
    parser = botocore.parsers.create_parser(protocol)
    parsed = parser.parse({"status_code": status, "headers": {k.lower(): v for k, v in headers.items()},
                           "body": body}, op.output_shape)
    return status, parsed


@pytest.mark.parametrize("protocol", ["query", "smithy-rpc-v2-cbor"])
def test_metrics_written_and_read_in_each_protocol(server, protocol):
    namespace = f"Viewer/{protocol}"
    at = datetime.datetime.now(UTC).replace(second=0, microsecond=0) - datetime.timedelta(minutes=2)
    status, _ = send(server, protocol, "PutMetricData", {"Namespace": namespace, "MetricData": [
        {"MetricName": "Plays", "Dimensions": [{"Name": "Device", "Value": "tv"}], "Timestamp": at, "Value": v,
         "Unit": "Count"} for v in (3.0, 5.0, 10.0)]})
    assert status == 200
    status, stats = send(server, protocol, "GetMetricStatistics", {
        "Namespace": namespace, "MetricName": "Plays", "Dimensions": [{"Name": "Device", "Value": "tv"}],
        "StartTime": at - datetime.timedelta(minutes=5), "EndTime": at + datetime.timedelta(minutes=5),
        "Period": 60, "Statistics": ["Sum", "Maximum", "SampleCount"]})
    assert status == 200
    [point] = stats["Datapoints"]
    assert (point["Sum"], point["Maximum"], point["SampleCount"], point["Unit"]) == (18.0, 10.0, 3.0, "Count")
    assert point["Timestamp"] == at
    # what the JSON client reads is what the other protocol wrote
    cw = boto3.client("cloudwatch", endpoint_url=server.url, region_name="eu-central-1", aws_access_key_id="any",
                      aws_secret_access_key="any")
    listed = cw.list_metrics(Namespace=namespace)["Metrics"]
    assert listed == [{"Namespace": namespace, "MetricName": "Plays", "Dimensions": [{"Name": "Device",
                                                                                     "Value": "tv"}]}]
    status, data = send(server, protocol, "GetMetricData", {
        "MetricDataQueries": [
            {"Id": "plays", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Plays",
                                                      "Dimensions": [{"Name": "Device", "Value": "tv"}]},
                                           "Period": 60, "Stat": "Sum"}, "ReturnData": False},
            {"Id": "double", "Expression": "plays * 2"}],
        "StartTime": at - datetime.timedelta(minutes=5), "EndTime": at + datetime.timedelta(minutes=5)})
    assert status == 200
    [result] = data["MetricDataResults"]
    assert (result["Id"], result["Values"], result["Timestamps"]) == ("double", [36.0], [at])


@pytest.mark.parametrize("protocol", ["query", "smithy-rpc-v2-cbor"])
def test_alarms_in_each_protocol(server, protocol):
    name = f"plays-low-{protocol}"
    status, _ = send(server, protocol, "PutMetricAlarm", {
        "AlarmName": name, "Namespace": "Viewer", "MetricName": "Plays", "Statistic": "Average", "Period": 300,
        "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 1.5, "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": "ignore", "Dimensions": [{"Name": "Device", "Value": "tv"}],
        "Tags": [{"Key": "team", "Value": "video"}]})
    assert status == 200
    status, found = send(server, protocol, "DescribeAlarms", {"AlarmNames": [name]})
    assert status == 200
    [alarm] = found["MetricAlarms"]
    assert (alarm["AlarmName"], alarm["Threshold"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"],
            alarm["StateValue"], alarm["ActionsEnabled"]) == (name, 1.5, 3, 2, "INSUFFICIENT_DATA", True)
    assert alarm["Dimensions"] == [{"Name": "Device", "Value": "tv"}]
    assert isinstance(alarm["StateUpdatedTimestamp"], datetime.datetime)
    status, tags = send(server, protocol, "ListTagsForResource", {"ResourceARN": alarm["AlarmArn"]})
    assert tags["Tags"] == [{"Key": "team", "Value": "video"}]
    status, history = send(server, protocol, "DescribeAlarmHistory", {"AlarmName": name})
    assert [h["HistorySummary"] for h in history["AlarmHistoryItems"]] == [f'Alarm "{name}" created']
    status, _ = send(server, protocol, "DeleteAlarms", {"AlarmNames": [name]})
    assert status == 200
    assert send(server, protocol, "DescribeAlarms", {"AlarmNames": [name]})[1]["MetricAlarms"] == []


@pytest.mark.parametrize("protocol", ["query", "smithy-rpc-v2-cbor"])
def test_errors_in_each_protocol(server, protocol):
    status, answer = send(server, protocol, "SetAlarmState", {"AlarmName": "nope", "StateValue": "OK",
                                                               "StateReason": "x"})
    assert status == 404
    assert (answer["Error"]["Code"], answer["Error"]["Message"]) == ("ResourceNotFound", "Alarm nope not found")
    now = datetime.datetime.now(UTC)
    status, answer = send(server, protocol, "GetMetricStatistics", {
        "Namespace": "Viewer", "MetricName": "Plays", "StartTime": now, "EndTime": now, "Period": 60,
        "Statistics": ["Sum"]})
    assert status == 400
    assert (answer["Error"]["Code"], answer["Error"]["Message"]) == (
        "InvalidParameterValue", "The parameter StartTime must not equal parameter EndTime.")


def test_query_protocol_refusals(server):
    def post(body: bytes):
        request = urllib.request.Request(server.url, data=body, method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    status, body = post(b"Action=GetDashboardsOfDoom&Version=2010-08-01")
    assert status == 400 and b"<Code>InvalidAction</Code>" in body
    assert b"Could not find operation GetDashboardsOfDoom for version 2010-08-01" in body
    status, body = post(b"Action=ListMetrics&Version=2010-08-01&Dimensions.member.0.Name=x")
    assert status == 400 and b"<Code>MalformedInput</Code>" in body
    status, body = post(b"Action=ListMetrics&Version=2010-08-01")
    assert status == 200 and b"<ListMetricsResponse" in body  # and the server still answers
