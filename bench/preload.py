"""Preload a system through its API: BatchWriteItem of 25 from several processes.

Each process writes the events of the users whose rank falls in its share
(``workload.preload_keys``), over one keep-alive connection, resending
``UnprocessedItems`` and retrying throttles with back-off.  Errors are counted
and reported, never skipped: a preload that loses items raises.
"""

from __future__ import annotations

import multiprocessing
import sys
import time

from client import Client, DynamoError
from workload import EVENTS_TABLE, DataSet, EventGenerator, preload_keys, table_definitions

BATCH = 25
RETRYABLE = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
             "InternalServerError", "ServiceUnavailable"}


def create_tables(target, timeout: float = 60.0) -> None:
    """Create the workload's tables and wait until all are ACTIVE (dynalite delays it).

    ``target`` is a port or a ``client.Endpoint``."""
    client = Client(target)
    try:
        for definition in table_definitions():
            client.call("CreateTable", definition)
        deadline = time.monotonic() + timeout
        for definition in table_definitions():
            while client.call("DescribeTable", {"TableName": definition["TableName"]})["Table"][
                    "TableStatus"] != "ACTIVE":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"table {definition['TableName']} not ACTIVE after {timeout:.0f}s")
                time.sleep(0.05)
    finally:
        client.close()


def _write_batch(client: Client, puts: list[dict], stats: dict) -> None:
    pending = {EVENTS_TABLE: puts}
    delay = 0.01
    while pending:
        try:
            answer = client.call("BatchWriteItem", {"RequestItems": pending})
        except DynamoError as exc:
            if exc.type not in RETRYABLE:
                raise
            stats["retries"] += 1
            time.sleep(delay)
            delay = min(1.0, delay * 2)
            continue
        pending = answer.get("UnprocessedItems") or {}
        if pending:
            stats["unprocessed"] += sum(len(v) for v in pending.values())
            time.sleep(delay)
            delay = min(1.0, delay * 2)


def _worker(target, dataset: DataSet, part: int, parts: int, done, failures) -> None:
    client = Client(target)
    generator = EventGenerator(seed=part)
    stats = {"retries": 0, "unprocessed": 0}
    batch: list[dict] = []
    try:
        for uid, ts in preload_keys(dataset, part, parts):
            batch.append({"PutRequest": {"Item": generator.event(uid, ts)}})
            if len(batch) == BATCH:
                _write_batch(client, batch, stats)
                with done.get_lock():
                    done.value += BATCH
                batch = []
        if batch:
            _write_batch(client, batch, stats)
            with done.get_lock():
                done.value += len(batch)
    except Exception as exc:  # reported by the parent; the run must not pass silently
        failures.put(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1)
    finally:
        client.close()
    failures.put(None)


def _bar(label: str, done: int, total: int, started: float) -> str:
    width = 30
    filled = int(width * done / total) if total else width
    rate = done / max(1e-9, time.monotonic() - started)
    return f"\r  {label:<14} [{'#' * filled}{'.' * (width - filled)}] {done:>10,}/{total:,} {rate:>9,.0f} items/s"


def preload(target, dataset: DataSet, label: str, processes: int = 4) -> dict:
    """Write the data set; returns {"items", "seconds", "items_per_s"}. Raises on any lost item."""
    done = multiprocessing.Value("q", 0)
    failures = multiprocessing.Queue()
    started = time.monotonic()
    procs = [multiprocessing.Process(target=_worker, args=(target, dataset, part, processes, done, failures))
             for part in range(processes)]
    for proc in procs:
        proc.start()
    reports: list = []
    while len(reports) < processes:
        while not failures.empty():
            reports.append(failures.get())
        sys.stderr.write(_bar(label, done.value, dataset.items, started))
        sys.stderr.flush()
        if len(reports) < processes and not any(p.is_alive() for p in procs) and failures.empty():
            break
        time.sleep(0.2)
    for proc in procs:
        proc.join()
    seconds = time.monotonic() - started
    sys.stderr.write(_bar(label, done.value, dataset.items, started) + "\n")
    errors = [r for r in reports if r is not None]
    if errors or done.value != dataset.items:
        raise RuntimeError(f"preload of {label} failed ({done.value}/{dataset.items} items): {errors[:3]}")
    return {"items": dataset.items, "seconds": seconds, "items_per_s": dataset.items / seconds}
