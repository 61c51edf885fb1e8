"""Bad input to the kernel, task and primitive calls: a clear error at the call, nothing lost.

One table: (call, bad value, expected error). Every timeout follows one rule
(``plait._core.check_timeout``): ``None`` or ``math.inf`` is no limit, a real number >= 0
is seconds; a non-number is a ``TypeError``, NaN or a negative number a ``ValueError``.
The README's bad-input table lists the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import plait
from plait.testing import wait_parked

NAN = math.nan


def _spawn(**kwargs: Any) -> Callable[[Any], Any]:
    """``spawn(int, **kwargs)`` with the bad value: the error spawn raises, not the group's."""

    def call(value: Any) -> Any:
        return _in_group(lambda tg: tg.spawn(int, **dict.fromkeys(kwargs, value)))

    return call


def _in_group(body: Callable[[Any], Any]) -> Any:
    error: BaseException | None = None
    with plait.TaskGroup() as tg:
        try:
            return body(tg)
        except BaseException as exc:
            error = exc
    assert error is not None
    raise error


def _done_task() -> Any:
    with plait.TaskGroup() as tg:
        task = tg.spawn(int)
    return task


def _enter(make: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Build the scope *and* enter it."""

    def call(value: Any) -> Any:
        with make(value):
            pass

    return call


def _cond_wait(value: Any) -> Any:
    cond = plait.Condition()
    with cond:
        return cond.wait(value)


def _xfail(reason: str, *, run: bool = True) -> Any:
    """A row another area's code does not meet yet (strict: it must start failing loudly)."""
    return pytest.mark.xfail(strict=True, reason=reason, run=run)


_NO_CHECK = "does not validate its timeout with plait._core.check_timeout"

# (id, call taking the bad value, bad value, expected error, words the message must hold)
TABLE: list[Any] = [
    # -- kernel: scopes, sleep, instruments, run -----------------------------------------
    ("move_on_after-str", plait.move_on_after, "1", TypeError, "seconds"),
    ("move_on_after-nan", plait.move_on_after, NAN, ValueError, "NaN"),
    ("move_on_after-negative", plait.move_on_after, -1, ValueError, "non-negative"),
    ("move_on_after-bool", plait.move_on_after, True, TypeError, "seconds"),
    ("fail_after-str", plait.fail_after, "soon", TypeError, "seconds"),
    ("fail_after-nan", plait.fail_after, NAN, ValueError, "NaN"),
    ("fail_after-negative", plait.fail_after, -0.5, ValueError, "non-negative"),
    ("fail_at-str", plait.fail_at, "x", TypeError, "monotonic"),
    ("fail_at-nan", plait.fail_at, NAN, ValueError, "NaN"),
    ("move_on_at-none", plait.move_on_at, None, TypeError, "monotonic"),
    ("move_on_at-nan", _enter(plait.move_on_at), NAN, ValueError, "NaN"),
    ("CancelScope-deadline-str", lambda v: plait.CancelScope(deadline=v), "x", TypeError, "dead"),
    ("sleep-str", plait.sleep, "1", TypeError, "seconds"),
    ("sleep-nan", plait.sleep, NAN, ValueError, "NaN"),
    ("sleep-negative", plait.sleep, -1, ValueError, "non-negative"),
    ("async_sleep-nan", lambda v: plait.run(plait.async_sleep, v), NAN, ValueError, "NaN"),
    ("async_sleep-str", lambda v: plait.run(plait.async_sleep, v), "1", TypeError, "seconds"),
    ("add_instrument-int", plait.add_instrument, 42, TypeError, "Instrument"),
    ("add_instrument-class", plait.add_instrument, plait.Instrument, TypeError, "Instrument"),
    ("run-not-callable", plait.run, None, TypeError, "function"),
    # -- tasks ----------------------------------------------------------------------------
    ("spawn-timeout-str", _spawn(timeout=1), "1", TypeError, "seconds"),
    ("spawn-timeout-nan", _spawn(timeout=1), NAN, ValueError, "NaN"),
    ("spawn-timeout-negative", _spawn(timeout=1), -1, ValueError, "non-negative"),
    ("spawn-on-unknown", _spawn(on=1), "gpu", ValueError, "on="),
    ("spawn-name-int", _spawn(name=1), 42, TypeError, "name"),
    ("spawn-not-callable", lambda v: _in_group(lambda tg: tg.spawn(v)), 42, TypeError, "callable"),
    ("TaskGroup-grace-nan", lambda v: plait.TaskGroup(grace=v), NAN, ValueError, "NaN"),
    ("TaskGroup-grace-str", lambda v: plait.TaskGroup(grace=v), "2", TypeError, "grace"),
    ("TaskGroup-grace-negative", lambda v: plait.TaskGroup(grace=v), -2, ValueError, "grace"),
    ("TaskGroup-name-int", lambda v: plait.TaskGroup(name=v), 42, TypeError, "name"),
    ("Task.result-nan", lambda v: _done_task().result(timeout=v), NAN, ValueError, "NaN"),
    ("Task.result-str", lambda v: _done_task().result(timeout=v), "1", TypeError, "seconds"),
    ("Task.wait-negative", lambda v: _done_task().wait(v), -1, ValueError, "non-negative"),
    ("wait_parked-count-zero", lambda v: wait_parked(count=v), 0, ValueError, "count"),
    ("wait_parked-timeout-nan", lambda v: wait_parked(timeout=v), NAN, ValueError, "NaN"),
    ("wait_parked-timeout-inf", lambda v: wait_parked(timeout=v), math.inf, ValueError, "finite"),
    # -- primitives and channels ----------------------------------------------------------
    ("Event.wait-nan", lambda v: plait.Event().wait(v), NAN, ValueError, "NaN"),
    ("Event.wait-str", lambda v: plait.Event().wait(v), "1", TypeError, "seconds"),
    ("Lock.acquire-nan", lambda v: plait.Lock().acquire(timeout=v), NAN, ValueError, "NaN"),
    ("Lock.acquire-str", lambda v: plait.Lock().acquire(timeout=v), "1", TypeError, "timeout"),
    # threading's own rule, kept for the drop-in (CPython's lock_tests check it):
    ("Lock.acquire-inf", lambda v: plait.Lock().acquire(timeout=v), math.inf, OverflowError,
     "range"),
    ("RLock.acquire-nan", lambda v: plait.RLock().acquire(timeout=v), NAN, ValueError, "NaN"),
    ("Semaphore-value-negative", plait.Semaphore, -1, ValueError, "value"),
    ("Semaphore.acquire-nan", lambda v: plait.Semaphore(0).acquire(timeout=v), NAN,
     ValueError, "NaN"),
    ("Condition.wait-nan", _cond_wait, NAN, ValueError, "NaN"),
    ("Barrier-parties-zero", plait.Barrier, 0, ValueError, "parties"),
    ("Barrier.wait-nan", lambda v: plait.Barrier(2).wait(v), NAN, ValueError, "NaN"),
    ("CapacityLimiter-nan", plait.CapacityLimiter, NAN, TypeError, "total_tokens"),
    ("Queue.get-nan", lambda v: plait.Queue().get(timeout=v), NAN, ValueError, "timeout"),
    ("Queue.get-str", lambda v: plait.Queue().get(timeout=v), "1", TypeError, "timeout"),
    ("Queue.put-negative", lambda v: plait.Queue(1).put(1, timeout=v), -1, ValueError, "negative"),
    ("Queue-maxsize-str", plait.Queue, "3", TypeError, "maxsize"),
    ("select-timeout-nan", lambda v: plait.select(plait.Queue().get_op(), timeout=v), NAN,
     ValueError, "NaN"),
    ("select-no-case", plait.select, 42, TypeError, "select"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "value", "error", "words"),
    [pytest.param(*row[1:5], id=row[0], marks=row[5:]) for row in TABLE],
)
def test_bad_input_fails_at_the_call(
    call: Callable[[Any], Any], value: Any, error: type[BaseException], words: str
) -> None:
    with pytest.raises(error) as info:
        call(value)
    assert words.lower() in str(info.value).lower(), str(info.value)


def _set_event() -> Any:
    ev = plait.Event()
    ev.set()
    return ev


def _full_queue() -> Any:
    q: plait.Queue[int] = plait.Queue()
    q.put(1)
    return q


# math.inf is "no limit", like None, everywhere (never an OS error, never an instant return).
INFINITE: list[Any] = [
    pytest.param(lambda: _enter(plait.move_on_after)(math.inf), None, id="move_on_after"),
    pytest.param(lambda: _enter(plait.fail_after)(math.inf), None, id="fail_after"),
    pytest.param(lambda: _done_task().result(timeout=math.inf), 0, id="Task.result"),
    pytest.param(lambda: _done_task().wait(math.inf), True, id="Task.wait"),
    pytest.param(lambda: _spawn(timeout=1)(math.inf).result(), 0, id="spawn-timeout"),
    pytest.param(lambda: plait.TaskGroup(grace=math.inf).grace, math.inf, id="TaskGroup-grace"),
    pytest.param(lambda: _set_event().wait(math.inf), True, id="Event.wait"),
    pytest.param(lambda: _full_queue().get(timeout=math.inf), 1, id="Queue.get"),
    pytest.param(
        lambda: plait.select(_full_queue().get_op(), timeout=math.inf).value, 1, id="select"
    ),
]


@pytest.mark.parametrize(("call", "expected"), INFINITE)
def test_infinite_timeout_means_no_limit(call: Callable[[], Any], expected: Any) -> None:
    assert call() == expected
