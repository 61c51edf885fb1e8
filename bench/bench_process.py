"""Process strands (issue 2, point 8): what one call in a fresh child process costs.

    python bench/bench_process.py [--quick]

One round trip = start a child, run ``os.getpid()`` in it, have the result (and the exit)
back in the parent. Every implementation uses the fork server (plait's default), so the
figures compare the machinery, not the start method:

* ``plait start_process_call`` -- the isolated process strand of
  ``TaskGroup.spawn(on="process", isolated=True)`` (a plain ``on="process"`` strand runs on a
  warm worker: ``bench_process_strand.py``);
* ``plait.Process`` -- start, join, ``result()``;
* ``multiprocessing.Process`` -- start + join (no result channel at all);
* ``ProcessPoolExecutor`` cold -- a new one-worker executor per call (start + shutdown);
* ``ProcessPoolExecutor`` warm -- ``submit().result()`` on a running pool: no process start,
  only the IPC, shown so the price of a fresh process per call is visible.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from plait._ipc.context import get_context
from plait._processes import Process, start_process_call

# Every child re-imports this module as its ``__main__`` (multiprocessing does, under the
# fork server and spawn): its top level imports only what the fork server has preloaded, so
# the figures are the machinery's, not this script's imports. The harness loads in main().

COLD = "round trip, a new process each"
WARM = "round trip vs a warm pool"
POOL_COLD = "ProcessPoolExecutor (new each)"
POOL_WARM = "ProcessPoolExecutor.submit (warm)"


def main() -> None:
    from _harness import Bench

    bench = Bench.from_argv("process", description=__doc__)
    repeat = bench.scale(15, quick=3)
    number = bench.scale(10, quick=4)
    ctx = get_context("forkserver")  # plait's context: the fork server preloads plait
    mp_ctx = multiprocessing.get_context("forkserver")

    def plait_call() -> None:
        call = start_process_call(os.getpid)
        call.future.result()

    def plait_process() -> None:
        p = Process(target=os.getpid)
        p.start()
        p.join()
        p.result()
        p.close()

    def mp_process() -> None:
        p = mp_ctx.Process(target=os.getpid)
        p.start()
        p.join()
        p.close()

    def pool_cold() -> None:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            pool.submit(os.getpid).result()

    cold = [
        ("plait start_process_call", plait_call),
        ("plait.Process start+join+result", plait_process),
        ("multiprocessing.Process start+join", mp_process),
        (POOL_COLD, pool_cold),
    ]
    print(f"{COLD} ({repeat} rounds x {number} calls each, interleaved):")
    cold_samples = _interleaved(cold, repeat, number)
    for impl, got in cold_samples.items():
        bench.record(COLD, impl, _median(got), "s/call", baseline=POOL_COLD, samples=got)

    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        pool.submit(os.getpid).result()

        def pool_warm() -> None:
            for _ in range(10):  # so one sample is not just timer noise
                pool.submit(os.getpid).result()

        print(f"{WARM}:")
        warm = _interleaved(
            [(POOL_WARM, pool_warm), ("plait start_process_call", plait_call)], repeat, number
        )
    warm[POOL_WARM] = [v / 10 for v in warm[POOL_WARM]]
    bench.record(WARM, POOL_WARM, _median(warm[POOL_WARM]), "s/call", samples=warm[POOL_WARM])
    got = warm["plait start_process_call"]
    bench.record(
        WARM,
        "plait start_process_call",
        _median(got),
        "s/call",
        baseline=POOL_WARM,
        samples=got,
    )
    mp_ratio = _median(cold_samples["plait start_process_call"]) / _median(
        cold_samples["multiprocessing.Process start+join"]
    )
    bench.note(
        f"plait start_process_call = {mp_ratio:.2f}x multiprocessing.Process start+join on "
        "the same fork server (which brings no result back and arms no lifeline)."
    )
    bench.note(
        "All on the fork server. An isolated process strand (spawn(on='process', "
        "isolated=True), which start_process_call is) starts a fresh child per call "
        "(isolation, a lifeline, its own exit code); a plain on='process' strand runs on a "
        "warm worker and pays only the IPC (bench_process_strand.py)."
    )
    bench.save()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _interleaved(
    impls: list[tuple[str, Callable[[], None]]], rounds: int, number: int
) -> dict[str, list[float]]:
    """Seconds per call of each impl, one sample per round, the impls taking turns in
    every round: a machine that gets busier or quieter moves every impl alike."""
    from _harness import samples

    out: dict[str, list[float]] = {impl: [] for impl, _ in impls}
    for _impl, fn in impls:  # warm-up: the fork server, imports, the pool
        samples(fn, repeat=1, number=2, warmup=0)
    for _ in range(rounds):
        for impl, fn in impls:
            out[impl].extend(samples(fn, repeat=1, number=number, warmup=0))
    return out


if __name__ == "__main__":
    main()
