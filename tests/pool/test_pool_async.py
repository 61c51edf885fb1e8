"""From coroutines (any loop) and coroutines inside workers (processes x coroutines)."""

from __future__ import annotations

import asyncio
import threading
import time

import poolhelpers as h
import pytest

from plait._ipc.serialize import RemoteTraceback
from plait.pool import Pool


def test_async_apply_map_and_imap(pool: Pool) -> None:
    async def main() -> None:
        assert await pool.async_apply(h.add, 1, b=2) == 3
        assert await pool.async_map(h.square, range(10)) == [x * x for x in range(10)]
        assert await pool.async_starmap(h.add, [(1, 2)]) == [3]
        got = [r async for r in pool.async_imap(h.square, range(20))]
        assert got == [x * x for x in range(20)]
        unordered = [r async for r in pool.async_imap_unordered(h.square, range(20))]
        assert sorted(unordered) == sorted(got)
        fut = await pool.async_submit(h.square, 9)
        assert await fut == 81
        assert await pool.apply_async(h.square, (4,)) == 16  # AsyncResult is awaitable
        with pytest.raises(ValueError, match="boom") as info:
            await pool.async_apply(h.boom, 2)
        assert isinstance(info.value.__cause__, RemoteTraceback)

    asyncio.run(main())


def test_async_calls_do_not_block_the_loop(pool: Pool) -> None:
    async def main() -> float:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        await pool.async_apply(h.nap, 0.3)
        t.cancel()
        return ticks

    assert asyncio.run(main()) >= 10


def test_works_from_loops_in_other_threads(pool: Pool) -> None:
    results: list[int] = []

    def in_thread(i: int) -> None:
        results.append(asyncio.run(pool.async_apply(h.square, i)))

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 4, 9]


def test_uvloop_too(pool: Pool) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert uvloop.run(pool.async_apply(h.square, 5)) == 25


def test_coroutine_functions_run_in_the_workers(pool: Pool) -> None:
    assert pool.apply(h.async_square, (6,)) == 36
    assert pool.map(h.async_square, range(5)) == [0, 1, 4, 9, 16]
    with pytest.raises(KeyError, match="async boom"):
        pool.apply(h.async_boom, (1,))


def test_concurrency_per_worker_overlaps_coroutines() -> None:
    with Pool(2, concurrency=50) as p:
        t0 = time.monotonic()
        pids = p.map(h.async_nap, [0.2] * 100, chunksize=10)
        elapsed = time.monotonic() - t0
    # 100 naps of 0.2 s: one at a time per worker would take 5 s on 2 workers, 10 s on one;
    # under 3 s they overlapped inside the workers. (Which workers ran them depends on how
    # fast the second one starts on a loaded machine, so it is not asserted.)
    assert elapsed < 3.0, elapsed
    assert len(pids) == 100


def test_concurrency_submits_and_errors() -> None:
    with Pool(1, concurrency=10) as p:
        futures = [p.submit(h.async_nap, 0.2) for _ in range(10)]
        t0 = time.monotonic()
        assert len({f.result(10) for f in futures}) == 1
        assert time.monotonic() - t0 < 1.5
        with pytest.raises(KeyError):
            p.apply(h.async_boom)
        assert p.apply(h.square, (3,)) == 9  # plain functions run too


def test_coroutine_timeout_in_concurrent_worker() -> None:
    with Pool(1, concurrency=4) as p:
        slow = p.apply_async(h.async_nap, (10,), task_timeout=0.2)
        quick = p.apply_async(h.async_nap, (0.1,))
        with pytest.raises(TimeoutError, match="cancelled in its worker"):
            slow.get(5)
        assert quick.get(5) > 0


def test_async_shutdown_and_terminate() -> None:
    async def main() -> None:
        p = Pool(1)
        fut = await p.async_submit(h.nap, 0.05)
        await p.async_shutdown()
        assert fut.done()
        q = Pool(1)
        slow = q.apply_async(h.nap, (30,))
        await q.async_terminate()
        assert slow.ready()
        q.join()

    asyncio.run(main())
