"""How close Shoal's throttling keeps a provisioned table to its configured rate (issue 20, point 5).

    python bench/capacity_accuracy.py [--rates 20,100,250] [--windows 3] [--window-s 10] [--threads 4]

For each rate R: a ``shoal serve --workers 2`` (two workers sharing one
budget through the bucket file) gets a table provisioned at R write and R
read units; its burst (300 seconds of R, banked at creation) is spent with
batches of 1-unit writes until one is refused; then ``--threads`` clients
write 1 KB-or-less items (one write unit each) in a closed loop, retrying
nothing, and every accepted write is counted in the 10-second window it was
answered in; then the same for strongly consistent GetItems of a 4 KB item
(one read unit each).  A window's error is its accepted units against R x
the window's length.  The offered rate (accepted + refused) is printed too:
a window where the clients could not offer more than R says nothing about
the throttle.  The clients run 3 seconds before the first window, so that
what the bucket banked meanwhile is spent uncounted.  Timestamps are the
client's; no timed assertion anywhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests.shoal_process import ShoalProcess  # noqa: E402

THROTTLED = "ProvisionedThroughputExceededException"
WARM_UP_S = 3.0


def client(url: str):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDBENCH",
                        aws_secret_access_key="secret",
                        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=64))


def make_table(ddb, name: str, rate: int) -> None:
    ddb.create_table(TableName=name, BillingMode="PROVISIONED",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}],
                     ProvisionedThroughput={"ReadCapacityUnits": rate, "WriteCapacityUnits": rate})
    ddb.get_waiter("table_exists").wait(TableName=name)


def spend_burst(ddb, name: str, read: bool) -> None:
    """Until a batch is refused whole: batches of 25 1-unit writes, or of 100 strongly consistent
    reads of 4 KB items (one unit each)."""
    n = 0
    keys = [{"pk": {"S": "big"}, "sk": {"N": str(i)}} for i in range(100)]
    while True:
        try:
            if read:
                ddb.batch_get_item(RequestItems={name: {"Keys": keys, "ConsistentRead": True}})
            else:
                ddb.batch_write_item(RequestItems={name: [
                    {"PutRequest": {"Item": {"pk": {"S": "burst"}, "sk": {"N": str(n + i)}}}} for i in range(25)]})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == THROTTLED:
                return
            raise
        n += 25


def measure(url: str, name: str, read: bool, threads: int, windows: int, window_s: float) -> list[tuple[int, int]]:
    """(accepted, refused) per window of closed-loop single-unit requests from ``threads`` clients."""
    counts = [[0, 0] for _ in range(windows)]
    lock = threading.Lock()
    # The clients start at once and run WARM_UP_S before the first window: what the bucket banked
    # since the burst was spent (unused capacity is kept, as DynamoDB's burst) is spent uncounted.
    start = time.monotonic() + WARM_UP_S
    end = start + windows * window_s

    def run(number: int) -> None:
        ddb = client(url)
        n = 0
        while True:
            n += 1
            try:
                if read:
                    ddb.get_item(TableName=name, Key={"pk": {"S": "big"}, "sk": {"N": "0"}}, ConsistentRead=True)
                else:
                    ddb.put_item(TableName=name, Item={"pk": {"S": f"t{number}"}, "sk": {"N": str(n)}})
                ok = True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != THROTTLED:
                    raise
                ok = False
            now = time.monotonic()
            if now >= end:
                return
            if now < start:
                continue
            with lock:
                counts[int((now - start) // window_s)][0 if ok else 1] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [tuple(c) for c in counts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="20,100,250")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}; {args.threads} client threads")
    print("| rate (units/s) | kind | window | accepted | refused | accepted / (rate x window) |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for rate in rates:
        data = tempfile.mkdtemp(prefix="capacity-accuracy-")
        server = ShoalProcess(data, "--workers", "2", "--no-metrics").start()
        try:
            ddb = client(server.url)
            name = f"accuracy{rate}"
            make_table(ddb, name, rate)
            # the read items: 4 KB, one strongly consistent read unit each (written before the burst is spent)
            for i in range(100):
                ddb.put_item(TableName=name, Item={"pk": {"S": "big"}, "sk": {"N": str(i)}, "blob": {"S": "x" * 4000}})
            for read in (False, True):
                spend_burst(ddb, name, read)
                for number, (accepted, refused) in enumerate(
                        measure(server.url, name, read, args.threads, args.windows, args.window_s)):
                    share = accepted / (rate * args.window_s)
                    worst = max(worst, abs(share - 1))
                    print(f"| {rate} | {'strong GetItem' if read else 'PutItem'} | {number + 1} | {accepted:,} | "
                          f"{refused:,} | {share:.3f} |")
        finally:
            server.stop()
            shutil.rmtree(data, ignore_errors=True)
    print(f"\nlargest error of a window: {worst:.1%} (bound 10%); load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
