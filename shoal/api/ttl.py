"""Time to live: UpdateTimeToLive, DescribeTimeToLive and the expiry sweeper.

A table's TTL setting is one small JSON record in ``meta`` under
``b"ttl/" + table prefix``::

    {"region", "name", "attr", "status": ENABLING|ENABLED|DISABLING|DISABLED, "at": epoch s}

UpdateTimeToLive writes it ENABLED or DISABLED at once: DynamoDB's
DescribeTimeToLive reports the new state right after the change.  (Earlier
versions wrote ENABLING or DISABLING for the sweeper to settle; the sweeper
still settles such records.)

The sweeper is a background job (``Sweeper``) run by every worker process.  It
walks each TTL-enabled table in key order, a bounded number of items per
round, keeping its position in ``meta`` (``b"ttlpass/" + prefix``) in the same
transaction as its deletions, so concurrent workers never repeat or skip work.
A full pass starts at most every ``sweep_interval_s`` seconds.  An item expires
when its TTL attribute is a Number of epoch seconds not in the future and not
more than five years in the past (DynamoDB ignores such items, and anything
that is not a Number).  Until the sweeper deletes it, an expired item is
still returned by reads, as in DynamoDB.

Deletions go through ``writepath.write_item`` with DynamoDB's service
identity, so indexes, counters and streams see them like any other delete (a
stream shows a REMOVE record carrying that ``userIdentity``).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from shoal.settings import from_env
from decimal import Decimal, InvalidOperation

import orjson

from shoal.api.tables import table_name_of
from shoal.api.changelog import record_table_change
from shoal.api.writepath import write_item
from shoal.errors import ResourceNotFoundException, ValidationException

SERVICE_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
FIVE_YEARS_S = 5 * 365 * 86400
SWEEP_CHUNK = 1000  # items examined per round

_TTL_PREFIX = b"ttl/"
_PASS_PREFIX = b"ttlpass/"
_PASS = struct.Struct(">QB")  # pass started (ms), finished flag; then the last key scanned


@dataclass
class TtlConfig:
    """The TTL timings; DynamoDB-like defaults, overridable for tests."""

    sweep_interval_s: float = 60.0
    modify_interval_s: float = 3600.0

    @classmethod
    def from_env(cls) -> "TtlConfig":
        return from_env(cls, {
            "sweep_interval_s": "SHOAL_TTL_SWEEP_INTERVAL_S",
            "modify_interval_s": "SHOAL_TTL_MODIFY_INTERVAL_S",
        })


CONFIG = TtlConfig.from_env()


def ttl_key(prefix: bytes) -> bytes:
    """The ``meta`` key of a table's TTL setting."""
    return _TTL_PREFIX + prefix


def read_setting(txn, prefix: bytes) -> dict | None:
    raw = txn.get("meta", ttl_key(prefix))
    return orjson.loads(raw) if raw is not None else None


# ---------------------------------------------------------------- the API


def _table(ctx, txn, request: dict):
    name = table_name_of(ctx, request["TableName"])
    table = ctx.catalog.get(txn, ctx.region, name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    return table


def update_time_to_live(ctx, request: dict) -> dict:
    """Enable or disable TTL on one attribute, with DynamoDB's rules: no
    repeat of the current state, one attribute at a time, and no second
    change within the modification interval (an hour)."""
    spec = request["TimeToLiveSpecification"]
    enabled, attr = spec["Enabled"], spec["AttributeName"]
    now = ctx.now()
    with ctx.engine.write() as txn:
        table = _table(ctx, txn, request)
        if table.description.get("MultiRegionConsistency") == "STRONG":
            # Not supported on MRSC tables (DynamoDB's Developer Guide); the wording is Shoal's.
            raise ValidationException("Time to Live is not supported on multi-Region strong consistency "
                                      f"global tables: {table.name}")
        _check_key_usable(ctx, table)
        current = read_setting(txn, table.prefix)
        _check_change(current, enabled, attr, now)
        set_time_to_live(txn, table, enabled, attr, now)
        if table.description.get("Replicas"):
            from shoal.replication import control  # every replica of a global table has the same setting

            control.propagate_time_to_live(txn, table, {"Enabled": enabled, "AttributeName": attr})
    return {"TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attr}}


def _check_key_usable(ctx, table) -> None:
    """DynamoDB refuses UpdateTimeToLive on a table whose KMS key cannot be
    used (INACCESSIBLE_ENCRYPTION_CREDENTIALS) as it refuses item requests
    there (ack-api-quirks DDB-TABLE-333); DescribeTimeToLive still answers."""
    from shoal.replication import control

    if control.is_inaccessible(table):
        raise control.inaccessible_error(ctx.engine, table)


def set_time_to_live(txn, table, enabled: bool, attr: str, now: float) -> None:
    """Store a table's TTL setting (checked by the caller) and record the change."""
    setting = {"region": table.region, "name": table.name, "attr": attr,
               "status": "ENABLED" if enabled else "DISABLED", "at": now}
    txn.put("meta", ttl_key(table.prefix), orjson.dumps(setting))
    if enabled:
        txn.delete("meta", _PASS_PREFIX + table.prefix)
    record_table_change(txn, table, "UpdateTimeToLive",
                        {"TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attr}}, now)


def _check_change(current: dict | None, enabled: bool, attr: str, now: float) -> None:
    active = current is not None and current["status"] in ("ENABLING", "ENABLED")
    if enabled and active:
        if current["attr"] == attr:
            raise ValidationException("TimeToLive is already enabled")
        raise _other_attribute(current["attr"])
    if not enabled and not active:
        raise ValidationException("TimeToLive is already disabled")
    if not enabled and current["attr"] != attr:
        raise _other_attribute(current["attr"])
    if current is not None and now - current["at"] < CONFIG.modify_interval_s:
        raise ValidationException("Time to live has been modified multiple times within a fixed interval")


def _other_attribute(current: str) -> ValidationException:
    return ValidationException(f"TimeToLive is active on a different AttributeName: current AttributeName is {current}")


def describe_time_to_live(ctx, request: dict) -> dict:
    """The TTL status, and the attribute while TTL is (being) enabled or being disabled."""
    with ctx.engine.read() as txn:
        table = _table(ctx, txn, request)
        current = read_setting(txn, table.prefix)
    status = table.description.get("TableStatus")
    if status == "CREATING":  # a restore or an import filling it; DynamoDB's recorded answer (DDB-TABLE-442)
        raise ValidationException(
            f"Cannot describe time to live while table is in {status} state: Current table state is {status}")
    if current is None or current["status"] == "DISABLED":
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}
    return {"TimeToLiveDescription": {"TimeToLiveStatus": current["status"], "AttributeName": current["attr"]}}


OPERATIONS = {
    "UpdateTimeToLive": update_time_to_live,
    "DescribeTimeToLive": describe_time_to_live,
}


# ---------------------------------------------------------------- the sweeper


def expired(av, now: float) -> bool:
    """Whether a TTL attribute value makes its item expired at ``now``."""
    if av.__class__ is not dict:
        return False
    text = av.get("N")
    if text is None or len(av) != 1:
        return False
    try:
        when = Decimal(text)
    except InvalidOperation:
        return False
    return now - FIVE_YEARS_S <= when <= Decimal(repr(now))


class Sweeper:
    """The background job that deletes expired items, a chunk at a time."""

    def __init__(self, engine, catalog, config: TtlConfig | None = None, chunk: int = SWEEP_CHUNK) -> None:
        self.engine = engine
        self.catalog = catalog
        self.config = config or CONFIG
        self.chunk = chunk
        self.__name__ = "ttl_sweeper"

    def __call__(self) -> bool:
        """One bounded round; True while more items wait to be examined."""
        now = time.time()
        with self.engine.read() as txn:
            if not any(self._needs_work(txn, k, v, now) for k, v in txn.scan("meta", _TTL_PREFIX, b"ttl0")):
                return False
        budget = self.chunk
        with self.engine.write() as txn:
            for key, raw in list(txn.scan("meta", _TTL_PREFIX, b"ttl0")):
                budget -= self._sweep_table(txn, bytes(key[len(_TTL_PREFIX):]), orjson.loads(raw), now, budget)
                if budget <= 0:
                    return True
        return False

    def _needs_work(self, txn, key: bytes, raw: bytes, now: float) -> bool:
        setting = orjson.loads(raw)
        if setting["status"] in ("ENABLING", "DISABLING"):
            return True
        if setting["status"] != "ENABLED":
            return False
        state = txn.get("meta", _PASS_PREFIX + key[len(_TTL_PREFIX):])
        if state is None:
            return True
        started, finished = _PASS.unpack_from(state)
        return not finished or now * 1000 - started >= self.config.sweep_interval_s * 1000

    def _sweep_table(self, txn, prefix: bytes, setting: dict, now: float, budget: int) -> int:
        """Settle the table's TTL state and sweep part of it; returns items examined."""
        table = self.catalog.get(txn, setting["region"], setting["name"])
        if table is None or table.prefix != prefix:  # the table is gone
            txn.delete("meta", ttl_key(prefix))
            txn.delete("meta", _PASS_PREFIX + prefix)
            return 0
        if setting["status"] in ("ENABLING", "DISABLING"):
            setting["status"] = "ENABLED" if setting["status"] == "ENABLING" else "DISABLED"
            txn.put("meta", ttl_key(prefix), orjson.dumps(setting))
        if setting["status"] != "ENABLED":
            return 0
        return self._sweep_items(txn, table, setting["attr"], now, budget)

    def _sweep_items(self, txn, table, attr: str, now: float, budget: int) -> int:
        pass_key = _PASS_PREFIX + table.prefix
        state = txn.get("meta", pass_key)
        now_ms = int(now * 1000)
        if state is None:
            started, finished, after = now_ms, 0, None
        else:
            started, finished = _PASS.unpack_from(state)
            after = bytes(state[_PASS.size:]) or None
            if finished:
                if now_ms - started < self.config.sweep_interval_s * 1000:
                    return 0
                started, finished, after = now_ms, 0, None
        start = after + b"\0" if after is not None else table.prefix
        needle = orjson.dumps(attr) + b':{"N":'
        examined = 0
        last = after
        for key, raw in list(_scan_prefix(txn, table.prefix, start, budget)):
            examined += 1
            last = key
            if needle in raw:
                self._expire_one(txn, table, key, raw, attr, now)
        done = examined < budget
        txn.put("meta", pass_key, _PASS.pack(started, 1 if done else 0) + (b"" if done else last or b""))
        return examined

    def _expire_one(self, txn, table, key: bytes, raw: bytes, attr: str, now: float) -> None:
        item = orjson.loads(memoryview(raw)[4:])
        if not expired(item.get(attr), now):
            return
        keys = {table.hash_key: item[table.hash_key]}
        if table.range_key is not None:
            keys[table.range_key] = item[table.range_key]
        write_item(txn, table, key, keys, raw, None, 0, now=now, user_identity=SERVICE_IDENTITY)


def _scan_prefix(txn, prefix: bytes, start: bytes, limit: int):
    """Up to ``limit`` (key, value) pairs of ``items`` from ``start`` while keys
    start with ``prefix``."""
    count = 0
    for key, value in txn.scan("items", start):
        if not key.startswith(prefix) or count >= limit:
            return
        count += 1
        yield bytes(key), bytes(value)
