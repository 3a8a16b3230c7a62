"""A replica whose resource-based policy denies the replication service-linked
role (``shoal.replication.authorization``): REPLICATION_NOT_AUTHORIZED in its
own region's TableStatus and in the other regions' Replicas, replication to
and from it held (nothing lost: delivered once the policy allows again), an
MREC replica leaving its replication group after 20 hours, and a policy
without such a Deny changing nothing. Three real ``shoal serve`` regions
(``test_global_tables.Regions``); the third one's clock is the one moved
(SHOAL_TEST_CLOCK_FILE). MRSC: ``test_replication_not_authorized_mrsc.py``.
"""

from __future__ import annotations

import time

import orjson
import pytest

from tests.server.test_global_tables import (
    start_together,
    REGIONS,
    Regions,
    _converged,
    _create,
    _scan,
    _wait_active,
    _wait_replica_status,
    _wait_table_status,
)
from tests.server.test_kms_replica_removal import _wait_replicas

NOT_AUTHORIZED = "REPLICATION_NOT_AUTHORIZED"
ACCOUNT = "000000000000"
SLR = ("arn:aws:iam::000000000000:role/aws-service-role/replication.dynamodb.amazonaws.com/"
       "AWSServiceRoleForDynamoDBReplication")
TWENTY_HOURS_S = 20 * 3600


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    regions = Regions(str(tmp_path_factory.mktemp("not_authorized")), clock_s=0.0)  # on time, until moved
    start_together(regions)
    yield regions
    regions.stop()


def _arn(i: int, name: str) -> str:
    return f"arn:aws:dynamodb:{REGIONS[i]}:{ACCOUNT}:table/{name}"


def _policy(*statements) -> str:
    return orjson.dumps({"Version": "2012-10-17", "Statement": list(statements)}).decode()


def _deny(principal: dict, action, resource: str) -> dict:
    return {"Effect": "Deny", "Principal": principal, "Action": action, "Resource": resource}


def _global(trio, name: str, items: int = 3) -> list[dict]:
    first = trio.client(0)
    _create(first, name)
    for n in range(items):
        first.put_item(TableName=name, Item={"pk": {"S": f"before{n}"}, "kind": {"S": "k"}})
    for i in (1, 2):
        first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[i]}}])
        _wait_active(first, name)
    for i in range(3):
        _wait_active(trio.client(i), name)
    return _converged(trio, name)


def _keys(client, name: str) -> list[str]:
    return [item["pk"]["S"] for item in _scan(client, name)]


def _put(client, name: str, key: str) -> None:
    client.put_item(TableName=name, Item={"pk": {"S": key}, "kind": {"S": "k"}})


def _statuses(client, name: str) -> tuple[str, dict]:
    table = client.describe_table(TableName=name)["Table"]
    return table["TableStatus"], {r["RegionName"]: r["ReplicaStatus"] for r in table.get("Replicas", ())}


def test_a_policy_without_a_deny_of_replication_changes_nothing(trio):
    """Policies that allow the role, deny others, or deny the role an action
    replication does not need: the replicas stay ACTIVE and replicate."""
    name = "na_harmless"
    _global(trio, name)
    third = trio.client(2)
    third.put_resource_policy(ResourceArn=_arn(2, name), Policy=_policy(
        {"Effect": "Allow", "Principal": {"AWS": SLR}, "Action": "dynamodb:*", "Resource": _arn(2, name)},
        _deny({"AWS": f"arn:aws:iam::{ACCOUNT}:user/mallory"}, "dynamodb:*", "*"),
        _deny({"AWS": SLR}, ["dynamodb:DeleteTable", "dynamodb:TagResource"], _arn(2, name)),
        _deny({"Service": "replication.dynamodb.amazonaws.com"}, "dynamodb:PutItem", _arn(2, "another_table"))))
    _put(trio.client(0), name, "from-first")
    _put(third, name, "from-third")
    items = _converged(trio, name)
    assert {"from-first", "from-third"} <= {item["pk"]["S"] for item in items}
    time.sleep(1.5)  # more than a policy check of every region
    for i in range(3):
        status, replicas = _statuses(trio.client(i), name)
        assert status == "ACTIVE" and set(replicas.values()) == {"ACTIVE"}, (i, status, replicas)


def test_a_replica_whose_policy_denies_replication_holds_it_until_it_allows(trio):
    """A Deny of dynamodb:PutItem to the role in the third region: the third
    is REPLICATION_NOT_AUTHORIZED there and in the others' Replicas; it keeps
    taking its own clients' writes, but nothing crosses to or from it while
    the two others replicate between themselves; the policy removed, it is
    ACTIVE everywhere and every write made meanwhile reaches every region."""
    name = "na_held"
    before = _global(trio, name)
    first, second, third = (trio.client(i) for i in range(3))
    third.put_resource_policy(ResourceArn=_arn(2, name), Policy=_policy(
        _deny({"AWS": SLR}, "dynamodb:PutItem", _arn(2, name))))
    _wait_table_status(third, name, NOT_AUTHORIZED)
    _wait_replica_status(first, name, REGIONS[2], NOT_AUTHORIZED)
    _wait_replica_status(second, name, REGIONS[2], NOT_AUTHORIZED)
    assert _statuses(third, name)[1] == {REGIONS[0]: "ACTIVE", REGIONS[1]: "ACTIVE"}
    assert _statuses(first, name) == ("ACTIVE", {REGIONS[1]: "ACTIVE", REGIONS[2]: NOT_AUTHORIZED})

    _put(first, name, "during-first")
    _put(third, name, "during-third")
    third.delete_item(TableName=name, Key={"pk": {"S": "before0"}})
    middle = _converged(trio, name, indexes=(0, 1))
    time.sleep(2.0)  # a few of the replication threads' rounds: nothing crosses to or from the third
    assert [i["pk"]["S"] for i in middle] == _keys(first, name) == _keys(second, name)
    assert "during-third" not in _keys(first, name) and "before0" in _keys(first, name)
    assert _keys(third, name) == sorted([*(i["pk"]["S"] for i in before[1:]), "during-third"])

    third.delete_resource_policy(ResourceArn=_arn(2, name))
    _wait_table_status(third, name, "ACTIVE")
    for client in (first, second):
        _wait_replica_status(client, name, REGIONS[2], "ACTIVE")
    items = _converged(trio, name)
    assert [i["pk"]["S"] for i in items] == ["before1", "before2", "during-first", "during-third"]


def test_a_deny_to_the_service_principal_with_a_wildcard_counts_too(trio):
    """The service principal the guide names, any dynamodb action, every resource."""
    name = "na_service"
    _global(trio, name, items=1)
    second = trio.client(1)
    second.put_resource_policy(ResourceArn=_arn(1, name), Policy=_policy(
        _deny({"Service": "replication.dynamodb.amazonaws.com"}, "dynamodb:*", "*")))
    _wait_table_status(second, name, NOT_AUTHORIZED)
    _wait_replica_status(trio.client(0), name, REGIONS[1], NOT_AUTHORIZED)
    _wait_replica_status(trio.client(2), name, REGIONS[1], NOT_AUTHORIZED)
    _put(trio.client(0), name, "held")
    time.sleep(1.5)
    assert "held" not in _keys(second, name)
    second.delete_resource_policy(ResourceArn=_arn(1, name))
    assert [i["pk"]["S"] for i in _converged(trio, name)] == ["before0", "held"]


def test_an_mrec_replica_not_authorized_for_20_hours_becomes_a_single_region_table(trio):
    """Still denied 20 hours later (the third region's clock moved): the
    others no longer list it; its table stays, ACTIVE, regional, with its
    items; replication goes on between the others and never reaches it."""
    name = "na_removed"
    before = _global(trio, name)
    first, second, third = (trio.client(i) for i in range(3))
    third.put_resource_policy(ResourceArn=_arn(2, name), Policy=_policy(
        _deny({"AWS": SLR}, ["dynamodb:GetRecords", "dynamodb:UpdateItem"], "*")))
    _wait_table_status(third, name, NOT_AUTHORIZED)
    _wait_replica_status(first, name, REGIONS[2], NOT_AUTHORIZED)
    _put(third, name, "kept-in-third")
    try:
        with open(trio.clock_file, "w") as handle:
            handle.write(str(TWENTY_HOURS_S + 1))
        _wait_replicas(first, name, [REGIONS[1]])
        _wait_replicas(second, name, [REGIONS[0]])
        table = _wait_table_status(third, name, "ACTIVE")
    finally:
        with open(trio.clock_file, "w") as handle:
            handle.write("0")
    assert "Replicas" not in table and "GlobalTableVersion" not in table
    assert first.describe_table(TableName=name)["Table"]["GlobalTableVersion"] == "2019.11.21"
    assert _keys(third, name) == sorted([*(i["pk"]["S"] for i in before), "kept-in-third"])
    # Irreversible: the policy removed, the third stays a table of its own.
    third.delete_resource_policy(ResourceArn=_arn(2, name))
    _put(first, name, "after-first")
    _put(third, name, "after-third")
    items = _converged(trio, name, indexes=(0, 1))
    time.sleep(1.5)
    assert "after-third" not in [i["pk"]["S"] for i in items] and "kept-in-third" not in _keys(first, name)
    assert "after-first" not in _keys(third, name)
    assert _statuses(third, name) == ("ACTIVE", {})
