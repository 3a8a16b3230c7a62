"""CloudWatch and SNS on Shoal's port, in every protocol their SDKs speak.

```
 JSON    POST /  X-Amz-Target: GraniteServiceVersion20100801.<Op>      (CloudWatch; boto3 today)
 query   POST /  application/x-www-form-urlencoded  Action=<Op>&...     (CloudWatch, SNS; older SDKs, SNS always)
         GET  /?Action=ConfirmSubscription&...                          (SNS's SubscribeURL / UnsubscribeURL)
 CBOR    POST /service/GraniteServiceVersion20100801/operation/<Op>     (CloudWatch; Smithy RPC v2 CBOR SDKs)
              |
              v  the request as the JSON protocol would carry it (shoal.server.query_protocol, cbor_protocol)
 authenticate (SigV4, service monitoring / sns) -> prepare (checks) -> authorize (cloudwatch:* / sns:*)
              |
              v  job() -> the output as a dict; writes wait for the group commit
 rendered in the request's protocol, errors included (CloudWatch's codes, SNS's codes)
```

A form-encoded request is told apart by the service its signature's
credential scope names (``sts`` goes to STS with auth on, ``monitoring`` to
CloudWatch, ``sns`` to SNS); an unsigned one by its Action (SNS's own names go
to SNS, the rest to CloudWatch).
"""

from __future__ import annotations

import logging
import traceback
from urllib.parse import parse_qsl

import orjson

from shoal.errors import ShoalError
from shoal.metrics.alarms import OPERATIONS as ALARM_OPERATIONS
from shoal.metrics.errors import AUTH_ERRORS, InvalidAction, SerializationError, as_cloudwatch
from shoal.server import cbor_protocol, query_protocol
from shoal.server.http import Request, Response

log = logging.getLogger("shoal")

JSON_TYPE = "application/x-amz-json-1.0"
AUTOSCALING_JSON_TYPE = "application/x-amz-json-1.1"
SIGNING_NAMES = {"cloudwatch": "monitoring", "sns": "sns", "autoscaling": "application-autoscaling"}
CERTIFICATE_PATH = "/SimpleNotificationService-shoal.pem"

# SNS's errors for a failed signature or permission check: the query
# services' codes, but a denial is SNS's AuthorizationError.
_SNS_AUTH_ERRORS = {**AUTH_ERRORS, "AccessDeniedException": ("AuthorizationError", 403)}


def signed_service(authorization: str | None) -> str | None:
    """The service a SigV4 Authorization header's credential scope names."""
    if not authorization:
        return None
    at = authorization.find("Credential=")
    if at < 0:
        return None
    end = authorization.find(",", at)
    scope = authorization[at + 11: end if end >= 0 else None].strip().split("/")
    return scope[3] if len(scope) >= 4 else None


class Services:
    """The CloudWatch (metrics and alarms) and SNS front of one worker.

    ``dispatcher`` lends what the DynamoDB front has too: the gate (auth),
    the group committer, the default region, and the APIs it built."""

    def __init__(self, dispatcher) -> None:
        self.d = dispatcher

    # -- entry points -----------------------------------------------------------------------

    def json(self, request: Request, request_id: str, operation: str):
        """CloudWatch's JSON protocol."""
        return self._call("cloudwatch", operation, lambda: _json_of(request), request, request_id, "json")

    def autoscaling(self, request: Request, request_id: str, operation: str):
        """Application Auto Scaling's JSON 1.1 protocol (``shoal.autoscaling``)."""
        return self._call("autoscaling", operation, lambda: _json_of(request), request, request_id, "json")

    def cbor(self, request: Request, request_id: str, operation: str):
        """CloudWatch's Smithy RPC v2 CBOR protocol."""
        return self._call("cloudwatch", operation,
                          lambda: cbor_protocol.parse(_body(request), "cloudwatch", operation),
                          request, request_id, "cbor")

    def query(self, request: Request, request_id: str, body: bytes | str, service: str | None):
        """A query-protocol request (POST form, or GET query string) for
        ``service`` ("cloudwatch" or "sns"; None: decided by its Action)."""
        if service is None:
            action = dict(parse_qsl(body if isinstance(body, str) else body.decode("utf-8", "replace"))).get("Action")
            service = "sns" if action is not None and self.d.sns.known(action) and \
                not self.d.cloudwatch_api().known(action) else "cloudwatch"
        if request.method == "GET" and "Version=" not in body:  # SNS's links carry no Version, and work
            body += "&Version=2010-03-31"
        try:
            operation, data = query_protocol.parse(body, service)
        except Exception as exc:
            return self._error(exc, request_id, service, "query")
        return self._call(service, operation, lambda: data, request, request_id, "query")

    def certificate(self, request_id: str) -> Response:
        return Response(200, [("Content-Type", "application/x-x509-ca-cert"), ("x-amzn-RequestId", request_id)],
                        self.d.sns.certificate_pem())

    # -- the common path --------------------------------------------------------------------

    def _call(self, service: str, operation: str, data_of, request: Request, request_id: str, wire: str):
        d = self.d
        try:
            if service == "cloudwatch":
                api = d.alarms if operation in ALARM_OPERATIONS else d.cloudwatch_api()
                if api is not d.alarms and not api.known(operation):
                    raise InvalidAction(f"Could not find operation {operation}")
            elif service == "autoscaling":
                api = d.autoscaling
            else:
                api = d.sns
            credentials = None
            data = None
            if d.gate is not None:
                if service == "sns" and request.method == "GET":
                    data = data_of()
                if not (data is not None and api.unauthenticated(operation, data)):
                    credentials = d.gate.authenticate(request, SIGNING_NAMES[service], operation=operation,
                                                      request_id=request_id)
            region = credentials.region if credentials is not None else \
                _region(request.headers.get("authorization"), d.default_region)
            if data is None:
                data = data_of()
            if service == "sns":
                writes, job = api.prepare(operation, data, region, _endpoint(request))
            else:
                writes, job = api.prepare(operation, data, region)
            if credentials is not None:
                if service == "sns":
                    d.gate.authorize_sns(credentials, operation, data, request, request_id)
                elif service == "autoscaling":
                    d.gate.authorize_autoscaling(credentials, operation, request, request_id)
                else:
                    d.gate.authorize_monitoring(credentials, operation, data, request, request_id)
            if writes and d.group_commit:
                return self._later(d.committer.submit(job), request_id, service, operation, wire)
            return self._response(job(), request_id, service, operation, wire)
        except Exception as exc:
            return self._error(exc, request_id, service, wire)

    async def _later(self, future, request_id: str, service: str, operation: str, wire: str) -> Response:
        try:
            result = await future
        except Exception as exc:
            return self._error(exc, request_id, service, wire)
        return self._response(result, request_id, service, operation, wire)

    @staticmethod
    def _response(result: dict, request_id: str, service: str, operation: str, wire: str) -> Response:
        if service == "autoscaling":
            return Response(200, [("Content-Type", AUTOSCALING_JSON_TYPE), ("x-amzn-RequestId", request_id)],
                            orjson.dumps(result))
        if wire == "json":
            return Response(200, [("Content-Type", JSON_TYPE), ("x-amzn-RequestId", request_id)],
                            orjson.dumps(result))
        if wire == "cbor":
            body = cbor_protocol.response(service, operation, result)
            return Response(200, [*cbor_protocol.response_headers(body), ("x-amzn-RequestId", request_id)], body)
        return Response(200, [("Content-Type", query_protocol.CONTENT_TYPE), ("x-amzn-RequestId", request_id)],
                        query_protocol.response(service, operation, result, request_id))

    @staticmethod
    def _error(exc: Exception, request_id: str, service: str, wire: str) -> Response:
        if not isinstance(exc, ShoalError):  # a bug: report it, keep serving
            log.error("internal error in request %s:\n%s", request_id, "".join(traceback.format_exception(exc)))
        if service == "autoscaling":  # JSON 1.1: the bare type, and Message
            error = exc if isinstance(exc, ShoalError) else _internal()
            body = {"__type": error.type_name, "Message": error.message}
            return Response(error.status, [("Content-Type", AUTOSCALING_JSON_TYPE), ("x-amzn-RequestId", request_id)],
                            orjson.dumps(body))
        error = as_cloudwatch(exc if isinstance(exc, ShoalError) else _internal()) if service == "cloudwatch" \
            else _as_sns(exc)
        code, fault = error.query_error.split(";", 1)
        if wire == "json":
            return Response(error.status, [("Content-Type", JSON_TYPE), ("x-amzn-RequestId", request_id),
                                           ("x-amzn-query-error", error.query_error)], orjson.dumps(error.to_body()))
        if wire == "cbor":
            body = cbor_protocol.error(error.type_name, error.message)
            return Response(error.status, [*cbor_protocol.error_headers(error.query_error),
                                           ("x-amzn-RequestId", request_id)], body)
        body = query_protocol.error(code, error.message, request_id, sender=fault == "Sender", service=service)
        return Response(error.status, [("Content-Type", query_protocol.CONTENT_TYPE),
                                       ("x-amzn-RequestId", request_id)], body)


def _internal():
    from shoal.errors import InternalServerError

    return InternalServerError("Internal error")


def _as_sns(exc: Exception):
    """An error on the way to an SNS operation, as SNS reports it."""
    from shoal.sns.errors import InternalError, SnsError

    if isinstance(exc, SnsError):
        return exc
    if isinstance(exc, query_protocol.QueryProtocolError):
        return exc
    if isinstance(exc, ShoalError) and exc.type_name in _SNS_AUTH_ERRORS:
        code, status = _SNS_AUTH_ERRORS[exc.type_name]
        error = SnsError(exc.message)
        error.type_name, error.code, error.status = code, code, status
        return error
    return InternalError("Internal error" if not isinstance(exc, ShoalError) else exc.message)


def _json_of(request: Request):
    """A JSON protocol request's body, decoded."""
    body = _body(request)
    try:
        return orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise SerializationError("The request body is not valid JSON.") from None


def _body(request: Request) -> bytes:
    """The request's body, decoded if sent with a Content-Encoding (after the
    signature check, which covers the encoded bytes)."""
    from shoal.server.dispatch import decoded_body

    encoding = request.headers.get("content-encoding")
    return decoded_body(request.body, encoding) if encoding is not None else request.body


def _region(authorization: str | None, default: str) -> str:
    from shoal.server.dispatch import region_of

    return region_of(authorization, default)[0]


def _endpoint(request: Request) -> str:
    """Shoal's base URL as the client reached it (SNS's links point there)."""
    host = request.headers.get("host") or "127.0.0.1"
    return f"{'https' if request.secure else 'http'}://{host}"
