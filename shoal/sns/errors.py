"""SNS's errors, as its query protocol reports them.

SNS answers errors as ``<ErrorResponse><Error><Type>Sender</Type><Code>...``:
what a client sees is the query ``code`` (``InvalidParameter``, ``NotFound``)
with its HTTP status, whose fault it is (``sender``: the client's, for every
4xx) and SNS's message, which is mostly ``Invalid parameter: <what>``.  The
codes and statuses are those of botocore's SNS model (``InvalidParameterValue``
is ``ParameterValueInvalid`` there).  The codec renders them; this module
only names them.
"""

from __future__ import annotations

from shoal.errors import ShoalError

NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"


class SnsError(ShoalError):
    """An error of SNS's API: ``type_name`` its model shape, ``code`` its query code."""

    namespace = NAMESPACE
    type_name = "InternalErrorException"
    code = "InternalError"
    status = 500

    @property
    def sender(self) -> bool:
        """Whether the client is at fault (the query protocol's ``Type``: Sender or Receiver)."""
        return self.status < 500

    @property
    def query_error(self) -> str:
        """``code;Sender`` (or ``;Receiver``), as the ``x-amzn-query-error`` header spells it."""
        return f"{self.code};{'Sender' if self.sender else 'Receiver'}"

    def to_body(self) -> dict:
        return {"__type": self.type_name, "message": self.message}


class InvalidParameter(SnsError):
    type_name = "InvalidParameterException"
    code = "InvalidParameter"
    status = 400


class InvalidParameterValue(SnsError):
    type_name = "InvalidParameterValueException"
    code = "ParameterValueInvalid"
    status = 400


class NotFound(SnsError):
    type_name = "NotFoundException"
    code = "NotFound"
    status = 404


class AuthorizationError(SnsError):
    type_name = "AuthorizationErrorException"
    code = "AuthorizationError"
    status = 403


class ValidationError(SnsError):
    """A required parameter missing: the service framework's check, which
    SNS reports as ``ValidationError`` with Coral's wording."""

    type_name = "ValidationException"
    code = "ValidationError"
    status = 400


class InvalidAction(SnsError):
    """An action SNS does not have, or one Shoal does not offer."""

    type_name = "InvalidAction"
    code = "InvalidAction"
    status = 400


class InternalError(SnsError):
    type_name = "InternalErrorException"
    code = "InternalError"
    status = 500
