"""DynamoDB's CloudWatch metrics and CloudWatch's metric API, through real
``shoal serve`` processes (two workers: the figures of both add up) and boto3
or the AWS CLI.

Each test works in a region of its own (the credential scope names it), so
that the account-level metrics (UserErrors) of one test are not another's."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time

import boto3
import botocore.config
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.shoal_process import ShoalProcess, root_credentials

NO_RETRY = botocore.config.Config(retries={"max_attempts": 1})
UNCHECKED = botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False)
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("SHOAL_TTL_SWEEP_INTERVAL_S", "SHOAL_TTL_MODIFY_INTERVAL_S")}
    os.environ.update(SHOAL_TTL_SWEEP_INTERVAL_S="0.5", SHOAL_TTL_MODIFY_INTERVAL_S="0")
    try:
        proc = ShoalProcess(tmp_path_factory.mktemp("cloudwatch"), "--workers", "2").start()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield proc
    proc.stop()


def clients(server, region, config=NO_RETRY):
    kw = dict(endpoint_url=server.url, region_name=region, aws_access_key_id="any", aws_secret_access_key="any",
              config=config)
    return boto3.client("dynamodb", **kw), boto3.client("cloudwatch", **kw)


def make_table(ddb, name, **extra):
    attrs = [{"AttributeName": "id", "AttributeType": "S"}] + extra.pop("attributes", [])
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=attrs, **({"BillingMode": "PAY_PER_REQUEST"} | extra))


def now():
    return datetime.datetime.now(UTC)


def totals(cw, metric, dims, statistics=("Sum", "SampleCount", "Minimum", "Maximum"), namespace="AWS/DynamoDB",
           extended=None):
    """The statistics of the last half hour, as one datapoint (or None)."""
    kwargs = {"ExtendedStatistics": list(extended)} if extended else {"Statistics": list(statistics)}
    points = cw.get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now() - datetime.timedelta(minutes=30), EndTime=now() + datetime.timedelta(minutes=5),
        Period=3600, **kwargs)["Datapoints"]
    assert len(points) <= 1
    return points[0] if points else None


def eventually(read, check, timeout=5.0):
    """``read()`` until ``check`` holds of it: metrics are visible within 5 seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r}")
        time.sleep(0.2)


def test_consumed_write_units_are_what_dynamodb_reports(server):
    ddb, cw = clients(server, "eu-west-1")
    make_table(ddb, "puts", attributes=[{"AttributeName": "g", "AttributeType": "S"}],
               GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                        "Projection": {"ProjectionType": "ALL"}}])
    # Items of known sizes (name + value bytes): 1 KB write units, rounded up per item.
    items = [{"id": {"S": f"a{i}"}, "v": {"S": "x" * 1500}} for i in range(3)]  # 1,505 bytes: 2 units
    items += [{"id": {"S": f"b{i}"}, "v": {"S": "x" * 100}} for i in range(2)]  # 105 bytes: 1 unit
    items += [{"id": {"S": "c0"}, "v": {"S": "x" * 5000}, "g": {"S": "g1"}}]  # 5,008 bytes: 5 units, and the index's
    items += [{"id": {"S": "a0"}, "v": {"S": "x" * 100}}]  # replaces 1,505 bytes: charged the larger, 2
    reported = {"table": 0.0, "index": 0.0}
    for item in items:
        capacity = ddb.put_item(TableName="puts", Item=item, ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
        reported["table"] += capacity["Table"]["CapacityUnits"]
        reported["index"] += sum(i["CapacityUnits"] for i in capacity.get("GlobalSecondaryIndexes", {}).values())
    for item in items[:2]:  # the same writes without asking for ReturnConsumedCapacity are metered too
        ddb.put_item(TableName="puts", Item=item)
    assert reported == {"table": 15.0, "index": 5.0}
    table = eventually(lambda: totals(cw, "ConsumedWriteCapacityUnits", {"TableName": "puts"}),
                       lambda p: p is not None and p["SampleCount"] == 9)
    assert (table["Sum"], table["Minimum"], table["Maximum"], table["Unit"]) == (15.0 + 4.0, 1.0, 5.0, "Count")
    index = totals(cw, "ConsumedWriteCapacityUnits", {"TableName": "puts", "GlobalSecondaryIndexName": "by_g"})
    assert (index["Sum"], index["SampleCount"]) == (5.0, 1)
    # reads: half a unit per 4 KB eventually consistent, one strongly; an index Query reads the index
    ddb.get_item(TableName="puts", Key={"id": {"S": "c0"}})  # 5,008 bytes: 2 units, halved
    ddb.get_item(TableName="puts", Key={"id": {"S": "zz"}}, ConsistentRead=True)  # nothing there: still 1
    ddb.query(TableName="puts", IndexName="by_g", KeyConditionExpression="g = :g",
              ExpressionAttributeValues={":g": {"S": "g1"}})
    read = eventually(lambda: totals(cw, "ConsumedReadCapacityUnits", {"TableName": "puts"}),
                      lambda p: p is not None and p["SampleCount"] == 2)
    assert read["Sum"] == 2.0
    index_read = totals(cw, "ConsumedReadCapacityUnits", {"TableName": "puts", "GlobalSecondaryIndexName": "by_g"})
    assert index_read["Sum"] == 1.0
    returned = totals(cw, "ReturnedItemCount", {"TableName": "puts", "Operation": "Query"})
    assert (returned["Sum"], returned["SampleCount"]) == (1.0, 1)


def test_latency_counts_every_request_of_every_worker(server):
    regional = [clients(server, "eu-west-2") for _ in range(4)]  # several connections: both workers answer
    ddb, cw = regional[0]
    make_table(ddb, "reads")
    ddb.put_item(TableName="reads", Item={"id": {"S": "k"}, "v": {"N": "1"}})
    for i in range(40):
        regional[i % 4][0].get_item(TableName="reads", Key={"id": {"S": "k"}})
    for _ in range(3):
        ddb.scan(TableName="reads")
    latency = eventually(
        lambda: totals(cw, "SuccessfulRequestLatency", {"TableName": "reads", "Operation": "GetItem"},
                       ("SampleCount", "Average", "Minimum", "Maximum")),
        lambda p: p is not None and p["SampleCount"] == 40)
    assert latency["Unit"] == "Milliseconds"
    assert 0 < latency["Minimum"] <= latency["Average"] <= latency["Maximum"] < 5000
    percentiles = totals(cw, "SuccessfulRequestLatency", {"TableName": "reads", "Operation": "GetItem"},
                         extended=("p50", "p99"))["ExtendedStatistics"]
    assert latency["Minimum"] <= percentiles["p50"] <= percentiles["p99"] <= latency["Maximum"]
    # the scans may be another worker's, flushed apart from the reads above: wait for all three
    scans = eventually(lambda: totals(cw, "ReturnedItemCount", {"TableName": "reads", "Operation": "Scan"}),
                       lambda p: p is not None and p["SampleCount"] == 3)
    assert (scans["Sum"], scans["SampleCount"]) == (3.0, 3)


def test_errors_are_counted_where_dynamodb_counts_them(server):
    ddb, cw = clients(server, "ca-central-1")
    make_table(ddb, "guarded")
    ddb.put_item(TableName="guarded", Item={"id": {"S": "k"}})
    for _ in range(3):
        with pytest.raises(ClientError):
            ddb.put_item(TableName="guarded", Item={"id": {"S": "k"}}, ConditionExpression="attribute_not_exists(id)")
    for _ in range(2):
        with pytest.raises(ClientError):
            ddb.get_item(TableName="missing", Key={"id": {"S": "k"}})
    with pytest.raises(ClientError):
        ddb.query(TableName="guarded", KeyConditionExpression="nope = :v", ExpressionAttributeValues={":v": {"S": "x"}})
    failed = eventually(lambda: totals(cw, "ConditionalCheckFailedRequests", {"TableName": "guarded"}),
                        lambda p: p is not None and p["Sum"] == 3)
    assert failed["SampleCount"] == 3
    user = eventually(lambda: totals(cw, "UserErrors", {}), lambda p: p is not None and p["Sum"] == 3)
    assert user["SampleCount"] == 3  # the conditional failures are not user errors
    assert totals(cw, "SystemErrors", {"TableName": "guarded", "Operation": "PutItem"}) is None
    # a transaction cancelled by its condition is a user error, not a conflict
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "guarded", "Item": {"id": {"S": "k"}},
                                                         "ConditionExpression": "attribute_not_exists(id)"}}])
    eventually(lambda: totals(cw, "UserErrors", {}), lambda p: p is not None and p["Sum"] == 4)
    assert totals(cw, "TransactionConflict", {"TableName": "guarded"}) is None


def test_time_to_live_deletions_are_counted(server):
    ddb, cw = clients(server, "ap-south-1")
    make_table(ddb, "expiring")
    ddb.update_time_to_live(TableName="expiring", TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    past, future = int(time.time()) - 100, int(time.time()) + 86400
    for i in range(4):
        ddb.put_item(TableName="expiring", Item={"id": {"S": f"old{i}"}, "exp": {"N": str(past)}})
    ddb.put_item(TableName="expiring", Item={"id": {"S": "new"}, "exp": {"N": str(future)}})
    ddb.delete_item(TableName="expiring", Key={"id": {"S": "new"}})  # a user's delete is not time to live's
    deleted = eventually(lambda: totals(cw, "TimeToLiveDeletedItemCount", {"TableName": "expiring"}),
                         lambda p: p is not None and p["Sum"] >= 4, timeout=15)
    assert deleted["Sum"] == 4 and deleted["Unit"] == "Count"


def test_put_metric_data_and_get_metric_data(server):
    _, cw = clients(server, "sa-east-1")
    base = now().replace(second=0, microsecond=0) - datetime.timedelta(minutes=10)
    title = [{"Name": "Title", "Value": "c000042"}]
    cw.put_metric_data(Namespace="Viewer/App", MetricData=[
        {"MetricName": "PlayStarts", "Dimensions": title, "Timestamp": base + datetime.timedelta(minutes=m),
         "Value": float(m + 1), "Unit": "Count"} for m in range(3)])
    cw.put_metric_data(Namespace="Viewer/App", MetricData=[
        {"MetricName": "BufferingMs", "Timestamp": base, "Values": [10.0, 20.0, 400.0], "Counts": [90, 9, 1],
         "Unit": "Milliseconds"},
        {"MetricName": "BufferingMs", "Timestamp": base, "StatisticValues": {
            "SampleCount": 2, "Sum": 40, "Minimum": 20, "Maximum": 20}, "Unit": "Milliseconds"}])
    window = dict(StartTime=base - datetime.timedelta(minutes=1), EndTime=base + datetime.timedelta(minutes=5))
    result = cw.get_metric_data(MetricDataQueries=[
        {"Id": "plays", "MetricStat": {"Metric": {"Namespace": "Viewer/App", "MetricName": "PlayStarts",
                                                  "Dimensions": title}, "Period": 60, "Stat": "Sum"}},
        {"Id": "p99", "MetricStat": {"Metric": {"Namespace": "Viewer/App", "MetricName": "BufferingMs"},
                                     "Period": 300, "Stat": "p99"}, "Label": "buffering p99"},
        {"Id": "n", "MetricStat": {"Metric": {"Namespace": "Viewer/App", "MetricName": "BufferingMs"},
                                   "Period": 300, "Stat": "SampleCount"}},
        {"Id": "hidden", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": "Viewer/App",
                                                                        "MetricName": "BufferingMs"},
                                                             "Period": 300, "Stat": "Sum"}}],
        ScanBy="TimestampAscending", **window)["MetricDataResults"]
    by_id = {r["Id"]: r for r in result}
    assert set(by_id) == {"plays", "p99", "n"}
    assert by_id["plays"]["Values"] == [1.0, 2.0, 3.0] and by_id["plays"]["Label"] == "PlayStarts"
    assert [t.astimezone(UTC) for t in by_id["plays"]["Timestamps"]] == [
        base + datetime.timedelta(minutes=m) for m in range(3)]
    assert by_id["p99"]["Label"] == "buffering p99" and 19.6 <= by_id["p99"]["Values"][0] <= 20.4
    assert by_id["n"]["Values"] == [102.0] and by_id["n"]["StatusCode"] == "Complete"
    # pages of MaxDatapoints, newest first by default
    first = cw.get_metric_data(MetricDataQueries=[result and {
        "Id": "plays", "MetricStat": {"Metric": {"Namespace": "Viewer/App", "MetricName": "PlayStarts",
                                                 "Dimensions": title}, "Period": 60, "Stat": "Sum"}}],
        MaxDatapoints=2, **window)
    assert first["MetricDataResults"][0]["Values"] == [3.0, 2.0] and "NextToken" in first
    rest = cw.get_metric_data(MetricDataQueries=[{
        "Id": "plays", "MetricStat": {"Metric": {"Namespace": "Viewer/App", "MetricName": "PlayStarts",
                                                 "Dimensions": title}, "Period": 60, "Stat": "Sum"}}],
        MaxDatapoints=2, NextToken=first["NextToken"], **window)
    assert rest["MetricDataResults"][0]["Values"] == [1.0] and "NextToken" not in rest
    # ListMetrics: by namespace, name and dimension
    listed = cw.list_metrics(Namespace="Viewer/App")["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["BufferingMs", "PlayStarts"]
    assert cw.list_metrics(Namespace="Viewer/App", Dimensions=[{"Name": "Title"}])["Metrics"] == [
        {"Namespace": "Viewer/App", "MetricName": "PlayStarts", "Dimensions": title}]
    assert cw.list_metrics(Dimensions=[{"Name": "Title", "Value": "other"}])["Metrics"] == []
    assert len(cw.list_metrics(Namespace="Viewer/App", RecentlyActive="PT3H")["Metrics"]) == 2
    assert cw.list_metrics(Namespace="Viewer/App", MetricName="Nope")["Metrics"] == []


def test_errors_have_cloudwatchs_codes_and_statuses(server):
    _, cw = clients(server, "us-west-1", UNCHECKED)
    start, end = now() - datetime.timedelta(hours=1), now()

    def error(call, **kwargs):
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        return (info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"],
                info.value.response["Error"]["Message"])

    code, status, message = error(cw.get_metric_statistics, Namespace="AWS/DynamoDB", MetricName="X",
                                  StartTime=start, EndTime=end, Period=60, Statistics=["Median"])
    assert (code, status) == ("InvalidParameterValue", 400) and "[ Minimum, Maximum, Average, SampleCount, Sum ]" in message
    assert error(cw.get_metric_statistics, Namespace="AWS/DynamoDB", MetricName="X", StartTime=start, EndTime=end,
                 Period=60, Statistics=["Sum"], ExtendedStatistics=["p99"])[:2] == ("InvalidParameterCombination", 400)
    assert error(cw.get_metric_statistics, Namespace="AWS/DynamoDB", StartTime=start, EndTime=end, Period=60,
                 Statistics=["Sum"])[:3] == ("MissingParameter", 400, "The parameter MetricName is required.")
    assert error(cw.get_metric_statistics, Namespace="AWS/DynamoDB", MetricName="X", StartTime=start,
                 EndTime=end + datetime.timedelta(days=2), Period=60, Statistics=["Sum"])[:2] == (
        "InvalidParameterCombination", 400)
    assert error(cw.put_metric_data, Namespace="AWS/DynamoDB",
                 MetricData=[{"MetricName": "m", "Value": 1}])[:2] == ("InvalidParameterValue", 400)
    assert error(cw.put_metric_data, Namespace="App", MetricData=[{"MetricName": "m", "Value": float("nan")}])[:2] == (
        "InvalidParameterValue", 400)
    assert error(cw.get_metric_data, StartTime=start, EndTime=end, MetricDataQueries=[
        {"Id": "m1", "Expression": "SUM(METRICS("}])[:2] == ("ValidationError", 400)
    assert error(cw.list_metrics, NextToken="not-a-token")[:2] == ("InvalidNextToken", 400)
    assert error(cw.list_dashboards)[:2] == ("InvalidAction", 400)  # not offered


def aws(server, region, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="any", AWS_SECRET_ACCESS_KEY="any", AWS_DEFAULT_REGION=region)
    env.pop("AWS_PROFILE", None)
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "aws"), "cloudwatch", "--endpoint-url",
                          server.url, "--output", "json", *args], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


def test_the_aws_cli(server):
    region = "ap-northeast-1"
    moment = now().replace(second=0, microsecond=0) - datetime.timedelta(minutes=2)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    aws(server, region, "put-metric-data", "--namespace", "Viewer/Cli", "--metric-name", "Searches",
        "--dimensions", "Country=FR", "--value", "7", "--unit", "Count", "--timestamp", stamp)
    window = ["--start-time", (moment - datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "--end-time", (moment + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")]
    stats = aws(server, region, "get-metric-statistics", "--namespace", "Viewer/Cli", "--metric-name", "Searches",
                "--dimensions", "Name=Country,Value=FR", "--statistics", "Sum", "SampleCount", "--period", "60",
                *window)
    assert [(p["Sum"], p["SampleCount"], p["Unit"]) for p in stats["Datapoints"]] == [(7.0, 1.0, "Count")]
    queries = json.dumps([{"Id": "s", "MetricStat": {"Metric": {"Namespace": "Viewer/Cli", "MetricName": "Searches",
                                                                "Dimensions": [{"Name": "Country", "Value": "FR"}]},
                                                     "Period": 60, "Stat": "Maximum"}}])
    data = aws(server, region, "get-metric-data", "--metric-data-queries", queries, *window)
    assert data["MetricDataResults"][0]["Values"] == [7.0]
    listed = aws(server, region, "list-metrics", "--namespace", "Viewer/Cli")
    assert listed["Metrics"] == [{"Namespace": "Viewer/Cli", "MetricName": "Searches",
                                  "Dimensions": [{"Name": "Country", "Value": "FR"}]}]


def test_metrics_survive_a_restart(tmp_path):
    proc = ShoalProcess(tmp_path / "data", "--workers", "1").start()
    try:
        ddb, cw = clients(proc, "us-east-2")
        make_table(ddb, "kept")
        for i in range(5):
            ddb.put_item(TableName="kept", Item={"id": {"S": f"k{i}"}})
    finally:
        assert proc.stop() == 0  # written at shutdown if the flush had not come yet
    proc = ShoalProcess(tmp_path / "data", "--workers", "1").start()
    try:
        _, cw = clients(proc, "us-east-2")
        latency = totals(cw, "SuccessfulRequestLatency", {"TableName": "kept", "Operation": "PutItem"})
        assert latency["SampleCount"] == 5
        assert totals(cw, "ConsumedWriteCapacityUnits", {"TableName": "kept"})["Sum"] == 5.0
    finally:
        proc.stop()


def test_with_auth_on_cloudwatch_checks_signatures_and_policies(tmp_path):
    data_dir = tmp_path / "secured"
    proc = ShoalProcess(data_dir, "--workers", "1", "--auth", "sigv4").start()
    try:
        key, secret = root_credentials(data_dir)
        kw = dict(endpoint_url=proc.url, region_name="us-east-1", config=NO_RETRY)
        root = boto3.client("cloudwatch", aws_access_key_id=key, aws_secret_access_key=secret, **kw)
        root.put_metric_data(Namespace="App", MetricData=[{"MetricName": "m", "Value": 1.0}])
        assert root.list_metrics(Namespace="App")["Metrics"][0]["MetricName"] == "m"
        forged = boto3.client("cloudwatch", aws_access_key_id=key, aws_secret_access_key="wrong", **kw)
        with pytest.raises(ClientError) as info:
            forged.list_metrics()
        assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        anonymous = boto3.client("cloudwatch", config=NO_RETRY.merge(botocore.config.Config(signature_version=UNSIGNED)),
                                 endpoint_url=proc.url, region_name="us-east-1")
        with pytest.raises(ClientError) as info:
            anonymous.list_metrics()
        assert info.value.response["Error"]["Code"] == "MissingAuthenticationToken"

        def iam(*args):
            out = subprocess.run([sys.executable, "-m", "shoal", "iam", *args, "--data-dir", str(data_dir)],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.strip() else None

        iam("create-user", "--user-name", "grafana")
        access = iam("create-access-key", "--user-name", "grafana")["AccessKey"]
        iam("put-user-policy", "--user-name", "grafana", "--policy-name", "read-metrics", "--policy-document",
            json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["cloudwatch:ListMetrics", "cloudwatch:Get*"], "Resource": "*"},
                {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
                 "Condition": {"StringEquals": {"cloudwatch:namespace": "Grafana"}}}]}))
        user = boto3.client("cloudwatch", aws_access_key_id=access["AccessKeyId"],
                            aws_secret_access_key=access["SecretAccessKey"], **kw)
        assert user.list_metrics(Namespace="App")["Metrics"]
        user.put_metric_data(Namespace="Grafana", MetricData=[{"MetricName": "m", "Value": 1.0}])
        with pytest.raises(ClientError) as info:
            user.put_metric_data(Namespace="App", MetricData=[{"MetricName": "m", "Value": 1.0}])
        assert info.value.response["Error"]["Code"] == "AccessDenied"
        assert "cloudwatch:PutMetricData" in info.value.response["Error"]["Message"]
    finally:
        proc.stop()
