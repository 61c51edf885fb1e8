"""Warm workers for process strands: ``spawn(f, on="process")`` without a new process each time.

A process strand used to start a process of its own (10-20 ms). Here it borrows an idle
worker from an elastic set (started on first use, grown when every worker is busy, shrunk
when a worker has been idle :data:`IDLE_SECONDS`), one strand per worker at a time, and
keeps the guarantees of a dedicated process:

* **cancel** (a cancel scope, a deadline, its TaskGroup) SIGTERMs that strand's worker,
  which raises :class:`plait.Cancelled` in the strand (its ``finally`` blocks run), then
  SIGKILLs it after ``grace``; the worker is never reused, so no other strand is touched;
* **a death** (a signal, ``os._exit``) fails the strand with :class:`plait.WorkerCrashed`
  carrying the pid, exit code and signal; the worker is not reused;
* **exceptions** come back with their remote traceback as ``__cause__``, as before;
* **no orphan**: workers arm the pool's lifeline, so they die with their parent.

The workers are the pool's: started by :func:`plait.pool._workers.spawn_worker` from the
fork server (which preloads their module), their exits watched by plait's one process
watcher, and they speak the pool's wire format (:mod:`plait.pool._protocol`). One thread per
start method reads replies (an epoll set over the busy workers' pipes).

What a strand leaves behind in its worker -- module globals, caches, ``os.environ``, the
working directory, signal handlers, threads -- is seen by later strands that run in the
same worker. ``spawn(f, on="process", isolated=True)`` runs ``f`` in a fresh process of its
own, as before.
"""

from __future__ import annotations

import atexit
import itertools
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from plait._errors import SerializationError, WorkerCrashed
from plait._ipc.context import StartMethod, default_start_method, get_context
from plait._ipc.serialize import PackedError, dumps, loads, unpack_error
from plait.pool._protocol import HEADER, KIND_CALL, KIND_STOP, MARKER_WIDTH
from plait.pool._strand_worker import REPLY_EXITING, REPLY_OK
from plait.pool._strand_worker import main as strand_worker_main
from plait.pool._workers import WorkerHandle, join_quietly, spawn_worker

__all__ = ["IDLE_SECONDS", "StrandCall", "WarmWorkers", "run_warm", "shutdown_warm_workers"]

IDLE_SECONDS = 30.0  # a worker idle this long is stopped (the set shrinks)
_STOP = HEADER.pack(0, KIND_STOP)


class StrandCall:
    """One process strand on a warm worker: the handle its :class:`plait.Task` holds.

    Has what the task uses of a dedicated :class:`~plait._processes.ProcessCall`:
    ``future`` (settled on the reader thread), ``pid`` (the worker's), ``terminate(grace)``,
    ``kill()`` and, once the worker died under it, ``exitcode``.
    """

    __slots__ = ("_owner", "_worker", "exitcode", "future", "name", "pid", "task_id")

    def __init__(self, owner: WarmWorkers, name: str, task_id: int) -> None:
        self._owner = owner
        self._worker: _Warm | None = None
        self.name = name
        self.task_id = task_id
        self.pid = 0
        self.exitcode: int | None = None
        self.future: Future[Any] = Future()

    def done(self) -> bool:
        return self.future.done()

    def terminate(self, grace: float = 2.0) -> None:
        """SIGTERM its worker now, SIGKILL ``grace`` seconds later. Never blocks."""
        self._owner.signal(self, signal.SIGTERM, grace)

    def kill(self) -> None:
        """SIGKILL its worker now."""
        self._owner.signal(self, signal.SIGKILL, None)

    def __repr__(self) -> str:
        state = "done" if self.future.done() else "running"
        return f"<StrandCall {self.name!r} pid={self.pid} {state}>"


class _Warm:
    """One warm worker and the strand it runs (if any)."""

    __slots__ = ("call", "dead", "handle", "idle_since", "kill_at", "retiring", "watched")

    def __init__(self, handle: WorkerHandle) -> None:
        self.handle = handle
        self.call: StrandCall | None = None
        self.idle_since = time.monotonic()
        self.retiring = False  # never given another strand (cancelled, exiting, stopping)
        self.kill_at: float | None = None
        self.dead = False
        self.watched = True  # its pipe is in the epoll set


class WarmWorkers:
    """The elastic set of warm workers for one start method, and its reader thread."""

    def __init__(self, method: StartMethod) -> None:
        self.method = method
        self.ctx = get_context(method)
        self.lock = threading.Lock()
        self.idle: list[_Warm] = []  # most recently used last: it is the warmest
        self.workers: dict[int, _Warm] = {}  # by pipe descriptor
        self.deaths: list[_Warm] = []  # exits the watcher reported, for the reader thread
        self.ids = itertools.count(1)
        self.closed = False
        self.emptied = threading.Event()  # closed and every worker reaped
        self.marker = self.ctx.RawArray("q", MARKER_WIDTH)  # (the pool's; unused here)
        self.epoll = select.epoll()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.epoll.register(self.wake_r, select.EPOLLIN)
        self.thread = threading.Thread(
            target=self._run, name=f"plait-warm-strands-{method}", daemon=True
        )
        self.thread.start()

    # -- callers ------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> StrandCall:
        """Run ``fn(*args)`` on an idle worker (a new one if none is idle)."""
        # Pickled here: an argument that cannot cross fails at the call, using no worker.
        body = dumps((fn, args), what=f"process strand {name!r} (its function and arguments)")
        call = StrandCall(self, name, next(self.ids))
        message = HEADER.pack(call.task_id, KIND_CALL) + body
        while True:
            with self.lock:
                if self.closed:
                    raise RuntimeError(
                        "plait's warm process-strand workers are shut down (the interpreter "
                        "is exiting): spawn(..., isolated=True) still starts a process"
                    )
                worker = self.idle.pop() if self.idle else None
                if worker is not None:
                    self._assign(worker, call)
            if worker is None:
                worker = self._start()
                with self.lock:
                    self._assign(worker, call)
            if worker.handle.send(message):
                return call
            with self.lock:  # it died while idle: forget it, take another
                if worker.call is not call:
                    return call  # its death was already reported to the strand
                worker.call = None
                worker.retiring = True

    def signal(self, call: StrandCall, sig: int, grace: float | None) -> None:
        """Signal the worker running ``call`` (never another strand's)."""
        with self.lock:
            worker = call._worker
            if worker is None or worker.call is not call or worker.dead or call.future.done():
                return
            worker.retiring = True
            if grace is not None:
                deadline = time.monotonic() + max(0.0, grace)
                if worker.kill_at is None or deadline < worker.kill_at:
                    worker.kill_at = deadline
            worker.handle.kill(sig)  # (not reaped yet: the pid is still this worker's)
        self._wake()

    def shutdown(self, timeout: float) -> bool:
        """Stop idle workers, kill busy ones, wait until all are reaped (``True``)."""
        with self.lock:
            if not self.closed:
                self.closed = True
                for worker in self.workers.values():
                    worker.retiring = True
                    if worker.call is None:
                        worker.handle.send(_STOP)
                    else:
                        worker.handle.kill(signal.SIGKILL)
                self.idle.clear()
                if not self.workers:
                    self.emptied.set()
        self._wake()
        return self.emptied.wait(timeout)

    # -- workers ------------------------------------------------------------------------

    def _assign(self, worker: _Warm, call: StrandCall) -> None:
        worker.call = call
        call._worker = worker
        call.pid = worker.handle.pid

    def _start(self) -> _Warm:
        handle = spawn_worker(
            self.ctx,
            row=0,
            marker=self.marker,
            init_payload=None,
            concurrency=1,
            name="plait-strand-worker",
            main=strand_worker_main,
        )
        worker = _Warm(handle)
        with self.lock:
            self.workers[handle.conn_fd] = worker
        self.epoll.register(handle.conn_fd, select.EPOLLIN)
        handle.watch_exit(lambda _handle: self._died(worker))
        return worker

    def _died(self, worker: _Warm) -> None:
        """On the watcher thread: hand the exit to the reader thread."""
        with self.lock:
            self.deaths.append(worker)
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):  # full (the reader is awake anyway) or closed
            pass

    # -- the reader thread ------------------------------------------------------------

    def _run(self) -> None:
        while not self.emptied.is_set():
            try:
                events = self.epoll.poll(self._timeout())
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            for fd, _mask in events:
                if fd == self.wake_r:
                    self._drain_wake()
                    continue
                worker = self.workers.get(fd)
                if worker is not None:
                    self._read(worker)
            self._reap_deaths()
            self._kill_overdue()
            self._stop_idle()
        self.epoll.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _timeout(self) -> float:
        now = time.monotonic()
        with self.lock:
            deadlines = [w.kill_at for w in self.workers.values() if w.kill_at is not None]
            if self.idle:
                deadlines.append(self.idle[0].idle_since + IDLE_SECONDS)
        return -1 if not deadlines else max(0.0, min(deadlines) - now)

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _unwatch(self, worker: _Warm) -> None:
        if worker.watched:
            worker.watched = False
            try:
                self.epoll.unregister(worker.handle.conn_fd)
            except (OSError, ValueError):
                pass

    def _read(self, worker: _Warm) -> bool:
        """Read one reply from ``worker`` and settle its strand; ``False`` at the pipe's end."""
        try:
            buf = worker.handle.conn.recv_bytes()
        except (EOFError, OSError):
            self._unwatch(worker)  # it is exiting: the watcher reports it
            return False
        task_id, kind = HEADER.unpack_from(buf)
        with self.lock:
            call = worker.call
            if call is None or call.task_id != task_id:
                return True
            worker.call = None
            if kind == REPLY_EXITING:
                worker.retiring = True
            elif not worker.retiring and not self.closed:
                worker.idle_since = time.monotonic()
                self.idle.append(worker)
        _settle(call, kind, memoryview(buf)[HEADER.size :])
        return True

    def _reap_deaths(self) -> None:
        with self.lock:
            deaths, self.deaths = self.deaths, []
        for worker in deaths:
            conn = worker.handle.conn
            try:  # a reply that raced the exit is read first
                while worker.watched and conn.poll() and self._read(worker):
                    pass
            except (OSError, ValueError):
                pass
            with self.lock:
                self.workers.pop(worker.handle.conn_fd, None)
                if worker in self.idle:
                    self.idle.remove(worker)
                call, worker.call = worker.call, None
                worker.dead = True
            self._unwatch(worker)
            handle = worker.handle
            handle.forget_exit()
            code = join_quietly(handle, 1.0)
            handle.mark_dead()
            conn.close()
            try:
                handle.process.close()
            except ValueError:  # pragma: no cover - reaped above; never still running
                pass
            if call is not None:
                call.exitcode = code
                call.future.set_exception(
                    WorkerCrashed(pid=handle.pid, exitcode=code, task=call.name)
                )
        with self.lock:
            if self.closed and not self.workers:
                self.emptied.set()

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        with self.lock:
            for worker in self.workers.values():
                if worker.kill_at is not None and worker.kill_at <= now and not worker.dead:
                    worker.kill_at = None
                    worker.handle.kill(signal.SIGKILL)

    def _stop_idle(self) -> None:
        now = time.monotonic()
        with self.lock:
            stale = [w for w in self.idle if now - w.idle_since >= IDLE_SECONDS]
            for worker in stale:
                self.idle.remove(worker)
                worker.retiring = True
        for worker in stale:
            worker.handle.send(_STOP)


def _settle(call: StrandCall, kind: int, body: memoryview) -> None:
    try:
        payload = loads(body)
    except Exception as exc:
        error = SerializationError(
            f"the result of process strand {call.name!r} arrived but cannot be unpickled "
            f"here ({type(exc).__name__}: {exc}); return something the parent can import"
        )
        error.__cause__ = exc
        call.future.set_exception(error)
        return
    if kind == REPLY_OK:
        call.future.set_result(payload)
    else:
        assert isinstance(payload, PackedError)
        call.future.set_exception(unpack_error(payload))


_sets: dict[str, WarmWorkers] = {}
_sets_lock = threading.Lock()


def run_warm(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    name: str,
    start_method: StartMethod | None = None,
) -> StrandCall:
    """Run ``fn(*args)`` as a process strand on a warm worker; its :class:`StrandCall`."""
    method = start_method or default_start_method()
    workers = _sets.get(method)
    if workers is None:
        with _sets_lock:
            workers = _sets.get(method)
            if workers is None:
                workers = _sets[method] = WarmWorkers(method)
    return workers.submit(fn, args, name)


def shutdown_warm_workers(timeout: float = 5.0) -> bool:
    """Stop every warm worker and wait for them (``True`` if all were reaped in time).

    Run at interpreter exit; tests call it to leave no child behind. The next process
    strand starts a new set.
    """
    with _sets_lock:
        sets = list(_sets.values())
        _sets.clear()
    deadline = time.monotonic() + timeout
    reaped = [s.shutdown(max(0.0, deadline - time.monotonic())) for s in sets]  # every set
    return all(reaped)


def _forget_after_fork() -> None:
    # A forked child owns none of its parent's workers (and has no reader thread).
    _sets.clear()


atexit.register(shutdown_warm_workers)
os.register_at_fork(after_in_child=_forget_after_fork)
