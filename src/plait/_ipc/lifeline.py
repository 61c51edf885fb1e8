"""A child dies with its parent.

Two mechanisms, because neither alone covers every case:

* Under ``forkserver`` the child's OS parent is the fork server, a single-threaded process
  that exits as soon as the plait parent dies. ``PR_SET_PDEATHSIG`` (Linux) makes the kernel
  send the child SIGKILL at that moment. It is *not* used under ``spawn``, where the OS
  parent is whichever parent thread started the child: that thread's exit would kill it.
* Everywhere else (``spawn``, or no ``prctl``), a daemon thread in the child checks every
  100 ms that the plait parent still exists and ends the child with ``os._exit`` when it
  does not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["child_started_hooks", "install_in_child", "pid_alive"]

# Called with the plait parent's pid in every plait child (pool worker, process strand's
# worker, plait.Process) as it starts; upper layers add to it (diagnostics: serve dumps in a
# child whose parent serves them).
child_started_hooks: list[Callable[[int], None]] = []

_PR_SET_PDEATHSIG = 1
POLL_INTERVAL = 0.1


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        # The interpreter's own symbols include libc's prctl; ctypes.util.find_library would
        # run ldconfig in a subprocess (~7 ms) in every child.
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "prctl"):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(parent_pid: int, original_ppid: int) -> None:
    while True:
        time.sleep(POLL_INTERVAL)
        if os.getppid() != original_ppid or not pid_alive(parent_pid):
            os._exit(70)


def _detach_from_fork_server() -> None:
    """Drop this child's copy of the fork server's "parent alive" pipe.

    multiprocessing hands every fork-server child the write end of that pipe (so that it
    can reuse the server for its own children); while any child holds it, the server never
    sees the parent's death and never exits, and the death signal never comes. A plait
    child that starts processes of its own gets a fork server of its own instead.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if server is None or fd is None:
        return
    try:
        os.close(fd)
    except OSError:
        pass
    server._forkserver_alive_fd = None
    server._forkserver_address = None
    if hasattr(server, "_forkserver_pid"):
        server._forkserver_pid = None


def install_in_child(parent_pid: int, *, start_method: str) -> None:
    """Arrange for this process to end when the process ``parent_pid`` ends."""
    for hook in child_started_hooks:
        hook(parent_pid)
    original_ppid = os.getppid()
    if start_method == "forkserver":
        _detach_from_fork_server()
    if start_method == "forkserver" and _set_pdeathsig():
        # The fork server may already be gone by the time the signal was armed.
        if os.getppid() != original_ppid:
            os._exit(70)
        # The fork server exits as soon as the parent dies, and the kernel then kills us:
        # no thread needed (starting one costs about half a millisecond per child).
        return
    watcher = threading.Thread(
        target=_watch, args=(parent_pid, original_ppid), name="plait-lifeline", daemon=True
    )
    watcher.start()
