"""PartiQL SELECTs whose WHERE names partitions with IN or OR are key reads (issue 21).

The Developer Guide's PartiQL SELECT page: an equality or IN condition on the
partition key (and an OR of equalities on it) is no full table scan.  Such a
SELECT reads only the partitions it names, one Query each, in the statement's
order (DynamoDB Local's for IN): its items, its ConsumedCapacity (the Queries',
far below a Scan's with a large other partition in the table), its pages and
NextToken across partitions, and ``dynamodb:FullTableScan`` false for it.
"""

from __future__ import annotations

import itertools

import pytest

from shoal.auth.iam import IamStore
from shoal.storage.datadir import open_data_dir
from tests.conftest import unique_name
from tests.server.test_auth import client, error_code
from tests.shoal_process import ShoalProcess, root_credentials

S = lambda text: {"S": text}  # noqa: E731
SMALL = ("a", "b", "c")
BIG_ITEMS = 40  # of about 3 KB each: a Scan reads them all
PAD = "y" * 3000


@pytest.fixture(scope="module")
def world(ddb):
    """A table (pk S, sk N) with a GSI on g: three small partitions of three
    items and a large one, every item's g its partition's name with a "g"."""
    name = unique_name("pqkeys")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                               {"AttributeName": "sk", "KeyType": "RANGE"}]}])
    for pk in SMALL:
        for sk in range(3):
            ddb.put_item(TableName=name, Item={"pk": S(pk), "sk": {"N": str(sk)}, "g": S("g" + pk),
                                               "x": S("keep" if sk != 1 else "drop")})
    for sk in range(BIG_ITEMS):
        ddb.put_item(TableName=name, Item={"pk": S("big"), "sk": {"N": str(sk)}, "g": S("gbig"), "pad": S(PAD)})
    yield name
    ddb.delete_table(TableName=name)


def keys(items) -> list:
    return [(item["pk"]["S"], int(item["sk"]["N"])) for item in items]


def run(ddb, text, **kwargs):
    return ddb.execute_statement(Statement=text, **kwargs)


def queries_units(ddb, table, partitions, index=None, attribute="pk") -> float:
    """What a Query of each partition consumes, summed."""
    total = 0.0
    for value in partitions:
        request = {"TableName": table, "KeyConditionExpression": "#k = :v",
                   "ExpressionAttributeNames": {"#k": attribute}, "ExpressionAttributeValues": {":v": S(value)},
                   "ReturnConsumedCapacity": "TOTAL"}
        if index:
            request["IndexName"] = index
        total += ddb.query(**request)["ConsumedCapacity"]["CapacityUnits"]
    return total


def scan_units(ddb, table) -> float:
    return ddb.scan(TableName=table, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"]


def expected(*partitions, sks=range(3)) -> list:
    return [(pk, sk) for pk in partitions for sk in sks]


@pytest.mark.parametrize("where, partitions", [
    ("pk IN ['c', 'a', 'zz']", ("c", "a", "zz")),
    ("pk = 'c' OR pk = 'a'", ("c", "a")),
    ("pk = 'b' OR pk IN ['c', 'a']", ("b", "c", "a")),
])
def test_items_and_capacity_are_those_of_the_partitions(ddb, world, where, partitions):
    out = run(ddb, f"SELECT * FROM \"{world}\" WHERE {where}", ReturnConsumedCapacity="TOTAL")
    assert keys(out["Items"]) == expected(*(p for p in partitions if p in SMALL))
    assert "NextToken" not in out
    units = out["ConsumedCapacity"]["CapacityUnits"]
    assert units == queries_units(ddb, world, partitions)
    assert units * 5 < scan_units(ddb, world)


def test_sort_key_condition_and_filter_apply_in_each_partition(ddb, world):
    out = run(ddb, f"SELECT pk, sk FROM \"{world}\" WHERE (pk = 'b' OR pk = 'a') AND sk >= 1 AND x = 'keep'",
              ReturnConsumedCapacity="TOTAL")
    assert keys(out["Items"]) == [("b", 2), ("a", 2)]
    assert out["Items"][0] == {"pk": S("b"), "sk": {"N": "2"}}
    assert out["ConsumedCapacity"]["CapacityUnits"] * 5 < scan_units(ddb, world)


def test_order_by_sort_key_descending_in_each_partition(ddb, world):
    out = run(ddb, f"SELECT pk, sk FROM \"{world}\" WHERE pk IN ['c', 'a'] ORDER BY sk DESC")
    assert keys(out["Items"]) == expected("c", "a", sks=(2, 1, 0))
    # ORDER BY the partition key DESC: the partitions in reverse (DynamoDB Local's answer)
    out = run(ddb, f"SELECT pk, sk FROM \"{world}\" WHERE pk = 'c' OR pk = 'a' ORDER BY pk DESC")
    assert keys(out["Items"]) == expected("a", "c")


def test_pages_and_next_token_across_partitions(ddb, world):
    text = f"SELECT * FROM \"{world}\" WHERE pk IN ['c', 'a', 'b']"
    first = run(ddb, text, Limit=4, ReturnConsumedCapacity="TOTAL")
    assert keys(first["Items"]) == [("c", 0), ("c", 1), ("c", 2), ("a", 0)]  # Limit counts across partitions
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"Limit": 2, "ReturnConsumedCapacity": "TOTAL"}
        if token:
            kwargs["NextToken"] = token
        page = run(ddb, text, **kwargs)
        pages += 1
        assert len(page["Items"]) <= 2
        assert page["ConsumedCapacity"]["CapacityUnits"] < scan_units(ddb, world) / 5
        seen.extend(keys(page["Items"]))
        token = page.get("NextToken")
        if token is None:
            break
        assert pages < 10
    assert seen == expected("c", "a", "b")
    # A token names a partition of its own statement only
    other = run(ddb, f"SELECT * FROM \"{world}\" WHERE pk IN ['c', 'b']", Limit=2)
    code, message = error_code(run, ddb=ddb, text=text, Limit=2, NextToken=other["NextToken"])
    assert code == "ValidationException"


def test_a_page_reads_about_one_megabyte(ddb):
    """Five partitions of one 300 KB item each: the first page stops once it
    has read 1 MB (four of them), its NextToken starting the fifth."""
    name = unique_name("pqpages")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    try:
        for number in range(5):
            ddb.put_item(TableName=name, Item={"pk": S(f"m{number}"), "pad": S("z" * 300_000)})
        text = f"SELECT pk FROM \"{name}\" WHERE pk IN ['m0', 'm1', 'm2', 'm3', 'm4']"
        first = run(ddb, text, ReturnConsumedCapacity="TOTAL")
        assert [item["pk"]["S"] for item in first["Items"]] == ["m0", "m1", "m2", "m3"]
        assert first["ConsumedCapacity"]["CapacityUnits"] == 4 * 37.0  # 300,007 bytes: 74 units of 4 KB, halved
        assert "LastEvaluatedKey" not in first  # the page ended between two partitions
        second = run(ddb, text, NextToken=first["NextToken"])
        assert [item["pk"]["S"] for item in second["Items"]] == ["m4"] and "NextToken" not in second
        # the token is the statement's own
        code, message = error_code(run, ddb=ddb, text=text.replace("'m4'", "'m5'"), NextToken=first["NextToken"])
        assert (code, message) == ("ValidationException", "NextToken does not match request")
    finally:
        ddb.delete_table(TableName=name)


@pytest.fixture(scope="module")
def thirty(ddb):
    """A table (pk S, sk N) of thirty items: partitions p (12), q (9) and r (9),
    each item's x "odd" or "even" as its sk, and a GSI by_x on x."""
    name = unique_name("pqten")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"},
                                           {"AttributeName": "x", "AttributeType": "S"}],
                     GlobalSecondaryIndexes=[{"IndexName": "by_x", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                              "KeySchema": [{"AttributeName": "x", "KeyType": "HASH"}]}])
    for pk, count in (("p", 12), ("q", 9), ("r", 9)):
        for sk in range(count):
            ddb.put_item(TableName=name, Item={"pk": S(pk), "sk": {"N": str(sk)}, "x": S(("even", "odd")[sk % 2])})
    yield name
    ddb.delete_table(TableName=name)


def pages(ddb, text, shape=keys, **kwargs) -> list:
    """Every page of a SELECT, following NextToken: a list of key lists (or of ``shape``'s)."""
    out, token = [], None
    while True:
        page = run(ddb, text, **kwargs, **({"NextToken": token} if token else {}))
        out.append(shape(page["Items"]))
        token = page.get("NextToken")
        if token is None:
            return out
        assert len(out) < 40


@pytest.mark.parametrize("where", ["pk IN ['p', 'q', 'r']", "pk = 'p' OR pk = 'q' OR pk = 'r'"])
def test_in_results_come_in_pages_of_up_to_ten_items(ddb, thirty, where):
    """The Developer Guide's PartiQL operators page: IN results "are returned in
    pages of up to 10 items", the rest through NextToken.  Thirty items of three
    partitions: three pages of ten, each ending where its tenth item is (mid
    partition, or at the end); a Limit under 10 still honoured, one over it
    not (a page is 10 at most); a filter's items counted as returned (14 odd
    ones: 10, then 4); each page's ConsumedCapacity is what its Queries read."""
    text = f"SELECT pk, sk FROM \"{thirty}\" WHERE {where}"
    everything = [("p", sk) for sk in range(12)] + [(pk, sk) for pk in ("q", "r") for sk in range(9)]
    assert pages(ddb, text) == [everything[:10], everything[10:20], everything[20:]]
    odd = [key for key in everything if key[1] % 2]
    assert pages(ddb, f"SELECT pk, sk FROM \"{thirty}\" WHERE ({where}) AND x = 'odd'") == [odd[:10], odd[10:]]
    for limit in (4, 25):
        got = pages(ddb, text, Limit=limit)
        assert max(len(page) for page in got) == min(limit, 10)
        assert sum(got, []) == everything
    first = run(ddb, text, ReturnConsumedCapacity="TOTAL")
    assert first["LastEvaluatedKey"] == {"pk": S("p"), "sk": {"N": "9"}}
    one_query = ddb.query(TableName=thirty, KeyConditionExpression="pk = :p",
                          ExpressionAttributeValues={":p": S("p")}, ReturnConsumedCapacity="TOTAL")
    assert first["ConsumedCapacity"] == one_query["ConsumedCapacity"]
    # a partition's own Query (an equality) is no IN: its items come in one page
    assert len(run(ddb, f"SELECT pk, sk FROM \"{thirty}\" WHERE pk = 'p'")["Items"]) == 12


def test_an_index_in_read_pages_by_ten_with_a_projection(ddb, thirty):
    """On an index, with a SELECT list without the keys: the page still ends
    after its tenth item and the next one starts after it."""
    text = f"SELECT sk FROM \"{thirty}\".\"by_x\" WHERE x IN ['odd', 'even']"
    got = pages(ddb, text, shape=list)
    assert [len(page) for page in got] == [10, 10, 10]
    assert all(set(item) == {"sk"} for page in got for item in page)  # the keys the page needed are not returned
    flat = [item["sk"]["N"] for page in got for item in page]
    assert sorted(flat, key=int) == sorted((str(sk) for pk, n in (("p", 12), ("q", 9), ("r", 9))
                                            for sk in range(n)), key=int)


def test_value_types_and_a_partition_named_twice(ddb, world):
    """A partition key value of another type, in an IN or an OR, and a sort
    key value of another type in a key read's IN or OR, are refused; so is a
    partition named twice; a filter comparing a key attribute with a value of
    another type in a scan runs (DynamoDB's answers, recorded in eu-west-2,
    2026-09-17, floci-io/floci's DynamoDbPartiQLEdgeCaseIntegrationTest;
    DynamoDB Local refuses an IN's in other words, lets an OR's match nothing
    and reads a partition named twice once)."""
    mistyped = "Key attribute's data type should match its data type in table's schema: Key "
    for where, key in (("pk IN [1, 'a']", "pk"), ("pk = 1 OR pk = 'a'", "pk"), ("pk = 1 OR pk = 2", "pk"),
                       ("pk = 'a' AND sk IN [1, '2']", "sk"), ("pk IN ['a', 'b'] AND (sk = 1 OR sk = 'x')", "sk")):
        code, message = error_code(run, ddb=ddb, text=f"SELECT * FROM \"{world}\" WHERE {where}")
        assert (code, message) == ("ValidationException", mistyped + key)
    overlapping = "Overlapping conditions with range keys are not supported in where clause"
    for where in ("pk IN ['c', 'a', 'c']", "pk = 'a' OR pk = 'a'", "pk = 'b' OR pk IN ['a', 'b']"):
        code, message = error_code(run, ddb=ddb, text=f"SELECT * FROM \"{world}\" WHERE {where}")
        assert (code, message) == ("ValidationException", overlapping)
    out = run(ddb, f"SELECT * FROM \"{world}\" WHERE pk > 1 OR sk = 'x'")
    assert out["Items"] == []


@pytest.mark.parametrize("where", [
    "pk = 'a' AND (sk > 0 OR sk < 5)",
    "pk = 'a' AND (sk = 1 OR x = 'keep')",
    "(pk = 'a' AND x = 'keep') OR (pk = 'a' AND x = 'drop')",
    "pk = 'a' AND x <> 'keep' OR pk = 'a' AND sk = 2",
    "pk = 'a' AND sk BETWEEN 0 AND 1 OR pk = 'a' AND sk >= 1",
])
def test_or_branches_reading_one_range_twice_are_refused(ddb, world, where):
    """DynamoDB's answers (floci-io/floci, eu-west-2, 2026-09-17;
    nubo-db/dynamodb-conformance, October 2026): two OR branches of one
    partition whose sort key ranges meet are refused."""
    code, message = error_code(run, ddb=ddb, text=f"SELECT * FROM \"{world}\" WHERE {where}")
    assert (code, message) == ("ValidationException",
                               "Overlapping conditions with range keys are not supported in where clause")


@pytest.mark.parametrize("where, found", [
    ("pk = 'a' AND (sk = 1 OR sk = 2)", expected("a", sks=(1, 2))),
    ("pk = 'a' AND (sk < 1 OR sk > 1 OR sk = 1)", expected("a")),
    ("pk = 'a' AND sk <= 1 OR pk = 'a' AND sk > 1", expected("a")),
    ("pk = 'a' OR sk = 1", expected("a") + [("b", 1), ("c", 1), ("big", 1)]),
    ("pk = 'a' AND NOT sk = 1 OR pk = 'a' AND sk = 2", expected("a", sks=(0, 2))),
    ("pk = 'a' OR pk = 'a' AND NOT sk = 1", expected("a")),
    ("(pk = 'a' AND x = 'keep') OR (pk = 'b' AND x = 'drop')", [("a", 0), ("a", 2), ("b", 1)]),
])
def test_or_branches_reading_apart_are_read(ddb, world, where, found):
    """The same recordings: ranges apart, another partition, a branch
    without the partition (a scan), or a negated sort key condition."""
    out = run(ddb, f"SELECT pk, sk FROM \"{world}\" WHERE {where}")
    assert sorted(keys(out["Items"])) == sorted(found)


def test_index_or_branches_reading_one_partition_twice_are_refused(ddb, world):
    text = f"SELECT pk, sk FROM \"{world}\".\"by_g\" WHERE "
    code, message = error_code(run, ddb=ddb, text=text + "(g = 'ga' AND x = 'keep') OR (g = 'ga' AND x = 'drop')")
    assert message == "Overlapping conditions with range keys are not supported in where clause"
    out = run(ddb, text + "(g = 'ga' AND x = 'keep') OR (g = 'gb' AND x = 'drop')")
    assert sorted(keys(out["Items"])) == [("a", 0), ("a", 2), ("b", 1)]


def test_an_or_with_another_attribute_still_scans(ddb, world):
    out = run(ddb, f"SELECT pk, sk FROM \"{world}\" WHERE pk = 'a' OR x = 'nothing'", ReturnConsumedCapacity="TOTAL")
    assert keys(out["Items"]) == expected("a")
    assert out["ConsumedCapacity"]["CapacityUnits"] == scan_units(ddb, world)


@pytest.mark.parametrize("where", ["g IN ['gc', 'ga']", "g = 'gc' OR g = 'ga'"])
def test_index_partitions(ddb, world, where):
    out = run(ddb, f"SELECT pk, sk FROM \"{world}\".\"by_g\" WHERE {where}", ReturnConsumedCapacity="INDEXES")
    assert keys(out["Items"]) == expected("c", "a")
    capacity = out["ConsumedCapacity"]
    index_units = queries_units(ddb, world, ("gc", "ga"), index="by_g", attribute="g")
    assert capacity["GlobalSecondaryIndexes"] == {"by_g": {"CapacityUnits": index_units}}
    assert capacity["CapacityUnits"] == index_units
    full = ddb.scan(TableName=world, IndexName="by_g", ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert index_units * 5 < full["CapacityUnits"]
    paged, token = [], None
    while True:
        page = run(ddb, f"SELECT pk, sk FROM \"{world}\".\"by_g\" WHERE {where}", Limit=2,
                   **({"NextToken": token} if token else {}))
        paged.extend(keys(page["Items"]))
        token = page.get("NextToken")
        if token is None:
            break
    assert paged == expected("c", "a")


@pytest.fixture(scope="module")
def multi(ddb):
    """A table whose GSI "by_place" has a two-attribute partition key (city,
    country) and sort key n; a large partition (big, NL)."""
    name = unique_name("pqmulti")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("id", "S"), ("city", "S"), ("country", "S"), ("n", "N"))],
        GlobalSecondaryIndexes=[{"IndexName": "by_place", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "city", "KeyType": "HASH"},
                                               {"AttributeName": "country", "KeyType": "HASH"},
                                               {"AttributeName": "n", "KeyType": "RANGE"}]}])
    places = [("x", "NL"), ("x", "DE"), ("y", "NL")] * 2 + [("big", "NL")] * BIG_ITEMS
    for number, (city, country) in enumerate(places):
        item = {"id": S(f"i{number}"), "city": S(city), "country": S(country), "n": {"N": str(number)}}
        if city == "big":
            item["pad"] = S(PAD)
        ddb.put_item(TableName=name, Item=item)
    yield name
    ddb.delete_table(TableName=name)


@pytest.mark.parametrize("where, expected_places", [
    ("city = 'x' AND country IN ['DE', 'NL']", [("x", "DE"), ("x", "DE"), ("x", "NL"), ("x", "NL")]),
    ("(city = 'y' OR city = 'x') AND country = 'NL'", [("y", "NL"), ("y", "NL"), ("x", "NL"), ("x", "NL")]),
])
def test_multi_attribute_partition_key(ddb, multi, where, expected_places):
    text = f'SELECT city, country FROM "{multi}"."by_place" WHERE {where}'
    out = run(ddb, text, ReturnConsumedCapacity="TOTAL")
    assert [(i["city"]["S"], i["country"]["S"]) for i in out["Items"]] == expected_places
    full = ddb.scan(TableName=multi, IndexName="by_place", ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert out["ConsumedCapacity"]["CapacityUnits"] * 5 < full["CapacityUnits"]
    paged, token = [], None
    while True:
        page = run(ddb, text, Limit=1, **({"NextToken": token} if token else {}))
        paged.extend((i["city"]["S"], i["country"]["S"]) for i in page["Items"])
        token = page.get("NextToken")
        if token is None:
            break
    assert paged == expected_places


# ---------------------------------------------------------------- dynamodb:FullTableScan

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("partiql-key-reads-auth")
    server = ShoalProcess(data_dir, "--auth", "sigv4").start()
    root = client(server.url, *root_credentials(data_dir))
    root.create_table(TableName="pqk", BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"}
                                            for name in ("pk", "kind", "city", "country")],
                      GlobalSecondaryIndexes=[{"IndexName": "by_kind", "Projection": {"ProjectionType": "ALL"},
                                               "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}]},
                                              {"IndexName": "by_place", "Projection": {"ProjectionType": "ALL"},
                                               "KeySchema": [{"AttributeName": "city", "KeyType": "HASH"},
                                                             {"AttributeName": "country", "KeyType": "HASH"}]}])
    for pk, country in (("mine", "NL"), ("theirs", "DE")):
        root.put_item(TableName="pqk", Item={"pk": S(pk), "kind": S(pk + "-kind"), "x": {"N": "1"},
                                             "city": S("x"), "country": S(country)})
    engine = open_data_dir(data_dir)
    store = IamStore(engine, data_dir)
    names = itertools.count()

    def user(*statements):
        name = f"pqk{next(names)}"
        store.create_user(name)
        access = store.create_access_key(name)
        store.put_inline_policy("user", name, "p", {"Version": "2012-10-17", "Statement": list(statements)})
        return client(server.url, access["AccessKeyId"], access["SecretAccessKey"])

    yield user
    engine.close()
    server.stop()


@pytest.mark.parametrize("text, scan", [
    ("SELECT * FROM pqk WHERE pk IN ['mine', 'theirs']", False),
    ("SELECT * FROM pqk WHERE pk = 'mine' OR pk = 'theirs'", False),
    ("SELECT * FROM pqk WHERE (pk = 'mine' OR pk IN ['theirs']) AND x = 1", False),
    ('SELECT * FROM "pqk"."by_kind" WHERE kind IN [\'mine-kind\', \'theirs-kind\']', False),
    ('SELECT * FROM "pqk"."by_kind" WHERE kind = \'mine-kind\' OR kind = \'theirs-kind\'', False),
    ("SELECT * FROM pqk WHERE pk = 'mine' OR x = 1", True),
    ("SELECT * FROM pqk WHERE NOT pk IN ['mine']", True),
])
def test_full_table_scan_condition_key(secured, text, scan):
    """DynamoDB's documented policy: allow PartiQLSelect, deny it when dynamodb:FullTableScan is true."""
    user = secured({"Effect": "Allow", "Action": "dynamodb:PartiQLSelect", "Resource": "*"},
                   {"Effect": "Deny", "Action": "dynamodb:PartiQLSelect", "Resource": "*",
                    "Condition": {"Bool": {"dynamodb:FullTableScan": "true"}}})
    if scan:
        assert error_code(user.execute_statement, Statement=text)[0] == "AccessDeniedException"
    else:
        assert len(user.execute_statement(Statement=text)["Items"]) == 2


@pytest.mark.parametrize("where, found", [
    ("city = 'x'", None),  # the first partition attribute only: the SELECT scans the index
    ("city = 'x' OR country = 'NL'", None),
    ("city = 'x' AND country = 'NL'", 1),
    ("city = 'x' AND country IN ['NL', 'DE']", 2),
    ("(city = 'x' OR city = 'y') AND country = 'DE'", 1),
])
def test_full_table_scan_of_a_multi_attribute_partition_key(secured, where, found):
    """Issue 21: a SELECT on an index whose partition key has several
    attributes reads it by key only when its WHERE fixes each of them
    (``test_a_partial_multi_attribute_partition_key_scans``); fixing the first
    alone was authorized as a key read (dynamodb:FullTableScan false)."""
    user = secured({"Effect": "Allow", "Action": "dynamodb:PartiQLSelect", "Resource": "*"},
                   {"Effect": "Deny", "Action": "dynamodb:PartiQLSelect", "Resource": "*",
                    "Condition": {"Bool": {"dynamodb:FullTableScan": "true"}}})
    text = f'SELECT * FROM "pqk"."by_place" WHERE {where}'
    if found is None:
        assert error_code(user.execute_statement, Statement=text)[0] == "AccessDeniedException"
    else:
        assert len(user.execute_statement(Statement=text)["Items"]) == found


def test_a_partial_multi_attribute_partition_key_scans(ddb, multi):
    """What the authorization above mirrors: fixing the first of two partition
    attributes reads the whole index (a Scan's capacity), both a partition."""
    full = ddb.scan(TableName=multi, IndexName="by_place", ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    text = f'SELECT city, country FROM "{multi}"."by_place" WHERE city = \'x\''
    out = run(ddb, text, ReturnConsumedCapacity="TOTAL")
    assert sorted(i["country"]["S"] for i in out["Items"]) == ["DE", "DE", "NL", "NL"]
    assert out["ConsumedCapacity"]["CapacityUnits"] == full["CapacityUnits"]
    keyed = run(ddb, text + " AND country = 'NL'", ReturnConsumedCapacity="TOTAL")
    assert [i["country"]["S"] for i in keyed["Items"]] == ["NL", "NL"]
    assert keyed["ConsumedCapacity"]["CapacityUnits"] * 5 < full["CapacityUnits"]


def test_leading_keys_are_every_partition_named(secured):
    user = secured({"Effect": "Allow", "Action": "dynamodb:PartiQLSelect", "Resource": "*",
                    "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["mine"]}}})
    assert len(user.execute_statement(Statement="SELECT * FROM pqk WHERE pk IN ['mine']")["Items"]) == 1
    for text in ("SELECT * FROM pqk WHERE pk IN ['mine', 'theirs']", "SELECT * FROM pqk WHERE pk = 'mine' OR pk = ?"):
        params = {"Parameters": [S("theirs")]} if "?" in text else {}
        assert error_code(user.execute_statement, Statement=text, **params)[0] == "AccessDeniedException", text


def test_a_multi_attribute_partition_key_in_pages_by_ten(ddb, multi):
    """Forty (big, NL) items and two (y, NL): pages of ten, the last of two,
    each item once, the SELECT list without the index's keys."""
    text = f'SELECT n FROM "{multi}"."by_place" WHERE city IN [\'big\', \'y\'] AND country = \'NL\''
    got = pages(ddb, text, shape=lambda items: [item["n"]["N"] for item in items])
    assert [len(page) for page in got] == [10, 10, 10, 10, 2]
    flat = [n for page in got for n in page]
    assert len(set(flat)) == 42
