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


@pytest.mark.parametrize("target, request_body, error", [
    # The first item is wrong for DynamoDB, the second for the API model:
    # the model's error wins wherever it is, as the model is checked first.
    ("BatchWriteItem", lambda t: {"RequestItems": {t: [
        {"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"N": "abc"}}}},
        {"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"N": "1"}, "x": {"S": 5}}}}]}},
     {"__type": "com.amazon.coral.service#SerializationException",
      "Message": "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"}),
    ("PutItem", lambda t: {"TableName": t, "ConditionExpression": "attribute_exists(",
                           "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"B": "QR=="}}},
     {"__type": "com.amazon.coral.service#SerializationException",
      "Message": "'QR==' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"}),
    ("PutItem", lambda t: {"TableName": t, "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"SS": ["a", None]}}},
     {"__type": "com.amazon.coral.validate#ValidationException",
      "message": "One or more parameter values were invalid: An string set may not have a empty string as a member"}),
])
def test_the_models_errors_come_before_the_items(shoal, ddb, table, target, request_body, error):
    status, _, data = raw_post(shoal, json.dumps(request_body(table)).encode(), target=f"DynamoDB_20120810.{target}")
    assert status == 400
    assert json.loads(data) == error
    assert ddb.scan(TableName=table)["Count"] == 0
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
