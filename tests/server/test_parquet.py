"""``shoal export --format parquet`` (issue 16, point 4): items written
through boto3 to a real ``shoal serve``, exported by the ``shoal`` command
once the server has stopped, and read back by DuckDB and pandas: every
column's type as the mapping of ``shoal.api.parquet`` says, every value as a
Scan returned it, and ``--at`` a time before a delete storm."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

import duckdb
import pandas
import pytest

from tests.conftest import make_client
from tests.shoal_process import ShoalProcess

BIG = 2**63 - 1


def shoal(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "shoal", *args], capture_output=True, text=True, timeout=timeout)


def item(n: int) -> dict:
    """Item n: every type, some attributes only in some items."""
    out = {
        "id": {"S": f"id{n:03d}"},
        "n_int": {"N": str([0, -7, BIG, -BIG - 1, 1700000000000][n % 5])},
        "n_dec": {"N": ["12.5", "-0.001", "3", "123456789.125"][n % 4]},
        "n_wide": {"N": "1E+100" if n % 2 else "1E-100"},  # no DECIMAL(38) holds both: DynamoDB JSON
        "bin": {"B": bytes([n, 0, 255])},
        "flag": {"BOOL": n % 2 == 0},
        "tags": {"SS": ["drama", f"t{n}"]},
        "nums": {"NS": [str(n), "2.5"]},
        "bins": {"BS": [b"\x00", bytes([n + 1])]},
        "device": {"M": {"type": {"S": "tv"}, "version": {"N": str(n)}}},
        "plays": {"L": [{"N": "1"}, {"N": str(n)}]},
        "mixed": {"S": "text"} if n % 2 else {"N": str(n)},
        "odd_list": {"L": [{"S": "a"}, {"N": "1"}]},
        "nothing": {"NULL": True},
    }
    if n % 3 == 0:
        out["rare"] = {"S": f"only in item {n}"}
    else:
        out["device"]["M"]["os"] = {"S": "tizen"}
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(data dir, the Scan's items by id, the out folder, the --at folder, items before the storm)."""
    root = tmp_path_factory.mktemp("parquet")
    data_dir = root / "data"
    server = ShoalProcess(data_dir, "--workers", "1").start()
    try:
        ddb = make_client(server.url)
        ddb.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        ddb.update_continuous_backups(TableName="events", PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
        for n in range(30):
            ddb.put_item(TableName="events", Item=item(n))
        time.sleep(0.05)
        before_storm = time.time()
        time.sleep(0.05)
        for n in range(20):
            ddb.delete_item(TableName="events", Key={"id": {"S": f"id{n:03d}"}})
        scanned = {i["id"]["S"]: i for i in ddb.scan(TableName="events", ConsistentRead=True)["Items"]}
        time.sleep(1.1)  # the storm's time within the recovery window
    finally:
        assert server.stop() == 0
    done = shoal("export", "events", "--data-dir", str(data_dir), "--format", "parquet", "--out", str(root / "now"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar: stderr is not a terminal
    at = shoal("export", "events", "--data-dir", str(data_dir), "--format", "parquet", "--out", str(root / "then"),
               "--at", str(before_storm))
    assert at.returncode == 0, at.stderr
    return done.stdout, scanned, root / "now", root / "then"


def expected(av):
    """What a typed column holds for a boto3 attribute value."""
    (tag, value), = av.items()
    if tag == "S" or tag == "B" or tag == "BOOL" or tag == "SS" or tag == "BS":
        return value
    if tag == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() and "." not in value else number
    if tag == "NS":
        return [expected({"N": member}) for member in value]
    if tag == "L":
        return [expected(member) for member in value]
    if tag == "M":
        return {name: expected(member) for name, member in value.items()}
    return None


def test_columns_have_the_types_of_the_mapping(exported):
    summary, _, now, _ = exported
    # (without quotes: DuckDB's versions quote different words)
    types = {row[0]: row[1].replace('"', "")
             for row in duckdb.sql(f"DESCRIBE SELECT * FROM '{now}/*.parquet'").fetchall()}
    assert types == {
        "id": "VARCHAR", "bin": "BLOB", "bins": "BLOB[]", "device": "STRUCT(os VARCHAR, type VARCHAR, version BIGINT)",
        "flag": "BOOLEAN", "mixed": "VARCHAR", "n_dec": "DECIMAL(12,3)", "n_int": "BIGINT", "n_wide": "VARCHAR",
        "nothing": "NULL", "nums": "DECIMAL(3,1)[]", "odd_list": "VARCHAR", "plays": "BIGINT[]", "rare": "VARCHAR",
        "tags": "VARCHAR[]"}
    assert list(types)[0] == "id"  # the key first
    assert "n_wide: N -> string" in summary and "mixed: mixed -> string" in summary


def test_duckdb_reads_what_a_scan_returns(exported):
    _, scanned, now, _ = exported
    relation = duckdb.sql(f"SELECT * FROM '{now}/*.parquet'")
    names = relation.columns
    rows = {row[0]: dict(zip(names, row)) for row in relation.fetchall()}
    assert set(rows) == set(scanned)
    json_columns = {"mixed", "n_wide", "odd_list"}
    for key, item in scanned.items():
        row = rows[key]
        for name in names:
            if name not in item or name == "nothing":
                assert row[name] is None
            elif name in json_columns:
                stored = json.loads(row[name])
                (tag, value), = item[name].items()
                if tag == "N":
                    assert Decimal(stored["N"]) == Decimal(value)
                elif tag == "L":
                    assert stored == {"L": [{"S": "a"}, {"N": "1"}]}
                else:
                    assert stored == {tag: value}
            elif name in ("tags", "bins"):
                assert sorted(row[name]) == sorted(expected(item[name]))
            elif name == "nums":
                assert sorted(row[name]) == sorted(expected(item[name]))
            elif name == "device":
                assert {k: v for k, v in row[name].items() if v is not None} == expected(item[name])
            else:
                assert row[name] == expected(item[name]), name


def test_pandas_reads_the_folder(exported):
    _, scanned, now, _ = exported
    frame = pandas.read_parquet(now)
    assert len(frame) == len(scanned)
    assert str(frame["n_int"].dtype) == "int64"
    assert sorted(frame["n_int"].tolist()) == sorted(int(i["n_int"]["N"]) for i in scanned.values())
    assert frame["n_dec"].map(type).eq(Decimal).all()


def test_at_a_time_before_the_delete_storm(exported):
    _, scanned, _, then = exported
    assert duckdb.sql(f"SELECT count(*) FROM '{then}/*.parquet'").fetchall()[0][0] == 30
    assert duckdb.sql(f"SELECT count(*) FROM '{then}/*.parquet' WHERE id < 'id020'").fetchall()[0][0] == 20
