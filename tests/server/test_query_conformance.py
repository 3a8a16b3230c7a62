"""Query and Scan where bench/query_fuzz.py found Shoal and DynamoDB Local
apart, each pinned on DynamoDB's documented side (docs/status.md, "Query and
Scan differential fuzz").

The fault the fuzz found in Shoal: a read of a local secondary index that
fetches items from the table (it asks for attributes the index does not
project) counted only the index entries against the page's 1 MB, so a page
of small entries returned megabytes of fetched items.  And where the fuzz
showed Shoal answering DynamoDB Local's words, the words recorded from
DynamoDB (the nubo-db/dynamodb-conformance suite, 2026; dynalite's suite).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique_name

MB = 1024 * 1024
BIG = 300_000  # six of these pass 1 MB; three do not


def pages(call, **request):
    """Every page of a Query or Scan, each following the previous one's LastEvaluatedKey."""
    out = []
    while True:
        page = call(**request)
        out.append(page)
        if "LastEvaluatedKey" not in page:
            return out
        request = dict(request, ExclusiveStartKey=page["LastEvaluatedKey"])


def data_bytes(page) -> int:
    return sum(len(item.get("filler", {}).get("S", "")) for item in page.get("Items", []))


@pytest.fixture(scope="module")
def big(ddb):
    """pk S / sk N, an LSI 'by_lx' (KEYS_ONLY) and a GSI 'by_g' (KEYS_ONLY);
    partition 'big' holds six items of 300 KB, partition 'small' five small ones."""
    name = unique_name("qconf")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("pk", "S"), ("sk", "N"), ("lx", "S"), ("g", "S"))],
        LocalSecondaryIndexes=[{"IndexName": "by_lx", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "lx", "KeyType": "RANGE"}]}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}])
    for i in range(6):
        ddb.put_item(TableName=name, Item={"pk": {"S": "big"}, "sk": {"N": str(i)}, "lx": {"S": f"x{5 - i}"},
                                           "g": {"S": "G"}, "filler": {"S": "p" * BIG}})
    for i in range(5):
        ddb.put_item(TableName=name, Item={"pk": {"S": "small"}, "sk": {"N": str(i)}, "lx": {"S": f"x{i}"},
                                           "a": {"N": str(i)}})
    yield name
    ddb.delete_table(TableName=name)


@pytest.mark.parametrize("request_shape", [{"Select": "ALL_ATTRIBUTES"}, {"ProjectionExpression": "pk, sk, filler"}])
def test_lsi_query_fetching_items_keeps_pages_within_1mb(ddb, big, request_shape):
    """The fix: the fetched items count in the page's 1 MB (it returned all
    six items, 1.8 MB, in one page)."""
    got = pages(ddb.query, TableName=big, IndexName="by_lx", KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "big"}}, ReturnConsumedCapacity="INDEXES", **request_shape)
    assert len(got) > 1
    assert all(data_bytes(page) <= MB for page in got)
    assert sorted(int(i["sk"]["N"]) for page in got for i in page["Items"]) == list(range(6))
    assert [i["lx"]["S"] if "lx" in i else None for i in got[0]["Items"]][:1] in (["x0"], [None])
    for page in got:  # the fetched items' units are the table's, each item rounded up to 4 KB
        capacity = page["ConsumedCapacity"]
        assert capacity["Table"]["CapacityUnits"] == page["Count"] * 37.0  # 300,0xx bytes: 74 x 4 KB, halved
        assert capacity["LocalSecondaryIndexes"]["by_lx"]["CapacityUnits"] == 0.5


def test_lsi_scan_fetching_items_keeps_pages_within_1mb(ddb, big):
    got = pages(ddb.scan, TableName=big, IndexName="by_lx", Select="ALL_ATTRIBUTES")
    assert all(data_bytes(page) <= MB for page in got)
    assert sum(page["Count"] for page in got) == 11
    assert len([page for page in got if page["Count"]]) > 1


def test_table_query_pages_stop_before_passing_1mb(ddb, big):
    """Pages of 1 MB or less (Developer Guide, Query.Pagination); DynamoDB
    Local ends its page after the item that passes 1 MB."""
    got = pages(ddb.query, TableName=big, KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "big"}}, ReturnConsumedCapacity="TOTAL")
    assert [page["Count"] for page in got] == [3, 3]
    assert all(page["ConsumedCapacity"]["CapacityUnits"] <= 128 for page in got)
    assert got[0]["LastEvaluatedKey"] == {"pk": {"S": "big"}, "sk": {"N": "2"}}


def test_index_entries_fill_pages_and_units_by_their_own_size(ddb, big):
    """An index read is charged and paged by its entries' size (the sum of
    the projected attributes' sizes, Developer Guide on GSIs), not by the
    table items': DynamoDB Local charged 75 units and split the page."""
    got = pages(ddb.query, TableName=big, IndexName="by_g", KeyConditionExpression="g = :g",
                ExpressionAttributeValues={":g": {"S": "G"}}, ReturnConsumedCapacity="INDEXES")
    assert len(got) == 1 and got[0]["Count"] == 6
    assert got[0]["ConsumedCapacity"]["GlobalSecondaryIndexes"] == {"by_g": {"CapacityUnits": 0.5}}
    assert got[0]["ConsumedCapacity"]["Table"] == {"CapacityUnits": 0.0}
    local = pages(ddb.query, TableName=big, IndexName="by_lx", KeyConditionExpression="pk = :p",
                  ExpressionAttributeValues={":p": {"S": "big"}})
    assert len(local) == 1 and [i["lx"]["S"] for i in local[0]["Items"]] == [f"x{i}" for i in range(6)]


def test_index_scan_filter_sees_the_index_entry(ddb, big):
    """A Scan of an index reads its entries, where an attribute the index
    does not project is absent (DynamoDB Local evaluated the table item); a
    Query with such a filter is refused."""
    scan = dict(TableName=big, IndexName="by_lx", ExpressionAttributeNames={"#a": "a"})
    assert ddb.scan(FilterExpression="attribute_exists(#a)", **scan)["Count"] == 0
    assert ddb.scan(FilterExpression="attribute_not_exists(#a)", **scan)["Count"] == 11
    with pytest.raises(ClientError) as info:
        ddb.query(KeyConditionExpression="pk = :p", FilterExpression="attribute_exists(#a)",
                  ExpressionAttributeValues={":p": {"S": "small"}}, **scan)
    assert "does not project one or more filter attributes: [a]" in info.value.response["Error"]["Message"]


def test_limit_reached_on_the_last_item_still_answers_last_evaluated_key(ddb, big):
    """"If LastEvaluatedKey is not empty, it does not necessarily mean that
    there is more data" (Query.Pagination): DynamoDB stops at Limit without
    looking further; DynamoDB Local looks ahead and leaves the key out."""
    first = ddb.query(TableName=big, KeyConditionExpression="pk = :p", Limit=5,
                      ExpressionAttributeValues={":p": {"S": "small"}})
    assert first["Count"] == 5 and first["LastEvaluatedKey"] == {"pk": {"S": "small"}, "sk": {"N": "4"}}
    last = ddb.query(TableName=big, KeyConditionExpression="pk = :p", Limit=5,
                     ExpressionAttributeValues={":p": {"S": "small"}}, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert last["Count"] == 0 and "LastEvaluatedKey" not in last


@pytest.mark.parametrize("consistent,units", [(False, 0.5), (True, 1.0)])
def test_a_query_that_reads_nothing_is_charged_the_minimum(ddb, big, consistent, units):
    """A read of an item that does not exist still consumes read capacity
    (Developer Guide, read and write operations); DynamoDB Local says 0."""
    out = ddb.query(TableName=big, KeyConditionExpression="pk = :p", ConsistentRead=consistent,
                    ExpressionAttributeValues={":p": {"S": "nothing here"}}, ReturnConsumedCapacity="TOTAL")
    assert out["Count"] == 0 and out["ConsumedCapacity"]["CapacityUnits"] == units


def test_sort_key_orders(ddb):
    """Strings by UTF-8 bytes (U+FFFF before an emoji, which UTF-16 orders
    the other way), binaries by unsigned bytes, numbers by value across
    magnitudes; begins_with on a binary sort key."""
    name = unique_name("qorder")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                                           for n, t in (("pk", "S"), ("sk", "B"), ("s", "S"), ("n", "N"))],
                     LocalSecondaryIndexes=[{"IndexName": "by_s", "Projection": {"ProjectionType": "ALL"},
                                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                           {"AttributeName": "s", "KeyType": "RANGE"}]},
                                            {"IndexName": "by_n", "Projection": {"ProjectionType": "ALL"},
                                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                           {"AttributeName": "n", "KeyType": "RANGE"}]}])
    try:
        binaries = [b"\x00", b"\x00\x00", b"\x01", b"\x7f", b"\x7f\xff", b"\x80", b"\xff", b"\xff\x00"]
        strings = ["A", "a", "ab", "é", "\uffff", "😀"]
        numbers = ["-1E+125", "-10", "-1E-130", "0", "1E-130", "0.001", "1", "1.0000000000000000000000000000000000001",
                   "10", "123456789012345678901234567890.12345678", "9.9999999999999999999999999999999999999E+125"]
        for i, raw in enumerate(binaries):
            item = {"pk": {"S": "p"}, "sk": {"B": raw}}
            if i < len(strings):
                item["s"] = {"S": strings[-1 - i]}
            item["n"] = {"N": numbers[-1 - i]}
            ddb.put_item(TableName=name, Item=item)

        def query(**kw):
            return ddb.query(TableName=name, ExpressionAttributeValues=kw.pop("values", {":p": {"S": "p"}}),
                             **kw)["Items"]

        assert [i["sk"]["B"] for i in query(KeyConditionExpression="pk = :p")] == binaries
        assert [i["sk"]["B"] for i in query(KeyConditionExpression="pk = :p", ScanIndexForward=False)] == \
            binaries[::-1]
        assert [i["s"]["S"] for i in query(IndexName="by_s", KeyConditionExpression="pk = :p")] == strings
        assert [Decimal(i["n"]["N"]) for i in query(IndexName="by_n", KeyConditionExpression="pk = :p")] == \
            [Decimal(n) for n in numbers[-len(binaries):]]
        prefixed = query(KeyConditionExpression="pk = :p AND begins_with(sk, :b)",
                         values={":p": {"S": "p"}, ":b": {"B": b"\x7f"}})
        assert [i["sk"]["B"] for i in prefixed] == [b"\x7f", b"\x7f\xff"]
        above = query(KeyConditionExpression="pk = :p AND sk > :b", values={":p": {"S": "p"}, ":b": {"B": b"\x7f\xff"}})
        assert [i["sk"]["B"] for i in above] == [b"\x80", b"\xff", b"\xff\x00"]
    finally:
        ddb.delete_table(TableName=name)


def test_parallel_scan_segments_make_the_table(ddb, big):
    for total in (1, 2, 3, 7):
        keys = []
        for segment in range(total):
            for page in pages(ddb.scan, TableName=big, Segment=segment, TotalSegments=total, Limit=2,
                              ProjectionExpression="pk, sk"):
                keys += [(i["pk"]["S"], i["sk"]["N"]) for i in page["Items"]]
        assert sorted(keys) == sorted([("big", str(i)) for i in range(6)] + [("small", str(i)) for i in range(5)])


@pytest.mark.parametrize("operation", ["query", "scan"])
def test_consistent_read_on_a_gsi_is_refused(ddb, big, operation):
    request = dict(TableName=big, IndexName="by_g", ConsistentRead=True)
    if operation == "query":
        request.update(KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": "G"}})
    with pytest.raises(ClientError) as info:
        getattr(ddb, operation)(**request)
    assert info.value.response["Error"]["Message"] == "Consistent reads are not supported on global secondary indexes"


@pytest.mark.parametrize("request_shape,message", [
    ({"Segment": 0},
     "The TotalSegments parameter is required but was not present in the request when Segment parameter is present"),
    ({"TotalSegments": 4},
     "The Segment parameter is required but was not present in the request when parameter TotalSegments is present"),
    ({"Select": "SPECIFIC_ATTRIBUTES"},
     "Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES"),
    ({"ExclusiveStartKey": {"bad": {"S": "p"}, "sk": {"N": "1"}}},
     "The provided starting key is invalid: The provided key element does not match the schema"),
    ({"ExclusiveStartKey": {"pk": {"S": "p"}}},
     "The provided starting key is invalid: The provided key element does not match the schema"),
])
def test_scan_refusals_in_dynamodbs_recorded_words(ddb, big, request_shape, message):
    with pytest.raises(ClientError) as info:
        ddb.scan(TableName=big, **request_shape)
    assert info.value.response["Error"]["Message"] == message


@pytest.mark.parametrize("request_shape,message", [
    ({"ExclusiveStartKey": {"bad": {"S": "p"}}}, "The provided starting key is invalid"),
    ({"ExclusiveStartKey": {"pk": {"S": "small"}, "other": {"N": "1"}}}, "The provided starting key is invalid"),
    ({"Select": "SPECIFIC_ATTRIBUTES"}, "1 validation error detected: Must specify the AttributesToGet or "
                                        "ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES"),
])
def test_query_refusals_in_dynamodbs_recorded_words(ddb, big, request_shape, message):
    with pytest.raises(ClientError) as info:
        ddb.query(TableName=big, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "small"}},
                  **request_shape)
    assert info.value.response["Error"]["Message"] == message


def test_parallel_scan_start_key_outside_its_segment_in_dynamodbs_recorded_words(ddb, big):
    """dynalite's suite recorded these words from DynamoDB; DynamoDB Local
    says "Exclusive start key must lie within the segment"."""
    total = 16
    keyed = [(segment, ddb.scan(TableName=big, Segment=segment, TotalSegments=total, Limit=1))
             for segment in range(total)]
    segment, page = next((s, p) for s, p in keyed if p["Count"])
    other = (segment + 1) % total
    with pytest.raises(ClientError) as info:
        ddb.scan(TableName=big, Segment=other, TotalSegments=total, ExclusiveStartKey=page["LastEvaluatedKey"])
    assert info.value.response["Error"]["Message"] == (
        "The provided starting key is invalid: Invalid ExclusiveStartKey. Please use ExclusiveStartKey with correct "
        f"Segment. TotalSegments: {total} Segment: {other}")


def test_key_condition_on_a_nested_path_under_the_sort_key(ddb, big):
    """The nubo-db/dynamodb-conformance suite's recording: a document path
    under the sort key is "cannot have conditions on nested attributes" (it
    was answered with the key-scalar words of filters); the value may stand
    left of its comparison."""
    with pytest.raises(ClientError) as info:
        ddb.query(TableName=big, KeyConditionExpression="#pk = :p AND #sk.foo = :v",
                  ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
                  ExpressionAttributeValues={":p": {"S": "small"}, ":v": {"N": "1"}})
    assert info.value.response["Error"]["Message"] == \
        "KeyConditionExpressions cannot have conditions on nested attributes"
    out = ddb.query(TableName=big, KeyConditionExpression="#pk = :p AND :lo <= #sk",
                    ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
                    ExpressionAttributeValues={":p": {"S": "small"}, ":lo": {"N": "3"}})
    assert [i["sk"]["N"] for i in out["Items"]] == ["3", "4"]
