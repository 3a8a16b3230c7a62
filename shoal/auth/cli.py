"""The ``shoal iam ...`` commands: manage IAM data of a data directory, or with
``--storage postgresql://...`` (env SHOAL_STORAGE) of the store that
``shoal serve --storage`` nodes serve.

They open the store directly (LMDB lets them run beside a serving Shoal, and
PostgreSQL beside any number of nodes; servers notice changes within their
cache ttl, ``IamStore``'s five seconds) and print JSON, like ``aws iam``
does.  ``add_iam_commands(subparsers)`` installs them under the ``shoal``
parser; ``args.handler(args)`` runs the chosen one.

Every change is audited (``shoal.auth.audit``) to ``--audit-log`` (env
SHOAL_AUDIT_LOG) when given, else to ``<data dir>/audit.log``.  With
``--storage`` the store has no data directory: the default is then
``<--data-dir>/audit.log`` only when that directory is a node directory (it
exists and holds no LMDB store: run on a node's machine with its node
directory, the line joins that node's log, where the node writes its own);
otherwise the command writes the audit line to stderr
(prefixed ``shoal: audit:``), so that no change goes unrecorded, and says to
give ``--audit-log``.
"""

from __future__ import annotations

import json
import os
import sys

from shoal.keys_cli import add_data_dir_options, add_storage_option, open_data_dir_of, storage_problem

_ENTITIES = ("user", "group", "role")


def add_iam_commands(subparsers) -> None:
    """Add ``iam`` and its subcommands to the ``shoal`` command's subparsers."""
    iam = subparsers.add_parser("iam", help="manage users, keys, roles and policies",
                                description="Manage the IAM data of a Shoal data directory.")
    iam.set_defaults(handler=lambda args: (iam.print_help(), 0)[1])
    commands = iam.add_subparsers(dest="iam_command", metavar="IAM_COMMAND", help="one of:")

    def command(name: str, run, help_text: str, *arguments):
        parser = commands.add_parser(name, help=help_text)
        add_data_dir_options(parser)
        add_storage_option(parser, "work on the IAM data of this PostgreSQL store (as shoal serve --storage "
                                   "serves it) instead of the data directory (env SHOAL_STORAGE)")
        parser.add_argument("--audit-log", default=os.environ.get("SHOAL_AUDIT_LOG"),
                            help="where IAM changes are audited (env SHOAL_AUDIT_LOG; default <data dir>/audit.log; "
                                 "with --storage, that file if the directory exists, else stderr)")
        for flags, options in arguments:
            parser.add_argument(*flags, **options)
        parser.set_defaults(handler=lambda args: _run(args, run))

    def required(flag: str, help_text: str):
        return (flag,), {"required": True, "help": help_text}

    user = required("--user-name", "the user's name")
    group = required("--group-name", "the group's name")
    role = required("--role-name", "the role's name")
    doc = required("--policy-document", "the policy: JSON text, or file://path")
    inline_name = required("--policy-name", "the inline policy's name")
    managed_arn = required("--policy-arn", "the managed policy's ARN")
    command("create-user", lambda s, a: {"User": s.create_user(a.user_name)}, "create a user", user)
    command("delete-user", lambda s, a: s.delete_user(a.user_name), "delete a user and its keys", user)
    command("list-users", lambda s, a: {"Users": s.list_users()}, "list users")
    command("create-access-key", lambda s, a: {"AccessKey": s.create_access_key(a.user_name)},
            "create an access key for a user", user)
    command("delete-access-key", lambda s, a: s.delete_access_key(a.access_key_id), "delete an access key",
            required("--access-key-id", "the access key's id"))
    command("list-access-keys", lambda s, a: {"AccessKeyMetadata": s.list_access_keys(a.user_name)},
            "list a user's access keys", user)
    command("create-group", lambda s, a: {"Group": s.create_group(a.group_name)}, "create a group", group)
    command("add-user-to-group", lambda s, a: s.add_user_to_group(a.user_name, a.group_name),
            "add a user to a group", user, group)
    command("remove-user-from-group", lambda s, a: s.remove_user_from_group(a.user_name, a.group_name),
            "remove a user from a group", user, group)
    command("create-role", lambda s, a: {"Role": s.create_role(a.role_name, _document(a.trust_policy),
                                                               a.max_session_duration)},
            "create a role", role, (("--trust-policy", "--assume-role-policy-document"),
                                    {"required": True, "dest": "trust_policy",
                                     "help": "who may assume the role: a policy as JSON text, or file://path"}),
            (("--max-session-duration",), {"type": int, "default": 3600, "metavar": "SECONDS",
                                           "help": "the longest session AssumeRole grants, in seconds "
                                                   "(default 3600)"}))
    for kind in _ENTITIES:
        name_arg = {"user": user, "group": group, "role": role}[kind]
        command(f"put-{kind}-policy", _put_inline(kind), f"put an inline policy on a {kind}",
                name_arg, inline_name, doc)
        command(f"delete-{kind}-policy", _delete_inline(kind), f"delete an inline policy of a {kind}",
                name_arg, inline_name)
        command(f"attach-{kind}-policy", _attach(kind, True), f"attach a managed policy to a {kind}",
                name_arg, managed_arn)
        command(f"detach-{kind}-policy", _attach(kind, False), f"detach a managed policy from a {kind}",
                name_arg, managed_arn)
    command("create-policy", lambda s, a: {"Policy": s.create_policy(a.policy_name, _document(a.policy_document))},
            "create a managed policy", required("--policy-name", "the managed policy's name"), doc)
    command("delete-policy", lambda s, a: s.delete_policy(a.policy_arn), "delete a managed policy", managed_arn)
    command("list-policies", lambda s, a: {"Policies": s.list_policies()}, "list managed policies")
    command("list-audit-events", _audit_events, "print the audit log (opening sealed lines of an encrypted "
            "data directory with its master key)")


def _put_inline(kind: str):
    return lambda s, a: s.put_inline_policy(kind, getattr(a, f"{kind}_name"), a.policy_name,
                                            _document(a.policy_document))


def _delete_inline(kind: str):
    return lambda s, a: s.delete_inline_policy(kind, getattr(a, f"{kind}_name"), a.policy_name)


def _attach(kind: str, attach: bool):
    def run(store, args):
        name = getattr(args, f"{kind}_name")
        if attach:
            store.attach_policy(kind, name, args.policy_arn)
        else:
            store.detach_policy(kind, name, args.policy_arn)
    return run


def _document(value: str) -> str:
    """A policy argument: JSON text, or ``file://path`` as the AWS CLI takes it."""
    if value.startswith("file://"):
        with open(value[7:]) as f:
            return f.read()
    return value


def _run(args, run) -> int:
    # Imported here: `shoal serve` builds this parser too and should not pay for it.
    from shoal.auth.iam import IamError, IamStore

    problem = storage_problem(args.storage)
    if problem:
        print(f"shoal: {problem}", file=sys.stderr)
        return 2
    # A store over PostgreSQL must hold a store already (a node made it):
    # IAM data written to a database no node serves would be lost from view.
    engine = open_data_dir_of(args, create=not args.storage)
    if engine is None:
        return 1
    try:
        # --data-dir is not used with --storage (an iam.key there is no key of the store's)
        store = IamStore(engine, None if args.storage else args.data_dir)
    except BaseException:
        engine.close()
        raise
    try:
        result = run(store, args)
    except IamError as exc:
        _audit(args, store, "error", f"{exc.code}: {exc.message}")
        print(f"shoal: An error occurred ({exc.code}): {exc.message}", file=sys.stderr)
        return 254  # as the AWS CLI exits on a service error
    except OSError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    _audit(args, store, "allow", "changed with the shoal iam command")
    if result is not None:
        print(json.dumps(result, indent=4))
    return 0


def _audit_path(args) -> str | None:
    """Where this command audits (see the module docstring); None: stderr."""
    from shoal.auth.audit import DEFAULT_FILE

    if args.audit_log:
        return args.audit_log
    if args.storage:
        from shoal.storage.datadir import MARKER_NAME

        # A node directory exists and holds no LMDB store (shoal serve refuses one)
        if not os.path.isdir(args.data_dir) or os.path.lexists(os.path.join(args.data_dir, MARKER_NAME)):
            return None
    return os.path.join(args.data_dir, DEFAULT_FILE)


def _audit_events(store, args) -> dict:
    from shoal.auth.audit import read_lines

    path = _audit_path(args)
    return {"Events": read_lines(path, store.engine) if path else []}


def _audit(args, store, decision: str, reason: str) -> None:
    """Write an IAM change (not a listing) to the audit log."""
    command = args.iam_command or ""
    if command.startswith("list-"):
        return
    from shoal.auth.audit import AuditLog, iso_now

    path = _audit_path(args)
    action = "iam:" + "".join(part.capitalize() for part in command.split("-"))
    event = {"principal": _local_principal(), "source": "local", "action": action,
             "resource": _resource_of(args, store), "decision": decision, "reason": reason}
    if path is None:
        line = json.dumps({"time": iso_now(), **event, "request_id": None})
        print(f"shoal: audit: {line} (no audit file: give --audit-log or SHOAL_AUDIT_LOG)", file=sys.stderr)
        return
    audit = AuditLog(path, engine=store.engine)
    try:
        audit.record(**event)
    except OSError as exc:
        print(f"shoal: cannot write the audit log {path}: {exc}", file=sys.stderr)
    finally:
        audit.close()


def _local_principal() -> str:
    """Who ran the command: the operating-system user of this process."""
    import getpass

    try:
        return f"local:{getpass.getuser()}(uid={os.getuid()})"
    except (KeyError, OSError):
        return f"local:uid={os.getuid()}"


def _resource_of(args, store) -> str | None:
    """The ARN (or access key id) the command changed."""
    if getattr(args, "policy_arn", None) and not any(getattr(args, f"{k}_name", None) for k in _ENTITIES):
        return args.policy_arn
    for kind in _ENTITIES:
        name = getattr(args, f"{kind}_name", None)
        if name:
            return getattr(store, f"{kind}_arn")(name)
    if getattr(args, "policy_name", None):
        return store.policy_arn(args.policy_name)
    return getattr(args, "access_key_id", None)
