"""Thread strands, and ``plait.Thread``: a drop-in ``threading.Thread`` that is also a strand.

Thread strands spawned by a :class:`plait.TaskGroup` run on reused OS threads: starting a
thread costs tens of microseconds, handing a job to an idle one a few. An idle thread waits
``IDLE_SECONDS`` for more work and then ends, so nothing lingers.
"""

from __future__ import annotations

import contextvars
import os
import threading
from _thread import allocate_lock
from collections.abc import Callable, Mapping
from typing import Any

from plait._core import Strand, bind_thread, hooks, register, unbind_thread, unregister

__all__ = ["Thread", "run_in_thread"]

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
        self._plait_strand = Strand("thread", self.name)

    def start(self) -> None:
        user_run = self.run
        strand = self._plait_strand

        def run() -> None:
            strand.name = self.name
            bind_thread(strand)
            strand.state = "running"
            register(strand)
            if hooks.active:
                hooks.started(strand)
            error: BaseException | None = None
            try:
                if user_run.__func__ is Thread.run:  # type: ignore[attr-defined]
                    self._plait_result = self._run_target()
                else:
                    self._plait_result = user_run()
            except BaseException as exc:
                error = self._plait_error = exc
                raise
            finally:
                self._plait_done = True
                unbind_thread()
                unregister(strand)
                if hooks.active:
                    hooks.exited(strand, error)

        self.run = run  # type: ignore[method-assign]
        super().start()

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

        Re-raises the exception the thread raised; raises :class:`TimeoutError` if the
        thread is still running after ``timeout``, and :class:`RuntimeError` if it was
        never started.
        """
        if not self._started.is_set():  # type: ignore[attr-defined]
            raise RuntimeError(f"{self.name} was never started: call start() first")
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"{self.name} is still running after {timeout} s")
        if self._plait_error is not None:
            raise self._plait_error
        return self._plait_result
