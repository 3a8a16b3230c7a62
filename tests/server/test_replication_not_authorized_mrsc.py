"""An MRSC replica whose resource-based policy denies the replication
service-linked role (``shoal.replication.authorization``): its writes and
strongly consistent reads answer AccessDeniedException while the other two
regions go on as a majority; allowed again, it takes part again; after seven
days (its clock moved) it is permanently so, and removing the other regions
still succeeds. Three real ``shoal serve`` regions of the US set
(``test_mrsc.Regions``), the third one's clock movable (SHOAL_TEST_CLOCK_FILE).
"""

from __future__ import annotations

import os
import time

import orjson
import pytest

from tests.server.test_mrsc import REGIONS, Regions, _error, _strong_table
from tests.server.test_global_tables import start_together
from tests.server.test_mrsc_lifecycle import _table, _until
from tests.shoal_process import ShoalProcess

NOT_AUTHORIZED = "REPLICATION_NOT_AUTHORIZED"
ACCOUNT = "000000000000"
SLR = ("arn:aws:iam::000000000000:role/aws-service-role/replication.dynamodb.amazonaws.com/"
       "AWSServiceRoleForDynamoDBReplication")
SEVEN_DAYS_S = 7 * 86400


class ClockedRegions(Regions):
    """``test_mrsc.Regions`` whose third region reads its clock's offset from a file."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self.clock_file = os.path.join(base, "clock")
        with open(self.clock_file, "w") as handle:
            handle.write("0")

    def start(self, i: int, *extra: str) -> None:
        peers = [f"--peer={region}=http://127.0.0.1:{port}"
                 for region, port in zip(REGIONS, self.ports) if region != REGIONS[i]]
        env = {"SHOAL_TEST_CLOCK_FILE": self.clock_file} if i == 2 else {}
        self.procs[i] = ShoalProcess(os.path.join(self.base, f"region{i}"), "--region", REGIONS[i], *peers, *extra,
                                     "--workers", "1", "--no-metrics", port=self.ports[i], env=env).start()


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    regions = ClockedRegions(str(tmp_path_factory.mktemp("na_mrsc")))
    start_together(regions)
    yield regions
    regions.stop()


def _replica_status(client, name: str, region: str) -> str | None:
    return next((r["ReplicaStatus"] for r in _table(client, name).get("Replicas", ()) if r["RegionName"] == region),
                None)


def _deny_policy(name: str) -> str:
    return orjson.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": SLR}, "Action": "dynamodb:PutItem",
        "Resource": f"arn:aws:dynamodb:{REGIONS[2]}:{ACCOUNT}:table/{name}"}]}).decode()


def _deny(trio, name: str) -> None:
    third = trio.client(2)
    third.put_resource_policy(ResourceArn=f"arn:aws:dynamodb:{REGIONS[2]}:{ACCOUNT}:table/{name}",
                              Policy=_deny_policy(name))
    _until(lambda: _table(third, name)["TableStatus"] == NOT_AUTHORIZED, lambda: _table(third, name))
    for i in (0, 1):
        client = trio.client(i)
        _until(lambda: _replica_status(client, name, REGIONS[2]) == NOT_AUTHORIZED, lambda: _table(client, name))


def _allow(trio, name: str) -> None:
    trio.client(2).delete_resource_policy(ResourceArn=f"arn:aws:dynamodb:{REGIONS[2]}:{ACCOUNT}:table/{name}")


def _refusals(trio, name: str) -> list:
    third = trio.once(2)
    key = {"pk": {"S": "k"}}
    return [
        _error(lambda: third.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "9"}})),
        _error(lambda: third.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v",
                                         ExpressionAttributeValues={":v": {"N": "9"}})),
        _error(lambda: third.delete_item(TableName=name, Key=key)),
        _error(lambda: third.get_item(TableName=name, Key=key, ConsistentRead=True)),
        _error(lambda: third.query(TableName=name, KeyConditionExpression="pk = :k",
                                   ExpressionAttributeValues={":k": {"S": "k"}}, ConsistentRead=True)),
        _error(lambda: third.scan(TableName=name, ConsistentRead=True)),
        _error(lambda: third.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": {"pk": {"S": "b"}}}}]})),
        _error(lambda: third.execute_statement(Statement=f"UPDATE \"{name}\" SET v = 9 WHERE pk = 'k'")),
        _error(lambda: third.execute_statement(Statement=f"SELECT * FROM \"{name}\" WHERE pk = 'k'",
                                               ConsistentRead=True)),
    ]


def test_an_mrsc_replica_not_authorized_refuses_writes_and_strong_reads(trio):
    name = "na_strong"
    _strong_table(trio, name)
    first, second, third = (trio.client(i) for i in range(3))
    first.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "1"}})
    _deny(trio, name)
    arn = f"arn:aws:dynamodb:{REGIONS[2]}:{ACCOUNT}:table/{name}"
    for code, message, status in _refusals(trio, name):
        assert (code, status) == ("AccessDeniedException", 400)
        assert message.startswith(f"Replica {arn} of a multi-Region strong consistency global table is "
                                  f"{NOT_AUTHORIZED}: its resource-based policy denies the replication "
                                  f"service-linked role {SLR}"), message
    # An eventually consistent read is the region's own table.
    assert third.get_item(TableName=name, Key={"pk": {"S": "k"}})["Item"]["v"] == {"N": "1"}
    # The other two are a majority: they write and read strongly, the third taking no part.
    first.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "2"}})
    assert second.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["v"] == {"N": "2"}
    time.sleep(1.0)
    assert third.get_item(TableName=name, Key={"pk": {"S": "k"}})["Item"]["v"] == {"N": "1"}  # nothing learnt

    _allow(trio, name)
    _until(lambda: _table(third, name)["TableStatus"] == "ACTIVE", lambda: _table(third, name))
    for client in (first, second):
        _until(lambda: _replica_status(client, name, REGIONS[2]) == "ACTIVE", lambda: _table(client, name))
    assert third.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["v"] == {"N": "2"}
    third.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "3"}})
    assert first.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["v"] == {"N": "3"}


def test_after_seven_days_an_mrsc_replica_stays_inaccessible_and_can_still_be_removed(trio):
    name = "na_strong_permanent"
    _strong_table(trio, name)
    first, third = trio.client(0), trio.client(2)
    first.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "1"}})
    _deny(trio, name)
    try:
        with open(trio.clock_file, "w") as handle:
            handle.write(str(SEVEN_DAYS_S + 1))
        time.sleep(2.5)  # a policy check or two of the third region after seven days
        _allow(trio, name)
        time.sleep(2.5)  # the checks after the policy allows again: the replica stays as it is
    finally:
        with open(trio.clock_file, "w") as handle:
            handle.write("0")
    assert _table(third, name)["TableStatus"] == NOT_AUTHORIZED
    assert _replica_status(first, name, REGIONS[2]) == NOT_AUTHORIZED
    for code, message, _status in _refusals(trio, name):
        assert code == "AccessDeniedException" and " is permanently inaccessible: " in message, message
    # Replica deletion succeeds: the first region removes both others, a single-Region table again.
    first.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}},
                                                       {"Delete": {"RegionName": REGIONS[2]}}])
    _until(lambda: not _table(first, name).get("Replicas") and _table(first, name)["TableStatus"] == "ACTIVE",
           lambda: _table(first, name))
    first.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "4"}})
    assert first.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["v"] == {"N": "4"}
