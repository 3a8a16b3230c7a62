"""Signature Version 4 verification, for the Authorization header and for
presigned (query-string) requests.

The server rebuilds the canonical request from what it received, derives the
signing key from the secret of the access key named in the credential scope,
and compares signatures in constant time.  Checks run in the order DynamoDB
runs them (dynalite records the order and the wording of real responses):
parameters present, date format, clock skew, ``host`` signed, algorithm,
credential scope shape, scope contents, access key known, signature, and
finally the session token of temporary credentials.

Speed matters because this runs on every request: the derived signing key is
cached per (secret, date, region, service), as the HMAC states it starts from,
so a request costs one SHA-256 of the body, one of the canonical request and
one HMAC (two copies of cached hash states).

``lookup_secret(access_key)`` returns None for an unknown key, or an object
with ``secret`` (str), ``session_token`` (str or None: the token temporary
credentials must present) and ``expires`` (epoch seconds or None); a plain
string is taken as a long-term secret.  The object comes back in
``Credentials.identity`` so the caller does not look the key up twice.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from email.utils import parsedate_to_datetime
from typing import Any, Callable, NamedTuple
from urllib.parse import quote, unquote

from shoal.auth.errors import (
    EXPIRED_TOKEN,
    INVALID_KEY,
    INVALID_TOKEN,
    MISSING_TOKEN,
    SIGNATURE_MISMATCH,
    ExpiredTokenException,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: AWS rejects a signed request whose time is more than 5 minutes off the server's clock.
MAX_SKEW_S = 300
#: A presigned request may be valid for at most 7 days.
MAX_EXPIRES_S = 604800
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z\Z")
_REGION = re.compile(r"[a-z][a-z0-9-]{0,49}\Z")
_QUERY_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                 "X-Amz-SignedHeaders", "X-Amz-Expires")
_KEY_CACHE_MAX = 4096
_key_cache: dict[tuple[str, str, str, str], tuple] = {}


class Credentials(NamedTuple):
    """Who signed a verified request, and for which scope (a tuple: made on
    every request, and a frozen dataclass costs a microsecond to build)."""

    access_key: str
    region: str
    service: str
    session_token: str | None
    amz_date: str  # the signing time, ISO-8601 basic format
    presigned: bool
    identity: Any = None  # what lookup_secret returned for the access key


@dataclass(slots=True)
class _Signed:
    """The signature parameters of a request, whichever form carried them."""

    algorithm: str
    credential: str
    signed_headers: str
    signature: str
    amz_date: str
    expires: int | None
    session_token: str | None
    query_pairs: list[tuple[str, str]]  # raw (still percent-encoded) pairs, signature excluded


def signing_pads(secret: str, date: str, region: str, service: str) -> tuple:
    """The HMAC states (``hmac_pads``) of the SigV4 key for one day, region and
    service, cached: deriving the key costs four HMACs, and it is reused by
    every request of that day."""
    cache_key = (secret, date, region, service)
    pads = _key_cache.get(cache_key)
    if pads is None:
        key = hmac.digest(("AWS4" + secret).encode(), date.encode(), "sha256")
        for part in (region, service, TERMINATOR):
            key = hmac.digest(key, part.encode(), "sha256")
        pads = hmac_pads(key)
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[cache_key] = pads
    return pads


def hmac_pads(key: bytes) -> tuple:
    """SHA-256 states with HMAC's inner and outer padded ``key`` (at most 64
    bytes) absorbed, so an HMAC under a cached key costs two hash copies
    instead of OpenSSL's HMAC set-up (which fetches its algorithms anew on
    every call)."""
    block = key.ljust(64, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(bytes(b ^ 0x5C for b in block))


def hmac_sha256_hex(pads: tuple, message: bytes) -> str:
    """HMAC-SHA256 of ``message`` under the key of ``pads``, in hex."""
    inner_pad, outer_pad = pads
    inner = inner_pad.copy()
    inner.update(message)
    outer = outer_pad.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def verify(
    request,
    *,
    lookup_secret: Callable[[str], Any],
    now: float | None = None,
    service: str = "dynamodb",
    allow_unsigned_payload: bool = False,
) -> Credentials:
    """Verify the SigV4 signature of ``request`` (an ``http.Request``) and
    return who signed it; raise the error DynamoDB would send otherwise.

    ``now`` (epoch seconds) is a parameter so tests can pin the clock.
    ``allow_unsigned_payload`` lets ``x-amz-content-sha256: UNSIGNED-PAYLOAD``
    stand for the body hash (S3-style); DynamoDB always signs the body.
    """
    if now is None:
        now = time.time()
    path, _, query = request.path.partition("?")
    signed = _from_query(query) if "X-Amz-" in query else None
    if signed is None:
        signed = _from_header(request.headers, query)
    _check_time(signed, now)
    _check_host_signed(signed)
    if signed.algorithm != ALGORITHM:
        raise IncompleteSignatureException(
            f"Unsupported AWS 'algorithm': '{signed.algorithm}' (only {ALGORITHM} for now). ")
    access_key, date, region, scope_service = _check_scope(signed, service)
    identity = lookup_secret(access_key)
    if identity is None:
        raise UnrecognizedClientException(INVALID_KEY)
    secret = identity if isinstance(identity, str) else identity.secret
    payload_hash = _payload_hash(request, allow_unsigned_payload)
    canonical = _canonical_request(request.method, path, signed, request.headers, payload_hash)
    scope = f"{date}/{region}/{scope_service}/{TERMINATOR}"
    to_sign = f"{ALGORITHM}\n{signed.amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac_sha256_hex(signing_pads(secret, date, region, scope_service), to_sign.encode())
    if not hmac.compare_digest(expected, signed.signature):
        raise InvalidSignatureException(SIGNATURE_MISMATCH)
    _check_session(identity, signed.session_token, now)
    return Credentials(access_key, region, scope_service, signed.session_token, signed.amz_date,
                       signed.expires is not None, identity)


# -- reading the signature parameters ----------------------------------------------------


def _from_header(headers: dict, query: str) -> _Signed:
    """The parameters of the Authorization-header form."""
    auth = headers.get("authorization")
    if not auth or auth.strip()[:5] != "AWS4-":
        raise MissingAuthenticationTokenException(MISSING_TOKEN)
    algorithm, _, rest = auth.strip().partition(" ")
    # Parameters are separated by commas, spaces or both (DynamoDB takes
    # "Credential=... SignedHeaders=... Signature=..." as well).
    compact = ",".join(rest.replace(",", " ").split())
    head, sep, tail = compact.partition("Signature=")
    cut = tail.find(",")
    after = "" if cut < 0 else tail[cut:]
    if sep and (not head or head[-1] == ",") and "Signature" not in head and "Signature" not in after:
        # The header differs from request to request only in its signature:
        # the other parameters are parsed once per signing scope (cached).
        signature = tail if cut < 0 else tail[:cut]
        credential, signed_headers, _ = _auth_params(head + after)
    else:
        credential, signed_headers, signature = _auth_params.__wrapped__(compact)
    date = headers.get("x-amz-date") or headers.get("date")
    missing = "".join(f"Authorization header requires '{name}' parameter. "
                      for name, value in (("Credential", credential), ("Signature", signature),
                                          ("SignedHeaders", signed_headers)) if not value)
    if not date:
        missing += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
    if missing:
        raise IncompleteSignatureException(missing + "Authorization=" + auth)
    return _Signed(algorithm, credential, signed_headers, signature,
                   _amz_date(date, "x-amz-date" not in headers), None,
                   headers.get("x-amz-security-token"), _split_query(query))


@lru_cache(maxsize=1024)
def _auth_params(compact: str) -> tuple[str, str, str]:
    """(Credential, SignedHeaders, Signature) of the parameters of an
    Authorization header, spaces removed ('' for one that is absent; the
    last of a repeated one wins)."""
    params = {}
    for part in compact.split(","):
        name, _, value = part.partition("=")
        params[name] = value
    return params.get("Credential", ""), params.get("SignedHeaders", ""), params.get("Signature", "")


def _from_query(query: str) -> _Signed:
    """The parameters of the presigned form (all six X-Amz-* query parameters)."""
    pairs = _split_query(query)
    values = {}
    for name, value in pairs:
        values.setdefault(unquote(name), unquote(value))
    for name in _QUERY_PARAMS:
        if not values.get(name):
            raise IncompleteSignatureException(
                f"AWS query-string parameters must include '{name}'. Re-examine the query-string parameters.")
    try:
        expires = int(values["X-Amz-Expires"])
    except ValueError:
        expires = -1
    if not 0 <= expires <= MAX_EXPIRES_S:
        raise IncompleteSignatureException(
            f"X-Amz-Expires must be a number of seconds between 0 and {MAX_EXPIRES_S} (7 days).")
    return _Signed(values["X-Amz-Algorithm"], values["X-Amz-Credential"], values["X-Amz-SignedHeaders"],
                   values["X-Amz-Signature"], _amz_date(values["X-Amz-Date"], False), expires,
                   values.get("X-Amz-Security-Token"),
                   [(k, v) for k, v in pairs if unquote(k) != "X-Amz-Signature"])


def _split_query(query: str) -> list[tuple[str, str]]:
    """Raw ``name=value`` pairs of a query string, still percent-encoded."""
    if not query:
        return []
    return [(k, v) for k, _, v in (p.partition("=") for p in query.split("&") if p)]


def _amz_date(value: str, http_date: bool) -> str:
    """The signing time as ISO-8601 basic format; the ``Date`` header may use
    the HTTP date format instead."""
    value = value.strip()
    if _AMZ_DATE.match(value):
        return value
    if http_date:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            return parsed.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    raise IncompleteSignatureException(
        f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601")


# -- checks -------------------------------------------------------------------------------


_BASIC_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z\Z")


@lru_cache(maxsize=1024)
def _epoch(amz_date: str) -> float:
    """Seconds since the epoch of an X-Amz-Date.  Cached: concurrent requests
    share their second, and strptime alone cost more than the signature."""
    match = _BASIC_DATE.match(amz_date)
    try:
        if match is None:
            raise ValueError(amz_date)
        return datetime(*map(int, match.groups()), tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise IncompleteSignatureException(
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601") from None


def _basic(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def _check_time(signed: _Signed, now: float) -> None:
    """A header signature is valid within 5 minutes either side of its time; a
    presigned one from 5 minutes before its time until X-Amz-Expires after."""
    signed_at = _epoch(signed.amz_date)
    if signed_at > now + MAX_SKEW_S:
        raise InvalidSignatureException(
            f"Signature not yet current: {signed.amz_date} is still later than "
            f"{_basic(now + MAX_SKEW_S)} ({_basic(now)} + 5 min.)")
    if signed.expires is None:
        if signed_at < now - MAX_SKEW_S:
            raise InvalidSignatureException(
                f"Signature expired: {signed.amz_date} is now earlier than "
                f"{_basic(now - MAX_SKEW_S)} ({_basic(now)} - 5 min.)")
    elif signed_at + signed.expires < now:
        raise InvalidSignatureException(
            f"Signature expired: {signed.amz_date} is now earlier than "
            f"{_basic(now - signed.expires)} ({_basic(now)} - {signed.expires} sec.)")


def _check_host_signed(signed: _Signed) -> None:
    if "host" not in signed.signed_headers.lower().split(";"):
        raise InvalidSignatureException("'Host' must be a 'SignedHeader' in the AWS Authorization.")


def _check_scope(signed: _Signed, service: str) -> tuple[str, str, str, str]:
    """(access key, date, region, service) of a well-formed credential scope."""
    parts = signed.credential.rstrip("/").split("/")
    if len(parts) != 5:
        raise IncompleteSignatureException(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{signed.credential}'")
    access_key, date, region, scope_service, terminator = parts
    problems = []
    if not _REGION.match(region):
        problems.append(f"Credential should be scoped to a valid region, not '{region}'. ")
    if scope_service != service:
        problems.append(f"Credential should be scoped to correct service: '{service}'. ")
    if terminator != TERMINATOR:
        problems.append(f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'. ")
    if date != signed.amz_date[:8]:
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{date}' != '{signed.amz_date[:8]}', from '{signed.amz_date}'.")
    if problems:
        raise InvalidSignatureException("".join(problems).rstrip())
    return access_key, date, region, scope_service


def _check_session(identity, session_token: str | None, now: float) -> None:
    """Temporary credentials need their session token and expire; long-term
    keys must not carry a token."""
    expected = None if isinstance(identity, str) else identity.session_token
    if expected is None:
        if session_token:
            raise UnrecognizedClientException(INVALID_TOKEN)
        return
    if not session_token or not hmac.compare_digest(expected.encode(), session_token.encode()):
        raise UnrecognizedClientException(INVALID_TOKEN)
    expires = identity.expires
    if expires is not None and now >= expires:
        raise ExpiredTokenException(EXPIRED_TOKEN)


# -- the canonical request ----------------------------------------------------------------


def _payload_hash(request, allow_unsigned: bool) -> str:
    """The body hash the signer must have used.  A client may send it in
    x-amz-content-sha256; it must then be the body's real hash."""
    actual = hashlib.sha256(request.body).hexdigest() if request.body else _EMPTY_SHA256
    claimed = request.headers.get("x-amz-content-sha256")
    if claimed is None or claimed == actual:
        return actual
    if claimed == UNSIGNED_PAYLOAD and allow_unsigned:
        return claimed
    raise InvalidSignatureException(SIGNATURE_MISMATCH)


def _canonical_request(method: str, path: str, signed: _Signed, headers: dict, payload_hash: str) -> str:
    names = signed.signed_headers.lower().split(";")
    header_lines = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in names)
    return (f"{method}\n{canonical_path(path)}\n{canonical_query(signed.query_pairs)}\n"
            f"{header_lines}\n{';'.join(names)}\n{payload_hash}")


def canonical_path(path: str) -> str:
    """The URI path as AWS canonicalises it for services other than S3: dot
    segments and empty segments removed, then every segment URI-encoded once
    more (the received path is already encoded once)."""
    if path in ("", "/"):
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normalized = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normalized += "/"
    return quote(normalized, safe="/~")


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    """Query parameters URI-encoded the AWS way (unreserved characters kept,
    everything else %XX upper-case) and sorted by name, then value."""
    if not pairs:
        return ""
    encoded = sorted((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)
