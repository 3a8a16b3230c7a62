"""Fill a Shoal data directory in-process, for the scale mode.

Preloading ten million events through HTTP takes hours; this writes them
through Shoal's own operation functions instead (``shoal.api.tables.create_table``
and ``shoal.api.batch.batch_write_item`` with a ``Context``), so the stored
bytes are exactly what the server would have written: same validation, item
encoding, table statistics and change log.  Many BatchWriteItem calls share one
durable commit (``engine.group()``), which is what makes it fast.  The server
is started on the directory afterwards.

    python bench/bulkload.py DATA_DIR ITEMS
"""

from __future__ import annotations

import os
import sys
import time

from workload import EVENTS_TABLE, DataSet, EventGenerator, preload_keys, table_definitions

BATCH = 25
BATCHES_PER_COMMIT = 400  # 10,000 items per fsync


def _context(engine):
    from shoal.api import DEFAULT_ACCOUNT, Context
    from shoal.api.catalog import Catalog

    from client import REGION

    return Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), access_key="bench")


def _batches(dataset: DataSet, seed: int):
    generator = EventGenerator(seed)
    batch = []
    for uid, ts in preload_keys(dataset, 0, 1):
        batch.append({"PutRequest": {"Item": generator.event(uid, ts)}})
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def bulk_load(data_dir: str, dataset: DataSet, progress=None, seed: int = 0) -> dict:
    """Create the workload's tables in an empty ``data_dir`` and write the data set.

    ``progress(done_items)`` is called after every commit.  Returns
    {"items", "seconds", "items_per_s"}.
    """
    from shoal.api import batch as batch_ops
    from shoal.api import tables
    from shoal.storage.datadir import open_data_dir

    started = time.monotonic()
    engine = open_data_dir(data_dir)
    try:
        ctx = _context(engine)
        for definition in table_definitions():
            tables.create_table(ctx, definition)
        done = 0
        batches = _batches(dataset, seed)
        while done < dataset.items:
            with engine.group():
                for _, chunk in zip(range(BATCHES_PER_COMMIT), batches):
                    answer = batch_ops.batch_write_item(ctx, {"RequestItems": {EVENTS_TABLE: chunk}})
                    if answer.get("UnprocessedItems"):
                        raise RuntimeError("bulk load: BatchWriteItem left items unprocessed")
                    done += len(chunk)
            if progress is not None:
                progress(done)
    finally:
        engine.close()
    seconds = time.monotonic() - started
    return {"items": done, "seconds": seconds, "items_per_s": done / seconds}


def main() -> int:
    data_dir, items = sys.argv[1], int(sys.argv[2])
    if os.path.exists(data_dir) and os.listdir(data_dir):
        print(f"bulkload: {data_dir} is not empty", file=sys.stderr)
        return 1

    def show(done: int) -> None:
        sys.stderr.write(f"\r  bulk load {done:>12,}/{items:,}")

    result = bulk_load(data_dir, DataSet.build(items), show)
    sys.stderr.write("\n")
    print(f"{result['items']:,} items in {result['seconds']:.1f}s ({result['items_per_s']:,.0f} items/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
