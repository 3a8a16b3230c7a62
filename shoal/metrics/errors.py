"""CloudWatch's errors, as its JSON protocol sends them.

CloudWatch's API model is ``awsQueryCompatible``: an error answered in JSON
carries the error shape in ``__type`` and, in the ``x-amzn-query-error``
header, the code the query protocol has always used and whose fault it is
(``InvalidParameterValue;Sender``); the SDKs report that code.  The
dispatcher renders them (``query_error`` gives the header's value).
"""

from __future__ import annotations

from shoal.errors import ShoalError

NAMESPACE = "com.amazonaws.cloudwatch"


class CloudWatchError(ShoalError):
    """An error of CloudWatch's API (``type_name`` is its shape, ``code`` the query code)."""

    namespace = NAMESPACE
    code = "InternalServiceError"
    fault = "Sender"
    status = 400

    def to_body(self) -> dict:
        return {"__type": self.wire_type, "message": self.message}

    @property
    def query_error(self) -> str:
        return f"{self.code};{self.fault}"


class InvalidParameterValue(CloudWatchError):
    type_name = "InvalidParameterValueException"
    code = "InvalidParameterValue"


class MissingParameter(CloudWatchError):
    type_name = "MissingRequiredParameterException"
    code = "MissingParameter"


class InvalidParameterCombination(CloudWatchError):
    type_name = "InvalidParameterCombinationException"
    code = "InvalidParameterCombination"


class InvalidNextToken(CloudWatchError):
    type_name = "InvalidNextToken"
    code = "InvalidNextToken"


class ResourceNotFound(CloudWatchError):
    type_name = "ResourceNotFound"
    code = "ResourceNotFound"
    status = 404


class ValidationError(CloudWatchError):
    """Not in the model; what CloudWatch answers for a request its own
    checks (GetMetricData's, the model's constraints) refuse."""

    type_name = "ValidationError"
    code = "ValidationError"


class SerializationError(CloudWatchError):
    """A JSON value of the wrong type for its member."""

    type_name = "SerializationException"
    code = "SerializationException"


class InvalidAction(CloudWatchError):
    """An operation of CloudWatch that Shoal does not offer (yet)."""

    type_name = "InvalidAction"
    code = "InvalidAction"


class InternalServiceFault(CloudWatchError):
    type_name = "InternalServiceFault"
    code = "InternalServiceError"
    fault = "Receiver"
    status = 500


# Signature and permission errors, as the query-protocol services name them.
AUTH_ERRORS = {
    "IncompleteSignatureException": ("IncompleteSignature", 400),
    "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
    "UnrecognizedClientException": ("InvalidClientTokenId", 403),
    "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
    "ExpiredTokenException": ("ExpiredToken", 403),
    "AccessDeniedException": ("AccessDenied", 403),
}


def as_cloudwatch(exc: ShoalError) -> CloudWatchError:
    """An error raised on the way to a CloudWatch operation (authentication,
    authorization), as CloudWatch reports it."""
    if isinstance(exc, CloudWatchError):
        return exc
    code, status = AUTH_ERRORS.get(exc.type_name, (None, None))
    if code is None:
        return InternalServiceFault(exc.message or "Internal error")
    error = CloudWatchError(exc.message)
    error.type_name, error.code, error.status = code, code, status
    return error
