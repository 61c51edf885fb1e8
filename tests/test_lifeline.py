"""A child dies with its parent: SIGKILL the parent and none of its children survives 1 s.

Each test starts a helper Python program that starts process strands sleeping 60 s and
prints their pids, then SIGKILLs the helper and polls (with a deadline, not a guessed sleep)
until every process that descended from it is gone.
"""

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

SRC = Path(__file__).resolve().parents[1] / "src"
DEADLINE_S = 1.5

# Each helper prints its strands' pids once both run their function (a strand still
# booting its interpreter arms its lifeline when it gets there, and exits then).
HELPER_CALLS = """
import sys, time
from multiprocessing.connection import Pipe
from plait._processes import start_process_call
def up_then_sleep(conn):
    conn.send("up")
    time.sleep(60)
if __name__ == "__main__":
    method = sys.argv[1]
    reader, writer = Pipe(duplex=False)
    calls = [start_process_call(up_then_sleep, (writer,), start_method=method) for _ in range(2)]
    assert [reader.recv() for _ in calls] == ["up", "up"]
    print(*(c.pid for c in calls), flush=True)
    time.sleep(60)
"""

HELPER_PROCESS = """
import sys, time
from multiprocessing.connection import Pipe
from plait._processes import Process
class Sleeper(Process):
    def __init__(self, conn):
        super().__init__()
        self.conn = conn
    def run(self):
        self.conn.send("up")
        time.sleep(60)
if __name__ == "__main__":
    reader, writer = Pipe(duplex=False)
    procs = [Sleeper(writer), Sleeper(writer)]
    for p in procs:
        p.start()
    assert [reader.recv() for _ in procs] == ["up", "up"]
    print(*(p.pid for p in procs), flush=True)
    time.sleep(60)
"""


HELPER_TASKGROUP = """
import time
from multiprocessing.connection import Pipe
import plait
def up_then_sleep(conn):
    conn.send("up")
    time.sleep(60)
if __name__ == "__main__":
    reader, writer = Pipe(duplex=False)
    with plait.TaskGroup() as tg:
        tasks = [tg.spawn(up_then_sleep, writer, on="process") for _ in range(2)]
        assert [reader.recv() for _ in tasks] == ["up", "up"]
        print(*(t.pid for t in tasks), flush=True)
        time.sleep(60)
"""


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def _kill_parent_and_check(tmp_path: Path, source: str, *args: str) -> None:
    script = tmp_path / "helper.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=str(SRC))
    with subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    ) as helper:
        assert helper.stdout is not None
        line = helper.stdout.readline()
        assert line, "the helper printed no pids"
        pids = [int(word) for word in line.split()]
        assert len(pids) == 2
        # Every descendant: the strands, and the fork server and resource tracker too.
        descendants = psutil.Process(helper.pid).children(recursive=True)
        assert set(pids) <= {p.pid for p in descendants}
        strands = [psutil.Process(pid) for pid in pids]
        assert all(_alive(p) for p in strands)

        os.kill(helper.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        helper.wait(10)
        deadline = killed_at + DEADLINE_S
        while time.monotonic() < deadline and any(_alive(p) for p in descendants):
            time.sleep(0.01)
        survivors = [p for p in descendants if _alive(p)]
        for p in survivors:  # never leave them behind, even when the test fails
            p.kill()
        assert not [p.pid for p in strands if p in survivors], (
            f"process strands outlived their parent by {DEADLINE_S} s"
        )
        assert not survivors, f"descendants outlived the parent: {survivors}"


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_process_calls_die_with_their_parent(tmp_path: Path, method: str) -> None:
    _kill_parent_and_check(tmp_path, HELPER_CALLS, method)


def test_process_objects_die_with_their_parent(tmp_path: Path) -> None:
    _kill_parent_and_check(tmp_path, HELPER_PROCESS)


def test_task_group_process_strands_die_with_their_parent(tmp_path: Path) -> None:
    _kill_parent_and_check(tmp_path, HELPER_TASKGROUP)

