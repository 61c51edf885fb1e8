"""``Pool(backend="ray")`` against a real local Ray instance.

Ray is not in the ``test`` extra (its wheel is large and a local instance takes seconds
to start on 2 cores), so these tests are skipped unless ``ray`` is installed; run them
with ``pip install -e '.[test,ray]' && python -m pytest tests/pool/test_backend_ray.py``.
One Ray instance serves the module (the pool that starts it stops it at the end).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("ray", reason="the Ray backend needs 'ray': pip install 'plait[ray]'")

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to a busy GCS

import clusterhelpers as ch

import plait
from plait import Pool
from plait._ipc.serialize import RemoteTraceback

_ray_pids: set[int] = set()


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    before = ch.child_pids()
    p = Pool(2, backend="ray")
    _ray_pids.update(ch.child_pids() - before)
    try:
        yield p
    finally:
        p.terminate()
        p.join()
        left = ch.reap(ch.child_pids() - before, timeout=15.0)
        _ray_pids.clear()
        assert not left, f"Ray left processes alive: {left}"


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """The suite's check (tests/conftest.py), less the module's Ray processes (Ray starts
    worker processes on demand, so any process under Ray's own counts as Ray's)."""
    before = ch.child_pids()
    yield
    warm = sys.modules.get("plait.pool._warm")
    if warm is not None:
        warm.shutdown_warm_workers(timeout=2.0)
    new = {p for p in ch.child_pids() - before - _ray_pids if not ch.under(p, _ray_pids)}
    left = ch.reap(new, timeout=5.0)
    assert not left, f"test left child processes alive: {left}"


def test_api_on_ray(pool: Pool) -> None:
    assert pool.map(ch.square, range(20)) == [x * x for x in range(20)]
    assert pool.starmap(ch.add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.apply(ch.add, (1,), {"b": 5}) == 6
    assert pool.submit(ch.square, 7).result(timeout=60) == 49
    assert sorted(pool.imap_unordered(ch.square, range(10))) == [x * x for x in range(10)]


def test_errors_and_crashes_on_ray(pool: Pool) -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        pool.apply(ch.fail_on, (3,))
    assert isinstance(info.value.__cause__, RemoteTraceback)
    with pytest.raises(plait.WorkerCrashed, match="ray worker"):
        pool.apply(ch.die_on, (3,))
    assert pool.apply(ch.square, (3,)) == 9


def test_task_timeout_on_ray(pool: Pool) -> None:
    with pytest.raises(TimeoutError, match="task_timeout"):
        pool.apply(ch.nap, (5.0,), task_timeout=0.5)


def test_shared_objects_refused_for_ray(pool: Pool) -> None:
    with pytest.raises(TypeError, match=r"ray\.util\.queue\.Queue"):
        pool.apply(ch.square, (plait.Queue(),))


def test_spawn_on_a_ray_pool(pool: Pool) -> None:
    with plait.TaskGroup() as tg:
        task = tg.spawn(ch.add, 2, 3, on=pool)
    assert task.result() == 5


