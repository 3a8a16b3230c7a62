"""Authentication and authorization end to end: `shoal serve --auth sigv4`,
the root credentials file, `shoal iam` commands, fine-grained policies, STS."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.shoal_process import ShoalProcess, root_credentials

NO_RETRY = Config(retries={"max_attempts": 1})


def client(url, key, secret, service="dynamodb", token=None):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token, config=NO_RETRY)


def iam(data_dir, *args):
    out = subprocess.run([sys.executable, "-m", "shoal", "iam", *args, "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


def error_code(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("secured")
    server = ShoalProcess(data_dir, "--auth", "sigv4").start()
    root = client(server.url, *root_credentials(data_dir))
    root.create_table(TableName="events", KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST")
    root.put_item(TableName="events", Item={"user_id": {"S": "alice"}, "n": {"N": "1"}})
    yield server, data_dir, root
    server.stop()


def test_startup_line_states_auth_and_credentials_file(secured):
    server, data_dir, _ = secured
    assert "auth: sigv4" in server.banner
    assert (data_dir / "root-credentials").stat().st_mode & 0o077 == 0


def test_root_can_work(secured):
    _, _, root = secured
    root.put_item(TableName="events", Item={"user_id": {"S": "root"}, "n": {"N": "1"}})
    assert root.get_item(TableName="events", Key={"user_id": {"S": "root"}})["Item"]["n"] == {"N": "1"}


def test_unknown_key_and_wrong_secret(secured):
    server, _, root = secured
    code, message = error_code(client(server.url, "AKIDUNKNOWN000000000", "x").list_tables)
    assert code == "UnrecognizedClientException"
    key = root._request_signer._credentials.access_key
    code, message = error_code(client(server.url, key, "wrong-secret").list_tables)
    assert code == "InvalidSignatureException"
    assert message.startswith("The request signature we calculated does not match the signature you provided.")


def test_unsigned_request_is_rejected(secured):
    import http.client

    server, _, _ = secured
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/", body=b"{}", headers={"Content-Type": "application/x-amz-json-1.0",
                                                     "X-Amz-Target": "DynamoDB_20120810.ListTables"})
    response = conn.getresponse()
    body = json.loads(response.read())
    assert response.status == 400
    assert body["__type"].endswith("#MissingAuthenticationTokenException")


def test_fine_grained_access_by_leading_keys(secured):
    server, data_dir, root = secured
    root.put_item(TableName="events", Item={"user_id": {"S": "bob"}, "n": {"N": "2"}})
    iam(data_dir, "create-user", "--user-name", "alice")
    key = iam(data_dir, "create-access-key", "--user-name", "alice")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
        "Resource": "arn:aws:dynamodb:*:*:table/events",
        "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:username}"]}}}]}
    iam(data_dir, "put-user-policy", "--user-name", "alice", "--policy-name", "own-rows",
        "--policy-document", json.dumps(policy))
    alice = client(server.url, key["AccessKeyId"], key["SecretAccessKey"])
    assert alice.get_item(TableName="events", Key={"user_id": {"S": "alice"}})["Item"]["n"] == {"N": "1"}
    code, message = error_code(alice.get_item, TableName="events", Key={"user_id": {"S": "bob"}})
    assert code == "AccessDeniedException"
    assert "is not authorized to perform: dynamodb:GetItem on resource: " \
           "arn:aws:dynamodb:us-east-1:000000000000:table/events" in message
    code, _ = error_code(alice.list_tables)
    assert code == "AccessDeniedException"


def test_assume_role_gives_working_temporary_credentials(secured):
    server, data_dir, root = secured
    iam(data_dir, "create-user", "--user-name", "carol")
    key = iam(data_dir, "create-access-key", "--user-name", "carol")["AccessKey"]
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/carol"}, "Action": "sts:AssumeRole"}]}
    iam(data_dir, "create-role", "--role-name", "reader", "--trust-policy", json.dumps(trust))
    read_only = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:DescribeTable"], "Resource": "*"}]}
    iam(data_dir, "put-role-policy", "--role-name", "reader", "--policy-name", "read",
        "--policy-document", json.dumps(read_only))
    sts = client(server.url, key["AccessKeyId"], key["SecretAccessKey"], service="sts")
    temporary = sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/reader",
                                RoleSessionName="s1")["Credentials"]
    reader = client(server.url, temporary["AccessKeyId"], temporary["SecretAccessKey"],
                    token=temporary["SessionToken"])
    assert reader.get_item(TableName="events", Key={"user_id": {"S": "alice"}})["Item"]
    code, _ = error_code(reader.put_item, TableName="events", Item={"user_id": {"S": "x"}})
    assert code == "AccessDeniedException"


def test_off_is_refused_on_a_public_address(tmp_path):
    out = subprocess.run([sys.executable, "-m", "shoal", "serve", "--host", "0.0.0.0", "--port", "0",
                          "--auth", "off", "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--allow-unauthenticated" in out.stderr
