"""Many clients at once: exact counters and a single winner."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from tests.conftest import make_client


def test_sixteen_clients_incrementing_one_counter(shoal, table):
    key = {"pk": {"S": "title#c000042"}, "sk": {"N": "0"}}

    def bump(_):
        client = make_client(shoal.url)
        for _ in range(25):
            client.update_item(TableName=table, Key=key, UpdateExpression="ADD plays :one",
                               ExpressionAttributeValues={":one": {"N": "1"}})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(bump, range(16)))
    item = make_client(shoal.url).get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert item["plays"] == {"N": "400"}


def test_racing_conditional_puts_have_one_winner(shoal, table):
    def claim(n):
        client = make_client(shoal.url)
        try:
            client.put_item(TableName=table, Item={"pk": {"S": "lock"}, "sk": {"N": "1"}, "owner": {"N": str(n)}},
                            ConditionExpression="attribute_not_exists(pk)")
            return n
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
            return None

    with ThreadPoolExecutor(32) as pool:
        winners = [n for n in pool.map(claim, range(32)) if n is not None]
    assert len(winners) == 1
    item = make_client(shoal.url).get_item(TableName=table, Key={"pk": {"S": "lock"}, "sk": {"N": "1"}})["Item"]
    assert item["owner"] == {"N": str(winners[0])}
