"""Where a coroutine worker's task spans go on a trace: one track per concurrent slot.

A coroutine worker runs many tasks at once on its loop, each in its own asyncio task; one
track per task would flood the timeline, and overlapping spans on one track do not nest.
So each running task borrows the lowest free *slot*, a track of its own (a :class:`Strand`
made only to name it, never run), and gives it back when done: the spans on a slot's track
never overlap, and the worker shows as many tracks as it ever ran tasks at once.
"""

from __future__ import annotations

import heapq

from plait._core.strands import Strand

__all__ = ["TaskTracks"]


class TaskTracks:
    """The slots of one coroutine worker (used only while an instrument listens)."""

    __slots__ = ("_free", "_tracks")

    def __init__(self) -> None:
        self._tracks: list[Strand] = []
        self._free: list[int] = []  # a heap: the lowest free slot first

    def take(self) -> int:
        """A free slot (a new one when all are taken)."""
        if self._free:
            return heapq.heappop(self._free)
        self._tracks.append(Strand("async", f"pool tasks {len(self._tracks) + 1}"))
        return len(self._tracks) - 1

    def track(self, slot: int) -> Strand:
        """The strand that names ``slot``'s track."""
        return self._tracks[slot]

    def give_back(self, slot: int) -> None:
        heapq.heappush(self._free, slot)
