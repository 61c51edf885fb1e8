"""spawn decides the strand kind right: whatever returns an awaitable runs as a coroutine.

Issue 9 point 3. Each case is decided *before* the callable runs (a plain function is never
called on the spawning thread to see what it returns); a thread or process strand whose
function returns an awaitable anyway fails with a TypeError naming the function.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import sys
import warnings
import weakref
from typing import Any

import pytest

import plait
from plait._core.awaitables import returns_awaitable, returns_awaitable_mark
from plait.testing import async_wait_parked


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        await asyncio.sleep(0)
        return x + 1


def async_decorator(fn: Any) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any) -> Any:
        return await fn(*args)

    return wrapper


@async_decorator
async def decorated(x: int) -> int:
    return x - 1


def legacy_marked_wrapper(fn: Any) -> Any:
    """A sync wrapper returning a coroutine, marked the way libraries do on 3.11."""

    def wrapper(*args: Any) -> Any:
        return fn(*args)

    if sys.version_info >= (3, 12):
        return inspect.markcoroutinefunction(wrapper)
    wrapper._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return wrapper


@returns_awaitable_mark
def plait_marked(x: int) -> Any:
    return double(x)


def run_async(main: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "never awaited" fails the test
        return plait.run(main)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: functools.partial(double, 4), id="partial-of-async"),
        pytest.param(lambda: functools.partial(functools.partial(double), 4), id="partial2"),
        pytest.param(lambda: functools.partial(AsyncCallable(), 7), id="partial-of-async-call"),
        pytest.param(lambda: functools.partial(decorated, 9), id="decorated"),
        pytest.param(lambda: functools.partial(legacy_marked_wrapper(double), 4), id="marked"),
        pytest.param(lambda: functools.partial(plait_marked, 4), id="plait-mark"),
    ],
)
def test_callables_returning_awaitables_run_as_coroutine_strands(make: Any) -> None:
    fn = make()
    assert returns_awaitable(fn)

    async def main() -> tuple[str, Any]:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(fn)
        return task.kind, task.result()

    kind, result = run_async(main)
    assert kind == "async"
    assert result == 8


def test_async_call_object_and_decorated_function_results() -> None:
    async def main() -> list[Any]:
        async with plait.TaskGroup() as tg:
            a = tg.spawn(AsyncCallable(), 1)
            b = tg.spawn(decorated, 5)
            c = tg.spawn(legacy_marked_wrapper(double), 3)
            d = tg.spawn(plait_marked, 2)
        return [(t.kind, t.result()) for t in (a, b, c, d)]

    assert run_async(main) == [("async", 2), ("async", 4), ("async", 6), ("async", 4)]


def test_spawn_event_async_wait_is_a_coroutine_strand() -> None:
    ev = plait.Event()

    async def main() -> tuple[str, Any]:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(ev.async_wait)
            await async_wait_parked(on=ev, count=1, timeout=10)
            ev.set()
        return task.kind, task.result()

    assert run_async(main) == ("async", True)


def test_spawn_event_async_wait_with_timeout_argument() -> None:
    ev = plait.Event()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(ev.async_wait, 0.01)
        return task.result()

    assert run_async(main) is False


@pytest.mark.parametrize("method", ["async_get", "async_put"])
def test_spawn_queue_async_methods_are_coroutine_strands(method: str) -> None:
    q: plait.Queue[int] = plait.Queue(1)

    async def main() -> tuple[str, Any, Any]:
        async with plait.TaskGroup() as tg:
            if method == "async_get":
                task = tg.spawn(q.async_get)
                await async_wait_parked(on=q, count=1, timeout=10)
                q.put(5)
            else:
                q.put(1)
                task = tg.spawn(q.async_put, 2)
                await async_wait_parked(on=q, count=1, timeout=10)
                assert q.get(timeout=5) == 1
        return task.kind, task.result(), q.qsize()

    kind, result, left = run_async(main)
    assert kind == "async"
    assert (result, left) == ((5, 0) if method == "async_get" else (None, 1))


class MyQueue(plait.Queue[int]):
    """A user's subclass: its inherited async_* methods are still plait's."""


def test_spawn_async_method_of_a_user_subclass() -> None:
    q = MyQueue()
    q.put(3)
    with plait.TaskGroup() as tg:
        task = tg.spawn(q.async_get)
    assert (task.kind, task.result()) == ("async", 3)


def test_user_async_prefixed_plain_method_stays_a_thread() -> None:
    class Mine:
        def async_like(self) -> int:  # a user's own name, not plait's rule
            return 7

    with plait.TaskGroup() as tg:
        task = tg.spawn(Mine().async_like)
    assert (task.kind, task.result()) == ("thread", 7)


def test_spawn_lock_async_acquire_from_plain_with_block() -> None:
    lock = plait.Lock()
    with plait.TaskGroup() as tg:
        task = tg.spawn(lock.async_acquire)
    assert task.kind == "async"
    assert task.result() is True
    assert lock.locked()
    lock.release()


def test_spawn_async_callable_off_the_loop_thread() -> None:
    """A plain ``with`` group starts coroutine strands on the runtime's loop."""
    with plait.TaskGroup() as tg:
        a = tg.spawn(functools.partial(double, 2))
        b = tg.spawn(AsyncCallable(), 2)
    assert (a.kind, a.result(), b.kind, b.result()) == ("async", 4, "async", 3)


def test_spawn_with_timeout_takes_awaitable_returning_callables() -> None:
    ev = plait.Event()

    async def main() -> BaseException | None:
        async with plait.TaskGroup() as tg:
            tg.spawn(ev.async_wait, timeout=0.05)
        return None  # pragma: no cover - the group raises

    with pytest.raises(BaseExceptionGroup) as info:
        run_async(main)
    assert info.group_contains(TimeoutError)


@pytest.mark.parametrize("on", ["thread", "process", "cpu"])
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: double, id="async-def"),
        pytest.param(lambda: functools.partial(double, 1), id="partial"),
        pytest.param(lambda: plait.Event().async_wait, id="plait-async-method"),
    ],
)
def test_explicit_thread_or_process_for_an_async_callable_is_refused(on: str, make: Any) -> None:
    fn = make()
    with (
        plait.TaskGroup() as tg,
        pytest.raises(TypeError, match=r"returns an awaitable.*on='async'"),
    ):
        tg.spawn(fn, on=on)  # type: ignore[arg-type]


def returns_coroutine() -> Any:
    return double(1)


def test_thread_strand_returning_a_coroutine_fails_naming_the_function() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
            task = tg.spawn(returns_coroutine)
        gc.collect()
    assert task.kind == "thread"
    (error,) = info.value.exceptions
    assert isinstance(error, TypeError)
    assert "returns_coroutine" in str(error) and "coroutine" in str(error)
    assert isinstance(task.exception(), TypeError)


def test_thread_strand_returning_a_queue_op_fails() -> None:
    q: plait.Queue[int] = plait.Queue()
    q.put(1)
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(lambda: q.async_get())  # noqa: PLW0108 - a plain function, on purpose
    (error,) = info.value.exceptions
    assert isinstance(error, TypeError) and "<lambda>" in str(error)
    assert q.qsize() == 1  # the operation never ran: nothing was taken


def test_thread_strand_may_return_a_task_or_future() -> None:
    """A handle to work that runs anyway is a fine result (not refused)."""
    with plait.TaskGroup() as tg:
        me = tg.spawn(plait.current_strand)
    assert me.result() is me


def test_process_strand_returning_a_coroutine_fails_naming_the_function() -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(returns_coroutine, on="process")
    (error,) = info.value.exceptions
    assert isinstance(error, TypeError)
    assert "returns_coroutine" in str(error)


def test_plain_functions_and_classes_stay_threads() -> None:
    class Plain:
        def __call__(self) -> int:
            return 1

    assert not returns_awaitable(Plain())
    assert not returns_awaitable(Plain)
    assert not returns_awaitable(len)
    assert not returns_awaitable(functools.partial(print, 1))
    assert not returns_awaitable(plait.Event().wait)
    with plait.TaskGroup() as tg:
        a = tg.spawn(Plain())
        b = tg.spawn(sorted, [2, 1])
    assert (a.kind, a.result(), b.kind, b.result()) == ("thread", 1, "thread", [1, 2])


def test_finished_thread_strand_arguments_are_released() -> None:
    """Issue 11 point 10: the idle cached thread keeps nothing of a finished strand."""

    class Big:
        pass

    big = Big()
    ref = weakref.ref(big)
    with plait.TaskGroup() as tg:
        task = tg.spawn(lambda b: None, big)
    del big, tg, task
    gc.collect()
    assert ref() is None


def _bytes_per_parked_strand(direct: bool, n: int = 5000) -> float:
    import tracemalloc

    async def main() -> float:
        ev = plait.Event()

        async def wrapper() -> None:
            await ev.async_wait()

        async with plait.TaskGroup() as tg:
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for _ in range(n):
                    tg.spawn(ev.async_wait) if direct else tg.spawn(wrapper)
                await async_wait_parked(on=ev, count=n, timeout=30)
                used = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            ev.set()
        return used / n

    return run_async(main)  # type: ignore[no-any-return]


def test_spawn_async_wait_costs_no_more_than_the_wrapper_form() -> None:
    """Issue 12's note: a strand parked by ``spawn(ev.async_wait)`` is no bigger than one
    parked by a wrapper coroutine (it is the method's own coroutine, not one more)."""
    assert _bytes_per_parked_strand(True) <= _bytes_per_parked_strand(False)
