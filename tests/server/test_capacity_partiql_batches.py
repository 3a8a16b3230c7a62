"""BatchExecuteStatement on limited tables, served on the event loop,
through boto3 against a real server: each statement is admitted in turn,
counting what the batch's earlier statements consumed (issue 20: every
statement was admitted while the table's balance was positive, and the
batch charged only when it ended, so three 390 KB inserts went through on a
table of one write unit a second).  A statement refused answers, in its
Responses entry, the error DynamoDB gives a throttled statement
(BatchStatementError's ProvisionedThroughputExceeded, or an on-demand
table's ThrottlingError), naming no table; the others run.

Each table starts with 300 units of burst (an on-demand maximum's bucket,
one second's); an item of about 390 KB takes 381 write units, 96 read
units read strongly."""

from __future__ import annotations

import pytest

from tests.conftest import unique_name
from tests.server.test_capacity import INDEX_MESSAGE, TABLE_MESSAGE, make_client, provisioned
from tests.shoal_process import ShoalProcess

BIG = "x" * 390_000
REFUSED = "ProvisionedThroughputExceeded"


@pytest.fixture(scope="module")
def ddb(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("capacity-partiql-batches"), "--workers", "1").start()
    yield make_client(proc.url)
    proc.stop()


def _codes(answer: dict) -> list:
    return [response.get("Error", {}).get("Code", "ok") for response in answer["Responses"]]


def _inserts(table: str, count: int, **extra: str) -> list:
    values = "".join(f", '{name}': '{value}'" for name, value in extra.items())
    return [{"Statement": f"INSERT INTO \"{table}\" VALUE {{'pk': 'p', 'sk': ?, 'v': ?{values}}}",
             "Parameters": [{"N": str(n)}, {"S": BIG}]} for n in range(count)]


def _stored(ddb, table: str) -> list:
    items = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ProjectionExpression="sk",
                      ExpressionAttributeValues={":p": {"S": "p"}})["Items"]
    return [int(item["sk"]["N"]) for item in items]


def test_a_batch_of_inserts_is_admitted_statement_by_statement(ddb):
    table = provisioned(ddb, 1000, 1)
    answer = ddb.batch_execute_statement(Statements=_inserts(table, 3), ReturnConsumedCapacity="TOTAL")
    assert _codes(answer) == ["ok", REFUSED, REFUSED]
    assert answer["Responses"][1] == {"Error": {"Code": REFUSED, "Message": TABLE_MESSAGE}}
    assert answer["ConsumedCapacity"] == [{"TableName": table, "CapacityUnits": 381.0}]
    assert _stored(ddb, table) == [0]
    # The batch's 381 units were charged: the next batch is refused its first statement too
    again = ddb.batch_execute_statement(Statements=[{"Statement": f"INSERT INTO \"{table}\" VALUE {{'pk': 'q', 'sk': 1}}"}])
    assert _codes(again) == [REFUSED]


def test_a_batch_of_inserts_is_admitted_by_its_gsis_too(ddb):
    # The table has write units to spare, its GSI (ALL projected) one a second
    table = unique_name("cap")
    ddb.create_table(
        TableName=table, BillingMode="PROVISIONED",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 1000, "WriteCapacityUnits": 1000},
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"},
                                 "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}])
    ddb.get_waiter("table_exists").wait(TableName=table)
    answer = ddb.batch_execute_statement(Statements=_inserts(table, 2, g="g"))
    assert _codes(answer) == ["ok", REFUSED]
    assert answer["Responses"][1] == {"Error": {"Code": REFUSED, "Message": INDEX_MESSAGE}}
    assert _stored(ddb, table) == [0]


def test_a_batch_of_consistent_selects_is_admitted_statement_by_statement(ddb):
    table = provisioned(ddb, 1, 1000)
    for n in range(5):
        ddb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"N": str(n)}, "v": {"S": BIG}})
    selects = [{"Statement": f"SELECT sk FROM \"{table}\" WHERE pk = 'p' AND sk = {n}", "ConsistentRead": True}
               for n in range(5)]
    answer = ddb.batch_execute_statement(Statements=selects, ReturnConsumedCapacity="TOTAL")
    # 96 units each: the fourth is admitted on the 12 units left, the fifth refused
    assert _codes(answer) == ["ok"] * 4 + [REFUSED]
    assert [r.get("Item") for r in answer["Responses"][:4]] == [{"sk": {"N": str(n)}} for n in range(4)]
    assert answer["ConsumedCapacity"] == [{"TableName": table, "CapacityUnits": 384.0}]


def test_an_on_demand_maximum_refuses_a_statement_with_a_throttling_error(ddb):
    table = unique_name("cap")
    ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST", OnDemandThroughput={"MaxWriteRequestUnits": 1},
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}])
    ddb.get_waiter("table_exists").wait(TableName=table)
    answer = ddb.batch_execute_statement(Statements=_inserts(table, 2))
    assert _codes(answer) == ["ok", "ThrottlingError"]
    assert _stored(ddb, table) == [0]
