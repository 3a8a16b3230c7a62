"""DynamoDB numbers: parsing, limits and the normalized text form.

DynamoDB stores numbers as decimals of up to 38 significant digits with a magnitude
between 1E-130 and 9.9999999999999999999999999999999999999E+125 (or zero), and
returns them normalized: no exponent, no leading or trailing zeros, no "-0".
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, Rounded, localcontext

from shoal.errors import ValidationException

_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")

MAX_DIGITS = 38
MAX_EXPONENT = 125  # adjusted exponent of the largest magnitude
MIN_EXPONENT = -130  # adjusted exponent of the smallest magnitude

# Arithmetic in expressions (SET a = b + c) is exact within 38 digits; a result
# that needs rounding is an error in DynamoDB, so the context traps Inexact.
ARITHMETIC = Context(prec=MAX_DIGITS, traps=[Inexact, Rounded])


def parse_number(text: str) -> Decimal:
    """Parse and check the text of an N value; return it as a Decimal.

    Raises ValidationException with DynamoDB's messages for text that is not a
    number, or a number beyond DynamoDB's precision or range.
    """
    if not isinstance(text, str) or not _NUMBER_RE.match(text):
        raise ValidationException(
            f"The parameter cannot be converted to a numeric value: {text}"
        )
    value = Decimal(text)
    check_number(value)
    return value


def check_number(value: Decimal) -> None:
    """Raise the DynamoDB error if ``value`` cannot be stored as a Number."""
    if not value:
        return
    digits = value.as_tuple().digits
    significant = len(digits)
    # Trailing zeros of the coefficient are not significant.
    for d in reversed(digits):
        if d:
            break
        significant -= 1
    # Leading zeros are not significant either (Decimal keeps none except for 0).
    if significant > MAX_DIGITS:
        raise ValidationException(
            "Attempting to store more than 38 significant digits in a Number"
        )
    adjusted = value.adjusted()
    if adjusted > MAX_EXPONENT:
        raise ValidationException(
            "Number overflow. Attempting to store a number with magnitude larger than supported range"
        )
    if adjusted < MIN_EXPONENT:
        raise ValidationException(
            "Number underflow. Attempting to store a number with magnitude smaller than supported range"
        )


def format_number(value: Decimal) -> str:
    """The normalized text DynamoDB returns for a number."""
    if not value:
        return "0"
    with localcontext() as ctx:
        ctx.prec = 200
        text = format(value.normalize(), "f")
    return text


def normalize_number(text: str) -> str:
    """Parse, check and normalize the text of an N value."""
    return format_number(parse_number(text))


def add(a: Decimal, b: Decimal) -> Decimal:
    """a + b as DynamoDB computes it (exact, then range-checked)."""
    return _arith(a, b, "add")


def subtract(a: Decimal, b: Decimal) -> Decimal:
    return _arith(a, b, "subtract")


def _arith(a: Decimal, b: Decimal, op: str) -> Decimal:
    try:
        result = getattr(ARITHMETIC, op)(a, b)
    except (Inexact, Rounded):
        raise ValidationException(
            "Number overflow. Attempting to store a number with magnitude larger than supported range"
            if max(a.adjusted(), b.adjusted()) > 0
            else "Attempting to store more than 38 significant digits in a Number"
        ) from None
    check_number(result)
    return result
