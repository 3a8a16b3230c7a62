"""Which resource-based policies deny replication (``shoal.replication.authorization``):
only an explicit Deny of a replication action to the role, the service principal or
the account (which the role belongs to), on the table."""

from __future__ import annotations

import orjson
import pytest

from shoal.replication import authorization

ACCOUNT = "000000000000"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/events"
SLR = authorization.slr_arn(ACCOUNT)


def _denied(*statements) -> str | None:
    stored = orjson.dumps({"policy": orjson.dumps({"Version": "2012-10-17", "Statement": list(statements)}).decode(),
                           "revision": "1"})
    return authorization.denied_action(stored, ACCOUNT, TABLE)


def _statement(effect: str, principal, action, resource=TABLE, **more) -> dict:
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource, **more}


def test_the_role_arn_is_the_service_linked_role_of_the_account():
    assert SLR == ("arn:aws:iam::000000000000:role/aws-service-role/replication.dynamodb.amazonaws.com/"
                   "AWSServiceRoleForDynamoDBReplication")


@pytest.mark.parametrize("statement, action", [
    (_statement("Deny", {"AWS": SLR}, "dynamodb:PutItem"), "dynamodb:PutItem"),
    (_statement("Deny", {"AWS": SLR}, "dynamodb:Get*"), "dynamodb:GetItem"),
    (_statement("Deny", {"Service": "replication.dynamodb.amazonaws.com"}, "dynamodb:*", "*"), "dynamodb:GetItem"),
    (_statement("Deny", "*", "dynamodb:GetRecords"), "dynamodb:GetRecords"),
    (_statement("Deny", {"AWS": ACCOUNT}, "dynamodb:WriteDataForReplication"), "dynamodb:WriteDataForReplication"),
    (_statement("Deny", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "dynamodb:Scan"), "dynamodb:Scan"),
    (_statement("Deny", {"AWS": SLR}, "dynamodb:UpdateItem", "arn:aws:dynamodb:*:*:table/event?"),
     "dynamodb:UpdateItem"),
    (_statement("Deny", {"AWS": SLR}, "dynamodb:DeleteItem",
                Condition={"StringEquals": {"aws:PrincipalArn": SLR}}), "dynamodb:DeleteItem"),
])
def test_an_explicit_deny_of_a_replication_action_denies(statement, action):
    assert _denied(statement) == action


@pytest.mark.parametrize("statement", [
    _statement("Allow", {"AWS": SLR}, "dynamodb:*"),
    _statement("Deny", {"AWS": f"arn:aws:iam::{ACCOUNT}:user/mallory"}, "dynamodb:*", "*"),
    _statement("Deny", {"AWS": SLR}, ["dynamodb:DeleteTable", "dynamodb:TagResource", "dynamodb:Query"]),
    _statement("Deny", {"AWS": SLR}, "dynamodb:PutItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/other"),
    _statement("Deny", {"Service": "lambda.amazonaws.com"}, "dynamodb:*"),
    _statement("Deny", {"AWS": SLR}, "dynamodb:PutItem", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
    _statement("Deny", {"AWS": "arn:aws:iam::111122223333:root"}, "dynamodb:*"),
])
def test_other_policies_deny_nothing(statement):
    assert _denied(statement) is None


def test_a_decision_is_cached_by_the_stored_bytes():
    authorization.denied_action.cache_clear()
    statement = _statement("Deny", {"AWS": SLR}, "dynamodb:PutItem")
    for _ in range(5):
        assert _denied(statement) == "dynamodb:PutItem"
    info = authorization.denied_action.cache_info()
    assert (info.misses, info.hits) == (1, 4)
