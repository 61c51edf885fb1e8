"""Functions the warm process-strand tests run in workers (importable by reference)."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

_STATE: Any = None


def pid() -> int:
    return os.getpid()


def set_state(value: Any) -> int:
    """Leave a module global behind in the worker."""
    global _STATE
    _STATE = value
    return os.getpid()


def get_state() -> tuple[Any, int]:
    return _STATE, os.getpid()


def report_then_wait(q: Any, ev: Any, finally_dir: str | None = None) -> int:
    """Say we run (with our pid), then wait for ``ev``; ``finally`` leaves a file named
    after our pid in ``finally_dir`` (a plain write: a cancelled strand's plait calls may
    be cancelled again)."""
    try:  # (the put inside: a cancel right after the parent saw "started" still lands here)
        q.put(("started", os.getpid()))
        ev.wait(30)
        return os.getpid()
    finally:
        if finally_dir is not None:
            with open(os.path.join(finally_dir, f"finally-{os.getpid()}"), "w"):
                pass


def report_then_sleep(q: Any) -> None:
    q.put(("started", os.getpid()))
    time.sleep(30)


def kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(30)


def exit_now(code: int) -> None:
    os._exit(code)


def sys_exit(code: int) -> None:
    sys.exit(code)


def raise_value_error() -> None:
    raise ValueError("raised in a warm worker")


def ignore_sigterm_forever(q: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    q.put(("started", os.getpid()))
    time.sleep(30)


def bump(value: Any) -> int:
    """Add one to a multiprocessing.Value (an object only a starting process inherits)."""
    with value.get_lock():
        value.value += 1
    return os.getpid()
