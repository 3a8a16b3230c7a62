"""A differential conformance sweep: the same requests to Shoal and to
DynamoDB Local, their answers compared.

Not a test (it needs Java and DynamoDB Local): a tool to find where Shoal and
a second implementation disagree, each difference then settled against
DynamoDB's documentation (DynamoDB Local is a second opinion, not the
authority: its ARNs, regions, a 500 for malformed JSON and some messages
differ from DynamoDB's).

Requests are sent as raw JSON (so that invalid ones reach the servers as
written, past any SDK's checks) over the item, query/scan, batch,
transaction, update-expression, condition-expression and PartiQL
surfaces, valid and invalid.  Before every request that could write, both
servers get the same seed items back, so that a write one server refused
and the other took cannot skew later cases.  For each case the status, the
error type (without its namespace) and message, or the result (Scan's items
sorted, capacity and volatile table fields dropped) are compared; after a
write both answered alike, the items the two servers then hold are compared
too.

Usage::

    python bench/conformance_sweep.py [--shoal URL] [--local URL] [--jar PATH]
                                      [--only SUBSTRING] [--json OUT]

Without ``--shoal`` a ``shoal serve`` is started on a temporary data
directory; without ``--local`` DynamoDB Local is started from ``--jar`` (or
the first DynamoDBLocal.jar found under /tmp or the npm cache) with
``-inMemory``.  Prints each difference and a summary; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import glob
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDSWEEP/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0")

HASH = "sweep_h"  # pk S
RANGE = "sweep_r"  # pk S, sk N; GSI gsi (g S, sk N), LSI lsi (pk, l S)
NUMS = "sweep_n"  # pk N, sk B
VARIED = "sweep_v"  # pk S, sk N: items of every type, for filter semantics and key order
ORDER_S = "sweep_o"  # pk S, sk S: string sort keys (UTF-8 byte order)

SEED = {
    HASH: [
        {"pk": {"S": "a"}, "n": {"N": "1"}, "s": {"S": "hello"}, "ss": {"SS": ["x", "y"]},
         "ns": {"NS": ["1", "2"]}, "l": {"L": [{"N": "1"}, {"S": "two"}, {"L": [{"N": "3"}]}]},
         "m": {"M": {"nested": {"S": "v"}, "deep": {"M": {"x": {"N": "5"}}}}}, "b": {"B": "AAEC"},
         "t": {"BOOL": True}, "z": {"NULL": True}, "status": {"S": "on"}},
        {"pk": {"S": "b"}, "n": {"N": "2"}},
        {"pk": {"S": "c"}, "n": {"N": "-3.5"}, "s": {"S": "h"}},
    ],
    RANGE: [
        {"pk": {"S": "p"}, "sk": {"N": str(i)}, "g": {"S": "G" + str(i % 2)}, "l": {"S": "L" + str(i)},
         "v": {"N": str(i * 10)}}
        for i in range(1, 6)
    ] + [{"pk": {"S": "q"}, "sk": {"N": "1"}, "v": {"S": "text"}}],
    NUMS: [{"pk": {"N": "1"}, "sk": {"B": "AQ=="}, "x": {"N": "1"}}]
    + [{"pk": {"N": "7"}, "sk": {"B": b}} for b in ("AA==", "/w==", "gA==", "fw==", "AAA=", "AQI=", "AP8=")],
    VARIED: [{"pk": {"S": "v"}, "sk": {"N": n}, "x": x}
             for n, x in zip(["-1e125", "-10", "-1.5", "-0.001", "0", "1e-130", "0.5", "2", "10", "99.99", "1e3",
                              "12345678901234567890123456789012345678", "1E+125", "3", "4", "5", "6", "7", "8", "9"],
                             [{"S": "abc"}, {"S": "ABC"}, {"S": ""}, {"S": "ä"}, {"N": "5"}, {"N": "-5"}, {"B": "AQ=="},
                              {"BOOL": True}, {"BOOL": False}, {"NULL": True}, {"SS": ["a", "b"]}, {"NS": ["1", "5"]},
                              {"BS": ["AQ=="]}, {"L": [{"S": "a"}, {"N": "5"}]}, {"L": []}, {"M": {"a": {"S": "abc"}}},
                              {"M": {}}, {"S": "ab"}, {"S": "b"}, {"N": "10"}])]
    + [{"pk": {"S": "v"}, "sk": {"N": "100"}}],
    ORDER_S: [{"pk": {"S": "o"}, "sk": {"S": t}} for t in ("a", "B", "ä", "z", "é", "aa", "a b", "😀", "ﬀ", "Z", "0", "~")],
}

TABLES = [
    {"TableName": HASH, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
     "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": RANGE,
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"},
                              {"AttributeName": "l", "AttributeType": "S"}],
     "GlobalSecondaryIndexes": [{"IndexName": "gsi",
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                               {"AttributeName": "sk", "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
     "LocalSecondaryIndexes": [{"IndexName": "lsi",
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "l", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "KEYS_ONLY"}}],
     "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": NUMS,
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "N"},
                              {"AttributeName": "sk", "AttributeType": "B"}],
     "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": VARIED,
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
     "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": ORDER_S,
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
     "BillingMode": "PAY_PER_REQUEST"},
]

# Idempotency tokens live 10 minutes in DynamoDB (longer in DynamoDB Local):
# each run uses its own.
RUN_TOKEN = f"sweep-{os.getpid()}-{int(time.time())}"

READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "DescribeTable"}


# -- the cases --------------------------------------------------------------------------


def cases() -> list[tuple[str, str, dict]]:
    """(name, operation, request) for every request of the sweep."""
    out: list[tuple[str, str, dict]] = []

    def add(name: str, op: str, body: dict) -> None:
        out.append((name, op, body))

    key_a = {"pk": {"S": "a"}}
    key_p1 = {"pk": {"S": "p"}, "sk": {"N": "1"}}

    # Items: parameters and keys.
    add("get/ok", "GetItem", {"TableName": HASH, "Key": key_a})
    add("get/missing item", "GetItem", {"TableName": HASH, "Key": {"pk": {"S": "nope"}}})
    add("get/no table name", "GetItem", {"Key": key_a})
    add("get/no key", "GetItem", {"TableName": HASH})
    add("get/no such table", "GetItem", {"TableName": "sweep_none", "Key": key_a})
    add("get/bad table name", "GetItem", {"TableName": "a!", "Key": key_a})
    add("get/short table name", "GetItem", {"TableName": "ab", "Key": key_a})
    add("get/key wrong type", "GetItem", {"TableName": HASH, "Key": {"pk": {"N": "1"}}})
    add("get/key extra attribute", "GetItem", {"TableName": HASH, "Key": {"pk": {"S": "a"}, "x": {"S": "1"}}})
    add("get/key other name", "GetItem", {"TableName": HASH, "Key": {"id": {"S": "a"}}})
    add("get/key empty string", "GetItem", {"TableName": HASH, "Key": {"pk": {"S": ""}}})
    add("get/range key missing", "GetItem", {"TableName": RANGE, "Key": {"pk": {"S": "p"}}})
    add("get/range key wrong type", "GetItem", {"TableName": RANGE, "Key": {"pk": {"S": "p"}, "sk": {"S": "1"}}})
    add("get/projection", "GetItem", {"TableName": HASH, "Key": key_a,
                                       "ProjectionExpression": "m.nested, l[1], l[2][0], ss"})
    add("get/projection overlap", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "m, m.nested"})
    add("get/projection reserved", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "status"})
    add("get/projection names", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "#s",
                                             "ExpressionAttributeNames": {"#s": "status"}})
    add("get/projection unused name", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "n",
                                                   "ExpressionAttributeNames": {"#s": "status"}})
    add("get/projection undefined name", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "#x"})
    add("get/projection syntax", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "a,,b"})
    add("get/projection empty", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": ""})
    add("get/attributes to get + projection", "GetItem", {"TableName": HASH, "Key": key_a, "AttributesToGet": ["n"],
                                                           "ProjectionExpression": "n"})
    add("get/attributes to get duplicate", "GetItem", {"TableName": HASH, "Key": key_a, "AttributesToGet": ["n", "n"]})
    add("get/consistent read string", "GetItem", {"TableName": HASH, "Key": key_a, "ConsistentRead": "yes"})
    add("get/numbers key", "GetItem", {"TableName": NUMS, "Key": {"pk": {"N": "1.0"}, "sk": {"B": "AQ=="}}})
    add("get/key as list", "GetItem", {"TableName": HASH, "Key": [{"pk": {"S": "a"}}]})
    add("get/return consumed capacity bad", "GetItem", {"TableName": HASH, "Key": key_a,
                                                         "ReturnConsumedCapacity": "ALL"})

    # Members a structure does not have are ignored (GetItem, KeysAndAttributes
    # and Get take no ExpressionAttributeValues).
    values_one = {":v": {"S": "x"}}
    add("get/values without expression", "GetItem", {"TableName": HASH, "Key": key_a,
                                                      "ExpressionAttributeValues": values_one})
    add("get/values with projection", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "n",
                                                   "ExpressionAttributeValues": values_one})
    add("get/unknown member", "GetItem", {"TableName": HASH, "Key": key_a, "Bogus": 1})
    add("batch get/values", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [key_a], "ProjectionExpression": "n",
                                                                      "ExpressionAttributeValues": values_one}}})
    add("transact get/values", "TransactGetItems", {"TransactItems": [{"Get": {
        "TableName": HASH, "Key": key_a, "ProjectionExpression": "n", "ExpressionAttributeValues": values_one}}]})
    add("transact write/legacy member ignored", "TransactWriteItems", {"TransactItems": [{"Put": {
        "TableName": HASH, "Item": {"pk": {"S": "t1"}}, "Expected": {"n": {"Exists": False}}}}]})

    # Items: attribute values (PutItem), numbers, sets, sizes.
    numbers = ["0", "-0", "1e125", "9.9999999999999999999999999999999999999E+125", "1e126", "1e-130", "1e-131",
               "12345678901234567890123456789012345678", "123456789012345678901234567890123456789",
               "0.000000000000000000000000000000000000001", "1E+2", "1.", ".5", "+1", "-", "", " 1", "1 ",
               "0x10", "NaN", "Infinity", "1e", "00012", "1_000", "-1.50E-3"]
    for number in numbers:
        add(f"put/number {number!r}", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "num"}, "x": {"N": number}},
                                                 "ReturnValues": "ALL_OLD"})
        add(f"put+get/number {number!r}", "GetItem", {"TableName": HASH, "Key": {"pk": {"S": "num"}}})
    add("put/number as json number", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "v"}, "x": {"N": 5}}})
    add("put/number key", "PutItem", {"TableName": NUMS, "Item": {"pk": {"N": "1e126"}, "sk": {"B": "AQ=="}}})
    values = {
        "empty SS": {"SS": []}, "empty NS": {"NS": []}, "empty BS": {"BS": []},
        "duplicate SS": {"SS": ["a", "a"]}, "duplicate NS": {"NS": ["1", "1.0"]}, "duplicate BS": {"BS": ["AQ==", "AQ=="]},
        "NS bad number": {"NS": ["1", "x"]}, "SS with empty string": {"SS": ["", "a"]},
        "empty string": {"S": ""}, "empty binary": {"B": ""}, "bad base64": {"B": "!!!"},
        "BOOL string": {"BOOL": "true"}, "NULL false": {"NULL": False}, "NULL string": {"NULL": "true"},
        "no type": {}, "two types": {"S": "a", "N": "1"}, "unknown type": {"X": "a"},
        "S as number": {"S": 1}, "L not list": {"L": {"S": "a"}}, "M not map": {"M": []},
        "M empty": {"M": {}}, "L empty": {"L": []}, "null value": None, "M with empty name": {"M": {"": {"S": "a"}}},
        "nested empty set": {"L": [{"SS": []}]}, "lowercase type": {"s": "a"},
    }
    for label, value in values.items():
        add(f"put/value {label}", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "val"}, "x": value}})
    add("put/empty attribute name", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "v"}, "": {"S": "a"}}})
    add("put/key empty string", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": ""}}})
    add("put/key empty binary", "PutItem", {"TableName": NUMS, "Item": {"pk": {"N": "1"}, "sk": {"B": ""}}})
    add("put/key missing", "PutItem", {"TableName": HASH, "Item": {"x": {"S": "a"}}})
    add("put/key wrong type", "PutItem", {"TableName": HASH, "Item": {"pk": {"B": "AQ=="}}})
    add("put/key is a set", "PutItem", {"TableName": HASH, "Item": {"pk": {"SS": ["a"]}}})
    add("put/index key wrong type", "PutItem", {"TableName": RANGE, "Item": {"pk": {"S": "p"}, "sk": {"N": "9"},
                                                                          "g": {"N": "1"}}})
    add("put/index key empty", "PutItem", {"TableName": RANGE, "Item": {"pk": {"S": "p"}, "sk": {"N": "9"},
                                                                     "g": {"S": ""}}})
    add("put/partition key 2048", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "k" * 2048}}})
    add("put/partition key 2049", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "k" * 2049}}})
    add("put/sort key 1024", "PutItem", {"TableName": NUMS, "Item": {"pk": {"N": "2"},
                                                                   "sk": {"B": base64.b64encode(b"k" * 1024).decode()}}})
    add("put/sort key 1025", "PutItem", {"TableName": NUMS, "Item": {"pk": {"N": "2"},
                                                                   "sk": {"B": base64.b64encode(b"k" * 1025).decode()}}})
    add("put/item 400KB", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "big"}, "x": {"S": "x" * (400 * 1024 - 3)}}})
    add("put/item over 400KB", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "big"},
                                                                       "x": {"S": "x" * (400 * 1024)}}})
    deep: dict = {"S": "leaf"}
    for _ in range(32):
        deep = {"M": {"d": deep}}
    add("put/nesting 32", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "deep"}, "x": deep}})
    add("put/nesting 33", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "deep"}, "x": {"L": [deep]}}})
    add("put/return values UPDATED_NEW", "PutItem", {"TableName": HASH, "Item": key_a, "ReturnValues": "UPDATED_NEW"})
    add("put/return values bad", "PutItem", {"TableName": HASH, "Item": key_a, "ReturnValues": "EVERYTHING"})
    add("put/return values on condition failure", "PutItem", {
        "TableName": HASH, "Item": key_a, "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"})
    add("put/expected + condition", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "n = :n",
                                                 "Expected": {"n": {"Value": {"N": "1"}}},
                                                 "ExpressionAttributeValues": {":n": {"N": "1"}}})
    add("put/expected ok", "PutItem", {"TableName": HASH, "Item": {**key_a, "n": {"N": "1"}},
                                       "Expected": {"n": {"Value": {"N": "1"}}}})
    add("put/expected fails", "PutItem", {"TableName": HASH, "Item": key_a, "Expected": {"n": {"Exists": False}}})
    add("put/expected exists true without value", "PutItem", {"TableName": HASH, "Item": key_a,
                                                              "Expected": {"n": {"Exists": True}}})
    add("put/expected bad operator", "PutItem", {"TableName": HASH, "Item": key_a,
                                                 "Expected": {"n": {"ComparisonOperator": "LIKE",
                                                                    "AttributeValueList": [{"N": "1"}]}}})
    add("put/expected BETWEEN one value", "PutItem", {"TableName": HASH, "Item": key_a,
                                                      "Expected": {"n": {"ComparisonOperator": "BETWEEN",
                                                                         "AttributeValueList": [{"N": "1"}]}}})
    add("delete/ok returns old", "DeleteItem", {"TableName": HASH, "Key": {"pk": {"S": "b"}}, "ReturnValues": "ALL_OLD"})
    add("delete/return values ALL_NEW", "DeleteItem", {"TableName": HASH, "Key": key_a, "ReturnValues": "ALL_NEW"})
    add("delete/missing item", "DeleteItem", {"TableName": HASH, "Key": {"pk": {"S": "nope"}}, "ReturnValues": "ALL_OLD"})
    add("delete/key extra", "DeleteItem", {"TableName": HASH, "Key": {"pk": {"S": "a"}, "n": {"N": "1"}}})

    # Condition expressions (on PutItem of item a, which exists).
    conditions = [
        "attribute_exists(pk)", "attribute_not_exists(pk)", "attribute_exists(m.nested)", "attribute_exists(l[5])",
        "n = :one", "n <> :one", "n < :two", "n <= :one", "n > :one", "n >= :two", "n = :str",
        "n BETWEEN :one AND :two", "n BETWEEN :two AND :one", "n BETWEEN :one AND :str",
        "n IN (:one, :two)", "n IN (:one)", "n IN ()", "begins_with(s, :he)", "begins_with(n, :one)",
        "begins_with(s, :one)", "contains(ss, :x)", "contains(s, :he)", "contains(l, :one)", "contains(n, :one)",
        "size(s) = :five", "size(ss) = :two", "size(l) > :two", "size(n) = :one", "size(size(s)) = :one",
        "size(s)", "attribute_type(s, :S)", "attribute_type(s, :bad)", "attribute_type(s, :one)",
        "attribute_exists(#st)", "status = :on", "#st = :on", "NOT n = :one", "n = :one AND s = :he OR t = :t",
        "(n = :one)", "((n = :one))", "n = :one AND", "n == :one", "n = :missing", "n = n", ":one = :one",
        "m.nested = :v", "m.deep.x = :five", "l[0] = :one", "l[2][0] = :three", "l[-1] = :one", "l[1.5] = :one",
        "m.#st = :on", "m.nested.deeper = :v", "a.b.c.d = :one", "attribute_exists(:one)",
        "unknown_fn(n)", "attribute_exists(n, s)", "begins_with(s)", "size(s, n) = :one", "contains(ss)",
        "n = :one OR NOT (s = :he AND t = :t)", "t = :t", "z = :null", "b = :bin", "ss = :ssxy", "ns = :ns21",
        "n > :str", "s > :he", "s BETWEEN :a AND :z", "pk = :a", "attribute_not_exists(nothere)",
        "n = :one AND n = :one", "n IN (" + ", ".join([":one"] * 100) + ")", "n IN (" + ", ".join([":one"] * 101) + ")",
        "#unused = :one", "n = :one -- comment", "N = :one", "n=:one", "n\t=\n:one", "ATTRIBUTE_EXISTS(n)",
        "attribute_exists (n)", "n BETWEEN :one", "n in (:one)", "n between :one and :two", "not n = :two",
        "n = :one and s = :he", "m = :emptymap", "l = :emptylist", "size(m) = :two", "size(b) = :three",
    ]
    values_cond = {":one": {"N": "1"}, ":two": {"N": "2"}, ":three": {"N": "3"}, ":five": {"N": "5"},
                   ":str": {"S": "1"}, ":he": {"S": "he"}, ":x": {"S": "x"}, ":S": {"S": "S"}, ":bad": {"S": "XX"},
                   ":on": {"S": "on"}, ":v": {"S": "v"}, ":t": {"BOOL": True}, ":null": {"NULL": True},
                   ":bin": {"B": "AAEC"}, ":ssxy": {"SS": ["y", "x"]}, ":ns21": {"NS": ["2", "1"]}, ":a": {"S": "a"},
                   ":z": {"S": "z"}, ":emptymap": {"M": {}}, ":emptylist": {"L": []}}
    token = re.compile(r"[:#][A-Za-z0-9_]+")
    for expression in conditions:
        used = set(token.findall(expression))
        body = {"TableName": HASH, "Item": SEED[HASH][0], "ConditionExpression": expression}
        vals = {k: v for k, v in values_cond.items() if k in used}
        if vals:
            body["ExpressionAttributeValues"] = vals
        if "#st" in used:
            body["ExpressionAttributeNames"] = {"#st": "status"}
        if "#unused" in used:
            body["ExpressionAttributeNames"] = {"#unused": "n", "#other": "s"}
        add(f"condition/{expression[:60]}", "PutItem", body)
    add("condition/unused value", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "n = :one",
                                               "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}}})
    add("condition/empty values map", "PutItem", {"TableName": HASH, "Item": key_a,
                                                   "ConditionExpression": "attribute_exists(n)",
                                                   "ExpressionAttributeValues": {}})
    add("condition/empty names map", "PutItem", {"TableName": HASH, "Item": key_a,
                                                  "ConditionExpression": "attribute_exists(n)",
                                                  "ExpressionAttributeNames": {}})
    add("condition/bad value name", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "n = :one",
                                                 "ExpressionAttributeValues": {"one": {"N": "1"}}})
    add("condition/bad name key", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "#n = :one",
                                               "ExpressionAttributeNames": {"n": "n", "#n": "n"},
                                               "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/empty expression", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": ""})
    add("condition/value empty set", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "ss = :e",
                                                  "ExpressionAttributeValues": {":e": {"SS": []}}})
    add("condition/value empty string", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "s = :e",
                                                     "ExpressionAttributeValues": {":e": {"S": ""}}})
    add("condition/name empty", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "#e = :one",
                                             "ExpressionAttributeNames": {"#e": ""},
                                             "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/expression 4KB", "PutItem", {"TableName": HASH, "Item": key_a,
                                                 "ConditionExpression": "attribute_exists(" + "n" * 4080 + ")"})
    add("condition/expression over 4KB", "PutItem", {"TableName": HASH, "Item": key_a,
                                                      "ConditionExpression": "attribute_exists(" + "n" * 4096 + ")"})
    add("condition/name too long", "PutItem", {"TableName": HASH, "Item": key_a,
                                                "ConditionExpression": "attribute_exists(" + "n" * 256 + ")"})

    # Update expressions (UpdateItem on item a, ALL_NEW).
    updates = [
        "SET n = :one", "SET n = n + :one", "SET n = n - :one", "SET n = :one + :two", "SET n = s + :one",
        "SET s = n + :one", "SET x = if_not_exists(x, :one)", "SET n = if_not_exists(n, :two)",
        "SET l = list_append(l, :lst)", "SET l = list_append(:lst, l)", "SET l = list_append(l, :one)",
        "SET nl = list_append(nl, :lst)", "SET l[1] = :one", "SET l[10] = :one", "SET l[2][0] = :two",
        "SET m.nested = :one", "SET m.newkey = :one", "SET nothere.deeper = :one", "SET l[1].x = :one",
        "SET n = :one, s = :he", "SET n = :one SET s = :he", "SET n = :one REMOVE s", "REMOVE s, n",
        "REMOVE l[0]", "REMOVE l[10]", "REMOVE m.nested", "REMOVE nothere", "REMOVE m.nothere.deeper",
        "ADD n :one", "ADD ss :ssz", "ADD ns :ns3", "ADD newn :one", "ADD newss :ssz", "ADD s :one",
        "ADD l :lst", "ADD ss :one", "ADD n :str", "ADD m.deep.x :one", "DELETE ss :ssx", "DELETE ss :ssxy",
        "DELETE ns :ns3", "DELETE n :one", "DELETE ss :one", "DELETE nothere :ssx", "DELETE ss :ns3",
        "SET pk = :a", "REMOVE pk", "ADD pk :one", "SET n = :one, n = :two", "SET m = :one, m.nested = :two",
        "SET l[0] = :one, l[1] = :two", "SET l[0] = :one REMOVE l[0]", "SET #st = :on", "SET status = :on",
        "SET n = :one,", "SET", "", "UPDATE n = :one", "SET n :one", "SET n = size(s)", "SET n = :missing",
        "SET n = :one REMOVE n", "ADD n :one, n :two", "SET ss = :emptyss", "SET n = -:one", "SET n = :one++:one",
        "set n = :one", "SET n = (:one)", "SET n = if_not_exists(:one, n)", "SET n = list_append(:lst)",
        "SET n = n + :one + :two", "SET x = :emptymap", "SET m.deep.x = m.deep.x + :one",
        "REMOVE l[0], l[1]", "SET l[0] = l[1], l[1] = l[0]", "SET n = :null", "ADD t :one", "DELETE z :ssx",
    ]
    values_upd = dict(values_cond, **{":lst": {"L": [{"N": "9"}]}, ":ssz": {"SS": ["z"]}, ":ns3": {"NS": ["3"]},
                                      ":ssx": {"SS": ["x"]}, ":emptyss": {"SS": []}})
    for expression in updates:
        used = set(token.findall(expression))
        body = {"TableName": HASH, "Key": key_a, "UpdateExpression": expression, "ReturnValues": "ALL_NEW"}
        vals = {k: v for k, v in values_upd.items() if k in used}
        if vals:
            body["ExpressionAttributeValues"] = vals
        if "#st" in used:
            body["ExpressionAttributeNames"] = {"#st": "status"}
        add(f"update/{expression or '(empty)'}", "UpdateItem", body)
    for return_values in ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"):
        add(f"update/return {return_values}", "UpdateItem", {
            "TableName": HASH, "Key": key_a, "UpdateExpression": "SET n = n + :one, m.nested = :he REMOVE s",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":he": {"S": "he"}}, "ReturnValues": return_values})
    add("update/new item", "UpdateItem", {"TableName": RANGE, "Key": {"pk": {"S": "new"}, "sk": {"N": "1"}},
                                          "UpdateExpression": "SET g = :g", "ExpressionAttributeValues": {":g": {"S": "G9"}},
                                          "ReturnValues": "ALL_NEW"})
    add("update/index key wrong type", "UpdateItem", {"TableName": RANGE, "Key": key_p1, "UpdateExpression": "SET g = :one",
                                                      "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/index key empty", "UpdateItem", {"TableName": RANGE, "Key": key_p1, "UpdateExpression": "SET g = :e",
                                                 "ExpressionAttributeValues": {":e": {"S": ""}}})
    add("update/key attribute of range", "UpdateItem", {"TableName": RANGE, "Key": key_p1,
                                                        "UpdateExpression": "SET sk = :one",
                                                        "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/with condition failing", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET n = :two",
                                                        "ConditionExpression": "n = :two",
                                                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                                                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"})
    add("update/attribute updates PUT", "UpdateItem", {"TableName": HASH, "Key": key_a, "ReturnValues": "UPDATED_NEW",
                                                       "AttributeUpdates": {"n": {"Action": "PUT", "Value": {"N": "7"}}}})
    add("update/attribute updates ADD", "UpdateItem", {"TableName": HASH, "Key": key_a, "ReturnValues": "UPDATED_NEW",
                                                       "AttributeUpdates": {"n": {"Action": "ADD", "Value": {"N": "7"}},
                                                                            "ss": {"Action": "ADD", "Value": {"SS": ["q"]}}}})
    add("update/attribute updates DELETE", "UpdateItem", {"TableName": HASH, "Key": key_a, "ReturnValues": "ALL_NEW",
                                                          "AttributeUpdates": {"s": {"Action": "DELETE"},
                                                                               "ss": {"Action": "DELETE", "Value": {"SS": ["x"]}}}})
    add("update/attribute updates key", "UpdateItem", {"TableName": HASH, "Key": key_a,
                                                       "AttributeUpdates": {"pk": {"Action": "PUT", "Value": {"S": "z"}}}})
    add("update/attribute updates empty name", "UpdateItem", {"TableName": HASH, "Key": key_a,
                                                              "AttributeUpdates": {"": {"Action": "PUT", "Value": {"S": "z"}}}})
    add("update/attribute updates + expression", "UpdateItem", {"TableName": HASH, "Key": key_a,
                                                                "UpdateExpression": "SET n = :one",
                                                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                                                                "AttributeUpdates": {"s": {"Action": "DELETE"}}})
    add("update/no update", "UpdateItem", {"TableName": HASH, "Key": {"pk": {"S": "fresh"}}, "ReturnValues": "ALL_NEW"})
    add("update/values unused", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "REMOVE s",
                                               "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/item grows past 400KB", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET big = :b",
                                                       "ExpressionAttributeValues": {":b": {"S": "x" * (400 * 1024)}}})
    add("update/number overflow", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET n = :a + :b",
                                                 "ExpressionAttributeValues": {":a": {"N": "9.9999999999999999999999999999999999999E+125"},
                                                                               ":b": {"N": "9.9999999999999999999999999999999999999E+125"}}})
    add("update/number precision", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET n = :a + :b",
                                                  "ReturnValues": "UPDATED_NEW",
                                                  "ExpressionAttributeValues": {":a": {"N": "1e30"}, ":b": {"N": "1e-10"}}})

    for expression in ("REMOVE s", "REMOVE nothere", "SET n = n", "ADD newn :one", "DELETE ss :ssx",
                       "SET m.nested = :v", "REMOVE m.nested", "SET l[1] = :one", "REMOVE l[1]",
                       "SET m.deep.x = :one, n = :two", "SET newm = :emptymap"):
        for return_values in ("UPDATED_OLD", "UPDATED_NEW"):
            used = set(token.findall(expression))
            body = {"TableName": HASH, "Key": key_a, "UpdateExpression": expression, "ReturnValues": return_values}
            vals = {k: v for k, v in values_upd.items() if k in used}
            if vals:
                body["ExpressionAttributeValues"] = vals
            add(f"update/{return_values} {expression}", "UpdateItem", body)
    add("update/UPDATED_NEW on new item", "UpdateItem", {"TableName": HASH, "Key": {"pk": {"S": "fresh"}},
                                                        "UpdateExpression": "SET n = :one", "ReturnValues": "UPDATED_NEW",
                                                        "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/UPDATED_OLD on new item", "UpdateItem", {"TableName": HASH, "Key": {"pk": {"S": "fresh"}},
                                                        "UpdateExpression": "SET n = :one", "ReturnValues": "UPDATED_OLD",
                                                        "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/condition on missing item", "UpdateItem", {"TableName": HASH, "Key": {"pk": {"S": "fresh"}},
                                                          "UpdateExpression": "SET n = :one", "ConditionExpression": "n = :one",
                                                          "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/attribute_not_exists on missing item", "UpdateItem", {
        "TableName": HASH, "Key": {"pk": {"S": "fresh"}}, "UpdateExpression": "SET n = :one",
        "ConditionExpression": "attribute_not_exists(pk)", "ExpressionAttributeValues": {":one": {"N": "1"}},
        "ReturnValues": "ALL_NEW"})
    for expression in ("SET #a = :one", "SET #a.#b = :one", "SET a.#b = :one"):
        add(f"update/names {expression}", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": expression,
                                                         "ExpressionAttributeNames": {"#a": "m", "#b": "nested"},
                                                         "ExpressionAttributeValues": {":one": {"N": "1"}},
                                                         "ReturnValues": "UPDATED_NEW"})
    add("update/name with dots", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET #a = :one",
                                                "ExpressionAttributeNames": {"#a": "m.nested"},
                                                "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValues": "ALL_NEW"})
    add("update/ADD to list element", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "ADD l[0] :one",
                                                     "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/DELETE nested set", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "DELETE m.s :ssx",
                                                   "ExpressionAttributeValues": {":ssx": {"SS": ["x"]}}})
    add("update/SET list index on map", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET m[0] = :one",
                                                       "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/SET map key on list", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET l.x = :one",
                                                     "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/REMOVE from scalar", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "REMOVE n.x",
                                                    "ReturnValues": "ALL_NEW"})
    add("update/list_append non-list", "UpdateItem", {"TableName": HASH, "Key": key_a,
                                                      "UpdateExpression": "SET l = list_append(s, :lst)",
                                                      "ExpressionAttributeValues": {":lst": {"L": []}}})
    add("update/if_not_exists nested", "UpdateItem", {"TableName": HASH, "Key": key_a,
                                                      "UpdateExpression": "SET m.nested = if_not_exists(m.nested, :one)",
                                                      "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValues": "UPDATED_NEW"})
    add("update/size in SET", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET n = size(l)"})
    add("update/arith on missing", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET n = nope + :one",
                                                  "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/arith on set", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET n = ns + :one",
                                              "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("update/ADD number to string set", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "ADD ss :ns3",
                                                          "ExpressionAttributeValues": {":ns3": {"NS": ["3"]}}})
    add("update/expression 4KB", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "REMOVE " + "n" * 4089})
    add("update/expression over 4KB", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "REMOVE " + "n" * 4090})
    add("update/path too deep", "UpdateItem", {"TableName": HASH, "Key": key_a,
                                               "UpdateExpression": "REMOVE " + ".".join(["a"] * 33)})
    add("condition/path depth 32", "PutItem", {"TableName": HASH, "Item": key_a,
                                               "ConditionExpression": "attribute_not_exists(" + ".".join(["a"] * 32) + ")"})
    add("condition/path depth 33", "PutItem", {"TableName": HASH, "Item": key_a,
                                               "ConditionExpression": "attribute_not_exists(" + ".".join(["a"] * 33) + ")"})
    add("condition/many operators", "PutItem", {"TableName": HASH, "Item": key_a,
                                                "ConditionExpression": " OR ".join(["n = :one"] * 300),
                                                "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/deep parentheses", "PutItem", {"TableName": HASH, "Item": key_a,
                                                  "ConditionExpression": "(" * 60 + "n = :one" + ")" * 60,
                                                  "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/contains set of numbers", "PutItem", {"TableName": HASH, "Item": key_a,
                                                         "ConditionExpression": "contains(ns, :one)",
                                                         "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/contains set operand", "PutItem", {"TableName": HASH, "Item": key_a,
                                                      "ConditionExpression": "contains(ss, :ssx)",
                                                      "ExpressionAttributeValues": {":ssx": {"SS": ["x"]}}})
    add("condition/IN with set", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "ss IN (:ssxy)",
                                             "ExpressionAttributeValues": {":ssxy": {"SS": ["y", "x"]}}})
    add("condition/compare map", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "m < :m",
                                             "ExpressionAttributeValues": {":m": {"M": {}}}})
    add("condition/compare bool", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "t < :t",
                                              "ExpressionAttributeValues": {":t": {"BOOL": True}}})
    add("condition/between sets", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "ss BETWEEN :a AND :b",
                                              "ExpressionAttributeValues": {":a": {"SS": ["a"]}, ":b": {"SS": ["z"]}}})
    add("condition/begins_with binary", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "begins_with(b, :b)",
                                                    "ExpressionAttributeValues": {":b": {"B": "AA=="}}})
    add("condition/attribute_type NULL", "PutItem", {"TableName": HASH, "Item": key_a,
                                                     "ConditionExpression": "attribute_type(z, :t)",
                                                     "ExpressionAttributeValues": {":t": {"S": "NULL"}}})
    add("condition/size of key string", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "size(pk) = :one",
                                                    "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/function as operand of function", "PutItem", {
        "TableName": HASH, "Item": key_a, "ConditionExpression": "begins_with(size(s), :one)",
        "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/attribute_exists of size", "PutItem", {"TableName": HASH, "Item": key_a,
                                                          "ConditionExpression": "attribute_exists(size(s))"})
    add("condition/size in IN", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "size(s) IN (:five)",
                                            "ExpressionAttributeValues": {":five": {"N": "5"}}})
    add("condition/size in BETWEEN", "PutItem", {"TableName": HASH, "Item": key_a,
                                                 "ConditionExpression": "size(s) BETWEEN :one AND :five",
                                                 "ExpressionAttributeValues": {":one": {"N": "1"}, ":five": {"N": "5"}}})
    add("condition/value-only comparison false", "PutItem", {"TableName": HASH, "Item": key_a,
                                                              "ConditionExpression": ":one = :two",
                                                              "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}}})
    add("condition/list_append in condition", "PutItem", {"TableName": HASH, "Item": key_a,
                                                          "ConditionExpression": "list_append(l, l) = :one",
                                                          "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/if_not_exists in condition", "PutItem", {"TableName": HASH, "Item": key_a,
                                                            "ConditionExpression": "if_not_exists(n, :one) = :one",
                                                            "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("condition/arithmetic in condition", "PutItem", {"TableName": HASH, "Item": key_a,
                                                         "ConditionExpression": "n + :one = :two",
                                                         "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}}})
    add("condition/names unused and undefined", "PutItem", {"TableName": HASH, "Item": key_a,
                                                            "ConditionExpression": "#x = :one",
                                                            "ExpressionAttributeNames": {"#y": "n"},
                                                            "ExpressionAttributeValues": {":one": {"N": "1"}}})
    add("delete/condition", "DeleteItem", {"TableName": HASH, "Key": key_a, "ConditionExpression": "n > :n",
                                           "ExpressionAttributeValues": {":n": {"N": "5"}},
                                           "ReturnValuesOnConditionCheckFailure": "ALL_OLD"})

    # Query and Scan.
    def query(name: str, expression: str | None, vals: dict | None = None, **extra) -> None:
        body = {"TableName": RANGE, **extra}
        if expression is not None:
            body["KeyConditionExpression"] = expression
        if vals:
            body["ExpressionAttributeValues"] = vals
        add(f"query/{name}", "Query", body)

    p = {":p": {"S": "p"}}
    query("pk", "pk = :p", p)
    query("pk reversed", ":p = pk", p)
    query("pk and sk <", "pk = :p AND sk < :three", {**p, ":three": {"N": "3"}})
    query("pk and sk between", "pk = :p AND sk BETWEEN :two AND :four", {**p, ":two": {"N": "2"}, ":four": {"N": "4"}})
    query("sk between reversed", "pk = :p AND sk BETWEEN :four AND :two", {**p, ":two": {"N": "2"}, ":four": {"N": "4"}})
    query("sk begins_with on N", "pk = :p AND begins_with(sk, :one)", {**p, ":one": {"N": "1"}})
    query("pk <", "pk < :p", p)
    query("pk begins_with", "begins_with(pk, :p)", p)
    query("only sk", "sk = :one", {":one": {"N": "1"}})
    query("pk OR", "pk = :p OR pk = :q", {**p, ":q": {"S": "q"}})
    query("NOT", "NOT pk = :p", p)
    query("non-key attribute", "pk = :p AND v = :one", {**p, ":one": {"N": "10"}})
    query("two sk conditions", "pk = :p AND sk > :one AND sk < :five",
          {**p, ":one": {"N": "1"}, ":five": {"N": "5"}})
    query("pk twice", "pk = :p AND pk = :p", p)
    query("sk wrong type", "pk = :p AND sk = :s", {**p, ":s": {"S": "1"}})
    query("pk wrong type", "pk = :n", {":n": {"N": "1"}})
    query("parentheses", "(pk = :p) AND (sk = :one)", {**p, ":one": {"N": "1"}})
    query("sk <>", "pk = :p AND sk <> :one", {**p, ":one": {"N": "1"}})
    query("sk IN", "pk = :p AND sk IN (:one)", {**p, ":one": {"N": "1"}})
    query("function on pk", "attribute_exists(pk)")
    query("size", "size(pk) = :one", {":one": {"N": "1"}})
    query("no key condition", None)
    query("empty key condition", "", p)
    query("syntax error", "pk = ", p)
    query("undefined value", "pk = :nope")
    query("gsi", "g = :g", {":g": {"S": "G1"}}, IndexName="gsi")
    query("gsi sk", "g = :g AND sk > :one", {":g": {"S": "G1"}, ":one": {"N": "1"}}, IndexName="gsi")
    query("gsi with table pk", "pk = :p", p, IndexName="gsi")
    query("gsi non-key", "g = :g AND v = :v", {":g": {"S": "G1"}, ":v": {"N": "10"}}, IndexName="gsi")
    query("gsi consistent", "g = :g", {":g": {"S": "G1"}}, IndexName="gsi", ConsistentRead=True)
    query("lsi", "pk = :p AND l > :l", {**p, ":l": {"S": "L2"}}, IndexName="lsi")
    query("lsi select all", "pk = :p", p, IndexName="lsi", Select="ALL_ATTRIBUTES")
    query("lsi projection", "pk = :p", p, IndexName="lsi", ProjectionExpression="v")
    query("no such index", "pk = :p", p, IndexName="nope")
    query("index name empty", "pk = :p", p, IndexName="")
    query("limit 0", "pk = :p", p, Limit=0)
    query("limit 2", "pk = :p", p, Limit=2)
    query("limit 2 backward", "pk = :p", p, Limit=2, ScanIndexForward=False)
    query("count", "pk = :p", p, Select="COUNT")
    query("count + projection", "pk = :p", p, Select="COUNT", ProjectionExpression="v")
    query("specific attributes without", "pk = :p", p, Select="SPECIFIC_ATTRIBUTES")
    query("all attributes + projection", "pk = :p", p, Select="ALL_ATTRIBUTES", ProjectionExpression="v")
    query("all projected on table", "pk = :p", p, Select="ALL_PROJECTED_ATTRIBUTES")
    query("bad select", "pk = :p", p, Select="SOME")
    query("filter", "pk = :p", {**p, ":v": {"N": "20"}}, FilterExpression="v > :v")
    query("filter on pk", "pk = :p", p, FilterExpression="pk = :p")
    query("filter on sk", "pk = :p", {**p, ":one": {"N": "1"}}, FilterExpression="sk > :one")
    query("filter empty", "pk = :p", p, FilterExpression="")
    query("filter + limit", "pk = :p", {**p, ":v": {"N": "20"}}, FilterExpression="v > :v", Limit=2)
    query("start key", "pk = :p", p, ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"N": "2"}})
    query("start key other partition", "pk = :p", p, ExclusiveStartKey={"pk": {"S": "q"}, "sk": {"N": "2"}})
    query("start key missing sk", "pk = :p", p, ExclusiveStartKey={"pk": {"S": "p"}})
    query("start key wrong type", "pk = :p", p, ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"S": "2"}})
    query("start key outside range", "pk = :p AND sk < :two", {**p, ":two": {"N": "2"}},
          ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"N": "4"}})
    query("start key gsi table key only", "g = :g", {":g": {"S": "G1"}}, IndexName="gsi",
          ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"N": "1"}})
    query("legacy key conditions", None, None, KeyConditions={"pk": {"ComparisonOperator": "EQ",
                                                                     "AttributeValueList": [{"S": "p"}]}})
    query("legacy + expression", "pk = :p", p, KeyConditions={"pk": {"ComparisonOperator": "EQ",
                                                                      "AttributeValueList": [{"S": "p"}]}})
    query("legacy BEGINS_WITH pk", None, None, KeyConditions={"pk": {"ComparisonOperator": "BEGINS_WITH",
                                                                     "AttributeValueList": [{"S": "p"}]}})
    query("query filter legacy", "pk = :p", p, QueryFilter={"v": {"ComparisonOperator": "GT",
                                                                   "AttributeValueList": [{"N": "20"}]}})
    query("reserved word", "pk = :p AND size > :one", {**p, ":one": {"N": "1"}})
    query("no table", "pk = :p", p, TableName="sweep_none")
    query("ConsistentRead", "pk = :p", p, ConsistentRead=True, ReturnConsumedCapacity="TOTAL")
    query("capacity indexes", "g = :g", {":g": {"S": "G1"}}, IndexName="gsi", ReturnConsumedCapacity="INDEXES")

    query("names", "#p = :p AND #s > :one", {**p, ":one": {"N": "1"}},
          ExpressionAttributeNames={"#p": "pk", "#s": "sk"})
    query("names unused", "pk = :p", p, ExpressionAttributeNames={"#s": "sk"})
    query("values unused", "pk = :p", {**p, ":x": {"N": "1"}})
    query("begins_with sk N", "pk = :p AND begins_with(sk, :s)", {**p, ":s": {"S": "1"}})
    query("between wrong type", "pk = :p AND sk BETWEEN :a AND :b", {**p, ":a": {"S": "1"}, ":b": {"N": "2"}})
    query("sk = on gsi without sk", "g = :g AND pk = :p", {":g": {"S": "G1"}, **p}, IndexName="gsi")
    query("pk on lsi only", "l = :l", {":l": {"S": "L1"}}, IndexName="lsi")
    query("projection on gsi", "g = :g", {":g": {"S": "G1"}}, IndexName="gsi", ProjectionExpression="v, pk")
    query("filter and key condition same value", "pk = :p", p, FilterExpression="v > :p")
    query("filter uses function", "pk = :p", {**p, ":v": {"S": "L"}}, FilterExpression="begins_with(l, :v)")
    query("select count with limit", "pk = :p", p, Select="COUNT", Limit=2)
    query("attributes to get with expression", "pk = :p", p, AttributesToGet=["v"])
    query("count + attributes to get", None, None, Select="COUNT",
          KeyConditions={"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]}}, AttributesToGet=["v"])
    query("legacy sk BETWEEN", None, None, KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]},
        "sk": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "2"}, {"N": "3"}]}})
    query("legacy sk NE", None, None, KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]},
        "sk": {"ComparisonOperator": "NE", "AttributeValueList": [{"N": "2"}]}})
    query("legacy too many values", None, None, KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}, {"S": "q"}]}})
    query("legacy conditional operator", None, None, ConditionalOperator="OR", KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]}}, QueryFilter={
        "v": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "20"}]},
        "l": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "L1"}]}})
    query("query filter on key", None, None, KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]}}, QueryFilter={
        "sk": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "2"}]}})
    query("expression 4KB+", "pk = :p" + " " * 4100, p)
    query("nums table", "pk = :n AND sk = :b", {":n": {"N": "1.00"}, ":b": {"B": "AQ=="}}, TableName=NUMS)
    query("nums begins_with binary", "pk = :n AND begins_with(sk, :b)", {":n": {"N": "1"}, ":b": {"B": "AQ=="}},
          TableName=NUMS)
    query("nums sk between binary", "pk = :n AND sk BETWEEN :a AND :b", {":n": {"N": "1"}, ":a": {"B": "AA=="},
                                                                          ":b": {"B": "Ag=="}}, TableName=NUMS)

    def scan(name: str, **extra) -> None:
        add(f"scan/{name}", "Scan", {"TableName": RANGE, **extra})

    scan("all")
    scan("limit 0", Limit=0)
    scan("limit 1", Limit=1)
    scan("filter", FilterExpression="v >= :v", ExpressionAttributeValues={":v": {"N": "30"}})
    scan("filter type mismatch", FilterExpression="v >= :v", ExpressionAttributeValues={":v": {"S": "30"}})
    scan("filter syntax", FilterExpression="v >=", ExpressionAttributeValues={":v": {"S": "30"}})
    scan("segments", Segment=0, TotalSegments=1)
    scan("segment without total", Segment=0)
    scan("total without segment", TotalSegments=2)
    scan("segment too large", Segment=2, TotalSegments=2)
    scan("total segments 0", Segment=0, TotalSegments=0)
    scan("total segments 1000001", Segment=0, TotalSegments=1000001)
    scan("count", Select="COUNT")
    scan("gsi", IndexName="gsi")
    scan("lsi", IndexName="lsi")
    scan("gsi consistent", IndexName="gsi", ConsistentRead=True)
    scan("projection", ProjectionExpression="pk, v")
    scan("start key", ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"N": "1"}}, Limit=1)
    scan("start key bad", ExclusiveStartKey={"pk": {"S": "p"}})
    scan("scan filter legacy", ScanFilter={"v": {"ComparisonOperator": "BETWEEN",
                                                  "AttributeValueList": [{"N": "10"}, {"N": "30"}]}})
    scan("scan filter + expression", ScanFilter={"v": {"ComparisonOperator": "NULL"}}, FilterExpression="attribute_exists(v)")
    scan("conditional operator without filter", ConditionalOperator="AND")
    scan("filter contains", FilterExpression="contains(l, :l)", ExpressionAttributeValues={":l": {"S": "L"}})
    scan("filter size", FilterExpression="size(l) = :two", ExpressionAttributeValues={":two": {"N": "2"}})
    scan("filter IN", FilterExpression="v IN (:a, :b)", ExpressionAttributeValues={":a": {"N": "10"}, ":b": {"S": "text"}})
    scan("hash table", TableName=HASH)
    scan("nums table", TableName=NUMS)

    scan("filter on key", FilterExpression="pk = :p AND sk > :one",
         ExpressionAttributeValues={":p": {"S": "p"}, ":one": {"N": "3"}})
    scan("filter names unused", FilterExpression="v > :v", ExpressionAttributeValues={":v": {"N": "1"}},
         ExpressionAttributeNames={"#x": "v"})
    scan("projection nested", TableName=HASH, ProjectionExpression="l[2][0], m.deep.x")
    scan("projection list twice", TableName=HASH, ProjectionExpression="l[0], l[0]")
    scan("projection reserved", TableName=HASH, ProjectionExpression="size")
    scan("select specific attributes", Select="SPECIFIC_ATTRIBUTES", ProjectionExpression="v")
    scan("select all projected", Select="ALL_PROJECTED_ATTRIBUTES")
    scan("select all projected lsi", IndexName="lsi", Select="ALL_PROJECTED_ATTRIBUTES")
    scan("select all lsi", IndexName="lsi", Select="ALL_ATTRIBUTES")
    scan("limit + filter", Limit=2, FilterExpression="v > :v", ExpressionAttributeValues={":v": {"N": "10"}})
    scan("count + limit", Select="COUNT", Limit=3)
    scan("segments 4 of 0", Segment=0, TotalSegments=4)
    scan("start key other table shape", ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"N": "1"}, "x": {"S": "y"}})
    scan("start key on gsi", IndexName="gsi", ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"N": "1"}, "g": {"S": "G1"}})
    scan("start key on gsi table only", IndexName="gsi", ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"N": "1"}})

    # Filter semantics over values of every type, and key order (Query keeps it).
    filters = [
        "x = :s", "x <> :s", "x < :s", "x > :s", "x <= :n", "x >= :n", "x < :n", "x BETWEEN :a AND :z",
        "x BETWEEN :n AND :n10", "begins_with(x, :a)", "begins_with(x, :s)", "contains(x, :a)", "contains(x, :s)",
        "contains(x, :n)", "contains(x, :b)", "NOT contains(x, :a)", "size(x) = :two", "size(x) > :zero",
        "size(x) < :two", "attribute_type(x, :tS)", "attribute_type(x, :tN)", "attribute_type(x, :tL)",
        "attribute_type(x, :tM)", "attribute_type(x, :tNULL)", "attribute_type(x, :tBOOL)", "attribute_type(x, :tSS)",
        "attribute_exists(x)", "attribute_not_exists(x)", "x IN (:s, :n, :t)", "NOT x IN (:s, :n)", "x = :t",
        "x <> :t", "x = :null", "x <> :null", "x = :ss", "x = :ssba", "x = :l", "x = :m", "x.a = :s",
        "x[0] = :a", "x[1] = :n", "NOT x = :s", "NOT (x = :s OR x = :n)", "x < :b", "x > :b",
        "x = :emptys", "x > :emptys", "size(x) = :zero", "x = :bin", "x <> :n AND x <> :s",
        "attribute_type(x, :tB) OR attribute_type(x, :tBS)", "contains(x, :ssa)", "x.a <> :s",
    ]
    filter_values = {":s": {"S": "abc"}, ":n": {"N": "5"}, ":n10": {"N": "10"}, ":a": {"S": "a"}, ":z": {"S": "z"},
                     ":b": {"S": "b"}, ":two": {"N": "2"}, ":zero": {"N": "0"}, ":t": {"BOOL": True},
                     ":null": {"NULL": True}, ":ss": {"SS": ["a", "b"]}, ":ssba": {"SS": ["b", "a"]},
                     ":l": {"L": [{"S": "a"}, {"N": "5"}]}, ":m": {"M": {"a": {"S": "abc"}}}, ":emptys": {"S": ""},
                     ":bin": {"B": "AQ=="}, ":ssa": {"SS": ["a"]},
                     **{f":t{t}": {"S": t} for t in ("S", "N", "L", "M", "NULL", "BOOL", "SS", "B", "BS")}}
    for expression in filters:
        used = set(token.findall(expression))
        add(f"filter/{expression}", "Query", {
            "TableName": VARIED, "KeyConditionExpression": "pk = :pk", "FilterExpression": expression,
            "ProjectionExpression": "sk", "ExpressionAttributeValues": {
                ":pk": {"S": "v"}, **{k: v for k, v in filter_values.items() if k in used}}})
    add("order/numbers forward", "Query", {"TableName": VARIED, "KeyConditionExpression": "pk = :pk",
                                           "ProjectionExpression": "sk", "ExpressionAttributeValues": {":pk": {"S": "v"}}})
    add("order/numbers backward", "Query", {"TableName": VARIED, "KeyConditionExpression": "pk = :pk",
                                            "ProjectionExpression": "sk", "ScanIndexForward": False,
                                            "ExpressionAttributeValues": {":pk": {"S": "v"}}})
    add("order/numbers range", "Query", {"TableName": VARIED, "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
                                         "ProjectionExpression": "sk", "ExpressionAttributeValues": {
                                             ":pk": {"S": "v"}, ":a": {"N": "-2"}, ":b": {"N": "1e-100"}}})
    add("order/numbers paged", "Query", {"TableName": VARIED, "KeyConditionExpression": "pk = :pk AND sk > :a",
                                         "ProjectionExpression": "sk", "Limit": 3,
                                         "ExclusiveStartKey": {"pk": {"S": "v"}, "sk": {"N": "-0.001"}},
                                         "ExpressionAttributeValues": {":pk": {"S": "v"}, ":a": {"N": "-100"}}})
    add("order/strings", "Query", {"TableName": ORDER_S, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": "o"}}})
    add("order/strings begins_with", "Query", {"TableName": ORDER_S, "KeyConditionExpression": "pk = :pk AND begins_with(sk, :a)",
                                               "ExpressionAttributeValues": {":pk": {"S": "o"}, ":a": {"S": "a"}}})
    add("order/strings >", "Query", {"TableName": ORDER_S, "KeyConditionExpression": "pk = :pk AND sk > :a",
                                     "ExpressionAttributeValues": {":pk": {"S": "o"}, ":a": {"S": "a"}}})
    add("order/binary", "Query", {"TableName": NUMS, "KeyConditionExpression": "pk = :pk",
                                  "ExpressionAttributeValues": {":pk": {"N": "7"}}})
    add("order/binary begins_with", "Query", {"TableName": NUMS, "KeyConditionExpression": "pk = :pk AND begins_with(sk, :b)",
                                              "ExpressionAttributeValues": {":pk": {"N": "7"}, ":b": {"B": "AA=="}}})
    add("order/binary <", "Query", {"TableName": NUMS, "KeyConditionExpression": "pk = :pk AND sk < :b",
                                    "ExpressionAttributeValues": {":pk": {"N": "7"}, ":b": {"B": "gA=="}}})
    add("order/partiql strings", "ExecuteStatement", {"Statement": f"SELECT sk FROM {ORDER_S} WHERE pk = 'o' ORDER BY sk DESC"})
    add("filter/partiql on varied", "ExecuteStatement", {
        "Statement": f"SELECT sk FROM {VARIED} WHERE pk = 'v' AND (x = 'abc' OR x > 4 OR contains(x, 'a'))"})
    add("filter/partiql missing", "ExecuteStatement", {"Statement": f"SELECT sk FROM {VARIED} WHERE pk = 'v' AND x IS MISSING"})
    add("filter/partiql null", "ExecuteStatement", {"Statement": f"SELECT sk FROM {VARIED} WHERE pk = 'v' AND x IS NULL"})
    add("filter/partiql not null", "ExecuteStatement", {"Statement": f"SELECT sk FROM {VARIED} WHERE pk = 'v' AND x IS NOT NULL"})
    add("filter/partiql <>", "ExecuteStatement", {"Statement": f"SELECT sk FROM {VARIED} WHERE pk = 'v' AND x <> 'abc'"})

    # Reserved words (and near misses) as names, in a condition and an update.
    for word in ("status", "name", "data", "value", "year", "date", "time", "user", "key", "count", "size",
                 "comment", "group", "order", "by", "end", "timestamp", "type", "region", "source", "zone", "abort",
                 "Status", "STATUS", "statuses", "nam", "id", "pk", "items", "level", "percent", "hash", "range",
                 "set", "add", "remove", "delete", "between", "in", "not", "and", "or", "attribute_exists", "true",
                 "null", "list", "map", "string", "number", "binary", "boolean", "_status", "st4tus", "a1", "1a"):
        add(f"reserved/condition {word}", "PutItem", {"TableName": HASH, "Item": key_a,
                                                      "ConditionExpression": f"attribute_not_exists({word})"})
        add(f"reserved/update {word}", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": f"REMOVE {word}"})
        add(f"reserved/projection {word}", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": f"n, {word}"})

    # Batches.
    add("batch get/ok", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [key_a, {"pk": {"S": "b"}}, {"pk": {"S": "zz"}}]}}})
    add("batch get/duplicate keys", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [key_a, key_a]}}})
    add("batch get/101 keys", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [{"pk": {"S": str(i)}} for i in range(101)]}}})
    add("batch get/100 keys", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [{"pk": {"S": str(i)}} for i in range(100)]}}})
    add("batch get/empty keys", "BatchGetItem", {"RequestItems": {HASH: {"Keys": []}}})
    add("batch get/empty", "BatchGetItem", {"RequestItems": {}})
    add("batch get/missing", "BatchGetItem", {})
    add("batch get/no table", "BatchGetItem", {"RequestItems": {"sweep_none": {"Keys": [key_a]}}})
    add("batch get/bad key", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [{"pk": {"N": "1"}}]}}})
    add("batch get/projection", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [key_a], "ProjectionExpression": "n, m.nested"}}})
    add("batch get/projection undefined name", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [key_a],
                                                                                       "ProjectionExpression": "#n"}}})
    add("batch get/two tables", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [key_a]}, RANGE: {"Keys": [key_p1]}},
                                                 "ReturnConsumedCapacity": "TOTAL"})
    add("batch write/ok", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": {"pk": {"S": "w1"}}}},
                                                                     {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}}]}})
    add("batch write/duplicate put", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": key_a}},
                                                                                {"PutRequest": {"Item": key_a}}]}})
    add("batch write/put and delete same", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": key_a}},
                                                                                      {"DeleteRequest": {"Key": key_a}}]}})
    add("batch write/26", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": {"pk": {"S": str(i)}}}}
                                                                     for i in range(26)]}})
    add("batch write/25", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": {"pk": {"S": "w" + str(i)}}}}
                                                                     for i in range(25)]}})
    add("batch write/empty list", "BatchWriteItem", {"RequestItems": {HASH: []}})
    add("batch write/empty", "BatchWriteItem", {"RequestItems": {}})
    add("batch write/both in one request", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": key_a},
                                                                                       "DeleteRequest": {"Key": key_a}}]}})
    add("batch write/neither", "BatchWriteItem", {"RequestItems": {HASH: [{}]}})
    add("batch write/no table", "BatchWriteItem", {"RequestItems": {"sweep_none": [{"PutRequest": {"Item": key_a}}]}})
    add("batch write/bad key", "BatchWriteItem", {"RequestItems": {HASH: [{"DeleteRequest": {"Key": {"pk": {"N": "1"}}}}]}})
    add("batch write/put missing key", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": {"x": {"S": "1"}}}}]}})
    add("batch write/empty set", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": {"pk": {"S": "e"},
                                                                                                 "x": {"SS": []}}}}]}})
    add("batch write/item too large", "BatchWriteItem", {"RequestItems": {HASH: [{"PutRequest": {"Item": {
        "pk": {"S": "big"}, "x": {"S": "x" * (400 * 1024)}}}}]}})
    add("batch write/delete key extra", "BatchWriteItem", {"RequestItems": {HASH: [{"DeleteRequest": {"Key": {
        "pk": {"S": "a"}, "n": {"N": "1"}}}}]}})
    add("batch write/index key wrong type", "BatchWriteItem", {"RequestItems": {RANGE: [{"PutRequest": {"Item": {
        "pk": {"S": "p"}, "sk": {"N": "8"}, "g": {"N": "1"}}}}]}})

    # Transactions.
    def put(item, **extra):
        return {"Put": {"TableName": HASH, "Item": item, **extra}}

    def check(key, expression, vals=None, **extra):
        body = {"TableName": HASH, "Key": key, "ConditionExpression": expression, **extra}
        if vals:
            body["ExpressionAttributeValues"] = vals
        return {"ConditionCheck": body}

    one = {":one": {"N": "1"}}
    add("transact write/ok", "TransactWriteItems", {"TransactItems": [put({"pk": {"S": "t1"}}),
                                                                      check(key_a, "n = :one", one)]})
    add("transact write/condition fails", "TransactWriteItems", {"TransactItems": [
        put({"pk": {"S": "t1"}}), check(key_a, "n = :two", {":two": {"N": "2"}})]})
    add("transact write/condition fails with old", "TransactWriteItems", {"TransactItems": [
        put({"pk": {"S": "t1"}}), check(key_a, "n = :two", {":two": {"N": "2"}},
                                         ReturnValuesOnConditionCheckFailure="ALL_OLD")]})
    add("transact write/same item twice", "TransactWriteItems", {"TransactItems": [put(key_a), check(key_a, "n = :one", one)]})
    add("transact write/empty", "TransactWriteItems", {"TransactItems": []})
    add("transact write/101", "TransactWriteItems", {"TransactItems": [put({"pk": {"S": f"t{i}"}}) for i in range(101)]})
    add("transact write/100", "TransactWriteItems", {"TransactItems": [put({"pk": {"S": f"t{i}"}}) for i in range(100)]})
    add("transact write/two actions in one", "TransactWriteItems", {"TransactItems": [
        {**put({"pk": {"S": "t1"}}), "Delete": {"TableName": HASH, "Key": key_a}}]})
    add("transact write/no action", "TransactWriteItems", {"TransactItems": [{}]})
    add("transact write/no table", "TransactWriteItems", {"TransactItems": [{"Put": {"TableName": "sweep_none", "Item": key_a}}]})
    add("transact write/bad key", "TransactWriteItems", {"TransactItems": [{"Delete": {"TableName": HASH,
                                                                                      "Key": {"pk": {"N": "1"}}}}]})
    add("transact write/update bad expression", "TransactWriteItems", {"TransactItems": [{"Update": {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "SET n = "}}]})
    add("transact write/update key attribute", "TransactWriteItems", {"TransactItems": [{"Update": {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "SET pk = :a", "ExpressionAttributeValues": {":a": {"S": "a"}}}}]})
    add("transact write/check without condition", "TransactWriteItems", {"TransactItems": [{"ConditionCheck": {
        "TableName": HASH, "Key": key_a}}]})
    add("transact write/token", "TransactWriteItems", {"TransactItems": [put({"pk": {"S": "tok"}})],
                                                      "ClientRequestToken": RUN_TOKEN})
    add("transact write/token too long", "TransactWriteItems", {"TransactItems": [put({"pk": {"S": "tok"}})],
                                                               "ClientRequestToken": "t" * 37})
    add("transact write/item too large", "TransactWriteItems", {"TransactItems": [put({"pk": {"S": "big"},
                                                                                     "x": {"S": "x" * (400 * 1024)}})]})
    add("transact write/empty set", "TransactWriteItems", {"TransactItems": [put({"pk": {"S": "e"}, "x": {"NS": []}})]})
    add("transact write/index key wrong type", "TransactWriteItems", {"TransactItems": [{"Put": {
        "TableName": RANGE, "Item": {"pk": {"S": "p"}, "sk": {"N": "8"}, "g": {"N": "1"}}}}]})
    add("transact write/unused value", "TransactWriteItems", {"TransactItems": [put(key_a, ConditionExpression="attribute_exists(pk)",
                                                                                    ExpressionAttributeValues=one)]})
    add("transact get/ok", "TransactGetItems", {"TransactItems": [{"Get": {"TableName": HASH, "Key": key_a,
                                                                           "ProjectionExpression": "n, s"}},
                                                                  {"Get": {"TableName": HASH, "Key": {"pk": {"S": "zz"}}}}]})
    add("transact get/same item twice", "TransactGetItems", {"TransactItems": [{"Get": {"TableName": HASH, "Key": key_a}}] * 2})
    add("transact get/empty", "TransactGetItems", {"TransactItems": []})
    add("transact get/101", "TransactGetItems", {"TransactItems": [{"Get": {"TableName": HASH, "Key": {"pk": {"S": str(i)}}}}
                                                                   for i in range(101)]})
    add("transact get/bad key", "TransactGetItems", {"TransactItems": [{"Get": {"TableName": HASH, "Key": {"pk": {"N": "1"}}}}]})
    add("transact get/no table", "TransactGetItems", {"TransactItems": [{"Get": {"TableName": "sweep_none", "Key": key_a}}]})

    # PartiQL.
    statements = [
        f'SELECT * FROM {HASH} WHERE pk = \'a\'',
        f'SELECT n, m.nested, l[1] FROM {HASH} WHERE pk = \'a\'',
        f'SELECT * FROM "{HASH}" WHERE pk = \'a\'',
        f'SELECT * FROM {HASH} WHERE pk = \'zz\'',
        f'SELECT * FROM {RANGE} WHERE pk = \'p\' AND sk > 2',
        f'SELECT * FROM {RANGE} WHERE pk = \'p\' AND sk BETWEEN 2 AND 3',
        f'SELECT * FROM {RANGE} WHERE pk = \'p\' ORDER BY sk DESC',
        f'SELECT * FROM {RANGE} WHERE pk = \'p\' AND begins_with(l, \'L1\')',
        f'SELECT * FROM "{RANGE}"."gsi" WHERE g = \'G1\'',
        f'SELECT * FROM "{RANGE}"."nope" WHERE g = \'G1\'',
        f'SELECT * FROM {HASH} WHERE n = 2',
        f'SELECT * FROM {HASH} WHERE pk IN [\'a\', \'b\']',
        f'SELECT * FROM {HASH} WHERE pk = \'a\' OR pk = \'b\'',
        f'SELECT * FROM {HASH} WHERE contains(ss, \'x\')',
        f'SELECT * FROM {HASH} WHERE size(s) > 2',
        f'SELECT * FROM {HASH} WHERE s IS MISSING',
        f'SELECT * FROM {HASH} WHERE s IS NOT MISSING',
        f'SELECT * FROM {HASH} WHERE z IS NULL',
        f'SELECT * FROM {HASH} WHERE attribute_type(s, \'S\')',
        f'SELECT count(*) FROM {HASH}',
        'SELECT * FROM sweep_none',
        f'SELECT * FROM {HASH} WHERE pk = ?',
        f'SELECT * FROM {HASH} WHERE',
        f'SELECT FROM {HASH}',
        f'SELEC * FROM {HASH}',
        f'SELECT * FROM {HASH} WHERE pk = "a"',
        f'SELECT * FROM {HASH} WHERE pk = \'a\' AND n = \'1\'',
        f"INSERT INTO {HASH} VALUE {{'pk': 'ins', 'n': 1, 'ss': <<'a', 'b'>>}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'a'}}",
        f"INSERT INTO {HASH} VALUE {{'n': 1}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 1}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'e', 'x': <<>>}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'e', 'x': ''}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'e', '': 1}}",
        f"UPDATE {HASH} SET n = 5 WHERE pk = 'a'",
        f"UPDATE {HASH} SET n = n + 1 WHERE pk = 'a' RETURNING ALL NEW *",
        f"UPDATE {HASH} SET n = 5 WHERE pk = 'zz'",
        f"UPDATE {HASH} SET pk = 'x' WHERE pk = 'a'",
        f"UPDATE {HASH} REMOVE s WHERE pk = 'a' RETURNING MODIFIED OLD *",
        f"UPDATE {HASH} SET ss = set_add(ss, <<'q'>>) WHERE pk = 'a'",
        f"UPDATE {HASH} SET ss = set_delete(ss, <<'x'>>) WHERE pk = 'a'",
        f"UPDATE {HASH} SET l = list_append(l, [4]) WHERE pk = 'a'",
        f"UPDATE {HASH} SET m.nested = 'w' WHERE pk = 'a'",
        f"UPDATE {HASH} SET n = 5 WHERE n = 1",
        f"UPDATE {HASH} SET n = 5 WHERE pk = 'a' AND n = 99",
        f"DELETE FROM {HASH} WHERE pk = 'b'",
        f"DELETE FROM {HASH} WHERE pk = 'zz'",
        f"DELETE FROM {HASH} WHERE pk = 'a' AND n = 99",
        f"DELETE FROM {HASH} WHERE n = 1",
        f"DELETE FROM {HASH} WHERE pk = 'a' RETURNING ALL OLD *",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND m.nested = 'v'",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND l[0] = 1",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND n = 1.0",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND n = 1e0",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND t = true",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND z = null",
        f"SELECT * FROM {NUMS} WHERE pk = 1",
        f"SELECT * FROM {NUMS} WHERE pk = '1'",
        f"SELECT * FROM {HASH} WHERE \"status\" = 'on'",
        f"SELECT * FROM {HASH} WHERE status = 'on'",
    ]
    statements += [
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND size(l) = 3",
        f"SELECT pk FROM {HASH} WHERE pk = 'a'",
        f"SELECT \"status\" FROM {HASH} WHERE pk = 'a'",
        f"SELECT l[0], l[2][0], m.deep.x FROM {HASH} WHERE pk = 'a'",
        f"SELECT m.nothere FROM {HASH} WHERE pk = 'a'",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND begins_with(s, 'he')",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND contains(l, 1)",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND attribute_type(n, 'N')",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND n BETWEEN 0 AND 2",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND n IN [1, 2]",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND NOT n = 2",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND n <> 2",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND n != 2",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND ss = <<'x', 'y'>>",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND l = [1, 'two', [3]]",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND m.deep = {{'x': 5}}",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND b = ''",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND nothere IS MISSING",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND n IS NOT NULL",
        f"SELECT * FROM {HASH} WHERE pk = 'a' AND n = missing",
        f"SELECT * FROM {HASH} WHERE pk = 'a' ORDER BY pk",
        f"SELECT * FROM {HASH} WHERE pk = 'a' LIMIT 1",
        f"SELECT * FROM {HASH} t WHERE t.pk = 'a'",
        f"SELECT * FROM {HASH} AS t WHERE t.pk = 'a'",
        f"SELECT DISTINCT n FROM {HASH}",
        f"SELECT * FROM {HASH} WHERE pk = 'a' -- comment",
        f"SELECT * FROM {HASH} WHERE pk = 'a';",
        f"SELECT * FROM {HASH} WHERE pk = 'a'; SELECT * FROM {HASH}",
        f"SELECT * FROM {RANGE} WHERE pk = 'p' AND sk = 1.0",
        f"SELECT * FROM {RANGE} WHERE pk = 'p' AND sk = '1'",
        f"SELECT * FROM {RANGE} WHERE pk = 'p' AND sk IN [1, 2]",
        f"SELECT * FROM {RANGE} WHERE pk IN ['p', 'q'] AND sk = 1",
        f"SELECT * FROM \"{RANGE}\".\"lsi\" WHERE pk = 'p'",
        f"SELECT * FROM \"{RANGE}\".lsi WHERE pk = 'p'",
        f"SELECT * FROM {RANGE}.gsi WHERE g = 'G1'",
        f"INSERT INTO {HASH} VALUE {{'pk': 'ins', 'n': 1e126}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'ins', 'n': 123456789012345678901234567890123456789}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'ins', 'x': <<1, 'a'>>}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'ins', 'x': <<1, 1>>}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'ins', 'x': null, 'y': true, 'z': [1, {{'a': 'b'}}]}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'ins', 'pk': 'again'}}",
        f"INSERT INTO {HASH} VALUES {{'pk': 'ins'}}",
        f"INSERT INTO {HASH} VALUE {{'pk': 'ins'}}, {{'pk': 'ins2'}}",
        f"INSERT INTO {RANGE} VALUE {{'pk': 'ins', 'sk': 1, 'g': 5}}",
        f"INSERT INTO {RANGE} VALUE {{'pk': 'ins', 'sk': 1, 'g': ''}}",
        f"UPDATE {HASH} SET n = n + 1, s = 'x' WHERE pk = 'a' RETURNING MODIFIED NEW *",
        f"UPDATE {HASH} SET n = 'x' WHERE pk = 'a' RETURNING ALL OLD *",
        f"UPDATE {HASH} SET m.deep.x = 6 WHERE pk = 'a' RETURNING MODIFIED NEW *",
        f"UPDATE {HASH} SET l[1] = 'b' WHERE pk = 'a' RETURNING ALL NEW *",
        f"UPDATE {HASH} SET l[9] = 'b' WHERE pk = 'a' RETURNING ALL NEW *",
        f"UPDATE {HASH} SET nothere.x = 1 WHERE pk = 'a'",
        f"UPDATE {HASH} SET ss = set_add(ss, <<1>>) WHERE pk = 'a'",
        f"UPDATE {HASH} SET n = n + 'a' WHERE pk = 'a'",
        f"UPDATE {HASH} REMOVE l[0] WHERE pk = 'a' RETURNING ALL NEW *",
        f"UPDATE {HASH} SET n = 1 SET s = 'a' WHERE pk = 'a'",
        f"UPDATE {HASH} SET n = 1 WHERE pk = 'a' AND attribute_exists(s)",
        f"UPDATE {HASH} SET n = 1 WHERE pk = 'zz' AND attribute_exists(s)",
        f"UPDATE {HASH} SET n = 1 WHERE pk = 'a' OR pk = 'b'",
        f"UPDATE {HASH} SET n = 1 WHERE pk IN ['a', 'b']",
        f"UPDATE {HASH} SET n = 1 WHERE pk = 'a' RETURNING ALL OLD n",
        f"UPDATE {RANGE} SET g = 5 WHERE pk = 'p' AND sk = 1",
        f"UPDATE {RANGE} SET g = '' WHERE pk = 'p' AND sk = 1",
        f"UPDATE {RANGE} SET v = 1 WHERE pk = 'p'",
        f"DELETE FROM {RANGE} WHERE pk = 'p'",
        f"DELETE FROM {RANGE} WHERE pk = 'p' AND sk = 1 AND v = 10 RETURNING ALL OLD *",
        f"DELETE FROM {HASH} WHERE pk = 'a' RETURNING MODIFIED OLD *",
        f"EXISTS(SELECT * FROM {HASH} WHERE pk = 'a')",
    ]
    for statement in statements:
        add(f"partiql/{statement[:90]}", "ExecuteStatement", {"Statement": statement})
    add("partiql/parameters", "ExecuteStatement", {"Statement": f"SELECT * FROM {HASH} WHERE pk = ?",
                                                   "Parameters": [{"S": "a"}]})
    add("partiql/too many parameters", "ExecuteStatement", {"Statement": f"SELECT * FROM {HASH} WHERE pk = ?",
                                                            "Parameters": [{"S": "a"}, {"S": "b"}]})
    add("partiql/parameter empty set", "ExecuteStatement", {"Statement": f"SELECT * FROM {HASH} WHERE pk = ?",
                                                            "Parameters": [{"SS": []}]})
    add("partiql/empty statement", "ExecuteStatement", {"Statement": ""})
    add("partiql/limit", "ExecuteStatement", {"Statement": f"SELECT * FROM {RANGE} WHERE pk = 'p'", "Limit": 2})
    add("partiql/limit 0", "ExecuteStatement", {"Statement": f"SELECT * FROM {RANGE} WHERE pk = 'p'", "Limit": 0})
    add("partiql/bad next token", "ExecuteStatement", {"Statement": f"SELECT * FROM {RANGE}", "NextToken": "bogus"})
    add("partiql/consistent on gsi", "ExecuteStatement", {"Statement": f'SELECT * FROM "{RANGE}"."gsi" WHERE g = \'G1\'',
                                                          "ConsistentRead": True})
    add("partiql batch/ok", "BatchExecuteStatement", {"Statements": [
        {"Statement": f"SELECT * FROM {HASH} WHERE pk = 'a'"}, {"Statement": f"SELECT * FROM {HASH} WHERE pk = 'zz'"}]})
    add("partiql batch/mixed read write", "BatchExecuteStatement", {"Statements": [
        {"Statement": f"SELECT * FROM {HASH} WHERE pk = 'a'"}, {"Statement": f"DELETE FROM {HASH} WHERE pk = 'b'"}]})
    add("partiql batch/insert duplicate", "BatchExecuteStatement", {"Statements": [
        {"Statement": f"INSERT INTO {HASH} VALUE {{'pk': 'a'}}"}]})
    add("partiql batch/scan", "BatchExecuteStatement", {"Statements": [{"Statement": f"SELECT * FROM {HASH}"}]})
    add("partiql batch/syntax", "BatchExecuteStatement", {"Statements": [{"Statement": "SELEC"}]})
    add("partiql batch/empty", "BatchExecuteStatement", {"Statements": []})
    add("partiql batch/26", "BatchExecuteStatement", {"Statements": [
        {"Statement": f"SELECT * FROM {HASH} WHERE pk = 'a'"}] * 26})
    add("partiql batch/same item twice", "BatchExecuteStatement", {"Statements": [
        {"Statement": f"UPDATE {HASH} SET n = 1 WHERE pk = 'a'"}, {"Statement": f"UPDATE {HASH} SET n = 2 WHERE pk = 'a'"}]})
    add("partiql transaction/ok", "ExecuteTransaction", {"TransactStatements": [
        {"Statement": f"UPDATE {HASH} SET n = 7 WHERE pk = 'a'"}, {"Statement": f"INSERT INTO {HASH} VALUE {{'pk': 'tx'}}"}]})
    add("partiql transaction/condition fails", "ExecuteTransaction", {"TransactStatements": [
        {"Statement": f"UPDATE {HASH} SET n = 7 WHERE pk = 'a' AND n = 99"}]})
    add("partiql transaction/insert duplicate", "ExecuteTransaction", {"TransactStatements": [
        {"Statement": f"INSERT INTO {HASH} VALUE {{'pk': 'a'}}"}]})
    add("partiql transaction/read and write", "ExecuteTransaction", {"TransactStatements": [
        {"Statement": f"SELECT * FROM {HASH} WHERE pk = 'a'"}, {"Statement": f"DELETE FROM {HASH} WHERE pk = 'b'"}]})
    add("partiql transaction/reads", "ExecuteTransaction", {"TransactStatements": [
        {"Statement": f"SELECT * FROM {HASH} WHERE pk = 'a'"}, {"Statement": f"SELECT n FROM {HASH} WHERE pk = 'b'"}]})
    add("partiql transaction/same item", "ExecuteTransaction", {"TransactStatements": [
        {"Statement": f"UPDATE {HASH} SET n = 7 WHERE pk = 'a'"}, {"Statement": f"DELETE FROM {HASH} WHERE pk = 'a'"}]})
    add("partiql transaction/scan", "ExecuteTransaction", {"TransactStatements": [{"Statement": f"SELECT * FROM {HASH}"}]})
    add("partiql transaction/empty", "ExecuteTransaction", {"TransactStatements": []})
    return out


# -- running ----------------------------------------------------------------------------


class Endpoint:
    """One server, spoken to over a kept-alive HTTP connection."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def call(self, operation: str, body, service: str = "DynamoDB_20120810") -> tuple[int, dict]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"{service}.{operation}",
                   "Authorization": AUTH, "X-Amz-Date": "20260101T000000Z"}
        for attempt in range(2):
            try:
                self.conn.request("POST", "/", data, headers)
                response = self.conn.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt:
                    raise
        try:
            return response.status, json.loads(raw) if raw else {}
        except ValueError:
            return response.status, {"__raw": raw[:200].decode("latin-1")}


def normalised(operation: str, request: dict, status: int, body: dict) -> dict:
    """What is compared of an answer."""
    if status != 200:
        message = body.get("message", body.get("Message"))
        out = {"status": status, "type": str(body.get("__type", "")).rsplit("#", 1)[-1], "message": message}
        if "CancellationReasons" in body:
            out["reasons"] = body["CancellationReasons"]
        if "Item" in body:
            out["item"] = body["Item"]
        return out
    body = dict(body)
    body.pop("ConsumedCapacity", None)
    body.pop("LastEvaluatedKey", None) if operation == "Scan" else None
    if (operation == "Scan" or operation == "ExecuteStatement" and "ORDER BY" not in json.dumps(request)) \
            and "Items" in body:
        body["Items"] = sorted(body["Items"], key=lambda item: json.dumps(item, sort_keys=True))
    if operation == "BatchGetItem":
        body["Responses"] = {table: sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
                             for table, items in body.get("Responses", {}).items()}
    return {"status": 200, "result": body}


def table_state(endpoint: Endpoint) -> dict:
    """Every item of the tables writes touch, in a comparable order."""
    state = {}
    for table in (HASH, RANGE):
        status, body = endpoint.call("Scan", {"TableName": table, "ConsistentRead": True})
        state[table] = sorted((json.dumps(item, sort_keys=True) for item in body.get("Items", [])))
    return state


def _state_difference(shoal: dict, local: dict) -> tuple[list, list]:
    """The items only one server holds after a write both answered alike."""
    only = ([], [])
    for table in shoal:
        mine, theirs = set(shoal[table]), set(local[table])
        only[0].extend(json.loads(item) for item in sorted(mine - theirs))
        only[1].extend(json.loads(item) for item in sorted(theirs - mine))
    return only


def _envelope_only(shoal: dict, local: dict) -> bool:
    """Whether two answers differ only in Coral's "1 validation error
    detected: " head, which Shoal keeps for PutItem, UpdateItem and DeleteItem
    faults as DynamoDB's recorded answers do, and DynamoDB Local drops."""
    head = "1 validation error detected: "
    message = shoal.get("message")
    return (shoal.get("status") == local.get("status") == 400 and shoal.get("type") == local.get("type")
            and isinstance(message, str) and message.startswith(head) and message[len(head):] == local.get("message"))


def reseed(endpoints: list[Endpoint]) -> None:
    """Put every table back to its seed items (and only those)."""
    for endpoint in endpoints:
        for table in TABLES:
            name, key_names = table["TableName"], [k["AttributeName"] for k in table["KeySchema"]]
            seeds = {json.dumps({k: item[k] for k in key_names}, sort_keys=True) for item in SEED.get(name, [])}
            status, body = endpoint.call("Scan", {"TableName": name, "ConsistentRead": True,
                                                  "ProjectionExpression": ", ".join(key_names)})
            for key in body.get("Items", []):
                if json.dumps(key, sort_keys=True) not in seeds:
                    endpoint.call("DeleteItem", {"TableName": name, "Key": key})
        for table, items in SEED.items():
            if table in (VARIED, ORDER_S):  # never written by a case
                continue
            for item in items:
                endpoint.call("PutItem", {"TableName": table, "Item": item})


def setup(endpoint: Endpoint) -> None:
    create_tables(endpoint, TABLES)


def create_tables(endpoint: Endpoint, tables: list[dict]) -> None:
    """``tables`` (CreateTable requests) made anew on ``endpoint``, ACTIVE."""
    for table in tables:
        endpoint.call("DeleteTable", {"TableName": table["TableName"]})
    for table in tables:
        status, body = endpoint.call("CreateTable", table)
        if status != 200:
            raise SystemExit(f"CreateTable {table['TableName']}: {status} {body}")
    for table in tables:
        for _ in range(100):
            status, body = endpoint.call("DescribeTable", {"TableName": table["TableName"]})
            if body.get("Table", {}).get("TableStatus") == "ACTIVE":
                break
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on port {port}")


def start_local(jar: str | None) -> tuple[str, subprocess.Popen]:
    jar = jar or next(iter(glob.glob("/tmp/**/DynamoDBLocal.jar", recursive=True)
                           + glob.glob(os.path.expanduser("~/.npm/**/DynamoDBLocal.jar"), recursive=True)), None)
    if jar is None:
        raise SystemExit("DynamoDB Local not found: pass --jar or --local")
    port = _free_port()
    folder = os.path.dirname(jar)
    proc = subprocess.Popen(["java", "-Djava.library.path=DynamoDBLocal_lib", "-jar", jar, "-port", str(port),
                             "-inMemory"], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port)
    return f"http://127.0.0.1:{port}", proc


def start_shoal() -> tuple[str, subprocess.Popen]:
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="sweep-")
    proc = subprocess.Popen([sys.executable, "-m", "shoal", "serve", "--port", str(port), "--data-dir", data_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port)
    return f"http://127.0.0.1:{port}", proc


@contextlib.contextmanager
def servers(shoal_url: str | None, local_url: str | None, jar: str | None):
    """The URLs of a Shoal and of a DynamoDB Local, each started (and stopped
    afterwards) unless given: what every differential script runs against."""
    children = []
    try:
        if shoal_url is None:
            shoal_url, proc = start_shoal()
            children.append(proc)
        if local_url is None:
            local_url, proc = start_local(jar)
            children.append(proc)
        yield shoal_url, local_url
    finally:
        for proc in children:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoal", help="a running Shoal's URL (default: start one)")
    parser.add_argument("--local", help="a running DynamoDB Local's URL (default: start one)")
    parser.add_argument("--jar", help="DynamoDBLocal.jar to start")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--json", help="write the differences to this file")
    parser.add_argument("--all", action="store_true", help="print every case, not only the differences")
    parser.add_argument("--strict", action="store_true",
                        help="also list answers that differ only in the envelope Shoal keeps for the single-item "
                             "writes (docs/status.md: DynamoDB's recorded answers have it, DynamoDB Local's not)")
    args = parser.parse_args(argv)
    with servers(args.shoal, args.local, args.jar) as (shoal_url, local_url):
        shoal, local = Endpoint(shoal_url), Endpoint(local_url)
        for endpoint in (shoal, local):
            setup(endpoint)
        differences = []
        enveloped = 0
        selected = [case for case in cases() if not args.only or args.only in case[0]]
        for name, operation, body in selected:
            if operation not in READS:
                reseed([shoal, local])
            answers = [normalised(operation, body, *endpoint.call(operation, body)) for endpoint in (shoal, local)]
            if operation not in READS and answers[0] == answers[1]:  # the same answer: compare what it left
                states = [table_state(endpoint) for endpoint in (shoal, local)]
                if states[0] != states[1]:
                    answers = [dict(answer, state=state) for answer, state in zip(answers, _state_difference(*states))]
            if not args.strict and _envelope_only(*answers):
                enveloped += 1
                continue
            if answers[0] != answers[1] or args.all:
                differences.append({"case": name, "operation": operation, "shoal": answers[0], "local": answers[1]})
                print(f"== {name} ({operation})\n   shoal: {json.dumps(answers[0])[:600]}\n"
                      f"   local: {json.dumps(answers[1])[:600]}")
        print(f"\n{len(selected)} cases, {len(differences)} differences"
              + (f" ({enveloped} more only in Shoal's '1 validation error detected: ' envelope)" if enveloped else ""))
        if args.json:
            with open(args.json, "w") as out:
                json.dump(differences, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
