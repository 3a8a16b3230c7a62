"""``shoal demo``: load the viewer-events data set into a running Shoal and show how to query it.

A new user's first hour: ``shoal serve``, then ``shoal demo``, then look.  The
command, against a running server (any DynamoDB-compatible endpoint, in fact):

1. creates the workload's tables (``workload.table_definitions``), or reuses
   them when they exist with the same schema, or with ``--reset`` drops and
   recreates them; enables time to live on the events' ``expires_at``;
2. loads ``--events`` generated events (``workload.DemoData``: the event-type
   mix, Zipf title popularity, the few very active users, sessions, evening
   peaks) with the continue-watching positions and per-title hourly counters
   they imply, fast (``loader``: BatchWriteItem of 25 on several keep-alive
   connections), with a progress line on stderr and a summary;
3. prints the workload's seven access patterns as boto3 and AWS CLI snippets
   filled in with a concrete user and title, each with the answer it gives
   on this data (``patterns``).

Loading again adds events (each run draws a new data set over the days up to
now, unless ``--seed`` repeats one); positions and counters are merged into
what the tables hold.  ``--reset`` starts from empty tables.

``add_demo_command(subparsers)`` installs the command under the ``shoal``
parser; ``args.handler(args)`` runs it.  ``python -m shoal.demo`` runs it too.
This module only builds the parser, so that ``shoal serve`` does not import
the rest.
"""

from __future__ import annotations

import os

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"
DEFAULT_EVENTS = 100_000
DEFAULT_CONNECTIONS = 64


def _env(*names: str, default=None):
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return default


def add_demo_arguments(parser) -> None:
    """The demo's options, each with its environment variable where one makes sense."""
    parser.add_argument("--endpoint-url", default=_env("SHOAL_DEMO_ENDPOINT", default=DEFAULT_ENDPOINT),
                        help=f"the Shoal to load (env SHOAL_DEMO_ENDPOINT; default {DEFAULT_ENDPOINT})")
    # String defaults: argparse converts them only when ``demo`` runs, so that a bad
    # variable cannot break the other ``shoal`` commands, which build this parser too.
    parser.add_argument("--events", type=int, default=_env("SHOAL_DEMO_EVENTS", default=str(DEFAULT_EVENTS)),
                        help=f"how many events to generate and load (env SHOAL_DEMO_EVENTS; "
                             f"default {DEFAULT_EVENTS:,}); a second run adds as many again")
    parser.add_argument("--reset", action="store_true",
                        help="drop the demo's tables (viewer_events, continue_watching, title_counters) "
                             "and their data first, and create them anew")
    parser.add_argument("--region", default=_env("AWS_REGION", "AWS_DEFAULT_REGION", default="us-east-1"),
                        help="the region the tables are in (env AWS_REGION or AWS_DEFAULT_REGION; default us-east-1)")
    parser.add_argument("--profile", default=None,
                        help="sign requests with this AWS profile's credentials. Only a server run with "
                             "--auth sigv4 needs signatures; without --profile the demo signs only if the server "
                             "asks, with the credentials in the environment (AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws)")
    parser.add_argument("--connections", type=int,
                        default=_env("SHOAL_DEMO_CONNECTIONS", default=str(DEFAULT_CONNECTIONS)),
                        help="requests in flight while loading, one keep-alive connection each "
                             f"(env SHOAL_DEMO_CONNECTIONS; default {DEFAULT_CONNECTIONS})")
    parser.add_argument("--days", type=float, default=30.0,
                        help="the events span this many days up to now (default 30)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed of the generated data (default: a new one each run, printed)")
    parser.add_argument("--snippets", choices=["both", "python", "cli", "none"], default="both",
                        help="which snippets to print with the access patterns' answers: boto3 (python), "
                             "AWS CLI (cli), both (the default) or none (answers only)")
    parser.add_argument("--no-verify-ssl", action="store_true",
                        help="with an https:// endpoint, do not verify its certificate (a self-signed one)")


def add_demo_command(subparsers) -> None:
    """Add ``demo`` to the ``shoal`` command's subparsers."""
    demo = subparsers.add_parser(
        "demo", help="load the viewer-events demo data into a running Shoal and show how to query it",
        description="Create the viewer-events tables in a running Shoal, load generated events into them "
                    "(with a progress line on stderr) and print the workload's seven access patterns as "
                    "boto3 and AWS CLI snippets, each with its answer on the loaded data.")
    add_demo_arguments(demo)
    demo.set_defaults(handler=run_demo)


def run_demo(args) -> int:
    from shoal.demo.command import demo

    return demo(args)
