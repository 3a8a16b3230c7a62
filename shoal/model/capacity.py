"""Consumed capacity, as DynamoDB computes it.

Reads are metered in 4 KB units and writes in 1 KB units, each rounded up, with
at least one unit per request (a GetItem that finds nothing still costs a read).
An eventually consistent read costs half a unit per 4 KB; a transactional read or
write costs twice the standard amount.  Query and Scan meter the sum of the sizes
of the items read in a page and round once, whereas BatchGetItem rounds each item
separately (``batch_read_units``).
"""

from __future__ import annotations

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024


def read_units(size_bytes: int, consistent: bool, *, transactional: bool = False) -> float:
    """Read capacity for reading ``size_bytes`` (one item, or a Query/Scan page)."""
    units = max(1, -(-size_bytes // READ_UNIT_BYTES))
    if transactional:
        return float(units * 2)
    return float(units) if consistent else units / 2


def write_units(size_bytes: int, *, transactional: bool = False) -> float:
    """Write capacity for writing an item of ``size_bytes`` (callers pass the
    larger of the item's size before and after the write)."""
    units = max(1, -(-size_bytes // WRITE_UNIT_BYTES))
    return float(units * 2) if transactional else float(units)


def batch_read_units(sizes, consistent: bool) -> float:
    """Read capacity of a BatchGetItem: each item is rounded up to 4 KB on its
    own before the units are added."""
    units = 0
    for size in sizes:
        units += max(1, -(-size // READ_UNIT_BYTES))
    return float(units) if consistent else units / 2
