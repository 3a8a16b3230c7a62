"""Contributor insights through boto3 against real servers: the viewer-events
workload's hot title and hot viewer come first in CloudWatch's
GetInsightRuleReport (counted by two workers, kept across a restart), the
rules DynamoDB names in DescribeContributorInsights and DescribeInsightRules,
throttled keys under a provisioned table with capacity limits on (a write
throttled for its GSI's capacity is accessed, not throttled; a throttled
write counts no GSI key), the list's pages, the GSI keys that updates and
deletes change, a multi-attribute GSI key counted and labelled whole, bulk
puts and writes replicated from another region counted, time to live
deletions not, the FAILED status past CloudWatch's rule quota, and the
errors (exact messages) after which the server still serves."""

from __future__ import annotations

import datetime
import time

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import unique_name
from tests.shoal_process import ShoalProcess, free_port

HOT_TITLE = "c000042"
HOT_VIEWER = "u00000007"


def client(url: str, service: str = "dynamodb", region: str = "us-east-1"):
    """A client that never retries: every throttle is seen, and counted once."""
    return boto3.client(service, endpoint_url=url, region_name=region, aws_access_key_id="AKIDSHOALTEST",
                        aws_secret_access_key="secret", config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture(scope="module")
def s3_dir(tmp_path_factory):
    """The server's S3 folder (``--s3-dir``), for bulk puts: bucket B is its subfolder B."""
    path = tmp_path_factory.mktemp("s3")
    for bucket in ("events-in", "reports"):
        (path / bucket).mkdir()
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_dir):
    proc = ShoalProcess(tmp_path_factory.mktemp("insights"), "--workers", "2", "--capacity", "on",
                        "--s3-dir", str(s3_dir)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return client(server.url)


@pytest.fixture(scope="module")
def cw(server):
    return client(server.url, "cloudwatch")


def events_table(ddb, **extra) -> str:
    """The viewer-events table: user_id and ts, a GSI on content_id and ts."""
    name = unique_name("events")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"},
                              {"AttributeName": "content_id", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_content",
                                 "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                               {"AttributeName": "ts", "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"},
                                 **({"ProvisionedThroughput": extra["ProvisionedThroughput"]}
                                    if "ProvisionedThroughput" in extra else {})}],
        **({"BillingMode": "PAY_PER_REQUEST"} if not extra else extra))
    return name


def event(i: int, user: str, content: str) -> dict:
    ts = 1_790_000_000_000 + i
    return {"user_id": {"S": user}, "ts": {"N": str(ts)}, "event_type": {"S": "play"},
            "content_id": {"S": content}, "session_id": {"S": f"s-{user}"}, "position_s": {"N": "12.500"},
            "country": {"S": "FR"}, "expires_at": {"N": str(ts // 1000 + 90 * 86400)}}


def enabled(ddb, table: str, index: str | None = None, mode: str | None = None) -> list[str]:
    """Enable insights, wait until ENABLED and a second more (every worker reloads
    the settings each second, before ENABLING ends: the margin is for a busy
    machine); the rule names."""
    extra = {"IndexName": index} if index else {}
    answer = ddb.update_contributor_insights(TableName=table, ContributorInsightsAction="ENABLE", **extra,
                                             **({"ContributorInsightsMode": mode} if mode else {}))
    assert answer["ContributorInsightsStatus"] == "ENABLING"
    deadline = time.monotonic() + 10
    while True:
        described = ddb.describe_contributor_insights(TableName=table, **extra)
        if described["ContributorInsightsStatus"] == "ENABLED":
            time.sleep(1.0)
            return described["ContributorInsightsRuleList"]
        assert time.monotonic() < deadline, described
        time.sleep(0.2)


def window() -> dict:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"StartTime": now - datetime.timedelta(minutes=10), "EndTime": now + datetime.timedelta(minutes=2)}


def report(cw, rule: str, total: int, **extra) -> dict:
    """The rule's report once every worker's counts (flushed each second) add up to ``total``."""
    deadline = time.monotonic() + 10
    while True:
        answer = cw.get_insight_rule_report(RuleName=rule, Period=60, **window(), **extra)
        if answer["AggregateValue"] >= total or time.monotonic() > deadline:
            return answer
        time.sleep(0.3)


def rule_named(rules: list[str], kind: str) -> str:
    return next(rule for rule in rules if rule.startswith(f"DynamoDBContributorInsights-{kind}-"))


def error_of(call) -> dict:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response


def test_the_hot_title_and_the_hot_viewer_come_first(ddb, cw):
    table = events_table(ddb)
    table_rules = enabled(ddb, table)
    index_rules = enabled(ddb, table, "by_content")
    since = table_rules[0].rsplit("-", 1)[1]
    assert table_rules == [f"DynamoDBContributorInsights-{kind}-{table}-{since}"
                           for kind in ("PKC", "PKT", "SKC", "SKT")]
    assert index_rules[0].startswith(f"DynamoDBContributorInsights-PKC-{table}-by_content-")
    # 120 events: every third on the hot title, every fourth by the hot viewer, the rest spread out
    items = [event(i, HOT_VIEWER if i % 4 == 0 else f"u{1000 + i:08d}",
                   HOT_TITLE if i % 3 == 0 else f"c{1000 + i:06d}") for i in range(120)]
    for item in items[:60]:
        ddb.put_item(TableName=table, Item=item)
    for start in range(60, 120, 25):
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]})
    for _ in range(5):  # who watched the hot title recently (pattern 5)
        ddb.query(TableName=table, IndexName="by_content", KeyConditionExpression="content_id = :c",
                  ExpressionAttributeValues={":c": {"S": HOT_TITLE}}, ScanIndexForward=False, Limit=10)
    for _ in range(3):  # the hot viewer's latest events (pattern 2), through the legacy KeyConditions
        ddb.query(TableName=table, KeyConditions={"user_id": {"ComparisonOperator": "EQ",
                                                               "AttributeValueList": [{"S": HOT_VIEWER}]}})
    ddb.get_item(TableName=table, Key={"user_id": {"S": HOT_VIEWER}, "ts": items[0]["ts"]})

    titles = report(cw, rule_named(index_rules, "PKC"), 125, MaxContributorCount=3,
                    Metrics=["UniqueContributors", "MaxContributorValue", "SampleCount"])
    assert titles["KeyLabels"] == ["content_id"]
    assert titles["AggregationStatistic"] == "Count"
    assert titles["AggregateValue"] == 125.0  # 120 puts, 5 queries
    assert titles["ApproximateUniqueCount"] == 81  # the hot title and 80 others
    assert len(titles["Contributors"]) == 3
    first = titles["Contributors"][0]
    assert first["Keys"] == [HOT_TITLE] and first["ApproximateAggregateValue"] == 45.0  # 40 events, 5 queries
    assert sum(point["ApproximateValue"] for point in first["Datapoints"]) == 45.0
    assert [c["ApproximateAggregateValue"] for c in titles["Contributors"][1:]] == [1.0, 1.0]
    assert sum(point["SampleCount"] for point in titles["MetricDatapoints"]) == 125.0
    assert max(point["MaxContributorValue"] for point in titles["MetricDatapoints"]) <= 45.0
    assert all(set(point) == {"Timestamp", "UniqueContributors", "MaxContributorValue", "SampleCount"}
               for point in titles["MetricDatapoints"])

    viewers = report(cw, rule_named(table_rules, "PKC"), 124)
    assert viewers["KeyLabels"] == ["user_id"]
    assert viewers["AggregateValue"] == 124.0  # 120 puts, 3 queries, 1 get
    assert viewers["Contributors"][0]["Keys"] == [HOT_VIEWER]
    assert viewers["Contributors"][0]["ApproximateAggregateValue"] == 34.0  # 30 events, 3 queries, 1 get
    assert len(viewers["Contributors"]) == 10  # MaxContributorCount's default
    assert viewers["MetricDatapoints"] == []  # no Metrics asked

    keys = report(cw, rule_named(table_rules, "SKC"), 121)
    assert keys["KeyLabels"] == ["user_id", "ts"]
    assert keys["Contributors"][0]["Keys"] == [HOT_VIEWER, items[0]["ts"]["N"]]  # written, then read
    assert keys["Contributors"][0]["ApproximateAggregateValue"] == 2.0
    # nothing was throttled
    assert report(cw, rule_named(table_rules, "PKT"), 0)["Contributors"] == []

    described = {rule["Name"]: rule for rule in cw.describe_insight_rules()["InsightRules"]}
    assert set(table_rules + index_rules) <= set(described)
    assert described[table_rules[0]]["State"] == "ENABLED"


def test_a_scan_counts_the_keys_of_the_items_it_read(ddb, cw):
    table = events_table(ddb)
    table_rules = enabled(ddb, table)
    index_rules = enabled(ddb, table, "by_content")
    items = [event(i, HOT_VIEWER if i < 6 else f"u{2000 + i:08d}", HOT_TITLE if i < 4 else f"c{2000 + i:06d}")
             for i in range(10)]
    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": item}} for item in items]})
    pages = ddb.get_paginator("scan").paginate(TableName=table, PaginationConfig={"PageSize": 3})
    assert sum(len(page["Items"]) for page in pages) == 10  # four pages, each counted by what it returned
    ddb.scan(TableName=table, IndexName="by_content")  # the index's ten entries
    ddb.scan(TableName=table, Select="COUNT")  # returns no item: nothing to count
    viewers = report(cw, rule_named(table_rules, "PKC"), 20)
    assert viewers["AggregateValue"] == 20.0  # 10 puts, 10 items scanned
    assert viewers["Contributors"][0]["Keys"] == [HOT_VIEWER]
    assert viewers["Contributors"][0]["ApproximateAggregateValue"] == 12.0  # 6 written, 6 scanned
    titles = report(cw, rule_named(index_rules, "PKC"), 20)
    assert titles["AggregateValue"] == 20.0  # 10 puts' index keys, 10 index entries scanned
    assert titles["Contributors"][0]["Keys"] == [HOT_TITLE]
    assert titles["Contributors"][0]["ApproximateAggregateValue"] == 8.0


def test_throttled_keys_of_a_provisioned_table(ddb, cw):
    table = events_table(ddb, BillingMode="PROVISIONED",
                         ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 1})
    rules = enabled(ddb, table, mode="THROTTLED_KEYS")
    assert [rule.split("-")[1] for rule in rules] == ["PKT", "SKT"]  # no accessed-key rules in this mode
    # one item of 350 KB spends the 300 units banked (and more): the next writes are throttled
    big = event(0, "u00000001", "c000001")
    big["blob"] = {"S": "x" * 350_000}
    ddb.put_item(TableName=table, Item=big)
    throttled = 0
    for i in range(1, 13):
        answer = error_of(lambda: ddb.put_item(TableName=table, Item=event(i, HOT_VIEWER if i % 3 else "u00000002",
                                                                            HOT_TITLE)))
        assert answer["Error"]["Code"] == "ProvisionedThroughputExceededException"
        throttled += 1
    hot = report(cw, rule_named(rules, "PKT"), throttled)
    assert hot["AggregateValue"] == 12.0
    assert [(c["Keys"], c["ApproximateAggregateValue"]) for c in hot["Contributors"]] == [
        ([HOT_VIEWER], 8.0), (["u00000002"], 4.0)]
    ranked = report(cw, rule_named(rules, "PKT"), throttled, OrderBy="Maximum", MaxContributorCount=1)
    assert [c["Keys"] for c in ranked["Contributors"]] == [[HOT_VIEWER]]
    # the server still serves the table's reads
    assert ddb.get_item(TableName=table, Key={"user_id": {"S": "u00000001"}, "ts": big["ts"]})["Item"]


def test_disabled_insights_have_no_rules_and_are_not_listed(ddb, cw):
    table = events_table(ddb)
    rules = enabled(ddb, table)
    again = ddb.update_contributor_insights(TableName=table, ContributorInsightsAction="ENABLE")  # a no-op
    again.pop("ResponseMetadata")
    assert again == {"TableName": table, "ContributorInsightsStatus": "ENABLED",
                     "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"}
    listed = ddb.list_contributor_insights(TableName=table)["ContributorInsightsSummaries"]
    assert listed == [{"TableName": table, "ContributorInsightsStatus": "ENABLED",
                       "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"}]
    answer = ddb.update_contributor_insights(TableName=table, ContributorInsightsAction="DISABLE")
    assert answer["ContributorInsightsStatus"] == "DISABLING"
    time.sleep(2.2)
    assert ddb.describe_contributor_insights(TableName=table)["ContributorInsightsStatus"] == "DISABLED"
    assert ddb.list_contributor_insights(TableName=table)["ContributorInsightsSummaries"] == []
    names = {rule["Name"] for rule in cw.describe_insight_rules()["InsightRules"]}
    assert not names & set(rules)
    gone = error_of(lambda: cw.get_insight_rule_report(RuleName=rules[0], Period=60, **window()))
    assert gone["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert gone["Error"]["Code"] == "ResourceNotFoundException"
    assert gone["Error"]["Message"] == f"Rule {rules[0]} does not exist."


def test_the_account_wide_list_pages_table_before_its_index(ddb):
    first, second = events_table(ddb), events_table(ddb)
    enabled(ddb, first)
    enabled(ddb, first, "by_content")
    enabled(ddb, second, mode="THROTTLED_KEYS")
    seen, token = [], None
    while True:
        page = ddb.list_contributor_insights(MaxResults=1, **({"NextToken": token} if token else {}))
        assert len(page["ContributorInsightsSummaries"]) <= 1
        seen += page["ContributorInsightsSummaries"]
        token = page.get("NextToken")
        if token is None:
            break
    ours = [(s["TableName"], s.get("IndexName"), s["ContributorInsightsMode"]) for s in seen
            if s["TableName"] in (first, second)]
    assert ours == [(first, None, "ACCESSED_AND_THROTTLED_KEYS"), (first, "by_content", "ACCESSED_AND_THROTTLED_KEYS"),
                    (second, None, "THROTTLED_KEYS")]


def test_errors_use_dynamodb_messages_and_the_server_still_serves(ddb, cw):
    table = events_table(ddb)
    missing = unique_name("missing")
    for call in (lambda: ddb.describe_contributor_insights(TableName=missing),
                 lambda: ddb.update_contributor_insights(TableName=missing, ContributorInsightsAction="ENABLE"),
                 lambda: ddb.list_contributor_insights(TableName=missing)):
        answer = error_of(call)
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert answer["Error"] == {"Code": "ResourceNotFoundException",
                                   "Message": f"Requested resource not found: Table: {missing} not found"}
    for call in (lambda: ddb.describe_contributor_insights(TableName=table, IndexName="by_title"),
                 lambda: ddb.update_contributor_insights(TableName=table, IndexName="by_title",
                                                         ContributorInsightsAction="ENABLE")):
        assert error_of(call)["Error"] == {
            "Code": "ResourceNotFoundException",
            "Message": f"Requested resource not found: Index: by_title not found for table: {table}"}
    answer = error_of(lambda: cw.get_insight_rule_report(RuleName="DynamoDBContributorInsights-PKC-none-1",
                                                         Period=60, **window()))
    assert answer["Error"]["Code"] == "ResourceNotFoundException"
    rules = enabled(ddb, table)
    answer = error_of(lambda: cw.get_insight_rule_report(RuleName=rules[0], Period=60, OrderBy="Average", **window()))
    assert answer["Error"] == {"Code": "InvalidParameterValue", "Type": "Sender",
                               "Message": "The value Average for parameter OrderBy is invalid: it must be Sum or "
                                          "Maximum.", "QueryErrorCode": "InvalidParameterValueException"}
    answer = error_of(lambda: cw.get_insight_rule_report(RuleName=rules[0], Period=60, MaxContributorCount=101,
                                                         **window()))
    assert answer["Error"]["Message"] == ("The value 101 for parameter MaxContributorCount is invalid: "
                                          "it must be between 1 and 100.")
    # still serving, insights included
    assert ddb.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
    assert ddb.describe_contributor_insights(TableName=table)["ContributorInsightsStatus"] == "ENABLED"


def test_counts_survive_a_restart(tmp_path):
    proc = ShoalProcess(tmp_path, "--workers", "1").start()
    try:
        ddb, cw = client(proc.url), client(proc.url, "cloudwatch")
        table = events_table(ddb)
        rules = enabled(ddb, table)
        for i in range(7):
            ddb.put_item(TableName=table, Item=event(i, HOT_VIEWER, HOT_TITLE))
        assert report(cw, rules[0], 7)["AggregateValue"] == 7.0
    finally:
        proc.stop()
    proc = ShoalProcess(tmp_path, "--workers", "1").start()
    try:
        ddb, cw = client(proc.url), client(proc.url, "cloudwatch")
        assert ddb.describe_contributor_insights(TableName=table)["ContributorInsightsRuleList"] == rules
        again = report(cw, rules[0], 7)
        assert [(c["Keys"], c["ApproximateAggregateValue"]) for c in again["Contributors"]] == [([HOT_VIEWER], 7.0)]
    finally:
        proc.stop()


def test_updates_and_deletes_count_the_index_keys_they_change(ddb, cw):
    """The GSI's accessed keys of writes that name only the table's key: the
    old and the new index key of every write that changes the entry."""
    table = events_table(ddb)
    index_rules = enabled(ddb, table, "by_content")
    items = [event(i, f"u{3000 + i:08d}", f"c{3000 + i:06d}") for i in range(8)]
    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": item}} for item in items]})  # 8 entries

    def key(i: int) -> dict:
        return {"user_id": items[i]["user_id"], "ts": items[i]["ts"]}

    def to_hot(i: int) -> dict:
        return {"TableName": table, "Key": key(i), "UpdateExpression": "SET content_id = :c",
                "ExpressionAttributeValues": {":c": {"S": HOT_TITLE}}}

    for i in (0, 1):  # moved to the hot title: the old and the new title each
        ddb.update_item(**to_hot(i))
    ddb.update_item(TableName=table, Key=key(2), UpdateExpression="SET position_s = :p",
                    ExpressionAttributeValues={":p": {"N": "99"}})  # KEYS_ONLY: the index does not change
    ddb.delete_item(TableName=table, Key=key(3))  # its entry deleted
    ddb.delete_item(TableName=table, Key=key(0))  # the hot title's entry deleted
    ddb.transact_write_items(TransactItems=[{"Update": to_hot(4)}, {"Delete": {"TableName": table, "Key": key(5)}}])
    ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": key(6)}}]})
    ddb.execute_statement(Statement=f'UPDATE "{table}" SET content_id = ? WHERE user_id = ? AND ts = ?',
                          Parameters=[{"S": HOT_TITLE}, items[7]["user_id"], items[7]["ts"]])
    error_of(lambda: ddb.update_item(**to_hot(2), ConditionExpression="attribute_not_exists(user_id)"))  # failed

    titles = report(cw, rule_named(index_rules, "PKC"), 20)
    assert titles["AggregateValue"] == 20.0  # puts 8, two moves 4, two deletes 2, the transaction 3, batch 1, PartiQL 2
    counted = {tuple(c["Keys"]): c["ApproximateAggregateValue"] for c in titles["Contributors"]}
    assert counted[(HOT_TITLE,)] == 5.0  # moved in 4 times, deleted once
    assert {k: v for k, v in counted.items() if k != (HOT_TITLE,)} == {
        (items[i]["content_id"]["S"],): (2.0 if i != 2 else 1.0) for i in range(8)}
    by_key = report(cw, rule_named(index_rules, "SKC"), 20)
    assert by_key["AggregateValue"] == 20.0
    assert [HOT_TITLE, items[0]["ts"]["N"]] in [c["Keys"] for c in by_key["Contributors"]]


def test_past_the_rule_quota_an_entry_fails_and_the_server_still_serves(tmp_path):
    """CloudWatch's 100 rules per region: 25 tables with a sort key use them
    all; one more ENABLE answers ENABLING, then FAILED with DynamoDB's
    FailureException, until rules are freed and it is enabled again."""
    proc = ShoalProcess(tmp_path, "--workers", "1").start()
    try:
        ddb = client(proc.url)
        names = [events_table(ddb) for _ in range(26)]
        for name in names[:25]:
            assert ddb.update_contributor_insights(TableName=name, ContributorInsightsAction="ENABLE")[
                "ContributorInsightsStatus"] == "ENABLING"
        last = names[25]
        answer = ddb.update_contributor_insights(TableName=last, ContributorInsightsAction="ENABLE")
        answer.pop("ResponseMetadata")
        assert answer == {"TableName": last, "ContributorInsightsStatus": "ENABLING",
                          "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"}
        time.sleep(2.2)
        described = ddb.describe_contributor_insights(TableName=last)
        described.pop("ResponseMetadata")
        assert described.pop("LastUpdateDateTime")
        assert described == {
            "TableName": last, "ContributorInsightsStatus": "FAILED",
            "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS",
            "FailureException": {"ExceptionName": "LimitExceededException",
                                 "ExceptionDescription": "Amazon CloudWatch Contributor Insights rule limit reached. "
                                                         "Please disable Contributor Insights for other "
                                                         "tables/indexes OR disable other CloudWatch Contributor "
                                                         "Insights rules before retrying."}}
        assert ddb.describe_contributor_insights(TableName=names[0])["ContributorInsightsStatus"] == "ENABLED"
        statuses = {s["TableName"]: s["ContributorInsightsStatus"]
                    for s in ddb.list_contributor_insights()["ContributorInsightsSummaries"]}
        assert statuses == {**{name: "ENABLED" for name in names[:25]}, last: "FAILED"}
        cw = client(proc.url, "cloudwatch")
        assert len(cw.describe_insight_rules()["InsightRules"]) == 100  # the failed entry made none
        # freeing rules does not revive it; enabling it again does
        ddb.update_contributor_insights(TableName=names[0], ContributorInsightsAction="DISABLE")
        assert ddb.describe_contributor_insights(TableName=last)["ContributorInsightsStatus"] == "FAILED"
        assert enabled(ddb, last)[0].startswith(f"DynamoDBContributorInsights-PKC-{last}-")
        assert "FailureException" not in ddb.describe_contributor_insights(TableName=last)
        for i in range(3):  # and counts
            ddb.put_item(TableName=last, Item=event(i, HOT_VIEWER, HOT_TITLE))
        rule = rule_named(ddb.describe_contributor_insights(TableName=last)["ContributorInsightsRuleList"], "PKC")
        assert report(cw, rule, 3)["Contributors"][0]["Keys"] == [HOT_VIEWER]
    finally:
        proc.stop()


# ---------------------------------------------------------------- throttles and GSIs


def provisioned_events_table(ddb, table_units: int, index_units: int, projection: str) -> str:
    """The viewer-events table in provisioned mode, its GSI by_content with write units of its own."""
    name = unique_name("events")
    ddb.create_table(
        TableName=name, BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 100, "WriteCapacityUnits": table_units},
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"},
                              {"AttributeName": "content_id", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_content",
                                 "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                               {"AttributeName": "ts", "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": projection},
                                 "ProvisionedThroughput": {"ReadCapacityUnits": 100,
                                                           "WriteCapacityUnits": index_units}}])
    return name


def throttled_writes(ddb, table: str, big: dict, reason: str) -> int:
    """Two puts, two updates (each moving the index key) and a delete, every one refused with ``reason``."""
    key = {"user_id": big["user_id"], "ts": big["ts"]}
    calls = [lambda i=i: ddb.put_item(TableName=table, Item=event(i, HOT_VIEWER, "c-refused")) for i in (1, 2)]
    calls += [lambda: ddb.update_item(TableName=table, Key=key, UpdateExpression="SET content_id = :c",
                                      ExpressionAttributeValues={":c": {"S": "c-refused"}})] * 2
    calls.append(lambda: ddb.delete_item(TableName=table, Key=key))
    for call in calls:
        answer = error_of(call)
        assert answer["Error"]["Code"] == "ProvisionedThroughputExceededException"
        assert [r["reason"] for r in answer["ThrottlingReasons"]] == [reason]
    return len(calls)


def keys_counted(answer: dict) -> dict:
    return {tuple(c["Keys"]): c["ApproximateAggregateValue"] for c in answer["Contributors"]}


def test_a_throttled_write_counts_its_table_key_and_no_gsi_key(ddb, cw):
    """Throttled for the table's own write capacity: the table's key is
    throttled (and accessed); the index's entries did not change, and a
    GSI's throttled keys are its own throttles, so the GSI counts nothing."""
    table = provisioned_events_table(ddb, 1, 1000, "KEYS_ONLY")
    table_rules = enabled(ddb, table)
    index_rules = enabled(ddb, table, "by_content")
    big = event(0, "u00000001", HOT_TITLE)
    big["blob"] = {"S": "x" * 350_000}
    ddb.put_item(TableName=table, Item=big)  # 343 units: the table's 300 banked are spent
    refused = throttled_writes(ddb, table, big, "TableWriteProvisionedThroughputExceeded")
    accessed = report(cw, rule_named(table_rules, "PKC"), 1 + refused)
    assert keys_counted(accessed) == {("u00000001",): 4.0, (HOT_VIEWER,): 2.0}
    assert keys_counted(report(cw, rule_named(table_rules, "PKT"), refused)) == {
        ("u00000001",): 3.0, (HOT_VIEWER,): 2.0}
    titles = report(cw, rule_named(index_rules, "PKC"), 1)
    assert (titles["AggregateValue"], keys_counted(titles)) == (1.0, {(HOT_TITLE,): 1.0})  # the big put only
    assert report(cw, rule_named(index_rules, "PKT"), 0)["Contributors"] == []
    assert ddb.get_item(TableName=table, Key={"user_id": big["user_id"], "ts": big["ts"]})["Item"]["content_id"] == \
        {"S": HOT_TITLE}  # nothing refused was written, and the table still serves reads


def test_a_write_throttled_for_its_gsis_capacity_is_accessed_not_throttled(ddb, cw):
    """The developer guide: "Write throttling caused by insufficient write
    capacity for a global secondary index is not measured"."""
    table = provisioned_events_table(ddb, 1000, 1, "ALL")
    table_rules = enabled(ddb, table)
    index_rules = enabled(ddb, table, "by_content")
    big = event(0, "u00000001", HOT_TITLE)
    big["blob"] = {"S": "x" * 350_000}
    ddb.put_item(TableName=table, Item=big)  # 343 units into the index (ALL): its 300 banked are spent
    refused = throttled_writes(ddb, table, big, "IndexWriteProvisionedThroughputExceeded")
    accessed = report(cw, rule_named(table_rules, "PKC"), 1 + refused)
    assert keys_counted(accessed) == {("u00000001",): 4.0, (HOT_VIEWER,): 2.0}
    throttled = report(cw, rule_named(table_rules, "PKT"), 0)  # flushed with the accessed counts above
    assert (throttled["AggregateValue"], throttled["Contributors"]) == (0.0, [])
    assert keys_counted(report(cw, rule_named(index_rules, "PKC"), 1)) == {(HOT_TITLE,): 1.0}
    assert report(cw, rule_named(index_rules, "PKT"), 0)["Contributors"] == []


# ---------------------------------------------------------------- multi-attribute GSI keys


def test_a_multi_attribute_gsi_key_is_counted_and_labelled_whole(ddb, cw):
    """A GSI keyed by (content_id, country) and ts: its rules count and label
    every key attribute (DynamoDB does not document the labels of such keys)."""
    name = unique_name("events")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"},
                              {"AttributeName": "content_id", "AttributeType": "S"},
                              {"AttributeName": "country", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_title_country",
                                 "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                               {"AttributeName": "country", "KeyType": "HASH"},
                                               {"AttributeName": "ts", "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    rules = enabled(ddb, name, "by_title_country")
    items = [event(i, f"u{4000 + i:08d}", HOT_TITLE if i < 4 else "c000001") for i in range(6)]
    items[0]["country"] = {"S": "DE"}
    del items[5]["country"]  # not in the index
    ddb.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": item}} for item in items]})
    for _ in range(2):
        page = ddb.query(TableName=name, IndexName="by_title_country",
                         KeyConditionExpression="content_id = :c AND country = :k",
                         ExpressionAttributeValues={":c": {"S": HOT_TITLE}, ":k": {"S": "FR"}})
        assert page["Count"] == 3
    partitions = report(cw, rule_named(rules, "PKC"), 7)
    assert partitions["KeyLabels"] == ["content_id", "country"]
    assert keys_counted(partitions) == {(HOT_TITLE, "FR"): 5.0, (HOT_TITLE, "DE"): 1.0, ("c000001", "FR"): 1.0}
    entries = report(cw, rule_named(rules, "SKC"), 5)
    assert entries["KeyLabels"] == ["content_id", "country", "ts"]
    assert keys_counted(entries)[(HOT_TITLE, "DE", items[0]["ts"]["N"])] == 1.0
    assert entries["AggregateValue"] == 5.0  # the puts' entries; a Query counts partition keys only


# ---------------------------------------------------------------- writes no request made


def test_bulk_puts_count_as_accesses_of_their_keys(ddb, cw, s3_dir):
    table = events_table(ddb)
    table_rules = enabled(ddb, table)
    index_rules = enabled(ddb, table, "by_content")
    items = [event(i, HOT_VIEWER if i % 2 else f"u{5000 + i:08d}", HOT_TITLE if i < 3 else f"c{5000 + i:06d}")
             for i in range(8)]
    prefix = f"{table}/"
    (s3_dir / "events-in" / prefix).mkdir()
    (s3_dir / "events-in" / prefix / "part-0.json").write_bytes(
        b"\n".join(orjson.dumps({"Item": item}) for item in items) + b"\n")
    arn = ddb.start_bulk_put_items(
        TableName=table,
        InputS3Configuration={"S3Bucket": "events-in", "S3KeyPrefix": prefix, "InputFormat": "DYNAMODB_JSON"},
        OutputS3Configuration={"S3Bucket": "reports", "OutputType": ["ERROR"]})["BulkOperationDescription"][
        "BulkOperationArn"]
    deadline = time.monotonic() + 30
    while (described := ddb.describe_bulk_operation(BulkOperationArn=arn)["BulkOperationDescription"])[
            "BulkOperationStatus"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, described
        time.sleep(0.2)
    assert (described["BulkOperationStatus"], described["ProcessedItemCount"]) == ("COMPLETED", 8)
    viewers = report(cw, rule_named(table_rules, "PKC"), 8)
    assert viewers["AggregateValue"] == 8.0
    assert viewers["Contributors"][0]["Keys"] == [HOT_VIEWER]
    assert viewers["Contributors"][0]["ApproximateAggregateValue"] == 4.0
    titles = report(cw, rule_named(index_rules, "PKC"), 8)
    assert titles["AggregateValue"] == 8.0
    assert keys_counted(titles)[(HOT_TITLE,)] == 3.0
    assert report(cw, rule_named(table_rules, "PKT"), 0)["Contributors"] == []


def test_time_to_live_deletions_are_not_counted(ddb, cw):
    """TTL deletes consume no write throughput and are no data-plane request
    (the developer guide counts "each item that is written or read via a
    data plane operation")."""
    table = events_table(ddb)
    table_rules = enabled(ddb, table)
    index_rules = enabled(ddb, table, "by_content")
    now = int(time.time())
    items = [event(i, HOT_VIEWER, HOT_TITLE) for i in range(4)]
    for item in items[:3]:
        item["expires_at"] = {"N": str(now - 3600)}  # expired an hour ago
    for item in items:
        ddb.put_item(TableName=table, Item=item)
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    deadline = time.monotonic() + 30
    while ddb.scan(TableName=table, Select="COUNT")["Count"] != 1:  # a count returns no key: counts nothing
        assert time.monotonic() < deadline
        time.sleep(0.3)
    time.sleep(1.5)  # a count of the deletions would be flushed by now
    ddb.put_item(TableName=table, Item=event(9, "u-after", "c-after"))
    viewers = report(cw, rule_named(table_rules, "PKC"), 5)
    assert keys_counted(viewers) == {(HOT_VIEWER,): 4.0, ("u-after",): 1.0}  # the puts alone
    titles = report(cw, rule_named(index_rules, "PKC"), 5)
    assert keys_counted(titles) == {(HOT_TITLE,): 4.0, ("c-after",): 1.0}


def test_writes_replicated_from_another_region_count_in_the_receiving_replica(tmp_path):
    """The developer guide: insights monitor "global table replicas as
    distinct tables", and "write data is replicated across all replicas":
    a replica counts the writes it receives, table keys and the GSI entries
    they change, as its own writes."""
    regions = ("us-east-1", "eu-west-1")
    ports = [free_port(), free_port()]
    procs: list[ShoalProcess] = []
    try:
        for i, region in enumerate(regions):
            procs.append(ShoalProcess(tmp_path / region, "--region", region,
                                      f"--peer={regions[1 - i]}=http://127.0.0.1:{ports[1 - i]}",
                                      "--workers", "1", "--no-metrics", port=ports[i]).start())
        east, west = (client(proc.url, region=region) for proc, region in zip(procs, regions))
        west_cw = client(procs[1].url, "cloudwatch", region=regions[1])
        name = events_table(east)
        east.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": regions[1]}}])
        deadline = time.monotonic() + 30
        while not (west.list_tables()["TableNames"] == [name]
                   and west.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        table_rules = enabled(west, name)
        index_rules = enabled(west, name, "by_content")
        items = [event(i, HOT_VIEWER if i < 4 else f"u{6000 + i:08d}", HOT_TITLE if i < 3 else f"c{6000 + i:06d}")
                 for i in range(6)]
        for item in items:
            east.put_item(TableName=name, Item=item)
        east.update_item(TableName=name, Key={"user_id": items[3]["user_id"], "ts": items[3]["ts"]},
                         UpdateExpression="SET content_id = :c", ExpressionAttributeValues={":c": {"S": HOT_TITLE}})
        east.delete_item(TableName=name, Key={"user_id": items[5]["user_id"], "ts": items[5]["ts"]})
        viewers = report(west_cw, rule_named(table_rules, "PKC"), 8)  # 6 puts, the update, the delete
        assert viewers["AggregateValue"] == 8.0
        assert keys_counted(viewers) == {(HOT_VIEWER,): 5.0, (items[4]["user_id"]["S"],): 1.0,
                                         (items[5]["user_id"]["S"],): 2.0}
        titles = report(west_cw, rule_named(index_rules, "PKC"), 9)  # 6 entries, one moved (2), one deleted
        assert keys_counted(titles) == {(HOT_TITLE,): 4.0, (items[3]["content_id"]["S"],): 2.0,
                                        (items[4]["content_id"]["S"],): 1.0, (items[5]["content_id"]["S"],): 2.0}
        assert report(west_cw, rule_named(table_rules, "PKT"), 0)["Contributors"] == []
        # the writing region counts its own requests, not twice (its replica has no insights on)
        assert east.describe_contributor_insights(TableName=name)["ContributorInsightsStatus"] == "DISABLED"
        assert west.get_item(TableName=name, Key={"user_id": items[0]["user_id"], "ts": items[0]["ts"]})["Item"]
    finally:
        for proc in procs:
            proc.stop()


def test_writes_of_a_strong_global_table_count_once_in_every_region_with_insights(tmp_path):
    """MRSC: the region that served the request counts it (the dispatcher),
    and each other replica counts the write it applies from a learned value,
    as a replicated write; nobody counts one twice."""
    from tests.server.test_mrsc import REGIONS, Regions, _strong_table

    trio = Regions(str(tmp_path))
    try:
        for i in range(3):
            trio.start(i)
        name = "mrsc_insights"
        _strong_table(trio, name)
        rules = [enabled(trio.client(i), name) for i in (0, 1)]
        writer = trio.client(0)
        for n in range(3):
            writer.put_item(TableName=name, Item={"pk": {"S": "hot"}, "n": {"N": str(n)}})
        writer.put_item(TableName=name, Item={"pk": {"S": "cold"}})
        writer.delete_item(TableName=name, Key={"pk": {"S": "cold"}})
        for i in (0, 1):
            cw = client(trio.procs[i].url, "cloudwatch", region=REGIONS[i])
            assert keys_counted(report(cw, rule_named(rules[i], "PKC"), 5)) == {("hot",): 3.0, ("cold",): 2.0}, i
        time.sleep(1.5)  # a second count of the same writes would be flushed by now
        for i in (0, 1):
            cw = client(trio.procs[i].url, "cloudwatch", region=REGIONS[i])
            answer = report(cw, rule_named(rules[i], "PKC"), 5)
            assert answer["AggregateValue"] == 5.0, (i, answer)
    finally:
        trio.stop()
