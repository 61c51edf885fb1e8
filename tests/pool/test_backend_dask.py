"""``Pool(backend="dask")`` against a real ``distributed.LocalCluster`` of worker processes.

One cluster (2 worker processes) serves the whole module; each test connects its own pool
to it (``address=``), which costs a client, not a cluster. The suite's check that a test
leaves no child process behind is narrowed here to the processes a test started itself
(the module's cluster outlives each test by design); the cluster's own processes must all
be gone when the module ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed", reason="the Dask backend needs 'distributed' (plait[dask])")

import clusterhelpers as ch
import dask
from distributed import LocalCluster

import plait
from plait import Pool
from plait._ipc.serialize import RemoteTraceback

_cluster_pids: set[int] = set()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    before = ch.child_pids()
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    started = ch.child_pids() - before
    _cluster_pids.update(started)
    try:
        yield cluster
    finally:
        cluster.close(timeout=20)
        left = ch.reap(started | (ch.child_pids() - before))
        _cluster_pids.clear()
        assert not left, f"the Dask cluster left processes alive: {left}"


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """The suite's check (tests/conftest.py), less the module cluster's processes."""
    before = ch.child_pids()
    yield
    warm = sys.modules.get("plait.pool._warm")
    if warm is not None:
        warm.shutdown_warm_workers(timeout=2.0)
    new = ch.child_pids() - before - _cluster_pids
    left = ch.reap(new, timeout=5.0)
    assert not left, f"test left child processes alive: {left}"


@pytest.fixture
def pool(cluster: Any) -> Iterator[Pool]:
    p = Pool(backend="dask", address=cluster.scheduler_address)
    try:
        yield p
    finally:
        p.terminate()
        p.join()


# -- the API --------------------------------------------------------------------------


def test_multiprocessing_api_on_dask(pool: Pool) -> None:
    assert pool.map(ch.square, range(20)) == [x * x for x in range(20)]
    assert pool.map(ch.square, range(20), 3) == [x * x for x in range(20)]
    assert pool.starmap(ch.add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.apply(ch.add, (1,), {"b": 5}) == 6
    got: list[Any] = []
    done = threading.Event()
    result = pool.apply_async(ch.square, (9,), callback=lambda v: (got.append(v), done.set()))
    assert result.get(timeout=30) == 81
    assert done.wait(10) and got == [81]
    assert pool.map_async(ch.square, [1, 2]).get(timeout=30) == [1, 4]
    assert list(pool.imap(ch.square, iter(range(30)))) == [x * x for x in range(30)]
    assert sorted(pool.imap_unordered(ch.square, range(30), chunksize=4)) == sorted(
        x * x for x in range(30)
    )


def test_executor_api_on_dask(pool: Pool) -> None:
    futures = [pool.submit(ch.add, i, b=1) for i in range(5)]
    assert [f.result(timeout=30) for f in futures] == [1, 2, 3, 4, 5]
    done, _ = concurrent.futures.wait(futures, timeout=30)
    assert len(done) == 5
    assert list(pool.map(ch.add, [1, 2], [10, 20], timeout=30)) == [11, 22]
    stats = pool.statistics()
    assert stats.state == "running" and stats.processes == 2 and pool.pids == []


def test_tiny_tasks_are_chunked(pool: Pool) -> None:
    """1000 items are one engine task per chunk (about 4 per worker), not 1000."""
    first = next(pool._engine.ids)
    assert pool.map(ch.square, range(1000)) == [x * x for x in range(1000)]
    engine_tasks = next(pool._engine.ids) - first - 1
    assert engine_tasks == 8  # map's rule: ceil(1000 / (2 workers * 4)) = 125 per chunk


def test_errors_carry_the_remote_traceback(pool: Pool) -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        pool.apply(ch.fail_on, (3,))
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "fail_on" in str(info.value.__cause__)
    with pytest.raises(ValueError, match="bad item 3"):
        pool.map(ch.fail_on, range(6))
    it = pool.imap(ch.fail_on, range(5), chunksize=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(it)
    assert next(it) == 4  # one item's error leaves the others


def test_a_task_exiting_fails_only_that_task(pool: Pool) -> None:
    with pytest.raises(plait.WorkerCrashed, match="SystemExit"):
        pool.apply(ch.exit_task)
    assert pool.apply(ch.square, (3,)) == 9


def test_max_pending_bounds_unfinished_tasks(cluster: Any) -> None:
    with Pool(backend="dask", address=cluster.scheduler_address, max_pending=2) as p:
        futures = []
        for i in range(6):
            futures.append(p.submit(ch.nap, 0.05))
            assert p.statistics().tasks_outstanding <= 2, i
        assert [f.result(timeout=30) for f in futures] == [0.05] * 6


def test_progress_bar_on_dask(pool: Pool, capsys: pytest.CaptureFixture[str]) -> None:
    assert pool.map(ch.square, range(40), progress=True) == [x * x for x in range(40)]
    assert list(pool.imap(ch.square, range(10), progress=True)) == [x * x for x in range(10)]
    err = capsys.readouterr().err
    assert "square" in err and "40" in err


def test_async_faces_on_dask(pool: Pool) -> None:
    async def main() -> tuple[int, list[int]]:
        one = await pool.async_apply(ch.square, 5)
        many = await pool.async_map(ch.square, range(4))
        return one, many

    assert asyncio.run(main()) == (25, [0, 1, 4, 9])


# -- timeouts and cancellation reach the engine -------------------------------------------


def test_task_timeout_cancels_the_dask_future(pool: Pool, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="task_timeout"):
        pool.apply(ch.wait_for_cancel, (str(marker),), task_timeout=0.5)
    assert time.monotonic() - started < 10
    assert ch.wait_for_file(marker, 15), "the worker never saw its task cancelled"
    assert pool.apply(ch.square, (4,)) == 16  # the pool goes on
    assert pool.statistics().timed_out == 1


def test_cancel_scope_around_apply_cancels_the_dask_future(pool: Pool, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    with plait.move_on_after(0.5) as scope:
        pool.apply(ch.wait_for_cancel, (str(marker),))
    assert scope.cancelled_caught
    assert ch.wait_for_file(marker, 15), "the worker never saw its task cancelled"


def test_terminate_fails_unfinished_tasks(cluster: Any) -> None:
    p = Pool(backend="dask", address=cluster.scheduler_address)
    try:
        futures = [p.submit(ch.nap, 2.0) for _ in range(4)]
    finally:
        p.terminate()
        p.join()
    for f in futures:
        with pytest.raises(plait.ClosedError):
            f.result(timeout=10)
    with pytest.raises(plait.PoolClosedError):
        p.submit(ch.square, 1)


# -- TaskGroup strands on a pool ----------------------------------------------------------


def test_spawn_on_a_dask_pool(pool: Pool) -> None:
    with plait.TaskGroup() as tg:
        ok = tg.spawn(ch.add, 2, 3, on=pool)
    assert ok.result() == 5
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(ch.fail_on, 3, on=pool)
    (error,) = info.value.exceptions
    assert isinstance(error, ValueError)
    assert isinstance(error.__cause__, RemoteTraceback)


def test_spawn_on_a_dask_pool_times_out_and_cancels(pool: Pool, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(ch.wait_for_cancel, str(marker), on=pool, timeout=0.5)
    assert info.group_contains(TimeoutError)
    assert ch.wait_for_file(marker, 15), "the worker never saw its task cancelled"


# -- what cannot cross a cluster -----------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "name", "alternative"),
    [
        (plait.Queue, "Queue", "distributed.Queue"),
        (plait.Lock, "Lock", "distributed.Lock"),
        (plait.Event, "Event", "distributed.Event"),
    ],
)
def test_shared_objects_refused_for_dask(
    pool: Pool, make: Any, name: str, alternative: str
) -> None:
    obj = make()
    with pytest.raises(TypeError, match=name) as info:
        pool.apply(ch.square, (obj,))
    assert alternative in str(info.value) and "another machine" in str(info.value)
    with pytest.raises(TypeError, match=alternative):
        pool.map(ch.square, [1, {"deep": [obj]}])
    assert pool.apply(ch.square, (2,)) == 4  # nothing else is lost


def test_shared_dict_refused_for_dask(pool: Pool) -> None:
    with plait.Manager() as manager:
        shared = manager.dict()
        with pytest.raises(TypeError, match="Dict"):
            pool.apply(ch.square, (shared,))


# -- bad input -----------------------------------------------------------------------------


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'local', 'dask', 'ray'"):
        Pool(backend="spark")


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'plait\[dask\]'"):
        Pool(backend="dask")


def test_unreachable_address_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=r"tcp://127\.0\.0\.1:9"):
        Pool(backend="dask", address="tcp://127.0.0.1:9", connect_timeout=1.0)
    assert time.monotonic() - started < 10


def test_options_the_cluster_owns_are_refused() -> None:
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(backend="dask", maxtasksperchild=3)
    with pytest.raises(ValueError, match="needs a cluster backend"):
        Pool(address="tcp://127.0.0.1:9")
    with pytest.raises(ValueError, match="connect_timeout"):
        Pool(backend="dask", connect_timeout=0)
