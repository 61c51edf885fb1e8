"""A Ctrl-C that reaches a child before its own code ran (issue 11, the last window).

Each test stops a child inside its start-up (``_start_window.Paused``: while the child
unpickles what its parent sent, after the fork server's child restored its handlers or
after a spawned interpreter started; under fork, before the bootstrap), SIGINTs it there,
then lets it go on. Before the fix Python's handler raised ``KeyboardInterrupt`` in that
window and the child ended as ``WorkerCrashed``; now:

* a process strand's child runs to its end (its Ctrl-C is its parent's);
* a drop-in ``plait.Process`` gets the ``KeyboardInterrupt`` as its code begins, as
  multiprocessing's child would have (``result()`` raises it, ``exitcode`` 1);
* a warm worker runs its strand, a pool worker its task (they ignore Ctrl-C);
* a child of multiprocessing's own (the same fork server forks it) keeps multiprocessing's
  behaviour: ``KeyboardInterrupt``, before and after its start.

The last test is the program-level promise: a Ctrl-C to the whole process group at that
instant ends ``plait.run`` with ``KeyboardInterrupt`` (exit 130), not an ExceptionGroup.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _start_window import Paused, ctrl_c_then_go, wait_ready

import plait
import plait.pool._engine as engine
import plait.pool._warm as warm
import plait.pool._worker as pool_worker
from plait._processes import _process
from plait._processes._call import start_process_call

RESULT_S = 30.0
METHODS = pytest.mark.parametrize("method", ["forkserver", "spawn", "fork"])


def answer() -> int:
    return 42


class _Window:
    def __init__(self, tmp_path: Path) -> None:
        self.ready = str(tmp_path / "ready")
        self.go = str(tmp_path / "go")

    def wrap(self, obj: Any) -> Paused:
        return Paused(obj, self.ready, self.go)


@pytest.fixture
def window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Window]:
    """Every plait.Process started in the test stops in its start-up (see module doc)."""
    stop = _Window(tmp_path)
    real_reduce = _process.Process.__reduce__
    real_bootstrap = _process.Process._bootstrap

    def reduce(self: _process.Process) -> tuple[Any, ...]:
        rebuild, args = real_reduce(self)
        return (rebuild, (stop.wrap(args[0]), *args[1:]))

    def bootstrap(self: _process.Process, *args: Any, **kwargs: Any) -> int:
        if self._plait_method == "fork":  # (nothing is unpickled: stop before the bootstrap)
            from _start_window import _pause_then

            _pause_then(stop.ready, stop.go, False, None)
        code: int = real_bootstrap(self, *args, **kwargs)
        return code

    monkeypatch.setattr(_process.Process, "__reduce__", reduce)
    monkeypatch.setattr(_process.Process, "_bootstrap", bootstrap)
    try:
        yield stop
    finally:
        open(stop.go, "a").close()  # (a failed test leaves no child waiting)


@METHODS
def test_a_process_strand_started_under_a_ctrl_c_runs_on(window: _Window, method: str) -> None:
    call = start_process_call(answer, start_method=method)  # type: ignore[arg-type]
    try:
        ctrl_c_then_go(window.ready, window.go)
        assert call.process.result(RESULT_S) == 42
        assert call.exitcode == 0
    finally:
        call.kill()
        call.join(RESULT_S)


@METHODS
def test_a_drop_in_process_started_under_a_ctrl_c_gets_keyboard_interrupt(
    window: _Window, method: str
) -> None:
    process = plait.get_context(method).Process(target=answer)
    process.start()
    try:
        ctrl_c_then_go(window.ready, window.go)
        with pytest.raises(KeyboardInterrupt):
            process.result(RESULT_S)
        assert process.exitcode == 1
    finally:
        process.kill()
        process.join(RESULT_S)


def test_a_warm_worker_started_under_a_ctrl_c_runs_its_strand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = _Window(tmp_path)
    # A fresh warm worker, whose entry point crosses to it through the stop.
    warm.shutdown_warm_workers()
    monkeypatch.setattr(warm, "strand_worker_main", stop.wrap(warm.strand_worker_main))
    try:
        with plait.TaskGroup() as tg:
            task = tg.spawn(answer, on="process", isolated=False)
            ctrl_c_then_go(stop.ready, stop.go)
        assert task.result() == 42
    finally:
        open(stop.go, "a").close()
        monkeypatch.undo()
        warm.shutdown_warm_workers()


def test_a_pool_worker_started_under_a_ctrl_c_runs_its_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = _Window(tmp_path)
    real_spawn_worker = engine.spawn_worker

    def spawn_worker(*args: Any, **kwargs: Any) -> Any:  # the worker's entry point stops
        return real_spawn_worker(*args, main=stop.wrap(pool_worker.main), **kwargs)

    monkeypatch.setattr(engine, "spawn_worker", spawn_worker)
    pool = plait.Pool(1)
    try:
        future = pool.submit(os.getpid)  # (sent to the worker while it starts)
        pid = ctrl_c_then_go(stop.ready, stop.go)
        assert future.result(RESULT_S) == pid  # that worker lived (no replacement ran it)
    finally:
        open(stop.go, "a").close()
        pool.terminate()
        pool.join()


def _wait_for_ctrl_c(ready: str) -> None:
    with open(ready + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(ready + ".tmp", ready)
    time.sleep(RESULT_S)


def test_multiprocessing_s_own_fork_server_child_keeps_its_keyboard_interrupt(
    tmp_path: Path,
) -> None:
    """plait sets the (shared) fork server's preload; multiprocessing's own children still
    get KeyboardInterrupt: one that came during their start-up, and one after."""
    plait.get_context("forkserver")  # plait's preload, as any plait start sets it
    context = multiprocessing.get_context("forkserver")
    stop = _Window(tmp_path)
    during = context.Process(target=answer, args=(stop.wrap(None),))
    during.start()
    try:
        ctrl_c_then_go(stop.ready, stop.go)
        during.join(RESULT_S)
        assert during.exitcode == 1  # multiprocessing's KeyboardInterrupt in the child
    finally:
        during.kill()
        during.join(RESULT_S)
    ready = str(tmp_path / "running")
    after = context.Process(target=_wait_for_ctrl_c, args=(ready,))
    after.start()
    try:
        pid = wait_ready(ready)
        os.kill(pid, signal.SIGINT)
        after.join(RESULT_S)
        assert after.exitcode == 1
    finally:
        after.kill()
        after.join(RESULT_S)


PROGRAM = """
import sys
sys.path.insert(0, {faults!r})
import plait
import plait.pool._engine as engine
import plait.pool._warm as warm
import plait.pool._worker as pool_worker
from plait._processes import _process
from _start_window import Paused

# The child Ctrl-Cs its whole process group from inside its start-up.
real_reduce = _process.Process.__reduce__

def reduce(self):
    rebuild, args = real_reduce(self)
    return (rebuild, (Paused(args[0], "", "", ctrl_c_the_group=True), *args[1:]))

_process.Process.__reduce__ = reduce
warm.strand_worker_main = Paused(warm.strand_worker_main, "", "", ctrl_c_the_group=True)

def sleepy():
    plait.sleep(30)

async def main():
    async with plait.TaskGroup(grace=1.0) as tg:
        tg.spawn(sleepy, on="process", isolated={isolated!r})
        await plait.async_sleep(30)

if __name__ == "__main__":
    plait.set_start_method({method!r})
    try:
        plait.run(main)
    except KeyboardInterrupt:
        sys.exit(130)
"""


SPAWN_SLOW = pytest.mark.slow(
    reason="a second interpreter start for a path the child-level spawn tests cover"
)


@pytest.mark.parametrize(
    ("method", "isolated"),
    [
        pytest.param("forkserver", True, id="forkserver"),
        pytest.param("spawn", True, id="spawn", marks=SPAWN_SLOW),
        pytest.param("forkserver", False, id="warm"),
    ],
)
def test_a_ctrl_c_while_a_process_strand_starts_ends_the_program_with_130(
    tmp_path: Path, method: str, isolated: bool
) -> None:
    script = tmp_path / "program.py"
    faults = str(Path(__file__).parent)
    script.write_text(PROGRAM.format(faults=faults, method=method, isolated=isolated))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # the child's Ctrl-C reaches this group only
    )
    try:
        _, err = proc.communicate(timeout=RESULT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the program still ran 30 s after its Ctrl-C")
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert "WorkerCrashed" not in err, err[-3000:]
