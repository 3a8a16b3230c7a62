"""Application Auto Scaling (shoal.autoscaling) through boto3's
``application-autoscaling`` client against a real server whose scaler runs
in seconds instead of minutes (SHOAL_AUTOSCALING_*): a rising write load
raises a table's capacity, a quiet one lowers it, each change recorded as a
scaling activity; a scale-in waits for DynamoDB's daily budget for
decreases (with the server's clock moved an hour); the API's errors."""

from __future__ import annotations

import datetime
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import make_client, unique_name
from tests.shoal_process import ShoalProcess, moved_clock

WINDOWS = {"SHOAL_AUTOSCALING_INTERVAL_S": "0.5", "SHOAL_AUTOSCALING_SCALE_OUT_S": "3",
           "SHOAL_AUTOSCALING_SCALE_IN_S": "5"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("autoscaling"), "--workers", "1", env=WINDOWS).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


def scaling_client(url: str):
    """An Application Auto Scaling client of the server at ``url``, without retries."""
    return boto3.client("application-autoscaling", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                        config=Config(retries={"total_max_attempts": 1}))


def clocked_server(tmp_path_factory, name: str, clock) -> ShoalProcess:
    """A started one-worker server with this file's windows, its clock moved by the file ``clock``."""
    return ShoalProcess(tmp_path_factory.mktemp(name), "--workers", "1",
                        env={**WINDOWS, "SHOAL_TEST_CLOCK_FILE": str(clock)}).start()


@pytest.fixture(scope="module")
def scaling(server):
    return scaling_client(server.url)


def provisioned_table(ddb, wcu: int = 5) -> str:
    name = unique_name("as")
    ddb.create_table(TableName=name, BillingMode="PROVISIONED",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": wcu})
    return name


def write_capacity(ddb, table: str) -> int:
    return ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"]


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_write_load_scales_a_table_out_and_quiet_scales_it_back_in(ddb, scaling):
    table = provisioned_table(ddb)
    resource, dimension = f"table/{table}", "dynamodb:table:WriteCapacityUnits"
    arn = scaling.register_scalable_target(ServiceNamespace="dynamodb", ResourceId=resource,
                                           ScalableDimension=dimension, MinCapacity=5, MaxCapacity=100)
    assert arn["ScalableTargetARN"].startswith("arn:aws:application-autoscaling:us-east-1:")
    policy = scaling.put_scaling_policy(
        PolicyName="writes", ServiceNamespace="dynamodb", ResourceId=resource, ScalableDimension=dimension,
        PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0, "PredefinedMetricSpecification": {
                "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}})
    assert ":scalingPolicy:" in policy["PolicyARN"] and len(policy["Alarms"]) == 2
    stop = threading.Event()

    def load() -> None:  # about 20 one-unit writes a second: four times the 5 provisioned
        n = 0
        while not stop.is_set():
            try:
                ddb.put_item(TableName=table, Item={"pk": {"S": str(n)}})
            except ClientError:
                pass
            n += 1
            time.sleep(0.05)

    writer = threading.Thread(target=load)
    writer.start()
    try:
        raised = wait_for(lambda: write_capacity(ddb, table) > 5 and write_capacity(ddb, table))
    finally:
        stop.set()
        writer.join()
    assert 20 <= raised <= 100, raised  # about consumption / 50%: some 40 for 20 a second
    lowered = wait_for(lambda: write_capacity(ddb, table) == 5, timeout=40)
    assert lowered
    activities = scaling.describe_scaling_activities(ServiceNamespace="dynamodb", ResourceId=resource)
    described = [(a["Description"], a["StatusCode"]) for a in activities["ScalingActivities"]]
    assert described[0] == ("Setting write capacity units to 5.", "Successful")  # newest first
    assert (f"Setting write capacity units to {raised}.", "Successful") in described
    targets = scaling.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=[resource])
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets["ScalableTargets"]] == [(5, 100)]
    scaling.deregister_scalable_target(ServiceNamespace="dynamodb", ResourceId=resource,
                                       ScalableDimension=dimension)
    assert scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=resource)[
        "ScalingPolicies"] == []


def test_a_capacity_outside_the_registered_range_is_brought_into_it(ddb, scaling):
    table = provisioned_table(ddb, wcu=2)
    scaling.register_scalable_target(ServiceNamespace="dynamodb", ResourceId=f"table/{table}",
                                     ScalableDimension="dynamodb:table:WriteCapacityUnits",
                                     MinCapacity=10, MaxCapacity=20)
    assert wait_for(lambda: write_capacity(ddb, table) == 10)


def test_a_scheduled_action_changes_the_range_when_due(ddb, scaling):
    table = provisioned_table(ddb)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}",
                  ScalableDimension="dynamodb:table:WriteCapacityUnits")
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=10, **target)
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 2))
    scaling.put_scheduled_action(ScheduledActionName="evening-peak", Schedule=f"at({when})",
                                 ScalableTargetAction={"MinCapacity": 30, "MaxCapacity": 60}, **target)
    listed = scaling.describe_scheduled_actions(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")
    assert [(a["ScheduledActionName"], a["Schedule"], a["ScalableTargetAction"])
            for a in listed["ScheduledActions"]] == [("evening-peak", f"at({when})",
                                                      {"MinCapacity": 30, "MaxCapacity": 60})]
    assert write_capacity(ddb, table) == 5  # not yet due
    assert wait_for(lambda: write_capacity(ddb, table) == 30)  # due: the range moved, then the capacity
    ranges = scaling.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=[f"table/{table}"])
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in ranges["ScalableTargets"]] == [(30, 60)]
    causes = [a["Cause"] for a in scaling.describe_scaling_activities(
        ServiceNamespace="dynamodb", ResourceId=f"table/{table}")["ScalingActivities"]]
    assert "scheduled action name evening-peak was triggered" in causes
    scaling.delete_scheduled_action(ScheduledActionName="evening-peak", **target)
    with pytest.raises(ClientError) as gone:
        scaling.delete_scheduled_action(ScheduledActionName="evening-peak", **target)
    assert gone.value.response["Error"]["Code"] == "ObjectNotFoundException"
    with pytest.raises(ClientError) as cron:  # Unix cron's five fields (six are taken: test_autoscaling_cron)
        scaling.put_scheduled_action(ScheduledActionName="c", Schedule="cron(0 18 * * *)",
                                     ScalableTargetAction={"MinCapacity": 1}, **target)
    assert cron.value.response["Error"]["Code"] == "ValidationException"


def test_the_apis_errors(ddb, scaling):
    table = provisioned_table(ddb)

    def error(call) -> tuple[str, str, int]:
        with pytest.raises(ClientError) as info:
            call()
        response = info.value.response
        return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]

    code, message, status = error(lambda: scaling.register_scalable_target(
        ServiceNamespace="ecs", ResourceId=f"table/{table}", ScalableDimension="dynamodb:table:ReadCapacityUnits",
        MinCapacity=1, MaxCapacity=2))
    assert (code, status) == ("ValidationException", 400) and "ecs" in message
    assert error(lambda: scaling.register_scalable_target(
        ServiceNamespace="dynamodb", ResourceId="table/no_such_table",
        ScalableDimension="dynamodb:table:ReadCapacityUnits", MinCapacity=1, MaxCapacity=2))[:2] == (
        "ValidationException", "DynamoDB table no_such_table does not exist")
    assert error(lambda: scaling.register_scalable_target(
        ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension="dynamodb:index:ReadCapacityUnits",
        MinCapacity=1, MaxCapacity=2))[0] == "ValidationException"
    assert error(lambda: scaling.register_scalable_target(
        ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension="dynamodb:table:ReadCapacityUnits",
        MinCapacity=5, MaxCapacity=2))[:2] == ("ValidationException",
                                               "Minimum capacity cannot be greater than maximum capacity")
    assert error(lambda: scaling.put_scaling_policy(
        PolicyName="p", ServiceNamespace="dynamodb", ResourceId=f"table/{table}",
        ScalableDimension="dynamodb:table:ReadCapacityUnits", PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={"TargetValue": 70.0, "PredefinedMetricSpecification": {
            "PredefinedMetricType": "DynamoDBReadCapacityUtilization"}}))[0] == "ObjectNotFoundException"
    assert error(lambda: scaling.delete_scaling_policy(
        PolicyName="p", ServiceNamespace="dynamodb", ResourceId=f"table/{table}",
        ScalableDimension="dynamodb:table:ReadCapacityUnits"))[0] == "ObjectNotFoundException"
    # the server goes on serving both APIs
    assert scaling.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=[f"table/{table}"])[
        "ScalableTargets"] == []
    assert write_capacity(ddb, table) == 5


def spoken(epoch: float) -> str:
    """A time as DynamoDB's LimitExceededException writes it."""
    t = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    return f"{t:%A, %B} {t.day}, {t.year} at {t.hour % 12 or 12}:{t:%M:%S %p} Coordinated Universal Time"


def test_a_scale_in_waits_for_the_days_decrease_budget(tmp_path_factory):
    clock = moved_clock(tmp_path_factory)
    now = time.time()
    clock.write_text(str((now // 86400) * 86400 + 12 * 3600 - now))  # noon UTC: no midnight in between
    proc = ShoalProcess(tmp_path_factory.mktemp("budget"), "--workers", "1",
                        env={**WINDOWS, "SHOAL_TEST_CLOCK_FILE": str(clock)}).start()
    try:
        ddb = make_client(proc.url)
        scaling = boto3.client("application-autoscaling", endpoint_url=proc.url, region_name="us-east-1",
                               aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                               config=Config(retries={"total_max_attempts": 1}))
        table = provisioned_table(ddb, wcu=50)
        for wcu in (40, 30, 20, 10):  # the day's four free decreases, spent by hand
            ddb.update_table(TableName=table, ProvisionedThroughput={"ReadCapacityUnits": 5,
                                                                     "WriteCapacityUnits": wcu})
        spent = ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]
        assert (spent["NumberOfDecreasesToday"], spent["WriteCapacityUnits"]) == (4, 10)
        last = spent["LastDecreaseDateTime"].timestamp()
        resource, dimension = f"table/{table}", "dynamodb:table:WriteCapacityUnits"
        scaling.register_scalable_target(ServiceNamespace="dynamodb", ResourceId=resource,
                                         ScalableDimension=dimension, MinCapacity=1, MaxCapacity=100)
        scaling.put_scaling_policy(
            PolicyName="writes", ServiceNamespace="dynamodb", ResourceId=resource, ScalableDimension=dimension,
            PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 50.0, "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}})

        def activities() -> list:
            return scaling.describe_scaling_activities(ServiceNamespace="dynamodb",
                                                       ResourceId=resource)["ScalingActivities"]

        failed = wait_for(activities)  # idle past the scale-in window: a scale-in to 1, refused
        assert [(a["Description"], a["StatusCode"]) for a in failed] == [
            ("Setting write capacity units to 1.", "Failed")]
        assert failed[0]["StatusMessage"] == (
            "Failed to set write capacity units to 1. Reason: Failed updating table: Subscriber limit exceeded: "
            "Provisioned throughput decreases are limited within a given UTC day. After the first 4 decreases, "
            "each subsequent decrease in the same UTC day can be performed at most once every 3600 seconds. "
            f"Number of decreases today: 4. Last decrease at {spoken(last)}. "
            f"Next decrease can be made at {spoken(last + 3600)}")
        time.sleep(3)  # several more rounds: the refusal is not retried before the budget allows
        assert len(activities()) == 1 and write_capacity(ddb, table) == 10
        clock.write_text(str(float(clock.read_text()) + 3600))  # an hour after the last decrease
        assert wait_for(lambda: write_capacity(ddb, table) == 1)
        assert [(a["Description"], a["StatusCode"]) for a in activities()][0] == (
            "Setting write capacity units to 1.", "Successful")
        after = ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]
        assert after["NumberOfDecreasesToday"] == 5
    finally:
        proc.stop()
