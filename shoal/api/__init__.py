"""The DynamoDB API: one module per operation family.

Every operation is a function ``op(ctx: Context, request: dict) -> dict | bytes``:
it validates the request (after ``shoal.api.shapes`` checked JSON types and the
API model's constraints), executes it against storage and shapes the response.
A ``bytes`` result is already-serialized JSON (used to splice stored items into a
response without re-encoding).  Errors are raised as ``shoal.errors.ShoalError``.

Each module exposes ``OPERATIONS = {"OperationName": function}``; ``operations()``
merges them for the server's router.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"


@dataclass(slots=True)
class Context:
    """What an operation knows of the request beyond its body."""

    region: str
    account: str
    engine: Any  # shoal.storage.engine.Engine
    catalog: Any  # shoal.api.catalog.Catalog
    access_key: str | None = None
    now: Callable[[], float] = field(default=time.time)
    #: The folder that stands for S3 (bucket B, key K: the file s3_dir/B/K)
    #: for ExportTableToPointInTime and ImportTable; None: no bucket exists.
    s3_dir: str | None = None
    #: Where operations report what the request consumed, for the server's
    #: metrics (``shoal.api.common.meter``), whether or not the request asked
    #: for ReturnConsumedCapacity; None when metrics are off.  It may be the
    #: list its (region, table, operation) cell shares with other requests,
    #: whose first two slots count one-block GetItems: report only through
    #: ``shoal.api.common``'s functions.
    meter: list | None = None


def operations() -> dict[str, Callable[[Context, dict], Any]]:
    """All operations Shoal offers, by DynamoDB operation name."""
    from shoal.api import (backups, batch, bulk, exports, imports, insights, items, kinesis, partiql, pitr,
                           query, resource_policies, streams, tables, transactions, ttl, vectors)

    ops: dict[str, Callable[[Context, dict], Any]] = {}
    for module in (tables, items, query, batch, transactions, ttl, streams, resource_policies, partiql, backups, pitr,
                   exports, imports, bulk, insights, vectors, kinesis):
        ops.update(module.OPERATIONS)
    from shoal.replication import legacy_ops  # global tables version 2017.11.29

    ops.update(legacy_ops.OPERATIONS)
    return ops
