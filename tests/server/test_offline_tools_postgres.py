"""The offline tools over PostgreSQL (issue 19): ``shoal backup``, ``restore``,
``export``, ``import`` and ``backup schedule`` with ``--storage
postgresql://...`` while a ``shoal serve --storage`` node serves the same
database, the node seeing what they did through boto3; half-made work that a
killed tool left behind cleared by the next tool; and the refusals: a bad URL,
an unreachable database, a database with no store (left untouched), an
encrypted store without its key, ``shoal keys kms-key-state``."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pyarrow.parquet
import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_client, unique_name
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.server.test_offline_tools import wait_for
from tests.shoal_process import ShoalProcess, free_port


def shoal(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shoal", *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture(scope="module")
def database(postgres_cluster):  # noqa: F811
    return postgres_cluster.create_database("tools")


@pytest.fixture(scope="module")
def ddb(tmp_path_factory, database):
    """A client of one node serving ``database`` for the whole module."""
    node = ShoalProcess(tmp_path_factory.mktemp("node"), "--storage", database, "--workers", "1").start()
    yield make_client(node.url)
    assert node.stop() == 0


def item(n: int) -> dict:
    return {"user_id": {"S": f"u{n % 4}"}, "ts": {"N": str(1_700_000_000_000 + n)}, "content_id": {"S": f"c{n % 3}"},
            "s": {"S": "é\u2603"}, "b": {"B": bytes([n, 0, 255])}, "ss": {"SS": ["a", "b"]},
            "m": {"M": {"deep": {"L": [{"N": "-12.125"}, {"NULL": True}]}}}}


def make_table(ddb, items: int, pitr: bool = True) -> str:
    name = unique_name("events")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("user_id", "S"), ("ts", "N"), ("content_id", "S"))],
        GlobalSecondaryIndexes=[{"IndexName": "by_content", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                               {"AttributeName": "ts", "KeyType": "RANGE"}]}])
    if pitr:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
    for n in range(items):
        ddb.put_item(TableName=name, Item=item(n))
    return name


def scan(ddb, table: str) -> list:
    return sorted(ddb.scan(TableName=table, ConsistentRead=True)["Items"],
                  key=lambda i: (i["user_id"]["S"], int(i["ts"]["N"])))


def by_content(ddb, table: str) -> list:
    return ddb.query(TableName=table, IndexName="by_content", KeyConditionExpression="content_id = :c",
                     ExpressionAttributeValues={":c": {"S": "c1"}})["Items"]


def active(ddb, table: str) -> bool:
    """Whether the node sees ``table`` ACTIVE (a table another process made
    reaches a node within a second: the catalog version it checks)."""
    try:
        return ddb.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return False
        raise


def test_backup_and_restores_while_a_node_serves(ddb, database):
    table = make_table(ddb, 40)
    original = scan(ddb, table)
    time.sleep(0.05)
    before = time.time()
    time.sleep(0.05)
    for n in range(10):
        ddb.delete_item(TableName=table, Key={"user_id": {"S": f"u{n % 4}"}, "ts": {"N": str(1_700_000_000_000 + n)}})
    now = scan(ddb, table)

    made = shoal("backup", table, "--storage", database, "--name", "offline")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"Backed up {table}: 30 items")
    arn = made.stdout.split("BackupArn: ")[1].strip()
    listed = ddb.list_backups(TableName=table)["BackupSummaries"]
    assert [(b["BackupName"], b["BackupArn"], b["BackupStatus"]) for b in listed] == [("offline", arn, "AVAILABLE")]

    target = unique_name("from_backup")
    done = shoal("restore", "--backup-arn", arn, "--target", target, "--storage", database)
    assert done.returncode == 0 and "30 items" in done.stdout, done.stderr
    wait_for(lambda: active(ddb, target))
    assert scan(ddb, target) == now
    assert by_content(ddb, target) == by_content(ddb, table)  # the index was loaded too
    described = ddb.describe_table(TableName=target)["Table"]["RestoreSummary"]
    assert described["SourceBackupArn"] == arn and described["RestoreInProgress"] is False

    time.sleep(max(0.0, before + 1.1 - time.time()))  # within the recovery window (it lags a second)
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before)) + f".{int(before * 1000) % 1000:03d}Z"
    target = unique_name("before_deletes")
    done = shoal("restore", "--from-table", table, "--at", at, "--target", target, "--storage", database)
    assert done.returncode == 0 and "40 items" in done.stdout, done.stderr
    wait_for(lambda: active(ddb, target))
    assert scan(ddb, target) == original
    # A name the nodes already have is refused in DynamoDB's words, and nothing changes.
    again = shoal("restore", "--backup-arn", arn, "--target", target, "--storage", database)
    assert (again.returncode, again.stderr) == (1, f"shoal: Table already exists: {target}\n")
    assert scan(ddb, target) == original


def gone(ddb, table: str) -> bool:
    try:
        ddb.describe_table(TableName=table)
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "ResourceNotFoundException"
    return False


def files_of(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(path, name), folder)
                  for path, _, names in os.walk(folder) for name in names)


def assert_dynamodb_layout(folder, items: int, suffix: str) -> str:
    """The files of one export in DynamoDB's layout under ``folder``; its id."""
    names = files_of(folder)
    export_id = names[0].split(os.sep)[1]
    root = os.path.join("AWSDynamoDB", export_id)
    fixed = [os.path.join(root, name) for name in ("_started", "manifest-files.json", "manifest-files.md5",
                                                  "manifest-summary.json", "manifest-summary.md5")]
    data = [name for name in names if name not in fixed]
    assert set(fixed) <= set(names) and data and all(
        name.startswith(os.path.join(root, "data", "")) and name.endswith(suffix) for name in data), names
    summary = json.loads((folder / root / "manifest-summary.json").read_text())
    assert summary["itemCount"] == items
    lines = [line for name in data for line in gzip.decompress((folder / name).read_bytes()).splitlines()]
    assert len(lines) == items
    manifest = [json.loads(line) for line in (folder / root / "manifest-files.json").read_text().splitlines()]
    assert sorted(entry["dataFileS3Key"] for entry in manifest) == sorted(name.replace(os.sep, "/") for name in data)
    return export_id


def test_export_and_import_while_a_node_serves(ddb, database, tmp_path):
    with_recovery = make_table(ddb, 30)
    plain = make_table(ddb, 20, pitr=False)

    out = tmp_path / "json"
    done = shoal("export", with_recovery, "--format", "dynamodb-json", "--out", str(out), "--storage", database)
    assert done.returncode == 0 and "30 items" in done.stdout, done.stderr
    export_id = assert_dynamodb_layout(out, 30, ".json.gz")
    # ExportTableToPointInTime itself ran (the table has recovery on): the node lists it.
    exports = ddb.list_exports(TableArn=ddb.describe_table(TableName=with_recovery)["Table"]["TableArn"])
    assert [(e["ExportArn"].rsplit("/", 1)[1], e["ExportStatus"]) for e in exports["ExportSummaries"]] == [
        (export_id, "COMPLETED")]

    done = shoal("export", plain, "--format", "ion", "--out", str(tmp_path / "ion"), "--storage", database)
    assert done.returncode == 0 and "20 items" in done.stdout, done.stderr
    assert_dynamodb_layout(tmp_path / "ion", 20, ".ion.gz")

    done = shoal("export", plain, "--format", "parquet", "--out", str(tmp_path / "parquet"), "--storage", database)
    assert done.returncode == 0, done.stderr
    assert pyarrow.parquet.read_table(str(tmp_path / "parquet")).num_rows == 20

    for folder, fmt, source in ((out, "dynamodb-json", with_recovery), (tmp_path / "ion", "ion", plain)):
        target = unique_name("imported")
        done = shoal("import", "--from", str(folder), "--format", fmt, "--table", target,
                     "--key", "user_id:S,ts:N", "--storage", database)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"Imported {len(scan(ddb, source))} items into {target}")
        wait_for(lambda: active(ddb, target))
        assert scan(ddb, target) == scan(ddb, source)
        imports = ddb.list_imports(TableArn=ddb.describe_table(TableName=target)["Table"]["TableArn"])
        assert [i["ImportStatus"] for i in imports["ImportSummaryList"]] == ["COMPLETED"]


def test_a_schedule_kept_in_the_database_is_taken_by_the_node(ddb, database, capsys):
    table = make_table(ddb, 5, pitr=False)
    done = shoal("backup", "schedule", table, "--every", "1h", "--keep", "1d", "--storage", database)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{table}: a backup every 1h, each kept 1d; next at once")

    def taken():
        found = ddb.list_backups(TableName=table, BackupType="SYSTEM")["BackupSummaries"]
        return found if found and found[0]["BackupStatus"] == "AVAILABLE" else None

    first, = wait_for(taken)
    assert first["BackupName"] == f"{table}$ScheduledBackup"
    code, listed, err = run_here(capsys, "backup", "schedule", "--list", "--storage", database)
    assert code == 0 and f"{table}: a backup every 1h" in listed and f"last {first['BackupArn']}" in listed, err
    assert run_here(capsys, "backup", "schedule", table, "--remove", "--storage", database)[0] == 0
    assert table not in run_here(capsys, "backup", "schedule", "--list", "--storage", database)[1]


# A process that starts a restore over PostgreSQL and dies at once (as under
# kill -9): its job never loads an item, and its table is left CREATING.
_DIES_MID_RESTORE = """
import os, sys, time
from shoal.api import DEFAULT_ACCOUNT, Context, backups
from shoal.api.catalog import Catalog
from shoal.storage.postgres_engine import PostgresEngine

backups.load_items = lambda *args: time.sleep(60)
engine = PostgresEngine(sys.argv[1])
ctx = Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine))
backups.restore_table_from_backup(ctx, {"BackupArn": sys.argv[2], "TargetTableName": sys.argv[3]})
os._exit(0)
"""


def test_what_a_killed_tool_left_half_made_the_next_tool_undoes(ddb, database):
    table = make_table(ddb, 5, pitr=False)
    arn = ddb.create_backup(TableName=table, BackupName="source")["BackupDetails"]["BackupArn"]
    target = unique_name("half_restored")
    died = subprocess.run([sys.executable, "-c", _DIES_MID_RESTORE, database, arn, target], capture_output=True,
                          text=True, timeout=60)
    assert died.returncode == 0, died.stderr
    wait_for(lambda: ddb.describe_table(TableName=target)["Table"]["TableStatus"] == "CREATING")
    # The node, which started before, leaves it so until it starts again; a tool clears it at its start.
    done = shoal("backup", table, "--storage", database)
    assert done.returncode == 0, done.stderr

    wait_for(lambda: gone(ddb, target))
    # The backup is not held by a restore any more: restoring it under that name works.
    done = shoal("restore", "--backup-arn", arn, "--target", target, "--storage", database)
    assert done.returncode == 0 and "5 items" in done.stdout, done.stderr


def test_an_interrupted_restore_is_undone_at_once(ddb, database, capsys, monkeypatch):
    """SIGTERM (or Ctrl-C) in the middle of a restore: its job stops and its
    half-made table is deleted by the tool itself, not at a node's next start.
    In this process, so that the load can be held until the tool is stopping."""
    from shoal.api import backups, jobs

    table = make_table(ddb, 5, pitr=False)
    arn = ddb.create_backup(TableName=table, BackupName="source")["BackupDetails"]["BackupArn"]
    target = unique_name("interrupted")
    stopping = threading.Event()
    load_items, stop_jobs = backups.load_items, jobs.stop_jobs

    def held(ctx, table, items):  # the restore's job: the table is made, CREATING
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopping.wait(30)
        time.sleep(0.2)  # for stop_jobs to set the job's stop, which the load then meets before its first item
        return load_items(ctx, table, items)

    def stop_jobs_seen(engine, timeout=30.0):
        stopping.set()
        return stop_jobs(engine, timeout)

    monkeypatch.setattr(backups, "load_items", held)
    monkeypatch.setattr(jobs, "stop_jobs", stop_jobs_seen)
    code, out, err = run_here(capsys, "restore", "--backup-arn", arn, "--target", target, "--storage", database)
    assert (code, out) == (130, "") and err.startswith("shoal: interrupted (what had not finished was stopped"), err
    wait_for(lambda: gone(ddb, target))
    monkeypatch.undo()
    done = shoal("restore", "--backup-arn", arn, "--target", target, "--storage", database)
    assert done.returncode == 0 and "5 items" in done.stdout, done.stderr  # no restore holds the backup


def run_here(capsys, *args: str) -> tuple[int, str, str]:
    """``shoal ARGS`` in this process (for refusals: no interpreter to start
    for each): its exit code, stdout and stderr."""
    from shoal.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(done: tuple[int, str, str], code: int, start: str) -> None:
    assert done[0] == code and done[2].startswith(start) and done[2].count("\n") == 1, done
    assert done[1] == ""


def test_refusals_are_one_clear_line(postgres_cluster, tmp_path, capsys, monkeypatch):  # noqa: F811
    tools = (("backup", "events"), ("restore", "--backup-arn", "arn:x", "--target", "copy"),
             ("export", "events", "--format", "dynamodb-json", "--out", str(tmp_path / "out")),
             ("import", "--from", str(tmp_path), "--format", "csv", "--table", "copy", "--key", "k:S"),
             ("backup", "schedule", "--list"))
    closed = f"postgresql://shoal@127.0.0.1:{free_port()}/tools"
    for args in tools:
        one_line(run_here(capsys, *args, "--storage", "mysql://shoal@127.0.0.1/db"), 2,
                 "shoal: --storage (or SHOAL_STORAGE) must be a postgresql://USER@HOST:PORT/DATABASE URL, "
                 "not 'mysql://shoal@127.0.0.1/db'")
        one_line(run_here(capsys, *args, "--storage", closed), 1,
                 f"shoal: cannot connect to PostgreSQL at {closed}: connection failed:")
    assert not (tmp_path / "out").exists()
    # SHOAL_STORAGE is --storage, as for shoal serve (the variable is read when the parser is made).
    monkeypatch.setenv("SHOAL_STORAGE", closed)
    one_line(run_here(capsys, "backup", "events"), 1, f"shoal: cannot connect to PostgreSQL at {closed}:")
    monkeypatch.delenv("SHOAL_STORAGE")

    # A database that holds no store: the tools that read one refuse it, and create nothing there.
    empty = postgres_cluster.create_database("empty")
    for args in tools[:3] + tools[4:]:
        one_line(run_here(capsys, *args, "--storage", empty), 1,
                 f"shoal: {empty} holds no Shoal store (no shoal schema with its tables): check the URL")
    with psycopg.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'shoal'"
                            ).fetchone() == (0,)

    key = tmp_path / "master.key"
    key.write_text("00" * 32 + "\n")
    one_line(run_here(capsys, "keys", "rotate", "--storage", empty, "--master-key-file", str(key),
                      "--new-master-key-file", str(key)), 1, f"shoal: {empty} holds no Shoal store: it has no keys")
    with psycopg.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'shoal'"
                            ).fetchone() == (0,)

    kms = run_here(capsys, "keys", "kms-key-state", "alias/k", "Disabled", "--data-dir", str(tmp_path),
                   "--storage", empty)
    one_line(kms, 1, f"shoal: {empty} holds no Shoal store")
    assert not (tmp_path / "KMS_KEYS").exists()
    with psycopg.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'shoal'"
                            ).fetchone() == (0,)


def test_an_encrypted_store_needs_its_key(postgres_cluster, tmp_path, capsys):  # noqa: F811
    from shoal.storage.keyring import generate_master_key_text

    sealed = postgres_cluster.create_database("sealed")
    key = tmp_path / "master.key"
    key.write_text(generate_master_key_text() + "\n")
    source = tmp_path / "files"
    source.mkdir()
    (source / "items.csv").write_text("k,colour\na,red\nb,blue\n")
    # An import makes the store, encrypted under the key, as shoal serve's first start would.
    done = shoal("import", "--from", str(source), "--format", "csv", "--table", "colours", "--key", "k:S",
                 "--storage", sealed, "--master-key-file", str(key))
    assert done.returncode == 0 and done.stdout.startswith("Imported 2 items into colours"), done.stderr
    one_line(run_here(capsys, "backup", "colours", "--storage", sealed), 1,
             f"shoal: {sealed}: the PostgreSQL schema 'shoal' is encrypted at rest: give its master key with "
             "--master-key-file or SHOAL_MASTER_KEY")
    made = shoal("backup", "colours", "--storage", sealed, "--master-key-file", str(key))
    assert made.returncode == 0 and made.stdout.startswith("Backed up colours: 2 items"), made.stderr


def test_status_shows_the_change_log_of_the_store_nodes_serve(ddb, database):
    make_table(ddb, 5)
    done = shoal("status", "--storage", database)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["head"] >= 5 and status["records"] >= 5
    later = make_table(ddb, 3)
    again = json.loads(shoal("status", "--storage", database).stdout)
    assert again["head"] >= status["head"] + 3, (status, again, later)
    refused = shoal("status", "--storage", "mysql://nowhere/db")
    assert refused.returncode == 2 and "postgresql://" in refused.stderr and "Traceback" not in refused.stderr
