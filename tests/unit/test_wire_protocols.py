"""The query and Smithy RPC v2 CBOR codecs, held to botocore's own serializers
and parsers: a request a client builds in either protocol parses into what
botocore's JSON serializer would have sent, and an output rendered in either
protocol reads back, through botocore's parser, as the same output read from
JSON."""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timezone

import botocore.parsers
import botocore.serialize
import botocore.session
import cbor2
import pytest
from botocore.awsrequest import create_request_object, prepare_request_dict
from botocore.model import ServiceModel
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.metrics.cloudwatch import CloudWatch
from shoal.metrics.errors import InvalidParameterValue, SerializationError
from shoal.server import cbor_protocol, query_protocol
from shoal.server.query_protocol import InvalidAction, InvalidParameter, MalformedInput, MissingAction
from shoal.storage.memory_engine import MemoryEngine

SESSION = botocore.session.get_session()
CLOUDWATCH = SESSION.get_service_model("cloudwatch")
SNS = SESSION.get_service_model("sns")
# SNS speaks only the query protocol; the same model with a JSON target lets
# botocore's JSON serializer say what the JSON-protocol shape of its input is.
SNS_AS_JSON = ServiceModel({**SNS._service_description,
                            "metadata": {**SNS.metadata, "jsonVersion": "1.0", "targetPrefix": "SNS_20100331"}},
                           "sns")
CW_NS = "http://monitoring.amazonaws.com/doc/2010-08-01/"
SNS_NS = "http://sns.amazonaws.com/doc/2010-03-31/"
FAULT_NS = "http://webservices.amazon.com/AWSFault/2005-15-09"
WHEN = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=timezone.utc)
WHEN_EPOCH = 1772600767.89
TEXT = "a b&c=d+é/<x>%;\"'"


# ---------------------------------------------------------------- helpers


def wire_body(protocol: str, model: ServiceModel, operation: str, params: dict) -> bytes:
    """The body botocore sends for ``params`` (form-encoded as its HTTP layer does)."""
    request = botocore.serialize.create_serializer(protocol).serialize_to_request(
        params, model.operation_model(operation))
    prepare_request_dict(request, "http://localhost:8000")
    body = create_request_object(request).prepare().body
    return body.encode() if isinstance(body, str) else (body or b"")


def json_form(model: ServiceModel, operation: str, params: dict) -> dict:
    """What botocore's JSON serializer sends for ``params``, decoded."""
    body = wire_body("json", model, operation, params)
    return json.loads(body) if body else {}


def cbor_request(operation: str, params: dict) -> dict:
    return botocore.serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request(
        params, CLOUDWATCH.operation_model(operation))


def sample(shape, json_shape: bool = False, depth: int = 0):
    """A value for every member of ``shape`` (two of each list and map): as a
    client passes it, or with ``json_shape`` as the JSON protocol carries it."""
    kind = shape.type_name
    if kind == "structure":
        if depth > 8:
            return {}
        members = shape.members
        if shape.is_tagged_union:
            members = dict(list(members.items())[:1])
        return {name: sample(member, json_shape, depth + 1) for name, member in members.items()}
    low = shape.metadata.get("min", 0)  # botocore's serializers check minimums
    if kind == "list":
        return [sample(shape.member, json_shape, depth + 1) for _ in range(max(2, low))]
    if kind == "map":
        return {f"key{i}-{shape.name}": sample(shape.value, json_shape, depth + 1) for i in range(2)}
    if kind == "string":
        return shape.enum[0] if shape.enum else f"{shape.name}:{TEXT}".ljust(low, "s")
    if kind in ("integer", "long"):
        return max(7, low)
    if kind in ("double", "float"):
        return 2.5
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return WHEN_EPOCH if json_shape else WHEN
    if kind == "blob":
        raw = b"\x00\xffbinary"
        return base64.b64encode(raw).decode() if json_shape else raw
    raise AssertionError(kind)


def with_input(model: ServiceModel) -> list[str]:
    return sorted(name for name in model.operation_names if model.operation_model(name).input_shape is not None)


def with_output(model: ServiceModel) -> list[str]:
    return sorted(name for name in model.operation_names if model.operation_model(name).output_shape is not None)


def read_back(protocol: str, body: bytes, shape, status: int = 200, headers: dict | None = None) -> dict:
    parsed = botocore.parsers.create_parser(protocol).parse(
        {"status_code": status, "headers": headers or {}, "body": body}, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


def from_json(result: dict, shape) -> dict:
    """``result`` as botocore reads it from a JSON-protocol answer."""
    return read_back("json", json.dumps(result).encode(), shape)


# ---------------------------------------------------------------- query requests


@pytest.mark.parametrize("operation", with_input(CLOUDWATCH))
def test_every_cloudwatch_operation_parses_as_its_json_form(operation):
    params = sample(CLOUDWATCH.operation_model(operation).input_shape)
    body = wire_body("query", CLOUDWATCH, operation, params)
    assert query_protocol.parse(body, "cloudwatch") == (operation, json_form(CLOUDWATCH, operation, params))


@pytest.mark.parametrize("operation", with_input(SNS))
def test_every_sns_operation_parses_as_its_json_form(operation):
    params = sample(SNS.operation_model(operation).input_shape)
    body = wire_body("query", SNS, operation, params)
    assert query_protocol.parse(body, "sns") == (operation, json_form(SNS_AS_JSON, operation, params))


PUT_METRIC_DATA = {
    "Namespace": "Shop/Checkout",
    "MetricData": [
        {"MetricName": "Latency", "Dimensions": [{"Name": "Service", "Value": "cart"}, {"Name": "Az", "Value": "b"}],
         "Timestamp": WHEN, "Values": [12.5, 40.0, 3.25], "Counts": [3.0, 1.0, 10.0], "Unit": "Milliseconds",
         "StorageResolution": 1},
        {"MetricName": "Orders", "Value": 4.0, "Unit": "Count", "StorageResolution": 60,
         "Timestamp": datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)},
        {"MetricName": "Bytes", "StatisticValues": {"SampleCount": 5.0, "Sum": 1000.0, "Minimum": 10.0,
                                                    "Maximum": 600.0}, "Unit": "Bytes"},
    ],
}

GET_METRIC_DATA = {
    "MetricDataQueries": [
        {"Id": "writes", "ReturnData": False, "Period": 60,
         "MetricStat": {"Metric": {"Namespace": "AWS/DynamoDB", "MetricName": "ConsumedWriteCapacityUnits",
                                   "Dimensions": [{"Name": "TableName", "Value": "orders"}]},
                        "Period": 60, "Stat": "Sum", "Unit": "Count"}},
        {"Id": "rate", "Expression": "writes / PERIOD(writes)", "Label": "Writes per second", "ReturnData": True},
    ],
    "StartTime": datetime(2026, 3, 4, 4, 0, tzinfo=timezone.utc), "EndTime": WHEN,
    "NextToken": "abc", "ScanBy": "TimestampAscending", "MaxDatapoints": 500,
    "LabelOptions": {"Timezone": "+0130"},
}

PUT_METRIC_ALARM = {
    "AlarmName": "orders-write-burst", "AlarmDescription": "Too many writes & <bursts>",
    "ActionsEnabled": True, "OKActions": ["arn:aws:sns:us-east-1:000000000000:ok"],
    "AlarmActions": ["arn:aws:sns:us-east-1:000000000000:page", "arn:aws:sns:us-east-1:000000000000:log"],
    "InsufficientDataActions": ["arn:aws:sns:us-east-1:000000000000:log"],
    "MetricName": "ConsumedWriteCapacityUnits", "Namespace": "AWS/DynamoDB", "Statistic": "Sum",
    "ExtendedStatistic": "p99", "Dimensions": [{"Name": "TableName", "Value": "orders"}], "Period": 60,
    "Unit": "Count", "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 100.5,
    "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
    "EvaluateLowSampleCountPercentile": "ignore",
    "Metrics": [{"Id": "m1", "MetricStat": {"Metric": {"Namespace": "AWS/DynamoDB", "MetricName": "ThrottledRequests"},
                                             "Period": 300, "Stat": "Maximum"}, "ReturnData": False},
                {"Id": "e1", "Expression": "m1 * 2", "Label": "doubled", "ReturnData": True}],
    "Tags": [{"Key": "team", "Value": "storage"}, {"Key": "env", "Value": "prod"}],
    "ThresholdMetricId": "e1",
}

REALISTIC = [
    ("PutMetricData", PUT_METRIC_DATA),
    ("GetMetricData", GET_METRIC_DATA),
    ("PutMetricAlarm", PUT_METRIC_ALARM),
    ("GetMetricStatistics", {"Namespace": "AWS/DynamoDB", "MetricName": "SuccessfulRequestLatency",
                             "Dimensions": [{"Name": "TableName", "Value": "orders"},
                                            {"Name": "Operation", "Value": "GetItem"}],
                             "StartTime": datetime(2026, 3, 4, tzinfo=timezone.utc), "EndTime": WHEN, "Period": 300,
                             "ExtendedStatistics": ["p99", "p50"]}),
    ("ListMetrics", {"Namespace": "AWS/DynamoDB", "Dimensions": [{"Name": "TableName"}], "RecentlyActive": "PT3H"}),
    ("DescribeAlarms", {"AlarmNames": ["a", "b"], "StateValue": "ALARM", "MaxRecords": 10,
                        "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}),
    ("DescribeAlarmHistory", {"AlarmName": "a", "HistoryItemType": "StateUpdate", "StartDate": WHEN,
                              "EndDate": WHEN, "ScanBy": "TimestampDescending"}),
    ("SetAlarmState", {"AlarmName": "a", "StateValue": "ALARM", "StateReason": "test",
                       "StateReasonData": '{"version": "1.0"}'}),
    ("TagResource", {"ResourceARN": "arn:aws:cloudwatch:us-east-1:000000000000:alarm:a",
                     "Tags": [{"Key": "team", "Value": "storage"}]}),
    ("DeleteAlarms", {"AlarmNames": ["a", "b"]}),
    ("DescribeAlarms", {}),
]


@pytest.mark.parametrize("operation, params", REALISTIC, ids=[f"{op}-{i}" for i, (op, _) in enumerate(REALISTIC)])
def test_realistic_cloudwatch_requests_in_both_protocols(operation, params):
    expected = json_form(CLOUDWATCH, operation, params)
    assert query_protocol.parse(wire_body("query", CLOUDWATCH, operation, params), "cloudwatch") == (operation,
                                                                                                    expected)
    request = cbor_request(operation, params)
    target = cbor_protocol.operation_of(request["url_path"])
    assert target == ("GraniteServiceVersion20100801", operation)
    assert cbor_protocol.SERVICES[target[0]] == "cloudwatch"
    assert cbor_protocol.parse(request["body"], "cloudwatch", operation) == expected


def test_put_metric_data_parses_to_exact_values():
    _, params = query_protocol.parse(wire_body("query", CLOUDWATCH, "PutMetricData", PUT_METRIC_DATA), "cloudwatch")
    assert params == {
        "Namespace": "Shop/Checkout",
        "MetricData": [
            {"MetricName": "Latency",
             "Dimensions": [{"Name": "Service", "Value": "cart"}, {"Name": "Az", "Value": "b"}],
             "Timestamp": 1772600767.89, "Values": [12.5, 40.0, 3.25], "Counts": [3.0, 1.0, 10.0],
             "Unit": "Milliseconds", "StorageResolution": 1},
            {"MetricName": "Orders", "Timestamp": 1772600767.0, "Value": 4.0, "Unit": "Count", "StorageResolution": 60},
            {"MetricName": "Bytes", "StatisticValues": {"SampleCount": 5.0, "Sum": 1000.0, "Minimum": 10.0,
                                                        "Maximum": 600.0}, "Unit": "Bytes"},
        ],
    }
    assert isinstance(params["MetricData"][0]["StorageResolution"], int)
    assert cbor_protocol.parse(cbor_request("PutMetricData", PUT_METRIC_DATA)["body"], "cloudwatch",
                               "PutMetricData") == params


SNS_REQUESTS = [
    ("CreateTopic", {"Name": "alarms", "Attributes": {"DisplayName": "Alarms & <more>", "FifoTopic": "false"},
                     "Tags": [{"Key": "team", "Value": "storage"}]}),
    ("Subscribe", {"TopicArn": "arn:aws:sns:us-east-1:000000000000:alarms", "Protocol": "https",
                   "Endpoint": "https://hooks.example/cw?x=1&y=2", "Attributes": {"RawMessageDelivery": "true"},
                   "ReturnSubscriptionArn": True}),
    ("ConfirmSubscription", {"TopicArn": "arn:aws:sns:us-east-1:000000000000:alarms", "Token": "t0k3n",
                             "AuthenticateOnUnsubscribe": "true"}),
    ("Publish", {"TopicArn": "arn:aws:sns:us-east-1:000000000000:alarms", "Message": '{"AlarmName": "a"}',
                 "Subject": "ALARM: a", "MessageStructure": "json",
                 "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "alarm"},
                                       "count": {"DataType": "Number", "StringValue": "3"},
                                       "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}}),
    ("ListSubscriptionsByTopic", {"TopicArn": "arn:aws:sns:us-east-1:000000000000:alarms", "NextToken": "n"}),
    ("Unsubscribe", {"SubscriptionArn": "arn:aws:sns:us-east-1:000000000000:alarms:1"}),
    ("DeleteTopic", {"TopicArn": "arn:aws:sns:us-east-1:000000000000:alarms"}),
    ("ListTopics", {}),
]


@pytest.mark.parametrize("operation, params", SNS_REQUESTS, ids=[op for op, _ in SNS_REQUESTS])
def test_realistic_sns_requests(operation, params):
    body = wire_body("query", SNS, operation, params)
    assert query_protocol.parse(body, "sns") == (operation, json_form(SNS_AS_JSON, operation, params))


def test_sns_message_attributes_follow_the_models_location_names():
    body = wire_body("query", SNS, "Publish", dict(SNS_REQUESTS[3][1]))
    assert b"MessageAttributes.entry.1.Name=kind" in body
    assert b"MessageAttributes.entry.3.Value.BinaryValue=AAE%3D" in body
    _, params = query_protocol.parse(body, "sns")
    assert params["MessageAttributes"] == {"kind": {"DataType": "String", "StringValue": "alarm"},
                                           "count": {"DataType": "Number", "StringValue": "3"},
                                           "blob": {"DataType": "Binary", "BinaryValue": "AAE="}}


def test_a_get_query_string_and_out_of_order_indexes():
    query = ("Version=2010-08-01&Statistics.member.2=Maximum&Action=GetMetricStatistics&Period=60"
             "&Statistics.member.1=Sum&Statistics.member.10=Minimum&Dimensions.member.1.Name=TableName"
             "&Dimensions.member.1.Value=t%201&StartTime=1772600000&EndTime=2026-03-04T05%3A06%3A07%2B01%3A00"
             "&Unknown.member.1=x&Namespace=AWS%2FDynamoDB&Namespace=ignored")
    assert query_protocol.parse(query, "cloudwatch") == ("GetMetricStatistics", {
        "Namespace": "AWS/DynamoDB", "Dimensions": [{"Name": "TableName", "Value": "t 1"}],
        "StartTime": 1772600000.0, "EndTime": 1772597167.0, "Period": 60,
        "Statistics": ["Sum", "Maximum", "Minimum"]})


def test_an_empty_list_and_special_doubles():
    body = wire_body("query", CLOUDWATCH, "PutMetricData", {
        "Namespace": "n", "MetricData": [{"MetricName": "m", "Values": [], "Value": float("nan")},
                                         {"MetricName": "m", "Value": float("-inf")}]})
    assert b"MetricData.member.1.Values=&" in body
    assert query_protocol.parse(body, "cloudwatch")[1]["MetricData"] == [
        {"MetricName": "m", "Values": [], "Value": "NaN"}, {"MetricName": "m", "Value": "-Infinity"}]
    assert query_protocol.parse(b"Action=ListMetrics&Version=2010-08-01&RecentlyActive=", "cloudwatch") == (
        "ListMetrics", {"RecentlyActive": ""})


@pytest.mark.parametrize("body, error, message", [
    (b"Version=2010-08-01&Namespace=x", MissingAction, "Missing Action"),
    (b"Action=NoSuchAction&Version=2010-08-01", InvalidAction, "Could not find operation NoSuchAction for version "
                                                               "2010-08-01"),
    (b"Action=ListMetrics", InvalidAction, "Could not find operation ListMetrics for version NO_VERSION_SPECIFIED"),
    (b"Action=ListMetrics&Version=2011-06-15", InvalidAction,
     "Could not find operation ListMetrics for version 2011-06-15"),
    (b"Action=&Version=2010-08-01", InvalidAction, "Could not find operation  for version 2010-08-01"),
    (b"Action=DeleteAlarms&Version=2010-08-01&AlarmNames.member.0=a", MalformedInput, "0 is not a valid index"),
    (b"Action=DeleteAlarms&Version=2010-08-01&AlarmNames.member.x=a", MalformedInput, "x is not a valid index"),
    (b"Action=DeleteAlarms&Version=2010-08-01&AlarmNames.member.-1=a", MalformedInput, "-1 is not a valid index"),
    (b"Action=GetMetricStatistics&Version=2010-08-01&Period=sixty", InvalidParameterValue,
     "The value sixty for parameter Period is invalid."),
    (b"Action=GetMetricStatistics&Version=2010-08-01&StartTime=yesterday", InvalidParameterValue,
     "The value yesterday for parameter StartTime is invalid."),
    (b"Action=PutMetricData&Version=2010-08-01&MetricData.member.2.Value=1_0", InvalidParameterValue,
     "The value 1_0 for parameter MetricData.member.2.Value is invalid."),
    (b"Action=PutMetricAlarm&Version=2010-08-01&ActionsEnabled=yes", InvalidParameterValue,
     "The value yes for parameter ActionsEnabled is invalid."),
])
def test_query_errors(body, error, message):
    with pytest.raises(error) as caught:
        query_protocol.parse(body, "cloudwatch")
    assert caught.value.message == message
    assert caught.value.status == 400 and caught.value.fault == "Sender"


def test_sns_words_an_unreadable_value_its_own_way():
    with pytest.raises(InvalidParameter) as caught:
        query_protocol.parse(b"Action=Subscribe&Version=2010-03-31&ReturnSubscriptionArn=maybe", "sns")
    assert (caught.value.code, caught.value.message) == ("InvalidParameter", "Invalid parameter: ReturnSubscriptionArn")
    assert query_protocol.parse(b"Action=Subscribe&Version=2010-03-31&ReturnSubscriptionArn=TRUE", "sns") == (
        "Subscribe", {"ReturnSubscriptionArn": True})


# ---------------------------------------------------------------- query answers


@pytest.mark.parametrize("operation", with_output(CLOUDWATCH))
def test_every_cloudwatch_output_reads_back_through_botocore(operation):
    shape = CLOUDWATCH.operation_model(operation).output_shape
    result = sample(shape, json_shape=True)
    xml = query_protocol.response("cloudwatch", operation, result, "req-1")
    assert read_back("query", xml, shape) == from_json(result, shape)
    assert read_back("smithy-rpc-v2-cbor", cbor_protocol.response("cloudwatch", operation, result),
                     shape) == from_json(result, shape)


@pytest.mark.parametrize("operation", with_output(SNS))
def test_every_sns_output_reads_back_through_botocore(operation):
    shape = SNS.operation_model(operation).output_shape
    result = sample(shape, json_shape=True)
    xml = query_protocol.response("sns", operation, result, "req-1")
    assert read_back("query", xml, shape) == from_json(result, shape)


def test_get_metric_statistics_answer_is_exact():
    result = {"Label": "Latency", "Datapoints": [
        {"Timestamp": 1772600760, "SampleCount": 3.0, "Average": 1.5, "Unit": "Milliseconds",
         "ExtendedStatistics": {"p99": 2.75}},
        {"Timestamp": 1772600820.5, "Maximum": 1e+16, "Unit": "Milliseconds"}]}
    xml = query_protocol.response("cloudwatch", "GetMetricStatistics", result, "rid&1")
    assert xml.decode() == (
        f'<GetMetricStatisticsResponse xmlns="{CW_NS}"><GetMetricStatisticsResult><Label>Latency</Label>'
        "<Datapoints><member><Timestamp>2026-03-04T05:06:00.000Z</Timestamp><SampleCount>3.0</SampleCount>"
        "<Average>1.5</Average><Unit>Milliseconds</Unit><ExtendedStatistics><entry><key>p99</key>"
        "<value>2.75</value></entry></ExtendedStatistics></member><member>"
        "<Timestamp>2026-03-04T05:07:00.500Z</Timestamp><Maximum>1e+16</Maximum><Unit>Milliseconds</Unit>"
        "</member></Datapoints></GetMetricStatisticsResult><ResponseMetadata><RequestId>rid&amp;1</RequestId>"
        "</ResponseMetadata></GetMetricStatisticsResponse>")
    shape = CLOUDWATCH.operation_model("GetMetricStatistics").output_shape
    parsed = botocore.parsers.create_parser("query").parse({"status_code": 200, "headers": {}, "body": xml}, shape)
    assert parsed["ResponseMetadata"]["RequestId"] == "rid&1"
    assert parsed["Datapoints"][1]["Timestamp"].timestamp() == 1772600820.5
    assert parsed["Datapoints"][1]["Maximum"] == 1e16


def test_an_operation_without_output_answers_only_its_metadata():
    xml = query_protocol.response("cloudwatch", "PutMetricData", {}, "r-2")
    assert xml == (f'<PutMetricDataResponse xmlns="{CW_NS}"><ResponseMetadata><RequestId>r-2</RequestId>'
                   "</ResponseMetadata></PutMetricDataResponse>").encode()
    parsed = botocore.parsers.create_parser("query").parse({"status_code": 200, "headers": {}, "body": xml}, None)
    assert parsed["ResponseMetadata"]["RequestId"] == "r-2"
    assert cbor_protocol.response("cloudwatch", "PutMetricData", {}) == b""
    assert cbor_protocol.response_headers(b"") == [("smithy-protocol", "rpc-v2-cbor")]


def test_an_empty_output_keeps_its_result_element():
    xml = query_protocol.response("sns", "CreateTopic", {}, "r")
    assert xml.startswith(f'<CreateTopicResponse xmlns="{SNS_NS}"><CreateTopicResult></CreateTopicResult>'.encode())
    assert read_back("query", xml, SNS.operation_model("CreateTopic").output_shape) == {}


def test_special_doubles_and_carriage_returns_survive():
    shape = CLOUDWATCH.operation_model("GetMetricData").output_shape
    result = {"MetricDataResults": [{"Id": "a", "Label": "line\r\nbreak\ttab", "Timestamps": [1772600760],
                                     "Values": ["NaN", "Infinity", 1.25], "StatusCode": "Complete"}]}
    for parsed in (read_back("query", query_protocol.response("cloudwatch", "GetMetricData", result, "r"), shape),
                   read_back("smithy-rpc-v2-cbor", cbor_protocol.response("cloudwatch", "GetMetricData", result),
                             shape)):
        values = parsed["MetricDataResults"][0]["Values"]
        assert math.isnan(values[0]) and values[1:] == [math.inf, 1.25]
        assert parsed["MetricDataResults"][0]["Label"] == "line\r\nbreak\ttab"


@pytest.mark.parametrize("code, message, sender, namespace", [
    ("InvalidParameterValue", "The value x for parameter Period is invalid.", True, CW_NS),
    ("InternalServiceError", "Internal error <&>", False, CW_NS),
    ("InvalidAction", "Could not find operation X for version 2010-08-01", True, FAULT_NS),
    ("MissingAction", "Missing Action", True, FAULT_NS),
])
def test_query_errors_read_by_botocore(code, message, sender, namespace):
    xml = query_protocol.error(code, message, "rid-9", sender=sender)
    assert xml.startswith(f'<ErrorResponse xmlns="{namespace}"><Error><Type>'.encode())
    parsed = botocore.parsers.create_parser("query").parse({"status_code": 400, "headers": {}, "body": xml},
                                                           None)
    assert parsed["Error"] == {"Type": "Sender" if sender else "Receiver", "Code": code, "Message": message}
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-9"


def test_sns_errors_are_in_its_namespace():
    xml = query_protocol.error("NotFound", "Topic does not exist", "r", service="sns")
    assert xml == (f'<ErrorResponse xmlns="{SNS_NS}"><Error><Type>Sender</Type><Code>NotFound</Code>'
                   "<Message>Topic does not exist</Message></Error><RequestId>r</RequestId></ErrorResponse>").encode()


# ---------------------------------------------------------------- CBOR


@pytest.mark.parametrize("operation", with_input(CLOUDWATCH))
def test_every_cloudwatch_operation_in_cbor_parses_as_its_json_form(operation):
    params = sample(CLOUDWATCH.operation_model(operation).input_shape)
    request = cbor_request(operation, params)
    assert request["headers"]["smithy-protocol"] == "rpc-v2-cbor"
    assert cbor_protocol.parse(request["body"], "cloudwatch", operation) == json_form(CLOUDWATCH, operation, params)


@pytest.mark.parametrize("path, expected", [
    ("/service/GraniteServiceVersion20100801/operation/ListMetrics", ("GraniteServiceVersion20100801", "ListMetrics")),
    ("/prefix/service/S/operation/Op?x=1", ("S", "Op")),
    ("/", None), ("/service/S/operation/", None), ("/service/S/operation/Op/extra", None),
    ("/services/S/operation/Op", None), ("service/S/operation/Op", None),
])
def test_operation_of(path, expected):
    assert cbor_protocol.operation_of(path) == expected


@pytest.mark.parametrize("body, message", [
    (b"\xff", "The request body is not valid CBOR."),
    (b"\xa1", "The request body is not valid CBOR."),
    (b"\xa1\x69StartTime\xc1\x61a", "The request body is not valid CBOR."),
    (b"\x80", "The request body must be a CBOR map of the input's members."),
    (b"\x61a", "The request body must be a CBOR map of the input's members."),
    (b"\xa0\xa0", "The request body holds more than one CBOR data item."),
])
def test_cbor_that_does_not_parse(body, message):
    with pytest.raises(SerializationError) as caught:
        cbor_protocol.parse(body, "cloudwatch", "GetMetricStatistics")
    assert (caught.value.type_name, caught.value.code, caught.value.message) == (
        "SerializationException", "SerializationException", message)
    assert caught.value.status == 400


def test_cbor_values_in_their_json_form():
    body = cbor2.dumps({"Namespace": "n", "StartTime": cbor2.CBORTag(1, 1772600760), "EndTime": 1772600820.25,
                        "MetricName": None, "Period": 60, "Unknown": {1: 2}, "Unit": cbor2.undefined,
                        "Dimensions": [{"Name": "a", "Value": "b"}, None]})
    assert cbor_protocol.parse(body, "cloudwatch", "GetMetricStatistics") == {
        "Namespace": "n", "StartTime": 1772600760.0, "EndTime": 1772600820.25, "Period": 60,
        "Dimensions": [{"Name": "a", "Value": "b"}]}
    assert cbor_protocol.parse(b"", "cloudwatch", "ListMetrics") == {}
    # A value of the wrong type is left for the operation's checks, which refuse it as in JSON.
    assert cbor_protocol.parse(cbor2.dumps({"Period": "sixty"}), "cloudwatch", "GetMetricStatistics") == {
        "Period": "sixty"}
    with pytest.raises(SerializationError):
        cbor_protocol.parse(cbor2.dumps({"Namespace": b"bytes"}), "cloudwatch", "ListMetrics")


def test_cbor_answers_use_tag_1_and_byte_strings():
    body = cbor_protocol.response("cloudwatch", "GetMetricWidgetImage", {"MetricWidgetImage": "AAE="})
    assert cbor2.loads(body) == {"MetricWidgetImage": b"\x00\x01"}
    body = cbor_protocol.response("cloudwatch", "GetMetricData", {
        "MetricDataResults": [{"Id": "a", "Timestamps": [1772600760, 1772600760.5], "Values": [1, 2.5]}]})
    assert body.startswith(bytes([0xA1]))
    raw = cbor2.loads(body, tag_hook=lambda decoder, tag: ("tag", tag.tag, tag.value))
    assert raw["MetricDataResults"][0]["Values"] == [1.0, 2.5]
    assert isinstance(raw["MetricDataResults"][0]["Values"][0], float)
    decoded = cbor2.loads(body)["MetricDataResults"][0]["Timestamps"]
    assert [moment.timestamp() for moment in decoded] == [1772600760, 1772600760.5]
    assert b"\xc1\x1a\x69\xa7\xbd\xb8" in body  # tag 1, then the whole second as a 32-bit integer


def test_cbor_errors_read_by_botocore():
    body = cbor_protocol.error("InvalidParameterValueException", "The value x for parameter Period is invalid.")
    assert cbor2.loads(body) == {"__type": "com.amazonaws.cloudwatch#InvalidParameterValueException",
                                 "message": "The value x for parameter Period is invalid."}
    headers = dict(cbor_protocol.error_headers("InvalidParameterValue;Sender"))
    assert headers == {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor",
                       "x-amzn-query-error": "InvalidParameterValue;Sender"}
    parsed = botocore.parsers.create_parser("smithy-rpc-v2-cbor").parse(
        {"status_code": 400, "headers": {"x-amzn-query-error": "InvalidParameterValue;Sender"}, "body": body}, None)
    assert parsed["Error"]["Code"] == "InvalidParameterValue"
    assert parsed["Error"]["Message"] == "The value x for parameter Period is invalid."
    assert parsed["Error"]["Type"] == "Sender"
    plain = botocore.parsers.create_parser("smithy-rpc-v2-cbor").parse(
        {"status_code": 400, "headers": {}, "body": cbor_protocol.error("ResourceNotFound", "gone")}, None)
    assert (plain["Error"]["Code"], plain["Error"]["Message"]) == ("ResourceNotFound", "gone")


# ---------------------------------------------------------------- through CloudWatch's operations


def test_a_query_write_and_a_cbor_read_through_cloudwatch():
    now = 1772600767.0
    api = CloudWatch(MemoryEngine(), clock=lambda: now)
    operation, data = query_protocol.parse(wire_body("query", CLOUDWATCH, "PutMetricData", {
        "Namespace": "App", "MetricData": [
            {"MetricName": "Latency", "Dimensions": [{"Name": "Service", "Value": "cart"}],
             "Timestamp": datetime(2026, 3, 4, 5, 5, 10, tzinfo=timezone.utc), "Values": [10.0, 30.0],
             "Counts": [1.0, 3.0]}]}), "cloudwatch")
    _, job = api.prepare(operation, data, "us-east-1")
    job()
    request = cbor_request("GetMetricStatistics", {
        "Namespace": "App", "MetricName": "Latency", "Dimensions": [{"Name": "Service", "Value": "cart"}],
        "StartTime": datetime(2026, 3, 4, 5, 0, tzinfo=timezone.utc),
        "EndTime": datetime(2026, 3, 4, 5, 10, tzinfo=timezone.utc), "Period": 60,
        "Statistics": ["Sum", "SampleCount", "Maximum"]})
    operation = cbor_protocol.operation_of(request["url_path"])[1]
    _, job = api.prepare(operation, cbor_protocol.parse(request["body"], "cloudwatch", operation), "us-east-1")
    result = job()
    shape = CLOUDWATCH.operation_model(operation).output_shape
    for parsed in (read_back("smithy-rpc-v2-cbor", cbor_protocol.response("cloudwatch", operation, result), shape),
                   read_back("query", query_protocol.response("cloudwatch", operation, result, "r"), shape)):
        assert parsed["Label"] == "Latency"
        [point] = parsed["Datapoints"]
        assert point["Timestamp"] == datetime(2026, 3, 4, 5, 5, tzinfo=timezone.utc)
        assert (point["Sum"], point["SampleCount"], point["Maximum"], point["Unit"]) == (100.0, 4.0, 30.0, "None")


# ---------------------------------------------------------------- properties


XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r"), max_size=30)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
MOMENTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.just(timezone.utc)).map(
    lambda m: m.replace(microsecond=m.microsecond // 1000 * 1000))  # the query protocol's times carry milliseconds
NAME = XML_TEXT.filter(bool)  # the model's minimum length
DATUM = st.fixed_dictionaries(
    {"MetricName": NAME},
    optional={"Dimensions": st.lists(st.fixed_dictionaries({"Name": NAME, "Value": NAME}), max_size=3),
              "Timestamp": MOMENTS, "Value": FINITE, "Values": st.lists(FINITE, max_size=4),
              "StorageResolution": st.integers(1, 2**31 - 1), "Unit": st.sampled_from(["Count", "Bytes"])})


@settings(max_examples=60, deadline=None)
@given(namespace=NAME, data=st.lists(DATUM, min_size=1, max_size=3))
def test_put_metric_data_round_trips_in_both_protocols(namespace, data):
    params = {"Namespace": namespace, "MetricData": data}
    expected = json_form(CLOUDWATCH, "PutMetricData", params)
    assert query_protocol.parse(wire_body("query", CLOUDWATCH, "PutMetricData", params), "cloudwatch") == (
        "PutMetricData", expected)
    assert cbor_protocol.parse(cbor_request("PutMetricData", params)["body"], "cloudwatch", "PutMetricData") == expected


POINT = st.fixed_dictionaries(
    {"Timestamp": MOMENTS.map(lambda m: m.timestamp())},
    optional={"Sum": FINITE, "Maximum": FINITE, "Unit": st.sampled_from(["Count", "None"]),
              "ExtendedStatistics": st.dictionaries(XML_TEXT, FINITE, max_size=3)})


@settings(max_examples=60, deadline=None)
@given(label=XML_TEXT, points=st.lists(POINT, max_size=4), request_id=NAME)
def test_statistics_answers_round_trip_in_both_protocols(label, points, request_id):
    result = {"Label": label, "Datapoints": points}
    shape = CLOUDWATCH.operation_model("GetMetricStatistics").output_shape
    expected = from_json(result, shape)
    xml = query_protocol.response("cloudwatch", "GetMetricStatistics", result, request_id)
    parsed = botocore.parsers.create_parser("query").parse({"status_code": 200, "headers": {}, "body": xml}, shape)
    assert parsed.pop("ResponseMetadata")["RequestId"] == request_id
    assert parsed == expected
    assert read_back("smithy-rpc-v2-cbor", cbor_protocol.response("cloudwatch", "GetMetricStatistics", result),
                     shape) == expected
