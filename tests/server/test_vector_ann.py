"""SearchVectors through boto3 against a server whose vector indexes get an
HNSW graph from the first row (SHOAL_VECTOR_ANN_MIN_ROWS=1), so that the
approximate path answers a small table: rankings, exact scores, updated and
deleted items, filters and bad input as the exact search gives them (on a
few hundred rows the graph finds every row)."""

from __future__ import annotations

import random
import time

import pytest

from tests.conftest import make_client, unique_name
from tests.server.test_vectors import assert_ranking, error_of, expected, ranked, search_av, vector_av
from tests.shoal_process import ShoalProcess

DIMS = 16
INDEX = {"IndexName": "by_cosine", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": DIMS,
         "DistanceFunction": "COSINE", "Projection": {"ProjectionType": "ALL"},
         "SearchSchema": [{"AttributeName": "lang", "SearchSchemaElementType": "INLINE_FILTER"}]}


@pytest.fixture(scope="module")
def ddb(tmp_path_factory):
    server = ShoalProcess(tmp_path_factory.mktemp("vectors-ann"), env={"SHOAL_VECTOR_ANN_MIN_ROWS": "1"}).start()
    yield make_client(server.url)
    server.stop()


def titles(count: int, seed: int) -> dict:
    rng = random.Random(seed)
    out = {}
    for n in range(count):
        item = {"title_id": {"S": f"t{n:04d}"}, "lang": {"S": "fr" if n % 10 == 0 else "en"},
                "embedding": vector_av(round(rng.uniform(-1, 1), 4) for _ in range(DIMS))}
        out[item["title_id"]["S"]] = item
    return out


def search(ddb, table, query, k=10, lang=None):
    extra = {}
    if lang is not None:
        extra = {"SearchConditionExpression": "lang = :l", "ExpressionAttributeValues": {":l": {"S": lang}}}
    return ranked(ddb.search_vectors(TableName=table, IndexName="by_cosine", SearchVector=search_av(query), TopK=k,
                                     **extra))


def test_the_approximate_path_answers_as_the_exact_one(ddb):
    name = unique_name("ann")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("title_id", "lang")],
                     KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}], VectorIndexes=[INDEX])
    catalogue = titles(300, seed=3)
    for item in catalogue.values():
        ddb.put_item(TableName=name, Item=item)
    rng = random.Random(4)
    queries = [[round(rng.uniform(-1, 1), 3) for _ in range(DIMS)] for _ in range(5)]
    search(ddb, name, queries[0])  # builds the matrix and queues its graph
    time.sleep(1.0)  # a graph of 300 rows is built in milliseconds; the results are the same either way
    for q in queries:
        assert_ranking(search(ddb, name, q), expected(catalogue, q, "COSINE", 10))
        assert_ranking(search(ddb, name, q, k=7, lang="fr"),
                       expected(catalogue, q, "COSINE", 7, lambda i: i["lang"]["S"] == "fr"))

    q = queries[1]
    best = search(ddb, name, q, k=3)
    ddb.delete_item(TableName=name, Key={"title_id": {"S": best[0][0]}})
    del catalogue[best[0][0]]
    moved = catalogue[best[1][0]] | {"embedding": vector_av([-x for x in q])}
    ddb.put_item(TableName=name, Item=moved)
    catalogue[best[1][0]] = moved
    added = {"title_id": {"S": "new"}, "lang": {"S": "nl"}, "embedding": vector_av([2 * x for x in q])}
    ddb.put_item(TableName=name, Item=added)
    catalogue["new"] = added
    got = search(ddb, name, q)
    assert got[0][0] == "new" and got[0][1] == pytest.approx(0.0, abs=1e-6)
    assert best[0][0] not in dict(got) and best[1][0] not in dict(got)
    assert_ranking(got, expected(catalogue, q, "COSINE", 10))
    assert search(ddb, name, [-x for x in q], k=1)[0][0] == best[1][0]  # the updated vector
    assert search(ddb, name, q, k=10, lang="nl") == got[:1]  # one entry passes: one result
    assert search(ddb, name, q, k=10, lang="de") == []


def test_bad_input_is_refused_and_the_server_still_serves(ddb):
    name = unique_name("ann_bad")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("title_id", "lang")],
                     KeySchema=[{"AttributeName": "title_id", "KeyType": "HASH"}], VectorIndexes=[INDEX])
    for item in titles(50, seed=8).values():
        ddb.put_item(TableName=name, Item=item)
    query = [0.5] * DIMS
    search(ddb, name, query)
    time.sleep(0.5)
    cases = [
        (dict(SearchVector=search_av(query[:3]), TopK=1),
         "Input search vector dimension 3 does not match vector index dimension 16"),
        (dict(SearchVector=search_av(query), TopK=101),
         "Provided TopK value '101' is out of valid range. The value must be between 1 and 100 inclusive"),
        (dict(SearchVector=[*search_av(query[:-1]), {"S": "x"}], TopK=1),
         "Search vector contains invalid values. All values in the search vector must be a 32-bit floating-point "
         "number attribute"),
        (dict(SearchVector=search_av(query), TopK=1, SearchConditionExpression="lang < :l",
              ExpressionAttributeValues={":l": {"S": "en"}}),
         "Invalid SearchConditionExpression: Invalid comparator used in SearchConditionExpression"),
    ]
    for extra, message in cases:
        assert error_of(ddb.search_vectors, TableName=name, IndexName="by_cosine", **extra) == (
            "ValidationException", message)
    assert error_of(ddb.put_item, TableName=name, Item={"title_id": {"S": "x"}, "embedding": vector_av([1, 2])}) == (
        "ValidationException", "One or more parameter values were invalid. Invalid size for parameter embedding, "
                               "Expected: 16, Actual: 2 IndexName: by_cosine")
    assert len(search(ddb, name, query, k=5)) == 5  # still serving
