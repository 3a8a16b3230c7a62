"""Checks of the harness's own pieces that need no server or wrk.

    cd bench && python3 -m pytest test_workload.py -q
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workload import (  # noqa: E402
    COUNTRIES, EVENT_TYPES, SPAN_MS, T0_MS, TTL_S, DataSet, EventGenerator, event_ts, preload_keys, user_counts,
)


def test_counts_sum_to_items_and_fall_with_rank():
    counts = user_counts(30_000)
    assert sum(counts) == 30_000
    assert counts == sorted(counts, reverse=True)
    assert 0 < len(counts) <= 1000


def test_top_percent_of_users_produce_about_a_fifth_of_events():
    counts = user_counts(300_000)
    top = sum(counts[: len(counts) // 100])
    assert 0.18 < top / 300_000 < 0.22


def test_preload_keys_are_unique_and_cover_every_part_once():
    dataset = DataSet.build(5_000)
    keys = [k for part in range(3) for k in preload_keys(dataset, part, 3)]
    assert len(keys) == len(set(keys)) == 5_000
    assert all(T0_MS <= ts < T0_MS + SPAN_MS for _, ts in keys)


def test_event_ts_matches_lua_formula():
    # lua/events.lua: T0_MS + k * floor(SPAN_MS / count)
    assert event_ts(7, 3) == T0_MS + 3 * (SPAN_MS // 7)


def test_counts_file_round_trips(tmp_path):
    dataset = DataSet.build(2_000)
    path = tmp_path / "counts.txt"
    dataset.write_counts(path)
    assert [int(line) for line in path.read_text().split()] == list(dataset.counts)


def test_events_have_the_documented_shape():
    generator = EventGenerator(seed=7)
    for n in range(500):
        ts = T0_MS + n
        item = generator.event("u00000001", ts)
        kind = item["event_type"]["S"]
        assert kind in EVENT_TYPES
        assert item["content_id"]["S"].startswith("c") and len(item["content_id"]["S"]) == 7
        assert len(item["session_id"]["S"]) == 36
        assert set(item["device"]["M"]) == {"type", "os", "app_version"}
        assert item["country"]["S"] in COUNTRIES
        assert len(item["position_s"]["N"].split(".")[1]) == 3
        assert ("bitrate_kbps" in item) == (kind in ("play", "heartbeat"))
        assert ("rating" in item) == (kind == "rating")
        assert ("query" in item) == (kind == "search")
        if "tags" in item:
            tags = item["tags"]["SS"]
            assert 1 <= len(tags) <= 5 and len(set(tags)) == len(tags)
        assert int(item["expires_at"]["N"]) == ts // 1000 + TTL_S


def test_events_pass_shoal_item_validation():
    from shoal.model.size import item_size
    from shoal.model.values import validate_item

    generator = EventGenerator(seed=3)
    sizes = [item_size(validate_item(generator.event("u00000042", T0_MS + n))) for n in range(200)]
    assert 150 < sum(sizes) / len(sizes) < 600
