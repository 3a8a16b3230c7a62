"""The pure parts of bulk put items (``shoal.api.bulk``): the pace that
MaxWriteRequestUnits sets, ARNs, and the DYNAMODB_JSON line with a condition."""

from __future__ import annotations

import pytest

from shoal.api.bulk import Pacer, _json_line, _operation_id
from shoal.api.imports import ItemError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_waits_until_the_units_fit_the_rate():
    clock = Clock()
    pacer = Pacer(1024, clock)
    assert pacer.spent(512) == pytest.approx(0.5)  # 512 units at 1024 a second: half a second from the start
    clock.now += 0.5
    assert pacer.spent(1024) == pytest.approx(1.0)
    clock.now += 1.25  # a chunk that took longer than its units: the time already passed counts
    assert pacer.spent(512) == pytest.approx(0.25)
    clock.now += 10.0  # a slow spell is credited for one second only
    assert pacer.spent(2048) == pytest.approx(1.0)


def test_pacer_without_a_rate_never_waits():
    assert Pacer(None, Clock()).spent(10**9) == 0.0


def test_operation_ids_come_from_bulk_operation_arns_only():
    table = "arn:aws:dynamodb:us-east-1:000000000000:table/events"
    assert _operation_id(f"{table}/bulk-operation/01765000000000-0a1b2c3d") == "01765000000000-0a1b2c3d"
    assert _operation_id(f"{table}/import/01765000000000-0a1b2c3d") is None
    assert _operation_id(f"{table}/bulk-operation/") is None
    assert _operation_id("table/events/bulk-operation/01765000000000-0a1b2c3d") is None


def test_a_json_line_holds_an_item_and_perhaps_its_condition():
    item = {"user_id": {"S": "u00000001"}, "ts": {"N": "1"}}
    assert _json_line(b'{"Item": {"user_id": {"S": "u00000001"}, "ts": {"N": "1"}}}') == item
    line = (b'{"Item": {"user_id": {"S": "u00000001"}, "ts": {"N": "1"}}, "ConditionExpression": "#a > :v",'
            b' "ExpressionAttributeNames": {"#a": "ts"}, "ExpressionAttributeValues": {":v": {"N": "0"}}, "x": 1}')
    assert _json_line(line) == (item, {"ConditionExpression": "#a > :v", "ExpressionAttributeNames": {"#a": "ts"},
                                       "ExpressionAttributeValues": {":v": {"N": "0"}}})
    with pytest.raises(ItemError, match='must be an object with a member "Item"'):
        _json_line(b'[{"Item": {}}]')
    with pytest.raises(ItemError, match="^Unexpected JSON: "):
        _json_line(b"{")
