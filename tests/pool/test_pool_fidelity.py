"""Drop-in fidelity and containment (issue 10 defects 1, 3, 4, 5, 8; issue 11 points 7-9)."""

from __future__ import annotations

import functools
import gc
import math
import multiprocessing
import time
import warnings
import weakref
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import poolhelpers as h
import pytest

import plait
from plait import WorkerCrashed
from plait.pool import Pool


# -- defect 1: nothing sent to a worker is unpickled in the parent ------------------------
def test_a_dead_workers_apply_arguments_are_not_unpickled_in_the_parent(pool: Pool) -> None:
    result = pool.apply_async(h.kill_self_with, (h.ExitInParent(),))
    with pytest.raises(WorkerCrashed):
        result.get(20)
    assert pool.apply(h.square, (3,)) == 9


def test_a_dead_workers_chunk_is_split_without_unpickling(pool: Pool, tmp_path: Path) -> None:
    fn = functools.partial(h.die_once_on, path=str(tmp_path / "died"))
    it = pool.imap(fn, ["die", h.ExitInParent(), 5], chunksize=3)
    with pytest.raises(WorkerCrashed):
        it.next(20)
    assert [it.next(20), it.next(20)] == [0, 5]
    assert pool.apply(h.square, (2,)) == 4


# -- defect 4 and issue 11.8: SystemExit/KeyboardInterrupt never end the caller -----------
@pytest.mark.parametrize("code", [0, 1, "bye"])
def test_sys_exit_in_a_task_fails_that_task(pool: Pool, code: Any) -> None:
    with pytest.raises(WorkerCrashed) as info:
        pool.apply(h.exit_with, (code,))
    assert isinstance(info.value.__cause__, SystemExit)
    if isinstance(code, int):
        assert info.value.exitcode == code
    assert pool.map(h.square, range(4), 1) == [0, 1, 4, 9]


def test_sys_exit_in_a_map_fails_the_map_not_the_caller(pool: Pool) -> None:
    with pytest.raises(WorkerCrashed):
        pool.map(h.exit_with, [0, 0])
    with pytest.raises(WorkerCrashed):
        pool.apply(h.interrupt)
    assert pool.apply(h.square, (5,)) == 25


def test_sys_exit_while_unpickling_a_result_is_a_broken_pool_error(pool: Pool) -> None:
    future = pool.submit(h.return_exit_at_unpickle)
    with pytest.raises(BrokenProcessPool) as info:
        future.result(20)
    assert isinstance(info.value, plait.DeserializationError)
    assert isinstance(info.value.__cause__, SystemExit)


def test_sys_exit_while_unpickling_arguments_in_the_worker(pool: Pool) -> None:
    with pytest.raises(BrokenProcessPool):
        pool.submit(id, h.ExitAtUnpickle()).result(20)
    assert pool.apply(h.square, (6,)) == 36


def test_a_result_that_exits_while_pickling_fails_alone(pool: Pool) -> None:
    with pytest.raises(WorkerCrashed) as info:
        pool.apply(h.return_exit_at_pickle)
    assert isinstance(info.value.__cause__, SystemExit)
    pid = pool.apply(h.pid)
    assert pool.apply(h.square, (1,)) == 1
    assert pid in pool.pids  # the worker lived on


# -- defect 5: a multiprocessing.Queue as initarg ----------------------------------------
def test_initargs_may_hold_a_multiprocessing_queue() -> None:
    q = multiprocessing.get_context("spawn").Queue()
    with Pool(1, initializer=h.init_with_queue, initargs=(q,)) as pool:
        assert pool.apply(h.square, (2,)) == 4
        assert isinstance(q.get(timeout=20), int)
    q.close()
    q.join_thread()


# -- defect 3: Executor.map is lazy ------------------------------------------------------
def test_executor_map_raises_while_iterating(pool: Pool) -> None:
    it = pool.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(it) == (0, 1)
    assert next(it) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(it)


def test_executor_map_timeout_is_raised_while_iterating(pool: Pool) -> None:
    t0 = time.monotonic()
    it = pool.map(h.nap, [0.0, 0.0, 30.0], timeout=0.5)
    assert time.monotonic() - t0 < 0.5  # returned at once
    got = []
    with pytest.raises(TimeoutError):
        for value in it:
            got.append(value)
    assert got == [0.0, 0.0]
    assert time.monotonic() - t0 < 5.0


def test_executor_map_keeps_no_yielded_result(pool: Pool) -> None:
    for obj in pool.map(h.identity, [h.Box(k) for k in range(6)], [0] * 6):
        ref = weakref.ref(obj)
        del obj
        gc.collect()
        assert ref() is None  # checked while iterating: nothing else holds it


# -- issue 11.7: an unreferenced pool lives while results are pending ------------------
def test_an_unreferenced_pool_delivers_its_results() -> None:
    # (not inside ``assert``: pytest's assertion rewriting would keep the pool referenced)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        squares = list(Pool(2).imap(h.square, range(20)))
        mapped = Pool(2).map_async(h.square, range(5)).get(30)
        single = Pool(1).submit(h.square, 7).result(30)
        gc.collect()
    assert squares == [x * x for x in range(20)]
    assert mapped == [0, 1, 4, 9, 16]
    assert single == 49


def _drop_and_collect(refs: list[Pool]) -> None:
    refs.clear()
    gc.collect()


def test_a_pool_left_running_warns() -> None:
    refs = [Pool(1)]
    with pytest.warns(ResourceWarning, match="unclosed running"):
        _drop_and_collect(refs)


# -- issue 11.9: numeric arguments are checked at the call ----------------------------
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"task_timeout": math.nan}, ValueError),
        ({"task_timeout": "1"}, TypeError),
        ({"task_timeout": -1}, ValueError),
        ({"grace": math.inf}, ValueError),
        ({"grace": math.nan}, ValueError),
        ({"retries": -1}, ValueError),
        ({"retries": 1.5}, TypeError),
        ({"concurrency": 0}, ValueError),
        ({"concurrency": "2"}, TypeError),
        ({"max_pending": 0}, ValueError),
        ({"max_pending": 2.0}, TypeError),
        ({"max_memory_per_child": -5}, ValueError),
        ({"processes": "2"}, TypeError),
        ({"maxtasksperchild": 0}, ValueError),
    ],
)
def test_bad_pool_options_are_refused(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        Pool(1, **kwargs)


def test_bad_call_arguments_are_refused_and_the_pool_lives(pool: Pool) -> None:
    for call, error in (
        (lambda: pool.apply(h.square, (1,), task_timeout=math.nan), ValueError),
        (lambda: pool.apply(h.square, (1,), retries=-2), ValueError),
        (lambda: pool.map(h.square, [1], chunksize=1.5), TypeError),
        (lambda: pool.imap(h.square, [1], chunksize=-1), ValueError),
        (lambda: pool.apply_async(h.square, (1,)).get(math.nan), ValueError),
        (lambda: pool.apply_async(h.square, (1,)).get("1"), TypeError),
        (lambda: pool.submit(h.square, 1).result(math.nan), ValueError),
        (lambda: pool.imap(h.square, [1]).next(math.nan), ValueError),
    ):
        with pytest.raises(error):
            call()
    assert pool.apply(h.square, (2,)) == 4
    assert pool.apply_async(h.square, (3,)).get(-1 if False else 20) == 9
