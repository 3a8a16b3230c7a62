"""SearchVectors on a large vector index: recall@10 and latency (issue 21, point 2).

    python bench/vectors.py [--items 100000] [--dims 256] [--queries 200] [--distance COSINE]

Loads ``--items`` titles with random embeddings (Gaussian, the hardest case
for an approximate index) through PutItem into a table with one vector index,
in process over an LMDB data directory (no HTTP: the figures are the
operation's own), then runs ``--queries`` SearchVectors with TopK 10 and
compares each answer with the true 10 nearest computed independently by
numpy in float64 over the same float32 vectors.  Reports recall@10, the
latency of each search (the first one builds the worker's matrix,
``shoal.api.vector_cache``, reported apart), and the matrix's memory.
Prints markdown rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shoal.api import DEFAULT_ACCOUNT, Context, items, tables, vector_cache, vectors  # noqa: E402
from shoal.api.catalog import Catalog  # noqa: E402
from shoal.storage.lmdb_engine import LmdbEngine  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--distance", default="COSINE", choices=vectors.DISTANCES)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    data = rng.standard_normal((args.items, args.dims)).astype(np.float32)
    work = tempfile.mkdtemp(prefix="shoal-vectors-")
    engine = LmdbEngine(os.path.join(work, "db"), sync=False)
    ctx = Context("us-east-1", DEFAULT_ACCOUNT, engine, Catalog(engine))
    tables.create_table(ctx, {
        "TableName": "titles", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "title_id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "title_id", "KeyType": "HASH"}],
        "VectorIndexes": [{"IndexName": "by_embedding", "VectorAttribute": {"AttributeName": "embedding"},
                           "Dimensions": args.dims, "DistanceFunction": args.distance,
                           "Projection": {"ProjectionType": "KEYS_ONLY"}}]})
    started = time.perf_counter()
    for first in range(0, args.items, 500):
        with engine.group():
            for n in range(first, min(first + 500, args.items)):
                items.put_item(ctx, {"TableName": "titles", "Item": {
                    "title_id": {"S": f"t{n:07d}"},
                    "embedding": {"L": [{"N": repr(float(x))} for x in data[n]]}}})
        print(f"\rloaded {min(first + 500, args.items):,} / {args.items:,}", end="", file=sys.stderr)
    load_s = time.perf_counter() - started
    print(file=sys.stderr)

    exact = data.astype(np.float64)
    queries = rng.standard_normal((args.queries, args.dims)).astype(np.float32)
    latencies, recalls, first_s = [], [], None
    for q in queries:
        request = {"TableName": "titles", "IndexName": "by_embedding", "TopK": 10,
                   "SearchVector": [{"N": repr(float(x))} for x in q]}
        t0 = time.perf_counter()
        answer = vectors.search_vectors(ctx, request)
        elapsed = time.perf_counter() - t0
        if first_s is None:
            first_s = elapsed
        else:
            latencies.append(elapsed * 1000)
        got = [int(r["Item"]["title_id"]["S"][1:]) for r in answer["SearchResults"]]
        q64 = q.astype(np.float64)
        if args.distance == "COSINE":
            score = -(exact @ q64) / (np.linalg.norm(exact, axis=1) * np.linalg.norm(q64))
        elif args.distance == "EUCLIDEAN":
            score = np.linalg.norm(exact - q64, axis=1)
        else:
            score = -(exact @ q64)
        truth = set(np.argsort(score, kind="stable")[:10].tolist())
        recalls.append(len(truth & set(got)) / 10)
    matrix_mb = sum(m.vectors.nbytes + (m.norms.nbytes if m.norms is not None else 0)
                    for m in vector_cache._matrices.values()) / 2 ** 20
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies else (float("nan"),) * 2
    engine.close()
    print(f"| {datetime.date.today()} | {platform.node() or 'this machine'}, {os.cpu_count()} cores | "
          f"{args.items:,} x {args.dims} {args.distance} | {np.mean(recalls):.3f} | {first_s * 1000:,.0f} | "
          f"{p50:.1f} | {p99:.1f} | {matrix_mb:.0f} MiB | load {load_s:.0f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
