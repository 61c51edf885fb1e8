"""Who holds a shared primitive: process tags and per-process counts in its segment.

A process killed while it holds a shared lock (or permits of a shared semaphore, or while
it is counted at a shared barrier) cannot clean up. So a shared primitive keeps, beside its
state words and under its robust mutex (``_xproc``), who holds what:

* a Lock's or RLock's holder word: the holding process's *tag* (0: free);
* per-process slots ``[tag, count]`` (:class:`Slots`): for a Semaphore the permits each
  process took and has not given back (a process that gives back permits it did not take
  goes negative), for a Barrier the parties each process has counted in.

A *tag* is ``start << 32 | pid`` (``start``: the process's start time in clock ticks, low
31 bits), so a pid reused by another process is never mistaken for the dead holder. Every
read and write here happens with the primitive's robust mutex held, so a SIGKILL leaves
the words as they were or as they became, and the next holder of the mutex (or a waiter
woken by the holder's exit) sees a dead tag and repairs: a lock freed and reported, dead
permits given back and reported, a barrier broken.
"""

from __future__ import annotations

import os
from typing import Any

from plait._ipc import robust, shm

__all__ = ["NSLOTS", "TAG", "Slots", "describe", "my_tag", "tag_alive", "tag_pid"]

NSLOTS = 64  # processes with a count in one primitive at once (then: the overflow word)
_MASK31 = (1 << 31) - 1
_PID_MASK = (1 << 32) - 1


def _compute_tag() -> int:
    pid = os.getpid()
    return ((shm.start_ticks(pid) or 0) & _MASK31) << 32 | pid


#: This process's tag (kept right in a forked child).
TAG = _compute_tag()
robust.set_process_tag(TAG)  # what the C takes write (plait/_ipc/_robust.c)


def _after_fork() -> None:
    global TAG
    TAG = _compute_tag()
    robust.set_process_tag(TAG)


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


class Slots:
    """Per-process counts ``[tag, count]`` in ``words`` (a ``q`` view of ``2 * NSLOTS``
    words), plus one overflow count for processes that found no slot. Call every method
    with the primitive's robust mutex held."""

    __slots__ = ("_cached", "words")

    def __init__(self, words: Any) -> None:
        self.words = words
        self._cached = -1

    def mine(self) -> int:
        """This process's slot (claimed on first use); -1 if every slot is taken."""
        words, tag = self.words, TAG
        i = self._cached
        if i >= 0 and words[2 * i] == tag:  # (a forked child's tag is its own: it looks)
            return i
        free = -1
        for j in range(NSLOTS):
            t = words[2 * j]
            if t == tag:
                free = j
                break
            if free < 0 and (t == 0 or (words[2 * j + 1] == 0 and not tag_alive(t))):
                free = j
        if free >= 0 and words[2 * free] != tag:
            words[2 * free + 1] = 0
            words[2 * free] = tag
        self._cached = free
        return free

    def add(self, n: int) -> bool:
        """Count ``n`` more for this process; ``False`` if it has no slot (not counted)."""
        i = self.mine()
        if i < 0:
            return False
        self.words[2 * i + 1] += n
        return True

    def count(self) -> int:
        """This process's count."""
        i = self.mine()
        return 0 if i < 0 else int(self.words[2 * i + 1])

    def total(self) -> int:
        """Every process's count, added up."""
        words = self.words
        return sum(int(words[2 * j + 1]) for j in range(NSLOTS) if words[2 * j])

    def holders(self) -> list[int]:
        """Tags of other processes with a positive count."""
        words, tag = self.words, TAG
        return [
            int(words[2 * j])
            for j in range(NSLOTS)
            if words[2 * j] and words[2 * j + 1] > 0 and words[2 * j] != tag
        ]

    def take_dead(self) -> list[tuple[int, int]]:
        """Empty the slots of dead processes; ``(tag, count)`` of those that counted."""
        words = self.words
        found = []
        for j in range(NSLOTS):
            t = int(words[2 * j])
            if t and t != TAG and not tag_alive(t):
                n = int(words[2 * j + 1])
                words[2 * j + 1] = 0
                words[2 * j] = 0
                if n:
                    found.append((t, n))
        return found

    def take_mine(self) -> int:
        """Empty this process's slot (it ends); its count."""
        words = self.words
        for j in range(NSLOTS):
            if words[2 * j] == TAG:
                n = int(words[2 * j + 1])
                words[2 * j + 1] = 0
                return n
        return 0
