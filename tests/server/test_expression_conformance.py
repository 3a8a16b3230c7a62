"""Expression faults the differential fuzz (bench/expression_fuzz.py) found,
reproduced through boto3 against a real server: what a condition, a filter
and an update decide, the exact error of a bad request, and the server still
serving after it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_table

ITEM = {"pk": {"S": "emoji"}, "s": {"S": "é𝄞"}, "l": {"L": [{"S": "😀"}, {"S": "ab"}]}}


@pytest.fixture(scope="module")
def strings(ddb):
    """A table keyed by 'pk' holding one item whose strings reach beyond the BMP."""
    name = create_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item=ITEM)
    yield name
    ddb.delete_table(TableName=name)


def test_condition_sizes_strings_in_utf16_code_units(ddb, strings):
    """size("é𝄞") is 3 (𝄞 is two UTF-16 units), as DynamoDB answers it; Shoal said 2."""
    ddb.update_item(TableName=strings, Key={"pk": {"S": "emoji"}}, UpdateExpression="SET touched = :one",
                    ConditionExpression="size(s) = :three AND size(l[0]) = :two",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":three": {"N": "3"}, ":two": {"N": "2"}})
    item = ddb.get_item(TableName=strings, Key={"pk": {"S": "emoji"}}, ConsistentRead=True)["Item"]
    assert item["touched"] == {"N": "1"}
    with pytest.raises(ClientError) as info:
        ddb.delete_item(TableName=strings, Key={"pk": {"S": "emoji"}}, ConditionExpression="size(s) = :two",
                        ExpressionAttributeValues={":two": {"N": "2"}})
    assert info.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert info.value.response["Error"]["Message"] == "The conditional request failed"
    assert "Item" in ddb.get_item(TableName=strings, Key={"pk": {"S": "emoji"}}, ConsistentRead=True)


def test_filter_sizes_strings_in_utf16_code_units(ddb, strings):
    answer = ddb.scan(TableName=strings, ConsistentRead=True, FilterExpression="size(l[0]) > :one",
                      ProjectionExpression="l[0]", ExpressionAttributeValues={":one": {"N": "1"}})
    assert answer["Items"] == [{"l": {"L": [{"S": "😀"}]}}]
    assert answer["ScannedCount"] == 1
    answer = ddb.scan(TableName=strings, ConsistentRead=True, FilterExpression="size(s) < :three",
                      ExpressionAttributeValues={":three": {"N": "3"}})
    assert answer["Items"] == []


def test_size_of_a_value_and_a_refused_operand(ddb, strings):
    """size() of a string value counts the same way; of a number it is
    refused, and the server serves on."""
    answer = ddb.scan(TableName=strings, Select="COUNT", FilterExpression="size(:s) = :n",
                      ExpressionAttributeValues={":s": {"S": "😀"}, ":n": {"N": "2"}})
    assert answer["Count"] == 1
    with pytest.raises(ClientError) as info:
        ddb.scan(TableName=strings, FilterExpression="size(:s) = :n",
                 ExpressionAttributeValues={":s": {"N": "12"}, ":n": {"N": "2"}})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"] == (
        "Invalid FilterExpression: Incorrect operand type for operator or function; "
        "operator or function: size, operand type: N")
    item = ddb.get_item(TableName=strings, Key={"pk": {"S": "emoji"}}, ConsistentRead=True)["Item"]
    assert item["s"] == {"S": "é𝄞"}
