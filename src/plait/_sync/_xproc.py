"""Primitives across processes: promote-on-pickle to a segment with a robust mutex.

A ``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Event``, ``Condition`` or
``Barrier`` lives in its process until it is first pickled -- passed to a process at spawn,
or later through a queue or pipe to a worker that already runs. Then it is *promoted*
(``plait._ipc.promotion.promote``, the one seam): its state moves into a shared-memory
segment of its own, held by a backend object that the public object keeps in ``_shared``
(its class never changes; objects that are never shared keep the lean in-process fast
paths), and local strands parked on it are woken to wait again on the backend.

One segment per primitive, the same design as a shared queue's (``_channels/_xproc``)::

    0      robust process-shared mutex (``plait._ipc.robust``): guards everything below
    64     state words: holder tag (Lock, RLock), value / initial (Semaphore), flag and
           generation (Event), count / state / generation (Barrier)
    192    per-process slots [tag, count] (``_robust.Slots``): a Semaphore's permits taken,
           a Barrier's parties counted in
    1216   wait table (``plait._ipc.doorbell``): who waits, per process

Every state change happens with the mutex held, a few word stores long, so a SIGKILL at
any instant leaves the old or the new state (or a store order that errs on the safe side,
see each kind) plus an owner-dead mutex; its next acquirer repairs (``EOWNERDEAD``: every
waiter is told to look again). An RLock's owner strand and depth stay in the owner's
process (only it reads or writes them).

Waiting. A strand that cannot proceed announces itself in the wait table and parks
through the kernel (``plait._core.parking``, via the object's doorbell :class:`Room` in its
process): a thread on its lock, a coroutine on a future of its loop -- one park, one unpark,
cancel scopes and timeouts as for any plait wait, no helper thread per waiter, no polling.
The change that lets it proceed (a release, a ``set()``, a ``notify()``) rings its process's
doorbell; woken, it tries again itself. (A thread first tries a few times, yielding the CPU
between, before it parks: a hand-off between processes often takes microseconds, less
than a ring.) A holder can also die *outside* the mutex, while it
holds the user-level object (a lock taken, permits out, a party counted at a barrier):
nobody rings then, so a waiter names the holders it waits for to its doorbell, whose
watcher waits on their ``pidfd``s and wakes it when one exits (where pidfds are not
available, the waiter parks in slices of :data:`SLICE` and looks again).

Recovery policy (what a waiter that finds a dead holder does):

* Lock, RLock: the lock is freed; the strand that found it gets
  :class:`plait.BrokenResourceError` naming the dead pid, once (what the lock guarded may
  be half-updated); later acquirers proceed as usual;
* Semaphore, BoundedSemaphore: the dead process's permits come back (never more than the
  initial value minus the free ones, so a semaphore used to signal gains nothing), and the
  strand that found them gets :class:`plait.BrokenResourceError`, once;
* Condition: a dead waiter costs ``notify()`` one failed ring (its process's doorbell is
  gone), never a wait;
* Barrier: a party that died while counted in breaks the barrier
  (:class:`threading.BrokenBarrierError` for everyone waiting); ``reset()`` drops dead
  parties and makes it usable again;
* Event: nothing to repair (its state is two words changed under the mutex).

Cancellation. A process strand is cancelled by SIGTERM; the robust mutex is held only
inside a critical section (``_core.safepoint``), and a take that completes while a
cancellation waits gives its unit back before the cancellation is raised (:func:`block`),
so a cancellation never lands between a take and its record. The uncontended shared
``with lock`` skips the section (it would cost more than the lock): a SIGTERM handled in
its frame waits until it returns (:func:`defer_in`); a process that ends cancelled gives
back whatever is still recorded as its own (:func:`let_go_of_mine`).

Names and lifetime follow ``plait._ipc.shm``'s one owner-tagged scheme, as a shared queue's
do: ``plait_sync_<family>_<pid>_<start>_<hex>_ring`` is the one segment, which every
process using the object holds. The last process that lets go of the object (it is
collected, or the process exits) removes it; if every holder was killed, the next plait
process sweeps it (``shm.sweep_dead``). A process that unpickles the object after its
name is gone gets :class:`plait.BrokenResourceError`, never a hang. ``CapacityLimiter``
does not cross processes (its borrowers are objects of one process): pickling one raises
``TypeError`` at that call.

The backends of each kind, and promotion, are in ``_shared`` and ``_shared_wait``; this
module is the segment (:class:`SharedState`) and the wait loop they stand on.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Generator
from types import CodeType, FrameType
from typing import Any, Self

from plait._core import safepoint
from plait._errors import BrokenResourceError
from plait._ipc import doorbell, robust, shm
from plait._ipc.doorbell import DIED, GONE, UNWATCHED, Room
from plait._ipc.robust import RobustLock, Uncancellable
from plait._sync._robust import NSLOTS, Slots, tag_alive, tag_pid

__all__ = [
    "NOT_YET",
    "SharedState",
    "async_block",
    "block",
    "defer_in",
    "defers",
    "let_go_of_mine",
    "sweep",
]

_SPINS = 20  # a thread tries this often (yielding the CPU between) before it parks
_SPIN_S = 50e-6  # ... for at most this long, looking (not trying) while not ``ready()``;
_SPIN_MAX_S = 1e-3  # ... or, while it keeps seeing ``ready()`` (the object changing hands
# among many processes), up to this long in all: a park costs the next release a ring
_yield = os.sched_yield
SLICE = 0.05  # where no pidfd can be watched: how often a waiter looks for a dead holder
_monotonic = time.monotonic
_enter = safepoint.enter
_leave = safepoint.leave
_pending = safepoint.pending

# Segment layout (see the module docstring).
MUTEX_AT = 0
WORDS_AT = MUTEX_AT + robust.SIZE
NWORDS = 16
SLOTS_AT = WORDS_AT + NWORDS * 8
TABLE_AT = SLOTS_AT + 2 * NSLOTS * 8
SIZE = TABLE_AT + doorbell.TABLE_BYTES

# State words.
HOLDER = 0  # Lock, RLock: the holding process's tag (0: free)
VALUE, INITIAL, BOUNDED, UNCOUNTED = 1, 2, 3, 4  # Semaphore
FLAG, GEN = 5, 6  # Event (GEN: counts set() calls); Barrier: GEN counts trips
COUNT, STATE = 7, 8  # Barrier

#: What an attempt returns when the strand must wait (and :func:`block` on a timeout).
NOT_YET: Any = type("NotYet", (), {"__repr__": lambda self: "<not yet>"})()

#: Every shared state opened in this process (for :func:`let_go_of_mine`).
_states: weakref.WeakSet[SharedState] = weakref.WeakSet()
_swept = False

#: Code of plait functions that a SIGTERM waits out (see :func:`defers`): while their own
#: frame runs, or (``_DEFER_CALL``) while anything they called runs.
_DEFER_IN: set[CodeType] = set()
_DEFER_CALL: set[CodeType] = set()


def defer_in(fn: Callable[..., Any], *, whole_call: bool = False) -> None:
    """Mark ``fn`` as code a signal-raised cancellation waits out: a hot path whose one
    unsafe moment is too short for a critical section's cost, or a multi-step update
    that a ``finally`` calls (where a critical section could only begin after the
    cancellation had landed). ``whole_call``: what it calls too (only for calls that end
    soon by themselves -- never one that waits for a strand that may not come)."""
    (_DEFER_CALL if whole_call else _DEFER_IN).add(fn.__code__)


def defers(frame: FrameType | None) -> bool:
    """Whether a SIGTERM handled with ``frame`` running must wait.

    A signal handler runs between two bytecodes of the interrupted frame; the handler
    then sends the signal again a moment later, when that frame (or call) has returned.
    """
    if frame is None:
        return False
    if frame.f_code in _DEFER_IN:
        return True
    while frame is not None:
        if frame.f_code in _DEFER_CALL:
            return True
        frame = frame.f_back
    return False


def sweep() -> None:
    """Remove the names of shared objects whose every user died (see ``plait._ipc.shm``)."""
    shm.sweep_dead()


class SharedState:
    """One promoted primitive's segment: its robust mutex, state words, per-process slots
    and wait table, and this process's :class:`Room` on it (made on the first wait).

    ``release_mine`` (set by the backend) gives back what this process holds when it
    ends cancelled.
    """

    __slots__ = (
        "__weakref__",
        "_room",
        "addr",
        "guard",
        "lock",
        "port",
        "prefix",
        "rebuild",
        "release_mine",
        "saddr",
        "segment",
        "slots",
        "table",
        "taddr",
        "waddr",
        "what",
        "words",
    )

    def __init__(self, prefix: str, segment: shm.Segment, create: bool, what: str) -> None:
        self.prefix = prefix
        self.segment = segment
        self.what = what
        buf = segment.buf
        try:
            self.lock = RobustLock(buf, MUTEX_AT, create=create, repair=self._repair, what=what)
        except BaseException:
            shm.let_go(prefix, segment)
            raise
        self.addr = self.lock.addr
        self.waddr = self.addr + (WORDS_AT - MUTEX_AT)  # (the words' and table's addresses,
        self.taddr = self.addr + (TABLE_AT - MUTEX_AT)  # for the C fast paths)
        self.saddr = self.addr + (SLOTS_AT - MUTEX_AT)  # (and the slots')
        self.port: Any = None  # the kind's C fast paths, if it has any (a SemPort)
        self.guard = Uncancellable(self.lock)
        self.words: Any = buf[WORDS_AT:SLOTS_AT].cast("q")
        self.slots = Slots(buf[SLOTS_AT:TABLE_AT].cast("q"))
        self.table: Any = buf[TABLE_AT:SIZE].cast("q")
        self._room: Room | None = None
        self.release_mine: Callable[[SharedState], None] | None = None
        self.rebuild: Callable[[SharedState], None] | None = None
        shm.track(self, prefix, segment)  # the last process to let go removes the name
        _states.add(self)

    @classmethod
    def create(cls, what: str) -> Self:
        """A new, zeroed segment under a fresh owner-tagged prefix."""
        global _swept
        if not _swept:  # once per process: names left by crashed owners
            _swept = True
            shm.sweep_dead()
        prefix = shm.new_prefix("sync")
        segment = shm.Segment(prefix + shm.ANCHOR, SIZE, create=True, hold=True)
        return cls(prefix, segment, True, what)

    @classmethod
    def open(cls, prefix: str, what: str) -> Self:
        try:
            segment = shm.Segment(prefix + shm.ANCHOR, hold=True, populate=False)
        except FileNotFoundError:
            raise BrokenResourceError(
                f"this {what} can no longer be used here: every process that shared it "
                "has released its process resources (they exited, or the object was "
                "collected there)"
            ) from None
        return cls(prefix, segment, False, what)

    @property
    def room(self) -> Room:
        """This process's waiters on the object (made on the first wait)."""
        room = self._room
        if room is None:
            room = self._room = Room(self.table, self.guard)
        return room

    def __del__(self) -> None:
        """Let go here while this process lives on: the bell's watcher frees our slot in
        the wait table (``doorbell.retire_later``: it never blocks)."""
        room = getattr(self, "_room", None)  # (an __init__ that failed has none)
        if room is not None:  # (a Condition's rings are notifications: none is made up)
            try:
                doorbell.retire_later(self, room, hand_on=self.what != "condition")
            except Exception:  # (at interpreter exit: modules half torn down)
                pass

    def _repair(self) -> None:
        """The mutex's holder died inside (we hold it now): a change of several words may
        be half done, so the kind's ``rebuild`` recomputes what the others determine (a
        semaphore's free permits from the counts, a barrier's count from its parties);
        a waiter may have been owed a ring, so every waiter looks again."""
        if self.rebuild is not None:
            self.rebuild(self)
        doorbell.wake_everyone(self.table)

    def settle(self, rc: int) -> None:
        """A fast path's trylock failed with ``rc``: if a dead holder left the mutex, we
        hold it now -- repair it and let it go (the caller takes its slow path)."""
        if rc == robust._EOWNERDEAD:
            _enter()
            try:
                self.lock._recover()
                robust._unlock(self.addr)
            finally:
                _leave()

    def wake(self, d: int = 0, n: int = 1) -> None:
        """(mutex held) Ring up to ``n`` waiters of direction ``d``."""
        table = self.table
        while n > 0 and table[d]:
            doorbell.wake(table, d)
            n -= 1

    def wake_all(self, d: int = 0) -> None:
        """(mutex held) Wake every waiter of direction ``d``, in every process."""
        if self.table[d]:
            doorbell.wake_all(self.table, d)

    def waiting_by_kind(self) -> dict[str, int]:
        """Strands of this process waiting on the object now, by kind."""
        room = self._room
        counts: dict[str, int] = {}
        if room is None:
            return counts
        with room.mutex:
            for queue in room.queues:
                for waiter in queue:
                    kind = waiter.strand.kind
                    counts[kind] = counts.get(kind, 0) + 1
        return counts

    def _watch(self, room: Room, d: int, tags: list[int]) -> float | None:
        """Have this process's waiters woken when one of ``tags`` exits; the longest a
        park may last before it looks again (``None``: no limit; ``0``: look now)."""
        cap: float | None = None
        for tag in tags:
            how = room.watch(tag_pid(tag), d)
            if how == GONE or (how != UNWATCHED and not tag_alive(tag)):
                return 0.0  # gone already (or the pid is another process's by now)
            if how == UNWATCHED:
                cap = SLICE
        return cap


def let_go_of_mine() -> None:
    """Give back every shared unit this process holds: it is ending, cancelled.

    A strand that unwinds a ``with`` block releases as it goes; this is the backstop for
    a cancellation that landed where no ``with`` could see it (entering or leaving one).
    """
    for state in list(_states):
        release = state.release_mine
        if release is None:
            continue
        try:
            with state.guard:
                release(state)
        except Exception:  # pragma: no cover - ending anyway; the next user repairs it
            pass


def _slice(left: float | None, cap: float | None) -> float | None:
    if cap is None:
        return left
    return cap if left is None else min(left, cap)


def block(
    state: SharedState,
    on: object,
    attempt: Callable[[bool], Any],
    deadline: float | None,
    blockers: Callable[[], list[int]] | None = None,
    undo: Callable[[Any], None] | None = None,
    d: int = 0,
    ready: Callable[[], bool] | None = None,
    quick: Callable[[], Any] | None = None,
) -> Any:
    """Run ``attempt(suspect)`` with the mutex held until it returns something other than
    :data:`NOT_YET` (returned); park the calling thread in direction ``d`` between tries.

    ``suspect`` is true when a holder may have died (a watched process exited, a slice
    ended, or this is the last try before the deadline): the attempt then looks for dead
    holders and repairs (or raises). ``blockers()`` (mutex held, after a failed attempt)
    are the tags of the processes that hold what the strand waits for: their exit wakes
    it. ``undo(result)`` gives a result back when a cancellation came while it was taken
    (it is raised afterwards). ``deadline`` (monotonic) ``None``: no limit; past: one try.
    ``ready()``, read without the mutex, says whether a try may succeed now: a thread
    spinning before it parks looks at it instead of taking the mutex (which the holder's
    release needs) for every try; ``quick()`` is then its try, in one short call (the
    attempt's result, or :data:`NOT_YET`).
    """
    steps = _tries(state, on, attempt, deadline, blockers, undo, d, False, ready, quick)
    try:
        room, waiter, wait = next(steps)
        while True:
            room, waiter, wait = steps.send(room.park(waiter, d, wait))
    except StopIteration as done:
        return done.value


async def async_block(
    state: SharedState,
    on: object,
    attempt: Callable[[bool], Any],
    deadline: float | None,
    blockers: Callable[[], list[int]] | None = None,
    undo: Callable[[Any], None] | None = None,
    d: int = 0,
) -> Any:
    """:func:`block` for a coroutine (its loop never blocks: it parks on a future)."""
    steps = _tries(state, on, attempt, deadline, blockers, undo, d, True)
    try:
        room, waiter, wait = next(steps)
        while True:
            room, waiter, wait = steps.send(await room.async_park(waiter, d, wait))
    except StopIteration as done:
        return done.value


def _tries(
    state: SharedState,
    on: object,
    attempt: Callable[[bool], Any],
    deadline: float | None,
    blockers: Callable[[], list[int]] | None,
    undo: Callable[[Any], None] | None,
    d: int,
    coroutine: bool,
    ready: Callable[[], bool] | None = None,
    quick: Callable[[], Any] | None = None,
) -> Generator[tuple[Room, Any, float | None], bool, Any]:
    """The one wait loop of :func:`block` and :func:`async_block`: it yields ``(room,
    waiter, timeout)`` for its driver to park on, is sent whether a ring woke it, and
    returns the attempt's result. (A thread first tries a few times, yielding the CPU,
    for at most ``_SPIN_S``; between tries it looks at ``ready()`` without the mutex, and
    while it sees it, tries with ``quick()`` and looks on, up to ``_SPIN_MAX_S``.)"""
    lock = state.lock
    suspect = False
    spins = 0 if coroutine else _SPINS
    spin_until = spin_end = 0.0
    quick_now = False
    while True:
        final = deadline is not None and _monotonic() >= deadline
        waiter = None
        room: Room | None = state._room
        _enter()
        try:
            if quick_now and quick is not None and not final:
                got = quick()
            else:
                lock.acquire()
                try:
                    got = attempt(suspect or final)
                    if got is NOT_YET and not final and spins:
                        spins -= 1  # a hand-off between processes often takes microseconds
                    elif got is NOT_YET and not final:
                        room = state.room
                        waiter = room.enqueue(d, on, coroutine)
                        tags = blockers() if blockers is not None else []
                finally:
                    lock.release()
            if got is not NOT_YET and undo is not None and _pending():
                undo(got)
        finally:
            try:
                _leave()  # (raises a cancellation that came meanwhile)
            except BaseException:
                if waiter is not None and room is not None:
                    room.abandon(waiter, d)
                raise
        if got is NOT_YET and waiter is None and not final:
            # Spinning: let the holder run, then try again once a try may succeed.
            now = _monotonic()
            if not spin_end:
                spin_until = now + _SPIN_S
                spin_end = now + _SPIN_MAX_S
            _yield()
            quick_now = False
            if ready is not None:
                while True:
                    if ready():  # changing hands: look on for another while
                        quick_now = True
                        spin_until = min(now + _SPIN_S, spin_end)
                        break
                    if now >= spin_until:
                        break
                    _yield()
                    now = _monotonic()
            if now >= spin_until:
                spins = 0  # (the next try is a whole one; if it fails, the strand parks)
                quick_now = False
            continue
        if got is not NOT_YET or waiter is None or room is None:
            return got
        cap = state._watch(room, d, tags) if tags else None
        left = None if deadline is None else max(deadline - _monotonic(), 0.0)
        wait = _slice(left, cap)
        woken = yield room, waiter, wait
        suspect = (woken and waiter.value is DIED) or (not woken and wait != left)
        if woken and not coroutine:
            # Rung: the object changed hands. Spin again before parking again -- a waiter
            # that parked at once after each failed try would need a ring (the releaser's
            # slow path) for every try, and many such waiters keep every release slow.
            spins, spin_end, quick_now = _SPINS, 0.0, False


def deadline_of(wait: float | None) -> float | None:
    """A wait in seconds (``None``: no limit; 0: try once) as a monotonic deadline."""
    if wait is None:
        return None
    return _monotonic() + wait


# The uncontended fast paths (``_shared``) hold the mutex without a critical section (it
# would cost more than the path): a SIGTERM handled while they, or these short calls of
# theirs, run waits until they return (see :func:`defers`).
defer_in(Slots.add, whole_call=True)
defer_in(Slots.mine, whole_call=True)
defer_in(SharedState.settle, whole_call=True)
# Without the C module (PLAIT_NO_SPEEDUPS=1) the mutex's own calls are Python frames
# (ctypes): a SIGTERM handled inside one of them must wait too, as it does in C.
for _call in ("trylock", "unlock", "consistent"):
    defer_in(getattr(robust._CtypesRobust, _call))
