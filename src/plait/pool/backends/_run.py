"""Running a pool task on a cluster worker, and reading its reply back.

A cluster task carries the same message a local worker reads (``HEADER`` + the pickled
call, or a *subset* of one: see :mod:`plait.pool._protocol`) and returns the same reply
bytes, so the engine's result never needs unpickling on the scheduler and the caller
decodes it exactly as it decodes a local worker's reply: errors per item, the remote
traceback as ``__cause__``, a task's ``SystemExit`` contained.
"""

from __future__ import annotations

import time
from typing import Any

from plait._errors import DeserializationError, WorkerCrashed
from plait._ipc.serialize import dumps, loads, pack_error, unpack_error
from plait.pool._protocol import (
    HEADER,
    REPLY_FAILED,
    STAGE_LOAD,
    STAGE_SEND,
    STAGES,
)
from plait.pool._tasks import Task, all_failed
from plait.pool._worker import _encode, _load, _name, _Runner

__all__ = ["decode_reply", "run_payload"]

Errors = dict[int, BaseException] | None


def run_payload(payload: bytes) -> bytes:
    """The cluster task: run one message's items here; the reply as a local worker's."""
    task_id, _kind = HEADER.unpack_from(payload)
    try:
        fn, items, star, _timeout = _load(payload)
    except BaseException as exc:
        return HEADER.pack(task_id, REPLY_FAILED) + dumps(
            (STAGE_LOAD, pack_error(exc)), what="a reply"
        )
    runner = _Runner([0] * 5, 0)  # a marker nobody reads: the engine tracks its own tasks
    started = time.perf_counter()
    try:
        values, errors = runner.run(fn, items, star, False)
    finally:
        runner.close()
    return _encode(task_id, values, errors, time.perf_counter() - started, _name(fn))


def decode_reply(task: Task, data: bytes, where: str) -> tuple[list[Any], Errors, float]:
    """``(values, errors, seconds)`` from a reply of :func:`run_payload`."""
    n = len(task.indices)
    _task_id, kind = HEADER.unpack_from(data)
    try:
        body = loads(memoryview(data)[HEADER.size :])
    except BaseException as exc:  # SystemExit too: a result never ends the caller
        error: BaseException = DeserializationError(
            f"the result of {task.label} could not be unpickled here: {exc!r}"
        )
        error.__cause__ = exc
        return (*all_failed(n, error), 0.0)
    if kind == REPLY_FAILED:
        stage, packed = body
        error = _contain(unpack_error(packed), task, where)
        if stage == STAGE_LOAD:
            cause = error
            error = DeserializationError(
                f"the arguments of {task.label} could not be unpickled on {where}: {cause!r}"
            )
            error.__cause__ = cause
        _add_note(error, f"raised {STAGES.get(stage, 'in the worker')} {task.label} on {where}")
        return (*all_failed(n, error), 0.0)
    values, packed_errors, elapsed = body
    if not packed_errors:
        return values, None, elapsed
    errors: dict[int, BaseException] = {}
    for position, (stage, packed) in packed_errors.items():
        error = _contain(unpack_error(packed), task, where)
        if stage == STAGE_SEND:
            _add_note(error, f"raised while pickling the result of {task.label} on {where}")
        errors[position] = error
    return values, errors, elapsed


def _add_note(exc: BaseException, text: str) -> None:
    try:
        exc.add_note(text)
    except Exception:
        pass


def _contain(error: BaseException, task: Task, where: str) -> BaseException:
    """A task's ``SystemExit``/``KeyboardInterrupt`` fails that task, never the caller."""
    if not isinstance(error, SystemExit | KeyboardInterrupt):
        return error
    code = error.code if isinstance(error, SystemExit) else None
    crashed = WorkerCrashed(
        f"{task.label} raised {type(error).__name__}"
        f"{'' if code is None else f'({code!r})'} on {where}; a pool task cannot end the "
        "calling program, so the task failed",
        exitcode=code if isinstance(code, int) else None,
        task=task.label,
    )
    crashed.__cause__ = error
    return crashed
