"""The parent's handle on one worker process: its pipe, its tasks in flight, its marker row."""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from plait._processes._popen import start_restarting_fork_server
from plait._processes._watcher import ExitWatch, get_watcher
from plait.pool import _worker
from plait.pool._protocol import MARKER_WIDTH
from plait.pool._tasks import Task
from plait.pool._waiting import Completion

__all__ = ["SMALL_PAYLOAD", "WorkerHandle", "join_quietly", "spawn_worker"]

SMALL_PAYLOAD = 32 * 1024  # surely fits in any socket buffer with room to spare
SEND_BUFFER = 4 * 1024 * 1024  # asked for (the kernel caps it at net.core.wmem_max)


def _grow_send_buffer(fd: int) -> int:
    """Enlarge the socket's send buffer where allowed; return a safe in-flight budget."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return SMALL_PAYLOAD
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except OSError:
        return SMALL_PAYLOAD
    finally:
        sock.close()
    # The kernel reports twice what it grants for data (the rest is bookkeeping): keep a
    # wide margin under that.
    return max(SMALL_PAYLOAD, size // 3)


class WorkerHandle:
    """One live worker: tasks are sent down ``conn`` in the order they are listed in
    ``inflight``; the worker writes its progress to row ``row`` of the shared marker."""

    __slots__ = (
        "budget",
        "conn",
        "conn_fd",
        "dead",
        "dispatched",
        "exit_watch",
        "exited",
        "inflight",
        "init_error",
        "kill_reason",
        "out_cond",
        "outbox",
        "pid",
        "process",
        "replies",
        "retiring",
        "row",
        "send_lock",
        "sender",
        "sentinel",
        "stopped",
    )

    def __init__(self, process: Any, conn: Connection, row: int) -> None:
        self.process = process
        self.conn = conn
        self.conn_fd = conn.fileno()
        self.budget = _grow_send_buffer(self.conn_fd)
        self.row = row
        self.pid: int = process.pid
        self.sentinel: int = process.sentinel
        self.inflight: dict[int, Task] = {}
        self.dispatched = 0
        self.replies = 0
        self.retiring = False  # no new tasks; stopped once its tasks are done
        self.stopped = False  # the stop message was sent
        self.kill_reason: tuple[str, int] | None = None  # ("timeout", task id) when we killed it
        self.init_error: BaseException | None = None
        self.send_lock = threading.Lock()
        self.dead = False
        self.outbox: deque[bytes] = deque()
        self.out_cond = threading.Condition(threading.Lock())
        self.sender: threading.Thread | None = None
        # Set by the process watcher when the worker ends. (Parked on the process: a
        # reference back to this handle would make a cycle, left to the garbage collector.)
        self.exited = Completion(process)
        self.exit_watch: ExitWatch | None = None

    def watch_exit(self, on_exit: Callable[[WorkerHandle], None]) -> None:
        """Have plait's one process watcher tell us when this worker ends: ``exited`` is
        set (joins park on it) and ``on_exit(self)`` runs, on the watcher thread."""

        def ended() -> None:
            self.exit_watch = None  # (fired: drop the cycle handle -> watch -> this closure)
            self.exited.set()
            on_exit(self)

        self.exit_watch = get_watcher().on_exit(self.sentinel, ended)

    def forget_exit(self) -> None:
        """Stop watching (before the process and its sentinel are closed)."""
        watch, self.exit_watch = self.exit_watch, None
        if watch is not None:
            get_watcher().forget(watch)

    def send(self, payload: bytes) -> bool:
        """Send one message, blocking; ``False`` if the worker is gone (its death is
        handled by the result thread)."""
        try:
            with self.send_lock:
                self.conn.send_bytes(payload)
        except (OSError, ValueError):
            return False
        return True

    def post(self, payload: bytes) -> None:
        """Send without ever blocking the calling thread.

        A message goes at once when no other send to this worker is under way and it
        surely fits in the socket buffer: everything this worker holds (``inflight``, which
        includes this message, and whatever of it the worker has not read yet) stays under
        ``budget`` bytes. Otherwise this worker's own sender thread sends it, so
        a large payload waits only for *this* worker to read it: no other worker, and not
        the result thread, is held up behind it (which could deadlock: the worker would
        wait for us to read its large result while we wait for it to read our task).
        """
        if (
            not self.outbox
            and sum(len(t.payload) for t in list(self.inflight.values())) <= self.budget
            and self.send_lock.acquire(False)
        ):
            try:
                self.conn.send_bytes(payload)
            except (OSError, ValueError):
                pass
            finally:
                self.send_lock.release()
            return
        with self.out_cond:
            self.outbox.append(payload)
            if self.sender is None:
                self.sender = threading.Thread(
                    target=self._send_loop, name=f"plait-pool-sender-{self.pid}", daemon=True
                )
                self.sender.start()
            else:
                self.out_cond.notify()

    def _send_loop(self) -> None:
        while True:
            with self.out_cond:
                while not self.outbox and not self.dead:
                    self.out_cond.wait()
                if self.dead:
                    self.outbox.clear()
                    return
                payload = self.outbox.popleft()
            if not self.send(payload):
                with self.out_cond:
                    self.outbox.clear()
                return

    def mark_dead(self) -> None:
        """No more sends: the worker exited or the pool is stopping."""
        with self.out_cond:
            self.dead = True
            self.out_cond.notify_all()

    def kill(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __repr__(self) -> str:
        return f"<worker pid={self.pid} row={self.row} inflight={len(self.inflight)}>"


def spawn_worker(
    ctx: BaseContext,
    *,
    row: int,
    marker: Any,
    init_payload: bytes | tuple[Any, ...] | None,
    concurrency: int,
    name: str,
    main: Callable[..., None] = _worker.main,
) -> WorkerHandle:
    """Start one worker process from ``ctx`` and return its handle (``main``: its entry
    point; the warm process-strand workers pass their own, with the same arguments)."""
    base = row * MARKER_WIDTH
    for k in range(MARKER_WIDTH):
        marker[base + k] = 0
    parent_end, child_end = ctx.Pipe(duplex=True)
    process = ctx.Process(  # type: ignore[attr-defined]
        target=main,
        args=(
            child_end,
            os.getpid(),
            ctx.get_start_method(),
            marker,
            row,
            init_payload,
            concurrency,
        ),
        name=name,
        daemon=True,
    )
    try:
        start_restarting_fork_server(process)  # (a Ctrl-C may kill a starting fork server)
    finally:
        child_end.close()
    return WorkerHandle(process, parent_end, row)


def join_quietly(worker: WorkerHandle, timeout: float) -> int | None:
    """Wait for a worker to exit; its exit code, or ``None`` if it still runs. A process
    object that another thread closed or reaped meanwhile counts as gone."""
    try:
        worker.process.join(timeout)
        code: int | None = worker.process.exitcode
    except (ValueError, AssertionError, OSError):
        return -1
    return code
