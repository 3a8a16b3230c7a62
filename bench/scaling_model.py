"""A scaling model of Shoal nodes over a PostgreSQL-compatible database
(issue 19, point 5): throughput and p99 latency of GetItem and PutItem at
10, 100 and 1,000 nodes, on paper, from the round trips each request makes
today and stated assumptions about the database.  docs/scaling-model.md
explains the assumptions and what the figures say.

    python bench/scaling_model.py            # the tables of docs/scaling-model.md
    python bench/scaling_model.py --json     # the same figures as JSON

The model:

* A node runs ``workers`` processes; a worker serves one request at a time
  and blocks on each database round trip (storage calls run on the event
  loop), so a worker's service time is ``cpu + round_trips * rtt`` and its
  throughput the inverse; a node is capped by its cores (``cpu`` per
  request each).
* Reads take no lock: the cluster's read throughput is the nodes' sum,
  capped by the database's read capacity (statements per second, which
  scales with the database's own nodes on Citus and CockroachDB).
* Writes of different items lock different keys (since 2026-12-07), but
  every write transaction still takes one shared lock at its commit: the
  change log's head and the table counters, locked by the statement that
  renumbers its change records and held until its ``COMMIT`` returns, so
  the log stays gap-free in commit order.  Before, the ``writer`` row was
  locked for the whole transaction (the statements after the one that took
  it, plus the commit).  A node's group commit puts up to ``group``
  requests in one transaction.  The lock is an M/M/1 server: at utilization
  rho < 1 the time in it is exponential with mean 1/(mu - lambda), so its
  p99 is ln(100)/(mu - lambda); at rho >= 1 the offered load is not served
  (the throughput is mu, latency unbounded).
* A hot partition (one key range) serves at most ``range_writes`` writes a
  second on a distributed engine, whatever the number of nodes.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass

#: Round trips per request today, counted by instrumenting the engine (see
#: docs/scaling-model.md): GetItem = the catalog check and the item, each a
#: statement of its own (no snapshot needed across them: before 2026-12-07 a
#: BEGIN and a COMMIT too); PutItem = BEGIN (with the writer row lock), the
#: catalog, the old item, two counters of meta, COMMIT (the writes ride with it).
GET_ROUND_TRIPS = 2
PUT_ROUND_TRIPS = 6
#: Round trips a write transaction holds the shared lock for, besides its commit:
#: the writer row (before 2026-12-07) from its first statement on; the change
#: log's head (today) only from the statement at commit.
WRITER_ROW_HOLD = PUT_ROUND_TRIPS - 2
LOG_HEAD_HOLD = 1


@dataclass(frozen=True)
class Database:
    name: str
    read_rtt_ms: float  # one statement, node to database and back
    write_rtt_ms: float  # one statement inside a write transaction
    commit_ms: float  # a durable commit (synchronous replication or consensus)
    read_capacity: float  # statements a second the database serves (all its nodes)
    write_capacity: float  # durable single-row write transactions a second (all its nodes)
    range_writes: float  # writes a second one key range takes (a hot partition)


DATABASES = [
    # One PostgreSQL primary with a synchronous standby in the same zone.
    Database("PostgreSQL + sync standby", 0.2, 0.2, 1.0, 150_000, 30_000, 20_000),
    # Citus: a coordinator hop on every statement; reads spread over 16 workers.
    Database("Citus, 16 workers", 0.5, 0.5, 1.5, 800_000, 250_000, 20_000),
    # CockroachDB over three zones: reads from the leaseholder, commits by Raft.
    Database("CockroachDB, 3 zones, 30 nodes", 1.0, 1.0, 4.0, 600_000, 90_000, 5_000),
]


@dataclass(frozen=True)
class Node:
    workers: int = 4  # processes per node (a 4-core node)
    cores: int = 4
    get_cpu_ms: float = 0.10  # server CPU of a GetItem (LMDB runs ~10,000 a second a core)
    put_cpu_ms: float = 0.20
    group: int = 8  # requests per group commit under load


def reads(nodes: int, db: Database, node: Node, round_trips: int = GET_ROUND_TRIPS) -> dict:
    """GetItem with every worker of every node busy (a closed loop: the
    most the cluster serves): throughput, and latency by Little's law."""
    service_ms = node.get_cpu_ms + round_trips * db.read_rtt_ms
    per_node = min(node.workers * 1000 / service_ms, node.cores * 1000 / node.get_cpu_ms)
    database_cap = db.read_capacity / round_trips
    throughput = min(nodes * per_node, database_cap)
    mean_ms = nodes * node.workers * 1000 / throughput  # requests in flight / throughput
    # The wait beyond one request's own time is taken as exponential: its p99 is ln(100) times its mean.
    p99 = service_ms + math.log(100) * max(mean_ms - service_ms, 0.0)
    return {"throughput": throughput, "p99_ms": p99, "bound": "database" if nodes * per_node > database_cap
            else "nodes (workers blocked on round trips)"}


def writes(nodes: int, db: Database, node: Node, offered_per_node: float, round_trips: int = PUT_ROUND_TRIPS,
           global_lock: bool = True, hold_round_trips: int = LOG_HEAD_HOLD) -> dict:
    """PutItem at ``offered_per_node`` requests a second per node: through
    a cluster-wide lock held for ``hold_round_trips`` and the commit (the
    writer row before 2026-12-07, the change log's head today), or with no
    shared lock, where only the database's write capacity bounds the cluster."""
    if global_lock:
        hold_ms = hold_round_trips * db.write_rtt_ms + db.commit_ms
        mu = node.group * 1000 / hold_ms  # requests a second through the lock at full groups
        bound = "writer lock" if hold_round_trips == WRITER_ROW_HOLD else "log head lock"
    else:
        mu = db.write_capacity
        bound = "database"
    offered = nodes * offered_per_node
    if offered >= mu:
        return {"throughput": mu, "p99_ms": math.inf, "bound": f"{bound} (saturated)"}
    own_ms = node.put_cpu_ms + round_trips * db.write_rtt_ms + db.commit_ms
    p99 = own_ms + math.log(100) * 1000 / (mu - offered) if global_lock else own_ms * (1 + offered / mu)
    return {"throughput": offered, "p99_ms": p99, "bound": bound if offered > 0.5 * mu else "latency"}


def table(node: Node, counts=(10, 100, 1000), offered_per_node: float = 200.0) -> list[dict]:
    rows = []
    for db in DATABASES:
        for n in counts:
            rows.append({"database": db.name, "nodes": n, "design": "writer row (before 2026-12-07)",
                         "reads": reads(n, db, node),
                         "writes": writes(n, db, node, offered_per_node, hold_round_trips=WRITER_ROW_HOLD)})
        for n in counts:
            rows.append({"database": db.name, "nodes": n, "design": "key locks (today)",
                         "reads": reads(n, db, node), "writes": writes(n, db, node, offered_per_node)})
        for n in counts:
            rows.append({"database": db.name, "nodes": n, "design": "1-2 round trips, per-item locks",
                         "reads": reads(n, db, node, 1),
                         "writes": writes(n, db, node, offered_per_node, 2, global_lock=False)})
    return rows


def _fmt(x: float) -> str:
    return "unbounded" if math.isinf(x) else (f"{x:,.0f}" if x >= 100 else f"{x:.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--offered-writes", type=float, default=200.0, help="PutItem a second per node")
    args = parser.parse_args(argv)
    node = Node()
    rows = table(node, offered_per_node=args.offered_writes)
    if args.json:
        print(json.dumps({"node": asdict(node), "databases": [asdict(d) for d in DATABASES], "rows": rows},
                         indent=2, default=str))
        return 0
    print("| database | design | nodes | GetItem/s (all workers busy) | GetItem p99 ms | bound | PutItem/s "
          f"(offered {args.offered_writes:,.0f}/node) | PutItem p99 ms | bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        r, w = row["reads"], row["writes"]
        print(f"| {row['database']} | {row['design']} | {row['nodes']:,} | {_fmt(r['throughput'])} | "
              f"{_fmt(r['p99_ms'])} | {r['bound']} | {_fmt(w['throughput'])} | {_fmt(w['p99_ms'])} | {w['bound']} |")
    print()
    print("Hot partition (one key range), writes a second whatever the nodes: " + ", ".join(
        f"{db.name} {db.range_writes:,.0f}" for db in DATABASES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
