"""One watcher for every plait child process (issue 9, point 2): a pool's workers are
watched by plait's process watcher, not by a thread of the pool's own; a killed worker is
still noticed at once; and the pool's async joins park through the kernel, with no thread
of the loop's default executor."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import threading
import time
from typing import Any

import poolhelpers as h
import pytest

import plait
from plait._processes._watcher import get_watcher
from plait.pool import Pool

POOL_THREADS = {"plait-pool-results", "plait-pool-feeder", "plait-pool-input"}


def _watched_sentinels() -> set[int]:
    watcher = get_watcher()
    with watcher._lock:
        return set(watcher._exits)


def _wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_pool_adds_no_process_watcher_of_its_own() -> None:
    get_watcher()  # started once per program, by the first plait child of any kind
    before = {t.ident: t.name for t in threading.enumerate()}
    with Pool(2) as pool:
        assert pool.map(h.square, range(8)) == [x * x for x in range(8)]
        new = {t.name for t in threading.enumerate() if t.ident not in before}
        # the pool's own threads serve tasks; none of them watches processes
        assert new <= POOL_THREADS, new
        assert [t.name for t in threading.enumerate()].count("plait-process-watcher") == 1
        # each worker's exit is watched by the one process watcher
        sentinels = {w.sentinel for w in pool._engine.workers.values()}
        assert len(sentinels) == 2
        assert sentinels <= _watched_sentinels()
    assert not sentinels & _watched_sentinels()  # forgotten before the pool closed them


def test_a_killed_busy_worker_is_noticed_at_once() -> None:
    with Pool(2) as pool:
        t0 = time.monotonic()
        with pytest.raises(plait.WorkerCrashed):
            pool.apply_async(h.kill_self).get(10)
        assert time.monotonic() - t0 < 2.0
        assert pool.apply(h.square, (3,)) == 9


def test_a_worker_killed_from_outside_is_replaced_at_once() -> None:
    with Pool(2) as pool:
        pool.map(h.square, range(4))
        victim = pool.pids[0]
        engine = pool._engine
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        assert _wait_until(lambda: engine.stats["replaced"] >= 1, 10.0)
        assert time.monotonic() - t0 < 2.0
        assert _wait_until(lambda: len(pool.pids) == 2 and victim not in pool.pids, 10.0)
        assert pool.map(h.square, range(4)) == [0, 1, 4, 9]


class _NoThreads(concurrent.futures.ThreadPoolExecutor):
    """A default executor that refuses work: a test fails if anything hands it a call."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the pool used a thread of the loop's default executor")


def test_async_join_and_terminate_use_no_executor_thread() -> None:
    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(_NoThreads())
        pool = Pool(2)
        assert await pool.async_map(h.square, range(4)) == [0, 1, 4, 9]
        pool.close()
        async with plait.fail_after(20):
            await pool.async_join()
        assert pool.pids == []
        other = Pool(1)
        fut = other.apply_async(h.nap, (30.0,))
        t0 = time.monotonic()
        async with plait.fail_after(20):
            await other.async_terminate()
        assert time.monotonic() - t0 < 10.0
        with pytest.raises(plait.ClosedError):
            fut.get(1)
        await other.async_terminate()  # a second call does nothing
        other.join()

    asyncio.run(main())


def test_async_join_parks_and_honours_a_scope() -> None:
    async def main() -> float:
        pool = Pool(1)
        pool.apply_async(h.nap, (30.0,))
        pool.close()
        t0 = time.monotonic()
        async with plait.move_on_after(0.3):
            await pool.async_join()
        took = time.monotonic() - t0
        await pool.async_terminate()
        pool.join()
        return took

    assert asyncio.run(main()) < 3.0


def test_join_waits_for_worker_exits_through_the_kernel() -> None:
    pool = Pool(2)
    pool.map(h.square, range(4))
    workers = list(pool._engine.workers.values())
    pool.close()
    pool.join()
    assert all(w.exited.done for w in workers)
    assert not {w.sentinel for w in workers} & _watched_sentinels()


def test_on_exit_fires_once_and_forget_stops_it() -> None:
    from plait._ipc.context import get_context

    ctx = get_context()
    watcher = get_watcher()
    fired = threading.Event()
    calls: list[int] = []
    p = ctx.Process(target=h.nap, args=(0.0,))
    p.start()
    try:
        watcher.on_exit(p.sentinel, lambda: (calls.append(1), fired.set()))
        with pytest.raises(ValueError, match="already watched"):
            watcher.on_exit(p.sentinel, lambda: None)
        assert fired.wait(10)
        p.join(10)
        assert p.exitcode == 0 and calls == [1]
        assert p.sentinel not in _watched_sentinels()
    finally:
        p.join(10)
        p.close()
    q = ctx.Process(target=h.nap, args=(30.0,))
    q.start()
    try:
        watch = watcher.on_exit(q.sentinel, lambda: calls.append(2))
        watcher.forget(watch)
        assert q.sentinel not in _watched_sentinels()
        q.kill()
        q.join(10)
        watcher.forget(watch)  # forgetting twice is harmless
    finally:
        q.join(10)
        q.close()
    assert calls == [1]
