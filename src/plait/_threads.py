"""Thread strands, and ``plait.Thread``: a drop-in ``threading.Thread`` that is also a strand.

Thread strands spawned by a :class:`plait.TaskGroup` run on reused OS threads: starting a
thread costs tens of microseconds, handing a job to an idle one a few. An idle thread waits
``IDLE_SECONDS`` for more work and then ends, so nothing lingers.
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
import time
import traceback
from _thread import allocate_lock
from collections.abc import Callable, Mapping
from typing import Any

from plait._core import (
    Strand,
    WaitQueue,
    bind_thread,
    hooks,
    new_mutex,
    park,
    register,
    unbind_thread,
    unregister,
)
from plait._sync import Event

__all__ = ["Thread", "Timer", "run_in_thread"]

IDLE_SECONDS = 5.0


class _Worker:
    """One cached OS thread: runs jobs handed to it, waits idle, then ends."""

    __slots__ = ("job", "signal")

    def __init__(self) -> None:
        self.job: Callable[[], None] | None = None
        self.signal = allocate_lock()
        self.signal.acquire()


class _ThreadCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []

    def run(self, job: Callable[[], None]) -> None:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None:
            worker.job = job
            worker.signal.release()
            return
        worker = _Worker()
        worker.job = job
        threading.Thread(target=self._serve, args=(worker,), daemon=True).start()

    def _serve(self, worker: _Worker) -> None:
        me = threading.current_thread()
        base_name = me.name
        while True:
            job = worker.job
            worker.job = None
            if job is not None:
                job()
                job = None  # an idle thread keeps nothing of the finished strand alive
                me.name = base_name
            with self._lock:
                self._idle.append(worker)
            if worker.signal.acquire(True, IDLE_SECONDS):
                continue
            with self._lock:
                try:
                    self._idle.remove(worker)
                except ValueError:
                    # A job was handed to us just as we timed out: take it.
                    worker.signal.acquire()
                    continue
            return

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._idle = []


_cache = _ThreadCache()
os.register_at_fork(after_in_child=_cache._after_fork)


def run_in_thread(
    strand: Strand,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    context: contextvars.Context,
    done: Callable[[Any, BaseException | None], None],
) -> None:
    """Run ``fn(*args, **kwargs)`` as ``strand`` on a cached thread, in ``context``.

    ``done(result, error)`` is called on that thread when the call ends.
    """

    def job() -> None:
        threading.current_thread().name = strand.name
        bind_thread(strand)
        strand.state = "running"
        if hooks.active:
            hooks.started(strand)
        result: Any = None
        error: BaseException | None = None
        try:
            result = context.run(fn, *args, **kwargs)
        except BaseException as exc:
            error = exc
        finally:
            unbind_thread()
            unregister(strand)
            if hooks.active:
                hooks.exited(strand, error)
        done(result, error)

    register(strand)
    if hooks.active:
        hooks.spawned(strand)
    _cache.run(job)


class Thread(threading.Thread):
    """``threading.Thread`` with the same signature and semantics, plus ``result()``.

    The thread is a plait strand (it shows in diagnostics and traces). ``result()`` returns
    what the target (or an overridden ``run()``) returned, or re-raises its exception;
    ``join()`` keeps threading's behaviour (it never raises the thread's exception).
    """

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        super().__init__(group, target, name, args, kwargs, daemon=daemon)
        self._plait_result: Any = None
        self._plait_error: BaseException | None = None
        self._plait_done = False
        self._plait_callers_released = False
        self._plait_strand = Strand("thread", self.name)
        # Joiners park here, on the thread's strand, until its body has ended.
        self._plait_mutex = new_mutex()
        self._plait_joiners = WaitQueue(self._plait_mutex)

    def start(self) -> None:
        own_run = self.__dict__.get("run")  # a run set on the instance, kept as it was
        self.run = functools.partial(_run_as_strand, self, self.run, own_run)  # type: ignore[method-assign]
        try:
            super().start()
        except BaseException:
            self._plait_forget_run(own_run)
            raise

    def join(self, timeout: float | None = None) -> None:
        """``threading.Thread.join``; once the thread has ended, the frames that called its
        body (threading's own, which hold the thread) are released from the exception that
        :meth:`result` keeps, so neither keeps the other alive.

        The wait parks through plait's kernel, on the thread's strand (instruments and
        ``wait_parked`` see it; a cancel scope around it cancels it); outside a scope it is
        threading's join, errors and timeouts alike."""
        wait = _join_wait(timeout)
        if wait is not _NO_PARK and self is not threading.current_thread() and self.is_alive():
            deadline = None if wait is None else time.monotonic() + wait
            if not self._plait_wait_body(wait):
                return  # timed out: still running, as threading's join leaves it
            if deadline is not None:
                timeout = max(deadline - time.monotonic(), 0.0)
        super().join(timeout)  # what is left of threading's ending (or its own errors)
        error = self._plait_error
        if error is not None and not self._plait_callers_released and not self.is_alive():
            self._plait_callers_released = True
            _release_callers(error)

    def _plait_wait_body(self, wait: float | None) -> bool:
        """Park until the thread's body has ended (``False``: ``wait`` s passed first)."""
        with self._plait_mutex:
            if self._plait_done:
                return True
            waiter = self._plait_joiners.enqueue_current(self._plait_strand)
        return park(waiter, wait)

    def _plait_body_ended(self) -> None:
        with self._plait_mutex:
            self._plait_done = True
            woken = []
            while (waiter := self._plait_joiners.pop()) is not None:
                woken.append(waiter)
        for waiter in woken:
            waiter.wake()

    def _plait_call(self, user_run: Callable[[], Any]) -> BaseException | None:
        """Run the thread's body; return what it raised, once reported as threading does."""
        try:
            if getattr(user_run, "__func__", None) is Thread.run:
                self._plait_result = self._run_target()
            else:
                self._plait_result = user_run()
        except BaseException as exc:
            # What threading does with an uncaught exception (SystemExit is silent).
            self._invoke_excepthook(self)  # type: ignore[attr-defined]
            return exc
        return None

    def _plait_forget_run(self, own_run: Any) -> None:
        # The wrapper refers to the thread: leaving it on the instance would be a reference
        # cycle that keeps the thread (and its target's owner) alive until the cyclic GC.
        # (It must not name itself either: a function in its own closure is a cycle too.)
        self.__dict__.pop("run", None)
        if own_run is not None:
            self.run = own_run  # type: ignore[method-assign]

    def _run_target(self) -> Any:
        target: Callable[..., Any] | None = self._target  # type: ignore[attr-defined]
        try:
            if target is not None:
                return target(*self._args, **self._kwargs)  # type: ignore[attr-defined]
            return None
        finally:
            # As threading does: drop references to the target and its arguments.
            del self._target, self._args, self._kwargs  # type: ignore[attr-defined]

    @property
    def strand(self) -> Strand:
        """This thread's strand."""
        return self._plait_strand

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the thread (up to ``timeout`` s) and return its return value.

        Re-raises the exception the thread raised (its traceback keeps the lines, not the
        frames' local variables: they are released when the thread ends); raises
        :class:`TimeoutError` if the thread is still running after ``timeout``, and
        :class:`RuntimeError` if it was never started.
        """
        if not self._started.is_set():  # type: ignore[attr-defined]
            raise RuntimeError(f"{self.name} was never started: call start() first")
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"{self.name} is still running after {timeout} s")
        if self._plait_error is not None:
            raise self._plait_error
        return self._plait_result


def _run_as_strand(thread: Thread, user_run: Callable[[], Any], own_run: Any) -> None:
    """``thread.run`` while it runs: the body, as the thread's strand.

    Every local is dropped on the way out: the kept exception's traceback reaches this
    frame (as the caller of the frame that caught it), and must not reach the thread.
    """
    strand = thread._plait_strand
    strand.name = thread.name
    bind_thread(strand)
    strand.state = "running"
    register(strand)
    if hooks.active:
        hooks.started(strand)
    error: BaseException | None = None
    try:
        error = thread._plait_call(user_run)
        if error is not None:
            thread._plait_error = _release_frames(error)
    finally:
        try:
            thread._plait_forget_run(own_run)
            unbind_thread()
            unregister(strand)
            if hooks.active:
                hooks.exited(strand, error)
        finally:
            thread._plait_body_ended()  # its joiners go on to threading's join
            del thread, user_run, own_run, error


_NO_PARK: Any = object()


def _join_wait(timeout: object) -> Any:
    """How long a join parks: ``None`` (no limit), seconds, or ``_NO_PARK`` -- a poll, or a
    timeout threading itself must judge (its errors, its clamping), left to its join."""
    if timeout is None:
        return None
    if type(timeout) not in (int, float):
        return _NO_PARK
    value = float(timeout)  # type: ignore[arg-type] # an int or a float, checked above
    if not 0 < value <= threading.TIMEOUT_MAX:
        return _NO_PARK
    return value


def _release_frames(exc: BaseException) -> BaseException:
    """``exc`` with the local variables of the (finished) frames it passed through
    released: kept for :meth:`Thread.result`, it must not keep the thread, its target or
    their arguments alive (threading keeps none). The traceback keeps its lines."""
    seen: set[int] = set()
    chained: BaseException | None = exc
    while chained is not None and id(chained) not in seen:
        seen.add(id(chained))
        if chained.__traceback__ is not None:
            traceback.clear_frames(chained.__traceback__)
        chained = chained.__cause__ or chained.__context__
    return exc


def _release_callers(exc: BaseException) -> None:
    """Clear the (finished) frames below the one that caught ``exc``: each frame of a kept
    traceback links to its caller, down to threading's bootstrap, which holds the thread."""
    tb = exc.__traceback__
    frame = tb.tb_frame.f_back if tb is not None else None
    while frame is not None:
        try:
            frame.clear()
        except RuntimeError:  # still running (not this thread's stack): leave it
            pass
        frame = frame.f_back


class Timer(Thread):
    """``threading.Timer`` as a plait strand: call ``function(*args, **kwargs)`` after
    ``interval`` seconds unless :meth:`cancel` was called first.

    ``result()`` returns what the function returned (``None`` when cancelled).
    """

    def __init__(
        self,
        interval: float,
        function: Callable[..., object],
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.function = function
        # Fresh containers per timer, as threading's (a shared default would leak edits).
        self.args = args if args is not None else []
        self.kwargs = kwargs if kwargs is not None else {}
        self.finished = Event()

    def cancel(self) -> None:
        """Stop the timer if it has not fired yet."""
        self.finished.set()

    def run(self) -> Any:
        self.finished.wait(self.interval)
        try:
            if not self.finished.is_set():
                return self.function(*self.args, **self.kwargs)
            return None
        finally:
            self.finished.set()
