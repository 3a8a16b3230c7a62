"""The shoal command line, and the AWS CLI against a running server."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from shoal import __version__, cli
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


# -- help, and the environment variables of `shoal serve` ---------------------

_ENV_IN_HELP = re.compile(r"\(env (SHOAL_[A-Z0-9_]+)(; default [^()]+(\([^()]*\))?[^()]*)?\)$")


def _walk(parser, path=("shoal",)):
    """(command path, action) of every argument of every command under ``parser``."""
    for action in parser._actions:
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def _serve_parser():
    commands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["serve"]


def test_every_command_and_argument_has_help():
    missing = []
    for path, action in _walk(cli.build_parser()):
        if action.help in (None, argparse.SUPPRESS):
            missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest for choice in action._choices_actions if choice.help}
            missing += [f"{' '.join(path)} {name} (command)" for name in action.choices if name not in helped]
    assert not missing, f"arguments without help: {missing}"


def test_every_serve_option_names_its_environment_variable_in_one_form():
    table = {option.flag: option for option in cli.SERVE_OPTIONS}
    options = [action for action in _serve_parser()._actions if action.option_strings != ["-h", "--help"]]
    # A short form of a table option (--no-metrics for --metrics off) sets the same value and is
    # named in that option's help; it has no variable of its own.
    dests = {action.dest: action for action in options if action.option_strings[0] in table}
    aliases = [action for action in options if action.option_strings[0] not in table]
    for alias in aliases:
        owner = dests.get(alias.dest)
        assert owner is not None, f"{alias.option_strings[0]}: not in SERVE_OPTIONS and no option's short form"
        assert alias.option_strings[0] in owner.help, f"{alias.option_strings[0]}: not named in {owner.help!r}"
    options = [action for action in options if action not in aliases]
    assert sorted(action.option_strings[0] for action in options) == sorted(table)
    for action in options:
        match = _ENV_IN_HELP.search(action.help)
        assert match, f"{action.option_strings[0]}: no '(env SHOAL_...; default ...)' at the end of its help"
        assert match.group(1) == table[action.option_strings[0]].env
    assert len({option.env for option in cli.SERVE_OPTIONS}) == len(cli.SERVE_OPTIONS)


def _sample(option, source: str) -> str:
    """A valid value of ``option`` (different for each ``source``), as text."""
    if option.is_flag:
        return "yes"
    if option.choices:
        return option.choices[-1] if source == "env" else option.choices[-2]
    if option.type is not None:
        return "3" if source == "env" else "5"
    return f"from-{source}"


def _serve_args(argv=()):
    return cli.build_parser().parse_args(["serve", *argv])


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SHOAL_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("option", cli.SERVE_OPTIONS, ids=lambda option: option.env)
def test_each_environment_variable_sets_its_option_and_the_command_line_wins(clean_env, option):
    dest = option.flag[2:].replace("-", "_")
    unset = getattr(_serve_args(), dest)
    text = _sample(option, "env")
    clean_env.setenv(option.env, text)
    from_env = getattr(_serve_args(), dest)
    expected = True if option.is_flag else option.type(text) if option.type else text
    assert from_env == expected != unset
    if not option.is_flag:
        given = _sample(option, "cli")
        assert getattr(_serve_args([option.flag, given]), dest) == (option.type(given) if option.type else given)


@pytest.mark.parametrize("flag", [option for option in cli.SERVE_OPTIONS if option.is_flag],
                         ids=lambda option: option.env)
def test_flag_variables_read_the_documented_words(clean_env, flag, capsys):
    dest = flag.flag[2:].replace("-", "_")
    for word in (*cli.TRUE_WORDS, "TRUE", "Yes", " on "):
        clean_env.setenv(flag.env, word)
        assert getattr(_serve_args(), dest) is True, word
    for word in (*cli.FALSE_WORDS, "FALSE", "No"):
        clean_env.setenv(flag.env, word)
        assert getattr(_serve_args(), dest) is False, word
        assert getattr(_serve_args([flag.flag]), dest) is True, word
    clean_env.setenv(flag.env, "maybe")
    with pytest.raises(SystemExit) as stopped:
        _serve_args()
    assert stopped.value.code == 2
    assert f"'maybe' (from ${flag.env})" in capsys.readouterr().err


@pytest.mark.parametrize("option", [option for option in cli.SERVE_OPTIONS
                                    if option.is_flag or option.choices or option.type],
                         ids=lambda option: option.env)
def test_a_wrong_variable_value_is_refused_naming_the_variable(clean_env, option, capsys):
    clean_env.setenv(option.env, "bogus")
    with pytest.raises(SystemExit) as stopped:
        _serve_args()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {option.flag}: " in err and "(from $" + option.env + ")" in err


# -- start-up errors: one line on stderr that says what to do, no traceback ----


def _env(**extra):
    """The environment without the caller's SHOAL_ variables, on a free port unless ``extra`` says."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}, "SHOAL_PORT": "0", **extra}


def _refused(*args, env=None, code=None) -> str:
    """Run ``shoal serve ...`` expecting it to stop at start-up; its one line of stderr."""
    out = run_shoal("serve", *args, env=env or _env())
    assert out.returncode != 0 if code is None else out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stdout == ""
    return out.stderr


def test_a_port_in_use_names_the_process_and_the_options(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for workers in ("1", "2"):
            err = _refused("--data-dir", str(tmp_path / "d"), "--port", str(port), "--workers", workers, code=1)
            assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in err
            if os.path.exists("/proc/net/tcp"):  # where the holder can be found
                assert f"by process {os.getpid()} (" in err
            assert "--port or SHOAL_PORT (0 picks a free one)" in err


@pytest.mark.parametrize("args, env, code, words", [
    (["--port", "99999"], {}, 2, ["--port: expected a port number from 0 to 65535, not '99999'"]),
    ([], {"SHOAL_PORT": "eighty"}, 2, ["not 'eighty' (from $SHOAL_PORT)", "see shoal serve --help"]),
    ([], {"SHOAL_CHANGE_RETENTION": "a day"}, 2, ["--change-retention:", "(from $SHOAL_CHANGE_RETENTION)"]),
    (["--workers", "0"], {}, 2, ["--workers: expected a number from 1 to 256 or 'auto', not '0'"]),
    (["--workers", "many"], {}, 2, ["--workers: expected a number or 'auto', not 'many'"]),
    ([], {"SHOAL_WORKERS": "-2"}, 2, ["--workers:", "not '-2' (from $SHOAL_WORKERS)"]),
    ([], {"SHOAL_PREWARM": "sometimes"}, 2, ["--prewarm:", "(from $SHOAL_PREWARM)"]),
    ([], {"SHOAL_LOG_LEVEL": "loud"}, 2, ["--log-level: invalid choice: 'loud'", "(from $SHOAL_LOG_LEVEL)"]),
    (["--host", "192.0.2.1", "--auth", "off", "--allow-unauthenticated"], {}, 1,
     ["192.0.2.1 is not an address of this machine", "--host or SHOAL_HOST"]),
    (["--host", "no-such-host.invalid"], {}, 1, ["no-such-host.invalid is not a known host name", "--host"]),
])
def test_startup_mistakes_are_one_line(tmp_path, args, env, code, words):
    err = _refused("--data-dir", str(tmp_path / "d"), *args, env=_env(**env), code=code)
    for word in words:
        assert word in err


def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    err = _refused("--data-dir", str(tmp_path / "file"), code=1)
    assert "is not a directory" in err
    err = _refused("--data-dir", str(tmp_path / "file" / "below"), code=1)
    assert "cannot create it" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_data_dir_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "is not writable" in _refused("--data-dir", str(locked / "d"), code=1)
    finally:
        locked.chmod(0o700)


def test_master_key_mistakes_are_one_line(tmp_path):
    from shoal.storage.datadir import open_data_dir

    right, wrong, bad = tmp_path / "right.key", tmp_path / "wrong.key", tmp_path / "bad.key"
    right.write_text(os.urandom(32).hex())
    wrong.write_text(os.urandom(32).hex())
    bad.write_text("not a key")
    encrypted = tmp_path / "encrypted"
    open_data_dir(encrypted, master_key=bytes.fromhex(right.read_text())).close()
    plain = tmp_path / "plain"

    err = _refused("--data-dir", str(plain), "--master-key-file", str(tmp_path / "missing.key"), code=1)
    assert "cannot read the master key file" in err and "missing.key" in err
    err = _refused("--data-dir", str(plain), "--master-key-file", str(bad), code=1)
    assert "is not a 32-byte key: give 64 hex digits" in err
    err = _refused("--data-dir", str(plain), env=_env(SHOAL_MASTER_KEY="short"), code=1)
    assert "$SHOAL_MASTER_KEY is not a 32-byte key" in err
    err = _refused("--data-dir", str(encrypted), "--master-key-file", str(wrong), code=1)
    assert "the master key does not open data directory" in err
    err = _refused("--data-dir", str(encrypted), code=1)
    assert "is encrypted: give its master key with --master-key-file or SHOAL_MASTER_KEY" in err


def test_two_servers_may_share_a_data_directory(tmp_path):
    """Not an error: LMDB serves several processes, as the workers of one server
    already are; a second `shoal serve` on another port is one more of them."""
    from tests.conftest import make_client

    first = ShoalProcess(tmp_path / "d", "--workers", "1").start()
    second = ShoalProcess(tmp_path / "d", "--workers", "1").start()
    try:
        make_client(first.url).create_table(
            TableName="shared_t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        make_client(first.url).put_item(TableName="shared_t", Item={"pk": {"S": "a"}})
        assert make_client(second.url).get_item(TableName="shared_t", Key={"pk": {"S": "a"}})["Item"]
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_main_runs_the_handler_of_any_command(capsys):
    parser = cli.build_parser()
    for path, action in _walk(parser):
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                assert sub.get_default("handler") is not None or any(
                    isinstance(a, argparse._SubParsersAction) for a in sub._actions), (*path, name)
    assert cli.main(["keys", "generate"]) == 0
    assert len(capsys.readouterr().out.strip()) == 64


def test_output_cut_short_by_its_reader_is_no_traceback(tmp_path):
    """`shoal iam list-users | head -c 10`: the reader closes the pipe while
    the command still writes (the listing is larger than a pipe's buffer)."""
    from shoal.auth.iam import IamStore
    from shoal.storage.datadir import open_data_dir

    data_dir = tmp_path / "d"
    engine = open_data_dir(data_dir)
    store = IamStore(engine, data_dir)
    for n in range(600):
        store.create_user(f"user{n:04d}")
    engine.close()
    done = subprocess.run(f"{sys.executable} -m shoal iam list-users --data-dir {data_dir} | head -c 10",
                          shell=True, capture_output=True, text=True, timeout=60)
    assert done.stdout == '{\n    "Use'
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_status_shows_the_change_log_and_its_consumers(tmp_path):
    """`shoal status` beside a running server: the log's head and the stream
    materializer's lag (none: records are materialized before GetRecords)."""
    from tests.conftest import make_client

    data_dir = tmp_path / "d"
    server = ShoalProcess(data_dir).start()
    try:
        ddb, ds = make_client(server.url), make_client(server.url, "dynamodbstreams")
        ddb.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
        for n in range(3):
            ddb.put_item(TableName="events", Item={"pk": {"S": str(n)}})
        arn = ddb.describe_table(TableName="events")["Table"]["LatestStreamArn"]
        ds.describe_stream(StreamArn=arn)  # the streams consumer catches up
        done = subprocess.run([sys.executable, "-m", "shoal", "status", "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
        assert status["head"] >= 3 and status["records"] >= 3 and status["retention_s"] == 86400
        assert status["consumers"]["streams"]["behind"] == 0
        assert status["consumers"]["streams"]["cursor"] == status["head"]
    finally:
        server.stop()
    missing = subprocess.run([sys.executable, "-m", "shoal", "status", "--data-dir", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
