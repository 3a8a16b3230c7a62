"""A differential conformance sweep of DynamoDB's control plane: the same
requests to Shoal and to DynamoDB Local, their answers compared.

The companion of ``bench/conformance_sweep.py`` (the item operations), whose
servers, HTTP client and error normalisation it reuses.  Not a test: a tool to
find where Shoal and a second implementation disagree, each difference then
settled against DynamoDB's documentation and recorded answers (DynamoDB Local
is a second opinion: it creates tables ACTIVE at once, has no backups, and
words several faults in older terms).

Covered: CreateTable's validation rules (key schemas, attribute definitions,
billing modes and throughput, LSI/GSI rules, projections, index names,
streams, SSE, table class, tags, deletion protection, on-demand throughput),
UpdateTable, DeleteTable, DescribeTable, ListTables, the TTL, tagging,
limits, endpoints, continuous-backup and backup operations.

A case may first run set-up requests on both servers (a table of its own,
named ``ctl_t<N>``, created and waited for); every table a case leaves behind
is deleted after it (deletion protection lifted first), so cases do not see
each other's effects.  Successful answers are compared after masking what
cannot agree between two servers: ARNs, times, table and stream ids, the
region and account inside strings, and the members listed in ``LOCAL_ONLY``
that DynamoDB Local is known to answer differently from DynamoDB (see each).

Each difference is classified (``classify``): (a) Shoal wrong by DynamoDB's
documentation or a recorded DynamoDB answer, (b) DynamoDB Local wrong, older
or lacking the operation, (c) unclear, "?" for a difference no rule or note
settles yet.  Only the differences not settled as (b) are printed.

Usage::

    python bench/conformance_control.py [--shoal URL] [--local URL] [--jar PATH]
                                        [--only SUBSTRING] [--json OUT] [--all]

Without ``--shoal`` or ``--local`` each server is started as
``bench/conformance_sweep.py`` starts it (about 50 s for the whole sweep).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conformance_sweep import Endpoint, servers  # noqa: E402

# Fixture tables, created once on both servers and never changed by a case.
HASH = "ctl_hash"  # pk S, on-demand
RANGE = "ctl_range"  # pk S, sk N, provisioned 5/5, GSI gsi (g S), LSI lsi (l S)
STREAM = "ctl_stream"  # pk S, stream NEW_IMAGE
TTL = "ctl_ttl"  # pk S, TTL on "exp"
PROTECTED = "ctl_protected"  # pk S, deletion protection
TAGGED = "ctl_tagged"  # pk S, tags env=test, team=db

PK = [{"AttributeName": "pk", "KeyType": "HASH"}]
PK_SK = PK + [{"AttributeName": "sk", "KeyType": "RANGE"}]
DEF_PK = [{"AttributeName": "pk", "AttributeType": "S"}]
DEF_PK_SK = DEF_PK + [{"AttributeName": "sk", "AttributeType": "N"}]
ON_DEMAND = {"BillingMode": "PAY_PER_REQUEST"}
PT = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}

FIXTURES = [
    {"TableName": HASH, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND},
    {"TableName": RANGE, "KeySchema": PK_SK,
     "AttributeDefinitions": DEF_PK_SK + [{"AttributeName": "g", "AttributeType": "S"},
                                          {"AttributeName": "l", "AttributeType": "S"}],
     "ProvisionedThroughput": PT,
     "GlobalSecondaryIndexes": [{"IndexName": "gsi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}, "ProvisionedThroughput": PT}],
     "LocalSecondaryIndexes": [{"IndexName": "lsi", "KeySchema": [PK[0], {"AttributeName": "l", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "KEYS_ONLY"}}]},
    {"TableName": STREAM, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND,
     "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}},
    {"TableName": TTL, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND},
    {"TableName": PROTECTED, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND,
     "DeletionProtectionEnabled": True},
    {"TableName": TAGGED, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND,
     "Tags": [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "db"}]},
]
FIXTURE_NAMES = {t["TableName"] for t in FIXTURES}

# Members DynamoDB Local answers differently from DynamoDB, masked in
# successful answers (each difference is known and listed in the report):
# Local creates tables and indexes ACTIVE at once where DynamoDB answers
# CREATING, and reports no WarmThroughput, DeletionProtectionEnabled and
# ProvisionedThroughput of on-demand GSIs as DynamoDB does.
LOCAL_ONLY = ("TableStatus", "IndexStatus", "WarmThroughput", "Backfilling", "TableSizeBytes", "ItemCount",
              "IndexSizeBytes")

_VOLATILE_KEY = re.compile(r"(Arn|DateTime|Time|TableId|StreamLabel|Address|CachePeriodInMinutes)$")
_ARN = re.compile(r"arn:aws:dynamodb:[^:\s\"]*:[0-9]*:")


# -- classifying a difference -----------------------------------------------------------
#
# Each difference is settled against DynamoDB's documentation and recorded
# answers: (a) Shoal wrong (fix it), (b) DynamoDB Local wrong or older (Shoal
# follows DynamoDB), (c) unclear.  The rules below classify what a run finds
# as (b) only where the source is known; everything else is printed as "?" for
# a person to settle, and NOTES records the settled (c) cases.

#: Shoal's texts that DynamoDB's recorded answers carry: the ack-api-quirks
#: DynamoDB findings (message catalogue DDB-TABLE-442 and the backup, table
#: and billing findings, recorded 2026-10-08/09 in us-east-1 and us-west-2),
#: dynalite's suite (recorded c. 2015) and docs/status.md's table.
RECORDED = [re.compile(p) for p in (
    r"The parameter 'TableName' is required but was not present in the request$",
    r"Table already exists: ",
    r"Invalid KeySchema: (The first KeySchemaElement is not a HASH|The second KeySchemaElement is not a RANGE"
    r"|Some index key attribute have no definition)",
    r"Both the Hash Key and the Range Key element in the KeySchema have the same name$",
    r"Attribute Name is duplicated: ",
    r"One or more parameter values were invalid: (Some index key attributes are not defined|Number of attributes "
    r"in KeySchema|Some AttributeDefinitions are not used|ReadCapacityUnits and WriteCapacityUnits must both"
    r"|Neither ReadCapacityUnits nor WriteCapacityUnits|Table KeySchema does not have a range key|List of "
    r"(Local|Global)SecondaryIndexes is empty|Number of LocalSecondaryIndexes exceeds|Index KeySchema does not"
    r"|ProjectionType is|Duplicate element in NonKeyAttributes|Number of projected attributes|Duplicate index name"
    r"|ProvisionedThroughput (is not specified|should not be specified|must be specified|cannot be specified)"
    r"|GlobalSecondaryIndex count exceeds|Table is being created with a stream|If stream is being|SSEType"
    r"|KMSMasterKeyId can not|Requested MaxReadRequestUnits|MaxReadRequestUnits for OnDemandThroughput cannot"
    r"|DeletionProtection modification|TableClass modification|Server-Side Encryption modification"
    r"|OnDemandThroughput can only|You cannot|WarmThroughput must be|Create global secondary index cannot"
    r"|Table is already encrypted|AttributeDefinitions is not specified for index|Both ReadCapacityUnits and"
    r"|The only Updates for index|One of GlobalSecondaryIndexUpdate|Only one global secondary index"
    r"|ARNs must start with|Provided Arn is not a DynamoDB|Invalid resource arn provided|Time range lower bound"
    r"|All HASH key attributes must precede RANGE key attributes in the KeySchema$"
    r"|The KeySchema exceeds the maximum allowed number of (HASH|RANGE) key attributes$)",
    r"The KeySchema contains multiple key attributes with the same name$",
    r"The requested (Read|Write)CapacityUnits(, | for index )",
    r"Given value \d+ for (Read|Write)CapacityUnits is out of bounds$",
    r"Invalid table-class parameter provided",
    r"Tag Key cannot be prefixed with aws:|Number of Tags exceed|Duplicate Tag Keys|The Tag (Key|Value) provided"
    r"|Atleast one Tag",
    r"Requested resource not found: (Table: .* not found|Index \S+ for table |ResourcArn: )",
    r"At least one of ProvisionedThroughput, BillingMode",
    r"The provisioned throughput for the (table|index \S+) will not change",
    r"Table already has an enabled stream: TableName: |Table has no stream to disable: TableName: ",
    r"TimeToLive is (already|active on a different AttributeName: current AttributeName is )",
    r"Time to live has been modified multiple times within a fixed interval$",
    r"Cannot (delete|update) an index that is not a GlobalSecondaryIndex: |Attempting to create an index which",
    r"Table not found: |Backup not found: |Invalid Backup ARN$|Invalid Request: ",
    r"1 validation error detected: Invalid AWS region in ",
    r"Access is denied$",
    r"class java\.lang\.String can not be converted to an Long$",
)]

_CORAL = re.compile(r"\d+ validation errors? detected: Value ")

#: 200/200 differences in members DynamoDB Local omits or answers otherwise:
#: DynamoDB reports NumberOfDecreasesToday in an on-demand GSI's throughput,
#: SSEDescription (KMS), TableClassSummary and OnDemandThroughput (Local
#: predates them), keeps a deleted GSI's attributes while it is DELETING, and
#: DeleteTable's description without KeySchema and AttributeDefinitions
#: (docs/status.md).
LOCAL_OMITS = ("NumberOfDecreasesToday", "SSEDescription", "TableClassSummary", "OnDemandThroughput")

#: Settled differences no rule covers: case -> (class, what each source says).
NOTES = {
    "create/hash and range same name": ("b", "dynalite (recorded): a key schema naming one attribute twice with "
                                             "one definition has 'no definition'"),
    "update/gsi delete": ("b", "DynamoDB keeps a DELETING index (and its attributes) until it is gone"),
    "update/gsi delete while it builds": ("b", "API Reference (GlobalSecondaryIndexDescription.Backfilling): an "
                                              "index CREATING while Backfilling can be deleted"),
    "delete/ok": ("b", "DeleteTable's shorter description (docs/status.md)"),
    "delete/ok provisioned with indexes": ("b", "DeleteTable's shorter description (docs/status.md)"),
    "create/gsi multi-attribute ok": ("b", "DynamoDB Local predates multi-attribute GSI keys (Developer Guide, "
                                           "2025)"),
    "describe/arn": ("b", "DynamoDB takes a table ARN as TableName (API model: TableArn, 2024); Local does not"),
    "ttl/disable": ("b", "recorded (DDB-TABLE-442): a second TTL change within the cooldown is refused"),
    "update/replica updates on plain table": ("c", "Shoal: replicas need a deployment started with --region and "
                                                   "--peer; Local: 'Nothing to update'; DynamoDB would add a replica"),
    "update/to on-demand with throughput": ("c", "Shoal follows the recorded catalogue's 'ProvisionedThroughput "
                                                 "cannot be specified when BillingMode is PAY_PER_REQUEST'; Local "
                                                 "compares the throughput first"),
    "tag/arn other account": ("c", "Shoal: ResourceNotFoundException (ResourcArn ... not found); no recorded "
                                   "answer for another account's table ARN (likely AccessDeniedException)"),
    "tag/stream arn": ("c", "Shoal refuses stream ARNs for tags though its message says streams are accepted; "
                            "whether DynamoDB tags streams is not documented"),
    "describe/arn of an index": ("c", "Shoal answers the tagging operations' message; DynamoDB's recorded "
                                      "catalogue lists 'Invalid resource type in' for the Describe operations"),
    "backup list/bounds reversed": ("b", "recorded (DDB-BACKUP-014)"),
    "create/gsi on-demand throughput on provisioned": (
        "b", "recorded beginning (DDB-TABLE-038, CreateTable): '... for OnDemandThroughput for index: <IDX> cannot be "
             "specified ...'; Shoal completes it as the table's recorded sentence"),
}


def classify(case: str, shoal: dict, local: dict) -> tuple[str, str]:
    """(class, reason) of one difference; class "?" when no rule settles it."""
    if case in NOTES:
        return NOTES[case]
    if local.get("type") == "UnknownOperationException" or "UnknownOperationException" in str(local.get("answer")):
        return "b", "DynamoDB Local lacks the operation (Shoal's answer checked against DynamoDB's recordings)"
    if shoal.get("status") == 200 and local.get("status") == 200:
        rest = _without(shoal["result"], LOCAL_OMITS), _without(local["result"], LOCAL_OMITS)
        if rest[0] == rest[1]:
            return "b", "members DynamoDB Local omits (" + ", ".join(LOCAL_OMITS) + ")"
        return "?", "successful answers differ"
    message = shoal.get("message") or ""
    if shoal.get("status") == 400 and (_CORAL.match(message) or shoal.get("type") == "SerializationException"):
        return "b", "Coral's model constraint, which DynamoDB checks first; Local words it its own way"
    if shoal.get("status") == 400 and any(p.match(message) for p in RECORDED):
        if local.get("status") == 200:
            return "b", "DynamoDB's recorded refusal; Local accepts"
        return "b", "DynamoDB's recorded text; Local's older or own wording"
    if shoal.get("status") == 200 and local.get("message") == "Nothing to update":
        return "b", "DynamoDB Local predates the member (TableClass, SSESpecification or OnDemandThroughput updates)"
    if local.get("status") == 500:
        return "b", "DynamoDB Local fails (500)"
    return "?", "not settled"


def _without(value, keys):
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def _tmp(n: int) -> str:
    return f"ctl_t{n}"


# -- the cases --------------------------------------------------------------------------


def cases() -> list[tuple[str, str, dict, list]]:
    """(name, operation, request, set-up requests) of every case.  Strings
    ``{arn:TABLE}`` in a request are replaced by the table's ARN on each
    server, ``{backup}`` by the ARN of the backup a set-up request made."""
    out: list[tuple[str, str, dict, list]] = []
    counter = iter(range(1, 100000))

    def add(name: str, op: str, body: dict, pre: list | None = None) -> None:
        out.append((name, op, body, pre or []))

    def create(name: str, **members) -> None:
        """A CreateTable case; ``members`` replace the base request's
        (a member given as None is dropped)."""
        body = {"TableName": _tmp(next(counter)), "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND}
        body.update(members)
        body = {k: v for k, v in body.items() if v is not None}
        add("create/" + name, "CreateTable", body)

    def ranged(**members) -> dict:
        return {"KeySchema": PK_SK, "AttributeDefinitions": DEF_PK_SK, **members}

    def lsi(name: str = "lsi1", attr: str = "l", projection: dict | None = None, hash_: str = "pk", **extra) -> dict:
        return {"IndexName": name, "KeySchema": [{"AttributeName": hash_, "KeyType": "HASH"},
                                                 {"AttributeName": attr, "KeyType": "RANGE"}],
                "Projection": projection or {"ProjectionType": "KEYS_ONLY"}, **extra}

    def gsi(name: str = "gsi1", attr: str = "g", projection: dict | None = None, **extra) -> dict:
        return {"IndexName": name, "KeySchema": [{"AttributeName": attr, "KeyType": "HASH"}],
                "Projection": projection or {"ProjectionType": "ALL"}, **extra}

    def with_defs(*names: str, base=DEF_PK_SK) -> list:
        return base + [{"AttributeName": n, "AttributeType": "S"} for n in names]

    # CreateTable: names.
    create("ok on-demand")
    create("ok provisioned", BillingMode=None, ProvisionedThroughput=PT)
    create("no table name", TableName=None)
    create("table name short", TableName="ab")
    create("table name bad chars", TableName="a b!")
    create("table name 255", TableName="t" * 255)
    create("table name 256", TableName="t" * 256)
    create("table name empty", TableName="")
    add("create/existing table", "CreateTable", {"TableName": HASH, "KeySchema": PK, "AttributeDefinitions": DEF_PK,
                                                 **ON_DEMAND})
    # CreateTable: key schema.
    create("no key schema", KeySchema=None)
    create("empty key schema", KeySchema=[])
    create("key schema 3 elements", KeySchema=PK_SK + [{"AttributeName": "x", "KeyType": "RANGE"}],
           AttributeDefinitions=with_defs("x"))
    create("two hash keys", KeySchema=[PK[0], {"AttributeName": "sk", "KeyType": "HASH"}],
           AttributeDefinitions=DEF_PK_SK)
    create("range only", KeySchema=[{"AttributeName": "pk", "KeyType": "RANGE"}])
    create("range first", KeySchema=[PK_SK[1], PK_SK[0]], AttributeDefinitions=DEF_PK_SK)
    create("bad key type", KeySchema=[{"AttributeName": "pk", "KeyType": "FOO"}])
    create("key name empty", KeySchema=[{"AttributeName": "", "KeyType": "HASH"}],
           AttributeDefinitions=[{"AttributeName": "", "AttributeType": "S"}])
    create("key name 255", KeySchema=[{"AttributeName": "k" * 255, "KeyType": "HASH"}],
           AttributeDefinitions=[{"AttributeName": "k" * 255, "AttributeType": "S"}])
    create("key name 256", KeySchema=[{"AttributeName": "k" * 256, "KeyType": "HASH"}],
           AttributeDefinitions=[{"AttributeName": "k" * 256, "AttributeType": "S"}])
    create("hash and range same name", KeySchema=[PK[0], {"AttributeName": "pk", "KeyType": "RANGE"}])
    create("key without type member", KeySchema=[{"AttributeName": "pk"}])
    create("key attribute undefined", AttributeDefinitions=[{"AttributeName": "x", "AttributeType": "S"}])
    create("range key undefined", KeySchema=PK_SK)
    # CreateTable: attribute definitions.
    create("no attribute definitions", AttributeDefinitions=None)
    create("empty attribute definitions", AttributeDefinitions=[])
    create("attribute type BOOL", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "BOOL"}])
    create("attribute type bad", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "X"}])
    create("attribute type missing", AttributeDefinitions=[{"AttributeName": "pk"}])
    create("unused attribute definition", AttributeDefinitions=with_defs("x", base=DEF_PK))
    create("unused attribute definition, ranged", **ranged(AttributeDefinitions=with_defs("x")))
    create("duplicate attribute definition", AttributeDefinitions=DEF_PK + DEF_PK)
    create("duplicate attribute definition, other type",
           AttributeDefinitions=DEF_PK + [{"AttributeName": "pk", "AttributeType": "N"}])
    create("key type binary", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "B"}])
    # CreateTable: billing and throughput.
    create("billing mode bad", BillingMode="FREE")
    create("provisioned without throughput", BillingMode="PROVISIONED")
    create("no billing mode, no throughput", BillingMode=None)
    create("on-demand with throughput", ProvisionedThroughput=PT)
    create("provisioned read 0", BillingMode="PROVISIONED",
           ProvisionedThroughput={"ReadCapacityUnits": 0, "WriteCapacityUnits": 5})
    create("provisioned write 0", BillingMode="PROVISIONED",
           ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 0})
    create("provisioned negative", BillingMode="PROVISIONED",
           ProvisionedThroughput={"ReadCapacityUnits": -1, "WriteCapacityUnits": 5})
    create("provisioned write missing", BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 5})
    create("provisioned over per-table limit", BillingMode="PROVISIONED",
           ProvisionedThroughput={"ReadCapacityUnits": 40001, "WriteCapacityUnits": 5})
    create("provisioned out of bounds", BillingMode="PROVISIONED",
           ProvisionedThroughput={"ReadCapacityUnits": 1000000000001, "WriteCapacityUnits": 5})
    create("provisioned huge", BillingMode="PROVISIONED",
           ProvisionedThroughput={"ReadCapacityUnits": 10 ** 20, "WriteCapacityUnits": 5})
    create("provisioned string units", BillingMode="PROVISIONED",
           ProvisionedThroughput={"ReadCapacityUnits": "5", "WriteCapacityUnits": 5})
    # CreateTable: local secondary indexes.
    create("lsi ok", **ranged(AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi()]))
    create("lsi without table sort key", AttributeDefinitions=with_defs("l", base=DEF_PK),
           LocalSecondaryIndexes=[lsi()])
    create("lsi empty list", **ranged(LocalSecondaryIndexes=[]))
    create("lsi 6", **ranged(AttributeDefinitions=with_defs("l"),
                             LocalSecondaryIndexes=[lsi(f"lsi{i}") for i in range(6)]))
    create("lsi 5", **ranged(AttributeDefinitions=with_defs("l"),
                             LocalSecondaryIndexes=[lsi(f"lsi{i}") for i in range(5)]))
    create("lsi other hash key", **ranged(AttributeDefinitions=with_defs("l", "h"),
                                          LocalSecondaryIndexes=[lsi(hash_="h")]))
    create("lsi hash only", **ranged(LocalSecondaryIndexes=[{"IndexName": "lsi1", "KeySchema": PK,
                                                             "Projection": {"ProjectionType": "ALL"}}]))
    create("lsi same key as table", **ranged(LocalSecondaryIndexes=[lsi(attr="sk")]))
    create("lsi attribute undefined", **ranged(LocalSecondaryIndexes=[lsi()]))
    create("lsi no projection", **ranged(AttributeDefinitions=with_defs("l"),
                                         LocalSecondaryIndexes=[{k: v for k, v in lsi().items() if k != "Projection"}]))
    create("lsi projection empty", **ranged(AttributeDefinitions=with_defs("l"),
                                            LocalSecondaryIndexes=[lsi(projection={})]))
    create("lsi projection type bad", **ranged(AttributeDefinitions=with_defs("l"),
                                               LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "SOME"})]))
    create("lsi include without attributes", **ranged(
        AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "INCLUDE"})]))
    create("lsi include empty attributes", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": []})]))
    create("lsi keys only with attributes", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "KEYS_ONLY", "NonKeyAttributes": ["a"]})]))
    create("lsi all with attributes", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "ALL", "NonKeyAttributes": ["a"]})]))
    create("lsi include ok", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": ["b", "a"]})]))
    create("lsi include duplicates", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "a"]})]))
    create("lsi include key attribute", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": ["sk"]})]))
    create("lsi include 21 attributes", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "INCLUDE",
                                               "NonKeyAttributes": [f"a{i}" for i in range(21)]})]))
    create("lsi include 101 attributes", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi(projection={"ProjectionType": "INCLUDE",
                                               "NonKeyAttributes": [f"a{i}" for i in range(101)]})]))
    create("projected 101 over two indexes", **ranged(
        AttributeDefinitions=with_defs("l"),
        LocalSecondaryIndexes=[lsi("lsi1", projection={"ProjectionType": "INCLUDE",
                                                     "NonKeyAttributes": [f"a{i}" for i in range(20)]}),
                               lsi("lsi2", projection={"ProjectionType": "INCLUDE",
                                                     "NonKeyAttributes": [f"b{i}" for i in range(20)]}),
                               lsi("lsi3", projection={"ProjectionType": "INCLUDE",
                                                     "NonKeyAttributes": [f"c{i}" for i in range(20)]}),
                               lsi("lsi4", projection={"ProjectionType": "INCLUDE",
                                                     "NonKeyAttributes": [f"d{i}" for i in range(20)]}),
                               lsi("lsi5", projection={"ProjectionType": "INCLUDE",
                                                     "NonKeyAttributes": [f"e{i}" for i in range(20)]})],
        GlobalSecondaryIndexes=[gsi(attr="l", projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": ["z"]})]))
    create("lsi name short", **ranged(AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi("ab")]))
    create("lsi name bad chars", **ranged(AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi("a b")]))
    create("lsi name 256", **ranged(AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi("i" * 256)]))
    create("lsi name 255", **ranged(AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi("i" * 255)]))
    create("lsi duplicate names", **ranged(AttributeDefinitions=with_defs("l", "m"),
                                           LocalSecondaryIndexes=[lsi(), lsi(attr="m")]))
    create("lsi with throughput", **ranged(AttributeDefinitions=with_defs("l"),
                                           LocalSecondaryIndexes=[lsi(ProvisionedThroughput=PT)]))
    create("lsi no name", **ranged(AttributeDefinitions=with_defs("l"),
                                   LocalSecondaryIndexes=[{k: v for k, v in lsi().items() if k != "IndexName"}]))
    # CreateTable: global secondary indexes.
    create("gsi ok", AttributeDefinitions=with_defs("g", base=DEF_PK), GlobalSecondaryIndexes=[gsi()])
    create("gsi ok provisioned", BillingMode=None, ProvisionedThroughput=PT,
           AttributeDefinitions=with_defs("g", base=DEF_PK), GlobalSecondaryIndexes=[gsi(ProvisionedThroughput=PT)])
    create("gsi provisioned without throughput", BillingMode=None, ProvisionedThroughput=PT,
           AttributeDefinitions=with_defs("g", base=DEF_PK), GlobalSecondaryIndexes=[gsi()])
    create("gsi on-demand with throughput", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(ProvisionedThroughput=PT)])
    create("gsi throughput 0", BillingMode=None, ProvisionedThroughput=PT,
           AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(ProvisionedThroughput={"ReadCapacityUnits": 0, "WriteCapacityUnits": 1})])
    create("gsi throughput over limit", BillingMode=None, ProvisionedThroughput=PT,
           AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(ProvisionedThroughput={"ReadCapacityUnits": 40001, "WriteCapacityUnits": 1})])
    create("gsi empty list", GlobalSecondaryIndexes=[])
    create("gsi 21", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(f"gsi{i}") for i in range(21)])
    create("gsi 20", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(f"gsi{i}") for i in range(20)])
    create("gsi attribute undefined", GlobalSecondaryIndexes=[gsi()])
    create("gsi range only", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[{"IndexName": "gsi1", "KeySchema": [{"AttributeName": "g", "KeyType": "RANGE"}],
                                    "Projection": {"ProjectionType": "ALL"}}])
    create("gsi same key as table", GlobalSecondaryIndexes=[gsi(attr="pk")])
    create("gsi duplicate names", AttributeDefinitions=with_defs("g", "h", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(), gsi(attr="h")])
    create("gsi and lsi same name", **ranged(AttributeDefinitions=with_defs("g", "l"),
                                             LocalSecondaryIndexes=[lsi("idx1")], GlobalSecondaryIndexes=[gsi("idx1")]))
    create("gsi no projection", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[{k: v for k, v in gsi().items() if k != "Projection"}])
    create("gsi include without attributes", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(projection={"ProjectionType": "INCLUDE"})])
    create("gsi include duplicates", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x", "x"]})])
    create("gsi include 101", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(projection={"ProjectionType": "INCLUDE",
                                                   "NonKeyAttributes": [f"a{i}" for i in range(101)]})])
    create("gsi include 100", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(projection={"ProjectionType": "INCLUDE",
                                                   "NonKeyAttributes": [f"a{i}" for i in range(100)]})])
    create("gsi name short", AttributeDefinitions=with_defs("g", base=DEF_PK), GlobalSecondaryIndexes=[gsi("ab")])
    create("gsi name bad", AttributeDefinitions=with_defs("g", base=DEF_PK), GlobalSecondaryIndexes=[gsi("g!")])
    create("gsi key type BOOL", AttributeDefinitions=DEF_PK + [{"AttributeName": "g", "AttributeType": "BOOL"}],
           GlobalSecondaryIndexes=[gsi()])
    create("gsi hash and range same", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[{"IndexName": "gsi1", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                                                     {"AttributeName": "g", "KeyType": "RANGE"}],
                                    "Projection": {"ProjectionType": "ALL"}}])
    create("gsi key schema empty", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[{"IndexName": "gsi1", "KeySchema": [], "Projection": {"ProjectionType": "ALL"}}])
    # CreateTable: multi-attribute GSI keys (up to four HASH then four RANGE attributes).
    multi = [f"m{i}" for i in range(6)]

    def multi_gsi(*kinds: tuple[str, str]) -> dict:
        return {"IndexName": "gsi1", "KeySchema": [{"AttributeName": a, "KeyType": k} for a, k in kinds],
                "Projection": {"ProjectionType": "ALL"}}
    create("gsi multi-attribute ok", AttributeDefinitions=with_defs(*multi[:4], base=DEF_PK),
           GlobalSecondaryIndexes=[multi_gsi(("m0", "HASH"), ("m1", "HASH"), ("m2", "RANGE"), ("m3", "RANGE"))])
    create("gsi multi-attribute 5 hash", AttributeDefinitions=with_defs(*multi[:5], base=DEF_PK),
           GlobalSecondaryIndexes=[multi_gsi(*[(a, "HASH") for a in multi[:5]])])
    create("gsi multi-attribute hash after range", AttributeDefinitions=with_defs(*multi[:3], base=DEF_PK),
           GlobalSecondaryIndexes=[multi_gsi(("m0", "HASH"), ("m1", "RANGE"), ("m2", "HASH"))])
    create("gsi multi-attribute same name twice", AttributeDefinitions=with_defs(*multi[:2], base=DEF_PK),
           GlobalSecondaryIndexes=[multi_gsi(("m0", "HASH"), ("m1", "HASH"), ("m0", "RANGE"))])
    create("gsi on-demand throughput on provisioned", BillingMode=None, ProvisionedThroughput=PT,
           AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(ProvisionedThroughput=PT, OnDemandThroughput={"MaxReadRequestUnits": 5})])
    # CreateTable: streams, SSE, table class, tags, deletion protection, on-demand throughput.
    create("stream enabled without view type", StreamSpecification={"StreamEnabled": True})
    create("stream disabled with view type", StreamSpecification={"StreamEnabled": False,
                                                                  "StreamViewType": "NEW_IMAGE"})
    create("stream disabled", StreamSpecification={"StreamEnabled": False})
    create("stream view type bad", StreamSpecification={"StreamEnabled": True, "StreamViewType": "ALL"})
    create("stream ok", StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    create("stream enabled missing", StreamSpecification={"StreamViewType": "NEW_IMAGE"})
    create("sse enabled", SSESpecification={"Enabled": True})
    create("sse disabled", SSESpecification={"Enabled": False})
    create("sse kms", SSESpecification={"Enabled": True, "SSEType": "KMS"})
    create("sse aes256", SSESpecification={"Enabled": True, "SSEType": "AES256"})
    create("sse type bad", SSESpecification={"Enabled": True, "SSEType": "RSA"})
    create("sse key without enabled", SSESpecification={"KMSMasterKeyId": "alias/aws/dynamodb"})
    create("sse disabled with kms", SSESpecification={"Enabled": False, "SSEType": "KMS"})
    create("table class standard", TableClass="STANDARD")
    create("table class ia", TableClass="STANDARD_INFREQUENT_ACCESS")
    create("table class bad", TableClass="COLD")
    create("tags ok", Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}])
    create("tags empty list", Tags=[])
    create("tag empty key", Tags=[{"Key": "", "Value": "x"}])
    create("tag key 128", Tags=[{"Key": "k" * 128, "Value": "x"}])
    create("tag key 129", Tags=[{"Key": "k" * 129, "Value": "x"}])
    create("tag value 257", Tags=[{"Key": "k", "Value": "v" * 257}])
    create("tag aws prefix", Tags=[{"Key": "aws:x", "Value": "x"}])
    create("tags 51", Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    create("tags 50", Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    create("tags duplicate key", Tags=[{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}])
    create("tag bad chars", Tags=[{"Key": "k!", "Value": "x"}])
    create("tag no value", Tags=[{"Key": "k"}])
    create("deletion protection", DeletionProtectionEnabled=True)
    create("deletion protection false", DeletionProtectionEnabled=False)
    create("on-demand throughput ok", OnDemandThroughput={"MaxReadRequestUnits": 10, "MaxWriteRequestUnits": 10})
    create("on-demand throughput -1", OnDemandThroughput={"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": -1})
    create("on-demand throughput 0", OnDemandThroughput={"MaxReadRequestUnits": 0})
    create("on-demand throughput -2", OnDemandThroughput={"MaxReadRequestUnits": -2})
    create("on-demand throughput on provisioned", BillingMode=None, ProvisionedThroughput=PT,
           OnDemandThroughput={"MaxReadRequestUnits": 10})
    create("on-demand throughput empty", OnDemandThroughput={})
    create("gsi on-demand throughput", AttributeDefinitions=with_defs("g", base=DEF_PK),
           GlobalSecondaryIndexes=[gsi(OnDemandThroughput={"MaxReadRequestUnits": 5, "MaxWriteRequestUnits": 5})])

    # UpdateTable.
    n = next(counter)

    def update(name: str, request: dict, table: dict | None = None, pre: list | None = None) -> None:
        """An UpdateTable case on a table of its own (``table`` members over an
        on-demand hash table's)."""
        tmp = _tmp(next(counter))
        spec = {"TableName": tmp, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND, **(table or {})}
        spec = {k: v for k, v in spec.items() if v is not None}
        steps = [("CreateTable", spec)] + [(op, dict(body, TableName=tmp)) for op, body in pre or []]
        add("update/" + name, "UpdateTable", dict(request, TableName=tmp), steps)

    provisioned = {"BillingMode": None, "ProvisionedThroughput": PT}
    g_defs = {"AttributeDefinitions": with_defs("g", base=DEF_PK)}
    new_gsi = gsi("gsi2", "h")
    add("update/missing table", "UpdateTable", {"TableName": "ctl_none", "BillingMode": "PAY_PER_REQUEST"})
    add("update/no table name", "UpdateTable", {"BillingMode": "PAY_PER_REQUEST"})
    update("nothing", {})
    update("same billing mode", {"BillingMode": "PAY_PER_REQUEST"})
    update("billing bad", {"BillingMode": "FREE"})
    update("to provisioned without throughput", {"BillingMode": "PROVISIONED"})
    update("to provisioned", {"BillingMode": "PROVISIONED", "ProvisionedThroughput": PT})
    update("throughput on on-demand", {"ProvisionedThroughput": PT})
    update("to on-demand", {"BillingMode": "PAY_PER_REQUEST"}, provisioned)
    update("to on-demand with throughput", {"BillingMode": "PAY_PER_REQUEST", "ProvisionedThroughput": PT},
           provisioned)
    update("same throughput", {"ProvisionedThroughput": PT}, provisioned)
    update("throughput 0", {"ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 5}},
           provisioned)
    update("throughput over limit", {"ProvisionedThroughput": {"ReadCapacityUnits": 40001,
                                                               "WriteCapacityUnits": 5}}, provisioned)
    update("throughput changed", {"ProvisionedThroughput": {"ReadCapacityUnits": 6, "WriteCapacityUnits": 5}},
           provisioned)
    update("provisioned, same billing", {"BillingMode": "PROVISIONED"}, provisioned)
    update("to provisioned, gsi without throughput", {"BillingMode": "PROVISIONED", "ProvisionedThroughput": PT},
           {**g_defs, "GlobalSecondaryIndexes": [gsi()]})
    update("stream enable", {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}})
    update("stream enable twice", {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}},
           {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}})
    update("stream enable other view", {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}},
           {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}})
    update("stream disable without stream", {"StreamSpecification": {"StreamEnabled": False}})
    update("stream disable", {"StreamSpecification": {"StreamEnabled": False}},
           {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}})
    update("stream enable without view type", {"StreamSpecification": {"StreamEnabled": True}})
    update("stream disable with view type", {"StreamSpecification": {"StreamEnabled": False,
                                                                     "StreamViewType": "NEW_IMAGE"}})
    update("deletion protection on", {"DeletionProtectionEnabled": True})
    update("deletion protection off when off", {"DeletionProtectionEnabled": False})
    update("deletion protection and billing", {"DeletionProtectionEnabled": True, "BillingMode": "PROVISIONED",
                                               "ProvisionedThroughput": PT})
    update("table class", {"TableClass": "STANDARD_INFREQUENT_ACCESS"})
    update("table class same", {"TableClass": "STANDARD"})
    update("table class bad", {"TableClass": "COLD"})
    update("sse enable", {"SSESpecification": {"Enabled": True}})
    update("sse kms", {"SSESpecification": {"Enabled": True, "SSEType": "KMS"}})
    update("on-demand throughput", {"OnDemandThroughput": {"MaxReadRequestUnits": 10}})
    update("on-demand throughput on provisioned", {"OnDemandThroughput": {"MaxReadRequestUnits": 10}}, provisioned)
    update("attribute definitions only", {"AttributeDefinitions": with_defs("g", base=DEF_PK)})
    update("gsi create", {"AttributeDefinitions": with_defs("h", base=DEF_PK),
                          "GlobalSecondaryIndexUpdates": [{"Create": new_gsi}]})
    update("gsi create without definitions", {"GlobalSecondaryIndexUpdates": [{"Create": new_gsi}]})
    update("gsi create, definition missing", {"AttributeDefinitions": DEF_PK,
                                              "GlobalSecondaryIndexUpdates": [{"Create": new_gsi}]})
    update("gsi create existing name", {"AttributeDefinitions": with_defs("g", base=DEF_PK),
                                        "GlobalSecondaryIndexUpdates": [{"Create": gsi()}]},
           {**g_defs, "GlobalSecondaryIndexes": [gsi()]})
    update("gsi create on provisioned without throughput", {"AttributeDefinitions": with_defs("h", base=DEF_PK),
                                                            "GlobalSecondaryIndexUpdates": [{"Create": new_gsi}]},
           provisioned)
    update("gsi create on-demand with throughput", {
        "AttributeDefinitions": with_defs("h", base=DEF_PK),
        "GlobalSecondaryIndexUpdates": [{"Create": dict(new_gsi, ProvisionedThroughput=PT)}]})
    update("gsi create type conflict", {"AttributeDefinitions": DEF_PK + [{"AttributeName": "g", "AttributeType": "N"}],
                                        "GlobalSecondaryIndexUpdates": [{"Create": gsi("g2")}]},
           {**g_defs, "GlobalSecondaryIndexes": [gsi()]})
    update("gsi create include duplicates", {
        "AttributeDefinitions": with_defs("h", base=DEF_PK),
        "GlobalSecondaryIndexUpdates": [{"Create": gsi("gsi2", "h", {"ProjectionType": "INCLUDE",
                                                                   "NonKeyAttributes": ["x", "x"]})}]})
    update("gsi create name short", {"AttributeDefinitions": with_defs("h", base=DEF_PK),
                                     "GlobalSecondaryIndexUpdates": [{"Create": gsi("ab", "h")}]})
    update("gsi create two", {"AttributeDefinitions": with_defs("h", "i", base=DEF_PK),
                              "GlobalSecondaryIndexUpdates": [{"Create": new_gsi}, {"Create": gsi("gsi3", "i")}]})
    update("gsi delete", {"GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "gsi1"}}]},
           {**g_defs, "GlobalSecondaryIndexes": [gsi()]})
    update("gsi delete missing", {"GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "nope"}}]})
    update("gsi update missing", {"GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "nope",
                                                                              "ProvisionedThroughput": PT}}]},
           provisioned)
    update("gsi update on-demand table", {"GlobalSecondaryIndexUpdates": [{"Update": {
        "IndexName": "gsi1", "ProvisionedThroughput": PT}}]}, {**g_defs, "GlobalSecondaryIndexes": [gsi()]})
    update("gsi update", {"GlobalSecondaryIndexUpdates": [{"Update": {
        "IndexName": "gsi1", "ProvisionedThroughput": {"ReadCapacityUnits": 6, "WriteCapacityUnits": 6}}}]},
           {**provisioned, **g_defs, "GlobalSecondaryIndexes": [gsi(ProvisionedThroughput=PT)]})
    update("gsi update same throughput", {"GlobalSecondaryIndexUpdates": [{"Update": {
        "IndexName": "gsi1", "ProvisionedThroughput": PT}}]},
           {**provisioned, **g_defs, "GlobalSecondaryIndexes": [gsi(ProvisionedThroughput=PT)]})
    update("gsi updates empty", {"GlobalSecondaryIndexUpdates": []})
    update("gsi update element empty", {"GlobalSecondaryIndexUpdates": [{}]})
    update("gsi create and delete in one", {"AttributeDefinitions": with_defs("h", base=DEF_PK),
                                            "GlobalSecondaryIndexUpdates": [
                                                {"Create": new_gsi, "Delete": {"IndexName": "gsi1"}}]},
           {**g_defs, "GlobalSecondaryIndexes": [gsi()]})
    update("gsi delete twice", {"GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "gsi1"}},
                                                                {"Delete": {"IndexName": "gsi1"}}]},
           {**g_defs, "GlobalSecondaryIndexes": [gsi()]})
    update("gsi while another builds", {"AttributeDefinitions": with_defs("h", "i", base=DEF_PK),
                                        "GlobalSecondaryIndexUpdates": [{"Create": gsi("gsi3", "i")}]},
           pre=[("UpdateTable", {"AttributeDefinitions": with_defs("h", base=DEF_PK),
                                 "GlobalSecondaryIndexUpdates": [{"Create": new_gsi}], "__nowait": True})])
    update("gsi delete while it builds", {"GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "gsi2"}}]},
           pre=[("UpdateTable", {"AttributeDefinitions": with_defs("h", base=DEF_PK),
                                 "GlobalSecondaryIndexUpdates": [{"Create": new_gsi}], "__nowait": True})])
    update("stream and gsi together", {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
                                       "AttributeDefinitions": with_defs("h", base=DEF_PK),
                                       "GlobalSecondaryIndexUpdates": [{"Create": new_gsi}]})
    # Members UpdateTable takes only alone or in given pairs (DynamoDB's recorded catalogue of messages).
    update("table class and billing", {"TableClass": "STANDARD_INFREQUENT_ACCESS", "BillingMode": "PROVISIONED",
                                       "ProvisionedThroughput": PT})
    update("sse and deletion protection", {"SSESpecification": {"Enabled": True, "SSEType": "KMS"},
                                           "DeletionProtectionEnabled": True})
    update("sse empty", {"SSESpecification": {}})
    update("sse disabled on default encryption", {"SSESpecification": {"Enabled": False}})
    update("on-demand throughput and stream", {"OnDemandThroughput": {"MaxReadRequestUnits": 10},
                                               "StreamSpecification": {"StreamEnabled": True,
                                                                       "StreamViewType": "KEYS_ONLY"}})
    update("on-demand throughput and billing", {"OnDemandThroughput": {"MaxReadRequestUnits": 10},
                                                "BillingMode": "PAY_PER_REQUEST"}, provisioned)
    update("stream and throughput", {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
                                     "ProvisionedThroughput": {"ReadCapacityUnits": 6, "WriteCapacityUnits": 6}},
           provisioned)
    update("gsi create and throughput", {"ProvisionedThroughput": {"ReadCapacityUnits": 6, "WriteCapacityUnits": 6},
                                         "AttributeDefinitions": with_defs("h", base=DEF_PK),
                                         "GlobalSecondaryIndexUpdates": [{"Create": dict(new_gsi,
                                                                                         ProvisionedThroughput=PT)}]},
           provisioned)
    update("warm throughput and stream", {"WarmThroughput": {"ReadUnitsPerSecond": 13000},
                                          "StreamSpecification": {"StreamEnabled": True,
                                                                  "StreamViewType": "KEYS_ONLY"}})
    update("warm throughput and gsi create", {"WarmThroughput": {"ReadUnitsPerSecond": 13000},
                                              "AttributeDefinitions": with_defs("h", base=DEF_PK),
                                              "GlobalSecondaryIndexUpdates": [{"Create": new_gsi}]})
    update("lsi delete", {"GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "lsi1"}}]},
           ranged(AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi()]))
    update("lsi update", {"GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "lsi1",
                                                                      "ProvisionedThroughput": PT}}]},
           ranged(AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi()], **provisioned))
    update("lsi name created as gsi", {"AttributeDefinitions": with_defs("l", "h"),
                                       "GlobalSecondaryIndexUpdates": [{"Create": gsi("lsi1", "h")}]},
           ranged(AttributeDefinitions=with_defs("l"), LocalSecondaryIndexes=[lsi()]))
    update("replica updates on plain table", {"ReplicaUpdates": [{"Delete": {"RegionName": "eu-west-1"}}]})
    del n

    # DeleteTable, DescribeTable, ListTables.
    add("delete/missing table", "DeleteTable", {"TableName": "ctl_none"})
    add("delete/no table name", "DeleteTable", {})
    add("delete/bad table name", "DeleteTable", {"TableName": "a!"})
    add("delete/protected", "DeleteTable", {"TableName": PROTECTED})
    tmp = _tmp(next(counter))
    add("delete/ok", "DeleteTable", {"TableName": tmp},
        [("CreateTable", {"TableName": tmp, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND})])
    tmp = _tmp(next(counter))
    add("delete/ok provisioned with indexes", "DeleteTable", {"TableName": tmp},
        [("CreateTable", dict(FIXTURES[1], TableName=tmp))])
    for fixture in FIXTURES:
        add(f"describe/{fixture['TableName']}", "DescribeTable", {"TableName": fixture["TableName"]})
    add("describe/missing table", "DescribeTable", {"TableName": "ctl_none"})
    add("describe/bad name", "DescribeTable", {"TableName": "a!"})
    add("describe/short name", "DescribeTable", {"TableName": "ab"})
    add("describe/no name", "DescribeTable", {})
    add("describe/arn of missing table", "DescribeTable", {"TableName": "{arn:ctl_none}"})
    add("describe/arn", "DescribeTable", {"TableName": "{arn:ctl_hash}"})
    add("describe/arn of an unknown region", "DescribeTable",
        {"TableName": "arn:aws:dynamodb:xx-fake-1:000000000000:table/ctl_hash"})
    add("describe/arn of another region", "DescribeTable",
        {"TableName": "arn:aws:dynamodb:eu-west-1:000000000000:table/ctl_hash"})
    add("describe/arn of an index", "DescribeTable", {"TableName": "{arn:ctl_range}/index/gsi"})
    add("ttl describe/arn of an unknown region", "DescribeTimeToLive",
        {"TableName": "arn:aws:dynamodb:xx-fake-1:000000000000:table/ctl_hash"})
    add("pitr describe/arn of an unknown region", "DescribeContinuousBackups",
        {"TableName": "arn:aws:dynamodb:xx-fake-1:000000000000:table/ctl_hash"})
    add("list/all", "ListTables", {})
    for limit in (0, 1, 3, 100, 101):
        add(f"list/limit {limit}", "ListTables", {"Limit": limit})
    add("list/start", "ListTables", {"ExclusiveStartTableName": HASH})
    add("list/start missing name", "ListTables", {"ExclusiveStartTableName": "ctl_m"})
    add("list/start bad name", "ListTables", {"ExclusiveStartTableName": "a!"})
    add("list/start short name", "ListTables", {"ExclusiveStartTableName": "ab"})
    add("list/start and limit", "ListTables", {"ExclusiveStartTableName": HASH, "Limit": 2})
    add("list/start last", "ListTables", {"ExclusiveStartTableName": TTL})

    # TTL.
    def ttl(name: str, spec: dict | None, enabled_on: str | None = None) -> None:
        tmp = _tmp(next(counter))
        steps = [("CreateTable", {"TableName": tmp, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND})]
        if enabled_on:
            steps.append(("UpdateTimeToLive", {"TableName": tmp, "TimeToLiveSpecification": {
                "Enabled": True, "AttributeName": enabled_on}}))
        body = {"TableName": tmp} if spec is None else {"TableName": tmp, "TimeToLiveSpecification": spec}
        add("ttl/" + name, "UpdateTimeToLive", body, steps)

    ttl("enable", {"Enabled": True, "AttributeName": "exp"})
    ttl("enable twice", {"Enabled": True, "AttributeName": "exp"}, "exp")
    ttl("enable other attribute while enabled", {"Enabled": True, "AttributeName": "other"}, "exp")
    ttl("disable", {"Enabled": False, "AttributeName": "exp"}, "exp")
    ttl("disable other attribute", {"Enabled": False, "AttributeName": "other"}, "exp")
    ttl("disable when disabled", {"Enabled": False, "AttributeName": "exp"})
    ttl("empty attribute name", {"Enabled": True, "AttributeName": ""})
    ttl("attribute name 256", {"Enabled": True, "AttributeName": "a" * 256})
    ttl("no attribute name", {"Enabled": True})
    ttl("no enabled", {"AttributeName": "exp"})
    ttl("no specification", None)
    ttl("key attribute", {"Enabled": True, "AttributeName": "pk"})
    add("ttl/missing table", "UpdateTimeToLive", {"TableName": "ctl_none",
                                                  "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "x"}})
    add("ttl/bad table name", "UpdateTimeToLive", {"TableName": "a!",
                                                   "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "x"}})
    add("ttl describe/enabled", "DescribeTimeToLive", {"TableName": TTL})
    add("ttl describe/disabled", "DescribeTimeToLive", {"TableName": HASH})
    add("ttl describe/missing table", "DescribeTimeToLive", {"TableName": "ctl_none"})
    add("ttl describe/no name", "DescribeTimeToLive", {})
    add("ttl describe/bad name", "DescribeTimeToLive", {"TableName": "a!"})

    # Tags.
    tag_cases = {
        "ok": [{"Key": "k", "Value": "v"}],
        "empty list": [],
        "empty key": [{"Key": "", "Value": "v"}],
        "aws prefix": [{"Key": "aws:k", "Value": "v"}],
        "AWS prefix upper": [{"Key": "AWS:k", "Value": "v"}],
        "key 129": [{"Key": "k" * 129, "Value": "v"}],
        "value 257": [{"Key": "k", "Value": "v" * 257}],
        "49 more": [{"Key": f"k{i}", "Value": "v"} for i in range(49)],
        "48 more": [{"Key": f"k{i}", "Value": "v"} for i in range(48)],
        "duplicate keys": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}],
        "bad chars": [{"Key": "k#", "Value": "v"}],
        "existing key": [{"Key": "env", "Value": "prod"}],
        "no value": [{"Key": "k"}],
    }
    for name, tags in tag_cases.items():
        tmp = _tmp(next(counter))
        add(f"tag/{name}", "TagResource", {"ResourceArn": f"{{arn:{tmp}}}", "Tags": tags},
            [("CreateTable", dict(FIXTURES[5], TableName=tmp))])
    add("tag/no tags member", "TagResource", {"ResourceArn": f"{{arn:{TAGGED}}}"})
    add("tag/bad arn", "TagResource", {"ResourceArn": "foo", "Tags": [{"Key": "k", "Value": "v"}]})
    add("tag/arn of missing table", "TagResource", {"ResourceArn": "{arn:ctl_none}",
                                                    "Tags": [{"Key": "k", "Value": "v"}]})
    add("tag/arn empty", "TagResource", {"ResourceArn": "", "Tags": [{"Key": "k", "Value": "v"}]})
    add("tag/arn other service", "TagResource", {"ResourceArn": "arn:aws:s3:::bucket",
                                                 "Tags": [{"Key": "k", "Value": "v"}]})
    add("tag/arn other account", "TagResource", {"ResourceArn": f"arn:aws:dynamodb:us-east-1:999999999999:table/"
                                                               f"{TAGGED}", "Tags": [{"Key": "k", "Value": "v"}]})
    add("tag/index arn", "TagResource", {"ResourceArn": "{arn:ctl_range}/index/gsi",
                                         "Tags": [{"Key": "k", "Value": "v"}]})
    add("tag/stream arn", "TagResource", {"ResourceArn": "{arn:ctl_stream}/stream/2026-01-01T00:00:00.000",
                                          "Tags": [{"Key": "k", "Value": "v"}]})
    untag_cases = {"ok": ["env"], "absent key": ["nope"], "empty list": [], "empty key": [""],
                   "aws prefix": ["aws:k"], "key 129": ["k" * 129], "51 keys": [f"k{i}" for i in range(51)]}
    for name, keys in untag_cases.items():
        tmp = _tmp(next(counter))
        add(f"untag/{name}", "UntagResource", {"ResourceArn": f"{{arn:{tmp}}}", "TagKeys": keys},
            [("CreateTable", dict(FIXTURES[5], TableName=tmp))])
    add("untag/bad arn", "UntagResource", {"ResourceArn": "foo", "TagKeys": ["k"]})
    add("untag/missing table", "UntagResource", {"ResourceArn": "{arn:ctl_none}", "TagKeys": ["k"]})
    add("untag/no keys member", "UntagResource", {"ResourceArn": f"{{arn:{TAGGED}}}"})
    add("list tags/ok", "ListTagsOfResource", {"ResourceArn": f"{{arn:{TAGGED}}}"})
    add("list tags/none", "ListTagsOfResource", {"ResourceArn": f"{{arn:{HASH}}}"})
    add("list tags/bad arn", "ListTagsOfResource", {"ResourceArn": "foo"})
    add("list tags/missing table", "ListTagsOfResource", {"ResourceArn": "{arn:ctl_none}"})
    add("list tags/no arn", "ListTagsOfResource", {})
    add("list tags/next token", "ListTagsOfResource", {"ResourceArn": f"{{arn:{TAGGED}}}", "NextToken": "x"})

    # Limits and endpoints.
    add("limits", "DescribeLimits", {})
    add("endpoints", "DescribeEndpoints", {})

    # Continuous backups.
    add("pitr describe/ok", "DescribeContinuousBackups", {"TableName": HASH})
    add("pitr describe/missing table", "DescribeContinuousBackups", {"TableName": "ctl_none"})
    add("pitr describe/no name", "DescribeContinuousBackups", {})
    add("pitr describe/bad name", "DescribeContinuousBackups", {"TableName": "a!"})
    pitr_cases = {
        "enable": {"PointInTimeRecoveryEnabled": True},
        "disable": {"PointInTimeRecoveryEnabled": False},
        "empty spec": {},
        "period 0": {"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 0},
        "period 36": {"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 36},
        "period 7": {"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 7},
        "period without enabling": {"PointInTimeRecoveryEnabled": False, "RecoveryPeriodInDays": 7},
    }
    for name, spec in pitr_cases.items():
        tmp = _tmp(next(counter))
        add(f"pitr update/{name}", "UpdateContinuousBackups",
            {"TableName": tmp, "PointInTimeRecoverySpecification": spec},
            [("CreateTable", {"TableName": tmp, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND})])
    add("pitr update/no spec", "UpdateContinuousBackups", {"TableName": HASH})
    add("pitr update/missing table", "UpdateContinuousBackups",
        {"TableName": "ctl_none", "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})

    # Backups.
    add("backup create/missing table", "CreateBackup", {"TableName": "ctl_none", "BackupName": "bk1"})
    add("backup create/bad name", "CreateBackup", {"TableName": HASH, "BackupName": "b 1"})
    add("backup create/short name", "CreateBackup", {"TableName": HASH, "BackupName": "ab"})
    add("backup create/long name", "CreateBackup", {"TableName": HASH, "BackupName": "b" * 256})
    add("backup create/no name", "CreateBackup", {"TableName": HASH})
    add("backup create/no table", "CreateBackup", {"BackupName": "bk1"})
    tmp = _tmp(next(counter))
    add("backup create/ok", "CreateBackup", {"TableName": tmp, "BackupName": "bk1"},
        [("CreateTable", {"TableName": tmp, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND})])
    add("backup describe/bad arn", "DescribeBackup", {"BackupArn": "foo"})
    add("backup describe/short arn", "DescribeBackup", {"BackupArn": "arn"})
    add("backup describe/missing", "DescribeBackup",
        {"BackupArn": "{arn:ctl_hash}/backup/01700000000000-abcdef12"})
    add("backup describe/no arn", "DescribeBackup", {})
    add("backup delete/bad arn", "DeleteBackup", {"BackupArn": "foo"})
    add("backup delete/missing", "DeleteBackup", {"BackupArn": "{arn:ctl_hash}/backup/01700000000000-abcdef12"})
    tmp = _tmp(next(counter))
    made = [("CreateTable", {"TableName": tmp, "KeySchema": PK, "AttributeDefinitions": DEF_PK, **ON_DEMAND}),
            ("CreateBackup", {"TableName": tmp, "BackupName": "bk1"})]
    add("backup describe/ok", "DescribeBackup", {"BackupArn": "{backup}"}, made)
    add("backup describe/table arn", "DescribeBackup", {"BackupArn": "{arn:ctl_hash_with_a_long_name}"})
    add("backup describe/48 characters, not an arn", "DescribeBackup", {"BackupArn": "b" * 48})
    add("backup describe/unknown region", "DescribeBackup",
        {"BackupArn": "arn:aws:dynamodb:xx-fake-1:000000000000:table/ctl_hash/backup/01700000000000-abcdef12"})
    add("backup describe/other partition", "DescribeBackup",
        {"BackupArn": "arn:aws-cn:dynamodb:cn-north-1:000000000000:table/ctl_hash/backup/01700000000000-abcdef12"})
    add("backup describe/other service", "DescribeBackup",
        {"BackupArn": "arn:aws:s3:us-east-1:000000000000:table/ctl_hash/backup/01700000000000-abcdef12"})
    add("backup describe/other account", "DescribeBackup",
        {"BackupArn": "arn:aws:dynamodb:us-east-1:999999999999:table/ctl_hash/backup/01700000000000-abcdef12"})
    add("backup describe/region rewritten", "DescribeBackup",
        {"BackupArn": "{backup:eu-west-1}"}, made)
    add("backup delete/ok", "DeleteBackup", {"BackupArn": "{backup}"}, made)
    add("backup list/start arn of another region", "ListBackups", {"ExclusiveStartBackupArn": (
        "arn:aws:dynamodb:eu-west-1:000000000000:table/ctl_hash/backup/01700000000000-abcdef12")})
    add("backup list/bounds equal", "ListBackups", {"TimeRangeLowerBound": 1000000000,
                                                    "TimeRangeUpperBound": 1000000000})
    add("backup list/ok", "ListBackups", {})
    add("backup list/limit 0", "ListBackups", {"Limit": 0})
    add("backup list/limit 101", "ListBackups", {"Limit": 101})
    add("backup list/bad type", "ListBackups", {"BackupType": "DAILY"})
    add("backup list/bounds reversed", "ListBackups", {"TimeRangeLowerBound": 2000000000,
                                                       "TimeRangeUpperBound": 1000000000})
    add("backup list/missing table", "ListBackups", {"TableName": "ctl_none"})
    add("backup list/bad table name", "ListBackups", {"TableName": "a!"})
    add("backup list/bad start arn", "ListBackups", {"ExclusiveStartBackupArn": "foo"})
    return out


# -- running ----------------------------------------------------------------------------


def _arns(endpoint: Endpoint) -> str:
    """The ARN prefix of a table on this server (region and account)."""
    status, body = endpoint.call("DescribeTable", {"TableName": HASH})
    return body["Table"]["TableArn"].rsplit("/", 1)[0] + "/"


def substituted(value, prefix: str, backup: str | None):
    """A request with ``{arn:T}`` and ``{backup}`` filled in for one server."""
    if isinstance(value, str):
        value = re.sub(r"\{arn:([^}]+)\}", lambda m: prefix + m.group(1), value)
        if backup and "{backup:" in value:  # the backup's ARN with another region
            region = value.split("{backup:", 1)[1].split("}", 1)[0]
            parts = backup.split(":")
            value = value.replace(f"{{backup:{region}}}", ":".join(parts[:3] + [region] + parts[4:]))
        return value.replace("{backup}", backup or "none")
    if isinstance(value, list):
        return [substituted(v, prefix, backup) for v in value]
    if isinstance(value, dict):
        return {k: substituted(v, prefix, backup) for k, v in value.items()}
    return value


def masked(value, key: str = ""):
    """A successful answer with what two servers cannot share masked."""
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items() if not (_VOLATILE_KEY.search(k) or k in LOCAL_ONLY)}
    if isinstance(value, list):
        items = [masked(v, key) for v in value]
        if key in ("TableNames",):
            return items
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, str):
        return _ARN.sub("arn:~:", value)
    return value


def normalised(status: int, body: dict) -> dict:
    if status != 200:
        message = body.get("message", body.get("Message"))
        return {"status": status, "type": str(body.get("__type", "")).rsplit("#", 1)[-1], "message": message}
    return {"status": 200, "result": masked(body)}


def wait_active(endpoint: Endpoint, table: str, timeout: float = 60.0) -> None:
    """Until the table and its indexes are ACTIVE (or it is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = endpoint.call("DescribeTable", {"TableName": table})
        desc = body.get("Table")
        if status != 200 or desc is None:
            return
        statuses = [desc.get("TableStatus")] + [g.get("IndexStatus") for g in desc.get("GlobalSecondaryIndexes", [])]
        if all(s == "ACTIVE" for s in statuses):
            return
        time.sleep(0.1)


def drop_temporary(endpoint: Endpoint) -> None:
    """Delete every table a case left (lifting deletion protection first),
    and wait until they are gone."""
    status, body = endpoint.call("ListTables", {})
    names = [n for n in body.get("TableNames", []) if n not in FIXTURE_NAMES]
    for name in names:
        wait_active(endpoint, name)
        endpoint.call("UpdateTable", {"TableName": name, "DeletionProtectionEnabled": False})
        wait_active(endpoint, name)
        endpoint.call("DeleteTable", {"TableName": name})
    deadline = time.monotonic() + 60
    for name in names:
        while time.monotonic() < deadline and endpoint.call("DescribeTable", {"TableName": name})[0] == 200:
            time.sleep(0.1)


def setup(endpoint: Endpoint) -> None:
    for table in FIXTURES:
        endpoint.call("UpdateTable", {"TableName": table["TableName"], "DeletionProtectionEnabled": False})
        endpoint.call("DeleteTable", {"TableName": table["TableName"]})
    drop_temporary(endpoint)
    for table in FIXTURES:
        status, body = endpoint.call("CreateTable", table)
        if status != 200:
            raise SystemExit(f"CreateTable {table['TableName']}: {status} {body}")
    for table in FIXTURES:
        wait_active(endpoint, table["TableName"])
    status, body = endpoint.call("UpdateTimeToLive", {"TableName": TTL, "TimeToLiveSpecification": {
        "Enabled": True, "AttributeName": "exp"}})
    if status != 200:
        raise SystemExit(f"UpdateTimeToLive: {status} {body}")


def run_case(endpoint: Endpoint, op: str, body: dict, pre: list) -> dict:
    prefix = _arns(endpoint)
    backup = None
    for step_op, step in pre:
        step = dict(step)
        nowait = step.pop("__nowait", False)
        status, answer = endpoint.call(step_op, substituted(step, prefix, backup))
        if status != 200:
            return {"setup failed": step_op, "status": status, "answer": answer}
        if step_op == "CreateBackup":
            backup = answer["BackupDetails"]["BackupArn"]
        if "TableName" in step and not nowait:
            wait_active(endpoint, step["TableName"])
    return normalised(*endpoint.call(op, substituted(body, prefix, backup)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoal", help="a running Shoal's URL (default: start one)")
    parser.add_argument("--local", help="a running DynamoDB Local's URL (default: start one)")
    parser.add_argument("--jar", help="DynamoDBLocal.jar to start")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--json", help="write the differences to this file")
    parser.add_argument("--all", action="store_true",
                        help="print every case, not only the differences not settled as (b)")
    args = parser.parse_args(argv)
    with servers(args.shoal, args.local, args.jar) as (shoal_url, local_url):
        endpoints = [Endpoint(shoal_url), Endpoint(local_url)]
        for endpoint in endpoints:
            setup(endpoint)
        differences = []
        selected = [case for case in cases() if not args.only or args.only in case[0]]
        for name, op, body, pre in selected:
            answers = [run_case(endpoint, op, body, pre) for endpoint in endpoints]
            if op not in ("DescribeTable", "ListTables", "DescribeLimits", "DescribeEndpoints") or pre:
                for endpoint in endpoints:
                    drop_temporary(endpoint)
            if answers[0] != answers[1] or args.all:
                kind, why = classify(name, *answers) if answers[0] != answers[1] else ("=", "same")
                differences.append({"case": name, "operation": op, "class": kind, "why": why,
                                    "shoal": answers[0], "local": answers[1]})
                if kind != "b" or args.all:
                    print(f"== [{kind}] {name} ({op}): {why}\n   shoal: {json.dumps(answers[0])[:1500]}\n"
                          f"   local: {json.dumps(answers[1])[:1500]}")
        counts = {kind: sum(d["class"] == kind for d in differences) for kind in ("a", "b", "c", "?")}
        print(f"\n{len(selected)} cases, {sum(counts.values())} differences: " + ", ".join(
            f"{n} ({kind})" for kind, n in counts.items()) + " (only those not (b) printed; --all prints all)")
        if args.json:
            with open(args.json, "w") as out:
                json.dump(differences, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
