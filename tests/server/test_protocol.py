"""The wire protocol: envelope, errors, bad input of every kind, and the
server still serving afterwards."""

from __future__ import annotations

import http.client
import json
import zlib

import pytest


def raw_post(shoal, body: bytes, target: str | None = "DynamoDB_20120810.ListTables",
             content_type: str = "application/x-amz-json-1.0", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", shoal.port, timeout=10)
    hdrs = {"Content-Type": content_type}
    if target is not None:
        hdrs["X-Amz-Target"] = target
    hdrs.update(headers or {})
    conn.request("POST", "/", body=body, headers=hdrs)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def assert_still_serving(ddb):
    assert "TableNames" in ddb.list_tables()


def test_health_check(shoal):
    conn = http.client.HTTPConnection("127.0.0.1", shoal.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200
    assert response.read().startswith(b"healthy: dynamodb.")


def test_response_headers_and_crc(shoal):
    status, headers, body = raw_post(shoal, b"{}")
    assert status == 200
    assert headers["x-amz-crc32"] == str(zlib.crc32(body))
    assert len(headers["x-amzn-RequestId"]) == 52
    assert headers["Content-Type"] == "application/x-amz-json-1.0"


@pytest.mark.parametrize("body", [b"{", b"not json", b"\xff\xfe{}", b'{"a": }', b"", b"[1,2"])
def test_malformed_json_is_a_serialization_exception(shoal, ddb, body):
    status, _, data = raw_post(shoal, body)
    assert status == 400
    assert json.loads(data)["__type"] == "com.amazon.coral.service#SerializationException"
    assert_still_serving(ddb)


@pytest.mark.parametrize("body", [b"null", b"[]", b"5", b'"x"', b"true"])
def test_non_object_body_is_rejected(shoal, ddb, body):
    status, _, data = raw_post(shoal, body, target="DynamoDB_20120810.GetItem")
    assert status == 400
    assert json.loads(data)["__type"].endswith(("SerializationException", "ValidationException"))
    assert_still_serving(ddb)


def test_unknown_operation(shoal):
    status, _, data = raw_post(shoal, b"{}", target="DynamoDB_20120810.DropEverything")
    assert status == 400
    assert json.loads(data) == {"__type": "com.amazon.coral.service#UnknownOperationException"}
    status, _, data = raw_post(shoal, b"{}", target=None)
    assert json.loads(data)["__type"] == "com.amazon.coral.service#UnknownOperationException"


def test_model_operation_not_yet_offered_names_itself(shoal):
    status, _, data = raw_post(shoal, b'{"BackupName": "nightly", "TableName": "events"}',
                               target="DynamoDB_20120810.CreateBackup")
    assert status == 400
    assert "CreateBackup" in json.loads(data)["message"]


def test_wrong_content_type(shoal):
    status, _, data = raw_post(shoal, b"{}", content_type="text/plain")
    assert status == 404
    assert data == b"<UnknownOperationException/>\n"


def test_null_where_object_expected(shoal, ddb, table):
    status, _, data = raw_post(shoal, json.dumps({"TableName": table, "Item": None}).encode(),
                               target="DynamoDB_20120810.PutItem")
    assert status == 400
    assert json.loads(data)["__type"].endswith("ValidationException")
    assert_still_serving(ddb)


def test_wrong_json_type(shoal, ddb):
    status, _, data = raw_post(shoal, b'{"TableName": 5}', target="DynamoDB_20120810.DescribeTable")
    assert status == 400
    assert json.loads(data)["__type"] == "com.amazon.coral.service#SerializationException"
    assert_still_serving(ddb)


def test_deeply_nested_item(shoal, ddb, table):
    deep = '{"L":[' * 5000 + '{"S":"x"}' + "]}" * 5000
    body = '{"TableName": "%s", "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "deep": %s}}' % (table, deep)
    status, _, data = raw_post(shoal, body.encode(), target="DynamoDB_20120810.PutItem")
    assert status == 400
    assert_still_serving(ddb)


def test_thousands_of_nested_parentheses(shoal, ddb, table):
    expression = "(" * 5000 + "attribute_exists(a)" + ")" * 5000
    body = json.dumps({"TableName": table, "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}},
                       "ConditionExpression": expression})
    status, _, data = raw_post(shoal, body.encode(), target="DynamoDB_20120810.PutItem")
    assert status == 400
    assert json.loads(data)["__type"].endswith("ValidationException")
    assert_still_serving(ddb)
