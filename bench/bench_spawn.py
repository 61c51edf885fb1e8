"""Spawn as users write it (issue 12): 100,000 coroutine strands that each yield once.

    python bench/bench_spawn.py [--quick]

plait.TaskGroup under ``plait.run``, its children on ``plait.async_sleep(0)`` and on
``asyncio.sleep(0)``, vs asyncio.TaskGroup under ``asyncio.run``, its children on
``asyncio.sleep(0)`` (target >= 1x in both forms). Each figure comes from fresh
interpreters (bench_strands.py's ``--child``), round-robin, so a burst of load on the
shared machine lands on all of them.
"""

from __future__ import annotations

import statistics

from _harness import Bench
from bench_strands import run_child


def bench_spawn_yielding(bench: Bench) -> None:
    """Issue 12's forms: each child yields once; plait's children on plait.async_sleep(0)
    and on asyncio.sleep(0), under plait.run, vs asyncio.TaskGroup's on asyncio.sleep(0)
    under asyncio.run. Round-robin over fresh children, as bench_spawn."""
    n = bench.scale(100_000, 20_000)
    rounds = bench.scale(3, 2)
    forms = [
        ("asyncio.TaskGroup: asyncio.sleep(0)", "asyncio.TaskGroup", "asyncio.sleep(0)"),
        ("plait.TaskGroup: plait.async_sleep(0)", "plait.TaskGroup", "plait.async_sleep(0)"),
        ("plait.TaskGroup: asyncio.sleep(0)", "plait.TaskGroup", "asyncio.sleep(0)"),
    ]
    case = f"spawn+join {n:,} coroutines yielding once (asyncio loop)"
    seconds: dict[str, list[float]] = {label: [] for label, _, _ in forms}
    for _ in range(rounds):
        for label, impl, body in forms:
            seconds[label] += run_child("spawn", impl, "asyncio", str(n), "2", body)
    base = forms[0][0]
    for label, _, _ in forms:
        plait_form = label != base
        bench.record(
            case,
            label,
            n / statistics.median(seconds[label]),
            "tasks/s",
            baseline=base,
            target=f">= 1x {base}" if plait_form else None,
            target_ratio=1.0 if plait_form else None,
            samples=seconds[label],
        )


def main() -> None:
    bench = Bench.from_argv("spawn", description=__doc__)
    bench_spawn_yielding(bench)
    bench.note(
        "Each figure is n / median seconds of a run that spawns n coroutines in one group, "
        "each awaiting one sleep(0), and waits for them all; plait's under plait.run, "
        "asyncio's under asyncio.run; fresh interpreter per run."
    )
    bench.save()


if __name__ == "__main__":
    main()
