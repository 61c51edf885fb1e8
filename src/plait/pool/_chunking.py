"""How many items go in one message, and how far ahead the pool reads an input iterable.

*Chunk size.* One message per item costs a round trip (tens of microseconds); a task that
takes a microsecond drowns in it. One message per worker loses balance when items differ.
So: for ``map`` over a sized input, the stdlib's rule (about four chunks per worker), which
makes tiny tasks as cheap as pickling a list. For ``imap`` and unsized inputs, the size
adapts: it doubles from 1 until the pool has measured how long an item takes, then aims at
``TARGET_CHUNK_S`` of work per message (tiny items batched by the thousand, long items one
by one, so they balance).

*Read-ahead.* An input iterable is read lazily, at most a window of items beyond what the
caller has consumed, so an endless generator is fine and memory stays bounded.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from itertools import islice
from typing import Any

__all__ = ["MAX_CHUNK", "TARGET_CHUNK_S", "Source", "adaptive_chunksize", "map_chunksize"]

TARGET_CHUNK_S = 0.02
MAX_CHUNK = 8192


def map_chunksize(length: int, processes: int) -> int:
    """The stdlib's ``map`` default: about four chunks per worker."""
    if length <= 0:
        return 1
    return max(1, math.ceil(length / (processes * 4)))


def adaptive_chunksize(item_seconds: float | None, previous: int) -> int:
    """Next chunk size given the measured seconds per item (``None``: not measured yet)."""
    if item_seconds is None:
        return min(previous * 2, MAX_CHUNK)
    if item_seconds <= 0:
        return MAX_CHUNK
    return max(1, min(MAX_CHUNK, int(TARGET_CHUNK_S / item_seconds)))


class Source:
    """An input iterable read in chunks, never more than ``window`` chunks ahead of use."""

    def __init__(
        self,
        items: Iterator[Any],
        *,
        fixed_chunksize: int | None,
        window: int,
        limit: int | None = None,
    ) -> None:
        self._items = items
        self.fixed_chunksize = fixed_chunksize
        self.window = window
        self.limit = limit  # cap for adaptive sizes (a sized input keeps some balance)
        self.chunksize = 1 if fixed_chunksize is None else fixed_chunksize
        self.pulled = 0
        self.consumed = 0
        self.exhausted = False
        self.stalled = False
        self.unbounded = False  # join() waits: read to the end, as multiprocessing does
        self.dropped = False  # the caller dropped the iterator: read no more
        self._lock = threading.Lock()

    def room(self) -> bool:
        """Whether another chunk may be read now."""
        return (
            not self.exhausted
            and not self.dropped
            and (
                self.unbounded or self.pulled - self.consumed < self.window * max(self.chunksize, 1)
            )
        )

    def next_size(self, item_seconds: float | None) -> int:
        if self.fixed_chunksize is not None:
            return self.fixed_chunksize
        size = adaptive_chunksize(item_seconds, self.chunksize if self.pulled else 0)
        size = max(size, 1)
        if self.limit is not None:
            size = min(size, self.limit)
        self.chunksize = size
        return size

    def pull(self, size: int) -> tuple[int, list[Any], BaseException | None]:
        """Read up to ``size`` items: ``(index of the first, items, error)``. An error
        raised by the input ends it; the items read before it are kept."""
        with self._lock:
            first = self.pulled
            chunk: list[Any] = []
            error: BaseException | None = None
            try:
                chunk.extend(islice(self._items, size))
            except Exception as exc:
                error = exc
            self.pulled += len(chunk)
            if error is not None or len(chunk) < size:
                self.exhausted = True
            return first, chunk, error

    def mark_consumed(self) -> bool:
        """One item was handed to the caller; ``True`` if that made room for a stalled read."""
        self.consumed += 1
        if self.stalled and self.room():
            self.stalled = False
            return True
        return False
