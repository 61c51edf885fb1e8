"""A cancellation or a Ctrl-C that lands while a process strand is being started (issue 11).

``spawn(..., on="process")`` starts the child before it records it. A ``tg.cancel()`` in
between found nothing to terminate, and a Ctrl-C raised in between (plait.run's handler
raises it where ``main`` runs) left a child its group no longer knew: either ran on (its
group waited for it; the signal suite's ``sigint-twice-group-55`` still ran 11 s after the
signal). The start is now one step for both: the child is stopped, the error comes out.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import plait
import plait._tasks._process_strands as process_strands
from plait._core import safepoint

END_S = 10.0  # the child runs 30 s unless stopped: the group must end well before


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        plait.sleep(0.01)


def _raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt()


class _Starts:
    """Callables to run right after a process strand's child started (before its group
    records it), and the calls started."""

    def __init__(self) -> None:
        self.hooks: list[Any] = []
        self.calls: list[Any] = []

    def alive(self) -> list[int]:
        return [
            c.pid
            for c in self.calls
            if getattr(c, "exitcode", None) is None and psutil.pid_exists(c.pid)
        ]


@pytest.fixture
def after_start(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Starts]:
    starts = _Starts()
    real = process_strands.start_process_strand

    def start(*args: Any, **kwargs: Any) -> Any:
        pcall = real(*args, **kwargs)
        starts.calls.append(pcall)
        for hook in starts.hooks:
            hook()
        return pcall

    monkeypatch.setattr(process_strands, "start_process_strand", start)
    try:
        yield starts
    finally:
        for pcall in starts.calls:  # (a failed test leaves no child running)
            pcall.kill()
            join = getattr(pcall, "join", None)  # (a warm worker's is reaped by the pool)
            if join is not None:
                join(10)


ISOLATED = pytest.mark.parametrize("isolated", [True, False], ids=["own-process", "warm"])


@ISOLATED
def test_a_cancel_while_the_child_starts_stops_it(after_start: _Starts, isolated: bool) -> None:
    box: list[plait.TaskGroup] = []

    def cancel() -> None:
        box[0].cancel()

    after_start.hooks.append(cancel)
    began = time.monotonic()
    with plait.TaskGroup(grace=2.0) as tg:
        box.append(tg)
        task = tg.spawn(busy, 30, on="process", isolated=isolated)
    elapsed = time.monotonic() - began
    assert elapsed < END_S, f"the group waited {elapsed:.1f} s for a cancelled child"
    assert task.cancelled(), task


@ISOLATED
def test_a_ctrl_c_while_the_child_starts_comes_out_and_stops_it(
    after_start: _Starts, isolated: bool
) -> None:
    # plait.run's Ctrl-C handler raises through safepoint.deliver where main runs.
    after_start.hooks.append(lambda: safepoint.deliver(_raise_keyboard_interrupt))
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt), plait.TaskGroup(grace=2.0) as tg:
        tg.spawn(busy, 30, on="process", isolated=isolated)
    elapsed = time.monotonic() - began
    assert elapsed < END_S, f"the group ended {elapsed:.1f} s after the Ctrl-C"
    deadline = time.monotonic() + END_S
    while after_start.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after_start.alive() == [], "the child started under the Ctrl-C is still running"


ORPHAN = """
import time
import plait
from plait._processes import start_process_call

def busy():
    end = time.monotonic() + 30
    while time.monotonic() < end:
        plait.sleep(0.01)

if __name__ == "__main__":
    call = start_process_call(busy, name="orphan")
    print(call.pid, flush=True)
"""


def test_a_process_strand_without_a_group_at_exit_is_stopped_not_waited_for(
    tmp_path: Path,
) -> None:
    """The safety net for a child a Ctrl-C left behind in a program without plait.run
    (Python's own handler raises anywhere): the exit stops it as its group would have."""
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            check=False,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=END_S + 20,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the program still ran 30 s later")
    elapsed = time.monotonic() - began
    pid = int(done.stdout.split()[0])
    try:
        assert elapsed < END_S, f"the exit waited {elapsed:.1f} s for the child"
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()
