"""PartiQL's limits on IN (issue 21): 100 values in any IN, 50 partitions a SELECT reads.

The Developer Guide's PartiQL operators page: IN takes "at max 50 hash
attribute values or at max 100 non-key attribute values".  DynamoDB's answers
and words, as recorded against it (eu-west-2, 2026-09-17, in
floci-io/floci's DynamoDbPartiQLEdgeCaseIntegrationTest): an IN of 101 values
is refused in any statement ("The IN operator is provided with too many
operands; number of operands: 101", with the transaction's "Validation failed
in TransactStatements[0]: " before it); a SELECT naming 51 partitions is
refused ("Too many decomposed read operations for a given query."); one whose
IN on the partition key sits in an OR with a non-key condition is a scan, and
runs.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique_name

S = lambda text: {"S": text}  # noqa: E731
TOO_MANY_READS = "Too many decomposed read operations for a given query."


def operands(count: int) -> str:
    return "The IN operator is provided with too many operands; number of operands: " + str(count)


def values(count: int, prefix: str = "v") -> str:
    return ", ".join(f"'{prefix}{i}'" for i in range(count))


@pytest.fixture(scope="module")
def table(ddb):
    """A table (pk S, sk S): partitions v0 and v1, two items each."""
    name = unique_name("pqlimits")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}])
    for pk in ("v0", "v1"):
        for sk in ("1", "2"):
            ddb.put_item(TableName=name, Item={"pk": S(pk), "sk": S(sk), "flag": S("v" + sk)})
    yield name
    ddb.delete_table(TableName=name)


def refusal(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def select(ddb, text: str) -> list:
    return sorted((item["pk"]["S"], item["sk"]["S"]) for item in ddb.execute_statement(Statement=text)["Items"])


def test_fifty_partitions_are_read_fifty_one_refused(ddb, table):
    base = f'SELECT pk, sk FROM "{table}" WHERE '
    assert select(ddb, base + f"pk IN [{values(50)}]") == [("v0", "1"), ("v0", "2"), ("v1", "1"), ("v1", "2")]
    for where in (f"pk IN [{values(51)}]",
                  " OR ".join(f"pk = 'v{i}'" for i in range(51)),
                  f"pk IN [{values(30)}] OR pk IN [{values(21, 'w')}]",
                  f"pk IN [{values(51)}] AND sk = '1'"):
        assert refusal(ddb.execute_statement, Statement=base + where) == ("ValidationException", TOO_MANY_READS)
    # An OR with a condition on another attribute reads no partition by key: a scan, whatever its IN
    assert select(ddb, base + f"pk IN [{values(51)}] OR flag = 'v2'") == [
        ("v0", "1"), ("v0", "2"), ("v1", "1"), ("v1", "2")]
    assert select(ddb, base + f"pk IN [{values(50)}] AND flag IN [{values(100)}]") == [
        ("v0", "1"), ("v0", "2"), ("v1", "1"), ("v1", "2")]
    # the server still serves, the partitions read as before
    assert select(ddb, base + "pk IN ['v1']") == [("v1", "1"), ("v1", "2")]


def test_an_in_of_more_than_a_hundred_values_is_refused_in_every_statement(ddb, table):
    where = f"pk = 'v0' AND sk = '1' AND flag IN [{values(101)}]"
    statements = (f'SELECT * FROM "{table}" WHERE pk = \'v0\' AND flag IN [{values(101)}]',
                  f'SELECT * FROM "{table}" WHERE pk IN [{values(101)}]',  # before the 50 partitions
                  f'SELECT * FROM "{table}" WHERE flag NOT IN [{values(101)}]',
                  f'UPDATE "{table}" SET t = 1 WHERE {where}',
                  f'DELETE FROM "{table}" WHERE {where}')
    for text in statements:
        assert refusal(ddb.execute_statement, Statement=text) == ("ValidationException", operands(101))
    # the first IN over the limit is named
    text = f'SELECT * FROM "{table}" WHERE flag IN [{values(102)}] AND sk IN [{values(150)}]'
    assert refusal(ddb.execute_statement, Statement=text) == ("ValidationException", operands(102))
    # a statement not well formed further on is refused as such first
    _, message = refusal(ddb.execute_statement, Statement=f'SELECT * FROM "{table}" WHERE flag IN [{values(101)}] x')
    assert message.startswith("Statement wasn't well formed")
    # exactly 100 values are accepted
    text = f'SELECT pk, sk FROM "{table}" WHERE pk = \'v0\' AND flag IN [{values(100)}]'
    assert select(ddb, text) == [("v0", "1"), ("v0", "2")]
    assert "t" not in ddb.get_item(TableName=table, Key={"pk": S("v0"), "sk": S("1")})["Item"]


def test_transactions_and_batches_refuse_an_in_of_more_than_a_hundred_values(ddb, table):
    read = f'SELECT * FROM "{table}" WHERE pk IN [{values(101)}] AND sk = \'1\''
    write = f'UPDATE "{table}" SET t = 1 WHERE pk = \'v0\' AND sk = \'1\' AND flag IN [{values(101)}]'
    for text in (read, write):
        assert refusal(ddb.execute_transaction, TransactStatements=[{"Statement": text}]) == (
            "ValidationException", "Validation failed in TransactStatements[0]: " + operands(101))
    ok = f'SELECT pk FROM "{table}" WHERE pk = \'v1\' AND sk = \'2\''
    out = ddb.batch_execute_statement(Statements=[{"Statement": read}, {"Statement": ok}])["Responses"]
    assert out[0]["Error"] == {"Code": "ValidationError", "Message": operands(101)}
    assert out[1]["Item"] == {"pk": S("v1")}
    assert "t" not in ddb.get_item(TableName=table, Key={"pk": S("v0"), "sk": S("1")})["Item"]


def test_sort_key_values_multiply_the_reads(ddb, table):
    """A SELECT's reads are its partitions times the sort key values it names
    (recorded: ``pk = 'a' AND sk IN [51 values]`` and ``pk IN [26 values] AND
    sk IN [2 values]`` refused)."""
    base = f'SELECT pk, sk FROM "{table}" WHERE '
    for where in (f"pk = 'v0' AND sk IN [{values(51)}]",
                  f"pk IN [{values(26)}] AND sk IN ['1', '2']",
                  f"(pk = 'v0' OR pk = 'v1') AND ({' OR '.join(f'sk = {chr(39)}{i}{chr(39)}' for i in range(26))})"):
        assert refusal(ddb.execute_statement, Statement=base + where) == ("ValidationException", TOO_MANY_READS)
    assert select(ddb, base + f"pk = 'v0' AND sk IN ['1', {values(49, 'x')}]") == [("v0", "1")]
    assert select(ddb, base + f"pk IN [{values(25)}] AND sk IN ['1', '2']") == [
        ("v0", "1"), ("v0", "2"), ("v1", "1"), ("v1", "2")]
    assert select(ddb, base + f"sk IN [{values(99)}, '2']") == [
        ("v0", "2"), ("v1", "2")]  # no partition named: a scan, whatever its IN


def test_batches_and_transactions_refuse_more_than_fifty_reads(ddb, table):
    """Before their own rule that a SELECT names one item (recorded for a
    batch: "Too many decomposed read operations for a given query."; a
    transaction names the statement, as it does for its other faults)."""
    read = f'SELECT * FROM "{table}" WHERE pk IN [{values(51)}] AND sk = \'1\''
    out = ddb.batch_execute_statement(Statements=[{"Statement": read}])["Responses"]
    assert out == [{"Error": {"Code": "ValidationError", "Message": TOO_MANY_READS}}]
    assert refusal(ddb.execute_transaction, TransactStatements=[{"Statement": read}]) == (
        "ValidationException", "Validation failed in TransactStatements[0]: " + TOO_MANY_READS)
    two = f'SELECT * FROM "{table}" WHERE pk IN [{values(2)}] AND sk = \'1\''
    out = ddb.batch_execute_statement(Statements=[{"Statement": two}])["Responses"]
    assert out == [{"Error": {"Code": "ValidationError", "Message": (
        "Select statements within BatchExecuteStatement must specify the primary key in the where clause.")}}]


def test_a_batch_or_transaction_select_names_its_key_with_a_one_value_in(ddb, table):
    """DynamoDB's answers, recorded in eu-west-2 on 2026-09-17 (floci-io/floci's
    DynamoDbPartiQLEdgeCaseIntegrationTest): a one-value IN names a key
    attribute, an equality repeated with the same value is no further
    condition; another value for the key is refused."""
    t = f'"{table}"'
    reads = [f"SELECT sk FROM {t} WHERE pk IN ['v0'] AND sk IN ['1']",
             f"SELECT sk FROM {t} WHERE (pk IN ['v1']) AND pk = 'v1' AND sk = '2'",
             f"SELECT sk FROM {t} WHERE (sk = '2') AND pk = 'v0' AND pk = 'v0'"]
    out = ddb.execute_transaction(TransactStatements=[{"Statement": text} for text in reads])["Responses"]
    assert out == [{"Item": {"sk": S("1")}}, {"Item": {"sk": S("2")}}, {"Item": {"sk": S("2")}}]
    out = ddb.batch_execute_statement(Statements=[{"Statement": reads[0]}])["Responses"]
    assert out == [{"TableName": table, "Item": {"sk": S("1")}}]
    refused = f"SELECT sk FROM {t} WHERE pk IN ['v1'] AND pk = 'v0' AND sk = '1'"
    assert refusal(ddb.execute_transaction, TransactStatements=[{"Statement": refused}]) == (
        "ValidationException", "Validation failed in TransactStatements[0]: "
        "Select statements within ExecuteTransaction must specify the primary key in the where clause.")


def test_a_transaction_or_batch_select_naming_a_partition_twice_is_refused(ddb, table):
    """DynamoDB's answer, recorded in eu-west-2 on 2026-09-17 (floci-io/floci's
    DynamoDbPartiQLEdgeCaseIntegrationTest): a transaction's ``pk IN ['a',
    'a'] AND sk = '1'`` is refused as overlapping, as an ExecuteStatement's
    is, not as naming no single item.  A batch's member (not recorded) says
    the same in its Error."""
    overlapping = "Overlapping conditions with range keys are not supported in where clause"
    for where in ("pk IN ['v0', 'v0'] AND sk = '1'", "(pk = 'v0' OR pk = 'v0') AND sk = '1'"):
        read = f'SELECT * FROM "{table}" WHERE {where}'
        assert refusal(ddb.execute_transaction, TransactStatements=[{"Statement": read}]) == (
            "ValidationException", "Validation failed in TransactStatements[0]: " + overlapping)
        out = ddb.batch_execute_statement(Statements=[{"Statement": read}])["Responses"]
        assert out == [{"Error": {"Code": "ValidationError", "Message": overlapping}}]
    # two partitions, each once: still no single item
    two = f'SELECT * FROM "{table}" WHERE pk IN [\'v0\', \'v1\'] AND sk = \'1\''
    assert refusal(ddb.execute_transaction, TransactStatements=[{"Statement": two}]) == (
        "ValidationException", "Validation failed in TransactStatements[0]: "
        "Select statements within ExecuteTransaction must specify the primary key in the where clause.")
