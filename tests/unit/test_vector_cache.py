"""The in-memory vectors of a vector index (shoal.api.vector_cache) give
exactly what a full scan gives (shoal.api.vectors' own ``_nearest``): the
same entries, scores, order of equal scores and bytes read, through random
puts, updates, deletes and searches, whether a search builds its matrix,
reuses it with the changes since, or rebuilds it."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.api import DEFAULT_ACCOUNT, Context, items, tables, vector_cache, vectors
from shoal.api.catalog import Catalog
from shoal.storage.memory_engine import MemoryEngine

DIMS = 4
INDEXES = [
    {"IndexName": "by_cosine", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": DIMS,
     "DistanceFunction": "COSINE", "Projection": {"ProjectionType": "ALL"},
     "SearchSchema": [{"AttributeName": "lang", "SearchSchemaElementType": "INLINE_FILTER"}]},
    {"IndexName": "by_genre", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": DIMS,
     "DistanceFunction": "EUCLIDEAN", "Projection": {"ProjectionType": "KEYS_ONLY"},
     "SearchSchema": [{"AttributeName": "genre", "SearchSchemaElementType": "HASH"},
                      {"AttributeName": "lang", "SearchSchemaElementType": "INLINE_FILTER"}]},
    {"IndexName": "by_dot", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": DIMS,
     "DistanceFunction": "DOT_PRODUCT", "Projection": {"ProjectionType": "KEYS_ONLY"}},
]
# Few distinct components: equal vectors and equal scores are common (ties in key order).
component = st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0])
vector = st.lists(component, min_size=DIMS, max_size=DIMS)
put = st.tuples(st.just("put"), st.integers(0, 25), vector, st.sampled_from(["drama", "comedy"]),
                st.sampled_from(["en", "fr"]))
delete = st.tuples(st.just("delete"), st.integers(0, 25))
search = st.tuples(st.just("search"), st.integers(0, 2), vector, st.integers(1, 8),
                   st.sampled_from([None, "en", "fr"]), st.sampled_from(["drama", "comedy"]))


@pytest.fixture(autouse=True)
def small_rebuilds(monkeypatch):
    monkeypatch.setattr(vector_cache, "REBUILD_MIN", 3)
    vector_cache.clear()
    yield
    vector_cache.clear()


def wire(values) -> dict:
    return {"L": [{"N": repr(v)} for v in values]}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(put, put, delete, search, search), max_size=60))
def test_the_cache_answers_as_the_scan(steps):
    vector_cache.clear()
    engine = MemoryEngine()
    try:
        ctx = Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: 1_700_000_000.0)
        tables.create_table(ctx, {
            "TableName": "titles", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in ("title_id", "genre", "lang")],
            "KeySchema": [{"AttributeName": "title_id", "KeyType": "HASH"}], "VectorIndexes": INDEXES})
        searched = 0
        for step in steps:
            if step[0] == "put":
                _, n, values, genre, lang = step
                items.put_item(ctx, {"TableName": "titles", "Item": {
                    "title_id": {"S": f"t{n:02d}"}, "embedding": wire(values), "genre": {"S": genre},
                    "lang": {"S": lang}}})
            elif step[0] == "delete":
                items.delete_item(ctx, {"TableName": "titles", "Key": {"title_id": {"S": f"t{step[1]:02d}"}}})
            else:
                _, which, values, top_k, lang, genre = step
                with engine.read() as txn:
                    table = ctx.catalog.require(txn, ctx.region, "titles")
                    index = table.vector_map[INDEXES[which]["IndexName"]]
                    spec = index.vector
                    query = array("f", values)
                    hash_value = {"S": genre} if spec.hash_type is not None else None
                    filters = [("lang", {vectors._encoded({"S": lang})})] if lang and which < 2 else []
                    start, stop = vectors.partition_range(table, index, hash_value)
                    want = vectors._nearest(txn, start, stop, query, spec, filters, top_k)
                    got = vector_cache.nearest(txn, table, start, stop, query, spec, filters, top_k,
                                               vectors._scorer(spec.distance, query), vectors._passes)
                    assert got is not None
                    assert got == want
                    searched += 1
    finally:
        engine.close()
