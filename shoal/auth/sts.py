"""An STS endpoint for AssumeRole and GetCallerIdentity.

STS speaks the AWS query protocol: a form-encoded POST
(``Action=AssumeRole&Version=2011-06-15&RoleArn=...``) signed for the service
``sts``, answered in XML.  The server verifies the signature (``sigv4.verify``
with ``service="sts"``), parses the form (``parse_form``) and calls
``sts_handle``.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from shoal.errors import validation_errors
from shoal.auth.iam import IamError, IamStore

XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
CONTENT_TYPE = "text/xml"
VERSION = "2011-06-15"


def parse_form(body: bytes) -> dict:
    """The form parameters of a query-protocol request (first value wins)."""
    form: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, value)
    return form


def sts_handle(form: dict, credentials, *, store: IamStore, request_id: str | None = None,
               audit=None) -> tuple[int, str, bytes]:
    """Answer one STS request; ``credentials`` is what ``sigv4.verify``
    returned (its ``identity`` the caller's ``KeyIdentity``).  Returns
    (HTTP status, content type, XML body).  ``audit(action, resource,
    decision, reason)``, when given, is told of every AssumeRole: it creates
    credentials, an IAM change."""
    request_id = request_id or str(uuid.uuid4())
    action = form.get("Action", "")
    try:
        if action == "GetCallerIdentity":
            return 200, CONTENT_TYPE, _caller_identity(credentials, store, request_id)
        if action == "AssumeRole":
            return 200, CONTENT_TYPE, _assume_role(form, credentials, store, request_id, audit)
        raise IamError("InvalidAction", f"Could not find operation {action} for version {form.get('Version', VERSION)}")
    except IamError as exc:
        if action == "AssumeRole" and audit is not None:
            audit("sts:AssumeRole", form.get("RoleArn"), "deny" if exc.code == "AccessDenied" else "error",
                  f"{exc.code}: {exc.message}")
        return exc.status, CONTENT_TYPE, error_xml(exc.code, exc.message, request_id)


def error_xml(code: str, message: str, request_id: str) -> bytes:
    """STS's error document (``Sender`` faults: the client's mistake)."""
    return (f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()


def _response(action: str, result: str, request_id: str) -> bytes:
    return (f'<{action}Response xmlns="{XMLNS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>").encode()


def _caller_identity(credentials, store: IamStore, request_id: str) -> bytes:
    principal = credentials.identity.principal
    result = (f"<Arn>{escape(principal.arn)}</Arn><UserId>{escape(principal.userid)}</UserId>"
              f"<Account>{principal.account}</Account>")
    return _response("GetCallerIdentity", result, request_id)


def _required(form: dict, name: str, member: str) -> str:
    value = form.get(name)
    if not value:
        raise IamError("ValidationError", validation_errors(
            [f"Value null at '{member}' failed to satisfy constraint: Member must not be null"]))
    return value


def _assume_role(form: dict, credentials, store: IamStore, request_id: str, audit=None) -> bytes:
    role_arn = _required(form, "RoleArn", "roleArn")
    session = _required(form, "RoleSessionName", "roleSessionName")
    duration = form.get("DurationSeconds")
    try:
        seconds = int(duration) if duration else None
    except ValueError:
        raise IamError("ValidationError", f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
                                          "Member must be a number") from None
    creds = store.assume_role(credentials.identity.principal, role_arn, session, seconds)
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(creds["Expiration"]))
    if audit is not None:
        audit("sts:AssumeRole", role_arn, "allow",
              f"temporary credentials {creds['AccessKeyId']} issued for session {creds['Arn']}, "
              f"expiring {expiration}")
    result = (f"<Credentials><AccessKeyId>{creds['AccessKeyId']}</AccessKeyId>"
              f"<SecretAccessKey>{escape(creds['SecretAccessKey'])}</SecretAccessKey>"
              f"<SessionToken>{escape(creds['SessionToken'])}</SessionToken>"
              f"<Expiration>{expiration}</Expiration></Credentials>"
              f"<AssumedRoleUser><AssumedRoleId>{escape(creds['AssumedRoleId'])}</AssumedRoleId>"
              f"<Arn>{escape(creds['Arn'])}</Arn></AssumedRoleUser>")
    return _response("AssumeRole", result, request_id)
