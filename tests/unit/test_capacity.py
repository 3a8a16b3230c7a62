"""shoal.capacity's parts: buckets, the limits a table's description sets,
the buckets shared through one file, and reading a request's meter."""

from __future__ import annotations

import multiprocessing


from shoal.api.catalog import has_limits
from shoal.capacity import (
    BURST_S,
    INDEX_MESSAGE,
    PEAK_MESSAGE,
    TABLE_MESSAGE,
    OnDemandRules,
    Bucket,
    Limit,
    SharedBuckets,
    consumed,
    policy_of,
)


class FakeTable:
    """What policy_of reads of a catalog Table: its id, name and description."""

    def __init__(self, description: dict) -> None:
        self.table_id, self.name, self.description = "id1", "t", description


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_up_to_its_capacity_and_keeps_what_was_earned_when_retuned():
    bucket = Bucket(2.0, 10.0, now=0.0, tokens=0.0)
    bucket.refill(3.0)
    assert bucket.tokens == 6.0
    bucket.refill(100.0)
    assert bucket.tokens == 10.0  # capped
    bucket.tokens = -4.0  # a debt: consumption is charged after the request
    bucket.retune(1.0, 5.0, now=102.0)  # two seconds at the old rate, then the new one
    assert bucket.tokens == 0.0 and (bucket.rate, bucket.capacity) == (1.0, 5.0)
    bucket.refill(110.0)
    assert bucket.tokens == 5.0


def test_a_provisioned_table_limits_itself_and_each_gsi():
    arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t"
    provisioned = policy_of(FakeTable({
        "TableArn": arn, "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 7},
        "GlobalSecondaryIndexes": [{"IndexName": "g", "IndexArn": arn + "/index/g",
                                    "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 1}}]}))
    assert provisioned.reads[None] == Limit("id1//read", 5.0, 5.0 * BURST_S, "TableReadProvisionedThroughputExceeded",
                                            arn, TABLE_MESSAGE)
    assert provisioned.writes["g"] == Limit("id1/g/write", 1.0, BURST_S, "IndexWriteProvisionedThroughputExceeded",
                                            arn + "/index/g", INDEX_MESSAGE)
    assert policy_of(FakeTable({"ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}})) is None


def test_an_on_demand_table_and_each_gsi_start_at_their_warm_throughput_capped_by_their_maximums():
    arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t"
    on_demand = {"TableArn": arn, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
                 "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
                 "GlobalSecondaryIndexes": [{"IndexName": "g", "IndexArn": arn + "/index/g",
                                             "OnDemandThroughput": {"MaxReadRequestUnits": 7}}]}
    plain = policy_of(FakeTable(on_demand))  # DynamoDB's initial 12,000 reads and 4,000 writes a second
    assert plain.reads[None] == Limit("id1//read", 12000.0, 12000.0, "TableReadKeyRangeThroughputExceeded", arn,
                                      PEAK_MESSAGE, 12000.0, 40000.0, "TableReadAccountLimitExceeded")
    assert plain.writes[None].warm == 4000.0
    assert plain.reads["g"] == Limit("id1/g/read", 7.0, 7.0, "IndexReadKeyRangeThroughputExceeded", arn + "/index/g",
                                     PEAK_MESSAGE, 12000.0, 7.0, "IndexReadMaxOnDemandThroughputExceeded")
    capped = policy_of(FakeTable({**on_demand, "OnDemandThroughput": {"MaxWriteRequestUnits": 50,
                                                                      "MaxReadRequestUnits": -1},
                                  "WarmThroughput": {"ReadUnitsPerSecond": 30000, "WriteUnitsPerSecond": 100,
                                                     "Status": "ACTIVE"}}))
    assert (capped.reads[None].warm, capped.reads[None].maximum) == (30000.0, 40000.0)  # -1: the table quota
    assert (capped.writes[None].rate, capped.writes[None].warm, capped.writes[None].maximum) == (50.0, 4000.0, 50.0)
    small = policy_of(FakeTable(on_demand), OnDemandRules(read_units=20, write_units=10))  # a test server's numbers
    assert (small.reads[None].warm, small.writes[None].warm) == (20.0, 10.0)


def test_a_warm_throughput_above_the_maximum_is_served_up_to_the_maximum():
    """The Developer Guide's scenario ("Understanding DynamoDB warm throughput in different
    scenarios", an on-demand table with maximum throughput): warm 30,000 reads and 10,000 writes
    a second, maximums 5,000 and 4,000; the table is limited to its maximums (no error: the
    warm throughput stays what it is)."""
    limits = policy_of(FakeTable({
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "OnDemandThroughput": {"MaxReadRequestUnits": 5000, "MaxWriteRequestUnits": 4000},
        "WarmThroughput": {"ReadUnitsPerSecond": 30000, "WriteUnitsPerSecond": 10000, "Status": "ACTIVE"}}))
    assert [(limit.rate, limit.warm, limit.maximum, limit.max_reason) for limit in (limits.reads[None],
                                                                                   limits.writes[None])] == [
        (5000.0, 30000.0, 5000.0, "TableReadMaxOnDemandThroughputExceeded"),
        (4000.0, 10000.0, 4000.0, "TableWriteMaxOnDemandThroughputExceeded")]


PROVISIONED_AND_CAPPED = [
    {"ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}},
    {"BillingModeSummary": {"BillingMode": "PROVISIONED"}, "ProvisionedThroughput": {"ReadCapacityUnits": 1}},
    {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}, "OnDemandThroughput": {"MaxReadRequestUnits": 9}},
    {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
     "GlobalSecondaryIndexes": [{"IndexName": "g", "OnDemandThroughput": {"MaxWriteRequestUnits": 3}}]},
    {"ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
     "GlobalSecondaryIndexes": [{"IndexName": "g",
                                 "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 2}}]},
    {"ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}},
]


def test_the_catalog_marks_limited_exactly_the_tables_with_a_policy():
    """Catalog.require calls the hook only for tables marked ``limited``: the mark must agree with policy_of."""
    marks = [has_limits(desc) for desc in PROVISIONED_AND_CAPPED]
    assert marks == [True, True, True, True, True, False]
    assert marks == [policy_of(FakeTable(desc)) is not None for desc in PROVISIONED_AND_CAPPED]


def test_a_plain_on_demand_table_has_a_peak_policy_but_is_not_marked_limited():
    """The peak rule has a policy for every on-demand table, but by default
    the catalog marks limited only those with a maximum: a plain on-demand
    table is not throttled by its peak unless the dynamodb-faithful profile
    marks every table (docs/capacity.md says why)."""
    plain = {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
             "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}}
    assert policy_of(FakeTable(plain)) is not None
    assert not has_limits(plain)


def test_buckets_in_one_file_are_shared_and_start_with_their_burst(tmp_path):
    clock = Clock()
    limit = Limit("k/read", 10.0, 100.0, "r", "arn", "m")
    first, second = SharedBuckets(str(tmp_path / "capacity"), clock), SharedBuckets(str(tmp_path / "capacity"), clock)
    try:
        assert first.take(limit, 60.0) == 60.0
        assert second.take(limit, 60.0) == 40.0  # what the first left: one bucket, not two
        assert first.take(limit, 1.0) == 0.0
        clock.now += 0.5
        assert second.take(limit, 100.0) == 5.0  # half a second at 10 a second
        other = Limit("k/write", 1.0, 1.0, "w", "arn", "m")
        assert first.take(other, 5.0) == 1.0  # another key, another slot
    finally:
        first.close()
        second.close()


def _take_all(path: str, key: str, out) -> None:
    shared = SharedBuckets(path, lambda: 0.0)  # a frozen clock: no refill, only the 1,000 banked
    limit = Limit(key, 1.0, 1000.0, "r", "arn", "m")
    total = 0.0
    for _ in range(400):
        total += shared.take(limit, 1.0)
    out.put(total)
    shared.close()


def test_processes_taking_from_one_bucket_never_get_more_than_it_holds(tmp_path):
    path = str(tmp_path / "capacity")
    SharedBuckets(path).close()
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=_take_all, args=(path, "race", out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    totals = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(60)
    assert sum(totals) == 1000.0  # 4 x 400 asked, 1,000 held: granted exactly once each


def test_a_file_of_another_layout_is_started_afresh(tmp_path):
    path = tmp_path / "capacity"
    path.write_bytes(b"not a capacity file")
    shared = SharedBuckets(str(path))
    try:
        assert shared.take(Limit("k", 1.0, 3.0, "r", "arn", "m"), 5.0) == 3.0
    finally:
        shared.close()


def test_a_requests_meter_entries_become_units_by_table_index_and_kind():
    entries = [("t", 3), ("t", 4), ("t", 2.0), ("t", "write", 1.5, "g"), ("t", "write", 2.0, None),
               ("t", "read", 0.5, "g"), ("t", "returned", 7, "Query"), 12.5]
    assert consumed(entries) == {("t", None, "read"): 2.0,  # 1 strongly consistent block + 2 eventual
                                 ("t", None, "write"): 4.0, ("t", "g", "write"): 1.5, ("t", "g", "read"): 0.5}


def test_a_request_far_over_the_rate_leaves_a_debt_of_at_most_the_burst():
    from shoal.capacity import Capacity

    capacity = Capacity(SharedBuckets(None, Clock()))
    limit = Limit("t//write", 1.0, 300.0, "r", "arn", "m")
    assert capacity._has(limit)  # the banked burst: admitted
    capacity._spend(limit, 10_000.0)  # 25 items of 400 KB
    assert capacity.balance(limit.key) == -300.0
    assert not capacity._has(limit)  # throttled until the refill pays 300 units back, not 10,000


def test_a_bare_number_is_a_write_to_the_named_table_and_skipped_without_one():
    """The metrics recorder reads a bare number in a table's cell as a single-item write's units
    to that table; the capacity hook charges it the same way to the request's table."""
    entries = [1.0, ("t", "write", 2.0, "g"), 3]
    assert consumed(entries, "t") == {("t", None, "write"): 4.0, ("t", "g", "write"): 2.0}
    assert consumed(entries) == {("t", "g", "write"): 2.0}
