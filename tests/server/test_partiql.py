"""ExecuteStatement, BatchExecuteStatement and ExecuteTransaction through boto3
against a real server."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique_name

MALFORMED = "Statement wasn't well formed, can't be processed: "
BATCH_SELECT = "Select statements within BatchExecuteStatement must specify the primary key in the where clause."
TRANSACTION_SELECT = ("Validation failed in TransactStatements[0]: Select statements within ExecuteTransaction "
                      "must specify the primary key in the where clause.")


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response


def code_message(call, **kwargs):
    err = error_of(call, **kwargs)["Error"]
    return err["Code"], err["Message"]


def put(ddb, table, pk, sk, **extra):
    item = {"pk": {"S": pk}, "sk": {"N": str(sk)}}
    item.update(extra)
    ddb.put_item(TableName=table, Item=item)


def run(ddb, statement, **kwargs):
    return ddb.execute_statement(Statement=statement, **kwargs)


# ---------------------------------------------------------------- INSERT


def test_insert_then_select_returns_the_item(ddb, table):
    out = run(ddb, f"INSERT INTO \"{table}\" VALUE {{'pk': 'u1', 'sk': 10, 'kind': 'play', "
                   f"'ok': true, 'none': null, 'l': [1, 'x'], 'm': {{'a': 1.50}}, 'tags': <<'a', 'b'>>}}")
    assert out["Items"] == []
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "u1"}, "sk": {"N": "10"}})["Item"]
    assert got["kind"] == {"S": "play"}
    assert got["ok"] == {"BOOL": True}
    assert got["none"] == {"NULL": True}
    assert got["l"] == {"L": [{"N": "1"}, {"S": "x"}]}
    assert got["m"] == {"M": {"a": {"N": "1.5"}}}
    assert sorted(got["tags"]["SS"]) == ["a", "b"]


def test_insert_duplicate_is_duplicate_item_exception(ddb, table):
    run(ddb, f"INSERT INTO {table} VALUE {{'pk': 'u1', 'sk': 1}}")
    err = error_of(run, ddb=ddb, statement=f"INSERT INTO {table} VALUE {{'pk': 'u1', 'sk': 1, 'x': 2}}")
    assert err["Error"]["Code"] == "DuplicateItemException"
    assert err["Error"]["Message"] == "Duplicate primary key exists in table"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_insert_duplicate_with_all_old_returns_the_item(ddb, table):
    put(ddb, table, "u1", 1, x={"N": "5"})
    err = error_of(run, ddb=ddb, statement=f"INSERT INTO {table} VALUE {{'pk': 'u1', 'sk': 1}}",
                   ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert err["Error"]["Code"] == "ConditionalCheckFailedException"
    assert err["Item"]["x"] == {"N": "5"}


def test_insert_without_the_sort_key(ddb, table):
    assert code_message(run, ddb=ddb, statement=f"INSERT INTO {table} VALUE {{'pk': 'a'}}") == (
        "ValidationException", "Key attribute should be present in the item: Key sk")


def test_insert_with_parameters(ddb, table):
    run(ddb, f"INSERT INTO {table} VALUE {{'pk': ?, 'sk': ?, 'b': ?}}",
        Parameters=[{"S": "u2"}, {"N": "7"}, {"B": b"\x01\x02"}])
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "u2"}, "sk": {"N": "7"}})["Item"]
    assert got["b"] == {"B": b"\x01\x02"}


# ---------------------------------------------------------------- SELECT


def test_select_with_partition_key_is_a_query_in_sort_order(ddb, table):
    for sk in (3, 1, 2):
        put(ddb, table, "u1", sk)
    put(ddb, table, "u2", 1)
    items = run(ddb, f"SELECT * FROM {table} WHERE pk = 'u1'")["Items"]
    assert [i["sk"]["N"] for i in items] == ["1", "2", "3"]
    items = run(ddb, f"SELECT sk FROM {table} WHERE pk = 'u1' ORDER BY sk DESC")["Items"]
    assert items == [{"sk": {"N": "3"}}, {"sk": {"N": "2"}}, {"sk": {"N": "1"}}]


def test_select_sort_key_conditions_and_filters(ddb, table):
    for sk in range(1, 11):
        put(ddb, table, "u1", sk, kind={"S": "play" if sk % 2 else "pause"})
    stmt = f"SELECT sk FROM {table} WHERE pk = ? AND sk BETWEEN 2 AND 8 AND kind = 'play'"
    items = run(ddb, stmt, Parameters=[{"S": "u1"}])["Items"]
    assert [i["sk"]["N"] for i in items] == ["3", "5", "7"]
    items = run(ddb, f"SELECT sk FROM {table} WHERE pk = 'u1' AND 8 < sk")["Items"]
    assert [i["sk"]["N"] for i in items] == ["9", "10"]
    # A second condition on the sort key is a filter, which Query alone would refuse.
    items = run(ddb, f"SELECT sk FROM {table} WHERE pk = 'u1' AND sk > 2 AND sk IN [3, 4, 9]")["Items"]
    assert [i["sk"]["N"] for i in items] == ["3", "4", "9"]


def test_select_functions_and_missing(ddb, table):
    put(ddb, table, "u1", 1, title={"S": "Heat"}, tags={"SS": ["crime"]})
    put(ddb, table, "u1", 2, title={"S": "Alien"})
    base = f"SELECT sk FROM {table} WHERE pk = 'u1' AND "
    cases = {
        "begins_with(title, 'He')": ["1"],
        "contains(tags, 'crime')": ["1"],
        "size(title) = 5": ["2"],
        "attribute_type(tags, 'SS')": ["1"],
        "tags IS MISSING": ["2"],
        "tags IS NOT MISSING": ["1"],
        "NOT title = 'Heat'": ["2"],
        "(title = 'Heat' OR title = 'Alien')": ["1", "2"],
        "title <> 'Heat'": ["2"],
    }
    for condition, expected in cases.items():
        items = run(ddb, base + condition)["Items"]
        assert [i["sk"]["N"] for i in items] == expected, condition


def test_select_is_type(ddb, table):
    put(ddb, table, "u1", 1, flag={"BOOL": True}, s={"S": "x"})
    put(ddb, table, "u1", 2, flag={"S": "true"}, s={"N": "1"})
    base = f"SELECT sk FROM {table} WHERE pk = 'u1' AND "
    cases = {"flag IS BOOL": ["1"], "s IS STRING": ["1"], "s IS BOOL": [], "flag IS NOT BOOL": ["2"],
             "flag IS BOOLEAN AND s IS NOT string": []}
    for condition, expected in cases.items():
        items = run(ddb, base + condition)["Items"]
        assert [i["sk"]["N"] for i in items] == expected, condition
    assert code_message(run, ddb=ddb, statement=base + "flag IS FOO") == (
        "ValidationException", MALFORMED + "Expected type name")


def test_number_literals_out_of_range_name_their_place(ddb, table):
    overflow = "Number overflow. Attempting to store a number with magnitude larger than supported range under "
    cases = [
        (f"SELECT * FROM {table} WHERE pk = 1e126", overflow + "root"),
        (f"SELECT * FROM {table} WHERE pk = 1e-131",
         "Number underflow. Attempting to store a number with magnitude smaller than supported range under root"),
        (f"SELECT * FROM {table} WHERE pk = {'9' * 39}",
         "Attempting to store more than 38 significant digits in a Number under root"),
        (f"SELECT * FROM {table} WHERE pk = {{'x': 1e126}}", overflow + "root.x"),
        (f"SELECT * FROM {table} WHERE pk = [1, 1e126]", overflow + "root[1]"),
    ]
    for statement, message in cases:
        assert code_message(run, ddb=ddb, statement=statement) == ("ValidationException", message), statement


def test_select_without_partition_key_is_a_scan(ddb, table):
    for pk in ("a", "b", "c"):
        put(ddb, table, pk, 1, n={"N": "1" if pk != "b" else "2"})
    items = run(ddb, f"SELECT pk FROM {table} WHERE n = 1")["Items"]
    assert sorted(i["pk"]["S"] for i in items) == ["a", "c"]
    assert len(run(ddb, f'SELECT * FROM "{table}"')["Items"]) == 3


def test_select_document_paths(ddb, table):
    put(ddb, table, "u1", 1, device={"M": {"type": {"S": "tv"}, "os": {"S": "tizen"}}},
        l={"L": [{"N": "1"}, {"N": "2"}]})
    items = run(ddb, f"SELECT device.\"type\", l[1] FROM {table} WHERE pk = 'u1' AND device.os = 'tizen'")["Items"]
    # a path's value under its last name, a list element's under its path (DynamoDB Local 1.25 agrees)
    assert items == [{"type": {"S": "tv"}, "l[1]": {"N": "2"}}]


def test_select_pages_with_next_token(ddb, table):
    for sk in range(1, 8):
        put(ddb, table, "u1", sk)
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"Limit": 3}
        if token:
            kwargs["NextToken"] = token
        out = run(ddb, f"SELECT sk FROM {table} WHERE pk = 'u1'", **kwargs)
        pages += 1
        seen += [i["sk"]["N"] for i in out["Items"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == [str(n) for n in range(1, 8)]
    assert pages == 3


def test_select_scan_pages_with_next_token(ddb, hash_table):
    for n in range(5):
        ddb.put_item(TableName=hash_table, Item={"pk": {"S": f"k{n}"}})
    seen, token = [], None
    while True:
        out = run(ddb, f"SELECT * FROM {hash_table}", Limit=2, **({"NextToken": token} if token else {}))
        seen += [i["pk"]["S"] for i in out["Items"]]
        token = out.get("NextToken")
        if not token:
            break
    assert sorted(seen) == [f"k{n}" for n in range(5)]


def test_select_invalid_next_token(ddb, table):
    assert code_message(run, ddb=ddb, statement=f"SELECT * FROM {table}", NextToken="garbage") == (
        "ValidationException", "Invalid NextToken")


@pytest.mark.parametrize("key", [
    {"pk": 5, "sk": {"N": "1"}}, {"pk": {"B": "\u00fc\u00fc\u00fc\u00fc"}, "sk": {"N": "1"}},
    {"pk": {"S": "a"}, "sk": {"N": "1e999"}}, {"pk": None, "sk": []}, {"pk": {}, "sk": {"N": "1"}},
])
def test_select_next_token_of_no_valid_key(ddb, table, key):
    # A token is a key Shoal encoded; one that holds no valid key is no token
    # of Shoal's (it once answered a 500 when a value was not an object).
    token = base64.b64encode(json.dumps(key).encode()).decode()
    for statement in (f"SELECT * FROM {table}", f"SELECT * FROM {table} WHERE pk = 'a'"):
        assert code_message(run, ddb=ddb, statement=statement, NextToken=token) == (
            "ValidationException", "Invalid NextToken")


def deep(open_: str, middle: str, close: str, depth: int) -> str:
    return open_ * depth + middle + close * depth


@pytest.mark.parametrize("depth", [150, 200, 201, 1300, 1900])
@pytest.mark.parametrize("statement", [
    lambda t, n: f"SELECT * FROM {t} WHERE " + deep("(", "pk = 'a'", ")", n),
    lambda t, n: f"SELECT * FROM {t} WHERE " + "NOT " * n + "pk = 'a'",
    lambda t, n: f"SELECT * FROM {t} WHERE pk = " + deep("size(", "a", ")", n),
    lambda t, n: f"SELECT * FROM {t} WHERE pk = " + deep("[", "1", "]", n),
    lambda t, n: f"INSERT INTO {t} VALUE {{'pk': 'deep', 'sk': 1, 'x': " + deep("{'a': ", "1", "}", n) + "}",
    lambda t, n: f"INSERT INTO {t} VALUE {{'pk': 'deep', 'sk': 2, 'x': " + deep("<<", "1", ">>", n) + "}",
    lambda t, n: f"UPDATE {t} SET x = x" + " + 1" * n + " WHERE pk = 'deep' AND sk = 3",
], ids=["parentheses", "not", "calls", "lists", "maps", "sets", "arithmetic"])
def test_deeply_nested_statements(ddb, table, statement, depth):
    # Each once answered a 500 (RecursionError) from a few hundred levels on.
    text = statement(table, depth)
    if len(text) > 8192:
        return  # the API model's limit on a statement
    try:
        run(ddb, text)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ValidationException"
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "TableNames" in ddb.list_tables()


@pytest.mark.parametrize("statement", [
    "SELECT a[{digits}] FROM {table}",
    "SELECT * FROM {table} WHERE a[{digits}] = 1",
    "SELECT * FROM {table} WHERE sk = 1e{digits}",
    "SELECT * FROM {table} WHERE sk = 1e-{digits}",
])
def test_numbers_of_thousands_of_digits(ddb, table, statement):
    # Python converts at most 4,300 digits to an int: these once answered a 500.
    text = statement.format(table=table, digits="9" * 5000)
    assert code_message(run, ddb=ddb, statement=text)[0] == "ValidationException"


def test_select_consumed_capacity(ddb, table):
    put(ddb, table, "u1", 1)
    out = run(ddb, f"SELECT * FROM {table} WHERE pk = 'u1'", ReturnConsumedCapacity="TOTAL",
              ConsistentRead=True)
    assert out["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 1.0}


def test_select_from_a_global_secondary_index(ddb):
    name = unique_name()
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "content_id", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "by_content",
            "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
    )
    try:
        for user, sk in (("u1", 5), ("u2", 3), ("u3", 9)):
            put(ddb, name, user, sk, content_id={"S": "c42"})
        put(ddb, name, "u4", 1, content_id={"S": "c7"})
        items = run(ddb, f'SELECT pk FROM "{name}"."by_content" WHERE content_id = \'c42\' ORDER BY sk DESC')
        assert [i["pk"]["S"] for i in items["Items"]] == ["u3", "u1", "u2"]
        assert code_message(run, ddb=ddb, statement=f'SELECT * FROM "{name}"."nope"') == (
            "ValidationException", "The table does not have the specified index")
    finally:
        ddb.delete_table(TableName=name)


# ---------------------------------------------------------------- UPDATE and DELETE


def test_update_set_remove_and_functions(ddb, table):
    put(ddb, table, "u1", 1, n={"N": "1"}, gone={"S": "x"}, l={"L": [{"N": "1"}]}, s={"SS": ["a"]})
    out = run(ddb, f"UPDATE {table} SET n = n + 2, l = list_append(l, [2]) "
                   f"REMOVE gone SET s = set_add(s, <<'b'>>), t = 'new' "
                   f"WHERE pk = 'u1' AND sk = 1 RETURNING ALL NEW *")
    item = out["Items"][0]
    assert item["n"] == {"N": "3"}
    assert item["l"] == {"L": [{"N": "1"}, {"N": "2"}]}
    assert sorted(item["s"]["SS"]) == ["a", "b"]
    assert item["t"] == {"S": "new"}
    assert "gone" not in item
    out = run(ddb, f"UPDATE {table} SET s = set_delete(s, <<'a'>>) WHERE pk = 'u1' AND sk = 1 "
                   f"RETURNING MODIFIED OLD *")
    assert sorted(out["Items"][0]["s"]["SS"]) == ["a", "b"]


def test_update_of_a_missing_item_fails_its_condition(ddb, table):
    assert code_message(run, ddb=ddb, statement=f"UPDATE {table} SET x = 1 WHERE pk = 'no' AND sk = 1") == (
        "ConditionalCheckFailedException", "The conditional request failed")


def test_update_with_extra_condition(ddb, table):
    put(ddb, table, "u1", 1, pos={"N": "10"})
    stmt = f"UPDATE {table} SET pos = ? WHERE pk = 'u1' AND sk = 1 AND pos < ?"
    run(ddb, stmt, Parameters=[{"N": "20"}, {"N": "20"}])
    err = error_of(run, ddb=ddb, statement=stmt, Parameters=[{"N": "15"}, {"N": "15"}],
                   ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert err["Error"]["Code"] == "ConditionalCheckFailedException"
    assert err["Item"]["pos"] == {"N": "20"}


def test_update_needs_the_whole_key(ddb, table):
    assert code_message(run, ddb=ddb, statement=f"UPDATE {table} SET x = 1 WHERE pk = 'a'") == (
        "ValidationException", "Where clause does not contain a mandatory equality on all key attributes")


def test_update_of_a_key_attribute(ddb, table):
    put(ddb, table, "a", 1)
    assert code_message(run, ddb=ddb, statement=f"UPDATE {table} SET pk = 'q' WHERE pk = 'a' AND sk = 1") == (
        "ValidationException",
        "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key")


def test_from_first_update(ddb, table):
    put(ddb, table, "u1", 1, n={"N": "1"}, gone={"S": "x"})
    out = run(ddb, f'from "{table}" where pk = ? and sk = 1 and n = ? set n = n + 1, t = ? remove gone '
                   f"returning all new *", Parameters=[{"S": "u1"}, {"N": "1"}, {"S": "new"}])
    assert out["Items"] == [{"pk": {"S": "u1"}, "sk": {"N": "1"}, "n": {"N": "2"}, "t": {"S": "new"}}]
    out = run(ddb, f"FROM {table} WHERE pk = 'u1' AND sk = 1 SET n = 5 RETURNING MODIFIED OLD *")
    assert out["Items"] == [{"n": {"N": "2"}}]
    assert run(ddb, f"FROM {table} WHERE pk = 'u1' AND sk = 1 REMOVE t")["Items"] == []
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "u1"}, "sk": {"N": "1"}})["Item"]
    assert got == {"pk": {"S": "u1"}, "sk": {"N": "1"}, "n": {"N": "5"}}
    failed = ("ConditionalCheckFailedException", "The conditional request failed")
    key_equality = ("ValidationException", "Where clause does not contain a mandatory equality on all key attributes")
    cases = [
        (f"FROM {table} WHERE pk = 'no' AND sk = 1 SET x = 1", failed),
        (f"FROM {table} WHERE pk = 'u1' AND sk = 1 AND n = 9 SET x = 1", failed),
        (f"FROM {table} SET x = 1", key_equality),
        (f"FROM {table} WHERE pk = 'u1' SET x = 1", key_equality),
        (f"FROM {table} SET x = 1 WHERE pk = 'u1' AND sk = 1", ("ValidationException",
                                                               MALFORMED + "Unexpected token after expression")),
        ("FROM nope_nope WHERE pk = 'u1' AND sk = 1 SET x = 1", ("ResourceNotFoundException",
                                                                "Requested resource not found")),
    ]
    for statement, expected in cases:
        assert code_message(run, ddb=ddb, statement=statement) == expected, statement


def test_from_first_update_in_transactions_and_batches(ddb, table):
    put(ddb, table, "a", 1, n={"N": "1"})
    put(ddb, table, "b", 1, n={"N": "1"})
    ddb.execute_transaction(TransactStatements=[
        {"Statement": f"FROM {table} WHERE pk = ? AND sk = 1 AND n = 1 SET n = 2", "Parameters": [{"S": "a"}]},
        {"Statement": f"from {table} where pk = 'b' and sk = 1 set n = 3"},
    ])
    err = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"FROM {table} WHERE pk = 'a' AND sk = 1 SET n = 4"},
        {"Statement": f"FROM {table} WHERE pk = 'b' AND sk = 1 AND n = 1 SET n = 4"},
    ])
    assert [r["Code"] for r in err["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    out = ddb.batch_execute_statement(Statements=[
        {"Statement": f"FROM {table} WHERE pk = 'a' AND sk = 1 SET n = n + 10"},
        {"Statement": f"FROM {table} WHERE pk = 'zz' AND sk = 1 SET n = 1"},
    ])["Responses"]
    assert out[0] == {"TableName": table}
    assert out[1]["Error"]["Code"] == "ConditionalCheckFailed"
    got = {pk: ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"N": "1"}})["Item"]["n"]["N"]
           for pk in ("a", "b")}
    assert got == {"a": "12", "b": "3"}


def test_delete_returns_old_item_and_checks_conditions(ddb, table):
    put(ddb, table, "u1", 1, x={"N": "1"})
    assert code_message(run, ddb=ddb, statement=f"DELETE FROM {table} WHERE pk = 'u1' AND sk = 1 AND x = 2") == (
        "ConditionalCheckFailedException", "The conditional request failed")
    out = run(ddb, f"DELETE FROM {table} WHERE pk = 'u1' AND sk = 1 RETURNING ALL OLD *")
    assert out["Items"][0]["x"] == {"N": "1"}
    assert run(ddb, f"DELETE FROM {table} WHERE pk = 'u1' AND sk = 1")["Items"] == []
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "u1"}, "sk": {"N": "1"}})


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("statement", ["SELEC * FROM t", "SELECT * FROM t WHERE x = '",
                                       "INSERT INTO t VALUE", "UPDATE t WHERE pk = 1"])
def test_malformed_statements(ddb, statement):
    assert code_message(run, ddb=ddb, statement=statement) == ("ValidationException", MALFORMED + statement)


def test_statement_errors(ddb, table):
    cases = [
        (dict(statement="SELECT * FROM nope_nope"), ("ResourceNotFoundException", "Requested resource not found")),
        (dict(statement=f"SELECT * FROM {table} WHERE pk = ?"),
         ("ValidationException", "Number of parameters in request and statement don't match.")),
        (dict(statement=f"SELECT * FROM {table} WHERE pk = 'a'", Parameters=[{"S": "a"}]),
         ("ValidationException", "Number of parameters in request and statement don't match.")),
        (dict(statement=f"SELECT * FROM {table} ORDER BY sk"),
         ("ValidationException", "Must have WHERE clause in the statement when using ORDER BY clause.")),
        (dict(statement=f"SELECT * FROM {table} WHERE x = 1 ORDER BY sk"),
         ("ValidationException",
          "Must have at least one non-optional hash key condition in WHERE clause when using ORDER BY clause.")),
        (dict(statement=f"SELECT * FROM {table} WHERE pk = 'a' ORDER BY x"),
         ("ValidationException", "Variable reference x in ORDER BY clause must be part of the primary key")),
        (dict(statement=f"SELECT * FROM {table} WHERE pk = 1"),
         ("ValidationException", "Key attribute's data type should match its data type in table's schema: Key pk")),
        (dict(statement=f"EXISTS(SELECT * FROM {table} WHERE pk = 'a' AND sk = 1 AND x = 1)"),
         ("ValidationException", "EXISTS can only be used in ExecuteTransaction write requests.")),
    ]
    for kwargs, expected in cases:
        assert code_message(run, ddb=ddb, **kwargs) == expected, kwargs


# ---------------------------------------------------------------- BatchExecuteStatement


def test_batch_writes_with_per_statement_errors(ddb, table):
    put(ddb, table, "dup", 1)
    put(ddb, table, "kept", 1)
    out = ddb.batch_execute_statement(Statements=[
        {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'dup', 'sk': 1}}"},
        {"Statement": f"INSERT INTO {table} VALUE {{'pk': ?, 'sk': 2}}", "Parameters": [{"S": "new"}]},
        {"Statement": f"UPDATE {table} SET x = 1 WHERE pk = 'zz' AND sk = 1"},
        {"Statement": "INSERT INTO nope_nope VALUE {'pk': 'b', 'sk': 1}"},
        {"Statement": "SELEC"},
        {"Statement": f"DELETE FROM {table} WHERE pk = 'kept' AND sk = 1 AND x = 9",
         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
    ], ReturnConsumedCapacity="TOTAL")
    r = out["Responses"]
    assert r[0] == {"TableName": table, "Error": {"Code": "DuplicateItem",
                                                  "Message": "Duplicate primary key exists in table"}}
    assert r[1] == {"TableName": table}
    assert r[2]["Error"] == {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
    assert r[3] == {"Error": {"Code": "ResourceNotFound", "Message": "Requested resource not found"}}
    assert r[4] == {"Error": {"Code": "ValidationError", "Message": MALFORMED + "SELEC"}}
    assert r[5] == {"TableName": table, "Error": {"Code": "ConditionalCheckFailed",
                                                  "Message": "The conditional request failed"}}
    assert out["ConsumedCapacity"][0]["TableName"] == table
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "new"}, "sk": {"N": "2"}})
    assert "Item" in got


def test_batch_reads(ddb, table):
    put(ddb, table, "a", 1, x={"N": "1"})
    put(ddb, table, "a", 2)
    out = ddb.batch_execute_statement(Statements=[
        {"Statement": f"SELECT x FROM {table} WHERE pk = 'a' AND sk = 1"},
        {"Statement": f"SELECT * FROM {table} WHERE pk = 'a'"},
        {"Statement": f"SELECT * FROM {table} WHERE pk = 'nobody' AND sk = 1"},
        {"Statement": f"SELECT * FROM {table} WHERE pk = ? AND sk = ?", "Parameters": [{"S": "a"}, {"N": "2"}],
         "ConsistentRead": True},
    ])["Responses"]
    assert out[0] == {"TableName": table, "Item": {"x": {"N": "1"}}}
    assert out[1] == {"Error": {"Code": "ValidationError", "Message": BATCH_SELECT}}
    assert out[2] == {"TableName": table}
    assert out[3]["Item"]["sk"] == {"N": "2"}


def test_batch_reads_with_consumed_capacity_and_projections(ddb, table):
    # GetItem answers such a read with the stored item spliced in unparsed;
    # projecting it once answered a 500.
    put(ddb, table, "a", 1, x={"N": "1"}, y={"S": "z"})
    put(ddb, table, "a", 2, x={"N": "1"}, y={"S": "z"})
    out = ddb.batch_execute_statement(Statements=[
        {"Statement": f"SELECT x FROM {table} WHERE pk = 'a' AND sk = 1"},
        {"Statement": f"SELECT * FROM {table} WHERE pk = 'a' AND sk = 2", "ConsistentRead": True},
    ], ReturnConsumedCapacity="TOTAL")
    assert out["Responses"][0] == {"TableName": table, "Item": {"x": {"N": "1"}}}
    assert out["Responses"][1]["Item"]["y"] == {"S": "z"}
    assert out["ConsumedCapacity"] == [{"TableName": table, "CapacityUnits": 1.5}]


def test_batch_refuses_mixed_reads_and_writes_and_duplicate_keys(ddb, table):
    mixed = [{"Statement": f"SELECT * FROM {table} WHERE pk = 'a' AND sk = 1"},
             {"Statement": f"DELETE FROM {table} WHERE pk = 'b' AND sk = 1"}]
    assert code_message(ddb.batch_execute_statement, Statements=mixed) == (
        "ValidationException", "Read and write requests together in the same batch is not supported.")
    dup = [{"Statement": f"INSERT INTO {table} VALUE {{'pk': 'a', 'sk': 1}}"},
           {"Statement": f"DELETE FROM {table} WHERE pk = 'a' AND sk = 1.0"}]
    assert code_message(ddb.batch_execute_statement, Statements=dup) == (
        "ValidationException", "Provided list of item keys contains duplicates")


# ---------------------------------------------------------------- ExecuteTransaction


def test_transaction_commits_all(ddb, table):
    put(ddb, table, "acct", 1, balance={"N": "100"})
    put(ddb, table, "lock", 1)
    out = ddb.execute_transaction(TransactStatements=[
        {"Statement": f"UPDATE {table} SET balance = balance - ? WHERE pk = 'acct' AND sk = 1 AND balance >= ?",
         "Parameters": [{"N": "30"}, {"N": "30"}]},
        {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'log', 'sk': 1, 'amount': 30}}"},
        {"Statement": f"DELETE FROM {table} WHERE pk = 'gone' AND sk = 1"},
        {"Statement": f"EXISTS(SELECT * FROM {table} WHERE pk = 'lock' AND sk = 1 AND held IS MISSING)"},
    ], ClientRequestToken="tok-commit-1", ReturnConsumedCapacity="TOTAL")
    assert out["Responses"] == []
    assert out["ConsumedCapacity"][0]["TableName"] == table
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "acct"}, "sk": {"N": "1"}})["Item"]
    assert got["balance"] == {"N": "70"}


def test_transaction_cancels_with_reasons(ddb, table):
    put(ddb, table, "a", 1, x={"N": "1"})
    err = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'a', 'sk': 1}}"},
        {"Statement": f"UPDATE {table} SET x = 2 WHERE pk = 'b' AND sk = 1"},
        {"Statement": f"DELETE FROM {table} WHERE pk = 'c' AND sk = 1"},
        {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'new', 'sk': 1}}"},
    ])
    assert err["Error"]["Code"] == "TransactionCanceledException"
    assert err["CancellationReasons"] == [
        {"Code": "ValidationError", "Message": "Duplicate primary key exists in table"},
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
        {"Code": "None"},
        {"Code": "None"},
    ]
    assert err["Error"]["Message"] == ("Transaction cancelled, please refer cancellation reasons for specific "
                                       "reasons [ValidationError, ConditionalCheckFailed, None, None]")
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "new"}, "sk": {"N": "1"}})


def test_transaction_exists_condition(ddb, table):
    put(ddb, table, "a", 1, x={"N": "1"})
    ok = [{"Statement": f"EXISTS(SELECT * FROM {table} WHERE pk = 'a' AND sk = 1 AND x = 1)"},
          {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'b', 'sk': 1}}"}]
    ddb.execute_transaction(TransactStatements=ok)
    failing = [{"Statement": f"EXISTS(SELECT * FROM {table} WHERE pk = 'a' AND sk = 1 AND x = 2)"},
               {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'c', 'sk': 1}}"}]
    err = error_of(ddb.execute_transaction, TransactStatements=failing)
    assert [r["Code"] for r in err["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]
    # NOT EXISTS: the Developer Guide documents EXISTS only, DynamoDB Local refuses it
    negated = [{"Statement": f"NOT EXISTS(SELECT * FROM {table} WHERE pk = 'a' AND sk = 1 AND x = 2)"},
               {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'c', 'sk': 1}}"}]
    assert code_message(ddb.execute_transaction, TransactStatements=negated) == (
        "ValidationException", "Unsupported operation in transaction.")
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "c"}, "sk": {"N": "1"}})
    bare = [{"Statement": f"EXISTS(SELECT * FROM {table} WHERE pk = 'a' AND sk = 1)"}]
    assert code_message(ddb.execute_transaction, TransactStatements=bare) == (
        "ValidationException",
        "Validation failed in TransactStatements[0]: EXISTS() must contain a single item read with additional condition")


def test_read_transaction(ddb, table):
    put(ddb, table, "a", 1, x={"N": "1"}, y={"N": "2"})
    out = ddb.execute_transaction(TransactStatements=[
        {"Statement": f"SELECT x FROM {table} WHERE pk = 'a' AND sk = 1"},
        {"Statement": f"SELECT * FROM {table} WHERE pk = 'nope' AND sk = 1"},
    ])
    assert out["Responses"] == [{"Item": {"x": {"N": "1"}}}, {}]


def test_transaction_errors(ddb, table):
    mixed = [{"Statement": f"SELECT * FROM {table} WHERE pk = 'a' AND sk = 1"},
             {"Statement": f"DELETE FROM {table} WHERE pk = 'c' AND sk = 1"}]
    assert code_message(ddb.execute_transaction, TransactStatements=mixed) == (
        "ValidationException",
        "ExecuteTransaction API does not support both read and write operations in the same request.")
    partial = [{"Statement": f"SELECT * FROM {table} WHERE pk = 'a'"}]
    assert code_message(ddb.execute_transaction, TransactStatements=partial) == (
        "ValidationException",
        "Validation failed in TransactStatements[0]: Select statements within ExecuteTransaction must "
        "specify the primary key in the where clause.")
    same = [{"Statement": f"DELETE FROM {table} WHERE pk = 'c' AND sk = 1"},
            {"Statement": f"DELETE FROM {table} WHERE pk = 'c' AND sk = 1"}]
    assert code_message(ddb.execute_transaction, TransactStatements=same) == (
        "ValidationException", "Transaction request cannot include multiple operations on one item")


# ---------------------------------------------------------------- DynamoDB's answers (conformance)


@pytest.fixture
def indexed(ddb):
    """pk/sk with an LSI (lsi2 on lsi2sk, projecting only 'other') and a GSI
    (gsi2 on gsi2pk, projecting only 'other')."""
    name = unique_name()
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "lsi2sk", "gsi2pk")],
        LocalSecondaryIndexes=[{
            "IndexName": "lsi2",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "lsi2sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["other"]}}],
        GlobalSecondaryIndexes=[{
            "IndexName": "gsi2",
            "KeySchema": [{"AttributeName": "gsi2pk", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["other"]}}],
    )
    ddb.put_item(TableName=name, Item={
        "pk": {"S": "p"}, "sk": {"S": "s"}, "lsi2sk": {"S": "l"}, "gsi2pk": {"S": "g"}, "other": {"S": "o"},
        "data": {"S": "d"}, "alternate": {"S": "a"}, "mymap": {"M": {"k": {"S": "v"}}}})
    yield name
    ddb.delete_table(TableName=name)


def test_select_from_a_local_index_fetches_unprojected_attributes(ddb, indexed):
    items = run(ddb, f'SELECT data FROM "{indexed}"."lsi2" WHERE pk = \'p\' AND lsi2sk = \'l\'')["Items"]
    assert items == [{"data": {"S": "d"}}]
    items = run(ddb, f'SELECT other, mymap.k FROM "{indexed}"."lsi2" WHERE pk = \'p\' AND other = \'o\'')["Items"]
    assert items == [{"other": {"S": "o"}, "k": {"S": "v"}}]


def test_select_from_a_global_index_refuses_unprojected_attributes(ddb, indexed):
    refused = ("ValidationException",
               "One or more parameter values were invalid: Global secondary index gsi2 does not project "
               "[alternate, mymap]")
    for where in (" WHERE gsi2pk = 'g'", ""):
        statement = f'SELECT alternate, other, mymap FROM "{indexed}"."gsi2"{where}'
        assert code_message(run, ddb=ddb, statement=statement) == refused
    items = run(ddb, f'SELECT other FROM "{indexed}"."gsi2" WHERE gsi2pk = \'g\' AND other = \'o\'')["Items"]
    assert items == [{"other": {"S": "o"}}]


def test_expression_errors_do_not_name_the_expression(ddb, table):
    put(ddb, table, "a", 1, val={"N": "1"})
    bool_param = [{"S": "a"}, {"BOOL": True}]
    cases = [
        (dict(statement=f"SELECT pk FROM {table} WHERE pk = ? AND val < ?", Parameters=bool_param),
         "Incorrect operand type for operator or function; operator or function: <, operand type: BOOL"),
        (dict(statement=f"SELECT pk FROM {table} WHERE attribute_exists('ss')"),
         "Operator or function requires a document path; operator or function: attribute_exists"),
        (dict(statement=f"SELECT pk FROM {table} WHERE attribute_exists(?)", Parameters=[{"S": "x"}]),
         "Operator or function requires a document path; operator or function: attribute_exists"),
        (dict(statement=f"SELECT pk FROM {table} WHERE attribute_exists()"),
         "Incorrect number of operands for operator or function; operator or function: attribute_exists, "
         "number of operands: 0"),
        (dict(statement=f"UPDATE {table} SET x = 1 WHERE pk = 'a' AND sk = 1 AND val < ?",
              Parameters=[{"BOOL": True}]),
         "Incorrect operand type for operator or function; operator or function: <, operand type: BOOL"),
        (dict(statement=f"DELETE FROM {table} WHERE pk = 'a' AND sk = 1 AND attribute_exists('v')"),
         "Operator or function requires a document path; operator or function: attribute_exists"),
    ]
    for kwargs, message in cases:
        assert code_message(run, ddb=ddb, **kwargs) == ("ValidationException", message), kwargs
    err = code_message(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"UPDATE {table} SET x = 1 WHERE pk = 'a' AND sk = 1 AND val < ?",
         "Parameters": [{"BOOL": True}]}])
    assert err == ("ValidationException", "Validation failed in TransactStatements[0]: "
                   "Incorrect operand type for operator or function; operator or function: <, operand type: BOOL")


def test_comments_and_boolean_function_comparisons(ddb, table):
    put(ddb, table, "a", 1, ss={"SS": ["x"]})
    put(ddb, table, "a", 2)
    items = run(ddb, f"SELECT sk FROM {table} -- a note\nWHERE pk = 'a' /* block\n comment */")["Items"]
    assert [i["sk"]["N"] for i in items] == ["1", "2"]
    base = f"SELECT sk FROM {table} WHERE pk = 'a' AND "
    for condition, expected in [("attribute_exists(ss) = true", ["1"]), ("attribute_exists(ss) = FALSE", ["2"]),
                                ("true = attribute_exists(ss)", ["1"]), ("attribute_exists(ss) <> true", ["2"]),
                                ("begins_with(ss, 'q') = false", ["1", "2"])]:
        assert [i["sk"]["N"] for i in run(ddb, base + condition)["Items"]] == expected, condition
    for statement in (f"SELECT * FROM {table} WHERE pk = 'a' # note", f"SELECT * FROM {table} /* note"):
        assert code_message(run, ddb=ddb, statement=statement) == ("ValidationException", MALFORMED)


def test_syntax_error_reasons_and_aliases(ddb, table):
    cases = [
        (f"SELECT * FROM {table} WHERE pk = 'a' foo", MALFORMED + "Unexpected token after expression"),
        (f"SELECT * FROM {table} WHERE", MALFORMED + "Unexpected term"),
        (f"SELECT * FROM {table} WHERE pk = 'a' AND", MALFORMED + "Missing right-hand side expression of infix operator"),
        (f"SELECT * FROM {table} WHERE ORDER BY pk", MALFORMED + "Unexpected keyword"),
        (f"SELECT * FROM {table} WHERE pk = LIKE", MALFORMED + "Unexpected operator"),
        ("DELETE FROM", MALFORMED + "Expected identifier for simple path"),
        (f"SELECT * FROM {table} WHERE pk = 'a' AND attribute_exists(m.inner)", MALFORMED + "Invalid path dot component"),
        (f"UPDATE {table} SET m.inner = 1 WHERE pk = 'a' AND sk = 1", MALFORMED + "Invalid path dot component"),
        (f'SELECT * FROM "{table}" t WHERE pk = \'x\'', "Aliasing is not supported"),
        (f'SELECT * FROM "{table}" AS t WHERE pk = \'x\'', "Aliasing is not supported"),
        (f'UPDATE "{table}" t SET a = 3 WHERE pk = \'x\'', "Aliasing is not supported"),
        (f'DELETE FROM "{table}" t WHERE pk = \'x\'', "Aliasing is not supported"),
    ]
    for statement, message in cases:
        assert code_message(run, ddb=ddb, statement=statement) == ("ValidationException", message), statement
    put(ddb, table, "a", 1, m={"M": {"inner": {"N": "1"}}})
    items = run(ddb, f'SELECT m."inner" FROM {table} WHERE pk = \'a\' AND m."inner" = 1')["Items"]
    assert items == [{"inner": {"N": "1"}}]
    tx = [{"Statement": f"SELECT * FROM {table} WHERE pk = 'a' AND sk = 1"},
          {"Statement": f"SELECT * FROM {table} WHERE"}]
    assert code_message(ddb.execute_transaction, TransactStatements=tx) == (
        "ValidationException", f"Validation failed in TransactStatements[1]: {MALFORMED}Unexpected term")
    out = ddb.batch_execute_statement(Statements=[{"Statement": f"SELECT * FROM {table} WHERE"}])["Responses"]
    assert out == [{"Error": {"Code": "ValidationError", "Message": MALFORMED + "Unexpected term"}}]


def test_batch_and_transaction_selects_need_exactly_the_key(ddb, table, indexed):
    put(ddb, table, "a", 1, ss={"SS": ["x"]})
    extra = f"SELECT * FROM {table} WHERE pk = 'a' AND sk = 1 AND attribute_exists(ss)"
    assert code_message(ddb.execute_transaction, TransactStatements=[{"Statement": extra}]) == (
        "ValidationException", TRANSACTION_SELECT)
    out = ddb.batch_execute_statement(Statements=[
        {"Statement": extra},
        {"Statement": f"SELECT * FROM {table} WHERE pk = 'a'"},
        {"Statement": f'SELECT * FROM "{indexed}"."gsi2" WHERE gsi2pk = \'g\''},
    ])["Responses"]
    assert [r["Error"] for r in out] == [{"Code": "ValidationError", "Message": BATCH_SELECT}] * 3


# ---------------------------------------------------------------- DynamoDB's recorded answers (issue 21)
#
# Each as the dynamodb-conformance suite recorded it against DynamoDB (eu-west-2), where DynamoDB Local
# answers otherwise (it names the index after "does not have the specified index", words the GSI
# consistent read "Consistent read cannot be true when scanning a GSI", fetches an LSI's unprojected
# filter attributes, and checks a transaction's key rule before its RETURNING clause).

NO_SUCH_INDEX = ("ValidationException", "The table does not have the specified index")
GSI_CONSISTENT = ("ValidationException", "Strongly consistent read is not supported on Global Secondary Indexes")


def unprojected_filter(index: str, names: str) -> tuple:
    return ("ValidationException", "One or more parameter values were invalid: Secondary index "
            f"{index} does not project one or more filter attributes: [{names}]")


def test_a_batch_select_refused_before_it_runs_names_no_table(ddb, table, indexed):
    put(ddb, table, "a", 1, x={"N": "1"})
    out = ddb.batch_execute_statement(Statements=[
        {"Statement": f"SELECT * FROM {table} WHERE pk = 'a'"},
        {"Statement": f"SELECT * FROM {table} WHERE x = 1"},
        {"Statement": f"SELECT * FROM {table} WHERE pk = 'a' AND sk = 1 AND x = 1"},
        {"Statement": f'SELECT * FROM "{indexed}"."gsi2" WHERE pk = \'p\' AND sk = \'s\' AND gsi2pk = \'g\''},
        {"Statement": f"SELECT * FROM {table} WHERE pk = 'a' AND sk = 'one'"},
        {"Statement": f"SELECT x FROM {table} WHERE pk = 'a' AND sk = 1"},
    ])["Responses"]
    refused = {"Error": {"Code": "ValidationError", "Message": BATCH_SELECT}}
    assert out[:4] == [refused] * 4
    assert out[4] == {"Error": {"Code": "ValidationError",
                                "Message": "Key attribute's data type should match its data type in table's schema: "
                                           "Key sk"}}
    assert out[5] == {"TableName": table, "Item": {"x": {"N": "1"}}}


def test_a_failed_batch_member_carries_no_item(ddb, table):
    put(ddb, table, "a", 1, x={"N": "1"})
    put(ddb, table, "b", 1, x={"N": "2"})
    put(ddb, table, "c", 1)
    failed = {"TableName": table, "Error": {"Code": "ConditionalCheckFailed",
                                            "Message": "The conditional request failed"}}
    for setting in ("ALL_OLD", "NONE", None):
        options = {} if setting is None else {"ReturnValuesOnConditionCheckFailure": setting}
        out = ddb.batch_execute_statement(Statements=[
            {"Statement": f"UPDATE {table} SET y = 1 WHERE pk = 'a' AND sk = 1 AND x = 9", **options},
            {"Statement": f"DELETE FROM {table} WHERE pk = 'b' AND sk = 1 AND x = 9", **options},
            {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'c', 'sk': 1, 'x': 3}}", **options},
        ])["Responses"]
        assert out == [failed, failed, {"TableName": table, "Error": {
            "Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"}}], setting
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"] == {
        "pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"N": "1"}}
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "b"}, "sk": {"N": "1"}})["Item"]["x"] == {"N": "2"}
    assert "x" not in ddb.get_item(TableName=table, Key={"pk": {"S": "c"}, "sk": {"N": "1"}})["Item"]
    # ExecuteStatement still returns the item its condition failed on.
    err = error_of(run, ddb=ddb, statement=f"UPDATE {table} SET y = 1 WHERE pk = 'a' AND sk = 1 AND x = 9",
                   ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert err["Error"]["Code"] == "ConditionalCheckFailedException"
    assert err["Item"] == {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"N": "1"}}


def test_an_unknown_index_qualifier_is_named_no_further(ddb, indexed):
    for source in (f'"{indexed}"."nope"', f'"{indexed}"."{indexed}"'):
        for where in (" WHERE pk = 'p'", ""):
            assert code_message(run, ddb=ddb, statement=f"SELECT * FROM {source}{where}") == NO_SUCH_INDEX
    assert run(ddb, f'SELECT other FROM "{indexed}"."gsi2" WHERE gsi2pk = \'g\'')["Items"] == [{"other": {"S": "o"}}]


def test_a_consistent_read_of_a_global_index_in_dynamodbs_words(ddb, indexed):
    for where in (" WHERE gsi2pk = 'g'", ""):
        statement = f'SELECT other FROM "{indexed}"."gsi2"{where}'
        assert code_message(run, ddb=ddb, statement=statement, ConsistentRead=True) == GSI_CONSISTENT
        assert run(ddb, statement, ConsistentRead=False)["Items"] == [{"other": {"S": "o"}}]
    # A local index reads consistently.
    out = run(ddb, f'SELECT other FROM "{indexed}"."lsi2" WHERE pk = \'p\'', ConsistentRead=True)
    assert out["Items"] == [{"other": {"S": "o"}}]


def test_a_transaction_refuses_index_reads_before_the_key_rule(ddb, table, indexed):
    put(ddb, table, "a", 1)
    whole = f'SELECT * FROM "{indexed}" WHERE pk = \'p\' AND sk = \'s\''
    on_index = f'SELECT * FROM "{indexed}"."gsi2" WHERE gsi2pk = \'g\''
    on_lsi = f'SELECT * FROM "{indexed}"."lsi2" WHERE pk = \'p\' AND sk = \'s\''
    for statements, position in [([on_index], 0), ([whole, on_index], 1), ([whole, on_lsi], 1),
                                 ([f'SELECT * FROM "{indexed}"."nope" WHERE pk = \'p\''], 0),
                                 (['SELECT * FROM "no_such_table"."gsi2" WHERE gsi2pk = \'g\''], 0)]:
        tx = [{"Statement": s} for s in statements]
        assert code_message(ddb.execute_transaction, TransactStatements=tx) == (
            "ValidationException",
            f"Validation failed in TransactStatements[{position}]: Reads on indices are not supported within "
            "transactions."), statements
    # The same read of the table runs.
    out = ddb.execute_transaction(TransactStatements=[{"Statement": whole}])
    assert out["Responses"] == [{"Item": {
        "pk": {"S": "p"}, "sk": {"S": "s"}, "lsi2sk": {"S": "l"}, "gsi2pk": {"S": "g"}, "other": {"S": "o"},
        "data": {"S": "d"}, "alternate": {"S": "a"}, "mymap": {"M": {"k": {"S": "v"}}}}}]


def test_a_transaction_refuses_returning_before_the_key_rule(ddb, table):
    put(ddb, table, "a", 1, x={"N": "1"})
    put(ddb, table, "b", 1, x={"N": "2"})
    cases = [
        ([f"UPDATE {table} SET x = 5 WHERE pk = 'a' AND sk = 1 RETURNING ALL NEW *"], 0),
        ([f"UPDATE {table} SET x = 5 WHERE pk = 'a' RETURNING MODIFIED OLD *"], 0),
        ([f"DELETE FROM {table} WHERE pk = 'b' AND sk = 1",
          f"DELETE FROM {table} WHERE pk = 'a' AND sk = 1 RETURNING ALL OLD *"], 1),
        ([f"UPDATE {table} SET x = 5 WHERE pk = 'b' AND sk = 1",
          f"UPDATE {table} SET x = 6 WHERE pk = 'zz' RETURNING ALL NEW *"], 1),
    ]
    for statements, position in cases:
        tx = [{"Statement": s} for s in statements]
        assert code_message(ddb.execute_transaction, TransactStatements=tx) == (
            "ValidationException",
            f"Validation failed in TransactStatements[{position}]: RETURNING clause is not supported in "
            "ExecuteTransaction."), statements
    # Nothing ran: both items are as they were.
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"]["x"] == {"N": "1"}
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "b"}, "sk": {"N": "1"}})["Item"]["x"] == {"N": "2"}
    # Without the clause the same writes commit.
    ddb.execute_transaction(TransactStatements=[{"Statement": f"UPDATE {table} SET x = 5 WHERE pk = 'a' AND sk = 1"}])
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"]["x"] == {"N": "5"}


def test_a_keyed_index_read_refuses_a_filter_on_what_the_index_does_not_project(ddb, indexed):
    lsi = f'"{indexed}"."lsi2"'
    gsi = f'"{indexed}"."gsi2"'
    cases = [
        (f"SELECT pk FROM {lsi} WHERE pk = 'p' AND data = 'd'", unprojected_filter("lsi2", "data")),
        (f"SELECT * FROM {lsi} WHERE pk = 'p' AND data = 'd'", unprojected_filter("lsi2", "data")),
        (f"SELECT data FROM {lsi} WHERE pk = 'p' AND lsi2sk BETWEEN 'a' AND 'z' AND data = 'd'",
         unprojected_filter("lsi2", "data")),
        (f"SELECT pk FROM {gsi} WHERE gsi2pk = 'g' AND data IS MISSING", unprojected_filter("gsi2", "data")),
        (f"SELECT pk FROM {gsi} WHERE gsi2pk = 'g' AND NOT begins_with(data, 'x')", unprojected_filter("gsi2", "data")),
        (f"SELECT pk FROM {gsi} WHERE gsi2pk IN ['g', 'h'] AND data = 'd'", unprojected_filter("gsi2", "data")),
        (f"SELECT pk FROM {gsi} WHERE gsi2pk = 'g' AND mymap.k = 'v' AND (data = 'd' OR other = 'o')",
         unprojected_filter("gsi2", "data, mymap")),
    ]
    for statement, expected in cases:
        assert code_message(run, ddb=ddb, statement=statement) == expected, statement
    # A filter on what the index projects runs.
    assert run(ddb, f"SELECT pk FROM {lsi} WHERE pk = 'p' AND other = 'o'")["Items"] == [{"pk": {"S": "p"}}]
    assert run(ddb, f"SELECT pk FROM {gsi} WHERE gsi2pk = 'g' AND other = 'o'")["Items"] == [{"pk": {"S": "p"}}]
    # Query answers the same FilterExpression in the same words, whatever it selects.
    for select in ({}, {"Select": "ALL_ATTRIBUTES"}, {"Select": "ALL_PROJECTED_ATTRIBUTES"}):
        assert code_message(ddb.query, TableName=indexed, IndexName="lsi2", KeyConditionExpression="pk = :p",
                            FilterExpression="#d = :d", ExpressionAttributeNames={"#d": "data"},
                            ExpressionAttributeValues={":p": {"S": "p"}, ":d": {"S": "d"}},
                            **select) == unprojected_filter("lsi2", "data"), select


def test_an_unkeyed_index_read_filters_on_the_index_entry(ddb, indexed):
    """Without the index's partition key the read is a scan of the index, whose
    filter sees only what the index projects: an unprojected attribute is missing."""
    for source in (f'"{indexed}"."lsi2"', f'"{indexed}"."gsi2"'):
        assert run(ddb, f"SELECT pk FROM {source} WHERE data = 'd'")["Items"] == []
        assert run(ddb, f"SELECT pk FROM {source} WHERE data IS MISSING")["Items"] == [{"pk": {"S": "p"}}]
        assert run(ddb, f"SELECT pk FROM {source} WHERE NOT data = 'd'")["Items"] == [{"pk": {"S": "p"}}]
        # An unprojected filter inside an OR branch is no keyed read.
        statement = f"SELECT pk FROM {source} WHERE (pk = 'p' AND data = 'd') OR other = 'o'"
        assert run(ddb, statement)["Items"] == [{"pk": {"S": "p"}}]
    # An LSI fetches an unprojected attribute it returns, but its filter still sees the entry.
    assert run(ddb, f'SELECT data FROM "{indexed}"."lsi2" WHERE data = \'d\'')["Items"] == []
    assert run(ddb, f'SELECT data FROM "{indexed}"."lsi2" WHERE other = \'o\'')["Items"] == [{"data": {"S": "d"}}]
    # A Scan's FilterExpression sees the same entry.
    got = ddb.scan(TableName=indexed, IndexName="lsi2", FilterExpression="#d = :d",
                   ExpressionAttributeNames={"#d": "data"}, ExpressionAttributeValues={":d": {"S": "d"}})
    assert (got["Count"], got["ScannedCount"]) == (0, 1)


def test_a_batch_member_returns_what_its_returning_clause_asks_for(ddb, table):
    put(ddb, table, "a", 1, x={"N": "1"})
    put(ddb, table, "b", 1, x={"N": "2"}, y={"S": "old"})
    put(ddb, table, "c", 1, x={"N": "3"})
    out = ddb.batch_execute_statement(Statements=[
        {"Statement": f"DELETE FROM {table} WHERE pk = 'a' AND sk = 1 RETURNING ALL OLD *"},
        {"Statement": f"UPDATE {table} SET y = 'new' WHERE pk = 'b' AND sk = 1 RETURNING MODIFIED NEW *"},
        {"Statement": f"UPDATE {table} REMOVE nothing WHERE pk = 'c' AND sk = 1 RETURNING MODIFIED NEW *"},
        {"Statement": f"DELETE FROM {table} WHERE pk = 'gone' AND sk = 1 RETURNING ALL OLD *"},
        {"Statement": f"DELETE FROM {table} WHERE pk = 'c' AND sk = 2 RETURNING MODIFIED OLD *"},
        {"Statement": f"INSERT INTO {table} VALUE {{'pk': 'd', 'sk': 1}}"},
    ])["Responses"]
    assert out == [
        {"TableName": table, "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"N": "1"}}},
        {"TableName": table, "Item": {"y": {"S": "new"}}},
        {"TableName": table},
        {"TableName": table},
        {"Error": {"Code": "ValidationError", "Message": "Invalid returning clause: RETURNING MODIFIED OLD *. "
                                                         "Only RETURNING ALL OLD * is allowed in DELETE statements."}},
        {"TableName": table},
    ]
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "b"}, "sk": {"N": "1"}})["Item"]["y"] == {"S": "new"}


# ---------------------------------------------------------------- a write naming an index; a token of another read

# DynamoDB's words (recorded by the dynamodb-conformance suite; the INSERT one in
# full as DynamoDB Local 1.25 words it, of which the recordings assert the start).
DML_FROM = "FROM clause may only contain a single table name in data manipulation statements"
ON_INDEX = "This operation is not supported on an index"
TOKEN_MISMATCH = "NextToken does not match request"


def _qualified_writes(table: str) -> list:
    return [
        (f"INSERT INTO \"{table}\".\"gsi2\" VALUE {{'pk': 'w', 'sk': 'w'}}", DML_FROM),
        (f"INSERT INTO \"{table}\".\"nope\" VALUE {{'pk': 'w', 'sk': 'w'}}", DML_FROM),
        (f"INSERT INTO {table}.gsi2 VALUE {{'pk': 'w', 'sk': 'w'}}", DML_FROM),
        ("INSERT INTO \"no_such_table\".\"gsi2\" VALUE {'pk': 'w', 'sk': 'w'}", DML_FROM),
        (f"UPDATE \"{table}\".\"gsi2\" SET other = 'x' WHERE pk = 'p' AND sk = 's'", ON_INDEX),
        (f"UPDATE \"{table}\".\"lsi2\" REMOVE other WHERE pk = 'p' AND sk = 's' RETURNING ALL NEW *", ON_INDEX),
        (f"UPDATE \"{table}\".\"gsi2\" SET other = 'x' WHERE pk = 'p'", ON_INDEX),
        ("UPDATE \"no_such_table\".\"gsi2\" SET other = 'x' WHERE pk = 'p' AND sk = 's'", ON_INDEX),
        (f"FROM \"{table}\".\"gsi2\" WHERE pk = 'p' AND sk = 's' SET other = 'x'", ON_INDEX),
        (f"DELETE FROM \"{table}\".\"gsi2\" WHERE pk = 'p' AND sk = 's'", ON_INDEX),
        (f"DELETE FROM {table}.nope WHERE pk = 'p' AND sk = 's' RETURNING ALL OLD *", ON_INDEX),
        (f"DELETE FROM \"{table}\".\"gsi2\" WHERE pk = 'p' AND sk = 's' RETURNING ALL NEW *", ON_INDEX),
    ]


def _item(ddb, table):
    return ddb.get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "s"}}, ConsistentRead=True)["Item"]


def test_a_write_naming_an_index_is_refused(ddb, indexed):
    """An INSERT's qualifier is refused with the FROM clause rule, an UPDATE's or
    DELETE's as a write on an index, before the table (or index) is looked up;
    nothing is written, in each of the three operations."""
    before = _item(ddb, indexed)
    update = f"UPDATE {indexed} SET other = 'changed' WHERE pk = 'p' AND sk = 's'"
    for statement, message in _qualified_writes(indexed):
        assert code_message(run, ddb=ddb, statement=statement) == ("ValidationException", message), statement
        # A batch member carries its error; the other member runs.
        out = ddb.batch_execute_statement(Statements=[{"Statement": statement}, {"Statement": update}])["Responses"]
        assert out == [{"Error": {"Code": "ValidationError", "Message": message}}, {"TableName": indexed}], statement
        ddb.put_item(TableName=indexed, Item=before)
        # A transaction fails as a whole, naming the statement's place.
        assert code_message(ddb.execute_transaction, TransactStatements=[
            {"Statement": update}, {"Statement": statement}]) == (
            "ValidationException", f"Validation failed in TransactStatements[1]: {message}"), statement
        assert _item(ddb, indexed) == before, statement
    assert "Item" not in ddb.get_item(TableName=indexed, Key={"pk": {"S": "w"}, "sk": {"S": "w"}})
    # A qualified write that is not well formed is a syntax error first, as in DynamoDB Local.
    for statement in (f'UPDATE "{indexed}"."gsi2" SET', f'INSERT INTO "{indexed}"."gsi2" VALUE',
                      f'INSERT INTO "{indexed}"."gsi2"'):
        assert code_message(run, ddb=ddb, statement=statement) == ("ValidationException", MALFORMED + statement)
    # The FROM clause's other rules hold for writes too.
    assert code_message(run, ddb=ddb, statement=f"UPDATE \"{indexed}\".\"gsi2\".\"x\" SET other = 'x' "
                        "WHERE pk = 'p' AND sk = 's'") == (
        "ValidationException", "A path may contain at most 2 components in the FROM clause")
    assert code_message(run, ddb=ddb, statement=f"DELETE FROM \"{indexed}\".\"\" WHERE pk = 'p' AND sk = 's'") == (
        "ValidationException", "Path component cannot be an empty string")
    # The server still serves, and the unqualified write runs.
    run(ddb, update)
    assert _item(ddb, indexed)["other"] == {"S": "changed"}


def test_a_next_token_replayed_on_another_read_is_refused(ddb, indexed):
    """A NextToken resumes the statement (and Parameters) that returned it: on
    another index, the table, another table or another statement DynamoDB
    answers "NextToken does not match request"; Limit and ConsistentRead may change."""
    for n in range(3):
        ddb.put_item(TableName=indexed, Item={"pk": {"S": "q"}, "sk": {"S": f"s{n}"}, "lsi2sk": {"S": f"l{n}"},
                                              "gsi2pk": {"S": "h"}, "other": {"S": "o"}})
    other_table = unique_name()
    ddb.create_table(TableName=other_table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")])
    try:
        on_gsi = f"SELECT pk, sk FROM \"{indexed}\".\"gsi2\" WHERE gsi2pk = 'h'"
        on_lsi = f"SELECT pk, sk FROM \"{indexed}\".\"lsi2\" WHERE pk = 'q'"
        on_table = f"SELECT pk, sk FROM \"{indexed}\" WHERE pk = 'q'"
        on_other = f"SELECT pk, sk FROM \"{other_table}\" WHERE pk = 'q'"
        for first, replays in [
            (on_gsi, [on_lsi, on_table, f"SELECT pk, sk FROM \"{indexed}\".\"gsi2\""]),
            (on_lsi, [on_gsi, on_table]),
            (on_table, [on_gsi, on_lsi, on_other, f"SELECT * FROM \"{indexed}\" WHERE pk = 'q'"]),
        ]:
            token = run(ddb, first, Limit=1)["NextToken"]
            for replay in replays:
                assert code_message(run, ddb=ddb, statement=replay, NextToken=token, Limit=1) == (
                    "ValidationException", TOKEN_MISMATCH), (first, replay)
            # The statement that returned it resumes after the first item, with another Limit too.
            rest = run(ddb, first, NextToken=token, Limit=5)["Items"]
            assert [item["sk"]["S"] for item in rest] == ["s1", "s2"], first
        # Parameters are part of the statement a token resumes.
        with_param = f"SELECT pk, sk FROM \"{indexed}\" WHERE pk = ?"
        token = run(ddb, with_param, Parameters=[{"S": "q"}], Limit=1)["NextToken"]
        assert code_message(run, ddb=ddb, statement=with_param, Parameters=[{"S": "p"}], NextToken=token) == (
            "ValidationException", TOKEN_MISMATCH)
        out = run(ddb, with_param, Parameters=[{"S": "q"}], NextToken=token, ConsistentRead=True)
        assert [item["sk"]["S"] for item in out["Items"]] == ["s1", "s2"]
        # A token that is no token of Shoal's is still an invalid one.
        assert code_message(run, ddb=ddb, statement=on_table, NextToken="bogus") == (
            "ValidationException", "Invalid NextToken")
    finally:
        ddb.delete_table(TableName=other_table)
