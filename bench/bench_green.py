"""Green strands (issue 14, point 4): plait's green strands against gevent, in one run.

    python bench/bench_green.py [--quick]

* spawn+join of N green strands that return at once: ``tg.spawn(fn, on="green")`` in a
  ``plait.TaskGroup`` vs ``gevent.spawn`` + ``gevent.joinall``;
* ping-pong between two green strands over two queues (round trips/s): ``plait.Queue``
  vs ``gevent.queue.Queue``;
* a stream from one green strand to another through one queue (items/s);
* RSS per parked green strand (N strands waiting on one event) vs gevent's greenlets.

Each library's figure comes from a fresh interpreter (``--child``), so one library's
imports and allocations never colour another's; the repeats of the two are interleaved.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from _harness import Bench

IMPLS = ["gevent", "plait"]


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _noop() -> int:
    return 1


def child(impl: str, case: str, n: int) -> float:
    """One figure for ``case`` in this fresh interpreter (seconds, or bytes per strand)."""
    if impl == "gevent":
        import gevent
        import gevent.event
        import gevent.queue

        def group(*bodies: Any) -> None:
            gevent.joinall([gevent.spawn(b) for b in bodies])

        def spawn_join() -> None:
            gevent.joinall([gevent.spawn(_noop) for _ in range(n)])

        queue_type: Any = gevent.queue.Queue
        event_type: Any = gevent.event.Event
    else:
        import plait

        def group(*bodies: Any) -> None:
            async def main() -> None:
                async with plait.TaskGroup() as tg:
                    for b in bodies:
                        tg.spawn(b, on="green")

            plait.run(main)

        def spawn_join() -> None:
            async def main() -> None:
                async with plait.TaskGroup() as tg:
                    for _ in range(n):
                        tg.spawn(_noop, on="green")

            plait.run(main)

        queue_type = plait.Queue
        event_type = plait.Event

    if case == "spawn":
        spawn_join()  # warm-up
        gc.collect()
        start = time.perf_counter()
        spawn_join()
        return time.perf_counter() - start
    if case == "pingpong":
        a, b = queue_type(), queue_type()

        def ping() -> None:
            for i in range(n):
                a.put(i)
                b.get()

        def pong() -> None:
            for _ in range(n):
                b.put(a.get())

        group(ping, pong)  # warm-up
        start = time.perf_counter()
        group(ping, pong)
        return time.perf_counter() - start
    if case == "stream":
        q = queue_type(maxsize=64)

        def produce() -> None:
            for i in range(n):
                q.put(i)

        def consume() -> None:
            for _ in range(n):
                q.get()

        group(produce, consume)
        start = time.perf_counter()
        group(produce, consume)
        return time.perf_counter() - start
    if case == "rss":
        ev = event_type()
        parked = [0]

        def wait() -> None:
            parked[0] += 1
            ev.wait()

        def release() -> None:
            while parked[0] < n:
                (gevent.sleep if impl == "gevent" else plait.sleep)(0.001)
            measured.append(_rss())
            ev.set()

        measured: list[int] = []
        group(_noop)  # warm-up: imports, the loop or hub, the first greenlet -- not per strand
        gc.collect()
        before = _rss()
        group(*([wait] * n), release)
        return (measured[0] - before) / n
    raise ValueError(case)


def _in_child(impl: str, case: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", impl, case, str(n)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    bench = Bench.from_argv("green", description=__doc__)
    repeat = 3 if bench.quick else 5
    cases = [
        ("spawn", bench.scale(100_000, quick=10_000), "spawn+join green strands", "strands/s"),
        ("pingpong", bench.scale(50_000, quick=5_000), "green ping-pong", "rt/s"),
        ("stream", bench.scale(200_000, quick=20_000), "green stream, maxsize=64", "items/s"),
        ("rss", bench.scale(20_000, quick=2_000), "RSS per parked green strand", "B"),
    ]
    for case, n, title, unit in cases:
        per: dict[str, list[float]] = {impl: [] for impl in IMPLS}
        for _ in range(1 if case == "rss" else repeat):
            for impl in IMPLS:
                per[impl].append(_in_child(impl, case, n))
        for impl in IMPLS:
            value = statistics.median(per[impl])
            if unit != "B":
                value = n / value
            bench.record(
                f"{title} (n={n:,})", impl, value, unit, baseline="gevent",
                target=">= 1x gevent" if unit != "B" else "<= gevent",
                target_ratio=1.0, samples=per[impl],
            )  # fmt: skip
    bench.note("Each figure from a fresh interpreter; plait on asyncio's default loop.")
    bench.save()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main()
