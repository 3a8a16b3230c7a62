"""What the server records each minute and how long it keeps it, on a server
whose clock the test moves (SHOAL_TEST_CLOCK_FILE) instead of waiting days."""

from __future__ import annotations

import datetime
import time

import boto3
import pytest

from tests.shoal_process import ShoalProcess, moved_clock

DAY = 86400
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    clock = moved_clock(tmp_path_factory)
    proc = ShoalProcess(tmp_path_factory.mktemp("retention"), "--workers", "1",
                        env={"SHOAL_TEST_CLOCK_FILE": str(clock)}).start()
    kw = dict(endpoint_url=proc.url, region_name="us-east-1", aws_access_key_id="any", aws_secret_access_key="any")
    yield proc, clock, boto3.client("dynamodb", **kw), boto3.client("cloudwatch", **kw)
    proc.stop()


def server_now(clock) -> float:
    return time.time() + float(clock.read_text() or 0)


def at(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, UTC)


def points(cw, clock, namespace, metric, dims, period, around, statistic="Sum"):
    return cw.get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=at(around - 3600), EndTime=at(around + 3600), Period=period, Statistics=[statistic])["Datapoints"]


def eventually(read, check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r}"
        time.sleep(0.2)


def test_table_figures_are_recorded_each_minute(moved):
    server, clock, ddb, cw = moved
    ddb.create_table(TableName="gauged", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                           {"AttributeName": "g", "AttributeType": "S"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 3},
                     GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                              "Projection": {"ProjectionType": "KEYS_ONLY"},
                                              "ProvisionedThroughput": {"ReadCapacityUnits": 2,
                                                                        "WriteCapacityUnits": 1}}])
    for i in range(3):
        ddb.put_item(TableName="gauged", Item={"id": {"S": f"k{i}"}, "g": {"S": "x"}})
    clock.write_text(str(float(clock.read_text()) + 61))  # the next minute: its figures are recorded
    moment = server_now(clock)

    def latest(metric, dims):
        found = points(cw, clock, "AWS/DynamoDB", metric, dims, 60, moment, "Maximum")
        return max(found, key=lambda p: p["Timestamp"])["Maximum"] if found else None

    assert eventually(lambda: latest("ItemCount", {"TableName": "gauged"}), lambda v: v == 3)
    assert latest("TableSizeBytes", {"TableName": "gauged"}) > 0
    assert latest("ProvisionedReadCapacityUnits", {"TableName": "gauged"}) == 5
    assert latest("ProvisionedWriteCapacityUnits", {"TableName": "gauged"}) == 3
    assert latest("ProvisionedReadCapacityUnits", {"TableName": "gauged", "GlobalSecondaryIndexName": "by_g"}) == 2
    assert latest("ProvisionedWriteCapacityUnits", {"TableName": "gauged", "GlobalSecondaryIndexName": "by_g"}) == 1


def test_one_minute_data_for_15_days_five_minutes_for_63_an_hour_for_455(moved):
    server, clock, _, cw = moved
    written = server_now(clock)
    cw.put_metric_data(Namespace="Viewer/Kept", MetricData=[
        {"MetricName": "Plays", "Value": float(v), "Timestamp": at(written - 60 * i)} for i, v in enumerate((1, 2, 3))])
    assert sorted(p["Sum"] for p in points(cw, clock, "Viewer/Kept", "Plays", {}, 60, written)) == [1.0, 2.0, 3.0]
    assert cw.list_metrics(Namespace="Viewer/Kept")["Metrics"]

    def total(period):
        return sum(p["Sum"] for p in points(cw, clock, "Viewer/Kept", "Plays", {}, period, written))

    for days, period, coarser_only in ((16, 300, 60), (64, 3600, 300)):
        clock.write_text(str(float(clock.read_text()) + (days - (server_now(clock) - written) / DAY) * DAY))
        # Data this old is answered at the coarser resolution only, with nothing lost.
        assert eventually(lambda: total(period), lambda v: v == 6.0)
        assert points(cw, clock, "Viewer/Kept", "Plays", {}, coarser_only, written) == []
    assert cw.list_metrics(Namespace="Viewer/Kept")["Metrics"] == []  # no data in the last two weeks
    clock.write_text(str(float(clock.read_text()) + 400 * DAY))  # past 455 days: gone
    eventually(lambda: total(3600), lambda v: v == 0)


def meta_entries(server) -> float:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "shoal_storage_entries":
            return next(s.value for s in family.samples if s.labels["space"] == "meta")
    raise AssertionError("no shoal_storage_entries")


def test_past_hours_are_sealed_into_blocks_and_answer_as_before(moved):
    server, clock, _, cw = moved
    written = server_now(clock)
    first = written - written % 3600 - 2 * 3600  # two whole hours and what the current one has so far
    minutes = int((written - first) // 60)
    for chunk in range(0, minutes, 100):
        cw.put_metric_data(Namespace="Viewer/Sealed", MetricData=[
            {"MetricName": "Latency", "Unit": "Milliseconds", "Timestamp": at(first + 60 * m),
             "Values": [1.5 + m % 7, 20.0 + m % 13, 250.0], "Counts": [3, 2, 1]}
            for m in range(chunk, min(minutes, chunk + 100))])

    def answers():
        out = []
        for start, period in ((first, 60), (first + 1020, 3600), (first, 7200)):
            common = dict(Namespace="Viewer/Sealed", MetricName="Latency", StartTime=at(start), EndTime=at(written),
                          Period=period)
            out.append(cw.get_metric_statistics(
                Statistics=["Sum", "SampleCount", "Minimum", "Maximum", "Average"], **common)["Datapoints"])
            out.append(cw.get_metric_statistics(ExtendedStatistics=["p50", "p99"], **common)["Datapoints"])
        out.append(cw.get_metric_data(StartTime=at(first), EndTime=at(written), MetricDataQueries=[
            {"Id": "p", "MetricStat": {"Metric": {"Namespace": "Viewer/Sealed", "MetricName": "Latency"},
                                       "Period": 300, "Stat": "p90"}}])["MetricDataResults"][0]["Values"])
        return [sorted(points, key=lambda p: p["Timestamp"]) if points and isinstance(points[0], dict) else points
                for points in out]

    before = answers()
    assert len(before[0]) == minutes and before[0][0]["Sum"] == 3 * 1.5 + 2 * 20 + 250
    assert before[1][0]["ExtendedStatistics"]["p99"] == 250.0
    entries = meta_entries(server)
    clock.write_text(str(float(clock.read_text()) + 3 * 3600))  # the three hours end: the roll-up seals them
    # each minute was a key: now the series has a block (two if the hours cross midnight); other
    # series (a table's gauges, written each minute) may add a few keys meanwhile
    # (a bound, not a wait: 10 s ran out in a full run on a loaded machine, the entries not yet fallen)
    eventually(lambda: meta_entries(server), lambda n: n <= entries - minutes // 2, timeout=60)
    assert answers() == before
    with pytest.raises(cw.exceptions.InvalidParameterValueException):
        cw.get_metric_statistics(Namespace="Viewer/Sealed", MetricName="Latency", StartTime=at(first),
                                 EndTime=at(written), Period=90, Statistics=["Sum"])
    assert answers() == before  # still serving


def test_a_data_directory_with_blocks_of_the_earlier_format_is_read_and_rewritten_by_the_roll_up(tmp_path_factory):
    """Blocks of version 2 (exact doubles, 2% buckets at every level) in a data directory a server
    starts on: answered as they were written, then moved by the daily walk as version 3 (latencies to
    the microsecond, coarse buckets)."""
    from shoal.metrics.stats import Stats
    from shoal.metrics.store import Writer, block_key
    from shoal.storage.datadir import open_data_dir
    from tests.unit.test_metrics_blocks import LATENCY, T0, V2_BLOCK, v2_latency_rows

    data_dir = tmp_path_factory.mktemp("v2-blocks")
    ShoalProcess(data_dir, "--workers", "1").start().stop()  # a data directory as a server makes it
    engine = open_data_dir(str(data_dir), create=False)
    try:
        with engine.write() as txn:
            writer = Writer(txn)
            series_id = writer.info(LATENCY, "Milliseconds", (T0 + 600) // 60).series_id
            writer.finish()
            txn.put("meta", block_key(series_id, 0, T0), V2_BLOCK)
    finally:
        engine.close()
    clock = moved_clock(tmp_path_factory)
    clock.write_text(str(T0 + 3 * 3600 - time.time()))
    proc = ShoalProcess(data_dir, "--workers", "1", env={"SHOAL_TEST_CLOCK_FILE": str(clock)}).start()
    try:
        cw = boto3.client("cloudwatch", endpoint_url=proc.url, region_name="us-east-1", aws_access_key_id="any",
                          aws_secret_access_key="any")

        def read(period, **statistics):
            dims = [{"Name": k, "Value": v} for k, v in LATENCY[3]]
            return sorted(cw.get_metric_statistics(
                Namespace=LATENCY[1], MetricName=LATENCY[2], Dimensions=dims, StartTime=at(T0),
                EndTime=at(T0 + 3600), Period=period, **statistics)["Datapoints"], key=lambda p: p["Timestamp"])

        rows = v2_latency_rows()
        minutes = read(60, Statistics=["SampleCount", "Sum", "Minimum", "Maximum"])
        assert [(p["SampleCount"], p["Sum"], p["Minimum"], p["Maximum"]) for p in minutes] == [
            (s.count, s.sum, s.min, s.max) for _, s in rows]
        assert [p["ExtendedStatistics"]["p90"] for p in read(60, ExtendedStatistics=["p90"])] == [
            s.percentile(90) for _, s in rows]
        clock.write_text(str(T0 + 16 * DAY + 3600 - time.time()))  # the day of minutes is past 15 days
        whole = Stats()
        for _, stats in rows:
            whole.merge(stats)

        def moved():
            found = read(300, Statistics=["SampleCount", "Minimum", "Maximum", "Sum"])
            return found if found and found[0]["Minimum"] == round(whole.min * 1000) / 1000 else None

        five = eventually(moved, lambda found: found is not None, timeout=20)
        assert sum(p["SampleCount"] for p in five) == whole.count
        assert max(p["Maximum"] for p in five) == round(whole.max * 1000) / 1000
        assert sum(p["Sum"] for p in five) == pytest.approx(whole.sum, abs=len(five) * 0.0005)
        with pytest.raises(cw.exceptions.InvalidParameterValueException):  # minutes this old are not kept
            read(90, Statistics=["Sum"])
        assert read(300, Statistics=["SampleCount"])  # still serving
    finally:
        proc.stop()
