"""Signals at random moments (issue 11, deliver 3).

A script (``programs/signals_mix.py``) runs coroutine, thread, process and pool strands in
one ``plait.TaskGroup`` under ``plait.run(main)``; the test signals it at a seeded random
moment after it printed ``ready`` and checks the outcome:

* one SIGINT (to the script, or to its whole process group as a terminal's Ctrl-C does):
  ``KeyboardInterrupt`` -- the script's ``except KeyboardInterrupt`` exits 130 -- within
  grace + 1 s, and no descendant left alive;
* a second SIGINT during the grace ends it at once (within 1 s of the second signal);
* SIGTERM: plait installs no handler in the main process, so the default action ends the
  script at once (killed by SIGTERM); its children follow it (``plait._ipc.lifeline``).

The seed of each run is its test id (``case-target-index``), printed in every failure.
Descendants are found two ways: the script's children (recursively) just before each
signal, and every process whose environment carries this run's marker (so a child
reparented after the script died is still found). Each gets a bounded wait.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

PROGRAM = Path(__file__).parent / "programs" / "signals_mix.py"
MARK = "PLAIT_SIGNALS_TEST_MARK"
GRACE = 0.5  # the script's TaskGroup grace for one Ctrl-C
LONG_GRACE = 5.0  # for the second Ctrl-C: it must not wait this out
READY_S = 30.0  # start-up bound (a loaded machine imports slowly)
LATEST_S = 1.5  # random moments fall in [0, LATEST_S) after "ready"
CHILD_EXIT_S = 3.0  # each leftover descendant's bounded wait after the script ended


def _loaded(bound: float) -> float:
    """``bound`` stretched by how oversubscribed the machine is now (load per core, from 1 to
    at most 4): an exit that takes a second on an idle machine can take several with eight
    times more runnable processes than cores, and that is not the hang these bounds are for
    (a script that does not end at all runs into the 10 s timeouts)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return bound * min(4.0, max(1.0, os.getloadavg()[0] / max(cores, 1)))


def _launch(marker: str, grace: float, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, **{MARK: marker})
    return subprocess.Popen(
        [sys.executable, str(PROGRAM), str(grace)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
        start_new_session=True,  # its own process group: we can signal and kill it whole
    )


def _wait_ready(proc: subprocess.Popen[str], seed: str) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_S)
    assert ready, f"[seed {seed}] the script printed nothing in {READY_S} s"
    line = proc.stdout.readline().strip()
    assert line == "ready", f"[seed {seed}] unexpected first line {line!r}"


def _marked(marker: str) -> list[psutil.Process]:
    """Every live (non-zombie) process whose environment carries ``marker``."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARK) == marker and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _signal(proc: subprocess.Popen[str], sig: int, target: str) -> float:
    """Send ``sig`` to the script (``pid``) or its process group; return the time sent."""
    if target == "group":
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    return time.monotonic()


def _leftovers(seen: list[psutil.Process], marker: str) -> list[str]:
    """Descendants still alive after each got a bounded wait."""
    procs = {p.pid: p for p in seen}
    procs.update((p.pid, p) for p in _marked(marker))
    _, alive = psutil.wait_procs(list(procs.values()), timeout=CHILD_EXIT_S)
    out = []
    for p in alive:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return out


def _kill_everything(proc: subprocess.Popen[str], marker: str) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in _marked(marker):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignored
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _run_case(case: str, target: str, index: int, tmp_path: Path) -> None:
    seed = f"{case}-{target}-{index}"
    rng = random.Random(seed)
    marker = uuid.uuid4().hex
    grace = LONG_GRACE if case == "sigint-twice" else GRACE
    proc = _launch(marker, grace, tmp_path)
    out: Any = ("", "")
    try:
        _wait_ready(proc, seed)
        time.sleep(rng.uniform(0.0, LATEST_S))  # the random moment
        seen = _descendants(proc.pid)
        if case == "sigterm":
            sent = _signal(proc, signal.SIGTERM, target)
            bound, expected = 1.0, -signal.SIGTERM
        elif case == "sigint":
            sent = _signal(proc, signal.SIGINT, target)
            bound, expected = grace + 1.0, 130
        else:
            _signal(proc, signal.SIGINT, target)
            time.sleep(rng.uniform(0.1, 0.5))  # inside the 5 s grace
            seen += _descendants(proc.pid)
            sent = _signal(proc, signal.SIGINT, target)
            bound, expected = 1.0, 130
        try:
            out = proc.communicate(timeout=bound + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"[seed {seed}] the script still ran {bound + 10:.1f} s after the signal")
        elapsed = time.monotonic() - sent
        detail = f"[seed {seed}] stdout={out[0]!r} stderr tail={out[1][-2000:]!r}"
        assert proc.returncode == expected, f"exit code {proc.returncode} != {expected} {detail}"
        if expected == 130:
            assert "interrupted" in out[0], detail
        bound = _loaded(bound)
        assert elapsed <= bound, f"ended {elapsed:.2f} s after the signal ({bound:.1f}) {detail}"
        left = _leftovers(seen, marker)
        assert left == [], f"[seed {seed}] descendants left alive: {left}"
    finally:
        _kill_everything(proc, marker)


CASES = [
    ("sigint", "pid"),
    ("sigint", "group"),
    ("sigint-twice", "pid"),
    ("sigint-twice", "group"),
    ("sigterm", "pid"),
    ("sigterm", "group"),
]


@pytest.mark.parametrize("index", range(10))
@pytest.mark.parametrize(("case", "target"), CASES)
def test_signal_at_a_random_moment(case: str, target: str, index: int, tmp_path: Path) -> None:
    _run_case(case, target, index, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(10, 110))
@pytest.mark.parametrize(("case", "target"), CASES)
def test_signal_at_a_random_moment_many(case: str, target: str, index: int, tmp_path: Path) -> None:
    _run_case(case, target, index, tmp_path)


BLOCKING_MAIN = """
import sys, time
import plait

async def main():
    print("ready", flush=True)
    time.sleep(30)  # synchronous: a cancellation reaches main only when it returns

try:
    plait.run(main)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_while_main_blocks_in_synchronous_code(tmp_path: Path) -> None:
    """One Ctrl-C while the coroutine ``main`` itself runs a blocking synchronous call
    raises KeyboardInterrupt there at once, as in a plain program (a cancellation would
    wait for the call to return)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKING_MAIN],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        _wait_ready(proc, "blocking-main")
        time.sleep(0.2)  # (into the sleep: the handler runs between its bytecodes anyway)
        sent = _signal(proc, signal.SIGINT, "pid")
        try:
            out = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("a Ctrl-C did not end main's blocking call within 10 s")
        elapsed = time.monotonic() - sent
        assert proc.returncode == 130, f"exit code {proc.returncode}: {out[1][-2000:]!r}"
        assert "interrupted" in out[0]
        assert elapsed <= _loaded(1.0), f"ended {elapsed:.2f} s after the signal"
    finally:
        _kill_everything(proc, "no-marker")


FORK_SERVER_KILLED = """
import os, signal, sys
from multiprocessing import forkserver
import plait

def square(x):
    return x * x

if __name__ == "__main__":
    from plait._ipc.context import get_context

    get_context()  # (configures plait's preload)
    forkserver.ensure_running()  # starts the fork server: it preloads plait for a while
    os.kill(forkserver._forkserver._forkserver_pid, signal.SIGINT)  # a Ctrl-C meanwhile
    with plait.Pool(1) as pool:
        print(pool.map(square, [1, 2, 3]), flush=True)
    os.kill(forkserver._forkserver._forkserver_pid, signal.SIGINT)  # (it ignores this one)
    with plait.TaskGroup() as tg:
        task = tg.spawn(square, 4, on="process")
    print(task.result(), flush=True)
"""


@pytest.mark.parametrize("run", range(3))
def test_a_fork_server_killed_by_ctrl_c_while_it_starts_is_replaced(
    run: int, tmp_path: Path
) -> None:
    """A Ctrl-C to the process group reaches the fork server too; before it is set up it
    dies of it. The starts that were waiting on it are made again on a new one (they
    failed with EOFError('unexpected EOF'))."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", FORK_SERVER_KILLED],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the program did not end within 60 s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["[1, 4, 9]", "16"], done.stdout


CHILD_GETS_CTRL_C_FIRST = """
import asyncio, os, sys, time
import plait

def busy():
    print("child", os.getpid(), flush=True)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        plait.sleep(0.01)
        sum(range(1000))

async def async_main():
    async with plait.TaskGroup(grace=2.0) as tg:
        tg.spawn(busy, on="process")

def sync_main():
    with plait.TaskGroup(grace=2.0) as tg:
        tg.spawn(busy, on="process")

try:
    if sys.argv[1] == "async":
        plait.run(async_main)
    else:
        sync_main()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


@pytest.mark.parametrize("main", ["async", "sync"])
def test_a_group_ctrl_c_that_reaches_a_process_strand_first_stays_a_ctrl_c(
    main: str, tmp_path: Path
) -> None:
    """A terminal's Ctrl-C goes to the whole process group: a process strand may get it
    before the parent has acted on its own copy. The strand must not end of it (it ended
    with KeyboardInterrupt, reported as ``WorkerCrashed``, and the group failed with an
    ExceptionGroup instead of the user's KeyboardInterrupt): its parent stops it.

    The order is made certain here: the child's SIGINT first, the parent's 0.5 s later."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_GETS_CTRL_C_FIRST, main],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    seen: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], READY_S)
        assert ready, f"the script printed nothing in {READY_S} s"
        line = proc.stdout.readline().split()
        assert line[:1] == ["child"], f"unexpected first line {line!r}"
        child = int(line[1])
        seen = _descendants(proc.pid)
        os.kill(child, signal.SIGINT)  # the group's Ctrl-C, as the child gets it ...
        time.sleep(0.5)
        sent = _signal(proc, signal.SIGINT, "pid")  # ... and as the parent gets it
        try:
            out = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the script still ran 10 s after the Ctrl-C")
        elapsed = time.monotonic() - sent
        detail = f"stdout={out[0]!r} stderr tail={out[1][-2000:]!r}"
        assert proc.returncode == 130, f"exit code {proc.returncode} {detail}"
        assert "interrupted" in out[0], detail
        assert "WorkerCrashed" not in out[1], detail
        assert elapsed <= _loaded(2.0 + 1.0), f"ended {elapsed:.2f} s after the Ctrl-C {detail}"
        assert _leftovers(seen, "no-marker") == []
    finally:
        _kill_everything(proc, "no-marker")
