"""The linearizability checker of tests/linearizability.py, on histories whose
answer is known: it must accept the linearizable ones and reject the others,
or the consensus tests that rely on it prove nothing."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from tests.linearizability import CAS, FAIL, INFO, OK, READ, WRITE, Operation, check


def w(value, call, ret, status=OK, process=None):
    return Operation(WRITE, value, None, call, ret, status, process)


def r(result, call, ret, status=OK, process=None):
    return Operation(READ, None, result, call, ret, status, process)


def cas(expected, new, swapped, call, ret, status=OK, process=None):
    return Operation(CAS, (expected, new), swapped, call, ret, status, process)


def test_empty_history_is_linearizable():
    assert check([]).ok


def test_sequential_history_in_order():
    history = [w(1, 0, 1), r(1, 2, 3), w(2, 4, 5), r(2, 6, 7)]
    result = check(history)
    assert result.ok
    assert result.order == history


def test_read_of_the_initial_value():
    assert check([r(None, 0, 1)]).ok
    assert check([r("x", 0, 1)], initial="x").ok
    assert not check([r("y", 0, 1)], initial="x").ok


def test_stale_read_after_a_completed_write_is_rejected():
    # The write of 2 returned at 3; a read called at 4 still sees 1.
    history = [w(1, 0, 1), w(2, 2, 3), r(1, 4, 5)]
    result = check(history)
    assert not result.ok
    assert result.order == []


def test_read_concurrent_with_a_write_may_see_either_value():
    assert check([w(1, 0, 1), w(2, 2, 6), r(1, 3, 4)]).ok
    assert check([w(1, 0, 1), w(2, 2, 6), r(2, 3, 4)]).ok


def test_read_of_a_value_never_written_is_rejected():
    assert not check([w(1, 0, 1), r(3, 2, 3)]).ok


def test_two_reads_seeing_concurrent_writes_in_opposite_orders_are_rejected():
    # Writes of 1 and 2 overlap everything; process a reads 1 then 2, process b
    # reads 2 then 1: no single order of the two writes explains both.
    history = [
        w(1, 0, 10, process="w1"), w(2, 0, 10, process="w2"),
        r(1, 1, 2, process="a"), r(2, 3, 4, process="a"),
        r(2, 1, 2, process="b"), r(1, 3, 4, process="b"),
    ]
    assert not check(history).ok
    # One reader alone seeing them in either order is fine.
    assert check(history[:4]).ok
    assert check(history[:2] + history[4:]).ok


def test_lost_acknowledged_write_is_rejected():
    # Write 2 was acknowledged at 3, then every later read sees 1 again.
    history = [w(1, 0, 1), w(2, 2, 3), r(2, 4, 5), r(1, 6, 7)]
    assert not check(history).ok


def test_failed_operation_never_took_effect():
    # A write that failed for certain cannot explain a read of its value...
    assert not check([w(1, 0, 1), w(2, 2, 3, FAIL), r(2, 4, 5)]).ok
    # ...and is simply left out otherwise.
    assert check([w(1, 0, 1), w(2, 2, 3, FAIL), r(1, 4, 5)]).ok


def test_unknown_outcome_may_take_effect_later_or_never():
    timeout = w(2, 2, 3, INFO)
    assert check([w(1, 0, 1), timeout, r(1, 4, 5)]).ok  # never
    assert check([w(1, 0, 1), timeout, r(2, 4, 5)]).ok  # before the read
    assert check([w(1, 0, 1), timeout, r(1, 4, 5), r(2, 6, 7)]).ok  # long after its timeout
    # But once seen, it cannot be unseen...
    assert not check([w(1, 0, 1), timeout, r(2, 4, 5), r(1, 6, 7)]).ok
    # ...nor take effect before it was called.
    assert not check([w(1, 0, 1), r(2, 1.5, 1.8), timeout]).ok


def test_unknown_reads_are_left_out():
    # Forty reads that timed out around a non-linearizable core: refuted at once.
    history = [r(None, 0, 50, INFO) for _ in range(40)] + [w(1, 0, 1), w(2, 2, 3), r(1, 4, 5)]
    assert not check(history).ok
    assert check(history[:-1]).ok


def test_unknown_write_takes_effect_once():
    # It may land between the two reads, but then it cannot be undone by
    # anything but a later write.
    history = [w(1, 0, 1), w(2, 2, 3, INFO), r(2, 4, 5), w(3, 6, 7), r(3, 8, 9), r(2, 10, 11)]
    assert not check(history).ok


def test_compare_and_set():
    assert check([w(1, 0, 1), cas(1, 2, True, 2, 3), r(2, 4, 5)]).ok
    assert check([w(1, 0, 1), cas(5, 2, False, 2, 3), r(1, 4, 5)]).ok
    # A cas that claims to have swapped against a value that was not there.
    assert not check([w(1, 0, 1), cas(5, 2, True, 2, 3)]).ok
    # A cas that claims it did not swap although the value matched, with nothing concurrent.
    assert not check([w(1, 0, 1), cas(1, 2, False, 2, 3)]).ok
    # Two concurrent cas from the same value: both cannot win.
    assert not check([w(0, 0, 1), cas(0, 1, True, 2, 5), cas(0, 2, True, 2, 5)]).ok
    assert check([w(0, 0, 1), cas(0, 1, True, 2, 5), cas(0, 2, False, 2, 5), r(1, 6, 7)]).ok


def test_unknown_cas_can_explain_a_later_value():
    assert check([w(0, 0, 1), cas(0, 7, None, 2, 3, INFO), r(7, 4, 5)]).ok
    # Only from the value it expects.
    assert not check([w(0, 0, 1), cas(3, 7, None, 2, 3, INFO), r(7, 4, 5)]).ok


def test_equal_times_are_concurrent():
    # The read is called at the instant the write returns: either order.
    assert check([w(1, 0, 1), w(2, 0, 2), r(1, 2, 3)]).ok


def test_operation_returning_before_its_call_is_refused():
    with pytest.raises(ValueError):
        w(1, 5, 4)
    with pytest.raises(ValueError):
        Operation("append")


def test_counterexample_reports_how_far_the_search_got():
    result = check([w(1, 0, 1), w(2, 2, 3), r(1, 4, 5)])
    assert not result.ok
    assert [op.value for op in result.deepest] == [1, 2]


def _sequential_model(ops):
    state = None
    for op in ops:
        if op.kind == WRITE:
            state = op.value
        elif op.kind == READ:
            yield op, state
            continue
        else:
            expected, new = op.value
            swapped = state == expected
            state = new if swapped else state
            yield op, swapped
            continue
        yield op, None


@pytest.mark.parametrize("seed", range(30))
def test_random_linearizable_histories_are_accepted(seed):
    """Histories made by running operations atomically at random instants
    inside random intervals are linearizable by construction."""
    rng = random.Random(seed)
    points = []
    for i in range(40):
        kind = rng.choice([WRITE, READ, READ, CAS])
        value = rng.randrange(4) if kind == WRITE else (rng.randrange(4), rng.randrange(4)) if kind == CAS else None
        point = rng.uniform(0, 100)
        points.append((point, i, kind, value))
    points.sort()
    raw = [Operation(kind, value) for _, _, kind, value in points]
    results = dict(((id(op), res) for op, res in _sequential_model(raw)))
    history = []
    for (point, _, kind, value), op in zip(points, raw):
        call = point - rng.uniform(0, 10)
        ret = point + rng.uniform(0, 10)
        status = rng.choice([OK] * 8 + [INFO])
        history.append(Operation(kind, value, results.get(id(op)) if status == OK else None, call, ret, status))
    rng.shuffle(history)
    assert check(history).ok


@pytest.mark.parametrize("seed", range(30))
def test_random_histories_with_a_corrupted_read_are_rejected(seed):
    """A sequential history (no overlap) with one read changed to a value
    never written is never linearizable."""
    rng = random.Random(seed)
    raw = [Operation(rng.choice([WRITE, READ]), rng.randrange(5)) for _ in range(30)]
    history = []
    t = 0
    for op, result in _sequential_model(raw):
        history.append(Operation(op.kind, op.value if op.kind == WRITE else None, result, t, t + 1))
        t += 2
    reads = [i for i, op in enumerate(history) if op.kind == READ]
    if not reads:
        return
    i = rng.choice(reads)
    history[i] = Operation(READ, None, 99, history[i].call, history[i].ret)
    assert not check(history).ok


def test_many_concurrent_writes_stay_fast_through_memoization():
    """Twelve writes all concurrent, then a read of each value in turn:
    without memoization this explores 12! orders."""
    history = [w(i, 0, 100) for i in range(12)]
    history += [r(11, 101, 102)]
    assert check(history).ok
    history += [r(3, 103, 104)]
    assert not check(history).ok


def test_brute_force_agrees_on_small_random_histories():
    """On small random histories, the search agrees with trying every order."""
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randrange(1, 6)
        history = []
        for _ in range(n):
            kind = rng.choice([WRITE, READ, CAS])
            call = rng.randrange(10)
            ret = call + rng.randrange(1, 6)
            status = rng.choice([OK, OK, OK, INFO])
            value = rng.randrange(3) if kind == WRITE else (rng.randrange(3), rng.randrange(3)) if kind == CAS else None
            result = rng.randrange(3) if kind == READ else rng.choice([True, False]) if kind == CAS else None
            history.append(Operation(kind, value, result if status == OK else None, call, ret, status))
        assert check(history, initial=0).ok == _brute_force(history, 0), history


def _brute_force(history, initial):
    ok_ops = [op for op in history if op.status == OK]
    info_ops = [op for op in history if op.status == INFO]
    for k in range(len(info_ops) + 1):
        for chosen in itertools.combinations(info_ops, k):
            ops = ok_ops + list(chosen)
            for order in itertools.permutations(ops):
                if _respects_real_time(order) and _legal(order, initial):
                    return True
    return False


def _respects_real_time(order):
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            b_ret = b.ret if b.status == OK else math.inf
            if b_ret < a.call:
                return False
    return True


def _legal(order, state):
    for op in order:
        if op.kind == WRITE:
            state = op.value
        elif op.kind == READ:
            if op.status == OK and op.result != state:
                return False
        else:
            expected, new = op.value
            swapped = state == expected
            if op.status == OK and op.result != swapped:
                return False
            if swapped:
                state = new
    return True
