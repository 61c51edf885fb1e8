"""A stop inside a child's start-up, before any of its own code runs (issue 11).

:class:`Paused` wraps an object that crosses to a child; the child unpickles it as that
object, but first it writes its pid to ``ready`` and waits until ``go`` exists (or, with
``ctrl_c_the_group``, sends SIGINT to itself and then to its whole process group, as a
terminal's Ctrl-C at that instant would). Unpickling happens after the fork server's
child restored its handlers, or after a spawned interpreter started and imported the main
module, and before the child's own code says who handles its Ctrl-C: the window under
test.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

WAIT_S = 30.0  # the child's bound on waiting for "go"


class Paused:
    def __init__(self, obj: Any, ready: str, go: str, *, ctrl_c_the_group: bool = False) -> None:
        self.obj = obj
        self.ready = ready
        self.go = go
        self.ctrl_c_the_group = ctrl_c_the_group

    def __reduce__(self) -> tuple[Any, ...]:
        return (_pause_then, (self.ready, self.go, self.ctrl_c_the_group, self.obj))


def _pause_then(ready: str, go: str, ctrl_c_the_group: bool, obj: Any) -> Any:
    if ctrl_c_the_group:  # (the child's copy first, as a terminal's often lands)
        os.kill(os.getpid(), signal.SIGINT)
        os.killpg(0, signal.SIGINT)
        return obj
    with open(ready + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(ready + ".tmp", ready)
    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.002)
    return obj


def wait_ready(ready: str, timeout: float = WAIT_S) -> int:
    """The pid the child wrote once it stopped in its start-up."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(ready):
        if time.monotonic() > deadline:
            raise AssertionError(f"no child stopped in its start-up within {timeout} s")
        time.sleep(0.005)
    with open(ready) as f:
        return int(f.read())


def ctrl_c_then_go(ready: str, go: str) -> int:
    """Wait for the stopped child, SIGINT it, then let it go on. Its pid."""
    pid = wait_ready(ready)
    os.kill(pid, signal.SIGINT)
    open(go, "w").close()
    return pid
