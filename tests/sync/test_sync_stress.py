"""Randomized stress: threads x two event loops x cancellations x timeouts on one object.

Each worker loops for a while, picking at random how it waits (blocking, with a timeout,
non-blocking, or cancelled part-way), and checks inside the critical section that no more
than the allowed number of strands are in. At the end every primitive must be idle:
nothing held, nobody queued, every permit back. The unmarked variants run ~0.4 s each;
the ``slow`` ones run far longer.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import threading
import time
from typing import Any

import pytest
from _sync_helpers import LoopThread

from plait._core import move_on_after
from plait._sync import CapacityLimiter, Condition, Lock, RLock, Semaphore

SHORT, LONG = 0.4, 8.0
MIN_ROUNDS = 50  # each worker's share even when a busy machine starts it late


class Guard:
    """Counts strands inside the critical section; records any breach."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.inside = 0
        self.most = 0
        self.entries = 0
        self.breach = False
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.entries += 1
            self.most = max(self.most, self.inside)
            if self.inside > self.capacity:
                self.breach = True

    def leave(self) -> None:
        with self._lock:
            self.inside -= 1


def _make(kind: str) -> tuple[Any, int]:
    if kind == "shared-lock":  # promoted to the cross-process backend first
        lock = Lock()
        pickle.dumps(lock)
        return lock, 1
    if kind == "shared-rlock":
        rlock = RLock()
        pickle.dumps(rlock)
        return rlock, 1
    if kind == "shared-semaphore":
        sem = Semaphore(3)
        pickle.dumps(sem)
        return sem, 3
    if kind == "lock":
        return Lock(), 1
    if kind == "rlock":
        return RLock(), 1
    if kind == "semaphore":
        return Semaphore(3), 3
    return CapacityLimiter(2), 2


def _sync_acquire(obj: Any, kind: str, rng: random.Random) -> bool:
    how = rng.random()
    if kind == "limiter":
        if how < 0.3:
            with move_on_after(rng.random() * 0.002):
                return bool(obj.acquire())
            return False
        return bool(obj.acquire(timeout=rng.random() * 0.003 if how < 0.6 else None))
    if how < 0.2:
        return bool(obj.acquire(False))
    if how < 0.5:
        return bool(obj.acquire(True, rng.random() * 0.003))
    if how < 0.7:
        with move_on_after(rng.random() * 0.002):
            return bool(obj.acquire())
        return False
    return bool(obj.acquire())


async def _async_acquire(obj: Any, kind: str, rng: random.Random) -> bool:
    how = rng.random()
    if kind == "limiter":
        if how < 0.3:
            try:
                return bool(await asyncio.wait_for(obj.async_acquire(), rng.random() * 0.003))
            except TimeoutError:
                return False
        return bool(await obj.async_acquire(timeout=rng.random() * 0.003 if how < 0.6 else None))
    if how < 0.15:
        return bool(await obj.async_acquire(False))
    if how < 0.35:
        timeout = rng.random() * 0.003
        return bool(await obj.async_acquire(True, timeout))
    if how < 0.55:
        try:
            async with asyncio.timeout(rng.random() * 0.002):
                return bool(await obj.async_acquire())
        except TimeoutError:
            return False
    if how < 0.7:
        try:
            return bool(await asyncio.wait_for(obj.async_acquire(), rng.random() * 0.002))
        except TimeoutError:
            return False
    return bool(await obj.async_acquire())


def _left_waiters(obj: Any) -> list[str]:
    """Who is still queued on a shared object's room (to find the path that left it)."""
    room = getattr(getattr(obj, "_shared", None), "_room", None)
    if room is None:
        return []
    return [
        f"{w!r} state={w.state} value={w.value!r} data={w.data!r} interruptible={w.interruptible}"
        for queue in room.queues
        for w in list(queue._dq)
    ]


def _run_stress(kind: str, seconds: float, seed: int) -> None:
    obj, capacity = _make(kind)
    guard = Guard(capacity)
    deadline = time.monotonic() + seconds
    errors: list[BaseException] = []

    def thread_worker(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        rounds = 0
        try:
            while time.monotonic() < deadline or rounds < MIN_ROUNDS:
                rounds += 1
                if not _sync_acquire(obj, kind, rng):
                    continue
                if kind.endswith("rlock") and rng.random() < 0.3:
                    obj.acquire()
                    obj.release()
                guard.enter()
                if rng.random() < 0.2:
                    time.sleep(0)
                guard.leave()
                obj.release()
        except BaseException as exc:
            errors.append(exc)

    async def coro_worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        rounds = 0
        while time.monotonic() < deadline or rounds < MIN_ROUNDS:
            rounds += 1
            if rng.random() < 0.15:
                # The coroutine is made here, so this strand owns what it acquires even
                # though another task runs it (as asyncio.wait_for does on 3.11).
                task = asyncio.ensure_future(obj.async_acquire())
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    got = await task
                except asyncio.CancelledError:
                    continue
                if not got:
                    continue
            elif not await _async_acquire(obj, kind, rng):
                continue
            guard.enter()
            if rng.random() < 0.3:
                await asyncio.sleep(0)
            guard.leave()
            obj.release()

    async def loop_main(base: int) -> None:
        await asyncio.gather(*(coro_worker(base + i) for i in range(3)))

    threads = [threading.Thread(target=thread_worker, args=(i,)) for i in range(3)]
    with LoopThread("stress-a") as a, LoopThread("stress-b") as b:
        futs = [a.submit(loop_main(10)), b.submit(loop_main(20))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 30)
        for f in futs:
            f.result(seconds + 30)
    assert not errors, errors
    assert not guard.breach, f"mutual exclusion broken: {guard.most} inside (cap {capacity})"
    assert guard.entries > 0
    stats = obj.statistics()
    assert stats.waiting == 0, (stats, _left_waiters(obj))
    if kind in ("lock", "rlock", "shared-lock", "shared-rlock"):
        assert not stats.locked, stats
    elif kind in ("semaphore", "shared-semaphore"):
        assert stats.value == 3, stats
    else:
        assert stats.borrowed_tokens == 0, stats


KINDS = [
    "lock",
    "rlock",
    "semaphore",
    "limiter",
    "shared-lock",
    "shared-rlock",
    "shared-semaphore",
]


@pytest.mark.parametrize("kind", KINDS)
def test_stress_short(kind: str) -> None:
    _run_stress(kind, SHORT, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_stress_long(kind: str, seed: int) -> None:
    _run_stress(kind, LONG, seed)


def _run_condition_stress(seconds: float, seed: int, shared: bool = False) -> None:
    """Producers and consumers of both kinds over one Condition: no item lost or doubled."""
    cond = Condition(Lock() if seed % 2 else RLock())
    if shared:  # the cross-process protocol, exercised by threads and coroutines here
        pickle.dumps(cond)
    items: list[int] = []
    consumed: list[int] = []
    produced = 0
    stop = time.monotonic() + seconds
    finished = False
    next_item = iter(range(10**9))

    def produce(rng: random.Random) -> None:
        nonlocal produced
        with cond:
            items.append(next(next_item))
            produced += 1
            cond.notify(rng.choice([1, 1, 2]))

    async def async_produce(rng: random.Random) -> None:
        nonlocal produced
        async with cond:
            items.append(next(next_item))
            produced += 1
            cond.notify(rng.choice([1, 1, 2]))

    def thread_consumer(n: int) -> None:
        rng = random.Random(seed + n)
        while True:
            with cond:
                if rng.random() < 0.2:
                    with move_on_after(rng.random() * 0.002):
                        cond.wait_for(lambda: items or finished)
                else:
                    cond.wait_for(lambda: items or finished, rng.random() * 0.005)
                if items:
                    consumed.append(items.pop(0))
                elif finished:
                    return
            if rng.random() < 0.3:
                produce(rng)

    async def coro_consumer(n: int) -> None:
        rng = random.Random(seed * 7 + n)
        while True:
            try:
                async with cond:
                    if rng.random() < 0.3:
                        await asyncio.wait_for(
                            cond.async_wait_for(lambda: items or finished), rng.random() * 0.003
                        )
                    else:
                        await cond.async_wait_for(lambda: items or finished, 0.005)
                    if items:
                        consumed.append(items.pop(0))
                    elif finished:
                        return
            except TimeoutError:
                pass
            if rng.random() < 0.3:
                await async_produce(rng)

    def producer() -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            produce(rng)
            time.sleep(0.0002)

    threads = [threading.Thread(target=thread_consumer, args=(i,)) for i in range(2)]
    prod = threading.Thread(target=producer)
    with LoopThread() as loop:
        futs = [loop.submit(coro_consumer(i)) for i in range(3)]
        for t in [*threads, prod]:
            t.start()
        prod.join(seconds + 30)
        with cond:
            finished = True
            cond.notify_all()
        for t in threads:
            t.join(seconds + 30)
        for f in futs:
            f.result(seconds + 30)
    assert len(consumed) + len(items) == produced
    assert len(set(consumed)) == len(consumed)
    stats = cond.statistics()
    assert stats.waiting == 0
    assert stats.lock is not None and not stats.lock.locked


def test_condition_stress_short() -> None:
    _run_condition_stress(SHORT, seed=1)
    _run_condition_stress(SHORT / 2, seed=2)


def test_shared_condition_stress_short() -> None:
    _run_condition_stress(SHORT, seed=1, shared=True)
    _run_condition_stress(SHORT / 2, seed=2, shared=True)


@pytest.mark.slow
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("seed", [3, 4])
def test_condition_stress_long(seed: int, shared: bool) -> None:
    _run_condition_stress(LONG, seed, shared)
