"""Batches on a shared (cross-process) queue: the methods ``SharedQueue`` binds.

The semantics are ``_queue_batch``'s. Here a batch takes the process-shared lock once per
part: ``put_many`` pickles every item first (an item that cannot be pickled raises before
anything is queued), pushes as many frames as ``maxsize`` and the ring allow, rings as many
parked getters as it pushed, and leaves the rest to the one-item wait (``_put_wait``: room,
or ring space, or a spill to a segment of its own), then goes on. ``get_many`` pops every
frame it may under one lock, rings as many parked putters, and decodes outside the lock.
"""

from __future__ import annotations

import pickle
from array import array
from typing import Any

from plait._channels._queue_batch import (
    check_max_items,
    deadline_of,
    left_until,
    mark_items_put,
)
from plait._core import current_strand, hooks
from plait._errors import Empty, Full
from plait._ipc import doorbell, transport
from plait._ipc.robust import LockTimeout
from plait._ipc.transport import Ring

__all__ = ["async_get_many", "async_put_many", "get_many", "put_many", "take_many"]

GET, PUT = 0, 1  # the wait table's directions (as in _xproc)
FIFO = 0  # a ring's order (as in _xproc)
_COUNT, _CLOSED, _UNFINISHED = Ring.COUNT, Ring.CLOSED, Ring.UNFINISHED
_INT, _INLINE = transport.INT, transport.INLINE
_INT_MIN, _INT_MAX = transport.INT_MIN, transport.INT_MAX
_loads = pickle.loads
_SPIN = 300  # looks at a full queue before parking (as _xproc's put)
_decode = transport.decode
_wake = doorbell.wake


class _Ints:
    """The frames of a batch of plain ints for a ring: their values, pushed as blocks
    (``Ring.push_ints``); indexed, a frame as ``_encode`` makes it."""

    __slots__ = ("values",)

    def __init__(self, values: array[int]) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, j: int) -> tuple[int, int, None]:
        return _INT, self.values[j], None


def _encode_all(sq: Any, batch: list[Any], start: int) -> Any:
    """Every frame of ``batch[start:]``; nothing is left behind if one cannot be pickled.
    (An ordered store takes no unpickled ``INT`` frames: its items go through
    ``transport.encode``, as its ``put`` does.)"""
    frames: list[Any] = []
    fifo = sq.order == FIFO
    prefix = sq.prefix
    rest = batch[start:] if start else batch
    if fifo and rest and set(map(type, rest)) == {int}:
        try:
            return _Ints(array("q", rest))
        except OverflowError:  # an int beyond 64 bits: pickled, as put does
            pass
    try:
        for item in batch[start:]:
            if not fifo:
                frames.append(transport.encode(item, prefix))
            elif type(item) is int and _INT_MIN <= item <= _INT_MAX:
                frames.append((_INT, item, None))
            else:
                frames.append(sq._encode(item))
    except BaseException:
        _unlink(frames, 0)
        raise
    return frames


def _unlink(frames: Any, start: int) -> None:
    if type(frames) is _Ints:
        return
    for _kind, _payload, seg in frames[start:]:
        if seg is not None:
            seg.unlink()


def _push_part(sq: Any, batch: list[Any], frames: Any, at: list[int], deadline: Any) -> None:
    """Push ``frames[at[0]:]`` while there is room, under one lock; ``at[0]`` follows the
    frames pushed, even when a push raises (a priority store's ``TypeError``)."""
    try:
        sq._acquire(deadline)
    except LockTimeout:
        raise Full from None
    hdr = sq.hdr
    start = j = at[0]
    offset = len(batch) - len(frames)
    try:
        if hdr[_CLOSED]:
            raise sq._closed("put")
        n = len(frames)
        end = n if sq.maxsize <= 0 else min(n, j + sq.maxsize - int(hdr[_COUNT]))
        push = sq.ring.push
        try:
            if type(frames) is _Ints:
                values = frames.values
                push_ints = sq.ring.push_ints
                while j < end:
                    k = push_ints(values[j:end])
                    if not k:  # it must wrap or join the overflow chain: one by one
                        if not push(_INT, values[j]):
                            break
                        k = 1
                    j += k
            while j < end:
                kind, payload, _seg = frames[j]
                if not push(kind, payload, batch[offset + j]):
                    break  # no space for its bytes now: the one-item path waits or spills
                j += 1
        finally:
            at[0] = j
            pushed = j - start
            if pushed:
                hdr[_UNFINISHED] += pushed
                waits = sq.waits
                while pushed and waits[GET]:
                    _wake(waits, GET)
                    pushed -= 1
    finally:
        sq._release()
    if hooks.active:
        me = current_strand()
        for item in batch[offset + start : offset + j]:
            hooks.sent(me, sq, item)


def _room_soon(sq: Any, block: bool) -> bool:
    """Whether a full queue got room within a short spin: a reader usually makes room
    within microseconds, so a stream of batches makes no system call per batch (as
    ``put`` looks before it sleeps)."""
    maxsize = sq.maxsize
    if not block or maxsize <= 0:
        return False
    hdr = sq.hdr
    for _ in range(_SPIN):
        if hdr[_CLOSED]:
            return False
        if hdr[_COUNT] < maxsize:
            return True
    return False


def put_many(
    self: Any, batch: list[Any], block: bool = True, timeout: float | None = None, start: int = 0
) -> None:
    """``put_many`` of ``batch[start:]`` (the ones before are in); see ``_queue_batch``."""
    deadline = deadline_of(block, timeout)
    frames = _encode_all(self, batch, start)
    at = [0]
    stalled_at = -1
    try:
        while at[0] < len(frames):
            _push_part(self, batch, frames, at, deadline)
            j = at[0]
            if j < len(frames) and j != stalled_at and _room_soon(self, block):
                stalled_at = j  # (no progress after the spin: wait the one-item way)
                continue
            if j < len(frames):  # wait for room (or ring space) for the next one
                kind, payload, seg = frames[j]
                self._drive(self._put_wait(batch[start + j], kind, payload, seg, deadline, False))
                at[0] = j + 1
    except BaseException as exc:
        j = at[0]
        _unlink(frames, j)  # (the frame _put_wait failed to put is unlinked already: no harm)
        mark_items_put(exc, start + j)
        raise


async def async_put_many(
    self: Any, batch: list[Any], block: bool = True, timeout: float | None = None, start: int = 0
) -> None:
    """:func:`put_many` for a coroutine: waits for room on its loop."""
    deadline = deadline_of(block, timeout)
    frames = _encode_all(self, batch, start)
    at = [0]
    stalled_at = -1
    try:
        while at[0] < len(frames):
            _push_part(self, batch, frames, at, deadline)
            j = at[0]
            if j < len(frames) and j != stalled_at and _room_soon(self, block):
                stalled_at = j  # (no progress after the spin: wait the one-item way)
                continue
            if j < len(frames):
                kind, payload, seg = frames[j]
                await self._async_drive(
                    self._put_wait(batch[start + j], kind, payload, seg, deadline, True)
                )
                at[0] = j + 1
    except BaseException as exc:
        j = at[0]
        _unlink(frames, j)
        mark_items_put(exc, start + j)
        raise


def take_many(
    self: Any, max_items: int, deadline: float | None = None, cancellable: bool = False
) -> list[Any]:
    """Take up to ``max_items`` items queued now, under one lock (``[]`` if none).

    Not ``cancellable`` by default: it tops up a first item already taken, which a
    cancellation in the wait for the lock would lose.
    """
    try:
        self._acquire(deadline, cancellable)
    except LockTimeout:
        raise Empty from None
    hdr = self.hdr
    raw: list[Any] = []
    try:
        k = taken = min(int(hdr[_COUNT]), max_items)
        ring = self.ring
        pop = self._pop
        if self.order == FIFO:
            pop_ints = ring.pop_ints
            while k:
                values = pop_ints(k)
                if values:
                    raw += values
                    k -= len(values)
                else:
                    raw.append(pop())
                    k -= 1
        else:
            raw = [pop() for _ in range(k)]
        waits = self.waits
        while taken and waits[PUT]:
            _wake(waits, PUT)
            taken -= 1
    finally:
        self._release()
    items = [
        x
        if type(x) is int
        else (x[1] if x[0] == _INT else (_loads(x[1]) if x[0] == _INLINE else _decode(*x)))
        for x in raw
    ]
    if hooks.active:
        me = current_strand()
        for item in items:
            hooks.received(me, self, item)
    return items


def get_many(
    self: Any, max_items: int, block: bool = True, timeout: float | None = None
) -> list[Any]:
    """``get_many`` on the shared queue; see ``_queue_batch``."""
    check_max_items(max_items)
    deadline = deadline_of(block, timeout)
    items = take_many(self, max_items, deadline, True)
    if items:
        return items
    first = self.get(block, left_until(deadline))
    return [first, *take_many(self, max_items - 1)] if max_items > 1 else [first]


async def async_get_many(
    self: Any, max_items: int, block: bool = True, timeout: float | None = None
) -> list[Any]:
    """:func:`get_many` for a coroutine: waits for the first item on its loop."""
    check_max_items(max_items)
    deadline = deadline_of(block, timeout)
    items = take_many(self, max_items, deadline, True)
    if items:
        return items
    first = await self.async_get(block, left_until(deadline))
    return [first, *take_many(self, max_items - 1)] if max_items > 1 else [first]
