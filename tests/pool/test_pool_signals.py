"""Ctrl-C stops everything; a parent killed with SIGKILL takes its workers with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

PROGRAM = """
import sys, time
sys.path.insert(0, {helpers!r})
import poolhelpers as h
from plait.pool import Pool

if __name__ == "__main__":
    pool = Pool(2, grace=0.5)
    pool.map(h.square, range(10), 1)
    results = [pool.apply_async(h.nap, (30,)) for _ in range(4)]
    print("pids", *pool.pids, flush=True)
    results[0].get()
"""


IN_WITH_BLOCK = """
import sys, time
sys.path.insert(0, {helpers!r})
import poolhelpers as h
from plait.pool import Pool

if __name__ == "__main__":
    with Pool(2, grace=0.5) as pool:
        pool.map(h.square, range(10), 1)
        print("pids", *pool.pids, flush=True)
        pool.map(h.nap, [30] * 4, 1)
"""


def _start(tmp_path: Path, program: str = PROGRAM) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(program.format(helpers=str(Path(__file__).parent))))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("pids"), line + (proc.stderr.read() if proc.stderr else "")
    return proc, [int(p) for p in line.split()[1:]]


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("program", [PROGRAM, IN_WITH_BLOCK], ids=["bare", "with-block"])
def test_ctrl_c_raises_keyboard_interrupt_and_leaves_no_child(tmp_path: Path, program: str) -> None:
    proc, pids = _start(tmp_path, program)
    descendants = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=0.5 + 1 + 1)
    finally:
        proc.kill()
    assert time.monotonic() - t0 < 0.5 + 1 + 0.5, "not within grace + 1 s"
    assert "KeyboardInterrupt" in err
    assert _gone_within(pids + descendants, 1.0)


def test_sigkilled_parent_takes_its_workers(tmp_path: Path) -> None:
    proc, pids = _start(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    assert _gone_within(pids, 1.0)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()
