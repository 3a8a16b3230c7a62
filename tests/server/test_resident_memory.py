"""A real ``shoal serve`` keeps the resident pages of LMDB's mapped file under its budget
(shoal.storage.resident), loses nothing by it, and serves on after a restart.

The table holds several times the budget of large items; reading every item
maps all of it.  With the bound (48 MiB of RssFile, as the memory benchmarks set it) the worker's
RssFile falls back under the budget within a background round or two; without
it (``SHOAL_MAX_MAPPED_RESIDENT_MB=0``), the same reads leave the table
mapped, which is what shows the reads here touch the data at all.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import make_client, unique_name
from tests.shoal_process import ShoalProcess

MiB = 1 << 20
BUDGET = 48 * MiB  # as the memory benchmarks set it
ITEM_BYTES = 350_000
ITEMS = 480  # 160 MiB of values: over three times the budget
BATCH = 20  # 7 MB of values a BatchWriteItem (9.3 MB on the wire, under the 16 MiB request limit)


def payload(i: int) -> bytes:
    return ((b"item %06d; " % i) * (ITEM_BYTES // 12 + 1))[:ITEM_BYTES]


def rss_file(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile in /proc/<pid>/status")


def settle_under(pid: int, bound: int, timeout_s: float = 10.0) -> int:
    """RssFile once it is under ``bound`` (the trimmer checks every second
    while the loop is idle), or the last reading after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    value = rss_file(pid)
    while value > bound and time.monotonic() < deadline:
        time.sleep(0.2)
        value = rss_file(pid)
    return value


def read_every_item(ddb, table: str) -> int:
    """GetItem of every item; the number whose payload read back exactly."""
    good = 0
    for i in range(ITEMS):
        item = ddb.get_item(TableName=table, Key={"pk": {"S": f"p{i}"}})["Item"]
        good += item["data"]["B"] == payload(i) and item["n"]["N"] == str(i)
    return good


def start(data_dir, budget_text: str) -> ShoalProcess:
    return ShoalProcess(data_dir, "--workers", "1", "--metrics", "off",
                        env={"SHOAL_MAX_MAPPED_RESIDENT_MB": budget_text}).start(timeout=60)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="RssFile comes from Linux's /proc")
def test_mapped_pages_stay_under_the_budget_and_the_data_reads_back(tmp_path):
    data_dir = tmp_path / "data"
    table = unique_name("resident")
    server = start(data_dir, "48")
    try:
        ddb = make_client(server.url)
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        for first in range(0, ITEMS, BATCH):
            answer = ddb.batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": {"pk": {"S": f"p{i}"}, "n": {"N": str(i)}, "data": {"B": payload(i)}}}}
                for i in range(first, first + BATCH)]})
            assert answer["UnprocessedItems"] == {}
        for _ in range(2):
            assert read_every_item(ddb, table) == ITEMS
        assert settle_under(server.proc.pid, BUDGET) <= BUDGET
        # the bound holds while the server goes on serving: an item written now reads back
        ddb.put_item(TableName=table, Item={"pk": {"S": "late"}, "data": {"B": payload(ITEMS)}})
        assert ddb.get_item(TableName=table, Key={"pk": {"S": "late"}})["Item"]["data"]["B"] == payload(ITEMS)
    finally:
        server.stop()

    # After a restart, without the bound: every item is there, and reading
    # them maps the whole table (so the reads above did touch it all).
    server = start(data_dir, "0")
    try:
        ddb = make_client(server.url)
        assert read_every_item(ddb, table) == ITEMS
        assert ddb.get_item(TableName=table, Key={"pk": {"S": "late"}})["Item"]["data"]["B"] == payload(ITEMS)
        time.sleep(1.5)  # a background round or two: nothing trims
        assert rss_file(server.proc.pid) >= ITEMS * ITEM_BYTES * 0.9
        assert ddb.scan(TableName=table, Select="COUNT")["ScannedCount"] > 0
    finally:
        server.stop()


def test_a_bad_budget_stops_start_up_with_a_clear_message(tmp_path):
    """The variable is the option's (shoal serve --max-mapped-resident-mb):
    a bad value is refused before the port is bound."""
    with pytest.raises(RuntimeError) as caught:
        start(tmp_path / "data", "lots")
    assert ("shoal serve: argument --max-mapped-resident-mb: 'lots' is not a whole number of MiB "
            "(0 turns the bound off) (from $SHOAL_MAX_MAPPED_RESIDENT_MB)") in str(caught.value)
    server = start(tmp_path / "data", "0")  # the same directory serves once the value is right
    try:
        assert make_client(server.url).list_tables()["TableNames"] == []
    finally:
        server.stop()
