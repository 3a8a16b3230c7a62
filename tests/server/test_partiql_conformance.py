"""PartiQL answers settled by bench/conformance_partiql.py (Shoal against
DynamoDB Local, each difference decided by AWS's PartiQL documentation), and
BatchExecuteStatement's failed conditions in CloudWatch, through boto3 against
a real server."""

from __future__ import annotations

import datetime
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table, make_client

UTC = datetime.timezone.utc


def error_of(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


# ---------------------------------------------------------------- metrics


def _sum(cw, metric: str, dims: dict, expected: float, timeout: float = 15.0):
    """The metric's Sum over the last half hour once it reached ``expected``
    (or what it is at the timeout; None when nothing was recorded)."""
    deadline = time.monotonic() + timeout
    while True:
        now = datetime.datetime.now(UTC)
        points = cw.get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName=metric,
            Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
            StartTime=now - datetime.timedelta(minutes=30), EndTime=now + datetime.timedelta(minutes=5),
            Period=3600, Statistics=["Sum", "SampleCount"])["Datapoints"]
        point = points[0] if points else None
        if (point is not None and point["Sum"] >= expected) or time.monotonic() > deadline:
            return point
        time.sleep(0.2)


def test_batch_members_whose_condition_fails_count_in_their_tables_conditional_check_failed_requests(shoal):
    """A BatchExecuteStatement UPDATE or DELETE whose condition fails counts
    once in its own table's ConditionalCheckFailedRequests, as an
    ExecuteStatement's does (the Developer Guide's metrics page); the
    request succeeds, so nothing counts in UserErrors.  A duplicate INSERT
    is no condition of the statement's: not counted."""
    region = "ap-south-1"  # a region of its own: its tables' sums are this test's alone
    ddb, cw = make_client(shoal.url, region=region), make_client(shoal.url, "cloudwatch", region)
    first = create_table(ddb, range_key=None)
    second = create_table(ddb, range_key=None)
    for table in (first, second):
        for pk in ("a", "b", "c"):
            ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "v": {"N": "1"}})
    responses = ddb.batch_execute_statement(Statements=[
        {"Statement": f"UPDATE \"{first}\" SET w = 1 WHERE pk = 'missing'"},
        {"Statement": f"DELETE FROM \"{first}\" WHERE pk = 'a' AND v = 2"},
        {"Statement": f"UPDATE \"{second}\" SET v = 5 WHERE pk = 'a' AND v = 9"},
        {"Statement": f"INSERT INTO \"{second}\" VALUE {{'pk': 'b'}}"},
        {"Statement": f"UPDATE \"{second}\" SET w = 2 WHERE pk = 'c'"},
    ])["Responses"]
    assert [r.get("Error", {}).get("Code") for r in responses] == [
        "ConditionalCheckFailed", "ConditionalCheckFailed", "ConditionalCheckFailed", "DuplicateItem", None]
    failed = _sum(cw, "ConditionalCheckFailedRequests", {"TableName": first}, 2.0)
    assert (failed["Sum"], failed["SampleCount"]) == (2.0, 2)
    failed = _sum(cw, "ConditionalCheckFailedRequests", {"TableName": second}, 1.0)
    assert (failed["Sum"], failed["SampleCount"]) == (1.0, 1)
    assert _sum(cw, "UserErrors", {}, 1.0, timeout=0.0) is None
