"""Authorization end to end: a matrix of identity policies against operations
(LeadingKeys and Attributes conditions on Query, BatchGetItem and
transactions), resource-based policies combined with identity policies,
AssumeRole trust policies, aws:SecureTransport over TLS, and the audit log."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shoal.auth.audit import AuditLog, read_lines
from tests.server.test_auth import client, error_code, iam
from tests.server.test_tls import self_signed
from tests.shoal_process import ShoalProcess, root_credentials

ACCOUNT = "000000000000"
TABLE_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/events"


def _root(server, data_dir):
    return client(server.url, *root_credentials(data_dir))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("policies")
    server = ShoalProcess(data_dir, "--auth", "sigv4").start()
    root = _root(server, data_dir)
    root.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"},
                                 {"AttributeName": "ts", "KeyType": "RANGE"}],
                      AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                                            {"AttributeName": "ts", "AttributeType": "N"}])
    for user in ("u1", "u2"):
        root.put_item(TableName="events", Item={"user_id": {"S": user}, "ts": {"N": "1"},
                                                "event_type": {"S": "play"}, "country": {"S": "FR"}})
    yield server, data_dir, root
    server.stop()


def user_with(env, name: str, *statements) -> object:
    """A new IAM user holding one inline policy; returns its dynamodb client."""
    server, data_dir, _ = env
    iam(data_dir, "create-user", "--user-name", name)
    key = iam(data_dir, "create-access-key", "--user-name", name)["AccessKey"]
    if statements:
        iam(data_dir, "put-user-policy", "--user-name", name, "--policy-name", "p", "--policy-document",
            json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
    return client(server.url, key["AccessKeyId"], key["SecretAccessKey"])


def allow(actions, resource=TABLE_ARN, condition=None) -> dict:
    statement = {"Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def denied(call, **kwargs) -> str:
    code, message = error_code(call, **kwargs)
    assert code == "AccessDeniedException", message
    return message


OWN_PARTITION = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:username}"]}}
READ_ACTIONS = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"]


# -- the matrix: LeadingKeys ---------------------------------------------------------------


def test_leading_keys_on_query(env):
    u1 = user_with(env, "u1", allow(READ_ACTIONS, condition=OWN_PARTITION))
    own = u1.query(TableName="events", KeyConditionExpression="user_id = :u",
                   ExpressionAttributeValues={":u": {"S": "u1"}})
    assert own["Count"] == 1
    message = denied(u1.query, TableName="events", KeyConditionExpression="user_id = :u",
                     ExpressionAttributeValues={":u": {"S": "u2"}})
    assert message == (f"User: arn:aws:iam::{ACCOUNT}:user/u1 is not authorized to perform: dynamodb:Query "
                       f"on resource: {TABLE_ARN} because no identity-based policy allows the dynamodb:Query action")
    denied(u1.scan, TableName="events")


def test_leading_keys_on_batch_get(env):
    u2 = user_with(env, "u2", allow(READ_ACTIONS, condition=OWN_PARTITION))
    got = u2.batch_get_item(RequestItems={"events": {"Keys": [{"user_id": {"S": "u2"}, "ts": {"N": "1"}}]}})
    assert len(got["Responses"]["events"]) == 1
    denied(u2.batch_get_item, RequestItems={"events": {"Keys": [
        {"user_id": {"S": "u2"}, "ts": {"N": "1"}}, {"user_id": {"S": "u1"}, "ts": {"N": "1"}}]}})


def test_leading_keys_on_transactions(env):
    u3 = user_with(env, "u3", allow(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"],
                                    condition=OWN_PARTITION))
    u3.transact_write_items(TransactItems=[{"Put": {"TableName": "events", "Item": {
        "user_id": {"S": "u3"}, "ts": {"N": "2"}}}}])
    got = u3.transact_get_items(TransactItems=[{"Get": {"TableName": "events", "Key": {
        "user_id": {"S": "u3"}, "ts": {"N": "2"}}}}])
    assert got["Responses"][0]["Item"]["ts"] == {"N": "2"}
    message = denied(u3.transact_write_items, TransactItems=[
        {"Put": {"TableName": "events", "Item": {"user_id": {"S": "u3"}, "ts": {"N": "3"}}}},
        {"Put": {"TableName": "events", "Item": {"user_id": {"S": "u1"}, "ts": {"N": "3"}}}}])
    assert "dynamodb:PutItem" in message
    denied(u3.transact_get_items, TransactItems=[{"Get": {"TableName": "events", "Key": {
        "user_id": {"S": "u1"}, "ts": {"N": "1"}}}}])
    denied(u3.transact_write_items, TransactItems=[{"Delete": {"TableName": "events", "Key": {
        "user_id": {"S": "u3"}, "ts": {"N": "2"}}}}])  # DeleteItem is not allowed at all


# -- the matrix: Attributes ----------------------------------------------------------------


ONLY_PUBLIC = {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["user_id", "ts", "event_type"]},
               "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}}


def test_attributes_on_query(env):
    reader = user_with(env, "attr-reader", allow(READ_ACTIONS, condition=ONLY_PUBLIC))
    got = reader.query(TableName="events", KeyConditionExpression="user_id = :u",
                       ExpressionAttributeValues={":u": {"S": "u1"}}, ProjectionExpression="user_id, event_type",
                       Select="SPECIFIC_ATTRIBUTES")
    assert got["Items"] == [{"user_id": {"S": "u1"}, "event_type": {"S": "play"}}]
    denied(reader.query, TableName="events", KeyConditionExpression="user_id = :u",
           ExpressionAttributeValues={":u": {"S": "u1"}}, ProjectionExpression="country",
           Select="SPECIFIC_ATTRIBUTES")
    denied(reader.query, TableName="events", KeyConditionExpression="user_id = :u",
           ExpressionAttributeValues={":u": {"S": "u1"}}, Select="ALL_ATTRIBUTES")


def test_attributes_on_batch_get_and_transact_get(env):
    reader = user_with(env, "attr-batch", allow(READ_ACTIONS, condition=ONLY_PUBLIC))
    key = {"user_id": {"S": "u1"}, "ts": {"N": "1"}}
    got = reader.batch_get_item(RequestItems={"events": {"Keys": [key], "ProjectionExpression": "event_type"}})
    assert got["Responses"]["events"] == [{"event_type": {"S": "play"}}]
    denied(reader.batch_get_item, RequestItems={"events": {"Keys": [key], "ProjectionExpression": "country"}})
    denied(reader.transact_get_items, TransactItems=[{"Get": {"TableName": "events", "Key": key,
                                                              "ProjectionExpression": "country"}}])


def test_attributes_on_transact_write(env):
    writer = user_with(env, "attr-writer", allow(["dynamodb:PutItem", "dynamodb:UpdateItem"], condition={
        "ForAllValues:StringEquals": {"dynamodb:Attributes": ["user_id", "ts", "event_type"]}}))
    writer.transact_write_items(TransactItems=[{"Update": {
        "TableName": "events", "Key": {"user_id": {"S": "u9"}, "ts": {"N": "1"}},
        "UpdateExpression": "SET event_type = :e", "ExpressionAttributeValues": {":e": {"S": "stop"}}}}])
    denied(writer.transact_write_items, TransactItems=[{"Update": {
        "TableName": "events", "Key": {"user_id": {"S": "u9"}, "ts": {"N": "1"}},
        "UpdateExpression": "SET country = :c", "ExpressionAttributeValues": {":c": {"S": "DE"}}}}])


@pytest.mark.parametrize("operation, kwargs", [
    ("describe_table", {"TableName": "events"}),
    ("list_tables", {}),
    ("delete_table", {"TableName": "events"}),
    ("put_item", {"TableName": "events", "Item": {"user_id": {"S": "x"}, "ts": {"N": "1"}}}),
    ("get_item", {"TableName": "events", "Key": {"user_id": {"S": "u1"}, "ts": {"N": "1"}}}),
])
def test_a_user_without_policies_may_do_nothing(env, operation, kwargs):
    nobody = user_with(env, f"nobody-{operation.replace('_', '-')}")
    denied(getattr(nobody, operation), **kwargs)


def test_a_malformed_item_is_refused_as_such_before_authorization(env):
    """PutItem's item values are checked once, after authorization; a request
    the API model refuses must still get the model's error, not AccessDenied."""
    server, data_dir, _ = env
    iam(data_dir, "create-user", "--user-name", "nobody-malformed")
    key = iam(data_dir, "create-access-key", "--user-name", "nobody-malformed")["AccessKey"]
    unchecked = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1",
                             aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                             config=Config(parameter_validation=False, retries={"max_attempts": 0}))
    code, message = error_code(unchecked.put_item, TableName="events",
                               Item={"user_id": {"S": "x"}, "ts": {"N": "1"}, "bad": {"S": 5}})
    assert (code, message) == (
        "SerializationException",
        "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String")
    denied(unchecked.put_item, TableName="events", Item={"user_id": {"S": "x"}, "ts": {"N": "1"}})


def test_explicit_deny_beats_allow(env):
    user = user_with(env, "denied-delete", allow("dynamodb:*", resource="*"),
                     {"Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": TABLE_ARN})
    assert user.describe_table(TableName="events")["Table"]["TableName"] == "events"
    message = denied(user.delete_table, TableName="events")
    assert message.endswith("with an explicit deny in an identity-based policy")


# -- resource-based policies ---------------------------------------------------------------


def _policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_resource_policy_operations(env):
    server, data_dir, root = env
    root.create_table(TableName="rbp-ops", BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/rbp-ops"
    assert error_code(root.get_resource_policy, ResourceArn=arn) == (
        "PolicyNotFoundException", f"Resource-based policy not found for the provided ResourceArn: {arn}")
    document = _policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "dynamodb:GetItem",
                        "Resource": arn})
    first = root.put_resource_policy(ResourceArn=arn, Policy=document)["RevisionId"]
    assert root.put_resource_policy(ResourceArn=arn, Policy=document)["RevisionId"] == first  # a no-op
    got = root.get_resource_policy(ResourceArn=arn)
    assert (got["Policy"], got["RevisionId"]) == (document, first)
    second_doc = _policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "dynamodb:Query",
                          "Resource": arn})
    code, message = error_code(root.put_resource_policy, ResourceArn=arn, Policy=second_doc,
                               ExpectedRevisionId="NO_POLICY")
    assert (code, message) == ("PolicyNotFoundException",
                               "Resource-based policy not found for the provided ResourceArn: Requested policy "
                               "update expecting none to be present for table rbp-ops, but a policy exists with "
                               f"revision id {first}.")
    second = root.put_resource_policy(ResourceArn=arn, Policy=second_doc, ExpectedRevisionId=first)["RevisionId"]
    assert int(second) > int(first)
    assert error_code(root.delete_resource_policy, ResourceArn=arn, ExpectedRevisionId=first) == (
        "PolicyNotFoundException",
        f"Resource-based policy not found for the provided ResourceArn: Requested update for policy with revision "
        f"id {first}, but the policy associated to target table rbp-ops has revision id {second}.")
    assert root.delete_resource_policy(ResourceArn=arn)["RevisionId"] == second
    assert "RevisionId" not in root.delete_resource_policy(ResourceArn=arn)  # idempotent
    assert error_code(root.get_resource_policy, ResourceArn=arn + "x") == (
        "ResourceNotFoundException", "Requested resource not found: Table: rbp-opsx not found")
    assert error_code(root.get_resource_policy, ResourceArn="rbp-ops") == (
        "ValidationException", "One or more parameter values were invalid: ARNs must start with 'arn:': rbp-ops")
    assert error_code(root.put_resource_policy, ResourceArn=arn + "/index/i", Policy=document) == (
        "ValidationException", "One or more parameter values were invalid: Invalid resource arn provided, only "
                               f"table or stream is accepted. Provided resource arn: {arn}/index/i")
    code, message = error_code(root.put_resource_policy, ResourceArn=arn, Policy="{not json")
    assert code == "ValidationException" and "Invalid policy document" in message


def test_resource_policy_alone_allows(env):
    _, _, root = env
    reader = user_with(env, "rbp-reader")  # no identity policy at all
    key = {"user_id": {"S": "u1"}, "ts": {"N": "1"}}
    denied(reader.get_item, TableName="events", Key=key)
    root.put_resource_policy(ResourceArn=TABLE_ARN, Policy=_policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/rbp-reader"},
         "Action": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": [TABLE_ARN, TABLE_ARN + "/index/*"]},
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/rbp-denied"},
         "Action": "dynamodb:*", "Resource": TABLE_ARN}))
    try:
        assert reader.get_item(TableName="events", Key=key)["Item"]["user_id"] == {"S": "u1"}
        denied(reader.put_item, TableName="events", Item=key)  # neither policy allows it
        # A resource policy naming only the account delegates: the identity must allow too.
        root.put_resource_policy(ResourceArn=TABLE_ARN, Policy=_policy(
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "dynamodb:GetItem", "Resource": TABLE_ARN}))
        denied(reader.get_item, TableName="events", Key=key)
    finally:
        root.delete_resource_policy(ResourceArn=TABLE_ARN)


def test_deny_in_resource_policy_beats_identity_allow(env):
    _, _, root = env
    user = user_with(env, "rbp-denied", allow("dynamodb:*", resource="*"))
    key = {"user_id": {"S": "u1"}, "ts": {"N": "1"}}
    assert user.get_item(TableName="events", Key=key)["Item"]
    root.put_resource_policy(ResourceArn=TABLE_ARN, Policy=_policy(
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/rbp-denied"},
         "Action": "dynamodb:GetItem", "Resource": TABLE_ARN}))
    try:
        message = denied(user.get_item, TableName="events", Key=key)
        assert message == (f"User: arn:aws:iam::{ACCOUNT}:user/rbp-denied is not authorized to perform: "
                           f"dynamodb:GetItem on resource: {TABLE_ARN} with an explicit deny in a resource-based policy")
        assert user.query(TableName="events", KeyConditionExpression="user_id = :u",
                          ExpressionAttributeValues={":u": {"S": "u1"}})["Count"] == 1
    finally:
        root.delete_resource_policy(ResourceArn=TABLE_ARN)
    assert user.get_item(TableName="events", Key=key)["Item"]


def test_resource_policy_deny_applies_to_root_except_delete(env):
    _, _, root = env
    root.create_table(TableName="rbp-root", BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                      ResourcePolicy=_policy({"Effect": "Deny", "Principal": "*", "Action": "dynamodb:*",
                                              "Resource": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/rbp-root"}))
    arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/rbp-root"
    message = denied(root.put_item, TableName="rbp-root", Item={"pk": {"S": "a"}})
    assert message.endswith("with an explicit deny in a resource-based policy")
    root.delete_resource_policy(ResourceArn=arn)  # the root user can always remove it
    root.put_item(TableName="rbp-root", Item={"pk": {"S": "a"}})


def test_create_table_with_a_policy_needs_put_resource_policy(env):
    creator = user_with(env, "creator", allow("dynamodb:CreateTable", resource="*"))
    document = _policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "dynamodb:GetItem",
                        "Resource": "*"})
    message = denied(creator.create_table, TableName="by-creator", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], ResourcePolicy=document)
    assert "dynamodb:PutResourcePolicy" in message


# -- AssumeRole and trust policies ---------------------------------------------------------


def test_assume_role_trust_allows_one_user_only(env):
    server, data_dir, _ = env
    keys = {}
    for name in ("trusted", "untrusted"):
        iam(data_dir, "create-user", "--user-name", name)
        keys[name] = iam(data_dir, "create-access-key", "--user-name", name)["AccessKey"]
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/trusted"}, "Action": "sts:AssumeRole"}]}
    iam(data_dir, "create-role", "--role-name", "analyst", "--trust-policy", json.dumps(trust))
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/analyst"

    def sts(name):
        return client(server.url, keys[name]["AccessKeyId"], keys[name]["SecretAccessKey"], service="sts")

    granted = sts("trusted").assume_role(RoleArn=role_arn, RoleSessionName="work")
    assert granted["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/analyst/work"
    code, message = error_code(sts("untrusted").assume_role, RoleArn=role_arn, RoleSessionName="work")
    assert code == "AccessDenied"
    assert message == (f"User: arn:aws:iam::{ACCOUNT}:user/untrusted is not authorized to perform: "
                       f"sts:AssumeRole on resource: {role_arn}")
    records = read_lines(data_dir / "audit.log")
    assume = [r for r in records if r["action"] == "sts:AssumeRole" and r["resource"] == role_arn]
    assert [(r["principal"].rsplit("/", 1)[-1], r["decision"]) for r in assume] == [
        ("trusted", "allow"), ("untrusted", "deny")]
    assert all(r["request_id"] and r["source"] == "127.0.0.1" for r in assume)


# -- the audit log -------------------------------------------------------------------------


def test_audit_log_records_denials_failures_and_iam_changes(env):
    server, data_dir, _ = env
    before = len(read_lines(data_dir / "audit.log"))
    auditee = user_with(env, "auditee", allow("dynamodb:GetItem"))
    denied(auditee.delete_table, TableName="events")
    error_code(client(server.url, "AKIAUNKNOWN000000000", "x").list_tables)
    auditee.get_item(TableName="events", Key={"user_id": {"S": "u1"}, "ts": {"N": "1"}})  # allowed: not logged
    records = read_lines(data_dir / "audit.log")[before:]
    iam_changes = [(r["action"], r["resource"], r["decision"]) for r in records if r["action"].startswith("iam:")]
    assert iam_changes == [
        ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/auditee", "allow"),
        ("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/auditee", "allow"),
        ("iam:PutUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/auditee", "allow"),
    ]
    requests = [r for r in records if not r["action"].startswith("iam:")]
    assert len(requests) == 2
    denial, failure = requests
    assert denial["principal"] == f"arn:aws:iam::{ACCOUNT}:user/auditee"
    assert (denial["action"], denial["resource"], denial["decision"]) == ("dynamodb:DeleteTable", TABLE_ARN, "deny")
    assert denial["reason"] == "because no identity-based policy allows the dynamodb:DeleteTable action"
    assert denial["source"] == "127.0.0.1" and len(denial["request_id"]) == 52
    assert denial["time"].endswith("Z") and "T" in denial["time"]
    assert (failure["principal"], failure["action"], failure["decision"]) == (
        "AKIAUNKNOWN000000000", "dynamodb:ListTables", "deny")
    assert failure["reason"] == "UnrecognizedClientException: The security token included in the request is invalid."


def test_audit_log_rotates_by_size(tmp_path):
    path = tmp_path / "audit.log"
    writers = [AuditLog(path, max_bytes=2000, backups=2) for _ in range(2)]  # as two worker processes would
    for n in range(100):
        writers[n % 2].record(principal="p", source="s", action="a", resource="r", decision="deny",
                              reason=f"line {n}", request_id=str(n))
    for writer in writers:
        writer.close()
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("audit.log") and not p.name.endswith(".lock"))
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all(p.stat().st_size < 2000 + 200 for p in tmp_path.glob("audit.log*"))
    lines = [r for name in ("audit.log.2", "audit.log.1", "audit.log") for r in read_lines(tmp_path / name)]
    numbers = [int(r["request_id"]) for r in lines]
    assert numbers == sorted(numbers) and numbers[-1] == 99  # whole lines, in order, oldest dropped
    assert (path.stat().st_mode & 0o077) == 0


# -- aws:SecureTransport -------------------------------------------------------------------


def test_secure_transport_condition_over_tls(tmp_path):
    cert, key = self_signed(tmp_path)
    data_dir = tmp_path / "data"
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:ListTables", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    servers = []
    try:
        for extra in (("--tls-cert", str(cert), "--tls-key", str(key)), ()):
            server = ShoalProcess(data_dir, "--auth", "sigv4", *extra).start()
            servers.append(server)
            if len(servers) == 1:
                iam(data_dir, "create-user", "--user-name", "tls-only")
                access = iam(data_dir, "create-access-key", "--user-name", "tls-only")["AccessKey"]
                iam(data_dir, "put-user-policy", "--user-name", "tls-only", "--policy-name", "p",
                    "--policy-document", policy)
                url = server.url.replace("127.0.0.1", "localhost")
                import boto3

                secure = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", verify=str(cert),
                                      aws_access_key_id=access["AccessKeyId"],
                                      aws_secret_access_key=access["SecretAccessKey"])
                assert "TableNames" in secure.list_tables()
            else:
                plain = client(server.url, access["AccessKeyId"], access["SecretAccessKey"])
                message = denied(plain.list_tables)
                assert message.endswith("with an explicit deny in an identity-based policy")
            server.stop()
    finally:
        for server in servers:
            server.stop()


def test_deny_on_an_attribute_holds_whatever_its_placeholder_is_called(env):
    """A Deny on writing one attribute (ForAnyValue on dynamodb:Attributes) once
    missed an UpdateItem that named it through a placeholder spelled like an
    update clause keyword (#set)."""
    user = user_with(env, "no-country", allow("dynamodb:*"), {
        "Effect": "Deny", "Action": "dynamodb:UpdateItem", "Resource": TABLE_ARN,
        "Condition": {"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["country"]}}})
    key = {"user_id": {"S": "u1"}, "ts": {"N": "1"}}
    for expression in ("SET #set = :v", "SET #remove = :v", "SET event_type = :v, #add = :v"):
        denied(user.update_item, TableName="events", Key=key, UpdateExpression=expression,
               ExpressionAttributeNames={"#set" if "#set" in expression else
                                         "#remove" if "#remove" in expression else "#add": "country"},
               ExpressionAttributeValues={":v": {"S": "XX"}})
    root = env[2]
    assert root.get_item(TableName="events", Key=key)["Item"]["country"] == {"S": "FR"}
    user.update_item(TableName="events", Key=key, UpdateExpression="SET #set = :v",
                     ExpressionAttributeNames={"#set": "event_type"}, ExpressionAttributeValues={":v": {"S": "stop"}})


@pytest.mark.parametrize("name", [
    "arn:aws-cn:dynamodb:us-east-1:000000000000:table/events",
    "arn:other:dynamodb:us-east-1:000000000000:table/events",
    "arn:aws:dynamodb:us-east-1:000000000000:table/events",
])
def test_a_table_arn_is_authorized_as_the_table_it_reads(env, name):
    """A TableName given as an ARN names the table only in the form DynamoDB
    gives it (arn:aws:...); an ARN of another partition once read the table
    while the policy was checked against a resource no Deny named."""
    user = user_with(env, "no-get-" + name.split(":")[1], allow("dynamodb:*", resource="*"),
                     {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:*:*:table/events"})
    with pytest.raises(ClientError) as err:
        user.get_item(TableName=name, Key={"user_id": {"S": "u1"}, "ts": {"N": "1"}})
    assert err.value.response["Error"]["Code"] in ("AccessDeniedException", "ResourceNotFoundException")
    assert "Item" not in err.value.response


def test_control_plane_and_tags_refuse_another_partitions_arn(env):
    """DescribeTable, TagResource and ListTagsOfResource resolve a table ARN
    only in DynamoDB's own form, the form authorization checks."""
    user = user_with(env, "no-describe", allow("dynamodb:*", resource="*"),
                     {"Effect": "Deny", "Action": ["dynamodb:DescribeTable", "dynamodb:TagResource",
                                                   "dynamodb:ListTagsOfResource"],
                      "Resource": "arn:aws:dynamodb:*:*:table/events"})
    foreign = "arn:aws-cn:dynamodb:us-east-1:000000000000:table/events"
    for call, kwargs in ((user.describe_table, {"TableName": foreign}),
                         (user.tag_resource, {"ResourceArn": foreign, "Tags": [{"Key": "k", "Value": "v"}]}),
                         (user.list_tags_of_resource, {"ResourceArn": foreign})):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert err.value.response["Error"]["Code"] in ("AccessDeniedException", "ResourceNotFoundException")
    assert env[2].list_tags_of_resource(ResourceArn=TABLE_ARN)["Tags"] == []


def test_get_records_is_authorized_on_the_stream_its_iterator_reads(env):
    """GetRecords was checked against any stream of the account (the iterator
    was not read), so a Deny on one table's stream did not hold and an Allow
    on it did not allow."""
    root = env[2]
    root.update_table(TableName="events", StreamSpecification={"StreamEnabled": True,
                                                               "StreamViewType": "NEW_IMAGE"})
    root.put_item(TableName="events", Item={"user_id": {"S": "s1"}, "ts": {"N": "1"}})
    stream_arn = root.describe_table(TableName="events")["Table"]["LatestStreamArn"]
    streams = lambda name, *statements: _streams_client(env, name, *statements)  # noqa: E731
    allowed = streams("streams-allowed", allow(["dynamodb:DescribeStream", "dynamodb:GetShardIterator",
                                                "dynamodb:GetRecords"], resource=TABLE_ARN + "/stream/*"))
    denied_user = streams("streams-denied", allow("dynamodb:*", resource="*"),
                          {"Effect": "Deny", "Action": "dynamodb:GetRecords", "Resource": TABLE_ARN + "/stream/*"})
    shard = root_streams(env).describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    for client_ in (allowed, denied_user):
        iterator = client_.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        if client_ is allowed:
            assert client_.get_records(ShardIterator=iterator)["Records"]
        else:
            with pytest.raises(ClientError) as err:
                client_.get_records(ShardIterator=iterator)
            assert err.value.response["Error"]["Code"] == "AccessDeniedException"
            assert stream_arn in err.value.response["Error"]["Message"]
    root.update_table(TableName="events", StreamSpecification={"StreamEnabled": False})


def _streams_client(env, name, *statements):
    dynamodb = user_with(env, name, *statements)
    credentials = dynamodb._request_signer._credentials
    return client(env[0].url, credentials.access_key, credentials.secret_key, service="dynamodbstreams")


def root_streams(env):
    return client(env[0].url, *root_credentials(env[1]), service="dynamodbstreams")
