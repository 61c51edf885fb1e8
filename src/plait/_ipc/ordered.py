"""The store of a shared LIFO or priority queue: frames in shared memory, a stack or heap index.

A shared FIFO queue's frames go through a byte ring (``transport.Ring``). A ``LifoQueue``
or ``PriorityQueue`` takes them out in another order, so its segment holds::

    header (the ring's counters, same indexes)   index: slots of (seq, offset, length|kind)
    data: payloads, appended at TAIL

* LIFO: the index is a stack and so is the data -- the top entry's payload is the last one
  written, so a pop gives its bytes back at once.
* Priority: the index is a binary heap ordered by the *items*, compared with ``<`` (as
  :mod:`heapq` does) in the process that puts or takes: it unpickles the entries on its
  path (``log n`` of them, cached per process by their sequence number; never the caller's
own object, which it may still change). A put finds its
  place before it changes anything, so an item that cannot be compared raises
  ``TypeError`` there with the store untouched. Payloads taken out of the middle leave
  holes; when the tail reaches the end, the live payloads are moved down (amortised: each
  byte moves at most once per trip through the store).

Like the ring, the store is used under the queue's process-shared lock, and a push that
does not fit (bytes or index slots) returns ``False``: the caller spills or waits.
"""

from __future__ import annotations

from typing import Any

from plait._ipc import transport
from plait._ipc.shm import Segment
from plait._ipc.transport import HEADER, Ring

__all__ = ["LIFO", "PRIORITY", "Store"]

LIFO, PRIORITY = 1, 2
_TAIL, _COUNT = Ring.TAIL, Ring.COUNT
_SEQ, _LIVE, _SLOTS = 11, 12, 13  # header words the ring does not use
_W = 3  # index words per entry


class Store:
    """Frames of a LIFO or priority queue in one segment (caller holds the queue's lock)."""

    __slots__ = ("_cache", "cap", "data", "hdr", "idx", "order", "segment", "slots")

    def __init__(self, segment: Segment, order: int, slots: int = 0) -> None:
        self.segment = segment
        self.order = order
        self.hdr = segment.buf[:HEADER].cast("q")
        if slots:
            self.hdr[_SLOTS] = slots
        self.slots = slots = int(self.hdr[_SLOTS])
        end = HEADER + slots * _W * 8
        self.idx = segment.buf[HEADER:end].cast("q")
        self.data = segment.buf[end:]
        self.cap = len(self.data)
        self._cache: dict[int, Any] = {}  # seq -> item, for comparisons (priority)

    @staticmethod
    def size_for(capacity: int, slots: int) -> int:
        """Bytes of segment for ``capacity`` bytes of payloads and ``slots`` entries."""
        return HEADER + slots * _W * 8 + (capacity + 7) // 8 * 8

    def free(self) -> int:
        """Bytes a push can take now (0 when every index slot is used)."""
        hdr = self.hdr
        if hdr[_COUNT] >= self.slots:
            return 0
        return self.cap - int(hdr[_LIVE])

    # -- push -----------------------------------------------------------------------------

    def push(self, kind: int, payload: Any, item: Any = None) -> bool:
        """Add one frame; ``False`` if it does not fit now. ``item`` orders a priority
        store (``TypeError`` if it cannot be compared; nothing changed then)."""
        hdr = self.hdr
        n = len(payload)
        need = (n + 7) & -8
        count = int(hdr[_COUNT])
        if count >= self.slots or hdr[_LIVE] + need > self.cap:
            return False
        pos = count
        if self.order == PRIORITY:
            pos = self._place(item, count)  # may raise: nothing changed yet
        tail = int(hdr[_TAIL])
        if tail + need > self.cap:
            tail = self._compact()
        self.data[tail : tail + n] = payload
        seq = int(hdr[_SEQ])
        hdr[_SEQ] = seq + 1
        idx = self.idx
        if pos != count:  # move the entries on the way down one level each
            i = count
            while i > pos:
                parent = (i - 1) >> 1
                idx[_W * i : _W * i + _W] = idx[_W * parent : _W * parent + _W]
                i = parent
        idx[_W * pos] = seq
        idx[_W * pos + 1] = tail
        idx[_W * pos + 2] = n << 4 | kind
        hdr[_TAIL] = tail + need
        hdr[_LIVE] += need
        hdr[_COUNT] = count + 1
        return True

    def _place(self, item: Any, count: int) -> int:
        """Where ``item`` goes in the heap (sift-up by comparisons only)."""
        pos = count
        try:
            while pos > 0:
                parent = (pos - 1) >> 1
                if item < self._item(parent):
                    pos = parent
                else:
                    break
        except TypeError as exc:
            raise TypeError(
                f"a PriorityQueue item must be comparable with the items queued: {exc}"
            ) from None
        return pos

    def _compact(self) -> int:
        """Move the live payloads to the start of the data area; returns the new tail."""
        idx = self.idx
        data = self.data
        count = int(self.hdr[_COUNT])
        order = sorted(range(count), key=lambda i: idx[_W * i + 1])
        tail = 0
        for i in order:
            off = int(idx[_W * i + 1])
            n = int(idx[_W * i + 2]) >> 4
            if off != tail:
                data[tail : tail + n] = data[off : off + n]  # memmove: tail < off
                idx[_W * i + 1] = tail
            tail += (n + 7) & -8
        self.hdr[_TAIL] = tail
        return tail

    # -- pop ------------------------------------------------------------------------------

    def pop(self) -> tuple[int, bytes]:
        """Take the top frame (``COUNT`` must be > 0): the newest (LIFO) or the lowest."""
        hdr = self.hdr
        idx = self.idx
        count = int(hdr[_COUNT])
        top = 0 if self.order == PRIORITY else count - 1
        seq, off, nk = int(idx[_W * top]), int(idx[_W * top + 1]), int(idx[_W * top + 2])
        n = nk >> 4
        if self.order == PRIORITY and count > 1:
            self._remove_root(count)  # may raise: nothing changed yet
        payload = self.data[off : off + n].tobytes()
        left = count - 1
        hdr[_COUNT] = left
        hdr[_LIVE] -= (n + 7) & -8
        if not left:
            hdr[_TAIL] = hdr[_LIVE] = 0
        elif self.order == LIFO:
            hdr[_TAIL] = off  # the top payload was the last one written
        cache = self._cache
        cache.pop(seq, None)
        if len(cache) > 2 * left + 64:  # entries others took: forget them
            live = {int(idx[_W * i]) for i in range(left)}
            self._cache = {s: v for s, v in cache.items() if s in live}
        return nk & 15, payload

    def _remove_root(self, count: int) -> None:
        """Heap pop: the last entry sifts down from the root (comparisons first)."""
        last = count - 1
        moved = self._item(last)
        path = []  # children that move up one level
        pos = 0
        try:
            while True:
                child = 2 * pos + 1
                if child >= last:
                    break
                right = child + 1
                if right < last and self._item(right) < self._item(child):
                    child = right
                if self._item(child) < moved:
                    path.append(child)
                    pos = child
                else:
                    break
        except TypeError as exc:
            raise TypeError(f"the PriorityQueue's items cannot be compared: {exc}") from None
        idx = self.idx
        hole = 0
        for child in path:
            idx[_W * hole : _W * hole + _W] = idx[_W * child : _W * child + _W]
            hole = child
        idx[_W * hole : _W * hole + _W] = idx[_W * last : _W * last + _W]

    def _item(self, i: int) -> Any:
        """The item of entry ``i``, unpickled once per process (for comparisons)."""
        idx = self.idx
        seq = int(idx[_W * i])
        cache = self._cache
        try:
            return cache[seq]
        except KeyError:
            pass
        off, nk = int(idx[_W * i + 1]), int(idx[_W * i + 2])
        payload = self.data[off : off + (nk >> 4)]
        item = transport.peek(nk & 15, payload)
        cache[seq] = item
        return item

    def items(self) -> list[tuple[int, bytes]]:
        """Every frame, in no particular order (for diagnostics)."""
        idx = self.idx
        out = []
        for i in range(int(self.hdr[_COUNT])):
            off, nk = int(idx[_W * i + 1]), int(idx[_W * i + 2])
            out.append((nk & 15, self.data[off : off + (nk >> 4)].tobytes()))
        return out

    def release(self) -> None:
        """Drop this process's views of the segment."""
        self.hdr.release()
        self.idx.release()
        self.data.release()
