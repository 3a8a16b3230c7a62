"""CPU per GetItem or PutItem in one process, capacity enforced or not:
two in-process Dispatchers side by side, rounds alternating; and the
Python bytecodes each request executes on either side.

    python bench/dispatch_cpu_ab.py [--op get|put] [--rounds 40] [--requests 2000] [--no-gc] [--aa]
    python bench/dispatch_cpu_ab.py --bytecodes [--op get|put]

Why: instruction counts (``bench/dispatch_instructions.py``) miss what
enforcement costs most.  Its fast path is a few dozen bytecodes, cheap
instructions each, but every one is an indirect jump in the interpreter's
dispatch that the branch predictor misses on a fresh sequence: on
2026-12-08 a GetItem's +2,178 instructions (+1.7%) came with +100 branch
mispredictions and +111 L1 data misses (cachegrind's simulation), and
cost +8-9% of its CPU here, as through HTTP (+4.4%, ``bench/overhead_ab.py``).
The number of bytecodes added is the better guide, and ``--bytecodes``
counts them (``sys.settrace`` with opcode events, per function).

The A/B: a dispatcher with capacity on and one with it off (``--aa``: both
off, the control), each with a table PROVISIONED at 40,000 read and write
units holding 100 items; per round each serves ``--requests`` GetItems (or
PutItems of new items), the order alternating, timed by
``time.thread_time``; the on/off ratio per round, its median and quartiles.
Both live in one process, so the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402

from shoal.server.dispatch import Dispatcher  # noqa: E402
from shoal.server.http import Request  # noqa: E402
from shoal.storage.lmdb_engine import LmdbEngine  # noqa: E402

HEADERS = {"content-type": "application/x-amz-json-1.0",
           "authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
                            "SignedHeaders=host, Signature=x"}
TABLE = "viewer_events"


def request(operation: str, body: dict) -> Request:
    return Request("POST", "/", {**HEADERS, "x-amz-target": "DynamoDB_20120810." + operation}, orjson.dumps(body),
                   ("127.0.0.1", 1), False)


def dispatcher(capacity: bool) -> Dispatcher:
    """A dispatcher (metrics on, as a server's) and its provisioned table of 100 events."""
    engine = LmdbEngine(os.path.join(tempfile.mkdtemp(), "db"), sync=False, map_size=1 << 30)
    out = Dispatcher(engine, metrics=True, capacity=capacity, group_commit=False)
    answer = out(request("CreateTable", {
        "TableName": TABLE, "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {"ReadCapacityUnits": 40000, "WriteCapacityUnits": 40000},
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"}]}))
    assert answer.status == 200, answer.body
    for i in range(100):
        out(request("PutItem", {"TableName": TABLE, "Item": {
            "user_id": {"S": f"u{i:08d}"}, "ts": {"N": "1700000000000"}, "event_type": {"S": "play"}}}))
    return out


def requests(op: str, n: int, round_: int) -> list:
    if op == "get":
        return [request("GetItem", {"TableName": TABLE, "Key": {"user_id": {"S": f"u{i % 100:08d}"},
                                                                 "ts": {"N": "1700000000000"}}}) for i in range(n)]
    return [request("PutItem", {"TableName": TABLE, "Item": {
        "user_id": {"S": f"u{i % 100:08d}"}, "ts": {"N": str(1700000000001 + round_ * n + i)},
        "event_type": {"S": "play"}}}) for i in range(n)]


def cpu_ab(op: str, rounds: int, n: int, collector: bool, aa: bool) -> str:
    sides = {True: dispatcher(not aa), False: dispatcher(False)}
    if not collector:
        gc.collect()
        gc.disable()
    ratios, times = [], {True: [], False: []}
    for k in range(rounds):
        spent = {}
        for side in ((True, False) if k % 2 == 0 else (False, True)):
            batch = requests(op, n, 2 * k + side)
            serve = sides[side]
            started = time.thread_time()
            for one in batch:
                serve(one)
            spent[side] = time.thread_time() - started
            times[side].append(spent[side])
        ratios.append(spent[True] / spent[False])
    quartiles = statistics.quantiles(ratios, n=4)
    label = "A/A (both off)" if aa else "capacity on / off"
    return (f"{op}: {label}: {statistics.median(times[True]) / n * 1e6:.2f} / "
            f"{statistics.median(times[False]) / n * 1e6:.2f} us per request; ratio median "
            f"{statistics.median(ratios):.4f} (quartiles {quartiles[0]:.4f} - {quartiles[2]:.4f}), {rounds} rounds")


def bytecodes(op: str, capacity: bool, n: int = 100) -> collections.Counter:
    """Bytecodes executed per request, by (file, function).  Each side writes
    items of its own (caches of encoded numbers must not favour the second)."""
    serve = dispatcher(capacity)
    first = 0 if capacity else 2
    warm, measured = requests(op, n, first), requests(op, n, first + 1)
    for one in warm:
        serve(one)
    counts: collections.Counter = collections.Counter()

    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            counts[(os.path.basename(frame.f_code.co_filename), frame.f_code.co_name)] += 1
        return tracer

    sys.settrace(tracer)
    try:
        for one in measured:
            serve(one)
    finally:
        sys.settrace(None)
    return collections.Counter({where: count / n for where, count in counts.items()})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--op", choices=("get", "put"), default="get")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-gc", action="store_true", help="no garbage collection during the rounds")
    parser.add_argument("--aa", action="store_true", help="the control: both dispatchers with capacity off")
    parser.add_argument("--bytecodes", action="store_true", help="count the bytecodes per request instead")
    args = parser.parse_args(argv)
    if args.bytecodes:
        on, off = bytecodes(args.op, True), bytecodes(args.op, False)
        print(f"{args.op}: {sum(on.values()):,.0f} bytecodes per request with capacity on, "
              f"{sum(off.values()):,.0f} off")
        for where in sorted(set(on) | set(off), key=lambda w: -abs(on[w] - off[w])):
            if abs(on[where] - off[where]) >= 0.5:
                print(f"  {on[where] - off[where]:+6.1f} {where[0]}:{where[1]}")
        return 0
    print(cpu_ab(args.op, args.rounds, args.requests, not args.no_gc, args.aa), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
