"""``shoal demo`` against a real ``shoal serve``: tables, the loaded data, reruns,
and the printed snippets run with real boto3 and the AWS CLI.

The demo runs as ``python -m shoal.demo`` (the same handler as ``shoal demo``).
Each test works in its own region of one server, so the tests stay independent
under xdist."""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys

import pytest

from shoal.demo import add_demo_command, run_demo
from shoal.demo.patterns import parse
from shoal.demo.workload import EVENT_TYPES, EVENT_WEIGHTS
from tests.conftest import make_client
from tests.shoal_process import ShoalProcess, root_credentials

EVENTS = 2000
AWS = shutil.which("aws") or shutil.which("aws", path=os.path.dirname(sys.executable))


def run_demo_process(url: str, *args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "shoal.demo", "--endpoint-url", url, *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ShoalProcess(tmp_path_factory.mktemp("demo"), "--workers", "1").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def first_run(server):
    """One demo run of EVENTS events into fresh tables of us-east-1."""
    out = run_demo_process(server.url, "--events", str(EVENTS), "--seed", "11", "--region", "us-east-1")
    assert out.returncode == 0, out.stderr
    return out


def _count(ddb, table: str, **extra) -> int:
    total, start = 0, None
    while True:
        page = ddb.scan(TableName=table, Select="COUNT", **extra, **({"ExclusiveStartKey": start} if start else {}))
        total += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def _scan(ddb, table: str) -> list:
    items = []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        items += page["Items"]
    return items


def _lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines() if line.strip()]


# ---------------------------------------------------------------- the first run


def test_tables_index_and_time_to_live_are_set_up(server, first_run):
    ddb = make_client(server.url)
    events = ddb.describe_table(TableName="viewer_events")["Table"]
    assert [(k["AttributeName"], k["KeyType"]) for k in events["KeySchema"]] == [("user_id", "HASH"), ("ts", "RANGE")]
    (index,) = events["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by_content" and index["IndexStatus"] == "ACTIVE"
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [("content_id", "HASH"),
                                                                               ("ts", "RANGE")]
    ttl = ddb.describe_time_to_live(TableName="viewer_events")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    progress = ddb.describe_table(TableName="continue_watching")["Table"]["KeySchema"]
    assert [k["AttributeName"] for k in progress] == ["user_id", "content_id"]
    counters = ddb.describe_table(TableName="title_counters")["Table"]["KeySchema"]
    assert [k["AttributeName"] for k in counters] == ["counter_id"]


def test_every_loaded_event_is_stored(server, first_run):
    ddb = make_client(server.url)
    # the loaded events, and the one that access pattern 1 appended
    assert _count(ddb, "viewer_events") == EVENTS + 1
    assert _count(ddb, "viewer_events", IndexName="by_content") == EVENTS + 1
    assert f"Loaded {EVENTS:,} events" in first_run.stdout
    assert f"{EVENTS:,}/{EVENTS:,}" in first_run.stderr  # the progress line, on stderr
    assert "created" in first_run.stdout and "Set-up" in first_run.stdout


def test_the_workloads_distributions_roughly_hold(server, first_run):
    events = _scan(make_client(server.url), "viewer_events")
    kinds = collections.Counter(e["event_type"]["S"] for e in events)
    for kind, weight in zip(EVENT_TYPES, EVENT_WEIGHTS):
        assert abs(kinds[kind] / len(events) - weight / sum(EVENT_WEIGHTS)) < 0.05, (kind, kinds)
    for e in events:
        assert ("rating" in e) == (e["event_type"]["S"] == "rating")
        assert ("query" in e) == (e["event_type"]["S"] == "search")
        assert int(e["expires_at"]["N"]) == int(float(e["ts"]["N"])) // 1000 + 90 * 86400
    users = collections.Counter(e["user_id"]["S"] for e in events)
    assert users.most_common(1)[0][0] == "u00000001"
    assert 0.17 < users["u00000001"] / EVENTS < 0.23  # 66 users: the top 1% is one user, with a fifth


def test_printed_snippets_print_the_printed_answers(server, first_run):
    sections = parse(first_run.stdout)
    setup = sections["Set-up"]
    namespace: dict = {}
    exec(setup["boto3"], namespace)
    plays = int(sections[6]["prints"])
    for number in range(1, 8):
        printed = _lines(sections[number]["prints"])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(sections[number]["boto3"], dict(namespace))
        got = _lines(out.getvalue())
        if number == 4:  # its time is no longer newer: refused, and the position read is the one shown
            assert got[0][:2] == ["not", "saved:"] and got[1:] == printed
        elif number == 6:  # one more play
            assert got == [[str(plays + 1)]]
        else:
            assert got == printed, number
    if AWS is None:
        pytest.skip("the AWS CLI is not installed")
    env = dict(os.environ, PATH=os.path.dirname(AWS) + os.pathsep + os.environ.get("PATH", ""))
    for number in range(1, 8):
        printed = _lines(sections[number]["prints"])
        cli = subprocess.run(["bash", "-c", setup["AWS CLI"] + "\n" + sections[number]["AWS CLI"]],
                             capture_output=True, text=True, timeout=120, env=env)
        assert cli.returncode == 0, (number, cli.stderr)
        got = _lines(cli.stdout)
        if number == 4:
            assert got[0][:2] == ["not", "saved:"] and got[1:] == printed
            assert "ConditionalCheckFailedException" in cli.stderr
        elif number == 6:
            assert got == [[str(plays + 2)]]
        else:
            assert got == printed, (number, cli.stdout, cli.stderr)


# ---------------------------------------------------------------- reruns, reset, refusals


def test_a_second_run_adds_events_and_reset_starts_over(server):
    ddb = make_client(server.url, region="eu-west-1")
    first = run_demo_process(server.url, "--events", "300", "--region", "eu-west-1", "--snippets", "none")
    assert first.returncode == 0, first.stderr
    positions = _count(ddb, "continue_watching")
    second = run_demo_process(server.url, "--events", "200", "--region", "eu-west-1", "--snippets", "none")
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("reused") == 3
    assert _count(ddb, "viewer_events") == 300 + 200 + 2  # and the event each run appended
    assert _count(ddb, "continue_watching") >= positions
    assert "boto3:" not in second.stdout and "prints:" in second.stdout
    reset = run_demo_process(server.url, "--events", "100", "--region", "eu-west-1", "--reset",
                             "--snippets", "none")
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.count("recreated") == 3
    assert _count(ddb, "viewer_events") == 100 + 1
    ttl = ddb.describe_time_to_live(TableName="viewer_events")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_a_table_of_another_schema_is_refused_until_reset(server):
    ddb = make_client(server.url, region="eu-central-1")
    ddb.create_table(TableName="viewer_events", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    refused = run_demo_process(server.url, "--events", "50", "--region", "eu-central-1")
    assert refused.returncode == 1 and "--reset" in refused.stderr
    assert _count(ddb, "viewer_events") == 0
    reset = run_demo_process(server.url, "--events", "50", "--region", "eu-central-1", "--reset", "--snippets", "none")
    assert reset.returncode == 0, reset.stderr
    assert _count(ddb, "viewer_events") == 50 + 1


def test_against_a_server_that_verifies_signatures(tmp_path, monkeypatch):
    server = ShoalProcess(tmp_path / "auth", "--workers", "1", "--auth", "sigv4").start()
    try:
        key, secret = root_credentials(server.data_dir)
        bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        nowhere = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                   "AWS_EC2_METADATA_DISABLED": "true"}
        unsigned = run_demo_process(server.url, "--events", "20", env={**bare, **nowhere})
        assert unsigned.returncode == 1 and "AWS_ACCESS_KEY_ID" in unsigned.stderr
        signed = run_demo_process(server.url, "--events", "100", "--snippets", "python",
                                  env=dict(bare, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret))
        assert signed.returncode == 0, signed.stderr
        credentials = tmp_path / "credentials"
        credentials.write_text(f"[demo]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
        profiled = run_demo_process(server.url, "--events", "30", "--profile", "demo", "--snippets", "both",
                                    env={**bare, **nowhere, "AWS_SHARED_CREDENTIALS_FILE": str(credentials)})
        assert profiled.returncode == 0, profiled.stderr
        set_up = parse(profiled.stdout)["Set-up"]
        assert 'profile_name="demo"' in set_up["boto3"] and "AWS_PROFILE=demo" in set_up["AWS CLI"]
        sections = parse(signed.stdout)
        assert "aws_access_key_id" not in sections["Set-up"]["boto3"]  # the environment's credentials
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        namespace: dict = {}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(sections["Set-up"]["boto3"] + "\n" + sections[7]["boto3"], namespace)
        assert _lines(out.getvalue()) == _lines(sections[7]["prints"]) == [["ENABLED", "expires_at"]]
    finally:
        server.stop()


def test_nothing_listening_is_a_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = run_demo_process(f"http://127.0.0.1:{port}", "--events", "10", timeout=30)
    assert out.returncode == 1 and "cannot reach" in out.stderr and "shoal serve" in out.stderr


# ---------------------------------------------------------------- the command line


def test_help_names_every_option_and_its_environment_variable():
    out = subprocess.run([sys.executable, "-m", "shoal.demo", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for option in ("--endpoint-url", "--events", "--reset", "--region", "--profile", "--connections", "--seed",
                   "--snippets"):
        assert option in text
    for variable in ("SHOAL_DEMO_ENDPOINT", "SHOAL_DEMO_EVENTS", "SHOAL_DEMO_CONNECTIONS", "AWS_REGION"):
        assert variable in text


def test_add_demo_command_installs_a_handler(monkeypatch):
    monkeypatch.setenv("SHOAL_DEMO_EVENTS", "1234")
    parser = argparse.ArgumentParser(prog="shoal")
    add_demo_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "--reset"])
    assert args.handler is run_demo and args.events == 1234 and args.reset
    assert args.endpoint_url == os.environ.get("SHOAL_DEMO_ENDPOINT", "http://127.0.0.1:8000")


def test_over_https_with_a_self_signed_certificate(tmp_path):
    from tests.server.test_tls import self_signed

    cert, key = self_signed(tmp_path)
    server = ShoalProcess(tmp_path / "tls", "--workers", "1", "--tls-cert", str(cert), "--tls-key", str(key)).start()
    try:
        refused = run_demo_process(server.url, "--events", "10", timeout=30)
        assert refused.returncode == 1 and "--no-verify-ssl" in refused.stderr
        out = run_demo_process(server.url, "--events", "100", "--no-verify-ssl", "--connections", "4")
        assert out.returncode == 0, out.stderr
        sections = parse(out.stdout)
        assert "verify=False" in sections["Set-up"]["boto3"] and "--no-verify-ssl" in sections[7]["AWS CLI"]
        assert _lines(sections[7]["prints"]) == [["ENABLED", "expires_at"]]
        assert _lines(sections[1]["prints"])[0][1] == "play"
    finally:
        server.stop()
