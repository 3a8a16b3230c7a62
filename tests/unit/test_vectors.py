"""Vector indexes (shoal.api.vectors) over an in-memory engine, without HTTP:
their backfill step by step, the search condition's rules and the scores."""

from __future__ import annotations

import struct

import pytest

from shoal.api import DEFAULT_ACCOUNT, Context
from shoal.api import indexes as ix
from shoal.api import items, tables, vectors
from shoal.api.catalog import Catalog
from shoal.errors import LimitExceededException, ResourceInUseException, ShoalError, ValidationException

INVALID = "One or more parameter values were invalid: "


@pytest.fixture
def ctx(engine):
    return Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: 1_700_000_000.0)


def index_spec(name="by_vec", dims=2, distance="EUCLIDEAN", schema=(), projection="ALL"):
    spec = {"IndexName": name, "VectorAttribute": {"AttributeName": "vec"}, "Dimensions": dims,
            "DistanceFunction": distance, "Projection": {"ProjectionType": projection}}
    if schema:
        spec["SearchSchema"] = [{"AttributeName": n, "SearchSchemaElementType": k} for n, k in schema]
    return spec


def make_table(ctx, name="titles", defs=(), **extra):
    body = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in (("id", "S"), *defs)]}
    body.update(extra)
    return tables.create_table(ctx, body)["TableDescription"]


def put(ctx, table, key, vec=None, **strings):
    item = {"id": {"S": key}, **{k: {"S": v} for k, v in strings.items()}}
    if vec is not None:
        item["vec"] = {"L": [{"N": str(x)} for x in vec]}
    items.put_item(ctx, {"TableName": table, "Item": item})


def search(ctx, table="titles", index="by_vec", query=(0, 0), k=10, **extra) -> list:
    out = vectors.search_vectors(ctx, {"TableName": table, "IndexName": index, "TopK": k,
                                       "SearchVector": [{"N": str(x)} for x in query], **extra})
    return [(r["Item"]["id"]["S"], r["Score"]) for r in out["SearchResults"]]


def error(fn, *args, kind=ValidationException, **kwargs) -> str:
    with pytest.raises(ShoalError) as info:
        fn(*args, **kwargs)
    assert type(info.value) is kind, info.value.message
    return info.value.message


def vector_status(ctx, table="titles", name="by_vec") -> tuple:
    desc = tables.describe_table(ctx, {"TableName": table})["Table"]
    spec = {s["IndexName"]: s for s in desc.get("VectorIndexes", ())}[name]
    return spec["IndexStatus"], spec.get("Backfilling"), spec["ItemCount"]


def test_backfill_in_chunks_with_writes_in_between(ctx, engine):
    make_table(ctx)
    for n in range(5):
        put(ctx, "titles", f"t{n}", (n, 0))
    tables.update_table(ctx, {"TableName": "titles", "VectorIndexUpdates": [{"Create": index_spec()}]})
    assert vector_status(ctx) == ("CREATING", True, 0)
    job = ix.IndexJobs(engine, chunk=2)
    assert job() is True  # two items indexed
    assert vector_status(ctx) == ("CREATING", True, 2)
    assert error(search, ctx) == "Cannot search backfilling vector index: by_vec"
    put(ctx, "titles", "novec")  # no vector: in neither the writes' nor the job's entries
    put(ctx, "titles", "t4", (0.5, 0))  # not yet read by the job: indexed by the write
    put(ctx, "titles", "t0", (9, 0))  # already read: the write moves its entry
    while job():
        pass
    assert vector_status(ctx) == ("ACTIVE", None, 5)
    assert search(ctx) == [("t4", 0.5), ("t1", 1.0), ("t2", 2.0), ("t3", 3.0), ("t0", 9.0)]


def test_purge_keeps_definitions_other_indexes_use(ctx, engine):
    make_table(ctx, defs=(("genre", "S"),), VectorIndexes=[
        index_spec("a_vec", schema=(("genre", "HASH"),)), index_spec("b_vec", schema=(("genre", "HASH"),))])
    put(ctx, "titles", "x", (1, 1), genre="drama")
    tables.update_table(ctx, {"TableName": "titles", "VectorIndexUpdates": [{"Delete": {"IndexName": "a_vec"}}]})
    assert vector_status(ctx, name="a_vec") == ("DELETING", None, 1)
    job = ix.IndexJobs(engine, chunk=1)
    while job():
        pass
    desc = tables.describe_table(ctx, {"TableName": "titles"})["Table"]
    assert [s["IndexName"] for s in desc["VectorIndexes"]] == ["b_vec"]
    assert desc["AttributeDefinitions"] == [{"AttributeName": "genre", "AttributeType": "S"},
                                            {"AttributeName": "id", "AttributeType": "S"}]
    with engine.read() as txn:
        table = ctx.catalog.get(txn, "us-east-1", "titles")
        assert list(txn.scan("indexes", table.prefix, None)) and all(
            key.startswith(table.vector_map["b_vec"].prefix) for key, _ in txn.scan("indexes", table.prefix, None))


def test_one_online_index_at_a_time(ctx):
    make_table(ctx, defs=(("genre", "S"),), GlobalSecondaryIndexes=[
        {"IndexName": "by_genre", "KeySchema": [{"AttributeName": "genre", "KeyType": "HASH"}],
         "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    put(ctx, "titles", "x", (1, 1), genre="drama")
    both = {"TableName": "titles", "VectorIndexUpdates": [{"Create": index_spec()}],
            "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "by_genre"}}]}
    message = "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table"
    assert error(tables.update_table, ctx, both, kind=LimitExceededException) == message
    tables.update_table(ctx, {"TableName": "titles", "VectorIndexUpdates": [{"Create": index_spec()}]})
    gsi = {"TableName": "titles", "AttributeDefinitions": [{"AttributeName": "genre", "AttributeType": "S"}],
           "GlobalSecondaryIndexUpdates": [{"Create": {
               "IndexName": "by_genre2", "KeySchema": [{"AttributeName": "genre", "KeyType": "HASH"}],
               "Projection": {"ProjectionType": "KEYS_ONLY"}}}]}
    assert error(tables.update_table, ctx, gsi, kind=LimitExceededException) == message  # the vector index builds
    second = {"TableName": "titles", "VectorIndexUpdates": [{"Create": index_spec("by_vec2")}]}
    assert error(tables.update_table, ctx, second, kind=LimitExceededException) == message
    tables.update_table(ctx, {"TableName": "titles", "VectorIndexUpdates": [{"Delete": {"IndexName": "by_vec"}}]})
    assert vector_status(ctx) == ("DELETING", None, 0)  # an index being built may be deleted
    again = {"TableName": "titles", "VectorIndexUpdates": [{"Delete": {"IndexName": "by_vec"}}]}
    assert error(tables.update_table, ctx, again, kind=ResourceInUseException) == (
        "Attempt to change a resource which is still in use: Index is being deleted.")


def test_search_condition_rules(ctx):
    make_table(ctx, defs=(("genre", "S"), ("year", "N")), VectorIndexes=[
        index_spec(schema=(("genre", "HASH"), ("year", "INLINE_FILTER")))])
    put(ctx, "titles", "a", (1, 0), genre="drama")
    item = {"id": {"S": "b"}, "genre": {"S": "drama"}, "year": {"N": "2001"}, "vec": {"L": [{"N": "2"}, {"N": "0"}]}}
    items.put_item(ctx, {"TableName": "titles", "Item": item})

    def where(text, **values):
        return search(ctx, SearchConditionExpression=text,
                      ExpressionAttributeNames={"#y": "year"},
                      ExpressionAttributeValues={f":{k}": v for k, v in values.items()})

    drama, y2001 = {"S": "drama"}, {"N": "2001.0"}
    assert where("genre = :g AND #y = :y", g=drama, y=y2001) == [("b", 2.0)]  # numbers compare as numbers
    assert where("genre = :g AND (#y = :y)", g=drama, y={"N": "1999"}) == []
    assert where("genre = :g AND genre = :h AND #y = :y", g=drama, h={"S": "comedy"}, y=y2001) == []
    assert error(where, "genre = :g AND #y = :y", g={"N": "1"}, y=y2001) == (
        INVALID + "Condition parameter type does not match schema type")
    for text in ("genre = :g OR #y = :y", "genre = :g AND NOT #y = :y", "genre = :g AND #y IN (:y)",
                 "genre = :g AND attribute_exists(#y) AND #y = :y"):
        assert error(where, text, g=drama, y=y2001) == (
            "Invalid SearchConditionExpression: Invalid comparator used in SearchConditionExpression"), text


def test_vectors_the_write_path_refuses(ctx):
    make_table(ctx, defs=(("genre", "S"),), VectorIndexes=[index_spec(schema=(("genre", "INLINE_FILTER"),))])
    item = {"id": {"S": "a"}, "vec": {"L": [{"N": "1"}, {"N": "1E+39"}]}}
    assert error(items.put_item, ctx, {"TableName": "titles", "Item": item}) == (
        "One or more parameter values were invalid. Invalid type for parameter vec[1], Expected: 32-bit floating "
        "point number, Actual: N. IndexName: by_vec")
    item = {"id": {"S": "a"}, "vec": {"L": [{"N": "1"}, {"N": "1E-50"}]}, "genre": {"N": "3"}}
    assert error(items.put_item, ctx, {"TableName": "titles", "Item": item}) == (
        INVALID + "Type mismatch for Index Key genre Expected: S Actual: N IndexName: by_vec")
    item["genre"] = {"S": "x"}  # 1E-50 is float32's 0
    items.put_item(ctx, {"TableName": "titles", "Item": item})
    assert search(ctx, query=(0, 0)) == [("a", 1.0)]


def test_create_rules(ctx):
    body = {"TableName": "other", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in ("id", "genre", "lang")]}
    two_hashes = index_spec(schema=(("genre", "HASH"), ("lang", "HASH")))
    assert error(tables.create_table, ctx, {**body, "VectorIndexes": [two_hashes]}).startswith(
        INVALID + "A SearchSchema can have at most one HASH element")
    without = {**body, "AttributeDefinitions": body["AttributeDefinitions"][:1]}
    assert error(tables.create_table, ctx, {**without, "AttributeDefinitions": body["AttributeDefinitions"][:2],
                                            "VectorIndexes": [index_spec()]}) == (
        INVALID + "Some AttributeDefinitions are not used. AttributeDefinitions: [id, genre], keys used: [id]")
    provisioned = {**without, "TableName": "plain", "BillingMode": "PROVISIONED", "VectorIndexes": [],
                   "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}
    assert "VectorIndexes" not in tables.create_table(ctx, provisioned)["TableDescription"]  # an empty list: none
    assert error(tables.create_table, ctx, {**provisioned, "TableName": "plain2", "VectorIndexes": [index_spec()]}) \
        == INVALID + "Vector indexes are only supported for PAY_PER_REQUEST tables"
    wide = index_spec(projection="INCLUDE")
    wide["Projection"]["NonKeyAttributes"] = [f"a{n}" for n in range(20)]
    specs = [dict(wide, IndexName=f"v{n}") for n in range(5)]
    assert error(tables.create_table, ctx, {**without, "VectorIndexes": specs}) == (
        INVALID + "Number of projected attributes in all indexes exceeds limit of 100")  # 5 x (20 + the vector)


def test_scores():
    query = vectors._search_vector([{"N": "3"}, {"N": "4"}], 2)
    opposite = vectors._search_vector([{"N": "-6"}, {"N": "-8"}], 2)
    zero = vectors._search_vector([{"N": "0"}, {"N": "0"}], 2)
    assert vectors._scorer("COSINE", query)(opposite) == 2.0
    assert vectors._scorer("COSINE", query)(zero) == 1.0  # no direction
    assert vectors._scorer("EUCLIDEAN", query)(opposite) == 15.0
    assert vectors._scorer("DOT_PRODUCT", query)(opposite) == -50.0
    tenth = vectors._search_vector([{"N": "0.1"}, {"N": "0.1"}], 2)
    f32_tenth = f32(0.1)
    assert f32_tenth != 0.1
    assert vectors._scorer("DOT_PRODUCT", tenth)(tenth) == f32(2 * f32_tenth * f32_tenth)
    assert vectors._f32_text(f32_tenth) == "0.1"
    assert vectors._f32_text(f32(16777217)) == "16777216"


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]
