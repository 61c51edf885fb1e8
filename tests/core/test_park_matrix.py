"""One park path: every wait x strand kind x outcome parks and unparks through the kernel.

Issue 9 point 1. For each wait path (a primitive, a queue, select, Pipe, a task, a thread or
a process to join, sleep), from a coroutine strand, a thread strand and a green strand (the
sync form, which must switch away and leave its loop running), and for each
outcome (woken by another strand, timed out, cancelled by its scope), an instrument must
see *exactly one* ``strand_parked`` and one ``strand_unparked`` event of the waiting strand
carrying the object waited on, with the right outcome; the strand reads ``"running"``
before and after the wait and ``"parked"`` (on that object) while it waits.

Other parks of the same strand on *other* objects are allowed (a Condition re-takes its
lock after the wait, which may park on the lock). Paths whose waits do not go through the
kernel yet are marked ``xfail(strict=True)`` naming the place to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import pickle
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

import plait
from plait._core import Instrument, Strand, current_strand
from plait.testing import wait_parked

SHORT = 0.15  # the timeout of the "timed out" outcome
LONG = 20.0  # a wait that must be ended by the outcome, never by itself


class Recorder(Instrument):
    """Keeps every park and unpark event, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Strand, object, str | None]] = []

    def strand_parked(self, strand: Strand, on: object) -> None:
        with self.lock:
            self.events.append(("parked", strand, on, None))

    def strand_unparked(self, strand: Strand, on: object, outcome: str) -> None:
        with self.lock:
            self.events.append(("unparked", strand, on, outcome))


@dataclass
class Case:
    """One wait path, made fresh for each test."""

    on: object | None  # what the strand parks on (None: made by the wait, e.g. a select)
    sync: Callable[[float | None], Any] | None  # the blocking call, given its timeout
    async_: Callable[[float | None], Coroutine[Any, Any, Any]] | None
    wake: Callable[[], None] | None  # another strand ends the wait (None: nothing can)
    cleanup: Callable[[], None] = lambda: None
    has_timeout: bool = True  # False: the "timed out" outcome uses a scope's deadline
    async_has_timeout: bool | None = None  # the same for the coroutine form (None: as sync)
    extra: dict[str, Any] = field(default_factory=dict)


def _lock(make: Callable[[], Any]) -> Case:
    lock = make()
    lock.acquire()
    return Case(
        lock,
        lambda t: lock.acquire(timeout=-1 if t is None else t),
        lambda t: lock.async_acquire(timeout=-1 if t is None else t),
        lock.release,
    )


def _condition() -> Case:
    cond = plait.Condition()

    def sync(t: float | None) -> Any:
        with cond:
            return cond.wait(t)

    async def async_(t: float | None) -> Any:
        async with cond:
            return await cond.async_wait(t)

    def wake() -> None:
        with cond:
            cond.notify()

    return Case(cond, sync, async_, wake)


def _semaphore() -> Case:
    sem = plait.Semaphore(0)
    return Case(
        sem, lambda t: sem.acquire(timeout=t), lambda t: sem.async_acquire(timeout=t), sem.release
    )


def _event() -> Case:
    ev = plait.Event()
    return Case(ev, ev.wait, ev.async_wait, ev.set)


def _barrier() -> Case:
    barrier = plait.Barrier(2)
    return Case(barrier, barrier.wait, barrier.async_wait, lambda: barrier.wait(5))


def _limiter() -> Case:
    limiter = plait.CapacityLimiter(1)
    limiter.acquire()
    return Case(limiter, limiter.acquire, limiter.async_acquire, limiter.release)


def _queue_get() -> Case:
    q: plait.Queue[int] = plait.Queue()
    return Case(
        q, lambda t: q.get(timeout=t), lambda t: q.async_get(timeout=t), lambda: q.put(1)
    )


def _queue_put() -> Case:
    q: plait.Queue[int] = plait.Queue(1)
    q.put(0)
    return Case(
        q, lambda t: q.put(1, timeout=t), lambda t: q.async_put(1, timeout=t), q.get_nowait
    )


def _queue_join() -> Case:
    q: plait.Queue[int] = plait.Queue()
    q.put(0)

    def wake() -> None:
        q.get_nowait()
        q.task_done()

    return Case(q, lambda t: q.join(), lambda t: q.async_join(), wake, has_timeout=False)


def _select() -> Case:
    q: plait.Queue[int] = plait.Queue()
    return Case(
        None,
        lambda t: plait.select(q.get_op(), timeout=t),
        lambda t: plait.async_select(q.get_op(), timeout=t),
        lambda: q.put(1),
    )


def _pipe() -> Case:
    a, b = plait.Pipe()

    def cleanup() -> None:
        a.close()
        b.close()

    return Case(
        a, lambda t: a.recv(), lambda t: a.async_recv(), lambda: b.send(1), cleanup,
        has_timeout=False,
    )  # fmt: skip


def _task() -> Case:
    gate = plait.Event()
    group = plait.TaskGroup()
    group.__enter__()
    task = group.spawn(gate.wait, LONG, on="thread")

    def cleanup() -> None:
        gate.set()
        group.__exit__(None, None, None)

    return Case(
        task, task.wait, lambda t: task.async_wait(), gate.set, cleanup, async_has_timeout=False
    )


def _task_result() -> Case:
    case = _task()
    task = case.on
    assert isinstance(task, plait.Task)
    case.sync = lambda t: task.result(timeout=t)
    case.async_ = lambda t: task.async_result()
    return case


def _coro_task() -> Case:
    """A coroutine strand (the asyncio task itself), awaited from its own loop."""
    gate = plait.Event()
    box: dict[str, Any] = {}
    started = threading.Event()

    async def serve() -> None:
        async with plait.TaskGroup() as group:
            box["task"] = group.spawn(gate.async_wait, LONG)
            started.set()
            await box["task"]

    loop = plait._core.runtime.loop()
    done = asyncio.run_coroutine_threadsafe(serve(), loop)
    started.wait(10)
    task = box["task"]

    def cleanup() -> None:
        gate.set()
        done.result(10)

    return Case(task, None, lambda t: task.async_wait(), gate.set, cleanup,
                async_has_timeout=False, extra={"loop": loop})  # fmt: skip


def _thread_join() -> Case:
    gate = plait.Event()
    thread = plait.Thread(target=gate.wait, args=(LONG,))
    thread.start()

    def cleanup() -> None:
        gate.set()
        thread.join(LONG)

    return Case(thread.strand, thread.join, None, gate.set, cleanup)


def _process_join() -> Case:
    proc = plait.Process(target=time.sleep, args=(LONG,))
    proc.start()

    def cleanup() -> None:
        proc.kill()
        proc.join(LONG)

    return Case(proc, proc.join, proc.async_join, proc.terminate, cleanup)


def _shared_event() -> Case:
    ev = plait.Event()
    pickle.dumps(ev)  # shares it (as passing it to a process does)
    return Case(ev, ev.wait, ev.async_wait, ev.set)


def _shared_queue_get() -> Case:
    q: plait.Queue[int] = plait.Queue()
    pickle.dumps(q)  # shares it (as passing it to a process does)
    return Case(
        q, lambda t: q.get(timeout=t), lambda t: q.async_get(timeout=t), lambda: q.put(1),
        q.close,
    )  # fmt: skip


def _sleep() -> Case:
    return Case(None, lambda t: plait.sleep(LONG if t is None else t),
                lambda t: plait.async_sleep(LONG if t is None else t), None)  # fmt: skip


# fmt: off
PATHS: dict[str, tuple[Callable[[], Case], dict[str, str]]] = {
    "Lock": (lambda: _lock(plait.Lock), {}),
    "RLock": (lambda: _lock(plait.RLock), {}),
    "Condition": (_condition, {}),
    "Semaphore": (_semaphore, {}),
    "Event": (_event, {}),
    "Barrier": (_barrier, {}),
    "CapacityLimiter": (_limiter, {}),
    "Queue.get": (_queue_get, {}),
    "Queue.put": (_queue_put, {}),
    "Queue.join": (_queue_join, {}),
    "select": (_select, {}),
    "Pipe.recv": (_pipe, {}),
    "Task.wait": (_task, {}),
    "Task.result": (_task_result, {}),
    "CoroTask.async_wait": (_coro_task, {}),
    "Thread.join": (_thread_join, {}),
    "Process.join": (_process_join, {}),
    "sleep": (_sleep, {}),
    # Objects shared with processes (the waiting strand is here; the object is shared).
    "SharedEvent.wait": (_shared_event, {}),
    "SharedQueue.get": (_shared_queue_get, {}),
}
# fmt: on

OUTCOMES = ("woken", "timeout", "cancelled")
KINDS = ("thread", "async", "green")  # green: the sync form, in a green strand on a loop


def _params() -> list[Any]:
    params = []
    for name, (make, xfails) in PATHS.items():
        for kind in KINDS:
            for outcome in OUTCOMES:
                marks = []
                reason = xfails.get(f"{kind}/{outcome}") or xfails.get(kind) or xfails.get("*")
                if reason:
                    marks.append(pytest.mark.xfail(strict=True, reason=reason))
                # A row known to fail waits less (it fails in about a second, not three).
                patience = 1.0 if marks else 3.0
                params.append(pytest.param(make, kind, outcome, patience,
                                           id=f"{name}-{kind}-{outcome}", marks=marks))  # fmt: skip
    return params


def _has_timeout(case: Case, kind: str) -> bool:
    if kind == "async" and case.async_has_timeout is not None:
        return case.async_has_timeout
    return case.has_timeout


@dataclass
class Observation:
    """What one run saw, in plain values only: a failing test must not keep the objects it
    waited on alive (a shared queue's /dev/shm names live as long as the queue)."""

    problem: str | None  # an error while driving the wait, as text
    events: list[tuple[str, str | None]]  # (parked/unparked, outcome) on the object waited on
    all_events: str  # every park event of the strand, for the failure message
    states: list[str]
    has_timeout: bool


def _observe(case: Case, kind: str, outcome: str, patience: float) -> Observation:
    """Run the wait in a strand of ``kind`` and describe what the instruments saw."""
    has_timeout = _has_timeout(case, kind)
    timeout = SHORT if outcome == "timeout" and has_timeout else None
    scoped_timeout = SHORT if outcome == "timeout" and not has_timeout else None
    scopes: list[plait.CancelScope] = []
    states: list[str] = []

    def make_scope() -> plait.CancelScope:
        deadline = time.monotonic() + scoped_timeout if scoped_timeout else float("inf")
        scope = plait.CancelScope(deadline=deadline)
        scopes.append(scope)
        return scope

    def body() -> None:
        me = current_strand()
        states.append(me.state)
        with make_scope(), contextlib.suppress(Exception):
            assert case.sync is not None
            case.sync(timeout)
        states.append(me.state)

    async def abody() -> None:
        me = current_strand()
        states.append(me.state)
        async with make_scope():
            with contextlib.suppress(Exception):
                assert case.async_ is not None
                await case.async_(timeout)
        states.append(me.state)

    recorder = Recorder()
    problem = None
    strand: Any = None
    plait.add_instrument(recorder)
    try:
        with plait.TaskGroup() as tg:
            strand = tg.spawn(abody) if kind == "async" else tg.spawn(body, on=kind)
            try:
                _drive(case, strand, outcome, scopes, patience)
            except BaseException:
                if case.wake is not None:
                    case.wake()  # end the wait now: the run already failed
                raise
            finally:
                if not strand.wait(patience + 2) and case.wake is not None:
                    case.wake()  # let the group end; the run is reported as a problem
                    problem = "the wait did not end"
    except BaseException as exc:  # reported as text (see Observation)
        problem = f"{type(exc).__name__}: {exc}"
        for sub in getattr(exc, "exceptions", ()):
            problem += f" / {type(sub).__name__}: {sub}"
        del exc
    finally:
        plait.remove_instrument(recorder)
        case.cleanup()
    mine = [e for e in recorder.events if e[1] is strand]
    on = case.on
    if on is None:  # the wait made its own object (a select's selector): the first park's
        on = next((e[2] for e in mine if e[0] == "parked"), None)
    return Observation(
        problem,
        [(e[0], e[3]) for e in mine if on is not None and e[2] is on],
        repr([(e[0], type(e[2]).__name__, e[3]) for e in mine]),
        states,
        has_timeout,
    )


def _drive(
    case: Case, strand: Any, outcome: str, scopes: list[plait.CancelScope], patience: float
) -> None:
    """Wait until the strand parks, check what it shows, then wake or cancel it."""
    if outcome == "timeout":
        return
    if case.on is not None:
        wait_parked(on=case.on, count=1, timeout=patience)
    else:
        wait_parked(strands=[strand], timeout=patience)
    assert strand.state == "parked", strand.state
    waiter = strand.waiter  # what diagnostics read: set by every park
    assert waiter is not None and waiter.strand is strand, waiter
    assert case.on is None or strand.parked_on is case.on, strand.parked_on
    if strand.kind == "green":  # a parked green strand has switched away: its loop runs on
        probe = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "ran"), strand.loop)
        assert probe.result(timeout=patience) == "ran", "the green strand blocks its loop"
    if outcome == "woken":
        assert case.wake is not None
        case.wake()
    else:
        scopes[0].cancel()


@pytest.mark.parametrize(("make", "kind", "outcome", "patience"), _params())
def test_one_park_and_one_unpark_through_the_kernel(
    make: Callable[[], Case], kind: str, outcome: str, patience: float
) -> None:
    case = make()
    skip = None
    if (kind != "async" and case.sync is None) or (kind == "async" and case.async_ is None):
        skip = f"no {kind} form of this wait (nothing to test)"
    elif outcome == "woken" and case.wake is None:
        skip = "nothing can wake this wait early (it only ends by time or cancel)"
    if skip is not None:
        case.cleanup()
        pytest.skip(skip)
    seen = _observe(case, kind, outcome, patience)
    del case
    gc.collect()  # (shared objects release their /dev/shm names now, pass or fail)
    assert seen.problem is None, seen.problem
    assert [e[0] for e in seen.events] == ["parked", "unparked"], seen.all_events
    expected = {outcome}
    if outcome == "timeout" and kind == "async" and not seen.has_timeout:
        # A scope's deadline reaches a coroutine as a task cancellation.
        expected = {"timeout", "cancelled"}
    assert seen.events[1][1] in expected, seen.all_events
    assert seen.states == ["running", "running"]


def test_every_path_is_covered() -> None:
    wanted = {
        "Lock", "RLock", "Condition", "Semaphore", "Event", "Barrier", "CapacityLimiter",
        "Queue.get", "Queue.put", "Queue.join", "select", "Pipe.recv", "Task.wait",
        "Task.result", "Thread.join", "Process.join", "sleep",
    }  # fmt: skip
    assert wanted <= set(PATHS)


def test_asyncio_loop_is_not_needed_for_thread_paths() -> None:
    """(sanity) the thread half of the matrix runs with no event loop in this thread."""
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
