"""Every exception plait raises, named by cause.

::

    BaseException
    └── asyncio.CancelledError
        └── Cancelled ............... a strand was cancelled (threads see this one)
    Exception
    ├── PlaitError .................. base of plait's own errors
    │   ├── ClosedError ............. you closed it (queue, pool, pipe end)
│   │   └── ShutDown ............ (also queue.ShutDown, 3.13+) a shut-down queue
    │   ├── BrokenResourceError ..... something else broke it (owner died, peer crashed)
    │   ├── BusyResourceError ....... two users at once where one is allowed
    │   ├── CancellationIgnored ..... a cancelled thread strand kept running past its grace
    │   ├── DeadlockError ........... a cycle in the wait-for graph
    │   ├── RemoteError ............. a remote exception that could not be rebuilt here
    │   ├── SerializationError ...... (also pickle.PicklingError) an object cannot cross
    │   └── ClosedError
    │       └── PoolClosedError ..... (also ValueError, RuntimeError) the pool takes no work
    ├── WouldBlock .................. an ``X_nowait`` call could not proceed at once
    │   ├── Empty ................... (also queue.Empty) no item
    │   └── Full .................... (also queue.Full) no room
    ├── TimeoutError ................ the builtin; ``plait.TimeoutError`` is this very class
    │   └── PoolTimeoutError ........ (also multiprocessing.TimeoutError) a pool wait timed out
    ├── threading.BrokenBarrierError
    │   └── BrokenBarrierError ...... (also asyncio's) the barrier broke while a party waited
    ├── concurrent.futures.process.BrokenProcessPool
    │   └── WorkerCrashed ........... (also PlaitError) a worker process died mid-task
    └── Warning
        └── RuntimeWarning
            └── LockOrderWarning .... (debug mode) two lock classes taken in both orders

Errors that may cross a process boundary define ``__reduce__`` and keep their named
attributes, so a pickled error arrives with the same fields it left with.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import queue as _stdqueue
import signal
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = [
    "AuthenticationError",
    "BrokenBarrierError",
    "BrokenResourceError",
    "BufferTooShort",
    "BusyResourceError",
    "CancellationIgnored",
    "Cancelled",
    "ClosedError",
    "DeadlockError",
    "DeserializationError",
    "Empty",
    "Full",
    "LockOrderWarning",
    "PlaitError",
    "PoolClosedError",
    "PoolTimeoutError",
    "ProcessError",
    "RemoteError",
    "SerializationError",
    "ShutDown",
    "ThreadError",
    "TraceOutputError",
    "WorkerCrashed",
    "WouldBlock",
]


class PlaitError(Exception):
    """Base class of plait's own errors."""


class Cancelled(asyncio.CancelledError):
    """Raised inside a strand that was cancelled.

    It subclasses :class:`asyncio.CancelledError`, so one ``except`` clause serves coroutine
    strands (which see asyncio's own error) and thread strands (which see this one).
    """


class ClosedError(PlaitError):
    """The resource was closed by its user; no more work goes through it."""


class BrokenResourceError(PlaitError):
    """The resource was broken by something else: its owner exited, its peer crashed."""


class BusyResourceError(PlaitError):
    """Two users at once where only one is allowed."""


class CancellationIgnored(PlaitError):
    """A cancelled thread strand was still running ``grace`` seconds later.

    Threads cannot be killed: the group stops waiting for it and names it here. Long loops
    in thread strands should call ``plait.checkpoint()`` so that cancellation reaches them.
    """

    def __init__(self, strand_name: str, grace: float) -> None:
        super().__init__(
            f"thread strand {strand_name!r} ignored cancellation for {grace} s and was "
            f"abandoned while still running; call plait.checkpoint() (or wait with plait's "
            f"primitives) in long-running thread code so cancellation can reach it"
        )
        self.strand_name = strand_name
        self.grace = grace

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.strand_name, self.grace))


class WouldBlock(Exception):
    """An ``X_nowait`` operation could not complete without waiting."""


class DeadlockError(PlaitError):
    """A cycle in the wait-for graph: these strands wait on each other forever.

    ``cycle`` lists one link per waiting strand, in order: in this process a
    ``plait.diagnostics.WaitLink`` (strand, what it waits for, where it waits, the holder,
    where the holder took it), a tuple of strings.
    """

    def __init__(self, message: str, cycle: tuple[tuple[str, ...], ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.cycle = cycle

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.cycle))


class RemoteError(PlaitError):
    """An exception raised in another process that could not be rebuilt here.

    Carries the remote type's name, its message and the formatted remote traceback.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback_text))

    def __str__(self) -> str:
        text = f"{self.type_name}: {self.message}"
        if self.traceback_text:
            text += "\n\nRemote traceback:\n" + self.traceback_text
        return text


class SerializationError(PlaitError, pickle.PicklingError):
    """An object cannot be pickled to cross into another process.

    ``path`` names where in the arguments the culprit sits (``args[1]['conn']``), and
    ``culprit`` describes it (its type and repr), so the message says what to change.
    """

    def __init__(self, message: str, path: str = "", culprit: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.culprit = culprit

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.path, self.culprit))


def describe_exit(exitcode: int | None) -> str:
    """Say in words how a process ended, from its exit code (negative means a signal)."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {
            "SIGKILL": " (killed: out of memory, a timeout, or `kill -9`)",
            "SIGSEGV": " (segmentation fault in native code)",
            "SIGABRT": " (aborted by native code)",
            "SIGBUS": " (bus error in native code)",
            "SIGTERM": " (terminated)",
        }.get(name, "")
        return f"killed by {name}{hint}"
    return f"exited with code {exitcode}"


class WorkerCrashed(BrokenProcessPool, PlaitError):
    """A worker process died while it ran a task.

    Subclasses :class:`concurrent.futures.process.BrokenProcessPool` so that existing
    ``except`` clauses keep working. ``pid``, ``exitcode`` (negative: killed by a signal),
    ``signal`` (the signal number or ``None``) and ``task`` (a description of what ran) say
    what happened.
    """

    def __init__(
        self,
        message: str = "",
        *,
        pid: int | None = None,
        exitcode: int | None = None,
        task: str | None = None,
    ) -> None:
        if not message:
            message = f"worker process {pid} {describe_exit(exitcode)}"
            if task:
                message += f" while running {task}"
        super().__init__(message)
        self.message = message
        self.pid = pid
        self.exitcode = exitcode
        self.task = task

    @property
    def signal(self) -> int | None:
        """The signal that killed the worker, or ``None`` if it exited by itself."""
        if self.exitcode is not None and self.exitcode < 0:
            return -self.exitcode
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_worker_crashed, (self.message, self.pid, self.exitcode, self.task))


def _rebuild_worker_crashed(
    message: str, pid: int | None, exitcode: int | None, task: str | None
) -> WorkerCrashed:
    return WorkerCrashed(message, pid=pid, exitcode=exitcode, task=task)


# -- errors that keep a stdlib name's compatibility (they live here with every other one) ----


class Empty(_stdqueue.Empty, WouldBlock):
    """No item: raised by ``get_nowait()`` and by a ``get`` that timed out (a ``queue.Empty``)."""


class Full(_stdqueue.Full, WouldBlock):
    """No room: raised by ``put_nowait()`` and by a ``put`` that timed out (a ``queue.Full``)."""


class BrokenBarrierError(threading.BrokenBarrierError, asyncio.BrokenBarrierError):
    """The barrier is broken, or was reset or aborted while this party waited."""


class PoolTimeoutError(multiprocessing.TimeoutError, TimeoutError):
    """A wait on a pool result timed out.

    Both :class:`multiprocessing.TimeoutError` (what ``multiprocessing.Pool`` raises) and
    the builtin :class:`TimeoutError` (what ``concurrent.futures``, ``plait.fail_after``
    and ``plait.select(timeout=)`` raise, and what ``plait.TimeoutError`` is), so either
    ``except`` clause catches it.
    """


class PoolClosedError(ClosedError, ValueError, RuntimeError):
    """The pool was closed or terminated and takes no new work.

    Also a :class:`ValueError` (what ``multiprocessing.Pool`` raises) and a
    :class:`RuntimeError` (what ``concurrent.futures`` raises), so old ``except`` clauses
    keep working.
    """


if sys.version_info >= (3, 13):
    _StdShutDown: type[Exception] = _stdqueue.ShutDown
else:  # queue.ShutDown is new in 3.13

    class _StdShutDown(Exception):
        pass


class ShutDown(ClosedError, _StdShutDown):
    """The queue was shut down (closed): a put, or a get once it is drained.

    A queue's ``close()`` is ``shutdown()``: this is a :class:`ClosedError`, and from Python
    3.13 also a ``queue.ShutDown``, so either ``except`` clause catches it.
    """


# -- the stdlib's own exceptions, re-exported as they are (``import plait as threading`` and
# ``import plait as multiprocessing`` raise and catch the very same classes) ----------------

ThreadError = threading.ThreadError
ProcessError = multiprocessing.ProcessError
AuthenticationError = multiprocessing.AuthenticationError
BufferTooShort = multiprocessing.BufferTooShort


class DeserializationError(BrokenProcessPool, PlaitError, pickle.UnpicklingError):
    """A pool task's arguments would not unpickle in its worker, or its result would not
    unpickle in the parent (a ``__reduce__`` that raised, even ``SystemExit``).

    Only that task fails. A :class:`concurrent.futures.process.BrokenProcessPool` (what
    ``ProcessPoolExecutor`` raises for the same faults) and a
    :class:`pickle.UnpicklingError`, so existing ``except`` clauses keep working; the
    original error is its ``__cause__``.
    """


class LockOrderWarning(RuntimeWarning):
    """Debug mode saw two lock classes taken in both orders: two strands can deadlock on
    them even if this run's timing did not. ``-W error::plait.LockOrderWarning`` (or
    ``-W error``) makes it fatal in tests."""


class TraceOutputError(PlaitError, OSError):
    """``plait.trace`` cannot write its output where it was asked to (raised before the
    traced code runs, so nothing is lost): choose a writable path."""
