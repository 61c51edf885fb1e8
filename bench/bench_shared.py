"""plait.shared vs multiprocessing.Manager, in the same run (issue 16's speed targets).

Cases: dict get and set from a second process, reads in the creating process, and a
Value incremented under a lock (plait: ``v.get_lock()``; the Manager: a ``manager.Lock()``,
as its Value proxy has none). Each case runs ``--repeats`` rounds, plait and the Manager in
turn; the table gives medians and the median (and range) of the per-round ratios, Manager
time / plait time (higher is better for plait).

    python bench/bench_shared.py [--quick] [--readers N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from typing import Any

import plait
from plait.shared import SharedDict, SharedValue


def _time_ops(obj: Any, op: str, n: int, lock: Any = None) -> float:
    """Seconds per operation of ``op`` on ``obj``, ``n`` times."""
    if op == "get":
        obj["k"] = 1
        t = time.perf_counter()
        for _ in range(n):
            obj["k"]
    elif op == "set":
        t = time.perf_counter()
        for i in range(n):
            obj["k"] = i
    else:  # "incr": a Value under its lock
        t = time.perf_counter()
        if lock is None:
            for _ in range(n):
                with obj.get_lock():
                    obj.value += 1
        else:
            for _ in range(n):
                with lock:
                    obj.value += 1
    return (time.perf_counter() - t) / n


def _child(obj: Any, op: str, n: int, lock: Any, out: Any) -> None:
    out.put(_time_ops(obj, op, n, lock))


def _in_child(obj: Any, op: str, n: int, lock: Any = None) -> float:
    out = plait.Queue()
    p = plait.Process(target=_child, args=(obj, op, n, lock, out))
    p.start()
    try:
        return float(out.get(timeout=120))
    finally:
        p.join(30)


def _readers(obj: Any, n: int, readers: int) -> float:
    """Aggregate reads per second of ``readers`` processes reading ``obj`` at once."""
    out = plait.Queue()
    ps = [plait.Process(target=_child, args=(obj, "get", n, None, out)) for _ in range(readers)]
    for p in ps:
        p.start()
    try:
        per_op = [float(out.get(timeout=300)) for _ in ps]
    finally:
        for p in ps:
            p.join(60)
    return sum(1 / t for t in per_op)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--readers", type=int, default=8, help="processes reading one dict at once"
    )
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    n_fast, n_slow = (20_000, 2_000) if args.quick else (200_000, 10_000)
    rows: list[tuple[str, float, float, list[float]]] = []
    with multiprocessing.Manager() as mgr:
        cases: list[tuple[str, Any, Any]] = []
        pd, md = SharedDict(), mgr.dict()
        pv, mv, mlock = SharedValue("i", 0), mgr.Value("i", 0), mgr.Lock()
        cases = [
            (
                "dict get, second process",
                lambda: _in_child(pd, "get", n_fast),
                lambda: _in_child(md, "get", n_slow),
            ),
            (
                "dict set, second process",
                lambda: _in_child(pd, "set", n_fast // 4),
                lambda: _in_child(md, "set", n_slow),
            ),
            (
                "dict get, creating process",
                lambda: _time_ops(pd, "get", n_fast),
                lambda: _time_ops(md, "get", n_slow),
            ),
            (
                "Value += 1 under its lock, second process",
                lambda: _in_child(pv, "incr", n_fast // 4),
                lambda: _in_child(mv, "incr", n_slow, mlock),
            ),
        ]
        for name, plait_case, mgr_case in cases:
            p_times, m_times = [], []
            for _ in range(repeats):  # in turn, so a change of load hits both alike
                p_times.append(plait_case())
                m_times.append(mgr_case())
            ratios = [m / p for p, m in zip(p_times, m_times, strict=True)]
            rows.append((name, statistics.median(p_times), statistics.median(m_times), ratios))
        readers = args.readers
        p_agg = statistics.median(_readers(pd, n_fast, readers) for _ in range(repeats))
        m_agg = statistics.median(_readers(md, n_slow // 4, readers) for _ in range(repeats))
    print(f"load average {os.getloadavg()[0]:.1f} at the end, {repeats} rounds")
    print("| case | plait.shared | multiprocessing.Manager | ratio (range of rounds) |")
    print("|---|---:|---:|---:|")
    for name, p, m, ratios in rows:
        print(
            f"| {name} | {p * 1e6:.2f} µs/op | {m * 1e6:.1f} µs/op "
            f"| {statistics.median(ratios):.0f}x ({min(ratios):.0f}-{max(ratios):.0f}x) |"
        )
    print(
        f"| dict get, {readers} reader processes at once (aggregate, {os.cpu_count()} CPUs) "
        f"| {p_agg / 1e6:.2f} M reads/s | {m_agg / 1e3:.1f} k reads/s | {p_agg / m_agg:.0f}x |"
    )


if __name__ == "__main__":
    main()
