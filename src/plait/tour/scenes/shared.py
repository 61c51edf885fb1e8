"""Shared state (seed S12): the seed's ``Manager().dict()`` / ``.list()`` program on
``plait.Manager`` (no server process), the ``d[k] += 1`` race and its fix, and the same
work at scale next to ``multiprocessing.Manager``'s timing."""

from __future__ import annotations

import multiprocessing
import sys
import time
from typing import Any

import plait
from plait.tour._framework import Scene

__all__ = ["SCENES"]

WRITERS = 4
WRITES = 1000


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def f(d: Any, l: Any, n: int) -> None:  # noqa: E741  (the seed's names)
    """The seed's target."""
    d[n] = n
    d["name"] = "alvin"
    l.append(n)
    _say(f"  process {n}: list {l}")


def _seed() -> None:
    print("with plait.Manager() as manager: d = manager.dict(); l = manager.list(range(5))")
    print("10 x Process(target=f, args=(d, l, i)):")
    with plait.Manager() as manager:
        d = manager.dict()
        l = manager.list(range(5))  # noqa: E741
        ps = [plait.Process(target=f, args=(d, l, i)) for i in range(10)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        print(f"d = {d}")
        print(f"l = {l}")
        ok = len(d) == 11 and len(l) == 15
    print(
        "every process's write is there (no server process: shared memory, a replica per process)"
        if ok
        else "SOME WRITES ARE MISSING"
    )


def racy_add(d: Any, read: Any, go: Any) -> None:
    """``d["num"] += 1`` spelled out, with a pause between the read and the write."""
    value = d["num"]
    read.set()
    go.wait(30)
    d["num"] = value + 1


def atomic_add(d: Any, read: Any, go: Any) -> None:
    """The same with ``update_with``: read and write under the dict's lock."""
    read.set()
    go.wait(30)
    d.update_with("num", lambda n: n + 1)


def _two(target: Any) -> int:
    d = plait.shared.dict(num=0)
    reads = [plait.Event(), plait.Event()]
    go = plait.Event()
    ps = [plait.Process(target=target, args=(d, r, go)) for r in reads]
    for p in ps:
        p.start()
    for r in reads:
        r.wait(30)
    go.set()  # both have read (the racy one): now both write
    for p in ps:
        p.join()
    return int(d["num"])


def _race() -> None:
    racy = _two(racy_add)
    print(f"two processes run d['num'] += 1, both read before either writes: num = {racy}")
    print("  (one increment is lost: the read and the write are two operations, as with the")
    print("   Manager's dict and the seed's `num` example)")
    fixed = _two(atomic_add)
    print(f"the same with d.update_with('num', lambda n: n + 1): num = {fixed}")
    print("  (also `with d.locked(): d['num'] += 1`: no other process changes d in between)")


def many_writes(d: Any, who: int, n: int, out: Any) -> None:
    t0 = time.perf_counter()
    for i in range(n):
        d[f"{who}-{i % 50}"] = i
        d.get("0-0")
    out.put(time.perf_counter() - t0)


def _timed(d: Any) -> float:
    """The slowest process's time for its loop (process start-up left out)."""
    out: plait.Queue[float] = plait.Queue()
    ps = [plait.Process(target=many_writes, args=(d, w, WRITES, out)) for w in range(WRITERS)]
    for p in ps:
        p.start()
    took = [out.get(timeout=60) for _ in ps]
    for p in ps:
        p.join()
    return float(max(took))


def _speed() -> None:
    print(f"{WRITERS} processes at once, each {WRITES} x (d[k] = v; d.get(k)), on each Manager:")
    with plait.Manager() as pm:
        mine = _timed(pm.dict())
    with multiprocessing.Manager() as sm:
        theirs = _timed(sm.dict())
    print(f"  plait.Manager().dict():           {mine * 1e3:7.1f} ms")
    print(f"  multiprocessing.Manager().dict(): {theirs * 1e3:7.1f} ms (a server process)")
    print(f"  plait took {theirs / mine:.0f}x less time (per operation: bench/bench_shared.py)")


SCENES: list[Scene] = [
    Scene(
        name="shared-seed",
        title="the seed's Manager program: a dict and a list shared by 10 processes",
        shows="plait.Manager keeps the API, with no server process",
        run=_seed,
        seed="S12",
    ),
    Scene(
        name="shared-race",
        title="d['num'] += 1 from two processes: the lost update, and update_with",
        shows="a read-modify-write is two operations; update_with/locked() make it one",
        run=_race,
        seed="S12",
    ),
    Scene(
        name="shared-speed",
        title="the same work at scale, next to multiprocessing.Manager",
        shows="no socket round trip per operation: reads from a local replica",
        run=_speed,
        seed="S12",
    ),
]
