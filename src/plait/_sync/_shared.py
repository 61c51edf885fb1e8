"""Shared backends of the lock-like primitives and Event.

A public primitive (``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Event``,
``Condition``, ``Barrier``) keeps its state in a *backend*: its own fields while it is
local, a backend object in ``_shared`` once it is shared with processes. Its methods ask
``_shared`` (``None``: local) on their slow paths and hand the call over; the class of the
object never changes (``type(lock) is plait.Lock`` in every process).

It becomes shared through the one promotion seam every public object uses
(:mod:`plait._ipc.promotion`: ``promote``, ``share``, ``revive``). A backend here is a
:class:`SharedState` (its segment, ``_xproc``) plus the kind's operations; backends know a
public object only by duck typing -- what a strand parks on, the fields read at adoption,
a Condition's lock hand-over calls -- and neither subclass nor import the public classes
(an import-linter contract in ``pyproject.toml`` keeps it so). Condition's and Barrier's
backends are in ``_shared_wait``. Every state change below happens with the segment's
robust mutex held (``_xproc``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from plait._core.strands import FASTLOCK
from plait._errors import BrokenResourceError
from plait._ipc import promotion, robust
from plait._ipc.promotion import MIGRATED, register_backend
from plait._sync import _robust
from plait._sync._xproc import (
    FLAG,
    GEN,
    HOLDER,
    INITIAL,
    NOT_YET,
    UNCOUNTED,
    VALUE,
    SharedState,
    async_block,
    block,
    deadline_of,
    defer_in,
)

__all__ = [
    "Backend",
    "EventBackend",
    "LockBackend",
    "SemaphoreBackend",
    "not_shareable",
]

_trylock = robust._trylock
_unlock = robust._unlock
_take = robust._take
_give = robust._give


class Backend(SharedState, promotion.Backend):
    """A shared primitive's state and operations: its segment (``SharedState``) plus the
    kind's methods, which the public object calls once ``_shared`` is set.

    ``adopt`` builds one from a local object's fields (its mutex held), ``attach`` opens
    the one a pickle names; each also returns the fields of the public object it
    replaces (``{"_inner": backend}`` for a lock), which the seam installs.
    """

    __slots__ = ()

    def hand_over(self, obj: Any) -> list[Callable[[], object]]:
        """The strands parked on the primitive's local wait queue wait again here."""
        return [waiter.wake for waiter in obj._queue.pop_all(MIGRATED)]

    def waiting(self) -> tuple[int, Mapping[str, int]]:
        """Strands of this process waiting on the object, and how many of each kind."""
        counts = self.waiting_by_kind()
        return sum(counts.values()), MappingProxyType(counts)


def not_shareable(obj: object) -> None:
    """Raise the clear error for a primitive that cannot cross processes yet."""
    name = type(obj).__name__
    raise TypeError(
        f"a plait.{name} cannot be shared with another process (Lock, RLock, Condition, "
        f"Semaphore, BoundedSemaphore, Event and Barrier can); create the {name} in the "
        "process that uses it"
    )


# -- locks ------------------------------------------------------------------------------


def _take_lock(state: SharedState, suspect: bool) -> Any:
    """(mutex held) Take the lock for this process; a dead holder is freed and reported."""
    words = state.words
    holder = int(words[HOLDER])
    if holder == 0:
        words[HOLDER] = _robust.TAG
        return True
    if suspect and holder != _robust.TAG and not _robust.tag_alive(holder):
        words[HOLDER] = 0
        state.wake()  # (someone else may take it while we report)
        raise BrokenResourceError(
            f"this shared {state.what} was held by {_robust.describe(holder)}, which died "
            "holding it: it is free again, but what it guarded may be half-updated"
        )
    return NOT_YET


def _free_lock(state: SharedState) -> None:
    """(mutex held) Free the lock and ring the next waiter; ``RuntimeError`` if free."""
    words = state.words
    if not words[HOLDER]:
        raise RuntimeError("release unlocked lock")
    words[HOLDER] = 0
    if state.table[0]:
        state.wake()


def _release_mine_lock(state: SharedState) -> None:
    if state.words[HOLDER] == _robust.TAG:
        _free_lock(state)


@register_backend
class LockBackend(Backend):
    """A shared ``Lock`` or ``RLock``: a holder word (the holding process's tag).

    It (or :meth:`state`'s C object over it) is the lock's ``_inner`` once shared, so the
    public lock's paths that try, free or read ``_inner`` work on it unchanged (an RLock's
    owner strand and depth stay in the public object: only its process reads them). If the
    holding process dies holding it, the next strand that would wait gets
    :class:`plait.BrokenResourceError` naming the dead pid, and the lock is free again.
    """

    __slots__ = ()
    kind = "lock"

    @classmethod
    def adopt(cls, obj: Any) -> tuple[Backend, dict[str, Any]]:
        # A local holder keeps holding: the shared lock starts taken by this process and
        # its release (through the new ``_inner``) frees it; if free, the old lock stays
        # taken for good, so a call half-way through a local path cannot take it.
        free = obj._inner.acquire(False)
        backend = cls.create("lock")
        if not free:
            backend.words[HOLDER] = _robust.TAG
        backend.release_mine = _release_mine_lock
        # ``_owed``: a release in flight on the old lock must pay it here.
        return backend, {"_inner": backend.state(), "_owed": not free}

    @classmethod
    def attach(cls, prefix: str, obj: Any) -> tuple[Backend, dict[str, Any]]:
        name = f"plait.{type(obj).__name__}"
        backend = cls.open(prefix, name)
        backend.what = "lock"
        backend.release_mine = _release_mine_lock
        return backend, {"_inner": backend.state()}

    def state(self) -> Any:
        """What the public lock keeps as ``_inner``: this backend, or with the C accelerator
        a ``SharedInner`` over its holder word, whose take and give (and the lock's own
        acquire, release and ``with``) run in C while uncontended and come here otherwise."""
        if FASTLOCK is None or _take is None:
            return self
        return FASTLOCK.SharedInner(self, self.addr, self.waddr, self.taddr)

    # ``_inner``'s API: a try, a release and a read (the uncontended paths: one trylock
    # of the robust mutex, one store, one unlock; a SIGTERM handled while they run waits
    # until they return, see ``_xproc.defers``).
    def _acquire_py(self, blocking: bool = False, timeout: float = -1) -> bool:
        """Try once to take the lock for this process (never waits)."""
        if self.words[0]:  # held: no need to take the mutex to say so
            return False
        addr = self.addr
        rc = _trylock(addr)
        if not rc:
            words = self.words
            if not words[0]:
                words[0] = _robust.TAG
                _unlock(addr)
                return True
            _unlock(addr)
            return False
        self.settle(rc)
        with self.guard:
            return _take_lock(self, False) is True

    def _release_py(self) -> None:
        """Free the lock and ring a waiter; ``RuntimeError`` if it is free."""
        addr = self.addr
        rc = _trylock(addr)
        if not rc:
            words = self.words
            if words[0] and not self.table[0]:
                words[0] = 0
                _unlock(addr)
                return
            _unlock(addr)
        else:
            self.settle(rc)
        with self.guard:
            _free_lock(self)

    def _acquire_c(self, blocking: bool = False, timeout: float = -1) -> bool:
        """:meth:`_acquire_py` in one C call when uncontended."""
        rc: int = _take(self.addr, self.waddr, _robust.TAG)
        if rc >= 0:
            return rc == 1
        self.settle(-rc)
        with self.guard:
            return _take_lock(self, False) is True

    def _release_c(self) -> None:
        """:meth:`_release_py` in one C call when nobody waits."""
        rc: int = _give(self.addr, self.waddr, self.taddr)
        if rc == 1:
            return
        if rc < 0:
            self.settle(-rc)
        with self.guard:
            _free_lock(self)

    acquire = _acquire_py if _take is None else _acquire_c
    release = _release_py if _give is None else _release_c

    def locked(self) -> bool:
        return bool(self.words[HOLDER])

    # The waits: ``on`` is the public lock (what the strand parks on).
    def _taking(self, on: object, wait: float | None) -> tuple[Any, Any, Any, Any, Any, Any]:
        def give_back(_got: object) -> None:
            with self.guard:
                _free_lock(self)

        def holders() -> list[int]:
            holder = int(self.words[HOLDER])
            return [holder] if holder and holder != _robust.TAG else []

        return (
            self,
            on,
            lambda suspect: _take_lock(self, suspect),
            deadline_of(wait),
            holders,
            give_back,
        )

    def _free(self) -> bool:
        """Whether the lock looks free (read without the mutex: a hint for spinners)."""
        return not self.words[HOLDER]

    def _quick(self) -> Any:
        """A spinner's try: the fast path's (one C call where built)."""
        return True if self.acquire() else NOT_YET

    def take(self, on: object, wait: float | None) -> bool:
        """Take the lock within ``wait`` seconds (``None``: no limit; 0: one try that
        also looks for a dead holder)."""
        taking = self._taking(on, wait)
        return block(*taking, ready=self._free, quick=self._quick) is not NOT_YET

    async def async_take(self, on: object, wait: float | None) -> bool:
        return await async_block(*self._taking(on, wait)) is not NOT_YET

    def take_anyway(self, on: object) -> None:
        """Re-take the lock after a condition wait, whatever happens.

        A cancellation that comes meanwhile waits until the lock is ours again (the
        caller's ``with`` block then releases it on the way out); a dead holder is
        repaired, and reported once the lock is ours.
        """
        dead: list[BrokenResourceError] = []
        while True:
            try:
                if self.take(on, None):
                    break
            except BrokenResourceError as exc:
                dead.append(exc)
        if dead:
            raise dead[0]


# -- semaphores -------------------------------------------------------------------------


def _take_permit(state: SharedState, suspect: bool) -> Any:
    """(mutex held) Take one permit: counted first, then taken (a kill in between leaves
    a count that the repair gives back only as far as permits are out)."""
    words = state.words
    if words[VALUE] > 0:
        if not state.slots.add(1):
            words[UNCOUNTED] += 1
        words[VALUE] -= 1
        return True
    if suspect:
        _repair_permits(state)
    return NOT_YET


def _give_permits(state: SharedState, n: int, bounded: bool) -> None:
    """(mutex held) Give back ``n`` permits (freed first, then un-counted) and ring up to
    ``n`` waiters."""
    words = state.words
    if bounded and words[VALUE] + n > words[INITIAL]:
        raise ValueError("Semaphore released too many times")
    words[VALUE] += n
    if not state.slots.add(-n):
        words[UNCOUNTED] -= n
    state.wake(0, n)


def _restore_permits(state: SharedState, held: int) -> int:
    """(mutex held) Free up to ``held`` permits of a process that is gone (its count is
    cleared already), never above what is out (initial - free); how many. Permits it held
    beyond that were given away by others (a semaphore used to signal): they stay
    consumed (``UNCOUNTED``), so free + counts + uncounted stays the initial value."""
    words = state.words
    n = max(0, min(held, int(words[INITIAL] - words[VALUE])))
    words[UNCOUNTED] += held - n
    if n:
        words[VALUE] += n
        state.wake(0, n)
    return n


def _rebuild_permits(state: SharedState) -> None:
    """(mutex held, after a holder died inside it) Free permits = initial - counted."""
    words = state.words
    words[VALUE] = max(0, words[INITIAL] - state.slots.total() - words[UNCOUNTED])


def _repair_permits(state: SharedState) -> None:
    """(mutex held) Give back the permits of dead processes; report them if any came back."""
    given, pids = 0, []
    for tag, held in state.slots.take_dead():
        if held > 0:
            n = _restore_permits(state, held)
            if n:
                given += n
                pids.append(_robust.describe(tag))
    if given:
        raise BrokenResourceError(
            f"{given} permit(s) of this shared {state.what} were held by {', '.join(pids)}, "
            "which died holding them: they are free again, but what they guarded may be "
            "half-updated"
        )


def _release_mine_permits(state: SharedState) -> None:
    held = state.slots.take_mine()
    if held > 0:
        _restore_permits(state, held)


@register_backend
class SemaphoreBackend(Backend):
    """A shared ``Semaphore`` or ``BoundedSemaphore``: the free permits, the initial value
    and each process's count of the permits it took and has not given back.

    When a strand finds no permit free and a process that died still held some, those
    permits are given back (never more than the initial value minus the free ones, so a
    semaphore used to signal never gains permits) and that strand gets
    :class:`plait.BrokenResourceError` naming the dead pid; later ones proceed as usual.
    """

    __slots__ = ()
    kind = "semaphore"

    @classmethod
    def adopt(cls, obj: Any) -> tuple[Backend, dict[str, Any]]:
        backend = cls.create("semaphore")
        words = backend.words
        words[INITIAL] = obj._initial
        words[VALUE] = obj._value
        out = obj._initial - obj._value
        if out > 0:  # permits held by strands of this process
            with backend.guard:
                backend.slots.add(out)
        backend._set_up()
        return backend, {}

    @classmethod
    def attach(cls, prefix: str, obj: Any) -> tuple[Backend, dict[str, Any]]:
        name = f"plait.{type(obj).__name__}"
        backend = cls.open(prefix, name.replace("Bounded", ""))
        backend.what = "semaphore"
        backend._set_up()
        return backend, {}

    def _set_up(self) -> None:
        self.release_mine = _release_mine_permits
        self.rebuild = _rebuild_permits
        if robust.SemPort is not None:
            self.port = robust.SemPort(self, self.addr, self.waddr, self.taddr, self.saddr)

    def value(self) -> int:
        """The permits free now, in every process."""
        return int(self.words[VALUE])

    def _taking(self, on: object, wait: float | None) -> tuple[Any, Any, Any, Any, Any, Any]:
        def give_back(_got: object) -> None:
            with self.guard:
                _give_permits(self, 1, False)

        return (
            self,
            on,
            lambda suspect: _take_permit(self, suspect),
            deadline_of(wait),
            self.slots.holders,
            give_back,
        )

    def take(self, on: object, wait: float | None) -> bool:
        """Take a permit within ``wait`` seconds (``None``: no limit; 0: one try)."""
        # The uncontended path: one trylock of the robust mutex, a few stores, one unlock
        # (a SIGTERM handled in this frame waits until it returns, see ``defer_in``) -- in
        # one C call once this process has its slot.
        port = self.port
        if port is not None and port.take() == 1:
            return True
        addr = self.addr
        rc = _trylock(addr)
        if not rc:
            words = self.words
            if words[VALUE] > 0:
                if not self.slots.add(1):
                    words[UNCOUNTED] += 1
                words[VALUE] -= 1
                _unlock(addr)
                if port is not None:
                    port.slot = self.slots._cached  # (claimed now: C takes the next)
                return True
            _unlock(addr)
        else:
            self.settle(rc)
        return block(*self._taking(on, wait)) is not NOT_YET

    async def async_take(self, on: object, wait: float | None) -> bool:
        return await async_block(*self._taking(on, wait)) is not NOT_YET

    def give(self, n: int, bounded: bool) -> None:
        """Give back ``n`` permits; ``ValueError`` (nothing given) if ``bounded`` and that
        would pass the initial value."""
        port = self.port
        if port is not None and port.give(n, bounded) == 1:  # (uncontended, as in ``take``)
            return
        addr = self.addr
        rc = _trylock(addr)
        if not rc:
            try:
                _give_permits(self, n, bounded)
            finally:
                _unlock(addr)
                if port is not None:
                    port.slot = self.slots._cached
            return
        self.settle(rc)
        with self.guard:
            _give_permits(self, n, bounded)


# -- events -----------------------------------------------------------------------------


@register_backend
class EventBackend(Backend):
    """A shared ``Event``: its flag and a generation (counts ``set()`` calls).

    A waiter notes the generation, announces itself and parks; ``set()`` wakes every
    waiter in every process, each of which returns ``True`` if the flag is set or the
    generation moved (a set-then-clear made while it waited counts, as with threading).
    """

    __slots__ = ()
    kind = "event"

    @classmethod
    def adopt(cls, obj: Any) -> tuple[Backend, dict[str, Any]]:
        backend = cls.create("event")
        backend.words[FLAG] = 1 if obj._flag else 0
        return backend, {}

    @classmethod
    def attach(cls, prefix: str, obj: Any) -> tuple[Backend, dict[str, Any]]:
        name = f"plait.{type(obj).__name__}"
        backend = cls.open(prefix, name)
        backend.what = "event"
        return backend, {}

    def is_set(self) -> bool:
        return bool(self.words[FLAG])

    def set(self) -> None:
        with self.guard:
            words = self.words
            if not words[FLAG]:
                words[FLAG] = 1
                words[GEN] += 1
                self.wake_all()

    def clear(self) -> None:
        with self.guard:
            self.words[FLAG] = 0

    def generation(self) -> int:
        return int(self.words[GEN])

    def signalled(self, gen0: int) -> bool:
        """Whether a waiter that began at generation ``gen0`` may return ``True``."""
        words = self.words
        return bool(words[FLAG] or words[GEN] != gen0)

    def _attempt(self) -> Callable[[bool], Any]:
        words = self.words
        gen0 = int(words[GEN])

        def attempt(_suspect: bool) -> Any:
            return True if words[FLAG] or words[GEN] != gen0 else NOT_YET

        return attempt

    def wait(self, on: object, timeout: float | None) -> bool:
        """Wait for the flag (``timeout``: checked seconds, ``None``: no limit)."""
        if self.words[FLAG]:
            return True
        if timeout is not None and not timeout > 0:
            return False
        return block(self, on, self._attempt(), deadline_of(timeout)) is True

    async def async_wait(self, on: object, timeout: float | None) -> bool:
        if self.words[FLAG]:
            return True
        if timeout is not None and not timeout > 0:
            return False
        return await async_block(self, on, self._attempt(), deadline_of(timeout)) is True


# The uncontended paths skip a critical section: a SIGTERM handled in their frame waits
# until they return (``give``'s calls too: they ring waiters, and end by themselves).
defer_in(LockBackend.acquire)
defer_in(LockBackend.release)
defer_in(SemaphoreBackend.take)
defer_in(SemaphoreBackend.give, whole_call=True)
