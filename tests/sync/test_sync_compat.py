"""The sync side is threading's: the same calls give the same results and messages.

Each case runs once against ``threading`` and once against plait's primitives and the
two outcomes (value, or exception type and message) must match.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from typing import Any

import pytest
from _sync_helpers import outcome

import plait._sync as psync

PLAIT = types.SimpleNamespace(
    Lock=psync.Lock,
    RLock=psync.RLock,
    Condition=psync.Condition,
    Semaphore=psync.Semaphore,
    BoundedSemaphore=psync.BoundedSemaphore,
    Event=psync.Event,
    Barrier=psync.Barrier,
    BrokenBarrierError=psync.BrokenBarrierError,
)


def _locked(m: Any, cls: str) -> Any:
    lock = getattr(m, cls)()
    lock.acquire()
    return lock


def _acquire_other_thread(lock: Any, *args: Any) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(outcome(lambda: lock.acquire(*args))))
    thread.start()
    thread.join()
    return result[0]


def _release_other_thread(lock: Any) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(outcome(lock.release)))
    thread.start()
    thread.join()
    return result[0], lock.locked() if hasattr(lock, "locked") else None


def _semaphore_seq(m: Any) -> Any:
    s = m.Semaphore(2)
    out = [s.acquire(), s.acquire(False), s.acquire(False), s.acquire(timeout=0.01)]
    s.release(2)
    out += [s.acquire(blocking=False), s.acquire(True, 0), s.acquire(True, 0)]
    return out


def _bounded_seq(m: Any) -> Any:
    s = m.BoundedSemaphore(2)
    s.acquire()
    s.release()
    return outcome(s.release)


def _bounded_release_n(m: Any) -> Any:
    s = m.BoundedSemaphore(3)
    s.acquire()
    s.acquire()
    return outcome(lambda: s.release(3)), outcome(lambda: s.release(2))


def _rlock_depth(m: Any) -> Any:
    r = m.RLock()
    out = [r.acquire(), r.acquire(False), r.acquire(True, 0.01)]
    r.release()
    r.release()
    out.append(_acquire_other_thread(r, False))
    r.release()
    out.append(_acquire_other_thread(r, False))
    out.append(outcome(r.release))
    return out


def _cond_wait_poll(m: Any) -> Any:
    c = m.Condition(m.Lock())
    with c:
        return (
            c.wait(0),
            c.wait(-1),
            c.wait(0.01),
            c.wait_for(lambda: 5),
            c.wait_for(lambda: 0, 0.01),
        )


def _cond_rlock_nested(m: Any) -> Any:
    c = m.Condition()
    with c, c:
        return c.wait(0.01)


def _event_seq(m: Any) -> Any:
    e = m.Event()
    out = [e.is_set(), e.wait(0), e.wait(-1), e.wait(0.01)]
    e.set()
    out += [e.is_set(), e.wait(), e.wait(0), e.wait(-5)]
    e.clear()
    out += [e.is_set(), e.wait(0.001)]
    return out


def _barrier_one(m: Any) -> Any:
    b = m.Barrier(1)
    return b.wait(), b.wait(), b.parties, b.n_waiting, b.broken


def _barrier_timeout(m: Any) -> Any:
    b = m.Barrier(2, timeout=0.01)
    first = outcome(b.wait)
    return first, b.broken, outcome(b.wait), outcome(b.reset), b.broken, b.n_waiting


def _barrier_abort(m: Any) -> Any:
    b = m.Barrier(3)
    b.abort()
    return b.broken, outcome(lambda: b.wait(1))


def _barrier_action_raises(m: Any) -> Any:
    def action() -> None:
        raise KeyError("boom")

    b = m.Barrier(1, action=action)
    return outcome(b.wait), b.broken


def _sem_above_initial(m: Any) -> Any:
    s = m.Semaphore(0)
    return s.release(3), s.acquire(False)


def _cond_str_timeout(m: Any) -> Any:
    c = m.Condition()
    c.acquire()
    return c.wait("x")


CASES: dict[str, Callable[[Any], Any]] = {
    "lock-acquire-nonblocking-timeout": lambda m: m.Lock().acquire(False, 1),
    "lock-acquire-negative-timeout": lambda m: m.Lock().acquire(True, -2),
    "lock-acquire-str-timeout": lambda m: m.Lock().acquire(True, "x"),
    "lock-acquire-str-blocking": lambda m: m.Lock().acquire(blocking="x"),
    "lock-acquire-huge-timeout": lambda m: m.Lock().acquire(timeout=1e20),
    "lock-acquire-kw": lambda m: m.Lock().acquire(blocking=True, timeout=1.5),
    "lock-acquire-float-blocking": lambda m: m.Lock().acquire(0.0),
    "lock-release-unlocked": lambda m: m.Lock().release(),
    "lock-locked": lambda m: (m.Lock().locked(), _locked(m, "Lock").locked()),
    "lock-try-held": lambda m: _locked(m, "Lock").acquire(False),
    "lock-timeout-held": lambda m: _locked(m, "Lock").acquire(True, 0.01),
    "lock-zero-timeout-held": lambda m: _locked(m, "Lock").acquire(timeout=0),
    "lock-held-invalid-args": lambda m: _locked(m, "Lock").acquire(False, 0),
    "lock-other-thread-tries": lambda m: _acquire_other_thread(_locked(m, "Lock"), False),
    "lock-release-by-other-thread": lambda m: _release_other_thread(_locked(m, "Lock")),
    "lock-with-returns": lambda m: m.Lock().__enter__(),
    "rlock-release-unowned": lambda m: m.RLock().release(),
    "rlock-acquire-nonblocking-timeout": lambda m: m.RLock().acquire(False, 1),
    "rlock-acquire-negative-timeout": lambda m: m.RLock().acquire(True, -2),
    "rlock-owned-invalid-args": lambda m: _locked(m, "RLock").acquire(False, 1),
    "rlock-depth": _rlock_depth,
    "rlock-release-by-other-thread": lambda m: _release_other_thread(_locked(m, "RLock"))[0],
    "sem-negative": lambda m: m.Semaphore(-1),
    "sem-nonblocking-timeout": lambda m: m.Semaphore(0).acquire(False, 1),
    "sem-nonblocking-timeout-free": lambda m: m.Semaphore(1).acquire(False, 1),
    "sem-negative-timeout": lambda m: m.Semaphore(0).acquire(timeout=-1),
    "sem-str-timeout-empty": lambda m: m.Semaphore(0).acquire(timeout="x"),
    "sem-str-timeout-free": lambda m: m.Semaphore(1).acquire(timeout="x"),
    "sem-release-zero": lambda m: m.Semaphore(1).release(0),
    "sem-seq": _semaphore_seq,
    "sem-release-above-initial": _sem_above_initial,
    "bounded-negative": lambda m: m.BoundedSemaphore(-1),
    "bounded-too-many": _bounded_seq,
    "bounded-release-n": _bounded_release_n,
    "cond-wait-unowned": lambda m: m.Condition(m.Lock()).wait(),
    "cond-notify-unowned": lambda m: m.Condition(m.Lock()).notify(),
    "cond-notify-all-unowned": lambda m: m.Condition().notify_all(),
    "cond-wait-rlock-unowned": lambda m: m.Condition().wait(0),
    "cond-wait-poll": _cond_wait_poll,
    "cond-rlock-nested": _cond_rlock_nested,
    "cond-wait-str-timeout": _cond_str_timeout,
    "event-seq": _event_seq,
    "event-str-timeout": lambda m: m.Event().wait("x"),
    "barrier-one": _barrier_one,
    "barrier-timeout": _barrier_timeout,
    "barrier-abort": _barrier_abort,
    "barrier-action-raises": _barrier_action_raises,
    "barrier-negative-timeout": lambda m: m.Barrier(1, timeout=-1).wait(),
}


# A timeout that is not a number: threading fails on a comparison deep inside (or, for a
# free Semaphore, accepts it); plait says what was wrong at the call (README, "Bad input").
CLEARER = {
    "lock-acquire-str-timeout",
    "sem-str-timeout-empty",
    "sem-str-timeout-free",
    "cond-wait-str-timeout",
    "event-str-timeout",
}


@pytest.mark.parametrize("name", sorted(set(CASES) - CLEARER))
def test_same_as_threading(name: str) -> None:
    case = CASES[name]
    expected = outcome(lambda: case(threading))
    got = outcome(lambda: case(PLAIT))
    assert got == expected


@pytest.mark.parametrize("name", sorted(CLEARER))
def test_a_timeout_that_is_no_number_gets_a_clear_type_error(name: str) -> None:
    expected = outcome(lambda: CASES[name](threading))
    assert expected[0] == "raise" or name == "sem-str-timeout-free"  # threading accepts that one
    with pytest.raises(TypeError, match=r"number of seconds.*'x'"):
        CASES[name](PLAIT)


def test_barrier_needs_a_party() -> None:
    # threading 3.11/3.12 accept Barrier(0) and then hang in wait(); 3.13 raises this.
    with pytest.raises(ValueError, match="parties must be >= 1"):
        psync.Barrier(0)
    with pytest.raises(ValueError, match="parties must be >= 1"):
        psync.Barrier(-1)


def test_broken_barrier_error_is_both_kinds() -> None:
    import asyncio

    assert issubclass(psync.BrokenBarrierError, threading.BrokenBarrierError)
    assert issubclass(psync.BrokenBarrierError, asyncio.BrokenBarrierError)


def test_deprecated_aliases_warn_like_threading() -> None:
    with pytest.warns(DeprecationWarning, match="isSet"):
        assert psync.Event().isSet() is False
    c = psync.Condition()
    with c, pytest.warns(DeprecationWarning, match="notifyAll"):
        c.notifyAll()


def test_condition_over_a_threading_lock() -> None:
    c = psync.Condition(threading.Lock())
    with c:
        assert c.wait(0.001) is False
    with pytest.raises(TypeError, match="need a plait lock"):
        c.async_wait()


def test_threading_condition_over_a_plait_lock() -> None:
    c = threading.Condition(psync.Lock())
    with c:
        assert c.wait(0.001) is False
    c2 = threading.Condition(psync.RLock())
    with c2:
        assert c2.wait(0.001) is False
