"""The ``shoal triggers ...`` commands: configure stream triggers of a data
directory, or with ``--storage postgresql://...`` (env SHOAL_STORAGE) of the
store that ``shoal serve --storage`` nodes serve.

Like ``shoal iam``, they open the store directly (LMDB lets them run beside a
serving Shoal, PostgreSQL beside its nodes, whose workers pick changes up on
their next round) and print JSON; a store is never created by them.
``add_trigger_commands(subparsers)`` installs them under the ``shoal``
parser; ``args.handler(args)`` runs the chosen one.
"""

from __future__ import annotations

import json
import os
import sys

from shoal.keys_cli import add_data_dir_options, add_storage_option, open_data_dir_of, storage_problem


def add_trigger_commands(subparsers) -> None:
    """Add ``triggers`` and its subcommands to the ``shoal`` command's subparsers."""
    triggers = subparsers.add_parser(
        "triggers", help="deliver table streams to HTTP endpoints",
        description="Deliver a table's stream, in order per key and at least once, to an HTTP endpoint "
                    "as Lambda-style event JSON ({\"Records\": [...]}).")
    triggers.set_defaults(handler=lambda args: (triggers.print_help(), 2)[1])
    commands = triggers.add_subparsers(dest="triggers_command", metavar="TRIGGERS_COMMAND",
                                       help="one of:")
    trigger_id = (("--id",), {"required": True, "help": "the trigger's id (from add or list)"})

    add = _command(commands, "add", _add, "add a trigger on a table's enabled stream")
    add.add_argument("--table", required=True, help="the table (its stream must be enabled)")
    add.add_argument("--url", required=True, help="the http:// or https:// endpoint batches are POSTed to")
    add.add_argument("--region", default=os.environ.get("SHOAL_REGION", "us-east-1"),
                     help="the table's region (env SHOAL_REGION; default us-east-1)")
    add.add_argument("--batch-size", type=int, default=100, help="records per POST, 1 to 10000 (default 100)")
    add.add_argument("--batching-window", type=float, default=0.0,
                     help="seconds to gather a full batch before sending a short one, 0 to 300 (default 0)")
    add.add_argument("--starting-position", choices=["TRIM_HORIZON", "LATEST"], default="TRIM_HORIZON",
                     help="start at the oldest retained record, or after the newest (default TRIM_HORIZON)")
    add.add_argument("--maximum-retry-attempts", type=int, default=-1,
                     help="retries of a failing batch before the trigger is disabled; -1 retries forever "
                          "(default -1)")
    add.add_argument("--disabled", action="store_true", help="add the trigger disabled")
    _command(commands, "list", _list, "list triggers with their state")
    _command(commands, "show", _show, "show one trigger with its state", trigger_id)
    _command(commands, "remove", _remove, "remove a trigger and its checkpoint", trigger_id)
    _command(commands, "enable", _enable(True), "enable a trigger (resuming after it gave up)", trigger_id)
    _command(commands, "disable", _enable(False), "disable a trigger, keeping its checkpoint", trigger_id)


def _command(commands, name: str, run, help_text: str, *arguments):
    parser = commands.add_parser(name, help=help_text)
    add_data_dir_options(parser)
    add_storage_option(parser, "configure the triggers of this PostgreSQL store (as shoal serve --storage serves "
                               "it) instead of the data directory's (env SHOAL_STORAGE)")
    for flags, options in arguments:
        parser.add_argument(*flags, **options)
    parser.set_defaults(handler=lambda args: _run(args, run))
    return parser


def _add(engine, args) -> dict:
    from shoal.triggers.store import add_trigger, list_triggers

    config = add_trigger(engine, region=args.region, table=args.table, url=args.url,
                         batch_size=args.batch_size, batching_window=args.batching_window,
                         starting_position=args.starting_position,
                         maximum_retry_attempts=args.maximum_retry_attempts, enabled=not args.disabled)
    return {"Trigger": list_triggers(engine, config["id"])[0]}


def _list(engine, args) -> dict:
    from shoal.triggers.store import list_triggers

    return {"Triggers": list_triggers(engine)}


def _show(engine, args) -> dict:
    from shoal.triggers.store import list_triggers

    return {"Trigger": list_triggers(engine, args.id)[0]}


def _remove(engine, args) -> dict:
    from shoal.triggers.store import remove_trigger

    config = remove_trigger(engine, args.id)
    return {"Removed": config["id"]}


def _enable(enabled: bool):
    def run(engine, args) -> dict:
        from shoal.triggers.store import list_triggers, set_enabled

        set_enabled(engine, args.id, enabled)
        return {"Trigger": list_triggers(engine, args.id)[0]}
    return run


def _run(args, run) -> int:
    # Imported here: `shoal serve` builds this parser too and should not pay for it.
    from shoal.triggers.store import TriggerError

    problem = storage_problem(args.storage)
    if problem:
        print(f"shoal: {problem}", file=sys.stderr)
        return 2
    engine = open_data_dir_of(args, create=False)
    if engine is None:
        return 1
    try:
        result = run(engine, args)
    except TriggerError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    print(json.dumps(result, indent=4))
    return 0
