"""TaskGroup and Task over coroutine, thread and process strands."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import threading

import pytest

import plait
from plait.testing import async_wait_parked, wait_parked

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def inc(x: int) -> int:
    return x + 1


async def fail_async(msg: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(msg)


def fail_thread(msg: str) -> None:
    raise KeyError(msg)


def square(x: int) -> int:
    return x * x


def fail_process(msg: str) -> None:
    raise LookupError(msg)


def sleep_in_process(seconds: float) -> None:
    import time

    time.sleep(seconds)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


# -- results ---------------------------------------------------------------------------


def test_async_group_collects_every_kind() -> None:
    async def main() -> tuple[int, int, int]:
        async with plait.TaskGroup() as tg:
            a = tg.spawn(double, 2)
            b = tg.spawn(inc, 3)
            c = tg.spawn(square, 4, on="process")
        return a.result(), b.result(), c.result()

    assert plait.run(main) == (4, 4, 16)


def test_sync_group_collects_every_kind() -> None:
    with plait.TaskGroup() as tg:
        a = tg.spawn(double, 5)
        b = tg.spawn(inc, 6)
        c = tg.spawn(square, 7, on="cpu")
    assert (a.result(), b.result(), c.result()) == (10, 7, 49)
    assert (a.kind, b.kind) == ("async", "thread")
    assert c.kind == ("process" if plait.gil_enabled() else "thread")


def test_await_task_and_result_with_timeout() -> None:
    async def main() -> None:
        async with plait.TaskGroup() as tg:
            a = tg.spawn(double, 21)
            b = tg.spawn(inc, 41)
            assert await a == 42
            assert await b == 42

    plait.run(main)
    with plait.TaskGroup() as tg:
        t = tg.spawn(double, 1)
        assert t.result(timeout=10) == 2


def test_contextvars_are_copied_into_thread_strands() -> None:
    var.set("outer")

    def read() -> str:
        seen = var.get()
        var.set("changed-inside")
        return seen

    with plait.TaskGroup() as tg:
        t = tg.spawn(read)
    assert t.result() == "outer"
    assert var.get() == "outer"


# -- failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "on", "exc_type"),
    [(fail_async, None, ValueError), (fail_thread, None, KeyError),
     (fail_process, "process", LookupError)],
)
def test_failure_of_each_kind_cancels_siblings(fn, on, exc_type) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(asyncio.sleep, 30)
            tg.spawn(plait.sleep, 30)
            tg.spawn(fn, "boom", on=on)
        pytest.fail("group did not raise")  # pragma: no cover

    with pytest.raises(BaseExceptionGroup) as info:
        plait.run(main)
    assert info.group_contains(exc_type, match="boom")
    assert len(info.value.exceptions) == 1


def test_remote_traceback_is_the_cause() -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(fail_process, "far away", on="process")
    (exc,) = info.value.exceptions
    assert isinstance(exc, LookupError)
    assert "fail_process" in str(exc.__cause__)


def test_body_exception_cancels_children_and_is_reported() -> None:
    async def main() -> None:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(asyncio.sleep, 30)
            u = tg.spawn(plait.sleep, 30)
            await async_wait_parked(count=2)
            raise RuntimeError("body")
        assert t.cancelled() and u.cancelled()  # pragma: no cover

    with pytest.raises(BaseExceptionGroup) as info:
        plait.run(main)
    assert info.group_contains(RuntimeError, match="body")


def test_sync_body_is_stopped_by_a_child_failure() -> None:
    reached = []
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(fail_thread, "child")
        plait.sleep(30)  # cancelled by the failure
        reached.append(True)  # pragma: no cover
    assert not reached
    assert info.group_contains(KeyError)


def test_killed_process_raises_worker_crashed() -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        t = tg.spawn(kill_self, on="process")
    (exc,) = info.value.exceptions
    assert isinstance(exc, plait.WorkerCrashed)
    assert exc.signal == signal.SIGKILL
    assert exc.pid == t.pid


# -- cancellation ---------------------------------------------------------------------


def test_cancel_each_kind() -> None:
    async def main() -> None:
        async with plait.TaskGroup() as tg:
            a = tg.spawn(asyncio.sleep, 30)
            b = tg.spawn(plait.sleep, 30)
            c = tg.spawn(sleep_in_process, 30, on="process")
            await async_wait_parked(strands=[a, b])
            for t in (a, b, c):
                assert t.cancel()
        for t in (a, b, c):
            assert t.cancelled()
            with pytest.raises(asyncio.CancelledError):
                t.result()

    plait.run(main)


def test_group_cancel_from_outside() -> None:
    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(asyncio.sleep, 30)
            tg.spawn(plait.sleep, 30)
            tg.cancel()
            await asyncio.sleep(30)
        pytest.fail("body continued")  # pragma: no cover

    with pytest.raises(asyncio.CancelledError):
        plait.run(main)


def test_thread_ignoring_cancellation_is_reported_by_name() -> None:
    stop = threading.Event()

    def stubborn() -> None:
        stop.wait(30)  # a stdlib wait: plait cannot interrupt it

    try:
        with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup(grace=0.1) as tg:
            tg.spawn(stubborn, name="stubborn-one")
            tg.spawn(fail_thread, "trigger")
        assert info.group_contains(plait.CancellationIgnored, match="stubborn-one")
        assert info.group_contains(KeyError)
    finally:
        stop.set()


# -- timeouts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "on"),
    [(asyncio.sleep, None), (plait.sleep, None), (sleep_in_process, "process")],
)
def test_timeout_of_each_kind(fn, on) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(fn, 30, on=on, timeout=0.05)
    (exc,) = info.value.exceptions
    assert isinstance(exc, TimeoutError)


# -- nesting (CPython gh-116720) -------------------------------------------------------


async def raise_after(exc_type: type[BaseException]) -> None:
    await asyncio.sleep(0)
    raise exc_type()


def test_nested_groups_both_failing_keep_the_cancel_count() -> None:
    async def main() -> None:
        try:
            async with plait.TaskGroup() as outer:
                try:
                    async with plait.TaskGroup() as inner:
                        inner.spawn(raise_after, RuntimeError)
                        outer.spawn(raise_after, ValueError)
                except* RuntimeError:
                    pass
                else:
                    pytest.fail("RuntimeError not raised")  # pragma: no cover
                task = asyncio.current_task()
                assert task is not None and task.cancelling() == 1
        except* ValueError:
            pass
        else:
            pytest.fail("ValueError not raised")  # pragma: no cover
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0

    plait.run(main)


def test_outer_cancel_during_inner_failure_is_not_swallowed() -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def raise_soon() -> None:
            started.set()
            await asyncio.sleep(0)
            raise RuntimeError

        async def inner() -> None:
            try:
                async with plait.TaskGroup() as tg:
                    tg.spawn(raise_soon)
                    await asyncio.sleep(10)
                    pytest.fail("body not cancelled")  # pragma: no cover
            except* RuntimeError:
                pass
            await asyncio.sleep(10)
            pytest.fail("outer cancellation was swallowed")  # pragma: no cover

        t = asyncio.create_task(inner())
        await started.wait()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert t.cancelled()

    plait.run(main)


def test_nested_sync_groups_in_thread_strands() -> None:
    def leaf(x: int) -> int:
        return x * 10

    def branch(x: int) -> int:
        with plait.TaskGroup() as tg:
            ts = [tg.spawn(leaf, x + i) for i in range(3)]
        return sum(t.result() for t in ts)

    with plait.TaskGroup() as tg:
        a = tg.spawn(branch, 1)
        b = tg.spawn(branch, 10)
    assert (a.result(), b.result()) == (60, 330)


def test_outer_group_failure_cancels_nested_group_in_thread() -> None:
    def branch() -> None:
        with plait.TaskGroup() as tg:
            tg.spawn(plait.sleep, 30)
            tg.spawn(plait.sleep, 30)

    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        b = tg.spawn(branch)
        # The branch parks only in its nested group's exit, once both sleepers are spawned.
        # (Not `count=3`: strands of earlier tests may still be parked in this process.)
        wait_parked(strands=[b])
        tg.spawn(fail_thread, "outer")
    assert info.group_contains(KeyError)
    assert b.cancelled()


# -- bad input ------------------------------------------------------------------------


def test_bad_input_is_a_clear_error() -> None:
    async def main() -> None:
        async with plait.TaskGroup() as tg:
            with pytest.raises(TypeError, match="callable"):
                tg.spawn(42)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="unknown on='gpu'"):
                tg.spawn(inc, 1, on="gpu")  # type: ignore[arg-type]
            coro = double(1)
            with pytest.raises(TypeError, match="not a coroutine object"):
                tg.spawn(coro)  # type: ignore[arg-type]
            coro.close()
            t = tg.spawn(asyncio.sleep, 0.01)
            with pytest.raises(asyncio.InvalidStateError, match="not done yet"):
                t.result()
            with pytest.raises(RuntimeError, match="would deadlock"):
                t.result(timeout=1)
        with pytest.raises(RuntimeError, match="has exited"):
            tg.spawn(inc, 1)

    plait.run(main)
    tg = plait.TaskGroup()
    with pytest.raises(RuntimeError, match="not been entered"):
        tg.spawn(inc, 1)


def test_unpicklable_argument_raises_at_spawn() -> None:
    lock = threading.Lock()
    with plait.TaskGroup() as tg:
        with pytest.raises(plait.SerializationError, match="lock"):
            tg.spawn(square, lock, on="process")
        ok = tg.spawn(square, 3, on="process")
    assert ok.result() == 9


def test_lambda_and_closure_in_process() -> None:
    k = 5
    with plait.TaskGroup() as tg:
        a = tg.spawn(lambda x: x + k, 1, on="process")
    assert a.result() == 6


def test_run_accepts_plain_and_async_main() -> None:
    assert plait.run(inc, 1) == 2
    assert plait.run(double, 2) == 4
    coro = double(1)
    with pytest.raises(TypeError, match="not a coroutine object"):
        plait.run(coro)  # type: ignore[arg-type]
    coro.close()


def test_keyboard_interrupt_and_system_exit_are_not_wrapped() -> None:
    with pytest.raises(KeyboardInterrupt), plait.TaskGroup() as tg:
        t = tg.spawn(plait.sleep, 30)
        raise KeyboardInterrupt
    assert t.cancelled()

    def leave() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit), plait.TaskGroup() as tg:
        tg.spawn(leave)

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(asyncio.sleep, 30)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plait.run(main)


def exit_three() -> None:
    import sys

    sys.exit(3)


def test_process_that_exits_without_a_result_says_why() -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(exit_three, on="process")
    (exc,) = info.value.exceptions
    assert isinstance(exc, plait.WorkerCrashed)
    assert exc.exitcode == 3
    assert exc.signal is None
    assert "SystemExit(3)" in str(exc)


# -- issue 11 point 6: a thread strand that overran its timeout is never a success ---------


def test_thread_strand_blocked_past_its_timeout_fails_after_the_grace() -> None:
    import time

    t0 = time.monotonic()
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup(grace=0.2) as tg:
        task = tg.spawn(time.sleep, 3, timeout=0.2)
    took = time.monotonic() - t0
    (error,) = info.value.exceptions
    assert isinstance(error, TimeoutError)
    assert isinstance(error.__cause__, plait.CancellationIgnored)
    assert isinstance(task.exception(), TimeoutError)
    assert took < 0.2 + 0.2 + 1.0  # timeout + grace, not the 3 s call


def test_thread_strand_returning_after_its_timeout_is_not_a_success() -> None:
    import time

    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup(grace=5) as tg:
        task = tg.spawn(time.sleep, 0.4, timeout=0.1)
    assert info.value.subgroup(TimeoutError) is not None
    assert isinstance(task.exception(), TimeoutError)


def test_fail_after_around_a_group_with_a_blocked_thread_raises_after_the_grace() -> None:
    import time

    t0 = time.monotonic()
    with pytest.raises(TimeoutError), plait.fail_after(0.2), plait.TaskGroup(grace=0.2) as tg:
        tg.spawn(time.sleep, 3)
    assert time.monotonic() - t0 < 0.2 + 0.2 + 1.5


def test_async_fail_after_around_a_group_with_a_blocked_thread_raises_after_the_grace() -> None:
    import time

    async def main() -> None:
        async with plait.fail_after(0.2), plait.TaskGroup(grace=0.2) as tg:
            tg.spawn(time.sleep, 3)

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        plait.run(main)
    assert time.monotonic() - t0 < 0.2 + 0.2 + 1.5
