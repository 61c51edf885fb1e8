"""The exception tree: every public exception lives in ``plait._errors``; TimeoutError is one."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import queue
import threading

import pytest

import plait
import plait._errors as errors


def public_exceptions() -> dict[str, type[BaseException]]:
    return {
        name: obj
        for name in plait.__all__
        if isinstance(obj := getattr(plait, name), type) and issubclass(obj, BaseException)
    }


def test_every_public_exception_is_defined_in_errors() -> None:
    """plait's own classes and the stdlib's it re-exports (ThreadError, ProcessError, ...)."""
    for name, exc in public_exceptions().items():
        if exc is TimeoutError:
            continue  # the builtin itself
        assert getattr(errors, name, None) is exc, f"{name} is not in _errors"
        assert name in errors.__all__


def test_plait_timeout_error_is_the_builtin() -> None:
    assert plait.TimeoutError is TimeoutError


def test_pool_timeout_error_is_both_timeout_errors() -> None:
    assert issubclass(plait.PoolTimeoutError, TimeoutError)
    assert issubclass(plait.PoolTimeoutError, multiprocessing.TimeoutError)
    error = pickle.loads(pickle.dumps(plait.PoolTimeoutError("late")))
    assert isinstance(error, plait.TimeoutError) and str(error) == "late"


def test_except_plait_timeout_error_catches_fail_after() -> None:
    with pytest.raises(plait.TimeoutError), plait.fail_after(0.01):
        plait.sleep(5)


def test_except_plait_timeout_error_catches_select_timeout() -> None:
    q: plait.Queue[int] = plait.Queue()
    with pytest.raises(plait.TimeoutError):
        plait.select(q.get_op(), timeout=0.01)


def test_except_plait_timeout_error_catches_async_fail_after() -> None:
    async def main() -> None:
        async with plait.fail_after(0.01):
            await asyncio.sleep(5)

    with pytest.raises(plait.TimeoutError):
        plait.run(main)


def test_stdlib_compatible_bases_are_kept() -> None:
    assert issubclass(plait.Empty, queue.Empty) and issubclass(plait.Empty, plait.WouldBlock)
    assert issubclass(plait.Full, queue.Full) and issubclass(plait.Full, plait.WouldBlock)
    assert issubclass(plait.BrokenBarrierError, threading.BrokenBarrierError)
    assert issubclass(plait.BrokenBarrierError, asyncio.BrokenBarrierError)
    assert issubclass(plait.PoolClosedError, plait.ClosedError)
    assert issubclass(plait.PoolClosedError, ValueError)
    assert issubclass(plait.PoolClosedError, RuntimeError)
