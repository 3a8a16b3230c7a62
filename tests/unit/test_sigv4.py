"""SigV4 verification against signatures made by botocore's own signers."""

from __future__ import annotations

import datetime
import hmac
from dataclasses import dataclass
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.auth import sigv4
from shoal.auth.errors import (
    ExpiredTokenException,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from shoal.server.http import Request

ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = 1370772315.0  # 2013-06-09T10:05:15Z
BODY = b'{"TableName":"events","Key":{"user_id":{"S":"u1"}}}'
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass
class Temp:
    secret: str
    session_token: str | None
    expires: float | None


KEYS = {ACCESS_KEY: SECRET, "ASIATEMP": Temp("tempsecret", "TOKEN123", NOW + 3600)}


def lookup(access_key):
    return KEYS.get(access_key)


def _freeze(epoch: float):
    """botocore reads the clock through datetime.datetime.utcnow/now."""
    fixed = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None)

    class Frozen(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return fixed

        @classmethod
        def now(cls, tz=None):
            return fixed.replace(tzinfo=datetime.timezone.utc) if tz else fixed

    return mock.patch("botocore.auth.datetime.datetime", Frozen)


def signed(body=BODY, *, url="http://localhost:8000/", key=ACCESS_KEY, secret=SECRET, token=None,
           region="us-east-1", service="dynamodb", at=NOW, headers=None) -> Request:
    """A Request as the server would receive it, signed by botocore."""
    aws = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
        **(headers or {}),
    })
    with _freeze(at):
        SigV4Auth(BotoCredentials(key, secret, token), service, region).add_auth(aws)
    return _as_received(aws, body)


def presigned(*, expires=3600, at=NOW, url="http://localhost:8000/?Foo=b%20r&a=1", token=None,
              key=ACCESS_KEY, secret=SECRET) -> Request:
    aws = AWSRequest(method="GET", url=url, headers={})
    with _freeze(at):
        SigV4QueryAuth(BotoCredentials(key, secret, token), "dynamodb", "us-east-1", expires=expires).add_auth(aws)
    return _as_received(aws, b"", method="GET")


def _as_received(aws: AWSRequest, body: bytes, method: str = "POST") -> Request:
    parts = urlsplit(aws.url)
    headers = {k.lower(): v for k, v in aws.headers.items()}
    headers.setdefault("host", parts.netloc)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return Request(method, path, headers, body, ("127.0.0.1", 1), False)


def check(request, now=NOW, **kw):
    return sigv4.verify(request, lookup_secret=lookup, now=now, **kw)


# -- accepted -----------------------------------------------------------------------------


def test_header_signature_verifies():
    creds = check(signed())
    assert (creds.access_key, creds.region, creds.service) == (ACCESS_KEY, "us-east-1", "dynamodb")
    assert creds.session_token is None and not creds.presigned
    assert creds.identity == SECRET


def test_region_comes_from_scope():
    assert check(signed(region="eu-west-1")).region == "eu-west-1"


def test_empty_body_and_odd_path_verify():
    assert check(signed(b"", url="http://localhost:8000/a/./b/../c%20d//e"))


def test_query_string_in_header_form_verifies():
    assert check(signed(url="http://localhost:8000/?b=2&a=1&a=0&sp=x%20y"))


def test_header_values_are_trimmed_and_collapsed():
    request = signed(headers={"X-Custom": "  a   b  "})
    assert check(request)


def test_presigned_url_verifies():
    creds = check(presigned())
    assert creds.presigned and creds.access_key == ACCESS_KEY


def test_session_token_of_temporary_credentials():
    creds = check(signed(key="ASIATEMP", secret="tempsecret", token="TOKEN123"))
    assert creds.session_token == "TOKEN123"


def test_content_sha256_header_matching_body_is_accepted():
    import hashlib
    assert check(signed(headers={"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()}))


def test_unsigned_payload_only_where_allowed():
    request = signed(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert check(request, allow_unsigned_payload=True)
    with pytest.raises(InvalidSignatureException, match="^The request signature"):
        check(request)


def test_other_service_scope():
    assert check(signed(service="sts"), service="sts").service == "sts"


# -- rejected -----------------------------------------------------------------------------


def test_missing_authorization():
    request = signed()
    del request.headers["authorization"]
    with pytest.raises(MissingAuthenticationTokenException) as err:
        check(request)
    assert err.value.message == "Request is missing Authentication Token"
    assert err.value.wire_type == "com.amazon.coral.service#MissingAuthenticationTokenException"
    assert err.value.status == 400


def test_not_aws4_authorization():
    request = signed()
    request.headers["authorization"] = "AWS3 foo"
    with pytest.raises(MissingAuthenticationTokenException):
        check(request)


def test_incomplete_authorization_header():
    request = signed()
    del request.headers["x-amz-date"]
    request.headers["authorization"] = "AWS4-HMAC-SHA256 Signature=b"
    with pytest.raises(IncompleteSignatureException) as err:
        check(request)
    assert err.value.message == (
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        "Authorization=AWS4-HMAC-SHA256 Signature=b")


def test_bad_date_format():
    request = signed()
    request.headers["x-amz-date"] = "201"
    with pytest.raises(IncompleteSignatureException) as err:
        check(request)
    assert err.value.message == "Date must be in ISO-8601 'basic format'. Got '201'. See http://en.wikipedia.org/wiki/ISO_8601"


def test_expired_signature_wording():
    request = signed(at=1362096000.0)  # 2013-03-01T00:00:00Z
    with pytest.raises(InvalidSignatureException) as err:
        check(request)
    assert err.value.message == (
        "Signature expired: 20130301T000000Z is now earlier than 20130609T100015Z (20130609T100515Z - 5 min.)")


def test_skew_window_is_five_minutes_each_way():
    assert check(signed(at=NOW - 299))
    assert check(signed(at=NOW + 299))
    with pytest.raises(InvalidSignatureException, match="^Signature expired"):
        check(signed(at=NOW - 301))
    with pytest.raises(InvalidSignatureException) as err:
        check(signed(at=NOW + 301))
    assert err.value.message == (
        "Signature not yet current: 20130609T101016Z is still later than 20130609T101015Z (20130609T100515Z + 5 min.)")


def test_host_must_be_signed():
    request = signed()
    request.headers["authorization"] = request.headers["authorization"].replace("SignedHeaders=", "SignedHeaders=x;")
    request.headers["authorization"] = request.headers["authorization"].replace("host;", "")
    with pytest.raises(InvalidSignatureException) as err:
        check(request)
    assert err.value.message == "'Host' must be a 'SignedHeader' in the AWS Authorization."


def test_unsupported_algorithm():
    request = signed()
    request.headers["authorization"] = request.headers["authorization"].replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA25")
    with pytest.raises(IncompleteSignatureException) as err:
        check(request)
    assert err.value.message == "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA25' (only AWS4-HMAC-SHA256 for now). "


def test_credential_needs_five_elements():
    request = signed()
    auth = request.headers["authorization"]
    request.headers["authorization"] = auth.replace(f"Credential={ACCESS_KEY}/20130609/us-east-1/dynamodb/aws4_request",
                                                    "Credential=a/b/c/d")
    with pytest.raises(IncompleteSignatureException) as err:
        check(request)
    assert err.value.message == (
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'a/b/c/d'")


def test_credential_scope_contents():
    request = signed()
    auth = request.headers["authorization"]
    request.headers["authorization"] = auth.replace(f"Credential={ACCESS_KEY}/20130609/us-east-1/dynamodb/aws4_request",
                                                    f"Credential={ACCESS_KEY}/b/C/d/e")
    with pytest.raises(InvalidSignatureException) as err:
        check(request)
    assert err.value.message == (
        "Credential should be scoped to a valid region, not 'C'. "
        "Credential should be scoped to correct service: 'dynamodb'. "
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'e'. "
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        "'b' != '20130609', from '20130609T100515Z'.")


def test_unknown_access_key():
    with pytest.raises(UnrecognizedClientException) as err:
        check(signed(key="AKIDUNKNOWN"))
    assert err.value.message == "The security token included in the request is invalid."
    assert err.value.wire_type == "com.amazon.coral.service#UnrecognizedClientException"


def test_wrong_secret():
    with pytest.raises(InvalidSignatureException) as err:
        check(signed(secret="not-the-secret"))
    assert err.value.message == MISMATCH


@pytest.mark.parametrize("tamper", ["body", "header", "path", "query", "method", "signature"])
def test_tampered_requests_are_rejected(tamper):
    request = signed(url="http://localhost:8000/?a=1")
    if tamper == "body":
        request.body = BODY.replace(b"u1", b"u2")
    elif tamper == "header":
        request.headers["x-amz-target"] = "DynamoDB_20120810.DeleteItem"
    elif tamper == "path":
        request.path = "/x?a=1"
    elif tamper == "query":
        request.path = "/?a=2"
    elif tamper == "method":
        request.method = "PUT"
    else:
        auth = request.headers["authorization"]
        last = auth[-1]
        request.headers["authorization"] = auth[:-1] + ("0" if last != "0" else "1")
    with pytest.raises(InvalidSignatureException) as err:
        check(request)
    assert err.value.message == MISMATCH


def test_claimed_body_hash_must_match_body():
    request = signed(headers={"X-Amz-Content-SHA256": "0" * 64})
    with pytest.raises(InvalidSignatureException, match="^The request signature"):
        check(request)


def test_session_token_missing_wrong_or_unexpected():
    temp = signed(key="ASIATEMP", secret="tempsecret", token="TOKEN123")
    temp.headers["x-amz-security-token"] = "OTHER"
    with pytest.raises(InvalidSignatureException):  # the token header is signed
        check(temp)
    no_token = signed(key="ASIATEMP", secret="tempsecret")
    with pytest.raises(UnrecognizedClientException) as err:
        check(no_token)
    assert err.value.message == "The security token included in the request is invalid"
    with pytest.raises(UnrecognizedClientException):
        check(signed(token="SOMETOKEN"))  # a long-term key with a token


def test_expired_temporary_credentials():
    request = signed(key="ASIATEMP", secret="tempsecret", token="TOKEN123", at=NOW + 3700)
    with pytest.raises(ExpiredTokenException) as err:
        check(request, now=NOW + 3700)
    assert err.value.message == "The security token included in the request is expired"
    assert err.value.wire_type == "com.amazon.coral.service#ExpiredTokenException"


def test_presigned_tampered_and_expired():
    request = presigned()
    request.path = request.path.replace("a=1", "a=2")
    with pytest.raises(InvalidSignatureException, match="^The request signature"):
        check(request)
    assert check(presigned(expires=60), now=NOW + 59)
    with pytest.raises(InvalidSignatureException) as err:
        check(presigned(expires=60), now=NOW + 61)
    assert err.value.message.startswith("Signature expired: 20130609T100515Z is now earlier than")


def test_presigned_missing_parameter():
    request = presigned()
    path, _, query = request.path.partition("?")
    request.path = path + "?" + "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Date"))
    with pytest.raises(IncompleteSignatureException) as err:
        check(request)
    assert err.value.message == (
        "AWS query-string parameters must include 'X-Amz-Date'. Re-examine the query-string parameters.")


def test_signing_key_is_derived_once_per_scope(monkeypatch):
    """The four-HMAC key derivation runs once per (secret, day, region,
    service); later requests of that scope reuse the cached pads.  (How fast
    verification is, is measured by bench/run.py --security.)"""
    sigv4._key_cache.clear()
    derived = []
    real = sigv4.hmac_pads

    def counting(key):
        derived.append(key)
        return real(key)

    monkeypatch.setattr(sigv4, "hmac_pads", counting)
    request = signed()
    for _ in range(5):
        check(request)
    assert len(derived) == 1
    assert len(sigv4._key_cache) == 1


@given(st.binary(max_size=64), st.binary(max_size=2048))
def test_hmac_from_cached_pads_is_hmac_sha256(key, message):
    assert sigv4.hmac_sha256_hex(sigv4.hmac_pads(key), message) == hmac.new(key, message, "sha256").hexdigest()


_AUTH_PART = st.sampled_from([
    "Credential=AK/20261126/us-east-1/dynamodb/aws4_request", "SignedHeaders=host;x-amz-date",
    "Signature=abc123", "Signature=", " Signature = d e f ", "Credential=", "Other=x", "", "Signature=1,Signature=2",
    "Signature", "xSignature=q", "Credential=Signature=z", "Sig nature=s p", "SignedHeaders=host,Signature=9",
])


def _full_parse(auth: str) -> tuple[str, str, str, str]:
    """The Authorization header's parameters as a plain parse reads them (no
    caching): separated by commas, spaces or both."""
    algorithm, _, rest = auth.strip().partition(" ")
    params = {}
    for part in rest.replace(",", " ").split():
        name, _, value = part.partition("=")
        params[name] = value
    return algorithm, params.get("Credential", ""), params.get("SignedHeaders", ""), params.get("Signature", "")


@settings(max_examples=500)
@given(st.lists(_AUTH_PART, max_size=5), st.sampled_from([", ", ",", " , ", " ", "  "]))
def test_authorization_header_parse_with_the_cached_head_matches_a_full_parse(parts, comma):
    auth = "AWS4-HMAC-SHA256 " + comma.join(parts)
    expected = _full_parse(auth)
    headers = {"authorization": auth, "x-amz-date": "20261126T000000Z"}
    try:
        signed = sigv4._from_header(headers, "")
    except IncompleteSignatureException:
        assert not all(expected[1:])  # refused only for a missing parameter
        return
    assert (signed.algorithm, signed.credential, signed.signed_headers, signed.signature) == expected
