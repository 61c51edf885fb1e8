"""The cross-process transport: a shared-memory ring of framed messages, plus big-buffer spill.

::

    put() in any process                         get() in any process
    ───────────────────                          ─────────────────────
    pickle (protocol 5, out-of-band buffers)
      small ─► frame into the ring  ──────────►  frame out of the ring ─► unpickle
      large ─► new shm segment, its name as  ─►  map segment, unlink its name,
               the frame                          unpickle over views of it (no copy)

The ring lives in one shared-memory segment: a header of 64-bit counters, the object's
robust lock and its wait table, then a byte ring of 8-byte-aligned frames
``[length|kind][payload]`` (a small ``int`` is its own payload: no pickle). The frame format
is written in one place, :class:`Ring` (``push``/``pop``, and :class:`_Log` for the overflow
chain, the same frames). Writers append under the queue's process-shared lock; readers take
one frame at a time under the same lock. No system call is made per message while a burst is
queued -- the lock is a futex that only enters the kernel when contended, and wake-ups are
rung only to parked waiters.

Crash consistency. A holder may be killed at any instruction inside the lock; the next
holder then runs :meth:`Ring.repair`. Every change is made so that one 64-bit store commits
it: a push writes the frame, then ``TAIL``; a pop reads the frame, then moves ``HEAD`` (an
emptied ring is reset by storing ``TAIL = 0`` before ``HEAD = 0``, so an interrupted reset
reads as "empty"); ``COUNT`` is derived, and the repair recounts it by walking the frames.
So at most the dead holder's own item is lost, and none is duplicated or torn. A frame
that does not fit the free space, or a payload over :data:`SPILL`, goes through its own
segment (``shm.Segment``), so a full ring never blocks a writer and a 1 GiB array is
written once, into shared memory, and read in place.

When the ring itself is full (more than its capacity queued and unread), frames of up to
:data:`OVERFLOW_MAX` bytes go on to an *overflow chain*: append-only segments
``<prefix>ovf<k>``, each at least the ring's size, written in order and read in order after
the ring's own frames. (A bigger frame waits a moment for ring space, then takes a segment of
its own, its small reference joining the chain.) While a chain exists every
new frame joins it, so order holds; the reader that empties a segment removes it, and the
ring is used again once the chain is gone. So a put is never turned away for lack of bytes
-- only ``maxsize`` makes a writer wait, as with ``multiprocessing.Queue``.
"""

from __future__ import annotations

import pickle
import sys
from array import array
from typing import Any

from plait._errors import BrokenResourceError
from plait._ipc import doorbell, robust, serialize
from plait._ipc.shm import Segment

__all__ = ["INT", "SPILL", "Ring", "decode", "encode", "int_frame", "peek"]

SPILL = 2 * 1024 * 1024  # payloads larger than this travel in their own segment
HEADER_WORDS = 16  # the counters (see Ring)
MUTEX_AT = HEADER_WORDS * 8  # the object's robust lock (see plait._ipc.robust)
WAITS_AT = MUTEX_AT + robust.SIZE  # its wait table (see plait._ipc.doorbell)
HEADER = WAITS_AT + doorbell.TABLE_BYTES  # the ring's (or store's) bytes start here
INLINE, SEGMENT, BYTES, BYTEARRAY, INT = 0, 1, 2, 3, 4  # frame kinds
RAW_MIN = 4096  # bytes/bytearray items at least this big travel raw, not pickled
WRAP = -1  # a ring word: the next frame starts at 0
INT_WORD = 8 << 8 | INT  # the first word of an int's frame (its value is the second)
_INT_PAIR = (INT_WORD, 0)  # an int frame's two words, its value to fill in
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
_HEAD, _TAIL, _COUNT = 2, 3, 4  # header word indexes (see Ring)
_OVF_FIRST, _OVF_LAST = 14, 15  # the overflow chain: first live id (0: none), last id made
_LOG_HEADER = 16  # an overflow segment's header: write offset, read offset
OVERFLOW_MAX = 256 * 1024  # bigger frames wait a moment for the ring, then spill instead


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


def int_frame(value: int) -> bytes:
    """The payload of an ``INT`` frame (``value`` must fit 64 bits)."""
    return value.to_bytes(8, sys.byteorder, signed=True)


def decode(kind: int, payload: Any) -> Any:
    """The object back from :func:`encode`'s output (unlinks a segment it reads)."""
    if kind == INLINE:
        return pickle.loads(payload)
    if kind == INT:  # (the ring hands an int over as it is)
        if type(payload) is int:
            return payload
        return int.from_bytes(payload, sys.byteorder, signed=True)
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
    if kind != SEGMENT:
        return decode(kind, payload)  # (only a segment frame has a side effect there)
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
    """The header counters and byte ring inside a queue's segment (caller holds the lock).

    A frame is one 64-bit word ``length << 8 | kind`` and the payload, padded to 8 bytes;
    a word :data:`WRAP` says "the next frame starts at 0". An ``int`` that fits 64 bits
    travels unpickled, as the frame ``INT_WORD, value`` (see :func:`int_frame`).
    """

    __slots__ = ("cap", "chain", "data", "hdr", "prefix", "segment", "words")

    # header word indexes
    MAGIC, HEAD, TAIL, COUNT, GETTERS, PUTTERS, UNFINISHED, JOINERS, CLOSED, MAXSIZE = range(1, 11)
    # the C putters' gate: a hint they take turns by, never needed (see plait/_speedups.c)
    PUT_GATE = 12
    OVF_FIRST, OVF_LAST = _OVF_FIRST, _OVF_LAST

    def __init__(self, segment: Segment, prefix: str | None = None) -> None:
        self.segment = segment
        self.hdr = segment.buf[:HEADER].cast("q")
        self.data = segment.buf[HEADER:]
        self.words = self.data.cast("q")
        self.cap = len(self.data)
        self.prefix = prefix  # names the overflow segments; None: no overflow
        self.chain: dict[int, _Log] = {}  # the overflow segments mapped here, by id

    @staticmethod
    def size_for(capacity: int) -> int:
        """Bytes of segment needed for a ring of ``capacity`` bytes."""
        return HEADER + (capacity + 7) // 8 * 8

    def free(self) -> int:
        hdr = self.hdr
        return self.cap - (hdr[self.TAIL] - hdr[self.HEAD])

    def push(self, kind: int, payload: Any, item: Any = None) -> bool:
        """Append one frame; ``False`` if it does not fit (the caller spills it). An ``INT``
        frame's payload is the int itself. (``item`` is for ordered stores' sake: a ring
        keeps arrival order.)"""
        hdr = self.hdr
        if kind == INT:
            n = 8
            if type(payload) is not int:
                payload = int.from_bytes(payload, sys.byteorder, signed=True)
        else:
            n = len(payload)
        need = 8 + ((n + 7) & -8)
        cap = self.cap
        tail = hdr[_TAIL]
        pos = tail % cap
        if not hdr[_OVF_FIRST] and need <= cap - pos and tail - hdr[_HEAD] + need <= cap:
            pass  # the common case: it fits before the end
        elif hdr[_OVF_FIRST]:  # a chain exists: later frames join it, in order
            return self._overflow(kind, int_frame(payload) if kind == INT else payload)
        elif need > cap - pos:  # not before the end: a wrap marker, then the frame at 0
            to_end = cap - pos
            if tail - hdr[_HEAD] + to_end + need > cap:
                return self._overflow(kind, int_frame(payload) if kind == INT else payload)
            self.words[pos >> 3] = WRAP
            tail += to_end
            pos = 0
        else:
            return self._overflow(kind, int_frame(payload) if kind == INT else payload)
        if kind == INT:
            words = self.words
            words[pos >> 3] = INT_WORD
            words[(pos >> 3) + 1] = payload
        else:
            self.words[pos >> 3] = n << 8 | kind
            self.data[pos + 8 : pos + 8 + n] = payload
        hdr[_TAIL] = tail + need  # the commit
        hdr[_COUNT] += 1
        return True

    def pop(self) -> tuple[int, Any]:
        """Take the oldest frame (``COUNT`` must be > 0): ``(kind, payload)``, an ``INT``
        frame's payload being the int itself."""
        hdr = self.hdr
        head = hdr[_HEAD]
        tail = hdr[_TAIL]
        if head == tail and hdr[_OVF_FIRST]:  # the ring is drained: the chain
            return self.pop_overflow()
        words = self.words
        cap = self.cap
        pos = head % cap
        w = words[pos >> 3]
        if w == WRAP:
            head += cap - pos
            pos = 0
            w = words[0]
        if w == INT_WORD:
            kind = INT
            payload: Any = words[(pos >> 3) + 1]
            head += 16
        else:
            kind = w & 255
            n = w >> 8
            payload = self.data[pos + 8 : pos + 8 + n].tobytes()
            head += 8 + ((n + 7) & -8)
        if head == tail:  # emptied: start again at 0 (TAIL first: see the module docstring)
            hdr[_TAIL] = 0
            hdr[_HEAD] = 0
        else:
            hdr[_HEAD] = head  # the commit
        hdr[_COUNT] -= 1
        return kind, payload

    def push_ints(self, values: list[int]) -> int:
        """Append ``INT`` frames for a prefix of ``values`` in one block copy (each must be
        an ``int`` in 64 bits); how many went in -- 0 when the next frame must wrap or join
        the overflow chain (the caller pushes that one with :meth:`push`)."""
        hdr = self.hdr
        if hdr[_OVF_FIRST]:
            return 0
        cap = self.cap
        tail = hdr[_TAIL]
        pos = tail % cap
        k = min(len(values), (cap - pos) >> 4, (cap - (tail - hdr[_HEAD])) >> 4)
        if k <= 0:
            return 0
        block = array("q", _INT_PAIR) * k
        block[1::2] = array("q", values[:k] if k < len(values) else values)
        at = pos >> 3
        self.words[at : at + 2 * k] = block
        hdr[_TAIL] = tail + 16 * k  # the commit
        hdr[_COUNT] += k
        return k

    def pop_ints(self, most: int) -> list[int] | None:
        """Take up to ``most`` frames at once if the next ones are all ``INT`` frames lying
        end to end (``COUNT`` must be > 0): their values; ``None`` if they are not (the
        caller pops frame by frame)."""
        hdr = self.hdr
        head = hdr[_HEAD]
        tail = hdr[_TAIL]
        if head == tail:
            return None
        cap = self.cap
        pos = head % cap
        k = min(most, hdr[_COUNT], (tail - head) >> 4, (cap - pos) >> 4)
        if k <= 0:
            return None
        at = pos >> 3
        words = self.words[at : at + 2 * k].tolist()
        kinds = words[0::2]
        if kinds.count(INT_WORD) != k:
            return None
        head += 16 * k
        if head == tail:  # emptied: start again at 0 (TAIL first, as in pop)
            hdr[_TAIL] = 0
            hdr[_HEAD] = 0
        else:
            hdr[_HEAD] = head  # the commit
        hdr[_COUNT] -= k
        return words[1::2]

    def repair(self) -> None:
        """After a holder died inside the lock: recount the frames, drop an interrupted
        reset, and forget overflow segments already read; :class:`BrokenResourceError` if
        the frames do not add up (then the queue cannot be trusted)."""
        hdr = self.hdr
        head, tail, cap = int(hdr[_HEAD]), int(hdr[_TAIL]), self.cap
        if head > tail or tail - head > cap:  # an interrupted reset: the ring was emptied
            hdr[_TAIL] = 0
            hdr[_HEAD] = 0
            head = tail = 0
        count = 0
        pos = head
        words = self.words
        while pos < tail:
            p = pos % cap
            w = int(words[p >> 3])
            if w == WRAP:
                pos += cap - p
                continue
            n = w >> 8
            if n < 0 or (w & 255) > INT or 8 + n > cap - p:
                raise BrokenResourceError("a shared queue's ring is corrupt (unreadable frame)")
            pos += 8 + ((n + 7) & -8)
            count += 1
        if pos != tail:
            raise BrokenResourceError("a shared queue's ring is corrupt (frames overrun it)")
        first = int(hdr[_OVF_FIRST])
        if first:
            last = int(hdr[_OVF_LAST])
            k = first
            while k <= last:
                log = self._log(k)
                if log is None or (k == first and log.drained() and k < last):
                    if k == first:  # read (and maybe removed) by the dead holder: skip it
                        if log is not None:
                            log.segment.unlink()
                        first = k + 1
                        hdr[_OVF_FIRST] = first
                        k += 1
                        continue
                    raise BrokenResourceError("a shared queue lost an overflow segment")
                count += log.frames()
                k += 1
            if first > last or (first == last and (log := self._log(first)) and log.drained()):
                if first <= last and log is not None:
                    log.segment.unlink()
                hdr[_OVF_FIRST] = 0
        hdr[_COUNT] = count

    def release(self) -> None:
        """Drop this process's views of the segment."""
        for log in self.chain.values():
            log.close()
        self.chain.clear()
        self.words.release()
        self.hdr.release()
        self.data.release()

    # -- the overflow chain (lock held) -----------------------------------------------------

    def _overflow(self, kind: int, payload: Any) -> bool:
        """Append a frame to the chain (starting one if there is none); ``False`` for a
        frame over :data:`OVERFLOW_MAX` (its writer waits a moment for ring space, then
        spills it to a segment of its own and queues the small reference: big frames
        never pile up in the chain), where there can be no chain (no prefix), or where no
        segment can be made (``/dev/shm`` full)."""
        if self.prefix is None or len(payload) > OVERFLOW_MAX:
            return False
        hdr = self.hdr
        need = 8 + ((len(payload) + 7) & -8)
        log = self._log(hdr[_OVF_LAST]) if hdr[_OVF_FIRST] else None
        if log is None or log.room() < need:
            k = hdr[_OVF_LAST] + 1  # ids never repeat: a stale mapping is never reused
            self._forget_read()
            try:
                log = _Log.create(f"{self.prefix}ovf{k}", max(self.cap, need))
            except OSError:
                return False
            self.chain[k] = log
            hdr[_OVF_LAST] = k
            if not hdr[_OVF_FIRST]:
                hdr[_OVF_FIRST] = k
        log.append(kind, payload)
        hdr[_COUNT] += 1
        return True

    def pop_overflow(self) -> tuple[int, Any]:
        """Take the oldest frame of the chain (the ring is drained, ``COUNT`` > 0)."""
        hdr = self.hdr
        first = hdr[_OVF_FIRST]
        log = self._log(first)
        assert log is not None, "the overflow chain lost a segment"
        frame = log.pop()
        hdr[_COUNT] -= 1
        if log.drained():  # its last frame: remove it, go on to the next (or the ring)
            hdr[_OVF_FIRST] = 0 if first == hdr[_OVF_LAST] else first + 1
            log.segment.unlink()
            log.close()
            del self.chain[first]
        return frame

    def _forget_read(self) -> None:
        """Unmap the segments the chain has moved past (read, and removed, elsewhere): a
        mapping would keep their memory alive after their names are gone."""
        chain = self.chain
        first = self.hdr[_OVF_FIRST]
        for old in [i for i in chain if not first or i < first]:
            chain.pop(old).close()

    def _log(self, k: int) -> _Log | None:
        """Overflow segment ``k``, mapped here on first use; mappings of segments the
        chain has moved past are dropped on the way."""
        chain = self.chain
        log = chain.get(k)
        if log is not None:
            return log
        self._forget_read()
        try:
            log = chain[k] = _Log(Segment(f"{self.prefix}ovf{k}", populate=False))
        except FileNotFoundError:
            return None
        return log


class _Log:
    """One overflow segment: frames appended in order, read in order (lock held)."""

    __slots__ = ("cap", "data", "segment", "words")

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.words = segment.buf[:_LOG_HEADER].cast("q")  # [write offset, read offset]
        self.data = segment.buf[_LOG_HEADER:]
        self.cap = len(self.data)

    @classmethod
    def create(cls, name: str, capacity: int) -> _Log:
        size = _LOG_HEADER + (capacity + 7) // 8 * 8
        return cls(Segment(name, size, create=True, populate=False))

    def room(self) -> int:
        return self.cap - self.words[0]

    def append(self, kind: int, payload: Any) -> None:
        w = self.words[0]
        n = len(payload)
        self.data[w : w + 8] = (n << 8 | kind).to_bytes(8, sys.byteorder, signed=True)
        self.data[w + 8 : w + 8 + n] = payload
        self.words[0] = w + 8 + ((n + 7) & -8)

    def pop(self) -> tuple[int, Any]:
        r = self.words[1]
        word = int.from_bytes(self.data[r : r + 8], sys.byteorder, signed=True)
        n = word >> 8
        payload: Any = self.data[r + 8 : r + 8 + n].tobytes()
        kind = word & 255
        if kind == INT:  # handed over as the int itself, as the ring does
            payload = int.from_bytes(payload, sys.byteorder, signed=True)
        self.words[1] = r + 8 + ((n + 7) & -8)
        return kind, payload

    def drained(self) -> bool:
        return self.words[1] >= self.words[0]

    def frames(self) -> int:
        """How many frames are still unread (for a repair)."""
        r, end, n = int(self.words[1]), int(self.words[0]), 0
        while r < end:
            word = int.from_bytes(self.data[r : r + 8], sys.byteorder, signed=True)
            r += 8 + (((word >> 8) + 7) & -8)
            n += 1
        return n

    def close(self) -> None:
        self.words.release()
        self.data.release()
        self.segment.close()
