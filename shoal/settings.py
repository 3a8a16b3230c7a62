"""Settings read once from the environment at start-up.

Background work (stream shards, TTL sweeps, trigger delivery) has DynamoDB-like
timings that tests need to shorten; each module declares its settings as a
dataclass with defaults and the ``SHOAL_*`` variable of each field.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

CLOCK_FILE_ENV = "SHOAL_TEST_CLOCK_FILE"


def from_env(cls, variables: dict[str, str]):
    """An instance of the dataclass ``cls``: each field in ``variables`` is read
    from its environment variable (converted to the field default's type),
    the others keep their defaults."""
    values = {}
    for field in dataclasses.fields(cls):
        name = variables.get(field.name)
        if name is not None and name in os.environ:
            values[field.name] = type(field.default)(os.environ[name])
    return cls(**values)


def backoff(first_s: float, most_s: float, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th consecutive failure: ``first_s``
    doubled per failure after the first, at most ``most_s`` (deliveries' retries)."""
    return min(most_s, first_s * 2 ** min(max(attempts - 1, 0), 32))


def request_clock() -> Callable[[], float]:
    """The clock operations read (``Context.now``): ``time.time``, unless
    ``SHOAL_TEST_CLOCK_FILE`` names a file, whose content (seconds, a float;
    empty or missing means 0) is then added to it on every call.  It exists so
    that tests of a running server can move its time forward (stream
    retention, iterator expiry) instead of sleeping; leave it unset otherwise."""
    path = os.environ.get(CLOCK_FILE_ENV)
    if not path:
        return time.time

    def now() -> float:
        try:
            with open(path) as file:
                offset = float(file.read().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return time.time() + offset

    return now
