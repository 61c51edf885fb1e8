"""Scale-out (issue 17, point 5): plait.Pool(backend="dask") against Dask's own API.

    python bench/bench_scaleout.py [--quick]

One ``distributed.LocalCluster`` (2 worker processes, 1 thread each) serves every case;
plait's pool and Dask's client are connected to it side by side and their repeats
alternate (``compare``), so load on a shared machine lands on both.

* ``per-task submission``: 10,000 tiny tasks, one engine task each: Dask's
  ``client.gather(client.map(f, xs))`` against ``pool.map(f, xs, chunksize=1)`` -- the
  overhead of plait's layer over the engine (target <= 1.2x Dask's time).
* for the record, Dask's own streaming (``as_completed(client.map(...), with_results=True)``):
  plait delivers each result as it finishes, which costs the engine more fetches than one
  ``gather`` at the end.
* ``plait chunking``: the same 10,000 tasks through ``pool.map(f, xs)`` (plait's
  default chunking: about four engine tasks per worker) against Dask's per-task
  ``client.map`` (target: faster, < 1x).

Task functions are imported from this module by name (``import bench_scaleout``), so that
neither side pays for pickling a ``__main__`` function by value.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Bench, compare

WORKERS = 2


def tiny(x: Any) -> Any:
    return x


def main() -> None:
    from distributed import Client, LocalCluster, as_completed

    import bench_scaleout as t  # the workers import it by this name
    from plait import Pool

    bench = Bench.from_argv("scaleout")
    n = bench.scale(10_000, quick=1_000)
    repeat = bench.scale(5, quick=2)
    data = list(range(n))
    load = os.getloadavg()[0]
    cluster = LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        client = Client(cluster, set_as_default=False)
        pool = Pool(backend="dask", address=cluster.scheduler_address)
        try:
            figures = compare(
                {
                    "dask": lambda: client.gather(client.map(t.tiny, data, pure=False)),
                    "dask-streaming": lambda: [
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
            )
        finally:
            pool.terminate()
            pool.join()
            client.close()
    finally:
        cluster.close()
    case = f"{n:,} tiny tasks, per-task submission"
    bench.record(
        case, "dask client.map+gather", figures["dask"], "s", baseline="dask client.map+gather"
    )
    bench.record(
        case,
        "plait.Pool(backend='dask') chunksize=1",
        figures["plait-per-task"],
        "s",
        baseline="dask client.map+gather",
        target="<= 1.2x Dask's own client.map+gather",
        target_ratio=1.2,
    )
    bench.record(
        case,
        "dask as_completed (streamed)",
        figures["dask-streaming"],
        "s",
        baseline="dask client.map+gather",
        note="Dask's own way to take results as they finish, as plait's map does",
    )
    case = f"{n:,} tiny tasks, plait chunking"
    bench.record(
        case, "dask client.map+gather", figures["dask"], "s", baseline="dask client.map+gather"
    )
    bench.record(
        case,
        "plait.Pool(backend='dask') map",
        figures["plait-chunked"],
        "s",
        baseline="dask client.map+gather",
        target="< 1x Dask's per-task client.map",
        target_ratio=1.0,
    )
    bench.note(
        f"load average {load:.1f} at the start (2 cores shared); {repeat} alternating repeats"
    )
    bench.save()


if __name__ == "__main__":
    main()
