"""``GET /metrics`` of a real ``shoal serve``, read by prometheus_client's own parser."""

from __future__ import annotations

import time
import urllib.request

import boto3
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.shoal_process import ShoalProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("prometheus"), "--workers", "2").start()
    yield proc
    proc.stop()


def scrape(server) -> dict:
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families, family, name, **labels):
    found = [s.value for s in families[family].samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, families[family].samples)
    return found[0]


def test_the_exposition_parses_and_matches_the_requests(server):
    ddb = boto3.client("dynamodb", endpoint_url=server.url, region_name="eu-north-1",
                       aws_access_key_id="any", aws_secret_access_key="any")
    ddb.create_table(TableName="scraped", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    for i in range(6):
        ddb.put_item(TableName="scraped", Item={"id": {"S": f"k{i}"}, "v": {"S": "x" * 2000}})  # 2 units each
    for i in range(10):
        ddb.get_item(TableName="scraped", Key={"id": {"S": f"k{i % 6}"}})
    with pytest.raises(Exception):
        ddb.get_item(TableName="absent", Key={"id": {"S": "k"}})

    def settled():  # the other worker flushes within a second or two
        families = scrape(server)
        try:
            return families, sample(families, "dynamodb_successful_request_latency_milliseconds",
                                    "dynamodb_successful_request_latency_milliseconds_count",
                                    table_name="scraped", operation="GetItem") == 10
        except (KeyError, AssertionError):
            return families, False

    deadline = time.monotonic() + 5
    families, done = settled()
    while not done and time.monotonic() < deadline:
        time.sleep(0.2)
        families, done = settled()
    assert done
    labels = dict(region="eu-north-1", table_name="scraped")
    assert families["dynamodb_consumed_write_capacity_units"].type == "counter"
    assert sample(families, "dynamodb_consumed_write_capacity_units",
                  "dynamodb_consumed_write_capacity_units_total", **labels) == 12.0
    assert sample(families, "dynamodb_consumed_read_capacity_units",
                  "dynamodb_consumed_read_capacity_units_total", **labels) == 5.0  # 0.5 per eventual read
    assert sample(families, "dynamodb_user_errors", "dynamodb_user_errors_total", region="eu-north-1") == 1.0
    latency = families["dynamodb_successful_request_latency_milliseconds"]
    assert latency.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in latency.samples
               if s.name.endswith("_bucket") and s.labels["operation"] == "PutItem"
               and s.labels["table_name"] == "scraped"]
    counts = [value for _, value in buckets]
    assert buckets[-1] == ("+Inf", 6.0) and counts == sorted(counts)
    assert families["shoal_storage_data_bytes"].samples[0].value > 0
    assert {s.labels["space"] for s in families["shoal_storage_entries"].samples} >= {"meta", "items", "changes"}
    assert families["process_cpu_seconds"].type == "counter" and families["process_cpu_seconds"].samples
    assert families["process_resident_memory_bytes"].samples[0].value > 0
