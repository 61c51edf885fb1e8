"""The runtime: ``plait.run`` and the background loop that plain code borrows.

Plain (non-async) code can spawn coroutine strands; they run on one event loop in a daemon
thread named ``plait-loop``, started on first use and stopped at interpreter exit. Code that
already runs in an event loop never needs it: its coroutine strands run on its own loop.

The runtime object is the one holder of process-wide mutable state besides the strand
registry; after a ``fork`` the child gets a fresh one.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import inspect
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Runtime", "run", "runtime"]

T = TypeVar("T")


class Runtime:
    """Owns the background event loop (``loop()``) of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The background loop, started on first use."""
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                new_loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._serve, args=(new_loop, ready), name="plait-loop", daemon=True
                )
                thread.start()
                ready.wait()
                self._thread = thread
                self._loop = new_loop
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the background loop's thread."""
        return self._thread is not None and self._thread.ident == threading.get_ident()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the background loop; thread-safe."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop())

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the background loop's thread; thread-safe."""
        self.loop().call_soon_threadsafe(fn, *args)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the background loop (cancelling what still runs on it) and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return
        if thread is not threading.current_thread():
            thread.join(timeout)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None


runtime = Runtime()
atexit.register(runtime.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=runtime._after_fork)


def _new_loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "run(..., use_uvloop=True) needs uvloop: pip install 'plait[uvloop]'"
        ) from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Callable[..., Any], *args: Any, use_uvloop: bool = False) -> Any:
    """Run ``main(*args)`` -- a coroutine function or a plain function -- and return its result.

    A coroutine function runs on a new event loop (uvloop's with ``use_uvloop=True``) that
    is closed at the end, as :func:`asyncio.run`. A plain function runs in the calling
    thread; the coroutine strands it spawns run on the runtime's background loop.
    """
    if inspect.iscoroutine(main):
        raise TypeError(
            "run() takes the coroutine function and its arguments, not a coroutine object: "
            "write plait.run(main, arg) instead of plait.run(main(arg))"
        )
    if not callable(main):
        raise TypeError(f"run() needs a function to call, got {main!r}")
    if inspect.iscoroutinefunction(main):
        if asyncio._get_running_loop() is not None:
            raise RuntimeError(
                "plait.run() cannot be called from a running event loop; await main() instead"
            )
        with asyncio.Runner(loop_factory=_new_loop_factory(use_uvloop)) as runner:
            return runner.run(main(*args))
    return main(*args)
