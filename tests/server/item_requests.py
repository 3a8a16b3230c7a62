"""One of each item operation on a table, for tests that check a table
refuses (or serves) every one of them alike: a table whose KMS key cannot
be used, an archived table (``test_global_tables_kms``, ``test_kms_archival``,
``test_postgres_kms``)."""

from __future__ import annotations


def item_requests(client, name: str, key: str = "a", gsi: str | None = None) -> dict:
    """Calls by label: each item operation on table ``name`` (key attribute
    ``pk`` of type S, ``key`` its value in the reads and updates); with
    ``gsi``, a Query of that index on ``kind`` = "k" too."""
    item_key = {"pk": {"S": key}}
    kind = {"kind": {"S": "k"}} if gsi else {}
    calls = {
        "GetItem": lambda: client.get_item(TableName=name, Key=item_key),
        "GetItem consistent": lambda: client.get_item(TableName=name, Key=item_key, ConsistentRead=True),
        "PutItem": lambda: client.put_item(TableName=name, Item={"pk": {"S": "new"}, **kind}),
        "UpdateItem": lambda: client.update_item(TableName=name, Key=item_key, UpdateExpression="SET n = :n",
                                                 ExpressionAttributeValues={":n": {"N": "1"}}),
        "DeleteItem": lambda: client.delete_item(TableName=name, Key=item_key),
        "Query": lambda: client.query(TableName=name, KeyConditionExpression="pk = :p",
                                      ExpressionAttributeValues={":p": {"S": key}}),
        "Scan": lambda: client.scan(TableName=name),
        "BatchGetItem": lambda: client.batch_get_item(RequestItems={name: {"Keys": [item_key]}}),
        "BatchWriteItem": lambda: client.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": {
            "pk": {"S": "batch"}, **kind}}}]}),
        "ExecuteStatement": lambda: client.execute_statement(
            Statement=f'SELECT * FROM "{name}" WHERE pk = \'{key}\''),
    }
    if gsi:
        calls["Query on a GSI"] = lambda: client.query(TableName=name, IndexName=gsi, KeyConditionExpression="kind = :k",
                                                       ExpressionAttributeValues={":k": {"S": "k"}})
    return calls
