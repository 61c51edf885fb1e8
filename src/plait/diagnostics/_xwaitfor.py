"""Deadlocks across processes: two processes each holding a shared lock the other waits for.

A shared lock's segment says which process holds it (its holder tag) and which processes
wait on it (its doorbell wait table, :mod:`plait._ipc.doorbell`). So when a strand here is
about to wait with no time limit on a shared lock held by process P, and P is announced as
waiting on another shared lock that *this* process holds, the two processes wait on each
other.

When the other processes answer (:mod:`._xquery`), a cycle raises ``DeadlockError`` in the
wait that closes it. This module is the fallback, from the wait tables alone: what it
cannot see is P's strands (P may have another strand about to release the lock, or its
wait may have a time limit; or P does not answer). So this is never raised as an error
here; it is re-checked :data:`CONFIRM_AFTER` seconds later and, if every part still holds,
reported on stderr (within a second of the cycle closing) naming both processes, both
locks, and this process's waiting strand and line. Each process of the cycle reports its
own side.

Reads only: the holder word and the wait table of the segments this process has opened
(``plait._sync._xproc``), with no lock taken (a stale read is caught by the re-check).
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from typing import Any

from plait._core.parking import QUEUED, Waiter
from plait._ipc import doorbell
from plait._sync import _robust, _xproc
from plait.diagnostics import _stacks

__all__ = ["CONFIRM_AFTER", "check_shared_lock", "reports"]

CONFIRM_AFTER = 0.5  # seconds a cycle must still hold before it is reported
_TAG_SHIFT = 40  # a wait table's tag: pid << 40 | start (see doorbell)

#: Every report made by this process, newest last (what a test or the tour reads).
reports: list[str] = []
_armed: set[int] = set()  # id() of the waiters a re-check is pending for


def _holder_pid(state: Any) -> int:
    return _robust.tag_pid(int(state.words[_xproc.HOLDER]))


def _waiting_pids(state: Any) -> set[int]:
    """The processes announced as waiting on ``state``'s object, in any direction."""
    table = state.table
    pids = set()
    for slot in range(doorbell.SLOTS):
        base = doorbell._TOTALS + slot * doorbell._W
        tag = int(table[base + doorbell._TAG])
        if tag and any(table[base + doorbell._COUNT0 + d] for d in range(doorbell.DIRECTIONS)):
            pids.add(tag >> _TAG_SHIFT)
    return pids


def _cycle(state: Any) -> tuple[int, Any] | None:
    """(the holder's pid, the state of a lock this process holds that it waits on)."""
    me = os.getpid()
    holder = _holder_pid(state)
    if holder in (0, me):
        return None
    for other in list(_xproc._states):
        if other is state or other.what != "lock":
            continue
        if _holder_pid(other) == me and holder in _waiting_pids(other):
            return holder, other
    return None


def check_shared_lock(waiter: Waiter) -> None:
    """A strand is about to wait with no time limit on a shared lock: if that closes a
    cycle with another process, have it confirmed and reported shortly."""
    state = waiter.on._shared  # type: ignore[attr-defined]
    if state is None or state.what != "lock" or _cycle(state) is None:
        return
    key = id(waiter)
    if key in _armed:
        return
    _armed.add(key)
    frames = _stacks.frames_of(waiter.strand, current=sys._getframe(1))
    site = _stacks.site_of(_stacks.user_frame(frames))
    name = _stacks.name_of(waiter.on, frames)
    _thread.start_new_thread(_confirm, (waiter, state, site, name, time.monotonic()))


def _confirm(waiter: Waiter, state: Any, site: str, name: str | None, closed: float) -> None:
    try:
        time.sleep(CONFIRM_AFTER)
        found = _cycle(state)
        if waiter.state != QUEUED or found is None:
            return  # it moved on: no deadlock
        holder, other = found
        me = os.getpid()
        what = f"plait.Lock {name!r}" if name else "a shared plait lock"
        text = (
            f"plait: deadlock across processes: {_stacks.describe_strand(waiter.strand)} of "
            f"process {me} waits for {what} at {site}, held by process {holder}; process "
            f"{holder} waits for another shared lock ({other.prefix}), held by process {me}. "
            f"Neither can go on. (Reported {time.monotonic() - closed:.2f} s after this wait "
            f"closed the cycle; not raised: plait cannot see the other process's strands.)\n"
        )
        reports.append(text)
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
    finally:
        _armed.discard(id(waiter))
