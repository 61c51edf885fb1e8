"""Functions the pool tests run in workers (importable by reference from a worker)."""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0) -> int:
    return a + b


def identity(x: Any, *_: Any) -> Any:
    return x


def noop() -> None:
    return None


def pid(_: Any = None) -> int:
    return os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def boom(x: Any = None) -> None:
    raise ValueError(f"boom {x}")


def kill_self(x: Any = None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault(x: Any = None) -> None:
    ctypes.string_at(0)


def hard_exit(x: Any = None) -> None:
    os._exit(7)


def die_on(x: int, bad: int) -> int:
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def die_once(path: str) -> str:
    """Die the first time (leaving a mark in ``path``), succeed the second."""
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return "second try"


def return_lock(_: Any = None) -> Any:
    return threading.Lock()


def _refuse_in_parent(value: Any) -> Any:
    if multiprocessing.parent_process() is None:
        raise RuntimeError("this result only unpickles inside a worker")
    return value


class OnlyInWorker:
    """Unpickles in a worker, refuses to unpickle in the parent."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        return (_refuse_in_parent, (self.value,))


def make_only_in_worker(x: Any) -> OnlyInWorker:
    return OnlyInWorker(x)


def _refuse_in_worker(value: Any) -> Any:
    if multiprocessing.parent_process() is not None:
        raise RuntimeError("this argument refuses to unpickle in a worker")
    return value


class RefusesInWorker:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        return (_refuse_in_worker, (self.value,))


def failing_initializer() -> None:
    raise RuntimeError("initializer failed on purpose")


_initialized: list[Any] = []


def remember(value: Any) -> None:
    _initialized.append(value)


def initialized(_: Any = None) -> list[Any]:
    return list(_initialized)


def grow(megabytes: int) -> int:
    """Keep ``megabytes`` alive in the worker (for max_memory_per_child)."""
    _hoard.append(bytearray(megabytes * 1024 * 1024))
    return os.getpid()


_hoard: list[bytearray] = []


async def async_square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


async def async_nap(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return os.getpid()


async def async_boom(x: Any = None) -> None:
    await asyncio.sleep(0)
    raise KeyError(f"async boom {x}")


def endless() -> Any:
    n = 0
    while True:
        yield n
        n += 1


def mark_and_nap(path: str, seconds: float) -> float:
    """Say that the task started (a file appears), then sleep."""
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(seconds)
    return seconds


def wait_for_file(path: str, timeout: float = 10.0) -> int:
    """The pid written by :func:`mark_and_nap`, once the task started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                text = fh.read()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"{path} did not appear")


def echo_size(blob: bytes) -> bytes:
    """Return a blob as large as the one received (large payloads both ways)."""
    return bytes(len(blob))


def crash_at_777(x: int) -> int:
    """A tiny task, except that item 777 kills its worker (every time it runs)."""
    if x == 777:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


async def async_mark_and_nap(path: str, seconds: float) -> str:
    """A coroutine task: say that it started, sleep; on cancellation write 'cancelled'."""
    import asyncio

    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        with open(path + ".cancelled", "w") as fh:
            fh.write("cancelled")
        raise
    return "done"


def exit_with(code: Any) -> None:
    """A task that calls ``sys.exit``."""
    import sys

    sys.exit(code)


def interrupt(_: Any = None) -> None:
    raise KeyboardInterrupt


def _exit_on_load() -> None:
    import sys

    sys.exit(3)


def _segfault_on_load() -> None:
    import ctypes

    ctypes.string_at(0)


class ExitAtUnpickle:
    """An argument or result whose unpickling calls ``sys.exit`` (in whatever process)."""

    def __reduce__(self) -> Any:
        return _exit_on_load, ()


class CrashAtUnpickle:
    """An argument whose unpickling segfaults the process that loads it."""

    def __reduce__(self) -> Any:
        return _segfault_on_load, ()


def return_exit_at_unpickle(_: Any = None) -> ExitAtUnpickle:
    return ExitAtUnpickle()


def accept(value: Any) -> str:
    return type(value).__name__


def init_with_queue(q: Any) -> None:
    q.put(os.getpid())


def die_at_item(x: int, victim: int = 5) -> int:
    """Kill the worker at item ``victim``; other items return themselves."""
    if x == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def _exit_if_in(pid: int) -> int:
    import sys

    if os.getpid() == pid:
        sys.exit(3)  # unpickled in the process that pickled it: the parent
    return 0


class ExitInParent:
    """Unpickles to 0 in a worker; unpickling it in the parent calls ``sys.exit``."""

    def __reduce__(self) -> Any:
        return _exit_if_in, (os.getpid(),)


def kill_self_with(_: Any = None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_once_on(x: Any, path: str) -> Any:
    """Kill the worker the first time ``x == 'die'`` runs (a file remembers); else ``x``."""
    if x == "die" and not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return x


class Box:
    """A weak-referenceable value (results must not be kept alive by Executor.map)."""

    def __init__(self, value: int) -> None:
        self.value = value


class ExitAtPickle:
    """A result whose pickling calls ``sys.exit`` (in the worker that sends it)."""

    def __reduce__(self) -> Any:
        import sys

        sys.exit(4)


def return_exit_at_pickle(_: Any = None) -> ExitAtPickle:
    return ExitAtPickle()
