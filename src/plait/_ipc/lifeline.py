"""A child dies with its parent.

Two mechanisms, because neither alone covers every case:

* Under ``forkserver`` the child's OS parent is the fork server, a single-threaded process
  that exits as soon as the plait parent dies. ``PR_SET_PDEATHSIG`` (Linux) makes the kernel
  send the child SIGKILL at that moment. It is *not* used under ``spawn``, where the OS
  parent is whichever parent thread started the child: that thread's exit would kill it.
* Everywhere, a daemon thread in the child checks every 100 ms that the plait parent still
  exists and ends the child with ``os._exit`` when it does not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

__all__ = ["install_in_child"]

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


def _parent_alive(pid: int) -> bool:
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
        if os.getppid() != original_ppid or not _parent_alive(parent_pid):
            os._exit(70)


def install_in_child(parent_pid: int, *, start_method: str) -> None:
    """Arrange for this process to end when the process ``parent_pid`` ends."""
    original_ppid = os.getppid()
    if start_method == "forkserver":
        _set_pdeathsig()
        # The fork server may already be gone by the time the signal was armed.
        if os.getppid() != original_ppid:
            os._exit(70)
    watcher = threading.Thread(
        target=_watch, args=(parent_pid, original_ppid), name="plait-lifeline", daemon=True
    )
    watcher.start()
