"""Strongly consistent Query and Scan of MRSC tables, across three real
``shoal serve`` processes (us-east-1, us-east-2, us-west-2).

The writes under test are ones another region acknowledged and whose Learn
never reached the reading region: us-east-1 is restarted with
``--peer-pause=us-east-2``, so us-east-2 writes with us-west-2 alone and
us-east-1's own table does not see it.  A consistent read in us-east-1 must.
"""

from __future__ import annotations

import pytest

from tests.server.test_mrsc import REGIONS, Regions, _error, _eventually, _wait_active, _wait_witness_active

UNAVAILABLE = ("InternalServerError", "Internal server error: the request was not applied: 2 of 3 regions did not "
               "answer; a majority (2) is needed", 500)


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    trio = Regions(str(tmp_path_factory.mktemp("mrsc_reads")))
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def _create(client, name: str) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "N"}])


def _strong_table(regions, name: str, witness: bool = False) -> None:
    home = regions.client(0)
    _create(home, name)
    if witness:
        home.update_table(TableName=name, MultiRegionConsistency="STRONG",
                          ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}],
                          GlobalTableWitnessUpdates=[{"Create": {"RegionName": REGIONS[2]}}])
        for i in (0, 1):
            _wait_witness_active(regions.client(i), name)
        return
    home.update_table(TableName=name, MultiRegionConsistency="STRONG",
                      ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}, {"Create": {"RegionName": REGIONS[2]}}])
    for i in range(3):
        _wait_active(regions.client(i), name)


def _item(pk: str, sk: int, v: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}, "v": {"S": v}}


def _pages(call, **request) -> tuple[list[dict], list[int]]:
    """Every item of a paged Query or Scan, and each page's Count."""
    items, counts = [], []
    while True:
        page = call(**request)
        items += page["Items"]
        counts.append(page["Count"])
        if "LastEvaluatedKey" not in page:
            return items, counts
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _query(client, name: str, **extra) -> dict:
    condition = extra.pop("KeyConditionExpression", "pk = :p")
    return client.query(TableName=name, KeyConditionExpression=condition,
                        ExpressionAttributeValues={":p": {"S": "p"}, **extra.pop("values", {})}, **extra)


def _hold_back_learns(regions, name: str) -> None:
    """Items written in us-east-1, then us-east-1 restarted cut off from
    us-east-2, which writes, updates and deletes with us-west-2 (or the
    witness) only."""
    home = regions.client(0)
    for sk in (1, 2, 3, 4):
        home.put_item(TableName=name, Item=_item("p", sk, f"old{sk}"))
    home.put_item(TableName=name, Item=_item("q", 1, "q1"))
    regions.procs[0].stop()
    regions.start(0, f"--peer-pause={REGIONS[1]}")
    east2 = regions.once(1)
    east2.put_item(TableName=name, Item=_item("p", 5, "new5"))
    east2.put_item(TableName=name, Item=_item("p", 6, "new6"))
    east2.put_item(TableName=name, Item=_item("p", 2, "new2"))
    east2.delete_item(TableName=name, Key={"pk": {"S": "p"}, "sk": {"N": "3"}})
    east2.put_item(TableName=name, Item=_item("q", 2, "q2"))


WANTED_P = [_item("p", 1, "old1"), _item("p", 2, "new2"), _item("p", 4, "old4"), _item("p", 5, "new5"),
            _item("p", 6, "new6")]
WANTED_ALL = sorted(WANTED_P + [_item("q", 1, "q1"), _item("q", 2, "q2")], key=lambda i: (i["pk"]["S"], i["sk"]["N"]))


def _sorted(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["N"]))


def test_consistent_query_and_scan_see_writes_whose_learn_was_held_back(regions):
    name = "reads_held_back"
    _strong_table(regions, name)
    _hold_back_learns(regions, name)
    try:
        home = regions.once(0)
        # us-east-1's own table (an eventually consistent read) has not learned them
        assert _query(home, name)["Items"] == [_item("p", sk, f"old{sk}") for sk in (1, 2, 3, 4)]
        # A consistent Query has every acknowledged write, the delete included, in sort order, paged
        assert _query(home, name, ConsistentRead=True)["Items"] == WANTED_P
        items, counts = _pages(lambda **r: _query(home, name, **r), ConsistentRead=True, Limit=2)
        assert (items, counts) == (WANTED_P, [2, 2, 1])
        items, counts = _pages(lambda **r: _query(home, name, **r), ConsistentRead=True, Limit=2,
                               ScanIndexForward=False)
        assert (items, counts) == (WANTED_P[::-1], [2, 2, 1])
        between = _query(home, name, ConsistentRead=True, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                         values={":a": {"N": "2"}, ":b": {"N": "5"}})
        assert between["Items"] == WANTED_P[1:4]
        # Filters, projections, Select COUNT and ConsumedCapacity as for any consistent read
        filtered = _query(home, name, ConsistentRead=True, FilterExpression="begins_with(v, :new)",
                          values={":new": {"S": "new"}})
        assert (filtered["Count"], filtered["ScannedCount"]) == (3, 5)
        assert [i["sk"]["N"] for i in filtered["Items"]] == ["2", "5", "6"]
        projected = _query(home, name, ConsistentRead=True, ProjectionExpression="v")
        assert projected["Items"] == [{"v": i["v"]} for i in WANTED_P]
        counted = _query(home, name, ConsistentRead=True, Select="COUNT", ReturnConsumedCapacity="TOTAL")
        assert "Items" not in counted
        assert (counted["Count"], counted["ScannedCount"]) == (5, 5)
        assert counted["ConsumedCapacity"] == {"TableName": name, "CapacityUnits": 1.0}
        # A consistent Scan too, whole and in pages of 3 (no key twice, none missing)
        scanned = home.scan(TableName=name, ConsistentRead=True)
        assert _sorted(scanned["Items"]) == WANTED_ALL
        items, counts = _pages(lambda **r: home.scan(TableName=name, **r), ConsistentRead=True, Limit=3)
        assert items == scanned["Items"] and counts == [3, 3, 1]
        parallel = []
        for segment in range(3):
            parallel += _pages(lambda **r: home.scan(TableName=name, **r), ConsistentRead=True, Segment=segment,
                               TotalSegments=3, Limit=1)[0]
        assert _sorted(parallel) == WANTED_ALL and len(parallel) == len(WANTED_ALL)
    finally:
        regions.procs[0].stop()
        regions.start(0)
    # Healed: us-east-1's own table converges (the consistent reads' rounds taught it), in the consistent Scan's order
    home = regions.client(0)
    assert _eventually(lambda: home.scan(TableName=name)["Items"] == scanned["Items"])


def test_eventually_consistent_reads_of_an_mrsc_table_read_the_regions_own_table(regions):
    name = "reads_eventual"
    _strong_table(regions, name)
    _hold_back_learns(regions, name)
    try:
        home = regions.once(0)
        assert _query(home, name, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"] == 0.5
        assert _sorted(home.scan(TableName=name)["Items"]) == _sorted(
            [_item("p", sk, f"old{sk}") for sk in (1, 2, 3, 4)] + [_item("q", 1, "q1")])
    finally:
        regions.procs[0].stop()
        regions.start(0)


def test_with_the_witness_as_the_other_region(regions):
    """Two replicas and a witness (us-west-2): us-east-1, cut off from
    us-east-2, reads the registers of the witness."""
    name = "reads_witness"
    _strong_table(regions, name, witness=True)
    _hold_back_learns(regions, name)
    try:
        home = regions.once(0)
        assert len(_query(home, name)["Items"]) == 4
        assert _pages(lambda **r: _query(home, name, **r), ConsistentRead=True, Limit=2) == (WANTED_P, [2, 2, 1])
        assert _pages(lambda **r: _query(home, name, **r), ConsistentRead=True, Limit=3,
                      ScanIndexForward=False) == (WANTED_P[::-1], [3, 2])
        items, _ = _pages(lambda **r: home.scan(TableName=name, **r), ConsistentRead=True, Limit=2)
        assert _sorted(items) == WANTED_ALL and len(items) == len(WANTED_ALL)
        # us-east-1 cut off from us-east-2 and the witness stopped: two regions of three do not answer
        regions.procs[2].kill()
        try:
            assert _error(lambda: home.scan(TableName=name, ConsistentRead=True)) == UNAVAILABLE
            assert _error(lambda: _query(home, name, ConsistentRead=True)) == UNAVAILABLE
            assert len(home.scan(TableName=name)["Items"]) >= 5  # its own table is still served
        finally:
            regions.start(2)
        assert _query(home, name, ConsistentRead=True)["Items"] == WANTED_P
    finally:
        regions.procs[0].stop()
        regions.start(0)


def test_one_region_down_reads_through_the_other_and_two_down_fail(regions):
    name = "reads_down"
    _strong_table(regions, name)
    home = regions.once(0)
    for sk in (1, 2, 3):
        regions.once(sk % 3).put_item(TableName=name, Item=_item("p", sk, f"v{sk}"))
    wanted = [_item("p", sk, f"v{sk}") for sk in (1, 2, 3)]
    assert _eventually(lambda: _query(home, name)["Items"] == wanted)  # learned here before us-east-2 goes
    regions.procs[1].kill()  # the region asked first: us-east-1 goes on with us-west-2
    try:
        regions.once(2).put_item(TableName=name, Item=_item("p", 4, "v4"))
        wanted.append(_item("p", 4, "v4"))
        assert _pages(lambda **r: _query(home, name, **r), ConsistentRead=True, Limit=3) == (wanted, [3, 1])
        assert _sorted(home.scan(TableName=name, ConsistentRead=True)["Items"]) == wanted
        regions.procs[2].kill()
        try:
            assert _error(lambda: _query(home, name, ConsistentRead=True)) == UNAVAILABLE
            assert _error(lambda: home.scan(TableName=name, ConsistentRead=True, Limit=1)) == UNAVAILABLE
            own = _query(home, name)["Items"]  # eventually consistent: this region's table, still served
            assert own[:3] == wanted[:3] and all(item in wanted for item in own)
        finally:
            regions.start(2)
    finally:
        regions.start(1)
    assert _query(regions.once(1), name, ConsistentRead=True)["Items"] == wanted


def test_bad_requests_are_refused_as_on_a_regional_table(regions):
    name, plain = "reads_bad", "reads_bad_regional"
    _strong_table(regions, name)
    home = regions.once(0)
    _create(home, plain)
    for table in (name, plain):
        home.put_item(TableName=table, Item=_item("p", 1, "x"))
    other_partition = {"pk": {"S": "zz"}, "sk": {"N": "1"}}
    bad = [
        lambda t: _query(home, t, ConsistentRead=True, ExclusiveStartKey=other_partition),
        lambda t: _query(home, t, ConsistentRead=True, ExclusiveStartKey={"pk": {"S": "p"}}),
        lambda t: _query(home, t, ConsistentRead=True, IndexName="nope"),
        lambda t: _query(home, t, ConsistentRead=True, Select="COUNT", ProjectionExpression="v"),
        lambda t: home.query(TableName=t, ConsistentRead=True, KeyConditionExpression="sk = :s",
                             ExpressionAttributeValues={":s": {"N": "1"}}),
        lambda t: home.scan(TableName=t, ConsistentRead=True, Segment=1),
        lambda t: home.scan(TableName=t, ConsistentRead=True, Segment=3, TotalSegments=2),
        lambda t: home.scan(TableName=t, ConsistentRead=True, FilterExpression="v = :x"),
    ]
    for call in bad:
        expected = _error(lambda: call(plain))
        assert expected[0] == "ValidationException"
        assert _error(lambda: call(name)) == expected
    # A start key outside its segment: the regional table's ExclusiveStartKey check, with the same words
    outside = None
    for sk in range(50):
        key = {"pk": {"S": f"k{sk}"}, "sk": {"N": "1"}}
        try:
            home.scan(TableName=plain, Segment=0, TotalSegments=2, ExclusiveStartKey=key)
        except home.exceptions.ClientError:
            outside = key
            break
    assert outside is not None
    assert _error(lambda: home.scan(TableName=name, ConsistentRead=True, Segment=0, TotalSegments=2,
                                    ExclusiveStartKey=outside)) == (
        "ValidationException", "The provided starting key is invalid: Invalid ExclusiveStartKey. Please use "
        "ExclusiveStartKey with correct Segment. TotalSegments: 2 Segment: 0", 400)
    # and the server serves on
    assert _query(home, name, ConsistentRead=True)["Items"] == [_item("p", 1, "x")]


def test_every_consistent_query_holds_what_was_acknowledged_before_it_began(regions):
    """Writers in us-east-2 and us-west-2 put and delete items while
    us-east-1 pages through consistent Queries: each Query has every item
    whose put was acknowledged before it began (and not deleted since), and
    none whose delete was."""
    import threading
    import time

    name = "reads_while_writing"
    _strong_table(regions, name)
    events: list[tuple] = []  # (kind, sk, invoked, acknowledged or None)
    lock = threading.Lock()
    stop = threading.Event()

    crashed: list[BaseException] = []

    def writer(region: int, first: int) -> None:
        try:
            write(region, first)
        except BaseException as exc:  # an error nobody expected: the test fails
            crashed.append(exc)

    def write(region: int, first: int) -> None:
        client = regions.client(region)
        for n in range(first, first + 1000, 2):
            if stop.is_set():
                return
            invoked = time.monotonic()
            client.put_item(TableName=name, Item=_item("p", n, f"w{region}"))
            with lock:
                events.append(("put", n, invoked, time.monotonic()))
            if n % 3 == 0:
                invoked = time.monotonic()
                with lock:  # a delete may take effect from its invocation on
                    events.append(("delete invoked", n, invoked, None))
                client.delete_item(TableName=name, Key={"pk": {"S": "p"}, "sk": {"N": str(n)}})
                with lock:
                    events.append(("delete", n, invoked, time.monotonic()))

    threads = [threading.Thread(target=writer, args=(1, 0), daemon=True),
               threading.Thread(target=writer, args=(2, 1), daemon=True)]
    for thread in threads:
        thread.start()
    home = regions.client(0)
    checked = 0
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            began = time.monotonic()
            items, _ = _pages(lambda **r: _query(home, name, **r), ConsistentRead=True, Limit=7)
            ended = time.monotonic()
            seen = [int(i["sk"]["N"]) for i in items]
            assert seen == sorted(seen) and len(seen) == len(set(seen))
            with lock:
                done = list(events)
            acked_puts = {sk for kind, sk, _, acked in done if kind == "put" and acked < began}
            deletes_begun = {sk for kind, sk, _, _ in done if kind == "delete invoked"}
            acked_deletes = {sk for kind, sk, _, acked in done if kind == "delete" and acked < began}
            assert acked_puts - deletes_begun <= set(seen), sorted(acked_puts - deletes_begun - set(seen))
            assert not acked_deletes & set(seen), sorted(acked_deletes & set(seen))
            checked += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    with lock:
        puts = sum(1 for kind, *_ in events if kind == "put")
    assert not crashed, crashed
    assert checked >= 3 and puts >= 20, (checked, puts)


def test_the_range_registers_peer_operation_refuses_what_is_not_a_range(regions):
    import json
    import urllib.error

    from tests.server.test_mrsc import _peer_call

    name = "reads_peer_op"
    _strong_table(regions, name)
    regions.client(1).put_item(TableName=name, Item=_item("p", 1, "x"))
    good = {"TableName": name, "SourceRegion": REGIONS[0], "HashKey": "pk", "RangeKey": "sk",
            "Partition": {"S": "p"}, "Low": "", "High": None, "Reverse": False, "Limit": 10}
    answer = _peer_call(regions, 2, "RangeRegisters", good)
    assert [json.loads(r["Key"]) for r in answer["Registers"]] == [{"pk": {"S": "p"}, "sk": {"N": "1"}}]
    assert json.loads(answer["Registers"][0]["Value"]) == _item("p", 1, "x") and answer["More"] is False

    def refusal(payload: dict) -> tuple[int, str, str]:
        with pytest.raises(urllib.error.HTTPError) as caught:
            _peer_call(regions, 2, "RangeRegisters", payload)
        body = json.loads(caught.value.read())
        return caught.value.code, body["__type"].rpartition("#")[2], body.get("message", body.get("Message", ""))

    for bad in ({"Limit": 0}, {"Low": "zz"}, {"Partition": "p"}, {"HashKey": 3}, {"Reverse": "no"}):
        code, kind, message = refusal({**good, **bad})
        assert (code, kind) == (400, "SerializationException") and message.startswith("not a range of registers: ")
    assert refusal({**good, "TableName": "reads_no_such_table"}) == (
        400, "ResourceNotFoundException", "Requested resource not found: Table: reads_no_such_table is not a "
        "multi-Region strong consistency replica here")
    assert _query(regions.once(2), name, ConsistentRead=True)["Items"] == [_item("p", 1, "x")]  # serving on


def test_a_table_with_a_number_partition_key_only(regions):
    name = "reads_hash_only"
    home = regions.client(0)
    home.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}])
    home.update_table(TableName=name, MultiRegionConsistency="STRONG",
                      ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}, {"Create": {"RegionName": REGIONS[2]}}])
    for i in range(3):
        _wait_active(regions.client(i), name)
    writer = regions.once(1)
    for n in ("-1.5", "7", "1e3", "42"):
        writer.put_item(TableName=name, Item={"id": {"N": n}})
    writer.delete_item(TableName=name, Key={"id": {"N": "42"}})  # a register holding an absence, named by its key
    reader = regions.once(2)
    assert reader.query(TableName=name, ConsistentRead=True, KeyConditionExpression="id = :i",
                        ExpressionAttributeValues={":i": {"N": "7"}})["Items"] == [{"id": {"N": "7"}}]
    assert reader.query(TableName=name, ConsistentRead=True, KeyConditionExpression="id = :i",
                        ExpressionAttributeValues={":i": {"N": "42"}})["Items"] == []
    items, _ = _pages(lambda **r: reader.scan(TableName=name, **r), ConsistentRead=True, Limit=1)
    assert sorted(i["id"]["N"] for i in items) == ["-1.5", "1000", "7"]
    assert _eventually(lambda: reader.scan(TableName=name)["Items"] == items)  # the region's own Scan order


def test_a_chosen_value_whose_learn_was_lost_reaches_the_regions_table_through_a_consistent_read(regions):
    """A value two regions accepted (here by a proposer of the test, through
    the peer endpoint, that never sends Learn) is chosen: us-east-1's
    consistent Query returns it without a round, and its own table, which
    never learned it, takes it from there."""
    import base64

    from tests.server.test_mrsc import _peer_call

    name = "reads_lost_learn"
    _strong_table(regions, name)
    home = regions.once(0)
    home.put_item(TableName=name, Item=_item("p", 1, "one"))
    key = base64.b64encode(b'{"pk":{"S":"p"},"sk":{"N":"9"}}').decode()
    value = base64.b64encode(b'{"pk":{"S":"p"},"sk":{"N":"9"},"v":{"S":"direct"}}').decode()
    for i in (0, 1):  # us-east-1 and the region it asks first
        for kind in ("prepare", "accept"):
            reply = _peer_call(regions, i, "Paxos", {"TableName": name, "SourceRegion": REGIONS[2], "Kind": kind,
                                                      "Key": key, "Ballot": [10 ** 9, "test/elsewhere"],
                                                      "Value": value if kind == "accept" else None})
            assert reply["Granted"] is True
    assert _query(home, name)["Items"] == [_item("p", 1, "one")]  # never learned here
    assert _query(home, name, ConsistentRead=True)["Items"] == [_item("p", 1, "one"), _item("p", 9, "direct")]
    assert _eventually(lambda: _query(home, name)["Items"] == [_item("p", 1, "one"), _item("p", 9, "direct")])


def test_pages_stop_at_1_mb_and_cost_what_a_regional_tables_consistent_pages_cost(regions):
    name, plain = "reads_big", "reads_big_regional"
    _strong_table(regions, name)
    writer = regions.once(1)
    home = regions.once(0)
    _create(home, plain)
    for sk in range(1, 13):
        item = {**_item("p", sk, "x" * 100_000)}
        writer.put_item(TableName=name, Item=item)
        home.put_item(TableName=plain, Item=item)

    def pages(call, **request):
        out = []
        while True:
            page = call(ReturnConsumedCapacity="TOTAL", **request)
            page.pop("ResponseMetadata")
            page["ConsumedCapacity"].pop("TableName")
            out.append(page)
            if "LastEvaluatedKey" not in page:
                return out
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    strong_pages = pages(lambda **r: _query(home, name, **r), ConsistentRead=True)
    assert [p["Count"] for p in strong_pages] == [10, 2]  # 1 MB of 100 KB items
    assert strong_pages == pages(lambda **r: _query(home, plain, **r), ConsistentRead=True)
    counted = pages(lambda **r: home.scan(TableName=name, **r), ConsistentRead=True, Select="COUNT")
    assert counted == pages(lambda **r: home.scan(TableName=plain, **r), ConsistentRead=True, Select="COUNT")
    assert [p["Count"] for p in counted] == [10, 2] and counted[0]["ConsumedCapacity"]["CapacityUnits"] > 200
