"""Arithmetic on numbers (UpdateExpression + and -, ADD) within DynamoDB's limits."""

from __future__ import annotations

from decimal import Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import ValidationException
from shoal.model.numbers import MAX_DIGITS, add, subtract

_EXACT = Context(prec=1000)
OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"


@pytest.mark.parametrize("a, b, result", [
    ("1e125", "0", "1E+125"),
    ("9.9999999999999999999999999999999999999e125", "0", "9.9999999999999999999999999999999999999E+125"),
    ("-7.185981015371e102", "-0", "-7.185981015371E+102"),
    ("1e125", "1e90", "1.00000000000000000000000000000000001E+125"),
    ("0.1", "0.2", "0.3"),
])
def test_exact_results_are_kept_however_far_apart_the_exponents(a, b, result):
    assert add(Decimal(a), Decimal(b)) == Decimal(result)
    assert subtract(Decimal(a), -Decimal(b)) == Decimal(result)


@pytest.mark.parametrize("a, b, message", [
    ("9.9999999999999999999999999999999999999e125", "1e125", OVERFLOW),  # too large
    ("4.4757710465e121", "0.1", OVERFLOW),  # would need 123 digits
    # Digits lost, in range once rounded: DynamoDB's overflow all the same (numbers._arith)
    ("1e50", "1", OVERFLOW),
    ("1e50", "-1", OVERFLOW),
    ("12345678901234567890123456789012345678", "0.5", OVERFLOW),
    ("9.9999999999999999999999999999999999999e125", "1", OVERFLOW),
    ("0.1", "1e-100", OVERFLOW),
    ("1", "1e-40", OVERFLOW),
])
def test_results_that_do_not_fit_are_refused(a, b, message):
    with pytest.raises(ValidationException) as info:
        add(Decimal(a), Decimal(b))
    assert info.value.message == message


_numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: d == 0 or (-130 <= d.adjusted() <= 125 and len(d.normalize().as_tuple().digits) <= MAX_DIGITS))


@given(_numbers, _numbers)
def test_a_result_is_either_exact_or_refused(a, b):
    try:
        result = add(a, b)
    except ValidationException:
        return
    assert result == _EXACT.add(a, b)
