"""A second differential conformance sweep: DynamoDB Streams, and the item
paths' edge cases ``conformance_sweep.py`` did not cover, sent to Shoal and
to DynamoDB Local and their answers compared.

Not a test (it needs Java and DynamoDB Local): like the first sweep, a tool
to find where the two disagree, each difference then settled against
DynamoDB's documentation and recorded answers.  It reuses that sweep's way of
running both servers and of sending raw JSON.

Streams (``--part streams``): both servers get the same tables with a stream
of each view type, the same writes (puts, a put and an update that change
nothing, updates, a delete of a missing item, deletes), a table whose stream
is then disabled (a closed shard) and one that is then deleted.  A request
names a server's own ARNs, shard ids, sequence numbers and iterators by
placeholders (``$arn:<table>``, ``$shard:<table>``, ``$seq:<table>:<n>``,
``$iter:<table>``), resolved per server; answers have those values put
back as the placeholders, event ids and times replaced by their shape, and
a successful GetShardIterator is followed by a GetRecords of its iterator,
so that where an iterator starts is compared too.

Two writes are kept out of the streams part, as settled differences that
would shift or reword every later record: an UpdateItem of a missing item
with REMOVE alone (DynamoDB creates no item, DynamoDB Local one and its
INSERT record), and an UpdateItem naming its key's number in another
spelling ("2.50": DynamoDB Local's record echoes it, Shoal's is normalized).

Items (``--part items``): numbers (precision, exponents, arithmetic
overflow, sets equal after normalisation), binary values and sets, empty
values in keys and attributes, nesting depth, DynamoDB's item size at its
400 KB limit, 64 KB attribute names, key sizes, ReturnValues on every write,
ReturnValuesOnConditionCheckFailure, ReturnConsumedCapacity and
ReturnItemCollectionMetrics (kept in the comparison: the first sweep drops
ConsumedCapacity), and members a structure does not have.

Usage::

    python bench/conformance_streams.py [--part streams|items] [--shoal URL] [--local URL]
                                        [--jar PATH] [--only SUBSTRING] [--json OUT] [--all]

Prints each difference and a summary per part.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conformance_sweep import Endpoint as _Endpoint, servers  # noqa: E402

DYNAMODB, STREAMS = "DynamoDB_20120810", "DynamoDBStreams_20120810"


class Endpoint(_Endpoint):
    """One server over a kept-alive connection, for both services' targets,
    with the placeholders its own ARNs, ids and sequence numbers stand for."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.names: dict[str, str] = {}  # a server's own value -> its placeholder
        self.sequence_names: dict[str, str] = {}  # a record's SequenceNumber -> its placeholder
        self.values: dict[str, str] = {}  # placeholder -> the server's value

    def remember(self, placeholder: str, value: str) -> None:
        self.values[placeholder] = value
        self.names[value] = placeholder


def error_of(status: int, body: dict) -> dict:
    return {"status": status, "type": str(body.get("__type", "")).rsplit("#", 1)[-1],
            "message": body.get("message", body.get("Message"))}


def _sorted_items(items: list) -> list:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


# ================================================================ part 1: streams

VIEWS = {"keys": "KEYS_ONLY", "new": "NEW_IMAGE", "old": "OLD_IMAGE", "both": "NEW_AND_OLD_IMAGES"}
CLOSED, DROPPED = "cs_closed", "cs_dropped"


def _stream_table(name: str, view: str) -> dict:
    return {"TableName": name,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "N"}],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": view}}


def _writes(table: str) -> list[tuple[str, dict]]:
    """The same writes on every streamed table: each kind of stream record,
    and the writes DynamoDB writes no record for."""
    k1 = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    k2 = {"pk": {"S": "b"}, "sk": {"N": "2.50"}}
    return [
        ("PutItem", {"TableName": table, "Item": {**k1, "x": {"S": "one"}, "n": {"N": "1.0"}}}),
        ("PutItem", {"TableName": table, "Item": {**k1, "x": {"S": "one"}, "n": {"N": "1"}}}),  # nothing changes
        ("UpdateItem", {"TableName": table, "Key": k1, "UpdateExpression": "SET x = :x",
                        "ExpressionAttributeValues": {":x": {"S": "one"}}}),  # nothing changes
        ("UpdateItem", {"TableName": table, "Key": k1, "UpdateExpression": "SET x = :x ADD c :one",
                        "ExpressionAttributeValues": {":x": {"S": "two"}, ":one": {"N": "1"}}}),
        ("PutItem", {"TableName": table, "Item": {**k2, "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}]}}},
                                                  "ss": {"SS": ["z", "a"]}, "bs": {"BS": ["AQ==", "AA=="]},
                                                  "b": {"B": "AAEC"}, "ns": {"NS": ["10", "9", "1e2"]}}}),
        ("DeleteItem", {"TableName": table, "Key": {"pk": {"S": "nobody"}, "sk": {"N": "0"}}}),  # no item
        ("UpdateItem", {"TableName": table, "Key": k2, "UpdateExpression": "REMOVE nothere"}),  # nothing changes
        # Not here: an UpdateItem of a missing item with REMOVE alone, which creates no item in
        # DynamoDB (docs/status.md) and one in DynamoDB Local: its record would shift every other.
        ("UpdateItem", {"TableName": table, "Key": {"pk": {"S": "d"}, "sk": {"N": "4"}}}),  # creates the key alone
        ("DeleteItem", {"TableName": table, "Key": k1}),
        ("PutItem", {"TableName": table, "Item": {**k1, "x": {"S": "three"}}}),
        ("UpdateItem", {"TableName": table, "Key": {**k2, "sk": {"N": "2.5"}}, "UpdateExpression": "DELETE ss :a",
                        "ExpressionAttributeValues": {":a": {"SS": ["a"]}}}),
    ]


def streams_setup(endpoint: Endpoint) -> None:
    """Tables, streams and writes; remembers this server's ARNs, shard ids,
    sequence numbers and an iterator of each stream by placeholder."""
    tables = [_stream_table(f"cs_{label}", view) for label, view in VIEWS.items()]
    tables += [_stream_table(CLOSED, "NEW_AND_OLD_IMAGES"), _stream_table(DROPPED, "KEYS_ONLY")]
    for table in tables:
        status, body = endpoint.call("CreateTable", table)
        if status != 200:
            raise SystemExit(f"CreateTable {table['TableName']}: {status} {body}")
        arn = body["TableDescription"]["LatestStreamArn"]
        endpoint.remember(f"$arn:{table['TableName']}", arn)
        endpoint.remember(f"$label:{table['TableName']}", body["TableDescription"]["LatestStreamLabel"])
        endpoint.remember(f"$tablearn:{table['TableName']}", body["TableDescription"]["TableArn"])
    for table in tables:
        for operation, request in _writes(table["TableName"]):
            status, body = endpoint.call(operation, request)
            if status != 200:
                raise SystemExit(f"{operation}: {status} {body}")
    status, body = endpoint.call("UpdateTable", {"TableName": CLOSED, "StreamSpecification": {"StreamEnabled": False}})
    if status != 200:
        raise SystemExit(f"UpdateTable: {status} {body}")
    endpoint.call("DeleteTable", {"TableName": DROPPED})
    time.sleep(1.5)  # DynamoDB Local closes a disabled stream's shard a moment later
    for table in tables:
        name = table["TableName"]
        status, body = endpoint.call("DescribeStream", {"StreamArn": endpoint.values[f"$arn:{name}"]}, STREAMS)
        shard = body["StreamDescription"]["Shards"][0]
        endpoint.remember(f"$shard:{name}", shard["ShardId"])
        endpoint.remember(f"$start:{name}", shard["SequenceNumberRange"]["StartingSequenceNumber"])
        status, body = endpoint.call("GetShardIterator", {"StreamArn": endpoint.values[f"$arn:{name}"],
                                                          "ShardId": shard["ShardId"],
                                                          "ShardIteratorType": "TRIM_HORIZON"}, STREAMS)
        iterator = body["ShardIterator"]
        status, body = endpoint.call("GetRecords", {"ShardIterator": iterator}, STREAMS)
        for number, record in enumerate(body.get("Records", [])):
            endpoint.remember(f"$seq:{name}:{number}", record["dynamodb"]["SequenceNumber"])
            endpoint.sequence_names[record["dynamodb"]["SequenceNumber"]] = f"$seq:{name}:{number}"
        if "$seq:" + name + ":0" in endpoint.values:
            last = endpoint.values[f"$seq:{name}:{len(body['Records']) - 1}"]
            first = endpoint.values[f"$seq:{name}:0"]
            endpoint.values[f"$seq:{name}:last+1"] = str(int(last) + 1).zfill(len(last))
            endpoint.values[f"$seq:{name}:first-1"] = str(int(first) - 1).zfill(len(first))
        status, body = endpoint.call("GetShardIterator", {"StreamArn": endpoint.values[f"$arn:{name}"],
                                                          "ShardId": shard["ShardId"],
                                                          "ShardIteratorType": "TRIM_HORIZON"}, STREAMS)
        endpoint.values[f"$iter:{name}"] = body["ShardIterator"]  # not remembered: iterators differ by design
        endpoint.values[f"$truncated:{name}"] = body["ShardIterator"][:-1]


def resolve(value, endpoint: Endpoint):
    """A request with its placeholders replaced by this server's values
    (inside strings too, so that an ARN can be altered around one)."""
    if isinstance(value, dict):
        return {k: resolve(v, endpoint) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, endpoint) for v in value]
    if isinstance(value, str) and "$" in value:
        for placeholder in sorted(endpoint.values, key=len, reverse=True):
            value = value.replace(placeholder, endpoint.values[placeholder])
    return value


_DIGITS = re.compile(r"\d{21,40}")


def restore(value, endpoint: Endpoint):
    """An answer with this server's own values put back as placeholders, and
    what differs by design (event ids, times, iterators) as its shape."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "eventID":
                v = "<id>" if isinstance(v, str) and v else v
            elif k in ("ApproximateCreationDateTime", "CreationRequestDateTime"):
                v = "<time>" if isinstance(v, (int, float)) and abs(v - time.time()) < 3600 else v
            elif k in ("ShardIterator", "NextShardIterator"):
                v = "<iterator>" if isinstance(v, str) and v else v
            elif k == "awsRegion":
                v = "<region>"
            elif k == "SequenceNumber" and v in endpoint.sequence_names:  # not a shard's start of the same digits
                v = endpoint.sequence_names[v]
            else:
                v = restore(v, endpoint)
            out[k] = v
        return out
    if isinstance(value, list):
        return [restore(v, endpoint) for v in value]
    if isinstance(value, str):
        if value in endpoint.names:
            return endpoint.names[value]
        for own in sorted(endpoint.names, key=len, reverse=True):
            if len(own) > 8 and own in value:
                value = value.replace(own, endpoint.names[own])
        return _DIGITS.sub(lambda m: endpoint.names.get(m.group(0), "<seq>"), value)
    return value


def streams_cases() -> list[tuple[str, str, dict]]:
    out: list[tuple[str, str, dict]] = []

    def add(name: str, op: str, body: dict) -> None:
        out.append((name, op, body))

    both, keys = "cs_both", "cs_keys"
    arn, shard = f"$arn:{both}", f"$shard:{both}"

    # ListStreams
    add("list/all", "ListStreams", {})
    add("list/limit 1", "ListStreams", {"Limit": 1})
    add("list/limit 0", "ListStreams", {"Limit": 0})
    add("list/limit 100", "ListStreams", {"Limit": 100})
    add("list/limit 101", "ListStreams", {"Limit": 101})
    add("list/limit -1", "ListStreams", {"Limit": -1})
    add("list/limit string", "ListStreams", {"Limit": "2"})
    add("list/table", "ListStreams", {"TableName": both})
    add("list/closed table", "ListStreams", {"TableName": CLOSED})
    add("list/deleted table", "ListStreams", {"TableName": DROPPED})
    add("list/table missing", "ListStreams", {"TableName": "cs_none"})
    add("list/table bad name", "ListStreams", {"TableName": "a!b"})
    add("list/table short", "ListStreams", {"TableName": "ab"})
    add("list/table empty", "ListStreams", {"TableName": ""})
    add("list/table 256", "ListStreams", {"TableName": "t" * 256})
    add("list/table arn", "ListStreams", {"TableName": f"$tablearn:{both}"})
    add("list/after first", "ListStreams", {"ExclusiveStartStreamArn": f"$arn:{both}"})
    add("list/after first limit 2", "ListStreams", {"ExclusiveStartStreamArn": f"$arn:{both}", "Limit": 2})
    add("list/after + table", "ListStreams", {"TableName": both, "ExclusiveStartStreamArn": f"$arn:{both}"})
    add("list/after bogus", "ListStreams", {"ExclusiveStartStreamArn": "bogus"})
    add("list/after short", "ListStreams", {"ExclusiveStartStreamArn": "arn:aws:dynamodb:us-east-1:1:table/x"})
    add("list/after missing stream", "ListStreams", {"ExclusiveStartStreamArn": f"$arn:{both}x"})
    add("list/unknown member", "ListStreams", {"Bogus": 1, "Limit": 1})

    # DescribeStream
    add("describe/ok", "DescribeStream", {"StreamArn": arn})
    for label in VIEWS:
        add(f"describe/view {label}", "DescribeStream", {"StreamArn": f"$arn:cs_{label}"})
    add("describe/closed", "DescribeStream", {"StreamArn": f"$arn:{CLOSED}"})
    add("describe/deleted table", "DescribeStream", {"StreamArn": f"$arn:{DROPPED}"})
    add("describe/limit 1", "DescribeStream", {"StreamArn": arn, "Limit": 1})
    add("describe/limit 0", "DescribeStream", {"StreamArn": arn, "Limit": 0})
    add("describe/limit 101", "DescribeStream", {"StreamArn": arn, "Limit": 101})
    add("describe/limit 100", "DescribeStream", {"StreamArn": arn, "Limit": 100})
    add("describe/after shard", "DescribeStream", {"StreamArn": arn, "ExclusiveStartShardId": shard})
    unknown_shard = "shardId-00000000000000000000-00000000"
    add("describe/after unknown shard", "DescribeStream", {"StreamArn": arn, "ExclusiveStartShardId": unknown_shard})
    add("describe/after short shard", "DescribeStream", {"StreamArn": arn, "ExclusiveStartShardId": "shardId-1"})
    add("describe/after long shard", "DescribeStream", {"StreamArn": arn, "ExclusiveStartShardId": "s" * 66})
    add("describe/no arn", "DescribeStream", {})
    add("describe/arn empty", "DescribeStream", {"StreamArn": ""})
    add("describe/arn bogus", "DescribeStream", {"StreamArn": "bogus"})
    add("describe/arn 37 bogus", "DescribeStream", {"StreamArn": "x" * 37})
    add("describe/arn 1025", "DescribeStream", {"StreamArn": "x" * 1025})
    add("describe/arn of table", "DescribeStream", {"StreamArn": f"$tablearn:{both}"})
    add("describe/arn other label", "DescribeStream", {"StreamArn": f"$tablearn:{both}/stream/2020-01-01T00:00:00.000"})
    add("describe/arn missing table", "DescribeStream",
        {"StreamArn": f"$tablearn:{both}x/stream/$label:{both}"})
    add("describe/filter children", "DescribeStream", {"StreamArn": arn,
                                                        "ShardFilter": {"Type": "CHILD_SHARDS", "ShardId": shard}})
    add("describe/filter no type", "DescribeStream", {"StreamArn": arn, "ShardFilter": {"ShardId": shard}})
    add("describe/filter no shard", "DescribeStream", {"StreamArn": arn, "ShardFilter": {"Type": "CHILD_SHARDS"}})
    add("describe/filter empty", "DescribeStream", {"StreamArn": arn, "ShardFilter": {}})
    add("describe/filter bad type", "DescribeStream", {"StreamArn": arn,
                                                        "ShardFilter": {"Type": "PARENT", "ShardId": shard}})
    add("describe/filter unknown shard", "DescribeStream", {"StreamArn": arn, "ShardFilter": {
        "Type": "CHILD_SHARDS", "ShardId": "shardId-00000000000000000000-00000000"}})

    # GetShardIterator (each success followed by a GetRecords of its iterator)
    def gsi(name: str, **members) -> None:
        add(f"iterator/{name}", "GetShardIterator", {"StreamArn": arn, "ShardId": shard, **members})

    for kind in ("TRIM_HORIZON", "LATEST"):
        gsi(kind.lower(), ShardIteratorType=kind)
        gsi(f"{kind.lower()} with sequence number", ShardIteratorType=kind, SequenceNumber=f"$seq:{both}:0")
    for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        low = kind.lower()
        gsi(f"{low} first", ShardIteratorType=kind, SequenceNumber=f"$seq:{both}:0")
        gsi(f"{low} second", ShardIteratorType=kind, SequenceNumber=f"$seq:{both}:1")
        gsi(f"{low} last", ShardIteratorType=kind, SequenceNumber=f"$seq:{both}:5")
        gsi(f"{low} shard start", ShardIteratorType=kind, SequenceNumber=f"$start:{both}")
        gsi(f"{low} missing", ShardIteratorType=kind)
        gsi(f"{low} letters", ShardIteratorType=kind, SequenceNumber="abcdefghijklmnopqrstuvwxyz")
        gsi(f"{low} short", ShardIteratorType=kind, SequenceNumber="123")
        gsi(f"{low} 41 digits", ShardIteratorType=kind, SequenceNumber="1" * 41)
        gsi(f"{low} zeros", ShardIteratorType=kind, SequenceNumber="0" * 21)
        gsi(f"{low} past the end", ShardIteratorType=kind, SequenceNumber=f"$seq:{both}:last+1")
        gsi(f"{low} before the start", ShardIteratorType=kind, SequenceNumber=f"$seq:{both}:first-1")
        gsi(f"{low} huge", ShardIteratorType=kind, SequenceNumber="9" * 40)
        gsi(f"{low} of another stream", ShardIteratorType=kind, SequenceNumber=f"$seq:{keys}:0")
    gsi("at_timestamp", ShardIteratorType="AT_TIMESTAMP", Timestamp=0)
    gsi("type bogus", ShardIteratorType="FIRST")
    gsi("type lowercase", ShardIteratorType="latest")
    gsi("type missing")
    add("iterator/shard missing", "GetShardIterator", {"StreamArn": arn, "ShardIteratorType": "LATEST"})
    add("iterator/arn missing", "GetShardIterator", {"ShardId": shard, "ShardIteratorType": "LATEST"})
    add("iterator/unknown shard", "GetShardIterator", {"StreamArn": arn, "ShardIteratorType": "LATEST",
                                                       "ShardId": "shardId-00000000000000000000-00000000"})
    add("iterator/short shard", "GetShardIterator", {"StreamArn": arn, "ShardIteratorType": "LATEST",
                                                     "ShardId": "shardId-1"})
    add("iterator/shard of another stream", "GetShardIterator", {"StreamArn": arn, "ShardIteratorType": "LATEST",
                                                                 "ShardId": f"$shard:{keys}"})
    add("iterator/arn bogus", "GetShardIterator", {"StreamArn": "bogus", "ShardId": shard,
                                                   "ShardIteratorType": "LATEST"})
    add("iterator/arn other label", "GetShardIterator", {
        "StreamArn": f"$tablearn:{both}/stream/2020-01-01T00:00:00.000", "ShardId": shard,
        "ShardIteratorType": "LATEST"})
    for table in (CLOSED, DROPPED):
        for kind in ("TRIM_HORIZON", "LATEST"):
            add(f"iterator/{table} {kind.lower()}", "GetShardIterator", {
                "StreamArn": f"$arn:{table}", "ShardId": f"$shard:{table}", "ShardIteratorType": kind})
        add(f"iterator/{table} after last", "GetShardIterator", {
            "StreamArn": f"$arn:{table}", "ShardId": f"$shard:{table}", "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "SequenceNumber": f"$seq:{table}:5"})
        add(f"iterator/{table} past the end", "GetShardIterator", {
            "StreamArn": f"$arn:{table}", "ShardId": f"$shard:{table}", "ShardIteratorType": "AT_SEQUENCE_NUMBER",
            "SequenceNumber": f"$seq:{table}:last+1"})
    for label in VIEWS:
        add(f"iterator/records {label}", "GetShardIterator", {
            "StreamArn": f"$arn:cs_{label}", "ShardId": f"$shard:cs_{label}", "ShardIteratorType": "TRIM_HORIZON"})

    # GetRecords
    iterator = f"$iter:{both}"
    add("records/all", "GetRecords", {"ShardIterator": iterator})
    add("records/limit 1", "GetRecords", {"ShardIterator": iterator, "Limit": 1})
    add("records/limit 1000", "GetRecords", {"ShardIterator": iterator, "Limit": 1000})
    add("records/limit 1001", "GetRecords", {"ShardIterator": iterator, "Limit": 1001})
    add("records/limit 0", "GetRecords", {"ShardIterator": iterator, "Limit": 0})
    add("records/limit -1", "GetRecords", {"ShardIterator": iterator, "Limit": -1})
    add("records/no iterator", "GetRecords", {})
    add("records/iterator empty", "GetRecords", {"ShardIterator": ""})
    add("records/iterator bogus", "GetRecords", {"ShardIterator": "bogus"})
    add("records/iterator 2049", "GetRecords", {"ShardIterator": "x" * 2049})
    add("records/iterator altered", "GetRecords", {"ShardIterator": iterator + "A"})
    add("records/iterator truncated", "GetRecords", {"ShardIterator": f"$truncated:{both}"})
    add("records/closed shard", "GetRecords", {"ShardIterator": f"$iter:{CLOSED}"})
    add("records/deleted table", "GetRecords", {"ShardIterator": f"$iter:{DROPPED}"})
    return out


def run_stream_case(endpoint: Endpoint, operation: str, request: dict) -> dict:
    resolved = resolve(request, endpoint)
    status, body = endpoint.call(operation, resolved, STREAMS)
    if status != 200:
        return restore(error_of(status, body), endpoint)
    answer = {"status": 200, "result": restore(body, endpoint)}
    if operation == "ListStreams" and isinstance(answer["result"].get("Streams"), list):
        # DynamoDB documents no order of the streams listed
        answer["result"]["Streams"].sort(key=lambda stream: json.dumps(stream, sort_keys=True))
    if operation == "GetShardIterator" and isinstance(body.get("ShardIterator"), str):
        status, records = endpoint.call("GetRecords", {"ShardIterator": body["ShardIterator"]}, STREAMS)
        answer["then GetRecords"] = restore(records if status == 200 else error_of(status, records), endpoint)
    if operation == "GetRecords" and isinstance(body.get("NextShardIterator"), str) and body.get("Records"):
        status, more = endpoint.call("GetRecords", {"ShardIterator": body["NextShardIterator"]}, STREAMS)
        answer["then GetRecords"] = restore(more if status == 200 else error_of(status, more), endpoint)
    return answer


# ================================================================ part 2: item paths

HASH = "ce_h"  # pk S
INDEXED = "ce_i"  # pk S, sk N; LSI lsi (pk, l S), GSI gsi (g S)
BINARY = "ce_b"  # pk B, sk B
NUMBER = "ce_n"  # pk N

ITEM_TABLES = [
    {"TableName": HASH, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": INDEXED,
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "l", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
     "LocalSecondaryIndexes": [{"IndexName": "lsi", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                                  {"AttributeName": "l", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "ALL"}}],
     "GlobalSecondaryIndexes": [{"IndexName": "gsi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}],
     "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": BINARY,
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "B"},
                              {"AttributeName": "sk", "AttributeType": "B"}], "BillingMode": "PAY_PER_REQUEST"},
    {"TableName": NUMBER, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "N"}], "BillingMode": "PAY_PER_REQUEST"},
]

ITEM_SEED = {
    HASH: [{"pk": {"S": "a"}, "n": {"N": "1"}, "s": {"S": "x"}, "ns": {"NS": ["1", "2"]}, "big": {"N": "9E+125"},
            "m": {"M": {"k": {"S": "v"}}}, "bs": {"BS": ["AQ=="]}}],
    INDEXED: [{"pk": {"S": "p"}, "sk": {"N": "1"}, "l": {"S": "L1"}, "g": {"S": "G"}, "v": {"N": "10"}},
              {"pk": {"S": "p"}, "sk": {"N": "2"}, "v": {"N": "20"}}],
    BINARY: [{"pk": {"B": "AQ=="}, "sk": {"B": "Ag=="}}],
    NUMBER: [{"pk": {"N": "1"}}],
}

READ_OPS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def item_cases() -> list[tuple[str, str, dict]]:
    out: list[tuple[str, str, dict]] = []

    def add(name: str, op: str, body: dict) -> None:
        out.append((name, op, body))

    key_a = {"pk": {"S": "a"}}

    def put(name: str, item: dict, table: str = HASH, **more) -> None:
        add(f"put/{name}", "PutItem", {"TableName": table, "Item": item, **more})

    def set_value(name: str, value: dict, **more) -> None:
        add(f"update/{name}", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": "SET x = :v",
                                             "ExpressionAttributeValues": {":v": value}, "ReturnValues": "UPDATED_NEW",
                                             **more})

    # Numbers: precision, exponents, leading zeros and normalisation.
    numbers = {
        "38 digits": "1234567890123456789012345678901234567.8",
        "39 digits": "1234567890123456789012345678901234567.89",
        "38 digits + trailing zeros": "12345678901234567890123456789012345678000",
        "39 digits trailing zero after point": "1.23456789012345678901234567890123456780",
        "leading zeros 38": "000001234567890123456789012345678901234567.8",
        "zeros after point then 38": "0.000012345678901234567890123456789012345678",
        "1e125": "1e125", "9.99e125": "9.9999999999999999999999999999999999999E+125", "1e126": "1E126",
        "10e125": "10e125", "0.1e126": "0.1e126", "1e-130": "1E-130", "1e-131": "1e-131", "10e-131": "10e-131",
        "0.01e-128": "0.01e-128", "-1e126": "-1e126", "-1e-131": "-1e-131", "0e-200": "0e-200",
        "0e200": "0E+200", "-0.0": "-0.0", "0.000": "0.000", "leading zero": "007", "leading zero negative": "-007.50",
        "exponent leading zeros": "1e0005", "exponent plus": "1E+5", "decimal point only": ".", "two points": "1.2.3",
        "two signs": "--1", "exponent only": "e5", "hex float": "0x1p3", "unicode digit": "١", "spaces inside": "1 2",
        "tab": "\t1", "exponent huge": "1e99999999999999999999", "trailing e+": "1e+",
    }
    for label, number in numbers.items():
        put(f"number {label}", {"pk": {"S": "num"}, "x": {"N": number}})
        add(f"put+get/number {label}", "GetItem", {"TableName": HASH, "Key": {"pk": {"S": "num"}}})
    for label in ("39 digits", "1e126", "1e-131", "leading zero"):
        add(f"key/number {label}", "PutItem", {"TableName": NUMBER, "Item": {"pk": {"N": numbers[label]}}})
        add(f"get key/number {label}", "GetItem", {"TableName": NUMBER, "Key": {"pk": {"N": numbers[label]}}})
    add("get key/number 1.0 finds 1", "GetItem", {"TableName": NUMBER, "Key": {"pk": {"N": "1.00"}}})
    add("get key/number 1e0 finds 1", "GetItem", {"TableName": NUMBER, "Key": {"pk": {"N": "0.1E1"}}})
    number_sets = {
        "1 and 1.0": ["1", "1.0"], "1 and 1e0": ["1", "1e0"], "0 and -0": ["0", "-0"], "100 and 1e2": ["100", "1E+2"],
        "leading zeros": ["01", "1"], "39 digits member": ["1", "1234567890123456789012345678901234567891"],
        "1e126 member": ["1", "1e126"], "bad member": ["1", "one"], "empty member": ["1", ""],
        "unsorted": ["3", "-1", "2.5", "1e2"], "101 distinct": [str(i) for i in range(101)],
    }
    for label, members in number_sets.items():
        put(f"number set {label}", {"pk": {"S": "ns"}, "x": {"NS": members}})
        add(f"put+get/number set {label}", "GetItem", {"TableName": HASH, "Key": {"pk": {"S": "ns"}}})
    # Arithmetic past the limits.
    arithmetic = {
        "add past 1e126": ("SET x = big + :v", {":v": {"N": "9E+125"}}),
        "subtract past -1e126": ("SET x = :m - big", {":m": {"N": "-9E+125"}}),
        "add 39 digits": ("SET x = :a + :b", {":a": {"N": "12345678901234567890123456789012345678"},
                                              ":b": {"N": "0.1"}}),
        "add exact 38": ("SET x = :a + :b", {":a": {"N": "12345678901234567890123456789012345670"},
                                             ":b": {"N": "8"}}),
        "add below 1e-130": ("SET x = :a - :b", {":a": {"N": "1.1e-130"}, ":b": {"N": "1e-130"}}),
        "ADD past 1e126": ("ADD big :v", {":v": {"N": "9E+125"}}),
        "ADD 39 digits": ("ADD n :v", {":v": {"N": "0.1234567890123456789012345678901234567"}}),
        "ADD to set 39 digits": ("ADD ns :v", {":v": {"NS": ["1234567890123456789012345678901234567891"]}}),
        "ADD set duplicate after normalisation": ("ADD ns :v", {":v": {"NS": ["1.0", "3"]}}),
        "DELETE set member by other spelling": ("DELETE ns :v", {":v": {"NS": ["2.00"]}}),
        "value 1e126": ("SET x = :v", {":v": {"N": "1e126"}}),
        "value 39 digits": ("SET x = :v", {":v": {"N": "1234567890123456789012345678901234567891"}}),
        "value bad number": ("SET x = :v", {":v": {"N": "1x"}}),
    }
    for label, (expression, values) in arithmetic.items():
        add(f"update/{label}", "UpdateItem", {"TableName": HASH, "Key": key_a, "UpdateExpression": expression,
                                              "ExpressionAttributeValues": values, "ReturnValues": "UPDATED_NEW"})
    add("condition/value 1e126", "PutItem", {"TableName": HASH, "Item": key_a, "ConditionExpression": "n < :v",
                                             "ExpressionAttributeValues": {":v": {"N": "1e126"}}})
    add("condition/value 39 digits", "DeleteItem", {"TableName": HASH, "Key": key_a, "ConditionExpression": "n < :v",
                                                    "ExpressionAttributeValues": {":v": {"N": "1" * 39}}})
    add("condition/number by other spelling", "DeleteItem", {
        "TableName": HASH, "Key": key_a, "ConditionExpression": "n = :v AND ns = :ns",
        "ExpressionAttributeValues": {":v": {"N": "1.000"}, ":ns": {"NS": ["2.0", "1e0"]}}, "ReturnValues": "ALL_OLD"})
    add("query/key 39 digits", "Query", {"TableName": NUMBER, "KeyConditionExpression": "pk = :v",
                                         "ExpressionAttributeValues": {":v": {"N": "1" * 39}}})
    add("query/key 1e126", "Query", {"TableName": NUMBER, "KeyConditionExpression": "pk = :v",
                                     "ExpressionAttributeValues": {":v": {"N": "1e126"}}})
    add("legacy/expected 39 digits", "PutItem", {"TableName": HASH, "Item": key_a,
                                                 "Expected": {"n": {"Value": {"N": "1" * 39}}}})
    add("legacy/attribute updates 1e126", "UpdateItem", {"TableName": HASH, "Key": key_a, "AttributeUpdates": {
        "x": {"Action": "PUT", "Value": {"N": "1e126"}}}})
    add("legacy/attribute updates ADD overflow", "UpdateItem", {"TableName": HASH, "Key": key_a, "AttributeUpdates": {
        "big": {"Action": "ADD", "Value": {"N": "9e125"}}}})

    # Binary values and sets.
    binaries = {
        "not base64": "!!!!", "no padding": "AQ", "bad padding": "AQ=", "extra padding": "AQ===",
        "urlsafe": "-_8=", "whitespace": "AQ ==", "newline": "AQ==\n", "one char": "A", "unicode": "é", "ok": "AAEC",
    }
    for label, text in binaries.items():
        put(f"binary {label}", {"pk": {"S": "bin"}, "x": {"B": text}})
    for label in ("not base64", "no padding", "one char", "urlsafe"):
        add(f"binary key/{label}", "GetItem", {"TableName": BINARY, "Key": {"pk": {"B": binaries[label]},
                                                                           "sk": {"B": "AQ=="}}})
        put(f"binary set {label}", {"pk": {"S": "bin"}, "x": {"BS": ["AQ==", binaries[label]]}})
    binary_sets = {"duplicates": ["AQ==", "AQ=="], "empty member": ["AQ==", ""], "unsorted": ["Aw==", "AQ==", "/w=="],
                   "number member": ["AQ==", 5], "same bytes other text": ["AQ==", "AQ"]}
    for label, members in binary_sets.items():
        put(f"binary set {label}", {"pk": {"S": "bin"}, "x": {"BS": members}})
        add(f"put+get/binary set {label}", "GetItem", {"TableName": HASH, "Key": {"pk": {"S": "bin"}}})
    set_value("binary value not base64", {"B": "!!!!"})
    add("condition/binary not base64", "DeleteItem", {"TableName": HASH, "Key": key_a,
                                                      "ConditionExpression": "b = :b",
                                                      "ExpressionAttributeValues": {":b": {"B": "!!!!"}}})
    add("query/binary key not base64", "Query", {"TableName": BINARY, "KeyConditionExpression": "pk = :v",
                                                 "ExpressionAttributeValues": {":v": {"B": "!!!!"}}})

    # Empty values.
    empties = {"S": {"S": ""}, "B": {"B": ""}, "SS": {"SS": []}, "NS": {"NS": []}, "BS": {"BS": []},
               "SS with empty": {"SS": [""]}, "BS with empty": {"BS": [""]}, "N": {"N": ""}, "L": {"L": []},
               "M": {"M": {}}, "nested S": {"M": {"a": {"S": ""}}}, "nested SS": {"M": {"a": {"SS": []}}},
               "list S": {"L": [{"S": ""}]}}
    for label, value in empties.items():
        put(f"empty {label} attribute", {"pk": {"S": "e"}, "x": value})
        set_value(f"empty {label} value", value)
    for label in ("S", "B", "SS", "N"):
        value = empties[label]
        add(f"empty key/{label} get", "GetItem", {"TableName": HASH, "Key": {"pk": value}})
        add(f"empty key/{label} delete", "DeleteItem", {"TableName": HASH, "Key": {"pk": value}})
        add(f"empty key/{label} update", "UpdateItem", {"TableName": HASH, "Key": {"pk": value}})
        put(f"empty key {label}", {"pk": value})
    add("empty key/binary range", "PutItem", {"TableName": BINARY, "Item": {"pk": {"B": "AQ=="}, "sk": {"B": ""}}})
    add("empty key/lsi key", "PutItem", {"TableName": INDEXED, "Item": {"pk": {"S": "p"}, "sk": {"N": "5"},
                                                                        "l": {"S": ""}}})
    add("empty key/gsi key", "UpdateItem", {"TableName": INDEXED, "Key": {"pk": {"S": "p"}, "sk": {"N": "1"}},
                                            "UpdateExpression": "SET g = :e",
                                            "ExpressionAttributeValues": {":e": {"S": ""}}})
    add("empty key/query", "Query", {"TableName": HASH, "KeyConditionExpression": "pk = :e",
                                     "ExpressionAttributeValues": {":e": {"S": ""}}})

    # Nesting depth.
    def nested(depth: int, kind: str = "M") -> dict:
        value: dict = {"S": "leaf"}
        for _ in range(depth):
            value = {"M": {"d": value}} if kind == "M" else {"L": [value]}
        return value

    for depth in (31, 32, 33):
        put(f"nesting maps {depth}", {"pk": {"S": "deep"}, "x": nested(depth)})
        put(f"nesting lists {depth}", {"pk": {"S": "deep"}, "x": nested(depth, "L")})
        set_value(f"nesting value {depth}", nested(depth))
    add("update/nesting set path 33", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "SET x" + ".d" * 32 + " = :v",
        "ExpressionAttributeValues": {":v": {"S": "y"}}})
    add("condition/nesting value 33", "DeleteItem", {"TableName": HASH, "Key": key_a, "ConditionExpression": "x = :v",
                                                     "ExpressionAttributeValues": {":v": nested(33)}})

    # Item size at 400 KB by DynamoDB's rules (names + values; numbers by
    # their significant digits; a map or list 3 bytes and 1 per element).
    limit = 400 * 1024
    for label, extra in (("at limit", 0), ("over by one", 1)):
        put(f"size string {label}", {"pk": {"S": "big"}, "x": {"S": "x" * (limit - 2 - 1 - 3 + extra)}})
        put(f"size binary {label}", {"pk": {"S": "big"}, "b": {"B": _b64(b"\0" * (limit - 2 - 1 - 3 + extra))}})
        put(f"size in a map {label}", {"pk": {"S": "big"},
                                       "m": {"M": {"k": {"S": "x" * (limit - 2 - 1 - 3 - 1 - 3 - 1 + extra)}}}})
        put(f"size in a list {label}", {"pk": {"S": "big"},
                                        "l": {"L": [{"S": "x" * (limit - 2 - 1 - 3 - 3 - 1 + extra)}]}})
        put(f"size number and long name {label}", {"pk": {"S": "big"}, "n" * 60000: {"N": "1"},
                                                   "x": {"S": "x" * (limit - 2 - 1 - 3 - 60000 - 2 - 1 + extra)}})
        put(f"size string set {label}", {"pk": {"S": "big"},
                                         "ss": {"SS": ["a", "x" * (limit - 2 - 1 - 3 - 2 - 1 + extra)]}})
        put(f"size null and bool {label}", {"pk": {"S": "big"}, "t": {"BOOL": True}, "z": {"NULL": True},
                                            "x": {"S": "x" * (limit - 2 - 1 - 3 - 2 - 2 - 1 + extra)}})
        add(f"update/size {label}", "UpdateItem", {
            "TableName": HASH, "Key": {"pk": {"S": "big"}}, "UpdateExpression": "SET x = :v",
            "ExpressionAttributeValues": {":v": {"S": "x" * (limit - 2 - 1 - 3 + extra)}}})
    add("update/size grows past limit", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "SET y = :v",
        "ExpressionAttributeValues": {":v": {"S": "x" * (limit - 100)}}})

    # Attribute names.
    for length in (255, 256, 65535, 65536, 65537):
        put(f"name {length} bytes", {"pk": {"S": "name"}, "n" * length: {"S": "v"}})
    put("name 64 KB of 3-byte characters", {"pk": {"S": "name"}, "€" * 21845: {"S": "v"}})
    put("name 64 KB + 1 of 3-byte characters", {"pk": {"S": "name"}, "€" * 21845 + "n": {"S": "v"}})
    add("update/name 64 KB through names", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "SET #n = :v",
        "ExpressionAttributeNames": {"#n": "n" * 65536}, "ExpressionAttributeValues": {":v": {"S": "v"}}})
    add("update/name over 64 KB through names", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "SET #n = :v",
        "ExpressionAttributeNames": {"#n": "n" * 65537}, "ExpressionAttributeValues": {":v": {"S": "v"}}})
    wide = "€" * 21845 + "n"  # 65,536 bytes in 21,846 characters: within the shape's 65,535 characters
    add("update/name of 3-byte characters over 64 KB through names", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "SET #n = :v",
        "ExpressionAttributeNames": {"#n": wide}, "ExpressionAttributeValues": {":v": {"S": "v"}}})
    add("legacy/attribute updates name of 3-byte characters over 64 KB", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "AttributeUpdates": {wide: {"Action": "PUT", "Value": {"S": "v"}}}})
    add("legacy/expected name of 3-byte characters over 64 KB", "DeleteItem", {
        "TableName": HASH, "Key": key_a, "Expected": {wide: {"Exists": False}}})
    add("get/attributes to get name of 3-byte characters over 64 KB", "GetItem", {
        "TableName": HASH, "Key": key_a, "AttributesToGet": [wide]})
    add("get/projection name of 3-byte characters over 64 KB", "GetItem", {
        "TableName": HASH, "Key": key_a, "ProjectionExpression": "#n", "ExpressionAttributeNames": {"#n": wide}})
    add("query/filter name of 3-byte characters over 64 KB", "Query", {
        "TableName": HASH, "KeyConditionExpression": "pk = :p", "FilterExpression": "attribute_exists(#n)",
        "ExpressionAttributeNames": {"#n": wide}, "ExpressionAttributeValues": {":p": {"S": "a"}}})
    add("batch write/name of 3-byte characters over 64 KB", "BatchWriteItem", {"RequestItems": {HASH: [
        {"PutRequest": {"Item": {"pk": {"S": "w"}, wide: {"S": "v"}}}}]}})
    add("legacy/attribute updates name over 64 KB", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "AttributeUpdates": {"n" * 65537: {"Action": "PUT", "Value": {"S": "v"}}}})

    # Key sizes: 2048 bytes of partition key, 1024 of sort key, in UTF-8.
    for label, text in (("2048 ascii", "k" * 2048), ("2049 ascii", "k" * 2049), ("2048 in 3-byte", "€" * 682 + "kk"),
                        ("2049 in 3-byte", "€" * 683), ("2048 in 4-byte", "😀" * 512),
                        ("4-byte over", "😀" * 512 + "k")):
        put(f"partition key {label}", {"pk": {"S": text}})
        add(f"get/partition key {label}", "GetItem", {"TableName": HASH, "Key": {"pk": {"S": text}}})
        add(f"delete/partition key {label}", "DeleteItem", {"TableName": HASH, "Key": {"pk": {"S": text}}})
        add(f"update/partition key {label}", "UpdateItem", {"TableName": HASH, "Key": {"pk": {"S": text}}})
    for size in (1024, 1025):
        add(f"get/sort key {size}", "GetItem", {"TableName": BINARY, "Key": {"pk": {"B": "AQ=="},
                                                                            "sk": {"B": _b64(b"s" * size)}}})
        add(f"query/sort key {size}", "Query", {"TableName": BINARY, "KeyConditionExpression": "pk = :p AND sk > :s",
                                                "ExpressionAttributeValues": {":p": {"B": "AQ=="},
                                                                              ":s": {"B": _b64(b"s" * size)}}})
        add(f"put/binary partition key {size * 2}", "PutItem", {
            "TableName": BINARY, "Item": {"pk": {"B": _b64(b"p" * size * 2)}, "sk": {"B": "AQ=="}}})
        put(f"lsi key {size}", {"pk": {"S": "p"}, "sk": {"N": "9"}, "l": {"S": "l" * size}}, table=INDEXED)
        put(f"gsi key {size * 2}", {"pk": {"S": "p"}, "sk": {"N": "9"}, "g": {"S": "g" * size * 2}}, table=INDEXED)
    add("query/partition key 2049", "Query", {"TableName": HASH, "KeyConditionExpression": "pk = :p",
                                              "ExpressionAttributeValues": {":p": {"S": "k" * 2049}}})
    add("batch get/partition key 2049", "BatchGetItem", {"RequestItems": {HASH: {"Keys": [{"pk": {"S": "k" * 2049}}]}}})

    # ReturnValues on every write.
    existing = {"pk": {"S": "p"}, "sk": {"N": "1"}}
    missing = {"pk": {"S": "p"}, "sk": {"N": "77"}}
    for mode in ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW", "all_old", ""):
        for where, key in (("existing", existing), ("missing", missing)):
            add(f"return values/put {mode or 'empty'} {where}", "PutItem", {
                "TableName": INDEXED, "Item": {**key, "v": {"N": "5"}}, "ReturnValues": mode})
            add(f"return values/update {mode or 'empty'} {where}", "UpdateItem", {
                "TableName": INDEXED, "Key": key, "UpdateExpression": "SET v = :v, w = :w REMOVE l",
                "ExpressionAttributeValues": {":v": {"N": "5"}, ":w": {"S": "new"}}, "ReturnValues": mode})
            add(f"return values/delete {mode or 'empty'} {where}", "DeleteItem", {
                "TableName": INDEXED, "Key": key, "ReturnValues": mode})
    add("return values/update unchanged UPDATED_OLD", "UpdateItem", {
        "TableName": INDEXED, "Key": existing, "UpdateExpression": "SET v = :v",
        "ExpressionAttributeValues": {":v": {"N": "10"}}, "ReturnValues": "UPDATED_OLD"})
    add("return values/update nested UPDATED_NEW", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "SET m.k = :v, m.j = :v",
        "ExpressionAttributeValues": {":v": {"S": "z"}}, "ReturnValues": "UPDATED_NEW"})
    add("return values/update REMOVE UPDATED_NEW", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "UpdateExpression": "REMOVE s", "ReturnValues": "UPDATED_NEW"})
    add("return values/update legacy UPDATED_OLD", "UpdateItem", {
        "TableName": HASH, "Key": key_a, "AttributeUpdates": {"n": {"Action": "ADD", "Value": {"N": "2"}},
                                                              "s": {"Action": "DELETE"}},
        "ReturnValues": "UPDATED_OLD"})
    add("return values/batch write member ignored", "BatchWriteItem", {"RequestItems": {HASH: [
        {"PutRequest": {"Item": {"pk": {"S": "bw"}}, "ReturnValues": "ALL_OLD"}}]}})
    add("return values/transaction put", "TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": HASH, "Item": {"pk": {"S": "tw"}}, "ReturnValues": "ALL_OLD"}}]})

    # ReturnValuesOnConditionCheckFailure.
    for mode in ("ALL_OLD", "NONE", "ALL_NEW", ""):
        for where, key in (("existing", existing), ("missing", missing)):
            cond = {"ConditionExpression": "v = :nine", "ExpressionAttributeValues": {":nine": {"N": "9"}},
                    "ReturnValuesOnConditionCheckFailure": mode}
            add(f"on failure/put {mode or 'empty'} {where}", "PutItem", {"TableName": INDEXED, "Item": key, **cond})
            add(f"on failure/delete {mode or 'empty'} {where}", "DeleteItem",
                {"TableName": INDEXED, "Key": key, **cond})
            add(f"on failure/update {mode or 'empty'} {where}", "UpdateItem", {
                "TableName": INDEXED, "Key": key, "UpdateExpression": "SET w = :nine", **cond})
    add("on failure/legacy expected", "PutItem", {"TableName": INDEXED, "Item": existing,
                                                  "Expected": {"v": {"Value": {"N": "9"}}},
                                                  "ReturnValuesOnConditionCheckFailure": "ALL_OLD"})
    add("on failure/projected by nothing", "DeleteItem", {
        "TableName": HASH, "Key": key_a, "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD", "ReturnValues": "ALL_OLD"})
    add("on failure/condition passes", "DeleteItem", {
        "TableName": HASH, "Key": key_a, "ConditionExpression": "attribute_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"})
    add("on failure/transaction", "TransactWriteItems", {"TransactItems": [{"ConditionCheck": {
        "TableName": HASH, "Key": key_a, "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]})

    # ReturnConsumedCapacity and ReturnItemCollectionMetrics.
    for capacity in ("TOTAL", "INDEXES", "NONE", "total", ""):
        add(f"capacity/get {capacity or 'empty'}", "GetItem", {"TableName": INDEXED, "Key": existing,
                                                               "ReturnConsumedCapacity": capacity})
        add(f"capacity/get consistent {capacity or 'empty'}", "GetItem", {
            "TableName": INDEXED, "Key": existing, "ConsistentRead": True, "ReturnConsumedCapacity": capacity})
        add(f"capacity/get missing {capacity or 'empty'}", "GetItem", {"TableName": INDEXED, "Key": missing,
                                                                       "ReturnConsumedCapacity": capacity})
        add(f"capacity/put {capacity or 'empty'}", "PutItem", {
            "TableName": INDEXED, "Item": {**missing, "l": {"S": "L"}, "g": {"S": "G"}},
            "ReturnConsumedCapacity": capacity})
        add(f"capacity/update {capacity or 'empty'}", "UpdateItem", {
            "TableName": INDEXED, "Key": existing, "UpdateExpression": "SET g = :g",
            "ExpressionAttributeValues": {":g": {"S": "H"}}, "ReturnConsumedCapacity": capacity})
        add(f"capacity/delete {capacity or 'empty'}", "DeleteItem", {"TableName": INDEXED, "Key": existing,
                                                                     "ReturnConsumedCapacity": capacity})
        add(f"capacity/delete missing {capacity or 'empty'}", "DeleteItem", {
            "TableName": INDEXED, "Key": missing, "ReturnConsumedCapacity": capacity})
        add(f"capacity/hash table put {capacity or 'empty'}", "PutItem", {
            "TableName": HASH, "Item": {"pk": {"S": "cap"}, "x": {"S": "x" * 1500}},
            "ReturnConsumedCapacity": capacity})
        add(f"capacity/failed condition {capacity or 'empty'}", "PutItem", {
            "TableName": HASH, "Item": key_a, "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnConsumedCapacity": capacity})
    for metrics in ("SIZE", "NONE", "size", ""):
        add(f"collection metrics/put {metrics or 'empty'}", "PutItem", {
            "TableName": INDEXED, "Item": {**missing, "l": {"S": "L"}}, "ReturnItemCollectionMetrics": metrics})
        add(f"collection metrics/update {metrics or 'empty'}", "UpdateItem", {
            "TableName": INDEXED, "Key": existing, "UpdateExpression": "SET v = :v",
            "ExpressionAttributeValues": {":v": {"N": "1"}}, "ReturnItemCollectionMetrics": metrics})
        add(f"collection metrics/delete {metrics or 'empty'}", "DeleteItem", {
            "TableName": INDEXED, "Key": existing, "ReturnItemCollectionMetrics": metrics})
        add(f"collection metrics/delete missing {metrics or 'empty'}", "DeleteItem", {
            "TableName": INDEXED, "Key": missing, "ReturnItemCollectionMetrics": metrics})
        add(f"collection metrics/no LSI {metrics or 'empty'}", "PutItem", {
            "TableName": HASH, "Item": {"pk": {"S": "m"}}, "ReturnItemCollectionMetrics": metrics})
    add("collection metrics/batch write", "BatchWriteItem", {"RequestItems": {INDEXED: [
        {"PutRequest": {"Item": {**missing, "l": {"S": "L"}}}}]}, "ReturnItemCollectionMetrics": "SIZE"})

    # Members a structure does not have (ignored) and GetItem's expression values.
    values = {":v": {"S": "x"}}
    add("get/expression values", "GetItem", {"TableName": HASH, "Key": key_a, "ExpressionAttributeValues": values})
    add("get/expression values + projection", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "n",
                                                          "ExpressionAttributeValues": values})
    add("get/expression values + names", "GetItem", {"TableName": HASH, "Key": key_a, "ProjectionExpression": "#n",
                                                     "ExpressionAttributeNames": {"#n": "n"},
                                                     "ExpressionAttributeValues": values})
    add("get/expression values empty", "GetItem", {"TableName": HASH, "Key": key_a, "ExpressionAttributeValues": {}})
    add("get/expression values bad", "GetItem", {"TableName": HASH, "Key": key_a,
                                                 "ExpressionAttributeValues": {"v": {"X": 1}}})
    add("get/expression values + attributes to get", "GetItem", {"TableName": HASH, "Key": key_a,
                                                                 "AttributesToGet": ["n"],
                                                                 "ExpressionAttributeValues": values})
    add("get/names without expression", "GetItem", {"TableName": HASH, "Key": key_a,
                                                    "ExpressionAttributeNames": {"#n": "n"}})
    add("get/condition expression member", "GetItem", {"TableName": HASH, "Key": key_a,
                                                       "ConditionExpression": "attribute_exists(pk)"})
    add("get/unknown member", "GetItem", {"TableName": HASH, "Key": key_a, "Item": {"x": {"S": "y"}}})
    add("delete/unknown member", "DeleteItem", {"TableName": HASH, "Key": {"pk": {"S": "zz"}},
                                                "UpdateExpression": "SET x = :v"})
    add("put/unknown member", "PutItem", {"TableName": HASH, "Item": {"pk": {"S": "u"}}, "Key": key_a})
    return out


def items_setup(endpoint: Endpoint) -> None:
    for table in ITEM_TABLES:
        endpoint.call("DeleteTable", {"TableName": table["TableName"]})
    for table in ITEM_TABLES:
        status, body = endpoint.call("CreateTable", table)
        if status != 200:
            raise SystemExit(f"CreateTable {table['TableName']}: {status} {body}")


def items_reseed(endpoint: Endpoint) -> None:
    for table in ITEM_TABLES:
        name, key_names = table["TableName"], [k["AttributeName"] for k in table["KeySchema"]]
        status, body = endpoint.call("Scan", {"TableName": name, "ProjectionExpression": ", ".join(key_names)})
        for key in body.get("Items", []):
            endpoint.call("DeleteItem", {"TableName": name, "Key": key})
        for item in ITEM_SEED[name]:
            endpoint.call("PutItem", {"TableName": name, "Item": item})


def _item_state(endpoint: Endpoint) -> dict:
    return {table["TableName"]: _sorted_items(endpoint.call("Scan", {"TableName": table["TableName"]})[1]
                                              .get("Items", [])) for table in ITEM_TABLES}


def _item_answer(operation: str, status: int, body: dict) -> dict:
    if status != 200:
        out = error_of(status, body)
        if "Item" in body:
            out["item"] = body["Item"]
        return out
    body = copy.deepcopy(body)
    if operation in ("Query", "Scan") and "Items" in body:
        body["Items"] = _sorted_items(body["Items"])
    return {"status": 200, "result": body}


def run_item_case(endpoint: Endpoint, operation: str, request: dict) -> dict:
    return _item_answer(operation, *endpoint.call(operation, request))


# ================================================================ running

_ENVELOPE = "1 validation error detected: "


def _envelope_only(shoal: dict, local: dict) -> bool:
    """The two answers differ only in the envelope Shoal keeps for the
    single-item writes (docs/status.md's table of messages)."""
    message = shoal.get("message")
    return (shoal.get("status") == local.get("status") == 400 and shoal.get("type") == local.get("type")
            and isinstance(message, str) and message.startswith(_ENVELOPE)
            and message[len(_ENVELOPE):] == local.get("message"))


def sweep(part: str, shoal: Endpoint, local: Endpoint, only: str | None, every: bool) -> tuple[int, list, int]:
    endpoints = (shoal, local)
    if part == "streams":
        for endpoint in endpoints:
            streams_setup(endpoint)
        selected, run = streams_cases(), run_stream_case
    else:
        for endpoint in endpoints:
            items_setup(endpoint)
        selected, run = item_cases(), run_item_case
    selected = [case for case in selected if not only or only in case[0]]
    differences, enveloped = [], 0
    for name, operation, request in selected:
        writes = part == "items" and operation not in READ_OPS
        if writes:
            for endpoint in endpoints:
                items_reseed(endpoint)
        answers = [run(endpoint, operation, request) for endpoint in endpoints]
        if writes and answers[0] == answers[1]:
            states = [_item_state(endpoint) for endpoint in endpoints]
            if states[0] != states[1]:
                answers = [dict(answer, state={t: s for t, s in state.items() if s != other[t]})
                           for answer, state, other in zip(answers, states, reversed(states))]
        if _envelope_only(*answers):
            enveloped += 1
            if not every:
                continue
        if answers[0] != answers[1] or every:
            differences.append({"part": part, "case": name, "operation": operation,
                                "shoal": answers[0], "local": answers[1]})
            print(f"== {part}: {name} ({operation})\n   shoal: {json.dumps(answers[0])[:700]}\n"
                  f"   local: {json.dumps(answers[1])[:700]}", flush=True)
    return len(selected), differences, enveloped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("streams", "items"), action="append",
                        help="the part to run (default: both)")
    parser.add_argument("--shoal", help="a running Shoal's URL (default: start one)")
    parser.add_argument("--local", help="a running DynamoDB Local's URL (default: start one)")
    parser.add_argument("--jar", help="DynamoDBLocal.jar to start")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--json", help="write the differences to this file")
    parser.add_argument("--all", action="store_true", help="print every case, not only the differences")
    args = parser.parse_args(argv)
    totals, found = [], []
    for part in args.part or ("streams", "items"):
        # fresh servers for each part (unless given): ListStreams lists every stream
        with servers(args.shoal, args.local, args.jar) as (shoal_url, local_url):
            count, differences, enveloped = sweep(part, Endpoint(shoal_url), Endpoint(local_url), args.only, args.all)
        totals.append(f"{part}: {count} cases, {len(differences)} differences"
                      + (f" ({enveloped} more only in Shoal's '{_ENVELOPE}' envelope)" if enveloped else ""))
        found += differences
    print("\n" + "\n".join(totals))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(found, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
