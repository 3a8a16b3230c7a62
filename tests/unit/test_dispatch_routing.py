"""The dispatcher decides whether a request writes by what it does (issue 15,
point 4): a PartiQL request of SELECTs is answered at once, like GetItem; one
that writes waits for its group commit, like PutItem."""

from __future__ import annotations

import asyncio
import inspect

import orjson
import pytest

from shoal.server.dispatch import Dispatcher
from shoal.server.http import Request, Response
from shoal.storage.lmdb_engine import LmdbEngine


def call(dispatcher, operation: str, body: dict):
    headers = {"x-amz-target": "DynamoDB_20120810." + operation, "content-type": "application/x-amz-json-1.0"}
    return dispatcher(Request("POST", "/", headers, orjson.dumps(body), ("127.0.0.1", 1), False))


@pytest.fixture
def engine(tmp_path):
    eng = LmdbEngine(tmp_path / "db", sync=False)
    yield eng
    eng.close()


async def _answer(dispatcher, operation, body):
    """(whether it waited for a commit, the response)."""
    answer = call(dispatcher, operation, body)
    if inspect.isawaitable(answer):
        return True, await answer
    return False, answer


@pytest.mark.parametrize("operation, body, writes", [
    ("ExecuteStatement", {"Statement": "SELECT * FROM events WHERE pk = 'a'"}, False),
    ("ExecuteStatement", {"Statement": "SELECT * FROM events"}, False),
    ("ExecuteStatement", {"Statement": "INSERT INTO events VALUE {'pk': 'a'}"}, True),
    ("ExecuteStatement", {"Statement": "FROM events WHERE pk = 'a' SET x = 1"}, True),
    ("ExecuteStatement", {"Statement": "not a statement"}, False),  # fails without writing
    ("BatchExecuteStatement", {"Statements": [{"Statement": "SELECT * FROM events WHERE pk = 'a'"},
                                              {"Statement": "SELECT * FROM events WHERE pk = 'b'"}]}, False),
    ("BatchExecuteStatement", {"Statements": [{"Statement": "DELETE FROM events WHERE pk = 'a'"}]}, True),
    ("ExecuteTransaction", {"TransactStatements": [{"Statement": "SELECT * FROM events WHERE pk = 'a'"}]}, False),
    ("ExecuteTransaction", {"TransactStatements": [{"Statement": "DELETE FROM events WHERE pk = 'a'"}]}, True),
    ("GetItem", {"TableName": "events", "Key": {"pk": {"S": "a"}}}, False),
    ("PutItem", {"TableName": "events", "Item": {"pk": {"S": "a"}}}, True),
])
def test_reads_are_answered_at_once_and_writes_after_their_commit(engine, operation, body, writes):
    async def scenario():
        dispatcher = Dispatcher(engine)
        try:
            waited, created = await _answer(dispatcher, "CreateTable", {
                "TableName": "events", "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
            assert waited and created.status == 200
            return await _answer(dispatcher, operation, body)
        finally:
            dispatcher.close()

    waited, response = asyncio.run(scenario())
    assert waited is writes
    assert isinstance(response, Response) and response.status in (200, 400), response
