"""What archiving a table whose KMS key stayed inaccessible costs
(``shoal.api.archival``), and what the key check costs while keys are marked.

    python bench/kms_archival.py [--items 100000] [--tables 1000]

In one process over an LMDB data directory (fsync on, as ``shoal serve``
runs it), through ``control.check_encryption_keys`` at chosen times, as the
replication thread or the KeyWatcher calls it every second:

* archival: a table of ``--items`` items (about 200 bytes each, one GSI)
  on a disabled key; the check that makes it ARCHIVING, then the one that
  takes its SYSTEM backup (a copy of every item) and makes it ARCHIVED with
  the first chunk of its purge, then the background purge of the rest (the
  index jobs' runner, as the server's background loop runs it).
* the check: ``--tables`` tables on one key, none, one or all of them
  INACCESSIBLE; the wall time of one check (a read of every table's
  catalog entry, and nothing written when nothing is due).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shoal.api import DEFAULT_ACCOUNT, Context, batch, tables  # noqa: E402
from shoal.api import indexes as index_store  # noqa: E402
from shoal.api.catalog import Catalog  # noqa: E402
from shoal.replication import control  # noqa: E402
from shoal.storage.keyring import set_kms_key_state  # noqa: E402
from shoal.storage.lmdb_engine import LmdbEngine  # noqa: E402

REGION = "eu-west-1"
T0 = 1_800_000_000.0


def _create(ctx, name: str, key: str) -> None:
    tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "SSESpecification": {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key},
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "kind", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "ALL"}}]})


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def archival(base: str, count: int) -> None:
    engine = LmdbEngine(os.path.join(base, "lmdb"))
    ctx = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: T0)
    _create(ctx, "archived", "k")
    filler = "x" * 160
    for start in range(0, count, 25):
        batch.batch_write_item(ctx, {"RequestItems": {"archived": [
            {"PutRequest": {"Item": {"pk": {"S": f"item{n:09}"}, "kind": {"S": f"k{n % 100}"}, "pad": {"S": filler}}}}
            for n in range(start, min(start + 25, count))]}})
    set_kms_key_state(base, "k", "Disabled")
    check = lambda at: control.check_encryption_keys(engine, ctx.catalog, REGION, at)  # noqa: E731
    marked = _timed(lambda: check(T0))
    begun = _timed(lambda: check(T0 + 7 * 86400))
    finished = _timed(lambda: check(T0 + 7 * 86400 + 1))
    jobs = index_store.IndexJobs(engine)
    steps = 0

    def purge() -> None:
        nonlocal steps
        while jobs():
            steps += 1

    purged = _timed(purge)
    with engine.read() as txn:
        status = ctx.catalog.get(txn, REGION, "archived").description["TableStatus"]
    print(f"archival of {count} items: INACCESSIBLE check {marked * 1000:.1f} ms, ARCHIVING {begun * 1000:.1f} ms, "
          f"backup and ARCHIVED {finished:.2f} s ({count / finished:,.0f} items/s), background purge "
          f"{purged:.2f} s in {steps} steps; status {status}")
    engine.close()


def checks(base: str, count: int) -> None:
    engine = LmdbEngine(os.path.join(base, "lmdb"))
    ctx = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), now=lambda: T0)
    for n in range(count):
        _create(ctx, f"t{n:05}", "shared" if n else "first")
    check = lambda at: control.check_encryption_keys(engine, ctx.catalog, REGION, at)  # noqa: E731
    check(T0)
    for label, key in (("none inaccessible", None), ("one inaccessible", "first"), ("all inaccessible", "shared")):
        if key is not None:
            set_kms_key_state(base, key, "Disabled")
            check(T0)  # marks them
        runs = [_timed(lambda: check(T0 + 3600)) for _ in range(20)]
        runs.sort()
        print(f"key check over {count} tables, {label}: median {runs[10] * 1000:.1f} ms, max {runs[-1] * 1000:.1f} ms")
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--tables", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        archival(base, args.items)
    with tempfile.TemporaryDirectory() as base:
        checks(base, args.tables)


if __name__ == "__main__":
    main()
