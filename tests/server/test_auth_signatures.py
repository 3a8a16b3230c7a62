"""SigV4 end to end against `shoal serve --auth sigv4`: every way a signature
can be wrong, clock skew, presigned URLs, temporary credentials and their
expiry.  Requests are signed by botocore and sent raw, so a test can change
one thing after signing."""

from __future__ import annotations

import datetime
import http.client
import json
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.server.test_auth import client, error_code, iam
from tests.shoal_process import ShoalProcess, root_credentials

MISMATCH = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
TARGET = "DynamoDB_20120810.ListTables"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("sigv4")
    proc = ShoalProcess(data_dir, "--auth", "sigv4").start()
    proc.key, proc.secret = root_credentials(data_dir)
    yield proc
    proc.stop()


def signed(server, *, body=b"{}", target=TARGET, region="us-east-1", service="dynamodb", key=None,
           secret=None, token=None, when=None) -> AWSRequest:
    """A ListTables request signed as botocore signs it (optionally at another time)."""
    request = AWSRequest(method="POST", url=server.url + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
    signer = SigV4Auth(Credentials(key or server.key, secret or server.secret, token), service, region)
    _sign_at(signer, request, when)
    return request


def _sign_at(signer, request, when) -> None:
    if when is None:
        signer.add_auth(request)
        return
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda remove_tzinfo=True: when
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original


def send(server, request: AWSRequest, path: str = "/") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    conn.request("POST", path, body=body, headers=dict(request.headers.items()))
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, (json.loads(data) if data else {})


def error_of(reply) -> tuple[int, str, str]:
    status, body = reply
    return status, body.get("__type", "").rsplit("#", 1)[-1], body.get("message", body.get("Message"))


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def test_a_correct_signature_is_accepted(server):
    status, body = send(server, signed(server))
    assert status == 200 and "TableNames" in body


def test_authorization_parameters_separated_by_spaces_alone(server):
    request = signed(server)
    request.headers.replace_header("Authorization", request.headers["Authorization"].replace(",", ""))
    status, body = send(server, request)
    assert status == 200 and "TableNames" in body


def test_changed_body(server):
    request = signed(server)
    request.data = b'{"Limit": 5}'
    assert error_of(send(server, request)) == (400, "InvalidSignatureException", MISMATCH)


def test_changed_signed_header(server):
    request = signed(server)
    request.headers.replace_header("X-Amz-Target", "DynamoDB_20120810.DescribeLimits")
    assert error_of(send(server, request)) == (400, "InvalidSignatureException", MISMATCH)


def test_changed_date(server):
    request = signed(server)
    stamp = request.headers["X-Amz-Date"]
    signed_at = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    changed = signed_at + datetime.timedelta(seconds=1)
    if changed.strftime("%Y%m%d") != stamp[:8]:  # signed at 23:59:59: stay on the scope's day
        changed = signed_at - datetime.timedelta(seconds=1)
    request.headers.replace_header("X-Amz-Date", changed.strftime("%Y%m%dT%H%M%SZ"))
    assert error_of(send(server, request)) == (400, "InvalidSignatureException", MISMATCH)


def test_changed_region_in_the_scope(server):
    request = signed(server)
    request.headers.replace_header("Authorization",
                                   request.headers["Authorization"].replace("/us-east-1/", "/eu-west-1/"))
    assert error_of(send(server, request)) == (400, "InvalidSignatureException", MISMATCH)


def test_signed_for_another_region_is_valid_and_scoped_there(server):
    status, body = send(server, signed(server, region="eu-west-1"))
    assert status == 200 and "TableNames" in body


def test_signed_for_another_service(server):
    assert error_of(send(server, signed(server, service="sts"))) == (
        400, "InvalidSignatureException", "Credential should be scoped to correct service: 'dynamodb'.")


def test_wrong_secret(server):
    assert error_of(send(server, signed(server, secret="not-the-secret"))) == (
        400, "InvalidSignatureException", MISMATCH)


def test_unknown_key(server):
    assert error_of(send(server, signed(server, key="AKIAUNKNOWNKEY000000"))) == (
        400, "UnrecognizedClientException", "The security token included in the request is invalid.")


def test_missing_signature(server):
    request = signed(server)
    del request.headers["Authorization"]
    assert error_of(send(server, request)) == (
        400, "MissingAuthenticationTokenException", "Request is missing Authentication Token")


def test_incomplete_authorization_header(server):
    request = signed(server)
    header = request.headers["Authorization"]
    broken = header.split(", Signature=")[0]
    request.headers.replace_header("Authorization", broken)
    status, kind, message = error_of(send(server, request))
    assert (status, kind) == (400, "IncompleteSignatureException")
    assert message == f"Authorization header requires 'Signature' parameter. Authorization={broken}"


def test_token_on_a_long_term_key(server):
    assert error_of(send(server, signed(server, token="bogus"))) == (
        400, "UnrecognizedClientException", "The security token included in the request is invalid")


# -- clock skew -------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [-4, 4])
def test_within_five_minutes_of_the_clock(server, minutes):
    request = signed(server, when=utcnow() + datetime.timedelta(minutes=minutes))
    assert send(server, request)[0] == 200


def test_signed_too_long_ago(server):
    request = signed(server, when=utcnow() - datetime.timedelta(minutes=6))
    status, kind, message = error_of(send(server, request))
    assert (status, kind) == (400, "InvalidSignatureException")
    stamp = request.headers["X-Amz-Date"]
    assert message.startswith(f"Signature expired: {stamp} is now earlier than ")
    assert message.endswith(" - 5 min.)")


def test_signed_in_the_future(server):
    request = signed(server, when=utcnow() + datetime.timedelta(minutes=6))
    status, kind, message = error_of(send(server, request))
    assert (status, kind) == (400, "InvalidSignatureException")
    stamp = request.headers["X-Amz-Date"]
    assert message.startswith(f"Signature not yet current: {stamp} is still later than ")
    assert message.endswith(" + 5 min.)")


# -- presigned URLs ---------------------------------------------------------------------------


class _BodyQueryAuth(SigV4QueryAuth):
    """botocore's presigner, keeping the JSON body as the body (botocore
    would move form bodies into the query) and signing its hash."""

    def _modify_request_before_signing(self, request):
        data, request.data = request.data, b""
        super()._modify_request_before_signing(request)
        request.data = data


def presigned(server, expires=300, when=None, body=b"{}") -> AWSRequest:
    request = AWSRequest(method="POST", url=server.url + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET})
    _sign_at(_BodyQueryAuth(Credentials(server.key, server.secret), "dynamodb", "us-east-1", expires),
             request, when)
    return request


def _path(request: AWSRequest) -> str:
    parts = urlsplit(request.url)
    return f"{parts.path}?{parts.query}"


def test_presigned_url_is_accepted(server):
    request = presigned(server)
    assert "Authorization" not in request.headers
    status, body = send(server, request, _path(request))
    assert status == 200 and "TableNames" in body


def test_tampered_presigned_url_is_refused(server):
    request = presigned(server)
    path = _path(request).replace("X-Amz-Expires=300", "X-Amz-Expires=600")
    assert error_of(send(server, request, path)) == (400, "InvalidSignatureException", MISMATCH)


def test_presigned_url_with_another_body_is_refused(server):
    request = presigned(server)
    request.data = b'{"Limit": 1}'
    assert error_of(send(server, request, _path(request))) == (400, "InvalidSignatureException", MISMATCH)


def test_expired_presigned_url_is_refused(server):
    request = presigned(server, expires=60, when=utcnow() - datetime.timedelta(minutes=2))
    status, kind, message = error_of(send(server, request, _path(request)))
    assert (status, kind) == (400, "InvalidSignatureException")
    assert message.startswith("Signature expired: ") and message.endswith(" - 60 sec.)")


# -- temporary credentials --------------------------------------------------------------------


def _assume(server, data_dir, user, role) -> dict:
    iam(data_dir, "create-user", "--user-name", user)
    key = iam(data_dir, "create-access-key", "--user-name", user)["AccessKey"]
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{user}"},
        "Action": "sts:AssumeRole"}]}
    iam(data_dir, "create-role", "--role-name", role, "--trust-policy", json.dumps(trust))
    iam(data_dir, "put-role-policy", "--role-name", role, "--policy-name", "all", "--policy-document",
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "dynamodb:ListTables", "Resource": "*"}]}))
    sts = client(server.url, key["AccessKeyId"], key["SecretAccessKey"], service="sts")
    return sts.assume_role(RoleArn=f"arn:aws:iam::000000000000:role/{role}", RoleSessionName="session",
                           DurationSeconds=900)["Credentials"]


def test_temporary_credentials_need_their_token(server):
    temporary = _assume(server, server.data_dir, "tina", "lister")
    ok = client(server.url, temporary["AccessKeyId"], temporary["SecretAccessKey"],
                token=temporary["SessionToken"])
    assert "TableNames" in ok.list_tables()
    no_token = client(server.url, temporary["AccessKeyId"], temporary["SecretAccessKey"])
    assert error_code(no_token.list_tables) == (
        "UnrecognizedClientException", "The security token included in the request is invalid")
    wrong = client(server.url, temporary["AccessKeyId"], temporary["SecretAccessKey"], token="x" + temporary["SessionToken"])
    assert error_code(wrong.list_tables)[0] == "UnrecognizedClientException"


def test_temporary_credentials_expire(tmp_path, monkeypatch):
    """Credentials for 900 s; then the server (and the signer) are moved 1000 s
    on with SHOAL_AUTH_CLOCK_OFFSET, read at start-up."""
    data_dir = tmp_path / "d"
    first = ShoalProcess(data_dir, "--auth", "sigv4").start()
    try:
        temporary = _assume(first, data_dir, "una", "temp")
        now = client(first.url, temporary["AccessKeyId"], temporary["SecretAccessKey"],
                     token=temporary["SessionToken"])
        assert "TableNames" in now.list_tables()
    finally:
        first.stop()
    monkeypatch.setenv("SHOAL_AUTH_CLOCK_OFFSET", "1000")
    later = ShoalProcess(data_dir, "--auth", "sigv4").start()
    future = utcnow() + datetime.timedelta(seconds=1000)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: future)
    try:
        expired = client(later.url, temporary["AccessKeyId"], temporary["SecretAccessKey"],
                         token=temporary["SessionToken"])
        assert error_code(expired.list_tables) == (
            "ExpiredTokenException", "The security token included in the request is expired")
    finally:
        later.stop()
