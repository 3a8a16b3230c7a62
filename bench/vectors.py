"""SearchVectors on a large vector index: recall@10, latency, build time and
memory, exact and approximate (issue 21, point 2).

    python bench/vectors.py [--items 100000] [--dims 256] [--queries 200] [--distance COSINE]
                            [--data gaussian|lowrank] [--ef 128,320,640,1280]

Loads ``--items`` titles with random embeddings through PutItem into a table
with one vector index, in process over an LMDB data directory (no HTTP: the
figures are the operation's own).  ``--data gaussian``: every component an
independent Gaussian, the hardest case for an approximate index (no structure
to exploit: near neighbours are barely nearer than the rest); ``lowrank``:
vectors of 32 latent Gaussian dimensions mapped into ``--dims`` plus 10% noise,
closer to text embeddings, whose intrinsic dimension is low.

Then ``--queries`` SearchVectors with TopK 10, drawn from the same
distribution, each answer compared with the true 10 nearest computed
independently by numpy in float64 over the same float32 vectors: first by the
exact search (``shoal.api.vector_cache``'s matrix; its first search builds it,
reported apart), then by the HNSW graph (``shoal.api.vector_ann``, built in the
background: its build time is reported) at each search expansion of ``--ef``.
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

from shoal.api import DEFAULT_ACCOUNT, Context, items, tables, vector_ann, vector_cache, vectors  # noqa: E402
from shoal.api.catalog import Catalog  # noqa: E402
from shoal.storage.lmdb_engine import LmdbEngine  # noqa: E402


def embeddings(rng, count: int, dims: int, kind: str, basis=None) -> tuple[np.ndarray, np.ndarray | None]:
    if kind == "gaussian":
        return rng.standard_normal((count, dims)).astype(np.float32), None
    if basis is None:
        basis = rng.standard_normal((32, dims))
    latent = rng.standard_normal((count, 32)) @ basis
    noise = rng.standard_normal((count, dims)) * 0.1 * np.sqrt(32)
    return (latent + noise).astype(np.float32), basis


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--distance", default="COSINE", choices=vectors.DISTANCES)
    parser.add_argument("--data", default="gaussian", choices=("gaussian", "lowrank"))
    parser.add_argument("--ef", default="128,320,640,1280", help="HNSW search expansions to measure")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    data, basis = embeddings(rng, args.items, args.dims, args.data)
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
    norms = np.linalg.norm(exact, axis=1)
    queries, _ = embeddings(rng, args.queries, args.dims, args.data, basis)
    requests, truths = [], []
    for q in queries:
        requests.append({"TableName": "titles", "IndexName": "by_embedding", "TopK": 10,
                         "SearchVector": [{"N": repr(float(x))} for x in q]})
        q64 = q.astype(np.float64)
        if args.distance == "COSINE":
            score = -(exact @ q64) / (norms * np.linalg.norm(q64))
        elif args.distance == "EUCLIDEAN":
            score = np.linalg.norm(exact - q64, axis=1)
        else:
            score = -(exact @ q64)
        truths.append(set(np.argsort(score, kind="stable")[:10].tolist()))

    def run(label: str, answered_by: str, first_label: str = "") -> str:
        latencies, recalls, first_s = [], [], None
        before = vector_cache.stats[answered_by]
        for request, truth in zip(requests, truths):
            t0 = time.perf_counter()
            answer = vectors.search_vectors(ctx, request)
            elapsed = time.perf_counter() - t0
            if first_s is None and first_label:
                first_s = elapsed
            else:
                latencies.append(elapsed * 1000)
            got = [int(r["Item"]["title_id"]["S"][1:]) for r in answer["SearchResults"]]
            recalls.append(len(truth & set(got)) / 10)
        answered = vector_cache.stats[answered_by] - before
        p50, p99 = np.percentile(latencies, [50, 99])
        first = f"{first_label} {first_s * 1000:,.0f} ms" if first_s is not None else ""
        return (f"{label} | {np.mean(recalls):.3f} | {p50:.1f} | {p99:.1f} | {first} "
                f"({answered} of {len(requests)} answered by the {answered_by})")

    rows = []
    vector_ann.MIN_ROWS = 0  # exact first
    vector_cache.clear()
    rows.append(run("exact (matrix)", "matrix", "first search, builds the matrix:"))
    matrix, = vector_cache._matrices.values()
    matrix_mib = (matrix.vectors.nbytes + matrix.norms.nbytes) / 2 ** 20

    vector_ann.MIN_ROWS = 1
    vector_cache.stats["matrix"] = 0
    vectors.search_vectors(ctx, requests[0])  # queues the graph's build
    vector_ann.wait_idle(timeout=24 * 3600)
    graph = matrix.graph
    assert graph is not None and graph.ready, graph and graph.error
    graph_mib = graph.nbytes / 2 ** 20
    for ef in (int(e) for e in args.ef.split(",")):
        vector_ann.EXPANSION_SEARCH = ef
        rows.append(run(f"HNSW, ef {ef}", "graph"))
    engine.close()

    head = (f"| {datetime.date.today()} | {platform.node() or 'this machine'}, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.1f} | {args.items:,} x {args.dims} {args.data} {args.distance} | ")
    for row in rows:
        print(head + row + " |")
    print(f"load {load_s:.0f} s; matrix {matrix_mib:.0f} MiB; graph built in {graph.seconds:.0f} s "
          f"(M {vector_ann.CONNECTIVITY}, efConstruction {vector_ann.EXPANSION_ADD}), {graph_mib:.0f} MiB "
          "beside the matrix it reads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
