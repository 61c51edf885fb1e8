"""A failure at each stage of a task's trip gives a clear error naming the stage, and the
pool goes on working (loky's crash matrix)."""

from __future__ import annotations

import poolhelpers as h
import pytest

from plait import RemoteError, SerializationError
from plait._ipc.serialize import RemoteTraceback
from plait.pool import Pool


def _notes(exc: BaseException) -> str:
    return " ".join(getattr(exc, "__notes__", []))


def test_unpickling_the_task_fails_in_the_worker(pool: Pool) -> None:
    with pytest.raises(RuntimeError, match="refuses to unpickle") as info:
        pool.apply(h.identity, (h.RefusesInWorker(1),))
    assert "while unpickling the task" in _notes(info.value)
    assert pool.apply(h.square, (2,)) == 4


def test_the_function_raises(pool: Pool) -> None:
    with pytest.raises(ValueError, match="boom 3") as info:
        pool.apply(h.boom, (3,))
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "def boom" in str(cause) or "boom" in str(cause)
    assert pool.apply(h.square, (2,)) == 4


def test_pickling_the_result_fails_in_the_worker(pool: Pool) -> None:
    with pytest.raises(SerializationError, match="lock") as info:
        pool.apply(h.return_lock)
    assert "while pickling the result" in _notes(info.value)
    # in a chunk, only that item fails
    it = pool.imap(_lock_or_value, range(4), chunksize=4)
    assert next(it) == 0
    with pytest.raises(SerializationError):
        next(it)
    assert [next(it), next(it)] == [2, 3]
    assert pool.apply(h.square, (2,)) == 4


def _lock_or_value(x: int) -> object:
    return h.return_lock() if x == 1 else x


def test_unpickling_the_result_fails_in_the_parent(pool: Pool) -> None:
    with pytest.raises(RuntimeError, match="only unpickles inside a worker") as info:
        pool.apply(h.make_only_in_worker, (1,))
    assert "while unpickling the result" in _notes(info.value)
    assert pool.apply(h.square, (2,)) == 4


def test_initializer_fails() -> None:
    with Pool(1, initializer=h.failing_initializer) as p:
        with pytest.raises(RuntimeError, match="initializer failed") as info:
            p.apply(h.square, (2,))
        assert "in the initializer" in _notes(info.value)
        # no hang, no busy loop: every call fails clearly, the pool stays usable
        with pytest.raises(RuntimeError, match="initializer failed"):
            p.apply(h.square, (3,))


def test_initializer_runs_once_per_worker() -> None:
    with Pool(2, initializer=h.remember, initargs=("ready",)) as p:
        assert set(map(tuple, p.map(h.initialized, range(8), 1))) == {("ready",)}


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickles, but won't rebuild from args
        super().__init__(f"{a}-{b}")


def raise_unrebuildable() -> None:
    raise _Unpicklable(1, 2)


def test_an_exception_that_cannot_cross_arrives_as_remote_error(pool: Pool) -> None:
    with pytest.raises(RemoteError, match="_Unpicklable") as info:
        pool.apply(raise_unrebuildable)
    assert "raise_unrebuildable" in info.value.traceback_text
