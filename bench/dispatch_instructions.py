"""Instructions per GetItem or PutItem inside one process, through
``Dispatcher.__call__`` (no HTTP, no event loop, no background rounds, no
group commit): what a switch costs on the request path itself, free of the
wall-clock effects that move ``bench/instructions.py``'s server-side counts.

    python bench/dispatch_instructions.py [--requests 5000] [--capacity on|off] [--ops get,put] [--no-gc]

For each operation, metrics off and on, it runs this file under cachegrind
twice, with 0 and with N requests (GetItems of a 100-item
viewer-events-shaped table; PutItems of new items to it), and prints the
difference divided by N (the flush of the recorded figures at the end
included).

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


def _serve_requests(metrics: bool, capacity: bool, n: int, op: str = "get", collector: bool = True) -> None:
    """The measured body: a dispatcher, a table of 100 events, ``n`` GetItems
    (``op`` "get") or PutItems ("put")."""
    import orjson

    from shoal.server.dispatch import Dispatcher
    from shoal.server.http import Request
    from shoal.storage.lmdb_engine import LmdbEngine

    engine = LmdbEngine(os.path.join(tempfile.mkdtemp(), "db"), sync=False, map_size=1 << 30)
    dispatcher = Dispatcher(engine, metrics=metrics, capacity=capacity, group_commit=False)

    def request(operation: str, body: dict):
        return Request("POST", "/", {**HEADERS, "x-amz-target": "DynamoDB_20120810." + operation},
                       orjson.dumps(body), ("127.0.0.1", 1), False)

    dispatcher(request("CreateTable", {
        "TableName": "viewer_events", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"}]}))
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


def _count(metrics: bool, capacity: bool, n: int, op: str, collector: bool = True) -> int:
    # One BLAS thread: numpy's OpenBLAS pool otherwise spins on other threads, which cachegrind counts.
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=REPO_DIR, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
         os.path.abspath(__file__), "--child", "on" if metrics else "off", "on" if capacity else "off", str(n), op, "gc" if collector else "no-gc"],
        env=env, capture_output=True, text=True, check=True)
    return int(re.findall(r"I\s+refs:\s+([\d,]+)", done.stderr)[-1].replace(",", ""))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _serve_requests(argv[1] == "on", argv[2] == "on", int(argv[3]), argv[4], argv[5] == "gc")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--capacity", choices=("on", "off"), default="on")
    parser.add_argument("--ops", default="get", help="get, put or both (get,put)")
    parser.add_argument("--no-gc", action="store_true", help="no garbage collection during the requests")
    args = parser.parse_args(argv)
    capacity = args.capacity == "on"
    for op in args.ops.split(","):
        if op not in ("get", "put"):
            raise SystemExit(f"unknown operation {op}")
        per = {}
        for metrics in (False, True):
            per[metrics] = (_count(metrics, capacity, args.requests, op, not args.no_gc)
                            - _count(metrics, capacity, 0, op, not args.no_gc)) / args.requests
        name = {"get": "GetItem", "put": "PutItem"}[op]
        print(f"{name} in process (capacity {args.capacity}{', no GC' if args.no_gc else ''}): metrics off {per[False]:,.0f}, on {per[True]:,.0f} "
              f"instructions ({per[True] / per[False]:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
