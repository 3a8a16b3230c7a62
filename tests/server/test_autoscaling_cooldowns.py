"""Target tracking's ScaleOutCooldown, ScaleInCooldown and DisableScaleIn
(shoal.autoscaling) through boto3 against a real server whose scaler runs in
seconds (test_autoscaling's windows) and whose clock the test moves past a
cooldown of an hour.  Each held change is checked beside a table whose
policy has no cooldown and the same load: when that one has changed, the
held one was judged in the same rounds."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from shoal.autoscaling import LEASE_S
from tests.conftest import make_client
from tests.server.test_autoscaling import clocked_server, provisioned_table, scaling_client, wait_for, write_capacity
from tests.shoal_process import moved_clock

WRITES = "dynamodb:table:WriteCapacityUnits"
HOUR = 3600


@pytest.fixture(scope="module")
def clock(tmp_path_factory):
    return moved_clock(tmp_path_factory)


@pytest.fixture(scope="module")
def server(tmp_path_factory, clock):
    proc = clocked_server(tmp_path_factory, "cooldowns", clock)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


@pytest.fixture(scope="module")
def scaling(server):
    return scaling_client(server.url)


def move(clock, seconds: float) -> None:
    clock.write_text(str(float(clock.read_text()) + seconds))


def tracked(ddb, scaling, wcu: int, low: int, high: int, **config) -> str:
    """A table of ``wcu`` write units, registered within [low, high], with a 50% write policy."""
    table = provisioned_table(ddb, wcu=wcu)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=low, MaxCapacity=high, **target)
    scaling.put_scaling_policy(PolicyName="writes", PolicyType="TargetTrackingScaling", **target,
                               TargetTrackingScalingPolicyConfiguration={
                                   "TargetValue": 50.0, **config, "PredefinedMetricSpecification": {
                                       "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}})
    return table


def set_minimum(scaling, table: str, low: int) -> None:
    scaling.register_scalable_target(ServiceNamespace="dynamodb", ResourceId=f"table/{table}",
                                     ScalableDimension=WRITES, MinCapacity=low)


class Load:
    """About 15 one-unit writes a second to each table, until stopped."""

    def __init__(self, ddb, *tables: str) -> None:
        self.ddb, self.tables, self.stop = ddb, tables, threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            for table in self.tables:
                try:
                    self.ddb.put_item(TableName=table, Item={"pk": {"S": str(n)}})
                except ClientError:
                    pass
            n += 1
            time.sleep(0.065)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def descriptions(scaling, table: str) -> list[str]:
    """The table's scaling activities' descriptions, oldest first."""
    found = scaling.describe_scaling_activities(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")
    return [a["Description"] for a in reversed(found["ScalingActivities"])]


def test_a_scale_in_cooldown_holds_scale_ins_until_it_ends_or_a_scale_out_stops_it(ddb, scaling, clock):
    held = tracked(ddb, scaling, 40, 10, 100, ScaleInCooldown=HOUR)
    free = tracked(ddb, scaling, 40, 10, 100, ScaleInCooldown=0)
    kept = tracked(ddb, scaling, 40, 10, 100, DisableScaleIn=True)
    # idle: the first scale-in is not held (no cooldown yet); DisableScaleIn's policy never scales in
    assert wait_for(lambda: write_capacity(ddb, free) == 10 and write_capacity(ddb, held) == 10)
    assert write_capacity(ddb, kept) == 40
    set_minimum(scaling, held, 5)
    set_minimum(scaling, free, 5)
    assert wait_for(lambda: write_capacity(ddb, free) == 5)
    assert write_capacity(ddb, held) == 10  # within an hour of its scale-in
    assert write_capacity(ddb, kept) == 40
    move(clock, HOUR + 1)
    assert wait_for(lambda: write_capacity(ddb, held) == 5)  # the cooldown has ended
    # a scale-out is made at once during the new scale-in cooldown, and stops it
    with Load(ddb, held):
        raised = wait_for(lambda: write_capacity(ddb, held) > 5 and write_capacity(ddb, held))
    assert wait_for(lambda: write_capacity(ddb, held) == 5)  # no clock moved: the cooldown did not complete
    assert descriptions(scaling, held) == [
        "Setting write capacity units to 10.", "Setting write capacity units to 5.",
        f"Setting write capacity units to {raised}.", "Setting write capacity units to 5."]
    assert descriptions(scaling, kept) == []
    policy = scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{held}")
    config = policy["ScalingPolicies"][0]["TargetTrackingScalingPolicyConfiguration"]
    assert config["ScaleInCooldown"] == HOUR and "ScaleOutCooldown" not in config


def test_a_scale_out_cooldown_holds_a_scale_out_no_larger_than_the_one_that_started_it(ddb, scaling, clock):
    held = tracked(ddb, scaling, 2, 2, 10, ScaleOutCooldown=HOUR)
    free = tracked(ddb, scaling, 2, 2, 10, ScaleOutCooldown=0)
    with Load(ddb, held, free):  # about 15 a second each: 30 wanted at 50%, 10 at most
        assert wait_for(lambda: write_capacity(ddb, held) == 10 and write_capacity(ddb, free) == 10)
        for table in (held, free):  # set back by hand, the load going on
            ddb.update_table(TableName=table, ProvisionedThroughput={"ReadCapacityUnits": 5,
                                                                     "WriteCapacityUnits": 2})
        assert wait_for(lambda: write_capacity(ddb, free) == 10)
        # the same 10 again: the capacity the last scale-out added still counts for an hour
        assert write_capacity(ddb, held) == 2
        move(clock, HOUR + 1)
        assert wait_for(lambda: write_capacity(ddb, held) == 10)
    # the reverse: a scale-out cooldown (a new one, for an hour) does not hold a scale-in
    assert wait_for(lambda: write_capacity(ddb, held) == 2)
    assert descriptions(scaling, held) == ["Setting write capacity units to 10."] * 2 + [
        "Setting write capacity units to 2."]


def test_a_cooldown_outlives_a_restart_of_the_server(server, ddb, scaling, clock):
    held = tracked(ddb, scaling, 40, 10, 100, ScaleInCooldown=HOUR)
    free = tracked(ddb, scaling, 40, 10, 100, ScaleInCooldown=0)
    assert wait_for(lambda: write_capacity(ddb, free) == 10 and write_capacity(ddb, held) == 10)
    server.stop()  # on its port again: the module's clients go on
    server.start()
    # the old process's scaler lease (30 s of the server's clock) lapses; the hour's cooldown does not
    move(clock, LEASE_S + 1)
    set_minimum(scaling, held, 5)
    set_minimum(scaling, free, 5)
    assert wait_for(lambda: write_capacity(ddb, free) == 5)
    assert write_capacity(ddb, held) == 10  # within an hour of its scale-in, before the restart
    move(clock, HOUR)
    assert wait_for(lambda: write_capacity(ddb, held) == 5)
    # the cooldown is the scaler's, not the policy's description
    policy = scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{held}")
    assert set(policy["ScalingPolicies"][0]) == {"PolicyARN", "PolicyName", "ServiceNamespace", "ResourceId",
                                                 "ScalableDimension", "PolicyType", "Alarms", "CreationTime",
                                                 "TargetTrackingScalingPolicyConfiguration"}


def test_cooldowns_are_checked(ddb, scaling):
    table = provisioned_table(ddb)
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension=WRITES)
    scaling.register_scalable_target(MinCapacity=1, MaxCapacity=10, **target)
    for member in ("ScaleOutCooldown", "ScaleInCooldown"):
        with pytest.raises(ClientError) as info:
            scaling.put_scaling_policy(PolicyName="p", PolicyType="TargetTrackingScaling", **target,
                                       TargetTrackingScalingPolicyConfiguration={
                                           "TargetValue": 50.0, member: -1, "PredefinedMetricSpecification": {
                                               "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}})
        assert info.value.response["Error"] == {"Code": "ValidationException",
                                                "Message": f"{member} must be a non-negative integer"}
    assert scaling.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")[
        "ScalingPolicies"] == []  # nothing was made, and the server goes on answering
