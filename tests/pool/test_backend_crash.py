"""A Dask or Ray worker that dies fails its task with ``WorkerCrashed``; the rest go on.

Each test here starts its pool without ``address=``, so the pool starts (and must stop) a
cluster of its own (a ``LocalCluster``, a local Ray instance) -- the suite's usual check
then proves that the cluster's processes are all gone when the pool is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the Dask backend needs 'distributed' (plait[dask])")

import clusterhelpers as ch

import plait
from plait import Pool


@pytest.mark.parametrize("backend", ch.BACKENDS)
def test_killed_worker_fails_its_task_the_rest_go_on(backend: str) -> None:
    if backend == "ray":
        ch.let_ray_import_helpers()
    pool = Pool(2, backend=backend)
    try:
        busy = pool.submit(ch.nap, 1.0)  # occupies one worker...
        killer = pool.submit(ch.die_on, 3)  # ...so this one runs (and dies) on the other
        with pytest.raises(plait.WorkerCrashed, match="die_on") as info:
            killer.result(timeout=30)
        assert f"{backend} worker" in str(info.value)
        assert busy.result(timeout=30) == 1.0
        assert pool.map(ch.square, range(10)) == [x * x for x in range(10)]
        assert pool.statistics().crashed == 1
        slow = pool.submit(ch.nap, 2.0)
    finally:
        pool.terminate()
        pool.join()
    with pytest.raises(plait.ClosedError):  # terminate fails what had not finished
        slow.result(timeout=10)


@pytest.mark.slow(reason="three worker deaths and restarts: ~15 s on 2 loaded cores")
@pytest.mark.parametrize("backend", ch.BACKENDS)
def test_crash_in_a_chunk_fails_one_item_and_retries_rerun(tmp_path: Path, backend: str) -> None:
    if backend == "ray":
        ch.let_ray_import_helpers()
    with Pool(2, backend=backend) as pool:
        # Item 3 kills its worker: its chunk (0-3) is run again item by item, so only
        # item 3 fails, with WorkerCrashed; every other item arrives.
        it = pool.imap(ch.die_on, range(8), chunksize=4)
        got: list[object] = []
        for _ in range(8):
            try:
                got.append(next(it))
            except plait.WorkerCrashed as exc:
                got.append(exc)
        assert got[:3] == [0, 1, 2] and got[4:] == [4, 5, 6, 7]
        assert isinstance(got[3], plait.WorkerCrashed) and "die_on" in str(got[3])
        # retries=1: the first run kills its worker, the second succeeds.
        flag = tmp_path / "died"
        assert pool.apply(ch.die_once, (str(flag),), retries=1) == "ran again"
        stats = pool.statistics()
        assert stats.crashed == 3 and stats.retried == 1
        assert pool.apply(ch.square, (5,)) == 25  # the cluster replaced the workers
