"""One exception hierarchy for every error Shoal reports to a client.

Each error carries the AWS error type, the HTTP status and the message exactly as
DynamoDB words it.  Errors are raised where the rule lives and rendered to the wire
in one place (``shoal.server.dispatch``).
"""

from __future__ import annotations

DYNAMODB_NS = "com.amazonaws.dynamodb.v20120810"
CORAL_NS = "com.amazon.coral.service"
CORAL_VALIDATE_NS = "com.amazon.coral.validate"


class ShoalError(Exception):
    """Base of all client-visible errors."""

    type_name = "InternalServerError"
    namespace = DYNAMODB_NS
    status = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    @property
    def wire_type(self) -> str:
        return f"{self.namespace}#{self.type_name}"

    def to_body(self) -> dict:
        """The JSON object sent to the client (DynamoDB sends some errors,
        e.g. UnknownOperationException, without a message)."""
        if not self.message:
            return {"__type": self.wire_type}
        return {"__type": self.wire_type, "message": self.message}


class InternalServerError(ShoalError):
    type_name = "InternalServerError"
    status = 500


class ValidationException(ShoalError):
    type_name = "ValidationException"
    namespace = CORAL_VALIDATE_NS
    status = 400


#: The head of DynamoDB's ValidationException for a parameter value it refuses.
INVALID_PARAMETERS = "One or more parameter values were invalid: "


#: What the head of such a summary matches (to recognise one already made).
VALIDATION_ERRORS_PATTERN = r"\d+ validation errors? detected: "


def validation_errors(errors: list[str]) -> str:
    """Coral's summary of constraint violations: "N validation error(s)
    detected: " and the violations joined by "; "."""
    return f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: " + "; ".join(errors)


class KeySchemaMismatch(ValidationException):
    """A key that does not fit the table's key schema: an attribute missing,
    extra or of another type (unlike an empty or oversized key value).
    Transactions make it a cancellation reason; BatchWriteItem rewords it."""


class ValueWordingException(ValidationException):
    """A fault of one attribute value that DynamoDB words two ways: the older
    wording (``message``: BatchWriteItem, transactions, Scan...) and that of
    its newer request validation (``newer``: GetItem, Query, BatchGetItem,
    PutItem, UpdateItem, DeleteItem), which those operations report through
    ``newer_wording``."""

    def __init__(self, message: str, newer: str) -> None:
        super().__init__(message)
        self.newer = newer


def newer_wording(exc: ShoalError) -> ShoalError:
    """``exc`` as an operation with DynamoDB's newer request validation words it."""
    if isinstance(exc, ValueWordingException):
        return ValidationException(exc.newer)
    return exc


class SerializationException(ShoalError):
    type_name = "SerializationException"
    namespace = CORAL_NS
    status = 400

    def to_body(self) -> dict:
        # DynamoDB spells this error's member "Message", with a capital M.
        if not self.message:
            return {"__type": self.wire_type}
        return {"__type": self.wire_type, "Message": self.message}


class UnknownOperationException(ShoalError):
    type_name = "UnknownOperationException"
    namespace = CORAL_NS
    status = 400


class MissingAuthenticationTokenException(ShoalError):
    type_name = "MissingAuthenticationTokenException"
    namespace = CORAL_NS
    status = 400


class ResourceNotFoundException(ShoalError):
    type_name = "ResourceNotFoundException"
    status = 400


class ProvisionedThroughputExceededException(ShoalError):
    """A request over a table's or index's throughput (``shoal.capacity``),
    with the ThrottlingReasons DynamoDB has sent since 2025 (reason and the
    table's or index's ARN)."""

    type_name = "ProvisionedThroughputExceededException"
    status = 400

    def __init__(self, message: str, reasons: list | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []

    def to_body(self) -> dict:
        body = super().to_body()
        if self.reasons:
            body["ThrottlingReasons"] = self.reasons
        return body


class ResourceInUseException(ShoalError):
    type_name = "ResourceInUseException"
    status = 400


class TableNotFoundException(ShoalError):
    """The source table of a backup does not exist (CreateBackup)."""

    type_name = "TableNotFoundException"
    status = 400


class TableAlreadyExistsException(ShoalError):
    """The target table of a restore exists already."""

    type_name = "TableAlreadyExistsException"
    status = 400


class TableInUseException(ShoalError):
    type_name = "TableInUseException"
    status = 400


class BackupNotFoundException(ShoalError):
    type_name = "BackupNotFoundException"
    status = 400


class BackupInUseException(ShoalError):
    """Another backup operation (its creation, a deletion) holds the backup."""

    type_name = "BackupInUseException"
    status = 400


class PointInTimeRecoveryUnavailableException(ShoalError):
    """A point-in-time restore of a table whose point-in-time recovery is off."""

    type_name = "PointInTimeRecoveryUnavailableException"
    status = 400


class InvalidRestoreTimeException(ShoalError):
    """A point-in-time restore to a time outside the recovery window."""

    type_name = "InvalidRestoreTimeException"
    status = 400


class ContinuousBackupsUnavailableException(ShoalError):
    type_name = "ContinuousBackupsUnavailableException"
    status = 400


class LimitExceededException(ShoalError):
    type_name = "LimitExceededException"
    status = 400


class ConditionalCheckFailedException(ShoalError):
    type_name = "ConditionalCheckFailedException"
    status = 400

    def __init__(self, message: str = "The conditional request failed", item: dict | None = None) -> None:
        super().__init__(message)
        self.item = item

    def to_body(self) -> dict:
        body = super().to_body()
        if self.item is not None:
            body["Item"] = self.item
        return body


class ItemCollectionSizeLimitExceededException(ShoalError):
    type_name = "ItemCollectionSizeLimitExceededException"
    status = 400


class TransactionConflictException(ShoalError):
    type_name = "TransactionConflictException"
    status = 400


class NotImplementedOperation(ShoalError):
    """An operation of the API model that Shoal does not offer yet.

    DynamoDB itself never sends this; Shoal answers it (HTTP 400, so SDKs do not
    retry) rather than crash or pretend success.
    """

    type_name = "UnknownOperationException"
    namespace = CORAL_NS
    status = 400

    def __init__(self, operation: str) -> None:
        super().__init__(f"Shoal does not implement the operation {operation} yet")
