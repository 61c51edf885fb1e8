"""Calls that cannot switch (they block inside the C library) run in a worker thread while
the green strand parks on them (issue 14, point 2): the loop, and the other green strands
on it, go on meanwhile. Every wait is bounded: a call that blocked the loop's thread makes
the test fail, never hang."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest
from _green_helpers import (
    in_group,
    patched,  # noqa: F401 - the fixture, used by pytestmark
)

from plait.green import _patch

pytest.importorskip("greenlet", reason="green strands need the greenlet extra (plait[green])")

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("patched")]
BOUND_S = 10.0


def test_a_resolver_call_runs_in_a_worker_thread_while_the_loop_goes_on() -> None:
    """``gethostbyname`` stands in for every resolver call without a loop form: the fake
    original returns only once the *other* green strand ran, which it can only do if the
    call left the loop's thread."""
    other_ran = threading.Event()
    seen: list[str] = []

    def slow_lookup(host: str) -> str:
        seen.append(threading.current_thread().name)
        return "127.0.0.1" if other_ran.wait(BOUND_S) else "the loop was blocked"

    key = (socket, "gethostbyname")
    real = _patch._originals[key]
    _patch._originals[key] = slow_lookup
    try:
        results = in_group(lambda: socket.gethostbyname("example.test"), other_ran.set)
    finally:
        _patch._originals[key] = real
    assert results[0] == "127.0.0.1"
    assert seen and seen[0] != threading.main_thread().name  # (a worker ran it)


def test_a_blocking_waitpid_in_a_green_strand_lets_another_end_the_child() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    killer = threading.Timer(BOUND_S, child.kill)  # (if the loop were blocked: fail, not hang)
    killer.daemon = True
    killer.start()
    try:
        assert child.stdin is not None
        stdin = child.stdin

        def reap() -> int:
            _pid, status = os.waitpid(child.pid, 0)
            return os.waitstatus_to_exitcode(status)

        code, _ = in_group(reap, stdin.close)  # the other strand ends the child
        assert code == 0, "the child was killed: waitpid blocked the loop"
    finally:
        killer.cancel()
        if child.poll() is None:
            child.kill()
        child.returncode = 0  # (reaped by waitpid above: Popen must not wait again)


def test_waitpid_outside_green_strands_is_the_original() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        pid, status = os.waitpid(child.pid, 0)  # the main thread: the original, blocking
        assert pid == child.pid and os.waitstatus_to_exitcode(status) == 0
    finally:
        child.returncode = 0
    assert os.waitpid.__name__ == "_waitpid"  # (patched, all the same)
