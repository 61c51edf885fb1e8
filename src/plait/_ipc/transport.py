"""The cross-process transport: a shared-memory ring of framed messages, plus big-buffer spill.

::

    put() in any process                         get() in any process
    ───────────────────                          ─────────────────────
    pickle (protocol 5, out-of-band buffers)
      small ─► frame into the ring  ──────────►  frame out of the ring ─► unpickle
      large ─► new shm segment, its name as  ─►  map segment, unlink its name,
               the frame                          unpickle over views of it (no copy)

The ring lives in one shared-memory segment: a header of 64-bit counters, then a byte
ring of 8-byte-aligned frames ``[length][kind][payload]``. Writers append under the
queue's process-shared lock; readers take one frame at a time under the same lock. No
system call is made per message while a burst is queued -- the lock is a futex that only
enters the kernel when contended, and wake-ups are posted only to parked waiters. A frame
that does not fit the free space, or a payload over :data:`SPILL`, goes through its own
segment (``shm.Segment``), so a full ring never blocks a writer and a 1 GiB array is
written once, into shared memory, and read in place.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

from plait._ipc import serialize
from plait._ipc.shm import Segment

__all__ = ["SPILL", "Ring", "decode", "encode", "peek"]

SPILL = 2 * 1024 * 1024  # payloads larger than this travel in their own segment
HEADER_WORDS = 16
HEADER = HEADER_WORDS * 8
_FRAME = struct.Struct("qq")  # length, kind
INLINE, SEGMENT, BYTES, BYTEARRAY = 0, 1, 2, 3  # frame kinds
RAW_MIN = 4096  # bytes/bytearray items at least this big travel raw, not pickled
_WRAP = -1
_pack_into = _FRAME.pack_into
_unpack_from = _FRAME.unpack_from
_HEAD, _TAIL, _COUNT = 2, 3, 4  # header word indexes (see Ring)


def _dumps(obj: Any, buffers: list[pickle.PickleBuffer] | None) -> bytes:
    try:
        if buffers is None:
            return pickle.dumps(obj, 5)
        return pickle.dumps(obj, 5, buffer_callback=buffers.append)
    except Exception:
        # Lambdas and closures go by value; anything else raises a SerializationError
        # that names the culprit -- here, in the caller, before anything is queued.
        return serialize.dumps(obj, what="the item put into the queue")


def encode(obj: Any, prefix: str) -> tuple[int, bytes, Segment | None]:
    """``(kind, payload, segment)`` for ``obj``; a big one is written into a new segment.

    ``bytes`` and ``bytearray`` items are not pickled: their bytes are the payload, copied
    once into shared memory and once out of it.
    """
    t = type(obj)
    if (t is bytes or t is bytearray) and len(obj) >= RAW_MIN:
        kind = BYTES if t is bytes else BYTEARRAY
        if len(obj) <= SPILL:
            return kind, obj, None
        return spill(obj, prefix, kind)
    buffers: list[pickle.PickleBuffer] = []
    data = _dumps(obj, buffers)
    if not buffers:
        if len(data) <= SPILL:
            return INLINE, data, None
        sizes: list[int] = []
    else:
        sizes = [memoryview(b).nbytes for b in buffers]
        if len(data) + sum(sizes) <= SPILL:
            return INLINE, _dumps(obj, None), None
    total = len(data) + sum(sizes)
    seg = Segment.create(prefix, total)
    try:
        view = seg.buf
        view[: len(data)] = data
        pos = len(data)
        for buf, size in zip(buffers, sizes, strict=True):
            raw = memoryview(buf).cast("B")
            view[pos : pos + size] = raw
            pos += size
    except BaseException:
        seg.unlink()
        seg.close()
        raise
    meta = pickle.dumps((seg.name, len(data), sizes, INLINE), 5)
    seg.close()
    return SEGMENT, meta, seg


def spill(payload: Any, prefix: str, kind: int) -> tuple[int, bytes, Segment]:
    """Write a frame's payload into its own segment; returns the frame that points to it."""
    n = len(payload)
    seg = Segment.create(prefix, n)
    try:
        seg.buf[:n] = payload
    except BaseException:
        seg.unlink()
        seg.close()
        raise
    seg.close()
    return SEGMENT, pickle.dumps((seg.name, n, [], kind), 5), seg


def decode(kind: int, payload: bytes | memoryview) -> Any:
    """The object back from :func:`encode`'s output (unlinks a segment it reads)."""
    if kind == INLINE:
        return pickle.loads(payload)
    if kind == BYTES:
        return bytes(payload)
    if kind == BYTEARRAY:
        return bytearray(payload)
    name, pickled, sizes, inner = pickle.loads(payload)
    seg = Segment(name)
    seg.unlink()  # one reader: the name can go now; the mapping lives while it is used
    view = seg.buf
    if inner != INLINE:
        try:
            return bytes(view[:pickled]) if inner == BYTES else bytearray(view[:pickled])
        finally:
            seg.close()
    pos = pickled
    buffers = []
    for size in sizes:
        buffers.append(view[pos : pos + size])
        pos += size
    obj = pickle.loads(view[:pickled], buffers=buffers)
    if not sizes:
        seg.close()
    return obj


def peek(kind: int, payload: bytes | memoryview) -> Any:
    """The object of a frame without taking it: a segment stays for its reader (the
    object is a copy, for comparing items in a priority store)."""
    if kind == INLINE:
        return pickle.loads(payload)
    if kind == BYTES:
        return bytes(payload)
    if kind == BYTEARRAY:
        return bytearray(payload)
    name, pickled, sizes, inner = pickle.loads(payload)
    seg = Segment(name)
    try:
        view = seg.buf
        if inner != INLINE:
            return bytes(view[:pickled]) if inner == BYTES else bytearray(view[:pickled])
        pos = pickled
        buffers = []
        for size in sizes:
            buffers.append(bytearray(view[pos : pos + size]))
            pos += size
        with view[:pickled] as head:
            return pickle.loads(head, buffers=buffers)
    finally:
        seg.close()


class Ring:
    """The header counters and byte ring inside a queue's segment (caller holds the lock)."""

    __slots__ = ("cap", "data", "hdr", "segment")

    # header word indexes
    MAGIC, HEAD, TAIL, COUNT, GETTERS, PUTTERS, UNFINISHED, JOINERS, CLOSED, MAXSIZE = range(1, 11)

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.hdr = segment.buf[:HEADER].cast("q")
        self.data = segment.buf[HEADER:]
        self.cap = len(self.data)

    @staticmethod
    def size_for(capacity: int) -> int:
        """Bytes of segment needed for a ring of ``capacity`` bytes."""
        return HEADER + (capacity + 7) // 8 * 8

    def free(self) -> int:
        hdr = self.hdr
        return self.cap - (hdr[self.TAIL] - hdr[self.HEAD])

    def push(self, kind: int, payload: bytes, item: Any = None) -> bool:
        """Append one frame; ``False`` if it does not fit (the caller spills it).
        (``item`` is for ordered stores' sake: a ring keeps arrival order.)"""
        hdr = self.hdr
        n = len(payload)
        need = 16 + ((n + 7) & -8)
        cap = self.cap
        tail = hdr[_TAIL]
        pos = tail % cap
        if need > cap - pos:
            return self._push_wrapped(kind, payload, tail, pos)
        if tail - hdr[_HEAD] + need > cap:
            return False
        data = self.data
        _pack_into(data, pos, n, kind)
        data[pos + 16 : pos + 16 + n] = payload
        hdr[_TAIL] = tail + need
        hdr[_COUNT] += 1
        return True

    def _push_wrapped(self, kind: int, payload: bytes, tail: int, pos: int) -> bool:
        """The frame does not fit before the end: a wrap marker, then the frame at 0."""
        hdr = self.hdr
        n = len(payload)
        need = 16 + ((n + 7) & -8)
        cap = self.cap
        to_end = cap - pos
        if tail - hdr[_HEAD] + to_end + need > cap:
            return False
        data = self.data
        if to_end >= 16:
            _pack_into(data, pos, _WRAP, 0)
        _pack_into(data, 0, n, kind)
        data[16 : 16 + n] = payload
        hdr[_TAIL] = tail + to_end + need
        hdr[_COUNT] += 1
        return True

    def pop(self) -> tuple[int, bytes]:
        """Take the oldest frame (``COUNT`` must be > 0)."""
        hdr = self.hdr
        data = self.data
        cap = self.cap
        head = hdr[_HEAD]
        pos = head % cap
        if cap - pos < 16:  # no room for a frame header before the end: wrapped
            head += cap - pos
            pos = 0
            n, kind = _unpack_from(data, 0)
        else:
            n, kind = _unpack_from(data, pos)
            if n == _WRAP:
                head += cap - pos
                pos = 0
                n, kind = _unpack_from(data, 0)
        payload = data[pos + 16 : pos + 16 + n].tobytes()
        head += 16 + ((n + 7) & -8)
        if head == hdr[_TAIL]:
            head = hdr[_TAIL] = 0
        hdr[_HEAD] = head
        hdr[_COUNT] -= 1
        return kind, payload

    def release(self) -> None:
        """Drop this process's views of the segment."""
        self.hdr.release()
        self.data.release()
