"""Scale-out (issue 17, point 5): plait.Pool(backend="dask"/"ray") against the engine's API.

    python bench/bench_scaleout.py [--quick] [--engines dask,ray]

Per engine, one cluster (a ``distributed.LocalCluster`` of 2 worker processes with 1 thread
each; a local Ray instance of 2 CPUs) serves every case; plait's pool and the engine's own
client use it side by side and their repeats alternate (``compare_runs``), so load on a
shared machine lands on both. Ray is measured where it is installed.

* ``per-task submission``: 10,000 tiny tasks, one engine task each: Dask's
  ``client.gather(client.map(f, xs))`` against ``pool.map(f, xs, chunksize=1)`` -- the
  overhead of plait's layer over the engine (target <= 1.2x Dask's time).
* for the record, Dask's own streaming (``as_completed(client.map(...), with_results=True)``):
  plait delivers each result as it finishes, which costs the engine more fetches than one
  ``gather`` at the end.
* ``plait chunking``: the same 10,000 tasks through ``pool.map(f, xs)`` (plait's
  default chunking: about four engine tasks per worker) against Dask's per-task
  ``client.map`` (target: faster, < 1x).
* on Ray the same against ``ray.get([f.remote(x) for x in xs])``, and Ray's streaming
  (``ObjectRef.future()`` per item: each result as it finishes; plait's Ray engine finds
  them in ``ray.wait`` waves instead, which costs the driver less CPU).

Task functions are imported from this module by name (``import bench_scaleout``), so that
neither side pays for pickling a ``__main__`` function by value.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Bench, compare_runs, paired_ratios

WORKERS = 2


def tiny(x: Any) -> Any:
    return x


def _dask_cases(n: int, repeat: int) -> tuple[dict[str, list[float]], Any]:
    from distributed import Client, as_completed

    import bench_scaleout as t  # the workers import it by this name
    from plait import Pool
    from plait.pool.backends._dask import local_cluster

    data = list(range(n))
    cluster = local_cluster(WORKERS)  # the cluster plait.Pool(backend="dask") starts
    try:
        client = Client(cluster, set_as_default=False)
        pool = Pool(backend="dask", address=cluster.scheduler_address)
        try:
            return compare_runs(
                {
                    "engine": lambda: client.gather(client.map(t.tiny, data, pure=False)),
                    "engine-streaming": lambda: [
                        r
                        for _f, r in as_completed(
                            client.map(t.tiny, data, pure=False),
                            with_results=True,
                            loop=client.loop,
                        )
                    ],
                    "plait-per-task": lambda: pool.map(t.tiny, data, chunksize=1),
                    "plait-chunked": lambda: pool.map(t.tiny, data),
                },
                repeat=repeat,
            ), None
        finally:
            pool.terminate()
            pool.join()
            client.close()
    finally:
        cluster.close()


def _ray_cases(n: int, repeat: int) -> tuple[dict[str, list[float]], Any]:
    import ray

    import bench_scaleout as t
    from plait import Pool

    data = list(range(n))
    # Ray's workers (started by its raylet) import this module by name, as Dask's do.
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=WORKERS, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
    )
    try:
        remote_tiny = ray.remote(t.tiny)
        pool = Pool(backend="ray")  # finds this process connected
        try:
            return compare_runs(
                {
                    "engine": lambda: ray.get([remote_tiny.remote(x) for x in data]),
                    "engine-streaming": lambda: [
                        f.result() for f in [remote_tiny.remote(x).future() for x in data]
                    ],
                    "plait-per-task": lambda: pool.map(t.tiny, data, chunksize=1),
                    "plait-chunked": lambda: pool.map(t.tiny, data),
                },
                repeat=repeat,
            ), ray.__version__
        finally:
            pool.terminate()
            pool.join()
    finally:
        ray.shutdown()


def _record(bench: Bench, n: int, engine: str, runs: dict[str, list[float]]) -> None:
    base = {"dask": "dask client.map+gather", "ray": "ray.get of .remote() per item"}[engine]
    own = {"dask": "Dask's own client.map+gather", "ray": "Ray's own ray.get"}[engine]
    impl = f"plait.Pool(backend={engine!r})"
    median = {name: statistics.median(values) for name, values in runs.items()}
    case = f"{n:,} tiny tasks on {engine}, per-task submission"
    bench.record(case, base, median["engine"], "s", baseline=base)
    bench.record(
        case,
        f"{impl} chunksize=1 ({paired_ratios(runs['plait-per-task'], runs['engine'])})",
        median["plait-per-task"],
        "s",
        baseline=base,
        target=f"<= 1.2x {own}",
        target_ratio=1.2,
    )
    streamed = {
        "dask": ("dask as_completed (streamed)", "as_completed"),
        "ray": ("ray ObjectRef.future() per item (streamed)", "ObjectRef.future()"),
    }[engine]
    bench.record(
        case,
        streamed[0],
        median["engine-streaming"],
        "s",
        baseline=base,
        note=f"{engine}'s own way to take results as they finish, as plait's map does "
        f"({paired_ratios(runs['engine-streaming'], runs['engine'])})",
    )
    bench.record(
        case,
        f"{impl} chunksize=1 vs the streamed {streamed[1]}",
        median["plait-per-task"],
        "s",
        baseline=streamed[0],
        note=paired_ratios(runs["plait-per-task"], runs["engine-streaming"]),
    )
    case = f"{n:,} tiny tasks on {engine}, plait chunking"
    bench.record(case, base, median["engine"], "s", baseline=base)
    bench.record(
        case,
        f"{impl} map ({paired_ratios(runs['plait-chunked'], runs['engine'])})",
        median["plait-chunked"],
        "s",
        baseline=base,
        target=f"< 1x {own} per task",
        target_ratio=1.0,
    )


def main() -> None:
    argv = sys.argv[1:]
    engines = ["dask", "ray"]
    if "--engines" in argv:
        at = argv.index("--engines")
        engines = argv[at + 1].split(",")
        del argv[at : at + 2]
    bench = Bench.from_argv("scaleout", argv)
    n = bench.scale(10_000, quick=1_000)
    repeat = bench.scale(5, quick=2)
    load = os.getloadavg()[0]
    for engine in engines:
        if engine == "ray" and importlib.util.find_spec("ray") is None:
            bench.note("Ray: not measured ('ray' is not installed: pip install 'plait[ray]')")
            continue
        runs, version = (_dask_cases if engine == "dask" else _ray_cases)(n, repeat)
        _record(bench, n, engine, runs)
        if version:
            bench.note(f"ray {version}, a local instance of {WORKERS} CPUs")
    bench.note(
        f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 cores "
        f"shared); {repeat} alternating repeats "
        f"per engine; the paired ratios are each round's plait/engine"
    )
    bench.save()


if __name__ == "__main__":
    main()
