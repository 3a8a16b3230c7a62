"""Contributor insights without a server: the bounded top-K sketch's
guarantees (hypothesis), the settings' life cycle (status by time, modes,
rule names, the list's order and pages, DynamoDB's not-found messages), and
the counting of requests' keys into stored per-minute sketches."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from shoal.api import Context, operations, writepath
from shoal.api import insights as api
from shoal.api import tables
from shoal.api.catalog import Catalog
from shoal.errors import ProvisionedThroughputExceededException, ResourceNotFoundException, ValidationException
from shoal.metrics.insights import Insights, Sketch, find_rule, read_minutes

REGION = "us-east-1"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- the sketch

streams = st.lists(st.integers(min_value=0, max_value=60), min_size=0, max_size=600)


def check_guarantees(sketch: Sketch, truth: Counter) -> None:
    assert sketch.total == sum(truth.values())
    for key, count in truth.items():
        if key in sketch.counts:
            assert count <= sketch.counts[key] <= count + sketch.floor
        else:
            assert count <= sketch.floor  # a dropped key was never counted more than the floor
    assert len(sketch.counts) <= 2 * sketch.capacity


@settings(max_examples=200, deadline=None)
@given(streams, st.integers(min_value=1, max_value=8))
def test_a_sketch_overestimates_by_at_most_its_floor(stream, capacity):
    sketch = Sketch(capacity)
    for value in stream:
        sketch.add((str(value),))
    check_guarantees(sketch, Counter((str(v),) for v in stream))
    sketch.compact()
    check_guarantees(sketch, Counter((str(v),) for v in stream))
    assert len(sketch.counts) <= capacity


@settings(max_examples=200, deadline=None)
@given(streams, streams, st.integers(min_value=1, max_value=8))
def test_merged_sketches_keep_the_guarantees_of_the_whole_stream(left, right, capacity):
    a, b = Sketch(capacity), Sketch(capacity)
    for value in left:
        a.add((str(value),))
    for value in right:
        b.add((str(value),))
    stored = Sketch.decode(b.encode(), capacity)  # through storage's form
    check_guarantees(a.merge(stored), Counter((str(v),) for v in left + right))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=200))
def test_a_sketch_within_its_capacity_counts_exactly(stream):
    sketch = Sketch(10)
    for value in stream:
        sketch.add((value,))
    assert sketch.floor == 0
    assert sketch.counts == {(k,): n for k, n in Counter(stream).items()}


def test_a_heavy_hitter_survives_a_long_tail():
    sketch = Sketch(20)
    for i in range(5000):
        sketch.add(("hot",) if i % 4 == 0 else (f"cold{i}",))
    top = sketch.top(1)
    assert top[0][0] == ("hot",)
    assert 1250 <= top[0][1] <= 1250 + sketch.floor
    assert sketch.total == 5000


# ---------------------------------------------------------------- settings


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ctx(engine, clock):
    return Context(REGION, "000000000000", engine, Catalog(engine), now=clock)


def create(ctx, name="events", *, range_key=True, gsi=True, lsi=False):
    attrs = [{"AttributeName": "user_id", "AttributeType": "S"}]
    schema = [{"AttributeName": "user_id", "KeyType": "HASH"}]
    if range_key:
        attrs.append({"AttributeName": "ts", "AttributeType": "N"})
        schema.append({"AttributeName": "ts", "KeyType": "RANGE"})
    request = {"TableName": name, "KeySchema": schema, "AttributeDefinitions": attrs, "BillingMode": "PAY_PER_REQUEST"}
    if gsi:
        attrs.append({"AttributeName": "content_id", "AttributeType": "S"})
        request["GlobalSecondaryIndexes"] = [{"IndexName": "by_content",
                                              "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"}],
                                              "Projection": {"ProjectionType": "KEYS_ONLY"}}]
    if lsi:
        attrs.append({"AttributeName": "device", "AttributeType": "S"})
        request["LocalSecondaryIndexes"] = [{"IndexName": "by_device",
                                             "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                                                           {"AttributeName": "device", "KeyType": "RANGE"}],
                                             "Projection": {"ProjectionType": "KEYS_ONLY"}}]
    tables.create_table(ctx, request)
    return name


def update(ctx, name="events", action="ENABLE", **extra):
    return api.update_contributor_insights(ctx, {"TableName": name, "ContributorInsightsAction": action, **extra})


def describe(ctx, name="events", **extra):
    return api.describe_contributor_insights(ctx, {"TableName": name, **extra})


def test_a_never_configured_table_is_disabled_without_mode_or_time(ctx):
    create(ctx)
    assert describe(ctx) == {"TableName": "events", "ContributorInsightsStatus": "DISABLED"}
    assert describe(ctx, IndexName="by_content") == {"TableName": "events", "IndexName": "by_content",
                                                     "ContributorInsightsStatus": "DISABLED"}
    # DISABLE of what was never enabled: a no-op that echoes it
    assert update(ctx, action="DISABLE") == {"TableName": "events", "ContributorInsightsStatus": "DISABLED"}


def test_enable_goes_through_enabling_and_names_four_rules(ctx, clock):
    create(ctx)
    assert update(ctx) == {"TableName": "events", "ContributorInsightsStatus": "ENABLING",
                           "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"}
    since = int(clock.now * 1000)
    rules = [f"DynamoDBContributorInsights-{kind}-events-{since}" for kind in ("PKC", "PKT", "SKC", "SKT")]
    assert describe(ctx) == {"TableName": "events", "ContributorInsightsStatus": "ENABLING",
                             "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS",
                             "ContributorInsightsRuleList": rules, "LastUpdateDateTime": clock.now}
    clock.now += api.ENABLING_S
    assert describe(ctx)["ContributorInsightsStatus"] == "ENABLED"
    # ENABLE again in the same mode: nothing changes
    assert update(ctx)["ContributorInsightsStatus"] == "ENABLED"
    assert describe(ctx)["LastUpdateDateTime"] == clock.now - api.ENABLING_S


def test_a_mode_change_reenables_with_the_same_rule_time_and_fewer_rules(ctx, clock):
    create(ctx, range_key=False)
    update(ctx)
    since = int(clock.now * 1000)
    clock.now += 10
    answer = update(ctx, ContributorInsightsMode="THROTTLED_KEYS")
    assert answer["ContributorInsightsStatus"] == "ENABLING"
    assert describe(ctx)["ContributorInsightsRuleList"] == [f"DynamoDBContributorInsights-PKT-events-{since}"]
    clock.now += 10
    update(ctx)  # an omitted mode is ACCESSED_AND_THROTTLED_KEYS again
    assert describe(ctx)["ContributorInsightsMode"] == "ACCESSED_AND_THROTTLED_KEYS"


def test_disable_then_enable_makes_new_rules(ctx, clock):
    create(ctx, range_key=False, gsi=False)
    update(ctx)
    first = int(clock.now * 1000)
    clock.now += 5
    assert update(ctx, action="DISABLE")["ContributorInsightsStatus"] == "DISABLING"
    assert "ContributorInsightsRuleList" not in describe(ctx)
    clock.now += api.DISABLING_S
    assert describe(ctx)["ContributorInsightsStatus"] == "DISABLED"
    assert describe(ctx)["ContributorInsightsMode"] == "ACCESSED_AND_THROTTLED_KEYS"
    clock.now += 1
    update(ctx)
    rules = describe(ctx)["ContributorInsightsRuleList"]
    assert rules[0] == f"DynamoDBContributorInsights-PKC-events-{int(clock.now * 1000)}" != first


def test_index_rules_name_the_table_and_the_index(ctx, clock):
    create(ctx)
    update(ctx, IndexName="by_content")
    since = int(clock.now * 1000)
    assert describe(ctx, IndexName="by_content")["ContributorInsightsRuleList"] == [
        f"DynamoDBContributorInsights-PKC-events-by_content-{since}",
        f"DynamoDBContributorInsights-PKT-events-by_content-{since}"]
    assert describe(ctx)["ContributorInsightsStatus"] == "DISABLED"  # per index, not per table


def test_missing_table_local_index_and_unknown_index_are_not_found(ctx):
    create(ctx, lsi=True)
    for call in (lambda: describe(ctx, "nothing"), lambda: update(ctx, "nothing"),
                 lambda: api.list_contributor_insights(ctx, {"TableName": "nothing"})):
        with pytest.raises(ResourceNotFoundException) as info:
            call()
        assert info.value.message == "Requested resource not found: Table: nothing not found"
    for index in ("by_device", "nope"):
        for call in (lambda: describe(ctx, IndexName=index), lambda: update(ctx, IndexName=index)):
            with pytest.raises(ResourceNotFoundException) as info:
                call()
            assert info.value.message == f"Requested resource not found: Index: {index} not found for table: events"


def test_the_list_omits_disabled_entries_and_pages_table_before_index(ctx, clock):
    create(ctx, "b_table")
    create(ctx, "a_table")
    create(ctx, "c_table")
    update(ctx, "b_table")
    update(ctx, "b_table", IndexName="by_content")
    update(ctx, "a_table", ContributorInsightsMode="THROTTLED_KEYS")
    update(ctx, "c_table")
    update(ctx, "c_table", action="DISABLE")
    clock.now += api.DISABLING_S
    listed = api.list_contributor_insights(ctx, {})
    assert listed == {"ContributorInsightsSummaries": [
        {"TableName": "a_table", "ContributorInsightsStatus": "ENABLED", "ContributorInsightsMode": "THROTTLED_KEYS"},
        {"TableName": "b_table", "ContributorInsightsStatus": "ENABLED",
         "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"},
        {"TableName": "b_table", "IndexName": "by_content", "ContributorInsightsStatus": "ENABLED",
         "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"}]}
    pages, token = [], None
    while True:
        page = api.list_contributor_insights(ctx, {"MaxResults": 1, **({"NextToken": token} if token else {})})
        pages.append(page["ContributorInsightsSummaries"])
        token = page.get("NextToken")
        if token is None:
            break
    assert pages == [[summary] for summary in listed["ContributorInsightsSummaries"]]
    only = api.list_contributor_insights(ctx, {"TableName": "b_table"})["ContributorInsightsSummaries"]
    assert [s.get("IndexName") for s in only] == [None, "by_content"]
    with pytest.raises(ValidationException):
        api.list_contributor_insights(ctx, {"NextToken": "not a token"})


def test_a_table_created_again_starts_disabled(ctx):
    create(ctx)
    update(ctx)
    tables.delete_table(ctx, {"TableName": "events"})
    create(ctx)
    assert describe(ctx) == {"TableName": "events", "ContributorInsightsStatus": "DISABLED"}
    assert api.list_contributor_insights(ctx, {}) == {"ContributorInsightsSummaries": []}


# ---------------------------------------------------------------- counting


def test_requests_keys_are_counted_per_rule_and_minute(ctx, engine, clock):
    create(ctx)
    update(ctx)
    update(ctx, IndexName="by_content")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    item = {"user_id": {"S": "u1"}, "ts": {"N": "5"}, "content_id": {"S": "c9"}}
    run(insights, ctx, "PutItem", {"TableName": "events", "Item": item})
    run(insights, ctx, "GetItem", {"TableName": "events", "Key": {"user_id": {"S": "u1"}, "ts": {"N": "5"}}})
    run(insights, ctx, "Query", {"TableName": "events", "IndexName": "by_content", "KeyConditionExpression": "#c = :c",
                                 "ExpressionAttributeNames": {"#c": "content_id"},
                                 "ExpressionAttributeValues": {":c": {"S": "c9"}}})
    insights.observe(REGION, "BatchWriteItem", {"RequestItems": {"events": [
        {"DeleteRequest": {"Key": {"user_id": {"S": "u2"}, "ts": {"N": "1"}}}}]}}, True)
    insights.observe(REGION, "GetItem", {"TableName": "other", "Key": {"user_id": {"S": "u1"}}}, False)
    insights.flush()
    minute = int(clock.now // 60 * 60)
    with engine.read() as txn:
        def counts(kind, index=""):
            prefix = f"DynamoDBContributorInsights-{kind}-events{'-' + index if index else ''}-"
            rule = next(r for r in _rules(txn, ctx.catalog, clock.now) if r.name.startswith(prefix))
            return {key: n for _, sketch in read_minutes(txn, rule.name, minute, minute + 60)
                    for key, n in sketch.counts.items()}

        assert counts("PKC") == {("u1",): 2, ("u2",): 1}  # a throttled request was accessed too
        assert counts("PKT") == {("u2",): 1}
        assert counts("SKC") == {("u1", "5"): 2, ("u2", "1"): 1}
        assert counts("PKC", "by_content") == {("c9",): 2}  # the put's GSI key, and the Query
        assert find_rule(txn, ctx.catalog, REGION, "DynamoDBContributorInsights-PKC-other-1", clock.now) is None


def test_partiql_statements_count_the_keys_they_name(ctx, engine, clock):
    create(ctx)
    update(ctx)
    update(ctx, IndexName="by_content")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    run(insights, ctx, "ExecuteStatement", {
        "Statement": "INSERT INTO events VALUE {'user_id': 'u1', 'ts': 7, 'content_id': ?}",
        "Parameters": [{"S": "c9"}]})  # the GSI's key counted from the write
    run(insights, ctx, "ExecuteStatement", {
        "Statement": "SELECT * FROM events WHERE user_id = ? AND ts = 7", "Parameters": [{"S": "u1"}]})
    insights.observe(REGION, "BatchExecuteStatement", {"Statements": [
        {"Statement": "UPDATE events SET x = 1 WHERE user_id = 'u2' AND ts = 1"},
        {"Statement": "SELECT * FROM events.by_content WHERE content_id = 'c9'"},
        {"Statement": "SELECT * FROM events"},  # a scan: no key
        {"Statement": "SELEC nothing"}]}, True)
    insights.flush()
    minute = int(clock.now // 60 * 60)
    with engine.read() as txn:
        rules = {rule.name.split("-")[1] + ("/gsi" if rule.index else ""): rule.name
                 for rule in _rules(txn, ctx.catalog, clock.now)}

        def counts(kind):
            return {key: n for _, sketch in read_minutes(txn, rules[kind], minute, minute + 60)
                    for key, n in sketch.counts.items()}

        assert counts("PKC") == {("u1",): 2, ("u2",): 1}
        assert counts("PKT") == {("u2",): 1}
        assert counts("SKC") == {("u1", "7"): 2, ("u2", "1"): 1}
        assert counts("PKC/gsi") == {("c9",): 2}
        assert counts("PKT/gsi") == {("c9",): 1}


def test_a_wrapped_job_counts_once_and_counts_throttles(ctx, engine, clock):
    create(ctx, gsi=False)
    update(ctx, ContributorInsightsMode="THROTTLED_KEYS")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    body = {"TableName": "events", "Key": {"user_id": {"S": "u3"}, "ts": {"N": "1"}}}

    def refused():
        raise ProvisionedThroughputExceededException("over")

    job = insights.counting(refused, REGION, "GetItem", body)
    for _ in range(2):  # run again alone after its group failed: counted once
        with pytest.raises(ProvisionedThroughputExceededException):
            job()
    assert insights.counting(lambda: b"{}", REGION, "GetItem", body)() == b"{}"  # served: not a throttle
    assert [(rule.split("-")[1], sketch.counts) for (rule, _), sketch in sorted(insights.pending.items())] == [
        ("PKT", {("u3",): 1}), ("SKT", {("u3", "1"): 1})]


def test_nothing_is_counted_once_disabled(ctx, engine, clock):
    create(ctx, gsi=False)
    update(ctx)
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    assert insights.active
    update(ctx, action="DISABLE")
    insights.reload()
    assert insights.active == {}


def run(insights, ctx, operation: str, request: dict):
    """Run an operation as the dispatcher does while insights are on: its job wrapped by ``counting``."""
    handler = operations()[operation]
    return insights.counting(lambda: handler(ctx, request), REGION, operation, request)()


def _rules(txn, catalog, now):
    from shoal.metrics.insights import all_rules

    return all_rules(txn, catalog, REGION, now)


# ---------------------------------------------------------------- GSI keys of writes


def sorted_gsi_table(ctx, name="titles", projection="ALL"):
    """A table keyed by user_id whose GSI by_title (content_id, ts) projects ``projection``."""
    tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "content_id", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_title",
                                    "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                                  {"AttributeName": "ts", "KeyType": "RANGE"}],
                                    "Projection": {"ProjectionType": projection}}]})
    return name


def pending_counts(insights, kind: str, resource: str = "titles-by_title") -> dict:
    """What ``insights`` counted (not yet flushed) for one rule kind of a resource (a table, or table-index)."""
    out: dict = {}
    for (rule, _), sketch in insights.pending.items():
        if rule.rsplit("-", 1)[0] == f"DynamoDBContributorInsights-{kind}-{resource}":
            for key, n in sketch.counts.items():
                out[key] = out.get(key, 0) + n
    return out


def u(user: str) -> dict:
    return {"user_id": {"S": user}}


def test_writes_count_the_old_and_new_gsi_keys_they_change(ctx, engine, clock):
    sorted_gsi_table(ctx)
    update(ctx, "titles", IndexName="by_title")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    assert insights.watches_indexes
    put = {"TableName": "titles", "Item": {**u("u1"), "content_id": {"S": "c1"}, "ts": {"N": "1"}}}
    run(insights, ctx, "PutItem", put)  # new entry (c1, 1)
    run(insights, ctx, "UpdateItem", {"TableName": "titles", "Key": u("u1"), "UpdateExpression": "SET content_id = :c",
                                      "ExpressionAttributeValues": {":c": {"S": "c2"}}})  # (c1, 1) -> (c2, 1)
    run(insights, ctx, "UpdateItem", {"TableName": "titles", "Key": u("u1"), "UpdateExpression": "SET n = :n",
                                      "ExpressionAttributeValues": {":n": {"N": "3"}}})  # (c2, 1) rewritten (ALL)
    run(insights, ctx, "UpdateItem", {"TableName": "titles", "Key": u("u1"),
                                      "UpdateExpression": "REMOVE ts"})  # (c2, 1) deleted: out of the index
    run(insights, ctx, "UpdateItem", {"TableName": "titles", "Key": u("u1"), "UpdateExpression": "SET m = :n",
                                      "ExpressionAttributeValues": {":n": {"N": "4"}}})  # not in the index: nothing
    run(insights, ctx, "PutItem", {"TableName": "titles",
                                   "Item": {**u("u2"), "content_id": {"S": "c3"}, "ts": {"N": "2"}}})
    run(insights, ctx, "DeleteItem", {"TableName": "titles", "Key": u("u2")})  # (c3, 2) deleted
    run(insights, ctx, "DeleteItem", {"TableName": "titles", "Key": u("nobody")})  # deletes nothing
    assert pending_counts(insights, "PKC") == {("c1",): 2, ("c2",): 3, ("c3",): 2}
    assert pending_counts(insights, "SKC") == {("c1", "1"): 2, ("c2", "1"): 3, ("c3", "2"): 2}
    assert pending_counts(insights, "PKT") == {}  # nothing was throttled
    assert pending_counts(insights, "PKC", "titles") == {}  # the table has no insights of its own


def test_an_unprojected_change_is_no_index_write_and_a_failed_write_counts_nothing(ctx, engine, clock):
    sorted_gsi_table(ctx, projection="KEYS_ONLY")
    update(ctx, "titles", IndexName="by_title", ContributorInsightsMode="ACCESSED_AND_THROTTLED_KEYS")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    run(insights, ctx, "PutItem", {"TableName": "titles",
                                   "Item": {**u("u1"), "content_id": {"S": "c1"}, "ts": {"N": "1"}}})
    run(insights, ctx, "UpdateItem", {"TableName": "titles", "Key": u("u1"), "UpdateExpression": "SET n = :n",
                                      "ExpressionAttributeValues": {":n": {"N": "3"}}})  # KEYS_ONLY: no index write
    from shoal.errors import ConditionalCheckFailedException

    with pytest.raises(ConditionalCheckFailedException):
        run(insights, ctx, "UpdateItem", {"TableName": "titles", "Key": u("u1"), "UpdateExpression": "SET ts = :t",
                                          "ConditionExpression": "attribute_not_exists(user_id)",
                                          "ExpressionAttributeValues": {":t": {"N": "9"}}})
    with pytest.raises(ValidationException):  # a GSI key of the wrong type: refused by the write path itself
        run(insights, ctx, "UpdateItem", {"TableName": "titles", "Key": u("u1"), "UpdateExpression": "SET ts = :t",
                                          "ExpressionAttributeValues": {":t": {"S": "nine"}}})
    assert writepath.index_watch is None  # the hook is the running request's alone
    assert pending_counts(insights, "PKC") == {("c1",): 1}


def test_batches_transactions_and_partiql_count_the_gsi_keys_they_change(ctx, engine, clock):
    sorted_gsi_table(ctx)
    update(ctx, "titles", IndexName="by_title")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    items = [{**u(f"u{i}"), "content_id": {"S": f"c{i}"}, "ts": {"N": str(i)}} for i in range(4)]
    run(insights, ctx, "BatchWriteItem", {"RequestItems": {"titles": [{"PutRequest": {"Item": item}}
                                                                      for item in items]}})
    run(insights, ctx, "BatchWriteItem", {"RequestItems": {"titles": [{"DeleteRequest": {"Key": u("u0")}}]}})
    run(insights, ctx, "TransactWriteItems", {"TransactItems": [
        {"Update": {"TableName": "titles", "Key": u("u1"), "UpdateExpression": "SET content_id = :c",
                    "ExpressionAttributeValues": {":c": {"S": "hot"}}}},
        {"Delete": {"TableName": "titles", "Key": u("u2")}}]})
    run(insights, ctx, "ExecuteStatement", {"Statement": "UPDATE titles SET content_id = 'hot' WHERE user_id = 'u3'"})
    run(insights, ctx, "ExecuteStatement", {"Statement": "DELETE FROM titles WHERE user_id = 'u1'"})
    assert pending_counts(insights, "PKC") == {
        ("c0",): 2,  # put, deleted by the batch
        ("c1",): 2,  # put, moved to hot by the transaction
        ("c2",): 2,  # put, deleted by the transaction
        ("c3",): 2,  # put, moved to hot by PartiQL
        ("hot",): 3}  # u1 and u3 moved in, u1 deleted


def test_the_write_path_is_watched_only_for_writes_to_a_table_whose_gsi_has_insights_on(ctx, engine, clock):
    sorted_gsi_table(ctx)
    sorted_gsi_table(ctx, "quiet")
    update(ctx, "titles")  # the table's insights, not the index's
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    assert insights.active and not insights.watches_indexes

    def watch_during(operation: str, request: dict):
        seen = []
        insights.counting(lambda: seen.append(writepath.index_watch) or b"{}", REGION, operation, request)()
        assert writepath.index_watch is None
        return seen[0]

    titles, quiet = {"TableName": "titles"}, {"TableName": "quiet"}
    assert watch_during("UpdateItem", titles) is None
    update(ctx, "titles", IndexName="by_title")
    insights.reload()
    assert callable(watch_during("UpdateItem", titles))
    assert watch_during("UpdateItem", quiet) is None  # another table's GSI has insights on: not this one's
    assert watch_during("GetItem", titles) is None
    assert watch_during("BatchWriteItem", {"RequestItems": {"quiet": [], "titles": []}}) is not None
    assert watch_during("BatchWriteItem", {"RequestItems": {"quiet": []}}) is None
    assert watch_during("TransactWriteItems", {"TransactItems": [{"Put": quiet}, {"Delete": titles}]}) is not None
    assert watch_during("TransactWriteItems", {"TransactItems": [{"ConditionCheck": quiet}]}) is None
    assert watch_during("ExecuteStatement", {"Statement": "DELETE FROM quiet WHERE user_id = 'a'"}) is not None


def test_a_throttled_write_counts_no_gsi_key_and_a_gsi_throttle_is_not_a_throttle(ctx, engine, clock):
    """A throttled write changed no index entry, so no GSI counts it; a write
    throttled for want of a GSI's write capacity is not measured as a throttle
    (the developer guide), only as an access of the table's key."""
    sorted_gsi_table(ctx)
    update(ctx, "titles")
    update(ctx, "titles", IndexName="by_title")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    arn = "arn:aws:dynamodb:us-east-1:000000000000:table/titles"

    def refused(reason: str, resource: str):
        def job():
            raise ProvisionedThroughputExceededException("over", [{"reason": reason, "resource": resource}])
        return job

    put = {"TableName": "titles", "Item": {**u("u1"), "content_id": {"S": "c1"}, "ts": {"N": "1"}}}
    update_request = {"TableName": "titles", "Key": u("u2"), "UpdateExpression": "SET content_id = :c",
                      "ExpressionAttributeValues": {":c": {"S": "c2"}}}
    for operation, request in (("PutItem", put), ("UpdateItem", update_request)):
        with pytest.raises(ProvisionedThroughputExceededException):
            insights.counting(refused("TableWriteProvisionedThroughputExceeded", arn), REGION, operation, request)()
    with pytest.raises(ProvisionedThroughputExceededException):
        insights.counting(refused("IndexWriteProvisionedThroughputExceeded", arn + "/index/by_title"), REGION,
                          "DeleteItem", {"TableName": "titles", "Key": u("u3")})()
    assert pending_counts(insights, "PKT", "titles") == {("u1",): 1, ("u2",): 1}
    assert pending_counts(insights, "PKC", "titles") == {("u1",): 1, ("u2",): 1, ("u3",): 1}
    assert pending_counts(insights, "PKT") == {} and pending_counts(insights, "PKC") == {}


# ---------------------------------------------------------------- the rule quota: FAILED


def test_past_the_rule_quota_an_enable_fails_after_enabling(ctx, engine, clock, monkeypatch):
    monkeypatch.setattr(api, "RULE_QUOTA", 6)
    create(ctx, "full")  # 4 rules
    create(ctx, "hash_only", range_key=False, gsi=False)  # 2 rules
    create(ctx, "late")
    update(ctx, "full")
    update(ctx, "hash_only")
    answer = update(ctx, "late")  # 4 more rules than the quota leaves: accepted, then FAILED
    assert answer == {"TableName": "late", "ContributorInsightsStatus": "ENABLING",
                      "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"}
    assert describe(ctx, "late") == {"TableName": "late", "ContributorInsightsStatus": "ENABLING",
                                     "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS",
                                     "LastUpdateDateTime": clock.now}
    failed_at = clock.now + api.ENABLING_S
    clock.now += api.ENABLING_S
    assert describe(ctx, "late") == {
        "TableName": "late", "ContributorInsightsStatus": "FAILED",
        "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS", "LastUpdateDateTime": failed_at,
        "FailureException": {"ExceptionName": "LimitExceededException",
                             "ExceptionDescription": "Amazon CloudWatch Contributor Insights rule limit reached. "
                                                     "Please disable Contributor Insights for other tables/indexes OR "
                                                     "disable other CloudWatch Contributor Insights rules before "
                                                     "retrying."}}
    assert api.list_contributor_insights(ctx, {"TableName": "late"})["ContributorInsightsSummaries"] == [
        {"TableName": "late", "ContributorInsightsStatus": "FAILED",
         "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"}]
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    assert set(insights.active) == {(REGION, "full"), (REGION, "hash_only")}  # a failed entry counts nothing
    with engine.read() as txn:
        assert not [rule for rule in _rules(txn, ctx.catalog, clock.now) if rule.table == "late"]
    # ENABLE again while the quota is still spent: ENABLING, FAILED again
    clock.now += 5
    assert update(ctx, "late")["ContributorInsightsStatus"] == "ENABLING"
    clock.now += api.ENABLING_S
    assert describe(ctx, "late")["ContributorInsightsStatus"] == "FAILED"
    # freeing rules does not revive it; an ENABLE afterwards does, with new rule times
    update(ctx, "full", ContributorInsightsMode="THROTTLED_KEYS")  # narrowed at the quota: 4 -> 2 rules
    clock.now += 30
    assert describe(ctx, "late")["ContributorInsightsStatus"] == "FAILED"
    update(ctx, "late", ContributorInsightsMode="THROTTLED_KEYS")  # 2 + 2 + 2 = 6
    clock.now += api.ENABLING_S
    revived = describe(ctx, "late")
    assert revived["ContributorInsightsStatus"] == "ENABLED" and "FailureException" not in revived
    since = int((clock.now - api.ENABLING_S) * 1000)
    assert revived["ContributorInsightsRuleList"] == [f"DynamoDBContributorInsights-{kind}-late-{since}"
                                                      for kind in ("PKT", "SKT")]


def test_disabling_a_failed_entry_shows_the_failure_until_disabled(ctx, clock, monkeypatch):
    monkeypatch.setattr(api, "RULE_QUOTA", 1)
    create(ctx, range_key=False, gsi=False)
    update(ctx)
    clock.now += api.ENABLING_S
    assert describe(ctx)["ContributorInsightsStatus"] == "FAILED"
    assert update(ctx, action="DISABLE") == {"TableName": "events", "ContributorInsightsStatus": "DISABLING",
                                             "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS"}
    disabling = describe(ctx)
    assert disabling["FailureException"]["ExceptionName"] == "LimitExceededException"
    assert api.list_contributor_insights(ctx, {})["ContributorInsightsSummaries"][0][
        "ContributorInsightsStatus"] == "DISABLING"
    clock.now += api.DISABLING_S
    assert describe(ctx) == {"TableName": "events", "ContributorInsightsStatus": "DISABLED",
                             "ContributorInsightsMode": "ACCESSED_AND_THROTTLED_KEYS",
                             "LastUpdateDateTime": clock.now - api.DISABLING_S}
    assert api.list_contributor_insights(ctx, {}) == {"ContributorInsightsSummaries": []}


def test_a_table_being_created_takes_no_update(ctx, engine):
    create(ctx)
    with engine.read() as txn:  # as a restore or an import leaves it while it loads
        ctx.catalog.get(txn, REGION, "events").description["TableStatus"] = "CREATING"
    with pytest.raises(ValidationException) as info:
        update(ctx)
    assert info.value.message == ("Table or Index is not in a valid state to update Key Access Insights: "
                                  "TableStatus must be ACTIVE to enable ContributorInsights.")
    assert describe(ctx) == {"TableName": "events", "ContributorInsightsStatus": "DISABLED"}  # described, though


def test_a_table_named_by_its_arn_counts_as_by_its_name(ctx, engine, clock):
    create(ctx, gsi=False)
    update(ctx)
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    arn = f"arn:aws:dynamodb:{REGION}:000000000000:table/events"
    run(insights, ctx, "PutItem", {"TableName": arn, "Item": {**u("u1"), "ts": {"N": "1"}}})
    run(insights, ctx, "GetItem", {"TableName": arn, "Key": {**u("u1"), "ts": {"N": "1"}}})
    run(insights, ctx, "BatchGetItem", {"RequestItems": {arn: {"Keys": [{**u("u2"), "ts": {"N": "1"}}]}}})
    assert pending_counts(insights, "PKC", "events") == {("u1",): 2, ("u2",): 1}


def test_another_threads_writes_meanwhile_are_not_the_requests(ctx, engine, clock):
    import threading

    sorted_gsi_table(ctx)
    update(ctx, "titles", IndexName="by_title")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    put = operations()["PutItem"]

    def job() -> bytes:  # a bulk put's thread writes while the request runs
        other = threading.Thread(target=put, args=(ctx, {"TableName": "titles", "Item": {
            **u("bulk"), "content_id": {"S": "bulk"}, "ts": {"N": "1"}}}))
        other.start()
        other.join()
        return put(ctx, {"TableName": "titles", "Item": {**u("u1"), "content_id": {"S": "mine"}, "ts": {"N": "1"}}})

    insights.counting(job, REGION, "PutItem", {"TableName": "titles"})()
    assert pending_counts(insights, "PKC") == {("mine",): 1}


# ---------------------------------------------------------------- multi-attribute GSI keys


def places_table(ctx, name="plays"):
    """A table keyed by user_id whose GSI by_place has a two-attribute partition key (country, device) and ts."""
    tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "country", "AttributeType": "S"},
                                 {"AttributeName": "device", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_place",
                                    "KeySchema": [{"AttributeName": "country", "KeyType": "HASH"},
                                                  {"AttributeName": "device", "KeyType": "HASH"},
                                                  {"AttributeName": "ts", "KeyType": "RANGE"}],
                                    "Projection": {"ProjectionType": "KEYS_ONLY"}}]})
    return name


def test_a_multi_attribute_gsi_key_is_counted_and_labelled_whole(ctx, engine, clock):
    places_table(ctx)
    update(ctx, "plays", IndexName="by_place")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    play = {**u("u1"), "country": {"S": "FR"}, "device": {"S": "tv"}, "ts": {"N": "1"}}
    run(insights, ctx, "PutItem", {"TableName": "plays", "Item": play})
    run(insights, ctx, "PutItem", {"TableName": "plays", "Item": {**u("u2"), "country": {"S": "FR"},
                                                                  "ts": {"N": "2"}}})  # no device: not in the index
    run(insights, ctx, "UpdateItem", {"TableName": "plays", "Key": u("u1"), "UpdateExpression": "SET device = :d",
                                      "ExpressionAttributeValues": {":d": {"S": "phone"}}})
    run(insights, ctx, "Query", {"TableName": "plays", "IndexName": "by_place",
                                 "KeyConditionExpression": "country = :c AND device = :d AND ts > :t",
                                 "ExpressionAttributeValues": {":c": {"S": "FR"}, ":d": {"S": "phone"},
                                                               ":t": {"N": "0"}}})
    run(insights, ctx, "Query", {"TableName": "plays", "IndexName": "by_place", "KeyConditions": {
        "country": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "FR"}]},
        "device": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "tv"}]}}})
    assert pending_counts(insights, "PKC", "plays-by_place") == {("FR", "tv"): 3, ("FR", "phone"): 2}
    assert pending_counts(insights, "SKC", "plays-by_place") == {("FR", "tv", "1"): 2, ("FR", "phone", "1"): 1}
    with engine.read() as txn:
        labels = {rule.kind: rule.labels for rule in _rules(txn, ctx.catalog, clock.now)}
    assert labels == {"PKC": ("country", "device"), "PKT": ("country", "device"),
                      "SKC": ("country", "device", "ts"), "SKT": ("country", "device", "ts")}


# ---------------------------------------------------------------- writes no request made


def test_replicated_writes_count_as_accesses_of_the_table_and_of_the_gsi_entries_they_change(ctx, engine, clock):
    from shoal.replication.apply import apply_changes

    sorted_gsi_table(ctx, projection="KEYS_ONLY")
    update(ctx, "titles")
    update(ctx, "titles", IndexName="by_title")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    first = {**u("u1"), "content_id": {"S": "c1"}, "ts": {"N": "1"}}
    records = [{"time": 1, "origin": "eu-west-1", "seq": 1, "keys": u("u1"), "new": first},  # entry (c1, 1) put
               {"time": 2, "origin": "eu-west-1", "seq": 2, "keys": u("u1"),
                "new": {**first, "plays": {"N": "2"}}},  # KEYS_ONLY: the entry is not written
               {"time": 3, "origin": "eu-west-1", "seq": 3, "keys": u("u1"),
                "new": {**first, "content_id": {"S": "c2"}}},  # (c1, 1) -> (c2, 1)
               {"time": 4, "origin": "eu-west-1", "seq": 4, "keys": u("u2"), "new": u("u2")},  # not in the index
               {"time": 5, "origin": "eu-west-1", "seq": 5, "keys": u("u1"), "new": None}]  # (c2, 1) deleted
    with engine.write() as txn:
        table = ctx.catalog.get(txn, REGION, "titles")
        assert apply_changes(txn, ctx.catalog, table, records, clock.now) == 5
    assert insights.pending == {}  # queued: counted by the event loop's round
    insights._count_applied()
    assert pending_counts(insights, "PKC", "titles") == {("u1",): 4, ("u2",): 1}
    assert pending_counts(insights, "PKC") == {("c1",): 2, ("c2",): 2}
    assert pending_counts(insights, "PKT", "titles") == {} and pending_counts(insights, "PKT") == {}


def test_an_applied_write_to_a_table_made_again_or_without_insights_is_not_counted(ctx, engine, clock):
    from shoal.metrics.insights import count_applied_write

    sorted_gsi_table(ctx)
    sorted_gsi_table(ctx, "quiet")
    update(ctx, "titles")
    insights = Insights(engine, ctx.catalog, clock)
    insights.reload()
    with engine.read() as txn:
        titles, quiet = ctx.catalog.get(txn, REGION, "titles"), ctx.catalog.get(txn, REGION, "quiet")
    count_applied_write(quiet, u("q"), None, u("q"))
    tables.delete_table(ctx, {"TableName": "titles"})
    sorted_gsi_table(ctx)
    with engine.read() as txn:
        again = ctx.catalog.get(txn, REGION, "titles")
    count_applied_write(again, u("new"), None, u("new"))  # insights are the old table's until reloaded
    count_applied_write(titles, u("old"), None, u("old"))
    assert len(insights.applied) == 1
    insights.reload()  # the old table's setting is gone with it
    insights._count_applied()
    assert insights.pending == {}
