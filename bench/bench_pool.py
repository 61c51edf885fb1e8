"""Process pools (issue 5, point 8): plait.Pool against its peers, in the same run.

    python bench/bench_pool.py [--quick]

Cases (each peer with its defaults unless named):

* ``map, tiny tasks``: ``pool.map(f, range(N))`` with an identity ``f``, default chunking;
  baseline ``multiprocessing.Pool.map`` (the issue's target: plait >= 1x).
* ``imap_unordered, tiny tasks``: iterate ``imap_unordered(f, range(N))`` to the end with
  default options; baseline mpire's ``WorkerPool.imap_unordered`` (target >= 1x).
* ``Executor.map chunksize=1``: ``concurrent.futures``' default, for the record.
* ``warm no-op submit -> result``: one ``submit(noop).result()`` on a running pool
  (target <= 100 µs median).
* ``start-up to first result``: construct a 2-worker pool and get one result (target
  <= 50 ms without fork; plait uses its warm fork server).
* ``CPU efficiency``: 2 workers x 8 busy tasks of 50 ms each; seconds spent in tasks /
  (wall x workers), i.e. the share of each worker's time spent working (target >= 0.95).
* ``crash probe``: 10 tasks, one of which SIGKILLs its worker; how many of the 9 healthy
  results are delivered (target 9 of 9).

Task functions are imported from this module by name (``import bench_pool``), so that no
pool pays for pickling a ``__main__`` function by value.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Bench, samples

WORKERS = 2


def tiny(x: Any) -> Any:
    return x


def noop() -> None:
    return None


def burn(seconds: float) -> float:
    """Keep the CPU busy for ``seconds`` of wall time; return the seconds it was busy.

    Wall time, not CPU time: on a shared machine other processes take CPU from the task,
    and that is no fault of the pool. What the figure measures is how much of the time
    each worker spends inside tasks (the pool's gaps between tasks lower it).
    """
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(2000):
            pass
    return time.perf_counter() - start


def maybe_die(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return x


def _tasks() -> Any:
    import bench_pool  # the same functions, importable by name in any worker

    return bench_pool


def _median_rate(n: int, fn: Any, repeat: int) -> tuple[float, list[float]]:
    secs = samples(fn, repeat=repeat, warmup=1)
    return n / statistics.median(secs), [n / s for s in secs]


def _interleaved(n: int, first: Any, second: Any, repeat: int) -> tuple[list[float], list[float]]:
    """Rates of ``first`` and ``second`` measured in alternating rounds (after a warm-up)."""
    first()
    second()
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(n / samples(first, repeat=1, warmup=0)[0])
        b.append(n / samples(second, repeat=1, warmup=0)[0])
    return a, b


def bench_throughput(bench: Bench, t: Any) -> None:
    from mpire import WorkerPool

    from plait.pool import Pool

    n_map = bench.scale(1_000_000, quick=100_000)
    n_imap = bench.scale(200_000, quick=20_000)
    n_one = bench.scale(20_000, quick=2_000)
    repeat = bench.scale(5, quick=2)
    data = list(range(n_map))
    rounds = bench.scale(9, quick=3)
    case = f"map, {n_map:,} tiny tasks"
    # Both pools live side by side and their rounds alternate, so that a burst of load
    # on a shared machine lands on both rather than on whichever ran at that moment.
    with multiprocessing.Pool(WORKERS) as mp_pool, Pool(WORKERS) as pool:
        s_mp_map, s_plait_map = _interleaved(
            n_map,
            lambda: mp_pool.map(t.tiny, data),
            lambda: pool.map(t.tiny, data),
            rounds,
        )
        bench.record(
            case,
            "multiprocessing.Pool",
            statistics.median(s_mp_map),
            "tasks/s",
            baseline="multiprocessing.Pool",
            samples=s_mp_map,
        )
        bench.record(
            case,
            "plait.Pool",
            statistics.median(s_plait_map),
            "tasks/s",
            baseline="multiprocessing.Pool",
            target=">= 1x multiprocessing.Pool.map",
            target_ratio=1.0,
            samples=s_plait_map,
        )
        imap_mp, s_mp = _median_rate(
            n_imap, lambda: sum(1 for _ in mp_pool.imap_unordered(t.tiny, range(n_imap))), repeat
        )
        imap_plait, s_plait = _median_rate(
            n_imap, lambda: sum(1 for _ in pool.imap_unordered(t.tiny, range(n_imap))), repeat
        )
        one_plait, s_one = _median_rate(
            n_one, lambda: list(pool.map(t.tiny, range(n_one), chunksize=1)), repeat
        )
    with WorkerPool(WORKERS) as wp:
        imap_mpire, s_mpire = _median_rate(
            n_imap, lambda: sum(1 for _ in wp.imap_unordered(t.tiny, range(n_imap))), repeat
        )
    case = f"imap_unordered, {n_imap:,} tiny tasks"
    bench.record(case, "mpire", imap_mpire, "tasks/s", baseline="mpire", samples=s_mpire)
    bench.record(case, "multiprocessing.Pool", imap_mp, "tasks/s", baseline="mpire", samples=s_mp)
    bench.record(
        case,
        "plait.Pool",
        imap_plait,
        "tasks/s",
        baseline="mpire",
        target=">= 1x mpire",
        target_ratio=1.0,
        samples=s_plait,
    )
    case = f"Executor.map chunksize=1, {n_one:,} tasks"
    with ProcessPoolExecutor(WORKERS) as ex:
        rate, s = _median_rate(
            n_one, lambda: list(ex.map(t.tiny, range(n_one), chunksize=1)), repeat
        )
        bench.record(
            case, "ProcessPoolExecutor", rate, "tasks/s", baseline="ProcessPoolExecutor", samples=s
        )
    try:
        from loky import get_reusable_executor

        ex = get_reusable_executor(max_workers=WORKERS)
        rate, s = _median_rate(
            n_one, lambda: list(ex.map(t.tiny, range(n_one), chunksize=1)), repeat
        )
        bench.record(case, "loky", rate, "tasks/s", baseline="ProcessPoolExecutor", samples=s)
        ex.shutdown(wait=True, kill_workers=True)
    except ImportError:
        bench.note("loky not installed: its rows are missing")
    bench.record(
        case, "plait.Pool", one_plait, "tasks/s", baseline="ProcessPoolExecutor", samples=s_one
    )


def bench_latency(bench: Bench, t: Any) -> None:
    from plait.pool import Pool

    number = bench.scale(2000, quick=200)
    repeat = bench.scale(7, quick=3)
    case = "warm no-op submit -> result"

    def lat(fn: Any) -> tuple[float, list[float]]:
        s = samples(fn, repeat=repeat, number=number, warmup=1)
        return statistics.median(s), s

    with ProcessPoolExecutor(WORKERS) as ex:
        v, s = lat(lambda: ex.submit(t.noop).result())
        bench.record(
            case, "ProcessPoolExecutor", v, "s/op", baseline="ProcessPoolExecutor", samples=s
        )
    with multiprocessing.Pool(WORKERS) as mp_pool:
        v, s = lat(lambda: mp_pool.apply(t.noop))
        bench.record(
            case, "multiprocessing.Pool.apply", v, "s/op", baseline="ProcessPoolExecutor", samples=s
        )
    try:
        from loky import get_reusable_executor

        ex2 = get_reusable_executor(max_workers=WORKERS)
        v, s = lat(lambda: ex2.submit(t.noop).result())
        bench.record(case, "loky", v, "s/op", baseline="ProcessPoolExecutor", samples=s)
        ex2.shutdown(wait=True, kill_workers=True)
    except ImportError:
        pass
    with Pool(WORKERS) as pool:
        v, s = lat(lambda: pool.submit(t.noop).result())
        bench.record(
            case,
            "plait.Pool",
            v,
            "s/op",
            baseline="ProcessPoolExecutor",
            target="<= 100 µs",
            target_value=100e-6,
            samples=s,
        )


def _startup(make: Any, first: Any, close: Any, repeat: int) -> tuple[float, list[float]]:
    out = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        pool = make()
        first(pool)
        out.append(time.perf_counter() - t0)
        close(pool)
    out = out[1:]  # the first one pays for starting a fork server
    return statistics.median(out), out


def bench_startup(bench: Bench, t: Any) -> None:
    from plait.pool import Pool

    repeat = bench.scale(7, quick=3)
    case = "start-up to first result (2 workers)"
    v, s = _startup(
        lambda: multiprocessing.get_context("fork").Pool(WORKERS),
        lambda p: p.apply(t.noop),
        lambda p: (p.terminate(), p.join()),
        repeat,
    )
    bench.record(
        case,
        "multiprocessing.Pool (fork)",
        v,
        "s",
        baseline="multiprocessing.Pool (fork)",
        samples=s,
    )
    v, s = _startup(
        lambda: ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("forkserver")),
        lambda p: p.submit(t.noop).result(),
        lambda p: p.shutdown(wait=True),
        repeat,
    )
    bench.record(
        case,
        "ProcessPoolExecutor (forkserver)",
        v,
        "s",
        baseline="multiprocessing.Pool (fork)",
        samples=s,
    )
    try:
        from loky import get_reusable_executor

        v, s = _startup(
            lambda: get_reusable_executor(max_workers=WORKERS, kill_workers=True, reuse=False),
            lambda p: p.submit(t.noop).result(),
            lambda p: p.shutdown(wait=True, kill_workers=True),
            repeat,
        )
        bench.record(case, "loky", v, "s", baseline="multiprocessing.Pool (fork)", samples=s)
    except ImportError:
        pass
    v, s = _startup(
        lambda: Pool(WORKERS),
        lambda p: p.apply(t.noop),
        lambda p: (p.terminate(), p.join()),
        repeat,
    )
    bench.record(
        case,
        "plait.Pool (forkserver)",
        v,
        "s",
        baseline="multiprocessing.Pool (fork)",
        target="<= 50 ms",
        target_value=0.05,
        samples=s,
    )


def bench_efficiency(bench: Bench, t: Any) -> None:
    from plait.pool import Pool

    per_task = bench.scale(50, quick=20) / 1000
    tasks = 8 * WORKERS
    case = (
        f"CPU efficiency, {WORKERS} workers x {tasks // WORKERS} tasks of {per_task * 1e3:.0f} ms"
    )

    def eff(run: Any) -> float:
        t0 = time.perf_counter()
        busy = sum(run())
        wall = time.perf_counter() - t0
        return busy / (wall * WORKERS)

    args = [per_task] * tasks
    with multiprocessing.Pool(WORKERS) as mp_pool:
        mp_pool.apply(t.noop)
        v = statistics.median(eff(lambda: mp_pool.map(t.burn, args)) for _ in range(3))
    bench.record(
        case, "multiprocessing.Pool", v, "ratio", better="higher", baseline="multiprocessing.Pool"
    )
    try:
        from loky import get_reusable_executor

        ex = get_reusable_executor(max_workers=WORKERS)
        ex.submit(t.noop).result()
        v = statistics.median(eff(lambda: list(ex.map(t.burn, args))) for _ in range(3))
        bench.record(case, "loky", v, "ratio", better="higher", baseline="multiprocessing.Pool")
        ex.shutdown(wait=True, kill_workers=True)
    except ImportError:
        pass
    with Pool(WORKERS) as pool:
        pool.apply(t.noop)
        v = statistics.median(eff(lambda: pool.map(t.burn, args)) for _ in range(3))
    bench.record(
        case,
        "plait.Pool",
        v,
        "ratio",
        better="higher",
        baseline="multiprocessing.Pool",
        target=">= 0.95",
        target_value=0.95,
    )


def bench_crash_probe(bench: Bench, t: Any) -> None:
    from concurrent.futures.process import BrokenProcessPool

    from plait import WorkerCrashed
    from plait.pool import Pool

    case = "crash probe: healthy results of 9"

    def count(results: list[Any], get: Any) -> int:
        ok = 0
        for r in results:
            try:
                if get(r) is not None:
                    ok += 1
            except (BrokenProcessPool, WorkerCrashed, multiprocessing.TimeoutError, TimeoutError):
                pass
        return ok

    with ProcessPoolExecutor(WORKERS) as ex:
        futures = [ex.submit(t.maybe_die, i) for i in range(10)]
        n = count([f for i, f in enumerate(futures) if i != 3], lambda f: f.result(timeout=5))
    bench.record(
        case, "ProcessPoolExecutor", n, "results", better="higher", baseline="ProcessPoolExecutor"
    )
    mp_pool = multiprocessing.Pool(WORKERS)
    results = [mp_pool.apply_async(t.maybe_die, (i,)) for i in range(10)]
    n = count([r for i, r in enumerate(results) if i != 3], lambda r: r.get(timeout=2))
    mp_pool.terminate()
    mp_pool.join()
    bench.record(
        case,
        "multiprocessing.Pool",
        n,
        "results",
        better="higher",
        baseline="ProcessPoolExecutor",
        note="the crashed task's get() never returns (2 s timeout used)",
    )
    try:
        from loky import get_reusable_executor

        ex = get_reusable_executor(max_workers=WORKERS)
        futures = [ex.submit(t.maybe_die, i) for i in range(10)]
        n = 0
        for i, f in enumerate(futures):
            if i == 3:
                continue
            try:
                f.result(timeout=5)
                n += 1
            except Exception:
                pass
        bench.record(case, "loky", n, "results", better="higher", baseline="ProcessPoolExecutor")
        ex.shutdown(wait=True, kill_workers=True)
    except ImportError:
        pass
    with Pool(WORKERS) as pool:
        results = [pool.apply_async(t.maybe_die, (i,)) for i in range(10)]
        n = count([r for i, r in enumerate(results) if i != 3], lambda r: r.get(timeout=5))
        try:
            results[3].get(timeout=5)
        except WorkerCrashed:
            pass
    bench.record(
        case,
        "plait.Pool",
        n,
        "results",
        better="higher",
        baseline="ProcessPoolExecutor",
        target="9 of 9",
        target_value=9,
    )


def main() -> None:
    bench = Bench.from_argv("pool", description=__doc__)
    t = _tasks()
    bench.note(
        f"{WORKERS} workers everywhere; plait uses its fork server, multiprocessing.Pool and "
        "mpire fork (their defaults on Linux), ProcessPoolExecutor and loky their defaults."
    )
    bench_throughput(bench, t)
    bench_latency(bench, t)
    bench_startup(bench, t)
    bench_efficiency(bench, t)
    bench_crash_probe(bench, t)
    bench.save()


if __name__ == "__main__":
    main()
