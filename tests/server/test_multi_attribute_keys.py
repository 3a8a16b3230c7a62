"""Global secondary indexes with multi-attribute keys (up to four partition and
four sort attributes), through boto3 against a real server.

The viewer-events table gets the index "by_title_country": partition key
(content_id, country), sort key (event_type, ts): who did what with a title in
a country, in event-type then time order.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique_name

INVALID = "One or more parameter values were invalid: "
INDEX = "by_title_country"
KEYS = [{"AttributeName": "content_id", "KeyType": "HASH"}, {"AttributeName": "country", "KeyType": "HASH"},
        {"AttributeName": "event_type", "KeyType": "RANGE"}, {"AttributeName": "ts", "KeyType": "RANGE"}]
DEFINITIONS = [{"AttributeName": n, "AttributeType": t}
               for n, t in (("user_id", "S"), ("ts", "N"), ("content_id", "S"), ("country", "S"),
                            ("event_type", "S"))]


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def event(user: int, ts: int, event_type: str, content: str = "c000001", country: str | None = "NL") -> dict:
    item = {"user_id": {"S": f"u{user:08d}"}, "ts": {"N": str(ts)}, "event_type": {"S": event_type},
            "content_id": {"S": content}, "position_s": {"N": f"{ts % 977}.5"}}
    if country is not None:
        item["country"] = {"S": country}
    return item


# Events of title c000001: NL and DE viewers; one NL event without a country
# (sparse: not in the index) and one of another title.
EVENTS = [
    event(1, 1000, "play"), event(1, 1005, "pause"), event(1, 1010, "play"), event(2, 1002, "play"),
    event(2, 1003, "seek"), event(3, 1001, "stop"), event(3, 1004, "play", country="DE"),
    event(4, 1006, "play", country=None), event(5, 1007, "play", content="c000002"),
]


@pytest.fixture(scope="module")
def events(ddb):
    name = unique_name("multikey")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=DEFINITIONS,
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": INDEX, "KeySchema": KEYS, "Projection": {"ProjectionType": "ALL"}}])
    for item in EVENTS:
        ddb.put_item(TableName=name, Item=item)
    return name


def query(ddb, table, condition: str, values: dict, **extra) -> list[tuple]:
    """(event_type, ts, user) of every item of the Query, paging through."""
    request = {"TableName": table, "IndexName": INDEX, "KeyConditionExpression": condition,
               "ExpressionAttributeValues": values, **extra}
    out = []
    while True:
        page = ddb.query(**request)
        out += [(i["event_type"]["S"], int(i["ts"]["N"]), i["user_id"]["S"]) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return out
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


NL = {":c": {"S": "c000001"}, ":n": {"S": "NL"}}
PARTITION = "content_id = :c AND country = :n"


def test_describe_table_shows_the_whole_key_schema(ddb, events):
    gsi, = ddb.describe_table(TableName=events)["Table"]["GlobalSecondaryIndexes"]
    assert gsi["KeySchema"] == KEYS
    assert gsi["IndexStatus"] == "ACTIVE"
    assert gsi["ItemCount"] == 8  # only the event without a country is left out


def test_a_partition_is_every_partition_attribute_and_sorts_by_the_sort_attributes_in_order(ddb, events):
    assert query(ddb, events, PARTITION, NL) == [
        ("pause", 1005, "u00000001"), ("play", 1000, "u00000001"), ("play", 1002, "u00000002"),
        ("play", 1010, "u00000001"), ("seek", 1003, "u00000002"), ("stop", 1001, "u00000003")]
    assert query(ddb, events, PARTITION, {":c": {"S": "c000001"}, ":n": {"S": "DE"}}) == [
        ("play", 1004, "u00000003")]
    assert query(ddb, events, PARTITION, NL, ScanIndexForward=False)[:2] == [
        ("stop", 1001, "u00000003"), ("seek", 1003, "u00000002")]


def test_sort_conditions_on_a_prefix_of_the_sort_attributes(ddb, events):
    plays = {**NL, ":t": {"S": "play"}}
    assert query(ddb, events, f"{PARTITION} AND event_type = :t", plays) == [
        ("play", 1000, "u00000001"), ("play", 1002, "u00000002"), ("play", 1010, "u00000001")]
    window = {**plays, ":a": {"N": "1001"}, ":b": {"N": "1010"}}
    assert query(ddb, events, f"{PARTITION} AND event_type = :t AND ts BETWEEN :a AND :b", window) == [
        ("play", 1002, "u00000002"), ("play", 1010, "u00000001")]
    assert query(ddb, events, f"{PARTITION} AND event_type = :t AND ts > :a",
                 {**plays, ":a": {"N": "1002"}}) == [("play", 1010, "u00000001")]
    assert query(ddb, events, f"{PARTITION} AND event_type = :t AND ts = :a",
                 {**plays, ":a": {"N": "1002"}}) == [("play", 1002, "u00000002")]
    assert query(ddb, events, f"{PARTITION} AND begins_with(event_type, :p)", {**NL, ":p": {"S": "p"}}) == [
        ("pause", 1005, "u00000001"), ("play", 1000, "u00000001"), ("play", 1002, "u00000002"),
        ("play", 1010, "u00000001")]
    assert query(ddb, events, f"{PARTITION} AND event_type > :p", {**NL, ":p": {"S": "play"}}) == [
        ("seek", 1003, "u00000002"), ("stop", 1001, "u00000003")]


def test_paging_carries_every_key_attribute_and_loses_nothing(ddb, events):
    page = ddb.query(TableName=events, IndexName=INDEX, KeyConditionExpression=PARTITION,
                     ExpressionAttributeValues=NL, Limit=2)
    assert page["LastEvaluatedKey"] == {
        "user_id": {"S": "u00000001"}, "ts": {"N": "1000"}, "content_id": {"S": "c000001"},
        "country": {"S": "NL"}, "event_type": {"S": "play"}}
    everything = query(ddb, events, PARTITION, NL)
    assert query(ddb, events, PARTITION, NL, Limit=1) == everything
    assert query(ddb, events, PARTITION, NL, Limit=4, ScanIndexForward=False) == everything[::-1]
    outside = {**page["LastEvaluatedKey"], "country": {"S": "DE"}}
    assert error_of(ddb.query, TableName=events, IndexName=INDEX, KeyConditionExpression=PARTITION,
                    ExpressionAttributeValues=NL, ExclusiveStartKey=outside) == (
        "ValidationException",
        "The provided starting key is outside query boundaries based on provided conditions")


def test_legacy_key_conditions_and_count(ddb, events):
    page = ddb.query(TableName=events, IndexName=INDEX, Select="COUNT", KeyConditions={
        "content_id": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "c000001"}]},
        "country": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "NL"}]},
        "event_type": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "play"}]},
        "ts": {"ComparisonOperator": "LT", "AttributeValueList": [{"N": "1010"}]}})
    assert page["Count"] == 2


@pytest.mark.parametrize("condition, values, message", [
    ("content_id = :c", {":c": {"S": "c000001"}}, "Query condition missed key schema element: country"),
    (f"{PARTITION} AND ts = :a", {**NL, ":a": {"N": "1"}}, "Query condition missed key schema element: event_type"),
    (f"{PARTITION} AND event_type > :t AND ts = :a", {**NL, ":t": {"S": "a"}, ":a": {"N": "1"}},
     "Query key condition not supported"),
    ("content_id = :c AND country > :n", NL, "Query key condition not supported"),
    (f"{PARTITION} AND position_s = :a", {**NL, ":a": {"N": "1"}},
     "Query condition missed key schema element: event_type"),
    (f"{PARTITION} AND ts = :a", {**NL, ":a": {"S": "1"}}, "Query condition missed key schema element: event_type"),
    (f"{PARTITION} AND event_type = :a", {**NL, ":a": {"N": "1"}},
     INVALID + "Condition parameter type does not match schema type"),
])
def test_key_conditions_that_do_not_fit_the_schema(ddb, events, condition, values, message):
    assert error_of(ddb.query, TableName=events, IndexName=INDEX, KeyConditionExpression=condition,
                    ExpressionAttributeValues=values) == ("ValidationException", message)


def test_a_filter_may_not_name_a_key_attribute(ddb, events):
    assert error_of(ddb.query, TableName=events, IndexName=INDEX, KeyConditionExpression=PARTITION,
                    FilterExpression="ts > :a", ExpressionAttributeValues={**NL, ":a": {"N": "1"}}) == (
        "ValidationException",
        "Filter Expression can only contain non-primary key attributes: Primary key attribute: ts")


def test_sparse_entries_follow_every_key_attribute(ddb, events):
    key = {"user_id": {"S": "u00000004"}, "ts": {"N": "1006"}}  # the event without a country
    de = {":c": {"S": "c000001"}, ":n": {"S": "DE"}}
    ddb.update_item(TableName=events, Key=key, UpdateExpression="SET country = :n",
                    ExpressionAttributeValues={":n": {"S": "DE"}})
    assert ("play", 1006, "u00000004") in query(ddb, events, PARTITION, de)
    ddb.update_item(TableName=events, Key=key, UpdateExpression="REMOVE event_type")
    assert ("play", 1006, "u00000004") not in [r for r in query(ddb, events, PARTITION, de)]
    assert [r[2] for r in query(ddb, events, PARTITION, de)] == ["u00000003"]
    ddb.update_item(TableName=events, Key=key, UpdateExpression="SET event_type = :t REMOVE country",
                    ExpressionAttributeValues={":t": {"S": "play"}})
    assert [r[2] for r in query(ddb, events, PARTITION, de)] == ["u00000003"]


def test_a_key_attribute_of_the_wrong_type_is_refused_on_write(ddb, events):
    item = event(9, 2000, "play")
    item["event_type"] = {"N": "3"}
    assert error_of(ddb.put_item, TableName=events, Item=item) == (
        "ValidationException",
        f"{INVALID}Type mismatch for Index Key event_type Expected: S Actual: N IndexName: {INDEX}")
    assert ddb.get_item(TableName=events, Key={"user_id": {"S": "u00000009"}, "ts": {"N": "2000"}}).get("Item") is None


def test_partiql_reads_the_index_by_its_keys(ddb, events):
    rows = ddb.execute_statement(
        Statement=f'SELECT user_id, ts FROM "{events}"."{INDEX}" WHERE content_id = ? AND country = ? '
                  "AND event_type = ? AND ts >= ?",
        Parameters=[{"S": "c000001"}, {"S": "NL"}, {"S": "play"}, {"N": "1002"}])["Items"]
    assert rows == [{"user_id": {"S": "u00000002"}, "ts": {"N": "1002"}},
                    {"user_id": {"S": "u00000001"}, "ts": {"N": "1010"}}]
    rows = ddb.execute_statement(
        Statement=f'SELECT ts FROM "{events}"."{INDEX}" WHERE content_id = ? AND country = ? ORDER BY event_type DESC',
        Parameters=[{"S": "c000001"}, {"S": "NL"}])["Items"]
    assert [r["ts"]["N"] for r in rows] == ["1001", "1003", "1010", "1002", "1000", "1005"]


def test_an_index_added_to_a_table_with_data_is_backfilled(ddb):
    name = unique_name("multikey")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=DEFINITIONS[:2],
                     KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"},
                                {"AttributeName": "ts", "KeyType": "RANGE"}])
    for item in EVENTS:
        ddb.put_item(TableName=name, Item=item)
    ddb.update_table(TableName=name, AttributeDefinitions=DEFINITIONS, GlobalSecondaryIndexUpdates=[{"Create": {
        "IndexName": INDEX, "KeySchema": KEYS, "Projection": {"ProjectionType": "KEYS_ONLY"}}}])
    ddb.get_waiter("table_exists").wait(TableName=name)
    import time
    deadline = time.monotonic() + 30
    while ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"][0]["IndexStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    gsi, = ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
    assert gsi["KeySchema"] == KEYS
    items = ddb.query(TableName=name, IndexName=INDEX, KeyConditionExpression=f"{PARTITION} AND event_type = :t",
                      ExpressionAttributeValues={**NL, ":t": {"S": "play"}})["Items"]
    # KEYS_ONLY: the table's keys and every index key attribute
    assert items[0] == {"user_id": {"S": "u00000001"}, "ts": {"N": "1000"}, "content_id": {"S": "c000001"},
                        "country": {"S": "NL"}, "event_type": {"S": "play"}}
    assert [i["ts"]["N"] for i in items] == ["1000", "1002", "1010"]


def _create(ddb, key_schema, definitions=DEFINITIONS, **extra):
    return error_of(ddb.create_table, TableName=unique_name("bad"), BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=definitions,
                    KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"},
                               {"AttributeName": "ts", "KeyType": "RANGE"}],
                    GlobalSecondaryIndexes=[{"IndexName": "gsi", "KeySchema": key_schema,
                                             "Projection": {"ProjectionType": "ALL"}}], **extra)


def element(name, kind):
    return {"AttributeName": name, "KeyType": kind}


def test_creation_rules(ddb, shoal):
    many = [{"AttributeName": f"a{i}", "AttributeType": "S"} for i in range(5)]
    assert _create(ddb, [element(f"a{i}", "HASH") for i in range(5)], DEFINITIONS[:2] + many) == (
        "ValidationException",
        f"{INVALID}The KeySchema exceeds the maximum allowed number of HASH key attributes")
    assert _create(ddb, [element("content_id", "HASH")] + [element(f"a{i}", "RANGE") for i in range(5)],
                   DEFINITIONS[:3] + many) == (
        "ValidationException",
        f"{INVALID}The KeySchema exceeds the maximum allowed number of RANGE key attributes")
    assert _create(ddb, [element("content_id", "HASH"), element("event_type", "RANGE"),
                         element("country", "HASH")]) == (
        "ValidationException",
        f"{INVALID}All HASH key attributes must precede RANGE key attributes in the KeySchema")
    assert _create(ddb, [element("event_type", "RANGE"), element("content_id", "HASH"),
                         element("country", "HASH")]) == (
        "ValidationException", "Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    assert _create(ddb, [element("content_id", "HASH"), element("country", "HASH"),
                         element("content_id", "RANGE")]) == (
        "ValidationException", "The KeySchema contains multiple key attributes with the same name")
    code, message = _create(ddb, [element("content_id", "HASH"), element("country", "HASH"),
                                  element("nowhere", "RANGE")])
    assert (code, message.split(". Keys:")[0]) == (
        "ValidationException", f"{INVALID}Some index key attributes are not defined in AttributeDefinitions")
    nine = [element(f"a{i}", "HASH") for i in range(9)]
    code, message = _create(ddb, nine, DEFINITIONS[:2] + many)
    assert code == "ValidationException" and message.endswith(
        "failed to satisfy constraint: Member must have length less than or equal to 8")
    # Tables and local indexes keep one attribute per key.
    code, message = error_of(
        ddb.create_table, TableName=unique_name("bad"), BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=DEFINITIONS[:3],
        KeySchema=[element("user_id", "HASH"), element("content_id", "HASH"), element("ts", "RANGE")])
    assert code == "ValidationException" and message.endswith(
        "failed to satisfy constraint: Member must have length less than or equal to 2")
    code, message = error_of(
        ddb.create_table, TableName=unique_name("bad"), BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=DEFINITIONS,
        KeySchema=[element("user_id", "HASH"), element("ts", "RANGE")],
        LocalSecondaryIndexes=[{"IndexName": "lsi", "KeySchema": [element("user_id", "HASH"),
                                                               element("event_type", "RANGE"),
                                                               element("country", "RANGE")],
                                "Projection": {"ProjectionType": "ALL"}}])
    assert code == "ValidationException" and message.endswith(
        "failed to satisfy constraint: Member must have length less than or equal to 2")
    assert ddb.list_tables()["TableNames"] is not None  # still serving
