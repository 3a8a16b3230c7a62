"""shoal.testing and its pytest plugin: Shoal inside a Python test process.

The context manager and the decorator are driven directly; the fixtures
through ``pytester``, which runs a sample test file in its own pytest session
with the plugin loaded from its entry point, as a user's suite would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import boto3
import pytest

from shoal.testing import ShoalServer, mock_shoal, shoal_server

pytest_plugins = ["pytester"]

ENDPOINT_VAR = "AWS_ENDPOINT_URL_DYNAMODB"


def make_table(ddb, name: str = "viewer_events", **extra) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST", **extra)


def put_event(ddb, user_id: str, ts: int, name: str = "viewer_events") -> None:
    ddb.put_item(TableName=name, Item={"user_id": {"S": user_id}, "ts": {"N": str(ts)},
                                       "event_type": {"S": "play"}, "content_id": {"S": "c000042"}})


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "shoal-server"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def clean_environment(monkeypatch):
    """No AWS settings from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


# -- the context manager ----------------------------------------------------------


def test_context_manager_serves_then_stops_cleanly(clean_environment):
    threads_before = server_threads()
    with shoal_server() as shoal:
        assert shoal.endpoint_url == f"http://127.0.0.1:{shoal.port}"
        assert os.path.isdir(shoal.data_dir)
        data_dir, port = shoal.data_dir, shoal.port
        make_table(shoal.client())
        put_event(shoal.client(), "u00000001", 1700000000000)
        table = shoal.resource().Table("viewer_events")
        assert table.get_item(Key={"user_id": "u00000001", "ts": 1700000000000})["Item"]["event_type"] == "play"
        assert len(server_threads()) == len(threads_before) + 1
        assert shoal.startup_s > 0  # reported, not asserted on: see the module docstring of shoal.testing
    assert server_threads() == threads_before
    assert not os.path.exists(data_dir)
    assert not shoal.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_plain_boto3_client_reaches_shoal(clean_environment):
    with shoal_server() as shoal:
        ddb = boto3.client("dynamodb")  # no endpoint, region or credentials given
        assert ddb.meta.endpoint_url == shoal.endpoint_url
        make_table(ddb)
        assert shoal.client().list_tables()["TableNames"] == ["viewer_events"]
        assert boto3.resource("dynamodb").Table("viewer_events").item_count == 0
        streams = boto3.client("dynamodbstreams")
        assert streams.meta.endpoint_url == shoal.endpoint_url
        assert streams.list_streams()["Streams"] == []
        ddb.close()
        streams.close()


def test_environment_is_restored(clean_environment, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    before = dict(os.environ)
    session_before = boto3.DEFAULT_SESSION
    with shoal_server() as shoal:
        assert os.environ[ENDPOINT_VAR] == shoal.endpoint_url
        assert os.environ["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == shoal.endpoint_url
        assert "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" not in os.environ  # it would hide the endpoint
        assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"  # kept: it was set
        assert os.environ["AWS_ACCESS_KEY_ID"] and os.environ["AWS_SECRET_ACCESS_KEY"]  # dummies: none were
        ddb = boto3.client("dynamodb")
        make_table(ddb)
        # The helper client uses the same region as plain clients, so both see the table.
        assert shoal.client().list_tables()["TableNames"] == ["viewer_events"]
        ddb.close()
    assert dict(os.environ) == before
    assert boto3.DEFAULT_SESSION is session_before


def test_credentials_in_the_environment_are_kept(clean_environment, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with shoal_server():
        assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIDEXAMPLE"
        assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
        ddb = boto3.client("dynamodb")
        assert ddb.list_tables()["TableNames"] == []
        ddb.close()
    assert "AWS_DEFAULT_REGION" not in os.environ


def test_credentials_are_resolved_afresh_in_each_block(clean_environment, monkeypatch):
    """boto3's default session caches credentials: one resolved inside a
    block must not outlive it, nor one resolved before it leak in."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDBEFORE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION.get_credentials().access_key == "AKIDBEFORE"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with shoal_server():
        inside = boto3.DEFAULT_SESSION.get_credentials().access_key
    assert inside != "AKIDBEFORE"
    assert boto3.DEFAULT_SESSION.get_credentials().access_key == "AKIDBEFORE"


def test_reset_deletes_every_table(clean_environment):
    with shoal_server() as shoal:
        ddb, ddb_eu = shoal.client(), shoal.client(region_name="eu-west-1")
        make_table(ddb, DeletionProtectionEnabled=True)
        make_table(ddb, "content_plays")
        make_table(ddb_eu)
        for ts in range(50):
            put_event(ddb, "u00000001", ts)
        # An index still being built: DeleteTable alone would refuse the table.
        ddb.update_table(
            TableName="viewer_events",
            AttributeDefinitions=[{"AttributeName": "content_id", "AttributeType": "S"},
                                  {"AttributeName": "ts", "AttributeType": "N"}],
            GlobalSecondaryIndexUpdates=[{"Create": {
                "IndexName": "by_content",
                "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                              {"AttributeName": "ts", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"}}}])
        token_request = dict(ClientRequestToken="same-token", TransactItems=[{"Put": {
            "TableName": "content_plays", "Item": {"user_id": {"S": "u1"}, "ts": {"N": "1"}}}}])
        ddb.transact_write_items(**token_request)

        shoal.reset()

        assert ddb.list_tables()["TableNames"] == []
        assert ddb_eu.list_tables()["TableNames"] == []
        make_table(ddb)
        make_table(ddb, "content_plays")
        assert ddb.scan(TableName="viewer_events", Select="COUNT")["Count"] == 0
        # The next test may reuse a transaction token with other items.
        token_request["TransactItems"][0]["Put"]["Item"]["ts"] = {"N": "2"}
        ddb.transact_write_items(**token_request)
        shoal.reset()
        shoal.reset()  # nothing left to delete: still fine


def test_no_threads_or_file_handles_left_behind(clean_environment):
    ShoalServer().start().stop()  # uvloop keeps one pipe per process from its first loop on
    threads, fds = threading.active_count(), open_fds()
    for _ in range(3):
        with ShoalServer() as server:
            server.client().list_tables()
    assert threading.active_count() == threads
    assert open_fds() == fds


def test_stop_twice_and_use_after_stop():
    server = ShoalServer().start()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        server.reset()
    with pytest.raises(RuntimeError):
        server.endpoint_url


# -- the decorator ------------------------------------------------------------------


def test_decorated_function_gets_a_fresh_server_each_call(clean_environment):
    seen = []

    @mock_shoal
    def create_and_list(name):
        ddb = boto3.client("dynamodb")
        seen.append(ddb.meta.endpoint_url)
        make_table(ddb, name)
        names = ddb.list_tables()["TableNames"]
        ddb.close()
        return names

    assert create_and_list.__name__ == "create_and_list"
    assert create_and_list("first_table") == ["first_table"]
    assert create_and_list("second_table") == ["second_table"]
    assert seen[0] != seen[1]
    assert ENDPOINT_VAR not in os.environ


def test_decorator_with_arguments_and_async_function(clean_environment):
    @mock_shoal(region="eu-west-1")
    async def region_inside():
        return os.environ["AWS_DEFAULT_REGION"], os.environ[ENDPOINT_VAR]

    region, endpoint = asyncio.run(region_inside())
    assert region == "eu-west-1" and endpoint.startswith("http://127.0.0.1:")
    assert ENDPOINT_VAR not in os.environ


def test_mock_shoal_as_context_manager_and_by_hand(clean_environment):
    with mock_shoal() as shoal:
        assert os.environ[ENDPOINT_VAR] == shoal.endpoint_url
    assert ENDPOINT_VAR not in os.environ

    mock = mock_shoal()
    shoal = mock.start()
    with pytest.raises(RuntimeError):
        mock.start()
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []
    mock.stop()
    mock.stop()
    assert not shoal.running
    assert ENDPOINT_VAR not in os.environ


def test_decorated_unittest_class(clean_environment):
    threads_before = server_threads()  # the session's server, if a test of this worker used the fixture

    @mock_shoal
    class ViewerEvents(unittest.TestCase):
        def setUp(self):
            self.ddb = boto3.client("dynamodb")
            self.addCleanup(self.ddb.close)
            make_table(self.ddb)  # on this test's server

        def test_one(self):
            put_event(self.ddb, "u00000001", 1)
            self.assertEqual(self.ddb.scan(TableName="viewer_events")["Count"], 1)

        def test_two(self):
            put_event(self.ddb, "u00000002", 2)
            self.assertEqual(self.ddb.scan(TableName="viewer_events")["Count"], 1)

        def tearDown(self):
            self.assertEqual(self.ddb.list_tables()["TableNames"], ["viewer_events"])

    result = unittest.TestResult()
    unittest.TestLoader().loadTestsFromTestCase(ViewerEvents).run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun == 2
    assert ENDPOINT_VAR not in os.environ
    assert server_threads() == threads_before


# -- the pytest plugin ----------------------------------------------------------------


SAMPLE_TESTS = textwrap.dedent("""
    import os

    import boto3

    from shoal.testing import mock_shoal


    def make_table(ddb):
        ddb.create_table(
            TableName="viewer_events",
            KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"},
                       {"AttributeName": "ts", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                                  {"AttributeName": "ts", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST")


    def test_first(shoal):
        ddb = boto3.client("dynamodb")
        assert ddb.meta.endpoint_url == shoal.endpoint_url
        assert ddb.list_tables()["TableNames"] == []
        make_table(ddb)
        ddb.put_item(TableName="viewer_events", Item={"user_id": {"S": "u1"}, "ts": {"N": "1"}})


    def test_second_sees_no_table_of_the_first(dynamodb, shoal):
        assert dynamodb.list_tables()["TableNames"] == []
        make_table(dynamodb)  # the same name again: the first test's table is gone
        assert dynamodb.scan(TableName="viewer_events")["Count"] == 0


    def test_one_server_per_session(shoal, shoal_session_server):
        assert shoal is shoal_session_server


    def test_environment_restored_after_fixture_tests():
        assert "AWS_ENDPOINT_URL_DYNAMODB" not in os.environ


    @mock_shoal
    class TestDecoratedClass:
        def setup_method(self, method):
            make_table(boto3.client("dynamodb"))

        def test_table_made_in_setup_method(self):
            assert boto3.client("dynamodb").list_tables()["TableNames"] == ["viewer_events"]

        def test_again(self):
            assert boto3.client("dynamodb").scan(TableName="viewer_events")["Count"] == 0
""")


def test_fixtures_through_the_pytest_plugin(pytester, clean_environment, monkeypatch):
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)  # the entry point is what is tested
    threads_before = server_threads()
    pytester.makepyfile(test_sample=SAMPLE_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    assert ENDPOINT_VAR not in os.environ
    assert server_threads() == threads_before  # the inner session stopped its server


def test_importing_the_plugin_starts_nothing():
    """Every pytest run of a project with Shoal installed loads the plugin."""
    code = ("import sys, threading, pytest, shoal.testing_plugin\n"
            "heavy = [m for m in ('boto3', 'asyncio', 'shoal.server.dispatch') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert threading.active_count() == 1\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_exports_reach_buckets_under_s3_dir(clean_environment):
    with shoal_server() as shoal:
        ddb = shoal.client()
        ddb.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        ddb.put_item(TableName="events", Item={"pk": {"S": "a"}})
        ddb.update_continuous_backups(TableName="events", PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
        os.makedirs(os.path.join(shoal.s3_dir, "bucket"))
        arn = ddb.export_table_to_point_in_time(
            TableArn="arn:aws:dynamodb:us-east-1:000000000000:table/events", S3Bucket="bucket",
        )["ExportDescription"]["ExportArn"]
        deadline = time.monotonic() + 30
        while (export := ddb.describe_export(ExportArn=arn)["ExportDescription"])["ExportStatus"] == "IN_PROGRESS":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (export["ExportStatus"], export["ItemCount"]) == ("COMPLETED", 1)
        assert os.path.isfile(os.path.join(shoal.s3_dir, "bucket", export["ExportManifest"]))
