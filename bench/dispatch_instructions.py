"""Instructions per GetItem or PutItem inside one process, through
``Dispatcher.__call__`` (no HTTP, no event loop, no background rounds, no
group commit): what a switch costs on the request path itself, free of the
wall-clock effects that move ``bench/instructions.py``'s server-side counts.

    python bench/dispatch_instructions.py [--requests 5000] [--capacity on|off] [--ops get,put] [--no-gc]
        [--table unlimited|provisioned|maximums]

For each operation, metrics off and on, it runs this file under cachegrind
twice, with 0 and with N requests (GetItems of a 100-item
viewer-events-shaped table; PutItems of new items to it), and prints the
difference divided by N (the flush of the recorded figures at the end
included).

``--table`` chooses the table's kind: ``unlimited`` (on demand, no
maximums), ``provisioned`` (ProvisionedThroughput 40000/40000) or
``maximums`` (on demand, OnDemandThroughput 40000/40000): the two limited
kinds are far from their limits, so the difference with ``unlimited`` is
what enforcement costs a request that is admitted.

``--no-gc`` collects and then disables the garbage collector before the
requests: its schedule moves by whole collections (a full one is about
9 million instructions, 4,500 a request over 2,000) with a few objects more
or less at start-up, which swings a metrics on / off ratio by several
percent either way; without it what is left is the requests' own work.
What a switch costs the collector in a long run comes from the tracked
objects it keeps per request, which this does not measure.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADERS = {"content-type": "application/x-amz-json-1.0",
           "authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
                            "SignedHeaders=host, Signature=x"}


TABLE_KINDS = {
    "unlimited": {"BillingMode": "PAY_PER_REQUEST"},
    "provisioned": {"BillingMode": "PROVISIONED",
                    "ProvisionedThroughput": {"ReadCapacityUnits": 40000, "WriteCapacityUnits": 40000}},
    "maximums": {"BillingMode": "PAY_PER_REQUEST",
                 "OnDemandThroughput": {"MaxReadRequestUnits": 40000, "MaxWriteRequestUnits": 40000}},
}


def _serve_requests(metrics: bool, capacity: bool, n: int, op: str = "get", collector: bool = True,
                    table: str = "unlimited") -> None:
    """The measured body: a dispatcher, a table of 100 events (of the kind
    ``table`` names in TABLE_KINDS), ``n`` GetItems (``op`` "get") or
    PutItems ("put")."""
    import orjson

    from shoal.server.dispatch import Dispatcher
    from shoal.server.http import Request
    from shoal.storage.lmdb_engine import LmdbEngine

    engine = LmdbEngine(os.path.join(tempfile.mkdtemp(), "db"), sync=False, map_size=1 << 30)
    dispatcher = Dispatcher(engine, metrics=metrics, capacity=capacity, group_commit=False)

    def request(operation: str, body: dict):
        return Request("POST", "/", {**HEADERS, "x-amz-target": "DynamoDB_20120810." + operation},
                       orjson.dumps(body), ("127.0.0.1", 1), False)

    created = dispatcher(request("CreateTable", {
        "TableName": "viewer_events", **TABLE_KINDS[table],
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"}]}))
    assert created.status == 200, created.body
    for i in range(100):
        dispatcher(request("PutItem", {"TableName": "viewer_events", "Item": {
            "user_id": {"S": f"u{i:08d}"}, "ts": {"N": "1700000000000"}, "event_type": {"S": "play"}}}))
    if op == "get":
        requests = [request("GetItem", {"TableName": "viewer_events",
                                        "Key": {"user_id": {"S": f"u{i % 100:08d}"}, "ts": {"N": "1700000000000"}}})
                    for i in range(n)]
    else:
        requests = [request("PutItem", {"TableName": "viewer_events", "Item": {
            "user_id": {"S": f"u{i % 100:08d}"}, "ts": {"N": str(1700000000001 + i)}, "event_type": {"S": "play"},
            "content_id": {"S": "c000042"}, "position_s": {"N": "12.345"}}}) for i in range(n)]
    if not collector:
        gc.collect()
        gc.disable()
    for one in requests:
        answer = dispatcher(one)
        assert answer.status == 200, answer.body
    if dispatcher.metrics is not None:
        dispatcher.metrics.recorder.flush()


def _count(metrics: bool, capacity: bool, n: int, op: str, collector: bool = True, table: str = "unlimited") -> int:
    # One BLAS thread: numpy's OpenBLAS pool otherwise spins on other threads, which cachegrind counts.
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=REPO_DIR, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
         os.path.abspath(__file__), "--child", "on" if metrics else "off", "on" if capacity else "off", str(n), op, "gc" if collector else "no-gc", table],
        env=env, capture_output=True, text=True, check=True)
    return int(re.findall(r"I\s+refs:\s+([\d,]+)", done.stderr)[-1].replace(",", ""))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _serve_requests(argv[1] == "on", argv[2] == "on", int(argv[3]), argv[4], argv[5] == "gc", argv[6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--capacity", choices=("on", "off"), default="on")
    parser.add_argument("--ops", default="get", help="get, put or both (get,put)")
    parser.add_argument("--no-gc", action="store_true", help="no garbage collection during the requests")
    parser.add_argument("--table", choices=tuple(TABLE_KINDS), default="unlimited",
                        help="the table's kind: unlimited on demand, provisioned 40000/40000, on-demand maximums 40000/40000")
    parser.add_argument("--metrics", choices=("both", "on", "off"), default="both",
                        help="measure with metrics off and on (both), or only one")
    args = parser.parse_args(argv)
    capacity = args.capacity == "on"
    for op in args.ops.split(","):
        if op not in ("get", "put"):
            raise SystemExit(f"unknown operation {op}")
        per = {}
        for metrics in {"both": (False, True), "on": (True,), "off": (False,)}[args.metrics]:
            per[metrics] = (_count(metrics, capacity, args.requests, op, not args.no_gc, args.table)
                            - _count(metrics, capacity, 0, op, not args.no_gc, args.table)) / args.requests
        name = {"get": "GetItem", "put": "PutItem"}[op]
        figures = ", ".join(f"metrics {'on' if m else 'off'} {v:,.0f}" for m, v in per.items())
        ratio = f" ({per[True] / per[False]:.3f})" if len(per) == 2 else ""
        print(f"{name} in process ({args.table} table, capacity {args.capacity}{', no GC' if args.no_gc else ''}): "
              f"{figures} instructions{ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
