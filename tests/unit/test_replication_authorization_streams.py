"""A replica's stream policy, checked for the replication role's stream actions
only (``authorization.STREAM_ACTIONS``, ``denied_action``'s ``actions``)."""

from __future__ import annotations

import orjson
import pytest

from shoal.replication import authorization

ACCOUNT = "000000000000"
STREAM = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/events/stream/2026-12-07T22:00:00.000"
SLR = authorization.slr_arn(ACCOUNT)


def _denied(action, principal=None, resource=STREAM) -> str | None:
    statement = {"Effect": "Deny", "Principal": principal or {"AWS": SLR}, "Action": action, "Resource": resource}
    stored = orjson.dumps({"policy": orjson.dumps({"Version": "2012-10-17", "Statement": [statement]}).decode(),
                           "revision": "1"})
    return authorization.denied_action(stored, ACCOUNT, STREAM, authorization.STREAM_ACTIONS)


@pytest.mark.parametrize("action, denied", [
    ("dynamodb:GetRecords", "dynamodb:GetRecords"),
    ("dynamodb:GetShardIterator", "dynamodb:GetShardIterator"),
    ("dynamodb:*", "dynamodb:DescribeStream"),
    (["dynamodb:PutItem", "dynamodb:Scan"], None),  # table actions: not a stream's
    ("dynamodb:ListStreams", None),
])
def test_a_stream_policy_denies_only_the_stream_actions(action, denied):
    assert _denied(action) == denied


def test_the_service_principal_and_other_streams():
    assert _denied("dynamodb:GetRecords", {"Service": authorization.SERVICE_PRINCIPAL}) == "dynamodb:GetRecords"
    assert _denied("dynamodb:GetRecords", {"AWS": f"arn:aws:iam::{ACCOUNT}:user/mallory"}) is None
    assert _denied("dynamodb:GetRecords", resource=f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/other/stream/*") \
        is None
