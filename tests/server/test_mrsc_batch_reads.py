"""BatchGetItem with ConsistentRead on an MRSC table, across three real
``shoal serve`` processes (us-east-1, us-east-2, us-west-2): each key is a
strongly consistent read, as GetItem's is (a consensus round,
``shoal.replication.strong``), so it returns the latest acknowledged write
whatever the reading region's own table holds (issue 18, point 4).

As in test_mrsc_reads, the writes under test are ones us-east-2 acknowledged
with us-west-2 alone while us-east-1, restarted with
``--peer-pause=us-east-2``, never learned them.
"""

from __future__ import annotations

import pytest

from tests.server.test_mrsc import REGIONS, Regions, running
from tests.server.test_mrsc_reads import _item, _strong_table


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    yield from running(Regions(str(tmp_path_factory.mktemp("mrsc_batch_reads"))))


def _key(pk: str, sk: int) -> dict:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def _by_key(items: list) -> dict:
    return {(i["pk"]["S"], int(i["sk"]["N"])): i for i in items}


def test_a_consistent_batch_get_returns_writes_the_region_has_not_applied(regions):
    name, plain = "batch_reads_held_back", "batch_reads_plain"
    _strong_table(regions, name)
    home = regions.client(0)
    home.create_table(TableName=plain, BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    home.get_waiter("table_exists").wait(TableName=plain)
    home.put_item(TableName=plain, Item={"pk": {"S": "p"}, "v": {"S": "plain"}})
    for sk in (1, 2, 3):
        home.put_item(TableName=name, Item=_item("p", sk, f"old{sk}"))
    regions.procs[0].stop()
    regions.start(0, f"--peer-pause={REGIONS[1]}")
    try:
        east2 = regions.once(1)
        east2.put_item(TableName=name, Item=_item("p", 2, "new2"))  # acknowledged by us-east-2 and us-west-2
        east2.delete_item(TableName=name, Key=_key("p", 3))
        east2.put_item(TableName=name, Item=_item("p", 4, "new4"))
        home = regions.once(0)
        keys = [_key("p", sk) for sk in (1, 2, 3, 4, 5)]
        # us-east-1's own table (an eventually consistent read) has not applied them
        eventual = home.batch_get_item(RequestItems={name: {"Keys": keys}})
        assert _by_key(eventual["Responses"][name]) == {
            ("p", sk): _item("p", sk, f"old{sk}") for sk in (1, 2, 3)}
        # A consistent BatchGetItem has every acknowledged write, the delete included; the plain
        # table beside it is read as usual; each key charged as a strongly consistent GetItem
        answer = home.batch_get_item(RequestItems={
            name: {"Keys": keys, "ConsistentRead": True},
            plain: {"Keys": [{"pk": {"S": "p"}}, {"pk": {"S": "none"}}]}}, ReturnConsumedCapacity="TOTAL")
        assert _by_key(answer["Responses"][name]) == {
            ("p", 1): _item("p", 1, "old1"), ("p", 2): _item("p", 2, "new2"), ("p", 4): _item("p", 4, "new4")}
        assert answer["Responses"][plain] == [{"pk": {"S": "p"}, "v": {"S": "plain"}}]
        assert answer["UnprocessedKeys"] == {}
        assert sorted((c["TableName"], c["CapacityUnits"]) for c in answer["ConsumedCapacity"]) == [
            (name, 5.0), (plain, 1.0)]
        # A projection applies to the consistent read's items
        projected = home.batch_get_item(RequestItems={name: {"Keys": keys[1:2], "ConsistentRead": True,
                                                             "ProjectionExpression": "v"}})
        assert projected["Responses"][name] == [{"v": {"S": "new2"}}]
    finally:
        regions.procs[0].stop()
        regions.start(0)
