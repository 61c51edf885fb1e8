"""The parent's handle on one worker process: its pipe, its tasks in flight, its marker row."""

from __future__ import annotations

import os
import threading
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from plait.pool import _worker
from plait.pool._protocol import MARKER_WIDTH
from plait.pool._tasks import Task

__all__ = ["WorkerHandle", "spawn_worker"]


class WorkerHandle:
    """One live worker: tasks are sent down ``conn`` in the order they are listed in
    ``inflight``; the worker writes its progress to row ``row`` of the shared marker."""

    __slots__ = (
        "conn",
        "conn_fd",
        "dispatched",
        "inflight",
        "init_error",
        "kill_reason",
        "pid",
        "process",
        "replies",
        "retiring",
        "row",
        "send_lock",
        "sentinel",
        "stopped",
    )

    def __init__(self, process: Any, conn: Connection, row: int) -> None:
        self.process = process
        self.conn = conn
        self.conn_fd = conn.fileno()
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

    def send(self, payload: bytes) -> bool:
        """Send one message; ``False`` if the worker is gone (its death is handled elsewhere)."""
        try:
            with self.send_lock:
                self.conn.send_bytes(payload)
        except (OSError, ValueError):
            return False
        return True

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
    init_payload: bytes | None,
    concurrency: int,
    name: str,
) -> WorkerHandle:
    """Start one worker process from ``ctx`` and return its handle."""
    base = row * MARKER_WIDTH
    for k in range(MARKER_WIDTH):
        marker[base + k] = 0
    parent_end, child_end = ctx.Pipe(duplex=True)
    process = ctx.Process(  # type: ignore[attr-defined]
        target=_worker.main,
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
        process.start()
    finally:
        child_end.close()
    return WorkerHandle(process, parent_end, row)
