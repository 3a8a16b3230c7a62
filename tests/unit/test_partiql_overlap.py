"""Overlapping sort key ranges in a SELECT's OR branches, without a server
(``translate.check_overlapping_ranges``).  The cases refused and read are those
recorded from DynamoDB (floci-io/floci's DynamoDbPartiQLEdgeCaseIntegrationTest,
eu-west-2, 2026-09-17; nubo-db/dynamodb-conformance, October 2026), on a table
of pk S and sk S, and their like on a number sort key."""

from __future__ import annotations

import pytest

from shoal.errors import ValidationException
from shoal.partiql import parse_statement
from shoal.partiql.translate import OVERLAPPING, check_overlapping_ranges

TYPES = {"pk": "S", "sk": "S", "n": "N"}


def check(text: str, range_key: str = "sk", params: list | None = None) -> None:
    where = parse_statement(f"SELECT * FROM t WHERE {text}").where
    check_overlapping_ranges(where, "pk", range_key, params or [], TYPES)


@pytest.mark.parametrize("text", [
    "pk = 'r' AND (sk > '0' OR sk < '5')",
    "pk = 'r' AND (sk = '1' OR flag = 'two')",
    "(pk = 'r' AND flag = 'one') OR (pk = 'r' AND flag = 'two')",
    "pk = 'a' AND x = '1' OR pk = 'a' AND sk = '2'",
    "pk = 'a' AND x <> '1' OR pk = 'a' AND sk = '2'",
    "pk = 'a' AND sk BETWEEN '1' AND '3' OR pk = 'a' AND sk >= '3'",
    "pk IN ['a', 'b'] AND (sk = '1' OR sk <= '1')",
    "(pk = 'a' OR pk = 'b') AND x = 1 OR pk = 'b' AND sk = '1'",
    "pk = ? AND sk = '1' OR pk = 'a' AND sk IN ['0', '1']",
])
def test_refused(text):
    with pytest.raises(ValidationException) as info:
        check(text, params=[{"S": "a"}])
    assert info.value.message == OVERLAPPING


@pytest.mark.parametrize("text", [
    "pk = 'r' AND (sk = '1' OR sk = '2')",
    "pk = 'r' AND sk IN ['1', '2']",
    "pk = 'r' AND (sk < '1' OR sk > '1' OR sk = '1')",
    "pk = 'r' AND attribute_exists(pk)",
    "pk = 'r' AND sk = '1' AND sk > '0'",
    "pk = 'r' OR sk = '1'",  # a branch without the partition: a scan
    "pk = 'X' AND NOT sk = '1' OR pk = 'X' AND sk = '2'",  # a negated sort key condition
    "pk = 'X' AND sk <> '1' OR pk = 'X' AND sk = '2'",
    "pk = 'X' AND NOT begins_with(sk, 'x') OR pk = 'X' AND sk = '2'",
    "pk = 'X' AND NOT sk IN ['1', '3'] OR pk = 'X' AND sk = '2'",
    "pk = 'X' OR pk = 'X' AND NOT sk = '1'",
    "(pk = 'y' AND projattr = '1') OR (pk = 'z' AND aa = '1')",  # two partitions
    "pk = 'y' AND (pk = 'z' OR zz = '1')",  # one branch cannot hold
    "(pk = 'y' AND zz = '1') OR aa = '1'",
    "pk = 'a' AND sk <= '1' OR pk = 'a' AND sk > '1'",
    "pk = 'a' AND sk > '5' AND sk < '2' OR pk = 'a'",  # an empty range reads nothing
    "pk = 'a' AND begins_with(sk, 'x') OR pk = 'a' AND sk = 'x1'",  # not recorded: left to the other rules
    "pk = 'a' AND sk = 1 OR pk = 'a'",  # a key of another type: the key rules answer
])
def test_read(text):
    check(text)


def test_numbers_compare_by_value():
    with pytest.raises(ValidationException):
        check("pk = 'a' AND n = 1 OR pk = 'a' AND n >= 1.0", range_key="n")
    check("pk = 'a' AND n < 10 OR pk = 'a' AND n >= 10", range_key="n")
    check("pk = 'a' AND n = 9 OR pk = 'a' AND n = 10", range_key="n")  # '9' > '10' as text, not as numbers


def test_a_table_without_a_sort_key():
    with pytest.raises(ValidationException):
        check("pk = 'a' AND x = 1 OR pk = 'a' AND y = 2", range_key=None)
    check("pk = 'a' AND x = 1 OR pk = 'b' AND y = 2", range_key=None)


def test_a_filter_of_several_values_is_no_branches():
    """An IN or an OR naming no key attribute is one filter: DynamoDB reads
    ``gsiPk = 'y' AND (projattr = 'proj1' OR projattr = 'proj2')`` (recorded)."""
    check("pk = 'y' AND (projattr = 'proj1' OR projattr = 'proj2')")
    check("pk = 'v0' AND flag IN ['a', 'b', 'c']")
    check("pk = 'g' AND m.k = 'v' AND (data = 'd' OR other = 'o')")
