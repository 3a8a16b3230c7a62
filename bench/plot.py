"""Plot latency percentiles per system from bench/run.py results (JSON on stdin).

    python bench/plot.py OUT.png < results.json

Runs in the bench venv (bench/.cache/venv), where matplotlib is installed.
One panel per workload at the middle connection count of the run (16 by
default), one group of bars per system: p50, p99 and p99.9, on a log scale.
"""

from __future__ import annotations

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"shoal": "Shoal", "dynamodb-local": "DynamoDB Local", "dynalite": "dynalite", "moto": "moto",
          "ceiling": "HTTP ceiling"}
PERCENTILES = ("p50", "p99", "p99.9")
COLOURS = ("#4c72b0", "#dd8452", "#c44e52")


def plot(results: dict, path: str) -> None:
    round_ = results["rounds"][-1]
    connections = sorted(results["settings"]["connections"])
    conns = connections[len(connections) // 2]
    workloads = [w for w in results["settings"]["workloads"] if any(r["workload"] == w for r in round_["runs"])]
    systems = [info["name"] for info in round_["systems"]]
    cols = min(4, len(workloads))
    rows = math.ceil(len(workloads) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    cells = {(r["workload"], r["connections"], r["system"]): r for r in round_["runs"]}
    for ax, workload in zip(axes.flat, workloads):
        names = [s for s in systems if (workload, conns, s) in cells]
        width = 0.8 / len(PERCENTILES)
        for i, pct in enumerate(PERCENTILES):
            values = [cells[(workload, conns, s)]["latency_ms"][pct] for s in names]
            ax.bar([x + (i - 1) * width for x in range(len(names))], values, width, label=pct, color=COLOURS[i])
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([LABELS.get(s, s) for s in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{workload} ({conns} connections)", fontsize=10)
        ax.set_ylabel("latency (ms)", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Latency percentiles, {round_['items']:,} items ({results['date']})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    plot(json.load(sys.stdin), sys.argv[1])
