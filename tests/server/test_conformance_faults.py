"""Faults independent suites found in Shoal (issue 21, point 5), each
reproduced through boto3 against a real server: the exact error DynamoDB
gives, nothing stored that should not be, and the server still serving."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table

EMPTY = "Empty attribute name"
IN_ENVELOPE = "1 validation error detected: " + EMPTY


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def hash_only(ddb):
    """A table keyed by a string 'pk' alone, holding one item 'a'."""
    name = create_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "x": {"S": "kept"}})
    yield name
    ddb.delete_table(TableName=name)


# ---------------------------------------------------------------- empty attribute names

KEY = {"pk": {"S": "a"}}
EQ_A = {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}


def _empty_name_requests(ddb, table):
    """(label, call, kwargs, message) for every path that names an attribute."""
    return [
        ("UpdateItem AttributeUpdates", ddb.update_item,
         dict(TableName=table, Key=KEY, AttributeUpdates={"": {"Value": {"S": "x"}, "Action": "PUT"}}), IN_ENVELOPE),
        ("UpdateItem Expected", ddb.update_item,
         dict(TableName=table, Key=KEY, Expected={"": {"Exists": False}}), IN_ENVELOPE),
        ("PutItem Expected", ddb.put_item,
         dict(TableName=table, Item=KEY, Expected={"": {"Exists": False}}), IN_ENVELOPE),
        ("DeleteItem Expected", ddb.delete_item,
         dict(TableName=table, Key=KEY, Expected={"": {"Exists": False}}), IN_ENVELOPE),
        ("DeleteItem Key", ddb.delete_item,
         dict(TableName=table, Key={"pk": {"S": "a"}, "": {"S": "x"}}), IN_ENVELOPE),
        ("GetItem AttributesToGet", ddb.get_item,
         dict(TableName=table, Key=KEY, AttributesToGet=["x", ""]), EMPTY),
        ("GetItem Key", ddb.get_item,
         dict(TableName=table, Key={"pk": {"S": "a"}, "": {"S": "x"}}), EMPTY),
        ("Query KeyConditions", ddb.query,
         dict(TableName=table, KeyConditions={"": EQ_A}), EMPTY),
        ("Query QueryFilter", ddb.query,
         dict(TableName=table, KeyConditions={"pk": EQ_A}, QueryFilter={"": {"ComparisonOperator": "NULL"}}), EMPTY),
        ("Query AttributesToGet", ddb.query,
         dict(TableName=table, KeyConditions={"pk": EQ_A}, AttributesToGet=[""]), EMPTY),
        ("Query ExclusiveStartKey", ddb.query,
         dict(TableName=table, KeyConditions={"pk": EQ_A}, ExclusiveStartKey={"pk": {"S": "a"}, "": {"S": "x"}}),
         EMPTY),
        ("Scan ScanFilter", ddb.scan,
         dict(TableName=table, ScanFilter={"": {"ComparisonOperator": "NULL"}}), EMPTY),
        ("Scan AttributesToGet", ddb.scan, dict(TableName=table, AttributesToGet=[""]), EMPTY),
        ("Scan ExclusiveStartKey", ddb.scan,
         dict(TableName=table, ExclusiveStartKey={"pk": {"S": "a"}, "": {"S": "x"}}),
         "The provided starting key is invalid: " + EMPTY),
        ("BatchGetItem Keys", ddb.batch_get_item,
         dict(RequestItems={table: {"Keys": [{"pk": {"S": "a"}, "": {"S": "x"}}]}}), EMPTY),
        ("BatchGetItem AttributesToGet", ddb.batch_get_item,
         dict(RequestItems={table: {"Keys": [KEY], "AttributesToGet": [""]}}), EMPTY),
        ("BatchWriteItem DeleteRequest", ddb.batch_write_item,
         dict(RequestItems={table: [{"DeleteRequest": {"Key": {"pk": {"S": "a"}, "": {"S": "x"}}}}]}), EMPTY),
        ("TransactWriteItems Delete Key", ddb.transact_write_items,
         dict(TransactItems=[{"Delete": {"TableName": table, "Key": {"pk": {"S": "a"}, "": {"S": "x"}}}}]), EMPTY),
        ("TransactGetItems Key", ddb.transact_get_items,
         dict(TransactItems=[{"Get": {"TableName": table, "Key": {"pk": {"S": "a"}, "": {"S": "x"}}}}]), EMPTY),
        # Item maps: top level and a map key at any depth.
        ("PutItem top-level", ddb.put_item,
         dict(TableName=table, Item={"pk": {"S": "b"}, "": {"S": "x"}}), IN_ENVELOPE),
        ("PutItem nested map", ddb.put_item,
         dict(TableName=table, Item={"pk": {"S": "b"}, "m": {"M": {"": {"S": "x"}}}}), IN_ENVELOPE),
        ("PutItem map in a list", ddb.put_item,
         dict(TableName=table, Item={"pk": {"S": "b"}, "l": {"L": [{"M": {"": {"S": "x"}}}]}}), IN_ENVELOPE),
        ("BatchWriteItem PutRequest nested", ddb.batch_write_item,
         dict(RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": "b"}, "m": {"M": {"": {"S": "x"}}}}}}]}),
         EMPTY),
        ("TransactWriteItems Put nested", ddb.transact_write_items,
         dict(TransactItems=[{"Put": {"TableName": table, "Item": {"pk": {"S": "b"}, "m": {"M": {"": {"S": "x"}}}}}}]),
         EMPTY),
        # Expression attribute names.
        ("UpdateItem ExpressionAttributeNames", ddb.update_item,
         dict(TableName=table, Key=KEY, UpdateExpression="SET #a = :v", ExpressionAttributeNames={"#a": ""},
              ExpressionAttributeValues={":v": {"S": "x"}}),
         "1 validation error detected: ExpressionAttributeNames contains invalid value: "
         "Empty attribute name for key #a"),
        ("Scan ExpressionAttributeNames", ddb.scan,
         dict(TableName=table, FilterExpression="#a = :v", ExpressionAttributeNames={"#a": ""},
              ExpressionAttributeValues={":v": {"S": "x"}}),
         "ExpressionAttributeNames contains invalid value: Empty attribute name for key #a"),
    ]


def test_an_empty_attribute_name_is_refused_on_every_path(ddb, hash_only):
    for label, call, kwargs, message in _empty_name_requests(ddb, hash_only):
        assert error_of(call, **kwargs) == ("ValidationException", message), label
    # Nothing was written by any of them, and the server still serves.
    assert ddb.get_item(TableName=hash_only, Key=KEY)["Item"] == {"pk": {"S": "a"}, "x": {"S": "kept"}}
    assert "Item" not in ddb.get_item(TableName=hash_only, Key={"pk": {"S": "b"}})


def test_an_empty_name_is_refused_before_the_table_is_looked_up(ddb):
    """DynamoDB checks the request before it looks for the table: an empty
    name in a request for a table that does not exist is still the name's fault."""
    assert error_of(ddb.update_item, TableName="no_such_table_21", Key=KEY,
                    AttributeUpdates={"": {"Value": {"S": "x"}}}) == ("ValidationException", IN_ENVELOPE)
    assert error_of(ddb.get_item, TableName="no_such_table_21",
                    Key={"pk": {"S": "a"}, "": {"S": "x"}}) == ("ValidationException", EMPTY)


@pytest.mark.parametrize("statement, parameters, message", [
    ("INSERT INTO \"{t}\" VALUE {{'pk': 'b', '': 'x'}}", None, "Path component cannot be an empty string"),
    ("INSERT INTO \"{t}\" VALUE {{'pk': 'b', 'm': {{'': 'x'}}}}", None, "Path component cannot be an empty string"),
    ("UPDATE \"{t}\" SET \"\" = 'x' WHERE pk = 'a'", None, "Path component cannot be an empty string"),
    ("SELECT \"\" FROM \"{t}\" WHERE pk = 'a'", None, "Path component cannot be an empty string"),
    ("INSERT INTO \"{t}\" VALUE {{'pk': 'b', 'm': ?}}", [{"M": {"": {"S": "x"}}}], EMPTY),
])
def test_partiql_refuses_an_empty_attribute_name(ddb, hash_only, statement, parameters, message):
    kwargs = {"Statement": statement.format(t=hash_only)}
    if parameters is not None:
        kwargs["Parameters"] = parameters
    assert error_of(ddb.execute_statement, **kwargs) == ("ValidationException", message)
    assert ddb.get_item(TableName=hash_only, Key=KEY)["Item"] == {"pk": {"S": "a"}, "x": {"S": "kept"}}
    assert "Item" not in ddb.get_item(TableName=hash_only, Key={"pk": {"S": "b"}})


# ---------------------------------------------------------------- ExclusiveStartKey of a Query

OUTSIDE = "The provided starting key is outside query boundaries based on provided conditions"
NOT_IN_RANGE = "The provided starting key does not match the range key predicate"
ONE_ROW = "The query can return at most one row and cannot be restarted"


@pytest.fixture(scope="module")
def indexed(ddb):
    """pk/sk strings, a GSI on g (hash) and on g/gs, an LSI on pk/gs; three items in partition 'p'."""
    from tests.conftest import unique_name
    name = unique_name("esk")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("pk", "S"), ("sk", "S"), ("g", "S"), ("gs", "N"))],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "by_g_gs", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                                   {"AttributeName": "gs", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "ALL"}}],
        LocalSecondaryIndexes=[
            {"IndexName": "by_gs", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                 {"AttributeName": "gs", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "ALL"}}])
    for i in range(3):
        ddb.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"S": f"s{i}"}, "g": {"S": "g1"},
                                           "gs": {"N": str(i)}})
    yield name
    ddb.delete_table(TableName=name)


def S(text):
    return {"S": text}


def N(text):
    return {"N": text}


@pytest.mark.parametrize("index, condition, values, start, message", [
    # No sort key condition: the start key must lie in the partition read.
    (None, "pk = :p", {":p": S("p")}, {"pk": S("x"), "sk": S("s1")}, OUTSIDE),
    ("by_g", "g = :g", {":g": S("g1")}, {"pk": S("p"), "sk": S("s1"), "g": S("g2")}, OUTSIDE),
    ("by_g_gs", "g = :g", {":g": S("g1")}, {"pk": S("p"), "sk": S("s1"), "g": S("g2"), "gs": N("1")}, OUTSIDE),
    ("by_gs", "pk = :p", {":p": S("p")}, {"pk": S("x"), "sk": S("s1"), "gs": N("1")}, OUTSIDE),
    # A sort key condition the start key's sort key does not satisfy.
    (None, "pk = :p AND sk > :s", {":p": S("p"), ":s": S("s1")}, {"pk": S("p"), "sk": S("s0")}, NOT_IN_RANGE),
    (None, "pk = :p AND begins_with(sk, :s)", {":p": S("p"), ":s": S("s1")}, {"pk": S("p"), "sk": S("s0")},
     NOT_IN_RANGE),
    (None, "pk = :p AND sk BETWEEN :a AND :b", {":p": S("p"), ":a": S("s1"), ":b": S("s2")},
     {"pk": S("p"), "sk": S("s3")}, NOT_IN_RANGE),
    (None, "pk = :p AND sk = :s", {":p": S("p"), ":s": S("s1")}, {"pk": S("x"), "sk": S("s0")}, NOT_IN_RANGE),
    ("by_g_gs", "g = :g AND gs > :n", {":g": S("g1"), ":n": N("1")},
     {"pk": S("p"), "sk": S("s1"), "g": S("g1"), "gs": N("0")}, NOT_IN_RANGE),
    ("by_gs", "pk = :p AND gs >= :n", {":p": S("p"), ":n": N("1")},
     {"pk": S("p"), "sk": S("s1"), "gs": N("0")}, NOT_IN_RANGE),
    # The sort key in range, the partition another: DynamoDB's own wording for it.
    (None, "pk = :p AND sk < :s", {":p": S("p"), ":s": S("s2")}, {"pk": S("x"), "sk": S("s1")}, ONE_ROW),
])
def test_a_start_key_outside_the_query_is_refused(ddb, indexed, index, condition, values, start, message):
    kwargs = dict(TableName=indexed, KeyConditionExpression=condition, ExpressionAttributeValues=values,
                  ExclusiveStartKey=start)
    if index is not None:
        kwargs["IndexName"] = index
    assert error_of(ddb.query, **kwargs) == ("ValidationException", message)


def test_a_start_key_outside_a_hash_only_table_query_is_refused(ddb, hash_only):
    for kwargs in (dict(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("a")}),
                   dict(KeyConditions={"pk": EQ_A})):
        assert error_of(ddb.query, TableName=hash_only, ExclusiveStartKey={"pk": S("b")}, **kwargs) == (
            "ValidationException", OUTSIDE)
        # The start key of the partition itself is fine: the page after its only item is empty.
        out = ddb.query(TableName=hash_only, ExclusiveStartKey={"pk": S("a")}, **kwargs)
        assert (out["Items"], out["Count"]) == ([], 0)


def test_a_start_key_inside_the_query_still_pages(ddb, indexed):
    out = ddb.query(TableName=indexed, KeyConditionExpression="pk = :p AND sk >= :s",
                    ExpressionAttributeValues={":p": S("p"), ":s": S("s1")}, ExclusiveStartKey={"pk": S("p"), "sk": S("s1")})
    assert [item["sk"]["S"] for item in out["Items"]] == ["s2"]
    out = ddb.query(TableName=indexed, IndexName="by_g", KeyConditionExpression="g = :g",
                    ExpressionAttributeValues={":g": S("g1")},
                    ExclusiveStartKey={"pk": S("p"), "sk": S("s0"), "g": S("g1")})
    assert sorted(item["sk"]["S"] for item in out["Items"]) == ["s1", "s2"]


# ---------------------------------------------------------------- size() of size()

SIZE_OF_N = "Incorrect operand type for operator or function; operator or function: size, operand type: N"


def test_size_of_size_is_a_validation_error_not_a_failed_condition(ddb, hash_only):
    values = {":n": {"N": "0"}}
    # On a new item and on an existing one alike: the expression is at fault, not the item.
    assert error_of(ddb.put_item, TableName=hash_only, Item={"pk": S("b")},
                    ConditionExpression="size(size(x)) > :n", ExpressionAttributeValues=values) == (
        "ValidationException", "1 validation error detected: Invalid ConditionExpression: " + SIZE_OF_N)
    assert error_of(ddb.update_item, TableName=hash_only, Key=KEY, UpdateExpression="SET y = :n",
                    ConditionExpression="size(size(x)) > :n", ExpressionAttributeValues=values) == (
        "ValidationException", "1 validation error detected: Invalid ConditionExpression: " + SIZE_OF_N)
    assert error_of(ddb.scan, TableName=hash_only, FilterExpression="size(size(x)) > :n",
                    ExpressionAttributeValues=values) == ("ValidationException", "Invalid FilterExpression: " + SIZE_OF_N)
    assert error_of(ddb.transact_write_items, TransactItems=[{"ConditionCheck": {
        "TableName": hash_only, "Key": KEY, "ConditionExpression": "size(size(x)) > :n",
        "ExpressionAttributeValues": values}}]) == ("ValidationException", "Invalid ConditionExpression: " + SIZE_OF_N)
    assert ddb.get_item(TableName=hash_only, Key=KEY)["Item"] == {"pk": {"S": "a"}, "x": {"S": "kept"}}
    assert "Item" not in ddb.get_item(TableName=hash_only, Key={"pk": S("b")})
    # A comparison of size() itself still works.
    out = ddb.scan(TableName=hash_only, FilterExpression="size(x) = :four", ExpressionAttributeValues={":four": {"N": "4"}})
    assert out["Items"] == [{"pk": {"S": "a"}, "x": {"S": "kept"}}]


# ---------------------------------------------------------------- PartiQL SELECT of nested paths


def test_partiql_select_of_a_nested_path_returns_the_value_under_its_own_name(ddb, hash_only):
    ddb.put_item(TableName=hash_only, Item={
        "pk": S("nest"), "mymap": {"M": {"nested": S("v"), "deep": {"M": {"c": N("1")}}}},
        "l": {"L": [S("x"), {"M": {"b": S("y"), "z": S("z")}}]}})
    try:
        def select(projection):
            return ddb.execute_statement(
                Statement=f"SELECT {projection} FROM \"{hash_only}\" WHERE pk = 'nest'")["Items"]
        assert select("mymap.nested") == [{"nested": S("v")}]
        assert select("mymap.deep.c") == [{"c": N("1")}]
        assert select("l[0]") == [{"l[0]": S("x")}]
        assert select("l[1].b") == [{"l[1]": {"M": {"b": S("y")}}}]
        assert select("mymap.nested, l[0]") == [{"nested": S("v"), "l[0]": S("x")}]
        assert select("mymap.nope") == [{}]
        assert select("mymap") == [{"mymap": {"M": {"nested": S("v"), "deep": {"M": {"c": N("1")}}}}}]
    finally:
        ddb.delete_item(TableName=hash_only, Key={"pk": S("nest")})


# ---------------------------------------------------------------- consumed capacity of reads


def _units(response) -> float:
    capacity = response["ConsumedCapacity"]
    return (capacity[0] if isinstance(capacity, list) else capacity)["CapacityUnits"]


def test_reads_of_missing_items_are_charged_like_getitem(ddb, hash_only):
    """A read finds no item still costs one 4 KB read (DynamoDB Developer
    Guide, "Capacity unit consumption for read operations"); a BatchGetItem
    reads each key as a GetItem, each rounded up to 4 KB on its own."""
    for consistent, unit in ((True, 1.0), (False, 0.5)):
        assert _units(ddb.get_item(TableName=hash_only, Key={"pk": S("none")}, ConsistentRead=consistent,
                                   ReturnConsumedCapacity="TOTAL")) == unit
        out = ddb.batch_get_item(RequestItems={hash_only: {"Keys": [{"pk": S("none")}], "ConsistentRead": consistent}},
                                 ReturnConsumedCapacity="TOTAL")
        assert out["Responses"] == {hash_only: []} and _units(out) == unit
        out = ddb.batch_get_item(RequestItems={hash_only: {
            "Keys": [{"pk": S("none")}, {"pk": S("none2")}, KEY], "ConsistentRead": consistent}},
            ReturnConsumedCapacity="TOTAL")
        assert len(out["Responses"][hash_only]) == 1 and _units(out) == 3 * unit
    out = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": hash_only, "Key": {"pk": S("none")}}}],
                                 ReturnConsumedCapacity="TOTAL")
    assert _units(out) == 2.0


def test_query_and_scan_charge_the_total_size_read(ddb):
    """Query and Scan add up the sizes of the items they read (filtered out or
    not) and round the total up to 4 KB: three items of about 5 KB are 4 units
    strongly consistent, 2 eventually consistent."""
    name = create_table(ddb, range_key=("sk", "N"))
    try:
        for i in range(3):
            ddb.put_item(TableName=name, Item={"pk": S("p"), "sk": N(str(i)), "d": S("x" * 5000)})
        for consistent, units in ((True, 4.0), (False, 2.0)):
            scan = ddb.scan(TableName=name, ConsistentRead=consistent, ReturnConsumedCapacity="TOTAL")
            assert scan["Count"] == 3 and _units(scan) == units
            filtered = ddb.scan(TableName=name, ConsistentRead=consistent, ReturnConsumedCapacity="TOTAL",
                                FilterExpression="attribute_exists(nothing)")
            assert filtered["Count"] == 0 and filtered["ScannedCount"] == 3 and _units(filtered) == units
            query = ddb.query(TableName=name, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("p")},
                              ConsistentRead=consistent, ReturnConsumedCapacity="TOTAL", Select="COUNT")
            assert query["Count"] == 3 and _units(query) == units
    finally:
        ddb.delete_table(TableName=name)


# ---------------------------------------------------------------- DynamoDB Streams


@pytest.fixture(scope="module")
def streams(shoal):
    from tests.conftest import make_client
    return make_client(shoal.url, "dynamodbstreams")


def _streamed_table(ddb) -> tuple[str, str]:
    from tests.conftest import unique_name
    name = unique_name("st")
    out = ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                           KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                           StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    return name, out["TableDescription"]["LatestStreamArn"]


def test_describe_stream_refuses_a_shard_filter_missing_a_member(ddb, streams):
    name, arn = _streamed_table(ddb)
    try:
        shard_id = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        null = "Value null at 'shardFilter.{}' failed to satisfy constraint: Member must not be null"
        assert error_of(streams.describe_stream, StreamArn=arn, ShardFilter={"ShardId": shard_id}) == (
            "ValidationException", "1 validation error detected: " + null.format("type"))
        assert error_of(streams.describe_stream, StreamArn=arn, ShardFilter={"Type": "CHILD_SHARDS"}) == (
            "ValidationException", "1 validation error detected: " + null.format("shardId"))
        assert error_of(streams.describe_stream, StreamArn=arn, ShardFilter={}) == (
            "ValidationException", "2 validation errors detected: " + null.format("type") + "; " + null.format("shardId"))
        # A whole filter still works: the open shard has no child yet.
        out = streams.describe_stream(StreamArn=arn, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": shard_id})
        assert out["StreamDescription"]["Shards"] == []
    finally:
        ddb.delete_table(TableName=name)


def test_disabling_a_stream_closes_its_open_shard_at_once(ddb, streams):
    name, arn = _streamed_table(ddb)
    try:
        for i in range(3):
            ddb.put_item(TableName=name, Item={"pk": S(f"k{i}")})
        (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]
        ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
        description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
        assert description["StreamStatus"] == "DISABLED"
        (closed,) = description["Shards"]
        span = closed["SequenceNumberRange"]
        assert closed["ShardId"] == shard["ShardId"] and "EndingSequenceNumber" in span
        # The closed shard ends at its last record: reading it to the end gives the three writes.
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=closed["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        page = streams.get_records(ShardIterator=iterator)
        assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]] == ["k0", "k1", "k2"]
        assert page["Records"][-1]["dynamodb"]["SequenceNumber"] == span["EndingSequenceNumber"]
    finally:
        ddb.delete_table(TableName=name)


# ---------------------------------------------------------------- ImportTable


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A server of its own with a folder standing for S3 (``--s3-dir``)."""
    from tests.shoal_process import ShoalProcess
    root = tmp_path_factory.mktemp("import21")
    (root / "s3" / "bucket").mkdir(parents=True)
    server = ShoalProcess(root / "data", "--s3-dir", str(root / "s3")).start()
    yield server, root / "s3" / "bucket"
    server.stop()


def _import(ddb, name: str, prefix: str, input_format: str) -> dict:
    import time
    started = ddb.import_table(
        S3BucketSource={"S3Bucket": "bucket", "S3KeyPrefix": prefix}, InputFormat=input_format,
        InputCompressionType="NONE", TableCreationParameters={
            "TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    arn = started["ImportTableDescription"]["ImportArn"]
    for _ in range(300):
        description = ddb.describe_import(ImportArn=arn)["ImportTableDescription"]
        if description["ImportStatus"] != "IN_PROGRESS":
            return description
        time.sleep(0.05)
    raise AssertionError("import still IN_PROGRESS")


def test_import_counts_an_item_with_an_empty_attribute_name_as_an_error(s3_server):
    from tests.conftest import make_client
    server, bucket = s3_server
    ddb = make_client(server.url)
    (bucket / "json").mkdir()
    (bucket / "json" / "items.json").write_text("\n".join([
        '{"Item": {"pk": {"S": "good"}, "m": {"M": {"k": {"S": "v"}}}}}',
        '{"Item": {"pk": {"S": "top"}, "": {"S": "x"}}}',
        '{"Item": {"pk": {"S": "nested"}, "m": {"M": {"": {"S": "x"}}}}}',
        '{"Item": {"pk": {"S": "in-list"}, "l": {"L": [{"M": {"": {"N": "1"}}}]}}}']))
    done = _import(ddb, "import-empty-json", "json/", "DYNAMODB_JSON")
    assert (done["ImportStatus"], done["ErrorCount"], done["ImportedItemCount"]) == ("FAILED", 3, 1)
    items = ddb.scan(TableName="import-empty-json")["Items"]
    assert items == [{"pk": {"S": "good"}, "m": {"M": {"k": {"S": "v"}}}}]
    # A CSV column without a name names an empty attribute in every row.
    (bucket / "csv").mkdir()
    (bucket / "csv" / "rows.csv").write_text("pk,,title\na,x,t\n")
    done = _import(ddb, "import-empty-csv", "csv/", "CSV")
    assert (done["ImportStatus"], done["ErrorCount"], done["ImportedItemCount"]) == ("FAILED", 1, 0)
    assert ddb.scan(TableName="import-empty-csv")["Items"] == []


# ---------------------------------------------------------------- differential sweep (bench/conformance_sweep.py)

@pytest.fixture(scope="module")
def sweep_indexed(ddb):
    """pk/sk (S) with a GSI keyed by 'g' (S) and an LSI keyed by 'l' (S)."""
    from tests.conftest import unique_name
    name = unique_name("sweep")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g", "l")],
        GlobalSecondaryIndexes=[{"IndexName": "gsi", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}],
        LocalSecondaryIndexes=[{"IndexName": "lsi", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "l", "KeyType": "RANGE"}]}])
    ddb.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"S": "s"}, "g": {"S": "G"}})
    yield name
    ddb.delete_table(TableName=name)


def _cancelled(ddb, items) -> tuple[str, list]:
    with pytest.raises(ClientError) as info:
        ddb.transact_write_items(TransactItems=items)
    error = info.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    return error["Error"]["Message"], error["CancellationReasons"]


@pytest.mark.parametrize("action", ["Put", "Update"])
@pytest.mark.parametrize("value", [{"N": "5"}, {"L": [{"S": "x"}]}])
def test_transaction_index_key_of_another_type_cancels_it(ddb, sweep_indexed, action, value):
    """DynamoDB (eu-west-2 recording of the dynamodb-conformance suite,
    2026-06): an index key of another type, or not a scalar, in a transact
    Put or Update cancels the transaction with a ValidationError reason;
    nothing is written."""
    key = {"pk": {"S": "t-type"}, "sk": {"S": action}}
    put = {"Put": {"TableName": sweep_indexed, "Item": {**key, "g": value}}}
    update = {"Update": {"TableName": sweep_indexed, "Key": key, "UpdateExpression": "SET g = :v",
                         "ExpressionAttributeValues": {":v": value}}}
    other = {"Put": {"TableName": sweep_indexed, "Item": {"pk": {"S": "t-type"}, "sk": {"S": "other"}}}}
    message, reasons = _cancelled(ddb, [other, put if action == "Put" else update])
    assert message == ("Transaction cancelled, please refer cancellation reasons for specific reasons "
                       "[None, ValidationError]")
    assert reasons == [{"Code": "None"}, {
        "Code": "ValidationError",
        "Message": "One or more parameter values were invalid: Type mismatch for Index Key g Expected: S "
                   f"Actual: {next(iter(value))} IndexName: gsi"}]
    assert ddb.query(TableName=sweep_indexed, KeyConditionExpression="pk = :p",
                     ExpressionAttributeValues={":p": {"S": "t-type"}})["Items"] == []


def test_transaction_update_to_an_empty_index_key_is_refused_in_update_words(ddb, sweep_indexed):
    """An Update that sets an index key to an empty value is a
    ValidationException of the whole request, worded for an update
    expression (a Put's names the index and key instead)."""
    code, message = error_of(ddb.transact_write_items, TransactItems=[{"Update": {
        "TableName": sweep_indexed, "Key": {"pk": {"S": "p"}, "sk": {"S": "s"}}, "UpdateExpression": "SET l = :e",
        "ExpressionAttributeValues": {":e": {"S": ""}}}}])
    assert (code, message) == ("ValidationException",
                               "One or more parameter values are not valid. The update expression attempted to "
                               "update a secondary index key to a value that is not supported. The AttributeValue "
                               "for a key attribute cannot contain an empty string value.")
    code, message = error_of(ddb.transact_write_items, TransactItems=[{"Put": {
        "TableName": sweep_indexed, "Item": {"pk": {"S": "p"}, "sk": {"S": "s"}, "l": {"S": ""}}}}])
    assert (code, message) == ("ValidationException",
                               "One or more parameter values are not valid. A value specified for a secondary "
                               "index key is not supported. The AttributeValue for a key attribute cannot contain "
                               "an empty string value. IndexName: lsi, IndexKey: l")
    assert ddb.get_item(TableName=sweep_indexed, Key={"pk": {"S": "p"}, "sk": {"S": "s"}})["Item"] == {
        "pk": {"S": "p"}, "sk": {"S": "s"}, "g": {"S": "G"}}


def _raw(shoal, operation: str, body: dict) -> tuple[int, dict]:
    """A request as sent, past the SDK (which neither validates nor
    serializes a member its model lacks)."""
    import json
    import urllib.error
    import urllib.request
    request = urllib.request.Request(shoal.url, json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{operation}",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDSHOALTEST/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_read_structures_ignore_expression_attribute_values(shoal, hash_only):
    """KeysAndAttributes (BatchGetItem) and Get (TransactGetItems) have no
    ExpressionAttributeValues member: DynamoDB ignores it, as it ignores any
    member a structure does not have, rather than calling it unused."""
    values = {":v": {"S": "x"}}
    got = _raw(shoal, "BatchGetItem", {"RequestItems": {hash_only: {
        "Keys": [KEY], "ProjectionExpression": "x", "ExpressionAttributeValues": values}}})
    assert got == (200, {"Responses": {hash_only: [{"x": {"S": "kept"}}]}, "UnprocessedKeys": {}})
    got = _raw(shoal, "TransactGetItems", {"TransactItems": [{"Get": {
        "TableName": hash_only, "Key": KEY, "ProjectionExpression": "x", "ExpressionAttributeValues": values}}]})
    assert got == (200, {"Responses": [{"Item": {"x": {"S": "kept"}}}]})
    got = _raw(shoal, "BatchGetItem", {"RequestItems": {hash_only: {"Keys": [KEY], "ExpressionAttributeValues": values}}})
    assert got == (200, {"Responses": {hash_only: [{"pk": {"S": "a"}, "x": {"S": "kept"}}]}, "UnprocessedKeys": {}})


def test_partiql_tuple_with_a_key_twice_is_refused(ddb, hash_only):
    """DynamoDB's PartiQL refuses a tuple naming one key twice (DynamoDB
    Local's words, without its line:column position, as Shoal words its other
    literal faults); nothing is stored."""
    code, message = error_of(ddb.execute_statement,
                             Statement=f"INSERT INTO \"{hash_only}\" VALUE {{'pk': 'dup', 'pk': 'again'}}")
    assert (code, message) == ("ValidationException", "Duplicate keys in tuple. Key: pk under root")
    code, message = error_of(ddb.execute_statement,
                             Statement=f"INSERT INTO \"{hash_only}\" VALUE {{'pk': 'dup', 'm': {{'a': 1, 'a': 2}}}}")
    assert (code, message) == ("ValidationException", "Duplicate keys in tuple. Key: a under root.m")
    for key in ("dup", "again"):
        assert "Item" not in ddb.get_item(TableName=hash_only, Key={"pk": {"S": key}})


def test_partiql_statement_may_end_with_a_semicolon(ddb, hash_only):
    """PartiQL's grammar ends a statement with an optional ';'; a second
    statement after it is still not well formed."""
    got = ddb.execute_statement(Statement=f"SELECT x FROM \"{hash_only}\" WHERE pk = 'a';")
    assert got["Items"] == [{"x": {"S": "kept"}}]
    statement = f"SELECT x FROM \"{hash_only}\" WHERE pk = 'a'; SELECT x FROM \"{hash_only}\""
    code, message = error_of(ddb.execute_statement, Statement=statement)
    assert (code, message) == ("ValidationException",
                               "Statement wasn't well formed, can't be processed: Unexpected token after expression")
    code, message = error_of(ddb.execute_statement, Statement=f"SELECT x FROM \"{hash_only}\" WHERE pk = 'a';;")
    assert (code, message) == ("ValidationException",
                               "Statement wasn't well formed, can't be processed: Unexpected token after expression")


def test_query_filter_on_a_key_attribute_in_dynamodbs_words(ddb, sweep_indexed):
    """DynamoDB's wording (dynalite's recordings against DynamoDB, which
    DynamoDB Local shares): "non-primary key attributes", as for a
    FilterExpression."""
    for name in ("pk", "sk"):
        code, message = error_of(ddb.query, TableName=sweep_indexed,
                                 KeyConditions={"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]}},
                                 QueryFilter={name: {"ComparisonOperator": "NOT_NULL"}})
        assert (code, message) == ("ValidationException",
                                   f"QueryFilter can only contain non-primary key attributes: Primary key attribute: {name}")
    got = ddb.query(TableName=sweep_indexed, KeyConditions={"pk": {"ComparisonOperator": "EQ",
                                                                   "AttributeValueList": [{"S": "p"}]}},
                    QueryFilter={"g": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "G"}]}})
    assert (got["Count"], got["ScannedCount"]) == (1, 1)


@pytest.mark.parametrize("source, message", [
    ('"{t}"."by_g"."extra"', "A path may contain at most 2 components in the FROM clause"),
    ('"{t}".""', "Path component cannot be an empty string"),
    ('""', "Path component cannot be an empty string"),
])
def test_partiql_from_path_faults_in_dynamodbs_words(ddb, sweep_indexed, source, message):
    """As the dynamodb-conformance suite recorded them against DynamoDB
    (eu-west-2): three components, or an empty one (refused before any table
    is looked up: an empty table name is not 'Requested resource not found')."""
    statement = f"SELECT * FROM {source.format(t=sweep_indexed)} WHERE pk = 'p'"
    assert error_of(ddb.execute_statement, Statement=statement) == ("ValidationException", message)
    assert ddb.execute_statement(Statement=f"SELECT g FROM \"{sweep_indexed}\" WHERE pk = 'p'")["Items"] == [
        {"g": {"S": "G"}}]


def test_update_item_emptying_an_index_key_is_refused_in_update_words(ddb, sweep_indexed):
    """DynamoDB (recorded; DynamoDB Local, moto and others agree): an UpdateItem
    (expression or AttributeUpdates) that sets a GSI or LSI key to an empty
    string is refused in the update expression's words, not a put's; nothing
    is written."""
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    update_words = ("ValidationException",
                    "One or more parameter values are not valid. The update expression attempted to update a "
                    "secondary index key to a value that is not supported. The AttributeValue for a key attribute "
                    "cannot contain an empty string value.")
    for name in ("g", "l"):
        assert error_of(ddb.update_item, TableName=sweep_indexed, Key=key, UpdateExpression="SET #n = :e",
                        ExpressionAttributeNames={"#n": name},
                        ExpressionAttributeValues={":e": {"S": ""}}) == update_words, name
        assert error_of(ddb.update_item, TableName=sweep_indexed, Key=key,
                        AttributeUpdates={name: {"Value": {"S": ""}, "Action": "PUT"}}) == update_words, name
    # an empty string in an attribute that keys no index is stored
    ddb.update_item(TableName=sweep_indexed, Key=key, UpdateExpression="SET extra = :e",
                    ExpressionAttributeValues={":e": {"S": ""}})
    assert ddb.get_item(TableName=sweep_indexed, Key=key)["Item"] == {**key, "g": {"S": "G"}, "extra": {"S": ""}}
    ddb.update_item(TableName=sweep_indexed, Key=key, UpdateExpression="REMOVE extra")
