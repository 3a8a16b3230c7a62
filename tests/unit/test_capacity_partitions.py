"""Per-partition limits (shoal.capacity.partitions): the keys a request draws
on, the hot keys' buckets (shared through one file), and the throttle the
capacity hook answers for a hot key of a real catalog table."""

from __future__ import annotations

import multiprocessing

import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import tables
from shoal.api.catalog import Catalog
from shoal.capacity import TABLE_MESSAGE, Capacity, SharedBuckets
from shoal.capacity.on_demand import OnDemandThrottlingException
from shoal.capacity.partitions import (
    HOT_KEY_MESSAGE,
    PartitionBuckets,
    PartitionRules,
    digest_of,
    enabled,
    key_text,
    request_keys,
)
from shoal.errors import ProvisionedThroughputExceededException

RULES = PartitionRules(read_units=30.0, write_units=10.0)


@pytest.fixture(autouse=True)
def catalog_flag(monkeypatch):
    """A Capacity with partition buckets marks every table of the process limited
    (``shoal.api.catalog.LIMIT_EVERY_TABLE``): undone after each test."""
    from shoal.api import catalog

    monkeypatch.setattr(catalog, "LIMIT_EVERY_TABLE", False, raising=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_switch_reads_its_variable(monkeypatch):
    monkeypatch.delenv("SHOAL_PARTITION_LIMITS", raising=False)
    assert not enabled()
    for word, on in (("1", True), ("on", True), ("TRUE", True), ("0", False), ("off", False), ("", False)):
        monkeypatch.setenv("SHOAL_PARTITION_LIMITS", word)
        assert enabled() is on
    monkeypatch.setenv("SHOAL_PARTITION_WRITE_UNITS", "25")
    assert PartitionRules.from_environment() == PartitionRules(3000.0, 25.0)
    assert PartitionRules() == PartitionRules(3000.0, 1000.0)  # DynamoDB's per-partition numbers


def test_equal_key_values_are_one_key():
    assert key_text({"N": "1"}) == key_text({"N": "1.00"}) == key_text({"N": "10E-1"}) == "N1"
    assert key_text({"S": "1"}) == "S1" != key_text({"N": "1"})
    assert key_text({"B": "AAE="}) == "BAAE="
    assert key_text(None) is None and key_text({"N": "x"}) is None and key_text({"L": []}) is None


# -- the keys of each operation, on a real table with a GSI -------------------------------------


@pytest.fixture
def ctx(engine):
    return Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: 1_700_000_000.0)


def make_table(ctx, name="hot", billing="PROVISIONED"):
    body = {"TableName": name, "BillingMode": billing,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "N"},
                                     {"AttributeName": "g", "AttributeType": "S"}],
            "GlobalSecondaryIndexes": [{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                        "Projection": {"ProjectionType": "KEYS_ONLY"}}]}
    if billing == "PROVISIONED":
        pt = {"ReadCapacityUnits": 10000, "WriteCapacityUnits": 10000}
        body["ProvisionedThroughput"] = pt
        body["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"] = pt
    else:
        body["OnDemandThroughput"] = {"MaxWriteRequestUnits": 40000}  # a maximum: the table is limited
    tables.create_table(ctx, body)
    with ctx.engine.read() as txn:
        return ctx.catalog.get(txn, ctx.region, name)


def test_each_operation_names_the_partition_keys_it_draws_on(ctx):
    table = make_table(ctx)
    key = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    assert request_keys("GetItem", {"TableName": "hot", "Key": key}, table) == [(None, "Sa")]
    assert request_keys("UpdateItem", {"TableName": "hot", "Key": key}, table) == [(None, "Sa")]
    assert request_keys("DeleteItem", {"TableName": "hot", "Key": key}, table) == [(None, "Sa")]
    assert request_keys("PutItem", {"Item": {**key, "g": {"S": "x"}}}, table) == [(None, "Sa"), ("by_g", "Sx")]
    assert request_keys("PutItem", {"Item": key}, table) == [(None, "Sa")]  # not in the GSI
    assert request_keys("Query", {"KeyConditionExpression": "#p = :p AND sk > :s",
                                  "ExpressionAttributeNames": {"#p": "pk"},
                                  "ExpressionAttributeValues": {":p": {"S": "q"}, ":s": {"N": "0"}}},
                        table) == [(None, "Sq")]
    assert request_keys("Query", {"IndexName": "by_g", "KeyConditionExpression": "g = :g",
                                  "ExpressionAttributeValues": {":g": {"S": "y"}}}, table) == [("by_g", "Sy")]
    assert request_keys("Query", {"KeyConditions": {"pk": {"ComparisonOperator": "EQ",
                                                           "AttributeValueList": [{"S": "k"}]}}},
                        table) == [(None, "Sk")]
    assert request_keys("Query", {"KeyConditionExpression": "begins_with(sk, :s) AND (:p = #k)",
                                  "ExpressionAttributeNames": {"#k": "pk"},
                                  "ExpressionAttributeValues": {":p": {"S": "r"}, ":s": {"N": "1"}}},
                        table) == [(None, "Sr")]
    assert request_keys("Query", {"KeyConditionExpression": "pk = "}, table) == []  # the Query refuses it
    assert request_keys("BatchGetItem", {"RequestItems": {"hot": {"Keys": [key, {**key, "pk": {"S": "b"}}]},
                                                         "other": {"Keys": [key]}}},
                        table) == [(None, "Sa"), (None, "Sb")]
    assert request_keys("BatchWriteItem", {"RequestItems": {table.arn: [
        {"PutRequest": {"Item": {**key, "g": {"S": "x"}}}}, {"DeleteRequest": {"Key": {**key, "pk": {"S": "c"}}}}]}},
        table) == [(None, "Sa"), ("by_g", "Sx"), (None, "Sc")]
    assert request_keys("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "hot", "Item": key}}, {"Update": {"TableName": "hot", "Key": {**key, "pk": {"S": "d"}}}},
        {"ConditionCheck": {"TableName": "other", "Key": key}}]}, table) == [(None, "Sa"), (None, "Sd")]
    assert request_keys("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "hot", "Key": key}}]},
                        table) == [(None, "Sa")]
    assert request_keys("Scan", {"TableName": "hot"}, table) == []
    assert request_keys("ExecuteStatement", {"Statement": "SELECT * FROM hot"}, table) == []
    assert request_keys("GetItem", {"Key": "not a map"}, table) == []  # malformed: validation refuses it


# -- the buckets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True])
def test_a_key_holds_one_second_of_its_rate_and_refills(tmp_path, shared):
    clock = Clock()
    buckets = PartitionBuckets(str(tmp_path / "p") if shared else None, RULES, clock)
    digest = digest_of("t", None, "write", "Sa")
    assert buckets.take(digest, 10.0, 4.0) == 4.0  # a new key's bucket is full
    assert buckets.take(digest, 10.0, 10.0) == 6.0  # what is left
    assert buckets.take(digest, 10.0, 1.0) == 0.0
    assert buckets.take(digest_of("t", None, "write", "Sb"), 10.0, 1.0) == 1.0  # another key is not hot
    assert buckets.take(digest_of("t", "g", "write", "Sa"), 10.0, 1.0) == 1.0  # nor the same value in a GSI
    clock.now += 0.25
    assert buckets.take(digest, 10.0, 10.0) == 2.5
    clock.now += 60.0
    assert buckets.take(digest, 10.0, 100.0) == 10.0  # never more than a second of the rate
    buckets.close()


def test_two_handles_of_one_file_share_the_buckets(tmp_path):
    clock = Clock()
    first = PartitionBuckets(str(tmp_path / "p"), RULES, clock)
    second = PartitionBuckets(str(tmp_path / "p"), RULES, clock)
    digest = digest_of("t", "by_g", "read", "Sx")
    assert first.take(digest, 30.0, 30.0) == 30.0
    assert second.take(digest, 30.0, 1.0) == 0.0
    first.close()
    second.close()


def _take_all(path: str, out) -> None:
    buckets = PartitionBuckets(path, RULES, lambda: 5000.0)  # a frozen clock: nothing refills
    digest = digest_of("t", None, "write", "Shot")
    taken = 0.0
    while True:
        got = buckets.take(digest, 10.0, 0.5)
        if not got:
            break
        taken += got
    out.put(taken)


def test_processes_taking_from_one_key_never_get_more_than_it_holds(tmp_path):
    path = str(tmp_path / "p")
    PartitionBuckets(path, RULES).close()
    out = multiprocessing.get_context("fork").Queue()
    workers = [multiprocessing.get_context("fork").Process(target=_take_all, args=(path, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert out.get(timeout=5) + out.get(timeout=5) == 10.0


def test_a_full_set_gives_up_the_slot_closest_to_full(tmp_path):
    clock = Clock()
    buckets = PartitionBuckets(str(tmp_path / "p"), RULES, clock)
    # Keys of one set: their digests' first four bytes agree modulo the number of sets.
    from shoal.capacity.partitions import SETS, WAYS

    same_set, n = [], 0
    target = int.from_bytes(digest_of("t", None, "write", "S0")[:4], "little") % SETS
    while len(same_set) < WAYS + 1:
        digest = digest_of("t", None, "write", f"S{n}")
        if int.from_bytes(digest[:4], "little") % SETS == target:
            same_set.append(digest)
        n += 1
    for i, digest in enumerate(same_set[:WAYS]):
        assert buckets.take(digest, 10.0, 10.0 if i else 5.0) == (10.0 if i else 5.0)  # the first half full
    assert buckets.take(same_set[WAYS], 10.0, 10.0) == 10.0  # a new key: the first one's slot, afresh
    assert all(buckets.take(d, 10.0, 1.0) == 0.0 for d in same_set[1:WAYS])  # the spent ones kept
    assert buckets.take(same_set[0], 10.0, 1.0) == 1.0  # forgotten (it was not hot): a full bucket again
    buckets.close()


# -- the capacity hook ---------------------------------------------------------------------------


class Request:
    meter = None


def admit(capacity, ctx, operation, data, writes):
    """Run ``operation``'s admission through Catalog.require as the dispatcher does, then settle."""
    request = Request()
    request.meter = [0, 0]  # a metrics cell's meter: two counts of one-block reads, then entries
    capacity.current = (operation, writes, data, request)
    try:
        with ctx.engine.read() as txn:
            ctx.catalog.require(txn, ctx.region, data["TableName"])
    finally:
        capacity.current = None
    return request


def charge(capacity, request, entries):
    request.meter.extend(entries)
    capacity.settle(request)


def test_a_hot_key_of_a_provisioned_table_is_throttled_with_its_reason(ctx):
    table = make_table(ctx)
    clock = Clock()
    capacity = Capacity(SharedBuckets(None, clock), PartitionBuckets(None, RULES, clock))
    ctx.catalog.capacity = capacity
    put = {"TableName": "hot", "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "g": {"S": "x"}}}
    for _ in range(10):  # ten units a second on the key: served
        charge(capacity, admit(capacity, ctx, "PutItem", put, True), [("hot", "write", 1.0, None)])
    with pytest.raises(ProvisionedThroughputExceededException) as info:
        admit(capacity, ctx, "PutItem", put, True)
    assert type(info.value) is ProvisionedThroughputExceededException
    assert info.value.message == TABLE_MESSAGE
    assert info.value.reasons == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": table.arn}]
    capacity.metered = None  # the refused request is not settled
    other = {**put, "Item": {**put["Item"], "pk": {"S": "b"}, "g": {"S": "y"}}}
    charge(capacity, admit(capacity, ctx, "PutItem", other, True), [("hot", "write", 1.0, None)])
    read = {"TableName": "hot", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}}}
    charge(capacity, admit(capacity, ctx, "GetItem", read, False), [("hot", 2)])  # reads are apart
    clock.now += 0.2
    charge(capacity, admit(capacity, ctx, "PutItem", put, True), [("hot", "write", 1.0, None)])


def test_a_hot_gsi_key_throttles_the_tables_writes(ctx):
    table = make_table(ctx)
    clock = Clock()
    capacity = Capacity(SharedBuckets(None, clock), PartitionBuckets(None, RULES, clock))
    ctx.catalog.capacity = capacity
    n = 0
    for n in range(10):  # different items, one GSI key
        put = {"TableName": "hot", "Item": {"pk": {"S": f"i{n}"}, "sk": {"N": "1"}, "g": {"S": "same"}}}
        charge(capacity, admit(capacity, ctx, "PutItem", put, True),
               [("hot", "write", 1.0, None), ("hot", "write", 1.0, "by_g")])
    put = {"TableName": "hot", "Item": {"pk": {"S": "new"}, "sk": {"N": "1"}, "g": {"S": "same"}}}
    with pytest.raises(ProvisionedThroughputExceededException) as info:
        admit(capacity, ctx, "PutItem", put, True)
    assert info.value.reasons == [{"reason": "IndexWriteKeyRangeThroughputExceeded",
                                   "resource": table.arn + "/index/by_g"}]


def test_an_on_demand_tables_hot_key_answers_throttling_exception(ctx):
    table = make_table(ctx, "odh", billing="PAY_PER_REQUEST")
    clock = Clock()
    capacity = Capacity(SharedBuckets(None, clock), PartitionBuckets(None, RULES, clock))
    ctx.catalog.capacity = capacity
    query = {"TableName": "odh", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}}}
    charge(capacity, admit(capacity, ctx, "Query", query, False), [("odh", "read", 31.0, None)])
    with pytest.raises(OnDemandThrottlingException) as info:
        admit(capacity, ctx, "Query", query, False)
    assert info.value.message == HOT_KEY_MESSAGE
    assert info.value.to_body()["throttlingReasons"] == [{"reason": "TableReadKeyRangeThroughputExceeded",
                                                          "resource": table.arn}]


def test_batch_units_are_shared_equally_by_its_keys(ctx):
    make_table(ctx)
    clock = Clock()
    capacity = Capacity(SharedBuckets(None, clock), PartitionBuckets(None, RULES, clock))
    ctx.catalog.capacity = capacity
    keys = [{"pk": {"S": k}, "sk": {"N": "1"}} for k in ("a", "b")]
    batch = {"TableName": "hot", "RequestItems": {"hot": {"Keys": keys}}}
    charge(capacity, admit(capacity, ctx, "BatchGetItem", batch, False), [("hot", "read", 40.0, None)])
    one = {"TableName": "hot", "Key": keys[0]}
    charge(capacity, admit(capacity, ctx, "GetItem", one, False), [("hot", "read", 9.0, None)])  # 20 + 9 < 30
    charge(capacity, admit(capacity, ctx, "GetItem", one, False), [("hot", "read", 1.0, None)])  # 30: spent
    with pytest.raises(ProvisionedThroughputExceededException):
        admit(capacity, ctx, "GetItem", one, False)


def test_the_switch_makes_partition_buckets_beside_the_shared_ones_closed_with_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOAL_PARTITION_LIMITS", "on")
    shared = SharedBuckets(str(tmp_path / "capacity"))
    capacity = Capacity(shared)
    assert capacity.partitions is not None and (tmp_path / "capacity-partitions").exists()
    shared.close()
    assert capacity.partitions._fd == -1


def test_partition_buckets_mark_every_table_for_the_hook():
    from shoal.api import catalog

    Capacity(SharedBuckets(None), PartitionBuckets(None, RULES))
    assert catalog.LIMIT_EVERY_TABLE is True


def test_without_partition_buckets_a_hot_key_is_never_refused(ctx, monkeypatch):
    monkeypatch.delenv("SHOAL_PARTITION_LIMITS", raising=False)
    make_table(ctx)
    capacity = Capacity(SharedBuckets(None, Clock()))
    assert capacity.partitions is None
    ctx.catalog.capacity = capacity
    update = {"TableName": "hot", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}}}
    for _ in range(5000):  # far over a partition's 1,000 units, well within the table's burst
        charge(capacity, admit(capacity, ctx, "UpdateItem", update, True), [("hot", "write", 1.0, None)])


def test_a_writes_bare_number_is_charged_to_the_requests_table(ctx, monkeypatch):
    monkeypatch.delenv("SHOAL_PARTITION_LIMITS", raising=False)
    table = make_table(ctx)
    capacity = Capacity(SharedBuckets(None, Clock()))
    ctx.catalog.capacity = capacity
    update = {"TableName": "hot", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}}}
    request = admit(capacity, ctx, "UpdateItem", update, True)  # metered apart (a PutItem is charged at admission)
    charge(capacity, request, [3.0])  # a single-item write's units, metered as a bare number
    key = f"{table.table_id}//write"
    assert capacity.shared.taken(key) - capacity.balance(key) == 3.0
    assert request.meter == [0, 0, 3.0]  # handed on to the metrics as it came
