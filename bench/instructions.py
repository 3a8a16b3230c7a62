"""Instructions per request, server side, of two versions of Shoal: a measure
of cost that the machine's load does not move.

    python bench/instructions.py BEFORE [AFTER] [--ops get,query,put,ingest] [--requests 2000]
    python bench/instructions.py REV --pitr     # one version, point-in-time recovery off and on
    python bench/instructions.py REV --metrics  # one version, metrics off (--no-metrics) and on
    python bench/instructions.py REV --capacity # one version, capacity limits off (SHOAL_CAPACITY=off) and on
    python bench/instructions.py REV --capacity --provisioned 40000  # the same on a provisioned table

BEFORE and AFTER are git revisions (AFTER defaults to the working tree).
For each version and operation, ``shoal serve --workers 1`` runs under
valgrind's cachegrind (no cache simulation: it counts instructions), the
harness creates the viewer-events table, writes 2,000 events, then sends
``--requests`` requests of the operation (for ``ingest``, that many events in
BatchWriteItem requests of 25) through boto3, and stops the server.  The same
run without the requests gives the fixed cost (start-up, table, preload,
background rounds); the difference divided by the requests is the cost of
one request (for ``ingest``, of one event): HTTP parsing, routing,
validation, the operation, storage, group commit and the response.

Instruction counts are deterministic to a few tenths of a percent on an
idle machine (PYTHONHASHSEED is fixed; the background jobs, whose rounds
follow the wall clock that valgrind stretches, run once a minute here, or
never with SHOAL_BENCH_BACKGROUND_S=100000), where wall-clock throughput on
a shared 2-core machine varies by 15-30% from run to run.  They measure CPU
work, not I/O waits: the fsyncs of group commit are the same in both
versions.  What still follows the wall clock (the HTTP layer's clock tick,
the hand-over of the GIL between the event loop and group commit's sync
thread, the garbage collector's schedule) moves them on a loaded machine:
at a load average of 12-15 on 2 cores, two runs of the same GetItem path
with metrics off counted 186,069 and 191,436 per request, and PutItem's
metrics on / off ratio read 1.061 and 1.006 at two revisions whose request
path was the same.  ``bench/dispatch_instructions.py`` (in process, no HTTP,
no threads) gives the figures that do not move.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)

# valgrind cannot reserve LMDB's default 1 TiB address space: a smaller map.
# Background rounds follow the wall clock, which valgrind stretches: they
# would count into the requests; one round a minute instead of a second.
LAUNCHER = """
import os, sys
from shoal.storage.lmdb_engine import LmdbEngine
LmdbEngine.__init__.__kwdefaults__["map_size"] = 1 << 30
try:
    from shoal.server.background import BackgroundJobs
    BackgroundJobs.INTERVAL_S = float(os.environ.get("SHOAL_BENCH_BACKGROUND_S", "60"))
except ImportError:  # before the background jobs had a module of their own
    from shoal.server.dispatch import Dispatcher
    Dispatcher.BACKGROUND_INTERVAL_S = 60.0
from shoal.cli import main
sys.argv = ["shoal", *sys.argv[1:]]
sys.exit(main())
"""


def _item(i: int) -> dict:
    return {"user_id": {"S": f"u{i % 100:08d}"}, "ts": {"N": str(1700000000000 + i)}, "event_type": {"S": "play"},
            "content_id": {"S": "c000042"}, "position_s": {"N": "12.345"}, "device": {"M": {"type": {"S": "tv"}}}}


def _requests(ddb, op: str, n: int) -> None:
    if op == "put":
        for i in range(n):
            ddb.put_item(TableName="viewer_events", Item=_item(2000 + i))
    elif op == "get":
        for i in range(n):
            ddb.get_item(TableName="viewer_events", Key={"user_id": {"S": f"u{i % 100:08d}"},
                                                          "ts": {"N": str(1700000000000 + i % 2000)}})
    elif op == "query":
        for i in range(n):
            ddb.query(TableName="viewer_events", KeyConditionExpression="user_id = :u", ScanIndexForward=False,
                      Limit=20, ExpressionAttributeValues={":u": {"S": f"u{i % 100:08d}"}})
    elif op == "ingest":
        for b in range(n // 25):
            ddb.batch_write_item(RequestItems={"viewer_events": [
                {"PutRequest": {"Item": _item(10000 + i)}} for i in range(b * 25, b * 25 + 25)]})
    else:
        raise SystemExit(f"unknown operation {op}")


def count(tree: str, op: str, n: int, launcher: str, pitr: bool = False, metrics: bool = True,
          capacity: bool = True, provisioned: int | None = None) -> int:
    """Instructions the server executed for the whole run."""
    import boto3
    from botocore.config import Config

    from systems import free_port

    port = free_port()
    work = tempfile.mkdtemp(prefix="shoal-instructions-")
    env = dict(os.environ, PYTHONPATH=tree, PYTHONHASHSEED="0", SHOAL_CAPACITY="on" if capacity else "off")
    log_path = os.path.join(work, "serve.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
             launcher, "serve", "--port", str(port), "--data-dir", os.path.join(work, "data"), "--workers", "1",
             *(() if metrics else ("--no-metrics",))],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        try:
            ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                               aws_access_key_id="bench", aws_secret_access_key="bench",
                               config=Config(retries={"max_attempts": 0}, read_timeout=300))
            deadline = time.monotonic() + 300
            while True:
                try:
                    ddb.list_tables()
                    break
                except Exception:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit(f"the server did not start; see {log_path}")
                    time.sleep(0.5)
            billing = {"BillingMode": "PAY_PER_REQUEST"} if provisioned is None else {
                "ProvisionedThroughput": {"ReadCapacityUnits": provisioned, "WriteCapacityUnits": provisioned}}
            ddb.create_table(
                TableName="viewer_events", **billing,
                KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                                      {"AttributeName": "ts", "AttributeType": "N"}])
            if pitr:
                ddb.update_continuous_backups(TableName="viewer_events", PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": True})
            for b in range(80):
                ddb.batch_write_item(RequestItems={"viewer_events": [
                    {"PutRequest": {"Item": _item(i)}} for i in range(b * 25, b * 25 + 25)]})
            _requests(ddb, op, n)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(300)
    with open(log_path) as log:
        found = re.findall(r"I\s+refs:\s+([\d,]+)", log.read())
    if not found:
        raise SystemExit(f"no instruction count in {log_path}")
    return int(found[-1].replace(",", ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after", nargs="?", default=None, help="a revision (default: the working tree)")
    parser.add_argument("--ops", default="get,query,put,ingest")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pitr", action="store_true",
                        help="compare one version (BEFORE) with point-in-time recovery off and on")
    parser.add_argument("--metrics", action="store_true",
                        help="compare one version (BEFORE) with metrics off (--no-metrics) and on")
    parser.add_argument("--capacity", action="store_true",
                        help="compare one version (BEFORE) with capacity limits off (SHOAL_CAPACITY=off) and on")
    parser.add_argument("--provisioned", type=int, default=None, metavar="UNITS",
                        help="the table PROVISIONED at UNITS read and write units (default: on demand); with "
                             "--capacity, the cost of enforcing a limit far from being reached")
    args = parser.parse_args(argv)
    sys.path.insert(0, BENCH_DIR)
    trees, made = {}, []
    for label, rev in (("before", args.before), ("after", args.after)):
        if rev is None:
            trees[label] = REPO_DIR
            continue
        path = tempfile.mkdtemp(prefix=f"shoal-{label}-")
        subprocess.run(["git", "-C", REPO_DIR, "worktree", "add", "--detach", "-f", path, rev], check=True,
                       capture_output=True)
        trees[label], made = path, made + [path]
    launcher = os.path.join(tempfile.mkdtemp(prefix="shoal-launch-"), "launch.py")
    with open(launcher, "w") as handle:
        handle.write(LAUNCHER)
    runs = {"before": (trees["before"], False, True, True), "after": (trees["after"], False, True, True)}
    heads = (args.before, args.after or "working tree")
    if args.pitr:  # one version, recovery off then on
        runs = {"before": (trees["before"], False, True, True), "after": (trees["before"], True, True, True)}
        heads = (f"{args.before}, PITR off", "PITR on")
    if args.metrics:  # one version, metrics off then on
        runs = {"before": (trees["before"], False, False, True), "after": (trees["before"], False, True, True)}
        heads = (f"{args.before}, metrics off", "metrics on")
    if args.capacity:  # one version, capacity limits off then on
        runs = {"before": (trees["before"], False, True, False), "after": (trees["before"], False, True, True)}
        heads = (f"{args.before}, capacity off", "capacity on")
    try:
        print(f"| operation | {heads[0]} | {heads[1]} | after / before |")
        print("|---|---|---|---|")
        for op in args.ops.split(","):
            per = {}
            for label, (tree, pitr, metrics, capacity) in runs.items():
                fixed = count(tree, op, 0, launcher, pitr, metrics, capacity, args.provisioned)
                per[label] = (count(tree, op, args.requests, launcher, pitr, metrics, capacity, args.provisioned)
                              - fixed) / args.requests
            print(f"| {op} | {per['before']:,.0f} | {per['after']:,.0f} | {per['after'] / per['before']:.3f} |",
                  flush=True)
    finally:
        for path in made:
            subprocess.run(["git", "-C", REPO_DIR, "worktree", "remove", "--force", path], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
