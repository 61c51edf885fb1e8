"""The worker process's main loop. Cheap to import: the fork server preloads it.

A worker owns one end of a duplex pipe. It reads one task message at a time, runs each item,
and sends one reply per task. Before each stage it writes the progress marker (see
:mod:`plait.pool._protocol`), so that if it dies the parent knows what it was doing.

With ``concurrency > 1`` the worker runs an asyncio loop instead and keeps up to
``concurrency`` coroutine items in flight at once (processes x coroutines); plain functions
still run one at a time, inline.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from plait._core.instruments import hooks
from plait._ipc.ctrl_c import take_over, takes_ctrl_c
from plait._ipc.lifeline import install_in_child
from plait._ipc.serialize import dumps, loads, pack_error
from plait.pool._protocol import (
    HEADER,
    KIND_CANCEL,
    KIND_STOP,
    MARKER_WIDTH,
    REPLY_DONE,
    REPLY_FAILED,
    REPLY_INIT_FAILED,
    STAGE_IDLE,
    STAGE_INIT,
    STAGE_LOAD,
    STAGE_RUN,
    STAGE_SEND,
    STAR_ARGS,
    STAR_ONE,
    STRIDE,
    call_body,
)
from plait.pool._task_tracks import TaskTracks

__all__ = ["main", "next_task"]

Marker = Any  # a ctypes array of c_int64 (multiprocessing.sharedctypes.RawArray)

_EXIT_INIT_FAILED = 3


@takes_ctrl_c
def main(
    conn: Connection,
    parent_pid: int,
    start_method: str,
    marker: Marker,
    slot: int,
    init_payload: bytes | tuple[Any, ...] | None,
    concurrency: int,
) -> None:
    """Entry point of a worker process (the ``target`` of its ``Process``)."""
    # Ctrl-C goes to the whole process group; the parent decides what happens to workers.
    take_over("ignored")
    install_in_child(parent_pid, start_method=start_method)
    base = slot * MARKER_WIDTH
    if init_payload is not None:
        marker[base + 2] = STAGE_INIT
        try:
            initializer, initargs = (
                loads(init_payload) if isinstance(init_payload, bytes) else init_payload
            )
            initializer(*initargs)
        except BaseException as exc:
            _send_quietly(conn, 0, REPLY_INIT_FAILED, pack_error(exc))
            raise SystemExit(_EXIT_INIT_FAILED) from None
        marker[base + 2] = STAGE_IDLE
    if concurrency > 1:
        asyncio.run(_serve_async(conn, marker, base, concurrency))
    else:
        _serve(conn, marker, base)


def _send_quietly(conn: Connection, task_id: int, kind: int, body: Any) -> None:
    try:
        conn.send_bytes(HEADER.pack(task_id, kind) + dumps(body, what="a reply"))
    except Exception:
        pass


def _load(buf: bytes | memoryview) -> tuple[Any, list[Any], int, Any]:
    """Unpickle a call message; a subset message keeps only its positions."""
    positions, body = call_body(buf)
    fn, items, star, timeout = loads(body)
    if positions is not None:
        items = [items[k] for k in positions]
    return fn, items, star, timeout


def _call(fn: Callable[..., Any], item: Any, star: int) -> Any:
    if star == STAR_ONE:
        return fn(item)
    if star == STAR_ARGS:
        return fn(*item)
    args, kwargs = item
    return fn(*args, **kwargs)


Errors = dict[int, tuple[int, Any]] | None  # item position -> (stage, PackedError)


def _encode(task_id: int, values: list[Any], errors: Errors, elapsed: float, name: str) -> bytes:
    """Pickle the reply; an item whose result will not pickle becomes an error of its own."""
    head = HEADER.pack(task_id, REPLY_DONE)
    try:
        return head + dumps((values, errors, elapsed), what=f"the result of {name}")
    except BaseException:  # SystemExit in a __reduce__ too: that item fails, not the worker
        pass
    errors = dict(errors or {})
    for position, value in enumerate(values):
        try:
            dumps(value, what=f"the result of {name}")
        except BaseException as exc:
            values[position] = None
            errors[position] = (STAGE_SEND, pack_error(exc))
    return head + dumps((values, errors, elapsed), what=f"the result of {name}")


def _name(fn: Any) -> str:
    return f"{getattr(fn, '__qualname__', None) or type(fn).__name__}()"


def _is_coroutine_function(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )


class _Runner:
    """Runs the items of one task; its own event loop for coroutine functions."""

    def __init__(self, marker: Marker, base: int) -> None:
        self.marker = marker
        self.base = base
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self, fn: Any, items: list[Any], star: int, timed: bool) -> tuple[list[Any], Errors]:
        marker = self.marker
        slot = self.base + 1
        values: list[Any] = []
        append = values.append
        errors: Errors = None
        if star == STAR_ONE and not timed and not _is_coroutine_function(fn):
            return self._hot(fn, items)
        clock = time.monotonic_ns
        for index, item in enumerate(items):
            marker[slot] = index
            if timed:
                marker[slot + 2] = clock()
            try:
                value = _call(fn, item, star)
                if inspect.isawaitable(value):
                    if self.loop is None:
                        self.loop = asyncio.new_event_loop()
                    value = self.loop.run_until_complete(_await(value))
                append(value)
            except BaseException as exc:
                append(None)
                errors = errors or {}
                errors[index] = (STAGE_RUN, pack_error(exc))
        return values, errors

    def _hot(self, fn: Any, items: list[Any]) -> tuple[list[Any], Errors]:
        """The loop for plain ``fn(item)``: a few probe items marked one by one; if they
        take microseconds, the rest are marked once per ``STRIDE`` items."""
        marker = self.marker
        slot = self.base + 1
        span = self.base + 4
        values: list[Any] = []
        append = values.append
        errors: Errors = None
        n = len(items)
        probe = min(n, 16)
        started = time.perf_counter()
        for index in range(probe):
            marker[slot] = index
            try:
                append(fn(items[index]))
            except BaseException as exc:
                append(None)
                errors = errors or {}
                errors[index] = (STAGE_RUN, pack_error(exc))
        if probe == n:
            return values, errors
        if time.perf_counter() - started > probe * 5e-6:  # not tiny: exact marks
            for index in range(probe, n):
                marker[slot] = index
                try:
                    append(fn(items[index]))
                except BaseException as exc:
                    append(None)
                    errors = errors or {}
                    errors[index] = (STAGE_RUN, pack_error(exc))
            return values, errors
        marker[span] = STRIDE
        for first in range(probe, n, STRIDE):
            marker[slot] = first
            for item in items[first : first + STRIDE]:
                try:
                    append(fn(item))
                except BaseException as exc:
                    errors = errors or {}
                    errors[len(values)] = (STAGE_RUN, pack_error(exc))
                    append(None)
        marker[span] = 1
        return values, errors

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()


def next_task(recv: Callable[[], bytes]) -> tuple[int, int, bytes] | None:
    """The next message a worker's loop handles: its task id, kind and bytes; ``None``
    when the worker must end (its parent asked it to stop, or is gone). Shared by the pool
    worker and the warm strand worker (``_strand_worker``), one message at a time."""
    try:
        buf = recv()
    except (EOFError, OSError):
        return None
    task_id, kind = HEADER.unpack_from(buf)
    if kind == KIND_STOP:
        return None
    return task_id, kind, buf


def _serve(conn: Connection, marker: Marker, base: int) -> None:
    recv = conn.recv_bytes
    send = conn.send_bytes
    clock = time.monotonic_ns
    runner = _Runner(marker, base)
    try:
        while (message := next_task(recv)) is not None:
            task_id, kind, buf = message
            del message  # (buf alone holds the message: freed once it is loaded)
            if kind == KIND_CANCEL:  # only sent to coroutine workers; nothing runs here
                continue
            marker[base + 1] = 0
            marker[base + 4] = 1
            marker[base + 2] = STAGE_LOAD
            marker[base + 3] = clock()
            marker[base] = task_id
            try:
                fn, items, star, timeout = _load(buf)
            except BaseException as exc:
                marker[base + 2] = STAGE_SEND
                _send_quietly(conn, task_id, REPLY_FAILED, (STAGE_LOAD, pack_error(exc)))
                marker[base + 2] = STAGE_IDLE
                marker[base] = 0
                continue
            del buf
            started = time.perf_counter()
            marker[base + 3] = ran_from = clock()
            marker[base + 2] = STAGE_RUN
            values, errors = runner.run(fn, items, star, timeout is not None)
            elapsed = time.perf_counter() - started
            if hooks.active:  # (a trace's pool task spans)
                hooks.task_ran(_name(fn), len(items), ran_from, clock())
            marker[base + 2] = STAGE_SEND
            send(_encode(task_id, values, errors, elapsed, _name(fn)))
            del values, errors, items, fn
            marker[base + 2] = STAGE_IDLE
            marker[base] = 0
    finally:
        runner.close()


def _forget(by_id: dict[int, Any], task_id: int, _task: object) -> None:
    by_id.pop(task_id, None)


async def _await(awaitable: Any) -> Any:
    return await awaitable


async def _serve_async(conn: Connection, marker: Marker, base: int, concurrency: int) -> None:
    """Run up to ``concurrency`` coroutine items at once in this worker's own loop."""
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(concurrency)
    stopped = loop.create_future()
    running: set[asyncio.Task[None]] = set()
    by_id: dict[int, asyncio.Task[None]] = {}
    tracks = TaskTracks()  # a trace's task spans: one track per task running at once

    async def run_item(fn: Any, item: Any, star: int, timeout: float | None) -> tuple[int, Any]:
        try:
            value = _call(fn, item, star)
            if inspect.isawaitable(value):
                async with limit:
                    try:
                        value = await asyncio.wait_for(_await(value), timeout)
                    except TimeoutError:
                        raise TimeoutError(
                            f"{_name(fn)} ran longer than task_timeout={timeout} s; it was "
                            "cancelled in its worker (the worker and its other tasks go on)"
                        ) from None
            return (0, value)
        except BaseException as exc:
            return (STAGE_RUN, pack_error(exc))

    def split(outcomes: list[tuple[int, Any]]) -> tuple[list[Any], Errors]:
        values: list[Any] = []
        errors: Errors = None
        for position, (status, value) in enumerate(outcomes):
            if status:
                values.append(None)
                errors = errors or {}
                errors[position] = (status, value)
            else:
                values.append(value)
        return values, errors

    async def run_task(task_id: int, payload: bytes) -> None:
        marker[base] = task_id
        marker[base + 3] = time.monotonic_ns()
        try:
            fn, items, star, timeout = _load(payload)
        except BaseException as exc:
            _send_quietly(conn, task_id, REPLY_FAILED, (STAGE_LOAD, pack_error(exc)))
            return
        started = time.perf_counter()
        slot = tracks.take() if hooks.active else None
        ran_from = time.monotonic_ns()
        try:
            outcomes = await asyncio.gather(*(run_item(fn, item, star, timeout) for item in items))
        except asyncio.CancelledError as exc:  # the caller's wait was cancelled
            _send_quietly(conn, task_id, REPLY_FAILED, (STAGE_RUN, pack_error(exc)))
            return
        finally:
            if slot is not None:
                if hooks.active:  # (a trace's pool task spans, on the slot's track)
                    strand = tracks.track(slot)
                    hooks.task_ran(_name(fn), len(items), ran_from, time.monotonic_ns(), strand)
                tracks.give_back(slot)
        values, errors = split(list(outcomes))
        elapsed = time.perf_counter() - started
        conn.send_bytes(_encode(task_id, values, errors, elapsed, _name(fn)))

    def readable() -> None:
        try:
            while conn.poll():
                buf = conn.recv_bytes()
                task_id, kind = HEADER.unpack_from(buf)
                if kind == KIND_STOP:
                    if not stopped.done():
                        stopped.set_result(None)
                    return
                if kind == KIND_CANCEL:
                    target = by_id.get(task_id)
                    if target is not None:
                        target.cancel()
                    continue
                task = loop.create_task(run_task(task_id, buf))
                running.add(task)
                by_id[task_id] = task
                task.add_done_callback(running.discard)
                task.add_done_callback(functools.partial(_forget, by_id, task_id))
        except (EOFError, OSError):
            if not stopped.done():
                stopped.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await stopped
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    finally:
        loop.remove_reader(conn.fileno())
