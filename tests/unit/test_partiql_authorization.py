"""PartiQL statements are authorized as what they run (issue 13).

The action and resource a statement is checked for come from the statement as
``shoal.api.partiql`` parses and binds it.  The property at the end runs
generated statements of every form the parser accepts through the real
executor over a real engine and checks that the table the executor read or
changed, and how, is the one authorization saw.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.api import DEFAULT_ACCOUNT, Context, tables
from shoal.api.catalog import Catalog
from shoal.api.partiql import batch_execute_statement, execute_statement, execute_transaction
from shoal.api.query import scan
from shoal.auth.actions import required
from shoal.errors import ShoalError, ValidationException
from shoal.storage.lmdb_engine import LmdbEngine

REGION = "us-east-1"
PREFIX = f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/"
KEYS = {("events", None): ("user_id", "ts"), ("events", "by_kind"): ("kind", "ts"), ("odd.name-1", None): ("pk",)}


def keys(table, index):
    return KEYS.get((table, index))


def checks(operation, body):
    return [(c.action, c.resource, c.context) for c in required(operation, body, REGION, DEFAULT_ACCOUNT, keys)]


def one(statement, *params, operation="ExecuteStatement"):
    body = {"Statement": statement}
    if params:
        body["Parameters"] = list(params)
    [check] = checks(operation, body)
    return check


S = lambda text: {"S": text}  # noqa: E731
N = lambda text: {"N": text}  # noqa: E731


# ---------------------------------------------------------------- each statement form


def test_from_first_update_is_an_update_of_its_table():
    """The form of issue 13: it used to be checked as PartiQLSelect on '*'."""
    action, resource, ctx = one("FROM events WHERE user_id = 'a' AND ts = 1 SET x = 2")
    assert (action, resource) == ("dynamodb:PartiQLUpdate", PREFIX + "events")
    assert ctx["dynamodb:LeadingKeys"] == ["a"]
    assert ctx["dynamodb:Attributes"] == ["user_id", "ts", "x"]
    action, resource, ctx = one('FROM "events" WHERE user_id = ? AND ts = ? REMOVE y.z, w RETURNING ALL NEW *',
                                S("b"), N("2"))
    assert (action, resource) == ("dynamodb:PartiQLUpdate", PREFIX + "events")
    assert ctx["dynamodb:Attributes"] == ["user_id", "ts", "y", "w"]
    assert ctx["dynamodb:ReturnValues"] == "ALL_NEW"
    assert ctx["dynamodb:LeadingKeys"] == ["b"]


def test_update_insert_delete():
    action, resource, ctx = one("UPDATE events SET a = 1, b.c = ? REMOVE d WHERE ts = 5 AND user_id = ?", S("v"), S("u"))
    assert (action, resource) == ("dynamodb:PartiQLUpdate", PREFIX + "events")
    assert ctx["dynamodb:Attributes"] == ["ts", "user_id", "a", "b", "d"]
    assert ctx["dynamodb:LeadingKeys"] == ["u"]
    action, resource, ctx = one("INSERT INTO \"odd.name-1\" VALUE {'pk': ?, 'n': 3, 'm': {'x': 1}}", S("k"))
    assert (action, resource) == ("dynamodb:PartiQLInsert", PREFIX + "odd.name-1")
    assert ctx["dynamodb:Attributes"] == ["pk", "n", "m"]
    assert ctx["dynamodb:LeadingKeys"] == ["k"]
    action, resource, ctx = one("DELETE FROM events WHERE user_id = 'u' AND ts = 1 AND x > 2 RETURNING ALL OLD *")
    assert (action, resource) == ("dynamodb:PartiQLDelete", PREFIX + "events")
    assert ctx["dynamodb:Attributes"] == ["user_id", "ts"]
    assert ctx["dynamodb:ReturnValues"] == "ALL_OLD"
    assert ctx["dynamodb:LeadingKeys"] == ["u"]


def test_select_keys_full_table_scan_and_index():
    action, resource, ctx = one("SELECT a, b.c FROM events WHERE user_id = ? AND ts > 3", S("u"))
    assert (action, resource) == ("dynamodb:PartiQLSelect", PREFIX + "events")
    assert ctx == {"dynamodb:EnclosingOperation": "ExecuteStatement", "dynamodb:FullTableScan": False,
                   "dynamodb:Select": "SPECIFIC_ATTRIBUTES", "dynamodb:Attributes": ["a", "b"],
                   "dynamodb:LeadingKeys": ["u"]}
    _, _, ctx = one("SELECT * FROM events WHERE ts > 3 OR user_id = 'u'")
    assert ctx["dynamodb:FullTableScan"] is True and "dynamodb:LeadingKeys" not in ctx
    assert ctx["dynamodb:Select"] == "ALL_ATTRIBUTES" and "dynamodb:Attributes" not in ctx
    assert one("SELECT * FROM events")[2]["dynamodb:FullTableScan"] is True
    # On an index, the index's partition key decides, and the resource is the index.
    action, resource, ctx = one('SELECT * FROM "events"."by_kind" WHERE kind = ?', S("play"))
    assert (action, resource) == ("dynamodb:PartiQLSelect", PREFIX + "events/index/by_kind")
    assert ctx["dynamodb:FullTableScan"] is False and ctx["dynamodb:LeadingKeys"] == ["play"]
    _, _, ctx = one("SELECT * FROM events.by_kind WHERE user_id = 'u'")
    assert ctx["dynamodb:FullTableScan"] is True


def test_batch_and_transaction_check_every_statement():
    got = checks("BatchExecuteStatement", {"Statements": [
        {"Statement": "SELECT * FROM events WHERE user_id = 'a' AND ts = 1"},
        {"Statement": "this is not partiql"},
        {"Statement": "SELECT * FROM \"odd.name-1\" WHERE pk = ?", "Parameters": [S("p")]},
    ], "ReturnConsumedCapacity": "TOTAL"})
    # the statement that does not parse runs nothing (its response is an error) and needs nothing
    assert [(a, r) for a, r, _ in got] == [("dynamodb:PartiQLSelect", PREFIX + "events"),
                                          ("dynamodb:PartiQLSelect", PREFIX + "odd.name-1")]
    assert got[1][2]["dynamodb:LeadingKeys"] == ["p"]
    assert got[0][2]["dynamodb:ReturnConsumedCapacity"] == "TOTAL"
    assert got[0][2]["dynamodb:EnclosingOperation"] == "BatchExecuteStatement"
    got = checks("ExecuteTransaction", {"TransactStatements": [
        {"Statement": "FROM events WHERE user_id = 'a' AND ts = 1 SET n = 1"},
        {"Statement": "DELETE FROM \"odd.name-1\" WHERE pk = 'z'"},
        {"Statement": "EXISTS(SELECT * FROM events WHERE user_id = 'b' AND ts = 2 AND n = 1)"},
        {"Statement": "INSERT INTO events VALUE {'user_id': 'c', 'ts': 3}"},
    ]})
    assert [(a, r) for a, r, _ in got] == [
        ("dynamodb:PartiQLUpdate", PREFIX + "events"), ("dynamodb:PartiQLDelete", PREFIX + "odd.name-1"),
        ("dynamodb:PartiQLSelect", PREFIX + "events"), ("dynamodb:PartiQLInsert", PREFIX + "events")]
    assert {c["dynamodb:EnclosingOperation"] for _, _, c in got} == {"ExecuteTransaction"}
    assert [c["dynamodb:LeadingKeys"] for _, _, c in got] == [["a"], ["z"], ["b"], ["c"]]


def test_a_statement_that_does_not_parse_fails_before_authorization_as_the_operation_fails():
    for operation, body, message in (
        ("ExecuteStatement", {"Statement": "UPSERT INTO events VALUE {}"}, "Statement wasn't well formed"),
        ("ExecuteStatement", {"Statement": "SELECT * FROM events WHERE user_id = ?"}, "parameters"),
        ("ExecuteTransaction", {"TransactStatements": [{"Statement": "SELECT * FROM events WHERE user_id = 'a'"},
                                                       {"Statement": "DELETE events"}]},
         "Validation failed in TransactStatements[1]"),
    ):
        with pytest.raises(ValidationException) as err:
            checks(operation, body)
        assert message in err.value.message, err.value.message


# ---------------------------------------------------------------- the property: checked == run

TABLES = ("events", "odd.name-1")
T0 = {"events": [("u1", "1"), ("u1", "2"), ("u2", "1")], "odd.name-1": [("p1", None), ("p2", None)]}


def _create(ctx):
    tables.create_table(ctx, {
        "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"},
                                 {"AttributeName": "kind", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_kind", "Projection": {"ProjectionType": "ALL"}, "KeySchema": [
            {"AttributeName": "kind", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}]}]})
    tables.create_table(ctx, {
        "TableName": "odd.name-1", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})


def _items(ctx, table) -> dict:
    page = scan(ctx, {"TableName": table})
    page = orjson.loads(page) if isinstance(page, (bytes, bytearray)) else page
    return {orjson.dumps({k: v for k, v in item.items() if k in ("user_id", "ts", "pk")},
                         option=orjson.OPT_SORT_KEYS): item for item in page["Items"]}


def _reset(ctx):
    for table in TABLES:
        for item in _items(ctx, table).values():
            key = {k: v for k, v in item.items() if k in ("user_id", "ts", "pk")}
            execute_statement(ctx, {"Statement": f'DELETE FROM "{table}" WHERE '
                                    + " AND ".join(f"{k} = ?" for k in key), "Parameters": list(key.values())})
    for user, ts in T0["events"]:
        execute_statement(ctx, {"Statement": "INSERT INTO events VALUE {'user_id': ?, 'ts': ?, 'kind': 'play', "
                                "'tbl': 'events', 'x': 1, 'y': 1}", "Parameters": [S(user), N(ts)]})
    for pk, _ in T0["odd.name-1"]:
        execute_statement(ctx, {"Statement": "INSERT INTO \"odd.name-1\" VALUE {'pk': ?, 'tbl': 'odd.name-1', "
                                "'x': 1, 'y': 1}", "Parameters": [S(pk)]})


def _table_text(draw, table):
    if table == "events":
        return draw(st.sampled_from(["events", '"events"']))
    return '"odd.name-1"'


@st.composite
def statements(draw):
    """(statement, parameters): every form the parser accepts for one statement."""
    table = draw(st.sampled_from(TABLES))
    name = _table_text(draw, table)
    params = []

    def value(text, kind="S"):
        if draw(st.booleans()):
            params.append({kind: text})
            return "?"
        return f"'{text}'" if kind == "S" else text

    if table == "events":
        key = [f"user_id = {value(draw(st.sampled_from(['u1', 'u2', 'u3'])))}"]
        if draw(st.integers(0, 3)):
            key.append(f"ts = {value(draw(st.sampled_from(['1', '2'])), 'N')}")
    else:
        key = [f"pk = {value(draw(st.sampled_from(['p1', 'p2', 'p3'])))}"]
    key = draw(st.permutations(key))
    where = " AND ".join(key)
    if draw(st.integers(0, 4)) == 0:
        where += " AND x = 1"
    form = draw(st.sampled_from(["select", "select_scan", "select_index", "insert", "update", "from_update",
                                 "delete"]))
    if form == "select":
        projection = draw(st.sampled_from(["*", "tbl, x", "tbl"]))
        return f"SELECT {projection} FROM {name} WHERE {where}", params
    if form in ("select_scan", "select_index", "insert"):
        params.clear()  # these forms use no WHERE on the key
    if form == "select_scan":
        condition = draw(st.sampled_from(["", " WHERE x = 1", " WHERE y = 1 OR x = 2"]))
        return f"SELECT * FROM {name}{condition}", []
    if form == "select_index":
        return f"SELECT * FROM {name}.\"by_kind\" WHERE kind = {value('play')}", params
    if form == "insert":
        pk = "user_id" if table == "events" else "pk"
        extra = ", 'ts': 9" if table == "events" else ""
        return f"INSERT INTO {name} VALUE {{'{pk}': {value('new')}{extra}, 'tbl': 'x'}}", params
    change = draw(st.sampled_from(["SET x = 5", "REMOVE y", "SET x = 6 REMOVE y", "SET z = 'w'"]))
    if form == "update":
        return f"UPDATE {name} {change} WHERE {where}", params
    if form == "from_update":
        return f"FROM {name} WHERE {where} {change}", params
    return f"DELETE FROM {name} WHERE {where}", params


_ACTIONS = {"read": "dynamodb:PartiQLSelect", "insert": "dynamodb:PartiQLInsert",
            "update": "dynamodb:PartiQLUpdate", "delete": "dynamodb:PartiQLDelete"}


def _observed(before: dict, after: dict, table: str) -> list:
    """How the executor changed ``table``'s items: (kind, table) each."""
    seen = []
    seen += [("insert", table)] * len(after.keys() - before.keys())
    seen += [("delete", table)] * len(before.keys() - after.keys())
    for key in before.keys() & after.keys():
        if before[key] != after[key]:
            seen.append(("update", table))
    return seen


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    engine = LmdbEngine(tmp_path_factory.mktemp("partiql-auth") / "db", sync=False)
    catalog = Catalog(engine)
    ctx = Context(REGION, DEFAULT_ACCOUNT, engine, catalog)
    _create(ctx)

    def lookup(table, index):
        with engine.read() as txn:
            found = catalog.get(txn, REGION, table)
        if found is None:
            return None
        if index is not None:
            found = found.index_map.get(index)
        return None if found is None else tuple(name for name, _ in found.key_schema)

    yield ctx, lookup
    engine.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(statements(), min_size=1, max_size=3), st.sampled_from(
    ["ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"]))
def test_authorized_action_and_table_are_what_the_executor_runs(world, generated, operation):
    ctx, lookup = world
    _reset(ctx)
    if operation == "ExecuteStatement":
        generated = generated[:1]
        body = {"Statement": generated[0][0]}
        if generated[0][1]:
            body["Parameters"] = generated[0][1]
        run = execute_statement
    else:
        member = "Statements" if operation == "BatchExecuteStatement" else "TransactStatements"
        body = {member: [{"Statement": text, **({"Parameters": params} if params else {})}
                         for text, params in generated]}
        run = batch_execute_statement if operation == "BatchExecuteStatement" else execute_transaction
    before = {table: _items(ctx, table) for table in TABLES}
    try:
        checked = required(operation, body, REGION, DEFAULT_ACCOUNT, lookup)
    except ShoalError as exc:  # refused before authorization: the operation refuses it too, running nothing
        with pytest.raises(ShoalError) as err:
            run(ctx, body)
        assert err.value.message == exc.message
        assert {table: _items(ctx, table) for table in TABLES} == before
        return
    try:
        response = run(ctx, body)
    except ShoalError:
        response = None
    after = {table: _items(ctx, table) for table in TABLES}
    allowed = {(c.action, c.resource.split(":table/", 1)[1].split("/index/", 1)[0]) for c in checked}
    # every change the executor made was authorized as that change on that table
    for table in TABLES:
        for kind, changed in _observed(before[table], after[table], table):
            assert (_ACTIONS[kind], changed) in allowed, (body, checked)
    # every table an item was read from was authorized for PartiQLSelect
    if response is not None:
        read = []
        for entry in response.get("Responses", []):
            if "Item" in entry:
                read.append(entry["Item"])
        read += response.get("Items", [])
        for item in read:
            if "tbl" in item and "S" in item["tbl"] and item["tbl"]["S"] in TABLES:
                assert ("dynamodb:PartiQLSelect", item["tbl"]["S"]) in allowed, (body, checked)
    # nothing is ever checked on another resource than a table or index of the statements
    assert all(c.resource.startswith(PREFIX) for c in checked)


# ---------------------------------------------------------------- the operation runs on the table authorized


def test_a_table_recreated_after_authorization_is_not_the_one_authorized(tmp_path):
    """The gate reads key names in its own transaction; if the table is
    deleted and re-created with other keys before the operation runs, the
    operation finds no table rather than running on keys nobody authorized."""
    from shoal.api.catalog import PinnedCatalog
    from shoal.auth.gate import Gate

    engine = LmdbEngine(tmp_path / "db", sync=False)
    try:
        catalog = Catalog(engine)
        ctx = Context(REGION, DEFAULT_ACCOUNT, engine, catalog)
        _create(ctx)
        gate = Gate(engine, tmp_path, catalog)
        pins: dict = {}
        with engine.read() as txn:
            lookup = gate._key_lookup(txn, REGION, pins)
            assert lookup("events", "by_kind") == ("kind", "ts") and lookup("odd.name-1", None) == ("pk",)
            assert lookup("missing", None) is None
        pinned = PinnedCatalog(catalog, pins)
        with engine.read() as txn:
            assert pinned.require(txn, REGION, "events").name == "events"
            assert pinned.get(txn, REGION, "missing") is None
        tables.delete_table(ctx, {"TableName": "odd.name-1"})
        tables.create_table(ctx, {"TableName": "odd.name-1", "BillingMode": "PAY_PER_REQUEST",
                                  "KeySchema": [{"AttributeName": "other", "KeyType": "HASH"}],
                                  "AttributeDefinitions": [{"AttributeName": "other", "AttributeType": "S"}]})
        tables.create_table(ctx, {"TableName": "missing", "BillingMode": "PAY_PER_REQUEST",
                                  "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                                  "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}]})
        with engine.read() as txn:
            assert catalog.get(txn, REGION, "odd.name-1") is not None
            assert pinned.get(txn, REGION, "odd.name-1") is None
            assert pinned.get(txn, REGION, "missing") is None  # created after the decision
            with pytest.raises(ShoalError) as err:
                pinned.require(txn, REGION, "odd.name-1")
            assert err.value.type_name == "ResourceNotFoundException"
            assert pinned.get(txn, REGION, "events").name == "events"  # unchanged: still answered
            assert pinned.iter_names is not None  # the rest of the catalog's surface passes through
    finally:
        engine.close()
