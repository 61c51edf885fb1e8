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

* a thread blocks in ``sem_wait`` itself (slices of 50 ms when a cancel scope is open, so
  cancellation still reaches it);
* coroutines never block their loop: one helper thread per shared primitive per process
  takes units for them and hands each one over through the primitive's local wait queue
  (FIFO); a coroutine cancelled after the hand-off gives its unit back;
* ``Event`` waiters poll the flag and the generation counter with a short backoff
  (50 µs doubling to 5 ms), which also makes a set-then-clear visible as a wake-up.

Lifetime: the promoting process ("home") owns the names (``sem.plait_sync_<kind>_<pid>_…``,
its pid written in). It unlinks them when the object is collected or the process exits.
If the home is killed, any other participant that lets go of the object removes them, a
later promotion anywhere sweeps names whose home pid is gone, and multiprocessing's
resource tracker (they are registered there) removes them when the process family ends.
A process that already opened
a semaphore keeps using it after the name is gone (POSIX keeps it alive while open); a
process that unpickles it *after* that gets :class:`plait.BrokenResourceError`, never a
hang. ``CapacityLimiter`` does not cross processes (its borrowers are objects of one
process): pickling one raises ``TypeError`` at that call.

The shared classes themselves, and promotion, are in ``_shared``; this module is the
backend they stand on (names, lifetime, how each strand kind waits on a semaphore).
"""

from __future__ import annotations

import _multiprocessing  # type: ignore[import-not-found]
import os
import secrets
import threading
import time
import weakref
from multiprocessing import resource_tracker
from typing import Any

from plait._core import async_park, checkpoint, current_strand, hooks
from plait._errors import BrokenResourceError
from plait._ipc.lifeline import pid_alive

__all__ = ["SEM_MAX", "SharedState", "bridge", "sem_wait", "sweep"]

_SEMAPHORE = 1
SEM_MAX: int = _multiprocessing.SemLock.SEM_VALUE_MAX
_SLICE = 0.05
_monotonic = time.monotonic
SHM_DIR = "/dev/shm"


def _unlink_all(names: tuple[str, ...], home_pid: int) -> None:
    if os.getpid() != home_pid:  # a forked copy of the home object: not the owner
        return
    _unlink(names)


def _unlink(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            _multiprocessing.sem_unlink(name)
        except OSError:
            pass
        try:
            resource_tracker.unregister(name, "semaphore")
        except Exception:  # the tracker may be gone at interpreter exit
            pass


def _home_pid(prefix: str) -> int:
    """The home process's pid, written into every name: ``plait_sync_<kind>_<pid>_<hex>_``."""
    return int(prefix.split("_")[3])


def _peer_cleanup(names: tuple[str, ...], home_pid: int) -> None:
    """A participant lets go: if the home process died without cleaning up, clean up."""
    if not pid_alive(home_pid):
        _unlink(names)


_swept = False


def sweep() -> None:
    """Remove the names of shared primitives whose home process is gone (a crash)."""
    try:
        entries = os.listdir(SHM_DIR)
    except OSError:  # no /dev/shm here
        return
    for entry in entries:
        if not entry.startswith("sem.plait_sync_"):
            continue
        parts = entry[4:].split("_")
        if len(parts) == 6 and parts[3].isdigit() and not pid_alive(int(parts[3])):
            _unlink(("/" + entry[4:],))


class SharedState:
    """The named semaphores behind one promoted primitive, plus its coroutine bridge."""

    __slots__ = ("__weakref__", "blocked", "bridge", "finalizer", "prefix", "sems")

    def __init__(self, prefix: str, sems: list[Any], *, home: bool) -> None:
        self.prefix = prefix
        self.sems = sems
        self.bridge: _Bridge | None = None
        # strands of this process blocked here (set.add/discard are single steps under the
        # GIL: no lock, so a strand that just took a contended semaphore holds it no longer
        # than needed before its critical section runs)
        self.blocked: set[Any] = set()
        names = tuple(f"/{prefix}{i}" for i in range(len(sems)))
        if home:
            self.finalizer = weakref.finalize(self, _unlink_all, names, os.getpid())
        else:
            self.finalizer = weakref.finalize(self, _peer_cleanup, names, _home_pid(prefix))

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
    def create(cls, kind: str, specs: list[tuple[int, int]]) -> SharedState:
        """New semaphores ``(value, maxvalue)`` under a fresh ``plait_sync_…`` prefix."""
        global _swept
        if not _swept:  # once per process: names left by crashed homes
            _swept = True
            sweep()
        prefix = f"plait_sync_{kind}_{os.getpid()}_{secrets.token_hex(5)}_"
        sems = []
        for i, (value, maxvalue) in enumerate(specs):
            name = f"/{prefix}{i}"
            sems.append(_multiprocessing.SemLock(_SEMAPHORE, value, maxvalue, name, False))
            resource_tracker.register(name, "semaphore")
        return cls(prefix, sems, home=True)

    @classmethod
    def open(cls, prefix: str, maxvalues: list[int], what: str) -> SharedState:
        sems = []
        for i, maxvalue in enumerate(maxvalues):
            try:
                sems.append(
                    _multiprocessing.SemLock._rebuild(0, _SEMAPHORE, maxvalue, f"/{prefix}{i}")
                )
            except FileNotFoundError:
                raise BrokenResourceError(
                    f"this {what} can no longer be used here: the process that shared it "
                    "has released its process resources (it exited, or the object was "
                    "collected there)"
                ) from None
        return cls(prefix, sems, home=False)


# -- waiting on a semaphore, per strand kind --------------------------------------------


def sem_wait(state: SharedState, sem: Any, on: object, wait: float | None) -> bool:
    """Take one unit of ``sem`` from a thread; ``wait`` None = forever, 0 = try once."""
    if sem.acquire(False):
        return True
    if wait == 0:
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
            sliced = bool(strand.cancel_scopes)
            if sliced:
                checkpoint()
            left = None if deadline is None else deadline - _monotonic()
            if left is not None and left <= 0:
                return False
            step = (
                min(_SLICE, left) if sliced and left is not None else (_SLICE if sliced else left)
            )
            got = sem.acquire(True) if step is None else sem.acquire(True, step)
            if got:
                outcome = "woken"
                return True
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
    nobody waits any more.
    """

    __slots__ = ("ack", "obj", "running", "sem", "state")

    def __init__(self, obj: Any, state: SharedState, sem: Any, ack: Any = None) -> None:
        self.obj = obj
        self.state = state
        self.sem = sem
        self.ack = ack  # posted once per unit taken for a coroutine (Condition's handshake)
        self.running = False

    async def wait(self, wait: float | None, undo: Any = None) -> bool:
        sem = self.sem
        if sem.acquire(False):
            if self.ack is not None:
                self.ack.release()
            return True
        if wait == 0:
            return False
        obj = self.obj
        with obj._mutex:
            waiter = obj._queue.async_enqueue_current(obj)
            if not self.running:
                self.running = True
                threading.Thread(
                    target=self._serve, name=f"plait-bridge-{self.state.prefix}", daemon=True
                ).start()
        return await async_park(waiter, wait, self._give_back if undo is None else undo)

    def _give_back(self, _value: object) -> None:
        self.sem.release()

    def _serve(self) -> None:
        obj, sem = self.obj, self.sem
        while True:
            with obj._mutex:
                if not obj._queue:
                    self.running = False
                    return
            if sem.acquire(True, _SLICE):
                with obj._mutex:
                    waiter = obj._queue.pop()
                if waiter is None:
                    sem.release()
                else:
                    if self.ack is not None:
                        self.ack.release()
                    waiter.wake()


def bridge(obj: Any, index: int = 0, ack: int | None = None) -> _Bridge:
    """The coroutine bridge of ``obj``'s semaphore ``index`` (acking on ``ack``)."""
    state: SharedState = obj._shared
    bridge = state.bridge
    if bridge is None:
        ack_sem = None if ack is None else state.sems[ack]
        bridge = state.bridge = _Bridge(obj, state, state.sems[index], ack_sem)
    return bridge
