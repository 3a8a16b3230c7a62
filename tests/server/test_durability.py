"""Acknowledged writes survive SIGKILL; data survives a clean restart."""

from __future__ import annotations

import threading

from tests.conftest import make_client
from tests.shoal_process import ShoalProcess


def test_acknowledged_writes_survive_sigkill(tmp_path):
    server = ShoalProcess(tmp_path / "data").start()
    ddb = make_client(server.url)
    ddb.create_table(TableName="events", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        client = make_client(server.url)
        i = 0
        while not stop.is_set():
            key = f"w{n}-{i}"
            try:
                client.put_item(TableName="events", Item={"pk": {"S": key}})
            except Exception:
                return
            acknowledged.append(key)
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    while len(acknowledged) < 200:
        threading.Event().wait(0.02)
    server.kill()
    stop.set()
    for t in threads:
        t.join()

    server = ShoalProcess(tmp_path / "data").start()
    ddb = make_client(server.url)
    try:
        missing = [k for k in acknowledged
                   if "Item" not in ddb.get_item(TableName="events", Key={"pk": {"S": k}}, ConsistentRead=True)]
        assert missing == []
    finally:
        server.stop()


def test_clean_restart_keeps_tables_and_items(tmp_path):
    server = ShoalProcess(tmp_path / "data").start()
    ddb = make_client(server.url)
    ddb.create_table(TableName="keep", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="keep", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    assert server.stop() == 0
    server = ShoalProcess(tmp_path / "data").start()
    ddb = make_client(server.url)
    try:
        assert ddb.list_tables()["TableNames"] == ["keep"]
        assert ddb.get_item(TableName="keep", Key={"pk": {"S": "a"}})["Item"]["v"] == {"N": "1"}
        assert ddb.describe_table(TableName="keep")["Table"]["ItemCount"] == 1
    finally:
        server.stop()
