"""Capacity buckets in a PostgreSQL store's database (shoal.capacity.postgres_buckets),
against a real PostgreSQL: two nodes' buckets share one budget, where each
node's own file would grant it whole."""

from __future__ import annotations

import pytest

from shoal.capacity import Limit, SharedBuckets, shared_buckets
from shoal.capacity.on_demand import EMPTY
from shoal.capacity.postgres_buckets import PostgresBuckets
from shoal.storage.postgres_engine import PostgresEngine

BURST = Limit("table-id//write", 1.0, 100.0, "TableWriteProvisionedThroughputExceeded", "arn", "message")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(postgres_cluster):
    return postgres_cluster.create_database("capacity")


def _drain(nodes, limit: Limit, chunk: float) -> list[float]:
    """Take ``chunk`` from each node in turn until a round gets under a unit
    in all (a bucket refilling by the real clock is never quite empty): what each got."""
    got = [0.0] * len(nodes)
    while True:
        taken = [node.take(limit, chunk) for node in nodes]
        for i, units in enumerate(taken):
            got[i] += units
        if sum(taken) < 1.0:
            return got


def test_two_nodes_share_one_budget_and_its_refill(database):
    clock = Clock()
    nodes = [PostgresBuckets(database, "shoal", clock=clock) for _ in range(2)]
    try:
        got = _drain(nodes, BURST, 7.0)
        assert sum(got) == 100.0 and min(got) > 0  # a new bucket starts full: its burst, once in all
        assert [node.taken(BURST.key) for node in nodes] == [100.0, 100.0]
        clock.now += 10  # one unit a second
        assert sum(_drain(nodes, BURST, 3.0)) == 10.0
        # found empty, a bucket is not asked again until what was wanted could have refilled
        clock.now += 0.05
        assert nodes[0].take(BURST, 1.0) == 0.0
        clock.now += 0.1
        assert nodes[0].take(BURST, 1.0) == pytest.approx(0.15)
        # each node's own file would have granted the burst whole to each
        files = [SharedBuckets(None, clock=clock) for _ in range(2)]
        assert _drain(files, BURST, 7.0) == [100.0, 100.0]
    finally:
        for node in nodes:
            node.close()


def test_by_the_databases_clock_and_on_demand(database):
    nodes = [PostgresBuckets(database, "shoal") for _ in range(2)]
    try:
        got = sum(_drain(nodes, BURST, 10.0))
        assert 100.0 <= got < 110.0  # the burst, and what refilled while the test ran (a unit a second)
        on_demand = Limit("table-id//read", 4000.0, 4000.0, "TableReadKeyRangeThroughputExceeded", "arn",
                          "message", warm=4000.0)
        assert nodes[0].take(on_demand, 500.0) == 500.0
        assert nodes[1].peak(on_demand.key) != EMPTY  # the peak state is the row's, seen by every node
    finally:
        for node in nodes:
            node.close()


def test_shared_buckets_are_the_databases_over_postgresql_else_the_data_directorys(database, tmp_path):
    engine = PostgresEngine(database)
    try:
        buckets = shared_buckets(engine, str(tmp_path))
        assert isinstance(buckets, PostgresBuckets)
        buckets.close()
    finally:
        engine.close()
    local = shared_buckets(None, str(tmp_path))
    assert type(local) is SharedBuckets and local.path == str(tmp_path / "capacity")
    local.close()
