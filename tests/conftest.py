"""Suite-wide guards: stacks on hang, no child process left behind, no leaked /dev/shm.

* faulthandler is on, so a hung or crashed test shows every thread's stack
  (pytest's ``faulthandler_timeout`` in pyproject dumps them before the per-test timeout).
* After each test, every child process of this test process must be gone (given ~2 s to
  exit); the multiprocessing fork server and resource tracker are long-lived helpers and
  are ignored. A leftover child fails the test that left it, and is killed.
* At the end of the session, no new ``/dev/shm`` entry whose name starts with ``plait``
  (or ``sem.plait``, a named semaphore) may remain. Owner-tagged names
  (``plait_<kind>_<family>_<pid>_<start>_...``, see ``plait._ipc.shm``) count when their
  family is this session -- this process and every process descended from it -- and then
  strictly; another session's names never count. Names without that tag count unless a
  live process of another session still maps them.
* A non-daemon thread still alive when pytest is done would keep the interpreter from
  exiting (a hung CI job instead of a red one): its stack is printed and the run exits
  non-zero.
* A test that pytest-timeout cannot interrupt (stuck where its signal is never seen) must
  not hang the whole run silently: a watchdog thread names it, dumps every thread's stack
  and ends the run with exit code 70 once one test has run for ``HARD_LIMIT_S``.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

# Every shared-memory name this session and its descendants create carries our pid as its
# family (plait._ipc.shm reads this when it names something; children inherit it).
os.environ["PLAIT_SHM_FAMILY"] = str(os.getpid())

from plait._ipc.shm import owner_of  # (after the family is set)

faulthandler.enable()

HARD_LIMIT_S = float(os.environ.get("PLAIT_TEST_HARD_LIMIT", "180"))
_running: list[tuple[str, float]] = []  # (nodeid, monotonic start) of the test running now


def _hard_limit_watchdog() -> None:
    """End the run, loudly, when one test outlives pytest-timeout by far (see the doc)."""
    while True:
        time.sleep(5.0)
        if not _running:
            continue
        nodeid, started = _running[-1]
        if time.monotonic() - started > HARD_LIMIT_S:
            sys.stderr.write(
                f"\n\n*** {nodeid} has run for more than {HARD_LIMIT_S:.0f} s and "
                "pytest-timeout could not stop it; every thread's stack follows, then the "
                "run ends (exit code 70) ***\n"
            )
            faulthandler.dump_traceback(sys.stderr, all_threads=True)
            sys.stderr.flush()
            os._exit(70)


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _running[:] = [(nodeid, time.monotonic())]


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    _running.clear()


if HARD_LIMIT_S > 0:
    threading.Thread(target=_hard_limit_watchdog, name="conftest-hard-limit", daemon=True).start()

CHILD_GRACE_S = 2.0
SHM_DIR = Path("/dev/shm")
SHM_PREFIXES = ("plait", "/plait", "sem.plait")
SHM_GRACE_S = 1.0
_HELPER_MARKERS = (
    "multiprocessing.forkserver",
    "multiprocessing.resource_tracker",
    "multiprocessing.semaphore_tracker",
)


def _is_helper(proc: psutil.Process, me: int) -> bool:
    """The fork server or the resource tracker: a direct child whose command line names
    them. A process the fork server forked carries the same command line but is a
    grandchild, so it counts as a leftover."""
    try:
        if proc.ppid() != me:
            return False
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return True  # gone (or going) already
    return any(marker in cmdline for marker in _HELPER_MARKERS)


def _live_children() -> list[psutil.Process]:
    """Children of this process (recursively) that are alive and are not helpers."""
    me = psutil.Process()
    try:
        children = me.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found: list[psutil.Process] = []
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE or _is_helper(child, me.pid):
                continue
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        found.append(child)
    return found


def _still_alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} {' '.join(proc.cmdline())[:160]!r} ({proc.status()})"
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return f"pid {proc.pid} (gone)"


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """Fail a test that leaves a child process alive (it is killed afterwards)."""
    yield
    # Warm process-strand workers outlive their strands by design (plait.pool._warm):
    # stop them (busy ones are killed), so that only what a test leaked counts.
    warm = sys.modules.get("plait.pool._warm")
    if warm is not None:
        warm.shutdown_warm_workers(timeout=CHILD_GRACE_S)
    leftovers = _live_children()
    if not leftovers:
        return
    _gone, alive = psutil.wait_procs(leftovers, timeout=CHILD_GRACE_S)
    alive = [p for p in alive if _still_alive(p)]
    if not alive:
        return
    described = [_describe(p) for p in alive]
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=CHILD_GRACE_S)
    pytest.fail(
        f"test left child processes alive after {CHILD_GRACE_S} s:\n  " + "\n  ".join(described),
        pytrace=False,
    )


def _plait_shm_entries() -> set[str]:
    """plait's shared-memory segments and named semaphores (``sem.plait...``)."""
    try:
        return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(SHM_PREFIXES)}
    except OSError:  # no /dev/shm on this platform
        return set()


def _in_use(names: set[str]) -> set[str]:
    """Those of ``names`` that another live process maps: owned by another test session
    running on this machine at the same time. This process's own mappings do not count."""
    used: set[str] = set()
    me = str(os.getpid())
    for proc_dir in Path("/proc").glob("[0-9]*"):
        if proc_dir.name == me:
            continue
        try:
            maps = (proc_dir / "maps").read_text()
        except OSError:
            continue
        used.update(name for name in names if name in maps)
        if used == names:
            break
    return used


def _sync_home(name: str) -> int | None:
    """The pid in a shared primitive's name (``[sem.]plait_sync_<kind>_<pid>_...``)."""
    parts = name.removeprefix("sem.").split("_")
    if len(parts) > 3 and parts[1] == "sync" and parts[3].isdigit():
        return int(parts[3])
    return None


def _is_descendant(pid: int, ancestor: int) -> bool:
    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.Error:
        return False


@pytest.fixture(autouse=True, scope="session")
def _no_leaked_shared_memory() -> Iterator[None]:
    """Fail the session if it leaves new ``plait*`` entries of its own in /dev/shm.

    An owner-tagged name is ours when its family is this session's pid (strict: even if a
    live process still maps it). A name of a shared primitive (``plait_sync_<kind>_<pid>_``)
    is ours when that pid is this process or a live descendant; when that pid is gone,
    unless a live process of another session maps it. Any other name is not ours (plait
    names everything it creates one of these two ways)."""
    family = os.getpid()
    before = _plait_shm_entries()
    yield
    # Shared objects that are only garbage now (in reference cycles: frames, tracebacks)
    # release their names in their finalizers; run those before looking.
    gc.collect()
    deadline = time.monotonic() + SHM_GRACE_S
    while True:
        leaked = set()
        untagged = set()
        for name in _plait_shm_entries() - before:
            owner = owner_of(name)
            if owner is not None:
                if owner[1] == family:
                    leaked.add(name)
                continue
            home = _sync_home(name)
            if home is None:
                continue
            if home == family or _is_descendant(home, family):
                leaked.add(name)
            elif not psutil.pid_exists(home):
                untagged.add(name)
        if untagged:
            leaked |= untagged - _in_use(untagged)
        if not leaked or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if leaked:
        pytest.fail(
            f"/dev/shm entries leaked by the test session: {sorted(leaked)}",
            pytrace=False,
        )


_exit_status = 0
THREAD_GRACE_S = 5.0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit instead of hanging when a test left a non-daemon thread behind."""
    deadline = time.monotonic() + THREAD_GRACE_S
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if not stuck:
        return
    names = ", ".join(t.name for t in stuck)
    sys.stderr.write(
        f"\nconftest: {len(stuck)} non-daemon thread(s) still alive after the session "
        f"({names}); they would hang interpreter exit. Stacks:\n"
    )
    sys.stderr.flush()
    faulthandler.dump_traceback(all_threads=True)
    sys.stdout.flush()
    os._exit(_exit_status or 1)


def pytest_report_header() -> str:
    return f"plait test guards: child processes checked after each test (pid {os.getpid()})"
