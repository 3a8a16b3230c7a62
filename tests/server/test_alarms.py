"""An alarm on a burst of writes, end to end: a real ``shoal serve`` (two
workers), boto3's CloudWatch and SNS clients, and a webhook subscribed to the
alarm's topic through SNS's confirmation handshake.  The server's clock is
moved (SHOAL_TEST_CLOCK_FILE) to end a minute instead of waiting for it."""

from __future__ import annotations

import http.server
import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tests.shoal_process import ShoalProcess, moved_clock

NO_RETRY = botocore.config.Config(retries={"max_attempts": 1})


class Webhook:
    """An HTTP endpoint that keeps every POST it receives."""

    def __init__(self) -> None:
        self.received: queue.Queue = queue.Queue()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                hook.received.put((dict((k.lower(), v) for k, v in self.headers.items()), json.loads(body)))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 30.0):
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    clock = moved_clock(tmp_path_factory)
    proc = ShoalProcess(tmp_path_factory.mktemp("alarms"), "--workers", "2",
                        env={"SHOAL_TEST_CLOCK_FILE": str(clock)}).start()
    hook = Webhook()
    yield proc, clock, hook
    hook.close()
    proc.stop()


def client(proc, service, region="us-east-1"):
    return boto3.client(service, endpoint_url=proc.url, region_name=region, aws_access_key_id="any",
                        aws_secret_access_key="any", config=NO_RETRY)


def to_second_five_of_a_minute(clock) -> None:
    """Move the server's clock so that it reads 5 s past a minute."""
    offset = float(clock.read_text() or 0)
    now = time.time() + offset
    clock.write_text(repr(offset + (math.ceil(now / 60) * 60 + 5 - now)))


def advance(clock, seconds: float) -> None:
    clock.write_text(repr(float(clock.read_text() or 0) + seconds))


def wait_for_state(cw, name, state, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        if alarm["StateValue"] == state:
            return alarm
        if time.monotonic() > deadline:
            raise AssertionError(f"alarm {name} stayed {alarm['StateValue']}: {alarm['StateReason']}")
        time.sleep(0.5)


def test_a_write_burst_raises_an_alarm_that_notifies_a_webhook_and_clears(moved):
    proc, clock, hook = moved
    sns, cw, ddb = client(proc, "sns"), client(proc, "cloudwatch"), client(proc, "dynamodb")
    topic = sns.create_topic(Name="viewer-alerts")["TopicArn"]
    assert topic == "arn:aws:sns:us-east-1:000000000000:viewer-alerts"
    pending = sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=hook.url)["SubscriptionArn"]
    assert pending == "pending confirmation"
    headers, confirmation = hook.next()
    assert headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert confirmation["Type"] == "SubscriptionConfirmation" and confirmation["TopicArn"] == topic
    with urllib.request.urlopen(confirmation["SubscribeURL"]) as answer:  # as a webhook confirms: a GET
        assert answer.status == 200
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert subscription["Endpoint"] == hook.url and subscription["SubscriptionArn"].startswith(topic + ":")

    ddb.create_table(TableName="viewer_events", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "viewer_id", "KeyType": "HASH"},
                                {"AttributeName": "event_time", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "viewer_id", "AttributeType": "S"},
                                           {"AttributeName": "event_time", "AttributeType": "N"}])
    cw.put_metric_alarm(AlarmName="write-burst", AlarmDescription="viewer events written too fast",
                        Namespace="AWS/DynamoDB", MetricName="ConsumedWriteCapacityUnits",
                        Dimensions=[{"Name": "TableName", "Value": "viewer_events"}], Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=50, ComparisonOperator="GreaterThanThreshold",
                        AlarmActions=[topic], OKActions=[topic])
    assert cw.describe_alarms(AlarmNames=["write-burst"])["MetricAlarms"][0]["StateValue"] == "INSUFFICIENT_DATA"

    to_second_five_of_a_minute(clock)
    for i in range(4):  # 100 events of under 1 KB: 100 write units
        ddb.batch_write_item(RequestItems={"viewer_events": [
            {"PutRequest": {"Item": {"viewer_id": {"S": f"v{j % 7}"}, "event_time": {"N": str(1000 + j)},
                                     "event_type": {"S": "play"}}}} for j in range(i * 25, i * 25 + 25)]})
    time.sleep(1.5)  # both workers flush their figures every second
    advance(clock, 60)  # the minute of the burst has ended
    alarm = wait_for_state(cw, "write-burst", "ALARM")
    assert alarm["StateReason"].startswith("Threshold Crossed: 1 datapoint [100.0 (")
    assert alarm["StateReason"].endswith(")] was greater than the threshold (50.0).")
    headers, note = hook.next()
    assert headers["x-amz-sns-message-type"] == "Notification" and headers["x-amz-sns-topic-arn"] == topic
    assert note["Subject"] == 'ALARM: "write-burst" in US East (N. Virginia)'
    message = json.loads(note["Message"])
    assert message["AlarmName"] == "write-burst" and message["NewStateValue"] == "ALARM"
    assert message["OldStateValue"] == "INSUFFICIENT_DATA" and message["Trigger"]["MetricName"] == \
        "ConsumedWriteCapacityUnits"
    assert message["Trigger"]["Dimensions"] == [{"value": "viewer_events", "name": "TableName"}]

    for j in range(5):  # a quiet minute: 5 writes
        ddb.put_item(TableName="viewer_events", Item={"viewer_id": {"S": "v1"}, "event_time": {"N": str(5000 + j)}})
    time.sleep(1.5)
    advance(clock, 60)
    alarm = wait_for_state(cw, "write-burst", "OK")
    assert "[5.0 (" in alarm["StateReason"] and "was not greater than the threshold (50.0)" in alarm["StateReason"]
    headers, note = hook.next()
    assert json.loads(note["Message"])["NewStateValue"] == "OK"
    assert hook.received.empty()  # two workers evaluate; each change is notified once

    history = cw.describe_alarm_history(AlarmName="write-burst", HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in history] == ["Alarm updated from ALARM to OK",
                                                      "Alarm updated from INSUFFICIENT_DATA to ALARM"]


def test_alarm_errors_through_boto3(moved):
    proc, _, _ = moved
    cw = client(proc, "cloudwatch", "eu-west-1")
    with pytest.raises(ClientError) as info:
        cw.set_alarm_state(AlarmName="nope", StateValue="OK", StateReason="x")
    assert info.value.response["Error"]["Code"] == "ResourceNotFound"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as info:
        cw.put_metric_alarm(AlarmName="a", Namespace="App", MetricName="m", Statistic="Sum", Period=60,
                            EvaluationPeriods=2, DatapointsToAlarm=3, Threshold=1,
                            ComparisonOperator="GreaterThanThreshold")
    error = info.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "ValidationError", "DatapointsToAlarm must be less than or equal to EvaluationPeriods")
    assert cw.describe_alarms()["MetricAlarms"] == []  # nothing made, and the server still answers


def test_alarms_through_the_aws_cli(moved):
    proc, _, _ = moved
    env = dict(os.environ, AWS_ACCESS_KEY_ID="any", AWS_SECRET_ACCESS_KEY="any", AWS_DEFAULT_REGION="ap-south-1")

    def aws(*args):
        out = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", proc.url, "cloudwatch", *args,
                              "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else None

    aws("put-metric-alarm", "--alarm-name", "cli-alarm", "--namespace", "App", "--metric-name", "Plays",
        "--statistic", "Average", "--period", "300", "--evaluation-periods", "2", "--threshold", "7",
        "--comparison-operator", "LessThanThreshold", "--treat-missing-data", "ignore")
    [alarm] = aws("describe-alarms", "--alarm-names", "cli-alarm")["MetricAlarms"]
    assert (alarm["Period"], alarm["Threshold"], alarm["TreatMissingData"]) == (300, 7.0, "ignore")
    # without data, an alarm that ignores missing data keeps the state it is set to
    aws("set-alarm-state", "--alarm-name", "cli-alarm", "--state-value", "ALARM", "--state-reason", "drill")
    assert aws("describe-alarms", "--state-value", "ALARM")["MetricAlarms"][0]["StateReason"] == "drill"
    assert aws("describe-alarms-for-metric", "--namespace", "App", "--metric-name", "Plays")["MetricAlarms"]
    aws("delete-alarms", "--alarm-names", "cli-alarm")
    assert aws("describe-alarms")["MetricAlarms"] == []


def test_with_auth_on_alarms_and_topics_are_authorized_by_arn(tmp_path):
    from tests.shoal_process import root_credentials

    data_dir = tmp_path / "secured"
    proc = ShoalProcess(data_dir, "--workers", "1", "--auth", "sigv4").start()
    try:
        key, secret = root_credentials(data_dir)

        def iam(*args):
            out = subprocess.run([sys.executable, "-m", "shoal", "iam", *args, "--data-dir", str(data_dir)],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.strip() else None

        iam("create-user", "--user-name", "oncall")
        access = iam("create-access-key", "--user-name", "oncall")["AccessKey"]
        iam("put-user-policy", "--user-name", "oncall", "--policy-name", "own-alarms", "--policy-document",
            json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
                 "Resource": "arn:aws:cloudwatch:us-east-1:000000000000:alarm:oncall-*"},
                {"Effect": "Allow", "Action": "sns:CreateTopic",
                 "Resource": "arn:aws:sns:us-east-1:000000000000:oncall-*"}]}))
        kw = dict(endpoint_url=proc.url, region_name="us-east-1", config=NO_RETRY)
        user = dict(aws_access_key_id=access["AccessKeyId"], aws_secret_access_key=access["SecretAccessKey"])
        cw, sns = boto3.client("cloudwatch", **user, **kw), boto3.client("sns", **user, **kw)
        alarm = dict(Namespace="App", MetricName="m", Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                     ComparisonOperator="GreaterThanThreshold")
        cw.put_metric_alarm(AlarmName="oncall-errors", **alarm)
        assert cw.describe_alarms(AlarmNames=["oncall-errors"])["MetricAlarms"][0]["AlarmName"] == "oncall-errors"
        with pytest.raises(ClientError) as info:
            cw.put_metric_alarm(AlarmName="billing-errors", **alarm)
        assert info.value.response["Error"]["Code"] == "AccessDenied"
        assert "arn:aws:cloudwatch:us-east-1:000000000000:alarm:billing-errors" in info.value.response["Error"]["Message"]
        assert sns.create_topic(Name="oncall-pages")["TopicArn"].endswith(":oncall-pages")
        with pytest.raises(ClientError) as info:
            sns.create_topic(Name="billing")
        assert info.value.response["Error"]["Code"] == "AuthorizationError"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        forged = boto3.client("sns", aws_access_key_id=key, aws_secret_access_key="wrong", **kw)
        with pytest.raises(ClientError) as info:
            forged.list_topics()
        assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
        root = boto3.client("cloudwatch", aws_access_key_id=key, aws_secret_access_key=secret, **kw)
        assert [a["AlarmName"] for a in root.describe_alarms()["MetricAlarms"]] == ["oncall-errors"]
    finally:
        proc.stop()
