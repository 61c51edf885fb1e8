"""The C switch step of green strands (plait._core._greenpark): in use whenever it is built
and not turned off, the same behaviour as the Python reference, and no Python frame of the
wake-up or the hub per switch.

These tests run against whichever implementation is in use (CI runs the suite a second time
with ``PLAIT_NO_SPEEDUPS=1``); those of the C types themselves skip only when it is turned
off on purpose.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import platform
import sys
import sysconfig
from typing import Any

import pytest
from _green_helpers import in_group

import plait
from plait._core import green

pytest.importorskip("greenlet", reason="green strands need the greenlet extra (plait[green])")

pytestmark = pytest.mark.timeout(30)

TURNED_OFF = bool(os.environ.get("PLAIT_NO_SPEEDUPS"))
needs_speedups = pytest.mark.skipif(
    TURNED_OFF or green.GREENPARK is None,
    reason="PLAIT_NO_SPEEDUPS=1 (or not built): this run tests the Python switch step",
)


def test_the_accelerator_is_in_use_unless_turned_off() -> None:
    importable = importlib.util.find_spec("plait._core._greenpark") is not None
    if TURNED_OFF:
        assert green.GREENPARK is None and green.new_resume is green._Resume
        return
    buildable = platform.python_implementation() == "CPython" and not sysconfig.get_config_var(
        "Py_GIL_DISABLED"
    )
    assert importable or not buildable, (
        "plait._core._greenpark was not built for this CPython: reinstall with a C compiler, "
        "or set PLAIT_NO_SPEEDUPS=1 to test the Python switch step on purpose"
    )
    assert importable == (green.GREENPARK is not None), "built but not in use"
    if importable:
        assert green.new_resume is green.GREENPARK.Resume


def test_a_green_wait_uses_the_switch_step_in_use() -> None:
    seen: list[Any] = []

    def body() -> None:
        event = plait.Event()
        waiter = event._queue.enqueue_current(on=event)  # what Event.wait() enqueues
        seen.append((type(waiter.fut), type(green._schedulers[waiter.loop])))
        with event._queue.mutex:
            event._queue.remove(waiter)

    in_group(body)
    resume_type, scheduler_type = seen[0]
    if green.GREENPARK is None:
        assert (resume_type, scheduler_type) == (green._Resume, green._Scheduler)
    else:
        assert (resume_type, scheduler_type) == (green.GREENPARK.Resume, green.GREENPARK.Scheduler)


def _python_calls_during(fn: Any) -> set[str]:
    """The Python functions (module:name) that run while ``fn`` does, in every greenlet."""
    import greenlet

    calls: set[str] = set()

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call":
            calls.add(f"{frame.f_globals.get('__name__')}:{frame.f_code.co_name}")

    def tracer(event: str, args: Any) -> None:  # every greenlet gets the profiler
        sys.setprofile(profile)

    old = greenlet.settrace(tracer)
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
        greenlet.settrace(old)
    return calls


def _ping_pong(rounds: int) -> tuple[Any, Any]:
    """Two green strand bodies that pass a number back and forth over two queues."""
    a: plait.Queue[int] = plait.Queue()
    b: plait.Queue[int] = plait.Queue()

    def ping() -> None:
        for i in range(rounds):
            a.put(i)
            b.get()

    def pong() -> None:
        for _ in range(rounds):
            b.put(a.get())

    return ping, pong


@needs_speedups
def test_the_wake_up_the_hub_and_the_untimed_wait_run_no_python_code() -> None:
    ping, pong = _ping_pong(50)
    calls = _python_calls_during(lambda: in_group(ping, pong))
    assert f"{__name__}:ping" in calls and f"{__name__}:pong" in calls  # (the profiler saw them)
    python_step = {f"plait._core.green:{name}" for name in ("set_result", "wake", "_hub", "_run")}
    python_step.add("plait._core.parking:_green_park")  # (the untimed wait: all in C)
    python_step.add("plait._core.parking:park")  # (parking.park's choice, made in C)
    # The queue's blocking get waits in C: no Python slow path on the way.
    python_step |= {f"plait._channels._queue:{name}" for name in ("_get_locked", "_got")}
    python_step.add("plait._channels._queue:_take_kept")
    assert not calls & python_step, calls & python_step
    # A green strand's waiter is queued in C too: the C method (over the Python one, which
    # it hands every other caller's wait) is in place once a green strand has started.
    from plait._core import parking

    method = parking.WaitQueue.__dict__["enqueue_current"]
    assert method is not parking.python_enqueue_current
    assert method.__objclass__ is parking.WaitQueue  # (a C method descriptor of the class)


@needs_speedups
def test_a_green_wait_on_a_queue_skips_the_deadlock_check_once_it_is_known_to_have_none() -> None:
    """The detector's check looks at nothing for a green strand's wait on a queue (no owner,
    no thread asleep): after the first such wait it lists the type in ``green_free`` and the
    C park calls it no more; a coroutine's wait (the group's join) still goes to it."""
    from plait._core.parking import park_checks
    from plait.diagnostics import _waitfor

    seen: list[tuple[str, str]] = []

    def spy(waiter: Any) -> None:
        seen.append((type(waiter.on).__name__, type(waiter.fut).__name__))
        _waitfor.check(waiter)

    ping, pong = _ping_pong(20)
    old = park_checks.untimed
    park_checks.untimed = spy
    try:
        in_group(ping, pong)
        assert plait.Queue in park_checks.green_free
        seen.clear()
        in_group(ping, pong)
    finally:
        park_checks.untimed = old
    assert seen and all(on != "Queue" for on, _ in seen), seen  # (the group's join: checked)


@needs_speedups
def test_the_c_types_refuse_bad_input_with_a_clear_error() -> None:
    assert green.GREENPARK is not None
    with pytest.raises(ValueError, match="batch must be at least 1"):
        green.GREENPARK.Scheduler(object(), 0, 0)
    resume = green.GREENPARK.Resume(object())
    assert not resume.done()
    with pytest.raises(AttributeError, match="scheduler"):  # not a green strand's greenlet
        resume.set_result(None)
    assert resume.done()  # (once: a second call does nothing)
    resume.set_result(None)


@needs_speedups
def test_the_c_scheduler_refuses_what_is_not_its_to_queue() -> None:
    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(int, on="green")  # (greenlet imported, the C step configured)
        scheduler = green.scheduler_for(asyncio.get_running_loop())
        with pytest.raises(TypeError, match="takes a Resume"):
            scheduler.wake(object())
        with pytest.raises(TypeError, match="takes 4 arguments"):
            scheduler.start(int)
        with pytest.raises(TypeError, match="by_context must be a dict"):
            scheduler.start(int, None, None, [])
        assert scheduler.ready_count == 0

    plait.run(main)


@pytest.mark.parametrize("kind", ["result", "error", "cancelled"])
def test_an_ending_strand_resolves_its_task_through_the_hub(kind: str) -> None:
    """The hub's end-of-strand path (outcome, done) in both implementations."""
    started = plait.Event()

    def body() -> str:
        started.set()
        plait.sleep(0 if kind != "cancelled" else 30)
        if kind == "error":
            raise KeyError("boom")
        return "ok"

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(body, on="green")
            if kind == "cancelled":
                await started.async_wait(10)
                task.cancel()
        return task

    if kind == "error":
        with pytest.raises(BaseExceptionGroup) as info:
            plait.run(main)
        assert [type(e) for e in info.value.exceptions] == [KeyError]
        return
    task = plait.run(main)
    if kind == "result":
        assert task.result() == "ok"
    else:
        assert task.cancelled()


def test_enqueue_current_queues_every_kind_of_caller_once_green_strands_ran() -> None:
    # Once a green strand has started, WaitQueue.enqueue_current is the C method where it
    # is built: a green strand's waiter is made in C, any other call (a thread's wait,
    # keyword arguments) by the Python method -- each queued once, with its data.
    from plait._core import parking

    made: list[Any] = []

    def body() -> None:
        queue = parking.WaitQueue(parking.new_mutex())
        with queue.mutex:
            made.append(queue.enqueue_current("on-pos", 1))
            made.append(queue.enqueue_current(on="on-kw", data=2))
            made.append(len(queue))

    in_group(body)
    queue = parking.WaitQueue(parking.new_mutex())
    with queue.mutex:
        thread_waiter = queue.enqueue_current("on-thread", 3)
        thread_kw = queue.enqueue_current(on="on-thread-kw")
        count = len(queue)
    green_pos, green_kw, green_count = made
    assert (green_pos.on, green_pos.data, green_kw.on, green_kw.data) == ("on-pos", 1, "on-kw", 2)
    assert green_pos.fut is not None and green_kw.fut is not None  # (parked by switching)
    assert green_count == 2 and count == 2
    assert (thread_waiter.on, thread_waiter.data, thread_kw.data) == ("on-thread", 3, None)
    assert thread_waiter.fut is None and thread_waiter.lock is not None  # (parked by a lock)
