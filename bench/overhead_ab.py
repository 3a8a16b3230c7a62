"""A feature's throughput cost through HTTP: many short runs alternating on and off.

    python3 bench/overhead_ab.py                      # metrics and capacity, 12 pairs of 5 s, get and put
    python3 bench/overhead_ab.py --compare capacity --pairs 20 --duration 5

Issues 17 and 20 bound what recording metrics, and enforcing capacity on a
table far from its limit, may cost GetItem and PutItem: 3% of throughput.  On a
shared machine one long run per side is at the mercy of whatever else runs
meanwhile, so this driver keeps both servers up and measures many short pairs
(bench/loadgen.measure: wrk on one core, the server pinned to the other),
alternating which side goes first (on-off, off-on, ...), and reports per pair
the on/off ratio of requests per second and of the server's CPU time per
request, then their median and spread.  A slow drift of the machine's load
falls on both sides of a pair alike; the CPU per request does not depend on
how much of its core the server was given.

Two processes of the same code differ by a few percent on their own (the
control comparison: hash seeds, where the allocator put things, which one
started first), as much as the bound.  ``--restarts N`` splits the pairs
over N launches of both servers, each launch with its own PYTHONHASHSEED
(shared by the two servers of that launch) and the start order alternating,
so that such a difference falls on both sides as often.

Comparisons:

* ``metrics``: ``shoal`` (metrics on) against ``shoal-nometrics``
  (``--no-metrics``), on the workload's on-demand tables, capacity on (default).
* ``control``: two identical ``shoal`` servers (A/A): the spread, and any
  bias, between two processes of the same code and settings.
* ``capacity``: ``shoal`` (limits enforced) against ``shoal-nocapacity``
  (``--capacity off``), metrics on, the events table PROVISIONED at
  ``--provisioned`` read and write units (default 40,000 each: a GetItem at
  30,000/s consumes 15,000 read units a second), the two other tables at 5.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import loadgen  # noqa: E402
from client import Client  # noqa: E402
from preload import preload  # noqa: E402
from systems import make_systems  # noqa: E402
from workload import EVENTS_TABLE, DataSet, table_definitions  # noqa: E402

QUIET = 0.15  # at most this many cores busy with other programs on either side of a "quiet" pair
COMPARISONS = {  # name: (feature on, feature off, tables provisioned)
    "metrics": ("shoal", "shoal-nometrics", False),
    "capacity": ("shoal", "shoal-nocapacity", True),
    "control": ("shoal", "shoal", False),  # A/A: two identical servers, what two processes differ by
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    csv = lambda text: [part for part in text.split(",") if part]  # noqa: E731
    parser.add_argument("--compare", type=csv, default=["metrics", "capacity"], help="metrics,capacity,control (default metrics,capacity)")
    parser.add_argument("--workloads", type=csv, default=["get", "put"])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--duration", type=float, default=5, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1, help="warm-up seconds before each run (default 1)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--shoal-workers", type=int, default=1)
    parser.add_argument("--provisioned", type=int, default=40_000,
                        help="read and write units of the events table in the capacity comparison")
    parser.add_argument("--off-first", action="store_true",
                        help="start (and preload) the feature-off server first; the control comparison found the "
                             "first-started of two identical servers 2-3%% dearer per GetItem, so run both ways")
    parser.add_argument("--restarts", type=int, default=1,
                        help="launch both servers this many times, the pairs split between launches, each launch "
                             "with its own PYTHONHASHSEED and the start order alternating (default 1)")
    parser.add_argument("--json", default=None, help="write every run's figures here")
    args = parser.parse_args(argv)
    unknown = set(args.compare) - set(COMPARISONS)
    if unknown:
        parser.error(f"unknown comparisons {sorted(unknown)}")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_average() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def create_tables(system, provisioned: int | None) -> None:
    """The workload's tables, on demand, or provisioned (events at ``provisioned``, the others at 5)."""
    client = Client(system.endpoint())
    try:
        for definition in table_definitions():
            if provisioned is not None:
                units = provisioned if definition["TableName"] == EVENTS_TABLE else 5
                definition = dict(definition, BillingMode="PROVISIONED", ProvisionedThroughput={
                    "ReadCapacityUnits": units, "WriteCapacityUnits": units})
            client.call("CreateTable", definition)
        for definition in table_definitions():
            while client.call("DescribeTable", {"TableName": definition["TableName"]})["Table"][
                    "TableStatus"] != "ACTIVE":
                time.sleep(0.05)
    finally:
        client.close()


def ratio_summary(values: list[float]) -> dict:
    """Median, quartiles, extremes and the geometric mean with its 95% interval (t on the logs)."""
    ordered = sorted(values)
    n = len(ordered)
    logs = [math.log(v) for v in ordered]
    mean = statistics.fmean(logs)
    half = 0.0
    if n > 1:
        t95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26, 11: 2.23,
               12: 2.20, 13: 2.18, 14: 2.16, 15: 2.14, 16: 2.13, 17: 2.12, 18: 2.11, 19: 2.10, 20: 2.09}
        half = t95.get(n, 2.0) * statistics.stdev(logs) / math.sqrt(n)
    quartiles = statistics.quantiles(ordered, n=4) if n > 1 else [ordered[0]] * 3
    return {"n": n, "median": statistics.median(ordered), "q1": quartiles[0], "q3": quartiles[2],
            "min": ordered[0], "max": ordered[-1], "geomean": math.exp(mean),
            "ci95": (math.exp(mean - half), math.exp(mean + half))}


def compare(name: str, args, workdir: str, dataset: DataSet, counts_path: str) -> dict:
    on_name, off_name, provisioned = COMPARISONS[name]
    on, off = make_systems([on_name, off_name], args.shoal_workers)
    if name == "capacity":
        on.name, on.label = "shoal-capacity", "Shoal, capacity on"  # its own data directory
    if name == "control":
        on.label, off.name, off.label = "Shoal A", "shoal-b", "Shoal B"
    result = {"comparison": name, "on": on.label, "off": off.label, "load_start": load_average(), "pairs": [],
              "started_first": "off" if args.off_first else "on"}
    log(f"{name}: load average {result['load_start']}")
    folder = os.path.join(workdir, name)
    os.makedirs(folder, exist_ok=True)
    restarts = max(1, min(args.restarts, args.pairs))
    result["restarts"] = restarts
    try:
        for pair in range(args.pairs):
            launch = pair * restarts // args.pairs
            if pair == 0 or launch != (pair - 1) * restarts // args.pairs:
                off_first = args.off_first != (launch % 2 == 1)
                _launch(on, off, off_first, launch, restarts, args, folder, dataset, provisioned)
            for workload in args.workloads:
                order = (on, off) if pair % 2 == 0 else (off, on)
                runs = {}
                for system in order:
                    other = off if system is on else on
                    run = loadgen.measure(system, workload, args.connections, args.duration, args.warmup,
                                          counts_path, others=[other])
                    runs[system is on] = run
                    if run["non2xx"] or run["socket_errors"] or run["throttles"]:
                        log(f"  {system.label}: errors {run['non2xx']} non-2xx, {run['socket_errors']} socket, "
                            f"{run['throttles']} throttles {run['error_types']}")
                row = {"pair": pair + 1, "workload": workload, "first": "on" if order[0] is on else "off",
                       "launch": launch + 1, "load": load_average()}
                for side, run in (("on", runs[True]), ("off", runs[False])):
                    row[side] = {k: run[k] for k in ("rps", "requests", "seconds", "server_cpu_us_per_req",
                                                     "client_cpu_share", "other_cpu_share", "non2xx",
                                                     "socket_errors", "throttles")}
                    row[side]["p50_ms"] = run["latency_ms"]["p50"]
                    row[side]["p99_ms"] = run["latency_ms"]["p99"]
                row["rps_ratio"] = runs[True]["rps"] / runs[False]["rps"]
                row["cpu_ratio"] = runs[True]["server_cpu_us_per_req"] / runs[False]["server_cpu_us_per_req"]
                result["pairs"].append(row)
                log(f"{name} pair {pair + 1:>2} {workload}: on {runs[True]['rps']:>7,.0f} req/s "
                    f"{runs[True]['server_cpu_us_per_req']:.1f} us/req, off {runs[False]['rps']:>7,.0f} req/s "
                    f"{runs[False]['server_cpu_us_per_req']:.1f} us/req; ratios {row['rps_ratio']:.3f} "
                    f"{row['cpu_ratio']:.3f}; other {runs[True]['other_cpu_share']:.2f}/"
                    f"{runs[False]['other_cpu_share']:.2f}; load {row['load']}")
    finally:
        on.stop()
        off.stop()
    result["load_end"] = load_average()
    result["summary"] = {}
    for workload in args.workloads:
        rows = [r for r in result["pairs"] if r["workload"] == workload]
        result["summary"][workload] = {
            "rps": ratio_summary([r["rps_ratio"] for r in rows]),
            "cpu": ratio_summary([r["cpu_ratio"] for r in rows]),
            "pooled_rps_ratio": (sum(r["on"]["requests"] for r in rows) / sum(r["on"]["seconds"] for r in rows))
            / (sum(r["off"]["requests"] for r in rows) / sum(r["off"]["seconds"] for r in rows)),
        }
        # pairs in which neither side shared the machine with much else: the throughput ratio means most there
        quiet = [r for r in rows if max(r["on"]["other_cpu_share"], r["off"]["other_cpu_share"]) < QUIET]
        if quiet:
            result["summary"][workload]["quiet_rps"] = ratio_summary([r["rps_ratio"] for r in quiet])
            result["summary"][workload]["quiet_cpu"] = ratio_summary([r["cpu_ratio"] for r in quiet])
    return result


def _launch(on, off, off_first: bool, launch: int, restarts: int, args, folder: str, dataset,
            provisioned: bool) -> None:
    """(Re)start both servers for launch ``launch``: fresh data directories,
    the tables made and preloaded; with several launches each has its own
    PYTHONHASHSEED, the same for both servers."""
    on.stop()
    off.stop()
    if restarts > 1:
        os.environ["PYTHONHASHSEED"] = str(launch + 1)
    where = os.path.join(folder, f"launch{launch + 1}") if restarts > 1 else folder
    os.makedirs(where, exist_ok=True)
    for system in ((off, on) if off_first else (on, off)):
        system.start(where)
        create_tables(system, args.provisioned if provisioned else None)
        preload(system.endpoint(), dataset, system.label, 2)
    time.sleep(1)
    if restarts > 1:
        log(f"launch {launch + 1} of {restarts}: {'off' if off_first else 'on'} started first, "
            f"PYTHONHASHSEED={launch + 1}")


def markdown(result: dict) -> str:
    lines = [f"### {result['comparison']}: {result['on']} against {result['off']}", "",
             f"Load average {result['load_start']} at the start, {result['load_end']} at the end; "
             f"the {result['started_first']} side's server started first"
             + (f" in the first of {result['restarts']} launches (alternating)" if result.get("restarts", 1) > 1 else "")
             + ".", "",
             "| pair | workload | first | on req/s (CPU us/req) | off req/s (CPU us/req) | req/s on/off "
             "| CPU/req on/off | others' CPU (cores) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["pairs"]:
        lines.append(f"| {r['pair']} | {r['workload']} | {r['first']} | {r['on']['rps']:,.0f} "
                     f"({r['on']['server_cpu_us_per_req']:.1f}) | {r['off']['rps']:,.0f} "
                     f"({r['off']['server_cpu_us_per_req']:.1f}) | {r['rps_ratio']:.3f} | {r['cpu_ratio']:.3f} "
                     f"| {r['on']['other_cpu_share']:.2f} / {r['off']['other_cpu_share']:.2f} |")
    lines += ["", "| workload | ratio | median | quartiles | min - max | geometric mean (95% interval) "
              "| pooled req/s on/off |", "|---|---|---|---|---|---|---|"]
    for workload, summary in result["summary"].items():
        for kind, label in (("rps", "req/s on/off"), ("cpu", "CPU/req on/off"),
                            ("quiet_rps", f"req/s on/off, quiet pairs (others < {QUIET} cores)"),
                            ("quiet_cpu", "CPU/req on/off, quiet pairs")):
            if kind not in summary:
                continue
            s = summary[kind]
            label = f"{label} (n={s['n']})"
            pooled = f"{summary['pooled_rps_ratio']:.3f}" if kind == "rps" else ""
            lines.append(f"| {workload} | {label} | {s['median']:.3f} | {s['q1']:.3f} - {s['q3']:.3f} "
                         f"| {s['min']:.3f} - {s['max']:.3f} | {s['geomean']:.3f} ({s['ci95'][0]:.3f} - "
                         f"{s['ci95'][1]:.3f}) | {pooled} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="shoal-ab-")
    results = {"command": "python3 bench/overhead_ab.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "date": time.strftime("%Y-%m-%d %H:%M %Z"), "settings": vars(args), "comparisons": []}
    try:
        dataset = DataSet.build(args.items)
        counts_path = os.path.join(workdir, "counts.txt")
        dataset.write_counts(counts_path)
        for name in args.compare:
            results["comparisons"].append(compare(name, args, workdir, dataset, counts_path))
            print(markdown(results["comparisons"][-1]), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
