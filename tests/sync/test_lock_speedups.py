"""The lock's C accelerator (plait._fastlock): in use when built, fast paths that run no
Python code, awaitables that behave as coroutines, and an owner diagnostics can find.

These tests run against whichever implementation is in use (CI runs the suite a second time
with ``PLAIT_NO_SPEEDUPS=1``); those of the C types themselves skip only when it is turned
off on purpose.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import inspect
import os
import platform
import sys
import sysconfig
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import plait
from plait import Instrument, Lock, add_instrument, remove_instrument
from plait._core import current_strand, strands
from plait._sync import _lock as lock_module

TURNED_OFF = bool(os.environ.get("PLAIT_NO_SPEEDUPS"))
needs_speedups = pytest.mark.skipif(
    TURNED_OFF, reason="PLAIT_NO_SPEEDUPS=1: this run tests the pure-Python lock"
)


def test_the_accelerator_is_in_use_unless_turned_off() -> None:
    importable = importlib.util.find_spec("plait._fastlock") is not None
    if TURNED_OFF:
        assert strands.FASTLOCK is None and not lock_module.SPEEDUPS
        return
    buildable = platform.python_implementation() == "CPython" and not sysconfig.get_config_var(
        "Py_GIL_DISABLED"
    )
    assert importable or not buildable, (
        "plait._fastlock was not built for this CPython: reinstall with a C compiler, or set "
        "PLAIT_NO_SPEEDUPS=1 to test the pure-Python lock on purpose"
    )
    assert importable == lock_module.SPEEDUPS, "plait._fastlock is built but not in use"
    if importable:
        assert current_strand is strands.FASTLOCK.current_strand
        assert type(Lock()._inner) is strands.FASTLOCK.Inner


def _python_calls(fn: Callable[[], object]) -> list[str]:
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is not fn.__code__:  # type: ignore[attr-defined]
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


@needs_speedups
def test_the_thread_fast_paths_run_no_python_code() -> None:
    lock = Lock()

    def use() -> None:
        lock.acquire()
        lock.release()
        with lock:
            pass
        assert lock.acquire(True)
        lock.release()

    use()  # the thread's strand, adopted once, is not what is measured
    assert _python_calls(use) == []


@needs_speedups
def test_the_rlocks_thread_fast_paths_run_no_python_code() -> None:
    """RLock's take of a free lock, its re-entry and its releases run in C once the thread's
    strand is known, and leave what the Python paths do: the owner strand and the depth."""
    rlock = plait.RLock()
    seen: list[tuple[object, int]] = []

    def use() -> None:
        with rlock:
            rlock.acquire()
            seen.append((rlock._owner, rlock._count))
            rlock.release()
        assert rlock.acquire()
        rlock.release()

    use()  # the thread's strand, adopted once, is not what is measured
    seen.clear()
    assert _python_calls(use) == []
    assert seen == [(current_strand(), 2)]
    assert rlock._owner is None and rlock._count == 0 and not rlock._inner.locked()
    with pytest.raises(RuntimeError, match="un-acquired"):
        rlock.release()  # (declined in C: the Python path raises)


def test_an_rlock_held_by_one_task_is_not_reentered_by_another() -> None:
    """The owner is the strand: two coroutines on one thread are two owners, so a sync
    try from the second fails while the first holds it (the C path asks for the task's
    strand, not the thread's)."""
    rlock = plait.RLock()

    async def main() -> list[bool]:
        held, go = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            with rlock:
                assert rlock.acquire()  # re-entry by the owner
                rlock.release()
                held.set()
                await go.wait()

        async def other() -> bool:
            await held.wait()
            try:
                return rlock.acquire(False)
            finally:
                go.set()

        first = asyncio.create_task(holder())
        got = await other()
        await first
        again = rlock.acquire(False)  # free again: this task takes it, and gives it back
        if again:
            rlock.release()
        return [got, again]

    assert asyncio.run(main()) == [False, True]
    assert not rlock._inner.locked()


@needs_speedups
def test_the_coroutine_fast_paths_run_no_python_code() -> None:
    lock = Lock()

    async def main() -> list[str]:
        current_strand()  # adopt the task first

        async def use() -> None:
            await lock.async_acquire()
            lock.release()
            async with lock:
                pass

        calls: list[str] = []
        coro = use()

        def profile(frame: Any, event: str, arg: object) -> None:
            if event == "call" and frame.f_code is not use.__code__:
                calls.append(frame.f_code.co_name)

        sys.setprofile(profile)
        try:
            await coro
        finally:
            sys.setprofile(None)
        return calls

    assert asyncio.run(main()) == []


def test_a_thread_fast_path_owner_is_found_lazily() -> None:
    """The fast path records the thread; ``_holder()`` names its strand (issue 13)."""
    lock = Lock()
    took = threading.Event()
    done = threading.Event()
    seen: list[Any] = []

    def holder() -> None:
        seen.append(current_strand())
        with lock:
            took.set()
            done.wait(10)

    t = threading.Thread(target=holder, daemon=True)
    t.start()
    try:
        assert took.wait(10)
        assert lock._holder() is seen[0]
        assert lock._holder() is not current_strand()
    finally:
        done.set()
        t.join(10)
    assert lock._holder() is None
    lock.acquire()
    assert lock._holder() is current_strand()
    lock.release()
    assert lock._holder() is None and lock._owner is None and lock._owner_ident == 0


def test_a_coroutine_owner_is_its_strand() -> None:
    lock = Lock()

    async def main() -> None:
        me = current_strand()
        await lock.async_acquire()
        assert lock._holder() is me
        lock.release()
        async with lock:
            assert lock._holder() in (me, None)  # the pure-Python `async with` records none
            if not TURNED_OFF:
                assert lock._holder() is me
        assert lock._holder() is None

    asyncio.run(main())


def test_instruments_see_every_fast_path() -> None:
    """With an instrument installed, every acquire and release is reported (the C paths
    step aside for the Python ones)."""
    events: list[tuple[str, Any]] = []

    class Spy(Instrument):
        def acquired(self, strand: Any, obj: object) -> None:
            events.append(("acquired", strand))

        def released(self, strand: Any, obj: object) -> None:
            events.append(("released", strand))

    lock = Lock()
    spy = Spy()
    add_instrument(spy)
    try:
        me = current_strand()
        with lock:
            assert lock._owner is me
        lock.acquire()
        lock.release()

        async def coro() -> None:
            async with lock:
                pass
            await lock.async_acquire()
            lock.release()

        asyncio.run(coro())
    finally:
        remove_instrument(spy)
    assert [e for e, _ in events] == ["acquired", "released"] * 4


def test_async_acquire_not_awaited_takes_nothing_and_warns() -> None:
    lock = Lock()

    async def main() -> None:
        op = lock.async_acquire()
        assert inspect.isawaitable(op) and asyncio.iscoroutine(op)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del op
            gc.collect()
        assert not lock.locked()
        assert any("never awaited" in str(w.message) for w in caught)

    asyncio.run(main())


def test_async_acquire_throw_and_close_before_it_starts_hold_nothing() -> None:
    lock = Lock()

    async def main() -> None:
        op = lock.async_acquire()
        with pytest.raises(KeyError):
            op.throw(KeyError("x"))
        assert not lock.locked()
        op2 = lock.async_acquire()
        op2.close()
        assert not lock.locked()
        with pytest.raises(RuntimeError, match="already awaited"):
            op2.send(None)

    asyncio.run(main())


def test_async_acquire_waits_and_is_cancel_safe() -> None:
    lock = Lock()

    async def main() -> None:
        lock.acquire()
        waiter = asyncio.create_task(lock.async_acquire())
        await asyncio.sleep(0)
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        lock.release()
        assert not lock.locked()
        second = asyncio.create_task(lock.async_acquire())
        lock.acquire()  # held again before the task runs
        await asyncio.sleep(0)
        lock.release()  # hands it to the task
        assert await asyncio.wait_for(second, 10) is True
        assert lock.locked()
        lock.release()

    asyncio.run(main())


def test_async_acquire_with_arguments_runs_in_python_with_the_same_semantics() -> None:
    lock = Lock()

    async def main() -> None:
        assert await lock.async_acquire(False) is True
        assert await lock.async_acquire(False) is False
        assert await lock.async_acquire(timeout=0.01) is False
        with pytest.raises(ValueError, match="timeout"):
            await lock.async_acquire(False, 1)
        lock.release()

    asyncio.run(main())


def test_release_of_an_unlocked_lock_raises_as_threading() -> None:
    lock = Lock()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await lock.__aexit__(None, None, None)

    asyncio.run(main())


def test_async_sleep_zero_yields_once_as_asyncio_sleep() -> None:
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        task = asyncio.create_task(other())
        await plait.async_sleep(0)
        order.append("main")
        await task
        assert await asyncio.create_task(plait.async_sleep(0)) is None
        assert await plait.async_sleep(0.0) is None
        with pytest.raises(ValueError, match="non-negative"):
            await plait.async_sleep(-1)
        with pytest.raises(TypeError, match="number of seconds"):
            await plait.async_sleep(False)  # type: ignore[arg-type]

    asyncio.run(main())
    assert order == ["other", "main"]
    assert asyncio.run(plait.async_sleep(0)) is None  # type: ignore[arg-type]


def test_async_sleep_zero_in_a_cancelled_task_raises() -> None:
    async def main() -> None:
        async def sleeper() -> None:
            await plait.async_sleep(0)
            await plait.async_sleep(0)

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


@needs_speedups
def test_the_inner_state_is_only_tried() -> None:
    inner = Lock()._inner
    assert inner.acquire(False) is True
    assert inner.acquire(blocking=False) is False
    with pytest.raises(ValueError, match="acquire\\(False\\)"):
        inner.acquire()
    inner.release()
    with pytest.raises(RuntimeError):
        inner.release()


@needs_speedups
def test_configure_refuses_a_seam_it_cannot_use() -> None:
    fast = strands.FASTLOCK
    with pytest.raises(TypeError, match="entry"):
        fast.configure_lock(
            WaitQueue=lock_module.WaitQueue, hooks=lock_module.hooks, READY=None, entry={}
        )
    with pytest.raises(TypeError):
        fast.configure_lock(WaitQueue=lock_module.WaitQueue)
    with pytest.raises(TypeError):
        fast.configure_strands()
    lock = Lock()  # still configured as before
    with lock:
        assert lock.locked()


@needs_speedups
@pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="from 3.12 asyncio's lookup makes no system call"
)
def test_current_strand_in_a_coroutine_skips_asyncios_getpid_lookup() -> None:
    """On 3.11 ``asyncio._get_running_loop()`` calls ``getpid()`` every time; plait's
    current_strand() asks it once per loop and thread, then trusts the loop's _thread_id."""
    fast = strands.FASTLOCK
    calls = 0
    real = asyncio._get_running_loop

    def counting() -> Any:
        nonlocal calls
        calls += 1
        return real()

    def configure(get_running_loop: Callable[[], Any]) -> None:
        fast.configure_strands(
            current_tasks=asyncio.tasks._current_tasks,  # type: ignore[attr-defined]
            by_task=strands._by_task,
            self_strand_types=strands._self_strand_types,
            get_running_loop=get_running_loop,
            local=strands._local,
            fallback=strands._current_strand_py,
        )

    async def main() -> None:
        first = current_strand()
        configure(counting)
        try:
            for _ in range(100):
                assert current_strand() is first
        finally:
            configure(real)

    asyncio.run(main())
    assert calls <= 1
