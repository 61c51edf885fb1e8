"""The GIL (seed S15): threads do not speed up pure-Python CPU work; processes can.

The same CPU-bound function runs twice: one after the other, in two threads, and in two
processes. Every worker reports how much CPU time it got, so the scene can say not only
how long each way took but why: with the GIL the two threads keep about one core busy
between them (they take turns), two processes keep two busy -- when the machine has two
to give. On a busy Linux machine it may not: with autogroup the kernel shares the CPU
between sessions, so all of a program's processes together get one session's share.

Honest under noise: the unit of work is sized from a calibration so that it dwarfs the
process start-up (measured first, and printed); the three ways run interleaved for
:data:`ROUNDS` rounds and each line shows its fastest round (other programs can only slow
a run down); and every conclusion is computed from the numbers by
:func:`gil_conclusions`, including the case where they contradict the expectation.
"""

from __future__ import annotations

import statistics
import sys
import textwrap
import time
from dataclasses import dataclass

from plait import Process, Thread, gil_enabled
from plait.tour._framework import Scene
from plait.tour._verdict import (
    autogroup_enabled,
    busy_machine,
    compare,
    describe_ratio,
    load_average,
    usable_cores,
)

__all__ = ["SCENES", "GilRun", "Measured", "burn", "gil_conclusions"]

TARGET_SECONDS = 0.2  # one unit of work at least, in CPU time on this machine
STARTUP_FACTOR = 15  # ... and at least this many process start-ups
MAX_UNIT_SECONDS = 0.3  # a very slow start-up cannot make the scene run for minutes
ROUNDS = 3
STARTUP_SAMPLES = 5
FULL_CORE = 0.8  # a run that kept less than 80% of its ideal cores busy was crowded out


def burn(n: int) -> int:
    """Pure-Python CPU work: holds the GIL the whole time."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def timed_burn(n: int) -> float:
    """``burn(n)`` in a process; returns the CPU seconds this process spent on it."""
    c0 = time.process_time()
    burn(n)
    return time.process_time() - c0


@dataclass(frozen=True)
class GilRun:
    """One way of doing the two units: its wall time and the CPU time its workers got."""

    wall: float
    cpu: float

    @property
    def cores_busy(self) -> float:
        """CPU seconds per wall second: how many cores the run kept busy on average."""
        return self.cpu / self.wall if self.wall > 0 else 0.0


@dataclass(frozen=True)
class Measured:
    """Everything the GIL scene measured; :func:`gil_conclusions` reads only this."""

    gil: bool
    cores: int
    load: float | None
    startup: float  # seconds: start a process that does nothing, and join it
    sequential: GilRun
    threads: GilRun
    processes: GilRun
    autogroup: bool | None = None  # Linux shares CPU per session (see autogroup_enabled)


def _calibrate(startup: float) -> int:
    """The ``n`` for which ``burn(n)`` takes one unit of CPU time here."""
    target = min(MAX_UNIT_SECONDS, max(TARGET_SECONDS, STARTUP_FACTOR * startup))
    n = 100_000
    while True:
        c0 = time.thread_time()
        burn(n)
        elapsed = time.thread_time() - c0
        if elapsed > 0.05:
            return max(1, int(n * target / elapsed))
        n *= 4


def _startup() -> float:
    """Median seconds to start a process that does nothing and join it (also warms up)."""
    samples = []
    for _ in range(STARTUP_SAMPLES):
        t0 = time.perf_counter()
        p = Process(target=int)
        p.start()
        p.join()
        samples.append(time.perf_counter() - t0)
        p.close()
    return statistics.median(samples)


def _sequential(n: int) -> GilRun:
    t0, c0 = time.perf_counter(), time.thread_time()
    burn(n)
    burn(n)
    return GilRun(time.perf_counter() - t0, time.thread_time() - c0)


def _threads(n: int) -> GilRun:
    cpu: list[float] = []

    def work() -> None:
        c0 = time.thread_time()
        burn(n)
        cpu.append(time.thread_time() - c0)

    workers = [Thread(target=work) for _ in range(2)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return GilRun(time.perf_counter() - t0, sum(cpu))


def _processes(n: int) -> GilRun:
    workers = [Process(target=timed_burn, args=(n,)) for _ in range(2)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    cpu = sum(w.result() for w in workers)
    for w in workers:
        w.close()
    return GilRun(wall, cpu)


def _fastest(runs: list[GilRun]) -> GilRun:
    return min(runs, key=lambda r: r.wall)


def measure() -> tuple[Measured, int]:
    """Run the scene's measurements; return them and the unit of work used."""
    cores = usable_cores()
    load = load_average()
    startup = _startup()
    n = _calibrate(startup)
    runs: dict[str, list[GilRun]] = {"sequential": [], "threads": [], "processes": []}
    for _ in range(ROUNDS):
        runs["sequential"].append(_sequential(n))
        runs["threads"].append(_threads(n))
        runs["processes"].append(_processes(n))
    later = load_average()
    if load is not None and later is not None:
        load = max(load, later)
    return (
        Measured(
            gil=gil_enabled(),
            cores=cores,
            load=load,
            startup=startup,
            sequential=_fastest(runs["sequential"]),
            threads=_fastest(runs["threads"]),
            processes=_fastest(runs["processes"]),
            autogroup=autogroup_enabled(),
        ),
        n,
    )


def _crowded(m: Measured) -> list[str]:
    """The runs that got clearly less CPU than they could use: other programs took it."""
    ideal = {
        "the sequential run": (m.sequential, 1.0),
        "the threads": (m.threads, 1.0 if m.gil else float(min(2, m.cores))),
        "the processes": (m.processes, float(min(2, m.cores))),
    }
    return [
        f"{name} kept {run.cores_busy:.2f} of {want:g} core(s) busy"
        for name, (run, want) in ideal.items()
        if run.cores_busy < FULL_CORE * want
    ]


def _session_share(m: Measured) -> str | None:
    """The autogroup explanation, when the numbers fit it: two processes got no more CPU
    than the one sequential run did."""
    if not m.autogroup or m.cores < 2 or m.processes.cores_busy > 1.2 * m.sequential.cores_busy:
        return None
    return (
        "this kernel shares the CPU between sessions, not processes (autogroup): while "
        "other sessions are busy, all of this program's processes together get one "
        f"session's share -- the sequential run got {m.sequential.cores_busy:.2f} cores, "
        f"the two processes {m.processes.cores_busy:.2f} together"
    )


def gil_conclusions(m: Measured) -> list[str]:
    """What the measurements in ``m`` show, in words; the text follows the numbers."""
    lines: list[str] = []
    crowded = _crowded(m)
    load = f"load average {m.load:.1f}" if m.load is not None else "no load average here"

    r_threads = m.sequential.wall / m.threads.wall
    said = describe_ratio(r_threads, "sequential")
    busy = f"together they kept {m.threads.cores_busy:.2f} cores busy"
    if m.gil:
        if compare(r_threads) == "faster":
            seq_busy, thr_busy = m.sequential.cores_busy, m.threads.cores_busy
            why = (
                f"the sequential run got less CPU ({seq_busy:.2f} cores busy) than the "
                f"threads ({thr_busy:.2f}): other programs slowed it down ({load})"
                if seq_busy < thr_busy
                else "no cause shows in these numbers"
            )
            lines.append(
                f"threads: {said}, which the GIL does not allow: {why}; rerun on a quiet machine."
            )
        else:
            lines.append(
                f"threads: {said}; {busy} -- the GIL lets only one thread run Python "
                "code at a time, so the two took turns."
            )
    elif compare(r_threads) == "faster":
        lines.append(f"threads: {said}; {busy} -- no GIL on this build, they ran in parallel.")
    else:
        why = "only 1 usable core" if m.cores < 2 else f"other programs competed ({load})"
        lines.append(f"threads: {said} although this build has no GIL; {busy} ({why}).")

    r_procs = m.sequential.wall / m.processes.wall
    said = describe_ratio(r_procs, "sequential")
    busy = f"together they kept {m.processes.cores_busy:.2f} cores busy"
    startup_ms = m.startup * 1e3
    startup_share = m.startup / m.processes.wall  # the two start at (nearly) the same time
    if compare(r_procs) == "faster":
        lines.append(
            f"processes: {said}; {busy} -- each process has its own interpreter and "
            "GIL, so they ran at the same time."
        )
        if r_procs < 1.8 and m.cores >= 2:
            shortfall = [f"start-up took {startup_ms:.0f} ms, {startup_share:.0%} of the run"]
            share = _session_share(m)
            if share is not None:
                shortfall.append(share)
            elif m.processes.cores_busy < 1.8:
                shortfall.append(
                    f"they kept {m.processes.cores_busy:.2f} of 2 cores busy: other "
                    f"programs share the cores ({load})"
                )
            lines.append(f"(below the ideal 2x: {'; '.join(shortfall)}.)")
    else:
        causes = []
        if m.cores < 2:
            causes.append("only 1 usable core, so the two processes had to take turns")
        elif m.processes.cores_busy < 1.5:
            causes.append(f"{busy}: other programs were using the rest ({load})")
            share = _session_share(m)
            if share is not None:
                causes.append(share)
        if startup_share > 0.1:
            causes.append(
                f"start-up took {startup_ms:.0f} ms per process, {startup_share:.0%} of the run"
            )
        if not causes:
            causes.append("no cause shows in these numbers; rerun on a quiet machine")
        lines.append(f"processes: on this machine they did not beat sequential ({r_procs:.2f}x):")
        lines.append("  " + "; ".join(causes) + ".")
    if crowded:
        lines.append(
            "note: other programs took CPU time from this measurement ("
            + "; ".join(crowded)
            + f"), so the ratios above are skewed; {load} on {m.cores} core(s)."
        )
    return lines


def _gil() -> None:
    m, n = measure()
    gil = "on" if m.gil else "off"
    print(f"Python {sys.version.split()[0]}, GIL {gil}, {m.cores} usable core(s)")
    if m.load is not None:
        busy = ""
        if busy_machine(m.load, m.cores):
            busy = " - busy: other programs compete for the cores"
        print(f"load average (1 min): {m.load:.1f}{busy}")
    print(f"starting and joining a process that does nothing: {m.startup * 1e3:.0f} ms here")
    unit = m.sequential.cpu / 2
    print(
        f"one unit of work: burn({n:,}), {unit:.2f} s of CPU - "
        f"{unit / m.startup:.0f}x that start-up\n"
    )
    print(f"fastest of {ROUNDS} rounds each, run interleaved:       wall   speed-up  cores busy")
    for label, run in (
        ("2 units, one after the other", m.sequential),
        ("2 units in 2 threads", m.threads),
        ("2 units in 2 processes", m.processes),
    ):
        ratio = m.sequential.wall / run.wall
        print(f"  {label:<45} {run.wall:5.2f} s   {ratio:5.2f}x   {run.cores_busy:5.2f}")
    print()
    for line in gil_conclusions(m):
        print(textwrap.fill(line, width=92, subsequent_indent="  "))


SCENES: list[Scene] = [
    Scene(
        name="gil-cpu-work",
        title="the same CPU work in 2 threads and in 2 processes",
        shows="the GIL: threads do not speed up pure-Python CPU work, processes can",
        run=_gil,
        seed="S15",
    ),
]
