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
:mod:`plait.diagnostics._debug`); a ``Semaphore``/``BoundedSemaphore`` points to every strand
holding one of its permits (known in debug mode, when every permit taken is accounted
for); a ``join()``/``result()`` points to the strand waited for. A condition's waiters have
no owner (anyone may notify), but re-taking its lock is a lock wait like any other. A
strand waiting on a plain ``Lock`` (or a semaphore) it took itself is not reported: any
strand may release a ``Lock`` (threading's rule), and that is how a lock is used as a
signal (a semaphore once released by a strand that held none is a signal for good);
``ignore_deadlocks(lock)`` leaves out a signalling lock that is part of a longer chain.

Waits that anyone may end (an ``Event``, a ``Condition``'s notify, a ``Barrier``, a queue's
get or put) have no edge; they are caught by the second rule, Go's "all goroutines are
asleep" (:mod:`plait.diagnostics._asleep`): when every thread of the process waits with no
time limit on an object of this process, nothing is left to wake any of them.

Checks are serialised by one lock, so of two strands closing the same cycle at once exactly
one sees it (the other stays parked and gets the lock the first one gives up).
"""

from __future__ import annotations

import asyncio
import os
import sys
import weakref
from _thread import allocate_lock, get_ident
from typing import Any, NamedTuple

from plait._core.parking import CANCELLED, QUEUED, Waiter, park_checks
from plait._core.strands import Strand
from plait._errors import DeadlockError
from plait._ipc import promotion
from plait._sync._lock import _LockCore
from plait._sync._semaphore import Semaphore
from plait.diagnostics import _asleep, _stacks, _xquery, _xwaitfor

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
    """The untimed waits seen so far, by strand and by blocked thread (a stale entry is one
    whose waiter is no longer queued), the objects opted out, and the lock that serialises
    checks.

    Only waits on an in-process object are recorded; an object that becomes shared has
    its entries dropped (:func:`_forget_waits_on`), so a stale entry keeps nothing alive
    that owns an OS resource (a shared object's segment). Entries are overwritten by the
    strand's next wait or pruned.
    """

    __slots__ = ("any_ignored", "ignored", "lock", "prune_at", "threads", "untimed")

    def __init__(self) -> None:
        self.untimed: dict[Strand, Waiter] = {}
        self.threads: dict[int, Waiter] = {}  # thread ident -> its blocking untimed wait
        self.ignored: weakref.WeakSet[Any] = weakref.WeakSet()
        self.any_ignored = False
        self.lock = allocate_lock()
        self.prune_at = 256

    def prune(self) -> None:
        """Drop the waits that are over (amortised: when the table has doubled)."""
        for strand, w in list(self.untimed.items()):
            if w.state != QUEUED:
                self.untimed.pop(strand, None)
        for ident, w in list(self.threads.items()):
            if w.state != QUEUED:
                self.threads.pop(ident, None)
        self.prune_at = max(256, 2 * len(self.untimed), 2 * len(self.threads))


_graph = _Graph()


def _forget_waits_on(obj: object) -> None:
    """``obj`` became shared: drop the recorded waits on it (its local waiters were handed
    over to its shared backend, where waits are not recorded here)."""
    graph = _graph
    for strand, waiter in list(graph.untimed.items()):
        if waiter.on is obj:
            graph.untimed.pop(strand, None)
    for ident, waiter in list(graph.threads.items()):
        if waiter.on is obj:
            graph.threads.pop(ident, None)


promotion.on_promote.append(_forget_waits_on)
_taken_sites: Any = None  # set by _debug: lock -> (strand, site) of its last acquisition
_sem_holders: Any = None  # set by _debug: semaphore -> {strand: permits held}


def untimed_wait_of(strand: Strand) -> Waiter | None:
    """The waiter of ``strand``'s current wait with no time limit, if it is in one."""
    waiter = _graph.untimed.get(strand)
    if waiter is None or waiter.state != QUEUED:
        return None
    return waiter


def _semaphore_holders(sem: Semaphore) -> tuple[Strand, ...] | None:
    """The strands holding ``sem``'s permits, when every permit taken is accounted for."""
    table = _sem_holders
    if table is None or sem._shared is not None or sem._value != 0:
        return None
    try:
        held = table.get(sem)
    except TypeError:
        return None
    if not held:
        return None  # a signal semaphore (nobody holds one): anyone may release it
    holders = tuple(s for s, n in list(held.items()) if n > 0)
    if sum(held.get(s, 0) for s in holders) != sem._initial:
        return None  # a permit taken or given by someone we did not see: can't tell
    return holders


def _holders_of(obj: object) -> tuple[Strand, ...] | None:
    """The strands one of which must act for a wait on ``obj`` to end, when known."""
    if isinstance(obj, _LockCore):
        if obj._shared is not None or not obj._inner.locked():
            return None
        owner = obj._holder()  # (the fast path records only its thread: resolved here)
        return None if owner is None else (owner,)
    if isinstance(obj, Strand):
        return None if obj.state == "done" else (obj,)
    if isinstance(obj, Semaphore):
        return _semaphore_holders(obj)
    return None


_Link = tuple[Strand, object, tuple[Strand, ...]]


def _find_cycle(me: Strand, on: object) -> list[_Link] | None:
    """The links ``(strand, object, holders)`` of a knot through ``me``, or ``None``.

    From ``me``'s wait, every strand that could end it (the holders) must itself be in an
    untimed wait, and so on; the wait is a deadlock when this closes on itself through
    ``me`` with no way out: every holder reached is waiting. A lock has one holder, a
    semaphore one per permit: with several, all of them must be stuck.
    """
    links: list[_Link] = []
    members: set[Strand] = {me}
    todo: list[tuple[Strand, object]] = [(me, on)]
    closes = False
    while todo:
        if len(links) > 10_000:
            return None
        strand, obj = todo.pop(0)
        if _graph.any_ignored and obj in _graph.ignored:
            return None
        holders = _holders_of(obj)
        if holders is None:
            return None
        if strand in holders and not (isinstance(obj, _LockCore) and obj._reentrant):
            return None  # a Lock or semaphore waited on by its own taker: a signal (above)
        links.append((strand, obj, holders))
        for holder in holders:
            if holder is me:
                closes = True
            if holder in members:
                continue
            waiter = untimed_wait_of(holder)
            if waiter is None:
                return None  # running, or waiting with a time limit: it may still move
            members.add(holder)
            todo.append((holder, waiter.on))
    # A knot that does not go through this wait was there before: its own strand saw it.
    return links if closes else None


def _still_there(me: Strand, links: list[_Link]) -> bool:
    """Re-read every link: the same holders, each waiter still waits."""
    for strand, obj, holders in links:
        if _holders_of(obj) != holders:
            return False
        if strand is not me and untimed_wait_of(strand) is None:
            return False
    return True


_OTHER, _LOCK, _STRAND, _SEM, _ANYONE = 0, 1, 2, 3, 4
_kinds: dict[type, int] = {}  # what a wait on an object of each type can link to


def _kind_of(cls: type) -> int:
    """Classify ``cls`` once (a Strand check goes through its ABC: slow to repeat)."""
    if issubclass(cls, _LockCore):
        kind = _LOCK
    elif issubclass(cls, Strand):
        kind = _STRAND
    elif issubclass(cls, Semaphore):
        kind = _SEM
    elif _asleep.ended_by_anyone(cls):
        kind = _ANYONE
    else:
        kind = _OTHER
    _kinds[cls] = kind
    if kind in (_OTHER, _ANYONE):  # check() looks at nothing for a green strand's wait on it
        park_checks.green_free.add(cls)
    return kind


def check(waiter: Waiter) -> None:
    """The kernel's untimed-park check: raise ``DeadlockError`` if this wait closes a cycle.

    Cheap when there is no cycle: record the wait, look at the one holder; only when that
    holder is itself in an untimed wait is the chain followed, under the graph's lock.
    Every strand records its wait before it looks, so of two strands closing a cycle at
    once at least one sees the other; the lock makes it exactly one. A blocking wait that
    leaves no thread of the process awake is a deadlock too (:mod:`._asleep`).
    """
    obj: Any = waiter.on  # its kind is checked below, by type, once per type
    kind = _kinds.get(type(obj))
    if kind is None:
        kind = _kind_of(type(obj))
    graph = _graph
    if kind == _OTHER or (obj.kind == "process" if kind == _STRAND else obj._shared is not None):
        if waiter.fut is None:
            graph.threads.pop(get_ident(), None)  # waits on the world outside: not asleep
        if kind in (_LOCK, _SEM) and obj._shared is not None:
            _xquery.check(waiter, sys._getframe(1))  # a cycle through other processes?
            if kind == _LOCK:
                _xwaitfor.check_shared_lock(waiter)  # (else: reported if it lasts)
        return
    if kind == _ANYONE:  # no edge to follow: only the every-thread-asleep rule applies
        if waiter.fut is None:
            graph.threads[get_ident()] = waiter
            return _check_asleep(waiter)
        return
    me = waiter.strand
    untimed = graph.untimed
    untimed[me] = waiter
    if waiter.fut is None:
        graph.threads[get_ident()] = waiter
    if len(untimed) > graph.prune_at or len(graph.threads) > graph.prune_at:
        graph.prune()
    if kind == _LOCK:  # the common case, read inline
        holder = obj._holder()
        if holder is None or holder is me:  # (me: a Lock used as a signal, see above)
            return _check_asleep(waiter)
        held = untimed.get(holder)
        if held is None or held.state != QUEUED:
            if _blocks_the_loop_of(waiter, holder):
                _give_up(waiter, [(me, obj, (holder,))], loop_blocked=True)
            if holder.kind == "thread":
                asleep = graph.threads.get(holder.ident)  # (keyed by thread ident)
                if asleep is None or asleep.state != QUEUED:
                    return  # the holder's thread is awake: not every thread sleeps
            return _check_asleep(waiter)
    elif kind == _STRAND and (obj.state == "done" or untimed_wait_of(obj) is None):
        return _check_asleep(waiter)  # a strand's end, and that strand may still move
    elif kind == _SEM:
        holders = _semaphore_holders(obj)  # (known in debug mode only)
        if holders is None or any(untimed_wait_of(h) is None for h in holders if h is not me):
            return _check_asleep(waiter)
    with graph.lock:  # held until the waiter is out: one strand per cycle raises
        links = _find_cycle(me, waiter.on)
        if links is not None and _still_there(me, links):
            _give_up(waiter, links)
            return
    _check_asleep(waiter)


def _check_asleep(waiter: Waiter) -> None:
    """Raise ``DeadlockError`` if this blocking wait leaves no thread of the process awake."""
    if waiter.fut is not None:
        return  # a coroutine's or green strand's wait: its loop's thread runs on
    threads = _graph.threads
    if not _asleep.might_all_wait(threads):
        return
    with _graph.lock:
        waits = _asleep.everyone_waiting(threads)
        if waits is None or waiter not in waits:
            return
        waits.remove(waiter)
        waits.insert(0, waiter)
        links = [(w.strand, w.on, _holders_of(w.on) or ()) for w in waits]
        _give_up(waiter, links, headline=_ASLEEP)


_ASLEEP = (
    "deadlock: every thread of this process waits with no time limit, and none is left to "
    "wake another (this wait is the last one, so it raises instead):"
)


def _blocks_the_loop_of(waiter: Waiter, holder: Strand) -> bool:
    """Whether this blocking wait holds up the event loop ``holder`` (a coroutine) runs on:
    a sync acquire inside a coroutine, of a lock another coroutine of the same loop holds."""
    if waiter.fut is not None or holder.kind != "async" or holder.state == "done":
        return False
    loop = holder.loop
    return loop is not None and loop is _get_running_loop()


def _give_up(
    waiter: Waiter, links: list[_Link], *, loop_blocked: bool = False, headline: str = ""
) -> None:
    """Take ``waiter`` out of its queue and raise ``DeadlockError`` (unless a wake won)."""
    queue = waiter.queue
    with queue.mutex:
        removed = queue.remove(waiter, CANCELLED)
    if not removed:
        return  # handed what it waited for meanwhile: no deadlock after all
    raise _error(waiter.strand, links, _user_caller(), loop_blocked, headline=headline)


def _user_caller() -> Any:
    """The innermost frame outside this package (where the waiting call was made)."""
    frame: Any = sys._getframe(1)
    here = os.path.dirname(os.path.abspath(__file__))
    while frame is not None and frame.f_code.co_filename.startswith(here):
        frame = frame.f_back
    return frame


def _error(
    me: Strand, links: list[_Link], here: Any, loop_blocked: bool, *, headline: str = ""
) -> DeadlockError:
    chain: list[WaitLink] = []
    lines = []
    for strand, obj, holders in links:
        frames = _stacks.frames_of(strand, current=here if strand is me else None)
        name = _stacks.name_of(obj, frames)
        what = _describe(obj, name)
        waits_at = _stacks.site_of(_stacks.user_frame(frames))
        holder = " and ".join(_stacks.describe_strand(h) for h in holders) or "?"
        taken_at = "; ".join(_taken_at(obj, h) for h in holders) or "?"
        if all(part == "?" for part in taken_at.split("; ")):
            taken_at = "?"
        link = WaitLink(_stacks.describe_strand(strand), what, waits_at, holder, taken_at)
        chain.append(link)
        if isinstance(obj, Strand):
            held = ""
        elif holders:
            held = f", held by {holder}"
        elif _kinds.get(type(obj)) == _ANYONE:
            held = ", which only another strand could end"
        else:
            held = ", held by a strand not known here"
        taken = f" (taken at {taken_at})" if taken_at != "?" else ""
        lines.append(f"  {link.strand} waits for {what} at {waits_at}{held}{taken}")
    if loop_blocked:
        blocked = _stacks.describe_strand(links[-1][2][0])
        lines.append(
            f"  and {blocked} runs on the event loop this blocking call holds up: it can "
            f"never run to release it (await the async form instead)"
        )
    message = (
        (
            headline
            or "deadlock: these strands wait on each other forever (this wait would close the "
            "cycle, so it raises instead):"
        )
        + "\n"
        + "\n".join(lines)
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
