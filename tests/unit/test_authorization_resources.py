"""The resource each operation is authorized on, where it is not simply its table."""

from __future__ import annotations

from shoal.api import DEFAULT_ACCOUNT
from shoal.auth.actions import required

REGION = "eu-west-1"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/events"


def resources(operation, body):
    return [(c.action, c.resource) for c in required(operation, body, REGION, DEFAULT_ACCOUNT, lambda t, i: None)]


def test_bulk_operations_are_authorized_on_their_table_or_their_own_arn():
    arn = f"{TABLE_ARN}/bulk-operation/1733500000000-0a1b2c3d"
    assert resources("StartBulkPutItems", {"TableName": "events"}) == [("dynamodb:StartBulkPutItems", TABLE_ARN)]
    assert resources("DescribeBulkOperation", {"BulkOperationArn": arn}) == [("dynamodb:DescribeBulkOperation", arn)]
    assert resources("CancelBulkOperation", {"BulkOperationArn": arn}) == [("dynamodb:CancelBulkOperation", arn)]
    assert resources("ListBulkOperations", {}) == [("dynamodb:ListBulkOperations", "*")]


def test_search_vectors_is_authorized_on_its_vector_index():
    assert resources("SearchVectors", {"TableName": "events", "IndexName": "by_embedding"}) == [
        ("dynamodb:SearchVectors", f"{TABLE_ARN}/index/by_embedding")]
