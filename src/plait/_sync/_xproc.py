"""Primitives across processes: promote-on-pickle to named POSIX semaphores.

A ``Lock``, ``RLock``, ``Condition``, ``Semaphore``, ``BoundedSemaphore``, ``Event`` or
``Barrier`` lives in its process until it is first pickled -- passed to a process at spawn,
or later through a queue or pipe to a worker that already runs. Then it is *promoted*: its
state moves into named semaphores (``/dev/shm/sem.plait_*``), its class becomes the shared
variant (``obj.__class__`` is swapped, so objects that are never shared keep the lean
in-process fast paths), and local strands parked on it are woken to wait again on the shared
state. Every process then uses the same semaphores::

    Lock, RLock        one semaphore, max 1 (1 = free); an RLock's owner strand and depth
                       stay in the owner's process (only the owner reads or writes them)
    Semaphore          one semaphore (the permits); BoundedSemaphore: max = initial value
    Event              mutex (max 1), flag (0/1), generation (counts set() calls)
    Condition          its lock's, plus sleepers / wake / acks (a notify hands over one
                       wake per announced waiter and waits for each to be taken)
    Barrier            its condition's, plus count and phase (read and written only
                       under that condition's lock)

How each strand kind waits on a shared primitive:

* a thread blocks in ``sem_wait`` itself, in slices of 50 ms: between two it sees its
  cancel scopes and looks for a dead holder (see below);
* coroutines never block their loop: one helper thread per shared primitive per process
  takes units for them and hands each one over through the primitive's local wait queue
  (FIFO); a coroutine cancelled after the hand-off gives its unit back;
* ``Event`` waiters poll the flag and the generation counter with a short backoff
  (50 µs doubling to 5 ms), which also makes a set-then-clear visible as a wake-up.

Robustness. A process strand is cancelled by SIGTERM; every take of a unit and the
bookkeeping that goes with it (an owner word, a permit count, a condition's announcement)
happens inside a critical section (``_core.safepoint``), or in a frame that the SIGTERM
handler waits out (:func:`defer_in`: the uncontended shared ``with lock``, whose section
would cost more than the lock), so a cancellation never lands between a take and its
record; a process that ends cancelled gives back whatever is still recorded as its own
(:func:`let_go_of_mine`). Who holds what is recorded in the anchor segment (``_robust``):
a waiter that finds the holder dead (SIGKILL) takes its unit over, frees it and raises
:class:`plait.BrokenResourceError` naming the pid (:func:`repair_owner`,
:func:`repair_permits`); an Event's internal mutex is repaired silently.

Names and lifetime follow ``plait._ipc.shm``'s one owner-tagged scheme, as a shared queue's
do: ``plait_sync_<family>_<pid>_<start>_<hex>_`` + ``0``, ``1``, ... for the semaphores
(``/dev/shm/sem.…``) and + ``ring`` for the anchor segment (one page: the owner records),
which every process using the object holds. The last process that lets go of the object
(it is collected, or the process exits) removes every name; if every holder was killed,
the next promotion or exit of any plait process sweeps them (``shm.sweep_dead``). A
process that unpickles the object after its names are gone gets
:class:`plait.BrokenResourceError`, never a hang. ``CapacityLimiter`` does not cross
processes (its borrowers are objects of one process): pickling one raises ``TypeError``
at that call.

The shared classes themselves, and promotion, are in ``_shared``; this module is the
backend they stand on (names, lifetime, owner records, how each strand kind waits on a
semaphore).
"""

from __future__ import annotations

import _multiprocessing  # type: ignore[import-not-found]
import threading
import time
import weakref
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from plait._core import async_park, checkpoint, current_strand, hooks, safepoint
from plait._errors import BrokenResourceError
from plait._ipc import shm
from plait._sync import _robust
from plait._sync._robust import PAGE, Record, describe, my_tag, tag_alive

__all__ = [
    "SEM_MAX",
    "SharedState",
    "bridge",
    "defer_in",
    "defers",
    "let_go_of_mine",
    "repair_owner",
    "repair_permits",
    "retire_waiters",
    "sem_wait",
    "sweep",
    "take",
]

_SEMAPHORE = 1
SEM_MAX: int = _multiprocessing.SemLock.SEM_VALUE_MAX
_SLICE = 0.05  # a shared wait wakes this often: cancellation, deadlines, a dead holder
_monotonic = time.monotonic
SHM_DIR = shm.SHM_DIR

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
    """The named semaphores behind one promoted primitive, its anchor segment (owner
    records, see ``_robust``), plus its coroutine bridge.

    ``role`` says what the owner records mean: ``"mutex"`` (the owner word is the holder
    of semaphore 0), ``"permits"`` (slots count permits taken; ``initial`` is the
    semaphore's initial value), ``"waiters"`` (slots count strands waiting: a Condition)
    or ``""`` (nothing recorded: a Barrier's counters).
    """

    __slots__ = (
        "__weakref__",
        "anchor",
        "blocked",
        "bridge",
        "initial",
        "prefix",
        "record",
        "role",
        "sems",
        "watching",
    )

    def __init__(self, prefix: str, sems: list[Any], anchor: shm.Segment, role: str) -> None:
        self.prefix = prefix
        self.sems = sems
        self.anchor = anchor
        self.record = Record(anchor)
        self.role = role
        self.initial = 0
        self.bridge: _Bridge | None = None
        self.watching = False  # an Event's watcher thread runs in this process
        # strands of this process blocked here (set.add/discard are single steps under the
        # GIL: no lock, so a strand that just took a contended semaphore holds it no longer
        # than needed before its critical section runs)
        self.blocked: set[Any] = set()
        shm.track(self, prefix, anchor)  # the last process to let go removes the names
        _states.add(self)

    def enter(self, strand: Any) -> None:
        """A strand of this process starts blocking on the semaphores (for statistics)."""
        self.blocked.add(strand)

    def leave(self, strand: Any) -> None:
        self.blocked.discard(strand)

    def blocked_by_kind(self) -> dict[str, int]:
        """How many strands of this process block here now, by kind."""
        counts: dict[str, int] = {}
        for strand in list(self.blocked):  # (a copy taken in one step)
            counts[strand.kind] = counts.get(strand.kind, 0) + 1
        return counts

    @classmethod
    def create(cls, role: str, specs: list[tuple[int, int]]) -> SharedState:
        """New semaphores ``(value, maxvalue)`` under a fresh owner-tagged prefix."""
        global _swept
        if not _swept:  # once per process: names left by crashed owners
            _swept = True
            shm.sweep_dead()
        prefix = shm.new_prefix("sync")
        anchor = shm.Segment(prefix + shm.ANCHOR, PAGE, create=True, hold=True)
        sems = []
        try:
            for i, (value, maxvalue) in enumerate(specs):
                name = f"/{prefix}{i}"
                sems.append(_multiprocessing.SemLock(_SEMAPHORE, value, maxvalue, name, False))
        except BaseException:
            anchor.close()
            shm.remove(prefix, shm.ANCHOR)
            raise
        return cls(prefix, sems, anchor, role)

    @classmethod
    def open(cls, prefix: str, maxvalues: list[int], what: str, role: str) -> SharedState:
        try:
            anchor = shm.Segment(prefix + shm.ANCHOR, hold=True, populate=False)
            sems = [
                _multiprocessing.SemLock._rebuild(0, _SEMAPHORE, maxvalue, f"/{prefix}{i}")
                for i, maxvalue in enumerate(maxvalues)
            ]
        except FileNotFoundError:
            raise BrokenResourceError(
                f"this {what} can no longer be used here: every process that shared it "
                "has released its process resources (they exited, or the object was "
                "collected there)"
            ) from None
        return cls(prefix, sems, anchor, role)

    # -- owner records ----------------------------------------------------------------

    def took_mutex(self) -> None:
        """This process now holds semaphore 0 (call inside a critical section)."""
        self.record.words[0] = _robust.TAG

    def give_mutex(self) -> None:
        """Un-record and free semaphore 0, in one critical section (``ValueError`` if it
        was free)."""
        safepoint.enter()
        try:
            self.record.words[0] = 0
            self.sems[0].release()
        finally:
            safepoint.leave()

    def took_permit(self) -> None:
        """This process took one permit of semaphore 0 (inside a critical section)."""
        record = self.record
        record.add(record.slot(), 1)

    def give_permits(self, n: int = 1) -> None:
        """Un-record and give back ``n`` permits, in one critical section (``ValueError``
        if a bounded semaphore would go above its maximum: nothing is changed then)."""
        record, sem = self.record, self.sems[0]
        safepoint.enter()
        try:
            given = 0
            try:
                for _ in range(n):
                    sem.release()
                    given += 1
            finally:
                record.add(record.slot(), -given)
        finally:
            safepoint.leave()

    def give_permit(self) -> None:
        self.give_permits(1)

    def release_mine(self) -> None:
        """This process ends (cancelled): give back every unit it still holds here."""
        record, me = self.record, my_tag()
        if self.role == "mutex":
            if record.words[0] == me:
                record.words[0] = 0
                try:
                    self.sems[0].release()
                except ValueError:
                    pass
        elif self.role == "permits":
            slot = record.registered_slot()
            held = record.count(slot)
            if held > 0:
                record.add(slot, -held)
                _give_back_permits(self, held)
        elif self.role == "waiters":
            slot = record.registered_slot()
            waiting = record.count(slot)
            if waiting > 0:
                record.add(slot, -waiting)
                retire_waiters(self, waiting)


def let_go_of_mine() -> None:
    """Give back every shared unit this process holds: it is ending, cancelled.

    A strand that unwinds a ``with`` block releases as it goes; this is the backstop for
    a cancellation that landed where no ``with`` could see it (entering or leaving one).
    """
    for state in list(_states):
        try:
            state.release_mine()
        except Exception:  # pragma: no cover - ending anyway; the next user repairs it
            pass


def _give_back_permits(state: SharedState, n: int) -> int:
    """Return up to ``n`` permits, never above what is out (initial - value); how many."""
    sem = state.sems[0]
    out = state.initial - int(sem._get_value())
    given = 0
    for _ in range(min(n, out)):
        try:
            sem.release()
        except ValueError:  # a bounded semaphore already full
            break
        given += 1
    return given


def retire_waiters(state: SharedState, n: int) -> int:
    """Take ``n`` dead waiters out of a condition's counts: their announcements first, then
    wakes posted for them; return how many wakes were taken back."""
    sleepers, wake, _acks = state.sems
    taken = 0
    for _ in range(n):
        if sleepers.acquire(False):
            continue
        if wake.acquire(False):
            taken += 1
    return taken


# -- repairs: a holder died ---------------------------------------------------------------


def repair_owner(state: SharedState, what: str, *, report: bool = True) -> bool:
    """Semaphore 0's recorded holder is dead: take its unit over and give it back.

    Raises :class:`plait.BrokenResourceError` naming the dead process (``report``), or
    returns ``True`` when it repaired silently; ``False`` if there was nothing to repair.
    """
    record = state.record
    tag = record.owner
    if tag == 0 or tag_alive(tag):
        return False
    safepoint.enter()
    try:
        with record.claim():
            if record.owner != tag:
                return False  # repaired (or taken and freed) meanwhile
            record.words[0] = my_tag()  # the dead owner's unit is ours now...
            record.words[0] = 0
            state.sems[0].release()  # ...and free again
    finally:
        safepoint.leave()
    if report:
        raise BrokenResourceError(
            f"this shared {what} was held by {describe(tag)}, which died holding it: it is "
            "free again, but what it guarded may be half-updated"
        )
    return True


def repair_permits(state: SharedState, what: str) -> bool:
    """Give back permits held by dead processes; report them (raises) if any came back."""
    record = state.record
    dead = record.dead()
    if not dead:
        return False
    given, pids = 0, []
    safepoint.enter()
    try:
        with record.claim():
            for slot, tag, _count in dead:
                held = record.clear_slot(slot, tag)
                if held > 0:
                    n = _give_back_permits(state, held)
                    if n:
                        given += n
                        pids.append(describe(tag))
    finally:
        safepoint.leave()
    if given:
        raise BrokenResourceError(
            f"{given} permit(s) of this shared {what} were held by {', '.join(pids)}, "
            "which died holding them: they are free again, but what they guarded may be "
            "half-updated"
        )
    return False


# -- waiting on a semaphore, per strand kind --------------------------------------------


def take(
    sem: Any,
    timeout: float | None = None,
    took: Callable[[], None] | None = None,
    untake: Callable[[], None] | None = None,
) -> bool:
    """One try at ``sem`` (``timeout`` None: do not block), inside a critical section.

    ``took()`` records the unit (an owner word, a count, an ack) before a cancellation
    can land; a cancellation that came meanwhile is raised when the section ends -- after
    ``untake()`` gave the unit back, if given (else the caller knows it holds it, through
    what ``took`` recorded). A signal that arrives while blocked waits for the end of this
    slice, at most.
    """
    safepoint.enter()
    try:
        got = bool(sem.acquire(False) if timeout is None else sem.acquire(True, timeout))
        if got:
            if took is not None:
                took()
            if untake is not None and safepoint.pending():
                untake()
    finally:
        safepoint.leave()
    return got


def sem_wait(
    state: SharedState,
    sem: Any,
    on: object,
    wait: float | None,
    check: Callable[[], bool] | None = None,
    took: Callable[[], None] | None = None,
    untake: Callable[[], None] | None = None,
) -> bool:
    """Take one unit of ``sem`` from a thread; ``wait`` None = forever, 0 = try once.

    The wait goes in slices: between two, a cancel scope is checked and ``check()`` looks
    for a dead holder (it raises :class:`plait.BrokenResourceError`, or returns ``True``
    after a silent repair); it runs once more before a timeout is reported, so a unit
    lost with a dead process never makes a wait just time out without saying why.
    ``took``/``untake``: see :func:`take`.
    """
    if take(sem, None, took, untake):
        return True
    if wait == 0:
        if check is not None and check():
            return take(sem, None, took, untake)
        return False
    strand = current_strand()
    deadline = None if wait is None else _monotonic() + wait
    strand.state = "parked"
    strand.parked_on = on
    state.enter(strand)
    if hooks.active:
        hooks.parked(strand, on)
    outcome = "timeout"
    try:
        while True:
            if strand.cancel_scopes:
                checkpoint()
            left = None if deadline is None else deadline - _monotonic()
            if left is not None and left <= 0:
                if check is not None and check() and take(sem, None, took, untake):
                    outcome = "woken"
                    return True
                return False
            if take(sem, _SLICE if left is None else min(_SLICE, left), took, untake):
                outcome = "woken"
                return True
            if check is not None:
                check()
    except BaseException:
        outcome = "cancelled"
        raise
    finally:
        strand.state = "running"
        strand.parked_on = None
        state.leave(strand)
        if hooks.active:
            hooks.unparked(strand, on, outcome)


class _Bridge:
    """One helper thread per shared primitive per process, taking units for coroutines.

    Coroutines wait in the primitive's local queue (FIFO); the helper blocks on the
    semaphore and hands each unit it takes to the first waiter, or gives it back if
    nobody waits any more. A unit is recorded (``took``) as soon as it is taken, so this
    process is its known holder from then on; ``untake`` un-records it and gives it back.
    A dead holder found between two slices is reported to the first waiter (its
    ``async_*`` call raises :class:`plait.BrokenResourceError`).
    """

    __slots__ = ("ack", "check", "obj", "running", "sem", "state", "took", "untake")

    def __init__(
        self,
        obj: Any,
        state: SharedState,
        sem: Any,
        ack: Any = None,
        check: Callable[[], bool] | None = None,
        took: Callable[[], None] | None = None,
        untake: Callable[[], None] | None = None,
    ) -> None:
        self.obj = obj
        self.state = state
        self.sem = sem
        self.ack = ack  # posted once per unit taken for a coroutine (Condition's handshake)
        self.check = check
        self.took = took
        self.untake = untake if untake is not None else sem.release
        self.running = False

    async def wait(self, wait: float | None, undo: Any = None) -> bool:
        sem = self.sem
        if take(sem, None, self.took, self.untake):
            if self.ack is not None:
                self.ack.release()
            return True
        if wait == 0:
            if self.check is not None and self.check():
                return take(sem, None, self.took, self.untake)
            return False
        obj = self.obj
        with obj._mutex:
            waiter = obj._queue.async_enqueue_current(obj)
            if not self.running:
                self.running = True
                threading.Thread(
                    target=self._serve, name=f"plait-bridge-{self.state.prefix}", daemon=True
                ).start()
        got = await async_park(waiter, wait, self._give_back if undo is None else undo)
        if got and isinstance(waiter.value, BrokenResourceError):
            raise waiter.value
        if not got and self.check is not None and self.check():
            return take(sem, None, self.took, self.untake)  # repaired silently at the end
        return got

    def _give_back(self, value: object) -> None:
        if not isinstance(value, BrokenResourceError):
            self.untake()

    def _serve(self) -> None:
        obj, sem, took = self.obj, self.sem, self.took
        while True:
            with obj._mutex:
                if not obj._queue:
                    self.running = False
                    return
            if sem.acquire(True, _SLICE):
                if took is not None:
                    took()
                with obj._mutex:
                    waiter = obj._queue.pop()
                if waiter is None:
                    self.untake()
                else:
                    if self.ack is not None:
                        self.ack.release()
                    waiter.wake()
            elif self.check is not None:
                try:
                    self.check()
                except BrokenResourceError as exc:
                    with obj._mutex:
                        waiter = obj._queue.pop(exc)
                    if waiter is not None:
                        waiter.wake()


def bridge(
    obj: Any,
    index: int = 0,
    ack: int | None = None,
    check: Callable[[], bool] | None = None,
    took: Callable[[], None] | None = None,
    untake: Callable[[], None] | None = None,
) -> _Bridge:
    """The coroutine bridge of ``obj``'s semaphore ``index`` (acking on ``ack``)."""
    state: SharedState = obj._shared
    bridge = state.bridge
    if bridge is None:
        ack_sem = None if ack is None else state.sems[ack]
        bridge = _Bridge(obj, state, state.sems[index], ack_sem, check, took, untake)
        state.bridge = bridge
    return bridge
