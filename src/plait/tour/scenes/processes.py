"""Processes (seed S10): the seed's ``Process`` programs, direct and subclassed.

Each child sleeps 0.2 s instead of the seed's 1 s. Children start from plait's context
(forkserver: never a fork of a process with threads).
"""

from __future__ import annotations

import os
import sys
import time

import plait
from plait import Process
from plait.tour._framework import Scene

__all__ = ["SCENES"]

NAP = 0.2
COUNT = 3


def _say(line: str) -> None:
    """One write per line: three children share the terminal."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def f(name: str) -> tuple[float, float]:
    """The seed's target: say hello with the time, then sleep. Returns when it slept (on
    the wall clock, which every process shares) so the parent can tell whether the naps
    overlapped."""
    _say(f"  hello {name} (pid {os.getpid()}) {time.strftime('%X')}")
    began = time.time()
    time.sleep(NAP)
    return began, time.time()


def naps_verdict(naps: list[tuple[float, float]], t0: float, elapsed: float) -> list[str]:
    """What the children's nap times (wall clock) show, in words; ``t0`` is when the
    parent started the first child, ``elapsed`` how long until the last was joined."""
    together = min(end for _, end in naps) - max(began for began, _ in naps)
    startup = min(began for began, _ in naps) - t0
    lines = [
        f"the {len(naps)} naps overlapped: all {len(naps)} children were asleep together "
        f"for {together:.2f} s"
        if together > 0
        else f"the {len(naps)} naps did NOT all overlap (no moment when all slept at once)",
        f"of the {elapsed:.2f} s, {startup:.2f} s passed before the first child began "
        f"(process start-up); sequential naps alone would take {len(naps) * NAP:.1f} s",
    ]
    return lines


def _fork_server_running() -> bool | None:
    """Whether multiprocessing's fork server is up already (None: cannot tell here)."""
    try:
        from multiprocessing import forkserver

        return forkserver._forkserver._forkserver_pid is not None  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return None


class MyProcess(Process):
    """The seed's subclassed form: ``run()`` overridden."""

    def run(self) -> tuple[float, float]:  # type: ignore[override]  # plait keeps it
        _say(f"  hello {self.name} (pid {os.getpid()}) {time.strftime('%X')}")
        began = time.time()
        time.sleep(NAP)
        return began, time.time()


def _direct() -> None:
    print(f"{COUNT} x Process(target=f, args=('alvin:i',)), started, then joined:")
    server_was_up = _fork_server_running()
    t0, wall0 = time.perf_counter(), time.time()
    processes = [Process(target=f, args=(f"alvin:{i}",)) for i in range(COUNT)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - t0
    print("  end")
    codes = [p.exitcode for p in processes]
    print(f"\nmeasured: {COUNT} children that each sleep {NAP} s finished in {elapsed:.2f} s")
    for line in naps_verdict([p.result() for p in processes], wall0, elapsed):
        print(line)
    _first_note(server_was_up)
    print(f"exit codes: {codes}")


def _subclassed() -> None:
    print(f"{COUNT} x MyProcess(), a Process subclass that overrides run():")
    server_was_up = _fork_server_running()
    t0, wall0 = time.perf_counter(), time.time()
    processes = [MyProcess() for _ in range(COUNT)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - t0
    print("  end")
    codes = [p.exitcode for p in processes]
    print(f"\nmeasured: {elapsed:.2f} s for {COUNT} children; exit codes {codes}")
    names, pids = {p.name for p in processes}, {p.pid for p in processes}
    print(f"{len(names)} different names and {len(pids)} different pids for {COUNT} children")
    for line in naps_verdict([p.result() for p in processes], wall0, elapsed):
        print(line)
    _first_note(server_was_up)


def _first_note(server_was_up: bool | None) -> None:
    if server_was_up is False:
        print("(these were this program's first processes: the start-up includes starting")
        print(" plait's fork server, which later processes reuse)")


def square(x: int) -> int:
    """Work for a process strand: its return value comes back to the parent."""
    return x * x


def check_positive(x: int) -> int:
    """Fails in the child; the parent sees the error with the child's traceback."""
    if x <= 0:
        raise ValueError(f"{x} is not positive (raised in pid {os.getpid()})")
    return x


def _results() -> None:
    print("the seed's processes return nothing; plait's process strands return values:")
    t0 = time.perf_counter()
    with plait.TaskGroup() as tg:
        tasks = [tg.spawn(square, i, on="process") for i in range(1, 4)]
    print(f"  results {[t.result() for t in tasks]} in {time.perf_counter() - t0:.2f} s")

    print("\nand an exception in a child comes back with the child's traceback:")
    try:
        with plait.TaskGroup() as tg:
            tg.spawn(check_positive, -1, on="process")
    except* ValueError as group:
        error = group.exceptions[0]
        print(f"  {type(error).__name__}: {error}")
        cause = error.__cause__
        if cause is not None:
            lines = [ln for ln in str(cause).splitlines() if ln.strip() not in ("", '"""')]
            print("  its __cause__, the remote traceback, ends with:")
            for line in lines[-3:]:
                print(f"    {line}")


SCENES: list[Scene] = [
    Scene(
        name="processes-direct",
        title="Process(target=f, args=...): three children at once",
        shows="each Process is a separate interpreter; children sleep at the same time",
        run=_direct,
        seed="S10",
    ),
    Scene(
        name="processes-subclass",
        title="a Process subclass that overrides run()",
        shows="the subclassed form works the same; each child has its own name and pid",
        run=_subclassed,
        seed="S10",
    ),
    Scene(
        name="processes-results",
        title="process strands return values and raise with the remote traceback",
        shows="a TaskGroup runs functions in processes; results and errors come back",
        run=_results,
        seed="S10",
    ),
]
