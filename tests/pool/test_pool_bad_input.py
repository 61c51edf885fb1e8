"""Bad input fails at the call, clearly, and nothing already submitted is lost."""

from __future__ import annotations

import threading

import poolhelpers as h
import pytest

from plait import ClosedError, SerializationError
from plait.pool import Pool


@pytest.mark.parametrize("n", [0, -1])
def test_processes_must_be_positive(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Pool(n)


def test_non_callable(pool: Pool) -> None:
    for call in (
        lambda: pool.apply_async(42),  # type: ignore[arg-type]
        lambda: pool.submit("nope"),  # type: ignore[arg-type]
        lambda: pool.map(None, [1]),  # type: ignore[arg-type]
        lambda: pool.imap(3, [1]),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match="not callable"):
            call()


def test_unpicklable_argument_fails_at_the_call_and_loses_nothing(pool: Pool) -> None:
    before = [pool.apply_async(h.nap, (0.05,)) for _ in range(4)]
    with pytest.raises(SerializationError) as info:
        pool.apply_async(h.identity, ({"conn": threading.Lock()},))
    assert "['conn']" in str(info.value)
    with pytest.raises(SerializationError):
        pool.submit(h.identity, threading.Lock())
    with pytest.raises(SerializationError):
        pool.map(h.identity, [1, threading.Lock()])
    assert [r.get(10) for r in before] == [0.05] * 4
    assert pool.apply(h.square, (3,)) == 9


def test_unpicklable_item_of_imap_fails_alone(pool: Pool) -> None:
    it = pool.imap(h.identity, [1, threading.Lock(), 3])
    assert next(it) == 1
    with pytest.raises(SerializationError):
        next(it)
    assert next(it) == 3


def test_closed_and_terminated_pools_refuse_work() -> None:
    p = Pool(1)
    kept = p.apply_async(h.nap, (0.1,))
    p.close()
    for call in (
        lambda: p.apply_async(h.square, (1,)),
        lambda: p.submit(h.square, 1),
        lambda: p.map(h.square, [1]),
        lambda: p.imap(h.square, [1]),
    ):
        with pytest.raises(ClosedError):
            call()
        with pytest.raises(ValueError, match="closed"):  # what multiprocessing.Pool raises
            call()
        with pytest.raises(RuntimeError):  # what an Executor raises
            call()
    p.join()
    assert kept.get(0) == 0.1  # submitted before close: not lost
    p.terminate()
    q = Pool(1)
    q.terminate()
    with pytest.raises(ClosedError, match="terminated and takes no new work"):
        q.apply(h.square, (1,))
    q.join()


def test_bad_chunksize(pool: Pool) -> None:
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(h.square, [1, 2], chunksize=0)
    with pytest.raises(ValueError, match="chunksize"):
        pool.imap(h.square, [1, 2], chunksize=0)
