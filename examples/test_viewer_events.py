"""Testing code that uses DynamoDB with Shoal, as an application's test suite would.

The application code below records what viewers of a video-streaming service
do and reads a user's latest events (the viewer-events workload).  It calls
plain ``boto3.client("dynamodb")``: inside a test, Shoal's ``shoal`` fixture or
``@mock_shoal`` decorator points boto3 at a Shoal server running in the test
process, so the code needs no endpoint of its own.

Create boto3 clients when they are used (or in a fixture), not when a module
is imported: a client made before the test started points at real AWS.
"""

from __future__ import annotations

import boto3

from shoal.testing import mock_shoal

# --------------------------------------------------------------------------
# The application code under test.

TABLE = "viewer_events"


def create_viewer_events_table() -> None:
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"},
                   {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )


def record_event(user_id: str, ts: int, event_type: str, content_id: str, position_s: str = "0.000") -> None:
    """Append one event; a second event of the user at the same millisecond is refused."""
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={"user_id": {"S": user_id}, "ts": {"N": str(ts)}, "event_type": {"S": event_type},
              "content_id": {"S": content_id}, "position_s": {"N": position_s}},
        ConditionExpression="attribute_not_exists(ts)",
    )


def latest_events(user_id: str, n: int) -> list[dict]:
    """The user's ``n`` latest events, newest first, as plain dicts."""
    answer = boto3.client("dynamodb").query(
        TableName=TABLE,
        KeyConditionExpression="user_id = :u",
        ExpressionAttributeValues={":u": {"S": user_id}},
        ScanIndexForward=False,
        Limit=n,
    )
    return [{"ts": int(item["ts"]["N"]), "event_type": item["event_type"]["S"],
             "content_id": item["content_id"]["S"]} for item in answer["Items"]]


# --------------------------------------------------------------------------
# Tests with the pytest fixtures: one server per session, no tables at the
# start of each test.

START = 1_700_000_000_000


def test_latest_events_newest_first(shoal):
    create_viewer_events_table()
    for offset, event_type in enumerate(["play", "heartbeat", "pause", "play", "stop"]):
        record_event("u00000001", START + offset * 1000, event_type, "c000042")

    latest = latest_events("u00000001", 3)

    assert [e["event_type"] for e in latest] == ["stop", "play", "pause"]
    assert [e["ts"] for e in latest] == [START + 4000, START + 3000, START + 2000]


def test_each_test_starts_without_tables(dynamodb):
    # The test above created viewer_events; whatever ran before, it is gone.
    assert dynamodb.list_tables()["TableNames"] == []
    create_viewer_events_table()
    assert dynamodb.list_tables()["TableNames"] == [TABLE]


def test_the_item_as_stored(shoal):
    create_viewer_events_table()
    record_event("u00000002", START, "seek", "c000007", position_s="61.250")

    table = shoal.resource().Table(TABLE)  # a boto3 resource, for a typed view
    item = table.get_item(Key={"user_id": "u00000002", "ts": START})["Item"]

    assert item["event_type"] == "seek"
    assert str(item["position_s"]) == "61.25"


# --------------------------------------------------------------------------
# The same with the decorator, as a suite written for moto's @mock_aws would
# have it after the switch: a fresh server for each test.


@mock_shoal
def test_events_of_other_users_are_not_returned():
    create_viewer_events_table()
    record_event("u00000001", START, "play", "c000001")
    record_event("u00000002", START + 1, "play", "c000002")

    assert [e["content_id"] for e in latest_events("u00000001", 20)] == ["c000001"]
    assert latest_events("u00000003", 20) == []


@mock_shoal
class TestRecordEvent:
    def setup_method(self):
        create_viewer_events_table()  # runs against this test's server too

    def test_a_duplicate_event_is_refused(self):
        record_event("u00000001", START, "play", "c000001")
        try:
            record_event("u00000001", START, "pause", "c000001")
        except boto3.client("dynamodb").exceptions.ConditionalCheckFailedException:
            pass
        else:
            raise AssertionError("the second event at the same millisecond was recorded")
        assert [e["event_type"] for e in latest_events("u00000001", 5)] == ["play"]

    def test_limit_bounds_the_answer(self):
        for offset in range(30):
            record_event("u00000001", START + offset, "heartbeat", "c000001")
        assert len(latest_events("u00000001", 20)) == 20
