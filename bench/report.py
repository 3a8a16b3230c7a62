"""Turn a results file of bench/run.py into docs/benchmarks.md and a latency plot.

    python3 bench/report.py bench/results/RUN.json [--output docs/benchmarks.md]

The markdown is generated whole from the results (tables of absolute figures,
ratios of Shoal over each other system, memory, disk, start-up), so rerunning
the benchmark rewrites it; commentary belongs in the run's commit or issue.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

class _Labels(dict):
    """System names as the tables show them; scale mode's "shoal-<items>" as "Shoal <items> items"."""

    def __missing__(self, name: str) -> str:
        size = name.rpartition("-")[2]
        return f"Shoal {int(size):,} items" if name.startswith("shoal-") and size.isdigit() else name


LABELS = _Labels({"shoal": "Shoal", "dynamodb-local": "DynamoDB Local", "dynalite": "dynalite", "moto": "moto",
                  "ceiling": "HTTP ceiling", "shoal-sigv4": "Shoal SigV4", "shoal-sigv4-user": "Shoal SigV4 IAM user",
                  "shoal-tls": "Shoal TLS", "shoal-pitr": "Shoal PITR"})
WORKLOAD_TITLES = {
    "put": "PutItem of a new event",
    "get": "GetItem of an existing event (users by Zipf popularity)",
    "query": "Query: a user's latest 20 events (ScanIndexForward false, Limit 20)",
    "ingest": "BatchWriteItem of 25 new events (also the ingest mix)",
    "counter": "UpdateItem ADD on a per-title hourly play counter (Zipf titles, 10 shards)",
    "app": "app mix: 70% latest-20 Query, 20% PutItem, 10% conditional continue-watching UpdateItem",
    "point": "point mix: 90% GetItem, 10% PutItem (Zipf users)",
}

HOW_TO_RUN = """\
## How to run

```sh
python3 bench/run.py                                   # everything, defaults below (about 12 minutes)
python3 bench/run.py --duration 30 --warmup 5          # longer runs
python3 bench/run.py --systems shoal,dynamodb-local --workloads point,app --connections 16,64
python3 bench/run.py --scale 100000                    # scale mode: Shoal, point and app mixes at 100k items
python3 bench/run.py --scale 100000,10000000           # ... and 10 million (bulk loaded in-process; ~10 min, 14 GB)
python3 bench/run.py --security                        # cost of SigV4 auth and TLS (about 3 minutes)
python3 bench/report.py bench/results/<run>.json       # regenerate this page from a saved run
```

`--security` runs Shoal four ways, interleaved: auth off over HTTP, `--auth sigv4` with every request
signed by root and by an IAM user with a policy, and HTTPS (`--tls-cert/--tls-key`, self-signed); it
rewrites only the section
"Cost of authentication and TLS" at the end of this page, and a full run keeps that section.

The first run installs what is missing into `bench/.cache/` (gitignored): `wrk` and Java 17 with
apt-get, DynamoDB Local (inside npm `amplify-dynamodb-simulator`) and `dynalite` with npm, and moto's
server and matplotlib with pip into a venv that also sees the system's packages. Raw results go
to `bench/results/` (gitignored).
"""

METHOD = """\
## Method

* **Systems**, all started by the harness on their own ports with fresh data directories in a temporary
  folder, all kept running and measured **interleaved**: each (workload, connections) cell visits every
  system in turn, the order rotating from cell to cell, so the machine's noise spreads over all of them.
  Shoal (`shoal serve`, {workers} worker), DynamoDB Local (`java -jar DynamoDBLocal.jar -dbPath`, on disk,
  SQLite), dynalite (`--path`, on disk, LevelDB), moto's server (in memory) and the constant-reply
  ceiling app (`bench/http_ceiling.py`: Shoal's HTTP layer answering every request with a fixed body,
  the most any operation could reach).
* **Cores**: the machine has 2 cores. Every server is pinned with `taskset` to core 0 and wrk to core 1
  (one wrk thread), so a server gets exactly one core whether it is one process (Shoal, moto, dynalite) or a
  multi-threaded JVM, and the load generator never competes with it.
* **Load**: `wrk` with `bench/lua/workload.lua`, which builds every request in Lua: existing keys drawn
  uniformly over the preloaded events (so users by their Zipf activity), new events with fresh sort keys,
  titles by Zipf s=1.1 over 50,000. wrk is closed-loop: each connection sends its next request when the
  answer arrives. Each run is a warm-up ({warmup:g} s, discarded) then {duration:g} s measured, at each of
  {connections} connections.
* **Data**: {items:,} events per system preloaded through the API (BatchWriteItem of 25 from
  {procs} client processes), {users:,} users whose activity is Zipf with the top 1% producing 20% of events.
  **moto is reduced** ({moto_items:,} events, {moto_duration:g} s runs): it is too slow for the full size
  (its Query scans the table), and is run at most at {moto_conns} connections: beyond that it queues
  requests it cannot serve and goes on working through them after wrk has stopped. Before every run the
  harness waits (up to 60 s per system) until every system is idle, so no backlog spills into the next run.
* **Server CPU per request**: utime + stime of the server's process tree from `/proc/<pid>/stat`, read
  just before and after the measured window, divided by the requests answered in it.
* **Errors** are never hidden: `non-2xx` counts every answer that was not 2xx (by DynamoDB error type
  in the last column), `socket` counts wrk's connect/read/write errors and time-outs (10 s); throttles
  (ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded) are counted apart. In the app mix a
  ConditionalCheckFailedException is the condition doing its job (an update that would move a position
  back in time), and is counted as a non-2xx answer all the same.
* **Memory** is VmRSS summed over the process tree (and, after the load, its anonymous part, RssAnon:
  what is left when mapped files, e.g. LMDB's memory-mapped data file, are not counted): just after
  start-up (idle), after the preload,
  and after all runs. **Disk** is the bytes allocated under the data directory after the preload
  (st_blocks), divided by the events preloaded. **Start-up** is from the command to the first answered
  ListTables, polled every 10 ms.
* **Noise**: `other CPU` is the machine's busy time during the measured window (from `/proc/stat`) less
  the server's and wrk's, in cores: other programs on this shared machine. Where it is high, that row's
  figures are depressed; compare systems within a cell, where the interleaving gave each the same odds.
"""

SCALE_NOTE = """\
**Scale mode**: Shoal's data directory is filled in-process by `bench/bulkload.py` (Shoal's own
CreateTable and BatchWriteItem functions, 10,000 items per durable commit) before the server is started
on it, so "preload (items/s)" is that bulk load's rate; other systems, if named, are preloaded through
their API as usual.
"""


def fmt_int(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_rps(value) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def systems_table(round_: dict) -> str:
    rows = []
    for info in round_["systems"]:
        preload = info.get("preload")
        per_item = info.get("disk_bytes_per_item")
        rows.append([
            info["label"], f"{info['startup_s']:.2f}", fmt_int(info.get("items")),
            fmt_int(preload["items_per_s"]) if preload else "-",
            mib(info.get("rss_idle")), mib(info.get("rss_after_preload")), mib(info.get("rss_after_load")),
            mib(info.get("anon_rss_after_load")),
            fmt_int(per_item) if per_item is not None else ("in memory" if info["name"] == "moto" else "-"),
        ])
    return _table(["system", "start-up (s)", "items preloaded", "preload (items/s)", "RSS idle (MiB)",
                   "RSS after preload (MiB)", "RSS after load (MiB)", "of which anonymous (MiB)",
                   "disk bytes/item"], rows)


def _by_cell(runs: list[dict]) -> dict:
    return {(r["workload"], r["connections"], r["system"]): r for r in runs}


def ratio_table(round_: dict, systems: list[str], workloads: list[str], connections: list[int]) -> str:
    cells = _by_cell(round_["runs"])
    others = [s for s in systems if s != "shoal"]
    rows = []
    for workload in workloads:
        for conns in connections:
            shoal = cells.get((workload, conns, "shoal"))
            if shoal is None:
                continue
            row = [workload, str(conns), fmt_rps(shoal["rps"])]
            for other in others:
                run = cells.get((workload, conns, other))
                row.append(f"{shoal['rps'] / run['rps']:.2f}x" if run and run["rps"] else "-")
            rows.append(row)
    header = ["workload", "conns", "Shoal req/s"] + [f"Shoal / {LABELS[o]}" for o in others]
    return _table(header, rows)


def detail_table(round_: dict, workload: str, systems: list[str], connections: list[int]) -> str:
    cells = _by_cell(round_["runs"])
    rows = []
    for system in systems:
        for conns in connections:
            run = cells.get((workload, conns, system))
            if run is None:
                continue
            lat = run["latency_ms"] if run["requests"] else dict.fromkeys(("p50", "p99", "p99.9"))
            types = ", ".join(f"{k} {v:,}" for k, v in sorted(run["error_types"].items())) or "-"
            if run.get("empty_answers") and workload == "get":
                types += f" (GetItem found nothing {run['empty_answers']:,} times)"
            rows.append([
                LABELS[system], str(conns), fmt_rps(run["rps"]), fmt_ms(lat["p50"]), fmt_ms(lat["p99"]),
                fmt_ms(lat["p99.9"]), fmt_int(run["server_cpu_us_per_req"]), f"{run['client_cpu_share']:.0%}",
                f"{run['other_cpu_share']:.2f}" if "other_cpu_share" in run else "-",
                fmt_int(run["non2xx"]), fmt_int(run["socket_errors"]), fmt_int(run["throttles"]), types,
            ])
    return _table(["system", "conns", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "server CPU µs/req", "wrk CPU",
                   "other CPU (cores)", "non-2xx", "socket", "throttles", "error types"], rows)


def wrk_capacity(round_: dict) -> str:
    """How much one wrk process can drive: requests per second of wrk CPU, from the ceiling runs."""
    rows = []
    for run in round_["runs"]:
        if run["system"] != "ceiling" or not run["client_cpu_s"]:
            continue
        capacity = run["requests"] / run["client_cpu_s"]
        rows.append([run["workload"], str(run["connections"]), fmt_int(run["rps"]), f"{run['client_cpu_share']:.0%}",
                     f"{run['client_cpu_s'] / run['requests'] * 1e6:.1f}", fmt_int(capacity)])
    if not rows:
        return "(no ceiling runs in this round)\n"
    return _table(["workload", "conns", "ceiling req/s", "wrk CPU (of its core)", "wrk µs/request",
                   "one wrk core could drive (req/s)"], rows)


def wrk_headroom(round_: dict) -> str:
    """Whether wrk limited any real system: its busiest run outside the ceiling."""
    real = [r for r in round_["runs"] if r["system"] != "ceiling" and r["requests"]]
    if not real:
        return ""
    busiest = max(real, key=lambda r: r["client_cpu_share"])
    return (f"\nAgainst the ceiling at 16 and 64 connections wrk itself uses nearly all of its core, so those "
            f"ceiling figures are as much wrk's limit as the server's (a lower bound on the ceiling). Against "
            f"every real system wrk had room to spare: its busiest run was {LABELS[busiest['system']]} "
            f"{busiest['workload']} at {busiest['connections']} connections, using "
            f"{busiest['client_cpu_share']:.0%} of its core.\n")


def write(results: dict, output: str, plot_path: str) -> None:
    """Write the markdown report and (via the bench venv's matplotlib) the latency plot.

    A security-mode run replaces only its own section of ``output``; a full
    run rewrites the page but keeps the security section of the last such run.
    """
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    kept = _security_section(output)
    others = _kept_sections(output)  # written by other scripts (bench/recovery.py, bench/instructions.py)
    if results.get("security"):
        page = _read(output) or "# Benchmarks\n\n" + HOW_TO_RUN
        if kept:
            page = page.replace(kept, "")
        text = page.rstrip("\n") + "\n\n" + render_security(results)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(plot_path)), exist_ok=True)
        plotted = make_plot(results, plot_path)
        text = render(results, os.path.relpath(plot_path, os.path.dirname(os.path.abspath(output)))
                      if plotted else None)
        for section in [kept, *others]:
            if section:
                text = text.rstrip("\n") + "\n\n" + section
    with open(output, "w") as handle:
        handle.write(text)


OPTIMISATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                             "optimisations.md")
SECURITY_BEGIN = "<!-- security section: written by bench/run.py --security -->"
SECURITY_END = "<!-- end of security section -->"


KEPT_BEGIN = "<!-- kept section: "  # + a name + " -->", up to KEPT_END: a full run keeps it as it is
KEPT_END = "<!-- end of kept section -->"


def _kept_sections(path: str) -> list[str]:
    """The kept sections of the page at ``path`` (markers included), in order."""
    page, out, at = _read(path), [], 0
    while (start := page.find(KEPT_BEGIN, at)) >= 0:
        end = page.find(KEPT_END, start)
        if end < 0:
            break
        out.append(page[start:end + len(KEPT_END)] + "\n")
        at = end + len(KEPT_END)
    return out


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _security_section(path: str) -> str:
    """The security section of the page at ``path`` (markers included), or ''."""
    page = _read(path)
    start = page.find(SECURITY_BEGIN)
    end = page.find(SECURITY_END, start)
    if start < 0 or end < 0:
        return ""
    return page[start:end + len(SECURITY_END)] + "\n"


def render(results: dict, plot_link: str | None) -> str:
    settings, m = results["settings"], results["machine"]
    from workload import DataSet  # the user count of the preload, for the method text

    first = results["rounds"][0]
    out = ["# Benchmarks\n" if not results["scale"] else "# Benchmarks: scale mode\n",
           "Generated by `bench/run.py` (do not edit by hand: rerun it, or `bench/report.py` on a saved run).\n",
           HOW_TO_RUN,
           "## This run\n",
           f"* Date: {results['date']}; wall time {results['wall_s'] / 60:.1f} minutes",
           f"* Command: `{results['command']}`",
           f"* Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, Linux {m['kernel']}, "
           f"Python {m['python']}\n",
           METHOD.format(workers=settings["shoal_workers"], warmup=settings["warmup"],
                         duration=settings["duration"],
                         connections=", ".join(map(str, settings["connections"])), items=first["items"],
                         procs=settings["preload_processes"], users=DataSet.build(first["items"]).users,
                         moto_items=settings["moto_items"], moto_duration=settings["moto_duration"],
                         moto_conns=settings.get("moto_max_connections", "all"))]
    if results["scale"]:
        out.append(SCALE_NOTE)
        if "sizes" in first:
            out.append(scale_summary(first, settings))
    if plot_link:
        out.append(f"![Latency percentiles per system]({plot_link})\n")
    for round_ in results["rounds"]:
        out.append(render_round(round_, settings))
    if not results["scale"]:
        log_text = _read(OPTIMISATIONS)
        if log_text:
            out.append("## Optimisations: before and after\n\n(from `docs/optimisations.md`, kept by hand)\n\n"
                       + log_text)
    return "\n".join(out)


def scale_summary(round_: dict, settings: dict) -> str:
    """Shoal's p99 at each table size against the smallest, per workload and connection count."""
    systems = [(info["name"], info["items"]) for info in round_["systems"]]
    sizes = [items for _, items in systems]
    head = ["workload", "conns"] + [f"p99 ms at {n:,}" for n in sizes] + \
           [f"p99 ratio {n:,} / {sizes[0]:,}" for n in sizes[1:]] + \
           [f"CPU µs/req at {n:,}" for n in sizes] + [f"disk reads/req at {n:,}" for n in sizes]
    rows = []
    for workload in settings["workloads"]:
        for conns in settings["connections"]:
            found = [next((x for x in round_["runs"] if x["system"] == name and x["workload"] == workload
                           and x["connections"] == conns), None) for name, _ in systems]
            if any(f is None for f in found):
                continue
            p99 = [f["latency_ms"]["p99"] for f in found]
            cpu = [f["server_cpu_us_per_req"] for f in found]
            faults = [f.get("major_faults_per_req") for f in found]
            rows.append([workload, str(conns)] + [f"{v:.2f}" for v in p99] +
                        [f"{v / p99[0]:.2f}" if p99[0] else "-" for v in p99[1:]] +
                        [f"{v:.0f}" if v is not None else "-" for v in cpu] +
                        [f"{v:.3f}" if v is not None else "-" for v in faults])
    table = "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                       ["| " + " | ".join(r) + " |" for r in rows])
    return ("## Latency as the table grows\n\n"
            "One Shoal server per table size, all running, measured interleaved (each cell visits every size "
            "in turn). Shoal's p99 at each size, and its ratio to the smallest (the issue's bar: at most 1.2 "
            "at 10 million against 100 thousand). In scale mode Shoal runs with `--prewarm` and the runs wait "
            "for it, so the data file is in memory and mapped before measuring (without it, the first reads "
            "of a table larger than what the OS still caches wait for the disk: `disk reads/req` counts the "
            "server's major page faults per request).\n\n" + table + "\n")


def render_round(round_: dict, settings: dict) -> str:
    systems = [info["name"] for info in round_["systems"]]
    workloads = [w for w in settings["workloads"] if any(r["workload"] == w for r in round_["runs"])]
    connections = settings["connections"]
    sizes = " and ".join(f"{n:,}" for n in round_.get("sizes", [round_["items"]]))
    parts = [f"## Results at {sizes} items\n", "### Systems\n", systems_table(round_)]
    if "shoal" in systems and len(systems) > 1:
        parts += ["### Throughput of Shoal relative to each system (higher is better for Shoal)\n",
                  ratio_table(round_, systems, workloads, connections)]
    if "ceiling" in systems:
        parts += ["### How much load one wrk process can drive\n",
                  "Measured against the ceiling app, where the server does the least work per request; "
                  "wrk's CPU time per request bounds what one wrk core can generate with these Lua scripts.\n",
                  wrk_capacity(round_), wrk_headroom(round_)]
    parts.append("### Per workload\n\nLatencies show `-` where no request completed within the run.\n")
    for workload in workloads:
        parts += [f"#### {workload}: {WORKLOAD_TITLES[workload]}\n",
                  detail_table(round_, workload, systems, connections)]
    return "\n".join(parts)


SECURITY_METHOD = """\
Shoal four ways, each its own `shoal serve` process ({workers} worker) with a fresh data directory of
{items:,} events, preloaded through the API, kept running and measured **interleaved** (each workload
visits the four in turn, the order rotating), with the method of the main benchmark above (server on
core 0, one wrk thread on core 1, {warmup:g} s warm-up then {duration:g} s measured, {connections}
connections):

* **auth off**: `shoal serve` on loopback, plain HTTP; requests carry a well-formed but unchecked
  `Authorization` header (the main benchmark's set-up).
* **SigV4**: `shoal serve --auth sigv4`; every request is signed with the root credentials the server
  writes to `<data dir>/root-credentials`. wrk's Lua cannot compute HMAC-SHA256, so just before each
  run Python signs a pool of {pool:,} distinct requests of the workload (botocore's `SigV4Auth`, as boto3
  signs) and `bench/lua/presigned.lua` sends them in turn, wrapping round when the pool is used up (the
  warm-up starts half-way through it). Each request is verified in full by the server: canonical request,
  SHA-256 of the body, HMAC of the string to sign with the (cached) derived key, and the policy check.
  Any signature the server refused would appear as a non-2xx answer below. Root needs no policy check
  unless a resource-based policy exists.
* **SigV4 IAM user**: the same, but the runs are signed by an IAM user made with `shoal iam` after the
  preload, whose inline policy allows GetItem, PutItem, Query and UpdateItem on the events table with a
  condition (`StringNotEqualsIfExists` on `dynamodb:Select`): every request is authorized by policy
  evaluation (decisions are remembered per principal, keyed by the condition keys the policy reads).
* **TLS**: `shoal serve --tls-cert --tls-key` with a self-signed P-256 certificate made by the harness,
  auth off; wrk drives `https://`. wrk keeps its connections open, so the figures are the steady cost
  of encrypting and decrypting, not of handshakes.

Ratios are variant / auth off: above 1 means more of it (throughput, latency, CPU per request).
Server CPU per request is the server's utime + stime over the requests answered, which isolates the
server's work from wrk's.
"""


def _security_cells(runs: list[dict]) -> dict:
    return {(r["workload"], r["system"]): r for r in runs}


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def security_ratio_table(runs: list[dict], workloads: list[str], connections: int) -> str:
    """auth-on / auth-off and TLS / plain for throughput, p50, p99 and server CPU per request."""
    cells = _security_cells([r for r in runs if r["connections"] == connections])
    rows = []
    for workload in workloads:
        base = cells.get((workload, "shoal"))
        if base is None:
            continue
        for variant in ("shoal-sigv4", "shoal-sigv4-user", "shoal-tls"):
            run = cells.get((workload, variant))
            if run is None:
                continue
            rows.append([workload, LABELS[variant], fmt_rps(base["rps"]), fmt_rps(run["rps"]),
                         _ratio(run["rps"], base["rps"]),
                         _ratio(run["latency_ms"]["p50"], base["latency_ms"]["p50"]),
                         _ratio(run["latency_ms"]["p99"], base["latency_ms"]["p99"]),
                         fmt_int(base["server_cpu_us_per_req"]), fmt_int(run["server_cpu_us_per_req"]),
                         _ratio(run["server_cpu_us_per_req"], base["server_cpu_us_per_req"]),
                         _cpu_delta(run, base)])
    return _table(["workload", "variant", "auth off req/s", "variant req/s", "throughput ratio", "p50 ratio",
                   "p99 ratio", "auth off CPU µs/req", "variant CPU µs/req", "CPU ratio", "added CPU µs/req"],
                  rows)


def _cpu_delta(run: dict, base: dict) -> str:
    a, b = run["server_cpu_us_per_req"], base["server_cpu_us_per_req"]
    return f"{a - b:+.0f}" if a is not None and b is not None else "-"


def render_security(results: dict) -> str:
    """The 'Cost of authentication and TLS' section, between markers so later runs can replace it."""
    settings, m = results["settings"], results["machine"]
    round_ = results["rounds"][0]
    workloads = [w for w in settings["workloads"] if any(r["workload"] == w for r in round_["runs"])]
    systems = [info["name"] for info in round_["systems"]]
    out = [SECURITY_BEGIN, "## Cost of authentication and TLS\n",
           f"* Date: {results['date']}; wall time {results['wall_s'] / 60:.1f} minutes",
           f"* Command: `{results['command']}`",
           f"* Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, Linux {m['kernel']}, "
           f"Python {m['python']}\n",
           SECURITY_METHOD.format(workers=settings["shoal_workers"], items=round_["items"],
                                  warmup=settings["warmup"], duration=settings["duration"],
                                  connections=", ".join(map(str, settings["connections"])),
                                  pool=settings.get("presigned", 0))]
    for conns in settings["connections"]:
        out += [f"### Ratios at {conns} connections\n", security_ratio_table(round_["runs"], workloads, conns)]
    out += ["### Absolute figures\n", "#### Systems\n", systems_table(round_)]
    for workload in workloads:
        out += [f"#### {workload}: {WORKLOAD_TITLES[workload]}\n",
                detail_table(round_, workload, systems, settings["connections"])]
    out.append(SECURITY_END)
    return "\n".join(out) + "\n"


def make_plot(results: dict, plot_path: str) -> bool:
    """Draw with bench/plot.py in the bench venv (where matplotlib is installed)."""
    from install import venv_python

    python = venv_python() if os.path.exists(venv_python()) else sys.executable
    data = json.dumps(results)
    done = subprocess.run([python, os.path.join(BENCH_DIR, "plot.py"), plot_path], input=data, text=True,
                          capture_output=True)
    if done.returncode != 0:
        print(f"plot failed:\n{done.stderr}", file=sys.stderr)
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--output", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    with open(args.results) as handle:
        results = json.load(handle)
    repo = os.path.dirname(BENCH_DIR)
    output = args.output or os.path.join(repo, "docs", "benchmarks-scale.md" if results["scale"] else "benchmarks.md")
    write(results, output, args.plot or os.path.splitext(output)[0] + "-latency.png")
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
