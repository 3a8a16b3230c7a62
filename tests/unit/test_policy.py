"""IAM policy evaluation: a table of cases, plus the AccessDenied wording."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.model.policy import (
    Policy,
    PolicyError,
    Principal,
    arn_like,
    decide,
    denied_message,
    evaluate,
    substitute,
)

ACCOUNT = "000000000000"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/events"
INDEX = f"{TABLE}/index/by_kind"
ALICE = Principal(f"arn:aws:iam::{ACCOUNT}:user/alice", ACCOUNT, "user", "alice", "AIDAALICE")
BOB = Principal(f"arn:aws:iam::{ACCOUNT}:user/bob", ACCOUNT, "user", "bob", "AIDABOB")
ROOT = Principal(f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, "root", "root", ACCOUNT)
SESSION = Principal(f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/s1", ACCOUNT, "assumed-role", "reader",
                    "AROAREADER:s1", role_arn=f"arn:aws:iam::{ACCOUNT}:role/reader")


def allow(action="dynamodb:*", resource="*", condition=None, effect="Allow", **extra):
    statement = {"Effect": effect, "Action": action, "Resource": resource, **extra}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def deny(action="dynamodb:*", resource="*", condition=None):
    return allow(action, resource, condition, effect="Deny")


LEADING_KEYS_SELF = allow(["dynamodb:GetItem", "dynamodb:Query"], TABLE, {
    "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:username}"]}})

CASES = [
    # (name, principal, action, resource, context, identity policies, resource policy, allowed)
    ("default deny", ALICE, "dynamodb:GetItem", TABLE, {}, [], None, False),
    ("allow all", ALICE, "dynamodb:GetItem", TABLE, {}, [allow()], None, True),
    ("action case-insensitive", ALICE, "dynamodb:GetItem", TABLE, {}, [allow("DynamoDB:getitem")], None, True),
    ("action wildcard", ALICE, "dynamodb:GetItem", TABLE, {}, [allow("dynamodb:Get*")], None, True),
    ("action ? wildcard", ALICE, "dynamodb:GetItem", TABLE, {}, [allow("dynamodb:?etItem")], None, True),
    ("other action", ALICE, "dynamodb:PutItem", TABLE, {}, [allow("dynamodb:Get*")], None, False),
    ("NotAction", ALICE, "dynamodb:PutItem", TABLE, {},
     [{"Statement": {"Effect": "Allow", "NotAction": "dynamodb:Delete*", "Resource": "*"}}], None, True),
    ("NotAction excludes", ALICE, "dynamodb:DeleteItem", TABLE, {},
     [{"Statement": {"Effect": "Allow", "NotAction": "dynamodb:Delete*", "Resource": "*"}}], None, False),
    ("explicit deny wins", ALICE, "dynamodb:GetItem", TABLE, {}, [allow(), deny("dynamodb:GetItem")], None, False),
    ("resource exact", ALICE, "dynamodb:GetItem", TABLE, {}, [allow(resource=TABLE)], None, True),
    ("table ARN does not cover index", ALICE, "dynamodb:Query", INDEX, {}, [allow(resource=TABLE)], None, False),
    ("index wildcard", ALICE, "dynamodb:Query", INDEX, {}, [allow(resource=f"{TABLE}/index/*")], None, True),
    ("region wildcard segment", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(resource=f"arn:aws:dynamodb:*:{ACCOUNT}:table/events")], None, True),
    ("wildcard does not cross segments", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(resource="arn:aws:dynamodb:us-*:table/events")], None, False),
    ("resource case-sensitive", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(resource=TABLE.replace("events", "Events"))], None, False),
    ("NotResource", ALICE, "dynamodb:GetItem", TABLE, {},
     [{"Statement": {"Effect": "Allow", "Action": "*", "NotResource": f"{TABLE}-secret"}}], None, True),
    ("resource with username variable", ALICE, "dynamodb:GetItem",
     f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/alice-data", {},
     [allow(resource=f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/${{aws:username}}-*")], None, True),
    ("variable for bob", BOB, "dynamodb:GetItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/alice-data", {},
     [allow(resource=f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/${{aws:username}}-*")], None, False),
    ("LeadingKeys own", ALICE, "dynamodb:GetItem", TABLE, {"dynamodb:LeadingKeys": ["alice"]},
     [LEADING_KEYS_SELF], None, True),
    ("LeadingKeys other", ALICE, "dynamodb:GetItem", TABLE, {"dynamodb:LeadingKeys": ["bob"]},
     [LEADING_KEYS_SELF], None, False),
    ("LeadingKeys mixed", ALICE, "dynamodb:Query", TABLE, {"dynamodb:LeadingKeys": ["alice", "bob"]},
     [LEADING_KEYS_SELF], None, False),
    ("ForAllValues holds for absent key", ALICE, "dynamodb:GetItem", TABLE, {}, [LEADING_KEYS_SELF], None, True),
    ("ForAnyValue fails for absent key", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(condition={"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["a"]}})], None, False),
    ("ForAnyValue one match", ALICE, "dynamodb:GetItem", TABLE, {"dynamodb:Attributes": ["x", "a"]},
     [allow(condition={"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["a"]}})], None, True),
    ("Attributes subset", ALICE, "dynamodb:GetItem", TABLE, {"dynamodb:Attributes": ["user_id", "ts"]},
     [allow(condition={"ForAllValues:StringEquals": {"dynamodb:Attributes": ["user_id", "ts", "kind"]}})], None, True),
    ("Attributes not subset", ALICE, "dynamodb:GetItem", TABLE, {"dynamodb:Attributes": ["user_id", "secret"]},
     [allow(condition={"ForAllValues:StringEquals": {"dynamodb:Attributes": ["user_id", "ts"]}})], None, False),
    ("Select equals", ALICE, "dynamodb:Query", TABLE, {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
     [allow(condition={"StringEquals": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}})], None, True),
    ("Select absent fails StringEquals", ALICE, "dynamodb:Query", TABLE, {},
     [allow(condition={"StringEquals": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}})], None, False),
    ("StringEqualsIfExists absent", ALICE, "dynamodb:Query", TABLE, {},
     [allow(condition={"StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}})], None, True),
    ("StringEqualsIfExists present other", ALICE, "dynamodb:Query", TABLE, {"dynamodb:Select": "ALL_ATTRIBUTES"},
     [allow(condition={"StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}})], None, False),
    ("StringNotEquals absent holds", ALICE, "dynamodb:PutItem", TABLE, {},
     [allow(condition={"StringNotEquals": {"dynamodb:ReturnValues": ["ALL_OLD"]}})], None, True),
    ("StringNotEquals present", ALICE, "dynamodb:PutItem", TABLE, {"dynamodb:ReturnValues": "ALL_OLD"},
     [allow(condition={"StringNotEquals": {"dynamodb:ReturnValues": ["ALL_OLD", "UPDATED_OLD"]}})], None, False),
    ("deny ReturnConsumedCapacity", ALICE, "dynamodb:GetItem", TABLE, {"dynamodb:ReturnConsumedCapacity": "TOTAL"},
     [allow(), deny(condition={"StringEquals": {"dynamodb:ReturnConsumedCapacity": "TOTAL"}})], None, False),
    ("StringLike", ALICE, "dynamodb:GetItem", TABLE, {"aws:username": "alice"},
     [allow(condition={"StringLike": {"aws:username": "al*"}})], None, True),
    ("condition key case-insensitive", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(condition={"StringEquals": {"AWS:UserName": "alice"}})], None, True),
    ("StringEqualsIgnoreCase", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(condition={"StringEqualsIgnoreCase": {"aws:username": "ALICE"}})], None, True),
    ("source ip in range", ALICE, "dynamodb:GetItem", TABLE, {"aws:SourceIp": "10.1.2.3"},
     [allow(condition={"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}})], None, True),
    ("source ip out of range", ALICE, "dynamodb:GetItem", TABLE, {"aws:SourceIp": "192.168.1.1"},
     [allow(condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})], None, False),
    ("NotIpAddress deny", ALICE, "dynamodb:GetItem", TABLE, {"aws:SourceIp": "192.168.1.1"},
     [allow(), deny(condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})], None, False),
    ("ipv6", ALICE, "dynamodb:GetItem", TABLE, {"aws:SourceIp": "2001:db8::1"},
     [allow(condition={"IpAddress": {"aws:SourceIp": "2001:db8::/32"}})], None, True),
    ("secure transport bool", ALICE, "dynamodb:GetItem", TABLE, {"aws:SecureTransport": False},
     [allow(), deny(condition={"Bool": {"aws:SecureTransport": "false"}})], None, False),
    ("secure transport true", ALICE, "dynamodb:GetItem", TABLE, {"aws:SecureTransport": True},
     [allow(), deny(condition={"Bool": {"aws:SecureTransport": "false"}})], None, True),
    ("current time before", ALICE, "dynamodb:GetItem", TABLE, {"aws:CurrentTime": "2024-01-01T00:00:00Z"},
     [allow(condition={"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}})], None, True),
    ("current time after", ALICE, "dynamodb:GetItem", TABLE, {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
     [allow(condition={"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}})], None, False),
    ("epoch date", ALICE, "dynamodb:GetItem", TABLE, {"aws:EpochTime": 1700000000},
     [allow(condition={"DateGreaterThan": {"aws:EpochTime": "2023-01-01T00:00:00Z"}})], None, True),
    ("numeric", ALICE, "dynamodb:GetItem", TABLE, {"aws:MultiFactorAuthAge": 30},
     [allow(condition={"NumericLessThanEquals": {"aws:MultiFactorAuthAge": "3600"}})], None, True),
    ("numeric unparsable", ALICE, "dynamodb:GetItem", TABLE, {"aws:MultiFactorAuthAge": "x"},
     [allow(condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}})], None, False),
    ("ArnLike principal", SESSION, "dynamodb:GetItem", TABLE, {},
     [allow(condition={"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/read*"}})], None, True),
    ("ArnNotEquals", SESSION, "dynamodb:GetItem", TABLE, {},
     [allow(condition={"ArnNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/reader"}})], None, False),
    ("Null true when absent", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(condition={"Null": {"dynamodb:Select": "true"}})], None, True),
    ("Null false when present", ALICE, "dynamodb:GetItem", TABLE, {"dynamodb:Select": "COUNT"},
     [allow(condition={"Null": {"dynamodb:Select": "true"}})], None, False),
    ("conditions are ANDed", ALICE, "dynamodb:GetItem", TABLE, {"aws:SourceIp": "10.0.0.1"},
     [allow(condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                       "StringEquals": {"aws:username": "bob"}})], None, False),
    ("variable default", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(condition={"StringEquals": {"aws:username": "${aws:PrincipalTag/team, 'alice'}"}})], None, True),
    ("missing variable never matches", ALICE, "dynamodb:GetItem", TABLE, {},
     [allow(condition={"StringEquals": {"aws:username": "${aws:PrincipalTag/team}"}})], None, False),
    ("root bypasses identity policies", ROOT, "dynamodb:DeleteTable", TABLE, {}, [], None, True),
    ("resource policy grants user", BOB, "dynamodb:GetItem", TABLE, {}, [],
     allow("dynamodb:GetItem", TABLE, Principal={"AWS": BOB.arn}), True),
    ("resource policy names other user", ALICE, "dynamodb:GetItem", TABLE, {}, [],
     allow("dynamodb:GetItem", TABLE, Principal={"AWS": BOB.arn}), False),
    ("resource policy to account only delegates", ALICE, "dynamodb:GetItem", TABLE, {}, [],
     allow("dynamodb:GetItem", TABLE, Principal={"AWS": ACCOUNT}), False),
    ("resource policy star", ALICE, "dynamodb:GetItem", TABLE, {}, [],
     allow("dynamodb:GetItem", TABLE, Principal="*"), True),
    ("resource policy deny beats identity allow", ALICE, "dynamodb:GetItem", TABLE, {}, [allow()],
     deny("dynamodb:GetItem", TABLE) | {"Statement": [{"Effect": "Deny", "Principal": {"AWS": ACCOUNT},
                                                       "Action": "dynamodb:GetItem", "Resource": TABLE}]}, False),
    ("resource policy names role for session", SESSION, "dynamodb:GetItem", TABLE, {}, [],
     allow("dynamodb:GetItem", TABLE, Principal={"AWS": SESSION.role_arn}), True),
    ("NotPrincipal deny spares named", ALICE, "dynamodb:GetItem", TABLE, {}, [allow()],
     {"Statement": [{"Effect": "Deny", "NotPrincipal": {"AWS": ALICE.arn}, "Action": "*", "Resource": "*"}]}, True),
    ("NotPrincipal deny hits others", BOB, "dynamodb:GetItem", TABLE, {}, [allow()],
     {"Statement": [{"Effect": "Deny", "NotPrincipal": {"AWS": ALICE.arn}, "Action": "*", "Resource": "*"}]}, False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_evaluation_table(case):
    _, principal, action, resource, context, policies, resource_policy, allowed = case
    decision = evaluate(principal, action, resource, context, policies, resource_policy)
    assert decision.allowed is allowed, decision


def test_messages():
    decision = evaluate(ALICE, "dynamodb:GetItem", TABLE, {}, [])
    assert denied_message(ALICE, "dynamodb:GetItem", TABLE, decision) == (
        "User: arn:aws:iam::000000000000:user/alice is not authorized to perform: dynamodb:GetItem on resource: "
        "arn:aws:dynamodb:us-east-1:000000000000:table/events because no identity-based policy allows the "
        "dynamodb:GetItem action")
    decision = evaluate(ALICE, "dynamodb:GetItem", TABLE, {}, [allow(), deny()])
    assert denied_message(ALICE, "dynamodb:GetItem", TABLE, decision).endswith(
        "table/events with an explicit deny in an identity-based policy")
    decision = evaluate(ALICE, "dynamodb:GetItem", TABLE, {}, [allow()],
                        {"Statement": {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}})
    assert decision.reason == "with an explicit deny in a resource-based policy"


def test_policies_as_text_and_compiled_are_equivalent():
    text = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:GetItem","Resource":"*"}}'
    assert evaluate(ALICE, "dynamodb:GetItem", TABLE, {}, [text]).allowed
    assert evaluate(ALICE, "dynamodb:GetItem", TABLE, {}, [Policy.parse(text)]).allowed
    assert Policy.parse(text) is Policy.parse(text)


@pytest.mark.parametrize("document, message", [
    ("{not json", "Syntax errors in policy."),
    ({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}, "Syntax errors in policy."),
    ({"Statement": [{"Effect": "Allow", "Resource": "*"}]}, "Policy statement must contain actions."),
    ({"Statement": [{"Effect": "Allow", "Action": "*", "Condition": {"StringSorta": {"a": "b"}}}]},
     "Invalid Condition type : StringSorta"),
])
def test_malformed_documents(document, message):
    with pytest.raises(PolicyError) as err:
        Policy.parse(document)
    assert str(err.value) == message


def test_substitute():
    ctx = {"aws:username": "alice"}
    assert substitute("table/${aws:username}", ctx) == "table/alice"
    assert substitute("a${*}b${?}${$}", ctx) == "a*b?$"
    assert substitute("${aws:nothing}", ctx) is None
    assert substitute("${aws:nothing, 'x'}", ctx) == "x"


# Policies whose decisions hang on context keys, for the remembered decisions below.
_REMEMBERED_POLICIES = [
    LEADING_KEYS_SELF,
    allow("dynamodb:*", "arn:aws:dynamodb:*:*:table/${aws:username}-*"),
    allow("dynamodb:GetItem", TABLE, {"DateLessThan": {"aws:CurrentTime": "2026-11-25T12:00:00Z"}}),
    deny("dynamodb:PutItem", TABLE, {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
    allow("dynamodb:Query", INDEX, {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["a", "b"]},
                                    "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}}),
]
_RESOURCE_POLICY = orjson.dumps(allow("dynamodb:GetItem", TABLE, {"Bool": {"aws:SecureTransport": "true"}},
                                      Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"})).decode()
_requests = st.tuples(
    st.sampled_from(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]),
    st.sampled_from([TABLE, INDEX, f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/alice-events"]),
    st.fixed_dictionaries({}, optional={
        "dynamodb:LeadingKeys": st.lists(st.sampled_from(["alice", "bob"]), max_size=2),
        "dynamodb:Attributes": st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
        "dynamodb:Select": st.sampled_from(["SPECIFIC_ATTRIBUTES", "ALL_ATTRIBUTES"]),
        "aws:CurrentTime": st.sampled_from(["2026-11-25T11:59:59Z", "2026-11-25T12:00:01Z"]),
        "aws:SourceIp": st.sampled_from(["10.1.2.3", "192.168.0.1"]),
        "aws:SecureTransport": st.booleans(),
    }),
    st.sampled_from([None, _RESOURCE_POLICY]),
)


@given(st.lists(_requests, min_size=1, max_size=40))
def test_remembered_decisions_match_evaluation(requests):
    """decide() remembers decisions per principal: whatever sequence of
    requests it sees, each answer is the one a fresh evaluation gives."""
    principal = Principal(ALICE.arn, ACCOUNT, "user", "alice", "AIDAALICE",
                          policies=tuple(Policy.parse(p) for p in _REMEMBERED_POLICIES))
    for action, resource, context, resource_policy in requests:
        expected = evaluate(principal, action, resource, context, None, resource_policy)
        assert decide(principal, action, resource, context, resource_policy) == expected
        assert decide(principal, action, resource, context, resource_policy) == expected


def test_remembered_decisions_change_with_a_leading_key():
    principal = Principal(ALICE.arn, ACCOUNT, "user", "alice", "AIDAALICE",
                          policies=(Policy.parse(LEADING_KEYS_SELF),))
    own = {"dynamodb:LeadingKeys": ["alice"]}
    other = {"dynamodb:LeadingKeys": ["bob"]}
    assert decide(principal, "dynamodb:GetItem", TABLE, own).allowed
    assert not decide(principal, "dynamodb:GetItem", TABLE, other).allowed
    assert decide(principal, "dynamodb:GetItem", TABLE, own).allowed
    assert len(principal.decisions) == 3  # two decisions and the policies' keys


@given(st.text(alphabet="abc/-:", max_size=12))
def test_star_matches_everything_and_literal_matches_itself(name):
    arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{name}"
    assert arn_like(arn, "*")
    assert arn_like(arn, arn)
    assert arn_like(arn, f"arn:aws:dynamodb:*:*:table/*")


# -- actions: what each operation asks for ------------------------------------------------

from shoal.auth.actions import authorize, required  # noqa: E402
from shoal.auth.errors import AccessDeniedException  # noqa: E402
from shoal.errors import ValidationException  # noqa: E402

KEYS = {("events", None): ("user_id", "ts"), ("events", "by_kind"): ("kind", "ts"), ("other", None): ("pk",)}


def keys(table, index):
    return KEYS.get((table, index))


def checks(operation, body):
    return [(c.action, c.resource, c.context) for c in required(operation, body, "us-east-1", ACCOUNT, keys)]


def test_get_item_context():
    assert checks("GetItem", {"TableName": "events", "Key": {"user_id": {"S": "alice"}, "ts": {"N": "1"}},
                              "ProjectionExpression": "#k, ts, payload.x[0]", "ExpressionAttributeNames": {"#k": "kind"},
                              "ReturnConsumedCapacity": "TOTAL"}) == [
        ("dynamodb:GetItem", TABLE, {"dynamodb:LeadingKeys": ["alice"], "dynamodb:Attributes": ["kind", "ts", "payload"],
                                     "dynamodb:ReturnConsumedCapacity": "TOTAL"})]


def test_put_update_delete_context():
    assert checks("PutItem", {"TableName": "events", "Item": {"user_id": {"S": "u"}, "n": {"N": "1"}},
                              "ReturnValues": "ALL_OLD"})[0][2] == {
        "dynamodb:ReturnValues": "ALL_OLD", "dynamodb:LeadingKeys": ["u"], "dynamodb:Attributes": ["user_id", "n"]}
    update = checks("UpdateItem", {
        "TableName": "events", "Key": {"user_id": {"S": "u"}},
        "UpdateExpression": "SET #a = if_not_exists(#a, :z) + :one, b.c = list_append(b.c, :l) REMOVE d[1], e ADD f :one",
        "ExpressionAttributeNames": {"#a": "count"}})
    assert update[0][2]["dynamodb:Attributes"] == ["user_id", "count", "b", "d", "e", "f"]
    assert checks("DeleteItem", {"TableName": "events", "Key": {"user_id": {"N": "7"}}})[0][2] == {
        "dynamodb:LeadingKeys": ["7"], "dynamodb:Attributes": ["user_id"]}


def test_query_index_and_leading_key():
    got = checks("Query", {"TableName": "events", "IndexName": "by_kind", "Select": "COUNT",
                           "KeyConditionExpression": "#k = :k AND ts > :t",
                           "ExpressionAttributeNames": {"#k": "kind"},
                           "ExpressionAttributeValues": {":k": {"S": "click"}, ":t": {"N": "0"}}})
    assert got == [("dynamodb:Query", INDEX, {"dynamodb:Select": "COUNT", "dynamodb:LeadingKeys": ["click"]})]
    legacy = checks("Query", {"TableName": "events", "KeyConditions": {
        "user_id": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "bob"}]}}})
    assert legacy[0][2] == {"dynamodb:LeadingKeys": ["bob"]}


def test_batches_transactions_and_account_operations():
    other = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/other"
    batch = checks("BatchGetItem", {"RequestItems": {
        "events": {"Keys": [{"user_id": {"S": "a"}}, {"user_id": {"S": "b"}}]},
        "other": {"Keys": [{"pk": {"S": "x"}}]}}})
    assert batch == [("dynamodb:BatchGetItem", TABLE, {"dynamodb:LeadingKeys": ["a", "b"]}),
                     ("dynamodb:BatchGetItem", other, {"dynamodb:LeadingKeys": ["x"]})]
    writes = checks("BatchWriteItem", {"RequestItems": {"events": [
        {"PutRequest": {"Item": {"user_id": {"S": "a"}, "v": {"S": "1"}}}},
        {"DeleteRequest": {"Key": {"user_id": {"S": "b"}}}}]}})
    assert writes == [("dynamodb:BatchWriteItem", TABLE,
                       {"dynamodb:Attributes": ["user_id", "v"], "dynamodb:LeadingKeys": ["a", "b"]})]
    transact = checks("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "events", "Item": {"user_id": {"S": "a"}}}},
        {"ConditionCheck": {"TableName": "other", "Key": {"pk": {"S": "x"}}, "ConditionExpression": "attribute_exists(pk)"}}]})
    assert [(a, r) for a, r, _ in transact] == [("dynamodb:PutItem", TABLE), ("dynamodb:ConditionCheckItem", other)]
    assert checks("ListTables", {}) == [("dynamodb:ListTables", "*", {})]
    assert checks("ExecuteStatement", {"Statement": 'SELECT * FROM "events"."by_kind" WHERE kind = ?',
                                       "Parameters": [{"S": "click"}]})[0][:2] == (
        "dynamodb:PartiQLSelect", INDEX)
    assert checks("ExecuteStatement", {"Statement": "INSERT INTO events VALUE {'user_id': 'a'}"})[0][:2] == (
        "dynamodb:PartiQLInsert", TABLE)


def test_authorize_denies_with_aws_message():
    alice = Principal(ALICE.arn, ACCOUNT, "user", "alice", "AIDAALICE", policies=(LEADING_KEYS_SELF,))
    body = {"TableName": "events", "Key": {"user_id": {"S": "alice"}}}
    authorize(alice, "GetItem", body, "us-east-1", ACCOUNT, keys)
    with pytest.raises(AccessDeniedException) as err:
        authorize(alice, "GetItem", {"TableName": "events", "Key": {"user_id": {"S": "bob"}}},
                  "us-east-1", ACCOUNT, keys)
    assert err.value.to_body() == {
        "__type": "com.amazon.coral.service#AccessDeniedException",
        "Message": "User: arn:aws:iam::000000000000:user/alice is not authorized to perform: dynamodb:GetItem on "
                   "resource: arn:aws:dynamodb:us-east-1:000000000000:table/events because no identity-based "
                   "policy allows the dynamodb:GetItem action"}
    assert err.value.status == 400
    authorize(ROOT, "DeleteTable", {"TableName": "events"}, "us-east-1", ACCOUNT, keys)


def test_attributes_and_leading_keys_come_from_the_operations_parsers():
    """Placeholder names spelled like clause keywords (#set, #remove) once hid
    the attribute they name from dynamodb:Attributes (the update expression
    was split on keywords as text)."""
    update = checks("UpdateItem", {
        "TableName": "events", "Key": {"user_id": {"S": "u"}, "ts": {"N": "1"}},
        "UpdateExpression": "SET #set = :v, a = :v REMOVE #remove ADD #add :n",
        "ExpressionAttributeNames": {"#set": "secret", "#remove": "other", "#add": "count"},
        "ExpressionAttributeValues": {":v": {"S": "x"}, ":n": {"N": "1"}}})
    assert update[0][2]["dynamodb:Attributes"] == ["user_id", "ts", "secret", "a", "other", "count"]
    projected = checks("GetItem", {"TableName": "events", "Key": {"user_id": {"S": "u"}},
                                   "ProjectionExpression": "#set.x[1], b , #p",
                                   "ExpressionAttributeNames": {"#set": "secret", "#p": "c"}})
    assert projected[0][2]["dynamodb:Attributes"] == ["secret", "b", "c"]
    query = checks("Query", {"TableName": "events", "KeyConditionExpression": "ts BETWEEN :a AND :b AND (#u = :u)",
                             "ExpressionAttributeNames": {"#u": "user_id"},
                             "ExpressionAttributeValues": {":u": {"S": "me"}, ":a": {"N": "1"}, ":b": {"N": "2"}}})
    assert query[0][2]["dynamodb:LeadingKeys"] == ["me"]
    # an expression the operation cannot parse is refused as it would refuse it
    with pytest.raises(ValidationException):
        checks("UpdateItem", {"TableName": "events", "Key": {"user_id": {"S": "u"}},
                              "UpdateExpression": "SET #undefined = :v", "ExpressionAttributeValues": {":v": {"S": "x"}}})


def test_restore_from_backup_needs_the_backup_and_read_write_on_its_target():
    """As DynamoDB documents: RestoreTableFromBackup on the source backup, and
    read and write permissions on the target table."""
    backup = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/events/backup/01733500000000-abcdef12"
    got = checks("RestoreTableFromBackup", {"TargetTableName": "events_restored", "BackupArn": backup})
    target = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/events_restored"
    assert got[0][:2] == ("dynamodb:RestoreTableFromBackup", backup)
    assert {(a, r) for a, r, _ in got[1:]} == {
        (f"dynamodb:{name}", target)
        for name in ("PutItem", "UpdateItem", "DeleteItem", "GetItem", "Query", "Scan", "BatchWriteItem")}
