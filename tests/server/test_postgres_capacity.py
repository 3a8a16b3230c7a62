"""Capacity across nodes over PostgreSQL (issues 19 and 20): two ``shoal serve
--storage`` nodes over one database draw on one budget per table, so a
provisioned table's burst (300 seconds of its write units) is granted once
between them, not once by each node (``shoal.capacity.postgres_buckets``)."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_client
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)
from tests.shoal_process import ShoalProcess

WCU = 2
BURST_UNITS = WCU * 300
ITEM_UNITS = 49  # a 48.8 KB item: 49 write units


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, postgres_cluster):  # noqa: F811
    database = postgres_cluster.create_database("capacity")
    started = [ShoalProcess(tmp_path_factory.mktemp(f"node-{name}"), "--storage", database, "--workers", "1").start()
               for name in ("a", "b")]
    yield started
    for node in started:
        node.stop()


def test_two_nodes_grant_one_burst_between_them(nodes):
    clients = [make_client(node.url) for node in nodes]
    clients[0].create_table(TableName="cap", BillingMode="PROVISIONED",
                            ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": WCU},
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    big = "x" * 50_000
    granted = [0, 0]
    faults = []

    def drain(i: int) -> None:
        n = 0
        while n < 100:  # a bound: two budgets would be 24 items, one budget 12
            try:
                clients[i].put_item(TableName="cap", Item={"pk": {"S": f"{i}-{n}"}, "v": {"S": big}})
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ProvisionedThroughputExceededException":
                    faults.append(exc.response)
                return
            granted[i] += ITEM_UNITS
            n += 1

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not faults
    # One burst (600 units) and what refills while the test runs, not two (1,200).
    assert BURST_UNITS <= sum(granted) < 1.5 * BURST_UNITS, granted
    # and the nodes serve on: a read of one of the items
    assert clients[1].get_item(TableName="cap", Key={"pk": {"S": "0-0"}})["Item"]["v"]["S"] == big
