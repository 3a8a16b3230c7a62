"""Cron schedules of scheduled actions (shoal.autoscaling.cron) through
boto3 against a real server whose clock the test moves
(SHOAL_TEST_CLOCK_FILE): an action in Asia/Tokyo's wall time fires at its
minute and again a week later, an EndTime stops it, StartTime delays it,
DescribeScheduledActions shows what was set, and bad schedules and time
zones are refused while the server goes on serving."""

from __future__ import annotations

import datetime
import time
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_client
from tests.server.test_autoscaling import clocked_server, provisioned_table, scaling_client, wait_for, write_capacity
from tests.shoal_process import moved_clock

TOKYO = ZoneInfo("Asia/Tokyo")
CAUSE = "scheduled action name {} was triggered"


@pytest.fixture(scope="module")
def clock(tmp_path_factory):
    return moved_clock(tmp_path_factory)


@pytest.fixture(scope="module")
def server(tmp_path_factory, clock):
    proc = clocked_server(tmp_path_factory, "cron", clock)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


@pytest.fixture(scope="module")
def scaling(server):
    return scaling_client(server.url)


def set_server_time(clock, when: float) -> None:
    """Move the server's clock so that it reads ``when`` now."""
    clock.write_text(repr(when - time.time()))


def next_monday_9_tokyo() -> float:
    now = datetime.datetime.now(TOKYO) + datetime.timedelta(days=1)
    day = now.date() + datetime.timedelta(days=(7 - now.weekday()) % 7)
    return datetime.datetime(day.year, day.month, day.day, 9, 0, tzinfo=TOKYO).timestamp()


def triggered(scaling, table: str, name: str) -> int:
    activities = scaling.describe_scaling_activities(ServiceNamespace="dynamodb",
                                                     ResourceId=f"table/{table}")["ScalingActivities"]
    return sum(a["Cause"] == CAUSE.format(name) for a in activities)


def target_of(table: str) -> dict:
    return dict(ServiceNamespace="dynamodb", ResourceId=f"table/{table}",
                ScalableDimension="dynamodb:table:WriteCapacityUnits")


def test_a_cron_action_fires_at_its_minute_in_its_time_zone_and_recurs(ddb, scaling, clock):
    table = provisioned_table(ddb)
    target = target_of(table)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=10, **target)
    monday = next_monday_9_tokyo()  # 00:00 UTC on Monday
    set_server_time(clock, monday - 120)
    scaling.put_scheduled_action(ScheduledActionName="tokyo-morning", Schedule="cron(0 9 ? * MON *)",
                                 Timezone="Asia/Tokyo", ScalableTargetAction={"MinCapacity": 30, "MaxCapacity": 60},
                                 **target)
    [action] = scaling.describe_scheduled_actions(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")[
        "ScheduledActions"]
    assert (action["Schedule"], action["Timezone"], action["ScalableTargetAction"]) == (
        "cron(0 9 ? * MON *)", "Asia/Tokyo", {"MinCapacity": 30, "MaxCapacity": 60})
    assert "StartTime" not in action and "EndTime" not in action
    time.sleep(2)  # four scaler rounds: two minutes early, nothing happens
    assert triggered(scaling, table, "tokyo-morning") == 0 and write_capacity(ddb, table) == 5
    set_server_time(clock, monday + 1)
    assert wait_for(lambda: write_capacity(ddb, table) == 30)
    assert triggered(scaling, table, "tokyo-morning") == 1
    time.sleep(2)  # the same minute does not fire twice
    assert triggered(scaling, table, "tokyo-morning") == 1
    set_server_time(clock, monday + 3 * 86400)  # Thursday: no fire
    time.sleep(2)
    assert triggered(scaling, table, "tokyo-morning") == 1
    set_server_time(clock, monday + 7 * 86400 + 5)  # the next Monday
    assert wait_for(lambda: triggered(scaling, table, "tokyo-morning") == 2)


def test_start_and_end_times_bound_a_cron_action(ddb, scaling, clock):
    table = provisioned_table(ddb)
    target = target_of(table)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=10, **target)
    base = next_monday_9_tokyo() + 30 * 86400  # a time past the other test's
    base -= base % 3600
    set_server_time(clock, base - 600)
    start, end = datetime.datetime.fromtimestamp(base + 1800, datetime.timezone.utc), \
        datetime.datetime.fromtimestamp(base + 3 * 3600 - 60, datetime.timezone.utc)
    # every hour on the hour (UTC: no Timezone), from half past the first hour until just before the third
    scaling.put_scheduled_action(ScheduledActionName="hourly", Schedule="cron(0 * * * ? *)", StartTime=start,
                                 EndTime=end, ScalableTargetAction={"MinCapacity": 20}, **target)
    [action] = scaling.describe_scheduled_actions(ServiceNamespace="dynamodb", ResourceId=f"table/{table}",
                                                  ScheduledActionNames=["hourly"])["ScheduledActions"]
    assert (action["StartTime"], action["EndTime"], action["Timezone"]) == (start, end, "UTC")
    set_server_time(clock, base + 5)  # on the hour, before StartTime
    time.sleep(2)
    assert triggered(scaling, table, "hourly") == 0
    set_server_time(clock, base + 3600 + 5)  # the first hour after StartTime
    assert wait_for(lambda: triggered(scaling, table, "hourly") == 1)
    assert wait_for(lambda: write_capacity(ddb, table) == 20)
    set_server_time(clock, base + 2 * 3600 + 5)
    assert wait_for(lambda: triggered(scaling, table, "hourly") == 2)
    set_server_time(clock, base + 3 * 3600 + 5)  # past EndTime
    time.sleep(2)
    assert triggered(scaling, table, "hourly") == 2


def test_bad_schedules_and_time_zones_are_refused(ddb, scaling):
    table = provisioned_table(ddb)
    target = target_of(table)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=10, **target)

    def refusal(**kwargs) -> tuple[str, str]:
        with pytest.raises(ClientError) as info:
            scaling.put_scheduled_action(ScheduledActionName="bad", ScalableTargetAction={"MinCapacity": 6},
                                         **target, **kwargs)
        return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]

    assert refusal(Schedule="cron(0 18 * * *)") == (
        "ValidationException", "A cron expression has 6 fields (Minutes Hours Day-of-month Month Day-of-week Year), "
        "not 5")
    assert refusal(Schedule="cron(0 18 1 * MON *)") == (
        "ValidationException", "One of the Day-of-month and Day-of-week fields of a cron expression must be ?, "
        "and only one")
    assert refusal(Schedule="cron(0 25 * * ? *)") == (
        "ValidationException", "Invalid value '25' in the Hours field of the cron expression")
    assert refusal(Schedule="cron(0 9 * * ? *)", Timezone="Mars/Olympus") == (
        "ValidationException", "Time zone 'Mars/Olympus' is not a valid IANA time zone name")
    assert refusal(Schedule="cron(0 9 * * ? *)", StartTime=datetime.datetime(2030, 1, 2),
                   EndTime=datetime.datetime(2030, 1, 1)) == ("ValidationException", "EndTime must be after StartTime")
    assert refusal(Schedule="weekly")[0] == "ValidationException"
    assert scaling.describe_scheduled_actions(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")[
        "ScheduledActions"] == []
    assert ddb.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"


def test_an_at_schedule_is_read_in_its_time_zone(ddb, scaling, clock):
    table = provisioned_table(ddb)
    target = target_of(table)
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=10, **target)
    due = next_monday_9_tokyo() + 60 * 86400  # 09:00 in Tokyo is 00:00 UTC
    wall = datetime.datetime.fromtimestamp(due, TOKYO).strftime("%Y-%m-%dT%H:%M:%S")
    set_server_time(clock, due - 9 * 3600)  # nine hours early
    scaling.put_scheduled_action(ScheduledActionName="once", Schedule=f"at({wall})", Timezone="Asia/Tokyo",
                                 ScalableTargetAction={"MinCapacity": 7}, **target)
    time.sleep(2)
    assert triggered(scaling, table, "once") == 0
    set_server_time(clock, due + 1)  # read as UTC, the time would be nine hours away still
    assert wait_for(lambda: triggered(scaling, table, "once") == 1)
    assert wait_for(lambda: write_capacity(ddb, table) == 7)
