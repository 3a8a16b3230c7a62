"""The shoal command line, and the AWS CLI against a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from shoal import __version__
from tests.shoal_process import ShoalProcess


def run_shoal(*args, env=None, timeout=30):
    return subprocess.run([sys.executable, "-m", "shoal", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_version_and_help():
    out = run_shoal("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"shoal {__version__}"
    out = run_shoal("serve", "--help")
    assert out.returncode == 0
    for flag in ("--host", "--port", "--data-dir", "--workers"):
        assert flag in out.stdout


def test_startup_line_names_url_and_data_dir(tmp_path):
    server = ShoalProcess(tmp_path / "d").start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert str(tmp_path / "d") in server.banner
    finally:
        assert server.stop() == 0


def _banner(tmp_path, *prefix, env_extra=None):
    """The start-up line of ``shoal serve`` configured only by environment
    variables (data directory ``tmp_path/wd``, a free port); it must stop cleanly."""
    env = dict(os.environ, SHOAL_DATA_DIR=str(tmp_path / "wd"), SHOAL_PORT="0", **(env_extra or {}))
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "shoal", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        return proc.stdout.readline()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_environment_variables_configure_serve(tmp_path):
    assert str(tmp_path / "wd") in _banner(tmp_path)


def test_data_dir_that_is_a_file_stops_startup(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a directory")
    out = run_shoal("serve", "--port", "0", "--data-dir", str(target))
    assert out.returncode != 0
    assert "shoal:" in out.stderr
    assert target.read_text() == "not a directory"


def test_data_dir_of_an_incompatible_format_is_left_alone(tmp_path):
    server = ShoalProcess(tmp_path / "d").start()
    server.stop()
    marker = tmp_path / "d" / "FORMAT"
    marker.write_text(marker.read_text().replace("format 1", "format 99"))
    before = marker.read_bytes()
    out = run_shoal("serve", "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert out.returncode != 0
    assert "format 99" in out.stderr
    assert marker.read_bytes() == before


def test_workers_share_one_data_directory(tmp_path):
    from tests.conftest import make_client

    server = ShoalProcess(tmp_path / "d", "--workers", "2").start()
    try:
        clients = [make_client(server.url) for _ in range(4)]
        clients[0].create_table(TableName="workers_t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                BillingMode="PAY_PER_REQUEST")
        for i in range(40):
            clients[i % 4].put_item(TableName="workers_t", Item={"pk": {"S": str(i)}})
        count = sum(c.scan(TableName="workers_t", Select="COUNT")["Count"] for c in clients[:1])
        assert count == 40
    finally:
        assert server.stop() == 0


def test_prewarm_maps_the_data_in_every_worker_and_serves(tmp_path):
    from tests.conftest import make_client

    data = tmp_path / "d"
    server = ShoalProcess(data).start()
    try:
        client = make_client(server.url)
        client.create_table(TableName="warm_t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
        for i in range(50):
            client.put_item(TableName="warm_t", Item={"pk": {"S": str(i)}, "v": {"S": "x" * 500}})
    finally:
        assert server.stop() == 0
    proc = subprocess.Popen([sys.executable, "-m", "shoal", "serve", "--port", "0", "--data-dir", str(data),
                             "--workers", "2", "--prewarm", "--log-level", "info"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        url = banner.split(" at ", 1)[1].split(" ", 1)[0]
        assert make_client(url).get_item(TableName="warm_t", Key={"pk": {"S": "7"}})["Item"]["v"]["S"] == "x" * 500
        time.sleep(1.0)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    lines = [line for line in err.splitlines() if "prewarm:" in line]
    assert len(lines) == 2, err  # one per worker
    assert all(" MiB of data mapped in " in line for line in lines)


@pytest.fixture
def aws(shoal):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDCLI", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION="us-east-1")

    def run(*args):
        out = subprocess.run(["aws", "--endpoint-url", shoal.url, "--output", "json", *args],
                             capture_output=True, text=True, env=env, timeout=60)
        return out.returncode, out.stdout, out.stderr

    return run


def test_aws_cli_round_trip(aws):
    code, _, err = aws("dynamodb", "create-table", "--table-name", "cli_events",
                       "--attribute-definitions", "AttributeName=user_id,AttributeType=S",
                       "AttributeName=ts,AttributeType=N",
                       "--key-schema", "AttributeName=user_id,KeyType=HASH", "AttributeName=ts,KeyType=RANGE",
                       "--billing-mode", "PAY_PER_REQUEST")
    assert code == 0, err
    code, _, err = aws("dynamodb", "put-item", "--table-name", "cli_events", "--item",
                       '{"user_id": {"S": "u00000001"}, "ts": {"N": "1700000000000"}, "event_type": {"S": "play"}}')
    assert code == 0, err
    code, out, err = aws("dynamodb", "query", "--table-name", "cli_events",
                         "--key-condition-expression", "user_id = :u",
                         "--expression-attribute-values", '{":u": {"S": "u00000001"}}')
    assert code == 0, err
    assert json.loads(out)["Items"][0]["event_type"] == {"S": "play"}
    code, out, err = aws("dynamodb", "get-item", "--table-name", "cli_events",
                         "--key", '{"user_id": {"S": "nobody"}, "ts": {"N": "1"}}')
    assert code == 0 and out.strip() == ""
    code, _, err = aws("dynamodb", "describe-table", "--table-name", "missing_cli")
    assert code != 0 and "ResourceNotFoundException" in err


def test_workers_default_to_the_usable_cpus(tmp_path):
    expected = min(len(os.sched_getaffinity(0)), 8)
    assert f"workers: {expected}," in _banner(tmp_path)
    # Restricted to one CPU (as a benchmark pins a server), auto means one worker.
    if subprocess.run(["which", "taskset"], capture_output=True).returncode == 0:
        assert "workers: 1," in _banner(tmp_path, "taskset", "-c", "0", env_extra={"SHOAL_WORKERS": "auto"})
    assert "workers: 3," in _banner(tmp_path, env_extra={"SHOAL_WORKERS": "3"})


def test_workers_must_be_a_number_or_auto():
    out = run_shoal("serve", "--port", "0", "--workers", "many")
    assert out.returncode == 2
    assert "expected a number or 'auto', not 'many'" in out.stderr


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1001"])
def test_group_commit_wait_must_be_between_0_and_1000_ms(value):
    out = run_shoal("serve", "--port", "0", "--group-commit-wait-ms", value)
    assert out.returncode == 2
    assert "--group-commit-wait-ms must be between 0 and 1000" in out.stderr


def test_group_commit_wait_from_the_environment_must_be_a_number():
    out = run_shoal("serve", "--port", "0", env=dict(os.environ, SHOAL_GROUP_COMMIT_WAIT_MS="soon"))
    assert out.returncode == 2
    assert "invalid float value: 'soon'" in out.stderr


def test_group_commit_wait_zero_still_acknowledges_writes(tmp_path):
    from tests.conftest import make_client

    server = ShoalProcess(tmp_path / "d", "--group-commit-wait-ms", "0").start()
    try:
        ddb = make_client(server.url)
        ddb.create_table(TableName="wait0", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        ddb.put_item(TableName="wait0", Item={"pk": {"S": "a"}})
        assert ddb.get_item(TableName="wait0", Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}
    finally:
        assert server.stop() == 0
