"""On-demand throughput: no fixed capacity, but DynamoDB's scaling rules.

What the on-demand guide documents ("Initial throughput and scaling
properties", "Pre-warming a table for on-demand capacity mode"):

- a new on-demand table serves up to 4,000 write and 12,000 read units a
  second at once (what DescribeTable reports as its WarmThroughput; a GSI
  the same);
- traffic up to double the previous peak is served at once, and a peak
  the table sustained becomes its previous peak, so traffic may keep
  doubling; but throttling can occur when traffic exceeds double the
  previous peak within 30 minutes;
- a WarmThroughput set with CreateTable or UpdateTable is what the table
  can serve at once from then on (pre-warming);
- OnDemandThroughput's MaxReadRequestUnits and MaxWriteRequestUnits cap
  the table or index whatever its peak.

Shoal's model of it, per table or GSI and per kind (read, write): the units
granted are measured over windows of ``window_s`` (60 s: a sustained rate,
not one second's spike); the highest rate above the previous peak becomes
the previous peak ``scale_s`` (1,800 s) after the window it was first
reached in, so a peak can double once per 30 minutes; the rate served at
once is ``ceiling(warm, peak)`` = max(warm throughput, 2 x previous peak),
capped by the maximum.  Traffic held above the ceiling is served at the
ceiling, which then becomes the next peak: the ceiling doubles every 30
minutes under such pressure, as DynamoDB's table does while it splits
partitions.  A peak never decays (DynamoDB: "Once your on-demand table is
scaled out, you can instantly achieve the same throughput again").

A throttle is ThrottlingException (the error DynamoDB's error handling
page gives for on-demand tables' data plane), with the reason
``<Table|Index><Read|Write>KeyRangeThroughputExceeded`` when the peak rule
refuses (DynamoDB's partitions have not yet split for the traffic) and
``...MaxOnDemandThroughputExceeded`` when the maximum does, with the
message of each.

The four numbers are settable for tests (SHOAL_ON_DEMAND_READ_UNITS,
SHOAL_ON_DEMAND_WRITE_UNITS, SHOAL_ON_DEMAND_WINDOW_S,
SHOAL_ON_DEMAND_SCALE_S), as a server can serve neither 4,000 writes a
second nor wait 30 minutes in a test.

The account's per-table quota.  An on-demand table or GSI without a
maximum is still bounded by the table-level quota DescribeLimits reports
(40,000 read and 40,000 write request units a second): the Developer
Guide's "DynamoDB maximum throughput for on-demand tables" ("bounded by
40,000 table-level read and write throughput AWS service quota") and its
throttling guide ("the default per-table account limits automatically apply
when tables do not have custom maximum throughput settings configured").
Past it DynamoDB answers RequestLimitExceeded, with the error handling
page's message and the reason ``<Table|Index><Read|Write>AccountLimitExceeded``
on the table's or index's ARN (the API Reference's ThrottlingReason).  Here
the quota acts as the maximum of a part that has none (``maximum``);
``SHOAL_TABLE_QUOTA_RCU`` and ``SHOAL_TABLE_QUOTA_WCU`` lower it for tests
(``table_quota``), and only then is a plain on-demand table worth sending
through the capacity hook (``quota_lowered``): no Shoal server serves 40,000
units a second to one table.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from shoal.errors import ProvisionedThroughputExceededException, ShoalError

#: DynamoDB's words for each refusal (its error handling page; the throttling guide's example for the maximum).
PEAK_MESSAGE = "Rate of requests exceeds the allowed throughput."
MAX_MESSAGE = "Throughput exceeds the maximum OnDemandThroughput configured on table or index"
ACCOUNT_MESSAGE = ("Throughput exceeds the current throughput limit for your account. To request a limit increase, "
                   "contact AWS Support at https://aws.amazon.com/support.")

#: DynamoDB's default table-level quota (DescribeLimits' TableMaxRead/WriteCapacityUnits).
TABLE_QUOTA = 40000.0
QUOTA_ENV = {"read": "SHOAL_TABLE_QUOTA_RCU", "write": "SHOAL_TABLE_QUOTA_WCU"}

#: The peak state kept beside a bucket: previous peak, pending peak, when the pending one was
#: first reached, the current window's start, and the units granted in all at that start.
STATE = struct.Struct("<ddddd")
EMPTY = (0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class OnDemandRules:
    """The four numbers of the model (see the module's docstring)."""

    read_units: float = 12000.0
    write_units: float = 4000.0
    window_s: float = 60.0
    scale_s: float = 1800.0

    @classmethod
    def from_environment(cls) -> "OnDemandRules":
        get = lambda name, default: float(os.environ.get(name, default))  # noqa: E731
        return cls(get("SHOAL_ON_DEMAND_READ_UNITS", cls.read_units),
                   get("SHOAL_ON_DEMAND_WRITE_UNITS", cls.write_units),
                   get("SHOAL_ON_DEMAND_WINDOW_S", cls.window_s), get("SHOAL_ON_DEMAND_SCALE_S", cls.scale_s))


def table_quota(kind: str) -> float:
    """The per-table quota of ``kind`` ("read" or "write") in request units a
    second: DynamoDB's 40,000, or what ``SHOAL_TABLE_QUOTA_RCU`` / ``_WCU`` set
    (a positive number; anything else is a start-up error worth seeing, so it raises)."""
    raw = os.environ.get(QUOTA_ENV[kind])
    if raw is None:
        return TABLE_QUOTA
    value = float(raw)
    if not value > 0:
        raise ValueError(f"{QUOTA_ENV[kind]} must be a positive number of units a second, not {raw!r}")
    return value


def quota_lowered() -> bool:
    """Whether a test lowered the table quota below DynamoDB's: only then can
    a plain on-demand table reach it on a Shoal server."""
    return table_quota("read") < TABLE_QUOTA or table_quota("write") < TABLE_QUOTA


def maximum(configured, kind: str, resource_kind: str) -> tuple[float, str, bool]:
    """(the rate cap of an on-demand table's or GSI's reads or writes, the
    throttling reason when the cap refuses, whether the cap is the account's
    quota): its OnDemandThroughput maximum (``configured``; None or -1 for
    none) if it has one, else the table quota.  ``resource_kind`` is "Table"
    or "Index", ``kind`` "read" or "write"."""
    label = "Read" if kind == "read" else "Write"
    if configured is not None and configured > 0:
        return float(configured), f"{resource_kind}{label}MaxOnDemandThroughputExceeded", False
    return table_quota(kind), f"{resource_kind}{label}AccountLimitExceeded", True


def advance(state: tuple, taken: float, now: float, rules: OnDemandRules, served: float) -> tuple:
    """The peak state after the bucket has granted ``taken`` units in all
    by ``now``: a window that has ended measures a rate, which may start a
    pending peak or raise one; a pending peak ``scale_s`` old becomes the
    previous peak.  The rate counts at most ``served``, the bucket's rate:
    its one second of burst is not a peak the table sustained."""
    peak, pending, since, start, base = state
    if start == 0.0:
        return peak, pending, since, now, taken
    if now - start >= rules.window_s:
        rate = min((taken - base) / (now - start), served)
        if rate > peak:
            if pending == 0.0:
                pending, since = rate, start
            elif rate > pending:
                pending = rate
        start, base = now, taken
    if pending and now - since >= rules.scale_s:
        peak, pending, since = max(peak, pending), 0.0, 0.0
    return peak, pending, since, start, base


def ceiling(warm: float, peak: float) -> float:
    """The rate served at once: the warm throughput, or double the previous peak when higher."""
    return max(warm, 2.0 * peak)


class OnDemandThrottlingException(ProvisionedThroughputExceededException):
    """DynamoDB's ThrottlingException for an on-demand table's data plane,
    its reasons in the member its model names ``throttlingReasons``.  A
    subclass of ProvisionedThroughputExceededException only so that the
    batches, which answer a throttled table's part unprocessed
    (``shoal.api.batch``), take either."""

    type_name = "ThrottlingException"

    def to_body(self) -> dict:
        body = ShoalError.to_body(self)
        if self.reasons:
            body["throttlingReasons"] = self.reasons
        return body


class AccountLimitExceeded(ProvisionedThroughputExceededException):
    """DynamoDB's RequestLimitExceeded: an on-demand table or GSI over the
    account's per-table quota, its reasons in ``ThrottlingReasons`` (as the
    model names them for this error).  A subclass of
    ProvisionedThroughputExceededException for the batches, as above."""

    type_name = "RequestLimitExceeded"

    def __init__(self, reasons: list) -> None:
        super().__init__(ACCOUNT_MESSAGE, reasons)
