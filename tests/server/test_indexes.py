"""Secondary indexes (LSI and GSI) through boto3 against a real server."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique_name

INVALID = "One or more parameter values were invalid: "


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def attrs(*pairs):
    return [{"AttributeName": n, "AttributeType": t} for n, t in pairs]


def schema(hash_key, range_key=None):
    out = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        out.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return out


def index(name, hash_key, range_key=None, projection="ALL", non_key=None):
    spec = {"ProjectionType": projection}
    if non_key:
        spec["NonKeyAttributes"] = non_key
    return {"IndexName": name, "KeySchema": schema(hash_key, range_key), "Projection": spec}


@pytest.fixture(scope="module")
def events(ddb):
    """A viewer-events table: LSIs on event_type (KEYS_ONLY) and position
    (INCLUDE country), GSIs on content_id+ts (ALL) and country (KEYS_ONLY)."""
    name = unique_name("events")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=attrs(("user_id", "S"), ("ts", "N"), ("event_type", "S"), ("position_s", "N"),
                                   ("content_id", "S"), ("country", "S")),
        KeySchema=schema("user_id", "ts"),
        LocalSecondaryIndexes=[
            index("by_type", "user_id", "event_type", "KEYS_ONLY"),
            index("by_position", "user_id", "position_s", "INCLUDE", ["country"]),
        ],
        GlobalSecondaryIndexes=[
            index("by_content", "content_id", "ts"),
            index("by_country", "country", None, "KEYS_ONLY"),
        ],
    )
    for u in range(3):
        for i in range(20):
            item = {
                "user_id": {"S": f"u{u:08d}"}, "ts": {"N": str(1000 + i)},
                "event_type": {"S": ("play", "pause", "stop")[i % 3]},
                "position_s": {"N": str(100 - i)}, "country": {"S": ("FR", "US")[u % 2]},
                "bitrate_kbps": {"N": "3000"},
            }
            if i % 2 == 0:  # every other event has a title: the GSI is sparse
                item["content_id"] = {"S": f"c{i % 4:06d}"}
            ddb.put_item(TableName=name, Item=item)
    yield name
    ddb.delete_table(TableName=name)


def q(ddb, table, index_name, cond, values, **kw):
    return ddb.query(TableName=table, IndexName=index_name, KeyConditionExpression=cond,
                     ExpressionAttributeValues=values, **kw)


# ---------------------------------------------------------------- projections


def test_gsi_all_projection_query_in_index_order(ddb, events):
    out = q(ddb, events, "by_content", "content_id = :c", {":c": {"S": "c000000"}})
    # i % 4 == 0: i = 0, 4, 8, 12, 16 for each of the 3 users; ordered by ts, then table key.
    got = [(i["ts"]["N"], i["user_id"]["S"]) for i in out["Items"]]
    assert got == sorted(got, key=lambda p: (int(p[0]), p[1]))
    assert len(got) == 15
    assert out["Items"][0]["bitrate_kbps"] == {"N": "3000"}  # ALL projects everything


def test_gsi_sort_key_condition_and_descending(ddb, events):
    out = q(ddb, events, "by_content", "content_id = :c AND ts BETWEEN :a AND :b",
            {":c": {"S": "c000002"}, ":a": {"N": "1002"}, ":b": {"N": "1006"}}, ScanIndexForward=False)
    assert [(i["ts"]["N"], i["user_id"]["S"]) for i in out["Items"]] == [
        ("1006", "u00000002"), ("1006", "u00000001"), ("1006", "u00000000"),
        ("1002", "u00000002"), ("1002", "u00000001"), ("1002", "u00000000"),
    ]


def test_keys_only_gsi_returns_keys(ddb, events):
    out = q(ddb, events, "by_country", "country = :c", {":c": {"S": "US"}})
    assert out["Count"] == 20
    assert set(out["Items"][0]) == {"user_id", "ts", "country"}


def test_lsi_keys_only_and_include(ddb, events):
    out = q(ddb, events, "by_type", "user_id = :u AND event_type = :t",
            {":u": {"S": "u00000000"}, ":t": {"S": "stop"}})
    assert [i["ts"]["N"] for i in out["Items"]] == ["1002", "1005", "1008", "1011", "1014", "1017"]
    assert set(out["Items"][0]) == {"user_id", "ts", "event_type"}
    out = q(ddb, events, "by_position", "user_id = :u AND position_s < :p",
            {":u": {"S": "u00000001"}, ":p": {"N": "84"}})
    assert [i["position_s"]["N"] for i in out["Items"]] == ["81", "82", "83"]
    assert set(out["Items"][0]) == {"user_id", "ts", "position_s", "country"}


def test_lsi_fetches_unprojected_attributes_from_the_table(ddb, events):
    out = q(ddb, events, "by_type", "user_id = :u AND event_type = :t",
            {":u": {"S": "u00000000"}, ":t": {"S": "stop"}}, Select="ALL_ATTRIBUTES",
            ConsistentRead=True, ReturnConsumedCapacity="INDEXES")
    assert out["Items"][0]["bitrate_kbps"] == {"N": "3000"}
    capacity = out["ConsumedCapacity"]
    assert capacity["LocalSecondaryIndexes"] == {"by_type": {"CapacityUnits": 1.0}}
    assert capacity["Table"] == {"CapacityUnits": 6.0}  # one strongly consistent read per fetched item
    assert capacity["CapacityUnits"] == 7.0
    out = q(ddb, events, "by_type", "user_id = :u AND event_type = :t",
            {":u": {"S": "u00000000"}, ":t": {"S": "stop"}}, ProjectionExpression="bitrate_kbps, ts")
    assert out["Items"][0] == {"bitrate_kbps": {"N": "3000"}, "ts": {"N": "1002"}}


def test_gsi_refuses_unprojected_attributes(ddb, events):
    code, message = error_of(q, ddb=ddb, table=events, index_name="by_country", cond="country = :c",
                             values={":c": {"S": "US"}}, Select="ALL_ATTRIBUTES")
    assert message == (INVALID + "Select type ALL_ATTRIBUTES is not supported for global secondary index "
                       "by_country because its projection type is not ALL")
    code, message = error_of(q, ddb=ddb, table=events, index_name="by_country", cond="country = :c",
                             values={":c": {"S": "US"}}, ProjectionExpression="ts, device.os, bitrate_kbps")
    assert message == INVALID + "Global secondary index by_country does not project [device, bitrate_kbps]"


def test_gsi_consistent_read_refused(ddb, events):
    assert error_of(q, ddb=ddb, table=events, index_name="by_content", cond="content_id = :c",
                    values={":c": {"S": "c000000"}}, ConsistentRead=True) == (
        "ValidationException", "Consistent reads are not supported on global secondary indexes")
    assert error_of(ddb.scan, TableName=events, IndexName="by_content", ConsistentRead=True) == (
        "ValidationException", "Consistent reads are not supported on global secondary indexes")


def test_unknown_index_and_wrong_key_condition(ddb, events):
    assert error_of(q, ddb=ddb, table=events, index_name="nope", cond="user_id = :u",
                    values={":u": {"S": "u"}}) == (
        "ValidationException", "The table does not have the specified index: nope")
    assert error_of(q, ddb=ddb, table=events, index_name="by_content", cond="user_id = :u",
                    values={":u": {"S": "u"}}) == (
        "ValidationException", "Query condition missed key schema element: content_id")
    assert error_of(q, ddb=ddb, table=events, index_name="by_content", cond="content_id = :c",
                    values={":c": {"S": "c"}, ":t": {"N": "1"}}, FilterExpression="ts = :t") == (
        "ValidationException",
        "Filter Expression can only contain non-primary key attributes: Primary key attribute: ts")


# ---------------------------------------------------------------- writes


def test_sparse_index_and_updates_move_entries(ddb, events):
    key = {"user_id": {"S": "u00000009"}, "ts": {"N": "5"}}
    ddb.put_item(TableName=events, Item={**key, "country": {"S": "ZZ"}})
    assert q(ddb, events, "by_content", "content_id = :c", {":c": {"S": "c999999"}})["Count"] == 0
    ddb.update_item(TableName=events, Key=key, UpdateExpression="SET content_id = :c",
                    ExpressionAttributeValues={":c": {"S": "c999999"}})
    out = q(ddb, events, "by_content", "content_id = :c", {":c": {"S": "c999999"}})
    assert out["Items"] == [{**key, "country": {"S": "ZZ"}, "content_id": {"S": "c999999"}}]
    ddb.update_item(TableName=events, Key=key, UpdateExpression="SET content_id = :c",
                    ExpressionAttributeValues={":c": {"S": "c888888"}})
    assert q(ddb, events, "by_content", "content_id = :c", {":c": {"S": "c999999"}})["Count"] == 0
    assert q(ddb, events, "by_content", "content_id = :c", {":c": {"S": "c888888"}})["Count"] == 1
    ddb.delete_item(TableName=events, Key=key)
    assert q(ddb, events, "by_content", "content_id = :c", {":c": {"S": "c888888"}})["Count"] == 0
    assert q(ddb, events, "by_country", "country = :c", {":c": {"S": "ZZ"}})["Count"] == 0


def test_wrong_index_key_type_is_refused_on_every_write(ddb, events):
    item = {"user_id": {"S": "u00000009"}, "ts": {"N": "6"}, "content_id": {"N": "7"}}
    expected = ("ValidationException", INVALID + "Type mismatch for Index Key content_id Expected: S Actual: N "
                "IndexName: by_content")
    assert error_of(ddb.put_item, TableName=events, Item=item) == expected
    assert error_of(ddb.batch_write_item, RequestItems={events: [{"PutRequest": {"Item": item}}]}) == expected
    assert error_of(ddb.update_item, TableName=events, Key={"user_id": item["user_id"], "ts": item["ts"]},
                    UpdateExpression="SET content_id = :c", ExpressionAttributeValues={":c": {"N": "7"}}) == expected
    # in a transaction the item's fault is its cancellation reason (DynamoDB's recorded answer)
    with pytest.raises(ClientError) as info:
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": events, "Item": item}}])
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert info.value.response["CancellationReasons"] == [{"Code": "ValidationError", "Message": expected[1]}]
    assert "Item" not in ddb.get_item(TableName=events, Key={"user_id": item["user_id"], "ts": item["ts"]})


def test_empty_string_index_key_is_refused(ddb, events):
    item = {"user_id": {"S": "u00000009"}, "ts": {"N": "7"}, "event_type": {"S": ""}}
    assert error_of(ddb.put_item, TableName=events, Item=item) == (
        "ValidationException",
        "One or more parameter values are not valid. A value specified for a secondary index key is not "
        "supported. The AttributeValue for a key attribute cannot contain an empty string value. "
        "IndexName: by_type, IndexKey: event_type")


def test_index_keys_obey_the_key_size_limits(ddb):
    name = unique_name("keysize")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=schema("pk"),
                     AttributeDefinitions=attrs(("pk", "S"), ("g", "S"), ("r", "S")),
                     GlobalSecondaryIndexes=[index("by_g", "g", "r")])
    ddb.put_item(TableName=name, Item={"pk": {"S": "fits"}, "g": {"S": "g" * 2048}, "r": {"S": "r" * 1024}})
    for attr, size, message in (("g", 2049, "Size of hashkey has exceeded the maximum size limit of2048 bytes"),
                                ("r", 1025, "Aggregated size of all range keys has exceeded the size limit of 1024 bytes")):
        item = {"pk": {"S": f"too-long-{attr}"}, "g": {"S": "g"}, "r": {"S": "r"}, attr: {"S": attr * size}}
        assert error_of(ddb.put_item, TableName=name, Item=item) == ("ValidationException", INVALID + message)
        assert error_of(ddb.batch_write_item, RequestItems={name: [{"PutRequest": {"Item": item}}]}) == (
            "ValidationException", INVALID + message)
        assert "Item" not in ddb.get_item(TableName=name, Key={"pk": item["pk"]})
    # Items already in the table when an index is added are left out of it if their key is too long.
    for n, size in enumerate((2048, 2049)):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"old{n}"}, "h": {"S": "h" * size}})
    ddb.update_table(TableName=name, AttributeDefinitions=attrs(("h", "S")),
                     GlobalSecondaryIndexUpdates=[{"Create": index("by_h", "h", projection="KEYS_ONLY")}])
    wait_for_index(ddb, name, "by_h")
    indexed = ddb.scan(TableName=name, IndexName="by_h")["Items"]
    assert [item["pk"]["S"] for item in indexed] == ["old0"]
    ddb.delete_table(TableName=name)


def test_write_capacity_and_item_collection_metrics(ddb, events):
    item = {"user_id": {"S": "u00000008"}, "ts": {"N": "1"}, "content_id": {"S": "c1"}, "note": {"S": "x"}}
    out = ddb.put_item(TableName=events, Item=item, ReturnConsumedCapacity="INDEXES",
                       ReturnItemCollectionMetrics="SIZE")
    assert out["ConsumedCapacity"]["GlobalSecondaryIndexes"] == {"by_content": {"CapacityUnits": 1.0}}
    assert out["ConsumedCapacity"]["CapacityUnits"] == 2.0
    assert out["ItemCollectionMetrics"] == {"ItemCollectionKey": {"user_id": {"S": "u00000008"}},
                                            "SizeEstimateRangeGB": [0.0, 1.0]}
    # A change to the GSI key is a delete and a put in the index: two units.
    out = ddb.update_item(TableName=events, Key={"user_id": item["user_id"], "ts": item["ts"]},
                          UpdateExpression="SET content_id = :c", ExpressionAttributeValues={":c": {"S": "c2"}},
                          ReturnConsumedCapacity="INDEXES")
    assert out["ConsumedCapacity"]["GlobalSecondaryIndexes"] == {"by_content": {"CapacityUnits": 2.0}}
    ddb.delete_item(TableName=events, Key={"user_id": item["user_id"], "ts": item["ts"]})


# ---------------------------------------------------------------- paging and scans


def test_index_pagination_carries_index_and_table_keys(ddb, events):
    seen = []
    kwargs = {}
    while True:
        out = q(ddb, events, "by_content", "content_id = :c", {":c": {"S": "c000000"}}, Limit=4, **kwargs)
        seen += [(i["ts"]["N"], i["user_id"]["S"]) for i in out["Items"]]
        if "LastEvaluatedKey" not in out:
            break
        assert set(out["LastEvaluatedKey"]) == {"user_id", "ts", "content_id"}
        kwargs = {"ExclusiveStartKey": out["LastEvaluatedKey"]}
    full = q(ddb, events, "by_content", "content_id = :c", {":c": {"S": "c000000"}})
    assert seen == [(i["ts"]["N"], i["user_id"]["S"]) for i in full["Items"]]


def test_exclusive_start_key_must_hold_index_and_table_keys(ddb, events):
    assert error_of(q, ddb=ddb, table=events, index_name="by_content", cond="content_id = :c",
                    values={":c": {"S": "c000000"}},
                    ExclusiveStartKey={"user_id": {"S": "u00000000"}, "ts": {"N": "1000"}}) == (
        "ValidationException", "Exclusive Start Key must have same size as table's key schema")


def test_parallel_scan_over_gsi_covers_it_once(ddb, events):
    total = 4
    found = []
    for segment in range(total):
        kwargs = {}
        while True:
            out = ddb.scan(TableName=events, IndexName="by_content", Segment=segment, TotalSegments=total,
                           Limit=7, **kwargs)
            found += [(i["user_id"]["S"], i["ts"]["N"]) for i in out["Items"]]
            if "LastEvaluatedKey" not in out:
                break
            kwargs = {"ExclusiveStartKey": out["LastEvaluatedKey"]}
    whole = ddb.scan(TableName=events, FilterExpression="attribute_exists(content_id)")
    assert sorted(found) == sorted((i["user_id"]["S"], i["ts"]["N"]) for i in whole["Items"])
    assert len(found) == len(set(found))


def test_scan_index_consumed_capacity(ddb, events):
    out = ddb.scan(TableName=events, IndexName="by_country", ReturnConsumedCapacity="INDEXES")
    capacity = out["ConsumedCapacity"]
    assert capacity["Table"] == {"CapacityUnits": 0.0}
    assert capacity["GlobalSecondaryIndexes"]["by_country"]["CapacityUnits"] == capacity["CapacityUnits"] > 0


# ---------------------------------------------------------------- DescribeTable


def test_describe_table_index_fields(ddb, events):
    table = ddb.describe_table(TableName=events)["Table"]
    names = {d["AttributeName"] for d in table["AttributeDefinitions"]}
    assert names == {"user_id", "ts", "event_type", "position_s", "content_id", "country"}
    lsis = {i["IndexName"]: i for i in table["LocalSecondaryIndexes"]}
    gsis = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert lsis["by_type"]["IndexArn"] == table["TableArn"] + "/index/by_type"
    assert lsis["by_position"]["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["country"]}
    content = gsis["by_content"]
    assert content["IndexStatus"] == "ACTIVE" and "Backfilling" not in content
    assert content["ProvisionedThroughput"]["ReadCapacityUnits"] == 0
    counted = ddb.scan(TableName=events, Select="COUNT", FilterExpression="attribute_exists(content_id)")["Count"]
    assert content["ItemCount"] == counted
    assert gsis["by_country"]["ItemCount"] == lsis["by_type"]["ItemCount"] == table["ItemCount"]
    assert content["IndexSizeBytes"] > 0
    assert lsis["by_type"]["IndexSizeBytes"] < table["TableSizeBytes"]


# ---------------------------------------------------------------- online index changes


def wait_for_index(ddb, table, name, status="ACTIVE", timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gsis = ddb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes") or []
        found = [g for g in gsis if g["IndexName"] == name]
        if (status is None and not found) or (found and found[0]["IndexStatus"] == status):
            return found[0] if found else None
        time.sleep(0.2)
    raise AssertionError(f"index {name} not {status} in time")


def test_create_gsi_online_while_writing_then_delete(ddb):
    name = unique_name("online")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=attrs(("pk", "S")),
                     KeySchema=schema("pk"))
    for start in range(0, 3000, 25):
        ddb.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": f"k{n:05d}"}, "g": {"S": f"g{n % 7}"}, "v": {"N": str(n)}}}}
            for n in range(start, start + 25)]})
    stop = threading.Event()
    errors = []

    def writer():
        n = 0
        while not stop.is_set():
            try:
                k = f"k{(n * 37) % 3500:05d}"
                if n % 5 == 4:
                    ddb.delete_item(TableName=name, Key={"pk": {"S": k}})
                else:
                    ddb.put_item(TableName=name, Item={"pk": {"S": k}, "g": {"S": f"g{n % 9}"}, "v": {"N": str(n)}})
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        out = ddb.update_table(
            TableName=name, AttributeDefinitions=attrs(("g", "S"), ("v", "N")),
            GlobalSecondaryIndexUpdates=[{"Create": index("by_g", "g", "v")}])
        created = out["TableDescription"]["GlobalSecondaryIndexes"][0]
        assert created["IndexStatus"] == "CREATING" and created["Backfilling"] is True
        assert error_of(q, ddb=ddb, table=name, index_name="by_g", cond="g = :g", values={":g": {"S": "g1"}}) == (
            "ValidationException", "Cannot read from backfilling global secondary index: by_g")
        wait_for_index(ddb, name, "by_g")
    finally:
        stop.set()
        thread.join()
    assert not errors
    table_items = []
    for page in ddb.get_paginator("scan").paginate(TableName=name):
        table_items += page["Items"]
    index_items = []
    for page in ddb.get_paginator("scan").paginate(TableName=name, IndexName="by_g"):
        index_items += page["Items"]
    key = lambda i: i["pk"]["S"]  # noqa: E731
    assert sorted(index_items, key=key) == sorted(table_items, key=key)
    described = wait_for_index(ddb, name, "by_g")
    assert described["ItemCount"] == len(table_items)

    out = ddb.update_table(TableName=name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_g"}}])
    assert out["TableDescription"]["GlobalSecondaryIndexes"][0]["IndexStatus"] == "DELETING"
    wait_for_index(ddb, name, "by_g", status=None)
    table = ddb.describe_table(TableName=name)["Table"]
    assert "GlobalSecondaryIndexes" not in table
    assert [d["AttributeName"] for d in table["AttributeDefinitions"]] == ["pk"]
    ddb.delete_table(TableName=name)


def test_update_table_gsi_rules(ddb):
    name = unique_name("rules")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=attrs(("pk", "S")),
                     KeySchema=schema("pk"))
    defs = attrs(("g", "S"))
    assert error_of(ddb.update_table, TableName=name, AttributeDefinitions=defs, GlobalSecondaryIndexUpdates=[
        {"Create": index("gi1", "g")}, {"Create": index("gi2", "g")}]) == (
        "LimitExceededException",
        "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table")
    assert error_of(ddb.update_table, TableName=name, GlobalSecondaryIndexUpdates=[
        {"Delete": {"IndexName": "gi1"}}, {"Delete": {"IndexName": "gi1"}}]) == (
        "ValidationException",
        INVALID + "Only one global secondary index update per index is allowed simultaneously. Index: gi1")
    assert error_of(ddb.update_table, TableName=name, GlobalSecondaryIndexUpdates=[
        {"Delete": {"IndexName": "gi1"}}]) == ("ResourceNotFoundException", f"Requested resource not found: Index gi1 for table {name}")
    ddb.update_table(TableName=name, AttributeDefinitions=defs,
                     GlobalSecondaryIndexUpdates=[{"Create": index("gi1", "g")}])
    wait_for_index(ddb, name, "gi1")
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "g": {"S": "x"}})
    assert q(ddb, name, "gi1", "g = :g", {":g": {"S": "x"}})["Items"] == [{"pk": {"S": "a"}, "g": {"S": "x"}}]
    assert error_of(ddb.update_table, TableName=name, AttributeDefinitions=defs,
                    GlobalSecondaryIndexUpdates=[{"Create": index("gi1", "g")}]) == (
        "ValidationException", "Attempting to create an index which already exists")
    ddb.delete_table(TableName=name)


def test_provisioned_gsi_throughput_update(ddb):
    name = unique_name("prov")
    pt = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    ddb.create_table(TableName=name, ProvisionedThroughput=pt, AttributeDefinitions=attrs(("pk", "S"), ("g", "S")),
                     KeySchema=schema("pk"),
                     GlobalSecondaryIndexes=[{**index("gi1", "g"), "ProvisionedThroughput": pt}])
    out = ddb.update_table(TableName=name, GlobalSecondaryIndexUpdates=[
        {"Update": {"IndexName": "gi1", "ProvisionedThroughput": {"ReadCapacityUnits": 7, "WriteCapacityUnits": 5}}}])
    gsi = out["TableDescription"]["GlobalSecondaryIndexes"][0]
    assert gsi["ProvisionedThroughput"]["ReadCapacityUnits"] == 7
    assert gsi["IndexStatus"] == "UPDATING"  # the answer, as DynamoDB's (DDB-TABLE-165)
    gsi = ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"][0]
    assert (gsi["IndexStatus"], gsi["ProvisionedThroughput"]["ReadCapacityUnits"]) == ("ACTIVE", 7)
    ddb.delete_table(TableName=name)


def test_query_filter_must_name_projected_attributes(ddb, events):
    expected = ("ValidationException",
                INVALID + "Secondary index by_type does not project one or more filter attributes: [bitrate_kbps]")
    assert error_of(q, ddb=ddb, table=events, index_name="by_type", cond="user_id = :u",
                    values={":u": {"S": "u00000000"}, ":b": {"N": "1"}}, FilterExpression="bitrate_kbps > :b",
                    Select="ALL_ATTRIBUTES") == expected
    out = q(ddb, events, "by_position", "user_id = :u", {":u": {"S": "u00000001"}, ":c": {"S": "US"}},
            FilterExpression="country = :c")
    assert out["Count"] == 20


def test_batch_write_item_collection_metrics_and_index_units(ddb, events):
    out = ddb.batch_write_item(RequestItems={events: [
        {"PutRequest": {"Item": {"user_id": {"S": "u00000007"}, "ts": {"N": str(n)}, "content_id": {"S": "cb"}}}}
        for n in range(3)]}, ReturnItemCollectionMetrics="SIZE", ReturnConsumedCapacity="TOTAL")
    metrics = out["ItemCollectionMetrics"][events]
    assert len(metrics) == 3
    assert metrics[0]["ItemCollectionKey"] == {"user_id": {"S": "u00000007"}}
    # Each put: 1 table unit + 1 for by_content (by_type / by_position / by_country skip it: sparse).
    assert out["ConsumedCapacity"] == [{"TableName": events, "CapacityUnits": 6.0}]
    ddb.batch_write_item(RequestItems={events: [
        {"DeleteRequest": {"Key": {"user_id": {"S": "u00000007"}, "ts": {"N": str(n)}}}} for n in range(3)]})


def test_all_projected_attributes_select(ddb, events):
    out = q(ddb, events, "by_country", "country = :c", {":c": {"S": "FR"}}, Select="ALL_PROJECTED_ATTRIBUTES", Limit=1)
    assert set(out["Items"][0]) == {"user_id", "ts", "country"}
    assert error_of(q, ddb=ddb, table=events, index_name="by_country", cond="country = :c",
                    values={":c": {"S": "FR"}}, Select="ALL_PROJECTED_ATTRIBUTES", ProjectionExpression="ts") == (
        "ValidationException", "Cannot specify the ProjectionExpression when choosing to get ALL_PROJECTED_ATTRIBUTES")


def test_batch_write_reports_units_per_index(ddb):
    from tests.conftest import create_content_index_table

    name = create_content_index_table(ddb, "bwgsi", "KEYS_ONLY")
    out = ddb.batch_write_item(RequestItems={name: [
        {"PutRequest": {"Item": {"pk": {"S": "a"}, "content_id": {"S": "c1"}}}},
        {"PutRequest": {"Item": {"pk": {"S": "b"}}}},  # no content_id: not in the index
    ]}, ReturnConsumedCapacity="INDEXES")
    capacity = out["ConsumedCapacity"][0]
    assert capacity["Table"] == {"CapacityUnits": 2.0}
    assert capacity["GlobalSecondaryIndexes"] == {"by_content": {"CapacityUnits": 1.0}}
    assert capacity["CapacityUnits"] == 3.0
    ddb.delete_table(TableName=name)
