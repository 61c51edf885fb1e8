"""The local backend under the engine seam: ``spawn(on=pool)`` on plait's own pool, and
shared objects still crossing to local workers (only cluster tasks refuse them)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import clusterhelpers as ch
import pytest

import plait
from plait import Pool
from plait._ipc.serialize import RemoteTraceback


@pytest.fixture
def pool() -> Iterator[Pool]:
    p = Pool(2)
    try:
        yield p
    finally:
        p.terminate()
        p.join()


def put_one(queue: plait.Queue[int]) -> int:
    queue.put(42, timeout=10)
    return 1


def test_spawn_on_a_local_pool(pool: Pool) -> None:
    with plait.TaskGroup() as tg:
        task = tg.spawn(ch.add, 2, 3, on=pool)
    assert task.result() == 5
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(ch.fail_on, 3, on=pool)
    (error,) = info.value.exceptions
    assert isinstance(error, ValueError) and isinstance(error.__cause__, RemoteTraceback)


def test_spawn_on_a_local_pool_times_out(pool: Pool) -> None:
    started = time.monotonic()
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.spawn(ch.nap, 30.0, on=pool, timeout=0.3)
    assert info.group_contains(TimeoutError)
    assert time.monotonic() - started < 10  # the task was stopped, not waited for
    assert pool.apply(ch.square, (4,)) == 16


def test_spawn_on_something_else_is_refused() -> None:
    with plait.TaskGroup() as tg:
        with pytest.raises(TypeError, match="a pool"):
            tg.spawn(ch.square, 2, on=object())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown on='gpu'"):
            tg.spawn(ch.square, 2, on="gpu")  # type: ignore[arg-type]


def test_shared_queue_still_crosses_to_local_workers(pool: Pool) -> None:
    queue: plait.Queue[int] = plait.Queue()
    assert pool.apply(put_one, (queue,)) == 1
    assert queue.get(timeout=10) == 42
