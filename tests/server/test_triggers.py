"""Stream triggers end to end: real ``shoal serve`` processes, triggers
configured with the ``shoal triggers`` CLI while the server runs, and a local
HTTP receiver collecting the Lambda-style batches.  Back-off and the lease
are shortened through the environment."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import create_table, make_client, unique_name
from tests.server.test_streams import env
from tests.shoal_process import ShoalProcess
from tests.unit.test_triggers import Receiver

FAST = {"SHOAL_TRIGGER_BACKOFF_S": 0.2, "SHOAL_TRIGGER_BACKOFF_MAX_S": 1.0, "SHOAL_TRIGGER_LEASE_S": 3}


def start(data_dir, *args) -> ShoalProcess:
    with env(**FAST):
        return ShoalProcess(data_dir, *args).start()


def cli(data_dir, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "shoal", "triggers", *args, "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def show(data_dir, trigger_id) -> dict:
    return json.loads(cli(data_dir, "show", "--id", trigger_id).stdout)["Trigger"]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start(tmp_path_factory.mktemp("triggers"), "--workers", "2")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


def streamed_table(ddb) -> str:
    name = unique_name("trg")
    create_table(ddb, name=name, range_key=None)
    ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": True,
                                                          "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return name


def add(data_dir, table, url, *args) -> str:
    out = json.loads(cli(data_dir, "add", "--table", table, "--url", url, *args).stdout)
    return out["Trigger"]["Id"]


def write_changes(ddb, table, keys, rounds) -> dict[str, list[tuple[str, str | None]]]:
    """Insert, update and (for even keys) delete; the expected (eventName, n)
    sequence per key."""
    expected: dict[str, list] = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys:
            ddb.put_item(TableName=table, Item={"pk": {"S": k}, "n": {"N": str(r)}})
            expected[k].append(("INSERT" if r == 0 else "MODIFY", str(r)))
    for i, k in enumerate(keys):
        if i % 2 == 0:
            ddb.delete_item(TableName=table, Key={"pk": {"S": k}})
            expected[k].append(("REMOVE", None))
    return expected


def per_key(records) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in records:
        image = r["dynamodb"].get("NewImage")
        out.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(
            (r["eventName"], image["n"]["N"] if image else None))
    return out


def wait_for(receiver, count, timeout=30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(receiver.records) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return receiver.records


def test_delivers_every_change_in_order_per_key(server, ddb, receiver):
    table = streamed_table(ddb)
    trigger_id = add(server.data_dir, table, receiver.url, "--batch-size", "7")
    keys = [f"user{i}" for i in range(5)]
    expected = write_changes(ddb, table, keys, rounds=4)
    total = sum(map(len, expected.values()))
    records = wait_for(receiver, total)
    assert per_key(records) == expected
    assert len({r["eventID"] for r in records}) == len(records) == total  # each once
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    assert all(r["eventSourceARN"] == arn and r["eventSource"] == "aws:dynamodb" for r in records)
    assert all(r["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES" for r in records)
    assert max(len(b["Records"]) for b in receiver.batches) <= 7
    state = show(server.data_dir, trigger_id)
    deadline = time.monotonic() + 10
    while state["DeliveredRecords"] < total and time.monotonic() < deadline:
        time.sleep(0.2)  # the checkpoint follows the 2xx answer
        state = show(server.data_dir, trigger_id)
    assert state["DeliveredRecords"] == total and state["LagRecords"] == 0 and state["LastError"] is None
    assert max(state["Checkpoint"].values()) == records[-1]["dynamodb"]["SequenceNumber"]
    listed = json.loads(cli(server.data_dir, "list").stdout)["Triggers"]
    assert trigger_id in [t["Id"] for t in listed]
    cli(server.data_dir, "remove", "--id", trigger_id)


def test_failing_receiver_recovers_without_loss(server, ddb, receiver):
    table = streamed_table(ddb)
    receiver.fail = 6
    trigger_id = add(server.data_dir, table, receiver.url, "--batch-size", "3")
    keys = ["a", "b", "c"]
    expected = write_changes(ddb, table, keys, rounds=3)
    total = sum(map(len, expected.values()))
    deadline = time.monotonic() + 20
    state = show(server.data_dir, trigger_id)
    while state["Attempts"] == 0 and state["DeliveredRecords"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        state = show(server.data_dir, trigger_id)
    assert state["LastError"] == "HTTP 500 Internal Server Error: boom"
    records = wait_for(receiver, total)
    assert per_key(records) == expected
    assert len({r["eventID"] for r in records}) == total
    assert receiver.requests >= 6 + len(receiver.batches)
    cli(server.data_dir, "remove", "--id", trigger_id)


def test_cli_errors(server, ddb, receiver):
    missing = cli(server.data_dir, "add", "--table", "nope", "--url", receiver.url, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "shoal: table nope does not exist in region us-east-1"
    plain = unique_name("plain")
    create_table(ddb, name=plain, range_key=None)
    refused = cli(server.data_dir, "add", "--table", plain, "--url", receiver.url, check=False)
    assert refused.returncode == 1 and "has no enabled stream" in refused.stderr
    unknown = cli(server.data_dir, "remove", "--id", "x", check=False)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "shoal: no trigger with id x"


def test_checkpoint_survives_restart(tmp_path, receiver):
    proc = start(tmp_path / "data")
    try:
        ddb = make_client(proc.url)
        table = streamed_table(ddb)
        trigger_id = add(proc.data_dir, table, receiver.url)
        for n in range(5):
            ddb.put_item(TableName=table, Item={"pk": {"S": "k"}, "n": {"N": str(n)}})
        wait_for(receiver, 5)
        deadline = time.monotonic() + 10
        while show(proc.data_dir, trigger_id)["DeliveredRecords"] < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.stop()
    proc = start(tmp_path / "data")
    try:
        ddb = make_client(proc.url)
        for n in range(5, 8):
            ddb.put_item(TableName=table, Item={"pk": {"S": "k"}, "n": {"N": str(n)}})
        records = wait_for(receiver, 8)
        time.sleep(1.5)  # a full redelivery would show up by now
        records = receiver.records
        assert [r["dynamodb"]["NewImage"]["n"]["N"] for r in records] == [str(n) for n in range(8)]
        state = show(proc.data_dir, trigger_id)
        assert state["LagRecords"] == 0 and state["Lease"]["Pid"] != 0
    finally:
        proc.stop()


def test_killed_server_redelivers_at_least_once(tmp_path, receiver):
    """A crash while the receiver is failing: after restart, every change
    arrives, in order, none lost."""
    proc = start(tmp_path / "data")
    try:
        ddb = make_client(proc.url)
        table = streamed_table(ddb)
        receiver.fail = 1000
        add(proc.data_dir, table, receiver.url, "--batch-size", "2")
        for n in range(6):
            ddb.put_item(TableName=table, Item={"pk": {"S": "k"}, "n": {"N": str(n)}})
        time.sleep(1.5)
    finally:
        proc.kill()
    receiver.fail = 0
    proc = start(tmp_path / "data")
    try:
        records = wait_for(receiver, 6)
        assert [r["dynamodb"]["NewImage"]["n"]["N"] for r in records] == [str(n) for n in range(6)]
    finally:
        proc.stop()
