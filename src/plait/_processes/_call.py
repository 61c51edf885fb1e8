"""A process call: ``fn(*args, **kwargs)`` in a child process, its outcome in a future.

This is the process strand that ``TaskGroup.spawn(fn, *args, on="process")`` starts. It is a
:class:`plait.Process` started in quiet mode (an exception goes back to the parent, not to
the child's stderr), seen through a small handle with a future and a graceful terminate.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from typing import Any

from plait._ipc.context import StartMethod
from plait._processes._popen import WatchedPopen
from plait._processes._process import Process, _describe_callable
from plait._processes._watcher import get_watcher

__all__ = ["ProcessCall", "start_process_call"]


class ProcessCall:
    """A running (or finished) process call.

    ``future`` resolves, on the watcher thread, once the child has exited: with the return
    value, with the exception it raised (remote traceback as ``__cause__``; a
    :class:`plait.RemoteError` if it cannot be rebuilt here), or with
    :class:`plait.WorkerCrashed` if the child died without a result (a signal, ``os._exit``).
    """

    __slots__ = ("_process", "future", "name", "pid")

    def __init__(self, process: Process) -> None:
        self._process = process
        self.name: str = process.name
        pid = process.pid
        assert pid is not None
        self.pid: int = pid
        future = process._plait_future
        assert future is not None
        self.future: concurrent.futures.Future[Any] = future

    @property
    def process(self) -> Process:
        """The underlying :class:`plait.Process`."""
        return self._process

    @property
    def sentinel(self) -> int:
        """A file descriptor that becomes ready when the child exits."""
        return self._process.sentinel

    @property
    def exitcode(self) -> int | None:
        """``None`` while running; negative ``-N`` when killed by signal ``N``."""
        return self._process.exitcode

    def done(self) -> bool:
        return self.future.done()

    def terminate(self, grace: float = 2.0) -> None:
        """SIGTERM now, SIGKILL if still running ``grace`` seconds later. Never blocks.

        In the child, SIGTERM raises :class:`plait.Cancelled` in the main thread: its
        ``finally`` blocks run, then it dies of SIGTERM (``WorkerCrashed``, signal 15).
        """
        if self.future.done():
            return
        popen: WatchedPopen = self._process._popen
        self._process.terminate()
        get_watcher().kill_after(popen, grace)

    def kill(self) -> None:
        """SIGKILL now."""
        if not self.future.done():
            self._process.kill()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the child has exited (at most ``timeout`` seconds)."""
        self._process.join(timeout)

    def __repr__(self) -> str:
        state = "done" if self.future.done() else "running"
        return f"<ProcessCall {self.name!r} pid={self.pid} {state}>"


def start_process_call(
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    start_method: StartMethod | None = None,
    daemon: bool = False,
) -> ProcessCall:
    """Start ``fn(*args, **kwargs)`` in a child process and return its :class:`ProcessCall`.

    The function and its arguments are pickled here: an object that cannot cross raises
    :class:`plait.SerializationError` naming it, and no process is started. ``start_method``
    is plait's default (``forkserver``, else ``spawn``) unless given; ``"fork"`` only by name.
    """
    if not callable(fn):
        raise TypeError(f"start_process_call() needs a callable, got {fn!r}")
    process = Process(
        target=fn,
        args=args,
        kwargs=dict(kwargs or {}),
        name=name or _describe_callable(fn).removesuffix("()"),
        daemon=daemon,
    )
    process._plait_use(method=start_method, quiet=True)
    process.start()
    return ProcessCall(process)
