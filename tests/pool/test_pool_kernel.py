"""Pool waits park through plait's kernel: cancel scopes, deadlines and cancelled groups
reach them, and a cancelled wait cancels its task in the worker (issue 9, point 2)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import poolhelpers as h
import pytest

import plait
from plait.pool import Pool
from plait.testing import wait_parked


def test_move_on_after_ends_apply_and_replaces_the_worker(tmp_path: Path) -> None:
    with Pool(1) as pool:
        mark = str(tmp_path / "started")
        t0 = time.monotonic()
        with plait.move_on_after(0.5) as scope:
            pool.apply(h.mark_and_nap, (mark, 30.0))
        assert scope.cancelled_caught
        assert time.monotonic() - t0 < 3.0
        victim = h.wait_for_file(mark)
        # a sync task is stopped by replacing its worker: the pool still works
        assert pool.apply(h.square, (3,)) == 9
        assert victim not in pool.pids


def test_fail_after_ends_map_get_and_result() -> None:
    with Pool(1) as pool:
        for wait in (
            lambda: pool.map(h.nap, [30.0]),
            lambda: pool.apply_async(h.nap, (30.0,)).get(),
            lambda: pool.submit(h.nap, 30.0).result(),
            lambda: next(pool.imap(h.nap, [30.0])),
        ):
            t0 = time.monotonic()
            with pytest.raises(TimeoutError), plait.fail_after(0.3):
                wait()
            assert time.monotonic() - t0 < 3.0
        assert pool.apply(h.square, (4,)) == 16


def test_a_cancelled_wait_cancels_the_future_of_a_queued_task() -> None:
    with Pool(1) as pool:
        blocker = pool.submit(h.nap, 30.0)
        queued = pool.submit(h.square, 2)
        with plait.move_on_after(0.2):
            queued.result()
        assert queued.cancelled()
        blocker.cancel_task()  # type: ignore[attr-defined]
        assert pool.apply(h.square, (5,)) == 25


def test_the_wait_is_a_kernel_park() -> None:
    with Pool(1) as pool:
        future = pool.submit(h.nap, 30.0)
        scope = plait.CancelScope()
        errors: list[BaseException] = []

        def waiter() -> None:
            try:
                with scope:
                    future.result()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = plait.Thread(target=waiter)
        thread.start()
        wait_parked(on=future, count=1, timeout=10)
        scope.cancel()
        thread.join(10)
        assert not thread.is_alive() and not errors
        assert future.done()
        assert pool.apply(h.square, (6,)) == 36


def test_a_coroutine_task_is_cancelled_in_its_worker(tmp_path: Path) -> None:
    mark = str(tmp_path / "started")

    async def main() -> None:
        with Pool(1, concurrency=4) as pool:
            fut = pool.submit(h.async_mark_and_nap, mark, 30.0)
            await asyncio.get_running_loop().run_in_executor(None, h.wait_for_file, mark)
            pid = pool.pids[0]
            async with plait.move_on_after(0.3):
                await fut.async_result()  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while not os.path.exists(mark + ".cancelled") and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert os.path.exists(mark + ".cancelled")
            assert pool.pids == [pid]  # the worker was not replaced
            assert await pool.async_apply(h.async_square, 3) == 9

    asyncio.run(main())


def test_async_apply_leaves_at_the_deadline() -> None:
    async def main() -> float:
        with Pool(1) as pool:
            t0 = time.monotonic()
            async with plait.move_on_after(0.3):
                await pool.async_apply(h.nap, 30.0)
            took = time.monotonic() - t0
            async with plait.fail_after(10):  # the nap was stopped, not waited for
                assert await pool.async_apply(h.square, 2) == 4
            return took

    assert asyncio.run(main()) < 3.0


def test_a_cancelled_task_group_reaches_a_pool_wait(tmp_path: Path) -> None:
    mark = str(tmp_path / "started")
    with Pool(1) as pool:
        t0 = time.monotonic()
        with pytest.raises((ExceptionGroup, ValueError)) as info, plait.TaskGroup() as tg:
            tg.spawn(pool.apply, h.mark_and_nap, (mark, 30.0))
            h.wait_for_file(mark)  # the task runs in its worker: now a sibling fails
            tg.spawn(h.boom, 1)
        assert time.monotonic() - t0 < 10.0
        assert info.value is not None
        assert pool.apply_async(h.square, (7,)).get(10) == 49  # the nap was stopped


def test_join_parks_and_honours_a_scope() -> None:
    pool = Pool(1)
    pool.apply_async(h.nap, (30.0,))
    pool.close()
    t0 = time.monotonic()
    with plait.move_on_after(0.3):
        pool.join()
    assert time.monotonic() - t0 < 3.0
    pool.terminate()
    pool.join()


def test_max_pending_waits_park_and_honour_a_scope() -> None:
    with Pool(1, max_pending=1) as pool:
        first = pool.submit(h.nap, 30.0)
        t0 = time.monotonic()
        with plait.move_on_after(0.3):
            pool.submit(h.square, 1)
        assert time.monotonic() - t0 < 3.0
        first.cancel_task()  # type: ignore[attr-defined]
        assert pool.submit(h.square, 3).result(10) == 9


def test_async_for_over_imap_leaves_at_the_deadline() -> None:
    async def main() -> list[int]:
        got: list[int] = []
        with Pool(1) as pool:
            t0 = time.monotonic()
            async with plait.move_on_after(0.5):
                async for value in pool.async_imap(h.nap, [0.0, 30.0]):
                    got.append(int(value))
            assert time.monotonic() - t0 < 3.0
            async with plait.fail_after(10):  # the nap was stopped, not waited for
                assert await pool.async_apply(h.square, 3) == 9
        return got

    assert asyncio.run(main()) == [0]


def test_async_join_honours_a_scope() -> None:
    async def main() -> float:
        pool = Pool(1)
        pool.apply_async(h.nap, (30.0,))
        pool.close()
        t0 = time.monotonic()
        async with plait.move_on_after(0.3):
            await pool.async_join()
        took = time.monotonic() - t0
        pool.terminate()
        pool.join()
        return took

    assert asyncio.run(main()) < 3.0
