"""The offline tools over a data directory and over PostgreSQL: how long each takes on one table.

    python bench/offline_tools.py [--items 50000] [--stores lmdb,pg]

For each store (a new data directory; a new database of a PostgreSQL from
Debian's packages, started as the tests start one: tests/postgres_cluster.py,
``fsync=off``) it runs, as processes, one after another:

    shoal import   a CSV file of --items viewer events (about 100 bytes each) as a new table
    shoal backup   of that table
    shoal restore  --backup-arn of that backup, as a new table
    shoal export   --format dynamodb-json (the table has no point-in-time recovery: the job run directly)
    shoal export   --format parquet

Each step is timed by the wall clock and in CPU seconds: the tool's own
(``getrusage`` of this process's children) and, over PostgreSQL, the
database's (its postmaster's time with its reaped children's, plus its live
processes', from /proc), figures that the load of a shared machine inflates
less than the wall clock.  Prints a JSON summary and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, REPO_DIR)

from systems import CLOCK_TICKS, process_tree  # noqa: E402

TABLE = "events"


def write_events(path: str, items: int) -> None:
    with open(path, "w") as handle:
        handle.write("user_id,ts,event_type,content_id,position_s\n")
        for n in range(items):
            handle.write(f"u{n % 5000:08d},{1_700_000_000_000 + n},play,c{n % 997:06d},{n % 3600}.250\n")


def postgres_cpu(postmaster: int | None) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster's own and
    its reaped children's (fields 14-17 of stat), and its live processes'."""
    if postmaster is None:
        return 0.0
    total = 0
    for pid in process_tree(postmaster):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if pid == postmaster:
            total += int(fields[13]) + int(fields[14])
    return total / CLOCK_TICKS


def step(name: str, args: list[str], where: list[str], postmaster: int | None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pg_before = postgres_cpu(postmaster)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "shoal", *args, *where], capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr}")
    return {"step": name, "wall_s": round(wall, 3),
            "tool_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3),
            "postgres_cpu_s": round(postgres_cpu(postmaster) - pg_before, 3), "stdout": done.stdout.strip()}


def run_store(store: str, where: list[str], workdir: str, csv_dir: str, items: int,
              postmaster: int | None) -> list[dict]:
    steps = [step("import", ["import", "--from", csv_dir, "--format", "csv", "--table", TABLE,
                             "--key", "user_id:S,ts:N"], where, postmaster)]
    backup = step("backup", ["backup", TABLE, "--name", "bench"], where, postmaster)
    steps.append(backup)
    arn = backup["stdout"].split("BackupArn: ")[1].strip()
    steps.append(step("restore", ["restore", "--backup-arn", arn, "--target", "restored"], where, postmaster))
    steps.append(step("export dynamodb-json", ["export", TABLE, "--format", "dynamodb-json", "--out",
                                               os.path.join(workdir, f"{store}-json")], where, postmaster))
    steps.append(step("export parquet", ["export", TABLE, "--format", "parquet", "--out",
                                         os.path.join(workdir, f"{store}-parquet")], where, postmaster))
    for entry in steps:
        entry["store"] = store
        entry["items_per_s"] = round(items / entry["wall_s"]) if entry["wall_s"] else None
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--stores", default="lmdb,pg", help="lmdb, pg or both (comma-separated)")
    args = parser.parse_args()
    stores = [store.strip() for store in args.stores.split(",") if store.strip()]
    workdir = tempfile.mkdtemp(prefix="shoal-offline-tools-")
    csv_dir = os.path.join(workdir, "csv")
    os.makedirs(csv_dir)
    write_events(os.path.join(csv_dir, "events.csv"), args.items)
    cluster = None
    results: list[dict] = []
    try:
        for store in stores:
            if store == "lmdb":
                results += run_store(store, ["--data-dir", os.path.join(workdir, "data")], workdir, csv_dir,
                                     args.items, None)
            elif store == "pg":
                from tests.postgres_cluster import PostgresCluster, missing_binaries_message, postgres_bin_dir

                bin_dir = postgres_bin_dir()
                if bin_dir is None:
                    raise SystemExit(missing_binaries_message())
                cluster = PostgresCluster(bin_dir).start()
                with open(os.path.join(cluster.data, "postmaster.pid")) as handle:
                    postmaster = int(handle.readline())
                results += run_store(store, ["--storage", cluster.create_database("bench")], workdir, csv_dir,
                                     args.items, postmaster)
            else:
                parser.error(f"unknown store {store!r}: lmdb or pg")
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[0]
    summary = {"items": args.items, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {load} at the end",
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": [
                   {k: v for k, v in entry.items() if k != "stdout"} for entry in results]}
    print(json.dumps(summary, indent=2))
    print()
    print(f"| step ({args.items:,} items) | store | wall s | items/s | tool CPU s | PostgreSQL CPU s |")
    print("|---|---|---:|---:|---:|---:|")
    for entry in results:
        print(f"| {entry['step']} | {entry['store']} | {entry['wall_s']:.2f} | {entry['items_per_s']:,} | "
              f"{entry['tool_cpu_s']:.2f} | {entry['postgres_cpu_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
