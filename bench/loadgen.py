"""Drive one measured run with wrk and collect what it and /proc say.

wrk runs pinned to ``CLIENT_CPUS`` with one thread (one core is all it gets:
the server has the other).  A run is a warm-up (its figures discarded) followed
by the measured window; the server tree's CPU time is read just before and just
after the measured window, and wrk's own CPU time comes from the kernel's
accounting of reaped children, so every run also says how busy the load
generator was (near 100% of its core would mean wrk, not the server, limits).

A system that verifies SigV4 (``system.signs``) is driven with
``lua/presigned.lua`` over a pool of requests Python signs right before the
run (``presign.write_pool``); one served over TLS is driven at https://.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time

import presign
from systems import BENCH_DIR, CLIENT_CPUS, CLOCK_TICKS

LUA_DIR = os.path.join(BENCH_DIR, "lua")
SCRIPT = os.path.join(LUA_DIR, "workload.lua")
PRESIGNED_SCRIPT = os.path.join(LUA_DIR, "presigned.lua")
NODES_SCRIPT = os.path.join(LUA_DIR, "nodes.lua")
PRESIGNED_POOL = 50_000  # distinct signed requests per run; wrk cycles through them
WORKLOADS = ("put", "get", "query", "ingest", "counter", "app", "point")
OPERATIONS_PER_REQUEST = {"ingest": 25}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat, everything but idle and iowait)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def workload_args(mode: str, counts_path: str, seed: int) -> list[str]:
    """wrk script arguments of lua/workload.lua, which builds each request in Lua."""
    return [f"mode={mode}", f"counts={counts_path}", f"base_ms={int(time.time() * 1000)}",
            f"hour={time.strftime('%Y%m%d%H', time.gmtime())}", f"seed={seed}", "threads=1"]


def run_wrk(url: str, connections: int, seconds: float, script: str, script_args: list[str],
            timeout_s: int = 10) -> dict:
    """One wrk run of ``script`` against ``url``; returns its BENCH_JSON report plus wrk's CPU seconds."""
    duration = max(1, round(seconds))
    command = ["taskset", "-c", CLIENT_CPUS, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
               f"--timeout={timeout_s}s", "-s", script, url, "--", *script_args]
    env = dict(os.environ, BENCH_LUA_DIR=LUA_DIR)
    cpu_before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=duration + timeout_s + 60)
    client_cpu = _children_cpu() - cpu_before
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            report = json.loads(line[len("BENCH_JSON "):])
            report["client_cpu_s"] = client_cpu
            return report
    raise RuntimeError(f"wrk gave no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


def run_wrk_nodes(urls: list[str], connections_per_node: int, seconds: float, script_args: list[str],
                  cpus: str | None = None, timeout_s: int = 10) -> dict:
    """One wrk run of ``lua/nodes.lua`` against several nodes at once (unsigned requests).

    wrk gets one thread per node, thread ``i`` connected to ``urls[i]`` with
    ``connections_per_node`` connections, so every node is offered the same
    closed-loop load; its latency percentiles are over all the requests of
    all the nodes.  ``script_args`` are ``workload_args``'s, whose ``threads=``
    is replaced by the thread count (new events' sort keys then differ across
    threads).  ``cpus``: a taskset CPU list for wrk, or None (unpinned).
    Returns the BENCH_JSON report plus wrk's CPU seconds (``client_cpu_s``)
    and the answers each node got (``node_requests``, in ``urls``' order).
    """
    from urllib.parse import urlsplit

    duration = max(1, round(seconds))
    threads = len(urls)
    nodes = ",".join(f"{part.hostname}:{part.port}" for part in map(urlsplit, urls))
    args = [a for a in script_args if not a.startswith("threads=")] + [f"threads={threads}"]
    command = ["wrk", f"-t{threads}", f"-c{threads * connections_per_node}", f"-d{duration}s",
               f"--timeout={timeout_s}s", "-s", NODES_SCRIPT, urls[0], "--", *args]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    env = dict(os.environ, BENCH_LUA_DIR=LUA_DIR, BENCH_NODES=nodes)
    cpu_before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=duration + timeout_s + 60)
    client_cpu = _children_cpu() - cpu_before
    report = node_requests = None
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            report = json.loads(line[len("BENCH_JSON "):])
        elif line.startswith("BENCH_NODES "):
            node_requests = json.loads(line[len("BENCH_NODES "):])
    if report is None or node_requests is None:
        raise RuntimeError(f"wrk gave no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    report["client_cpu_s"] = client_cpu
    report["node_requests"] = node_requests
    return report


def wait_until_idle(system, limit_s: float = 60.0, window_s: float = 0.2, busy_share: float = 0.1) -> float:
    """Wait until the server's CPU use falls below ``busy_share`` of a core.

    A slow server (moto) can still be working through requests queued by the
    previous run after wrk closed its connections; measuring before it is done
    would charge that work to the next run.  Returns the seconds waited.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = system.cpu_seconds()
        time.sleep(window_s)
        if system.cpu_seconds() - before < busy_share * window_s:
            break
    return time.monotonic() - started


def load_scripts(system, mode: str, counts_path: str, seed: int, pool_size: int) -> tuple[str, list, list]:
    """(script, warm-up arguments, measured-run arguments) for one run of ``system``.

    For a SigV4 system the pool is signed here, just before the run (so the
    signatures are seconds old); the warm-up starts half-way through it, so
    the measured run does not begin by repeating what the warm-up sent.
    """
    if not system.signs:
        return SCRIPT, workload_args(mode, counts_path, seed + 1000), workload_args(mode, counts_path, seed)
    pool = os.path.join(os.path.dirname(counts_path), f"presigned-{system.name}-{mode}.txt")
    presign.write_pool(pool, system.endpoint(), mode, counts_path, pool_size, seed)
    return PRESIGNED_SCRIPT, [f"pool={pool}", f"start={pool_size // 2}"], [f"pool={pool}", "start=0"]


def measure(system, mode: str, connections: int, seconds: float, warmup: float, counts_path: str,
            seed: int = 1, others=(), pool_size: int = PRESIGNED_POOL) -> dict:
    """Wait until this server and the ``others`` (which share its core) are idle, warm up,
    then one measured run; the figures the report needs."""
    script, warmup_args, run_args = load_scripts(system, mode, counts_path, seed, pool_size)
    waited = sum(wait_until_idle(s) for s in (system, *others))
    url = system.endpoint().url
    if warmup > 0:
        run_wrk(url, connections, warmup, script, warmup_args)
    faults = getattr(system, "major_faults", None)
    faults_before = faults() if faults else None
    busy_before, cpu_before = machine_busy_seconds(), system.cpu_seconds()
    report = run_wrk(url, connections, seconds, script, run_args)
    server_cpu = system.cpu_seconds() - cpu_before
    result = summarize(report, server_cpu, mode, connections)
    if faults_before is not None and result["requests"]:
        # pages the server had to read from disk, per request (0 when its data is in memory)
        result["major_faults_per_req"] = (faults() - faults_before) / result["requests"]
    # what else kept the machine busy meanwhile (other programs on this shared machine)
    other = machine_busy_seconds() - busy_before - server_cpu - report["client_cpu_s"]
    result["other_cpu_share"] = max(0.0, other) / result["seconds"] if result["seconds"] else 0.0
    result["idle_wait_s"] = waited
    return result


def summarize(report: dict, server_cpu: float, mode: str, connections: int) -> dict:
    """Throughput, latency, CPU per request and every error of one run."""
    requests = report["requests"]
    elapsed = report["duration_us"] / 1e6
    socket_errors = sum(report["socket_errors"].values())
    return {
        "workload": mode,
        "connections": connections,
        "requests": requests,
        "seconds": elapsed,
        "rps": requests / elapsed if elapsed else 0.0,
        "items_per_s": requests * OPERATIONS_PER_REQUEST.get(mode, 1) / elapsed if elapsed else 0.0,
        "latency_ms": {k: v / 1000 for k, v in report["latency_us"].items()},
        "non2xx": report["non2xx"],
        "socket_errors": socket_errors,
        "socket_error_kinds": report["socket_errors"],
        "error_types": report["error_types"],
        "empty_answers": report.get("empty_answers", 0),
        "throttles": sum(v for k, v in report["error_types"].items()
                         if "Throttl" in k or "ProvisionedThroughputExceeded" in k or "LimitExceeded" in k),
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_req": server_cpu / requests * 1e6 if requests else None,
        "client_cpu_s": report["client_cpu_s"],
        "client_cpu_share": report["client_cpu_s"] / elapsed if elapsed else 0.0,
    }
