"""No expression may reach into a key attribute.

A table's key attributes and its indexes' key attributes are scalars, so a
path such as ``pk.x`` or ``gsi_key[0]`` can never find anything.  DynamoDB
does not let such a path evaluate to "missing": any ConditionExpression,
FilterExpression, ProjectionExpression or UpdateExpression that has one is
refused, naming the first table key it reaches into ("Key: pk"), or failing
that the first index key ("IndexKey: g").  (DynamoDB's answers as recorded
in dynalite's tests for GetItem's ProjectionExpression and Scan's
FilterExpression; DynamoDB Local answers alike for every expression kind,
table keys before index keys.)

The check needs the table's schema, which expressions do not know: the
operation calls it once the table is known, with the ``nested_names`` its
bound expressions collected while binding.
"""

from __future__ import annotations

from shoal.errors import ValidationException

NESTED_KEY = "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: "


def check_scalar_keys(expressions, table_keys, index_keys) -> None:
    """Raise DynamoDB's ValidationException when one of ``expressions``
    (bound conditions, projections, updates; None entries are skipped) reaches
    into one of ``table_keys`` or, failing that, of ``index_keys``."""
    names = [name for expression in expressions if expression is not None
             for name in getattr(expression, "nested_names", ())]
    if not names:
        return
    for label, keys in (("Key", table_keys), ("IndexKey", index_keys)):
        for name in names:
            if name in keys:
                raise ValidationException(f"{NESTED_KEY}{label}: {name}")
