"""Settings read once from the environment at start-up.

Background work (stream shards, TTL sweeps, trigger delivery) has DynamoDB-like
timings that tests need to shorten; each module declares its settings as a
dataclass with defaults and the ``SHOAL_*`` variable of each field.
"""

from __future__ import annotations

import dataclasses
import os


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
