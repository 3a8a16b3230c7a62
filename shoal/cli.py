"""The ``shoal`` command.

``build_parser()`` builds the whole command line: ``serve`` here, the other
commands (``iam``, ``keys``, ``triggers``, ``tls``, ``demo``, and ``backup``,
``restore``, ``export``, ``import``) in their own modules.
Every command sets a ``handler`` default, which ``main`` calls with the
parsed arguments.

Every ``serve`` option can also be set by an environment variable, named in
its help as ``(env SHOAL_...; default ...)``: ``SERVE_OPTIONS`` is the one
table of them.  The command line wins over the variable.  A flag's variable
turns it on with 1, true, yes or on and leaves it off with 0, false, no, off
or nothing (in any case); any other value, like a wrong value of any
variable, stops the command with a message naming the variable.

Mistakes in the command line and failures at start-up are one line on
stderr, beginning ``shoal:`` (or the command's name, for a usage mistake),
that says what to change; the exit code is 2 for a usage mistake and 1 for
anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable

from shoal import __version__
from shoal.server.committer import DEFAULT_GROUP_COMMIT_WAIT_S

MAX_AUTO_WORKERS = 8
MAX_WORKERS = 256
MAX_GROUP_COMMIT_WAIT_MS = 1000
TRUE_WORDS = ("1", "true", "yes", "on")
PROFILES = ("default", "dynamodb-faithful")
FALSE_WORDS = ("", "0", "false", "no", "off")


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line that points to ``--help``
    instead of the whole usage (``serve``'s alone is a dozen lines)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


class _FromEnvironment(str):
    """An option's value read from its environment variable.

    argparse converts a string default with the option's ``type`` as if it had
    been given on the command line (and only when it was not); the variable's
    text is handed over as this ``str`` so that the converter can name the
    variable when the text is wrong.
    """

    variable: str

    def __new__(cls, text: str, variable: str) -> "_FromEnvironment":
        value = super().__new__(cls, text)
        value.variable = variable
        return value


def _converter(convert: Callable[[str], object], what: str) -> Callable[[str], object]:
    """An argparse ``type``: ``convert``, with a ``ValueError`` worded as
    ``invalid <what> value`` and, for a value from the environment, the
    variable it came from."""

    def parse(text: str):
        try:
            return convert(text)
        except argparse.ArgumentTypeError as exc:
            reason = str(exc)
        except ValueError:
            reason = f"invalid {what} value: {text!r}"
        if isinstance(text, _FromEnvironment):
            reason += f" (from ${text.variable})"
        raise argparse.ArgumentTypeError(reason)

    parse.__name__ = what
    return parse


def _mebibytes(text: str) -> int:
    """--max-mapped-resident-mb: a whole number of MiB, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MiB (0 turns the bound off)")
    return value


def _workers(text: str) -> int:
    """--workers: a count, or 'auto' (the CPUs this process may use, capped)."""
    if text == "auto":
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # no affinity on this system
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, MAX_AUTO_WORKERS))
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', not {text!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {MAX_WORKERS} or 'auto', not {text!r}")
    return count


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, not {text!r}")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


def switch(text: str) -> bool:
    """A flag's environment variable: on or off, as the module docstring says."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected {_words(TRUE_WORDS)} to turn it on, or "
                                     f"{_words([w for w in FALSE_WORDS if w])} to leave it off, not {text!r}")


def _words(words) -> str:
    return f"{', '.join(words[:-1])} or {words[-1]}"


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """A ``type`` that checks choices itself: argparse checks ``choices``
    on the command line only, not in a converted default."""

    def choose(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(map(repr, choices))})")
        return text

    return choose


class _Joined(argparse.Action):
    """A repeatable option: its values joined with commas (``ServeOption.repeatable``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = getattr(namespace, "_joined", set())
        current = getattr(namespace, self.dest) if self.dest in given else None
        setattr(namespace, self.dest, f"{current},{values}" if current else values)
        given.add(self.dest)
        namespace._joined = given


class _Flag(argparse.Action):
    """A ``store_true`` flag whose default may come from its variable (through ``switch``)."""

    def __init__(self, option_strings, dest, default=None, type=None, help=None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, type=type, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, True)


@dataclass(frozen=True)
class ServeOption:
    """One option of ``shoal serve`` and its environment variable."""

    flag: str
    env: str
    help: str
    #: The default, as text parsed like the command line's; None for no value.
    default: str | None = None
    #: How the default reads in the help, when not the text itself.
    shown_default: str | None = None
    #: Converts the text (wrapped by ``_converter``; a ``ValueError`` reads
    #: ``invalid <its __name__> value``); None keeps it a string.
    type: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None
    #: A flag that takes no value (on when given, or by its variable).
    is_flag: bool = False
    metavar: str | None = None
    #: May be given several times; the values are joined with commas, as
    #: the variable lists them (the command line's replace the variable's).
    repeatable: bool = False

    def help_text(self) -> str:
        shown = self.shown_default or self.default
        if self.is_flag:
            shown = "off"
        return f"{self.help} (env {self.env}{f'; default {shown}' if shown else ''})"


_GROUP_COMMIT_DEFAULT = f"{DEFAULT_GROUP_COMMIT_WAIT_S * 1000:g}"

SERVE_OPTIONS: tuple[ServeOption, ...] = (
    ServeOption("--host", "SHOAL_HOST", "address to listen on; 0.0.0.0 for every address of this machine",
                "127.0.0.1"),
    ServeOption("--port", "SHOAL_PORT", "port to listen on, 0 for a free one", "8000", type=_port),
    ServeOption("--data-dir", "SHOAL_DATA_DIR", "where data is stored; with --storage, only this node's own "
                "files (root credentials, audit log, TLS certificate, the S3 folder)", "./shoal-data",
                metavar="DIR"),
    ServeOption("--storage", "SHOAL_STORAGE", "store tables and items in this PostgreSQL database instead of "
                "the data directory: any number of shoal serve processes, on any machines, pointed at one "
                "database serve the same tables (writes are serialized across them)",
                shown_default="the data directory", metavar="postgresql://USER@HOST:PORT/DB"),
    ServeOption("--workers", "SHOAL_WORKERS", "server processes sharing the port and the data directory, or "
                f"'auto': one per CPU this process may run on, at most {MAX_AUTO_WORKERS}", "auto",
                type=_workers, metavar="N"),
    ServeOption("--region", "SHOAL_REGION", "make this deployment the home of one region: DynamoDB requests "
                "signed for another are refused, and global tables replicate to the --peer regions; without it, "
                "every region is served, each its own namespace, and this is the region of requests that carry "
                "no credential scope", shown_default="none (us-east-1 for unsigned requests)"),
    ServeOption("--peer", "SHOAL_PEERS", "REGION=URL of another region's deployment, for global tables; give "
                "it once per region (the variable lists them with commas: r1=url,r2=url)", metavar="REGION=URL",
                repeatable=True),
    ServeOption("--peer-pause", "SHOAL_PEER_PAUSE", "a test aid: neither send to nor accept from this peer "
                "region, as if the network between them were cut (repeatable; the variable lists them with "
                "commas); restart without it to heal", metavar="REGION", repeatable=True),
    ServeOption("--peer-credentials", "SHOAL_PEER_CREDENTIALS", "with --auth sigv4: an AWS credentials file "
                "whose [default] access key signs this deployment's requests to its peers (an identity allowed "
                "shoal:Replicate there, or their root)", metavar="FILE"),
    ServeOption("--change-retention", "SHOAL_CHANGE_RETENTION", "seconds to keep the change log that "
                "streams read", "86400", type=_seconds, metavar="SECONDS"),
    ServeOption("--group-commit-wait-ms", "SHOAL_GROUP_COMMIT_WAIT_MS", "while the server is busy, how long "
                "at most a small group of writes waits for more to share its durable commit: more "
                "throughput, longer write latency under load; 0 commits on every turn of the event loop",
                _GROUP_COMMIT_DEFAULT, type=float, metavar="MS"),
    ServeOption("--log-level", "SHOAL_LOG_LEVEL", "what is logged on stderr", "warning",
                choices=("debug", "info", "warning", "error")),
    ServeOption("--auth", "SHOAL_AUTH", "request authentication: 'off' accepts any credentials; 'sigv4' "
                "verifies signatures and IAM policies", shown_default="off on a loopback address, sigv4 on "
                "any other", choices=("off", "sigv4")),
    ServeOption("--allow-unauthenticated", "SHOAL_ALLOW_UNAUTHENTICATED", "allow --auth off on an address "
                "other than loopback", is_flag=True),
    ServeOption("--tls-cert", "SHOAL_TLS_CERT", "PEM certificate (chain) file: serve HTTPS, TLS 1.2 and "
                "newer", metavar="FILE"),
    ServeOption("--tls-key", "SHOAL_TLS_KEY", "PEM private key file of --tls-cert", metavar="FILE"),
    ServeOption("--tls-self-signed", "SHOAL_TLS_SELF_SIGNED", "serve HTTPS with a self-signed certificate "
                "for localhost, 127.0.0.1 and ::1 (and --host), made on first use and kept in <data "
                "dir>/tls/; the start-up output says where it is, for clients to trust it with "
                "AWS_CA_BUNDLE", is_flag=True),
    ServeOption("--audit-log", "SHOAL_AUDIT_LOG", "with --auth sigv4: JSON-lines audit log of "
                "authentication failures, denials and IAM changes, rotated at 10 MB, 5 kept",
                shown_default="<data dir>/audit.log", metavar="FILE"),
    ServeOption("--prewarm", "SHOAL_PREWARM", "at start, read the stored data into memory and map it (in "
                "the background), so the first reads of a large table do not wait for disk or page faults; "
                "the pages are the OS page cache, shared by the workers", is_flag=True),
    ServeOption("--max-mapped-resident-mb", "SHOAL_MAX_MAPPED_RESIDENT_MB", "keep each worker's resident "
                "pages of the mapped data file (RssFile) under this many MiB by unmapping them when it grows past "
                "it (they stay in the OS page cache): a smaller resident size for ps, top and memory limits that "
                "count mapped pages, at about two minor page faults a request when the reads' working set is "
                "larger; 0 is off", "0", type=_mebibytes, metavar="MIB"),
    ServeOption("--s3-dir", "SHOAL_S3_DIR", "the folder that stands for S3 in ExportTableToPointInTime and "
                "ImportTable: bucket B, key K is the file DIR/B/K, and a bucket is a directory there",
                shown_default="<data dir>/s3", metavar="DIR"),
    ServeOption("--metrics", "SHOAL_METRICS", "record DynamoDB's CloudWatch metrics (latency, consumed "
                "capacity, errors...) in the data directory, for CloudWatch's API and GET /metrics; "
                "--no-metrics is --metrics off", "on", choices=("on", "off")),
    ServeOption("--console", "SHOAL_CONSOLE", "serve the web console at /console (tables, items, metric "
                "charts, alarms; with auth on, it signs in with an access key); --no-console is --console off",
                "on", choices=("on", "off")),
    ServeOption("--capacity", "SHOAL_CAPACITY", "enforce provisioned throughput and on-demand maximums "
                "(ProvisionedThroughputExceededException past a table's or index's capacity and burst), as "
                "DynamoDB does; off: never throttle, as DynamoDB Local", "on", choices=("on", "off")),
    ServeOption("--partition-limits", "SHOAL_PARTITION_LIMITS", "also limit each partition key value of a table "
                "or GSI to a partition's 3,000 read and 1,000 write units a second, so that hot keys throttle as "
                "in DynamoDB (KeyRangeThroughputExceeded); needs --capacity on; docs/capacity.md", is_flag=True),
    ServeOption("--profile", "SHOAL_PROFILE", "a set of defaults: 'dynamodb-faithful' turns on every DynamoDB "
                "limit Shoal can enforce (--capacity on and --partition-limits), for testing how an application "
                "meets them; 'default' leaves each option to its own default (docs/capacity.md)", "default",
                choices=PROFILES),
    ServeOption("--kinesis-endpoint", "SHOAL_KINESIS_ENDPOINT", "URL of a Kinesis-compatible endpoint (e.g. "
                "http://127.0.0.1:4567) that receives the item changes of tables with a Kinesis streaming "
                "destination (EnableKinesisStreamingDestination), signed with the credentials botocore finds; "
                "without one, destinations fail to enable (ENABLE_FAILED); docs/kinesis.md", metavar="URL"),
    ServeOption("--master-key-file", "SHOAL_MASTER_KEY_FILE", "encrypt the data directory at rest under "
                "this 32-byte master key (hex or base64), or give the key itself in SHOAL_MASTER_KEY",
                metavar="FILE"),
)


def _add_serve_option(parser: argparse.ArgumentParser, option: ServeOption) -> None:
    text = os.environ.get(option.env)
    default = _FromEnvironment(text, option.env) if text is not None else option.default
    if option.is_flag:
        parser.add_argument(option.flag, action=_Flag, default=default if default is not None else "off",
                            type=_converter(switch, "flag"), help=option.help_text())
        return
    kwargs = {"default": default, "help": option.help_text(), "metavar": option.metavar}
    if option.repeatable:
        kwargs["action"] = _Joined
    if option.choices:
        kwargs["choices"] = option.choices
        kwargs["type"] = _converter(_one_of(option.choices), "choice")
    else:  # str for text, so that a value from the environment is a plain str too
        convert = option.type or str
        kwargs["type"] = _converter(convert, convert.__name__)
    parser.add_argument(option.flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shoal",
        description="Shoal: a DynamoDB-compatible database server with durable embedded storage.",
    )
    parser.add_argument("--version", action="version", version=f"shoal {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", help="one of:")

    serve = commands.add_parser(
        "serve",
        help="serve the DynamoDB API",
        description="Serve the DynamoDB API over HTTP (or HTTPS), storing data in --data-dir, or in a "
                    "PostgreSQL database shared by several servers (--storage).",
        epilog="Each option can also be set by the environment variable named in its help; the command "
               f"line wins. A flag's variable turns it on with {_words(TRUE_WORDS)} and leaves it off with "
               f"{', '.join(w for w in FALSE_WORDS if w)} or nothing (in any case).",
    )
    for option in SERVE_OPTIONS:
        _add_serve_option(serve, option)
    serve.add_argument("--no-metrics", dest="metrics", action="store_const", const="off", help="--metrics off")
    serve.add_argument("--no-console", dest="console", action="store_const", const="off", help="--console off")
    serve.set_defaults(handler=serve_command)

    from shoal.auth.cli import add_iam_commands
    from shoal.backup_cli import add_backup_commands
    from shoal.demo import add_demo_command
    from shoal.keys_cli import add_keys_commands
    from shoal.migrate_cli import add_migrate_command
    from shoal.tls import add_tls_commands
    from shoal.triggers.cli import add_trigger_commands

    add_iam_commands(commands)
    add_keys_commands(commands)
    add_trigger_commands(commands)
    add_tls_commands(commands)
    add_demo_command(commands)
    _add_status_command(commands)
    add_backup_commands(commands)
    add_migrate_command(commands)
    return parser


def _add_status_command(commands) -> None:
    from shoal.keys_cli import add_data_dir_options, add_storage_option

    status = commands.add_parser(
        "status", help="show the change log: its head, retention and each consumer's lag",
        description="Print, as JSON, the data directory's change log: the newest and oldest record, how many "
                    "are kept, and for each consumer (streams, and later recovery, replicas, metrics) its "
                    "cursor, how far behind the head it is (records and seconds) and the retention it asks "
                    "for. It may run while the server is serving.")
    add_data_dir_options(status)
    add_storage_option(status, "show the change log of this PostgreSQL store (as shoal serve --storage serves "
                       "it) instead of the data directory's (env SHOAL_STORAGE)")
    status.add_argument("--retention", type=float, default=os.environ.get("SHOAL_CHANGE_RETENTION", "86400"),
                        help="the server's --change-retention, reported beside the consumers' "
                             "(env SHOAL_CHANGE_RETENTION; default 86400)")
    status.set_defaults(handler=_status)


def _status(args) -> int:
    import json
    import time

    from shoal.api.changelog import log_status
    from shoal.keys_cli import open_data_dir_of, storage_problem

    problem = storage_problem(args.storage)
    if problem:
        print(f"shoal: {problem}", file=sys.stderr)
        return 2
    engine = open_data_dir_of(args, create=False)
    if engine is None:
        return 1
    try:
        with engine.read() as txn:
            status = log_status(txn, time.time())
    finally:
        engine.close()
    retentions = [args.retention, *(c["retention_s"] for c in status["consumers"].values())]
    status["retention_s"] = max(retentions)
    print(json.dumps(status, indent=2))
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_mode(args) -> str | None:
    """The auth mode to serve with, or None (with a message) if refused."""
    loopback = _is_loopback(args.host)
    mode = args.auth or ("off" if loopback else "sigv4")
    if mode == "off" and not loopback and not args.allow_unauthenticated:
        print(f"shoal: refusing --auth off on {args.host}, which is not a loopback address: anyone who "
              "can reach it could read and change all data. Use --auth sigv4, or add "
              "--allow-unauthenticated if that is really intended.", file=sys.stderr)
        return None
    return mode


def _apply_profile(args) -> str | None:
    """Settle the throughput limits of --profile and --partition-limits, or say
    what is wrong.  The workers read the partition switch from its variable
    (``shoal.capacity.partitions``), set here for them to inherit."""
    if args.profile == "dynamodb-faithful":
        if args.capacity == "off":
            return ("--profile dynamodb-faithful enforces throughput limits: it cannot be combined with "
                    "--capacity off (check SHOAL_PROFILE and SHOAL_CAPACITY too)")
        args.partition_limits = True
    if args.partition_limits and args.capacity == "off":
        return ("--partition-limits needs --capacity on: a partition's limits are throughput limits "
                "(check SHOAL_PARTITION_LIMITS and SHOAL_CAPACITY too)")
    os.environ["SHOAL_PARTITION_LIMITS"] = "on" if args.partition_limits else "off"
    return None


def _tls_options_problem(args) -> str | None:
    """What is wrong with the combination of TLS options, or None."""
    if args.tls_self_signed and (args.tls_cert or args.tls_key):
        return ("--tls-self-signed makes its own certificate: give either it or --tls-cert and --tls-key, "
                "not both (check SHOAL_TLS_SELF_SIGNED, SHOAL_TLS_CERT and SHOAL_TLS_KEY too)")
    if bool(args.tls_cert) != bool(args.tls_key):
        return "--tls-cert and --tls-key must be given together"
    return None


def _self_signed_hosts(host: str) -> list[str]:
    """The names a self-signed certificate is for: the local ones, and the
    listening address when it is a particular one (not 0.0.0.0 or ::)."""
    from shoal.tls import LOCAL_HOSTS

    hosts = list(LOCAL_HOSTS)
    if host and host not in ("0.0.0.0", "::") and host not in hosts:
        hosts.append(host)
    return hosts


def serve_command(args) -> int:
    from shoal.server.dispatch import Dispatcher
    from shoal.server.runner import serve
    from shoal.storage.datadir import DataDirError, hold_for_serving, is_postgres_url, open_storage
    from shoal.tls import TlsError, self_signed_in, server_context

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 0 <= args.group_commit_wait_ms <= MAX_GROUP_COMMIT_WAIT_MS:
        print(f"shoal: --group-commit-wait-ms must be between 0 and {MAX_GROUP_COMMIT_WAIT_MS}", file=sys.stderr)
        return 2
    auth = _auth_mode(args)
    if auth is None:
        return 2
    problem = _apply_profile(args)
    if problem:
        print(f"shoal: {problem}", file=sys.stderr)
        return 2
    problem = _tls_options_problem(args)
    if problem:
        print(f"shoal: {problem}", file=sys.stderr)
        return 2
    # The workers read the resident bound from its variable, inherited (shoal.storage.resident).
    os.environ["SHOAL_MAX_MAPPED_RESIDENT_MB"] = str(args.max_mapped_resident_mb)
    if args.kinesis_endpoint:  # the workers read it from the variable (shoal.kinesis), inherited
        os.environ["SHOAL_KINESIS_ENDPOINT"] = args.kinesis_endpoint
    ssl_context = None
    if args.tls_cert:
        try:
            ssl_context = server_context(args.tls_cert, args.tls_key)
        except TlsError as exc:
            print(f"shoal: {exc}", file=sys.stderr)
            return 1
    data_dir = args.data_dir
    from shoal.keys_cli import master_key_from
    from shoal.storage.keyring import KeyringError

    try:
        master_key = master_key_from(args.master_key_file)
    except KeyringError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    storage = args.storage
    if storage and not is_postgres_url(storage):
        print(f"shoal: --storage (or SHOAL_STORAGE) must be a postgresql://USER@HOST:PORT/DATABASE URL, "
              f"not {storage!r}", file=sys.stderr)
        return 2

    def open_engine():
        return open_storage(data_dir, storage, master_key=master_key)

    # Check (and on first use, create) the data directory, and the database
    # and its tables with --storage, before binding the port, so that a bad
    # one stops start-up with a clear message.
    try:
        open_engine().close()
        # Held (shared, by the workers too) until they all exit: the offline
        # tools refuse to work on the directory meanwhile, and it refuses them.
        hold_for_serving(data_dir)
    except DataDirError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    tls_note = ""
    if args.tls_self_signed:
        # After the data directory is initialised: a fresh one must be empty.
        hosts = _self_signed_hosts(args.host)
        try:
            cert, key, _made = self_signed_in(data_dir, hosts)
            ssl_context = server_context(cert, key)
        except TlsError as exc:
            print(f"shoal: {exc}", file=sys.stderr)
            return 1
        cert = os.path.abspath(cert)
        tls_note = (f"Self-signed TLS certificate for {', '.join(hosts)}: {cert} "
                    f"(clients trust it with AWS_CA_BUNDLE={cert})\n")
    from shoal.replication import parse_paused, parse_peers, read_credentials

    try:
        peers = parse_peers(args.peer or "")
        paused = parse_paused(args.peer_pause or "")
        peer_credentials = read_credentials(args.peer_credentials) if args.peer_credentials else None
    except ValueError as exc:
        print(f"shoal: --peer / --peer-credentials: {exc}", file=sys.stderr)
        return 2
    if peers and not args.region:
        print("shoal: --peer needs --region: the region this deployment is the home of", file=sys.stderr)
        return 2
    credentials_note = ""
    if auth == "sigv4":
        from shoal.auth.iam import bootstrap_root

        engine = open_engine()
        try:
            _key, _secret, path = bootstrap_root(engine, data_dir)
        finally:
            engine.close()
        credentials_note = f", root credentials in {os.path.abspath(path)}"
        audit_path = args.audit_log or os.path.join(data_dir, "audit.log")
        credentials_note += f", audit log {os.path.abspath(audit_path)}"

    opened = []
    prewarming = []  # (stop event, thread) of this worker's --prewarm

    def handler_factory():
        engine = open_engine()  # in the worker, after the fork: its own connections
        dispatcher = Dispatcher(engine, default_region=args.region or "us-east-1",
                                change_retention_s=args.change_retention,
                                group_commit_wait_s=args.group_commit_wait_ms / 1000,
                                auth=auth, data_dir=data_dir, audit_log=args.audit_log, s3_dir=args.s3_dir,
                                metrics=args.metrics == "on", console=args.console == "on",
                                capacity=args.capacity == "on")
        opened.append((dispatcher, engine))
        from shoal.replication import attach

        attach(dispatcher, args.region, peers, peer_credentials, paused=paused)
        if args.prewarm:
            prewarming.append(_start_prewarm(engine))
        return dispatcher

    if storage:
        from shoal.storage.postgres_engine import shown_dsn

        where = f"storage: {shown_dsn(storage)}, node files: {os.path.abspath(data_dir)}"
    else:
        where = f"data directory: {os.path.abspath(data_dir)}"

    def on_ready(url: str) -> None:
        print(
            f"{tls_note}Shoal {__version__} serving the DynamoDB API at {url} "
            f"({where}, workers: {args.workers}, "
            f"auth: {auth}{credentials_note}{', encrypted at rest' if master_key else ''})",
            flush=True,
        )

    def on_worker_exit() -> None:
        while prewarming:
            stop, thread = prewarming.pop()
            stop.set()
            thread.join()
        while opened:
            dispatcher, engine = opened.pop()
            dispatcher.close()
            engine.close()

    try:
        return serve(handler_factory, args.host, args.port, workers=args.workers, ssl_context=ssl_context,
                     on_ready=on_ready, on_worker_exit=on_worker_exit)
    except OSError as exc:
        print(f"shoal: {_listen_error(exc, args.host, args.port)}", file=sys.stderr)
        return 1


def _listen_error(exc: OSError, host: str, port: int) -> str:
    """Why the server could not listen on host:port, and what to change."""
    import errno
    import socket

    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return (f"cannot listen on {where}: {host} is not a known host name ({exc.strerror}); "
                "give an address of this machine with --host or SHOAL_HOST")
    if exc.errno == errno.EADDRINUSE:
        holder = _port_holder(port)
        by = f" by {holder}" if holder else ""
        return (f"cannot listen on {where}: the port is already in use{by}; choose another with --port "
                "or SHOAL_PORT (0 picks a free one), or stop that process")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot listen on {where}: {host} is not an address of this machine; give one with "
                "--host or SHOAL_HOST (127.0.0.1 for this machine only, 0.0.0.0 for all its addresses)")
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return (f"cannot listen on {where}: ports below 1024 need privileges; choose a port from 1024 up "
                "with --port or SHOAL_PORT")
    return f"cannot listen on {where}: {exc.strerror or exc}"


def _port_holder(port: int) -> str | None:
    """Which process listens on TCP ``port``, as ``process <pid> (<command>)``,
    when this system says (Linux's /proc, for this user's processes); else None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local address "hex ip:hex port", state 0A is LISTEN, inode in column 10
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in inodes:
                return f"process {pid} ({_command_line(pid)})"
    return None


def _command_line(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    text = " ".join(word.decode(errors="replace") for word in words)
    return text if len(text) <= 80 else text[:77] + "..."


def _start_prewarm(engine):
    """Warm the engine's data on a thread while the worker serves (--prewarm)."""
    import threading
    import time

    stop = threading.Event()

    def run() -> None:
        started = time.monotonic()
        warmed = engine.prewarm(stop.is_set)
        logging.getLogger("shoal").info("prewarm: %d MiB of data mapped in %.1f s", warmed >> 20,
                                        time.monotonic() - started)

    thread = threading.Thread(target=run, name="shoal-prewarm", daemon=True)
    thread.start()
    return stop, thread


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader of our output went away (`shoal iam list-users | head -1`):
        # no traceback; stdout to /dev/null so that the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
