"""Arbitrary JSON in every parameter of every operation and in every attribute
value's payload, POSTed to a real ``shoal serve``: a 2xx, or a 4xx naming a
DynamoDB error type; never a 5xx, never a dropped connection (issue 22).

The operations are those of botocore's service models (DynamoDB and DynamoDB
Streams) that Shoal offers, and each operation's parameters are its input
members in the model.  Each request starts from a valid request of the
operation (``TEMPLATES``) with one top-level parameter, or the whole body,
replaced by an arbitrary JSON value, so that a value that passes the model's
checks reaches the operation itself.  Attribute values get the same treatment
one level down: ``{tag: anything}`` for each type tag, alone or nested in L and
M, in every place a request carries attribute values (``VALUE_SLOTS``).

The default run is short and deterministic (``derandomize=True``): a few
hundred requests.  For a longer hunt, ``SHOAL_ARBITRARY_SCALE=N`` multiplies
the number of examples and ``SHOAL_ARBITRARY_SEED=S`` draws other ones.
"""

from __future__ import annotations

import http.client
import json
import os
from dataclasses import dataclass

import botocore.session
import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st

from shoal.api import operations as offered_operations
from tests.shoal_process import ShoalProcess

SCALE = max(1, int(os.environ.get("SHOAL_ARBITRARY_SCALE", "1")))
SEED = int(os.environ["SHOAL_ARBITRARY_SEED"]) if os.environ.get("SHOAL_ARBITRARY_SEED") else None

_SESSION = botocore.session.get_session()
_MODELS = {
    "DynamoDB_20120810": _SESSION.get_service_model("dynamodb"),
    "DynamoDBStreams_20120810": _SESSION.get_service_model("dynamodbstreams"),
}
_OFFERED = offered_operations()

# (target prefix, operation, its input members in the model)
OPERATIONS = [
    (prefix, name, list(op.input_shape.members) if op.input_shape is not None else [])
    for prefix, model in _MODELS.items()
    for name in model.operation_names
    if name in _OFFERED
    for op in [model.operation_model(name)]
]

# Error types a 4xx may name: the models' own, and those of AWS's request layer.
ERROR_TYPES = {
    name
    for model in _MODELS.values()
    for name in model.shape_names
    if model.shape_for(name).metadata.get("exception")
} | {
    "ValidationException", "SerializationException", "UnknownOperationException",
    "MissingAuthenticationTokenException", "AccessDeniedException", "UnrecognizedClientException",
    "IncompleteSignatureException", "InvalidSignatureException", "ThrottlingException",
}

ARN = "arn:aws:dynamodb:us-east-1:000000000000"
KEY = {"pk": {"S": "a"}, "sk": {"N": "1"}}
ITEM = {**KEY, "g": {"S": "g1"}, "l": {"N": "5"}, "x": {"N": "2"},
        "m": {"M": {"y": {"L": [{"S": "z"}, {"BS": ["AAEC"]}]}}}, "s": {"SS": ["k", "l"]}}
NAMES = {"#x": "x"}
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
    "Action": "dynamodb:GetItem", "Resource": f"{ARN}:table/arb_u"}]})

# Valid requests of each operation (several where the legacy parameters and
# expressions exclude each other).  "{stream_arn}", "{shard_id}",
# "{shard_iterator}", "{backup_arn}" and "{next_token}" are filled in once the
# server runs.  Tables: "arb" (pk S, sk N, an LSI, a GSI, a stream), "arb_b" (a
# binary hash key), "arb_u" (for the operations that change a table).
TEMPLATES: dict[str, list[dict]] = {
    "BatchExecuteStatement": [
        {"Statements": [{"Statement": "UPDATE arb SET x = ? WHERE pk = ? AND sk = ?",
                         "Parameters": [{"N": "3"}, {"S": "a"}, {"N": "1"}]},
                        {"Statement": "INSERT INTO arb VALUE {'pk': ?, 'sk': ?}", "Parameters": [{"S": "b"}, {"N": "2"}],
                         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}],
         "ReturnConsumedCapacity": "TOTAL"},
        {"Statements": [{"Statement": 'SELECT pk, m.y[0] FROM "arb" WHERE pk = ? AND sk = ?',
                         "Parameters": [{"S": "a"}, {"N": "1"}], "ConsistentRead": True}],
         "ReturnConsumedCapacity": "TOTAL"},
    ],
    "BatchGetItem": [
        {"RequestItems": {"arb": {"Keys": [KEY], "ProjectionExpression": "pk, #x, m.y[1]",
                                  "ExpressionAttributeNames": NAMES, "ConsistentRead": True},
                          "arb_b": {"Keys": [{"pk": {"B": "AAEC"}}]}},
         "ReturnConsumedCapacity": "INDEXES"},
        {"RequestItems": {"arb_b": {"Keys": [{"pk": {"B": "AAEC"}}], "AttributesToGet": ["pk"]}}},
    ],
    "BatchWriteItem": [
        {"RequestItems": {"arb": [{"PutRequest": {"Item": {**ITEM, "sk": {"N": "7"}}}},
                                  {"DeleteRequest": {"Key": {"pk": {"S": "a"}, "sk": {"N": "8"}}}}],
                          "arb_b": [{"PutRequest": {"Item": {"pk": {"B": "AAEC"}, "v": {"B": "/w=="}}}}]},
         "ReturnConsumedCapacity": "TOTAL", "ReturnItemCollectionMetrics": "SIZE"},
    ],
    "CreateBackup": [{"TableName": "arb", "BackupName": "arb_backup"}],
    "CreateTable": [
        {"TableName": "arb_new", "BillingMode": "PROVISIONED",
         "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
         "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "N"},
                                  {"AttributeName": "g", "AttributeType": "B"}],
         "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
         "LocalSecondaryIndexes": [{"IndexName": "lsi_1", "KeySchema": [
             {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "g", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x"]}}],
         "GlobalSecondaryIndexes": [{"IndexName": "gsi_1", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "KEYS_ONLY"},
                                     "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}],
         "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
         "SSESpecification": {"Enabled": False}, "Tags": [{"Key": "k", "Value": "v"}],
         "TableClass": "STANDARD", "DeletionProtectionEnabled": False},
        {"TableName": "arb_new2", "BillingMode": "PAY_PER_REQUEST",
         "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
         "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
         "OnDemandThroughput": {"MaxReadRequestUnits": 10, "MaxWriteRequestUnits": 10},
         "WarmThroughput": {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000},
         "ResourcePolicy": POLICY},
    ],
    "DeleteBackup": [{"BackupArn": f"{ARN}:table/arb/backup/01700000000000-abcdef12"}],
    "DeleteItem": [
        {"TableName": "arb", "Key": {"pk": {"S": "a"}, "sk": {"N": "9"}},
         "ConditionExpression": "attribute_not_exists(#x) OR x < :v", "ExpressionAttributeNames": NAMES,
         "ExpressionAttributeValues": {":v": {"N": "5"}}, "ReturnValues": "ALL_OLD",
         "ReturnConsumedCapacity": "TOTAL", "ReturnItemCollectionMetrics": "SIZE",
         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
        {"TableName": "arb", "Key": {"pk": {"S": "a"}, "sk": {"N": "9"}},
         "Expected": {"x": {"ComparisonOperator": "NULL"}, "pk": {"Exists": False}}, "ConditionalOperator": "OR"},
    ],
    "DeleteResourcePolicy": [{"ResourceArn": f"{ARN}:table/arb_u", "ExpectedRevisionId": "1"}],
    "DeleteTable": [{"TableName": "arb_gone"}],
    "DescribeBackup": [{"BackupArn": "{backup_arn}"}],
    "DescribeEndpoints": [{}],
    "DescribeLimits": [{}],
    "DescribeTable": [{"TableName": "arb"}],
    "DescribeTimeToLive": [{"TableName": "arb"}],
    "ExecuteStatement": [
        {"Statement": 'SELECT pk, m.y FROM "arb" WHERE pk = ? AND sk > ?', "Parameters": [{"S": "a"}, {"N": "0"}],
         "ConsistentRead": True, "Limit": 1, "ReturnConsumedCapacity": "TOTAL"},
        {"Statement": 'SELECT * FROM "arb"."by_g" WHERE g = ?', "Parameters": [{"S": "g1"}],
         "NextToken": "{next_token}", "Limit": 2},
        {"Statement": "UPDATE arb SET x = x + ? SET m.y[0] = ? REMOVE q WHERE pk = ? AND sk = ? RETURNING ALL NEW *",
         "Parameters": [{"N": "1"}, {"S": "w"}, {"S": "a"}, {"N": "1"}],
         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
        {"Statement": "INSERT INTO arb VALUE {'pk': ?, 'sk': ?, 'b': ?}",
         "Parameters": [{"S": "c"}, {"N": "3"}, {"B": "AAEC"}]},
        {"Statement": "DELETE FROM arb WHERE pk = ? AND sk = ?", "Parameters": [{"S": "zz"}, {"N": "9"}]},
    ],
    "ExecuteTransaction": [
        {"TransactStatements": [
            {"Statement": "UPDATE arb SET x = ? WHERE pk = ? AND sk = ?",
             "Parameters": [{"N": "4"}, {"S": "a"}, {"N": "1"}], "ReturnValuesOnConditionCheckFailure": "NONE"},
            {"Statement": "EXISTS(SELECT * FROM arb WHERE pk = ? AND sk = ? AND x = ?)",
             "Parameters": [{"S": "a"}, {"N": "2"}, {"N": "2"}]}],
         "ClientRequestToken": "token-1", "ReturnConsumedCapacity": "INDEXES"},
        {"TransactStatements": [{"Statement": 'SELECT * FROM "arb" WHERE pk = ? AND sk = ?',
                                 "Parameters": [{"S": "a"}, {"N": "1"}]}]},
    ],
    "GetItem": [
        {"TableName": "arb", "Key": KEY, "ProjectionExpression": "#x, m.y[1], pk", "ExpressionAttributeNames": NAMES,
         "ConsistentRead": True, "ReturnConsumedCapacity": "TOTAL"},
        {"TableName": "arb", "Key": KEY, "AttributesToGet": ["x", "m"]},
    ],
    "GetResourcePolicy": [{"ResourceArn": f"{ARN}:table/arb_u"}],
    "ListBackups": [{"TableName": "arb", "Limit": 5, "TimeRangeLowerBound": 0, "TimeRangeUpperBound": 4102444800,
                     "ExclusiveStartBackupArn": "{backup_arn}", "BackupType": "ALL"}],
    "ListTables": [{"ExclusiveStartTableName": "arb", "Limit": 3}],
    "ListTagsOfResource": [{"ResourceArn": f"{ARN}:table/arb_u", "NextToken": "x"}],
    "PutItem": [
        {"TableName": "arb", "Item": {**ITEM, "sk": {"N": "2"}},
         "ConditionExpression": "attribute_not_exists(pk) OR #x < :v", "ExpressionAttributeNames": NAMES,
         "ExpressionAttributeValues": {":v": {"N": "5"}}, "ReturnValues": "ALL_OLD",
         "ReturnConsumedCapacity": "INDEXES", "ReturnItemCollectionMetrics": "SIZE",
         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
        {"TableName": "arb", "Item": {**ITEM, "sk": {"N": "2"}},
         "Expected": {"x": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "0"}, {"N": "9"}]},
                      "s": {"Value": {"SS": ["k", "l"]}}},
         "ConditionalOperator": "OR"},
    ],
    "PutResourcePolicy": [{"ResourceArn": f"{ARN}:table/arb_u", "Policy": POLICY, "ExpectedRevisionId": "NO_POLICY",
                           "ConfirmRemoveSelfResourceAccess": False}],
    "Query": [
        {"TableName": "arb", "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
         "FilterExpression": "size(m) > :a AND contains(s, :k)", "ProjectionExpression": "pk, #x, m.y[0]",
         "ExpressionAttributeNames": NAMES,
         "ExpressionAttributeValues": {":p": {"S": "a"}, ":a": {"N": "0"}, ":b": {"N": "10"}, ":k": {"S": "k"}},
         "Limit": 5, "ScanIndexForward": False, "ConsistentRead": True, "Select": "SPECIFIC_ATTRIBUTES",
         "ExclusiveStartKey": {"pk": {"S": "a"}, "sk": {"N": "1"}}, "ReturnConsumedCapacity": "INDEXES"},
        {"TableName": "arb", "IndexName": "by_g", "KeyConditions": {
            "g": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "g1"}]}},
         "QueryFilter": {"s": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [{"S": "k"}]},
                         "x": {"ComparisonOperator": "IN", "AttributeValueList": [{"N": "2"}, {"N": "3"}]}},
         "ConditionalOperator": "AND", "AttributesToGet": ["pk", "s"], "Select": "SPECIFIC_ATTRIBUTES",
         "ExclusiveStartKey": {"pk": {"S": "a"}, "sk": {"N": "0"}, "g": {"S": "g1"}}},
        {"TableName": "arb", "IndexName": "by_l", "KeyConditionExpression": "pk = :p AND l > :l",
         "ExpressionAttributeValues": {":p": {"S": "a"}, ":l": {"N": "1"}}, "Select": "ALL_PROJECTED_ATTRIBUTES"},
    ],
    "RestoreTableFromBackup": [{"TargetTableName": "arb_restored", "BackupArn": "{backup_arn}",
                                "BillingModeOverride": "PAY_PER_REQUEST", "GlobalSecondaryIndexOverride": [],
                                "LocalSecondaryIndexOverride": [], "SSESpecificationOverride": {"Enabled": False}}],
    "Scan": [
        {"TableName": "arb", "FilterExpression": "#x > :v OR begins_with(pk, :p)", "ExpressionAttributeNames": NAMES,
         "ExpressionAttributeValues": {":v": {"N": "0"}, ":p": {"S": "a"}}, "ProjectionExpression": "pk, m",
         "Limit": 3, "Segment": 0, "TotalSegments": 2, "ConsistentRead": True, "Select": "SPECIFIC_ATTRIBUTES",
         "ReturnConsumedCapacity": "TOTAL"},
        {"TableName": "arb", "IndexName": "by_g", "ScanFilter": {
            "x": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "1"}]},
            "m": {"ComparisonOperator": "NOT_NULL"}},
         "ConditionalOperator": "OR", "AttributesToGet": ["pk"], "Select": "SPECIFIC_ATTRIBUTES",
         "ExclusiveStartKey": {"pk": {"S": "a"}, "sk": {"N": "0"}, "g": {"S": "g0"}}},
    ],
    "TagResource": [{"ResourceArn": f"{ARN}:table/arb_u", "Tags": [{"Key": "k", "Value": "v"}]}],
    "TransactGetItems": [
        {"TransactItems": [{"Get": {"TableName": "arb", "Key": KEY, "ProjectionExpression": "#x",
                                    "ExpressionAttributeNames": NAMES}},
                           {"Get": {"TableName": "arb_b", "Key": {"pk": {"B": "AAEC"}}}}],
         "ReturnConsumedCapacity": "TOTAL"},
    ],
    "TransactWriteItems": [
        {"TransactItems": [
            {"Put": {"TableName": "arb", "Item": {**ITEM, "sk": {"N": "3"}}, "ConditionExpression": "attribute_exists(#x) OR :t = :t",
                     "ExpressionAttributeNames": NAMES, "ExpressionAttributeValues": {":t": {"BOOL": True}}}},
            {"Update": {"TableName": "arb", "Key": KEY, "UpdateExpression": "SET #x = :v ADD s :s",
                        "ExpressionAttributeNames": NAMES,
                        "ExpressionAttributeValues": {":v": {"N": "1"}, ":s": {"SS": ["q"]}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            {"Delete": {"TableName": "arb", "Key": {"pk": {"S": "a"}, "sk": {"N": "9"}}}},
            {"ConditionCheck": {"TableName": "arb_b", "Key": {"pk": {"B": "AAEC"}},
                                "ConditionExpression": "attribute_exists(pk)"}}],
         "ReturnConsumedCapacity": "INDEXES", "ReturnItemCollectionMetrics": "SIZE",
         "ClientRequestToken": "token-2"},
    ],
    "UntagResource": [{"ResourceArn": f"{ARN}:table/arb_u", "TagKeys": ["k"]}],
    "UpdateItem": [
        {"TableName": "arb", "Key": KEY,
         "UpdateExpression": "SET n = if_not_exists(n, :z) + :one, m.y = list_append(m.y, :l) REMOVE q ADD s :s",
         "ConditionExpression": "attribute_exists(pk) AND size(#x) >= :z", "ExpressionAttributeNames": NAMES,
         "ExpressionAttributeValues": {":z": {"N": "0"}, ":one": {"N": "1"}, ":l": {"L": [{"S": "x"}]},
                                       ":s": {"SS": ["k"]}},
         "ReturnValues": "UPDATED_NEW", "ReturnConsumedCapacity": "TOTAL", "ReturnItemCollectionMetrics": "SIZE",
         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
        {"TableName": "arb", "Key": KEY,
         "AttributeUpdates": {"n": {"Action": "ADD", "Value": {"N": "2"}}, "t": {"Action": "PUT", "Value": {"NS": ["1", "2"]}},
                              "q": {"Action": "DELETE"}},
         "Expected": {"x": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "0"}, {"N": "99"}]},
                      "pk": {"Value": {"S": "a"}}},
         "ConditionalOperator": "AND", "ReturnValues": "ALL_NEW"},
    ],
    "UpdateTable": [
        {"TableName": "arb_u", "BillingMode": "PAY_PER_REQUEST",
         "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}},
        {"TableName": "arb_u", "AttributeDefinitions": [{"AttributeName": "h", "AttributeType": "N"}],
         "GlobalSecondaryIndexUpdates": [{"Create": {"IndexName": "by_h", "KeySchema": [
             {"AttributeName": "h", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}}]},
        {"TableName": "arb_u", "DeletionProtectionEnabled": False},
        {"TableName": "arb_u", "TableClass": "STANDARD"},
    ],
    "UpdateTimeToLive": [{"TableName": "arb_u", "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "ttl"}}],
    # DynamoDB Streams
    "DescribeStream": [{"StreamArn": "{stream_arn}", "Limit": 10, "ExclusiveStartShardId": "{shard_id}"}],
    "GetRecords": [{"ShardIterator": "{shard_iterator}", "Limit": 10}],
    "GetShardIterator": [
        {"StreamArn": "{stream_arn}", "ShardId": "{shard_id}", "ShardIteratorType": "TRIM_HORIZON"},
        {"StreamArn": "{stream_arn}", "ShardId": "{shard_id}", "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
         "SequenceNumber": "{sequence_number}"},
    ],
    "ListStreams": [{"TableName": "arb", "Limit": 5, "ExclusiveStartStreamArn": "{stream_arn}"}],
}

# ---------------------------------------------------------------- arbitrary JSON

_ENUMS = sorted({value for model in _MODELS.values() for name in model.shape_names
                 for value in (getattr(model.shape_for(name), "enum", None) or [])})
_MEMBER_NAMES = sorted({member for model in _MODELS.values() for name in model.shape_names
                        for member in getattr(model.shape_for(name), "members", {})})
_TAGS = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"]

INTERESTING_STRINGS = [
    "", "a", "pk", "sk", "g", "x", "m", ":v", "#x", "AAAA", "AA==", "/w==", "A===", "====",
    "\u00fc\u00fc\u00fc\u00fc", "\u00e9t\u00e9", "\x00\x01\x02\x03", "\u4e2d\u6587\u5b57\u7b26", "\U0001f600" * 4,
    "1", "-0", "1e999", "1E-131", "9" * 39, "0.0000001", " 1", "NaN", "Infinity", "0x10",
    "x" * 70000, "\u00e9" * 30000, "A" * 4000, "AAEC" * 20000,
    "attribute_exists(pk)", "SET x = :v", "pk = :v", "(((", "a.b[1].c", "size(m) > :v", "#x.y[0]",
    'SELECT * FROM "arb"', "UPDATE arb SET x = ? WHERE pk = ? AND sk = ?", "?", "'a'",
    f"{ARN}:table/arb_u", f"{ARN}:table/arb/stream/2026-01-01T00:00:00.000", "arn:aws:x", "arn:",
    "shardId-00000000000000000000-00000000", "arb|1|AAAA", "2026-01-01T00:00:00Z",
]

_texts = st.one_of(st.text(max_size=40), st.sampled_from(INTERESTING_STRINGS), st.sampled_from(_ENUMS))
_keys = st.one_of(st.text(max_size=10), st.sampled_from(_MEMBER_NAMES + _TAGS + ["pk", "sk", "g", "x", ":v", "#x"]))
_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-10**40, max_value=10**40),
    st.sampled_from([2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63 - 1, 10**400, -1, 0]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _texts)
ANY_JSON = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(_keys, children, max_size=5)),
    max_leaves=20,
)


def _typed_payload(tag: str):
    """Payloads shaped like the tag's, to get past the JSON-type checks."""
    b64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\u00fc\x00 ", max_size=12)
    numbers = st.one_of(st.from_regex(r"-?[0-9]{0,45}(\.[0-9]{0,45})?([eE][-+]?[0-9]{1,4})?", fullmatch=True), _texts)
    if tag in ("S", "N", "B"):
        return {"S": _texts, "N": numbers, "B": st.one_of(b64, _texts)}[tag]
    if tag in ("SS", "NS", "BS"):
        element = {"SS": _texts, "NS": numbers, "BS": st.one_of(b64, _texts)}[tag]
        return st.lists(st.one_of(element, st.none()), max_size=4)
    if tag in ("BOOL", "NULL"):
        return st.one_of(st.booleans(), st.sampled_from(["true", "false"]))
    values = st.builds(lambda t, p: {t: p}, st.sampled_from(["S", "N", "B", "SS", "BOOL"]), ANY_JSON)
    if tag == "L":
        return st.lists(values, max_size=4)
    return st.dictionaries(_keys, values, max_size=4)


def payloads(tag: str):
    return st.one_of(ANY_JSON, _typed_payload(tag))


def mostly(strategy, one_in: int = 4):
    """``strategy``, or arbitrary JSON one time in ``one_in``."""
    return st.integers(1, one_in).flatmap(lambda i: ANY_JSON if i == 1 else strategy)


_B64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=12)
_shaped_cache: dict = {}


def shaped(shape, depth: int = 0):
    """Values shaped like a model shape (so they get past the JSON-type checks
    and reach the rules behind them), with arbitrary JSON anywhere inside."""
    key = (shape.name, depth)
    if key not in _shaped_cache:
        # Mostly shaped: arbitrary JSON at one node in thirty, so that most
        # requests pass the JSON-type checks and reach the operation's own rules.
        own = _shaped(shape, depth)
        _shaped_cache[key] = mostly(own, 30) if depth else own
    return _shaped_cache[key]


def _shaped(shape, depth: int):
    kind = shape.type_name
    if depth > 5:
        return ANY_JSON
    if shape.name == "AttributeValue":
        return st.sampled_from(_TAGS).flatmap(lambda tag: st.builds(lambda p: {tag: p}, _typed_payload(tag)))
    if kind == "structure":
        members = {name: shaped(member, depth + 1) for name, member in shape.members.items()}
        return st.fixed_dictionaries({}, optional=members)
    if kind == "list":
        return st.lists(shaped(shape.member, depth + 1), max_size=3)
    if kind == "map":
        return st.dictionaries(_keys, shaped(shape.value, depth + 1), max_size=3)
    if kind == "string":
        enum = getattr(shape, "enum", None)
        return st.one_of(st.sampled_from(enum), _texts) if enum else _texts
    if kind == "boolean":
        return st.one_of(st.booleans(), st.sampled_from(["true", "false", "TRUE"]))
    if kind == "blob":
        return st.one_of(_B64, _texts)
    return _numbers  # integer, long, double, timestamp


def nested(av: dict, how: str):
    if how == "L":
        return {"L": [{"S": "first"}, av]}
    if how == "M":
        return {"M": {"k": av, "k2": {"N": "1"}}}
    if how == "LM":
        return {"L": [{"M": {"k": {"L": [av]}}}]}
    return av


# Every place a request carries attribute values: (operation, a request with the value there).
VALUE_SLOTS = {
    "PutItem.Item": ("PutItem", lambda v: {"TableName": "arb", "Item": {**KEY, "v": v}}),
    "PutItem.key": ("PutItem", lambda v: {"TableName": "arb_b", "Item": {"pk": v}}),
    "PutItem.Expected": ("PutItem", lambda v: {"TableName": "arb", "Item": KEY, "Expected": {"v": {"Value": v}}}),
    "GetItem.Key": ("GetItem", lambda v: {"TableName": "arb_b", "Key": {"pk": v}}),
    "UpdateItem.Key": ("UpdateItem", lambda v: {"TableName": "arb", "Key": {"pk": v, "sk": {"N": "1"}}}),
    "UpdateItem.ExpressionAttributeValues": ("UpdateItem", lambda v: {
        "TableName": "arb", "Key": KEY, "UpdateExpression": "SET v = :v ADD w :v",
        "ConditionExpression": "attribute_not_exists(v) OR v <> :v", "ExpressionAttributeValues": {":v": v}}),
    "UpdateItem.AttributeUpdates.PUT": ("UpdateItem", lambda v: {
        "TableName": "arb", "Key": KEY, "AttributeUpdates": {"v": {"Action": "PUT", "Value": v}}}),
    "UpdateItem.AttributeUpdates.ADD": ("UpdateItem", lambda v: {
        "TableName": "arb", "Key": KEY, "AttributeUpdates": {"s": {"Action": "ADD", "Value": v}}}),
    "UpdateItem.AttributeUpdates.DELETE": ("UpdateItem", lambda v: {
        "TableName": "arb", "Key": KEY, "AttributeUpdates": {"s": {"Action": "DELETE", "Value": v}}}),
    "UpdateItem.Expected.AttributeValueList": ("UpdateItem", lambda v: {
        "TableName": "arb", "Key": KEY, "AttributeUpdates": {"v": {"Action": "DELETE"}},
        "Expected": {"x": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [v, v]}}}),
    "DeleteItem.Key": ("DeleteItem", lambda v: {"TableName": "arb_b", "Key": {"pk": v}}),
    "DeleteItem.Expected": ("DeleteItem", lambda v: {
        "TableName": "arb", "Key": {"pk": {"S": "zz"}, "sk": {"N": "9"}},
        "Expected": {"x": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [v]}}}),
    "Query.KeyConditions": ("Query", lambda v: {
        "TableName": "arb", "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]},
                                              "sk": {"ComparisonOperator": "GT", "AttributeValueList": [v]}}}),
    "Query.QueryFilter": ("Query", lambda v: {
        "TableName": "arb", "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}},
        "QueryFilter": {"x": {"ComparisonOperator": "NE", "AttributeValueList": [v]}}}),
    "Query.ExpressionAttributeValues": ("Query", lambda v: {
        "TableName": "arb_b", "KeyConditionExpression": "pk = :v", "ExpressionAttributeValues": {":v": v}}),
    "Query.ExclusiveStartKey": ("Query", lambda v: {
        "TableName": "arb", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}},
        "ExclusiveStartKey": {"pk": {"S": "a"}, "sk": v}}),
    "Scan.ScanFilter": ("Scan", lambda v: {
        "TableName": "arb", "ScanFilter": {"m": {"ComparisonOperator": "NOT_CONTAINS", "AttributeValueList": [v]}}}),
    "Scan.ExpressionAttributeValues": ("Scan", lambda v: {
        "TableName": "arb", "FilterExpression": "x = :v OR contains(m.y, :v) OR x IN (:v, :v)",
        "ExpressionAttributeValues": {":v": v}}),
    "Scan.ExclusiveStartKey": ("Scan", lambda v: {"TableName": "arb_b", "ExclusiveStartKey": {"pk": v}}),
    "BatchGetItem.Keys": ("BatchGetItem", lambda v: {"RequestItems": {"arb_b": {"Keys": [{"pk": v}]}}}),
    "BatchWriteItem.PutRequest": ("BatchWriteItem", lambda v: {
        "RequestItems": {"arb": [{"PutRequest": {"Item": {**KEY, "sk": {"N": "4"}, "v": v}}}]}}),
    "BatchWriteItem.PutRequest.key": ("BatchWriteItem", lambda v: {
        "RequestItems": {"arb_b": [{"PutRequest": {"Item": {"pk": v}}}]}}),
    "BatchWriteItem.DeleteRequest": ("BatchWriteItem", lambda v: {
        "RequestItems": {"arb_b": [{"DeleteRequest": {"Key": {"pk": v}}}]}}),
    "TransactWriteItems.Put": ("TransactWriteItems", lambda v: {
        "TransactItems": [{"Put": {"TableName": "arb", "Item": {**KEY, "sk": {"N": "5"}, "v": v}}}]}),
    "TransactWriteItems.Update": ("TransactWriteItems", lambda v: {
        "TransactItems": [{"Update": {"TableName": "arb", "Key": KEY, "UpdateExpression": "SET v = :v",
                                      "ExpressionAttributeValues": {":v": v}}}]}),
    "TransactWriteItems.Delete": ("TransactWriteItems", lambda v: {
        "TransactItems": [{"Delete": {"TableName": "arb_b", "Key": {"pk": v}}}]}),
    "TransactWriteItems.ConditionCheck": ("TransactWriteItems", lambda v: {
        "TransactItems": [{"ConditionCheck": {"TableName": "arb", "Key": KEY, "ConditionExpression": "v = :v",
                                              "ExpressionAttributeValues": {":v": v}}}]}),
    "TransactGetItems.Get": ("TransactGetItems", lambda v: {
        "TransactItems": [{"Get": {"TableName": "arb_b", "Key": {"pk": v}}}]}),
    "ExecuteStatement.SELECT": ("ExecuteStatement", lambda v: {
        "Statement": 'SELECT * FROM "arb" WHERE pk = ? AND x = ?', "Parameters": [{"S": "a"}, v]}),
    "ExecuteStatement.INSERT": ("ExecuteStatement", lambda v: {
        "Statement": "INSERT INTO arb VALUE {'pk': 'ins', 'sk': 1, 'v': ?}", "Parameters": [v]}),
    "ExecuteStatement.UPDATE": ("ExecuteStatement", lambda v: {
        "Statement": "UPDATE arb SET v = ? WHERE pk = ? AND sk = 1", "Parameters": [v, {"S": "a"}]}),
    "BatchExecuteStatement": ("BatchExecuteStatement", lambda v: {
        "Statements": [{"Statement": "UPDATE arb SET v = ? WHERE pk = 'a' AND sk = 1", "Parameters": [v]}]}),
    "ExecuteTransaction": ("ExecuteTransaction", lambda v: {
        "TransactStatements": [{"Statement": "INSERT INTO arb VALUE {'pk': 'tx', 'sk': 1, 'v': ?}",
                                "Parameters": [v]}]}),
}


# ---------------------------------------------------------------- the server


class Client:
    """Raw JSON POSTs over one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, prefix: str, operation: str, body) -> tuple[int, bytes]:
        raw = json.dumps(body).encode("utf-8") if not isinstance(body, bytes) else body
        try:
            self.conn.request("POST", "/", body=raw, headers={
                "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"{prefix}.{operation}"})
            response = self.conn.getresponse()
            data = response.read()
        except Exception:  # a dropped connection or a timeout: the next request starts afresh
            self.reconnect()
            raise
        if response.will_close:
            self.reconnect()
        return response.status, data

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def ok(self, operation: str, body: dict, prefix: str = "DynamoDB_20120810") -> dict:
        status, data = self.post(prefix, operation, body)
        assert status == 200, (operation, data)
        return json.loads(data)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server with the templates' tables, items, stream, backup and paging token."""
    server = ShoalProcess(tmp_path_factory.mktemp("arbitrary"), "--workers", "1").start()
    client = Client(server.port)
    client.ok("CreateTable", {
        "TableName": "arb", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in
                                 (("pk", "S"), ("sk", "N"), ("g", "S"), ("l", "N"))],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "LocalSecondaryIndexes": [{"IndexName": "by_l", "Projection": {"ProjectionType": "ALL"}, "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "l", "KeyType": "RANGE"}]}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_g", "Projection": {"ProjectionType": "ALL"}, "KeySchema": [
            {"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]}],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
    for name, key_type in (("arb_b", "B"), ("arb_u", "S")):
        client.ok("CreateTable", {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                                  "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": key_type}],
                                  "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})
    for sk in range(1, 4):
        client.ok("PutItem", {"TableName": "arb", "Item": {**ITEM, "sk": {"N": str(sk)}}})
    client.ok("PutItem", {"TableName": "arb_b", "Item": {"pk": {"B": "AAEC"}, "x": {"N": "1"}}})
    stream_arn = client.ok("DescribeTable", {"TableName": "arb"})["Table"]["LatestStreamArn"]
    shard = client.ok("DescribeStream", {"StreamArn": stream_arn}, "DynamoDBStreams_20120810")[
        "StreamDescription"]["Shards"][0]
    iterator = client.ok("GetShardIterator", {"StreamArn": stream_arn, "ShardId": shard["ShardId"],
                                              "ShardIteratorType": "TRIM_HORIZON"},
                         "DynamoDBStreams_20120810")["ShardIterator"]
    backup_arn = client.ok("CreateBackup", {"TableName": "arb", "BackupName": "first_backup"})[
        "BackupDetails"]["BackupArn"]
    next_token = client.ok("ExecuteStatement", {"Statement": 'SELECT * FROM "arb"."by_g" WHERE g = ?',
                                                "Parameters": [{"S": "g1"}], "Limit": 1})["NextToken"]
    fill = {"{stream_arn}": stream_arn, "{shard_id}": shard["ShardId"], "{shard_iterator}": iterator,
            "{sequence_number}": shard["SequenceNumberRange"]["StartingSequenceNumber"],
            "{backup_arn}": backup_arn, "{next_token}": next_token}
    text = json.dumps(TEMPLATES)
    for placeholder, value in fill.items():
        text = text.replace(placeholder, value)
    templates = json.loads(text)
    first_answers = [(operation, *client.post(prefix, operation, body))
                     for prefix, operation, _ in OPERATIONS for body in templates.get(operation, [])]
    yield World(client, templates, first_answers, server)
    client.conn.close()
    server.stop()


@dataclass
class World:
    client: Client
    templates: dict[str, list[dict]]
    first_answers: list[tuple[str, int, bytes]]  # each template's answer on the fresh server
    server: ShoalProcess


def check_answer(world: World, operation: str, body, status: int, data: bytes) -> None:
    name = json.loads(data).get("__type", "").rpartition("#")[2] if 400 <= status < 500 else None
    if not (200 <= status < 300 or name in ERROR_TYPES):
        pytest.fail(f"{operation} answered {status} {data[:600]!r} to\n{json.dumps(body)[:2000]}\n"
                    f"server log:\n{world.server.log_tail()[-6000:]}")


def still_serving(client: Client) -> None:
    assert "TableNames" in client.ok("ListTables", {})


_SETTINGS = dict(deadline=None, derandomize=SEED is None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def seeded(test):
    return test if SEED is None else seed(SEED)(test)


@pytest.mark.parametrize("prefix, operation, members", OPERATIONS, ids=[op for _, op, _ in OPERATIONS])
def test_any_value_in_any_parameter(world, prefix, operation, members):
    client, templates = world.client, world.templates
    bases = templates.get(operation, [{}])
    input_shape = _MODELS[prefix].operation_model(operation).input_shape
    values = {member: mostly(shaped(input_shape.members[member], 1)) for member in members}
    values[None] = mostly(shaped(input_shape, 0)) if input_shape is not None else ANY_JSON

    @settings(max_examples=SCALE * max(4, 2 * len(members)), **_SETTINGS)
    @given(base=st.sampled_from(bases), data=st.data())
    @seeded
    def run(base, data):
        member = data.draw(st.sampled_from(members + [None]), "member")
        value = data.draw(values[member], "value")
        body = json.loads(json.dumps(base))
        if member is None:  # the whole body
            body = value
        else:
            body[member] = value
        status, data = client.post(prefix, operation, body)
        check_answer(world, operation, body, status, data)

    run()
    still_serving(client)


@pytest.mark.parametrize("tag", _TAGS)
def test_any_payload_in_any_type_tag(world, tag):
    client = world.client

    @settings(max_examples=SCALE * 15, **_SETTINGS)
    @given(slot=st.sampled_from(sorted(VALUE_SLOTS)), how=st.sampled_from(["", "L", "M", "LM"]),
           payload=payloads(tag))
    @seeded
    def run(slot, how, payload):
        operation, build = VALUE_SLOTS[slot]
        body = build(nested({tag: payload}, how))
        status, data = client.post("DynamoDB_20120810", operation, body)
        check_answer(world, operation, body, status, data)

    run()
    still_serving(client)


def test_every_offered_operation_has_a_valid_template(world):
    """The templates are valid requests (else the replaced parameters would not
    reach the operation): on the fresh server each answered a 2xx, or the 4xx
    its purpose explains."""
    expected_failures = ("ResourceNotFoundException", "ConditionalCheckFailedException",
                         "BackupNotFoundException", "PolicyNotFoundException")
    refused = [(operation, data) for operation, status, data in world.first_answers
               if status != 200 and json.loads(data)["__type"].rpartition("#")[2] not in expected_failures]
    assert not refused, "\n".join(f"{operation}: {data.decode()[:300]}" for operation, data in refused)
    assert {operation for operation, _, _ in world.first_answers} == {operation for _, operation, _ in OPERATIONS
                                                                       if operation in TEMPLATES}
