"""What ``shoal demo`` does: tables, load, summary, then the access patterns."""

from __future__ import annotations

import random
import ssl
import sys
import time

from shoal.demo.client import Connection, DynamoError, open_endpoint
from shoal.demo.loader import Loader, Progress
from shoal.demo.patterns import Credentials, patterns, read_context, render, run
from shoal.demo.tables import SchemaMismatch, enable_ttl, ensure_tables, item_counts
from shoal.demo.workload import (
    CONTENT_INDEX, COUNTERS_TABLE, EVENTS_TABLE, PROGRESS_TABLE, TTL_ATTRIBUTE, DemoData,
)


def demo(args, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.events < 0:
        print("shoal demo: --events must be 0 or more", file=err)
        return 2
    if args.connections < 1:
        print("shoal demo: --connections must be at least 1", file=err)
        return 2
    if args.days <= 0:
        print("shoal demo: --days must be more than 0", file=err)
        return 2
    try:
        endpoint = open_endpoint(args.endpoint_url, args.region, args.profile, verify_tls=not args.no_verify_ssl)
    except ssl.SSLError as exc:
        print(f"shoal demo: TLS with {args.endpoint_url} failed ({exc}); for a self-signed certificate, "
              "add --no-verify-ssl", file=err)
        return 1
    except ValueError as exc:
        print(f"shoal demo: {exc}", file=err)
        return 2
    except OSError as exc:
        print(f"shoal demo: cannot reach {args.endpoint_url} ({exc.strerror or exc}); "
              "is `shoal serve` running there?", file=err)
        return 1
    except DynamoError as exc:
        print(f"shoal demo: {args.endpoint_url} refused the demo's requests: {exc}", file=err)
        return 1
    connection = Connection(endpoint)
    try:
        return _demo(args, endpoint, connection, out, err)
    except SchemaMismatch as exc:
        print(f"shoal demo: {exc}", file=err)
        return 1
    except DynamoError as exc:
        print(f"shoal demo: the server answered {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"shoal demo: lost {args.endpoint_url}: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        print("\nshoal demo: interrupted", file=err)
        return 130
    finally:
        connection.close()


def _demo(args, endpoint, connection: Connection, out, err) -> int:
    outcome = ensure_tables(connection, reset=args.reset)
    print(f"Shoal demo: viewer events at {endpoint.url} ({args.region})", file=out)
    print(f"  {EVENTS_TABLE}: {outcome[EVENTS_TABLE]}; key user_id, ts; index {CONTENT_INDEX} on content_id, ts; "
          f"time to live on {TTL_ATTRIBUTE}{'' if outcome[EVENTS_TABLE] == 'reused' else ' (once loaded)'}", file=out)
    print(f"  {PROGRESS_TABLE}: {outcome[PROGRESS_TABLE]}; key user_id, content_id (latest position per title)",
          file=out)
    print(f"  {COUNTERS_TABLE}: {outcome[COUNTERS_TABLE]}; key counter_id = title#hour#shard (plays per hour)",
          file=out)
    out.flush()

    before = item_counts(connection)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    data = DemoData(args.events, seed, end_ms=int(time.time() * 1000), days=args.days)
    # Into tables that hold data, positions and counters are merged (UpdateItem),
    # so that a second load adds to the first; into empty ones, plain puts are faster.
    merge = frozenset(t for t in (PROGRESS_TABLE, COUNTERS_TABLE) if before.get(t))
    print(f"Loading {args.events:,} events of {data.users:,} users over the last {args.days:g} days "
          f"(seed {seed}), {args.connections} connections", file=out)
    out.flush()
    progress = Progress(args.events, stream=err) if args.events else None
    report = Loader(endpoint, args.connections, progress).load(data.items(), update_tables=merge)
    enable_ttl(connection)
    after = item_counts(connection)
    print(_summary(report, before, after), file=out)
    out.flush()

    if not after.get(EVENTS_TABLE):
        print("No events loaded: nothing to show (run with --events N).", file=out)
        return 0
    ctx = read_context(connection)
    items = patterns(ctx, endpoint.url, endpoint.verify_tls)
    for pattern in items:
        run(pattern, connection)
    print("", file=out)
    print(render(items, endpoint.url, args.region, _credentials(args, endpoint), args.snippets, endpoint.verify_tls),
          end="", file=out)
    return 0


def _credentials(args, endpoint) -> Credentials:
    if endpoint.signer is None:
        return Credentials("any")
    if args.profile:
        return Credentials("profile", args.profile)
    return Credentials("environment")


def _summary(report, before: dict, after: dict) -> str:
    rows = [(EVENTS_TABLE, EVENTS_TABLE), (f"  index {CONTENT_INDEX}", f"{EVENTS_TABLE}.{CONTENT_INDEX}"),
            (PROGRESS_TABLE, PROGRESS_TABLE), (COUNTERS_TABLE, COUNTERS_TABLE)]
    lines = [f"Loaded {report.events:,} events in {report.seconds:.1f} s ({report.rate:,.0f} events/s)."]
    if report.unprocessed:
        lines[0] += f" The server handed back {report.unprocessed:,} items once (UnprocessedItems); resent."
    width = max(len(f"{after.get(key, 0):,}") for _, key in rows)
    lines.append(f"  {'table':<22} {'items':>{width}}  this run")
    for label, key in rows:
        added = after.get(key, 0) - before.get(key, 0)
        lines.append(f"  {label:<22} {after.get(key, 0):>{width},}  {added:+,}")
    return "\n".join(lines)
