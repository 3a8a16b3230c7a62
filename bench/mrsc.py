"""The cost of multi-Region strong consistency: PutItem and GetItem latency
on an MRSC table against a regional table and an MREC global table.

    python bench/mrsc.py [--requests 1000] [--threads 1,8]

Three ``shoal serve`` processes on loopback ports stand for the three
regions of the US region set (us-east-1, us-east-2, us-west-2), each the
others' peer, one worker each, all on this machine's cores with the client.
In us-east-1 three tables of one shape: ``regional`` (no replicas),
``eventual`` (MREC, replicas in the two other regions) and ``strong`` (MRSC
over the three).  For each table and each client thread count, ``--requests``
PutItem requests (each thread its own keys; one attribute of 100 bytes), then
as many GetItem with ConsistentRead and without, through boto3 from
us-east-1's clients; the latency of each request as the client sees it.

Prints a JSON summary and markdown rows for docs/mrsc.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3
from botocore.config import Config

REGIONS = ("us-east-1", "us-east-2", "us-west-2")
TABLES = ("regional", "eventual", "strong")
_URL = re.compile(r"(https?://[0-9.]+:\d+)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(base: str, ports: list[int], i: int) -> subprocess.Popen:
    peers = [f"--peer={r}=http://127.0.0.1:{p}" for r, p in zip(REGIONS, ports) if r != REGIONS[i]]
    proc = subprocess.Popen([sys.executable, "-m", "shoal", "serve", "--port", str(ports[i]),
                             "--data-dir", os.path.join(base, REGIONS[i]), "--region", REGIONS[i], *peers,
                             "--workers", "1", "--no-metrics"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[i]}/", timeout=2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{REGIONS[i]} did not start")


def _client(port: int, region: str):
    return boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name=region,
                        aws_access_key_id="AKIDBENCH", aws_secret_access_key="secret",
                        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=64))


def _wait_active(client, name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        table = client.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE" and all(r["ReplicaStatus"] == "ACTIVE" for r in table.get("Replicas", ())):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not become ACTIVE")


def _tables(client, others: list) -> None:
    for name in TABLES:
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    creates = [{"Create": {"RegionName": r}} for r in REGIONS[1:]]
    client.update_table(TableName="eventual", ReplicaUpdates=creates[:1])
    _wait_active(client, "eventual")
    client.update_table(TableName="eventual", ReplicaUpdates=creates[1:])
    client.update_table(TableName="strong", ReplicaUpdates=creates, MultiRegionConsistency="STRONG")
    for name in TABLES:
        for c in [client, *others]:
            if name != "regional" or c is client:
                _wait_active(c, name)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _run(client, table: str, op: str, threads: int, requests: int) -> dict:
    per_thread = requests // threads
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def work(t: int) -> None:
        mine = []
        for n in range(per_thread):
            key = {"pk": {"S": f"t{t}-{n}"}}
            started = time.perf_counter()
            try:
                if op == "put":
                    client.put_item(TableName=table, Item={**key, "payload": {"S": "x" * 100}})
                else:
                    client.get_item(TableName=table, Key=key, ConsistentRead=(op == "strong get"))
            except Exception as exc:  # counted, not timed
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
                with lock:
                    errors[code] = errors.get(code, 0) + 1
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    return {"table": table, "op": op, "threads": threads, "requests": len(latencies), "errors": errors,
            "per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(_percentile(latencies, 0.5) * 1000, 2),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--threads", default="1,8")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="shoal-mrsc-bench-")
    ports = [_free_port() for _ in REGIONS]
    procs = [_start(base, ports, i) for i in range(3)]
    try:
        home = _client(ports[0], REGIONS[0])
        _tables(home, [_client(p, r) for p, r in zip(ports[1:], REGIONS[1:])])
        results = []
        for threads in [int(t) for t in args.threads.split(",")]:
            for table in TABLES:
                for op in ("put", "strong get", "get"):
                    results.append(_run(home, table, op, threads, args.requests))
                    print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=1))
    print("\n| table | operation | client threads | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "none"
        print(f"| {r['table']} | {r['op']} | {r['threads']} | {r['per_s']} | {r['p50_ms']} | {r['p99_ms']} "
              f"| {errors} |")


if __name__ == "__main__":
    main()
