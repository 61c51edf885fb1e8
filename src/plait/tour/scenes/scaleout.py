"""Scale-out (issue 17): the seed's ``Pool(5)`` program on a local Dask cluster.

* ``scaleout-seed``: the same program as ``pool-seed`` (``Pool(5)``, ten
  ``apply_async(func=foo, args=(i,))``, ``close()``, ``join()``), with one argument
  changed: ``Pool(5, backend="dask")``. The pool starts a ``distributed.LocalCluster`` of
  five worker processes, runs the ten tasks there, and stops the cluster at ``join()``.
  Pointing it at a real cluster is ``address="tcp://scheduler:8786"``, nothing more.
"""

from __future__ import annotations

import importlib.util
import textwrap
import time

from plait.pool import Pool
from plait.tour._framework import Scene, stamp
from plait.tour.scenes.pool import NAP, foo, seed_conclusion

__all__ = ["SCENES"]


def _seed_on_dask() -> None:
    print(
        'p = Pool(5, backend="dask"); 10 x p.apply_async(func=foo, args=(i,)); close(); '
        f"join()  [nap {NAP} s]"
    )
    if importlib.util.find_spec("distributed") is None:
        print("skipped: Dask is not installed here (pip install 'plait[dask]')")
        return
    t0, wall0 = time.perf_counter(), time.time()
    p = Pool(5, backend="dask")  # the one argument that changed
    started = time.perf_counter() - t0
    pending = [p.apply_async(func=foo, args=(i,)) for i in range(10)]
    p.close()
    p.join()
    elapsed = time.perf_counter() - t0
    tasks = [r.get(timeout=60) for r in pending]
    print(
        f"\nmeasured: 10 tasks of {NAP} s on Pool(5, backend='dask') took {elapsed:.2f} s, "
        f"{started:.2f} s of it starting the cluster's 5 worker processes ({stamp(t0)})"
    )
    print(textwrap.fill(seed_conclusion(tasks, wall0, elapsed), width=92))


SCENES = [
    Scene(
        name="scaleout-seed",
        title='Pool(5, backend="dask"): the seed\'s pool program on a Dask cluster',
        shows="the same program runs on a local Dask cluster by changing one argument",
        run=_seed_on_dask,
        seed="S14",
    ),
]
