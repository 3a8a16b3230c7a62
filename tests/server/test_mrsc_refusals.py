"""An MRSC table whose replica or witness another region refuses to make:
CREATION_FAILED (as an MREC replica), strong reads and writes on with the
other two regions, and a ReplicaUpdates Delete of the other regions that
leaves a single-Region table without touching what the refusing region has.
Three real ``shoal serve`` processes of the US region set (``test_mrsc.Regions``).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid

import orjson
import pytest

from tests.server.test_mrsc import REGIONS, Regions, _create, _error
from tests.server.test_mrsc_lifecycle import _table as _describe, _until

ALL_AT_ONCE = ("One or more parameter values were invalid: Regions of a multi-Region strong consistency global "
               "table are removed all at once, leaving a single-Region table: remove {} in one UpdateTable")


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    trio = Regions(str(tmp_path_factory.mktemp("mrsc-refusals")))
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def _gone(client, name: str) -> bool:
    return name not in client.list_tables()["TableNames"]


def test_a_replica_its_region_refuses_is_creation_failed_and_leaving_mrsc_removes_it(regions):
    """us-east-2 holds a table of that name already: its replica is
    CREATION_FAILED with the reason, the table ACTIVE; us-west-2 is made
    and no longer lists us-east-2; strong writes and reads go on with the
    two; only the removal of both other regions at once is allowed, after
    which us-east-1 has a single-Region table with every write, us-west-2's
    replica is deleted and us-east-2's own table is as it was."""
    home, refusing, other = regions.client(0), regions.client(1), regions.client(2)
    name = "mrsc_refused_replica"
    refusing.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    refusing.put_item(TableName=name, Item={"pk": {"S": "theirs"}})
    _create(home, name)
    home.update_table(TableName=name, MultiRegionConsistency="STRONG",
                      ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}, {"Create": {"RegionName": REGIONS[2]}}])
    table = _until(lambda: (t := _describe(home, name))["TableStatus"] == "ACTIVE" and all(
        r["ReplicaStatus"] != "CREATING" for r in t["Replicas"]) and t, lambda: _describe(home, name))
    assert table["MultiRegionConsistency"] == "STRONG"
    assert table["Replicas"] == [
        {"RegionName": REGIONS[1], "ReplicaStatus": "CREATION_FAILED",
         "ReplicaStatusDescription": f"The replica in region {REGIONS[1]} could not be created: "
                                     f"ResourceInUseException: Table already exists: {name}"},
        {"RegionName": REGIONS[2], "ReplicaStatus": "ACTIVE"}]
    # us-west-2 is told the set without the region that refused
    _until(lambda: [r["RegionName"] for r in _describe(other, name).get("Replicas", ())] == [REGIONS[0]]
           and _describe(other, name)["TableStatus"] == "ACTIVE", lambda: _describe(other, name))
    # strong writes and reads with the two regions that have the table
    for n in range(5):
        home.put_item(TableName=name, Item={"pk": {"S": f"k{n}"}, "n": {"N": str(n)}})
    other.update_item(TableName=name, Key={"pk": {"S": "k0"}}, UpdateExpression="SET n = :n",
                      ExpressionAttributeValues={":n": {"N": "100"}})
    other.delete_item(TableName=name, Key={"pk": {"S": "k1"}})
    assert home.get_item(TableName=name, Key={"pk": {"S": "k0"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "k0"}, "n": {"N": "100"}}
    assert "Item" not in home.get_item(TableName=name, Key={"pk": {"S": "k1"}}, ConsistentRead=True)
    assert other.get_item(TableName=name, Key={"pk": {"S": "k4"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "k4"}, "n": {"N": "4"}}
    # the refusing region's table is not a replica and has nothing of ours
    theirs = _describe(refusing, name)
    assert "Replicas" not in theirs and "MultiRegionConsistency" not in theirs
    assert refusing.scan(TableName=name)["Items"] == [{"pk": {"S": "theirs"}}]
    # removals: one region alone is refused, as on any MRSC table; an Update of the failed one too
    assert _error(lambda: home.update_table(TableName=name, ReplicaUpdates=[{"Delete": {
        "RegionName": REGIONS[1]}}])) == ("ValidationException", ALL_AT_ONCE.format(f"{REGIONS[1]} and {REGIONS[2]}"),
                                          400)
    assert _error(lambda: home.update_table(TableName=name, ReplicaUpdates=[{"Update": {
        "RegionName": REGIONS[1], "TableClassOverride": "STANDARD_INFREQUENT_ACCESS"}}])) == (
        "ValidationException", f"One or more parameter values were invalid: The replica in region {REGIONS[1]} "
        "could not be created: remove it, with every other region of the multi-Region strong consistency global "
        "table, in one UpdateTable", 400)
    home.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}},
                                                      {"Delete": {"RegionName": REGIONS[2]}}])
    table = _until(lambda: (t := _describe(home, name)).get("MultiRegionConsistency") is None
                   and t["TableStatus"] == "ACTIVE" and t, lambda: _describe(home, name))
    assert "Replicas" not in table and "GlobalTableVersion" not in table
    items = home.scan(TableName=name, ConsistentRead=True)["Items"]
    assert sorted((i["pk"]["S"], i["n"]["N"]) for i in items) == [("k0", "100"), ("k2", "2"), ("k3", "3"), ("k4", "4")]
    home.put_item(TableName=name, Item={"pk": {"S": "regional"}})  # a single-Region table's own write
    _until(lambda: _gone(other, name), lambda: other.list_tables())
    time.sleep(1.0)  # nothing was sent to the region that refused
    assert refusing.scan(TableName=name)["Items"] == [{"pk": {"S": "theirs"}}]
    assert "Replicas" not in _describe(refusing, name)


def _peer_call(regions, i: int, operation: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(regions.procs[i].url + "/", data=orjson.dumps(payload), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "ShoalReplication_20261206." + operation})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, orjson.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def test_a_witness_its_region_refuses_is_creation_failed_and_leaving_mrsc_removes_it(regions):
    """us-west-2 is the witness of another table of that name already (the
    test stands for that table's region, through the peer endpoint): it
    refuses to be this table's witness, which us-east-1 shows
    CREATION_FAILED; the two replicas write and read strongly; the removal
    of the other replica and the witness leaves a single-Region table with
    every write, and us-west-2 still witnesses the other table."""
    home, replica = regions.client(0), regions.client(1)
    name = "mrsc_refused_witness"
    foreign = str(uuid.uuid4())
    assert _peer_call(regions, 2, "CreateWitness", {"TableName": name, "SourceRegion": "us-east-1",
                                                    "Id": foreign}) == (200, {})
    status, error = _peer_call(regions, 2, "CreateWitness", {"TableName": name, "SourceRegion": "us-east-1",
                                                             "Id": str(uuid.uuid4())})
    assert (status, error["__type"].rsplit("#", 1)[-1], error["message"]) == (
        400, "ResourceInUseException", f"Region {REGIONS[2]} is already the witness of another table {name}")
    _create(home, name)
    home.update_table(TableName=name, MultiRegionConsistency="STRONG",
                      ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}],
                      GlobalTableWitnessUpdates=[{"Create": {"RegionName": REGIONS[2]}}])
    table = _until(lambda: (t := _describe(home, name))["TableStatus"] == "ACTIVE"
                   and t["GlobalTableWitnesses"][0]["WitnessStatus"] != "CREATING" and t, lambda: _describe(home, name))
    assert table["GlobalTableWitnesses"] == [{"RegionName": REGIONS[2], "WitnessStatus": "CREATION_FAILED"}]
    assert table["Replicas"] == [{"RegionName": REGIONS[1], "ReplicaStatus": "ACTIVE"}]
    _until(lambda: _describe(replica, name).get("GlobalTableWitnesses") == [
        {"RegionName": REGIONS[2], "WitnessStatus": "CREATION_FAILED"}], lambda: _describe(replica, name))
    for n in range(4):
        (home if n % 2 else replica).put_item(TableName=name, Item={"pk": {"S": f"w{n}"}, "n": {"N": str(n)}})
    for client in (home, replica):
        assert [client.get_item(TableName=name, Key={"pk": {"S": f"w{n}"}}, ConsistentRead=True)["Item"]["n"]["N"]
                for n in range(4)] == ["0", "1", "2", "3"]
    assert _error(lambda: home.update_table(TableName=name, GlobalTableWitnessUpdates=[{"Delete": {
        "RegionName": REGIONS[2]}}])) == ("ValidationException", ALL_AT_ONCE.format(
            f"{REGIONS[1]} and {REGIONS[2]} (witness)"), 400)
    home.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}],
                      GlobalTableWitnessUpdates=[{"Delete": {"RegionName": REGIONS[2]}}])
    table = _until(lambda: (t := _describe(home, name)).get("MultiRegionConsistency") is None
                   and t["TableStatus"] == "ACTIVE" and t, lambda: _describe(home, name))
    assert "Replicas" not in table and "GlobalTableWitnesses" not in table
    assert sorted(i["pk"]["S"] for i in home.scan(TableName=name, ConsistentRead=True)["Items"]) == [
        "w0", "w1", "w2", "w3"]
    _until(lambda: _gone(replica, name), lambda: replica.list_tables())
    # us-west-2 was never this table's witness: the other table's record is as the test left it
    status, error = _peer_call(regions, 2, "CreateWitness", {"TableName": name, "SourceRegion": "us-east-1",
                                                             "Id": str(uuid.uuid4())})
    assert (status, error["message"]) == (400, f"Region {REGIONS[2]} is already the witness of another table {name}")
    assert _peer_call(regions, 2, "CreateWitness", {"TableName": name, "SourceRegion": "us-east-1",
                                                    "Id": foreign}) == (200, {})


def test_replicas_made_together_with_one_refused_never_replicate_into_the_refusing_regions_table(regions):
    """An eventually consistent table given two replicas in one UpdateTable,
    the first made (and told of the second while it was CREATING), the
    second refused: the made one is sent the replica set without the
    refused region, and nothing written anywhere reaches that region's own
    table, which also refuses ApplyChanges from any region outright."""
    home, refusing, other = regions.client(0), regions.client(1), regions.client(2)
    name = "mrec_refused_pair"
    refusing.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    refusing.put_item(TableName=name, Item={"pk": {"S": "theirs"}})
    _create(home, name)
    home.put_item(TableName=name, Item={"pk": {"S": "home0"}})
    home.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[2]}},
                                                      {"Create": {"RegionName": REGIONS[1]}}])
    table = _until(lambda: (t := _describe(home, name))["TableStatus"] == "ACTIVE" and all(
        r["ReplicaStatus"] != "CREATING" for r in t["Replicas"]) and t, lambda: _describe(home, name))
    assert [(r["RegionName"], r["ReplicaStatus"]) for r in table["Replicas"]] == [
        (REGIONS[2], "ACTIVE"), (REGIONS[1], "CREATION_FAILED")]
    _until(lambda: [r["RegionName"] for r in _describe(other, name).get("Replicas", ())] == [REGIONS[0]],
           lambda: _describe(other, name))
    other.put_item(TableName=name, Item={"pk": {"S": "other0"}})
    home.put_item(TableName=name, Item={"pk": {"S": "home1"}})
    _until(lambda: sorted(i["pk"]["S"] for i in home.scan(TableName=name)["Items"]) == ["home0", "home1", "other0"]
           and sorted(i["pk"]["S"] for i in other.scan(TableName=name)["Items"]) == ["home0", "home1", "other0"],
           lambda: (home.scan(TableName=name)["Items"], other.scan(TableName=name)["Items"]))
    time.sleep(1.0)
    assert refusing.scan(TableName=name)["Items"] == [{"pk": {"S": "theirs"}}]
    status, error = _peer_call(regions, 1, "ApplyChanges", {"TableName": name, "SourceRegion": REGIONS[2], "Records": [
        {"time": int(time.time() * 1000), "origin": f"{REGIONS[2]}:x", "seq": 1, "keys": {"pk": {"S": "stray"}},
         "new": {"pk": {"S": "stray"}}}]})
    assert (status, error["__type"].rsplit("#", 1)[-1], error["message"]) == (
        400, "NotAReplicaException", f"Table {name} in region {REGIONS[1]} is not a replica of a global table")
    assert refusing.scan(TableName=name)["Items"] == [{"pk": {"S": "theirs"}}]
