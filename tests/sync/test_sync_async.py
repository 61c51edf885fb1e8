"""The async side: ``async with``, ``async_X`` waits, cancel safety and strand ownership."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest
from _sync_helpers import LoopThread, start_thread

from plait._core import move_on_after
from plait._sync import (
    Barrier,
    BoundedSemaphore,
    BrokenBarrierError,
    CapacityLimiter,
    Condition,
    Event,
    Lock,
    RLock,
    Semaphore,
)
from plait.testing import async_wait_parked, wait_parked


def arun(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# -- Lock ----------------------------------------------------------------------------


def test_lock_async_with_and_async_acquire() -> None:
    async def main() -> None:
        lock = Lock()
        async with lock:
            assert lock.locked()
            assert await lock.async_acquire(False) is False
            assert await lock.async_acquire(timeout=0.01) is False
        assert not lock.locked()
        assert await lock.async_acquire() is True
        lock.release()
        with pytest.raises(ValueError, match="non-blocking"):
            lock.async_acquire(False, 1)

    arun(main())


def test_lock_coroutines_are_served_fifo() -> None:
    async def main() -> None:
        lock = Lock()
        order: list[int] = []

        async def take(i: int) -> None:
            async with lock:
                order.append(i)

        await lock.async_acquire()
        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(take(i)))
            await async_wait_parked(on=lock, count=i + 1)
        lock.release()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]
        assert lock.statistics().waiting == 0

    arun(main())


def test_cancelled_waiter_holds_nothing() -> None:
    async def main() -> None:
        lock = Lock()
        await lock.async_acquire()
        waiter = asyncio.create_task(lock.async_acquire())
        await async_wait_parked(on=lock, count=1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert lock.statistics().waiting == 0
        lock.release()
        assert not lock.locked()

    arun(main())


@pytest.mark.parametrize("cls", [Lock, RLock])
def test_cancel_after_hand_off_passes_the_lock_on(cls: type) -> None:
    async def main() -> None:
        lock = cls()
        await lock.async_acquire()

        async def take() -> bool:  # called inside the new task, so that task is the owner
            return bool(await lock.async_acquire())

        first = asyncio.create_task(take())
        await async_wait_parked(on=lock, count=1)
        second = asyncio.create_task(take())
        await async_wait_parked(on=lock, count=2)
        lock.release()  # handed to `first` ...
        first.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second is True
        assert lock.statistics().owner is not None
        second_strand = lock.statistics().owner
        assert second_strand is not None and second_strand.kind == "async"
        # `second` finished while holding it: a plain Lock may be released by anyone.
        if cls is Lock:
            lock.release()
            assert not lock.locked()

    arun(main())


def test_asyncio_timeout_around_acquire() -> None:
    async def main() -> None:
        lock = Lock()
        await lock.async_acquire()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await lock.async_acquire()
        assert lock.statistics().waiting == 0
        lock.release()
        assert not lock.locked()

    arun(main())


def test_rlock_owner_survives_wait_for() -> None:
    """On 3.11 ``wait_for`` runs the coroutine in a new task; the caller still owns it."""

    async def main() -> None:
        rlock = RLock()
        assert await asyncio.wait_for(rlock.async_acquire(), 1) is True
        assert await asyncio.wait_for(rlock.async_acquire(), 1) is True
        assert rlock.statistics().count == 2
        async with rlock:
            assert rlock.statistics().count == 3
        rlock.release()
        rlock.release()
        assert not rlock.locked()
        # a timed-out wait_for leaves nothing held and nobody queued
        done = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with rlock:
                done.set()
                release.wait()

        thread = start_thread(hold)
        await asyncio.to_thread(done.wait)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(rlock.async_acquire(), 0.02)
        assert rlock.statistics().waiting == 0
        release.set()
        await asyncio.to_thread(thread.join)
        assert not rlock.locked()

    arun(main())


def test_rlock_is_owned_by_the_task_not_the_thread() -> None:
    async def main() -> None:
        rlock = RLock()
        await rlock.async_acquire()

        async def other() -> bool:
            return await rlock.async_acquire(False)

        assert await asyncio.create_task(other()) is False
        with pytest.raises(RuntimeError, match="un-acquired"):
            await asyncio.create_task(_release(rlock))
        rlock.release()

    async def _release(lock: RLock) -> None:
        lock.release()

    arun(main())


# -- one object, threads and coroutines on two loops ---------------------------------


def test_lock_fifo_across_threads_and_two_loops() -> None:
    lock = Lock()
    order: list[str] = []
    lock.acquire()

    def thread_take(name: str) -> None:
        with lock:
            order.append(name)

    async def coro_take(name: str) -> None:
        async with lock:
            order.append(name)

    with LoopThread("a") as loop_a, LoopThread("b") as loop_b:
        t1 = start_thread(thread_take, "t1")
        wait_parked(on=lock, count=1)
        fa = loop_a.submit(coro_take("a"))
        wait_parked(on=lock, count=2)
        t2 = start_thread(thread_take, "t2")
        wait_parked(on=lock, count=3)
        fb = loop_b.submit(coro_take("b"))
        wait_parked(on=lock, count=4)
        stats = lock.statistics()
        assert dict(stats.waiting_by_kind) == {"thread": 2, "async": 2}
        lock.release()
        fa.result(10)
        fb.result(10)
        t1.join(10)
        t2.join(10)
    assert order == ["t1", "a", "t2", "b"]
    assert not lock.locked()


def test_semaphore_permit_not_lost_on_cancel() -> None:
    async def main() -> None:
        sem = Semaphore(0)
        first = asyncio.create_task(sem.async_acquire())
        await async_wait_parked(on=sem, count=1)
        second = asyncio.create_task(sem.async_acquire())
        await async_wait_parked(on=sem, count=2)
        sem.release()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second is True
        sem.release()
        assert sem.statistics().value == 1
        async with sem:
            assert sem.locked()
        assert await sem.async_acquire(timeout=0.001) is True
        assert await sem.async_acquire(timeout=0.001) is False
        sem.release()

    arun(main())


def test_semaphore_thread_and_coroutine_share_permits() -> None:
    sem = BoundedSemaphore(2)
    with LoopThread() as loop:
        sem.acquire()
        sem.acquire()
        fut = loop.submit(sem.async_acquire())
        wait_parked(on=sem, count=1)
        got: list[bool] = []
        thread = start_thread(lambda: got.append(sem.acquire(timeout=5)))
        wait_parked(on=sem, count=2)
        sem.release(2)
        assert fut.result(10) is True
        thread.join(10)
        assert got == [True]
    sem.release(2)
    with pytest.raises(ValueError, match="too many"):
        sem.release()
    assert sem.statistics().value == 2


# -- Condition -----------------------------------------------------------------------


def test_condition_notification_passes_on_when_cancelled() -> None:
    async def main() -> None:
        cond = Condition(Lock())
        woken: list[str] = []

        async def waiter(name: str) -> None:
            async with cond:
                await cond.async_wait()
                woken.append(name)

        first = asyncio.create_task(waiter("first"))
        await async_wait_parked(on=cond, count=1)
        second = asyncio.create_task(waiter("second"))
        await async_wait_parked(on=cond, count=2)
        async with cond:
            cond.notify(1)
            first.cancel()  # notified, then cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 5)
        assert woken == ["second"]
        assert not cond._lock.locked()

    arun(main())


def test_condition_timeout_retakes_the_lock() -> None:
    async def main() -> None:
        cond = Condition()
        async with cond:
            assert await cond.async_wait(0.01) is False
            assert cond._lock.statistics().count == 1
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(cond.async_wait(), 0.01)
            assert cond._lock.statistics().count == 1
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await cond.async_wait()
            assert cond._is_owned()
            assert await cond.async_wait_for(lambda: 7) == 7
            assert await cond.async_wait_for(lambda: 0, 0.01) == 0
        assert not cond._lock.locked()
        with pytest.raises(RuntimeError, match="un-acquired"):
            await cond.async_wait()

    arun(main())


def test_condition_wakes_threads_and_coroutines() -> None:
    cond = Condition()
    ready: list[str] = []
    with LoopThread() as loop:

        async def coro() -> bool:
            async with cond:
                return bool(await cond.async_wait_for(lambda: ready, 5))

        def thread_fn() -> None:
            with cond:
                assert cond.wait_for(lambda: ready, 5)

        fut = loop.submit(coro())
        thread = start_thread(thread_fn)
        wait_parked(on=cond, count=2)
        assert dict(cond.statistics().waiting_by_kind) == {"async": 1, "thread": 1}
        with cond:
            ready.append("go")
            cond.notify_all()
        assert fut.result(10) is True
        thread.join(10)
    assert cond.statistics().waiting == 0


def test_sync_condition_wait_in_a_cancelled_scope_retakes_the_lock() -> None:
    cond = Condition()
    with cond:
        with move_on_after(0.01) as scope:
            cond.wait()
        assert scope.cancelled_caught
        assert cond._is_owned()
    assert not cond._lock.locked()


# -- Event, Barrier, CapacityLimiter --------------------------------------------------


def test_event_set_from_a_thread_wakes_coroutines_on_two_loops() -> None:
    event = Event()
    with LoopThread() as a, LoopThread() as b:
        fa = a.submit(event.async_wait())
        fb = b.submit(event.async_wait(5))
        wait_parked(on=event, count=2)
        start_thread(event.set).join()
        assert fa.result(10) is True
        assert fb.result(10) is True

    async def timeout() -> None:
        e = Event()
        assert await e.async_wait(0.01) is False
        assert await e.async_wait(0) is False
        e.set()
        assert await e.async_wait() is True

    arun(timeout())


def test_barrier_threads_and_coroutines_together() -> None:
    barrier = Barrier(4)
    with LoopThread() as loop:
        futs = [loop.submit(barrier.async_wait()) for _ in range(2)]
        results: list[int] = []
        threads = [start_thread(lambda: results.append(barrier.wait())) for _ in range(2)]
        for t in threads:
            t.join(10)
        results += [f.result(10) for f in futs]
    assert sorted(results) == [0, 1, 2, 3]

    async def broken() -> None:
        b = Barrier(2)
        with pytest.raises(BrokenBarrierError):
            await b.async_wait(0.01)
        assert b.broken
        b.reset()
        assert not b.broken

    arun(broken())


def test_capacity_limiter() -> None:
    from plait._errors import WouldBlock

    with pytest.raises(TypeError):
        CapacityLimiter(1.5)
    with pytest.raises(ValueError, match=">= 1"):
        CapacityLimiter(0)
    limiter = CapacityLimiter(1)
    limiter.acquire()
    with pytest.raises(RuntimeError, match="already holding"):
        limiter.acquire_nowait()
    with pytest.raises(WouldBlock):
        limiter.acquire_on_behalf_of_nowait("job")
    assert limiter.acquire_on_behalf_of("job", timeout=0.01) is False
    assert (limiter.borrowed_tokens, limiter.available_tokens) == (1, 0)
    got: list[bool] = []
    thread = start_thread(lambda: got.append(limiter.acquire_on_behalf_of("job", 5)))
    wait_parked(on=limiter, count=1)
    limiter.total_tokens = 2  # lets the waiter in at once
    thread.join(10)
    assert got == [True]
    assert set(limiter.statistics().borrowers) >= {"job"}
    limiter.release_on_behalf_of("job")
    limiter.release()
    with pytest.raises(RuntimeError, match="isn't holding"):
        limiter.release()

    async def main() -> None:
        lim = CapacityLimiter(1)
        async with lim:
            assert lim.borrowed_tokens == 1
            other = asyncio.create_task(lim.async_acquire_on_behalf_of("x"))
            await async_wait_parked(on=lim, count=1)
            third = asyncio.create_task(lim.async_acquire_on_behalf_of("y"))
            await async_wait_parked(on=lim, count=2)
        other.cancel()  # handed the token, then cancelled: it goes to "y"
        with pytest.raises(asyncio.CancelledError):
            await other
        assert await third is True
        assert lim.statistics().borrowers == ("y",)
        lim.release_on_behalf_of("y")
        assert lim.borrowed_tokens == 0

    arun(main())


# -- thread-side cancellation -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["lock", "rlock", "semaphore", "event", "limiter"])
def test_cancel_scope_interrupts_a_waiting_thread(kind: str) -> None:
    lock = Lock()
    rlock = RLock()
    sem = Semaphore(0)
    event = Event()
    limiter = CapacityLimiter(1)
    limiter.acquire_on_behalf_of("holder")
    holder = start_thread(rlock.acquire)
    holder.join()
    lock.acquire()
    waits = {
        "lock": lock.acquire,
        "rlock": rlock.acquire,
        "semaphore": sem.acquire,
        "event": event.wait,
        "limiter": limiter.acquire,
    }
    with move_on_after(0.02) as scope:
        waits[kind]()
    assert scope.cancelled_caught
    for obj in (lock, rlock, sem, event, limiter):
        assert obj.statistics().waiting == 0


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout")
def test_loop_not_blocked_while_coroutines_wait() -> None:
    async def main() -> None:
        lock = Lock()
        lock.acquire()
        waiter = asyncio.create_task(lock.async_acquire())
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 5 and not waiter.done()
        start_thread(lock.release).join()
        assert await waiter is True
        lock.release()

    arun(main())


def test_async_acquire_belongs_to_the_strand_that_calls_it() -> None:
    """The owner is whoever *calls* ``async_acquire()``, even if another task awaits it
    (``asyncio.wait_for`` on 3.11, ``create_task``, ``ensure_future``)."""

    async def main() -> None:
        rlock = RLock()
        assert await asyncio.create_task(rlock.async_acquire()) is True
        assert rlock._is_owned()  # this task owns it, not the finished helper task
        rlock.release()
        assert not rlock.locked()

    arun(main())
