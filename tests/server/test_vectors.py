"""Vector indexes and SearchVectors through boto3 against a real server.

The viewer-events catalogue of titles carries an 8-dimension embedding per
title; three vector indexes search it, one per distance function.  Expected
rankings and scores are computed here with numpy (float32 vectors, as the index
keeps them), independently of the server's code.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_client, unique_name
from tests.shoal_process import ShoalProcess

INVALID = "One or more parameter values were invalid: "
DIMS = 8
GENRES = ("drama", "comedy", "documentary")
LANGS = ("en", "fr", "nl")

DEFINITIONS = [{"AttributeName": n, "AttributeType": "S"} for n in ("title_id", "genre", "lang")]
COSINE = {"IndexName": "by_cosine", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": DIMS,
          "DistanceFunction": "COSINE", "Projection": {"ProjectionType": "ALL"},
          "SearchSchema": [{"AttributeName": "lang", "SearchSchemaElementType": "INLINE_FILTER"}]}
EUCLIDEAN = {"IndexName": "by_genre", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": DIMS,
             "DistanceFunction": "EUCLIDEAN",
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name"]},
             "SearchSchema": [{"AttributeName": "genre", "SearchSchemaElementType": "HASH"},
                              {"AttributeName": "lang", "SearchSchemaElementType": "INLINE_FILTER"}]}
DOT = {"IndexName": "by_dot", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": DIMS,
       "DistanceFunction": "DOT_PRODUCT", "Projection": {"ProjectionType": "KEYS_ONLY"}}


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def vector_av(values) -> dict:
    return {"L": [{"N": str(v)} for v in values]}


def search_av(values) -> list:
    return [{"N": str(v)} for v in values]


def make_titles(count: int = 40, seed: int = 21) -> dict:
    """title_id -> item: embeddings of three decimals, some titles without a
    language (not filterable by it) and two without an embedding."""
    rng = random.Random(seed)
    titles = {}
    for n in range(count):
        item = {"title_id": {"S": f"t{n:03d}"}, "name": {"S": f"Title {n}"}, "genre": {"S": GENRES[n % 3]},
                "year": {"N": str(1990 + n)}}
        if n % 7 != 3:
            item["lang"] = {"S": LANGS[n % 2 if n % 5 else 2]}
        if n not in (11, 29):
            item["embedding"] = vector_av(round(rng.uniform(-1, 1), 3) for _ in range(DIMS))
        titles[item["title_id"]["S"]] = item
    return titles


def f32(values) -> np.ndarray:
    return np.array([float(v["N"]) for v in values], dtype=np.float32)


def expected(titles: dict, query, distance: str, k: int, keep=lambda item: True) -> list[tuple[str, float]]:
    """The top k (title_id, score), computed with numpy on float32 vectors."""
    q = np.array(query, dtype=np.float32).astype(np.float64)
    scored = []
    for tid, item in sorted(titles.items()):
        if "embedding" not in item or not keep(item):
            continue
        v = f32(item["embedding"]["L"]).astype(np.float64)
        if distance == "COSINE":
            s = 1.0 - float(np.dot(q, v)) / (float(np.linalg.norm(q)) * float(np.linalg.norm(v)))
        elif distance == "EUCLIDEAN":
            s = float(np.linalg.norm(q - v))
        else:
            s = float(np.dot(q, v))
        scored.append((tid, float(np.float32(s))))
    scored.sort(key=lambda p: -p[1] if distance == "DOT_PRODUCT" else p[1])
    return scored[:k]


def ranked(response) -> list[tuple[str, float]]:
    return [(r["Item"]["title_id"]["S"], r["Score"]) for r in response["SearchResults"]]


def assert_ranking(got, want):
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6, abs=1e-6)


QUERY = [0.5, -0.25, 0.125, 0.0, 0.75, -0.5, 0.25, 0.1]


@pytest.fixture(scope="module")
def catalogue(ddb):
    name = unique_name("titles")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=DEFINITIONS,
                     KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}],
                     VectorIndexes=[COSINE, EUCLIDEAN, DOT])
    titles = make_titles()
    for item in titles.values():
        ddb.put_item(TableName=name, Item=item)
    return name, titles


def search(ddb, table, index, query=QUERY, k=5, **extra):
    return ddb.search_vectors(TableName=table, IndexName=index, SearchVector=search_av(query), TopK=k, **extra)


# ---------------------------------------------------------------- DescribeTable


def test_describe_table_shows_the_vector_indexes(ddb, catalogue):
    name, titles = catalogue
    table = ddb.describe_table(TableName=name)["Table"]
    arn = table["TableArn"]
    indexed = sum("embedding" in item for item in titles.values())
    with_genre = indexed  # every title has a genre
    described = {i["IndexName"]: i for i in table["VectorIndexes"]}
    for spec in (COSINE, EUCLIDEAN, DOT):
        got = described[spec["IndexName"]]
        assert got["IndexStatus"] == "ACTIVE" and "Backfilling" not in got
        assert got["IndexArn"] == f"{arn}/index/{spec['IndexName']}"
        assert got["VectorAttribute"] == {"AttributeName": "embedding"}
        assert (got["Dimensions"], got["DistanceFunction"]) == (DIMS, spec["DistanceFunction"])
        assert got["Projection"] == spec["Projection"]
        assert got.get("SearchSchema") == spec.get("SearchSchema")
        assert got["ItemCount"] == (with_genre if spec is EUCLIDEAN else indexed)
        assert got["IndexSizeBytes"] > 0
    assert [d["AttributeName"] for d in table["AttributeDefinitions"]] == ["genre", "lang", "title_id"]
    assert "GlobalSecondaryIndexes" not in table


# ---------------------------------------------------------------- ranking


@pytest.mark.parametrize("index,distance", [("by_cosine", "COSINE"), ("by_dot", "DOT_PRODUCT")])
def test_top_k_over_the_whole_index(ddb, catalogue, index, distance):
    name, titles = catalogue
    for k in (1, 5, 100):
        got = ranked(search(ddb, name, index, k=k))
        assert_ranking(got, expected(titles, QUERY, distance, k))
    assert len(ranked(search(ddb, name, index, k=100))) == 38  # every title with an embedding, no more


def test_euclidean_top_k_within_one_genre(ddb, catalogue):
    name, titles = catalogue
    for genre in GENRES:
        got = ranked(search(ddb, name, "by_genre", k=4, SearchConditionExpression="genre = :g",
                            ExpressionAttributeValues={":g": {"S": genre}}))
        assert_ranking(got, expected(titles, QUERY, "EUCLIDEAN", 4, lambda i: i["genre"]["S"] == genre))


def test_scores_as_the_distance_functions_define_them(ddb):
    """COSINE 0 (same direction) .. 1 (orthogonal) .. 2 (opposite), EUCLIDEAN
    the distance, DOT_PRODUCT the inner product, highest first."""
    name = unique_name("axes")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "title_id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}],
                     VectorIndexes=[{"IndexName": f"ix_{d.lower()}", "VectorAttribute": {"AttributeName": "embedding"},
                                     "Dimensions": 3, "DistanceFunction": d, "Projection": {"ProjectionType": "ALL"}}
                                    for d in ("COSINE", "EUCLIDEAN", "DOT_PRODUCT")])
    titles = {}
    for tid, vec in (("same", (2, 0, 0)), ("right", (0, 3, 0)), ("opposite", (-1, 0, 0)), ("near", (0.6, 0.8, 0))):
        titles[tid] = {"title_id": {"S": tid}, "embedding": vector_av(vec)}
        ddb.put_item(TableName=name, Item=titles[tid])
    approx = {"COSINE": [("same", 0.0), ("near", 0.4), ("right", 1.0), ("opposite", 2.0)],
              "EUCLIDEAN": [("near", 0.4 ** 0.5 * 2 ** 0.5), ("same", 1.0), ("opposite", 2.0), ("right", 10 ** 0.5)],
              "DOT_PRODUCT": [("same", 2.0), ("near", 0.6), ("right", 0.0), ("opposite", -1.0)]}
    for distance, want in approx.items():
        got = ranked(search(ddb, name, f"ix_{distance.lower()}", query=(1, 0, 0), k=4))
        assert_ranking(got, expected(titles, (1, 0, 0), distance, 4))
        assert [t for t, _ in got] == [t for t, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)


# ---------------------------------------------------------------- filters and projection


def test_inline_filter_with_and_without_a_hash(ddb, catalogue):
    name, titles = catalogue
    got = ranked(search(ddb, name, "by_cosine", k=6, SearchConditionExpression="lang = :l",
                        ExpressionAttributeValues={":l": {"S": "fr"}}))
    assert_ranking(got, expected(titles, QUERY, "COSINE", 6, lambda i: i.get("lang", {}).get("S") == "fr"))
    got = ranked(search(ddb, name, "by_genre", k=100,
                        SearchConditionExpression="(#l = :l) AND :g = genre",
                        ExpressionAttributeNames={"#l": "lang"},
                        ExpressionAttributeValues={":l": {"S": "en"}, ":g": {"S": "drama"}}))
    want = expected(titles, QUERY, "EUCLIDEAN", 100,
                    lambda i: i["genre"]["S"] == "drama" and i.get("lang", {}).get("S") == "en")
    assert_ranking(got, want)
    assert 0 < len(want) < 13
    nothing = search(ddb, name, "by_genre", k=5, SearchConditionExpression="genre = :g",
                     ExpressionAttributeValues={":g": {"S": "western"}})
    assert nothing["SearchResults"] == []


def test_results_carry_the_projected_attributes_without_the_vector(ddb, catalogue):
    name, titles = catalogue
    top = search(ddb, name, "by_cosine", k=1)["SearchResults"][0]["Item"]
    assert top == {k: v for k, v in titles[top["title_id"]["S"]].items() if k != "embedding"}
    top = search(ddb, name, "by_genre", k=1, SearchConditionExpression="genre = :g",
                 ExpressionAttributeValues={":g": {"S": "comedy"}})["SearchResults"][0]["Item"]
    item = titles[top["title_id"]["S"]]
    assert top == {k: item[k] for k in ("title_id", "genre", "lang", "name") if k in item}
    top = search(ddb, name, "by_dot", k=1)["SearchResults"][0]["Item"]
    assert set(top) == {"title_id"}  # KEYS_ONLY: the table key (the vector only on request)


def test_projection_expression_names_only_projected_attributes(ddb, catalogue):
    name, titles = catalogue
    results = search(ddb, name, "by_dot", k=3, ProjectionExpression="title_id, embedding, #n",
                     ExpressionAttributeNames={"#n": "name"})["SearchResults"]
    for result in results:
        item = titles[result["Item"]["title_id"]["S"]]
        # "name" is not projected into a KEYS_ONLY index; the vector is, at float32 precision.
        assert set(result["Item"]) == {"title_id", "embedding"}
        got = [float(v["N"]) for v in result["Item"]["embedding"]["L"]]
        assert np.array(got, dtype=np.float32).tolist() == f32(item["embedding"]["L"]).tolist()


def test_the_index_keeps_float32_precision(ddb):
    name = unique_name("precise")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "title_id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}],
                     VectorIndexes=[{**DOT, "Dimensions": 2}])
    ddb.put_item(TableName=name, Item={"title_id": {"S": "a"}, "embedding": vector_av(("0.123456789", "3"))})
    result = search(ddb, name, "by_dot", query=(1, 0), k=1, ProjectionExpression="embedding")["SearchResults"]
    assert result == [{"Item": {"embedding": {"L": [{"N": "0.12345679"}, {"N": "3"}]}},
                       "Score": float(np.float32(0.123456789))}]
    # the table keeps what was written
    stored = ddb.get_item(TableName=name, Key={"title_id": {"S": "a"}})["Item"]["embedding"]
    assert stored == vector_av(("0.123456789", "3"))


# ---------------------------------------------------------------- the write path


def test_every_write_keeps_the_index_in_step(ddb):
    name = unique_name("writes")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=DEFINITIONS[:2],
                     KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}],
                     VectorIndexes=[{**EUCLIDEAN, "Dimensions": 2, "SearchSchema": EUCLIDEAN["SearchSchema"][:1]}])

    def ids(genre="drama"):
        out = search(ddb, name, "by_genre", query=(0, 0), k=10, SearchConditionExpression="genre = :g",
                     ExpressionAttributeValues={":g": {"S": genre}})
        return [(r["Item"]["title_id"]["S"], r["Score"]) for r in out["SearchResults"]]

    def item(tid, x, genre="drama"):
        return {"title_id": {"S": tid}, "genre": {"S": genre}, "embedding": vector_av((x, 0))}

    ddb.put_item(TableName=name, Item=item("a", 3))
    ddb.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": item("b", 1)}},
                                              {"PutRequest": {"Item": item("c", 2)}}]})
    assert ids() == [("b", 1.0), ("c", 2.0), ("a", 3.0)]
    ddb.update_item(TableName=name, Key={"title_id": {"S": "a"}}, UpdateExpression="SET embedding = :v",
                    ExpressionAttributeValues={":v": vector_av((0.5, 0))})
    assert ids() == [("a", 0.5), ("b", 1.0), ("c", 2.0)]
    ddb.update_item(TableName=name, Key={"title_id": {"S": "b"}}, UpdateExpression="SET genre = :g",
                    ExpressionAttributeValues={":g": {"S": "comedy"}})
    assert ids() == [("a", 0.5), ("c", 2.0)] and ids("comedy") == [("b", 1.0)]
    ddb.update_item(TableName=name, Key={"title_id": {"S": "c"}}, UpdateExpression="REMOVE embedding")
    assert ids() == [("a", 0.5)]
    ddb.update_item(TableName=name, Key={"title_id": {"S": "a"}}, UpdateExpression="REMOVE genre")
    assert ids() == []  # no HASH value: the item leaves the index silently
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": name, "Item": item("d", 4)}},
        {"Delete": {"TableName": name, "Key": {"title_id": {"S": "b"}}}}])
    assert ids() == [("d", 4.0)] and ids("comedy") == []
    ddb.delete_item(TableName=name, Key={"title_id": {"S": "d"}})
    assert ids() == []
    ddb.put_item(TableName=name, Item={"title_id": {"S": "e"}, "genre": {"S": "drama"}})  # no vector: fine
    assert ids() == []
    index = ddb.describe_table(TableName=name)["Table"]["VectorIndexes"][0]
    assert (index["ItemCount"], index["IndexSizeBytes"]) == (0, 0)


def test_writes_of_an_invalid_vector_are_refused(ddb, catalogue):
    name, _ = catalogue
    good = {"title_id": {"S": "bad"}, "genre": {"S": "drama"}}
    cases = [
        ({"embedding": vector_av(range(DIMS - 1))},
         "One or more parameter values were invalid. Invalid size for parameter embedding, Expected: 8, Actual: 7 "
         "IndexName: by_cosine"),
        ({"embedding": {"S": "0.1 0.2"}},
         "One or more parameter values were invalid. Invalid type for parameter embedding, Expected: 32-bit "
         "floating point number list IndexName: by_cosine"),
        ({"embedding": {"L": [{"N": "1"}, {"S": "x"}, *({"N": "0"} for _ in range(DIMS - 2))]}},
         "One or more parameter values were invalid. Invalid type for parameter embedding[1], Expected: 32-bit "
         "floating point number, Actual: S. IndexName: by_cosine"),
        ({"embedding": vector_av(range(DIMS)), "genre": {"S": ""}},
         "One or more parameter values are not valid. A value specified for a secondary index key is not "
         "supported. The AttributeValue for a key attribute cannot contain an empty string value. "
         "IndexName: by_genre, IndexKey: genre"),
    ]
    for extra, message in cases:
        assert error_of(ddb.put_item, TableName=name, Item={**good, **extra}) == ("ValidationException", message)
    assert "Item" not in ddb.get_item(TableName=name, Key={"title_id": {"S": "bad"}})
    code, message = error_of(ddb.update_item, TableName=name, Key={"title_id": {"S": "t000"}},
                             UpdateExpression="SET embedding[0] = :s", ExpressionAttributeValues={":s": {"S": "x"}})
    assert (code, message) == ("ValidationException", cases[2][1].replace("[1]", "[0]"))


# ---------------------------------------------------------------- SearchVectors errors


def test_search_errors(ddb, catalogue):
    name, _ = catalogue
    cases = [
        (dict(k=101), "Provided TopK value '101' is out of valid range. The value must be between 1 and 100 "
                      "inclusive"),
        (dict(index="by_nothing"), "The table does not have the specified index: by_nothing"),
        (dict(query=QUERY[:3]), "Input search vector dimension 3 does not match vector index dimension 8"),
        (dict(index="by_genre"), "SearchConditionExpression must be provided when SearchSchema has a HASH key"),
        (dict(index="by_genre", SearchConditionExpression="lang = :l", ExpressionAttributeValues={":l": {"S": "en"}}),
         "SearchConditionExpression must be provided when SearchSchema has a HASH key"),
        (dict(index="by_genre", SearchConditionExpression="genre < :g", ExpressionAttributeValues={":g": {"S": "a"}}),
         "Invalid SearchConditionExpression: Invalid comparator used in SearchConditionExpression"),
        (dict(SearchConditionExpression="#y = :y", ExpressionAttributeNames={"#y": "year"},
              ExpressionAttributeValues={":y": {"N": "2000"}}),
         "SearchConditionExpression must not contain any attributes that is not in SearchSchema. "
         "Invalid attribute: year"),
        (dict(SearchConditionExpression="lang = :l", ExpressionAttributeValues={":l": {"S": "en"}, ":x": {"S": "x"}}),
         "Value provided in ExpressionAttributeValues unused in expressions: keys: {:x}"),
        (dict(ProjectionExpression="#x"),
         "Invalid ProjectionExpression: An expression attribute name used in the document path is not defined; "
         "attribute name: #x"),
    ]
    for extra, message in cases:
        args = dict(TableName=name, IndexName=extra.pop("index", "by_cosine"),
                    SearchVector=search_av(extra.pop("query", QUERY)), TopK=extra.pop("k", 3), **extra)
        assert error_of(ddb.search_vectors, **args) == ("ValidationException", message), extra
    bad_vector = [*search_av(QUERY[:-1]), {"S": "x"}]
    assert error_of(ddb.search_vectors, TableName=name, IndexName="by_cosine", SearchVector=bad_vector, TopK=1) == (
        "ValidationException", "Search vector contains invalid values. All values in the search vector must be a "
                               "32-bit floating-point number attribute")
    assert error_of(ddb.search_vectors, TableName=unique_name("nothing"), IndexName="by_cosine",
                    SearchVector=search_av(QUERY), TopK=1) == ("ResourceNotFoundException",
                                                               "Requested resource not found")
    assert len(search(ddb, name, "by_cosine", k=2)["SearchResults"]) == 2  # still serving


def test_consumed_capacity(ddb, catalogue):
    name, _ = catalogue
    total = search(ddb, name, "by_cosine", k=1, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    indexes = search(ddb, name, "by_cosine", k=1, ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert set(total) == {"VectorSearchRequestBytes"} and total == indexes and total["VectorSearchRequestBytes"] > 0
    one_genre = search(ddb, name, "by_genre", k=1, ReturnConsumedCapacity="TOTAL",
                       SearchConditionExpression="genre = :g",
                       ExpressionAttributeValues={":g": {"S": "drama"}})["ConsumedCapacity"]
    assert 0 < one_genre["VectorSearchRequestBytes"] < total["VectorSearchRequestBytes"]  # one partition read
    assert "ConsumedCapacity" not in search(ddb, name, "by_cosine", k=1, ReturnConsumedCapacity="NONE")


# ---------------------------------------------------------------- CreateTable and UpdateTable


def create_errors(ddb):
    base = dict(BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}],
                AttributeDefinitions=DEFINITIONS)
    yield dict(base, BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
               VectorIndexes=[COSINE]), INVALID + "Vector indexes are only supported for PAY_PER_REQUEST tables"
    yield dict(base, AttributeDefinitions=DEFINITIONS[:2], VectorIndexes=[COSINE]), \
        INVALID + "One element in SearchSchema is not defined in attribute definitions"
    yield dict(base, VectorIndexes=[COSINE, {**EUCLIDEAN, "Dimensions": 4097}]), \
        INVALID + "Number of dimensions must be between 1 and 4096 inclusive."
    yield dict(base, VectorIndexes=[COSINE, EUCLIDEAN, {**DOT, "Dimensions": 16}]), \
        INVALID + "Conflicting attribute definition for 'embedding'. All VectorIndexes on the same vector attribute " \
                  "must use the same dimensions."
    yield dict(base, AttributeDefinitions=[*DEFINITIONS, {"AttributeName": "embedding", "AttributeType": "B"}],
               VectorIndexes=[COSINE, EUCLIDEAN]), \
        INVALID + "Conflicting attribute definition for 'embedding'. An attribute cannot be defined in " \
                  "AttributeDefinitions when used as a VectorAttribute."
    yield dict(base, VectorIndexes=[COSINE, EUCLIDEAN, {**DOT, "IndexName": "by_cosine"}]), \
        INVALID + "Duplicate index name: by_cosine"
    yield dict(base, VectorIndexes=[COSINE, EUCLIDEAN, *({**DOT, "IndexName": f"dot{n}"} for n in range(4))]), \
        INVALID + "VectorIndex count exceeds the per-table limit of 5"
    yield dict(base, AttributeDefinitions=[*DEFINITIONS, {"AttributeName": "year", "AttributeType": "N"}],
               VectorIndexes=[COSINE, EUCLIDEAN]), \
        INVALID + "Some AttributeDefinitions are not used. AttributeDefinitions: [title_id, genre, lang, year], " \
                  "keys used: [genre, lang, title_id]"
    yield dict(base, VectorIndexes=[COSINE, {**DOT, "Projection": {"ProjectionType": "INCLUDE"}}]), \
        INVALID + "ProjectionType is INCLUDE, but NonKeyAttributes is not specified"


def test_create_table_errors(ddb):
    for request, message in create_errors(ddb):
        assert error_of(ddb.create_table, TableName=unique_name("refused"), **request) == (
            "ValidationException", message), request


def wait_active(ddb, table, index, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        described = {i["IndexName"]: i for i in ddb.describe_table(TableName=table)["Table"].get("VectorIndexes", ())}
        if index in described and described[index]["IndexStatus"] == "ACTIVE":
            return described[index]
        assert time.monotonic() < deadline, described
        time.sleep(0.2)


def wait_gone(ddb, table, index, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        table_desc = ddb.describe_table(TableName=table)["Table"]
        if index not in {i["IndexName"] for i in table_desc.get("VectorIndexes", ())}:
            return table_desc
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_update_table_adds_a_backfilled_index_and_deletes_it(ddb):
    name = unique_name("grow")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=DEFINITIONS[:1],
                     KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}])
    titles = make_titles(30, seed=5)
    for item in titles.values():
        ddb.put_item(TableName=name, Item=item)
    by_genre = EUCLIDEAN | {"SearchSchema": EUCLIDEAN["SearchSchema"][:1]}
    out = ddb.update_table(TableName=name, AttributeDefinitions=DEFINITIONS[1:2],
                           VectorIndexUpdates=[{"Create": by_genre}])["TableDescription"]
    created = out["VectorIndexes"][0]
    assert (created["IndexStatus"], created["Backfilling"]) == ("CREATING", True)
    assert [d["AttributeName"] for d in out["AttributeDefinitions"]] == ["genre", "title_id"]
    active = wait_active(ddb, name, "by_genre")
    assert "Backfilling" not in active and active["ItemCount"] == 28
    got = ranked(search(ddb, name, "by_genre", k=5, SearchConditionExpression="genre = :g",
                        ExpressionAttributeValues={":g": {"S": "drama"}}))
    assert_ranking(got, expected(titles, QUERY, "EUCLIDEAN", 5, lambda i: i["genre"]["S"] == "drama"))

    assert error_of(ddb.update_table, TableName=name, AttributeDefinitions=DEFINITIONS[1:2],
                    VectorIndexUpdates=[{"Create": by_genre}]) == (
        "ValidationException", "Attempting to create an index which already exists")
    assert error_of(ddb.update_table, TableName=name, BillingMode="PROVISIONED",
                    ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}) == (
        "ValidationException", INVALID + "Vector indexes are only supported for PAY_PER_REQUEST tables")

    out = ddb.update_table(TableName=name, VectorIndexUpdates=[{"Delete": {"IndexName": "by_genre"}}])
    assert out["TableDescription"]["VectorIndexes"][0]["IndexStatus"] == "DELETING"
    assert error_of(ddb.search_vectors, TableName=name, IndexName="by_genre", SearchVector=search_av(QUERY), TopK=1,
                    SearchConditionExpression="genre = :g", ExpressionAttributeValues={":g": {"S": "drama"}}) == (
        "ValidationException", "The table does not have the specified index: by_genre")
    gone = wait_gone(ddb, name, "by_genre")
    assert "VectorIndexes" not in gone
    assert [d["AttributeName"] for d in gone["AttributeDefinitions"]] == ["title_id"]


def test_update_table_errors(ddb, catalogue):
    name, _ = catalogue

    def refused(*updates):
        return error_of(ddb.update_table, TableName=name, VectorIndexUpdates=list(updates))

    assert refused({"Create": {**DOT, "IndexName": "by_dot2"}}, {"Delete": {"IndexName": "by_dot"}}) == (
        "LimitExceededException",
        "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table")
    assert refused({"Delete": {"IndexName": "by_none"}}) == (
        "ResourceNotFoundException", f"Requested resource not found: Index by_none for table {name}")
    assert refused({"Create": {**DOT, "IndexName": "by_cosine"}}) == (
        "ValidationException", "Attempting to create an index which already exists")
    assert refused({"Create": EUCLIDEAN | {"IndexName": "x_2"}}) == (
        "ValidationException", INVALID + "One element in SearchSchema is not defined in attribute definitions")
    assert error_of(ddb.update_table, TableName=name, VectorIndexUpdates=[
        {"Create": {**DOT, "IndexName": "key_vec", "VectorAttribute": {"AttributeName": "title_id"}}}]) == (
        "ValidationException",
        INVALID + "Attributes cannot be redefined. Please check that your attribute has the same type as previously "
                  "defined. Existing schema: Schema:[SchemaElement: key{title_id:S:HASH}] New schema: "
                  "VectorIndexSchema:[VectorAttribute: key{title_id:L:8}]")
    assert error_of(ddb.update_table, TableName=name, VectorIndexUpdates=[
        {"Create": {**DOT, "IndexName": "by_dot2"}}], StreamSpecification={"StreamEnabled": False}) == (
        "ValidationException", INVALID + "You cannot create or delete index while changing stream status")
    # two more fit (five in all); a sixth is refused
    for n in range(2):
        ddb.update_table(TableName=name, VectorIndexUpdates=[{"Create": {**DOT, "IndexName": f"more{n}"}}])
        wait_active(ddb, name, f"more{n}")
    assert refused({"Create": {**DOT, "IndexName": "more2"}}) == (
        "LimitExceededException", "Subscriber limit exceeded: Number of vector secondary indexes exceeds per-table "
                                  "limit of 5")
    for n in range(2):
        ddb.update_table(TableName=name, VectorIndexUpdates=[{"Delete": {"IndexName": f"more{n}"}}])
        wait_gone(ddb, name, f"more{n}")
    assert len(search(ddb, name, "by_dot", k=2)["SearchResults"]) == 2


@pytest.fixture(scope="module")
def ttl_server(tmp_path_factory):
    """A server of its own whose TTL sweeper runs every second."""
    server = ShoalProcess(tmp_path_factory.mktemp("vectors-ttl"),
                          env={"SHOAL_TTL_SWEEP_INTERVAL_S": "1", "SHOAL_TTL_MODIFY_INTERVAL_S": "0"}).start()
    yield server
    server.stop()


def test_ttl_deletes_leave_the_index(ttl_server):
    ddb = make_client(ttl_server.url)
    name = unique_name("expiring")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=DEFINITIONS[:1],
                     KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}],
                     VectorIndexes=[{**DOT, "Dimensions": 2}])
    now = int(time.time())
    for tid, x, expires in (("kept", 1, None), ("expired", 2, now - 60), ("later", 3, now + 3600)):
        item = {"title_id": {"S": tid}, "embedding": vector_av((x, 0))}
        if expires is not None:
            item["expires_at"] = {"N": str(expires)}
        ddb.put_item(TableName=name, Item=item)
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    deadline = time.monotonic() + 20
    while "Item" in ddb.get_item(TableName=name, Key={"title_id": {"S": "expired"}}, ConsistentRead=True):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert ranked(search(ddb, name, "by_dot", query=(1, 0), k=10)) == [("later", 3.0), ("kept", 1.0)]
    assert ddb.describe_table(TableName=name)["Table"]["VectorIndexes"][0]["ItemCount"] == 2


def test_partiql_does_not_read_a_vector_index(ddb, catalogue):
    name, _ = catalogue
    assert error_of(ddb.execute_statement, Statement=f'SELECT * FROM "{name}"."by_cosine"') == (
        "ValidationException", "Scan operation not supported on this index type")
    assert ddb.execute_statement(Statement=f'SELECT title_id FROM "{name}"', Limit=1)["Items"]  # still serving


def test_backups_and_restores_keep_the_vector_indexes(ddb, catalogue):
    name, titles = catalogue
    backup = ddb.create_backup(TableName=name, BackupName="with-vectors")["BackupDetails"]["BackupArn"]
    features = ddb.describe_backup(BackupArn=backup)["BackupDescription"]["SourceTableFeatureDetails"]
    assert [(i["IndexName"], i["DistanceFunction"], i["Dimensions"]) for i in features["VectorIndexes"]] == [
        ("by_cosine", "COSINE", DIMS), ("by_genre", "EUCLIDEAN", DIMS), ("by_dot", "DOT_PRODUCT", DIMS)]
    assert features["VectorIndexes"][1]["SearchSchema"] == EUCLIDEAN["SearchSchema"]
    restored, bare = unique_name("restored"), unique_name("bare")
    for table, extra in ((restored, {}), (bare, {"VectorIndexOverride": []})):  # one restore of a backup at a time
        ddb.restore_table_from_backup(TargetTableName=table, BackupArn=backup, **extra)
        deadline = time.monotonic() + 60
        while ddb.describe_table(TableName=table)["Table"]["TableStatus"] != "ACTIVE":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    described = ddb.describe_table(TableName=restored)["Table"]
    assert [i["IndexName"] for i in described["VectorIndexes"]] == ["by_cosine", "by_genre", "by_dot"]
    assert {d["AttributeName"] for d in described["AttributeDefinitions"]} == {"title_id", "genre", "lang"}
    got = ddb.search_vectors(TableName=restored, IndexName="by_dot", SearchVector=search_av(QUERY), TopK=5)
    assert_ranking(ranked(got), expected(titles, QUERY, "DOT_PRODUCT", 5))
    assert "VectorIndexes" not in ddb.describe_table(TableName=bare)["Table"]
    assert error_of(ddb.search_vectors, TableName=bare, IndexName="by_dot", SearchVector=search_av(QUERY), TopK=5) == (
        "ValidationException", "The table does not have the specified index: by_dot")


# ---------------------------------------------------------------- on an MRSC global table
#
# The Developer Guide's "Using vector indexes with global tables": vector
# indexes work with every global table configuration, multi-Region strong
# consistency included; a replica gets the index definition, and the items
# written in any region are indexed in every region, asynchronously even on
# an MRSC table. (Tests of an MREC global table: tests/server/test_global_tables.py.)


@pytest.fixture(scope="module")
def strong_regions(tmp_path_factory):
    from tests.server.test_mrsc import Regions

    trio = Regions(str(tmp_path_factory.mktemp("vectors-mrsc")))
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def test_an_mrsc_global_table_has_its_vector_index_in_every_region(strong_regions):
    from tests.server.test_mrsc import _create, _make_strong, _wait_active

    name = "vectors_mrsc"
    first = strong_regions.client(0)
    _create(first, name, VectorIndexes=[{
        "IndexName": "by_embedding", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": 2,
        "DistanceFunction": "EUCLIDEAN", "Projection": {"ProjectionType": "ALL"}}])
    _make_strong(first, name)
    clients = [strong_regions.client(i) for i in range(3)]
    for client in clients:
        _wait_active(client, name)
    for i, client in enumerate(clients):  # one item written in each region
        client.put_item(TableName=name, Item={"pk": {"S": f"from-{i}"}, "embedding": vector_av([i * 10, 0])})
    for client in clients:
        index = client.describe_table(TableName=name)["Table"]["VectorIndexes"]
        assert [(v["IndexName"], v["Dimensions"], v["DistanceFunction"], v["IndexStatus"]) for v in index] == [
            ("by_embedding", 2, "EUCLIDEAN", "ACTIVE")]
        deadline = time.monotonic() + 30
        for i in range(3):
            while True:
                found = client.search_vectors(TableName=name, IndexName="by_embedding", TopK=1,
                                              SearchVector=search_av([i * 10 + 1, 0]))["SearchResults"]
                if found and found[0]["Item"]["pk"] == {"S": f"from-{i}"}:
                    break
                assert time.monotonic() < deadline, found
                time.sleep(0.1)
