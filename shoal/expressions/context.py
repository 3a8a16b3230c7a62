"""ExpressionContext: one request's ExpressionAttributeNames and Values.

All expressions of a request (e.g. an UpdateExpression and its
ConditionExpression) are bound to one context, which records the placeholders
they use so that ``check_unused`` can reject the ones no expression used, with
DynamoDB's exact message.
"""

from __future__ import annotations

from shoal.errors import ValidationException


class ExpressionContext:
    """Names and values as sent by the client, plus what the expressions used."""

    __slots__ = ("names", "values", "used_names", "used_values")

    def __init__(self, names: dict | None = None, values: dict | None = None):
        self.names = names or {}
        self.values = values or {}
        self.used_names: set[str] = set()
        self.used_values: set[str] = set()

    def name(self, placeholder: str, kind: str) -> str:
        """The attribute name for ``#placeholder``; records the use."""
        try:
            value = self.names[placeholder]
        except KeyError:
            raise ValidationException(
                f"Invalid {kind}: An expression attribute name used in the document path is not defined; "
                f"attribute name: {placeholder}"
            ) from None
        self.used_names.add(placeholder)
        return value

    def value(self, placeholder: str, kind: str) -> dict:
        """The attribute value for ``:placeholder``; records the use."""
        try:
            value = self.values[placeholder]
        except KeyError:
            raise ValidationException(
                f"Invalid {kind}: An expression attribute value used in expression is not defined; "
                f"attribute value: {placeholder}"
            ) from None
        self.used_values.add(placeholder)
        return value

    def check_unused(self) -> None:
        """Reject names or values that no expression of the request used.

        Call after every expression of the request has been parsed.  Names are
        checked before values, as DynamoDB does.
        """
        unused = [k for k in self.names if k not in self.used_names]
        if unused:
            raise ValidationException(
                f"Value provided in ExpressionAttributeNames unused in expressions: keys: {{{_java_set_text(unused)}}}"
            )
        unused = [k for k in self.values if k not in self.used_values]
        if unused:
            raise ValidationException(
                f"Value provided in ExpressionAttributeValues unused in expressions: keys: {{{_java_set_text(unused)}}}"
            )


def _java_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), as an unsigned 32-bit int."""
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h


def _java_set_text(keys: list[str]) -> str:
    """The keys in the iteration order of a java.util.HashSet built from them.

    DynamoDB lists unused placeholders in that order; reproducing it makes the
    message byte-for-byte identical (e.g. "{#c, #a, #b}" for #b, #a, #c).
    """
    capacity = 16
    while len(keys) > capacity * 0.75:
        capacity *= 2
    buckets: dict[int, list[str]] = {}
    for key in keys:
        h = _java_hash(key)
        h ^= h >> 16
        buckets.setdefault(h & (capacity - 1), []).append(key)
    return ", ".join(k for index in sorted(buckets) for k in buckets[index])
