"""Process strands on warm workers (issue 12, point 3): a warm round trip, as users write it.

    python bench/bench_process_strand.py [--quick]

One round trip = hand ``os.getpid`` to another process, have its result back in the caller.
Every implementation is warm (its worker processes already running) and, where it has a
choice, uses the fork server, so the figures compare the per-call machinery:

* ``plait spawn(on="process")`` -- ``t = tg.spawn(os.getpid, on="process");
  t.result(timeout=None)`` in an open ``TaskGroup`` (a warm worker, reused);
* ``plait spawn(on="process") + TaskGroup`` -- a ``with TaskGroup()`` block per call;
* ``plait.Pool.submit`` -- plait's own pool, for reference;
* ``ProcessPoolExecutor.submit`` (the baseline), loky's reusable executor and mpire's
  ``WorkerPool.apply`` where installed.

``isolated=True`` (a fresh process per strand, as before) is timed too, a few calls only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import plait
from plait._ipc.context import get_context

# Children re-import this module as their ``__main__``: its top level imports only what
# the fork server has preloaded (plait). The harness and the peers load in main().

CASE = "process strand round trip, warm"
BASELINE = "ProcessPoolExecutor.submit (warm)"
PER_SAMPLE = 20  # calls per timed sample, so that one sample is not timer noise


def main() -> None:
    from _harness import Bench
    from bench_process import _interleaved, _median

    bench = Bench.from_argv("process_strand", description=__doc__)
    rounds = bench.scale(15, quick=4)
    ctx = get_context("forkserver")
    impls: list[tuple[str, Callable[[], None]]] = []
    closers: list[Callable[[], None]] = []

    executor = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
    closers.append(executor.shutdown)

    def pool_executor() -> None:
        for _ in range(PER_SAMPLE):
            executor.submit(os.getpid).result()

    impls.append((BASELINE, pool_executor))

    group = plait.TaskGroup()
    group.__enter__()

    def plait_spawn() -> None:
        for _ in range(PER_SAMPLE):
            group.spawn(os.getpid, on="process").result(timeout=None)

    def plait_spawn_group() -> None:
        for _ in range(PER_SAMPLE):
            with plait.TaskGroup() as tg:
                tg.spawn(os.getpid, on="process")

    impls.append(('plait spawn(on="process")', plait_spawn))
    impls.append(('plait spawn(on="process") + TaskGroup', plait_spawn_group))

    pool = plait.Pool(1)
    closers.append(pool.terminate)

    def plait_pool() -> None:
        for _ in range(PER_SAMPLE):
            pool.submit(os.getpid).result()

    impls.append(("plait.Pool.submit (warm)", plait_pool))

    try:
        import loky  # type: ignore[import-untyped]

        reusable = loky.get_reusable_executor(max_workers=1)

        def loky_submit() -> None:
            for _ in range(PER_SAMPLE):
                reusable.submit(os.getpid).result()

        impls.append(("loky reusable executor .submit (warm)", loky_submit))
        closers.append(lambda: reusable.shutdown(wait=True))
    except ImportError:
        bench.note("loky is not installed: no loky row.")

    try:
        from mpire import WorkerPool  # type: ignore[import-untyped]

        mpire_pool = WorkerPool(n_jobs=1, start_method="forkserver", keep_alive=True)
        mpire_pool.__enter__()

        def mpire_apply() -> None:
            for _ in range(PER_SAMPLE):
                mpire_pool.apply(os.getpid, ())

        impls.append(("mpire WorkerPool.apply (warm)", mpire_apply))
        closers.append(lambda: mpire_pool.__exit__(None, None, None))
    except ImportError:
        bench.note("mpire is not installed: no mpire row.")

    try:
        print(f"{CASE} ({rounds} rounds x {PER_SAMPLE} calls per sample, interleaved):")
        got = _interleaved(impls, rounds, 1)
        for impl, values in got.items():
            per_call = [v / PER_SAMPLE for v in values]
            bench.record(
                CASE,
                impl,
                _median(per_call),
                "s/call",
                baseline=BASELINE,
                samples=per_call,
                **(
                    {"target": "<= 200 µs warm", "target_value": 200e-6}
                    if impl == 'plait spawn(on="process")'
                    else {}
                ),
            )

        def isolated() -> None:
            group.spawn(os.getpid, on="process", isolated=True).result(timeout=None)

        cold = _interleaved([("isolated", isolated)], bench.scale(5, quick=2), 2)["isolated"]
        bench.record(
            CASE,
            'plait spawn(on="process", isolated=True) (a new process each)',
            _median(cold),
            "s/call",
            baseline=BASELINE,
            samples=cold,
        )
    finally:
        group.__exit__(None, None, None)
        for close in closers:
            close()
    bench.note(
        "Every pool has 1 worker; plait's process strands borrow a warm worker (started on "
        "first use, grown on demand, stopped after 30 s idle). The harness's warm-up runs "
        "each implementation twice before timing."
    )
    bench.save()


if __name__ == "__main__":
    main()
