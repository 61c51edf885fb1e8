"""``Pool(backend="dask")`` and ``Pool(backend="ray")`` against real clusters: the same tests.

One cluster serves each backend's tests (pytest runs a module-scoped parameter's tests
together): a ``distributed.LocalCluster`` of 2 worker processes, then a local Ray instance
of 2 CPUs. Each test connects its own pool to it (Dask: ``address=``; Ray: the pool finds
this process already connected), which costs a client, not a cluster. The suite's check
that a test leaves no child process behind is narrowed here to the processes a test
started itself (the module's cluster outlives each test by design); the cluster's own
processes must all be gone when its tests end.

The ``test`` extra installs Ray where it has wheels (Python < 3.14; an instance takes
5-25 s to start on 2 loaded cores); without ``ray`` its half skips, saying how to run it
(``pip install -e '.[test,ray]'``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("distributed", reason="the Dask backend needs 'distributed' (plait[dask])")

import clusterhelpers as ch

import plait
from plait import Pool
from plait._ipc.serialize import RemoteTraceback
from plait.pool.backends._dask import local_cluster

_cluster_pids: set[int] = set()


@dataclass
class Cluster:
    """A running cluster of one backend, and how a test's pool connects to it."""

    backend: str
    address: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def pool(self, **kwargs: Any) -> Pool:
        return Pool(backend=self.backend, address=self.address, **kwargs)


def _dask_cluster() -> Iterator[Cluster]:
    cluster = local_cluster(2)  # as the pool starts one
    try:
        yield Cluster("dask", cluster.scheduler_address)
    finally:
        cluster.close(timeout=20)


def _ray_cluster() -> Iterator[Cluster]:
    import ray

    ch.let_ray_import_helpers()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield Cluster("ray")
    finally:
        ray.shutdown()


@pytest.fixture(scope="module", params=ch.BACKENDS)
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    before = ch.child_pids()
    start = _dask_cluster if request.param == "dask" else _ray_cluster
    running = start()
    try:
        c = next(running)
        _cluster_pids.update(ch.child_pids() - before)
        yield c
    finally:
        running.close()
        left = ch.reap(_cluster_pids | (ch.child_pids() - before), timeout=15.0)
        _cluster_pids.clear()
        assert not left, f"the {request.param} cluster left processes alive: {left}"


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """The suite's check (tests/conftest.py), less the module cluster's processes (Ray
    starts worker processes on demand: any process under the cluster's own counts)."""
    before = ch.child_pids()
    yield
    warm = sys.modules.get("plait.pool._warm")
    if warm is not None:
        warm.shutdown_warm_workers(timeout=2.0)
    new = {p for p in ch.child_pids() - before - _cluster_pids if not ch.under(p, _cluster_pids)}
    left = ch.reap(new, timeout=5.0)
    assert not left, f"test left child processes alive: {left}"


@pytest.fixture
def pool(cluster: Cluster) -> Iterator[Pool]:
    p = cluster.pool()
    try:
        yield p
    finally:
        p.terminate()
        p.join()


def cancel_seen(cluster: Cluster, held: Path, timeout: float = 15.0) -> bool:
    """Whether the engine cancelled the task :func:`clusterhelpers.hold` runs: on Dask the
    worker saw its task cancelled (and wrote ``held/cancelled``); on Ray the task's worker
    process was killed (``ray.cancel(force=True)``)."""
    if cluster.backend == "dask":
        return ch.wait_for_file(held / "cancelled", timeout)
    assert ch.wait_for_file(held / "pid", timeout), "the task never started"
    try:
        psutil.Process(int((held / "pid").read_text())).wait(timeout)  # (Ray's raylet reaps it)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return False
    return True


# -- the API --------------------------------------------------------------------------


def test_multiprocessing_api_on_a_cluster(pool: Pool) -> None:
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


def test_executor_api_on_a_cluster(pool: Pool) -> None:
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


def test_max_pending_bounds_unfinished_tasks(cluster: Cluster) -> None:
    with cluster.pool(max_pending=2) as p:
        futures = []
        for i in range(6):
            futures.append(p.submit(ch.nap, 0.05))
            assert p.statistics().tasks_outstanding <= 2, i
        assert [f.result(timeout=30) for f in futures] == [0.05] * 6


def test_progress_bar_on_a_cluster(pool: Pool, capsys: pytest.CaptureFixture[str]) -> None:
    assert pool.map(ch.square, range(40), progress=True) == [x * x for x in range(40)]
    assert list(pool.imap(ch.square, range(10), progress=True)) == [x * x for x in range(10)]
    err = capsys.readouterr().err
    assert "square" in err and "40" in err


def test_async_faces_on_a_cluster(pool: Pool) -> None:
    async def main() -> tuple[int, list[int]]:
        one = await pool.async_apply(ch.square, 5)
        many = await pool.async_map(ch.square, range(4))
        return one, many

    assert asyncio.run(main()) == (25, [0, 1, 4, 9])


# -- timeouts and cancellation reach the engine -------------------------------------------


def test_task_timeout_cancels_the_engine_task(cluster: Cluster, pool: Pool, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="task_timeout"):
        pool.apply(ch.hold, (str(tmp_path),), task_timeout=0.5)
    assert time.monotonic() - started < 10
    assert cancel_seen(cluster, tmp_path), "the engine never cancelled the task"
    assert pool.apply(ch.square, (4,)) == 16  # the pool goes on
    assert pool.statistics().timed_out == 1


def test_results_come_back_while_an_earlier_task_still_runs(pool: Pool, tmp_path: Path) -> None:
    """A long task does not hold back the results of the many tasks sent after it (more
    than the oldest refs one Ray ``ray.wait`` looks at: the rest are found as those end)."""
    held = pool.apply_async(ch.hold, (str(tmp_path),))
    assert ch.wait_for_file(tmp_path / "pid", 15.0), "the long task never started"
    assert pool.map(ch.square, range(600), chunksize=1) == [x * x for x in range(600)]
    assert not held.ready(), "the results waited for the long task to end"


def test_cancel_scope_around_apply_cancels_the_engine_task(
    cluster: Cluster, pool: Pool, tmp_path: Path
) -> None:
    with plait.move_on_after(0.5) as scope:
        pool.apply(ch.hold, (str(tmp_path),))
    assert scope.cancelled_caught
    assert cancel_seen(cluster, tmp_path), "the engine never cancelled the task"


def test_terminate_fails_unfinished_tasks(cluster: Cluster) -> None:
    p = cluster.pool()
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


def test_spawn_on_a_cluster_pool(pool: Pool) -> None:
    with plait.TaskGroup() as tg:
        ok = tg.spawn(ch.add, 2, 3, on=pool)
    assert ok.result() == 5
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(ch.fail_on, 3, on=pool)
    (error,) = info.value.exceptions
    assert isinstance(error, ValueError)
    assert isinstance(error.__cause__, RemoteTraceback)


def test_spawn_on_a_cluster_pool_times_out_and_cancels(
    cluster: Cluster, pool: Pool, tmp_path: Path
) -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(ch.hold, str(tmp_path), on=pool, timeout=0.5)
    assert info.group_contains(TimeoutError)
    assert cancel_seen(cluster, tmp_path), "the engine never cancelled the task"


# -- what cannot cross a cluster -----------------------------------------------------------


ALTERNATIVES = {
    "dask": {
        "Queue": "distributed.Queue",
        "Lock": "distributed.Lock",
        "Event": "distributed.Event",
    },
    "ray": {"Queue": "ray.util.queue.Queue", "Lock": "Ray actor", "Event": "Ray actor"},
}


@pytest.mark.parametrize(
    ("make", "name"), [(plait.Queue, "Queue"), (plait.Lock, "Lock"), (plait.Event, "Event")]
)
def test_shared_objects_refused_for_a_cluster(
    cluster: Cluster, pool: Pool, make: Any, name: str
) -> None:
    alternative = ALTERNATIVES[cluster.backend][name]
    obj = make()
    with pytest.raises(TypeError, match=name) as info:
        pool.apply(ch.square, (obj,))
    assert alternative in str(info.value) and "another machine" in str(info.value)
    with pytest.raises(TypeError, match=alternative):
        pool.map(ch.square, [1, {"deep": [obj]}])
    assert pool.apply(ch.square, (2,)) == 4  # nothing else is lost


def test_shared_dict_refused_for_a_cluster(pool: Pool) -> None:
    with plait.Manager() as manager:
        shared = manager.dict()
        with pytest.raises(TypeError, match="Dict"):
            pool.apply(ch.square, (shared,))


# -- bad input -----------------------------------------------------------------------------


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'local', 'dask', 'ray'"):
        Pool(backend="spark")


@pytest.mark.parametrize(("backend", "module"), [("dask", "distributed"), ("ray", "ray")])
def test_missing_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, backend: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ImportError, match=rf"pip install 'plait\[{backend}\]'"):
        Pool(backend=backend)


@pytest.mark.parametrize(
    ("backend", "address"),
    [("dask", "tcp://127.0.0.1:9"), pytest.param("ray", "127.0.0.1:9", marks=ch.BACKENDS[1].marks)],
)
def test_unreachable_address_fails_fast(backend: str, address: str) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=re.escape(repr(address))):
        Pool(backend=backend, address=address, connect_timeout=1.0)
    assert time.monotonic() - started < 10


def test_options_the_cluster_owns_are_refused() -> None:
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(backend="dask", maxtasksperchild=3)
    with pytest.raises(ValueError, match="needs a cluster backend"):
        Pool(address="tcp://127.0.0.1:9")
    with pytest.raises(ValueError, match="connect_timeout"):
        Pool(backend="dask", connect_timeout=0)
