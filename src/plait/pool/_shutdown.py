"""How a pool ends: ``join`` (after ``close``) and ``terminate``, sync and async.

Every wait here parks through the kernel: for the tasks to be done (``wait_idle``), for
each worker's exit (its ``exited`` flag, set by plait's one process watcher) and for the
pool's threads to end (their end flags) -- so ``async_join``/``async_terminate`` need no
executor thread. A worker is forgotten by the watcher before its sentinel is closed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING

from plait._errors import ClosedError
from plait.pool._input import SourceEntry
from plait.pool._protocol import CLOSE, RUN, TERMINATE
from plait.pool._tasks import Task, all_failed
from plait.pool._waiting import Completion
from plait.pool._workers import WorkerHandle, join_quietly

if TYPE_CHECKING:
    from plait.pool._engine import Engine

__all__ = ["THREADS", "async_join", "async_terminate", "join", "terminate"]

THREADS = ("result_thread", "feeder_thread", "input_thread")


def join(engine: Engine) -> None:
    """Wait for every task, then stop the workers and the threads."""
    if _prepare_join(engine):
        engine.wait_idle()
        engine._stop_idle_workers()
        deadline = time.monotonic() + 5.0
        for w in _snapshot_workers(engine):
            w.exited.wait(max(0.0, deadline - time.monotonic()))
    _stop_threads(engine)
    deadline = time.monotonic() + 5.0
    for done in _threads_to_wait(engine):
        done.wait(max(0.0, deadline - time.monotonic()))
    _reap_all(engine)


async def async_join(engine: Engine) -> None:
    """:meth:`join` from a coroutine: every wait parks through the kernel."""
    if _prepare_join(engine):
        await engine.async_wait_idle()
        engine._stop_idle_workers()
        deadline = time.monotonic() + 5.0
        for w in _snapshot_workers(engine):
            await w.exited.async_wait(max(0.0, deadline - time.monotonic()))
    _stop_threads(engine)
    deadline = time.monotonic() + 5.0
    for done in _threads_to_wait(engine):
        await done.async_wait(max(0.0, deadline - time.monotonic()))
    _reap_all(engine)


def _prepare_join(engine: Engine) -> bool:
    """Check that join may run; ``True`` when there is work and workers to wait for."""
    if engine.state == RUN:
        raise ValueError("Pool is still running: call close() or terminate() first")
    if engine.state != CLOSE:
        return False
    with engine.lock:
        # Nobody consumes while we wait here: read imap inputs to their end, as
        # multiprocessing does (results wait in their iterators).
        for entry in engine.sources:
            entry.source.unbounded = True
        engine.request_input_locked()
    return True


def _snapshot_workers(engine: Engine) -> list[WorkerHandle]:
    with engine.lock:
        return list(engine.workers.values())


def terminate(engine: Engine) -> None:
    """Stop now: unfinished tasks fail with ClosedError; workers get SIGTERM, then
    SIGKILL after ``grace`` seconds."""
    stopping = _begin_terminate(engine)
    if stopping is None:
        return
    workers = stopping[0]
    deadline = time.monotonic() + engine.grace
    for w in workers:
        join_quietly(w, max(0.0, deadline - time.monotonic()))
    for w in workers:
        if join_quietly(w, 0) is None:
            w.kill(signal.SIGKILL)
    for w in workers:
        join_quietly(w, 1.0)
    _end_terminate(engine, *stopping)


async def async_terminate(engine: Engine) -> None:
    """:meth:`terminate` from a coroutine: the waits for workers park through the
    kernel. Cancelled while it waits, it still kills what is left and finishes."""
    stopping = _begin_terminate(engine)
    if stopping is None:
        return
    workers = stopping[0]
    try:
        deadline = time.monotonic() + engine.grace
        for w in workers:
            await w.exited.async_wait(max(0.0, deadline - time.monotonic()))
        for w in workers:
            if not w.exited.done:
                w.kill(signal.SIGKILL)
        deadline = time.monotonic() + 1.0
        for w in workers:
            await w.exited.async_wait(max(0.0, deadline - time.monotonic()))
    finally:
        for w in workers:
            if not w.exited.done:
                w.kill(signal.SIGKILL)
        _end_terminate(engine, *stopping)


def _begin_terminate(
    engine: Engine,
) -> tuple[list[WorkerHandle], list[Task], list[SourceEntry]] | None:
    """Mark the pool terminated, take its work, stop its threads and SIGTERM its
    workers; ``None`` if it was already terminated."""
    with engine.lock:
        if engine.state == TERMINATE and not engine.workers:
            return None
        engine.state = TERMINATE
        tasks = list(engine.pending)
        engine.pending.clear()
        workers = list(engine.workers.values())
        for w in workers:
            tasks.extend(w.inflight.values())
            w.inflight.clear()
            w.retiring = w.stopped = True
        sources = list(engine.sources)
        engine.sources.clear()
        engine.request_feed_locked()
    _shutdown_threads(engine)
    for w in workers:
        w.kill(signal.SIGTERM)
    return workers, tasks, sources


def _end_terminate(
    engine: Engine, workers: list[WorkerHandle], tasks: list[Task], sources: list[SourceEntry]
) -> None:
    _reap_all(engine)
    error = ClosedError("the pool was terminated before this task finished")
    for task in tasks:
        engine.deliver(task, task.indices, *all_failed(len(task.indices), error))
    for entry in sources:
        entry.on_length(entry.source.pulled)


def _stop_threads(engine: Engine) -> None:
    """Ask the pool's threads to end (they do at their next pass)."""
    with engine.lock:
        engine.threads_stop = True
        engine.request_feed_locked()
        engine.request_input_locked()
    engine._wake()


def _threads_to_wait(engine: Engine) -> list[Completion]:
    """The end flags of the started threads, less the calling one (a callback may
    join or terminate the pool from the result thread)."""
    current = threading.current_thread()
    return [
        engine.threads_done[name]
        for name in THREADS
        if (thread := getattr(engine, name, None)) is not None
        and thread is not current
        and thread.ident is not None
    ]


def _shutdown_threads(engine: Engine) -> None:
    _stop_threads(engine)
    current = threading.current_thread()
    for thread in (getattr(engine, name, None) for name in THREADS):
        if thread is not None and thread is not current and thread.is_alive():
            thread.join(5.0)


def _reap_all(engine: Engine) -> None:
    with engine.lock:
        workers = list(engine.workers.values())
        engine.workers.clear()
    for w in workers:
        w.mark_dead()
        w.forget_exit()  # before its sentinel is closed
        try:
            if w.process.exitcode is None:
                w.kill(signal.SIGKILL)
                w.process.join(1.0)
            w.conn.close()
            w.process.close()
        except (OSError, ValueError, AssertionError):  # closed meanwhile: nothing left
            pass
    with engine.lock:  # the watcher's exit callbacks write to the wake pipe under it
        for fd in (engine._wake_r, engine._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        engine._wake_r = engine._wake_w = -1
