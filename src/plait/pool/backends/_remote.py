"""An engine that hands the pool's tasks to a cluster (the part common to Dask and Ray).

The front end queues :class:`~plait.pool._tasks.Task` objects exactly as for the local
pool; here each one becomes one engine task (``run_payload(payload)``, see :mod:`._run`),
so plait's chunking still batches tiny items into one engine task per chunk. Two threads
serve the pool:

* the **result thread** submits what callers queued (whatever gathered meanwhile goes in
  one engine call: ``map`` queues chunk by chunk) and collects finished engine tasks (the
  engine's watcher finds them in waves, :mod:`._waves`; finished ones wait about as long
  as one fetch takes, to share it), decodes their replies and delivers them to their sinks
  (callbacks run there, as in the local pool). It fails tasks past their ``task_timeout``
  and cancels their engine futures. A task whose worker died fails with
  ``plait.WorkerCrashed``, after ``retries`` re-runs and after its chunk's other items ran
  again one by one, so that only the item that crashed fails (as in the local pool);
* the **input thread** reads ``imap`` inputs (the same loop as the local pool's).

At most ``window`` tasks are in the engine at once (the rest wait in ``pending``, so a
cancelled or terminated call has little to withdraw); a task with a ``task_timeout`` is
handed out only while fewer than ``processes`` timed tasks run, so its clock starts
about when it starts to run (engines do not report starts cheaply).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import CancelledError
from typing import Any

from plait._errors import ClosedError, WorkerCrashed
from plait.pool._engine_base import EngineBase
from plait.pool._protocol import CLOSE, HEADER, KIND_CALL, RUN, TERMINATE, subset_payload
from plait.pool._tasks import FutureSink, Sink, Task, all_failed
from plait.pool.backends._crossing import cluster_dumps
from plait.pool.backends._run import decode_reply
from plait.pool.backends._waves import WaveWatcher

__all__ = ["Outcome", "RemoteEngine"]

log = logging.getLogger("plait.pool")

# What became of an engine task: ("ok", reply bytes), ("crashed", the engine's error),
# ("failed", an error), ("cancelled", None), or ("running", None): seen finished, its
# result was lost with its worker since, and the engine computes it again.
Outcome = tuple[str, Any]

BATCH = 512  # results fetched in one engine call at most
BATCH_WAIT_S = 0.002  # how long finished tasks wait (at least) for others to share a fetch
BATCH_WAIT_MAX_S = 0.01  # and at most
SUBMIT_QUIET_S = 0.0005  # tasks are submitted once callers paused queueing this long...
SUBMIT_WAIT_MAX_S = 0.005  # ...or after this long


class RemoteEngine(EngineBase):
    """The engine-neutral half of a cluster engine (see the module docstring)."""

    backend = "cluster"
    watcher: WaveWatcher  # the engine's: finds finished engine tasks (:mod:`._waves`)

    def __init__(self, processes: int) -> None:
        self.init_queue()
        self.processes = processes
        self.window = max(4096, 64 * processes)
        self.inflight: dict[int, Task] = {}
        self.timed_inflight = 0
        self.done: list[Task] = []
        self.outbox: list[Task] = []  # assigned, for the result thread to submit
        self.batch_wait = BATCH_WAIT_S
        self.last_send = 0.0
        self.results_cond = threading.Condition(self.lock)
        self.closed_engine = False
        self.result_thread = threading.Thread(
            target=self._guarded_loop, name=f"plait-pool-{self.backend}-results", daemon=True
        )
        self.input_thread = threading.Thread(
            target=self._input_loop, name=f"plait-pool-{self.backend}-input", daemon=True
        )

    def dumps(self, obj: Any, *, what: str = "object") -> bytes:
        return cluster_dumps(obj, what=what, backend=self.backend)

    def start_threads(self) -> None:
        try:
            self.result_thread.start()
            self.input_thread.start()
        except BaseException:
            self.terminate()
            raise

    # -- for the engine subclasses ----------------------------------------------------
    @property
    def where(self) -> str:
        return f"a {self.backend} worker"

    def _submit(self, tasks: list[Task]) -> None:
        """Hand ``tasks`` to the engine; each one's handle goes in ``task.worker`` and its
        end must call :meth:`finished` (from any thread)."""
        raise NotImplementedError

    def _collect(self, tasks: list[Task]) -> list[Outcome]:
        """What became of each finished task (runs in the result thread; may block)."""
        raise NotImplementedError

    def _cancel(self, handles: list[Any]) -> None:
        """Cancel engine tasks (never raises)."""
        raise NotImplementedError

    def _shutdown_engine(self) -> None:
        """Disconnect; stop the cluster if this pool started it."""
        raise NotImplementedError

    def finished_many(self, tasks: list[Task]) -> None:
        """Engine tasks ended (found together): the result thread takes them from here.
        It is woken only by the first of a batch and by the one that fills it (it waits
        out the rest of a batch anyway): a wake-up per tiny task would cost more than the
        task (see :meth:`_result_pass`)."""
        with self.lock:
            done = self.done
            had = len(done)
            inflight = self.inflight
            done.extend(task for task in tasks if inflight.get(task.id) is task)
            if len(done) > had and (had == 0 or len(done) >= min(len(inflight), BATCH)):
                self.results_cond.notify()

    # -- handing out ------------------------------------------------------------------
    def assign_locked(self) -> list[tuple[Any, Task]]:
        out: list[tuple[Any, Task]] = []
        pending = self.pending
        while pending and len(self.inflight) < self.window:
            task = pending[0]
            if task.timeout is not None and self.timed_inflight >= self.processes:
                break
            pending.popleft()
            if task.sent_ns == 0 and isinstance(task.sink, FutureSink) and not task.sink.start():
                self.outstanding -= 1  # cancelled before it started
                self.maybe_idle_locked()
                continue
            task.sent_ns = time.monotonic_ns()
            if task.timeout is not None:
                self.timed_inflight += 1
            self.inflight[task.id] = task
            out.append((None, task))
        return out

    def send(self, assignments: list[tuple[Any, Task]]) -> None:
        """Hand tasks to the result thread, which submits what has gathered in one call
        (``map`` queues chunk by chunk: one engine round trip each would cost more than
        a tiny task)."""
        if not assignments:
            return
        with self.lock:
            first = not self.outbox  # the others find the result thread awake already
            self.outbox.extend(task for _, task in assignments)
            self.last_send = time.monotonic()
            if first:
                self.results_cond.notify()

    def _submit_outbox(self) -> None:
        with self.lock:
            # A caller still queueing (map, chunk by chunk): let its tasks gather a moment
            # and go in one engine call.
            until = time.monotonic() + SUBMIT_WAIT_MAX_S
            while (
                self.outbox
                and not self.threads_stop
                and time.monotonic() - self.last_send < SUBMIT_QUIET_S
                and time.monotonic() < until
            ):
                self.results_cond.wait(SUBMIT_QUIET_S)
            tasks = [t for t in self.outbox if self.inflight.get(t.id) is t]  # not cancelled
            self.outbox = []
        if not tasks:
            return
        try:
            self._submit(tasks)
        except BaseException as exc:  # the engine refused them (disconnected...)
            error = WorkerCrashed(
                f"the {self.backend} cluster did not take {tasks[0].label}: {exc!r}",
                task=tasks[0].label,
            )
            error.__cause__ = exc
            for task in tasks:
                if self._take(task):
                    self.deliver(task, task.indices, *all_failed(len(task.indices), error))

    def _take(self, task: Task) -> bool:
        """Remove ``task`` from the in-flight table; ``False`` if someone else did."""
        with self.lock:
            if self.inflight.pop(task.id, None) is None:
                return False
            if task.timeout is not None:
                self.timed_inflight -= 1
            return True

    def _dispatch(self) -> None:
        with self.lock:
            assignments = self.assign_locked() if self.state != TERMINATE else []
        self.send(assignments)

    # -- the result thread ------------------------------------------------------------
    def _guarded_loop(self) -> None:
        while True:
            try:
                if self._result_pass():
                    return
            except Exception:  # the result thread must outlive any bug: log it, go on
                log.exception("plait.Pool: internal error in the %s result thread", self.backend)
                time.sleep(0.05)

    def _result_pass(self) -> bool:
        with self.lock:
            while not self.done and not self.outbox and not self.threads_stop:
                wait = self._next_deadline_locked()
                if wait is not None and wait <= 0:
                    break
                self.results_cond.wait(0.5 if wait is None else min(wait, 0.5))
            if self.threads_stop:
                return True
            # Let finished tasks gather for a moment while others are still running: one
            # fetch of many results costs about what one fetch of one does.
            if self.done and len(self.done) < min(len(self.inflight), BATCH):
                until = time.monotonic() + self.batch_wait
                while len(self.done) < min(len(self.inflight), BATCH) and not self.outbox:
                    left = until - time.monotonic()
                    if left <= 0 or self.threads_stop:
                        break
                    self.results_cond.wait(left)
            batch, self.done = self.done, []
        self._submit_outbox()
        self._expire()
        if batch:
            began = time.monotonic()
            outcomes = self._collect(batch)
            # Wait about as long as a fetch takes (within bounds): when fetches are dear,
            # more results share one; when they are cheap, results go out at once.
            spent = time.monotonic() - began
            self.batch_wait = min(
                BATCH_WAIT_MAX_S, max(BATCH_WAIT_S, 0.5 * self.batch_wait + 0.5 * spent)
            )
            for task, (status, value) in zip(batch, outcomes, strict=True):
                self._settle(task, status, value)
        self._dispatch()
        self._submit_outbox()
        return False

    def _next_deadline_locked(self) -> float | None:
        if not self.timed_inflight:
            return None
        now = time.monotonic_ns()
        return min(
            (t.sent_ns + t.timeout * 1e9 - now) / 1e9
            for t in self.inflight.values()
            if t.timeout is not None
        )

    def _expire(self) -> None:
        now = time.monotonic_ns()
        with self.lock:
            if not self.timed_inflight:
                return
            late = [
                t
                for t in self.inflight.values()
                if t.timeout is not None and now >= t.sent_ns + t.timeout * 1e9
            ]
        for task in late:
            if not self._take(task):
                continue
            self._cancel([task.worker])
            with self.lock:
                self.stats["timed_out"] += 1
            error = TimeoutError(
                f"{task.label} ran past its task_timeout of {task.timeout} s on the "
                f"{self.backend} cluster; its engine task was cancelled"
            )
            self.deliver(task, task.indices, *all_failed(len(task.indices), error))

    def _settle(self, task: Task, status: str, value: Any) -> None:
        if status == "running":
            with self.lock:
                watched = self.inflight.get(task.id) is task
            if watched:
                self.watcher.add([task])  # found again when the engine has run it again
            return
        if not self._take(task):
            return  # cancelled or timed out meanwhile
        if status == "ok":
            values, errors, elapsed = decode_reply(task, value, self.where)
            n = len(task.indices)
            if elapsed > 0 and n:
                prev = self.item_seconds
                self.item_seconds = elapsed / n if prev is None else 0.7 * prev + 0.3 * elapsed / n
            self.deliver(task, task.indices, values, errors)
        elif status == "crashed":
            self._crashed(task, value)
        elif status == "cancelled":
            error = CancelledError(f"the {self.backend} cluster cancelled {task.label}")
            self.deliver(task, task.indices, *all_failed(len(task.indices), error))
        else:
            self.deliver(task, task.indices, *all_failed(len(task.indices), value))

    def _crashed(self, task: Task, cause: BaseException) -> None:
        """Its worker died: run it again (``retries``), or run the other items of its
        chunk again one by one (so only the item that crashes fails), or fail it."""
        with self.lock:
            self.stats["crashed"] += 1
            if self.state != TERMINATE and task.requeues < task.retries:
                task.requeues += 1
                self.stats["retried"] += 1
                task.sent_ns = 1
                self.pending.appendleft(task)
                return
        n = len(task.indices)
        kind = HEADER.unpack_from(task.payload)[1]
        if n > 1 and kind == KIND_CALL and self.state != TERMINATE:
            body = memoryview(task.payload)[HEADER.size :]
            parts = []
            for position, index in enumerate(task.indices):
                part_id = self.new_id()
                parts.append(
                    Task(
                        part_id,
                        subset_payload(part_id, [position], body),
                        [index],
                        task.sink,
                        label=task.label,
                        retries=0,
                        timeout=task.timeout,
                    )
                )
                parts[-1].sent_ns = 1
            with self.lock:
                self.pending.extendleft(reversed(parts))
                self.outstanding += n - 1  # one task became n
            return
        error = WorkerCrashed(
            f"the {self.backend} worker running {task.label} died ({type(cause).__name__}: "
            f"{cause}); the rest of the pool goes on",
            task=task.label,
        )
        error.__cause__ = cause
        self.deliver(task, task.indices, *all_failed(n, error))

    # -- cancelling -------------------------------------------------------------------
    def cancel_sink(self, sink: Sink, error: BaseException) -> None:
        with self.lock:
            kept = [t for t in self.pending if t.sink is not sink]
            self.outstanding -= len(self.pending) - len(kept)
            self.pending.clear()
            self.pending.extend(kept)
            mine = [t for t in self.inflight.values() if t.sink is sink]
            for task in mine:
                del self.inflight[task.id]
                task.cancelled = True
                if task.timeout is not None:
                    self.timed_inflight -= 1
            self.outstanding -= len(mine)
            self.maybe_idle_locked()
        sink.fail_all(error)
        if mine:
            self._cancel([t.worker for t in mine])
            self._dispatch()

    # -- statistics -------------------------------------------------------------------
    def tasks_running_locked(self) -> int:
        return len(self.inflight)

    def workers_alive_locked(self) -> int:
        return 0  # no worker of this machine's: the cluster has its own

    def worker_pids(self) -> list[int]:
        return []

    # -- closing ----------------------------------------------------------------------
    def close(self) -> None:
        with self.lock:
            if self.state == RUN:
                self.state = CLOSE

    def join(self) -> None:
        if self.state == RUN:
            raise ValueError("Pool is still running: call close() or terminate() first")
        if self.state == CLOSE:
            with self.lock:
                for entry in self.sources:
                    entry.source.unbounded = True  # nobody consumes while we wait
                self.request_input_locked()
            self.wait_idle()
        self._stop()

    async def async_join(self) -> None:
        if self.state == RUN:
            raise ValueError("Pool is still running: call close() or terminate() first")
        if self.state == CLOSE:
            with self.lock:
                for entry in self.sources:
                    entry.source.unbounded = True
                self.request_input_locked()
            await self.async_wait_idle()
        await asyncio.get_running_loop().run_in_executor(None, self._stop)

    def terminate(self) -> None:
        """Stop now: unfinished tasks fail with ``ClosedError``; their engine tasks are
        cancelled; a cluster this pool started is stopped."""
        with self.lock:
            if self.state == TERMINATE:
                tasks: list[Task] = []
                sources = []
            else:
                self.state = TERMINATE
                tasks = list(self.pending)
                self.pending.clear()
                tasks.extend(self.inflight.values())
                self.inflight.clear()
                self.outbox.clear()
                self.timed_inflight = 0
                sources = list(self.sources)
                self.sources.clear()
        handles = [t.worker for t in tasks if t.worker is not None]
        if handles:
            self._cancel(handles)
        self._stop()
        error = ClosedError("the pool was terminated before this task finished")
        for task in tasks:
            self.deliver(task, task.indices, *all_failed(len(task.indices), error))
        for entry in sources:
            entry.on_length(entry.source.pulled)

    async def async_terminate(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.terminate)

    def _stop(self) -> None:
        """End both threads, then disconnect (once)."""
        with self.lock:
            self.threads_stop = True
            self.results_cond.notify_all()
            self.request_input_locked()
            first = not self.closed_engine
            self.closed_engine = True
        current = threading.current_thread()
        for thread in (self.result_thread, self.input_thread):
            if thread is not current and thread.ident is not None:
                thread.join(5.0)
        if first:
            try:
                self._shutdown_engine()
            except Exception:
                log.exception("plait.Pool: stopping the %s cluster failed", self.backend)

