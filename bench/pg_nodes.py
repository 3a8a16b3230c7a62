"""1, 2 and 4 Shoal nodes over one PostgreSQL, each node on a fixed CPU budget (issue 19 point 5).

    python bench/pg_nodes.py [--nodes 1,2,4] [--node-cores 0.15] [--period-ms 10] [--items 5000]
                             [--connections 8] [--seconds 8] [--warmup 2] [--rounds 3]
                             [--workloads get,query,app,put] [--no-uncapped] [--tree DIR] [--json FILE]

What it emulates.  A deployment runs one Shoal node per machine, behind a load
balancer, over one database; adding nodes adds machines.  This machine has two
cores, shared by PostgreSQL, the load generator and every node: four uncapped
nodes there measure the two cores, not Shoal.  So each node gets a fixed CPU
budget of its own, as a machine would give it: a cgroup (v1, the ``cpu``
controller at /sys/fs/cgroup/cpu; root needed) per node, with
``cpu.cfs_quota_us`` = ``--node-cores`` x ``cpu.cfs_period_us``.  Each node is
started by a small wrapper (``sh -c``) that moves itself into its cgroup and
then execs ``shoal serve --storage postgresql://... --workers 1``, so the
node and everything it starts are capped.  The budget is chosen small enough
that, with the most nodes, PostgreSQL and wrk still have clear headroom on the
two cores: each run reports their CPU, the rest of the machine's (other
programs) and the idle cores, and how much of its budget each node used; a
node that used its whole budget while cores stayed idle was the bottleneck.

The run.  One PostgreSQL from Debian's packages (tests/postgres_cluster.py:
initdb into a temporary directory, a free port, ``fsync=off``), the largest
number of nodes asked for, all on one database, each with its own node
directory and its own cgroup; the viewer-events tables (bench/workload.py)
loaded once through the first node (``--items`` events; uncapped while
loading); then, round after round, for each node count N and each workload,
N nodes are driven by one wrk (bench/loadgen.py ``run_wrk_nodes``: one wrk
thread per node, ``--connections`` connections each, so the offered load
grows with the nodes as clients would), after a warm-up.  The nodes not in a
setting stay up, idle (their background rounds go on, as a real idle node's
would).  Workloads (bench/lua/workload.lua): ``get`` (GetItem of a preloaded
event, users drawn by activity), ``query`` (Query-20: a user's latest 20
events) and ``app`` (the application mix: 70% Query-20, 20% PutItem of a new
event, 10% conditional continue-watching UpdateItem); ``put`` (PutItem of a
new event) can be added.  One node is also run without its cap, for context
(unless ``--no-uncapped``).  ``--tree DIR`` runs the nodes from another
source tree (a commit's, unpacked), so that uncommitted changes in the
checkout do not count.

Figures, per run: requests per second and the latency percentiles over all
nodes (wrk's, over every request), each node's requests per second, each
node's CPU per request (its process's user + system time over its own
answers, read from /proc) and the share of its budget it used, the throttled
share of its cgroup's periods (``cpu.stat``), PostgreSQL's CPU (every
process of the cluster) as cores and per request, wrk's, the rest of the
machine's, and the idle cores.  After the rounds: each node's peak resident
memory (VmHWM, the process's; one process per node with ``--workers 1``)
against the 100 MB bound, and the ratios of N nodes' throughput to one node's
(2/1 and 4/1, per round, against the bound 4/1 >= 3).  A workload's 1, 2 and
4 nodes run back to back (every other round in the reverse order), so that a
ratio compares runs close in time; still, what another program does on the
machine changes how much a CPU second buys (a busy sibling core slows every
instruction), so a second ratio is given that does not depend on it: N
budgets over the nodes' CPU per request, against one node's, i.e. whether a
request costs the nodes more CPU when there are more of them (through the
database's locks, shared rows or more background work).  Before the rounds,
the nodes' and PostgreSQL's CPU while idle (background work).

Limits.  This is an emulation of per-node machines by CPU caps on one
two-core machine: the nodes' budgets are fractions of a core (so a node is
slow, and its latency includes waits for its next period: the CFS quota
stops a node for the rest of a period once it has used its share, which is
why the period is short, 10 ms by default, not the kernel's 100 ms), the
nodes share one kernel, one memory bus and the loopback device with
PostgreSQL and wrk, and PostgreSQL itself is unbounded but on the same two
cores.  A capped node also spends more CPU per request than the same node
uncapped (2026-12-08: GetItem 105-113 against 87 µs, PutItem about 540
against 340): its background rounds cost a fixed 4-12 ms a second (20-45 ms
for some seconds after sustained writes), spread over fewer requests, and a
node stopped by its cap while it holds the change log's head (taken by the
statement before COMMIT) makes the others' writes wait (``--sample-waits``).
What it shows is whether the nodes get in each other's way through the
database (locks, shared rows, background work), not what nodes with whole
cores would serve; a real multi-machine run needs the cores.  The cgroups are
removed at the end (after their processes have exited), also after an error
or a SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, REPO_DIR)

from client import Endpoint, wait_until_answering  # noqa: E402
from loadgen import machine_busy_seconds, run_wrk_nodes, workload_args  # noqa: E402
from preload import create_tables, preload  # noqa: E402
from systems import terminate, cpu_seconds, free_port, rss_bytes, shoal_command  # noqa: E402
from workload import DataSet  # noqa: E402

CGROUP_CPU = "/sys/fs/cgroup/cpu"
MEMORY_BOUND = 100_000_000  # bytes: issue 19's "each node under 100 MB of memory"
SCALE_BOUND = 3.0  # 4 nodes at least 3x one node
WORKLOAD_LABELS = {"get": "GetItem", "query": "Query-20", "app": "app mix", "put": "PutItem"}


class CpuCap:
    """One cgroup of the cpu controller: a node's CPU budget (cores per period)."""

    def __init__(self, name: str, period_us: int) -> None:
        self.path = os.path.join(CGROUP_CPU, name)
        self.period_us = period_us
        os.mkdir(self.path)
        self._write("cpu.cfs_period_us", period_us)
        self.cores: float | None = None
        self.set(None)

    def _write(self, name: str, value) -> None:
        with open(os.path.join(self.path, name), "w") as handle:
            handle.write(f"{value}\n")

    def set(self, cores: float | None) -> None:
        """Cap at ``cores`` (a fraction of a core is fine), or lift the cap (None)."""
        self._write("cpu.cfs_quota_us", -1 if cores is None else max(1000, round(cores * self.period_us)))
        self.cores = cores

    def stat(self) -> dict:
        """cpu.stat: nr_periods, nr_throttled, throttled_time (ns) so far."""
        with open(os.path.join(self.path, "cpu.stat")) as handle:
            return {name: int(value) for name, value in (line.split() for line in handle)}

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as handle:
                return [int(line) for line in handle if line.strip()]
        except OSError:
            return []

    def remove(self) -> None:
        """rmdir, once the processes in it have exited (waits up to 10 s)."""
        deadline = time.monotonic() + 10
        while os.path.isdir(self.path):
            try:
                os.rmdir(self.path)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cgroup {self.path} still holds processes {self.pids()}")
                time.sleep(0.1)


class Node:
    """``shoal serve --storage DSN --workers 1``, started inside its cgroup."""

    def __init__(self, index: int, workdir: str, dsn: str, cap: CpuCap, tree: str | None = None,
                 serve_args: tuple[str, ...] = ()) -> None:
        self.index = index
        self.cap = cap
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        data_dir = os.path.join(workdir, f"node{index}")
        os.makedirs(data_dir)
        self.log = os.path.join(workdir, f"node{index}.log")
        serve = [*(shoal_command() if tree is None else [sys.executable, "-m", "shoal"]), "serve", "--port", str(self.port), "--data-dir", data_dir, "--workers", "1",
                 "--storage", dsn, *serve_args]
        # the wrapper moves itself (its own pid, $$) into the cgroup, then becomes the node
        command = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cap.path, *serve]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, cwd=tree or REPO_DIR,
                                         env=dict(os.environ, PYTHONPATH=tree) if tree else None)

    def wait(self) -> None:
        try:
            wait_until_answering(Endpoint(self.port), 90, poll=0.1, alive=lambda: self.proc.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"node {self.index} did not start: {exc}\n{self.log_tail()}") from None
        if self.proc.pid not in self.cap.pids():
            raise RuntimeError(f"node {self.index} (pid {self.proc.pid}) is not in {self.cap.path}")

    def log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as handle:
                return "".join(handle.readlines()[-15:])
        except OSError:
            return ""

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        terminate(self.proc)


def _postmaster(cluster) -> int:
    with open(os.path.join(cluster.data, "postmaster.pid")) as handle:
        return int(handle.readline())


def wait_idle(nodes: list[Node], limit_s: float = 20.0, window_s: float = 0.3, share: float = 0.03) -> float:
    """Wait until every node's CPU falls under ``share`` of a core (the last run's
    requests finished); returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = [node.cpu() for node in nodes]
        time.sleep(window_s)
        if all(node.cpu() - b < share * window_s for node, b in zip(nodes, before)):
            break
    return time.monotonic() - started


def idle_cpu(nodes: list[Node], postgres_pid: int, seconds: float = 5.0) -> dict:
    """Cores used by each node and by PostgreSQL with no requests (background work)."""
    before = [node.cpu() for node in nodes], cpu_seconds(postgres_pid)
    time.sleep(seconds)
    return {"nodes": [(node.cpu() - b) / seconds for node, b in zip(nodes, before[0])],
            "postgres": (cpu_seconds(postgres_pid) - before[1]) / seconds}


class WaitSampler:
    """Samples, every ``interval_s`` on a thread of its own, what the nodes' database
    sessions are doing (pg_stat_activity): running a statement, waiting for a lock
    (which one), or idle inside a transaction (waiting for their node's next statement:
    a node stopped by its cap while it holds locks keeps them held)."""

    QUERY = ("SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
             "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")

    def __init__(self, dsn: str, interval_s: float = 0.02) -> None:
        import threading

        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.interval_s = interval_s
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            rows = self.conn.execute(self.QUERY).fetchall()
            self.samples += 1
            for state, wait_type, wait_event in rows:
                if state == "active":
                    kind = f"lock {wait_event}" if wait_type == "Lock" else (
                        "running" if wait_type in (None, "CPU") else f"active {wait_type}")
                elif state == "idle in transaction":
                    kind = "in transaction, waiting for its node"
                else:
                    continue
                self.counts[kind] = self.counts.get(kind, 0) + 1

    def stop(self) -> dict:
        """Sessions in each state, on average over the samples."""
        self._stop.set()
        self._thread.join()
        self.conn.close()
        return {kind: count / self.samples for kind, count in sorted(self.counts.items())} if self.samples else {}


def measure(active: list[Node], everyone: list[Node], postgres_pid: int, mode: str, args, counts: str,
            seed: int) -> dict:
    """One warm-up, then one measured run of ``mode`` against the ``active`` nodes."""
    waited = wait_idle(everyone)
    urls = [node.url for node in active]
    if args.warmup > 0:
        run_wrk_nodes(urls, args.connections, args.warmup, workload_args(mode, counts, seed + 1000))
    node_before = [node.cpu() for node in everyone]
    stat_before = [node.cap.stat() for node in active]
    pg_before, busy_before, started = cpu_seconds(postgres_pid), machine_busy_seconds(), time.monotonic()
    sampler = WaitSampler(args.dsn) if args.sample_waits else None
    try:
        report = run_wrk_nodes(urls, args.connections, args.seconds, workload_args(mode, counts, seed))
    finally:
        sessions = sampler.stop() if sampler else None
    wall = time.monotonic() - started
    node_cpu = [node.cpu() - b for node, b in zip(everyone, node_before)]
    stat_after = [node.cap.stat() for node in active]
    pg_cpu = cpu_seconds(postgres_pid) - pg_before
    busy = machine_busy_seconds() - busy_before
    seconds = report["duration_us"] / 1e6
    requests = report["requests"]
    nodes = []
    for node, answered, cpu, before, after in zip(active, report["node_requests"], node_cpu, stat_before,
                                                  stat_after):
        periods = after["nr_periods"] - before["nr_periods"]
        nodes.append({
            "node": node.index, "requests": answered, "rps": answered / seconds,
            "cpu_cores": cpu / wall, "cpu_us_per_req": cpu / answered * 1e6 if answered else None,
            "budget_used": cpu / wall / node.cap.cores if node.cap.cores else None,
            "throttled_share": (after["nr_throttled"] - before["nr_throttled"]) / periods if periods else 0.0,
        })
    idle_nodes_cpu = sum(node_cpu[len(active):])
    nodes_cpu = sum(node_cpu)
    other = busy - nodes_cpu - pg_cpu - report["client_cpu_s"]
    return {
        "mode": mode, "nodes": len(active), "capped": active[0].cap.cores is not None,
        "node_cores": active[0].cap.cores, "requests": requests, "seconds": seconds, "rps": requests / seconds,
        "latency_ms": {k: v / 1000 for k, v in report["latency_us"].items()},
        "non2xx": report["non2xx"], "socket_errors": sum(report["socket_errors"].values()),
        "error_types": report["error_types"], "empty_answers": report["empty_answers"],
        "per_node": nodes,
        "nodes_cpu_us_per_req": (nodes_cpu - idle_nodes_cpu) / requests * 1e6 if requests else None,
        "idle_nodes_cores": idle_nodes_cpu / wall,
        "postgres_cores": pg_cpu / wall, "postgres_us_per_req": pg_cpu / requests * 1e6 if requests else None,
        "wrk_cores": report["client_cpu_s"] / wall, "other_cores": max(0.0, other) / wall,
        "idle_cores": max(0.0, os.cpu_count() - busy / wall), "idle_wait_s": waited,
        "sessions": sessions,
    }


def stop_all(nodes: list[Node], caps: list[CpuCap], cluster, workdir: str) -> None:
    """Stop the nodes, then remove their cgroups, stop PostgreSQL and remove the work
    directory; every step is tried even when one before it failed."""
    failures = []
    for step in [node.stop for node in nodes] + [cap.remove for cap in caps] + (
            [cluster.stop] if cluster is not None else []):
        try:
            step()
        except Exception as exc:  # reported after the others were tried
            failures.append(exc)
    shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        raise failures[0]


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _fmt(values: list[float], digits: int = 0) -> str:
    mid, low, high = _spread(values)
    if len(values) == 1:
        return f"{mid:,.{digits}f}"
    return f"{mid:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def summarize(runs: list[dict], counts: list[int], workloads: list[str]) -> dict:
    """Per setting (nodes, capped, workload): the runs' figures; and the ratios N/1 per round."""
    settings: dict = {}
    for run in runs:
        settings.setdefault((run["nodes"], run["capped"], run["mode"]), []).append(run)
    ratios: dict = {}
    work_ratios: dict = {}
    for mode in workloads:
        one = {run["round"]: run for run in settings.get((1, True, mode), [])}
        for n in counts:
            if n == 1:
                continue
            pairs = [(run, one[run["round"]]) for run in settings.get((n, True, mode), []) if run["round"] in one]
            if pairs:
                ratios[f"{mode} {n}/1"] = [run["rps"] / base["rps"] for run, base in pairs]
                # what the throughput ratio would be if every run had had the machine to itself:
                # n nodes' budgets over what each request cost the nodes in CPU, against one's
                work_ratios[f"{mode} {n}/1"] = [n * base["nodes_cpu_us_per_req"] / run["nodes_cpu_us_per_req"]
                                                for run, base in pairs]
    return {"settings": settings, "ratios": ratios, "work_ratios": work_ratios}


def print_report(summary: dict, idle: dict, memory: list[dict], args, load: str, started_at: str) -> None:
    print(f"{started_at}; load average before the rounds: {load}; {os.cpu_count()} cores; node budget "
          f"{args.node_cores:g} core (period {args.period_ms:g} ms); wrk: one thread and {args.connections} "
          f"connections per node; {args.seconds:g} s runs after {args.warmup:g} s of warm-up; {args.rounds} "
          f"rounds; {args.items} preloaded events")
    print("idle: nodes " + ", ".join(f"{c * 1000:.1f}" for c in idle["nodes"])
          + f" ms/s, PostgreSQL {idle['postgres'] * 1000:.1f} ms/s")
    print()
    print("| nodes | workload | req/s | req/s per node | p50 / p99 ms | node CPU µs/req | budget used "
          "| throttled | PostgreSQL cores (µs/req) | wrk cores | other cores | idle cores | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (n, capped, mode), runs in summary["settings"].items():
        per_node = [node["rps"] for run in runs for node in run["per_node"]]
        budget = [node["budget_used"] for run in runs for node in run["per_node"] if node["budget_used"]]
        throttled = [node["throttled_share"] for run in runs for node in run["per_node"]]
        failed = sum(run["error_types"].get("ConditionalCheckFailedException", 0) for run in runs)
        errors = f"{sum(run['non2xx'] + run['socket_errors'] for run in runs) - failed}"
        if failed:  # the app mix's "never back in time" condition, when another thread moved the time on
            errors += f" (+{failed} conditions failed)"
        label = f"{n}" if capped else f"{n} uncapped"
        print(f"| {label} | {WORKLOAD_LABELS[mode]} | {_fmt([r['rps'] for r in runs])} "
              f"| {_fmt(per_node)} "
              f"| {_fmt([r['latency_ms']['p50'] for r in runs], 1)} / {_fmt([r['latency_ms']['p99'] for r in runs], 1)} "
              f"| {_fmt([r['nodes_cpu_us_per_req'] for r in runs])} "
              f"| {_fmt(budget, 2) if budget else '-'} | {_fmt(throttled, 2) if capped else '-'} "
              f"| {_fmt([r['postgres_cores'] for r in runs], 2)} ({_fmt([r['postgres_us_per_req'] for r in runs])}) "
              f"| {_fmt([r['wrk_cores'] for r in runs], 2)} | {_fmt([r['other_cores'] for r in runs], 2)} "
              f"| {_fmt([r['idle_cores'] for r in runs], 2)} | {errors} |")
    sessions: dict = {}
    for (n, capped, mode), runs in summary["settings"].items():
        for run in runs:
            for kind, mean in (run.get("sessions") or {}).items():
                sessions.setdefault((n, capped, mode), {}).setdefault(kind, []).append(mean)
    if sessions:
        print()
        print("sessions of the nodes in PostgreSQL, on average over the run (median of the rounds):")
        for (n, capped, mode), kinds in sessions.items():
            print(f"  {n}{'' if capped else ' uncapped'} {WORKLOAD_LABELS[mode]}: " + ", ".join(
                f"{kind} {statistics.median(values):.2f}" for kind, values in kinds.items()))
    print()
    print("| ratio | by req/s, per round | median | by node CPU per request, per round | median | bound |")
    print("|---|---|---|---|---|---|")
    for name, values in summary["ratios"].items():
        mode, _, which = name.partition(" ")
        work = summary["work_ratios"][name]
        bound = ""
        if which == "4/1":
            bound = "met" if min(values) >= SCALE_BOUND else (
                "met in median" if statistics.median(values) >= SCALE_BOUND else "NOT met")
            bound = f">= {SCALE_BOUND:g} by req/s: {bound}"
        print(f"| {WORKLOAD_LABELS[mode]} {which} | {', '.join(f'{v:.2f}' for v in values)} "
              f"| {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in work)} "
              f"| {statistics.median(work):.2f} | {bound} |")
    print()
    for entry in memory:
        print(f"node {entry['node']}: peak resident {entry['vm_hwm'] / 1e6:.1f} MB (VmHWM), now "
              f"{entry['vm_rss'] / 1e6:.1f} MB: {'under' if entry['vm_hwm'] < MEMORY_BOUND else 'NOT under'} 100 MB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1,2,4", help="node counts to measure (default 1,2,4)")
    parser.add_argument("--node-cores", type=float, default=0.15, help="each node's CPU budget, in cores")
    parser.add_argument("--period-ms", type=float, default=10.0, help="the CFS period of the caps")
    parser.add_argument("--items", type=int, default=5000, help="viewer events preloaded")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections per node")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", default="get,query,app")
    parser.add_argument("--no-uncapped", dest="uncapped", action="store_false",
                        help="skip the run of one node without its cap")
    parser.add_argument("--sample-waits", action="store_true", help="sample pg_stat_activity every 20 ms "
                        "during each run: the nodes' sessions running, waiting for a lock, idle in a transaction")
    parser.add_argument("--serve-args", default="", metavar="ARGS", help="more options of every node's "
                        "shoal serve (one string, split at spaces), e.g. --serve-args=--no-metrics")
    parser.add_argument("--tree", metavar="DIR", help="run the nodes from this source tree (PYTHONPATH), "
                        "e.g. a commit's: git archive REV | tar -x -C DIR")
    parser.add_argument("--json", metavar="FILE", help="also write every run's figures here")
    args = parser.parse_args(argv)
    counts = sorted({int(n) for n in args.nodes.split(",")})
    workloads = args.workloads.split(",")
    if any(mode not in WORKLOAD_LABELS for mode in workloads):
        parser.error(f"workloads: {', '.join(WORKLOAD_LABELS)}")
    if not os.path.isdir(CGROUP_CPU) or os.geteuid() != 0:
        raise SystemExit(f"needs root and cgroup v1's cpu controller at {CGROUP_CPU}")

    from tests.postgres_cluster import PostgresCluster, missing_binaries_message, postgres_bin_dir

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit(missing_binaries_message())

    # SIGTERM unwinds like Ctrl-C, so the finally below stops everything and removes the cgroups
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    workdir = tempfile.mkdtemp(prefix="shoal-pg-nodes-")
    counts_path = os.path.join(workdir, "counts.txt")
    period_us = round(args.period_ms * 1000)
    cluster = None
    caps: list[CpuCap] = []
    nodes: list[Node] = []
    runs: list[dict] = []
    try:
        cluster = PostgresCluster(bin_dir).start()
        postgres_pid = _postmaster(cluster)
        dsn = args.dsn = cluster.create_database("nodes")
        for index in range(1, max(counts) + 1):
            caps.append(CpuCap(f"shoal-pg-nodes-{os.getpid()}-{index}", period_us))
            nodes.append(Node(index, workdir, dsn, caps[-1], args.tree, tuple(args.serve_args.split())))
            nodes[-1].wait()  # one at a time: each creates what is missing in the store at its start
        dataset = DataSet.build(args.items)
        dataset.write_counts(counts_path)
        create_tables(Endpoint(nodes[0].port))
        preload(Endpoint(nodes[0].port), dataset, "viewer_events", processes=2)
        for cap in caps:
            cap.set(args.node_cores)
        idle = idle_cpu(nodes, postgres_pid)
        with open("/proc/loadavg") as handle:
            load = handle.read().split()[0]
        for round_ in range(1, args.rounds + 1):
            # a workload's node counts back to back, so that the ratios compare runs close in time
            # (the machine is shared); every other round in the reverse order
            for mode in workloads:
                for n in (counts if round_ % 2 else counts[::-1]):
                    run = measure(nodes[:n], nodes, postgres_pid, mode, args, counts_path, round_ * 10 + n)
                    runs.append(dict(run, round=round_))
                    print(f"round {round_}, {n} node(s), {mode}: {run['rps']:,.0f} req/s, p99 "
                          f"{run['latency_ms']['p99']:.1f} ms, PostgreSQL {run['postgres_cores']:.2f} cores, "
                          f"idle {run['idle_cores']:.2f} cores", file=sys.stderr)
            if args.uncapped:
                nodes[0].cap.set(None)
                try:
                    for mode in workloads:
                        run = measure(nodes[:1], nodes, postgres_pid, mode, args, counts_path, round_ * 10 + 9)
                        runs.append(dict(run, round=round_))
                        print(f"round {round_}, 1 node uncapped, {mode}: {run['rps']:,.0f} req/s", file=sys.stderr)
                finally:
                    nodes[0].cap.set(args.node_cores)
        memory = [{"node": node.index, "vm_hwm": rss_bytes(node.proc.pid, "VmHWM"),
                   "vm_rss": rss_bytes(node.proc.pid, "VmRSS")} for node in nodes]
    finally:
        stop_all(nodes, caps, cluster, workdir)

    summary = summarize(runs, counts, workloads)
    print_report(summary, idle, memory, args, load, started_at)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"started": started_at, "load": load, "cores": os.cpu_count(), "args": vars(args),
                       "idle": idle, "memory": memory, "ratios": summary["ratios"],
                       "work_ratios": summary["work_ratios"], "runs": runs}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
