"""The multiprocessing context every plait child is started from.

plait never forks a process that has other threads alive (a forked child inherits locks
held by threads that do not exist in it). The default is ``forkserver``: one clean,
single-threaded server process, started once, forks each child; it preloads plait so a
child needs no import time. Where forkserver is missing, ``spawn``. ``fork`` only when the
caller asks for it by name.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import threading
from typing import Literal

__all__ = ["StartMethod", "default_start_method", "get_context"]

StartMethod = Literal["forkserver", "spawn", "fork"]

_guard = threading.Lock()
_configured: set[str] = set()


def default_start_method() -> StartMethod:
    """``forkserver`` where the platform has it, else ``spawn``."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return "spawn"


def get_context(method: StartMethod | None = None) -> multiprocessing.context.BaseContext:
    """The context for ``method`` (default: :func:`default_start_method`)."""
    if method is None:
        method = default_start_method()
    if method not in ("forkserver", "spawn", "fork"):
        raise ValueError(f"unknown start method {method!r}: use 'forkserver', 'spawn' or 'fork'")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver" and method not in _configured:
        with _guard:
            if method not in _configured:
                # Preloading plait (and its worker entry points) makes each fork start warm;
                # ctrl_c first: the server's children start with a Ctrl-C kept, not raised.
                ctx.set_forkserver_preload(
                    [
                        "plait._ipc.ctrl_c",
                        "plait._processes",
                        "plait.pool._worker",
                        "plait.pool._strand_worker",
                    ]
                )
                _configured.add(method)
    return ctx
