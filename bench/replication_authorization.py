"""What the REPLICATION_NOT_AUTHORIZED check costs replication's hot path.

    python bench/replication_authorization.py [--calls 200000]

``shoal.replication.authorization.refused(txn, table)`` runs once per batch:
in the receiving region for each ApplyChanges or CopyItems request, and in
the sending region once per (peer, table) cursor per round; never per record.
This times it over an LMDB data directory (a temporary one, no fsync), in one
read transaction as the server's callers hold one:

* ``no policy``: the table has none (one ``meta`` miss);
* ``policy, cached``: a 20-statement policy that denies replication nothing
  (one ``meta`` read and the decision cache's look-up by its bytes);
* ``policy, first evaluation``: the same policy's decision made afresh (the
  cache cleared each time: what a new policy costs once);

and, for scale, a batch's own work in the receiving region is about 500 records
applied (``bench/replication.py apply``: roughly 100,000 instructions, tens of
microseconds, per record). Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402

from shoal.api import DEFAULT_ACCOUNT, Context  # noqa: E402
from shoal.api import resource_policies, tables  # noqa: E402
from shoal.api.catalog import Catalog  # noqa: E402
from shoal.replication import authorization  # noqa: E402
from shoal.storage.lmdb_engine import LmdbEngine  # noqa: E402

REGION = "us-east-1"


def _policy(name: str) -> str:
    arn = f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/{name}"
    statements = [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/u{n}"},
                   "Action": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": arn,
                   "Condition": {"StringEquals": {"aws:PrincipalTag/team": f"t{n}"}}} for n in range(18)]
    statements.append({"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/mallory"},
                       "Action": "dynamodb:*", "Resource": "*"})
    statements.append({"Effect": "Deny", "Principal": "*", "Action": "dynamodb:DeleteTable", "Resource": arn})
    return orjson.dumps({"Version": "2012-10-17", "Statement": statements}).decode()


def _time(engine, table, calls: int, clear: bool = False) -> float:
    """Microseconds per ``refused`` call."""
    with engine.read() as txn:
        started = time.perf_counter()
        for _ in range(calls):
            if clear:
                authorization.denied_action.cache_clear()
            assert not authorization.refused(txn, table)
        return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        engine = LmdbEngine(os.path.join(work, "lmdb"), sync=False)
        catalog = Catalog(engine)
        ctx = Context(REGION, DEFAULT_ACCOUNT, engine, catalog, now=time.time)
        tables.create_table(ctx, {"TableName": "events", "BillingMode": "PAY_PER_REQUEST",
                                  "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                                  "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
        with engine.read() as txn:
            table = catalog.get(txn, REGION, "events")
        figures = {"no policy": _time(engine, table, args.calls)}
        arn = f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/events"
        resource_policies.put_resource_policy(ctx, {"ResourceArn": arn, "Policy": _policy("events")})
        figures["policy, cached"] = _time(engine, table, args.calls)
        figures["policy, first evaluation"] = _time(engine, table, max(1, args.calls // 100), clear=True)
        engine.close()
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
                      "cores": os.cpu_count(), "python": platform.python_version(),
                      "microseconds per check": {k: round(v, 3) for k, v in figures.items()}}, indent=2))


if __name__ == "__main__":
    main()
