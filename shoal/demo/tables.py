"""The demo's tables: create them, reuse them, or (``--reset``) drop and recreate them.

A table that already exists is reused if its key schema (and, for the events
table, the ``by_content`` index's key schema) is the demo's; anything else is
refused with a hint at ``--reset``, since the demo must not write into a table
it does not understand.  Time to live on ``expires_at`` is enabled when it is
not yet (DynamoDB allows one TTL change an hour, so it is left alone when it
is already on), by ``enable_ttl`` once the data is loaded.
"""

from __future__ import annotations

import time

from shoal.demo.client import Connection, DynamoError
from shoal.demo.workload import EVENTS_TABLE, TTL_ATTRIBUTE, table_definitions


class SchemaMismatch(Exception):
    """A table of the demo's name exists with another schema."""


def _describe(connection: Connection, name: str) -> dict | None:
    try:
        return connection.call("DescribeTable", {"TableName": name})["Table"]
    except DynamoError as exc:
        if exc.type == "ResourceNotFoundException":
            return None
        raise


def _keys(key_schema: list) -> list:
    return [(k["AttributeName"], k["KeyType"]) for k in key_schema]


def _attribute_types(definition: dict) -> dict:
    return {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}


def schema_differences(definition: dict, table: dict) -> list[str]:
    """How an existing table (DescribeTable's ``Table``) differs from a CreateTable request."""
    wanted_types, types = _attribute_types(definition), _attribute_types(table)
    problems = []
    if _keys(table["KeySchema"]) != _keys(definition["KeySchema"]):
        problems.append(f"key schema {_keys(table['KeySchema'])}, not {_keys(definition['KeySchema'])}")
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes") or []}
    for wanted in definition.get("GlobalSecondaryIndexes") or []:
        index = indexes.get(wanted["IndexName"])
        if index is None:
            problems.append(f"no index {wanted['IndexName']}")
        elif _keys(index["KeySchema"]) != _keys(wanted["KeySchema"]):
            problems.append(f"index {wanted['IndexName']} keyed {_keys(index['KeySchema'])}")
    for name, kind in wanted_types.items():
        if name in types and types[name] != kind:
            problems.append(f"attribute {name} of type {types[name]}, not {kind}")
    return problems


def _wait(connection: Connection, name: str, gone: bool, timeout: float = 60.0) -> dict | None:
    deadline = time.monotonic() + timeout
    while True:
        table = _describe(connection, name)
        if gone and table is None:
            return None
        if not gone and table is not None and table["TableStatus"] == "ACTIVE" and all(
                i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in table.get("GlobalSecondaryIndexes") or []):
            return table
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} is not {'deleted' if gone else 'ACTIVE'} after {timeout:.0f} s")
        time.sleep(0.1)


def ensure_tables(connection: Connection, reset: bool = False) -> dict[str, str]:
    """Make the demo's tables ready; returns ``{table: "created" | "recreated" | "reused"}``.

    Raises SchemaMismatch for an existing table of another schema (without ``reset``)."""
    definitions = table_definitions()
    found = {d["TableName"]: _describe(connection, d["TableName"]) for d in definitions}
    if not reset:
        problems = []
        for definition in definitions:
            name = definition["TableName"]
            differences = schema_differences(definition, found[name]) if found[name] else []
            if differences:
                problems.append(f"{name}: {'; '.join(differences)}")
        if problems:
            raise SchemaMismatch("tables exist with another schema (" + " | ".join(problems)
                                 + "); run shoal demo --reset to drop and recreate the demo's tables")
    outcome = {}
    for definition in definitions:
        name = definition["TableName"]
        if found[name] is not None and reset:
            try:
                connection.call("DeleteTable", {"TableName": name})
            except DynamoError as exc:
                if exc.type != "ResourceNotFoundException":
                    raise
            _wait(connection, name, gone=True)
        if found[name] is None or reset:
            connection.call("CreateTable", definition)
            outcome[name] = "recreated" if found[name] is not None else "created"
        else:
            outcome[name] = "reused"
        _wait(connection, name, gone=False)
    check_ttl(connection)
    return outcome


def check_ttl(connection: Connection, name: str = EVENTS_TABLE) -> bool:
    """Whether time to live is on for ``name`` (on ``expires_at``); SchemaMismatch if on another attribute."""
    described = connection.call("DescribeTimeToLive", {"TableName": name})["TimeToLiveDescription"]
    status, attribute = described.get("TimeToLiveStatus"), described.get("AttributeName")
    if status in ("ENABLED", "ENABLING") and attribute != TTL_ATTRIBUTE:
        raise SchemaMismatch(f"{name} has time to live on {attribute}, not {TTL_ATTRIBUTE}; "
                             "run shoal demo --reset to recreate it")
    return status in ("ENABLED", "ENABLING")


def enable_ttl(connection: Connection, name: str = EVENTS_TABLE) -> None:
    """Turn time to live on for ``name`` on ``expires_at``, unless it is on.

    ``shoal demo`` does it after loading: the expiry sweeper of a TTL table walks
    all of it every minute, which would compete with the load for the server."""
    if check_ttl(connection, name):
        return
    connection.call("UpdateTimeToLive", {"TableName": name, "TimeToLiveSpecification": {
        "Enabled": True, "AttributeName": TTL_ATTRIBUTE}})


def item_counts(connection: Connection) -> dict[str, int]:
    """ItemCount of each demo table (Shoal keeps it exact), and of the events table's index."""
    counts = {}
    for definition in table_definitions():
        table = _describe(connection, definition["TableName"]) or {}
        counts[definition["TableName"]] = table.get("ItemCount", 0)
        for index in table.get("GlobalSecondaryIndexes") or []:
            counts[f"{definition['TableName']}.{index['IndexName']}"] = index.get("ItemCount", 0)
    return counts
