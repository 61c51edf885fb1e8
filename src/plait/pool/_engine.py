"""The machinery under :class:`plait.Pool`: workers, the queue of tasks, three threads.

* Worker **exits** are watched by plait's one process watcher
  (:mod:`plait._processes._watcher`): each worker's sentinel is registered there when it
  starts; the watcher sets the worker's ``exited`` flag (joins park on it through the
  kernel) and hands the worker to the result thread. The pool runs no watcher of its own.
* The **result thread** waits (one epoll set) on every worker's pipe. It reads replies
  and hands them to their sinks, accounts for a dead worker the watcher reported (and,
  from the worker's marker row, which task, item and stage it was in), kills a worker
  whose task ran past its ``task_timeout``, and gives the next task to a worker that just
  finished one.
* The **feeder thread** starts replacement workers (and makes a periodic dispatch pass).
* The **input thread** reads ``imap`` inputs a bounded window ahead. User generators run
  there, so one that blocks delays only its own input, never a replacement worker.
* Each worker's **sender thread** (started on first need) sends that worker's large
  payloads, so a send blocks nobody but that worker's queue (see ``WorkerHandle.post``).

The lock guards the queue, each worker's ``inflight`` table and the counters. Nothing
blocking and no user code runs under it; sinks (and so user callbacks) run outside it.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from plait._errors import (
    DeserializationError,
    PoolClosedError,
    SerializationError,
    WorkerCrashed,
)
from plait._ipc.context import StartMethod, get_context
from plait._ipc.serialize import dumps, loads, unpack_error
from plait.pool import _protocol, _shutdown
from plait.pool._crashes import handle_death
from plait.pool._engine_base import EngineBase
from plait.pool._input import SourceEntry
from plait.pool._protocol import (
    CLOSE,
    HEADER,
    KIND_STOP,
    MARKER_WIDTH,
    REPLY_FAILED,
    REPLY_INIT_FAILED,
    RUN,
    STAGE_LOAD,
    STAGE_RUN,
    STAGE_SEND,
    STAGES,
    TERMINATE,
)
from plait.pool._tasks import FutureSink, Sink, Task, all_failed
from plait.pool._waiting import Completion
from plait.pool._workers import WorkerHandle, spawn_worker

__all__ = ["RUN", "TERMINATE", "Engine", "PoolClosedError", "SourceEntry"]


log = logging.getLogger("plait.pool")

_STOP = HEADER.pack(0, KIND_STOP)


def _note(exc: BaseException, text: str) -> BaseException:
    try:
        exc.add_note(text)
    except Exception:
        pass
    return exc


Errors = dict[int, BaseException] | None  # position in a task's items -> its exception


class Engine(EngineBase):
    """Workers and the two threads that serve them; :class:`plait.Pool` is its face."""

    def __init__(
        self,
        *,
        processes: int,
        initializer: Callable[..., object] | None,
        initargs: Sequence[Any],
        maxtasksperchild: int | None,
        max_memory_per_child: int | None,
        concurrency: int,
        start_method: StartMethod | None,
        grace: float,
    ) -> None:
        self.init_queue()  # lock, pending, sources, outstanding, state, stats...
        self.processes = processes
        self.concurrency = concurrency
        self.maxtasksperchild = maxtasksperchild
        self.max_memory_per_child = max_memory_per_child
        self.grace = grace
        self.ctx = get_context(start_method)
        self.init_payload = _init_payload(initializer, initargs)
        self.depth = 1 if concurrency == 1 else concurrency + 1
        self.chunk_seconds: float | None = None  # and per message

        self.feed_cond = threading.Condition(self.lock)
        self.workers: dict[int, WorkerHandle] = {}  # by row, retiring ones included
        self.timed_inflight = 0
        self.start_failures = 0  # workers in a row that died before their first reply
        self._logged: set[str] = set()
        self.free_rows = list(range(2 * processes - 1, -1, -1))
        self.marker = self.ctx.RawArray("q", 2 * processes * MARKER_WIDTH)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.deaths: list[WorkerHandle] = []  # exits the watcher reported, for the result thread
        # Set as each thread ends: joins park on these through the kernel.
        self.threads_done = {name: Completion(None) for name in _shutdown.THREADS}
        self.feed_requested = False
        # One worker now, so that a bad start method or environment fails here, at the
        # call; the feeder starts the others meanwhile, so the first result comes sooner.
        # Until they are all up, each worker holds one task at most ("filling"), so that
        # the first worker does not take a whole burst that the others should share.
        self.filling = processes > 1
        try:
            self._spawn()
        except BaseException as exc:
            self.terminate()
            if isinstance(self.init_payload, tuple) and isinstance(exc, TypeError | ValueError):
                # multiprocessing could not pickle them either: say so as plait would
                dumps(self.init_payload, what="the initializer")
            raise
        self.result_thread = self._thread("result_thread", self._result_loop, "results")
        self.feeder_thread = self._thread("feeder_thread", self._feed_loop, "feeder")
        self.input_thread = self._thread("input_thread", self._input_loop, "input")
        try:
            self.result_thread.start()
            self.feeder_thread.start()
            self.input_thread.start()
        except BaseException:  # no thread at interpreter shutdown: leave no worker behind
            self.terminate()
            raise
        with self.lock:
            self.request_feed_locked()

    def _thread(self, key: str, loop: Callable[[], None], what: str) -> threading.Thread:
        done = self.threads_done[key]

        def run() -> None:
            try:
                loop()
            finally:
                done.set()

        thread = threading.Thread(target=run, name=f"plait-pool-{what}", daemon=True)
        done.on = thread  # what a join parks on (no cycle through the engine)
        return thread

    # -- workers ---------------------------------------------------------------------------
    def _spawn(self) -> WorkerHandle:
        with self.lock:
            row = self.free_rows.pop()
        try:
            handle = spawn_worker(
                self.ctx,
                row=row,
                marker=self.marker,
                init_payload=self.init_payload,
                concurrency=self.concurrency,
                name=f"plait-pool-worker-{row}",
            )
        except BaseException:
            with self.lock:
                self.free_rows.append(row)
            raise
        try:
            handle.watch_exit(self._worker_exited)
        except BaseException:
            handle.kill(signal.SIGKILL)
            with self.lock:
                self.free_rows.append(row)
            raise
        with self.lock:
            self.workers[row] = handle
            terminated = self.state == TERMINATE
        if terminated:  # terminate() ran while this one started: it must not outlive it
            handle.kill(signal.SIGKILL)
        self._wake()
        return handle

    def _worker_exited(self, worker: WorkerHandle) -> None:
        """On the watcher thread: hand the dead worker to the result thread (quick)."""
        with self.lock:  # the wake pipe is closed under the lock
            self.deaths.append(worker)
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except (BlockingIOError, OSError):
                    pass

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.info(message, *args)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    # -- submitting ------------------------------------------------------------------------
    def idle_locked(self) -> None:
        if self.state == CLOSE:
            self.request_feed_locked()  # the feeder stops the idle workers

    def tasks_running_locked(self) -> int:
        return sum(len(w.inflight) for w in self.workers.values())

    def workers_alive_locked(self) -> int:
        return len(self.workers)

    def worker_pids(self) -> list[int]:
        with self.lock:
            return [w.pid for w in self.workers.values()]

    def assign_locked(self) -> list[tuple[WorkerHandle, Task]]:
        """Pair queued tasks with workers that have room, oldest task first."""
        out: list[tuple[WorkerHandle, Task]] = []
        pending = self.pending
        if not pending:
            return out
        depth = 1 if self.filling else self.depth
        candidates = [w for w in self.workers.values() if not w.retiring]
        while pending:
            best: WorkerHandle | None = None
            for w in candidates:
                n = len(w.inflight)
                if n < depth and (best is None or n < len(best.inflight)):
                    best = w
                    if n == 0:
                        break
            if best is None:
                return out
            task = pending.popleft()
            first_send = task.sent_ns == 0
            if first_send and isinstance(task.sink, FutureSink) and not task.sink.start():
                self.outstanding -= 1  # cancelled before it started
                self.maybe_idle_locked()
                continue
            best.inflight[task.id] = task
            task.worker = best
            task.sent_ns = 1
            if task.timeout is not None:
                self.timed_inflight += 1
            best.dispatched += 1
            if self.maxtasksperchild is not None and best.dispatched >= self.maxtasksperchild:
                self._retire_locked(best, "maxtasksperchild", "reached maxtasksperchild")
                candidates.remove(best)
            out.append((best, task))
        return out

    def send(self, assignments: list[tuple[WorkerHandle, Task]]) -> None:
        timed = False
        for worker, task in assignments:
            task.sent_ns = time.monotonic_ns()
            worker.post(task.payload)  # a dead worker's tasks are put back by its death
            timed = timed or task.timeout is not None
        if timed:
            self._wake()

    def _retire_locked(self, worker: WorkerHandle, key: str, why: str) -> None:
        if worker.retiring:
            return
        worker.retiring = True
        self._log_once(key, "plait.Pool: replacing worker %s (%s); logged once", worker.pid, why)
        self.request_feed_locked()  # start its replacement

    # -- the result thread ---------------------------------------------------------------
    def _result_loop(self) -> None:
        # One epoll set for the thread's whole life (rebuilding a selector per wait costs
        # more than the round trip of a tiny task); updated when the workers change.
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            watched: dict[int, WorkerHandle] = {}
            while True:
                with self.lock:
                    if self.threads_stop:
                        return
                    workers = dict(self.workers)
                    timed = self.timed_inflight > 0
                    dead, self.deaths = self.deaths, []
                for worker in dead:  # reported by the process watcher
                    self._unwatch(selector, watched, worker)
                    self._guarded(self._on_death, worker)
                if dead:
                    continue  # the workers changed: look again
                if workers.keys() != watched.keys() or any(
                    watched[row] is not w for row, w in workers.items()
                ):
                    self._rewatch(selector, watched, workers)
                timeout = self._check_deadlines(list(workers.values())) if timed else None
                for key, _ in selector.select(timeout):
                    worker = key.data
                    if worker is None:
                        try:
                            os.read(self._wake_r, 4096)
                        except OSError:
                            pass
                        continue
                    try:
                        data = worker.conn.recv_bytes()
                    except (EOFError, OSError):
                        # The worker is ending: the watcher reports its exit. Stop
                        # listening meanwhile (end-of-file stays readable).
                        self._unregister(selector, worker.conn_fd)
                        continue
                    self._guarded(self.on_reply, worker, data)
        finally:
            selector.close()

    def _rewatch(
        self,
        selector: selectors.BaseSelector,
        watched: dict[int, WorkerHandle],
        workers: dict[int, WorkerHandle],
    ) -> None:
        for row, worker in list(watched.items()):
            if workers.get(row) is not worker:
                self._unwatch(selector, watched, worker)
        for row, worker in workers.items():
            if row not in watched:
                try:
                    selector.register(worker.conn.fileno(), selectors.EVENT_READ, worker)
                except (OSError, ValueError, KeyError):
                    pass
                watched[row] = worker

    def _unwatch(
        self,
        selector: selectors.BaseSelector,
        watched: dict[int, WorkerHandle],
        worker: WorkerHandle,
    ) -> None:
        if watched.get(worker.row) is worker:
            del watched[worker.row]
            self._unregister(selector, worker.conn_fd)

    @staticmethod
    def _unregister(selector: selectors.BaseSelector, fd: int) -> None:
        try:
            selector.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # the result thread must outlive any bug: log it, go on
            log.exception("plait.Pool: internal error in the result thread")

    def on_reply(self, worker: WorkerHandle, data: bytes) -> None:
        task_id, kind = HEADER.unpack_from(data)
        if kind == REPLY_INIT_FAILED:
            try:
                worker.init_error = unpack_error(loads(memoryview(data)[HEADER.size :]))
            except Exception as exc:
                worker.init_error = exc
            _note(worker.init_error, f"raised in the initializer of worker {worker.pid}")
            return
        rss = self._over_memory(worker) if self.max_memory_per_child is not None else None
        with self.lock:
            task = worker.inflight.pop(task_id, None)
            if task is None:
                return
            if task.timeout is not None:
                self.timed_inflight -= 1
            self.start_failures = 0
            worker.replies += 1
            if rss is not None:  # replaced before it is given another task
                self._retire_locked(
                    worker,
                    "max_memory",
                    f"RSS {rss} bytes over max_memory_per_child={self.max_memory_per_child}",
                )
            stop_it = worker.retiring and not worker.inflight and not worker.stopped
            if stop_it:
                worker.stopped = True
            assignments = self.assign_locked()
        self.send(assignments)
        if stop_it:
            worker.post(_STOP)
        values, errors = self._decode(task, worker, kind, data)
        self.deliver(task, task.indices, values, errors)

    def _decode(
        self, task: Task, worker: WorkerHandle, kind: int, data: bytes
    ) -> tuple[list[Any], Errors]:
        n = len(task.indices)
        try:
            body = loads(memoryview(data)[HEADER.size :])
        except BaseException as exc:  # SystemExit too: a result never ends the caller
            error: BaseException = DeserializationError(
                f"the result of {task.label} (task #{task.id}) could not be unpickled "
                f"in the parent: {exc!r}"
            )
            error.__cause__ = exc
            _note(error, f"raised while unpickling the result of {task.label} (task #{task.id})")
            return all_failed(n, error)
        if kind == REPLY_FAILED:
            stage, packed = body
            error = _contain(unpack_error(packed), task, worker)
            if stage == STAGE_LOAD and not isinstance(error, WorkerCrashed):
                cause = error
                error = DeserializationError(
                    f"the arguments of {task.label} could not be unpickled in worker "
                    f"{worker.pid}: {cause!r}"
                )
                error.__cause__ = cause
            _note(
                error,
                f"raised {STAGES.get(stage, 'in the worker')} {task.label} in worker {worker.pid}",
            )
            return all_failed(n, error)
        values, packed_errors, elapsed = body
        if elapsed > 0 and n:
            per_item = elapsed / n
            prev = self.item_seconds
            self.item_seconds = per_item if prev is None else 0.7 * prev + 0.3 * per_item
            chunk = self.chunk_seconds
            self.chunk_seconds = elapsed if chunk is None else 0.7 * chunk + 0.3 * elapsed
            if self.concurrency == 1:
                # Short tasks: keep one queued behind the running one (no idle gap between
                # them). Long tasks: one at a time, so an idle worker takes the next.
                self.depth = 2 if self.chunk_seconds < 0.05 else 1
        if not packed_errors:
            return values, None
        errors: dict[int, BaseException] = {}
        for position, (stage, packed) in packed_errors.items():
            error = _contain(unpack_error(packed), task, worker)
            if stage == STAGE_SEND:
                _note(
                    error,
                    f"raised while pickling the result of {task.label} in worker {worker.pid}",
                )
            errors[position] = error
        return values, errors

    def _over_memory(self, worker: WorkerHandle) -> int | None:
        """The worker's RSS if it is over ``max_memory_per_child``, else ``None``."""
        if worker.retiring:
            return None
        try:
            import psutil

            rss = int(psutil.Process(worker.pid).memory_info().rss)
        except Exception:
            return None
        limit = self.max_memory_per_child
        return rss if limit is not None and rss > limit else None

    def _check_deadlines(self, workers: list[WorkerHandle]) -> float:
        """Kill workers whose task ran out of time; return seconds to the next deadline."""
        now = time.monotonic_ns()
        soonest = 0.5
        marker = self.marker
        for worker in workers:
            if worker.kill_reason is not None or not worker.inflight:
                continue
            base = worker.row * MARKER_WIDTH
            if self.concurrency > 1:
                # Coroutines time out inside the worker; this is only the backstop.
                for task in list(worker.inflight.values()):
                    if task.timeout is not None and task.sent_ns > 1:
                        left = task.sent_ns + int((task.timeout + 2 * self.grace + 1) * 1e9) - now
                        if left <= 0:
                            worker.kill_reason = ("timeout", task.id)
                            worker.kill(signal.SIGKILL)
                            break
                        soonest = min(soonest, left / 1e9)
                continue
            tid = marker[base]
            running = worker.inflight.get(tid)
            if running is None or running.timeout is None or marker[base + 2] != STAGE_RUN:
                continue
            left = marker[base + 3] + int(running.timeout * 1e9) - now
            if left <= 0:
                worker.kill_reason = ("timeout", tid)
                worker.kill(signal.SIGKILL)
            else:
                soonest = min(soonest, left / 1e9)
        return max(soonest, 0.001)

    # -- worker death: see plait.pool._crashes ----------------------------------------------
    def _on_death(self, worker: WorkerHandle) -> None:
        handle_death(self, worker)

    # -- the feeder thread -----------------------------------------------------------------
    def _feed_loop(self) -> None:
        while True:
            with self.lock:
                if self.threads_stop:
                    return
                if not self.feed_requested:
                    self.feed_cond.wait(0.5)
                self.feed_requested = False
            if self.stopping():
                return
            try:
                self._feed_once()
            except Exception:
                log.exception("plait.Pool: internal error in the feeder thread")

    def request_feed_locked(self) -> None:
        """Ask the feeder for a pass; the flag means a request made while it was busy is
        not lost (a bare notify would be)."""
        self.feed_requested = True
        self.feed_cond.notify()

    def _feed_once(self) -> None:
        # 1. keep the pool at full strength
        while True:
            with self.lock:
                if self.state == TERMINATE:
                    return
                # A retiring worker is replaced once it has exited, so the pool never
                # holds more than ``processes`` workers.
                missing = self.processes - len(self.workers)
                # Workers that keep dying before their first reply (a failing initializer,
                # a broken environment): start them only when there is work, and slower.
                failures = self.start_failures
                lazy = failures >= 3 and not self.pending
                if missing <= 0 or lazy or (self.state == CLOSE and self.outstanding == 0):
                    self.filling = False
                    break
            if failures >= 5:
                time.sleep(min(0.02 * failures, 0.5))
            try:
                self._spawn()
            except Exception:
                log.exception("plait.Pool: could not start a worker")
                with self.lock:
                    self.filling = False
                time.sleep(0.1)
                break
            with self.lock:
                assignments = self.assign_locked()  # the new worker takes queued work now
            self.send(assignments)
        # 2. hand out queued tasks (a pass here also catches anything missed)
        with self.lock:
            assignments = self.assign_locked()
            stop = self.state == CLOSE and self.outstanding == 0 and not self.sources
        self.send(assignments)
        if stop:
            self._stop_idle_workers()

    def _stop_idle_workers(self) -> None:
        with self.lock:
            to_stop = [w for w in self.workers.values() if not w.stopped and not w.inflight]
            for w in to_stop:
                w.stopped = True
                w.retiring = True
        for w in to_stop:
            w.post(_STOP)

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        with self.lock:
            if self.state == RUN:
                self.state = CLOSE
            self.request_feed_locked()

    def cancel_sink(self, sink: Sink, error: BaseException) -> None:
        """A caller's wait was cancelled: drop the sink's queued tasks and stop its running
        ones -- a coroutine task is cancelled in its worker (a message); a worker running a
        plain function for it is killed and replaced (its other tasks run again)."""
        kill: list[WorkerHandle] = []
        notify: list[tuple[WorkerHandle, int]] = []
        with self.lock:
            kept = [t for t in self.pending if t.sink is not sink]
            dropped = len(self.pending) - len(kept)
            self.outstanding -= dropped
            self.pending = deque(kept)
            for worker in self.workers.values():
                for task in worker.inflight.values():
                    if task.sink is not sink:
                        continue
                    task.cancelled = True
                    if self.concurrency > 1:
                        notify.append((worker, task.id))
                    elif worker.kill_reason is None and (
                        self.marker[worker.row * MARKER_WIDTH] == task.id
                        or next(iter(worker.inflight)) == task.id  # it runs next
                    ):
                        worker.kill_reason = ("cancel", task.id)
                        kill.append(worker)
            self.maybe_idle_locked()
        sink.fail_all(error)
        for worker, task_id in notify:
            worker.post(HEADER.pack(task_id, _protocol.KIND_CANCEL))
        for worker in kill:
            worker.kill(signal.SIGKILL)

    def join(self) -> None:
        """Wait for every task, then stop the workers and the threads."""
        _shutdown.join(self)

    async def async_join(self) -> None:
        """:meth:`join` from a coroutine: every wait parks through the kernel."""
        await _shutdown.async_join(self)

    def terminate(self) -> None:
        """Stop now: unfinished tasks fail with ClosedError; workers get SIGTERM, then
        SIGKILL after ``grace`` seconds."""
        _shutdown.terminate(self)

    async def async_terminate(self) -> None:
        """:meth:`terminate` from a coroutine (its waits park through the kernel)."""
        await _shutdown.async_terminate(self)


def _init_payload(
    initializer: Callable[..., object] | None, initargs: Sequence[Any]
) -> bytes | tuple[Any, ...] | None:
    """The initializer and its arguments, pickled here when they can be (an error then
    points at the caller); else handed to multiprocessing to pickle while it starts each
    worker -- the only time a ``multiprocessing.Queue`` or ``Lock`` may be pickled, which
    is how both stdlib pools accept them in ``initargs``."""
    if initializer is None:
        return None
    try:
        return dumps((initializer, tuple(initargs)), what="the initializer")
    except SerializationError:
        return (initializer, tuple(initargs))


def _contain(error: BaseException, task: Task, worker: WorkerHandle) -> BaseException:
    """A task's ``SystemExit``/``KeyboardInterrupt`` fails that task as ``WorkerCrashed``
    (carrying the exit code), never ends the caller."""
    if not isinstance(error, SystemExit | KeyboardInterrupt):
        return error
    code = error.code if isinstance(error, SystemExit) else None
    crashed = WorkerCrashed(
        f"{task.label} raised {type(error).__name__}"
        f"{'' if code is None else f'({code!r})'} in worker {worker.pid}; a pool task "
        "cannot end the calling program, so the task failed",
        pid=worker.pid,
        exitcode=code if isinstance(code, int) else None,
        task=task.label,
    )
    crashed.__cause__ = error
    return crashed
