"""The wire protocol: envelope, errors, bad input of every kind, and the
server still serving afterwards."""

from __future__ import annotations

import gzip
import http.client
import json
import os
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


def test_health_check_names_the_endpoint(shoal):
    conn = http.client.HTTPConnection("127.0.0.1", shoal.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == f"healthy: 127.0.0.1:{shoal.port}".encode()
    conn.request("GET", "/", headers={"Host": "dynamodb.eu-west-1.amazonaws.com"})
    assert conn.getresponse().read() == b"healthy: dynamodb.eu-west-1.amazonaws.com"
    conn.close()


def test_health_names_the_storage_and_its_state(shoal):
    conn = http.client.HTTPConnection("127.0.0.1", shoal.port, timeout=5)
    conn.request("GET", "/health")
    response = conn.getresponse()
    assert (response.status, response.getheader("Content-Type")) == (200, "application/json")
    assert response.read() == b'{"status":"ok","storage":"lmdb"}'
    conn.close()


def test_response_headers_and_crc(shoal):
    status, headers, body = raw_post(shoal, b"{}")
    assert status == 200
    assert headers["x-amz-crc32"] == str(zlib.crc32(body))
    assert len(headers["x-amzn-RequestId"]) == 52
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    assert headers["Server"] == "Server" and "Date" in headers
    status, headers, _ = raw_post(shoal, b"{}", target="DynamoDB_20120810.NoSuchThing")
    assert status == 400 and headers["Server"] == "Server"


_CORS = ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
         "Access-Control-Allow-Methods", "Access-Control-Allow-Headers")


def _request(shoal, method, headers, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", shoal.port, timeout=10)
    conn.request(method, "/", body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def test_cors(shoal, table):
    preflight = {"Origin": "http://example.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type, x-amz-target, authorization"}
    status, headers, body = _request(shoal, "OPTIONS", preflight)
    assert (status, body) == (200, b"")
    assert {h: headers.get(h) for h in _CORS} == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date",
        "Access-Control-Max-Age": "172800", "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "content-type, x-amz-target, authorization"}
    origin = {"Origin": "http://example.com", "Content-Type": "application/x-amz-json-1.0"}
    put = json.dumps({"TableName": table, "Item": {"pk": {"S": "cors"}, "sk": {"N": "1"}}}).encode()
    for method, extra, body in (("GET", {}, None), ("POST", {"X-Amz-Target": "DynamoDB_20120810.ListTables"}, b"{}"),
                                ("POST", {"X-Amz-Target": "DynamoDB_20120810.PutItem"}, put),  # a grouped write
                                ("POST", {"X-Amz-Target": "DynamoDB_20120810.NoSuchThing"}, b"{}")):
        status, headers, _ = _request(shoal, method, {**origin, **extra}, body)
        assert headers["Access-Control-Allow-Origin"] == "*", (method, extra)
        assert "Access-Control-Expose-Headers" in headers
        assert not any(h in headers for h in _CORS[2:])
    # Without an Origin header, no CORS headers at all.
    for method in ("OPTIONS", "GET", "POST"):
        _, headers, _ = _request(shoal, method, {"Content-Type": "application/x-amz-json-1.0"}, b"{}")
        assert not any(h in headers for h in _CORS)


def test_compressed_requests(shoal, ddb, table):
    def put(body: bytes, encoding: str):
        return raw_post(shoal, body, target="DynamoDB_20120810.PutItem", headers={"Content-Encoding": encoding})

    def item(n):
        return json.dumps({"TableName": table, "Item": {"pk": {"S": "gz"}, "sk": {"N": str(n)}}}).encode()

    assert put(gzip.compress(item(1)), "gzip")[0] == 200
    assert put(gzip.compress(item(2)[:10]) + gzip.compress(item(2)[10:]), "gzip")[0] == 200  # two members
    assert put(zlib.compress(item(3)), "deflate")[0] == 200
    got = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "gz"}})
    assert [i["sk"]["N"] for i in got["Items"]] == ["1", "2", "3"]
    # An unknown encoding or a body that does not decode: DynamoDB's 500, and nothing written.
    for body, encoding in ((item(4), "garbage"), (item(5), "gzip"), (gzip.compress(item(6))[:-1], "gzip"), (b"", "gzip")):
        status, _, data = put(body, encoding)
        assert status == 500 and json.loads(data)["__type"].endswith("#InternalServerError")
    got = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "gz"}})
    assert got["Count"] == 3
    assert_still_serving(ddb)


def test_compressed_responses(shoal, ddb, table):
    key = {"pk": {"S": "big"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "x": {"S": "x" * 5000}})
    get = json.dumps({"TableName": table, "Key": key}).encode()
    for accept, encoding in (("gzip", "gzip"), ("deflate", "deflate"), ("br, identity, deflate, gzip", "deflate"),
                             ("*, gzip;q=0.5", "deflate"), ("gzip;q=0", None), ("x-gzip", None), ("identity", None)):
        status, headers, data = raw_post(shoal, get, target="DynamoDB_20120810.GetItem",
                                         headers={"Accept-Encoding": accept})
        assert status == 200 and headers.get("Content-Encoding") == encoding, accept
        assert headers["x-amz-crc32"] == str(zlib.crc32(data))  # of the bytes sent, as the SDKs check
        plain = {"gzip": gzip.decompress, "deflate": zlib.decompress, None: bytes}[encoding](data)
        assert json.loads(plain)["Item"]["x"]["S"] == "x" * 5000
    # Small answers are sent as they are.
    status, headers, _ = raw_post(shoal, b"{}", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and "Content-Encoding" not in headers


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


def test_every_operation_of_the_model_is_offered(shoal):
    """No operation of botocore's DynamoDB model answers UnknownOperationException: each is routed
    (an empty request gets the model's complaint about its required members, or an answer)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("dynamodb")
    for operation in model.operation_names:
        status, _, data = raw_post(shoal, b"{}", target=f"DynamoDB_20120810.{operation}")
        kind = json.loads(data).get("__type", "") if data else ""
        assert not kind.endswith("UnknownOperationException"), (operation, status, data)
        assert status < 500, (operation, status, data)


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


def test_a_long_beyond_64_bits(shoal, ddb):
    # Stored whole, it once made CreateTable answer a 500 (orjson writes at most 64 bits).
    name = f"wide_{os.getpid()}"
    body = json.dumps({"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                       "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                       "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                       "WarmThroughput": {"ReadUnitsPerSecond": 2**64 + 12288}}).encode()
    status, _, data = raw_post(shoal, body, target="DynamoDB_20120810.CreateTable")
    assert status == 200, data
    assert json.loads(data)["TableDescription"]["WarmThroughput"]["ReadUnitsPerSecond"] == 12288
    ddb.delete_table(TableName=name)
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
