"""A linearizability checker for histories of one register.

A history is a list of ``Operation``: what a client asked (``write(v)``,
``read()``, ``cas(expected, new)``), when it asked (``call``) and when it got
its answer (``ret``), and how it ended:

* ``ok``: it completed with ``result`` (the value read; for cas, whether it
  swapped; for write, nothing);
* ``fail``: it certainly did not take effect (it is left out);
* ``info``: the outcome is unknown (a timeout): it may have taken effect at
  any moment after its call, even after the history ends, or never.

The history is linearizable if the operations can be put in one order that
respects real time (an operation that returned before another was called
comes first) and in which every ``ok`` operation's result is what a single
register starting at ``initial`` would give.  Operations whose times are
equal count as concurrent.

The search is Wing and Gong's (1993): repeatedly pick an operation that is
minimal in real time among those not yet placed (its call is before every
unplaced operation's return), apply it to the model, and backtrack when an
unplaced operation's return is reached without it having been placed.
Lowe's improvement (2017, also in Knossos and Porcupine) memoizes each
(set of placed operations, model state) reached, so a configuration reached
by another path is not explored twice; that turns the search from
factorial into, in practice, linear in the history for the histories a
register service produces.  An ``info`` operation's return is at infinity:
it can be placed anywhere after its call, and the search succeeds once
every ``ok`` operation is placed (the unplaced ``info`` ones are taken to
come after the end, where they change nothing anyone saw).

Cost: each ``info`` write or cas stays a candidate until the end, so a
history that is *not* linearizable and has k of them may take 2^k steps
to refute (Knossos has the same limit).  Keep histories per key and the
timeouts few; ``info`` reads cost nothing (they are dropped).
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any, Hashable

WRITE, READ, CAS = "write", "read", "cas"
OK, FAIL, INFO = "ok", "fail", "info"


@dataclass(frozen=True)
class Operation:
    """One client operation.  ``value``: the written value (write) or
    ``(expected, new)`` (cas); ``result``: the value read, or for cas whether
    it swapped; ``status``: ok, fail or info (see the module docstring)."""

    kind: str
    value: Any = None
    result: Any = None
    call: float = 0.0
    ret: float = math.inf
    status: str = OK
    process: Hashable = None

    def __post_init__(self):
        if self.kind not in (WRITE, READ, CAS):
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.status not in (OK, FAIL, INFO):
            raise ValueError(f"unknown status {self.status!r}")
        if self.status == OK and self.ret < self.call:
            raise ValueError(f"returns before its call: {self}")


@dataclass
class Result:
    """``ok``: linearizable.  ``order``: a linearization (when ok; the info
    operations it placed included).  ``deepest``: the longest prefix of one
    the search built (when not ok), to see where it went wrong."""

    ok: bool
    order: list[Operation] = field(default_factory=list)
    deepest: list[Operation] = field(default_factory=list)


def step(state, op: Operation) -> tuple[bool, Any]:
    """The register: whether ``op`` may happen in ``state``, and the state after."""
    known = op.status == OK
    if op.kind == WRITE:
        return True, op.value
    if op.kind == READ:
        return (not known or op.result == state), state
    expected, new = op.value
    swapped = state == expected
    if known and op.result != swapped:
        return False, state
    return True, new if swapped else state


class _Entry:
    """A call or a return in the doubly linked list of events."""

    __slots__ = ("index", "is_call", "match", "prev", "next")

    def __init__(self, index: int, is_call: bool) -> None:
        self.index = index
        self.is_call = is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _lift(entry: _Entry) -> None:
    """Unlink a call and its return (the operation is placed)."""
    for node in (entry, entry.match):
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(entry: _Entry) -> None:
    """Put them back, the return first (the reverse of ``_lift``)."""
    for node in (entry.match, entry):
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


def check(history: list[Operation], initial=None) -> Result:
    """Whether ``history`` (operations of one register) is linearizable."""
    # A failed operation did not happen; a read of unknown outcome constrains
    # nothing and changes nothing: both are left out of the search.
    ops = [op for op in history if op.status != FAIL and not (op.status == INFO and op.kind == READ)]
    events = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        # Returns after calls at equal times: those operations are concurrent.
        events.append((op.ret if op.status == OK else math.inf, 1, i))
    events.sort()
    head = _Entry(-1, False)
    calls: dict[int, _Entry] = {}
    last = head
    for _, kind, i in events:
        entry = _Entry(i, kind == 0)
        if entry.is_call:
            calls[i] = entry
        else:
            calls[i].match = entry
        last.next, entry.prev = entry, last
        last = entry

    required = 0
    for i, op in enumerate(ops):
        if op.status == OK:
            required |= 1 << i
    placed = 0
    state = initial
    stack: list[tuple[_Entry, Any]] = []
    seen: set[tuple[int, Any]] = set()
    deepest: list[int] = []
    entry = head.next
    while placed & required != required:
        if entry is None:  # only info returns left behind the last placed op
            break
        if entry.is_call:
            allowed, after = step(state, ops[entry.index])
            if allowed:
                now = placed | (1 << entry.index)
                if (now, after) not in seen:
                    seen.add((now, after))
                    stack.append((entry, state))
                    placed, state = now, after
                    _lift(entry)
                    if len(stack) > len(deepest):
                        deepest = [e.index for e, _ in stack]
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # An operation returned without being placed: undo the last choice.
            if not stack:
                return Result(False, deepest=[ops[i] for i in deepest])
            entry, state = stack.pop()
            placed &= ~(1 << entry.index)
            _unlift(entry)
            entry = entry.next
    if placed & required != required:
        return Result(False, deepest=[ops[i] for i in deepest])
    return Result(True, order=[ops[e.index] for e, _ in stack])
