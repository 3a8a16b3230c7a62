"""Global tables (version 2019.11.21, MREC): replication lag, the cost of
being a replica source, and a region's memory while it copies a table.

    python bench/replication.py lag [--rates 1000,5000] [--seconds 60]
    python bench/replication.py instructions [--requests 2000] [--round-every 100] [--breakdown] [--callgrind DIR]
    python bench/replication.py cost [--rate 600] [--seconds 8] [--rounds 3]
    python bench/replication.py cost --rate 0 [--seconds 8] [--rounds 3] [--connections 16]
    python bench/replication.py memory [--items 1000000]
    python bench/replication.py apply [--requests 2000] [--batch 500]

Three ``shoal serve`` processes on loopback ports stand for three regions
(us-east-1, eu-west-1, ap-south-1), each the others' peer (``--region``,
``--peer``), one worker each; all three share this machine's cores with the
load generator, so every figure is for one machine, not three.

* ``lag``: the viewer-events table, replicated to all three regions, takes a
  steady write load of ``--rates`` events per second, spread evenly over the
  three regions (BatchWriteItem of 25 events, paced to the rate by a schedule
  of start times, so a slow answer does not lower the offered rate).  Beside
  it a prober writes one probe item at a time in each region in turn and
  polls the two other regions (GetItem, every 2 ms) until both have it: the
  lag of a probe to a region is from the source's acknowledgement to the
  first answer that holds the item, as a client sees it (polling adds up to
  about 2 ms).  The regions' own ReplicationLatency metric (from a write's
  time to the peer's durable answer) is read back through CloudWatch's
  GetMetricStatistics for the same window as a second view.

The cost of being a replica source (issue 18: at most 15% of PutItem
throughput) has three measures here; the first is the figure.

* ``instructions``: instructions per PutItem under cachegrind, the source's
  whole work for it, plain table against a global one, in one process: a
  dispatcher (no HTTP, no group commit, no fsync) homing us-east-1 with two
  peers (HTTP servers outside the counted process that answer 200), the
  viewer-events table plain (no stream) or global (both replicas ACTIVE),
  ``--requests`` PutItems of new events, and after every ``--round-every``
  of them the stream materializer's rounds and one round of the replication
  thread (fold, read, encode, send to both peers, store the cursors), as the
  server does them (at 1,000 writes/s a round every 100 ms carries about
  100).  The runs without the requests are subtracted.  The count does not
  follow the machine's load, where CPU time per request moves by a quarter
  on this shared machine; ``--breakdown`` adds runs without the stream's
  job and without the sender, to split the difference.  What it leaves
  out: HTTP parsing and the answer, and group commit, which both kinds pay
  alike (they add to the denominator, so the server's ratio is a little
  lower).  ``--callgrind DIR`` runs the same children under callgrind
  instead (``DIR/callgrind.KIND.N``, one per kind and request count) and
  prints the C functions whose inclusive instructions per PutItem differ
  most between the plain and the global table (LMDB's puts and gets,
  orjson, the interpreter): where the extra goes, by the functions that
  do it; ``callgrind_annotate`` reads the files for more.
* ``cost --rate R`` (default 600): the source (pinned to the server core;
  the peers and the load on the other) takes R PutItems a second, paced by
  a schedule from 48 threads of a process, replicated in one run and plain
  in the next (its replicas removed and the stream they needed disabled),
  alternating, for ``--rounds`` rounds; each of the source's threads' CPU
  time (/proc/<pid>/task/<tid>/schedstat, from the start of a run until the
  source is idle again, so the replication thread's sends are charged to
  the run) per PutItem, and its medians.  Both kinds see the same offered
  load, so the same group commits, as long as the source keeps up (``late``
  counts requests started behind their time: when they are most, the load
  was closed-loop and the comparison is not at the same rate).  On a loaded
  machine the medians still move by several percent between runs.
* ``cost --rate 0``: wrk (bench/lua/workload.lua, mode ``put``, 16
  connections) at full speed instead, the source's CPU time per PutItem
  until idle.  Not at the same rate: a slower run makes smaller group
  commits, which cost more a PutItem, and the peers applying the replicated
  run's writes share wrk's core.  On 2026-12-07 it read 19-22%, a single
  reading of the threads' times 5-7%; the instruction counts then read 21%
  and the paced runs 14-18% (docs/benchmarks.md): the per-thread reading
  was the one that was off (a plain run whose replication thread still
  indexed, and one reading on a loaded machine).
* ``memory``: ``--items`` events are bulk-loaded into the source region's
  data directory (``bulkload.bulk_load``), the three regions start, and
  UpdateTable adds the two replicas: the source copies every item to both
  peers.  Its resident memory (process tree VmRSS, RssAnon and RssFile, the
  mapped files' pages, which SHOAL_MAX_MAPPED_RESIDENT_MB bounds) is sampled
  every 0.2 s until both replicas are ACTIVE; the peak is the figure.

* ``apply``: instructions per record a receiving region applies, under
  cachegrind, in one process: a dispatcher homing eu-west-1 (no HTTP, no
  group commit, no fsync), the viewer-events table a replica there, and
  ``--requests`` new events of us-east-1 received as ApplyChanges requests of
  ``--batch`` records each (the request's parse, last writer wins, the write
  path, the version store); the run without them subtracted.  Each region
  applies the two others' writes, so at N events/s over three regions each
  applies 2N/3 records a second.

Prints a JSON summary and markdown rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

from client import Client, DynamoError, Endpoint, wait_until_answering  # noqa: E402
from systems import SERVER_CPUS, CLIENT_CPUS, free_port, process_tree, rss_bytes, shoal_command  # noqa: E402
from workload import EVENTS_TABLE, DataSet, EventGenerator, table_definitions  # noqa: E402

REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
BATCH = 25
POLL_S = 0.002
PROBE_TIMEOUT_S = 60.0


class Region:
    """One ``shoal serve --region NAME --peer ...`` process."""

    def __init__(self, name: str, port: int, peers: dict[str, int], work: str, cpus: str | None = None,
                 data_dir: str | None = None) -> None:
        self.name, self.port, self.peers, self.cpus = name, port, peers, cpus
        self.data_dir = data_dir or os.path.join(work, name)
        self.log_path = os.path.join(work, f"{name}.log")
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.port, region=self.name)

    def start(self) -> None:
        command = [*shoal_command(), "serve", "--port", str(self.port), "--data-dir", self.data_dir,
                   "--workers", "1", "--region", self.name,
                   *(f"--peer={region}=http://127.0.0.1:{port}" for region, port in self.peers.items())]
        if self.cpus:
            command = ["taskset", "-c", self.cpus, *command]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        wait_until_answering(self.endpoint, 120.0, alive=lambda: self.proc.poll() is None)

    def cpu_seconds(self) -> float:
        from systems import cpu_seconds
        return cpu_seconds(self.proc.pid)

    def memory(self) -> dict:
        return {"rss": rss_bytes(self.proc.pid), "anon": rss_bytes(self.proc.pid, "RssAnon"),
                "file": rss_bytes(self.proc.pid, "RssFile")}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_regions(work: str, cpus=(None, None, None), data_dirs=(None, None, None)) -> list[Region]:
    ports = [free_port() for _ in REGIONS]
    regions = [Region(name, port, {r: p for r, p in zip(REGIONS, ports) if r != name}, work, cpu, data_dir)
               for name, port, cpu, data_dir in zip(REGIONS, ports, cpus, data_dirs)]
    for region in regions:
        region.start()
    return regions


def events_table(name: str = EVENTS_TABLE) -> dict:
    definition = dict(table_definitions()[0])
    definition["TableName"] = name
    return definition


def wait_status(client: Client, table: str, timeout_s: float = 3600.0, progress=None) -> float:
    """Wait until ``table`` and all its replicas are ACTIVE, as the client's region sees it; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        desc = client.call("DescribeTable", {"TableName": table})["Table"]
        statuses = [desc["TableStatus"], *(r["ReplicaStatus"] for r in desc.get("Replicas", ()))]
        if progress:
            progress(desc)
        if all(s == "ACTIVE" for s in statuses):
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"{table} not ACTIVE after {timeout_s} s")


def add_replicas(client: Client, table: str, regions, progress=None) -> float:
    """UpdateTable ReplicaUpdates Create for each region in ``regions`` (one request); seconds until all ACTIVE."""
    started = time.monotonic()
    client.call("UpdateTable", {"TableName": table, "ReplicaUpdates": [
        {"Create": {"RegionName": region}} for region in regions]})
    wait_status(client, table, progress=progress)
    return time.monotonic() - started


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# ---------------------------------------------------------------- lag


class Writers:
    """A process (the load generator must not share one interpreter lock with the prober) whose
    threads offer ``rate`` events per second to ``region``, in BatchWriteItems of 25.

    Every request's body is generated and encoded before the schedule starts
    (``prepare``), so that during the run the generator only sends: at 5,000
    events/s on two shared cores, generating events as they go cost the
    generators a measurable share of the cores the servers need.  Each
    process's CPU time over the run is counted (``cpu_s``)."""

    def __init__(self, region: Region, rate: float, seconds: float, seed: int, threads: int = 2) -> None:
        import multiprocessing

        self.region, self.rate, self.seconds, self.seed, self.threads = region, rate, seconds, seed, threads
        context = multiprocessing.get_context("fork")
        self.counts = context.Array("q", 4)  # sent, failed, late batches, CPU microseconds during the run
        self.ready = context.Event()
        self.go = context.Value("d", 0.0)  # the schedule's start (monotonic), 0 until given
        self.process = context.Process(target=self._main, daemon=True)

    def prepare(self) -> None:
        """Start the process: it encodes every request, then waits for ``start``."""
        self.process.start()

    def start(self, at: float) -> None:
        self.ready.wait()
        self.at = at
        self.go.value = at

    def join(self) -> None:
        self.process.join()

    @property
    def sent(self) -> int:
        return self.counts[0]

    @property
    def failed(self) -> int:
        return self.counts[1]

    @property
    def late(self) -> int:
        return self.counts[2]

    @property
    def cpu_s(self) -> float:
        return self.counts[3] / 1e6

    def _main(self) -> None:
        bodies = [self._bodies(i) for i in range(self.threads)]
        self.ready.set()
        while self.go.value == 0.0:
            time.sleep(0.001)
        self.at = self.go.value
        before = os.times()
        threads = [threading.Thread(target=self._run, args=(i, bodies[i])) for i in range(self.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = os.times()
        self._add(3, int((after.user + after.system - before.user - before.system) * 1e6))

    def _add(self, slot: int, n: int) -> None:
        with self.counts.get_lock():
            self.counts[slot] += n

    def _bodies(self, index: int) -> list[bytes]:
        """The BatchWriteItem bodies thread ``index`` sends, in order."""
        import orjson

        generator = EventGenerator(self.seed * 100 + index)
        rng = random.Random(self.seed * 100 + index)
        count = int(self.seconds * self.rate / BATCH / self.threads) + 1
        return [orjson.dumps({"RequestItems": {EVENTS_TABLE: [{"PutRequest": {"Item": generator.event(
            f"u{self.region.name[:2]}{rng.randrange(20_000):06d}", 1_767_225_600_000 + rng.randrange(10**9))}}
            for _ in range(BATCH)]}}) for _ in range(count)]

    def _run(self, index: int, bodies: list[bytes]) -> None:
        import http.client

        import orjson

        from client import unsigned_headers

        headers = {**unsigned_headers(self.region.name), "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem"}
        connection = http.client.HTTPConnection("127.0.0.1", self.region.port, timeout=60)
        count = self.threads
        interval = BATCH / self.rate * count  # each thread sends every count-th batch
        try:
            for n, body in enumerate(bodies):
                due = self.at + (index + n * count) * BATCH / self.rate
                if due - self.at >= self.seconds:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -interval:
                    self._add(2, 1)
                try:
                    connection.request("POST", "/", body, headers)
                    response = connection.getresponse()
                    raw = response.read()
                    if response.status != 200:
                        self._add(1, BATCH)
                        continue
                    unprocessed = raw.count(b'"PutRequest"') if b'"UnprocessedItems":{}' not in raw else 0
                    self._add(0, BATCH - unprocessed)
                    self._add(1, unprocessed)
                except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
                    connection.close()
                    self._add(1, BATCH)
        finally:
            connection.close()


def probe(regions: list[Region], stop: threading.Event, lags: dict) -> None:
    """Write a probe in each region in turn; record each other region's lag (ms) until it sees it."""
    clients = [Client(r.endpoint) for r in regions]
    n = 0
    try:
        while not stop.is_set():
            src = n % len(regions)
            key = {"user_id": {"S": f"probe-{n:06d}"}, "ts": {"N": "0"}}
            clients[src].call("PutItem", {"TableName": EVENTS_TABLE, "Item": {**key, "event_type": {"S": "probe"}}})
            acked = time.monotonic()
            waiting = {i for i in range(len(regions)) if i != src}
            while waiting and time.monotonic() - acked < PROBE_TIMEOUT_S:
                for i in sorted(waiting):
                    if "Item" in clients[i].call("GetItem", {"TableName": EVENTS_TABLE, "Key": key}):
                        lags.setdefault((regions[src].name, regions[i].name), []).append(
                            (time.monotonic() - acked) * 1000)
                        waiting.discard(i)
                if waiting:
                    time.sleep(POLL_S)
            for i in waiting:
                lags.setdefault((regions[src].name, regions[i].name), []).append(float("inf"))
            n += 1
    finally:
        for client in clients:
            client.close()


def catch_up_ms(regions: list[Region]) -> dict:
    """Once the load has stopped: a probe written in each region at the same
    time, and how long until every other region has it (ms, by link): the
    backlog the load left, drained.  A lag that kept growing shows here."""
    clients = [Client(r.endpoint) for r in regions]
    out = {}
    try:
        keys = []
        for i, client in enumerate(clients):
            key = {"user_id": {"S": f"catch-up-{i}-{time.time_ns()}"}, "ts": {"N": "0"}}
            client.call("PutItem", {"TableName": EVENTS_TABLE, "Item": {**key, "event_type": {"S": "probe"}}})
            keys.append((i, key, time.monotonic()))
        waiting = {(i, j) for i, _, _ in keys for j in range(len(regions)) if j != i}
        while waiting:
            for i, j in sorted(waiting):
                key, written = keys[i][1], keys[i][2]
                if "Item" in clients[j].call("GetItem", {"TableName": EVENTS_TABLE, "Key": key}):
                    out[f"{regions[i].name}->{regions[j].name}"] = (time.monotonic() - written) * 1000
                    waiting.discard((i, j))
                elif time.monotonic() - written > PROBE_TIMEOUT_S:
                    out[f"{regions[i].name}->{regions[j].name}"] = float("inf")
                    waiting.discard((i, j))
            time.sleep(POLL_S)
    finally:
        for client in clients:
            client.close()
    return out


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has been busy (/proc/stat: all
    but idle and iowait), this bench's processes and everyone else's."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def replication_latency(region: Region, start: float, end: float) -> dict:
    """The region's ReplicationLatency (p50, p99, max, samples) per receiving region over [start, end] (epoch s)."""
    import boto3

    cloudwatch = boto3.client("cloudwatch", endpoint_url=f"http://127.0.0.1:{region.port}", region_name=region.name,
                              aws_access_key_id="bench", aws_secret_access_key="bench")
    out = {}
    for peer in region.peers:
        period = max(60, int((end - start) // 60 + 1) * 60)
        window = dict(
            Namespace="AWS/DynamoDB", MetricName="ReplicationLatency",
            Dimensions=[{"Name": "TableName", "Value": EVENTS_TABLE}, {"Name": "ReceivingRegion", "Value": peer}],
            StartTime=datetime.datetime.fromtimestamp(start // 60 * 60, datetime.timezone.utc),
            EndTime=datetime.datetime.fromtimestamp(start // 60 * 60 + period, datetime.timezone.utc),
            Period=period)
        # Statistics and ExtendedStatistics are mutually exclusive in one call (as in CloudWatch)
        plain = cloudwatch.get_metric_statistics(**window, Statistics=["SampleCount", "Maximum", "Average"])
        extended = cloudwatch.get_metric_statistics(**window, ExtendedStatistics=["p50", "p99"])
        if plain["Datapoints"] and extended["Datapoints"]:
            point, percentiles = plain["Datapoints"][0], extended["Datapoints"][0]["ExtendedStatistics"]
            out[peer] = {"samples": point["SampleCount"], "average_ms": point["Average"], "max_ms": point["Maximum"],
                         "p50_ms": percentiles["p50"], "p99_ms": percentiles["p99"]}
    return out


def run_lag(args, work: str) -> dict:
    regions = start_regions(work)
    results = []
    try:
        home = Client(regions[0].endpoint)
        home.call("CreateTable", events_table())
        wait_status(home, EVENTS_TABLE)
        add_replicas(home, EVENTS_TABLE, REGIONS[1:])
        for rate in args.rates:
            time.sleep(2)
            writers = [Writers(region, rate / len(regions), args.seconds, seed=rate + i)
                       for i, region in enumerate(regions)]
            for w in writers:  # each encodes its requests first
                w.prepare()
            for w in writers:
                w.ready.wait()
            lags: dict = {}
            stop = threading.Event()
            cpu_before = [r.cpu_seconds() for r in regions]
            machine_before = machine_busy_s()
            wall_start = time.time()
            at = time.monotonic() + 0.5
            for w in writers:
                w.start(at)
            time.sleep(max(0.0, at - time.monotonic()) + min(5.0, args.seconds / 4))  # let the load settle
            prober = threading.Thread(target=probe, args=(regions, stop, lags), daemon=True)
            prober.start()
            for w in writers:
                w.join()
            stop.set()
            prober.join()
            elapsed = time.monotonic() - at
            wall_end = time.time()
            cpu = [r.cpu_seconds() - b for r, b in zip(regions, cpu_before)]
            machine = machine_busy_s() - machine_before
            catch_up = catch_up_ms(regions)  # what was left to replicate when the load stopped
            time.sleep(6)  # the metrics' 5-second visibility
            all_lags = [v for values in lags.values() for v in values]
            row = {
                "offered_per_s": rate,
                "written_per_s": sum(w.sent for w in writers) / elapsed,
                "failed": sum(w.failed for w in writers),
                "late_batches": sum(w.late for w in writers),
                "seconds": elapsed,
                "probes": len(all_lags),
                "lost_probes": sum(1 for v in all_lags if v == float("inf")),
                "lag_ms": {"p50": percentile(all_lags, 50), "p90": percentile(all_lags, 90),
                           "p99": percentile(all_lags, 99), "max": max(all_lags) if all_lags else None},
                "lag_ms_by_link": {f"{s}->{d}": {"p50": percentile(v, 50), "p99": percentile(v, 99), "n": len(v)}
                                   for (s, d), v in sorted(lags.items())},
                "server_cpu_share": [c / elapsed for c in cpu],
                "generator_cpu_share": sum(w.cpu_s for w in writers) / elapsed,
                "machine_busy_cores": machine / elapsed,
                "catch_up_ms": catch_up,
                "replication_latency_metric": {r.name: replication_latency(r, wall_start, wall_end) for r in regions},
                "memory_after": {r.name: r.memory() for r in regions},
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        home.close()
    finally:
        for region in regions:
            region.stop()
    return {"lag": results}


# ---------------------------------------------------------------- cost


def wait_idle(region: Region, window_s: float = 0.5, busy_share: float = 0.05, limit_s: float = 120.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = region.cpu_seconds()
        time.sleep(window_s)
        if region.cpu_seconds() - before < busy_share * window_s:
            return


def thread_cpu_ns(pid: int) -> dict[str, int]:
    """On-CPU nanoseconds of every thread of ``pid``'s process tree
    (/proc/<pid>/task/<tid>/schedstat, exact where stat counts 10 ms ticks),
    keyed ``"<pid>/<tid> <comm>"``: the server names its replication thread
    (``shoal-repl``), the main thread is the event loop."""
    out = {}
    for member in process_tree(pid):
        try:
            tids = os.listdir(f"/proc/{member}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{member}/task/{tid}/schedstat") as handle:
                    ns = int(handle.read().split()[0])
                with open(f"/proc/{member}/task/{tid}/comm") as handle:
                    comm = handle.read().strip()
            except OSError:
                continue
            out[f"{member}/{tid} {'main' if tid == str(member) else comm}"] = ns
    return out


def thread_delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


class PutWriters:
    """A process (not sharing the harness's interpreter lock) whose threads
    offer ``rate`` PutItems a second of new viewer events to ``region`` for
    ``seconds``, each on its own kept connection, paced by a schedule of
    start times: the offered load is the same whether or not the source
    replicates, as long as it keeps up (``late`` counts the requests that
    started behind their time by more than a thread's interval)."""

    def __init__(self, region: Region, rate: float, seconds: float, seed: int, threads: int = 48,
                 cpus: str | None = CLIENT_CPUS) -> None:
        import multiprocessing

        self.region, self.rate, self.seconds, self.seed, self.threads, self.cpus = (
            region, rate, seconds, seed, threads, cpus)
        context = multiprocessing.get_context("fork")
        self.counts = context.Array("q", 3)  # sent, failed, late
        self.process = context.Process(target=self._main, daemon=True)

    def run(self) -> dict:
        self.at = time.monotonic() + 0.3
        self.process.start()
        self.process.join()
        return {"sent": self.counts[0], "failed": self.counts[1], "late": self.counts[2]}

    def _main(self) -> None:
        if self.cpus:
            os.sched_setaffinity(0, {int(c) for c in self.cpus.split(",")})
        threads = [threading.Thread(target=self._run, args=(i,)) for i in range(self.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _add(self, slot: int, n: int) -> None:
        with self.counts.get_lock():
            self.counts[slot] += n

    def _run(self, index: int) -> None:
        client = Client(self.region.endpoint)
        generator = EventGenerator(self.seed * 100 + index)
        rng = random.Random(self.seed * 100 + index)
        interval = self.threads / self.rate
        n = 0
        try:
            while True:
                due = self.at + (index + n * self.threads) / self.rate
                if due - self.at >= self.seconds:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -interval:
                    self._add(2, 1)
                item = generator.event(f"c{self.seed:03d}{index:02d}{rng.randrange(20_000):06d}",
                                       1_767_225_600_000 + n)
                try:
                    client.call("PutItem", {"TableName": EVENTS_TABLE, "Item": item})
                    self._add(0, 1)
                except (DynamoError, OSError):
                    self._add(1, 1)
                n += 1
        finally:
            client.close()


def set_replicated(home: Client, replicated: bool) -> None:
    """Add the two replicas (and with them the stream they need), or remove
    them and disable that stream: a plain table has neither."""
    desc = home.call("DescribeTable", {"TableName": EVENTS_TABLE})["Table"]
    if replicated != bool(desc.get("Replicas")):
        if replicated:
            add_replicas(home, EVENTS_TABLE, REGIONS[1:])
        else:
            home.call("UpdateTable", {"TableName": EVENTS_TABLE, "ReplicaUpdates": [
                {"Delete": {"RegionName": region}} for region in REGIONS[1:]]})
            wait_status(home, EVENTS_TABLE)
            home.call("UpdateTable", {"TableName": EVENTS_TABLE, "StreamSpecification": {"StreamEnabled": False}})
            wait_status(home, EVENTS_TABLE)
    desc = home.call("DescribeTable", {"TableName": EVENTS_TABLE})["Table"]
    assert bool(desc.get("Replicas")) == replicated, desc.get("Replicas")
    assert bool(desc.get("StreamSpecification")) == replicated, desc.get("StreamSpecification")


def run_cost(args, work: str) -> dict:
    return run_cost_paced(args, work) if args.rate else run_cost_wrk(args, work)


def run_cost_paced(args, work: str) -> dict:
    """The cost at a fixed offered rate: CPU nanoseconds of each of the
    source's threads per PutItem, plain and replicated alternating."""
    regions = start_regions(work, cpus=(SERVER_CPUS, CLIENT_CPUS, CLIENT_CPUS))
    source = regions[0]
    runs = {"plain": [], "replicated": []}
    try:
        home = Client(source.endpoint)
        home.call("CreateTable", events_table())
        wait_status(home, EVENTS_TABLE)
        # a warm-up run of each kind: first-time imports and page faults are not the cost
        for kind in ("replicated", "plain"):
            set_replicated(home, kind == "replicated")
            PutWriters(source, args.rate, 2.0, seed=999).run()
        for round_ in range(args.rounds):
            for kind in ("plain", "replicated") if round_ % 2 == 0 else ("replicated", "plain"):
                set_replicated(home, kind == "replicated")
                for region in regions:
                    wait_idle(region)
                before = thread_cpu_ns(source.proc.pid)
                peers_before = [r.cpu_seconds() for r in regions[1:]]
                load_before = os.getloadavg()[0]
                counts = PutWriters(source, args.rate, args.seconds, seed=round_ * 2 + (kind == "replicated")).run()
                wait_idle(source)
                delta = thread_delta(thread_cpu_ns(source.proc.pid), before)
                puts = counts["sent"]
                by_thread = {name: ns / puts / 1000 for name, ns in sorted(delta.items(), key=lambda kv: -kv[1])}
                row = {"kind": kind, "round": round_, "offered_per_s": args.rate, **counts,
                       "load": load_before,
                       "source_cpu_us_per_put": sum(delta.values()) / puts / 1000,
                       "us_per_put_by_thread": {k: round(v, 1) for k, v in by_thread.items() if v >= 0.05},
                       "peers_cpu_s": sum(r.cpu_seconds() - b for r, b in zip(regions[1:], peers_before))}
                runs[kind].append(row)
                print(json.dumps(row), flush=True)
        home.close()
    finally:
        for region in regions:
            region.stop()
    median = {kind: statistics.median(r["source_cpu_us_per_put"] for r in rows) for kind, rows in runs.items()}
    threads = {}
    for kind, rows in runs.items():
        names = {name.split(" ", 1)[1] for r in rows for name in r["us_per_put_by_thread"]}
        threads[kind] = {name: statistics.median(sum(v for k, v in r["us_per_put_by_thread"].items()
                                                     if k.split(" ", 1)[1] == name) for r in rows)
                         for name in names}
    return {"cost": {"method": "paced", "runs": runs, "cpu_us_per_put_median": median,
                     "cpu_us_per_put_median_by_thread": threads,
                     "throughput_cost_by_cpu": 1 - median["plain"] / median["replicated"]}}


def run_cost_wrk(args, work: str) -> dict:
    import loadgen

    # The source on the server core; the peers and wrk share the other.
    regions = start_regions(work, cpus=(SERVER_CPUS, CLIENT_CPUS, CLIENT_CPUS))
    source = regions[0]
    dataset = DataSet.build(30_000)
    counts_path = os.path.join(work, "counts.txt")
    dataset.write_counts(counts_path)
    runs = {"plain": [], "replicated": []}
    try:
        home = Client(source.endpoint)
        # wrk's put mode writes to viewer_events: one table, its replicas added and removed between
        # runs, so that the runs differ in nothing but replication.
        home.call("CreateTable", events_table())
        wait_status(home, EVENTS_TABLE)
        for round_ in range(args.rounds):
            for kind in ("plain", "replicated") if round_ % 2 == 0 else ("replicated", "plain"):
                desc = home.call("DescribeTable", {"TableName": EVENTS_TABLE})["Table"]
                replicated = bool(desc.get("Replicas"))
                if (kind == "replicated") != replicated:
                    if kind == "replicated":
                        add_replicas(home, EVENTS_TABLE, REGIONS[1:])
                    else:
                        home.call("UpdateTable", {"TableName": EVENTS_TABLE, "ReplicaUpdates": [
                            {"Delete": {"RegionName": region}} for region in REGIONS[1:]]})
                        wait_status(home, EVENTS_TABLE)
                        # The stream the replicas needed stays: a plain table has none.
                        home.call("UpdateTable", {"TableName": EVENTS_TABLE,
                                                  "StreamSpecification": {"StreamEnabled": False}})
                        wait_status(home, EVENTS_TABLE)
                        desc = home.call("DescribeTable", {"TableName": EVENTS_TABLE})["Table"]
                        assert not desc.get("Replicas"), desc.get("Replicas")
                desc = home.call("DescribeTable", {"TableName": EVENTS_TABLE})["Table"]
                assert bool(desc.get("Replicas")) == (kind == "replicated")
                assert bool(desc.get("StreamSpecification")) == (kind == "replicated"), desc.get("StreamSpecification")
                for region in regions:
                    wait_idle(region)
                script, warmup_args, run_args = loadgen.load_scripts(_Unsigned(), "put", counts_path,
                                                                     round_, 0)
                loadgen.run_wrk(source.endpoint.url, args.connections, 1, script, warmup_args)
                for region in regions:
                    wait_idle(region)
                cpu_before = source.cpu_seconds()
                peers_before = [r.cpu_seconds() for r in regions[1:]]
                report = loadgen.run_wrk(source.endpoint.url, args.connections, args.seconds, script, run_args)
                run_cpu = source.cpu_seconds() - cpu_before
                wait_idle(source)
                drained_cpu = source.cpu_seconds() - cpu_before
                summary = loadgen.summarize(report, run_cpu, "put", args.connections)
                row = {"kind": kind, "round": round_, "rps": summary["rps"], "requests": summary["requests"],
                       "non2xx": summary["non2xx"], "p99_ms": summary["latency_ms"].get("p99"),
                       "source_cpu_us_per_put": drained_cpu / summary["requests"] * 1e6,
                       "source_cpu_us_per_put_during_run": run_cpu / summary["requests"] * 1e6,
                       "peers_cpu_s": sum(r.cpu_seconds() - b for r, b in zip(regions[1:], peers_before))}
                runs[kind].append(row)
                print(json.dumps(row), flush=True)
        home.close()
    finally:
        for region in regions:
            region.stop()
    best = {kind: min(r["source_cpu_us_per_put"] for r in rows) for kind, rows in runs.items()}
    median = {kind: statistics.median(r["source_cpu_us_per_put"] for r in rows) for kind, rows in runs.items()}
    rps = {kind: statistics.median(r["rps"] for r in rows) for kind, rows in runs.items()}
    # The machine's other load moves single runs by a quarter: the medians of alternating runs are the figure.
    return {"cost": {"runs": runs, "cpu_us_per_put_best": best, "cpu_us_per_put_median": median,
                     "rps_median": rps,
                     "throughput_cost_by_cpu": 1 - median["plain"] / median["replicated"],
                     "throughput_cost_by_cpu_best": 1 - best["plain"] / best["replicated"]}}


class _Unsigned:
    """What loadgen.load_scripts needs to know of the source: it does not check signatures."""

    signs = False
    name = "source"


# ---------------------------------------------------------------- instructions


INSTR_HEADERS = {"content-type": "application/x-amz-json-1.0",
                 "authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
                                  "SignedHeaders=host, Signature=x"}


def _instr_child(kind: str, n: int, round_every: int, ports: list[int]) -> None:
    """What cachegrind counts: a dispatcher (no HTTP server, no group
    commit, no fsync) homing us-east-1 with two peers; the viewer-events
    table, global (both replicas ACTIVE, their copies done) or plain (no
    stream); ``n`` PutItems of new events, and after every ``round_every``
    of them what the server's other work does for them: the stream
    materializer's rounds and one round of the replication thread (fold,
    read, encode, send to both peers over HTTP, store the cursors)."""
    import orjson

    from shoal.api.catalog import update_description
    from shoal.replication import apply as replica_apply, attach, control, node
    from shoal.server.dispatch import Dispatcher
    from shoal.server.http import Request
    from shoal.api.streams import Materializer
    from shoal.storage.lmdb_engine import LmdbEngine

    if "no-http" in kind:  # the peers' requests not made: what the sender costs without them
        def begin(self, operation, payload=None, body=None):
            pass

        def end(self):
            self.heard_at = time.monotonic()
            return {}

        node.PeerClient.begin, node.PeerClient.end = begin, end
    engine = LmdbEngine(os.path.join(tempfile.mkdtemp(), "db"), sync=False, map_size=1 << 30)
    dispatcher = Dispatcher(engine, metrics=False, group_commit=False)
    peers = {region: f"http://127.0.0.1:{port}" for region, port in zip(REGIONS[1:], ports)}
    attach(dispatcher, REGIONS[0], peers, start=False)
    sender = node.Replicator(engine, dispatcher.catalog, control.Settings(REGIONS[0], peers))
    if "no-prune" in kind:  # tombstone pruning follows the wall clock, which valgrind stretches
        sender._next_prune = float("inf")
    materialize = Materializer(engine)

    def call(operation: str, body: dict) -> None:
        answer = dispatcher(Request("POST", "/", {**INSTR_HEADERS, "x-amz-target": "DynamoDB_20120810." + operation},
                                    orjson.dumps(body), ("127.0.0.1", 1), False))
        assert answer.status == 200, answer.body

    def rounds() -> None:
        while "no-materializer" not in kind and materialize():
            pass
        if "no-sender" not in kind:
            sender.run_once()
        else:  # the version store still folded (by the writes themselves once it has caught up)
            sender._index()

    call("CreateTable", events_table())
    if kind.startswith("replicated"):
        call("UpdateTable", {"TableName": EVENTS_TABLE, "ReplicaUpdates": [
            {"Create": {"RegionName": region}} for region in REGIONS[1:]]})

        def active(desc: dict) -> None:
            for entry in desc["Replicas"]:
                entry["ReplicaStatus"] = "ACTIVE"
            desc["TableStatus"] = "ACTIVE"

        with engine.write() as txn:  # what the replication thread does once both copies are made
            table = dispatcher.catalog.get(txn, REGIONS[0], EVENTS_TABLE)
            update_description(txn, REGIONS[0], EVENTS_TABLE, table.table_id, active)
            for key, _ in control.pending_tasks(txn):
                txn.delete("meta", key)
            for region in REGIONS[1:]:
                txn.delete("meta", replica_apply.hold_key(region, table.table_id))
    generator = EventGenerator(7)
    events = [generator.event(f"u{i % 20_000:06d}", 1_767_225_600_000 + i) for i in range(n + round_every)]
    for i in range(round_every):  # warm: first calls, first pages
        call("PutItem", {"TableName": EVENTS_TABLE, "Item": events[n + i]})
    rounds()
    rounds()
    group = int(os.environ.get("BENCH_GROUP", "1"))
    for start in range(0, n, group):
        # ``group`` PutItems share one transaction and commit, as the server's group commit has them
        with engine.group() if group > 1 else contextlib.nullcontext():
            for i in range(start, min(n, start + group)):
                call("PutItem", {"TableName": EVENTS_TABLE, "Item": events[i]})
        if (start + group) // round_every != start // round_every or start + group >= n:
            rounds()
    rounds()
    rounds()


class _SinkPeers:
    """Two peers outside the measured process: HTTP servers answering every
    request 200 {} (what a peer answers ApplyChanges and Ping)."""

    def __init__(self) -> None:
        import http.server

        received = self.received = {}  # target -> [requests, records]

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                counts = received.setdefault(self.headers.get("X-Amz-Target", ""), [0, 0])
                counts[0] += 1
                counts[1] += body.count(b'{"time":')
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in REGIONS[1:]]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.ports = [server.server_address[1] for server in self.servers]

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _instr_count(kind: str, n: int, round_every: int, ports: list[int], group: int = 1,
                 callgrind_out: str | None = None) -> int:
    """Instructions of one child run (cachegrind), or with ``callgrind_out``
    its callgrind profile written there (its total returned the same)."""
    import re

    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", BENCH_GROUP=str(group),
               PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(BENCH_DIR), os.environ.get("PYTHONPATH")])))
    tool = (["--tool=callgrind", f"--callgrind-out-file={callgrind_out}"] if callgrind_out else
            ["--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"])
    done = subprocess.run(
        ["valgrind", *tool, sys.executable,
         os.path.abspath(__file__), "_instructions-child", kind, str(n), str(round_every), *map(str, ports)],
        env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    pattern = r"Collected\s*:\s*([\d,]+)" if callgrind_out else r"I\s+refs:\s+([\d,]+)"
    return int(re.findall(pattern, done.stderr)[-1].replace(",", ""))


def _inclusive_by_function(path: str) -> dict[str, int]:
    """Inclusive instructions of each function of a callgrind profile
    (``callgrind_annotate --inclusive=yes``), by ``file:function`` (the
    file's base name)."""
    import re

    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    out: dict[str, int] = {}
    for line in text.splitlines():
        found = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S+?)(?: \[.*\])?$", line)
        if found and ":" in found.group(2) and "'" not in found.group(2):  # recursion's repeats left out
            where, function = found.group(2).rsplit(":", 1)
            name = f"{os.path.basename(where)}:{function}"
            out[name] = out.get(name, 0) + int(found.group(1).replace(",", ""))
    return out


def run_callgrind(args, peers: "_SinkPeers") -> dict:
    """``--callgrind DIR``: each kind's runs (0 and ``--requests`` PutItems)
    under callgrind, and the functions whose inclusive instructions per
    PutItem differ most between the global table and the plain one."""
    os.makedirs(args.callgrind, exist_ok=True)
    per: dict[str, dict[str, float]] = {}
    for kind in ("plain", "replicated"):
        runs = []
        for n in (0, args.requests):
            path = os.path.join(args.callgrind, f"callgrind.{kind}.{n}")
            _instr_count(kind, n, args.round_every, peers.ports, args.group, callgrind_out=path)
            runs.append(_inclusive_by_function(path))
        per[kind] = {name: (runs[1].get(name, 0) - runs[0].get(name, 0)) / args.requests
                     for name in runs[0].keys() | runs[1].keys()}
    extra = sorted(((per["replicated"].get(name, 0) - per["plain"].get(name, 0), name)
                    for name in per["plain"].keys() | per["replicated"].keys()), key=lambda x: -abs(x[0]))
    rows = [{"function": name, "plain": round(per["plain"].get(name, 0)),
             "replicated": round(per["replicated"].get(name, 0)), "extra": round(diff)}
            for diff, name in extra[:60]]
    for row in rows:
        print(f"{row['extra']:>9,} {row['plain']:>11,} {row['replicated']:>11,}  {row['function']}", flush=True)
    return {"callgrind": {"dir": args.callgrind, "requests": args.requests, "round_every": args.round_every,
                          "functions": rows}}


def run_instructions(args, work: str) -> dict:
    """Instructions per PutItem, plain and replicated: (a run of ``--requests``
    puts - the same run without them) / ``--requests``."""
    peers = _SinkPeers()
    if args.callgrind:
        try:
            return run_callgrind(args, peers)
        finally:
            peers.close()
    try:
        per = {}
        for kind in ("plain", "replicated", *(("replicated-no-materializer", "replicated-no-sender")
                                               if args.breakdown else ())):
            counts, received = [], []
            for n in (0, args.requests):
                peers.received.clear()
                counts.append(_instr_count(kind, n, args.round_every, peers.ports, args.group))
                received.append({target.rsplit(".", 1)[-1]: tuple(v) for target, v in peers.received.items()})
            per[kind] = (counts[1] - counts[0]) / args.requests
            # what the peers got (requests, records), to check that the replicated runs sent every put
            print(json.dumps({"kind": kind, "instructions": counts, "per_put": per[kind], "peers_received": received}),
                  flush=True)
    finally:
        peers.close()
    if args.breakdown:  # the replicated puts' extra instructions: the stream's job, the sender, the write path
        per["materializer"] = per["replicated"] - per["replicated-no-materializer"]
        per["sender"] = per["replicated"] - per["replicated-no-sender"]
        per["write_path"] = per["replicated"] - per["plain"] - per["materializer"] - per["sender"]
    return {"instructions": {"requests": args.requests, "round_every": args.round_every, "group": args.group,
                             "per_put": per, "cost": 1 - per["plain"] / per["replicated"]}}


def _apply_child(n: int, batch: int) -> None:
    """What cachegrind counts for ``apply``: a dispatcher (no HTTP server,
    no group commit, no fsync) homing eu-west-1, the viewer-events table a
    replica there, and ``n`` new events of us-east-1 received as ApplyChanges
    requests of ``batch`` records (the bodies a sender sends, encoded before
    the count starts mattering: the same in the run without them)."""
    import orjson

    from shoal.replication import attach
    from shoal.server.dispatch import Dispatcher
    from shoal.server.http import Request
    from shoal.storage.lmdb_engine import LmdbEngine

    engine = LmdbEngine(os.path.join(tempfile.mkdtemp(), "db"), sync=False, map_size=1 << 30)
    dispatcher = Dispatcher(engine, metrics=False, group_commit=False)
    attach(dispatcher, REGIONS[1], {region: "http://127.0.0.1:9" for region in REGIONS if region != REGIONS[1]},
           start=False)
    headers = {**INSTR_HEADERS, "authorization": INSTR_HEADERS["authorization"].replace(REGIONS[0], REGIONS[1])}

    def call(target: str, body: bytes) -> None:
        answer = dispatcher(Request("POST", "/", {**headers, "x-amz-target": target}, body, ("127.0.0.1", 1), False))
        assert answer.status == 200, answer.body

    call("ShoalReplication_20261206.CreateReplica", orjson.dumps({
        "TableName": EVENTS_TABLE, "SourceRegion": REGIONS[0], "Request": events_table(),
        "Replicas": [{"RegionName": region, "ReplicaStatus": "ACTIVE"} for region in REGIONS]}))
    generator = EventGenerator(7)
    warm = batch  # a first batch, not counted either way: first calls, first pages
    bodies = []
    for start in range(0, n + warm, batch):
        records = []
        for i in range(start, min(n + warm, start + batch)):
            item = generator.event(f"u{i % 20_000:06d}", 1_767_225_600_000 + i)
            records.append(b'{"time":%d,"seq":%d,"origin":"%b:00112233445566ff","keys":%b,"new":%b}' % (
                1_767_225_600_000 + i, i + 1, REGIONS[0].encode(),
                orjson.dumps({"user_id": item["user_id"], "ts": item["ts"]}), orjson.dumps(item)))
        bodies.append(b'{"TableName":%b,"SourceRegion":"%b","Records":[%b]}' % (
            orjson.dumps(EVENTS_TABLE), REGIONS[0].encode(), b",".join(records)))
    for body in bodies:
        call("ShoalReplication_20261206.ApplyChanges", body)


def run_apply(args, work: str) -> dict:
    """Instructions per record a receiving region applies: (a run of
    ``--requests`` records - the same run without them) / ``--requests``."""
    import re

    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(BENCH_DIR), os.environ.get("PYTHONPATH")])))
    counts = []
    for n in (0, args.requests):
        done = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
             os.path.abspath(__file__), "_apply-child", str(n), str(args.batch)],
            env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        counts.append(int(re.findall(r"I\s+refs:\s+([\d,]+)", done.stderr)[-1].replace(",", "")))
    per = (counts[1] - counts[0]) / args.requests
    print(json.dumps({"instructions": counts, "per_record": per}), flush=True)
    return {"apply": {"records": args.requests, "batch": args.batch, "per_record": per}}


# ---------------------------------------------------------------- memory


def count_items(region: Region) -> int:
    """Every item of the events table in ``region``, counted by a paginated Scan (Select COUNT)."""
    client = Client(region.endpoint)
    total, request = 0, {"TableName": EVENTS_TABLE, "Select": "COUNT"}
    try:
        while True:
            answer = client.call("Scan", request)
            total += answer["Count"]
            if "LastEvaluatedKey" not in answer:
                return total
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    finally:
        client.close()


def run_memory(args, work: str) -> dict:
    from bulkload import bulk_load

    source_dir = os.path.join(work, REGIONS[0])
    loaded = bulk_load(source_dir, DataSet.build(args.items))
    regions = start_regions(work, data_dirs=(source_dir, None, None))
    samples = []
    try:
        home = Client(regions[0].endpoint)
        before = {r.name: r.memory() for r in regions}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.monotonic(), regions[0].memory()))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        seconds = add_replicas(home, EVENTS_TABLE, REGIONS[1:])
        stop.set()
        sampler.join()
        counts = {region.name: count_items(region) for region in regions}
        home.close()
        hwm = rss_bytes(regions[0].proc.pid, "VmHWM")
        after = {r.name: r.memory() for r in regions}
    finally:
        for region in regions:
            region.stop()
    peak_rss = max(m["rss"] for _, m in samples)
    peak_anon = max(m["anon"] for _, m in samples)
    peak_file = max(m["file"] for _, m in samples)
    return {"memory": {"items": args.items, "bulk_load": loaded, "copy_seconds": seconds,
                       "items_per_s_per_peer": args.items / seconds, "source_before": before[REGIONS[0]],
                       "source_peak_rss": peak_rss, "source_peak_anon": peak_anon, "source_peak_file": peak_file, "source_vmhwm": hwm,
                       "after": after, "item_counts": counts}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if argv is None and sys.argv[1:2] == ["_instructions-child"]:
        _instr_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), [int(p) for p in sys.argv[5:]])
        return 0
    if argv is None and sys.argv[1:2] == ["_apply-child"]:
        _apply_child(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser.add_argument("what", choices=("lag", "cost", "memory", "instructions", "apply"))
    parser.add_argument("--rates", type=lambda t: [int(x) for x in t.split(",")], default=[1000, 5000])
    parser.add_argument("--seconds", type=float, default=None, help="lag: 60 s per rate; cost: 8 s per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=600.0,
                        help="cost: PutItems offered a second (paced); 0: wrk at full speed")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000,
                        help="instructions: PutItems counted; apply: records applied")
    parser.add_argument("--batch", type=int, default=500, help="apply: records per ApplyChanges request")
    parser.add_argument("--round-every", type=int, default=100,
                        help="instructions: PutItems between the replication thread's rounds")
    parser.add_argument("--group", type=int, default=1,
                        help="instructions: PutItems per transaction (group commit's batches)")
    parser.add_argument("--breakdown", action="store_true",
                        help="instructions: also replicated without the stream's job, and without the sender")
    parser.add_argument("--callgrind", default=None, metavar="DIR",
                        help="instructions: profile the runs with callgrind into DIR and list where the "
                             "global table's extra instructions go")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--json", default=None, help="write the summary here too")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 60.0 if args.what == "lag" else 8.0
    work = args.work_dir or tempfile.mkdtemp(prefix="shoal-replication-")
    os.makedirs(work, exist_ok=True)
    load_before = os.getloadavg()[0]
    started = time.time()
    try:
        result = {"lag": run_lag, "cost": run_cost, "memory": run_memory,
                  "instructions": run_instructions, "apply": run_apply}[args.what](args, work)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"] = {"date": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(),
                         "cores": os.cpu_count(), "python": platform.python_version(),
                         "kernel": platform.release(), "load_before": load_before,
                         "load_after": os.getloadavg()[0], "minutes": (time.time() - started) / 60}
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
