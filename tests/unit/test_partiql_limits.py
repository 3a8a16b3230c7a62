"""PartiQL's IN limits without a server: 100 values in an IN (the parser),
50 reads a SELECT's key conditions decompose into (``translate``); the key of
a batch's or transaction's SELECT, where a one-value IN is an equality."""

from __future__ import annotations

import pytest

from shoal.errors import ValidationException
from shoal.partiql import parse_statement
from shoal.partiql.translate import (
    DECOMPOSED_READS,
    check_decomposed_reads,
    key_options,
    partition_options,
    single_item_key,
)


def values(count: int, prefix: str = "v") -> str:
    return ", ".join(f"'{prefix}{i}'" for i in range(count))


def where(text: str):
    return parse_statement(f"SELECT * FROM t WHERE {text}").where


def message_of(call, *args):
    with pytest.raises(ValidationException) as info:
        call(*args)
    return info.value.message


@pytest.mark.parametrize("statement", [
    "SELECT * FROM t WHERE a IN [{}]",
    "SELECT * FROM t WHERE NOT a IN ({})",
    "SELECT * FROM t WHERE pk = 'x' OR a NOT IN [{}]",
    "UPDATE t SET b = 1 WHERE pk = 'x' AND a IN [{}]",
    "DELETE FROM t WHERE pk = 'x' AND a IN [{}]",
    "EXISTS(SELECT * FROM t WHERE pk = 'x' AND a IN [{}])",
])
def test_an_in_of_a_hundred_values_parses_one_of_a_hundred_and_one_is_refused(statement):
    parse_statement(statement.format(values(100)))
    assert message_of(parse_statement, statement.format(values(101))) == (
        "The IN operator is provided with too many operands; number of operands: 101")


def test_the_operand_count_comes_after_the_statement_is_well_formed():
    text = f"SELECT * FROM t WHERE a IN [{values(101)}] AND"
    assert message_of(parse_statement, text).startswith("Statement wasn't well formed")
    text = f"SELECT * FROM t WHERE a IN [{values(120)}] AND b IN [{values(101)}]"
    assert message_of(parse_statement, text).endswith("number of operands: 120")


@pytest.mark.parametrize("condition, count", [
    (f"pk IN [{values(50)}]", 50),
    (" OR ".join(f"pk = 'v{i}'" for i in range(50)), 50),
    (f"pk IN [{values(25)}] OR pk IN [{values(25, 'w')}]", 50),
    (f"pk IN [{values(50)}] AND sk = 'x'", 50),
])
def test_fifty_partitions_are_options_fifty_one_are_refused(condition, count):
    assert len(partition_options(where(condition), "pk")[0]) == count
    more = condition.replace("'v0'", "'v0', 'extra'", 1) if "IN" in condition else condition + " OR pk = 'extra'"
    assert message_of(partition_options, where(more), "pk") == DECOMPOSED_READS
    assert len(key_options(where(more), "pk")[0]) == count + 1  # key_options has no limit


@pytest.mark.parametrize("condition", [
    f"pk = 'a' AND sk IN [{values(51)}]",
    f"pk = 'a' AND ({' OR '.join(f'sk = {i}' for i in range(51))})",
    f"pk IN [{values(26)}] AND sk IN ['1', '2']",
    f"pk IN [{values(51)}]",
    f"(pk = 'a' OR pk = 'b') AND sk IN [{values(26)}]",
])
def test_reads_over_fifty_are_refused(condition):
    assert message_of(check_decomposed_reads, where(condition), "pk", "sk") == DECOMPOSED_READS


@pytest.mark.parametrize("condition, range_key", [
    (f"pk = 'a' AND sk IN [{values(50)}]", "sk"),
    (f"pk IN [{values(25)}] AND sk IN ['1', '2']", "sk"),
    (f"pk IN [{values(50)}] AND flag IN [{values(100)}]", "sk"),
    (f"pk IN [{values(51)}] OR flag = 'x'", "sk"),  # a scan
    (f"sk IN [{values(100)}]", "sk"),  # no partition: a scan
    (f"pk = 'a' AND sk IN [{values(100)}]", None),  # no sort key: a filter
])
def test_reads_up_to_fifty_and_scans_pass(condition, range_key):
    check_decomposed_reads(where(condition), "pk", range_key)


# ---------------------------------------------------------------- a batch's or transaction's single item

@pytest.mark.parametrize("condition, key, rest", [
    ("pk IN ['a'] AND sk IN ['1']", {"pk": {"S": "a"}, "sk": {"S": "1"}}, 0),
    ("(pk IN ['a']) AND pk = 'a' AND sk = '2'", {"pk": {"S": "a"}, "sk": {"S": "2"}}, 0),
    ("(sk = '1') AND pk = 'k' AND pk = 'k'", {"pk": {"S": "k"}, "sk": {"S": "1"}}, 0),
    ("pk IN ['b'] AND pk = 'a' AND sk = '1'", {"pk": {"S": "b"}, "sk": {"S": "1"}}, 1),
    ("pk = 'k' AND sk = '1' AND pk = 'r'", {"pk": {"S": "k"}, "sk": {"S": "1"}}, 1),
    ("pk IN ['a', 'b'] AND sk = '1'", {"sk": {"S": "1"}}, 1),
    ("pk = 'a' AND sk = '1' AND flag = 'x'", {"pk": {"S": "a"}, "sk": {"S": "1"}}, 1),
])
def test_single_item_key(condition, key, rest):
    found, others = single_item_key(where(condition), ("pk", "sk"), [])
    assert found == key and len(others) == rest
