"""Global tables across three real ``shoal serve`` processes, one region each.

The third region's clock runs a minute behind (SHOAL_TEST_CLOCK_FILE), so
that last writer wins is decided by the writes' times and not by the order
they happen to arrive in.
"""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.error
import urllib.request

import botocore.exceptions
import orjson
import pytest

from tests.conftest import make_client
from tests.shoal_process import ShoalProcess, free_port, root_credentials

REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
SKEW_S = -60.0  # the third region's clock
CONVERGE_S = 30.0


class Regions:
    """Three deployments that are each other's peers; with ``skew``, the
    third one's clock runs SKEW_S behind; ``env``: variables for every one."""

    def __init__(self, base, *, skew: bool = True, env: dict | None = None, clock_s: float = SKEW_S) -> None:
        self.base = base
        self.ports = [free_port() for _ in REGIONS]
        self.clock_file = os.path.join(base, "clock-behind")  # the third region's clock, clock_s off
        with open(self.clock_file, "w") as handle:
            handle.write(str(clock_s))
        self.skew = skew
        self.env = dict(env or {})
        self.procs: list[ShoalProcess | None] = [None, None, None]

    def start(self, i: int) -> None:
        peers = [f"--peer={region}=http://127.0.0.1:{port}"
                 for region, port in zip(REGIONS, self.ports) if region != REGIONS[i]]
        env = dict(self.env)
        if self.skew and i == 2:
            env["SHOAL_TEST_CLOCK_FILE"] = self.clock_file
        # Metrics off: they are not what is tested, and three servers share two cores.
        self.procs[i] = ShoalProcess(os.path.join(self.base, f"region{i}"), "--region", REGIONS[i], *peers,
                                     "--workers", "1", "--no-metrics", port=self.ports[i], env=env).start()

    def client(self, i: int, service: str = "dynamodb"):
        return make_client(self.procs[i].url, service=service, region=REGIONS[i])

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None:
                proc.stop()


def start_together(trio):
    """Start the three regions of ``trio`` (anything with ``start(i)``,
    ``procs`` and ``stop()``) at once; fail the module if one did not."""
    starting = [threading.Thread(target=trio.start, args=(i,)) for i in range(3)]
    for thread in starting:
        thread.start()
    for thread in starting:
        thread.join()
    if not all(trio.procs):
        trio.stop()
        pytest.fail("a region did not start")
    return trio


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    trio = Regions(str(tmp_path_factory.mktemp("global")))
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def _create(client, name: str) -> None:
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "kind", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])


def _scan(client, name: str) -> list[dict]:
    items, start = [], None
    while True:
        page = client.scan(TableName=name, ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if start is None:
            return sorted(items, key=lambda item: item["pk"]["S"])


def _wait_active(client, name: str, timeout: float = CONVERGE_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        table = client.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE" and all(r["ReplicaStatus"] == "ACTIVE" for r in table.get("Replicas", ())):
            return table
        assert time.monotonic() < deadline, table
        time.sleep(0.1)


def _converged(regions, name: str, indexes=(0, 1, 2), timeout: float = CONVERGE_S) -> list[dict]:
    """The table's items once every region holds the same ones."""
    deadline = time.monotonic() + timeout
    while True:
        scans = [_scan(regions.client(i), name) for i in indexes]
        if all(scan == scans[0] for scan in scans):
            return scans[0]
        assert time.monotonic() < deadline, [len(scan) for scan in scans]
        time.sleep(0.2)


def _add_replica(client, name: str, region: str) -> dict:
    return client.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": region}}])["TableDescription"]


class Writer(threading.Thread):
    """Puts, updates and deletes items of its own keys in one region and
    remembers each key's last acknowledged state (None: deleted)."""

    def __init__(self, regions, i: int, name: str, prefix: str, keys: int = 40) -> None:
        super().__init__(daemon=True)
        self.client = regions.client(i)
        self.name, self.prefix, self.keys = name, prefix, keys
        self.acked: dict[str, int | None] = {}
        self.in_flight: tuple[str, int | None] | None = None
        self.stop = threading.Event()
        self.failed: Exception | None = None
        self.random = random.Random(prefix)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            key = f"{self.prefix}{self.random.randrange(self.keys)}"
            n += 1
            value = None if n % 7 == 0 else n
            self.in_flight = (key, value)
            try:
                if value is None:
                    self.client.delete_item(TableName=self.name, Key={"pk": {"S": key}})
                elif n % 2:
                    self.client.put_item(TableName=self.name, Item={"pk": {"S": key}, "kind": {"S": self.prefix},
                                                                    "n": {"N": str(n)}})
                else:
                    self.client.update_item(TableName=self.name, Key={"pk": {"S": key}},
                                            UpdateExpression="SET n = :n, kind = :k",
                                            ExpressionAttributeValues={":n": {"N": str(n)}, ":k": {"S": self.prefix}})
            except Exception as exc:  # the region was killed: stop here
                self.failed = exc
                return
            self.acked[key] = value
            self.in_flight = None

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)


def _check_writer(items: list[dict], writer: Writer, may_have_lost_in_flight: bool = False) -> None:
    """Every key holds what its writer last had acknowledged (or, for a
    killed region, what it was writing when it died)."""
    held = {item["pk"]["S"]: int(item["n"]["N"]) for item in items if item["pk"]["S"].startswith(writer.prefix)}
    for key, value in writer.acked.items():
        allowed = {value}
        if may_have_lost_in_flight and writer.in_flight is not None and writer.in_flight[0] == key:
            allowed.add(writer.in_flight[1])
        assert held.get(key) in allowed, (key, held.get(key), value)
    assert set(held) <= set(writer.acked) | ({writer.in_flight[0]} if writer.in_flight else set())


def test_replicas_made_while_writing_converge_under_writers_in_every_region(regions):
    name = "viewer_events"
    home = regions.client(0)
    _create(home, name)
    for first in range(0, 300, 25):
        assert home.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": f"old{n}"}, "kind": {"S": "old"}, "n": {"N": str(n)}}}}
            for n in range(first, first + 25)]})["UnprocessedItems"] == {}
    home.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})

    during_copy = Writer(regions, 0, name, "copy", keys=400)
    during_copy.start()
    described = _add_replica(home, name, REGIONS[1])
    assert described["TableStatus"] == "UPDATING"
    assert described["GlobalTableVersion"] == "2019.11.21"
    assert described["Replicas"] == [{"RegionName": REGIONS[1], "ReplicaStatus": "CREATING",
                                      "ReplicaStatusPercentProgress": "0"}]
    assert described["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    _wait_active(home, name)
    _add_replica(home, name, REGIONS[2])
    _wait_active(home, name)
    during_copy.finish()
    assert during_copy.failed is None

    for i in range(3):
        table = _wait_active(regions.client(i), name)
        assert table["GlobalTableVersion"] == "2019.11.21"
        assert sorted(r["RegionName"] for r in table["Replicas"]) == sorted(r for r in REGIONS if r != REGIONS[i])
        assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
        assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == ["by_kind"]
        assert regions.client(i).describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {
            "TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}

    writers = [Writer(regions, i, name, f"r{i}-") for i in range(3)]
    shared = [Writer(regions, i, name, "shared", keys=10) for i in range(3)]  # the same keys everywhere
    for writer in writers + shared:
        writer.start()
    time.sleep(3)
    for writer in writers + shared:
        writer.finish()
        assert writer.failed is None

    items = _converged(regions, name)
    assert sum(item["pk"]["S"].startswith("old") for item in items) == 300
    _check_writer(items, during_copy)
    for writer in writers:
        _check_writer(items, writer)
    for i in range(3):  # the replicated writes are in every region's index too
        page = regions.client(i).query(TableName=name, IndexName="by_kind", KeyConditionExpression="kind = :k",
                                       ExpressionAttributeValues={":k": {"S": "r1-"}})
        assert sorted(item["pk"]["S"] for item in page["Items"]) == sorted(
            item["pk"]["S"] for item in items if item["pk"]["S"].startswith("r1-"))
    counts = [regions.client(i).describe_table(TableName=name)["Table"]["ItemCount"] for i in range(3)]
    assert counts == [len(items)] * 3


def _global_table(regions, name: str) -> None:
    _create(regions.client(0), name)
    for region in REGIONS[1:]:
        _add_replica(regions.client(0), name, region)
        _wait_active(regions.client(0), name)


def _item(client, name: str, key: str) -> dict | None:
    return client.get_item(TableName=name, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")


def test_last_writer_wins_by_write_time_and_a_delete_is_not_undone_by_an_older_update(regions):
    name = "conflicts"
    _global_table(regions, name)
    behind, ahead = regions.client(2), regions.client(1)
    # The region behind writes first, the other a moment later: both before
    # either has the other's write.  The later time wins in every region,
    # although the region ahead receives the older write after its own.
    for n in range(5):
        behind.put_item(TableName=name, Item={"pk": {"S": f"c{n}"}, "kind": {"S": "x"}, "by": {"S": "behind"}})
        ahead.put_item(TableName=name, Item={"pk": {"S": f"c{n}"}, "kind": {"S": "x"}, "by": {"S": "ahead"}})
    # An update made in the region behind, then a delete made in the other:
    # the update is older, and must not bring the item back where it arrives last.
    ahead.put_item(TableName=name, Item={"pk": {"S": "gone"}, "kind": {"S": "x"}})
    _converged(regions, name)
    behind.update_item(TableName=name, Key={"pk": {"S": "gone"}}, UpdateExpression="SET late = :t",
                       ExpressionAttributeValues={":t": {"BOOL": True}})
    ahead.delete_item(TableName=name, Key={"pk": {"S": "gone"}})
    items = _converged(regions, name)
    assert [(item["pk"]["S"], item["by"]["S"]) for item in items] == [(f"c{n}", "ahead") for n in range(5)]
    time.sleep(1)  # anything still on its way changes nothing
    assert all(_item(regions.client(i), name, "gone") is None for i in range(3))
    # A write made after the newer one was seen wins, even from the clock behind.
    behind.put_item(TableName=name, Item={"pk": {"S": "c0"}, "kind": {"S": "x"}, "by": {"S": "behind-later"}})
    items = _converged(regions, name)
    assert items[0]["by"] == {"S": "behind-later"}


def test_a_transaction_is_applied_whole_in_every_region(regions):
    name = "transfers"
    _global_table(regions, name)
    home = regions.client(0)
    seen = []
    stop = threading.Event()

    def watch(i: int) -> None:  # the pair's two items never differ in a region
        client = regions.client(i)
        while not stop.is_set():
            page = client.batch_get_item(RequestItems={name: {"Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}],
                                                              "ConsistentRead": True}})
            got = {item["pk"]["S"]: item["n"]["N"] for item in page["Responses"][name]}
            seen.append((i, got.get("a"), got.get("b")))

    watchers = [threading.Thread(target=watch, args=(i,)) for i in (1, 2)]
    for watcher in watchers:
        watcher.start()
    for n in range(60):
        home.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": "a"}, "kind": {"S": "t"}, "n": {"N": str(n)}}}},
            {"Put": {"TableName": name, "Item": {"pk": {"S": "b"}, "kind": {"S": "t"}, "n": {"N": str(n)}}}}])
    _converged(regions, name)
    stop.set()
    for watcher in watchers:
        watcher.join()
    assert seen and all(a == b for _, a, b in seen), [s for s in seen if s[1] != s[2]][:5]
    assert {(a, b) for i, a, b in seen if a is not None} >= {("59", "59")}


def test_deleting_a_replica_deletes_its_table_and_stops_replicating_to_it(regions):
    name = "shrinking"
    _global_table(regions, name)
    home = regions.client(0)
    home.put_item(TableName=name, Item={"pk": {"S": "before"}, "kind": {"S": "x"}})
    _converged(regions, name)
    described = home.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[2]}}])
    assert [r["RegionName"] for r in described["TableDescription"]["Replicas"]] == [REGIONS[1]]
    deadline = time.monotonic() + CONVERGE_S
    while True:
        try:
            regions.client(2).describe_table(TableName=name)
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    deadline = time.monotonic() + CONVERGE_S
    while [r["RegionName"] for r in regions.client(1).describe_table(TableName=name)["Table"]["Replicas"]] != [REGIONS[0]]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    home.put_item(TableName=name, Item={"pk": {"S": "after"}, "kind": {"S": "x"}})
    items = _converged(regions, name, indexes=(0, 1))
    assert [item["pk"]["S"] for item in items] == ["after", "before"]
    # DeleteTable in a replica's region: that replica leaves, and the last
    # one left is a regional table again.
    regions.client(1).delete_table(TableName=name)
    deadline = time.monotonic() + CONVERGE_S
    while "Replicas" in (table := home.describe_table(TableName=name)["Table"]):
        assert time.monotonic() < deadline, table["Replicas"]
        time.sleep(0.1)
    assert "GlobalTableVersion" not in table and table["TableStatus"] == "ACTIVE"
    home.put_item(TableName=name, Item={"pk": {"S": "alone"}, "kind": {"S": "x"}})
    assert [item["pk"]["S"] for item in _scan(home, name)] == ["after", "alone", "before"]


def test_a_region_killed_mid_load_comes_back_and_converges(regions):
    name = "survivor"
    _global_table(regions, name)
    writers = [Writer(regions, i, name, f"k{i}-") for i in range(3)]
    for writer in writers:
        writer.start()
    time.sleep(1.0)
    regions.procs[1].kill()
    time.sleep(1.0)  # the others go on writing, and keep what region 1 has not had
    _wait_replica(regions.client(0), name, REGIONS[1], "REGION_DISABLED")
    for writer in writers:
        writer.finish()
    assert writers[0].failed is None and writers[2].failed is None
    regions.start(1)
    items = _converged(regions, name)
    _check_writer(items, writers[0])
    _check_writer(items, writers[2])
    _check_writer(items, writers[1], may_have_lost_in_flight=True)
    for i in (0, 2):
        _wait_replica(regions.client(i), name, REGIONS[1], "ACTIVE")


def _error(call) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_refusals(regions):
    home = regions.client(0)
    _create(home, "refused")
    update = lambda *updates: lambda: home.update_table(TableName="refused", ReplicaUpdates=list(updates))
    assert _error(update({"Create": {"RegionName": "sa-east-1"}})) == (
        "ValidationException", "One or more parameter values were invalid: Region sa-east-1 is not a peer of this "
        "deployment (shoal serve --peer sa-east-1=URL)")
    assert _error(update({"Create": {"RegionName": REGIONS[0]}})) == (
        "ValidationException", f"One or more parameter values were invalid: Replica region {REGIONS[0]} is the "
        "region of the table itself")
    assert _error(update({"Delete": {"RegionName": REGIONS[1]}})) == (
        "ValidationException", f"One or more parameter values were invalid: Replica does not exist in region "
        f"{REGIONS[1]}")
    home.update_table(TableName="refused", StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    assert _error(update({"Create": {"RegionName": REGIONS[1]}})) == (
        "ValidationException", "One or more parameter values were invalid: Table refused has a stream of view type "
        "KEYS_ONLY: a global table's replicas need NEW_AND_OLD_IMAGES (disable the stream, or enable it with "
        "NEW_AND_OLD_IMAGES)")
    # A request signed for another region than the deployment's home.
    elsewhere = make_client(regions.procs[0].url, region=REGIONS[1])
    assert _error(elsewhere.list_tables) == (
        "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{REGIONS[1]}'. ")


def test_with_auth_on_peer_requests_must_be_signed_by_an_allowed_identity(tmp_path):
    server = ShoalProcess(tmp_path / "auth", "--region", REGIONS[0], "--auth", "sigv4", "--workers", "1",
                          "--no-metrics").start()
    try:
        body = orjson.dumps({"TableName": "nothing", "SourceRegion": REGIONS[1], "Replicas": []})
        headers = {"Content-Type": "application/x-amz-json-1.0",
                   "X-Amz-Target": "ShoalReplication_20261206.SyncReplicas"}

        def post(headers):
            request = urllib.request.Request(server.url + "/", data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, orjson.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, orjson.loads(exc.read())

        status, answer = post(headers)
        assert status == 400 and answer["__type"].endswith("#MissingAuthenticationTokenException")
        from shoal.replication.node import PeerClient

        signed = PeerClient(REGIONS[0], server.url, REGIONS[1], ("AKIDNOBODY", "secret"))._signed(headers, body)
        status, answer = post(signed)
        assert status == 400 and answer["__type"].endswith("#UnrecognizedClientException")
        signed = PeerClient(REGIONS[0], server.url, REGIONS[1], root_credentials(tmp_path / "auth"))._signed(headers, body)
        status, answer = post(signed)  # past authentication: the table is what is missing
        assert (status, answer["__type"].rsplit("#", 1)[1], answer["message"]) == (
            400, "ResourceNotFoundException", "Requested resource not found: Table: nothing not found")
    finally:
        server.stop()


# ---------------------------------------------------------------- a partition (--peer-pause), metrics


class Pair:
    """Two regions that are each other's peers, metrics on; the first can
    be restarted with ``--peer-pause`` for the second (a network cut)."""

    def __init__(self, base) -> None:
        self.base = base
        self.regions = REGIONS[:2]
        self.ports = [free_port() for _ in self.regions]
        self.procs: list[ShoalProcess | None] = [None, None]

    def start(self, i: int, *extra: str) -> None:
        other = 1 - i
        self.procs[i] = ShoalProcess(os.path.join(self.base, f"pair{i}"), "--region", self.regions[i],
                                     f"--peer={self.regions[other]}=http://127.0.0.1:{self.ports[other]}",
                                     "--workers", "1", *extra, port=self.ports[i]).start()

    def restart(self, i: int, *extra: str) -> None:
        self.procs[i].stop()
        self.start(i, *extra)

    def client(self, i: int, service: str = "dynamodb"):
        return make_client(self.procs[i].url, service, region=self.regions[i])

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None:
                proc.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    two = Pair(str(tmp_path_factory.mktemp("pair")))
    for i in range(2):
        two.start(i)
    yield two
    two.stop()


def _replica_status(client, name: str, region: str) -> dict:
    table = client.describe_table(TableName=name)["Table"]
    return next(r for r in table["Replicas"] if r["RegionName"] == region)


def _wait_replica(client, name: str, region: str, status: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        replica = _replica_status(client, name, region)
        if replica["ReplicaStatus"] == status:
            return replica
        assert time.monotonic() < deadline, replica
        time.sleep(0.2)


def _statistics(cloudwatch, metric: str, name: str, receiving: str, unit: str) -> dict:
    """Every datapoint of the last ten minutes, summed up (SampleCount, Maximum, Minimum)."""
    now = time.time()
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/DynamoDB", MetricName=metric, StartTime=now - 600, EndTime=now + 60, Period=60,
        Dimensions=[{"Name": "TableName", "Value": name}, {"Name": "ReceivingRegion", "Value": receiving}],
        Statistics=["SampleCount", "Maximum", "Minimum"], Unit=unit)["Datapoints"]
    if not points:
        return {}
    assert all(p["Unit"] == unit for p in points)
    return {"SampleCount": sum(p["SampleCount"] for p in points), "Maximum": max(p["Maximum"] for p in points),
            "Minimum": min(p["Minimum"] for p in points)}


def _wait_statistics(cloudwatch, metric, name, receiving, unit, done, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = _statistics(cloudwatch, metric, name, receiving, unit)
        if stats and done(stats):
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.3)


def _put(client, name: str, key: str, by: str) -> None:
    client.put_item(TableName=name, Item={"pk": {"S": key}, "kind": {"S": "k"}, "by": {"S": by}})


def test_a_partition_heals_with_convergence_and_is_seen_in_describe_table_and_the_metrics(pair):
    name = "partitioned"
    east, west = pair.client(0), pair.client(1)
    _create(east, name)
    east.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": pair.regions[1]}}])
    _wait_active(east, name)
    _wait_active(west, name)
    for n in range(5):
        _put(east, name, f"before{n}", "east")
    _converged(pair, name, indexes=(0, 1))
    # one ReplicationLatency value per write sent, in the sender's region, by receiving region
    latency = _wait_statistics(pair.client(0, "cloudwatch"), "ReplicationLatency", name, pair.regions[1],
                               "Milliseconds", lambda s: s["SampleCount"] >= 5)
    assert latency["SampleCount"] == 5 and 0 <= latency["Minimum"] <= latency["Maximum"] < 30_000
    assert _statistics(pair.client(1, "cloudwatch"), "ReplicationLatency", name, pair.regions[0],
                       "Milliseconds") == {}  # the west wrote nothing

    # The cut begins when the east stops: the west's first failed call (its
    # ReplicaInaccessibleDateTime) may come while the east is still starting
    # again, which took over 5 s on a loaded machine.
    cut_at = time.time()
    pair.restart(0, f"--peer-pause={pair.regions[1]}")
    east = pair.client(0)
    for n in range(20):
        _put(east, name, f"east{n}", "east")
        _put(west, name, f"west{n}", "west")
    _put(east, name, "both", "east")
    time.sleep(0.01)
    _put(west, name, "both", "west")  # the later write: it wins everywhere once healed
    writes_done = time.time()
    east_sees = _wait_replica(east, name, pair.regions[1], "REGION_DISABLED")
    west_sees = _wait_replica(west, name, pair.regions[0], "REGION_DISABLED")
    for seen in (east_sees, west_sees):
        # rounded to the millisecond, so up to half of one either side of the times it lies between
        assert cut_at - 0.001 <= seen["ReplicaInaccessibleDateTime"].timestamp() <= time.time() + 0.001
    assert east_sees["ReplicaStatusDescription"].startswith(f"Region {pair.regions[1]} has not answered since ")
    assert east.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    # the paused side refuses its peer's requests as a cut network leaves them unanswered
    request = urllib.request.Request(
        pair.procs[0].url + "/", method="POST",
        data=orjson.dumps({"TableName": name, "SourceRegion": pair.regions[1]}),
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "ShoalReplication_20261206.Ping"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 503
    assert orjson.loads(refused.value.read()) == {
        "__type": "com.amazonaws.dynamodb.v20120810#PeerPausedException",
        "message": f"Replication with {pair.regions[1]} is paused here (--peer-pause)"}
    # nothing crossed: each side has its own writes only
    assert {i["pk"]["S"] for i in _scan(east, name)} == {f"before{n}" for n in range(5)} | {
        f"east{n}" for n in range(20)} | {"both"}
    assert {i["pk"]["S"] for i in _scan(west, name)} == {f"before{n}" for n in range(5)} | {
        f"west{n}" for n in range(20)} | {"both"}
    # the east's 21 writes the west lacks (its fall to 0 once sent: tests/unit/test_replication.py)
    _wait_statistics(pair.client(0, "cloudwatch"), "PendingReplicationCount", name, pair.regions[1], "Count",
                     lambda s: s["Maximum"] == 21)

    heal_at = time.time()
    pair.restart(0)
    east = pair.client(0)
    items = _converged(pair, name, indexes=(0, 1))
    assert [i["pk"]["S"] for i in items] == sorted(
        ["both", *(f"before{n}" for n in range(5)), *(f"east{n}" for n in range(20)),
         *(f"west{n}" for n in range(20))])
    assert next(i for i in items if i["pk"]["S"] == "both")["by"] == {"S": "west"}
    assert all(i["by"] == {"S": "east" if i["pk"]["S"].startswith(("east", "before")) else "west"} for i in items)
    for client, region in ((east, pair.regions[1]), (west, pair.regions[0])):
        replica = _wait_replica(client, name, region, "ACTIVE")
        assert "ReplicaInaccessibleDateTime" not in replica and "ReplicaStatusDescription" not in replica
        assert client.query(TableName=name, IndexName="by_kind", KeyConditionExpression="kind = :k",
                            ExpressionAttributeValues={":k": {"S": "k"}}, Select="COUNT")["Count"] == 46
    # the writes held back by the partition were sent once it healed, and waited at least as long
    latency = _wait_statistics(pair.client(0, "cloudwatch"), "ReplicationLatency", name, pair.regions[1],
                               "Milliseconds", lambda s: s["SampleCount"] >= 26)
    assert latency["SampleCount"] == 26
    assert latency["Maximum"] >= (heal_at - writes_done) * 1000


def test_a_replica_has_the_tables_vector_indexes(regions):
    name = "gt_vectors"
    client = regions.client(0)
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        VectorIndexes=[{"IndexName": "by_embedding", "VectorAttribute": {"AttributeName": "embedding"},
                        "Dimensions": 2, "DistanceFunction": "EUCLIDEAN", "Projection": {"ProjectionType": "ALL"}}])
    for key, vector in (("near", (1, 1)), ("far", (9, 9))):
        client.put_item(TableName=name, Item={"pk": {"S": key}, "embedding": {"L": [{"N": str(v)} for v in vector]}})
    _add_replica(client, name, REGIONS[1])
    _wait_active(client, name)
    replica = regions.client(1)
    assert [i["IndexName"] for i in replica.describe_table(TableName=name)["Table"]["VectorIndexes"]] == ["by_embedding"]
    deadline = time.monotonic() + CONVERGE_S
    while True:  # the copy, then the index in step with it
        found = replica.search_vectors(TableName=name, IndexName="by_embedding", TopK=1,
                                       SearchVector=[{"N": "0"}, {"N": "0"}])["SearchResults"]
        if found:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert found[0]["Item"]["pk"] == {"S": "near"}


def test_a_gsi_created_or_deleted_in_one_replica_is_created_or_deleted_in_the_others(regions):
    name = "gt_index"
    first = regions.client(0)
    _create(first, name)
    first.put_item(TableName=name, Item={"pk": {"S": "a"}, "colour": {"S": "red"}})
    _add_replica(first, name, REGIONS[2])
    _wait_active(first, name)
    other = regions.client(2)
    other.update_table(TableName=name, AttributeDefinitions=[{"AttributeName": "colour", "AttributeType": "S"}],
                       GlobalSecondaryIndexUpdates=[{"Create": {
                           "IndexName": "by_colour", "KeySchema": [{"AttributeName": "colour", "KeyType": "HASH"}],
                           "Projection": {"ProjectionType": "ALL"}}}])

    def index_in(client):
        return {g["IndexName"]: g["IndexStatus"]
                for g in client.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", ())}

    deadline = time.monotonic() + CONVERGE_S
    both = {"by_kind": "ACTIVE", "by_colour": "ACTIVE"}
    while index_in(first) != both or index_in(other) != both:
        assert time.monotonic() < deadline, (index_in(first), index_in(other))
        time.sleep(0.1)
    found = first.query(TableName=name, IndexName="by_colour", KeyConditionExpression="colour = :c",
                        ExpressionAttributeValues={":c": {"S": "red"}})["Items"]
    assert [i["pk"]["S"] for i in found] == ["a"]
    first.update_table(TableName=name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_colour"}}])
    deadline = time.monotonic() + CONVERGE_S
    while index_in(first) != {"by_kind": "ACTIVE"} or index_in(other) != {"by_kind": "ACTIVE"}:
        assert time.monotonic() < deadline, (index_in(first), index_in(other))
        time.sleep(0.1)


def test_time_to_live_set_in_one_replica_is_set_in_the_others(regions):
    name = "gt_ttl"
    first = regions.client(1)
    _create(first, name)
    _add_replica(first, name, REGIONS[2])
    _wait_active(first, name)
    other = regions.client(2)
    other.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True,
                                                                       "AttributeName": "expires_at"})
    deadline = time.monotonic() + CONVERGE_S
    while first.describe_time_to_live(TableName=name)["TimeToLiveDescription"] != {
            "TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}:
        assert time.monotonic() < deadline, first.describe_time_to_live(TableName=name)
        time.sleep(0.1)
    assert other.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def _vector_indexes(client, name: str) -> list[tuple]:
    """Each vector index's definition and status (not its counts and ARN, which are regional)."""
    return [(v["IndexName"], v["VectorAttribute"], v["Dimensions"], v["DistanceFunction"], v["Projection"],
             v["IndexStatus"], v.get("Backfilling", False))
            for v in client.describe_table(TableName=name)["Table"].get("VectorIndexes", [])]


def _nearest(client, name: str, vector) -> str | None:
    found = client.search_vectors(TableName=name, IndexName="by_embedding", TopK=1,
                                  SearchVector=[{"N": str(v)} for v in vector])["SearchResults"]
    return found[0]["Item"]["pk"]["S"] if found else None


def test_vector_indexes_of_a_global_table_answer_in_every_region_with_every_regions_writes(regions):
    """The Developer Guide's "Using vector indexes with global tables": a
    replica gets the index definition, and items written in any region are
    replicated and indexed in the others, so that SearchVectors in each
    region answers from that region's own index."""
    name = "gt_vectors_everywhere"
    first = regions.client(0)
    first.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        VectorIndexes=[{"IndexName": "by_embedding", "VectorAttribute": {"AttributeName": "embedding"},
                        "Dimensions": 3, "DistanceFunction": "COSINE",
                        "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    first.put_item(TableName=name, Item={"pk": {"S": "from-0"},
                                         "embedding": {"L": [{"N": "1"}, {"N": "0"}, {"N": "0"}]}})
    first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}},
                                                       {"Create": {"RegionName": REGIONS[2]}}])
    _wait_active(first, name)
    for i in (1, 2):
        _wait_active(regions.client(i), name)
    for i, vector in ((1, (0, 1, 0)), (2, (0, 0, 1))):
        regions.client(i).put_item(TableName=name, Item={
            "pk": {"S": f"from-{i}"}, "embedding": {"L": [{"N": str(v)} for v in vector]}})
    shown = _vector_indexes(first, name)
    assert shown == [("by_embedding", {"AttributeName": "embedding"}, 3, "COSINE", {"ProjectionType": "KEYS_ONLY"},
                      "ACTIVE", False)]
    expected = {(1, 0, 0): "from-0", (0, 1, 0): "from-1", (0, 0, 1): "from-2"}
    deadline = time.monotonic() + CONVERGE_S
    for i in range(3):
        client = regions.client(i)
        assert _vector_indexes(client, name) == shown  # the same definition in every region
        for vector, key in expected.items():
            while (found := _nearest(client, name, vector)) != key:
                assert time.monotonic() < deadline, (REGIONS[i], vector, found)
                time.sleep(0.1)
    assert sorted(item["pk"]["S"] for item in _converged(regions, name)) == ["from-0", "from-1", "from-2"]


def _data_dir(regions, i: int) -> str:
    return os.path.join(regions.base, f"region{i}")


def _wait_replica_status(client, name: str, region: str, status: str, timeout: float = CONVERGE_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        entry = next(r for r in client.describe_table(TableName=name)["Table"]["Replicas"] if r["RegionName"] == region)
        if entry["ReplicaStatus"] == status:
            return entry
        assert time.monotonic() < deadline, entry
        time.sleep(0.1)


def test_a_replica_its_region_refuses_is_creation_failed_until_deleted(regions):
    """A region that already holds a table of that name (of the same or of
    another key schema) refuses the replica: the source region shows it
    CREATION_FAILED with the reason, the table ACTIVE, sends that region
    nothing and leaves its table alone; a ReplicaUpdates Delete removes the
    entry (deleting nothing there), and once the name is free the replica
    can be made."""
    first, second = regions.client(0), regions.client(1)
    for name, key in (("gt_fail_taken", "pk"), ("gt_fail_other_key", "id")):
        _create(first, name)
        first.put_item(TableName=name, Item={"pk": {"S": "source"}, "kind": {"S": "k"}})
        second.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])
        second.put_item(TableName=name, Item={key: {"S": "theirs"}})
        _add_replica(first, name, REGIONS[1])
        entry = _wait_replica_status(first, name, REGIONS[1], "CREATION_FAILED")
        assert entry == {"RegionName": REGIONS[1], "ReplicaStatus": "CREATION_FAILED",
                         "ReplicaStatusDescription": f"The replica in region {REGIONS[1]} could not be created: "
                                                     f"ResourceInUseException: Table already exists: {name}"}
        table = first.describe_table(TableName=name)["Table"]
        assert table["TableStatus"] == "ACTIVE" and table["GlobalTableVersion"] == "2019.11.21"
    name = "gt_fail_taken"
    first.put_item(TableName=name, Item={"pk": {"S": "after"}, "kind": {"S": "k"}})
    assert _error(lambda: first.update_table(TableName=name, ReplicaUpdates=[{"Update": {
        "RegionName": REGIONS[1], "TableClassOverride": "STANDARD_INFREQUENT_ACCESS"}}])) == (
        "ValidationException", "One or more parameter values were invalid: The replica in region eu-west-1 could "
        "not be created: delete it with ReplicaUpdates Delete, then create it again")
    assert _error(lambda: _add_replica(first, name, REGIONS[1])) == (
        "ValidationException", "One or more parameter values were invalid: Replica already exists in region eu-west-1")
    scaling = first.describe_table_replica_auto_scaling(TableName=name)["TableAutoScalingDescription"]
    assert scaling["Replicas"][0] == {"RegionName": REGIONS[1], "ReplicaStatus": "CREATION_FAILED"}
    assert _error(lambda: first.update_table_replica_auto_scaling(TableName=name, ReplicaUpdates=[{
        "RegionName": REGIONS[1], "ReplicaProvisionedReadCapacityAutoScalingUpdate": {
            "MinimumUnits": 1, "MaximumUnits": 5}}])) == (
        "ReplicaNotFoundException", f"Failed to update settings for global table with name: ‘{name}’ because a "
        f"replica does not exist in regions: ‘[{REGIONS[1]}]’.")
    time.sleep(1.0)  # nothing of the source's reaches the other region's table, which is as it was
    theirs = second.describe_table(TableName=name)["Table"]
    assert "Replicas" not in theirs and "GlobalTableVersion" not in theirs
    assert _scan(second, name) == [{"pk": {"S": "theirs"}}]
    first.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[1]}}])
    table = first.describe_table(TableName=name)["Table"]
    assert "Replicas" not in table and "GlobalTableVersion" not in table and table["TableStatus"] == "ACTIVE"
    time.sleep(1.0)  # the Delete deleted nothing there
    assert _scan(second, name) == [{"pk": {"S": "theirs"}}]
    second.delete_table(TableName=name)
    while any(t == name for t in second.list_tables()["TableNames"]):
        time.sleep(0.1)
    _add_replica(first, name, REGIONS[1])  # the name is free now: the replica is made
    _wait_active(first, name)
    assert [i["pk"]["S"] for i in _converged(regions, name, indexes=(0, 1))] == ["after", "source"]
    # the server that refused keeps serving
    assert second.describe_table(TableName="gt_fail_other_key")["Table"]["KeySchema"] == [
        {"AttributeName": "id", "KeyType": "HASH"}]


def test_a_replica_whose_kms_key_its_region_cannot_use_is_creation_failed(regions):
    from shoal.storage.keyring import set_kms_key_state

    name = "gt_fail_key"
    first, third = regions.client(0), regions.client(2)
    _create(first, name)
    first.update_table(TableName=name, SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                         "KMSMasterKeyId": "source-key"})
    set_kms_key_state(_data_dir(regions, 2), "replica-key", "Disabled")
    try:
        first.update_table(TableName=name, ReplicaUpdates=[{"Create": {
            "RegionName": REGIONS[2], "KMSMasterKeyId": "replica-key"}}])
        entry = _wait_replica_status(first, name, REGIONS[2], "CREATION_FAILED")
        assert entry["ReplicaStatusDescription"] == (
            f"The replica in region {REGIONS[2]} could not be created: ValidationException: One or more parameter "
            f"values were invalid: KMSMasterKeyId cannot be used in region {REGIONS[2]}: "
            f"arn:aws:kms:{REGIONS[2]}:000000000000:key/replica-key is disabled.")
        assert name not in third.list_tables()["TableNames"]
    finally:
        set_kms_key_state(_data_dir(regions, 2), "replica-key", "Enabled")
    first.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": REGIONS[2]}}])
    first.update_table(TableName=name, ReplicaUpdates=[{"Create": {
        "RegionName": REGIONS[2], "KMSMasterKeyId": "replica-key"}}])
    _wait_active(first, name)
    assert third.describe_table(TableName=name)["Table"]["SSEDescription"]["KMSMasterKeyArn"] == (
        f"arn:aws:kms:{REGIONS[2]}:000000000000:key/replica-key")


def _wait_table_status(client, name: str, status: str, timeout: float = CONVERGE_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        table = client.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == status:
            return table
        assert time.monotonic() < deadline, table
        time.sleep(0.1)


def test_a_replica_whose_kms_key_becomes_unusable_is_inaccessible_until_it_is_usable_again(regions):
    """A replica's KMSMasterKeyId override names a key of its region; once
    that key is disabled, pending deletion or deleted there, its table is
    INACCESSIBLE_ENCRYPTION_CREDENTIALS with InaccessibleEncryptionDateTime,
    and the other regions show the replica so; when the key is usable again
    both are as before, and the writes made meanwhile have reached it."""
    from shoal.storage.keyring import set_kms_key_state

    name = "gt_key_lost"
    first, second = regions.client(0), regions.client(1)
    _create(first, name)
    first.update_table(TableName=name, SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                         "KMSMasterKeyId": "first-key"})
    first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1],
                                                                   "KMSMasterKeyId": "second-key"}}])
    _wait_active(first, name)
    arn = f"arn:aws:kms:{REGIONS[1]}:000000000000:key/second-key"
    for n, state in enumerate(("Disabled", "PendingDeletion", "Deleted")):
        before = time.time()
        set_kms_key_state(_data_dir(regions, 1), "second-key", state)
        try:
            table = _wait_table_status(second, name, "INACCESSIBLE_ENCRYPTION_CREDENTIALS")
            sse = table["SSEDescription"]
            assert (sse["Status"], sse["SSEType"], sse["KMSMasterKeyArn"]) == ("ENABLED", "KMS", arn)
            assert before - 1 <= sse["InaccessibleEncryptionDateTime"].timestamp() <= time.time() + 1
            entry = _wait_replica_status(first, name, REGIONS[1], "INACCESSIBLE_ENCRYPTION_CREDENTIALS")
            assert entry == {"RegionName": REGIONS[1], "ReplicaStatus": "INACCESSIBLE_ENCRYPTION_CREDENTIALS",
                             "KMSMasterKeyId": "second-key"}
            source = first.describe_table(TableName=name)["Table"]
            assert source["TableStatus"] == "ACTIVE"
            assert "InaccessibleEncryptionDateTime" not in source["SSEDescription"]
            first.put_item(TableName=name, Item={"pk": {"S": f"while-{state}"}, "kind": {"S": "k"}})
        finally:
            set_kms_key_state(_data_dir(regions, 1), "second-key", "Enabled")
        table = _wait_table_status(second, name, "ACTIVE")
        assert "InaccessibleEncryptionDateTime" not in table["SSEDescription"]
        assert _wait_replica_status(first, name, REGIONS[1], "ACTIVE") == {
            "RegionName": REGIONS[1], "ReplicaStatus": "ACTIVE", "KMSMasterKeyId": "second-key"}
        assert len(_converged(regions, name, indexes=(0, 1))) == n + 1


def test_a_vector_index_created_or_deleted_in_one_replica_is_created_or_deleted_in_the_others(regions):
    name = "gt_vector_update"
    first, other = regions.client(1), regions.client(2)
    first.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    first.put_item(TableName=name, Item={"pk": {"S": "a"}, "embedding": {"L": [{"N": "1"}, {"N": "2"}]}})
    _add_replica(first, name, REGIONS[2])
    _wait_active(first, name)
    answer = other.update_table(TableName=name, VectorIndexUpdates=[{"Create": {
        "IndexName": "by_embedding", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": 2,
        "DistanceFunction": "EUCLIDEAN", "Projection": {"ProjectionType": "ALL"}}}])["TableDescription"]
    assert [r["ReplicaStatus"] for r in answer["Replicas"]] == ["UPDATING"]  # until the index has reached it

    def built(client) -> bool:  # ACTIVE, backfilled, and answering with the item written before it was made
        shown = _vector_indexes(client, name)
        return bool(shown) and shown[0][5:] == ("ACTIVE", False) and _nearest(client, name, (1, 2)) == "a"

    deadline = time.monotonic() + CONVERGE_S
    for client in (first, other):
        while not built(client):
            assert time.monotonic() < deadline, _vector_indexes(client, name)
            time.sleep(0.1)
    assert _vector_indexes(first, name) == _vector_indexes(other, name)
    _wait_active(other, name)
    first.update_table(TableName=name, VectorIndexUpdates=[{"Delete": {"IndexName": "by_embedding"}}])
    for client in (first, other):
        while _vector_indexes(client, name):
            assert time.monotonic() < deadline, _vector_indexes(client, name)
            time.sleep(0.1)
    assert _error(lambda: other.search_vectors(TableName=name, IndexName="by_embedding", TopK=1,
                                               SearchVector=[{"N": "0"}, {"N": "0"}])) == (
        "ValidationException", "The table does not have the specified index: by_embedding")


# ---------------------------------------------------------------- the same rules in process
#
# ``control``'s functions for replicas that could not be made and keys that
# cannot be used, over a real data directory and without peers: what the
# replication thread and the CreateReplica peer operation call (the server
# tests above run them end to end once those call them).


@pytest.fixture
def home(tmp_path):
    from shoal.api import DEFAULT_ACCOUNT, Context
    from shoal.api.catalog import Catalog
    from shoal.replication import control
    from shoal.storage.datadir import open_data_dir

    engine = open_data_dir(tmp_path / "home", sync=False)
    control.configure(engine, control.Settings(REGIONS[0], {REGIONS[1]: "http://127.0.0.1:1",
                                                            REGIONS[2]: "http://127.0.0.1:2"}))
    yield Context(REGIONS[0], DEFAULT_ACCOUNT, engine, Catalog(engine)), str(tmp_path / "home")
    control.unconfigure(engine)
    engine.close()


def _in_process_table(ctx, name: str, **extra) -> None:
    from shoal.api import tables

    tables.create_table(ctx, {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                              "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                              "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], **extra})


def _description(ctx, name: str) -> dict:
    with ctx.engine.read() as txn:
        return ctx.catalog.get(txn, ctx.region, name).description


def _tasks_for(ctx, region: str) -> list[str]:
    from shoal.replication import control

    with ctx.engine.read() as txn:
        return [task["kind"] for _, task in control.pending_tasks(txn) if task.get("peer") == region]


def test_in_process_a_refused_create_task_makes_the_replica_creation_failed(home):
    from shoal.api import tables, ttl
    from shoal.replication import apply as replica_apply
    from shoal.replication import control

    ctx, _ = home
    name = "events"
    _in_process_table(ctx, name)
    tables.update_table(ctx, {"TableName": name, "ReplicaUpdates": [{"Create": {"RegionName": REGIONS[1]}},
                                                                    {"Create": {"RegionName": REGIONS[2]}}]})
    with ctx.engine.read() as txn:
        task = next(t for _, t in control.pending_tasks(txn) if t["kind"] == "create" and t["peer"] == REGIONS[1])
    refusal = orjson.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ResourceInUseException",
                            "message": f"Table already exists: {name}"})
    # what is not a refusal is retried: nothing changes
    for status, body in ((500, refusal), (None, b""), (400, b"not json"), (400, orjson.dumps(
            {"__type": "com.amazon.coral.service#UnrecognizedClientException", "message": "no"}))):
        assert control.replica_creation_failed(ctx.engine, ctx.catalog, ctx.region, task, status, body) is False
    assert _tasks_for(ctx, REGIONS[1]) == ["create", "copy", "activate"]
    assert control.replica_creation_failed(ctx.engine, ctx.catalog, ctx.region, task, 400, refusal) is True
    desc = _description(ctx, name)
    assert desc["Replicas"][0] == {"RegionName": REGIONS[1], "ReplicaStatus": "CREATION_FAILED",
                                   "ReplicaStatusDescription": f"The replica in region {REGIONS[1]} could not be "
                                                               f"created: ResourceInUseException: Table already "
                                                               f"exists: {name}"}
    assert desc["TableStatus"] == "UPDATING"  # the other replica is still being made
    assert _tasks_for(ctx, REGIONS[1]) == []
    with ctx.engine.read() as txn:
        assert replica_apply.cursor_of(txn, REGIONS[1], task["table_id"]) is None  # no records kept for it
    assert [r["RegionName"] for r in control.replica_set(desc, REGIONS[0])] == [REGIONS[0], REGIONS[2]]
    ttl.update_time_to_live(ctx, {"TableName": name, "TimeToLiveSpecification": {
        "Enabled": True, "AttributeName": "expires"}})  # a change for every replica: not for this one
    assert _tasks_for(ctx, REGIONS[1]) == [] and _tasks_for(ctx, REGIONS[2])[-1] == "ttl_update"
    with ctx.engine.read() as txn:
        other = next(t for _, t in control.pending_tasks(txn) if t["kind"] == "create" and t["peer"] == REGIONS[2])
    assert control.replica_creation_failed(ctx.engine, ctx.catalog, ctx.region, other, 400, orjson.dumps(
        {"__type": "ValidationException", "message": "bad key"})) is True
    assert _description(ctx, name)["TableStatus"] == "ACTIVE"  # nothing is being made any more
    tables.update_table(ctx, {"TableName": name, "ReplicaUpdates": [{"Delete": {"RegionName": REGIONS[1]}}]})
    assert _tasks_for(ctx, REGIONS[1]) == []  # nothing to delete there: its table is not a replica
    assert [r["RegionName"] for r in _description(ctx, name)["Replicas"]] == [REGIONS[2]]
    tables.update_table(ctx, {"TableName": name, "ReplicaUpdates": [{"Create": {"RegionName": REGIONS[1]}}]})
    assert _tasks_for(ctx, REGIONS[1])[:1] == ["create"]  # made again from the start


def test_in_process_create_replica_is_refused_for_a_table_that_is_not_this_replica_or_a_key_unusable_here(home):
    from shoal.api.catalog import update_description
    from shoal.errors import ResourceInUseException, ValidationException
    from shoal.replication import control
    from shoal.storage.keyring import set_kms_key_state

    ctx, data_dir = home  # as the region asked to make the replica
    request = {"TableName": "taken", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
    data = {"TableName": "taken", "SourceRegion": REGIONS[1], "Request": request}
    control.check_replica_target(ctx, data)  # the name is free
    _in_process_table(ctx, "taken")
    with pytest.raises(ResourceInUseException) as caught:
        control.check_replica_target(ctx, data)
    assert caught.value.message == "Table already exists: taken"
    _in_process_table(ctx, "ours", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    with ctx.engine.write() as txn:  # a replica of the source's global table, of another key schema
        table = ctx.catalog.get(txn, ctx.region, "ours")
        update_description(txn, ctx.region, "ours", table.table_id, lambda d: d.update(
            GlobalTableVersion="2019.11.21", Replicas=[{"RegionName": REGIONS[1], "ReplicaStatus": "ACTIVE"}]))
    with pytest.raises(ValidationException) as caught:
        control.check_replica_target(ctx, {**data, "TableName": "ours", "Request": {**request, "TableName": "ours"}})
    assert caught.value.message == (f"One or more parameter values were invalid: Table ours in region {REGIONS[0]} "
                                    "has another key schema than the global table's")
    keyed = {**data, "TableName": "new", "Request": {**request, "TableName": "new", "SSESpecification": {
        "Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "alias/replica"}}}
    control.check_replica_target(ctx, keyed)
    set_kms_key_state(data_dir, "alias/replica", "PendingDeletion")
    with pytest.raises(ValidationException) as caught:
        control.check_replica_target(ctx, keyed)
    assert caught.value.message == (
        f"One or more parameter values were invalid: KMSMasterKeyId cannot be used in region {REGIONS[0]}: "
        f"arn:aws:kms:{REGIONS[0]}:000000000000:alias/replica is pending deletion.")


def test_in_process_a_table_whose_key_cannot_be_used_is_inaccessible_until_it_can(home):
    from shoal.api import tables
    from shoal.api.catalog import update_description
    from shoal.replication import control
    from shoal.storage.keyring import set_kms_key_state

    ctx, data_dir = home
    _in_process_table(ctx, "keyed", SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "k1"})
    _in_process_table(ctx, "managed", SSESpecification={"Enabled": True, "SSEType": "KMS"})  # the AWS managed key
    tables.update_table(ctx, {"TableName": "keyed", "ReplicaUpdates": [{"Create": {
        "RegionName": REGIONS[1], "KMSMasterKeyId": "k2"}}]})
    with ctx.engine.write() as txn:  # as if the replica were made: only the key check's tasks remain
        for key, _ in control.pending_tasks(txn):
            txn.delete("meta", key)
        table = ctx.catalog.get(txn, ctx.region, "keyed")
        update_description(txn, ctx.region, "keyed", table.table_id, lambda d: d.update(
            TableStatus="ACTIVE", Replicas=[{"RegionName": REGIONS[1], "ReplicaStatus": "ACTIVE"}]))
    assert control.check_encryption_keys(ctx.engine, ctx.catalog, ctx.region, 1000.0) is False
    set_kms_key_state(data_dir, "alias/aws/dynamodb", "Disabled")  # not a customer managed key: no effect
    set_kms_key_state(data_dir, "k1", "Disabled")
    assert control.check_encryption_keys(ctx.engine, ctx.catalog, ctx.region, 1000.0) is True
    desc = _description(ctx, "keyed")
    assert desc["TableStatus"] == "INACCESSIBLE_ENCRYPTION_CREDENTIALS"
    assert desc["SSEDescription"]["InaccessibleEncryptionDateTime"] == 1000.0
    assert _description(ctx, "managed")["TableStatus"] == "ACTIVE"
    assert _tasks_for(ctx, REGIONS[1]) == ["sync"]  # the replicas are told
    assert control.replica_set(desc, REGIONS[0])[0] == {"RegionName": REGIONS[0],
                                                        "ReplicaStatus": "INACCESSIBLE_ENCRYPTION_CREDENTIALS"}
    assert control.check_encryption_keys(ctx.engine, ctx.catalog, ctx.region, 1005.0) is False  # no change
    assert _description(ctx, "keyed")["SSEDescription"]["InaccessibleEncryptionDateTime"] == 1000.0
    with open(os.path.join(data_dir, "KMS_KEYS"), "w") as damaged:
        damaged.write("not a list of key states")
    assert control.check_encryption_keys(ctx.engine, ctx.catalog, ctx.region, 1010.0) is False
    assert _description(ctx, "keyed")["TableStatus"] == "INACCESSIBLE_ENCRYPTION_CREDENTIALS"  # left as it was
    os.remove(os.path.join(data_dir, "KMS_KEYS"))
    assert control.check_encryption_keys(ctx.engine, ctx.catalog, ctx.region, 1020.0) is True
    desc = _description(ctx, "keyed")
    assert desc["TableStatus"] == "ACTIVE" and "InaccessibleEncryptionDateTime" not in desc["SSEDescription"]
    assert _tasks_for(ctx, REGIONS[1]) == ["sync", "sync"]
