"""The capacity hook's request path (shoal.capacity.Capacity: admit, then
settle) driven through a real in-process Dispatcher: each request is
charged exactly what it consumed, whatever way its meter took (a GetItem's
counted one-block read, a larger item's entry, a write's, a batch over two
tables), the metrics still receive what they would without limits, and a
control-plane request or another thread's look-up is never refused."""

from __future__ import annotations

import threading

import orjson
import pytest

from shoal.errors import ProvisionedThroughputExceededException
from shoal.server.dispatch import Dispatcher
from shoal.server.http import Request

HEADERS = {"content-type": "application/x-amz-json-1.0",
           "authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
                            "SignedHeaders=host, Signature=x"}


@pytest.fixture(params=[False, True], ids=["metrics-off", "metrics-on"])
def dispatcher(engine, request):
    dispatcher = Dispatcher(engine, metrics=request.param, capacity=True, group_commit=False)
    yield dispatcher
    dispatcher.capacity.shared.close()


def call(dispatcher, operation: str, body: dict) -> dict:
    answer = dispatcher(Request("POST", "/", {**HEADERS, "x-amz-target": "DynamoDB_20120810." + operation},
                                orjson.dumps(body), ("127.0.0.1", 1), False))
    out = orjson.loads(answer.body) if answer.body else {}
    assert answer.status == 200, out
    return out


def provisioned(dispatcher, name: str, rcu: int = 1000, wcu: int = 1000, gsi: bool = False) -> str:
    """A provisioned table; its id (the buckets' keys start with it)."""
    body = {"TableName": name, "BillingMode": "PROVISIONED",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "ProvisionedThroughput": {"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu}}
    if gsi:
        body["AttributeDefinitions"].append({"AttributeName": "g", "AttributeType": "S"})
        body["GlobalSecondaryIndexes"] = [{
            "IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
            "ProvisionedThroughput": {"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu}}]
    return call(dispatcher, "CreateTable", body)["TableDescription"]["TableId"]


def charged(dispatcher, key: str) -> float:
    """Units charged to bucket ``key`` by this worker: what it took from the bucket, less its balance."""
    capacity = dispatcher.capacity
    return capacity.shared.taken(key) - capacity.balance(key)


def test_each_form_of_a_requests_meter_is_charged_what_it_consumed(dispatcher):
    table = provisioned(dispatcher, "plain")
    call(dispatcher, "PutItem", {"TableName": "plain", "Item": {"pk": {"S": "small"}}})  # 1 unit
    call(dispatcher, "PutItem", {"TableName": "plain", "Item": {"pk": {"S": "big"}, "blob": {"S": "x" * 5000}}})
    assert charged(dispatcher, f"{table}//write") == 1 + 5  # 5,000-odd bytes: five 1 KB units
    for _ in range(3):  # one block, eventually consistent: half a unit each
        call(dispatcher, "GetItem", {"TableName": "plain", "Key": {"pk": {"S": "small"}}})
    call(dispatcher, "GetItem", {"TableName": "plain", "Key": {"pk": {"S": "small"}}, "ConsistentRead": True})
    call(dispatcher, "GetItem", {"TableName": "plain", "Key": {"pk": {"S": "none"}}})  # nothing found: half a unit
    call(dispatcher, "GetItem", {"TableName": "plain", "Key": {"pk": {"S": "big"}}, "ConsistentRead": True})  # 2 blocks
    assert charged(dispatcher, f"{table}//read") == 3 * 0.5 + 1 + 0.5 + 2
    if dispatcher.metrics is not None:  # the metrics see the reads as they would without limits
        cell = dispatcher.metrics.recorder.cells[("us-east-1", "plain", "GetItem")]
        assert cell.sink[:2] == [4, 1] and cell.sink[2:] == [("plain", 5)]


def test_writes_are_charged_to_the_table_and_each_gsi_and_a_batch_to_each_table(dispatcher):
    first = provisioned(dispatcher, "first", gsi=True)
    second = provisioned(dispatcher, "second")
    call(dispatcher, "PutItem", {"TableName": "first", "Item": {"pk": {"S": "a"}, "g": {"S": "x"}}})
    call(dispatcher, "PutItem", {"TableName": "first", "Item": {"pk": {"S": "b"}}})  # not in the index
    assert (charged(dispatcher, f"{first}//write"), charged(dispatcher, f"{first}/by_g/write")) == (2, 1)
    call(dispatcher, "BatchWriteItem", {"RequestItems": {
        "first": [{"PutRequest": {"Item": {"pk": {"S": f"c{i}"}, "g": {"S": "y"}}}} for i in range(3)],
        "second": [{"PutRequest": {"Item": {"pk": {"S": f"d{i}"}}}} for i in range(2)]}})
    assert charged(dispatcher, f"{first}//write") == 5 and charged(dispatcher, f"{first}/by_g/write") == 4
    assert charged(dispatcher, f"{second}//write") == 2
    call(dispatcher, "Query", {"TableName": "first", "IndexName": "by_g", "KeyConditionExpression": "g = :g",
                               "ExpressionAttributeValues": {":g": {"S": "y"}}})
    assert charged(dispatcher, f"{first}/by_g/read") == 0.5 and charged(dispatcher, f"{first}//read") == 0


def test_a_spent_table_refuses_data_but_not_the_control_plane_nor_other_threads(dispatcher):
    provisioned(dispatcher, "spent", rcu=1, wcu=1)
    refused = None
    for n in range(400):  # one unit a second and 300 banked
        try:
            call(dispatcher, "PutItem", {"TableName": "spent", "Item": {"pk": {"S": str(n)}}})
        except AssertionError as exc:
            refused = exc
            break
    assert refused is not None and "ProvisionedThroughputExceededException" in str(refused)
    assert call(dispatcher, "DescribeTable", {"TableName": "spent"})["Table"]["TableName"] == "spent"
    capacity, catalog = dispatcher.capacity, dispatcher.catalog
    errors = []

    def look_up() -> None:  # an export or replication thread reading the table while a request is served
        try:
            with dispatcher.engine.read() as txn:
                catalog.require(txn, "us-east-1", "spent")
        except Exception as exc:  # noqa: BLE001 - the test reports any
            errors.append(exc)

    class Served:  # the request the worker is serving meanwhile: its meter
        meter = None

    capacity.current = ("PutItem", True, {"TableName": "spent"}, Served())
    try:
        thread = threading.Thread(target=look_up)
        thread.start()
        thread.join()
        assert errors == []
        with pytest.raises(ProvisionedThroughputExceededException):  # the worker's own request is refused
            with dispatcher.engine.read() as txn:
                catalog.require(txn, "us-east-1", "spent")
    finally:
        capacity.current = None
        capacity.metered = None
    call(dispatcher, "UpdateTable", {"TableName": "spent", "ProvisionedThroughput": {
        "ReadCapacityUnits": 1, "WriteCapacityUnits": 1000}})  # lifting the throttle is never throttled


def fails(dispatcher, operation: str, body: dict) -> str:
    answer = dispatcher(Request("POST", "/", {**HEADERS, "x-amz-target": "DynamoDB_20120810." + operation},
                                orjson.dumps(body), ("127.0.0.1", 1), False))
    assert answer.status == 400
    return orjson.loads(answer.body)["__type"].rsplit("#", 1)[-1]


def test_a_failed_get_or_put_is_given_back_what_admission_charged(dispatcher):
    """Except a write whose condition failed: DynamoDB consumes its units
    (``test_a_failed_condition_is_charged_the_existing_items_units``)."""
    table = provisioned(dispatcher, "refused", gsi=True)
    call(dispatcher, "PutItem", {"TableName": "refused", "Item": {"pk": {"S": "a"}}})
    assert fails(dispatcher, "GetItem", {"TableName": "refused", "Key": {"pk": {"N": "1"}}}) == "ValidationException"
    assert fails(dispatcher, "PutItem", {"TableName": "refused", "Item": {"pk": {"S": "a"}},
                                         "ConditionExpression": "attribute_not_exists(pk)"}) \
        == "ConditionalCheckFailedException"
    assert fails(dispatcher, "PutItem", {"TableName": "refused", "Item": {"pk": {"S": "b"}, "g": {"N": "1"}}}) \
        == "ValidationException"  # the index key's type: refused by the write path, after admission
    assert charged(dispatcher, f"{table}//read") == 0
    # the put's unit, and the failed condition's: DynamoDB charges it (the existing item's one unit)
    assert charged(dispatcher, f"{table}//write") == 2 and charged(dispatcher, f"{table}/by_g/write") == 0
    call(dispatcher, "GetItem", {"TableName": "refused", "Key": {"pk": {"S": "a"}}})  # and the next is charged
    assert charged(dispatcher, f"{table}//read") == 0.5


def test_reads_and_writes_beyond_the_least_are_charged_with_or_without_metrics(dispatcher):
    table = provisioned(dispatcher, "large", gsi=True)
    item = {"pk": {"S": "big"}, "g": {"S": "x"}, "blob": {"S": "x" * 9000}}  # 9 KB: 9 write units, 3 blocks
    call(dispatcher, "PutItem", {"TableName": "large", "Item": item})
    assert charged(dispatcher, f"{table}//write") == 9 and charged(dispatcher, f"{table}/by_g/write") == 1
    call(dispatcher, "PutItem", {"TableName": "large", "Item": {"pk": {"S": "big"}}})  # the old item's size: 9
    assert charged(dispatcher, f"{table}//write") == 18 and charged(dispatcher, f"{table}/by_g/write") == 2
    call(dispatcher, "PutItem", {"TableName": "large", "Item": item})
    call(dispatcher, "GetItem", {"TableName": "large", "Key": {"pk": {"S": "big"}}})
    assert charged(dispatcher, f"{table}//read") == 1.5
    call(dispatcher, "GetItem", {"TableName": "large", "Key": {"pk": {"S": "big"}}, "ConsistentRead": True})
    assert charged(dispatcher, f"{table}//read") == 4.5
    if dispatcher.metrics is not None:  # the metrics see what they would without limits
        cell = dispatcher.metrics.recorder.cells[("us-east-1", "large", "GetItem")]
        assert cell.sink[:2] == [0, 0] and cell.sink[2:] == [("large", 6), ("large", 7)]


def test_a_local_indexs_writes_are_charged_to_the_table(dispatcher):
    body = {"TableName": "local", "BillingMode": "PROVISIONED",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "l")],
            "LocalSecondaryIndexes": [{"IndexName": "by_l", "Projection": {"ProjectionType": "ALL"},
                                       "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                     {"AttributeName": "l", "KeyType": "RANGE"}]}],
            "ProvisionedThroughput": {"ReadCapacityUnits": 100, "WriteCapacityUnits": 100}}
    table = call(dispatcher, "CreateTable", body)["TableDescription"]["TableId"]
    answer = call(dispatcher, "PutItem", {"TableName": "local", "ReturnConsumedCapacity": "TOTAL",
                                          "Item": {"pk": {"S": "a"}, "sk": {"S": "1"}, "l": {"S": "x"}}})
    assert answer["ConsumedCapacity"]["CapacityUnits"] == 2  # the table's unit and the index's
    assert charged(dispatcher, f"{table}//write") == 2


def test_another_threads_look_up_during_a_get_is_not_charged_to_it(dispatcher):
    table = provisioned(dispatcher, "looked")
    other = provisioned(dispatcher, "other")
    for name in ("looked", "other"):  # the tables' plans made: the look-ups below take the inline way
        call(dispatcher, "GetItem", {"TableName": name, "Key": {"pk": {"S": "a"}}})
    capacity, catalog = dispatcher.capacity, dispatcher.catalog

    class Served:
        meter = None

    def look_up(name: str) -> None:
        with dispatcher.engine.read() as txn:
            catalog.require(txn, "us-east-1", name)

    # the names as a request's JSON gives them: strings of their own, not the interned constants
    request = {"TableName": "".join(["loo", "ked"]), "Key": {"pk": {"S": "a"}}}
    capacity.current = ("GetItem", False, request, Served())
    try:  # an export or replication thread reading either table while the GetItem is served
        for name in ("".join(["loo", "ked"]), "".join(["oth", "er"])):
            thread = threading.Thread(target=look_up, args=(name,))
            thread.start()
            thread.join()
        assert (charged(dispatcher, f"{table}//read"), charged(dispatcher, f"{other}//read")) == (0.5, 0.5)
        look_up(request["TableName"])  # the GetItem's own look-up: charged
        look_up(request["TableName"])  # and once only
    finally:
        capacity.current = None
    assert (charged(dispatcher, f"{table}//read"), charged(dispatcher, f"{other}//read")) == (1.0, 0.5)


def test_a_failed_condition_is_charged_the_existing_items_units(dispatcher):
    """A PutItem (charged at admission), UpdateItem or DeleteItem (metered apart)
    whose condition fails consumes the existing item's write units, or one when
    there is none; no GSI is written, so none is charged; the metrics get the same."""
    table = provisioned(dispatcher, "guarded", gsi=True)
    item = {"pk": {"S": "big"}, "g": {"S": "x"}, "blob": {"S": "x" * 5000}}  # 5,000-odd bytes: 5 units
    call(dispatcher, "PutItem", {"TableName": "guarded", "Item": item})
    assert (charged(dispatcher, f"{table}//write"), charged(dispatcher, f"{table}/by_g/write")) == (5, 1)
    refused = [
        ("PutItem", {"Item": {"pk": {"S": "big"}}, "ConditionExpression": "attribute_not_exists(pk)"}, 5),
        ("UpdateItem", {"Key": {"pk": {"S": "big"}}, "UpdateExpression": "SET n = :n",
                        "ConditionExpression": "n = :n", "ExpressionAttributeValues": {":n": {"N": "1"}}}, 5),
        ("DeleteItem", {"Key": {"pk": {"S": "big"}}, "Expected": {"g": {"Value": {"S": "y"}}}}, 5),
        ("PutItem", {"Item": {"pk": {"S": "none"}, "blob": {"S": "y" * 3000}},
                     "ConditionExpression": "attribute_exists(pk)"}, 1),  # no item: one unit, not the new one's 3
        ("UpdateItem", {"Key": {"pk": {"S": "none"}}, "UpdateExpression": "SET n = :n",
                        "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeValues": {":n": {"N": "1"}}},
         1),
        ("DeleteItem", {"Key": {"pk": {"S": "none"}}, "ConditionExpression": "attribute_exists(pk)"}, 1),
    ]
    expected = 5
    for operation, body, units in refused:
        assert fails(dispatcher, operation, {"TableName": "guarded", **body}) == "ConditionalCheckFailedException"
        expected += units
        assert charged(dispatcher, f"{table}//write") == expected, operation
    assert charged(dispatcher, f"{table}/by_g/write") == 1
    if dispatcher.metrics is not None:  # each failed write metered in its cell, as a successful one
        cells = dispatcher.metrics.recorder.cells
        assert [entry for operation in ("PutItem", "UpdateItem", "DeleteItem")
                for entry in cells[("us-east-1", "guarded", operation)].sink[2:]] == [
            ("guarded", "write", 1.0, "by_g"), ("guarded", "write", 5.0, None), 5.0, 1.0,
            ("guarded", 5.0), ("guarded", 1.0), ("guarded", 5.0), ("guarded", 1.0)]


def test_failed_partiql_writes_and_cancelled_transactions_are_charged(dispatcher):
    """A PartiQL write runs as its item operation, and ExecuteTransaction as
    TransactWriteItems: a failed condition (an INSERT of a key that exists) is
    charged the existing item's units; a transaction cancelled after its items
    were read, each item's existing size or one unit, twice."""
    table = provisioned(dispatcher, "statements")
    call(dispatcher, "PutItem", {"TableName": "statements", "Item": {"pk": {"S": "a"}, "blob": {"S": "x" * 3000}}})
    assert charged(dispatcher, f"{table}//write") == 3
    assert fails(dispatcher, "ExecuteStatement", {
        "Statement": "INSERT INTO statements VALUE {'pk': 'a'}"}) == "DuplicateItemException"
    assert charged(dispatcher, f"{table}//write") == 3 + 3
    assert fails(dispatcher, "ExecuteStatement", {
        "Statement": "UPDATE statements SET n = 1 WHERE pk = 'none'"}) == "ConditionalCheckFailedException"
    assert charged(dispatcher, f"{table}//write") == 3 + 3 + 1
    assert fails(dispatcher, "TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "statements", "Item": {"pk": {"S": "a"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Delete": {"TableName": "statements", "Key": {"pk": {"S": "none"}}}}]}) == "TransactionCanceledException"
    assert charged(dispatcher, f"{table}//write") == 3 + 3 + 1 + 2 * 3 + 2 * 1
    assert fails(dispatcher, "ExecuteTransaction", {"TransactStatements": [
        {"Statement": "INSERT INTO statements VALUE {'pk': 'a'}"}]}) == "TransactionCanceledException"
    assert charged(dispatcher, f"{table}//write") == 3 + 3 + 1 + 2 * 3 + 2 * 1 + 2 * 3


def frozen(dispatcher) -> None:
    """Stop the buckets' clock (before any is made): nothing refills, so what a batch may
    process is exactly what the bucket's 300 seconds of burst hold less what was consumed."""
    dispatcher.capacity.shared.clock = lambda: 1000.0


def big_item(key: str, units: int) -> dict:
    """An item of exactly ``units`` 1 KB write units (and ceil(units / 4) 4 KB read blocks)."""
    return {"pk": {"S": key}, "blob": {"S": "x" * (units * 1024 - 100)}}


def test_a_batch_write_is_served_item_by_item_until_the_throughput_is_spent(dispatcher):
    frozen(dispatcher)
    table = provisioned(dispatcher, "writes", rcu=1000, wcu=1)
    call(dispatcher, "PutItem", {"TableName": "writes", "Item": big_item("big", 290)})  # 10 of 300 left
    puts = [{"PutRequest": {"Item": {"pk": {"S": f"p{i}"}}}} for i in range(25)]
    answer = call(dispatcher, "BatchWriteItem", {"RequestItems": {"writes": puts},
                                                 "ReturnConsumedCapacity": "TOTAL"})
    assert answer["UnprocessedItems"] == {"writes": puts[10:]}  # the rest, in the order sent
    assert answer["ConsumedCapacity"] == [{"TableName": "writes", "CapacityUnits": 10.0}]
    assert charged(dispatcher, f"{table}//write") == 300
    found = call(dispatcher, "Scan", {"TableName": "writes", "ProjectionExpression": "pk"})["Items"]
    assert sorted(item["pk"]["S"] for item in found) == sorted(["big"] + [f"p{i}" for i in range(10)])
    # nothing left: none of the items can be processed, so the whole batch is refused
    assert fails(dispatcher, "BatchWriteItem", {"RequestItems": {"writes": puts[10:]}}) == \
        "ProvisionedThroughputExceededException"


def test_a_gsis_write_capacity_stops_a_batch_part_way(dispatcher):
    frozen(dispatcher)
    table = provisioned(dispatcher, "indexed", rcu=1000, wcu=1000, gsi=True)
    call(dispatcher, "UpdateTable", {"TableName": "indexed", "GlobalSecondaryIndexUpdates": [{"Update": {
        "IndexName": "by_g", "ProvisionedThroughput": {"ReadCapacityUnits": 1000, "WriteCapacityUnits": 1}}}]})
    for n in range(296):  # a unit each of the index's 300 (KEYS_ONLY: a small index entry)
        call(dispatcher, "PutItem", {"TableName": "indexed", "Item": {"pk": {"S": f"i{n}"}, "g": {"S": "x"}}})
    # items without the index key draw on the table alone, but once the index has no write capacity
    # left the table's writes are throttled too (as a PutItem's are)
    puts = [{"PutRequest": {"Item": {"pk": {"S": f"p{i}"}, **({"g": {"S": "y"}} if i % 2 else {})}}}
            for i in range(12)]
    answer = call(dispatcher, "BatchWriteItem", {"RequestItems": {"indexed": puts}})
    assert answer["UnprocessedItems"] == {"indexed": puts[8:]}  # p1, p3, p5, p7 took the index's last 4
    assert charged(dispatcher, f"{table}/by_g/write") == 300 and charged(dispatcher, f"{table}//write") == 296 + 8


def test_a_batch_get_is_served_key_by_key_and_another_table_in_full(dispatcher):
    frozen(dispatcher)
    table = provisioned(dispatcher, "reads", rcu=1, wcu=1000)
    provisioned(dispatcher, "other")
    call(dispatcher, "PutItem", {"TableName": "reads", "Item": big_item("big", 392)})  # 98 blocks of 4 KB
    for _ in range(3):  # 294 of the 300 units read, consistently
        call(dispatcher, "GetItem", {"TableName": "reads", "Key": {"pk": {"S": "big"}}, "ConsistentRead": True})
    keys = [{"pk": {"S": f"k{i}"}} for i in range(10)]  # no such items: one unit each, read consistently
    answer = call(dispatcher, "BatchGetItem", {"RequestItems": {
        "reads": {"Keys": keys, "ConsistentRead": True}, "other": {"Keys": keys}}, "ReturnConsumedCapacity": "TOTAL"})
    assert answer["UnprocessedKeys"] == {"reads": {"Keys": keys[6:], "ConsistentRead": True}}
    assert answer["Responses"] == {"reads": [], "other": []}
    assert answer["ConsumedCapacity"] == [{"TableName": "reads", "CapacityUnits": 6.0},
                                          {"TableName": "other", "CapacityUnits": 5.0}]
    assert charged(dispatcher, f"{table}//read") == 300
    assert fails(dispatcher, "BatchGetItem", {"RequestItems": {"reads": {"Keys": keys[6:]}}}) == \
        "ProvisionedThroughputExceededException"


def test_gets_and_puts_near_the_limit_are_held_to_the_rate_within_a_tenth(engine):
    """A GetItem or PutItem far from its limit is charged inline (``Catalog.require``)
    with a comparison and a subtraction; near the limit that same path must hold
    the table to its rate.  With the buckets' clock settable: the burst spent, ten
    seconds in steps of 50 ms admit 10 read units a second (200 eventually
    consistent GetItems) and 4 write units (40 PutItems), to within 10%."""
    dispatcher = Dispatcher(engine, metrics=False, capacity=True, group_commit=False)
    now = [1000.0]
    dispatcher.capacity.shared.clock = lambda: now[0]
    try:
        provisioned(dispatcher, "paced", rcu=10, wcu=4)
        call(dispatcher, "PutItem", {"TableName": "paced", "Item": {"pk": {"S": "a"}}})
        get = ("GetItem", {"TableName": "paced", "Key": {"pk": {"S": "a"}}})
        put = ("PutItem", {"TableName": "paced", "Item": {"pk": {"S": "a"}}})

        def admitted(operation: str, body: dict, most: int = 50) -> int:
            """Requests served until the first throttle (at most ``most``)."""
            served = 0
            while served < most:
                answer = dispatcher(Request("POST", "/", {**HEADERS, "x-amz-target": "DynamoDB_20120810." + operation},
                                            orjson.dumps(body), ("127.0.0.1", 1), False))
                if answer.status != 200:
                    assert b"ProvisionedThroughputExceededException" in answer.body
                    return served
                served += 1
            return served

        assert (admitted(*get, 7000), admitted(*put, 2000)) == (10 * 300 * 2, 4 * 300 - 1)  # the banked burst (one put before)
        gets = puts = 0
        for _ in range(200):
            now[0] += 0.05
            gets += admitted(*get)
            puts += admitted(*put)
        assert 180 <= gets <= 220 and 36 <= puts <= 44, (gets, puts)
    finally:
        dispatcher.capacity.shared.close()


def test_a_request_charged_at_admission_is_not_kept_past_it(dispatcher):
    """Charging a GetItem at admission leaves only its plan's marker as the
    current request (its body and context are not kept), and the dispatcher
    clears even that when the request ends."""
    provisioned(dispatcher, "light")
    call(dispatcher, "GetItem", {"TableName": "light", "Key": {"pk": {"S": "a"}}})  # the plan made
    assert dispatcher.capacity.current is None
    capacity, catalog = dispatcher.capacity, dispatcher.catalog

    class Served:
        meter = None

    request, served = {"TableName": "".join(["lig", "ht"]), "Key": {"pk": {"S": "a"}}}, Served()
    capacity.current = ("GetItem", False, request, served)
    try:
        with dispatcher.engine.read() as txn:
            catalog.require(txn, "us-east-1", request["TableName"])
        assert capacity.current is not None
        assert not any(part is request or part is served for part in capacity.current)
    finally:
        capacity.current = None
