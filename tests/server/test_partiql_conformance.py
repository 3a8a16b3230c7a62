"""PartiQL answers settled by bench/conformance_partiql.py (Shoal against
DynamoDB Local, each difference decided by AWS's PartiQL documentation), and
BatchExecuteStatement's failed conditions in CloudWatch, through boto3 against
a real server."""

from __future__ import annotations

import datetime
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table, make_client, unique_name

UTC = datetime.timezone.utc


def error_of(call, **kwargs) -> dict:
    """The error of a refused call (its whole response kept in ``error_of.last``)."""
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error_of.last = info.value.response
    return info.value.response["Error"]


# ---------------------------------------------------------------- metrics


def _sum(cw, metric: str, dims: dict, expected: float, timeout: float = 15.0):
    """The metric's Sum over the last half hour once it reached ``expected``
    (or what it is at the timeout; None when nothing was recorded)."""
    deadline = time.monotonic() + timeout
    while True:
        now = datetime.datetime.now(UTC)
        points = cw.get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName=metric,
            Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
            StartTime=now - datetime.timedelta(minutes=30), EndTime=now + datetime.timedelta(minutes=5),
            Period=3600, Statistics=["Sum", "SampleCount"])["Datapoints"]
        point = points[0] if points else None
        if (point is not None and point["Sum"] >= expected) or time.monotonic() > deadline:
            return point
        time.sleep(0.2)


def test_batch_members_whose_condition_fails_count_in_their_tables_conditional_check_failed_requests(shoal):
    """A BatchExecuteStatement UPDATE or DELETE whose condition fails counts
    once in its own table's ConditionalCheckFailedRequests, as an
    ExecuteStatement's does (the Developer Guide's metrics page); the
    request succeeds, so nothing counts in UserErrors.  A duplicate INSERT
    is no condition of the statement's: not counted."""
    region = "ap-south-1"  # a region of its own: its tables' sums are this test's alone
    ddb, cw = make_client(shoal.url, region=region), make_client(shoal.url, "cloudwatch", region)
    first = create_table(ddb, range_key=None)
    second = create_table(ddb, range_key=None)
    for table in (first, second):
        for pk in ("a", "b", "c"):
            ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "v": {"N": "1"}})
    responses = ddb.batch_execute_statement(Statements=[
        {"Statement": f"UPDATE \"{first}\" SET w = 1 WHERE pk = 'missing'"},
        {"Statement": f"DELETE FROM \"{first}\" WHERE pk = 'a' AND v = 2"},
        {"Statement": f"UPDATE \"{second}\" SET v = 5 WHERE pk = 'a' AND v = 9"},
        {"Statement": f"INSERT INTO \"{second}\" VALUE {{'pk': 'b'}}"},
        {"Statement": f"UPDATE \"{second}\" SET w = 2 WHERE pk = 'c'"},
    ])["Responses"]
    assert [r.get("Error", {}).get("Code") for r in responses] == [
        "ConditionalCheckFailed", "ConditionalCheckFailed", "ConditionalCheckFailed", "DuplicateItem", None]
    failed = _sum(cw, "ConditionalCheckFailedRequests", {"TableName": first}, 2.0)
    assert (failed["Sum"], failed["SampleCount"]) == (2.0, 2)
    failed = _sum(cw, "ConditionalCheckFailedRequests", {"TableName": second}, 1.0)
    assert (failed["Sum"], failed["SampleCount"]) == (1.0, 1)
    assert _sum(cw, "UserErrors", {}, 1.0, timeout=0.0) is None
    for table in (first, second):  # the session's server is shared: leave its region as it was
        ddb.delete_table(TableName=table)


# ---------------------------------------------------------------- the sweep's fixes


@pytest.fixture
def keyed(ddb):
    """A table keyed (pk S, sk N) with a global index on g and a local one on l."""
    name = create_table(ddb, name=None)
    ddb.delete_table(TableName=name)
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in
                              (("pk", "S"), ("sk", "N"), ("g", "S"), ("l", "S"))],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        LocalSecondaryIndexes=[{"IndexName": "by_l", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                                   {"AttributeName": "l", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "ALL"}}])
    for sk in (1, 2):
        ddb.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"N": str(sk)}, "g": {"S": "G"},
                                           "m": {"M": {"x": {"N": "1"}}}, "n": {"M": {"x": {"N": "2"}}},
                                           "v": {"N": "5"}})
    yield name
    ddb.delete_table(TableName=name)


def statement_error(ddb, statement, **kwargs) -> tuple[str, str]:
    error = error_of(ddb.execute_statement, Statement=statement, **kwargs)
    return error["Code"], error["Message"]


KEY_PATH = "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: "


def test_select_paths_into_key_attributes_are_refused(ddb, keyed):
    """As in the Query or Scan a SELECT runs as: a WHERE or a projection
    reaching into a key attribute of the table or of an index is refused,
    the table's keys named first (DynamoDB Local answers so; Shoal found such
    paths missing), as in a write's condition."""
    t = f'"{keyed}"'
    cases = [
        (f"SELECT * FROM {t} WHERE pk.x = 'p'", "Key: pk"),
        (f"SELECT pk.x FROM {t} WHERE pk = 'p'", "Key: pk"),
        (f"SELECT * FROM {t} WHERE pk = 'p' AND sk[0] = 1", "Key: sk"),
        (f"SELECT g.x FROM {t} WHERE pk = 'p'", "IndexKey: g"),
        (f"SELECT * FROM {t} WHERE l[0] IS MISSING", "IndexKey: l"),
        (f"SELECT * FROM {t}.\"by_g\" WHERE g = 'G' AND l.a = 1", "IndexKey: l"),
    ]
    for statement, named in cases:
        assert statement_error(ddb, statement) == ("ValidationException", KEY_PATH + named), statement
    # a write's condition too; a single-item read (batch, transaction) finds such a path missing
    assert statement_error(ddb, f"DELETE FROM {t} WHERE pk = 'p' AND sk = 9 AND l[0] = 1") == (
        "ValidationException", KEY_PATH + "IndexKey: l")
    responses = ddb.batch_execute_statement(Statements=[
        {"Statement": f"SELECT g[0] FROM {t} WHERE pk = 'p' AND sk = 1"}])["Responses"]
    assert responses == [{"TableName": keyed, "Item": {}}]
    assert ddb.execute_transaction(TransactStatements=[
        {"Statement": f"SELECT sk.x FROM {t} WHERE pk = 'p' AND sk = 1"}])["Responses"] == [{"Item": {}}]
    # a plain path still reads
    assert ddb.execute_statement(Statement=f"SELECT m.x FROM {t} WHERE pk = 'p' AND sk = 1")["Items"] == [
        {"x": {"N": "1"}}]


def test_select_list_names_each_value_once(ddb, keyed):
    """Two paths of a SELECT list known by one name are refused before their
    overlap (``m.x, n.x`` both come back as ``x``: Shoal returned one of
    them); an overlap is worded as the statement's, not a ProjectionExpression's."""
    t = f'"{keyed}"'
    where = " WHERE pk = 'p' AND sk = 1"
    duplicate = "Duplicate identifiers in select clause: "
    assert statement_error(ddb, f"SELECT m.x, n.x FROM {t}" + where) == ("ValidationException", duplicate + "x")
    assert statement_error(ddb, f"SELECT v, v FROM {t}" + where) == ("ValidationException", duplicate + "v")
    assert statement_error(ddb, f"SELECT m.x, x FROM {t}" + where) == ("ValidationException", duplicate + "x")
    assert statement_error(ddb, f"SELECT m, m.x FROM {t}" + where) == (
        "ValidationException", "Two document paths overlap with each other; must remove or rewrite one of these "
                               "paths; path one: [m], path two: [m, x]")
    assert ddb.execute_statement(Statement=f"SELECT m.x, n FROM {t}" + where)["Items"] == [
        {"x": {"N": "1"}, "n": {"M": {"x": {"N": "2"}}}}]


def test_batch_reads_of_one_item_twice_are_refused(ddb, keyed):
    """As BatchGetItem's duplicate keys (DynamoDB Local refuses the batch),
    even when one of them could not run on its own."""
    t = f'"{keyed}"'
    error = error_of(ddb.batch_execute_statement, Statements=[
        {"Statement": f"SELECT v FROM {t} WHERE pk = 'p' AND sk = 1"},
        {"Statement": f"SELECT * FROM {t} WHERE pk = 'p'"},
        {"Statement": f"SELECT * FROM {t} WHERE pk = 'p' AND sk = 1.0", "ConsistentRead": True}])
    assert (error["Code"], error["Message"]) == ("ValidationException", "Provided list of item keys contains duplicates")


def test_writes_name_one_item(ddb, keyed):
    """An UPDATE or DELETE whose WHERE sets a key attribute to two values, or
    has no WHERE at all, names no single item (DynamoDB Local's words; the
    Developer Guide: the WHERE of an UPDATE or DELETE names one item).  Shoal
    answered ConditionalCheckFailed, and not well formed."""
    t = f'"{keyed}"'
    assert statement_error(ddb, f"UPDATE {t} SET v = 1 WHERE pk = 'p' AND sk = 1 AND sk = 2") == (
        "ValidationException", "Multiple conditions on same key sk. Only single item Update/Insert/Delete are supported")
    assert statement_error(ddb, f"DELETE FROM {t} WHERE pk = 'p' AND pk = 'q' AND sk = 1") == (
        "ValidationException", "Multiple conditions on same key pk. Only single item Update/Insert/Delete are supported")
    equality = "Where clause does not contain a mandatory equality on all key attributes"
    assert statement_error(ddb, f"UPDATE {t} SET v = 1") == ("ValidationException", equality)
    assert statement_error(ddb, f"DELETE FROM {t}") == ("ValidationException", equality)
    # the same value twice is one item
    ddb.execute_statement(Statement=f"UPDATE {t} SET v = 7 WHERE pk = 'p' AND sk = 1 AND sk = 1")
    assert ddb.get_item(TableName=keyed, Key={"pk": {"S": "p"}, "sk": {"N": "1"}})["Item"]["v"] == {"N": "7"}


def test_negative_zero_literals_are_refused(ddb, keyed):
    """``-0.0`` written in a statement is refused wherever a value is
    (DynamoDB Local: "Negative zero decimal is not supported"); the integer
    ``-0`` and a Parameter of -0.0 are zero."""
    t = f'"{keyed}"'
    message = "Negative zero decimal is not supported under key "
    assert statement_error(ddb, f"SELECT * FROM {t} WHERE v = -0.0") == ("ValidationException", message + "root")
    assert statement_error(ddb, f"UPDATE {t} SET v = [1, -0e0] WHERE pk = 'p' AND sk = 1") == (
        "ValidationException", message + "root[1]")
    assert statement_error(ddb, f"INSERT INTO {t} VALUE {{'pk': 'z', 'sk': 1, 'm': {{'x': -0.00}}}}") == (
        "ValidationException", message + "root.m.x")
    ddb.execute_statement(Statement=f"UPDATE {t} SET v = -0 WHERE pk = 'p' AND sk = 1")
    ddb.execute_statement(Statement=f"UPDATE {t} SET w = ? WHERE pk = 'p' AND sk = 1", Parameters=[{"N": "-0.0"}])
    item = ddb.get_item(TableName=keyed, Key={"pk": {"S": "p"}, "sk": {"N": "1"}})["Item"]
    assert (item["v"], item["w"]) == ({"N": "0"}, {"N": "0"})


def test_expression_faults_are_the_statements_own(ddb, keyed):
    """A fault of the update or projection a statement runs as is worded
    without the item write's envelope and expression kind ("1 validation
    error detected: Invalid UpdateExpression: "); in a transaction it names
    the statement's place, as DynamoDB Local words it; a batch member with
    such a fault names no table."""
    t = f'"{keyed}"'
    overlap = ("Two document paths overlap with each other; must remove or rewrite one of these paths; "
               "path one: [v], path two: [v]")
    statement = f"UPDATE {t} SET v = 1, v = 2 WHERE pk = 'p' AND sk = 1"
    assert statement_error(ddb, statement) == ("ValidationException", overlap)
    error = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"UPDATE {t} SET v = 1 WHERE pk = 'p' AND sk = 2"}, {"Statement": statement}])
    assert (error["Code"], error["Message"]) == ("ValidationException",
                                                 "Validation failed in TransactStatements[1]: " + overlap)
    responses = ddb.batch_execute_statement(Statements=[
        {"Statement": statement}, {"Statement": f"UPDATE {t} SET v = v + 1 WHERE pk = 'p' AND sk = 2"},
        {"Statement": f"UPDATE {t} SET v = v + 1 WHERE pk = 'p' AND sk = 3"}])["Responses"]
    assert responses == [{"Error": {"Code": "ValidationError", "Message": overlap}}, {"TableName": keyed},
                         {"Error": {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
                          "TableName": keyed}]
    # arithmetic that loses digits: DynamoDB's overflow (shoal.model.numbers._arith)
    assert statement_error(ddb, f"UPDATE {t} SET v = v + 1e50 WHERE pk = 'p' AND sk = 1") == (
        "ValidationException", "Number overflow. Attempting to store a number with magnitude larger than supported range")


def test_a_key_of_another_type_cancels_a_transaction(ddb, keyed):
    """As TransactWriteItems does: that statement's ValidationError, the
    others' None, in DynamoDB's words (recorded, eu-west-2, 2026-09-17,
    floci-io/floci's DynamoDbPartiQLEdgeCaseIntegrationTest)."""
    t = f'"{keyed}"'
    error = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"UPDATE {t} SET v = 1 WHERE pk = 'p' AND sk = 1"},
        {"Statement": f"UPDATE {t} SET v = 1 WHERE pk = 'p' AND sk = 'one'"}])
    assert error["Code"] == "TransactionCanceledException"
    reasons = error_of.last["CancellationReasons"]
    assert reasons == [{"Code": "None"}, {"Code": "ValidationError",
                                          "Message": "The provided key element does not match the schema"}]
    assert ddb.get_item(TableName=keyed, Key={"pk": {"S": "p"}, "sk": {"N": "1"}})["Item"]["v"] == {"N": "5"}


@pytest.mark.parametrize("statement, message", [
    ("INSERT INTO {t} VALUE ?", "Unsupported format in item expression. Please use struct format {{...}} to "
                                "express item values for insert statement."),
    ("INSERT INTO {t} VALUE {{'pk': 'z', 'sk': 1}} RETURNING ALL OLD *", "RETURNING is not supported in INSERT"),
    ("INSERT INTO {t} VALUE {{'pk': 'z', 'sk': 1, 'v': MISSING}}", "Unsupported data type: MISSING under key root.v"),
    ("UPDATE {t} SET v = MISSING WHERE pk = 'p' AND sk = 1", "MISSING must be compared using IS operator"),
    ("UPDATE {t} SET v = 1 WHERE pk = 'p' AND sk = 1 RETURNING ALL OLD v",
     "Expected '*' after ( MODIFIED | ALL ) ( NEW | OLD ) in RETURNING clause"),
    ("SELECT v AS w FROM {t}", "Aliasing is not supported"),
    ("SELECT DISTINCT v FROM {t}", "Unsupported token in expression: DISTINCT"),
    ("SELECT COUNT(*) FROM {t}", "Unexpected path component"),
    ("SELECT * FROM {t} WHERE v = 1 + 1", "Unsupported operator in Condition Expression. Operator: +"),
    ("SELECT * FROM {t} WHERE v - 1 = 1", "Unsupported operator in Condition Expression. Operator: -"),
    ("SELECT * FROM {t} WHERE v LIKE 'a%'", "Unsupported operator in Condition Expression. Operator: like"),
    ("SELECT * FROM {t} WHERE v IN ?", "IN operator must have a left hand argument of type Variable Reference "
                                       "and right hand argument of type Seq with at least one member"),
])
def test_statements_refused_for_a_named_reason(ddb, keyed, statement, message):
    """Where Shoal only echoed the statement as not well formed, DynamoDB
    Local names the reason: its words (without its position suffix)."""
    text = statement.format(t=f'"{keyed}"')
    parameters = {"Parameters": [{"S": "x"}]} if "?" in text else {}
    assert statement_error(ddb, text, **parameters) == ("ValidationException", message.format())


def test_faults_name_their_statement_in_order(ddb, keyed):
    """In a transaction a fault of a statement's text names its place too
    (a negative zero literal: Shoal named none), and statements are checked
    in order, a key of another type only cancelling once all are checked; a
    SELECT's key condition fault is worded as the statement's (Shoal said
    "Invalid KeyConditionExpression: ")."""
    t = f'"{keyed}"'
    error = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"UPDATE {t} SET v = 1 WHERE pk = 'p' AND sk = 1"},
        {"Statement": f"UPDATE {t} SET v = [-0.0] WHERE pk = 'p' AND sk = 2"}])
    assert (error["Code"], error["Message"]) == (
        "ValidationException", "Validation failed in TransactStatements[1]: "
                               "Negative zero decimal is not supported under key root[0]")
    error = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"UPDATE {t} SET v = 1 WHERE pk = 'p' AND sk = 'one'"},
        {"Statement": f"UPDATE {t} SET v = 1, v = 2 WHERE pk = 'p' AND sk = 2"}])
    assert (error["Code"], error["Message"]) == (
        "ValidationException", "Validation failed in TransactStatements[1]: Two document paths overlap with each "
                               "other; must remove or rewrite one of these paths; path one: [v], path two: [v]")
    assert statement_error(ddb, f"SELECT * FROM {t} WHERE pk = 'p' AND begins_with(sk, 1)") == (
        "ValidationException",
        "Incorrect operand type for operator or function; operator or function: begins_with, operand type: N")


def test_list_paths_come_back_under_their_last_name(ddb, hash_table):
    """A path through a list element comes back under its last name when its
    indexes keep their numbers in the projection (``l[0].y`` as ``y``: Shoal
    answered ``{"l[0]": {"M": {"y": ...}}}``); one whose index moves there
    keeps the shape DynamoDB Local gives it (shoal.partiql.shape)."""
    t = f'"{hash_table}"'
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "a"}, "l": {"L": [
        {"M": {"y": {"N": "1"}, "c": {"M": {"d": {"S": "D"}}}}}, {"M": {"y": {"N": "2"}}}]}})
    where = " WHERE pk = 'a'"

    def items(select):
        return ddb.execute_statement(Statement=select + f" FROM {t}" + where)["Items"]

    assert items("SELECT l[0].y") == [{"y": {"N": "1"}}]
    assert items('SELECT "l"[0]."c"."d"') == [{"d": {"S": "D"}}]
    assert items("SELECT l[0].c.d, pk") == [{"d": {"S": "D"}, "pk": {"S": "a"}}]
    assert items("SELECT l[0], l[1]") == [{"l[0]": {"M": {"y": {"N": "1"}, "c": {"M": {"d": {"S": "D"}}}}},
                                           "l[1]": {"M": {"y": {"N": "2"}}}}]
    assert items("SELECT l[1].y") == [{"l[1]": {"M": {"y": {"N": "2"}}}}]


def test_single_item_reads_keep_a_projections_nesting(ddb, hash_table):
    """A BatchExecuteStatement or ExecuteTransaction SELECT of one item
    returns its paths nested as a ProjectionExpression does (DynamoDB Local
    answers so; Shoal shaped them as ExecuteStatement's); two paths known by
    one name are refused there too, in a transaction with the statement's place."""
    t = f'"{hash_table}"'
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "a"}, "m": {"M": {"x": {"N": "1"}, "y": {"N": "2"}}},
                                             "l": {"L": [{"N": "1"}, {"N": "2"}]}})
    select = f"SELECT m.x, l[1] FROM {t} WHERE pk = 'a'"
    nested = {"m": {"M": {"x": {"N": "1"}}}, "l": {"L": [{"N": "2"}]}}
    assert ddb.batch_execute_statement(Statements=[{"Statement": select}])["Responses"] == [
        {"TableName": hash_table, "Item": nested}]
    assert ddb.execute_transaction(TransactStatements=[{"Statement": select}])["Responses"] == [{"Item": nested}]
    assert ddb.execute_statement(Statement=select)["Items"] == [{"x": {"N": "1"}, "l[1]": {"N": "2"}}]
    error = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"SELECT m.x, m.x FROM {t} WHERE pk = 'a'"}])
    assert (error["Code"], error["Message"]) == (
        "ValidationException", "Validation failed in TransactStatements[0]: Duplicate identifiers in select clause: x")


def test_a_keys_only_index_refuses_its_list_before_its_filter(ddb):
    """A SELECT of a global index naming what the index does not project is
    refused for its list first, in the Query's words, then for its filter
    (DynamoDB Local's order; Shoal named the filter first)."""
    name = unique_name("keys_only")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    t = f'"{name}"."by_g"'
    assert statement_error(ddb, f"SELECT g, a.y, b FROM {t} WHERE g = 'G' AND c = 1") == (
        "ValidationException", "One or more parameter values were invalid: Global secondary index by_g does not "
                               "project [a, b]")
    assert statement_error(ddb, f"SELECT g FROM {t} WHERE g = 'G' AND c = 1") == (
        "ValidationException", "One or more parameter values were invalid: Secondary index by_g does not project "
                               "one or more filter attributes: [c]")
    ddb.delete_table(TableName=name)


def test_a_transaction_write_naming_no_single_item_cancels(ddb, keyed):
    """Each write whose WHERE names no single item (a key attribute missing,
    given by IN, twice with two values, of another type) and each INSERT
    without its key cancels the transaction with its own ValidationError, the
    others None (DynamoDB's answer, recorded in eu-west-2, 2026-09-17,
    floci-io/floci's DynamoDbPartiQLEdgeCaseIntegrationTest; DynamoDB Local
    cancels with no reasons).  A SELECT's key of another type cancels a read
    transaction so too."""
    t = f'"{keyed}"'
    mismatch = {"Code": "ValidationError", "Message": "The provided key element does not match the schema"}
    before = ddb.get_item(TableName=keyed, Key={"pk": {"S": "p"}, "sk": {"N": "2"}})["Item"]
    error = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"UPDATE {t} SET v = 2 WHERE pk = 'p'"},
        {"Statement": f"UPDATE {t} SET v = 2 WHERE pk IN ['p'] AND sk = 1"},
        {"Statement": f"UPDATE {t} SET v = 2 WHERE pk = 'p' AND sk = 1 AND pk = 'q'"},
        {"Statement": f"UPDATE {t} SET v = 2 WHERE pk = 'p' AND sk = 'one'"},
        {"Statement": f"UPDATE {t} SET v = 2 WHERE pk = 'p' AND sk = 2"}])
    assert error["Code"] == "TransactionCanceledException"
    reasons = error_of.last["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["ValidationError"] * 4 + ["None"]
    assert reasons[0] == reasons[1] == reasons[3] == mismatch
    error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"INSERT INTO {t} VALUE {{'pk': 'new'}}"}, {"Statement": f"DELETE FROM {t} WHERE sk = 1"}])
    assert error_of.last["CancellationReasons"] == [
        {"Code": "ValidationError", "Message": "One or more parameter values were invalid: Missing the key sk in the item"},
        mismatch]
    error = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": f"SELECT * FROM {t} WHERE pk = 'p' AND sk = 'one'"},
        {"Statement": f"SELECT * FROM {t} WHERE pk = 'p' AND sk = 2"}])
    assert error["Code"] == "TransactionCanceledException"
    assert error_of.last["CancellationReasons"] == [mismatch, {"Code": "None"}]
    assert ddb.get_item(TableName=keyed, Key={"pk": {"S": "p"}, "sk": {"N": "2"}})["Item"] == before
    assert "Item" not in ddb.get_item(TableName=keyed, Key={"pk": {"S": "new"}, "sk": {"N": "1"}})
