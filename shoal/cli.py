"""The ``shoal`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from shoal import __version__
from shoal.server.committer import DEFAULT_GROUP_COMMIT_WAIT_S


def _env(name: str, default):
    return os.environ.get(name, default)


MAX_AUTO_WORKERS = 8
MAX_GROUP_COMMIT_WAIT_MS = 1000


def _workers(text: str) -> int:
    """--workers: a count, or 'auto' (the CPUs this process may use, capped)."""
    if text == "auto":
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # no affinity on this system
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, MAX_AUTO_WORKERS))
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', not {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description="Shoal: a DynamoDB-compatible database server with durable embedded storage.",
    )
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the DynamoDB API",
        description="Serve the DynamoDB API over HTTP, storing data in --data-dir.",
    )
    serve.add_argument("--host", default=_env("SHOAL_HOST", "127.0.0.1"),
                       help="address to listen on (env SHOAL_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=int(_env("SHOAL_PORT", "8000")),
                       help="port to listen on, 0 for a free one (env SHOAL_PORT; default 8000)")
    serve.add_argument("--data-dir", default=_env("SHOAL_DATA_DIR", "./shoal-data"),
                       help="where data is stored (env SHOAL_DATA_DIR; default ./shoal-data)")
    serve.add_argument("--workers", type=_workers, default=_env("SHOAL_WORKERS", "auto"),
                       help="server processes sharing the port and data directory, or 'auto': one per "
                            f"CPU this process may run on, at most {MAX_AUTO_WORKERS} (env SHOAL_WORKERS; default auto)")
    serve.add_argument("--region", default=_env("SHOAL_REGION", "us-east-1"),
                       help="region for requests that carry no credential scope (default us-east-1)")
    serve.add_argument("--change-retention", type=float, default=float(_env("SHOAL_CHANGE_RETENTION", "86400")),
                       help="seconds to keep the change log that streams read (default 86400)")
    serve.add_argument("--group-commit-wait-ms", type=float,
                       default=_env("SHOAL_GROUP_COMMIT_WAIT_MS", f"{DEFAULT_GROUP_COMMIT_WAIT_S * 1000:g}"),
                       help="while the server is busy, how long at most a small group of writes waits for more "
                            "to share its durable commit: more throughput, longer write latency under load; "
                            "0 commits on every turn of the event loop (env SHOAL_GROUP_COMMIT_WAIT_MS; "
                            f"default {DEFAULT_GROUP_COMMIT_WAIT_S * 1000:g})")
    serve.add_argument("--log-level", default=_env("SHOAL_LOG_LEVEL", "warning"),
                       choices=["debug", "info", "warning", "error"])
    serve.add_argument("--auth", choices=["off", "sigv4"], default=_env("SHOAL_AUTH", None),
                       help="request authentication (env SHOAL_AUTH): 'off' accepts any credentials; "
                            "'sigv4' verifies signatures and IAM policies. Default: off on a loopback "
                            "address, sigv4 on any other")
    serve.add_argument("--allow-unauthenticated", action="store_true",
                       help="allow --auth off on an address other than loopback")
    serve.add_argument("--tls-cert", default=_env("SHOAL_TLS_CERT", None),
                       help="PEM certificate (chain) file: serve HTTPS, TLS 1.2 and newer (env SHOAL_TLS_CERT)")
    serve.add_argument("--tls-key", default=_env("SHOAL_TLS_KEY", None),
                       help="PEM private key file for --tls-cert (env SHOAL_TLS_KEY)")
    serve.add_argument("--audit-log", default=_env("SHOAL_AUDIT_LOG", None),
                       help="with --auth sigv4: JSON-lines audit log of authentication failures, denials "
                            "and IAM changes, rotated at 10 MB, 5 kept (env SHOAL_AUDIT_LOG; "
                            "default <data dir>/audit.log)")
    serve.add_argument("--prewarm", action="store_true", default=_env("SHOAL_PREWARM", "") not in ("", "0"),
                       help="at start, read the stored data into memory and map it (in the background), so "
                            "the first reads of a large table do not wait for disk or page faults; the pages "
                            "are the OS page cache, shared by the workers ($SHOAL_PREWARM=1)")
    serve.add_argument("--master-key-file", default=_env("SHOAL_MASTER_KEY_FILE", None),
                       help="encrypt the data directory at rest under this 32-byte master key (hex or base64; "
                            "env SHOAL_MASTER_KEY_FILE, or the key itself in SHOAL_MASTER_KEY)")

    from shoal.auth.cli import add_iam_commands
    from shoal.keys_cli import add_keys_commands

    add_iam_commands(commands)
    add_keys_commands(commands)
    from shoal.triggers.cli import add_trigger_commands

    add_trigger_commands(commands)
    return parser


def _tls_context(args):
    """An SSL context for --tls-cert/--tls-key (TLS 1.2 and newer), or None."""
    if not args.tls_cert and not args.tls_key:
        return None
    if not (args.tls_cert and args.tls_key):
        raise ValueError("--tls-cert and --tls-key must be given together")
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


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


def serve_command(args) -> int:
    from shoal.server.dispatch import Dispatcher
    from shoal.server.runner import serve
    from shoal.storage.datadir import DataDirError, open_data_dir

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workers < 1:
        print("shoal: --workers must be at least 1", file=sys.stderr)
        return 2
    if not 0 <= args.group_commit_wait_ms <= MAX_GROUP_COMMIT_WAIT_MS:
        print(f"shoal: --group-commit-wait-ms must be between 0 and {MAX_GROUP_COMMIT_WAIT_MS}", file=sys.stderr)
        return 2
    auth = _auth_mode(args)
    if auth is None:
        return 2
    try:
        ssl_context = _tls_context(args)
    except (OSError, ValueError) as exc:
        print(f"shoal: cannot use the TLS certificate and key: {exc}", file=sys.stderr)
        return 2
    data_dir = args.data_dir
    from shoal.keys_cli import master_key_from
    from shoal.storage.keyring import KeyringError

    try:
        master_key = master_key_from(args.master_key_file)
    except KeyringError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    # Check (and on first use, create) the data directory before binding the
    # port, so a bad directory stops start-up with a clear message.
    try:
        open_data_dir(data_dir, master_key=master_key).close()
    except DataDirError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    credentials_note = ""
    if auth == "sigv4":
        from shoal.auth.iam import bootstrap_root

        engine = open_data_dir(data_dir, master_key=master_key)
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
        engine = open_data_dir(data_dir, master_key=master_key)
        dispatcher = Dispatcher(engine, default_region=args.region, change_retention_s=args.change_retention,
                                group_commit_wait_s=args.group_commit_wait_ms / 1000,
                                auth=auth, data_dir=data_dir, audit_log=args.audit_log)
        opened.append((dispatcher, engine))
        if args.prewarm:
            prewarming.append(_start_prewarm(engine))
        return dispatcher

    def on_ready(url: str) -> None:
        print(
            f"Shoal {__version__} serving the DynamoDB API at {url} "
            f"(data directory: {os.path.abspath(data_dir)}, workers: {args.workers}, "
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
        print(f"shoal: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1


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
    if args.command == "serve":
        return serve_command(args)
    if args.command in ("iam", "keys", "triggers"):
        return args.handler(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
