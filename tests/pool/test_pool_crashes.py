"""Never hangs: a worker that dies mid-task costs that task only, within a second."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import poolhelpers as h
import pytest

from plait import WorkerCrashed
from plait.pool import Pool


@pytest.mark.parametrize(
    ("fn", "exitcode"),
    [(h.kill_self, -signal.SIGKILL), (h.segfault, -signal.SIGSEGV), (h.hard_exit, 7)],
    ids=["sigkill", "segfault", "os._exit"],
)
def test_death_mid_task_fails_that_task_only(pool: Pool, fn: object, exitcode: int) -> None:
    others = [pool.apply_async(h.nap, (0.2,)) for _ in range(4)]
    start = time.monotonic()
    doomed = pool.apply_async(fn, (1,))
    with pytest.raises(WorkerCrashed) as info:
        doomed.get(timeout=5)
    assert time.monotonic() - start < 1.5
    err = info.value
    assert err.exitcode == exitcode
    assert err.pid is not None and err.task is not None and fn.__name__ in err.task  # type: ignore[attr-defined]
    assert [r.get(10) for r in others] == [0.2] * 4
    # the pool healed: full strength, still working
    assert pool.apply(h.square, (5,)) == 25
    deadline = time.monotonic() + 5
    while pool.statistics().workers_alive < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.statistics().workers_alive == 2


def test_crash_is_reported_within_a_second(pool: Pool, tmp_path: Path) -> None:
    mark = str(tmp_path / "started")
    started = pool.apply_async(h.mark_and_nap, (mark, 30))
    os.kill(h.wait_for_file(mark), signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(WorkerCrashed):
        started.get(timeout=5)
    assert time.monotonic() - t0 < 1.0


def _apply_pair(pair: tuple[int, int]) -> int:
    return h.die_on(*pair)


def test_chunk_with_a_crash_fails_only_that_item(pool: Pool) -> None:
    pairs = [(i, 7) for i in range(20)]
    it = pool.imap(_apply_pair, pairs, chunksize=5)
    results: list[object] = []
    for _ in pairs:
        try:
            results.append(next(it))
        except WorkerCrashed as exc:
            results.append(exc)
    assert isinstance(results[7], WorkerCrashed)
    assert "item 3 of 5" in str(results[7])
    assert results[:7] + results[8:] == [i for i in range(20) if i != 7]


def test_retries_rerun_a_crashed_task(pool: Pool, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    assert pool.apply(h.die_once, (str(mark),), retries=1) == "second try"
    mark2 = tmp_path / "mark2"
    with pytest.raises(WorkerCrashed):
        pool.apply(h.die_once, (str(mark2),), retries=0)
    assert pool.statistics().retried == 1


def test_task_timeout_kills_and_replaces_only_that_worker(pool: Pool) -> None:
    others = [pool.apply_async(h.nap, (0.3,)) for _ in range(3)]
    t0 = time.monotonic()
    slow = pool.apply_async(h.nap, (30,), task_timeout=0.3)
    with pytest.raises(TimeoutError, match="task_timeout"):
        slow.get(timeout=10)
    assert time.monotonic() - t0 < 3
    assert [r.get(10) for r in others] == [0.3] * 3
    assert pool.apply(h.square, (3,)) == 9
    assert pool.statistics().timed_out == 1


def test_pool_level_task_timeout() -> None:
    with Pool(1, task_timeout=0.2) as p:
        with pytest.raises(TimeoutError):
            p.apply(h.nap, (10,))
        assert p.apply(h.nap, (0.01,)) == 0.01


def _random_kills(pool: Pool, kills: int, stop: threading.Event, done: list[int]) -> None:
    rng = random.Random(1234)
    n = 0
    while n < kills and not stop.is_set():
        time.sleep(rng.uniform(0, 0.01))
        pids = pool.pids
        if not pids:
            continue
        try:
            os.kill(rng.choice(pids), signal.SIGKILL)
            n += 1
        except ProcessLookupError:
            pass
    done.append(n)


def _drain(it: object) -> int:
    got = 0
    while True:
        try:
            next(it)  # type: ignore[call-overload]
        except StopIteration:
            return got
        except WorkerCrashed:
            pass
        got += 1


def _stress(kills: int, tasks: int) -> None:
    """Kill workers at random moments (in tasks, between them, inside the pool's own IPC
    code) while tasks flow; every task must end with a result or WorkerCrashed."""
    pool = Pool(2)
    try:
        stop = threading.Event()
        done: list[int] = []
        killer = threading.Thread(target=_random_kills, args=(pool, kills, stop, done))
        killer.start()
        try:
            while True:
                results = [pool.apply_async(h.nap, (0.001,)) for _ in range(tasks)]
                it = pool.imap_unordered(h.square, range(tasks))
                ok = crashed = 0
                for r in results:
                    try:
                        assert r.get(timeout=30) == 0.001
                        ok += 1
                    except WorkerCrashed:
                        crashed += 1
                assert ok + crashed == tasks
                assert _drain(it) == tasks
                if not killer.is_alive():
                    break
        finally:
            stop.set()
            killer.join()
        assert done == [kills]
        # still healthy afterwards
        assert pool.map(h.square, range(10)) == [x * x for x in range(10)]
    finally:
        pool.terminate()
        pool.join()


def test_random_kills_short() -> None:
    _stress(kills=60, tasks=300)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_random_kills_1000() -> None:
    _stress(kills=1000, tasks=2000)


def test_crash_among_tiny_items_is_found_and_only_it_fails(pool: Pool) -> None:
    # tiny items are marked once per 64 in the worker; the pool runs that window again
    # item by item to find the one that crashes
    it = pool.imap(h.crash_at_777, range(2000), chunksize=1000)
    results: list[object] = []
    for _ in range(2000):
        try:
            results.append(next(it))
        except WorkerCrashed as exc:
            results.append(exc)
    assert isinstance(results[777], WorkerCrashed)
    assert "#777" in str(results[777])
    assert results[:777] + results[778:] == [x for x in range(2000) if x != 777]
