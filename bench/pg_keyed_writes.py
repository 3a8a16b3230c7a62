"""BatchWriteItem and TransactWriteItems per node over PostgreSQL (issue 19).

    python bench/pg_keyed_writes.py [--items 10000] [--connections 16] [--seconds 5] [--rounds 3]
                                    [--ops batch,txn] [--pin shared|split|none] [--nodes pg,pg-before=TREE]

``shoal serve --workers 1`` nodes over one PostgreSQL from Debian's packages
(each node its own database; tests/postgres_cluster.py), loaded with
``--items`` items as bench/pg_getitem.py loads them, are driven in turn by one
wrk (one thread, ``--connections`` connections), round after round, op after
op, the nodes' order rotating each round: ``batch``, BatchWriteItems of 25
PutRequests of consecutive keys from a random one (items of about 200 bytes);
``txn``, TransactWriteItems of 10 Updates (``ADD #v :one``, views) of consecutive
keys.  Each run follows a warm-up.  Reported: requests per second, p50 and
p99, and CPU per request from /proc (Shoal's, PostgreSQL's, wrk's, the rest of
the machine's), as bench/pg_getitem.py does; an answer that is not 200, or a
batch answered with unprocessed items, is counted ("misses").

``--nodes``: as in bench/pg_getitem.py, ``NAME[=TREE]`` with NAME beginning
with ``pg``; TREE, a source tree (a ``git worktree`` of another commit) the
node runs from, to compare two versions in one interleaved run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, REPO_DIR)

from pg_getitem import LUA as GETITEM_LUA, Node, _postmaster, idle_cpu, measure, print_idle, stop_all  # noqa: E402
from systems import process_tree  # noqa: E402

# bench/pg_getitem.py's script (its report line, its counts of answers not
# 200), its request a batch's or a transaction's, built by the op's ``body``
# from a random first key, and a "miss" an answer other than the op's
# ``done_body`` (a batch with unprocessed items).
_REQUEST = """function request()
  return wrk.format("POST", "/", {
    ["Content-Type"] = "application/x-amz-json-1.0",
    ["X-Amz-Target"] = "DynamoDB_20120810." .. operation,
    ["Authorization"] = "AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/dynamodb/aws4_request, "
      .. "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0",
    ["X-Amz-Date"] = "20240101T000000Z",
  }, body(math.random(items - size)))
end
"""


def lua(op: str) -> str:
    """The wrk script of ``op``, from bench/pg_getitem.py's."""
    head, found, rest = GETITEM_LUA.partition("function request()")
    request, ended, tail = rest.partition("\nend\n")
    miss = "elseif #body == 2 then"
    if not (found and ended and miss in tail):
        raise RuntimeError("bench/pg_getitem.py's script changed: adapt lua()")
    filler = 'local filler = string.rep("x", 120)\n'
    return head + filler + OPS[op] + _REQUEST + tail.replace(miss, "elseif body ~= done_body then")


OPS = {
    "batch": r"""
operation = "BatchWriteItem"
size = 25
done_body = '{"UnprocessedItems":{}}'
function body(first)
  local puts = {}
  for n = first, first + size - 1 do
    table.insert(puts, '{"PutRequest":{"Item":{"id":{"S":"item-' .. n .. '"},"views":{"N":"' .. n
      .. '"},"title":{"S":"title ' .. n .. ' ' .. filler .. '"}}}}')
  end
  return '{"RequestItems":{"' .. table_name .. '":[' .. table.concat(puts, ",") .. ']}}'
end
""",
    "txn": r"""
operation = "TransactWriteItems"
size = 10
done_body = '{}'
function body(first)
  local updates = {}
  for n = first, first + size - 1 do
    table.insert(updates, '{"Update":{"TableName":"' .. table_name .. '","Key":{"id":{"S":"item-' .. n
      .. '"}},"UpdateExpression":"ADD #v :one","ExpressionAttributeNames":{"#v":"views"},'
      .. '"ExpressionAttributeValues":{":one":{"N":"1"}}}}')
  end
  return '{"TransactItems":[' .. table.concat(updates, ",") .. ']}'
end
""",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", default="batch,txn")
    parser.add_argument("--nodes", default="pg", help="NAME[=TREE],...: NAME begins with pg; TREE: run that "
                        "node from another source tree")
    parser.add_argument("--pin", choices=("shared", "split", "none"), default="shared")
    args = parser.parse_args(argv)
    ops = args.ops.split(",")
    if not set(ops) <= set(OPS):
        parser.error(f"--ops from {','.join(OPS)}")
    specs = [spec.partition("=")[::2] for spec in args.nodes.split(",")]
    if not all(name.startswith("pg") for name, _ in specs):
        parser.error("each node's name begins with pg")
    node_cpus, pg_cpus, wrk_cpus = {"shared": ("0", "0", "1"), "split": ("0", "1", "1"),
                                    "none": (None, None, None)}[args.pin]

    from tests.postgres_cluster import PostgresCluster, missing_binaries_message, postgres_bin_dir

    workdir = tempfile.mkdtemp(prefix="shoal-pg-keyed-")
    scripts = {}
    for op in ops:
        scripts[op] = os.path.join(workdir, f"{op}.lua")
        with open(scripts[op], "w") as handle:
            handle.write(lua(op))
    args.profile = None  # what bench/pg_getitem.py's Node and measure look for
    cluster = None
    nodes: list[Node] = []
    try:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise SystemExit(missing_binaries_message())
        cluster = PostgresCluster(bin_dir).start()
        postgres_pid = _postmaster(cluster)
        for name, tree in specs:
            nodes.append(Node(name, workdir, cluster.create_database("bench"), node_cpus, None, None, tree or None))
        for node in nodes:
            node.load(args.items)
        if pg_cpus is not None:  # the postmaster and the backends forked since
            for pid in process_tree(postgres_pid):
                subprocess.run(["taskset", "-pc", pg_cpus, str(pid)], capture_output=True)
        idle = {node.engine: idle_cpu(node, postgres_pid) for node in nodes}
        loads = []
        runs = []
        for round_ in range(args.rounds):
            with open("/proc/loadavg") as handle:
                loads.append(handle.read().split()[0])
            turn = nodes[round_ % len(nodes):] + nodes[:round_ % len(nodes)]
            for op in ops:
                for node in turn:
                    runs.append(dict(measure(node, postgres_pid, args, scripts[op], round_ + 1, wrk_cpus),
                                     round=round_ + 1, op=op))
    finally:
        stop_all(nodes, cluster, workdir)

    print(f"load average at each round's start: {', '.join(loads)}; pin: {args.pin}; wrk -t1 "
          f"-c{args.connections}, {args.seconds:g} s runs after {args.warmup:g} s of warm-up; {args.items} items")
    print_idle(idle)
    print()
    print("| round | op | node | req/s | p50 / p99 ms | Shoal CPU µs/req (user + sys) | PostgreSQL CPU µs/req "
          "| wrk µs/req | other cores busy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(f"| {run['round']} | {run['op']} | {run['engine']} | {run['rps']:,.0f} "
              f"| {run['p50_ms']:.1f} / {run['p99_ms']:.1f} "
              f"| {run['shoal_us']:.0f} ({run['shoal_user_us']:.0f} + {run['shoal_sys_us']:.0f}) "
              f"| {run['pg_us']:.0f} | {run['wrk_us']:.0f} | {run['other_cores']:.2f} |")
        if run["non200"] or run["misses"] or run["socket_errors"]:
            print(f"  ! {run['non200']} answers not 200, {run['misses']} not fully processed, "
                  f"{run['socket_errors']} socket errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
