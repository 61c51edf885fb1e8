"""Who holds a shared primitive: records that outlive the process that wrote them.

A process killed while it holds a shared lock (or permits of a shared semaphore, or while
it waits on a shared condition) cannot clean up. So every shared primitive keeps, in its
*anchor* segment (the one every attached process holds, in ``plait._ipc.shm``'s
owner-tagged scheme), a page of 64-bit words::

    word 0        the owner of the primitive's mutex unit: a Lock's or RLock's holder, an
                  Event's internal mutex (0: nobody, or a moment of hand-over)
    word 1        how many slots were ever registered (scans stop there)
    words 2, 3..  one slot per process: [tag, count] -- for a Semaphore the permits this
                  process took and has not given back, for a Condition its strands that
                  wait now

A *tag* is ``start << 32 | pid`` (``start``: the process's start time in clock ticks, low
31 bits), so a pid reused by another process is never mistaken for the dead owner. Every
write is one aligned 8-byte store; a process writes only its own slot, and the owner word
only while it holds (or takes over) the unit.

A strand that cannot get a unit looks at these records on every slice of its wait
(:func:`plait._sync._xproc.sem_wait`): if the holder is dead, it takes the unit over,
gives it back and raises :class:`plait.BrokenResourceError` naming the dead pid -- the
primitive is usable again, but what it guarded may be half-updated, and the caller is
told. Repairs are serialised by an open-file-description lock on the anchor's first byte
(the kernel drops it if the repairer dies too), plus a thread lock within a process.
"""

from __future__ import annotations

import _posixshmem  # type: ignore[import-not-found]
import fcntl
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plait._ipc import shm

__all__ = ["PAGE", "TAG", "Record", "describe", "my_tag", "tag_alive", "tag_pid"]

PAGE = 4096
_SLOTS_AT = 2
_NSLOTS = (PAGE // 8 - _SLOTS_AT) // 2
_MASK31 = (1 << 31) - 1
_PID_MASK = (1 << 32) - 1
# struct flock (Linux, 64-bit): l_type, l_whence, l_start, l_len, l_pid
_FLOCK = "hh4xqqi4x"
_OFD_SETLKW: int | None = getattr(fcntl, "F_OFD_SETLKW", None)


def _compute_tag() -> int:
    pid = os.getpid()
    return ((shm.start_ticks(pid) or 0) & _MASK31) << 32 | pid


#: This process's tag (kept right in a forked child).
TAG = _compute_tag()


def _after_fork() -> None:
    global TAG
    TAG = _compute_tag()


os.register_at_fork(after_in_child=_after_fork)


def my_tag() -> int:
    """This process's tag."""
    return TAG


def tag_pid(tag: int) -> int:
    return tag & _PID_MASK


def tag_alive(tag: int) -> bool:
    """Whether the process that wrote ``tag`` still runs (the same one, not a pid reuse)."""
    pid = tag & _PID_MASK
    ticks = shm.start_ticks(pid)
    if ticks is None:
        return False
    if ticks == -1:  # start times cannot be read here: any process with that pid counts
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return (ticks & _MASK31) == tag >> 32


def describe(tag: int) -> str:
    return f"process {tag & _PID_MASK}"


class Record:
    """The owner word and per-process slots of one shared primitive (see the module doc)."""

    __slots__ = ("_counting", "_local", "_name", "_slot", "_slot_pid", "words")

    def __init__(self, anchor: shm.Segment) -> None:
        self.words: Any = anchor.buf.cast("q")
        self._name = anchor.name
        self._local = threading.Lock()  # one claimant per process at a time
        self._counting = threading.Lock()  # this process's counts, updated by its threads
        self._slot = -1
        self._slot_pid = 0

    # -- the owner word ----------------------------------------------------------------

    @property
    def owner(self) -> int:
        return int(self.words[0])

    # -- serialising repairs across processes -------------------------------------------

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Exclusive across processes and threads for a repair or a slot registration."""
        with self._local:
            if _OFD_SETLKW is None:  # not Linux: repairs race only across processes
                yield
                return
            fd = _posixshmem.shm_open("/" + self._name, os.O_RDWR, mode=0o600)
            try:
                fcntl.fcntl(fd, _OFD_SETLKW, struct.pack(_FLOCK, fcntl.F_WRLCK, 0, 0, 1, 0))
                yield
            finally:
                os.close(fd)  # (drops the lock: this open file description ends here)

    # -- per-process slots -------------------------------------------------------------

    def slot(self) -> int:
        """This process's slot (registered on first use); -1 if the table is full."""
        pid = os.getpid()
        if self._slot_pid == pid:
            return self._slot
        tag = my_tag()
        words = self.words
        found = -1
        with self.claim():
            used = int(words[1])
            for i in range(_NSLOTS):
                if i > used:
                    break
                at = _SLOTS_AT + 2 * i
                held = words[at]
                if held == tag:
                    found = i
                    break
                if found < 0 and (held == 0 or (words[at + 1] <= 0 and not tag_alive(held))):
                    found = i
            if found >= 0:
                at = _SLOTS_AT + 2 * found
                if words[at] != tag:
                    words[at + 1] = 0
                    words[at] = tag
                if found >= used:
                    words[1] = found + 1
        self._slot, self._slot_pid = found, pid
        return found

    def registered_slot(self) -> int:
        """This process's slot if it registered one, else -1 (never registers)."""
        return self._slot if self._slot_pid == os.getpid() else -1

    def add(self, slot: int, n: int) -> int:
        """Add ``n`` to this process's count in ``slot``; return the new count."""
        if slot < 0:
            return 0
        at = _SLOTS_AT + 2 * slot + 1
        with self._counting:
            value = int(self.words[at]) + n
            self.words[at] = value
        return value

    def count(self, slot: int) -> int:
        return 0 if slot < 0 else int(self.words[_SLOTS_AT + 2 * slot + 1])

    def dead(self) -> list[tuple[int, int, int]]:
        """``(slot, tag, count)`` of every slot with a positive count whose process died."""
        words = self.words
        found = []
        for i in range(int(words[1])):
            at = _SLOTS_AT + 2 * i
            tag = words[at]
            if tag and words[at + 1] > 0 and not tag_alive(tag):
                found.append((i, int(tag), int(words[at + 1])))
        return found

    def pids_counted(self) -> list[int]:
        """Pids of the slots with a positive count."""
        words = self.words
        return [
            int(words[_SLOTS_AT + 2 * i]) & _PID_MASK
            for i in range(int(words[1]))
            if words[_SLOTS_AT + 2 * i] and words[_SLOTS_AT + 2 * i + 1] > 0
        ]

    def clear_slot(self, slot: int, tag: int) -> int:
        """Empty a dead process's slot (call under :meth:`claim`); its count, or 0 if the
        slot changed hands meanwhile."""
        at = _SLOTS_AT + 2 * slot
        if self.words[at] != tag:
            return 0
        count = int(self.words[at + 1])
        self.words[at + 1] = 0
        self.words[at] = 0
        return count
