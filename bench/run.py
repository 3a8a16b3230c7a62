"""Benchmark Shoal against DynamoDB Local, dynalite, moto and the HTTP ceiling.

    python3 bench/run.py                       # the default run (< 15 minutes), writes docs/benchmarks.md
    python3 bench/run.py --duration 30 --warmup 5 --items 200000
    python3 bench/run.py --systems shoal,ceiling --workloads get,point
    python3 bench/run.py --scale 100000        # Shoal at 100k items (bulk loaded), point and app mixes
    python3 bench/run.py --scale 100000,10000000 --output docs/benchmarks-scale.md
    python3 bench/run.py --security            # cost of SigV4 auth and TLS: Shoal plain vs signed vs HTTPS

Every system is started by this script on its own port with a fresh data
directory in a temporary folder, preloaded through its API, and measured with
wrk: all systems stay up and the runs are interleaved (each workload and
connection count visits every system in turn, the order rotating), so noise on
this shared machine spreads over all of them.  See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

import install  # noqa: E402
import loadgen  # noqa: E402
import presign  # noqa: E402
import report  # noqa: E402
from preload import create_tables, preload  # noqa: E402
from systems import ALL_SYSTEMS, SECURITY_SYSTEMS, Shoal, make_systems  # noqa: E402
from workload import DataSet  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    csv = lambda text: [part for part in text.split(",") if part]  # noqa: E731
    ints = lambda text: [int(part) for part in csv(text)]  # noqa: E731
    parser.add_argument("--systems", type=csv, default=None,
                        help=f"comma-separated, from {','.join(ALL_SYSTEMS + SECURITY_SYSTEMS[1:])} "
                             f"(default: {','.join(ALL_SYSTEMS)}; scale mode: shoal; security mode: "
                             f"{','.join(SECURITY_SYSTEMS)})")
    parser.add_argument("--workloads", type=csv, default=None,
                        help=f"from {','.join(loadgen.WORKLOADS)} (default: all; scale mode: point,app)")
    parser.add_argument("--connections", type=ints, default=None,
                        help="default 1,16,64; security mode 16")
    parser.add_argument("--items", type=int, default=30_000, help="events preloaded per system (default 30000)")
    parser.add_argument("--duration", type=float, default=None,
                        help="measured seconds per run (default 4; security mode 8)")
    parser.add_argument("--warmup", type=float, default=1, help="warm-up seconds before each run (default 1)")
    parser.add_argument("--moto-items", type=int, default=1_000, help="moto's reduced preload (default 1000)")
    parser.add_argument("--moto-duration", type=float, default=4,
                        help="moto's run length, at most --duration (default 4)")
    parser.add_argument("--moto-max-connections", type=int, default=16,
                        help="skip moto above this many connections (default 16): it queues requests it cannot "
                             "serve and keeps working on them after the run, which would load the next system")
    parser.add_argument("--shoal-workers", type=int, default=1)
    parser.add_argument("--preload-processes", type=int, default=4)
    parser.add_argument("--scale", type=ints, default=None,
                        help="scale mode: item counts (e.g. 100000,10000000); Shoal is bulk loaded in-process")
    parser.add_argument("--security", action="store_true",
                        help="security mode: Shoal with auth off, with --auth sigv4 (every request signed) and "
                             "over TLS, interleaved, for get,query,put,point at 16 connections; writes the "
                             "'Cost of authentication and TLS' section of docs/benchmarks.md, leaving the rest")
    parser.add_argument("--presigned", type=int, default=loadgen.PRESIGNED_POOL,
                        help=f"signed requests per run for shoal-sigv4, cycled by wrk "
                             f"(default {loadgen.PRESIGNED_POOL})")
    parser.add_argument("--output", default=None,
                        help="markdown report (default docs/benchmarks.md; scale mode docs/benchmarks-scale.md)")
    parser.add_argument("--plot", default=None, help="latency plot PNG (default: beside the report)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    args = parser.parse_args(argv)
    scale = args.scale is not None
    if scale and args.security:
        parser.error("--scale and --security are separate modes")
    if scale and args.systems not in (None, ["shoal"]):
        parser.error("scale mode measures Shoal alone (one server per table size)")
    if args.security:
        args.systems = args.systems or list(SECURITY_SYSTEMS)
        args.workloads = args.workloads or ["get", "query", "put", "point"]
    args.systems = args.systems or (["shoal"] if scale else list(ALL_SYSTEMS))
    args.workloads = args.workloads or (["point", "app"] if scale else list(loadgen.WORKLOADS))
    args.connections = args.connections or ([16] if args.security else [1, 16, 64])
    args.duration = args.duration or (8 if args.security else 4)
    unknown = set(args.workloads) - set(loadgen.WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}")
    if any(name.startswith("shoal-sigv4") for name in args.systems):
        unsigned = set(args.workloads) - set(presign.SIGNED_MODES)
        if unsigned:
            parser.error(f"shoal-sigv4 runs only the workloads {','.join(presign.SIGNED_MODES)} "
                         f"(pre-signed in Python), not {','.join(sorted(unsigned))}")
    default_output = "docs/benchmarks-scale.md" if scale else "docs/benchmarks.md"
    args.output = args.output or os.path.join(REPO_DIR, default_output)
    args.plot = args.plot or os.path.splitext(args.output)[0] + "-latency.png"
    return args


def machine() -> dict:
    """What the figures were measured on."""
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        mem_kib = int(handle.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- set-up of one system


def set_up(system, workdir: str, dataset: DataSet, args) -> dict:
    """Start, preload and measure the static figures of one system."""
    info = {"name": system.name, "label": system.label}
    log(f"starting {system.label}")
    info["startup_s"] = system.start(workdir)
    info["rss_idle"] = system.rss_bytes()
    info["items"] = dataset.items if system.has_data else 0
    if system.has_data:
        create_tables(system.endpoint())
        info["preload"] = preload(system.endpoint(), dataset, system.label, args.preload_processes)
        after_preload = getattr(system, "after_preload", None)
        if after_preload is not None:
            after_preload()
        time.sleep(1)  # let background flushes settle before reading memory and disk
        info["rss_after_preload"] = system.rss_bytes()
        disk = system.disk_bytes()
        info["disk_bytes"] = disk
        info["disk_bytes_per_item"] = disk / dataset.items if disk is not None else None
    log(f"{system.label}: up in {info['startup_s']:.2f}s on port {system.port}")
    return info


def set_up_scaled(system: Shoal, workdir: str, dataset: DataSet) -> dict:
    """Scale mode for Shoal: bulk load in-process, then start the server on the data."""
    from bulkload import bulk_load

    data_dir = os.path.join(workdir, f"shoal-{dataset.items}")
    log(f"bulk loading {dataset.items:,} items into Shoal's data directory")
    loaded = bulk_load(data_dir, dataset, lambda done: sys.stderr.write(
        f"\r  bulk load {done:>12,}/{dataset.items:,}"))
    sys.stderr.write("\n")
    system.fixed_data_dir = data_dir
    system.prewarm = True
    info = {"name": system.name, "label": system.label, "items": dataset.items, "preload": loaded,
            "preload_kind": "in-process bulk load"}
    info["startup_s"] = system.start(workdir)
    info["rss_idle"] = system.rss_bytes()
    waited = system.wait_prewarmed()
    info["prewarm_s"] = waited
    log(f"{system.label}: prewarm " + (f"done {waited:.1f}s after start-up" if waited is not None else "timed out"))
    info["rss_after_preload"] = system.rss_bytes()  # after the prewarm: the data file mapped
    info["disk_bytes"] = system.disk_bytes()
    info["disk_bytes_per_item"] = info["disk_bytes"] / dataset.items
    return info


# ---------------------------------------------------------------- the interleaved runs


def run_matrix(systems, counts: dict, args) -> list[dict]:
    """Every workload x connection count x system, systems visited in rotating order."""
    runs = []
    round_no = 0
    for workload in args.workloads:
        for connections in args.connections:
            order = systems[round_no % len(systems):] + systems[:round_no % len(systems)]
            round_no += 1
            for system in order:
                moto = system.name == "moto"
                if moto and connections > args.moto_max_connections:
                    continue
                duration = min(args.duration, args.moto_duration) if moto else args.duration
                warmup = min(args.warmup, 1) if moto else args.warmup
                others = [s for s in systems if s is not system]
                result = loadgen.measure(system, workload, connections, duration, warmup, counts[system.name],
                                         others=others, pool_size=args.presigned)
                result["system"] = system.name
                runs.append(result)
                errors = result["non2xx"] + result["socket_errors"]
                log(f"{workload:>8} c={connections:<3} {system.label:<15} {result['rps']:>9,.0f} req/s  "
                    f"p50 {result['latency_ms']['p50']:.2f} ms  p99 {result['latency_ms']['p99']:.2f} ms  "
                    f"cpu {result['server_cpu_us_per_req'] or 0:.0f} us/req  errors {errors}")
    return runs


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    log("checking tools (wrk, java, npm packages, moto, matplotlib)")
    install.ensure(args.systems)
    workdir = tempfile.mkdtemp(prefix="shoal-bench-")
    sizes = args.scale or [args.items]
    if args.scale:  # one Shoal per table size
        systems = [Shoal(args.shoal_workers, name=f"shoal-{n}", label=f"Shoal {n:,}") for n in sizes]
    else:
        systems = make_systems(args.systems, args.shoal_workers)
    results = {"command": "python3 bench/run.py " + shlex.join(sys.argv[1:] if argv is None else argv),
               "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(), "scale": bool(args.scale),
               "security": args.security,
               "settings": {k: v for k, v in vars(args).items() if k not in ("output", "plot")},
               "rounds": []}
    try:
        if args.scale:
            results["rounds"].append(run_scaled(systems, sizes, workdir, args))
        else:
            for size in sizes:
                results["rounds"].append(run_round(systems, size, workdir, args))
    finally:
        for system in systems:
            system.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["wall_s"] = time.time() - started
    path = save(results)
    report.write(results, args.output, args.plot)
    log(f"results {path}; report {args.output}; plot {args.plot}; {results['wall_s'] / 60:.1f} minutes")
    return 0


def run_round(systems, size: int, workdir: str, args) -> dict:
    """Set up every system with ``size`` items, run the matrix, stop them."""
    round_dir = os.path.join(workdir, str(size))
    os.makedirs(round_dir, exist_ok=True)
    datasets, counts, infos = {}, {}, {}
    for system in systems:
        items = min(size, args.moto_items) if system.name == "moto" else size
        dataset = datasets.setdefault(items, DataSet.build(items))
        counts_path = os.path.join(round_dir, f"counts-{items}.txt")
        if not os.path.exists(counts_path):
            dataset.write_counts(counts_path)
        counts[system.name] = counts_path
        infos[system.name] = set_up(system, round_dir, dataset, args)
    runs = run_matrix(systems, counts, args)
    for system in systems:
        infos[system.name]["rss_after_load"] = system.rss_bytes()
        infos[system.name]["anon_rss_after_load"] = system.anon_rss_bytes()
        system.stop()
    return {"items": size, "systems": [infos[s.name] for s in systems], "runs": runs}


def run_scaled(systems, sizes: list[int], workdir: str, args) -> dict:
    """Scale mode: one Shoal per table size, each bulk loaded and prewarmed, all
    kept running and measured interleaved like the main benchmark's systems, so
    the machine's noise falls on every size alike."""
    counts, infos = {}, {}
    for system, size in zip(systems, sizes):
        round_dir = os.path.join(workdir, str(size))
        os.makedirs(round_dir, exist_ok=True)
        dataset = DataSet.build(size)
        counts[system.name] = os.path.join(round_dir, f"counts-{size}.txt")
        dataset.write_counts(counts[system.name])
        infos[system.name] = set_up_scaled(system, round_dir, dataset)
    runs = run_matrix(systems, counts, args)
    for system in systems:
        infos[system.name]["rss_after_load"] = system.rss_bytes()
        infos[system.name]["anon_rss_after_load"] = system.anon_rss_bytes()
        system.stop()
    return {"items": max(sizes), "sizes": sizes, "systems": [infos[s.name] for s in systems], "runs": runs}


def save(results: dict) -> str:
    folder = os.path.join(BENCH_DIR, "results")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, time.strftime("%Y%m%d-%H%M%S") + ".json")
    with open(path, "w") as handle:
        json.dump(results, handle, indent=1)
    return path


if __name__ == "__main__":
    sys.exit(main())
