"""GetItem per node over PostgreSQL against the same node over LMDB (issue 19 point 5).

    python bench/pg_getitem.py [--items 10000] [--connections 16] [--seconds 5] [--rounds 2]
                               [--pin shared|split|none] [--profile DIR] [--callgrind DIR]
                               [--nodes lmdb,pg,pg-before=TREE]

Two ``shoal serve --workers 1`` nodes, one over an LMDB data directory and one
over a PostgreSQL from Debian's packages (tests/postgres_cluster.py: initdb
into a temporary directory, a free port, ``fsync=off``), each given the same
table of ``--items`` items (a string hash key, about 200 bytes each), are
driven in turn, round after round, by one wrk (one thread, ``--connections``
connections) sending GetItems of random keys; each run is preceded by a
warm-up.  For each run the report gives requests per second and p99, and CPU
per request read from /proc: Shoal's (user and system), PostgreSQL's (every
process of the cluster: the node's backends, the WAL writer and so on), wrk's,
and the rest of the machine's.  Before the rounds, each node's CPU while idle
(its background jobs) is measured, so that it is not mistaken for a cost of
requests.

``--pin``: ``shared`` (as bench/run.py does: the nodes and PostgreSQL on core
0, wrk on core 1), ``split`` (the node on core 0, PostgreSQL and wrk on core
1) or ``none``.  ``--profile DIR`` runs each node under cProfile, enabled
only for the measured runs (by signals to the node), and writes
``DIR/<node>.prof`` plus the top of each by own time.  ``--nodes`` names the
nodes, each ``lmdb...`` or ``pg...`` (its own database), optionally
``=TREE``: a node run from another source tree (PYTHONPATH), to compare two
versions in one run (``git archive REV | tar -x -C TREE``).

Wall-clock figures on a shared 2-core machine move by a factor of two from run
to run; CPU per request moves far less, and it is what says whether a node is
at least half as efficient over PostgreSQL as over LMDB.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, REPO_DIR)

from systems import terminate, CLOCK_TICKS, free_port, process_tree  # noqa: E402

TABLE = "bench_getitem"

# One GetItem of a random key per request; counts the answers that are not 200
# and those that found nothing ("{}"), which would mean the table is not loaded.
LUA = r"""
local items = tonumber(os.getenv("BENCH_ITEMS"))
local table_name = os.getenv("BENCH_TABLE")
local head
misses = 0
errors = 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(tonumber(args[1] or "1"))
end
function request()
  local key = math.random(items)
  return wrk.format("POST", "/", {
    ["Content-Type"] = "application/x-amz-json-1.0",
    ["X-Amz-Target"] = "DynamoDB_20120810.GetItem",
    ["Authorization"] = "AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/dynamodb/aws4_request, "
      .. "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0",
    ["X-Amz-Date"] = "20240101T000000Z",
  }, '{"TableName":"' .. table_name .. '","Key":{"id":{"S":"item-' .. key .. '"}}}')
end
function response(status, headers, body)
  if status ~= 200 then errors = errors + 1 elseif #body == 2 then misses = misses + 1 end
end
function done(summary, latency, requests)
  local misses_all, errors_all = 0, 0
  for _, thread in ipairs(threads) do
    misses_all = misses_all + (thread:get("misses") or 0)
    errors_all = errors_all + (thread:get("errors") or 0)
  end
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"non200":%d,"misses":%d,'
    .. '"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n', summary.requests, summary.duration, errors_all,
    misses_all, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

# Runs ``shoal serve`` with cProfile, enabled by SIGUSR1 and disabled (and the
# profile written) by SIGUSR2: only the measured runs are profiled.
PROFILED = r"""
import cProfile, signal, sys
from shoal.cli import main
out = sys.argv.pop(1)
profile = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def stop(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, stop)
sys.exit(main(sys.argv[1:]))
"""


# Under valgrind: LMDB's default 1 TiB map cannot be reserved, so a smaller
# one; and the background jobs' rounds, which follow the wall clock that
# valgrind stretches 50-fold, once an hour, or they would count into the
# requests (over PostgreSQL each round is a few round trips).
UNDER_VALGRIND = r"""
import sys
from shoal.storage.lmdb_engine import LmdbEngine
LmdbEngine.__init__.__kwdefaults__["map_size"] = 1 << 30
from shoal.server.background import BackgroundJobs
BackgroundJobs.INTERVAL_S = 3600.0
from shoal.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cpu(pids) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pids`` and their descendants."""
    user = system = 0
    seen = set()
    for pid in pids:
        for member in process_tree(pid):
            if member in seen:
                continue
            seen.add(member)
            try:
                with open(f"/proc/{member}/stat") as handle:
                    values = handle.read().rpartition(")")[2].split()
            except OSError:
                continue
            user += int(values[11])
            system += int(values[12])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def _machine_busy() -> float:
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Node:
    """One ``shoal serve --workers 1`` (``storage`` None: an LMDB data directory)."""

    def __init__(self, engine: str, workdir: str, storage: str | None, cpus: str | None, profile: str | None,
                 callgrind: str | None = None, tree: str | None = None):
        self.engine = engine
        self.postgres = storage is not None
        self.port = free_port()
        self.profile = os.path.join(profile, f"{engine}.prof") if profile else None
        self.callgrind = os.path.join(callgrind, f"{engine}.callgrind") if callgrind else None
        data_dir = os.path.join(workdir, engine)
        os.makedirs(data_dir)
        if self.callgrind:
            command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.callgrind}",
                       sys.executable, "-c", UNDER_VALGRIND]
            cpus = None  # valgrind's pid must be the node's, for callgrind_control
        elif self.profile:
            command = [sys.executable, "-c", PROFILED, self.profile]
        else:
            command = [sys.executable, "-m", "shoal"]
        command += ["serve", "--port", str(self.port), "--data-dir", data_dir, "--workers", "1"]
        if storage:
            command += ["--storage", storage]
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        self.log = os.path.join(workdir, f"{engine}.log")
        env = dict(os.environ, PYTHONPATH=tree) if tree else None
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, cwd=tree or REPO_DIR, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait()

    def _wait(self) -> None:
        import urllib.request

        deadline = time.monotonic() + (600 if self.callgrind else 60)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.engine} node stopped:\n{open(self.log).read()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the {self.engine} node did not answer")

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("dynamodb", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="bench", aws_secret_access_key="bench",
                            config=Config(retries={"max_attempts": 10, "mode": "standard"}))

    def load(self, items: int) -> None:
        ddb = self.client()
        ddb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        filler = "x" * 120
        for first in range(1, items + 1, 25):
            batch = [{"PutRequest": {"Item": {"id": {"S": f"item-{n}"}, "views": {"N": str(n)},
                                              "title": {"S": f"title {n} {filler}"}}}}
                     for n in range(first, min(first + 25, items + 1))]
            pending = {TABLE: batch}
            while pending:
                pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        found = ddb.get_item(TableName=TABLE, Key={"id": {"S": f"item-{items}"}}).get("Item")
        assert found is not None and found["views"] == {"N": str(items)}, found

    def signal(self, number: int) -> None:
        if self.profile:
            self.proc.send_signal(number)

    def stop(self) -> None:
        terminate(self.proc)


def _wrk(url: str, connections: int, seconds: float, script: str, items: int, seed: int,
         cpus: str | None) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout=10s", "-s", script,
               url, "--", str(seed)]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    env = dict(os.environ, BENCH_ITEMS=str(items), BENCH_TABLE=TABLE)
    before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + 120)
    client_cpu = _children_cpu() - before
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            report = json.loads(line[len("BENCH_JSON "):])
            report["client_cpu_s"] = client_cpu
            return report
    raise RuntimeError(f"wrk gave no report ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _postmaster(cluster) -> int:
    with open(os.path.join(cluster.data, "postmaster.pid")) as handle:
        return int(handle.readline())


def measure(node: Node, postgres_pid: int | None, args, script: str, seed: int, cpus: str | None) -> dict:
    """One warm-up, then one measured run of GetItems against ``node``."""
    _wrk(node.url, args.connections, args.warmup, script, args.items, seed + 1000, cpus)
    pg = [postgres_pid] if postgres_pid else []
    node.signal(signal.SIGUSR1)
    shoal_before, pg_before, busy_before = _cpu([node.proc.pid]), _cpu(pg), _machine_busy()
    report = _wrk(node.url, args.connections, args.seconds, script, args.items, seed, cpus)
    shoal_after, pg_after, busy_after = _cpu([node.proc.pid]), _cpu(pg), _machine_busy()
    node.signal(signal.SIGUSR2)
    requests = report["requests"]
    seconds = report["duration_us"] / 1e6
    per = 1e6 / requests if requests else 0.0
    shoal_user, shoal_sys = shoal_after[0] - shoal_before[0], shoal_after[1] - shoal_before[1]
    pg_cpu = sum(pg_after) - sum(pg_before)
    other = (busy_after - busy_before) - shoal_user - shoal_sys - pg_cpu - report["client_cpu_s"]
    return {"engine": node.engine, "requests": requests, "rps": requests / seconds, "p50_ms": report["p50_us"] / 1000,
            "p99_ms": report["p99_us"] / 1000, "non200": report["non200"], "misses": report["misses"],
            "socket_errors": report["socket_errors"],
            "shoal_us": (shoal_user + shoal_sys) * per, "shoal_user_us": shoal_user * per,
            "shoal_sys_us": shoal_sys * per, "pg_us": pg_cpu * per, "wrk_us": report["client_cpu_s"] * per,
            "other_cores": max(0.0, other) / seconds}


def idle_cpu(node: Node, postgres_pid: int | None, seconds: float = 3.0) -> tuple[float, float]:
    """CPU ms per second of the node, and of PostgreSQL, with no requests (background work)."""
    pg = [postgres_pid] if postgres_pid else []
    shoal_before, pg_before = sum(_cpu([node.proc.pid])), sum(_cpu(pg))
    time.sleep(seconds)
    return ((sum(_cpu([node.proc.pid])) - shoal_before) * 1000 / seconds,
            (sum(_cpu(pg)) - pg_before) * 1000 / seconds)


def _dumped_total(path: str) -> int:
    """The instructions counted in one callgrind dump (its ``totals:`` line)."""
    with open(path) as handle:
        for line in handle:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def count_instructions(node: Node, args, script: str) -> dict:
    """Instructions the node executes per GetItem (user space only: callgrind
    sees no kernel work): counted while wrk sends GetItems, less the same
    length of time without requests (background jobs), over the requests."""
    import glob

    pid = str(node.proc.pid)
    control = lambda *what: subprocess.run(["callgrind_control", *what, pid], capture_output=True, check=True)
    _wrk(node.url, 4, 3, script, args.items, 7, None)  # warm-up: every path taken once
    control("-z")
    control("-i", "on")
    started = time.monotonic()
    report = _wrk(node.url, 4, args.seconds, script, args.items, 8, None)
    loaded_s = time.monotonic() - started
    control("-d", "requests")
    time.sleep(loaded_s)
    control("-d", "idle")
    control("-i", "off")
    dumps = sorted(glob.glob(node.callgrind + ".*"), key=os.path.getmtime)
    loaded, idle = _dumped_total(dumps[-2]), _dumped_total(dumps[-1])
    return {"engine": node.engine, "requests": report["requests"], "non200": report["non200"],
            "misses": report["misses"], "loaded": loaded, "idle": idle, "dumps": dumps[-2:],
            "per_request": (loaded - idle) / report["requests"]}


def stop_all(nodes, cluster, workdir: str) -> None:
    """Stop the nodes and the PostgreSQL cluster, remove the work directory."""
    for node in nodes:
        node.stop()
    if cluster is not None:
        cluster.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def print_idle(idle: dict) -> None:
    """Each engine's idle CPU (``idle_cpu``'s figures), one line each."""
    for engine, (shoal_ms, pg_ms) in idle.items():
        print(f"idle {engine}: Shoal {shoal_ms:.1f} ms/s, PostgreSQL {pg_ms:.1f} ms/s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--nodes", default="lmdb,pg", help="NAME[=TREE],...: lmdb* over LMDB, pg* over "
                        "PostgreSQL; TREE: run that node from another source tree")
    parser.add_argument("--pin", choices=("shared", "split", "none"), default="shared")
    parser.add_argument("--profile", metavar="DIR")
    parser.add_argument("--callgrind", metavar="DIR", help="count instructions per GetItem under callgrind "
                        "instead (user space only; the dumps are kept in DIR for callgrind_annotate)")
    parser.add_argument("--json", metavar="FILE", help="also write every run's figures here")
    args = parser.parse_args(argv)
    specs = [spec.partition("=")[::2] for spec in args.nodes.split(",")]
    if not all(name.startswith(("lmdb", "pg")) for name, _ in specs):
        parser.error("each node's name begins with lmdb or pg")
    node_cpus, pg_cpus, wrk_cpus = {"shared": ("0", "0", "1"), "split": ("0", "1", "1"),
                                    "none": (None, None, None)}[args.pin]
    for folder in (args.profile, args.callgrind):
        if folder:
            os.makedirs(folder, exist_ok=True)

    from tests.postgres_cluster import PostgresCluster, missing_binaries_message, postgres_bin_dir

    workdir = tempfile.mkdtemp(prefix="shoal-pg-getitem-")
    script = os.path.join(workdir, "getitem.lua")
    with open(script, "w") as handle:
        handle.write(LUA)
    cluster = None
    nodes: list[Node] = []
    try:
        postgres_pid = None
        dsn = None
        if any(name.startswith("pg") for name, _ in specs):
            bin_dir = postgres_bin_dir()
            if bin_dir is None:
                raise SystemExit(missing_binaries_message())
            cluster = PostgresCluster(bin_dir).start()
            postgres_pid = _postmaster(cluster)
            if pg_cpus is not None:
                for pid in process_tree(postgres_pid):
                    subprocess.run(["taskset", "-pc", pg_cpus, str(pid)], capture_output=True)
        for name, tree in specs:
            dsn = cluster.create_database("bench") if name.startswith("pg") else None
            nodes.append(Node(name, workdir, dsn, node_cpus, args.profile, args.callgrind, tree or None))
        for node in nodes:
            node.load(args.items)
        if args.callgrind:
            counts = [count_instructions(node, args, script) for node in nodes]
            for count in counts:
                print(f"{count['engine']}: {count['per_request']:,.0f} instructions per GetItem "
                      f"({count['requests']} requests, {count['non200']} not 200, {count['misses']} misses; "
                      f"loaded {count['loaded']:,}, idle {count['idle']:,}; {', '.join(count['dumps'])})")
            return 0
        if pg_cpus is not None and postgres_pid:  # backends forked since
            for pid in process_tree(postgres_pid):
                subprocess.run(["taskset", "-pc", pg_cpus, str(pid)], capture_output=True)
        idle = {node.engine: idle_cpu(node, postgres_pid if node.postgres else None) for node in nodes}
        with open("/proc/loadavg") as handle:
            load = handle.read().split()[0]
        runs = []
        for round_ in range(args.rounds):
            for node in nodes:
                pg = postgres_pid if node.postgres else None
                runs.append(dict(measure(node, pg, args, script, round_ + 1, wrk_cpus), round=round_ + 1))
    finally:
        stop_all(nodes, cluster, workdir)

    print(f"load average before the rounds: {load}; pin: {args.pin}; wrk -t1 -c{args.connections}, "
          f"{args.seconds:g} s runs after {args.warmup:g} s of warm-up; {args.items} items")
    print_idle(idle)
    print()
    print("| round | engine | req/s | p50 / p99 ms | Shoal CPU µs/req (user + sys) | PostgreSQL CPU µs/req "
          "| wrk µs/req | other cores busy |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(f"| {run['round']} | {run['engine']} | {run['rps']:,.0f} | {run['p50_ms']:.1f} / {run['p99_ms']:.1f} "
              f"| {run['shoal_us']:.0f} ({run['shoal_user_us']:.0f} + {run['shoal_sys_us']:.0f}) "
              f"| {run['pg_us']:.0f} | {run['wrk_us']:.0f} | {run['other_cores']:.2f} |")
        if run["non200"] or run["misses"] or run["socket_errors"]:
            print(f"  ! {run['non200']} answers not 200, {run['misses']} misses, "
                  f"{run['socket_errors']} socket errors")
    by_round: dict = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["engine"]] = run
    for round_, pair in sorted(by_round.items()):
        lmdb = next((run for name, run in pair.items() if name.startswith("lmdb")), None)
        for name, pg in pair.items():
            if lmdb is not None and name.startswith("pg"):
                print(f"round {round_}: {name} / {lmdb['engine']} by req/s {pg['rps'] / lmdb['rps']:.2f}x; "
                      f"by Shoal's CPU per request {lmdb['shoal_us'] / pg['shoal_us']:.2f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"idle": idle, "runs": runs, "load": load, "args": vars(args)}, handle, indent=1)
    if args.profile:
        for node in nodes:
            if os.path.exists(node.profile):
                print(f"\n--- {node.engine}: {node.profile}")
                pstats.Stats(node.profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
