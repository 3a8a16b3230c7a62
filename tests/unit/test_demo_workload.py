"""The demo's pure parts: the viewer-events generator (shared with the benchmark),
the data set ``shoal demo`` loads, and the text it prints (no server here)."""

from __future__ import annotations

import collections
import hashlib
import io
from decimal import Decimal

import orjson
import pytest

from shoal.demo import loader, patterns
from shoal.demo.workload import (
    COUNTER_SHARDS, COUNTERS_TABLE, COUNTRIES, EVENT_TYPES, EVENT_WEIGHTS, EVENTS_TABLE, GENRES, HOUR_WEIGHTS,
    PROGRESS_TABLE, TITLE_EXPONENT, TITLES, TTL_S, DemoData, EventGenerator, hour_of, table_definitions,
    title_length_s, user_counts,
)
from shoal.model.size import item_size
from shoal.model.values import validate_item

END_MS = 1_796_000_000_000  # 2026-11-30T00:53:20Z


@pytest.fixture(scope="module")
def data():
    """A 60,000-event data set and its items by table."""
    dataset = DemoData(60_000, seed=5, end_ms=END_MS)
    by_table = collections.defaultdict(list)
    for table, item in dataset.items():
        by_table[table].append(item)
    return dataset, by_table


# ---------------------------------------------------------------- the generator the benchmark uses


@pytest.mark.parametrize("seed, digest", [
    (1, "efdf7cf40404248982146f429d0cb5d71867a04133265f621375bbe498573b8a"),
    (7, "37fe5f2884226bc82c7b8f0b8da20d820731ae561e0c6398da35135fd2a10857"),
])
def test_event_generator_draws_the_benchmarks_sequence(seed, digest):
    # The digests are of the events bench/workload.py generated before the
    # generator moved to shoal/demo: the benchmark's preloaded data must not
    # change with edits here (a new CPython whose random module draws
    # differently would change it too).
    generator = EventGenerator(seed)
    h = hashlib.sha256()
    for n in range(3000):
        h.update(orjson.dumps(generator.event(f"u{n % 37:08d}", 1_735_689_600_000 + n * 1000)))
    h.update(generator.content_id().encode())
    assert h.hexdigest() == digest


def test_user_counts_sum_fall_with_rank_and_top_percent_make_a_fifth():
    counts = user_counts(300_000)
    assert sum(counts) == 300_000 and counts == sorted(counts, reverse=True)
    assert len(counts) == 10_000
    assert 0.19 < sum(counts[:100]) / 300_000 < 0.21
    assert user_counts(10) == [10] and user_counts(0) == []


# ---------------------------------------------------------------- the demo's data set


def test_data_set_has_the_events_asked_for_and_is_reproducible(data):
    dataset, by_table = data
    assert len(by_table[EVENTS_TABLE]) == 60_000
    again = DemoData(2_000, seed=9, end_ms=END_MS)
    assert list(again.items()) == list(DemoData(2_000, seed=9, end_ms=END_MS).items())
    assert list(again.items()) != list(DemoData(2_000, seed=10, end_ms=END_MS).items())


def test_event_types_follow_the_mix(data):
    events = data[1][EVENTS_TABLE]
    kinds = collections.Counter(e["event_type"]["S"] for e in events)
    total = sum(EVENT_WEIGHTS)
    for kind, weight in zip(EVENT_TYPES, EVENT_WEIGHTS):
        assert abs(kinds[kind] / len(events) - weight / total) < 0.01, kind


def test_attributes_are_present_only_where_they_apply(data):
    for item in data[1][EVENTS_TABLE]:
        kind = item["event_type"]["S"]
        assert ("bitrate_kbps" in item) == (kind in ("play", "heartbeat"))
        assert ("rating" in item) == (kind == "rating")
        assert ("query" in item) == (kind == "search")
        if "rating" in item:
            assert 1 <= int(item["rating"]["N"]) <= 5
        if "tags" in item:
            assert 1 <= len(item["tags"]["SS"]) <= 5 and set(item["tags"]["SS"]) <= set(GENRES)
        assert item["country"]["S"] in COUNTRIES
        assert set(item["device"]["M"]) == {"type", "os", "app_version"}
        ms = int(Decimal(item["ts"]["N"]))
        assert int(item["expires_at"]["N"]) == ms // 1000 + TTL_S
        assert 0 <= Decimal(item["position_s"]["N"]) < title_length_s(item["content_id"]["S"])


def test_events_lie_in_the_span_and_keys_are_unique(data):
    dataset, by_table = data
    keys = [(e["user_id"]["S"], Decimal(e["ts"]["N"])) for e in by_table[EVENTS_TABLE]]
    assert len(set(keys)) == len(keys)
    assert all(dataset.start_ms <= ts <= END_MS for _, ts in keys)


def test_colliding_times_of_a_user_get_a_three_digit_suffix():
    used = {1000}
    assert DemoData._suffixed(1000, used) == "1000.001"
    assert DemoData._suffixed(1000, used) == "1000.002"


def test_the_most_active_percent_of_users_produce_a_fifth_of_events(data):
    events = data[1][EVENTS_TABLE]
    users = collections.Counter(e["user_id"]["S"] for e in events)
    assert len(users) == 2_000
    assert users.most_common(1)[0][0] == "u00000001"
    top = sum(n for _, n in users.most_common(20))
    assert 0.19 < top / len(events) < 0.21


def test_titles_follow_zipf_by_session(data):
    events = data[1][EVENTS_TABLE]
    sessions = {e["session_id"]["S"]: e["content_id"]["S"] for e in events}
    titles = collections.Counter(sessions.values())
    share = 1 / sum(r ** -TITLE_EXPONENT for r in range(1, TITLES + 1))  # the top title's
    assert abs(titles["c000001"] / len(sessions) - share) < 0.03
    assert titles["c000001"] > titles["c000010"] > 0


def test_sessions_are_one_users_consecutive_viewing(data):
    events = data[1][EVENTS_TABLE]
    by_session = collections.defaultdict(list)
    for e in events:
        by_session[e["session_id"]["S"]].append(e)
    for session in by_session.values():
        assert len(session) <= 200
        assert len({(e["user_id"]["S"], e["content_id"]["S"], e["country"]["S"]) for e in session}) == 1
        times = [int(Decimal(e["ts"]["N"])) for e in session]
        assert all(10_000 <= b - a <= 60_000 for a, b in zip(times, times[1:]))
    long_enough = sum(len(s) >= 5 for s in by_session.values())
    assert long_enough / len(by_session) > 0.9  # only the last session of a user may be cut short


def test_evening_peak_is_about_three_times_the_night(data):
    events = data[1][EVENTS_TABLE]
    hours = collections.Counter(int(Decimal(e["ts"]["N"])) // 3_600_000 % 24 for e in events)
    peak, trough = HOUR_WEIGHTS.index(max(HOUR_WEIGHTS)), HOUR_WEIGHTS.index(min(HOUR_WEIGHTS))
    assert 2 < hours[peak] / hours[trough] < 5


def test_continue_watching_holds_each_users_latest_position_per_title(data):
    events, progress = data[1][EVENTS_TABLE], data[1][PROGRESS_TABLE]
    latest = {}
    for e in events:
        key = (e["user_id"]["S"], e["content_id"]["S"])
        ms = int(Decimal(e["ts"]["N"]))
        if key not in latest or latest[key][0] < ms:
            latest[key] = (ms, e["position_s"]["N"])
    assert {(p["user_id"]["S"], p["content_id"]["S"]): (int(p["updated_at"]["N"]), p["position_s"]["N"])
            for p in progress} == latest


def test_counters_count_the_last_days_plays_by_title_hour_and_shard(data):
    events, counters = data[1][EVENTS_TABLE], data[1][COUNTERS_TABLE]
    since = END_MS - 24 * 3_600_000
    plays = collections.Counter()
    for e in events:
        ms = int(Decimal(e["ts"]["N"]))
        if e["event_type"]["S"] == "play" and ms >= since:
            plays[(e["content_id"]["S"], hour_of(ms))] += 1
    summed = collections.Counter()
    for c in counters:
        title, hour, shard = c["counter_id"]["S"].split("#")
        assert 0 <= int(shard) < COUNTER_SHARDS
        summed[(title, hour)] += int(c["plays"]["N"])
    assert summed == plays and plays


def test_items_pass_shoals_item_checks_at_the_documented_size(data):
    events = data[1][EVENTS_TABLE][:500]
    sizes = [item_size(validate_item(e)) for e in events]
    assert 150 < sum(sizes) / len(sizes) < 600
    for table in (PROGRESS_TABLE, COUNTERS_TABLE):
        for item in data[1][table][:50]:
            validate_item(item)


def test_table_definitions_name_the_benchmarks_tables_and_the_index():
    definitions = {d["TableName"]: d for d in table_definitions()}
    assert set(definitions) == {EVENTS_TABLE, PROGRESS_TABLE, COUNTERS_TABLE}
    index = definitions[EVENTS_TABLE]["GlobalSecondaryIndexes"][0]
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["content_id", "ts"]


def test_the_generator_is_fast_enough_for_a_million_events_in_seconds():
    import time

    started = time.process_time()
    count = sum(1 for _ in DemoData(20_000, seed=1, end_ms=END_MS).items())
    per_event = (time.process_time() - started) / 20_000
    assert count > 20_000 and per_event < 60e-6  # about 10 µs here; a loose bound for slow runners


# ---------------------------------------------------------------- loading and printing


def test_merge_requests_only_move_positions_forward_and_add_counters():
    position = {"user_id": {"S": "u1"}, "content_id": {"S": "c1"}, "position_s": {"N": "1.5"},
                "updated_at": {"N": "10"}, "session_id": {"S": "s"}}
    request = loader.merge_request(PROGRESS_TABLE, position)
    assert request["ConditionExpression"] == "attribute_not_exists(updated_at) OR updated_at < :t"
    assert request["ExpressionAttributeValues"][":t"] == {"N": "10"}
    counter = loader.merge_request(COUNTERS_TABLE, {"counter_id": {"S": "c1#2026010100#3"}, "plays": {"N": "4"}})
    assert counter["UpdateExpression"] == "ADD plays :n"
    assert loader.merge_request(EVENTS_TABLE, {}) is None


def test_progress_line_shows_count_rate_and_time_left():
    progress = loader.Progress(1_000_000, stream=io.StringIO())
    line = progress.line(250_000, 25.0)
    assert "250,000/1,000,000" in line and "10,000/s" in line and "ETA 1:15" in line
    assert "elapsed 1:40" in progress.line(1_000_000, 100.0)


def _context() -> patterns.Context:
    return patterns.Context(user="u00000001", title="c000001", resumed="c000042", resume_position="12.5",
                            now_ms=END_MS, window=("1795999000000", "1795999500000.001"), session="s-1")


def test_snippets_are_filled_in_and_render_parses_back():
    items = patterns.patterns(_context(), "http://127.0.0.1:8123")
    assert [p.number for p in items] == list(range(1, 8))
    for pattern in items:
        assert "@" not in pattern.title + pattern.python + pattern.cli
        compile(pattern.python, str(pattern.number), "exec")
        pattern.answer = f"answer {pattern.number}\nline two"
    assert all(p.cli.count("--endpoint-url http://127.0.0.1:8123") >= 1 for p in items)
    text = patterns.render(items, "http://127.0.0.1:8123", "eu-west-1", patterns.Credentials())
    sections = patterns.parse(text)
    assert "eu-west-1" in sections["Set-up"]["AWS CLI"] and "8123" in sections["Set-up"]["boto3"]
    for pattern in items:
        assert sections[pattern.number] == {"boto3": pattern.python, "AWS CLI": pattern.cli,
                                            "prints": pattern.answer}
    answers_only = patterns.parse(patterns.render(items, "http://x", "us-east-1", patterns.Credentials(), "none"))
    assert set(answers_only[1]) == {"prints"}


def test_set_up_uses_the_credentials_the_demo_used():
    profile = patterns.Credentials("profile", "dev")
    assert 'profile_name="dev"' in patterns.setup_python("http://h:1", "us-east-1", profile)
    assert "AWS_PROFILE=dev" in patterns.setup_cli("us-east-1", profile)
    environment = patterns.Credentials("environment")
    assert "aws_access_key_id" not in patterns.setup_python("http://h:1", "us-east-1", environment)
    assert "AWS_ACCESS_KEY_ID" not in patterns.setup_cli("us-east-1", environment)


def test_snippet_client_maps_calls_and_errors_like_boto3():
    from shoal.demo.client import DynamoError

    class Recorder:
        def call(self, operation, request):
            if operation == "UpdateItem":
                raise DynamoError(400, {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                                        "message": "The conditional request failed"})
            return {"operation": operation, "request": request}

    ddb = patterns.SnippetClient(Recorder())
    assert ddb.describe_time_to_live(TableName="t") == {"operation": "DescribeTimeToLive",
                                                         "request": {"TableName": "t"}}
    assert ddb.batch_get_item(RequestItems={})["operation"] == "BatchGetItem"
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(TableName="t")


def test_snippets_name_the_workloads_tables_and_index():
    import re

    from shoal.demo.workload import CONTENT_INDEX

    text = "".join(python + cli for _title, python, cli in patterns._TEMPLATES)
    tables = set(re.findall(r'TableName="(\w+)"', text)) | set(re.findall(r"--table-name (\w+)", text))
    assert tables == {EVENTS_TABLE, PROGRESS_TABLE, COUNTERS_TABLE}
    assert set(re.findall(r'IndexName="(\w+)"', text)) | set(re.findall(r"--index-name (\w+)", text)) == {CONTENT_INDEX}
