"""The ``Popen`` of every plait child: the watcher thread alone reaps it.

multiprocessing's ``Popen.poll``/``wait`` read the exit code themselves; two threads doing
so at once race (a fork-server child's exit code is read from a socket, and the loser records
255). Here the watcher thread reaps (``_plait_reap``) and publishes (``_plait_publish``), and
everyone else reads what it published, parked on the kernel's wait queue.
"""

from __future__ import annotations

import os
import time
import weakref
from typing import Any

from plait._core import WaitQueue, async_park, new_mutex, park
from plait._ipc.ctrl_c import held

__all__ = ["WatchedPopen", "popen_class", "start_restarting_fork_server"]

# -- Ctrl-C and the fork server ---------------------------------------------------------
#
# A terminal's Ctrl-C signals the whole process group, the fork server included. The stdlib
# fork server ignores SIGINT only once its preloading is done (the interpreter, then plait,
# to import first); a Ctrl-C before that kills it, and every start waiting on it fails with
# EOFError('unexpected EOF') instead of the KeyboardInterrupt the parent received. (It is
# not started with SIGINT blocked, as a spawned child is (``ctrl_c.held``): the server is
# multiprocessing's too, and its own children would inherit the block.) So a start that
# finds its fork server dead before it answered is made again: the stdlib then starts a
# new fork server. The Ctrl-C itself reaches the parent as usual (KeyboardInterrupt, or the
# cancellation asyncio makes of it). Its children start with a Ctrl-C kept, not raised:
# see ``plait._ipc.ctrl_c``.

FORK_SERVER_RESTARTS = 3
# What a start meets when the fork server died under it: its answer cut short (EOF), or
# the connection to it refused, broken or reset (which one depends on the moment, and on
# the Python version: 3.12 connects anew for each start).
_DEAD_SERVER = (EOFError, ConnectionError)


def _fork_server_died() -> bool:
    """Whether the stdlib's fork server process is gone (without reaping it: the stdlib's
    ``ensure_running`` does that, then starts a new one)."""
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid is None:
        return False
    for _ in range(100):  # (its descriptors close a moment before it is a zombie)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True  # (no /proc entry: gone, or a platform without /proc: try again)
        if state in (b"Z", b"X"):
            return True
        time.sleep(0.01)
    return False


def start_restarting_fork_server(process: Any) -> None:
    """``process.start()``; a start that failed because the fork server died (a Ctrl-C to
    the process group while it started) is made again, on a new fork server."""
    for attempt in range(FORK_SERVER_RESTARTS + 1):
        try:
            with held(getattr(process, "_start_method", None)):
                process.start()
            return
        except _DEAD_SERVER:
            if attempt == FORK_SERVER_RESTARTS or process._popen is not None:
                raise
            if not _fork_server_died():
                raise


class WatchedPopen:
    """Mixin over a multiprocessing ``Popen`` class: the watcher thread alone reaps.

    ``poll``/``wait`` answer from the exit code the watcher published, so any number of
    threads (and multiprocessing's own ``active_children()``) may ask at once. A blocking
    ``wait`` parks the calling strand on the kernel's wait queue: diagnostics see it parked
    on the process, and a cancelled thread strand leaves it with ``Cancelled``.
    """

    returncode: int | None
    sentinel: int
    pid: int

    def __init__(self, process_obj: Any) -> None:
        self._plait_mutex = new_mutex()
        self._plait_waiters = WaitQueue(self._plait_mutex)
        self._plait_exited = False
        self._plait_reaped = False
        self._plait_process = weakref.ref(process_obj)
        for attempt in range(FORK_SERVER_RESTARTS + 1):
            try:
                with held(getattr(self, "method", None)):  # (the stdlib Popen's method)
                    super().__init__(process_obj)  # type: ignore[call-arg]
                return
            except _DEAD_SERVER:
                # (only a fork-server start meets these here: see _fork_server_died)
                if attempt == FORK_SERVER_RESTARTS or not _fork_server_died():
                    raise
                finalizer = getattr(self, "finalizer", None)
                if finalizer is not None:
                    finalizer()  # the failed start's descriptors

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if flag != os.WNOHANG:
            return self.wait(None)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        # As multiprocessing: a timeout of zero or less (join(-1)) only looks.
        with self._plait_mutex:
            if self._plait_exited or (timeout is not None and timeout <= 0):
                return self.returncode
            waiter = self._plait_waiters.enqueue_current(on=self._plait_process() or self)
        park(waiter, timeout)
        return self.returncode

    async def async_wait(self, timeout: float | None = None) -> int | None:
        """:meth:`wait` for coroutines."""
        with self._plait_mutex:
            if self._plait_exited or (timeout is not None and timeout <= 0):
                return self.returncode
            waiter = self._plait_waiters.async_enqueue_current(on=self._plait_process() or self)
        await async_park(waiter, timeout)
        return self.returncode

    def _send_signal(self, sig: int) -> None:
        # Once reaped, the pid may belong to another process: never signal it.
        if not self._plait_reaped:
            super()._send_signal(sig)  # type: ignore[misc]

    def _plait_reap(self) -> int:
        """Read the exit code (the sentinel is ready); keep it private until published."""
        code: int | None = super().poll(0)  # type: ignore[misc]
        self._plait_reaped = True
        self.returncode = None
        return 255 if code is None else code

    def _plait_publish(self, code: int) -> None:
        with self._plait_mutex:
            self.returncode = code
            self._plait_exited = True
            woken = self._plait_waiters.pop_all()
        for waiter in woken:
            waiter.wake()


_popen_classes: dict[type, type] = {}


def popen_class(method: str) -> type:
    """The watched ``Popen`` class for a start method (created once per method)."""
    base: type
    if method == "forkserver":
        from multiprocessing import popen_forkserver

        base = popen_forkserver.Popen
    elif method == "spawn":
        from multiprocessing import popen_spawn_posix

        base = popen_spawn_posix.Popen
    elif method == "fork":
        from multiprocessing import popen_fork

        base = popen_fork.Popen
    else:  # pragma: no cover - get_context() validated the name
        raise ValueError(f"unknown start method {method!r}")
    cls = _popen_classes.get(base)
    if cls is None:
        cls = type(f"Watched{method.capitalize()}Popen", (WatchedPopen, base), {})
        _popen_classes[base] = cls
    return cls
