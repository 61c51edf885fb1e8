"""Turning a scene's numbers into words: every conclusion the tour prints comes from here.

A scene never states a result as fixed text: it measures, then asks these helpers how to
say what it measured. Timings on a shared machine are noisy, so two timings within
:data:`TOLERANCE` of each other read "about the same", never "faster" or "slower".
"""

from __future__ import annotations

import os
from typing import Literal

__all__ = [
    "TOLERANCE",
    "Comparison",
    "autogroup_enabled",
    "busy_machine",
    "compare",
    "describe_ratio",
    "load_average",
    "usable_cores",
]

TOLERANCE = 0.15  # within 15% either way: "about the same" (a busy machine's noise)

Comparison = Literal["faster", "same", "slower"]


def compare(ratio: float, tolerance: float = TOLERANCE) -> Comparison:
    """``ratio`` is baseline time / measured time: above 1 the measured run was faster."""
    if ratio >= 1 + tolerance:
        return "faster"
    if ratio <= 1 / (1 + tolerance):
        return "slower"
    return "same"


def describe_ratio(ratio: float, baseline: str, tolerance: float = TOLERANCE) -> str:
    """``1.85x faster than sequential``, ``about the same as sequential (0.98x)``, ..."""
    verdict = compare(ratio, tolerance)
    if verdict == "faster":
        return f"{ratio:.2f}x faster than {baseline}"
    if verdict == "slower":
        return f"slower than {baseline} ({ratio:.2f}x)"
    return f"about the same as {baseline} ({ratio:.2f}x)"


def usable_cores() -> int:
    """The cores this process may run on (its affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average, where the platform has one."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy_machine(load: float | None, cores: int) -> bool:
    """Other programs keep at least half the usable cores busy: timings will be noisy."""
    return load is not None and load >= cores * 0.5


def autogroup_enabled() -> bool | None:
    """Whether Linux shares the CPU between sessions rather than processes (autogroup):
    then a program's processes together get one session's share while other sessions are
    busy, so more processes cannot buy more CPU. None where the platform cannot tell."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled", encoding="ascii") as f:
            return f.read().strip() == "1"
    except OSError:
        return None
