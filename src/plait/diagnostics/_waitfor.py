"""Deadlock detection in one process: the wait-for graph, followed when a strand would park
for good.

The kernel calls :func:`check` (through ``plait._core.parking.park_checks``) on the park slow
path only, and only for a wait with no time limit. It follows the chain *waiting strand ->
object -> the strand that owns it -> what that strand waits on (with no time limit) -> ...*;
if the chain comes back to the waiting strand, that wait raises :class:`plait.DeadlockError`
instead of parking. A timed wait is never an error and never a link of a chain: it ends by
itself.

Edges: a plait ``Lock``/``RLock`` (in this process) points to its owner strand (a ``Lock``
taken on its uncontended fast path records no owner unless debug mode is on -- see
:mod:`plait.diagnostics._debug`); a ``join()``/``result()`` points to the strand waited for.
A condition's waiters have no owner (anyone may notify), but re-taking its lock is a lock
wait like any other. A strand waiting on a plain ``Lock`` it took itself is not reported:
any strand may release a ``Lock`` (threading's rule), and that is how a lock is used as a
signal; ``ignore_deadlocks(lock)`` leaves out a signalling lock that is part of a longer
chain.

Checks are serialised by one lock, so of two strands closing the same cycle at once exactly
one sees it (the other stays parked and gets the lock the first one gives up).
"""

from __future__ import annotations

import asyncio
import os
import sys
import weakref
from _thread import allocate_lock
from typing import Any, NamedTuple

from plait._core.parking import CANCELLED, QUEUED, Waiter, park_checks
from plait._core.strands import Strand
from plait._errors import DeadlockError
from plait._sync._lock import _LockCore
from plait.diagnostics import _stacks

_get_running_loop = asyncio._get_running_loop

__all__ = ["WaitLink", "detect_deadlocks", "ignore_deadlocks", "untimed_wait_of"]


class WaitLink(NamedTuple):
    """One link of a deadlock cycle: ``strand`` waits at ``waits_at`` for ``waits_for``,
    which ``holder`` holds (taken at ``taken_at``, when known). Strings only, so a
    ``DeadlockError`` pickles and keeps no strand alive."""

    strand: str
    waits_for: str
    waits_at: str
    holder: str
    taken_at: str


class _Graph:
    """The untimed waits seen so far, by strand (a stale entry is one whose waiter is no
    longer queued), the objects opted out, and the lock that serialises checks.

    Only waits that can be links are recorded (on an in-process lock, on a strand's end),
    so a stale entry keeps nothing alive that owns an OS resource (a shared lock's
    semaphore); entries are overwritten by the strand's next wait or pruned.
    """

    __slots__ = ("any_ignored", "ignored", "lock", "prune_at", "untimed")

    def __init__(self) -> None:
        self.untimed: dict[Strand, Waiter] = {}
        self.ignored: weakref.WeakSet[Any] = weakref.WeakSet()
        self.any_ignored = False
        self.lock = allocate_lock()
        self.prune_at = 256

    def prune(self) -> None:
        """Drop the waits that are over (amortised: when the table has doubled)."""
        untimed = self.untimed
        for s, w in list(untimed.items()):
            if w.state != QUEUED:
                untimed.pop(s, None)
        self.prune_at = max(256, 2 * len(untimed))


_graph = _Graph()
_taken_sites: Any = None  # set by _debug: lock -> (strand, site) of its last acquisition


def untimed_wait_of(strand: Strand) -> Waiter | None:
    """The waiter of ``strand``'s current wait with no time limit, if it is in one."""
    waiter = _graph.untimed.get(strand)
    if waiter is None or waiter.state != QUEUED:
        return None
    return waiter


def _holder_of(obj: object) -> Strand | None:
    """The strand whose progress ``obj``'s wait depends on, when there is exactly one."""
    if isinstance(obj, _LockCore):
        if obj._shared is not None or not obj._inner.locked():
            return None
        return obj._owner
    if isinstance(obj, Strand):
        return None if obj.state == "done" else obj
    return None


def _find_cycle(me: Strand, on: object) -> list[tuple[Strand, object, Strand]] | None:
    """The links ``(strand, object, holder)`` from ``me`` back to ``me``, or ``None``."""
    links: list[tuple[Strand, object, Strand]] = []
    seen = {me}
    strand, obj = me, on
    for _ in range(10_000):
        if _graph.any_ignored and obj in _graph.ignored:
            return None
        holder = _holder_of(obj)
        if holder is None:
            return None
        if holder is me and not links and isinstance(obj, _LockCore) and not obj._reentrant:
            return None  # a Lock waited on by its own taker: the signal idiom (see below)
        links.append((strand, obj, holder))
        if holder is me:
            return links
        if holder in seen:
            return None  # a cycle that does not go through this wait: its own strand saw it
        seen.add(holder)
        waiter = untimed_wait_of(holder)
        if waiter is None:
            return None  # running, or waiting with a time limit: it may still move
        strand, obj = holder, waiter.on
    return None


def _still_there(me: Strand, links: list[tuple[Strand, object, Strand]]) -> bool:
    """Re-read every link: each holder still holds, each waiter still waits."""
    for strand, obj, holder in links:
        if _holder_of(obj) is not holder:
            return False
        if strand is not me and untimed_wait_of(strand) is None:
            return False
    return True


_OTHER, _LOCK, _STRAND = 0, 1, 2
_kinds: dict[type, int] = {}  # what a wait on an object of each type can link to


def _kind_of(cls: type) -> int:
    """Classify ``cls`` once (a Strand check goes through its ABC: slow to repeat)."""
    kind = _LOCK if issubclass(cls, _LockCore) else _STRAND if issubclass(cls, Strand) else _OTHER
    _kinds[cls] = kind
    return kind


def check(waiter: Waiter) -> None:
    """The kernel's untimed-park check: raise ``DeadlockError`` if this wait closes a cycle.

    Cheap when there is no cycle: record the wait, look at the one holder; only when that
    holder is itself in an untimed wait is the chain followed, under the graph's lock.
    Every strand records its wait before it looks, so of two strands closing a cycle at
    once at least one sees the other; the lock makes it exactly one.
    """
    obj: Any = waiter.on  # its kind is checked below, by type, once per type
    kind = _kinds.get(type(obj))
    if kind is None:
        kind = _kind_of(type(obj))
    if kind == _OTHER:
        return  # an event, a queue, a condition's notify: no single strand to wait for
    me = waiter.strand
    graph = _graph
    untimed = graph.untimed
    if kind == _LOCK:  # the common case, read inline
        if obj._shared is not None:
            return  # held in another process: no link in this process's graph
        untimed[me] = waiter
        if len(untimed) > graph.prune_at:
            graph.prune()
        holder = obj._owner
        if holder is None:
            return
        if holder is not me:
            held = untimed.get(holder)
            if held is None or held.state != QUEUED:
                if _blocks_the_loop_of(waiter, holder):
                    _give_up(waiter, [(me, obj, holder)], loop_blocked=True)
                return
    else:  # a strand's end
        untimed[me] = waiter
        if obj.state == "done" or untimed_wait_of(obj) is None:
            return
    with graph.lock:  # held until the waiter is out: one strand per cycle raises
        links = _find_cycle(me, waiter.on)
        if links is None or not _still_there(me, links):
            return
        _give_up(waiter, links)


def _blocks_the_loop_of(waiter: Waiter, holder: Strand) -> bool:
    """Whether this blocking wait holds up the event loop ``holder`` (a coroutine) runs on:
    a sync acquire inside a coroutine, of a lock another coroutine of the same loop holds."""
    if waiter.fut is not None or holder.kind != "async" or holder.state == "done":
        return False
    loop = holder.loop
    return loop is not None and loop is _get_running_loop()


def _give_up(
    waiter: Waiter, links: list[tuple[Strand, object, Strand]], *, loop_blocked: bool = False
) -> None:
    """Take ``waiter`` out of its queue and raise ``DeadlockError`` (unless a wake won)."""
    queue = waiter.queue
    with queue.mutex:
        removed = queue.remove(waiter, CANCELLED)
    if not removed:
        return  # handed what it waited for meanwhile: no deadlock after all
    raise _error(waiter.strand, links, sys._getframe(2), loop_blocked)


def _error(
    me: Strand, links: list[tuple[Strand, object, Strand]], here: Any, loop_blocked: bool
) -> DeadlockError:
    chain: list[WaitLink] = []
    lines = []
    for strand, obj, holder in links:
        frames = _stacks.frames_of(strand, current=here if strand is me else None)
        name = _stacks.name_of(obj, frames)
        what = _describe(obj, name)
        waits_at = _stacks.site_of(_stacks.user_frame(frames))
        taken_at = _taken_at(obj, holder)
        link = WaitLink(
            _stacks.describe_strand(strand),
            what,
            waits_at,
            _stacks.describe_strand(holder),
            taken_at,
        )
        chain.append(link)
        held = f", held by {link.holder}" if not isinstance(obj, Strand) else ""
        taken = f" (taken at {taken_at})" if taken_at != "?" else ""
        lines.append(f"  {link.strand} waits for {what} at {waits_at}{held}{taken}")
    if loop_blocked:
        blocked = _stacks.describe_strand(links[-1][2])
        lines.append(
            f"  and {blocked} runs on the event loop this blocking call holds up: it can "
            f"never run to release it (await the async form instead)"
        )
    message = (
        "deadlock: these strands wait on each other forever (this wait would close the "
        "cycle, so it raises instead):\n" + "\n".join(lines)
    )
    return DeadlockError(message, tuple(chain))


def _describe(obj: object, name: str | None) -> str:
    if isinstance(obj, Strand):
        return f"the end of {_stacks.describe_strand(obj)}"
    kind = f"plait.{type(obj).__name__}"
    return f"{kind} {name!r}" if name else f"{kind} at {id(obj):#x}"


def _taken_at(obj: object, holder: Strand) -> str:
    sites = _taken_sites
    if sites is None or isinstance(obj, Strand):
        return "?"
    try:
        seen = sites.get(obj)
    except TypeError:
        return "?"
    if seen is None or seen[0]() is not holder:
        return "?"
    return str(seen[1])


def detect_deadlocks(enabled: bool | None = None) -> bool:
    """Turn deadlock detection on or off for this process; return whether it was on.

    On by default; ``PLAIT_DEADLOCK_CHECK=0`` in the environment starts with it off.
    ``None`` only asks.
    """
    was = park_checks.untimed is not None
    if enabled is not None:
        park_checks.untimed = check if enabled else None
    return was


def ignore_deadlocks(obj: object) -> None:
    """Leave ``obj`` (a lock, a strand) out of deadlock detection: waits on it never raise
    ``DeadlockError`` (for a ``Lock`` used as a signal that another strand releases)."""
    _graph.ignored.add(obj)
    _graph.any_ignored = True


def _install_default() -> None:
    if os.environ.get("PLAIT_DEADLOCK_CHECK", "1").strip() not in ("0", "false", "no", "off"):
        park_checks.untimed = check
