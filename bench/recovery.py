"""Backups and point-in-time recovery: how long they take on the viewer-events table.

    python bench/recovery.py [--items 1000000] [--changes 200000]

1. Bulk-loads ``--items`` events in-process (``bulkload.bulk_load``: Shoal's
   own operations, so the stored bytes are the server's).
2. Switches point-in-time recovery on, notes the time T0, then writes
   ``--changes`` changes of existing events in-process (BatchWriteItem: one
   in five a delete, the rest a new version of the event), as a delete storm
   and a bad script would.  The data directory's growth over these writes,
   per million, is what a day of recovery window costs per million writes.
3. Starts ``shoal serve`` on the directory and times, through boto3:
   CreateBackup of the table, RestoreTableToPointInTime to T0 (a copy of
   the table plus undoing every change), to the latest restorable time (the
   same copy with almost nothing to undo; their difference is the time spent
   reading and undoing the changes, hence the replay rate), then
   RestoreTableFromBackup of the backup.

Every step is timed twice: from the request to its end (wall clock), and in
CPU seconds of the process doing the work (this one for the in-process
steps; the server's, from ``/proc``, for the requests), a figure that the
load of a shared machine does not inflate.

Prints a JSON summary and a markdown table (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

from bulkload import BATCH, _context, bulk_load
from systems import disk_bytes, free_port, shoal_command
from workload import EVENTS_TABLE, DataSet, EventGenerator, preload_keys


def _changes(ctx, engine, dataset: DataSet, count: int, seed: int = 7) -> None:
    """``count`` changes of existing events: 1 in 5 deleted, the rest rewritten."""
    from shoal.api import batch as batch_ops

    rng = random.Random(seed)
    generator = EventGenerator(seed)
    keys = list(preload_keys(dataset, 0, 1))
    done = 0
    while done < count:
        with engine.group():
            for _ in range(400):
                chunk, seen = [], set()
                while len(chunk) < BATCH and done + len(chunk) < count:
                    uid, ts = keys[rng.randrange(len(keys))]
                    if (uid, ts) in seen:
                        continue  # one request may not touch an item twice
                    seen.add((uid, ts))
                    if rng.random() < 0.2:
                        chunk.append({"DeleteRequest": {"Key": {"user_id": {"S": uid}, "ts": {"N": str(ts)}}}})
                    else:
                        chunk.append({"PutRequest": {"Item": generator.event(uid, ts)}})
                if not chunk:
                    break
                batch_ops.batch_write_item(ctx, {"RequestItems": {EVENTS_TABLE: chunk}})
                done += len(chunk)


def _undo_rate(ctx, engine, t0: float, changes: int) -> dict:
    """The read side of a restore, in-process: the table at the head (a plain
    read) and at T0 (the same read plus reading and undoing every change
    since): their difference is the undo's own time, on the clock and in
    CPU seconds of this process."""
    from shoal.api.changelog import head_position, position_at
    from shoal.api.pitr import stored_items_at

    out = {}
    with engine.read() as txn:
        table = ctx.catalog.get(txn, ctx.region, EVENTS_TABLE)
        for name, position in (("read_at_head", head_position(txn)), ("read_at_t0", position_at(txn, int(t0 * 1000)))):
            started, cpu = time.monotonic(), time.process_time()
            for _ in stored_items_at(txn, table, position):
                pass
            out[f"{name}_s"] = time.monotonic() - started
            out[f"{name}_cpu_s"] = time.process_time() - cpu
    undo = out["read_at_t0_s"] - out["read_at_head_s"]
    out["undo_changes_per_s"] = changes / undo if undo > 0 else None
    undo_cpu = out["read_at_t0_cpu_s"] - out["read_at_head_cpu_s"]
    out["undo_changes_per_cpu_s"] = changes / undo_cpu if undo_cpu > 0 else None
    return out


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system, every thread) process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _export_import(ddb, items: int, pid: int) -> dict:
    """A full DYNAMODB_JSON export of the table, then ImportTable of its files
    into a new table: seconds from each request to COMPLETED, and the
    server's CPU seconds."""
    started, cpu = time.monotonic(), _cpu_seconds(pid)
    arn = ddb.export_table_to_point_in_time(
        TableArn=ddb.describe_table(TableName=EVENTS_TABLE)["Table"]["TableArn"], S3Bucket="bench",
        S3Prefix="export")["ExportDescription"]["ExportArn"]
    while (export := ddb.describe_export(ExportArn=arn)["ExportDescription"])["ExportStatus"] == "IN_PROGRESS":
        time.sleep(0.2)
    out = {"export_s": time.monotonic() - started, "export_cpu_s": _cpu_seconds(pid) - cpu,
           "export_status": export["ExportStatus"], "exported_items": export.get("ItemCount")}
    started, cpu = time.monotonic(), _cpu_seconds(pid)
    imported = ddb.import_table(
        S3BucketSource={"S3Bucket": "bench", "S3KeyPrefix": os.path.dirname(export["ExportManifest"]) + "/data/"},
        InputFormat="DYNAMODB_JSON", InputCompressionType="GZIP",
        TableCreationParameters={
            "TableName": "imported", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                     {"AttributeName": "ts", "AttributeType": "N"}]})["ImportTableDescription"]
    while (job := ddb.describe_import(ImportArn=imported["ImportArn"])["ImportTableDescription"])[
            "ImportStatus"] == "IN_PROGRESS":
        time.sleep(0.2)
    out.update(import_s=time.monotonic() - started, import_cpu_s=_cpu_seconds(pid) - cpu,
               import_status=job["ImportStatus"], imported_items=job.get("ImportedItemCount"))
    return out


def _timed(ddb, pid: int, call, **kwargs) -> tuple[float, float]:
    """Seconds from the restore request to its table ACTIVE, and the server's CPU seconds."""
    started, cpu = time.monotonic(), _cpu_seconds(pid)
    call(**kwargs)
    while ddb.describe_table(TableName=kwargs["TargetTableName"])["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)
    return time.monotonic() - started, _cpu_seconds(pid) - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config

    from shoal.api import pitr
    from shoal.storage.datadir import open_data_dir

    workdir = tempfile.mkdtemp(prefix="shoal-recovery-")
    data_dir = os.path.join(workdir, "data")
    result: dict = {"items": args.items, "changes": args.changes}
    server = None
    try:
        dataset = DataSet.build(args.items)
        result["bulk_load_s"] = bulk_load(data_dir, dataset)["seconds"]
        engine = open_data_dir(data_dir)
        try:
            ctx = _context(engine)
            pitr.update_continuous_backups(ctx, {"TableName": EVENTS_TABLE, "PointInTimeRecoverySpecification": {
                "PointInTimeRecoveryEnabled": True}})
            before = disk_bytes(data_dir)
            time.sleep(0.01)
            t0 = time.time()
            time.sleep(0.01)
            started = time.monotonic()
            _changes(ctx, engine, dataset, args.changes)
            result["changes_s"] = time.monotonic() - started
            result.update(_undo_rate(ctx, engine, t0, args.changes))
        finally:
            engine.close()
        result["growth_bytes_per_million_writes"] = (disk_bytes(data_dir) - before) / args.changes * 1e6

        os.makedirs(os.path.join(data_dir, "s3", "bench"))  # the bucket "bench" of exports and imports
        port = free_port()
        log = open(os.path.join(workdir, "serve.log"), "w")
        server = subprocess.Popen([*shoal_command(), "serve", "--port", str(port), "--data-dir", data_dir,
                                   "--workers", "1"], stdout=log, stderr=subprocess.STDOUT)
        ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench",
                           config=Config(read_timeout=3600, retries={"max_attempts": 1}))
        deadline = time.monotonic() + 60
        while True:
            try:
                ddb.list_tables()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(1.5)  # past the latest restorable time's lag
        pid = server.pid
        started, cpu = time.monotonic(), _cpu_seconds(pid)
        arn = ddb.create_backup(TableName=EVENTS_TABLE, BackupName="bench")["BackupDetails"]["BackupArn"]
        result["create_backup_s"], result["create_backup_cpu_s"] = time.monotonic() - started, _cpu_seconds(pid) - cpu
        # T0 first: the log after T0 then holds the changes and the backup's
        # restore (another table's records, skipped), not also a second restore.
        result["restore_t0_s"], result["restore_t0_cpu_s"] = _timed(
            ddb, pid, ddb.restore_table_to_point_in_time, SourceTableName=EVENTS_TABLE, TargetTableName="at_t0",
            RestoreDateTime=t0)
        result["restore_latest_s"], result["restore_latest_cpu_s"] = _timed(
            ddb, pid, ddb.restore_table_to_point_in_time, SourceTableName=EVENTS_TABLE, TargetTableName="at_latest",
            UseLatestRestorableTime=True)
        result["restore_from_backup_s"], result["restore_from_backup_cpu_s"] = _timed(
            ddb, pid, ddb.restore_table_from_backup, BackupArn=arn, TargetTableName="from_backup")
        result.update(_export_import(ddb, args.items, pid))
        result["load_average"] = os.getloadavg()
        count = ddb.describe_table(TableName="at_t0")["Table"]["ItemCount"]
        if count != args.items:
            raise SystemExit(f"the restore to T0 holds {count} items, not {args.items}")
        result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        result["machine"] = f"{os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print(f"\nSeconds on the clock (CPU seconds of the server, or of the bench for the undo):\n\n"
          f"| items | CreateBackup | RestoreTableFromBackup | RestoreTableToPointInTime, latest | "
          f"RestoreTableToPointInTime, T0 ({args.changes:,} changes to undo) | undo (in-process read) | "
          f"data directory growth per 1M writes |")
    print("|---|---|---|---|---|---|---|")

    def both(name: str) -> str:
        return f"{result[f'{name}_s']:.1f} s ({result[f'{name}_cpu_s']:.1f})"

    def rate(value) -> str:
        return f"{value:,.0f} changes/s" if value else "not measurable"

    print(f"| {args.items:,} | {both('create_backup')} | {both('restore_from_backup')} | {both('restore_latest')} | "
          f"{both('restore_t0')} | {rate(result['undo_changes_per_s'])} ({rate(result['undo_changes_per_cpu_s'])} "
          f"of CPU) | {result['growth_bytes_per_million_writes'] / 2**20:,.0f} MiB |")
    print(f"\nExport (DYNAMODB_JSON, gzip) of {result['exported_items']:,} items: {both('export')} "
          f"({result['export_status']}); ImportTable of them: {both('import')} ({result['import_status']}, "
          f"{result['imported_items']:,} items). Load average at the end: "
          f"{', '.join(f'{x:.1f}' for x in result['load_average'])}.")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
