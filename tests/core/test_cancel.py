"""Cancel scopes for threads and coroutines."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import plait
from plait.testing import wait_parked


def test_move_on_after_interrupts_a_parked_thread() -> None:
    t0 = time.monotonic()
    with plait.move_on_after(0.05) as scope:
        plait.sleep(10)
    assert scope.cancelled_caught
    assert time.monotonic() - t0 < 5


def test_fail_after_raises_timeout_error() -> None:
    with pytest.raises(TimeoutError), plait.fail_after(0.02):
        plait.sleep(10)


def test_scope_without_expiry_does_nothing() -> None:
    with plait.move_on_after(10) as scope:
        plait.sleep(0)
    assert not scope.cancelled_caught


def test_cancel_from_another_thread_wakes_the_sleeper() -> None:
    scope = plait.CancelScope()
    done = threading.Event()

    def worker() -> None:
        with scope:
            plait.sleep(30)
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    wait_parked(count=1)
    scope.cancel()
    t.join(5)
    assert done.is_set() and scope.cancelled_caught


def test_checkpoint_raises_in_cancelled_scope() -> None:
    with plait.CancelScope() as scope:
        scope.cancel()
        plait.checkpoint()
        pytest.fail("checkpoint did not raise")  # pragma: no cover
    assert scope.cancelled_caught


def test_outer_cancellation_is_not_swallowed_by_inner_scope() -> None:
    with plait.CancelScope() as outer:
        with plait.move_on_after(10) as inner:
            outer.cancel()
            plait.sleep(10)
        pytest.fail("outer cancellation swallowed")  # pragma: no cover
    assert outer.cancelled_caught and not inner.cancelled_caught


def test_async_move_on_after() -> None:
    async def main() -> bool:
        async with plait.move_on_after(0.02) as scope:
            await asyncio.sleep(10)
        return scope.cancelled_caught

    assert asyncio.run(main())


def test_async_fail_after() -> None:
    async def main() -> None:
        async with plait.fail_after(0.02):
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        asyncio.run(main())


def test_async_scope_keeps_outer_cancellation() -> None:
    async def inner() -> None:
        async with plait.move_on_after(0.05):
            await asyncio.sleep(10)
        await asyncio.sleep(10)

    async def main() -> None:
        t = asyncio.create_task(inner())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(main())


def test_async_scope_cancel_from_thread() -> None:
    async def main() -> bool:
        scope = plait.CancelScope()
        threading.Timer(0.02, scope.cancel).start()
        async with scope:
            await asyncio.sleep(10)
        return scope.cancelled_caught

    assert asyncio.run(main())


def test_sync_scope_in_coroutine_is_a_clear_error() -> None:
    async def main() -> None:
        with plait.CancelScope():
            pass

    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(main())


def test_bad_timeouts() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        plait.move_on_after(-1)
    with pytest.raises(TypeError, match="number of seconds"):
        plait.fail_after("soon")  # type: ignore[arg-type]


def test_shielded_park_is_not_cut_short_by_cancel() -> None:
    from plait._core import WaitQueue, current_strand, new_mutex, park

    mutex = new_mutex()
    queue = WaitQueue(mutex)
    scope = plait.CancelScope()
    outcome: list[object] = []

    def worker() -> None:
        with scope:
            me = current_strand()
            saved, me.cancel_scopes = me.cancel_scopes, ()  # set the scopes aside
            try:
                with mutex:
                    waiter = queue.enqueue_current("shielded")
                outcome.append(park(waiter, None))
                outcome.append(waiter.value)
            finally:
                me.cancel_scopes = saved
            plait.checkpoint()  # the cancellation arrives here, after the shielded wait
            outcome.append("not cancelled")  # pragma: no cover

    t = threading.Thread(target=worker)
    t.start()
    wait_parked("shielded", count=1)
    scope.cancel()
    with mutex:
        w = queue.pop("handed")
    assert w is not None
    w.wake()
    t.join(5)
    assert outcome == [True, "handed"]
    assert scope.cancelled_caught
