"""A region of an MRSC table catches up with the values chosen without it
(``shoal.replication.strong.catch_up``): killed while the other two went on
writing, it is started again and its own table (what its eventually
consistent reads read) gets every value, with no round of its own on those
keys asked for by a client."""

from __future__ import annotations

import time

import pytest

from shoal.replication.strong import LEARN_RETRY_DELAYS_S
from tests.server.test_mrsc import Regions, _eventually, _strong_table, running


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    yield from running(Regions(str(tmp_path_factory.mktemp("mrsc_catch_up"))))


def test_a_region_back_from_being_down_gets_the_values_chosen_without_it(regions):
    name = "mrsc_catch_up"
    _strong_table(regions, name)
    first = regions.once(0)
    first.put_item(TableName=name, Item={"pk": {"S": "before"}, "n": {"N": "0"}})
    assert _eventually(lambda: regions.once(2).get_item(TableName=name, Key={"pk": {"S": "before"}}).get("Item"),
                       timeout=30.0)
    regions.procs[2].kill()
    try:
        for n in range(5):  # chosen by the other two: the third neither accepted nor learnt them
            first.put_item(TableName=name, Item={"pk": {"S": f"while-down-{n}"}, "n": {"N": str(n)}})
        first.update_item(TableName=name, Key={"pk": {"S": "before"}}, UpdateExpression="SET n = :n",
                          ExpressionAttributeValues={":n": {"N": "7"}})
        first.delete_item(TableName=name, Key={"pk": {"S": "while-down-4"}})
        # down for longer than the Learn messages are tried (strong.LEARN_RETRY_DELAYS_S)
        time.sleep(sum(LEARN_RETRY_DELAYS_S) + 1.0)
    finally:
        regions.start(2)
    third = regions.once(2)

    def caught_up() -> bool:  # eventually consistent reads only: its own table
        items = {i["pk"]["S"]: i["n"]["N"] for i in third.scan(TableName=name)["Items"]}
        return items == {"before": "7", **{f"while-down-{n}": str(n) for n in range(4)}}

    assert _eventually(caught_up, timeout=30.0), third.scan(TableName=name)["Items"]
