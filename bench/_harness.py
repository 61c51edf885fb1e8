"""The shared benchmark harness: time a call, record results, compare with a baseline.

Every ``bench/bench_<topic>.py`` runs plait and its peers *in the same run* and records
medians through one :class:`Bench`; ratios are computed against a baseline measured in
that same run, so a slow or busy machine moves both sides. ::

    from _harness import Bench, compare, measure

    bench = Bench.from_argv("queues")             # parses --quick
    n = bench.scale(100_000, quick=10_000)
    for impl, fn in (("queue.Queue", put_get_std), ("plait", put_get_plait)):
        bench.record("put+get, 1 thread", impl, measure(fn, repeat=5, number=n), "s/op",
                     baseline="queue.Queue", target="<= 1.5x queue.Queue", target_ratio=1.5)
    figures = compare({"a": fn_a, "b": fn_b}, repeat=5, number=n)  # interleaved repeats
    bench.save()                                  # bench/results/queues.json + a table

``better`` says which way is good ("lower" for seconds and bytes, "higher" for ops/s);
``target_ratio`` is the bound on ``value / baseline`` that the issue sets (an upper bound
when lower is better, a lower bound when higher is better). ``bench/report.py`` turns every
results file into BENCHMARKS.md. Benchmarks never assert timings: they report them.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "RESULTS_DIR",
    "Bench",
    "Result",
    "compare",
    "format_value",
    "machine_info",
    "measure",
    "record",
    "samples",
    "save",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
Better = Literal["lower", "higher"]


def samples(
    fn: Callable[[], object],
    *,
    repeat: int = 5,
    number: int = 1,
    warmup: int = 1,
    setup: Callable[[], object] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Seconds per call of ``fn()``, one figure per repeat (each repeat calls it ``number``
    times). ``setup()`` runs before each repeat, outside the timing; the garbage collector
    is paused while timing, as ``timeit`` does. ``clock=time.thread_time`` times a
    single-threaded ``fn`` in CPU time, which other processes' load moves far less."""
    if repeat < 1 or number < 1:
        raise ValueError("repeat and number must be >= 1")
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    out: list[float] = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            start = clock()
            for _ in range(number):
                fn()
            elapsed = clock() - start
        finally:
            if gc_was_on:
                gc.enable()
        out.append(elapsed / number)
    return out


def measure(
    fn: Callable[[], object],
    *,
    repeat: int = 5,
    number: int = 1,
    warmup: int = 1,
    setup: Callable[[], object] | None = None,
) -> float:
    """Median seconds per call of ``fn()`` over ``repeat`` repeats (see :func:`samples`)."""
    return statistics.median(samples(fn, repeat=repeat, number=number, warmup=warmup, setup=setup))


def compare(
    fns: dict[str, Callable[[], object]],
    *,
    repeat: int = 5,
    number: int = 1,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds per call for each of ``fns``, taking their repeats in turn (a, b, c,
    a, b, c, ...) so that a change in machine load lands on all of them alike — better
    than measuring one after the other on a shared machine. (``clock``: see
    :func:`samples`.)"""
    runs = compare_runs(fns, repeat=repeat, number=number, warmup=warmup, clock=clock)
    return {name: statistics.median(values) for name, values in runs.items()}


def compare_runs(
    fns: dict[str, Callable[[], object]],
    *,
    repeat: int = 5,
    number: int = 1,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """:func:`compare`'s figures before the median: each repeat's seconds per call, the
    k-th of every function measured in the same round (see :func:`paired_ratios`)."""
    per_fn: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            per_fn[name] += samples(fn, repeat=1, number=number, warmup=0, clock=clock)
    return per_fn


def paired_ratios(values: Sequence[float], base: Sequence[float]) -> str:
    """Each round's ratio ``values[k] / base[k]`` (measured back to back, steadier than a
    ratio of medians when the load moves): ``"paired ratios: median 1.05x, 0.98-1.12x"``."""
    ratios = [v / b for v, b in zip(values, base, strict=True)]
    return (
        f"paired ratios: median {statistics.median(ratios):.2f}x, "
        f"{min(ratios):.2f}-{max(ratios):.2f}x"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    try:
        import plait

        plait_version = plait.__version__
    except ImportError:
        plait_version = "not installed"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gil": bool(gil),
        "platform": platform.platform(terse=True),
        "plait": plait_version,
    }


@dataclass
class Result:
    """One measured figure; ``ratio`` is ``value / baseline's value`` in the same run."""

    case: str
    impl: str
    value: float
    unit: str
    better: Better = "lower"
    baseline: str | None = None
    ratio: float | None = None
    target: str | None = None
    target_ratio: float | None = None
    target_value: float | None = None
    meets: bool | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)


@dataclass
class Bench:
    """Results of one topic's run; :meth:`save` writes ``bench/results/<topic>.json``."""

    topic: str
    quick: bool = False
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_argv(
        cls, topic: str, argv: Sequence[str] | None = None, description: str | None = None
    ) -> Bench:
        """A bench for ``topic`` configured from the command line (``--quick``)."""
        parser = argparse.ArgumentParser(description=description or f"benchmarks: {topic}")
        parser.add_argument(
            "--quick", action="store_true", help="smaller sizes, fewer repeats (a smoke run)"
        )
        args = parser.parse_args(argv)
        return cls(topic, quick=args.quick)

    def scale(self, full: int, quick: int) -> int:
        """``quick`` under ``--quick``, else ``full``."""
        return quick if self.quick else full

    def note(self, text: str) -> None:
        """A line printed under the topic's table in BENCHMARKS.md."""
        self.notes.append(text)

    def record(
        self,
        case: str,
        impl: str,
        value: float,
        unit: str,
        *,
        baseline: str | None = None,
        better: Better | None = None,
        target: str | None = None,
        target_ratio: float | None = None,
        target_value: float | None = None,
        note: str = "",
        samples: Sequence[float] = (),
    ) -> Result:
        """Record ``impl``'s median ``value`` for ``case``; ``baseline`` names the impl of
        the same case that ratios are taken against (it may be recorded before or after).
        ``better`` defaults to "higher" for rates (unit ending in ``/s``), else "lower".
        ``target_value`` is an absolute bound on ``value`` (same unit), for targets such as
        "<= 150 ns"; ``target_ratio`` a bound on the ratio."""
        if better is None:
            better = "higher" if unit.endswith("/s") else "lower"
        result = Result(
            case=case,
            impl=impl,
            value=float(value),
            unit=unit,
            better=better,
            baseline=baseline,
            target=target,
            target_ratio=target_ratio,
            target_value=target_value,
            note=note,
            samples=[float(s) for s in samples],
        )
        self.results.append(result)
        print(f"  {case:<38} {impl:<28} {format_value(value, unit):>14}", flush=True)
        return result

    def _resolve_ratios(self) -> None:
        by_key = {(r.case, r.impl): r for r in self.results}
        for r in self.results:
            if r.target_value is not None:
                r.meets = (
                    r.value <= r.target_value if r.better == "lower" else r.value >= r.target_value
                )
            if r.baseline is None:
                continue
            base = by_key.get((r.case, r.baseline))
            if base is None or base.value == 0 or math.isnan(base.value):
                r.ratio = None
                continue
            r.ratio = r.value / base.value
            if r.target_ratio is not None:
                r.meets = (r.meets is not False) and (
                    r.ratio <= r.target_ratio if r.better == "lower" else r.ratio >= r.target_ratio
                )

    def table(self) -> str:
        """The results as a plain-text table."""
        self._resolve_ratios()
        rows = [("case", "impl", "median", "ratio", "target")]
        for r in self.results:
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}x {r.baseline}"
            target = r.target or ""
            if r.meets is not None:
                target += " (met)" if r.meets else " (NOT met)"
            rows.append((r.case, r.impl, format_value(r.value, r.unit), ratio, target))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)

    def save(self, directory: Path | None = None) -> Path:
        """Write the results JSON, print the table, and return the file's path."""
        self._resolve_ratios()
        out_dir = RESULTS_DIR if directory is None else directory
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.topic}.json"
        payload = {
            "topic": self.topic,
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "quick": self.quick,
            "machine": machine_info(),
            "notes": self.notes,
            "results": [asdict(r) for r in self.results],
        }
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(f"\n{self.topic}{' (quick)' if self.quick else ''}:\n{self.table()}")
        print(f"\nwrote {path}; `python bench/report.py` updates BENCHMARKS.md")
        return path


_default: dict[str, Bench] = {}


def record(
    topic: str,
    case: str,
    impl: str,
    value: float,
    unit: str,
    *,
    baseline: str | None = None,
    **options: Any,
) -> Result:
    """Module-level shortcut: :meth:`Bench.record` on a per-topic bench; call
    ``save(topic)`` at the end."""
    bench = _default.setdefault(topic, Bench(topic))
    return bench.record(case, impl, value, unit, baseline=baseline, **options)


def save(topic: str) -> Path:
    """Save the bench that :func:`record` filled for ``topic``."""
    return _default[topic].save()


def format_value(value: float, unit: str) -> str:
    """A figure with sensible digits; seconds-like units are shown in the best scale."""
    if unit.startswith(("s/", "s ")) or unit == "s":
        seconds = value
        rest = unit[1:]
        for name, factor in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
            if seconds >= factor or name == "ns":
                return f"{seconds / factor:.3g} {name}{rest}"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"
