"""The shared (promoted) lock-like classes and Event, and promotion: see ``_xproc``.

Each class here is the cross-process form of a primitive, with the same API; an object
becomes one when its ``__reduce__`` first runs (``obj.__class__`` is swapped in place), or
is built as one when a process unpickles it. Condition and Barrier are in ``_shared_wait``.
Every state change below happens with the segment's robust mutex held (``_xproc``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Awaitable, Coroutine
from types import MappingProxyType, TracebackType
from typing import Any

from plait._core import current_strand, hooks
from plait._core.strands import thread_key
from plait._errors import BrokenResourceError
from plait._ipc import robust
from plait._sync import _robust
from plait._sync._common import MIGRATED, READY, check_lock_args, stdlib_timeout
from plait._sync._event import Event
from plait._sync._lock import Lock
from plait._sync._rlock import RLock
from plait._sync._semaphore import BoundedSemaphore, Semaphore, _will_wait
from plait._sync._stats import (
    EventStatistics,
    LockStatistics,
    SemaphoreStatistics,
)
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
    "SharedBoundedSemaphore",
    "SharedEvent",
    "SharedLock",
    "SharedRLock",
    "SharedSemaphore",
    "not_shareable",
    "promote",
]

_trylock = robust._trylock
_unlock = robust._unlock

# Shared primitives known in this process by name prefix, so unpickling one that is
# already here (sent back by a child) returns the very same object.
_known: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_known_lock = threading.Lock()


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


def _lock_holders(state: SharedState) -> list[int]:
    holder = int(state.words[HOLDER])
    return [holder] if holder and holder != _robust.TAG else []


def _release_mine_lock(state: SharedState) -> None:
    if state.words[HOLDER] == _robust.TAG:
        _free_lock(state)


class _SharedInner:
    """What ``_inner`` is once a lock is shared: a call that was half-way through a local
    path when the lock was promoted takes and frees the shared lock itself."""

    __slots__ = ("state",)

    def __init__(self, state: SharedState) -> None:
        self.state = state

    def acquire(self, blocking: bool = False, timeout: float = -1) -> bool:
        state = self.state
        with state.guard:
            return _take_lock(state, False) is True

    def release(self) -> None:
        state = self.state
        with state.guard:
            _free_lock(state)

    def locked(self) -> bool:
        return bool(self.state.words[HOLDER])


def _give_back_lock(state: SharedState) -> Any:
    def undo(_got: object) -> None:
        with state.guard:
            _free_lock(state)

    return undo


def _taking(lock: Any, wait: float | None) -> tuple[Any, ...]:
    """What :func:`block` / :func:`async_block` are given to take a shared Lock or RLock
    within ``wait`` seconds."""
    state: SharedState = lock._shared
    return (
        state,
        lock,
        lambda suspect: _take_lock(state, suspect),
        deadline_of(wait),
        lambda: _lock_holders(state),
        _give_back_lock(state),
    )


class SharedLock(Lock):
    """A promoted :class:`plait.Lock`: the same API over a holder word in shared memory.

    If the holding process dies holding the lock, the next strand that would wait for it
    gets :class:`plait.BrokenResourceError` naming the dead pid, and the lock is free
    again (what it guarded may be half-updated: the error says so once, then the lock
    serves as before). A process strand that is cancelled gives back what it holds.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking is True and timeout == -1:
            return self.__enter__()
        return self._acquire_slow(current_strand(), check_lock_args(blocking, timeout))

    def _acquire_slow(self, me: Any, wait: float | None) -> bool:
        got = block(*_taking(self, wait))
        if got is NOT_YET:
            return False
        self._owner = me  # (which strand of this process holds it: for diagnostics)
        if hooks.active:
            hooks.acquired(me, self)
        return True

    def _took_restored(self, me: Any) -> None:
        if hooks.active:
            hooks.acquired(me, self)

    def release(self) -> None:
        self.__exit__(None, None, None)

    def _pass_on(self) -> None:
        self.__exit__(None, None, None)

    def _after_free(self) -> None:
        pass  # a release that began before promotion freed the shared lock already

    def __enter__(self) -> bool:
        # The uncontended path: one trylock of the robust mutex, one store, one unlock.
        # Its one unsafe moment -- taken, the caller not yet in its ``with`` block -- needs
        # no critical section: a SIGTERM handled while this frame runs waits until it
        # returns (see ``_xproc.defers``); at worst the cancellation lands in the caller
        # holding a lock recorded as this process's, which ``let_go_of_mine`` frees.
        state: SharedState = self._shared
        addr = state.addr
        rc = _trylock(addr)
        if not rc:
            words = state.words
            if not words[0]:
                words[0] = _robust.TAG
                _unlock(addr)
                self._owner_ident = thread_key()  # (for diagnostics)
                self._owner_context = 0
                if hooks.active:
                    hooks.acquired(current_strand(), self)
                return True
            _unlock(addr)
        else:
            state.settle(rc)
        return self._acquire_slow(current_strand(), None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if hooks.active:
            hooks.released(current_strand(), self)
        self._owner = None
        self._owner_ident = 0
        state: SharedState = self._shared
        addr = state.addr
        rc = _trylock(addr)
        if not rc:
            words = state.words
            if words[0] and not state.table[0]:
                words[0] = 0
                _unlock(addr)
                return
            _unlock(addr)
        else:
            state.settle(rc)
        with state.guard:
            _free_lock(state)

    def async_acquire(
        self, blocking: bool = True, timeout: float = -1
    ) -> Coroutine[Any, Any, bool]:
        wait = None if blocking is True and timeout == -1 else check_lock_args(blocking, timeout)
        return self._async_acquire_slow(current_strand(), wait)

    async def _async_acquire(self, me: Any, wait: float | None) -> bool:
        return await self._async_acquire_slow(me, wait)

    async def _async_acquire_slow(self, me: Any, wait: float | None) -> bool:
        got = await async_block(*_taking(self, wait))
        if got is NOT_YET:
            return False
        self._owner = me  # (for diagnostics)
        if hooks.active:
            hooks.acquired(me, self)
        return True

    def __aenter__(self) -> Awaitable[Any]:
        return self._async_acquire_slow(current_strand(), None)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        self.release()
        return READY

    def locked(self) -> bool:
        return bool(self._shared.words[HOLDER])

    def _is_owned(self) -> bool:
        return self.locked()

    def _plait_is_owned(self, me: Any) -> bool:
        return self.locked()

    def _plait_acquire_restore(self, state: Any, me: Any) -> None:
        _restore(self, me)

    async def _plait_async_acquire_restore(self, state: Any, me: Any) -> None:
        await self._async_acquire_slow(me, None)

    def statistics(self) -> LockStatistics:
        waiting, by_kind = _waiting(self)
        locked = self.locked()
        return LockStatistics(
            locked=locked,
            owner=None,
            count=int(locked),
            waiting=waiting,
            waiting_by_kind=by_kind,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ("lock", self._shared.prefix))

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<{state} plait.Lock object shared={self._shared.prefix!r} at {id(self):#x}>"


def _restore(lock: Any, me: Any) -> None:
    """Re-take a shared lock after a condition wait, whatever happens.

    A cancellation that comes meanwhile waits until the lock is ours again (the caller's
    ``with`` block then releases it on the way out); a dead holder is repaired, and
    reported once the lock is ours.
    """
    dead: list[BrokenResourceError] = []
    while True:
        try:
            if lock._acquire_slow(me, None):
                break
        except BrokenResourceError as exc:
            dead.append(exc)
    if dead:
        raise dead[0]


class SharedRLock(RLock):
    """A promoted :class:`plait.RLock`: a holder word in shared memory, the owner strand
    and depth kept in the holding process (a strand of another process never matches); a
    dead holder is reported as for :class:`SharedLock`."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        wait = None if blocking is True and timeout == -1 else check_lock_args(blocking, timeout)
        me = current_strand()
        if self._owner is me:
            self._count += 1
            return True
        return self._acquire_slow(me, wait)

    __enter__ = acquire

    async def _async_acquire(self, me: Any, wait: float | None) -> bool:
        if self._owner is me:
            self._count += 1
            return True
        return await self._async_acquire_slow(me, wait)

    def _acquire_slow(self, me: Any, wait: float | None) -> bool:
        got = block(*_taking(self, wait))
        if got is NOT_YET:
            return False
        self._took(me)
        return True

    async def _async_acquire_slow(self, me: Any, wait: float | None) -> bool:
        got = await async_block(*_taking(self, wait))
        if got is NOT_YET:
            return False
        self._took(me)
        return True

    def _took_restored(self, me: Any) -> None:
        self._took(me)

    def _pass_on(self) -> None:
        self._owner = None
        self._count = 0
        state: SharedState = self._shared
        with state.guard:
            _free_lock(state)

    def _after_free(self) -> None:
        pass  # a release that began before promotion freed the shared lock already

    def _plait_acquire_restore(self, state: Any, me: Any) -> None:
        try:
            _restore(self, me)
        finally:
            if self._owner is me:
                self._count = state

    async def _plait_async_acquire_restore(self, state: Any, me: Any) -> None:
        await self._async_acquire_slow(me, None)
        self._count = state

    def locked(self) -> bool:
        return bool(self._shared.words[HOLDER])

    def statistics(self) -> LockStatistics:
        waiting, by_kind = _waiting(self)
        owner = self._owner
        return LockStatistics(
            locked=self.locked(),
            owner=owner,
            count=self._count if owner is not None else int(self.locked()),
            waiting=waiting,
            waiting_by_kind=by_kind,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ("rlock", self._shared.prefix))

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return (
            f"<{state} plait.RLock object owner={self._owner!r} count={self._count} "
            f"shared={self._shared.prefix!r} at {id(self):#x}>"
        )




def _waiting(obj: Any) -> tuple[int, Any]:
    """Waiters of this process on the shared object, by kind."""
    counts = obj._shared.waiting_by_kind()
    return sum(counts.values()), MappingProxyType(counts)


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


def _give_back_permit(state: SharedState) -> Any:
    def undo(_got: object) -> None:
        with state.guard:
            _give_permits(state, 1, False)

    return undo


class _SharedSemaphoreBase:
    """The promoted form of a semaphore: the permits and each process's count of those it
    took and has not given back live in shared memory.

    When a strand finds no permit free and a process that died still held some, those
    permits are given back (never more than the initial value minus the free ones, so a
    semaphore used to signal never gains permits) and that strand gets
    :class:`plait.BrokenResourceError` naming the dead pid; later ones proceed as usual.
    """

    __slots__ = ()
    _shared: SharedState
    _initial: int
    _bounded: bool

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        state = self._shared
        # The uncontended path: one trylock of the robust mutex, a few stores, one unlock
        # (a SIGTERM handled in this frame waits until it returns, see ``defer_in``).
        addr = state.addr
        rc = _trylock(addr)
        if not rc:
            words = state.words
            if words[VALUE] > 0:
                if not state.slots.add(1):
                    words[UNCOUNTED] += 1
                words[VALUE] -= 1
                _unlock(addr)
                if hooks.active:
                    hooks.acquired(current_strand(), self)
                return True
            _unlock(addr)
        else:
            state.settle(rc)
        wait = 0.0 if not blocking or not _will_wait(timeout) else timeout
        got = block(
            state,
            self,
            lambda suspect: _take_permit(state, suspect),
            deadline_of(wait),
            state.slots.holders,
            _give_back_permit(state),
        )
        if got is NOT_YET:
            return False
        if hooks.active:
            hooks.acquired(current_strand(), self)
        return True

    @property
    def _value(self) -> int:
        """The permits free now, in every process (not this process's old copy)."""
        state: SharedState | None = getattr(self, "_shared", None)
        if state is None:  # (being built by ``_rebuild``)
            return int(_VALUE_SLOT.__get__(self))
        return int(state.words[VALUE])

    @_value.setter
    def _value(self, value: int) -> None:
        _VALUE_SLOT.__set__(self, value)  # only ever the initial value, while being built

    def _try_sync(self, blocking: bool, timeout: float | None) -> Any:
        return MIGRATED

    def _try_async(self, blocking: bool, timeout: float | None) -> Any:
        return MIGRATED

    def async_acquire(
        self, blocking: bool = True, timeout: float | None = None
    ) -> Coroutine[Any, Any, bool]:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        return self._async_acquire(blocking, timeout)

    async def _async_acquire(self, blocking: bool, timeout: float | None) -> bool:
        wait = 0.0 if not blocking or not _will_wait(timeout) else timeout
        state = self._shared
        got = await async_block(
            state,
            self,
            lambda suspect: _take_permit(state, suspect),
            deadline_of(wait),
            state.slots.holders,
            _give_back_permit(state),
        )
        if got is NOT_YET:
            return False
        if hooks.active:
            hooks.acquired(current_strand(), self)
        return True

    def _add(self, n: int, bounded: bool = False) -> None:
        state = self._shared
        addr = state.addr
        rc = _trylock(addr)  # (the uncontended path, as in ``acquire``)
        if not rc:
            try:
                _give_permits(state, n, bounded)
            finally:
                _unlock(addr)
            return
        state.settle(rc)
        with state.guard:
            _give_permits(state, n, bounded)

    def _give_back(self, _value: object) -> None:
        self._add(1)

    def locked(self) -> bool:
        return bool(self._shared.words[VALUE] == 0)

    def __aenter__(self) -> Awaitable[Any]:
        return self._async_acquire(True, None)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        self._add(1, self._bounded)
        return READY

    def statistics(self) -> SemaphoreStatistics:
        waiting, by_kind = _waiting(self)
        return SemaphoreStatistics(
            value=int(self._shared.words[VALUE]),
            initial_value=self._initial,
            waiting=waiting,
            waiting_by_kind=by_kind,
        )

    def __repr__(self) -> str:
        value = int(self._shared.words[VALUE])
        return f"<plait.{type(self).__name__} at {id(self):#x}: value={value}, shared>"

    def __reduce__(self) -> tuple[Any, ...]:
        kind = "bsem" if isinstance(self, BoundedSemaphore) else "sem"
        return (_rebuild, (kind, self._shared.prefix, self._initial))


_VALUE_SLOT: Any = Semaphore.__dict__["_value"]


class SharedSemaphore(_SharedSemaphoreBase, Semaphore):
    """A promoted :class:`plait.Semaphore`."""

    __slots__ = ()


class SharedBoundedSemaphore(_SharedSemaphoreBase, BoundedSemaphore):
    """A promoted :class:`plait.BoundedSemaphore` (its maximum is kept in shared memory)."""

    __slots__ = ()


# The uncontended paths skip a critical section: a SIGTERM handled in their frame waits
# until they return (``_add``'s calls too: they ring waiters, and end by themselves).
defer_in(SharedLock.__enter__)
defer_in(SharedLock.__exit__)
defer_in(SharedLock.acquire)
defer_in(_SharedSemaphoreBase.acquire)
defer_in(_SharedSemaphoreBase._add, whole_call=True)


# -- events -----------------------------------------------------------------------------


class SharedEvent(Event):
    """A promoted :class:`plait.Event`: its flag and a generation (counts ``set()`` calls)
    in shared memory.

    A waiter notes the generation, announces itself and parks; ``set()`` wakes every
    waiter in every process, each of which returns ``True`` if the flag is set or the
    generation moved (a set-then-clear made while it waited counts, as with threading).
    """

    __slots__ = ()

    def is_set(self) -> bool:
        return bool(self._shared.words[FLAG])

    def set(self) -> None:
        state = self._shared
        with state.guard:
            words = state.words
            if not words[FLAG]:
                words[FLAG] = 1
                words[GEN] += 1
                state.wake_all()

    def clear(self) -> None:
        state = self._shared
        with state.guard:
            state.words[FLAG] = 0

    def _signalled(self, gen0: int) -> bool:
        words = self._shared.words
        return bool(words[FLAG] or words[GEN] != gen0)

    def _attempt(self) -> Any:
        words = self._shared.words
        gen0 = int(words[GEN])

        def attempt(_suspect: bool) -> Any:
            return True if words[FLAG] or words[GEN] != gen0 else NOT_YET

        return attempt

    def wait(self, timeout: float | None = None) -> bool:
        state = self._shared
        if state.words[FLAG]:
            return True
        if timeout is not None:
            timeout = stdlib_timeout(timeout)
        if timeout is not None and not timeout > 0:
            return False
        return block(state, self, self._attempt(), deadline_of(timeout)) is True

    def async_wait(self, timeout: float | None = None) -> Coroutine[Any, Any, bool]:
        return self._async_wait(None if timeout is None else stdlib_timeout(timeout))

    async def _async_wait(self, timeout: float | None) -> bool:
        state = self._shared
        if state.words[FLAG]:
            return True
        if timeout is not None and not timeout > 0:
            return False
        return await async_block(state, self, self._attempt(), deadline_of(timeout)) is True

    def statistics(self) -> EventStatistics:
        waiting, by_kind = _waiting(self)
        return EventStatistics(is_set=self.is_set(), waiting=waiting, waiting_by_kind=by_kind)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ("event", self._shared.prefix))

    def __repr__(self) -> str:
        status = "set" if self.is_set() else "unset"
        return f"<plait.Event at {id(self):#x}: {status}, shared>"


# -- promotion and rebuilding -----------------------------------------------------------


def promote(obj: Any) -> SharedState:
    """Move ``obj``'s state into a shared segment and swap in its shared class."""
    woken = []
    with obj._mutex:
        state: SharedState | None = obj._shared
        if state is not None:
            return state
        if isinstance(obj, Lock | RLock):
            # A local holder keeps holding: the shared lock starts taken by this process
            # and its release (through either class: ``_inner`` is swapped too) frees it.
            free = obj._inner.acquire(False)  # if free, the old lock stays taken for good
            state = SharedState.create("lock")
            if not free:
                state.words[HOLDER] = _robust.TAG
            state.release_mine = _release_mine_lock
            obj._owed = not free  # a release in flight on the old lock must pay it here
            obj._inner = _SharedInner(state)
            new_cls: type = SharedLock if isinstance(obj, Lock) else SharedRLock
        elif isinstance(obj, Semaphore):
            bounded = isinstance(obj, BoundedSemaphore)
            state = SharedState.create("semaphore")
            words = state.words
            words[INITIAL] = obj._initial
            words[VALUE] = obj._value
            out = obj._initial - obj._value
            if out > 0:  # permits held by strands of this process
                with state.guard:
                    state.slots.add(out)
            state.release_mine = _release_mine_permits
            state.rebuild = _rebuild_permits
            new_cls = SharedBoundedSemaphore if bounded else SharedSemaphore
        elif isinstance(obj, Event):
            state = SharedState.create("event")
            state.words[FLAG] = 1 if obj._flag else 0
            new_cls = SharedEvent
        else:  # pragma: no cover - callers only promote the kinds above
            raise TypeError(f"cannot share {obj!r} with another process")
        obj._shared = state
        obj.__class__ = new_cls
        woken = obj._queue.pop_all(MIGRATED)
        with _known_lock:
            _known[state.prefix] = obj
    for waiter in woken:
        waiter.wake()
    return state


def _rebuild(kind: str, prefix: str, initial: int = 0) -> Any:
    """Unpickle a shared primitive: the same object if it is already known here."""
    with _known_lock:
        obj = _known.get(prefix)
        if obj is not None:
            return obj
    if kind in ("lock", "rlock"):
        state = SharedState.open(prefix, "plait.Lock" if kind == "lock" else "plait.RLock")
        state.what = "lock"
        state.release_mine = _release_mine_lock
        if kind == "lock":
            obj = Lock.__new__(SharedLock)
            Lock.__init__(obj)
        else:
            obj = RLock.__new__(SharedRLock)
            RLock.__init__(obj)
        obj._inner = _SharedInner(state)
    elif kind in ("sem", "bsem"):
        state = SharedState.open(prefix, "plait.Semaphore")
        state.what = "semaphore"
        state.release_mine = _release_mine_permits
        state.rebuild = _rebuild_permits
        cls: Any = SharedBoundedSemaphore if kind == "bsem" else SharedSemaphore
        obj = Semaphore.__new__(cls)
        Semaphore.__init__(obj, initial)
    else:
        state = SharedState.open(prefix, "plait.Event")
        state.what = "event"
        obj = Event.__new__(SharedEvent)
        Event.__init__(obj)
    obj._shared = state
    with _known_lock:
        known = _known.get(prefix)
        if known is not None:
            return known
        _known[prefix] = obj
    return obj


def not_shareable(obj: object) -> None:
    """Raise the clear error for a primitive that cannot cross processes yet."""
    name = type(obj).__name__
    raise TypeError(
        f"a plait.{name} cannot be shared with another process (Lock, RLock, Condition, "
        f"Semaphore, BoundedSemaphore, Event and Barrier can); create the {name} in the "
        "process that uses it"
    )
