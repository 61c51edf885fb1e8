"""The frozen snapshots that ``statistics()`` returns, one per primitive.

Diagnostics, the CLI and tests read these instead of private fields. ``waiting`` counts
every parked strand; ``waiting_by_kind`` splits it by strand kind (``"thread"``,
``"async"``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plait._core import Strand

__all__ = [
    "BarrierStatistics",
    "CapacityLimiterStatistics",
    "ConditionStatistics",
    "EventStatistics",
    "LockStatistics",
    "SemaphoreStatistics",
]


@dataclass(frozen=True)
class LockStatistics:
    """A ``Lock`` or ``RLock``: held or not, by whom, how deep, and who waits."""

    locked: bool
    owner: Strand | None
    count: int
    waiting: int
    waiting_by_kind: Mapping[str, int]


@dataclass(frozen=True)
class ConditionStatistics:
    """A ``Condition``: strands in ``wait()`` and the state of the underlying lock."""

    waiting: int
    waiting_by_kind: Mapping[str, int]
    lock: LockStatistics | None


@dataclass(frozen=True)
class SemaphoreStatistics:
    """A ``Semaphore``: permits left (``value``) and who waits for one."""

    value: int
    initial_value: int
    waiting: int
    waiting_by_kind: Mapping[str, int]


@dataclass(frozen=True)
class EventStatistics:
    """An ``Event``: its flag and who waits for it."""

    is_set: bool
    waiting: int
    waiting_by_kind: Mapping[str, int]


@dataclass(frozen=True)
class BarrierStatistics:
    """A ``Barrier``: parties, how many wait now, and its phase."""

    parties: int
    n_waiting: int
    broken: bool
    state: str
    waiting_by_kind: Mapping[str, int]


@dataclass(frozen=True)
class CapacityLimiterStatistics:
    """A ``CapacityLimiter``: tokens lent, to whom, and who waits for one."""

    borrowed_tokens: int
    total_tokens: float
    borrowers: tuple[object, ...]
    waiting: int
    waiting_by_kind: Mapping[str, int]
