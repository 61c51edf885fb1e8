"""Helpers for the fault tests of shared primitives: what the child processes run, and
how the survivors check that nothing was left taken."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import plait

#: Per kind: (make the object, the child's endless loop, the survivors' check).
KINDS = ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier")


def make(kind: str) -> Any:
    if kind == "Lock":
        return plait.Lock()
    if kind == "RLock":
        return plait.RLock()
    if kind == "Semaphore":
        return plait.Semaphore(2)
    if kind == "BoundedSemaphore":
        return plait.BoundedSemaphore(2)
    if kind == "Condition":
        return plait.Condition(plait.Lock())
    if kind == "Event":
        return plait.Event()
    if kind == "Barrier":
        return plait.Barrier(2)
    raise ValueError(kind)


def hammer(kind: str, obj: Any, started: Any) -> None:
    """Use ``obj`` in a tight loop until cancelled (``started`` counts rounds)."""
    n = 0
    while True:
        if kind in ("Lock", "RLock", "Semaphore", "BoundedSemaphore"):
            with obj:
                n += 1
            if obj.acquire(timeout=1):
                obj.release()
        elif kind == "Condition":
            with obj:
                obj.notify_all()
                obj.wait(0.001)
                n += 1
        elif kind == "Event":
            obj.set()
            obj.wait(0.01)
            obj.clear()
            n += 1
        elif kind == "Barrier":
            try:
                obj.wait(0.05)
            except threading.BrokenBarrierError:
                obj.reset()
            n += 1
        if n == 5:
            with started.get_lock():
                started.value += 1


def in_thread(fn: Any, timeout: float) -> tuple[bool, Any]:
    """Run ``fn()`` in a daemon thread: ``(ended in time, its result or exception)``."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), out[0] if out else None)


def survivors_check(kind: str, obj: Any, timeout: float = 5.0) -> str | None:
    """What a surviving process finds wrong with ``obj`` (``None``: nothing)."""
    if kind in ("Lock", "RLock"):
        if not obj.acquire(timeout=timeout):
            return "acquire() timed out: left taken"
        obj.release()
        return None if not obj.locked() else "still locked after release"
    if kind in ("Semaphore", "BoundedSemaphore"):
        got = [obj.acquire(timeout=timeout) for _ in range(2)]
        for g in got:
            if g:
                obj.release()
        if not all(got):
            return f"a permit was lost: {got}"
        value = obj.statistics().value
        return None if value == 2 else f"value {value} != 2"
    if kind == "Condition":
        if not obj.acquire(timeout=timeout):
            return "the condition's lock is left taken"
        try:
            start = time.monotonic()
            obj.notify_all()
            if time.monotonic() - start > 1.0:
                return f"notify_all() stalled {time.monotonic() - start:.1f} s"
        finally:
            obj.release()
        # a waiter here is notified
        ready = threading.Event()

        def waiter() -> bool:
            with obj:
                ready.set()
                return bool(obj.wait(timeout))

        done: list[Any] = []
        thread = threading.Thread(target=lambda: done.append(waiter()), daemon=True)
        thread.start()
        if not ready.wait(timeout):
            return "a waiter could not take the lock"
        with obj:
            obj.notify()
        thread.join(timeout)
        if thread.is_alive() or done != [True]:
            return f"a waiter was not notified: {done}"
        return None
    if kind == "Event":
        ended, _ = in_thread(lambda: (obj.set(), obj.clear()), timeout)
        if not ended:
            return "set()/clear() hung: the event's mutex is left taken"
        obj.set()
        return None if obj.wait(timeout) else "wait() after set() timed out"
    if kind == "Barrier":
        ended, _ = in_thread(obj.reset, timeout)
        if not ended:
            return "reset() hung"
        results: list[Any] = []

        def party() -> None:
            results.append(in_thread(lambda: obj.wait(timeout), timeout + 1))

        threads = [threading.Thread(target=party) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 2)
        ok = len(results) == 2 and all(r[0] and isinstance(r[1], int) for r in results)
        return None if ok else f"a round of two parties failed: {results}"
    raise ValueError(kind)


# -- owner death -------------------------------------------------------------------------


def hold_and_report(kind: str, obj: Any, held: Any) -> None:
    """Take ``obj`` (a lock's lock, a permit, a condition's lock) and sleep until killed."""
    if kind in ("Semaphore", "BoundedSemaphore"):
        for _ in range(obj.statistics().initial_value):
            obj.acquire()
    else:
        obj.acquire()
    held.set()
    time.sleep(60)


def wait_on_condition(cond: Any, waiting: Any) -> None:
    """Wait on ``cond`` (announced) until killed."""
    with cond:
        waiting.set()
        cond.wait(60)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def notify_then_hold(cond: Any, held: Any) -> None:
    """Take the condition's lock, notify its waiter, and keep the lock until killed."""
    cond.acquire()
    cond.notify_all()
    held.set()
    time.sleep(60)


def block_on(kind: str, obj: Any, started: Any) -> None:
    """Block on ``obj`` (held or unset elsewhere) until cancelled."""
    with started.get_lock():
        started.value += 1
    if kind == "with":
        with obj:
            pass
    elif kind == "acquire":
        obj.acquire()
    elif kind == "Event":
        obj.wait()
    elif kind == "Condition":
        with obj:
            obj.wait()
    elif kind == "Barrier":
        obj.wait()
