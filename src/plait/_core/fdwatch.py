"""Waiting for an fd on an event loop, shared by every strand that waits on it.

``loop.add_reader(fd, cb)`` keeps one callback per fd: a second waiter's call replaces the
first's (which then never wakes), and the first to leave removes both. Green strands
(waiting in patched socket calls) and coroutines (a Pipe end) may wait on the same fd at
once, so plait registers each fd with the loop once and tells every waiter.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

__all__ = ["FdWatch", "fd_watch"]


class FdWatch:
    """The fds plait's strands wait on through one loop. The loop keeps one reader (and
    one writer) per fd, so strands waiting on the same fd share it: each is told when it is
    ready, and the last to leave takes it away."""

    __slots__ = ("loop", "readers", "writers")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.readers: dict[int, list[Callable[[], None]]] = {}
        self.writers: dict[int, list[Callable[[], None]]] = {}

    def add(self, fd: int, write: bool, callback: Callable[[], None]) -> None:
        table = self.writers if write else self.readers
        callbacks = table.get(fd)
        if callbacks is not None:
            callbacks.append(callback)
            return
        table[fd] = [callback]
        try:
            (self.loop.add_writer if write else self.loop.add_reader)(fd, self._ready, table, fd)
        except BaseException:
            del table[fd]
            raise

    def remove(self, fd: int, write: bool, callback: Callable[[], None]) -> None:
        table = self.writers if write else self.readers
        callbacks = table.get(fd)
        if callbacks is None:
            return
        try:
            callbacks.remove(callback)
        except ValueError:
            return
        if not callbacks:
            del table[fd]
            (self.loop.remove_writer if write else self.loop.remove_reader)(fd)

    @staticmethod
    def _ready(table: dict[int, list[Callable[[], None]]], fd: int) -> None:
        for callback in list(table.get(fd, ())):
            callback()


_fd_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FdWatch] = (
    weakref.WeakKeyDictionary()
)


def fd_watch(loop: asyncio.AbstractEventLoop) -> FdWatch:
    """``loop``'s :class:`FdWatch` (made on first use; it goes with the loop)."""
    watch = _fd_watches.get(loop)
    if watch is None:
        watch = _fd_watches[loop] = FdWatch(loop)
    return watch
