"""Capacity for requests served off the worker's loop (shoal.capacity.off_loop:
an MRSC table's rounds), driven through a real in-process Dispatcher's
capacity hook from another thread: admitted while the table's allowances
hold, refused with the table's throttle after, what the request metered
charged when it ends (failed or not) and handed on to the meter it had;
nothing more on the loop's own thread, and the loop's metered request never
settled from another thread."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from shoal.api.common import meter_item_write
from shoal.capacity.off_loop import NO_CHARGE
from shoal.errors import ProvisionedThroughputExceededException
from shoal.server.dispatch import Dispatcher
from tests.unit.test_capacity_admission import provisioned


@pytest.fixture
def dispatcher(engine):
    dispatcher = Dispatcher(engine, metrics=False, capacity=True, group_commit=False)
    yield dispatcher
    dispatcher.capacity.shared.close()


def _table(dispatcher, name: str):
    with dispatcher.engine.read() as txn:
        return dispatcher.catalog.get(txn, "us-east-1", name)


def _elsewhere(work):
    """``work()`` on a thread of its own: what it returned, or raised."""
    out = {}

    def run():
        try:
            out["value"] = work()
        except Exception as exc:  # handed back to the test
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _write(capacity, table, units: float, outer: list | None, fail: bool = False):
    """A write of ``units`` off the loop, metered as strong.py meters it; with ``fail``, raising after."""
    ctx = SimpleNamespace(meter=outer)
    with capacity.off_loop(ctx, table, True):
        meter_item_write(ctx, table.name, units, None)
        if fail:
            raise ValueError("the condition failed")
    return ctx.meter


def test_a_request_off_the_loop_is_charged_and_refused_once_the_burst_is_spent(dispatcher):
    table_id = provisioned(dispatcher, "mrsc_like", wcu=1)  # one unit a second: a burst of 300
    table = _table(dispatcher, "mrsc_like")
    capacity = dispatcher.capacity
    metrics = []
    assert _elsewhere(lambda: _write(capacity, table, 250.0, metrics)) is metrics  # the meter it had, back
    assert metrics == [("mrsc_like", 250.0)]  # the metrics get what it metered
    with pytest.raises(ValueError):  # a failed request (a failed condition) is charged all the same
        _elsewhere(lambda: _write(capacity, table, 60.0, None, fail=True))
    with pytest.raises(ProvisionedThroughputExceededException) as refused:  # 310 units of a burst of 300
        _elsewhere(lambda: _write(capacity, table, 1.0, None))
    assert refused.value.reasons == [{"reason": "TableWriteProvisionedThroughputExceeded",
                                      "resource": table.description["TableArn"]}]
    assert capacity.shared.taken(f"{table_id}//write") == pytest.approx(300.0, abs=1.0)  # the bucket's all


def test_on_the_loops_thread_or_without_limits_nothing_more_is_done(dispatcher):
    provisioned(dispatcher, "limited")
    capacity = dispatcher.capacity
    assert capacity.off_loop(SimpleNamespace(meter=None), _table(dispatcher, "limited"), True) is NO_CHARGE
    dispatcher(_request("CreateTable", {
        "TableName": "free", "BillingMode": "PAY_PER_REQUEST", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}))
    free = _table(dispatcher, "free")
    assert _elsewhere(lambda: capacity.off_loop(SimpleNamespace(meter=None), free, True)) is NO_CHARGE


def test_another_thread_never_settles_the_loops_metered_request(dispatcher):
    provisioned(dispatcher, "scanned")
    table = _table(dispatcher, "scanned")
    capacity = dispatcher.capacity
    loop_ctx = SimpleNamespace(meter=None)
    capacity.current = ("Scan", False, {"TableName": "scanned"}, loop_ctx)
    capacity.admit(table)  # a Scan: metered apart, settled when it ends
    entries = loop_ctx.meter
    assert capacity.metered is entries
    other = SimpleNamespace(meter=["another request's"])
    _elsewhere(lambda: capacity.settle(other))  # (the dispatcher's job of an off-loop request does this)
    assert capacity.metered is entries and other.meter == ["another request's"] and loop_ctx.meter is entries
    capacity.current = None
    capacity.settle(loop_ctx)
    assert capacity.metered is None and loop_ctx.meter is None


def _request(operation: str, body: dict):
    import orjson

    from shoal.server.http import Request
    from tests.unit.test_capacity_admission import HEADERS

    return Request("POST", "/", {**HEADERS, "x-amz-target": "DynamoDB_20120810." + operation},
                   orjson.dumps(body), ("127.0.0.1", 1), False)
