"""The GIL (seed S15): threads do not speed up pure-Python CPU work; processes do.

The same CPU-bound function runs twice: one after the other, in two threads, and in two
processes. On a GIL build the threads take about as long as the sequential run; two
processes take about half as long on two idle cores (plus start-up). On a free-threaded
build the threads speed up too.
"""

from __future__ import annotations

import os
import sys
import time

from plait import Process, Thread, gil_enabled
from plait.tour._framework import Scene

__all__ = ["SCENES"]

TARGET_SECONDS = 0.5  # one unit of work, calibrated on this machine


def burn(n: int) -> int:
    """Pure-Python CPU work: holds the GIL the whole time."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def _calibrate() -> int:
    n = 200_000
    while True:
        t0 = time.perf_counter()
        burn(n)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.05:
            return max(1, int(n * TARGET_SECONDS / elapsed))
        n *= 4


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def _run_two(kind: str, n: int) -> float:
    workers: list[Thread] | list[Process]
    if kind == "threads":
        workers = [Thread(target=burn, args=(n,)) for _ in range(2)]
    else:
        workers = [Process(target=burn, args=(n,)) for _ in range(2)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - t0


def _gil() -> None:
    cores = _usable_cores()
    gil = "on" if gil_enabled() else "off"
    print(f"Python {sys.version.split()[0]}, GIL {gil}, {cores} usable core(s)")
    load = _load_average()
    if load is not None:
        busy = " - busy: other work competes for the cores" if load >= cores * 0.5 else ""
        print(f"load average (1 min): {load:.1f}{busy}")
    n = _calibrate()
    print(f"one unit of work: burn({n:,}) ~ {TARGET_SECONDS} s here\n")
    # Start the process machinery once so the timing shows the work, not the first start.
    _run_two("processes", 1)

    t0 = time.perf_counter()
    burn(n)
    burn(n)
    sequential = time.perf_counter() - t0
    print(f"  2 units, one after the other : {sequential:.2f} s  (speed-up vs this line)")
    threads = _run_two("threads", n)
    print(f"  2 units in 2 threads         : {threads:.2f} s  -> {sequential / threads:.2f}x")
    processes = _run_two("processes", n)
    print(f"  2 units in 2 processes       : {processes:.2f} s  -> {sequential / processes:.2f}x")

    print()
    if gil_enabled():
        print("threads: no speed-up - only one thread holds the GIL at a time.")
    else:
        print("threads: free-threaded build, so threads run Python code in parallel.")
    if cores < 2:
        print("processes: only one usable core here, so they cannot run in parallel either.")
    else:
        print("processes: each has its own interpreter and GIL, so both cores work at once")
        print("(start-up and a busy machine eat into the ideal 2x).")


SCENES: list[Scene] = [
    Scene(
        name="gil-cpu-work",
        title="the same CPU work in 2 threads and in 2 processes",
        shows="the GIL: threads do not speed up pure-Python CPU work, processes do",
        run=_gil,
        seed="S15",
    ),
]
