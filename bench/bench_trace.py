"""Tracing's cost (issue 15 point 1): the coroutine channel stream untraced, traced, and
untraced again after a trace ended, with asyncio.Queue as the peer, all in one run.

    python bench/bench_trace.py [--quick]

* traced / untraced: target >= 0.5x (plait.trace on, default capacity and flush interval,
  the trace written to a temporary folder; only the stream is timed, not the final write);
* a no-op instrument installed: what the kernel's hooks-active path costs by itself (the
  queue's C fast paths call the Python hooks for each put/get; a recorder alone takes its
  lane instead: one increment in the queue, sampled at each flush, and a coroutine getter's
  C park, unpark and the C wakes go straight into its ring, with no Python hook);
* untraced after a trace / untraced before any: the hooks are gone again (zero cost when
  off: the same one attribute check as before the trace package existed), target ~1.0x;
* plait untraced / asyncio.Queue: the figure BENCHMARKS.md's channels table has, so a
  change in the untraced path would show against its earlier same-run ratio.

Every figure is messages per second, the median of interleaved repeats (each repeat runs
the variants in turn, so a change in the machine's load lands on all of them alike).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import plait
from _harness import Bench


def stream(make: Callable[[], Any], plait_api: bool, n: int) -> float:
    """Messages per second of a producer -> consumer coroutine stream on one loop."""

    async def main() -> float:
        q = make()
        put = q.async_put if plait_api else q.put
        get = q.async_get if plait_api else q.get

        async def produce() -> None:
            for i in range(n):
                await put(i)

        async def consume() -> None:
            for _ in range(n):
                await get()

        t0 = time.perf_counter()
        await asyncio.gather(consume(), produce())
        return n / (time.perf_counter() - t0)

    return asyncio.run(main())


def traced(make: Callable[[], Any], n: int, folder: str, dropped: list[int]) -> float:
    """The plait stream inside ``plait.trace``: only the stream itself is timed."""
    session = plait.trace(os.path.join(folder, "bench.json"))
    with session:
        rate = stream(make, True, n)
    dropped.append(session.dropped)
    return rate


def noop_instrument(make: Callable[[], Any], n: int) -> float:
    """The stream with an instrument installed that records nothing: what any instrument
    costs the queue (its hooks-active path), the ceiling for a traced run."""
    instrument = plait.Instrument()
    plait.add_instrument(instrument)
    try:
        return stream(make, True, n)
    finally:
        plait.remove_instrument(instrument)


def main() -> None:
    bench = Bench.from_argv("trace", description=__doc__)
    n = bench.scale(100_000, quick=20_000)
    repeat = bench.scale(7, quick=3)
    with tempfile.TemporaryDirectory(prefix="plait-bench-trace-") as folder:
        for label, make in (
            ("coroutine stream, unbounded", plait.Queue),
            ("coroutine stream, maxsize=16", lambda: plait.Queue(16)),
        ):
            peer = asyncio.Queue if "unbounded" in label else (lambda: asyncio.Queue(16))
            figures: dict[str, list[float]] = {
                "untraced (before any trace)": [],
                "traced": [],
                "no-op instrument": [],
                "untraced (after a trace)": [],
                "asyncio.Queue": [],
            }
            dropped: list[int] = []
            stream(make, True, n // 10)  # warm-up
            for _ in range(repeat):
                figures["untraced (before any trace)"].append(stream(make, True, n))
                figures["traced"].append(traced(make, n, folder, dropped))
                figures["no-op instrument"].append(noop_instrument(make, n))
                figures["untraced (after a trace)"].append(stream(make, True, n))
                figures["asyncio.Queue"].append(stream(peer, False, n))
            base = "untraced (before any trace)"
            own = statistics.median(figures["traced"]) / statistics.median(
                figures["no-op instrument"]
            )
            bench.note(
                f"{label}: traced / no-op instrument = {own:.2f}x (the recorder, through its "
                f"lane, against Python hooks that record nothing)"
            )
            for impl, values in figures.items():
                target: dict[str, Any] = {}
                if impl == "traced":
                    target = {"target": ">= 0.5x untraced", "target_ratio": 0.5}
                elif impl == "untraced (after a trace)":
                    target = {"target": "~1.0x (zero cost off)"}
                spread = f"range {min(values) / 1e3:.0f}k..{max(values) / 1e3:.0f}k msg/s"
                if impl == "traced":
                    spread += f"; events dropped per run: {max(dropped)}"
                bench.record(label, impl, statistics.median(values), "msg/s", baseline=base,
                             better="higher", note=spread, **target)  # fmt: skip
    bench.note(f"load while measuring: {os.getloadavg()[0]:.1f} (1-minute average)")
    bench.save()


if __name__ == "__main__":
    main()
