"""``GET /metrics``: the metrics in Prometheus's text exposition format.

The AWS/DynamoDB metrics of every region, snake-cased with a ``dynamodb_``
prefix, dimensions as labels (``table_name``, ``operation``,
``global_secondary_index_name``, ``stream_label``, and ``region``):

* SuccessfulRequestLatency is a histogram (``_bucket``, ``_sum``, ``_count``)
  in milliseconds over the server's whole life, read from the lifetime
  statistics the store keeps per series (``metrics/t/``);
* the per-request counts (consumed units, errors, returned items, time to
  live deletions) are counters (``_total``) of their Sum over the same life;
* ItemCount, TableSizeBytes, the provisioned capacities, the account
  figures and a backfill's progress are gauges: the highest value of the
  last minute recorded.

A series' lines are a function of its name, unit and one stored value (its
lifetime total, or its last minute for a gauge), so each worker keeps them
keyed by those stored bytes and renders again only the series whose value
changed since its last scrape: between two scrapes most series of a server
with many tables have not moved, and rendering (a histogram's 18 lines
above all) was most of a scrape's time.

Then a few figures of the worker that answered (``process_*``, labelled with
its pid: each worker answers for itself) and of the data directory
(``shoal_storage_*``, the same whichever worker answers).
"""

from __future__ import annotations

import os
import re
import resource

from shoal.metrics.stats import Stats
from shoal.metrics.store import iter_series, latest_stored, total_stored

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_MS = (0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
GAUGES = frozenset({
    "ItemCount", "TableSizeBytes", "ProvisionedReadCapacityUnits", "ProvisionedWriteCapacityUnits",
    "AccountMaxReads", "AccountMaxWrites", "AccountMaxTableLevelReads", "AccountMaxTableLevelWrites",
    "AccountProvisionedReadCapacityUtilization", "AccountProvisionedWriteCapacityUtilization",
    "MaxProvisionedTableReadCapacityUtilization", "MaxProvisionedTableWriteCapacityUtilization",
    "OnlineIndexPercentageProgress",
})
HISTOGRAMS = frozenset({"SuccessfulRequestLatency"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """``ConsumedReadCapacityUnits`` -> ``consumed_read_capacity_units``."""
    return _CAMEL.sub("_", name).lower()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs) + "}"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


_Rendered = tuple  # (stored bytes, unit, family name, kind, help, the series' lines as one text)
#: series -> its lines as last rendered by this worker; replaced by each scrape
#: with the series that scrape saw, so forgotten series do not stay.
_rendered: dict = {}


def exposition(engine, now: float | None = None) -> bytes:
    """The text a scrape gets (the caller flushes its worker's recorder first).  ``now``: the
    clock the roll-up seals by (``shoal.metrics.store.latest_stored``)."""
    global _rendered
    families: dict[str, tuple[str, str, list]] = {}  # name -> (type, help, lines)

    def family(name: str, kind: str, text: str) -> list:
        if name not in families:
            families[name] = (kind, text, [])
        return families[name][2]

    from shoal.storage.resident import shed_point  # a scrape reads every series: its pages are not kept

    unsealed_from = int(now) - int(now) % 3600 if now is not None else None
    cache, seen = _rendered, {}
    with engine.read() as txn:
        for n, info in enumerate(iter_series(txn)):
            if n & 31 == 31:  # a gauge's look-ups map some 128 KiB (fault-around): 4 MiB between checks
                shed_point()
            region, namespace, metric, dims = info.series
            if namespace != "AWS/DynamoDB":
                continue
            if metric in GAUGES:
                last = latest_stored(txn, info.series_id, unsealed_from)
                raw = last[1] if last is not None else None
            else:
                raw = total_stored(txn, info.series_id)
            if raw is None:
                continue
            rendered = cache.get(info.series)
            if rendered is None or rendered[0] != raw or rendered[1] != info.unit:
                rendered = _render(info.series, info.unit, raw)
            seen[info.series] = rendered
            family(rendered[2], rendered[3], rendered[4]).append(rendered[5])
    _rendered = seen
    _storage(engine, family)
    _process(family)
    out = []
    for name, (kind, text, lines) in families.items():
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines)
    return ("\n".join(out) + "\n").encode()


def _render(series, unit: str, raw: bytes) -> _Rendered:
    """A series' lines from its stored value (``exposition``'s cache entry)."""
    region, _namespace, metric, dims = series
    labels = [("region", region)] + [(snake(k), v) for k, v in dims]
    base = "dynamodb_" + snake(metric)
    stats = Stats.decode(raw)
    if metric in GAUGES:
        return (raw, unit, base, "gauge", f"{metric} ({unit}), the last minute recorded",
                f"{base}{_labels(labels)} {_number(stats.max)}")
    if metric in HISTOGRAMS:
        name = base + "_milliseconds"
        lines = []
        for bound, n in zip(LATENCY_BUCKETS_MS, stats.cumulative(LATENCY_BUCKETS_MS)):
            lines.append(f"{name}_bucket{_labels(labels + [('le', _number(bound))])} {n}")
        lines.append(f"{name}_bucket{_labels(labels + [('le', '+Inf')])} {_number(stats.count)}")
        lines.append(f"{name}_sum{_labels(labels)} {_number(stats.sum)}")
        lines.append(f"{name}_count{_labels(labels)} {_number(stats.count)}")
        return (raw, unit, name, "histogram", f"{metric} in milliseconds, since the data directory began",
                "\n".join(lines))
    return (raw, unit, base + "_total", "counter", f"{metric}, Sum since the data directory began",
            f"{base}_total{_labels(labels)} {_number(stats.sum)}")


def _storage(engine, family) -> None:
    try:
        stats = engine.stats()
    except Exception:  # an engine without figures
        return
    if "data_bytes" in stats:
        family("shoal_storage_data_bytes", "gauge", "bytes the data file uses").append(
            f"shoal_storage_data_bytes {stats['data_bytes']}")
    if "map_size" in stats:
        family("shoal_storage_map_size_bytes", "gauge", "the most the data file may grow to").append(
            f"shoal_storage_map_size_bytes {stats['map_size']}")
    for space, entries in (stats.get("entries") or {}).items():
        family("shoal_storage_entries", "gauge", "stored keys per key space").append(
            f"shoal_storage_entries{_labels([('space', space)])} {entries}")
    if "readers_in_use" in stats:
        family("shoal_storage_readers", "gauge", "read transactions slots in use").append(
            f"shoal_storage_readers {stats['readers_in_use']}")


def _process(family) -> None:
    pid = [("pid", str(os.getpid()))]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    family("process_cpu_seconds_total", "counter", "CPU time of the worker that answered").append(
        f"process_cpu_seconds_total{_labels(pid)} {_number(usage.ru_utime + usage.ru_stime)}")
    rss = _resident_bytes()
    if rss is not None:
        family("process_resident_memory_bytes", "gauge", "resident memory of the worker that answered").append(
            f"process_resident_memory_bytes{_labels(pid)} {rss}")
    started = _start_time()
    if started is not None:
        family("process_start_time_seconds", "gauge", "when the worker that answered started").append(
            f"process_start_time_seconds{_labels(pid)} {_number(round(started, 2))}")
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        return
    family("process_open_fds", "gauge", "open file descriptors of the worker that answered").append(
        f"process_open_fds{_labels(pid)} {fds}")


def _start_time() -> float | None:
    """When this process started, in epoch seconds (Linux's /proc)."""
    try:
        with open("/proc/self/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
