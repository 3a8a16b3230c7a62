"""Auto scaling driven by CloudWatch alarms, through boto3 against a real
server: a step scaling policy run by an alarm whose actions name its ARN
(moved to ALARM with SetAlarmState, as AWS's guide suggests for testing; an
alarm on AWS/DynamoDB with no data stays there), its steps, cooldown and the
repeated invocation while the alarm stays in ALARM; the two alarms a target
tracking policy gets (DescribeAlarms, the policy's Alarms, thresholds
following the capacity, deleted with the policy); the errors."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import make_client, unique_name
from tests.server.test_autoscaling import provisioned_table, wait_for, write_capacity
from tests.shoal_process import ShoalProcess

ENV = {"SHOAL_AUTOSCALING_INTERVAL_S": "0.3", "SHOAL_AUTOSCALING_SCALE_OUT_S": "600",
       "SHOAL_AUTOSCALING_SCALE_IN_S": "600", "SHOAL_AUTOSCALING_ALARM_REPEAT_S": "1"}
WRITES = "dynamodb:table:WriteCapacityUnits"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("autoscaling-alarms"), "--workers", "1", env=ENV).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


def _client(server, service: str):
    return boto3.client(service, endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                        config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture(scope="module")
def scaling(server):
    return _client(server, "application-autoscaling")


@pytest.fixture(scope="module")
def cloudwatch(server):
    return _client(server, "cloudwatch")


def _alarm_on(cloudwatch, table: str, name: str, policy_arn: str, comparison: str = "GreaterThanThreshold"):
    cloudwatch.put_metric_alarm(AlarmName=name, Namespace="AWS/DynamoDB", MetricName="ConsumedWriteCapacityUnits",
                                Dimensions=[{"Name": "TableName", "Value": table}], Statistic="Sum", Period=60,
                                EvaluationPeriods=1, Threshold=240.0, ComparisonOperator=comparison,
                                AlarmActions=[policy_arn])


def _activities(scaling, table: str) -> list:
    return scaling.describe_scaling_activities(ServiceNamespace="dynamodb",
                                               ResourceId=f"table/{table}")["ScalingActivities"]


def test_a_step_policy_runs_when_its_alarm_is_in_alarm_and_its_cooldown_counts_the_last_scale_out(
        ddb, scaling, cloudwatch):
    table = provisioned_table(ddb)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=50, **target)
    policy = scaling.put_scaling_policy(PolicyName="steps", PolicyType="StepScaling", **target,
                                        StepScalingPolicyConfiguration={
                                            "AdjustmentType": "ChangeInCapacity", "Cooldown": 300,
                                            "StepAdjustments": [
                                                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 100,
                                                 "ScalingAdjustment": 5},
                                                {"MetricIntervalLowerBound": 100, "ScalingAdjustment": 12}]})
    assert policy["Alarms"] == []
    alarm = unique_name("writes-high")
    _alarm_on(cloudwatch, table, alarm, policy["PolicyARN"])
    described = scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")
    assert [(p["PolicyType"], p["Alarms"]) for p in described["ScalingPolicies"]] == [
        ("StepScaling", [{"AlarmName": alarm, "AlarmARN": f"arn:aws:cloudwatch:us-east-1:000000000000:alarm:{alarm}"}])]
    assert described["ScalingPolicies"][0]["StepScalingPolicyConfiguration"]["StepAdjustments"][1] == {
        "MetricIntervalLowerBound": 100.0, "ScalingAdjustment": 12}
    time.sleep(1)
    assert write_capacity(ddb, table) == 5  # the alarm has no data: nothing runs
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="testing the policy")
    assert wait_for(lambda: write_capacity(ddb, table) == 10)  # no datapoint: a breach of 0, the first step
    [activity] = _activities(scaling, table)
    assert (activity["Description"], activity["Cause"], activity["StatusCode"]) == (
        "Setting write capacity units to 10.", f"monitor alarm {alarm} in state ALARM triggered policy steps",
        "Successful")
    history = cloudwatch.describe_alarm_history(AlarmName=alarm, HistoryItemType="Action")["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in history] == [f"Successfully executed action {policy['PolicyARN']}"]
    time.sleep(2.5)  # invoked again while in ALARM, but the cooldown holds a same-size scale-out
    assert write_capacity(ddb, table) == 10 and len(_activities(scaling, table)) == 1
    # a larger breach during the cooldown: its step counted from the capacity before the last scale-out
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="reset")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="a big breach",
                               StateReasonData=json.dumps({"version": "1.0", "recentDatapoints": [400.0]}))
    assert wait_for(lambda: write_capacity(ddb, table) == 17)  # 5 + 12, not 10 + 12
    assert [a["Description"] for a in _activities(scaling, table)] == [
        "Setting write capacity units to 17.", "Setting write capacity units to 10."]


def test_an_alarm_that_stays_in_alarm_keeps_invoking_a_policy_without_cooldown_down_to_the_minimum(
        ddb, scaling, cloudwatch):
    table = provisioned_table(ddb, wcu=11)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=50, **target)
    policy = scaling.put_scaling_policy(PolicyName="quiet", PolicyType="StepScaling", **target,
                                        StepScalingPolicyConfiguration={
                                            "AdjustmentType": "PercentChangeInCapacity", "Cooldown": 0,
                                            "MinAdjustmentMagnitude": 3,
                                            "StepAdjustments": [{"MetricIntervalUpperBound": 0,
                                                                 "ScalingAdjustment": -10}]})
    alarm = unique_name("writes-low")
    _alarm_on(cloudwatch, table, alarm, policy["PolicyARN"], "LessThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="quiet")
    # -10% of 11 is -1.1, rounded toward zero to -1, then at least 3: 11 -> 8 -> 5, held at the minimum
    assert wait_for(lambda: write_capacity(ddb, table) == 5)
    time.sleep(1.5)
    assert [a["Description"] for a in _activities(scaling, table)] == [
        "Setting write capacity units to 5.", "Setting write capacity units to 8."]


def test_a_target_tracking_policy_has_its_two_alarms_until_it_is_deleted(ddb, scaling, cloudwatch):
    table = provisioned_table(ddb, wcu=10)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=100, **target)
    policy = scaling.put_scaling_policy(PolicyName="tracking", PolicyType="TargetTrackingScaling", **target,
                                        TargetTrackingScalingPolicyConfiguration={
                                            "TargetValue": 70.0, "PredefinedMetricSpecification": {
                                                "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}})
    names = [a["AlarmName"] for a in policy["Alarms"]]
    assert [n.split("-")[:3] for n in names] == [["TargetTracking", f"table/{table}", "AlarmHigh"],
                                                 ["TargetTracking", f"table/{table}", "AlarmLow"]]
    described = scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")
    assert described["ScalingPolicies"][0]["Alarms"] == policy["Alarms"]
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]}
    high, low = alarms[names[0]], alarms[names[1]]
    assert (high["Namespace"], high["MetricName"], high["Statistic"], high["Period"]) == (
        "AWS/DynamoDB", "ConsumedWriteCapacityUnits", "Sum", 60)
    assert high["Dimensions"] == [{"Name": "TableName", "Value": table}]
    assert (high["EvaluationPeriods"], high["ComparisonOperator"], high["Threshold"]) == (
        2, "GreaterThanThreshold", 420.0)  # 70% of 10 units for 60 s
    assert (low["EvaluationPeriods"], low["ComparisonOperator"], low["Threshold"]) == (
        15, "LessThanThreshold", 300.0)  # 50%: 20 points under the target
    assert high["AlarmActions"] == low["AlarmActions"] == [policy["PolicyARN"]]
    assert high["AlarmArn"] == policy["Alarms"][0]["AlarmARN"]
    ddb.update_table(TableName=table, ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 20})
    assert wait_for(lambda: cloudwatch.describe_alarms(AlarmNames=[names[0]])["MetricAlarms"][0][
        "Threshold"] == 840.0)  # follows the capacity
    scaling.delete_scaling_policy(PolicyName="tracking", **target)
    assert cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"] == []
    # a new policy's alarms go with its target too
    policy = scaling.put_scaling_policy(PolicyName="again", PolicyType="TargetTrackingScaling", **target,
                                        TargetTrackingScalingPolicyConfiguration={
                                            "TargetValue": 50.0, "PredefinedMetricSpecification": {
                                                "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}})
    names = [a["AlarmName"] for a in policy["Alarms"]]
    assert len(cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]) == 2
    scaling.deregister_scalable_target(**target)
    assert cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"] == []


@pytest.mark.parametrize("steps, message", [
    ([], "At least one step adjustment is required"),
    ([{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
      {"MetricIntervalLowerBound": 5, "ScalingAdjustment": 2}], "The step adjustments' intervals must not overlap"),
    ([{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
      {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 2}],
     "The step adjustments' intervals must not leave a gap"),
    ([{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1}],
     "A step adjustment with a null upper bound is required when an upper bound is positive"),
    ([{"ScalingAdjustment": 1}], "The upper and lower bound of a step adjustment cannot both be null"),
])
def test_a_malformed_step_policy_is_refused_and_the_server_serves_on(ddb, scaling, steps, message):
    table = provisioned_table(ddb)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=50, **target)
    with pytest.raises(ClientError) as info:
        scaling.put_scaling_policy(PolicyName="bad", PolicyType="StepScaling", **target,
                                   StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity",
                                                                   "StepAdjustments": steps})
    assert info.value.response["Error"] == {"Code": "ValidationException", "Message": message}
    assert scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")[
        "ScalingPolicies"] == []


def test_alarm_actions_take_scaling_policies_but_not_other_services(ddb, scaling, cloudwatch):
    table = provisioned_table(ddb)
    with pytest.raises(ClientError) as info:
        _alarm_on(cloudwatch, table, unique_name("ec2"), "arn:aws:automate:us-east-1:ec2:stop")
    assert info.value.response["Error"]["Message"] == (
        "Shoal runs only SNS topics and Application Auto Scaling policies as alarm actions, "
        "not arn:aws:automate:us-east-1:ec2:stop")
    # an alarm naming a policy that does not exist records the failed action
    ghost = ("arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:00000000-0000-0000-0000-000000000000:"
             f"resource/dynamodb/table/{table}:policyName/ghost")
    alarm = unique_name("ghost")
    _alarm_on(cloudwatch, table, alarm, ghost)
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="testing")
    history = cloudwatch.describe_alarm_history(AlarmName=alarm, HistoryItemType="Action")["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in history] == [
        f'Failed to execute action {ghost}. Received error: "No scaling policy found for the ARN"']
    assert write_capacity(ddb, table) == 5


def test_a_suspended_scale_out_holds_the_step_policy_until_it_is_resumed(ddb, scaling, cloudwatch):
    table = provisioned_table(ddb)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=50, SuspendedState={
        "DynamicScalingOutSuspended": True}, **target)
    policy = scaling.put_scaling_policy(PolicyName="held", PolicyType="StepScaling", **target,
                                        StepScalingPolicyConfiguration={
                                            "AdjustmentType": "ExactCapacity", "Cooldown": 0,
                                            "StepAdjustments": [{"MetricIntervalLowerBound": 0,
                                                                 "ScalingAdjustment": 25}]})
    alarm = unique_name("held")
    _alarm_on(cloudwatch, table, alarm, policy["PolicyARN"])
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="testing")
    time.sleep(2.5)  # invoked more than once meanwhile (every second while in ALARM)
    assert write_capacity(ddb, table) == 5 and _activities(scaling, table) == []
    scaling.register_scalable_target(SuspendedState={"DynamicScalingOutSuspended": False}, **target)
    assert wait_for(lambda: write_capacity(ddb, table) == 25)
    [activity] = _activities(scaling, table)
    assert activity["Description"] == "Setting write capacity units to 25."


def test_a_suspended_schedule_lets_its_due_time_pass_unused(ddb, scaling):
    table = provisioned_table(ddb)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=50, SuspendedState={
        "ScheduledScalingSuspended": True}, **target)
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
    scaling.put_scheduled_action(ScheduledActionName="peak", Schedule=f"at({when})",
                                 ScalableTargetAction={"MinCapacity": 20}, **target)
    time.sleep(3)
    scaling.register_scalable_target(SuspendedState={"ScheduledScalingSuspended": False}, **target)
    time.sleep(1.5)  # resumed: the action's time has passed, it does not run late
    described = scaling.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=[f"table/{table}"])
    assert [(t["MinCapacity"], t["SuspendedState"]["ScheduledScalingSuspended"])
            for t in described["ScalableTargets"]] == [(5, False)]
    assert write_capacity(ddb, table) == 5 and _activities(scaling, table) == []


def test_dynamodbs_auto_scaling_description_lists_target_tracking_policies_only(ddb, scaling):
    table = provisioned_table(ddb)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=50, **target)
    scaling.put_scaling_policy(PolicyName="steps", PolicyType="StepScaling", **target,
                               StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [
                                   {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]})
    scaling.put_scaling_policy(PolicyName="tracking", PolicyType="TargetTrackingScaling", **target,
                               TargetTrackingScalingPolicyConfiguration={
                                   "TargetValue": 60.0, "PredefinedMetricSpecification": {
                                       "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}})
    [replica] = ddb.describe_table_replica_auto_scaling(TableName=table)["TableAutoScalingDescription"]["Replicas"]
    writes = replica["ReplicaProvisionedWriteCapacityAutoScalingSettings"]
    assert [p["PolicyName"] for p in writes["ScalingPolicies"]] == ["tracking"]
    described = scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")
    assert sorted(p["PolicyName"] for p in described["ScalingPolicies"]) == ["steps", "tracking"]
    assert all(set(p) <= {"PolicyARN", "PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension",
                          "PolicyType", "TargetTrackingScalingPolicyConfiguration", "StepScalingPolicyConfiguration",
                          "Alarms", "CreationTime"} for p in described["ScalingPolicies"])


def test_a_policy_scales_its_own_regions_table_only(server):
    name = unique_name("asr")
    clients = {}
    for region in ("us-east-1", "eu-west-1"):
        ddb = make_client(server.url, region=region)
        clients[region] = (ddb, make_client(server.url, "application-autoscaling", region),
                           make_client(server.url, "cloudwatch", region))
        ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
        clients[region][1].register_scalable_target(ServiceNamespace="dynamodb", ResourceId=f"table/{name}",
                                                    ScalableDimension=WRITES, MinCapacity=5, MaxCapacity=50)
    ddb, scaling, cloudwatch = clients["eu-west-1"]
    policy = scaling.put_scaling_policy(PolicyName="eu", PolicyType="StepScaling", ServiceNamespace="dynamodb",
                                        ResourceId=f"table/{name}", ScalableDimension=WRITES,
                                        StepScalingPolicyConfiguration={
                                            "AdjustmentType": "ExactCapacity", "StepAdjustments": [
                                                {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 9}]})
    assert policy["PolicyARN"].startswith("arn:aws:autoscaling:eu-west-1:")
    _alarm_on(cloudwatch, name, "eu-high", policy["PolicyARN"])
    cloudwatch.set_alarm_state(AlarmName="eu-high", StateValue="ALARM", StateReason="testing")
    assert wait_for(lambda: write_capacity(ddb, name) == 9)
    time.sleep(1)
    assert write_capacity(clients["us-east-1"][0], name) == 5
