"""TransactWriteItems and TransactGetItems through boto3 against a real server."""

from __future__ import annotations

import random
import threading
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table, make_client

CANCELLED = "Transaction cancelled, please refer cancellation reasons for specific reasons "


@pytest.fixture
def accounts(ddb):
    """A second table, keyed by a string 'id' only."""
    name = create_table(ddb, hash_key=("id", "S"), range_key=None)
    yield name
    ddb.delete_table(TableName=name)


def failure(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response


def error_of(call, **kwargs):
    response = failure(call, **kwargs)
    err = response["Error"]
    return err["Code"], err["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def ev(user="u00000001", ts=1700000000000, **extra):
    item = {"pk": {"S": user}, "sk": {"N": str(ts)}, "event_type": {"S": "play"}}
    item.update(extra)
    return item


def key(user="u00000001", ts=1700000000000):
    return {"pk": {"S": user}, "sk": {"N": str(ts)}}


def acct(name):
    return {"id": {"S": name}}


def put(table, item, **extra):
    return {"Put": {"TableName": table, "Item": item, **extra}}


# ---------------------------------------------------------------- success


def test_write_across_two_tables_applies_every_action(ddb, table, accounts):
    ddb.put_item(TableName=accounts, Item={"id": {"S": "a1"}, "balance": {"N": "10"}})
    ddb.put_item(TableName=accounts, Item={"id": {"S": "a2"}})
    ddb.put_item(TableName=table, Item=ev(ts=2))
    out = ddb.transact_write_items(TransactItems=[
        put(table, ev(ts=1, position_s={"N": "1.500"})),
        {"Update": {"TableName": accounts, "Key": acct("a1"), "UpdateExpression": "ADD balance :d",
                    "ConditionExpression": "balance >= :min",
                    "ExpressionAttributeValues": {":d": {"N": "-3"}, ":min": {"N": "3"}}}},
        {"Delete": {"TableName": table, "Key": key(ts=2)}},
        {"ConditionCheck": {"TableName": accounts, "Key": acct("a2"), "ConditionExpression": "attribute_exists(id)"}},
    ])
    assert "ConsumedCapacity" not in out
    got = ddb.get_item(TableName=table, Key=key(ts=1))["Item"]
    assert got["position_s"] == {"N": "1.5"}
    assert "Item" not in ddb.get_item(TableName=table, Key=key(ts=2))
    assert ddb.get_item(TableName=accounts, Key=acct("a1"))["Item"]["balance"] == {"N": "7"}


def test_write_consumed_capacity_is_per_table_and_doubled(ddb, table, accounts):
    out = ddb.transact_write_items(
        TransactItems=[put(table, ev(ts=1)), put(table, ev(ts=2, blob={"S": "x" * 1500})),
                       put(accounts, acct("a"))],
        ReturnConsumedCapacity="TOTAL",
    )
    assert out["ConsumedCapacity"] == [
        {"TableName": table, "CapacityUnits": 6.0},  # 2 for a small item, 4 for a 2 KB one
        {"TableName": accounts, "CapacityUnits": 2.0},
    ]
    out = ddb.transact_write_items(
        TransactItems=[{"ConditionCheck": {"TableName": accounts, "Key": acct("a"),
                                           "ConditionExpression": "attribute_exists(id)"}}],
        ReturnConsumedCapacity="INDEXES",
    )
    assert out["ConsumedCapacity"] == [
        {"TableName": accounts, "CapacityUnits": 2.0, "Table": {"CapacityUnits": 2.0}}
    ]


def test_return_item_collection_metrics_without_indexes_returns_nothing(ddb, table):
    out = ddb.transact_write_items(TransactItems=[put(table, ev())], ReturnItemCollectionMetrics="SIZE")
    assert "ItemCollectionMetrics" not in out


def test_table_may_be_named_by_arn(ddb, table):
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    ddb.transact_write_items(TransactItems=[put(arn, ev())])
    got = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": arn, "Key": key()}}])
    assert got["Responses"][0]["Item"]["event_type"] == {"S": "play"}


# ---------------------------------------------------------------- cancellation


def test_failed_condition_cancels_everything_with_reasons_in_order(ddb, table, accounts):
    ddb.put_item(TableName=accounts, Item={"id": {"S": "a1"}, "balance": {"N": "5"}})
    ddb.put_item(TableName=accounts, Item={"id": {"S": "a2"}})
    response = failure(ddb.transact_write_items, TransactItems=[
        put(table, ev(ts=1)),
        {"ConditionCheck": {"TableName": accounts, "Key": acct("a1"), "ConditionExpression": "balance > :x",
                            "ExpressionAttributeValues": {":x": {"N": "100"}}}},
        {"Delete": {"TableName": accounts, "Key": acct("a2")}},
    ])
    assert response["Error"]["Code"] == "TransactionCanceledException"
    assert response["Error"]["Message"] == CANCELLED + "[None, ConditionalCheckFailed, None]"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["CancellationReasons"] == [
        {"Code": "None"},
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
        {"Code": "None"},
    ]
    assert "Item" not in ddb.get_item(TableName=table, Key=key(ts=1))
    assert "Item" in ddb.get_item(TableName=accounts, Key=acct("a2"))


def test_return_values_on_condition_check_failure_all_old(ddb, accounts):
    ddb.put_item(TableName=accounts, Item={"id": {"S": "a1"}, "balance": {"N": "5"}})
    response = failure(ddb.transact_write_items, TransactItems=[
        put(accounts, {"id": {"S": "a1"}}, ConditionExpression="attribute_not_exists(id)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD"),
        {"Delete": {"TableName": accounts, "Key": acct("ghost"), "ConditionExpression": "attribute_exists(id)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
    ])
    assert response["Error"]["Message"] == CANCELLED + "[ConditionalCheckFailed, ConditionalCheckFailed]"
    assert response["CancellationReasons"] == [
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed",
         "Item": {"id": {"S": "a1"}, "balance": {"N": "5"}}},
        # a missing item has no old image to return
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
    ]


def test_errors_that_depend_on_the_item_are_validation_error_reasons(ddb, table, accounts):
    ddb.put_item(TableName=table, Item=ev())
    response = failure(ddb.transact_write_items, TransactItems=[
        {"ConditionCheck": {"TableName": accounts, "Key": acct("nobody"), "ConditionExpression": "attribute_exists(id)"}},
        {"Update": {"TableName": table, "Key": key(), "UpdateExpression": "SET v = nothere + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Update": {"TableName": accounts, "Key": acct("k"), "UpdateExpression": "SET id = :x",
                    "ExpressionAttributeValues": {":x": {"S": "y"}}}},
        {"Update": {"TableName": table, "Key": key(ts=5), "UpdateExpression": "SET big = :b",
                    "ExpressionAttributeValues": {":b": {"S": "x" * 300_000}}}},
    ])
    assert response["Error"]["Message"] == (
        CANCELLED + "[ConditionalCheckFailed, ValidationError, ValidationError, None]"
    )
    assert response["CancellationReasons"][1:3] == [
        {"Code": "ValidationError",
         "Message": "The provided expression refers to an attribute that does not exist in the item"},
        {"Code": "ValidationError",
         "Message": "One or more parameter values were invalid: Cannot update attribute id. "
                    "This attribute is part of the key"},
    ]
    assert "Item" not in ddb.get_item(TableName=table, Key=key(ts=5))


def test_update_growing_an_item_past_400_kb_is_a_validation_error_reason(ddb, accounts):
    ddb.put_item(TableName=accounts, Item={"id": {"S": "big"}, "a": {"S": "x" * 300_000}})
    response = failure(ddb.transact_write_items, TransactItems=[
        {"Update": {"TableName": accounts, "Key": acct("big"), "UpdateExpression": "SET b = :b",
                    "ExpressionAttributeValues": {":b": {"S": "y" * 200_000}}}},
    ])
    assert response["CancellationReasons"] == [
        {"Code": "ValidationError", "Message": "Item size to update has exceeded the maximum allowed size"}
    ]


# ---------------------------------------------------------------- whole-request errors


@pytest.mark.parametrize("action, message", [
    ({}, "Invalid Request: TransactWriteRequest should contain Delete or Put or Update request"),
    ({"Put": {"TableName": "T", "Item": {"id": {"S": "a"}}},
      "Delete": {"TableName": "T", "Key": {"id": {"S": "a"}}}},
     "TransactItems can only contain one of Check, Put, Update or Delete"),
])
def test_each_action_is_exactly_one_kind(ddb, accounts, action, message):
    action = {kind: dict(spec, TableName=accounts) for kind, spec in action.items()}
    assert error_of(ddb.transact_write_items, TransactItems=[action]) == ("ValidationException", message, 400)


def test_two_actions_on_one_item(ddb, table):
    # "1E+0" is the same number as "1": the same item.
    code, message, status = error_of(ddb.transact_write_items, TransactItems=[
        put(table, ev(ts=1)),
        {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "u00000001"}, "sk": {"N": "1E+0"}},
                            "ConditionExpression": "attribute_exists(pk)"}},
    ])
    assert (code, message, status) == (
        "ValidationException", "Transaction request cannot include multiple operations on one item", 400)


def test_missing_table(ddb, table):
    code, message, status = error_of(ddb.transact_write_items, TransactItems=[
        put(table, ev()), put("no_such_table", ev())])
    assert (code, message, status) == ("ResourceNotFoundException", "Requested resource not found", 400)
    assert "Item" not in ddb.get_item(TableName=table, Key=key())


@pytest.mark.parametrize("action, message", [
    ({"ConditionCheck": {"Key": key(), "ConditionExpression": "v >"}},
     'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: ">"'),
    ({"ConditionCheck": {"Key": key(), "ConditionExpression": "attribute_exists(v)",
                         "ExpressionAttributeValues": {":x": {"N": "1"}}}},
     "Value provided in ExpressionAttributeValues unused in expressions: keys: {:x}"),
    ({"Delete": {"Key": key(), "ExpressionAttributeValues": {":x": {"N": "1"}}}},
     "ExpressionAttributeValues can only be specified when using expressions: ConditionExpression is null"),
    ({"Put": {"Item": ev(), "ExpressionAttributeNames": {"#a": "b"}}},
     "ExpressionAttributeNames can only be specified when using expressions"),
    ({"Update": {"Key": key(), "UpdateExpression": "SET v = v + :x", "ExpressionAttributeValues": {":x": {"S": "1"}}}},
     "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: +, operand type: S"),
    ({"Put": {"Item": ev(big={"S": "x" * 410_000})}}, "Item size has exceeded the maximum allowed size"),
])
def test_invalid_actions_fail_the_whole_request(ddb, table, action, message):
    (kind, spec), = action.items()
    items = [put(table, ev(ts=99)), {kind: dict(spec, TableName=table)}]
    assert error_of(ddb.transact_write_items, TransactItems=items) == ("ValidationException", message, 400)
    assert "Item" not in ddb.get_item(TableName=table, Key=key(ts=99))


@pytest.mark.parametrize("action, message", [
    ({"Delete": {"Key": {"pk": {"S": "a"}}}}, "The provided key element does not match the schema"),
    ({"Update": {"Key": {"pk": {"N": "1"}, "sk": {"N": "1"}}, "UpdateExpression": "SET v = :x",
                 "ExpressionAttributeValues": {":x": {"N": "1"}}}}, "The provided key element does not match the schema"),
    ({"Put": {"Item": {"pk": {"S": "a"}}}}, "One or more parameter values were invalid: Missing the key sk in the item"),
    ({"Put": {"Item": {"pk": {"N": "5"}, "sk": {"N": "1"}}}},
     "One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N"),
])
def test_a_key_that_does_not_fit_the_schema_cancels_the_transaction(ddb, table, action, message):
    # The action's reason says why; the others (even one whose condition would fail) are None.
    (kind, spec), = action.items()
    items = [{kind: dict(spec, TableName=table)}, put(table, ev(ts=98)),
             {"ConditionCheck": {"TableName": table, "Key": key(ts=97), "ConditionExpression": "attribute_exists(pk)"}}]
    with pytest.raises(ClientError) as info:
        ddb.transact_write_items(TransactItems=items)
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert info.value.response["CancellationReasons"] == [
        {"Code": "ValidationError", "Message": message}, {"Code": "None"}, {"Code": "None"}]
    assert "Item" not in ddb.get_item(TableName=table, Key=key(ts=98))


def test_payload_over_4_mb(ddb, accounts):
    items = [put(accounts, {"id": {"S": f"big{i:02}"}, "b": {"S": "x" * 390_000}}) for i in range(11)]
    code, message, _ = error_of(ddb.transact_write_items, TransactItems=items)
    assert code == "ValidationException"
    assert message == "Transaction payload size cannot exceed 4MB. Payload Size: 4290088"


def test_more_than_100_actions(ddb, accounts):
    items = [put(accounts, acct(str(i))) for i in range(101)]
    code, message, _ = error_of(ddb.transact_write_items, TransactItems=items)
    assert code == "ValidationException"
    assert message.endswith("failed to satisfy constraint: Member must have length less than or equal to 100")


# ---------------------------------------------------------------- ClientRequestToken


def bump(table, amount="1"):
    return [{"Update": {"TableName": table, "Key": acct("counter"), "UpdateExpression": "ADD n :d",
                        "ExpressionAttributeValues": {":d": {"N": amount}}}}]


def test_same_token_twice_applies_once(ddb, accounts):
    token = str(uuid.uuid4())
    first = ddb.transact_write_items(TransactItems=bump(accounts), ClientRequestToken=token,
                                     ReturnConsumedCapacity="TOTAL")
    assert first["ConsumedCapacity"] == [{"TableName": accounts, "CapacityUnits": 2.0}]
    again = ddb.transact_write_items(TransactItems=bump(accounts), ClientRequestToken=token,
                                     ReturnConsumedCapacity="TOTAL")
    # a replay only reads the item: transactional read units
    assert again["ConsumedCapacity"] == [{"TableName": accounts, "CapacityUnits": 2.0}]
    ddb.transact_write_items(TransactItems=bump(accounts), ClientRequestToken=token)
    assert ddb.get_item(TableName=accounts, Key=acct("counter"))["Item"]["n"] == {"N": "1"}


def test_same_token_with_another_request_is_a_mismatch(ddb, accounts):
    token = str(uuid.uuid4())
    ddb.transact_write_items(TransactItems=bump(accounts), ClientRequestToken=token)
    code, message, status = error_of(ddb.transact_write_items, TransactItems=bump(accounts, "2"),
                                      ClientRequestToken=token)
    assert (code, message, status) == (
        "IdempotentParameterMismatchException", "Request parameters do not match the cached response", 400)
    assert ddb.get_item(TableName=accounts, Key=acct("counter"))["Item"]["n"] == {"N": "1"}


def test_a_cancelled_request_does_not_consume_its_token(ddb, accounts):
    token = str(uuid.uuid4())
    guarded = [dict(bump(accounts)[0]["Update"], ConditionExpression="attribute_exists(id)")]
    items = [{"Update": guarded[0]}]
    assert failure(ddb.transact_write_items, TransactItems=items,
                   ClientRequestToken=token)["Error"]["Code"] == "TransactionCanceledException"
    ddb.put_item(TableName=accounts, Item={"id": {"S": "counter"}, "n": {"N": "10"}})
    ddb.transact_write_items(TransactItems=items, ClientRequestToken=token)
    assert ddb.get_item(TableName=accounts, Key=acct("counter"))["Item"]["n"] == {"N": "11"}


# ---------------------------------------------------------------- TransactGetItems


def test_get_items_in_order_with_missing_and_projected(ddb, table, accounts):
    ddb.put_item(TableName=table, Item=ev(position_s={"N": "3"}))
    ddb.put_item(TableName=accounts, Item={"id": {"S": "a1"}, "balance": {"N": "5"}})
    out = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": accounts, "Key": acct("a1")}},
        {"Get": {"TableName": table, "Key": key(ts=404)}},
        {"Get": {"TableName": table, "Key": key(), "ProjectionExpression": "#p, event_type",
                 "ExpressionAttributeNames": {"#p": "position_s"}}},
        {"Get": {"TableName": accounts, "Key": acct("a2")}},
    ], ReturnConsumedCapacity="TOTAL")
    assert out["Responses"] == [
        {"Item": {"id": {"S": "a1"}, "balance": {"N": "5"}}},
        {},
        {"Item": {"position_s": {"N": "3"}, "event_type": {"S": "play"}}},
        {},
    ]
    assert out["ConsumedCapacity"] == [
        {"TableName": accounts, "CapacityUnits": 4.0},
        {"TableName": table, "CapacityUnits": 4.0},
    ]


def test_get_projection_of_absent_attributes_is_an_empty_item(ddb, accounts):
    ddb.put_item(TableName=accounts, Item={"id": {"S": "a1"}})
    out = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": accounts, "Key": acct("a1"), "ProjectionExpression": "nothere"}}])
    assert out["Responses"] == [{"Item": {}}]


def test_get_response_over_4_mb(ddb, accounts):
    for i in range(11):
        ddb.put_item(TableName=accounts, Item={"id": {"S": f"big{i:02}"}, "b": {"S": "x" * 390_000}})
    gets = [{"Get": {"TableName": accounts, "Key": acct(f"big{i:02}")}} for i in range(11)]
    assert error_of(ddb.transact_get_items, TransactItems=gets) == (
        "ValidationException", "Payload in response is too large.4290088", 400)
    for get in gets:
        get["Get"]["ProjectionExpression"] = "id"
    out = ddb.transact_get_items(TransactItems=gets)
    assert out["Responses"][10] == {"Item": {"id": {"S": "big10"}}}


def test_get_errors(ddb, accounts):
    same = {"Get": {"TableName": accounts, "Key": acct("a1")}}
    assert error_of(ddb.transact_get_items, TransactItems=[same, same]) == (
        "ValidationException", "Transaction request cannot include multiple operations on one item", 400)
    assert error_of(ddb.transact_get_items, TransactItems=[{"Get": {"TableName": "no_such_table", "Key": acct("a")}}]) == (
        "ResourceNotFoundException", "Requested resource not found", 400)
    with pytest.raises(ClientError) as info:
        ddb.transact_get_items(TransactItems=[{"Get": {"TableName": accounts, "Key": acct("a1")}},
                                              {"Get": {"TableName": accounts, "Key": {"id": {"N": "1"}}}}])
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert info.value.response["CancellationReasons"] == [
        {"Code": "None"}, {"Code": "ValidationError", "Message": "The provided key element does not match the schema"}]
    assert error_of(ddb.transact_get_items, TransactItems=[
        {"Get": {"TableName": accounts, "Key": acct("a"), "ProjectionExpression": "v",
                 "ExpressionAttributeNames": {"#n": "x"}}}]) == (
        "ValidationException", "Value provided in ExpressionAttributeNames unused in expressions: keys: {#n}", 400)


# ---------------------------------------------------------------- concurrency


def test_concurrent_transfers_keep_the_total(shoal, accounts):
    ddb = make_client(shoal.url)
    names = [f"acct{i}" for i in range(10)]
    for name in names:
        ddb.put_item(TableName=accounts, Item={"id": {"S": name}, "balance": {"N": "100"}})
    total = 100 * len(names)
    done = threading.Event()
    seen_totals, errors, committed = [], [], []

    def transfer(seed):
        client, rng = make_client(shoal.url), random.Random(seed)
        for _ in range(30):
            src, dst = rng.sample(names, 2)
            amount = str(rng.randint(1, 60))
            try:
                client.transact_write_items(TransactItems=[
                    {"Update": {"TableName": accounts, "Key": acct(src), "UpdateExpression": "ADD balance :neg",
                                "ConditionExpression": "balance >= :amt",
                                "ExpressionAttributeValues": {":neg": {"N": "-" + amount}, ":amt": {"N": amount}}}},
                    {"Update": {"TableName": accounts, "Key": acct(dst), "UpdateExpression": "ADD balance :amt",
                                "ExpressionAttributeValues": {":amt": {"N": amount}}}},
                ])
                committed.append(amount)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    errors.append(exc)

    def audit():
        client = make_client(shoal.url)
        while not done.is_set():
            out = client.transact_get_items(TransactItems=[
                {"Get": {"TableName": accounts, "Key": acct(name)}} for name in names])
            balances = [int(r["Item"]["balance"]["N"]) for r in out["Responses"]]
            seen_totals.append(sum(balances))
            if min(balances) < 0:
                errors.append(AssertionError(f"negative balance {balances}"))

    readers = [threading.Thread(target=audit) for _ in range(4)]
    writers = [threading.Thread(target=transfer, args=(seed,)) for seed in range(8)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert not errors
    assert len(committed) > 100  # most transfers went through; some were refused
    assert seen_totals and set(seen_totals) == {total}
    final = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": accounts, "Key": acct(name)}} for name in names])
    assert sum(int(r["Item"]["balance"]["N"]) for r in final["Responses"]) == total


def test_index_write_units_are_reported_and_doubled(ddb):
    from tests.conftest import create_content_index_table

    name = create_content_index_table(ddb, "txgsi", "ALL")
    out = ddb.transact_write_items(
        TransactItems=[{"Put": {"TableName": name, "Item": {"pk": {"S": "a"}, "content_id": {"S": "c1"}}}}],
        ReturnConsumedCapacity="INDEXES")
    capacity = out["ConsumedCapacity"][0]
    assert capacity["Table"] == {"CapacityUnits": 2.0}
    assert capacity["GlobalSecondaryIndexes"] == {"by_content": {"CapacityUnits": 2.0}}
    assert capacity["CapacityUnits"] == 4.0
    ddb.delete_table(TableName=name)
