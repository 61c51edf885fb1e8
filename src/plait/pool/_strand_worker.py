"""A warm worker's main loop for process strands. Cheap to import: the fork server preloads it.

It speaks the pool's wire format (``HEADER`` + pickle, see :mod:`plait.pool._protocol`) and
runs one strand at a time: ``fn(*args)``, then one reply. While a strand runs, SIGTERM
raises :class:`plait.Cancelled` in it (as in a dedicated process strand): its ``finally``
blocks run, then the worker dies of SIGTERM, so the parent reports it as the strand's
process would have been reported. Between strands SIGTERM ends the worker at once.

A strand that raises ``SystemExit`` or ``KeyboardInterrupt`` asked its process to end: the
reply says so (:data:`REPLY_EXITING`) and the worker exits with that code, never to be
reused.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from plait._errors import SerializationError
from plait._ipc.ctrl_c import take_over, takes_ctrl_c
from plait._ipc.lifeline import install_in_child
from plait._ipc.serialize import dumps, loads, pack_error
from plait._processes._process import _let_go_of_shared, _raise_terminated, _Terminated
from plait.pool._protocol import HEADER
from plait.pool._worker import next_task

__all__ = ["REPLY_ERR", "REPLY_EXITING", "REPLY_OK", "main"]

# Reply kinds (the byte after the task id in HEADER): a value, an error (the worker goes
# on), an error after which the worker exits (SystemExit / KeyboardInterrupt).
REPLY_OK = 1
REPLY_ERR = 2
REPLY_EXITING = 3


@takes_ctrl_c
def main(
    conn: Connection,
    parent_pid: int,
    start_method: str,
    marker: Any,
    slot: int,
    init_payload: object,
    concurrency: int,
) -> None:
    """Entry point of a warm strand worker (the pool's worker signature; the marker, slot,
    initializer and concurrency are unused: a strand is one call, watched by its exit)."""
    # Ctrl-C goes to the whole process group; the parent decides what happens to strands.
    take_over("ignored")
    install_in_child(parent_pid, start_method=start_method)
    try:
        _serve(conn)
    except _Terminated:  # a cancel that landed outside the strand's own frames
        _die_of_sigterm()


def _serve(conn: Connection) -> None:
    recv = conn.recv_bytes
    send = conn.send_bytes
    while (message := next_task(recv)) is not None:
        task_id, _, buf = message
        del message  # (buf alone holds the message: freed once it is loaded)
        reply_kind, body, exit_code = _run(memoryview(buf)[HEADER.size :])
        del buf
        try:
            send(HEADER.pack(task_id, reply_kind) + body)
        except OSError:  # the parent is gone; the lifeline ends this process
            return
        if reply_kind == REPLY_EXITING:
            sys.exit(exit_code)


def _run(body: memoryview) -> tuple[int, bytes, int]:
    """Run one strand: its reply kind, the pickled reply body, and the exit code the
    worker must end with after replying (for :data:`REPLY_EXITING`)."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        fn, args = loads(body)
        value = fn(*args)
    except _Terminated:
        _die_of_sigterm()
        raise  # pragma: no cover - not reached
    except BaseException as exc:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if exc.__traceback__ is not None:  # hide this frame from the traceback
            exc.__traceback__ = exc.__traceback__.tb_next
        packed = dumps(pack_error(exc), what="an exception")
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            code = exc.code if isinstance(exc, SystemExit) else 1
            return REPLY_EXITING, packed, code if isinstance(code, int) else 1
        return REPLY_ERR, packed, 0
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        return REPLY_OK, dumps(value, what=f"the result of {_name(fn)}"), 0
    except SerializationError as exc:
        return REPLY_ERR, dumps(pack_error(exc), what="an exception"), 0


def _name(fn: Any) -> str:
    inner = getattr(fn, "fn", fn)  # (the group's _RefuseAwaitable wrapper)
    return f"{getattr(inner, '__qualname__', None) or type(inner).__name__}()"


def _die_of_sigterm() -> None:
    """Cancelled: give back shared units, then die of SIGTERM as the parent asked."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (a second one changes nothing)
    _let_go_of_shared()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    os._exit(128 + signal.SIGTERM)  # pragma: no cover - the signal ends us first
