"""Channels: the queue family, ``Pipe`` and ``select`` -- for coroutines, threads, processes."""

from plait._channels._pipe import Connection, ConnectionStatistics, Pipe
from plait._channels._queue import Empty, Full, Queue, QueueStatistics, ShutDown
from plait._channels._queue_kinds import LifoQueue, PriorityQueue, SimpleQueue
from plait._channels._select import ArmSet, SelectCase, Selected, async_select, select

__all__ = [
    "ArmSet",
    "Connection",
    "ConnectionStatistics",
    "Empty",
    "Full",
    "LifoQueue",
    "Pipe",
    "PriorityQueue",
    "Queue",
    "QueueStatistics",
    "SelectCase",
    "Selected",
    "ShutDown",
    "SimpleQueue",
    "async_select",
    "select",
]
