"""A queue's statistics record (``Queue.statistics()``), local or shared alike."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QueueStatistics"]


@dataclass(frozen=True)
class QueueStatistics:
    """A snapshot of a queue, for diagnostics and tests."""

    qsize: int
    maxsize: int
    getters_waiting: int
    putters_waiting: int
    unfinished_tasks: int
    closed: bool
    shared: bool
