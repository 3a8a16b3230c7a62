"""The control plane's request rate: DynamoDB's one documented number.

What DynamoDB documents: "a control plane throttle limit of 2,500 requests
per second with the option for a retry" (Best practices for managing the
control plane), the control plane being CreateTable, DescribeTable,
ListTables, UpdateTable and DeleteTable (How it works: the DynamoDB API);
a request over it is ThrottlingException, "Rate of requests exceeds the
allowed throughput", which "might be returned if you perform control plane
API operations too rapidly" (Error handling with DynamoDB).  Shoal counts
those five operations per account and region in one bucket shared by the
workers (``SharedBuckets``), refilled at 2,500 a second and holding one
second of it.

What it does not limit, for want of a documented number: the 500 table
operations in progress at once (LimitExceededException, not a throttle; a
Shoal table change is done at once, so none stays in progress), and
DescribeLimits ("you can expect throttling errors if you call it more than
once in a minute": a warning, not a limit, and one a test suite calling it
twice would meet).  ``SHOAL_CONTROL_PLANE_RATE`` lowers the rate for tests.
"""

from __future__ import annotations

import os

from shoal.capacity.on_demand import PEAK_MESSAGE
from shoal.errors import ShoalError

ENV = "SHOAL_CONTROL_PLANE_RATE"
RATE = 2500.0  # requests a second, per account and region
OPERATIONS = frozenset({"CreateTable", "DescribeTable", "ListTables", "UpdateTable", "DeleteTable"})


def rate_from_environment() -> float:
    return float(os.environ.get(ENV, RATE))


class ControlPlaneThrottlingException(ShoalError):
    """ThrottlingException for the control plane: no ThrottlingReasons (they
    name a table's or index's reads or writes, which a control-plane request
    is not)."""

    type_name = "ThrottlingException"
    status = 400

    def __init__(self) -> None:
        super().__init__(PEAK_MESSAGE)
