"""Multi-Region strong consistency across three real ``shoal serve`` processes.

The three regions are one region set (us-east-1, us-east-2, us-west-2), as
DynamoDB requires of an MRSC table.  Each test makes its own table; the
module's servers are shared, and the tests that stop a region bring it back.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import botocore.exceptions
import pytest

from tests.conftest import make_client
from tests.linearizability import Operation, check
from tests.shoal_process import ShoalProcess

REGIONS = ("us-east-1", "us-east-2", "us-west-2")
OUTSIDE = "eu-west-1"
ACTIVE_S = 30.0
CONFLICT = ("The request was rejected because one or more items in the request are being modified "
            "by a request in another Region.")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Regions:
    """Three deployments that are each other's peers."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.ports = [_free_port() for _ in REGIONS]
        self.outside_port = _free_port()
        self.procs: list[ShoalProcess | None] = [None, None, None]

    def start(self, i: int, *extra: str) -> None:
        peers = [f"--peer={region}=http://127.0.0.1:{port}"
                 for region, port in zip(REGIONS, self.ports) if region != REGIONS[i]]
        if i == 0:  # a peer in another region set, that no test starts: UpdateTable's refusal of it
            peers.append(f"--peer={OUTSIDE}=http://127.0.0.1:{self.outside_port}")
        self.procs[i] = ShoalProcess(os.path.join(self.base, f"region{i}"), "--region", REGIONS[i], *peers, *extra,
                                     "--workers", "1", "--no-metrics", port=self.ports[i]).start()

    def client(self, i: int):
        return make_client(self.procs[i].url, region=REGIONS[i])

    def once(self, i: int):
        """A client that never retries: the SDKs retry ReplicatedWriteConflictException
        and InternalServerError by themselves, and the tests look at the first answer."""
        import boto3
        from botocore.config import Config

        return boto3.client("dynamodb", endpoint_url=self.procs[i].url, region_name=REGIONS[i],
                            aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
                            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30))

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None:
                proc.stop()


def running(trio):
    """A module fixture's body: the three regions of ``trio`` started,
    ``trio`` yielded, and stopped whatever happened."""
    try:
        for i in range(3):
            trio.start(i)
        yield trio
    finally:
        trio.stop()


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    trio = Regions(str(tmp_path_factory.mktemp("mrsc")))
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def _create(client, name: str, **extra) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **extra)


def _make_strong(client, name: str) -> dict:
    return client.update_table(TableName=name, MultiRegionConsistency="STRONG",
                               ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}},
                                               {"Create": {"RegionName": REGIONS[2]}}])["TableDescription"]


def _wait_active(client, name: str) -> dict:
    deadline = time.monotonic() + ACTIVE_S
    while True:
        try:
            table = client.describe_table(TableName=name)["Table"]
        except client.exceptions.ResourceNotFoundException:
            table = None
        replicas = (table or {}).get("Replicas", ())
        if table is not None and table["TableStatus"] == "ACTIVE" and len(replicas) == 2 and all(
                r["ReplicaStatus"] == "ACTIVE" for r in replicas):
            return table
        assert time.monotonic() < deadline, table
        time.sleep(0.1)


def _strong_table(regions, name: str) -> None:
    _create(regions.client(0), name)
    _make_strong(regions.client(0), name)
    for i in range(3):
        _wait_active(regions.client(i), name)


def _error(call) -> tuple[str, str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_update_table_makes_a_strong_global_table_described_in_every_region(regions):
    name = "mrsc_describe"
    _create(regions.client(0), name)
    described = _make_strong(regions.client(0), name)
    assert described["MultiRegionConsistency"] == "STRONG"
    assert described["TableStatus"] == "UPDATING"
    assert described["GlobalTableVersion"] == "2019.11.21"
    assert described["Replicas"] == [
        {"RegionName": REGIONS[1], "ReplicaStatus": "CREATING", "ReplicaStatusPercentProgress": "0"},
        {"RegionName": REGIONS[2], "ReplicaStatus": "CREATING", "ReplicaStatusPercentProgress": "0"}]
    for i in range(3):
        table = _wait_active(regions.client(i), name)
        assert table["MultiRegionConsistency"] == "STRONG"
        assert sorted(r["RegionName"] for r in table["Replicas"]) == sorted(r for r in REGIONS if r != REGIONS[i])


def test_a_write_in_one_region_is_read_strongly_in_the_others_at_once(regions):
    name = "mrsc_read_your_write"
    _strong_table(regions, name)
    clients = [regions.client(i) for i in range(3)]
    for n in range(10):
        writer = clients[n % 3]
        item = {"pk": {"S": "k"}, "n": {"N": str(n)}}
        old = writer.put_item(TableName=name, Item=item, ReturnValues="ALL_OLD").get("Attributes")
        assert old == (None if n == 0 else {"pk": {"S": "k"}, "n": {"N": str(n - 1)}})
        for reader in clients:
            assert reader.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"] == item
    updated = clients[1].update_item(TableName=name, Key={"pk": {"S": "k"}}, UpdateExpression="ADD n :one",
                                     ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
    assert updated["Attributes"] == {"n": {"N": "10"}}
    assert clients[2].get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["n"] == {"N": "10"}
    deleted = clients[2].delete_item(TableName=name, Key={"pk": {"S": "k"}}, ReturnValues="ALL_OLD")
    assert deleted["Attributes"] == {"pk": {"S": "k"}, "n": {"N": "10"}}
    for reader in clients:
        assert "Item" not in reader.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)
    # Every region's own table (eventually consistent reads, ItemCount) follows the chosen values.
    clients[0].put_item(TableName=name, Item={"pk": {"S": "last"}, "v": {"S": "x"}})
    for reader in clients:
        assert _eventually(lambda: reader.get_item(TableName=name, Key={"pk": {"S": "last"}}).get("Item")) == {
            "pk": {"S": "last"}, "v": {"S": "x"}}
        assert _eventually(lambda: "Item" not in reader.get_item(TableName=name, Key={"pk": {"S": "k"}}))


def test_update_table_refuses_what_multi_region_strong_consistency_cannot_be(regions):
    client = regions.client(0)
    name = "mrsc_refusals"
    _create(client, name)

    def strong(*regions_, **extra):
        return lambda: client.update_table(TableName=name, MultiRegionConsistency="STRONG",
                                           ReplicaUpdates=[{"Create": {"RegionName": r}} for r in regions_], **extra)

    invalid = "One or more parameter values were invalid: "
    assert _error(lambda: client.update_table(TableName=name, MultiRegionConsistency="STRONG",
                                              BillingMode="PAY_PER_REQUEST")) == (
        "ValidationException", invalid + "MultiRegionConsistency is only valid when creating a global table "
        "with one or more Create actions in ReplicaUpdates", 400)
    three = (invalid + "A multi-Region strong consistency global table must have exactly three replicas, or two "
             "replicas and one witness: ReplicaUpdates must create two replicas in other Regions, or one replica "
             "and GlobalTableWitnessUpdates one witness")
    assert _error(strong(REGIONS[1])) == ("ValidationException", three, 400)
    witness = [{"Create": {"RegionName": REGIONS[2]}}]
    assert _error(strong(REGIONS[1], REGIONS[2], GlobalTableWitnessUpdates=witness)) == (
        "ValidationException", three, 400)
    assert _error(strong(REGIONS[1], GlobalTableWitnessUpdates=[{"Create": {"RegionName": REGIONS[1]}}])) == (
        "ValidationException", invalid + f"The witness must be in a different Region than the replicas: {REGIONS[1]}",
        400)
    assert _error(strong(REGIONS[1], GlobalTableWitnessUpdates=witness * 2)) == (  # the API model's limit
        "ValidationException", "1 validation error detected: Value '[GlobalTableWitnessGroupUpdate(create="
        "CreateGlobalTableWitnessGroupMemberAction(regionName=us-west-2), delete=null), GlobalTableWitnessGroupUpdate("
        "create=CreateGlobalTableWitnessGroupMemberAction(regionName=us-west-2), delete=null)]' at "
        "'globalTableWitnessUpdates' failed to satisfy constraint: Member must have length less than or equal to 1",
        400)
    assert _error(lambda: client.update_table(TableName=name, GlobalTableWitnessUpdates=witness)) == (
        "ValidationException", invalid + "GlobalTableWitnessUpdates is only valid when creating a multi-Region "
        "strong consistency global table (MultiRegionConsistency STRONG with ReplicaUpdates)", 400)
    assert _error(lambda: client.update_table(TableName=name, GlobalTableWitnessUpdates=[
        {"Delete": {"RegionName": REGIONS[2]}}])) == (
        "ValidationException", invalid + f"Witness does not exist in region {REGIONS[2]}", 400)
    assert _error(strong(REGIONS[1], GlobalTableWitnessUpdates=[{"Create": {"RegionName": OUTSIDE}}])) == (
        "ValidationException", invalid + "The replicas of a multi-Region strong consistency global table must be in "
        "one Region set: eu-west-1 is not in the Region set of us-east-1 (us-east-1, us-east-2, us-west-2)", 400)
    assert _error(strong(REGIONS[1], "eu-west-1")) == (
        "ValidationException", invalid + "The replicas of a multi-Region strong consistency global table must be in "
        "one Region set: eu-west-1 is not in the Region set of us-east-1 (us-east-1, us-east-2, us-west-2)", 400)

    client.put_item(TableName=name, Item={"pk": {"S": "a"}})
    assert _error(strong(REGIONS[1], REGIONS[2])) == (
        "ValidationException", invalid + "Multi-Region strong consistency can only be enabled on an empty table: "
        f"table {name} has items", 400)
    client.delete_item(TableName=name, Key={"pk": {"S": "a"}})
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    assert _error(strong(REGIONS[1], REGIONS[2])) == (
        "ValidationException", invalid + "Multi-Region strong consistency global tables do not support Time to Live: "
        f"disable it on table {name} first", 400)

    with_lsi = "mrsc_refusals_lsi"
    client.create_table(TableName=with_lsi, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "S"},
                                              {"AttributeName": "other", "AttributeType": "S"}],
                        LocalSecondaryIndexes=[{"IndexName": "by_other",
                                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                              {"AttributeName": "other", "KeyType": "RANGE"}],
                                                "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    assert _error(lambda: client.update_table(
        TableName=with_lsi, MultiRegionConsistency="STRONG",
        ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}, {"Create": {"RegionName": REGIONS[2]}}])) == (
        "ValidationException", invalid + "Multi-Region strong consistency global tables do not support local "
        "secondary indexes", 400)

    # None of it made anything: the table is still a regional one, and serves.
    table = client.describe_table(TableName=name)["Table"]
    assert "Replicas" not in table and "MultiRegionConsistency" not in table
    client.put_item(TableName=name, Item={"pk": {"S": "b"}})
    assert client.get_item(TableName=name, Key={"pk": {"S": "b"}})["Item"] == {"pk": {"S": "b"}}


def test_an_mrsc_table_refuses_more_replicas_transactions_and_time_to_live(regions):
    name = "mrsc_not_supported"
    _strong_table(regions, name)
    invalid = "One or more parameter values were invalid: "
    home = regions.client(0)
    assert _error(lambda: home.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": "us-west-1"}}])) \
        == ("ValidationException", invalid + "Replicas cannot be added to a multi-Region strong consistency global "
            "table", 400)
    for i in range(3):
        client = regions.client(i)
        assert _error(lambda: client.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": "t"}}}}])) == (
            "ValidationException", f"TransactWriteItems is not supported on multi-Region strong consistency global "
            f"tables: {name}", 400)
        assert _error(lambda: client.transact_get_items(TransactItems=[
            {"Get": {"TableName": name, "Key": {"pk": {"S": "t"}}}}])) == (
            "ValidationException", f"TransactGetItems is not supported on multi-Region strong consistency global "
            f"tables: {name}", 400)
        assert _error(lambda: client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})) == (
            "ValidationException", f"Time to Live is not supported on multi-Region strong consistency global tables: "
            f"{name}", 400)
        # ... and the table serves on.
        client.put_item(TableName=name, Item={"pk": {"S": f"after{i}"}})
        assert client.get_item(TableName=name, Key={"pk": {"S": f"after{i}"}}, ConsistentRead=True)["Item"] == {
            "pk": {"S": f"after{i}"}}


def test_conditions_and_their_failures_are_judged_on_the_latest_value_of_any_region(regions):
    name = "mrsc_conditions"
    _strong_table(regions, name)
    a, b, c = (regions.client(i) for i in range(3))
    a.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "1"}}, ConditionExpression="attribute_not_exists(pk)")
    code, message, status = _error(lambda: b.put_item(
        TableName=name, Item={"pk": {"S": "k"}, "v": {"N": "9"}}, ConditionExpression="attribute_not_exists(pk)",
        ReturnValuesOnConditionCheckFailure="ALL_OLD"))
    assert (code, message, status) == ("ConditionalCheckFailedException", "The conditional request failed", 400)
    c.update_item(TableName=name, Key={"pk": {"S": "k"}}, UpdateExpression="SET v = :two",
                  ConditionExpression="v = :one",
                  ExpressionAttributeValues={":one": {"N": "1"}, ":two": {"N": "2"}})
    assert _error(lambda: a.delete_item(TableName=name, Key={"pk": {"S": "k"}}, ConditionExpression="v = :one",
                                        ExpressionAttributeValues={":one": {"N": "1"}}))[0] == \
        "ConditionalCheckFailedException"
    assert b.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "k"}, "v": {"N": "2"}}


def _peer_call(regions, i: int, operation: str, payload: dict) -> dict:
    import json
    import urllib.request

    request = urllib.request.Request(regions.procs[i].url + "/", data=json.dumps(payload).encode(), headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "ShoalReplication_20261206." + operation})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_write_meeting_another_regions_round_gets_replicated_write_conflict(regions):
    """A round in flight elsewhere (here: a promise a proposer of the test
    obtained from two regions and never followed with an accept) is a
    conflict: ReplicatedWriteConflictException, nothing applied; the refused
    writer learns the higher ballot, and its next attempt passes it."""
    import base64

    name = "mrsc_conflict"
    _strong_table(regions, name)
    a = regions.once(0)
    a.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "before"}})
    key = base64.b64encode(b'{"pk":{"S":"k"}}').decode()
    for i in (1, 2):
        reply = _peer_call(regions, i, "Paxos", {"TableName": name, "SourceRegion": "us-west-2", "Kind": "prepare",
                                                  "Key": key, "Ballot": [10 ** 9, "test/elsewhere"]})
        assert reply["Granted"] is True and reply["Promised"] == [10 ** 9, "test/elsewhere"]
        assert base64.b64decode(reply["Value"]) == b'{"pk":{"S":"k"},"v":{"S":"before"}}'
    assert _error(lambda: a.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "lost"}})) == (
        "ReplicatedWriteConflictException", CONFLICT, 400)
    assert a.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["v"] == {"S": "before"}
    a.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "after"}})
    assert regions.client(2).get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["v"] == {
        "S": "after"}


def test_the_peer_consensus_operation_refuses_what_is_not_a_consensus_request(regions):
    import urllib.error

    name = "mrsc_bad_peer_request"
    _strong_table(regions, name)
    for payload, code in (({"TableName": name, "Kind": "promise", "Key": "e30=", "Ballot": [1, "x"]},
                           "SerializationException"),
                          ({"TableName": "not_a_table", "Kind": "prepare", "Key": "e30=", "Ballot": [1, "x"]},
                           "ResourceNotFoundException")):
        with pytest.raises(urllib.error.HTTPError) as caught:
            _peer_call(regions, 1, "Paxos", payload)
        assert caught.value.code == 400
        assert caught.value.read().decode().count(code) == 1
    regions.client(1).put_item(TableName=name, Item={"pk": {"S": "still"}})
    assert regions.client(0).get_item(TableName=name, Key={"pk": {"S": "still"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "still"}}


def _record_history(regions, name: str, ops_per_client: int, seed: int, during=None) -> list:
    """Clients in the three regions read, write and compare-and-set one
    item at once; their operations as a history for tests/linearizability.py."""
    import random

    history: list[Operation] = []
    lock = threading.Lock()
    key = {"pk": {"S": "register"}}

    def client_loop(i: int) -> None:
        client = regions.once(i)
        rng = random.Random(seed * 10 + i)
        known = [0]
        for n in range(ops_per_client):
            value = (i + 1) * 1000 + n
            kind = rng.choice(("read", "write", "cas", "cas"))
            start = time.monotonic()
            try:
                if kind == "read":
                    item = client.get_item(TableName=name, Key=key, ConsistentRead=True).get("Item")
                    result = int(item["v"]["N"]) if item else None
                    known.append(result)
                    op = Operation("read", result=result, call=start, ret=time.monotonic(), process=i)
                elif kind == "write":
                    client.put_item(TableName=name, Item={**key, "v": {"N": str(value)}})
                    op = Operation("write", value, call=start, ret=time.monotonic(), process=i)
                else:
                    expected = rng.choice(known[-3:])
                    try:
                        client.put_item(TableName=name, Item={**key, "v": {"N": str(value)}},
                                        ConditionExpression="v = :e",
                                        ExpressionAttributeValues={":e": {"N": str(expected)}})
                        swapped = True
                    except client.exceptions.ConditionalCheckFailedException:
                        swapped = False
                    op = Operation("cas", (expected, value), swapped, call=start, ret=time.monotonic(), process=i)
            except botocore.exceptions.ClientError as exc:
                code = exc.response["Error"]["Code"]
                # A conflict certainly did not apply; a 500 may have.
                status = "fail" if code == "ReplicatedWriteConflictException" else "info"
                assert code in ("ReplicatedWriteConflictException", "InternalServerError"), exc.response
                if kind == "read":
                    continue  # a read that failed saw nothing
                op = Operation(kind, value if kind == "write" else (expected, value), None, call=start,
                               status=status, process=i, **({"ret": time.monotonic()} if status == "fail" else {}))
            except botocore.exceptions.EndpointConnectionError:
                time.sleep(0.1)  # its region is down: the request was never sent
                continue
            except (botocore.exceptions.ConnectionError, botocore.exceptions.ReadTimeoutError,
                    botocore.exceptions.HTTPClientError):  # its region died with the request in it
                if kind == "read":
                    continue
                op = Operation(kind, value if kind == "write" else (expected, value), None, call=start,
                               status="info", process=i)
            with lock:
                history.append(op)

    crashed: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            client_loop(i)
        except BaseException as exc:  # a failed assertion, or an error nobody expected: the test fails
            crashed.append(exc)

    regions.once(0).put_item(TableName=name, Item={**key, "v": {"N": "0"}})
    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    if during is not None:
        during()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert not crashed, crashed
    return history


def test_concurrent_conditional_writes_from_three_regions_are_linearizable(regions):
    name = "mrsc_history"
    _strong_table(regions, name)
    history = _record_history(regions, name, ops_per_client=40, seed=1)
    result = check(history, initial=0)
    assert result.ok, result.deepest
    done = [op for op in history if op.status == "ok"]
    # The history is one a broken register could fail: writes and swaps took
    # effect from every region, and reads saw them.
    assert {op.process for op in done if op.kind == "write" or (op.kind == "cas" and op.result)} == {0, 1, 2}
    assert sum(1 for op in done if op.kind == "read") >= 10
    # Every region's table ends with the value of the last strong read (by
    # the Learn messages, which queue behind the history's on a loaded machine:
    # a CI run at -n 2 took more than 10 s once).
    final = regions.client(0).get_item(TableName=name, Key={"pk": {"S": "register"}}, ConsistentRead=True)["Item"]
    for i in range(3):
        assert _eventually(lambda: regions.client(i).get_item(
            TableName=name, Key={"pk": {"S": "register"}}).get("Item") == final, timeout=30.0)


def test_with_one_region_down_the_other_two_serve_strong_reads_and_writes(regions):
    name = "mrsc_one_down"
    _strong_table(regions, name)
    a, b = regions.once(0), regions.once(1)
    a.put_item(TableName=name, Item={"pk": {"S": "k"}, "n": {"N": "0"}})
    regions.procs[2].kill()
    try:
        for n in range(1, 6):
            writer, reader = (a, b) if n % 2 else (b, a)
            writer.update_item(TableName=name, Key={"pk": {"S": "k"}}, UpdateExpression="ADD n :one",
                               ExpressionAttributeValues={":one": {"N": "1"}})
            assert reader.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["n"] == {
                "N": str(n)}
        b.put_item(TableName=name, Item={"pk": {"S": "written while down"}})

        def status_of_down_region():
            replicas = regions.client(0).describe_table(TableName=name)["Table"]["Replicas"]
            return next(r["ReplicaStatus"] for r in replicas if r["RegionName"] == REGIONS[2])

        assert _eventually(lambda: status_of_down_region() == "REGION_DISABLED")  # DescribeTable shows it
    finally:
        regions.start(2)
    assert _eventually(lambda: status_of_down_region() == "ACTIVE")
    c = regions.once(2)
    # The region back reads the latest values strongly at once, and its own table catches up.
    assert c.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["n"] == {"N": "5"}
    assert c.get_item(TableName=name, Key={"pk": {"S": "written while down"}}, ConsistentRead=True)["Item"] == {
        "pk": {"S": "written while down"}}
    assert _eventually(lambda: c.get_item(TableName=name, Key={"pk": {"S": "k"}}).get("Item", {}).get("n") == {
        "N": "5"})
    c.put_item(TableName=name, Item={"pk": {"S": "k"}, "n": {"N": "100"}})
    assert a.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["n"] == {"N": "100"}


def test_with_two_regions_down_writes_fail_with_internal_server_error_and_leave_nothing(regions):
    name = "mrsc_two_down"
    _strong_table(regions, name)
    a = regions.once(0)
    a.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "kept"}})
    assert _eventually(lambda: regions.client(1).get_item(TableName=name, Key={"pk": {"S": "k"}}).get("Item"))
    regions.procs[1].kill()
    regions.procs[2].kill()
    unavailable = ("InternalServerError", "Internal server error: the request was not applied: 2 of 3 regions did "
                   "not answer; a majority (2) is needed", 500)
    try:
        assert _error(lambda: a.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "lost"}})) == unavailable
        assert _error(lambda: a.delete_item(TableName=name, Key={"pk": {"S": "k"}})) == unavailable
        assert _error(lambda: a.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)) == unavailable
        # An eventually consistent read is this region's own table: still served.
        assert a.get_item(TableName=name, Key={"pk": {"S": "k"}})["Item"] == {"pk": {"S": "k"}, "v": {"S": "kept"}}
    finally:
        regions.start(1)
        regions.start(2)
    for i in range(3):
        assert regions.once(i).get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"] == {
            "pk": {"S": "k"}, "v": {"S": "kept"}}
    a.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "back"}})
    assert regions.once(2).get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["v"] == {
        "S": "back"}


def _wait_witness_active(client, name: str) -> dict:
    deadline = time.monotonic() + ACTIVE_S
    while True:
        table = client.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE" and table.get("GlobalTableWitnesses") == [
                {"RegionName": REGIONS[2], "WitnessStatus": "ACTIVE"}] and all(
                r["ReplicaStatus"] == "ACTIVE" for r in table.get("Replicas", ())):
            return table
        assert time.monotonic() < deadline, table
        time.sleep(0.1)


def test_two_replicas_and_a_witness_keep_writing_with_one_replica_down(regions):
    """us-west-2 is the witness: no table there, but its votes (and the
    values it keeps) carry writes while the other replica is down."""
    name = "mrsc_witness"
    home = regions.client(0)
    _create(home, name)
    described = home.update_table(TableName=name, MultiRegionConsistency="STRONG",
                                  ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}],
                                  GlobalTableWitnessUpdates=[{"Create": {"RegionName": REGIONS[2]}}])
    described = described["TableDescription"]
    assert described["MultiRegionConsistency"] == "STRONG"
    assert described["GlobalTableWitnesses"] == [{"RegionName": REGIONS[2], "WitnessStatus": "CREATING"}]
    assert [r["RegionName"] for r in described["Replicas"]] == [REGIONS[1]]
    for i in (0, 1):
        table = _wait_witness_active(regions.client(i), name)
        assert table["MultiRegionConsistency"] == "STRONG"
        assert [r["RegionName"] for r in table["Replicas"]] == [REGIONS[1 - i]]
    witness = regions.client(2)
    code, message, status = _error(lambda: witness.describe_table(TableName=name))
    assert (code, status) == ("ResourceNotFoundException", 400)
    assert _error(lambda: witness.put_item(TableName=name, Item={"pk": {"S": "k"}}))[0] == "ResourceNotFoundException"

    a, b = regions.once(0), regions.once(1)
    a.put_item(TableName=name, Item={"pk": {"S": "k"}, "n": {"N": "1"}})
    assert b.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["n"] == {"N": "1"}
    regions.procs[1].kill()
    try:
        a.update_item(TableName=name, Key={"pk": {"S": "k"}}, UpdateExpression="ADD n :one",
                      ExpressionAttributeValues={":one": {"N": "1"}})
        assert a.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["n"] == {"N": "2"}
    finally:
        regions.start(1)
    # The value written while us-east-2 was down is in us-east-1 and the witness: a majority.
    b = regions.once(1)
    assert b.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["n"] == {"N": "2"}
    # With us-east-1 down, us-east-2 reads it from the witness and writes on.
    regions.procs[0].kill()
    try:
        b.put_item(TableName=name, Item={"pk": {"S": "k"}, "n": {"N": "3"}}, ConditionExpression="n = :two",
                   ExpressionAttributeValues={":two": {"N": "2"}})
    finally:
        regions.start(0)
    assert regions.once(0).get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]["n"] == {
        "N": "3"}


def test_a_history_with_a_region_killed_and_restarted_midway_is_linearizable(regions):
    name = "mrsc_history_kill"
    _strong_table(regions, name)

    def kill_and_restart():
        time.sleep(1.0)
        regions.procs[2].kill()
        time.sleep(2.0)
        regions.start(2)

    history = _record_history(regions, name, ops_per_client=40, seed=2, during=kill_and_restart)
    result = check(history, initial=0)
    assert result.ok, result.deepest
    assert {op.process for op in history if op.status == "ok"} == {0, 1, 2}


def test_a_history_across_a_partition_is_linearizable_and_heals(regions):
    """us-east-1 and us-west-2 cannot reach each other (--peer-pause); each
    still has a majority with us-east-2, so all three regions serve."""
    name = "mrsc_history_partition"
    _strong_table(regions, name)
    regions.procs[2].stop()
    regions.start(2, f"--peer-pause={REGIONS[0]}")
    try:
        history = _record_history(regions, name, ops_per_client=30, seed=3)
    finally:
        regions.procs[2].stop()
        regions.start(2)
    result = check(history, initial=0)
    assert result.ok, result.deepest
    assert {op.process for op in history if op.status == "ok"} == {0, 1, 2}
    final = [regions.once(i).get_item(TableName=name, Key={"pk": {"S": "register"}}, ConsistentRead=True)["Item"]
             for i in range(3)]
    assert final[0] == final[1] == final[2]


def test_batch_write_item_on_an_mrsc_table_writes_through_consensus(regions):
    """Each put and delete of a BatchWriteItem on an MRSC table is a round:
    read strongly from every region at once, and in every region's own table
    (GSI-free eventually consistent reads) once learned; a batch that also
    writes a regional table writes that one locally as before."""
    name = "mrsc_batch"
    _strong_table(regions, name)
    _create(regions.client(1), "mrsc_batch_regional")
    first = regions.client(0)
    answer = first.batch_write_item(RequestItems={
        name: [{"PutRequest": {"Item": {"pk": {"S": f"b{n}"}, "n": {"N": str(n)}}}} for n in range(5)]},
        ReturnConsumedCapacity="TOTAL")
    assert answer["UnprocessedItems"] == {}
    assert answer["ConsumedCapacity"] == [{"TableName": name, "CapacityUnits": 5.0}]
    for i in range(3):
        client = regions.client(i)
        for n in range(5):
            assert client.get_item(TableName=name, Key={"pk": {"S": f"b{n}"}}, ConsistentRead=True)["Item"] == {
                "pk": {"S": f"b{n}"}, "n": {"N": str(n)}}
    second = regions.client(1)  # the region that has the regional table
    assert second.batch_write_item(RequestItems={
        name: [{"DeleteRequest": {"Key": {"pk": {"S": "b0"}}}}, {"PutRequest": {"Item": {"pk": {"S": "b1"}}}}],
        "mrsc_batch_regional": [{"PutRequest": {"Item": {"pk": {"S": "b"}}}}]})["UnprocessedItems"] == {}
    for i in range(3):
        client = regions.client(i)
        assert "Item" not in client.get_item(TableName=name, Key={"pk": {"S": "b0"}}, ConsistentRead=True)
        assert client.get_item(TableName=name, Key={"pk": {"S": "b1"}}, ConsistentRead=True)["Item"] == {
            "pk": {"S": "b1"}}
    deadline = time.monotonic() + 20
    while [i["pk"]["S"] for i in _scan(regions.client(2), name)] != ["b1", "b2", "b3", "b4"]:
        assert time.monotonic() < deadline, _scan(regions.client(2), name)  # learned by every region's table
        time.sleep(0.1)
    assert second.get_item(TableName="mrsc_batch_regional", Key={"pk": {"S": "b"}})["Item"] == {"pk": {"S": "b"}}


def _scan(client, name: str) -> list[dict]:
    items, start = [], None
    while True:
        page = client.scan(TableName=name, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if start is None:
            return sorted(items, key=lambda item: item["pk"]["S"])


def test_writers_in_every_region_leave_every_regions_table_and_stream_with_the_chosen_values(regions):
    """Unconditional puts, updates and deletes of shared keys from the three
    regions at once: afterwards each key reads the same strongly everywhere,
    and every region's own table (eventually consistent Scan) converges to
    exactly those items; each region's stream has the other regions' writes."""
    import random

    name = "mrsc_converge"
    _strong_table(regions, name)
    stop = time.monotonic() + 3.0
    outcomes = {"ok": 0, "conflict": 0, "unknown": 0}
    lock = threading.Lock()
    crashed: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            write(i)
        except BaseException as exc:
            crashed.append(exc)

    def write(i: int) -> None:
        client, rng = regions.once(i), random.Random(i)
        n = 0
        while time.monotonic() < stop:
            n += 1
            key = {"pk": {"S": f"k{rng.randrange(12)}"}}
            try:
                if n % 5 == 0:
                    client.delete_item(TableName=name, Key=key)
                elif n % 2:
                    client.put_item(TableName=name, Item={**key, "writer": {"S": REGIONS[i]}, "n": {"N": str(n)}})
                else:
                    client.update_item(TableName=name, Key=key, UpdateExpression="SET writer = :r ADD n :one",
                                       ExpressionAttributeValues={":r": {"S": REGIONS[i]}, ":one": {"N": "1"}})
                outcome = "ok"
            except client.exceptions.ReplicatedWriteConflictException:
                outcome = "conflict"
            except client.exceptions.InternalServerError:  # met a round in its accept phase: may have applied
                outcome = "unknown"
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not crashed, crashed
    assert outcomes["ok"] > 30, outcomes
    strong_view = []
    for k in range(12):
        seen = [regions.once(i).get_item(TableName=name, Key={"pk": {"S": f"k{k}"}}, ConsistentRead=True).get("Item")
                for i in range(3)]
        assert seen[0] == seen[1] == seen[2], seen
        if seen[0] is not None:
            strong_view.append(seen[0])
    strong_view.sort(key=lambda item: item["pk"]["S"])
    for i in range(3):
        assert _eventually(lambda: _scan(regions.client(i), name) == strong_view), (i, _scan(regions.client(i), name))
        assert regions.client(i).describe_table(TableName=name)["Table"]["ItemCount"] == len(strong_view)

    # Each region's stream shows writes that other regions' clients made.
    for i in range(3):
        streams = make_client(regions.procs[i].url, service="dynamodbstreams", region=REGIONS[i])
        arn = regions.client(i).describe_table(TableName=name)["Table"]["LatestStreamArn"]
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        writers = set()
        for shard in shards:
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for _ in range(20):
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in page["Records"]:
                    image = record["dynamodb"].get("NewImage")
                    if image:
                        writers.add(image["writer"]["S"])
                iterator = page.get("NextShardIterator")
                if not iterator or not page["Records"]:
                    break
        assert writers == set(REGIONS), (i, writers)


def test_partiql_writes_on_an_mrsc_table_are_rounds_and_transactions_refused(regions):
    """INSERT, UPDATE and DELETE run as the item operations they are, so as
    consensus rounds: read strongly from every region at once; a duplicate
    INSERT is refused as DynamoDB refuses it; ExecuteTransaction is refused."""
    name = "mrsc_partiql"
    _strong_table(regions, name)
    client = regions.client(1)
    client.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    client.execute_statement(Statement=f"INSERT INTO \"{name}\" VALUE {{'pk': 'b', 'v': 5}}")
    regions.client(2).execute_statement(Statement=f"UPDATE \"{name}\" SET v = 2 WHERE pk = 'a'")
    assert regions.client(0).batch_execute_statement(Statements=[
        {"Statement": f"DELETE FROM \"{name}\" WHERE pk = 'b'"},
        {"Statement": f"INSERT INTO \"{name}\" VALUE {{'pk': 'c'}}"}])["Responses"] == [{"TableName": name}] * 2
    assert _error(lambda: client.execute_statement(Statement=f"INSERT INTO \"{name}\" VALUE {{'pk': 'a'}}"))[:2] == (
        "DuplicateItemException", "Duplicate primary key exists in table")
    for i in range(3):
        other = regions.client(i)
        assert other.get_item(TableName=name, Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]["v"] == {"N": "2"}
        assert "Item" not in other.get_item(TableName=name, Key={"pk": {"S": "b"}}, ConsistentRead=True)
        assert other.get_item(TableName=name, Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"] == {
            "pk": {"S": "c"}}
    assert _error(lambda: client.execute_transaction(TransactStatements=[
        {"Statement": f"SELECT * FROM \"{name}\" WHERE pk = 'a'"}])) == (
        "ValidationException", f"ExecuteTransaction is not supported on multi-Region strong consistency global "
        f"tables: {name}", 400)
    # A SELECT reads this region's table; a syntax error is the operation's own.
    assert _eventually(lambda: client.execute_statement(Statement=f"SELECT * FROM \"{name}\" WHERE pk = 'a'")[
        "Items"] == [{"pk": {"S": "a"}, "v": {"N": "2"}}])
    assert _error(lambda: client.execute_statement(Statement=f"UPDATE \"{name}\" SET"))[0] == "ValidationException"


def test_with_auth_on_the_consensus_messages_must_be_signed_by_an_allowed_identity(tmp_path):
    """Paxos and Learn are peer operations like the others: SigV4 signed
    (--peer-credentials) by an identity allowed shoal:Replicate."""
    import json
    import urllib.error
    import urllib.request

    from shoal.replication.node import PeerClient
    from tests.shoal_process import root_credentials

    server = ShoalProcess(tmp_path / "auth", "--region", REGIONS[0], "--auth", "sigv4", "--workers", "1",
                          "--no-metrics").start()
    try:
        for operation, payload in (
                ("Paxos", {"TableName": "nothing", "SourceRegion": REGIONS[1], "Kind": "prepare", "Key": "e30=",
                           "Ballot": [1, "x"]}),
                ("Learn", {"TableName": "nothing", "SourceRegion": REGIONS[1], "Key": "{}", "Ballot": [1, "x"],
                           "Value": None})):
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/x-amz-json-1.0",
                       "X-Amz-Target": "ShoalReplication_20261206." + operation}

            def post(headers):
                request = urllib.request.Request(server.url + "/", data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        return response.status, json.loads(response.read())
                except urllib.error.HTTPError as exc:
                    return exc.code, json.loads(exc.read())

            status, answer = post(headers)
            assert (status, answer["__type"].rsplit("#", 1)[1]) == (400, "MissingAuthenticationTokenException")
            signed = PeerClient(REGIONS[0], server.url, REGIONS[1], ("AKIDNOBODY", "secret"))._signed(headers, body)
            status, answer = post(signed)
            assert (status, answer["__type"].rsplit("#", 1)[1]) == (400, "UnrecognizedClientException")
            root = root_credentials(tmp_path / "auth")
            status, answer = post(PeerClient(REGIONS[0], server.url, REGIONS[1], root)._signed(headers, body))
            assert (status, answer["__type"].rsplit("#", 1)[1], answer["message"]) == (  # past authentication
                400, "ResourceNotFoundException", "Requested resource not found: Table: nothing is not a "
                "multi-Region strong consistency replica here")
    finally:
        server.stop()


# ---------------------------------------------------------------- leaving MRSC: a single-Region table again


def _wait_regional(client, name: str) -> dict:
    deadline = time.monotonic() + ACTIVE_S
    while True:
        table = client.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE" and "Replicas" not in table:
            return table
        assert time.monotonic() < deadline, table
        time.sleep(0.1)


def _wait_gone(client, name: str) -> None:
    deadline = time.monotonic() + ACTIVE_S
    while True:
        try:
            client.describe_table(TableName=name)
        except client.exceptions.ResourceNotFoundException:
            return
        assert time.monotonic() < deadline, name
        time.sleep(0.1)


def _items(client, name: str) -> dict:
    return {item["pk"]["S"]: item.get("v", {}).get("S") for item in _scan(client, name)}


def test_removing_both_other_replicas_keeps_every_chosen_value_in_the_region_that_stays(regions):
    """us-east-1 stays.  It is cut off from us-east-2 (--peer-pause) while
    us-east-2 writes with us-west-2: those values are chosen without it, and
    their Learn messages never reach it.  Removing the other two replicas
    seals us-east-1 and one removed region that answers (us-west-2: us-east-2
    is cut off), takes every register's latest value from the two, and leaves
    a single-Region table holding all of them."""
    name = "mrsc_leave"
    _strong_table(regions, name)
    home = regions.client(0)
    invalid = "One or more parameter values were invalid: "
    # DynamoDB's rule: the other regions go all at once (a single replica cannot be removed)
    alone = (invalid + "Regions of a multi-Region strong consistency global table are removed all at once, leaving a "
             f"single-Region table: remove {REGIONS[1]} and {REGIONS[2]} in one UpdateTable")
    assert _error(lambda: home.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}])) \
        == ("ValidationException", alone, 400)
    assert _error(lambda: home.update_table(TableName=name, ReplicaUpdates=[
        {"Delete": {"RegionName": REGIONS[1]}}, {"Delete": {"RegionName": REGIONS[2]}}],
        GlobalTableWitnessUpdates=[{"Delete": {"RegionName": REGIONS[2]}}])) == (
        "ValidationException", invalid + f"Witness does not exist in region {REGIONS[2]}", 400)
    assert _error(lambda: home.update_table(TableName=name, ReplicaUpdates=[
        {"Delete": {"RegionName": REGIONS[0]}}, {"Delete": {"RegionName": REGIONS[1]}}])) == (
        "ValidationException", invalid + f"Replica region {REGIONS[0]} is the region of the table itself", 400)
    assert _error(lambda: home.update_table(TableName=name, ReplicaUpdates=[
        {"Update": {"RegionName": REGIONS[1], "KMSMasterKeyId": "k"}}, {"Delete": {"RegionName": REGIONS[2]}}])) == (
        "ValidationException", invalid + "ReplicaUpdates of a multi-Region strong consistency global table either "
        "update replicas or remove the other regions, not both in one UpdateTable", 400)
    assert _wait_active(home, name)["MultiRegionConsistency"] == "STRONG"  # untouched by the refusals

    home.put_item(TableName=name, Item={"pk": {"S": "gone"}, "v": {"S": "0"}})
    home.put_item(TableName=name, Item={"pk": {"S": "kept"}, "v": {"S": "0"}})
    regions.procs[0].stop()
    regions.start(0, f"--peer-pause={REGIONS[1]}")
    try:
        home, east2 = regions.client(0), regions.once(1)
        east2.put_item(TableName=name, Item={"pk": {"S": "kept"}, "v": {"S": "1"}})
        east2.put_item(TableName=name, Item={"pk": {"S": "new"}, "v": {"S": "1"}})
        east2.delete_item(TableName=name, Key={"pk": {"S": "gone"}})
        regions.once(2).put_item(TableName=name, Item={"pk": {"S": "west"}, "v": {"S": "2"}})
        # us-east-1's own table has not seen us-east-2's writes (their Learn could not reach it)
        assert _items(home, name)["kept"] == "0" and "new" not in _items(home, name)
        described = home.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}},
                                                                      {"Delete": {"RegionName": REGIONS[2]}}])
        described = described["TableDescription"]
        assert described["TableStatus"] == "UPDATING"
        assert [(r["RegionName"], r["ReplicaStatus"]) for r in described["Replicas"]] == [
            (REGIONS[1], "DELETING"), (REGIONS[2], "DELETING")]
        table = _wait_regional(home, name)
        assert "MultiRegionConsistency" not in table and "GlobalTableVersion" not in table
        assert _items(home, name) == {"kept": "1", "new": "1", "west": "2"}
    finally:
        regions.procs[0].stop()
        regions.start(0)
    for i in (1, 2):  # their tables are deleted (us-east-2's once it can be reached)
        _wait_gone(regions.client(i), name)
    # A regional table now: plain writes, and the others write nothing into it
    home = regions.client(0)
    home.put_item(TableName=name, Item={"pk": {"S": "after"}, "v": {"S": "3"}})
    assert home.get_item(TableName=name, Key={"pk": {"S": "after"}}, ConsistentRead=True)["Item"]["v"] == {"S": "3"}
    assert _items(home, name) == {"kept": "1", "new": "1", "west": "2", "after": "3"}


def test_a_replica_and_the_witness_are_removed_together_through_the_witness(regions):
    """Two replicas and a witness (us-west-2).  us-east-2 writes with the
    witness while us-east-1 is cut off from it, then goes down: the removal,
    asked in us-east-1, seals the witness and takes us-east-2's values from it."""
    name = "mrsc_leave_witness"
    home = regions.client(0)
    _create(home, name)
    home.update_table(TableName=name, MultiRegionConsistency="STRONG",
                      ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}],
                      GlobalTableWitnessUpdates=[{"Create": {"RegionName": REGIONS[2]}}])
    for i in (0, 1):
        _wait_witness_active(regions.client(i), name)
    invalid = "One or more parameter values were invalid: "
    together = (invalid + "Regions of a multi-Region strong consistency global table are removed all at once, "
                f"leaving a single-Region table: remove {REGIONS[1]} and {REGIONS[2]} (witness) in one UpdateTable")
    assert _error(lambda: home.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}])) \
        == ("ValidationException", together, 400)
    assert _error(lambda: home.update_table(TableName=name, GlobalTableWitnessUpdates=[
        {"Delete": {"RegionName": REGIONS[2]}}])) == ("ValidationException", together, 400)
    home.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"S": "0"}})

    regions.procs[0].stop()
    regions.start(0, f"--peer-pause={REGIONS[1]}")
    try:
        regions.once(1).put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"S": "1"}})
        regions.once(1).put_item(TableName=name, Item={"pk": {"S": "b"}, "v": {"S": "1"}})
        regions.procs[1].kill()
        home = regions.client(0)
        assert _items(home, name) == {"a": "0"}
        home.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}],
                          GlobalTableWitnessUpdates=[{"Delete": {"RegionName": REGIONS[2]}}])
        table = _wait_regional(home, name)
        assert "GlobalTableWitnesses" not in table and "MultiRegionConsistency" not in table
        assert _items(home, name) == {"a": "1", "b": "1"}
    finally:
        regions.procs[0].stop()
        regions.start(0)
        if regions.procs[1].proc is None:  # killed above
            regions.start(1)
    _wait_gone(regions.client(1), name)

    def witness_forgot() -> bool:
        import urllib.error

        try:
            _peer_call(regions, 2, "Registers", {"TableName": name, "SourceRegion": REGIONS[0]})
        except urllib.error.HTTPError as exc:
            return exc.code == 400 and "ResourceNotFoundException" in exc.read().decode()
        return False

    assert _eventually(witness_forgot, ACTIVE_S)
