"""Functions the cluster-backend tests run on Dask/Ray workers (importable by reference),
and the fixtures' cluster bookkeeping."""

from __future__ import annotations

import importlib.util
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

# The cluster backends the tests run on; Ray's skip without it (it is not in the test extra).
BACKENDS = [
    "dask",
    pytest.param(
        "ray",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("ray") is None,
            reason="the Ray backend needs 'ray': pip install -e '.[test,ray]'",
        ),
    ),
]


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0) -> int:
    return a + b


def fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def pid(_: Any = None) -> int:
    return os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def die_on(x: int, bad: int = 3) -> int:
    """Kill this worker process outright on item ``bad`` (a crash, not an exception)."""
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return x


def die_once(flag: str) -> str:
    """Kill this worker the first time (``flag`` does not exist yet), succeed after."""
    path = Path(flag)
    if not path.exists():
        path.write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return "ran again"


def exit_task() -> None:
    raise SystemExit(7)


def wait_for_cancel(marker: str, limit: float = 20.0) -> str:
    """On a Dask worker: run until Dask cancels this task (then write ``marker``), or
    until ``limit`` seconds pass."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        task = worker.state.tasks.get(key)
        if task is None or task.state in ("cancelled", "released", "forgotten"):
            Path(marker).write_text("cancelled")
            return "cancelled"
        time.sleep(0.02)
    return "not cancelled"


def let_ray_import_helpers() -> None:
    """Ray's workers (started by its raylet, not forked from here) import this module by
    name, as Dask's do: put its folder on the path they inherit. Before ``ray.init``."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p
    )
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def wait_for_file(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return path.exists()


_HELPERS = (  # long-lived multiprocessing helpers the suite's check ignores too
    "multiprocessing.forkserver",
    "multiprocessing.resource_tracker",
    "multiprocessing.semaphore_tracker",
)


def child_pids() -> set[int]:
    """This process's descendants, less multiprocessing's helpers (direct children)."""
    me = psutil.Process()
    found = set()
    try:
        children = me.children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    for child in children:
        try:
            if child.ppid() == me.pid and any(h in " ".join(child.cmdline()) for h in _HELPERS):
                continue
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        found.add(child.pid)
    return found


def reap(pids: set[int], timeout: float = 10.0) -> list[str]:
    """Wait for ``pids`` to end; kill and describe those that do not."""
    procs = []
    for p in pids:
        try:
            procs.append(psutil.Process(p))
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    left = []
    for proc in alive:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            left.append(f"pid {proc.pid} {' '.join(proc.cmdline())[:120]!r}")
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return left


def under(pid: int, ancestors: set[int]) -> bool:
    """Whether ``pid`` descends from one of ``ancestors``."""
    try:
        return any(p.pid in ancestors for p in psutil.Process(pid).parents())
    except psutil.Error:
        return False


def hold(folder: str, limit: float = 20.0) -> str:
    """Run until the engine cancels this task, or ``limit`` seconds pass: writes this
    worker's pid to ``folder/pid`` first; on a Dask worker it writes ``folder/cancelled``
    once Dask cancels the task (Ray's forced cancel kills the process instead)."""
    Path(folder, "pid").write_text(str(os.getpid()))
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        time.sleep(limit)  # not on a Dask worker: the engine kills this process
        return "not cancelled"
    return wait_for_cancel(str(Path(folder, "cancelled")), limit)
