"""The errors of authentication and authorization, worded as AWS words them.

DynamoDB reports every one of them with HTTP 400 in the
``com.amazon.coral.service`` namespace (real responses recorded by SDK users
and by dynalite).  AccessDeniedException's member is ``Message`` with a
capital M, as DynamoDB sends it.
"""

from __future__ import annotations

from shoal.errors import CORAL_NS, MissingAuthenticationTokenException, ShoalError

__all__ = [
    "AccessDeniedException",
    "ExpiredTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "SIGNATURE_MISMATCH",
    "INVALID_TOKEN",
]

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
# DynamoDB ends the unknown-key message with a period, the bad-session-token one without.
INVALID_KEY = "The security token included in the request is invalid."
INVALID_TOKEN = "The security token included in the request is invalid"
EXPIRED_TOKEN = "The security token included in the request is expired"
MISSING_TOKEN = "Request is missing Authentication Token"


class _CoralError(ShoalError):
    namespace = CORAL_NS
    status = 400


class IncompleteSignatureException(_CoralError):
    type_name = "IncompleteSignatureException"


class InvalidSignatureException(_CoralError):
    type_name = "InvalidSignatureException"


class UnrecognizedClientException(_CoralError):
    type_name = "UnrecognizedClientException"


class ExpiredTokenException(_CoralError):
    type_name = "ExpiredTokenException"


class AccessDeniedException(_CoralError):
    type_name = "AccessDeniedException"

    def to_body(self) -> dict:
        return {"__type": self.wire_type, "Message": self.message}
