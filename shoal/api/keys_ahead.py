"""The ``items`` keys a write request will read, known before it runs.

Over an engine whose reads are round trips (PostgreSQL), the group committer
(``shoal.server.committer``) locks and reads the items of a group's writes
in one statement (``Engine.lock_ahead``) before running each request alone,
whose locked reads are then answered from what was read.  This module says
which items: the one of a PutItem, UpdateItem or DeleteItem
(``shoal.api.items.item_key_ahead``), the PutRequests' and DeleteRequests'
of a BatchWriteItem, the Puts', Updates', Deletes' and ConditionChecks' of a
TransactWriteItems.

Nothing is charged or refused here, and nothing decided: a key is only a
guess at what the request will read.  A guess that is wrong (a request the
operation then refuses, a table throttled, a key it never reads) costs a
lock held to the group's commit and a row read for nothing; the request's
own reads still go to storage for any key not read ahead.  So whatever is
amiss (a missing or refused table, a malformed key) is skipped, as are the
items of MRSC tables (their writes are consensus rounds, which must not be
answered from before them), and the operation reports it in its own words.
"""

from __future__ import annotations

from shoal.api.common import checked_key, storage_key
from shoal.api.items import checked_key_in_item, item_key_ahead, table_ahead

#: The writes of many items.
MANY_ITEM_WRITES = frozenset(("BatchWriteItem", "TransactWriteItems"))

#: The writes whose items the group committer locks and reads ahead.
KEYED_WRITES = MANY_ITEM_WRITES | {"PutItem", "UpdateItem", "DeleteItem"}

#: The actions of a TransactWriteItems, and the member naming each one's item.
_TRANSACT_KEYS = (("Put", "Item"), ("Update", "Key"), ("Delete", "Key"), ("ConditionCheck", "Key"))


def write_keys_ahead(ctx, txn, operation: str, request: dict) -> list[bytes]:
    """The ``items`` keys the write ``request`` (an operation of
    ``KEYED_WRITES``) will read, looked up in ``txn`` (see the module
    docstring); those not known here are left out."""
    if operation == "BatchWriteItem":
        return _batch_keys(ctx, txn, request)
    if operation == "TransactWriteItems":
        return _transaction_keys(ctx, txn, request)
    key = item_key_ahead(ctx, txn, operation, request)
    return [] if key is None else [key]


def _batch_keys(ctx, txn, request: dict) -> list[bytes]:
    keys = []
    try:
        parts = list(request["RequestItems"].items())
    except Exception:  # malformed: the operation's to report
        return keys
    for name, writes in parts:
        try:
            table = table_ahead(ctx, txn, name)
        except Exception:
            continue
        if table is None:
            continue
        for write in writes:
            try:
                put = write.get("PutRequest")
                key = checked_key_in_item(table, put["Item"]) if put is not None else \
                    checked_key(table, write["DeleteRequest"]["Key"])
                keys.append(storage_key(table, key))
            except Exception:
                continue
    return keys


def _transaction_keys(ctx, txn, request: dict) -> list[bytes]:
    keys, tables = [], {}
    try:
        actions = list(request["TransactItems"])
    except Exception:
        return keys
    for action in actions:
        try:
            spec, member = next((action[kind], member) for kind, member in _TRANSACT_KEYS
                                if action.get(kind) is not None)
            name = spec["TableName"]
            if name not in tables:
                tables[name] = table_ahead(ctx, txn, name)
            table = tables[name]
            if table is None:
                continue
            key = checked_key_in_item(table, spec[member]) if member == "Item" else checked_key(table, spec[member])
            keys.append(storage_key(table, key))
        except Exception:  # no action, or a malformed one: the operation's to report
            continue
    return keys
