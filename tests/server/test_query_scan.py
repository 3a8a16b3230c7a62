"""Query and Scan through boto3 against a real server."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table


def error_message(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def load_events(ddb, table, users=3, per_user=30):
    for u in range(users):
        for i in range(per_user):
            ddb.put_item(TableName=table, Item={
                "pk": {"S": f"u{u:08d}"}, "sk": {"N": str(1000 + i * 10)},
                "event_type": {"S": "play" if i % 3 else "pause"}, "n": {"N": str(i)},
            })


@pytest.fixture(scope="module")
def events(ddb):
    name = create_table(ddb)
    load_events(ddb, name)
    yield name
    ddb.delete_table(TableName=name)


def q(ddb, table, cond, values, **kw):
    return ddb.query(TableName=table, KeyConditionExpression=cond, ExpressionAttributeValues=values, **kw)


def sks(items):
    return [int(i["sk"]["N"]) for i in items]


def test_latest_n_descending(ddb, events):
    out = q(ddb, events, "pk = :u", {":u": {"S": "u00000001"}}, ScanIndexForward=False, Limit=5)
    assert sks(out["Items"]) == [1290, 1280, 1270, 1260, 1250]
    assert out["Count"] == 5 and out["ScannedCount"] == 5
    assert out["LastEvaluatedKey"] == {"pk": {"S": "u00000001"}, "sk": {"N": "1250"}}
    nxt = q(ddb, events, "pk = :u", {":u": {"S": "u00000001"}}, ScanIndexForward=False, Limit=5,
            ExclusiveStartKey=out["LastEvaluatedKey"])
    assert sks(nxt["Items"]) == [1240, 1230, 1220, 1210, 1200]


@pytest.mark.parametrize("cond,values,expected", [
    ("pk = :u AND sk = :a", {":a": {"N": "1100"}}, [1100]),
    ("pk = :u AND sk < :a", {":a": {"N": "1030"}}, [1000, 1010, 1020]),
    ("pk = :u AND sk <= :a", {":a": {"N": "1020"}}, [1000, 1010, 1020]),
    ("pk = :u AND sk > :a", {":a": {"N": "1270"}}, [1280, 1290]),
    ("pk = :u AND sk >= :a", {":a": {"N": "1280"}}, [1280, 1290]),
    ("pk = :u AND sk BETWEEN :a AND :b", {":a": {"N": "1095"}, ":b": {"N": "1120"}}, [1100, 1110, 1120]),
])
def test_sort_key_conditions(ddb, events, cond, values, expected):
    out = q(ddb, events, cond, {":u": {"S": "u00000002"}, **values})
    assert sks(out["Items"]) == expected


def test_begins_with_on_string_sort_key(ddb):
    name = create_table(ddb, range_key=("sk", "S"))
    for sk in ["2024-01-01#a", "2024-01-02#b", "2024-02-01#c", "2025-01-01#d"]:
        ddb.put_item(TableName=name, Item={"pk": {"S": "x"}, "sk": {"S": sk}})
    out = q(ddb, name, "pk = :p AND begins_with(sk, :s)", {":p": {"S": "x"}, ":s": {"S": "2024-01"}})
    assert [i["sk"]["S"] for i in out["Items"]] == ["2024-01-01#a", "2024-01-02#b"]
    ddb.delete_table(TableName=name)


def test_filter_projection_and_counts(ddb, events):
    out = q(ddb, events, "pk = :u", {":u": {"S": "u00000000"}, ":e": {"S": "pause"}},
            FilterExpression="event_type = :e", ProjectionExpression="sk")
    assert out["Count"] == 10 and out["ScannedCount"] == 30
    assert all(set(i) == {"sk"} for i in out["Items"])
    out = q(ddb, events, "pk = :u", {":u": {"S": "u00000000"}}, Select="COUNT")
    assert out["Count"] == 30 and "Items" not in out


def test_filter_on_key_attribute_is_rejected(ddb, events):
    code, message = error_message(ddb.query, TableName=events, KeyConditionExpression="pk = :u",
                                  ExpressionAttributeValues={":u": {"S": "u00000000"}}, FilterExpression="pk = :u")
    assert message == "Filter Expression can only contain non-primary key attributes: Primary key attribute: pk"


def test_query_requires_key_condition(ddb, events):
    code, message = error_message(ddb.query, TableName=events)
    assert message == "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request."


def test_query_on_unknown_index(ddb, events):
    code, message = error_message(ddb.query, TableName=events, KeyConditionExpression="pk = :u",
                                  ExpressionAttributeValues={":u": {"S": "a"}}, IndexName="by_content")
    assert message == "The table does not have the specified index: by_content"


def test_legacy_key_conditions_and_query_filter(ddb, events):
    out = ddb.query(
        TableName=events,
        KeyConditions={
            "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "u00000000"}]},
            "sk": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "1250"}]},
        },
        QueryFilter={"event_type": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "play"}]}},
    )
    assert sks(out["Items"]) == [1250, 1260, 1280, 1290]


def test_key_conditions_beside_filter_and_projection_expressions(ddb, events):
    # KeyConditions clashes only with KeyConditionExpression.
    key_conditions = {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "u00000000"}]},
                      "sk": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "1250"}]}}
    out = ddb.query(TableName=events, KeyConditions=key_conditions, FilterExpression="event_type = :e",
                    ProjectionExpression="sk", ExpressionAttributeValues={":e": {"S": "play"}})
    assert [item["sk"]["N"] for item in out["Items"]] == ["1250", "1260", "1280", "1290"]
    assert error_message(ddb.query, TableName=events, KeyConditions=key_conditions,
                         KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "u00000000"}},
                         QueryFilter={"sk": {"ComparisonOperator": "NOT_NULL"}}) == (
        "ValidationException",
        "Can not use both expression and non-expression parameters in the same request: "
        "Non-expression parameters: {QueryFilter, KeyConditions} Expression parameters: {KeyConditionExpression}")


def test_scan_pages_cover_the_table_once(ddb, events):
    seen, start, pages = [], None, 0
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        out = ddb.scan(TableName=events, Limit=7, **kwargs)
        seen += [(i["pk"]["S"], i["sk"]["N"]) for i in out["Items"]]
        pages += 1
        start = out.get("LastEvaluatedKey")
        if not start:
            break
    assert len(seen) == 90 and len(set(seen)) == 90
    assert pages >= 13


def test_parallel_scan_segments_partition_the_table(ddb, events):
    all_keys = []
    for segment in range(4):
        out = ddb.scan(TableName=events, Segment=segment, TotalSegments=4)
        assert "LastEvaluatedKey" not in out
        all_keys += [(i["pk"]["S"], i["sk"]["N"]) for i in out["Items"]]
    assert len(all_keys) == 90 and len(set(all_keys)) == 90


def test_scan_segment_validation(ddb, events):
    assert error_message(ddb.scan, TableName=events, Segment=1)[1] == (
        "The TotalSegments parameter is required but was not present in the request when Segment parameter "
        "is present")
    assert error_message(ddb.scan, TableName=events, Segment=3, TotalSegments=2)[1] == (
        "The Segment parameter is zero-based and must be less than parameter TotalSegments: "
        "Segment: 3 is not less than TotalSegments: 2")


def test_scan_segment_exclusive_start_key_must_lie_within_the_segment(ddb, events):
    # The table's three users fall into some of 64 segments: page within one, start another there.
    counts = [ddb.scan(TableName=events, Segment=i, TotalSegments=64, Select="COUNT")["Count"] for i in range(64)]
    used = next(i for i, count in enumerate(counts) if count)
    first = ddb.scan(TableName=events, Segment=used, TotalSegments=64, Limit=1)
    inside = first["LastEvaluatedKey"]
    rest = ddb.scan(TableName=events, Segment=used, TotalSegments=64, ExclusiveStartKey=inside)
    assert first["Count"] + rest["Count"] == counts[used]
    for segment in (used - 1, used + 1):
        assert error_message(ddb.scan, TableName=events, Segment=segment % 64, TotalSegments=64,
                             ExclusiveStartKey=inside) == (
            "ValidationException", "The provided starting key is invalid: Invalid ExclusiveStartKey. Please use "
            f"ExclusiveStartKey with correct Segment. TotalSegments: 64 Segment: {segment % 64}")


def test_one_megabyte_page_limit(ddb):
    name = create_table(ddb)
    blob = "x" * 100_000
    for i in range(25):
        ddb.put_item(TableName=name, Item={"pk": {"S": "big"}, "sk": {"N": str(i)}, "b": {"S": blob}})
    out = ddb.query(TableName=name, KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "big"}})
    assert 9 <= out["Count"] <= 11
    assert "LastEvaluatedKey" in out
    ddb.delete_table(TableName=name)


def test_scan_filter_with_consumed_capacity(ddb, events):
    out = ddb.scan(TableName=events, FilterExpression="n < :n", ExpressionAttributeValues={":n": {"N": "2"}},
                   ReturnConsumedCapacity="TOTAL")
    assert out["Count"] == 6 and out["ScannedCount"] == 90
    assert out["ConsumedCapacity"]["CapacityUnits"] > 0


@pytest.mark.parametrize("legacy", [False, True])
def test_empty_key_values_in_key_conditions_are_refused(ddb, events, legacy):
    def query(p, s=None):
        if legacy:
            conditions = {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": p}]}}
            if s is not None:
                conditions["sk"] = {"ComparisonOperator": "GT", "AttributeValueList": [s]}
            return error_message(ddb.query, TableName=events, KeyConditions=conditions)
        values = {":p": {"S": p}}
        if s is not None:
            values[":s"] = s
        cond = "pk = :p" + (" AND sk > :s" if s is not None else "")
        return error_message(ddb.query, TableName=events, KeyConditionExpression=cond,
                             ExpressionAttributeValues=values)

    empty = ("One or more parameter values are not valid. The AttributeValue for a key attribute "
             "cannot contain an empty string value. Key: pk")
    assert query("") == ("ValidationException", empty)
    assert query("", {"S": "x"}) == ("ValidationException", empty)  # before the sort value's type mismatch


def test_a_bad_expression_value_in_a_query_is_reported_by_itself(ddb, events):
    # Query reports the value's own message; Scan keeps the older wrapper.
    values = {":p": {"S": "u00000000"}, ":v": {"N": "abc"}}
    assert error_message(ddb.query, TableName=events, KeyConditionExpression="pk = :p", FilterExpression="n = :v",
                         ExpressionAttributeValues=values) == (
        "ValidationException", "The parameter cannot be converted to a numeric value: abc")
    assert error_message(ddb.scan, TableName=events, FilterExpression="n = :v",
                         ExpressionAttributeValues={":v": {"N": "abc"}}) == (
        "ValidationException",
        "ExpressionAttributeValues contains invalid value: The parameter cannot be converted to a numeric value: abc "
        "for key :v")
