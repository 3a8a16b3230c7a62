"""Checks of SNS requests shared by the operations, with SNS's wording.

Two steps, as SNS takes them: the members the model requires
(``ValidationError``, in Coral's words: ``1 validation error detected: Value
null at 'topicArn' failed to satisfy constraint: Member must not be null``),
then SNS's own rules (``InvalidParameter``, mostly ``Invalid parameter:
<what>``), each operation's in ``topics``, ``subscriptions`` and
``publishing``.  NextToken is the key a page ended at, in base64.
"""

from __future__ import annotations

import base64
import binascii
import re

from shoal.errors import validation_errors
from shoal.sns.delivery import RetryPolicy
from shoal.sns.errors import InvalidParameter, ValidationError

TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}$")


class Required:
    """The members each operation's input requires, from botocore's SNS model (read once)."""

    _required: dict[str, list[str]] | None = None
    _names: frozenset = frozenset()

    @classmethod
    def operations(cls) -> frozenset:
        cls._load()
        return cls._names

    @classmethod
    def check(cls, operation: str, data: dict) -> None:
        cls._load()
        missing = [f"Value null at '{m[0].lower() + m[1:]}' failed to satisfy constraint: Member must not be null"
                   for m in cls._required.get(operation, ()) if data.get(m) is None]
        if missing:
            raise ValidationError(validation_errors(missing))

    @classmethod
    def _load(cls) -> None:
        if cls._required is None:
            import botocore.session

            model = botocore.session.get_session().get_service_model("sns")
            required = {}
            for name in model.operation_names:
                shape = model.operation_model(name).input_shape
                required[name] = list(shape.required_members) if shape is not None else []
            cls._names = frozenset(model.operation_names)
            cls._required = required


def text(data: dict, name: str) -> str | None:
    """A string member (None when absent)."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidParameter(f"Invalid parameter: {name}")
    return value


def flag(data: dict, name: str) -> bool:
    """A boolean member: a bool from JSON, "true"/"false" from a query string."""
    value = data.get(name)
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def topic_arn(arn: str, region: str, member: str = "TopicArn") -> str:
    """``arn`` if it is a topic ARN of ``region``, else SNS's complaint (a
    subscription's ARN, one element longer, is a bad topic name to SNS)."""
    parts = arn.split(":")
    if len(parts) < 6:
        raise InvalidParameter(f"Invalid parameter: {member} Reason: An ARN must have at least 6 elements, "
                               f"not {len(parts)}")
    if parts[0] != "arn" or parts[2] != "sns" or parts[3] != region:
        raise InvalidParameter(f"Invalid parameter: {member}")
    if len(parts) > 6 or not TOPIC_NAME.match(parts[5]):
        raise InvalidParameter("Invalid parameter: Topic Name")
    return arn


def delivery_policy(value: str, prefix: str) -> None:
    try:
        RetryPolicy.from_json(value)
    except (ValueError, TypeError) as exc:
        raise InvalidParameter(f"{prefix}DeliveryPolicy: {exc}") from None


def next_token(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def resume_after(token: str | None, prefix: bytes) -> bytes | None:
    """The key a NextToken resumes after; it must lie in ``prefix``'s range
    (a token of another listing, region or topic is refused)."""
    if token is None:
        return None
    try:
        key = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raise InvalidParameter("Invalid parameter: NextToken") from None
    if not key.startswith(prefix):
        raise InvalidParameter("Invalid parameter: NextToken")
    return key
