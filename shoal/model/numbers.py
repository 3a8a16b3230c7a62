"""DynamoDB numbers: parsing, limits and the normalized text form.

DynamoDB stores numbers as decimals of up to 38 significant digits with a magnitude
between 1E-130 and 9.9999999999999999999999999999999999999E+125 (or zero), and
returns them normalized: no exponent, no leading or trailing zeros, no "-0".
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext

from shoal.errors import ValidationException, ValueWordingException

_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")

MAX_DIGITS = 38
MAX_EXPONENT = 125  # adjusted exponent of the largest magnitude
MIN_EXPONENT = -130  # adjusted exponent of the smallest magnitude

# Arithmetic in expressions (SET a = b + c, ADD) is exact within 38 digits; a
# result that would lose digits is an error in DynamoDB, so the context traps
# Inexact (not Rounded: 1E+125 + 0 aligns to 126 digits, all but one of them
# zeros dropped exactly).  Such a result is refused as an overflow whatever
# its magnitude (``_arith``).
ARITHMETIC = Context(prec=MAX_DIGITS, traps=[Inexact])


def parse_number(text: str) -> Decimal:
    """Parse and check the text of an N value; return it as a Decimal.

    Raises ValidationException with DynamoDB's messages for text that is not a
    number, or a number beyond DynamoDB's precision or range.
    """
    if not isinstance(text, str) or not _NUMBER_RE.match(text):
        if not text:  # DynamoDB names no value when there is none
            raise ValueWordingException("The parameter cannot be converted to a numeric value",
                                        "The parameter cannot be converted to a numeric value: ")
        raise ValidationException(
            f"The parameter cannot be converted to a numeric value: {text}"
        )
    try:
        value = Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal holds (about 10**18)
        _huge_exponent(text)
    check_number(value)
    return value


def _huge_exponent(text: str):
    """The error for a number whose exponent Decimal cannot hold: DynamoDB
    cannot convert one past a 64-bit integer, and finds any other out of
    range."""
    written = text.lower().partition("e")[2]
    digits = written.lstrip("+-").lstrip("0") or "0"
    # A 64-bit integer has at most 19 digits (and Python converts at most 4,300 to an int).
    exponent = int(digits) if len(digits) <= 19 else 2**63
    if written.startswith("-"):
        exponent = -exponent
    if not -(2**63) <= exponent < 2**63:
        raise ValidationException(f"The parameter cannot be converted to a numeric value: {text}")
    raise ValidationException(_OVERFLOW if exponent > 0 else _UNDERFLOW)


_OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
_UNDERFLOW = "Number underflow. Attempting to store a number with magnitude smaller than supported range"


def check_number(value: Decimal) -> None:
    """Raise the DynamoDB error if ``value`` cannot be stored as a Number."""
    if not value:
        # Zero is in range, but not written with an exponent beyond the
        # limits: DynamoDB refuses 0E+126 and 0E-131 as it would 1E+126.
        adjusted = value.adjusted()
        if adjusted > MAX_EXPONENT:
            raise ValidationException(_OVERFLOW)
        if adjusted < MIN_EXPONENT:
            raise ValidationException(_UNDERFLOW)
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
        raise ValidationException(_OVERFLOW)
    if adjusted < MIN_EXPONENT:
        raise ValidationException(_UNDERFLOW)


def format_number(value: Decimal) -> str:
    """The normalized text DynamoDB returns for a number."""
    if not value:
        return "0"
    with localcontext() as ctx:
        ctx.prec = 200
        text = format(value.normalize(), "f")
    return text


# Text already in normalized form and short enough that it cannot break a limit
# (at most 38 characters: at most 38 digits, magnitude within 1E-37..1E38).
_NORMALIZED_SHORT = re.compile(r"(?:-?[1-9][0-9]*(?:\.[0-9]*[1-9])?|-?0\.[0-9]*[1-9]|0)\Z")
# For hot loops: true when text of at most MAX_DIGITS characters needs no normalizing.
is_normalized_short = _NORMALIZED_SHORT.match


def normalize_number(text: str) -> str:
    """Parse, check and normalize the text of an N value.

    Most numbers clients send (integers, timestamps, prices) are already
    normalized; those are recognised by one regular expression and returned
    as they are, without a round trip through Decimal.
    """
    if type(text) is str and len(text) <= MAX_DIGITS and _NORMALIZED_SHORT.match(text):
        return text
    return format_number(parse_number(text))


def add(a: Decimal, b: Decimal) -> Decimal:
    """a + b as DynamoDB computes it (exact, then range-checked)."""
    return _arith(a, b, "add")


def subtract(a: Decimal, b: Decimal) -> Decimal:
    return _arith(a, b, "subtract")


def _arith(a: Decimal, b: Decimal, op: str) -> Decimal:
    """a op b in 38 digits.  A result those digits cannot hold exactly is
    DynamoDB's "Number overflow", even when, rounded, it would be in range
    (1e50 + 1, 0.1 + 1e-100): the one number error the API Reference lists
    among an update expression's failures (TransactWriteItems'
    CancellationReasons: "Number overflow. Attempting to store a number with
    magnitude larger than supported range"), and DynamoDB's recorded answer
    to 1e50 + 1 and 1e50 - 1 (ScyllaDB Alternator's
    test_update_expression_plus_imprecise, run against DynamoDB).  The
    38-digit message is the one for a value sent with too many digits
    (``check_number``); DynamoDB Local answers its own "DynamoDB only
    supports precision up to 38 digits" to both."""
    try:
        result = getattr(ARITHMETIC, op)(a, b)
    except Inexact:
        raise ValidationException(_OVERFLOW) from None
    check_number(result)
    return result


def number_parts(text: str) -> tuple[bool, int, str]:
    """Split the text of an N value into (negative, adjusted exponent, digits).

    ``digits`` are the significant digits without leading or trailing zeros, and
    the first of them has weight 10**adjusted, so "-123.45" gives
    (True, 2, "12345") and "0.007" gives (False, -3, "7").  Zero gives
    (False, 0, "").  Key encoding and item sizes both work from these parts;
    normalized text (no exponent) is split with string operations only, which
    is several times cheaper than going through Decimal.
    """
    negative = text[:1] == "-"
    body = text[1:] if negative or text[:1] == "+" else text
    if "e" in body or "E" in body:
        return _decimal_parts(Decimal(text))
    whole, _, fraction = body.partition(".")
    whole = whole.lstrip("0")
    if whole:
        digits = (whole + fraction).rstrip("0")
        return negative, len(whole) - 1, digits
    significant = fraction.lstrip("0")
    if not significant:
        return False, 0, ""
    return negative, len(significant) - len(fraction) - 1, significant.rstrip("0")


def _decimal_parts(value: Decimal) -> tuple[bool, int, str]:
    if not value:
        return False, 0, ""
    sign, digit_tuple, _ = value.as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0").rstrip("0")
    return bool(sign), value.adjusted(), digits


def text_from_parts(negative: bool, adjusted: int, digits: str) -> str:
    """The normalized text of the number (negative, adjusted, digits) describe;
    the inverse of ``number_parts`` for normalized text."""
    if not digits:
        return "0"
    count = len(digits)
    if adjusted >= count - 1:
        text = digits + "0" * (adjusted - count + 1)
    elif adjusted >= 0:
        text = digits[: adjusted + 1] + "." + digits[adjusted + 1 :]
    else:
        text = "0." + "0" * (-adjusted - 1) + digits
    return "-" + text if negative else text
