"""PartiQL through boto3 against a server with auth on: every statement form the
parser accepts is authorized as the action it runs (issue 13).

For each action, one IAM user's policy allows everything but denies exactly
this action, and another's allows exactly this action; each statement form of
that action must be refused for the first and run for the second, with the
item's state showing what ran.  Users are made through the data directory's
IAM store in the test process (a server sees a new key at once).
"""

from __future__ import annotations

import itertools

import pytest

from shoal.auth.iam import IamStore
from shoal.storage.datadir import open_data_dir
from tests.server.test_auth import client, error_code
from tests.shoal_process import ShoalProcess, root_credentials

ACCOUNT = "000000000000"
TABLE_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/pqt"
INDEX_ARN = TABLE_ARN + "/index/by_kind"
S = lambda text: {"S": text}  # noqa: E731


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("partiql-auth")
    server = ShoalProcess(data_dir, "--auth", "sigv4").start()
    root = client(server.url, *root_credentials(data_dir))
    root.create_table(TableName="pqt", BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                            {"AttributeName": "kind", "AttributeType": "S"}],
                      GlobalSecondaryIndexes=[{"IndexName": "by_kind", "Projection": {"ProjectionType": "ALL"},
                                               "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}]}])
    engine = open_data_dir(data_dir)
    store = IamStore(engine, data_dir)
    users = {}
    names = itertools.count()

    def user_for(statements):
        """A client of a user whose only policy is ``statements`` (one user per policy)."""
        document = {"Version": "2012-10-17", "Statement": list(statements)}
        key = repr(document)
        if key not in users:
            name = f"pql{next(names)}"
            store.create_user(name)
            access = store.create_access_key(name)
            store.put_inline_policy("user", name, "p", document)
            users[key] = client(server.url, access["AccessKeyId"], access["SecretAccessKey"])
        return users[key]

    yield server, data_dir, root, user_for
    engine.close()
    server.stop()


@pytest.fixture
def env(world):
    return [*world, None]


def set_policy(env, *statements) -> None:
    env[4] = env[3](statements)


def deny_only(action: str, condition=None) -> list:
    deny = {"Effect": "Deny", "Action": action, "Resource": "*"}
    if condition:
        deny["Condition"] = condition
    return [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}, deny]


def allow_only(action: str) -> list:
    return [{"Effect": "Allow", "Action": action, "Resource": [TABLE_ARN, INDEX_ARN]}]


def item(env, pk: str):
    return env[2].get_item(TableName="pqt", Key={"pk": S(pk)}).get("Item")


def seed(env, pk: str, **attrs) -> None:
    env[2].put_item(TableName="pqt", Item={"pk": S(pk), "kind": S("play"), "x": {"N": "1"}, "y": {"N": "1"},
                                          **{k: v for k, v in attrs.items()}})


def statement(env, text, params=None):
    kwargs = {"Statement": text}
    if params:
        kwargs["Parameters"] = params
    return env[4].execute_statement(**kwargs)


# Each form: (action, statement, parameters, seed the item first, what the item is after it ran).
UPDATES = [
    ("UPDATE pqt SET x = 2 WHERE pk = 'k'", None, lambda it: it["x"] == {"N": "2"}),
    ("UPDATE pqt REMOVE y WHERE pk = ?", [S("k")], lambda it: "y" not in it),
    ("FROM pqt WHERE pk = 'k' SET x = 2", None, lambda it: it["x"] == {"N": "2"}),
    ('FROM "pqt" WHERE pk = ? REMOVE y', [S("k")], lambda it: "y" not in it),
    ("FROM pqt WHERE pk = 'k' SET x = ? REMOVE y", [{"N": "2"}], lambda it: it["x"] == {"N": "2"} and "y" not in it),
]


@pytest.mark.parametrize("text, params, ran", UPDATES)
def test_update_forms(env, text, params, ran):
    seed(env, "k")
    set_policy(env, *deny_only("dynamodb:PartiQLUpdate"))
    code, message = error_code(statement, env=env, text=text, params=params)
    assert code == "AccessDeniedException", message
    assert "dynamodb:PartiQLUpdate on resource: " + TABLE_ARN in message
    assert item(env, "k")["x"] == {"N": "1"} and "y" in item(env, "k")  # nothing changed
    set_policy(env, *allow_only("dynamodb:PartiQLUpdate"))
    statement(env, text, params)
    assert ran(item(env, "k"))


@pytest.mark.parametrize("text, params", [
    ("INSERT INTO pqt VALUE {'pk': 'new', 'x': 1}", None),
    ('INSERT INTO "pqt" VALUE {\'pk\': ?, \'x\': ?}', [S("new"), {"N": "1"}]),
])
def test_insert_forms(env, text, params):
    env[2].delete_item(TableName="pqt", Key={"pk": S("new")})
    set_policy(env, *deny_only("dynamodb:PartiQLInsert"))
    code, message = error_code(statement, env=env, text=text, params=params)
    assert code == "AccessDeniedException" and "dynamodb:PartiQLInsert" in message
    assert item(env, "new") is None
    set_policy(env, *allow_only("dynamodb:PartiQLInsert"))
    statement(env, text, params)
    assert item(env, "new")["x"] == {"N": "1"}


@pytest.mark.parametrize("text, params", [
    ("DELETE FROM pqt WHERE pk = 'd'", None),
    ("DELETE FROM pqt WHERE pk = ? AND x = 1", [S("d")]),
])
def test_delete_forms(env, text, params):
    seed(env, "d")
    set_policy(env, *deny_only("dynamodb:PartiQLDelete"))
    code, message = error_code(statement, env=env, text=text, params=params)
    assert code == "AccessDeniedException" and "dynamodb:PartiQLDelete" in message
    assert item(env, "d") is not None
    set_policy(env, *allow_only("dynamodb:PartiQLDelete"))
    statement(env, text, params)
    assert item(env, "d") is None


@pytest.mark.parametrize("text, params, resource, scan", [
    ("SELECT * FROM pqt WHERE pk = 's'", None, TABLE_ARN, False),
    ("SELECT x FROM pqt WHERE pk = ?", [S("s")], TABLE_ARN, False),
    ("SELECT * FROM pqt WHERE x = 1", None, TABLE_ARN, True),
    ('SELECT * FROM "pqt"."by_kind" WHERE kind = ?', [S("play")], INDEX_ARN, False),
    ("SELECT pk FROM pqt.by_kind", None, INDEX_ARN, True),
])
def test_select_forms_and_full_table_scan(env, text, params, resource, scan):
    seed(env, "s")
    set_policy(env, *deny_only("dynamodb:PartiQLSelect"))
    code, message = error_code(statement, env=env, text=text, params=params)
    assert code == "AccessDeniedException"
    assert f"dynamodb:PartiQLSelect on resource: {resource} " in message
    set_policy(env, *allow_only("dynamodb:PartiQLSelect"))
    assert statement(env, text, params)["Items"]
    # A Deny on full table scans (DynamoDB's documented policy) refuses exactly the SELECTs that scan.
    set_policy(env, *deny_only("dynamodb:PartiQLSelect", {"Bool": {"dynamodb:FullTableScan": "true"}}))
    if scan:
        assert error_code(statement, env=env, text=text, params=params)[0] == "AccessDeniedException"
    else:
        assert statement(env, text, params)["Items"]


def test_leading_keys_condition_on_partiql(env):
    seed(env, "mine")
    seed(env, "theirs")
    own = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["mine"]}}
    set_policy(env, {"Effect": "Allow", "Action": ["dynamodb:PartiQLSelect", "dynamodb:PartiQLUpdate"],
                     "Resource": TABLE_ARN, "Condition": own})
    assert statement(env, "SELECT * FROM pqt WHERE pk = ?", [S("mine")])["Items"]
    statement(env, "FROM pqt WHERE pk = 'mine' SET x = 3")
    assert item(env, "mine")["x"] == {"N": "3"}
    for text in ("SELECT * FROM pqt WHERE pk = 'theirs'", "FROM pqt WHERE pk = 'theirs' SET x = 3",
                 "UPDATE pqt SET x = 3 WHERE pk = 'theirs'"):
        assert error_code(statement, env=env, text=text)[0] == "AccessDeniedException", text
    assert item(env, "theirs")["x"] == {"N": "1"}


def test_batch_and_transaction_statements_each_checked(env):
    seed(env, "b1")
    seed(env, "b2")
    set_policy(env, *deny_only("dynamodb:PartiQLUpdate"))
    user = env[4]
    # a batch: the denied FROM-first UPDATE refuses the whole request, nothing runs
    code, _ = error_code(user.batch_execute_statement, Statements=[
        {"Statement": "DELETE FROM pqt WHERE pk = 'b2'"},
        {"Statement": "FROM pqt WHERE pk = 'b1' SET x = 9"}])
    assert code == "AccessDeniedException"
    assert item(env, "b2") is not None and item(env, "b1")["x"] == {"N": "1"}
    code, _ = error_code(user.execute_transaction, TransactStatements=[
        {"Statement": "DELETE FROM pqt WHERE pk = 'b2'"},
        {"Statement": "FROM pqt WHERE pk = ? SET x = 9", "Parameters": [S("b1")]}])
    assert code == "AccessDeniedException"
    assert item(env, "b2") is not None and item(env, "b1")["x"] == {"N": "1"}
    # a statement that does not parse is that statement's error; the others run
    out = user.batch_execute_statement(Statements=[
        {"Statement": "DELETE FROM pqt WHERE pk = 'b2'"}, {"Statement": "UPSERT pqt"}])
    assert "Error" not in out["Responses"][0] and out["Responses"][1]["Error"]["Code"] == "ValidationError"
    assert item(env, "b2") is None
    # one allowed action is not another
    set_policy(env, *allow_only("dynamodb:PartiQLSelect"))
    code, _ = error_code(user.execute_transaction, TransactStatements=[
        {"Statement": "EXISTS(SELECT * FROM pqt WHERE pk = 'b1' AND x = 1)"},
        {"Statement": "FROM pqt WHERE pk = 'b1' SET x = 9"}])
    assert code == "AccessDeniedException"
    assert item(env, "b1")["x"] == {"N": "1"}


def test_unparseable_statement_is_refused_as_malformed_and_the_server_serves_on(env):
    set_policy(env, *deny_only("dynamodb:PartiQLUpdate"))
    code, message = error_code(statement, env=env, text="FROM pqt SET x = 2 WHERE pk = 'k' garbage")
    assert code == "ValidationException", message
    seed(env, "alive")
    assert statement(env, "SELECT * FROM pqt WHERE pk = 'alive'")["Items"]
