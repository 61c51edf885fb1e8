"""The ``concurrent.futures.Executor`` face."""

from __future__ import annotations

import time
from concurrent.futures import CancelledError, Executor, as_completed, wait

import poolhelpers as h
import pytest

from plait.pool import Pool


def test_is_an_executor(pool: Pool) -> None:
    assert isinstance(pool, Executor)


def test_submit_and_as_completed(pool: Pool) -> None:
    futures = [pool.submit(h.add, i, b=1) for i in range(20)]
    assert sorted(f.result() for f in as_completed(futures, timeout=10)) == list(range(1, 21))
    wait(futures)
    with pytest.raises(ValueError, match="boom"):
        pool.submit(h.boom, 1).result(10)


def test_map_with_several_iterables_timeout_and_chunksize(pool: Pool) -> None:
    assert list(pool.map(h.add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    assert list(pool.map(h.square, range(10), chunksize=3)) == [x * x for x in range(10)]
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        list(pool.map(h.nap, [5.0], timeout=0.1))
    assert time.monotonic() - t0 < 2


def test_shutdown_waits() -> None:
    p = Pool(1)
    futures = [p.submit(h.nap, 0.05) for _ in range(3)]
    p.shutdown(wait=True)
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError):
        p.submit(h.square, 1)


def test_shutdown_cancel_futures_drops_work_not_started(tmp_path: object) -> None:
    p = Pool(1)
    running = p.submit(h.nap, 0.3)
    time.sleep(0.05)
    queued = [p.submit(h.nap, 10) for _ in range(5)]
    p.shutdown(wait=True, cancel_futures=True)
    assert running.result(0) == 0.3
    cancelled = [f for f in queued if f.cancelled()]
    assert len(cancelled) >= 4  # one may already sit with the worker
    for f in cancelled:
        with pytest.raises(CancelledError):
            f.result(0)


def test_future_cancel_before_start(pool: Pool) -> None:
    blockers = [pool.submit(h.nap, 0.3) for _ in range(4)]
    late = pool.submit(h.square, 3)
    assert late.cancel()
    assert [b.result(10) for b in blockers] == [0.3] * 4
    assert late.cancelled()
    assert pool.statistics().tasks_outstanding == 0


def test_with_block_as_executor() -> None:
    with Pool(2) as ex:
        fut = ex.submit(h.square, 6)
    assert fut.result(0) == 36
