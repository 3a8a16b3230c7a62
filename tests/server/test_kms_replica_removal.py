"""A replica whose KMS key stays inaccessible for 20 hours leaves its global
table's replication group (``control.remove_inaccessible_replica``): the
other regions' Replicas no longer list it, its table stays there with its
items, a regional table, and replication stops both ways.  Three real
``shoal serve`` regions (``test_global_tables.Regions``); the third one's
clock is the one moved (SHOAL_TEST_CLOCK_FILE), over the default 20 hours.
"""

from __future__ import annotations

import time

import pytest

from shoal.storage.keyring import set_kms_key_state
from tests.server.test_global_tables import (
    start_together,
    CONVERGE_S,
    REGIONS,
    Regions,
    _converged,
    _create,
    _data_dir,
    _scan,
    _wait_active,
    _wait_replica_status,
    _wait_table_status,
)
from tests.server.test_global_tables_kms import INACCESSIBLE

TWENTY_HOURS_S = 20 * 3600


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    regions = Regions(str(tmp_path_factory.mktemp("kms_removal")), clock_s=0.0)  # on time, until moved
    start_together(regions)
    yield regions
    regions.stop()


def _replicas(client, name: str) -> list[str]:
    return [r["RegionName"] for r in client.describe_table(TableName=name)["Table"].get("Replicas", ())]


def _wait_replicas(client, name: str, regions: list[str]) -> None:
    deadline = time.monotonic() + CONVERGE_S
    while _replicas(client, name) != regions:
        assert time.monotonic() < deadline, _replicas(client, name)
        time.sleep(0.1)


def test_a_replica_whose_key_stays_inaccessible_for_20_hours_leaves_the_replication_group(trio):
    first, second, third = (trio.client(i) for i in range(3))
    name = "kms_removed"
    _create(first, name)
    first.update_table(TableName=name, SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                         "KMSMasterKeyId": "first-key"})
    for n in range(5):
        first.put_item(TableName=name, Item={"pk": {"S": f"before{n}"}, "kind": {"S": "k"}})
    for i, key in ((1, "second-key"), (2, "third-key")):
        first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[i],
                                                                       "KMSMasterKeyId": key}}])
        _wait_active(first, name)
    before = _converged(trio, name)
    assert len(before) == 5

    set_kms_key_state(_data_dir(trio, 2), "third-key", "Disabled")
    _wait_table_status(third, name, INACCESSIBLE)
    _wait_replica_status(first, name, REGIONS[2], INACCESSIBLE)
    _wait_replica_status(second, name, REGIONS[2], INACCESSIBLE)
    assert _replicas(third, name) == [REGIONS[0], REGIONS[1]]

    with open(trio.clock_file, "w") as handle:
        handle.write(str(TWENTY_HOURS_S + 1))
    # The others list each other only; the table stays ACTIVE there.
    _wait_replicas(first, name, [REGIONS[1]])
    _wait_replicas(second, name, [REGIONS[0]])
    assert first.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    # Not deleted: a regional table, still inaccessible until its key is back, with its items.
    table = third.describe_table(TableName=name)["Table"]
    assert table["TableStatus"] == INACCESSIBLE
    assert "Replicas" not in table and "GlobalTableVersion" not in table
    assert first.describe_table(TableName=name)["Table"]["GlobalTableVersion"] == "2019.11.21"

    # Replication goes on between the two others, and stops to and from the third.
    first.put_item(TableName=name, Item={"pk": {"S": "after-first"}, "kind": {"S": "k"}})
    assert len(_converged(trio, name, indexes=(0, 1))) == 6
    set_kms_key_state(_data_dir(trio, 2), "third-key", "Enabled")
    _wait_table_status(third, name, "ACTIVE")
    assert _scan(third, name) == before
    third.put_item(TableName=name, Item={"pk": {"S": "after-third"}, "kind": {"S": "k"}})
    second.put_item(TableName=name, Item={"pk": {"S": "after-second"}, "kind": {"S": "k"}})
    items = _converged(trio, name, indexes=(0, 1))
    time.sleep(2.0)  # a few of the replication threads' rounds: nothing crosses to or from the third
    assert [i["pk"]["S"] for i in _scan(first, name)] == [i["pk"]["S"] for i in items]
    assert "after-third" not in [i["pk"]["S"] for i in items]
    assert _scan(third, name) == sorted([*before, {"pk": {"S": "after-third"}, "kind": {"S": "k"}}],
                                        key=lambda item: item["pk"]["S"])
    # The third region's table is its own: deleting it there leaves the others' global table alone.
    third.delete_table(TableName=name)
    time.sleep(1.0)
    assert _replicas(first, name) == [REGIONS[1]]
