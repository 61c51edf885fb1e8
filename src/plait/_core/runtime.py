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
import signal
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from plait._core.safepoint import deliver

__all__ = ["Runtime", "add_hurry_listener", "hurried", "run", "runtime"]

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


# -- a second Ctrl-C: no more grace -----------------------------------------------------
#
# The first Ctrl-C cancels ``main``; task groups then give their thread and process strands
# ``grace`` seconds. A second Ctrl-C during that grace means "now": the loop is marked
# *hurried*, and every task group waiting on it abandons its threads (CancellationIgnored,
# named in a note) and kills its processes at once. (Upper layers listen: ``_core`` imports
# nothing above it.)

_hurried: set[asyncio.AbstractEventLoop] = set()  # (plait.run's loops, until it returns)
_hurry_listeners: list[Callable[[asyncio.AbstractEventLoop], None]] = []


def hurried(loop: asyncio.AbstractEventLoop | None) -> bool:
    """Whether a second Ctrl-C asked the code on ``loop`` to stop without grace."""
    return loop is not None and loop in _hurried


def add_hurry_listener(fn: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    """Call ``fn(loop)`` (on the loop's thread) when ``loop`` is hurried."""
    _hurry_listeners.append(fn)


def _hurry(loop: asyncio.AbstractEventLoop) -> None:
    _hurried.add(loop)
    for fn in list(_hurry_listeners):
        fn(loop)


def _raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt()


def _wake() -> None:
    """(Scheduled from the SIGINT handler: it makes the loop's selector return.)"""


class _Interrupts:
    """plait.run's SIGINT handler for a coroutine ``main``, as asyncio.Runner's but with a
    second step: 1st Ctrl-C cancels ``main`` (or raises KeyboardInterrupt in it, if ``main``
    itself is running synchronous code), 2nd hurries the loop (no more grace) and cancels it
    again, 3rd raises KeyboardInterrupt wherever the main thread is."""

    def __init__(self) -> None:
        self.count = 0
        self.cancels = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None

    async def main(self, main: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        return await main(*args)

    def on_sigint(self, signum: int, frame: Any) -> None:
        self.count += 1
        task, loop = self.task, self.loop
        if task is None or loop is None or task.done() or self.count > 2:
            raise KeyboardInterrupt()
        if self.count == 1 and asyncio.current_task(loop) is task:
            # main itself is running, in synchronous code (a blocking call) that a
            # cancellation would reach only when it returns: raise here, as a plain program
            # would (after a critical section of plait's own, if in one).
            deliver(_raise_keyboard_interrupt)
            return
        if self.count == 2:
            _hurry(loop)
        task.cancel()
        self.cancels += 1
        loop.call_soon_threadsafe(_wake)

    def outcome(self, cancel: asyncio.CancelledError) -> BaseException:
        """KeyboardInterrupt if only our Ctrl-C cancelled ``main``, else ``cancel``."""
        task = self.task
        if not self.cancels or task is None:
            return cancel
        left = 0
        for _ in range(self.cancels):
            left = task.uncancel()
        return KeyboardInterrupt() if left == 0 else cancel


class _SignalWake:
    """Makes a signal wake ``plait.run``'s loop, as ``loop.add_signal_handler`` does.

    A Ctrl-C that lands after Python's last check for signals and before the main thread
    blocks in the loop's selector runs only the C-level handler (or lands on another thread,
    which cannot run Python's handler): ``on_sigint`` then waited until the selector timed
    out -- a ``sleep(60)`` lost the Ctrl-C for a minute. With a wakeup fd the C handler
    writes a byte to a socket the loop watches: the selector returns and the handler runs.
    """

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.old = -1

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.reader.fileno(), self._drain)
        self.old = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)

    def _drain(self) -> None:
        try:
            while self.reader.recv(4096):
                pass
        except OSError:  # (empty: BlockingIOError)
            pass

    def detach(self) -> None:
        """(After the loop closed, which dropped the reader.) Give the old wakeup fd back,
        unless someone installed another since (``add_signal_handler``): theirs stays."""
        replaced = signal.set_wakeup_fd(self.old)
        if replaced != self.writer.fileno():
            signal.set_wakeup_fd(replaced)
        self.reader.close()
        self.writer.close()


def _run_coroutine_function(
    main: Callable[..., Any], args: tuple[Any, ...], use_uvloop: bool
) -> Any:
    own_sigint = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    interrupts = _Interrupts()
    wake = _SignalWake() if own_sigint else None
    if own_sigint:
        # asyncio.Runner installs its handler only over the default one: ours goes first.
        signal.signal(signal.SIGINT, interrupts.on_sigint)
    try:
        with asyncio.Runner(loop_factory=_new_loop_factory(use_uvloop)) as runner:
            if wake is not None:
                wake.attach(runner.get_loop())
            try:
                return runner.run(interrupts.main(main, args))
            except asyncio.CancelledError as cancel:
                outcome = interrupts.outcome(cancel)
                if outcome is cancel:
                    raise
            # (Runner.close() runs here: what is left on the loop is cancelled and awaited;
            # a hurried loop's task groups do not wait out their grace.)
        raise outcome from None
    finally:
        if wake is not None:
            wake.detach()
        if interrupts.loop is not None:
            _hurried.discard(interrupts.loop)
        # (==, not is: each `interrupts.on_sigint` is a new bound method; the handler was
        # never given back before)
        if own_sigint and signal.getsignal(signal.SIGINT) == interrupts.on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def run(main: Callable[..., Any], *args: Any, use_uvloop: bool = False) -> Any:
    """Run ``main(*args)`` -- a coroutine function or a plain function -- and return its result.

    A coroutine function runs on a new event loop (uvloop's with ``use_uvloop=True``) that
    is closed at the end, as :func:`asyncio.run`. Ctrl-C cancels it and comes out as
    ``KeyboardInterrupt``; a second Ctrl-C while task groups give their strands ``grace``
    ends that grace at once (threads abandoned, processes killed); a third raises
    ``KeyboardInterrupt`` wherever the program is. A plain function runs in the calling
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
        return _run_coroutine_function(main, args, use_uvloop)
    return main(*args)
