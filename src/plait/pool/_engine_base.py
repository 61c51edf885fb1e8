"""What every pool engine shares: the queue of tasks, ``imap`` inputs, idleness, delivery.

An *engine* runs the tasks that :class:`plait.Pool` (the front end: chunking, sinks,
progress, backpressure) serialises. :class:`~plait.pool._engine.Engine` runs them on
plait's own worker processes; :mod:`plait.pool.backends` runs them on a cluster (Dask,
Ray). Both keep the same bookkeeping, here: ``pending`` (a deque of tasks not yet handed
out), ``sources`` (``imap`` inputs read by the input thread), ``outstanding`` (tasks not
yet delivered to their sink) and the waiters of ``join``. A subclass provides
``assign_locked`` (pair queued tasks with room to run them) and ``send`` (hand them out),
and may react to idleness (``idle_locked``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import CancelledError
from typing import Any

from plait._core import WaitQueue, async_park, park
from plait._errors import PoolClosedError
from plait._ipc.serialize import dumps
from plait.pool._chunking import Source
from plait.pool._input import SourceEntry, input_loop
from plait.pool._protocol import RUN
from plait.pool._tasks import FutureSink, Sink, Task, all_failed

__all__ = ["EngineBase"]

Errors = dict[int, BaseException] | None  # position in a task's items -> its exception


class EngineBase:
    """The bookkeeping shared by every engine (see the module docstring)."""

    #: How the front end pickles a call for this engine (a cluster one refuses objects
    #: that only work on this machine: see :mod:`plait.pool.backends._crossing`).
    dumps = staticmethod(dumps)

    lock: threading.Lock
    input_cond: threading.Condition
    idle_waiters: WaitQueue
    pending: deque[Task]
    sources: list[SourceEntry]
    outstanding: int
    state: str
    threads_stop: bool
    input_requested: bool
    item_seconds: float | None
    stats: dict[str, int]
    result_thread: threading.Thread

    def init_queue(self) -> None:
        """Set up the shared state (call from the subclass's ``__init__``, first)."""
        import itertools

        self.state = RUN
        self.item_seconds = None
        self.lock = threading.Lock()
        self.input_cond = threading.Condition(self.lock)
        self.idle_waiters = WaitQueue(self.lock)  # type: ignore[arg-type]
        self.pending = deque()
        self.sources = []
        self.outstanding = 0
        self.ids = itertools.count(1)
        self.threads_stop = False
        self.input_requested = False
        self.stats = {"completed": 0, "crashed": 0, "timed_out": 0, "replaced": 0, "retried": 0}

    def assign_locked(self) -> list[tuple[Any, Task]]:
        raise NotImplementedError

    def send(self, assignments: list[tuple[Any, Task]]) -> None:
        raise NotImplementedError

    def idle_locked(self) -> None:
        """Every task is delivered (called under the lock); a hook for subclasses."""

    processes: int

    def tasks_running_locked(self) -> int:
        raise NotImplementedError

    def worker_pids(self) -> list[int]:
        """Process ids of this machine's workers (none for a cluster engine)."""
        raise NotImplementedError

    def cancel_sink(self, sink: Sink, error: BaseException) -> None:
        """A caller's wait was cancelled: drop the sink's queued tasks, stop its running ones."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def join(self) -> None:
        raise NotImplementedError

    async def async_join(self) -> None:
        raise NotImplementedError

    def terminate(self) -> None:
        raise NotImplementedError

    async def async_terminate(self) -> None:
        raise NotImplementedError

    def workers_alive_locked(self) -> int:
        raise NotImplementedError

    def new_id(self) -> int:
        return next(self.ids)

    def in_result_thread(self) -> bool:
        return threading.current_thread() is getattr(self, "result_thread", None)

    def forbid_wait_here(self) -> None:
        """Raise instead of a deadlock: the result thread runs callbacks *and* delivers
        results, so a callback that waits for a result of this pool would wait forever."""
        if self.in_result_thread():
            raise RuntimeError(
                "waiting for a result of this pool inside one of its callbacks would "
                "deadlock (the callback runs in the thread that delivers results): "
                "submit with apply_async/submit and a callback instead, or wait in "
                "another thread"
            )

    def check_open(self) -> None:
        if self.state != RUN:
            raise PoolClosedError(f"Pool not running: it is {self.state} and takes no new work")

    def enqueue(self, tasks: Iterable[Task]) -> None:
        """Queue tasks (already serialised) and hand out what can go at once."""
        with self.lock:
            if self.state != RUN:
                raise PoolClosedError(f"Pool not running: it is {self.state} and takes no new work")
            for task in tasks:
                self.pending.append(task)
                self.outstanding += 1
            assignments = self.assign_locked()
        self.send(assignments)

    def add_source(self, entry: SourceEntry) -> None:
        with self.lock:
            if self.state != RUN:
                raise PoolClosedError(f"Pool not running: it is {self.state} and takes no new work")
            self.sources.append(entry)
            self.request_input_locked()

    def withdraw(self, sink: Sink) -> None:
        """Drop the queued tasks of ``sink`` (a call that failed half-way through)."""
        with self.lock:
            kept = [t for t in self.pending if t.sink is not sink]
            self.outstanding -= len(self.pending) - len(kept)
            self.pending = deque(kept)
            self.maybe_idle_locked()

    def drop_source(self, entry: SourceEntry) -> None:
        """The caller dropped the iterator: read no more of its input (what was read still
        runs; its results are discarded).

        Runs from a finalizer, in whatever thread dropped the last reference, perhaps one
        that holds our lock: so it only sets a flag, and wakes the input thread if the
        lock is free (else that thread's periodic pass removes the entry).
        """
        entry.source.dropped = True
        if self.lock.acquire(blocking=False):
            try:
                self.request_input_locked()
            finally:
                self.lock.release()

    def source_consumed(self, source: Source) -> None:
        if source.mark_consumed():
            with self.lock:
                self.request_input_locked()

    def deliver(
        self,
        task: Task,
        indices: Sequence[int],
        values: list[Any],
        errors: Errors,
    ) -> None:
        try:
            task.sink.deliver(indices, values, errors)
        finally:
            with self.lock:
                self.outstanding -= 1
                self.stats["completed"] += 1
                self.maybe_idle_locked()

    def maybe_idle_locked(self) -> None:
        if self.outstanding == 0:
            for waiter in self.idle_waiters.pop_all():
                waiter.wake()  # non-blocking: a lock release or a call_soon_threadsafe
            self.idle_locked()

    def _input_loop(self) -> None:
        input_loop(self)

    def request_input_locked(self) -> None:
        self.input_requested = True
        self.input_cond.notify()

    def stopping(self) -> bool:
        with self.lock:
            return self.threads_stop

    def cancel_pending(self) -> None:
        """Drop every task that has not started (``shutdown(cancel_futures=True)``)."""
        with self.lock:
            dropped = list(self.pending)
            self.pending.clear()
            sources = list(self.sources)
            for entry in sources:
                entry.source.exhausted = True
            self.sources.clear()
            self.maybe_idle_locked()
        for entry in sources:  # outside the lock: it may free an iterator (a finalizer)
            entry.on_length(entry.source.pulled)
        for task in dropped:
            if isinstance(task.sink, FutureSink):
                task.sink.cancel()
                with self.lock:
                    self.outstanding -= 1
                    self.maybe_idle_locked()
            else:
                error = CancelledError("cancelled by shutdown(cancel_futures=True)")
                self.deliver(task, task.indices, *all_failed(len(task.indices), error))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Park until every task is delivered (``False`` at ``timeout``). The wake comes
        from ``maybe_idle_locked``; the 0.5 s re-check covers input sources draining."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.lock:
                if self.outstanding == 0 and not self.sources:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                waiter = self.idle_waiters.enqueue_current(self)
            park(waiter, 0.5 if remaining is None else min(remaining, 0.5))

    async def async_wait_idle(self) -> None:
        while True:
            with self.lock:
                if self.outstanding == 0 and not self.sources:
                    return
                waiter = self.idle_waiters.async_enqueue_current(self)
            await async_park(waiter, 0.5)
