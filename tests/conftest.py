from __future__ import annotations

import itertools
import os
import time

import boto3
import pytest
from botocore.config import Config

from tests.shoal_process import ShoalProcess

_names = itertools.count()


def make_client(url: str, service: str = "dynamodb", region: str = "us-east-1"):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="AKIDSHOALTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


#: A PostgreSQL URL: the session's server is then two nodes over that database, and the clients of
#: the fixtures below send their requests to each in turn (tests/server/test_suite_over_postgres.py)
TEST_STORAGE = os.environ.get("SHOAL_TEST_STORAGE", "")


def alternate(client, urls: list):
    """``client`` sending each request to the next of ``urls`` (the same path and query), in turn."""
    if len(urls) < 2:
        return client
    turns = itertools.cycle(urls)

    def to_next(request, **_):
        base = client.meta.endpoint_url.rstrip("/")
        if request.url.startswith(base):
            request.url = next(turns).rstrip("/") + request.url[len(base):]

    client.meta.events.register_first("before-send", to_next)
    return client


@pytest.fixture(scope="session")
def shoal(tmp_path_factory):
    """One Shoal server shared by the server tests of a session (two nodes over
    ``SHOAL_TEST_STORAGE`` when set: ``shoal.urls``)."""
    if TEST_STORAGE:
        nodes = [ShoalProcess(tmp_path_factory.mktemp("shoal-node"), "--storage", TEST_STORAGE).start()
                 for _ in range(2)]
        nodes[0].urls = [node.url for node in nodes]
        yield nodes[0]
        for node in nodes:
            node.stop()
        return
    server = ShoalProcess(tmp_path_factory.mktemp("shoal-data")).start()
    server.urls = [server.url]
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ddb(shoal):
    return alternate(make_client(shoal.url), shoal.urls)


@pytest.fixture(scope="session")
def ddb_resource(shoal):
    resource = boto3.resource(
        "dynamodb", endpoint_url=shoal.url, region_name="us-east-1",
        aws_access_key_id="AKIDSHOALTEST", aws_secret_access_key="secret",
    )
    alternate(resource.meta.client, shoal.urls)
    return resource


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}_{os.getpid()}_{next(_names)}"


def wait_for(predicate, timeout: float = 15.0, what: str = "the condition"):
    """``predicate()``'s first true value, polled every 0.1 s; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def create_table(ddb, *, hash_key=("pk", "S"), range_key=("sk", "N"), name=None) -> str:
    name = name or unique_name()
    schema = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    attrs = [{"AttributeName": hash_key[0], "AttributeType": hash_key[1]}]
    if range_key:
        schema.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
        attrs.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
    ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attrs,
                     BillingMode="PAY_PER_REQUEST")
    return name


def create_content_index_table(ddb, prefix: str, projection: str = "ALL") -> str:
    """A table keyed by 'pk' with a GSI 'by_content' on 'content_id'."""
    name = unique_name(prefix)
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "content_id", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_content",
                                 "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": projection}}])
    return name


@pytest.fixture
def table(ddb):
    """A fresh table with a string partition key 'pk' and a number sort key 'sk'."""
    name = create_table(ddb)
    yield name
    ddb.delete_table(TableName=name)


@pytest.fixture
def hash_table(ddb):
    """A fresh table with only a string partition key 'pk'."""
    name = create_table(ddb, range_key=None)
    yield name
    ddb.delete_table(TableName=name)
